/* fetch.c -- struct fetch (shared by the clients collapsed onto it), the
 * fetch thread and its queues; the transports are fetch_h1.c and
 * fetch_curl.c (fetch_int.h) */
#include "edge/upstream/fetch_int.h"
#include "common/hdrlist.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define DISCARD_TRIM (256u << 10)
#define MAX_RESP_HEADERS (64u << 10)

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
	if (f->req_headers_flat)
		free(f->req_headers);
	else
		curl_slist_free_all(f->req_headers);
	free(f->req_body);
	if (f->up) {
		buf_free(&f->up->win);
		free(f->up);
	}
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

/* Under lock: every waiting client is resumed at once.  (Deferring the
 * wake-ups to the end of a round of events, so a small response wakes its
 * clients once, stalled a streamed large object now and then; the cause was
 * not found.) */
static void wake_all(struct fetch *f)
{
	for (struct fetch_waiter *w = f->waiters; w; w = w->next)
		if (w->waiting) {
			w->waiting = false;
			w->wake(w);
		}
}

/* Wakes the fetch thread.  Callers wake it only when its queues go from
 * empty to non-empty: it takes both whole each time it wakes, so a request
 * submitted while they are not empty is seen without a wake-up of its own. */
static void fetcher_wake(struct fetcher *fr)
{
	uint64_t one = 1;
	while (write(fr->evfd, &one, sizeof one) < 0 && errno == EINTR)
		;
}

/* Under f->lock: has the fetch thread call curl_easy_pause(CONT) (libcurl
 * wants it from the thread driving the handle). */
static void queue_unpause(struct fetch *f)
{
	if (f->unpause)
		return;
	f->unpause = true;
	struct fetcher *fr = f->fr;
	pthread_mutex_lock(&fr->lock);
	fetch_ref(f);
	bool idle = !fr->queue && !fr->unpause;
	f->next_q = fr->unpause;
	fr->unpause = f;
	pthread_mutex_unlock(&fr->lock);
	if (idle)
		fetcher_wake(fr);
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
	if (f->paused && f->body.len < FETCH_DISCARD_HIGH / 2)
		queue_unpause(f);
}

const char *fetch_header(const struct buf *h, const char *name)
{
	return hdrlist_get(h, name);
}

/* ---------- streamed request bodies ---------- */

void fetch_upload_init(struct fetch *f, int64_t length, void (*resume)(void *cls), void *cls)
{
	f->up = xcalloc(1, sizeof *f->up);
	f->up->length = length;
	f->up->resume = resume;
	f->up->cls = cls;
}

enum fetch_put fetch_upload_put(struct fetch *f, const char *p, size_t n, size_t *taken,
                                void (*suspend)(void *cls))
{
	struct fetch_upload *u = f->up;
	*taken = 0;
	pthread_mutex_lock(&f->lock);
	if (f->state == F_DONE || f->state == F_FAILED) {
		pthread_mutex_unlock(&f->lock);
		return FETCH_PUT_OVER;
	}
	size_t room = FETCH_UPLOAD_WINDOW - u->win.len;
	size_t k = n < room ? n : room;
	buf_append(&u->win, p, k);
	*taken = k;
	if (k < n) {
		/* Window full: the client waits for the origin (on_read resumes). */
		u->blocked = true;
		suspend(u->cls);
	}
	if (k && u->read_paused)
		queue_unpause(f);
	pthread_mutex_unlock(&f->lock);
	return FETCH_PUT_OK;
}

void fetch_upload_end(struct fetch *f)
{
	pthread_mutex_lock(&f->lock);
	f->up->end = true;
	if (f->up->read_paused)
		queue_unpause(f);
	pthread_mutex_unlock(&f->lock);
}

void fetch_upload_detach(struct fetch *f)
{
	pthread_mutex_lock(&f->lock);
	struct fetch_upload *u = f->up;
	u->cls = NULL;
	u->blocked = false;
	if (!u->end) {
		u->abort = true;
		if (u->read_paused)
			queue_unpause(f);
	}
	pthread_mutex_unlock(&f->lock);
}

void fetch_upload_unblock(struct fetch_upload *u)
{
	if (u->blocked && u->cls) {
		u->blocked = false;
		u->resume(u->cls);
	}
}

/* ---------- a response as a transport reads it (fetch thread) ---------- */

void fetch_got_status(struct fetch *f, unsigned status)
{
	pthread_mutex_lock(&f->lock);
	f->status = status;
	buf_reset(&f->hdrs);
	pthread_mutex_unlock(&f->lock);
}

bool fetch_got_field(struct fetch *f, const char *name, size_t nl, const char *value, size_t vl)
{
	size_t need = nl + vl + 2;
	if (f->hdrs.len + need > MAX_RESP_HEADERS)
		return false;
	pthread_mutex_lock(&f->lock);
	/* "name\0value\0" written in one go; room for a typical response's
	 * headers taken at once rather than doubled up from 64 bytes. */
	buf_reserve(&f->hdrs, !f->hdrs.cap && need < 1024 ? 1024 : need);
	char *w = f->hdrs.data + f->hdrs.len;
	memcpy(w, name, nl);
	w[nl] = '\0';
	memcpy(w + nl + 1, value, vl);
	w[nl + 1 + vl] = '\0';
	f->hdrs.len += need;
	f->hdrs.data[f->hdrs.len] = '\0';
	pthread_mutex_unlock(&f->lock);
	return true;
}

void fetch_got_head(struct fetch *f, int64_t content_length)
{
	f->response_time = (int64_t)time(NULL);
	pthread_mutex_lock(&f->lock);
	f->content_length = content_length;
	pthread_mutex_unlock(&f->lock);
	if (f->hooks && f->hooks->on_headers)
		f->hooks->on_headers(f);
	pthread_mutex_lock(&f->lock);
	f->state = F_HEADERS;
	wake_all(f);
	pthread_mutex_unlock(&f->lock);
}

enum fetch_take fetch_got_body(struct fetch *f, const char *p, size_t n)
{
	pthread_mutex_lock(&f->lock);
	if (f->discard && f->body.len >= FETCH_DISCARD_HIGH) {
		f->paused = true;
		pthread_mutex_unlock(&f->lock);
		return FETCH_PAUSE;
	}
	if (f->max_body && f->body_base + f->body.len + n > f->max_body) {
		f->too_big = true;
		pthread_mutex_unlock(&f->lock);
		return FETCH_TOO_BIG;
	}
	buf_append(&f->body, p, n);
	if (!f->discard && f->keep_limit && f->body_base + f->body.len > f->keep_limit)
		f->discard = true; /* too big to store (no Content-Length said so): stream through */
	wake_all(f);
	pthread_mutex_unlock(&f->lock);
	return FETCH_TAKEN;
}

void fetch_end(struct fetch *f, const char *err, bool timed_out, bool tls_failed)
{
	pthread_mutex_lock(&f->lock);
	bool failed = err || f->status < 100;
	if (failed) {
		snprintf(f->err, sizeof f->err, "%s", err ? err : "no response");
		f->timed_out = timed_out;
		f->tls_failed = tls_failed;
		f->complete = false;
	} else {
		f->complete = f->content_length < 0 ||
		              (uint64_t)f->content_length == f->body_base + f->body.len ||
		              !strcmp(f->method, "HEAD") || f->status == 304 || f->status == 204;
	}
	pthread_mutex_unlock(&f->lock);
	if (!failed && f->response_time == 0)
		f->response_time = (int64_t)time(NULL);
	if (f->hooks && f->hooks->on_done)
		f->hooks->on_done(f);
	pthread_mutex_lock(&f->lock);
	f->state = failed ? F_FAILED : F_DONE;
	wake_all(f);
	if (f->up)
		fetch_upload_unblock(f->up); /* over mid-body: a client waiting for room learns it */
	pthread_mutex_unlock(&f->lock);
	if (!failed && !f->complete)
		log_info("fetch", "%s %s: body ended at %llu of %lld bytes", f->method, f->url,
		         (unsigned long long)(f->body_base + f->body.len), (long long)f->content_length);
	if (failed && f->tls_failed)
		log_warn("fetch", "%s %s: origin TLS failed: %s", f->method, f->url, f->err);
	else if (failed)
		log_info("fetch", "%s %s failed: %s", f->method, f->url, f->err);
	fetch_unref(f);
}

int64_t fetch_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void fetch_timeouts(const struct fetcher *fr, const struct fetch *f, long *total, long *connect)
{
	long tmo = f->timeout_ms > 0 && f->timeout_ms < fr->timeout_ms ? f->timeout_ms : fr->timeout_ms;
	if (f->up && f->timeout_ms > 0)
		tmo = f->timeout_ms; /* a streamed body: the client's time to send it on top */
	*total = tmo;
	*connect = tmo < fr->connect_timeout_ms ? tmo : fr->connect_timeout_ms;
}

/* ---------- the thread ---------- */

static void start_one(struct fetcher *fr, struct fetch *f)
{
	f->request_time = (int64_t)time(NULL);
	if (!fetch_h1_start(fr->h1, f))
		fetch_curl_start(fr->curl, f);
}

/* The queue is pushed at its head: reversed, it starts in submission order. */
static struct fetch *reverse(struct fetch *q)
{
	struct fetch *r = NULL;
	while (q) {
		struct fetch *next = q->next_q;
		q->next_q = r;
		r = q;
		q = next;
	}
	return r;
}

/* Takes both queues whole: new transfers are started, paused ones resumed.
 * Returns whether the fetcher is stopping. */
static bool take_queues(struct fetcher *fr)
{
	pthread_mutex_lock(&fr->lock);
	struct fetch *q = fr->queue, *u = fr->unpause;
	fr->queue = fr->unpause = NULL;
	bool stop = fr->stop;
	pthread_mutex_unlock(&fr->lock);
	for (q = reverse(q); q;) {
		struct fetch *next = q->next_q;
		if (stop) {
			pthread_mutex_lock(&q->lock);
			snprintf(q->err, sizeof q->err, "shutting down");
			q->state = F_FAILED;
			wake_all(q);
			if (q->up)
				fetch_upload_unblock(q->up);
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
		if (u->up)
			u->up->read_paused = false;
		pthread_mutex_unlock(&u->lock);
		if (u->easy)
			fetch_curl_unpause(fr->curl, u);
		else if (u->h1)
			fetch_h1_unpause(fr->h1, u);
		fetch_unref(u);
		u = next;
	}
	return stop;
}

static void *fetcher_main(void *arg)
{
	struct fetcher *fr = arg;
	struct epoll_event evs[64];
	for (;;) {
		if (take_queues(fr))
			break;
		int wait = fetch_curl_wait_ms(fr->curl);
		int h1w = fetch_h1_wait_ms(fr->h1, fetch_now_ms());
		if (h1w >= 0 && (wait < 0 || h1w < wait))
			wait = h1w;
		/* With wait 0 too: a connection on fetch_h1's more list must not
		 * keep the others' events from being seen. */
		int n = epoll_wait(fr->epfd, evs, 64, wait > 60000 ? 60000 : wait);
		for (int i = 0; i < n; i++) {
			uint64_t d = evs[i].data.u64;
			if (!FETCH_EV_IS_FD(d)) {
				fetch_h1_event(fr->h1, (void *)(uintptr_t)d, evs[i].events);
			} else if (FETCH_EV_TO_FD(d) == fr->evfd) {
				uint64_t v;
				if (read(fr->evfd, &v, sizeof v) < 0 && errno != EAGAIN)
					log_warn("fetch", "eventfd read: %s", strerror(errno));
			} else {
				fetch_curl_event(fr->curl, FETCH_EV_TO_FD(d), evs[i].events);
			}
		}
		fetch_curl_run_timer(fr->curl);
		fetch_h1_expire(fr->h1, fetch_now_ms());
		fetch_curl_reap(fr->curl);
	}
	/* At shutdown the HTTP side has drained its clients already; what is
	 * left (background revalidations) is aborted rather than waited for. */
	fetch_curl_abort_all(fr->curl);
	fetch_h1_abort_all(fr->h1);
	return NULL;
}

struct fetcher *fetcher_start(const struct fetcher_opts *o, char *err, size_t errlen)
{
	struct fetcher *fr = xcalloc(1, sizeof *fr);
	fr->epfd = epoll_create1(EPOLL_CLOEXEC);
	fr->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = FETCH_EV_FD(fr->evfd) };
	if (fr->epfd < 0 || fr->evfd < 0 || epoll_ctl(fr->epfd, EPOLL_CTL_ADD, fr->evfd, &ev) < 0) {
		snprintf(err, errlen, "fetcher: epoll/eventfd: %s", strerror(errno));
		goto fail;
	}
	pthread_mutex_init(&fr->lock, NULL);
	fr->connect_timeout_ms = o->connect_timeout_ms;
	fr->timeout_ms = o->timeout_ms;
	fr->max_connections = o->max_connections;
	fr->curl = fetch_curl_new(fr, o->max_connections);
	fr->h1 = fetch_h1_new(fr, o->max_connections);
	if (pthread_create(&fr->thread, NULL, fetcher_main, fr) != 0) {
		snprintf(err, errlen, "cannot start the fetch thread");
		fetch_curl_free(fr->curl);
		fetch_h1_free(fr->h1);
		pthread_mutex_destroy(&fr->lock);
		goto fail;
	}
	return fr;
fail:
	if (fr->evfd >= 0)
		close(fr->evfd);
	if (fr->epfd >= 0)
		close(fr->epfd);
	free(fr);
	return NULL;
}

void fetcher_stop(struct fetcher *fr)
{
	if (!fr)
		return;
	pthread_mutex_lock(&fr->lock);
	fr->stop = true;
	pthread_mutex_unlock(&fr->lock);
	fetcher_wake(fr);
	pthread_join(fr->thread, NULL);
	fetch_curl_free(fr->curl);
	fetch_h1_free(fr->h1);
	close(fr->evfd);
	close(fr->epfd);
	pthread_mutex_destroy(&fr->lock);
	free(fr);
}

void fetch_submit(struct fetcher *fr, struct fetch *f)
{
	fetch_ref(f);
	f->fr = fr;
	pthread_mutex_lock(&fr->lock);
	bool idle = !fr->queue && !fr->unpause;
	f->next_q = fr->queue;
	fr->queue = f;
	pthread_mutex_unlock(&fr->lock);
	if (idle)
		fetcher_wake(fr);
}
