"""Cached Debian root file systems for the booted lab and piuparts (mmdebstrap).

One root directory per suite and package list in .cache/system/, built once with
mmdebstrap (about 40 s); every booted host runs on an overlay of it. The list holds everything the two
packages depend on, so `apt install ./cgnat-<role>_*.deb` inside a lab host needs no
mirror (the lab has no Internet).
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "system"
MIRROR = "http://deb.debian.org/debian"

# A small server: systemd as init, sshd, the packages' dependencies (and wireguard-go,
# since the lab's kernel has no WireGuard module), socat for the lab's test service.
BOOT_PACKAGES = ("systemd", "systemd-sysv", "dbus", "iproute2", "iptables", "procps",
                 "python3", "python3-jinja2", "python3-dnspython", "wireguard-tools", "wireguard-go",
                 "openssh-server", "socat", "tmux", "less")


def run(argv, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kw)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(map(str, argv))}` exited {done.returncode}\n"
                           f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def cached_root(suite: str, packages=BOOT_PACKAGES, variant: str = "minbase") -> Path:
    """The cached root directory of `suite` with `packages` (built on first use; concurrent
    callers wait). Read-only by convention: hosts boot an overlay on top of it."""
    key = hashlib.sha256(" ".join([suite, variant, MIRROR, *sorted(packages)]).encode()).hexdigest()[:10]
    path = CACHE / f"{suite}-{variant}-{key}"
    with _locked():
        if not path.exists():
            partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
            argv = ["mmdebstrap", "--quiet", f"--variant={variant}", "--mode=root"]
            if packages:
                argv.append("--include=" + ",".join(packages))
            try:
                run([*argv, suite, str(partial), MIRROR], timeout=1800)
                partial.rename(path)
            finally:
                if partial.exists():
                    run(["rm", "-rf", "--one-file-system", str(partial)])
    return path


def cached_tarball(suite: str, variant: str = "minbase") -> Path:
    """A plain `variant` root of `suite` as a .tar.gz (piuparts' --basetgz)."""
    path = CACHE / f"{suite}-{variant}-base.tar.gz"
    with _locked():
        if not path.exists():
            partial = path.with_name(f".{path.stem}.{os.getpid()}.partial.tar.gz")
            try:
                run(["mmdebstrap", "--quiet", f"--variant={variant}", "--mode=root", suite,
                     str(partial), MIRROR], timeout=1800)
                partial.rename(path)
            finally:
                partial.unlink(missing_ok=True)
    return path


class _locked:
    def __enter__(self):
        CACHE.mkdir(parents=True, exist_ok=True)
        self.file = open(CACHE / ".lock", "w")
        fcntl.flock(self.file, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        self.file.close()


def overlay(suite: str, dest: Path) -> Path:
    """A writable root of `suite` at dest/root: an overlay on the cached root, so a host
    costs no copy. The caller unmounts dest/root (umount_overlay) and removes dest."""
    lower = cached_root(suite)
    for sub in ("upper", "work", "root"):
        (dest / sub).mkdir(parents=True)
    run(["mount", "-t", "overlay", "cgnat-sys-root", "-o",
         f"lowerdir={lower},upperdir={dest / 'upper'},workdir={dest / 'work'}", str(dest / "root")])
    return dest / "root"


def umount_overlay(root: Path) -> None:
    if subprocess.run(["mountpoint", "-q", str(root)]).returncode == 0:
        if subprocess.run(["umount", str(root)], capture_output=True).returncode != 0:
            run(["umount", "-l", str(root)])


if __name__ == "__main__":  # prebuild the caches: python3 tests/system/rootfs.py bookworm trixie
    import sys
    for name in sys.argv[1:]:
        print(cached_root(name), cached_tarball(name))
