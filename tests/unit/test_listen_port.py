"""installer/listen_port.py against a real wireguard-go in a throwaway network namespace
(`unshare --net`): setup's confirmation that WireGuard, and nothing else, holds its port."""
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.root     # unshare --net

REPO = Path(__file__).resolve().parents[2]
KEY = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="


def in_netns(body: str) -> subprocess.CompletedProcess:
    """Run `body` (Python, with `confirm`, `socket`, IFACE and PORT) in a new network namespace
    where wireguard-go serves IFACE; the interface (and so wireguard-go) goes with it."""
    iface = "wgt" + uuid.uuid4().hex[:8]       # its UAPI socket is in the shared /run/wireguard
    program = textwrap.dedent(f"""
        import socket, subprocess, sys
        sys.path.insert(0, {str(REPO)!r})
        from installer.listen_port import confirm
        from installer.errors import SetupError
        IFACE, PORT = {iface!r}, 51999
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        def wireguard_up():
            subprocess.run(["wireguard-go", IFACE], check=True, env={{"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}}, capture_output=True)
            subprocess.run(["sh", "-c", f"echo {KEY} | wg set {{IFACE}} listen-port {{PORT}} private-key /dev/stdin"], check=True)
            subprocess.run(["ip", "link", "set", IFACE, "up"], check=True)
        try:
    """) + textwrap.indent(textwrap.dedent(body), "    ") + textwrap.dedent("""
        finally:
            subprocess.run(["ip", "link", "del", IFACE], capture_output=True)
    """)
    return subprocess.run(["unshare", "--net", sys.executable, "-c", program],
                          capture_output=True, text=True, timeout=60)


def test_wireguard_on_its_port_is_confirmed():
    done = in_netns("""
        wireguard_up()
        confirm(IFACE, PORT, timeout=10)
        print("confirmed")
    """)
    assert done.stdout == "confirmed\n", done.stderr


def test_a_port_held_by_another_program_is_not_confirmed():
    done = in_netns("""
        holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        holder.bind(("0.0.0.0", PORT))
        try:
            wireguard_up()
        except subprocess.CalledProcessError:
            pass      # wg set refused the port: the confirmation must refuse too
        try:
            confirm(IFACE, PORT, timeout=2)
        except SetupError as error:
            print(error)
    """)
    assert "UDP port 51999 is held by python" in done.stdout, (done.stdout, done.stderr)
    assert "not by WireGuard" in done.stdout


def test_an_interface_on_another_port_is_not_confirmed():
    done = in_netns("""
        wireguard_up()
        try:
            confirm(IFACE, PORT + 1, timeout=1)
        except SetupError as error:
            print(error)
    """)
    assert f"does not listen on UDP port 52000" in done.stdout, (done.stdout, done.stderr)
