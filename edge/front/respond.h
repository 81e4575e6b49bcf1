/* respond.h -- building responses on the client connection: stored entries
 * (zero-copy hits), origin responses while they arrive, errors, and the
 * Cache-Status and Via fields.  How each is served (status, ranges, headers)
 * is decided by respond_plan.h; this file turns the plan into an MHD
 * response. */
#ifndef MINICDN_RESPOND_H
#define MINICDN_RESPOND_H

#include "edge/front/request.h"

/* Serves a stored entry to r (zero-copy: takes ownership of ref, released
 * by the response's free callback; v borrowed from it).  fwd/fwd_status/
 * detail describe how it was obtained for Cache-Status (FWD_NONE: a plain
 * hit).  storage_key (may be NULL) is touched in the LRU. */
enum MHD_Result respond_entry(struct edge_req *r, struct cache_ref *ref, const struct entry_view *v,
                              const char *storage_key, enum fwd_reason fwd, unsigned fwd_status,
                              const char *detail);

/* Serves what upstream answered (proxy_start / proxy_resume) and frees what
 * a owns; a PROXY_WAIT leaves r waiting (state RS_WAIT). */
enum MHD_Result respond_answer(struct edge_req *r, struct proxy_answer *a);

/* Queues a small JSON error with Cache-Status (no Via: the edge made it). */
enum MHD_Result respond_error(struct edge_req *r, unsigned status, const char *msg);

/* only-if-cached and nothing usable stored: 504 (RFC 9111 5.2.1.7). */
enum MHD_Result respond_only_if_cached(struct edge_req *r);

/* Adds a Cache-Status (RFC 9211) built from cs, and notes the result for the
 * access log. */
void respond_add_cache_status(struct edge_req *r, struct MHD_Response *resp,
                              const struct cache_status *cs);

/* Adds Via: only to responses forwarded from the origin (RFC 9110 7.6.3),
 * fresh or served from the cache, not to what the edge generates itself
 * (errors, only-if-cached 504s, script responses). */
void respond_add_via(struct edge_req *r, struct MHD_Response *resp);

#endif
