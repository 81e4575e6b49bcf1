/* test_sf.c -- Structured Field dictionaries: RFC 8941's grammar, and a
 * field that fails it reports no member at all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/sf.h"

#include <stdio.h>
#include <string.h>

/* Members rendered as "key:type:value;" for comparison. */
static void collect(void *cls, const char *key, size_t klen, const struct sf_item *v)
{
	char *out = cls;
	size_t n = strlen(out);
	int w = snprintf(out + n, 512 - n, "%.*s:", (int)klen, key);
	n += (size_t)w;
	switch (v->type) {
	case SF_INTEGER: snprintf(out + n, 512 - n, "i%lld;", (long long)v->integer); break;
	case SF_DECIMAL: snprintf(out + n, 512 - n, "d%lld;", (long long)v->integer); break;
	case SF_STRING: snprintf(out + n, 512 - n, "s%.*s;", (int)v->len, v->text); break;
	case SF_TOKEN: snprintf(out + n, 512 - n, "t%.*s;", (int)v->len, v->text); break;
	case SF_BYTES: snprintf(out + n, 512 - n, "b%.*s;", (int)v->len, v->text); break;
	case SF_BOOLEAN: snprintf(out + n, 512 - n, "?%d;", v->boolean); break;
	case SF_INNER_LIST: snprintf(out + n, 512 - n, "();"); break;
	}
}

static const char *parse(const char *field)
{
	static char out[512];
	out[0] = '\0';
	if (sf_parse_dictionary(field, strlen(field), collect, out) < 0)
		return "FAIL";
	return out;
}

static void test_valid(void **state)
{
	assert_string_equal(parse(""), "");
	assert_string_equal(parse("max-age=60"), "max-age:i60;");
	assert_string_equal(parse("  max-age=60 ,\tno-store  "), "max-age:i60;no-store:?1;");
	assert_string_equal(parse("a=1.5, b=-2, c=\"x\\\"y\", d=tok/en:1, e=:aGk=:, f=?0, g=?1"),
	                    "a:d1500;b:i-2;c:sx\\\"y;d:ttok/en:1;e:baGk=;f:?0;g:?1;");
	/* parameters, on items and on bare keys (Boolean true) */
	assert_string_equal(parse("max-age=60;foo;bar=\"x\", public;x=1"), "max-age:i60;public:?1;");
	/* inner lists */
	assert_string_equal(parse("l=( a  \"b\" 1 );p=1, m=()"), "l:();m:();");
	/* keys may start with '*' and carry _-.* and digits */
	assert_string_equal(parse("*k_1.2-x*=1"), "*k_1.2-x*:i1;");
	/* duplicates are reported in order (the last one wins for the caller) */
	assert_string_equal(parse("max-age=1, max-age=2"), "max-age:i1;max-age:i2;");
	assert_string_equal(parse("n=999999999999999"), "n:i999999999999999;");
	assert_string_equal(parse("n=123456789012.123"), "n:d123456789012123;");
}

static void test_invalid(void **state)
{
	static const char *const bad[] = {
		"Max-Age=60",          /* keys are lower case */
		"max-age=60,",         /* trailing comma */
		",max-age=60",
		"max-age=60,,public",
		"max-age=60 public",   /* no comma */
		"max-age=",            /* no value */
		"max-age=\"60",        /* unterminated string */
		"a=\"\\x\"",           /* bad escape */
		"a=\"\t\"",            /* control character in a string */
		"n=1234567890123456",  /* 16 digits */
		"n=1.",                /* decimal without fraction */
		"n=1.2345",            /* 4 fraction digits */
		"n=1234567890123.1",   /* 13 integer digits in a decimal */
		"n=--1",
		"b=?2",
		"b=:a b:",
		"b=:abc",
		"l=(a b",              /* unterminated inner list */
		"l=(a,b)",
		"a=1;",                /* empty parameter */
		"a=1;P=2",
		"a=%x",
		"a=@1",                /* RFC 9651 Date: not RFC 8941 */
		"9a=1",
		"\tmax-age=60",        /* only SP is stripped around the value */
		"max-age=60, must-revalidate, =1",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (strcmp(parse(bad[i]), "FAIL"))
			fail_msg("accepted \"%s\" as %s", bad[i], parse(bad[i]));
	}
	/* An embedded NUL is not a key character. */
	assert_int_equal(sf_parse_dictionary("a\0b=1", 5, NULL, NULL), -1);
}

/* Nothing is reported from a field that fails late. */
static void test_all_or_nothing(void **state)
{
	char out[512] = "";
	const char *f = "max-age=60, public, s-maxage=\"x";
	assert_int_equal(sf_parse_dictionary(f, strlen(f), collect, out), -1);
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_all_or_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
