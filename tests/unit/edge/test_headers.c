/* test_headers.c -- hop-by-hop fields and the origin-response filter */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "common/hdrlist.h"
#include "edge/upstream/headers.h"

static void pack(struct buf *b, const char *n, const char *v)
{
	buf_append(b, n, strlen(n) + 1);
	buf_append(b, v, strlen(v) + 1);
}

/* The packed list as "n=v;" pairs, for comparing. */
static void flat(const struct buf *b, char *out, size_t cap)
{
	size_t n = 0;
	struct hdrlist_iter it;
	const char *k, *v;
	out[0] = '\0';
	hdrlist_init(&it, b);
	while (hdrlist_next(&it, &k, &v))
		n += (size_t)snprintf(out + n, cap - n, "%s=%s;", k, v);
}

static void test_hop_by_hop(void **state)
{
	assert_true(headers_hop_by_hop("Connection", NULL));
	assert_true(headers_hop_by_hop("transfer-encoding", NULL));
	assert_true(headers_hop_by_hop("TE", NULL));
	assert_true(headers_hop_by_hop("Proxy-Authorization", NULL));
	assert_false(headers_hop_by_hop("Content-Type", NULL));
	assert_false(headers_hop_by_hop("Tee", NULL));
	/* Named by Connection: hop-by-hop too, whatever the spacing or case. */
	assert_true(headers_hop_by_hop("X-Session", "close, x-session"));
	assert_true(headers_hop_by_hop("Foo", "\tfoo"));
	assert_false(headers_hop_by_hop("X-Sess", "x-session"));
	assert_false(headers_hop_by_hop("X-Session", "close"));
}

static void test_filter(void **state)
{
	struct buf in = BUF_INIT, out = BUF_INIT, tags = BUF_INIT;
	pack(&in, "Content-Type", "text/plain");
	pack(&in, "Connection", "keep-alive, X-Hop");
	pack(&in, "X-Hop", "1");
	pack(&in, "Content-Length", "10");
	pack(&in, "Age", "5");
	pack(&in, "Surrogate-Key", "a  b");
	pack(&in, "Cache-Tag", "c,d, e");
	pack(&in, "ETag", "\"v\"");
	pack(&in, "Keep-Alive", "timeout=5");
	headers_filter(&in, &out, &tags);
	char got[256];
	flat(&out, got, sizeof got);
	assert_string_equal(got, "Content-Type=text/plain;ETag=\"v\";");
	const char want[] = "a\0b\0c\0d\0e";
	assert_int_equal(tags.len, sizeof want);
	assert_memory_equal(tags.data, want, sizeof want);
	/* Without a tags buffer the tag headers are still dropped. */
	buf_free(&out);
	headers_filter(&in, &out, NULL);
	flat(&out, got, sizeof got);
	assert_string_equal(got, "Content-Type=text/plain;ETag=\"v\";");
	buf_free(&in);
	buf_free(&out);
	buf_free(&tags);
}

/* Repeated field lines are one list (RFC 9110 5.3). */
static void test_combine(void **state)
{
	struct buf in = BUF_INIT, out = BUF_INIT, tmp = BUF_INIT;
	pack(&in, "Cache-Control", "max-age=3600");
	pack(&in, "Vary", "");
	pack(&in, "ETag", "\"v\"");
	pack(&in, "cache-control", "s-maxage=1");
	pack(&in, "Vary", "*");
	/* once: borrowed from the list, no copy */
	assert_ptr_equal(headers_field(&in, "ETag", &tmp), in.data + strlen("Cache-Control") + 1 +
	                 strlen("max-age=3600") + 1 + strlen("Vary") + 1 + 1 + strlen("ETag") + 1);
	assert_null(tmp.data);
	assert_string_equal(headers_field(&in, "CACHE-CONTROL", &tmp), "max-age=3600, s-maxage=1");
	assert_string_equal(headers_field(&in, "Vary", &tmp), ", *");
	assert_null(headers_field(&in, "Age", &tmp));
	headers_combine(&in, &out);
	char got[256];
	flat(&out, got, sizeof got);
	assert_string_equal(got, "Cache-Control=max-age=3600, s-maxage=1;Vary=, *;ETag=\"v\";");
	buf_free(&in);
	buf_free(&out);
	buf_free(&tmp);
}

/* headers_fields: several names in one walk, each as headers_field gives it;
 * a name that is a prefix of another or differs only in length never matches. */
static void test_fields(void **state)
{
	struct buf in = BUF_INIT, t0 = BUF_INIT, t1 = BUF_INIT, t2 = BUF_INIT, t3 = BUF_INIT;
	pack(&in, "Cache-Control", "max-age=3600");
	pack(&in, "CDN-Cache-Control", "max-age=5");
	pack(&in, "Ages", "9");
	pack(&in, "cache-control", "s-maxage=1");
	pack(&in, "DATE", "Sun, 06 Dec 2026 16:00:00 GMT");
	static const char *const names[] = { "Cache-Control", "Age", "Date", "CDN-Cache-Control" };
	struct buf *const tmp[] = { &t0, &t1, &t2, &t3 };
	const char *v[4];
	headers_fields(&in, 4, names, v, tmp);
	assert_string_equal(v[0], "max-age=3600, s-maxage=1");
	assert_ptr_equal(v[0], t0.data);
	assert_null(v[1]);
	assert_string_equal(v[2], "Sun, 06 Dec 2026 16:00:00 GMT");
	assert_null(t2.data); /* one line: borrowed, no copy */
	assert_string_equal(v[3], "max-age=5");
	for (int i = 0; i < 4; i++) {
		struct buf one = BUF_INIT;
		const char *w = headers_field(&in, names[i], &one);
		if (w)
			assert_string_equal(w, v[i]);
		else
			assert_null(v[i]);
		buf_free(&one);
	}
	buf_free(&in);
	buf_free(&t0);
	buf_free(&t1);
	buf_free(&t2);
	buf_free(&t3);
}

/* headers_join_each reads lines through a callback (the client connection). */
static void each_packed(void *cls, void (*cb)(void *, const char *, const char *), void *arg)
{
	struct hdrlist_iter it;
	const char *k, *v;
	hdrlist_init(&it, cls);
	while (hdrlist_next(&it, &k, &v))
		cb(arg, k, v);
}

static void test_join_each(void **state)
{
	struct buf in = BUF_INIT, tmp = BUF_INIT;
	pack(&in, "Accept-Language", "en-US");
	pack(&in, "Host", "x");
	pack(&in, "accept-language", "fr;q=0.5");
	assert_string_equal(headers_join_each(each_packed, &in, "Accept-Language", &tmp),
	                    "en-US, fr;q=0.5");
	assert_string_equal(headers_join_each(each_packed, &in, "host", &tmp), "x");
	assert_null(headers_join_each(each_packed, &in, "Accept", &tmp));
	buf_free(&in);
	buf_free(&tmp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hop_by_hop),
		cmocka_unit_test(test_filter),
		cmocka_unit_test(test_combine),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_join_each),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
