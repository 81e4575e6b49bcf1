/* slicer.c -- large objects from slices: the head, slice fetches collapsed
 * per slice and stored, and a client's bytes read across slices in order.
 *
 * A slice fetch is an ordinary struct fetch with its own hooks, kept in the
 * proxy's collapse table under the slice's storage key until its slice is
 * committed.  Its hooks run in the fetch thread: on_headers checks the 206
 * against the slice asked and decides whether it is stored and whether the
 * head is (re)written; on_done queues the slice's store.  Readers (the
 * first request's proxy_call, then each response's slice_stream) only look
 * at what on_headers decided, under the fetch's lock. */
#include "edge/upstream/slicer.h"
#include "edge/upstream/headers.h"
#include "edge/upstream/slicehead.h"
#include "edge/cache/freshness.h"
#include "edge/cache/slice.h"
#include "common/hdrlist.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* What a slice fetch needs from the request that started it (strings
 * borrowed from the caller for the call). */
struct slice_req {
	struct edge *e;
	const char *key, *host, *path, *ip;
	uint64_t size;
	int64_t total;          /* the head's length, -1: no head */
	const struct buf *head_v; /* the head's validators (packed), NULL: none */
	bool head_write;        /* write the head from the response whatever it says */
	bool has_auth;          /* the request carried Authorization (a probe's 200) */
};

/* One slice fetch's context (struct fetch's ctx). */
struct slice_fill {
	struct edge *e;
	char *key;              /* the object's primary key */
	char *skey;             /* the slice's storage key */
	uint64_t index, size;
	int64_t known_total;
	struct buf head_v;      /* the head's ETag / Last-Modified / Date, packed */
	bool head_write;
	bool probe;             /* no head: a 200 is the whole object, kept as a miss's */
	bool req_auth;
	uint64_t purge_seq;     /* cache_purge_seq() as the request was sent */
	bool in_table;
	/* decided in on_headers, before waiters are woken */
	enum slice_check check;
	uint64_t total;
	bool sliceable;         /* a slice of an object stored in slices: stored */
	bool whole_store;       /* a probe's 200, stored whole as an ordinary miss would be */
	struct fresh_out fo;
};

struct slice_stream {
	struct fetch_waiter w;  /* first: the wake callback casts back */
	struct slice_req q;     /* points at the strings below */
	char *key, *host, *path;
	char ip[ADDR_STRLEN];
	struct buf head_v;      /* the validators the response promised */
	struct slice_validators v;
	const struct proxy_client_ops *ops;
	void *cls;
	uint64_t total, off, len;
	/* the slice being read: stored (ref) or arriving (f) */
	bool open, checked;
	uint64_t cur;
	struct cache_ref *ref;
	const uint8_t *data;
	uint64_t dlen;
	struct fetch *f;
};

/* ---------- validators ---------- */

/* Packs a response's validators as "name\0value\0" (only those present). */
static void pack_validators(const struct slice_validators *v, struct buf *out)
{
	const char *names[] = { "ETag", "Last-Modified", "Date" };
	const char *vals[] = { v->etag, v->last_modified, v->date };
	for (int i = 0; i < 3; i++)
		if (vals[i]) {
			buf_append(out, names[i], strlen(names[i]) + 1);
			buf_append(out, vals[i], strlen(vals[i]) + 1);
		}
}

static void validators_of_entry(const struct entry_view *e, struct slice_validators *v)
{
	v->etag = entry_get_header(e, "ETag");
	v->last_modified = entry_get_header(e, "Last-Modified");
	v->date = entry_get_header(e, "Date");
}

int64_t slicer_head_length(const struct entry_view *v)
{
	const char *cl = (v->meta.flags & ENTRY_F_SLICED) ? entry_get_header(v, "Content-Length") : NULL;
	if (!cl || *cl < '0' || *cl > '9')
		return -1;
	char *end;
	unsigned long long n = strtoull(cl, &end, 10);
	return *end || n > INT64_MAX ? -1 : (int64_t)n;
}

/* Whether a stored slice is slice index of the representation the
 * validators v and total describe. */
static bool stored_slice_ok(const struct entry_view *e, uint64_t index, uint64_t size,
                            uint64_t total, const struct slice_validators *v)
{
	uint64_t t, a, b;
	if (e->meta.status != 206 ||
	    slice_check_response(206, entry_get_header(e, "Content-Range"), index, size, -1, &t) !=
	            SLICE_MATCH ||
	    t != total || !slice_bounds(index, size, (int64_t)total, &a, &b) ||
	    e->body_len != b - a + 1)
		return false;
	struct slice_validators sv;
	validators_of_entry(e, &sv);
	return slice_validators_match(v, &sv);
}

/* ---------- storing (hooks run in the fetch thread) ---------- */

/* A slice's store queued for the writer; owns what the store reads. */
struct slice_store {
	struct fetch *f;        /* a reference (the body) */
	struct buf hdrs, tags;
	struct slice_fill *x;   /* f's context, to leave the table when committed */
};

static void store_done(void *cls, int rc)
{
	struct slice_store *ps = cls;
	struct slice_fill *x = ps->x;
	if (rc == 0)
		counters_add(&x->e->n, C_STORED, 1);
	if (x->in_table) {
		collapse_remove(x->e->collapse, x->skey, ps->f);
		x->in_table = false;
	}
	fetch_unref(ps->f);
	buf_free(&ps->hdrs);
	buf_free(&ps->tags);
	free(ps);
}

static void leave_table(struct slice_fill *x, struct fetch *f)
{
	if (x->in_table) {
		collapse_remove(x->e->collapse, x->skey, f);
		x->in_table = false;
	}
}

static void evaluate(struct slice_fill *x, struct fetch *f)
{
	/* As a 200: the 206's freshness is the representation's (RFC 9111 3.3). */
	struct fresh_in in;
	struct fresh_fields ff = { 0 };
	proxy_fresh_in(&in, &ff, x->e, 200, &f->hdrs, f->request_time, f->response_time);
	in.method = "GET";
	in.req_authorization = x->req_auth;
	freshness_evaluate(&in, &x->fo);
	proxy_fresh_fields_free(&ff);
}

/* A probe answered 200: the origin ignores Range and this is the whole
 * object, handled as an ordinary miss's response would be -- stored whole
 * if it may be and fits (no Vary: the probe did not keep the request
 * headers a variant key needs), else streamed through with bounded memory
 * -- so such an origin costs no second request. */
static void whole_headers(struct slice_fill *x, struct fetch *f)
{
	leave_table(x, f); /* a late joiner could not read bytes already dropped */
	evaluate(x, f);
	uint64_t max = edge_live(x->e)->cache.max_object_size;
	x->whole_store = x->fo.storable && !hdrlist_get(&f->hdrs, "Vary") &&
	                 (f->content_length < 0 || (uint64_t)f->content_length <= max);
	pthread_mutex_lock(&f->lock);
	if (!x->whole_store)
		f->discard = true;
	f->keep_limit = max;
	pthread_mutex_unlock(&f->lock);
}

static void on_headers(struct fetch *f)
{
	struct slice_fill *x = f->ctx;
	struct edge *e = x->e;
	const struct edge_config *live = edge_live(e);
	x->check = slice_check_response(f->status, hdrlist_get(&f->hdrs, "Content-Range"), x->index,
	                                x->size, -1, &x->total);
	if (x->check == SLICE_WHOLE && x->known_total >= 0) {
		/* The origin stopped honouring Range: the object leaves the
		 * slices (head and slices purged) for the ordinary path. */
		log_info("slicer", "%s: origin answered a slice with 200, object no longer sliced",
		         x->key);
		cache_purge_key(e->cache, x->key);
	}
	if (x->check == SLICE_WHOLE && x->probe) {
		whole_headers(x, f);
		return;
	}
	if (x->check != SLICE_MATCH) {
		leave_table(x, f);
		return;
	}
	evaluate(x, f);
	struct slice_validators v, hv = { 0 };
	slicehead_validators(&f->hdrs, &v);
	x->sliceable = x->size == live->cache.slice_size && slicehead_wanted(e, f, &x->fo, x->total);
	if (!x->sliceable) {
		leave_table(x, f);
		return;
	}
	slicehead_validators(&x->head_v, &hv);
	bool changed = x->known_total < 0 || (uint64_t)x->known_total != x->total ||
	               !slice_validators_match(&hv, &v);
	if (changed && x->known_total >= 0)
		log_info("slicer", "%s changed at the origin (slice %" PRIu64 "): new head", x->key,
		         x->index);
	if (x->head_write || changed)
		slicehead_store(e, x->key, f, &x->fo, x->purge_seq, x->total);
}

static void on_done(struct fetch *f)
{
	struct slice_fill *x = f->ctx;
	struct edge *e = x->e;
	uint64_t a = 0, b = 0;
	pthread_mutex_lock(&f->lock);
	bool ok = x->sliceable && f->complete && f->body_base == 0 &&
	          slice_bounds(x->index, x->size, (int64_t)x->total, &a, &b) &&
	          f->body.len == b - a + 1;
	bool whole = x->whole_store && f->complete && !f->discard && f->body_base == 0;
	pthread_mutex_unlock(&f->lock);
	counters_add(&e->n, C_ORIGIN_FETCHES, 1);
	if (f->status == 0 || f->status >= 500)
		counters_add(&e->n, C_ORIGIN_ERRORS, 1);
	if (!ok && !whole) {
		leave_table(x, f);
		return;
	}
	/* A slice stays in the table until committed: a request for it in
	 * between reads this fetch's body (store_done takes it out). */
	struct slice_store *ps = xcalloc(1, sizeof *ps);
	ps->f = f;
	ps->x = x;
	fetch_ref(f);
	slicehead_headers(f, false, x->total, &ps->hdrs, &ps->tags);
	struct entry_meta m;
	entry_meta_from(&x->fo, f->request_time, f->response_time, whole ? 200 : 206,
	                x->purge_seq, &m);
	cache_store_async(e->cache, whole ? x->key : x->skey, NULL, NULL, NULL, &m, ps->hdrs.data,
	                  ps->hdrs.len, ps->tags.data ? ps->tags.data : "", ps->tags.len,
	                  f->body.data, f->body.len, store_done, ps);
}

static void fill_free(void *p)
{
	struct slice_fill *x = p;
	if (!x)
		return;
	free(x->key);
	free(x->skey);
	buf_free(&x->head_v);
	free(x);
}

static const struct fetch_hooks slice_hooks = { on_headers, on_done, fill_free };

/* ---------- slice fetches, collapsed per slice ---------- */

static struct fetch *fetch_slice_new(const struct slice_req *q, uint64_t index, const char *skey)
{
	char range[SLICE_RANGE_LEN];
	if (!slice_range_header(index, q->size, q->total, range))
		return NULL;
	struct edge *e = q->e;
	struct slice_fill *x = xcalloc(1, sizeof *x);
	x->e = e;
	x->key = xstrdup(q->key);
	x->skey = xstrdup(skey);
	x->index = index;
	x->size = q->size;
	x->known_total = q->total;
	if (q->head_v)
		buf_append(&x->head_v, q->head_v->data, q->head_v->len);
	x->head_write = q->head_write;
	x->probe = q->total < 0;
	x->req_auth = q->has_auth;
	x->purge_seq = cache_purge_seq(e->cache);
	/* Identity coding, whoever asks: every slice must be a range of the
	 * same bytes. */
	struct curl_slist *h = NULL;
	char *line = xasprintf("Host: %s", q->host);
	h = curl_slist_append(h, line);
	free(line);
	line = xasprintf("Range: %s", range);
	h = curl_slist_append(h, line);
	free(line);
	line = xasprintf("Via: 1.1 %s", e->cfg.name);
	h = curl_slist_append(h, line);
	free(line);
	line = xasprintf("X-Forwarded-For: %s", q->ip);
	h = curl_slist_append(h, line);
	free(line);
	h = curl_slist_append(h, "Accept:");
	h = curl_slist_append(h, "Expect:");
	char *url = xasprintf("%s%s", e->cfg.origin, q->path);
	struct fetch *f = fetch_new("GET", url, h, NULL, 0, &slice_hooks, x);
	free(url);
	/* With a head, a 200 (the origin now ignores Range) is cut after a
	 * slice's worth instead of downloading the whole object for one slice;
	 * a probe's 200 is the answer to the client (whole_headers). */
	if (!x->probe)
		f->max_body = q->size;
	log_debug("slicer", "fetch %s %s", q->key, range);
	return f;
}

/* A referenced fetch for slice index: the one in flight if it can be
 * shared, else a new one, submitted.  NULL if the slice is past the end. */
static struct fetch *fetch_slice(const struct slice_req *q, uint64_t index, bool *leader)
{
	struct buf sk = BUF_INIT;
	slice_key(q->key, q->size, index, &sk);
	struct collapse *c = q->e->collapse;
	collapse_lock(c);
	struct fetch *f = collapse_find(c, sk.data);
	if (f) {
		pthread_mutex_lock(&f->lock);
		struct slice_fill *x = f->ctx;
		bool ok = f->state != F_FAILED && (f->state == F_PENDING || x->sliceable);
		if (ok)
			fetch_ref(f);
		pthread_mutex_unlock(&f->lock);
		if (ok) {
			collapse_unlock(c);
			buf_free(&sk);
			counters_add(&q->e->n, C_COLLAPSED, 1);
			*leader = false;
			return f;
		}
	}
	f = fetch_slice_new(q, index, sk.data);
	if (f) {
		((struct slice_fill *)f->ctx)->in_table = true;
		collapse_put(c, sk.data, f);
	}
	collapse_unlock(c);
	buf_free(&sk);
	if (f) {
		fetch_submit(q->e->fetcher, f);
		*leader = true;
	}
	return f;
}

/* ---------- reading a response's bytes across slices ---------- */

static void wake_stream(struct fetch_waiter *w)
{
	struct slice_stream *s = (struct slice_stream *)w;
	s->ops->resume(s->cls);
}

static struct slice_stream *stream_new(const struct proxy_call *pc, uint64_t size, uint64_t total,
                                       const struct slice_validators *v)
{
	struct slice_stream *s = xcalloc(1, sizeof *s);
	s->key = xstrdup(pc->key);
	s->host = xstrdup(pc->host);
	s->path = xstrdup(pc->path);
	snprintf(s->ip, sizeof s->ip, "unknown");
	if (pc->client)
		addr_format_ip(pc->client, s->ip, sizeof s->ip);
	pack_validators(v, &s->head_v);
	slicehead_validators(&s->head_v, &s->v);
	s->q = (struct slice_req){ pc->edge, s->key, s->host, s->path, s->ip, size, (int64_t)total,
		                   &s->head_v, false, pc->has_auth };
	s->ops = pc->ops;
	s->cls = pc->cls;
	s->total = total;
	s->len = total;
	s->w.wake = wake_stream;
	return s;
}

void slice_stream_range(struct slice_stream *s, uint64_t off, uint64_t len)
{
	s->off = off;
	s->len = len;
}

/* Takes f (a reference) as the slice being read. */
static void stream_take_fetch(struct slice_stream *s, uint64_t index, struct fetch *f)
{
	s->f = f;
	s->open = true;
	s->checked = false;
	s->cur = index;
	pthread_mutex_lock(&f->lock);
	fetch_add_waiter(f, &s->w);
	pthread_mutex_unlock(&f->lock);
}

static void stream_leave(struct slice_stream *s)
{
	if (s->ref)
		cache_ref_release(s->q.e->cache, s->ref);
	if (s->f) {
		pthread_mutex_lock(&s->f->lock);
		fetch_remove_waiter(s->f, &s->w);
		pthread_mutex_unlock(&s->f->lock);
		fetch_unref(s->f);
	}
	s->ref = NULL;
	s->f = NULL;
	s->open = false;
}

/* Opens slice index from the store if a matching copy is there. */
static bool stream_take_stored(struct slice_stream *s, uint64_t index)
{
	struct cache *cache = s->q.e->cache;
	struct buf sk = BUF_INIT;
	slice_key(s->key, s->q.size, index, &sk);
	struct entry_view v;
	bool ok = false;
	if (cache_lookup(cache, sk.data, NULL, NULL, &s->ref, &v, NULL) == CACHE_HIT) {
		ok = stored_slice_ok(&v, index, s->q.size, s->total, &s->v);
		if (ok) {
			s->data = v.body;
			s->dlen = v.body_len;
			s->open = true;
			s->cur = index;
			cache_touch(cache, sk.data);
		} else {
			cache_ref_release(cache, s->ref);
			s->ref = NULL;
		}
	}
	buf_free(&sk);
	return ok;
}

static int stream_open(struct slice_stream *s, uint64_t index)
{
	if (stream_take_stored(s, index))
		return 0;
	bool leader;
	struct fetch *f = fetch_slice(&s->q, index, &leader);
	if (!f)
		return -1;
	stream_take_fetch(s, index, f);
	return 0;
}

/* Under f->lock, its headers in: whether the fetched slice belongs to the
 * representation this response promised. */
static bool fetched_matches(const struct slice_stream *s, struct fetch *f)
{
	struct slice_fill *x = f->ctx;
	if (x->check != SLICE_MATCH || x->total != s->total)
		return false;
	struct slice_validators v;
	slicehead_validators(&f->hdrs, &v);
	return slice_validators_match(&s->v, &v);
}

ssize_t slice_stream_read(struct slice_stream *s, uint64_t pos, char *out, size_t max)
{
	if (pos >= s->len)
		return PROXY_STREAM_END;
	uint64_t abs = s->off + pos, index = abs / s->q.size, rel = abs - index * s->q.size;
	uint64_t want = s->len - pos < max ? s->len - pos : max;
	if (!s->open || s->cur != index) {
		stream_leave(s);
		if (stream_open(s, index) < 0)
			return PROXY_STREAM_ERROR;
	}
	if (s->ref) {
		if (rel >= s->dlen)
			return PROXY_STREAM_ERROR;
		uint64_t n = s->dlen - rel < want ? s->dlen - rel : want;
		memcpy(out, s->data + rel, (size_t)n);
		return (ssize_t)n;
	}
	struct fetch *f = s->f;
	pthread_mutex_lock(&f->lock);
	if (f->state == F_PENDING)
		goto wait;
	if (!s->checked) {
		if (!fetched_matches(s, f)) {
			pthread_mutex_unlock(&f->lock);
			log_warn("slicer", "%s: slice %" PRIu64 " is not of the version being sent; "
			         "response cut", s->key, index);
			return PROXY_STREAM_ERROR;
		}
		s->checked = true;
	}
	if (f->body_base == 0 && rel < f->body.len) {
		uint64_t n = f->body.len - rel < want ? f->body.len - rel : want;
		memcpy(out, f->body.data + rel, (size_t)n);
		pthread_mutex_unlock(&f->lock);
		return (ssize_t)n;
	}
	if (f->state == F_DONE || f->state == F_FAILED) {
		pthread_mutex_unlock(&f->lock);
		return PROXY_STREAM_ERROR; /* short */
	}
wait:
	s->w.waiting = true;
	s->ops->suspend(s->cls);
	pthread_mutex_unlock(&f->lock);
	return 0;
}

void slice_stream_close(struct slice_stream *s)
{
	if (!s)
		return;
	stream_leave(s);
	buf_free(&s->head_v);
	free(s->key);
	free(s->host);
	free(s->path);
	free(s);
}

/* ---------- answering a request ---------- */

/* The head's headers as sent: without the recorded Content-Length. */
static void head_headers_from(const struct buf *in, struct buf *out)
{
	struct hdrlist_iter it;
	const char *n, *v;
	hdrlist_init(&it, in);
	while (hdrlist_next(&it, &n, &v)) {
		if (!strcasecmp(n, "Content-Length") || !strcasecmp(n, "Content-Range"))
			continue;
		buf_append(out, n, strlen(n) + 1);
		buf_append(out, v, strlen(v) + 1);
	}
}

static void wake_call(struct fetch_waiter *w)
{
	struct proxy_call *pc = (struct proxy_call *)((char *)w - offsetof(struct proxy_call, w));
	pc->ops->resume(pc->cls);
}

/* Ready from a usable head: the stream starts with the stored first slice
 * (if any was opened into s). */
static void answer_head(struct proxy_call *pc, const struct entry_view *head,
                        struct slice_stream *s, struct proxy_answer *a)
{
	struct buf h = { 0 };
	buf_append(&h, head->hdrs, head->hdrs_len);
	head_headers_from(&h, &a->hdrs);
	buf_free(&h);
	int64_t age = freshness_age(head->meta.date, head->meta.age_value, head->meta.request_time,
	                            head->meta.response_time, (int64_t)time(NULL));
	a->kind = PROXY_SLICES;
	a->slices = s;
	a->status = 200;
	a->length = (int64_t)s->total;
	a->cacheable = true;
	a->age = age < 0 ? 0 : age;
	a->cs = (struct cache_status){ .hit = true, .ttl = (long)(head->meta.lifetime - age) };
	counters_add(&pc->edge->n, C_HITS, 1);
}

/* The object is not (or no longer) sliced: the ordinary path. */
static void ordinary(struct proxy_call *pc, struct proxy_answer *a)
{
	proxy_release(pc);
	pc->sliced = false;
	pc->leader = false;
	proxy_start(pc, NULL, a);
}

void slicer_start(struct proxy_call *pc, const struct entry_view *head, bool usable,
                  int64_t first, struct proxy_answer *a)
{
	struct edge *e = pc->edge;
	memset(a, 0, sizeof *a);
	uint64_t size = edge_live(e)->cache.slice_size;
	int64_t total = head ? slicer_head_length(head) : -1;
	if (!size || (head && total < 0)) {
		ordinary(pc, a);
		return;
	}
	struct slice_validators hv = { 0 };
	if (head)
		validators_of_entry(head, &hv);
	uint64_t i0 = first < 0 ? 0 : (uint64_t)first / size;
	if (head && usable) {
		struct slice_stream *s = stream_new(pc, size, (uint64_t)total, &hv);
		if (first < 0 || stream_take_stored(s, i0)) {
			answer_head(pc, head, s, a);
			return;
		}
		slice_stream_close(s);
	}
	/* The first slice comes from the origin; with no usable head, that
	 * ranged request is the revalidation and its answer the new head. */
	struct buf head_v = BUF_INIT;
	pack_validators(&hv, &head_v);
	char ip[ADDR_STRLEN] = "unknown";
	if (pc->client)
		addr_format_ip(pc->client, ip, sizeof ip);
	struct slice_req q = { e, pc->key, pc->host, pc->path, ip, size, total, &head_v,
		               !(head && usable), pc->has_auth };
	bool leader;
	struct fetch *f = fetch_slice(&q, i0, &leader);
	buf_free(&head_v);
	if (!f) {
		ordinary(pc, a);
		return;
	}
	if (head)
		counters_add(&e->n, C_MISSES, 1); /* a probe was counted by the front */
	pc->sliced = true;
	pc->slice_first = first;
	pc->leader = leader;
	pc->f = f;
	pc->w.wake = wake_call;
	pc->w.pos = 0;
	pthread_mutex_lock(&f->lock);
	fetch_add_waiter(f, &pc->w);
	pc->waiting_registered = true;
	pthread_mutex_unlock(&f->lock);
	slicer_resume(pc, a);
}

/* A probe's 200: streamed like a miss (respond opens the stream, then
 * releases pc's hold on f). */
static void answer_whole(struct proxy_call *pc, struct fetch *f, struct slice_fill *x,
                         struct proxy_answer *a)
{
	a->kind = PROXY_STREAM;
	a->f = f;
	a->status = f->status;
	a->length = f->content_length;
	a->cacheable = true;
	a->whole = x->whole_store;
	headers_filter(&f->hdrs, &a->hdrs, NULL);
	a->age = x->fo.storable ? freshness_age(x->fo.date, x->fo.age_value, f->request_time,
	                                        f->response_time, (int64_t)time(NULL))
	                        : -1;
	a->cs = (struct cache_status){ .fwd = pc->fwd, .fwd_status = f->status,
		                       .stored = x->whole_store,
		                       .ttl = x->whole_store ? (long)x->fo.lifetime : LONG_MIN,
		                       .detail = pc->leader ? NULL : "collapsed" };
	pc->sliced = false;
}

void slicer_resume(struct proxy_call *pc, struct proxy_answer *a)
{
	struct fetch *f = pc->f;
	memset(a, 0, sizeof *a);
	if (!f) {
		a->kind = PROXY_ERROR; /* nothing to resume: drop the connection */
		return;
	}
	if (proxy_wait_pending(pc, a))
		return;
	struct slice_fill *x = f->ctx;
	if (x->check == SLICE_WHOLE && x->probe && f->status == 200) {
		answer_whole(pc, f, x, a);
		return;
	}
	if (x->check != SLICE_MATCH || !x->sliceable) {
		log_debug("slicer", "%s: not sliced (status %u, check %d)", pc->key, f->status,
		          (int)x->check);
		ordinary(pc, a);
		return;
	}
	struct slice_validators v;
	slicehead_validators(&f->hdrs, &v);
	struct slice_stream *s = stream_new(pc, x->size, x->total, &v);
	fetch_ref(f);
	stream_take_fetch(s, x->index, f);
	a->kind = PROXY_SLICES;
	a->slices = s;
	a->status = 200;
	a->length = (int64_t)x->total;
	a->cacheable = true;
	struct buf filtered = BUF_INIT;
	headers_filter(&f->hdrs, &filtered, NULL);
	head_headers_from(&filtered, &a->hdrs);
	buf_free(&filtered);
	a->age = freshness_age(x->fo.date, x->fo.age_value, f->request_time, f->response_time,
	                       (int64_t)time(NULL));
	a->cs = (struct cache_status){ .fwd = pc->fwd, .fwd_status = f->status, .stored = true,
		                       .ttl = (long)x->fo.lifetime,
		                       .detail = pc->leader ? NULL : "collapsed" };
	pc->sliced = false;
	proxy_release(pc); /* after the stream registered its own waiter */
	pc->leader = false;
}
