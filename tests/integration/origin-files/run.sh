#!/bin/bash
# origin-files: minicdn-origin serving a directory -- headers by path rule,
# HEAD, conditional requests, traversal attempts, errors, health, reload, stop.
. "$(dirname "$0")/../../lib.sh"
t_init origin-files

ROOT=$T_DIR/site
mkdir -p "$ROOT/api" "$ROOT/css" "$ROOT/dir"
printf '<h1>home</h1>\n' >"$ROOT/index.html"
printf 'body{color:red}\n' >"$ROOT/css/site.css"
printf '{"ok":true}\n' >"$ROOT/api/data.json"
printf 'in dir\n' >"$ROOT/dir/index.html"
head -c 200000 /dev/urandom >"$ROOT/big.bin"
printf 'TOP-SECRET\n' >"$T_DIR/secret.txt"
printf 'dotfile\n' >"$ROOT/.env"
ln -s "$T_DIR/secret.txt" "$ROOT/escape.txt"
ln -s "$T_DIR" "$ROOT/up"

PORT=$(t_free_port)
URL=http://127.0.0.1:$PORT
write_conf() { # css cache-control
	cat >"$T_DIR/origin.conf" <<CONF
name = "origin-test";
region = "eu";
listen = "127.0.0.1:$PORT";
root = "$ROOT";
default_cache_control = "public, max-age=60";
rules = (
  { match = "/api/*"; cache_control = "public, max-age=10"; surrogate_key = "api menu"; },
  { match = "*.css";  cache_control = "$1"; surrogate_key = "static css"; }
);
CONF
}
write_conf "public, max-age=86400"

# ---- command line and config checking
t_check "--version" bash -c "'$BIN/minicdn-origin' --version | grep -q '^minicdn-origin [0-9]'"
t_check "--help lists config keys" bash -c "'$BIN/minicdn-origin' --help | grep -q default_cache_control"
t_check "-t accepts a valid config" "$BIN/minicdn-origin" -t -c "$T_DIR/origin.conf"
printf 'listen = "127.0.0.1:1";\nroot = "/tmp";\nbogus_key = 1;\n' >"$T_DIR/bad1.conf"
t_fails_with 1 "-t rejects an unknown key (exit 1)" "$BIN/minicdn-origin" -t -c "$T_DIR/bad1.conf"; out=$T_OUT
t_check "unknown key error names file:line" bash -c 'grep -q "bad1.conf:3: unknown key .bogus_key." <<<"$1"' _ "$out"
printf 'listen = "127.0.0.1";\nroot = "/tmp";\n' >"$T_DIR/bad2.conf"
t_fails_with 1 "-t rejects a listen address without a port (exit 1)" "$BIN/minicdn-origin" -t -c "$T_DIR/bad2.conf"; out=$T_OUT
t_check "bad listen address rejected with file:line" bash -c 'grep -q "bad2.conf:1:" <<<"$1"' _ "$out"
printf 'listen = "127.0.0.1:1";\nroot = "/nonexistent/dir";\n' >"$T_DIR/bad3.conf"
t_fails_with 1 "missing root rejected (exit 1)" "$BIN/minicdn-origin" -t -c "$T_DIR/bad3.conf"
printf 'listen = "127.0.0.1:1";\nroot = "/tmp";\nrules = ( { match = "*.js"; cache_control = "a\\nb"; } );\n' >"$T_DIR/bad4.conf"
t_fails_with 1 "header injection in a rule rejected (exit 1)" "$BIN/minicdn-origin" -t -c "$T_DIR/bad4.conf"

t_start origin "$BIN/minicdn-origin" -c "$T_DIR/origin.conf"
t_wait_http "$URL/healthz" || t_fail "origin did not start"

hdr() { grep -i "^$1:" | head -1 | cut -d' ' -f2- | tr -d '\r'; }

# ---- GET with headers
curl -s -D "$T_DIR/h1" -o "$T_DIR/b1" "$URL/"
t_eq "GET / status" 200 "$(head -1 "$T_DIR/h1" | cut -d' ' -f2)"
t_check "GET / body is index.html" cmp -s "$T_DIR/b1" "$ROOT/index.html"
t_eq "GET / Content-Type" "text/html; charset=utf-8" "$(hdr Content-Type <"$T_DIR/h1")"
t_eq "GET / Content-Length" "$(stat -c %s "$ROOT/index.html")" "$(hdr Content-Length <"$T_DIR/h1")"
t_eq "GET / default Cache-Control" "public, max-age=60" "$(hdr Cache-Control <"$T_DIR/h1")"
ETAG=$(hdr ETag <"$T_DIR/h1")
LM=$(hdr Last-Modified <"$T_DIR/h1")
t_check "ETag is a quoted strong tag" bash -c "[[ '$ETAG' =~ ^\\\"[0-9a-f.]+-[0-9a-f]+\\\"\$ ]]"
t_eq "Last-Modified is the file's mtime" "$(TZ=GMT date -r "$ROOT/index.html" '+%a, %d %b %Y %H:%M:%S GMT')" "$LM"

curl -s -D "$T_DIR/h2" -o "$T_DIR/b2" "$URL/css/site.css"
t_eq "*.css rule Cache-Control" "public, max-age=86400" "$(hdr Cache-Control <"$T_DIR/h2")"
t_eq "*.css rule Surrogate-Key" "static css" "$(hdr Surrogate-Key <"$T_DIR/h2")"
t_eq "css Content-Type" "text/css; charset=utf-8" "$(hdr Content-Type <"$T_DIR/h2")"
curl -s -D "$T_DIR/h3" -o "$T_DIR/b3" "$URL/api/data.json"
t_eq "/api/* rule Cache-Control" "public, max-age=10" "$(hdr Cache-Control <"$T_DIR/h3")"
t_eq "/api/* rule Surrogate-Key" "api menu" "$(hdr Surrogate-Key <"$T_DIR/h3")"
t_eq "json Content-Type" "application/json" "$(hdr Content-Type <"$T_DIR/h3")"
curl -s -o "$T_DIR/big.out" "$URL/big.bin"
t_check "200 kB binary file byte-identical" cmp -s "$T_DIR/big.out" "$ROOT/big.bin"

# ---- HEAD
curl -s -I -o "$T_DIR/hh" "$URL/css/site.css"
hbytes=$(curl -s -X HEAD -o /dev/null -w '%{size_download}' --max-time 3 "$URL/css/site.css")
t_eq "HEAD status" 200 "$(head -1 "$T_DIR/hh" | cut -d' ' -f2)"
t_eq "HEAD Content-Length is the file size" "$(stat -c %s "$ROOT/css/site.css")" "$(hdr Content-Length <"$T_DIR/hh")"
t_eq "HEAD has the same ETag as GET" "$(hdr ETag <"$T_DIR/h2")" "$(hdr ETag <"$T_DIR/hh")"
t_eq "HEAD sends no body" 0 "$hbytes"

# ---- conditional requests
read -r code nbytes < <(curl -s -o /dev/null -w '%{http_code} %{size_download}' -H "If-None-Match: $ETAG" "$URL/")
t_eq "If-None-Match current ETag -> 304" 304 "$code"
t_eq "304 has no body" 0 "$nbytes"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: \"x\", W/$ETAG" "$URL/")
t_eq "If-None-Match list with weak match -> 304" 304 "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'If-None-Match: "nope"' "$URL/")
t_eq "If-None-Match other ETag -> 200" 200 "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "If-Modified-Since: $LM" "$URL/")
t_eq "If-Modified-Since = Last-Modified -> 304" 304 "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT' "$URL/")
t_eq "If-Modified-Since in the past -> 200" 200 "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'If-None-Match: "nope"' -H "If-Modified-Since: $LM" "$URL/")
t_eq "If-None-Match takes precedence over If-Modified-Since" 200 "$code"
curl -s -D "$T_DIR/h304" -o /dev/null -H "If-None-Match: $ETAG" "$URL/"
t_eq "304 carries the ETag" "$ETAG" "$(hdr ETag <"$T_DIR/h304")"
t_eq "304 carries Cache-Control" "public, max-age=60" "$(hdr Cache-Control <"$T_DIR/h304")"

# ---- ranges
curl -s -D "$T_DIR/r1" -o "$T_DIR/r1b" -r 100-199 "$URL/big.bin"
t_eq "Range -> 206" 206 "$(head -1 "$T_DIR/r1" | cut -d' ' -f2)"
t_eq "206 Content-Range" "bytes 100-199/200000" "$(hdr Content-Range <"$T_DIR/r1")"
t_check "206 body is the requested slice" bash -c "cmp -s '$T_DIR/r1b' <(tail -c +101 '$ROOT/big.bin' | head -c 100)"
t_eq "suffix range: last 7 bytes" 7 "$(curl -s -r -7 "$URL/big.bin" | wc -c)"
curl -s -D "$T_DIR/r2" -o /dev/null -r 300000- "$URL/big.bin"
t_eq "unsatisfiable range -> 416" 416 "$(head -1 "$T_DIR/r2" | cut -d' ' -f2)"
t_eq "416 Content-Range" "bytes */200000" "$(hdr Content-Range <"$T_DIR/r2")"
BETAG=$(curl -s -I "$URL/big.bin" | hdr ETag)
t_eq "If-Range with the current ETag -> 206" 206 "$(curl -s -o /dev/null -w '%{http_code}' -r 0-9 -H "If-Range: $BETAG" "$URL/big.bin")"
t_eq "If-Range with another ETag -> 200 full" "200 200000" "$(curl -s -o /dev/null -w '%{http_code} %{size_download}' -r 0-9 -H 'If-Range: "old"' "$URL/big.bin")"
t_eq "several ranges -> 200 full" "200 200000" "$(curl -s -o /dev/null -w '%{http_code} %{size_download}' -r 0-9,20-29 "$URL/big.bin")"
t_check "200 advertises Accept-Ranges" bash -c "curl -s -I '$URL/big.bin' | grep -qi '^Accept-Ranges: bytes'"

# ---- traversal and hidden files
for p in '/../secret.txt' '/../../../../etc/passwd' '/%2e%2e/secret.txt' '/%2E%2E%2Fsecret.txt' \
         '/css/..%2f..%2fsecret.txt' '/dir/%2e%2e/%2e%2e/secret.txt' '/..%5csecret.txt'; do
	code=$(curl -s --path-as-is -o "$T_DIR/tr" -w '%{http_code}' "$URL$p")
	t_check "traversal $p refused ($code)" bash -c "[ '$code' = 400 ] || [ '$code' = 403 ] || [ '$code' = 404 ]"
	t_check "traversal $p leaks nothing" bash -c "! grep -q -e TOP-SECRET -e root: '$T_DIR/tr'"
done
t_eq "symlink to a file outside the root -> 403" 403 "$(curl -s -o "$T_DIR/tr" -w '%{http_code}' "$URL/escape.txt")"
t_eq "symlink to a directory outside -> 403" 403 "$(curl -s -o "$T_DIR/tr2" -w '%{http_code}' "$URL/up/secret.txt")"
t_check "symlinked secret never served" bash -c "! grep -q TOP-SECRET '$T_DIR/tr' '$T_DIR/tr2'"
t_eq "encoded NUL in the path -> 400" 400 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/index.html%00.css")"
t_eq "absolute-form target with .. -> 400" 400 "$(curl -s -o /dev/null -w '%{http_code}' --path-as-is --request-target 'http://x/../secret.txt' "$URL/")"
t_eq "dotfile -> 404" 404 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/.env")"

# ---- errors
curl -s -D "$T_DIR/e1" -o "$T_DIR/e1b" "$URL/missing.html"
t_eq "missing file -> 404" 404 "$(head -1 "$T_DIR/e1" | cut -d' ' -f2)"
t_eq "404 plain by default" "text/plain; charset=utf-8" "$(hdr Content-Type <"$T_DIR/e1")"
curl -s -H 'Accept: application/json' -o "$T_DIR/e2b" "$URL/missing.html"
t_check "404 as JSON on Accept: application/json" python3 -c "import json,sys; d=json.load(open('$T_DIR/e2b')); sys.exit(d['status']!=404 or d['path']!='/missing.html')"
curl -s -X POST -d x -D "$T_DIR/e3" -o /dev/null "$URL/index.html"
t_eq "POST -> 405" 405 "$(head -1 "$T_DIR/e3" | cut -d' ' -f2)"
t_eq "405 has Allow" "GET, HEAD" "$(hdr Allow <"$T_DIR/e3")"
t_eq "DELETE -> 405" 405 "$(curl -s -X DELETE -o /dev/null -w '%{http_code}' "$URL/index.html")"
curl -s -D "$T_DIR/e4" -o /dev/null "$URL/dir"
t_eq "directory without slash -> 301" 301 "$(head -1 "$T_DIR/e4" | cut -d' ' -f2)"
t_eq "301 Location adds the slash" "/dir/" "$(hdr Location <"$T_DIR/e4")"
t_eq "directory with slash serves its index" "in dir" "$(curl -s "$URL/dir/")"
t_eq "control API absent without control_secret" 404 \
	"$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Authorization: Bearer x' "$URL/.minicdn/push")"

# ---- oversized request line / headers are refused by MHD; nothing leaks or stays counted
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/$(head -c 40000 /dev/zero | tr '\0' a)")
t_check "40 kB request line refused ($code)" bash -c "[ '$code' -ge 400 ] || [ '$code' = 000 ]"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $(head -c 40000 /dev/zero | tr '\0' b)" "$URL/")
t_check "40 kB header refused ($code)" bash -c "[ '$code' -ge 400 ] || [ '$code' = 000 ]"
printf 'GARBAGE\r\n\r\n' | curl -s -o /dev/null --max-time 2 telnet://127.0.0.1:$PORT 2>/dev/null
t_eq "no request left counted in flight" 0 "$(curl -s "$URL/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["inflight"])')"

# ---- health and metrics
curl -s "$URL/healthz" >"$T_DIR/hz"
t_check "healthz JSON fields" python3 -c "
import json,sys; d=json.load(open('$T_DIR/hz'))
ok = d['status']=='ok' and d['role']=='origin' and d['name']=='origin-test' and d['region']=='eu' \
     and isinstance(d['uptime_s'], int) and isinstance(d['load'], float) and d['version']
sys.exit(0 if ok else 1)"
curl -s "$URL/metrics" >"$T_DIR/metrics"
t_check "metrics count 304s" grep -qE '^minicdn_origin_requests_total\{code="304"\} [1-9]' "$T_DIR/metrics"
t_check "metrics count 404s" grep -qE '^minicdn_origin_requests_total\{code="404"\} [1-9]' "$T_DIR/metrics"

# ---- concurrent GETs
seq 200 | xargs -P 16 -I{} curl -s -o /dev/null -w '%{http_code}\n' "$URL/css/site.css" >"$T_DIR/par"
t_eq "200 concurrent GETs all 200" 200 "$(grep -c '^200$' "$T_DIR/par")"

# ---- SIGHUP reloads rules; a broken config is refused and the old one stays
write_conf "public, max-age=5"
kill -HUP "$(t_pid origin)"
ok=0
for _ in $(seq 50); do
	[ "$(curl -s -D - -o /dev/null "$URL/css/site.css" | hdr Cache-Control)" = "public, max-age=5" ] && { ok=1; break; }
	sleep 0.1
done
t_eq "SIGHUP applies the new rule" 1 $ok
echo 'listen = "127.0.0.1:'"$PORT"'"; root = "'"$ROOT"'"; rules = ( { nomatch = 1; } );' >"$T_DIR/origin.conf"
kill -HUP "$(t_pid origin)"
sleep 0.5
t_eq "bad config on SIGHUP keeps the old rules" "public, max-age=5" \
	"$(curl -s -D - -o /dev/null "$URL/css/site.css" | hdr Cache-Control)"
t_check "bad reload logged with file:line" grep -q 'origin.conf:1:' "$T_DIR/origin.log"
t_check "still alive after bad reload" kill -0 "$(t_pid origin)"

# ---- gzip: text files of 256 bytes or more have a gzip representation for
# clients that accept it, and every response for them says Vary.
for i in $(seq 60); do printf '<p>paragraph %d of a page that compresses well</p>\n' "$i"; done >"$ROOT/page.html"
size=$(stat -c %s "$ROOT/page.html")
h=$(curl -s -D - -o "$T_DIR/page.gz" -H 'Accept-Encoding: gzip, deflate, br' "$URL/page.html")
t_eq "gzip: Content-Encoding" "gzip" "$(hdr Content-Encoding <<<"$h")"
t_eq "gzip: Vary" "Accept-Encoding" "$(hdr Vary <<<"$h")"
t_check "gzip: the bytes inflate to the file" sh -c "gunzip -c '$T_DIR/page.gz' | cmp -s - '$ROOT/page.html'"
t_check "gzip: smaller than the file" test "$(stat -c %s "$T_DIR/page.gz")" -lt $((size / 3))
gtag=$(hdr ETag <<<"$h")
t_check "gzip: its own ETag (-gz)" grep -q -- '-gz"$' <<<"$gtag"
h=$(curl -s -D - -o "$T_DIR/page.id" "$URL/page.html")
t_eq "identity without Accept-Encoding: no Content-Encoding" "" "$(hdr Content-Encoding <<<"$h")"
t_eq "identity: Vary too" "Accept-Encoding" "$(hdr Vary <<<"$h")"
t_check "identity: the file's bytes" cmp -s "$T_DIR/page.id" "$ROOT/page.html"
itag=$(hdr ETag <<<"$h")
t_check "identity ETag differs from the gzip one" test "$itag" != "$gtag"
t_eq "gzip;q=0: identity" "" "$(curl -s -D - -o /dev/null -H 'Accept-Encoding: gzip;q=0, br' "$URL/page.html" | hdr Content-Encoding)"
t_eq "If-None-Match with the gzip ETag, accepting gzip: 304" 304 \
	"$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept-Encoding: gzip' -H "If-None-Match: $gtag" "$URL/page.html")"
t_eq "If-None-Match with the gzip ETag, identity client: 200" 200 \
	"$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $gtag" "$URL/page.html")"
h=$(curl -s -D - -o "$T_DIR/page.r" -H 'Accept-Encoding: gzip' -r 0-9 "$URL/page.html")
t_eq "Range with gzip accepted: 206" 206 "$(head -1 <<<"$h" | cut -d' ' -f2)"
t_eq "Range with gzip accepted: the identity bytes" "<p>paragra" "$(cat "$T_DIR/page.r")"
t_eq "Range: no Content-Encoding" "" "$(hdr Content-Encoding <<<"$h")"
h=$(curl -s -I -H 'Accept-Encoding: gzip' "$URL/page.html")
t_eq "HEAD: the gzip representation's length" "$(stat -c %s "$T_DIR/page.gz")" "$(hdr Content-Length <<<"$h")"
t_eq "small file: no Vary" "" "$(curl -s -D - -o /dev/null -H 'Accept-Encoding: gzip' "$URL/index.html" | hdr Vary)"
t_eq "binary file: not compressed" "" "$(curl -s -D - -o /dev/null -H 'Accept-Encoding: gzip' "$URL/big.bin" | hdr Content-Encoding)"

# ---- SIGTERM stops cleanly
pid=$(t_pid origin)
t_stop origin
wait "$pid" 2>/dev/null
t_check "stopped on SIGTERM" bash -c "! kill -0 $pid 2>/dev/null"
t_check "logged a clean stop" grep -q 'stopping' "$T_DIR/origin.log"
t_done
