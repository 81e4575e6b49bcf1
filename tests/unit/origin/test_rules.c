/* test_rules.c -- path pattern matching and first-match-wins rule selection */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "origin/rules.h"

#include <string.h>

static void test_first_match_wins(void **state)
{
	struct rule_cfg cfg[] = {
		{ "/api/*", "public, max-age=10", "api menu" },
		{ "*.css", "public, max-age=86400", "static css" },
		{ "/css/special.css", "no-store", NULL },   /* shadowed by *.css above */
		{ "*.html", NULL, "html" },                 /* default Cache-Control */
	};
	char err[256];
	struct rules *r = rules_new(cfg, 4, "public, max-age=60", err, sizeof err);
	assert_non_null(r);

	const struct rule *m = rules_match(r, "/api/menu.json");
	assert_string_equal(m->cache_control, "public, max-age=10");
	assert_string_equal(m->surrogate_key, "api menu");

	/* "*.css" has no '/', so it applies to the last segment anywhere */
	m = rules_match(r, "/css/site.css");
	assert_string_equal(m->cache_control, "public, max-age=86400");
	m = rules_match(r, "/css/special.css");
	assert_string_equal(m->cache_control, "public, max-age=86400");
	/* an .css file under /api/ takes the earlier rule */
	m = rules_match(r, "/api/x.css");
	assert_string_equal(m->surrogate_key, "api menu");

	m = rules_match(r, "/blog/post.html");
	assert_string_equal(m->cache_control, "public, max-age=60");
	assert_string_equal(m->surrogate_key, "html");

	m = rules_match(r, "/img/logo.svg");
	assert_string_equal(m->match, "");
	assert_string_equal(m->cache_control, "public, max-age=60");
	assert_null(m->surrogate_key);
	rules_free(r);
}

static void test_bad_rules(void **state)
{
	char err[256];
	struct rule_cfg empty[] = { { "", "x", NULL } };
	assert_null(rules_new(empty, 1, "public", err, sizeof err));
	assert_non_null(strstr(err, "empty"));
	struct rule_cfg crlf[] = { { "*.js", "public\r\nSet-Cookie: x=1", NULL } };
	assert_null(rules_new(crlf, 1, "public", err, sizeof err));
	assert_non_null(strstr(err, "control characters"));
	struct rule_cfg key[] = { { "*.js", NULL, "a\nb" } };
	assert_null(rules_new(key, 1, "public", err, sizeof err));
	assert_null(rules_new(NULL, 0, "x\ny", err, sizeof err));
	struct rules *r = rules_new(NULL, 0, "public, max-age=5", err, sizeof err);
	assert_non_null(r);
	assert_string_equal(rules_match(r, "/anything")->cache_control, "public, max-age=5");
	rules_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_match_wins),
		cmocka_unit_test(test_bad_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
