/* script_active.c -- the published set of active versions and each worker
 * thread's cached reference to it */
#include "edge/script/script_active.h"
#include "common/xmalloc.h"

#include <stdlib.h>
#include <string.h>

void script_snap_release(struct script_snap *s)
{
	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	for (size_t i = 0; i < s->n; i++)
		script_ver_release(s->v[i]);
	free(s->v);
	free(s->seqs);
	free(s);
}

struct script_snap *script_active_acquire(struct script_active *a)
{
	pthread_mutex_lock(&a->mu);
	struct script_snap *s = a->snap;
	if (s)
		atomic_fetch_add(&s->refs, 1);
	pthread_mutex_unlock(&a->mu);
	return s;
}

void script_active_publish(struct script_active *a, const char *name, struct script_ver *v)
{
	struct script_snap *old = script_active_acquire(a);
	struct script_snap *s = xcalloc(1, sizeof *s);
	size_t cap = (old ? old->n : 0) + 1;
	s->v = xcalloc(cap, sizeof *s->v);
	s->seqs = xcalloc(cap, sizeof *s->seqs);
	int placed = 0;
	for (size_t i = 0; old && i < old->n; i++) {
		int c = strcmp(old->v[i]->b->name, name);
		if (c > 0 && v && !placed) {
			s->v[s->n++] = v;
			placed = 1;
		}
		if (c == 0)
			continue;
		script_ver_ref(old->v[i]);
		s->v[s->n++] = old->v[i];
	}
	if (v && !placed)
		s->v[s->n++] = v;
	for (size_t i = 0; i < s->n; i++)
		s->seqs[i] = s->v[i]->seq;
	atomic_init(&s->refs, 1);
	pthread_mutex_lock(&a->mu);
	s->gen = ++a->gen;
	struct script_snap *prev = a->snap;
	a->snap = s;
	atomic_store(&a->pub_gen, s->gen);
	pthread_mutex_unlock(&a->mu);
	script_snap_release(prev); /* the set's reference */
	script_snap_release(old);  /* ours */
}

/* ---------- per-thread cache ---------- */

static void tl_snap_free(void *p)
{
	struct script_active_tl *t = p;
	script_snap_release(t->s);
	free(t);
}

void script_active_init(struct script_active *a)
{
	memset(a, 0, sizeof *a);
	pthread_mutex_init(&a->mu, NULL);
	a->tl_key_ok = pthread_key_create(&a->tl_key, tl_snap_free) == 0;
}

void script_active_fini(struct script_active *a)
{
	if (a->tl_key_ok) {
		struct script_active_tl *t = pthread_getspecific(a->tl_key);
		if (t)
			tl_snap_free(t);
		pthread_setspecific(a->tl_key, NULL);
		pthread_key_delete(a->tl_key);
		a->tl_key_ok = 0;
	}
	script_snap_release(a->snap);
	a->snap = NULL;
	pthread_mutex_destroy(&a->mu);
}

struct script_snap *script_active_thread_renew(struct script_active *a)
{
	if (!a->tl_key_ok)
		return script_active_acquire(a);
	struct script_active_tl *t = pthread_getspecific(a->tl_key);
	if (!t) {
		t = xcalloc(1, sizeof *t);
		pthread_setspecific(a->tl_key, t);
	}
	if (!t->s || t->gen != atomic_load_explicit(&a->pub_gen, memory_order_acquire)) {
		script_snap_release(t->s);
		t->s = script_active_acquire(a);
		t->gen = t->s ? t->s->gen : 0;
	}
	/* Borrowed, not counted: an atomic per request would make the counter's
	 * cache line bounce between the worker threads' cores. */
	return t->s;
}
