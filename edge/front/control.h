/* control.h -- node endpoints: GET /healthz, GET /metrics, and the
 * authenticated control API under /.minicdn/ (POST /.minicdn/purge,
 * POST /.minicdn/drain, POST /.minicdn/undrain). */
#ifndef MINICDN_CONTROL_H
#define MINICDN_CONTROL_H

#include "edge/front/request.h"

/* Answers r (path /healthz, /metrics or /.minicdn/...).  Control requests
 * need "Authorization: Bearer <control_secret>" (401 otherwise).  A purge
 * ({"url":U} | {"prefix":P} | {"tag":T}, and "site":S to keep it to one
 * site; with several sites a path prefix or a tag needs "site", and a
 * purge never reaches another site's entries) is queued to the cache's
 * writer and r suspended in state RS_PURGE until its commit: answer it
 * then with control_purge_resume. */
enum MHD_Result control_handle(struct edge_req *r);

/* Answers a purge once its commit resumed r: {"purged":N}, or 500. */
enum MHD_Result control_purge_resume(struct edge_req *r);

/* When r completes: a purge still running no longer resumes it. */
void control_release(struct edge_req *r);

/* Sets e->draining from the flag file a drain left in the cache directory
 * (a drained edge that restarts, e.g. for an upgrade, stays drained). */
void control_drain_restore(struct edge *e);

#endif
