/* records.c -- one object's records inside a write transaction: size
 * accounting, LRU rows, references, bodies, 304 updates, deletion,
 * eviction.
 *
 * Every function here takes an open write transaction and neither begins
 * nor commits one, except make_room (eviction's pages are only reused
 * after a commit).  Used by writer.c, purge.c, store.c (touches, updates)
 * and check.c; calls nothing of theirs: only LMDB, entry.h and store_int.h. */
#include "edge/cache/store_int.h"
#include "edge/cache/cachekey.h"
#include "common/xmalloc.h"

#include <stdlib.h>

#include <string.h>

static void be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void ref_encode(uint8_t *p, uint64_t id, uint64_t at)
{
	memcpy(p, ref_magic, 4);
	memcpy(p + 4, &id, 8);
	memcpy(p + 12, &at, 8);
}

/* ---------- accounting ---------- */

uint64_t bytes_get(struct cache *c, MDB_txn *t)
{
	MDB_val v;
	uint64_t b = 0;
	if (mdb_get(t, c->m, (MDB_val *)&m_bytes, &v) == 0 && v.mv_size == 8)
		memcpy(&b, v.mv_data, 8);
	return b;
}

int bytes_add(struct cache *c, MDB_txn *t, int64_t delta)
{
	uint64_t b = bytes_get(c, t);
	b = delta < 0 && (uint64_t)-delta > b ? 0 : b + (uint64_t)delta;
	MDB_val v = { 8, &b };
	return mdb_put(t, c->m, (MDB_val *)&m_bytes, &v, 0);
}

/* ---------- LRU rows, references, bodies ---------- */

/* The LRU row of dbkey k accessed at `at`: be64(at) + k. */
static MDB_val lru_row(uint8_t *row, const MDB_val *k, uint64_t at)
{
	be64(row, at);
	memcpy(row + 8, k->mv_data, k->mv_size);
	return (MDB_val){ 8 + k->mv_size, row };
}

void lru_drop(struct cache *c, MDB_txn *t, const MDB_val *k, uint64_t at)
{
	uint8_t row[8 + DBKEY_MAX];
	MDB_val l = lru_row(row, k, at);
	mdb_del(t, c->l, &l, NULL);
}

int lru_put(struct cache *c, MDB_txn *t, const MDB_val *k, uint64_t at)
{
	uint8_t row[8 + DBKEY_MAX];
	MDB_val l = lru_row(row, k, at), empty = { 0, "" };
	return mdb_put(t, c->l, &l, &empty, 0);
}

/* Points dbkey k at body id, accessed at `at`. */
int ref_put(struct cache *c, MDB_txn *t, const MDB_val *k, uint64_t id, uint64_t at)
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
int body_reserve(struct cache *c, MDB_txn *t, size_t vsize, uint64_t *id, void **dst)
{
	size_t bk;
	*id = c->next_id++;
	MDB_val k = body_key(&bk, *id), v = { vsize, NULL };
	int rc = mdb_put(t, c->b, &k, &v, MDB_APPEND | MDB_RESERVE);
	if (rc == 0)
		*dst = v.mv_data;
	return rc;
}

/* ---------- update after a 304 ---------- */

int update_in(struct cache *c, MDB_txn *t, const char *storage_key, const struct entry_meta *m,
              const char *hdrs, size_t hdrs_len)
{
	char kb[DBKEY_MAX];
	MDB_val k = { dbkey(storage_key, strlen(storage_key), kb), kb }, v;
	struct entry_view ev;
	struct ref r;
	size_t bk;
	MDB_val bkey;
	if (mdb_get(t, c->e, &k, &v) != 0 || ref_decode(&v, &r) < 0)
		return REC_GONE;
	bkey = body_key(&bk, r.id);
	if (mdb_get(t, c->b, &bkey, &v) != 0 || entry_decode(v.mv_data, v.mv_size, &ev) < 0)
		return REC_GONE;
	size_t nsize = entry_size(hdrs_len, ev.tags_len, ev.body_len);
	/* The new value is built in memory first: the old one lives in the map
	 * and may be moved by the put.  Meta, headers and body share one record
	 * (a 1 KiB object fits three to a page that way), so a 304 rewrites the
	 * body record in place under the same id. */
	uint8_t *nv = xmalloc(nsize);
	entry_write(nv, m, hdrs, hdrs_len, ev.tags, ev.tags_len, ev.body, ev.body_len);
	int64_t delta = (int64_t)cost(k.mv_size, nsize) - (int64_t)cost(k.mv_size, v.mv_size);
	MDB_val nval = { nsize, nv };
	int rc = mdb_put(t, c->b, &bkey, &nval, 0);
	free(nv);
	/* Same-sized headers (the usual 304: a new Date) leave the count as it
	 * is, and an access younger than the LRU's granularity is not moved:
	 * either would be two more B-tree writes per revalidation. */
	if (rc == 0 && delta)
		rc = bytes_add(c, t, delta);
	uint64_t now = now_s();
	if (rc || r.at + TOUCH_GRANULARITY > now)
		return rc;
	lru_drop(c, t, &k, r.at);
	if ((rc = lru_put(c, t, &k, now)) == 0)
		rc = ref_put(c, t, &k, r.id, now);
	return rc;
}

/* ---------- deletion ---------- */

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
int del_record(struct cache *c, MDB_txn *t, MDB_val *k, bool keep_vary)
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
void todo_push(struct buf *todo, const void *key, size_t len)
{
	uint32_t l32 = (uint32_t)len;
	buf_append(todo, &l32, 4);
	buf_append(todo, key, len);
}

/* Deletes every record on the todo list and frees it; returns how many went. */
long todo_delete(struct cache *c, MDB_txn *t, struct buf *todo)
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
long del_prefix(struct cache *c, MDB_txn *t, const char *prefix, size_t len)
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

/* ---------- eviction: the oldest access first ---------- */

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

/* Makes room for an entry of vsize bytes in write txn *t: when the store is
 * above the high-water mark (or evict_to is set), evicts and commits, then
 * begins a new *t (pages freed in a transaction can only be reused by the
 * next one).  Returns 0, or an LMDB code with *t gone. */
int make_room(struct cache *c, MDB_txn **t, size_t vsize, uint64_t evict_to)
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

