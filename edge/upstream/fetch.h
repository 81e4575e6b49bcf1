/* fetch.h -- asynchronous origin client: one thread drives every transfer
 * on its epoll set, GET and HEAD to plain-http origins through the edge's
 * own HTTP/1.1 client and the rest through libcurl's multi interface;
 * requests are submitted from any thread and observed through a shared,
 * reference-counted struct fetch.
 *
 * A fetch is shared by every client connection collapsed onto it: each one
 * registers a fetch_waiter and is woken (its wake() runs in the fetch thread,
 * with f->lock held, so it must only resume a connection) when headers, body
 * bytes or the end arrive.  Body bytes accumulate in f->body; in "discard"
 * mode (objects streamed through without being stored) bytes every waiter has
 * read are dropped and the transfer is paused while too much is unread, so
 * memory stays bounded whatever the object size. */
#ifndef MINICDN_FETCH_H
#define MINICDN_FETCH_H

#include "common/buf.h"
#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct fetcher;
struct fetch;

struct fetcher_opts {
	const char *origin;      /* base URL, e.g. "http://127.0.0.10:8080" (borrowed) */
	int connect_timeout_ms;
	int timeout_ms;          /* total, per transfer */
	unsigned max_connections;/* to the origin, reused (keep-alive) */
};

struct fetcher *fetcher_start(const struct fetcher_opts *o, char *err, size_t errlen);
/* Aborts transfers still running and joins the thread; waiters get F_FAILED. */
void fetcher_stop(struct fetcher *fr);

enum fetch_state { F_PENDING = 0, F_HEADERS, F_DONE, F_FAILED };

struct fetch_waiter {
	struct fetch_waiter *next;
	bool waiting;       /* set by the waiter (under f->lock) before suspending */
	uint64_t pos;       /* absolute stream offset read so far (for discard) */
	void (*wake)(struct fetch_waiter *w);
};

/* Called in the fetch thread without f->lock held; may inspect the response
 * (status, headers: stable once state >= F_HEADERS) and decide about
 * storing.  on_headers runs before waiters are woken for F_HEADERS, on_done
 * before they are woken for F_DONE/F_FAILED. */
struct fetch_hooks {
	void (*on_headers)(struct fetch *f);
	void (*on_done)(struct fetch *f);
	void (*free_ctx)(void *ctx);
};

struct fetch {
	pthread_mutex_t lock;
	int refs;                    /* atomic */
	/* request, immutable after fetch_submit */
	char *url, *method;
	struct curl_slist *req_headers; /* owned */
	bool req_headers_flat;       /* ... as one malloc'd block (free()d whole), not a
	                                curl_slist_append list; set by the caller after fetch_new */
	char *req_body; size_t req_body_len;
	struct fetch_upload *up;     /* a body streamed from the client (fetch_upload_init), or NULL */
	const struct fetch_hooks *hooks;
	void *ctx;                   /* owned by the hooks' user, freed by free_ctx */
	/* response, under lock (headers stable once state >= F_HEADERS) */
	enum fetch_state state;
	unsigned status;
	struct buf hdrs;             /* packed "name\0value\0", as received */
	int64_t content_length;      /* -1 unknown */
	struct buf body;             /* bytes [body_base, body_base + body.len) */
	uint64_t body_base;
	bool complete;               /* whole body received (F_DONE with a full body) */
	bool discard;                /* drop bytes all waiters have read */
	uint64_t keep_limit;         /* switch to discard past this many bytes (0 = never) */
	/* set before fetch_submit (script subrequests): */
	int timeout_ms;              /* total for this transfer, capped by the fetcher's (0 = its) */
	uint64_t max_body;           /* abort the transfer past this many body bytes (0 = no cap) */
	bool too_big;                /* aborted because of max_body */
	const char *ca_file;         /* https: CA bundle to verify against (borrowed; NULL: system) */
	bool tls_failed;             /* the origin's certificate did not verify (or TLS failed) */
	bool paused, unpause;
	bool timed_out;
	char err[128];
	int64_t request_time, response_time; /* seconds */
	struct fetch_waiter *waiters;
	CURL *easy;
	struct fetch_easy *fe;       /* a poolable GET handle (fetch_curl.c), or NULL */
	struct h1_conn *h1;          /* its connection in the own client (fetch_h1.c), or NULL */
	struct fetcher *fr;
	struct fetch *next_q;
	struct fetch *act_next, *act_prev; /* the fetcher's running transfers (its thread only) */
};

/* Creates a fetch for origin URL path (the fetcher's base + path).  Takes
 * ownership of headers and body (malloc'd, may be NULL).  refs = 1. */
struct fetch *fetch_new(const char *method, const char *url, struct curl_slist *headers,
                        char *body, size_t body_len, const struct fetch_hooks *hooks, void *ctx);
void fetch_ref(struct fetch *f);
void fetch_unref(struct fetch *f);
/* Starts the transfer (the fetcher takes its own reference). */
void fetch_submit(struct fetcher *fr, struct fetch *f);

/* Under f->lock: registers / removes a waiter. */
void fetch_add_waiter(struct fetch *f, struct fetch_waiter *w);
void fetch_remove_waiter(struct fetch *f, struct fetch_waiter *w);
/* Under f->lock, after a waiter advanced w->pos: drops bytes every waiter has
 * read (discard mode) and un-pauses the transfer when the backlog drains. */
void fetch_consumed(struct fetch *f);

/* ---------- request bodies streamed through ----------
 * The client's body goes to the origin as it arrives, through a window of at
 * most FETCH_UPLOAD_WINDOW bytes: the client side puts bytes in (suspending
 * its connection while the window is full), libcurl's read callback takes
 * them out (pausing the transfer while it is empty) and resumes the client
 * when the window has drained to half. */
#define FETCH_UPLOAD_WINDOW (256u << 10)

/* Before fetch_submit: the request body is streamed, length bytes (-1: not
 * known, sent chunked).  resume(cls) is how the transfer wakes a client that
 * put_upload suspended; it runs in the fetch thread under f->lock. */
void fetch_upload_init(struct fetch *f, int64_t length, void (*resume)(void *cls), void *cls);

enum fetch_put {
	FETCH_PUT_OK,   /* *taken bytes were taken; fewer than n: the client was suspended
	                   (suspend(cls) called under f->lock) and is resumed when there is room */
	FETCH_PUT_OVER, /* the transfer is over (the origin answered or failed): nothing taken */
};
/* From the client side: queues up to n bytes of the body for the origin. */
enum fetch_put fetch_upload_put(struct fetch *f, const char *p, size_t n, size_t *taken,
                                void (*suspend)(void *cls));
/* The whole body was put. */
void fetch_upload_end(struct fetch *f);
/* The client is gone: a body not yet ended aborts the transfer (the origin
 * sees the connection cut mid-body), and the client is never resumed. */
void fetch_upload_detach(struct fetch *f);

/* Header lookup in a packed list (case-insensitive); NULL if absent. */
const char *fetch_header(const struct buf *hdrs, const char *name);

#endif
