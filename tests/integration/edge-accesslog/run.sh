#!/usr/bin/env bash
# edge-accesslog: one line per request in the combined format plus the cache
# result, seconds and edge name; hostile header bytes escaped; lines reach the
# file within about a second and at SIGTERM; SIGHUP reopens after rotation; a
# log that cannot be opened stops the start with a clear error.
. "$(dirname "$0")/../../lib.sh"
t_init edge-accesslog
. "$T_ROOT/tests/integration/edge-common.sh"
AL=$T_DIR/access.log
edge_setup "access_log = \"$AL\";"

oset '{"path":"/a","headers":{"Cache-Control":"max-age=60"},"size":1500}'
oset '{"path":"/missing","status":404,"headers":{},"body":"no"}'
# Each request has its own User-Agent: lines from the two worker threads
# are written in batches, not in request order.
get /a -A ua-miss -e 'http://ref.example/'
get /a -A ua-hit
get /a -A ua-range -r 0-99
get /a -A ua-head -I
get /missing -A ua-404
get /a -A $'evil"agent\x01\xc3\xa9'
# Within about a second (the main loop flushes the buffers).
for _ in $(seq 40); do [ "$(wc -l <"$AL" 2>/dev/null)" -ge 6 ] && break; sleep 0.1; done
t_eq "six requests, six lines" 6 "$(grep -c ' /a \| /missing ' "$AL")"
python3 - "$AL" >"$T_DIR/parsed" <<'PY'
import re, sys
pat = re.compile(r'^(\S+) - - \[(\d\d/\w\w\w/\d{4}:\d\d:\d\d:\d\d \+0000)\] "(\S+) (\S+) (\S+)" (\d{3}) (\d+|-) '
                 r'"((?:[^"\\]|\\x[0-9a-f]{2})*)" "((?:[^"\\]|\\x[0-9a-f]{2})*)" (\S+) (\d+\.\d{6}) (\S+) (\S+)$')
for line in open(sys.argv[1]):
    m = pat.match(line.rstrip("\n"))
    if not m:
        print("UNPARSED", line.rstrip("\n"))
        continue
    ip, _, meth, target, ver, st, nb, ref, ua, res, secs, edge, site = m.groups()
    if target in ("/a", "/missing"):
        print(ua, ip, meth, target, ver, st, nb, ref or "-", res, edge, site)
PY
line() { awk -v ua="$1" '$1 == ua' "$T_DIR/parsed" | cut -d' ' -f2-; }
t_eq "every line parses" 0 "$(grep -c UNPARSED "$T_DIR/parsed")"
t_eq "miss: ip, method, target, version, status, bytes, referer, result, edge" \
	"127.0.0.1 GET /a HTTP/1.1 200 1500 http://ref.example/ uri-miss edge-test default" "$(line ua-miss)"
t_eq "hit" "127.0.0.1 GET /a HTTP/1.1 200 1500 - hit edge-test default" "$(line ua-hit)"
t_eq "range: 206 and the part's bytes" "206 100" "$(line ua-range | cut -d' ' -f5,6)"
t_eq "HEAD: no body bytes" "HEAD 200 0" "$(line ua-head | cut -d' ' -f2,5,6)"
t_eq "404 from the origin: status and result" "404 uri-miss" "$(line ua-404 | cut -d' ' -f5,8)"
t_eq "quote and control byte in User-Agent escaped" 1 "$(grep -c '^evil\\x22agent\\x01\\xc3\\xa9 ' "$T_DIR/parsed")"

# Rotation: move the file, SIGHUP, new lines go to a new file.
mv "$AL" "$AL.1"
kill -HUP "$(t_pid edge)"
sleep 0.5
get /a -A rotated
for _ in $(seq 40); do grep -q rotated "$AL" 2>/dev/null && break; sleep 0.1; done
t_check "after SIGHUP: the new file has the new line" grep -q '"rotated" hit' "$AL"
t_eq "after SIGHUP: the old file kept its lines" 6 "$(grep -c ' /a \| /missing ' "$AL.1")"

# SIGTERM: buffered lines are written before the edge exits.
get /a -A last-one
t_stop edge
t_check "at SIGTERM: the last line is in the file" grep -q '"last-one" hit' "$AL"

# A log that cannot be opened: a clear error, no start.
EDGE_EXTRA="access_log = \"$T_DIR/no/such/dir/access.log\";"
edge_write_conf
"$BIN/minicdn-edge" -c "$T_DIR/edge.conf" >"$T_DIR/bad.out" 2>&1
t_eq "unopenable access log: exit 1" 1 "$?"
t_check "... naming the file and the reason" grep -q "access log $T_DIR/no/such/dir/access.log: No such file or directory" "$T_DIR/bad.out"

t_done
