#!/usr/bin/env bash
# edge-cache: RFC 9111 behaviour of minicdn-edge against the scripted origin.
# Every check looks at what the client got AND how many requests reached the origin.
. "$(dirname "$0")/../../lib.sh"
t_init edge-cache
. "$T_ROOT/tests/integration/edge-common.sh"
edge_setup 'query_rules = ( { path = "/sorted/*"; query = "sort"; }, { path = "/noq/*"; query = "ignore"; } );'

# --- miss, hit, bytes, Age, Via, Cache-Status
oset '{"path":"/a","headers":{"Cache-Control":"max-age=60","ETag":"\"v1\"","Content-Type":"text/plain"},"size":5000}'
get /a
t_eq "miss: 200" 200 "$(status)"
t_check "miss: Cache-Status fwd=uri-miss + stored" cs_has "fwd=uri-miss.*stored"
t_check "miss: Via added" grep -qi "^Via: 1.1 edge-test" "$T_DIR/h"
cp "$T_DIR/b" "$T_DIR/first"
get /a
t_check "hit: Cache-Status hit" cs_has "; hit"
t_check "hit: body identical" cmp -s "$T_DIR/b" "$T_DIR/first"
t_eq "hit: 5000 bytes" 5000 "$(stat -c %s "$T_DIR/b")"
t_eq "miss+hit: origin saw 1 request" 1 "$(ocount /a)"
t_check "hit: Age header present" test -n "$(hdr Age)"
t_check "hit: Via added (forwarded content, from the cache)" grep -qi "^Via: 1.1 edge-test" "$T_DIR/h"
t_check "origin saw Via from the edge" sh -c "curl -s '$O/__last?path=/a' | grep -q 'edge-test'"

# --- HEAD from the GET entry
curl -s -I "$E/a" >"$T_DIR/h"
t_check "HEAD: answered from the cache" cs_has "; hit"
t_eq "HEAD: Content-Length of the object" 5000 "$(hdr Content-Length)"
t_eq "HEAD: still 1 origin request" 1 "$(ocount /a)"

# --- client conditionals from the cache
get /a -H 'If-None-Match: "v1"'
t_eq "If-None-Match match: 304 from cache" 304 "$(status)"
t_eq "304 has ETag" '"v1"' "$(hdr ETag)"
get /a -H 'If-None-Match: "other"'
t_eq "If-None-Match mismatch: 200" 200 "$(status)"
t_eq "conditionals: still 1 origin request" 1 "$(ocount /a)"

# --- Range / If-Range / 416
get /a -H 'Range: bytes=10-19'
t_eq "Range: 206" 206 "$(status)"
t_eq "Range: Content-Range" "bytes 10-19/5000" "$(hdr Content-Range)"
t_check "Range: the right 10 bytes" bash -c "cmp -s '$T_DIR/b' <(dd if='$T_DIR/first' bs=1 skip=10 count=10 2>/dev/null)"
get /a -H 'Range: bytes=-100'
t_eq "suffix Range: 100 bytes" 100 "$(stat -c %s "$T_DIR/b")"
get /a -H 'Range: bytes=9000-'
t_eq "unsatisfiable Range: 416" 416 "$(status)"
t_eq "416 Content-Range" "bytes */5000" "$(hdr Content-Range)"
get /a -H 'Range: bytes=0-9' -H 'If-Range: "v1"'
t_eq "If-Range matching: 206" 206 "$(status)"
get /a -H 'Range: bytes=0-9' -H 'If-Range: "old"'
t_eq "If-Range not matching: full 200" 200 "$(status)"
t_eq "ranges: still 1 origin request" 1 "$(ocount /a)"
# A range miss fetches and stores the whole object.
oset '{"path":"/r","headers":{"Cache-Control":"max-age=60"},"size":3000}'
get /r -H 'Range: bytes=100-199'
t_eq "range miss: 206" 206 "$(status)"
t_eq "range miss: 100 bytes" 100 "$(stat -c %s "$T_DIR/b")"
t_check "origin got no Range header" sh -c "! curl -s '$O/__last?path=/r' | grep -qi '\"range\"'"
get /r
t_check "range miss stored the whole object: hit" cs_has "; hit"
t_eq "range miss then full: 3000 bytes" 3000 "$(stat -c %s "$T_DIR/b")"
t_eq "range: 1 origin request" 1 "$(ocount /r)"

# --- storability
oset '{"path":"/ns","headers":{"Cache-Control":"no-store"},"body":"x"}'
get /ns; get /ns
t_eq "no-store: every request reaches the origin" 2 "$(ocount /ns)"
t_check "no-store: not stored" sh -c "! grep -qi 'stored' '$T_DIR/h'"
oset '{"path":"/priv","headers":{"Cache-Control":"private, max-age=60"},"body":"x"}'
get /priv; get /priv
t_eq "private: not stored" 2 "$(ocount /priv)"
oset '{"path":"/auth","headers":{"Cache-Control":"max-age=60"},"body":"x"}'
get /auth -H 'Authorization: Bearer x'; get /auth -H 'Authorization: Bearer x'
t_eq "Authorization without public: not stored" 2 "$(ocount /auth)"
oset '{"path":"/authpub","headers":{"Cache-Control":"public, max-age=60"},"body":"x"}'
get /authpub -H 'Authorization: Bearer x'; get /authpub -H 'Authorization: Bearer x'
t_eq "Authorization with public: stored" 1 "$(ocount /authpub)"
oset '{"path":"/vstar","headers":{"Cache-Control":"max-age=60","Vary":"*"},"body":"x"}'
get /vstar; get /vstar
t_eq "Vary: * not stored" 2 "$(ocount /vstar)"
oset '{"path":"/nofresh","headers":{},"body":"x"}'
get /nofresh; get /nofresh
t_eq "no freshness info, no Last-Modified: not reused" 2 "$(ocount /nofresh)"
oset '{"path":"/e500","status":500,"headers":{},"body":"err"}'
get /e500; get /e500
t_eq "500 without explicit freshness: not stored" 2 "$(ocount /e500)"
oset '{"path":"/e404","status":404,"headers":{"Cache-Control":"max-age=60"},"body":"nf"}'
get /e404; get /e404
t_eq "404 with max-age: cached" 1 "$(ocount /e404)"
t_eq "404 status kept" 404 "$(status)"

# --- freshness precedence: CDN-Cache-Control > s-maxage > max-age > Expires
oset '{"path":"/cdncc","headers":{"Cache-Control":"max-age=0","CDN-Cache-Control":"max-age=60"},"body":"x"}'
get /cdncc; get /cdncc
t_eq "CDN-Cache-Control max-age=60 beats Cache-Control max-age=0" 1 "$(ocount /cdncc)"
t_eq "CDN-Cache-Control not forwarded to clients" "" "$(hdr CDN-Cache-Control)"
t_eq "Cache-Control forwarded unchanged" "max-age=0" "$(hdr Cache-Control)"
oset '{"path":"/cdnns","headers":{"Cache-Control":"max-age=60","CDN-Cache-Control":"no-store"},"body":"x"}'
get /cdnns; get /cdnns
t_eq "CDN-Cache-Control no-store beats Cache-Control max-age" 2 "$(ocount /cdnns)"
oset '{"path":"/smax","headers":{"Cache-Control":"max-age=0, s-maxage=60"},"body":"x"}'
get /smax; get /smax
t_eq "s-maxage beats max-age" 1 "$(ocount /smax)"
oset '{"path":"/exp","headers":{"Expires":"Thu, 01 Jan 2099 00:00:00 GMT"},"body":"x"}'
get /exp; get /exp
t_eq "Expires in the future: cached" 1 "$(ocount /exp)"
oset '{"path":"/expmax","headers":{"Cache-Control":"max-age=0","Expires":"Thu, 01 Jan 2099 00:00:00 GMT"},"body":"x"}'
get /expmax; get /expmax
t_eq "max-age=0 beats Expires" 2 "$(ocount /expmax)"
oset '{"path":"/exp0","headers":{"Expires":"0"},"body":"x"}'
get /exp0; get /exp0
t_eq "invalid Expires means expired" 2 "$(ocount /exp0)"
oset '{"path":"/heur","headers":{"Last-Modified":"Mon, 01 Jan 2001 00:00:00 GMT"},"body":"x"}'
get /heur; get /heur
t_eq "heuristic freshness from Last-Modified" 1 "$(ocount /heur)"
oset '{"path":"/heur302","status":302,"headers":{"Location":"/x","Last-Modified":"Mon, 01 Jan 2001 00:00:00 GMT"},"body":"x"}'
get /heur302; get /heur302
t_eq "no heuristic freshness for 302" 2 "$(ocount /heur302)"

# --- Age from upstream
oset '{"path":"/age","headers":{"Cache-Control":"max-age=100","Age":"90"},"body":"x"}'
get /age
t_check "Age includes the upstream Age" test "$(hdr Age)" -ge 90
get /age
t_check "Age-aware ttl below 11" sh -c "hdr() { grep -i \"^\$1:\" '$T_DIR/h' | cut -d' ' -f2- | tr -d '\r'; }; hdr Cache-Status | grep -Eq 'ttl=(10|9|8)'"
oset '{"path":"/agestale","headers":{"Cache-Control":"max-age=10","Age":"20"},"body":"x"}'
get /agestale; get /agestale
t_eq "Age beyond max-age: stale at once" 2 "$(ocount /agestale)"

# --- validation: stale entry revalidated with a conditional request, 304 updates headers
oset '{"path":"/val","headers":{"Cache-Control":"max-age=1","ETag":"\"e1\"","X-Version":"1"},"body":"payload","etag_304":true}'
get /val
sleep 2.2
oset '{"path":"/val","headers":{"Cache-Control":"max-age=60","ETag":"\"e1\"","X-Version":"2"},"body":"CHANGED","etag_304":true}'
get /val
t_check "revalidation: Cache-Status fwd=stale fwd-status=304" cs_has "fwd=stale; fwd-status=304"
t_eq "revalidation: body kept from the cache" payload "$(body)"
t_eq "revalidation: header updated from the 304" 2 "$(hdr X-Version)"
t_check "revalidation request carried If-None-Match" sh -c "curl -s '$O/__last?path=/val' | grep -qi 'if-none-match'"
get /val
t_check "after 304: fresh again (hit)" cs_has "; hit"
t_eq "validation: 2 origin requests" 2 "$(ocount /val)"
oset '{"path":"/lmval","headers":{"Cache-Control":"max-age=1","Last-Modified":"Mon, 01 Jan 2001 00:00:00 GMT"},"body":"lm","etag_304":true}'
get /lmval; sleep 2.2; get /lmval
t_check "If-Modified-Since revalidation: 304 used" cs_has "fwd-status=304"
t_eq "If-Modified-Since revalidation: body from cache" lm "$(body)"
# no-cache: stored but revalidated on every use
oset '{"path":"/nc","headers":{"Cache-Control":"no-cache","ETag":"\"n\""},"body":"nc","etag_304":true}'
get /nc; get /nc; get /nc
t_eq "no-cache: revalidated each time" 3 "$(ocount /nc)"
t_check "no-cache: served via 304" cs_has "fwd-status=304"

# --- stale-while-revalidate: stale served at once, one background refresh
oset '{"path":"/swr","headers":{"Cache-Control":"max-age=1, stale-while-revalidate=30"},"body":"old"}'
get /swr; sleep 2.2
oset '{"path":"/swr","headers":{"Cache-Control":"max-age=60"},"body":"new","delay":0.5}'
get /swr
t_eq "swr: stale body served immediately" old "$(body)"
get /swr
t_eq "swr: still stale while refresh runs" old "$(body)"
sleep 1
get /swr
t_eq "swr: refreshed in the background" new "$(body)"
t_eq "swr: one background fetch" 2 "$(ocount /swr)"

# --- stale-if-error
oset '{"path":"/sie","headers":{"Cache-Control":"max-age=1, stale-if-error=60"},"body":"good"}'
get /sie; sleep 2.2
oset '{"path":"/sie","status":503,"headers":{},"body":"down"}'
get /sie
t_eq "stale-if-error on 503: stale served" good "$(body)"
t_eq "stale-if-error: status 200" 200 "$(status)"
t_check "stale-if-error: Cache-Status says stale" cs_has "fwd=stale"
oset '{"path":"/sie","drop":true}'
get /sie
t_eq "stale-if-error on a dropped connection: stale served" good "$(body)"
oset '{"path":"/mr","headers":{"Cache-Control":"max-age=1, must-revalidate, stale-if-error=60"},"body":"x"}'
get /mr; sleep 2.2
oset '{"path":"/mr","status":503,"headers":{},"body":"down"}'
get /mr
t_eq "must-revalidate: no stale on error" 503 "$(status)"
oset '{"path":"/nosie","headers":{"Cache-Control":"max-age=1"},"body":"x"}'
get /nosie; sleep 2.2
oset '{"path":"/nosie","status":503,"headers":{},"body":"down"}'
get /nosie
t_eq "no stale-if-error and default 0: error passed on" 503 "$(status)"

# --- Vary
oset '{"path":"/vary","headers":{"Cache-Control":"max-age=60","Vary":"Accept-Language"},"body":"v"}'
get /vary -H 'Accept-Language: en'
get /vary -H 'Accept-Language: en'
t_check "Vary: same variant is a hit" cs_has "; hit"
get /vary -H 'Accept-Language: de'
t_check "Vary: other variant is a vary-miss" cs_has "fwd=vary-miss"
get /vary -H 'Accept-Language: de'
t_check "Vary: second variant stored" cs_has "; hit"
get /vary -H 'Accept-Language: en'
t_check "Vary: first variant still there" cs_has "; hit"
t_eq "Vary: 2 origin requests for 2 variants" 2 "$(ocount /vary)"

# --- cache key normalisation
oset '{"path":"/k/x","headers":{"Cache-Control":"max-age=60"},"body":"kx"}'
get /k/x
get /k/./y/../x
t_check "dot segments normalised: hit" cs_has "; hit"
get /k/%78
t_check "percent-encoded unreserved normalised: hit" cs_has "; hit"
curl -s -D "$T_DIR/h" -o "$T_DIR/b" -H 'Host: 127.0.0.1:'"$EPORT" --path-as-is "$E/k/../../k/x"
t_check "traversal above root normalised: hit" cs_has "; hit"
t_eq "normalisation: 1 origin request" 1 "$(ocount /k/x)"
get "/sorted/p?b=2&a=1"; get "/sorted/p?a=1&b=2"
t_eq "query sort rule: reordered query served from the same entry" "1 0" "$(ocount '/sorted/p?b=2&a=1') $(ocount '/sorted/p?a=1&b=2')"
get "/noq/p?x=1"; get "/noq/p?y=2"
t_eq "query ignore rule: other query served from the same entry" "1 0" "$(ocount '/noq/p?x=1') $(ocount '/noq/p?y=2')"
get "/plain?b=2&a=1"; get "/plain?a=1&b=2"
t_check "no rule: query order matters" cs_has "uri-miss"
get /k/x -H 'Host: other.example'
t_check "another Host is another key" cs_has "uri-miss"

# --- unsafe methods pass through and invalidate
oset '{"path":"/inv","headers":{"Cache-Control":"max-age=60"},"body":"cached"}'
get /inv; get /inv
t_check "before POST: hit" cs_has "; hit"
curl -s -o /dev/null -X POST --data-binary 'form=1' "$E/inv"
t_eq "POST reached the origin with its body" 'form=1' "$(curl -s "$O/__last?path=/inv" | python3 -c 'import json,sys;print(json.load(sys.stdin)["body"])')"
get /inv
t_check "after POST: invalidated (miss)" cs_has "uri-miss"
t_eq "invalidation: 3 origin requests (GET, POST, GET)" 3 "$(ocount /inv)"
oset '{"path":"/loc","headers":{"Cache-Control":"max-age=60"},"body":"l"}'
oset '{"path":"/do","status":201,"headers":{"Location":"/loc"},"body":""}'
get /loc
curl -s -o /dev/null -X PUT --data-binary 'x' "$E/do"
get /loc
t_check "PUT with Location: the Location is invalidated" cs_has "uri-miss"
oset '{"path":"/failpost","headers":{"Cache-Control":"max-age=60"},"body":"keep"}'
get /failpost
oset '{"path":"/failpost","status":500,"headers":{},"body":""}'
curl -s -o /dev/null -X DELETE "$E/failpost"
oset '{"path":"/failpost","headers":{"Cache-Control":"max-age=60"},"body":"keep"}'
get /failpost
t_check "failed DELETE does not invalidate" cs_has "; hit"

# --- hop-by-hop never forwarded, surrogate keys stripped
oset '{"path":"/hop","headers":{"Cache-Control":"max-age=60","Connection":"X-Private","X-Private":"secret","Keep-Alive":"timeout=5","Surrogate-Key":"k1 k2","Cache-Tag":"t1"},"body":"h"}'
get /hop; get /hop
t_eq "header named in Connection not forwarded" "" "$(hdr X-Private)"
t_eq "Keep-Alive not forwarded" "" "$(hdr Keep-Alive)"
t_eq "Surrogate-Key stripped" "" "$(hdr Surrogate-Key)"
t_eq "Cache-Tag stripped" "" "$(hdr Cache-Tag)"
curl -s -o /dev/null -H 'Connection: X-Client-Hop' -H 'X-Client-Hop: 1' -H 'X-End: 2' "$E/hop2"
t_check "client hop-by-hop header not sent to origin" sh -c "! curl -s '$O/__last?path=/hop2' | grep -qi 'x-client-hop'"
t_check "client end-to-end header sent to origin" sh -c "curl -s '$O/__last?path=/hop2' | grep -qi 'x-end'"

# --- large objects stream through without being stored
oset '{"path":"/big","headers":{"Cache-Control":"max-age=60"},"size":6000000}'
get /big
t_eq "object above max_object_size: all bytes" 6000000 "$(stat -c %s "$T_DIR/b")"
get /big
t_eq "object above max_object_size: not stored" 2 "$(ocount /big)"
oset '{"path":"/bigchunked","headers":{"Cache-Control":"max-age=60"},"size":6000000,"chunked":true}'
get /bigchunked
t_eq "chunked object above max_object_size: all bytes" 6000000 "$(stat -c %s "$T_DIR/b")"
get /bigchunked
t_eq "chunked object above max_object_size: not stored" 2 "$(ocount /bigchunked)"
oset '{"path":"/smallchunked","headers":{"Cache-Control":"max-age=60"},"size":70000,"chunked":true}'
get /smallchunked; get /smallchunked
t_eq "chunked object below the limit: stored" "1 70000" "$(ocount /smallchunked) $(stat -c %s "$T_DIR/b")"


# --- client request Cache-Control (RFC 9111 5.2.1).  The origin sends Age so
# entries are born aged (or already stale): no sleeps needed.
oset '{"path":"/rq","headers":{"Cache-Control":"max-age=600","ETag":"\"q1\"","Age":"30"},"body":"rq-body","etag_304":true}'
get /rq
t_eq "req cc: first request fills (1 origin request)" 1 "$(ocount /rq)"
get /rq -H 'Cache-Control: max-age=60'
t_check "max-age=60 on a 30 s old entry: hit" cs_has "; hit"
t_eq "max-age=60: no origin request" 1 "$(ocount /rq)"
get /rq -H 'Cache-Control: max-age=10'
t_check "max-age=10 on a 30 s old entry: fwd=request, revalidated (304)" cs_has "fwd=request; fwd-status=304"
t_eq "max-age=10: body from the cache" rq-body "$(body)"
t_eq "max-age=10: one conditional origin request" 2 "$(ocount /rq)"
t_check "max-age=10: origin got If-None-Match" sh -c "curl -s '$O/__last?path=/rq' | grep -q 'If-None-Match'"
t_check "after the 304 the entry is as old as the 304's Age says" test "$(hdr Age)" -ge 30
get /rq -H 'Cache-Control: min-fresh=100'
t_check "min-fresh=100 with ~570 s left: hit" cs_has "; hit"
get /rq -H 'Cache-Control: min-fresh=1000'
t_check "min-fresh=1000: fwd=request, revalidated" cs_has "fwd=request; fwd-status=304"
t_eq "min-fresh: one more origin request" 3 "$(ocount /rq)"
get /rq -H 'Cache-Control: no-cache'
t_check "no-cache on a fresh entry: fwd=request via 304" cs_has "fwd=request; fwd-status=304"
t_eq "no-cache: 200 with the cached body" "200 rq-body" "$(status) $(body)"
t_eq "no-cache: one more origin request" 4 "$(ocount /rq)"
get /rq -H 'Pragma: no-cache'
t_check "Pragma: no-cache without Cache-Control: revalidated" cs_has "fwd=request; fwd-status=304"
t_eq "Pragma: one more origin request" 5 "$(ocount /rq)"
get /rq -H 'Pragma: no-cache' -H 'Cache-Control: max-age=600'
t_check "Pragma ignored when Cache-Control is present: hit" cs_has "; hit"
get /rq -H 'Cache-Control: max-age=0'
t_check "max-age=0 (browser reload) on a 30 s old entry: revalidated" cs_has "fwd=request; fwd-status=304"
t_eq "max-age=0: one more origin request" 6 "$(ocount /rq)"
get /rq -H 'Cache-Control: only-if-cached'
t_eq "only-if-cached, stored: 200 from the cache" "200 rq-body" "$(status) $(body)"
t_eq "req cc: origin count after the hits" 6 "$(ocount /rq)"
get /rq-absent -H 'Cache-Control: only-if-cached'
t_eq "only-if-cached, not stored: 504" 504 "$(status)"
t_check "only-if-cached 504: Cache-Status detail" cs_has "detail=only-if-cached"
t_check "only-if-cached 504: no Via (the edge made it, RFC 9110 7.6.3)" sh -c "! grep -qi '^Via:' '$T_DIR/h'"
t_eq "only-if-cached, not stored: origin never asked" 0 "$(ocount /rq-absent)"
oset '{"path":"/rqnv","headers":{"Cache-Control":"max-age=600"},"body":"no-validator"}'
n=$(stored_total)
get /rqnv
wait_stored "$n"
get /rqnv -H 'Cache-Control: no-cache'
t_check "no-cache, entry without validator: full refetch (fwd-status=200)" cs_has "fwd=request; fwd-status=200"
t_eq "no-cache without validator: body" no-validator "$(body)"
t_check "no-cache without ETag: no If-None-Match sent" sh -c "! curl -s '$O/__last?path=/rqnv' | grep -qi 'if-none-match'"
t_check "no-cache without Last-Modified: If-Modified-Since from the stored Date (RFC 9111 4.3.1)" sh -c "curl -s '$O/__last?path=/rqnv' | grep -qi 'if-modified-since'"
t_eq "no-cache without validator: 2 origin requests" 2 "$(ocount /rqnv)"
get /rqnv
t_check "no-cache refetch stored: next request a hit" cs_has "; hit"

# max-stale: an entry stale by ~30 s from birth (max-age=10, Age: 40)
oset '{"path":"/ms","headers":{"Cache-Control":"max-age=10","Age":"40","ETag":"\"m\""},"body":"stale-body","etag_304":true}'
get /ms
t_check "max-stale: aged entry stored" cs_has "stored"
get /ms -H 'Cache-Control: max-stale=60'
t_check "max-stale=60, ~30 s stale: served stale from the cache" cs_has "; hit.*detail=max-stale"
t_eq "max-stale=60: stale body, no origin request" "stale-body 1" "$(body) $(ocount /ms)"
get /ms -H 'Cache-Control: max-stale'
t_check "bare max-stale: served stale" cs_has "; hit.*detail=max-stale"
get /ms -H 'Cache-Control: only-if-cached'
t_eq "only-if-cached on a stale entry: 504" 504 "$(status)"
get /ms -H 'Cache-Control: only-if-cached, max-stale'
t_eq "only-if-cached + max-stale on a stale entry: 200" "200 stale-body" "$(status) $(body)"
t_eq "max-stale / only-if-cached: still 1 origin request" 1 "$(ocount /ms)"
get /ms -H 'Cache-Control: max-stale=5'
t_check "max-stale=5, ~30 s stale: revalidated (fwd=stale)" cs_has "fwd=stale; fwd-status=304"
t_eq "max-stale=5: one more origin request" 2 "$(ocount /ms)"
oset '{"path":"/msmr","headers":{"Cache-Control":"max-age=10, must-revalidate","Age":"40"},"body":"x"}'
n=$(stored_total)
get /msmr
wait_stored "$n"
get /msmr -H 'Cache-Control: max-stale=600'
t_check "max-stale with must-revalidate: not served stale" cs_has "fwd=stale"
t_eq "max-stale with must-revalidate: 2 origin requests" 2 "$(ocount /msmr)"
oset '{"path":"/mssm","headers":{"Cache-Control":"s-maxage=10","Age":"40"},"body":"x"}'
get /mssm; get /mssm -H 'Cache-Control: max-stale'
t_eq "max-stale with s-maxage (implies proxy-revalidate): 2 origin requests" 2 "$(ocount /mssm)"
oset '{"path":"/mspr","headers":{"Cache-Control":"max-age=10, proxy-revalidate","Age":"40"},"body":"x"}'
get /mspr; get /mspr -H 'Cache-Control: max-stale'
t_eq "max-stale with proxy-revalidate: 2 origin requests" 2 "$(ocount /mspr)"

# collapsing: ordinary concurrent misses still share one fetch; a burst of
# no-cache requests shares one conditional revalidation
oset '{"path":"/col","headers":{"Cache-Control":"max-age=60"},"body":"col-body","delay":0.8}'
pids=(); for i in 1 2 3 4 5; do curl -s --max-time 10 -o "$T_DIR/col$i" "$E/col" & pids+=($!); done; wait "${pids[@]}"
t_eq "collapsing: 5 concurrent misses, 1 origin request" 1 "$(ocount /col)"
t_eq "collapsing: every client got the body" 5 "$(for f in "$T_DIR"/col?; do cat "$f"; echo; done | grep -cx col-body)"
oset '{"path":"/colnc","headers":{"Cache-Control":"max-age=600","ETag":"\"c\""},"body":"colnc-body","etag_304":true}'
get /colnc
oset '{"path":"/colnc","headers":{"Cache-Control":"max-age=600","ETag":"\"c\""},"body":"colnc-body","etag_304":true,"delay":0.8}'
pids=(); for i in 1 2 3 4 5; do curl -s --max-time 10 -D "$T_DIR/cnh$i" -o "$T_DIR/cnc$i" -H 'Cache-Control: no-cache' "$E/colnc" & pids+=($!); done; wait "${pids[@]}"
t_eq "no-cache burst: 1 fill + 1 shared revalidation" 2 "$(ocount /colnc)"
t_eq "no-cache burst: every client got the body" 5 "$(for f in "$T_DIR"/cnc?; do cat "$f"; echo; done | grep -cx colnc-body)"
t_eq "no-cache burst: every answer came through the 304" 5 "$(cat "$T_DIR"/cnh? | grep -ci 'Cache-Status:.*fwd=request; fwd-status=304')"

# --- multiple byte ranges (RFC 9110 14): multipart/byteranges from the cache
MP="$T_ROOT/tests/integration/edge-cache/check_multipart.py"
mp() { python3 "$MP" "$T_DIR/h" "$T_DIR/b" "$T_DIR/mrfull" "$@"; }
oset '{"path":"/mrg","headers":{"Cache-Control":"max-age=600","ETag":"\"mr\"","Content-Type":"text/plain"},"size":1000}'
get /mrg
cp "$T_DIR/b" "$T_DIR/mrfull"
get /mrg -r 0-9,20-29
t_eq "multi-range: 206 multipart/byteranges, exact parts and layout" ok "$(mp 0-9,20-29 text/plain)"
t_check "multi-range: served from the cache" cs_has "; hit"
mplen=$(hdr Content-Length)
get /mrg -H 'Range: bytes=500-509, 0-4,2-6'
t_eq "multi-range unordered/overlapping within the size: parts as asked" ok "$(mp 500-509,0-4,2-6 text/plain)"
get /mrg -H 'Range: bytes=990-,-5,0-0'
t_eq "multi-range open-ended and suffix ranges" ok "$(mp 990-999,995-999,0-0 text/plain)"
curl -s -I -r 0-9,20-29 "$E/mrg" >"$T_DIR/h"
t_eq "multi-range HEAD: 206" 206 "$(status)"
t_check "multi-range HEAD: multipart Content-Type" sh -c "grep -qi '^Content-Type: multipart/byteranges; boundary=' '$T_DIR/h'"
t_eq "multi-range HEAD: Content-Length of the GET" "$mplen" "$(hdr Content-Length)"
get /mrg -r 0-9,20-29 -H 'If-Range: "mr"'
t_eq "multi-range with matching If-Range: multipart" ok "$(mp 0-9,20-29 text/plain)"
get /mrg -r 0-9,20-29 -H 'If-Range: "old"'
t_eq "multi-range with stale If-Range: 200, whole object" "200 1000" "$(status) $(stat -c %s "$T_DIR/b")"
get /mrg -r 0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18,20-20,22-22,24-24,26-26,28-28,30-30
t_eq "16 ranges: still multipart" ok "$(mp 0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18,20-20,22-22,24-24,26-26,28-28,30-30 text/plain)"
get /mrg -r 0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18,20-20,22-22,24-24,26-26,28-28,30-30,32-32
t_eq "17 ranges: Range ignored, 200 whole object" "200 1000" "$(status) $(stat -c %s "$T_DIR/b")"
t_check "17 ranges: the whole object's bytes" cmp -s "$T_DIR/b" "$T_DIR/mrfull"
get /mrg -r 0-,0-
t_eq "overlapping ranges adding up past the size: 200 whole object" "200 1000" "$(status) $(stat -c %s "$T_DIR/b")"
get /mrg -r 0-600,400-999
t_eq "overlapping ranges 1200 of 1000 bytes: 200" 200 "$(status)"
get /mrg -r 2000-2100,3000-
t_eq "every range unsatisfiable: 416" "416 bytes */1000" "$(status) $(hdr Content-Range)"
get /mrg -r 2000-2100,10-19
t_eq "one satisfiable range among unsatisfiable ones: plain 206" "206 bytes 10-19/1000 text/plain" "$(status) $(hdr Content-Range) $(hdr Content-Type)"
t_check "plain 206: the right 10 bytes" bash -c "cmp -s '$T_DIR/b' <(dd if='$T_DIR/mrfull' bs=1 skip=10 count=10 2>/dev/null)"
get /mrg -H 'Range: bytes=0-9,x'
t_eq "malformed range set: 200 whole object" "200 1000" "$(status) $(stat -c %s "$T_DIR/b")"
t_eq "multi-range: 1 origin request for all of it" 1 "$(ocount /mrg)"
oset '{"path":"/mrnt","headers":{"Cache-Control":"max-age=600"},"size":300000,"delay":0.3}'
get /mrnt -r 0-99999,150000-150009,200000-299999,5-5
cp "$T_DIR/h" "$T_DIR/mrmiss.h"; cp "$T_DIR/b" "$T_DIR/mrmiss.b"
t_check "multi-range on a miss: forwarded" cs_has "fwd=uri-miss.*stored"
get /mrnt
t_eq "after the multi-range miss: whole object stored (hit)" "200 300000" "$(status) $(stat -c %s "$T_DIR/b")"
cp "$T_DIR/b" "$T_DIR/mrfull"
t_eq "multi-range on a miss: multipart streamed while the body arrives" ok "$(python3 "$MP" "$T_DIR/mrmiss.h" "$T_DIR/mrmiss.b" "$T_DIR/mrfull" 0-99999,150000-150009,200000-299999,5-5 -)"
get /mrnt -r 0-99999,150000-150009,200000-299999
t_eq "multi-range over many blocks from the cache, no Content-Type: exact parts" ok "$(mp 0-99999,150000-150009,200000-299999 -)"
oset '{"path":"/mrns","headers":{"Cache-Control":"no-store"},"size":1000}'
get /mrns -r 0-9,20-29
t_eq "multi-range on a response not stored: 200 whole object" "200 1000" "$(status) $(stat -c %s "$T_DIR/b")"
t_eq "multi-range large: 1 origin request" 1 "$(ocount /mrnt)"

# --- cache.honor_client_no_cache = false (SIGHUP): reload storms answered from the cache
sed -i 's/^cache = { /cache = { honor_client_no_cache = false; /' "$T_DIR/edge.conf"
n0=$(grep -c "SIGHUP: reloaded" "$T_DIR/edge.log")
kill -HUP "$(t_pid edge)"
for _ in $(seq 50); do [ "$(grep -c "SIGHUP: reloaded" "$T_DIR/edge.log")" -gt "$n0" ] && break; sleep 0.1; done
t_check "honor_client_no_cache=false: reloaded" test "$(grep -c "SIGHUP: reloaded" "$T_DIR/edge.log")" -gt "$n0"
c0=$(ocount /rq)
get /rq -H 'Cache-Control: no-cache'
t_check "honor off: no-cache answered from the cache" cs_has "; hit"
get /rq -H 'Pragma: no-cache'
t_check "honor off: Pragma: no-cache answered from the cache" cs_has "; hit"
get /rq -H 'Cache-Control: max-age=0'
t_check "honor off: max-age=0 answered from the cache" cs_has "; hit"
t_eq "honor off: no origin request for the three" "$c0" "$(ocount /rq)"
get /rq -H 'Cache-Control: min-fresh=100000'
t_check "honor off: other directives still honoured (min-fresh)" cs_has "fwd=request"
t_eq "honor off: min-fresh reached the origin" $((c0 + 1)) "$(ocount /rq)"

# --- no header twice: the origin's Accept-Ranges gives way to the edge's own
# (the edge serves ranges itself), on a miss, a hit, a 206 and a HEAD.
oset '{"path":"/ar","headers":{"Cache-Control":"max-age=60","Accept-Ranges":"bytes"},"size":3000}'
dups() { tr -d '\r' <"$T_DIR/h" | sed -n '2,$p' | grep -v '^$' | cut -d: -f1 | tr 'A-Z' 'a-z' | sort | uniq -d | tr '\n' ' '; }
get /ar
t_eq "miss: no header twice" "" "$(dups)"
t_eq "miss: one Accept-Ranges: bytes" "bytes" "$(hdr Accept-Ranges)"
get /ar
t_check "second request is a hit" cs_has "; hit"
t_eq "hit: no header twice" "" "$(dups)"
get /ar -r 0-9
t_eq "206 from the cache: no header twice" "" "$(dups)"
get /ar -I
t_eq "HEAD: no header twice" "" "$(dups)"

t_done
