#!/usr/bin/env bash
# edge-rfc: unusual but legal origin responses, read as RFC 9110 / 9111 / 9213
# say, against the scripted origin sending the exact header shapes.  Every
# check looks at what the client got AND how many requests reached the origin.
# Entries are made stale at birth with an Age header where a test needs a
# stale entry, so there are few sleeps.
. "$(dirname "$0")/../../lib.sh"
t_init edge-rfc
. "$T_ROOT/tests/integration/edge-common.sh"
EDGE_TIMEOUT=2s
edge_setup

# --- repeated field lines are one list (RFC 9110 5.3)
oset '{"path":"/cc2","headers":[["Cache-Control","max-age=3600"],["Cache-Control","s-maxage=1"]],"body":"x"}'
get /cc2; get /cc2
t_check "two Cache-Control lines: stored, hit within s-maxage" cs_has "; hit"
sleep 2.2
get /cc2
t_eq "two Cache-Control lines: s-maxage=1 of the second line counts" 2 "$(ocount /cc2)"
oset '{"path":"/ccns","headers":[["Cache-Control","max-age=60"],["Cache-Control","no-store"]],"body":"x"}'
get /ccns; get /ccns
t_eq "no-store on a second Cache-Control line: not stored" 2 "$(ocount /ccns)"
oset '{"path":"/vstar2","headers":[["Cache-Control","max-age=60"],["Vary",""],["Vary","*"]],"body":"x"}'
get /vstar2; get /vstar2
t_eq "Vary: (empty) then Vary: *: not stored" 2 "$(ocount /vstar2)"
t_eq "Vary: * response still served" "200 x" "$(status) $(body)"
oset '{"path":"/vary2","headers":[["Cache-Control","max-age=60"],["Vary","Accept-Encoding"],["Vary","Accept-Language"]],"body":"x"}'
get /vary2 -H 'Accept-Language: en'; get /vary2 -H 'Accept-Language: de'
t_eq "Vary on two lines: the second line's field selects too" 2 "$(ocount /vary2)"
get /vary2 -H 'Accept-Language: en'
t_check "Vary on two lines: first variant a hit" cs_has "; hit"
t_eq "Vary on two lines: 2 origin requests" 2 "$(ocount /vary2)"
oset '{"path":"/rqcc","headers":{"Cache-Control":"max-age=600"},"body":"x"}'
get /rqcc
get /rqcc -H 'Cache-Control: max-age=600' -H 'Cache-Control: no-cache'
t_eq "request no-cache on a second Cache-Control line: revalidated" 2 "$(ocount /rqcc)"
oset '{"path":"/cdn2","headers":[["Cache-Control","max-age=0"],["CDN-Cache-Control","max-age=60"],["CDN-Cache-Control","no-store"]],"body":"x"}'
get /cdn2; get /cdn2
t_eq "no-store on a second CDN-Cache-Control line: not stored" 2 "$(ocount /cdn2)"

# --- HTTP-dates parsed exactly (RFC 9110 5.6.7); invalid Expires = expired (RFC 9111 5.3)
n=0
for d in 'Thu, 01  Jan 2099 00:00:00 GMT' 'Thu, 01 Jan 2099 0:00:00 GMT' 'Thu, 1 Jan 2099 00:00:00 GMT' \
         'Thu Jan 1 00:00:00 2099' 'Thu, 01 Jan 2099 00:00:00 UTC'; do
	n=$((n + 1))
	oset "{\"path\":\"/exp$n\",\"headers\":{\"Expires\":\"$d\"},\"body\":\"x\"}"
	get /exp$n; get /exp$n
	t_eq "Expires \"$d\": expired, each request reaches the origin" 2 "$(ocount /exp$n)"
done
oset '{"path":"/expok","headers":{"Expires":"thu, 01 jan 2099 00:00:00 gmt"},"body":"x"}'
get /expok; get /expok
t_eq "valid Expires in lower case (RFC 9111 4.2: match case-insensitively): cached" 1 "$(ocount /expok)"

# --- Age is delta-seconds or ignored (RFC 9111 5.1)
for a in '7200.0' '1e3' '-1'; do
	p="/age$(echo "$a" | tr -c 'a-z0-9\n' '_')"
	oset "{\"path\":\"$p\",\"headers\":{\"Cache-Control\":\"max-age=3600\",\"Age\":\"$a\"},\"body\":\"x\"}"
	get "$p"; get "$p"
	t_eq "Age: $a ignored: fresh, one origin request" 1 "$(ocount "$p")"
	t_check "Age: $a ignored: client's Age small" test "$(hdr Age)" -lt 100
done
oset '{"path":"/agebig","headers":{"Cache-Control":"max-age=3600","Age":"99999999999999999999"},"body":"x"}'
get /agebig; get /agebig
t_eq "Age overflowing: 2^31, stale" 2 "$(ocount /agebig)"

# --- CDN-Cache-Control is an RFC 8941 dictionary (RFC 9213)
oset '{"path":"/sfstr","headers":{"Cache-Control":"max-age=0","CDN-Cache-Control":"max-age=\"600\""},"body":"x"}'
get /sfstr; get /sfstr
t_eq "CDN-Cache-Control max-age as a String: field ignored, Cache-Control max-age=0 counts" 2 "$(ocount /sfstr)"
oset '{"path":"/sfdec","headers":{"Cache-Control":"max-age=0","CDN-Cache-Control":"max-age=600.0"},"body":"x"}'
get /sfdec; get /sfdec
t_eq "CDN-Cache-Control max-age as a Decimal: field ignored" 2 "$(ocount /sfdec)"
oset '{"path":"/sfcase","headers":{"Cache-Control":"max-age=0","CDN-Cache-Control":"Max-Age=600"},"body":"x"}'
get /sfcase; get /sfcase
t_eq "CDN-Cache-Control with an upper-case key: not a dictionary, ignored" 2 "$(ocount /sfcase)"
oset '{"path":"/sfbad","headers":{"Cache-Control":"max-age=60","CDN-Cache-Control":"no-store,"},"body":"x"}'
get /sfbad; get /sfbad
t_eq "CDN-Cache-Control no-store with a trailing comma: ignored, Cache-Control caches" 1 "$(ocount /sfbad)"
oset '{"path":"/sfok","headers":{"Cache-Control":"no-store","CDN-Cache-Control":"max-age=600;x, y=(a b)"},"body":"x"}'
get /sfok; get /sfok
t_eq "CDN-Cache-Control with parameters and unknown members: used" 1 "$(ocount /sfok)"

# --- no-cache is never served stale-if-error (RFC 9111 4.2.4, 5.2.2.4)
oset '{"path":"/ncsie","headers":{"Cache-Control":"max-age=60, no-cache, stale-if-error=600"},"body":"good"}'
get /ncsie
oset '{"path":"/ncsie","status":503,"headers":{},"body":"down"}'
get /ncsie
t_eq "no-cache + stale-if-error, origin 503: the 503 passes" "503 down" "$(status) $(body)"
t_eq "no-cache + stale-if-error: 2 origin requests" 2 "$(ocount /ncsie)"
oset '{"path":"/sie","headers":{"Cache-Control":"max-age=10, stale-if-error=600","Age":"20"},"body":"good"}'
get /sie
oset '{"path":"/sie","status":503,"headers":{},"body":"down"}'
get /sie
t_eq "stale-if-error without no-cache, origin 503: stale served" "200 good" "$(status) $(body)"

# --- extension methods go to the origin and invalidate (RFC 9110 9.1, RFC 9111 4.4)
oset '{"path":"/ext","headers":{"Cache-Control":"max-age=60"},"body":"ext"}'
get /ext; get /ext
t_eq "extension method: GET cached first" 1 "$(ocount /ext)"
get /ext -X FROB
t_eq "extension method: the origin's answer" "200 ext" "$(status) $(body)"
t_eq "extension method: reached the origin" 2 "$(ocount /ext)"
t_check "extension method: origin saw FROB" sh -c "curl -s '$O/__last?path=/ext' | grep -q '\"method\": \"FROB\"'"
get /ext
t_eq "extension method: GET after it is a miss (invalidated)" 3 "$(ocount /ext)"

# --- If-Modified-Since from Date when there is no Last-Modified (RFC 9110 13.1.3, RFC 9111 4.3.2)
D=$(TZ=GMT date '+%a, %d %b %Y %H:%M:%S GMT')
oset "{\"path\":\"/imsdate\",\"headers\":{\"Cache-Control\":\"max-age=1\",\"Date\":\"$D\"},\"body\":\"dated\",\"etag_304\":true}"
get /imsdate; sleep 2.2; get /imsdate
t_check "IMS with only Date: revalidation sent If-Modified-Since = Date" sh -c "curl -s '$O/__last?path=/imsdate' | grep -q '\"If-Modified-Since\": \"$D\"'"
t_check "IMS with only Date: the origin's 304 was used" cs_has "fwd-status=304"
t_eq "IMS with only Date: body from the cache, 2 origin requests" "dated 2" "$(body) $(ocount /imsdate)"
D=$(TZ=GMT date '+%a, %d %b %Y %H:%M:%S GMT')
oset "{\"path\":\"/imsclient\",\"headers\":{\"Cache-Control\":\"max-age=60\",\"Date\":\"$D\"},\"body\":\"dated\"}"
get /imsclient
get /imsclient -H "If-Modified-Since: $D"
t_eq "client IMS = stored Date, no Last-Modified: 304 from the cache" "304 1" "$(status) $(ocount /imsclient)"
get /imsclient -H 'If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT'
t_eq "client IMS before the stored Date: 200 from the cache" "200 1" "$(status) $(ocount /imsclient)"

# --- a 304 updates only the response whose validator it carries (RFC 9111 4.3.4)
oset '{"path":"/v304","headers":{"Cache-Control":"max-age=10","Age":"40","ETag":"\"e1\""},"body":"old"}'
get /v304
oset '{"path":"/v304","headers":{"Cache-Control":"max-age=60","ETag":"\"e2\""},"body":"new","any_304":true}'
get /v304
t_eq "304 with another ETag: stored copy not used, fetched anew" "200 new 3" "$(status) $(body) $(ocount /v304)"
get /v304
t_eq "304 with another ETag: the new response stored" "new 3" "$(body) $(ocount /v304)"

# --- any final status with explicit freshness is stored (RFC 9111 3)
for s in 299 499 599; do
	oset "{\"path\":\"/s$s\",\"status\":$s,\"headers\":{\"Cache-Control\":\"max-age=60\"},\"body\":\"s$s\"}"
	get /s$s; get /s$s
	t_eq "$s with max-age: stored, status and body kept" "$s s$s 1" "$(status) $(body) $(ocount /s$s)"
done
oset '{"path":"/s299h","status":299,"headers":{"Last-Modified":"Mon, 01 Jan 2001 00:00:00 GMT"},"body":"x"}'
get /s299h; get /s299h
t_eq "299 without explicit freshness: no heuristic, not reused" 2 "$(ocount /s299h)"

# --- must-understand (RFC 9111 5.2.2.3)
oset '{"path":"/mu299","status":299,"headers":{"Cache-Control":"max-age=60, must-understand, no-store"},"body":"x"}'
get /mu299; get /mu299
t_eq "must-understand with an unknown status: not stored" "299 2" "$(status) $(ocount /mu299)"
oset '{"path":"/mu200","headers":{"Cache-Control":"max-age=60, must-understand, no-store"},"body":"x"}'
get /mu200; get /mu200
t_eq "must-understand with 200: no-store ignored, stored" "200 1" "$(status) $(ocount /mu200)"

# --- Vary values normalised (RFC 9111 4.1)
oset '{"path":"/vl","headers":{"Cache-Control":"max-age=60","Vary":"Accept-Language"},"body":"x"}'
get /vl -H 'Accept-Language: en-US,fr;q=0.5'
get /vl -H 'Accept-Language: fr;q=0.50 ,  EN-us'
t_check "Accept-Language reordered by q, spaced, cased: same variant" cs_has "; hit"
get /vl -H 'Accept-Language: en-US' -H 'Accept-Language: fr;q=0.5'
t_check "Accept-Language on two request lines: same variant" cs_has "; hit"
t_eq "Accept-Language spellings: 1 origin request" 1 "$(ocount /vl)"
get /vl -H 'Accept-Language: de'
t_eq "Accept-Language de: another variant" 2 "$(ocount /vl)"
oset '{"path":"/va","headers":{"Cache-Control":"max-age=60","Vary":"accept"},"body":"x"}'
get /va -H 'Accept: image/avif,image/webp,*/*;q=0.8'
get /va -H 'Accept: image/webp, IMAGE/AVIF, */*; q=0.80'
t_check "Accept reordered, spaced: same variant" cs_has "; hit"
t_eq "Accept spellings: 1 origin request" 1 "$(ocount /va)"

# --- origin unreachable vs origin error (RFC 9111 4.2.4)
# Stale entries from birth (max-age=10, Age: 40), no stale-if-error.
stale_entry() { oset "{\"path\":\"$1\",\"headers\":{\"Cache-Control\":\"max-age=10${2:-}\",\"Age\":\"40\"},\"body\":\"old\"}"; get "$1"; }
stale_entry /u503
oset '{"path":"/u503","status":503,"headers":{},"body":"down"}'
get /u503
t_eq "origin 503, no stale-if-error: the 503 passes" "503 down 2" "$(status) $(body) $(ocount /u503)"
stale_entry /ureset
oset '{"path":"/ureset","reset":true}'
get /ureset
# libcurl retries a GET whose reused connection was reset (RFC 9110 9.2.2
# allows it for idempotent requests): one or more attempts reach the origin.
t_eq "origin reset: stale served by default" "200 old" "$(status) $(body)"
t_check "origin reset: the origin was asked" test "$(ocount /ureset)" -ge 2
t_check "origin reset: Cache-Status says why" cs_has "detail=origin-unreachable"
stale_entry /utime
oset '{"path":"/utime","delay":3,"body":"late"}'
get /utime
t_eq "origin timeout: stale served by default" "200 old 2" "$(status) $(body) $(ocount /utime)"
stale_entry /umr ", must-revalidate"
oset '{"path":"/umr","reset":true}'
get /umr
t_check "must-revalidate, origin reset: an error, not stale" test "$(status)" -ge 500
t_check "must-revalidate, origin reset: the origin was asked" test "$(ocount /umr)" -ge 2
stale_entry /unc ", no-cache"
oset '{"path":"/unc","reset":true}'
get /unc
t_check "no-cache, origin reset: an error, not stale" test "$(status)" -ge 500
stale_entry /upr ", proxy-revalidate"
oset '{"path":"/upr","reset":true}'
get /upr
t_check "proxy-revalidate, origin reset: an error, not stale" test "$(status)" -ge 500
stale_entry /urefused
stale_entry /urefmr ", must-revalidate"
t_stop origin
get /urefused
t_eq "origin refused: stale served by default" "200 old" "$(status) $(body)"
get /urefmr
t_check "must-revalidate, origin refused: an error" test "$(status)" -ge 500
# The window is bounded: shrink it to 1 s (SIGHUP) and the ~30 s stale entry is refused.
EDGE_CACHE_EXTRA='stale_if_unreachable = "1s";'
edge_write_conf
kill -HUP "$(t_pid edge)"
sleep 0.5
get /urefused
t_check "origin refused beyond stale_if_unreachable: an error" test "$(status)" -ge 500

t_done
