/* test_range.c -- Range parsing and multipart/byteranges layout */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/cache/range.h"

static enum range_result parse(const char *h, uint64_t len, struct byte_range *r, unsigned *n)
{
	return range_parse(h, len, r, n);
}

static void test_single(void **state)
{
	struct byte_range r[RANGE_MAX];
	unsigned n;
	assert_int_equal(parse("bytes=10-19", 100, r, &n), RANGE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(r[0].first, 10);
	assert_int_equal(r[0].last, 19);
	assert_int_equal(parse("BYTES=90-", 100, r, &n), RANGE_OK); /* unit is case-insensitive */
	assert_int_equal(r[0].first, 90);
	assert_int_equal(r[0].last, 99);
	assert_int_equal(parse("bytes=90-1000", 100, r, &n), RANGE_OK); /* clamped */
	assert_int_equal(r[0].last, 99);
	assert_int_equal(parse("bytes=-10", 100, r, &n), RANGE_OK);
	assert_int_equal(r[0].first, 90);
	assert_int_equal(parse("bytes=-1000", 100, r, &n), RANGE_OK); /* suffix longer than len */
	assert_int_equal(r[0].first, 0);
	assert_int_equal(r[0].last, 99);
	assert_int_equal(parse("bytes=99999999999999999999999-", 100, r, &n), RANGE_UNSATISFIABLE);
	assert_int_equal(parse("bytes=100-", 100, r, &n), RANGE_UNSATISFIABLE);
	assert_int_equal(parse("bytes=-0", 100, r, &n), RANGE_UNSATISFIABLE);
	assert_int_equal(parse("bytes=0-", 0, r, &n), RANGE_UNSATISFIABLE);
	assert_int_equal(parse("bytes=-5", 0, r, &n), RANGE_UNSATISFIABLE);
}

static void test_ignored(void **state)
{
	struct byte_range r[RANGE_MAX];
	unsigned n;
	const char *bad[] = { NULL, "", "items=0-1", "bytes", "bytes=", "bytes=,", "bytes=a-b",
		              "bytes=5-2", "bytes=1-2,5-2", "bytes=1-2;x", "bytes=1", "bytes=--1",
		              "bytes=1-2 3", "bytes=0-1,x", "bytes=-", "bytes=1-2-3" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		assert_int_equal(parse(bad[i], 100, r, &n), RANGE_IGNORE);
		assert_int_equal(n, 0);
	}
}

static void test_multi(void **state)
{
	struct byte_range r[RANGE_MAX];
	unsigned n;
	assert_int_equal(parse("bytes=0-9, 20-29 ,, -5", 100, r, &n), RANGE_OK);
	assert_int_equal(n, 3);
	assert_int_equal(r[1].first, 20);
	assert_int_equal(r[2].first, 95);
	/* unordered and overlapping, within the object's size: kept as asked */
	assert_int_equal(parse("bytes=50-59,0-9,5-14", 100, r, &n), RANGE_OK);
	assert_int_equal(n, 3);
	assert_int_equal(r[0].first, 50);
	/* unsatisfiable ones dropped; one left is a single range */
	assert_int_equal(parse("bytes=500-600,10-19,200-", 100, r, &n), RANGE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(r[0].first, 10);
	assert_int_equal(parse("bytes=500-600,200-", 100, r, &n), RANGE_UNSATISFIABLE);
	/* amplification: overlapping ranges adding up past the object */
	assert_int_equal(parse("bytes=0-,0-", 100, r, &n), RANGE_IGNORE);
	assert_int_equal(parse("bytes=0-60,40-99", 100, r, &n), RANGE_IGNORE);
	assert_int_equal(parse("bytes=0-59,40-79", 100, r, &n), RANGE_OK); /* 100 bytes: allowed */
	/* the count bound */
	char h[256] = "bytes=0-0";
	for (int i = 1; i < RANGE_MAX; i++)
		snprintf(h + strlen(h), sizeof h - strlen(h), ",%d-%d", i * 2, i * 2);
	assert_int_equal(parse(h, 100, r, &n), RANGE_OK);
	assert_int_equal(n, RANGE_MAX);
	strcat(h, ",90-90");
	assert_int_equal(parse(h, 100, r, &n), RANGE_IGNORE);
	/* unsatisfiable ranges count towards the bound too */
	strcpy(h, "bytes=0-0");
	for (int i = 0; i < RANGE_MAX; i++)
		strcat(h, ",1000-1001");
	assert_int_equal(parse(h, 100, r, &n), RANGE_IGNORE);
}

static void test_multipart(void **state)
{
	uint8_t body[100];
	for (int i = 0; i < 100; i++)
		body[i] = (uint8_t)('a' + i % 26);
	struct byte_range r[2] = { { 0, 2 }, { 30, 33 } };
	struct multipart m;
	range_multipart_init(&m, "BND", "text/plain", r, 2, 100);
	const char *want = "--BND\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-2/100\r\n\r\n"
	                   "abc"
	                   "\r\n--BND\r\nContent-Type: text/plain\r\nContent-Range: bytes 30-33/100\r\n\r\n"
	                   "efgh"
	                   "\r\n--BND--\r\n";
	assert_int_equal(m.total, strlen(want));
	char out[512];
	assert_int_equal(range_multipart_read(&m, body, 0, out, sizeof out), strlen(want));
	assert_memory_equal(out, want, strlen(want));
	/* read in every chunk size: the same bytes */
	for (size_t step = 1; step < 20; step++) {
		size_t pos = 0, k;
		memset(out, 0, sizeof out);
		while ((k = range_multipart_read(&m, body, pos, out + pos, step)) > 0)
			pos += k;
		assert_int_equal(pos, strlen(want));
		assert_memory_equal(out, want, strlen(want));
	}
	assert_int_equal(range_multipart_read(&m, body, m.total, out, sizeof out), 0);
	/* locate: rebuild the same bytes segment by segment */
	size_t pos = 0;
	const char *text;
	uint64_t boff, left;
	memset(out, 0, sizeof out);
	while ((left = range_multipart_locate(&m, pos, &text, &boff)) > 0) {
		memcpy(out + pos, text ? text : (const char *)body + boff, (size_t)left);
		pos += (size_t)left;
	}
	assert_int_equal(pos, strlen(want));
	assert_memory_equal(out, want, strlen(want));
	assert_int_equal(range_multipart_locate(&m, 5, &text, &boff), strlen("--BND\r\nContent-Type: "
	                 "text/plain\r\nContent-Range: bytes 0-2/100\r\n\r\n") - 5);
	assert_non_null(text);
	size_t hdr0 = m.seg_len[0];
	assert_int_equal(range_multipart_locate(&m, hdr0 + 1, &text, &boff), 2);
	assert_null(text);
	assert_int_equal(boff, 1);
	range_multipart_free(&m);
	/* no Content-Type when the object has none */
	range_multipart_init(&m, "B", NULL, r, 2, 100);
	size_t k = range_multipart_read(&m, body, 0, out, sizeof out);
	out[k] = 0;
	assert_null(strstr(out, "Content-Type"));
	assert_string_equal(out, "--B\r\nContent-Range: bytes 0-2/100\r\n\r\nabc\r\n--B\r\n"
	                         "Content-Range: bytes 30-33/100\r\n\r\nefgh\r\n--B--\r\n");
	range_multipart_free(&m);
}

static void test_boundary(void **state)
{
	char a[33], b[33];
	range_boundary(a, 1);
	range_boundary(b, 1);
	assert_int_equal(strlen(a), 32);
	assert_string_not_equal(a, b);
	for (int i = 0; a[i]; i++)
		assert_non_null(strchr("abcdefghijklmnopqrstuvwxyz0123456789-", a[i]));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single),
		cmocka_unit_test(test_ignored),
		cmocka_unit_test(test_multi),
		cmocka_unit_test(test_multipart),
		cmocka_unit_test(test_boundary),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
