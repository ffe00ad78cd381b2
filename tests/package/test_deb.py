"""Static checks of the two built .debs: control fields, file list, modes,
maintainer scripts, lintian, and the systemd units (systemd-analyze verify)."""
from __future__ import annotations

import re
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from debian.debfile import DebFile
from debian.deb822 import PkgRelation

from built_packages import ROLES
from debchroot import REPO

OTHER = {"bridge": "homelab", "homelab": "bridge"}
REQUIRED_DEPENDS = {"wireguard-tools", "iptables", "iproute2", "procps", "python3", "python3-jinja2"}


def control(deb: Path):
    return DebFile(str(deb)).debcontrol()


def members(deb: Path) -> dict[str, tarfile.TarInfo]:
    """Paths of data.tar ("/usr/sbin/cgnat-setup") -> TarInfo."""
    with DebFile(str(deb)) as d:
        tar = d.data.tgz()
        return {"/" + m.name.lstrip("./"): m for m in tar.getmembers() if m.name not in (".", "./")}


def relation_names(field: str) -> list[set[str]]:
    return [{alt["name"] for alt in group} for group in PkgRelation.parse_relations(field)]


def vendor_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements-vendor.txt").read_text().splitlines():
        m = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", line)
        if m:
            pins[re.sub(r"[-_.]+", "_", m.group(1)).lower()] = m.group(2)
    return pins


@pytest.mark.parametrize("role", ROLES)
def test_control_fields(debs, version, role):
    c = control(debs[role])
    assert c["Package"] == f"cgnat-{role}"
    assert c["Source"] == "cgnat-tunnel"
    assert c["Version"] == version
    assert c["Architecture"] == "all"
    depends = relation_names(c["Depends"])
    plain = {next(iter(g)) for g in depends if len(g) == 1}
    assert REQUIRED_DEPENDS <= plain, f"missing Depends: {REQUIRED_DEPENDS - plain}"
    # tomllib is 3.11+; Ubuntu 22.04 (3.10) needs python3-tomli.
    assert {"python3", "python3-tomli"} in depends
    assert re.search(r"python3 \(>= 3\.10\)", c["Depends"])
    # One host, one role: both ship /usr/sbin/cgnat-setup.
    assert relation_names(c["Conflicts"]) == [{f"cgnat-{OTHER[role]}"}]
    assert "wireguard-go" in c.get("Suggests", "")
    if role == "bridge":
        assert relation_names(c["Recommends"]) == [{"openssh-server"}]
    assert "conflicts with cgnat-" + OTHER[role] in c["Description"].replace("\n", " ")


@pytest.mark.parametrize("role", ROLES)
def test_file_list_and_modes(debs, role):
    files = members(debs[role])
    lib = f"/usr/lib/cgnat-{role}"
    for info in files.values():
        assert (info.uname, info.gname, info.uid, info.gid) == ("root", "root", 0, 0), info.name
        assert not info.mode & (stat.S_ISUID | stat.S_ISGID | stat.S_IWOTH), info.name
    # Reproducible: every timestamp is clamped to the changelog's (SOURCE_DATE_EPOCH).
    epoch = int(subprocess.run(["dpkg-parsechangelog", "-l", str(REPO / "debian/changelog"), "-S",
                                "Timestamp"], capture_output=True, text=True, check=True).stdout)
    assert max(info.mtime for info in files.values()) <= epoch
    bytecode = [p for p in files if "__pycache__" in p or p.endswith((".pyc", ".pyo"))]
    assert bytecode == []
    for exe in ("/usr/sbin/cgnat-setup", f"{lib}/watchdog", f"{lib}/hooks/up", f"{lib}/hooks/down"):
        assert exe in files, f"{exe} is not in the package"
        assert files[exe].isfile() and stat.S_IMODE(files[exe].mode) == 0o755, exe
    for path in (f"{lib}/python/installer/cli.py", f"{lib}/python/installer/__main__.py",
                 f"{lib}/python/cgnat_{role}/__init__.py", f"{lib}/vendor/textual/__init__.py",
                 f"{lib}/vendor/rich/__init__.py",
                 "/lib/systemd/system/cgnat-watchdog.service",
                 "/usr/share/man/man8/cgnat-setup.8.gz", f"/usr/share/doc/cgnat-{role}/copyright"):
        assert path in files and stat.S_IMODE(files[path].mode) == 0o644, path
    assert any(p.startswith(f"{lib}/python/installer/tui/") for p in files), "the wizard is missing"
    assert not any(p.endswith(".timer") for p in files), "the watchdog is a service, not a timer"
    assert any(p.startswith(f"{lib}/python/cgnat_{role}/templates/") for p in files)
    # Only this role's hooks: the other role's must not make this host look like it.
    other = f"/usr/lib/cgnat-{OTHER[role]}"
    assert not any(p.startswith(other) for p in files)
    assert not any(f"/cgnat_{OTHER[role]}/" in p for p in files), "the other role's code is shipped"
    assert not any("/hooks/" in p for p in files if p.startswith(f"{lib}/python/"))
    # Every other regular file is 0644 (private modules are not scripts).
    executables = {p for p, i in files.items() if i.isfile() and i.mode & 0o111}
    assert executables == {"/usr/sbin/cgnat-setup", f"{lib}/watchdog", f"{lib}/hooks/up",
                           f"{lib}/hooks/down", f"/usr/share/python3/runtime.d/cgnat-{role}.rtupdate"}


@pytest.mark.parametrize("role", ROLES)
def test_readme_is_installed(debs, role):
    """The guide the man page and --help point at, as /usr/share/doc/cgnat-<role>/README.md:
    the repository's README, byte for byte, not compressed."""
    path = f"./usr/share/doc/cgnat-{role}/README.md"
    with DebFile(str(debs[role])) as d:
        tar = d.data.tgz()
        info = tar.getmember(path)
        assert info.isfile() and stat.S_IMODE(info.mode) == 0o644, info.mode
        assert tar.extractfile(info).read() == (REPO / "README.md").read_bytes(), \
            "the packaged README is not this tree's: rebuild with ./build.sh"
    assert f"/usr/share/doc/cgnat-{role}/README.md.gz" not in members(debs[role])


@pytest.mark.parametrize("role", ROLES)
def test_vendored_versions_are_the_pins(debs, role):
    files = members(debs[role])
    vendor = f"/usr/lib/cgnat-{role}/vendor/"
    shipped = {}
    for path in files:
        m = re.fullmatch(re.escape(vendor) + r"([^/]+)-([^/-]+)\.dist-info", path)
        if m:
            shipped[re.sub(r"[-_.]+", "_", m.group(1)).lower()] = m.group(2)
    assert shipped == vendor_pins()
    assert not any(p.startswith(vendor + "bin/") for p in files)


@pytest.mark.parametrize("role", ROLES)
def test_launchers(debs, role):
    with DebFile(str(debs[role])) as d:
        setup = d.data.get_content("usr/sbin/cgnat-setup").decode()
        watchdog = d.data.get_content(f"usr/lib/cgnat-{role}/watchdog").decode()
    for text, module in ((setup, "installer.cli"), (watchdog, f"cgnat_{role}.watchdog")):
        assert text.startswith("#!/usr/bin/python3")
        assert f'"/usr/lib/cgnat-{role}/python", "/usr/lib/cgnat-{role}/vendor"' in text
        assert f"from {module} import main" in text
        assert "sys.dont_write_bytecode = True" in text
        compile(text, module, "exec")


@pytest.mark.parametrize("role", ROLES)
def test_maintainer_scripts(debs, role, tmp_path):
    with DebFile(str(debs[role])) as d:
        scripts = {name: d.control.get_content(name) for name in ("postinst", "prerm", "postrm")}
    for name, body in scripts.items():
        assert body is not None, f"{name} missing"
        text = body.decode()
        assert text.startswith("#!/bin/sh\n") and "\nset -e\n" in text, name
        script = tmp_path / name
        script.write_text(text)
        done = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, f"{name}: {done.stderr}"
        if shutil.which("dash"):
            assert subprocess.run(["dash", "-n", str(script)]).returncode == 0
    assert "cgnat-setup --answers" in scripts["postinst"].decode()
    assert "installed but not configured" in scripts["postinst"].decode()
    assert "py3compile -p cgnat-" + role in scripts["postinst"].decode()
    assert "cgnat-setup teardown" in scripts["prerm"].decode()
    assert "/var/lib/cgnat/manifest" in scripts["postrm"].decode()
    # Nothing of the development versions' timer is left.
    assert "timer" not in b"".join(scripts.values()).decode()
    # The postinst never uses --root / to mean "start nothing": --no-start says it.
    assert "--root" not in scripts["postinst"].decode() and "--no-start" in scripts["postinst"].decode()
    # The service is not enabled by the package (cgnat-setup enables it): the only
    # enable is debhelper's "keep it enabled on upgrade if it was".
    lines = [l.strip() for l in scripts["postinst"].decode().splitlines()
             if l.strip() and not l.strip().startswith("#")]
    enables = [i for i, l in enumerate(lines) if l.startswith("deb-systemd-helper enable")]
    assert enables, "no debhelper systemd snippet in postinst"
    for i in enables:
        assert "was-enabled" in lines[i - 1], lines[i - 1]

def test_lintian_clean(debs):
    """No errors and no warnings; overrides only with a reason (debian/*.lintian-overrides)."""
    if shutil.which("lintian") is None:
        pytest.fail("lintian is missing: ./build.sh test installs it")
    done = subprocess.run(["lintian", "--fail-on", "error,warning", *map(str, debs.values())],
                          capture_output=True, text=True)
    tags = [line for line in done.stdout.splitlines() if re.match(r"^[EW]: ", line)]
    assert tags == [] and done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("role", ROLES)
def test_systemd_units_verify(debs, role, tmp_path):
    """systemd-analyze verify in a root made of the package plus this host's
    systemd units (no systemd as PID 1 here); any message is a failure."""
    if shutil.which("systemd-analyze") is None or not Path("/lib/systemd/system/sysinit.target").exists():
        pytest.fail("systemd is missing: ./build.sh test installs it")
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(debs[role]), str(root)], check=True)
    units = root / "lib/systemd/system"
    ours = [units / "cgnat-watchdog.service"]
    subprocess.run(["cp", "-rn", "/lib/systemd/system/.", str(units)], check=True)
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={root}", *map(str, ours)],
                          capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", done.stdout + done.stderr
    service = ours[0].read_text().splitlines()
    for line in ("Type=notify", f"ExecStart=/usr/lib/cgnat-{role}/watchdog", "WatchdogSec=180s",
                 "Restart=always", "RestartPreventExitStatus=2", "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "WantedBy=multi-user.target"):
        assert line in service, line
    # The sandbox's score as docs/measurements.md gives it (2.2 bridge, 2.0 homelab: "OK"), pinned.
    threshold = {"bridge": 22, "homelab": 20}[role]
    done = subprocess.run(["systemd-analyze", "security", "--offline=true", f"--threshold={threshold}",
                           str(ours[0])], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-400:] + done.stderr


def test_units_verify_would_catch_errors(debs, tmp_path):
    """The verify invocation above does report a broken unit (a typo'd key)."""
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(debs["bridge"]), str(root)], check=True)
    units = root / "lib/systemd/system"
    subprocess.run(["cp", "-rn", "/lib/systemd/system/.", str(units)], check=True)
    service = units / "cgnat-watchdog.service"
    service.write_text(service.read_text().replace("WatchdogSec=", "WatchdogSecs="))
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={root}", str(service)],
                          capture_output=True, text=True)
    assert "Unknown key 'WatchdogSecs'" in done.stderr
