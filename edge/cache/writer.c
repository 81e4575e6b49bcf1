/* writer.c -- the writer thread: job queue, group commit, stores, 304
 * updates, and the public purges, queued behind the stores before them.
 *
 * One thread commits up to WRITER_BATCH queued jobs per transaction; a
 * synchronous store or a purge with no writer running does the same work
 * in its own transaction.  A synchronous purge's caller sleeps until the
 * commit; an asynchronous one (cache_purge_async) gets a callback.  Calls: purge.c (purges, recent purges),
 * records.c (writing, updating and evicting), store.c (variant keys and
 * the synchronous update a job falls back to); of the files
 * above it, only check.c calls in (writer_call), and cache.c starts and
 * stops it. */
#include "edge/cache/store_int.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <stdlib.h>
#include <string.h>

#define WRITER_BATCH 64       /* jobs per transaction at most */
#define STORE_SKIPPED (-1000) /* store_in: not stored, a purge covers it (not an LMDB code) */

enum job_kind { JOB_STORE, JOB_UPDATE, JOB_PURGE, JOB_CALL };

struct cache_job {
	struct cache_job *next;
	enum job_kind kind;
	bool heap; /* freed by the writer once finished; else on a waiting caller's stack */
	/* JOB_STORE and JOB_UPDATE (always heap; an update uses key as the
	 * storage key, m and hdrs) */
	const char *key, *vary;
	cache_header_fn hdr;
	void *hcls;
	struct entry_meta m;
	const char *hdrs, *tags;
	size_t hdrs_len, tags_len;
	const void *body;
	uint64_t body_len;
	void (*done)(void *cls, int rc);
	void *cls;
	bool skipped; /* a purge covered it, or the updated entry is gone: done(-1)
	                 after a good commit */
	/* JOB_PURGE and JOB_CALL: on the caller's stack (the writer must not
	 * touch one once finished is set), or a heap purge reporting to
	 * purged(cls, result) with arg stored after the struct */
	enum cache_purge_kind purge;
	const char *arg;
	long (*call)(struct cache *c, MDB_txn *t);
	void (*purged)(void *cls, long n);
	long result;
	bool finished;
};

/* ---------- store ---------- */

/* Writes one entry inside write txn t (no commit): the entry under a new
 * body id in "b", the reference at its storage key in "e", tag rows, the
 * LRU row.  Returns 0, STORE_SKIPPED (nothing written: a purge made since
 * the response was requested covers it) or an LMDB code; on error t must
 * be aborted. */
static int store_in(struct cache *c, MDB_txn *t, const char *key, const char *vary,
                    cache_header_fn hdr, void *cls, const struct entry_meta *m, const char *hdrs,
                    size_t hdrs_len, const char *tags, size_t tags_len, const void *body,
                    uint64_t body_len)
{
	int rc;
	if (purge_covers(c, key, tags, tags_len, m))
		return STORE_SKIPPED;
	size_t vsize = entry_size(hdrs_len, tags_len, body_len);
	char pk[DBKEY_MAX];
	MDB_val pkey = { dbkey(key, strlen(key), pk), pk };
	struct buf names = BUF_INIT, sk = BUF_INIT;
	vary_names(vary, &names);
	MDB_val old;
	int have_old = mdb_get(t, c->e, &pkey, &old) == 0;
	int old_is_vary = have_old && is_vary(&old);
	if (names.len) {
		/* A Vary record at the primary key; the variant under its own key. */
		if (have_old && (!old_is_vary || old.mv_size - 4 != names.len ||
		                 memcmp((char *)old.mv_data + 4, names.data, names.len))) {
			/* The set of varying headers changed: older variants are unreachable. */
			del_prefix(c, t, pk, pkey.mv_size);
			have_old = 0;
		}
		if (!have_old) {
			struct buf vr = BUF_INIT;
			buf_append(&vr, vary_magic, 4);
			buf_append(&vr, names.data, names.len);
			MDB_val vv = { vr.len, vr.data };
			rc = mdb_put(t, c->e, &pkey, &vv, 0);
			if (!rc)
				rc = bytes_add(c, t, (int64_t)cost_vary(pkey.mv_size, vr.len));
			buf_free(&vr);
			if (rc)
				goto fail;
		}
		variant_from_names(key, names.data, names.len, hdr, cls, &sk);
	} else {
		if (old_is_vary)
			del_prefix(c, t, pk, pkey.mv_size);
		buf_puts(&sk, key);
	}
	char skb[DBKEY_MAX];
	MDB_val skey = { dbkey(sk.data, sk.len, skb), skb };
	if (names.len || have_old) /* else nothing is stored under skey (== pkey) */
		del_record(c, t, &skey, true);
	uint64_t id, now = now_s();
	void *dst;
	if ((rc = body_reserve(c, t, vsize, &id, &dst)) != 0)
		goto fail;
	entry_write(dst, m, hdrs, hdrs_len, tags, tags_len, body, body_len);
	if ((rc = ref_put(c, t, &skey, id, now)) != 0)
		goto fail;
	for (size_t i = 0; i < tags_len; i += strlen(tags + i) + 1) {
		size_t tl = strlen(tags + i);
		if (tl == 0 || tl > TAG_MAX)
			continue;
		MDB_val tk = { tl, (void *)(tags + i) };
		if ((rc = mdb_put(t, c->t, &tk, &skey, MDB_NODUPDATA)) != 0 && rc != MDB_KEYEXIST)
			goto fail;
	}
	if ((rc = lru_put(c, t, &skey, now)) != 0)
		goto fail;
	if ((rc = bytes_add(c, t, (int64_t)cost(skey.mv_size, vsize))) != 0)
		goto fail;
	rc = 0;
fail:
	buf_free(&names);
	buf_free(&sk);
	return rc;
}

static int store_txn(struct cache *c, const char *key, const char *vary, cache_header_fn hdr,
                     void *cls, const struct entry_meta *m, const char *hdrs, size_t hdrs_len,
                     const char *tags, size_t tags_len, const void *body, uint64_t body_len,
                     uint64_t evict_to)
{
	MDB_txn *t;
	int rc = mdb_txn_begin(c->env, NULL, 0, &t);
	if (rc)
		return rc;
	if ((rc = make_room(c, &t, entry_size(hdrs_len, tags_len, body_len), evict_to)) != 0)
		return rc;
	rc = store_in(c, t, key, vary, hdr, cls, m, hdrs, hdrs_len, tags, tags_len, body, body_len);
	if (rc) {
		mdb_txn_abort(t);
		return rc;
	}
	return mdb_txn_commit(t);
}

int cache_store(struct cache *c, const char *key, const char *vary, cache_header_fn hdr, void *cls,
                const struct entry_meta *m, const char *hdrs, size_t hdrs_len, const char *tags,
                size_t tags_len, const void *body, uint64_t body_len)
{
	size_t vsize = entry_size(hdrs_len, tags_len, body_len);
	if (cost(DBKEY_MAX, vsize) > (uint64_t)((double)c->map_size * c->low) / 2) {
		c->store_failed++;
		return -1; /* would evict most of the cache: not worth it */
	}
	int rc = store_txn(c, key, vary, hdr, cls, m, hdrs, hdrs_len, tags, tags_len, body, body_len, 0);
	if (rc == STORE_SKIPPED) {
		log_debug("cache", "not stored %s: purged while it was being fetched", key);
		return -1;
	}
	if (rc == MDB_MAP_FULL || rc == MDB_TXN_FULL) {
		/* Free pages still pinned by readers, or accounting drift: evict
		 * harder and try once more.  Never an error for the client. */
		uint64_t to = (uint64_t)((double)c->map_size * c->low * 0.5);
		rc = store_txn(c, key, vary, hdr, cls, m, hdrs, hdrs_len, tags, tags_len, body, body_len, to);
	}
	if (rc) {
		c->store_failed++;
		log_warn("cache", "not stored %s: %s", key, mdb_strerror(rc));
		return -1;
	}
	return 0;
}

/* ---------- the writer: group commit, stores and purges in order ---------- */

/* A purge or a call inside write txn t; returns its count or result. */
static long job_in(struct cache *c, MDB_txn *t, const struct cache_job *j)
{
	if (j->kind == JOB_CALL)
		return j->call(c, t);
	return purge_in(c, t, j->purge, j->arg);
}

/* A purge or a call in its own transaction.  Returns its result, or -1. */
static long job_txn(struct cache *c, const struct cache_job *j)
{
	MDB_txn *t;
	if (mdb_txn_begin(c->env, NULL, 0, &t) != 0)
		return -1;
	long n = job_in(c, t, j);
	if (mdb_txn_commit(t) != 0)
		return -1;
	return n;
}

/* Reports a job's outcome: a store's done callback, an asynchronous
 * purge's, or wakes a purge's caller (after which the job, on that
 * caller's stack, is gone). */
static void job_finish(struct cache *c, struct cache_job *j, int rc)
{
	if (j->kind == JOB_STORE || j->kind == JOB_UPDATE) {
		j->done(j->cls, rc ? -1 : j->skipped ? -1 : 0);
		return;
	}
	if (j->purged) {
		j->purged(j->cls, rc ? -1 : j->result);
		return;
	}
	pthread_mutex_lock(&c->wq_lock);
	if (rc)
		j->result = -1;
	j->finished = true;
	pthread_cond_broadcast(&c->done_cond);
	pthread_mutex_unlock(&c->wq_lock);
}

static void job_run_alone(struct cache *c, struct cache_job *j)
{
	if (j->kind == JOB_UPDATE) {
		job_finish(c, j, cache_update(c, j->key, &j->m, j->hdrs, j->hdrs_len));
		return;
	}
	if (j->kind != JOB_STORE) {
		j->result = job_txn(c, j);
		job_finish(c, j, 0);
		return;
	}
	int rc = cache_store(c, j->key, j->vary, j->hdr, j->hcls, &j->m, j->hdrs, j->hdrs_len, j->tags,
	                     j->tags_len, j->body, j->body_len);
	job_finish(c, j, rc);
}

/* Runs jobs[0..n) in order in as few transactions as eviction allows.  A
 * failure aborts the open transaction: its jobs are then run one by one
 * (stores through cache_store(), which evicts harder on MAP_FULL). */
static void writer_batch(struct cache *c, struct cache_job **jobs, int n)
{
	MDB_txn *t = NULL;
	int open = 0; /* first job of the open transaction */
	int i = 0;
	int rc = mdb_txn_begin(c->env, NULL, 0, &t);
	for (; rc == 0 && i < n; i++) {
		struct cache_job *j = jobs[i];
		if (j->kind == JOB_UPDATE) {
			rc = update_in(c, t, j->key, &j->m, j->hdrs, j->hdrs_len);
			if (rc == REC_GONE) {
				j->skipped = true;
				rc = 0;
			}
			continue;
		}
		if (j->kind != JOB_STORE) {
			j->result = job_in(c, t, j);
			continue;
		}
		size_t vsize = entry_size(j->hdrs_len, j->tags_len, j->body_len);
		if (cost(DBKEY_MAX, vsize) > (uint64_t)((double)c->map_size * c->low) / 2) {
			rc = -1; /* cache_store() refuses it and counts it */
			break;
		}
		MDB_txn *before = t;
		if ((rc = make_room(c, &t, vsize, 0)) != 0)
			break;
		if (t != before) { /* the eviction committed the jobs so far */
			for (; open < i; open++)
				job_finish(c, jobs[open], 0);
		}
		rc = store_in(c, t, j->key, j->vary, j->hdr, j->hcls, &j->m, j->hdrs, j->hdrs_len,
		              j->tags, j->tags_len, j->body, j->body_len);
		if (rc == STORE_SKIPPED) {
			j->skipped = true;
			rc = 0;
		}
	}
	if (rc == 0) {
		rc = mdb_txn_commit(t);
		t = NULL;
		if (rc == 0) {
			for (; open < n; open++)
				job_finish(c, jobs[open], 0);
			return;
		}
	}
	if (t)
		mdb_txn_abort(t);
	for (; open < n; open++)
		job_run_alone(c, jobs[open]);
}

static void *writer_main(void *arg)
{
	struct cache *c = arg;
	pthread_mutex_lock(&c->wq_lock);
	for (;;) {
		while (!c->wq_head && !c->writer_stop)
			pthread_cond_wait(&c->wq_cond, &c->wq_lock);
		if (!c->wq_head)
			break; /* stopping, queue drained */
		/* Take up to WRITER_BATCH jobs: what queued while the last batch
		 * was committing goes into one transaction. */
		struct cache_job *jobs[WRITER_BATCH];
		bool heap[WRITER_BATCH]; /* freed here */
		int n = 0;
		while (n < WRITER_BATCH && c->wq_head) {
			jobs[n] = c->wq_head;
			heap[n] = jobs[n]->heap;
			c->wq_head = jobs[n]->next;
			n++;
		}
		if (!c->wq_head)
			c->wq_tail = NULL;
		pthread_mutex_unlock(&c->wq_lock);
		writer_batch(c, jobs, n);
		for (int i = 0; i < n; i++)
			if (heap[i]) /* a finished waiting purge may already be gone */
				free(jobs[i]);
		pthread_mutex_lock(&c->wq_lock);
	}
	pthread_mutex_unlock(&c->wq_lock);
	return NULL;
}

/* Appends j to the writer's queue.  Returns false (j not queued) when there
 * is no writer to run it, or when called from the writer itself. */
static bool job_queue(struct cache *c, struct cache_job *j)
{
	pthread_mutex_lock(&c->wq_lock);
	if (!c->writer_started || c->writer_stop || pthread_equal(pthread_self(), c->writer)) {
		pthread_mutex_unlock(&c->wq_lock);
		return false;
	}
	j->next = NULL;
	if (c->wq_tail)
		c->wq_tail->next = j;
	else
		c->wq_head = j;
	c->wq_tail = j;
	pthread_cond_signal(&c->wq_cond);
	if (!j->heap)
		while (!j->finished)
			pthread_cond_wait(&c->done_cond, &c->wq_lock);
	pthread_mutex_unlock(&c->wq_lock);
	return true;
}

void cache_store_async(struct cache *c, const char *key, const char *vary, cache_header_fn hdr,
                       void *hcls, const struct entry_meta *m, const char *hdrs, size_t hdrs_len,
                       const char *tags, size_t tags_len, const void *body, uint64_t body_len,
                       void (*done)(void *cls, int rc), void *cls)
{
	struct cache_job *j = xcalloc(1, sizeof *j);
	*j = (struct cache_job){ .kind = JOB_STORE, .heap = true, .key = key, .vary = vary,
		                 .hdr = hdr, .hcls = hcls, .m = *m, .hdrs = hdrs, .tags = tags,
		                 .hdrs_len = hdrs_len, .tags_len = tags_len, .body = body,
		                 .body_len = body_len, .done = done, .cls = cls };
	if (!job_queue(c, j)) {
		job_run_alone(c, j); /* no writer: store synchronously */
		free(j);
	}
}

void cache_update_async(struct cache *c, const char *storage_key, const struct entry_meta *m,
                        const char *hdrs, size_t hdrs_len, void (*done)(void *cls, int rc),
                        void *cls)
{
	struct cache_job *j = xcalloc(1, sizeof *j);
	*j = (struct cache_job){ .kind = JOB_UPDATE, .heap = true, .key = storage_key, .m = *m,
		                 .hdrs = hdrs, .hdrs_len = hdrs_len, .done = done, .cls = cls };
	if (!job_queue(c, j)) {
		job_run_alone(c, j); /* no writer: update synchronously */
		free(j);
	}
}

/* Purges go through the writer's queue, behind the stores queued before
 * them: a store of a response fetched before the purge can then never be
 * committed after it (it would bring the purged content back).  The caller
 * waits for the purge's commit. */
static long purge_queued(struct cache *c, enum cache_purge_kind kind, const char *arg)
{
	struct cache_job j = { .kind = JOB_PURGE, .purge = kind, .arg = arg };
	if (!job_queue(c, &j))
		return job_txn(c, &j);
	return j.result;
}

long cache_purge_key(struct cache *c, const char *key)
{
	return purge_queued(c, CACHE_PURGE_KEY, key);
}

long cache_purge_prefix(struct cache *c, const char *prefix)
{
	return purge_queued(c, CACHE_PURGE_PREFIX, prefix);
}

long cache_purge_tag(struct cache *c, const char *tag)
{
	return purge_queued(c, CACHE_PURGE_TAG, tag);
}

void cache_purge_async(struct cache *c, enum cache_purge_kind kind, const char *arg,
                       void (*done)(void *cls, long n), void *cls)
{
	size_t len = strlen(arg);
	struct cache_job *j = xcalloc(1, sizeof *j + len + 1);
	*j = (struct cache_job){ .kind = JOB_PURGE, .heap = true, .purge = kind,
		                 .arg = memcpy((char *)(j + 1), arg, len + 1),
		                 .purged = done, .cls = cls };
	if (!job_queue(c, j)) {
		job_run_alone(c, j); /* no writer: purge synchronously */
		free(j);
	}
}

long writer_call(struct cache *c, long (*fn)(struct cache *c, MDB_txn *t))
{
	struct cache_job j = { .kind = JOB_CALL, .call = fn };
	if (!job_queue(c, &j))
		return -1;
	return j.result;
}

/* ---------- start and stop ---------- */

void writer_start(struct cache *c)
{
	pthread_mutex_init(&c->wq_lock, NULL);
	pthread_cond_init(&c->wq_cond, NULL);
	pthread_cond_init(&c->done_cond, NULL);
	c->writer_started = pthread_create(&c->writer, NULL, writer_main, c) == 0;
}

void writer_stop(struct cache *c)
{
	if (c->writer_started) { /* drains the queue first */
		pthread_mutex_lock(&c->wq_lock);
		c->writer_stop = true;
		pthread_cond_signal(&c->wq_cond);
		pthread_mutex_unlock(&c->wq_lock);
		pthread_join(c->writer, NULL);
	}
	pthread_mutex_destroy(&c->wq_lock);
	pthread_cond_destroy(&c->wq_cond);
	pthread_cond_destroy(&c->done_cond);
}
