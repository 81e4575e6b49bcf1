/* lua_format.h -- string.format with a fast path for the plain %s / %d / %%
 * conversions (results identical to Lua's own). */
#ifndef MINICDN_EDGE_LUA_FORMAT_H
#define MINICDN_EDGE_LUA_FORMAT_H

#include <lua.h>

/* Replaces format in the string library table at idx (stack: 0); Lua's own
 * format is kept for every other case. */
void lua_format_open(lua_State *L, int idx);

#endif
