/* purge.c -- purges inside the writer's transaction, and the recent purges
 * a store is checked against.
 *
 * writer.c runs a queued purge here (purge_in) and asks purge_covers()
 * before each store; the public cache_purge_* functions that queue them
 * live in writer.c.  Calls: records.c (deletion) only. */
#include "edge/cache/store_int.h"
#include "edge/cache/cachekey.h"
#include "common/xmalloc.h"

#include <stdlib.h>
#include <string.h>

/* ---------- purges against fetches still running ---------- */

/* The path of a storage key "scope://host/path" (NULL if it has none). */
static const char *key_path(const char *key, size_t kl)
{
	const char *sep = kl > 3 ? memmem(key, kl, "://", 3) : NULL;
	if (!sep)
		return NULL;
	sep += 3;
	return memchr(sep, '/', kl - (size_t)(sep - key));
}

/* A scoped purge argument "scope:///path" or "scope://<SEP>tag" (see
 * cache.h): the length of "scope://", 0 if arg is not scoped. */
static size_t scope_len(const char *arg, char next)
{
	const char *sep = arg[0] == '/' ? NULL : strstr(arg, "://");
	return sep && sep != arg && sep[3] == next ? (size_t)(sep + 3 - arg) : 0;
}

/* Whether a storage key's path starts with prefix ("/p": every scope;
 * "scope:///p": that scope's), or for an absolute prefix the key itself:
 * the purge's own matching. */
static bool prefix_covers(const char *key, const char *prefix)
{
	size_t len = strlen(prefix), kl = strlen(key);
	size_t sl = scope_len(prefix, '/');
	if (prefix[0] != '/' && !sl) {
		len = len > DBKEY_KEEP ? DBKEY_KEEP : len;
		return kl >= len && !memcmp(key, prefix, len);
	}
	if (sl && (kl < sl || memcmp(key, prefix, sl)))
		return false;
	const char *e = key_path(key, kl);
	return e && strlen(e) >= len - sl && !memcmp(e, prefix + sl, len - sl);
}

/* Whether tag purge arg covers a response with tag in storage key key. */
static bool tag_covers(const char *arg, const char *key, const char *tag)
{
	size_t sl = scope_len(arg, CACHEKEY_VARY_SEP);
	if (!sl)
		return !strcmp(tag, arg);
	return !strcmp(tag, arg + sl + 1) && !strncmp(key, arg, sl);
}

/* Whether a purge of purged covers a store under key: the key itself, or a
 * key under it ("purged<SEP>...": a large object's slices, slice.h), which
 * the purge deleted with it. */
static bool key_covers(const char *key, const char *purged)
{
	size_t n = strlen(purged);
	return !strncmp(key, purged, n) && (key[n] == '\0' || key[n] == CACHEKEY_VARY_SEP);
}

uint64_t cache_purge_seq(struct cache *c)
{
	return atomic_load(&c->purges) + 1;
}

/* Remembers a purge (called inside its write transaction). */
static void purge_remember(struct cache *c, enum cache_purge_kind kind, const char *arg)
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
 * remembered.  Cost: nothing when no purge ran since the request (the
 * usual store); else a scan of them, under the writer's transaction. */
bool purge_covers(struct cache *c, const char *key, const char *tags, size_t tags_len,
                  const struct entry_meta *m)
{
	/* purges only grows, inside a purge's write transaction; ours excludes
	 * it, so a purge not counted yet commits after this store and removes
	 * what it covers itself. */
	if (m->purge_seq && atomic_load(&c->purges) < m->purge_seq)
		return false;
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
		case CACHE_PURGE_KEY: hit = key_covers(key, p->arg); break;
		case CACHE_PURGE_PREFIX: hit = prefix_covers(key, p->arg); break;
		case CACHE_PURGE_TAG:
			for (size_t j = 0; j < tags_len && !hit; j += strlen(tags + j) + 1)
				hit = tag_covers(p->arg, key, tags + j);
			break;
		default: break;
		}
	}
	pthread_mutex_unlock(&c->recent_lock);
	return hit;
}

/* ---------- purges (inside the writer's transaction) ---------- */

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
	size_t sl = scope_len(prefix, '/');
	if (prefix[0] != '/' && !sl)
		return del_prefix(c, t, prefix, len > DBKEY_KEEP ? DBKEY_KEEP : len);
	/* A bare path prefix applies to every host (of one scope, or of all):
	 * a scan of the references, O(entries) (small records: many per page);
	 * a scoped one starts at its scope's keys and stops after them. */
	MDB_cursor *cur;
	struct buf todo = BUF_INIT;
	if (mdb_cursor_open(t, c->e, &cur) == 0) {
		MDB_val k = { sl, (void *)prefix }, v;
		int rc = mdb_cursor_get(cur, &k, &v, sl ? MDB_SET_RANGE : MDB_FIRST);
		for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			const char *s = k.mv_data;
			size_t kl = k.mv_size;
			if (sl && (kl < sl || memcmp(s, prefix, sl)))
				break;
			const char *e = key_path(s, kl);
			if (!e || (size_t)(s + kl - e) < len - sl || memcmp(e, prefix + sl, len - sl))
				continue;
			todo_push(&todo, s, kl);
		}
		mdb_cursor_close(cur);
	}
	return todo_delete(c, t, &todo);
}

static long purge_tag_in(struct cache *c, MDB_txn *t, const char *arg)
{
	size_t sl = scope_len(arg, CACHEKEY_VARY_SEP);
	const char *tag = sl ? arg + sl + 1 : arg;
	size_t tl = strlen(tag);
	if (tl == 0 || tl > TAG_MAX)
		return 0;
	MDB_cursor *cur;
	struct buf todo = BUF_INIT;
	MDB_val k = { tl, (void *)tag }, v;
	if (mdb_cursor_open(t, c->t, &cur) == 0) {
		int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
		for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP))
			if (!sl || (v.mv_size >= sl && !memcmp(v.mv_data, arg, sl)))
				todo_push(&todo, v.mv_data, v.mv_size);
		mdb_cursor_close(cur);
	}
	long n = todo_delete(c, t, &todo);
	if (!sl) { /* a scoped purge leaves other scopes' links to the tag */
		MDB_val tk = { tl, (void *)tag };
		mdb_del(t, c->t, &tk, NULL);
	}
	return n;
}

long purge_in(struct cache *c, MDB_txn *t, enum cache_purge_kind kind, const char *arg)
{
	purge_remember(c, kind, arg);
	switch (kind) {
	case CACHE_PURGE_KEY: return purge_key_in(c, t, arg);
	case CACHE_PURGE_PREFIX: return purge_prefix_in(c, t, arg);
	case CACHE_PURGE_TAG: return purge_tag_in(c, t, arg);
	default: return 0;
	}
}

void purge_memory_free(struct cache *c)
{
	for (int i = 0; i < RECENT_PURGES; i++)
		free(c->recent[i].arg);
}
