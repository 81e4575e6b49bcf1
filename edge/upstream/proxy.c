/* proxy.c -- misses, collapsing, revalidation and storing
 *
 * Called by the front (edge/front/http.c) with a struct proxy_call; answers
 * with a struct proxy_answer (proxy.h).  Runs on the front's worker threads
 * (proxy_start, proxy_resume) and in the fetch thread (the fill hooks);
 * stores and 304 updates go through the cache's writer thread (store_done,
 * update_done), so the fetch thread never waits for a write transaction. */
#include "edge/upstream/proxy.h"
#include "edge/upstream/slicehead.h"
#include "edge/cache/freshness.h"
#include "edge/upstream/headers.h"
#include "edge/upstream/origin_req.h"
#include "common/hdrlist.h"
#include "common/httpdate.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define COLLAPSE_BUCKETS 4096

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

void collapse_lock(struct collapse *c)
{
	pthread_mutex_lock(&c->lock);
}

void collapse_unlock(struct collapse *c)
{
	pthread_mutex_unlock(&c->lock);
}

struct fetch *collapse_find(struct collapse *c, const char *key)
{
	for (struct centry *e = c->b[hash_key(key)]; e; e = e->next)
		if (!strcmp(e->key, key))
			return e->f;
	return NULL;
}

void collapse_put(struct collapse *c, const char *key, struct fetch *f)
{
	struct centry *e = xcalloc(1, sizeof *e);
	e->key = xstrdup(key);
	e->f = f;
	fetch_ref(f);
	unsigned h = hash_key(key);
	e->next = c->b[h];
	c->b[h] = e;
}

void collapse_remove(struct collapse *c, const char *key, struct fetch *f)
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
	const struct edge_site *site; /* borrowed, valid until exit */
	char *storage_key;    /* REVALIDATE/REFRESH: the entry being revalidated */
	struct buf req_hdrs;  /* leader's request headers, packed (Vary, Authorization) */
	bool req_auth;
	struct buf old_hdrs;  /* REVALIDATE/REFRESH: stored headers for the 304 merge */
	struct entry_meta old_meta;
	/* REVALIDATE/REFRESH after a 304: what the queued update writes, and
	 * what requests answered before its commit are served with */
	struct buf new_hdrs;
	struct entry_meta new_meta;
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
	buf_free(&x->new_hdrs);
	free(x);
}

static const char *fill_hdr(void *cls, const char *name)
{
	struct fill *x = cls;
	return hdrlist_get(&x->req_hdrs, name);
}

static void pack_hdr(void *arg, const char *k, const char *v)
{
	struct buf *b = arg;
	buf_append(b, k, strlen(k) + 1);
	buf_append(b, v, strlen(v) + 1);
}

/* The request's headers packed, repeated lines of a field combined into
 * its first (RFC 9110 5.3): a follower's Vary selection and the fill's
 * read every line, as proxy_call_header_all does. */
static void pack_req_hdrs(struct proxy_call *pc, struct buf *out)
{
	struct buf raw = BUF_INIT;
	pc->ops->each_header(pc->cls, pack_hdr, &raw);
	headers_combine(&raw, out);
	buf_free(&raw);
}

const char *proxy_header_all(const struct proxy_call *pc, const char *name, struct buf *tmp)
{
	return headers_join_each(pc->ops->each_header, pc->cls, name, tmp);
}

const char *proxy_call_header_all(struct proxy_call *pc, const char *name)
{
	return proxy_header_all(pc, name, &pc->hdr_join);
}

/* ---------- fetch hooks (run in the fetch thread) ---------- */

static void fill_evaluate(struct fill *x, struct fetch *f, const struct buf *hdrs, unsigned status)
{
	struct fresh_in in;
	struct fresh_fields ff = { 0 };
	proxy_fresh_in(&in, &ff, x->e, status, hdrs, f->request_time, f->response_time);
	in.method = "GET";
	in.req_authorization = x->req_auth;
	in.req_cache_control = hdrlist_get(&x->req_hdrs, "Cache-Control");
	/* Age is never stored (it is recomputed), so after a 304 the merged
	 * headers lack it: the 304's own Age is the validated response's age
	 * upstream (RFC 9111 4.2.3, 4.3.4). */
	in.age = headers_field(&f->hdrs, "Age", &ff.age);
	freshness_evaluate(&in, &x->fo);
	proxy_fresh_fields_free(&ff);
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
	 * line's no-store, or "Vary:" then "Vary: *", count.  One walk over
	 * the headers for all seven. */
	static const char *const names[] = { "Cache-Control", "CDN-Cache-Control", "Expires", "Date",
		                             "Last-Modified", "Age", "Vary" };
	struct buf *const tmp[] = { &ff->cc, &ff->cdn, &ff->expires, &ff->date, &ff->lm, &ff->age, &ff->vary };
	const char *v[7];
	headers_fields(hdrs, 7, names, v, tmp);
	*in = (struct fresh_in){
		.status = status,
		.cache_control = v[0],
		.cdn_cache_control = v[1],
		.expires = v[2],
		.date = v[3],
		.last_modified = v[4],
		.age = v[5],
		.vary = v[6],
		.request_time = request_time,
		.response_time = response_time,
		.heuristic_fraction = live->cache.heuristic_fraction,
		.heuristic_max = live->cache.heuristic_max_ms / 1000,
	};
}

static void meta_from(struct fill *x, struct fetch *f, unsigned status, struct entry_meta *m)
{
	entry_meta_from(&x->fo, f->request_time, f->response_time, status, x->purge_seq, m);
}

/* Invalidates the cache key of a same-host URL (absolute or path). */
static void invalidate_url(struct fill *x, const char *url)
{
	if (!url)
		return;
	struct buf key = BUF_INIT, host = BUF_INIT;
	const struct query_rule *rules; /* one snapshot: rules and count agree */
	size_t nrules;
	edge_site_rules(edge_live(x->e), x->site, &rules, &nrules);
	if (cachekey_build(x->site->label, url, x->host, rules, nrules, &key, NULL, &host) == 0 &&
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
	headers_filter(&f->hdrs, &fresh, NULL);
	struct hdrlist_iter it;
	const char *n, *v;
	hdrlist_init(&it, &x->old_hdrs);
	while (hdrlist_next(&it, &n, &v)) {
		if (hdrlist_get(&fresh, n))
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
			invalidate_url(x, hdrlist_get(&f->hdrs, "Location"));
			invalidate_url(x, hdrlist_get(&f->hdrs, "Content-Location"));
		}
		pthread_mutex_lock(&f->lock);
		f->discard = true;
		pthread_mutex_unlock(&f->lock);
		return;
	}
	if ((x->mode == REVALIDATE || x->mode == REFRESH) && f->status == 304) {
		if (!freshness_304_selects(hdrlist_get(&x->old_hdrs, "ETag"),
		                           hdrlist_get(&f->hdrs, "ETag"),
		                           hdrlist_get(&x->old_hdrs, "Last-Modified"),
		                           hdrlist_get(&f->hdrs, "Last-Modified"))) {
			/* It validates some other response (RFC 9111 4.3.4): the
			 * stored one is left alone and the request fetches anew. */
			log_debug("proxy", "%s: 304 does not match the stored validators", x->key);
			x->shareable = false;
			return;
		}
		merge_304(x, f, &x->new_hdrs);
		fill_evaluate(x, f, &x->new_hdrs, x->old_meta.status);
		meta_from(x, f, x->old_meta.status, &x->new_meta);
		if (!x->fo.storable) {
			/* The origin now says "do not store": drop the old copy. */
			cache_purge_key(e->cache, x->key);
		} else {
			/* The update is queued by on_done; until it is committed,
			 * requests are answered with new_meta and new_hdrs over the
			 * stored body (proxy_resume). */
			x->revalidated = true;
		}
		x->shareable = x->revalidated;
		return;
	}
	fill_evaluate(x, f, &f->hdrs, f->status);
	bool fits = f->content_length < 0 ||
	            (uint64_t)f->content_length <= edge_site_max_object(edge_live(e), x->site);
	bool err_over_stale = (x->mode == REVALIDATE || x->mode == REFRESH) && f->status >= 500;
	x->store = x->fo.storable && fits && !err_over_stale;
	x->shareable = x->store;
	if (!fits && x->mode == FILL && f->status == 200)
		slicehead_note_whole(e, x->key, f, &x->fo, x->purge_seq); /* too large: maybe slices */
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

/* Runs in the cache's writer thread once the 304's update is committed (or
 * the entry was gone); the fill leaves the collapse table only now, so a
 * request in between joins it instead of revalidating again. */
static void update_done(void *cls, int rc)
{
	struct fetch *f = cls;
	struct fill *x = f->ctx;
	if (rc == 0)
		counters_add(&x->e->n, C_REVALIDATED, 1);
	if (x->in_table) {
		collapse_remove(x->e->collapse, x->key, f);
		x->in_table = false;
	}
	fetch_unref(f);
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
	if (x->revalidated) {
		/* Queued here, not in on_headers: update_done may then run at
		 * any moment, as in_table is no longer written by this thread. */
		fetch_ref(f);
		cache_update_async(e->cache, x->storage_key, &x->new_meta,
		                   x->new_hdrs.data ? x->new_hdrs.data : "", x->new_hdrs.len,
		                   update_done, f);
		return;
	}
	if (x->store && ok) {
		/* Stored by the cache's writer thread (group commit), so this
		 * thread goes back to the origin at once.  The fetch stays in the
		 * collapse table until the entry is committed: a request for the
		 * key in between is answered from the fetch's body (store_done). */
		struct pending_store *ps = xcalloc(1, sizeof *ps);
		ps->f = f;
		fetch_ref(f);
		headers_filter(&f->hdrs, &ps->hdrs, &ps->tags);
		if (!hdrlist_get(&ps->hdrs, "Date")) {
			char d[HTTPDATE_LEN];
			buf_append(&ps->hdrs, "Date", 5);
			httpdate_format((time_t)f->response_time, d);
			buf_append(&ps->hdrs, d, strlen(d) + 1);
		}
		struct entry_meta m;
		meta_from(x, f, f->status, &m);
		cache_store_async(e->cache, x->key, headers_field(&f->hdrs, "Vary", &ps->vary), fill_hdr,
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

/* ---------- building the origin request (origin_req.c: its headers) ---------- */

static struct fetch *new_fetch(struct proxy_call *pc, enum fill_mode mode, const struct stale_info *st)
{
	struct edge *e = pc->edge;
	struct fill *x = xcalloc(1, sizeof *x);
	x->e = e;
	x->mode = mode;
	x->key = xstrdup(pc->key);
	x->host = xstrdup(pc->host);
	x->site = pc->site;
	x->req_auth = pc->has_auth;
	x->purge_seq = e->cache ? cache_purge_seq(e->cache) : 0;
	pack_req_hdrs(pc, &x->req_hdrs);
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
	log_debug("proxy", "fetch %s mode %d etag %s lm %s", pc->key, (int)mode, etag ? etag : "-",
	          lm ? lm : "-");
	const char *method = mode == PASS ? pc->method : "GET";
	/* origin + path without printf: one of the costs of every miss. */
	size_t ol = strlen(pc->site->origin), pl = strlen(pc->path);
	char *url = xmalloc(ol + pl + 1);
	memcpy(url, pc->site->origin, ol);
	memcpy(url + ol, pc->path, pl + 1);
	char *body = NULL;
	size_t blen = 0;
	if (mode == PASS && pc->body && pc->body->len) {
		blen = pc->body->len;
		body = buf_steal(pc->body);
	}
	struct fetch *f = fetch_new(method, url, origin_req_headers(pc, mode == PASS, etag, lm), body, blen,
	                            &fill_hooks, x);
	f->req_headers_flat = true; /* origin_req_headers' one block */
	f->keep_limit = edge_site_max_object(edge_live(e), pc->site);
	f->ca_file = pc->site->ca_file;
	free(url);
	return f;
}

/* ---------- waiting ---------- */

static void wake_call(struct fetch_waiter *w)
{
	struct proxy_call *pc = (struct proxy_call *)((char *)w - offsetof(struct proxy_call, w));
	pc->ops->resume(pc->cls);
}

/* Under f->lock: registers pc and suspends its connection. */
static void wait_on(struct proxy_call *pc, struct fetch *f, struct proxy_answer *a)
{
	pc->f = f;
	pc->w.wake = wake_call;
	pc->w.waiting = true;
	pc->w.pos = 0;
	fetch_add_waiter(f, &pc->w);
	pc->waiting_registered = true;
	pc->ops->suspend(pc->cls);
	a->kind = PROXY_WAIT;
}

enum join { JOIN_NO, JOIN_WAIT, JOIN_READY };

/* Under f->lock, once f's response has arrived: a later request may reuse
 * it only as it could a stored one (RFC 9111 4) -- fresh, without no-cache,
 * and within the request's own no-cache / max-age / min-fresh -- even
 * before its store commits.  Requests that were waiting for it (collapsed
 * while pending) are not asked this. */
static bool fill_reusable(const struct fill *x, const struct fetch *f, const struct req_cc *rq)
{
	int64_t age = freshness_age(x->fo.date, x->fo.age_value, f->request_time, f->response_time,
	                            (int64_t)time(NULL));
	struct stored_state ss = { age, x->fo.lifetime, -1, x->fo.no_cache, x->fo.must_revalidate };
	return freshness_use(rq, &ss) == USE_FRESH;
}

/* Under c->lock: joins f, an in-flight fetch for pc's key, if its response
 * may be shared: JOIN_WAIT (suspended until its headers arrive), JOIN_READY
 * (they are there: answer with proxy_resume) or JOIN_NO (pc goes to the
 * origin itself). */
static enum join join(struct proxy_call *pc, struct fetch *f, struct proxy_answer *a)
{
	struct edge *e = pc->edge;
	pthread_mutex_lock(&f->lock);
	struct fill *x = f->ctx;
	bool ok = !f->discard && f->state != F_FAILED &&
	          (f->state == F_PENDING || (x->shareable && fill_reusable(x, f, pc->has_rq ? &pc->rq : NULL))) &&
	          f->body_base == 0;
	if (!ok) {
		pthread_mutex_unlock(&f->lock);
		return JOIN_NO;
	}
	fetch_ref(f);
	counters_add(&e->n, C_COLLAPSED, 1);
	if (f->state == F_PENDING) {
		wait_on(pc, f, a);
		pthread_mutex_unlock(&f->lock);
		return JOIN_WAIT;
	}
	pc->f = f;
	/* The response is complete (its store is being committed): this
	 * request is not forwarded, so it is a hit. */
	if (f->state == F_DONE && f->complete) {
		counters_add(&e->n, C_COLLAPSED, -1);
		counters_add(&e->n, C_HITS, 1);
		pc->fwd = FWD_NONE;
		pc->joined_done = true;
	}
	pthread_mutex_unlock(&f->lock);
	return JOIN_READY;
}

void proxy_start(struct proxy_call *pc, const struct stale_info *st, struct proxy_answer *a)
{
	struct edge *e = pc->edge;
	enum fill_mode mode = (pc->is_get || pc->is_head) ? (st ? REVALIDATE : FILL) : PASS;
	struct fetch *f;
	memset(a, 0, sizeof *a);
	if (mode != PASS && !pc->no_collapse) {
		struct collapse *c = e->collapse;
		pthread_mutex_lock(&c->lock);
		f = collapse_find(c, pc->key);
		enum join j = f ? join(pc, f, a) : JOIN_NO;
		if (j != JOIN_NO) {
			pthread_mutex_unlock(&c->lock);
			if (j == JOIN_READY)
				proxy_resume(pc, a); /* after the locks: it may start a fetch */
			return;
		}
		f = new_fetch(pc, mode, st);
		struct fill *x = f->ctx;
		x->in_table = true;
		collapse_put(c, pc->key, f);
		pthread_mutex_lock(&f->lock);
		pc->leader = true;
		wait_on(pc, f, a);
		pthread_mutex_unlock(&f->lock);
		pthread_mutex_unlock(&c->lock);
		fetch_submit(e->fetcher, f);
		return;
	}
	f = new_fetch(pc, mode, st);
	pthread_mutex_lock(&f->lock);
	pc->leader = true;
	wait_on(pc, f, a);
	pthread_mutex_unlock(&f->lock);
	fetch_submit(e->fetcher, f);
}

void proxy_refresh(struct proxy_call *pc, const struct stale_info *st)
{
	struct edge *e = pc->edge;
	struct collapse *c = e->collapse;
	pthread_mutex_lock(&c->lock);
	if (collapse_find(c, pc->key)) {
		pthread_mutex_unlock(&c->lock);
		return; /* already being refreshed or filled */
	}
	struct fetch *f = new_fetch(pc, REFRESH, st);
	struct fill *x = f->ctx;
	x->in_table = true;
	collapse_put(c, pc->key, f);
	pthread_mutex_unlock(&c->lock);
	fetch_submit(e->fetcher, f);
	fetch_unref(f);
}

void proxy_release(struct proxy_call *pc)
{
	buf_free(&pc->hdr_join); /* reallocated if the call goes on */
	if (!pc->f)
		return;
	if (pc->f->up)
		fetch_upload_detach(pc->f); /* a body not ended aborts the transfer */
	if (pc->waiting_registered) {
		pthread_mutex_lock(&pc->f->lock);
		fetch_remove_waiter(pc->f, &pc->w);
		pthread_mutex_unlock(&pc->f->lock);
		pc->waiting_registered = false;
	}
	fetch_unref(pc->f);
	pc->f = NULL;
}

/* ---------- for upload.c ---------- */

struct fetch *proxy_pass_fetch(struct proxy_call *pc)
{
	return new_fetch(pc, PASS, NULL);
}

void proxy_wait(struct proxy_call *pc, struct fetch *f, struct proxy_answer *a)
{
	wait_on(pc, f, a);
}

/* ---------- answers ---------- */

/* Drops pc's wait on its fetch (keeps nothing). */
static void detach(struct proxy_call *pc)
{
	proxy_release(pc);
	pc->leader = false;
}

/* The origin's response, to be streamed to pc as it arrives. */
static void answer_stream(struct proxy_call *pc, struct fetch *f, struct fill *x,
                          struct proxy_answer *a)
{
	a->kind = PROXY_STREAM;
	a->f = f;
	a->status = f->status;
	a->length = f->content_length;
	a->cacheable = x->mode != PASS;
	a->whole = x->store;
	headers_filter(&f->hdrs, &a->hdrs, NULL);
	int64_t age = -1;
	if (x->mode != PASS && x->fo.storable)
		age = freshness_age(x->fo.date, x->fo.age_value, f->request_time, f->response_time,
		                    (int64_t)time(NULL));
	a->age = age;
	if (pc->joined_done) {
		if (age < 0)
			age = freshness_age(x->fo.date, x->fo.age_value, f->request_time,
			                    f->response_time, (int64_t)time(NULL));
		a->cs = (struct cache_status){ .hit = true, .fwd = FWD_NONE,
			                       .ttl = (long)(x->fo.lifetime - age) };
	} else {
		a->cs = (struct cache_status){ .fwd = pc->fwd, .fwd_status = f->status,
			                       .stored = x->store,
			                       .ttl = x->store ? (long)x->fo.lifetime : LONG_MIN,
			                       .detail = pc->leader ? NULL : "collapsed" };
	}
}

/* Vary selects on the whole field, every line of it. */
static const char *call_hdr(void *cls, const char *name)
{
	return proxy_call_header_all(cls, name);
}

/* The entry for pc's key, if stored (a PROXY_ENTRY answer). */
static bool answer_entry(struct proxy_call *pc, unsigned fwd_status, const char *detail,
                         struct proxy_answer *a)
{
	if (cache_lookup(pc->edge->cache, pc->key, call_hdr, pc, &a->ref, &a->v, &a->storage_key) !=
	    CACHE_HIT) {
		buf_free(&a->storage_key);
		return false;
	}
	a->kind = PROXY_ENTRY;
	a->fwd = pc->fwd == FWD_REQUEST ? FWD_REQUEST : FWD_STALE;
	a->fwd_status = fwd_status;
	a->detail = detail;
	return true;
}

static void answer_error(struct proxy_answer *a, unsigned status, const char *msg)
{
	a->kind = PROXY_ERROR;
	a->status = status;
	a->msg = msg;
}

/* Sends pc again on its own, after fwd. */
static void restart(struct proxy_call *pc, enum fwd_reason fwd, struct proxy_answer *a)
{
	detach(pc);
	pc->no_collapse = true;
	pc->fwd = fwd;
	proxy_start(pc, NULL, a);
}

/* A collapsed request whose leader's response varies: shareable only if
 * both select the same variant. */
static bool same_variant(struct proxy_call *pc, struct fetch *f, struct fill *x)
{
	struct buf vtmp = BUF_INIT;
	const char *vary = headers_field(&f->hdrs, "Vary", &vtmp);
	if (!vary)
		return true;
	struct buf mine = BUF_INIT, theirs = BUF_INIT;
	cache_variant_key(pc->key, vary, call_hdr, pc, &mine);
	cache_variant_key(x->key, vary, fill_hdr, x, &theirs);
	bool same = !strcmp(mine.data, theirs.data);
	buf_free(&mine);
	buf_free(&theirs);
	buf_free(&vtmp);
	return same;
}

bool proxy_wait_pending(struct proxy_call *pc, struct proxy_answer *a)
{
	struct fetch *f = pc->f;
	pthread_mutex_lock(&f->lock);
	bool pending = f->state == F_PENDING;
	if (pending && pc->waiting_registered) {
		pc->w.waiting = true;
		pc->ops->suspend(pc->cls);
	}
	pthread_mutex_unlock(&f->lock);
	if (pending)
		a->kind = PROXY_WAIT;
	return pending;
}

/* After a 304: the stored entry, with the meta and headers of its update
 * (queued to the cache's writer, perhaps not committed yet: the body is
 * the same either way).  Another variant found for pc, or an entry stored
 * since from another response, is served as it is stored.  Detaches pc;
 * false if the entry is gone. */
static bool answer_revalidated(struct proxy_call *pc, struct fill *x, struct proxy_answer *a)
{
	char *sk = xstrdup(x->storage_key);
	struct entry_meta m = x->new_meta, old = x->old_meta;
	struct buf h = BUF_INIT;
	buf_append(&h, x->new_hdrs.data ? x->new_hdrs.data : "", x->new_hdrs.len);
	bool joined = pc->joined_done;
	detach(pc); /* may free x */
	bool ok = answer_entry(pc, 304, NULL, a);
	/* The entry revalidated, before or after its update, and not one
	 * stored since from another response. */
	bool same = ok && !strcmp(a->storage_key.data, sk) &&
	            ((a->v.meta.request_time == old.request_time &&
	              a->v.meta.response_time == old.response_time) ||
	             (a->v.meta.request_time == m.request_time &&
	              a->v.meta.response_time == m.response_time));
	if (same) {
		a->v.meta = m;
		a->v.hdrs = h.data ? h.data : "";
		a->v.hdrs_len = h.len;
		a->hdrs = h; /* owned by the answer */
		h = (struct buf)BUF_INIT;
	}
	if (ok && joined) { /* answered without going forward: a hit */
		a->fwd = FWD_NONE;
		a->fwd_status = 0;
	}
	buf_free(&h);
	free(sk);
	return ok;
}

void proxy_resume(struct proxy_call *pc, struct proxy_answer *a)
{
	struct edge *e = pc->edge;
	struct fetch *f = pc->f;
	memset(a, 0, sizeof *a);
	if (!f) {
		answer_error(a, 0, NULL); /* nothing to resume: drop the connection */
		return;
	}
	if (proxy_wait_pending(pc, a))
		return; /* woken early (should not happen) */
	pthread_mutex_lock(&f->lock);
	enum fetch_state st = f->state; /* no longer pending: it only moves on */
	pthread_mutex_unlock(&f->lock);
	struct fill *x = f->ctx;
	unsigned status = f->status;
	bool failed = st == F_FAILED;
	bool timed_out = f->timed_out;
	bool tls_failed = f->tls_failed;

	bool revalidated = x->revalidated; /* detach() may free x */
	if (revalidated || (status == 304 && x->mode != PASS)) {
		if (revalidated && answer_revalidated(pc, x, a))
			return;
		detach(pc);
		/* Gone meanwhile (purged, evicted): fetch it again. */
		pc->no_collapse = true;
		proxy_start(pc, NULL, a);
		return;
	}
	if ((failed || freshness_error_status(status)) && pc->has_stale) {
		/* The stored response stands in for the failure when the RFC
		 * and the configuration allow it (freshness_stale_on_error). */
		const struct edge_config *lc = edge_live(e);
		struct stale_err se = pc->stale;
		se.fail = failed ? ORIGIN_UNREACHABLE : ORIGIN_ERROR;
		se.stale_for = (int64_t)time(NULL) - pc->stale_since;
		se.default_sie = edge_site_stale_if_error_ms(lc, pc->site) / 1000;
		se.unreachable = lc->cache.stale_if_unreachable_ms / 1000;
		if (freshness_stale_on_error(&se)) {
			detach(pc);
			counters_add(&e->n, C_STALE_SERVED, 1);
			if (!answer_entry(pc, failed ? 504 : status,
			                  failed ? "origin-unreachable" : "stale-if-error", a))
				answer_error(a, failed ? (timed_out ? 504 : 502) : 502, "origin failed");
			return;
		}
	}
	if (failed) {
		detach(pc);
		answer_error(a, timed_out ? 504 : 502,
		             timed_out ? "origin timed out"
		             : tls_failed ? "origin certificate not verified (TLS failed)"
		                          : "origin unreachable");
		return;
	}
	if (!pc->leader && x->mode != REVALIDATE && !x->shareable) {
		/* The shared response is not for everyone: go on our own. */
		restart(pc, FWD_MISS, a);
		return;
	}
	if (!pc->leader && x->store && !same_variant(pc, f, x)) {
		restart(pc, FWD_VARY_MISS, a);
		return;
	}
	/* Still attached: the stream registers its own waiter before ours goes
	 * (proxy_release), or a discard fetch would drop bytes no one read. */
	answer_stream(pc, f, x, a);
}
