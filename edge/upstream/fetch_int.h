/* fetch_int.h -- what fetch.c (struct fetch, the fetch thread) shares with
 * its two transports:
 *   fetch_h1.c    the edge's own HTTP/1.1 client, for GET and HEAD to a
 *                 plain-http origin named by its address: the miss path;
 *   fetch_curl.c  libcurl, for everything else (https, request bodies,
 *                 other methods, origins named by a host name).
 * A transport reports a response through the fetch_got_* calls and ends a
 * transfer with fetch_end.  Everything here runs in the fetch thread unless
 * it says otherwise. */
#ifndef MINICDN_FETCH_INT_H
#define MINICDN_FETCH_INT_H

#include "edge/upstream/fetch.h"
#include <stdint.h>

#define FETCH_DISCARD_HIGH (4u << 20) /* pause a transfer above this much unread */

struct fetch_curl; /* fetch_curl.c */
struct h1_pool;    /* fetch_h1.c */

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

struct fetcher {
	pthread_t thread;
	int epfd;
	int evfd;               /* eventfd: wakes the thread for its queues or stop */
	pthread_mutex_t lock;
	struct fetch *queue;    /* submitted, not yet started */
	struct fetch *unpause;  /* paused transfers to go on */
	bool stop;
	int connect_timeout_ms, timeout_ms;
	unsigned max_connections;
	struct fetch_curl *curl;
	struct h1_pool *h1;
};

/* epoll_event.data of the fetch thread's set: an h1 connection by its
 * address (even), a descriptor (libcurl's sockets, the eventfd) as below. */
#define FETCH_EV_FD(fd) (((uint64_t)(unsigned)(fd) << 1) | 1u)
#define FETCH_EV_IS_FD(u) (((u) & 1u) != 0)
#define FETCH_EV_TO_FD(u) ((int)((u) >> 1))

int64_t fetch_now_ms(void);
/* f's whole-transfer and connect timeouts in ms: its own capped by the
 * fetcher's, a streamed body's deadline on top. */
void fetch_timeouts(const struct fetcher *fr, const struct fetch *f, long *total, long *connect);

/* ---------- a response, as a transport reads it ---------- */
/* A status line (again after a 1xx: what came before is dropped). */
void fetch_got_status(struct fetch *f, unsigned status);
/* One field; false when the head has grown too large (end the transfer). */
bool fetch_got_field(struct fetch *f, const char *name, size_t nl, const char *value, size_t vl);
/* The final head is in (content_length -1: not known): runs on_headers. */
void fetch_got_head(struct fetch *f, int64_t content_length);
enum fetch_take {
	FETCH_TAKEN,   /* all n bytes kept */
	FETCH_PAUSE,   /* none taken: too much unread; hold them until fetch_*_unpause */
	FETCH_TOO_BIG, /* none taken: over f->max_body, end the transfer */
};
enum fetch_take fetch_got_body(struct fetch *f, const char *p, size_t n);
/* The transfer is over: err NULL for a whole response, else why not.  Runs
 * on_done, wakes the waiters and drops the transfer's reference on f. */
void fetch_end(struct fetch *f, const char *err, bool timed_out, bool tls_failed);
/* Under f->lock: a client suspended on a full upload window goes on. */
void fetch_upload_unblock(struct fetch_upload *u);

/* ---------- libcurl (fetch_curl.c) ---------- */
struct fetch_curl *fetch_curl_new(struct fetcher *fr, unsigned max_connections);
void fetch_curl_free(struct fetch_curl *fc);
void fetch_curl_start(struct fetch_curl *fc, struct fetch *f);
void fetch_curl_event(struct fetch_curl *fc, int fd, uint32_t epoll_events);
/* ms until libcurl wants its timer run (-1: no timer, 1000 at most while
 * transfers run); then fetch_curl_run_timer and, each round, fetch_curl_reap. */
int fetch_curl_wait_ms(struct fetch_curl *fc);
void fetch_curl_run_timer(struct fetch_curl *fc);
void fetch_curl_reap(struct fetch_curl *fc);
void fetch_curl_unpause(struct fetch_curl *fc, struct fetch *f);
void fetch_curl_abort_all(struct fetch_curl *fc);

/* ---------- the own client (fetch_h1.c) ---------- */
struct h1_pool *fetch_h1_new(struct fetcher *fr, unsigned max_connections);
void fetch_h1_free(struct h1_pool *p);
/* Starts f if it is one for this client; false: hand it to libcurl. */
bool fetch_h1_start(struct h1_pool *p, struct fetch *f);
void fetch_h1_event(struct h1_pool *p, void *conn, uint32_t epoll_events);
/* ms until the next deadline (-1: none); fetch_h1_expire ends what is due. */
int fetch_h1_wait_ms(struct h1_pool *p, int64_t now);
void fetch_h1_expire(struct h1_pool *p, int64_t now);
void fetch_h1_unpause(struct h1_pool *p, struct fetch *f);
void fetch_h1_abort_all(struct h1_pool *p);

#endif
