/* script.h -- edge scripts: signed Lua bundles received, stored, activated and
 * run at the edge.  The bundle format is common/bundle.h; the request and
 * response types are script_io.h; the Lua runtime is lua_vm.h.  A struct
 * scripts (owned by the edge's context, edge/edge.h) holds the set of active
 * versions (script_active.h), its LMDB store (script_store.c), the KV store
 * (kv.h), the per-thread Lua states, and serves the control endpoints and
 * the per-request entry point (script_run.c).
 *
 * Activation is RCU-like: the set of active versions is an immutable,
 * refcounted snapshot.  A request takes a reference for its whole run, so a
 * push swaps the pointer and in-flight requests finish on the version they
 * started with; the old snapshot is freed by whoever drops the last reference.
 * Each worker thread has its own Lua state, which compiles a version once, the
 * first time that thread runs it. */
#ifndef MINICDN_EDGE_SCRIPT_H
#define MINICDN_EDGE_SCRIPT_H

#include "edge/script/script_config.h"
#include "edge/script/script_io.h"
#include "common/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------- lifecycle ---------- */

struct scripts;

/* Opens the store, reads the public key, loads and compiles the active
 * bundles.  edge_name/region are what scripts see as req.edge_name/edge_region;
 * origin is the base URL for subrequests ("http://127.0.0.1:8080").  Copies
 * everything it needs.  Scripts not configured (no path, or enabled = false):
 * an object that runs nothing and answers pushes 503.  NULL with the reason. */
struct scripts *script_init(const struct script_config *cfg, const char *edge_name,
                            const char *edge_region, const char *origin, char *err,
                            size_t errlen);
/* Frees everything (NULL is ignored); no request may be running and the
 * worker threads that ran scripts must have exited. */
void script_shutdown(struct scripts *s);
/* True when at least one bundle is active (a cheap check for the dispatch;
 * false for NULL). */
bool script_any(const struct scripts *s);

enum script_result { SCRIPT_PASS = 0, SCRIPT_RESPONSE = 1, SCRIPT_WAIT = 2 };

/* A script request waiting for an origin subrequest. */
struct script_task;

/* Runs the first bundle whose route matches.  SCRIPT_RESPONSE: resp is filled
 * (by the script, or a 500 when it failed and its route says on_error "500");
 * SCRIPT_PASS: no route matched, the script returned nil, or it failed with
 * on_error "origin" -- the caller goes on with the cache/origin path.
 * SCRIPT_WAIT: the script waits for a subrequest (req->suspend was called);
 * *task is set and req (copied) and what it points to must stay valid until
 * the task ends: after req->wake, call script_resume; if the request ends
 * first, script_abort.  Both on the thread that called script_handle (it
 * owns the Lua state).  The task keeps the bundle version it started with
 * (a push meanwhile does not affect it).  Never blocks on the network. */
enum script_result script_handle(struct scripts *s, const struct script_req *req,
                                 struct script_resp *resp, struct script_task **task);
/* True when a route of an active bundle matches req's method, site, host
 * and path (only those fields are read): script_handle would run a script
 * for it.  Known from the request head, so a body that no script can see
 * need not be held. */
bool script_routes_match(struct scripts *s, const struct script_req *req);
/* Continues t after its wake-up; returns as script_handle (SCRIPT_WAIT again:
 * t waits for another subrequest, or the wake-up was early).  Otherwise t is
 * gone. */
enum script_result script_resume(struct script_task *t, struct script_resp *resp);
/* Ends a waiting t (client gone, shutdown) without a response. */
void script_abort(struct script_task *t);

/* Control API under /.minicdn/scripts.  method/path as received, body the
 * request body (borrowed).  Writes a JSON reply into out, returns the HTTP status.
 *   POST   /.minicdn/scripts        signed envelope (activate or delete)
 *   DELETE /.minicdn/scripts/NAME   signed envelope with op "delete" for NAME
 *   GET    /.minicdn/scripts        list of active bundles */
int script_control(struct scripts *s, const char *method, const char *path, const char *body,
                   size_t len, struct buf *out);

/* Appends Prometheus text for every script (invocations, errors by kind, time). */
void script_metrics(struct scripts *s, struct buf *out);

#endif
