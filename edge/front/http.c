/* http.c -- the edge's request dispatch: control -> script -> cache -> origin.
 *
 * Seam for edge logic (issue 5, edge/script*.c): dispatch() below is the one
 * place requests are routed.  A script hook is called between the control
 * endpoints and the cache with the struct edge_req (http.h: method, target,
 * normalised path/query/host, headers via edge_req_header(), client address)
 * and either queues a response on r->conn (returning its MHD result) or
 * declines, in which case the request continues to the cache.  To cache a
 * script response use cache_store() (cache.h) with edge_req_key(r); cache lookups use
 * cache_lookup(); purges cache_purge_*().  Control paths for bundles
 * (/.minicdn/scripts) are routed in control.c.
 *
 * Threading: MHD runs `threads` worker threads; misses suspend the
 * connection (MHD_suspend_connection) and the fetch thread resumes it. */
#include "edge/front/http.h"
#include "edge/front/accesslog.h"
#include "edge/front/control.h"
#include "edge/cache/freshness.h"
#include "edge/upstream/proxy.h"
#include "edge/cache/range.h"
#include "edge/front/script_http.h"
#include "common/httpd.h"
#include "common/httpdate.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---------- small helpers ---------- */

const char *edge_req_header(const struct edge_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

static const char *req_hdr_cb(void *cls, const char *name)
{
	return edge_req_header(cls, name);
}

bool http_hop_by_hop(const char *n, const char *connection)
{
	static const struct { const char *name; size_t len; } hop[] = {
		{ "connection", 10 }, { "keep-alive", 10 }, { "proxy-connection", 16 }, { "te", 2 },
		{ "trailer", 7 }, { "transfer-encoding", 17 }, { "upgrade", 7 },
		{ "proxy-authenticate", 18 }, { "proxy-authorization", 19 },
	};
	/* Compared only where the length matches: most names match none. */
	size_t len = strlen(n);
	for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++)
		if (hop[i].len == len && !strcasecmp(n, hop[i].name))
			return true;
	if (connection) {
		size_t nl = len;
		const char *p = connection;
		while (*p) {
			while (*p == ' ' || *p == ',' || *p == '\t')
				p++;
			const char *s = p;
			while (*p && *p != ',' && *p != ' ' && *p != '\t')
				p++;
			if ((size_t)(p - s) == nl && nl && !strncasecmp(s, n, nl))
				return true;
		}
	}
	return false;
}

/* Appends s[0..len) to out (cap bytes, room kept for the NUL); truncates. */
static void put(char *out, size_t cap, size_t *n, const char *s, size_t len)
{
	if (*n + len >= cap)
		len = cap - 1 - *n;
	memcpy(out + *n, s, len);
	*n += len;
}
#define PUT_LIT(out, n, lit) put(out, sizeof out, n, lit, sizeof lit - 1)

static void put_num(char *out, size_t cap, size_t *n, long long v)
{
	char tmp[24];
	size_t k = sizeof tmp;
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	do
		tmp[--k] = (char)('0' + u % 10);
	while (u /= 10);
	if (v < 0)
		tmp[--k] = '-';
	put(out, cap, n, tmp + k, sizeof tmp - k);
}

/* Built without printf: this runs on every response, hits included. */
void http_add_cache_status(struct edge_req *r, struct MHD_Response *resp, bool hit,
                           enum fwd_reason fwd, unsigned fwd_status, bool stored, long ttl,
                           const char *detail)
{
	static const char *const fwds[] = { "",     "uri-miss", "vary-miss", "stale",
		                            "method", "miss",     "request" };
	const char *name = r->edge->cfg.name;
	r->log_result = hit ? (fwd == FWD_STALE ? "stale" : "hit") : fwd != FWD_NONE ? fwds[fwd] : NULL;
	char cs[256];
	size_t n = 0;
	put(cs, sizeof cs, &n, name, strlen(name));
	if (hit)
		PUT_LIT(cs, &n, "; hit");
	if (fwd != FWD_NONE) {
		PUT_LIT(cs, &n, "; fwd=");
		put(cs, sizeof cs, &n, fwds[fwd], strlen(fwds[fwd]));
	}
	if (fwd_status) {
		PUT_LIT(cs, &n, "; fwd-status=");
		put_num(cs, sizeof cs, &n, fwd_status);
	}
	if (stored)
		PUT_LIT(cs, &n, "; stored");
	if (ttl != LONG_MIN) {
		PUT_LIT(cs, &n, "; ttl=");
		put_num(cs, sizeof cs, &n, ttl);
	}
	if (detail && !strcmp(detail, "collapsed")) {
		PUT_LIT(cs, &n, "; collapsed");
	} else if (detail) {
		PUT_LIT(cs, &n, "; detail=");
		put(cs, sizeof cs, &n, detail, strlen(detail));
	}
	cs[n] = '\0';
	MHD_add_response_header(resp, "Cache-Status", cs);
}

void http_add_via(struct edge_req *r, struct MHD_Response *resp)
{
	const char *name = r->edge->cfg.name;
	char via[160];
	size_t n = 0;
	PUT_LIT(via, &n, "1.1 ");
	put(via, sizeof via, &n, name, strlen(name));
	PUT_LIT(via, &n, " (minicdn)");
	via[n] = '\0';
	MHD_add_response_header(resp, "Via", via);
}

enum MHD_Result http_error(struct edge_req *r, unsigned status, const char *msg)
{
	struct buf b = BUF_INIT;
	buf_puts(&b, "{\"error\":");
	buf_json_str(&b, msg);
	buf_puts(&b, "}\n");
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(b.len, b.data, MHD_RESPMEM_MUST_COPY);
	r->log_bytes = r->is_head ? 0 : (int64_t)b.len;
	buf_free(&b);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", "application/json");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	http_add_cache_status(r, resp, false, r->fwd, 0, false, LONG_MIN, NULL);
	if (status == 400 || status == 414 || status == 431)
		MHD_add_response_header(resp, "Connection", "close");
	enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* ---------- conditionals and ranges (RFC 9110 13, 14) ---------- */

/* Weak comparison of an If-None-Match list against an ETag. */
static bool etag_in_list(const char *list, const char *etag)
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
		const char *q = s;
		if (*q == '"') {
			q = strchr(q + 1, '"');
			q = q ? q + 1 : s + strlen(s);
		} else {
			while (*q && *q != ',')
				q++;
		}
		if ((size_t)(q - s) == el && !strncmp(s, e, el))
			return true;
		p = q;
		while (*p && *p != ',')
			p++;
	}
	return false;
}

/* True if the client's conditional GET is satisfied (answer 304). */
bool http_not_modified(struct edge_req *r, const char *etag, const char *last_modified)
{
	const char *inm = edge_req_header(r, "If-None-Match");
	if (inm)
		return etag_in_list(inm, etag);
	const char *ims = edge_req_header(r, "If-Modified-Since");
	if (ims && last_modified) {
		time_t t = httpdate_parse(ims), lm = httpdate_parse(last_modified);
		return t >= 0 && lm >= 0 && lm <= t;
	}
	return false;
}

/* If-Range: a strong ETag must match exactly, a date must equal Last-Modified. */
bool http_if_range_ok(struct edge_req *r, const char *etag, const char *last_modified)
{
	const char *ir = edge_req_header(r, "If-Range");
	if (!ir)
		return true;
	if (ir[0] == '"' || !strncmp(ir, "W/", 2))
		return etag && ir[0] == '"' && strncmp(etag, "W/", 2) && !strcmp(ir, etag);
	return last_modified && httpdate_parse(ir) >= 0 &&
	       httpdate_parse(ir) == httpdate_parse(last_modified);
}

/* ---------- serving cached entries ---------- */

struct hit_ref {
	struct cache *cache;
	struct cache_ref *ref;
};

static void hit_free(void *cls)
{
	struct hit_ref *h = cls;
	cache_ref_release(h->cache, h->ref);
	free(h);
}

bool http_skip_to_client(const char *name)
{
	return !strcasecmp(name, "CDN-Cache-Control") || !strcasecmp(name, "Surrogate-Key") ||
	       !strcasecmp(name, "Cache-Tag") || !strcasecmp(name, "Surrogate-Control");
}

/* Headers a 304 carries (RFC 9110 15.4.5). */
bool http_in_304(const char *n)
{
	return !strcasecmp(n, "ETag") || !strcasecmp(n, "Cache-Control") || !strcasecmp(n, "Date") ||
	       !strcasecmp(n, "Expires") || !strcasecmp(n, "Vary") ||
	       !strcasecmp(n, "Content-Location") || !strcasecmp(n, "Last-Modified");
}

/* A multipart/byteranges body served from a cached entry: the parts are read
 * from the map (zero-copy source) while the read transaction is held. */
struct mp_ref {
	struct cache *cache;
	struct cache_ref *ref;
	const uint8_t *body; /* borrowed from the map until ref is released */
	struct multipart m;
};

static ssize_t mp_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct mp_ref *h = cls;
	if (pos >= h->m.total)
		return MHD_CONTENT_READER_END_OF_STREAM;
	return (ssize_t)range_multipart_read(&h->m, h->body, pos, out, max);
}

static void mp_free(void *cls)
{
	struct mp_ref *h = cls;
	cache_ref_release(h->cache, h->ref);
	range_multipart_free(&h->m);
	free(h);
}

enum MHD_Result http_serve_entry(struct edge_req *r, struct cache_ref *ref,
                                 const struct entry_view *v, const char *storage_key,
                                 enum fwd_reason fwd, unsigned fwd_status, const char *detail)
{
	struct edge *e = r->edge;
	int64_t now = (int64_t)time(NULL);
	int64_t age = freshness_age(v->meta.date, v->meta.age_value, v->meta.request_time,
	                            v->meta.response_time, now);
	long ttl = (long)(v->meta.lifetime - age);
	const char *etag = entry_get_header(v, "ETag");
	const char *lm = entry_get_header(v, "Last-Modified");
	const char *range = NULL;
	unsigned status = v->meta.status;
	const uint8_t *body = v->body;
	uint64_t blen = v->body_len;
	char crange[96] = "";
	char ctype[96] = ""; /* multipart/byteranges; boundary=... */
	struct byte_range rg[RANGE_MAX];
	unsigned nr = 0;
	bool is304 = false;

	if (status == 200 && http_not_modified(r, etag, lm)) {
		is304 = true;
		status = 304;
		blen = 0;
	} else if (status == 200 && (r->is_get || r->is_head) &&
	           (range = edge_req_header(r, "Range")) && http_if_range_ok(r, etag, lm)) {
		enum range_result rr = range_parse(range, v->body_len, rg, &nr);
		if (rr == RANGE_UNSATISFIABLE) {
			struct MHD_Response *resp =
				MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
			snprintf(crange, sizeof crange, "bytes */%llu", (unsigned long long)v->body_len);
			MHD_add_response_header(resp, "Content-Range", crange);
			http_add_cache_status(r, resp, fwd == FWD_NONE, fwd, fwd_status, false, ttl, detail);
			http_add_via(r, resp);
			enum MHD_Result ret = MHD_queue_response(r->conn, 416, resp);
			MHD_destroy_response(resp);
			cache_ref_release(e->cache, ref);
			return ret;
		}
		if (rr == RANGE_OK && nr == 1) {
			status = 206;
			body += rg[0].first;
			blen = rg[0].last - rg[0].first + 1;
			snprintf(crange, sizeof crange, "bytes %llu-%llu/%llu",
			         (unsigned long long)rg[0].first, (unsigned long long)rg[0].last,
			         (unsigned long long)v->body_len);
		} else if (rr == RANGE_OK) {
			status = 206;
		}
	}

	struct MHD_Response *resp;
	if (status == 206 && nr > 1) {
		/* Several ranges: multipart/byteranges (RFC 9110 14.6), read from
		 * the map part by part; the read transaction lives until mp_free. */
		struct mp_ref *h = xcalloc(1, sizeof *h);
		h->cache = e->cache;
		h->ref = ref;
		h->body = v->body;
		char boundary[33];
		range_boundary(boundary, (uint64_t)(uintptr_t)h);
		range_multipart_init(&h->m, boundary, entry_get_header(v, "Content-Type"), rg, nr,
		                     v->body_len);
		blen = h->m.total;
		snprintf(ctype, sizeof ctype, "multipart/byteranges; boundary=%s", boundary);
		size_t block = h->m.total < 65536 ? (size_t)h->m.total : 65536;
		resp = MHD_create_response_from_callback(h->m.total, block, mp_read, h, mp_free);
		if (!resp) {
			mp_free(h);
			return MHD_NO;
		}
	} else {
		struct hit_ref *h = xmalloc(sizeof *h);
		h->cache = e->cache;
		h->ref = ref;
		resp = MHD_create_response_from_buffer_with_free_callback_cls(
			(size_t)blen, (void *)body, hit_free, h);
		if (!resp) {
			hit_free(h);
			return MHD_NO;
		}
	}
	size_t pos = 0;
	struct entry_header eh;
	bool own_ranges = status == 200 || status == 206; /* the edge serves ranges itself */
	while (entry_next_header(v, &pos, &eh)) {
		if (http_skip_to_client(eh.name) || (is304 && !http_in_304(eh.name)))
			continue;
		if (own_ranges && !strcasecmp(eh.name, "Accept-Ranges"))
			continue; /* the origin's: ours follows */
		if (ctype[0] && !strcasecmp(eh.name, "Content-Type"))
			continue; /* each part carries it instead */
		MHD_add_response_header(resp, eh.name, eh.value);
	}
	if (ctype[0])
		MHD_add_response_header(resp, "Content-Type", ctype);
	if (crange[0])
		MHD_add_response_header(resp, "Content-Range", crange);
	if (own_ranges)
		MHD_add_response_header(resp, "Accept-Ranges", "bytes");
	char agebuf[24];
	snprintf(agebuf, sizeof agebuf, "%lld", (long long)(age < 0 ? 0 : age));
	MHD_add_response_header(resp, "Age", agebuf);
	http_add_cache_status(r, resp, fwd == FWD_NONE, fwd, fwd_status, false, ttl, detail);
	http_add_via(r, resp);
	r->log_bytes = r->is_head ? 0 : (int64_t)blen;
	enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	if (storage_key)
		cache_touch(e->cache, storage_key);
	return ret;
}

/* ---------- the cache step ---------- */

/* only-if-cached and nothing usable stored: 504 without asking the origin
 * (RFC 9111 5.2.1.7). */
static enum MHD_Result only_if_cached_504(struct edge_req *r)
{
	static const char msg[] = "{\"error\":\"only-if-cached: not in the cache\"}\n";
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(sizeof msg - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", "application/json");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	r->fwd = FWD_NONE;
	http_add_cache_status(r, resp, false, FWD_NONE, 0, false, LONG_MIN, "only-if-cached");
	enum MHD_Result ret = MHD_queue_response(r->conn, 504, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result cache_step(struct edge_req *r)
{
	struct edge *e = r->edge;
	/* Request directives (RFC 9111 5.2.1); most requests carry none, and
	 * then the decision below is the plain freshness check. */
	const char *rcc = edge_req_header(r, "Cache-Control");
	const char *pragma = rcc ? NULL : edge_req_header(r, "Pragma");
	struct req_cc rq;
	const struct req_cc *rqp = NULL;
	if (rcc || pragma) {
		freshness_parse_request(rcc, pragma, edge_live(e)->cache.honor_client_no_cache, &rq);
		rqp = &rq;
	}
	bool only_cached = rqp && rq.only_if_cached;

	struct cache_ref *ref;
	struct entry_view v;
	struct buf sk = BUF_INIT;
	enum cache_result cr = cache_lookup(e->cache, edge_req_key(r), req_hdr_cb, r, &ref, &v, &sk);
	if (cr != CACHE_HIT) {
		buf_free(&sk);
		counters_add(&e->n, C_MISSES, 1);
		if (only_cached)
			return only_if_cached_504(r);
		r->fwd = cr == CACHE_VARY_MISS ? FWD_VARY_MISS : FWD_URI_MISS;
		return proxy_start(r, NULL);
	}
	int64_t now = (int64_t)time(NULL);
	int64_t age = freshness_age(v.meta.date, v.meta.age_value, v.meta.request_time,
	                            v.meta.response_time, now);
	bool mustrv = v.meta.flags & ENTRY_F_MUST_REVALIDATE;
	struct stored_state ss = { age, v.meta.lifetime, v.meta.swr,
		                   (v.meta.flags & ENTRY_F_NO_CACHE) != 0, mustrv };
	enum fresh_use use = freshness_use(rqp, &ss);
	enum MHD_Result ret;
	struct stale_info st = { sk.data, v.hdrs, v.hdrs_len, v.meta };
	switch (use) {
	case USE_FRESH:
		counters_add(&e->n, C_HITS, 1);
		ret = http_serve_entry(r, ref, &v, sk.data, FWD_NONE, 0, NULL);
		buf_free(&sk);
		return ret;
	case USE_STALE:
		/* The client's max-stale accepts this copy as it is. */
		counters_add(&e->n, C_STALE_SERVED, 1);
		ret = http_serve_entry(r, ref, &v, sk.data, FWD_NONE, 0, "max-stale");
		buf_free(&sk);
		return ret;
	case USE_SWR:
		/* stale-while-revalidate: answer now, refresh once in the
		 * background -- unless the client forbade contacting the origin. */
		if (!only_cached)
			proxy_refresh(r, &st);
		counters_add(&e->n, C_STALE_SERVED, 1);
		ret = http_serve_entry(r, ref, &v, sk.data, FWD_NONE, 0, "stale-while-revalidate");
		buf_free(&sk);
		return ret;
	case VALIDATE_REQUEST:
	case VALIDATE_STALE:
		break;
	}
	if (only_cached) {
		cache_ref_release(e->cache, ref);
		buf_free(&sk);
		return only_if_cached_504(r);
	}
	/* Revalidate (conditional request when the entry has a validator);
	 * remember whether this copy may be served if the origin fails: not
	 * when the response requires revalidation nor when the client asked
	 * for the origin's answer with no-cache. */
	int64_t stale_for = age - v.meta.lifetime;
	int64_t sie = v.meta.sie >= 0 ? v.meta.sie : edge_live(e)->cache.stale_if_error_ms / 1000;
	r->has_stale = !mustrv && !(rqp && rq.no_cache) && sie > 0;
	r->stale_deadline = now + (sie - stale_for);
	r->fwd = use == VALIDATE_REQUEST ? FWD_REQUEST : FWD_STALE;
	ret = proxy_start(r, &st);
	cache_ref_release(e->cache, ref); /* st was copied by proxy_start */
	buf_free(&sk);
	return ret;
}

const char *edge_req_key(struct edge_req *r)
{
	if (!r->key.len) {
		const struct edge_config *lc = edge_live(r->edge);
		cachekey_join(r->host.data, r->host.len, r->path.data, r->path.len, lc->query_rules,
		              lc->nquery_rules, &r->key);
	}
	return r->key.data;
}

/* ---------- request validation ---------- */

/* One pass over the request headers finds everything validation needs
 * (values borrowed from MHD for the request). */
struct hdr_scan {
	int content_length, transfer_encoding, host;
	bool cl_conflict;
	const char *first_cl, *te, *host_value, *authorization;
};

static enum MHD_Result scan_hdr(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct hdr_scan *s = cls;
	/* Most headers are none of these: one byte tells. */
	int c = key[0] | 0x20;
	if (c != 'c' && c != 't' && c != 'h' && c != 'a')
		return MHD_YES;
	if (!strcasecmp(key, "Content-Length")) {
		if (s->content_length++ && s->first_cl && strcmp(s->first_cl, value))
			s->cl_conflict = true;
		s->first_cl = value;
	} else if (!strcasecmp(key, "Transfer-Encoding")) {
		if (!s->transfer_encoding++)
			s->te = value;
	} else if (!strcasecmp(key, "Host")) {
		if (!s->host++)
			s->host_value = value;
	} else if (!s->authorization && !strcasecmp(key, "Authorization")) {
		s->authorization = value;
	}
	return MHD_YES;
}

/* Returns 0, or the status to refuse the request with (message in *why). */
static unsigned validate(struct edge_req *r, const char *version, const char **why)
{
	struct edge *e = r->edge;
	const struct edge_config *lc = edge_live(e);
	if (strlen(r->target) > lc->limits.max_url) {
		*why = "request target too long";
		return 414;
	}
	struct hdr_scan s = { 0 };
	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, scan_hdr, &s);
	if (s.transfer_encoding && s.content_length) {
		*why = "both Content-Length and Transfer-Encoding (request smuggling pattern)";
		return 400;
	}
	if (s.cl_conflict || s.transfer_encoding > 1) {
		*why = "conflicting framing headers";
		return 400;
	}
	r->has_auth = s.authorization != NULL;
	if (s.transfer_encoding) {
		if (!s.te || strcasecmp(s.te, "chunked")) {
			*why = "unsupported Transfer-Encoding";
			return 400;
		}
	}
	if (s.host > 1) {
		*why = "more than one Host header";
		return 400;
	}
	const char *host = s.host_value;
	if (!host && strcmp(version, "HTTP/1.0") && strncasecmp(r->target, "http", 4)) {
		*why = "missing Host";
		return 400;
	}
	char defhost[ADDR_STRLEN];
	if (!host)
		host = addr_format(&e->cfg.listen, defhost, sizeof defhost);
	/* The key itself is joined when first needed (edge_req_key): a script
	 * answering the request never needs it. */
	if (cachekey_split(r->target, host, &r->path, &r->host) < 0) {
		*why = "malformed request target or Host";
		return 400;
	}
	const char *q = strchr(r->path.data, '?');
	r->query = q ? q + 1 : "";
	return 0;
}

/* ---------- dispatch ---------- */

static enum MHD_Result dispatch(struct edge_req *r)
{
	struct edge *e = r->edge;
	/* 1. Node endpoints and control API. */
	const char *p = r->path.data;
	if ((p[1] == 'h' && !strcmp(p, "/healthz")) || (p[1] == 'm' && !strcmp(p, "/metrics")) ||
	    (p[1] == '.' && !strncmp(p, "/.minicdn/", 10)))
		return control_handle(r);

	/* 2. Script hook (issue 5): a matching script answers or declines. */
	enum MHD_Result sret;
	if (r->state == RS_SCRIPT ? script_http_resume(r, &sret)
	                          : script_any(r->edge->scripts) && script_http_step(r, &sret))
		return sret;

	/* 3. Cache. */
	if (r->is_get || r->is_head)
		return cache_step(r);

	/* 4. Origin: everything else passes through (unsafe methods invalidate). */
	r->fwd = FWD_METHOD;
	counters_add(&e->n, C_PASSES, 1);
	return proxy_start(r, NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
	struct edge *e = cls;
	struct edge_req *r = *con_cls;
	if (!r)
		return MHD_NO;
	if (r->state == RS_NEW) {
		r->conn = conn;
		r->method = method;
		r->version = version;
		counters_add(&e->n, C_REQUESTS, 1);
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		r->client = ci ? ci->client_addr : NULL;
		r->is_get = !strcmp(method, "GET");
		r->is_head = !r->is_get && !strcmp(method, "HEAD");
		r->is_unsafe = !r->is_get && !r->is_head &&
		               (!strcmp(method, "POST") || !strcmp(method, "PUT") ||
		                !strcmp(method, "DELETE") || !strcmp(method, "PATCH"));
		const char *why = NULL;
		unsigned st = validate(r, version, &why);
		if (st) {
			counters_add(&e->n, C_BAD_REQUESTS, 1);
			r->state = RS_DONE;
			log_debug("http", "refused %s: %s", r->target, why);
			return http_error(r, st, why);
		}
		if (!r->is_get && !r->is_head && !r->is_unsafe && strcmp(method, "OPTIONS")) {
			r->state = RS_DONE;
			return http_error(r, 501, "method not implemented");
		}
		/* Answer on the next call, not this first one: MHD 0.9.7x closes
		 * the connection when a response is queued before it has looked
		 * for a request body. */
		r->state = (r->is_get || r->is_head) ? RS_READY : RS_BODY;
		return MHD_YES;
	}
	if (r->state == RS_BODY) {
		if (*upload_size) {
			if (r->body.len + *upload_size > edge_live(e)->limits.max_body)
				r->body_too_large = true;
			else
				buf_append(&r->body, upload, *upload_size);
			*upload_size = 0;
			return MHD_YES;
		}
		if (r->body_too_large) {
			r->state = RS_DONE;
			return http_error(r, 413, "request body too large");
		}
		r->state = RS_READY;
	}
	if (r->state == RS_READY) {
		r->state = RS_DONE;
		return dispatch(r);
	}
	if (r->state == RS_WAIT)
		return proxy_resume(r);
	if (r->state == RS_SCRIPT)
		return dispatch(r);
	return MHD_YES;
}

/* MHD hands us the raw request-target here, before it percent-decodes the
 * path and splits the query: the cache key is built from these bytes. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct edge *e = cls;
	/* One allocation for the request and its target (freed together). */
	size_t n = uri ? strlen(uri) : 0;
	struct edge_req *r = xcalloc(1, sizeof *r + n + 1);
	r->edge = e;
	r->conn = conn;
	r->target = memcpy((char *)(r + 1), uri ? uri : "", n);
	r->log_bytes = -1;
	if (e->alog) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		r->start_us = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	}
	counters_add(&e->n, C_INFLIGHT, 1);
	return r;
}

/* The access log's fields for this request (accesslog.c formats them). */
static void access_line(struct edge *e, struct edge_req *r, enum MHD_RequestTerminationCode toe)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_HTTP_STATUS);
	char ip[ADDR_STRLEN] = "-";
	if (r->client)
		addr_format_ip(r->client, ip, sizeof ip);
	struct accesslog_entry en = {
		.client = ip,
		.method = r->method,
		.target = r->target,
		.version = r->version,
		.status = ci ? ci->http_status : 0,
		.bytes = r->log_bytes,
		.referer = edge_req_header(r, "Referer"),
		.user_agent = edge_req_header(r, "User-Agent"),
		.result = r->log_result,
		.us = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 - r->start_us,
		.node = e->cfg.name,
		.aborted = toe != MHD_REQUEST_TERMINATED_COMPLETED_OK,
	};
	accesslog_request(e->alog, &en);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct edge *e = cls;
	struct edge_req *r = *con_cls;
	if (!r)
		return;
	if (e->alog && r->method)
		access_line(e, r, toe);
	script_http_release(r);
	proxy_release(r);
	buf_free(&r->path);
	buf_free(&r->host);
	buf_free(&r->key);
	buf_free(&r->body);
	free(r); /* and its target */
	*con_cls = NULL;
	counters_add(&e->n, C_INFLIGHT, -1);
}

struct MHD_Daemon *http_start(struct edge *e, char *err, size_t errlen)
{
	struct httpd_opts o = {
		.listen = &e->cfg.listen,
		.threads = (unsigned)e->cfg.threads,
		.extra_flags = MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC,
		.conn_timeout_s = 60,
		.handler = on_request,
		.handler_cls = e,
		.completed = on_completed,
		.completed_cls = e,
		.uri_log = on_uri,
		.uri_log_cls = e,
		.conn_memory_limit = (size_t)e->cfg.limits.max_header_size,
	};
	return httpd_start(&o, err, errlen);
}
