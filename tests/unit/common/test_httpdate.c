/* test_httpdate.c -- HTTP dates: IMF-fixdate (read by position), RFC 850 and
 * asctime (read by sscanf), against timegm() and httpdate_format(). */
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
	/* A leap second and a day past the month's end are normalised, as timegm does. */
	assert_int_equal(httpdate_parse("Sat, 31 Dec 2016 23:59:60 GMT"), utc(2017, 1, 1, 0, 0, 0));
	assert_int_equal(httpdate_parse("Mon, 31 Feb 2025 00:00:00 GMT"), utc(2025, 3, 3, 0, 0, 0));
	/* Trailing bytes after GMT are ignored (as before the fast path). */
	assert_int_equal(httpdate_parse("Sun, 06 Nov 1994 08:49:37 GMT;x"), want);
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

/* Not IMF-fixdate by position, but the lenient sscanf reading takes them
 * (a recipient should be liberal with dates, RFC 9110 5.6.7). */
static void test_lenient(void **state)
{
	time_t want = utc(1994, 11, 6, 8, 49, 37);
	assert_int_equal(httpdate_parse("Sun, 6 Nov 1994 08:49:37 GMT"), want);
	assert_int_equal(httpdate_parse("Sun,06 Nov 1994 08:49:37 GMT"), want);
	assert_int_equal(httpdate_parse("Sun, 06 Nov 1994 08:4:37 GMT"), utc(1994, 11, 6, 8, 4, 37));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_three_forms),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_lenient),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
