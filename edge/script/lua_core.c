/* lua_core.c -- the running call of a sandboxed state: budgets, subrequest
 * count, what a yielded call waits for, and the request it handles */
#include "edge/script/lua_core.h"

#include <lauxlib.h>

struct script_ver *lua_core_current(lua_State *L)
{
	struct lua_vm *vm = lua_core_vm(L);
	return vm->run ? vm->run->cur : NULL;
}

const struct lua_vm_limits *lua_core_limits(lua_State *L)
{
	return &lua_core_vm(L)->lim;
}

const struct lua_vm_site *lua_core_site(lua_State *L)
{
	return &lua_core_vm(L)->site;
}

int lua_core_time_left_ms(lua_State *L)
{
	struct lua_vm *vm = lua_core_vm(L);
	if (!vm->run)
		return 0;
	long long left = vm->run->deadline_ms - lua_core_now_ms();
	return left < 0 ? 0 : left > 1000000 ? 1000000 : (int)left;
}

const char *lua_core_kill_reason(enum script_err k)
{
	switch (k) {
	case SERR_INSTRUCTIONS: return "instruction budget exceeded";
	case SERR_TIME: return "wall-clock budget exceeded";
	case SERR_MEMORY: return "memory cap exceeded";
	default: return "killed";
	}
}

int lua_core_killed(lua_State *L)
{
	struct lua_task *t = lua_core_vm(L)->run;
	return t && t->killed;
}

void lua_core_charge(lua_State *L, long long n)
{
	struct lua_vm *vm = lua_core_vm(L);
	struct lua_task *t = vm->run;
	if (!t)
		return;
	t->instr += n;
	if (!t->killed) {
		if (t->instr > vm->lim.instructions) {
			t->killed = 1;
			t->kill_kind = SERR_INSTRUCTIONS;
		} else if (lua_core_now_ms() > t->deadline_ms) {
			t->killed = 1;
			t->kill_kind = SERR_TIME;
		}
	}
	if (t->killed)
		luaL_error(L, "%s", lua_core_kill_reason(t->kill_kind));
}

void lua_core_count_fetch(lua_State *L)
{
	struct lua_vm *vm = lua_core_vm(L);
	if (!vm->run)
		luaL_error(L, "subrequests are only available while handling a request");
	if (++vm->run->fetches > vm->lim.max_fetches)
		luaL_error(L, "too many subrequests (limit %d per request)", vm->lim.max_fetches);
}

void lua_core_set_pending(lua_State *L, void *p, int (*ready)(void *p), void (*cancel)(void *p))
{
	struct lua_task *t = lua_core_vm(L)->run;
	t->pending = p;
	t->ready = ready;
	t->cancel = cancel;
}

const struct script_req *lua_core_request(lua_State *L, const void *tbl)
{
	struct lua_task *t = lua_core_vm(L)->run;
	return t && tbl && (t->cur_req_tbl == tbl || t->cur_hdr_tbl == tbl || t->cur_args_tbl == tbl)
	               ? t->cur_req
	               : NULL;
}

void lua_core_set_view_table(lua_State *L, enum lua_core_view view, const void *tbl)
{
	struct lua_task *t = lua_core_vm(L)->run;
	if (t)
		*(view == LUA_CORE_VIEW_HEADERS ? &t->cur_hdr_tbl : &t->cur_args_tbl) = tbl;
}

const char *lua_core_region(lua_State *L)
{
	struct lua_task *t = lua_core_vm(L)->run;
	return t ? t->cur_region : NULL;
}

const struct script_req *lua_core_current_req(lua_State *L)
{
	struct lua_task *t = lua_core_vm(L)->run;
	return t ? t->cur_req : NULL;
}
