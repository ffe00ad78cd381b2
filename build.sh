#!/bin/bash
# Build, test and demo cgnat-tunnel on Debian 12 (run as root, from any directory).
#
#   ./build.sh [build]   install the build dependencies that are missing, vendor
#                        Textual (requirements-vendor.txt), build cgnat-bridge and
#                        cgnat-homelab into dist/
#   ./build.sh test      also install the test dependencies and .venv, build, then
#                        run the whole suite in one pytest run (pytest.ini)
#   ./build.sh demo      like test, but run tests/lab/demo.py instead of the suite
#   ./build.sh bench ARGS  like demo, plus the benchmark's own tools (haproxy, nft, gcc),
#                        then run bench/bench.py ARGS (README, Performance)
#   ./build.sh clean     remove build/ and dist/ (keeps .cache/ and .venv/)
#
# Nothing here starts a service: packages are installed with a policy-rc.d that
# forbids it, so the host's network and daemons stay as they were.
set -eu -o pipefail

cd "$(dirname "$0")"
ROOT=$PWD
PROGRAM=build.sh
PYTHON=/usr/bin/python3
export DEBIAN_FRONTEND=noninteractive

BUILD_DEPS=(debhelper dh-python dpkg-dev python3 python3-pip git)
TEST_DEPS=(wireguard-tools wireguard-go iptables iproute2 openssh-server openssh-client
	debootstrap lintian python3-venv python3-jinja2 python3-debian python3-yaml socat iperf3
	tmux conntrack procps systemd util-linux iputils-ping dnsutils curl man-db
	systemd-container mmdebstrap docker.io busybox-static piuparts knot python3-dnspython)
BENCH_DEPS=(haproxy nftables gcc libc6-dev)

log() { echo "[$PROGRAM] $*" >&2; }
die() { log "error: $*"; exit 1; }

# apt-get install only what is missing, without starting any service.
apt_install() {
	local missing=() pkg
	for pkg in "$@"; do
		dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$' ||
			missing+=("$pkg")
	done
	[ ${#missing[@]} -gt 0 ] || return 0
	log "apt-get install ${missing[*]}"
	local policy=/usr/sbin/policy-rc.d own_policy=
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' > "$policy"
		chmod 0755 "$policy"
		own_policy=yes
	fi
	local rc=0
	{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null; } || rc=$?
	[ -z "$own_policy" ] || rm -f "$policy"
	[ $rc -eq 0 ] || die "apt-get install failed ($rc)"
}

# Download the pinned wheels (hashes checked) and unpack them into build/vendor.
vendor() {
	local wheels=$ROOT/.cache/wheels
	mkdir -p "$wheels"
	log "vendoring Textual from requirements-vendor.txt"
	"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary :all: \
		--require-hashes -d "$wheels" -r requirements-vendor.txt
	rm -rf build/vendor
	"$PYTHON" - requirements-vendor.txt "$wheels" build/vendor <<'EOF'
"""Unpack pinned pure-Python wheels: no scripts, no RECORD, no bytecode."""
import hashlib, pathlib, re, sys, zipfile

requirements, wheels, target = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
target.mkdir(parents=True)
for line in open(requirements):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    m = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)\s+--hash=sha256:([0-9a-f]{64})", line)
    if not m:
        sys.exit(f"{requirements}: not 'name==version --hash=sha256:...': {line}")
    name, version, digest = m.groups()
    norm = re.sub(r"[-_.]+", "_", name).lower()
    found = [w for w in wheels.glob("*.whl")
             if w.name.lower().startswith(f"{norm}-{version}-") and w.name.endswith("-none-any.whl")]
    if len(found) != 1:
        sys.exit(f"{name}=={version}: expected one pure-Python wheel in {wheels}, found {found}")
    wheel = found[0]
    if hashlib.sha256(wheel.read_bytes()).hexdigest() != digest:
        sys.exit(f"{wheel}: sha256 does not match {requirements}")
    with zipfile.ZipFile(wheel) as z:
        for member in sorted(z.namelist()):
            parts = member.split("/")
            if member.endswith("/") or ".." in parts or member.startswith("/"):
                continue
            if parts[0].endswith(".data") or "__pycache__" in parts or member.endswith((".pyc", ".pyo")):
                continue
            if parts[0].endswith(".dist-info") and parts[-1] in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"):
                continue
            out = target / member
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(z.read(member))
            out.chmod(0o644)
    print(f"  {name}=={version}", file=sys.stderr)
EOF
}

# Copy the source tree (tracked and new files, not ignored ones) plus the vendored
# tree to build/pkg/, so the build never writes into the shared working tree.
stage() {
	local version stage
	version=$(dpkg-parsechangelog -S Version)
	stage=build/pkg/cgnat-tunnel-$version
	rm -rf build/pkg
	mkdir -p "$stage"
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files -z --cached --others --exclude-standard |
			tar --exclude=__pycache__ --exclude='*.py[co]' --ignore-failed-read \
				--warning=no-failed-read --null -T - -c |
			tar -x -C "$stage"
	else
		tar --exclude-vcs --exclude=./build --exclude=./dist --exclude=./.venv \
			--exclude=./.cache --exclude=__pycache__ --exclude='*.py[co]' -c . |
			tar -x -C "$stage"
	fi
	cp -a build/vendor "$stage/vendor"
	echo "$stage"
}

build() {
	apt_install "${BUILD_DEPS[@]}"
	# One build at a time in this tree (others may run ./build.sh meanwhile).
	mkdir -p build
	exec 9>build/.lock
	flock 9
	vendor
	local stage epoch
	stage=$(stage)
	epoch=$(dpkg-parsechangelog -S Timestamp)
	log "dpkg-buildpackage in $stage (SOURCE_DATE_EPOCH=$epoch)"
	(cd "$stage" && SOURCE_DATE_EPOCH=$epoch dpkg-buildpackage -b --no-sign) >build/dpkg-buildpackage.log 2>&1 ||
		{ tail -n 40 build/dpkg-buildpackage.log >&2; die "dpkg-buildpackage failed (build/dpkg-buildpackage.log)"; }
	# Replace dist/*.deb atomically: tests reading dist/ never see it half-done.
	mkdir -p dist
	local deb old
	for deb in build/pkg/*.deb; do
		cp "$deb" "dist/.$(basename "$deb").tmp"
		mv -f "dist/.$(basename "$deb").tmp" "dist/$(basename "$deb")"
	done
	for old in dist/*.deb; do
		[ -e "build/pkg/$(basename "$old")" ] || rm -f "$old"
	done
	log "built: $(cd dist && echo *.deb)"
	exec 9>&-
}

venv() {
	apt_install "${TEST_DEPS[@]}"
	[ -x .venv/bin/python ] || "$PYTHON" -m venv --system-site-packages .venv
	log "pip install -r requirements-dev.txt into .venv"
	.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
}

case "${1:-build}" in
build)
	build
	;;
test)
	venv
	build
	# Every folder in one run, in the order of pytest.ini's testpaths (the pure tests first);
	# its timeout (1200 s a test) and markers apply.
	log "pytest (pytest.ini: tests/unit tests/tui tests/lab tests/package tests/system)"
	exec .venv/bin/python -m pytest -v
	;;
demo)
	venv
	build
	exec .venv/bin/python tests/lab/demo.py
	;;
bench)
	venv
	apt_install "${BENCH_DEPS[@]}"
	build
	shift
	exec .venv/bin/python bench/bench.py "$@"
	;;
clean)
	rm -rf build dist
	;;
*)
	die "usage: $0 [build|test|demo|bench [ARGS]|clean]"
	;;
esac
