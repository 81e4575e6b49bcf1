/* test_slice.c -- slice geometry, keys, Content-Range checks and validators */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/cache/cachekey.h"
#include "edge/cache/slice.h"

#define MIB (1024 * 1024ull)

static void test_keys(void **state)
{
	struct buf k = BUF_INIT;
	slice_key("http://h/v.mp4", MIB, 7, &k);
	assert_string_equal(k.data, "http://h/v.mp4\x1f\x1eslice=1048576/7");
	assert_true(slice_is_key(k.data));
	/* The object's own key and a Vary variant are not slices. */
	assert_false(slice_is_key("http://h/v.mp4"));
	assert_false(slice_is_key("http://h/v.mp4\x1fgzip"));
	assert_false(slice_is_key("http://h/v.mp4\x1f"));
	/* Another slice size is another key. */
	struct buf k2 = BUF_INIT;
	slice_key("http://h/v.mp4", 2 * MIB, 7, &k2);
	assert_string_not_equal(k.data, k2.data);
	/* Purging the key deletes "key<SEP>..." (purge.c): slices are under it. */
	assert_memory_equal(k.data, "http://h/v.mp4\x1f", strlen("http://h/v.mp4") + 1);
	buf_free(&k);
	buf_free(&k2);
}

static void test_bounds(void **state)
{
	uint64_t a, b;
	assert_true(slice_bounds(0, MIB, 64 * MIB, &a, &b));
	assert_int_equal(a, 0);
	assert_int_equal(b, MIB - 1);
	assert_true(slice_bounds(63, MIB, 64 * MIB, &a, &b));
	assert_int_equal(a, 63 * MIB);
	assert_int_equal(b, 64 * MIB - 1);
	assert_false(slice_bounds(64, MIB, 64 * MIB, &a, &b)); /* past the end */
	/* The last slice of an object that is not a multiple is short. */
	assert_true(slice_bounds(2, MIB, 2 * MIB + 10, &a, &b));
	assert_int_equal(a, 2 * MIB);
	assert_int_equal(b, 2 * MIB + 9);
	/* Length not known yet: a full slice is assumed. */
	assert_true(slice_bounds(5, MIB, -1, &a, &b));
	assert_int_equal(a, 5 * MIB);
	assert_int_equal(b, 6 * MIB - 1);
	/* No overflow for absurd indexes, no division by a zero size. */
	assert_false(slice_bounds(UINT64_MAX, MIB, -1, &a, &b));
	assert_false(slice_bounds(1, 0, -1, &a, &b));
}

static void test_span(void **state)
{
	uint64_t i0, i1;
	slice_span(0, 0, MIB, &i0, &i1);
	assert_int_equal(i0, 0);
	assert_int_equal(i1, 0);
	slice_span(MIB - 1, MIB, MIB, &i0, &i1); /* two bytes straddling a boundary */
	assert_int_equal(i0, 0);
	assert_int_equal(i1, 1);
	slice_span(MIB, 2 * MIB - 1, MIB, &i0, &i1); /* exactly one slice */
	assert_int_equal(i0, 1);
	assert_int_equal(i1, 1);
	slice_span(3 * MIB + 5, 3 * MIB + 5 + MIB - 1, MIB, &i0, &i1); /* 1 MiB unaligned: two */
	assert_int_equal(i0, 3);
	assert_int_equal(i1, 4);
	slice_span(0, 64 * MIB - 1, MIB, &i0, &i1);
	assert_int_equal(i0, 0);
	assert_int_equal(i1, 63);
}

static void test_range_header(void **state)
{
	char h[SLICE_RANGE_LEN];
	assert_true(slice_range_header(1, MIB, -1, h));
	assert_string_equal(h, "bytes=1048576-2097151");
	assert_true(slice_range_header(2, MIB, 2 * MIB + 10, h));
	assert_string_equal(h, "bytes=2097152-2097161");
	assert_false(slice_range_header(3, MIB, 2 * MIB + 10, h));
}

static void test_content_range(void **state)
{
	uint64_t a, b, t;
	assert_true(slice_parse_content_range("bytes 0-1048575/67108864", &a, &b, &t));
	assert_int_equal(a, 0);
	assert_int_equal(b, MIB - 1);
	assert_int_equal(t, 64 * MIB);
	assert_true(slice_parse_content_range("BYTES 5-5/6 ", &a, &b, &t));
	const char *bad[] = { NULL, "", "bytes */100", "bytes 0-9/*", "bytes 0-9", "bytes 9-0/100",
		              "bytes 0-100/100", "bytes  0-9/100", "bytes 0-9/100x", "items 0-9/100",
		              "bytes 0-9/99999999999999999999", "bytes -9/100", "bytes 0-/100" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_false(slice_parse_content_range(bad[i], &a, &b, &t));
}

static void test_check_response(void **state)
{
	uint64_t t = 0;
	assert_int_equal(slice_check_response(206, "bytes 1048576-2097151/67108864", 1, MIB, -1, &t),
	                 SLICE_MATCH);
	assert_int_equal(t, 64 * MIB);
	assert_int_equal(slice_check_response(206, "bytes 1048576-2097151/67108864", 1, MIB,
	                                      64 * MIB, &t),
	                 SLICE_MATCH);
	/* The last, short slice: the origin clamps, and so do we. */
	assert_int_equal(slice_check_response(206, "bytes 2097152-2097161/2097162", 2, MIB, -1, &t),
	                 SLICE_MATCH);
	/* Another slice's bytes, a partial slice, a shifted one. */
	assert_int_equal(slice_check_response(206, "bytes 0-1048575/67108864", 1, MIB, -1, &t),
	                 SLICE_BAD_RANGE);
	assert_int_equal(slice_check_response(206, "bytes 1048576-1048600/67108864", 1, MIB, -1, &t),
	                 SLICE_BAD_RANGE);
	assert_int_equal(slice_check_response(206, "bytes 1048577-2097152/67108864", 1, MIB, -1, &t),
	                 SLICE_BAD_RANGE);
	assert_int_equal(slice_check_response(206, NULL, 1, MIB, -1, &t), SLICE_BAD_RANGE);
	assert_int_equal(slice_check_response(206, "bytes 1048576-2097151/*", 1, MIB, -1, &t),
	                 SLICE_BAD_RANGE);
	/* The object changed length: the slice is right for the new length. */
	assert_int_equal(slice_check_response(206, "bytes 1048576-2097151/3145728", 1, MIB,
	                                      64 * MIB, &t),
	                 SLICE_NEW_LENGTH);
	assert_int_equal(t, 3 * MIB);
	/* ... or shorter than the slice now. */
	assert_int_equal(slice_check_response(206, "bytes 1048576-1048579/1048580", 1, MIB,
	                                      64 * MIB, &t),
	                 SLICE_NEW_LENGTH);
	assert_int_equal(slice_check_response(206, "bytes 1048576-2097151/1048580", 1, MIB,
	                                      64 * MIB, &t),
	                 SLICE_BAD_RANGE);
	/* An origin that ignores Range, and answers that are not slices. */
	assert_int_equal(slice_check_response(200, NULL, 1, MIB, -1, &t), SLICE_WHOLE);
	assert_int_equal(slice_check_response(416, "bytes */100", 1, MIB, -1, &t), SLICE_UNUSABLE);
	assert_int_equal(slice_check_response(304, NULL, 1, MIB, -1, &t), SLICE_UNUSABLE);
	assert_int_equal(slice_check_response(503, NULL, 1, MIB, -1, &t), SLICE_UNUSABLE);
}

static void test_validators(void **state)
{
	const char *d = "Sun, 06 Dec 2026 12:00:00 GMT";
	const char *lm = "Sun, 06 Dec 2026 11:00:00 GMT";
	const char *lm_recent = "Sun, 06 Dec 2026 11:59:30 GMT";
	struct slice_validators a = { "\"v1\"", NULL, d }, b = { "\"v1\"", lm, d };
	assert_true(slice_strong(&a));
	assert_true(slice_validators_match(&a, &b));
	b.etag = "\"v2\"";
	assert_false(slice_validators_match(&a, &b));
	/* Weak ETags never combine (RFC 9111 3.4 wants the strong comparison). */
	a.etag = b.etag = "W/\"v1\"";
	assert_false(slice_strong(&a));
	assert_false(slice_validators_match(&a, &b));
	/* One side without an ETag: no match, whatever the dates say. */
	a = (struct slice_validators){ "\"v1\"", lm, d };
	b = (struct slice_validators){ NULL, lm, d };
	assert_false(slice_validators_match(&a, &b));
	/* Last-Modified alone: strong when 60 s or more before Date. */
	a = (struct slice_validators){ NULL, lm, d };
	assert_true(slice_strong(&a));
	assert_true(slice_validators_match(&a, &b));
	b.last_modified = "Sun, 06 Dec 2026 11:00:01 GMT";
	assert_false(slice_validators_match(&a, &b));
	a.last_modified = b.last_modified = lm_recent;
	assert_false(slice_strong(&a));
	assert_false(slice_validators_match(&a, &b));
	a = (struct slice_validators){ NULL, lm, NULL };
	assert_false(slice_strong(&a));
	a = (struct slice_validators){ NULL, NULL, d };
	assert_false(slice_strong(&a));
	assert_false(slice_validators_match(&a, &a));
}

static void test_wanted(void **state)
{
	assert_true(slice_wanted(64 * MIB, MIB, 16 * MIB, 0));
	assert_false(slice_wanted(16 * MIB, MIB, 16 * MIB, 0)); /* "above" the threshold */
	assert_true(slice_wanted(16 * MIB + 1, MIB, 16 * MIB, 1024 * MIB));
	assert_false(slice_wanted(2048 * MIB, MIB, 16 * MIB, 1024 * MIB)); /* the separate limit */
	assert_false(slice_wanted(64 * MIB, 0, 16 * MIB, 0));              /* slicing off */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),           cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_span),           cmocka_unit_test(test_range_header),
		cmocka_unit_test(test_content_range),  cmocka_unit_test(test_check_response),
		cmocka_unit_test(test_validators),     cmocka_unit_test(test_wanted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
