/* freshness.c -- RFC 9111 freshness, age and storability; pure functions */
#include "edge/cache/freshness.h"
#include "common/httpdate.h"
#include "common/sf.h"
#include "edge/cache/vary.h"

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

/* RFC 9111 4.2.1: a directive given twice with different values (two
 * Cache-Control lines, say) makes the response stale rather than picking
 * one; the same value twice is harmless. */
static void set_delta(int64_t *slot, int64_t d)
{
	*slot = *slot >= 0 && *slot != d ? 0 : d;
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
		else if (IS("must-understand"))
			c->must_understand = true;
		else if (IS("max-age")) {
			int64_t d = parse_delta(val, vlen);
			set_delta(&c->max_age, d < 0 ? 0 : d);
		} else if (IS("s-maxage")) {
			int64_t d = parse_delta(val, vlen);
			set_delta(&c->s_maxage, d < 0 ? 0 : d);
		} else if (IS("stale-while-revalidate")) {
			int64_t d = parse_delta(val, vlen);
			if (d >= 0)
				set_delta(&c->swr, d);
		} else if (IS("stale-if-error")) {
			int64_t d = parse_delta(val, vlen);
			if (d >= 0)
				set_delta(&c->sie, d);
		} else if (IS("min-fresh"))
			c->min_fresh = parse_delta(val, vlen);
		else if (IS("max-stale"))
			c->max_stale = val ? parse_delta(val, vlen) : 2147483648LL;
#undef IS
	}
}

/* ---------- CDN-Cache-Control (RFC 9213) ---------- */

struct cdn_parse {
	struct cc *c;
	bool bad; /* a known directive with a value of the wrong type */
};

static bool key_is(const char *k, size_t kl, const char *lit)
{
	return kl == strlen(lit) && !memcmp(k, lit, kl);
}

/* RFC 9213 2.1: delta-seconds are Integers; a Decimal, String or Token is
 * a value the cache "SHOULD NOT consume", and it makes the whole field
 * ignored (falling back to Cache-Control) rather than half-read. */
static void cdn_delta(struct cdn_parse *cp, const struct sf_item *v, int64_t *slot)
{
	if (v->type != SF_INTEGER || v->integer < 0) {
		cp->bad = true;
		return;
	}
	*slot = v->integer > 2147483648LL ? 2147483648LL : v->integer;
}

/* Directives without arguments are Booleans; true sets them, false leaves
 * them unset. */
static void cdn_flag(struct cdn_parse *cp, const struct sf_item *v, bool *flag)
{
	if (v->type != SF_BOOLEAN)
		cp->bad = true;
	else
		*flag = v->boolean;
}

static void cdn_member(void *cls, const char *k, size_t kl, const struct sf_item *v)
{
	struct cdn_parse *cp = cls;
	struct cc *c = cp->c;
	c->present = true;
	if (key_is(k, kl, "max-age"))
		cdn_delta(cp, v, &c->max_age);
	else if (key_is(k, kl, "s-maxage"))
		cdn_delta(cp, v, &c->s_maxage);
	else if (key_is(k, kl, "stale-while-revalidate"))
		cdn_delta(cp, v, &c->swr);
	else if (key_is(k, kl, "stale-if-error"))
		cdn_delta(cp, v, &c->sie);
	else if (key_is(k, kl, "no-store"))
		cdn_flag(cp, v, &c->no_store);
	else if (key_is(k, kl, "must-revalidate"))
		cdn_flag(cp, v, &c->must_revalidate);
	else if (key_is(k, kl, "proxy-revalidate"))
		cdn_flag(cp, v, &c->proxy_revalidate);
	else if (key_is(k, kl, "public"))
		cdn_flag(cp, v, &c->public_);
	else if (key_is(k, kl, "no-transform"))
		cdn_flag(cp, v, &c->no_transform);
	else if (key_is(k, kl, "immutable"))
		cdn_flag(cp, v, &c->immutable);
	else if (key_is(k, kl, "must-understand"))
		cdn_flag(cp, v, &c->must_understand);
	else if (key_is(k, kl, "no-cache") || key_is(k, kl, "private")) {
		/* The qualified form (a String of field names, or an Inner
		 * List of them) is treated as unqualified: stricter. */
		bool *f = k[0] == 'n' ? &c->no_cache : &c->private_;
		if (v->type == SF_BOOLEAN)
			*f = v->boolean;
		else if (v->type == SF_STRING || v->type == SF_INNER_LIST)
			*f = true;
		else
			cp->bad = true;
	}
	/* Unknown keys are ignored whatever their shape (RFC 9111 5.2.3). */
}

static void cc_clear(struct cc *c)
{
	memset(c, 0, sizeof *c);
	c->max_age = c->s_maxage = c->swr = c->sie = c->min_fresh = c->max_stale = -1;
}

bool freshness_parse_cdn_cc(const char *v, struct cc *c)
{
	cc_clear(c);
	if (!v)
		return false;
	struct cdn_parse cp = { c, false };
	if (sf_parse_dictionary(v, strlen(v), cdn_member, &cp) < 0 || cp.bad || !c->present) {
		cc_clear(c);
		return false;
	}
	return true;
}

/* ---------- Age (RFC 9111 5.1) ---------- */

int64_t freshness_parse_age(const char *v)
{
	if (!v)
		return -1;
	/* A list (two Age lines joined): the first member counts. */
	while (*v == ' ' || *v == '\t')
		v++;
	size_t n = strcspn(v, ",");
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	/* Digits only: "7200.0", "-1" and "1e3" are not delta-seconds and the
	 * field is ignored, not truncated. */
	return parse_delta(v, n);
}

/* ---------- status codes ---------- */

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
	/* RFC 9111 3: any final status may be stored; this cache does not
	 * store 206 (a range miss fetches the whole object) and a 304 only
	 * updates the response it validates (4.3.4).  600..999 are not HTTP
	 * status codes (RFC 9110 15). */
	return s >= 200 && s <= 599 && s != 206 && s != 304;
}

bool freshness_understood_status(unsigned s)
{
	/* The codes of RFC 9110 15 whose caching rules this cache follows
	 * (must-understand, RFC 9111 5.2.2.3); 206 and 304 are not stored. */
	switch (s) {
	case 200: case 201: case 202: case 203: case 204: case 205:
	case 300: case 301: case 302: case 303: case 307: case 308:
	case 400: case 401: case 403: case 404: case 405: case 406: case 408: case 409: case 410:
	case 411: case 412: case 413: case 414: case 415: case 416: case 417: case 421: case 422:
	case 426:
	case 500: case 501: case 502: case 503: case 504: case 505:
		return true;
	}
	return false;
}

/* ---------- conditional requests ---------- */

bool freshness_not_modified_since(const char *ims, const char *last_modified, const char *date)
{
	if (!ims)
		return false;
	/* RFC 9111 4.3.2: without Last-Modified, the stored Date stands in. */
	const char *lmv = last_modified ? last_modified : date;
	time_t t = httpdate_parse(ims), lm = lmv ? httpdate_parse(lmv) : -1;
	return t >= 0 && lm >= 0 && lm <= t;
}

bool freshness_304_selects(const char *stored_etag, const char *etag_304, const char *stored_lm,
                           const char *lm_304)
{
	if (etag_304) {
		/* A strong validator selects only a strongly equal one; a weak one
		 * any that is weakly equal. */
		if (!stored_etag)
			return false;
		bool weak = !strncmp(etag_304, "W/", 2), stored_weak = !strncmp(stored_etag, "W/", 2);
		if (!weak && stored_weak)
			return false;
		return !strcmp(etag_304 + (weak ? 2 : 0), stored_etag + (stored_weak ? 2 : 0));
	}
	if (lm_304) {
		time_t a = httpdate_parse(lm_304), b = stored_lm ? httpdate_parse(stored_lm) : -1;
		return a >= 0 && a == b;
	}
	/* No validator in the 304: it updates a stored response that has none
	 * either. */
	return !stored_etag && !stored_lm;
}

/* ---------- stale on origin failure ---------- */

bool freshness_error_status(unsigned s)
{
	/* RFC 5861 4: an error is what would give 500, 502, 503 or 504. */
	return s == 500 || s == 502 || s == 503 || s == 504;
}

bool freshness_stale_on_error(const struct stale_err *in)
{
	/* RFC 9111 4.2.4: never when a directive forbids it -- the response's
	 * no-cache, must-revalidate, proxy-revalidate or s-maxage (5.2.2.2:
	 * a disconnected cache answers 504 instead).  The client's no-cache
	 * asked for the origin's answer, so it gets the error. */
	if (in->no_cache || in->must_revalidate || in->req_no_cache)
		return false;
	int64_t window = in->sie >= 0 ? in->sie : in->default_sie;
	/* Disconnected (4.2.4 "when the cache is disconnected"): the edge's
	 * own bounded window, or the response's longer stale-if-error. */
	if (in->fail == ORIGIN_UNREACHABLE && in->unreachable > window)
		window = in->unreachable;
	return window > 0 && in->stale_for <= window;
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
	o->age_value = freshness_parse_age(in->age);
	if (o->age_value < 0)
		o->age_value = 0;

	struct cc rc, cc, cdn;
	freshness_parse_cc(in->req_cache_control, &rc);
	freshness_parse_cc(in->cache_control, &cc);
	/* RFC 9213: a CDN-Cache-Control that parses as a non-empty Structured
	 * Field dictionary is the policy for us, and Cache-Control / Expires
	 * are ignored for caching decisions; one that does not is ignored. */
	bool use_cdn = freshness_parse_cdn_cc(in->cdn_cache_control, &cdn);
	const struct cc *p = use_cdn ? &cdn : &cc;

	if (!in->method || (strcmp(in->method, "GET") && strcmp(in->method, "HEAD"))) {
		o->why_not = "method";
		return;
	}
	if (!freshness_cacheable_status(in->status)) {
		o->why_not = "status";
		return;
	}
	/* must-understand (RFC 9111 3, 5.2.2.3): stored only if the status
	 * is understood, and then no-store (which it is sent with, for caches
	 * that do not know it) is ignored. */
	bool understood = p->must_understand && freshness_understood_status(in->status);
	if (p->must_understand && !understood) {
		o->why_not = "must-understand";
		return;
	}
	if (rc.no_store) {
		o->why_not = "request no-store";
		return;
	}
	if (p->no_store && !understood) {
		o->why_not = "no-store";
		return;
	}
	if (p->private_) {
		o->why_not = "private";
		return;
	}
	if (vary_has_star(in->vary)) {
		o->why_not = "vary *";
		return;
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
