/* http.c -- the edge's listener and request dispatch: control -> script ->
 * cache -> origin.
 *
 * dispatch() below is the one place requests are routed: node endpoints and
 * the control API (control.c), then a script hook (script_http.c) that
 * either answers or declines, then the cache for GET/HEAD (cache_step), then
 * the origin (upstream/proxy.h) for misses and everything else.  Responses
 * are built by respond.c, whichever step produced them.
 *
 * Threading: MHD runs `threads` worker threads; misses suspend the
 * connection (through edge_conn_ops) and the fetch thread resumes it. */
#include "edge/front/http.h"
#include "edge/front/accesslog.h"
#include "edge/front/control.h"
#include "edge/front/conns.h"
#include "edge/front/request.h"
#include "edge/front/respond.h"
#include "edge/front/script_http.h"
#include "edge/cache/freshness.h"
#include "edge/cache/slice.h"
#include "edge/upstream/slicer.h"
#include "common/httpd.h"
#include "common/httpd_strict.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Vary selects on the whole field, every line of it. */
static const char *req_hdr_cb(void *cls, const char *name)
{
	return proxy_call_header_all(edge_req_call(cls), name);
}

/* ---------- the cache step ---------- */

/* Hands r to upstream (stale: a revalidation) and serves its answer. */
static enum MHD_Result to_origin(struct edge_req *r, const struct stale_info *stale)
{
	struct proxy_answer a;
	proxy_start(edge_req_call(r), stale, &a);
	return respond_answer(r, &a);
}

/* A large object in slices (upstream/slicer.h).  head: its stored head, or
 * NULL when a single-range GET probes an object not stored; usable: the
 * head may be served without asking the origin. */
static enum MHD_Result to_slices(struct edge_req *r, const struct entry_view *head, bool usable)
{
	int64_t first = -1;
	if (head) {
		struct plan_resp s = { .status = 200,
			               .etag = entry_get_header(head, "ETag"),
			               .last_modified = entry_get_header(head, "Last-Modified"),
			               .length = slicer_head_length(head),
			               .cacheable = true };
		struct plan p;
		plan_make(&r->cond, &s, &p);
		if (p.body)
			first = (int64_t)p.off;
	} else {
		uint64_t b = 0;
		slice_first_byte(r->cond.range, &b);
		first = (int64_t)b;
	}
	struct proxy_answer a;
	slicer_start(edge_req_call(r), head, usable, first, &a);
	return respond_answer(r, &a);
}

static enum MHD_Result cache_step(struct edge_req *r)
{
	struct edge *e = r->edge;
	/* Request directives (RFC 9111 5.2.1); most requests carry none, and
	 * then the decision below is the plain freshness check. */
	/* Every line of each (RFC 9110 5.3): "Cache-Control: max-age=0" and
	 * "Cache-Control: only-if-cached" are one list. */
	struct buf rccb = BUF_INIT, prb = BUF_INIT;
	const struct proxy_call *pc = edge_req_call(r);
	const char *rcc = proxy_header_all(pc, "Cache-Control", &rccb);
	const char *pragma = rcc ? NULL : proxy_header_all(pc, "Pragma", &prb);
	struct req_cc rq;
	const struct req_cc *rqp = NULL;
	if (rcc || pragma) {
		freshness_parse_request(rcc, pragma, edge_live(e)->cache.honor_client_no_cache, &rq);
		rqp = &rq;
	}
	buf_free(&rccb);
	buf_free(&prb);
	bool only_cached = rqp && rq.only_if_cached;
	r->pc.has_rq = rqp != NULL;
	if (rqp)
		r->pc.rq = rq;

	struct cache_ref *ref;
	struct entry_view v;
	struct buf sk = BUF_INIT;
	enum cache_result cr = cache_lookup(e->cache, edge_req_key(r), req_hdr_cb, r, &ref, &v, &sk);
	if (cr != CACHE_HIT) {
		buf_free(&sk);
		counters_add(&e->n, C_MISSES, 1);
		counters_add(&e->site_n[r->site->idx], C_MISSES, 1);
		if (only_cached)
			return respond_only_if_cached(r);
		r->pc.fwd = cr == CACHE_VARY_MISS ? FWD_VARY_MISS : FWD_URI_MISS;
		uint64_t first;
		if (cr == CACHE_MISS && r->is_get && edge_live(e)->cache.slice_size &&
		    slice_first_byte(r->cond.range, &first))
			return to_slices(r, NULL, false);
		return to_origin(r, NULL);
	}
	int64_t now = (int64_t)time(NULL);
	int64_t age = freshness_age(v.meta.date, v.meta.age_value, v.meta.request_time,
	                            v.meta.response_time, now);
	bool mustrv = v.meta.flags & ENTRY_F_MUST_REVALIDATE;
	struct stored_state ss = { age, v.meta.lifetime, v.meta.swr,
		                   (v.meta.flags & ENTRY_F_NO_CACHE) != 0, mustrv };
	enum fresh_use use = freshness_use(rqp, &ss);
	enum MHD_Result ret;
	if (v.meta.flags & ENTRY_F_SLICED) {
		/* Stale-while-revalidate is not done for slices: the first slice
		 * fetched is the revalidation, inline. */
		bool usable = use == USE_FRESH || use == USE_STALE;
		if (!usable && only_cached)
			ret = respond_only_if_cached(r);
		else {
			r->pc.fwd = usable ? FWD_NONE : use == VALIDATE_REQUEST ? FWD_REQUEST : FWD_STALE;
			ret = to_slices(r, &v, usable);
		}
		cache_ref_release(e->cache, ref); /* the slicer copied what it keeps */
		buf_free(&sk);
		return ret;
	}
	struct stale_info st = { sk.data, v.hdrs, v.hdrs_len, v.meta };
	switch (use) {
	case USE_FRESH:
		counters_add(&e->n, C_HITS, 1);
		counters_add(&e->site_n[r->site->idx], C_HITS, 1);
		ret = respond_entry(r, ref, &v, sk.data, FWD_NONE, 0, NULL);
		buf_free(&sk);
		return ret;
	case USE_STALE:
		/* The client's max-stale accepts this copy as it is. */
		counters_add(&e->n, C_STALE_SERVED, 1);
		ret = respond_entry(r, ref, &v, sk.data, FWD_NONE, 0, "max-stale");
		buf_free(&sk);
		return ret;
	case USE_SWR:
		/* stale-while-revalidate: answer now, refresh once in the
		 * background -- unless the client forbade contacting the origin. */
		if (!only_cached)
			proxy_refresh(edge_req_call(r), &st);
		counters_add(&e->n, C_STALE_SERVED, 1);
		ret = respond_entry(r, ref, &v, sk.data, FWD_NONE, 0, "stale-while-revalidate");
		buf_free(&sk);
		return ret;
	case VALIDATE_REQUEST:
	case VALIDATE_STALE:
		break;
	}
	if (only_cached) {
		cache_ref_release(e->cache, ref);
		buf_free(&sk);
		return respond_only_if_cached(r);
	}
	/* Revalidate (a conditional request from the stored validators, or
	 * its Date); what upstream needs to decide whether this copy may
	 * stand in if the origin fails (freshness_stale_on_error). */
	r->pc.has_stale = true;
	r->pc.stale = (struct stale_err){
		.sie = v.meta.sie,
		.no_cache = (v.meta.flags & ENTRY_F_NO_CACHE) != 0,
		.must_revalidate = mustrv,
		.req_no_cache = rqp && rq.no_cache,
	};
	r->pc.stale_since = now - (age - v.meta.lifetime);
	r->pc.fwd = use == VALIDATE_REQUEST ? FWD_REQUEST : FWD_STALE;
	ret = to_origin(r, &st);
	cache_ref_release(e->cache, ref); /* st was copied by proxy_start */
	buf_free(&sk);
	return ret;
}

/* ---------- request validation ---------- */

/* One pass over the request headers finds everything validation needs
 * (values borrowed from MHD for the request). */
struct hdr_scan {
	int content_length, transfer_encoding, host;
	bool cl_conflict;
	const char *first_cl, *te, *host_value, *authorization;
	struct plan_req *cond;           /* the first of each, as a lookup would find */
};

/* If-None-Match, If-Modified-Since, If-Range, Range: kept for respond_plan,
 * so a hit looks none of them up again. */
static void scan_cond(struct plan_req *q, const char *key, const char *value)
{
	if (key[0] == 'r' || key[0] == 'R') {
		if (!q->range && !strcasecmp(key, "Range"))
			q->range = value;
	} else if (!strncasecmp(key, "If-", 3)) {
		const char *k = key + 3;
		if (!q->if_none_match && !strcasecmp(k, "None-Match"))
			q->if_none_match = value;
		else if (!q->if_modified_since && !strcasecmp(k, "Modified-Since"))
			q->if_modified_since = value;
		else if (!q->if_range && !strcasecmp(k, "Range"))
			q->if_range = value;
	}
}

static enum MHD_Result scan_hdr(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct hdr_scan *s = cls;
	/* Most headers are none of these: one byte tells. */
	int c = key[0] | 0x20;
	if (c == 'i' || c == 'r') {
		scan_cond(s->cond, key, value);
		return MHD_YES;
	}
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
	/* RFC 9112 framing first: a head two parsers could read two ways is
	 * refused (400, 501 for an unknown coding) and its connection closed. */
	enum reqcheck_reason rw = httpd_strict_check(r->conn, r->method, version, r->uri_why);
	if (rw) {
		atomic_fetch_add(&e->rejected[rw], 1);
		*why = reqcheck_name(rw);
		return reqcheck_status(rw);
	}
	struct hdr_scan s = { .cond = &r->cond };
	r->cond.head = r->is_head;
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
		host = addr_format(&r->lst->addr, defhost, sizeof defhost);
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

/* Node endpoints and the control API (control.c). */
static bool is_control(const struct edge_req *r)
{
	const char *p = r->path.data;
	return (p[1] == 'h' && !strcmp(p, "/healthz")) || (p[1] == 'm' && !strcmp(p, "/metrics")) ||
	       (p[1] == '.' && !strncmp(p, "/.minicdn/", 10));
}

/* 308 to the same URL over HTTPS (the first HTTPS listener's port). */
static enum MHD_Result redirect_https(struct edge_req *r)
{
	const struct edge_config *c = &r->edge->cfg;
	const char *h = r->host.data;
	size_t hl = h[0] == '[' ? (size_t)(strchr(h, ']') + 1 - h) : strcspn(h, ":");
	unsigned port = c->nhttps ? addr_port(&c->https_addr[0]) : 443;
	struct buf loc = BUF_INIT;
	buf_printf(&loc, "https://%.*s", (int)hl, h);
	if (port != 443)
		buf_printf(&loc, ":%u", port);
	buf_puts(&loc, r->path.data);
	enum MHD_Result ret = respond_redirect(r, 308, loc.data);
	buf_free(&loc);
	return ret;
}

/* Which site serves r: NULL (answered 421) when none has its Host. */
static const struct edge_site *pick_site(struct edge_req *r)
{
	const struct edge_config *lc = edge_live(r->edge);
	const struct edge_site *def = site_by_name(lc->sites, lc->nsites, lc->default_site);
	return site_find(lc->sites, lc->nsites, r->host.data, def);
}

static enum MHD_Result dispatch(struct edge_req *r)
{
	struct edge *e = r->edge;
	/* 1. Node endpoints and control API; on a listener of its own, the
	 * control API is served there only. */
	const char *p = r->path.data;
	bool node = (p[1] == 'h' && !strcmp(p, "/healthz")) || (p[1] == 'm' && !strcmp(p, "/metrics"));
	bool ctl = p[1] == '.' && !strncmp(p, "/.minicdn/", 10);
	if (r->lst->control || node || (ctl && !e->cfg.control_listen))
		return (node || ctl) ? control_handle(r) : respond_error(r, 404, "control listener");
	if (ctl)
		return respond_error(r, 404, "the control API listens on its own address");

	/* 2. The site: its origin, cache scope and settings. */
	if (r->state != RS_SCRIPT) {
		r->site = pick_site(r);
		if (!r->site) {
			counters_add(&e->n, C_MISDIRECTED, 1);
			return respond_error(r, 421, "no site here has this host");
		}
		counters_add(&e->site_n[r->site->idx], C_REQUESTS, 1);
		if (r->site->redirect_http && !r->lst->tls)
			return redirect_https(r);
	}

	/* 3. Script hook: a matching script answers or declines. */
	enum MHD_Result sret;
	if (r->state == RS_SCRIPT ? script_http_resume(r, &sret)
	                          : script_any(r->edge->scripts) && script_http_step(r, &sret))
		return sret;

	/* 4. Cache. */
	if (r->is_get || r->is_head)
		return cache_step(r);

	/* 5. Origin: everything else passes through (unsafe methods invalidate). */
	r->pc.fwd = FWD_METHOD;
	counters_add(&e->n, C_PASSES, 1);
	return to_origin(r, NULL);
}

/* ---------- request bodies ---------- */

/* Counts n more bytes of request body in memory; false when all bodies
 * together would pass limits.bodies_memory. */
static bool hold_body(struct edge_req *r, size_t n)
{
	struct edge *e = r->edge;
	long long held = atomic_fetch_add(&e->body_bytes, (long long)n) + (long long)n;
	r->body_held += n;
	return (uint64_t)held <= e->cfg.limits.bodies_memory;
}

/* A body bound for the origin goes there as it arrives, through a window
 * (FETCH_UPLOAD_WINDOW) counted against limits.bodies_memory; r->site is
 * picked here as dispatch would.  Bodies the edge reads itself are
 * collected whole (bounded by limits.max_body): the control API's, and
 * those a script's route matches, since a script gets the whole body and
 * whether it answers is known only once it ran.  A push between this
 * choice and the dispatch leaves a streamed request on the origin path. */
static bool streams_body(struct edge_req *r, const char *cl, bool chunked)
{
	if (r->is_get || r->is_head || (!chunked && (!cl || !strtoull(cl, NULL, 10))))
		return false;
	if (is_control(r) || r->lst->control)
		return false;
	/* No site (421) or a redirect to HTTPS: dispatch answers those. */
	const struct edge_site *site = pick_site(r);
	if (!site || (site->redirect_http && !r->lst->tls))
		return false;
	if (script_any(r->edge->scripts)) {
		const char *q = strchr(r->path.data, '?');
		struct script_req sr = {
			.method = r->method,
			.host = r->host.len ? r->host.data : NULL,
			.site = site->name,
			.path = r->path.data,
			.path_len = q ? (size_t)(q - r->path.data) : r->path.len,
		};
		if (script_routes_match(r->edge->scripts, &sr))
			return false;
	}
	r->site = site;
	return true;
}

/* The head is in: sends the request to the origin, the body to follow. */
static enum MHD_Result stream_start(struct edge_req *r, const char *cl, bool chunked)
{
	uint64_t len = chunked ? 0 : strtoull(cl, NULL, 10);
	size_t win = chunked || len > FETCH_UPLOAD_WINDOW ? FETCH_UPLOAD_WINDOW : (size_t)len;
	if (!hold_body(r, win)) {
		r->state = RS_DONE;
		return respond_error(r, 503, "too many request bodies in memory; retry later");
	}
	r->state = RS_STREAM;
	r->pc.fwd = FWD_METHOD;
	counters_add(&r->edge->site_n[r->site->idx], C_REQUESTS, 1);
	counters_add(&r->edge->n, C_PASSES, 1);
	proxy_upload_start(edge_req_call(r), chunked ? -1 : (int64_t)len);
	return MHD_YES;
}

/* Body bytes of a streamed request, and its end (*upload_size 0). */
static enum MHD_Result stream_body(struct edge_req *r, const char *upload, size_t *upload_size)
{
	struct proxy_answer a;
	size_t n = *upload_size;
	if (!n) {
		conns_phase(r->conn, CONN_BUSY);
		if (r->upload_over)
			proxy_resume(&r->pc, &a);
		else
			proxy_upload_end(&r->pc, &a);
		return respond_answer(r, &a);
	}
	if (r->body_streamed + n > edge_live(r->edge)->limits.max_body) {
		/* Chunked past the limit: the origin's transfer is aborted when
		 * the request completes (proxy_release). */
		r->state = RS_DONE;
		return respond_error(r, 413, "request body too large");
	}
	size_t taken = n;
	if (!r->upload_over && !proxy_upload_put(&r->pc, upload, n, &taken)) {
		/* The origin answered (or failed: 502) before the body ended.  The
		 * rest is read and dropped (within max_body and the body deadline)
		 * before that answer: a client that is still sending would lose a
		 * response written before it reads, to the reset of a closed socket. */
		r->upload_over = true;
		taken = n;
	}
	/* Fewer than n taken: suspended until the origin has read more. */
	*upload_size -= taken;
	r->body_streamed += taken;
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
	const struct front_listener *l = cls;
	struct edge *e = l->edge;
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
		/* Safe methods are GET, HEAD, OPTIONS and TRACE (RFC 9110 9.2.1);
		 * every other one, extension methods included, is unsafe and
		 * invalidates the target on success (RFC 9111 4.4). */
		r->is_unsafe = !r->is_get && !r->is_head && strcmp(method, "OPTIONS") &&
		               strcmp(method, "TRACE");
		const char *why = NULL;
		unsigned st = validate(r, version, &why);
		if (st) {
			counters_add(&e->n, C_BAD_REQUESTS, 1);
			r->state = RS_DONE;
			log_debug("http", "refused %s: %s", r->target, why);
			return respond_error(r, st, why);
		}
		if (!strcmp(method, "CONNECT")) {
			/* A reverse proxy makes no tunnels. */
			r->state = RS_DONE;
			return respond_error(r, 501, "method not implemented");
		}
		/* A declared length over the limit is refused now, before MHD
		 * sends "100 Continue" or reads a byte of it. */
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
		if (cl && strtoull(cl, NULL, 10) > edge_live(e)->limits.max_body) {
			r->state = RS_DONE;
			return respond_error(r, 413, "request body too large");
		}
		/* From here the head deadline is over: a body has its own, an
		 * answer (a slow miss, a waiting script) none. */
		conns_phase(conn, r->is_get || r->is_head ? CONN_BUSY : CONN_BODY);
		bool chunked = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding");
		if (streams_body(r, cl, chunked))
			return stream_start(r, cl, chunked);
		/* Answer on the next call, not this first one: MHD 0.9.7x closes
		 * the connection when a response is queued before it has looked
		 * for a request body. */
		r->state = (r->is_get || r->is_head) ? RS_READY : RS_BODY;
		return MHD_YES;
	}
	if (r->state == RS_BODY) {
		if (*upload_size) {
			size_t n = *upload_size;
			*upload_size = 0;
			if (r->body.len + n > edge_live(e)->limits.max_body) {
				/* Chunked past the limit: answered now, the rest unread. */
				r->state = RS_DONE;
				return respond_error(r, 413, "request body too large");
			}
			/* Bodies the edge reads are held whole: all of them
			 * together stay under limits.bodies_memory. */
			if (!hold_body(r, n)) {
				r->state = RS_DONE;
				return respond_error(r, 503, "too many request bodies in memory; retry later");
			}
			buf_append(&r->body, upload, n);
			return MHD_YES;
		}
		r->state = RS_READY;
		conns_phase(conn, CONN_BUSY);
	}
	if (r->state == RS_STREAM)
		return stream_body(r, upload, upload_size);
	if (r->state == RS_READY) {
		r->state = RS_DONE;
		return dispatch(r);
	}
	if (r->state == RS_WAIT) {
		struct proxy_answer a;
		if (r->pc.sliced)
			slicer_resume(&r->pc, &a);
		else
			proxy_resume(&r->pc, &a);
		return respond_answer(r, &a);
	}
	if (r->state == RS_SCRIPT)
		return dispatch(r);
	return MHD_YES;
}

/* MHD hands us the raw request-target here, before it percent-decodes the
 * path and splits the query: the cache key is built from these bytes. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	const struct front_listener *l = cls;
	struct edge *e = l->edge;
	/* One allocation for the request and its target (freed together). */
	size_t n = uri ? strlen(uri) : 0;
	struct edge_req *r = xcalloc(1, sizeof *r + n + 1);
	r->edge = e;
	r->lst = l;
	r->conn = conn;
	r->target = memcpy((char *)(r + 1), uri ? uri : "", n);
	r->log_bytes = -1;
	/* The raw pointer, not the copy: the check reads what follows it in
	 * MHD's buffer (httpd_strict.h). */
	r->uri_why = httpd_strict_uri(uri ? uri : "");
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
		.site = r->site ? r->site->name : "-",
		.aborted = toe != MHD_REQUEST_TERMINATED_COMPLETED_OK,
	};
	accesslog_request(e->alog, &en);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	const struct front_listener *l = cls;
	struct edge *e = l->edge;
	struct edge_req *r = *con_cls;
	if (!r)
		return;
	if (e->alog && r->method)
		access_line(e, r, toe);
	/* libmicrohttpd answered 400 itself before the handler saw the head
	 * (e.g. "Content-Length: 5,50"): counted with the strict refusals. */
	if (!r->method && toe == MHD_REQUEST_TERMINATED_WITH_ERROR)
		atomic_fetch_add(&e->rejected[REQCHECK_PARSE], 1);
	script_http_release(r);
	proxy_release(&r->pc);
	if (r->body_held)
		atomic_fetch_sub(&e->body_bytes, (long long)r->body_held);
	conns_phase(conn, CONN_HEAD); /* a kept-alive connection waits for its next head */
	buf_free(&r->path);
	buf_free(&r->host);
	buf_free(&r->key);
	buf_free(&r->body);
	free(r); /* and its target */
	*con_cls = NULL;
	counters_add(&e->n, C_INFLIGHT, -1);
}

/* ---------- listeners ---------- */

/* Connection opened or closed: the TLS session's set-up on HTTPS
 * listeners, then the connection deadlines (conns.c). */
static void on_conn(void *cls, struct MHD_Connection *c, void **socket_context,
                    enum MHD_ConnectionNotificationCode code)
{
	const struct front_listener *l = cls;
	if (l->tls)
		httpd_tls_notify(l->edge->tls, c, code);
	conns_notify(l->edge->conns, c, socket_context, code);
}

struct http_front {
	size_t n;
	struct front_listener l[2 * EDGE_MAX_LISTEN + 1];
};

static int listen_on(struct edge *e, struct front_listener *l, const struct addr *a, bool tls,
                     bool control, char *err, size_t errlen)
{
	*l = (struct front_listener){ .edge = e, .addr = *a, .tls = tls, .control = control };
	struct httpd_opts o = {
		.listen = a,
		.threads = control ? 1 : (unsigned)e->cfg.threads,
		.extra_flags = MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC,
		.conn_timeout_s = 60,
		.handler = on_request,
		.handler_cls = l,
		.completed = on_completed,
		.completed_cls = l,
		.uri_log = on_uri,
		.uri_log_cls = l,
		.conn_memory_limit = (size_t)e->cfg.limits.max_header_size,
		.tls = tls ? e->tls : NULL,
		.conn_limit = (unsigned)e->cfg.limits.max_connections,
		.per_ip_limit = (unsigned)e->cfg.limits.max_connections_per_client,
		.notify_conn = on_conn,
		.notify_conn_cls = l,
	};
	l->d = httpd_start(&o, err, errlen);
	return l->d ? 0 : -1;
}

struct http_front *http_start(struct edge *e, char *err, size_t errlen)
{
	const struct edge_config *c = &e->cfg;
	struct http_front *h = xcalloc(1, sizeof *h);
	for (size_t i = 0; i < c->nhttp; i++)
		if (listen_on(e, &h->l[h->n++], &c->http_addr[i], false, false, err, errlen) < 0)
			goto fail;
	for (size_t i = 0; i < c->nhttps; i++)
		if (listen_on(e, &h->l[h->n++], &c->https_addr[i], true, false, err, errlen) < 0)
			goto fail;
	if (c->control_listen &&
	    listen_on(e, &h->l[h->n++], &c->control_addr, c->control_tls, true, err, errlen) < 0)
		goto fail;
	return h;
fail:
	h->n--; /* the one that failed has no daemon */
	http_stop(h);
	return NULL;
}

void http_quiesce(struct http_front *h)
{
	for (size_t i = 0; h && i < h->n; i++)
		MHD_quiesce_daemon(h->l[i].d);
}

void http_stop(struct http_front *h)
{
	for (size_t i = 0; h && i < h->n; i++)
		MHD_stop_daemon(h->l[i].d);
	free(h);
}
