/* test_slice.c -- slice geometry, keys, Content-Range checks and validators */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/cache/cache.h"
#include "edge/cache/cachekey.h"
#include "edge/cache/slice.h"

#include <time.h>
#include <unistd.h>

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

static void test_first_byte(void **state)
{
	uint64_t a = 99;
	assert_true(slice_first_byte("bytes=0-", &a));
	assert_int_equal(a, 0);
	assert_true(slice_first_byte("bytes=5242880-6291455", &a));
	assert_int_equal(a, 5242880);
	assert_true(slice_first_byte("Bytes= 7-7 ", &a));
	assert_int_equal(a, 7);
	const char *no[] = { NULL, "", "bytes=-500", "bytes=0-1,5-6", "bytes=5-2", "items=0-1",
		             "bytes=x-", "bytes=1-2-", "bytes=", "bytes=1" };
	for (size_t i = 0; i < sizeof no / sizeof *no; i++)
		assert_false(slice_first_byte(no[i], &a));
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

/* ---------- slices in the store ---------- */

static const struct entry_meta META = { 206, 0, 1000, 1001, 1000, 0, 3600, -1, -1, 0 };
static const char HDRS[] = "content-range\0bytes 0-3/8\0etag\0\"v1\"\0";

static bool stored(struct cache *c, const char *key)
{
	struct cache_ref *ref;
	struct entry_view v;
	if (cache_lookup(c, key, NULL, NULL, &ref, &v, NULL) != CACHE_HIT)
		return false;
	cache_ref_release(c, ref);
	return true;
}

static int put_slice(struct cache *c, const char *key, uint64_t i, const struct entry_meta *m)
{
	struct buf k = BUF_INIT;
	slice_key(key, 4, i, &k);
	int rc = cache_store(c, k.data, NULL, NULL, NULL, m, HDRS, sizeof HDRS - 1, "", 0, "abcd", 4);
	buf_free(&k);
	return rc;
}

static bool slice_stored(struct cache *c, const char *key, uint64_t i)
{
	struct buf k = BUF_INIT;
	slice_key(key, 4, i, &k);
	bool r = stored(c, k.data);
	buf_free(&k);
	return r;
}

/* Purging an object removes its slices, and a slice fetched before the
 * purge is not stored after it; a neighbour whose key merely starts the
 * same is left alone. */
static void test_purge_takes_slices(void **state)
{
	char dir[] = "/tmp/test_slice.XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct cache_opts o = { .path = dir, .map_size = 16 << 20 };
	char err[256];
	struct cache *c = cache_open(&o, err, sizeof err);
	assert_non_null(c);
	struct entry_meta m = META;
	m.request_time = (int64_t)time(NULL);
	m.purge_seq = cache_purge_seq(c);
	for (uint64_t i = 0; i < 2; i++) {
		assert_int_equal(put_slice(c, "http://h/v", i, &m), 0);
		assert_int_equal(put_slice(c, "http://h/v2", i, &m), 0);
	}
	assert_true(slice_stored(c, "http://h/v", 1));
	assert_int_equal(cache_purge_key(c, "http://h/v"), 2);
	assert_false(slice_stored(c, "http://h/v", 0));
	assert_false(slice_stored(c, "http://h/v", 1));
	assert_true(slice_stored(c, "http://h/v2", 0));
	/* Requests sent before the purge: their slices are dropped, not the
	 * neighbour's. */
	assert_int_equal(put_slice(c, "http://h/v", 3, &m), -1);
	assert_false(slice_stored(c, "http://h/v", 3));
	assert_int_equal(put_slice(c, "http://h/v2", 3, &m), 0);
	/* Sent after it: stored. */
	m.purge_seq = cache_purge_seq(c);
	assert_int_equal(put_slice(c, "http://h/v", 3, &m), 0);
	assert_true(slice_stored(c, "http://h/v", 3));
	cache_close(c);
	char cmd[96];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),           cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_span),           cmocka_unit_test(test_range_header),
		cmocka_unit_test(test_first_byte),     cmocka_unit_test(test_content_range),
		cmocka_unit_test(test_check_response),
		cmocka_unit_test(test_validators),     cmocka_unit_test(test_wanted),
		cmocka_unit_test(test_purge_takes_slices),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
