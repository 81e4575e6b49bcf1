/* test_entry.c -- cache entry encoding: round trip and rejection of damage */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "edge/cache/entry.h"

static const char HDRS[] = "Content-Type\0text/plain\0ETag\0\"abc\"\0";
static const char TAGS[] = "product-1\0all\0";

static uint8_t *encode(size_t *len, const char *body, size_t blen)
{
	struct entry_meta m = { 200, ENTRY_F_MUST_REVALIDATE, 1000, 1001, 999, 5, 60, 30, -1, 0 };
	*len = entry_size(sizeof HDRS - 1, sizeof TAGS - 1, blen);
	uint8_t *p = malloc(*len);
	entry_write(p, &m, HDRS, sizeof HDRS - 1, TAGS, sizeof TAGS - 1, body, blen);
	return p;
}

static void test_roundtrip(void **state)
{
	size_t len;
	uint8_t *p = encode(&len, "hello", 5);
	struct entry_view v;
	assert_int_equal(entry_decode(p, len, &v), 0);
	assert_int_equal(v.meta.status, 200);
	assert_int_equal(v.meta.flags, ENTRY_F_MUST_REVALIDATE);
	assert_int_equal(v.meta.request_time, 1000);
	assert_int_equal(v.meta.response_time, 1001);
	assert_int_equal(v.meta.date, 999);
	assert_int_equal(v.meta.age_value, 5);
	assert_int_equal(v.meta.lifetime, 60);
	assert_int_equal(v.meta.swr, 30);
	assert_int_equal(v.meta.sie, -1);
	assert_int_equal(v.body_len, 5);
	assert_memory_equal(v.body, "hello", 5);
	assert_string_equal(entry_get_header(&v, "content-type"), "text/plain");
	assert_string_equal(entry_get_header(&v, "ETAG"), "\"abc\"");
	assert_null(entry_get_header(&v, "Expires"));
	size_t pos = 0, n = 0;
	struct entry_header h;
	while (entry_next_header(&v, &pos, &h))
		n++;
	assert_int_equal(n, 2);
	assert_int_equal(v.tags_len, sizeof TAGS - 1);
	assert_string_equal(v.tags, "product-1");
	assert_string_equal(v.tags + 10, "all");
	free(p);
}

static void test_empty_body(void **state)
{
	size_t len;
	uint8_t *p = encode(&len, NULL, 0);
	struct entry_view v;
	assert_int_equal(entry_decode(p, len, &v), 0);
	assert_int_equal(v.body_len, 0);
	assert_int_equal(entry_verify(p, len), 0);
	assert_string_equal(entry_get_header(&v, "ETag"), "\"abc\"");
	free(p);
}

/* The checksum covers every byte but its own: a stale byte anywhere in a
 * value that still decodes is caught by entry_verify. */
static void test_checksum(void **state)
{
	size_t len;
	uint8_t *p = encode(&len, "hello, world", 12);
	struct entry_view v;
	assert_int_equal(entry_verify(p, len), 0);
	for (size_t i = 0; i < len; i++) {
		p[i] ^= 0x20;
		int decodes = entry_decode(p, len, &v) == 0;
		assert_int_equal(entry_verify(p, len), -1);
		/* Body and header-value bytes still decode: only the crc sees them. */
		if (i == len - 1)
			assert_true(decodes);
		p[i] ^= 0x20;
	}
	assert_int_equal(entry_verify(p, len), 0);
	assert_int_equal(entry_verify(p, 10), -1);
	free(p);
}

static void test_large_body(void **state)
{
	size_t blen = 3 << 20, len;
	char *body = malloc(blen);
	for (size_t i = 0; i < blen; i++)
		body[i] = (char)(i * 31);
	uint8_t *p = encode(&len, body, blen);
	struct entry_view v;
	assert_int_equal(entry_decode(p, len, &v), 0);
	assert_int_equal(v.body_len, blen);
	assert_memory_equal(v.body, body, blen);
	assert_int_equal(entry_verify(p, len), 0);
	p[len / 2] ^= 1;
	assert_int_equal(entry_verify(p, len), -1);
	free(p);
	free(body);
}

static void test_rejects_damage(void **state)
{
	size_t len;
	uint8_t *p = encode(&len, "hello", 5);
	struct entry_view v;
	/* Truncated anywhere (a half-written value) is rejected. */
	for (size_t cut = 0; cut < len; cut++)
		assert_int_equal(entry_decode(p, cut, &v), -1);
	/* Trailing garbage is rejected too: lengths must add up exactly. */
	uint8_t *q = malloc(len + 1);
	memcpy(q, p, len);
	q[len] = 'x';
	assert_int_equal(entry_decode(q, len + 1, &v), -1);
	/* Wrong magic. */
	memcpy(q, p, len);
	q[0] = 'X';
	assert_int_equal(entry_decode(q, len, &v), -1);
	/* Header block not NUL-terminated. */
	memcpy(q, p, len);
	q[ENTRY_HDR_SIZE + sizeof HDRS - 2] = 'x';
	assert_int_equal(entry_decode(q, len, &v), -1);
	/* Huge body length. */
	memcpy(q, p, len);
	memset(q + 64, 0xff, 8);
	assert_int_equal(entry_decode(q, len, &v), -1);
	/* Status out of range. */
	memcpy(q, p, len);
	q[4] = 0;
	q[5] = 0;
	assert_int_equal(entry_decode(q, len, &v), -1);
	free(q);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_empty_body),
		cmocka_unit_test(test_checksum),
		cmocka_unit_test(test_large_body),
		cmocka_unit_test(test_rejects_damage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
