#!/usr/bin/env bash
# edge-slices: large objects stored in 1 MiB slices fetched by Range.  Every
# check looks at the bytes the client got AND at what reached the origin
# (requests, their Range headers, body bytes sent).
. "$(dirname "$0")/../../lib.sh"
t_init edge-slices
. "$T_ROOT/tests/integration/edge-common.sh"
MIB=1048576
EDGE_MAP=512M
EDGE_CACHE_EXTRA='slice_size = "1M"; slice_min = "16M";'
edge_setup

obytes() { curl -s "$O/__bytes?path=$1"; }
oranges() { curl -s "$O/__ranges?path=$1"; }
obody() { curl -s -o "$2" "$O/__body?path=$1"; }
# same_bytes FULL OFF LEN FILE: FILE holds exactly LEN bytes of FULL from OFF.
same_bytes() {
	python3 - "$@" <<'PY'
import sys
full, off, n, got = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with open(full, "rb") as f:
    f.seek(off)
    want = f.read(n)
sys.exit(0 if open(got, "rb").read() == want and len(want) == n else 1)
PY
}
# slices_of OFF LEN: the 1 MiB slice indexes the bytes cover, one a line.
slices_of() { python3 -c "import sys;a=int(sys.argv[1]);b=a+int(sys.argv[2])-1;print('\n'.join(str(i) for i in range(a//$MIB,b//$MIB+1)))" "$1" "$2"; }

V_HDRS='"Cache-Control":"max-age=600","ETag":"\"v1\"","Content-Type":"video/mp4"'

# --- 64 MiB object, ranges at random offsets: only the covering slices fetched
oset "{\"path\":\"/v\",\"size\":$((64 * MIB)),\"random\":true,\"ranges\":true,\"headers\":{$V_HDRS}}"
obody /v "$T_DIR/v"
: >"$T_DIR/want_slices"
client_bytes=0
ok=0
ranges=$(python3 -c "
import random
r = random.Random(17)
for _ in range(10):
    n = r.choice([1, 4096, 1048576, 1048576, 2500000, 3 * 1048576 + 7])
    print(r.randrange(0, 64 * 1048576 - n), n)")
while read -r off len; do
	get /v -H "Range: bytes=$off-$((off + len - 1))"
	if [ "$(status)" = 206 ] && [ "$(hdr Content-Range)" = "bytes $off-$((off + len - 1))/$((64 * MIB))" ] &&
		same_bytes "$T_DIR/v" "$off" "$len" "$T_DIR/b"; then
		ok=$((ok + 1))
	else
		echo "range $off+$len: $(status) $(hdr Content-Range)"
	fi
	client_bytes=$((client_bytes + len))
	slices_of "$off" "$len" >>"$T_DIR/want_slices"
done <<<"$ranges"
t_eq "10 random ranges: 206, Content-Range and bytes exact" 10 "$ok"
nslices=$(sort -un "$T_DIR/want_slices" | wc -l)
t_eq "origin: one request per covering slice" "$nslices" "$(ocount /v)"
want_ranges=$(sort -un "$T_DIR/want_slices" | awk -v m=$MIB '{printf "bytes=%d-%d\n", $1*m, ($1+1)*m-1}')
got_ranges=$(oranges /v | python3 -c 'import json,sys;print("\n".join(sorted(json.load(sys.stdin), key=lambda s:int(s[6:].split("-")[0]))))')
t_eq "origin: asked exactly the covering slices, each once" "$want_ranges" "$got_ranges"
t_eq "origin: bytes sent = covering slices" "$((nslices * MIB))" "$(obytes /v)"
echo "INFO: random ranges: client $client_bytes bytes, origin $(obytes /v) bytes" \
	"($(python3 -c "print(round($(obytes /v)/$client_bytes, 2))") origin bytes per client byte)"

# the same ranges again: all from the cache
before=$(ocount /v)
ok=0
while read -r off len; do
	get /v -H "Range: bytes=$off-$((off + len - 1))"
	[ "$(status)" = 206 ] && cs_has "; hit" && same_bytes "$T_DIR/v" "$off" "$len" "$T_DIR/b" && ok=$((ok + 1))
done <<<"$ranges"
t_eq "warm: the same ranges are hits, bytes exact" 10 "$ok"
t_eq "warm: no origin request" "$before" "$(ocount /v)"

# --- a full GET after partial fills: the missing slices only, streamed in order
get /v
t_eq "full GET: 200" 200 "$(status)"
t_eq "full GET: Content-Length" "$((64 * MIB))" "$(hdr Content-Length)"
t_check "full GET: bytes exact" cmp -s "$T_DIR/b" "$T_DIR/v"
t_eq "full GET: origin asked only the 64 - $nslices missing slices" 64 "$(ocount /v)"
t_eq "full GET: origin sent each byte once in all" "$((64 * MIB))" "$(obytes /v)"
t_eq "full GET: ETag of the object" '"v1"' "$(hdr ETag)"
t_check "full GET: no Content-Range" test -z "$(hdr Content-Range)"
get /v
t_check "second full GET: hit, bytes exact" sh -c "grep -qi '^Cache-Status:.*; hit' '$T_DIR/h' && cmp -s '$T_DIR/b' '$T_DIR/v'"
t_eq "second full GET: no origin request" 64 "$(ocount /v)"
curl -s -I "$E/v" >"$T_DIR/h"
t_eq "HEAD: 200 with the object's length" "200 $((64 * MIB))" "$(status) $(hdr Content-Length)"
get /v -H 'If-None-Match: "v1"'
t_eq "If-None-Match on a sliced object: 304" 304 "$(status)"
get /v -H "Range: bytes=$((64 * MIB))-"
t_eq "range past the end: 416" "416 bytes */$((64 * MIB))" "$(status) $(hdr Content-Range)"
get /v -H 'Range: bytes=-100'
t_check "suffix range: last 100 bytes" same_bytes "$T_DIR/v" $((64 * MIB - 100)) 100 "$T_DIR/b"
get /v -H 'Range: bytes=0-9,100-109'
t_eq "several ranges: the whole object (200)" "200 $((64 * MIB))" "$(status) $(stat -c %s "$T_DIR/b")"
t_eq "still no origin request" 64 "$(ocount /v)"

# --- full GETs only: the first streams through and records the head, the
# second fills the slices, the third is a hit
F_HDRS='"Cache-Control":"max-age=600","ETag":"\"f1\""'
oset "{\"path\":\"/f\",\"size\":$((20 * MIB)),\"random\":true,\"ranges\":true,\"headers\":{$F_HDRS}}"
obody /f "$T_DIR/f"
get /f
t_check "full GET of an unknown large object: 200, bytes exact" sh -c "[ \"\$(head -1 '$T_DIR/h' | cut -d' ' -f2)\" = 200 ] && cmp -s '$T_DIR/b' '$T_DIR/f'"
t_eq "... one origin request, no Range" '[null]' "$(oranges /f | tr -d ' ')"
get /f
t_check "second full GET: from slices, bytes exact" cmp -s "$T_DIR/b" "$T_DIR/f"
t_eq "... the 20 slices fetched" 21 "$(ocount /f)"
get /f
t_check "third full GET: a hit, bytes exact" sh -c "grep -qi '^Cache-Status:.*; hit' '$T_DIR/h' && cmp -s '$T_DIR/b' '$T_DIR/f'"
t_eq "... no origin request" 21 "$(ocount /f)"

# --- concurrent range misses on one slice: one origin fetch
C_HDRS='"Cache-Control":"max-age=600","ETag":"\"c1\""'
oset "{\"path\":\"/c\",\"size\":$((32 * MIB)),\"random\":true,\"ranges\":true,\"delay\":1,\"headers\":{$C_HDRS}}"
obody /c "$T_DIR/c"
conc() { # base: 5 clients, ranges inside slice base/MIB
	local base=$1 pids=() i
	for i in 1 2 3 4 5; do
		curl -s -o "$T_DIR/c$i" --max-time 15 -H "Range: bytes=$((base + i * 1000))-$((base + i * 1000 + 99999))" "$E/c" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i"; done
	local ok=0
	for i in 1 2 3 4 5; do same_bytes "$T_DIR/c" $((base + i * 1000)) 100000 "$T_DIR/c$i" && ok=$((ok + 1)); done
	echo "$ok"
}
t_eq "5 concurrent range misses, object unknown: bytes exact" 5 "$(conc $((3 * MIB)))"
t_eq "... one origin request" 1 "$(ocount /c)"
t_eq "5 concurrent range misses on another slice: bytes exact" 5 "$(conc $((9 * MIB)))"
t_eq "... one more origin request" 2 "$(ocount /c)"

# --- the ETag changes at the origin
E_HDRS='"Cache-Control":"max-age=600","ETag":"\"e1\""'
oset "{\"path\":\"/e\",\"size\":$((24 * MIB)),\"random\":true,\"seed\":\"one\",\"ranges\":true,\"headers\":{$E_HDRS}}"
obody /e "$T_DIR/e1"
get /e -H "Range: bytes=0-$((3 * MIB - 1))"
t_check "v1: slices 0-2 filled, bytes exact" same_bytes "$T_DIR/e1" 0 $((3 * MIB)) "$T_DIR/b"
t_eq "v1: 3 origin requests" 3 "$(ocount /e)"
E_HDRS='"Cache-Control":"max-age=600","ETag":"\"e2\""'
oset "{\"path\":\"/e\",\"size\":$((24 * MIB)),\"random\":true,\"seed\":\"two\",\"ranges\":true,\"headers\":{$E_HDRS}}"
obody /e "$T_DIR/e2"
get /e -H "Range: bytes=$((5 * MIB + 10))-$((5 * MIB + 20009))"
t_eq "changed ETag, a slice not stored: the new version" "206 \"e2\"" "$(status) $(hdr ETag)"
t_check "... bytes of the new version" same_bytes "$T_DIR/e2" $((5 * MIB + 10)) 20000 "$T_DIR/b"
get /e -H "Range: bytes=100-199"
t_eq "old slice 0 after the change: not served (new ETag)" "206 \"e2\"" "$(status) $(hdr ETag)"
t_check "... bytes of the new version" same_bytes "$T_DIR/e2" 100 100 "$T_DIR/b"
t_eq "... refetched: 5 origin requests" 5 "$(ocount /e)"
get /e -H "Range: bytes=100-199"
t_check "slice 0 of the new version now a hit" cs_has "; hit"
# Mid-response: slice 0 stored (e2), slice 1 stale (e1) but then e3 appears.
E_HDRS='"Cache-Control":"max-age=600","ETag":"\"e3\""'
oset "{\"path\":\"/e\",\"size\":$((24 * MIB)),\"random\":true,\"seed\":\"three\",\"ranges\":true,\"headers\":{$E_HDRS}}"
obody /e "$T_DIR/e3"
curl -s -o "$T_DIR/b" -D "$T_DIR/h" --max-time 10 -H "Range: bytes=0-$((2 * MIB - 1))" "$E/e"
rc=$?
t_check "change mid-response: the response is cut short (no mixed versions)" \
	sh -c "[ $rc -ne 0 ] && [ \$(stat -c %s '$T_DIR/b') -lt $((2 * MIB)) ]"
get /e -H "Range: bytes=0-$((2 * MIB - 1))"
t_eq "next request: the newest version whole" "206 \"e3\"" "$(status) $(hdr ETag)"
t_check "... bytes exact" same_bytes "$T_DIR/e3" 0 $((2 * MIB)) "$T_DIR/b"

# --- an origin that ignores Range
N_HDRS='"Cache-Control":"max-age=600","ETag":"\"n1\""'
oset "{\"path\":\"/n\",\"size\":$((20 * MIB)),\"random\":true,\"headers\":{$N_HDRS}}"
obody /n "$T_DIR/n"
get /n -H "Range: bytes=$((7 * MIB))-$((7 * MIB + 999))"
t_eq "origin ignores Range: still 206 to the client" "206 bytes $((7 * MIB))-$((7 * MIB + 999))/$((20 * MIB))" "$(status) $(hdr Content-Range)"
t_check "... bytes exact" same_bytes "$T_DIR/n" $((7 * MIB)) 1000 "$T_DIR/b"
t_eq "... one origin request: the probe's 200 is the answer" 1 "$(ocount /n)"
# (the rest of the object may still be crossing: the edge reads it to the end)
t_check "... the object crossed at most once" test "$(obytes /n)" -le $((20 * MIB))
# small enough to store whole: later ranges are hits
oset "{\"path\":\"/ns\",\"size\":300000,\"random\":true,\"headers\":{$N_HDRS}}"
obody /ns "$T_DIR/ns"
get /ns -H "Range: bytes=1000-1999"
t_check "small, Range ignored: bytes exact" same_bytes "$T_DIR/ns" 1000 1000 "$T_DIR/b"
get /ns -H "Range: bytes=5000-5999"
t_check "... stored whole: the next range is a hit" sh -c "grep -qi '^Cache-Status:.*; hit' '$T_DIR/h'"
t_eq "... 1 origin request in all" 1 "$(ocount /ns)"
# sliced first, then the origin stops honouring Range
S_HDRS='"Cache-Control":"max-age=600","ETag":"\"s1\""'
oset "{\"path\":\"/s\",\"size\":$((20 * MIB)),\"random\":true,\"ranges\":true,\"headers\":{$S_HDRS}}"
obody /s "$T_DIR/s"
get /s -H "Range: bytes=0-999"
t_eq "sliced: 1 origin request" 1 "$(ocount /s)"
oset "{\"path\":\"/s\",\"size\":$((20 * MIB)),\"random\":true,\"headers\":{$S_HDRS}}"
get /s -H "Range: bytes=$((4 * MIB))-$((4 * MIB + 999))"
t_check "origin stopped honouring Range: bytes exact" same_bytes "$T_DIR/s" $((4 * MIB)) 1000 "$T_DIR/b"
t_eq "... 206" 206 "$(status)"

# --- objects not sliced: small ones are stored whole after one probe
oset '{"path":"/small","size":200000,"random":true,"ranges":true,"headers":{"Cache-Control":"max-age=600","ETag":"\"m\""}}'
obody /small "$T_DIR/small"
get /small -H 'Range: bytes=10-19'
t_check "small object range: bytes exact" same_bytes "$T_DIR/small" 10 10 "$T_DIR/b"
get /small -H 'Range: bytes=100-199'
t_check "... then a hit (stored whole)" cs_has "; hit"
t_eq "... probe + whole object: 2 origin requests" 2 "$(ocount /small)"
# no strong validator: never sliced
oset "{\"path\":\"/w\",\"size\":$((20 * MIB)),\"random\":true,\"ranges\":true,\"headers\":{\"Cache-Control\":\"max-age=600\",\"ETag\":\"W/\\\"weak\\\"\"}}"
obody /w "$T_DIR/w"
get /w -H "Range: bytes=$((3 * MIB))-$((3 * MIB + 99))"
t_check "weak ETag: answered, bytes exact" same_bytes "$T_DIR/w" $((3 * MIB)) 100 "$T_DIR/b"
get /w -H "Range: bytes=$((3 * MIB))-$((3 * MIB + 99))"
t_check "... not sliced: not a hit" sh -c "! grep -qi '^Cache-Status:.*; hit' '$T_DIR/h'"

# --- a purge takes the slices with the object
curl -s -o "$T_DIR/purge" -X POST -H 'Authorization: Bearer test-secret' \
	--data-binary "{\"url\":\"http://127.0.0.1:$EPORT/v\"}" "$E/.minicdn/purge"
t_check "purge of the object: head and slices removed" grep -q '"purged":6[0-9]' "$T_DIR/purge"
before=$(ocount /v)
get /v -H 'Range: bytes=0-99'
t_eq "after a purge: fetched again" "$((before + 1))" "$(ocount /v)"
t_check "... bytes exact" same_bytes "$T_DIR/v" 0 100 "$T_DIR/b"

t_done
