"""A bridge whose sshd is socket-activated (`ssh.socket`, as on Ubuntu 22.10 and later),
here a booted Debian 13 whose admin enabled ssh.socket instead of ssh.service: the
preseeded install must move the bridge's own sshd to ssh_port without locking anyone out."""
from __future__ import annotations

import netlab
from bootlab import BootLab


def test_socket_activated_sshd_moves_to_its_port_without_lockout(request, debs):
    lab = BootLab(debs, "trixie")
    request.addfinalizer(lab.close)
    lab.build()
    lab.boot(roles=("bridge",))
    lab.prepare_hosts()
    bridge = lab.hosts["bridge"]
    bridge.sh("systemctl disable --now ssh.service && systemctl enable --now ssh.socket")
    assert bridge.unit("ssh.socket") == ("enabled", "active")
    assert lab.ssh_hostname(22) == "bridge"
    bridge.write("/etc/cgnat/answers.toml", lab.answers("bridge"))
    output = lab.apt_install("bridge", debs["bridge"])
    port_22 = lab.ssh_hostname(22)
    assert "cgnat-setup: bridge configured" in output, (
        f"the preseeded setup failed on a socket-activated sshd (port 22 still reaches "
        f"{port_22 or 'nothing'}):\n{output[-2500:]}\nssh.socket listens on: "
        f"{bridge.sh('systemctl show -P Listen ssh.socket').strip()}")
    assert bridge.unit("ssh.socket") == ("enabled", "active")
    listening = bridge.sh("systemctl show -P Listen ssh.socket")
    assert f":{netlab.BRIDGE_SSH_PORT} (Stream)" in listening, listening
    assert lab.ssh_hostname(netlab.BRIDGE_SSH_PORT) == "bridge", "locked out: ssh -p 2222 does not reach the bridge"
