/* lua_kv.c -- per-edge key-value store with TTLs (LMDB) and its Lua binding */
#include "edge/script/lua_kv.h"
#include "edge/script/lua_vm.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KV_SWEEP_EVERY 256
#define KV_SWEEP_MAX 64

static MDB_env *kv_env;
static MDB_dbi kv_dbi;
static atomic_ulong kv_writes;

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

int kv_init(MDB_env *env, char *err, size_t errlen)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(env, NULL, 0, &txn);
	if (!rc)
		rc = mdb_dbi_open(txn, "kv", MDB_CREATE, &kv_dbi);
	if (!rc)
		rc = mdb_txn_commit(txn);
	else if (txn)
		mdb_txn_abort(txn);
	if (rc) {
		snprintf(err, errlen, "kv store: %s", mdb_strerror(rc));
		return -1;
	}
	kv_env = env;
	return 0;
}

void kv_close(void)
{
	kv_env = NULL;
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

int kv_get(const char *ns, const char *key, size_t klen, struct buf *out)
{
	char kb[KV_MAX_KEY + 80];
	MDB_txn *txn;
	if (!kv_env || klen > KV_MAX_KEY || strlen(ns) > 70)
		return -1;
	MDB_val k = { make_key(kb, ns, key, klen), kb }, v;
	if (mdb_txn_begin(kv_env, NULL, MDB_RDONLY, &txn))
		return -1;
	int rc = mdb_get(txn, kv_dbi, &k, &v);
	int found = 0;
	if (rc == 0 && !expired(&v, wall_ms())) {
		buf_reset(out);
		buf_append(out, (const char *)v.mv_data + 8, v.mv_size - 8);
		found = 1;
	}
	mdb_txn_abort(txn);
	return rc == 0 || rc == MDB_NOTFOUND ? found : -1;
}

static void sweep_in(MDB_txn *txn, long max, long *removed)
{
	MDB_cursor *cur;
	MDB_val k, v;
	long long now = wall_ms();
	long seen = 0;
	if (mdb_cursor_open(txn, kv_dbi, &cur))
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

static int put(MDB_txn *txn, MDB_val *k, long long exp, const char *val, size_t vlen)
{
	MDB_val v = { vlen + 8, NULL };
	int rc = mdb_put(txn, kv_dbi, k, &v, MDB_RESERVE);
	if (rc)
		return rc;
	put_le64(v.mv_data, (uint64_t)exp);
	memcpy((char *)v.mv_data + 8, val, vlen);
	return 0;
}

static int commit(MDB_txn *txn)
{
	if (atomic_fetch_add(&kv_writes, 1) % KV_SWEEP_EVERY == KV_SWEEP_EVERY - 1) {
		long removed = 0;
		sweep_in(txn, KV_SWEEP_MAX, &removed);
	}
	int rc = mdb_txn_commit(txn);
	if (rc)
		log_warn("kv", "commit failed: %s", mdb_strerror(rc));
	return rc ? -1 : 0;
}

int kv_set(const char *ns, const char *key, size_t klen, const char *val, size_t vlen, double ttl_s)
{
	char kb[KV_MAX_KEY + 80];
	MDB_txn *txn;
	if (!kv_env || klen > KV_MAX_KEY || vlen > KV_MAX_VALUE || strlen(ns) > 70)
		return -1;
	MDB_val k = { make_key(kb, ns, key, klen), kb };
	long long exp = ttl_s > 0 ? wall_ms() + (long long)(ttl_s * 1000) : 0;
	if (mdb_txn_begin(kv_env, NULL, 0, &txn))
		return -1;
	if (put(txn, &k, exp, val, vlen)) {
		mdb_txn_abort(txn);
		return -1;
	}
	return commit(txn);
}

int kv_incr(const char *ns, const char *key, size_t klen, long long delta, double ttl_s,
            long long *out)
{
	char kb[KV_MAX_KEY + 80], num[32];
	MDB_txn *txn;
	MDB_val v;
	if (!kv_env || klen > KV_MAX_KEY || strlen(ns) > 70)
		return -1;
	MDB_val k = { make_key(kb, ns, key, klen), kb };
	if (mdb_txn_begin(kv_env, NULL, 0, &txn))
		return -1;
	long long now = wall_ms(), cur = 0, exp = ttl_s > 0 ? now + (long long)(ttl_s * 1000) : 0;
	int rc = mdb_get(txn, kv_dbi, &k, &v);
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
	if (put(txn, &k, exp, num, (size_t)n)) {
		mdb_txn_abort(txn);
		return -1;
	}
	*out = cur;
	return commit(txn);
}

int kv_del(const char *ns, const char *key, size_t klen)
{
	char kb[KV_MAX_KEY + 80];
	MDB_txn *txn;
	if (!kv_env || klen > KV_MAX_KEY || strlen(ns) > 70)
		return -1;
	MDB_val k = { make_key(kb, ns, key, klen), kb };
	if (mdb_txn_begin(kv_env, NULL, 0, &txn))
		return -1;
	int rc = mdb_del(txn, kv_dbi, &k, NULL);
	if (rc && rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return -1;
	}
	if (commit(txn) < 0)
		return -1;
	return rc == 0;
}

long kv_sweep(long max)
{
	MDB_txn *txn;
	long removed = 0;
	if (!kv_env || mdb_txn_begin(kv_env, NULL, 0, &txn))
		return 0;
	sweep_in(txn, max, &removed);
	if (mdb_txn_commit(txn))
		return 0;
	return removed;
}

long kv_count(void)
{
	MDB_txn *txn;
	MDB_stat st;
	if (!kv_env || mdb_txn_begin(kv_env, NULL, MDB_RDONLY, &txn))
		return 0;
	long n = mdb_stat(txn, kv_dbi, &st) ? 0 : (long)st.ms_entries;
	mdb_txn_abort(txn);
	return n;
}

/* ---------- Lua binding: kv.get / kv.set / kv.incr / kv.delete ---------- */

static const char *ns_of(lua_State *L)
{
	struct script_ver *v = lua_vm_current(L);
	if (!v)
		luaL_error(L, "kv is only available while handling a request");
	return v->b->name;
}

static const char *check_key(lua_State *L, size_t *klen)
{
	const char *k = luaL_checklstring(L, 1, klen);
	luaL_argcheck(L, *klen > 0 && *klen <= KV_MAX_KEY, 1, "key must be 1-256 bytes");
	return k;
}

/* kv.get(key) -> string | nil */
static int l_kv_get(lua_State *L)
{
	size_t klen;
	const char *k = check_key(L, &klen);
	struct buf b = BUF_INIT;
	int rc = kv_get(ns_of(L), k, klen, &b);
	if (rc == 1)
		lua_pushlstring(L, b.data ? b.data : "", b.len);
	else
		lua_pushnil(L);
	buf_free(&b);
	if (rc < 0) {
		lua_pushliteral(L, "kv store error");
		return 2;
	}
	return 1;
}

/* kv.set(key, value [, ttl_seconds]) -> true | nil, err */
static int l_kv_set(lua_State *L)
{
	size_t klen, vlen;
	const char *k = check_key(L, &klen);
	if (lua_type(L, 2) != LUA_TSTRING && lua_type(L, 2) != LUA_TNUMBER)
		return luaL_argerror(L, 2, "value must be a string or a number");
	const char *v = lua_tolstring(L, 2, &vlen);
	luaL_argcheck(L, vlen <= KV_MAX_VALUE, 2, "value larger than 64 KiB");
	double ttl = luaL_optnumber(L, 3, 0);
	if (kv_set(ns_of(L), k, klen, v, vlen, ttl) < 0) {
		lua_pushnil(L);
		lua_pushliteral(L, "kv store error (full?)");
		return 2;
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* kv.incr(key [, delta [, ttl_seconds]]) -> new integer value */
static int l_kv_incr(lua_State *L)
{
	size_t klen;
	const char *k = check_key(L, &klen);
	lua_Integer d = luaL_optinteger(L, 2, 1);
	double ttl = luaL_optnumber(L, 3, 0);
	long long out;
	if (kv_incr(ns_of(L), k, klen, (long long)d, ttl, &out) < 0) {
		lua_pushnil(L);
		lua_pushliteral(L, "kv store error (full?)");
		return 2;
	}
	lua_pushinteger(L, (lua_Integer)out);
	return 1;
}

/* kv.delete(key) -> true if it existed */
static int l_kv_delete(lua_State *L)
{
	size_t klen;
	const char *k = check_key(L, &klen);
	int rc = kv_del(ns_of(L), k, klen);
	lua_pushboolean(L, rc == 1);
	return 1;
}

static const luaL_Reg kv_funcs[] = {
	{ "get", l_kv_get },
	{ "set", l_kv_set },
	{ "incr", l_kv_incr },
	{ "delete", l_kv_delete },
	{ NULL, NULL },
};

int lua_kv_open(lua_State *L)
{
	luaL_newlib(L, kv_funcs);
	return 1;
}
