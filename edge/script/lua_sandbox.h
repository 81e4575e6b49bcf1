/* lua_sandbox.h -- the globals a script gets (an allow-list: everything else
 * is absent) and the private _ENV each script's modules run in.  Used by
 * the VM (lua_vm.c) to set a state up and to compile a version; it opens the
 * edge's Lua libraries (lua_req, lua_kv, lua_fetch, lua_pattern, lua_format)
 * into the state's hidden library table. */
#ifndef MINICDN_EDGE_LUA_SANDBOX_H
#define MINICDN_EDGE_LUA_SANDBOX_H

#include "edge/script/script_ver.h"

#include <lua.h>
#include <stddef.h>

/* A lua_CFunction, run once protected on a new state whose extra space
 * names its struct lua_vm: opens the standard libraries into a hidden
 * table, the edge's libraries next to them (kv over lua_core_site(L)->kv),
 * and removes every way to load code. */
int lua_sandbox_setup(lua_State *L);
/* Builds the environment of one script and compiles its modules.
 * Stack effect: pushes P (the _ENV proxy), E (its globals), MT (module chunks),
 * MM (the proxy's metatable).  Returns 0, or -1 with the compiler's message
 * (stack then unspecified: the caller resets it). */
int lua_sandbox_build_env(lua_State *L, struct script_ver *v, char *err, size_t errlen);
/* Makes the _ENV proxy whose metatable is at mm read-only (after loading). */
void lua_sandbox_seal(lua_State *L, int mm);

#endif
