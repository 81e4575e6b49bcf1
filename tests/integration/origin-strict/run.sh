#!/bin/bash
# origin-strict -- the origin reached directly refuses request heads that two
# parsers could read two ways (RFC 9112): raw bytes over a socket, each
# refusal a 400 (501 for an unknown transfer coding) with the connection
# closed and no second response, counted in /metrics by reason.
. "$(dirname "$0")/../../lib.sh"
t_init origin-strict
mkdir -p "$T_DIR/site"; printf 'hello\n' >"$T_DIR/site/a.txt"
PORT=$(t_free_port)
cat >"$T_DIR/origin.conf" <<EOC
name = "o"; region = "eu"; listen = "127.0.0.1:$PORT"; root = "$T_DIR/site";
EOC
t_start origin "$BIN/minicdn-origin" -c "$T_DIR/origin.conf"
t_wait_http "http://127.0.0.1:$PORT/healthz" 10 || { t_fail "origin did not start"; t_done; }
raw() { python3 "$T_ROOT/tests/tools/rawhttp.py" 127.0.0.1 "$PORT" "$@"; }
G='GET /a.txt HTTP/1.1\r\nHost: x\r\n'

t_eq "a plain request is served, connection kept" "200 1 open" "$(raw "$G\r\n")"
t_eq "two pipelined requests: two answers" "200 2 open" "$(raw "$G\r\n$G\r\n")"
t_eq "HTTP/1.0 without Host is served" "200 1 close" "$(raw 'GET /a.txt HTTP/1.0\r\n\r\n')"
t_eq "empty value and padded value are fine" "200 1 open" "$(raw "${G}X-Empty:\r\nY:  b  \r\n\r\n")"
# Each case: name, raw head, expected "STATUS NRESP close".
while IFS='|' read -r name req want; do
	[ -n "$name" ] || continue
	t_eq "$name" "$want" "$(raw "$req" --wait 2)"
done <<'CASES'
Content-Length with Transfer-Encoding (smuggled second request not served)|POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n|400 1 close
Content-Length: 5,50 (libmicrohttpd 0.9.75 refuses it itself and sends its 400 head twice)|GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5,50\r\n\r\nhello|400 2 close
two Content-Length headers|GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab|400 1 close
HTTP/1.1 without Host|GET /a.txt HTTP/1.1\r\n\r\n|400 1 close
two Host headers|GET /a.txt HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n|400 1 close
Transfer-Encoding: xchunked answered at once, never a hang|POST /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n|501 1 close
obs-fold continuing a value|GET /a.txt HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n|400 1 close
obs-fold carrying a header (tab)|GET /a.txt HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tTransfer-Encoding: chunked\r\n\r\n|400 1 close
obs-fold after an empty Content-Length|GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n 48\r\n\r\n|400 1 close
whitespace before the colon|GET /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc|400 1 close
NUL in the target|GET /a.txt\x00/../x HTTP/1.1\r\nHost: x\r\n\r\n|400 1 close
control byte in a value|GET /a.txt HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n|400 1 close
Transfer-Encoding on HTTP/1.0|POST /a.txt HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n|501 1 close
CASES
m=$(curl -s "http://127.0.0.1:$PORT/metrics")
cnt() { grep "^minicdn_origin_rejected_requests_total{reason=\"$1\"}" <<<"$m" | awk '{print $2}'; }
t_eq "metrics: folds counted" 3 "$(cnt fold)"
t_eq "metrics: CL+TE counted" 1 "$(cnt cl_te)"
t_eq "metrics: Host problems counted" 2 "$(cnt host)"
t_eq "metrics: Content-Length problems counted (ours)" 1 "$(cnt length)"
t_eq "metrics: MHD's own refusal counted" 1 "$(cnt parse)"
t_eq "metrics: transfer codings counted" 2 "$(cnt te)"
t_eq "metrics: target counted" 1 "$(cnt target)"
t_eq "metrics: name counted" 1 "$(cnt name)"
t_eq "metrics: value counted" 1 "$(cnt value)"
t_eq "still serving after all that" "200 1 open" "$(raw "$G\r\n")"
t_done
