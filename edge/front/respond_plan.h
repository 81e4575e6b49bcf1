/* respond_plan.h -- how one response is served to one request: the status
 * (200, 304, 206 with one range, 206 multipart/byteranges, 416), which bytes
 * of the body, and which of the stored or origin headers go out.
 *
 * One decision for hits (a stored entry, edge/front/respond.c) and misses (an
 * origin response still arriving, streamed by the same file), so the two can
 * never disagree.  Pure: no libmicrohttpd, no I/O, no clock; strings are
 * borrowed for the call.  Tested in tests/unit/edge/test_respond_plan.c. */
#ifndef MINICDN_RESPOND_PLAN_H
#define MINICDN_RESPOND_PLAN_H

#include "edge/cache/range.h"
#include <stdbool.h>
#include <stdint.h>

/* The request's conditionals and Range (RFC 9110 13, 14); NULL: absent. */
struct plan_req {
	const char *if_none_match, *if_modified_since, *if_range, *range;
	bool head;               /* HEAD: same status and headers, no body bytes */
};

/* What is being served. */
struct plan_resp {
	unsigned status;         /* as stored or as the origin sent it */
	const char *etag, *last_modified; /* its validators, NULL: absent */
	const char *date;        /* its Date: If-Modified-Since's fallback without
	                            Last-Modified (RFC 9111 4.3.2); NULL: absent */
	int64_t length;          /* body bytes; -1: not known yet (no ranges then) */
	bool cacheable;          /* a GET/HEAD answered through the cache (not a pass):
	                            only then do conditionals and ranges apply */
	bool whole;              /* the whole body is kept (stored or being stored), so
	                            parts may be read in any order: several ranges are
	                            served as multipart; otherwise the whole object */
};

struct plan {
	unsigned status;
	bool empty;              /* 304 / 416: no body */
	bool body;               /* body bytes are sent (not empty, not HEAD) */
	bool own_ranges;         /* the edge serves ranges: the origin's Accept-Ranges
	                            is dropped and "Accept-Ranges: bytes" sent */
	uint64_t off, len;       /* the body bytes sent (one range or all); len is
	                            UINT64_MAX for a whole body of unknown length */
	unsigned nranges;        /* >= 2: multipart of rg[] (off/len unused) */
	struct byte_range rg[RANGE_MAX];
	char content_range[96];  /* the Content-Range value, "" for none */
};

/* Decides p for serving s to a request with conditionals q. */
void plan_make(const struct plan_req *q, const struct plan_resp *s, struct plan *p);

/* Whether a header of the served response (stored or from the origin) goes
 * out under p: never the CDN's own (plan_private_header); a 304 carries only
 * what RFC 9110 15.4.5 lists; a 416 none; a multipart body no top-level
 * Content-Type (each part has it); own ranges no Accept-Ranges. */
bool plan_keep_header(const struct plan *p, const char *name);

/* Headers meant for the CDN, never sent to clients: CDN-Cache-Control,
 * Surrogate-Control, Surrogate-Key, Cache-Tag. */
bool plan_private_header(const char *name);

/* RFC 9110 13.1.2: true if the If-None-Match list names etag (weak
 * comparison; "*" names any). */
bool plan_etag_in_list(const char *list, const char *etag);

#endif
