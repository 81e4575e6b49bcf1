/* kv.c -- per-edge key-value store with TTLs (LMDB) */
#include "edge/script/kv.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KV_SWEEP_EVERY 256
#define KV_SWEEP_MAX 64

struct kv {
	MDB_env *env; /* borrowed */
	MDB_dbi dbi;
	atomic_ulong writes;
};

static long long wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

struct kv *kv_open(MDB_env *env, char *err, size_t errlen)
{
	MDB_txn *txn;
	MDB_dbi dbi;
	int rc = mdb_txn_begin(env, NULL, 0, &txn);
	if (!rc)
		rc = mdb_dbi_open(txn, "kv", MDB_CREATE, &dbi);
	if (!rc)
		rc = mdb_txn_commit(txn);
	else if (txn)
		mdb_txn_abort(txn);
	if (rc) {
		snprintf(err, errlen, "kv store: %s", mdb_strerror(rc));
		return NULL;
	}
	struct kv *kv = xcalloc(1, sizeof *kv);
	kv->env = env;
	kv->dbi = dbi;
	return kv;
}

void kv_close(struct kv *kv)
{
	free(kv);
}

/* Builds "ns\0key" into k (KV_MAX_KEY + ns room). */
static size_t make_key(char *k, const char *ns, const char *key, size_t klen)
{
	size_t nl = strlen(ns);
	memcpy(k, ns, nl);
	k[nl] = 0;
	memcpy(k + nl + 1, key, klen);
	return nl + 1 + klen;
}

static bool expired(const MDB_val *v, long long now)
{
	if (v->mv_size < 8)
		return true;
	uint64_t exp = get_le64(v->mv_data);
	return exp && (long long)exp <= now;
}

int kv_get(struct kv *kv, const char *ns, const char *key, size_t klen, struct buf *out)
{
	char kb[KV_MAX_KEY + 80];
	MDB_txn *txn;
	if (!kv || klen > KV_MAX_KEY || strlen(ns) > 70)
		return -1;
	MDB_val k = { make_key(kb, ns, key, klen), kb }, v;
	if (mdb_txn_begin(kv->env, NULL, MDB_RDONLY, &txn))
		return -1;
	int rc = mdb_get(txn, kv->dbi, &k, &v);
	int found = 0;
	if (rc == 0 && !expired(&v, wall_ms())) {
		buf_reset(out);
		buf_append(out, (const char *)v.mv_data + 8, v.mv_size - 8);
		found = 1;
	}
	mdb_txn_abort(txn);
	return rc == 0 || rc == MDB_NOTFOUND ? found : -1;
}

static void sweep_in(struct kv *kv, MDB_txn *txn, long max, long *removed)
{
	MDB_cursor *cur;
	MDB_val k, v;
	long long now = wall_ms();
	long seen = 0;
	if (mdb_cursor_open(txn, kv->dbi, &cur))
		return;
	/* Start at a random-ish place so repeated small sweeps cover the whole db. */
	uint8_t start[8];
	put_le64(start, (uint64_t)rand());
	k.mv_data = start;
	k.mv_size = 1;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (rc)
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	while (!rc && seen < max * 4 && *removed < max) {
		seen++;
		if (expired(&v, now)) {
			if (mdb_cursor_del(cur, 0))
				break;
			(*removed)++;
			rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
			if (rc == MDB_NOTFOUND)
				break;
			continue;
		}
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
}

static int put(struct kv *kv, MDB_txn *txn, MDB_val *k, long long exp, const char *val, size_t vlen)
{
	MDB_val v = { vlen + 8, NULL };
	int rc = mdb_put(txn, kv->dbi, k, &v, MDB_RESERVE);
	if (rc)
		return rc;
	put_le64(v.mv_data, (uint64_t)exp);
	memcpy((char *)v.mv_data + 8, val, vlen);
	return 0;
}

static int commit(struct kv *kv, MDB_txn *txn)
{
	if (atomic_fetch_add(&kv->writes, 1) % KV_SWEEP_EVERY == KV_SWEEP_EVERY - 1) {
		long removed = 0;
		sweep_in(kv, txn, KV_SWEEP_MAX, &removed);
	}
	int rc = mdb_txn_commit(txn);
	if (rc)
		log_warn("kv", "commit failed: %s", mdb_strerror(rc));
	return rc ? -1 : 0;
}

int kv_set(struct kv *kv, const char *ns, const char *key, size_t klen, const char *val,
           size_t vlen, double ttl_s)
{
	char kb[KV_MAX_KEY + 80];
	MDB_txn *txn;
	if (!kv || klen > KV_MAX_KEY || vlen > KV_MAX_VALUE || strlen(ns) > 70)
		return -1;
	MDB_val k = { make_key(kb, ns, key, klen), kb };
	long long exp = ttl_s > 0 ? wall_ms() + (long long)(ttl_s * 1000) : 0;
	if (mdb_txn_begin(kv->env, NULL, 0, &txn))
		return -1;
	if (put(kv, txn, &k, exp, val, vlen)) {
		mdb_txn_abort(txn);
		return -1;
	}
	return commit(kv, txn);
}

int kv_incr(struct kv *kv, const char *ns, const char *key, size_t klen, long long delta,
            double ttl_s, long long *out)
{
	char kb[KV_MAX_KEY + 80], num[32];
	MDB_txn *txn;
	MDB_val v;
	if (!kv || klen > KV_MAX_KEY || strlen(ns) > 70)
		return -1;
	MDB_val k = { make_key(kb, ns, key, klen), kb };
	if (mdb_txn_begin(kv->env, NULL, 0, &txn))
		return -1;
	long long now = wall_ms(), cur = 0, exp = ttl_s > 0 ? now + (long long)(ttl_s * 1000) : 0;
	int rc = mdb_get(txn, kv->dbi, &k, &v);
	if (rc == 0 && !expired(&v, now)) {
		size_t n = v.mv_size - 8 < sizeof num - 1 ? v.mv_size - 8 : sizeof num - 1;
		memcpy(num, (const char *)v.mv_data + 8, n);
		num[n] = 0;
		cur = strtoll(num, NULL, 10);
		exp = (long long)get_le64(v.mv_data); /* keep the existing expiry */
	} else if (rc != 0 && rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return -1;
	}
	cur += delta;
	int n = snprintf(num, sizeof num, "%lld", cur);
	if (put(kv, txn, &k, exp, num, (size_t)n)) {
		mdb_txn_abort(txn);
		return -1;
	}
	*out = cur;
	return commit(kv, txn);
}

int kv_del(struct kv *kv, const char *ns, const char *key, size_t klen)
{
	char kb[KV_MAX_KEY + 80];
	MDB_txn *txn;
	if (!kv || klen > KV_MAX_KEY || strlen(ns) > 70)
		return -1;
	MDB_val k = { make_key(kb, ns, key, klen), kb };
	if (mdb_txn_begin(kv->env, NULL, 0, &txn))
		return -1;
	int rc = mdb_del(txn, kv->dbi, &k, NULL);
	if (rc && rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return -1;
	}
	if (commit(kv, txn) < 0)
		return -1;
	return rc == 0;
}

long kv_sweep(struct kv *kv, long max)
{
	MDB_txn *txn;
	long removed = 0;
	if (!kv || mdb_txn_begin(kv->env, NULL, 0, &txn))
		return 0;
	sweep_in(kv, txn, max, &removed);
	if (mdb_txn_commit(txn))
		return 0;
	return removed;
}

long kv_count(struct kv *kv)
{
	MDB_txn *txn;
	MDB_stat st;
	if (!kv || mdb_txn_begin(kv->env, NULL, MDB_RDONLY, &txn))
		return 0;
	long n = mdb_stat(txn, kv->dbi, &st) ? 0 : (long)st.ms_entries;
	mdb_txn_abort(txn);
	return n;
}
