/* cache.c -- LMDB object store with an approximate LRU that survives restarts */
#include "edge/cache/cache.h"
#include "edge/cache/cachekey.h"
#include "edge/cache/vary.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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
 * not portable between architectures anyway). */
static const char vary_magic[4] = { 'M', 'C', 'V', '1' };
static const char ref_magic[4] = { 'M', 'C', 'R', '1' };
#define REF_SIZE 20
/* "m" records.  The format names the layout of the databases and the entry
 * encoding; a store without it (MCE2: one value per URL), or with another,
 * is from an older minicdn and is moved aside at start-up, never misread.
 * MCS2: "e" references, "b" entries (entry.h MCE3) under native integer ids. */
#define STORE_FORMAT "MCS2"
static const MDB_val m_bytes = { 5, "bytes" }, m_format = { 6, "format" }, m_clean = { 5, "clean" };

struct cache {
	MDB_env *env;
	MDB_dbi e, b, l, t, m;
	uint64_t map_size;
	double high, low;
	uint64_t next_id; /* next body id; used only inside write transactions */
	bool format_changed; /* env_open refused an older store */
	pthread_mutex_t pool_lock;
	MDB_txn *pool[TXN_POOL];
	int npool;
	pthread_mutex_t touch_lock;
	char *touch[TOUCH_QUEUE];
	int ntouch;
	_Atomic uint64_t evicted, store_failed;
	/* the writer thread: FIFO of queued stores and purges */
	pthread_t writer;
	bool writer_started, writer_stop;
	pthread_mutex_t wq_lock;
	pthread_cond_t wq_cond;   /* work queued, or stop */
	pthread_cond_t done_cond; /* a queued purge finished */
	struct cache_job *wq_head, *wq_tail;
	/* recent purges, so a store of a response requested before one of
	 * them is dropped (purge_covers); a ring, the oldest overwritten */
	pthread_mutex_t recent_lock;
	struct recent_purge {
		int kind; /* enum job_kind; 0 = unused slot */
		char *arg;
		int64_t at;
		uint64_t seq; /* 1, 2, ...: the purges so far, this one included */
	} recent[RECENT_PURGES];
	int recent_next;
	_Atomic uint64_t purges; /* purges remembered so far */
	/* After an unclean stop whose checksum pass outlived the start-up
	 * wait (store_check): bodies below verify_limit (written before the
	 * stop) are served only if the pass vouched for them (below
	 * verified_upto) or they verify on read, and never once found bad. */
	char *path;
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
	struct timespec check_t0;
	pid_t check_pid;                /* the background pass, 0 if none */
	int check_fd;
	struct check_read *check_r;
	pthread_t check_thread;
	bool check_started;
	_Atomic bool check_stop;
};

enum job_kind { JOB_STORE, JOB_PURGE_KEY, JOB_PURGE_PREFIX, JOB_PURGE_TAG, JOB_DROP_BAD };

struct cache_job {
	struct cache_job *next;
	enum job_kind kind;
	/* JOB_STORE (heap, freed by the writer) */
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
	bool skipped; /* a purge covered it: done(-1) after a good commit */
	/* purges (on the caller's stack: the writer must not touch one once
	 * finished is set) */
	const char *arg;
	long result;
	bool finished;
};

/* ---------- keys and values ---------- */

/* The LMDB key for a (possibly long) storage key.  Writes into out (DBKEY_MAX). */
static size_t dbkey(const char *key, size_t len, char *out)
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

static uint64_t now_s(void)
{
	return (uint64_t)time(NULL);
}

static void be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* "b" keys are body ids as native size_t with MDB_INTEGERKEY: LMDB then
 * compares them as integers, cheaper than memcmp on a hit's second lookup. */
_Static_assert(sizeof(size_t) == 8, "body ids are 64-bit size_t keys");

static MDB_val body_key(size_t *slot, uint64_t id)
{
	*slot = (size_t)id;
	return (MDB_val){ sizeof *slot, slot };
}

static uint64_t body_id(const MDB_val *k)
{
	size_t id = 0;
	if (k->mv_size == sizeof id)
		memcpy(&id, k->mv_data, sizeof id);
	return id;
}

struct ref {
	uint64_t id, at;
};

static void ref_encode(uint8_t *p, uint64_t id, uint64_t at)
{
	memcpy(p, ref_magic, 4);
	memcpy(p + 4, &id, 8);
	memcpy(p + 12, &at, 8);
}

/* Decodes an "e" value into r (copied: the value may move).  -1 if it is
 * not a reference (a Vary record, or junk). */
static int ref_decode(const MDB_val *v, struct ref *r)
{
	if (v->mv_size != REF_SIZE || memcmp(v->mv_data, ref_magic, 4))
		return -1;
	memcpy(&r->id, (const char *)v->mv_data + 4, 8);
	memcpy(&r->at, (const char *)v->mv_data + 12, 8);
	return 0;
}

static bool is_vary(const MDB_val *v)
{
	return v->mv_size >= 4 && !memcmp(v->mv_data, vary_magic, 4);
}

/* Accounted size of one object: its "b" record (overflow pages count whole)
 * plus its "e" reference and "l" row, both carrying the storage key. */
static uint64_t cost(size_t klen, size_t vlen)
{
	uint64_t refs = 2 * (uint64_t)klen + REF_SIZE + 8 + 48;
	if (vlen > 2000)
		return ((vlen + 16 + 4095) / 4096) * 4096 + refs;
	return vlen + 24 + refs;
}

static uint64_t cost_vary(size_t klen, size_t vlen)
{
	return klen + vlen + 64;
}

/* ---------- start-up check of an existing store ---------- */

#define CHECK_DEADLINE_S 60
#define CHECK_FORMAT 2 /* check_walk's exit code for a store of an older format */

/* Whether the main database names exactly the databases of an MCE2 store
 * (e, a, l, t, m: entries keyed by URL, no format record). */
static bool mce2_names(MDB_txn *t)
{
	MDB_dbi main_dbi;
	MDB_cursor *cur;
	if (mdb_dbi_open(t, NULL, 0, &main_dbi) || mdb_cursor_open(t, main_dbi, &cur))
		return false;
	char seen[8] = "";
	size_t n = 0;
	bool ok = true;
	MDB_val k, v;
	for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && ok;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		ok = n < 5 && k.mv_size == 1 && strchr("ealtm", *(char *)k.mv_data) &&
		     !memchr(seen, *(char *)k.mv_data, n);
		if (ok)
			seen[n++] = *(char *)k.mv_data;
	}
	mdb_cursor_close(cur);
	return ok && n == 5;
}

/* The checksum pass over bodies 1..last_id, after an unclean stop.  It may
 * outlive the start-up wait and run while the edge writes (store_check),
 * so it opens the store with locking, as a registered reader, and reads in
 * short transactions: a long one would keep the writer from reusing freed
 * pages.  Reports on fd: "bad ID" per mismatch, "upto ID" (every body
 * below ID verified) per batch.  rate: bytes per second at most, 0 = as
 * fast as the disk goes.  Returns 0, or -1 if the store cannot be read. */
#define VERIFY_BATCH_RECORDS 256
#define VERIFY_BATCH_BYTES (16u << 20)
static int verify_bodies(const char *path, uint64_t map_size, uint64_t last_id, uint64_t rate,
                         int fd, size_t *verified)
{
	MDB_env *env = NULL;
	MDB_dbi bdbi;
	MDB_txn *t = NULL;
	int rc;
	if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_mapsize(env, (size_t)map_size)) ||
	    (rc = mdb_env_set_maxdbs(env, 8)) ||
	    (rc = mdb_env_open(env, path, MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD, 0640)) ||
	    (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &t)) ||
	    (rc = mdb_dbi_open(t, "b", MDB_INTEGERKEY, &bdbi)) ||
	    (rc = mdb_txn_commit(t), t = NULL, rc) || /* the handle outlives the txn */
	    (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &t))) {
		dprintf(fd, "# %s\n", mdb_strerror(rc));
		if (t)
			mdb_txn_abort(t);
		mdb_env_close(env);
		return -1;
	}
	mdb_txn_reset(t);
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint64_t next = 1, bytes = 0;
	int ret = 0;
	while (next <= last_id) {
		MDB_cursor *cur;
		if (mdb_txn_renew(t) || mdb_cursor_open(t, bdbi, &cur)) {
			ret = -1;
			break;
		}
		size_t slot, n = 0, batch = 0;
		MDB_val k = body_key(&slot, next), v;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		for (; rc == 0 && n < VERIFY_BATCH_RECORDS && batch < VERIFY_BATCH_BYTES;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), n++) {
			uint64_t id = body_id(&k);
			if (id > last_id)
				break; /* written by the running edge: not from the stop */
			if (entry_verify(v.mv_data, v.mv_size) < 0 &&
			    dprintf(fd, "bad %llu\n", (unsigned long long)id) < 0)
				rc = -1;
			(*verified)++;
			batch += v.mv_size;
			next = id + 1;
		}
		mdb_cursor_close(cur);
		mdb_txn_reset(t);
		if (rc == MDB_NOTFOUND || (rc == 0 && n < VERIFY_BATCH_RECORDS &&
		                           batch < VERIFY_BATCH_BYTES))
			next = last_id + 1; /* past the last body: done */
		else if (rc != 0 && rc != MDB_NOTFOUND) {
			ret = -1;
			break;
		}
		if (dprintf(fd, "upto %llu\n", (unsigned long long)next) < 0) {
			ret = -1; /* the edge is gone */
			break;
		}
		bytes += batch;
		if (rate) { /* sleep off whatever ran ahead of the rate */
			clock_gettime(CLOCK_MONOTONIC, &now);
			double el = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
			double ahead = (double)bytes / (double)rate - el;
			for (; ahead > 0; ahead -= 1) /* usleep takes under a second */
				usleep((useconds_t)(ahead > 1 ? 999999 : ahead * 1e6));
		}
	}
	mdb_txn_abort(t);
	mdb_env_close(env);
	return ret;
}

/* Walks every record of a store opened read-only, then, after an unclean
 * stop, verifies every body's checksum.  Runs in a child process
 * (store_check): a damaged page can make LMDB read out of bounds or trip an
 * assertion, and that must kill the child, not the edge.  Writes lines to
 * fd: "structure ok" when the walk found the store sound and the checksum
 * pass begins, that pass's "bad ID" and "upto ID", and last "end STATE N"
 * (how the previous run stopped: clean, unclean, new or unknown; N body
 * checksums verified) followed by the reason if the store is not sound.
 * Returns 0 if it is sound apart from the bodies reported bad, 1 if it is
 * damaged, CHECK_FORMAT if it is of another format. */
static int check_walk(const char *path, uint64_t map_size, uint64_t rate, int fd)
{
	MDB_env *env = NULL;
	MDB_txn *t = NULL;
	char why[300] = "";
	int rc, ret = 1;
	bool clean = true;
	const char *state = "unknown"; /* how the previous run stopped */
	size_t verified = 0;
	uint64_t last_id = 0;
	if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_mapsize(env, (size_t)map_size)) ||
	    (rc = mdb_env_set_maxdbs(env, 8))) {
		snprintf(why, sizeof why, "lmdb: %s", mdb_strerror(rc));
		goto out;
	}
	/* NOLOCK: nobody else has the store open yet (the edge is starting). */
	if ((rc = mdb_env_open(env, path, MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS | MDB_NORDAHEAD, 0640))) {
		snprintf(why, sizeof why, "cannot open: %s", mdb_strerror(rc));
		goto out;
	}
	if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &t))) {
		snprintf(why, sizeof why, "first read transaction: %s", mdb_strerror(rc));
		goto out;
	}
	/* The meta page must not point past the end of the file. */
	MDB_envinfo info;
	MDB_stat est;
	struct stat sb;
	char data[4096];
	snprintf(data, sizeof data, "%s/data.mdb", path);
	if (mdb_env_info(env, &info) || mdb_env_stat(env, &est) || stat(data, &sb) < 0 ||
	    (uint64_t)(info.me_last_pgno + 1) * est.ms_psize > (uint64_t)sb.st_size) {
		snprintf(why, sizeof why, "meta page points past the end of the file");
		goto out;
	}
	/* The format first: an older store is not damaged, just not ours. */
	MDB_dbi mdbi;
	MDB_val v;
	if (est.ms_entries > 0) {
		rc = mdb_dbi_open(t, "m", 0, &mdbi);
		if (rc == 0)
			rc = mdb_get(t, mdbi, (MDB_val *)&m_format, &v);
		if (rc == MDB_NOTFOUND) {
			/* Only the exact set of names of an MCE2 store is a format
			 * change; a missing "m" in a garbage tree is damage. */
			if (!mce2_names(t)) {
				snprintf(why, sizeof why, "no format record, and not an older store");
				goto out;
			}
			snprintf(why, sizeof why, "no format record: an MCE2 store (one value per URL), "
			         "this edge writes %s", STORE_FORMAT);
			ret = CHECK_FORMAT;
			goto out;
		}
		if (rc == 0 && (v.mv_size != 4 || memcmp(v.mv_data, STORE_FORMAT, 4))) {
			snprintf(why, sizeof why, "format %.*s, this edge writes %s",
			         (int)(v.mv_size > 16 ? 16 : v.mv_size), (const char *)v.mv_data,
			         STORE_FORMAT);
			ret = CHECK_FORMAT;
			goto out;
		}
		if (rc) {
			snprintf(why, sizeof why, "database m: %s", mdb_strerror(rc));
			goto out;
		}
		clean = mdb_get(t, mdbi, (MDB_val *)&m_clean, &v) == 0;
		state = clean ? "clean" : "unclean";
	} else {
		state = "new";
	}
	/* Walk order: the free-page list (writers allocate from it), the main
	 * database (names of the others), then ours: "m", the bodies "b" (each
	 * decoded), then "e" (each reference must find its body).  Checksums
	 * come after, in their own pass (verify_bodies). */
	static const char *const names[] = { "m", "b", "e", "l", "t" };
	size_t main_entries = 0, bodies = 0, refs = 0;
	MDB_dbi bdbi = 0;
	for (int i = -2; i < 5 && !why[0]; i++) {
		MDB_dbi dbi = 0; /* FREE_DBI */
		rc = 0;
		if (i == -1)
			rc = mdb_dbi_open(t, NULL, 0, &dbi);
		else if (i >= 0)
			rc = mdb_dbi_open(t, names[i], i == 4 ? MDB_DUPSORT : i == 1 ? MDB_INTEGERKEY : 0, &dbi);
		if (rc == MDB_NOTFOUND && main_entries == 0)
			continue; /* a new store: created on open */
		const char *dn = i < 0 ? (i == -1 ? "main" : "free") : names[i];
		if (rc) {
			snprintf(why, sizeof why, "database %s: %s", dn, mdb_strerror(rc));
			break;
		}
		if (i == 1)
			bdbi = dbi;
		MDB_stat st;
		MDB_cursor *cur;
		if ((rc = mdb_stat(t, dbi, &st)) || (rc = mdb_cursor_open(t, dbi, &cur))) {
			snprintf(why, sizeof why, "database %s: %s", dn, mdb_strerror(rc));
			break;
		}
		MDB_val k;
		size_t n = 0;
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), n++) {
			struct entry_view ev;
			bool ok = true;
			switch (i) {
			case -2: { /* txnid -> count + page numbers */
				size_t cnt = 0;
				if (v.mv_size >= sizeof cnt)
					memcpy(&cnt, v.mv_data, sizeof cnt);
				ok = k.mv_size == sizeof(size_t) && v.mv_size >= sizeof cnt &&
				     cnt < v.mv_size && v.mv_size == (cnt + 1) * sizeof cnt;
				for (size_t j = 1; ok && j <= cnt; j++) {
					size_t pg;
					memcpy(&pg, (char *)v.mv_data + j * sizeof pg, sizeof pg);
					ok = pg >= 2 && pg <= info.me_last_pgno;
				}
				break;
			}
			case -1: /* our five names */
				ok = k.mv_size == 1 && strchr("mbelt", *(char *)k.mv_data);
				main_entries++;
				break;
			case 0: /* m */
				ok = (k.mv_size == m_bytes.mv_size && !memcmp(k.mv_data, "bytes", 5) &&
				      v.mv_size == 8) ||
				     (k.mv_size == m_format.mv_size && !memcmp(k.mv_data, "format", 6)) ||
				     (k.mv_size == m_clean.mv_size && !memcmp(k.mv_data, "clean", 5));
				break;
			case 1: /* b: body id -> entry */
				ok = k.mv_size == 8 && entry_decode(v.mv_data, v.mv_size, &ev) == 0;
				if (ok)
					last_id = body_id(&k);
				bodies++;
				break;
			case 2: { /* e: a reference whose body exists, or a Vary record */
				struct ref r;
				if (is_vary(&v))
					break;
				ok = ref_decode(&v, &r) == 0;
				if (ok) {
					size_t bk;
					MDB_val bkey = body_key(&bk, r.id), bv;
					if (mdb_get(t, bdbi, &bkey, &bv) != 0) {
						snprintf(why, sizeof why, "database e: record %zu points at "
						         "body %llu, which is missing", n,
						         (unsigned long long)r.id);
						break;
					}
					refs++;
				}
				break;
			}
			case 3: ok = k.mv_size > 8 && v.mv_size == 0; break;
			default: break;
			}
			if (why[0])
				break;
			if (!ok) {
				snprintf(why, sizeof why, "database %s: malformed record %zu", dn, n);
				break;
			}
		}
		mdb_cursor_close(cur);
		if (!why[0] && rc != MDB_NOTFOUND)
			snprintf(why, sizeof why, "database %s: %s", dn, mdb_strerror(rc));
		else if (!why[0] && n != st.ms_entries)
			snprintf(why, sizeof why, "database %s: %zu records walked, %zu counted", dn, n,
			         (size_t)st.ms_entries);
		else if (!why[0] && i == 2 && refs != bodies)
			snprintf(why, sizeof why, "%zu entries but %zu bodies", refs, bodies);
	}
	if (!why[0])
		ret = 0;
out:
	if (t)
		mdb_txn_abort(t);
	if (env)
		mdb_env_close(env);
	if (ret == 0 && !clean && last_id) {
		/* Sound structure: from here on the edge may open the store and
		 * serve while the checksums are verified (store_check). */
		if (dprintf(fd, "structure ok\n") < 0)
			return 1;
		if (verify_bodies(path, map_size, last_id, rate, fd, &verified) < 0)
			snprintf(why, sizeof why, "checksum pass: cannot read the store");
		if (why[0])
			ret = 1;
	}
	if (dprintf(fd, "end %s %zu\n%s", state, verified, why) < 0)
		return 1;
	return ret;
}

/* ---------- reading the check's reports (start-up, then in the background) ---------- */

/* The child's lines as they arrive; after "end", the rest is the reason. */
struct check_read {
	char buf[1024];
	size_t len;
	bool structure, ended;
	char state[16];
	unsigned long verified;
	char why[300];
	size_t whylen;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static bool bad_has(struct cache *c, uint64_t id)
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

static void bad_add(struct cache *c, uint64_t id)
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

/* Takes in n more bytes of the child's report in r->buf and acts on the
 * complete lines. */
static void check_take(struct cache *c, struct check_read *r, size_t n)
{
	r->len += n;
	size_t pos = 0;
	while (!r->ended) {
		char *nl = memchr(r->buf + pos, '\n', r->len - pos);
		if (!nl)
			break;
		*nl = '\0';
		const char *line = r->buf + pos;
		unsigned long long id;
		if (!strcmp(line, "structure ok"))
			r->structure = true;
		else if (sscanf(line, "bad %llu", &id) == 1)
			bad_add(c, id);
		else if (sscanf(line, "upto %llu", &id) == 1)
			atomic_store(&c->verified_upto, id);
		else if (sscanf(line, "end %15s %lu", r->state, &r->verified) == 2)
			r->ended = true;
		else if (line[0] == '#')
			log_warn("cache", "store check: %s", line + 2);
		pos = (size_t)(nl + 1 - r->buf);
	}
	if (r->ended) { /* the reason, as it comes */
		size_t k = r->len - pos;
		if (k > sizeof r->why - 1 - r->whylen)
			k = sizeof r->why - 1 - r->whylen;
		memcpy(r->why + r->whylen, r->buf + pos, k);
		r->whylen += k;
		r->why[r->whylen] = '\0';
		pos = r->len;
	}
	memmove(r->buf, r->buf + pos, r->len - pos);
	r->len -= pos;
	if (r->len == sizeof r->buf) /* a line longer than any the child writes */
		r->len = 0;
}

/* Reads one chunk of the report; false at end of file (the child is done). */
static bool check_read_some(struct cache *c, struct check_read *r, int fd)
{
	ssize_t n = read(fd, r->buf + r->len, sizeof r->buf - r->len);
	if (n < 0 && errno == EINTR)
		return true;
	if (n <= 0)
		return false;
	check_take(c, r, (size_t)n);
	return true;
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Checks the store at path in a child process.  Returns 0 if it is sound (or
 * absent), -1 with the reason in why if it is damaged (a body's checksum
 * included), -2 if it is of an older format.
 *
 * The start waits for the structure walk (CHECK_DEADLINE_S at most: past
 * that the check is abandoned, and every body from before the stop is
 * verified on read for this run), then o->check_ms for the checksums.  A
 * checksum pass still running then goes on in the background: c->check_pid
 * and c->check_fd are set, and cache_open() starts check_main() on them. */
static int store_check(struct cache *c, const struct cache_opts *o, char *why, size_t whylen)
{
	char data[4096];
	snprintf(data, sizeof data, "%s/data.mdb", o->path);
	struct stat sb;
	if (stat(data, &sb) < 0 || sb.st_size == 0)
		return 0;
	int pfd[2];
	if (pipe(pfd) < 0)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &c->check_t0);
	pid_t pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return 0;
	}
	if (pid == 0) {
		/* The child may die on a wild page by design: its stderr (and a
		 * sanitizer's report of that) is not the edge's log.  A write
		 * to an edge gone away ends it (EPIPE), without a signal. */
		int devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0)
			dup2(devnull, 2);
		signal(SIGPIPE, SIG_IGN);
		close(pfd[0]);
		_exit(check_walk(o->path, o->map_size, o->verify_rate, pfd[1]));
	}
	close(pfd[1]);
	struct check_read *r = xcalloc(1, sizeof *r);
	double deadline = CHECK_DEADLINE_S * 1e3;
	bool eof = false, structure = false;
	for (;;) {
		double left = deadline - ms_since(&c->check_t0);
		if (left <= 0)
			break;
		struct pollfd pf = { pfd[0], POLLIN, 0 };
		int pr = poll(&pf, 1, left > 1000 ? 1000 : (int)left + 1);
		if (pr > 0 && !check_read_some(c, r, pfd[0])) {
			eof = true;
			break;
		}
		if (r->structure && !structure) { /* the checksum pass begins */
			structure = true;
			deadline = o->check_ms ? ms_since(&c->check_t0) + (double)o->check_ms : 1e300;
		}
	}
	if (!eof) {
		atomic_store(&c->unverified, true); /* old bodies verified on read meanwhile */
		if (!r->structure) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			close(pfd[0]);
			c->verify_all = true;
			log_warn("cache", "store check of %s took more than %d s: abandoned; every body "
			         "from before the stop is verified on read for this run", o->path,
			         CHECK_DEADLINE_S);
		} else {
			c->check_pid = pid;
			c->check_fd = pfd[0];
			c->check_r = r; /* check_main() reads on */
			log_warn("cache", "store %s: the previous run did not stop cleanly: structure "
			         "sound in %.0f ms; the body checksums go on in the background, each "
			         "body from before the stop verified on read until then", o->path,
			         ms_since(&c->check_t0));
			return 0;
		}
		free(r);
		return 0;
	}
	int status = 0;
	waitpid(pid, &status, 0);
	close(pfd[0]);
	double ms = ms_since(&c->check_t0);
	snprintf(why, whylen, "%s", r->why);
	if (r->ended && !strcmp(r->state, "clean"))
		log_info("cache", "store %s: the previous run stopped cleanly: structure checked "
		         "in %.0f ms, body checksums skipped", o->path, ms);
	else if (r->ended && !strcmp(r->state, "unclean"))
		log_warn("cache", "store %s: the previous run did not stop cleanly: %lu body "
		         "checksums verified in %.0f ms", o->path, r->verified, ms);
	free(r);
	int rc = -1;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		rc = 0;
		if (c->nbad) { /* found while the start waited: the store is not sound */
			snprintf(why, whylen, "database b: body %llu: checksum mismatch (bytes lost in "
			         "an unclean stop)", (unsigned long long)c->bad[0]);
			rc = -1;
		}
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == CHECK_FORMAT) {
		rc = -2;
	} else if (WIFSIGNALED(status)) {
		snprintf(why, whylen, "the check crashed reading it (signal %d)", WTERMSIG(status));
	} else if (!why[0]) {
		snprintf(why, whylen, "the check failed (exit %d)", WEXITSTATUS(status));
	}
	c->nbad = 0;
	c->bad_overflow = false;
	atomic_store(&c->any_bad, false);
	atomic_store(&c->verified_upto, 0);
	return rc;
}

static long drop_bad_queued(struct cache *c);

/* The background half of the check: reads the checksum pass's report to
 * its end.  A complete pass lifts the verification on read, after the bad
 * bodies' entries are deleted (they were never served). */
static void *check_main(void *arg)
{
	struct cache *c = arg;
	struct check_read *r = c->check_r;
	while (check_read_some(c, r, c->check_fd))
		;
	int status = 0;
	waitpid(c->check_pid, &status, 0);
	double s = ms_since(&c->check_t0) / 1e3;
	if (atomic_load(&c->check_stop)) {
		log_info("cache", "store %s: background checksum pass stopped by the shutdown; the "
		         "next start verifies again", c->path);
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && r->ended && !c->bad_overflow) {
		pthread_mutex_lock(&c->bad_lock);
		size_t nbad = c->nbad;
		pthread_mutex_unlock(&c->bad_lock);
		long dropped = nbad ? drop_bad_queued(c) : 0;
		if (dropped >= 0) {
			/* The set is final (reads no longer verify, so add none):
			 * sorted, it is searched without the lock.  A read that
			 * began before the deletion may still meet a bad id, so
			 * lookups keep asking while any was found. */
			pthread_mutex_lock(&c->bad_lock);
			qsort(c->bad, c->nbad, sizeof c->bad[0], cmp_u64);
			atomic_store(&c->verified_upto, UINT64_MAX);
			atomic_store_explicit(&c->bad_final, true, memory_order_release);
			nbad = c->nbad; /* a read may have found one meanwhile */
			pthread_mutex_unlock(&c->bad_lock);
			if (!nbad)
				atomic_store(&c->verify_limit, 0);
			atomic_store(&c->unverified, false);
		}
		if (nbad)
			log_error("cache", "store %s: background checksum pass done in %.1f s: %lu "
			          "verified, %zu mismatched (bytes lost in the unclean stop; never "
			          "served; entries deleted: %ld)", c->path, s, r->verified, nbad,
			          dropped);
		else
			log_info("cache", "store %s: background checksum pass done in %.1f s: %lu "
			         "verified, all sound", c->path, s, r->verified);
	} else {
		log_warn("cache", "store %s: background checksum pass ended early (%s): the bodies "
		         "it did not reach stay verified on read for this run", c->path,
		         r->why[0] ? r->why : c->bad_overflow ? "too many bad bodies" : "no report");
	}
	close(c->check_fd);
	c->check_fd = -1;
	free(r);
	c->check_r = NULL;
	return NULL;
}

/* Ends the background pass (at close): the child is killed, its reader
 * slot freed by LMDB's next reader check. */
static void check_stop(struct cache *c)
{
	if (c->check_started) {
		atomic_store(&c->check_stop, true);
		kill(c->check_pid, SIGKILL);
		pthread_join(c->check_thread, NULL);
		c->check_started = false;
	} else if (c->check_pid > 0) { /* not handed to check_main */
		kill(c->check_pid, SIGKILL);
		waitpid(c->check_pid, NULL, 0);
		close(c->check_fd);
		free(c->check_r);
		c->check_r = NULL;
	}
	c->check_pid = 0;
}

/* Whether a body from before an unclean stop may be served: not one the
 * checksum pass found bad, and verified now unless the pass vouched for
 * it.  Off the hot path: only bodies below c->verify_limit come here. */
static bool old_body_ok(struct cache *c, uint64_t id, const MDB_val *v)
{
	if (atomic_load(&c->any_bad) && bad_has(c, id))
		return false;
	if (!c->verify_all && !c->bad_overflow && id < atomic_load(&c->verified_upto))
		return true;
	if (entry_verify(v->mv_data, v->mv_size) == 0)
		return true;
	bad_add(c, id);
	return false;
}

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

/* ---------- open / close ---------- */

static int env_open(struct cache *c, const struct cache_opts *o, char *err, size_t errlen);
static void *writer_main(void *arg);

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
	pthread_mutex_init(&c->wq_lock, NULL);
	pthread_cond_init(&c->wq_cond, NULL);
	pthread_cond_init(&c->done_cond, NULL);
	c->writer_started = pthread_create(&c->writer, NULL, writer_main, c) == 0;
	if (c->check_pid > 0)
		c->check_started = pthread_create(&c->check_thread, NULL, check_main, c) == 0;
	return c;
fail:
	check_stop(c);
	free(c->path);
	free(c);
	return NULL;
}

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
	 * the start-up check verifies body checksums after an unclean stop. */
	rc = mdb_env_open(c->env, o->path, MDB_NOTLS | MDB_NORDAHEAD | MDB_NOSYNC, 0640);
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

void cache_close(struct cache *c)
{
	if (!c)
		return;
	check_stop(c); /* before the writer: a finished pass queues a job */
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
	cache_maintain(c);
	for (int i = 0; i < c->npool; i++)
		mdb_txn_abort(c->pool[i]);
	for (int i = 0; i < c->ntouch; i++)
		free(c->touch[i]);
	/* Everything is on disk: only now may the next start skip the body
	 * checksums -- unless some from before an unclean stop were never
	 * verified.  The marker goes in its own transaction, synced again. */
	MDB_txn *t;
	if (!atomic_load(&c->unverified) && mdb_env_sync(c->env, 1) == 0 && mdb_txn_begin(c->env, NULL, 0, &t) == 0) {
		MDB_val one = { 1, "1" };
		if (mdb_put(t, c->m, (MDB_val *)&m_clean, &one, 0) != 0)
			mdb_txn_abort(t);
		else if (mdb_txn_commit(t) == 0)
			mdb_env_sync(c->env, 1);
	}
	mdb_env_close(c->env);
	for (int i = 0; i < RECENT_PURGES; i++)
		free(c->recent[i].arg);
	pthread_mutex_destroy(&c->recent_lock);
	pthread_mutex_destroy(&c->pool_lock);
	pthread_mutex_destroy(&c->touch_lock);
	pthread_mutex_destroy(&c->bad_lock);
	free(c->path);
	free(c);
}

/* ---------- read transactions (pooled: renew is much cheaper than begin) ---------- */

static MDB_txn *rtxn_get(struct cache *c)
{
	MDB_txn *t = NULL;
	pthread_mutex_lock(&c->pool_lock);
	if (c->npool)
		t = c->pool[--c->npool];
	pthread_mutex_unlock(&c->pool_lock);
	if (t && mdb_txn_renew(t) == 0)
		return t;
	if (t)
		mdb_txn_abort(t);
	if (mdb_txn_begin(c->env, NULL, MDB_RDONLY, &t) != 0)
		return NULL;
	return t;
}

void cache_ref_release(struct cache *c, struct cache_ref *ref)
{
	MDB_txn *t = (MDB_txn *)ref;
	if (!t)
		return;
	mdb_txn_reset(t);
	pthread_mutex_lock(&c->pool_lock);
	if (c->npool < TXN_POOL) {
		c->pool[c->npool++] = t;
		t = NULL;
	}
	pthread_mutex_unlock(&c->pool_lock);
	if (t)
		mdb_txn_abort(t);
}

/* ---------- Vary ---------- */

/* Normalised list of Vary field names: lower-case, comma-separated, no spaces. */
static void vary_names(const char *vary, struct buf *out)
{
	const char *p = vary;
	while (p && *p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *s = p;
		while (*p && *p != ',' && *p != ' ' && *p != '\t')
			p++;
		if (p > s) {
			if (out->len)
				buf_append(out, ",", 1);
			for (const char *q = s; q < p; q++) {
				char ch = (char)(*q >= 'A' && *q <= 'Z' ? *q + 32 : *q);
				buf_append(out, &ch, 1);
			}
		}
	}
}

/* Storage key from a normalised name list (names, len). */
static void variant_from_names(const char *key, const char *names, size_t len, cache_header_fn hdr,
                               void *cls, struct buf *out)
{
	buf_puts(out, key);
	char name[128];
	size_t i = 0;
	while (i < len) {
		size_t j = i;
		while (j < len && names[j] != ',')
			j++;
		size_t n = j - i < sizeof name - 1 ? j - i : sizeof name - 1;
		memcpy(name, names + i, n);
		name[n] = '\0';
		const char *v = hdr ? hdr(cls, name) : NULL;
		char sep = CACHEKEY_VARY_SEP;
		buf_append(out, &sep, 1);
		/* Equivalent spellings select one variant (RFC 9111 4.1);
		 * Accept-Encoding as fills send it (proxy.c). */
		vary_normalize(name, v, out);
		i = j + 1;
	}
}

void cache_variant_key(const char *key, const char *vary, cache_header_fn hdr, void *cls,
                       struct buf *out)
{
	struct buf names = BUF_INIT;
	vary_names(vary, &names);
	if (names.len)
		variant_from_names(key, names.data, names.len, hdr, cls, out);
	else
		buf_puts(out, key);
	buf_free(&names);
}

/* ---------- lookup ---------- */

enum cache_result cache_lookup(struct cache *c, const char *key, cache_header_fn hdr, void *cls,
                               struct cache_ref **ref, struct entry_view *out,
                               struct buf *storage_key)
{
	*ref = NULL;
	MDB_txn *t = rtxn_get(c);
	if (!t)
		return CACHE_MISS;
	char kb[DBKEY_MAX];
	MDB_val k, v;
	k.mv_data = kb;
	k.mv_size = dbkey(key, strlen(key), kb);
	if (mdb_get(t, c->e, &k, &v) != 0)
		goto miss;
	enum cache_result vary_res = CACHE_MISS;
	struct buf sk = BUF_INIT;
	if (is_vary(&v)) {
		variant_from_names(key, (const char *)v.mv_data + 4, v.mv_size - 4, hdr, cls, &sk);
		k.mv_size = dbkey(sk.data, sk.len, kb);
		vary_res = CACHE_VARY_MISS;
		if (mdb_get(t, c->e, &k, &v) != 0) {
			buf_free(&sk);
			cache_ref_release(c, (struct cache_ref *)t);
			return vary_res;
		}
	} else {
		buf_puts(&sk, key);
	}
	/* The reference, then the entry itself in "b" (same read transaction:
	 * the two agree, and the body stays mapped until the ref is released). */
	struct ref r;
	size_t bk;
	MDB_val bkey;
	if (ref_decode(&v, &r) < 0 || (bkey = body_key(&bk, r.id), mdb_get(t, c->b, &bkey, &v)) != 0 ||
	    entry_decode(v.mv_data, v.mv_size, out) < 0) {
		log_warn("cache", "undecodable entry for %s ignored", key);
		buf_free(&sk);
		goto miss;
	}
	if (r.id < atomic_load_explicit(&c->verify_limit, memory_order_relaxed) &&
	    !old_body_ok(c, r.id, &v)) {
		/* A miss: the refetch's store replaces it. */
		log_error("cache", "%s: body %llu fails its checksum (bytes lost in an unclean "
		          "stop): not served", sk.data, (unsigned long long)r.id);
		buf_free(&sk);
		goto miss;
	}
	if (storage_key)
		buf_append(storage_key, sk.data, sk.len);
	buf_free(&sk);
	*ref = (struct cache_ref *)t;
	return CACHE_HIT;
miss:
	cache_ref_release(c, (struct cache_ref *)t);
	return CACHE_MISS;
}

/* ---------- accounting and deletion (inside a write txn) ---------- */

static uint64_t bytes_get(struct cache *c, MDB_txn *t)
{
	MDB_val v;
	uint64_t b = 0;
	if (mdb_get(t, c->m, (MDB_val *)&m_bytes, &v) == 0 && v.mv_size == 8)
		memcpy(&b, v.mv_data, 8);
	return b;
}

static int bytes_add(struct cache *c, MDB_txn *t, int64_t delta)
{
	uint64_t b = bytes_get(c, t);
	b = delta < 0 && (uint64_t)-delta > b ? 0 : b + (uint64_t)delta;
	MDB_val v = { 8, &b };
	return mdb_put(t, c->m, (MDB_val *)&m_bytes, &v, 0);
}

/* The LRU row of dbkey k accessed at `at`: be64(at) + k. */
static MDB_val lru_row(uint8_t *row, const MDB_val *k, uint64_t at)
{
	be64(row, at);
	memcpy(row + 8, k->mv_data, k->mv_size);
	return (MDB_val){ 8 + k->mv_size, row };
}

static void lru_drop(struct cache *c, MDB_txn *t, const MDB_val *k, uint64_t at)
{
	uint8_t row[8 + DBKEY_MAX];
	MDB_val l = lru_row(row, k, at);
	mdb_del(t, c->l, &l, NULL);
}

static int lru_put(struct cache *c, MDB_txn *t, const MDB_val *k, uint64_t at)
{
	uint8_t row[8 + DBKEY_MAX];
	MDB_val l = lru_row(row, k, at), empty = { 0, "" };
	return mdb_put(t, c->l, &l, &empty, 0);
}

/* Points dbkey k at body id, accessed at `at`. */
static int ref_put(struct cache *c, MDB_txn *t, const MDB_val *k, uint64_t id, uint64_t at)
{
	uint8_t rv[REF_SIZE];
	ref_encode(rv, id, at);
	MDB_val v = { REF_SIZE, rv };
	return mdb_put(t, c->e, (MDB_val *)k, &v, 0);
}

/* Reserves a new "b" record of vsize bytes under the next body id.  Ids
 * only grow, so MDB_APPEND fills each page before starting the next
 * (random keys would split pages in the middle and leave them half empty).
 * Returns 0 with *dst pointing into the map (valid until the next write in
 * t), or an LMDB code. */
static int body_reserve(struct cache *c, MDB_txn *t, size_t vsize, uint64_t *id, void **dst)
{
	size_t bk;
	*id = c->next_id++;
	MDB_val k = body_key(&bk, *id), v = { vsize, NULL };
	int rc = mdb_put(t, c->b, &k, &v, MDB_APPEND | MDB_RESERVE);
	if (rc == 0)
		*dst = v.mv_data;
	return rc;
}

/* After the variant at dbkey k went: if it was its URL's last one, the
 * Vary record at the primary key goes too.  Nothing else would remove it
 * (a Vary record has no LRU row), and with Vary: Accept-Encoding on most
 * text responses every evicted URL would leave one behind.  A variant's
 * dbkey is its primary key, CACHEKEY_VARY_SEP and the selected values, so
 * its siblings are the keys right after primary + SEP; a primary key too
 * long to be kept verbatim in a variant's dbkey is not found (and its
 * record stays). */
static void drop_orphan_vary(struct cache *c, MDB_txn *t, const MDB_val *k)
{
	const char *sep = memchr(k->mv_data, CACHEKEY_VARY_SEP,
	                         k->mv_size < DBKEY_KEEP ? k->mv_size : DBKEY_KEEP);
	if (!sep)
		return;
	size_t plen = (size_t)(sep - (const char *)k->mv_data);
	char pk[DBKEY_KEEP + 1];
	memcpy(pk, k->mv_data, plen + 1);
	MDB_cursor *cur;
	if (mdb_cursor_open(t, c->e, &cur) != 0)
		return;
	MDB_val ck = { plen + 1, pk }, cv;
	bool sibling = mdb_cursor_get(cur, &ck, &cv, MDB_SET_RANGE) == 0 && ck.mv_size > plen &&
	               !memcmp(ck.mv_data, pk, plen + 1);
	mdb_cursor_close(cur);
	MDB_val vk = { plen, pk }, vv;
	if (!sibling && mdb_get(t, c->e, &vk, &vv) == 0 && is_vary(&vv)) {
		bytes_add(c, t, -(int64_t)cost_vary(vk.mv_size, vv.mv_size));
		mdb_del(t, c->e, &vk, NULL);
	}
}

/* Deletes the record at dbkey k (entry or Vary record) with its body, tags
 * and LRU row, and a Vary record left without variants unless keep_vary
 * (the variant is being replaced).  Returns 1 if an entry was removed, 0
 * otherwise. */
static int del_record(struct cache *c, MDB_txn *t, MDB_val *k, bool keep_vary)
{
	MDB_val v;
	if (mdb_get(t, c->e, k, &v) != 0)
		return 0;
	struct ref r;
	if (ref_decode(&v, &r) < 0) { /* a Vary record */
		bytes_add(c, t, -(int64_t)cost_vary(k->mv_size, v.mv_size));
		mdb_del(t, c->e, k, NULL);
		return 0;
	}
	size_t bk;
	MDB_val bkey = body_key(&bk, r.id), bv;
	size_t vlen = 0;
	if (mdb_get(t, c->b, &bkey, &bv) == 0) {
		vlen = bv.mv_size;
		struct entry_view ev;
		/* Tag rows first: the tags point into the body record. */
		if (entry_decode(bv.mv_data, bv.mv_size, &ev) == 0) {
			for (size_t i = 0; i < ev.tags_len; i += strlen(ev.tags + i) + 1) {
				MDB_val tk = { strlen(ev.tags + i), (void *)(ev.tags + i) };
				if (tk.mv_size)
					mdb_del(t, c->t, &tk, k);
			}
		}
		mdb_del(t, c->b, &bkey, NULL);
	}
	lru_drop(c, t, k, r.at);
	mdb_del(t, c->e, k, NULL);
	bytes_add(c, t, -(int64_t)cost(k->mv_size, vlen));
	if (!keep_vary)
		drop_orphan_vary(c, t, k);
	return 1;
}

/* Purges collect keys first and delete after the scan, so no cursor is
 * invalidated under our feet: a todo list is a buf of (u32 length, key). */
static void todo_push(struct buf *todo, const void *key, size_t len)
{
	uint32_t l32 = (uint32_t)len;
	buf_append(todo, &l32, 4);
	buf_append(todo, key, len);
}

/* Deletes every record on the todo list and frees it; returns how many went. */
static long todo_delete(struct cache *c, MDB_txn *t, struct buf *todo)
{
	long n = 0;
	for (size_t off = 0; off < todo->len;) {
		uint32_t kl;
		memcpy(&kl, todo->data + off, 4);
		MDB_val dk = { kl, todo->data + off + 4 };
		n += del_record(c, t, &dk, false);
		off += 4 + kl;
	}
	buf_free(todo);
	return n;
}

/* Deletes every record whose dbkey starts with prefix (len bytes). */
static long del_prefix(struct cache *c, MDB_txn *t, const char *prefix, size_t len)
{
	MDB_cursor *cur;
	if (mdb_cursor_open(t, c->e, &cur) != 0)
		return 0;
	MDB_val k = { len, (void *)prefix }, v;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	struct buf todo = BUF_INIT;
	while (rc == 0 && k.mv_size >= len && !memcmp(k.mv_data, prefix, len)) {
		todo_push(&todo, k.mv_data, k.mv_size);
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	return todo_delete(c, t, &todo);
}

/* Evicts least-recently-used entries until accounted bytes <= target. */
static long evict(struct cache *c, MDB_txn *t, uint64_t target)
{
	long n = 0;
	while (bytes_get(c, t) > target) {
		MDB_cursor *cur;
		if (mdb_cursor_open(t, c->l, &cur) != 0)
			break;
		MDB_val lk, lv;
		int rc = mdb_cursor_get(cur, &lk, &lv, MDB_FIRST);
		uint8_t row[8 + DBKEY_MAX];
		size_t rl = 0;
		if (rc == 0 && lk.mv_size > 8 && lk.mv_size <= sizeof row) {
			rl = lk.mv_size;
			memcpy(row, lk.mv_data, rl);
		}
		mdb_cursor_close(cur);
		if (rc != 0 || rl == 0) {
			/* Nothing left to evict: the counter drifted; reset it. */
			uint64_t z = 0;
			MDB_val mv = { 8, &z };
			mdb_put(t, c->m, (MDB_val *)&m_bytes, &mv, 0);
			break;
		}
		MDB_val k = { rl - 8, row + 8 };
		del_record(c, t, &k, false);
		/* Whatever del_record found, this row must go, or we would loop. */
		MDB_val r = { rl, row };
		mdb_del(t, c->l, &r, NULL);
		n++;
	}
	if (n)
		c->evicted += (uint64_t)n;
	return n;
}

/* ---------- store ---------- */

/* Makes room for an entry of vsize bytes in write txn *t: when the store is
 * above the high-water mark (or evict_to is set), evicts and commits, then
 * begins a new *t (pages freed in a transaction can only be reused by the
 * next one).  Returns 0, or an LMDB code with *t gone. */
static int make_room(struct cache *c, MDB_txn **t, size_t vsize, uint64_t evict_to)
{
	uint64_t need = cost(DBKEY_MAX, vsize);
	uint64_t high = (uint64_t)((double)c->map_size * c->high);
	if (!evict_to && bytes_get(c, *t) + need <= high)
		return 0;
	uint64_t target = evict_to ? evict_to : (uint64_t)((double)c->map_size * c->low);
	target = target > need ? target - need : 0;
	evict(c, *t, target);
	int rc = mdb_txn_commit(*t);
	*t = NULL;
	if (rc == 0)
		rc = mdb_txn_begin(c->env, NULL, 0, t);
	return rc;
}

/* ---------- purges against fetches still running ---------- */

#define STORE_SKIPPED (-1000) /* store_in: not stored, a purge covers it (not an LMDB code) */

/* Whether a storage key's path (after "http://host") starts with prefix, or
 * for an absolute prefix the key itself: the purge's own matching. */
static bool prefix_covers(const char *key, const char *prefix)
{
	size_t len = strlen(prefix), kl = strlen(key);
	if (prefix[0] != '/') {
		len = len > DBKEY_KEEP ? DBKEY_KEEP : len;
		return kl >= len && !memcmp(key, prefix, len);
	}
	const char *e = kl > 7 ? memchr(key + 7, '/', kl - 7) : NULL;
	return e && strlen(e) >= len && !memcmp(e, prefix, len);
}

uint64_t cache_purge_seq(struct cache *c)
{
	return atomic_load(&c->purges) + 1;
}

/* Remembers a purge (called inside its write transaction). */
static void purge_remember(struct cache *c, enum job_kind kind, const char *arg)
{
	pthread_mutex_lock(&c->recent_lock);
	struct recent_purge *p = &c->recent[c->recent_next];
	free(p->arg);
	p->kind = (int)kind;
	p->arg = xstrdup(arg);
	p->at = (int64_t)now_s();
	p->seq = atomic_fetch_add(&c->purges, 1) + 1;
	c->recent_next = (c->recent_next + 1) % RECENT_PURGES;
	pthread_mutex_unlock(&c->recent_lock);
}

/* Whether a purge made after the request was sent covers this response (by
 * its primary key or one of its tags): it may carry the purged content and
 * must not be stored after it.  "After" is exact when the store carries the
 * purge sequence taken as the request was sent (proxy.c and script_http.c
 * do); otherwise request times in seconds decide, and a purge in the same
 * second as the request does not count -- counting it would drop every
 * response fetched just after a purge -- so that one-second window stays
 * open for such stores.  Only the last RECENT_PURGES purges are
 * remembered.  Cost: a scan of them per store, under the writer's
 * transaction. */
static bool purge_covers(struct cache *c, const char *key, const char *tags, size_t tags_len,
                         const struct entry_meta *m)
{
	bool hit = false;
	pthread_mutex_lock(&c->recent_lock);
	/* With the sequence recorded at request time (cache_purge_seq: one more
	 * than the purges then), exactly the later purges count. */
	uint64_t seen = m->purge_seq ? m->purge_seq - 1 : 0;
	for (int i = 0; i < RECENT_PURGES && !hit; i++) {
		const struct recent_purge *p = &c->recent[i];
		if (!p->kind || (m->purge_seq ? p->seq <= seen : p->at <= m->request_time))
			continue;
		switch (p->kind) {
		case JOB_PURGE_KEY: hit = !strcmp(key, p->arg); break;
		case JOB_PURGE_PREFIX: hit = prefix_covers(key, p->arg); break;
		case JOB_PURGE_TAG:
			for (size_t j = 0; j < tags_len && !hit; j += strlen(tags + j) + 1)
				hit = !strcmp(tags + j, p->arg);
			break;
		default: break;
		}
	}
	pthread_mutex_unlock(&c->recent_lock);
	return hit;
}

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

/* ---------- purge (inside a write txn) ---------- */

static long purge_key_in(struct cache *c, MDB_txn *t, const char *key)
{
	/* The key itself and "key<SEP>..." variants: the prefix "key" would also
	 * catch "key2", so delete the exact key, then the SEP-prefixed range. */
	char kb[DBKEY_MAX];
	MDB_val k = { dbkey(key, strlen(key), kb), kb };
	long n = del_record(c, t, &k, false);
	struct buf p = BUF_INIT;
	buf_puts(&p, key);
	char sep = CACHEKEY_VARY_SEP;
	buf_append(&p, &sep, 1);
	size_t pl = p.len > DBKEY_KEEP ? DBKEY_KEEP : p.len;
	n += del_prefix(c, t, p.data, pl);
	buf_free(&p);
	return n;
}

static long purge_prefix_in(struct cache *c, MDB_txn *t, const char *prefix)
{
	size_t len = strlen(prefix);
	if (prefix[0] != '/')
		return del_prefix(c, t, prefix, len > DBKEY_KEEP ? DBKEY_KEEP : len);
	/* A bare path prefix applies to every host: a full scan of the
	 * references, O(entries) (small records: many per page). */
	MDB_cursor *cur;
	struct buf todo = BUF_INIT;
	if (mdb_cursor_open(t, c->e, &cur) == 0) {
		MDB_val k, v;
		int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			const char *s = k.mv_data;
			size_t kl = k.mv_size;
			/* skip "http://host" */
			const char *e = kl > 7 ? memchr(s + 7, '/', kl - 7) : NULL;
			if (!e || (size_t)(s + kl - e) < len || memcmp(e, prefix, len))
				continue;
			todo_push(&todo, s, kl);
		}
		mdb_cursor_close(cur);
	}
	return todo_delete(c, t, &todo);
}

static long purge_tag_in(struct cache *c, MDB_txn *t, const char *tag)
{
	size_t tl = strlen(tag);
	if (tl == 0 || tl > TAG_MAX)
		return 0;
	MDB_cursor *cur;
	struct buf todo = BUF_INIT;
	MDB_val k = { tl, (void *)tag }, v;
	if (mdb_cursor_open(t, c->t, &cur) == 0) {
		int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
		for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP))
			todo_push(&todo, v.mv_data, v.mv_size);
		mdb_cursor_close(cur);
	}
	long n = todo_delete(c, t, &todo);
	MDB_val tk = { tl, (void *)tag };
	mdb_del(t, c->t, &tk, NULL);
	return n;
}

/* Deletes the entries whose bodies the checksum pass found bad (a full
 * scan of the references, once, at the end of a background pass). */
static long drop_bad_in(struct cache *c, MDB_txn *t)
{
	MDB_cursor *cur;
	struct buf todo = BUF_INIT;
	if (mdb_cursor_open(t, c->e, &cur) == 0) {
		MDB_val k, v;
		for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			struct ref r;
			if (ref_decode(&v, &r) == 0 && r.id < atomic_load(&c->verify_limit) &&
			    bad_has(c, r.id))
				todo_push(&todo, k.mv_data, k.mv_size);
		}
		mdb_cursor_close(cur);
	}
	return todo_delete(c, t, &todo);
}

static bool job_queue(struct cache *c, struct cache_job *j);

static long drop_bad_queued(struct cache *c)
{
	struct cache_job j = { .kind = JOB_DROP_BAD };
	if (!job_queue(c, &j))
		return -1;
	return j.result;
}

static long purge_in(struct cache *c, MDB_txn *t, const struct cache_job *j)
{
	if (j->kind == JOB_DROP_BAD)
		return drop_bad_in(c, t);
	purge_remember(c, j->kind, j->arg);
	switch (j->kind) {
	case JOB_PURGE_KEY: return purge_key_in(c, t, j->arg);
	case JOB_PURGE_PREFIX: return purge_prefix_in(c, t, j->arg);
	case JOB_PURGE_TAG: return purge_tag_in(c, t, j->arg);
	default: return 0;
	}
}

/* A purge in its own transaction.  Returns the count, or -1. */
static long purge_txn(struct cache *c, const struct cache_job *j)
{
	MDB_txn *t;
	if (mdb_txn_begin(c->env, NULL, 0, &t) != 0)
		return -1;
	long n = purge_in(c, t, j);
	if (mdb_txn_commit(t) != 0)
		return -1;
	return n;
}

/* ---------- the writer: group commit, stores and purges in order ---------- */

#define WRITER_BATCH 64 /* jobs per transaction at most */

/* Reports a job's outcome: a store's done callback, or wakes a purge's
 * caller (after which the job, on that caller's stack, is gone). */
static void job_finish(struct cache *c, struct cache_job *j, int rc)
{
	if (j->kind == JOB_STORE) {
		j->done(j->cls, rc ? rc : j->skipped ? -1 : 0);
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
	if (j->kind != JOB_STORE) {
		j->result = purge_txn(c, j);
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
		if (j->kind != JOB_STORE) {
			j->result = purge_in(c, t, j);
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
		bool store[WRITER_BATCH];
		int n = 0;
		while (n < WRITER_BATCH && c->wq_head) {
			jobs[n] = c->wq_head;
			store[n] = jobs[n]->kind == JOB_STORE;
			c->wq_head = jobs[n]->next;
			n++;
		}
		if (!c->wq_head)
			c->wq_tail = NULL;
		pthread_mutex_unlock(&c->wq_lock);
		writer_batch(c, jobs, n);
		for (int i = 0; i < n; i++)
			if (store[i]) /* a finished purge may already be gone */
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
	if (j->kind != JOB_STORE)
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
	*j = (struct cache_job){ .kind = JOB_STORE, .key = key, .vary = vary, .hdr = hdr,
		                 .hcls = hcls, .m = *m, .hdrs = hdrs, .tags = tags,
		                 .hdrs_len = hdrs_len, .tags_len = tags_len, .body = body,
		                 .body_len = body_len, .done = done, .cls = cls };
	if (!job_queue(c, j)) {
		job_run_alone(c, j); /* no writer: store synchronously */
		free(j);
	}
}

/* Purges go through the writer's queue, behind the stores queued before
 * them: a store of a response fetched before the purge can then never be
 * committed after it (it would bring the purged content back).  The caller
 * waits for the purge's commit. */
static long purge_queued(struct cache *c, enum job_kind kind, const char *arg)
{
	struct cache_job j = { .kind = kind, .arg = arg };
	if (!job_queue(c, &j))
		return purge_txn(c, &j);
	return j.result;
}

long cache_purge_key(struct cache *c, const char *key)
{
	return purge_queued(c, JOB_PURGE_KEY, key);
}

long cache_purge_prefix(struct cache *c, const char *prefix)
{
	return purge_queued(c, JOB_PURGE_PREFIX, prefix);
}

long cache_purge_tag(struct cache *c, const char *tag)
{
	return purge_queued(c, JOB_PURGE_TAG, tag);
}

/* ---------- update after a 304 ---------- */

int cache_update(struct cache *c, const char *storage_key, const struct entry_meta *m,
                 const char *hdrs, size_t hdrs_len)
{
	MDB_txn *t;
	if (mdb_txn_begin(c->env, NULL, 0, &t) != 0)
		return -1;
	char kb[DBKEY_MAX];
	MDB_val k = { dbkey(storage_key, strlen(storage_key), kb), kb }, v;
	struct entry_view ev;
	struct ref r;
	size_t bk;
	MDB_val bkey;
	if (mdb_get(t, c->e, &k, &v) != 0 || ref_decode(&v, &r) < 0)
		goto fail;
	bkey = body_key(&bk, r.id);
	if (mdb_get(t, c->b, &bkey, &v) != 0 || entry_decode(v.mv_data, v.mv_size, &ev) < 0)
		goto fail;
	size_t nsize = entry_size(hdrs_len, ev.tags_len, ev.body_len);
	/* The new value is built in memory first: the old one lives in the map
	 * and may be moved by the put.  Meta, headers and body share one record
	 * (a 1 KiB object fits three to a page that way), so a 304 rewrites the
	 * body record in place under the same id, as it rewrote the whole
	 * value before "b" existed. */
	uint8_t *nv = xmalloc(nsize);
	entry_write(nv, m, hdrs, hdrs_len, ev.tags, ev.tags_len, ev.body, ev.body_len);
	int64_t delta = (int64_t)cost(k.mv_size, nsize) - (int64_t)cost(k.mv_size, v.mv_size);
	MDB_val nval = { nsize, nv };
	int rc = mdb_put(t, c->b, &bkey, &nval, 0);
	free(nv);
	uint64_t now = now_s();
	if (rc || bytes_add(c, t, delta))
		goto fail;
	lru_drop(c, t, &k, r.at);
	if (lru_put(c, t, &k, now) || ref_put(c, t, &k, r.id, now))
		goto fail;
	return mdb_txn_commit(t) ? -1 : 0;
fail:
	mdb_txn_abort(t);
	return -1;
}

/* ---------- LRU touches ---------- */

void cache_touch(struct cache *c, const char *storage_key)
{
	/* Lossy on purpose: when the queue is full the access is forgotten; the
	 * LRU is approximate and a hot object is touched again soon. */
	pthread_mutex_lock(&c->touch_lock);
	if (c->ntouch < TOUCH_QUEUE) {
		c->touch[c->ntouch++] = xstrdup(storage_key);
	}
	pthread_mutex_unlock(&c->touch_lock);
}

void cache_maintain(struct cache *c)
{
	char **batch;
	int n;
	mdb_env_sync(c->env, 1);
	pthread_mutex_lock(&c->touch_lock);
	n = c->ntouch;
	if (n == 0) {
		pthread_mutex_unlock(&c->touch_lock);
		return;
	}
	batch = xmalloc((size_t)n * sizeof *batch);
	memcpy(batch, c->touch, (size_t)n * sizeof *batch);
	c->ntouch = 0;
	pthread_mutex_unlock(&c->touch_lock);

	MDB_txn *t;
	if (mdb_txn_begin(c->env, NULL, 0, &t) == 0) {
		uint64_t now = now_s();
		for (int i = 0; i < n; i++) {
			char kb[DBKEY_MAX];
			MDB_val k = { dbkey(batch[i], strlen(batch[i]), kb), kb }, v;
			struct ref r;
			if (mdb_get(t, c->e, &k, &v) != 0 || ref_decode(&v, &r) < 0)
				continue; /* purged meanwhile */
			if (r.at + TOUCH_GRANULARITY > now)
				continue;
			lru_drop(c, t, &k, r.at);
			if (lru_put(c, t, &k, now) == 0)
				ref_put(c, t, &k, r.id, now);
		}
		mdb_txn_commit(t);
	}
	for (int i = 0; i < n; i++)
		free(batch[i]);
	free(batch);
}

void cache_get_stats(struct cache *c, struct cache_stats *s)
{
	memset(s, 0, sizeof *s);
	s->map_size = c->map_size;
	s->evicted = c->evicted;
	s->store_failed = c->store_failed;
	s->unverified = atomic_load(&c->unverified);
	pthread_mutex_lock(&c->bad_lock);
	s->bad_bodies = c->nbad;
	pthread_mutex_unlock(&c->bad_lock);
	MDB_txn *t = rtxn_get(c);
	if (!t)
		return;
	MDB_stat st;
	if (mdb_stat(t, c->b, &st) == 0)
		s->entries = st.ms_entries;
	s->bytes = bytes_get(c, t);
	cache_ref_release(c, (struct cache_ref *)t);
}
