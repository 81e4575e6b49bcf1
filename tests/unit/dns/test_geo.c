/* test_geo.c -- subnet map: prefix trie (longest match, scope) and map files */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dns/geo.h"
#include "dns/trie.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void ins(struct trie *t, const char *cidr, int v)
{
	char ip[64];
	snprintf(ip, sizeof ip, "%s", cidr);
	char *slash = strchr(ip, '/');
	*slash = '\0';
	uint8_t b[16] = { 0 };
	int fam = strchr(ip, ':') ? AF_INET6 : AF_INET;
	assert_int_equal(inet_pton(fam, ip, b), 1);
	assert_int_equal(trie_insert(t, fam, b, (unsigned)atoi(slash + 1), v, NULL), 0);
}

static struct trie_result look(const struct trie *t, const char *ip)
{
	uint8_t b[16] = { 0 };
	int fam = strchr(ip, ':') ? AF_INET6 : AF_INET;
	assert_int_equal(inet_pton(fam, ip, b), 1);
	struct trie_result r;
	trie_lookup(t, fam, b, &r);
	return r;
}

static void test_longest_match(void **st)
{
	(void)st;
	struct trie *t = trie_new();
	ins(t, "10.0.0.0/8", 1);
	ins(t, "10.1.0.0/16", 2);
	ins(t, "10.1.2.0/24", 3);
	ins(t, "10.1.2.128/25", 4);
	ins(t, "192.168.0.0/16", 5);
	ins(t, "2001:db8::/32", 6);
	ins(t, "2001:db8:1::/48", 7);
	trie_finish(t);
	struct trie_result r = look(t, "10.1.2.200");
	assert_int_equal(r.value, 4);
	assert_int_equal(r.match_len, 25);
	assert_int_equal(r.scope, 25);
	r = look(t, "10.1.2.5");
	assert_int_equal(r.value, 3);
	/* 10.1.2.0/25 holds no longer prefix: same answer for the whole /25 */
	assert_int_equal(r.scope, 25);
	r = look(t, "10.1.3.1");
	assert_int_equal(r.value, 2);
	assert_int_equal(r.match_len, 16);
	r = look(t, "10.200.0.1");
	assert_int_equal(r.value, 1);
	assert_int_equal(r.match_len, 8);
	/* not in the map: no value, and the scope is not /0 (10/8 and 192.168/16 differ) */
	r = look(t, "11.0.0.1");
	assert_int_equal(r.value, TRIE_NONE);
	assert_true(r.scope > 0);
	r = look(t, "2001:db8:1::1");
	assert_int_equal(r.value, 7);
	assert_int_equal(r.match_len, 48);
	r = look(t, "2001:db8:2::1");
	assert_int_equal(r.value, 6);
	/* IPv6 lookups never see IPv4 prefixes and vice versa */
	r = look(t, "::a01:203");
	assert_int_equal(r.value, TRIE_NONE);
	assert_int_equal(trie_count(t), 7);
	trie_free(t);
}

static void test_duplicates_and_redundant(void **st)
{
	(void)st;
	struct trie *t = trie_new();
	uint8_t a[4] = { 10, 0, 0, 0 };
	int old = -5;
	assert_int_equal(trie_insert(t, AF_INET, a, 8, 1, NULL), 0);
	assert_int_equal(trie_insert(t, AF_INET, a, 8, 1, NULL), 1);
	assert_int_equal(trie_insert(t, AF_INET, a, 8, 2, &old), -1);
	assert_int_equal(old, 1);
	/* a more specific prefix with the same region adds nothing: the scope widens to /8 */
	uint8_t b[4] = { 10, 1, 0, 0 };
	assert_int_equal(trie_insert(t, AF_INET, b, 16, 1, NULL), 0);
	trie_finish(t);
	struct trie_result r = look(t, "10.1.2.3");
	assert_int_equal(r.value, 1);
	assert_int_equal(r.scope, 8);
	trie_free(t);
}

static void test_default_route_and_host(void **st)
{
	(void)st;
	struct trie *t = trie_new();
	ins(t, "0.0.0.0/0", 9);
	ins(t, "1.2.3.4/32", 8);
	trie_finish(t);
	struct trie_result r = look(t, "1.2.3.4");
	assert_int_equal(r.value, 8);
	assert_int_equal(r.scope, 32);
	r = look(t, "1.2.3.5");
	assert_int_equal(r.value, 9);
	assert_int_equal(r.scope, 32); /* 1.2.3.4/31 contains the /32 */
	r = look(t, "200.0.0.1");
	assert_int_equal(r.value, 9);
	assert_int_equal(r.scope, 1);
	trie_free(t);
}

static uint32_t mask32(int l)
{
	return l <= 0 ? 0 : l >= 32 ? 0xFFFFFFFFu : ~(0xFFFFFFFFu >> l);
}

/* Random prefixes checked against a linear scan. */
static void test_against_linear(void **st)
{
	(void)st;
	enum { N = 3000 };
	static uint32_t net[N];
	static int len[N], val[N];
	struct trie *t = trie_new();
	srand(42);
	int n = 0;
	for (int i = 0; i < N; i++) {
		int l = 8 + rand() % 25;
		uint32_t a = ((uint32_t)rand() << 1) ^ (uint32_t)rand();
		a &= l == 32 ? 0xFFFFFFFFu : ~(0xFFFFFFFFu >> l);
		uint8_t b[4] = { (uint8_t)(a >> 24), (uint8_t)(a >> 16), (uint8_t)(a >> 8), (uint8_t)a };
		int v = rand() % 5;
		if (trie_insert(t, AF_INET, b, (unsigned)l, v, NULL) != 0)
			continue;
		net[n] = a, len[n] = l, val[n] = v;
		n++;
	}
	trie_finish(t);
	for (int k = 0; k < 20000; k++) {
		uint32_t x = k < 10000 ? net[rand() % n] + (uint32_t)(rand() % 300) : ((uint32_t)rand() << 1) ^ (uint32_t)rand();
		int best = -1, bl = -1;
		for (int i = 0; i < n; i++) {
			uint32_t m = mask32(len[i]);
			if ((x & m) == net[i] && len[i] > bl)
				best = val[i], bl = len[i];
		}
		uint8_t b[4] = { (uint8_t)(x >> 24), (uint8_t)(x >> 16), (uint8_t)(x >> 8), (uint8_t)x };
		struct trie_result r;
		trie_lookup(t, AF_INET, b, &r);
		assert_int_equal(r.value, best < 0 ? TRIE_NONE : best);
		/* every address in the scope block gets the same value */
		uint32_t m = mask32((int)r.scope);
		uint32_t y = (x & m) | ((uint32_t)rand() & ~m);
		uint8_t c[4] = { (uint8_t)(y >> 24), (uint8_t)(y >> 16), (uint8_t)(y >> 8), (uint8_t)y };
		struct trie_result r2;
		trie_lookup(t, AF_INET, c, &r2);
		if (r2.value != r.value)
			fail_msg("x=%08x scope=%u val=%d, y=%08x val=%d", x, r.scope, r.value, y, r2.value);
	}
	trie_free(t);
}

static char *write_tmp(const char *text)
{
	char *path = strdup("/tmp/minicdn-test-map.XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static const char *const names[] = { "eu", "us", "ap" };

static void test_map_file(void **st)
{
	(void)st;
	char *p = write_tmp("# comment\n\n127.0.1.0/24 eu\n127.0.2.0/24   us  # trailing\n"
	                    "127.0.3.0/24\tap\n2001:db8::/32 us\n");
	char err[256];
	struct geo *g = geo_load(p, NULL, names, 3, err, sizeof err);
	assert_non_null(g);
	assert_int_equal(geo_map_prefixes(g), 4);
	struct geo_loc loc;
	uint8_t a[16] = { 127, 0, 2, 1 };
	geo_locate(g, AF_INET, a, &loc);
	assert_int_equal(loc.source, GEO_MAP);
	assert_int_equal(loc.region, 1);
	assert_int_equal(loc.match_len, 24);
	uint8_t b[16] = { 127, 0, 9, 1 };
	geo_locate(g, AF_INET, b, &loc);
	assert_int_equal(loc.source, GEO_NONE);
	uint8_t c[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 1 };
	geo_locate(g, AF_INET6, c, &loc);
	assert_int_equal(loc.region, 1);
	geo_free(g);
	unlink(p);
	free(p);
}

static void expect_error(const char *text, const char *want)
{
	char *p = write_tmp(text);
	char err[256] = "";
	struct geo *g = geo_load(p, NULL, names, 3, err, sizeof err);
	assert_null(g);
	if (!strstr(err, want))
		fail_msg("error '%s' does not contain '%s'", err, want);
	unlink(p);
	free(p);
}

static void test_map_errors(void **st)
{
	(void)st;
	expect_error("127.0.1.0/24 eu\n127.0.2.0/24 mars\n", ":2: unknown region 'mars'");
	expect_error("127.0.1.1/24 eu\n", ":1: '127.0.1.1/24': host bits set");
	expect_error("127.0.1.0/24\n", ":1: expected \"CIDR REGION\"");
	expect_error("127.0.1.0/24 eu extra\n", ":1: expected");
	expect_error("300.0.0.0/8 eu\n", ":1:");
	expect_error("10.0.0.0/8 eu\n10.0.0.0/8 us\n", ":2: 10.0.0.0/8 listed again");
	char err[256];
	assert_null(geo_load("/nonexistent/map", NULL, names, 3, err, sizeof err));
	assert_non_null(strstr(err, "cannot open"));
}

int main(void)
{
	log_init("test_geo", LOG_LVL_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_longest_match),
		cmocka_unit_test(test_duplicates_and_redundant),
		cmocka_unit_test(test_default_route_and_host),
		cmocka_unit_test(test_against_linear),
		cmocka_unit_test(test_map_file),
		cmocka_unit_test(test_map_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
