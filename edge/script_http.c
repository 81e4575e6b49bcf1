/* script_http.c -- the script hook in the edge's dispatch and the bundle control endpoint */
#include "edge/script_http.h"
#include "edge/cache.h"
#include "edge/entry.h"
#include "edge/script.h"
#include "common/httpd.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <limits.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Set once a script response was stored in the cache: from then on script
 * routes first look for a fresh cached copy (one LMDB lookup), before that
 * they do not pay for it. */
static atomic_int any_cached;

static const char *hdr_get(void *ctx, const char *name)
{
	return edge_req_header(ctx, name);
}

struct each_ctx {
	void (*cb)(void *, const char *, const char *);
	void *arg;
};

static enum MHD_Result each_tramp(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct each_ctx *c = cls;
	c->cb(c->arg, key, value ? value : "");
	return MHD_YES;
}

static void hdr_each(void *ctx, void (*cb)(void *, const char *, const char *), void *arg)
{
	struct edge_req *r = ctx;
	struct each_ctx c = { cb, arg };
	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, each_tramp, &c);
}

/* A fresh cached copy of this URL exists (stored from an earlier script run). */
static bool cached_fresh(struct edge_req *r)
{
	struct cache_ref *ref = NULL;
	struct entry_view v;
	if (cache_lookup(r->edge->cache, r->key.data, hdr_get, r, &ref, &v, NULL) != CACHE_HIT)
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
		                .date = now, .lifetime = sr->cache_ttl, .swr = -1, .sie = -1 };
	int rc = cache_store(r->edge->cache, r->key.data, NULL, hdr_get, r, &m, h.data ? h.data : "", h.len,
	                     NULL, 0, sr->body, sr->body_len);
	buf_free(&h);
	if (rc == 0) {
		atomic_store(&any_cached, 1);
		r->edge->n.stored++;
	}
	return rc == 0;
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
	};
	if ((r->is_get || r->is_head) && atomic_load_explicit(&any_cached, memory_order_relaxed) &&
	    cached_fresh(r))
		return false;
	struct script_resp resp;
	if (script_handle(&sr, &resp) == SCRIPT_PASS)
		return false;
	bool stored = false;
	if (resp.cache_ttl > 0 && r->is_get && resp.status == 200)
		stored = store(r, &resp);
	struct MHD_Response *mr;
	if (r->is_head) {
		mr = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	} else {
		/* The body is handed to MHD, which frees it. */
		mr = MHD_create_response_from_buffer(resp.body_len, resp.body ? resp.body : (char *)"",
		                                     resp.body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
		if (mr)
			resp.body = NULL;
	}
	if (!mr) {
		script_resp_free(&resp);
		*ret = MHD_NO;
		return true;
	}
	for (size_t i = 0; i < resp.nheaders; i++)
		if (!http_hop_by_hop(resp.headers[i].name, NULL) &&
		    strcasecmp(resp.headers[i].name, "Content-Length") != 0)
			MHD_add_response_header(mr, resp.headers[i].name, resp.headers[i].value);
	char tag[BUNDLE_MAX_NAME + 32];
	snprintf(tag, sizeof tag, "%s/%llu", resp.script, (unsigned long long)resp.version);
	MHD_add_response_header(mr, "X-Edge-Script", tag);
	http_add_cache_status(r, mr, false, FWD_NONE, 0, stored, stored ? resp.cache_ttl : LONG_MIN, "script");
	*ret = MHD_queue_response(r->conn, (unsigned)resp.status, mr);
	MHD_destroy_response(mr);
	script_resp_free(&resp);
	return true;
}

enum MHD_Result script_http_control(struct edge_req *r)
{
	struct buf out = BUF_INIT;
	const char *q = strchr(r->path.data, '?');
	char path[512];
	snprintf(path, sizeof path, "%.*s", (int)(q ? q - r->path.data : (long)r->path.len), r->path.data);
	int st = script_control(r->method, path, r->body.data ? r->body.data : "", r->body.len, &out);
	enum MHD_Result ret = httpd_reply_json(r->conn, (unsigned)st, &out);
	buf_free(&out);
	return ret;
}
