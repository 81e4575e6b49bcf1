/* deliver.h -- getting signed bundle envelopes onto the edges: sends in
 * parallel (common/fanout.h), each edge's sync state, and a background
 * thread that keeps reconciling edges that lag behind.
 *
 * Reconciliation: every retry_interval the thread reads each edge's
 * GET /.minicdn/scripts and re-sends the current envelope of every bundle the
 * edge lacks or holds at a lower version.  A version an edge rejected is not
 * re-sent before retry_rejected has passed (or the edge comes back from an
 * outage).  So an edge that was down during a push, or lost its state, gets
 * the current bundles when it comes back, and so does every edge after an
 * origin restart.
 *
 * Locking: the owner (push.c) holds two mutexes and lends them here.  op_lock
 * serialises everything that talks to edges (a publish, a reconciliation
 * round) so versions and sends never interleave; state_lock guards the
 * history index and the edge states and is only held briefly, so readers
 * (GET /bundles, /healthz) never wait for an edge. */
#ifndef MINICDN_ORIGIN_DELIVER_H
#define MINICDN_ORIGIN_DELIVER_H

#include "common/buf.h"
#include "origin/config.h"
#include "origin/history.h"
#include <pthread.h>
#include <stddef.h>

struct deliver;

/* Edges, timeouts and the secret sent to edges come from cfg.  hist and
 * both locks are borrowed and must outlive the deliverer. */
struct deliver *deliver_new(const struct origin_config *cfg, struct history *hist, pthread_mutex_t *op_lock,
                            pthread_mutex_t *state_lock);
/* Starts the reconciliation thread (first round at once). */
void deliver_start(struct deliver *d);
/* Replaces the edge list, timeouts and secret (SIGHUP) and wakes the thread
 * for a round at once.  Takes both locks. */
void deliver_configure(struct deliver *d, const struct origin_config *cfg);
/* Stops the thread and frees everything.  NULL is fine. */
void deliver_free(struct deliver *d);

/* Marks every edge as behind (a new version exists).  state_lock held.
 * Returns the number of edges. */
size_t deliver_mark_behind(struct deliver *d);
/* Sends env (version v of name) to every edge and waits for the answers
 * (bounded by the timeout).  op_lock held, state_lock not.  Appends
 * "edges":[{"name","url","result","http_status","reason"}...],
 * "activated":N,"rejected":N,"unreachable":N to out. */
void deliver_publish(struct deliver *d, const char *name, const struct history_ver *v, const char *env,
                     size_t envlen, struct buf *out);

/* Appends the edges' states as JSON objects separated by commas (no
 * brackets).  state_lock held. */
void deliver_edges_json(const struct deliver *d, struct buf *out);
/* Number of edges and of those not known to hold every current bundle.
 * state_lock held. */
void deliver_counts(const struct deliver *d, size_t *edges, size_t *behind);

struct deliver_stats {
	unsigned long activated, rejected, unreachable; /* sends, by outcome */
	unsigned long rounds;                           /* reconciliation rounds run */
};
/* Counters since start (no lock needed). */
void deliver_stats(const struct deliver *d, struct deliver_stats *st);

#endif
