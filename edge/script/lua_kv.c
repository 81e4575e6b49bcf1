/* lua_kv.c -- the kv library scripts use: kv.get / kv.set / kv.incr / kv.delete
 * over the edge's KV store (kv.h), in the running script's namespace */
#include "edge/script/lua_kv.h"
#include "edge/script/lua_core.h"
#include "edge/script/kv.h"
#include "common/buf.h"

#include <lauxlib.h>

/* Registry key of the store (a light userdata; absent: kv calls fail). */
static const char KV_KEY = 'K';

static struct kv *kv_of(lua_State *L)
{
	lua_rawgetp(L, LUA_REGISTRYINDEX, &KV_KEY);
	struct kv *kv = lua_touserdata(L, -1);
	lua_pop(L, 1);
	return kv;
}

static const char *ns_of(lua_State *L)
{
	struct script_ver *v = lua_core_current(L);
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
	int rc = kv_get(kv_of(L), ns_of(L), k, klen, &b);
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
	if (kv_set(kv_of(L), ns_of(L), k, klen, v, vlen, ttl) < 0) {
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
	if (kv_incr(kv_of(L), ns_of(L), k, klen, (long long)d, ttl, &out) < 0) {
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
	int rc = kv_del(kv_of(L), ns_of(L), k, klen);
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

int lua_kv_open(lua_State *L, struct kv *kv)
{
	lua_pushlightuserdata(L, kv);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &KV_KEY);
	luaL_newlib(L, kv_funcs);
	return 1;
}
