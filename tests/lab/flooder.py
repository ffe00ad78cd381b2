#!/usr/bin/python3
"""A bounded flood of TCP SYNs or UDP datagrams from spoofed sources, for the lab's load test.

    flooder.py tcp|udp HOST PORT --rate PER_SECOND --count MAX --seconds MAX

Runs inside a lab node as root (a raw socket, IP_HDRINCL). Every packet comes from another
source of 198.18.0.0/15 (RFC 2544's benchmarking range: never a real host) and source port,
so each one is a new connection to track; the TCP checksum is computed (conntrack drops a
packet whose checksum is wrong before it tracks it), UDP goes without one (0, allowed in IPv4).
Paced in batches to --rate; stops after --count packets or --seconds, whichever comes first,
or at SIGTERM. Prints one line: "SENT SECONDS".
"""
import argparse
import signal
import socket
import struct
import sys
import time

SOURCES = 1 << 17                    # 198.18.0.0/15
FIRST_SOURCE = int.from_bytes(socket.inet_aton("198.18.0.0"), "big")
BATCH = 250


def fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def packets(proto: str, host: str, port: int):
    """Endless distinct packets to host:port, each from its own (source, source port)."""
    dst = socket.inet_aton(host)
    ip_proto = socket.IPPROTO_TCP if proto == "tcp" else socket.IPPROTO_UDP
    length = 20 if proto == "tcp" else 8 + 16
    # ver/ihl, tos, total length, id (0: the kernel sets it), fragment, ttl, protocol, checksum
    # (the kernel's), source (below), destination.
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, 0, 0, 64, ip_proto, 0, bytes(4), dst))
    if proto == "tcp":
        # source port, port, seq, ack, data offset 5, SYN, window, checksum, urgent
        l4 = bytearray(struct.pack("!HHIIBBHHH", 0, port, 0x1000, 0, 5 << 4, 0x02, 64240, 0, 0))
        fixed = sum(struct.unpack("!2H", dst)) + ip_proto + length + port + 0x1000 + (5 << 12 | 0x02) + 64240
    else:
        l4 = bytearray(struct.pack("!HHHH", 0, port, length, 0) + b"cgnat-lab-flood!")
    packet = ip + l4
    i = 0
    while True:
        source = FIRST_SOURCE + i % SOURCES
        sport = 1024 + (i // SOURCES) % 64000
        struct.pack_into("!I", packet, 12, source)
        struct.pack_into("!H", packet, 20, sport)
        if proto == "tcp":
            struct.pack_into("!H", packet, 36, ~fold(fixed + (source >> 16) + (source & 0xFFFF) + sport) & 0xFFFF)
        yield bytes(packet)
        i += 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("proto", choices=("tcp", "udp"))
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--rate", type=int, required=True, help="packets per second")
    p.add_argument("--count", type=int, required=True, help="at most this many packets")
    p.add_argument("--seconds", type=float, required=True, help="for at most this long")
    args = p.parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    target = (args.host, 0)
    flood = packets(args.proto, args.host, args.port)
    start = time.monotonic()
    sent = 0
    while sent < args.count and not stop:
        elapsed = time.monotonic() - start
        if elapsed >= args.seconds:
            break
        ahead = sent / args.rate - elapsed
        if ahead > 0:
            time.sleep(ahead)
        for _ in range(min(BATCH, args.count - sent)):
            try:
                sock.sendto(next(flood), target)
            except OSError:          # a full queue (ENOBUFS): that packet is lost, as on a wire
                pass
            sent += 1
    print(sent, round(time.monotonic() - start, 1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
