/* lua_format.c -- string.format with a fast path for the common conversions
 *
 * Scripts build most bodies with string.format('...%s...%d...', ...).  Lua's
 * own format sends every %s through luaL_tolstring (a metatable lookup for
 * __tostring per argument) and a luaL_Buffer; for a JSON body of three
 * strings that is a quarter of what the whole handle() costs (callgrind).
 *
 * The fast path takes a call only when every conversion is a plain "%%",
 * "%s" of a string or "%d" of an integer (no flags, width or precision): for
 * those the result is defined without any metamethod (the string metatable
 * is protected, integers print as "%lld"), so it is built with one
 * allocation.  Every other call -- other conversions, numbers or tables for
 * %s, missing arguments and the errors they raise -- goes to Lua's own
 * string.format (kept as an upvalue, run in this call's frame), so results
 * and messages are Lua's. */
#include "edge/script/lua_format.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#define FMT_STACK 512 /* results up to this size are assembled on the C stack */

/* Pass 1: whether the fast path applies, and the result's length. */
static int fast_len(lua_State *L, const char *f, size_t fl, int nargs, size_t *len)
{
	size_t n = 0;
	int arg = 1;
	for (size_t i = 0; i < fl; i++) {
		if (f[i] != '%') {
			const char *pct = memchr(f + i, '%', fl - i);
			size_t run = pct ? (size_t)(pct - (f + i)) : fl - i;
			n += run;
			i += run - 1;
			continue;
		}
		if (++i == fl)
			return 0; /* "invalid conversion '%' to 'format'": Lua says so */
		switch (f[i]) {
		case '%':
			n++;
			break;
		case 's':
			if (++arg > nargs || lua_type(L, arg) != LUA_TSTRING)
				return 0;
			n += lua_rawlen(L, arg);
			break;
		case 'd':
			if (++arg > nargs || !lua_isinteger(L, arg))
				return 0;
			n += 20; /* at most "-9223372036854775808" */
			break;
		default:
			return 0;
		}
	}
	*len = n;
	return 1;
}

/* Pass 2: writes the result (at most len bytes) into out; returns its length. */
static size_t fast_write(lua_State *L, const char *f, size_t fl, char *out)
{
	char *o = out;
	int arg = 1;
	for (size_t i = 0; i < fl; i++) {
		if (f[i] != '%') {
			/* the literal run up to the next conversion, in one copy */
			const char *pct = memchr(f + i, '%', fl - i);
			size_t run = pct ? (size_t)(pct - (f + i)) : fl - i;
			memcpy(o, f + i, run);
			o += run;
			i += run - 1;
			continue;
		}
		i++;
		if (f[i] == '%') {
			*o++ = '%';
		} else if (f[i] == 's') {
			size_t sl;
			const char *s = lua_tolstring(L, ++arg, &sl); /* a string: no conversion */
			memcpy(o, s, sl);
			o += sl;
		} else { /* 'd' */
			o += snprintf(o, 21, "%lld", (long long)lua_tointeger(L, ++arg));
		}
	}
	return (size_t)(o - out);
}

static int l_format(lua_State *L)
{
	int nargs = lua_gettop(L);
	size_t fl, len;
	const char *f = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &fl) : NULL;
	if (!f || !fast_len(L, f, fl, nargs, &len)) {
		/* Run in this frame, not called: an error then names
		 * 'string.format' (this function's place), as Lua's would. */
		lua_CFunction lua_format = lua_tocfunction(L, lua_upvalueindex(1));
		return lua_format(L);
	}
	if (len <= FMT_STACK) {
		char buf[FMT_STACK];
		lua_pushlstring(L, buf, fast_write(L, f, fl, buf));
	} else {
		luaL_Buffer b;
		char *p = luaL_buffinitsize(L, &b, len);
		luaL_pushresultsize(&b, fast_write(L, f, fl, p));
	}
	return 1;
}

void lua_format_open(lua_State *L, int strlib)
{
	strlib = lua_absindex(L, strlib);
	lua_getfield(L, strlib, "format");
	lua_pushcclosure(L, l_format, 1);
	lua_setfield(L, strlib, "format");
}
