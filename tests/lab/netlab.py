"""A network lab of Linux namespaces for the cgnat-tunnel packages (DESIGN.md section 7).

    client 203.0.113.10 -- inet -- bridge ens3 198.51.100.1
                             \\-- cgnat 192.0.2.2 (MASQUERADE, drops unsolicited) -- homelab 100.64.0.2
                                                                  \\-- br0 -- ctr 172.19.0.4 (Docker-like DNAT)

Each node is one long-lived holder process (`unshare --net --mount`) with a private
network namespace and a private mount namespace: tmpfs on /run (so /run/wireguard and
/run/sshd are its own), overlays on /etc, /usr and /var/lib (so /etc/wireguard,
/etc/cgnat, /etc/ssh, /var/lib/cgnat are its own), and the package's files from the
built .deb bind-mounted at /usr/lib/cgnat-<role>/ and /usr/sbin/cgnat-setup.
Every command runs through `nsenter -t PID -n -m` and is refused, twice over (here and in
the shell it runs in), if it would run in the network namespace of the test runner:
nothing here may change the host's routes, rules, sysctls or firewall.

Only documentation and CGNAT addresses are used. The lab is used by the pytest suite in
this folder, by demo.py and by bench/bench.py.
"""
from __future__ import annotations

import glob
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

REPO = Path(__file__).resolve().parents[2]
LAB_DIR = Path(__file__).resolve().parent
PINGER = LAB_DIR / "pinger.py"
UDP_PEER = LAB_DIR / "udp_peer.py"

ROOT_NETNS = os.stat("/proc/self/ns/net").st_ino
try:
    INIT_NETNS = os.stat("/proc/1/ns/net").st_ino
except PermissionError:  # in some sandboxes pid 1 is out of reach; ours is what matters
    INIT_NETNS = ROOT_NETNS

# Addresses (RFC 5737 documentation ranges, RFC 6598 shared space, the tunnel's 10.0.0.0/24).
CLIENT = "203.0.113.10"
BRIDGE_PUBLIC = "198.51.100.1"
CGNAT_PUBLIC = "192.0.2.2"
HOMELAB_LAN = "100.64.0.2"
CONTAINER = "172.19.0.4"
BRIDGE_TUNNEL = "10.0.0.1"
HOMELAB_TUNNEL = "10.0.0.2"
# IPv6 (RFC 3849 documentation prefix; the tunnel's ULA is cgnat-setup's default tunnel6).
CLIENT6 = "2001:db8:c::10"
BRIDGE_PUBLIC6 = "2001:db8:b::1"
INET_BRIDGE_SIDE6 = "2001:db8:b::254"
HOMELAB_LAN6 = "2001:db8:64::2"      # only with Lab(homelab_ipv6=True): native IPv6 at home
BRIDGE_TUNNEL6 = "fd63:676e:6174::1"
HOMELAB_TUNNEL6 = "fd63:676e:6174::2"
WG_PORT = 51820
BRIDGE_SSH_PORT = 2222
PUBLISHED_PORT = 8080   # the homelab publishes the container's port 80 here, like `docker run -p`

# The network namespace of every node this process made, to check none outlives its lab.
CREATED_NETNS: set[int] = set()

NODES = ("client", "inet", "bridge", "cgnat", "homelab", "ctr")


class LabError(AssertionError):
    """A lab step failed (an AssertionError, so pytest shows it as a failure, loudly)."""


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll `predicate` until it returns something truthy; LabError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------- packages

def stage_packages(dest: Path) -> dict[str, Path]:
    """Unpack dist/cgnat-<role>_*.deb into dest/<role>; fails loudly if one is missing.

    CGNAT_LAB_FROM_TREE=1 (for hacking without rebuilding) replaces the packaged hooks
    and Python packages with the working tree's; never set it for a real run.
    """
    staged = {}
    dist = Path(os.environ.get("CGNAT_LAB_DIST", REPO / "dist"))
    for role in ("bridge", "homelab"):
        debs = sorted(glob.glob(str(dist / f"cgnat-{role}_*_all.deb")), key=os.path.getmtime)
        if not debs:
            raise LabError(f"no {dist}/cgnat-{role}_*_all.deb: run ./build.sh first (the lab installs the built packages)")
        target = dest / role
        target.mkdir(parents=True)
        subprocess.run(["dpkg-deb", "-x", debs[-1], str(target)], check=True)
        for needed in (f"usr/lib/cgnat-{role}/hooks/up", f"usr/lib/cgnat-{role}/hooks/down",
                       f"usr/lib/cgnat-{role}/hooks/lib.sh", "usr/sbin/cgnat-setup"):
            if not (target / needed).exists():
                raise LabError(f"{debs[-1]} has no /{needed}")
        if os.environ.get("CGNAT_LAB_FROM_TREE") == "1":
            lib = target / f"usr/lib/cgnat-{role}"
            for hook in ("up", "down"):
                shutil.copy(REPO / f"cgnat_{role}" / "hooks" / hook, lib / "hooks" / hook)
            shutil.copy(REPO / "installer" / "hooks" / "lib.sh", lib / "hooks" / "lib.sh")
            for package in ("installer", "cgnat_bridge", "cgnat_homelab"):
                shutil.rmtree(lib / "python" / package, ignore_errors=True)
                shutil.copytree(REPO / package, lib / "python" / package,
                                ignore=shutil.ignore_patterns("__pycache__", "hooks"))
        staged[role] = target
    return staged


# ---------------------------------------------------------------- nodes

# Prepended to every command: the shell itself refuses to run in the test runner's namespace.
ROOT_GUARD = (f'[ "$(stat -L -c %i /proc/self/ns/net)" != {ROOT_NETNS} ] || '
              '{ echo "lab guard: refusing to run in the root network namespace" >&2; exit 99; }\n')


class Shell:
    """A lab machine that runs shell commands: run/sh/ok/write over the subclass's
    `_argv(command)` (how a command enters the machine's namespaces) and `label` (its
    name in errors); `timeout` is the default of run and ok, `umask` that of the
    directories write makes."""

    label = "?"
    timeout: float = 60
    umask = 0o077

    def _argv(self, command: str) -> list[str]:
        raise NotImplementedError

    def run(self, command: str, check: bool = True, timeout: float | None = None, input: str | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
        """Run a shell command in the machine; raise LabError on failure when check."""
        done = subprocess.run(self._argv(command), capture_output=True, text=True,
                              timeout=self.timeout if timeout is None else timeout,
                              input=input, env={**os.environ, **(env or {})})
        if check and done.returncode != 0:
            raise LabError(f"[{self.label}] `{command.strip()}` exited {done.returncode}\n"
                           f"stdout: {done.stdout.strip()[-3000:]}\nstderr: {done.stderr.strip()[-3000:]}")
        return done

    def sh(self, command: str, **kw) -> str:
        return self.run(command, **kw).stdout

    def ok(self, command: str, timeout: float | None = None) -> bool:
        return self.run(command, check=False, timeout=timeout).returncode == 0

    def write(self, path: str, content: str, mode: int = 0o644) -> None:
        self.run(f"umask {self.umask:03o}; mkdir -p {shlex.quote(os.path.dirname(path))}; "
                 f"cat > {shlex.quote(path)}; chmod {mode:o} {shlex.quote(path)}", input=content)


class Node(Shell):
    """One namespace-isolated host of the lab."""

    def __init__(self, name: str):
        self.name = self.label = name
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self.spawned: list[subprocess.Popen] = []
        self.netns: int | None = None

    # -- life cycle
    def start(self, rp_filter: int) -> None:
        self.proc = subprocess.Popen(
            ["unshare", "--net", "--mount", "--propagation", "private", "--", "sleep", "infinity"],
            stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        wait_for(self._isolated, 5, f"{self.name}'s namespaces")
        self.netns = os.stat(f"/proc/{self.pid}/ns/net").st_ino
        CREATED_NETNS.add(self.netns)
        self.sh("""
            set -e
            mount -t tmpfs -o mode=0755 lab-run /run
            mkdir -p /run/wireguard /run/sshd /run/lab
            for d in etc usr var/lib; do
                mkdir -p /run/lab/ovl/$d/upper /run/lab/ovl/$d/work
                mount -t overlay lab-ovl -o lowerdir=/$d,upperdir=/run/lab/ovl/$d/upper,workdir=/run/lab/ovl/$d/work /$d
            done
            mkdir -p /etc/wireguard /etc/cgnat /var/lib/cgnat
            mount -t tmpfs -o mode=0700 lab-wireguard /etc/wireguard
            mount -t tmpfs -o mode=0755 lab-cgnat /etc/cgnat
            mount -t tmpfs -o mode=0755 lab-varlib /var/lib/cgnat
            rm -f /etc/ssh/ssh_host_* /etc/ssh/sshd_config.d/cgnat-bridge.conf
            echo %s > /run/lab/whoami
            ip link set lo up
        """ % self.name)
        # New namespaces copy some of the host's sysctls: set the ones that matter.
        self.sysctl(**{"net.ipv4.conf.all.rp_filter": rp_filter,
                       "net.ipv4.conf.default.rp_filter": rp_filter,
                       "net.ipv4.conf.lo.rp_filter": rp_filter,
                       "net.ipv4.tcp_mtu_probing": 0,
                       # IPv6 on (the tunnel carries it), but quiet and deterministic:
                       # no router advertisements taken, no duplicate address detection
                       # delaying an address, no forwarding unless a node routes.
                       "net.ipv6.conf.all.disable_ipv6": 0,
                       "net.ipv6.conf.default.disable_ipv6": 0,
                       "net.ipv6.conf.all.accept_ra": 0,
                       "net.ipv6.conf.default.accept_ra": 0,
                       "net.ipv6.conf.all.accept_dad": 0,
                       "net.ipv6.conf.default.accept_dad": 0,
                       "net.ipv6.conf.all.forwarding": 0,
                       "net.ipv4.ip_forward": 0})

    def _isolated(self) -> bool:
        try:
            net = os.stat(f"/proc/{self.pid}/ns/net").st_ino
            mnt = os.stat(f"/proc/{self.pid}/ns/mnt").st_ino
            comm = Path(f"/proc/{self.pid}/comm").read_text().strip()
        except FileNotFoundError:
            raise LabError(f"holder of {self.name} died (unshare failed?)") from None
        return comm == "sleep" and net not in (ROOT_NETNS, INIT_NETNS) and mnt != os.stat("/proc/self/ns/mnt").st_ino

    def processes(self) -> list[int]:
        """Every process living in this node's network namespace (all started by the lab)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != self.pid:
                try:
                    if os.stat(entry / "ns/net").st_ino == self.netns:
                        found.append(int(entry.name))
                except (FileNotFoundError, PermissionError, ProcessLookupError):
                    pass
        return found

    def stop(self) -> None:
        for proc in self.spawned:
            if proc.poll() is None:
                proc.kill()
        for proc in self.spawned:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self.netns is not None:
            # Daemons that detached (wireguard-go) are found by their namespace.
            for pid in self.processes():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    # -- commands
    def _argv(self, command: str) -> list[str]:
        if self.pid is None or self.netns in (None, ROOT_NETNS, INIT_NETNS):
            raise LabError(f"refusing to run in the root network namespace: {command}")
        if os.stat(f"/proc/{self.pid}/ns/net").st_ino != self.netns:
            raise LabError(f"{self.name}'s holder {self.pid} is gone")
        return ["nsenter", "-t", str(self.pid), "-n", "-m", "--", "sh", "-c", ROOT_GUARD + command]

    def spawn(self, command: str, log: Path | None = None) -> subprocess.Popen:
        """A long-running process in the node (a server); killed at teardown."""
        out = open(log, "ab") if log else subprocess.DEVNULL
        proc = subprocess.Popen(self._argv("exec " + command), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out if log else subprocess.DEVNULL,
                                start_new_session=True)
        self.spawned.append(proc)
        return proc

    def read(self, path: str) -> str:
        return self.sh(f"cat {shlex.quote(path)}")

    def sysctl(self, **values) -> None:
        self.sh("".join(f"sysctl -q -w {k}={v}\n" for k, v in values.items()))

    def listening(self, proto: str, port: int) -> bool:
        flag = "-Hltn" if proto == "tcp" else "-Hlun"
        return any(line.split()[3].rsplit(":", 1)[1] == str(port)
                   for line in self.sh(f"ss {flag}").splitlines() if line.strip())

    def wait_listening(self, proto: str, port: int, timeout: float = 10) -> None:
        wait_for(lambda: self.listening(proto, port), timeout, f"{proto}/{port} listening on {self.name}")

    # -- state, for before/after comparisons
    def ruleset(self) -> dict:
        return normalize_iptables(self.sh("iptables-save"))

    def ip_rules(self, family: str = "-4") -> list:
        return json.loads(self.sh(f"ip {family} -j rule show"))

    def routes(self, family: str = "-4") -> list:
        return json.loads(self.sh(f"ip {family} -j route show table all"))

    def snapshot(self) -> dict:
        return {"iptables": self.ruleset(), "rules": self.ip_rules(), "routes": self.routes()}

    def snapshot6(self) -> dict:
        """The IPv6 twin of snapshot(); routes without the kernel's changing metrics, and
        without the subnet-router anycast routes the kernel adds while the host forwards
        IPv6 (net.ipv6.conf.all.forwarding, which the bridge's down leaves on, as ip_forward)."""
        routes = [{k: v for k, v in r.items() if k not in ("expires", "metrics")}
                  for r in self.routes("-6") if r.get("type") != "anycast"]
        return {"ip6tables": normalize_iptables(self.sh("ip6tables-save")),
                "rules": self.ip_rules("-6"), "routes": routes}


def normalize_iptables(save: str) -> dict:
    """iptables-save as {table: (sorted chain declarations, rules in order)}, without
    comments and counters, and without the empty tables iptables-nft leaves after a flush
    (only builtin chains, policy ACCEPT, no rules)."""
    tables: dict = {}
    current = None
    for line in save.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line == "COMMIT":
            continue
        if line.startswith("*"):
            current = tables.setdefault(line[1:], ([], []))
        elif line.startswith(":"):
            name, policy = line[1:].split()[:2]
            current[0].append((name, policy))
        else:
            current[1].append(re.sub(r"^\[\d+:\d+\] ", "", line))
    result = {}
    for name, (chains, rules) in tables.items():
        if rules or any(policy not in ("ACCEPT",) for _, policy in chains):
            result[name] = (sorted(chains), rules)
    return result


# ---------------------------------------------------------------- root namespace check

def root_netns_state() -> dict:
    """Read-only view of the test runner's network namespace (scenario 9)."""

    def run(*argv):
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    addrs = json.loads(run("ip", "-j", "addr"))
    for link in addrs:
        for addr in link.get("addr_info", []):
            addr.pop("valid_life_time", None)
            addr.pop("preferred_life_time", None)
    return {
        "addr": addrs,
        "route": json.loads(run("ip", "-j", "route", "show", "table", "all")),
        "rule": json.loads(run("ip", "-j", "rule", "show")),
        "iptables": normalize_iptables(run("iptables-save")),
        "ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text(),
        "rp_filter": Path("/proc/sys/net/ipv4/conf/all/rp_filter").read_text(),
    }


# ---------------------------------------------------------------- the lab

def make_lab(request, packages: dict[str, Path], **options) -> "Lab":
    """A quiet lab for a pytest fixture, closed by a finalizer of its `request` registered
    before anything is built."""
    lab = Lab(packages, log=lambda *a: None, **options)
    request.addfinalizer(lab.close)
    return lab


class Lab:
    """The whole topology. Use as a context manager, or call close() in a finalizer."""

    def __init__(self, packages: dict[str, Path], homelab_rp_filter: int = 1,
                 forward="all", keep_local=(), log=print, homelab_ipv6: bool = False):
        self.packages = packages
        self.homelab_ipv6 = homelab_ipv6
        self.homelab_rp_filter = homelab_rp_filter
        self.forward = forward
        self.keep_local = list(keep_local)
        self.log = log
        self.nodes = {name: Node(name) for name in NODES}
        self.workdir = Path(tempfile.mkdtemp(prefix="cgnat-lab-"))
        self.keys: dict[str, str] = {}

    def __getattr__(self, name):
        nodes = self.__dict__.get("nodes", {})
        if name in nodes:
            return nodes[name]
        raise AttributeError(name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        for node in reversed(list(self.nodes.values())):
            node.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- building
    def build(self) -> None:
        """The wired topology, the bridge's ufw-like firewall and the homelab's Docker-like
        container."""
        self.wire()
        b, h, k = self.nodes["bridge"], self.nodes["homelab"], self.nodes["ctr"]
        # A VPS with a ufw-like firewall: forwarding closed unless allowed.
        b.write("/run/lab/foreign.rules", UFW_LIKE + "*filter\n:FORWARD DROP [0:0]\nCOMMIT\n")
        b.sh("iptables-restore --noflush /run/lab/foreign.rules")
        self.link("homelab", "vctr", "ctr", "eth0")
        h.sh("ip link add br0 type bridge; ip link set br0 up; ip addr add 172.19.0.1/16 dev br0;"
             "ip link set vctr master br0")
        h.sysctl(**{"net.ipv4.ip_forward": 1})  # as Docker does
        h.write("/run/lab/foreign.rules", DOCKER_LIKE + UFW_LIKE)
        h.sh("iptables-restore --noflush /run/lab/foreign.rules")
        k.sh(f"ip addr add {CONTAINER}/16 dev eth0; ip route add default via 172.19.0.1")

    def wire(self) -> None:
        """Every node's namespaces; client, inet, bridge, CGNAT and homelab linked, addressed
        and routed: IPv4 everywhere, IPv6 on the client's side (and at home with homelab_ipv6)."""
        for name, node in self.nodes.items():
            node.start(self.homelab_rp_filter if name == "homelab" else 0)
        self.link("client", "eth0", "inet", "c0")
        self.link("inet", "b0", "bridge", "ens3")
        self.link("inet", "n0", "cgnat", "wan")
        self.link("cgnat", "lan", "homelab", "eth0")
        c, i, b, g, h = (self.nodes[n] for n in ("client", "inet", "bridge", "cgnat", "homelab"))
        c.sh(f"ip addr add {CLIENT}/24 dev eth0; ip route add default via 203.0.113.1")
        i.sh("ip addr add 203.0.113.1/24 dev c0; ip addr add 198.51.100.254/24 dev b0;"
             "ip addr add 192.0.2.1/24 dev n0")
        i.sysctl(**{"net.ipv4.ip_forward": 1})
        b.sh(f"ip addr add {BRIDGE_PUBLIC}/24 dev ens3; ip route add default via 198.51.100.254")
        # IPv6: the client, the inet and the bridge (a dual-stack VPS). No NAT for IPv6.
        c.sh(f"ip addr add {CLIENT6}/64 dev eth0; ip route add default via 2001:db8:c::1")
        i.sh(f"ip addr add 2001:db8:c::1/64 dev c0; ip addr add {INET_BRIDGE_SIDE6}/64 dev b0")
        i.sysctl(**{"net.ipv6.conf.all.forwarding": 1})
        b.sh(f"ip addr add {BRIDGE_PUBLIC6}/64 dev ens3; ip route add default via {INET_BRIDGE_SIDE6}")
        if self.homelab_ipv6:
            # A home line with native IPv6 (routed, not NATed) beside the CGNAT's IPv4.
            i.sh("ip addr add 2001:db8:2::1/64 dev n0; ip route add 2001:db8:64::/64 via 2001:db8:2::2")
            g.sh("ip addr add 2001:db8:2::2/64 dev wan; ip route add default via 2001:db8:2::1;"
                 "ip addr add 2001:db8:64::1/64 dev lan")
            g.sysctl(**{"net.ipv6.conf.all.forwarding": 1})
            h.sh(f"ip addr add {HOMELAB_LAN6}/64 dev eth0; ip route add default via 2001:db8:64::1")
        g.sh(f"ip addr add {CGNAT_PUBLIC}/24 dev wan; ip route add default via 192.0.2.1;"
             "ip addr add 100.64.0.1/24 dev lan")
        g.sysctl(**{"net.ipv4.ip_forward": 1})
        g.write("/run/lab/cgnat.rules", CGNAT_RULES)
        g.sh("iptables-restore /run/lab/cgnat.rules")
        h.sh(f"ip addr add {HOMELAB_LAN}/24 dev eth0; ip route add default via 100.64.0.1")

    def link(self, a: str, ifa: str, b: str, ifb: str) -> None:
        """A veth pair created inside node a with its peer born in node b (never in the root)."""
        na, nb = self.nodes[a], self.nodes[b]
        # MTU explicit: Ethernet's 1500 is what the clamp must cope with (some hosts differ).
        na.sh(f"ip link add {ifa} mtu 1500 type veth peer name {ifb} mtu 1500 netns {nb.pid}; ip link set {ifa} up")
        nb.sh(f"ip link set {ifb} up")

    def install(self) -> None:
        """Bind the unpacked packages into the bridge and the homelab."""
        for role in ("bridge", "homelab"):
            stage = self.packages[role]
            self.nodes[role].sh(f"""
                set -e
                mkdir -p /usr/lib/cgnat-{role}
                mount --bind {stage}/usr/lib/cgnat-{role} /usr/lib/cgnat-{role}
                touch /usr/sbin/cgnat-setup
                mount --bind {stage}/usr/sbin/cgnat-setup /usr/sbin/cgnat-setup
                # The host's own identity (Debian's openssh-server postinst makes it).
                ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
            """)

    def keypairs(self) -> None:
        for role in ("bridge", "homelab"):
            node = self.nodes[role]
            node.sh("umask 077; wg genkey > /run/lab/wg.key")
            self.keys[role] = node.sh("wg pubkey < /run/lab/wg.key").strip()

    def answers(self, role: str) -> str:
        if role == "bridge":
            forward = '"all"' if self.forward == "all" else json.dumps(list(self.forward))
            return (f'role = "bridge"\ninterface = "wg0"\ntunnel = "10.0.0.0/24"\nlisten_port = {WG_PORT}\n'
                    f'private_key_file = "/run/lab/wg.key"\npeer_public_key = "{self.keys["homelab"]}"\n\n'
                    f'[bridge]\npublic_interface = "ens3"\nssh_port = {BRIDGE_SSH_PORT}\n'
                    f'keep_local = {json.dumps(self.keep_local)}\nforward = {forward}\n')
        return (f'role = "homelab"\ninterface = "wg0"\ntunnel = "10.0.0.0/24"\n'
                f'private_key_file = "/run/lab/wg.key"\npeer_public_key = "{self.keys["bridge"]}"\n\n'
                f'[homelab]\nendpoint = "{BRIDGE_PUBLIC}:{WG_PORT}"\nkeepalive = 25\n'
                f'docker_subnets = ["172.19.0.0/16"]\n')

    def setup(self) -> None:
        """cgnat-setup --answers FILE --root / on both ends: renders, starts nothing."""
        self.keypairs()
        for role in ("bridge", "homelab"):
            node = self.nodes[role]
            node.write("/run/lab/answers.toml", self.answers(role))
            node.sh("cgnat-setup --answers /run/lab/answers.toml --root /")

    def start_sshd(self, role: str) -> None:
        """A real sshd, on the config cgnat-setup left (drop-in included), with a lab key."""
        node = self.nodes[role]
        node.write("/run/lab/sshd_config",
                   "HostKey /etc/ssh/ssh_host_ed25519_key\n"
                   "AuthorizedKeysFile /run/lab/authorized_keys\n"
                   "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
                   "PidFile /run/lab/sshd.pid\n"
                   "Include /etc/ssh/sshd_config\n")   # Debian's, which includes sshd_config.d/*.conf
        node.sh("/usr/sbin/sshd -t -f /run/lab/sshd_config")
        node.spawn("/usr/sbin/sshd -D -e -f /run/lab/sshd_config", log=self.workdir / f"sshd-{role}.log")

    def tunnel_up(self) -> None:
        for role in ("bridge", "homelab"):
            self.nodes[role].sh("wg-quick up wg0")
        self.wait_handshake()

    def wait_handshake(self, timeout: float = 15) -> None:
        def handshaken():
            out = self.homelab.sh("wg show wg0 latest-handshakes").split()
            return len(out) == 2 and int(out[1]) > 0
        wait_for(handshaken, timeout, "the WireGuard handshake")

    def tunnel_down(self) -> None:
        for role in ("homelab", "bridge"):
            self.nodes[role].sh("wg-quick down wg0")

    def prepare(self) -> "Lab":
        """Topology, packages and cgnat-setup: everything but sshd and the tunnel."""
        self.build()
        self.install()
        self.setup()
        return self

    def up(self, sshd: bool = True) -> "Lab":
        """Everything: topology, packages, cgnat-setup, sshd, tunnel."""
        self.prepare()
        if sshd:
            self.start_sshd("bridge")
            self.start_sshd("homelab")
        self.tunnel_up()
        if sshd:
            self.bridge.wait_listening("tcp", BRIDGE_SSH_PORT)
            self.homelab.wait_listening("tcp", 22)
        return self

    # -- services and probes
    def host_key(self, node: str) -> str:
        """The node's ed25519 SSH host key (base64), as ssh-keyscan shows it."""
        return self.nodes[node].read("/etc/ssh/ssh_host_ed25519_key.pub").split()[1]

    def serve_peer_tcp(self, node: str, port: int, v6: bool = False) -> None:
        """A TCP service answering each connection with the address it sees the client at
        (v6: on IPv6)."""
        n = self.nodes[node]
        n.spawn(f"socat TCP{'6' if v6 else ''}-LISTEN:{port},reuseaddr,fork SYSTEM:'echo $SOCAT_PEERADDR'")
        n.wait_listening("tcp", port)

    def serve_peer_udp(self, node: str, port: int, v6: bool = False) -> None:
        n = self.nodes[node]
        n.spawn(f"python3 {UDP_PEER} {port}{' 6' if v6 else ''}")
        n.wait_listening("udp", port)

    def tcp_ask(self, node: str, host: str, port: int, timeout: float = 5) -> str | None:
        """What a peer-echo service answers, or None when the connection fails."""
        done = self.nodes[node].run(
            f"timeout {timeout} socat -T{timeout} - {socat_address('TCP', host, port)},"
            f"connect-timeout={timeout} </dev/null", check=False, timeout=timeout + 5)
        return peer_address(done.stdout) if done.returncode == 0 else None

    def download(self, node: str, host: str, port: int, timeout: int) -> int:
        """How many bytes a sending service gives within `timeout` seconds."""
        out = self.nodes[node].run(f"timeout {timeout} socat -u TCP:{host}:{port} - | wc -c",
                                   check=False, timeout=timeout + 10).stdout
        return int(out.strip() or 0)

    def udp_ask(self, node: str, host: str, port: int, timeout: float = 3) -> str | None:
        done = self.nodes[node].run(f"echo hello | timeout {timeout + 1} socat -T{timeout} - "
                                    f"{socat_address('UDP', host, port)}", check=False, timeout=timeout + 5)
        return peer_address(done.stdout)

    def ping(self, node: str, host: str, count: int = 3, timeout: float = 2) -> dict:
        out = self.nodes[node].run(f"python3 {PINGER} --count {count} --timeout {timeout} {host}",
                                   check=False, timeout=count * timeout + 10).stdout
        return json.loads(out.strip().splitlines()[-1])


def socat_address(proto: str, host: str, port: int) -> str:
    """socat's address of host:port: "TCP:203.0.113.10:80" or "TCP6:[2001:db8::1]:80"."""
    return f"{proto}6:[{host}]:{port}" if ":" in host else f"{proto}:{host}:{port}"


def peer_address(text: str) -> str | None:
    """The address a peer-echo service answered, or None; socat writes IPv6 addresses
    bracketed and in full: given back compressed, as the constants above are."""
    text = text.strip()
    if not text.startswith("["):
        return text or None
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        return None


# Rules of other tools, for the "never touch them" checks.
UFW_LIKE = """*filter
:ufw-before-input - [0:0]
-A INPUT -j ufw-before-input
-A ufw-before-input -i lo -j ACCEPT
-A ufw-before-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
"""

# What Docker installs for `docker run -p 8080:80` on a user network (bridge br0, 172.19.0.0/16).
DOCKER_LIKE = f"""*nat
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.19.0.0/16 ! -o br0 -j MASQUERADE
-A DOCKER -i br0 -j RETURN
-A DOCKER ! -i br0 -p tcp -m tcp --dport {PUBLISHED_PORT} -j DNAT --to-destination {CONTAINER}:80
COMMIT
*filter
:FORWARD DROP [0:0]
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -o br0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o br0 -j DOCKER
-A FORWARD -i br0 ! -o br0 -j ACCEPT
-A FORWARD -i br0 -o br0 -j ACCEPT
-A DOCKER -d {CONTAINER}/32 ! -i br0 -o br0 -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER-USER -j RETURN
COMMIT
"""

# A carrier-grade NAT: outbound masqueraded, nothing unsolicited comes in.
CGNAT_RULES = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o wan -s 100.64.0.0/10 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i lan -o wan -j ACCEPT
COMMIT
"""
