/* lua_sandbox.c -- what a script can reach: allow-listed globals, pcall that
 * cannot swallow a budget kill, read-only library tables, a private _ENV
 * per script.  Opens the edge's Lua libraries into the state. */
#include "edge/script/lua_sandbox.h"
#include "edge/script/lua_core.h"
#include "edge/script/lua_fetch.h"
#include "edge/script/lua_format.h"
#include "edge/script/lua_kv.h"
#include "edge/script/lua_pattern.h"
#include "edge/script/lua_req.h"
#include "common/log.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

/* ---------- sandboxed base functions ---------- */

/* pcall/xpcall that cannot swallow a budget kill: if the VM was killed while
 * the protected call ran, the error is raised again.  With continuations
 * (as Lua's own), so a fetch inside a pcall can yield.  extra: stack slots
 * below the results (the status boolean included). */
static int pcall_done(lua_State *L, int st, lua_KContext extra)
{
	if (st != LUA_OK && st != LUA_YIELD) {
		if (lua_core_killed(L) || st == LUA_ERRMEM)
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
	struct script_ver *cur = lua_core_current(L);
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
	/* The text is the script's (often a client's): escaped with its length,
	 * so a NUL neither cuts it nor hides what follows. */
	char esc[2000];
	log_write(lvl, "script", "%s v%llu: %s", cur ? cur->b->name : "?",
	          cur ? (unsigned long long)cur->b->version : 0ull, log_escape(esc, sizeof esc, msg, len));
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

int lua_sandbox_setup(lua_State *L)
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
	lua_kv_open(L, lua_core_site(L)->kv);
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

/* Builds the environment of one script and compiles its modules.
 * Stack effect: pushes P (the _ENV proxy), E (its globals), MT (module chunks),
 * MM (the proxy's metatable). */
int lua_sandbox_build_env(lua_State *L, struct script_ver *v, char *err, size_t errlen)
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

void lua_sandbox_seal(lua_State *L, int mm)
{
	lua_pushcfunction(L, sb_readonly);
	lua_setfield(L, mm, "__newindex");
}
