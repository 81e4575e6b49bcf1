/* test_query.c -- the protocol core (dns/query.c) driven directly: wire bytes
 * in, wire bytes out, no sockets.  Zone, map and edges come from temp files
 * loaded exactly as the server loads them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dns/query.h"
#include "dns/snap.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/minicdn-test-query.XXXXXX";

static void put(const char *name, const char *text)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **st)
{
	(void)st;
	assert_non_null(mkdtemp(dir));
	put("z", "$ORIGIN cdn.test.\n$TTL 300\n@ IN SOA ns1 h 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n"
	         "c IN CNAME ns1\nbig IN TXT \"" 
	         "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
	         "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\"\n"
	         "big IN TXT \""
	         "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij"
	         "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij\"\n"
	         "big IN TXT \""
	         "ABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJ"
	         "ABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJ\"\n");
	put("m", "10.0.0.0/8 us\n10.1.0.0/16 eu\n2001:db8::/32 us\n");
	put("c", "listen = [ \"127.0.0.1:1\" ];\nstats_listen = \"127.0.0.1:2\";\nttl = 20;\n"
	         "zones = ( { name = \"cdn.test.\"; file = \"z\"; } );\ndynamic = [ \"www.cdn.test.\" ];\n"
	         "map = \"m\";\ndefault_region = \"eu\";\n"
	         "regions = ( { name = \"eu\"; lat = 50.1; lon = 8.7; }, { name = \"us\"; lat = 39.0; lon = -77.5; } );\n"
	         "edges = ( { name = \"e\"; region = \"eu\"; address = \"192.0.2.1\"; address6 = \"2001:db8::e\"; },\n"
	         "          { name = \"u\"; region = \"us\"; address = \"192.0.2.2\"; } );\n");
	char path[600], err[1024];
	snprintf(path, sizeof path, "%s/c", dir);
	struct snapshot *s = snapshot_load(path, err, sizeof err);
	if (!s)
		fail_msg("%s", err);
	struct edge_health h[2] = { { .up = true }, { .up = true } };
	view_lock();
	view_publish(s, h);
	view_unlock();
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	view_shutdown();
	const char *f[] = { "z", "m", "c" };
	for (int i = 0; i < 3; i++) {
		char p[600];
		snprintf(p, sizeof p, "%s/%s", dir, f[i]);
		unlink(p);
	}
	rmdir(dir);
	return 0;
}

/* Builds a query; ecs_fam 0 = no ECS; edns false = no OPT. */
static size_t mkq(uint8_t *b, const char *name, uint16_t type, bool edns, int ecs_fam, const uint8_t *ecs_addr,
                  int ecs_src, uint8_t ver)
{
	size_t o = 12;
	memset(b, 0, 12);
	b[0] = 0xAB, b[1] = 0xCD, b[2] = 0x01; /* id, RD */
	b[5] = 1;
	b[11] = edns ? 1 : 0;
	const char *p = name;
	while (*p) {
		const char *d = strchr(p, '.');
		size_t l = d ? (size_t)(d - p) : strlen(p);
		b[o++] = (uint8_t)l;
		memcpy(b + o, p, l);
		o += l;
		p += l + (d ? 1 : 0);
	}
	b[o++] = 0;
	b[o++] = (uint8_t)(type >> 8), b[o++] = (uint8_t)type, b[o++] = 0, b[o++] = 1;
	if (edns) {
		size_t alen = ecs_fam ? ((size_t)ecs_src + 7) / 8 : 0;
		size_t rdlen = ecs_fam ? 8 + alen : 0;
		uint8_t opt[11] = { 0, 0, 41, 0x04, 0xD0, 0, ver, 0, 0, 0, (uint8_t)rdlen };
		memcpy(b + o, opt, 11);
		o += 11;
		if (ecs_fam) {
			uint8_t e[8] = { 0, 8, 0, (uint8_t)(4 + alen), 0, (uint8_t)ecs_fam, (uint8_t)ecs_src, 0 };
			memcpy(b + o, e, 8);
			o += 8;
			memcpy(b + o, ecs_addr, alen);
			o += alen;
		}
	}
	return o;
}

static uint8_t out[65536];

static size_t run(const uint8_t *q, size_t n, const char *client, bool tcp)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	if (strchr(client, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, client, &s6->sin6_addr);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		inet_pton(AF_INET, client, &s4->sin_addr);
	}
	struct counters c;
	memset(&c, 0, sizeof c);
	struct query_env env = { view_current(), &c, 7 };
	return query_process(&env, q, n, (struct sockaddr *)&ss, tcp, out, tcp ? 65535 : 4096);
}

static unsigned rcode(void) { return out[3] & 0xF; }
static unsigned cnt(int i) { return (unsigned)(out[4 + 2 * i] << 8 | out[5 + 2 * i]); }

/* Last 4+ bytes of the reply are the ECS option when present: family, source, scope. */
static void ecs_tail(size_t n, size_t alen, unsigned *src, unsigned *scope)
{
	*src = out[n - alen - 2];
	*scope = out[n - alen - 1];
}

static void test_dynamic_by_source(void **st)
{
	(void)st;
	uint8_t q[512];
	size_t n = mkq(q, "www.cdn.test", 1, false, 0, NULL, 0, 0), r;
	r = run(q, n, "10.9.9.9", false);
	assert_true(r > 12);
	assert_int_equal(rcode(), 0);
	assert_int_equal(cnt(1), 1);                          /* one answer */
	assert_memory_equal(out + r - 4, "\xc0\x00\x02\x02", 4); /* 192.0.2.2: us */
	assert_true(out[2] & 0x04);                           /* AA */
	assert_false(out[3] & 0x80);                          /* no RA */
	r = run(q, n, "10.1.2.3", false);
	assert_memory_equal(out + r - 4, "\xc0\x00\x02\x01", 4); /* eu */
	r = run(q, n, "::ffff:10.9.9.9", false);               /* v4-mapped source is IPv4 */
	assert_memory_equal(out + r - 4, "\xc0\x00\x02\x02", 4);
	n = mkq(q, "www.cdn.test", 28, false, 0, NULL, 0, 0);
	r = run(q, n, "2001:db8::1", false);                   /* us has no IPv6 edge: eu's */
	assert_int_equal(cnt(1), 1);
	assert_memory_equal(out + r - 16, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x0e", 16);
}

static void test_ecs_scope(void **st)
{
	(void)st;
	uint8_t q[512];
	unsigned src, scope;
	uint8_t a1[] = { 10, 1, 2 };
	size_t n = mkq(q, "www.cdn.test", 1, true, 1, a1, 24, 0);
	size_t r = run(q, n, "192.0.2.99", false);
	assert_int_equal(rcode(), 0);
	assert_int_equal(cnt(3), 1); /* OPT */
	ecs_tail(r, 3, &src, &scope);
	assert_int_equal(src, 24);
	assert_int_equal(scope, 16); /* 10.1/16 holds nothing more specific */
	assert_memory_equal(out + r - 3, a1, 3);
	uint8_t a2[] = { 10, 200 };
	n = mkq(q, "www.cdn.test", 1, true, 1, a2, 16, 0);
	r = run(q, n, "192.0.2.99", false);
	ecs_tail(r, 2, &src, &scope);
	assert_int_equal(scope, 9); /* 10/8 minus the 10.1/16 branch */
	/* static answers do not depend on the location: scope 0 */
	n = mkq(q, "ns1.cdn.test", 1, true, 1, a1, 24, 0);
	r = run(q, n, "192.0.2.99", false);
	ecs_tail(r, 3, &src, &scope);
	assert_int_equal(scope, 0);
	/* bits beyond the source prefix: FORMERR */
	uint8_t bad[] = { 10, 1, 3 };
	n = mkq(q, "www.cdn.test", 1, true, 1, bad, 23, 0);
	run(q, n, "192.0.2.99", false);
	assert_int_equal(rcode(), 1);
	/* source longer than the family allows: FORMERR */
	uint8_t wide[16] = { 10, 1, 2, 3, 4 };
	n = mkq(q, "www.cdn.test", 1, true, 1, wide, 33, 0);
	run(q, n, "192.0.2.99", false);
	assert_int_equal(rcode(), 1);
}

static void test_negative_and_refused(void **st)
{
	(void)st;
	uint8_t q[512];
	size_t n = mkq(q, "nope.cdn.test", 1, false, 0, NULL, 0, 0);
	run(q, n, "10.9.9.9", false);
	assert_int_equal(rcode(), 3);
	assert_int_equal(cnt(1), 0);
	assert_int_equal(cnt(2), 1); /* SOA */
	n = mkq(q, "ns1.cdn.test", 15, false, 0, NULL, 0, 0);
	run(q, n, "10.9.9.9", false);
	assert_int_equal(rcode(), 0);
	assert_int_equal(cnt(1), 0);
	assert_int_equal(cnt(2), 1);
	n = mkq(q, "www.example.org", 1, false, 0, NULL, 0, 0);
	run(q, n, "10.9.9.9", false);
	assert_int_equal(rcode(), 5);
	assert_false(out[2] & 0x04);
	n = mkq(q, "c.cdn.test", 1, false, 0, NULL, 0, 0);
	run(q, n, "10.9.9.9", false);
	assert_int_equal(cnt(1), 2); /* CNAME + A */
}

static void test_edns_tc_tcp(void **st)
{
	(void)st;
	uint8_t q[512];
	size_t n = mkq(q, "big.cdn.test", 16, false, 0, NULL, 0, 0), r;
	r = run(q, n, "10.9.9.9", false);
	assert_true(out[2] & 0x02); /* TC */
	assert_int_equal(cnt(1), 0);
	assert_true(r <= 512);
	r = run(q, n, "10.9.9.9", true);
	assert_false(out[2] & 0x02);
	assert_int_equal(cnt(1), 3);
	assert_true(r > 512);
	n = mkq(q, "big.cdn.test", 16, true, 0, NULL, 0, 0); /* EDNS 1232 */
	r = run(q, n, "10.9.9.9", false);
	assert_false(out[2] & 0x02);
	assert_int_equal(cnt(1), 3);
	n = mkq(q, "www.cdn.test", 1, true, 0, NULL, 0, 1);  /* version 1 */
	r = run(q, n, "10.9.9.9", false);
	assert_int_equal(rcode(), 0);
	assert_int_equal(out[r - 6], 1); /* extended rcode 1 << 4 | 0 = BADVERS */
}

static void test_drop_and_garbage(void **st)
{
	(void)st;
	uint8_t q[512];
	size_t n = mkq(q, "www.cdn.test", 1, false, 0, NULL, 0, 0);
	q[2] |= 0x80;
	assert_int_equal(run(q, n, "10.9.9.9", false), 0); /* QR set: dropped */
	assert_int_equal(run(q, 5, "10.9.9.9", false), 0);  /* short: dropped */
	/* every prefix of a valid query yields a reply or a drop, never a crash */
	n = mkq(q, "www.cdn.test", 1, true, 1, (const uint8_t[]){ 10, 1, 2 }, 24, 0);
	for (size_t k = 0; k <= n; k++) {
		size_t r = run(q, k, "10.9.9.9", false);
		if (k < 12)
			assert_int_equal(r, 0);
		else
			assert_true(r >= 12 && (k == n || rcode() == 1));
	}
}

int main(void)
{
	log_init("test_query", LOG_LVL_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dynamic_by_source),
		cmocka_unit_test(test_ecs_scope),
		cmocka_unit_test(test_negative_and_refused),
		cmocka_unit_test(test_edns_tc_tcp),
		cmocka_unit_test(test_drop_and_garbage),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
