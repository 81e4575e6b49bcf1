/* proxy.c -- misses, collapsing, revalidation, streaming and storing */
#include "edge/upstream/proxy.h"
#include "edge/cache/freshness.h"
#include "edge/cache/range.h"
#include "common/encoding.h"
#include "common/hdrlist.h"
#include "common/httpdate.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define COLLAPSE_BUCKETS 4096
#define STREAM_BLOCK (64 * 1024)

/* ---------- the collapse table: primary key -> in-flight fetch ---------- */

struct centry {
	struct centry *next;
	char *key;
	struct fetch *f; /* a reference */
};

struct collapse {
	pthread_mutex_t lock;
	struct centry *b[COLLAPSE_BUCKETS];
};

struct collapse *collapse_new(void)
{
	struct collapse *c = xcalloc(1, sizeof *c);
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

void collapse_free(struct collapse *c)
{
	if (!c)
		return;
	for (int i = 0; i < COLLAPSE_BUCKETS; i++)
		while (c->b[i]) {
			struct centry *n = c->b[i]->next;
			fetch_unref(c->b[i]->f);
			free(c->b[i]->key);
			free(c->b[i]);
			c->b[i] = n;
		}
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static unsigned hash_key(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % COLLAPSE_BUCKETS;
}

/* Under c->lock. */
static struct fetch *collapse_find(struct collapse *c, const char *key)
{
	for (struct centry *e = c->b[hash_key(key)]; e; e = e->next)
		if (!strcmp(e->key, key))
			return e->f;
	return NULL;
}

static void collapse_put(struct collapse *c, const char *key, struct fetch *f)
{
	struct centry *e = xcalloc(1, sizeof *e);
	e->key = xstrdup(key);
	e->f = f;
	fetch_ref(f);
	unsigned h = hash_key(key);
	e->next = c->b[h];
	c->b[h] = e;
}

/* Removes key's entry if it is f (takes the lock itself). */
static void collapse_remove(struct collapse *c, const char *key, struct fetch *f)
{
	struct fetch *drop = NULL;
	pthread_mutex_lock(&c->lock);
	for (struct centry **p = &c->b[hash_key(key)]; *p; p = &(*p)->next)
		if ((*p)->f == f && !strcmp((*p)->key, key)) {
			struct centry *e = *p;
			*p = e->next;
			drop = e->f;
			free(e->key);
			free(e);
			break;
		}
	pthread_mutex_unlock(&c->lock);
	fetch_unref(drop);
}

/* ---------- per-fetch context ---------- */

enum fill_mode { FILL, REVALIDATE, REFRESH, PASS };

struct fill {
	struct edge *e;
	enum fill_mode mode;
	char *key;            /* primary cache key */
	char *host;           /* normalised host (for Location invalidation) */
	char *storage_key;    /* REVALIDATE/REFRESH: the entry being revalidated */
	struct buf req_hdrs;  /* leader's request headers, packed (Vary, Authorization) */
	bool req_auth;
	struct buf old_hdrs;  /* REVALIDATE/REFRESH: stored headers for the 304 merge */
	struct entry_meta old_meta;
	uint64_t purge_seq;   /* cache_purge_seq() as the request was sent */
	bool in_table;
	/* decided in the fetch thread before waiters are woken */
	bool store, shareable, revalidated;
	struct fresh_out fo;
};

static void fill_free(void *p)
{
	struct fill *x = p;
	if (!x)
		return;
	free(x->key);
	free(x->host);
	free(x->storage_key);
	buf_free(&x->req_hdrs);
	buf_free(&x->old_hdrs);
	free(x);
}

static const char *fill_hdr(void *cls, const char *name)
{
	struct fill *x = cls;
	return fetch_header(&x->req_hdrs, name);
}

static enum MHD_Result pack_hdr(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
	struct buf *b = cls;
	buf_append(b, k, strlen(k) + 1);
	buf_append(b, v ? v : "", strlen(v ? v : "") + 1);
	return MHD_YES;
}

/* The request's headers packed, repeated lines of a field combined into
 * its first (RFC 9110 5.3): a follower's Vary selection and the fill's
 * read every line, as edge_req_header_all does. */
static void pack_req_hdrs(struct edge_req *r, struct buf *out)
{
	struct buf raw = BUF_INIT, tmp = BUF_INIT;
	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, pack_hdr, &raw);
	struct hdrlist_iter it;
	const char *n, *v;
	hdrlist_init(&it, &raw);
	while (hdrlist_next(&it, &n, &v)) {
		if (hdrlist_get(&raw, n) != v)
			continue; /* a later line: already joined into the first */
		const char *all = proxy_field(&raw, n, &tmp);
		buf_append(out, n, strlen(n) + 1);
		buf_append(out, all, strlen(all) + 1);
	}
	buf_free(&raw);
	buf_free(&tmp);
}

/* ---------- header filtering ---------- */

void proxy_filter_headers(const struct buf *in, struct buf *out, struct buf *tags)
{
	const char *conn = fetch_header(in, "Connection");
	size_t pos = 0;
	while (pos < in->len) {
		const char *n = in->data + pos;
		pos += strlen(n) + 1;
		const char *v = in->data + pos;
		pos += strlen(v) + 1;
		if (http_hop_by_hop(n, conn) || !strcasecmp(n, "Content-Length") || !strcasecmp(n, "Age"))
			continue;
		bool sk = !strcasecmp(n, "Surrogate-Key"), ct = !strcasecmp(n, "Cache-Tag");
		if (sk || ct) {
			if (!tags)
				continue;
			/* Surrogate-Key is space-separated, Cache-Tag comma-separated. */
			const char *p = v;
			while (*p) {
				while (*p == ' ' || *p == ',' || *p == '\t')
					p++;
				const char *s = p;
				while (*p && *p != ' ' && *p != ',' && *p != '\t')
					p++;
				if (p > s) {
					buf_append(tags, s, (size_t)(p - s));
					buf_append(tags, "", 1);
				}
			}
			continue;
		}
		buf_append(out, n, strlen(n) + 1);
		buf_append(out, v, strlen(v) + 1);
	}
}

/* ---------- fetch hooks (run in the fetch thread) ---------- */

static void fill_evaluate(struct fill *x, struct fetch *f, const struct buf *hdrs, unsigned status)
{
	struct fresh_in in;
	struct fresh_fields ff = { 0 };
	proxy_fresh_in(&in, &ff, x->e, status, hdrs, f->request_time, f->response_time);
	in.method = "GET";
	in.req_authorization = x->req_auth;
	in.req_cache_control = fetch_header(&x->req_hdrs, "Cache-Control");
	/* Age is never stored (it is recomputed), so after a 304 the merged
	 * headers lack it: the 304's own Age is the validated response's age
	 * upstream (RFC 9111 4.2.3, 4.3.4). */
	in.age = proxy_field(&f->hdrs, "Age", &ff.age);
	freshness_evaluate(&in, &x->fo);
	proxy_fresh_fields_free(&ff);
}

const char *proxy_field(const struct buf *hdrs, const char *name, struct buf *tmp)
{
	struct hdrlist_iter it;
	const char *n, *v, *first = NULL;
	hdrlist_init(&it, hdrs);
	while (hdrlist_next(&it, &n, &v)) {
		if (strcasecmp(n, name))
			continue;
		if (first)
			return hdrlist_get_all(hdrs, name, tmp); /* rare: join them */
		first = v;
	}
	return first;
}

void proxy_fresh_fields_free(struct fresh_fields *ff)
{
	buf_free(&ff->cc);
	buf_free(&ff->cdn);
	buf_free(&ff->expires);
	buf_free(&ff->date);
	buf_free(&ff->lm);
	buf_free(&ff->age);
	buf_free(&ff->vary);
}

void proxy_fresh_in(struct fresh_in *in, struct fresh_fields *ff, const struct edge *e,
                    unsigned status, const struct buf *hdrs, int64_t request_time,
                    int64_t response_time)
{
	const struct edge_config *live = edge_live(e);
	/* Every line of each field (RFC 9110 5.3): a second Cache-Control
	 * line's no-store, or "Vary:" then "Vary: *", count. */
	*in = (struct fresh_in){
		.status = status,
		.cache_control = proxy_field(hdrs, "Cache-Control", &ff->cc),
		.cdn_cache_control = proxy_field(hdrs, "CDN-Cache-Control", &ff->cdn),
		.expires = proxy_field(hdrs, "Expires", &ff->expires),
		.date = proxy_field(hdrs, "Date", &ff->date),
		.last_modified = proxy_field(hdrs, "Last-Modified", &ff->lm),
		.age = proxy_field(hdrs, "Age", &ff->age),
		.vary = proxy_field(hdrs, "Vary", &ff->vary),
		.request_time = request_time,
		.response_time = response_time,
		.heuristic_fraction = live->cache.heuristic_fraction,
		.heuristic_max = live->cache.heuristic_max_ms / 1000,
	};
}

static void meta_from(struct fill *x, struct fetch *f, unsigned status, struct entry_meta *m)
{
	memset(m, 0, sizeof *m);
	m->status = status;
	m->request_time = f->request_time;
	m->purge_seq = x->purge_seq;
	m->response_time = f->response_time;
	m->date = x->fo.date;
	m->age_value = x->fo.age_value;
	m->lifetime = (int32_t)(x->fo.lifetime > INT32_MAX ? INT32_MAX : x->fo.lifetime);
	m->swr = (int32_t)(x->fo.swr > INT32_MAX ? INT32_MAX : x->fo.swr);
	m->sie = (int32_t)(x->fo.sie > INT32_MAX ? INT32_MAX : x->fo.sie);
	if (x->fo.must_revalidate)
		m->flags |= ENTRY_F_MUST_REVALIDATE;
	if (x->fo.no_cache)
		m->flags |= ENTRY_F_NO_CACHE;
	if (x->fo.source == FRESH_HEURISTIC)
		m->flags |= ENTRY_F_HEURISTIC;
}

/* Invalidates the cache key of a same-host URL (absolute or path). */
static void invalidate_url(struct fill *x, const char *url)
{
	if (!url)
		return;
	struct buf key = BUF_INIT, host = BUF_INIT;
	const struct edge_config *lc = edge_live(x->e); /* one snapshot: rules and count agree */
	if (cachekey_build(url, x->host, lc->query_rules, lc->nquery_rules, &key, NULL,
	                   &host) == 0 &&
	    !strcmp(host.data, x->host)) {
		long n = cache_purge_key(x->e->cache, key.data);
		if (n > 0)
			log_debug("proxy", "invalidated %s (%ld)", key.data, n);
	}
	buf_free(&key);
	buf_free(&host);
}

static void merge_304(struct fill *x, struct fetch *f, struct buf *out)
{
	/* Stored headers, except those the 304 replaces; then the 304's own. */
	struct buf fresh = BUF_INIT;
	proxy_filter_headers(&f->hdrs, &fresh, NULL);
	size_t pos = 0;
	while (pos < x->old_hdrs.len) {
		const char *n = x->old_hdrs.data + pos;
		pos += strlen(n) + 1;
		const char *v = x->old_hdrs.data + pos;
		pos += strlen(v) + 1;
		if (fetch_header(&fresh, n))
			continue;
		buf_append(out, n, strlen(n) + 1);
		buf_append(out, v, strlen(v) + 1);
	}
	buf_append(out, fresh.data ? fresh.data : "", fresh.len);
	buf_free(&fresh);
}

static void on_headers(struct fetch *f)
{
	struct fill *x = f->ctx;
	struct edge *e = x->e;
	if (x->mode == PASS) {
		if (f->status >= 200 && f->status < 400) {
			cache_purge_key(e->cache, x->key);
			invalidate_url(x, fetch_header(&f->hdrs, "Location"));
			invalidate_url(x, fetch_header(&f->hdrs, "Content-Location"));
		}
		pthread_mutex_lock(&f->lock);
		f->discard = true;
		pthread_mutex_unlock(&f->lock);
		return;
	}
	if ((x->mode == REVALIDATE || x->mode == REFRESH) && f->status == 304) {
		if (!freshness_304_selects(fetch_header(&x->old_hdrs, "ETag"),
		                           fetch_header(&f->hdrs, "ETag"),
		                           fetch_header(&x->old_hdrs, "Last-Modified"),
		                           fetch_header(&f->hdrs, "Last-Modified"))) {
			/* It validates some other response (RFC 9111 4.3.4): the
			 * stored one is left alone and the request fetches anew. */
			log_debug("proxy", "%s: 304 does not match the stored validators", x->key);
			x->shareable = false;
			return;
		}
		struct buf merged = BUF_INIT;
		merge_304(x, f, &merged);
		fill_evaluate(x, f, &merged, x->old_meta.status);
		struct entry_meta m;
		meta_from(x, f, x->old_meta.status, &m);
		if (!x->fo.storable) {
			/* The origin now says "do not store": drop the old copy. */
			cache_purge_key(e->cache, x->key);
		} else if (cache_update(e->cache, x->storage_key, &m, merged.data ? merged.data : "",
		                        merged.len) == 0) {
			x->revalidated = true;
			counters_add(&e->n, C_REVALIDATED, 1);
		}
		buf_free(&merged);
		x->shareable = x->revalidated;
		return;
	}
	fill_evaluate(x, f, &f->hdrs, f->status);
	bool fits = f->content_length < 0 ||
	            (uint64_t)f->content_length <= edge_live(e)->cache.max_object_size;
	bool err_over_stale = (x->mode == REVALIDATE || x->mode == REFRESH) && f->status >= 500;
	x->store = x->fo.storable && fits && !err_over_stale;
	x->shareable = x->store;
	if (!x->store) {
		pthread_mutex_lock(&f->lock);
		f->discard = true;
		pthread_mutex_unlock(&f->lock);
		if (x->in_table) {
			collapse_remove(e->collapse, x->key, f);
			x->in_table = false;
		}
	}
}

/* A store queued for the cache's writer; owns a fetch reference. */
struct pending_store {
	struct fetch *f;
	struct buf hdrs, tags;
	struct buf vary; /* Vary's lines joined, when there are several */
};

/* Runs in the cache's writer thread once the entry is committed (or not). */
static void store_done(void *cls, int rc)
{
	struct pending_store *ps = cls;
	struct fill *x = ps->f->ctx;
	if (rc == 0)
		counters_add(&x->e->n, C_STORED, 1);
	/* in_table is only written by the fetch thread before on_done queued
	 * the store, and by us after it. */
	if (x->in_table) {
		collapse_remove(x->e->collapse, x->key, ps->f);
		x->in_table = false;
	}
	buf_free(&ps->hdrs);
	buf_free(&ps->tags);
	buf_free(&ps->vary);
	fetch_unref(ps->f);
	free(ps);
}

static void on_done(struct fetch *f)
{
	struct fill *x = f->ctx;
	struct edge *e = x->e;
	pthread_mutex_lock(&f->lock);
	bool ok = f->complete && !f->discard && f->body_base == 0;
	pthread_mutex_unlock(&f->lock);
	counters_add(&e->n, C_ORIGIN_FETCHES, 1);
	if (f->status == 0 || f->status >= 500)
		counters_add(&e->n, C_ORIGIN_ERRORS, 1);
	if (x->store && ok) {
		/* Stored by the cache's writer thread (group commit), so this
		 * thread goes back to the origin at once.  The fetch stays in the
		 * collapse table until the entry is committed: a request for the
		 * key in between is answered from the fetch's body (store_done). */
		struct pending_store *ps = xcalloc(1, sizeof *ps);
		ps->f = f;
		fetch_ref(f);
		proxy_filter_headers(&f->hdrs, &ps->hdrs, &ps->tags);
		if (!fetch_header(&ps->hdrs, "Date")) {
			char d[HTTPDATE_LEN];
			buf_append(&ps->hdrs, "Date", 5);
			httpdate_format((time_t)f->response_time, d);
			buf_append(&ps->hdrs, d, strlen(d) + 1);
		}
		struct entry_meta m;
		meta_from(x, f, f->status, &m);
		cache_store_async(e->cache, x->key, proxy_field(&f->hdrs, "Vary", &ps->vary), fill_hdr,
		                  x, &m, ps->hdrs.data ? ps->hdrs.data : "", ps->hdrs.len,
		                  ps->tags.data ? ps->tags.data : "", ps->tags.len, f->body.data,
		                  f->body.len, store_done, ps);
		return;
	}
	if (x->in_table) {
		collapse_remove(e->collapse, x->key, f);
		x->in_table = false;
	}
}

static const struct fetch_hooks fill_hooks = { on_headers, on_done, fill_free };

/* ---------- building the origin request ---------- */

/* Appends the concatenation of the strings (up to a NULL) to l as one header
 * line; curl copies it.  Built on the stack unless unusually long: a miss
 * builds five or more of these. */
static struct curl_slist *slist_cat(struct curl_slist *l, ...)
{
	char stack[512];
	size_t len = 0;
	va_list ap;
	va_start(ap, l);
	for (const char *p; (p = va_arg(ap, const char *));)
		len += strlen(p);
	va_end(ap);
	char *line = len < sizeof stack ? stack : xmalloc(len + 1);
	size_t at = 0;
	va_start(ap, l);
	for (const char *p; (p = va_arg(ap, const char *));) {
		size_t n = strlen(p);
		memcpy(line + at, p, n);
		at += n;
	}
	va_end(ap);
	line[at] = '\0';
	l = curl_slist_append(l, line);
	if (line != stack)
		free(line);
	return l;
}

struct hdr_build {
	struct curl_slist *l;
	enum fill_mode mode;
	const char *conn;
	bool had_accept;
	const char *via, *xff;
};

static enum MHD_Result add_req_hdr(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
	struct hdr_build *b = cls;
	static const char *const never[] = { "Host", "Content-Length", "Expect", "Via",
		                             "X-Forwarded-For", NULL };
	static const char *const cond[] = { "Range", "If-Range", "If-None-Match", "If-Modified-Since",
		                            "If-Match", "If-Unmodified-Since", NULL };
	if (http_hop_by_hop(k, b->conn))
		return MHD_YES;
	for (int i = 0; never[i]; i++)
		if (!strcasecmp(k, never[i]))
			return MHD_YES;
	if (b->mode != PASS)
		for (int i = 0; cond[i]; i++)
			if (!strcasecmp(k, cond[i]))
				return MHD_YES;
	if (!strcasecmp(k, "Accept"))
		b->had_accept = true;
	if (b->mode != PASS && !strcasecmp(k, "Accept-Encoding")) {
		/* Normalised as the cache keys its variants (cache.c): a response
		 * stored for "gzip" must be what every gzip client may get. */
		if (encoding_accepts_gzip(v))
			b->l = slist_cat(b->l, "Accept-Encoding: gzip", NULL);
		return MHD_YES;
	}
	b->l = v && *v ? slist_cat(b->l, k, ": ", v, NULL) : slist_cat(b->l, k, ";", NULL);
	return MHD_YES;
}

static struct curl_slist *origin_headers(struct edge_req *r, enum fill_mode mode,
                                         const char *etag, const char *lm)
{
	struct edge *e = r->edge;
	struct hdr_build b = { NULL, mode, edge_req_header(r, "Connection"), false, NULL, NULL };
	b.l = slist_cat(b.l, "Host: ", r->host.data, NULL);
	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, add_req_hdr, &b);
	const char *via = edge_req_header(r, "Via");
	b.l = via ? slist_cat(b.l, "Via: ", via, ", 1.1 ", e->cfg.name, NULL)
	          : slist_cat(b.l, "Via: 1.1 ", e->cfg.name, NULL);
	char ip[ADDR_STRLEN] = "unknown";
	if (r->client)
		addr_format_ip(r->client, ip, sizeof ip);
	const char *xff = edge_req_header(r, "X-Forwarded-For");
	b.l = xff ? slist_cat(b.l, "X-Forwarded-For: ", xff, ", ", ip, NULL)
	          : slist_cat(b.l, "X-Forwarded-For: ", ip, NULL);
	if (etag)
		b.l = slist_cat(b.l, "If-None-Match: ", etag, NULL);
	if (lm)
		b.l = slist_cat(b.l, "If-Modified-Since: ", lm, NULL);
	if (!b.had_accept)
		b.l = curl_slist_append(b.l, "Accept:"); /* no curl default */
	b.l = curl_slist_append(b.l, "Expect:");
	return b.l;
}

static struct fetch *new_fetch(struct edge_req *r, enum fill_mode mode, const struct stale_info *st)
{
	struct edge *e = r->edge;
	struct fill *x = xcalloc(1, sizeof *x);
	x->e = e;
	x->mode = mode;
	x->key = xstrdup(edge_req_key(r));
	x->host = xstrdup(r->host.data);
	x->req_auth = r->has_auth;
	x->purge_seq = e->cache ? cache_purge_seq(e->cache) : 0;
	pack_req_hdrs(r, &x->req_hdrs);
	const char *etag = NULL, *lm = NULL;
	struct entry_view tmpv;
	if (st) {
		x->storage_key = xstrdup(st->storage_key);
		buf_append(&x->old_hdrs, st->hdrs, st->hdrs_len);
		x->old_meta = st->meta;
		memset(&tmpv, 0, sizeof tmpv);
		tmpv.hdrs = x->old_hdrs.data;
		tmpv.hdrs_len = x->old_hdrs.len;
		etag = entry_get_header(&tmpv, "ETag");
		/* Without Last-Modified, the stored Date is the validator (RFC
		 * 9110 13.1.3, RFC 9111 4.3.1): the origin can still say 304. */
		lm = entry_get_header(&tmpv, "Last-Modified");
		if (!lm)
			lm = entry_get_header(&tmpv, "Date");
	}
	log_debug("proxy", "fetch %s mode %d etag %s lm %s", edge_req_key(r), (int)mode, etag ? etag : "-", lm ? lm : "-");
	const char *method = mode == PASS ? r->method : "GET";
	char *url = xasprintf("%s%s", e->cfg.origin, r->path.data);
	char *body = NULL;
	size_t blen = 0;
	if (mode == PASS && r->body.len) {
		blen = r->body.len;
		body = buf_steal(&r->body);
	}
	struct fetch *f = fetch_new(method, url, origin_headers(r, mode, etag, lm), body, blen,
	                            &fill_hooks, x);
	f->keep_limit = edge_live(e)->cache.max_object_size;
	free(url);
	return f;
}

/* ---------- waiting ---------- */

static void wake_req(struct fetch_waiter *w)
{
	struct edge_req *r = (struct edge_req *)((char *)w - offsetof(struct edge_req, w));
	MHD_resume_connection(r->conn);
}

/* Under f->lock: registers r and suspends its connection. */
static void wait_on(struct edge_req *r, struct fetch *f)
{
	r->f = f;
	r->w.wake = wake_req;
	r->w.waiting = true;
	r->w.pos = 0;
	fetch_add_waiter(f, &r->w);
	r->waiting_registered = true;
	r->state = RS_WAIT;
	MHD_suspend_connection(r->conn);
}

/* Under f->lock, once f's response has arrived: a later request may reuse
 * it only while it is fresh (RFC 9111 4) -- not one stale at birth or with
 * no-cache, even before its store commits.  Requests that were waiting for
 * it (collapsed while pending) are not asked this. */
static bool fill_reusable(const struct fill *x, const struct fetch *f)
{
	if (x->fo.no_cache)
		return false;
	int64_t age = freshness_age(x->fo.date, x->fo.age_value, f->request_time, f->response_time,
	                            (int64_t)time(NULL));
	return age < x->fo.lifetime;
}

enum MHD_Result proxy_start(struct edge_req *r, const struct stale_info *st)
{
	struct edge *e = r->edge;
	enum fill_mode mode = (r->is_get || r->is_head) ? (st ? REVALIDATE : FILL) : PASS;
	if (mode != PASS && !r->no_collapse) {
		struct collapse *c = e->collapse;
		pthread_mutex_lock(&c->lock);
		struct fetch *f = collapse_find(c, edge_req_key(r));
		if (f) {
			pthread_mutex_lock(&f->lock);
			struct fill *x = f->ctx;
			bool ok = !f->discard && f->state != F_FAILED &&
			          (f->state == F_PENDING || (x->shareable && fill_reusable(x, f))) &&
			          f->body_base == 0;
			if (ok) {
				fetch_ref(f);
				counters_add(&e->n, C_COLLAPSED, 1);
				if (f->state == F_PENDING) {
					wait_on(r, f);
					pthread_mutex_unlock(&f->lock);
					pthread_mutex_unlock(&c->lock);
					return MHD_YES;
				}
				r->f = f;
				/* The response is complete (its store is being committed):
				 * this request is not forwarded, so it is a hit. */
				if (f->state == F_DONE && f->complete) {
					counters_add(&e->n, C_COLLAPSED, -1);
					counters_add(&e->n, C_HITS, 1);
					r->fwd = FWD_NONE;
					r->joined_done = true;
				}
				pthread_mutex_unlock(&f->lock);
				pthread_mutex_unlock(&c->lock);
				r->state = RS_WAIT;
				return proxy_resume(r);
			}
			pthread_mutex_unlock(&f->lock);
		}
		f = new_fetch(r, mode, st);
		struct fill *x = f->ctx;
		x->in_table = true;
		collapse_put(c, edge_req_key(r), f);
		pthread_mutex_lock(&f->lock);
		r->leader = true;
		wait_on(r, f);
		pthread_mutex_unlock(&f->lock);
		pthread_mutex_unlock(&c->lock);
		fetch_submit(e->fetcher, f);
		return MHD_YES;
	}
	struct fetch *f = new_fetch(r, mode, st);
	pthread_mutex_lock(&f->lock);
	r->leader = true;
	wait_on(r, f);
	pthread_mutex_unlock(&f->lock);
	fetch_submit(e->fetcher, f);
	return MHD_YES;
}

void proxy_refresh(struct edge_req *r, const struct stale_info *st)
{
	struct edge *e = r->edge;
	struct collapse *c = e->collapse;
	pthread_mutex_lock(&c->lock);
	if (collapse_find(c, edge_req_key(r))) {
		pthread_mutex_unlock(&c->lock);
		return; /* already being refreshed or filled */
	}
	struct fetch *f = new_fetch(r, REFRESH, st);
	struct fill *x = f->ctx;
	x->in_table = true;
	collapse_put(c, edge_req_key(r), f);
	pthread_mutex_unlock(&c->lock);
	fetch_submit(e->fetcher, f);
	fetch_unref(f);
}

void proxy_release(struct edge_req *r)
{
	if (!r->f)
		return;
	if (r->waiting_registered) {
		pthread_mutex_lock(&r->f->lock);
		fetch_remove_waiter(r->f, &r->w);
		pthread_mutex_unlock(&r->f->lock);
		r->waiting_registered = false;
	}
	fetch_unref(r->f);
	r->f = NULL;
}

/* ---------- streaming a fetch to a client ---------- */

struct stream {
	struct fetch_waiter w;  /* first: the wake callback casts back */
	struct fetch *f;
	struct MHD_Connection *conn;
	uint64_t off, len;      /* len = UINT64_MAX: to the end */
	struct multipart *mp;   /* several ranges of a body being kept whole, or NULL */
};

static void wake_stream(struct fetch_waiter *w)
{
	struct stream *s = (struct stream *)w;
	MHD_resume_connection(s->conn);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct stream *s = cls;
	struct fetch *f = s->f;
	if (s->len != UINT64_MAX && pos >= s->len)
		return MHD_CONTENT_READER_END_OF_STREAM;
	uint64_t abs = s->off + pos;
	pthread_mutex_lock(&f->lock);
	uint64_t end = f->body_base + f->body.len;
	if (abs < f->body_base) {
		pthread_mutex_unlock(&f->lock);
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	if (abs < end) {
		uint64_t n = end - abs;
		if (n > max)
			n = max;
		if (s->len != UINT64_MAX && n > s->len - pos)
			n = s->len - pos;
		memcpy(out, f->body.data + (abs - f->body_base), (size_t)n);
		s->w.pos = abs + n;
		fetch_consumed(f);
		pthread_mutex_unlock(&f->lock);
		return (ssize_t)n;
	}
	if (f->state == F_DONE || f->state == F_FAILED) {
		bool ok = f->state == F_DONE && f->complete;
		pthread_mutex_unlock(&f->lock);
		return ok ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
	}
	s->w.waiting = true;
	MHD_suspend_connection(s->conn);
	pthread_mutex_unlock(&f->lock);
	return 0;
}

/* multipart/byteranges while the body arrives: only for a fetch that keeps
 * the whole body (it is being stored), since parts may ask for bytes in any
 * order.  Waits (suspends) for bytes not there yet. */
static ssize_t stream_read_mp(void *cls, uint64_t pos, char *out, size_t max)
{
	struct stream *s = cls;
	struct fetch *f = s->f;
	size_t done = 0;
	pthread_mutex_lock(&f->lock);
	while (done < max) {
		const char *text;
		uint64_t boff, left = range_multipart_locate(s->mp, pos + done, &text, &boff);
		if (!left)
			break;
		if (left > max - done)
			left = max - done;
		if (text) {
			memcpy(out + done, text, (size_t)left);
			done += (size_t)left;
			continue;
		}
		uint64_t end = f->body_base + f->body.len;
		if (boff < f->body_base) {
			pthread_mutex_unlock(&f->lock);
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		if (boff >= end) {
			if (done)
				break;
			if (f->state == F_DONE || f->state == F_FAILED) {
				pthread_mutex_unlock(&f->lock);
				return MHD_CONTENT_READER_END_WITH_ERROR; /* short body */
			}
			s->w.waiting = true;
			MHD_suspend_connection(s->conn);
			pthread_mutex_unlock(&f->lock);
			return 0;
		}
		if (left > end - boff)
			left = end - boff;
		memcpy(out + done, f->body.data + (boff - f->body_base), (size_t)left);
		done += (size_t)left;
	}
	pthread_mutex_unlock(&f->lock);
	return done ? (ssize_t)done : MHD_CONTENT_READER_END_OF_STREAM;
}

static void stream_free(void *cls)
{
	struct stream *s = cls;
	if (s->mp) {
		range_multipart_free(s->mp);
		free(s->mp);
	}
	pthread_mutex_lock(&s->f->lock);
	fetch_remove_waiter(s->f, &s->w);
	pthread_mutex_unlock(&s->f->lock);
	fetch_unref(s->f);
	free(s);
}

static enum MHD_Result serve_stream(struct edge_req *r, struct fetch *f, struct fill *x)
{
	unsigned status = f->status;
	const char *etag = fetch_header(&f->hdrs, "ETag");
	const char *lm = fetch_header(&f->hdrs, "Last-Modified");
	int64_t cl = f->content_length;
	uint64_t off = 0, len = cl >= 0 ? (uint64_t)cl : UINT64_MAX;
	unsigned out_status = status;
	char crange[96] = "";
	char ctype[96] = "";
	struct byte_range rg[RANGE_MAX];
	unsigned nr = 0;
	bool is304 = false;
	bool cacheable_get = x->mode != PASS;

	if (cacheable_get && status == 200 &&
	    http_not_modified(r, etag, lm, fetch_header(&f->hdrs, "Date"))) {
		is304 = true;
		out_status = 304;
	} else if (cacheable_get && status == 200 && cl >= 0 && edge_req_header(r, "Range") &&
	           http_if_range_ok(r, etag, lm)) {
		enum range_result rr = range_parse(edge_req_header(r, "Range"), (uint64_t)cl, rg, &nr);
		if (rr == RANGE_UNSATISFIABLE) {
			out_status = 416;
			snprintf(crange, sizeof crange, "bytes */%lld", (long long)cl);
		} else if (rr == RANGE_OK && nr == 1) {
			out_status = 206;
			off = rg[0].first;
			len = rg[0].last - rg[0].first + 1;
			snprintf(crange, sizeof crange, "bytes %llu-%llu/%lld",
			         (unsigned long long)rg[0].first, (unsigned long long)rg[0].last,
			         (long long)cl);
		} else if (rr == RANGE_OK && x->store) {
			/* Several ranges: multipart/byteranges streamed from the body
			 * as it arrives (kept whole, it is being stored).  A body that
			 * is not kept gets the whole object (RFC 9110 14.2 lets a
			 * server ignore Range): its bytes are dropped once read. */
			out_status = 206;
		} else {
			nr = 0;
		}
	}

	struct MHD_Response *resp;
	if (is304 || out_status == 416) {
		resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		r->log_bytes = 0;
	} else {
		struct stream *s = xcalloc(1, sizeof *s);
		s->f = f;
		fetch_ref(f);
		s->conn = r->conn;
		s->off = off;
		s->len = len;
		s->w.wake = wake_stream;
		s->w.pos = off;
		if (out_status == 206 && nr > 1) {
			char boundary[33];
			range_boundary(boundary, (uint64_t)(uintptr_t)s);
			s->mp = xcalloc(1, sizeof *s->mp);
			range_multipart_init(s->mp, boundary, fetch_header(&f->hdrs, "Content-Type"), rg,
			                     nr, (uint64_t)cl);
			snprintf(ctype, sizeof ctype, "multipart/byteranges; boundary=%s", boundary);
			len = s->mp->total;
			s->w.pos = 0;
		}
		pthread_mutex_lock(&f->lock);
		fetch_add_waiter(f, &s->w);
		pthread_mutex_unlock(&f->lock);
		/* MHD allocates the block per response: a small object gets a
		 * small one (a 64 KiB malloc/free per 1 KiB miss showed up as page
		 * faults from heap trimming). */
		size_t block = len < STREAM_BLOCK ? (size_t)(len < 1024 ? 1024 : len) : STREAM_BLOCK;
		r->log_bytes = r->is_head ? 0 : len == UINT64_MAX ? -1 : (int64_t)len;
		resp = MHD_create_response_from_callback(len == UINT64_MAX ? MHD_SIZE_UNKNOWN : len,
		                                         block, s->mp ? stream_read_mp : stream_read, s,
		                                         stream_free);
		if (!resp) {
			stream_free(s);
			return MHD_NO;
		}
	}
	struct buf hdrs = BUF_INIT;
	proxy_filter_headers(&f->hdrs, &hdrs, NULL);
	bool own_ranges = cacheable_get && (out_status == 200 || out_status == 206);
	size_t pos = 0;
	while (pos < hdrs.len) {
		const char *n = hdrs.data + pos;
		pos += strlen(n) + 1;
		const char *v = hdrs.data + pos;
		pos += strlen(v) + 1;
		if (http_skip_to_client(n) || (is304 && !http_in_304(n)))
			continue;
		if (own_ranges && !strcasecmp(n, "Accept-Ranges"))
			continue; /* the origin's: the edge serves ranges itself, ours follows */
		if (out_status == 416 && strcasecmp(n, "Date"))
			continue;
		if (ctype[0] && !strcasecmp(n, "Content-Type"))
			continue; /* each part carries it */
		MHD_add_response_header(resp, n, v);
	}
	buf_free(&hdrs);
	if (ctype[0])
		MHD_add_response_header(resp, "Content-Type", ctype);
	if (crange[0])
		MHD_add_response_header(resp, "Content-Range", crange);
	if (own_ranges)
		MHD_add_response_header(resp, "Accept-Ranges", "bytes");
	if (x->mode != PASS && x->fo.storable) {
		char agebuf[24];
		int64_t age = freshness_age(x->fo.date, x->fo.age_value, f->request_time,
		                            f->response_time, (int64_t)time(NULL));
		snprintf(agebuf, sizeof agebuf, "%lld", (long long)age);
		MHD_add_response_header(resp, "Age", agebuf);
	}
	long ttl = x->store ? (long)x->fo.lifetime : LONG_MIN;
	if (r->joined_done) {
		int64_t age = freshness_age(x->fo.date, x->fo.age_value, f->request_time,
		                            f->response_time, (int64_t)time(NULL));
		http_add_cache_status(r, resp, true, FWD_NONE, 0, false, (long)(x->fo.lifetime - age),
		                      NULL);
	} else {
		http_add_cache_status(r, resp, false, r->fwd, status, x->store, ttl,
		                      r->leader ? NULL : "collapsed");
	}
	http_add_via(r, resp); /* forwarded from the origin, directly or collapsed */
	enum MHD_Result ret = MHD_queue_response(r->conn, out_status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Drops r's wait on its fetch (keeps nothing). */
static void detach(struct edge_req *r)
{
	proxy_release(r);
	r->leader = false;
}

static const char *req_hdr(void *cls, const char *name)
{
	return edge_req_header_all(cls, name);
}

/* Serves r from the cache if the entry is there (returns true, *ret set). */
static bool serve_from_cache(struct edge_req *r, enum fwd_reason fwd, unsigned fwd_status,
                             const char *detail, enum MHD_Result *ret)
{
	struct cache_ref *ref;
	struct entry_view v;
	struct buf sk = BUF_INIT;
	if (cache_lookup(r->edge->cache, edge_req_key(r), req_hdr, r, &ref, &v, &sk) != CACHE_HIT) {
		buf_free(&sk);
		return false;
	}
	*ret = http_serve_entry(r, ref, &v, sk.data, fwd, fwd_status, detail);
	buf_free(&sk);
	return true;
}

enum MHD_Result proxy_resume(struct edge_req *r)
{
	struct edge *e = r->edge;
	struct fetch *f = r->f;
	if (!f)
		return MHD_NO;
	pthread_mutex_lock(&f->lock);
	enum fetch_state st = f->state;
	if (st == F_PENDING) {
		/* Woken early (should not happen): wait again. */
		if (r->waiting_registered) {
			r->w.waiting = true;
			MHD_suspend_connection(r->conn);
		}
		pthread_mutex_unlock(&f->lock);
		return MHD_YES;
	}
	pthread_mutex_unlock(&f->lock);
	r->state = RS_DONE;
	struct fill *x = f->ctx;
	unsigned status = f->status;
	bool failed = st == F_FAILED;
	bool timed_out = f->timed_out;

	enum MHD_Result ret;
	bool revalidated = x->revalidated; /* detach() may free x */
	if (revalidated || (status == 304 && x->mode != PASS)) {
		detach(r);
		if (revalidated && serve_from_cache(r, r->fwd == FWD_REQUEST ? FWD_REQUEST : FWD_STALE,
		                                    304, NULL, &ret))
			return ret;
		/* Gone meanwhile (purged, evicted): fetch it again. */
		r->no_collapse = true;
		return proxy_start(r, NULL);
	}
	if ((failed || freshness_error_status(status)) && r->has_stale) {
		/* The stored response stands in for the failure when the RFC
		 * and the configuration allow it (freshness_stale_on_error). */
		const struct edge_config *lc = edge_live(e);
		struct stale_err se = r->stale;
		se.fail = failed ? ORIGIN_UNREACHABLE : ORIGIN_ERROR;
		se.stale_for = (int64_t)time(NULL) - r->stale_since;
		se.default_sie = lc->cache.stale_if_error_ms / 1000;
		se.unreachable = lc->cache.stale_if_unreachable_ms / 1000;
		if (freshness_stale_on_error(&se)) {
			detach(r);
			counters_add(&e->n, C_STALE_SERVED, 1);
			if (serve_from_cache(r, r->fwd == FWD_REQUEST ? FWD_REQUEST : FWD_STALE,
			                     failed ? 504 : status,
			                     failed ? "origin-unreachable" : "stale-if-error", &ret))
				return ret;
			return http_error(r, failed ? (timed_out ? 504 : 502) : 502, "origin failed");
		}
	}
	if (failed) {
		detach(r);
		return http_error(r, timed_out ? 504 : 502,
		                  timed_out ? "origin timed out" : "origin unreachable");
	}
	if (!r->leader && x->mode != REVALIDATE && !x->shareable) {
		/* The shared response is not for everyone: go on our own. */
		detach(r);
		r->no_collapse = true;
		r->fwd = FWD_MISS;
		return proxy_start(r, NULL);
	}
	if (!r->leader && x->store) {
		struct buf vtmp = BUF_INIT;
		const char *vary = proxy_field(&f->hdrs, "Vary", &vtmp);
		if (vary) {
			struct buf mine = BUF_INIT, theirs = BUF_INIT;
			cache_variant_key(edge_req_key(r), vary, req_hdr, r, &mine);
			cache_variant_key(x->key, vary, fill_hdr, x, &theirs);
			bool same = !strcmp(mine.data, theirs.data);
			buf_free(&mine);
			buf_free(&theirs);
			buf_free(&vtmp);
			if (!same) {
				detach(r);
				r->no_collapse = true;
				r->fwd = FWD_VARY_MISS;
				return proxy_start(r, NULL);
			}
		}
		buf_free(&vtmp);
	}
	/* The stream registers its own waiter before ours goes, or a discard
	 * fetch would drop bytes no one has read yet. */
	fetch_ref(f);
	ret = serve_stream(r, f, x);
	detach(r);
	fetch_unref(f);
	return ret;
}
