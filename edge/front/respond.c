/* respond.c -- MHD responses for entries, origin streams and errors
 *
 * Both a hit (respond_entry) and a miss (respond_stream) ask respond_plan
 * how to serve; this file only builds what the plan says.  The hit path is
 * the edge's hottest code: no printf on it, one pass over the stored
 * headers, the body handed to MHD from the map without a copy. */
#include "edge/front/respond.h"
#include "edge/cache/freshness.h"
#include "edge/upstream/slicer.h"
#include "edge/upstream/stream.h"
#include "common/hdrlist.h"
#include "common/xmalloc.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define STREAM_BLOCK (64 * 1024)

/* ---------- Cache-Status, Via ---------- */

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
void respond_add_cache_status(struct edge_req *r, struct MHD_Response *resp,
                              const struct cache_status *c)
{
	static const char *const fwds[] = { "",     "uri-miss", "vary-miss", "stale",
		                            "method", "miss",     "request" };
	const char *name = r->edge->cfg.name;
	r->log_result = c->hit ? (c->fwd == FWD_STALE ? "stale" : "hit")
	                       : c->fwd != FWD_NONE ? fwds[c->fwd] : NULL;
	char cs[256];
	size_t n = 0;
	put(cs, sizeof cs, &n, name, strlen(name));
	if (c->hit)
		PUT_LIT(cs, &n, "; hit");
	if (c->fwd != FWD_NONE) {
		PUT_LIT(cs, &n, "; fwd=");
		put(cs, sizeof cs, &n, fwds[c->fwd], strlen(fwds[c->fwd]));
	}
	if (c->fwd_status) {
		PUT_LIT(cs, &n, "; fwd-status=");
		put_num(cs, sizeof cs, &n, c->fwd_status);
	}
	if (c->stored)
		PUT_LIT(cs, &n, "; stored");
	if (c->ttl != LONG_MIN) {
		PUT_LIT(cs, &n, "; ttl=");
		put_num(cs, sizeof cs, &n, c->ttl);
	}
	if (c->detail && !strcmp(c->detail, "collapsed")) {
		PUT_LIT(cs, &n, "; collapsed");
	} else if (c->detail) {
		PUT_LIT(cs, &n, "; detail=");
		put(cs, sizeof cs, &n, c->detail, strlen(c->detail));
	}
	cs[n] = '\0';
	MHD_add_response_header(resp, "Cache-Status", cs);
}

void respond_add_site(struct edge_req *r, struct MHD_Response *resp)
{
	/* RFC 6797 7.2: never over plain HTTP. */
	if (r->site && r->site->hsts && r->lst->tls)
		MHD_add_response_header(resp, "Strict-Transport-Security", r->site->hsts);
}

void respond_add_via(struct edge_req *r, struct MHD_Response *resp)
{
	respond_add_site(r, resp);
	const char *name = r->edge->cfg.name;
	char via[160];
	size_t n = 0;
	PUT_LIT(via, &n, "1.1 ");
	put(via, sizeof via, &n, name, strlen(name));
	PUT_LIT(via, &n, " (minicdn)");
	via[n] = '\0';
	MHD_add_response_header(resp, "Via", via);
}

static void add_age(struct MHD_Response *resp, int64_t age)
{
	char agebuf[24];
	size_t n = 0;
	put_num(agebuf, sizeof agebuf, &n, age);
	agebuf[n] = '\0';
	MHD_add_response_header(resp, "Age", agebuf);
}

/* ---------- errors ---------- */

enum MHD_Result respond_error(struct edge_req *r, unsigned status, const char *msg)
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
	respond_add_cache_status(r, resp, &(struct cache_status){ .fwd = r->pc.fwd, .ttl = LONG_MIN });
	/* Refused heads and bodies left unread: the connection cannot carry
	 * another request safely. */
	if (status == 400 || status == 413 || status == 414 || status == 431 || status == 501 ||
	    status == 503 || r->upload_over)
		MHD_add_response_header(resp, "Connection", "close");
	respond_add_site(r, resp);
	enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

enum MHD_Result respond_redirect(struct edge_req *r, unsigned status, const char *location)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	r->log_bytes = 0;
	r->log_result = "redirect";
	MHD_add_response_header(resp, "Location", location);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

enum MHD_Result respond_only_if_cached(struct edge_req *r)
{
	static const char msg[] = "{\"error\":\"only-if-cached: not in the cache\"}\n";
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(sizeof msg - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", "application/json");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	r->pc.fwd = FWD_NONE;
	respond_add_cache_status(r, resp, &(struct cache_status){ .ttl = LONG_MIN,
		                                                  .detail = "only-if-cached" });
	enum MHD_Result ret = MHD_queue_response(r->conn, 504, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* ---------- stored entries ---------- */

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

/* "multipart/byteranges; boundary=B" into ctype, B fresh. */
static void multipart_type(char ctype[96], char boundary[33], const void *seed)
{
	range_boundary(boundary, (uint64_t)(uintptr_t)seed);
	size_t n = 0;
	char *out = ctype;
	put(out, 96, &n, "multipart/byteranges; boundary=", 31);
	put(out, 96, &n, boundary, strlen(boundary));
	ctype[n] = '\0';
}

/* The headers the edge's own range handling adds under p (ctype: the
 * multipart Content-Type, "" for none). */
static void add_range_headers(struct MHD_Response *resp, const struct plan *p, const char *ctype)
{
	if (ctype[0])
		MHD_add_response_header(resp, "Content-Type", ctype);
	if (p->content_range[0])
		MHD_add_response_header(resp, "Content-Range", p->content_range);
	if (p->own_ranges)
		MHD_add_response_header(resp, "Accept-Ranges", "bytes");
}

/* Every range unsatisfiable: an empty 416, no stored headers. */
static enum MHD_Result entry_416(struct edge_req *r, struct cache_ref *ref, const struct plan *p,
                                 const struct cache_status *cs)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret = MHD_NO;
	if (resp) {
		MHD_add_response_header(resp, "Content-Range", p->content_range);
		respond_add_cache_status(r, resp, cs);
		respond_add_via(r, resp);
		r->log_bytes = 0;
		ret = MHD_queue_response(r->conn, 416, resp);
		MHD_destroy_response(resp);
	}
	cache_ref_release(r->edge->cache, ref);
	return ret;
}

/* The entry's body (all, one range, or multipart) as an MHD response that
 * releases ref when MHD is done with it; *blen: the body's length. */
static struct MHD_Response *entry_body(struct edge_req *r, struct cache_ref *ref,
                                       const struct entry_view *v, const struct plan *p,
                                       char ctype[96], uint64_t *blen)
{
	struct cache *cache = r->edge->cache;
	struct MHD_Response *resp;
	if (p->nranges > 1) {
		/* Several ranges: multipart/byteranges (RFC 9110 14.6), read from
		 * the map part by part; the read transaction lives until mp_free. */
		struct mp_ref *h = xcalloc(1, sizeof *h);
		h->cache = cache;
		h->ref = ref;
		h->body = v->body;
		char boundary[33];
		multipart_type(ctype, boundary, h);
		range_multipart_init(&h->m, boundary, entry_get_header(v, "Content-Type"), p->rg,
		                     p->nranges, v->body_len);
		*blen = h->m.total;
		size_t block = h->m.total < 65536 ? (size_t)h->m.total : 65536;
		resp = MHD_create_response_from_callback(h->m.total, block, mp_read, h, mp_free);
		if (!resp)
			mp_free(h);
		return resp;
	}
	struct hit_ref *h = xmalloc(sizeof *h);
	h->cache = cache;
	h->ref = ref;
	*blen = p->len;
	resp = MHD_create_response_from_buffer_with_free_callback_cls((size_t)p->len,
	                                                              (void *)(v->body + p->off),
	                                                              hit_free, h);
	if (!resp)
		hit_free(h);
	return resp;
}

enum MHD_Result respond_entry(struct edge_req *r, struct cache_ref *ref, const struct entry_view *v,
                              const char *storage_key, enum fwd_reason fwd, unsigned fwd_status,
                              const char *detail)
{
	int64_t now = (int64_t)time(NULL);
	int64_t age = freshness_age(v->meta.date, v->meta.age_value, v->meta.request_time,
	                            v->meta.response_time, now);
	struct cache_status cs = { .hit = fwd == FWD_NONE, .fwd = fwd, .fwd_status = fwd_status,
		                   .ttl = (long)(v->meta.lifetime - age), .detail = detail };
	struct plan_resp s = { .status = v->meta.status,
		               .etag = entry_get_header(v, "ETag"),
		               .last_modified = entry_get_header(v, "Last-Modified"),
		               .date = entry_get_header(v, "Date"),
		               .length = (int64_t)v->body_len,
		               .cacheable = true,
		               .whole = true };
	struct plan p;
	plan_make(&r->cond, &s, &p);
	if (p.status == 416)
		return entry_416(r, ref, &p, &cs);
	char ctype[96] = ""; /* multipart/byteranges; boundary=... */
	uint64_t blen;
	struct MHD_Response *resp = entry_body(r, ref, v, &p, ctype, &blen);
	if (!resp)
		return MHD_NO;
	size_t pos = 0;
	struct entry_header eh;
	while (entry_next_header(v, &pos, &eh))
		if (plan_keep_header(&p, eh.name))
			MHD_add_response_header(resp, eh.name, eh.value);
	add_range_headers(resp, &p, ctype);
	add_age(resp, age < 0 ? 0 : age);
	respond_add_cache_status(r, resp, &cs);
	respond_add_via(r, resp);
	r->log_bytes = p.body ? (int64_t)blen : 0;
	enum MHD_Result ret = MHD_queue_response(r->conn, p.status, resp);
	MHD_destroy_response(resp);
	if (storage_key)
		cache_touch(r->edge->cache, storage_key);
	return ret;
}

/* ---------- origin responses as they arrive ---------- */

/* An upstream stream's read result as MHD's content reader returns it
 * (origin streams and sliced objects alike). */
static ssize_t reader_result(ssize_t n)
{
	if (n == PROXY_STREAM_END)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n == PROXY_STREAM_ERROR)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	return n;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *out, size_t max)
{
	return reader_result(proxy_stream_read(cls, pos, out, max));
}

static void stream_free(void *cls)
{
	proxy_stream_close(cls);
}

static void whole_free(void *cls)
{
	fetch_unref(cls);
}

/* The body of a streamed answer under plan p (MHD reads it through
 * upstream/stream.h, suspending r while bytes are on their way). */
static struct MHD_Response *stream_body(struct edge_req *r, const struct proxy_answer *a,
                                        const struct plan *p, char ctype[96])
{
	if (p->empty) {
		r->log_bytes = 0;
		return MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	}
	uint64_t len = p->len;
	struct multipart *mp = NULL;
	size_t wlen;
	const char *whole = p->nranges > 1 ? NULL : proxy_stream_whole(a->f, p->off, p->len, &wlen);
	if (whole) {
		/* All there already (a small miss arrives in one read): one buffer,
		 * so the head and body leave in one write. */
		r->log_bytes = p->body ? (int64_t)wlen : 0;
		struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback_cls(
			wlen, (void *)whole, whole_free, a->f);
		if (!resp)
			fetch_unref(a->f);
		return resp;
	}
	if (p->nranges > 1) {
		char boundary[33];
		mp = xcalloc(1, sizeof *mp);
		multipart_type(ctype, boundary, mp);
		range_multipart_init(mp, boundary, hdrlist_get(&a->hdrs, "Content-Type"), p->rg,
		                     p->nranges, (uint64_t)a->length);
		len = mp->total;
	}
	struct proxy_stream *s = proxy_stream_open(a->f, p->off, p->len, mp, &edge_conn_ops, r->conn);
	/* MHD allocates the block per response: a small object gets a small
	 * one (a 64 KiB malloc/free per 1 KiB miss showed up as page faults
	 * from heap trimming). */
	size_t block = len < STREAM_BLOCK ? (size_t)(len < 1024 ? 1024 : len) : STREAM_BLOCK;
	r->log_bytes = !p->body ? 0 : len == UINT64_MAX ? -1 : (int64_t)len;
	struct MHD_Response *resp = MHD_create_response_from_callback(
		len == UINT64_MAX ? MHD_SIZE_UNKNOWN : len, block, stream_reader, s, stream_free);
	if (!resp)
		proxy_stream_close(s);
	return resp;
}

/* Queues resp, the body of a under plan p, with a's headers as p keeps
 * them and the edge's own (ranges, Age, Cache-Status, Via). */
static enum MHD_Result queue_answer(struct edge_req *r, const struct proxy_answer *a,
                                    const struct plan *p, struct MHD_Response *resp,
                                    const char *ctype)
{
	struct hdrlist_iter it;
	const char *n, *v;
	hdrlist_init(&it, &a->hdrs);
	while (hdrlist_next(&it, &n, &v))
		if (plan_keep_header(p, n))
			MHD_add_response_header(resp, n, v);
	add_range_headers(resp, p, ctype);
	if (a->age >= 0)
		add_age(resp, a->age);
	respond_add_cache_status(r, resp, &a->cs);
	respond_add_via(r, resp); /* forwarded from the origin, directly or collapsed */
	enum MHD_Result ret = MHD_queue_response(r->conn, p->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result respond_stream(struct edge_req *r, const struct proxy_answer *a)
{
	struct plan_resp s = { .status = a->status,
		               .etag = hdrlist_get(&a->hdrs, "ETag"),
		               .last_modified = hdrlist_get(&a->hdrs, "Last-Modified"),
		               .date = hdrlist_get(&a->hdrs, "Date"),
		               .length = a->length,
		               .cacheable = a->cacheable,
		               .whole = a->whole };
	struct plan p;
	plan_make(&r->cond, &s, &p);
	char ctype[96] = "";
	struct MHD_Response *resp = stream_body(r, a, &p, ctype);
	return resp ? queue_answer(r, a, &p, resp, ctype) : MHD_NO;
}

/* ---------- large objects from slices ---------- */

static ssize_t slices_reader(void *cls, uint64_t pos, char *out, size_t max)
{
	return reader_result(slice_stream_read(cls, pos, out, max));
}

static void slices_done(void *cls)
{
	slice_stream_close(cls);
}

/* A sliced object: one range (206), the whole (200; several ranges too,
 * multipart is not built from slices), 304 or 416, as the plan says. */
static enum MHD_Result respond_slices(struct edge_req *r, struct proxy_answer *a)
{
	struct plan_resp s = { .status = a->status,
		               .etag = hdrlist_get(&a->hdrs, "ETag"),
		               .last_modified = hdrlist_get(&a->hdrs, "Last-Modified"),
		               .length = a->length,
		               .cacheable = true };
	struct plan p;
	plan_make(&r->cond, &s, &p);
	struct slice_stream *ss = a->slices;
	a->slices = NULL;
	struct MHD_Response *resp;
	if (p.empty) {
		slice_stream_close(ss);
		r->log_bytes = 0;
		resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	} else {
		slice_stream_range(ss, p.off, p.len);
		r->log_bytes = p.body ? (int64_t)p.len : 0;
		resp = MHD_create_response_from_callback(p.len, STREAM_BLOCK, slices_reader, ss,
		                                         slices_done);
		if (!resp)
			slice_stream_close(ss);
	}
	return resp ? queue_answer(r, a, &p, resp, "") : MHD_NO;
}

enum MHD_Result respond_answer(struct edge_req *r, struct proxy_answer *a)
{
	enum MHD_Result ret;
	r->state = a->kind == PROXY_WAIT ? RS_WAIT : RS_DONE;
	switch (a->kind) {
	case PROXY_WAIT:
		return MHD_YES;
	case PROXY_ENTRY:
		ret = respond_entry(r, a->ref, &a->v, a->storage_key.data, a->fwd, a->fwd_status,
		                    a->detail);
		buf_free(&a->storage_key);
		buf_free(&a->hdrs);
		return ret;
	case PROXY_STREAM:
		ret = respond_stream(r, a);
		proxy_release(&r->pc); /* after the stream registered its own waiter */
		buf_free(&a->hdrs);
		return ret;
	case PROXY_SLICES:
		ret = respond_slices(r, a);
		buf_free(&a->hdrs);
		return ret;
	case PROXY_ERROR:
		break;
	}
	return a->status ? respond_error(r, a->status, a->msg) : MHD_NO;
}
