/* http.h -- the edge's HTTP front: one request struct, one dispatch.
 *
 * Dispatch order (edge/http.c, function dispatch()):
 *   1. /healthz, /metrics, /.minicdn/... control (edge/control.c)
 *   2. script hook (issue 5: edge/script*.c adds one call here; it gets the
 *      struct edge_req below and either queues a response or declines)
 *   3. cache (GET/HEAD): hit, stale-while-revalidate, revalidation
 *   4. origin (edge/proxy.c): misses (collapsed), unsafe methods (pass + invalidate)
 */
#ifndef MINICDN_HTTP_H
#define MINICDN_HTTP_H

#include "common/buf.h"
#include "edge/cache/cache.h"
#include "edge/cache/freshness.h"
#include "edge/edge.h"
#include "edge/upstream/fetch.h"
#include <microhttpd.h>
#include <stdbool.h>

enum req_state { RS_NEW = 0, RS_BODY, RS_READY, RS_DONE, RS_WAIT,
	         RS_SCRIPT /* a script waits for a subrequest (edge/script_http.c) */ };

/* Why this request goes to the origin (Cache-Status fwd=). */
enum fwd_reason { FWD_NONE = 0, FWD_URI_MISS, FWD_VARY_MISS, FWD_STALE, FWD_METHOD, FWD_MISS,
	          FWD_REQUEST /* request directives (no-cache, max-age, min-fresh) forced it */ };

/* One client request.  Allocated when MHD has the request line, freed when
 * MHD reports the request completed.  Strings are owned by the struct unless
 * marked borrowed. */
struct edge_req {
	struct edge *edge;               /* borrowed */
	struct MHD_Connection *conn;     /* borrowed */
	const char *method;              /* borrowed from MHD, valid for the request */
	char *target;                    /* raw request-target as received */
	struct buf path;                 /* normalised path + "?" + raw query (to the origin) */
	struct buf host;                 /* normalised host[:port] */
	struct buf key;                  /* primary cache key: use edge_req_key() */
	const char *query;               /* into path.data after '?', "" if none */
	const struct sockaddr *client;   /* borrowed from MHD */
	bool is_head, is_get, is_unsafe, has_auth;
	enum req_state state;
	struct buf body;                 /* request body (unsafe methods), bounded by limits.max_body */
	bool body_too_large;
	/* proxy state (edge/proxy.c) */
	struct fetch *f;                 /* the fetch waited on (a reference) */
	struct fetch_waiter w;
	bool leader, waiting_registered;
	enum fwd_reason fwd;
	bool has_stale;                  /* a stored entry may stand in for a failed fetch ... */
	struct stale_err stale;          /* ... if freshness_stale_on_error says so (stale_for,
	                                    fail and the windows are filled in then) */
	int64_t stale_since;             /* when that entry went stale (epoch seconds) */
	struct buf hdr_join;             /* edge_req_header_all's scratch */
	bool no_collapse;               /* forwarded individually after a collapse did not fit */
	bool joined_done;               /* answered from a completed fetch whose store is pending (a hit) */
	struct script_task *script;      /* waiting script (RS_SCRIPT), owned */
	uint64_t purge_seq;              /* cache_purge_seq() as the script began: its stores
	                                    lose to any purge made after that */
	/* for the access log (only kept when it is on) */
	const char *version;             /* "HTTP/1.1", borrowed from MHD */
	const char *log_result;          /* hit, uri-miss, ..., script; NULL: "-" */
	int64_t log_bytes;               /* body bytes queued; -1: unknown */
	long long start_us;              /* monotonic, when the request line arrived */
};

/* The request's primary cache key, joined from path and host on first use. */
const char *edge_req_key(struct edge_req *r);

/* Request header value (case-insensitive), borrowed from MHD; NULL if absent. */
const char *edge_req_header(const struct edge_req *r, const char *name);
/* Like edge_req_header, with repeated field lines combined with ", " (RFC
 * 9110 5.3).  Borrowed from MHD, or from r's scratch until the next call. */
const char *edge_req_header_all(struct edge_req *r, const char *name);

/* Starts the listener.  Returns the daemon or NULL with err. */
struct MHD_Daemon *http_start(struct edge *e, char *err, size_t errlen);

/* Serves a cached entry to r (zero-copy: takes ownership of ref, released by
 * the response's free callback).  fwd/fwd_status describe how it was
 * obtained for Cache-Status (FWD_NONE = plain hit).  Also used by proxy.c
 * after a revalidation and for stale-if-error. */
enum MHD_Result http_serve_entry(struct edge_req *r, struct cache_ref *ref,
                                 const struct entry_view *v, const char *storage_key,
                                 enum fwd_reason fwd, unsigned fwd_status, const char *detail);

/* Client conditionals and ranges (RFC 9110 13, 14), shared with proxy.c. */
bool http_not_modified(struct edge_req *r, const char *etag, const char *last_modified,
                       const char *date);
bool http_if_range_ok(struct edge_req *r, const char *etag, const char *last_modified);
/* Headers a 304 carries (RFC 9110 15.4.5) / headers never sent to clients. */
bool http_in_304(const char *name);
bool http_skip_to_client(const char *name);

/* Queues a small error reply with Cache-Status (no Via: the edge made it). */
enum MHD_Result http_error(struct edge_req *r, unsigned status, const char *msg);

/* Adds Via: only to responses forwarded from the origin (RFC 9110 7.6.3),
 * fresh or served from the cache, not to what the edge generates itself
 * (errors, only-if-cached 504s, script responses). */
void http_add_via(struct edge_req *r, struct MHD_Response *resp);
/* Adds a Cache-Status (RFC 9211) built from the parts to resp. */
void http_add_cache_status(struct edge_req *r, struct MHD_Response *resp, bool hit,
                           enum fwd_reason fwd, unsigned fwd_status, bool stored, long ttl,
                           const char *detail);

/* True for header names that are hop-by-hop (RFC 9110 7.6.1) or ours to
 * strip: never stored, never forwarded. */
bool http_hop_by_hop(const char *name, const char *connection_value);

#endif
