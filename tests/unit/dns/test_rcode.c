/* test_rcode.c -- DNS response code names */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dns/counters.h"
#include "dns/rcode.h"

static void test_names(void **st)
{
	assert_string_equal(rcode_name(RCODE_NOERROR), "NOERROR");
	assert_string_equal(rcode_name(RCODE_FORMERR), "FORMERR");
	assert_string_equal(rcode_name(RCODE_SERVFAIL), "SERVFAIL");
	assert_string_equal(rcode_name(RCODE_NXDOMAIN), "NXDOMAIN");
	assert_string_equal(rcode_name(RCODE_NOTIMP), "NOTIMP");
	assert_string_equal(rcode_name(RCODE_REFUSED), "REFUSED");
	assert_string_equal(rcode_name(RCODE_BADVERS), "BADVERS");
	assert_int_equal(RCODE_BADVERS, 16);
}

static void test_unsent_codes(void **st)
{
	/* Codes the server never sends have no name, so the stats skip them. */
	for (unsigned i = 6; i < 16; i++)
		assert_null(rcode_name(i));
	assert_null(rcode_name(17));
	assert_null(rcode_name(4095));
	/* Every named code has a counter slot. */
	assert_true(RCODE_BADVERS < COUNTERS_RCODES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_unsent_codes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
