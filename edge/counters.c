/* counters.c -- per-thread shards of the edge's counters */
#include "edge/counters.h"

/* A thread's shard is fixed the first time it counts; shards are handed out
 * round-robin.  Process-wide on purpose: the shard is a property of the
 * thread, whichever struct counters it counts into. */
static _Atomic unsigned next_shard;
static _Thread_local int my_shard = -1;

void counters_add(struct counters *cs, enum counter c, long n)
{
	if (my_shard < 0)
		my_shard = (int)(atomic_fetch_add(&next_shard, 1) % COUNTER_SHARDS);
	/* Relaxed: a counter orders nothing, and this line is the thread's own. */
	atomic_fetch_add_explicit(&cs->shard[my_shard].v[c], n, memory_order_relaxed);
}

long counters_get(const struct counters *cs, enum counter c)
{
	long sum = 0;
	for (int i = 0; i < COUNTER_SHARDS; i++)
		sum += atomic_load_explicit(&((struct counters *)cs)->shard[i].v[c], memory_order_relaxed);
	return sum;
}
