/* http.h -- the edge's HTTP listener.
 *
 * Dispatch order (http.c, function dispatch()):
 *   1. /healthz, /metrics, /.minicdn/... control (control.c)
 *   2. script hook (script_http.c): a matching script answers or declines
 *   3. cache (GET/HEAD): hit, stale-while-revalidate, revalidation
 *   4. origin (upstream/proxy.h): misses (collapsed), unsafe methods (pass +
 *      invalidate); what it answers is served by respond.c
 */
#ifndef MINICDN_HTTP_H
#define MINICDN_HTTP_H

#include "edge/edge.h"
#include <microhttpd.h>

/* Starts the listener.  Returns the daemon or NULL with err. */
struct MHD_Daemon *http_start(struct edge *e, char *err, size_t errlen);

#endif
