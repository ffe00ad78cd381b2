# shellcheck shell=sh
# What the wg-quick hooks of both roles share; installed next to them as
# /usr/lib/cgnat-<role>/hooks/lib.sh and sourced, never run:
#
#     . "$(dirname "$0")/lib.sh"
#     hook_init bridge up "$@"
#
# The hooks keep only their role's own steps (ip_forward on the bridge, policy
# routing on the homelab). Here: die/cmd/try; reading a rules file (the one awk
# that does; installer/rules_file.py is its Python twin); our chains and their
# tagged jumps, added by add_rules and removed by del_rules, for either family
# (iptables with IFACE.rules, ip6tables with IFACE.rules6), which may only hold
# those chains (check_rules); the interface's lock; rollback of a failed up (it
# undoes what that run added, nothing else).
#
# Our chains are named per interface, CGNAT-<IFACE>-<ABBR>, so that two tunnels
# never share (or flush) each other's rules; ABBR, after the last "-", names the
# builtin chain that jumps to it (see builtin_of). Every jump is tagged with the
# comment "cgnat:IFACE", so removal never guesses (docs/ARCHITECTURE.md, "The hook
# contract").

set -f   # no pathname expansion: the chain lists below are split into words, never globbed
CGNAT_ETC=${CGNAT_ETC:-/etc/cgnat}
CGNAT_RUN=${CGNAT_RUN:-/run/cgnat}   # what up changed and down puts back (gone at boot)
FAILED=0

die() {
	echo "$PROGRAM: $*" >&2
	exit 1
}

# Echo every command that changes the system before running it, like wg-quick,
# so the journal of wg-quick@IFACE shows exactly what was done.
cmd() {
	echo "[#] $*" >&2
	"$@"
}

# Set a kernel setting by its file under /proc/sys, named in sysctl's slash form
# (net/ipv4/conf/IFACE/rp_filter: an interface name may hold "."), echoed like cmd.
# Not sysctl -w: it splits KEY=VALUE at the first "=", which an interface name may
# also hold.
set_sysctl() { # KEY VALUE
	echo "[#] echo $2 > /proc/sys/$1" >&2
	echo "$2" >"/proc/sys/$1"
}

# Run a removal; a failure is reported and remembered (exit status of down),
# and the next step still runs.
try() {
	cmd "$@" || { echo "$PROGRAM: failed: $*" >&2; FAILED=1; }
}

# hook_init ROLE VERB ARGS...: the hook's one argument, the interface, named as
# cgnat-setup allows (so it is safe in a path, a chain name and a comment), and
# the names derived from it.
hook_init() {
	ROLE=$1 PROGRAM=cgnat-$1-$2
	shift 2
	[ $# -eq 1 ] || die "usage: $0 IFACE"
	IFACE=$1
	interface_name "$IFACE" || die "invalid interface name '$IFACE'"
	TAG=cgnat:$IFACE
	RULES=$CGNAT_ETC/$IFACE.rules
	RULES6=$CGNAT_ETC/$IFACE.rules6   # ip6tables-restore input; only where IPv6 is forwarded
	ENV_FILE=$CGNAT_ETC/$IFACE.env
	RA_RECORD=$CGNAT_RUN/$IFACE.accept_ra   # bridge: "PUBLIC_INTERFACE VALUE" before up
}

# Whether NAME is an interface name as cgnat-setup allows (installer/grammar.py,
# INTERFACE): 1 to 15 of letters, digits, "_", ".", "=", "-", not starting with
# "-" or "." (an option, a hidden path), never "all" or "default" (sysctl's
# conf/all, conf/default). Spelled out, not as ranges, which follow the locale.
interface_name() { # NAME
	case $1 in
	'' | all | default | [!$ALNUM]* | *[!${ALNUM}_.=-]*) return 1 ;;
	esac
	[ ${#1} -le 15 ]
}
ALNUM=ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789

# One lock per interface, $CGNAT_RUN/IFACE.lock (flock(2)), held by a hook for its
# whole run, by cgnat-setup while it writes IFACE's files and by the watchdogs while
# they look and decide (installer/interface_lock.py): a watchdog never judges rules
# half-loaded, and two runs of the hooks never interleave.
hook_lock() {
	mkdir -p "$CGNAT_RUN"
	exec 9>>"$CGNAT_RUN/$IFACE.lock"
	flock -w 60 9 || die "$CGNAT_RUN/$IFACE.lock is still held after 60 s (fuser -v shows by whom)"
}

# load_config [VAR...]: read this role's IFACE.env; each VAR must be set in it.
load_config() {
	[ -r "$RULES" ] || die "cannot read $RULES (run cgnat-setup first)"
	[ -r "$ENV_FILE" ] || die "cannot read $ENV_FILE (run cgnat-setup first)"
	refusal=$(check_rules "$RULES") && { [ ! -e "$RULES6" ] || refusal=$(check_rules "$RULES6"); } ||
		die "$refusal"
	# shellcheck disable=SC1090
	. "$ENV_FILE"
	[ "${CGNAT_ROLE:-}" = "$ROLE" ] || die "$ENV_FILE: CGNAT_ROLE is '${CGNAT_ROLE:-}', expected '$ROLE'"
	for var in "$@"; do
		eval "[ -n \"\${$var:-}\" ]" || die "$ENV_FILE: $var is not set"
	done
}

# Whether IFACE takes IPv6: not when its disable_ipv6 is 1, nor on a kernel booted
# with ipv6.disable=1 (no /proc/sys/net/ipv6 at all).
ipv6_enabled() {
	[ "$(cat "/proc/sys/net/ipv6/conf/$IFACE/disable_ipv6" 2>/dev/null)" = 0 ]
}

# Every function below works on one address family, named by its first argument:
# IPT, the iptables command (iptables or ip6tables; IPT-save and IPT-restore go
# with it), and FILE, that family's rules file (IFACE.rules or IFACE.rules6).

# "TABLE:CHAIN" for every CGNAT-* chain FILE declares (none if it is gone).
declared_chains() { # FILE
	[ ! -r "$1" ] ||
		awk '/^\*/ { table = substr($1, 2) } /^:CGNAT-/ { print table ":" substr($1, 2) }' "$1"
}

# A rules file goes to IPT-restore --noflush as it is, so it may only declare and
# fill IFACE's own chains, CGNAT-IFACE-<ABBR>, in the tables and builtins we hook
# (nat: PRE IN OUT POST; filter: FWD IN OUT; mangle: all five): "*TABLE",
# ":CHAIN - [0:0]", "-A CHAIN ..." of a chain declared above in that table,
# "COMMIT", comments and blank lines. Anything else (":DOCKER-USER - [0:0]" would
# flush Docker's chain; "-I", "-F", "-P", another tunnel's chain) is refused:
# prints "FILE:LINE: why" and fails. installer/rules_file.py (refusal) is its twin.
check_rules() { # FILE
	IFACE=$IFACE LC_ALL=C awk '
		BEGIN {
			ours = "CGNAT-" ENVIRON["IFACE"] "-"
			hooks["nat"] = " PRE IN OUT POST "; hooks["filter"] = " FWD IN OUT "
			hooks["mangle"] = " PRE IN FWD OUT POST "
		}
		function refuse(why) {
			gsub(/[^ -~]/, "?", why)   # one line, printable: the journal shows it
			print FILENAME ":" FNR ": " why " (only " ours "<ABBR> chains may be declared and filled)"
			bad = 1
			exit 1
		}
		/^(#|$)/ { next }
		/^\*/ {
			table = substr($0, 2)
			if (!(table in hooks)) refuse("table \"" table "\" is not one of ours")
			next
		}
		/^COMMIT$/ { table = ""; next }
		table == "" { refuse("outside a table") }
		/^:[^ \t]+ - \[0:0\]$/ {
			chain = substr($1, 2)
			abbr = substr(chain, length(ours) + 1)
			if (substr(chain, 1, length(ours)) != ours || abbr == "" || index(hooks[table], " " abbr " ") == 0)
				refuse("declares " chain " in " table)
			declared[table " " chain] = 1
			next
		}
		/^-A [^ \t]+([ \t]|$)/ {
			chain = $2
			if (!((table " " chain) in declared)) refuse("appends to " chain ", not our chain declared in " table)
			next
		}
		{ refuse("not a declaration or an -A rule of ours") }
		END { if (!bad && table != "") refuse("no COMMIT after *" table) }
	' "$1"
}

# The builtin chain that jumps to our CHAIN: CGNAT-wg0-PRE -> PREROUTING; nothing
# (and false) for a name without one of our abbreviations.
builtin_of() {
	case ${1##*-} in
	PRE) echo PREROUTING ;;
	FWD) echo FORWARD ;;
	POST) echo POSTROUTING ;;
	IN) echo INPUT ;;
	OUT) echo OUTPUT ;;
	*) return 1 ;;
	esac
}

jump_present() { # IPT TABLE CHAIN
	"$1" -w -t "$2" -C "$(builtin_of "$3")" -m comment --comment "$TAG" -j "$3" 2>/dev/null
}

chain_present() { # IPT TABLE CHAIN
	"$1" -w -t "$2" -S "$3" >/dev/null 2>&1
}

# One IPT-restore --noflush loads (or, run again, empties and refills) our chains,
# then adds the jumps still missing, each inserted first in its builtin chain: a
# jump never points at a half-filled chain, and the cost does not grow with the
# number of rules. Idempotent: a second run adds no second jump. (The blank line:
# in case the rules file lacks its last newline.)
add_rules() { # IPT FILE
	jumps="" shown=""
	for pair in $(declared_chains "$2"); do
		table=${pair%%:*} chain=${pair#*:}
		jump_present "$1" "$table" "$chain" && continue
		jumps="$jumps*$table
-I $(builtin_of "$chain") -m comment --comment \"$TAG\" -j $chain
COMMIT
"
		shown="$shown $table:$(builtin_of "$chain")->$chain"
	done
	for pair in $(declared_chains "$2"); do
		table=${pair%%:*} chain=${pair#*:}
		if ! chain_present "$1" "$table" "$chain"; then
			added "$1" -w -t "$table" -X "$chain"
			added "$1" -w -t "$table" -F "$chain"
		fi
	done
	echo "[#] $1-restore -w --noflush < $2${shown:+ (+ jumps:$shown)}" >&2
	{ cat "$2"; echo; printf '%s' "$jumps"; } | "$1-restore" -w --noflush
	for pair in $(declared_chains "$2"); do
		table=${pair%%:*} chain=${pair#*:}
		case $shown in
		*" $table:$(builtin_of "$chain")->$chain"*)
			added "$1" -w -t "$table" -D "$(builtin_of "$chain")" -m comment --comment "$TAG" -j "$chain" ;;
		esac
	done
}

# "TABLE:CHAIN" for each of our chains: those FILE declares, and those our tagged
# jumps point at (so a deleted or edited rules file leaves nothing behind).
our_chains() { # IPT FILE
	{
		if check_rules "$2" >/dev/null 2>&1; then declared_chains "$2"; fi
		"$1-save" 2>/dev/null | TAG=$TAG awk '
			BEGIN { tag = ENVIRON["TAG"] }
			/^\*/ { table = substr($1, 2) }
			/^-A / && (index($0, "--comment \"" tag "\" ") || index($0, "--comment " tag " ")) {
				for (i = 1; i < NF; i++) if ($i == "-j" && $(i + 1) ~ /^CGNAT-/) print table ":" $(i + 1)
			}'
	} | sort -u
}

# The inverse of add_rules, forgiving: jumps first (so no packet ever meets a jump
# to an emptied chain; in a loop, in case a hand added the same jump twice), then
# the chains; whatever is already gone is skipped (a host without IPv6 has none).
del_rules() { # IPT FILE
	chains=$(our_chains "$1" "$2")
	for pair in $chains; do
		table=${pair%%:*} chain=${pair#*:}
		while jump_present "$1" "$table" "$chain"; do
			cmd "$1" -w -t "$table" -D "$(builtin_of "$chain")" \
				-m comment --comment "$TAG" -j "$chain" || { FAILED=1; break; }
		done
	done
	for pair in $chains; do
		table=${pair%%:*} chain=${pair#*:}
		chain_present "$1" "$table" "$chain" || continue
		try "$1" -w -t "$table" -F "$chain"
		try "$1" -w -t "$table" -X "$chain"
	done
}

# Between begin_up and end_up, a failure (or INT, TERM) undoes what this run added,
# newest first, and exits non-zero: a failed wg-quick up leaves no forwarding behind
# (wg-quick itself only deletes the interface), and a repair (the watchdog re-running
# up) that fails never takes away the rules an earlier up put in place.
UNDO=""

# added INVERSE...: the command that undoes a change just made (its words are names
# the grammar allows: no blanks, no quotes).
added() {
	UNDO="$*
$UNDO"
}

begin_up() {
	UNDO=""
	trap rollback INT TERM EXIT
}

end_up() {
	trap - INT TERM EXIT
}

rollback() {
	status=$?
	trap - INT TERM EXIT
	[ "$status" -ne 0 ] || status=1
	echo "$PROGRAM: failed, undoing what this run added" >&2
	printf '%s\n' "$UNDO" | while read -r line; do
		[ -z "$line" ] || eval "try $line"
	done
	exit "$status"
}
