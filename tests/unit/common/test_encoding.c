/* test_encoding.c -- Accept-Encoding: does it accept gzip (RFC 9110 12.5.3)? */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/encoding.h"

static void test_accepts(void **state)
{
	static const char *const yes[] = {
		"gzip", "GZIP", "x-gzip", "gzip, deflate, br", "deflate, gzip, br, zstd", "br;q=1.0, gzip;q=0.8",
		"gzip;q=0.001", "*", "br, *", "*;q=0.5", " gzip ", "identity, gzip;level=9",
	};
	static const char *const no[] = {
		"", "identity", "br", "deflate, br", "gzip;q=0", "gzip;q=0.000", "gzip; q=0, *",
		"*;q=0", "gzipx", "xgzip", "br, gzip;q=0, *;q=1", ",,,",
	};
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
		if (!encoding_accepts_gzip(yes[i]))
			fail_msg("\"%s\" should accept gzip", yes[i]);
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
		if (encoding_accepts_gzip(no[i]))
			fail_msg("\"%s\" should not accept gzip", no[i]);
	assert_false(encoding_accepts_gzip(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
