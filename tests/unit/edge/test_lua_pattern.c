/* test_lua_pattern.c -- the step-limited string.find/match/gmatch/gsub give
 * the same results as Lua's own for a battery of patterns, and refuse
 * malformed ones the same way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/script/lua_pattern.h"
#include "edge/script/lua_vm.h"
#include <lauxlib.h>
#include <lualib.h>

/* Runs the chunk, which returns a string describing every result. */
static const char CASES[] =
	"local out = {}\n"
	"local function put(...) local t = table.pack(...) for i = 1, t.n do t[i] = tostring(t[i]) end\n"
	"  out[#out + 1] = table.concat(t, ',') end\n"
	"local function try(f, ...) local r = table.pack(pcall(f, ...))\n"
	"  if not r[1] then put('ERR', (tostring(r[2]):gsub('^.-:%d+: ', ''))) else put(table.unpack(r, 2, r.n)) end end\n"
	"local S = { 'hello world', '', 'aaa', 'key=val; k2 = v2', '  trim me  ', 'THE (quick) fox',\n"
	"  'f(a(b)c)d', 'x=1&y=22&z=', '2024-01-05T10:20:30Z', 'abc123def456', 'a.b.c', 'caf\\195\\169',\n"
	"  'THE (quick) fox jumps', '[[x]]', 'one two  three', 'aXbXc', '%d%%', 'tab\\tnl\\n' }\n"
	"local P = { 'o', 'l+', 'l*', 'l-', 'l?o', '^h', 'd$', '^$', '.', '.-', '(%w+)', '(%w+)=(%w+)',\n"
	"  '%s*(%w+)%s*=%s*(%w+)', '^%s*(.-)%s*$', '%((%a+)%)', '%b()', '%f[%w]%w+', '%f[%a]', '()a()',\n"
	"  '(a)(a)', '(%d+)-(%d+)-(%d+)T', '[%a_][%w_]*', '[^=&]+', '[a-c]+', '[]]', '[^%s]+', '%.', '%%',\n"
	"  '(h)(e)(l)%3', '(.)%1', '[%d%-]+', 'x*$', '%u+', '%U+', '%x+', '%p', '%c', '%g+', '(()b)', 'a-b',\n"
	"  '[a-]', '[-a]', 'X', '^(a+)', '(a*(.)%w(%s*))', '[%]]', '.-b', '$', '^', 'o%f[%W]' }\n"
	"for _, s in ipairs(S) do for _, p in ipairs(P) do\n"
	"  try(string.find, s, p) try(string.match, s, p) try(string.find, s, p, 3) try(string.match, s, p, -4)\n"
	"  try(string.gsub, s, p, '<%0>') try(string.gsub, s, p, '%1', 2)\n"
	"  try(function() local t = {} for a, b in string.gmatch(s, p) do t[#t+1] = tostring(a) .. '|' .. tostring(b) end return table.concat(t, ';') end)\n"
	"end end\n"
	"try(string.find, 'a.b', '.', 1, true) try(string.find, 'a+b', '+', 1, true) try(string.find, 'abc', '', 10)\n"
	"try(string.find, 'abc', '', 4) try(string.find, 'abc', 'c', -1) try(string.find, 'abc', 'a', -10) try(string.find, 'abc', 'b', 0)\n"
	"try(string.gsub, 'hello world', '%w+', string.upper) try(string.gsub, 'hello world', '%w+', { hello = 'HI', world = false })\n"
	"try(string.gsub, 'abc', '', '-') try(string.gsub, 'abc', '.-', '-') try(string.gsub, 'abc', 'x*', '-')\n"
	"try(string.gsub, 'abc', '%w', '%2') try(string.gsub, 'abc', '%w', '%') try(string.gsub, 'abc', '%w', '%x')\n"
	"try(string.gsub, 'abc', '(%w)', function(c) return {} end) try(string.gsub, 'abc', '%w', 5) try(string.gsub, 'abc', '%w', true)\n"
	"try(string.gsub, 'a b c', '()', '%1') try(string.gsub, 'abc', '^a', 'X') try(string.gsub, 'aaa', '^a', 'X')\n"
	"try(string.find, 'abc', '[a') try(string.find, 'abc', '%') try(string.find, 'abc', '(a') try(string.find, 'abc', 'a)')\n"
	"try(string.find, 'abc', '%1') try(string.find, 'abc', '(a)%2') try(string.find, 'abc', '%b') try(string.find, 'abc', '%fa')\n"
	"try(string.match, 'abc', '((((((((((((((((((((((((((((((((((a))))))))))))))))))))))))))))))))))')\n"
	"try(string.find, 'abc', '[%') try(string.find, 'abc', '[^') try(string.match, 'abc', '(()')\n"
	"for k, v in string.gmatch('a=1, b=2, c=3', '(%w+)=(%w+)') do put(k, v) end\n"
	"for w in string.gmatch('one two', '%a*') do put('[' .. w .. ']') end\n"
	"for w in string.gmatch('abcabc', 'b', 3) do put(w) end\n"
	"for p in string.gmatch('abc', '()') do put(p) end\n"
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

	/* Ours, in a state whose extra space names a lua_vm that is not in a
	 * call (so no budget applies). */
	struct lua_vm_limits lim = { .memory = 64 << 20, .instructions = 1000000, .time_ms = 1000 };
	struct lua_vm_site site = { .edge_name = "e", .edge_region = "r", .origin = "http://127.0.0.1:1" };
	struct lua_vm *vm = lua_vm_new(&lim, &site);
	assert_non_null(vm);
	lua_State *L = luaL_newstate();
	luaL_openlibs(L);
	*(struct lua_vm **)lua_getextraspace(L) = vm;
	lua_getglobal(L, "string");
	lua_getfield(L, -1, "gsub");
	lua_CFunction stock = lua_tocfunction(L, -1);
	lua_pop(L, 1);
	lua_pattern_open(L, -1);
	lua_getfield(L, -1, "gsub");
	assert_true(lua_tocfunction(L, -1) != stock); /* really testing ours */
	lua_pop(L, 2);
	char *got = run(L);
	lua_close(L);
	lua_vm_free(vm);
	assert_non_null(got);
	/* Compare line by line for a readable failure. */
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
	assert_true(line > 3000);
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
