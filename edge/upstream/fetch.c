/* fetch.c -- the origin client: libcurl multi in one thread, shared fetches */
#include "edge/upstream/fetch.h"
#include "common/hdrlist.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DISCARD_HIGH (4u << 20) /* pause the transfer above this much unread */
#define DISCARD_TRIM (256u << 10)
#define MAX_RESP_HEADERS (64u << 10)
#define EASY_POOL 64

struct fetcher {
	CURLM *multi;
	pthread_t thread;
	pthread_mutex_t lock;
	struct fetch *queue;    /* submitted, not yet added */
	struct fetch *unpause;  /* waiting for curl_easy_pause(CONT) */
	bool stop;
	int connect_timeout_ms, timeout_ms;
	/* Easy handles of finished GETs, reused (fetch thread only): a fresh
	 * handle costs a large calloc and a 256 KiB receive buffer per miss. */
	CURL *idle[EASY_POOL];
	int nidle;
	char *origin;
};

/* ---------- struct fetch ---------- */

struct fetch *fetch_new(const char *method, const char *url, struct curl_slist *headers,
                        char *body, size_t body_len, const struct fetch_hooks *hooks, void *ctx)
{
	struct fetch *f = xcalloc(1, sizeof *f);
	pthread_mutex_init(&f->lock, NULL);
	f->refs = 1;
	f->method = xstrdup(method);
	f->url = xstrdup(url);
	f->req_headers = headers;
	f->req_body = body;
	f->req_body_len = body_len;
	f->hooks = hooks;
	f->ctx = ctx;
	f->content_length = -1;
	return f;
}

void fetch_ref(struct fetch *f)
{
	__atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
}

void fetch_unref(struct fetch *f)
{
	if (!f || __atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	if (f->hooks && f->hooks->free_ctx)
		f->hooks->free_ctx(f->ctx);
	curl_slist_free_all(f->req_headers);
	free(f->req_body);
	free(f->url);
	free(f->method);
	buf_free(&f->hdrs);
	buf_free(&f->body);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

void fetch_add_waiter(struct fetch *f, struct fetch_waiter *w)
{
	w->next = f->waiters;
	f->waiters = w;
}

void fetch_remove_waiter(struct fetch *f, struct fetch_waiter *w)
{
	for (struct fetch_waiter **p = &f->waiters; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			break;
		}
	fetch_consumed(f);
}

/* Under lock. */
static void wake_all(struct fetch *f)
{
	for (struct fetch_waiter *w = f->waiters; w; w = w->next)
		if (w->waiting) {
			w->waiting = false;
			w->wake(w);
		}
}

void fetch_consumed(struct fetch *f)
{
	if (!f->discard)
		return;
	uint64_t min = f->body_base + f->body.len;
	for (struct fetch_waiter *w = f->waiters; w; w = w->next)
		if (w->pos < min)
			min = w->pos;
	uint64_t drop = min > f->body_base ? min - f->body_base : 0;
	if (drop >= DISCARD_TRIM || (drop && drop == f->body.len)) {
		memmove(f->body.data, f->body.data + drop, f->body.len - drop);
		f->body.len -= drop;
		f->body_base += drop;
	}
	if (f->paused && !f->unpause && f->body.len < DISCARD_HIGH / 2) {
		f->unpause = true;
		struct fetcher *fr = f->fr;
		pthread_mutex_lock(&fr->lock);
		fetch_ref(f);
		f->next_q = fr->unpause;
		fr->unpause = f;
		pthread_mutex_unlock(&fr->lock);
		curl_multi_wakeup(fr->multi);
	}
}

const char *fetch_header(const struct buf *h, const char *name)
{
	return hdrlist_get(h, name);
}

/* ---------- curl callbacks (fetch thread) ---------- */

static size_t on_header(char *p, size_t size, size_t n, void *cls)
{
	struct fetch *f = cls;
	size_t len = size * n;
	size_t l = len;
	while (l && (p[l - 1] == '\r' || p[l - 1] == '\n'))
		l--;
	if (l >= 5 && !strncmp(p, "HTTP/", 5)) {
		/* A new status line (after a 1xx): start over. */
		const char *sp = memchr(p, ' ', l);
		unsigned st = sp ? (unsigned)strtoul(sp + 1, NULL, 10) : 0;
		pthread_mutex_lock(&f->lock);
		f->status = st;
		buf_reset(&f->hdrs);
		pthread_mutex_unlock(&f->lock);
		return len;
	}
	if (l == 0) {
		if (f->status < 200)
			return len; /* end of an interim response */
		curl_off_t cl = -1;
		curl_easy_getinfo(f->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
		f->response_time = (int64_t)time(NULL);
		pthread_mutex_lock(&f->lock);
		f->content_length = cl;
		pthread_mutex_unlock(&f->lock);
		if (f->hooks && f->hooks->on_headers)
			f->hooks->on_headers(f);
		pthread_mutex_lock(&f->lock);
		f->state = F_HEADERS;
		wake_all(f);
		pthread_mutex_unlock(&f->lock);
		return len;
	}
	const char *colon = memchr(p, ':', l);
	if (!colon || colon == p)
		return len; /* obs-fold or junk: ignored */
	if (f->hdrs.len + l + 2 > MAX_RESP_HEADERS)
		return 0; /* aborts the transfer */
	const char *v = colon + 1;
	while (v < p + l && (*v == ' ' || *v == '\t'))
		v++;
	pthread_mutex_lock(&f->lock);
	buf_append(&f->hdrs, p, (size_t)(colon - p));
	buf_append(&f->hdrs, "", 1);
	buf_append(&f->hdrs, v, (size_t)(p + l - v));
	buf_append(&f->hdrs, "", 1);
	pthread_mutex_unlock(&f->lock);
	return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *cls)
{
	struct fetch *f = cls;
	size_t len = size * n;
	pthread_mutex_lock(&f->lock);
	if (f->discard && f->body.len >= DISCARD_HIGH) {
		f->paused = true;
		pthread_mutex_unlock(&f->lock);
		return CURL_WRITEFUNC_PAUSE;
	}
	if (f->max_body && f->body_base + f->body.len + len > f->max_body) {
		f->too_big = true;
		pthread_mutex_unlock(&f->lock);
		return 0; /* aborts the transfer (CURLE_WRITE_ERROR) */
	}
	buf_append(&f->body, p, len);
	if (!f->discard && f->keep_limit && f->body_base + f->body.len > f->keep_limit)
		f->discard = true; /* too big to store (no Content-Length said so): stream through */
	wake_all(f);
	pthread_mutex_unlock(&f->lock);
	return len;
}

/* ---------- the thread ---------- */

/* At shutdown the HTTP side has drained its clients already; what is left
 * (background revalidations) is aborted rather than waited for. */
static int on_progress(void *cls, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct fetch *f = cls;
	return __atomic_load_n(&f->fr->stop, __ATOMIC_RELAXED) ? 1 : 0;
}

static void start_one(struct fetcher *fr, struct fetch *f)
{
	bool get = !strcmp(f->method, "GET");
	f->fr = fr;
	f->request_time = (int64_t)time(NULL);
	long tmo = f->timeout_ms > 0 && f->timeout_ms < fr->timeout_ms ? f->timeout_ms : fr->timeout_ms;
	long ctmo = tmo < fr->connect_timeout_ms ? tmo : fr->connect_timeout_ms;
	if (get && fr->nidle) {
		/* A pooled GET handle keeps every option below but the per-fetch ones. */
		CURL *e = fr->idle[--fr->nidle];
		f->easy = e;
		curl_easy_setopt(e, CURLOPT_URL, f->url);
		curl_easy_setopt(e, CURLOPT_PRIVATE, f);
		curl_easy_setopt(e, CURLOPT_HEADERDATA, f);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->req_headers);
		curl_easy_setopt(e, CURLOPT_XFERINFODATA, f);
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ctmo);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, tmo);
		curl_multi_add_handle(fr->multi, e);
		return;
	}
	CURL *e = curl_easy_init();
	f->easy = e;
	curl_easy_setopt(e, CURLOPT_URL, f->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, f);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ctmo);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, tmo);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, f);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->req_headers);
	curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L); /* we normalised already */
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L * 1024);
	curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(e, CURLOPT_XFERINFODATA, f);
	curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	if (!strcmp(f->method, "HEAD")) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else if (strcmp(f->method, "GET")) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, f->method);
		if (f->req_body_len || strcmp(f->method, "DELETE")) {
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, f->req_body ? f->req_body : "");
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)f->req_body_len);
		}
	}
	curl_multi_add_handle(fr->multi, e);
}

static void finish_one(struct fetcher *fr, struct fetch *f, CURLcode res)
{
	curl_multi_remove_handle(fr->multi, f->easy);
	if (!strcmp(f->method, "GET") && fr->nidle < EASY_POOL)
		fr->idle[fr->nidle++] = f->easy;
	else
		curl_easy_cleanup(f->easy);
	f->easy = NULL;
	pthread_mutex_lock(&f->lock);
	if (res != CURLE_OK || f->status < 100) {
		snprintf(f->err, sizeof f->err, "%s", curl_easy_strerror(res));
		f->timed_out = res == CURLE_OPERATION_TIMEDOUT;
		f->complete = false;
	} else {
		f->complete = f->content_length < 0 ||
		              (uint64_t)f->content_length == f->body_base + f->body.len ||
		              !strcmp(f->method, "HEAD") || f->status == 304 || f->status == 204;
	}
	bool failed = res != CURLE_OK || f->status < 100;
	pthread_mutex_unlock(&f->lock);
	if (!failed && f->response_time == 0)
		f->response_time = (int64_t)time(NULL);
	if (f->hooks && f->hooks->on_done)
		f->hooks->on_done(f);
	pthread_mutex_lock(&f->lock);
	f->state = failed ? F_FAILED : F_DONE;
	wake_all(f);
	pthread_mutex_unlock(&f->lock);
	if (failed)
		log_info("fetch", "%s %s failed: %s", f->method, f->url, f->err);
	fetch_unref(f);
}

static void *fetcher_main(void *arg)
{
	struct fetcher *fr = arg;
	for (;;) {
		pthread_mutex_lock(&fr->lock);
		struct fetch *q = fr->queue, *u = fr->unpause;
		fr->queue = fr->unpause = NULL;
		bool stop = fr->stop;
		pthread_mutex_unlock(&fr->lock);
		while (q) {
			struct fetch *next = q->next_q;
			if (stop) {
				pthread_mutex_lock(&q->lock);
				snprintf(q->err, sizeof q->err, "shutting down");
				q->state = F_FAILED;
				wake_all(q);
				pthread_mutex_unlock(&q->lock);
				fetch_unref(q);
			} else {
				start_one(fr, q);
			}
			q = next;
		}
		while (u) {
			struct fetch *next = u->next_q;
			pthread_mutex_lock(&u->lock);
			u->paused = u->unpause = false;
			pthread_mutex_unlock(&u->lock);
			if (u->easy)
				curl_easy_pause(u->easy, CURLPAUSE_CONT);
			fetch_unref(u);
			u = next;
		}
		int running = 0;
		curl_multi_perform(fr->multi, &running);
		CURLMsg *m;
		int left;
		while ((m = curl_multi_info_read(fr->multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			struct fetch *f;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&f);
			finish_one(fr, f, m->data.result);
		}
		if (stop && running == 0)
			break;
		curl_multi_poll(fr->multi, NULL, 0, stop ? 50 : 1000, NULL);
	}
	return NULL;
}

static void global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct fetcher *fetcher_start(const struct fetcher_opts *o, char *err, size_t errlen)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, global_init);
	struct fetcher *fr = xcalloc(1, sizeof *fr);
	pthread_mutex_init(&fr->lock, NULL);
	fr->multi = curl_multi_init();
	fr->origin = xstrdup(o->origin);
	fr->connect_timeout_ms = o->connect_timeout_ms;
	fr->timeout_ms = o->timeout_ms;
	curl_multi_setopt(fr->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o->max_connections);
	curl_multi_setopt(fr->multi, CURLMOPT_MAXCONNECTS, (long)o->max_connections);
	if (pthread_create(&fr->thread, NULL, fetcher_main, fr) != 0) {
		snprintf(err, errlen, "cannot start the fetch thread");
		curl_multi_cleanup(fr->multi);
		free(fr->origin);
		free(fr);
		return NULL;
	}
	return fr;
}

void fetcher_stop(struct fetcher *fr)
{
	if (!fr)
		return;
	pthread_mutex_lock(&fr->lock);
	fr->stop = true;
	pthread_mutex_unlock(&fr->lock);
	curl_multi_wakeup(fr->multi);
	pthread_join(fr->thread, NULL);
	for (int i = 0; i < fr->nidle; i++)
		curl_easy_cleanup(fr->idle[i]);
	curl_multi_cleanup(fr->multi);
	free(fr->origin);
	pthread_mutex_destroy(&fr->lock);
	free(fr);
}

void fetch_submit(struct fetcher *fr, struct fetch *f)
{
	fetch_ref(f);
	f->fr = fr;
	pthread_mutex_lock(&fr->lock);
	f->next_q = fr->queue;
	fr->queue = f;
	pthread_mutex_unlock(&fr->lock);
	curl_multi_wakeup(fr->multi);
}
