/* script_http.h -- glue between the edge's HTTP dispatch (edge/http.c) and
 * the script runtime (edge/script.h): request conversion, response queueing,
 * caching of responses a script marked cacheable, and the control endpoint. */
#ifndef MINICDN_EDGE_SCRIPT_HTTP_H
#define MINICDN_EDGE_SCRIPT_HTTP_H

#include "edge/http.h"
#include <stdbool.h>

/* Runs the script whose route matches r, if any.  Returns true when a
 * response was queued (*ret is the MHD result to return), false to let the
 * request continue to the cache/origin (no route, the script returned nil,
 * it failed on an on_error = "origin" route, or a fresh cached copy of a
 * cacheable script response exists and the cache should serve it). */
bool script_http_step(struct edge_req *r, enum MHD_Result *ret);

/* /.minicdn/scripts[/NAME]: push (POST), unpush (DELETE), list (GET).
 * Authenticated by the bundle signature, not the control secret. */
enum MHD_Result script_http_control(struct edge_req *r);

#endif
