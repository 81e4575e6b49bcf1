/* lua_vm.h -- one sandboxed Lua 5.4 state: allow-listed globals, a memory cap
 * (custom allocator), an instruction budget (count hook) and a wall-clock
 * budget per call, compiled script versions cached by version.
 *
 * A state is used by one thread at a time (the edge keeps one per worker
 * thread, lua_vm_thread()); requests run in coroutines of it (tasks), which
 * may yield while a subrequest is in flight.  Each script gets its own _ENV: a read-only view of
 * its globals (writable while its modules load, read-only during requests) in
 * front of private copies of the standard tables, so a script can change
 * neither another script nor the shared string metatable. */
#ifndef MINICDN_EDGE_LUA_VM_H
#define MINICDN_EDGE_LUA_VM_H

#include "edge/script/script.h"

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

struct lua_vm_limits {
	size_t memory;            /* bytes per state */
	long long instructions;   /* per call */
	int time_ms;              /* per call */
	int fetch_timeout_ms;
	int max_fetches;
	size_t fetch_max_body;
};

/* What the edge tells scripts about itself; copied. */
struct lua_vm_site {
	const char *edge_name, *edge_region, *origin;
};

struct lua_vm;

/* New state with the sandbox set up.  NULL only if Lua cannot start within the
 * memory cap (too small). */
struct lua_vm *lua_vm_new(const struct lua_vm_limits *lim, const struct lua_vm_site *site);
void lua_vm_free(struct lua_vm *vm);

/* The calling thread's state, created on first use (freed at thread exit).
 * gen is the registry generation: a change drops compiled versions that are no
 * longer active.  Returns NULL if lua_vm_init_threads was not called. */
struct lua_vm *lua_vm_thread(void);
void lua_vm_init_threads(const struct lua_vm_limits *lim, const struct lua_vm_site *site);
void lua_vm_fini_threads(void);

/* Compiles every module of v (text only: binary chunks refused) and runs the
 * entry module under the budget; handle must then be a function.  Returns 0,
 * or -1 with a reason ("main:3: ...").  Cached by v->seq: a second call is free. */
int lua_vm_compile(struct lua_vm *vm, struct script_ver *v, char *err, size_t errlen);

/* When gen differs from the last call's, drops compiled code of versions
 * whose seq is not in keep[0..n) (they were replaced or removed). */
void lua_vm_sync(struct lua_vm *vm, uint64_t gen, const uint64_t *keep, size_t n);

enum lua_vm_status {
	LVM_RESPONSE,   /* resp filled */
	LVM_PASS,       /* handle returned nil */
	LVM_ERROR,      /* failed: kind/err say why */
	LVM_YIELD,      /* waiting for a subrequest: *task set, see lua_vm_resume */
};

/* A call of handle() runs in a coroutine ("task") taken from a small
 * per-state pool, so a script waiting for the origin yields instead of
 * blocking the worker thread.  Several tasks of one state can be waiting at
 * once; they share the state's memory cap, each has its own instruction
 * count, wall-clock deadline and subrequest count. */
struct lua_task;

/* Runs v's handle(req) under the budgets.  On LVM_ERROR *kind and err are set.
 * region: the client's region (borrowed), or NULL to look it up only if the
 * script reads req.region.  LVM_YIELD: *task is the waiting call (req is
 * copied into it; the strings it points to must stay valid until the task
 * ends), finished by lua_vm_resume or lua_vm_abort on this same thread. */
enum lua_vm_status lua_vm_call(struct lua_vm *vm, struct script_ver *v, const struct script_req *req,
                               const char *region, struct script_resp *resp, enum script_err *kind,
                               char *err, size_t errlen, struct lua_task **task);
/* Continues a task whose subrequest completed (its wake callback ran).
 * Returns as lua_vm_call; LVM_YIELD again if the script waits for another
 * subrequest (or the wake was early).  Otherwise the task is gone. */
enum lua_vm_status lua_vm_resume(struct lua_task *t, struct script_resp *resp, enum script_err *kind,
                                 char *err, size_t errlen);
/* Ends a waiting task without running it further (client gone, shutdown):
 * its subrequest is cancelled and the coroutine returned to the pool. */
void lua_vm_abort(struct lua_task *t);
/* Tasks of vm waiting right now. */
int lua_vm_waiting(const struct lua_vm *vm);

/* Bytes currently allocated by the state. */
size_t lua_vm_memory(const struct lua_vm *vm);

/* ---------- for the binding files (lua_req.c, lua_kv.c, lua_fetch.c) ---------- */

/* The vm owning L (kept in the state's extra space, invisible to scripts). */
struct lua_vm *lua_vm_of(lua_State *L);
/* Script running now (NULL outside a call). */
struct script_ver *lua_vm_current(lua_State *L);
const struct lua_vm_limits *lua_vm_limits(lua_State *L);
const struct lua_vm_site *lua_vm_site(lua_State *L);
/* Milliseconds left of the wall-clock budget of the current call. */
int lua_vm_time_left_ms(lua_State *L);
/* For a C function about to lua_yieldk (lua_fetch.c): what the task waits
 * for.  ready(p) runs on the worker thread when the task is to be resumed:
 * 1 if p is complete (the continuation of the yielding function then takes p
 * over and frees it), 0 if not (it re-armed its wake-up; the task keeps
 * waiting).  cancel(p) frees p without running Lua (lua_vm_abort, state
 * closed). */
void lua_vm_set_pending(lua_State *L, void *p, int (*ready)(void *p), void (*cancel)(void *p));
/* The request being handled, if tbl is its request table or its
 * req.headers or req.args table (NULL outside a call or for tables of past
 * requests). */
const struct script_req *lua_vm_request(lua_State *L, const void *tbl);
enum lua_vm_view { LUA_VM_VIEW_HEADERS, LUA_VM_VIEW_ARGS };
/* Records tbl as the running call's req.headers or req.args table. */
void lua_vm_set_view_table(lua_State *L, enum lua_vm_view view, const void *tbl);
/* The client's region given to lua_vm_call, or NULL (then computed on read). */
const char *lua_vm_region(lua_State *L);
/* The request of the call running now (NULL outside a call). */
const struct script_req *lua_vm_current_req(lua_State *L);
/* Charges n units of work done in C (pattern matching steps) to the current
 * call's instruction budget, and checks the wall clock; raises the budget
 * error (which pcall cannot catch) when either is exceeded. */
void lua_vm_charge(lua_State *L, long long n);
/* Replaces find/match/gmatch/gsub in the string library table at idx with
 * step-limited versions (edge/lua_pattern.c). */
void lua_pattern_open(lua_State *L, int idx);
/* Replaces format in the string library table at idx with a version that
 * builds the plain %s / %d / %% cases itself (edge/lua_format.c). */
void lua_format_open(lua_State *L, int idx);
/* Counts a subrequest; raises a Lua error when over the per-call limit. */
void lua_vm_count_fetch(lua_State *L);

/* Pushes the request table for req (stack: +1). */
void lua_req_push(lua_State *L, const struct script_req *req, const char *region);
/* Converts the value at idx (handle's return) into resp.  Returns 1 if a
 * response, 0 for nil, -1 with a reason if the value is not a valid response. */
int lua_req_response(lua_State *L, int idx, struct script_resp *resp, char *err, size_t errlen);
/* Registers req helpers shared by all scripts (metatables). */
void lua_req_open(lua_State *L);

/* Library tables copied into each script's environment; each pushes one table. */
int lua_kv_open(lua_State *L);
int lua_fetch_open(lua_State *L);

#endif
