/* lua_req.h -- the request table a script's handle(req) receives and the
 * response it returns (fields in lua_req.c and docs/scripts.md). */
#ifndef MINICDN_EDGE_LUA_REQ_H
#define MINICDN_EDGE_LUA_REQ_H

#include "edge/script/script_io.h"

#include <lua.h>

/* Registers the metatables of req, req.headers and req.args in L's
 * registry (stack: 0); once per state, before lua_req_push. */
void lua_req_open(lua_State *L);
/* Pushes the request table of the running call (stack: +1).  Its fields are
 * computed when read, from the call's request (lua_core_request). */
void lua_req_push(lua_State *L, const struct script_req *req, const char *region);
/* Converts the value at idx (handle's return) into resp.  Returns 1 if a
 * response, 0 for nil, -1 with a reason if the value is not a valid response. */
int lua_req_response(lua_State *L, int idx, struct script_resp *resp, char *err, size_t errlen);

#endif
