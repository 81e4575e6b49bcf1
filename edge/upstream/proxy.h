/* proxy.h -- the origin side of a request: misses (collapsed), revalidation,
 * background refresh, pass-through of unsafe methods with invalidation, and
 * storing what the origin sent.
 *
 * upstream/ knows nothing of the HTTP server.  The front describes the
 * request in a struct proxy_call (plain strings, and callbacks to read its
 * headers and to suspend/resume its connection) and gets back a struct
 * proxy_answer saying what to serve: a stored entry, the origin's response
 * while it arrives (read through upstream/stream.h), or an error.  The front
 * builds the response; nothing here calls back into it except through the
 * callbacks. */
#ifndef MINICDN_PROXY_H
#define MINICDN_PROXY_H

#include "common/buf.h"
#include "edge/cache/cache.h"
#include "edge/cache/freshness.h"
#include "edge/edge.h"
#include "edge/upstream/fetch.h"
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct collapse *collapse_new(void);
void collapse_free(struct collapse *c);

/* Why a request goes to the origin (Cache-Status fwd=). */
enum fwd_reason { FWD_NONE = 0, FWD_URI_MISS, FWD_VARY_MISS, FWD_STALE, FWD_METHOD, FWD_MISS,
	          FWD_REQUEST /* request directives (no-cache, max-age, min-fresh) forced it */ };

/* How upstream reaches the client side; cls is the caller's (struct
 * proxy_call's cls). */
struct proxy_client_ops {
	/* A request header (case-insensitive), borrowed for the request; NULL if absent. */
	const char *(*header)(void *cls, const char *name);
	/* Calls cb for each request header in order (values never NULL). */
	void (*each_header)(void *cls, void (*cb)(void *arg, const char *name, const char *value),
	                    void *arg);
	/* Suspends the client connection: called with a fetch's lock held,
	 * before the fetch can call resume; must do nothing else. */
	void (*suspend)(void *cls);
	/* Resumes it: called from the fetch thread under the fetch's lock. */
	void (*resume)(void *cls);
};

/* One request's dealings with the origin, embedded in the front's request
 * (zeroed with it).  The caller fills the first block before proxy_start /
 * proxy_refresh; the rest is upstream's. */
struct proxy_call {
	struct edge *edge;                   /* borrowed */
	const struct proxy_client_ops *ops;
	void *cls;                           /* passed to ops */
	const char *method;                  /* borrowed, valid for the request */
	const char *key;                     /* primary cache key, borrowed likewise */
	const char *host;                    /* normalised host[:port] */
	const char *path;                    /* normalised path + "?" + raw query */
	const struct sockaddr *client;       /* for X-Forwarded-For, may be NULL */
	bool is_get, is_head, has_auth;
	struct buf *body;                    /* unsafe methods: taken when forwarded */
	enum fwd_reason fwd;                 /* why it goes (upstream may change it) */
	bool has_rq;                         /* the request carried directives: */
	struct req_cc rq;                    /* ... these (RFC 9111 5.2.1) */
	bool has_stale;                      /* a stored entry may stand in for a failed fetch ... */
	struct stale_err stale;              /* ... if freshness_stale_on_error says so (fail,
	                                        stale_for and the windows filled in then) */
	int64_t stale_since;                 /* when that entry went stale (epoch seconds) */
	/* upstream's */
	struct buf hdr_join;                 /* proxy_call_header_all's scratch */
	struct fetch *f;                     /* the fetch waited on (a reference) */
	struct fetch_waiter w;
	bool leader, waiting_registered;
	bool no_collapse;                    /* forwarded on its own after a collapse did not fit */
	bool joined_done;                    /* answered from a completed fetch whose store is pending */
};

/* The stale entry a revalidation starts from (copied by proxy_start: the
 * read txn is gone by the time the origin answers). */
struct stale_info {
	const char *storage_key;
	const char *hdrs; size_t hdrs_len;   /* stored headers (borrowed for the call) */
	struct entry_meta meta;
};

/* What Cache-Status (RFC 9211) says about an answer. */
struct cache_status {
	bool hit, stored;
	enum fwd_reason fwd;
	unsigned fwd_status;                 /* 0: none */
	long ttl;                            /* LONG_MIN: none */
	const char *detail;                  /* static string or NULL */
};

enum proxy_kind {
	PROXY_WAIT,    /* suspended: call proxy_resume when the connection resumes */
	PROXY_ENTRY,   /* serve a stored entry */
	PROXY_STREAM,  /* serve the origin's response as it arrives */
	PROXY_ERROR,   /* answer status with msg */
};

struct proxy_answer {
	enum proxy_kind kind;
	unsigned status;          /* STREAM: the origin's; ERROR: the one to answer */
	const char *msg;          /* ERROR: static text */
	/* ENTRY: ref is the receiver's to release (v borrowed from it, except
	 * v.hdrs when hdrs below is set: a revalidated entry whose update is
	 * not committed yet); storage_key and hdrs owned (buf_free).
	 * fwd/fwd_status/detail for Cache-Status. */
	struct cache_ref *ref;
	struct entry_view v;
	struct buf storage_key;
	enum fwd_reason fwd;
	unsigned fwd_status;
	const char *detail;
	/* STREAM: the fetch is borrowed from the call (proxy_stream_open takes
	 * its own reference); open the stream before proxy_release, or a fetch
	 * that drops read bytes would drop unread ones.  hdrs: the origin's
	 * headers after headers_filter (owned, buf_free; for ENTRY see above). */
	struct fetch *f;
	struct buf hdrs;
	int64_t length;           /* the body's length, -1: not known */
	bool cacheable;           /* a GET/HEAD through the cache, not a pass */
	bool whole;               /* the whole body is kept (it is being stored) */
	int64_t age;              /* the Age to send; -1: none */
	struct cache_status cs;
};

/* Sends the request to the origin, or collapses it onto an in-flight fetch
 * for the same key when it is a cacheable GET/HEAD.  stale (may be NULL)
 * makes it a conditional revalidation.  Fills *a: mostly PROXY_WAIT (the
 * connection was suspended through ops->suspend). */
void proxy_start(struct proxy_call *pc, const struct stale_info *stale, struct proxy_answer *a);

/* After the connection was resumed: what to serve now (PROXY_WAIT again
 * when the request had to be sent anew, e.g. a collapse that did not fit). */
void proxy_resume(struct proxy_call *pc, struct proxy_answer *a);

/* stale-while-revalidate: refreshes the entry in the background once (no
 * client waits; skipped if a fetch for the key is already running). */
void proxy_refresh(struct proxy_call *pc, const struct stale_info *stale);

/* Drops pc's fetch reference and waiter (the request is over, or a stream
 * of the answer was opened).  Idempotent. */
void proxy_release(struct proxy_call *pc);

/* A request header with every line combined with ", " (RFC 9110 5.3):
 * borrowed from the connection when there is one line, else joined into
 * tmp (the caller's).  NULL if absent.  pc needs only ops and cls. */
const char *proxy_header_all(const struct proxy_call *pc, const char *name, struct buf *tmp);
/* The same into pc's own scratch, valid until the next call (as Vary
 * selection reads one field at a time). */
const char *proxy_call_header_all(struct proxy_call *pc, const char *name);

/* Storage for the combined field values a fresh_in points to. */
struct fresh_fields {
	struct buf cc, cdn, expires, date, lm, age, vary;
};
void proxy_fresh_fields_free(struct fresh_fields *ff);

struct fresh_in;
/* Fills the response side of a freshness input: the origin response headers,
 * every line of each (strings borrowed from hdrs or ff -- zeroed by the
 * caller -- valid while both live), status, times and the live heuristic
 * settings.  The caller adds method and request headers. */
void proxy_fresh_in(struct fresh_in *in, struct fresh_fields *ff, const struct edge *e,
                    unsigned status, const struct buf *hdrs, int64_t request_time,
                    int64_t response_time);

#endif
