/* fanout.h -- many HTTP requests at once (libcurl multi), each bounded by a
 * timeout; used by minicdnctl (status, purge, ...) and the origin (pushing
 * bundles to edges).  Blocking: returns when every request has finished.
 * The caller must have called curl_global_init(). */
#ifndef MINICDN_FANOUT_H
#define MINICDN_FANOUT_H

#include "common/buf.h"
#include <stdbool.h>
#include <stddef.h>

/* One request.  Fill method/url/body/auth; the rest is output. */
struct fanout_req {
	const char *method;       /* "GET" (default when NULL), "POST", "DELETE"...; borrowed */
	char *url;                /* owned by the caller (freed by fanout_req_clear) */
	const char *body;         /* borrowed, may be NULL */
	size_t body_len;
	const char *content_type; /* borrowed; default application/json when body is set */
	bool auth;                /* send Authorization: Bearer <secret> */
	/* results */
	long status;              /* HTTP status, 0 if no response */
	struct buf resp;          /* response body, at most FANOUT_MAX_RESP (owned) */
	char error[256];          /* transport error text when status is 0 */
	double latency_ms;        /* total time */
};

#define FANOUT_MAX_RESP (8u << 20)

/* Runs reqs[0..n) concurrently, each bounded by timeout_ms (connect and
 * total).  secret may be NULL (auth is then ignored).  Returns 0 (outcomes are
 * in each request) or -1 if libcurl could not start. */
int fanout_run(struct fanout_req *reqs, size_t n, int timeout_ms, const char *secret);
/* Frees url and the response body. */
void fanout_req_clear(struct fanout_req *r);
/* Joins a base URL and a path ("/healthz") into a malloc'd string, avoiding "//". */
char *fanout_url(const char *base, const char *path);

#endif
