/* control.h -- node endpoints: GET /healthz, GET /metrics, and the
 * authenticated control API under /.minicdn/ (POST /.minicdn/purge,
 * POST /.minicdn/drain, POST /.minicdn/undrain). */
#ifndef MINICDN_CONTROL_H
#define MINICDN_CONTROL_H

#include "edge/front/request.h"

/* Answers r (path /healthz, /metrics or /.minicdn/...).  Control requests
 * need "Authorization: Bearer <control_secret>" (401 otherwise). */
enum MHD_Result control_handle(struct edge_req *r);

/* Applies a purge request body ({"url":U} | {"prefix":P} | {"tag":T}).
 * Returns entries removed, or -1 with a reason in err (400). */
long control_purge(struct edge *e, const char *json, size_t len, char *err, size_t errlen);

/* Sets e->draining from the flag file a drain left in the cache directory
 * (a drained edge that restarts, e.g. for an upgrade, stays drained). */
void control_drain_restore(struct edge *e);

#endif
