/* cache.c -- opening and closing the LMDB object store.
 *
 * The store is split by concern; store_int.h lists the files and which way
 * they call.  This file is the top: cache_open runs the start-up check
 * (check.c), opens the environment, and starts the writer (writer.c) and
 * the background check; cache_close stops them in the reverse order, has
 * store.c write the last touches and free its pool and purge.c its memory,
 * and leaves the clean-stop marker.  Nothing in edge/cache/ calls into it. */
#include "edge/cache/store_int.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------- a damaged store ---------- */

/* Moves a damaged data.mdb aside (one copy kept, data.mdb.damaged) and drops
 * the lock file, so the next open starts an empty store. */
static int store_reset(const char *path, char *aside, size_t asidelen)
{
	char data[4096], lock[4096];
	snprintf(data, sizeof data, "%s/data.mdb", path);
	snprintf(lock, sizeof lock, "%s/lock.mdb", path);
	snprintf(aside, asidelen, "%s/data.mdb.damaged", path);
	unlink(lock);
	if (rename(data, aside) < 0 && errno != ENOENT)
		return -1;
	return 0;
}

/* LMDB's own error codes (a damaged or foreign file) as opposed to errno
 * values (permissions, memory, disk), which a reset would not cure. */
static bool lmdb_damage(int rc)
{
	return rc >= MDB_KEYEXIST && rc <= MDB_LAST_ERRCODE;
}

/* ---------- the environment ---------- */

/* Opens the environment and its databases, refuses a store of an older
 * format (c->format_changed), clears the clean-shutdown marker and syncs
 * that, and finds the next body id.  Returns 0, or the LMDB/errno code
 * with the reason in err (c->env closed again). */
static int env_open(struct cache *c, const struct cache_opts *o, char *err, size_t errlen)
{
	MDB_txn *txn = NULL;
	int rc;
	c->format_changed = false;
	if ((rc = mdb_env_create(&c->env)) ||
	    (rc = mdb_env_set_mapsize(c->env, (size_t)o->map_size)) ||
	    (rc = mdb_env_set_maxdbs(c->env, 8)) ||
	    (rc = mdb_env_set_maxreaders(c->env, o->max_readers ? o->max_readers : 1024))) {
		snprintf(err, errlen, "lmdb: %s", mdb_strerror(rc));
		goto fail;
	}
	/* NOTLS: a read transaction belongs to a response, not a thread, and one
	 * MHD thread serves many responses at once.  NORDAHEAD: random access. */
	/* NOSYNC: commits are not fsync'd one by one (that capped misses at a
	 * few thousand per second); cache_maintain() syncs once a second.  A
	 * process crash (kill -9) loses nothing -- the pages are in the OS page
	 * cache -- only an OS crash can lose the last second of stores, which
	 * for a cache means a few refetches.  Writers still commit atomically;
	 * the start-up check verifies body checksums after an unclean stop.
	 * WRITEMAP: a commit's pages are written in place in the shared map,
	 * not copied into the file with pwrite (a few per cent of a miss's
	 * CPU).  LMDB still never writes over a page of the last committed
	 * snapshot, so a process crash loses nothing either way; the price is
	 * that a stray write into the map would corrupt the store instead of
	 * faulting -- what leaves edge/cache/ (zero-copy hits) is only read. */
	rc = mdb_env_open(c->env, o->path, MDB_NOTLS | MDB_NORDAHEAD | MDB_NOSYNC | MDB_WRITEMAP,
	                  0640);
	if (rc) {
		snprintf(err, errlen, "lmdb: cannot open %s: %s", o->path, mdb_strerror(rc));
		goto fail;
	}
	int dead;
	mdb_reader_check(c->env, &dead); /* slots of a kill -9'd predecessor */
	MDB_dbi main_dbi;
	MDB_stat mst;
	if ((rc = mdb_txn_begin(c->env, NULL, 0, &txn)) ||
	    (rc = mdb_dbi_open(txn, NULL, 0, &main_dbi)) || (rc = mdb_stat(txn, main_dbi, &mst)))
		goto lmdb_fail;
	bool existed = mst.ms_entries > 0;
	if ((rc = mdb_dbi_open(txn, "e", MDB_CREATE, &c->e)) ||
	    (rc = mdb_dbi_open(txn, "b", MDB_CREATE | MDB_INTEGERKEY, &c->b)) ||
	    (rc = mdb_dbi_open(txn, "l", MDB_CREATE, &c->l)) ||
	    (rc = mdb_dbi_open(txn, "t", MDB_CREATE | MDB_DUPSORT, &c->t)) ||
	    (rc = mdb_dbi_open(txn, "m", MDB_CREATE, &c->m)))
		goto lmdb_fail;
	/* Normally the check saw the format first; this catches a store whose
	 * check was abandoned, before anything is written into it. */
	MDB_val fv;
	rc = mdb_get(txn, c->m, (MDB_val *)&m_format, &fv);
	if (existed && (rc || fv.mv_size != 4 || memcmp(fv.mv_data, STORE_FORMAT, 4))) {
		mdb_txn_abort(txn);
		c->format_changed = true;
		snprintf(err, errlen, "no %s format record", STORE_FORMAT);
		rc = MDB_INCOMPATIBLE;
		goto fail;
	}
	MDB_val fmt = { 4, STORE_FORMAT };
	if ((rc = mdb_put(txn, c->m, (MDB_val *)&m_format, &fmt, 0)))
		goto lmdb_fail;
	rc = mdb_del(txn, c->m, (MDB_val *)&m_clean, NULL);
	if (rc && rc != MDB_NOTFOUND)
		goto lmdb_fail;
	MDB_cursor *cur;
	if ((rc = mdb_cursor_open(txn, c->b, &cur)))
		goto lmdb_fail;
	MDB_val k, v;
	c->next_id = 1;
	if (mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 && k.mv_size == 8)
		c->next_id = body_id(&k) + 1;
	mdb_cursor_close(cur);
	if ((rc = mdb_txn_commit(txn))) { /* frees txn either way */
		snprintf(err, errlen, "lmdb: %s", mdb_strerror(rc));
		goto fail;
	}
	/* The cleared marker must be on disk before any store is: otherwise an
	 * OS crash could leave "clean" next to unsynced bodies. */
	if ((rc = mdb_env_sync(c->env, 1))) {
		snprintf(err, errlen, "lmdb: sync: %s", mdb_strerror(rc));
		goto fail;
	}
	return 0;
lmdb_fail:
	if (txn)
		mdb_txn_abort(txn);
	snprintf(err, errlen, "lmdb: %s", mdb_strerror(rc));
fail:
	if (c->env)
		mdb_env_close(c->env);
	c->env = NULL;
	return rc;
}

/* ---------- open / close ---------- */

struct cache *cache_open(const struct cache_opts *o, char *err, size_t errlen)
{
	struct cache *c = xcalloc(1, sizeof *c);
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium init failed");
		goto fail;
	}
	if (mkdir(o->path, 0750) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create cache directory %s: %s", o->path, strerror(errno));
		goto fail;
	}
	c->map_size = o->map_size;
	c->high = o->high_water > 0 ? o->high_water : 0.75;
	c->low = o->low_water > 0 ? o->low_water : 0.6;
	pthread_mutex_init(&c->pool_lock, NULL);
	pthread_mutex_init(&c->touch_lock, NULL);
	pthread_mutex_init(&c->recent_lock, NULL);
	pthread_mutex_init(&c->bad_lock, NULL);
	c->path = xstrdup(o->path);
	c->check_fd = -1;
	/* A cache may lose its contents, never the edge its start: a store
	 * damaged by an OS crash (commits are not fsync'd one by one, see
	 * env_open) or written by an older minicdn is moved aside and the edge
	 * starts empty. */
	char why[300] = "";
	int rc = store_check(c, o, why, sizeof why);
	bool format = rc == -2;
	if (rc == 0) {
		rc = env_open(c, o, why, sizeof why);
		format = c->format_changed;
		if (rc && !lmdb_damage(rc)) {
			snprintf(err, errlen, "%s", why);
			goto fail;
		}
	}
	if (rc) {
		check_stop(c);
		c->verify_all = false;
		atomic_store(&c->unverified, false);
		char aside[4096];
		if (store_reset(o->path, aside, sizeof aside) < 0) {
			snprintf(err, errlen, "store %s is damaged (%s) and cannot be moved aside: %s",
			         o->path, why, strerror(errno));
			goto fail;
		}
		if (format)
			log_warn("cache", "store %s/data.mdb: the store format changed (%s): moved to %s, "
			         "starting with an empty cache", o->path, why, aside);
		else
			log_error("cache", "store %s/data.mdb is damaged (%s): moved to %s, starting "
			          "with an empty cache", o->path, why, aside);
		if (env_open(c, o, err, errlen))
			goto fail;
	}
	if (atomic_load(&c->unverified))
		atomic_store(&c->verify_limit, c->next_id); /* what this run writes is sound */
	writer_start(c);
	check_start(c);
	return c;
fail:
	check_stop(c);
	free(c->path);
	free(c);
	return NULL;
}

void cache_close(struct cache *c)
{
	if (!c)
		return;
	check_stop(c); /* before the writer: a finished pass queues a job */
	writer_stop(c); /* drains the queue first */
	cache_maintain(c);
	store_free(c);
	/* Everything is on disk: only now may the next start skip the body
	 * checksums -- unless some from before an unclean stop were never
	 * verified.  The marker goes in its own transaction, synced again. */
	MDB_txn *t;
	if (!atomic_load(&c->unverified) && mdb_env_sync(c->env, 1) == 0 &&
	    mdb_txn_begin(c->env, NULL, 0, &t) == 0) {
		MDB_val one = { 1, "1" };
		if (mdb_put(t, c->m, (MDB_val *)&m_clean, &one, 0) != 0)
			mdb_txn_abort(t);
		else if (mdb_txn_commit(t) == 0)
			mdb_env_sync(c->env, 1);
	}
	mdb_env_close(c->env);
	purge_memory_free(c);
	pthread_mutex_destroy(&c->recent_lock);
	pthread_mutex_destroy(&c->pool_lock);
	pthread_mutex_destroy(&c->touch_lock);
	pthread_mutex_destroy(&c->bad_lock);
	free(c->path);
	free(c);
}
