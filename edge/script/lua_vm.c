/* lua_vm.c -- one sandboxed Lua state: allocator cap, hook, compiled versions, calls as tasks */
#include "edge/script/lua_vm.h"
#include "edge/script/lua_core.h"
#include "edge/script/lua_req.h"
#include "edge/script/lua_sandbox.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <lauxlib.h>
#include <lualib.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* The count hook fires every HOOK_STEP VM instructions: small enough that an
 * infinite loop is stopped within microseconds of its budget, large enough
 * that the hook costs nothing measurable (one call per ~1000 instructions). */
#define HOOK_STEP 1000

/* Most requests never wait: a few idle coroutines cover the usual
 * concurrency of one worker thread; more are made when needed and dropped
 * when they finish. */
#define TASK_POOL 8

/* ---------- allocator and hook ---------- */

/* Small blocks (most Lua objects: strings, tables, closures) come from
 * per-state free lists carved out of 64 KiB chunks: a state is used by one
 * thread at a time, so this needs no locking and is much cheaper than
 * malloc/free for the dozens of short-lived objects each request makes.
 * Blocks up to BIG_MIN go to malloc, larger ones are mapped on their own
 * (mremap grows them), so freeing them gives the pages back at once.
 * `used` counts the sizes Lua asked for, so the cap means the same with any
 * path.
 *
 * Free lists never shrink: a burst of requests each filling another size
 * class would keep every class's peak.  So the state's footprint (mapped
 * chunks + larger blocks) is capped at twice the memory cap, counted
 * against the ceiling of all states together, and a state whose free lists
 * hold more than RECYCLE_MARK after a call is dropped (its chunks unmapped)
 * and made anew on its next request (lua_vm_thread_settle). */
#define SMALL_MAX 256
#define SMALL_CLASS(n) (((n) + 15) >> 4) /* 1..16, class c holds c*16 bytes */
#define CHUNK_SIZE (64 * 1024)
#define BIG_MIN (64 * 1024)
#define PAGE_ROUND(n) (((n) + 4095) & ~(size_t)4095)
/* Calls whose footprint grew by this much settle the state afterwards (full
 * collection, then the state is replaced or malloc's free memory trimmed);
 * smaller calls cost nothing extra. */
#define RECYCLE_MARK (4u << 20)

static size_t vm_footprint(const struct lua_vm *vm)
{
	return vm->chunk_bytes + vm->other_bytes;
}

/* Takes n more bytes from the system for vm, if its own cap (twice the
 * memory cap) and the ceiling of all states allow; 0 or -1.  must: a block
 * being shrunk (Lua expects that to work), counted but never refused. */
static int reserve(struct lua_vm *vm, size_t n, bool must)
{
	if (!must && vm_footprint(vm) + n > 2 * vm->lim.memory)
		return -1;
	if (vm->total) {
		size_t t = atomic_fetch_add_explicit(vm->total, n, memory_order_relaxed);
		if (!must && vm->lim.memory_total && t + n > vm->lim.memory_total) {
			atomic_fetch_sub_explicit(vm->total, n, memory_order_relaxed);
			return -1;
		}
	}
	return 0;
}

static void unreserve(struct lua_vm *vm, size_t n)
{
	if (vm->total)
		atomic_fetch_sub_explicit(vm->total, n, memory_order_relaxed);
}

static void *small_alloc(struct lua_vm *vm, size_t n, bool must)
{
	size_t c = SMALL_CLASS(n);
	void *p = vm->freel[c];
	if (p) {
		vm->freel[c] = *(void **)p;
		vm->small_live += c * 16;
		return p;
	}
	size_t sz = c * 16;
	if (vm->chunk_left < sz) {
		if (reserve(vm, CHUNK_SIZE, must) < 0)
			return NULL;
		char *ch = mmap(NULL, CHUNK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (ch == MAP_FAILED) {
			unreserve(vm, CHUNK_SIZE);
			return NULL;
		}
		*(void **)ch = vm->chunks; /* chunk list, unmapped with the state */
		vm->chunks = ch;
		vm->chunk_bytes += CHUNK_SIZE;
		vm->chunk_pos = ch + 16;
		vm->chunk_left = CHUNK_SIZE - 16;
	}
	p = vm->chunk_pos;
	vm->chunk_pos += sz;
	vm->chunk_left -= sz;
	vm->small_live += sz;
	return p;
}

static void small_free(struct lua_vm *vm, void *p, size_t n)
{
	size_t c = SMALL_CLASS(n);
	*(void **)p = vm->freel[c];
	vm->freel[c] = p;
	vm->small_live -= c * 16;
}

/* What a block above SMALL_MAX of n bytes holds from the system. */
static size_t other_size(size_t n)
{
	return n >= BIG_MIN ? PAGE_ROUND(n) : n;
}

static void other_free(struct lua_vm *vm, void *p, size_t n)
{
	size_t sz = other_size(n);
	if (n >= BIG_MIN)
		munmap(p, sz);
	else
		free(p);
	vm->other_bytes -= sz;
	unreserve(vm, sz);
}

/* A block above SMALL_MAX: new (ptr NULL) or resized from another such block. */
static void *other_alloc(struct lua_vm *vm, void *ptr, size_t osize, size_t nsize, bool must)
{
	size_t osz = ptr ? other_size(osize) : 0, nsz = other_size(nsize);
	if (nsz > osz && reserve(vm, nsz - osz, must) < 0)
		return NULL;
	void *p;
	if (ptr && osize >= BIG_MIN && nsize >= BIG_MIN) {
		p = osz == nsz ? ptr : mremap(ptr, osz, nsz, MREMAP_MAYMOVE);
	} else if (ptr && osize < BIG_MIN && nsize < BIG_MIN) {
		p = realloc(ptr, nsize);
	} else {
		p = nsize >= BIG_MIN ? mmap(NULL, nsz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
		                     : malloc(nsize);
		if (p == MAP_FAILED)
			p = NULL;
		if (p && ptr) {
			memcpy(p, ptr, osize < nsize ? osize : nsize);
			if (osize >= BIG_MIN)
				munmap(ptr, osz);
			else
				free(ptr);
		}
	}
	if (p == MAP_FAILED)
		p = NULL;
	if (!p) {
		if (nsz > osz)
			unreserve(vm, nsz - osz);
		return NULL;
	}
	if (nsz < osz)
		unreserve(vm, osz - nsz);
	vm->other_bytes = vm->other_bytes - osz + nsz;
	return p;
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
				other_free(vm, ptr, osize);
		}
		vm->used -= osize;
		return NULL;
	}
	if (nsize > osize && vm->used - osize + nsize > vm->lim.memory)
		goto refused;
	void *p;
	bool must = ptr && nsize < osize;
	if (ptr && osize > SMALL_MAX && nsize > SMALL_MAX) {
		p = other_alloc(vm, ptr, osize, nsize, must);
	} else if (ptr && osize <= SMALL_MAX && nsize <= SMALL_MAX &&
	           SMALL_CLASS(osize) == SMALL_CLASS(nsize)) {
		p = ptr;
	} else {
		p = nsize <= SMALL_MAX ? small_alloc(vm, nsize, must) : other_alloc(vm, NULL, 0, nsize, must);
		if (p && ptr) {
			memcpy(p, ptr, osize < nsize ? osize : nsize);
			if (osize <= SMALL_MAX)
				small_free(vm, ptr, osize);
			else
				other_free(vm, ptr, osize);
		}
	}
	if (!p) {
		if (nsize > osize)
			goto refused;
		return NULL; /* a shrink that failed: Lua keeps the old block */
	}
	vm->used = vm->used - osize + nsize;
	size_t f = vm_footprint(vm);
	if (f > vm->peak)
		vm->peak = f;
	return p;
refused:
	if (vm->run && !vm->run->killed) {
		vm->run->killed = 1;
		vm->run->kill_kind = SERR_MEMORY;
	}
	return NULL; /* Lua raises a memory error (after one emergency GC) */
}

static void vm_hook(lua_State *L, lua_Debug *ar)
{
	/* Once killed, every later hook raises again (lua_core_charge re-raises),
	 * so a script cannot loop around its own error handling. */
	lua_core_charge(L, HOOK_STEP);
}

int lua_vm_waiting(const struct lua_vm *vm)
{
	return vm->nwaiting;
}

size_t lua_vm_memory(const struct lua_vm *vm)
{
	return vm->used;
}


/* total: the ceiling's counter of the states' lua_vm_threads, or NULL. */
static struct lua_vm *vm_new(const struct lua_vm_limits *lim, const struct lua_vm_site *site,
                             _Atomic size_t *total)
{
	struct lua_vm *vm = xcalloc(1, sizeof *vm);
	vm->lim = *lim;
	vm->total = total;
	vm->site = *site;
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
	lua_pushcfunction(vm->L, lua_sandbox_setup);
	if (lua_pcall(vm->L, 0, 0, 0) != LUA_OK) {
		log_error("lua", "cannot set up Lua state: %s", lua_tostring(vm->L, -1));
		goto fail;
	}
	lua_sethook(vm->L, vm_hook, LUA_MASKCOUNT, HOOK_STEP);
	vm->peak = vm->settled = vm_footprint(vm);
	return vm;
fail:
	lua_vm_free(vm);
	return NULL;
}

struct lua_vm *lua_vm_new(const struct lua_vm_limits *lim, const struct lua_vm_site *site)
{
	return vm_new(lim, site, NULL);
}

void lua_vm_free(struct lua_vm *vm)
{
	if (!vm)
		return;
	if (vm->L)
		lua_close(vm->L);
	while (vm->chunks) {
		void *next = *(void **)vm->chunks;
		munmap(vm->chunks, CHUNK_SIZE);
		vm->chunks = next;
	}
	unreserve(vm, vm->chunk_bytes);
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

struct lua_vm_threads {
	pthread_key_t key; /* each thread's state, freed at thread exit */
	_Atomic size_t total; /* footprint of all its states (lim.memory_total caps it) */
	struct lua_vm_limits lim;
	struct lua_vm_site site; /* strings owned */
};

static void tl_free(void *p)
{
	lua_vm_free(p);
}

struct lua_vm_threads *lua_vm_threads_new(const struct lua_vm_limits *lim,
                                          const struct lua_vm_site *site)
{
	struct lua_vm_threads *th = xcalloc(1, sizeof *th);
	if (pthread_key_create(&th->key, tl_free) != 0) {
		free(th);
		return NULL;
	}
	th->lim = *lim;
	th->site = *site;
	th->site.edge_name = xstrdup(site->edge_name ? site->edge_name : "");
	th->site.edge_region = xstrdup(site->edge_region ? site->edge_region : "");
	th->site.origin = xstrdup(site->origin ? site->origin : "");
	return th;
}

void lua_vm_threads_free(struct lua_vm_threads *th)
{
	if (!th)
		return;
	lua_vm_free(pthread_getspecific(th->key));
	pthread_setspecific(th->key, NULL);
	pthread_key_delete(th->key);
	free((char *)th->site.edge_name);
	free((char *)th->site.edge_region);
	free((char *)th->site.origin);
	free(th);
}

struct lua_vm *lua_vm_thread(struct lua_vm_threads *th)
{
	struct lua_vm *vm = pthread_getspecific(th->key);
	if (vm && vm->recycle && !vm->nwaiting) {
		log_info("lua", "replacing a Lua state whose memory stayed at %zu bytes after a request",
		         vm->used);
		lua_vm_free(vm);
		malloc_trim(0);
		vm = NULL;
	}
	if (!vm) {
		vm = vm_new(&th->lim, &th->site, &th->total);
		pthread_setspecific(th->key, vm);
	}
	return vm;
}

void lua_vm_thread_settle(struct lua_vm_threads *th)
{
	struct lua_vm *vm = pthread_getspecific(th->key);
	if (!vm || vm->nwaiting || vm->run || vm->peak < vm->settled + RECYCLE_MARK)
		return;
	/* The garbage of the call that grew the state is freed now, not when
	 * the collector's pause next runs out (that may be never, when idle). */
	lua_gc(vm->L, LUA_GCCOLLECT, 0);
	size_t idle = vm->chunk_bytes - vm->small_live;
	if (vm->recycle || idle > RECYCLE_MARK) {
		log_debug("lua", "dropping a Lua state holding %zu bytes of free small blocks", idle);
		lua_vm_free(vm);
		pthread_setspecific(th->key, NULL);
	} else {
		vm->peak = vm->settled = vm_footprint(vm);
	}
	/* Blocks between SMALL_MAX and BIG_MIN were malloc's: give its free
	 * pages back too (walks every arena; rare, and after a call at least
	 * RECYCLE_MARK large). */
	malloc_trim(0);
}

size_t lua_vm_threads_memory(struct lua_vm_threads *th)
{
	return atomic_load_explicit(&th->total, memory_order_relaxed);
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

static inline void begin_call(struct lua_task *t, struct script_ver *v)
{
	struct lua_vm *vm = t->vm;
	t->cur = v;
	t->instr = 0;
	t->killed = 0;
	t->fetches = 0;
	t->deadline_ms = lua_core_now_ms() + vm->lim.time_ms;
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
	int rc = lua_sandbox_build_env(L, v, err, errlen); /* 2 P, 3 E, 4 MT, 5 MM */
	if (rc < 0)
		goto fail;
	/* Run the entry module through require so that it is marked loaded. */
	lua_getfield(L, 3, "require");
	lua_pushstring(L, v->b->entry);
	if (lua_pcall(L, 1, 0, 1) != LUA_OK) {
		if (vm->main.killed)
			snprintf(err, errlen, "%s: %s (while loading)", v->b->entry,
			         lua_core_kill_reason(vm->main.kill_kind));
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
	lua_sandbox_seal(L, 5);
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
 * so lua_core_vm works in them. */
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
			snprintf(err, errlen, "%s", lua_core_kill_reason(t->kill_kind));
		else if (lua_type(co, -1) == LUA_TSTRING) {
			/* The message may carry anything the script (or a client
			 * through it) put there, NULs included: escaped here, once. */
			size_t mlen;
			const char *m = lua_tolstring(co, -1, &mlen);
			log_escape(err, errlen, m, mlen);
		}
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
		snprintf(err, errlen, "%s (no room for a coroutine)", lua_core_kill_reason(SERR_MEMORY));
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

