/* freshness.c -- RFC 9111 freshness, age and storability; pure functions */
#include "edge/cache/freshness.h"
#include "common/httpdate.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* delta-seconds: digits only; overflow saturates at 2^31 (RFC 9111 1.2.2). */
static int64_t parse_delta(const char *s, size_t n)
{
	if (n == 0)
		return -1;
	int64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		if (v < 2147483648LL)
			v = v * 10 + (s[i] - '0');
	}
	return v > 2147483648LL ? 2147483648LL : v;
}

void freshness_parse_cc(const char *v, struct cc *c)
{
	memset(c, 0, sizeof *c);
	c->max_age = c->s_maxage = c->swr = c->sie = c->min_fresh = c->max_stale = -1;
	if (!v)
		return;
	const char *p = v;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		const char *name = p;
		while (*p && *p != '=' && *p != ',' && *p != ' ' && *p != '\t')
			p++;
		size_t nlen = (size_t)(p - name);
		while (*p == ' ' || *p == '\t')
			p++;
		const char *val = NULL;
		size_t vlen = 0;
		if (*p == '=') {
			p++;
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p == '"') {
				val = ++p;
				while (*p && *p != '"')
					p++;
				vlen = (size_t)(p - val);
				if (*p == '"')
					p++;
			} else {
				val = p;
				while (*p && *p != ',' && *p != ' ' && *p != '\t')
					p++;
				vlen = (size_t)(p - val);
			}
		}
		while (*p && *p != ',')
			p++;
		c->present = true;
#define IS(lit) (nlen == sizeof(lit) - 1 && strncasecmp(name, lit, nlen) == 0)
		if (IS("no-store"))
			c->no_store = true;
		else if (IS("no-cache"))
			c->no_cache = true; /* field-name form treated as unqualified: stricter */
		else if (IS("private"))
			c->private_ = true;
		else if (IS("public"))
			c->public_ = true;
		else if (IS("must-revalidate"))
			c->must_revalidate = true;
		else if (IS("proxy-revalidate"))
			c->proxy_revalidate = true;
		else if (IS("no-transform"))
			c->no_transform = true;
		else if (IS("only-if-cached"))
			c->only_if_cached = true;
		else if (IS("immutable"))
			c->immutable = true;
		else if (IS("max-age")) {
			int64_t d = parse_delta(val, vlen);
			c->max_age = d < 0 ? 0 : d;
		} else if (IS("s-maxage")) {
			int64_t d = parse_delta(val, vlen);
			c->s_maxage = d < 0 ? 0 : d;
		} else if (IS("stale-while-revalidate"))
			c->swr = parse_delta(val, vlen);
		else if (IS("stale-if-error"))
			c->sie = parse_delta(val, vlen);
		else if (IS("min-fresh"))
			c->min_fresh = parse_delta(val, vlen);
		else if (IS("max-stale"))
			c->max_stale = val ? parse_delta(val, vlen) : 2147483648LL;
#undef IS
	}
}

bool freshness_heuristic_status(unsigned s)
{
	switch (s) {
	case 200: case 203: case 204: case 206: case 300: case 301: case 308:
	case 404: case 405: case 410: case 414: case 501:
		return true;
	}
	return false;
}

bool freshness_cacheable_status(unsigned s)
{
	/* Final status codes this cache understands (RFC 9111 3: "the response
	 * status code is final" and understood).  206 is not stored: a range miss
	 * fetches the whole object instead. */
	if (s < 200 || s == 206 || s == 304)
		return false;
	switch (s) {
	case 200: case 203: case 204: case 300: case 301: case 302: case 303: case 307: case 308:
	case 400: case 403: case 404: case 405: case 410: case 414:
	case 500: case 501: case 502: case 503: case 504:
		return true;
	}
	return false;
}

static int64_t parse_int(const char *s)
{
	if (!s)
		return -1;
	while (*s == ' ')
		s++;
	size_t n = strspn(s, "0123456789");
	return parse_delta(s, n);
}

void freshness_evaluate(const struct fresh_in *in, struct fresh_out *o)
{
	memset(o, 0, sizeof *o);
	o->swr = o->sie = -1;
	o->date = in->response_time;
	if (in->date) {
		time_t d = httpdate_parse(in->date);
		if (d >= 0)
			o->date = d;
	}
	o->age_value = parse_int(in->age);
	if (o->age_value < 0)
		o->age_value = 0;

	struct cc rc, cc, cdn;
	freshness_parse_cc(in->req_cache_control, &rc);
	freshness_parse_cc(in->cache_control, &cc);
	freshness_parse_cc(in->cdn_cache_control, &cdn);
	/* RFC 9213: a valid, non-empty CDN-Cache-Control is the policy for us and
	 * Cache-Control / Expires are ignored for caching decisions. */
	bool use_cdn = in->cdn_cache_control && cdn.present;
	const struct cc *p = use_cdn ? &cdn : &cc;

	if (!in->method || (strcmp(in->method, "GET") && strcmp(in->method, "HEAD"))) {
		o->why_not = "method";
		return;
	}
	if (!freshness_cacheable_status(in->status)) {
		o->why_not = "status";
		return;
	}
	if (rc.no_store) {
		o->why_not = "request no-store";
		return;
	}
	if (p->no_store) {
		o->why_not = "no-store";
		return;
	}
	if (p->private_) {
		o->why_not = "private";
		return;
	}
	if (in->vary) {
		for (const char *v = in->vary; *v; v++)
			if (*v == '*') {
				o->why_not = "vary *";
				return;
			}
	}
	if (in->req_authorization && !(p->public_ || p->s_maxage >= 0 || p->must_revalidate)) {
		o->why_not = "authorization";
		return;
	}
	o->must_revalidate = p->must_revalidate || p->proxy_revalidate || p->s_maxage >= 0;
	o->no_cache = p->no_cache;
	o->swr = p->swr;
	o->sie = p->sie;

	if (use_cdn && cdn.s_maxage >= 0) {
		o->lifetime = cdn.s_maxage;
		o->source = FRESH_CDN_CC;
	} else if (use_cdn && cdn.max_age >= 0) {
		o->lifetime = cdn.max_age;
		o->source = FRESH_CDN_CC;
	} else if (!use_cdn && cc.s_maxage >= 0) {
		o->lifetime = cc.s_maxage;
		o->source = FRESH_S_MAXAGE;
	} else if (!use_cdn && cc.max_age >= 0) {
		o->lifetime = cc.max_age;
		o->source = FRESH_MAX_AGE;
	} else if (!use_cdn && in->expires) {
		time_t e = httpdate_parse(in->expires);
		/* An invalid Expires (e.g. "0") means already expired. */
		o->lifetime = e < 0 ? 0 : (e > o->date ? e - o->date : 0);
		o->source = FRESH_EXPIRES;
	} else if (p->public_ || freshness_heuristic_status(in->status)) {
		/* Heuristic freshness: only without explicit expiry, only for
		 * heuristically cacheable statuses (or an explicit public), and only
		 * from Last-Modified (RFC 9111 4.2.2). */
		time_t lm = in->last_modified ? httpdate_parse(in->last_modified) : -1;
		if (lm >= 0 && lm < o->date) {
			int64_t h = (int64_t)((double)(o->date - lm) * in->heuristic_fraction);
			if (h > in->heuristic_max)
				h = in->heuristic_max;
			o->lifetime = h;
		}
		o->source = FRESH_HEURISTIC;
		if (o->lifetime <= 0 && !o->no_cache) {
			/* Nothing to reuse it with and no validator-based reuse asked:
			 * storing would only cost space. */
			o->why_not = "no freshness information";
			return;
		}
	} else {
		o->why_not = "no explicit freshness";
		return;
	}
	o->storable = true;
}

int64_t freshness_age(int64_t date, int64_t age_value, int64_t request_time, int64_t response_time,
                      int64_t now)
{
	int64_t apparent = response_time - date;
	if (apparent < 0)
		apparent = 0;
	int64_t delay = response_time - request_time;
	if (delay < 0)
		delay = 0;
	int64_t corrected_age_value = age_value + delay;
	int64_t initial = apparent > corrected_age_value ? apparent : corrected_age_value;
	int64_t resident = now - response_time;
	if (resident < 0)
		resident = 0;
	return initial + resident;
}

/* ---------- request directives ---------- */

void freshness_parse_request(const char *cache_control, const char *pragma, bool honor_no_cache,
                             struct req_cc *out)
{
	struct cc c;
	freshness_parse_cc(cache_control, &c);
	out->no_cache = c.no_cache;
	out->no_store = c.no_store;
	out->only_if_cached = c.only_if_cached;
	out->max_age = c.max_age;
	out->min_fresh = c.min_fresh;
	out->max_stale = c.max_stale;
	if (!cache_control && pragma) {
		/* RFC 9111 5.4 (and 7234 5.4): Pragma: no-cache acts as
		 * Cache-Control: no-cache when there is no Cache-Control. */
		struct cc pc;
		freshness_parse_cc(pragma, &pc);
		out->no_cache = pc.no_cache;
	}
	if (!honor_no_cache) {
		/* What browsers send on reload (max-age=0) and forced reload
		 * (no-cache + Pragma): the operator chose to answer those from
		 * the cache like any other request. */
		out->no_cache = false;
		if (out->max_age == 0)
			out->max_age = -1;
	}
}

enum fresh_use freshness_use(const struct req_cc *rq, const struct stored_state *st)
{
	/* A constant: what a request without Cache-Control asks for. */
	static const struct req_cc none = { false, false, false, -1, -1, -1 };
	if (!rq)
		rq = &none;
	bool fresh = st->age < st->lifetime;
	if (st->no_cache)
		return VALIDATE_STALE; /* the response's own no-cache: every use validated */
	if (rq->no_cache)
		return fresh ? VALIDATE_REQUEST : VALIDATE_STALE;
	/* max-age bounds the age whether or not the response is fresh. */
	if (rq->max_age >= 0 && st->age > rq->max_age)
		return fresh ? VALIDATE_REQUEST : VALIDATE_STALE;
	if (fresh) {
		if (rq->min_fresh >= 0 && st->lifetime - st->age < rq->min_fresh)
			return VALIDATE_REQUEST;
		return USE_FRESH;
	}
	int64_t stale_for = st->age - st->lifetime;
	/* 4.2.4 / 5.2.2.2 / 5.2.2.8: nothing stale once revalidation is required
	 * (s-maxage implies proxy-revalidate for a shared cache). */
	if (st->must_revalidate)
		return VALIDATE_STALE;
	/* A stale response has no remaining freshness: min-fresh cannot hold. */
	if (rq->min_fresh >= 0)
		return VALIDATE_STALE;
	if (rq->max_stale >= 0 && stale_for <= rq->max_stale)
		return USE_STALE;
	if (st->swr >= 0 && stale_for < st->swr)
		return USE_SWR;
	return VALIDATE_STALE;
}
