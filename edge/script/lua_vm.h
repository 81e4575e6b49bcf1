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

#include "edge/script/lua_core.h"
#include "edge/script/script_io.h"
#include "edge/script/script_ver.h"

#include <stddef.h>
#include <stdint.h>

struct lua_vm;
struct lua_vm_threads;

/* New state with the sandbox set up (lua_sandbox.h) and the edge's libraries
 * in it.  NULL only if Lua cannot start within the memory cap (too small). */
struct lua_vm *lua_vm_new(const struct lua_vm_limits *lim, const struct lua_vm_site *site);
void lua_vm_free(struct lua_vm *vm);

/* One state per thread, all made with the same limits and site (copied;
 * site's regions and kv stay borrowed).  NULL if no thread key is left. */
struct lua_vm_threads *lua_vm_threads_new(const struct lua_vm_limits *lim,
                                          const struct lua_vm_site *site);
/* Frees the calling thread's state; other threads' states are freed when
 * those threads exit, which must happen before th is freed (their states
 * would leak otherwise). */
void lua_vm_threads_free(struct lua_vm_threads *th);
/* The calling thread's state, created on first use (freed at thread exit),
 * or replaced when its memory stayed high.  NULL if Lua cannot start. */
struct lua_vm *lua_vm_thread(struct lua_vm_threads *th);
/* After a call of the calling thread's state ended (not waiting): if the
 * state grew by several MiB since it last settled, collects its garbage and
 * gives the memory back to the system -- the state itself is dropped (made
 * anew by the next lua_vm_thread) when its free lists hold much, malloc's
 * free pages are trimmed.  Cheap when the state did not grow. */
void lua_vm_thread_settle(struct lua_vm_threads *th);
/* What all of th's states hold from the system now (bytes). */
size_t lua_vm_threads_memory(struct lua_vm_threads *th);

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

#endif
