/* test_respond_plan.c -- one decision for serving hits and misses: status, ranges, headers */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "edge/front/respond_plan.h"

#define ETAG "\"v1\""
#define LM "Tue, 01 Dec 2026 10:00:00 GMT"

/* A stored 1000-byte 200 with validators, as a hit sees it. */
static struct plan_resp stored(void)
{
	return (struct plan_resp){ .status = 200, .etag = ETAG, .last_modified = LM,
		                   .length = 1000, .cacheable = true, .whole = true };
}

static void test_plain_200(void **state)
{
	struct plan_req q = { 0 };
	struct plan_resp s = stored();
	struct plan p;
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 200);
	assert_false(p.empty);
	assert_true(p.body);
	assert_true(p.own_ranges);
	assert_int_equal(p.off, 0);
	assert_int_equal(p.len, 1000);
	assert_int_equal(p.nranges, 0);
	assert_string_equal(p.content_range, "");
	/* Unknown length (an origin response without Content-Length). */
	s.length = -1;
	plan_make(&q, &s, &p);
	assert_int_equal(p.len, UINT64_MAX);
}

static void test_304_by_etag(void **state)
{
	struct plan_req q = { .if_none_match = "\"x\", W/\"v1\"" };
	struct plan_resp s = stored();
	struct plan p;
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 304);
	assert_true(p.empty);
	assert_false(p.body);
	assert_false(p.own_ranges);
	/* If-None-Match wins over a matching If-Modified-Since. */
	q.if_none_match = "\"other\"";
	q.if_modified_since = LM;
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 200);
	q.if_none_match = "*";
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 304);
	/* A 304 only replaces a 200. */
	s.status = 404;
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 404);
	assert_false(p.own_ranges);
}

static void test_304_by_date(void **state)
{
	struct plan_req q = { .if_modified_since = "Wed, 02 Dec 2026 10:00:00 GMT" };
	struct plan_resp s = stored();
	struct plan p;
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 304);
	q.if_modified_since = LM; /* equal: not modified */
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 304);
	q.if_modified_since = "Mon, 30 Nov 2026 10:00:00 GMT"; /* older: modified since */
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 200);
	q.if_modified_since = "not a date";
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 200);
	/* Without Last-Modified the Date stands in (RFC 9111 4.3.2). */
	s.last_modified = NULL;
	q.if_modified_since = LM;
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 200); /* no Date either: no 304 */
	s.date = LM;
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 304);
	q.if_modified_since = "Mon, 30 Nov 2026 10:00:00 GMT";
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 200);
	/* A pass (not through the cache) is never answered 304 by the edge. */
	q.if_modified_since = LM;
	s.cacheable = false;
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 200);
	assert_false(p.own_ranges);
}

static void test_single_range(void **state)
{
	struct plan_req q = { .range = "bytes=10-19" };
	struct plan_resp s = stored();
	struct plan p;
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 206);
	assert_int_equal(p.off, 10);
	assert_int_equal(p.len, 10);
	assert_true(p.own_ranges);
	assert_true(p.body);
	assert_string_equal(p.content_range, "bytes 10-19/1000");
	/* Length not known yet: the whole object. */
	s.length = -1;
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 200);
	assert_string_equal(p.content_range, "");
	/* A syntax error is ignored: 200. */
	s = stored();
	q.range = "bytes=abc";
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 200);
}

static void test_if_range(void **state)
{
	struct plan_req q = { .range = "bytes=0-9", .if_range = ETAG };
	struct plan_resp s = stored();
	struct plan p;
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 206);
	q.if_range = "\"v2\""; /* mismatch: the whole object */
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 200);
	assert_int_equal(p.len, 1000);
	q.if_range = "W/\"v1\""; /* weak validators never match */
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 200);
	q.if_range = LM; /* date equal to Last-Modified */
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 206);
	q.if_range = "Wed, 02 Dec 2026 10:00:00 GMT";
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 200);
	s.etag = "W/\"v1\""; /* a weak stored ETag cannot be matched either */
	q.if_range = "\"v1\"";
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 200);
}

static void test_multi_range(void **state)
{
	struct plan_req q = { .range = "bytes=0-9,100-109" };
	struct plan_resp s = stored();
	struct plan p;
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 206);
	assert_int_equal(p.nranges, 2);
	assert_int_equal(p.rg[1].first, 100);
	assert_int_equal(p.rg[1].last, 109);
	assert_string_equal(p.content_range, "");
	assert_false(plan_keep_header(&p, "Content-Type")); /* each part has it */
	assert_true(plan_keep_header(&p, "ETag"));
	/* A body that is not kept whole cannot be read out of order: 200. */
	s.whole = false;
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 200);
	assert_int_equal(p.nranges, 0);
	assert_int_equal(p.len, 1000);
	assert_true(plan_keep_header(&p, "Content-Type"));
}

static void test_unsatisfiable(void **state)
{
	struct plan_req q = { .range = "bytes=5000-" };
	struct plan_resp s = stored();
	struct plan p;
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 416);
	assert_true(p.empty);
	assert_false(p.body);
	assert_false(p.own_ranges);
	assert_string_equal(p.content_range, "bytes */1000");
	assert_false(plan_keep_header(&p, "Date"));
	assert_false(plan_keep_header(&p, "ETag"));
}

static void test_head(void **state)
{
	struct plan_req q = { .head = true };
	struct plan_resp s = stored();
	struct plan p;
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 200);
	assert_false(p.body);
	assert_int_equal(p.len, 1000); /* Content-Length as for GET */
	q.range = "bytes=-100";
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 206);
	assert_false(p.body);
	assert_string_equal(p.content_range, "bytes 900-999/1000");
	/* A pass's HEAD keeps its status, still no body. */
	s.cacheable = false;
	plan_make(&q, &s, &p);
	assert_int_equal(p.status, 200);
	assert_false(p.body);
}

static void test_headers(void **state)
{
	struct plan_req q = { 0 };
	struct plan_resp s = stored();
	struct plan p;
	plan_make(&q, &s, &p);
	static const char *const never[] = { "CDN-Cache-Control", "surrogate-key", "Cache-Tag",
		                             "Surrogate-Control" };
	for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
		assert_true(plan_private_header(never[i]));
		assert_false(plan_keep_header(&p, never[i]));
	}
	assert_false(plan_keep_header(&p, "Accept-Ranges")); /* ours replaces it */
	assert_true(plan_keep_header(&p, "Content-Type"));
	assert_true(plan_keep_header(&p, "X-Custom"));
	s.cacheable = false; /* a pass: the origin's Accept-Ranges stands */
	plan_make(&q, &s, &p);
	assert_true(plan_keep_header(&p, "Accept-Ranges"));
	/* A 304 carries the RFC 9110 15.4.5 list only. */
	s = stored();
	q.if_none_match = ETAG;
	plan_make(&q, &s, &p);
	static const char *const in304[] = { "ETag", "cache-control", "Date", "Expires", "Vary",
		                             "Content-Location", "Last-Modified" };
	for (size_t i = 0; i < sizeof in304 / sizeof in304[0]; i++)
		assert_true(plan_keep_header(&p, in304[i]));
	assert_false(plan_keep_header(&p, "Content-Type"));
	assert_false(plan_keep_header(&p, "X-Custom"));
	assert_false(plan_keep_header(&p, "Surrogate-Key"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_200),    cmocka_unit_test(test_304_by_etag),
		cmocka_unit_test(test_304_by_date),  cmocka_unit_test(test_single_range),
		cmocka_unit_test(test_if_range),     cmocka_unit_test(test_multi_range),
		cmocka_unit_test(test_unsatisfiable), cmocka_unit_test(test_head),
		cmocka_unit_test(test_headers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
