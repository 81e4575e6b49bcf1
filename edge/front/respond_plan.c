/* respond_plan.c -- status, ranges and headers of a response, decided once for hits and misses */
#include "edge/front/respond_plan.h"
#include "edge/cache/freshness.h"
#include "common/httpdate.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

bool plan_etag_in_list(const char *list, const char *etag)
{
	if (!etag)
		return false;
	const char *e = etag;
	if (!strncmp(e, "W/", 2))
		e += 2;
	size_t el = strlen(e);
	const char *p = list;
	while (*p) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		if (*p == '*')
			return true;
		const char *s = p;
		if (!strncmp(s, "W/", 2))
			s += 2;
		const char *t = s;
		if (*t == '"') {
			t = strchr(t + 1, '"');
			t = t ? t + 1 : s + strlen(s);
		} else {
			while (*t && *t != ',')
				t++;
		}
		if ((size_t)(t - s) == el && !strncmp(s, e, el))
			return true;
		p = t;
		while (*p && *p != ',')
			p++;
	}
	return false;
}

/* RFC 9110 13.1.2-3: If-None-Match wins over If-Modified-Since. */
static bool not_modified(const struct plan_req *q, const struct plan_resp *s)
{
	if (q->if_none_match)
		return plan_etag_in_list(q->if_none_match, s->etag);
	return freshness_not_modified_since(q->if_modified_since, s->last_modified, s->date);
}

/* If-Range (RFC 9110 13.1.5): a strong ETag must match exactly, a date must
 * equal Last-Modified; absent, the Range applies. */
static bool if_range_ok(const struct plan_req *q, const struct plan_resp *s)
{
	const char *ir = q->if_range;
	if (!ir)
		return true;
	if (ir[0] == '"' || !strncmp(ir, "W/", 2))
		return s->etag && ir[0] == '"' && strncmp(s->etag, "W/", 2) && !strcmp(ir, s->etag);
	return s->last_modified && httpdate_parse(ir) >= 0 &&
	       httpdate_parse(ir) == httpdate_parse(s->last_modified);
}

/* Applies q's Range to s's body (status 200, length known). */
static void plan_ranges(const struct plan_req *q, const struct plan_resp *s, struct plan *p)
{
	unsigned nr = 0;
	uint64_t len = (uint64_t)s->length;
	enum range_result rr = range_parse(q->range, len, p->rg, &nr);
	if (rr == RANGE_UNSATISFIABLE) {
		p->status = 416;
		p->empty = true;
		p->body = false;
		p->own_ranges = false;
		p->len = 0;
		snprintf(p->content_range, sizeof p->content_range, "bytes */%llu",
		         (unsigned long long)len);
	} else if (rr == RANGE_OK && nr == 1) {
		p->status = 206;
		p->off = p->rg[0].first;
		p->len = p->rg[0].last - p->rg[0].first + 1;
		snprintf(p->content_range, sizeof p->content_range, "bytes %llu-%llu/%llu",
		         (unsigned long long)p->rg[0].first, (unsigned long long)p->rg[0].last,
		         (unsigned long long)len);
	} else if (rr == RANGE_OK && s->whole) {
		p->status = 206;
		p->nranges = nr;
	}
	/* Several ranges of a body that is not kept: the whole object (RFC
	 * 9110 14.2 lets a server ignore Range), its bytes dropped once read. */
}

void plan_make(const struct plan_req *q, const struct plan_resp *s, struct plan *p)
{
	p->status = s->status;
	p->empty = false;
	p->off = 0;
	p->len = s->length >= 0 ? (uint64_t)s->length : UINT64_MAX;
	p->nranges = 0;
	p->content_range[0] = '\0';
	p->own_ranges = false;
	p->body = !q->head;
	if (!s->cacheable)
		return;
	p->own_ranges = s->status == 200 || s->status == 206;
	if (s->status != 200)
		return;
	if (not_modified(q, s)) {
		p->status = 304;
		p->empty = true;
		p->body = false;
		p->own_ranges = false;
		p->len = 0;
		return;
	}
	if (q->range && s->length >= 0 && if_range_ok(q, s))
		plan_ranges(q, s, p);
}

bool plan_private_header(const char *name)
{
	return !strcasecmp(name, "CDN-Cache-Control") || !strcasecmp(name, "Surrogate-Key") ||
	       !strcasecmp(name, "Cache-Tag") || !strcasecmp(name, "Surrogate-Control");
}

/* Headers a 304 carries (RFC 9110 15.4.5). */
static bool in_304(const char *n)
{
	return !strcasecmp(n, "ETag") || !strcasecmp(n, "Cache-Control") || !strcasecmp(n, "Date") ||
	       !strcasecmp(n, "Expires") || !strcasecmp(n, "Vary") ||
	       !strcasecmp(n, "Content-Location") || !strcasecmp(n, "Last-Modified");
}

bool plan_keep_header(const struct plan *p, const char *name)
{
	if (plan_private_header(name))
		return false;
	if (p->empty)
		return p->status == 304 && in_304(name);
	if (p->own_ranges && !strcasecmp(name, "Accept-Ranges"))
		return false;
	if (p->nranges > 1 && !strcasecmp(name, "Content-Type"))
		return false;
	return true;
}
