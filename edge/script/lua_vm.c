/* lua_vm.c -- one sandboxed Lua state: allocator cap, budgets, per-script _ENV */
#include "edge/script/lua_vm.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The count hook fires every HOOK_STEP VM instructions: small enough that an
 * infinite loop is stopped within microseconds of its budget, large enough
 * that the hook costs nothing measurable (one call per ~1000 instructions). */
#define HOOK_STEP 1000

struct compiled {
	uint64_t seq;
	int ref_handle; /* registry refs */
	int ref_env;
};

/* Most requests never wait: a few idle coroutines cover the usual
 * concurrency of one worker thread; more are made when needed and dropped
 * when they finish. */
#define TASK_POOL 8

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
	/* what a yielded call waits for (lua_vm_set_pending) */
	void *pending;
	int (*ready)(void *p);
	void (*cancel)(void *p);
};

struct lua_vm {
	lua_State *L;
	struct lua_vm_limits lim;
	struct lua_vm_site site; /* strings owned */
	size_t used;             /* bytes allocated through vm_alloc */
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
	void *chunks;            /* chunks the small blocks are carved from */
	char *chunk_pos;
	size_t chunk_left;
};

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------- allocator and hook ---------- */

/* Small blocks (most Lua objects: strings, tables, closures) come from
 * per-state free lists carved out of 64 KiB chunks: a state is used by one
 * thread at a time, so this needs no locking and is much cheaper than
 * malloc/free for the dozens of short-lived objects each request makes.
 * Larger blocks go to malloc.  `used` counts the sizes Lua asked for, so the
 * cap means the same with either path; chunks are kept until the state is
 * closed (their total never exceeds the peak of live small blocks). */
#define SMALL_MAX 256
#define SMALL_CLASS(n) (((n) + 15) >> 4) /* 1..16, class c holds c*16 bytes */
#define CHUNK_SIZE (64 * 1024)

static void *small_alloc(struct lua_vm *vm, size_t n)
{
	size_t c = SMALL_CLASS(n);
	void *p = vm->freel[c];
	if (p) {
		vm->freel[c] = *(void **)p;
		return p;
	}
	size_t sz = c * 16;
	if (vm->chunk_left < sz) {
		char *ch = malloc(CHUNK_SIZE);
		if (!ch)
			return NULL;
		*(void **)ch = vm->chunks; /* chunk list, freed with the state */
		vm->chunks = ch;
		vm->chunk_pos = ch + 16;
		vm->chunk_left = CHUNK_SIZE - 16;
	}
	p = vm->chunk_pos;
	vm->chunk_pos += sz;
	vm->chunk_left -= sz;
	return p;
}

static void small_free(struct lua_vm *vm, void *p, size_t n)
{
	size_t c = SMALL_CLASS(n);
	*(void **)p = vm->freel[c];
	vm->freel[c] = p;
}

static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct lua_vm *vm = ud;
	if (!ptr)
		osize = 0; /* then osize is a type tag, not a size */
	if (nsize == 0) {
		if (ptr) {
			if (osize <= SMALL_MAX)
				small_free(vm, ptr, osize);
			else
				free(ptr);
		}
		vm->used -= osize;
		return NULL;
	}
	if (nsize > osize && vm->used - osize + nsize > vm->lim.memory) {
		if (vm->run && !vm->run->killed) {
			vm->run->killed = 1;
			vm->run->kill_kind = SERR_MEMORY;
		}
		return NULL; /* Lua raises a memory error (after one emergency GC) */
	}
	void *p;
	if (ptr && osize > SMALL_MAX && nsize > SMALL_MAX) {
		p = realloc(ptr, nsize);
	} else if (ptr && osize <= SMALL_MAX && nsize <= SMALL_MAX &&
	           SMALL_CLASS(osize) == SMALL_CLASS(nsize)) {
		p = ptr;
	} else {
		p = nsize <= SMALL_MAX ? small_alloc(vm, nsize) : malloc(nsize);
		if (p && ptr) {
			memcpy(p, ptr, osize < nsize ? osize : nsize);
			if (osize <= SMALL_MAX)
				small_free(vm, ptr, osize);
			else
				free(ptr);
		}
	}
	if (!p)
		return NULL;
	vm->used = vm->used - osize + nsize;
	return p;
}

static const char *kill_reason(enum script_err k)
{
	switch (k) {
	case SERR_INSTRUCTIONS: return "instruction budget exceeded";
	case SERR_TIME: return "wall-clock budget exceeded";
	case SERR_MEMORY: return "memory cap exceeded";
	default: return "killed";
	}
}

static void vm_hook(lua_State *L, lua_Debug *ar)
{
	/* Once killed, every later hook raises again (lua_vm_charge re-raises),
	 * so a script cannot loop around its own error handling. */
	lua_vm_charge(L, HOOK_STEP);
}

struct lua_vm *lua_vm_of(lua_State *L)
{
	return *(struct lua_vm **)lua_getextraspace(L);
}

struct script_ver *lua_vm_current(lua_State *L)
{
	struct lua_vm *vm = lua_vm_of(L);
	return vm->run ? vm->run->cur : NULL;
}

const struct lua_vm_limits *lua_vm_limits(lua_State *L)
{
	return &lua_vm_of(L)->lim;
}

const struct lua_vm_site *lua_vm_site(lua_State *L)
{
	return &lua_vm_of(L)->site;
}

int lua_vm_time_left_ms(lua_State *L)
{
	struct lua_vm *vm = lua_vm_of(L);
	if (!vm->run)
		return 0;
	long long left = vm->run->deadline_ms - mono_ms();
	return left < 0 ? 0 : left > 1000000 ? 1000000 : (int)left;
}

void lua_vm_charge(lua_State *L, long long n)
{
	struct lua_vm *vm = lua_vm_of(L);
	struct lua_task *t = vm->run;
	if (!t)
		return;
	t->instr += n;
	if (!t->killed) {
		if (t->instr > vm->lim.instructions) {
			t->killed = 1;
			t->kill_kind = SERR_INSTRUCTIONS;
		} else if (mono_ms() > t->deadline_ms) {
			t->killed = 1;
			t->kill_kind = SERR_TIME;
		}
	}
	if (t->killed)
		luaL_error(L, "%s", kill_reason(t->kill_kind));
}

void lua_vm_count_fetch(lua_State *L)
{
	struct lua_vm *vm = lua_vm_of(L);
	if (!vm->run)
		luaL_error(L, "subrequests are only available while handling a request");
	if (++vm->run->fetches > vm->lim.max_fetches)
		luaL_error(L, "too many subrequests (limit %d per request)", vm->lim.max_fetches);
}

void lua_vm_set_pending(lua_State *L, void *p, int (*ready)(void *p), void (*cancel)(void *p))
{
	struct lua_task *t = lua_vm_of(L)->run;
	t->pending = p;
	t->ready = ready;
	t->cancel = cancel;
}

int lua_vm_waiting(const struct lua_vm *vm)
{
	return vm->nwaiting;
}

static int task_killed(lua_State *L)
{
	struct lua_task *t = lua_vm_of(L)->run;
	return t && t->killed;
}

size_t lua_vm_memory(const struct lua_vm *vm)
{
	return vm->used;
}

/* ---------- sandboxed base functions ---------- */

/* pcall/xpcall that cannot swallow a budget kill: if the VM was killed while
 * the protected call ran, the error is raised again.  With continuations
 * (as Lua's own), so a fetch inside a pcall can yield.  extra: stack slots
 * below the results (the status boolean included). */
static int pcall_done(lua_State *L, int st, lua_KContext extra)
{
	if (st != LUA_OK && st != LUA_YIELD) {
		if (task_killed(L) || st == LUA_ERRMEM)
			return lua_error(L);
		lua_pushboolean(L, 0);
		lua_pushvalue(L, -2);
		return 2;
	}
	return lua_gettop(L) - (int)extra;
}

static int sb_pcall(lua_State *L)
{
	luaL_checkany(L, 1);
	lua_pushboolean(L, 1); /* first result if no errors */
	lua_insert(L, 1);
	int st = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, pcall_done);
	return pcall_done(L, st, 0);
}

static int sb_xpcall(lua_State *L)
{
	int n = lua_gettop(L);
	luaL_checktype(L, 2, LUA_TFUNCTION);
	/* stack: f msgh args... -> true msgh f args... */
	lua_pushboolean(L, 1);
	lua_pushvalue(L, 1);
	lua_rotate(L, 3, 2);
	int st = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, pcall_done);
	return pcall_done(L, st, 2);
}

/* setmetatable without finalizers (a __gc would run at GC time, outside any
 * budget) and without touching protected metatables. */
static int sb_setmetatable(lua_State *L)
{
	int t = lua_type(L, 2);
	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
	if (t == LUA_TTABLE) {
		lua_pushliteral(L, "__gc");
		if (lua_rawget(L, 2) != LUA_TNIL)
			return luaL_error(L, "__gc metamethods are not allowed in edge scripts");
		lua_pop(L, 1);
	}
	if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
		return luaL_error(L, "cannot change a protected metatable");
	lua_settop(L, 2);
	lua_setmetatable(L, 1);
	return 1;
}

static int sb_collectgarbage(lua_State *L)
{
	const char *opt = luaL_optstring(L, 1, "count");
	if (strcmp(opt, "count") != 0)
		return luaL_error(L, "collectgarbage('%s') is not allowed in edge scripts", opt);
	lua_pushnumber(L, (lua_Number)lua_gc(L, LUA_GCCOUNT, 0) + lua_gc(L, LUA_GCCOUNTB, 0) / 1024.0);
	return 1;
}

static void log_args(lua_State *L, enum log_level lvl)
{
	if (lvl > log_current_level)
		return;
	struct lua_vm *vm = lua_vm_of(L);
	luaL_Buffer b;
	int n = lua_gettop(L);
	luaL_buffinit(L, &b);
	for (int i = 1; i <= n; i++) {
		size_t len;
		const char *s = luaL_tolstring(L, i, &len);
		if (i > 1)
			luaL_addchar(&b, ' ');
		luaL_addvalue(&b);
		(void)s;
	}
	luaL_pushresult(&b);
	size_t len;
	const char *msg = lua_tolstring(L, -1, &len);
	struct script_ver *cur = vm->run ? vm->run->cur : NULL;
	log_write(lvl, "script", "%s v%llu: %.*s", cur ? cur->b->name : "?",
	          cur ? (unsigned long long)cur->b->version : 0ull, len > 2000 ? 2000 : (int)len,
	          msg);
}

static int sb_log_info(lua_State *L) { log_args(L, LOG_LVL_INFO); return 0; }
static int sb_log_warn(lua_State *L) { log_args(L, LOG_LVL_WARN); return 0; }
static int sb_log_error(lua_State *L) { log_args(L, LOG_LVL_ERROR); return 0; }
static int sb_log_debug(lua_State *L) { log_args(L, LOG_LVL_DEBUG); return 0; }

static const luaL_Reg log_funcs[] = {
	{ "info", sb_log_info },
	{ "warn", sb_log_warn },
	{ "error", sb_log_error },
	{ "debug", sb_log_debug },
	{ NULL, NULL },
};

/* After the module ran (continuation: a module may fetch at request time). */
static int require_done(lua_State *L, int st, lua_KContext ctx)
{
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_pushboolean(L, 1);
	}
	lua_pushvalue(L, -1);
	lua_setfield(L, lua_upvalueindex(2), lua_tostring(L, 1));
	return 1;
}

/* require(name): only the modules of the script's own bundle.
 * upvalue 1: name -> compiled chunk, upvalue 2: name -> loaded value */
static int sb_require(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	if (lua_getfield(L, lua_upvalueindex(2), name) != LUA_TNIL)
		return 1;
	lua_pop(L, 1);
	if (lua_getfield(L, lua_upvalueindex(1), name) != LUA_TFUNCTION)
		return luaL_error(L, "module '%s' is not part of this bundle", name);
	lua_pushstring(L, name);
	lua_callk(L, 1, 1, 0, require_done);
	return require_done(L, LUA_OK, 0);
}

static int sb_readonly(lua_State *L)
{
	const char *k = lua_tostring(L, 2);
	return luaL_error(L, "cannot assign '%s': globals and library tables are read-only while "
	                  "handling requests (use locals, or kv for shared state)", k ? k : "?");
}

/* Standard functions a script may call (everything else is absent). */
static const char *const base_allow[] = {
	"assert", "error", "ipairs", "next", "pairs", "select", "tonumber", "tostring", "type",
	"rawequal", "rawget", "rawlen", "getmetatable", "_VERSION", NULL,
};
static const char *const string_allow[] = {
	"byte", "char", "find", "format", "gmatch", "gsub", "len", "lower", "match", "rep",
	"reverse", "sub", "upper", "pack", "packsize", "unpack", NULL,
};
static const char *const os_allow[] = { "time", "clock", "date", NULL };

/* ---------- state setup ---------- */

/* Registry key of the hidden table holding pristine copies of the libraries. */
static const char LIBS_KEY = 'L';

/* dst and src are absolute stack indices. */
static void copy_fields_to(lua_State *L, int dst, int src, const char *const *names)
{
	for (const char *const *n = names; *n; n++) {
		lua_getfield(L, src, *n);
		lua_setfield(L, dst, *n);
	}
}

static void copy_all_to(lua_State *L, int dst, int src)
{
	lua_pushnil(L);
	while (lua_next(L, src)) {
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_rawset(L, dst);
	}
}

static int next_trampoline(lua_State *L)
{
	return lua_next(L, 1) ? 2 : (lua_pushnil(L), 1);
}

static int ro_pairs(lua_State *L)
{
	lua_getmetatable(L, 1);
	lua_pushcfunction(L, next_trampoline);
	lua_getfield(L, -2, "__index");
	lua_pushnil(L);
	return 3;
}

/* Pushes a read-only proxy of the table on top (which it pops). */
static void push_readonly(lua_State *L)
{
	lua_newtable(L);                 /* t proxy */
	lua_createtable(L, 0, 4);        /* t proxy mt */
	lua_pushvalue(L, -3);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, sb_readonly);
	lua_setfield(L, -2, "__newindex");
	lua_pushcfunction(L, ro_pairs);
	lua_setfield(L, -2, "__pairs");
	lua_pushliteral(L, "protected");
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);         /* t proxy */
	lua_remove(L, -2);
}

static int vm_setup(lua_State *L)
{
	/* Libraries are opened into a hidden table; scripts only ever see copies. */
	luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
	luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
	luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
	luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
	luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
	luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 1);
	lua_settop(L, 0);
	/* Pattern functions whose matching steps count against the budget. */
	lua_getglobal(L, LUA_STRLIBNAME);
	lua_pattern_open(L, -1);
	lua_format_open(L, -1);
	lua_settop(L, 0);

	/* The string metatable is shared by every string in the state: make its
	 * __index a private read-only view without dump, and protect it. */
	lua_pushliteral(L, "");
	lua_getmetatable(L, -1);                 /* "" mt */
	lua_createtable(L, 0, 20);
	lua_getglobal(L, LUA_STRLIBNAME);
	copy_fields_to(L, lua_gettop(L) - 1, lua_gettop(L), string_allow);
	lua_pop(L, 1);                           /* "" mt strcopy */
	push_readonly(L);                        /* "" mt roproxy */
	lua_setfield(L, -2, "__index");
	lua_pushliteral(L, "protected");
	lua_setfield(L, -2, "__metatable");
	lua_settop(L, 0);

	/* libs = { base = {...}, string = ro, table = ro, ... } */
	lua_createtable(L, 0, 12);
	int libs = lua_gettop(L);
	lua_pushglobaltable(L);
	int g = lua_gettop(L);
	lua_createtable(L, 0, 24);
	copy_fields_to(L, lua_gettop(L), g, base_allow);
	lua_pushcfunction(L, sb_pcall);
	lua_setfield(L, -2, "pcall");
	lua_pushcfunction(L, sb_xpcall);
	lua_setfield(L, -2, "xpcall");
	lua_pushcfunction(L, sb_setmetatable);
	lua_setfield(L, -2, "setmetatable");
	lua_pushcfunction(L, sb_collectgarbage);
	lua_setfield(L, -2, "collectgarbage");
	lua_pushcfunction(L, sb_log_info);
	lua_setfield(L, -2, "print");
	lua_setfield(L, libs, "base");

	lua_createtable(L, 0, 20);
	lua_getglobal(L, LUA_STRLIBNAME);
	copy_fields_to(L, lua_gettop(L) - 1, lua_gettop(L), string_allow);
	lua_pop(L, 1);
	push_readonly(L);
	lua_setfield(L, libs, "string");
	const char *whole[] = { LUA_TABLIBNAME, LUA_MATHLIBNAME, LUA_UTF8LIBNAME };
	for (size_t i = 0; i < 3; i++) {
		lua_createtable(L, 0, 32);
		lua_getglobal(L, whole[i]);
		copy_all_to(L, lua_gettop(L) - 1, lua_gettop(L));
		lua_pop(L, 1);
		push_readonly(L);
		lua_setfield(L, libs, whole[i]);
	}
	lua_createtable(L, 0, 3);
	lua_getglobal(L, LUA_OSLIBNAME);
	copy_fields_to(L, lua_gettop(L) - 1, lua_gettop(L), os_allow);
	lua_pop(L, 1);
	push_readonly(L);
	lua_setfield(L, libs, "os");
	luaL_newlib(L, log_funcs);
	push_readonly(L);
	lua_setfield(L, libs, "log");
	lua_kv_open(L);
	push_readonly(L);
	lua_setfield(L, libs, "kv");
	lua_fetch_open(L);
	lua_setfield(L, libs, "fetch");
	lua_req_open(L);
	lua_settop(L, libs);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &LIBS_KEY);
	lua_settop(L, 0);

	/* Drop dangerous functions from the hidden globals as well, so nothing
	 * reachable from C by accident can load code. */
	lua_pushglobaltable(L);
	const char *drop[] = { "load", "loadfile", "dofile", "require", "collectgarbage" };
	for (size_t i = 0; i < sizeof drop / sizeof *drop; i++) {
		lua_pushnil(L);
		lua_setfield(L, -2, drop[i]);
	}
	lua_getglobal(L, LUA_STRLIBNAME);
	lua_pushnil(L);
	lua_setfield(L, -2, "dump");
	lua_settop(L, 0);
	return 0;
}

struct lua_vm *lua_vm_new(const struct lua_vm_limits *lim, const struct lua_vm_site *site)
{
	struct lua_vm *vm = xcalloc(1, sizeof *vm);
	vm->lim = *lim;
	vm->site.edge_name = xstrdup(site->edge_name ? site->edge_name : "");
	vm->site.edge_region = xstrdup(site->edge_region ? site->edge_region : "");
	vm->site.origin = xstrdup(site->origin ? site->origin : "");
	vm->L = lua_newstate(vm_alloc, vm);
	if (!vm->L)
		goto fail;
	*(struct lua_vm **)lua_getextraspace(vm->L) = vm;
	vm->main.vm = vm;
	vm->main.co = vm->L;
	vm->main.ref = LUA_NOREF;
	/* Incremental GC with a long pause: a request makes a dozen short-lived
	 * objects and keeps none; collecting when the heap has grown 4x costs less
	 * per request than generational minor collections (callgrind: -6% Ir in
	 * handle()) and stays far below the memory cap for small live sets. */
	lua_gc(vm->L, LUA_GCINC, 400, 0, 0);
	lua_pushcfunction(vm->L, vm_setup);
	if (lua_pcall(vm->L, 0, 0, 0) != LUA_OK) {
		log_error("lua", "cannot set up Lua state: %s", lua_tostring(vm->L, -1));
		goto fail;
	}
	lua_sethook(vm->L, vm_hook, LUA_MASKCOUNT, HOOK_STEP);
	return vm;
fail:
	lua_vm_free(vm);
	return NULL;
}

void lua_vm_free(struct lua_vm *vm)
{
	if (!vm)
		return;
	if (vm->L)
		lua_close(vm->L);
	while (vm->chunks) {
		void *next = *(void **)vm->chunks;
		free(vm->chunks);
		vm->chunks = next;
	}
	/* Tasks still waiting (the edge aborts them before; this is for
	 * embedders that do not): their subrequests are cancelled. */
	while (vm->waiting) {
		struct lua_task *t = vm->waiting;
		vm->waiting = t->next;
		if (t->cancel)
			t->cancel(t->pending);
		free(t);
	}
	while (vm->pool) {
		struct lua_task *t = vm->pool;
		vm->pool = t->next;
		free(t);
	}
	free(vm->comp);
	free((char *)vm->site.edge_name);
	free((char *)vm->site.edge_region);
	free((char *)vm->site.origin);
	free(vm);
}

/* ---------- per-thread states ---------- */

static pthread_key_t tl_key;
static int tl_ready;
static struct lua_vm_limits tl_lim;
static struct lua_vm_site tl_site;

static void tl_free(void *p)
{
	lua_vm_free(p);
}

void lua_vm_init_threads(const struct lua_vm_limits *lim, const struct lua_vm_site *site)
{
	tl_lim = *lim;
	tl_site.edge_name = xstrdup(site->edge_name ? site->edge_name : "");
	tl_site.edge_region = xstrdup(site->edge_region ? site->edge_region : "");
	tl_site.origin = xstrdup(site->origin ? site->origin : "");
	pthread_key_create(&tl_key, tl_free);
	tl_ready = 1;
}

void lua_vm_fini_threads(void)
{
	if (!tl_ready)
		return;
	lua_vm_free(pthread_getspecific(tl_key));
	pthread_setspecific(tl_key, NULL);
	pthread_key_delete(tl_key);
	free((char *)tl_site.edge_name);
	free((char *)tl_site.edge_region);
	free((char *)tl_site.origin);
	memset(&tl_site, 0, sizeof tl_site);
	tl_ready = 0;
}

struct lua_vm *lua_vm_thread(void)
{
	if (!tl_ready)
		return NULL;
	struct lua_vm *vm = pthread_getspecific(tl_key);
	if (vm && vm->recycle && !vm->nwaiting) {
		log_info("lua", "replacing a Lua state whose memory stayed at %zu bytes after a request",
		         vm->used);
		lua_vm_free(vm);
		vm = NULL;
	}
	if (!vm) {
		vm = lua_vm_new(&tl_lim, &tl_site);
		pthread_setspecific(tl_key, vm);
	}
	return vm;
}

/* ---------- compiling ---------- */

static struct compiled *find_compiled(struct lua_vm *vm, uint64_t seq)
{
	for (size_t i = 0; i < vm->ncomp; i++)
		if (vm->comp[i].seq == seq)
			return &vm->comp[i];
	return NULL;
}

void lua_vm_sync(struct lua_vm *vm, uint64_t gen, const uint64_t *keep, size_t n)
{
	if (vm->gen == gen)
		return;
	vm->gen = gen;
	size_t j = 0;
	for (size_t i = 0; i < vm->ncomp; i++) {
		bool live = false;
		for (size_t k = 0; k < n && !live; k++)
			live = keep[k] == vm->comp[i].seq;
		if (live) {
			vm->comp[j++] = vm->comp[i];
		} else {
			luaL_unref(vm->L, LUA_REGISTRYINDEX, vm->comp[i].ref_handle);
			luaL_unref(vm->L, LUA_REGISTRYINDEX, vm->comp[i].ref_env);
		}
	}
	vm->ncomp = j;
	lua_gc(vm->L, LUA_GCCOLLECT, 0);
}

/* Message handler: keeps the message (which already carries source:line for
 * errors raised in Lua) and never runs script code (no __tostring). */
static int vm_msgh(lua_State *L)
{
	if (lua_type(L, 1) == LUA_TSTRING)
		return 1;
	lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	return 1;
}

static void begin_call(struct lua_task *t, struct script_ver *v)
{
	struct lua_vm *vm = t->vm;
	t->cur = v;
	t->instr = 0;
	t->killed = 0;
	t->fetches = 0;
	t->deadline_ms = mono_ms() + vm->lim.time_ms;
	lua_sethook(t->co, vm_hook, LUA_MASKCOUNT, HOOK_STEP); /* resets the count */
	vm->run = t;
}

static void end_call(struct lua_task *t)
{
	t->vm->run = NULL;
	t->cur = NULL;
	t->cur_req = NULL;
	t->cur_req_tbl = NULL;
	t->cur_hdr_tbl = NULL;
	t->cur_args_tbl = NULL;
	t->cur_region = NULL;
	t->killed = 0;
	t->pending = NULL;
	t->ready = NULL;
	t->cancel = NULL;
}

/* Builds the environment of one script and compiles its modules.
 * Stack effect: pushes P (the _ENV proxy), E (its globals), MT (module chunks),
 * MM (the proxy's metatable). */
static int build_env(lua_State *L, struct script_ver *v, char *err, size_t errlen)
{
	lua_rawgetp(L, LUA_REGISTRYINDEX, &LIBS_KEY);
	int libs = lua_gettop(L);
	lua_newtable(L); /* P */
	int P = lua_gettop(L);
	lua_createtable(L, 0, 32); /* E */
	int E = lua_gettop(L);
	lua_getfield(L, libs, "base");
	copy_all_to(L, lua_gettop(L) - 1, lua_gettop(L));
	lua_pop(L, 1);
	const char *libnames[] = { "string", "table", "math", "utf8", "os", "log", "kv", "fetch" };
	for (size_t i = 0; i < sizeof libnames / sizeof *libnames; i++) {
		lua_getfield(L, libs, libnames[i]);
		lua_setfield(L, E, libnames[i]);
	}
	lua_pushvalue(L, P);
	lua_setfield(L, E, "_G");
	lua_newtable(L); /* MT */
	int MT = lua_gettop(L);
	lua_pushvalue(L, MT);
	lua_newtable(L); /* loaded */
	lua_pushcclosure(L, sb_require, 2);
	lua_setfield(L, E, "require");
	lua_createtable(L, 0, 4); /* MM */
	int MM = lua_gettop(L);
	lua_pushvalue(L, E);
	lua_setfield(L, MM, "__index");
	lua_pushvalue(L, E);
	lua_setfield(L, MM, "__newindex"); /* writable while loading */
	lua_pushliteral(L, "protected");
	lua_setfield(L, MM, "__metatable");
	lua_pushvalue(L, MM);
	lua_setmetatable(L, P);

	for (size_t i = 0; i < v->b->nmodules; i++) {
		const struct bundle_module *m = &v->b->modules[i];
		char chunk[BUNDLE_MAX_NAME * 2 + 8];
		snprintf(chunk, sizeof chunk, "=%s/%s", v->b->name, m->name);
		/* mode "t": binary chunks are refused whatever the bundle says */
		if (luaL_loadbufferx(L, m->source, m->len, chunk, "t") != LUA_OK) {
			snprintf(err, errlen, "%s", lua_tostring(L, -1));
			return -1;
		}
		lua_pushvalue(L, P);
		lua_setupvalue(L, -2, 1); /* its _ENV */
		lua_setfield(L, MT, m->name);
	}
	lua_remove(L, libs);
	return 0;
}

int lua_vm_compile(struct lua_vm *vm, struct script_ver *v, char *err, size_t errlen)
{
	lua_State *L = vm->L;
	if (find_compiled(vm, v->seq))
		return 0;
	lua_settop(L, 0);
	if (!lua_checkstack(L, 16)) {
		snprintf(err, errlen, "Lua stack exhausted");
		return -1;
	}
	begin_call(&vm->main, v);
	lua_pushcfunction(L, vm_msgh); /* 1 */
	int rc = build_env(L, v, err, errlen); /* 2 P, 3 E, 4 MT, 5 MM */
	if (rc < 0)
		goto fail;
	/* Run the entry module through require so that it is marked loaded. */
	lua_getfield(L, 3, "require");
	lua_pushstring(L, v->b->entry);
	if (lua_pcall(L, 1, 0, 1) != LUA_OK) {
		if (vm->main.killed)
			snprintf(err, errlen, "%s: %s (while loading)", v->b->entry,
			         kill_reason(vm->main.kill_kind));
		else
			snprintf(err, errlen, "%s", lua_tostring(L, -1));
		goto fail;
	}
	if (lua_getfield(L, 3, "handle") != LUA_TFUNCTION) {
		snprintf(err, errlen, "entry module '%s' does not define a global function handle(req)",
		         v->b->entry);
		goto fail;
	}
	/* From now on globals are read-only. */
	lua_pushcfunction(L, sb_readonly);
	lua_setfield(L, 5, "__newindex");
	if (vm->ncomp == vm->capcomp) {
		vm->capcomp = vm->capcomp ? vm->capcomp * 2 : 8;
		vm->comp = xrealloc(vm->comp, vm->capcomp * sizeof *vm->comp);
	}
	struct compiled *c = &vm->comp[vm->ncomp++];
	c->seq = v->seq;
	c->ref_handle = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pushvalue(L, 2);
	c->ref_env = luaL_ref(L, LUA_REGISTRYINDEX);
	end_call(&vm->main);
	lua_settop(L, 0);
	return 0;
fail:
	end_call(&vm->main);
	lua_settop(L, 0);
	lua_gc(L, LUA_GCCOLLECT, 0);
	return -1;
}

/* ---------- running ---------- */

static int task_anchor(lua_State *L)
{
	struct lua_task *t = lua_touserdata(L, 1);
	t->co = lua_newthread(L);
	t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

/* An idle coroutine from the pool, or a new one (NULL if the memory cap
 * does not allow it).  New threads inherit the main thread's extra space,
 * so lua_vm_of works in them. */
static struct lua_task *task_get(struct lua_vm *vm)
{
	struct lua_task *t = vm->pool;
	if (t) {
		vm->pool = t->next;
		vm->npool--;
		return t;
	}
	t = xcalloc(1, sizeof *t);
	t->vm = vm;
	lua_pushcfunction(vm->L, task_anchor);
	lua_pushlightuserdata(vm->L, t);
	if (lua_pcall(vm->L, 1, 0, 0) != LUA_OK) {
		lua_settop(vm->L, 0);
		free(t);
		return NULL;
	}
	return t;
}

/* Back to the pool once its call is over.  failed: the coroutine is dead
 * (an error) or abandoned while suspended; it is dropped, not reused, and not
 * reset either: in Lua 5.4.4 an error raised from the count hook (every
 * budget kill) leaves the thread's allowhook flag cleared, and neither
 * lua_resetthread nor lua_sethook restores it, so a reset thread would run
 * its next script -- and any __close handler run by the reset -- without the
 * instruction and wall-clock budget.  The collector frees it (without
 * calling __close).  Errors are the slow path: a new thread costs ~1 us. */
static void task_put(struct lua_task *t, bool failed)
{
	struct lua_vm *vm = t->vm;
	end_call(t);
	if (!failed && vm->npool < TASK_POOL) {
		lua_settop(t->co, 0);
		t->next = vm->pool;
		vm->pool = t;
		vm->npool++;
	} else {
		luaL_unref(vm->L, LUA_REGISTRYINDEX, t->ref);
		free(t);
	}
}

static void wait_link(struct lua_task *t)
{
	struct lua_vm *vm = t->vm;
	t->prev = NULL;
	t->next = vm->waiting;
	if (vm->waiting)
		vm->waiting->prev = t;
	vm->waiting = t;
	vm->nwaiting++;
}

static void wait_unlink(struct lua_task *t)
{
	struct lua_vm *vm = t->vm;
	if (t->prev)
		t->prev->next = t->next;
	else
		vm->waiting = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->next = t->prev = NULL;
	vm->nwaiting--;
}

/* Resumes t's coroutine with nargs values on its stack and sorts out how
 * the call ended. */
static enum lua_vm_status task_run(struct lua_task *t, int nargs, struct script_resp *resp,
                                   enum script_err *kind, char *err, size_t errlen,
                                   struct lua_task **task)
{
	struct lua_vm *vm = t->vm;
	lua_State *co = t->co;
	enum lua_vm_status rs;
	int nres = 0;
	vm->run = t;
	int st = lua_resume(co, vm->L, nargs, &nres);
	if (st == LUA_YIELD && t->pending) {
		/* Waiting for a subrequest: keep what the call needs. */
		lua_pop(co, nres);
		if (t->cur_req != &t->req) {
			t->req = *t->cur_req;
			t->cur_req = &t->req;
		}
		vm->run = NULL;
		wait_link(t);
		*task = t;
		return LVM_YIELD;
	}
	bool failed = false;
	if (st == LUA_YIELD) {
		/* Nothing exposed to scripts yields without a pending subrequest. */
		*kind = SERR_RUNTIME;
		snprintf(err, errlen, "script yielded outside a subrequest");
		rs = LVM_ERROR;
		failed = true;
	} else if (st != LUA_OK) {
		*kind = t->killed ? t->kill_kind : st == LUA_ERRMEM ? SERR_MEMORY : SERR_RUNTIME;
		if (t->killed)
			snprintf(err, errlen, "%s", kill_reason(t->kill_kind));
		else if (lua_type(co, -1) == LUA_TSTRING)
			snprintf(err, errlen, "%s", lua_tostring(co, -1));
		else
			snprintf(err, errlen, "(error object is a %s value)", luaL_typename(co, -1));
		rs = LVM_ERROR;
		failed = true;
	} else {
		/* The first value handle returned (none: nil).  Converting may
		 * allocate (strings are copied out); still this call's budget. */
		if (nres == 0) {
			lua_pushnil(co);
			nres = 1;
		}
		int r = lua_req_response(co, -nres, resp, err, errlen);
		if (r < 0) {
			*kind = SERR_RESPONSE;
			rs = LVM_ERROR;
		} else {
			rs = r ? LVM_RESPONSE : LVM_PASS;
		}
	}
	task_put(t, failed);
	/* A script may keep growing module-level tables; if memory stays high
	 * after a full collection, the state is replaced before the next request
	 * (once no call of it is waiting). */
	if (vm->used > vm->lim.memory / 2) {
		lua_gc(vm->L, LUA_GCCOLLECT, 0);
		if (vm->used > vm->lim.memory / 2)
			vm->recycle = 1;
	}
	return rs;
}

enum lua_vm_status lua_vm_call(struct lua_vm *vm, struct script_ver *v, const struct script_req *req,
                               const char *region, struct script_resp *resp, enum script_err *kind,
                               char *err, size_t errlen, struct lua_task **task)
{
	*task = NULL;
	struct compiled *c = find_compiled(vm, v->seq);
	if (!c) {
		if (lua_vm_compile(vm, v, err, errlen) < 0) {
			*kind = SERR_RUNTIME;
			return LVM_ERROR;
		}
		c = find_compiled(vm, v->seq);
	}
	struct lua_task *t = task_get(vm);
	if (!t) {
		*kind = SERR_MEMORY;
		snprintf(err, errlen, "%s (no room for a coroutine)", kill_reason(SERR_MEMORY));
		return LVM_ERROR;
	}
	lua_State *co = t->co;
	begin_call(t, v);
	t->cur_req = req;
	lua_rawgeti(co, LUA_REGISTRYINDEX, c->ref_handle);
	lua_req_push(co, req, region);
	t->cur_req_tbl = lua_topointer(co, -1);
	t->cur_region = region;
	return task_run(t, 1, resp, kind, err, errlen, task);
}

enum lua_vm_status lua_vm_resume(struct lua_task *t, struct script_resp *resp, enum script_err *kind,
                                 char *err, size_t errlen)
{
	struct lua_task *again = NULL;
	if (!t->ready(t->pending))
		return LVM_YIELD; /* woken early: it re-armed its wake-up */
	/* The yielded C function's continuation takes the pending data over. */
	t->pending = NULL;
	t->ready = NULL;
	t->cancel = NULL;
	wait_unlink(t);
	enum lua_vm_status rs = task_run(t, 0, resp, kind, err, errlen, &again);
	return rs;
}

void lua_vm_abort(struct lua_task *t)
{
	wait_unlink(t);
	if (t->cancel)
		t->cancel(t->pending);
	t->pending = NULL;
	t->cancel = NULL;
	task_put(t, true);
}

const struct script_req *lua_vm_request(lua_State *L, const void *tbl)
{
	struct lua_task *t = lua_vm_of(L)->run;
	return t && tbl && (t->cur_req_tbl == tbl || t->cur_hdr_tbl == tbl || t->cur_args_tbl == tbl)
	               ? t->cur_req
	               : NULL;
}

void lua_vm_set_view_table(lua_State *L, enum lua_vm_view view, const void *tbl)
{
	struct lua_task *t = lua_vm_of(L)->run;
	if (t)
		*(view == LUA_VM_VIEW_HEADERS ? &t->cur_hdr_tbl : &t->cur_args_tbl) = tbl;
}

const char *lua_vm_region(lua_State *L)
{
	struct lua_task *t = lua_vm_of(L)->run;
	return t ? t->cur_region : NULL;
}

const struct script_req *lua_vm_current_req(lua_State *L)
{
	struct lua_task *t = lua_vm_of(L)->run;
	return t ? t->cur_req : NULL;
}
