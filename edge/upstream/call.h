/* call.h -- struct proxy_call: how the front describes one request to
 * upstream (plain strings, and callbacks to read its headers and to suspend
 * and resume its connection), apart from proxy.h so that the modules that
 * only read a call (origin_req) need not include the proxy. */
#ifndef MINICDN_UPSTREAM_CALL_H
#define MINICDN_UPSTREAM_CALL_H

#include "common/buf.h"
#include "edge/cache/freshness.h"
#include "edge/upstream/fetch.h"
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct edge;
struct edge_site;

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
	const struct edge_site *site;        /* its origin and settings (never NULL for a fetch;
	                                        borrowed, valid until exit) */
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
	bool upload_chunked;                 /* a streamed body of unknown length (sent chunked) */
	bool sliced;                         /* waiting on a slice: resume with slicer_resume
	                                        (upstream/slicer.h), not proxy_resume */
	int64_t slice_first;                 /* ... for the client's bytes from here (-1: none) */
};

#endif
