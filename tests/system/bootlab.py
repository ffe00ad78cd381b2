"""The booted two-host lab: the namespace lab's topology (tests/lab/netlab.py), with the
bridge and the homelab each a booted Debian container (systemd as PID 1, systemd-nspawn)
in that node's network namespace, and the packages installed with apt from dist/.

    client 203.0.113.10 -- inet -- bridge [booted Debian] ens3 198.51.100.1
                             \\-- cgnat 192.0.2.2 (MASQUERADE) -- homelab [booted Debian] eth0 100.64.0.2
                                                                  (+ real dockerd, test_system_hosts.py)

The network namespaces are netlab's holder processes (netlab.Node); a container joins one
with --network-namespace-path=/proc/HOLDER/ns/net, so it outlives the container's reboots
and dies with the holder. Each container runs on an overlay of a cached mmdebstrap root
(rootfs.py). Commands inside run with `nsenter -a` on the container's PID 1 and are
refused if they would run in the test runner's network namespace.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

import netlab
import rootfs
from netlab import LabError, wait_for  # noqa: F401

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BRIDGE_NAME = "bridge.example.org"   # the homelab's check_host, in its /etc/hosts
SERVICE_PORT = 80                     # the homelab's own service (lab-peer.service)
SUITES = ("bookworm", "trixie")       # Debian 12 and 13, the suites the booted tests run on
BOOT_TIMEOUT = 240                    # generous: the machine may be busy with other suites

# The homelab's service: answers every connection with the address it sees the client at.
PEER_UNIT = """[Unit]
Description=lab service: tells each client the address it comes from
After=network.target

[Service]
ExecStart=/usr/bin/socat TCP-LISTEN:80,fork,reuseaddr "SYSTEM:echo $$SOCAT_PEERADDR"

[Install]
WantedBy=multi-user.target
"""


class Host(netlab.Shell):
    """A booted Debian container in a lab node's network namespace."""

    timeout = 120
    umask = 0o022

    def __init__(self, node: netlab.Node, suite: str, workdir: Path):
        self.node = node
        self.role = node.name
        self.suite = suite
        self.label = f"{self.role} {suite}"
        self.dir = workdir / self.role
        self.root: Path | None = None
        self.nspawn: subprocess.Popen | None = None
        self.log = self.dir / "console.log"

    # -- life cycle
    def prepare(self) -> None:
        """The root: an overlay of the cached one, with its own name and sshd host keys."""
        self.root = rootfs.overlay(self.suite, self.dir)
        (self.root / "etc/hostname").write_text(f"{self.role}\n")
        hosts = f"127.0.0.1 localhost\n127.0.1.1 {self.role}\n{netlab.BRIDGE_PUBLIC} {BRIDGE_NAME}\n"
        (self.root / "etc/hosts").write_text(hosts)
        # A container shares the test runner's kernel and cannot load modules (trixie's
        # systemd-modules-load then fails now and then and marks the boot "degraded").
        mask = self.root / "etc/systemd/system/systemd-modules-load.service"
        mask.unlink(missing_ok=True)
        mask.symlink_to("/dev/null")
        for key in (self.root / "etc/ssh").glob("ssh_host_*"):
            key.unlink()
        rootfs.run(["ssh-keygen", "-A", "-f", str(self.root)])

    def boot(self) -> None:
        self._spawn()
        self.wait_booted()

    def _spawn(self) -> None:
        env = {**os.environ, "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"}
        argv = ["systemd-nspawn", "-D", str(self.root), "--boot", f"--machine=cgnat-{self.role}-{os.getpid()}",  # unique: runs may overlap
                f"--network-namespace-path=/proc/{self.node.pid}/ns/net", "--register=no",
                "--keep-unit", "--console=passive", "--bind=/dev/net/tun", "--capability=all"]
        with open(self.log, "ab") as out:
            self.nspawn = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                           stderr=subprocess.STDOUT, start_new_session=True)

    def pid1(self) -> int | None:
        """The container's init: a process in this node's network namespace that is PID 1
        of its own PID namespace."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.stat(entry / "ns/net").st_ino != self.node.netns:
                    continue
                status = (entry / "status").read_text()
            except (FileNotFoundError, PermissionError, ProcessLookupError):
                continue
            nspid = re.search(r"^NSpid:\s+(.*)$", status, re.M)
            if nspid and len(nspid.group(1).split()) > 1 and nspid.group(1).split()[-1] == "1":
                return int(entry.name)
        return None

    def wait_booted(self, other_than: int | None = None) -> str:
        """Wait for a (new) PID 1 and for systemd to finish booting; its state."""
        def started():
            if self.nspawn.poll() is not None:
                raise LabError(f"{self.role}: systemd-nspawn exited {self.nspawn.returncode}:\n{self.console()}")
            pid = self.pid1()
            return pid if pid and pid != other_than else None
        wait_for(started, BOOT_TIMEOUT, f"{self.role}'s PID 1", interval=0.2)

        def settled():
            done = self.run("systemctl is-system-running --wait", check=False, timeout=BOOT_TIMEOUT)
            state = done.stdout.strip()
            return state if state in ("running", "degraded") else None
        return wait_for(settled, BOOT_TIMEOUT, f"{self.role} to finish booting", interval=0.5)

    def console(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except FileNotFoundError:
            return ""

    def reboot(self, while_down: Callable[[], None] | None = None) -> None:
        """`systemctl reboot`, and start the container again when systemd-nspawn exits with
        133 (its "reboot requested"), as systemd-nspawn@.service does (RestartForceExitStatus=133);
        `while_down` runs in between, while nothing of the host runs."""
        self.run("systemctl reboot", check=False)
        try:
            code = self.nspawn.wait(BOOT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise LabError(f"{self.role} did not go down within {BOOT_TIMEOUT} s of `systemctl reboot`") from None
        if code != 133:
            raise LabError(f"{self.role}: systemd-nspawn exited {code}, not 133 (reboot):\n{self.console()}")
        if while_down is not None:
            while_down()
        self._spawn()

    def shutdown(self, timeout: float = 90) -> None:
        """Power off; kill what is left after `timeout`. Safe to call twice."""
        if self.nspawn is not None and self.nspawn.poll() is None:
            if self.pid1():
                self.run("systemctl poweroff", check=False, timeout=30)
            try:
                self.nspawn.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.nspawn.pid, signal.SIGKILL)
                self.nspawn.wait(10)
        if self.root is not None:
            rootfs.umount_overlay(self.root)

    # -- commands
    def _argv(self, command: str) -> list[str]:
        pid = self.pid1()
        if pid is None:
            raise LabError(f"{self.role} is not running")
        if self.node.netns in (None, netlab.ROOT_NETNS, netlab.INIT_NETNS):
            raise LabError(f"refusing to run in the root network namespace: {command}")
        return ["nsenter", "-t", str(pid), "-a", "--", "/usr/bin/env", "-i", f"PATH={PATH}",
                "LANG=C.UTF-8", "HOME=/root", "TERM=dumb", "DEBIAN_FRONTEND=noninteractive",
                "/bin/sh", "-c", netlab.ROOT_GUARD + command]

    def run_bounded(self, command: str, bound: float, evidence: str) -> subprocess.CompletedProcess:
        """`command` in the host, given `bound` seconds. Past them, `evidence` runs in the host
        while the command still runs, the command is killed, and LabError carries both outputs."""
        pid_file = "/run/lab-bounded.pid"
        proc = subprocess.Popen(self._argv(f"echo $$ > {pid_file}; exec {command}"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=bound)
            return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        except subprocess.TimeoutExpired:
            seen = self.run(evidence, check=False, timeout=60)
            self.run(f"kill -KILL $(cat {pid_file})", check=False)
            out, err = proc.communicate(timeout=30)
            raise LabError(f"[{self.label}] `{command}` did not end within {bound:g} s\n"
                           f"its output:\n{out}{err}\nwhile it ran:\n{seen.stdout}{seen.stderr}") from None

    def put(self, src: Path, inside: str) -> str:
        """Copy a file of the test runner into the container (through its root)."""
        dest = self.root / inside.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dest)
        return inside

    # -- state
    def unit(self, name: str) -> tuple[str, str]:
        """(is-enabled, is-active) of a unit, as systemctl prints them."""
        enabled = self.run(f"systemctl is-enabled {name}", check=False).stdout.strip() or "missing"
        active = self.run(f"systemctl is-active {name}", check=False).stdout.strip()
        return enabled, active

    def property(self, unit: str, name: str) -> str:
        return self.sh(f"systemctl show -P {name} {unit}").strip()

    def snapshot(self) -> dict:
        """Network state and the file tree of /etc, for before/after comparisons."""
        return {"iptables": netlab.normalize_iptables(self.sh("iptables-save")),
                "rules": self.sh("ip -4 rule show"),
                "routes": self.sh("ip -4 route show table all"),
                "links": sorted(self.sh("ip -o link show | awk -F': ' '{print $2}'").split()),
                "etc": self.sh("find /etc /var/lib/cgnat /usr/lib/cgnat-bridge /usr/lib/cgnat-homelab "
                               "-path /etc/ld.so.cache -prune -o -printf '%p %m %s\\n' 2>/dev/null | sort",
                               check=False)}


class BootLab(netlab.Lab):
    """The topology of netlab.Lab without its Docker-like container, with booted hosts."""

    NODES = ("client", "inet", "cgnat", "bridge", "homelab")

    def __init__(self, debs: dict[str, Path], suite: str):
        super().__init__(debs, homelab_rp_filter=1, log=lambda *a: None)
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"cgnat-sys-{suite}-", dir="/var/tmp"))
        self.suite = suite
        self.nodes = {name: netlab.Node(name) for name in self.NODES}
        self.hosts: dict[str, Host] = {}
        self.tokens: dict[str, str] = {}
        self.public_keys: dict[str, str] = {}

    def close(self) -> None:
        errors = []
        for host in self.hosts.values():
            try:
                host.shutdown()
            except Exception as error:  # keep tearing down the rest
                errors.append(f"{host.role}: {error}")
        for host in self.hosts.values():
            if host.root is not None:
                rootfs.umount_overlay(host.root)
        for node in reversed(list(self.nodes.values())):
            node.stop()   # kills what is left in each namespace, then the holder
        left = rootfs_mounts_below(self.workdir)
        if not left:
            subprocess.run(["rm", "-rf", "--one-file-system", str(self.workdir)])
        else:
            errors.append(f"still mounted, {self.workdir} kept: {left}")
        if errors:
            raise LabError("; ".join(errors))

    def build(self) -> None:
        """netlab's wired topology: no ufw-like rules, no Docker-like container."""
        self.wire()

    def boot(self, roles=("bridge", "homelab")) -> None:
        """The hosts, prepared first, then booted."""
        for role in roles:
            self.hosts[role] = Host(self.nodes[role], self.suite, self.workdir)
            self.hosts[role].prepare()
        for role in roles:
            self.hosts[role].boot()

    def prepare_hosts(self) -> None:
        """What the hosts have before the product: the homelab's service (an enabled unit),
        and the client's key in root's authorized_keys on both (the admin's way in)."""
        self.client_key = self.workdir / "client_key"
        rootfs.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.client_key)])
        public = self.client_key.with_suffix(".pub").read_text()
        for host in self.hosts.values():
            host.write("/root/.ssh/authorized_keys", public, mode=0o600)
        homelab = self.hosts.get("homelab")
        if homelab is not None:
            homelab.write("/etc/systemd/system/lab-peer.service", PEER_UNIT)
            homelab.sh("systemctl daemon-reload; systemctl enable --now lab-peer.service")

    def ssh_hostname(self, port: int) -> str | None:
        """Which host lets the client in on the bridge's address and `port` (its hostname)."""
        done = self.nodes["client"].run(
            f"ssh -i {self.client_key} -p {port} -o BatchMode=yes -o StrictHostKeyChecking=no "
            f"-o UserKnownHostsFile=/dev/null -o ConnectTimeout=10 -o LogLevel=ERROR "
            f"root@{netlab.BRIDGE_PUBLIC} cat /etc/hostname", check=False, timeout=60)
        return done.stdout.strip() if done.returncode == 0 else None

    # -- the product, as a user installs it
    def answers(self, role: str, peer_public_key: str | None = None, private_key_file: str | None = None) -> str:
        """The lab's answers for `role` (the other host's public key and a key file, if given)."""
        keys = ((f'peer_public_key = "{peer_public_key}"\n' if peer_public_key else "")
                + (f'private_key_file = "{private_key_file}"\n' if private_key_file else ""))
        if role == "bridge":
            return (f'role = "bridge"\ninterface = "wg0"\ntunnel = "10.0.0.0/24"\nlisten_port = {netlab.WG_PORT}\n'
                    f'{keys}\n[bridge]\npublic_interface = "ens3"\nssh_port = {netlab.BRIDGE_SSH_PORT}\n'
                    'forward = "all"\n')
        return (f'role = "homelab"\ninterface = "wg0"\ntunnel = "10.0.0.0/24"\n{keys}\n'
                f'[homelab]\nendpoint = "{netlab.BRIDGE_PUBLIC}:{netlab.WG_PORT}"\nkeepalive = 25\n'
                'docker_subnets = ["172.19.0.0/16"]\n\n'
                # restart-tunnel, not reboot: a reboot test must measure one host's reboot only.
                f'[homelab.watchdog]\ncheck_host = "{BRIDGE_NAME}"\naction = "restart-tunnel"\n')

    def apt_install(self, role: str, deb: Path) -> str:
        """`apt-get install ./cgnat-<role>_*.deb` in the host; apt's output."""
        host = self.hosts[role]
        inside = host.put(deb, f"/root/debs/{deb.name}")
        done = host.run(f"apt-get install -y {shlex.quote(inside)} 2>&1", timeout=600)
        return done.stdout

    def note_setup(self, role: str, output: str) -> None:
        """The public key and pairing token cgnat-setup printed."""
        key = re.findall(r"^Public key:\s+(\S+)$", output, re.M)
        token = re.findall(r"^Pairing token:\s+(cgnat[123]-\S+)$", output, re.M)
        if not key or not token:
            raise LabError(f"{role}: cgnat-setup printed no public key / pairing token:\n{output[-3000:]}")
        self.public_keys[role], self.tokens[role] = key[-1], token[-1]

    def install_preseeded(self, debs: dict[str, Path]) -> dict[str, str]:
        """The README's order: bridge (preseeded), homelab (preseeded with the bridge's
        key), then the homelab's token on the bridge. apt's output per role."""
        self.hosts["bridge"].write("/etc/cgnat/answers.toml", self.answers("bridge"))
        out = {"bridge": self.apt_install("bridge", debs["bridge"])}
        self.note_setup("bridge", out["bridge"])
        out["homelab"] = self.install_homelab(debs["homelab"])
        self.pair_bridge()
        return out

    def install_homelab(self, deb: Path) -> str:
        """The homelab, preseeded with the bridge's public key; apt's output."""
        self.hosts["homelab"].write("/etc/cgnat/answers.toml", self.answers("homelab", self.public_keys["bridge"]))
        out = self.apt_install("homelab", deb)
        self.note_setup("homelab", out)
        return out

    def pair_bridge(self) -> None:
        """`cgnat-setup --pair HOMELAB-TOKEN` on the bridge: it learns its peer."""
        self.note_setup("bridge", self.hosts["bridge"].sh(f"cgnat-setup --pair {shlex.quote(self.tokens['homelab'])}"))

    def installed(self, role: str) -> bool:
        return self.hosts[role].run(f"dpkg-query -W -f='${{Status}}' cgnat-{role}", check=False).stdout \
            == "install ok installed"

    # -- the chain, as the client sees it
    def client_sees(self, port: int = SERVICE_PORT, timeout: float = 5) -> str | None:
        """What the homelab's service answers a client connecting to the bridge's address."""
        return self.tcp_ask("client", netlab.BRIDGE_PUBLIC, port, timeout=timeout)

    def wait_serving(self, timeout: float = 120, port: int = SERVICE_PORT) -> float:
        """Seconds until the client reaches the homelab's service with its real address."""
        start = time.monotonic()
        wait_for(lambda: self.client_sees(port, timeout=3) == netlab.CLIENT, timeout,
                 f"the client to reach the homelab's service on port {port} through the bridge",
                 interval=0.2)
        return time.monotonic() - start


def output_once_it_exits_0(host: Host, command: str, what: str, timeout: float = 120) -> str:
    """`command`'s output once it exits 0 in the host (tried every second); its last output in
    the error otherwise."""
    last = {}

    def exits_0():
        last["done"] = host.run(command, check=False)
        return last["done"].returncode == 0
    try:
        wait_for(exits_0, timeout, f"{what} to exit 0 on the {host.role}", interval=1)
    except LabError as error:
        raise LabError(f"{error}\n{last['done'].stdout}{last['done'].stderr}") from None
    return last["done"].stdout


def rootfs_mounts_below(path: Path) -> list[str]:
    prefix = str(path.resolve())
    with open("/proc/self/mountinfo") as info:
        return [line.split()[4] for line in info
                if line.split()[4] == prefix or line.split()[4].startswith(prefix + "/")]


# ---------------------------------------------------------------- real Docker

TRUST_KEY = Path("/etc/docker/key.json")


class Dockerd:
    """Debian's dockerd in a lab node's network namespace (`nsenter --net`, not
    `ip netns exec`, which remounts /sys and hides the cgroups), with its own data root,
    exec root, pid file, socket and daemon.json under the lab's work directory; no default
    bridge. The docker CLI talks to it through that socket."""

    def __init__(self, node: netlab.Node, workdir: Path):
        self.node = node
        self.dir = workdir / "docker"
        self.sock = self.dir / "docker.sock"
        self.proc: subprocess.Popen | None = None

    def start(self, config: dict) -> None:
        """dockerd with `config` as its /etc/docker/daemon.json (its own copy)."""
        if self.node.netns in (None, netlab.ROOT_NETNS, netlab.INIT_NETNS):
            raise LabError("refusing to start dockerd in the root network namespace")
        for sub in ("data", "exec"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        # dockerd 20.10 writes its identity key there and has no option to put it elsewhere.
        self.own_key = not TRUST_KEY.exists()
        (self.dir / "daemon.json").write_text(json.dumps(config))
        argv = ["nsenter", f"--net=/proc/{self.node.pid}/ns/net", "dockerd",
                "--data-root", str(self.dir / "data"), "--exec-root", str(self.dir / "exec"),
                "--pidfile", str(self.dir / "docker.pid"), "-H", f"unix://{self.sock}",
                "--bridge=none", "--config-file", str(self.dir / "daemon.json")]
        with open(self.dir / "dockerd.log", "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

        def answering():
            if self.proc.poll() is not None:
                raise LabError(f"dockerd exited {self.proc.returncode}: {self.log()}")
            return self.docker("version", check=False).returncode == 0
        wait_for(answering, 120, "dockerd to answer", interval=0.3)
        if os.stat(f"/proc/{self.proc.pid}/ns/net").st_ino != self.node.netns:
            raise LabError("dockerd is not in the homelab's network namespace")

    def log(self) -> str:
        try:
            return (self.dir / "dockerd.log").read_text(errors="replace")[-3000:]
        except FileNotFoundError:
            return ""

    def docker(self, *args: str, check: bool = True, input: bytes | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
        done = subprocess.run(["docker", "-H", f"unix://{self.sock}", *args], capture_output=True,
                              input=input, timeout=timeout)
        if check and done.returncode != 0:
            raise LabError(f"docker {' '.join(args)} exited {done.returncode}: "
                           f"{done.stderr.decode(errors='replace')[-2000:]}")
        return done

    def stop(self) -> None:
        """SIGTERM (dockerd stops its containers and containerd), SIGKILL after 60 s;
        then nothing of it may stay mounted."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # What a killed dockerd leaves (containerd, shims, containers) names our directory.
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and str(self.dir).encode() in (entry / "cmdline").read_bytes():
                    os.kill(int(entry.name), signal.SIGKILL)
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                pass
        for point in reversed(rootfs_mounts_below(self.dir)):
            subprocess.run(["umount", "-l", point], capture_output=True)
        if getattr(self, "own_key", False):
            TRUST_KEY.unlink(missing_ok=True)


# What a container published with -p 8080:80 sees of the client, over IPv4 and IPv6, per
# /etc/docker/daemon.json and whether its network has IPv6 (`docker network create --ipv6`);
# None: the connection fails. Debian 12's docker.io (20.10) takes "ip6tables" only with
# "experimental"; the proxy answers IPv6 clients from the network's IPv4 gateway.
DOCKER_CASES = (
    ({"userland-proxy": True}, False, netlab.CLIENT, "172.19.0.1"),
    ({"userland-proxy": False}, False, netlab.CLIENT, None),
    ({"userland-proxy": True, "experimental": True, "ip6tables": True}, True, netlab.CLIENT, netlab.CLIENT6),
    ({"userland-proxy": False, "experimental": True, "ip6tables": True}, True, netlab.CLIENT, netlab.CLIENT6),
)
CONTAINER_NET6 = "2001:db8:ac13::/64"


def container_sees(lab, bridge_address: str, timeout: float = 5) -> str | None:
    """The client's address as the container's web server saw it (REMOTE_ADDR), through
    the bridge's IPv4 or IPv6 address and the published port; None if that fails."""
    host = f"[{bridge_address}]" if ":" in bridge_address else bridge_address
    done = lab.nodes["client"].run(f"curl -sf --max-time {timeout} http://{host}:{netlab.PUBLISHED_PORT}/cgi-bin/ip",
                                   check=False, timeout=timeout + 10)
    if done.returncode != 0:
        return None
    seen = ipaddress.ip_address(done.stdout.strip().strip("[]"))   # the server listens on [::]
    return str(getattr(seen, "ipv4_mapped", None) or seen)


def busybox_image_tar(dest: Path) -> Path:
    """A root of the static busybox with a web server whose CGI tells each client the
    address it comes from (REMOTE_ADDR), as a tarball for `docker import`."""
    root = dest / "image"
    (root / "bin").mkdir(parents=True)
    shutil.copy(shutil.which("busybox"), root / "bin/busybox")
    for applet in ("sh", "httpd", "nc", "echo", "printf", "cat", "sleep"):
        (root / "bin" / applet).symlink_to("busybox")
    cgi = root / "www/cgi-bin/ip"
    cgi.parent.mkdir(parents=True)
    cgi.write_text('#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n%s\\n" "$REMOTE_ADDR"\n')
    cgi.chmod(0o755)
    tar = dest / "busybox.tar"
    rootfs.run(["tar", "-C", str(root), "--numeric-owner", "--owner=0", "--group=0", "-cf", str(tar), "."])
    return tar
