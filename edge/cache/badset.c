/* badset.c -- bodies from before an unclean stop: the set found bad, and
 * whether one may be served.
 *
 * Filled by check.c (the checksum pass's reports) and by reads that verify
 * a body themselves (store.c's lookup); frozen once the pass is done.
 * Calls: only entry_verify() and the fields of struct cache it owns. */
#include "edge/cache/store_int.h"

#include <stdlib.h>

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

bool badset_has(struct cache *c, uint64_t id)
{
	if (atomic_load_explicit(&c->bad_final, memory_order_acquire)) /* sorted, frozen */
		return bsearch(&id, c->bad, c->nbad, sizeof id, cmp_u64) != NULL;
	bool has = false;
	pthread_mutex_lock(&c->bad_lock);
	for (size_t i = 0; i < c->nbad && !has; i++)
		has = c->bad[i] == id;
	pthread_mutex_unlock(&c->bad_lock);
	return has;
}

void badset_add(struct cache *c, uint64_t id)
{
	pthread_mutex_lock(&c->bad_lock);
	size_t i = 0;
	while (i < c->nbad && c->bad[i] != id) /* found on read, then by the pass */
		i++;
	if (i < c->nbad || atomic_load(&c->bad_final))
		; /* known; or frozen: the finished pass reported every bad body */
	else if (c->nbad < BAD_MAX)
		c->bad[c->nbad++] = id;
	else
		c->bad_overflow = true; /* old bodies stay verified on read, all of them */
	pthread_mutex_unlock(&c->bad_lock);
	atomic_store(&c->any_bad, true);
}

size_t badset_count(struct cache *c)
{
	pthread_mutex_lock(&c->bad_lock);
	size_t n = c->nbad;
	pthread_mutex_unlock(&c->bad_lock);
	return n;
}

uint64_t badset_first(struct cache *c)
{
	pthread_mutex_lock(&c->bad_lock);
	uint64_t id = c->nbad ? c->bad[0] : 0;
	pthread_mutex_unlock(&c->bad_lock);
	return id;
}

void badset_clear(struct cache *c)
{
	pthread_mutex_lock(&c->bad_lock);
	c->nbad = 0;
	c->bad_overflow = false;
	pthread_mutex_unlock(&c->bad_lock);
	atomic_store(&c->any_bad, false);
}

size_t badset_freeze(struct cache *c)
{
	/* The set is final (reads no longer verify, so add none): sorted, it is
	 * searched without the lock.  A read that began before the bad
	 * entries' deletion may still meet a bad id, so lookups keep asking
	 * while any was found. */
	pthread_mutex_lock(&c->bad_lock);
	qsort(c->bad, c->nbad, sizeof c->bad[0], cmp_u64);
	atomic_store(&c->verified_upto, UINT64_MAX);
	atomic_store_explicit(&c->bad_final, true, memory_order_release);
	size_t n = c->nbad; /* a read may have found one meanwhile */
	pthread_mutex_unlock(&c->bad_lock);
	return n;
}

/* Not one the checksum pass found bad, and verified now unless the pass
 * vouched for it.  Off the hot path: only bodies below c->verify_limit
 * come here. */
bool badset_body_ok(struct cache *c, uint64_t id, const MDB_val *v)
{
	if (atomic_load(&c->any_bad) && badset_has(c, id))
		return false;
	if (!c->verify_all && !c->bad_overflow && id < atomic_load(&c->verified_upto))
		return true;
	if (entry_verify(v->mv_data, v->mv_size) == 0)
		return true;
	badset_add(c, id);
	return false;
}
