/* counters.h -- per-thread query counters, summed on demand.
 *
 * Each worker owns one struct counters and increments plain fields (no
 * atomics, no sharing); readers sum all of them, accepting a slightly stale
 * total.  Edges and regions are counted under a stable id from
 * counters_id(), so their totals survive reloads that reorder them. */
#ifndef MINICDN_COUNTERS_H
#define MINICDN_COUNTERS_H

#include <stddef.h>
#include <stdint.h>

#define COUNTERS_MAX_IDS 4096
#define COUNTERS_RCODES 24

struct counters {
	uint64_t udp, tcp;              /* queries received */
	uint64_t dropped;               /* not answered (QR set, too short) */
	uint64_t truncated;             /* TC set */
	uint64_t ecs;                   /* queries with a valid ECS option */
	uint64_t dynamic;               /* dynamic answers */
	uint64_t fail_open;             /* dynamic answers given fail-open */
	uint64_t rcode[COUNTERS_RCODES];/* extended rcodes, BADVERS = 16 */
	uint64_t edge[COUNTERS_MAX_IDS];   /* times an edge was in an answer */
	uint64_t region[COUNTERS_MAX_IDS]; /* dynamic answers per client region */
};

enum counters_kind { COUNTERS_EDGE = 0, COUNTERS_REGION = 1 };

/* A new zeroed block registered for summing (never freed before exit). */
struct counters *counters_new(void);
/* Stable id of a name; the same name always gets the same id.  Thread-safe. */
unsigned counters_id(enum counters_kind kind, const char *name);
/* Name of an id (borrowed, valid until exit), NULL if unused. */
const char *counters_name(enum counters_kind kind, unsigned id);
unsigned counters_nids(enum counters_kind kind);
/* Sums every registered block into out. */
void counters_sum(struct counters *out);

#endif
