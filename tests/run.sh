#!/bin/bash
# tests/run.sh -- runs every test and ends with "N passed, N failed, N skipped".
#   static checks on the sources (tests/static/*.py), unit tests (cmocka, TAP
#   output), integration tests (tests/integration/*/run.sh),
#   multi-node tests (tests/netns/*.sh, as root), a short fuzz run, then unit and
#   integration again against the sanitizer build (build/asan).
# A scenario that is not executable, or that reports no check at all, counts as
# a failure: either would otherwise drop its checks from the tally unseen.
# Usage: tests/run.sh [--quick]   (--quick: normal build only, no sanitizers, no netns)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PASS=0 FAIL=0 SKIP=0 FAILED=()
START=$SECONDS
QUICK=0; [ "${1:-}" = --quick ] && QUICK=1

count_tap() { # file name
	local p f
	p=$(grep -cE '^ok ' "$1"); f=$(grep -cE '^not ok ' "$1")
	if [ $((p + f)) -eq 0 ]; then f=1; echo "FAIL: $2 reported no test"; fi
	PASS=$((PASS + p)); FAIL=$((FAIL + f))
	[ "$f" -gt 0 ] && FAILED+=("$2")
}

count_lines() { # file name status
	local p f s
	p=$(grep -cE '^PASS: ' "$1"); f=$(grep -cE '^FAIL: ' "$1"); s=$(grep -cE '^SKIP: ' "$1")
	if [ "$3" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "FAIL: $2 exited with status $3"; fi
	if [ $((p + f)) -eq 0 ]; then f=1; echo "FAIL: $2 reported no check"; fi
	PASS=$((PASS + p)); FAIL=$((FAIL + f)); SKIP=$((SKIP + s))
	[ "$f" -gt 0 ] && FAILED+=("$2")
}

run_units() { # build dir, label
	local t out
	for t in "$1"/tests/unit/*/test_*; do
		[ -e "$t" ] || continue
		if ! [ -x "$t" ]; then not_executable "unit $2 ${t##*/}"; continue; fi
		out=$(mktemp)
		echo "== unit $2 ${t#"$1"/tests/unit/}"
		CMOCKA_MESSAGE_OUTPUT=TAP timeout 120 "$t" >"$out" 2>&1
		local rc=$?
		grep -E '^(not ok|# )' "$out" | head -20
		count_tap "$out" "unit $2 ${t##*/}"
		if [ $rc -ne 0 ] && grep -q '^ok ' "$out" && ! grep -q '^not ok' "$out"; then
			FAIL=$((FAIL + 1)); FAILED+=("unit $2 ${t##*/} (exit $rc)"); tail -20 "$out"
		fi
		rm -f "$out"
	done
}

not_executable() { # name
	echo "FAIL: $1 is not executable (chmod +x), its checks did not run"
	FAIL=$((FAIL + 1)); FAILED+=("$1 (not executable)")
}

run_scripts() { # label, bin dir, scripts...
	local label=$1 bin=$2 s out rc; shift 2
	for s in "$@"; do
		[ -e "$s" ] || continue
		if ! [ -x "$s" ]; then not_executable "$label $s"; continue; fi
		out=$(mktemp)
		local t0=$SECONDS
		MINICDN_BIN=$bin timeout "${DEPLOY_TIMEOUT:-300}" "$s" >"$out" 2>&1
		rc=$?
		echo "== $label $s ($((SECONDS - t0)) s)"
		grep -E '^(FAIL|SKIP)' "$out" | head -20
		count_lines "$out" "$label $s" $rc
		[ $rc -ne 0 ] && tail -40 "$out"
		rm -f "$out"
	done
}

run_scripts static "$ROOT/build/bin" tests/static/*.py
run_units build normal
run_scripts integration "$ROOT/build/bin" tests/integration/*/run.sh
if [ $QUICK = 0 ]; then
	if [ "$(id -u)" -eq 0 ]; then
		run_scripts netns "$ROOT/build/bin" tests/netns/*.sh
	elif sudo -n true 2>/dev/null; then
		for s in tests/netns/*.sh; do
			if ! [ -x "$s" ]; then not_executable "netns $s"; continue; fi
			out=$(mktemp)
			sudo -n env MINICDN_BIN="$ROOT/build/bin" timeout 300 "$s" >"$out" 2>&1
			rc=$?
			echo "== netns (sudo) $s"
			grep -E '^FAIL' "$out" | head -20
			count_lines "$out" "netns $s" $rc
			rm -f "$out"
		done
	else
		echo "== netns tests skipped: they need root (namespaces)"; FAIL=$((FAIL + 1)); FAILED+=("netns (not root)")
	fi
	# The deployment on booted containers (make test-deploy): root only.
	if [ "$(id -u)" -eq 0 ]; then
		DEPLOY_TIMEOUT=1800 run_scripts deploy "$ROOT/build/bin" tests/deploy/run.sh
	else
		echo "== deploy test skipped: it needs root (namespaces, systemd-nspawn); run: sudo make test-deploy"
	fi
	run_scripts fuzz "$ROOT/build/bin" tests/fuzz/run.sh
	run_scripts fuzz "$ROOT/build/bin" tests/fuzz/targets.sh
	run_units build/asan asan
	run_scripts integration-asan "$ROOT/build/asan/bin" tests/integration/*/run.sh
fi

echo
for f in "${FAILED[@]+"${FAILED[@]}"}"; do echo "failed: $f"; done
echo "tests took $((SECONDS - START)) s"
echo "$PASS passed, $FAIL failed, $SKIP skipped"
[ "$FAIL" -eq 0 ]
