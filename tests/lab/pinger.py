#!/usr/bin/python3
"""ICMP (to an IPv6 address, ICMPv6) echo over a raw socket, so the lab needs no ping
binary (iputils-ping is not a dependency of anything here). Runs inside a lab node as root. Prints one JSON line:
{"sent": N, "received": M, "rtt_ms": [...], "from": [...]}.
"""
import argparse
import json
import os
import select
import socket
import struct
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for each reply")
    p.add_argument("--interval", type=float, default=0.0, help="pause between echoes")
    args = p.parse_args()

    # An IPv6 address: ICMPv6 echo (types 128/129). The kernel fills in the checksum of a
    # raw ICMPv6 socket and delivers no IP header.
    v6 = ":" in args.host
    if v6:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        request, reply, dest = 128, 129, args.host
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        request, reply, dest = 8, 0, socket.gethostbyname(args.host)
    ident = os.getpid() & 0xFFFF
    rtts, sources = [], []
    for seq in range(1, args.count + 1):
        payload = struct.pack("!d", time.perf_counter()) + b"cgnat-lab" * 4
        header = struct.pack("!BBHHH", request, 0, 0, ident, seq)
        packet = struct.pack("!BBHHH", request, 0, 0 if v6 else checksum(header + payload),
                             ident, seq) + payload
        sent = time.perf_counter()
        sock.sendto(packet, (dest, 0))
        deadline = sent + args.timeout
        while (left := deadline - time.perf_counter()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                break
            data, (source, *_) = sock.recvfrom(2048)
            now = time.perf_counter()
            ihl = 0 if v6 else (data[0] & 0x0F) * 4
            kind, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if kind == reply and rid == ident and rseq == seq:
                rtts.append((now - sent) * 1000)
                sources.append(source)
                break
        if args.interval:
            time.sleep(args.interval)
    print(json.dumps({"sent": args.count, "received": len(rtts), "rtt_ms": rtts, "from": sources}))


if __name__ == "__main__":
    main()
