/* test_compress.c -- the origin's gzip representation: which files get one,
 * its ETag, and bytes that inflate back to the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "origin/compress.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static void test_eligible(void **state)
{
	assert_true(compress_eligible("text/html; charset=utf-8", 1000));
	assert_true(compress_eligible("application/json", 1000));
	assert_true(compress_eligible("image/svg+xml", 1000));
	assert_true(compress_eligible("text/javascript; charset=utf-8", COMPRESS_MAX_SIZE));
	assert_false(compress_eligible("image/png", 1000));
	assert_false(compress_eligible("application/gzip", 1000));
	assert_false(compress_eligible("text/html", COMPRESS_MIN_SIZE - 1));
	assert_false(compress_eligible("text/html", (uint64_t)COMPRESS_MAX_SIZE + 1));
}

static void test_etag(void **state)
{
	char out[64];
	assert_int_equal(compress_etag("\"6b08-50e\"", out, sizeof out), 0);
	assert_string_equal(out, "\"6b08-50e-gz\"");
	assert_int_equal(compress_etag("noquote", out, sizeof out), -1);
	assert_int_equal(compress_etag("\"abcdef\"", out, 10), -1); /* does not fit */
}

static void test_roundtrip(void **state)
{
	size_t n = 200000;
	char *in = malloc(n);
	for (size_t i = 0; i < n; i++)
		in[i] = (char)("abcdefgh <html> \n"[i % 17] ^ (i % 251 == 0));
	struct buf z = BUF_INIT;
	buf_append(&z, "X", 1); /* appended after what is there */
	assert_int_equal(compress_gzip(in, n, &z), 0);
	assert_true(z.len > 1 && z.len < n / 4);
	assert_int_equal((unsigned char)z.data[1], 0x1f); /* gzip magic */
	assert_int_equal((unsigned char)z.data[2], 0x8b);
	z_stream s;
	memset(&s, 0, sizeof s);
	assert_int_equal(inflateInit2(&s, 15 + 16), Z_OK);
	char *out = malloc(n + 16);
	s.next_in = (Bytef *)z.data + 1;
	s.avail_in = (uInt)(z.len - 1);
	s.next_out = (Bytef *)out;
	s.avail_out = (uInt)(n + 16);
	assert_int_equal(inflate(&s, Z_FINISH), Z_STREAM_END);
	assert_int_equal(s.total_out, n);
	assert_memory_equal(out, in, n);
	inflateEnd(&s);
	free(out);
	free(in);
	buf_free(&z);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_eligible),
		cmocka_unit_test(test_etag),
		cmocka_unit_test(test_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
