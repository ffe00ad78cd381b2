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
    if sys.argv[2:] == ["6"]:
        serve6(port)
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


def serve6(port: int) -> None:
    """The same over IPv6 (`udp_peer.py PORT 6`): IPV6_PKTINFO holds in6_pktinfo (address, ifindex)."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    sock.bind(("::", port))
    while True:
        _, ancillary, _, peer = sock.recvmsg(2048, socket.CMSG_SPACE(20))
        info = b"\0" * 20
        for level, kind, data in ancillary:
            if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO:
                info = data[:16] + b"\0" * 4
        sock.sendmsg([f"{peer[0]}\n".encode()], [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, info)], 0, peer)


if __name__ == "__main__":
    main()
