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
#include "edge/upstream/call.h"
#include "edge/upstream/fetch.h"
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct slice_stream; /* upstream/slicer.h */

struct collapse *collapse_new(void);
void collapse_free(struct collapse *c);
/* The table of in-flight fetches by key; it also holds slice fetches under
 * their slice keys (upstream/slicer.c), which no primary key equals.  find
 * and put under collapse_lock; put takes its own reference on f; remove
 * takes the lock itself and drops key's entry only if it is f. */
void collapse_lock(struct collapse *c);
void collapse_unlock(struct collapse *c);
struct fetch *collapse_find(struct collapse *c, const char *key);
void collapse_put(struct collapse *c, const char *key, struct fetch *f);
void collapse_remove(struct collapse *c, const char *key, struct fetch *f);

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
	PROXY_SLICES,  /* serve a sliced object (upstream/slicer.h) */
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
	/* SLICES: the body, owned by the receiver (slice_stream_close); hdrs
	 * (owned) the head's headers to send, length the representation's,
	 * status 200, age and cs as for STREAM. */
	struct slice_stream *slices;
};

/* Sends the request to the origin, or collapses it onto an in-flight fetch
 * for the same key when it is a cacheable GET/HEAD.  stale (may be NULL)
 * makes it a conditional revalidation.  Fills *a: mostly PROXY_WAIT (the
 * connection was suspended through ops->suspend). */
void proxy_start(struct proxy_call *pc, const struct stale_info *stale, struct proxy_answer *a);

/* After the connection was resumed: what to serve now (PROXY_WAIT again
 * when the request had to be sent anew, e.g. a collapse that did not fit). */
void proxy_resume(struct proxy_call *pc, struct proxy_answer *a);

/* If pc's fetch (pc->f, not NULL) has no response yet: suspends pc until it
 * has (a->kind = PROXY_WAIT) and returns true. */
bool proxy_wait_pending(struct proxy_call *pc, struct proxy_answer *a);

/* stale-while-revalidate: refreshes the entry in the background once (no
 * client waits; skipped if a fetch for the key is already running). */
void proxy_refresh(struct proxy_call *pc, const struct stale_info *stale);

/* Drops pc's fetch reference and waiter (the request is over, or a stream
 * of the answer was opened).  Idempotent. */
void proxy_release(struct proxy_call *pc);

/* ---------- a request body streamed to the origin ----------
 * For a pass (an unsafe method) whose body is sent as it arrives: start the
 * transfer when the head is in (length: the declared one, -1 for a chunked
 * body, forwarded chunked), put the bytes as they come, end when the last
 * came; proxy_release before the end aborts the origin's transfer. */
void proxy_upload_start(struct proxy_call *pc, int64_t length);
/* Puts up to n bytes (*taken says how many; fewer: the connection was
 * suspended through ops->suspend until there is room).  false: the transfer
 * is already over (the origin answered or failed): answer with proxy_resume. */
bool proxy_upload_put(struct proxy_call *pc, const char *p, size_t n, size_t *taken);
/* The whole body was put: fills *a as proxy_start does. */
void proxy_upload_end(struct proxy_call *pc, struct proxy_answer *a);

/* upstream's own, for upload.c: a pass's fetch for pc (a reference, not
 * submitted), and, under f->lock, pc registered on f and suspended. */
struct fetch *proxy_pass_fetch(struct proxy_call *pc);
void proxy_wait(struct proxy_call *pc, struct fetch *f, struct proxy_answer *a);

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
