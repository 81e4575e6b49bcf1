/* test_reqcheck.c -- strict request-head checks */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/reqcheck.h"

#include <string.h>

#define H(n, v) { .name = n, .name_len = sizeof n - 1, .value = v, .value_len = sizeof v - 1 }

static enum reqcheck_reason check(const char *version, const struct reqcheck_hdr *h, size_t n)
{
	struct reqcheck_head r = { .method = "GET", .target = "/a", .target_len = 2, .version = version,
	                           .h = h, .nh = n };
	return reqcheck_head(&r);
}

static void test_good_heads(void **state)
{
	struct reqcheck_hdr h[] = { H("Host", "x"), H("X-Empty", ""), H("Content-Length", "0"),
	                            H("User-Agent", "a\tb c") };
	assert_int_equal(check("HTTP/1.1", h, 4), REQCHECK_OK);
	assert_int_equal(check("HTTP/1.0", NULL, 0), REQCHECK_OK);
	struct reqcheck_hdr te[] = { H("host", "x"), H("transfer-encoding", "Chunked") };
	assert_int_equal(check("HTTP/1.1", te, 2), REQCHECK_OK);
}

static void test_smuggling_shapes(void **state)
{
	struct reqcheck_hdr clte[] = { H("Host", "x"), H("Content-Length", "5"), H("Transfer-Encoding", "chunked") };
	assert_int_equal(check("HTTP/1.1", clte, 3), REQCHECK_CL_TE);
	struct reqcheck_hdr list[] = { H("Host", "x"), H("Content-Length", "5,50") };
	assert_int_equal(check("HTTP/1.1", list, 2), REQCHECK_LENGTH);
	struct reqcheck_hdr sign[] = { H("Host", "x"), H("Content-Length", "+5") };
	assert_int_equal(check("HTTP/1.1", sign, 2), REQCHECK_LENGTH);
	struct reqcheck_hdr two[] = { H("Host", "x"), H("Content-Length", "5"), H("Content-Length", "5") };
	assert_int_equal(check("HTTP/1.1", two, 3), REQCHECK_LENGTH);
	struct reqcheck_hdr xte[] = { H("Host", "x"), H("Transfer-Encoding", "xchunked") };
	assert_int_equal(check("HTTP/1.1", xte, 2), REQCHECK_TE);
	assert_int_equal(reqcheck_status(REQCHECK_TE), 501);
	struct reqcheck_hdr te10[] = { H("Transfer-Encoding", "chunked") };
	assert_int_equal(check("HTTP/1.0", te10, 1), REQCHECK_TE);
	struct reqcheck_hdr ws[] = { H("Host", "x"), H("Transfer-Encoding ", "chunked") };
	assert_int_equal(check("HTTP/1.1", ws, 2), REQCHECK_NAME);
	assert_int_equal(reqcheck_status(REQCHECK_NAME), 400);
	struct reqcheck_hdr fold[] = { H("Host", "x"), H("X-Ab", "a") };
	fold[1].folded = true;
	assert_int_equal(check("HTTP/1.1", fold, 2), REQCHECK_FOLD);
	struct reqcheck_hdr crlf[] = { H("Host", "x"), H("X", "a\r\nY: b") };
	assert_int_equal(check("HTTP/1.1", crlf, 2), REQCHECK_VALUE);
}

static void test_host(void **state)
{
	assert_int_equal(check("HTTP/1.1", NULL, 0), REQCHECK_HOST);
	struct reqcheck_hdr two[] = { H("Host", "x"), H("HOST", "y") };
	assert_int_equal(check("HTTP/1.1", two, 2), REQCHECK_HOST);
	assert_int_equal(check("HTTP/1.0", two, 2), REQCHECK_HOST);
	assert_int_equal(check("HTTP/2.0", NULL, 0), REQCHECK_VERSION);
}

static void test_target(void **state)
{
	assert_int_equal(reqcheck_target("/a/b?c=d", 8), REQCHECK_OK);
	assert_int_equal(reqcheck_target("*", 1), REQCHECK_OK);
	assert_int_equal(reqcheck_target("http://h/x", 10), REQCHECK_OK);
	assert_int_equal(reqcheck_target("/a\0/../x", 8), REQCHECK_TARGET);
	assert_int_equal(reqcheck_target("/a b", 4), REQCHECK_TARGET);
	assert_int_equal(reqcheck_target("/a\x1b[31m", 7), REQCHECK_TARGET);
	assert_int_equal(reqcheck_target("a", 1), REQCHECK_TARGET);
	assert_int_equal(reqcheck_target("", 0), REQCHECK_TARGET);
	struct reqcheck_head r = { .method = "G(T", .target = "/", .target_len = 1, .version = "HTTP/1.0" };
	assert_int_equal(reqcheck_head(&r), REQCHECK_METHOD);
	assert_string_equal(reqcheck_name(REQCHECK_CL_TE), "cl_te");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_heads),
		cmocka_unit_test(test_smuggling_shapes),
		cmocka_unit_test(test_host),
		cmocka_unit_test(test_target),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
