#!/bin/bash
# testbed: the multi-region testbed end to end, small (three regions, ~30 s).
#   - bad input: non-root, a broken regions file, a broken WAN emulator config
#   - `up` builds the namespaces, the WAN emulator and the CDN
#   - measured RTT (TCP handshake and UDP echo) matches the matrix within 10 %
#   - redirect with ECS: accuracy 100 %, no penalty
#   - far resolvers: 100 % with ECS, wrong without (the server really uses ECS)
#   - failover: DNS stops answering a killed edge within interval x fall + 1 s,
#     never answers it again while it is down, no failure elsewhere, it returns
#   - `down` leaves no namespace, link or process behind
. "$(dirname "$0")/../lib.sh"
t_init testbed
TB=$T_ROOT/scripts/testbed/testbed
EXP=$T_ROOT/scripts/experiment
NAME=nt$$
export MINICDN_BIN=$BIN

tb_cleanup() {
	"$TB" down --name "$NAME" >/dev/null 2>&1
	t_cleanup
}
trap tb_cleanup EXIT

kv() { grep -E "^$1=" "$2" | head -1 | cut -d= -f2; }

# ---- bad input
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$TB" up --name "$NAME" 2>&1)
t_check "non-root: refused with a clear message" grep -q "must run as root" <<<"$out"

cat >"$T_DIR/bad.conf" <<'EOF'
region eu 50 8
region us 39 -77
rtt eu us fast
EOF
out=$("$TB" up --name "$NAME" --regions "$T_DIR/bad.conf" 2>&1); rc=$?
t_check "bad regions file: non-zero exit" test $rc -ne 0
t_check "bad regions file: error names file:line" grep -q "bad.conf:3: rtt eu us: milliseconds expected" <<<"$out"
printf 'region eu 50 8\nregion us 39 -77\n' >"$T_DIR/bad2.conf"
out=$("$TB" up --name "$NAME" --regions "$T_DIR/bad2.conf" 2>&1)
t_check "regions file without a pair's RTT is refused" grep -q "no rtt between eu and us" <<<"$out"
t_eq "nothing made by a refused up" "" "$(ip netns list | grep "^$NAME-")"
printf 'region eu ns 10.0.0.0/24\nlink eu xx 10\n' >"$T_DIR/wanem.conf"
out=$("$BIN/wanem" -c "$T_DIR/wanem.conf" 2>&1); rc=$?
t_eq "wanem: bad config exits 2" 2 "$rc"
t_check "wanem: error names file:line" grep -q "wanem.conf:2: unknown region" <<<"$out"

# ---- up
cat >"$T_DIR/regions.conf" <<'EOF'
region eu  50.11    8.68
region us  39.04  -77.49
region ap   1.35  103.82
rtt eu us 40
rtt eu ap 70
rtt us ap 90
local_rtt 2
dns eu
origin eu
far eu ap
far us eu
far ap us
EOF
t0=$SECONDS
"$TB" up --name "$NAME" --regions "$T_DIR/regions.conf" >"$T_DIR/up.log" 2>&1
t_check "testbed up (3 regions, CDN healthy) in $((SECONDS - t0)) s" test -d "/run/minicdn-testbed/$NAME"
[ -d "/run/minicdn-testbed/$NAME" ] || { cat "$T_DIR/up.log"; t_done; }
cp "/run/minicdn-testbed/$NAME/pids" "$T_DIR/pids"
t_eq "one namespace per host and per region router" \
	"$(( $(wc -l <"/run/minicdn-testbed/$NAME/hosts") + 3 ))" "$(ip netns list | grep -c "^$NAME-")"
t_check "no route out of a client namespace" \
	bash -c "! ip netns exec $NAME-eu-client1 ip route get 8.8.8.8 >/dev/null 2>&1"

# ---- RTT matrix
VERIFY_COUNT=5 "$TB" verify-rtt --name "$NAME" >"$T_DIR/rtt.txt" 2>&1
cat "$T_DIR/rtt.txt"
# A wrong delay shows in every run; a probe lost or scheduled late on the
# shared 2-core machine does not.  So one failing round is measured again,
# with more samples, and only that second round decides.
if ! grep -q "^rtt check: 9/9 pairs" "$T_DIR/rtt.txt"; then
	echo "    first RTT round out of bounds; measuring again"
	VERIFY_COUNT=10 "$TB" verify-rtt --name "$NAME" >"$T_DIR/rtt.txt" 2>&1
	cat "$T_DIR/rtt.txt"
fi
t_check "measured RTT matches the matrix: within 10 % between regions, 0.5 ms inside one" grep -q "^rtt check: 9/9 pairs" "$T_DIR/rtt.txt"

# ---- redirect
"$EXP" redirect --name "$NAME" --out "$T_DIR/res" --requests 4 >"$T_DIR/redirect.log" 2>&1
S=$(ls "$T_DIR"/res/redirect-*/summary.txt 2>/dev/null | head -1)
t_check "redirect: report, CSV and plot written" test -s "${S%/*}/report.md" -a -s "${S%/*}/redirect.csv" -a -s "${S%/*}/redirect.png"
t_eq "redirect with ECS: accuracy" "100.0" "$(kv accuracy_pct "$S")"
t_eq "redirect: every request answered" "0" "$(kv unanswered "$S")"
t_eq "redirect: 12 requests judged" "12" "$(kv requests "$S")"
t_eq "redirect: p95 RTT penalty" "0.00" "$(kv penalty_p95_ms "$S")"

# ---- far resolvers
"$EXP" far-resolver --name "$NAME" --out "$T_DIR/res" --requests 3 >"$T_DIR/far.log" 2>&1
S=$(ls "$T_DIR"/res/far-resolver-*/summary.txt 2>/dev/null | head -1)
t_eq "far resolver with ECS: accuracy" "100.0" "$(kv accuracy_ecs_pct "$S")"
t_eq "far resolver without ECS: sent to the resolver's region" "0.0" "$(kv accuracy_noecs_pct "$S")"

# ---- failover
"$EXP" failover --name "$NAME" --out "$T_DIR/res" --duration 12 --kill-at 3 --restart-at 7 --interval 100 \
	>"$T_DIR/failover.log" 2>&1
S=$(ls "$T_DIR"/res/failover-*/summary.txt 2>/dev/null | head -1)
cat "$S" 2>/dev/null | sed 's/^/    /'
t_check "failover: the victim served requests before the kill" test "$(kv served_by_victim_before_kill "$S")" -gt 0
t_eq "failover: DNS stopped answering the killed edge within interval x fall + 1 s ($(kv failover_ms "$S") ms, bound $(kv bound_ms "$S") ms)" \
	1 "$(kv within_bound "$S")"
t_eq "failover: no answer named it again while it was down" 0 "$(kv answers_to_victim_after_failover "$S")"
t_eq "failover: no failed request outside the outage" 0 "$(kv failed_outside "$S")"
t_check "failover: the edge returned after restart ($(kv return_ms "$S") ms)" test "$(kv return_ms "$S")" != "-"
t_check "failover: report and plot written" test -s "${S%/*}/report.md" -a -s "${S%/*}/failover.png"

# ---- down
cat "/run/minicdn-testbed/$NAME/pids" >>"$T_DIR/pids"  # the restarted edge too
"$TB" down --name "$NAME" >/dev/null 2>&1
t_eq "down: no namespace left" "" "$(ip netns list | grep "^$NAME-")"
t_check "down: state dir removed" test ! -e "/run/minicdn-testbed/$NAME"
left=""
while read -r n pid host; do kill -0 "$pid" 2>/dev/null && left="$left $n($pid)"; done <"$T_DIR/pids"
t_eq "down: no process left" "" "$left"
t_eq "down: no veth or TUN of ours in the root namespace" "" "$(ip -o link | grep -E ': (v-[a-z0-9]+|wan0)[@:]')"
t_done
