#!/usr/bin/env bash
# edge-store: persistence across restart and kill -9, integrity, LRU eviction
# with a small map, purge API (URL, prefix, tag) with authentication.
. "$(dirname "$0")/../../lib.sh"
t_init edge-store
. "$T_ROOT/tests/integration/edge-common.sh"
EDGE_MAP=4M EDGE_MAXOBJ=256K edge_setup

# --- restart: entries survive, served as hits without the origin
for i in 1 2 3; do oset "{\"path\":\"/p$i\",\"headers\":{\"Cache-Control\":\"max-age=300\"},\"size\":$((i * 10000))}"; get /p$i; cp "$T_DIR/b" "$T_DIR/p$i"; done
t_stop edge
edge_start
for i in 1 2 3; do
	get /p$i
	t_check "after restart: /p$i is a hit" cs_has "; hit"
	t_check "after restart: /p$i bytes identical" cmp -s "$T_DIR/b" "$T_DIR/p$i"
done
t_eq "after restart: origin saw each object once" "1 1 1" "$(ocount /p1) $(ocount /p2) $(ocount /p3)"

# --- kill -9 during a stream of stores: what is served later is whole
for i in $(seq 1 40); do oset "{\"path\":\"/k$i\",\"headers\":{\"Cache-Control\":\"max-age=300\"},\"size\":$((20000 + i))}"; done
( for i in $(seq 1 40); do curl -s -o /dev/null "$E/k$i"; done ) &
loader=$!
sleep 0.3
t_kill9 edge
wait $loader 2>/dev/null
edge_start
bad=0; hits=0
for i in $(seq 1 40); do
	get /k$i
	n=$(stat -c %s "$T_DIR/b")
	[ "$n" -eq $((20000 + i)) ] || bad=$((bad + 1))
	cs_has "; hit" && hits=$((hits + 1))
done
t_eq "after kill -9: every object whole (hit or refetched)" 0 "$bad"
t_check "after kill -9: some entries survived ($hits hits)" test "$hits" -ge 1
get /p2
t_check "after kill -9: older entry still a hit" cs_has "; hit"

# --- eviction: a 4 MiB map, 12 MiB of objects: never an error, old ones evicted
stored() { curl -s "$E/metrics" | awk '$1 == "minicdn_edge_stored_total" {print $2}'; }
s0=$(stored)
fails=0
for i in $(seq 1 60); do
	oset "{\"path\":\"/ev$i\",\"headers\":{\"Cache-Control\":\"max-age=300\"},\"size\":200000}"
	code=$(curl -s -o /dev/null -w '%{http_code}' "$E/ev$i")
	[ "$code" = 200 ] || fails=$((fails + 1))
done
t_eq "small map: no request failed while filling 3x the map" 0 "$fails"
# Stores commit behind the responses (the writer's group commit): wait for all 60.
for _ in $(seq 100); do [ $(($(stored) - s0)) -ge 60 ] && break; sleep 0.1; done
t_eq "small map: all 60 stores committed" 60 "$(($(stored) - s0))"
get /ev60
t_check "small map: newest object is a hit" cs_has "; hit"
get /ev1
t_check "small map: oldest object was evicted" cs_has "uri-miss"
t_check "metrics count evictions" sh -c "curl -s $E/metrics | grep -E '^minicdn_edge_evicted_total [1-9]'"
# LRU, not FIFO: /hot, stored before ten cold objects but read again later,
# outlives them when newer fills force an eviction.  On a fresh store so that
# only these objects are older than the fill.  An access is written to the LRU
# once it is TOUCH_GRANULARITY (10 s) younger than the last one, by the main
# loop within a second: hence the read after 12 s and the pause after it.
t_stop edge
rm -rf "$T_DIR/cache"
edge_start
oset '{"path":"/hot","headers":{"Cache-Control":"max-age=300"},"size":100000}'
get /hot
hot_at=$(date +%s)
# The LRU orders by second, then by key: the cold objects go in later seconds.
while [ "$(date +%s)" -le $((hot_at + 1)) ]; do sleep 0.1; done
for i in $(seq 1 10); do
	oset "{\"path\":\"/cold$i\",\"headers\":{\"Cache-Control\":\"max-age=300\"},\"size\":200000}"
	curl -s -o /dev/null "$E/cold$i"
done
wait_s=$((hot_at + 12 - $(date +%s)))
[ "$wait_s" -gt 0 ] && sleep "$wait_s"
get /hot
t_check "LRU: /hot read again 12 s after it was stored: a hit" cs_has "; hit"
sleep 1.5
evicted() { curl -s "$E/metrics" | sed -n 's/^minicdn_edge_evicted_total \([0-9]*\)$/\1/p'; }
ev0=$(evicted) fills=0
# 200 KB fills until the store evicts (above 75 % of the 4 MiB map it evicts
# down to 60 %: about four cold objects' worth); bounded at 25 (5 MB).
while [ "$fills" -lt 25 ] && [ "$(evicted)" = "$ev0" ]; do
	fills=$((fills + 1))
	oset "{\"path\":\"/fill$fills\",\"headers\":{\"Cache-Control\":\"max-age=300\"},\"size\":200000}"
	curl -s -o /dev/null "$E/fill$fills"
	sleep 0.1
done
t_check "LRU: the fills made the store evict (after $fills fills, evicted_total $ev0 -> $(evicted))" \
	test "$(evicted)" -gt "$ev0"
get /hot
t_check "LRU: /hot, read recently, is still a hit after the eviction" cs_has "; hit"
t_eq "LRU: the origin saw /hot once" 1 "$(ocount /hot)"
# only-if-cached asks the store alone: a 504 is an evicted object, and
# nothing is refetched (a refetch would evict more and blur the count).
cold_gone=0 first_gone=
for i in $(seq 1 10); do
	get /cold$i -H 'Cache-Control: only-if-cached'
	[ "$(status)" = 504 ] && { cold_gone=$((cold_gone + 1)); first_gone=${first_gone:-$i}; }
done
t_check "LRU: cold objects stored after /hot and not read since were evicted ($cold_gone of 10)" \
	test "$cold_gone" -ge 1
get "/cold${first_gone:-1}"
t_check "LRU: an evicted cold object is a miss again" cs_has "uri-miss"
t_eq "LRU: the origin saw the evicted cold object twice" 2 "$(ocount "/cold${first_gone:-1}")"
t_check "eviction keeps entries within the map: healthz answers" t_wait_http "$E/healthz" 2

# --- purge API
AUTH='Authorization: Bearer test-secret'
for p in /s/a /s/b /t/c; do oset "{\"path\":\"$p\",\"headers\":{\"Cache-Control\":\"max-age=300\",\"Surrogate-Key\":\"grp-$(basename $(dirname $p)) all\"},\"body\":\"$p\"}"; get $p; done
oset '{"path":"/tag2","headers":{"Cache-Control":"max-age=300","Cache-Tag":"ct1,ct2"},"body":"t"}'
get /tag2
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{"url":"x"}' "$E/.minicdn/purge")
t_eq "purge without secret: 401" 401 "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer wrong' -X POST -d '{"url":"x"}' "$E/.minicdn/purge")
t_eq "purge with a wrong secret: 401" 401 "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "$AUTH" -X POST -d '{"nope":1}' "$E/.minicdn/purge")
t_eq "purge with a bad body: 400" 400 "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "$AUTH" -X POST -d 'not json' "$E/.minicdn/purge")
t_eq "purge with invalid JSON: 400" 400 "$code"
r=$(curl -s -H "$AUTH" -X POST -d "{\"url\":\"http://127.0.0.1:$EPORT/s/./a\"}" "$E/.minicdn/purge")
t_eq "purge by URL (normalised): 1 entry" '{"purged":1}' "$r"
get /s/a
t_check "purged URL is a miss" cs_has "uri-miss"
get /s/b
t_check "other URL untouched" cs_has "; hit"
r=$(curl -s -H "$AUTH" -X POST -d '{"prefix":"/s/"}' "$E/.minicdn/purge")
t_eq "purge by path prefix: 2 entries" '{"purged":2}' "$r"
get /s/b
t_check "prefix-purged URL is a miss" cs_has "uri-miss"
r=$(curl -s -H "$AUTH" -X POST -d '{"tag":"grp-t"}' "$E/.minicdn/purge")
t_eq "purge by Surrogate-Key: 1 entry" '{"purged":1}' "$r"
get /t/c
t_check "tag-purged URL is a miss" cs_has "uri-miss"
r=$(curl -s -H "$AUTH" -X POST -d '{"tag":"ct2"}' "$E/.minicdn/purge")
t_eq "purge by Cache-Tag: 1 entry" '{"purged":1}' "$r"
for p in /q/1 /q/2 /qq; do get $p; done
r=$(curl -s -H "$AUTH" -X POST -d "{\"prefix\":\"http://127.0.0.1:$EPORT/q/\"}" "$E/.minicdn/purge")
t_eq "purge by absolute prefix: the 2 /q/ objects" '{"purged":2}' "$r"
get /qq
t_check "absolute prefix purge left /qq" cs_has "; hit"
t_eq "origin requests for /s/a: 2 (before and after purge)" 2 "$(ocount /s/a)"

# --- SIGTERM with a request in flight: it finishes, then the edge exits cleanly
oset '{"path":"/slow","headers":{"Cache-Control":"max-age=300"},"body":"slow","delay":1.0}'
( curl -s -o "$T_DIR/slow" "$E/slow" ) &
cpid=$!
sleep 0.3
kill -TERM "$(t_pid edge)"
wait $cpid
t_eq "in-flight request finished during SIGTERM" slow "$(cat "$T_DIR/slow")"
t_stop edge
t_check "edge logged a clean stop" grep -q "stopped" "$T_DIR/edge.log"
edge_start
get /slow
t_check "response fetched during shutdown was stored" cs_has "; hit"

# --- body checksums.  A clean stop (SIGTERM) leaves a marker: the next start
# checks the structure only.  After kill -9 every body's crc32 is verified;
# bytes that differ from what was stored (as after an OS crash that lost
# pages the meta page points at) make the store count as damaged: moved
# aside, and the object refetched -- never served with the wrong bytes.
for n in A B; do
	fill=$(head -c 1500 /dev/zero | tr '\0' "$n")
	oset "{\"path\":\"/crc$n\",\"headers\":{\"Cache-Control\":\"max-age=300\"},\"body\":\"CRC-MARKER-$n-$$-$fill\"}"
	get /crc$n; cp "$T_DIR/b" "$T_DIR/crc$n"
	get /crc$n
	t_check "checksums: /crc$n stored (a hit)" cs_has "; hit"
done
t_stop edge
mv "$T_DIR/edge.log" "$T_DIR/edge-crc1.log.old"
edge_start
t_check "clean stop: the next start skips the body checksums" \
	grep -q "cache: store $T_DIR/cache: the previous run stopped cleanly: .*body checksums skipped" "$T_DIR/edge.log"
get /crcA
t_check "clean stop: /crcA still a hit" cs_has "; hit"
t_check "clean stop: /crcA bytes identical" cmp -s "$T_DIR/b" "$T_DIR/crcA"
# kill -9 with intact bytes: every checksum verified, entries kept.
t_kill9 edge
mv "$T_DIR/edge.log" "$T_DIR/edge-crc2.log.old"
edge_start
t_check "kill -9: the next start verifies body checksums" \
	grep -qE "cache: store $T_DIR/cache: the previous run did not stop cleanly: [1-9][0-9]* body checksums verified" "$T_DIR/edge.log"
t_check "kill -9, intact: no damage reported" sh -c "! grep -q damaged '$T_DIR/edge.log'"
get /crcB
t_check "kill -9, intact: /crcB a hit" cs_has "; hit"
# kill -9, then one body byte changed on disk (every copy of the marker).
t_kill9 edge
flipped=$(python3 - "$T_DIR/cache/data.mdb" "CRC-MARKER-A-$$-" <<'PY'
import sys
path, marker = sys.argv[1], sys.argv[2].encode()
d = bytearray(open(path, "rb").read())
n, i = 0, d.find(marker)
while i >= 0:
    d[i + len(marker) + 100] ^= 0x01   # a byte inside the body's filler
    n += 1
    i = d.find(marker, i + 1)
open(path, "r+b").write(d)
print(n)
PY
)
t_check "corruption: the marker was found in data.mdb ($flipped copies)" test "$flipped" -ge 1
rm -f "$T_DIR/cache/data.mdb.damaged"
mv "$T_DIR/edge.log" "$T_DIR/edge-crc3.log.old"
n0=$(ocount /crcA)
edge_start
t_check "corrupted body: ERROR names the checksum mismatch" \
	grep -qE "ERROR .*cache: store $T_DIR/cache/data.mdb is damaged \(database b: body [0-9]+: checksum mismatch" "$T_DIR/edge.log"
get /crcA
t_eq "corrupted body: /crcA served 200" 200 "$(status)"
t_check "corrupted body: /crcA not served with the changed bytes" cmp -s "$T_DIR/b" "$T_DIR/crcA"
t_check "corrupted body: /crcA came from the origin" cs_has "uri-miss"
t_eq "corrupted body: origin count for /crcA" $((n0 + 1)) "$(ocount /crcA)"

# --- a damaged store (as an OS crash with unsynced commits could leave it):
# moved aside with an ERROR naming the path and reason; the edge starts empty
# and serves from the origin.  First the meta pages, then the tree under
# intact meta pages (the realistic case: pages the meta points to never hit
# the disk).
oset '{"path":"/dmg","headers":{"Cache-Control":"max-age=300"},"size":30000}'
get /dmg; cp "$T_DIR/b" "$T_DIR/dmg"
get /dmg
t_check "before damage: /dmg is a hit" cs_has "; hit"
n0=$(ocount /dmg)
for mode in meta tree; do
	t_stop edge
	pages=$(( $(stat -c %s "$T_DIR/cache/data.mdb") / 4096 ))
	if [ $mode = meta ]; then
		dd if=/dev/urandom of="$T_DIR/cache/data.mdb" bs=4096 count=2 conv=notrunc 2>/dev/null
	else
		dd if=/dev/urandom of="$T_DIR/cache/data.mdb" bs=4096 seek=2 count=$((pages - 2)) conv=notrunc 2>/dev/null
	fi
	rm -f "$T_DIR/cache/data.mdb.damaged"
	mv "$T_DIR/edge.log" "$T_DIR/edge-before-$mode.log.old"
	edge_start
	t_check "damaged $mode: the edge started" t_wait_http "$E/healthz" 2
	t_check "damaged $mode: ERROR names the store and the reason" \
		grep -qE "ERROR .*cache: store $T_DIR/cache/data.mdb is damaged \(.+\): moved to $T_DIR/cache/data.mdb.damaged" "$T_DIR/edge.log"
	grep -o 'is damaged ([^)]*)' "$T_DIR/edge.log" | sed "s/^/    ($mode) /"
	t_check "damaged $mode: the damaged file was kept aside" test -s "$T_DIR/cache/data.mdb.damaged"
	get /dmg
	t_eq "damaged $mode: /dmg served 200" 200 "$(status)"
	t_check "damaged $mode: /dmg came from the origin" cs_has "uri-miss"
	t_check "damaged $mode: /dmg bytes identical" cmp -s "$T_DIR/b" "$T_DIR/dmg"
	n0=$((n0 + 1))
	t_eq "damaged $mode: origin count for /dmg" "$n0" "$(ocount /dmg)"
	get /dmg
	t_check "damaged $mode: the new store works (/dmg a hit again)" cs_has "; hit"
done
# A sound store is not touched by the check.
t_stop edge
mv "$T_DIR/edge.log" "$T_DIR/edge-sound.log.old"
edge_start
get /dmg
t_check "sound store after restart: /dmg a hit" cs_has "; hit"
t_check "sound store: no damage reported" sh -c "! grep -q damaged '$T_DIR/edge.log'"

# --- a checksum pass longer than the start's wait (check_time) goes on in the
# background: the edge serves meanwhile, each body from before the stop is
# verified when read, a bad one is refetched (never served) and the pass
# deletes the bad entries it finds.  300 small objects: the pass's second
# batch of 256 comes seconds later at 8 KB/s.
t_stop edge
rm -rf "$T_DIR/cache"
EDGE_CACHE_EXTRA='check_time = "1ms"; verify_rate = "8K";'
edge_write_conf
mv "$T_DIR/edge.log" "$T_DIR/edge-bg0.log.old"
edge_start
for i in 5 290; do
	oset "{\"path\":\"/bg$i\",\"headers\":{\"Cache-Control\":\"max-age=300\"},\"body\":\"BGCRC-$i-$$-$(head -c 80 /dev/zero | tr '\0' z)\"}"
done
curl -s -o /dev/null "$E/bg[1-300]"
get /bg290; cp "$T_DIR/b" "$T_DIR/bg290"
t_check "background pass: /bg290 stored before the stop" cs_has "; hit"
get /bg5; cp "$T_DIR/b" "$T_DIR/bg5"
t_kill9 edge
flipped=$(python3 - "$T_DIR/cache/data.mdb" "BGCRC-5-$$-" "BGCRC-290-$$-" <<'PY'
import sys
path = sys.argv[1]
d = bytearray(open(path, "rb").read())
n = 0
for marker in (m.encode() for m in sys.argv[2:]):
    i = d.find(marker)
    while i >= 0:
        d[i + len(marker) + 10] ^= 0x01
        n += 1
        i = d.find(marker, i + 1)
open(path, "r+b").write(d)
print(n)
PY
)
t_check "background pass: both markers found in data.mdb ($flipped copies)" test "$flipped" -ge 2
mv "$T_DIR/edge.log" "$T_DIR/edge-bg1.log.old"
n290=$(ocount /bg290); n5=$(ocount /bg5)
edge_start
t_check "background pass: the edge started and says the checksums go on in the background" \
	grep -q "cache: store $T_DIR/cache: the previous run did not stop cleanly: structure sound in .* the body checksums go on in the background" "$T_DIR/edge.log"
t_check "background pass: /metrics shows the store unverified" \
	sh -c "curl -s $E/metrics | grep -qx 'minicdn_edge_cache_unverified 1'"
get /bg290
t_eq "background pass: /bg290 (not yet reached) served 200" 200 "$(status)"
t_check "background pass: /bg290 not served with the changed bytes" cmp -s "$T_DIR/b" "$T_DIR/bg290"
t_check "background pass: /bg290 refetched from the origin" cs_has "uri-miss"
t_eq "background pass: origin count for /bg290" $((n290 + 1)) "$(ocount /bg290)"
t_check "background pass: ERROR names the body that failed on read" \
	grep -qE "ERROR .*cache: http://127.0.0.1:$EPORT/bg290: body [0-9]+ fails its checksum" "$T_DIR/edge.log"
get /bg100
t_check "background pass: a sound old object is a hit meanwhile" cs_has "; hit"
done_line=""
for _ in $(seq 200); do
	done_line=$(grep "background checksum pass done" "$T_DIR/edge.log") && break
	sleep 0.1
done
t_check "background pass: it ends, naming both bad bodies and the entry it deleted" \
	grep -qE "background checksum pass done in .*: (29[0-9]|30[0-9]) verified, 2 mismatched .*entries deleted: 1\)" <<<"$done_line"
t_check "background pass: /metrics counts 2 bad bodies, store verified" \
	sh -c "curl -s $E/metrics | grep -qx 'minicdn_edge_cache_bad_bodies_total 2' && curl -s $E/metrics | grep -qx 'minicdn_edge_cache_unverified 0'"
get /bg5
t_check "background pass: /bg5 (found by the pass) refetched, right bytes" \
	sh -c "cmp -s '$T_DIR/b' '$T_DIR/bg5' && grep -qi '^cache-status:.*uri-miss' '$T_DIR/h'"
t_eq "background pass: origin count for /bg5" $((n5 + 1)) "$(ocount /bg5)"
get /bg290
t_check "background pass: the refetched /bg290 is a hit" cs_has "; hit"
t_stop edge
mv "$T_DIR/edge.log" "$T_DIR/edge-bg2.log.old"
edge_start
t_check "background pass done, clean stop: the next start skips the checksums" \
	grep -q "cache: store $T_DIR/cache: the previous run stopped cleanly" "$T_DIR/edge.log"
get /bg200
t_check "background pass: /bg200 still a hit after the restart" cs_has "; hit"

t_done
