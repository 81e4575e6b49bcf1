/* origin_req.h -- the header lines of a request to the origin. */
#ifndef MINICDN_EDGE_ORIGIN_REQ_H
#define MINICDN_EDGE_ORIGIN_REQ_H

#include "edge/upstream/call.h"
#include <curl/curl.h>
#include <stdbool.h>

/* The headers for pc's request to the origin, as a curl list in one
 * malloc'd block -- nodes and text together: free() it, never
 * curl_slist_free_all or curl_slist_append (fetch_new takes it with
 * req_headers_flat set).  They are the client's, less hop-by-hop fields, Host,
 * Content-Length, Expect, Via and X-Forwarded-For -- and, unless pass (a
 * request forwarded as it is, not a fill), its conditionals and ranges; an
 * Accept-Encoding normalised as the cache keys variants; then Host, Via and
 * X-Forwarded-For of the edge's own, and If-None-Match / If-Modified-Since
 * from etag / lm (either may be NULL). */
struct curl_slist *origin_req_headers(struct proxy_call *pc, bool pass, const char *etag,
                                      const char *lm);

#endif
