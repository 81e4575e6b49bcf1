/* fuzz_query.c -- libFuzzer target for the DNS protocol core (dns/query.c).
 *
 * At start-up it writes a small config, zone (CNAME chain, wildcard,
 * delegation, MX, big TXT) and map to a temp dir, loads them as the server
 * would and publishes the view.  Each input is one DNS message; the first
 * byte picks the client address family and transport, so UDP and TCP limits,
 * IPv4 and IPv6 clients, ECS and every zone path are reachable.  Every reply
 * is checked for a sane header. */
#include "dns/query.h"
#include "dns/snap.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *ZONE =
	"$ORIGIN cdn.test.\n$TTL 300\n"
	"@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n"
	"@ IN NS ns1\n@ IN MX 10 mail\nns1 IN A 127.0.0.1\nmail IN A 127.0.0.2\nmail IN AAAA ::2\n"
	"c1 IN CNAME c2\nc2 IN CNAME static\nloop1 IN CNAME loop2\nloop2 IN CNAME loop1\n"
	"out IN CNAME www.example.com.\nstatic IN A 192.0.2.1\n*.w IN TXT \"wild\"\n"
	"sub IN NS ns.sub\nns.sub IN A 192.0.2.53\n_s._tcp IN SRV 1 2 3 static\n"
	"big IN TXT \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n"
	"big IN TXT \"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"\n"
	"big IN TXT \"ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\"\n"
	"big IN TXT \"ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd\"\n"
	"big IN TXT \"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee\"\n"
	"big IN TXT \"fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\"\n";

static const char *MAP = "10.0.0.0/8 us\n10.1.0.0/16 eu\n2001:db8::/32 us\n127.0.0.0/8 eu\n";

static const char *CONF =
	"listen = [ \"127.0.0.1:1\" ];\nstats_listen = \"127.0.0.1:2\";\nanswers = 3;\n"
	"zones = ( { name = \"cdn.test.\"; file = \"z\"; } );\ndynamic = [ \"www.cdn.test.\", \"*.cdn.test.\" ];\n"
	"map = \"m\";\ndefault_region = \"eu\";\n"
	"regions = ( { name = \"eu\"; lat = 50.1; lon = 8.7; backup = [ \"us\" ]; }, { name = \"us\"; lat = 39.0; lon = -77.5; } );\n"
	"edges = ( { name = \"a\"; region = \"eu\"; address = \"127.0.0.11\"; address6 = \"fd00::11\"; weight = 2; },\n"
	"          { name = \"b\"; region = \"eu\"; address = \"127.0.0.21\"; },\n"
	"          { name = \"c\"; region = \"us\"; address = \"127.0.0.12\"; address6 = \"fd00::12\"; } );\n";

static struct counters stats;
static uint64_t rng = 1;

static void put(const char *dir, const char *name, const char *text)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	if (!f || fputs(text, f) < 0)
		abort();
	fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	log_init("fuzz", LOG_LVL_ERROR);
	char dir[] = "/tmp/minicdn-fuzz.XXXXXX";
	if (!mkdtemp(dir))
		abort();
	put(dir, "z", ZONE);
	put(dir, "m", MAP);
	put(dir, "dns.conf", CONF);
	char path[512], err[1024];
	snprintf(path, sizeof path, "%s/dns.conf", dir);
	struct snapshot *s = snapshot_load(path, err, sizeof err);
	if (!s) {
		fprintf(stderr, "fuzz: %s\n", err);
		abort();
	}
	struct edge_health h[3] = { { .up = true }, { .up = true, .load = 2.0 }, { .up = false } };
	view_lock();
	view_publish(s, h);
	view_unlock();
	/* The data is loaded: the files can go. */
	unlink(path);
	snprintf(path, sizeof path, "%s/z", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/m", dir);
	unlink(path);
	rmdir(dir);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t sel = data[0];
	data++, size--;
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	if (sel & 1) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, (sel & 2) ? "2001:db8::5" : "::ffff:10.1.2.3", &s6->sin6_addr);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		inet_pton(AF_INET, (sel & 2) ? "10.9.9.9" : "192.0.2.77", &s4->sin_addr);
	}
	bool tcp = (sel & 4) != 0;
	size_t cap = tcp ? 65535 : (sel & 8) ? 512 : 4096;
	/* The input goes into an exact-size heap copy so ASan sees any over-read. */
	uint8_t *in = malloc(size ? size : 1);
	memcpy(in, data, size);
	uint8_t *out = malloc(cap);
	struct query_env env = { view_current(), &stats, rng };
	size_t n = query_process(&env, in, size, (struct sockaddr *)&ss, tcp, out, cap);
	rng = env.rng;
	if (n) {
		if (n < 12 || n > cap)
			abort();
		if (!(out[2] & 0x80) || memcmp(out, in, 2) != 0)
			abort(); /* a reply must be a response with the query's id */
		if (!tcp && n > 4096)
			abort();
	}
	free(out);
	free(in);
	return 0;
}
