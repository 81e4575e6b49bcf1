/* script_http.h -- glue between the edge's HTTP dispatch (front/http.c) and
 * the script runtime (script/script.h): request conversion, response queueing,
 * caching of responses a script marked cacheable, and the control endpoint. */
#ifndef MINICDN_EDGE_SCRIPT_HTTP_H
#define MINICDN_EDGE_SCRIPT_HTTP_H

#include "edge/front/request.h"
#include <stdbool.h>

/* Runs the script whose route matches r, if any.  Returns true when a
 * response was queued (*ret is the MHD result to return), false to let the
 * request continue to the cache/origin (no route, the script returned nil,
 * it failed on an on_error = "origin" route, or a fresh cached copy of a
 * cacheable script response exists and the cache should serve it). */
bool script_http_step(struct edge_req *r, enum MHD_Result *ret);

/* A script waiting for an origin subrequest (r->state RS_SCRIPT: the
 * connection was suspended and has been resumed): continues it.  Returns as
 * script_http_step; true with the connection suspended again if it waits
 * for another subrequest. */
bool script_http_resume(struct edge_req *r, enum MHD_Result *ret);

/* The request is over (MHD completed it): ends a script still waiting. */
void script_http_release(struct edge_req *r);

/* /.minicdn/scripts[/NAME]: push (POST), unpush (DELETE), list (GET).
 * Authenticated by the bundle signature, not the control secret. */
enum MHD_Result script_http_control(struct edge_req *r);

#endif
