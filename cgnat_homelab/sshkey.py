"""The host key an SSH server shows, read in-process on an open connection (RFC 4253, 5656, 8731).

The homelab's end-to-end check must tell its own sshd from the bridge's: both answer port 22
of the bridge's address at some time. Only the server's host key, sent in its key-exchange
reply, tells them apart. Starting ssh-keyscan for that costs ~0.1 s of CPU a check on a small
VPS; this exchanges the cleartext packets up to that reply (our banner, KEXINIT, an ECDH init
with a random curve25519 value) and stops: nothing is authenticated or encrypted, no
signature is checked (the two candidates are our own hosts; this is no defence against an
impostor), and the connection is closed right after.
"""
from __future__ import annotations

import base64
import os
import socket
import struct

BANNER = b"SSH-2.0-cgnat-watchdog\r\n"
KEXINIT, KEX_ECDH_INIT, KEX_ECDH_REPLY, DISCONNECT = 20, 30, 31, 1
MAX_PACKET = 35000


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _packet(payload: bytes) -> bytes:
    padding = 8 - (len(payload) + 5) % 8
    padding += 8 if padding < 4 else 0
    return struct.pack(">IB", len(payload) + padding + 1, padding) + payload + os.urandom(padding)


def _kexinit(key_types: list[str]) -> bytes:
    lists = ["curve25519-sha256,curve25519-sha256@libssh.org", ",".join(key_types),
             "aes128-ctr", "aes128-ctr", "hmac-sha2-256", "hmac-sha2-256", "none", "none", "", ""]
    return (bytes([KEXINIT]) + os.urandom(16) + b"".join(_string(n.encode()) for n in lists)
            + b"\0" + b"\0\0\0\0")


class _Reader:
    def __init__(self, sock: socket.socket):
        self.sock, self.buffer = sock, b""

    def _fill(self) -> None:
        chunk = self.sock.recv(4096)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def line(self) -> bytes:
        while b"\n" not in self.buffer:
            if len(self.buffer) > 8192:
                raise ValueError("no SSH banner")
            self._fill()
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def packet(self) -> bytes:
        length, padding = struct.unpack(">IB", self.take(5))
        if not 5 <= length <= MAX_PACKET or padding >= length:
            raise ValueError("not an SSH packet")
        return self.take(length - 1)[:length - 1 - padding]


def host_key(sock: socket.socket, key_types: list[str]) -> str | None:
    """The base64 host key blob the server at the other end of `sock` shows, offering the
    host key algorithms `key_types` (e.g. ["ssh-ed25519"]); None when it is no SSH server or
    agrees on none of them. Raises OSError on a timeout or a closed connection."""
    try:
        return _exchange(sock, _Reader(sock), key_types)
    except (ValueError, struct.error):
        return None


def _exchange(sock: socket.socket, reader: _Reader, key_types: list[str]) -> str | None:
    sock.sendall(BANNER)
    for _ in range(20):                       # RFC 4253 4.2: lines may come before the banner
        if reader.line().startswith(b"SSH-"):
            break
    else:
        return None
    ecdh_init = bytes([KEX_ECDH_INIT]) + _string(os.urandom(32))
    sock.sendall(_packet(_kexinit(key_types)) + _packet(ecdh_init))
    for _ in range(10):
        payload = reader.packet()
        if payload[:1] == bytes([KEX_ECDH_REPLY]):
            (size,) = struct.unpack(">I", payload[1:5])
            return base64.b64encode(payload[5:5 + size]).decode()
        if payload[:1] == bytes([DISCONNECT]):
            return None
    return None
