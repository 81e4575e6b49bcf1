/* fetch_curl.c -- the libcurl transport of the fetch thread: https origins,
 * request bodies, methods other than GET and HEAD, origins named by a host
 * name.  libcurl's multi interface is driven with curl_multi_socket_action
 * on the fetch thread's epoll set: an event touches only the transfer whose
 * socket it is. */
#include "edge/upstream/fetch_int.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#define EASY_POOL 64

/* A GET handle and the parsed URL it fetches (CURLOPT_CURLU), kept
 * together in the pool: a request to the origin the handle fetched from last
 * sets only the URL's path and query, where CURLOPT_URL had libcurl parse the
 * whole URL and print it back (about 12k instructions a transfer). */
struct fetch_easy {
	CURL *e;
	CURLU *u;
	size_t base_len;         /* "scheme://authority" last set in u (0: none) */
	char base[256];
};

struct fetch_curl {
	struct fetcher *fr;
	CURLM *multi;
	int64_t timer_at;        /* libcurl's next timeout, monotonic ms (-1: none) */
	int64_t last_run;        /* when its timer last ran (ms) */
	struct fetch *active;    /* transfers added to multi */
	/* Easy handles of finished GETs, reused: a fresh handle costs a large
	 * calloc and a 256 KiB receive buffer per transfer. */
	struct fetch_easy *idle[EASY_POOL];
	int nidle;
};

/* ---------- libcurl's callbacks ---------- */

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
		fetch_upload_unblock(u);
	pthread_mutex_unlock(&f->lock);
	return k;
}

/* One line of the head as libcurl hands it over (status line, field line,
 * or the empty line that ends it). */
static size_t on_header(char *p, size_t size, size_t n, void *cls)
{
	struct fetch *f = cls;
	size_t len = size * n;
	size_t l = len;
	while (l && (p[l - 1] == '\r' || p[l - 1] == '\n'))
		l--;
	if (l >= 5 && !strncmp(p, "HTTP/", 5)) {
		const char *sp = memchr(p, ' ', l);
		fetch_got_status(f, sp ? (unsigned)strtoul(sp + 1, NULL, 10) : 0);
		return len;
	}
	if (l == 0) {
		if (f->status < 200)
			return len; /* end of an interim response */
		curl_off_t cl = -1;
		curl_easy_getinfo(f->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
		fetch_got_head(f, cl);
		return len;
	}
	const char *colon = memchr(p, ':', l);
	if (!colon || colon == p)
		return len; /* obs-fold or junk: ignored */
	const char *v = colon + 1;
	while (v < p + l && (*v == ' ' || *v == '\t'))
		v++;
	if (!fetch_got_field(f, p, (size_t)(colon - p), v, (size_t)(p + l - v)))
		return 0; /* aborts the transfer */
	return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *cls)
{
	size_t len = size * n;
	switch (fetch_got_body(cls, p, len)) {
	case FETCH_TAKEN:
		return len;
	case FETCH_PAUSE:
		return CURL_WRITEFUNC_PAUSE;
	case FETCH_TOO_BIG:
		break;
	}
	return 0; /* aborts the transfer (CURLE_WRITE_ERROR) */
}

/* ---------- handles ---------- */

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

/* f is in multi from here to finish_one. */
static void active_add(struct fetch_curl *fc, struct fetch *f)
{
	f->act_prev = NULL;
	f->act_next = fc->active;
	if (fc->active)
		fc->active->act_prev = f;
	fc->active = f;
	curl_multi_add_handle(fc->multi, f->easy);
}

static void active_remove(struct fetch_curl *fc, struct fetch *f)
{
	if (f->act_prev)
		f->act_prev->act_next = f->act_next;
	else
		fc->active = f->act_next;
	if (f->act_next)
		f->act_next->act_prev = f->act_prev;
	f->act_next = f->act_prev = NULL;
	curl_multi_remove_handle(fc->multi, f->easy);
}

/* The options of a handle for f that a pooled GET handle keeps. */
static CURL *easy_new(struct fetch *f, bool get)
{
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
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
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
	return e;
}

void fetch_curl_start(struct fetch_curl *fc, struct fetch *f)
{
	bool get = !strcmp(f->method, "GET");
	long tmo, ctmo;
	fetch_timeouts(fc->fr, f, &tmo, &ctmo);
	CURL *e;
	if (get && fc->nidle) {
		struct fetch_easy *fe = fc->idle[--fc->nidle];
		e = fe->e;
		f->fe = fe;
		f->easy = e;
		easy_set_url(fe, f->url);
		curl_easy_setopt(e, CURLOPT_CAINFO, f->ca_file); /* NULL: back to the system store */
	} else {
		e = easy_new(f, get);
		if (f->ca_file)
			curl_easy_setopt(e, CURLOPT_CAINFO, f->ca_file);
	}
	curl_easy_setopt(e, CURLOPT_PRIVATE, f);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, f);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->req_headers);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ctmo);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, tmo);
	if (!strcmp(f->method, "HEAD")) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else if (!get) {
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
	active_add(fc, f);
}

static void finish_one(struct fetch_curl *fc, struct fetch *f, CURLcode res)
{
	active_remove(fc, f);
	if (f->fe && fc->nidle < EASY_POOL)
		fc->idle[fc->nidle++] = f->fe;
	else
		easy_free(f->fe, f->easy);
	f->fe = NULL;
	f->easy = NULL;
	if (res == CURLE_OK && f->status >= 100) {
		fetch_end(f, NULL, false, false);
		return;
	}
	bool tls = res == CURLE_PEER_FAILED_VERIFICATION || res == CURLE_SSL_CONNECT_ERROR ||
	           res == CURLE_SSL_CACERT_BADFILE || res == CURLE_SSL_CERTPROBLEM;
	fetch_end(f, curl_easy_strerror(res), res == CURLE_OPERATION_TIMEDOUT, tls);
}

/* ---------- libcurl's sockets and timer on the fetch thread's epoll set ---------- */

/* CURLMOPT_SOCKETFUNCTION: what libcurl waits for on socket s.  socketp is
 * non-NULL once s is in the epoll set (curl_multi_assign). */
static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	(void)e;
	struct fetch_curl *fc = userp;
	int epfd = fc->fr->epfd;
	if (what == CURL_POLL_REMOVE) {
		/* libcurl may have closed s already (which left the set by itself). */
		epoll_ctl(epfd, EPOLL_CTL_DEL, s, NULL);
		curl_multi_assign(fc->multi, s, NULL);
		return 0;
	}
	struct epoll_event ev = { 0 };
	ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
	ev.data.u64 = FETCH_EV_FD(s);
	int op = socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(epfd, op, s, &ev) < 0) {
		/* A socket number reused before our registration went away, or
		 * one that left the set on close: the other operation fits. */
		op = op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
		if (epoll_ctl(epfd, op, s, &ev) < 0) {
			log_warn("fetch", "epoll_ctl on a socket to the origin: %s", strerror(errno));
			return -1; /* libcurl fails the transfers on it */
		}
	}
	if (!socketp)
		curl_multi_assign(fc->multi, s, fc);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: one timer for the whole multi handle. */
static int on_timer(CURLM *m, long timeout_ms, void *userp)
{
	(void)m;
	struct fetch_curl *fc = userp;
	fc->timer_at = timeout_ms < 0 ? -1 : fetch_now_ms() + timeout_ms;
	return 0;
}

void fetch_curl_event(struct fetch_curl *fc, int fd, uint32_t events)
{
	int mask = ((events & EPOLLIN) ? CURL_CSELECT_IN : 0) |
	           ((events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
	           ((events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
	int running;
	curl_multi_socket_action(fc->multi, fd, mask, &running);
}

int fetch_curl_wait_ms(struct fetch_curl *fc)
{
	/* With transfers running, libcurl is asked at least once a second (as
	 * a timer callback it skipped would otherwise stall them). */
	int wait = fc->active ? 1000 : -1;
	if (fc->timer_at >= 0) {
		int64_t d = fc->timer_at - fetch_now_ms();
		if (d < 0)
			d = 0;
		if (wait < 0 || d < wait)
			wait = (int)d;
	}
	return wait;
}

void fetch_curl_run_timer(struct fetch_curl *fc)
{
	int64_t now = fetch_now_ms();
	bool due = fc->timer_at >= 0 && fc->timer_at <= now;
	bool nudge = fc->active && now - fc->last_run >= 1000; /* see fetch_curl_wait_ms */
	if (!due && !nudge)
		return;
	fc->last_run = now;
	fc->timer_at = -1; /* libcurl sets it again if it still wants one */
	int running;
	curl_multi_socket_action(fc->multi, CURL_SOCKET_TIMEOUT, 0, &running);
}

void fetch_curl_reap(struct fetch_curl *fc)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(fc->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct fetch *f;
		CURLcode res = m->data.result;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&f);
		finish_one(fc, f, res);
	}
}

void fetch_curl_unpause(struct fetch_curl *fc, struct fetch *f)
{
	(void)fc;
	curl_easy_pause(f->easy, CURLPAUSE_CONT); /* sets a 0 timer: runs this round */
}

void fetch_curl_abort_all(struct fetch_curl *fc)
{
	while (fc->active)
		finish_one(fc, fc->active, CURLE_ABORTED_BY_CALLBACK);
}

static void global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct fetch_curl *fetch_curl_new(struct fetcher *fr, unsigned max_connections)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT; /* curl_global_init: once per process */
	pthread_once(&once, global_init);
	struct fetch_curl *fc = xcalloc(1, sizeof *fc);
	fc->fr = fr;
	fc->timer_at = -1;
	fc->multi = curl_multi_init();
	curl_multi_setopt(fc->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)max_connections);
	curl_multi_setopt(fc->multi, CURLMOPT_MAXCONNECTS, (long)max_connections);
	curl_multi_setopt(fc->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(fc->multi, CURLMOPT_SOCKETDATA, fc);
	curl_multi_setopt(fc->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(fc->multi, CURLMOPT_TIMERDATA, fc);
	return fc;
}

void fetch_curl_free(struct fetch_curl *fc)
{
	if (!fc)
		return;
	for (int i = 0; i < fc->nidle; i++)
		easy_free(fc->idle[i], fc->idle[i]->e);
	curl_multi_cleanup(fc->multi);
	free(fc);
}
