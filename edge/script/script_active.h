/* script_active.h -- the set of active script versions, RCU-like: an
 * immutable, refcounted snapshot sorted by name.  A push publishes a new
 * snapshot; requests that started on the old one finish on it, and the
 * last reference frees it.  Worker threads keep a reference to the
 * snapshot they last used, so the request path takes no lock and writes
 * no shared cache line. */
#ifndef MINICDN_EDGE_SCRIPT_ACTIVE_H
#define MINICDN_EDGE_SCRIPT_ACTIVE_H

#include "edge/script/script_ver.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct script_snap {
	atomic_int refs;
	uint64_t gen;            /* changes with every publish */
	struct script_ver **v;   /* sorted by name; each holds a reference */
	size_t n;
	uint64_t *seqs;          /* v[i]->seq, for lua_vm_sync */
};

struct script_active {
	pthread_mutex_t mu;
	struct script_snap *snap; /* the published one (a reference) */
	atomic_ullong pub_gen;    /* snap->gen, read without the lock */
	uint64_t gen;
	pthread_key_t tl_key;     /* each worker thread's cached snapshot reference */
	int tl_key_ok;            /* 0: every request takes the lock instead */
};

/* Empty set; the per-thread cache only if a thread key is left. */
void script_active_init(struct script_active *a);
/* Drops the published snapshot and the calling thread's cached one; worker
 * threads released theirs when they exited. */
void script_active_fini(struct script_active *a);

/* The published snapshot (a new reference, or NULL if none yet). */
struct script_snap *script_active_acquire(struct script_active *a);
void script_snap_release(struct script_snap *s);
/* Publishes current-with-name-replaced-by-v (removed if v is NULL); takes the
 * caller's reference to v. */
void script_active_publish(struct script_active *a, const char *name, struct script_ver *v);

/* A worker thread's cached reference (the value of tl_key). */
struct script_active_tl {
	struct script_snap *s;
	uint64_t gen;
};

/* script_active_thread when the thread's cached snapshot is missing or old. */
struct script_snap *script_active_thread_renew(struct script_active *a);

/* The calling thread's current snapshot: borrowed until
 * script_active_thread_done (the thread's cached reference keeps it alive,
 * and only this thread replaces it, at its next call).  Inline: on the
 * request path this is one atomic load and no write to a shared line when
 * nothing was published since the thread's last call. */
static inline struct script_snap *script_active_thread(struct script_active *a)
{
	if (a->tl_key_ok) {
		struct script_active_tl *t = pthread_getspecific(a->tl_key);
		if (t && t->s && t->gen == atomic_load_explicit(&a->pub_gen, memory_order_acquire))
			return t->s;
	}
	return script_active_thread_renew(a);
}
static inline void script_active_thread_done(struct script_active *a, struct script_snap *s)
{
	if (!a->tl_key_ok)
		script_snap_release(s);
}

/* True when the published snapshot holds a version (a racy read: a hint). */
static inline int script_active_any(const struct script_active *a)
{
	const struct script_snap *s = a->snap;
	return s && s->n > 0;
}

#endif
