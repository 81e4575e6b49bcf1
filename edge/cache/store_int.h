/* store_int.h -- the cache's private parts, shared by edge/cache/{cache,store,
 * records,purge,writer,check,walk,badset}.c and by nothing else.
 *
 * How the files call each other (one way, top to bottom; none calls a file
 * above it):
 *   cache.c    open and close: runs the start-up check, opens the
 *              environment, starts and stops the writer and the background
 *              check
 *   check.c    the start-up check as the edge runs it: forks walk.c's
 *              child, reads its report, goes on in a background thread,
 *              deletes bad bodies' entries through writer_call()
 *   writer.c   the writer thread: job queue, group commit, stores, public
 *              purges (queued behind the stores before them)
 *   purge.c    purges inside a write transaction, and the recent purges a
 *              store is checked against
 *   store.c    the read side: pooled read transactions, lookup, variant
 *              keys; LRU touches, 304 updates, stats (their own small
 *              write transactions, not through the writer)
 *   records.c  one object's records inside a write transaction: size
 *              accounting, LRU rows, references, bodies, deletion, eviction
 *   badset.c   bodies from before an unclean stop: the set found bad, and
 *              whether one may be served
 *   walk.c     what the check's child process runs: structure walk and
 *              checksum pass over a store it opens itself; no struct cache
 * This header holds struct cache (each group of fields is owned by the file
 * named above it), the layout of the records, and the prototypes that cross
 * files, grouped by the file that defines them. */
#ifndef MINICDN_CACHE_STORE_INT_H
#define MINICDN_CACHE_STORE_INT_H

#include "edge/cache/cache.h"

#include <lmdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#define DBKEY_MAX 480      /* below LMDB's 511-byte key limit, with room for the LRU prefix */
#define DBKEY_KEEP 400     /* bytes kept verbatim when a key is hashed */
#define TAG_MAX 200
#define TXN_POOL 128
#define TOUCH_QUEUE 4096
#define TOUCH_GRANULARITY 10 /* seconds: an access younger than this is not rewritten */
#define RECENT_PURGES 128    /* purges remembered against fetches still running */
#define BAD_MAX 4096         /* bad bodies remembered from a background checksum pass */

/* "e" values: a Vary record ("MCV1" + names) or a reference to a "b" record:
 * "MCR1" | body id u64 | last access u64 (native byte order: the file is
 * not portable between architectures anyway).  Constants, one copy per file
 * that uses them. */
static const char vary_magic[4] = { 'M', 'C', 'V', '1' };
static const char ref_magic[4] = { 'M', 'C', 'R', '1' };
#define REF_SIZE 20
/* "m" records.  The format names the layout of the databases and the entry
 * encoding; a store without it (MCE2: one value per URL), or with another,
 * is from an older minicdn and is moved aside at start-up, never misread.
 * MCS2: "e" references, "b" entries (entry.h MCE3) under native integer ids.
 * Constant keys, one copy per file that uses them. */
#define STORE_FORMAT "MCS2"
static const MDB_val m_bytes = { 5, "bytes" }, m_format = { 6, "format" }, m_clean = { 5, "clean" };

struct cache_job; /* writer.c */
struct check_read; /* check.c */

struct cache {
	/* cache.c: set at open, read by everyone */
	MDB_env *env;
	MDB_dbi e, b, l, t, m;
	uint64_t map_size;
	double high, low;
	char *path;
	bool format_changed; /* env_open refused an older store */
	/* records.c: next body id; used only inside write transactions */
	uint64_t next_id;
	_Atomic uint64_t evicted, store_failed; /* store_failed: writer.c */
	/* store.c: the read-transaction pool and the queued LRU touches */
	pthread_mutex_t pool_lock;
	MDB_txn *pool[TXN_POOL];
	int npool;
	pthread_mutex_t touch_lock;
	char *touch[TOUCH_QUEUE];
	int ntouch;
	/* writer.c: FIFO of queued stores and purges */
	pthread_t writer;
	bool writer_started, writer_stop;
	pthread_mutex_t wq_lock;
	pthread_cond_t wq_cond;   /* work queued, or stop */
	pthread_cond_t done_cond; /* a queued purge finished */
	struct cache_job *wq_head, *wq_tail;
	/* purge.c: recent purges, so a store of a response requested before
	 * one of them is dropped (purge_covers); a ring, the oldest overwritten */
	pthread_mutex_t recent_lock;
	struct recent_purge {
		int kind; /* enum cache_purge_kind; 0 = unused slot */
		char *arg;
		int64_t at;
		uint64_t seq; /* 1, 2, ...: the purges so far, this one included */
	} recent[RECENT_PURGES];
	int recent_next;
	_Atomic uint64_t purges; /* purges remembered so far */
	/* badset.c (check.c sets them up): after an unclean stop whose
	 * checksum pass outlived the start-up wait (store_check), bodies below
	 * verify_limit (written before the stop) are served only if the pass
	 * vouched for them (below verified_upto) or they verify on read, and
	 * never once found bad. */
	_Atomic uint64_t verify_limit;  /* 0: every body trusted */
	_Atomic uint64_t verified_upto; /* UINT64_MAX once the pass is done */
	bool verify_all;                /* the check was abandoned: verify every old body */
	_Atomic bool unverified;        /* old bodies not all verified yet: no clean-stop
	                                   marker at close, the next start verifies */
	pthread_mutex_t bad_lock;
	uint64_t bad[BAD_MAX];
	size_t nbad;
	bool bad_overflow;              /* more than BAD_MAX: verify every old body */
	_Atomic bool any_bad;
	_Atomic bool bad_final;         /* the pass is done: bad[] sorted, never changed */
	/* check.c: the background half of the check */
	struct timespec check_t0;
	pid_t check_pid;                /* the background pass, 0 if none */
	int check_fd;
	struct check_read *check_r;
	pthread_t check_thread;
	bool check_started;
	_Atomic bool check_stop;
};

/* ---------- keys and values (inline: every lookup and store uses them) ---------- */

/* The LMDB key for a (possibly long) storage key.  Writes into out (DBKEY_MAX). */
static inline size_t dbkey(const char *key, size_t len, char *out)
{
	if (len <= DBKEY_MAX) {
		memcpy(out, key, len);
		return len;
	}
	unsigned char h[16];
	crypto_generichash(h, sizeof h, (const unsigned char *)key, len, NULL, 0);
	memcpy(out, key, DBKEY_KEEP);
	out[DBKEY_KEEP] = '#';
	for (int i = 0; i < 16; i++)
		snprintf(out + DBKEY_KEEP + 1 + 2 * i, 3, "%02x", h[i]);
	return DBKEY_KEEP + 1 + 32;
}

static inline uint64_t now_s(void)
{
	return (uint64_t)time(NULL);
}

/* "b" keys are body ids as native size_t with MDB_INTEGERKEY: LMDB then
 * compares them as integers, cheaper than memcmp on a hit's second lookup. */
_Static_assert(sizeof(size_t) == 8, "body ids are 64-bit size_t keys");

static inline MDB_val body_key(size_t *slot, uint64_t id)
{
	*slot = (size_t)id;
	return (MDB_val){ sizeof *slot, slot };
}

static inline uint64_t body_id(const MDB_val *k)
{
	size_t id = 0;
	if (k->mv_size == sizeof id)
		memcpy(&id, k->mv_data, sizeof id);
	return id;
}

struct ref {
	uint64_t id, at;
};

/* Decodes an "e" value into r (copied: the value may move).  -1 if it is
 * not a reference (a Vary record, or junk). */
static inline int ref_decode(const MDB_val *v, struct ref *r)
{
	if (v->mv_size != REF_SIZE || memcmp(v->mv_data, ref_magic, 4))
		return -1;
	memcpy(&r->id, (const char *)v->mv_data + 4, 8);
	memcpy(&r->at, (const char *)v->mv_data + 12, 8);
	return 0;
}

static inline bool is_vary(const MDB_val *v)
{
	return v->mv_size >= 4 && !memcmp(v->mv_data, vary_magic, 4);
}

/* Accounted size of one object: its "b" record (overflow pages count whole)
 * plus its "e" reference and "l" row, both carrying the storage key. */
static inline uint64_t cost(size_t klen, size_t vlen)
{
	uint64_t refs = 2 * (uint64_t)klen + REF_SIZE + 8 + 48;
	if (vlen > 2000)
		return ((vlen + 16 + 4095) / 4096) * 4096 + refs;
	return vlen + 24 + refs;
}

static inline uint64_t cost_vary(size_t klen, size_t vlen)
{
	return klen + vlen + 64;
}

/* ---------- records.c: inside a write transaction ---------- */

uint64_t bytes_get(struct cache *c, MDB_txn *t);
int bytes_add(struct cache *c, MDB_txn *t, int64_t delta);
/* The LRU row of dbkey k accessed at `at`: be64(at) + k. */
void lru_drop(struct cache *c, MDB_txn *t, const MDB_val *k, uint64_t at);
int lru_put(struct cache *c, MDB_txn *t, const MDB_val *k, uint64_t at);
/* Points dbkey k at body id, accessed at `at`. */
int ref_put(struct cache *c, MDB_txn *t, const MDB_val *k, uint64_t id, uint64_t at);
/* Reserves a new "b" record of vsize bytes under the next body id; *dst
 * points into the map, valid until the next write in t. */
int body_reserve(struct cache *c, MDB_txn *t, size_t vsize, uint64_t *id, void **dst);
/* Deletes the record at dbkey k with its body, tags and LRU row; 1 if an
 * entry went, 0 otherwise (nothing there, or a Vary record). */
int del_record(struct cache *c, MDB_txn *t, MDB_val *k, bool keep_vary);
/* A todo list (keys collected during a scan, deleted after it) is a buf of
 * (u32 length, key); todo_delete frees it and returns how many went. */
void todo_push(struct buf *todo, const void *key, size_t len);
long todo_delete(struct cache *c, MDB_txn *t, struct buf *todo);
long del_prefix(struct cache *c, MDB_txn *t, const char *prefix, size_t len);
/* Evicts (and commits *t, beginning a new one) when an entry of vsize
 * bytes would pass the high-water mark, or down to evict_to if set. */
int make_room(struct cache *c, MDB_txn **t, size_t vsize, uint64_t evict_to);
#define REC_GONE (-1001) /* update_in: no entry at that key (not an LMDB code) */
/* After a 304: rewrites the "b" record of the entry at storage_key with the
 * new meta and headers, keeping its tags and body.  0, REC_GONE (nothing
 * written, t still usable), or an LMDB code (t must be aborted). */
int update_in(struct cache *c, MDB_txn *t, const char *storage_key, const struct entry_meta *m,
              const char *hdrs, size_t hdrs_len);

/* ---------- badset.c: bodies from before an unclean stop ---------- */

bool badset_has(struct cache *c, uint64_t id);
void badset_add(struct cache *c, uint64_t id);
size_t badset_count(struct cache *c);
/* The first bad id found, 0 if none; and forgetting them all (start-up). */
uint64_t badset_first(struct cache *c);
void badset_clear(struct cache *c);
/* Freezes the set when the pass is done (sorted, searched without the
 * lock); returns how many it holds. */
size_t badset_freeze(struct cache *c);
/* Whether body id (value v, below c->verify_limit) may be served. */
bool badset_body_ok(struct cache *c, uint64_t id, const MDB_val *v);

/* ---------- store.c: read side ---------- */

/* A read transaction from the pool (release with cache_ref_release), or NULL. */
MDB_txn *rtxn_get(struct cache *c);
/* Normalised list of Vary field names: lower-case, comma-separated. */
void vary_names(const char *vary, struct buf *out);
/* Storage key from a normalised name list (names, len). */
void variant_from_names(const char *key, const char *names, size_t len, cache_header_fn hdr,
                        void *cls, struct buf *out);
/* Frees the pool and the queued touches (at close, after the last maintain). */
void store_free(struct cache *c);

/* ---------- purge.c: inside the writer's transaction ---------- */

/* Remembers the purge, then deletes what it covers; returns the count. */
long purge_in(struct cache *c, MDB_txn *t, enum cache_purge_kind kind, const char *arg);
/* Whether a purge made after the request of this response covers it. */
bool purge_covers(struct cache *c, const char *key, const char *tags, size_t tags_len,
                  const struct entry_meta *m);
void purge_memory_free(struct cache *c);

/* ---------- writer.c ---------- */

/* Starts the writer thread; stops it after the queue is drained. */
void writer_start(struct cache *c);
void writer_stop(struct cache *c);
/* Runs fn(c, t) inside the writer's transaction, in queue order, and waits
 * for its commit.  Returns fn's result, or -1 if there is no writer (fn not
 * run) or the commit failed. */
long writer_call(struct cache *c, long (*fn)(struct cache *c, MDB_txn *t));

/* ---------- check.c ---------- */

/* Checks the store at o->path before it is opened: 0 sound (or absent),
 * -1 damaged (reason in why), -2 of an older format. */
int store_check(struct cache *c, const struct cache_opts *o, char *why, size_t whylen);
/* Starts the background half if store_check left a pass running. */
void check_start(struct cache *c);
void check_stop(struct cache *c);

/* ---------- walk.c: in the check's child process ---------- */

#define CHECK_FORMAT 2 /* check_walk's exit code for a store of an older format */
/* Walks the store, then verifies body checksums after an unclean stop,
 * writing its report to fd; 0 sound, 1 damaged, CHECK_FORMAT. */
int check_walk(const char *path, uint64_t map_size, uint64_t rate, int fd);

#endif
