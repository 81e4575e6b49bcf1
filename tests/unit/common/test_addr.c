/* test_addr.c -- address and CIDR parsing, HTTP dates */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/addr.h"
#include "common/httpdate.h"

#include <string.h>

static void test_addr_parse(void **state)
{
	struct addr a;
	char err[128], out[ADDR_STRLEN];
	assert_int_equal(addr_parse("127.0.0.11:8080", &a, err, sizeof err), 0);
	assert_string_equal(addr_format(&a, out, sizeof out), "127.0.0.11:8080");
	assert_int_equal(addr_parse("[2001:db8::1]:53", &a, err, sizeof err), 0);
	assert_string_equal(addr_format(&a, out, sizeof out), "[2001:db8::1]:53");
	assert_int_equal(addr_parse("::1:53", &a, err, sizeof err), -1);     /* ambiguous without [] */
	assert_int_equal(addr_parse("127.0.0.1", &a, err, sizeof err), -1);  /* no port */
	assert_int_equal(addr_parse("127.0.0.1:0", &a, err, sizeof err), -1);
	assert_int_equal(addr_parse("127.0.0.1:65536", &a, err, sizeof err), -1);
	assert_int_equal(addr_parse("127.0.0.1:80x", &a, err, sizeof err), -1);
	assert_int_equal(addr_parse("localhost:80", &a, err, sizeof err), -1);
	assert_int_equal(addr_parse("[::1:80", &a, err, sizeof err), -1);
	assert_int_equal(addr_parse(":80", &a, err, sizeof err), -1);
}

static void test_cidr(void **state)
{
	struct cidr c;
	char err[128], out[64];
	assert_int_equal(cidr_parse("10.1.0.0/16", &c, err, sizeof err), 0);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.prefix_len, 16);
	assert_string_equal(cidr_format(&c, out, sizeof out), "10.1.0.0/16");
	uint8_t in[4] = { 10, 1, 200, 3 }, outside[4] = { 10, 2, 0, 1 };
	assert_true(cidr_contains(&c, AF_INET, in));
	assert_false(cidr_contains(&c, AF_INET, outside));
	assert_int_equal(cidr_parse("10.1.0.1/16", &c, err, sizeof err), -1); /* host bits */
	assert_non_null(strstr(err, "host bits"));
	assert_int_equal(cidr_parse("10.0.0.0/33", &c, err, sizeof err), -1);
	assert_int_equal(cidr_parse("10.0.0.0/", &c, err, sizeof err), -1);
	assert_int_equal(cidr_parse("2001:db8::/32", &c, err, sizeof err), 0);
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(cidr_parse("2001:db8::/129", &c, err, sizeof err), -1);
	assert_int_equal(cidr_parse("192.0.2.7", &c, err, sizeof err), 0);
	assert_int_equal(c.prefix_len, 32);
	assert_int_equal(cidr_parse("0.0.0.0/0", &c, err, sizeof err), 0);
	assert_true(cidr_contains(&c, AF_INET, outside));
	uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
	assert_false(cidr_contains(&c, AF_INET6, v6)); /* families never mix */
	/* /12: the partial byte is compared under its mask */
	assert_int_equal(cidr_parse("172.16.0.0/12", &c, err, sizeof err), 0);
	uint8_t a[4] = { 172, 31, 255, 255 }, b[4] = { 172, 32, 0, 0 };
	assert_true(cidr_contains(&c, AF_INET, a));
	assert_false(cidr_contains(&c, AF_INET, b));
}

static void test_httpdate(void **state)
{
	char buf[HTTPDATE_LEN];
	assert_string_equal(httpdate_format(784111777, buf), "Sun, 06 Nov 1994 08:49:37 GMT");
	assert_int_equal(httpdate_parse("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
	assert_int_equal(httpdate_parse("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
	assert_int_equal(httpdate_parse("Sun Nov  6 08:49:37 1994"), 784111777);
	assert_int_equal(httpdate_parse("0"), -1);
	assert_int_equal(httpdate_parse("Sun, 06 Foo 1994 08:49:37 GMT"), -1);
	assert_int_equal(httpdate_parse("Sun, 06 Nov 1994 25:49:37 GMT"), -1);
	assert_int_equal(httpdate_parse(""), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_parse),
		cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_httpdate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
