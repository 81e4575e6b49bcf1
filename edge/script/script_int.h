/* script_int.h -- the fields of struct scripts, shared by the files of the
 * scripts module only (script.c: lifecycle, control, metrics; script_store.c:
 * bundles on disk and activation; script_run.c: routing and running).  The
 * rest of the edge sees struct scripts through script.h. */
#ifndef MINICDN_EDGE_SCRIPT_INT_H
#define MINICDN_EDGE_SCRIPT_INT_H

#include "edge/script/script_config.h"
#include "edge/script/lua_vm.h"
#include "edge/script/script_active.h"
#include "edge/script/script_ver.h"

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>

struct kv;
struct script_regions;

struct scripts {
	int ready;                   /* store open: requests may run scripts */
	struct script_config cfg;    /* strings owned */
	struct lua_vm_limits lim;
	struct lua_vm_site site;     /* strings owned; regions and kv point below */
	struct script_regions *regions;
	struct bundle_keys keys;     /* none: pushes are refused */
	MDB_env *env;
	MDB_dbi dbi_bundles; /* name -> signed envelope of the active version */
	MDB_dbi dbi_seen;    /* name -> highest version accepted (activate or delete), decimal */
	MDB_dbi dbi_prev;    /* name -> envelope of the version before the active one */
	struct kv *kv;
	pthread_mutex_t push_mu;     /* one push/delete at a time */
	struct script_active active;
	struct script_stats_set stats;
	atomic_ullong seq;           /* last version sequence number given */
	struct lua_vm_threads *threads;
};

#endif
