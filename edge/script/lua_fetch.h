/* lua_fetch.h -- fetch(path [, opts]): bounded subrequests from scripts to
 * the edge's origin or its cache (semantics in lua_fetch.c). */
#ifndef MINICDN_EDGE_LUA_FETCH_H
#define MINICDN_EDGE_LUA_FETCH_H

#include <lua.h>

/* Pushes the fetch function (stack: +1); scripts get it as a global. */
int lua_fetch_open(lua_State *L);

#endif
