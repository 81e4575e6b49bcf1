/* test_lua_format.c -- the fast string.format gives exactly what Lua's own
 * gives (results and error messages) for the conversions it builds itself
 * and for everything it hands back to Lua. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/script/lua_format.h"
#include <lauxlib.h>
#include <lualib.h>

/* Runs the chunk, which returns a string describing every result. */
static const char CASES[] =
	"local out = {}\n"
	"local function try(...) local r = table.pack(pcall(string.format, ...))\n"
	"  if r[1] then out[#out + 1] = string.format('%q', (r[2]:gsub('0x%x+', 'ADDR')))\n"
	"  else out[#out + 1] = 'ERR ' .. tostring(r[2]) end end\n"
	"local long = ('x'):rep(600)\n"
	"try('plain') try('') try('%%') try('100%% %s', 'sure') try('%s', 'a') try('%s%s%s', 'a', 'b', 'c')\n"
	"try('{\"hello\":\"%s\",\"id\":\"%s\"}', 'ADA', '42') try('%d', 42) try('%d', -7) try('%d', 0)\n"
	"try('%d', math.mininteger) try('%d', math.maxinteger) try('%d', 3.0) try('%d', 3.5) try('%d', '12')\n"
	"try('%s', 12) try('%s', 1.5) try('%s', true) try('%s', nil) try('%s', {}) try('%s') try('%d')\n"
	"try('%s %s', 'one') try('%', 'x') try('abc%') try('%5s|', 'ab') try('%-5s|', 'ab') try('%.1s', 'ab')\n"
	"try('%x', 255) try('%5.2f', 3.14159) try('%q', 'a\\nb') try('%c', 65) try('%i', 5) try('%z', 1)\n"
	"try('%s', 'a\\0b') try('[%s]', long) try(long .. '%s', long) try('%s%d%%', long, 99)\n"
	"try(12) try(nil) try({}) try('%s', setmetatable({}, { __tostring = function() return 'T' end }))\n"
	"try('%s and %s', 'x', 'y', 'extra') try('%d%d', 1, 2) try('%s', ('é'):rep(3))\n"
	"return table.concat(out, '\\n')\n";

static char *run(lua_State *L)
{
	if (luaL_loadstring(L, CASES) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
		fprintf(stderr, "chunk failed: %s\n", lua_tostring(L, -1));
		return NULL;
	}
	return strdup(lua_tostring(L, -1));
}

static void test_same_as_lua(void **state)
{
	(void)state;
	lua_State *ref = luaL_newstate();
	luaL_openlibs(ref);
	char *want = run(ref);
	lua_close(ref);
	assert_non_null(want);

	lua_State *L = luaL_newstate();
	luaL_openlibs(L);
	lua_getglobal(L, "string");
	lua_getfield(L, -1, "format");
	const void *stock = lua_topointer(L, -1);
	lua_pop(L, 1);
	lua_format_open(L, -1);
	lua_getfield(L, -1, "format");
	assert_true(lua_topointer(L, -1) != stock); /* really testing ours */
	lua_pop(L, 2);
	char *got = run(L);
	lua_close(L);
	assert_non_null(got);
	char *ws = NULL, *gs = NULL;
	char *w = strtok_r(want, "\n", &ws), *g = strtok_r(got, "\n", &gs);
	int line = 1;
	while (w || g) {
		if (!w || !g || strcmp(w, g)) {
			fprintf(stderr, "result %d differs:\n  lua:  %s\n  ours: %s\n", line, w ? w : "(end)",
			        g ? g : "(end)");
			fail();
		}
		w = strtok_r(NULL, "\n", &ws);
		g = strtok_r(NULL, "\n", &gs);
		line++;
	}
	assert_int_equal(line - 1, 46); /* every case ran (one per try, %q splits one) */
	free(want);
	free(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_as_lua),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
