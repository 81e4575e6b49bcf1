/* test_vary.c -- Vary "*" and the normalised selecting header values that
 * go into variant keys: equivalent spellings give the same text,
 * different preferences do not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "edge/cache/vary.h"

#include <stdio.h>
#include <string.h>

static const char *norm(const char *name, const char *value)
{
	static char out[512];
	struct buf b = BUF_INIT;
	vary_normalize(name, value, &b);
	snprintf(out, sizeof out, "%s", b.data ? b.data : "");
	buf_free(&b);
	return out;
}

static void same(const char *name, const char *a, const char *b)
{
	char x[512];
	snprintf(x, sizeof x, "%s", norm(name, a));
	if (strcmp(x, norm(name, b)))
		fail_msg("%s: \"%s\" -> \"%s\" but \"%s\" -> \"%s\"", name, a, x, b, norm(name, b));
}

static void differ(const char *name, const char *a, const char *b)
{
	char x[512];
	snprintf(x, sizeof x, "%s", norm(name, a));
	if (!strcmp(x, norm(name, b)))
		fail_msg("%s: \"%s\" and \"%s\" both -> \"%s\"", name, a, b, x);
}

static void test_star(void **state)
{
	assert_true(vary_has_star("*"));
	assert_true(vary_has_star(", *"));  /* "Vary:" then "Vary: *" joined */
	assert_true(vary_has_star("Accept ,\t* "));
	assert_false(vary_has_star("Accept-Encoding"));
	assert_false(vary_has_star("X-Star*")); /* '*' is a tchar inside a name */
	assert_false(vary_has_star(""));
	assert_false(vary_has_star(NULL));
}

static void test_accept_language(void **state)
{
	assert_string_equal(norm("Accept-Language", " en-US , fr;q=0.5 "), "en-us,fr;q=0.5");
	same("Accept-Language", "en-US,fr;q=0.5", "en-us ,  FR ; Q=0.50");
	same("Accept-Language", "fr;q=0.5, en", "en, fr;q=0.5");      /* q gives the order */
	same("Accept-Language", "en,, fr;q=0.5", "en, fr;q=0.5");      /* combined lines */
	same("Accept-Language", "en;q=1.000", "en");
	differ("Accept-Language", "en, fr", "fr, en");   /* equal q: order is a preference */
	differ("Accept-Language", "en, fr;q=0.5", "en, fr;q=0.6");
	assert_string_equal(norm("accept-language", "de;q=0, en;q=0.125, fr;q=0."),
	                    "en;q=0.125,de;q=0,fr;q=0");
}

static void test_accept(void **state)
{
	same("Accept", "text/html, application/json;q=0.9, */*;q=0.8",
	     "application/json; q=0.9,TEXT/HTML,*/*;q=0.80");
	same("Accept", "image/webp, image/avif", "image/avif,image/webp"); /* no meaning in order */
	/* parameter names lower-cased, values kept */
	assert_string_equal(norm("Accept", "text/plain; Charset=UTF-8"), "text/plain;charset=UTF-8");
	same("Accept-Charset", "utf-8, iso-8859-1;q=0.5", "ISO-8859-1;q=0.5 , UTF-8");
	differ("Accept", "text/html", "text/plain");
	/* a comma inside a quoted parameter value does not split */
	assert_string_equal(norm("Accept", "a/b;x=\"1, 2\", c/d"), "a/b;x=\"1, 2\",c/d");
	/* an invalid q is kept as a parameter, not read as a weight */
	assert_string_equal(norm("Accept", "a/b;q=2"), "a/b;q=2");
}

static void test_others(void **state)
{
	assert_string_equal(norm("Accept-Encoding", "br, GZIP;q=1"), "gzip");
	assert_string_equal(norm("Accept-Encoding", "br"), "");
	assert_string_equal(norm("Accept-Encoding", NULL), "");
	assert_string_equal(norm("Accept", NULL), "");
	/* list syntax: whitespace and empty members only */
	same("Cache-Control", "no-cache ,max-age=0", "no-cache,  max-age=0");
	same("If-None-Match", "\"a\", ,\"b\"", "\"a\",\"b\"");
	differ("Cache-Control", "No-Cache", "no-cache"); /* not known to be equivalent here */
	/* any other field: surrounding whitespace only */
	assert_string_equal(norm("X-Device", "  Mobile , a "), "Mobile , a");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_star),
		cmocka_unit_test(test_accept_language),
		cmocka_unit_test(test_accept),
		cmocka_unit_test(test_others),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
