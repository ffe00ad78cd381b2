"""The bridge's sshd drop-in, judged by the real sshd."""
import subprocess
import sys
from pathlib import Path

import pytest

from cgnat_bridge import sshd
from installer.errors import SetupError


@pytest.fixture
def sshd_config(tmp_path):
    """A main config like Debian's (drop-ins first), with its own host key."""
    key = tmp_path / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    dropins = tmp_path / "sshd_config.d"
    dropins.mkdir()
    main = tmp_path / "sshd_config"
    main.write_text(f"Include {dropins}/*.conf\nHostKey {key}\n")
    return main, dropins


def effective_ports(main):
    return sshd.listening_ports(subprocess.run(["sshd", "-T", "-f", str(main)], capture_output=True,
                                     text=True, check=True).stdout)


def test_dropin_keeps_port_22_and_adds_ssh_port(sshd_config):
    main, dropins = sshd_config
    assert effective_ports(main) == [22]
    dropin = sshd.plan_dropin(2222, [22], sshd.kept_ports([22], main_config=str(main)))
    assert "Port 2222\nPort 22\n" in dropin
    (dropins / "cgnat-bridge.conf").write_text(dropin)
    sshd.validate_config(str(main))  # the real `sshd -t`
    assert effective_ports(main) == [22, 2222]


def test_dropin_does_not_repeat_a_port_the_main_config_names(sshd_config):
    main, dropins = sshd_config
    main.write_text(main.read_text() + "Port 22\n")
    dropin = sshd.plan_dropin(2222, [22], sshd.kept_ports([22], main_config=str(main)))
    assert dropin.count("Port ") == 1
    (dropins / "cgnat-bridge.conf").write_text(dropin)
    sshd.validate_config(str(main))
    assert effective_ports(main) == [22, 2222]


def test_no_dropin_when_sshd_listens_on_the_port_already():
    assert sshd.plan_dropin(2222, [22, 2222], []) is None


def test_broken_config_is_refused_by_sshd_t(sshd_config):
    main, dropins = sshd_config
    (dropins / "cgnat-bridge.conf").write_text("Port 2222\nPortt 22\n")
    with pytest.raises(SetupError, match="rejected the configuration"):
        sshd.validate_config(str(main))


def test_confirm_listening_fails_when_nothing_answers():
    with pytest.raises(SetupError, match="does not answer on port 9; nothing is forwarded"):
        sshd.confirm_listening(9, timeout=0.3)


@pytest.mark.root
def test_sshd_runs_where_its_privilege_separation_directory_is_missing(sshd_config):
    """A host whose ssh.service is stopped (or a chroot) has no /run/sshd, without which
    `sshd -T` and `sshd -t` refuse to run; run_sshd creates it. In a private mount
    namespace with an empty /run (root, as in CI)."""
    main, _ = sshd_config
    repo = Path(__file__).resolve().parents[2]
    probe = ("from cgnat_bridge.sshd import run_sshd; import os; "
             "assert not os.path.exists('/run/sshd'); "
             f"done = run_sshd('-T', '-f', '{main}'); print(done.returncode, os.path.isdir('/run/sshd'))")
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           f'mount -t tmpfs empty-run /run && exec "$0" -c "$1"',
                           sys.executable, probe],
                          capture_output=True, text=True, cwd=repo)
    assert done.stdout.split() == ["0", "True"], done.stderr


def test_a_socket_activated_sshd_gets_a_socket_dropin_with_every_port():
    from installer.detect import HostFacts
    from installer.plan import make_plan
    from installer.validate import load_answers
    answers = load_answers({"role": "bridge", "bridge": {"public_interface": "lo",
                                                         "public_address": "203.0.113.7"}}, None, None)
    facts = HostFacts(role_facts={"bridge": sshd.SshdFacts(ports=[22], socket=True)})
    plan = make_plan(answers, facts, "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=", start=True)
    files = {f.path: f.content for f in plan.files}
    assert plan.before_forwarding.socket_dropin == sshd.SOCKET_DROPIN
    assert files[sshd.SOCKET_DROPIN].endswith("[Socket]\nListenStream=\nListenStream=22\nListenStream=2222\n")
    assert sshd.SOCKET_DROPIN in files["/var/lib/cgnat/manifest"]      # purge takes it back
    plain = make_plan(answers, HostFacts(role_facts={"bridge": sshd.SshdFacts(ports=[22])}), "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=")
    assert plain.before_forwarding.socket_dropin is None and sshd.SOCKET_DROPIN not in {f.path for f in plain.files}


def test_socket_activation_stops_the_service_before_restarting_the_socket():
    calls = []
    sshd.reload_sshd(calls.append, socket=True)
    assert calls == [["systemctl", "daemon-reload"], ["systemctl", "stop", "ssh.service"],
                     ["systemctl", "restart", "ssh.socket"]]
    calls.clear()
    sshd.reload_sshd(calls.append, socket=False)
    assert calls == [["systemctl", "reload-or-restart", "ssh.service"]]
