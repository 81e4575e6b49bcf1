/* proxy.h -- the origin side of a request: misses (collapsed), revalidation,
 * background refresh, pass-through of unsafe methods with invalidation,
 * streaming the origin's body to clients while it arrives, and storing it. */
#ifndef MINICDN_PROXY_H
#define MINICDN_PROXY_H

#include "edge/front/http.h"

struct collapse *collapse_new(void);
void collapse_free(struct collapse *c);

/* The stale entry a revalidation starts from (copied: the read txn is gone
 * by the time the origin answers). */
struct stale_info {
	const char *storage_key;
	const char *hdrs; size_t hdrs_len;   /* stored headers (borrowed for the call) */
	struct entry_meta meta;
};

/* Sends r to the origin and suspends the connection until the answer's
 * headers arrive; collapses onto an in-flight fetch for the same key when
 * r is a cacheable GET/HEAD.  stale (may be NULL) makes it a conditional
 * revalidation.  Returns what the MHD handler returns. */
enum MHD_Result proxy_start(struct edge_req *r, const struct stale_info *stale);

/* Called by the MHD handler when r (state RS_WAIT) is resumed. */
enum MHD_Result proxy_resume(struct edge_req *r);

/* stale-while-revalidate: refreshes the entry in the background once (no
 * client waits; skipped if a fetch for the key is already running). */
void proxy_refresh(struct edge_req *r, const struct stale_info *stale);

/* Called when MHD is done with r: drops its fetch reference and waiter. */
void proxy_release(struct edge_req *r);

/* Filters origin response headers for storing/sending: drops hop-by-hop,
 * Content-Length, Age, and collects Surrogate-Key / Cache-Tag into tags
 * (packed "t\0"), which are never sent to clients. */
void proxy_filter_headers(const struct buf *in, struct buf *out, struct buf *tags);

/* Value of field name in the packed list hdrs with repeated field lines
 * combined with ", " (RFC 9110 5.3): borrowed from hdrs when the field
 * occurs once, else joined into tmp (the caller's).  NULL if absent. */
const char *proxy_field(const struct buf *hdrs, const char *name, struct buf *tmp);

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
