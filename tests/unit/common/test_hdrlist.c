/* test_hdrlist.c -- packed "name\0value\0" header lists: walk, lookup, combination */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/hdrlist.h"

#include <string.h>

static void add(struct buf *b, const char *name, const char *value)
{
	buf_append(b, name, strlen(name) + 1);
	buf_append(b, value, strlen(value) + 1);
}

static void test_walk(void **st)
{
	struct buf b = BUF_INIT;
	add(&b, "Content-Type", "text/plain");
	add(&b, "X-Empty", "");
	add(&b, "Vary", "Accept-Encoding");
	struct hdrlist_iter it;
	const char *n, *v;
	hdrlist_init(&it, &b);
	assert_true(hdrlist_next(&it, &n, &v));
	assert_string_equal(n, "Content-Type");
	assert_string_equal(v, "text/plain");
	assert_true(hdrlist_next(&it, &n, &v));
	assert_string_equal(n, "X-Empty");
	assert_string_equal(v, "");
	assert_true(hdrlist_next(&it, &n, &v));
	assert_string_equal(n, "Vary");
	assert_string_equal(v, "Accept-Encoding");
	assert_false(hdrlist_next(&it, &n, &v));
	assert_false(hdrlist_next(&it, &n, &v)); /* stays at the end */
	buf_free(&b);
	/* An empty (never allocated) list has no lines. */
	hdrlist_init(&it, &b);
	assert_false(hdrlist_next(&it, &n, &v));
}

static void test_damaged(void **st)
{
	/* A name whose value lost its NUL: the walk ends without reading past
	 * len (the bytes after len are not part of the list). */
	struct buf b = BUF_INIT;
	add(&b, "A", "1");
	buf_append(&b, "B\0tail", 6);
	b.data[b.len] = 'X'; /* what follows len must never be looked at */
	struct hdrlist_iter it;
	const char *n, *v;
	hdrlist_init(&it, &b);
	assert_true(hdrlist_next(&it, &n, &v));
	assert_string_equal(n, "A");
	assert_false(hdrlist_next(&it, &n, &v));
	b.data[b.len] = '\0';
	assert_null(hdrlist_get(&b, "B"));
	buf_free(&b);
}

static void test_get(void **st)
{
	struct buf b = BUF_INIT;
	add(&b, "Cache-Control", "max-age=60");
	add(&b, "ETag", "\"x\"");
	add(&b, "cache-control", "public");
	assert_string_equal(hdrlist_get(&b, "cache-control"), "max-age=60"); /* first match, any case */
	assert_string_equal(hdrlist_get(&b, "CACHE-CONTROL"), "max-age=60");
	assert_string_equal(hdrlist_get(&b, "etag"), "\"x\"");
	assert_null(hdrlist_get(&b, "Age"));
	assert_null(hdrlist_get(&b, "Cache")); /* a prefix is not the name */
	buf_free(&b);
}

static void test_get_all(void **st)
{
	struct buf b = BUF_INIT, out = BUF_INIT;
	add(&b, "Cache-Control", "max-age=60");
	add(&b, "Vary", "Accept");
	add(&b, "cache-control", "public");
	add(&b, "CACHE-CONTROL", "no-transform");
	add(&b, "X-Empty", "");
	buf_puts(&out, "stale");
	assert_string_equal(hdrlist_get_all(&b, "Cache-Control", &out), "max-age=60, public, no-transform");
	assert_int_equal(out.len, strlen("max-age=60, public, no-transform"));
	assert_string_equal(hdrlist_get_all(&b, "vary", &out), "Accept");
	/* Present but empty: "" (not NULL). */
	const char *e = hdrlist_get_all(&b, "X-Empty", &out);
	assert_non_null(e);
	assert_string_equal(e, "");
	/* Absent: NULL and out emptied. */
	assert_null(hdrlist_get_all(&b, "Age", &out));
	assert_int_equal(out.len, 0);
	buf_free(&out);
	assert_null(hdrlist_get_all(&b, "Age", &out));
	buf_free(&b);
	buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_walk),
		cmocka_unit_test(test_damaged),
		cmocka_unit_test(test_get),
		cmocka_unit_test(test_get_all),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
