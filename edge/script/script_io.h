/* script_io.h -- what the dispatch hands a script (the request, the cache
 * and origin it may ask) and what it gets back (the response).  Shared by
 * the front (edge/front/script_http.c), the scripts' entry point (script.h)
 * and the Lua request library (lua_req.h); depends on nothing in edge/. */
#ifndef MINICDN_EDGE_SCRIPT_IO_H
#define MINICDN_EDGE_SCRIPT_IO_H

#include "common/bundle.h"
#include "common/buf.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct script_cache_ops;
struct fetcher;

struct script_req {
	const char *method;
	const char *host;   /* Host header, may be NULL */
	const char *site;   /* the edge site's name (routes may be limited to one), may be NULL */
	const char *origin; /* the site's origin base URL for origin subrequests; NULL: the
	                       script_init one */
	const char *origin_ca; /* CA file verifying an https origin; NULL: the system store */
	const char *origin_host; /* Host for origin subrequests (the site's); NULL: the URL's */
	const char *path;   /* without the query */
	size_t path_len;
	const char *query;  /* after '?', NULL if none */
	const struct sockaddr *client; /* may be NULL */
	const char *body;   /* request body (POST/PUT), may be NULL */
	size_t body_len;
	/* Header access; ctx is the dispatch's (e.g. the MHD connection). */
	const char *(*header)(void *ctx, const char *name);
	void (*headers_each)(void *ctx, void (*cb)(void *arg, const char *name, const char *value),
	                     void *arg);
	void *ctx;
	/* Cache subrequests (fetch{from = "cache"}); NULL: the dispatch has no cache
	 * and such fetches go straight to the origin. */
	const struct script_cache_ops *cache;
	/* Origin subrequests (fetch{from = "origin"}, and cache misses): sent
	 * through this fetcher without blocking the caller.  suspend(ctx) is
	 * called on the calling thread before the transfer starts (the dispatch
	 * suspends the client connection; script_handle will return SCRIPT_WAIT),
	 * wake(ctx) in the fetcher's thread when it is over (the dispatch resumes
	 * the connection and then calls script_resume on the thread that called
	 * script_handle).  NULL: origin subrequests answer nil, err. */
	struct fetcher *fetcher;
	void (*suspend)(void *ctx);
	void (*wake)(void *ctx);
};

/* The edge cache as scripts' subrequests see it (implemented by the dispatch,
 * edge/front/script_http.c, over edge/cache/cache.h).  path is an origin-form "/p?q" on
 * the request's own host, so subrequests share entries with clients' requests
 * for the same URL.  hdr(cls, name) returns the subrequest's header values,
 * used to select Vary variants. */
struct script_cache_ops {
	/* A fresh entry for path: returns 1 and fills *status, hdrs (packed
	 * "name\0value\0", hop-by-hop and tag headers removed) and body (copied);
	 * 0 on a miss or stale entry; -1 if the body is over max_body. */
	int (*get)(void *ctx, const char *path, const char *(*hdr)(void *cls, const char *name),
	           void *cls, size_t max_body, int *status, struct buf *hdrs, struct buf *body);
	/* Stores an origin response to a GET subrequest if RFC 9111 and the
	 * cache's limits allow (hdrs packed as above, as received).  Returns 1 if
	 * stored, 0 if not storable or the store failed. */
	int (*put)(void *ctx, const char *path, const char *(*hdr)(void *cls, const char *name),
	           void *cls, int status, const struct buf *hdrs, const char *body, size_t body_len,
	           int64_t request_time, int64_t response_time);
	/* Host (normalised, with port if any) the subrequest is sent to the
	 * origin with (the site's origin_host when it has one). */
	const char *(*host)(void *ctx);
};

struct script_hdr {
	char *name, *value;
};

/* Filled by script_handle; release with script_resp_free.  The headers and
 * their strings share one block (script_resp_headers_init), so a response
 * costs one allocation for its headers however many it has. */
struct script_resp {
	int status;
	struct script_hdr *headers; /* owns the block; name/value point into it */
	size_t nheaders, hmax;
	char *hstr, *hend;          /* free string space in the block */
	char *body;
	size_t body_len;
	int cache_ttl;       /* > 0: the script marked it cacheable for that many seconds */
	char script[BUNDLE_MAX_NAME + 1];
	uint64_t version;
};

void script_resp_free(struct script_resp *r);
/* Sizes the header block: up to nmax headers whose names and values take
 * bytes in all (without terminators). */
void script_resp_headers_init(struct script_resp *r, size_t nmax, size_t bytes);
/* Copies a header into the block; returns -1 if it does not fit the size
 * given to script_resp_headers_init. */
int script_resp_header_add(struct script_resp *r, const char *name, size_t nl, const char *val,
                           size_t vl);

#endif
