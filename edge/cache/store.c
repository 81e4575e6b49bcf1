/* store.c -- the read side of the store: pooled read transactions, lookup,
 * variant keys; and the small writes that do not go through the writer
 * (LRU touches, a synchronous 304 update), and stats.
 *
 * A hit costs two B-tree lookups and no write: its access is queued
 * (cache_touch) and written once a second by cache_maintain.  Calls:
 * records.c (LRU rows, references, accounting) and badset.c (bodies from
 * before an unclean stop); never writer.c, purge.c or check.c. */
#include "edge/cache/store_int.h"
#include "edge/cache/cachekey.h"
#include "edge/cache/vary.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------- read transactions (pooled: renew is much cheaper than begin) ---------- */

MDB_txn *rtxn_get(struct cache *c)
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

void store_free(struct cache *c)
{
	for (int i = 0; i < c->npool; i++)
		mdb_txn_abort(c->pool[i]);
	for (int i = 0; i < c->ntouch; i++)
		free(c->touch[i]);
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
void vary_names(const char *vary, struct buf *out)
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
void variant_from_names(const char *key, const char *names, size_t len, cache_header_fn hdr,
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
	    !badset_body_ok(c, r.id, &v)) {
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

/* ---------- update after a 304 ---------- */

int cache_update(struct cache *c, const char *storage_key, const struct entry_meta *m,
                 const char *hdrs, size_t hdrs_len)
{
	MDB_txn *t;
	if (mdb_txn_begin(c->env, NULL, 0, &t) != 0)
		return -1;
	int rc = update_in(c, t, storage_key, m, hdrs, hdrs_len);
	if (rc) {
		mdb_txn_abort(t);
		return -1;
	}
	return mdb_txn_commit(t) ? -1 : 0;
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
	s->bad_bodies = badset_count(c);
	MDB_txn *t = rtxn_get(c);
	if (!t)
		return;
	MDB_stat st;
	if (mdb_stat(t, c->b, &st) == 0)
		s->entries = st.ms_entries;
	s->bytes = bytes_get(c, t);
	cache_ref_release(c, (struct cache_ref *)t);
}
