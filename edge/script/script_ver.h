/* script_ver.h -- one verified bundle version as the edge runs it, and the
 * per-script counters its runs add to.  Below the scripts' store and the
 * Lua runtime, which both hold versions; depends on nothing in edge/. */
#ifndef MINICDN_EDGE_SCRIPT_VER_H
#define MINICDN_EDGE_SCRIPT_VER_H

#include "common/bundle.h"
#include "common/buf.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

enum script_err { SERR_RUNTIME, SERR_INSTRUCTIONS, SERR_TIME, SERR_MEMORY, SERR_RESPONSE, SERR_N };

/* "runtime", "instructions", ...: the kind as metrics and logs name it. */
const char *script_err_name(enum script_err k);

/* Counters touched by every request live in per-thread slots, each on its
 * own cache line, so worker threads on different cores do not bounce one
 * line between them; readers sum the slots (threads beyond SCRIPT_STAT_SLOTS
 * share slots, still exact since the counters are atomic). */
#define SCRIPT_STAT_SLOTS 8
struct script_stat_slot {
	_Alignas(64) atomic_ullong invocations;
	atomic_ullong time_us;
};

struct script_stats {
	struct script_stat_slot slot[SCRIPT_STAT_SLOTS]; /* first: 64-byte aligned allocation */
	char name[BUNDLE_MAX_NAME + 1];
	atomic_ullong passes;              /* returned nil: fell through */
	atomic_ullong errors[SERR_N];
	struct script_stats *next;
};

/* Every script name's counters since start-up (they survive new versions
 * and deletes).  Initialise with SCRIPT_STATS_SET_INIT. */
struct script_stats_set {
	pthread_mutex_t mu;
	struct script_stats *head;
};
#define SCRIPT_STATS_SET_INIT { PTHREAD_MUTEX_INITIALIZER, NULL }

/* The counters of name, made on first use; borrowed, valid until
 * script_stats_free. */
struct script_stats *script_stats_get(struct script_stats_set *set, const char *name);
/* Counts one run (finished or abandoned) that took run_us, in the calling
 * thread's slot. */
void script_stats_count(struct script_stats *st, long long run_us);
/* Appends Prometheus text for every script's counters. */
void script_stats_metrics(struct script_stats_set *set, struct buf *out);
void script_stats_free(struct script_stats_set *set);

struct script_ver {
	atomic_int refs;
	uint64_t seq;            /* unique in this process: names compiled code in each Lua state */
	struct bundle *b;        /* owned */
	char *raw;               /* the signed bytes as stored, owned */
	size_t rawlen;
	char *env;               /* the signed envelope, owned (kept for re-export/listing) */
	size_t envlen;
	char digest[17];
	long long activated;     /* unix seconds */
	struct script_stats *stats; /* borrowed from the stats set */
};

/* Verifies (against any of the public keys), parses and wraps an envelope into a
 * version with one reference and sequence number seq; its counters come from
 * set.  NULL with the reason in err. */
struct script_ver *script_ver_new(const char *env, size_t envlen, const struct bundle_keys *keys,
                                  uint64_t seq, struct script_stats_set *set, char *err, size_t errlen);
/* Takes another reference. */
static inline void script_ver_ref(struct script_ver *v)
{
	atomic_fetch_add(&v->refs, 1);
}
/* Drops a reference; the last one frees v.  NULL is ignored. */
void script_ver_release(struct script_ver *v);

#endif
