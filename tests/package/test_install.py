"""Install, use, remove and purge the .debs in minbase chroots of Debian 12
(bookworm) and 13 (trixie), dependencies resolved from the archive.

The steps run in order on one chroot per suite (the `chroot` fixture): each test
continues from the state the previous one left. Everything that runs
cgnat-setup does so in an empty network namespace (the chroot shares the host's).
Recommends are not installed (wireguard-tools recommends a kernel image).
"""
from __future__ import annotations

import json
import re

from built_packages import ROLES
from installer.pairing import PairingToken

APT = "apt-get -y -q -o Dpkg::Use-Pty=0 --no-install-recommends"
LAUNCHER_PATH = "import sys; sys.path[:0] = ['/usr/lib/cgnat-{role}/python', '/usr/lib/cgnat-{role}/vendor']"


def answers(chroot, role: str) -> str:
    """An answers file that is valid inside an empty network namespace."""
    links = json.loads(chroot.check("ip -j link", net=False).stdout)
    public = links[0]["ifname"]  # the only interface there: lo
    if role == "bridge":
        text = ('role = "bridge"\ninterface = "wg0"\ntunnel = "10.0.0.0/24"\nlisten_port = 51820\n\n'
                f'[bridge]\npublic_interface = "{public}"\npublic_address = "203.0.113.7"\nssh_port = 2222\n')
    else:
        text = ('role = "homelab"\ninterface = "wg0"\ntunnel = "10.0.0.0/24"\n\n'
                '[homelab]\nendpoint = "203.0.113.7:51820"\ndocker_subnets = []\n')
    inside = f"/tmp/{role}.toml"
    chroot.path(inside).write_text(text)
    # sshd -T needs its privilege separation dir, which a running ssh.service has.
    chroot.path("/run/sshd").mkdir(parents=True, exist_ok=True)
    return inside


# A second bridge's token, with a tunnel of its own (installer/pairing.py's format).
SECOND_BRIDGE = PairingToken("bridge", "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=", "198.51.100.9:51820",
                             "10.0.1.0/24", "2222", "all", "fd63:676e:6174:1::/64", "").encode()


def install(chroot, role: str) -> None:
    before = chroot.packages()
    chroot.check(f"{APT} install {chroot.debs[role]}")
    added = chroot.packages() - before
    assert added == {f"cgnat-{role}"}, f"apt installed more than the package: {added}"


def test_dependencies_from_the_archive(chroot, debs):
    """apt resolves both packages' Depends and Recommends (the bridge's sshd)
    from the suite; this is the baseline the purge tests compare against."""
    from debian.debfile import DebFile
    for role in ROLES:
        fields = DebFile(str(debs[role])).debcontrol()
        wanted = ", ".join(fields[f] for f in ("Depends", "Recommends") if f in fields)
        chroot.check(f"{APT} satisfy '{wanted}'")
    chroot.state["baseline"] = chroot.snapshot()
    chroot.state["packages"] = chroot.packages()
    assert {"wireguard-tools", "iptables", "iproute2", "python3-jinja2"} <= set(chroot.state["packages"])


def test_install_bridge(chroot):
    install(chroot, "bridge")
    status = chroot.check("dpkg-query -W -f='${Status}' cgnat-bridge").stdout
    assert status == "install ok installed"
    # Compiled at install time (py3compile), not shipped.
    assert list(chroot.path("/usr/lib/cgnat-bridge/vendor/textual").glob("__pycache__/*.pyc"))


def test_version(chroot, version):
    out = chroot.check("cgnat-setup --version", net=False).stdout
    assert out.strip() == f"cgnat-setup {version}"


def test_answers_written_under_root(chroot):
    file = answers(chroot, "bridge")
    done = chroot.check(f"cgnat-setup --answers {file} --root /tmp/x", net=False)
    root = chroot.path("/tmp/x")
    conf = root / "etc/wireguard/wg0.conf"
    assert conf.stat().st_mode & 0o777 == 0o600
    assert "PostUp = /usr/lib/cgnat-bridge/hooks/up %i" in conf.read_text()
    assert (root / "etc/cgnat/answers.toml").is_file()
    manifest = (root / "var/lib/cgnat/manifest").read_text().split()
    assert "/etc/wireguard/wg0.conf" in manifest and "/etc/cgnat/answers.toml" in manifest
    assert "cgnat3-" in done.stdout + done.stderr  # the pairing token
    # The unattended path does not import Textual (design: only the wizard does).
    code = (LAUNCHER_PATH.format(role="bridge") + "; from installer.cli import main; "
            f"rc = main(['--answers', '{file}', '--root', '/tmp/x2']); "
            "print(rc, sorted(m for m in sys.modules if m.startswith('textual')))")
    out = chroot.check(f'python3 -I -B -c "{code}"', net=False).stdout
    assert out.strip().splitlines()[-1] == "0 []"
    # --root started nothing and wrote nothing outside DIR.
    assert not chroot.path("/etc/cgnat").exists() and not chroot.path("/etc/wireguard/wg0.conf").exists()


def test_wizard_imports_from_the_package(chroot):
    code = LAUNCHER_PATH.format(role="bridge") + "; import textual, installer.tui; print(textual.__file__)"
    out = chroot.check(f'python3 -I -B -c "{code}"', net=False).stdout
    assert out.strip().startswith("/usr/lib/cgnat-bridge/vendor/textual/")
    # The watchdog launcher's target, without Textual and without running it.
    code = (LAUNCHER_PATH.format(role="bridge") + "; import cgnat_bridge.watchdog as w, sys; "
            "assert callable(w.main); print(sorted(m for m in sys.modules if m.startswith('textual')))")
    out = chroot.check(f'python3 -I -B -c "{code}"', net=False).stdout
    assert out.strip() == "[]"


def test_conflicts(chroot):
    """dpkg refuses the other role on a bridge; apt cannot install both at once."""
    done = chroot.sh(f"dpkg -i {chroot.debs['homelab']}", net=False)
    assert done.returncode != 0
    assert "conflict" in (done.stdout + done.stderr).lower()
    assert chroot.packages() >= {"cgnat-bridge"} and "cgnat-homelab" not in chroot.packages()


def test_remove_then_purge_leaves_nothing(chroot):
    """Set up for real (files in /etc, no services: --root /), remove, purge."""
    file = answers(chroot, "bridge")
    chroot.check(f"cgnat-setup --answers {file} --root /", net=False)
    written = [line.split()[0] for line in chroot.path("/var/lib/cgnat/manifest").read_text().splitlines()]
    assert "/etc/wireguard/wg0.conf" in written and "/etc/ssh/sshd_config.d/cgnat-bridge.conf" in written
    # An upgrade (here: a reinstall, postinst gets the old version) keeps the
    # configuration and does not replay the answers.
    before = {path: chroot.path(path).read_bytes() for path in written}
    done = chroot.check(f"{APT} install --reinstall {chroot.debs['bridge']}", net=False)
    assert "preseeded" not in done.stdout + done.stderr
    assert {path: chroot.path(path).read_bytes() for path in written} == before
    done = chroot.check(f"{APT} remove cgnat-bridge", net=False)
    removed = done.stdout + done.stderr
    assert "cgnat-setup" not in chroot.check("ls /usr/sbin").stdout
    for path in written:  # remove keeps configuration and keys
        assert chroot.path(path).exists(), path
    # Only files under /etc and /var/lib/cgnat are ever deleted by the purge.
    chroot.path("/etc/keep-me").write_text("not ours\n")
    with chroot.path("/var/lib/cgnat/manifest").open("a") as manifest:
        manifest.write("/usr/bin/env\n/etc/../usr/bin/env\n/etc/./keep-me\nrelative/path\n/etc/cgnat\n")
    done = chroot.check(f"{APT} purge cgnat-bridge", net=False)
    assert chroot.path("/usr/bin/env").is_file() and chroot.path("/etc/keep-me").is_file()
    chroot.path("/etc/keep-me").unlink()
    for path in written:
        assert not chroot.path(path).exists(), f"{path} survived the purge"
    assert not chroot.path("/etc/cgnat").exists() and not chroot.path("/var/lib/cgnat").exists()
    assert chroot.packages() == chroot.state["packages"]
    assert_same_tree(chroot)
    # prerm ran cgnat-setup teardown, which succeeds without systemd (a chroot).
    assert "cgnat-setup teardown failed" not in removed, removed


def test_apt_cannot_install_both(chroot):
    done = chroot.sh(f"{APT} install {chroot.debs['bridge']} {chroot.debs['homelab']}", net=False)
    assert done.returncode != 0
    assert chroot.packages() == chroot.state["packages"]


def test_preseed_failure_leaves_package_installed(chroot):
    """An invalid preseeded answers file: the postinst says so and still succeeds."""
    chroot.path("/etc/cgnat").mkdir()
    chroot.path("/etc/cgnat/answers.toml").write_text('role = "bridge"\nno_such_key = 1\n')
    done = chroot.check(f"{APT} install {chroot.debs['bridge']}", net=False)
    out = done.stdout + done.stderr
    assert "no_such_key" in out
    assert "installed but not configured" in out
    assert "cgnat-bridge" in chroot.packages()
    chroot.check(f"{APT} purge cgnat-bridge", net=False)
    # The admin's own file is not ours to delete (it is not in a manifest).
    assert chroot.path("/etc/cgnat/answers.toml").exists()
    chroot.path("/etc/cgnat/answers.toml").unlink()
    chroot.path("/etc/cgnat").rmdir()
    assert_same_tree(chroot)


def test_preseed_runs_setup_and_never_fails_the_install(chroot):
    """A valid preseeded answers file is applied by the postinst. Without systemd running
    (this chroot) it starts nothing: --no-start writes the files; a purge leaves nothing."""
    file = answers(chroot, "bridge")
    chroot.path("/etc/cgnat").mkdir()
    chroot.path("/etc/cgnat/answers.toml").write_text(chroot.path(file).read_text())
    done = chroot.check(f"{APT} install {chroot.debs['bridge']}", net=False)
    out = done.stdout + done.stderr
    assert "cgnat-setup --answers /etc/cgnat/answers.toml --no-start (preseeded; services may not start now)" in out
    assert "write /etc/wireguard/wg0.conf" in out and "bridge configured" in out, out
    assert "installed but not configured" not in out and "restart" not in out, out
    assert "cgnat-bridge" in chroot.packages()
    chroot.check(f"{APT} purge cgnat-bridge", net=False)
    assert_same_tree(chroot)


def test_homelab_life_cycle(chroot, version):
    install(chroot, "homelab")
    assert chroot.check("cgnat-setup --version", net=False).stdout.strip() == f"cgnat-setup {version}"
    file = answers(chroot, "homelab")
    chroot.check(f"cgnat-setup --answers {file} --root /", net=False)
    conf = chroot.path("/etc/wireguard/wg0.conf").read_text()
    assert "PostUp = /usr/lib/cgnat-homelab/hooks/up %i" in conf
    saved = chroot.path("/etc/cgnat/answers.toml").read_text()
    assert re.search(r'^endpoint = "203\.0\.113\.7:51820"$', saved, re.M)
    # A second bridge: its token adds a tunnel of its own; purge removes both.
    chroot.check(f"cgnat-setup --pair {SECOND_BRIDGE} --root /", net=False)
    assert chroot.path("/etc/wireguard/wg1.conf").stat().st_mode & 0o777 == 0o600
    assert "CGNAT_TABLE=201" in chroot.path("/etc/cgnat/wg1.env").read_text()
    assert chroot.path("/etc/cgnat/answers.toml").read_text() == saved
    chroot.check(f"{APT} purge cgnat-homelab", net=False)
    assert not chroot.path("/etc/wireguard/wg0.conf").exists()
    assert not chroot.path("/etc/cgnat/tunnels").exists()
    assert_same_tree(chroot)


def test_reinstall_after_purge(chroot, version):
    install(chroot, "bridge")
    assert chroot.check("cgnat-setup --version", net=False).stdout.strip() == f"cgnat-setup {version}"
    chroot.check(f"{APT} purge cgnat-bridge", net=False)
    assert_same_tree(chroot)


def assert_same_tree(chroot) -> None:
    now = chroot.snapshot()
    baseline = chroot.state["baseline"]
    assert sorted(now - baseline) == [], "left behind"
    assert sorted(baseline - now) == [], "deleted"


def test_purge_never_deletes_through_a_symlinked_etc_cgnat(chroot):
    """An admin who moved /etc/cgnat elsewhere and left a symlink: purge finishes, deletes
    nothing through the symlink, and leaves the symlink (the admin's) in place."""
    install(chroot, "bridge")
    chroot.check(f"cgnat-setup --answers {answers(chroot, 'bridge')} --root /", net=False)
    chroot.check("mv /etc/cgnat /root/cgnat-moved && ln -s /root/cgnat-moved /etc/cgnat")
    kept = sorted(p.name for p in chroot.path("/root/cgnat-moved").iterdir())
    assert "wg0.env" in kept
    chroot.check(f"{APT} purge cgnat-bridge", net=False)
    assert sorted(p.name for p in chroot.path("/root/cgnat-moved").iterdir()) == kept
    assert chroot.path("/etc/cgnat").is_symlink() and not chroot.path("/etc/wireguard/wg0.conf").exists()
    chroot.check("rm /etc/cgnat && rm -r /root/cgnat-moved")
    assert_same_tree(chroot)


FAKE_SYSTEMD = "/tmp/fake-systemd"


def test_upgrade_restarts_the_tunnel_named_in_any_toml_form(chroot):
    """The postinst of an upgrade restarts wg-quick@IFACE of each tunnel setup recorded, also
    when the answers spell the interface as a TOML literal string (sed read it as wg0)."""
    install(chroot, "bridge")
    text = chroot.path(answers(chroot, "bridge")).read_text()
    chroot.path("/etc/cgnat").mkdir()
    chroot.path("/etc/cgnat/answers.toml").write_text(text.replace('interface = "wg0"', "interface = 'wg1'"))
    chroot.check("cgnat-setup --answers /etc/cgnat/answers.toml --root /", net=False)
    fake = chroot.path(FAKE_SYSTEMD)
    fake.mkdir()
    for tool in ("deb-systemd-invoke", "deb-systemd-helper", "systemctl"):
        (fake / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> {FAKE_SYSTEMD}/calls\n')
        (fake / tool).chmod(0o755)
    made_run = not chroot.path("/run/systemd/system").exists()
    chroot.path("/run/systemd/system").mkdir(parents=True, exist_ok=True)   # "systemd runs"
    try:
        chroot.check(f"PATH={FAKE_SYSTEMD}:$PATH sh /var/lib/dpkg/info/cgnat-bridge.postinst "
                     f"configure 0.0.1", net=False)
        calls = (fake / "calls").read_text()
    finally:
        if made_run:
            chroot.check("rm -r /run/systemd/system")
        chroot.check(f"rm -r {FAKE_SYSTEMD}")
    assert "deb-systemd-invoke try-restart wg-quick@wg1.service" in calls, calls
    assert "wg-quick@wg0" not in calls
    chroot.check(f"{APT} purge cgnat-bridge", net=False)
    assert_same_tree(chroot)


# The last steps install systemd (not running: this is a chroot) where the suite's minbase
# lacks it, so that `systemctl enable` works as in an image build; the baseline follows.
POLICY_LOG = "/tmp/policy-rc.d.calls"
WANTS = "/etc/systemd/system/multi-user.target.wants"


def enabled(chroot) -> set[str]:
    wants = chroot.path(WANTS)
    return {p.name for p in wants.iterdir() if p.name.startswith(("wg-quick@", "cgnat-"))} if wants.is_dir() else set()


def test_preseed_where_policy_forbids_starts_writes_and_enables_and_starts_nothing(chroot):
    """An image build: systemd installed, /run/systemd/system present, and a policy-rc.d that
    exits 101 (Debian policy: no service may start). The postinst asks policy-rc.d, then runs
    cgnat-setup --no-start: files written, both units enabled, and of the commands setup runs
    (each echoed as "[#] ..." before it runs) none starts, restarts or reloads anything."""
    chroot.check(f"{APT} install systemd")
    chroot.state["baseline"] = chroot.snapshot()
    chroot.state["packages"] = chroot.packages()
    policy = chroot.path("/usr/sbin/policy-rc.d")
    forbid = policy.read_text()
    policy.write_text(f'#!/bin/sh\necho "$*" >> {POLICY_LOG}\nexit 101\n')
    chroot.path("/run/systemd/system").mkdir(parents=True, exist_ok=True)   # "systemd runs"
    try:
        chroot.path("/etc/cgnat").mkdir()
        chroot.path("/etc/cgnat/answers.toml").write_text(chroot.path(answers(chroot, "bridge")).read_text())
        done = chroot.check(f"{APT} install {chroot.debs['bridge']}", net=False)
        out = done.stdout + done.stderr
        policy_calls = chroot.path(POLICY_LOG).read_text().splitlines()
    finally:
        policy.write_text(forbid)
        chroot.check(f"rm -rf /run/systemd/system {POLICY_LOG}")
    assert "cgnat-watchdog.service start" in policy_calls, policy_calls
    assert "--no-start (preseeded; services may not start now)" in out, out
    assert "bridge configured" in out and "Nothing was started (--no-start)" in out, out
    for path in ("/etc/wireguard/wg0.conf", "/etc/cgnat/wg0.rules", "/etc/ssh/sshd_config.d/cgnat-bridge.conf"):
        assert chroot.path(path).is_file(), path
    assert enabled(chroot) == {"wg-quick@wg0.service", "cgnat-watchdog.service"}
    ran = [line for line in out.splitlines() if line.startswith("[#] ") and not line.startswith("[#] write ")]
    assert ran == ["[#] env SYSTEMD_OFFLINE=1 systemctl enable wg-quick@wg0",
                   "[#] env SYSTEMD_OFFLINE=1 systemctl enable cgnat-watchdog.service"], out


def test_remove_then_install_brings_the_tunnel_back(chroot):
    """apt remove stops and disables the tunnel (teardown) and leaves a marker; apt install of
    the same version is no upgrade then: the postinst applies the saved answers again, and the
    units are enabled again (started where services may start: below, with the real scripts)."""
    assert enabled(chroot) == {"wg-quick@wg0.service", "cgnat-watchdog.service"}   # the step above
    chroot.check(f"{APT} remove cgnat-bridge", net=False)
    assert enabled(chroot) == set() and chroot.path("/var/lib/cgnat/removed").exists()
    done = chroot.check(f"{APT} install {chroot.debs['bridge']}", net=False)
    out = done.stdout + done.stderr
    assert "--no-start (installed again after a remove; services may not start now)" in out, out
    assert enabled(chroot) == {"wg-quick@wg0.service", "cgnat-watchdog.service"}
    assert not chroot.path("/var/lib/cgnat/removed").exists()
    # An upgrade (the marker gone) renders again and enables, and never takes the reinstall path.
    done = chroot.check(f"{APT} install --reinstall {chroot.debs['bridge']}", net=False)
    assert "installed again" not in done.stdout + done.stderr
    chroot.check(f"{APT} purge cgnat-bridge", net=False)
    assert enabled(chroot) == set()
    assert_same_tree(chroot)


def test_the_postinst_starts_the_tunnel_again_where_services_may_start(chroot):
    """The real postinst of a reinstall after a remove, where systemd runs and policy-rc.d allows
    (systemctl and deb-systemd-invoke here record their calls): setup enables and restarts the
    tunnel and the watchdog; an upgrade (no marker) only try-restarts the running tunnel."""
    install(chroot, "homelab")
    chroot.path("/etc/cgnat").mkdir()
    chroot.path("/etc/cgnat/answers.toml").write_text(chroot.path(answers(chroot, "homelab")).read_text())
    chroot.check("cgnat-setup --answers /etc/cgnat/answers.toml --root /", net=False)
    fake = chroot.path(FAKE_SYSTEMD)
    fake.mkdir()
    for tool in ("deb-systemd-invoke", "deb-systemd-helper", "systemctl"):
        # No unit is enabled or active: the remove's teardown stopped the tunnel.
        (fake / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> {FAKE_SYSTEMD}/calls\n'
                                 'case $1 in is-active|is-enabled) exit 3 ;; esac\n')
        (fake / tool).chmod(0o755)
    policy = chroot.path("/usr/sbin/policy-rc.d")
    forbid = policy.read_text()
    policy.write_text("#!/bin/sh\nexit 0\n")
    chroot.path("/run/systemd/system").mkdir(parents=True, exist_ok=True)
    postinst = f"PATH={FAKE_SYSTEMD}:$PATH sh /var/lib/dpkg/info/cgnat-homelab.postinst configure {0}"
    try:
        chroot.path("/var/lib/cgnat/removed").write_text("")
        reinstalled = chroot.check(postinst.format("0.1.0"), net=False)
        calls_reinstall = (fake / "calls").read_text().splitlines()
        marker_left = chroot.path("/var/lib/cgnat/removed").exists()
        (fake / "calls").unlink()
        chroot.check(postinst.format("0.1.0"), net=False)
        calls_upgrade = (fake / "calls").read_text().splitlines()
    finally:
        policy.write_text(forbid)
        chroot.check(f"rm -rf /run/systemd/system {FAKE_SYSTEMD}")
    out = reinstalled.stdout + reinstalled.stderr
    assert "cgnat-setup --answers /etc/cgnat/answers.toml (installed again after a remove)" in out, out
    for call in ("systemctl enable wg-quick@wg0", "systemctl restart wg-quick@wg0",
                 "systemctl enable cgnat-watchdog.service", "systemctl restart cgnat-watchdog.service"):
        assert call in calls_reinstall, calls_reinstall
    assert not marker_left
    assert "systemctl restart wg-quick@wg0" not in calls_upgrade, calls_upgrade
    assert "deb-systemd-invoke try-restart wg-quick@wg0.service" in calls_upgrade, calls_upgrade
    assert "systemctl enable wg-quick@wg0" in calls_upgrade   # --no-start: enabled, not started
    chroot.check(f"{APT} purge cgnat-homelab", net=False)
    assert_same_tree(chroot)
