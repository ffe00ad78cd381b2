"""The README's guide on two fresh booted Debian hosts: its blocks, taken from README.md, run
verbatim as root in the directory where the user copied the .deb (`scp ... root@HOST:`, so
root's home), the pairing token put in place of `cgnat3-...` as the guide says; then a
client on the Internet reaches the homelab's service through the bridge with its real
address, and only the ports the guide forwards are the homelab's; then step 7 adds a service.

Its own pair of hosts (nothing installed yet): the suite's other lab installs by preseeding.
"""
from __future__ import annotations

import time

import pytest

import bootlab
import netlab
from bootlab import LabError
from readme_guide import guide_blocks, with_token

HOME = "/root"      # where `scp dist/cgnat-<role>_*.deb root@HOST:` puts the package
SUITE = "trixie"    # one suite: the suite's time budget (the other lab covers both)
SECOND_PORT = 8443  # the service step 7 adds


@pytest.fixture(scope="module")
def fresh(debs):
    """Two booted hosts as a new user has them: the homelab's service running, the client's
    key in root's authorized_keys, the .deb copied to root's home; no cgnat package."""
    started = time.monotonic()
    lab = bootlab.BootLab(debs, SUITE)
    try:
        lab.build()
        lab.boot()
        lab.prepare_hosts()
        for role, host in lab.hosts.items():
            host.put(debs[role], f"{HOME}/{debs[role].name}")
            assert not lab.installed(role)
        lab.boot_seconds = time.monotonic() - started
        yield lab
    finally:
        lab.close()


def run_block(host, name: str, script: str) -> str:
    """A guide block as the user runs it, in root's home; stopping at the first failing
    command (a person would see it fail and stop too). Its output."""
    done = host.run(f"cd {HOME} && set -e\n{script}", check=False, timeout=600)
    if done.returncode != 0:
        raise LabError(f"the README's {name!r} block exited {done.returncode} on the {host.role}:\n"
                       f"{script}\n--- output:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done.stdout + done.stderr


def status_until_healthy(host, block: str, timeout: float = 120) -> str:
    return bootlab.output_once_it_exits_0(host, f"cd {HOME} && {block}", "the README's status block", timeout)


def test_readme_guide_verbatim_gives_a_working_chain(fresh, capsys):
    lab, blocks = fresh, guide_blocks()
    bridge, homelab = lab.hosts["bridge"], lab.hosts["homelab"]
    started = time.monotonic()

    # 3. The bridge; its token for the homelab.
    lab.note_setup("bridge", run_block(bridge, "bridge", blocks["bridge"]))
    assert bridge.unit("wg-quick@wg0.service") == ("enabled", "active")
    # 4. The homelab with the bridge's token; then the homelab's token on the bridge.
    lab.note_setup("homelab", run_block(homelab, "homelab", with_token(blocks["homelab"], lab.tokens["bridge"])))
    run_block(bridge, "bridge-pair", with_token(blocks["bridge-pair"], lab.tokens["homelab"]))
    assert homelab.unit("wg-quick@wg0.service") == ("enabled", "active")
    assert 'action = "restart-tunnel"' in homelab.sh("cat /etc/cgnat/answers.toml")

    # 6. Check it works: the status block exits 0 on both; a client is served with its address.
    shown = {role: status_until_healthy(host, blocks["status"]) for role, host in lab.hosts.items()}
    for role, out in shown.items():
        assert "FAIL" not in out and "ok    handshake" in out, f"{role}:\n{out}"
    assert "ok    end2end" in shown["homelab"], shown["homelab"]
    lab.wait_serving(timeout=120)
    assert lab.client_sees() == netlab.CLIENT

    # What becomes public: the guide forwards tcp/80 and tcp/443 only, so port 22 of the
    # bridge's address is still the bridge's sshd, and its ssh_port is the bridge's too.
    assert lab.ssh_hostname(22) == "bridge"
    assert lab.ssh_hostname(netlab.BRIDGE_SSH_PORT) == "bridge"
    guide_seconds = time.monotonic() - started

    # 7. Add a service: one more on the homelab; its port added to the bridge's saved answers
    # as a person does with an editor; the bridge applies them; the homelab re-pairs with the
    # new token and then knows what the bridge forwards.
    homelab.write("/etc/systemd/system/lab-second.service",
                  bootlab.PEER_UNIT.replace(f"TCP-LISTEN:{bootlab.SERVICE_PORT},", f"TCP-LISTEN:{SECOND_PORT},"))
    homelab.sh("systemctl daemon-reload; systemctl start lab-second.service")
    assert lab.client_sees(SECOND_PORT, timeout=3) is None, "not forwarded yet, and already served"
    saved = bridge.sh("cat /etc/cgnat/answers.toml")
    edited = saved.replace('    "tcp/443",\n', f'    "tcp/443",\n    "tcp/{SECOND_PORT}",\n')
    assert edited != saved, saved
    bridge.write("/etc/cgnat/answers.toml", edited)
    lab.note_setup("bridge", run_block(bridge, "bridge-apply", blocks["bridge-apply"]))
    run_block(homelab, "homelab-repair", with_token(blocks["homelab-repair"], lab.tokens["bridge"]))
    lab.wait_serving(timeout=60, port=SECOND_PORT)
    assert f'"tcp/{SECOND_PORT}"' in homelab.sh("cat /etc/cgnat/answers.toml"), "bridge_forward did not follow"
    lab.wait_serving(timeout=60)
    for host in lab.hosts.values():
        status_until_healthy(host, blocks["status"])
    added_seconds = time.monotonic() - started - guide_seconds
    with capsys.disabled():
        print(f"\n{SUITE}: two fresh hosts booted in {lab.boot_seconds:.1f} s; the README's guide "
              f"to a served client in {guide_seconds:.1f} s; a service added in {added_seconds:.1f} s")
        for role, out in shown.items():
            print(f"--- cgnat-setup status on the {role}:\n{out}")
