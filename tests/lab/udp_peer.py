#!/usr/bin/python3
"""A UDP service that answers each datagram with the sender's address as it sees it.

Bound to every address, it replies from the address the datagram was sent to
(IP_PKTINFO), as well-behaved UDP servers do (DNS servers, WireGuard). That matters on
the homelab: a reply sent from a wildcard socket without it would get the home
connection's source address and never match the forwarded connection.
"""
import socket
import struct
import sys

IP_PKTINFO = 8  # <linux/in.h>; Python's socket module does not name it


def main() -> None:
    port = int(sys.argv[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    sock.bind(("0.0.0.0", port))
    while True:
        _, ancillary, _, peer = sock.recvmsg(2048, socket.CMSG_SPACE(12))
        reply_from = b"\0" * 4
        for level, kind, data in ancillary:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                reply_from = data[8:12]  # struct in_pktinfo: ifindex, spec_dst, addr
        info = struct.pack("=i4s4s", 0, reply_from, b"\0" * 4)
        sock.sendmsg([f"{peer[0]}\n".encode()], [(socket.IPPROTO_IP, IP_PKTINFO, info)], 0, peer)


if __name__ == "__main__":
    main()
