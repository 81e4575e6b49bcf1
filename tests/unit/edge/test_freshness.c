/* test_freshness.c -- RFC 9111 / 9213 arithmetic: storability, lifetime, age */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "edge/cache/freshness.h"

#define NOW 1700000000
#define D_NOW "Tue, 14 Nov 2023 22:13:20 GMT" /* == NOW */

static struct fresh_in base(void)
{
	struct fresh_in in;
	memset(&in, 0, sizeof in);
	in.status = 200;
	in.method = "GET";
	in.date = D_NOW;
	in.request_time = NOW;
	in.response_time = NOW;
	in.heuristic_fraction = 0.1;
	in.heuristic_max = 86400;
	return in;
}

static void test_parse_cc(void **state)
{
	struct cc c;
	freshness_parse_cc("public, max-age=60, s-maxage=\"120\", stale-while-revalidate=30, "
	                   "stale-if-error=600, must-revalidate, x-unknown=1", &c);
	assert_true(c.public_);
	assert_int_equal(c.max_age, 60);
	assert_int_equal(c.s_maxage, 120);
	assert_int_equal(c.swr, 30);
	assert_int_equal(c.sie, 600);
	assert_true(c.must_revalidate);
	assert_false(c.no_store);
	freshness_parse_cc("MAX-AGE=abc, No-Store", &c);
	assert_int_equal(c.max_age, 0); /* invalid max-age: treat as stale */
	assert_true(c.no_store);
	freshness_parse_cc("max-age=99999999999999", &c);
	assert_int_equal(c.max_age, 2147483648LL); /* saturates */
	freshness_parse_cc(NULL, &c);
	assert_false(c.present);
	assert_int_equal(c.max_age, -1);
}

static void test_precedence(void **state)
{
	struct fresh_out o;
	struct fresh_in in = base();
	in.cache_control = "max-age=10, s-maxage=20";
	in.expires = "Tue, 14 Nov 2023 23:13:20 GMT";
	freshness_evaluate(&in, &o);
	assert_true(o.storable);
	assert_int_equal(o.lifetime, 20);
	assert_int_equal(o.source, FRESH_S_MAXAGE);
	assert_true(o.must_revalidate); /* s-maxage implies proxy-revalidate */

	in.cache_control = "max-age=10";
	freshness_evaluate(&in, &o);
	assert_int_equal(o.lifetime, 10);
	assert_int_equal(o.source, FRESH_MAX_AGE);

	in.cache_control = NULL;
	freshness_evaluate(&in, &o);
	assert_int_equal(o.lifetime, 3600);
	assert_int_equal(o.source, FRESH_EXPIRES);

	/* CDN-Cache-Control wins and Cache-Control/Expires are ignored. */
	in.cache_control = "no-store";
	in.cdn_cache_control = "max-age=300";
	freshness_evaluate(&in, &o);
	assert_true(o.storable);
	assert_int_equal(o.lifetime, 300);
	assert_int_equal(o.source, FRESH_CDN_CC);
	in.cache_control = "max-age=300";
	in.cdn_cache_control = "no-store";
	freshness_evaluate(&in, &o);
	assert_false(o.storable);
	/* An empty CDN-Cache-Control is not valid: Cache-Control applies. */
	in.cdn_cache_control = "";
	freshness_evaluate(&in, &o);
	assert_true(o.storable);
	assert_int_equal(o.lifetime, 300);
}

static void test_expires_edge_cases(void **state)
{
	struct fresh_out o;
	struct fresh_in in = base();
	in.expires = "0";
	freshness_evaluate(&in, &o);
	assert_true(o.storable);
	assert_int_equal(o.lifetime, 0);
	in.expires = "Tue, 14 Nov 2023 21:13:20 GMT"; /* before Date */
	freshness_evaluate(&in, &o);
	assert_int_equal(o.lifetime, 0);
}

static void test_heuristic(void **state)
{
	struct fresh_out o;
	struct fresh_in in = base();
	in.last_modified = "Tue, 14 Nov 2023 12:13:20 GMT"; /* 10 h before Date */
	freshness_evaluate(&in, &o);
	assert_true(o.storable);
	assert_int_equal(o.source, FRESH_HEURISTIC);
	assert_int_equal(o.lifetime, 3600); /* 10% of 10 h */
	in.heuristic_max = 600;
	freshness_evaluate(&in, &o);
	assert_int_equal(o.lifetime, 600); /* capped */
	in.status = 302; /* not heuristically cacheable */
	freshness_evaluate(&in, &o);
	assert_false(o.storable);
	in.status = 200;
	in.last_modified = NULL;
	freshness_evaluate(&in, &o);
	assert_false(o.storable);
}

static void test_not_storable(void **state)
{
	struct fresh_out o;
	struct fresh_in in = base();
	in.cache_control = "max-age=60, private";
	freshness_evaluate(&in, &o);
	assert_false(o.storable);
	in.cache_control = "max-age=60";
	in.vary = "Accept, *";
	freshness_evaluate(&in, &o);
	assert_false(o.storable);
	in.vary = "Accept";
	freshness_evaluate(&in, &o);
	assert_true(o.storable);
	in.method = "POST";
	freshness_evaluate(&in, &o);
	assert_false(o.storable);
	in.method = "GET";
	in.status = 206;
	freshness_evaluate(&in, &o);
	assert_false(o.storable);
	in.status = 200;
	in.req_cache_control = "no-store";
	freshness_evaluate(&in, &o);
	assert_false(o.storable);
	in.req_cache_control = NULL;
	/* Authorization: only with public, s-maxage or must-revalidate. */
	in.req_authorization = true;
	freshness_evaluate(&in, &o);
	assert_false(o.storable);
	in.cache_control = "max-age=60, public";
	freshness_evaluate(&in, &o);
	assert_true(o.storable);
	in.cache_control = "s-maxage=60";
	freshness_evaluate(&in, &o);
	assert_true(o.storable);
	in.cache_control = "max-age=60, must-revalidate";
	freshness_evaluate(&in, &o);
	assert_true(o.storable);
}

static void test_no_cache_and_windows(void **state)
{
	struct fresh_out o;
	struct fresh_in in = base();
	in.cache_control = "no-cache";
	freshness_evaluate(&in, &o);
	assert_true(o.storable);
	assert_true(o.no_cache);
	in.cache_control = "max-age=5, stale-while-revalidate=30, stale-if-error=300";
	freshness_evaluate(&in, &o);
	assert_int_equal(o.swr, 30);
	assert_int_equal(o.sie, 300);
	assert_false(o.must_revalidate);
}

static void test_age(void **state)
{
	/* RFC 9111 4.2.3: corrected_initial_age = max(apparent_age, age_value + delay). */
	assert_int_equal(freshness_age(NOW, 0, NOW, NOW, NOW), 0);
	assert_int_equal(freshness_age(NOW, 0, NOW, NOW, NOW + 30), 30);
	assert_int_equal(freshness_age(NOW, 100, NOW, NOW + 2, NOW + 2), 102); /* age + delay */
	assert_int_equal(freshness_age(NOW - 50, 10, NOW, NOW, NOW), 50);     /* apparent age wins */
	assert_int_equal(freshness_age(NOW + 50, 0, NOW, NOW, NOW + 5), 5);   /* clock skew: no negative */
	struct fresh_out o;
	struct fresh_in in = base();
	in.cache_control = "max-age=60";
	in.age = "25";
	in.date = "garbage";
	freshness_evaluate(&in, &o);
	assert_int_equal(o.age_value, 25);
	assert_int_equal(o.date, NOW); /* invalid Date: response time */
}

/* ---------- request directives (RFC 9111 5.2.1) ---------- */

static enum fresh_use use_with(const char *cc, const char *pragma, bool honor, int64_t age,
                               int64_t lifetime, int64_t swr, bool no_cache, bool mustrv)
{
	struct req_cc rq;
	freshness_parse_request(cc, pragma, honor, &rq);
	struct stored_state st = { age, lifetime, swr, no_cache, mustrv };
	return freshness_use(&rq, &st);
}

static void test_request_parse(void **state)
{
	struct req_cc rq;
	freshness_parse_request("max-age=5, min-fresh=7, max-stale=9, only-if-cached", NULL, true, &rq);
	assert_int_equal(rq.max_age, 5);
	assert_int_equal(rq.min_fresh, 7);
	assert_int_equal(rq.max_stale, 9);
	assert_true(rq.only_if_cached);
	assert_false(rq.no_cache);
	freshness_parse_request("max-stale", NULL, true, &rq);
	assert_int_equal(rq.max_stale, 2147483648LL); /* any staleness */
	freshness_parse_request("max-stale=abc, min-fresh=x", NULL, true, &rq);
	assert_int_equal(rq.max_stale, -1); /* malformed: ignored */
	assert_int_equal(rq.min_fresh, -1);
	/* Pragma only without Cache-Control (RFC 9111 5.4). */
	freshness_parse_request(NULL, "no-cache", true, &rq);
	assert_true(rq.no_cache);
	freshness_parse_request("max-age=60", "no-cache", true, &rq);
	assert_false(rq.no_cache);
	freshness_parse_request(NULL, "x-other", true, &rq);
	assert_false(rq.no_cache);
	freshness_parse_request("No-Cache", NULL, true, &rq);
	assert_true(rq.no_cache);
	/* honor_client_no_cache = false: reload and forced reload ignored ... */
	freshness_parse_request("no-cache, max-age=0", NULL, false, &rq);
	assert_false(rq.no_cache);
	assert_int_equal(rq.max_age, -1);
	freshness_parse_request(NULL, "no-cache", false, &rq);
	assert_false(rq.no_cache);
	/* ... but not the other directives. */
	freshness_parse_request("max-age=10, only-if-cached, no-store", NULL, false, &rq);
	assert_int_equal(rq.max_age, 10);
	assert_true(rq.only_if_cached);
	assert_true(rq.no_store);
}

static void test_request_use(void **state)
{
	/* no directives: plain freshness, swr window */
	struct stored_state st = { 10, 60, -1, false, false };
	assert_int_equal(freshness_use(NULL, &st), USE_FRESH);
	st.age = 60;
	assert_int_equal(freshness_use(NULL, &st), VALIDATE_STALE); /* age == lifetime: stale */
	st.swr = 30;
	assert_int_equal(freshness_use(NULL, &st), USE_SWR);
	st.age = 90;
	assert_int_equal(freshness_use(NULL, &st), VALIDATE_STALE); /* swr window over */
	st = (struct stored_state){ 10, 60, 30, false, true };
	st.age = 70;
	assert_int_equal(freshness_use(NULL, &st), VALIDATE_STALE); /* must-revalidate: no swr */

	/* no-cache (request) on a fresh entry, on a stale one, and Pragma */
	assert_int_equal(use_with("no-cache", NULL, true, 10, 60, -1, false, false), VALIDATE_REQUEST);
	assert_int_equal(use_with("no-cache", NULL, true, 70, 60, -1, false, false), VALIDATE_STALE);
	assert_int_equal(use_with(NULL, "no-cache", true, 10, 60, -1, false, false), VALIDATE_REQUEST);
	assert_int_equal(use_with("no-cache", NULL, false, 10, 60, -1, false, false), USE_FRESH);
	assert_int_equal(use_with(NULL, "no-cache", false, 10, 60, -1, false, false), USE_FRESH);
	/* the response's no-cache always validates, whatever the request allows */
	assert_int_equal(use_with("max-stale", NULL, true, 10, 60, -1, true, false), VALIDATE_STALE);

	/* max-age: age <= N is acceptable */
	assert_int_equal(use_with("max-age=10", NULL, true, 10, 60, -1, false, false), USE_FRESH);
	assert_int_equal(use_with("max-age=9", NULL, true, 10, 60, -1, false, false), VALIDATE_REQUEST);
	assert_int_equal(use_with("max-age=0", NULL, true, 1, 60, -1, false, false), VALIDATE_REQUEST);
	assert_int_equal(use_with("max-age=0", NULL, false, 1, 60, -1, false, false), USE_FRESH);
	assert_int_equal(use_with("max-age=1", NULL, false, 2, 60, -1, false, false), VALIDATE_REQUEST);
	/* max-age also bounds what max-stale would accept */
	assert_int_equal(use_with("max-age=65, max-stale", NULL, true, 70, 60, -1, false, false),
	                 VALIDATE_STALE);
	assert_int_equal(use_with("max-age=75, max-stale", NULL, true, 70, 60, -1, false, false),
	                 USE_STALE);

	/* min-fresh: needs lifetime - age >= N */
	assert_int_equal(use_with("min-fresh=50", NULL, true, 10, 60, -1, false, false), USE_FRESH);
	assert_int_equal(use_with("min-fresh=51", NULL, true, 10, 60, -1, false, false),
	                 VALIDATE_REQUEST);
	assert_int_equal(use_with("min-fresh=0", NULL, true, 70, 60, 100, false, false), VALIDATE_STALE);

	/* max-stale: within N (or any), never with must-revalidate / s-maxage */
	assert_int_equal(use_with("max-stale=20", NULL, true, 80, 60, -1, false, false), USE_STALE);
	assert_int_equal(use_with("max-stale=19", NULL, true, 80, 60, -1, false, false),
	                 VALIDATE_STALE);
	assert_int_equal(use_with("max-stale", NULL, true, 100000, 60, -1, false, false), USE_STALE);
	assert_int_equal(use_with("max-stale", NULL, true, 80, 60, -1, false, true), VALIDATE_STALE);
	assert_int_equal(use_with("max-stale=5", NULL, true, 80, 60, 100, false, false), USE_SWR);
	/* a fresh entry stays plainly fresh under max-stale */
	assert_int_equal(use_with("max-stale=5", NULL, true, 10, 60, -1, false, false), USE_FRESH);

	/* s-maxage implies proxy-revalidate: freshness_evaluate reports it so
	 * the stored flag blocks max-stale */
	struct fresh_out o;
	struct fresh_in in = base();
	in.cache_control = "s-maxage=60";
	freshness_evaluate(&in, &o);
	assert_true(o.must_revalidate);
	in.cache_control = "max-age=60, proxy-revalidate";
	freshness_evaluate(&in, &o);
	assert_true(o.must_revalidate);
	in.cache_control = "max-age=60";
	freshness_evaluate(&in, &o);
	assert_false(o.must_revalidate);
}

/* ---------- exact RFC shapes ---------- */

static void test_age_strict(void **state)
{
	/* RFC 9111 5.1: not delta-seconds means ignored, not truncated */
	assert_int_equal(freshness_parse_age("7200"), 7200);
	assert_int_equal(freshness_parse_age(" 12 "), 12);
	assert_int_equal(freshness_parse_age("7200.0"), -1);
	assert_int_equal(freshness_parse_age("-1"), -1);
	assert_int_equal(freshness_parse_age("1e3"), -1);
	assert_int_equal(freshness_parse_age(""), -1);
	assert_int_equal(freshness_parse_age(NULL), -1);
	assert_int_equal(freshness_parse_age("99999999999999999999"), 2147483648LL);
	assert_int_equal(freshness_parse_age("5, 10"), 5); /* a list: the first member */
	struct fresh_out o;
	struct fresh_in in = base();
	in.cache_control = "max-age=60";
	in.age = "7200.0";
	freshness_evaluate(&in, &o);
	assert_int_equal(o.age_value, 0);
	in.age = "30";
	freshness_evaluate(&in, &o);
	assert_int_equal(o.age_value, 30);
}

static void test_invalid_expires(void **state)
{
	struct fresh_out o;
	struct fresh_in in = base();
	static const char *const bad[] = {
		"Thu, 01  Jan 2099 00:00:00 GMT", "Thu, 01 Jan 2099 0:00:00 GMT",
		"Thu, 1 Jan 2099 00:00:00 GMT", "Thu Jan 1 00:00:00 2099",
		"Thu, 01 Jan 2099 00:00:00 GMT, Fri, 02 Jan 2099 00:00:00 GMT",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		in.expires = bad[i];
		freshness_evaluate(&in, &o);
		assert_true(o.storable);
		if (o.lifetime != 0)
			fail_msg("Expires \"%s\" gave %lld s", bad[i], (long long)o.lifetime);
	}
	in.expires = "Thu, 01 Jan 2099 00:00:00 GMT";
	freshness_evaluate(&in, &o);
	assert_true(o.lifetime > 0);
}

static void test_repeated_lines(void **state)
{
	struct fresh_out o;
	struct fresh_in in = base();
	/* "Cache-Control: max-age=3600" and "Cache-Control: s-maxage=1", joined */
	in.cache_control = "max-age=3600, s-maxage=1";
	freshness_evaluate(&in, &o);
	assert_int_equal(o.lifetime, 1);
	/* the same directive with two values: stale (RFC 9111 4.2.1) */
	in.cache_control = "max-age=3600, max-age=60";
	freshness_evaluate(&in, &o);
	assert_int_equal(o.lifetime, 0);
	in.cache_control = "max-age=60, max-age=60";
	freshness_evaluate(&in, &o);
	assert_int_equal(o.lifetime, 60);
	in.cache_control = "max-age=60, no-store";
	freshness_evaluate(&in, &o);
	assert_false(o.storable);
	/* "Vary:" then "Vary: *" */
	in.cache_control = "max-age=60";
	in.vary = ", *";
	freshness_evaluate(&in, &o);
	assert_false(o.storable);
	in.vary = "X-Star*";
	freshness_evaluate(&in, &o);
	assert_true(o.storable);
}

static void test_cdn_structured(void **state)
{
	struct cc c;
	assert_true(freshness_parse_cdn_cc("max-age=60;foo, x-unknown=(a b), no-cache=\"set-cookie\"", &c));
	assert_int_equal(c.max_age, 60);
	assert_true(c.no_cache);
	assert_true(freshness_parse_cdn_cc("no-store=?0, public", &c));
	assert_false(c.no_store);
	assert_true(c.public_);
	assert_true(freshness_parse_cdn_cc("none", &c)); /* RFC 9213 3.1's example */
	assert_int_equal(c.max_age, -1);
	static const char *const ignored[] = {
		"max-age=\"60\"", "max-age=1.5", "max-age=sixty", "max-age=-5", "Max-Age=60",
		"max-age=60,", "max-age=60 public", "max-age=60, must-revalidate=1",
		"max-age=60, no-store=\"x\"", "max-age=60, private=5", "", "   ",
	};
	for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++) {
		if (freshness_parse_cdn_cc(ignored[i], &c))
			fail_msg("CDN-Cache-Control \"%s\" was used", ignored[i]);
		assert_int_equal(c.max_age, -1);
		assert_false(c.present);
	}
	/* An ignored CDN-Cache-Control leaves Cache-Control in charge. */
	struct fresh_out o;
	struct fresh_in in = base();
	in.cache_control = "max-age=10";
	in.cdn_cache_control = "max-age=\"600\"";
	freshness_evaluate(&in, &o);
	assert_int_equal(o.lifetime, 10);
	assert_int_equal(o.source, FRESH_MAX_AGE);
	in.cdn_cache_control = "max-age=600, stale-if-error=1.0";
	freshness_evaluate(&in, &o);
	assert_int_equal(o.lifetime, 10);
	in.cdn_cache_control = "max-age=600";
	freshness_evaluate(&in, &o);
	assert_int_equal(o.lifetime, 600);
	assert_int_equal(o.source, FRESH_CDN_CC);
}

static void test_status_codes(void **state)
{
	struct fresh_out o;
	struct fresh_in in = base();
	static const unsigned stored[] = { 200, 299, 302, 401, 418, 499, 500, 503, 599 };
	in.cache_control = "max-age=60";
	for (size_t i = 0; i < sizeof stored / sizeof stored[0]; i++) {
		in.status = stored[i];
		freshness_evaluate(&in, &o);
		if (!o.storable)
			fail_msg("%u with max-age not stored (%s)", stored[i], o.why_not);
	}
	static const unsigned never[] = { 100, 103, 206, 304, 600, 999 };
	for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
		in.status = never[i];
		freshness_evaluate(&in, &o);
		if (o.storable)
			fail_msg("%u stored", never[i]);
	}
	/* without explicit freshness only heuristically cacheable ones */
	in.cache_control = NULL;
	in.last_modified = "Tue, 14 Nov 2023 12:13:20 GMT";
	in.status = 299;
	freshness_evaluate(&in, &o);
	assert_false(o.storable);
	in.status = 404;
	freshness_evaluate(&in, &o);
	assert_true(o.storable);
}

static void test_must_understand(void **state)
{
	struct fresh_out o;
	struct fresh_in in = base();
	in.cache_control = "max-age=60, must-understand, no-store";
	freshness_evaluate(&in, &o); /* 200 is understood: no-store ignored */
	assert_true(o.storable);
	assert_int_equal(o.lifetime, 60);
	in.status = 299;
	freshness_evaluate(&in, &o);
	assert_false(o.storable);
	assert_string_equal(o.why_not, "must-understand");
	in.cache_control = "max-age=60, must-understand";
	freshness_evaluate(&in, &o); /* not understood: not stored even without no-store */
	assert_false(o.storable);
	in.cache_control = "max-age=60";
	freshness_evaluate(&in, &o);
	assert_true(o.storable);
	in.status = 200;
	in.cache_control = "max-age=60, no-store";
	freshness_evaluate(&in, &o);
	assert_false(o.storable);
	in.cache_control = NULL;
	in.cdn_cache_control = "max-age=60, must-understand, no-store";
	freshness_evaluate(&in, &o);
	assert_true(o.storable);
}

static void test_stale_on_error(void **state)
{
	struct stale_err e = { ORIGIN_ERROR, 30, -1, 0, 600, false, false, false };
	/* an origin 5xx passes through unless stale-if-error covers it */
	assert_false(freshness_stale_on_error(&e));
	e.sie = 60;
	assert_true(freshness_stale_on_error(&e));
	e.stale_for = 61;
	assert_false(freshness_stale_on_error(&e));
	e.sie = -1;
	e.default_sie = 120;
	assert_true(freshness_stale_on_error(&e));
	/* unreachable: the configured window, or a longer stale-if-error */
	e = (struct stale_err){ ORIGIN_UNREACHABLE, 500, -1, 0, 600, false, false, false };
	assert_true(freshness_stale_on_error(&e));
	e.stale_for = 601;
	assert_false(freshness_stale_on_error(&e));
	e.sie = 1000;
	assert_true(freshness_stale_on_error(&e));
	e.unreachable = 0;
	e.sie = -1;
	assert_false(freshness_stale_on_error(&e));
	/* no-cache, must-revalidate (and proxy-revalidate, s-maxage) and the
	 * client's no-cache always win */
	e = (struct stale_err){ ORIGIN_UNREACHABLE, 5, 3600, 3600, 3600, true, false, false };
	assert_false(freshness_stale_on_error(&e));
	e.fail = ORIGIN_ERROR;
	assert_false(freshness_stale_on_error(&e));
	e.no_cache = false;
	e.must_revalidate = true;
	assert_false(freshness_stale_on_error(&e));
	e.must_revalidate = false;
	e.req_no_cache = true;
	assert_false(freshness_stale_on_error(&e));
	e.req_no_cache = false;
	assert_true(freshness_stale_on_error(&e));
	/* the statuses that count as errors */
	assert_true(freshness_error_status(500));
	assert_true(freshness_error_status(504));
	assert_false(freshness_error_status(501));
	assert_false(freshness_error_status(599));
	/* a no-cache response is never served stale-while-revalidate either */
	struct stored_state st = { 70, 60, 3600, true, false };
	assert_int_equal(freshness_use(NULL, &st), VALIDATE_STALE);
}

static void test_not_modified_since(void **state)
{
	const char *lm = "Tue, 14 Nov 2023 12:13:20 GMT";
	assert_true(freshness_not_modified_since(D_NOW, lm, NULL));
	assert_true(freshness_not_modified_since(lm, lm, D_NOW));
	assert_false(freshness_not_modified_since("Tue, 14 Nov 2023 12:13:19 GMT", lm, D_NOW));
	/* RFC 9111 4.3.2: no Last-Modified, the stored Date stands in */
	assert_true(freshness_not_modified_since(D_NOW, NULL, D_NOW));
	assert_false(freshness_not_modified_since(lm, NULL, D_NOW));
	assert_false(freshness_not_modified_since(D_NOW, NULL, NULL));
	assert_false(freshness_not_modified_since(NULL, lm, D_NOW));
	/* an invalid IMS is ignored (RFC 9110 13.1.3) */
	assert_false(freshness_not_modified_since("Tue, 14 Nov 2023 22:13:20", NULL, D_NOW));
}

static void test_304_selects(void **state)
{
	const char *lm = "Tue, 14 Nov 2023 12:13:20 GMT", *lm2 = "Tue, 14 Nov 2023 12:13:21 GMT";
	assert_true(freshness_304_selects("\"a\"", "\"a\"", NULL, NULL));
	assert_false(freshness_304_selects("\"a\"", "\"b\"", lm, lm));  /* the ETag decides */
	assert_false(freshness_304_selects(NULL, "\"a\"", lm, lm));
	assert_true(freshness_304_selects("W/\"a\"", "W/\"a\"", NULL, NULL));
	assert_true(freshness_304_selects("\"a\"", "W/\"a\"", NULL, NULL));  /* weak comparison */
	assert_false(freshness_304_selects("W/\"a\"", "\"a\"", NULL, NULL)); /* strong needs strong */
	assert_true(freshness_304_selects("\"a\"", NULL, lm, lm));
	assert_false(freshness_304_selects("\"a\"", NULL, lm, lm2));
	assert_false(freshness_304_selects("\"a\"", NULL, NULL, lm));
	assert_true(freshness_304_selects(NULL, NULL, NULL, NULL));
	assert_false(freshness_304_selects("\"a\"", NULL, NULL, NULL));
	assert_false(freshness_304_selects(NULL, NULL, lm, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_cc),
		cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_expires_edge_cases),
		cmocka_unit_test(test_heuristic),
		cmocka_unit_test(test_not_storable),
		cmocka_unit_test(test_no_cache_and_windows),
		cmocka_unit_test(test_age),
		cmocka_unit_test(test_request_parse),
		cmocka_unit_test(test_request_use),
		cmocka_unit_test(test_age_strict),
		cmocka_unit_test(test_invalid_expires),
		cmocka_unit_test(test_repeated_lines),
		cmocka_unit_test(test_cdn_structured),
		cmocka_unit_test(test_status_codes),
		cmocka_unit_test(test_must_understand),
		cmocka_unit_test(test_stale_on_error),
		cmocka_unit_test(test_not_modified_since),
		cmocka_unit_test(test_304_selects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
