/* fetch.c -- the origin client: libcurl multi in one thread, shared fetches */
#include "edge/upstream/fetch.h"
#include "common/hdrlist.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define DISCARD_HIGH (4u << 20) /* pause the transfer above this much unread */
#define DISCARD_TRIM (256u << 10)
#define MAX_RESP_HEADERS (64u << 10)
#define EASY_POOL 64

/* The thread drives libcurl with curl_multi_socket_action over its own
 * epoll set: an event touches only the transfer whose socket it is, where
 * curl_multi_perform walked every transfer on every wake-up. */
struct fetcher {
	CURLM *multi;
	pthread_t thread;
	int epfd;
	int evfd;               /* eventfd: wakes the thread for its queues or stop */
	int64_t timer_at;       /* libcurl's next timeout, monotonic ms (-1: none) */
	struct fetch *active;   /* transfers added to multi (fetch thread only) */
	pthread_mutex_t lock;
	struct fetch *queue;    /* submitted, not yet added */
	struct fetch *unpause;  /* waiting for curl_easy_pause(CONT) */
	bool stop;
	int connect_timeout_ms, timeout_ms;
	/* Easy handles of finished GETs, reused (fetch thread only): a fresh
	 * handle costs a large calloc and a 256 KiB receive buffer per miss. */
	struct fetch_easy *idle[EASY_POOL];
	int nidle;
	char *origin;
	/* Fetches whose waiters are woken once this round of events is handled
	 * (fetch thread only): a small response's head, body and end arrive in
	 * one read, and its clients should wake once, to all of it. */
	struct fetch *wakes;
};

/* A GET handle and the parsed URL it fetches (CURLOPT_CURLU), kept
 * together in the pool: a request to the origin the handle fetched from last
 * sets only the URL's path and query, where CURLOPT_URL had libcurl parse the
 * whole URL and print it back (about 12k instructions a miss). */
struct fetch_easy {
	CURL *e;
	CURLU *u;
	size_t base_len;         /* "scheme://authority" last set in u (0: none) */
	char base[256];
};

/* A streamed request body (fetch.h); every field under the fetch's lock. */
struct fetch_upload {
	int64_t length;          /* declared; -1: sent chunked */
	struct buf win;          /* received from the client, not yet sent */
	bool end;                /* the client sent all of it */
	bool abort;              /* the client went away mid-body */
	bool read_paused;        /* the read callback paused the transfer */
	bool blocked;            /* the client is suspended on a full window */
	void (*resume)(void *cls);
	void *cls;               /* NULL once the client is gone */
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

/* Under lock. */
static void wake_now(struct fetch *f)
{
	for (struct fetch_waiter *w = f->waiters; w; w = w->next)
		if (w->waiting) {
			w->waiting = false;
			w->wake(w);
		}
}

/* Under lock, in the fetch thread: f's waiters are woken by flush_wakes at
 * the end of the round (the queue holds a reference). */
static void wake_all(struct fetch *f)
{
	if (f->wake_queued)
		return;
	f->wake_queued = true;
	fetch_ref(f);
	f->wake_next = f->fr->wakes;
	f->fr->wakes = f;
}

static void flush_wakes(struct fetcher *fr)
{
	while (fr->wakes) {
		struct fetch *f = fr->wakes;
		fr->wakes = f->wake_next;
		pthread_mutex_lock(&f->lock);
		f->wake_queued = false;
		f->wake_next = NULL;
		wake_now(f);
		pthread_mutex_unlock(&f->lock);
		fetch_unref(f);
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
	if (f->paused && f->body.len < DISCARD_HIGH / 2)
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

/* Under f->lock: a client suspended on a full window goes on. */
static void upload_unblock(struct fetch_upload *u)
{
	if (u->blocked && u->cls) {
		u->blocked = false;
		u->resume(u->cls);
	}
}

/* ---------- curl callbacks (fetch thread) ---------- */

/* libcurl asks for request body bytes: the window's, a pause while it is
 * empty, 0 at the end, an abort when the client went away. */
static size_t on_read(char *p, size_t size, size_t n, void *cls)
{
	struct fetch *f = cls;
	struct fetch_upload *u = f->up;
	size_t max = size * n;
	pthread_mutex_lock(&f->lock);
	if (u->abort) {
		pthread_mutex_unlock(&f->lock);
		return CURL_READFUNC_ABORT;
	}
	if (!u->win.len) {
		bool end = u->end;
		u->read_paused = !end;
		pthread_mutex_unlock(&f->lock);
		return end ? 0 : CURL_READFUNC_PAUSE;
	}
	size_t k = u->win.len < max ? u->win.len : max;
	memcpy(p, u->win.data, k);
	memmove(u->win.data, u->win.data + k, u->win.len - k);
	u->win.len -= k;
	if (u->win.len <= FETCH_UPLOAD_WINDOW / 2)
		upload_unblock(u);
	pthread_mutex_unlock(&f->lock);
	return k;
}

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
	size_t nl = (size_t)(colon - p), vl = (size_t)(p + l - v);
	pthread_mutex_lock(&f->lock);
	/* "name\0value\0" written in one go; room for a typical response's
	 * headers taken at once rather than doubled up from 64 bytes. */
	size_t need = nl + vl + 2;
	buf_reserve(&f->hdrs, !f->hdrs.cap && need < 1024 ? 1024 : need);
	char *w = f->hdrs.data + f->hdrs.len;
	memcpy(w, p, nl);
	w[nl] = '\0';
	memcpy(w + nl + 1, v, vl);
	w[nl + 1 + vl] = '\0';
	f->hdrs.len += need;
	f->hdrs.data[f->hdrs.len] = '\0';
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

/* Points fe's handle at url: only its path and query when the scheme and
 * authority are those fe fetched from last.  A URL libcurl's parser refuses
 * goes through CURLOPT_URL, so the transfer fails with libcurl's own error. */
static void easy_set_url(struct fetch_easy *fe, const char *url)
{
	const char *sep = strstr(url, "://");
	const char *path = sep ? strchr(sep + 3, '/') : NULL;
	size_t blen = path ? (size_t)(path - url) : 0;
	const char *q = path ? strchr(path, '?') : NULL;
	size_t plen = path ? (q ? (size_t)(q - path) : strlen(path)) : 0;
	char pbuf[2048];
	bool parts = blen && blen < sizeof fe->base && plen < sizeof pbuf && !strchr(url, '#') &&
	             !memchr(url, '?', blen) && fe->base_len == blen && !memcmp(fe->base, url, blen);
	if (parts) {
		memcpy(pbuf, path, plen);
		pbuf[plen] = '\0';
		parts = curl_url_set(fe->u, CURLUPART_PATH, pbuf, 0) == CURLUE_OK &&
		        curl_url_set(fe->u, CURLUPART_QUERY, q && q[1] ? q + 1 : NULL, 0) == CURLUE_OK;
	}
	if (!parts) {
		fe->base_len = 0;
		if (curl_url_set(fe->u, CURLUPART_URL, url, CURLU_PATH_AS_IS | CURLU_NON_SUPPORT_SCHEME) !=
		    CURLUE_OK) {
			curl_easy_setopt(fe->e, CURLOPT_CURLU, NULL);
			curl_easy_setopt(fe->e, CURLOPT_URL, url);
			return;
		}
		if (blen && blen < sizeof fe->base && !memchr(url, '?', blen)) {
			memcpy(fe->base, url, blen);
			fe->base_len = blen;
		}
	}
	curl_easy_setopt(fe->e, CURLOPT_CURLU, fe->u);
}

static void easy_free(struct fetch_easy *fe, CURL *e)
{
	curl_easy_cleanup(e);
	if (fe) {
		curl_url_cleanup(fe->u);
		free(fe);
	}
}

/* Fetch thread: f is in multi from here to finish_one. */
static void active_add(struct fetcher *fr, struct fetch *f)
{
	f->act_prev = NULL;
	f->act_next = fr->active;
	if (fr->active)
		fr->active->act_prev = f;
	fr->active = f;
	curl_multi_add_handle(fr->multi, f->easy);
}

static void active_remove(struct fetcher *fr, struct fetch *f)
{
	if (f->act_prev)
		f->act_prev->act_next = f->act_next;
	else
		fr->active = f->act_next;
	if (f->act_next)
		f->act_next->act_prev = f->act_prev;
	f->act_next = f->act_prev = NULL;
	curl_multi_remove_handle(fr->multi, f->easy);
}

static void start_one(struct fetcher *fr, struct fetch *f)
{
	bool get = !strcmp(f->method, "GET");
	f->fr = fr;
	f->request_time = (int64_t)time(NULL);
	long tmo = f->timeout_ms > 0 && f->timeout_ms < fr->timeout_ms ? f->timeout_ms : fr->timeout_ms;
	if (f->up && f->timeout_ms > 0)
		tmo = f->timeout_ms; /* a streamed body: the client's time to send it on top */
	long ctmo = tmo < fr->connect_timeout_ms ? tmo : fr->connect_timeout_ms;
	if (get && fr->nidle) {
		/* A pooled GET handle keeps every option below but the per-fetch ones. */
		struct fetch_easy *fe = fr->idle[--fr->nidle];
		CURL *e = fe->e;
		f->fe = fe;
		f->easy = e;
		easy_set_url(fe, f->url);
		curl_easy_setopt(e, CURLOPT_PRIVATE, f);
		curl_easy_setopt(e, CURLOPT_HEADERDATA, f);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->req_headers);
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ctmo);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, tmo);
		curl_easy_setopt(e, CURLOPT_CAINFO, f->ca_file); /* NULL: back to the system store */
		active_add(fr, f);
		return;
	}
	CURL *e = curl_easy_init();
	f->easy = e;
	if (get) {
		f->fe = xcalloc(1, sizeof *f->fe);
		f->fe->e = e;
		f->fe->u = curl_url();
		easy_set_url(f->fe, f->url);
	} else {
		curl_easy_setopt(e, CURLOPT_URL, f->url);
	}
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
	/* The origin is reached directly: no proxy from the environment
	 * (libcurl would read http_proxy and no_proxy for every transfer). */
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	/* https origins: libcurl verifies the chain and the name by default
	 * and sends SNI; say so anyway, a default is not a contract. */
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (f->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, f->ca_file);
	if (!strcmp(f->method, "HEAD")) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else if (strcmp(f->method, "GET")) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, f->method);
		if (f->up) {
			/* POST framing with the method above; length -1 goes chunked
			 * (the caller's Transfer-Encoding header says so). */
			curl_easy_setopt(e, CURLOPT_POST, 1L);
			curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
			curl_easy_setopt(e, CURLOPT_READDATA, f);
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)f->up->length);
		} else if (f->req_body_len || strcmp(f->method, "DELETE")) {
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, f->req_body ? f->req_body : "");
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)f->req_body_len);
		}
	}
	active_add(fr, f);
}

static void finish_one(struct fetcher *fr, struct fetch *f, CURLcode res)
{
	active_remove(fr, f);
	if (f->fe && fr->nidle < EASY_POOL)
		fr->idle[fr->nidle++] = f->fe;
	else
		easy_free(f->fe, f->easy);
	f->fe = NULL;
	f->easy = NULL;
	pthread_mutex_lock(&f->lock);
	if (res != CURLE_OK || f->status < 100) {
		snprintf(f->err, sizeof f->err, "%s", curl_easy_strerror(res));
		f->timed_out = res == CURLE_OPERATION_TIMEDOUT;
		f->tls_failed = res == CURLE_PEER_FAILED_VERIFICATION || res == CURLE_SSL_CONNECT_ERROR ||
		                res == CURLE_SSL_CACERT_BADFILE || res == CURLE_SSL_CERTPROBLEM;
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
	if (f->up)
		upload_unblock(f->up); /* over mid-body: a client waiting for room learns it */
	pthread_mutex_unlock(&f->lock);
	if (failed && f->tls_failed)
		log_warn("fetch", "%s %s: origin TLS failed: %s", f->method, f->url, f->err);
	else if (failed)
		log_info("fetch", "%s %s failed: %s", f->method, f->url, f->err);
	fetch_unref(f);
}

/* ---------- libcurl's sockets and timer on our epoll set ---------- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* CURLMOPT_SOCKETFUNCTION: what libcurl waits for on socket s.  socketp is
 * non-NULL once s is in the epoll set (curl_multi_assign). */
static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct fetcher *fr = userp;
	if (what == CURL_POLL_REMOVE) {
		/* libcurl may have closed s already (which left the set by itself). */
		epoll_ctl(fr->epfd, EPOLL_CTL_DEL, s, NULL);
		curl_multi_assign(fr->multi, s, NULL);
		return 0;
	}
	struct epoll_event ev = { 0 };
	ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
	ev.data.fd = s;
	int op = socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(fr->epfd, op, s, &ev) < 0) {
		/* A socket number reused before our registration went away, or
		 * one that left the set on close: the other operation fits. */
		op = op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
		if (epoll_ctl(fr->epfd, op, s, &ev) < 0) {
			log_warn("fetch", "epoll_ctl on a socket to the origin: %s", strerror(errno));
			return -1; /* libcurl fails the transfers on it */
		}
	}
	if (!socketp)
		curl_multi_assign(fr->multi, s, fr);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: one timer for the whole multi handle. */
static int on_timer(CURLM *m, long timeout_ms, void *userp)
{
	struct fetcher *fr = userp;
	fr->timer_at = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	return 0;
}

/* Finishes the transfers libcurl reports done. */
static void reap_done(struct fetcher *fr)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(fr->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct fetch *f;
		CURL *e = m->easy_handle;
		CURLcode res = m->data.result;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&f);
		finish_one(fr, f, res);
	}
}

/* ---------- the thread ---------- */

/* Takes both queues whole: new transfers are added, paused ones resumed.
 * Returns whether the fetcher is stopping. */
static bool take_queues(struct fetcher *fr)
{
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
			if (q->up)
				upload_unblock(q->up);
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
			curl_easy_pause(u->easy, CURLPAUSE_CONT); /* sets a 0 timer: runs below */
		fetch_unref(u);
		u = next;
	}
	return stop;
}

static void *fetcher_main(void *arg)
{
	struct fetcher *fr = arg;
	struct epoll_event evs[64];
	int running = 0;
	for (;;) {
		if (take_queues(fr))
			break;
		/* With transfers running, libcurl is asked at least once a
		 * second (as a timer callback it skipped would otherwise stall them). */
		int wait = fr->active ? 1000 : -1;
		if (fr->timer_at >= 0) {
			int64_t d = fr->timer_at - now_ms();
			if (d < 0)
				d = 0;
			if (wait < 0 || d < wait)
				wait = (int)(d > 60000 ? 60000 : d);
		}
		int n = wait == 0 ? 0 : epoll_wait(fr->epfd, evs, 64, wait);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.fd == fr->evfd) {
				uint64_t v;
				if (read(fr->evfd, &v, sizeof v) < 0 && errno != EAGAIN)
					log_warn("fetch", "eventfd read: %s", strerror(errno));
				continue;
			}
			int mask = ((evs[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0) |
			           ((evs[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
			           ((evs[i].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
			curl_multi_socket_action(fr->multi, evs[i].data.fd, mask, &running);
		}
		if (n == 0 || (fr->timer_at >= 0 && fr->timer_at <= now_ms())) {
			fr->timer_at = -1; /* libcurl sets it again if it still wants one */
			curl_multi_socket_action(fr->multi, CURL_SOCKET_TIMEOUT, 0, &running);
		}
		reap_done(fr);
		flush_wakes(fr);
	}
	/* At shutdown the HTTP side has drained its clients already; what is
	 * left (background revalidations) is aborted rather than waited for. */
	while (fr->active)
		finish_one(fr, fr->active, CURLE_ABORTED_BY_CALLBACK);
	flush_wakes(fr);
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
	fr->epfd = epoll_create1(EPOLL_CLOEXEC);
	fr->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fr->evfd };
	if (fr->epfd < 0 || fr->evfd < 0 || epoll_ctl(fr->epfd, EPOLL_CTL_ADD, fr->evfd, &ev) < 0) {
		snprintf(err, errlen, "fetcher: epoll/eventfd: %s", strerror(errno));
		goto fail;
	}
	pthread_mutex_init(&fr->lock, NULL);
	fr->timer_at = -1;
	fr->multi = curl_multi_init();
	fr->origin = xstrdup(o->origin);
	fr->connect_timeout_ms = o->connect_timeout_ms;
	fr->timeout_ms = o->timeout_ms;
	curl_multi_setopt(fr->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o->max_connections);
	curl_multi_setopt(fr->multi, CURLMOPT_MAXCONNECTS, (long)o->max_connections);
	curl_multi_setopt(fr->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(fr->multi, CURLMOPT_SOCKETDATA, fr);
	curl_multi_setopt(fr->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(fr->multi, CURLMOPT_TIMERDATA, fr);
	if (pthread_create(&fr->thread, NULL, fetcher_main, fr) != 0) {
		snprintf(err, errlen, "cannot start the fetch thread");
		curl_multi_cleanup(fr->multi);
		free(fr->origin);
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
	for (int i = 0; i < fr->nidle; i++)
		easy_free(fr->idle[i], fr->idle[i]->e);
	curl_multi_cleanup(fr->multi);
	close(fr->evfd);
	close(fr->epfd);
	free(fr->origin);
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
