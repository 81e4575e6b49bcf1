/* lua_core.h -- the sandbox core every Lua library of the edge builds on: the
 * state's limits and site, the running call (task) and its budgets, the
 * request it handles.  Below the libraries (lua_req, lua_kv, lua_fetch,
 * lua_pattern, lua_format) and below the VM that assembles a state
 * (lua_vm.h); it includes none of them.
 *
 * The C context of a state reaches Lua code only through the state's extra
 * space (a pointer to its struct lua_vm) and registry keys made from the
 * addresses of statics, never through globals a script can see. */
#ifndef MINICDN_EDGE_LUA_CORE_H
#define MINICDN_EDGE_LUA_CORE_H

#include "edge/script/script_io.h"
#include "edge/script/script_ver.h"

#include <lua.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct kv;
struct script_regions;

struct lua_vm_limits {
	size_t memory;            /* bytes per state */
	size_t memory_total;      /* all states of one lua_vm_threads together; 0: no ceiling */
	long long instructions;   /* per call */
	int time_ms;              /* per call */
	int fetch_timeout_ms;
	int max_fetches;
	size_t fetch_max_body;
};

/* What the edge tells scripts about itself.  lua_vm_new copies the strings;
 * regions and kv are borrowed and must outlive every state made with them
 * (NULL: req.region is the edge's region, kv calls fail). */
struct lua_vm_site {
	const char *edge_name, *edge_region, *origin;
	const struct script_regions *regions;
	struct kv *kv;
};

/* The VM's internals, shared by the modules of the runtime (lua_core.c,
 * lua_vm.c); the libraries use the functions below instead. */

struct compiled {
	uint64_t seq;
	int ref_handle; /* registry refs */
	int ref_env;
};

/* One call of handle() (or of a module load, on the main thread) and the
 * coroutine it runs in. */
struct lua_task {
	struct lua_vm *vm;
	lua_State *co;
	int ref;                 /* registry reference anchoring co (LUA_NOREF: main thread) */
	struct lua_task *next, *prev; /* pool (next only) or waiting list */
	struct script_ver *cur;
	const struct script_req *cur_req;
	struct script_req req;   /* copy made when the call first yields */
	const void *cur_req_tbl;
	const void *cur_hdr_tbl; /* the call's req.headers table, once made */
	const void *cur_args_tbl;/* the call's req.args table, once made */
	const char *cur_region;  /* given by the caller, or NULL: computed when read */
	long long instr;
	long long deadline_ms;
	int killed;              /* budget exceeded: every pcall in the script rethrows */
	enum script_err kill_kind;
	int fetches;
	/* what a yielded call waits for (lua_core_set_pending) */
	void *pending;
	int (*ready)(void *p);
	void (*cancel)(void *p);
};

struct lua_vm {
	lua_State *L;
	struct lua_vm_limits lim;
	struct lua_vm_site site; /* strings owned */
	size_t used;             /* bytes allocated through the state's allocator */
	struct lua_task *run;    /* the call running now, NULL between calls */
	struct lua_task main;    /* module loading runs on the main thread */
	struct lua_task *pool;   /* idle coroutines */
	int npool;
	struct lua_task *waiting;/* yielded calls (doubly linked) */
	int nwaiting;
	/* compiled versions */
	struct compiled *comp;
	size_t ncomp, capcomp;
	uint64_t gen;
	int recycle;             /* memory stayed high after a call: replace the state */
	void *freel[17];         /* small-block free lists by size class */
	void *chunks;            /* chunks the small blocks are carved from (mmap) */
	char *chunk_pos;
	size_t chunk_left;
	/* What the state holds from the system (lua_vm.c's allocator): RSS
	 * follows these, not `used`. */
	size_t chunk_bytes;      /* mapped chunks */
	size_t small_live;       /* small blocks in use (by class size) */
	size_t other_bytes;      /* blocks above SMALL_MAX: malloc'd or mapped */
	size_t peak;             /* largest footprint since the last settle */
	size_t settled;          /* footprint after the last settle */
	_Atomic size_t *total;   /* footprint of all states of its lua_vm_threads, or NULL */
};

/* The vm owning L (kept in the state's extra space, invisible to scripts;
 * coroutines inherit it). */
static inline struct lua_vm *lua_core_vm(lua_State *L)
{
	return *(struct lua_vm **)lua_getextraspace(L);
}

/* Monotonic milliseconds (coarse clock: the budgets need no better). */
static inline long long lua_core_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Script running now (NULL outside a call). */
struct script_ver *lua_core_current(lua_State *L);
const struct lua_vm_limits *lua_core_limits(lua_State *L);
const struct lua_vm_site *lua_core_site(lua_State *L);
/* Milliseconds left of the wall-clock budget of the current call. */
int lua_core_time_left_ms(lua_State *L);
/* Message of a budget kill ("instruction budget exceeded"...); static. */
const char *lua_core_kill_reason(enum script_err k);
/* True when the running call was killed (its budget is spent). */
int lua_core_killed(lua_State *L);
/* Charges n units of work done in C (pattern matching steps, or VM
 * instructions from the count hook) to the current call's instruction
 * budget, and checks the wall clock; raises the budget error (which pcall
 * cannot catch) when either is exceeded. */
void lua_core_charge(lua_State *L, long long n);
/* Counts a subrequest; raises a Lua error when over the per-call limit. */
void lua_core_count_fetch(lua_State *L);
/* For a C function about to lua_yieldk (lua_fetch.c): what the task waits
 * for.  ready(p) runs on the worker thread when the task is to be resumed:
 * 1 if p is complete (the continuation of the yielding function then takes p
 * over and frees it), 0 if not (it re-armed its wake-up; the task keeps
 * waiting).  cancel(p) frees p without running Lua (lua_vm_abort, state
 * closed). */
void lua_core_set_pending(lua_State *L, void *p, int (*ready)(void *p), void (*cancel)(void *p));
/* The request being handled, if tbl is its request table or its
 * req.headers or req.args table (NULL outside a call or for tables of past
 * requests). */
const struct script_req *lua_core_request(lua_State *L, const void *tbl);
enum lua_core_view { LUA_CORE_VIEW_HEADERS, LUA_CORE_VIEW_ARGS };
/* Records tbl as the running call's req.headers or req.args table. */
void lua_core_set_view_table(lua_State *L, enum lua_core_view view, const void *tbl);
/* The client's region given to lua_vm_call, or NULL (then computed on read). */
const char *lua_core_region(lua_State *L);
/* The request of the call running now (NULL outside a call). */
const struct script_req *lua_core_current_req(lua_State *L);

#endif
