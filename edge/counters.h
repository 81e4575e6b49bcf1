/* counters.h -- the edge's request counters, one cache line set per thread.
 *
 * Every request bumps a few counters (requests, in flight, hits...).  With
 * one shared set, two workers on two cores pass the same cache line back and
 * forth on every increment; each thread instead counts into its own shard,
 * and readers (/metrics, /healthz, shutdown) add the shards up. */
#ifndef MINICDN_COUNTERS_H
#define MINICDN_COUNTERS_H

#include <stdatomic.h>

enum counter {
	C_REQUESTS, C_HITS, C_MISSES, C_STALE_SERVED, C_REVALIDATED, C_ORIGIN_FETCHES,
	C_ORIGIN_ERRORS, C_STORED, C_PURGED, C_BAD_REQUESTS, C_COLLAPSED, C_PASSES,
	C_INFLIGHT, /* a gauge: +1 when a request starts, -1 when it ends */
	C_COUNT
};

#define COUNTER_SHARDS 16

struct counters {
	struct {
		_Atomic long v[C_COUNT];
	} __attribute__((aligned(64))) shard[COUNTER_SHARDS];
};

/* Adds n to counter c in the calling thread's shard (threads beyond
 * COUNTER_SHARDS share shards: still correct, only slower). */
void counters_add(struct counters *cs, enum counter c, long n);
/* The sum of counter c over all shards. */
long counters_get(const struct counters *cs, enum counter c);

#endif
