/* test_glob.c -- the wildcard matcher shared by origin rules, edge query rules and script routes */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/glob.h"

#include <string.h>

static void test_star_and_question(void **state)
{
	assert_true(glob_match_str("*.css", "site.css"));
	assert_false(glob_match_str("*.css", "site.cssx"));
	assert_false(glob_match_str("*.css", "site.js"));
	assert_true(glob_match_str("/api/*", "/api/menu.json"));
	assert_true(glob_match_str("/api/*", "/api/v1/deep/x"));
	assert_true(glob_match_str("/api/*", "/api/"));
	assert_false(glob_match_str("/api/*", "/apis/x"));
	assert_false(glob_match_str("/api/*", "/other/api/x"));
	assert_true(glob_match_str("/a/*.css", "/a/b/c.css"));   /* '*' crosses '/' */
	assert_true(glob_match_str("logo?.png", "logo1.png"));
	assert_false(glob_match_str("logo?.png", "logo.png"));
	assert_true(glob_match_str("*", ""));
	assert_false(glob_match_str("", "x"));
	assert_false(glob_match_str("/a", "/ab"));
	assert_true(glob_match_str("a*b*c", "axxbyyc"));
	assert_false(glob_match_str("a*b*c", "axxbyy"));
	assert_true(glob_match_str("*a*a*a*", "banana a"));
	assert_true(glob_match_str("*x*y*", "axbyc"));
}

static void test_length_and_case(void **state)
{
	assert_true(glob_match("/hello*", "/hello/world?x", 14, false));
	assert_false(glob_match("/hello*", "/hello", 5, false)); /* only slen bytes count */
	assert_true(glob_match("*.cdn.test", "WWW.CDN.TEST", 12, true));
	assert_false(glob_match("*.cdn.test", "WWW.CDN.TEST", 12, false));
	assert_false(glob_match("*.cdn.test", "cdn.test", 8, true));
	assert_false(glob_match("/?", "/xy", 3, false));
}

static void test_hostile_pattern(void **state)
{
	/* Backtracking must stay polynomial: this takes microseconds, not years. */
	char s[4001];
	memset(s, 'a', 4000);
	s[4000] = '\0';
	assert_false(glob_match_str("*a*a*a*a*a*a*a*b", s));
	assert_true(glob_match_str("*a*a*a*a*a*a*a*", s));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_star_and_question),
		cmocka_unit_test(test_length_and_case),
		cmocka_unit_test(test_hostile_pattern),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
