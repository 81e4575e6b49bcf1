/* fuzz_cachecontrol.c -- Cache-Control / CDN-Cache-Control parsing and the
 * freshness decision over fuzzed response headers, plus request directives.
 * Lines: Cache-Control, CDN-Cache-Control, Expires, Date, Last-Modified, Age,
 * Vary, request Cache-Control, Pragma.  Invariants: deltas are -1 or >= 0; a
 * lifetime is never negative; a non-storable answer says why. */
#include "edge/cache/freshness.h"
#include "tests/fuzz/fuzz_util.h"

static const char *opt(char **l, size_t n, size_t i)
{
	return i < n && l[i][0] ? l[i] : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *l[9], *mem;
	size_t n = fuzz_split(data, size, l, 9, &mem);
	struct cc cc;
	freshness_parse_cc(l[0], &cc);
	FUZZ_CHECK(cc.max_age >= -1 && cc.s_maxage >= -1 && cc.swr >= -1 && cc.sie >= -1);
	FUZZ_CHECK(cc.min_fresh >= -1 && cc.max_stale >= -1);
	struct fresh_in in = {
		.status = 200, .cache_control = opt(l, n, 0), .cdn_cache_control = opt(l, n, 1),
		.expires = opt(l, n, 2), .date = opt(l, n, 3), .last_modified = opt(l, n, 4),
		.age = opt(l, n, 5), .vary = opt(l, n, 6), .method = "GET",
		.req_cache_control = opt(l, n, 7), .request_time = 1700000000, .response_time = 1700000001,
		.heuristic_fraction = 0.1, .heuristic_max = 86400,
	};
	struct fresh_out out;
	freshness_evaluate(&in, &out);
	FUZZ_CHECK(out.storable || out.why_not);
	FUZZ_CHECK(out.lifetime >= 0);
	FUZZ_CHECK(out.age_value >= 0);
	(void)freshness_age(out.date, out.age_value, in.request_time, in.response_time, 1700000100);
	struct req_cc rq;
	freshness_parse_request(opt(l, n, 7), opt(l, n, 8), size & 1, &rq);
	FUZZ_CHECK(rq.max_age >= -1 && rq.min_fresh >= -1 && rq.max_stale >= -1);
	struct stored_state st = { .age = 10, .lifetime = out.lifetime, .swr = out.swr,
	                           .no_cache = out.no_cache, .must_revalidate = out.must_revalidate };
	enum fresh_use u = freshness_use(&rq, &st);
	FUZZ_CHECK(u >= USE_FRESH && u <= VALIDATE_STALE);
	free(mem);
	return 0;
}
