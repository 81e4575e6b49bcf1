/* lua_pattern.h -- string.find/match/gmatch/gsub whose matching steps count
 * against the running call's instruction budget (lua_core_charge). */
#ifndef MINICDN_EDGE_LUA_PATTERN_H
#define MINICDN_EDGE_LUA_PATTERN_H

#include <lua.h>

/* Replaces find/match/gmatch/gsub in the string library table at idx with
 * the step-limited versions (stack: 0).  The state's extra space must name
 * a struct lua_vm (lua_core.h). */
void lua_pattern_open(lua_State *L, int idx);

#endif
