#!/usr/bin/env python3
"""TCP servers whose sockets change holder the ways real servers do, for test_owners.py.

Each listens on 127.0.0.1:--port, prints one JSON line with the pids that matter as soon
as they are known, and waits for files to appear (--go, --stop) before its next step, so
that the test can look with `ss -tanp` in between.

  prefork    the parent listens, forks --children children and exits; each child waits
             for --go, then accepts and serves (reads to EOF, closes) until --stop
  fdpass     the parent listens and accepts one connection, passes it over a unix socket
             (SCM_RIGHTS) to its child and closes its own copy; the child closes it at --go
  forkafter  the parent listens and accepts one connection, forks a child that keeps it,
             and closes its own copy; the child closes it at --go
  hold       accepts --children connections and holds them; closes each at the peer's EOF
"""
import argparse
import array
import json
import os
import selectors
import socket
import sys
import time

DEADLINE_S = 60


def say(**fields):
    print(json.dumps(fields), flush=True)


def wait_file(path):
    deadline = time.monotonic() + DEADLINE_S
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            sys.exit(f"no {path} within {DEADLINE_S} s")
        time.sleep(0.01)


def listener(port):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(64)
    return ls


def serve_one(conn):
    while conn.recv(4096):
        pass
    conn.close()


def serve_all(ls, stop):
    """Accepts and serves every connection at once (reads each to EOF, then closes it)."""
    sel = selectors.DefaultSelector()
    ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ)
    # Until told to stop, or the test's folder is gone with the test, or the deadline.
    deadline = time.monotonic() + DEADLINE_S
    while (not os.path.exists(stop) and os.path.isdir(os.path.dirname(stop))
           and time.monotonic() < deadline):
        for key, _ in sel.select(timeout=0.05):
            if key.fileobj is ls:
                try:
                    conn, _ = ls.accept()
                except BlockingIOError:
                    continue  # a sibling took it
                sel.register(conn, selectors.EVENT_READ)
            elif not key.fileobj.recv(4096):
                sel.unregister(key.fileobj)
                key.fileobj.close()


def prefork(args):
    ls = listener(args.port)
    children = []
    for _ in range(args.children):
        pid = os.fork()
        if pid == 0:
            wait_file(args.go)
            serve_all(ls, args.stop)
            os._exit(0)
        children.append(pid)
    say(parent=os.getpid(), children=children)
    os._exit(0)  # the process that called listen() is gone; its children hold the listener


def accept_one(port):
    ls = listener(port)
    say(listening=os.getpid())
    conn, _ = ls.accept()
    ls.close()
    return conn


def fdpass(args):
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ls = listener(args.port)
    pid = os.fork()
    if pid == 0:
        ls.close()
        parent_end.close()
        _, fds, _, _ = socket.recv_fds(child_end, 16, 1)
        conn = socket.socket(fileno=fds[0])
        wait_file(args.go)
        conn.close()
        os._exit(0)
    child_end.close()
    say(listening=os.getpid())
    conn, _ = ls.accept()
    ls.close()
    socket.send_fds(parent_end, [b"x"], [conn.fileno()])
    conn.close()
    say(acceptor=os.getpid(), receiver=pid)
    os.waitpid(pid, 0)


def forkafter(args):
    conn = accept_one(args.port)
    pid = os.fork()
    if pid == 0:
        wait_file(args.go)
        conn.close()
        os._exit(0)
    conn.close()
    say(acceptor=os.getpid(), child=pid)
    os.waitpid(pid, 0)


def hold(args):
    ls = listener(args.port)
    say(server=os.getpid())
    conns = [ls.accept()[0] for _ in range(args.children)]
    say(held=len(conns))
    for conn in conns:
        conn.settimeout(DEADLINE_S)
        serve_one(conn)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=["prefork", "fdpass", "forkafter", "hold"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--children", type=int, default=2)
    ap.add_argument("--go", default="/nonexistent")
    ap.add_argument("--stop", default="/nonexistent")
    args = ap.parse_args()
    globals()[args.scenario](args)


if __name__ == "__main__":
    main()
