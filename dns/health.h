/* health.h -- polls every edge's /healthz (libcurl multi, one thread).
 *
 * Each round checks all edges of the current snapshot in parallel; an edge
 * goes down after `fall` consecutive failures (transport error, timeout,
 * status not in up_statuses) and up after `rise` successes.  The load reported
 * in the JSON body is kept.  When the usable set changes the checker
 * publishes a new view (same snapshot, new choice).  State is kept by edge
 * name, so a reload keeps what is known about edges that stay. */
#ifndef MINICDN_HEALTH_H
#define MINICDN_HEALTH_H

#include "dns/edges.h"
#include <stdbool.h>

/* Starts the checker thread; its first round starts at once. */
void health_start(void);
/* Stops and joins it (an in-flight round is abandoned within ~100 ms). */
void health_stop(void);
/* Waits until the first round is done or timeout_ms passed; true if done. */
bool health_wait_first_round(int timeout_ms);
/* Fills h (es->ne entries) with what is known about es's edges; edges never
 * checked get the initial state ("up"/"down"); edges without a health URL are up. */
void health_fill(const struct edgeset *es, const char *initial, struct edge_health *h);
/* Wakes the checker for an immediate round (after a reload). */
void health_kick(void);

#endif
