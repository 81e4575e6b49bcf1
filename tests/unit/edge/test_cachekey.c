/* test_cachekey.c -- request target normalisation into cache keys */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "edge/cache/cachekey.h"

static char out[8192];

static const char *key(const char *target, const char *host, const struct query_rule *r, size_t n)
{
	struct buf k = BUF_INIT;
	if (cachekey_build("http", target, host, r, n, &k, NULL, NULL) < 0) {
		buf_free(&k);
		return NULL;
	}
	snprintf(out, sizeof out, "%s", k.data);
	buf_free(&k);
	return out;
}

static void test_paths(void **state)
{
	assert_string_equal(key("/a/b", "Example.COM", NULL, 0), "http://example.com/a/b");
	assert_string_equal(key("/a/./b/../c", "h", NULL, 0), "http://h/a/c");
	assert_string_equal(key("/../../etc/passwd", "h", NULL, 0), "http://h/etc/passwd");
	assert_string_equal(key("/a/%2e%2E/b", "h", NULL, 0), "http://h/b");   /* encoded dots */
	assert_string_equal(key("/%7euser/%41", "h", NULL, 0), "http://h/~user/A");
	assert_string_equal(key("/a%2fb", "h", NULL, 0), "http://h/a%2Fb");    /* reserved stays encoded */
	assert_string_equal(key("/a/..", "h", NULL, 0), "http://h/");
	assert_string_equal(key("/", "h:80", NULL, 0), "http://h/");
	assert_string_equal(key("/", "h:8080", NULL, 0), "http://h:8080/");
	assert_string_equal(key("/", "h.", NULL, 0), "http://h/");
	assert_null(key("a/b", "h", NULL, 0));
	assert_null(key("/a%zz", "h", NULL, 0));
	assert_null(key("/a%0", "h", NULL, 0));
	assert_null(key("/a%00", "h", NULL, 0));
	assert_null(key("/a b", "h", NULL, 0));
	assert_null(key("/a#frag", "h", NULL, 0));
	assert_null(key("*", "h", NULL, 0));
	assert_null(key("/", "bad host", NULL, 0));
	assert_null(key("/", "", NULL, 0));
	assert_null(key("/", NULL, NULL, 0));
}

static void test_absolute_form(void **state)
{
	/* The authority of an absolute-form target wins over Host. */
	assert_string_equal(key("http://Other.example/x?q=1", "victim", NULL, 0),
	                    "http://other.example/x?q=1");
	assert_string_equal(key("http://h", "x", NULL, 0), "http://h/");
	assert_null(key("http://user@h/x", "x", NULL, 0));
}

static void test_query_rules(void **state)
{
	struct query_rule rules[] = { { "/s/*", "sort" }, { "/i/*", "ignore" }, { "*", "keep" } };
	assert_string_equal(key("/s/p?b=2&a=1&c", "h", rules, 3), "http://h/s/p?a=1&b=2&c");
	assert_string_equal(key("/s/p?b=2&&a=1", "h", rules, 3), "http://h/s/p?a=1&b=2");
	assert_string_equal(key("/i/p?x=1", "h", rules, 3), "http://h/i/p");
	assert_string_equal(key("/k?b=2&a=1", "h", rules, 3), "http://h/k?b=2&a=1");
	assert_string_equal(key("/k?", "h", rules, 3), "http://h/k");
	assert_int_equal(cachekey_query_mode(rules, 3, "/s/x/y"), QUERY_SORT);
	assert_int_equal(cachekey_query_mode(rules, 2, "/z"), QUERY_KEEP);
}

static void test_path_out(void **state)
{
	struct buf k = BUF_INIT, p = BUF_INIT, h = BUF_INIT;
	assert_int_equal(cachekey_build("shop", "/a/../b?z=1&y=2", "H:80", NULL, 0, &k, &p, &h), 0);
	assert_string_equal(p.data, "/b?z=1&y=2");
	assert_string_equal(h.data, "h");
	assert_string_equal(k.data, "shop://h/b?z=1&y=2"); /* the site's scope leads the key */
	buf_free(&k);
	buf_free(&p);
	buf_free(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_absolute_form),
		cmocka_unit_test(test_query_rules),
		cmocka_unit_test(test_path_out),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
