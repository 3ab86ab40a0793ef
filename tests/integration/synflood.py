#!/usr/bin/env python3
"""Load for synfin's memory bound, run inside a test namespace:
- --syns SYNs from raw sockets (spoofed 127.0.0.0/8 sources) to a listener that
  never completes them (request sockets: the kernel's SYN-flood path);
- --stalled connect()s to a port whose SYNs an nftables rule drops, each
  leaving a socket in SYN_SENT (these do reach synfin's tracker);
- meanwhile --real ordinary connections, which synfin must still trace.
Prints one JSON line. Every loop is bounded by count."""
import argparse
import json
import os
import random
import resource
import socket
import struct
import time


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def syn_segment(src, sport, dst, dport, seq):
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02, 65535, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(header))
    return header[:16] + struct.pack("!H", checksum(pseudo + header)) + header[18:]


def flood(dport, count):
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    rng = random.Random(7)
    for i in range(count):
        src = f"127.{rng.randrange(1, 255)}.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}"
        tcp = syn_segment(src, rng.randrange(1024, 65535), "127.0.0.1", dport, rng.getrandbits(32))
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xFFFF, 0, 64, 6, 0,
                         socket.inet_aton(src), socket.inet_aton("127.0.0.1"))
        raw.sendto(ip + tcp, ("127.0.0.1", 0))
    raw.close()


def stalled_connects(port, count):
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        socks.append(s)
    return socks


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--syns", type=int, default=50000)
    p.add_argument("--stalled", type=int, default=2000)
    p.add_argument("--stalled-port", type=int, required=True)
    p.add_argument("--real", type=int, default=20)
    args = p.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (args.stalled + 256, args.stalled + 256))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    start = time.monotonic()
    real_ports = []
    stalled = stalled_connects(args.stalled_port, args.stalled)
    chunk = max(1, args.syns // max(1, args.real))
    for i in range(args.real):
        flood(port, min(chunk, args.syns - i * chunk))
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        s, _ = listener.accept()
        c.sendall(b"ping")
        s.recv(4)
        real_ports.append(c.getsockname()[1])
        c.close()
        s.close()
    for s in stalled:
        s.close()
    listener.close()
    print(json.dumps({"pid": os.getpid(), "listen_port": port, "real_ports": real_ports,
                      "seconds": round(time.monotonic() - start, 2)}), flush=True)


if __name__ == "__main__":
    main()
