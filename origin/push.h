/* push.h -- the origin's script-bundle control plane: assigns versions,
 * signs bundles with the origin's Ed25519 key (common/bundle.h), keeps every
 * version (origin/history.h) and gets it onto every configured edge, now and
 * later (origin/deliver.h).
 *
 * Control API (under /.minicdn/, Bearer control_secret, JSON in and out):
 *   POST /push      {"bundle":"<bundle JSON as bundle_serialize makes it>","version":0}
 *                   version 0 = next after the current; a given version must be higher.
 *   POST /rollback  {"name":N}  re-signs the content of the previous version under a new,
 *                   higher version (edges refuse lower versions: replay protection holds).
 *   POST /unpush    {"name":N}  signs a tombstone (op "delete") under a new version.
 *   GET  /bundles   history and current version of every bundle, per-edge sync state.
 * push/rollback/unpush answer {"name","version","op","digest","edges":[{"name","url",
 * "result":"activated"|"rejected"|"unreachable","http_status","reason"}],
 * "activated":N,"rejected":N,"unreachable":N}.
 *
 * Calls go one way: push.c -> deliver.c -> history.c. */
#ifndef MINICDN_ORIGIN_PUSH_H
#define MINICDN_ORIGIN_PUSH_H

#include "common/buf.h"
#include "origin/config.h"
#include <stdbool.h>
#include <stddef.h>

struct push;

/* Reads the secret key and (unless dry, as for -t) creates the state
 * directory and loads the history.  Returns NULL with the reason in err. */
struct push *push_new(const struct origin_config *cfg, bool dry, char *err, size_t errlen);
/* Starts the reconciliation thread (first round at once). */
void push_start(struct push *p);
/* Replaces the edge list, timeouts and the secret sent to edges (SIGHUP);
 * every edge is reconciled again at once.  The signing key and state
 * directory need a restart. */
void push_set_edges(struct push *p, const struct origin_config *cfg);
/* Stops the thread and frees everything.  NULL is fine. */
void push_free(struct push *p);

/* Handles one control request; path is what follows "/.minicdn" ("/push").
 * Writes a JSON body to out and returns the HTTP status.  Blocks while edges
 * are contacted (bounded by the push timeout). */
unsigned push_handle(struct push *p, const char *method, const char *path, const char *body,
                     size_t len, struct buf *out);

/* Appends ,"scripts":{...} (counts) to a /healthz JSON object being built. */
void push_health_json(struct push *p, struct buf *b);
/* Appends Prometheus text lines. */
void push_metrics(struct push *p, struct buf *b);

/* Previous version to restore when rolling back from the current one, given
 * the history in ascending version order (pure; exposed for unit tests).
 * del[i] marks tombstones, rb[i] the version whose content entry i re-signs
 * (0 if none).  Returns the index of the entry to restore, or -1. */
long push_rollback_target(const unsigned long long *ver, const bool *del, const unsigned long long *rb,
                          size_t n);

#endif
