/* lua_kv.h -- the kv library of edge scripts:
 *   kv.get(key) -> string | nil        kv.set(key, value [, ttl]) -> true | nil, err
 *   kv.incr(key [, delta [, ttl]]) -> n kv.delete(key) -> existed
 * Keys live in the running script's own namespace of the store (kv.h). */
#ifndef MINICDN_EDGE_LUA_KV_H
#define MINICDN_EDGE_LUA_KV_H

#include <lua.h>

struct kv;

/* Records kv (borrowed: must outlive the state; NULL: every call fails) in
 * L's registry and pushes the library table (stack: +1). */
int lua_kv_open(lua_State *L, struct kv *kv);

#endif
