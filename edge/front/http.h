/* http.h -- the edge's HTTP listener.
 *
 * Dispatch order (http.c, function dispatch()):
 *   1. /healthz, /metrics, /.minicdn/... control (control.c)
 *   1b. the site (edge/site.h) by Host: 421 if none; 308 to HTTPS if it says so
 *   2. script hook (script_http.c): a matching script answers or declines
 *   3. cache (GET/HEAD): hit, stale-while-revalidate, revalidation
 *   4. origin (upstream/proxy.h): misses (collapsed), unsafe methods (pass +
 *      invalidate); what it answers is served by respond.c
 */
#ifndef MINICDN_HTTP_H
#define MINICDN_HTTP_H

#include "edge/edge.h"
#include <microhttpd.h>

struct http_front;

/* Starts a listener per address: HTTP (listen), HTTPS (https_listen, with
 * e->tls) and the control API's own (control_listen).  Returns them, or
 * NULL with err (nothing left listening). */
struct http_front *http_start(struct edge *e, char *err, size_t errlen);
/* Stops accepting on every address; connections open go on. */
void http_quiesce(struct http_front *h);
/* Stops every daemon (after their requests finished) and frees h. */
void http_stop(struct http_front *h);

#endif
