/* script_http.c -- the script hook in the edge's dispatch and the bundle control endpoint */
#include "edge/front/script_http.h"
#include "edge/front/respond.h"
#include "edge/cache/cache.h"
#include "edge/cache/entry.h"
#include "edge/cache/freshness.h"
#include "edge/upstream/headers.h"
#include "edge/upstream/proxy.h"
#include "common/hdrlist.h"
#include "common/httpdate.h"
#include "edge/script/script.h"
#include "common/httpd.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <limits.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *hdr_get(void *ctx, const char *name)
{
	return edge_req_header(ctx, name);
}

static void hdr_each(void *ctx, void (*cb)(void *, const char *, const char *), void *arg)
{
	edge_req_each_header(ctx, cb, arg);
}

/* A fresh cached copy of this URL exists (stored from an earlier script run). */
static bool cached_fresh(struct edge_req *r)
{
	struct cache_ref *ref = NULL;
	struct entry_view v;
	if (cache_lookup(r->edge->cache, edge_req_key(r), hdr_get, r, &ref, &v, NULL) != CACHE_HIT)
		return false;
	bool fresh = (int64_t)time(NULL) < v.meta.response_time + v.meta.lifetime &&
	             !(v.meta.flags & ENTRY_F_NO_CACHE);
	cache_ref_release(r->edge->cache, ref);
	return fresh;
}

static bool store(struct edge_req *r, const struct script_resp *sr)
{
	struct buf h = BUF_INIT;
	for (size_t i = 0; i < sr->nheaders; i++) {
		buf_append(&h, sr->headers[i].name, strlen(sr->headers[i].name) + 1);
		buf_append(&h, sr->headers[i].value, strlen(sr->headers[i].value) + 1);
	}
	int64_t now = (int64_t)time(NULL);
	struct entry_meta m = { .status = (unsigned)sr->status, .request_time = now, .response_time = now,
		                .date = now, .lifetime = sr->cache_ttl, .swr = -1, .sie = -1,
		                .purge_seq = r->purge_seq };
	int rc = cache_store(r->edge->cache, edge_req_key(r), NULL, hdr_get, r, &m, h.data ? h.data : "", h.len,
	                     NULL, 0, sr->body, sr->body_len);
	buf_free(&h);
	if (rc == 0) {
		atomic_store(&r->edge->scripts_cached, 1);
		counters_add(&r->edge->n, C_STORED, 1);
	}
	return rc == 0;
}

/* ---------- cache subrequests (fetch{from = "cache"}) ---------- */

static int sub_key(struct edge_req *r, const char *path, struct buf *key)
{
	const struct edge_config *c = &r->edge->cfg;
	return cachekey_build(path, r->host.data, c->query_rules, c->nquery_rules, key, NULL, NULL);
}

static int sub_get(void *ctx, const char *path, const char *(*hdr)(void *, const char *), void *cls,
                   size_t max_body, int *status, struct buf *hdrs, struct buf *body)
{
	struct edge_req *r = ctx;
	struct edge *e = r->edge;
	struct buf key = BUF_INIT, sk = BUF_INIT;
	struct cache_ref *ref = NULL;
	struct entry_view v;
	int rc = 0;
	if (sub_key(r, path, &key) < 0 ||
	    cache_lookup(e->cache, key.data, hdr, cls, &ref, &v, &sk) != CACHE_HIT)
		goto out;
	int64_t now = (int64_t)time(NULL);
	int64_t age = freshness_age(v.meta.date, v.meta.age_value, v.meta.request_time,
	                            v.meta.response_time, now);
	if (age >= v.meta.lifetime || (v.meta.flags & ENTRY_F_NO_CACHE))
		goto out; /* stale: the caller refetches (and restores) it */
	if (v.body_len > max_body) {
		rc = -1;
		goto out;
	}
	/* Copied: the entry's bytes are only valid until the read txn ends. */
	size_t pos = 0;
	struct entry_header eh;
	while (entry_next_header(&v, &pos, &eh)) {
		if (plan_private_header(eh.name))
			continue;
		buf_append(hdrs, eh.name, strlen(eh.name) + 1);
		buf_append(hdrs, eh.value, strlen(eh.value) + 1);
	}
	char agebuf[24];
	snprintf(agebuf, sizeof agebuf, "%lld", (long long)(age < 0 ? 0 : age));
	buf_append(hdrs, "Age", 4);
	buf_append(hdrs, agebuf, strlen(agebuf) + 1);
	buf_append(body, v.body, (size_t)v.body_len);
	*status = (int)v.meta.status;
	counters_add(&e->n, C_HITS, 1);
	cache_touch(e->cache, sk.data);
	rc = 1;
out:
	if (ref)
		cache_ref_release(e->cache, ref);
	if (rc == 0)
		counters_add(&e->n, C_MISSES, 1);
	buf_free(&key);
	buf_free(&sk);
	return rc;
}

static int sub_put(void *ctx, const char *path, const char *(*hdr)(void *, const char *), void *cls,
                   int status, const struct buf *rh, const char *body, size_t body_len,
                   int64_t request_time, int64_t response_time)
{
	struct edge_req *r = ctx;
	struct edge *e = r->edge;
	counters_add(&e->n, C_ORIGIN_FETCHES, 1);
	if (status <= 0 || body_len > edge_live(e)->cache.max_object_size)
		return 0;
	struct fresh_in in;
	struct fresh_fields ff = { 0 };
	proxy_fresh_in(&in, &ff, e, (unsigned)status, rh, request_time, response_time);
	in.method = "GET";
	in.req_authorization = hdr(cls, "Authorization") != NULL;
	in.req_cache_control = hdr(cls, "Cache-Control");
	struct fresh_out fo;
	freshness_evaluate(&in, &fo);
	struct buf key = BUF_INIT, hdrs = BUF_INIT, tags = BUF_INIT;
	int rc = 0;
	if (!fo.storable)
		goto out;
	struct entry_meta m = {
		.status = (unsigned)status,
		.request_time = request_time,
		.response_time = response_time,
		.date = fo.date,
		.age_value = fo.age_value,
		.lifetime = (int32_t)(fo.lifetime > INT32_MAX ? INT32_MAX : fo.lifetime),
		.swr = (int32_t)(fo.swr > INT32_MAX ? INT32_MAX : fo.swr),
		.sie = (int32_t)(fo.sie > INT32_MAX ? INT32_MAX : fo.sie),
		.purge_seq = r->purge_seq, /* taken before the script sent it: conservative */
	};
	if (fo.must_revalidate)
		m.flags |= ENTRY_F_MUST_REVALIDATE;
	if (fo.no_cache)
		m.flags |= ENTRY_F_NO_CACHE;
	if (fo.source == FRESH_HEURISTIC)
		m.flags |= ENTRY_F_HEURISTIC;
	if (sub_key(r, path, &key) < 0)
		goto out;
	headers_filter(rh, &hdrs, &tags);
	if (!hdrlist_get(&hdrs, "Date")) {
		char d[HTTPDATE_LEN];
		httpdate_format((time_t)response_time, d);
		buf_append(&hdrs, "Date", 5);
		buf_append(&hdrs, d, strlen(d) + 1);
	}
	if (cache_store(e->cache, key.data, in.vary, hdr, cls, &m, hdrs.data ? hdrs.data : "", hdrs.len,
	                tags.data ? tags.data : "", tags.len, body, body_len) == 0) {
		counters_add(&e->n, C_STORED, 1);
		rc = 1;
	}
out:
	buf_free(&key);
	buf_free(&hdrs);
	buf_free(&tags);
	proxy_fresh_fields_free(&ff);
	return rc;
}

static const char *sub_host(void *ctx)
{
	return ((struct edge_req *)ctx)->host.data;
}

static const struct script_cache_ops sub_ops = { sub_get, sub_put, sub_host };

/* ---------- the dispatch step ---------- */

static void fmt_u64(char *out, uint64_t v)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*out++ = tmp[--n];
	*out = 0;
}

/* ---------- waiting for origin subrequests ---------- */

/* On the worker thread, before the subrequest starts. */
static void sub_suspend(void *ctx)
{
	struct edge_req *r = ctx;
	MHD_suspend_connection(r->conn);
}

/* In the fetcher's thread when the subrequest is over (under its lock, so
 * it runs before script_http_release can remove the waiter, or not at all). */
static void sub_wake(void *ctx)
{
	struct edge_req *r = ctx;
	MHD_resume_connection(r->conn);
}

/* Queues the script's response (and stores it when marked cacheable). */
static enum MHD_Result respond(struct edge_req *r, struct script_resp *resp);

bool script_http_resume(struct edge_req *r, enum MHD_Result *ret)
{
	struct script_resp resp;
	enum script_result res = script_resume(r->script, &resp);
	if (res == SCRIPT_WAIT) {
		*ret = MHD_YES;
		return true;
	}
	r->script = NULL;
	r->state = RS_DONE;
	if (res == SCRIPT_PASS)
		return false;
	*ret = respond(r, &resp);
	return true;
}

void script_http_release(struct edge_req *r)
{
	if (r->script) {
		script_abort(r->script);
		r->script = NULL;
	}
}

bool script_http_step(struct edge_req *r, enum MHD_Result *ret)
{
	const char *q = strchr(r->path.data, '?');
	struct script_req sr = {
		.method = r->method,
		.host = r->host.len ? r->host.data : NULL,
		.path = r->path.data,
		.path_len = q ? (size_t)(q - r->path.data) : r->path.len,
		.query = q ? q + 1 : NULL,
		.client = r->client,
		.body = r->body.data,
		.body_len = r->body.len,
		.header = hdr_get,
		.headers_each = hdr_each,
		.ctx = r,
		.cache = r->edge->cache ? &sub_ops : NULL,
		.fetcher = r->edge->fetcher,
		.suspend = sub_suspend,
		.wake = sub_wake,
	};
	if ((r->is_get || r->is_head) &&
	    atomic_load_explicit(&r->edge->scripts_cached, memory_order_relaxed) &&
	    cached_fresh(r))
		return false;
	struct script_resp resp;
	struct script_task *task;
	/* Whatever the script stores (its response, its subrequests') was made
	 * from what it saw from now on: a purge after this point wins. */
	r->purge_seq = r->edge->cache ? cache_purge_seq(r->edge->cache) : 0;
	enum script_result res = script_handle(r->edge->scripts, &sr, &resp, &task);
	if (res == SCRIPT_PASS)
		return false;
	if (res == SCRIPT_WAIT) {
		/* Suspended (sub_suspend); MHD calls us again after sub_wake. */
		r->script = task;
		r->state = RS_SCRIPT;
		*ret = MHD_YES;
		return true;
	}
	*ret = respond(r, &resp);
	return true;
}

static enum MHD_Result respond(struct edge_req *r, struct script_resp *resp)
{
	bool stored = false;
	if (resp->cache_ttl > 0 && r->is_get && resp->status == 200)
		stored = store(r, resp);
	struct MHD_Response *mr;
	if (r->is_head) {
		mr = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	} else {
		/* The body is handed to MHD, which frees it. */
		mr = MHD_create_response_from_buffer(resp->body_len, resp->body ? resp->body : (char *)"",
		                                     resp->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
		if (mr)
			resp->body = NULL;
	}
	if (!mr) {
		script_resp_free(resp);
		return MHD_NO;
	}
	for (size_t i = 0; i < resp->nheaders; i++)
		if (!headers_hop_by_hop(resp->headers[i].name, NULL) &&
		    strcasecmp(resp->headers[i].name, "Content-Length") != 0)
			MHD_add_response_header(mr, resp->headers[i].name, resp->headers[i].value);
	char tag[BUNDLE_MAX_NAME + 32];
	size_t nl = strnlen(resp->script, BUNDLE_MAX_NAME);
	memcpy(tag, resp->script, nl);
	tag[nl] = '/';
	fmt_u64(tag + nl + 1, resp->version);
	MHD_add_response_header(mr, "X-Edge-Script", tag);
	/* Cache-Status (RFC 9211) says how the cache handled a response: only
	 * when it stored this one.  An unstored script response never went
	 * through the cache, and X-Edge-Script already names what made it.  No
	 * Via either way: the edge generated it, it forwarded nothing (RFC 9110
	 * 7.6.3). */
	r->log_bytes = r->is_head ? 0 : (int64_t)resp->body_len;
	if (stored)
		respond_add_cache_status(r, mr, &(struct cache_status){ .stored = true,
		                                                        .ttl = resp->cache_ttl,
		                                                        .detail = "script" });
	r->log_result = "script"; /* not the cache's word for it */
	enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)resp->status, mr);
	MHD_destroy_response(mr);
	script_resp_free(resp);
	return ret;
}

enum MHD_Result script_http_control(struct edge_req *r)
{
	struct buf out = BUF_INIT;
	const char *q = strchr(r->path.data, '?');
	char path[512];
	snprintf(path, sizeof path, "%.*s", (int)(q ? q - r->path.data : (long)r->path.len), r->path.data);
	int st = script_control(r->edge->scripts, r->method, path, r->body.data ? r->body.data : "",
	                        r->body.len, &out);
	enum MHD_Result ret = httpd_reply_json(r->conn, (unsigned)st, &out);
	buf_free(&out);
	return ret;
}
