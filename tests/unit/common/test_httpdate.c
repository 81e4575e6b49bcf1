/* test_httpdate.c -- HTTP dates: exactly the three forms of RFC 9110 5.6.7,
 * against timegm() and httpdate_format(); everything else is -1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/httpdate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static time_t utc(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
		         .tm_hour = h, .tm_min = mi, .tm_sec = s };
	return timegm(&tm);
}

static void test_three_forms(void **state)
{
	time_t want = utc(1994, 11, 6, 8, 49, 37);
	assert_int_equal(httpdate_parse("Sun, 06 Nov 1994 08:49:37 GMT"), want);
	assert_int_equal(httpdate_parse("Sunday, 06-Nov-94 08:49:37 GMT"), want);
	assert_int_equal(httpdate_parse("Sun Nov  6 08:49:37 1994"), want);
	assert_int_equal(httpdate_parse("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
	assert_int_equal(httpdate_parse("Tue, 29 Feb 2028 23:59:59 GMT"), utc(2028, 2, 29, 23, 59, 59));
	assert_int_equal(httpdate_parse("Fri, 31 Dec 2099 12:00:00 GMT"), utc(2099, 12, 31, 12, 0, 0));
	/* A leap second is allowed (RFC 9110 5.6.7 "23:59:60"). */
	assert_int_equal(httpdate_parse("Sat, 31 Dec 2016 23:59:60 GMT"), utc(2017, 1, 1, 0, 0, 0));
	/* RFC 9111 4.2: a cache matches dates case-insensitively. */
	assert_int_equal(httpdate_parse("sun, 06 nov 1994 08:49:37 gmt"), want);
	assert_int_equal(httpdate_parse("SUNDAY, 06-NOV-94 08:49:37 GMT"), want);
	assert_int_equal(httpdate_parse("SUN NOV  6 08:49:37 1994"), want);
	/* Surrounding whitespace is not part of the field value. */
	assert_int_equal(httpdate_parse("  Sun, 06 Nov 1994 08:49:37 GMT\t"), want);
	/* asctime with a two-digit day */
	assert_int_equal(httpdate_parse("Sun Nov 06 08:49:37 1994"), want);
	assert_int_equal(httpdate_parse("Thu Feb 29 00:00:00 2024"), utc(2024, 2, 29, 0, 0, 0));
}

static void test_roundtrip(void **state)
{
	char buf[HTTPDATE_LEN];
	srand(42);
	for (int i = 0; i < 20000; i++) {
		time_t t = (time_t)((unsigned)rand() % 4102444800u); /* 1970 .. 2100 */
		assert_int_equal(httpdate_parse(httpdate_format(t, buf)), t);
	}
}

static void test_invalid(void **state)
{
	static const char *const bad[] = {
		"", "garbage", "Sun, 06 Nov 1994 08:49:37", "Sun, 06 Nov 1994 08:49:37 UTC",
		"Sun, 06 Xyz 1994 08:49:37 GMT", "Sun, 00 Nov 1994 08:49:37 GMT",
		"Sun, 32 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:49:37 GMT",
		"Sun, 06 Nov 1994 08:60:37 GMT", "Sun, 06 Nov 1994 08:49:61 GMT",
		"Sun, 06 Nov 1969 08:49:37 GMT", "Sun, 06 Nov 19x4 08:49:37 GMT",
		"Sun, -6 Nov 1994 08:49:37 GMT",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (httpdate_parse(bad[i]) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
	}
}

/* Shapes the old sscanf fallback accepted: each gave a date (an Expires
 * fresh for decades), where RFC 9110 5.6.7 has none. */
static void test_strict(void **state)
{
	static const char *const bad[] = {
		"Sun, 6 Nov 1994 08:49:37 GMT",      /* one-digit day */
		"Sun,06 Nov 1994 08:49:37 GMT",      /* no space after the comma */
		"Sun, 06 Nov 1994 08:4:37 GMT",      /* one-digit minute */
		"Sun, 06 Nov 1994 8:49:37 GMT",      /* one-digit hour */
		"Sun, 06  Nov 1994 08:49:37 GMT",    /* doubled space */
		"Sun,  06 Nov 2094 08:49:37 GMT",
		"Sun, 06 Nov 1994  08:49:37 GMT",
		"Sun, 06 Nov 1994 08:49:37 GMT;x",   /* trailing bytes */
		"Abc, 06 Nov 1994 08:49:37 GMT",     /* not a day name */
		"Mon, 31 Feb 2025 00:00:00 GMT",     /* past the month's end */
		"Thu, 29 Feb 2023 00:00:00 GMT",     /* not a leap year */
		"Sun, 06 Nov 94 08:49:37 GMT",       /* two-digit year in IMF-fixdate */
		"Sun, 06 Nov 1994 08:49:37 +0000",
		"Sunday, 6-Nov-94 08:49:37 GMT",     /* rfc850 with one-digit day */
		"Sunday, 06-Nov-1994 08:49:37 GMT",  /* rfc850 with a four-digit year */
		"Sun, 06-Nov-94 08:49:37 GMT",       /* rfc850 with a short day name */
		"Funday, 06-Nov-94 08:49:37 GMT",
		"Sunday,  06-Nov-94 08:49:37 GMT",
		"Sun Nov 6 08:49:37 1994",           /* asctime with one space before a one-digit day */
		"Sun Nov  6 08:49:37  1994",
		"Sun Nov  6 8:49:37 1994",
		"Sun Nov 6  08:49:37 1994",
		"1994-11-06T08:49:37Z",
		"Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT", /* two lines combined */
		"7200",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (httpdate_parse(bad[i]) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
	}
	assert_int_equal(httpdate_parse(NULL), -1);
}

/* RFC 9110 5.6.7: a two-digit year more than 50 years ahead is in the past century. */
static void test_rfc850_year(void **state)
{
	time_t now = utc(2026, 12, 6, 0, 0, 0);
	assert_int_equal(httpdate_parse_at("Sunday, 06-Nov-94 08:49:37 GMT", now),
	                 utc(1994, 11, 6, 8, 49, 37));
	assert_int_equal(httpdate_parse_at("Wednesday, 06-Nov-76 08:49:37 GMT", now),
	                 utc(2076, 11, 6, 8, 49, 37));
	assert_int_equal(httpdate_parse_at("Sunday, 06-Nov-77 08:49:37 GMT", now),
	                 utc(1977, 11, 6, 8, 49, 37));
	assert_int_equal(httpdate_parse_at("Thursday, 01-Jan-70 00:00:00 GMT", utc(2050, 1, 1, 0, 0, 0)),
	                 utc(2070, 1, 1, 0, 0, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_three_forms),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_strict),
		cmocka_unit_test(test_rfc850_year),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
