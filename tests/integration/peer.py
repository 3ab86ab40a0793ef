#!/usr/bin/env python3
"""A TCP client and server in one process, making real connections on loopback.

Run by the integration tests, directly or inside a network namespace
(`ip netns exec NS python3 peer.py ...`). It prints one JSON line describing
what it did, so the tests can match synfin's records against it.

Scenarios (who does what, at the socket API):
  client-first  client close(); server reads EOF, then close()  -> client FIN_WAIT*, server CLOSE_WAIT/LAST_ACK
  server-first  the mirror image
  reset         client sets SO_LINGER {1, 0} and close()s: an RST instead of a FIN
  refused       connect() to a port nobody listens on
  shutdown      client shutdown(SHUT_WR), both read EOF, then close: the client
                reaches TIME_WAIT through FIN_WAIT2 with its socket still open
  close-wait    the server closes; the client holds its CLOSE_WAIT for --hold-seconds
  late-fin      client close(); the server reads EOF, waits --hold-seconds, then close():
                the client's socket goes to a time-wait mini-socket in FIN_WAIT2 first
  late-data     client close(); the server reads EOF, waits --hold-seconds, then sends
                data: the client's FIN_WAIT2 mini-socket answers with a RST
  unread        the server sends data the client never reads; the client close()s: a RST
  queued        --count clients complete their handshakes; the listener closes without
                accepting them: the kernel resets its queued children
  syn-timeout   connect() to --port whose SYNs are dropped (the test's nftables rule)
  hold          --count connections held open for --hold-seconds
  serve         (two namespaces) listen on --bind:--port, serve one client-first
                connection, print a line when listening
  connect       (two namespaces) one connection to --bind:--port, shutdown first

--capture records every TCP segment on lo (AF_PACKET) while it works and
reports them (with the kernel's receive time, ts_ns, CLOCK_REALTIME), so the
tests can compare synfin with the wire. late-fin and late-data also report
when the client called connect() and the server close() (connect_ns,
server_close_ns: CLOCK_MONOTONIC, the clock of synfin's ts_ns).
"""
import argparse
import json
import os
import socket
import struct
import sys
import time

LOOPBACK = {4: (socket.AF_INET, "127.0.0.1"), 6: (socket.AF_INET6, "::1")}


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--family", type=int, choices=(4, 6), default=4)
    p.add_argument("--scenario", default="client-first",
                   choices=("client-first", "server-first", "reset", "refused", "hold",
                            "shutdown", "close-wait", "late-fin", "late-data", "unread", "queued",
                            "syn-timeout",
                            "serve",
                            "connect"))
    p.add_argument("--capture", action="store_true")
    p.add_argument("--capture-iface", default="lo")
    p.add_argument("--bind", help="address for serve/connect")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--port", type=int, default=0, help="listener port (0: any)")
    p.add_argument("--wait", action="store_true",
                   help="print the pid, then wait for a line on stdin before acting")
    p.add_argument("--hold-seconds", type=float, default=0.0)
    return p.parse_args()


def read_eof(sock):
    sock.settimeout(5)
    while sock.recv(4096):
        pass


def send_into_reset(sock):
    """Data to a peer that has closed: its kernel answers with a RST."""
    sock.sendall(b"late")
    time.sleep(0.05)
    try:
        sock.sendall(b"later")  # after the RST: EPIPE or ECONNRESET
    except OSError:
        pass


def exchange(client, server):
    client.sendall(b"ping")
    assert server.recv(4) == b"ping"
    server.sendall(b"pong")
    assert client.recv(4) == b"pong"


def one_connection(listener, family, host, port, scenario):
    client = socket.socket(family, socket.SOCK_STREAM)
    connect_ns = time.monotonic_ns()
    client.connect((host, port))
    server, _ = listener.accept()
    client_port = client.getsockname()[1]
    exchange(client, server)
    if scenario == "client-first":
        client.close()
        read_eof(server)
        server.close()
    elif scenario == "server-first":
        server.close()
        read_eof(client)
        client.close()
    elif scenario == "shutdown":
        client.shutdown(socket.SHUT_WR)
        read_eof(server)
        server.close()
        read_eof(client)
        client.close()
    elif scenario in ("late-fin", "late-data"):
        client.close()
        read_eof(server)
        time.sleep(HOLD_SECONDS)
        if scenario == "late-data":
            send_into_reset(server)
        server_close_ns = time.monotonic_ns()
        server.close()
        return {"client_port": client_port, "connect_ns": connect_ns,
                "server_close_ns": server_close_ns}
    elif scenario == "unread":
        server.sendall(b"unread")
        time.sleep(0.05)  # in the client's receive queue
        client.close()
        time.sleep(0.05)
        server.close()
    elif scenario == "close-wait":
        server.close()
        read_eof(client)
        time.sleep(HOLD_SECONDS)
        client.close()
    elif scenario == "reset":
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        time.sleep(0.05)
        server.close()
    return {"client_port": client_port}


HOLD_SECONDS = 0.0


def serve_one(family, addr, port):
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((addr, port))
    listener.listen(1)
    print(json.dumps({"listening": port}), flush=True)
    listener.settimeout(20)
    server, peer = listener.accept()
    assert server.recv(4) == b"ping"
    server.sendall(b"pong")
    read_eof(server)
    server.close()
    listener.close()
    return {"client_port": peer[1]}


def connect_one(family, addr, port):
    client = socket.socket(family, socket.SOCK_STREAM)
    client.settimeout(10)
    client.connect((addr, port))
    client_port = client.getsockname()[1]
    client.sendall(b"ping")
    assert client.recv(4) == b"pong"
    client.shutdown(socket.SHUT_WR)
    read_eof(client)
    client.close()
    time.sleep(0.1)
    return {"client_port": client_port}


def syn_timeout_connection(family, host, port):
    client = socket.socket(family, socket.SOCK_STREAM)
    start = time.monotonic()
    try:
        client.connect((host, port))
        raise SystemExit("connect through a SYN-dropping rule succeeded")
    except (TimeoutError, OSError) as err:
        if getattr(err, "errno", None) != 110:  # ETIMEDOUT
            raise
    client.close()
    return {"timed_out_port": port, "seconds": round(time.monotonic() - start, 2)}


class Capture:
    """Every TCP segment crossing an interface, via AF_PACKET. On lo each segment is
    seen leaving and arriving: only the arriving copy is kept."""

    def __init__(self, iface):
        self.iface = iface
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.sock.bind((iface, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.setblocking(False)
        self.segments = []

    def drain(self):
        while True:
            try:
                frame, ancillary, _, addr = self.sock.recvmsg(65535, 64)
            except BlockingIOError:
                return self.segments
            if addr[2] == socket.PACKET_OUTGOING and self.iface == "lo":
                continue
            seg = parse_tcp(frame[14:], int.from_bytes(frame[12:14], "big"))
            if seg:
                seg["ts_ns"] = receive_time_ns(ancillary)
                self.segments.append(seg)


SO_TIMESTAMPNS = 35  # SCM_TIMESTAMPNS too


def receive_time_ns(ancillary):
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            sec, nsec = struct.unpack("qq", data[:16])
            return sec * 1_000_000_000 + nsec
    return None


def parse_tcp(packet, ethertype):
    if ethertype == 0x0800 and len(packet) >= 20 and packet[9] == 6:
        tcp = packet[(packet[0] & 0xf) * 4:]
    elif ethertype == 0x86DD and len(packet) >= 40 and packet[6] == 6:
        tcp = packet[40:]
    else:
        return None
    if len(tcp) < 20:
        return None
    sport, dport, seq, ack = struct.unpack("!HHII", tcp[:12])
    return {"sport": sport, "dport": dport, "seq": seq, "ack": ack, "flags": tcp[13]}


def refused_connection(family, host):
    probe = socket.socket(family, socket.SOCK_STREAM)
    probe.bind((host, 0))
    closed_port = probe.getsockname()[1]
    probe.close()
    client = socket.socket(family, socket.SOCK_STREAM)
    try:
        client.connect((host, closed_port))
        raise SystemExit("connect to a closed port succeeded")
    except ConnectionRefusedError:
        pass
    client.close()
    return {"refused_port": closed_port}


def queued_connections(family, host, count):
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind((host, 0))
    listener.listen(count)
    port = listener.getsockname()[1]
    clients = [socket.create_connection((host, port)) for _ in range(count)]
    ports = [c.getsockname()[1] for c in clients]
    time.sleep(0.05)  # every handshake done: children wait in the accept queue
    listener.close()
    for c in clients:
        c.settimeout(5)
        try:
            c.recv(1)
        except ConnectionResetError:
            pass
        c.close()
    return port, [{"client_port": p} for p in ports]


def held_connections(listener, family, host, port, count, seconds):
    pairs = []
    for _ in range(count):
        c = socket.socket(family, socket.SOCK_STREAM)
        c.connect((host, port))
        s, _ = listener.accept()
        pairs.append((c, s))
    time.sleep(seconds)
    ports = [c.getsockname()[1] for c, _ in pairs]
    for c, s in pairs:
        c.close()
        s.close()
    return ports


def main():
    args = parse_args()
    family, host = LOOPBACK[args.family]
    with open("/proc/self/comm") as f:
        comm = f.read().strip()
    if args.wait:
        print(json.dumps({"pid": os.getpid()}), flush=True)
        sys.stdin.readline()
    global HOLD_SECONDS
    HOLD_SECONDS = args.hold_seconds
    capture = Capture(args.capture_iface) if args.capture else None
    result = {"pid": os.getpid(), "comm": comm, "family": args.family, "conns": []}
    if args.scenario == "serve":
        result["conns"] = [serve_one(family, args.bind, args.port)]
    elif args.scenario == "connect":
        result["conns"] = [connect_one(family, args.bind, args.port)]
    elif args.scenario == "syn-timeout":
        result["conns"] = [syn_timeout_connection(family, host, args.port)]
    elif args.scenario == "queued":
        result["listen_port"], result["conns"] = queued_connections(family, host, args.count)
    elif args.scenario == "refused":
        result["conns"] = [refused_connection(family, host) for _ in range(args.count)]
    else:
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, args.port))
        listener.listen(128)
        port = listener.getsockname()[1]
        result["listen_port"] = port
        if args.scenario == "hold":
            result["conns"] = [{"client_port": p} for p in
                               held_connections(listener, family, host, port, args.count,
                                                args.hold_seconds)]
        else:
            result["conns"] = [one_connection(listener, family, host, port, args.scenario)
                               for _ in range(args.count)]
        time.sleep(0.05)  # let the last FIN/ACKs land before the listener goes
        listener.close()
    if capture:
        time.sleep(0.05)
        result["segments"] = capture.drain()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
