# tests/lib.sh -- shared helpers for integration and multi-node tests (source it).
#
#   . "$(dirname "$0")/../../lib.sh"
#   t_init NAME              # temp dir in $T_DIR, cleanup trap, counters
#   port=$(t_free_port)      # a TCP+UDP port free on loopback
#   t_start NAME cmd args... # background process, PID recorded, log in $T_DIR/NAME.log
#                            # (an earlier NAME.log is kept as NAME.log.1, .2, ...)
#   t_wait_http URL [secs]   # until the URL answers (any status)
#   t_stop NAME              # SIGTERM by PID, SIGKILL after 5 s
#   t_check "message" cmd... # PASS if cmd succeeds, FAIL otherwise
#   t_eq "message" expected actual
#   t_fails_with STATUS "message" cmd...  # PASS if cmd exits with STATUS and prints
#                            # no sanitizer report; its output is left in $T_OUT
#   t_skip "reason"          # a SKIP: line (counted by tests/run.sh)
#   m=$(t_log_mark NAME)     # the current end of NAME.log ...
#   t_log_since NAME $m      # ... and what NAME logged after it
#   t_done                   # stops everything, prints the tally, exit status
#
# Every process is started and stopped by PID; the temp dir is removed at exit.
# Sanitizer reports count as a failure: each log is scanned when its process is
# stopped or killed, and t_done scans every *.log* file in $T_DIR once more
# (rotated logs, logs of processes that exited on their own).

T_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${MINICDN_BIN:-$T_ROOT/build/bin}
T_PASS=0
T_FAIL=0
declare -A T_PIDS
# Logs already scanned for sanitizer reports, "device:inode" -> size when
# scanned: a rename (rotation, a test's own mv) keeps the inode, so a report
# is counted once however many times the file is looked at.
declare -A T_SCANNED
# What ASan, LeakSanitizer, TSan and UBSan print when they find something.
T_SAN_RE='ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:'

t_init() {
	T_NAME=$1
	T_DIR=$(mktemp -d "/tmp/minicdn-test-$T_NAME.XXXXXX")
	trap t_cleanup EXIT
	trap 'exit 130' INT TERM
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
}

t_pass() { T_PASS=$((T_PASS + 1)); echo "PASS: $T_NAME: $*"; }
t_fail() { T_FAIL=$((T_FAIL + 1)); echo "FAIL: $T_NAME: $*"; }

t_check() {
	local msg=$1; shift
	if "$@" >/dev/null 2>&1; then t_pass "$msg"; else t_fail "$msg"; fi
}

t_eq() {
	if [ "$2" = "$3" ]; then t_pass "$1"; else t_fail "$1 (expected '$2', got '$3')"; fi
}

t_skip() { echo "SKIP: $T_NAME: $*"; }

# A command that must fail, and fail the intended way: exactly STATUS, and no
# sanitizer report in what it printed.  An ASan abort exits 1 and a leak 23,
# which a check for "any non-zero exit" would take for the expected failure.
# Its stdout and stderr (together) are left in T_OUT for further checks.
t_fails_with() {
	local want=$1 msg=$2 rc out; shift 2
	out=$(mktemp "$T_DIR/fails-with.XXXXXX")
	"$@" >"$out" 2>&1
	rc=$?
	T_OUT=$(cat "$out")
	if grep -qE "$T_SAN_RE" "$out"; then
		t_fail "$msg (exit $rc with a sanitizer report:)"
		grep -E -A20 "$T_SAN_RE" "$out" | head -40 | sed 's/^/    /'
	elif [ "$rc" -ne "$want" ]; then
		t_fail "$msg (expected exit $want, got $rc)"
	else
		t_pass "$msg"
	fi
	rm -f "$out"
}

# A port free for both TCP and UDP on 127.0.0.1. Drawn below the kernel's
# ephemeral range, so no client socket (curl, the edge's own origin
# connections) can take it between this check and the daemon's bind, and
# never handed out twice in one test, since the first daemon may not have
# bound its port yet when the second is drawn.
t_free_port() {
	python3 - "${T_DIR:?t_free_port needs t_init}/.ports" <<'PY'
import random, socket, sys
low = 32768
try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
except (OSError, ValueError, IndexError):
    pass
hi = max(min(low, 65536) - 1, 11000)
try:
    with open(sys.argv[1]) as f:
        given = {int(x) for x in f.read().split()}
except OSError:
    given = set()
for _ in range(500):
    p = random.randint(10000, hi)
    if p in given:
        continue
    try:
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM); t.bind(("127.0.0.1", p))
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", p))
        t.close(); u.close()
    except OSError:
        continue
    with open(sys.argv[1], "a") as f:
        f.write("%d\n" % p)
    print(p)
    break
PY
}

# Refused control requests are logged at most 10 a second, none lost from
# the account: 100 guesses at URL, then one more once a second has turned.
# Lines in the log must be at least 10 and at most 10 per second touched,
# and lines plus their "(N more not logged)" must add up to all 101.
# $1 label, $2 method, $3 URL, $4 log file, $5 the line's pattern (ERE).
t_refusal_log_limited() {
	local label=$1 method=$2 url=$3 log=$4 pat=$5 secs n0 n sum
	local flood=$T_ROOT/tests/tools/guess_flood.py
	# A fresh window, and no count left over from refusals before this:
	# one guess in a new second takes what the earlier ones left out.
	sleep 1.1
	python3 "$flood" "$method" "$url" 1 >/dev/null || t_fail "$label: the first guess"
	sleep 1.1
	n0=$(grep -cE "$pat" "$log")
	secs=$(python3 "$flood" "$method" "$url" 100 2>&1) || { t_fail "$label: $secs"; return; }
	n=$(($(grep -cE "$pat" "$log") - n0))
	t_check "$label: guesses logged ($n lines)" test "$n" -ge 10
	t_check "$label: at most 10 a second ($n lines in $secs s)" test "$n" -le $((secs * 10))
	sleep 1.1
	python3 "$flood" "$method" "$url" 1 >/dev/null || t_fail "$label: the last guess"
	sum=$(grep -E "$pat" "$log" | tail -n +$((n0 + 1)) |
		sed -nE 's/.*\(([0-9]+) more not logged\).*/\1/p' | awk '{s += $1 + 1} END {print s + 0}')
	t_eq "$label: lines plus those they say were not logged" 101 "$sum"
}

t_start() {
	local name=$1 log n=1; shift
	log=$T_DIR/$name.log
	if [ -e "$log" ]; then
		# The previous process of that name may have exited on its own,
		# never stopped by t_stop: scan it before it is rotated.
		t_scan_file "$log" "$name"
		while [ -e "$log.$n" ]; do n=$((n + 1)); done
		mv "$log" "$log.$n"
	fi
	"$@" >"$log" 2>&1 &
	T_PIDS[$name]=$!
}

# Byte offset of the end of NAME.log now; t_log_since prints what came after.
t_log_mark() { stat -c %s "$T_DIR/$1.log" 2>/dev/null || echo 0; }
t_log_since() { tail -c +$(($2 + 1)) "$T_DIR/$1.log" 2>/dev/null; }

t_pid() { echo "${T_PIDS[$1]}"; }

t_stop() {
	local name=$1 pid=${T_PIDS[$1]:-}
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$pid" 2>/dev/null; then
		t_fail "$name did not stop within 5 s of SIGTERM"
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	unset "T_PIDS[$name]"
	t_scan_log "$name"
}

# kill -9: for crash tests.
t_kill9() {
	local name=$1 pid=${T_PIDS[$1]:-}
	[ -n "$pid" ] || return 0
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	unset "T_PIDS[$name]"
	# No report at exit after SIGKILL, but one from before (a UBSan or ASan
	# halt that already ended the process) is in the log.
	t_scan_log "$name"
}

t_scan_log() { t_scan_file "$T_DIR/$1.log" "$1"; }

t_scan_file() { # path label
	local f=$1 key size
	[ -f "$f" ] || return 0
	key=$(stat -c %d:%i "$f") size=$(stat -c %s "$f")
	[ "${T_SCANNED[$key]:-}" = "$size" ] && return 0
	T_SCANNED[$key]=$size
	if grep -qE "$T_SAN_RE" "$f"; then
		t_fail "$2: sanitizer report in ${f##*/}:"
		grep -E -A20 "$T_SAN_RE" "$f" | head -40 | sed 's/^/    /'
	fi
}

t_wait_http() {
	local url=$1 secs=${2:-10}
	for _ in $(seq $((secs * 20))); do
		curl -s -o /dev/null --max-time 1 "$url" && return 0
		sleep 0.05
	done
	return 1
}

t_wait_dns() { # server port name [secs]
	local secs=${4:-10}
	for _ in $(seq $((secs * 10))); do
		dig +time=1 +tries=1 @"$1" -p "$2" "$3" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

t_cleanup() {
	local name
	for name in "${!T_PIDS[@]}"; do t_stop "$name"; done
	if [ "$T_FAIL" -gt 0 ] && [ -n "${T_KEEP_ON_FAIL:-}" ]; then
		echo "logs kept in $T_DIR"
	else
		rm -rf "$T_DIR"
	fi
}

t_done() {
	local name f
	for name in "${!T_PIDS[@]}"; do t_stop "$name"; done
	for f in "$T_DIR"/*.log "$T_DIR"/*.log.*; do t_scan_file "$f" "${f##*/}"; done
	if [ "$T_FAIL" -gt 0 ]; then
		for f in "$T_DIR"/*.log; do
			[ -f "$f" ] || continue
			echo "---- $(basename "$f") (last 15 lines)"; tail -15 "$f" | sed 's/^/    /'
		done
	fi
	echo "$T_NAME: $T_PASS passed, $T_FAIL failed"
	[ "$T_FAIL" -eq 0 ]
	exit $?
}
