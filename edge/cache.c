/* cache.c -- LMDB object store with an approximate LRU that survives restarts */
#include "edge/cache.h"
#include "edge/cachekey.h"
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

static const char vary_magic[4] = { 'M', 'C', 'V', '1' };

struct cache {
	MDB_env *env;
	MDB_dbi e, a, l, t, m;
	uint64_t map_size;
	double high, low;
	pthread_mutex_t pool_lock;
	MDB_txn *pool[TXN_POOL];
	int npool;
	pthread_mutex_t touch_lock;
	char *touch[TOUCH_QUEUE];
	int ntouch;
	_Atomic uint64_t evicted, store_failed;
	/* the writer thread (cache_store_async): FIFO of queued stores */
	pthread_t writer;
	bool writer_started, writer_stop;
	pthread_mutex_t wq_lock;
	pthread_cond_t wq_cond;
	struct cache_job *wq_head, *wq_tail;
};

struct cache_job {
	struct cache_job *next;
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
};

/* ---------- keys ---------- */

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

/* Accounted size: what an entry costs in the map (overflow pages are whole). */
static uint64_t cost(size_t klen, size_t vlen)
{
	if (vlen > 2000)
		return ((vlen + 16 + 4095) / 4096) * 4096 + klen + 64;
	return klen + vlen + 64;
}

/* ---------- start-up check of an existing store ---------- */

#define CHECK_DEADLINE_S 60

/* Walks every record of a store opened read-only.  Runs in a child process
 * (store_check): a damaged page can make LMDB read out of bounds or trip an
 * assertion, and that must kill the child, not the edge.  Writes the reason
 * to fd and returns 0 if the store is sound, 1 if not. */
static int check_walk(const char *path, uint64_t map_size, int fd)
{
	MDB_env *env = NULL;
	MDB_txn *t = NULL;
	char why[300] = "";
	int rc;
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
	/* Walk order: the free-page list (writers allocate from it), the main
	 * database (names of the others), then ours. */
	static const char *const names[] = { "e", "a", "l", "t", "m" };
	size_t main_entries = 0;
	for (int i = -2; i < 5 && !why[0]; i++) {
		MDB_dbi dbi = 0; /* FREE_DBI */
		rc = 0;
		if (i == -1)
			rc = mdb_dbi_open(t, NULL, 0, &dbi);
		else if (i >= 0)
			rc = mdb_dbi_open(t, names[i], i == 3 ? MDB_DUPSORT : 0, &dbi);
		if (rc == MDB_NOTFOUND && main_entries == 0)
			continue; /* a new store: created on open */
		if (rc) {
			snprintf(why, sizeof why, "database %s: %s", i < 0 ? "main" : names[i],
			         mdb_strerror(rc));
			break;
		}
		MDB_stat st;
		MDB_cursor *cur;
		if ((rc = mdb_stat(t, dbi, &st)) || (rc = mdb_cursor_open(t, dbi, &cur))) {
			snprintf(why, sizeof why, "database %s: %s",
			         i < 0 ? (i == -1 ? "main" : "free") : names[i], mdb_strerror(rc));
			break;
		}
		MDB_val k, v;
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
				ok = k.mv_size == 1 && strchr("ealtm", *(char *)k.mv_data);
				main_entries++;
				break;
			case 0: /* an entry (headers validated, body not read) or a Vary record */
				ok = (v.mv_size >= 4 && !memcmp(v.mv_data, vary_magic, 4)) ||
				     entry_decode(v.mv_data, v.mv_size, &ev) == 0;
				break;
			case 1: ok = v.mv_size == 8; break;
			case 2: ok = k.mv_size > 8 && v.mv_size == 0; break;
			case 4: ok = v.mv_size == 8; break;
			default: break;
			}
			if (!ok) {
				snprintf(why, sizeof why, "database %s: malformed record %zu",
				         i < 0 ? (i == -1 ? "main" : "free") : names[i], n);
				break;
			}
		}
		mdb_cursor_close(cur);
		const char *dn = i < 0 ? (i == -1 ? "main" : "free") : names[i];
		if (!why[0] && rc != MDB_NOTFOUND)
			snprintf(why, sizeof why, "database %s: %s", dn, mdb_strerror(rc));
		else if (!why[0] && n != st.ms_entries)
			snprintf(why, sizeof why, "database %s: %zu records walked, %zu counted", dn, n,
			         (size_t)st.ms_entries);
	}
out:
	if (t)
		mdb_txn_abort(t);
	if (env)
		mdb_env_close(env);
	if (why[0] && write(fd, why, strlen(why)) < 0)
		return 1;
	return why[0] ? 1 : 0;
}

/* Checks the store at path in a child process.  Returns 0 if it is sound (or
 * absent), -1 with the reason in why if it is damaged.  A check still running
 * after CHECK_DEADLINE_S is abandoned and the store used as it is. */
static int store_check(const char *path, uint64_t map_size, char *why, size_t whylen)
{
	char data[4096];
	snprintf(data, sizeof data, "%s/data.mdb", path);
	struct stat sb;
	if (stat(data, &sb) < 0 || sb.st_size == 0)
		return 0;
	int pfd[2];
	if (pipe(pfd) < 0)
		return 0;
	pid_t pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return 0;
	}
	if (pid == 0) {
		/* The child may die on a wild page by design: its stderr (and a
		 * sanitizer's report of that) is not the edge's log. */
		int devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0)
			dup2(devnull, 2);
		close(pfd[0]);
		_exit(check_walk(path, map_size, pfd[1]));
	}
	close(pfd[1]);
	int status = 0;
	pid_t w = 0;
	for (int i = 0; i < CHECK_DEADLINE_S * 100 && (w = waitpid(pid, &status, WNOHANG)) == 0; i++)
		usleep(10000);
	if (w == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		close(pfd[0]);
		log_warn("cache", "store check of %s took more than %d s: abandoned, store used as is",
		         path, CHECK_DEADLINE_S);
		return 0;
	}
	ssize_t n = read(pfd[0], why, whylen - 1);
	close(pfd[0]);
	why[n > 0 ? n : 0] = '\0';
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status))
		snprintf(why, whylen, "the check crashed reading it (signal %d)", WTERMSIG(status));
	else if (!why[0])
		snprintf(why, whylen, "the check failed (exit %d)", WEXITSTATUS(status));
	return -1;
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
	/* A cache may lose its contents, never the edge its start: a store
	 * damaged by an OS crash (commits are not fsync'd one by one, see
	 * env_open) is moved aside and the edge starts empty. */
	char why[300] = "";
	int rc = store_check(o->path, o->map_size, why, sizeof why);
	if (rc == 0) {
		rc = env_open(c, o, why, sizeof why);
		if (rc && !lmdb_damage(rc)) {
			snprintf(err, errlen, "%s", why);
			goto fail;
		}
	}
	if (rc) {
		char aside[4096];
		if (store_reset(o->path, aside, sizeof aside) < 0) {
			snprintf(err, errlen, "store %s is damaged (%s) and cannot be moved aside: %s",
			         o->path, why, strerror(errno));
			goto fail;
		}
		log_error("cache", "store %s/data.mdb is damaged (%s): moved to %s, starting with an "
		          "empty cache", o->path, why, aside);
		if (env_open(c, o, err, errlen))
			goto fail;
	}
	pthread_mutex_init(&c->wq_lock, NULL);
	pthread_cond_init(&c->wq_cond, NULL);
	c->writer_started = pthread_create(&c->writer, NULL, writer_main, c) == 0;
	return c;
fail:
	free(c);
	return NULL;
}

/* Opens the environment and its databases.  Returns 0, or the LMDB/errno
 * code with the reason in err (c->env closed again). */
static int env_open(struct cache *c, const struct cache_opts *o, char *err, size_t errlen)
{
	MDB_txn *txn = NULL;
	int rc;
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
	 * for a cache means a few refetches.  Writers still commit atomically. */
	rc = mdb_env_open(c->env, o->path, MDB_NOTLS | MDB_NORDAHEAD | MDB_NOSYNC, 0640);
	if (rc) {
		snprintf(err, errlen, "lmdb: cannot open %s: %s", o->path, mdb_strerror(rc));
		goto fail;
	}
	int dead;
	mdb_reader_check(c->env, &dead); /* slots of a kill -9'd predecessor */
	if ((rc = mdb_txn_begin(c->env, NULL, 0, &txn)) ||
	    (rc = mdb_dbi_open(txn, "e", MDB_CREATE, &c->e)) ||
	    (rc = mdb_dbi_open(txn, "a", MDB_CREATE, &c->a)) ||
	    (rc = mdb_dbi_open(txn, "l", MDB_CREATE, &c->l)) ||
	    (rc = mdb_dbi_open(txn, "t", MDB_CREATE | MDB_DUPSORT, &c->t)) ||
	    (rc = mdb_dbi_open(txn, "m", MDB_CREATE, &c->m))) {
		if (txn)
			mdb_txn_abort(txn);
		snprintf(err, errlen, "lmdb: %s", mdb_strerror(rc));
		goto fail;
	}
	if ((rc = mdb_txn_commit(txn))) { /* frees txn either way */
		snprintf(err, errlen, "lmdb: %s", mdb_strerror(rc));
		goto fail;
	}
	return 0;
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
	if (c->writer_started) { /* drains the queue first */
		pthread_mutex_lock(&c->wq_lock);
		c->writer_stop = true;
		pthread_cond_signal(&c->wq_cond);
		pthread_mutex_unlock(&c->wq_lock);
		pthread_join(c->writer, NULL);
	}
	pthread_mutex_destroy(&c->wq_lock);
	pthread_cond_destroy(&c->wq_cond);
	cache_maintain(c);
	for (int i = 0; i < c->npool; i++)
		mdb_txn_abort(c->pool[i]);
	for (int i = 0; i < c->ntouch; i++)
		free(c->touch[i]);
	mdb_env_sync(c->env, 1);
	mdb_env_close(c->env);
	pthread_mutex_destroy(&c->pool_lock);
	pthread_mutex_destroy(&c->touch_lock);
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
		if (v) {
			/* Whitespace around the value does not select a new variant. */
			while (*v == ' ' || *v == '\t')
				v++;
			size_t vl = strlen(v);
			while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				vl--;
			buf_append(out, v, vl);
		}
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
	if (v.mv_size >= 4 && !memcmp(v.mv_data, vary_magic, 4)) {
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
	if (entry_decode(v.mv_data, v.mv_size, out) < 0) {
		log_warn("cache", "undecodable entry for %s ignored", key);
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
	MDB_val k = { 5, "bytes" }, v;
	uint64_t b = 0;
	if (mdb_get(t, c->m, &k, &v) == 0 && v.mv_size == 8)
		memcpy(&b, v.mv_data, 8);
	return b;
}

static int bytes_add(struct cache *c, MDB_txn *t, int64_t delta)
{
	uint64_t b = bytes_get(c, t);
	b = delta < 0 && (uint64_t)-delta > b ? 0 : b + (uint64_t)delta;
	MDB_val k = { 5, "bytes" }, v = { 8, &b };
	return mdb_put(t, c->m, &k, &v, 0);
}

/* Removes the LRU and access records of dbkey k. */
static void lru_del(struct cache *c, MDB_txn *t, const MDB_val *k)
{
	MDB_val av;
	if (mdb_get(t, c->a, (MDB_val *)k, &av) == 0 && av.mv_size == 8) {
		uint8_t lk[8 + DBKEY_MAX];
		uint64_t at;
		memcpy(&at, av.mv_data, 8);
		be64(lk, at);
		memcpy(lk + 8, k->mv_data, k->mv_size);
		MDB_val l = { 8 + k->mv_size, lk };
		mdb_del(t, c->l, &l, NULL);
		mdb_del(t, c->a, (MDB_val *)k, NULL);
	}
}

static int lru_set(struct cache *c, MDB_txn *t, const MDB_val *k, uint64_t at)
{
	lru_del(c, t, k);
	uint8_t lk[8 + DBKEY_MAX];
	be64(lk, at);
	memcpy(lk + 8, k->mv_data, k->mv_size);
	MDB_val l = { 8 + k->mv_size, lk }, empty = { 0, "" }, av = { 8, &at };
	int rc = mdb_put(t, c->l, &l, &empty, 0);
	if (!rc)
		rc = mdb_put(t, c->a, (MDB_val *)k, &av, 0);
	return rc;
}

/* Deletes the record at dbkey k (entry or Vary record) with its tags and LRU
 * records.  Returns 1 if an entry was removed, 0 otherwise. */
static int del_record(struct cache *c, MDB_txn *t, MDB_val *k)
{
	MDB_val v;
	if (mdb_get(t, c->e, k, &v) != 0)
		return 0;
	int was_entry = 0;
	struct entry_view ev;
	if (entry_decode(v.mv_data, v.mv_size, &ev) == 0) {
		was_entry = 1;
		for (size_t i = 0; i < ev.tags_len; i += strlen(ev.tags + i) + 1) {
			MDB_val tk = { strlen(ev.tags + i), (void *)(ev.tags + i) };
			mdb_del(t, c->t, &tk, k);
		}
	}
	bytes_add(c, t, -(int64_t)cost(k->mv_size, v.mv_size));
	lru_del(c, t, k);
	mdb_del(t, c->e, k, NULL);
	return was_entry;
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
		n += del_record(c, t, &dk);
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
			MDB_val mk = { 5, "bytes" }, mv = { 8, &z };
			mdb_put(t, c->m, &mk, &mv, 0);
			break;
		}
		MDB_val k = { rl - 8, row + 8 };
		del_record(c, t, &k);
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

/* Writes one entry inside write txn t (no commit).  Returns 0 or an LMDB
 * code; on error t must be aborted. */
static int store_in(struct cache *c, MDB_txn *t, const char *key, const char *vary,
                    cache_header_fn hdr, void *cls, const struct entry_meta *m, const char *hdrs,
                    size_t hdrs_len, const char *tags, size_t tags_len, const void *body,
                    uint64_t body_len)
{
	int rc;
	size_t vsize = entry_size(hdrs_len, tags_len, body_len);
	char pk[DBKEY_MAX];
	MDB_val pkey = { dbkey(key, strlen(key), pk), pk };
	struct buf names = BUF_INIT, sk = BUF_INIT;
	vary_names(vary, &names);
	MDB_val old;
	int have_old = mdb_get(t, c->e, &pkey, &old) == 0;
	int old_is_vary = have_old && old.mv_size >= 4 && !memcmp(old.mv_data, vary_magic, 4);
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
				rc = bytes_add(c, t, (int64_t)cost(pkey.mv_size, vr.len));
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
	del_record(c, t, &skey);
	MDB_val val = { vsize, NULL };
	if ((rc = mdb_put(t, c->e, &skey, &val, MDB_RESERVE)) != 0)
		goto fail;
	entry_write(val.mv_data, m, hdrs, hdrs_len, tags, tags_len, body, body_len);
	for (size_t i = 0; i < tags_len; i += strlen(tags + i) + 1) {
		size_t tl = strlen(tags + i);
		if (tl == 0 || tl > TAG_MAX)
			continue;
		MDB_val tk = { tl, (void *)(tags + i) };
		if ((rc = mdb_put(t, c->t, &tk, &skey, MDB_NODUPDATA)) != 0 && rc != MDB_KEYEXIST)
			goto fail;
	}
	if ((rc = lru_set(c, t, &skey, now_s())) != 0)
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

/* ---------- the writer: group commit ---------- */

#define WRITER_BATCH 64 /* stores per transaction at most */

static void job_run_alone(struct cache *c, struct cache_job *j)
{
	int rc = cache_store(c, j->key, j->vary, j->hdr, j->hcls, &j->m, j->hdrs, j->hdrs_len, j->tags,
	                     j->tags_len, j->body, j->body_len);
	j->done(j->cls, rc);
}

/* Stores jobs [first, end) in as few transactions as eviction allows.  A
 * failure aborts the open transaction: its jobs are then stored one by one
 * through cache_store(), which evicts harder on MAP_FULL. */
static void writer_batch(struct cache *c, struct cache_job *first, struct cache_job *end)
{
	MDB_txn *t = NULL;
	struct cache_job *open = first; /* first job of the open transaction */
	struct cache_job *j = first;
	int rc = mdb_txn_begin(c->env, NULL, 0, &t);
	for (; rc == 0 && j != end; j = j->next) {
		size_t vsize = entry_size(j->hdrs_len, j->tags_len, j->body_len);
		if (cost(DBKEY_MAX, vsize) > (uint64_t)((double)c->map_size * c->low) / 2) {
			rc = -1; /* cache_store() refuses it and counts it */
			break;
		}
		MDB_txn *before = t;
		if ((rc = make_room(c, &t, vsize, 0)) != 0)
			break;
		if (t != before) { /* the eviction committed the jobs so far */
			for (; open != j; open = open->next)
				open->done(open->cls, 0);
		}
		rc = store_in(c, t, j->key, j->vary, j->hdr, j->hcls, &j->m, j->hdrs, j->hdrs_len,
		              j->tags, j->tags_len, j->body, j->body_len);
	}
	if (rc == 0) {
		rc = mdb_txn_commit(t);
		t = NULL;
		if (rc == 0) {
			for (; open != end; open = open->next)
				open->done(open->cls, 0);
			return;
		}
	}
	if (t)
		mdb_txn_abort(t);
	for (; open != end; open = open->next)
		job_run_alone(c, open);
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
		struct cache_job *first = c->wq_head, *last = first;
		for (int n = 1; n < WRITER_BATCH && last->next; n++)
			last = last->next;
		c->wq_head = last->next;
		if (!c->wq_head)
			c->wq_tail = NULL;
		last->next = NULL;
		pthread_mutex_unlock(&c->wq_lock);
		struct cache_job *next;
		writer_batch(c, first, NULL);
		for (struct cache_job *j = first; j; j = next) {
			next = j->next;
			free(j);
		}
		pthread_mutex_lock(&c->wq_lock);
	}
	pthread_mutex_unlock(&c->wq_lock);
	return NULL;
}

void cache_store_async(struct cache *c, const char *key, const char *vary, cache_header_fn hdr,
                       void *hcls, const struct entry_meta *m, const char *hdrs, size_t hdrs_len,
                       const char *tags, size_t tags_len, const void *body, uint64_t body_len,
                       void (*done)(void *cls, int rc), void *cls)
{
	struct cache_job *j = xcalloc(1, sizeof *j);
	*j = (struct cache_job){ NULL, key, vary, hdr, hcls, *m, hdrs, tags, hdrs_len, tags_len,
		                 body, body_len, done, cls };
	pthread_mutex_lock(&c->wq_lock);
	if (!c->writer_started || c->writer_stop) {
		pthread_mutex_unlock(&c->wq_lock);
		job_run_alone(c, j); /* no writer: store synchronously */
		free(j);
		return;
	}
	if (c->wq_tail)
		c->wq_tail->next = j;
	else
		c->wq_head = j;
	c->wq_tail = j;
	pthread_cond_signal(&c->wq_cond);
	pthread_mutex_unlock(&c->wq_lock);
}

int cache_update(struct cache *c, const char *storage_key, const struct entry_meta *m,
                 const char *hdrs, size_t hdrs_len)
{
	MDB_txn *t;
	if (mdb_txn_begin(c->env, NULL, 0, &t) != 0)
		return -1;
	char kb[DBKEY_MAX];
	MDB_val k = { dbkey(storage_key, strlen(storage_key), kb), kb }, v;
	struct entry_view ev;
	if (mdb_get(t, c->e, &k, &v) != 0 || entry_decode(v.mv_data, v.mv_size, &ev) < 0)
		goto fail;
	size_t nsize = entry_size(hdrs_len, ev.tags_len, ev.body_len);
	/* The new value is built in memory first: the old one lives in the map
	 * and may be moved by the put. */
	uint8_t *nv = xmalloc(nsize);
	entry_write(nv, m, hdrs, hdrs_len, ev.tags, ev.tags_len, ev.body, ev.body_len);
	int64_t delta = (int64_t)cost(k.mv_size, nsize) - (int64_t)cost(k.mv_size, v.mv_size);
	MDB_val nval = { nsize, nv };
	int rc = mdb_put(t, c->e, &k, &nval, 0);
	free(nv);
	if (rc || bytes_add(c, t, delta) || lru_set(c, t, &k, now_s()))
		goto fail;
	return mdb_txn_commit(t) ? -1 : 0;
fail:
	mdb_txn_abort(t);
	return -1;
}

/* ---------- purge ---------- */

static long purge_prefix_bytes(struct cache *c, const char *p, size_t len)
{
	MDB_txn *t;
	if (mdb_txn_begin(c->env, NULL, 0, &t) != 0)
		return -1;
	long n = del_prefix(c, t, p, len);
	if (mdb_txn_commit(t) != 0)
		return -1;
	return n;
}

long cache_purge_key(struct cache *c, const char *key)
{
	/* The key itself and "key<SEP>..." variants: the prefix "key" would also
	 * catch "key2", so delete the exact key, then the SEP-prefixed range. */
	MDB_txn *t;
	if (mdb_txn_begin(c->env, NULL, 0, &t) != 0)
		return -1;
	char kb[DBKEY_MAX];
	MDB_val k = { dbkey(key, strlen(key), kb), kb };
	long n = del_record(c, t, &k);
	struct buf p = BUF_INIT;
	buf_puts(&p, key);
	char sep = CACHEKEY_VARY_SEP;
	buf_append(&p, &sep, 1);
	size_t pl = p.len > DBKEY_KEEP ? DBKEY_KEEP : p.len;
	n += del_prefix(c, t, p.data, pl);
	buf_free(&p);
	if (mdb_txn_commit(t) != 0)
		return -1;
	return n;
}

long cache_purge_prefix(struct cache *c, const char *prefix)
{
	size_t len = strlen(prefix);
	if (prefix[0] != '/')
		return purge_prefix_bytes(c, prefix, len > DBKEY_KEEP ? DBKEY_KEEP : len);
	/* A bare path prefix applies to every host: a full scan, O(entries). */
	MDB_txn *t;
	if (mdb_txn_begin(c->env, NULL, 0, &t) != 0)
		return -1;
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
	long n = todo_delete(c, t, &todo);
	if (mdb_txn_commit(t) != 0)
		return -1;
	return n;
}

long cache_purge_tag(struct cache *c, const char *tag)
{
	size_t tl = strlen(tag);
	if (tl == 0 || tl > TAG_MAX)
		return 0;
	MDB_txn *t;
	if (mdb_txn_begin(c->env, NULL, 0, &t) != 0)
		return -1;
	MDB_cursor *cur;
	struct buf todo = BUF_INIT;
	MDB_val k = { tl, (void *)tag }, v;
	if (mdb_cursor_open(t, c->t, &cur) == 0) {
		int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
		for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP)) {
			todo_push(&todo, v.mv_data, v.mv_size);
		}
		mdb_cursor_close(cur);
	}
	long n = todo_delete(c, t, &todo);
	MDB_val tk = { tl, (void *)tag };
	mdb_del(t, c->t, &tk, NULL);
	if (mdb_txn_commit(t) != 0)
		return -1;
	return n;
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
			MDB_val k = { dbkey(batch[i], strlen(batch[i]), kb), kb }, av;
			if (mdb_get(t, c->a, &k, &av) != 0 || av.mv_size != 8)
				continue; /* purged meanwhile */
			uint64_t at;
			memcpy(&at, av.mv_data, 8);
			if (at + TOUCH_GRANULARITY > now)
				continue;
			lru_set(c, t, &k, now);
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
	MDB_txn *t = rtxn_get(c);
	if (!t)
		return;
	MDB_stat st;
	if (mdb_stat(t, c->a, &st) == 0)
		s->entries = st.ms_entries;
	s->bytes = bytes_get(c, t);
	cache_ref_release(c, (struct cache_ref *)t);
}
