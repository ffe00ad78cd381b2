"""A throwaway Debian chroot for the install tests (debootstrap, minbase).

Base tarballs are cached in .cache/debootstrap/ (--make-tarball once, then
--unpack-tarball), downloaded packages in .cache/apt/<suite>/ (bind-mounted on
the chroot's apt archive dir). /proc is mounted; services are forbidden by a
policy-rc.d. close() unmounts everything and deletes the tree only once nothing
is mounted below it any more.

The chroot shares the host's network namespace (apt needs the mirror), so every
command that could touch the network configuration runs with net=False: in a
new, empty network namespace (unshare --net).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache"
MIRROR = "http://deb.debian.org/debian"
VARIANT = "minbase"
ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
    "HOME": "/root",
}
# Paths whose content changes with any apt or dpkg run; left out of the snapshots.
VOLATILE = ("proc", "dev", "run", "tmp", "var/tmp", "var/cache", "var/log",
            "var/lib/apt", "var/lib/dpkg", "etc/ld.so.cache")


def run(argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kw)


def mounts_below(path: Path) -> list[str]:
    prefix = str(path.resolve())
    found = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


class Chroot:
    def __init__(self, suite: str):
        self.suite = suite
        self.dir = Path(tempfile.mkdtemp(prefix=f"cgnat-{suite}-", dir="/var/tmp"))
        self.timings: dict[str, float] = {}
        self._mounted: list[Path] = []

    # -- life cycle -------------------------------------------------------

    def create(self) -> None:
        tarball = CACHE / "debootstrap" / f"{self.suite}-{VARIANT}.tgz"
        tarball.parent.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        if not tarball.exists():
            scratch = Path(tempfile.mkdtemp(prefix="cgnat-debootstrap-", dir="/var/tmp"))
            try:
                partial = tarball.with_name(f".{tarball.name}.{os.getpid()}.partial.tgz")
                self._check(["debootstrap", f"--variant={VARIANT}", f"--make-tarball={partial}",
                             self.suite, str(scratch), MIRROR], "debootstrap --make-tarball")
                partial.rename(tarball)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        self.timings["tarball"] = time.monotonic() - start
        start = time.monotonic()
        self._check(["debootstrap", f"--variant={VARIANT}", f"--unpack-tarball={tarball}",
                     self.suite, str(self.dir), MIRROR], "debootstrap --unpack-tarball")
        self.timings["debootstrap"] = time.monotonic() - start

        self._mount(["mount", "-t", "proc", "proc"], self.dir / "proc")
        archives = CACHE / "apt" / self.suite
        (archives / "partial").mkdir(parents=True, exist_ok=True)
        self._mount(["mount", "--bind", str(archives)], self.dir / "var/cache/apt/archives")

        policy = self.dir / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\n# cgnat-tunnel tests: start no service in this chroot\nexit 101\n")
        policy.chmod(0o755)
        shutil.copy("/etc/resolv.conf", self.dir / "etc/resolv.conf")
        (self.dir / "etc/apt/sources.list").write_text(f"deb {MIRROR} {self.suite} main\n")
        start = time.monotonic()
        self.check("apt-get update -q")
        self.timings["apt-get update"] = time.monotonic() - start

    def close(self) -> None:
        """Unmount (always), then delete the tree if nothing is mounted below it."""
        problems = []
        for point in reversed(self._mounted):
            if run(["umount", str(point)]).returncode != 0:
                run(["umount", "-l", str(point)])
        self._mounted.clear()
        left = mounts_below(self.dir)
        if left:
            problems.append(f"still mounted, tree kept: {left}")
        else:
            run(["rm", "-rf", "--one-file-system", str(self.dir)])
        if problems:
            raise RuntimeError("; ".join(problems))

    def _mount(self, argv, point: Path) -> None:
        point.mkdir(parents=True, exist_ok=True)
        self._check([*argv, str(point)], "mount")
        self._mounted.append(point)

    @staticmethod
    def _check(argv, what) -> None:
        done = run(argv)
        if done.returncode != 0:
            raise RuntimeError(f"{what} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")

    # -- commands ----------------------------------------------------------

    def sh(self, script: str, net: bool = True) -> subprocess.CompletedProcess:
        """Run a shell script inside the chroot; net=False: in an empty netns."""
        argv = ["chroot", str(self.dir), "env", "-i", *(f"{k}={v}" for k, v in ENV.items()),
                "sh", "-c", script]
        if not net:
            argv = ["unshare", "--net", *argv]
        return run(argv)

    def check(self, script: str, net: bool = True) -> subprocess.CompletedProcess:
        done = self.sh(script, net=net)
        assert done.returncode == 0, (
            f"[{self.suite}] `{script}` exited {done.returncode}\n"
            f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}")
        return done

    def path(self, inside: str) -> Path:
        return self.dir / inside.lstrip("/")

    def put(self, src: Path, inside: str) -> str:
        dest = self.path(inside)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dest)
        return inside

    def packages(self) -> set[str]:
        out = self.check("dpkg-query -W -f='${db:Status-Abbrev} ${Package}\\n'").stdout
        return {line.split()[1] for line in out.splitlines() if line.startswith("ii")}

    def snapshot(self) -> set[str]:
        """Every path in the chroot (with type and mode), minus volatile ones."""
        root = str(self.dir)
        entries = set()
        for dirpath, dirnames, filenames in os.walk(root):
            rel = os.path.relpath(dirpath, root)
            rel = "" if rel == "." else rel
            dirnames[:] = [d for d in dirnames if os.path.join(rel, d) not in VOLATILE]
            for name in dirnames + filenames:
                if os.path.join(rel, name) in VOLATILE:
                    continue
                full = os.path.join(dirpath, name)
                st = os.lstat(full)
                entries.add(f"/{os.path.join(rel, name)} {oct(st.st_mode)}")
        return entries
