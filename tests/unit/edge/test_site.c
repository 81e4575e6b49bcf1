/* test_site.c -- Host to site (exact before wildcard before "*", one label
 * per wildcard, ports ignored, a default or none) and the site list's
 * checks (unique names and hosts, origins, options needing a certificate). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "edge/site.h"

static char *A_HOSTS[] = { "a.test", "www.a.test" };
static char *B_HOSTS[] = { "*.b.test" };
static char *C_HOSTS[] = { "x.b.test" };

static void make(struct edge_site s[3], char origins[3][32])
{
	memset(s, 0, 3 * sizeof *s);
	for (int i = 0; i < 3; i++)
		strcpy(origins[i], "http://o.test:81//");
	s[0] = (struct edge_site){ .name = "a", .hosts = A_HOSTS, .nhosts = 2, .origin = origins[0] };
	s[1] = (struct edge_site){ .name = "b", .hosts = B_HOSTS, .nhosts = 1, .origin = origins[1] };
	s[2] = (struct edge_site){ .name = "c", .hosts = C_HOSTS, .nhosts = 1, .origin = origins[2] };
}

static void test_find(void **state)
{
	struct edge_site s[3];
	char o[3][32];
	make(s, o);
	char err[200];
	assert_int_equal(site_list_check(s, 3, false, err, sizeof err), 0);
	assert_string_equal(s[0].origin, "http://o.test:81"); /* trailing '/' trimmed */
	assert_string_equal(s[1].label, "b");
	assert_int_equal(s[2].idx, 2);
	assert_ptr_equal(site_find(s, 3, "www.a.test", NULL), &s[0]);
	assert_ptr_equal(site_find(s, 3, "a.test:8080", NULL), &s[0]);
	assert_ptr_equal(site_find(s, 3, "y.b.test", NULL), &s[1]);
	assert_ptr_equal(site_find(s, 3, "x.b.test", NULL), &s[2]); /* exact beats the wildcard */
	assert_null(site_find(s, 3, "b.test", NULL));            /* the parent is not covered */
	assert_null(site_find(s, 3, "z.y.b.test", NULL));        /* nor two labels */
	assert_null(site_find(s, 3, "www.a.test.evil", NULL));
	assert_null(site_find(s, 3, "[::1]:80", NULL));
	assert_ptr_equal(site_find(s, 3, "nobody.example", &s[1]), &s[1]); /* the default */
	/* The one-origin form: "*" takes everything, keys scoped "http". */
	char *any[] = { "*" };
	char o1[32] = "http://o";
	struct edge_site one = { .name = "default", .hosts = any, .nhosts = 1, .origin = o1 };
	assert_int_equal(site_list_check(&one, 1, true, err, sizeof err), 0);
	assert_string_equal(one.label, "http");
	assert_ptr_equal(site_find(&one, 1, "whatever:1", NULL), &one);
}

static void expect_error(struct edge_site *s, size_t n, const char *what)
{
	char err[200] = "";
	assert_int_equal(site_list_check(s, n, false, err, sizeof err), -1);
	if (!strstr(err, what))
		fail_msg("error '%s' does not say '%s'", err, what);
}

static void test_check(void **state)
{
	struct edge_site s[3];
	char o[3][32];
	make(s, o);
	s[2].hosts = A_HOSTS + 1;
	expect_error(s, 3, "host 'www.a.test' is in site a and site c");
	make(s, o);
	s[2].name = "a";
	expect_error(s, 3, "two sites named 'a'");
	make(s, o);
	s[1].name = "http";
	expect_error(s, 3, "reserved");
	make(s, o);
	s[1].name = "B";
	expect_error(s, 3, "a-z");
	make(s, o);
	strcpy(o[0], "ftp://x");
	expect_error(s, 3, "origin must be");
	make(s, o);
	s[0].hsts = "max-age=1";
	expect_error(s, 3, "need a cert");
	make(s, o);
	s[0].cert = "a.pem";
	expect_error(s, 3, "cert and key go together");
	make(s, o);
	char *bad[] = { "*.*.b.test" };
	s[1].hosts = bad;
	expect_error(s, 3, "host '*.*.b.test'");
	make(s, o);
	expect_error(s, 0, "no site");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
