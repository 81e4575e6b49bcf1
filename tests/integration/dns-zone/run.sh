#!/bin/bash
# dns-zone: authoritative semantics of minicdn-dns checked with dig and kdig:
# flags, rcodes, authority/additional sections, negative TTL, case, CNAME
# chains, wildcards, delegation + glue, EDNS/BADVERS, TC then TCP, RFC 7766
# TCP behaviour, malformed packets.
. "$(dirname "$0")/../../lib.sh"
t_init dns-zone
HERE=$(cd "$(dirname "$0")" && pwd)
P=$(t_free_port); SP=$(t_free_port)
cp "$HERE"/*.zone "$T_DIR/"
sed -e "s/@PORT@/$P/; s/@SPORT@/$SP/" "$HERE/dns.conf.in" > "$T_DIR/dns.conf"

t_check "config check (-t) passes" "$BIN/minicdn-dns" -t -c "$T_DIR/dns.conf"
t_start dns "$BIN/minicdn-dns" -c "$T_DIR/dns.conf"
t_wait_dns 127.0.0.1 "$P" example.test || t_fail "server did not answer"

has() { grep -qE -- "$1" <<<"$2"; }
D() { dig +time=2 +tries=1 @127.0.0.1 -p "$P" "$@"; }
status() { D "$@" | sed -n 's/.*status: \([A-Z]*\),.*/\1/p'; }
flags() { D "$@" | sed -n 's/.*flags: \([a-z ]*\);.*/\1/p' | head -1; }
section() { # section NAME args: records of a section, one per line, no comments
	D +noall "+$1" "${@:2}" | grep -v '^;' | grep -v '^$'; }

# ---- SOA / NS / A and flags
t_eq "SOA at apex" "ns1.example.test. hostmaster.example.test. 7 3600 600 86400 120" "$(D +short example.test SOA)"
t_eq "NS at apex (sorted)" "ns1.example.test. ns2.elsewhere.test." "$(D +short example.test NS | sort | xargs)"
t_eq "flags: qr aa, no ra (recursion not offered)" "qr aa rd" "$(flags host.example.test A)"
t_eq "AAAA record" "2001:db8::10" "$(D +short host.example.test AAAA)"
t_eq "TXT record" '"apex text"' "$(D +short example.test TXT)"
t_eq "SRV record" "10 60 5060 host.example.test." "$(D +short _sip._tcp.example.test SRV)"
t_check "MX answer carries the target's A and AAAA in additional" \
	bash -c "dig @127.0.0.1 -p $P +noall +additional example.test MX | grep -q '^mail.example.test.*A.*192.0.2.25' && dig @127.0.0.1 -p $P +noall +additional example.test MX | grep -q 'AAAA.*2001:db8::25'"
t_check "NS answer carries in-zone glue" bash -c "dig @127.0.0.1 -p $P +noall +additional example.test NS | grep -q '^ns1.example.test.*192.0.2.1'"

# ---- REFUSED outside the zones
t_eq "name outside every zone -> REFUSED" REFUSED "$(status www.example.com A)"
t_check "REFUSED answer has no aa flag" bash -c "! dig @127.0.0.1 -p $P www.example.com | grep -q 'flags:.* aa'"

# ---- negative answers carry the SOA with the negative TTL (min(SOA TTL, MINIMUM) = 120)
t_eq "missing name -> NXDOMAIN" NXDOMAIN "$(status nope.example.test A)"
t_eq "NXDOMAIN authority is the SOA with TTL 120" "example.test. 120 IN SOA" \
	"$(section authority nope.example.test A | awk '{print $1, $2, $3, $4}')"
t_eq "NXDOMAIN is authoritative" "qr aa rd" "$(flags nope.example.test A)"
t_eq "existing name, other type -> NODATA (NOERROR)" NOERROR "$(status host.example.test MX)"
t_eq "NODATA: no answer, SOA in authority" "0 example.test. 120 IN SOA" \
	"$(echo "$(section answer host.example.test MX | wc -l) $(section authority host.example.test MX | awk '{print $1, $2, $3, $4}')")"
t_eq "empty non-terminal b.example.test -> NODATA, not NXDOMAIN" NOERROR "$(status b.example.test A)"
t_eq "name under the empty non-terminal" 192.0.2.30 "$(D +short a.b.example.test A)"

# ---- case: matched case-insensitively, question case preserved
OUT=$(D +noall +answer +question HoSt.ExAmPlE.tEsT A)
t_check "mixed-case query answered" grep -q "192.0.2.10" <<<"$OUT"
t_check "question case preserved in question and owner" grep -q "^HoSt.ExAmPlE.tEsT.*IN.*A.*192.0.2.10" <<<"$OUT"

# ---- CNAME chains
t_eq "CNAME chain followed inside the zone" "c2.example.test. host.example.test. 192.0.2.10" "$(D +short c1.example.test A | xargs)"
t_eq "CNAME chain answer has 3 records" 3 "$(section answer c1.example.test A | wc -l)"
t_eq "CNAME qtype returns the CNAME only" "c2.example.test." "$(D +short c1.example.test CNAME)"
t_eq "CNAME leaving the zone: just the CNAME" "www.elsewhere.test." "$(D +short out.example.test A)"
t_eq "CNAME chain to a missing type ends in NODATA with SOA" "example.test." \
	"$(section authority c1.example.test MX | awk '{print $1}')"

# ---- wildcards (RFC 4592)
t_eq "wildcard synthesises A" 192.0.2.40 "$(D +short foo.wild.example.test A)"
t_eq "wildcard owner is the query name" "x.y.wild.example.test." "$(section answer x.y.wild.example.test TXT | awk '{print $1}')"
t_eq "wildcard NODATA for a type it lacks" NOERROR "$(status foo.wild.example.test MX)"
t_eq "no wildcard above: NXDOMAIN" NXDOMAIN "$(status foo.nowild.example.test A)"

# ---- delegation: referral with glue, not authoritative
REF=$(D +norec x.sub.example.test A)
t_check "referral: NOERROR, no aa" bash -c "grep -q 'status: NOERROR' <<<'$REF' && ! grep -q 'flags:.* aa' <<<'$REF'"
t_check "referral: NS in authority" grep -q "^sub.example.test.*NS.*ns.sub.example.test." <<<"$REF"
t_check "referral: glue in additional" grep -q "^ns.sub.example.test.*A.*192.0.2.53" <<<"$REF"

# ---- EDNS(0)
t_check "OPT in reply with our UDP size" bash -c "dig @127.0.0.1 -p $P host.example.test | grep -q 'EDNS: version: 0, flags:; udp: 1232'"
t_check "no OPT without EDNS in the query" bash -c "! dig +noedns @127.0.0.1 -p $P host.example.test | grep -q 'OPT PSEUDOSECTION'"
t_eq "EDNS version 1 -> BADVERS" BADVERS "$(status +edns=1 +noednsneg host.example.test)"
t_eq "opcode STATUS -> NOTIMP" NOTIMP "$(status +opcode=2 host.example.test)"

# ---- truncation and TCP retry
t_check "large answer without EDNS: TC set" bash -c "dig +noedns +ignore @127.0.0.1 -p $P big.example.test TXT | grep -q 'flags:.* tc'"
t_check "large answer fits with EDNS 1232: no TC" bash -c "! dig +ignore @127.0.0.1 -p $P big.example.test TXT | grep -q 'flags:.* tc'"
t_check "larger than 1232: TC even with EDNS 4096 (our cap)" bash -c "dig +bufsize=4096 +ignore @127.0.0.1 -p $P huge.example.test TXT | grep -q 'flags:.* tc'"
t_eq "dig retries over TCP after TC and gets all 6 records" 6 "$(D +short +bufsize=4096 huge.example.test TXT | wc -l)"
t_eq "kdig over TCP gets all 6 records" 6 "$(kdig +short +tcp @127.0.0.1 -p "$P" huge.example.test TXT | wc -l)"
t_check "kdig UDP answer (no TC) is parsed" bash -c "kdig @127.0.0.1 -p $P host.example.test A | grep -q 'status: NOERROR'"
t_eq "kdig: malformed ECS option -> FORMERR" FORMERR \
	"$(kdig @127.0.0.1 -p "$P" +ednsopt=8:0001 host.example.test | sed -n 's/.*status: \([A-Z]*\);.*/\1/p;s/.*status: \([A-Z]*\)$/\1/p' | head -1)"
t_eq "kdig: ECS with host bits beyond the source prefix -> FORMERR" FORMERR \
	"$(kdig @127.0.0.1 -p "$P" +ednsopt=8:0001100001020304 host.example.test | grep -o 'status: [A-Z]*' | head -1 | cut -d' ' -f2)"

while read -r line; do
	case $line in PASS:*) t_pass "${line#PASS: }" ;; *) t_fail "${line#FAIL: }" ;; esac
done < <(python3 "$HERE/tcp.py" "$P" 2>&1)
while read -r line; do
	case $line in PASS:*) t_pass "${line#PASS: }" ;; *) t_fail "${line#FAIL: }" ;; esac
done < <(python3 "$HERE/garbage.py" "$P" 2>&1)

# ---- bad configs and zones: clear error, exit 1 (not a sanitizer's exit)
sed 's/example.test.zone/missing.zone/' "$T_DIR/dns.conf" > "$T_DIR/bad1.conf"
t_fails_with 1 "missing zone file: exit 1" "$BIN/minicdn-dns" -t -c "$T_DIR/bad1.conf"; OUT=$T_OUT
t_check "missing zone file rejected with its name" has 'missing.zone: cannot open' "$OUT"
printf '$ORIGIN example.test.\n@ IN SOA ns1 h 1 2 3 4 5\nfoo IN A 300.1.1.1\n' > "$T_DIR/broken.zone"
sed 's/example.test.zone/broken.zone/' "$T_DIR/dns.conf" > "$T_DIR/bad2.conf"
t_fails_with 1 "zone syntax error: exit 1" "$BIN/minicdn-dns" -t -c "$T_DIR/bad2.conf"; OUT=$T_OUT
t_check "zone syntax error names file:line" has 'broken.zone:3: ' "$OUT"
printf 'listen = [ "127.0.0.1:1" ];\nbogus_key = 1;\n' > "$T_DIR/bad3.conf"
t_fails_with 1 "unknown config key: exit 1" "$BIN/minicdn-dns" -t -c "$T_DIR/bad3.conf"; OUT=$T_OUT
t_check "unknown config key rejected with file:line" has 'bad3.conf:2' "$OUT"
sed 's/"www.cdn.test.", /"www.other.test.", /' "$T_DIR/dns.conf" > "$T_DIR/bad4.conf"
t_fails_with 1 "dynamic name outside every zone: exit 1" "$BIN/minicdn-dns" -t -c "$T_DIR/bad4.conf"; OUT=$T_OUT
t_check "dynamic name outside every zone: named in the error" has "www.other.test.' is in no configured zone" "$OUT"
t_check "--help prints the config reference" bash -c "'$BIN/minicdn-dns' --help | grep -q 'health.load_threshold'"
t_check "--version" bash -c "'$BIN/minicdn-dns' --version | grep -q minicdn-dns"

t_check "stats listener /healthz says ok" bash -c "curl -sf http://127.0.0.1:$SP/healthz | grep -q '\"status\":\"ok\"'"
t_check "server alive at the end" t_wait_dns 127.0.0.1 "$P" example.test 2
t_done
