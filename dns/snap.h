/* snap.h -- the immutable state queries read, and how it is swapped.
 *
 * A snapshot holds what a config load produces: the config, zones, subnet map
 * and edge set.  A view pairs a snapshot with a choice (the edge set under one
 * health state).  Worker threads read the current view with one atomic load
 * inside a read-side section (qsbr_enter/leave); publishers (reload, health
 * checker) swap in a new view under a mutex, wait until every reader has left
 * the section it was in (quiescent-state based reclamation), then free the old
 * one.  So the query path takes no lock, and nobody reads freed or half-built
 * state. */
#ifndef MINICDN_SNAP_H
#define MINICDN_SNAP_H

#include "dns/conf.h"
#include "dns/digest.h"
#include "dns/edges.h"
#include "dns/geo.h"
#include "dns/zone.h"
#include <stdatomic.h>
#include <stdint.h>

struct snapshot {
	struct dns_conf conf;  /* owned */
	struct zone **zones;   /* owned, nzones */
	size_t nzones;
	struct geo *geo;       /* owned */
	struct edgeset *es;    /* owned */
	uint64_t generation;
	long long load_ms;     /* time the load took */
	long long loaded_at;   /* wall clock ms */
	char digest[DIGEST_HEX_LEN + 1]; /* dns/digest.h: zones, map, regions, edges */
};

struct view {
	struct snapshot *snap;
	struct choice *choice;
};

/* Loads config, zones, dynamic names, map, GeoIP.  Returns NULL with the
 * first error ("FILE:LINE: reason") in err; nothing is left allocated. */
struct snapshot *snapshot_load(const char *config_path, char *err, size_t errlen);
void snapshot_free(struct snapshot *s);

/* ---- reader side (lock-free) ---- */
#define QSBR_MAX_READERS 128
/* Registers the calling thread as a reader; returns its slot. */
int qsbr_register(void);
void qsbr_unregister(int slot);
/* Between enter and leave the view returned by view_current stays valid. */
void qsbr_enter(int slot);
void qsbr_leave(int slot);
const struct view *view_current(void);

/* ---- publisher side (serialised by view_lock) ---- */
void view_lock(void);
void view_unlock(void);
/* With the lock held: installs s (takes ownership) with a choice built from
 * health h (es->ne entries), waits out readers, frees the old view (and its
 * snapshot when it differs). */
void view_publish(struct snapshot *s, const struct edge_health *h);
/* Frees the current view at shutdown (no reader may be active). */
void view_shutdown(void);

#endif
