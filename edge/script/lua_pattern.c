/* lua_pattern.c -- string.find/match/gmatch/gsub with a step-limited matcher
 *
 * Lua's own matcher (lstrlib) backtracks in C where the count hook cannot
 * reach it: string.find(("a"):rep(30000), ("a*"):rep(30) .. "b") runs for
 * hours.  These replacements implement the same pattern language (Lua 5.4
 * manual, section 6.4.1: classes, sets, * + - ?, captures and position
 * captures, %1-%9, %b, %f, ^ and $ anchors) with a backtracking matcher
 * written for minicdn that counts its steps and charges them to the
 * request's instruction budget (lua_core_charge): every 1024 steps the budget
 * and the wall clock are checked, and a pathological pattern ends the request
 * like an infinite loop does.  One step is one pattern item tried at one
 * subject position, about the cost of one VM instruction.
 *
 * The matcher keeps no heap state (captures live in struct pm on the C
 * stack), so raising a Lua error from inside it leaks nothing. */
#include "edge/script/lua_pattern.h"
#include "edge/script/lua_core.h"

#include <ctype.h>
#include <lauxlib.h>
#include <stdbool.h>
#include <string.h>

#define PM_MAXCAP 32      /* captures per pattern (Lua's LUA_MAXCAPTURES) */
#define PM_MAXDEPTH 200   /* nested quantifier/capture frames (Lua's MAXCCALLS) */
#define PM_CHARGE 1024    /* steps between budget checks */
#define CAP_OPEN (-1)
#define CAP_POS (-2)

struct pm {
	lua_State *L;
	const char *s0, *se; /* subject */
	const char *pe;      /* pattern end */
	int depth;
	int ncap;
	struct {
		const char *at;
		ptrdiff_t len; /* CAP_OPEN, CAP_POS or a length */
	} cap[PM_MAXCAP];
	long long steps;     /* not yet charged */
};

static inline void pm_step(struct pm *m)
{
	if (++m->steps >= PM_CHARGE) {
		long long n = m->steps;
		m->steps = 0;
		lua_core_charge(m->L, n); /* may raise: nothing to release */
	}
}

static void pm_reset(struct pm *m)
{
	m->depth = 0;
	m->ncap = 0;
}

/* ---------- single characters ---------- */

/* Does c belong to the class letter cl (%a, %d, ... upper case = complement)? */
static bool class_has(int c, int cl)
{
	bool r;
	switch (tolower(cl)) {
	case 'a': r = isalpha(c); break;
	case 'c': r = iscntrl(c); break;
	case 'd': r = isdigit(c); break;
	case 'g': r = isgraph(c); break;
	case 'l': r = islower(c); break;
	case 'p': r = ispunct(c); break;
	case 's': r = isspace(c); break;
	case 'u': r = isupper(c); break;
	case 'w': r = isalnum(c); break;
	case 'x': r = isxdigit(c); break;
	default: return cl == c; /* %. %% %[ ...: the character itself */
	}
	return isupper(cl) ? !r : r;
}

/* [set] from p ('[') to last (its ']'). */
static bool set_has(int c, const char *p, const char *last)
{
	bool neg = false;
	p++;
	if (*p == '^') {
		neg = true;
		p++;
	}
	while (p < last) {
		if (*p == '%' && p + 1 < last) {
			if (class_has(c, (unsigned char)p[1]))
				return !neg;
			p += 2;
		} else if (p + 2 < last && p[1] == '-') {
			if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
				return !neg;
			p += 3;
		} else {
			if ((unsigned char)*p == c)
				return !neg;
			p++;
		}
	}
	return neg;
}

/* End of the single-character item starting at p. */
static const char *item_end(struct pm *m, const char *p)
{
	char c = *p++;
	if (c == '%') {
		if (p >= m->pe)
			luaL_error(m->L, "malformed pattern (ends with '%%')");
		return p + 1;
	}
	if (c == '[') {
		if (p < m->pe && *p == '^')
			p++;
		/* The first character of a set is literal, even ']'. */
		for (;;) {
			if (p >= m->pe)
				luaL_error(m->L, "malformed pattern (missing ']')");
			c = *p++;
			if (c == '%') {
				if (p >= m->pe)
					luaL_error(m->L, "malformed pattern (missing ']')");
				p++;
			}
			if (p >= m->pe)
				luaL_error(m->L, "malformed pattern (missing ']')");
			if (*p == ']')
				return p + 1;
		}
	}
	return p;
}

/* Does the item p..ep match the character at s? */
static bool item_has(struct pm *m, const char *s, const char *p, const char *ep)
{
	if (s >= m->se)
		return false;
	int c = (unsigned char)*s;
	switch (*p) {
	case '.': return true;
	case '%': return class_has(c, (unsigned char)p[1]);
	case '[': return set_has(c, p, ep - 1);
	default: return (unsigned char)*p == c;
	}
}

/* ---------- the matcher ---------- */

static const char *pm_match(struct pm *m, const char *s, const char *p);

/* Greedy: take as many as possible, give back one at a time. */
static const char *greedy(struct pm *m, const char *s, const char *p, const char *ep)
{
	ptrdiff_t n = 0;
	while (item_has(m, s + n, p, ep)) {
		pm_step(m);
		n++;
	}
	for (; n >= 0; n--) {
		pm_step(m);
		const char *r = pm_match(m, s + n, ep + 1);
		if (r)
			return r;
	}
	return NULL;
}

/* Lazy: try the rest first, take one more on failure. */
static const char *lazy(struct pm *m, const char *s, const char *p, const char *ep)
{
	for (;;) {
		pm_step(m);
		const char *r = pm_match(m, s, ep + 1);
		if (r)
			return r;
		if (!item_has(m, s, p, ep))
			return NULL;
		s++;
	}
}

static const char *open_capture(struct pm *m, const char *s, const char *p, ptrdiff_t what)
{
	if (m->ncap >= PM_MAXCAP)
		luaL_error(m->L, "too many captures");
	m->cap[m->ncap].at = s;
	m->cap[m->ncap].len = what;
	m->ncap++;
	const char *r = pm_match(m, s, p);
	if (!r)
		m->ncap--;
	return r;
}

static const char *close_capture(struct pm *m, const char *s, const char *p)
{
	int i = m->ncap - 1;
	while (i >= 0 && m->cap[i].len != CAP_OPEN)
		i--;
	if (i < 0)
		luaL_error(m->L, "invalid pattern capture");
	m->cap[i].len = s - m->cap[i].at;
	const char *r = pm_match(m, s, p);
	if (!r)
		m->cap[i].len = CAP_OPEN;
	return r;
}

static int capture_index(struct pm *m, int digit)
{
	int i = digit - '1';
	if (i < 0 || i >= m->ncap || m->cap[i].len == CAP_OPEN)
		luaL_error(m->L, "invalid capture index %%%d", i + 1);
	return i;
}

/* %1-%9: the same bytes as an earlier capture. */
static const char *back_ref(struct pm *m, const char *s, int digit)
{
	int i = capture_index(m, digit);
	size_t len = (size_t)m->cap[i].len;
	if ((size_t)(m->se - s) >= len && memcmp(m->cap[i].at, s, len) == 0)
		return s + len;
	return NULL;
}

/* %bxy: a balanced run from x to its matching y. */
static const char *balanced(struct pm *m, const char *s, const char *p)
{
	if (p + 1 >= m->pe)
		luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
	if (s >= m->se || *s != p[0])
		return NULL;
	char open = p[0], close = p[1];
	int depth = 1;
	while (++s < m->se) {
		pm_step(m);
		if (*s == close) {
			if (--depth == 0)
				return s + 1;
		} else if (*s == open) {
			depth++;
		}
	}
	return NULL;
}

/* Matches pattern p (up to m->pe) at s: the end of the match or NULL.
 * Recursion only where backtracking needs a frame (quantifiers, captures),
 * bounded by PM_MAXDEPTH. */
static const char *pm_match(struct pm *m, const char *s, const char *p)
{
	if (++m->depth > PM_MAXDEPTH)
		luaL_error(m->L, "pattern too complex");
	const char *r;
	for (;;) {
		pm_step(m);
		if (p == m->pe) {
			r = s;
			break;
		}
		if (*p == '(') {
			if (p + 1 < m->pe && p[1] == ')')
				r = open_capture(m, s, p + 2, CAP_POS);
			else
				r = open_capture(m, s, p + 1, CAP_OPEN);
			break;
		}
		if (*p == ')') {
			r = close_capture(m, s, p + 1);
			break;
		}
		if (*p == '$' && p + 1 == m->pe) {
			r = s == m->se ? s : NULL;
			break;
		}
		if (*p == '%' && p + 1 < m->pe) {
			char k = p[1];
			if (k == 'b') {
				r = balanced(m, s, p + 2);
				if (!r)
					break;
				s = r;
				p += 4;
				continue;
			}
			if (k == 'f') {
				p += 2;
				if (p >= m->pe || *p != '[')
					luaL_error(m->L, "missing '[' after '%%f' in pattern");
				const char *ep = item_end(m, p);
				int prev = s == m->s0 ? 0 : (unsigned char)s[-1];
				int cur = s < m->se ? (unsigned char)*s : 0;
				if (!set_has(prev, p, ep - 1) && set_has(cur, p, ep - 1)) {
					p = ep;
					continue;
				}
				r = NULL;
				break;
			}
			if (k >= '0' && k <= '9') {
				r = back_ref(m, s, k);
				if (!r)
					break;
				s = r;
				p += 2;
				continue;
			}
		}
		/* A single-character item, maybe quantified. */
		const char *ep = item_end(m, p);
		bool ok = item_has(m, s, p, ep);
		char q = ep < m->pe ? *ep : 0;
		if (q == '?') {
			if (ok && (r = pm_match(m, s + 1, ep + 1)))
				break;
			p = ep + 1;
			continue;
		}
		if (q == '+') {
			r = ok ? greedy(m, s + 1, p, ep) : NULL;
			break;
		}
		if (q == '*') {
			r = greedy(m, s, p, ep);
			break;
		}
		if (q == '-') {
			r = lazy(m, s, p, ep);
			break;
		}
		if (!ok) {
			r = NULL;
			break;
		}
		s++;
		p = ep;
	}
	m->depth--;
	return r;
}

/* ---------- captures to Lua values ---------- */

/* Pushes capture i; with no captures, i == 0 is the whole match s..e. */
static void push_capture(struct pm *m, int i, const char *s, const char *e)
{
	if (i >= m->ncap) {
		if (i != 0)
			luaL_error(m->L, "invalid capture index %%%d", i + 1);
		lua_pushlstring(m->L, s, (size_t)(e - s));
		return;
	}
	ptrdiff_t len = m->cap[i].len;
	if (len == CAP_OPEN)
		luaL_error(m->L, "unfinished capture");
	if (len == CAP_POS)
		lua_pushinteger(m->L, (lua_Integer)(m->cap[i].at - m->s0) + 1);
	else
		lua_pushlstring(m->L, m->cap[i].at, (size_t)len);
}

/* Pushes all captures (or the whole match when there are none and s != NULL). */
static int push_captures(struct pm *m, const char *s, const char *e)
{
	int n = m->ncap == 0 && s ? 1 : m->ncap;
	luaL_checkstack(m->L, n, "too many captures");
	for (int i = 0; i < n; i++)
		push_capture(m, i, s, e);
	return n;
}

/* ---------- the library functions ---------- */

static void pm_init(struct pm *m, lua_State *L, const char *s, size_t ls, const char *p, size_t lp)
{
	memset(m, 0, sizeof *m);
	m->L = L;
	m->s0 = s;
	m->se = s + ls;
	m->pe = p + lp;
}

static void pm_done(struct pm *m)
{
	if (m->steps)
		lua_core_charge(m->L, m->steps);
	m->steps = 0;
}

/* Start offset from a 1-based, possibly negative, init argument. */
static size_t start_of(lua_Integer init, size_t len)
{
	if (init > 0)
		return (size_t)init - 1;
	if (init == 0 || (size_t)-(init + 1) >= len) /* -init > len */
		return 0;
	return len + (size_t)init;
}

static bool has_specials(const char *p, size_t lp)
{
	for (size_t i = 0; i < lp; i++)
		if (strchr("^$*+?.([%-", p[i]) && p[i])
			return true;
	return false;
}

static int find_or_match(lua_State *L, bool find)
{
	size_t ls, lp;
	const char *s = luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checklstring(L, 2, &lp);
	size_t init = start_of(luaL_optinteger(L, 3, 1), ls);
	if (init > ls) {
		lua_pushnil(L);
		return 1;
	}
	if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
		/* Plain search: glibc's memmem is linear (two-way), charge the length. */
		lua_core_charge(L, (long long)(ls - init) / 16);
		const char *hit = lp == 0 ? s + init : memmem(s + init, ls - init, p, lp);
		if (!hit) {
			lua_pushnil(L);
			return 1;
		}
		lua_pushinteger(L, (lua_Integer)(hit - s) + 1);
		lua_pushinteger(L, (lua_Integer)(hit - s + lp));
		return 2;
	}
	struct pm m;
	pm_init(&m, L, s, ls, p, lp);
	bool anchor = lp > 0 && *p == '^';
	if (anchor)
		p++;
	const char *at = s + init;
	do {
		pm_reset(&m);
		const char *e = pm_match(&m, at, p);
		if (e) {
			pm_done(&m);
			if (find) {
				lua_pushinteger(L, (lua_Integer)(at - s) + 1);
				lua_pushinteger(L, (lua_Integer)(e - s));
				return push_captures(&m, NULL, NULL) + 2;
			}
			return push_captures(&m, at, e);
		}
	} while (at++ < m.se && !anchor);
	pm_done(&m);
	lua_pushnil(L);
	return 1;
}

static int l_find(lua_State *L) { return find_or_match(L, true); }
static int l_match(lua_State *L) { return find_or_match(L, false); }

/* gmatch iterator; upvalues: subject, pattern, state (full userdata without
 * metatable: two offsets). */
struct gm_state {
	size_t pos;
	size_t last; /* end of the previous match, SIZE_MAX before the first */
};

static int gmatch_next(lua_State *L)
{
	size_t ls, lp;
	const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
	const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
	struct gm_state *g = lua_touserdata(L, lua_upvalueindex(3));
	struct pm m;
	pm_init(&m, L, s, ls, p, lp);
	for (size_t at = g->pos; at <= ls; at++) {
		pm_reset(&m);
		const char *e = pm_match(&m, s + at, p);
		/* An empty match right after the previous one is skipped. */
		if (e && (size_t)(e - s) != g->last) {
			g->pos = g->last = (size_t)(e - s);
			pm_done(&m);
			return push_captures(&m, s + at, e);
		}
	}
	g->pos = ls + 1;
	pm_done(&m);
	return 0;
}

static int l_gmatch(lua_State *L)
{
	size_t ls;
	luaL_checklstring(L, 1, &ls);
	luaL_checkstring(L, 2);
	size_t init = start_of(luaL_optinteger(L, 3, 1), ls);
	lua_settop(L, 2);
	struct gm_state *g = lua_newuserdatauv(L, sizeof *g, 0);
	g->pos = init > ls ? ls + 1 : init;
	g->last = (size_t)-1;
	lua_pushcclosure(L, gmatch_next, 3);
	return 1;
}

/* Appends the replacement of one match s..e to b. */
static void gsub_add(struct pm *m, luaL_Buffer *b, const char *s, const char *e, int tr)
{
	lua_State *L = m->L;
	if (tr == LUA_TSTRING || tr == LUA_TNUMBER) {
		size_t lr;
		const char *r = lua_tolstring(L, 3, &lr);
		for (size_t i = 0; i < lr; i++) {
			pm_step(m);
			if (r[i] != '%') {
				luaL_addchar(b, r[i]);
				continue;
			}
			i++;
			if (i >= lr)
				luaL_error(L, "invalid use of '%%' in replacement string");
			if (r[i] == '%') {
				luaL_addchar(b, '%');
			} else if (r[i] == '0') {
				luaL_addlstring(b, s, (size_t)(e - s));
			} else if (r[i] >= '1' && r[i] <= '9') {
				push_capture(m, r[i] - '1', s, e);
				luaL_tolstring(L, -1, NULL); /* position captures are integers */
				lua_remove(L, -2);
				luaL_addvalue(b);
			} else {
				luaL_error(L, "invalid use of '%%' in replacement string");
			}
		}
		return;
	}
	if (tr == LUA_TFUNCTION) {
		lua_pushvalue(L, 3);
		int n = push_captures(m, s, e);
		lua_call(L, n, 1);
	} else { /* table */
		push_capture(m, 0, s, e);
		lua_gettable(L, 3);
	}
	if (!lua_toboolean(L, -1)) {
		lua_pop(L, 1);
		luaL_addlstring(b, s, (size_t)(e - s)); /* keep the original */
	} else if (!lua_isstring(L, -1)) {
		luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
	} else {
		luaL_addvalue(b);
	}
}

static int l_gsub(lua_State *L)
{
	size_t ls, lp;
	const char *s = luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checklstring(L, 2, &lp);
	int tr = lua_type(L, 3);
	luaL_argexpected(L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION ||
	                 tr == LUA_TTABLE, 3, "string/function/table");
	lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
	lua_settop(L, 3);
	bool anchor = lp > 0 && *p == '^';
	if (anchor) {
		p++;
		lp--;
	}
	struct pm m;
	pm_init(&m, L, s, ls, p, lp);
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	const char *at = s, *last = NULL;
	lua_Integer n = 0;
	while (n < max) {
		pm_reset(&m);
		const char *e = pm_match(&m, at, p);
		if (e && e != last) {
			n++;
			gsub_add(&m, &b, at, e, tr);
			at = last = e;
		} else if (at < m.se) {
			luaL_addchar(&b, *at++);
		} else {
			break;
		}
		if (anchor)
			break;
	}
	pm_done(&m);
	luaL_addlstring(&b, at, (size_t)(m.se - at));
	luaL_pushresult(&b);
	lua_pushinteger(L, n);
	return 2;
}

void lua_pattern_open(lua_State *L, int strlib)
{
	static const luaL_Reg fns[] = {
		{ "find", l_find }, { "match", l_match }, { "gmatch", l_gmatch }, { "gsub", l_gsub },
		{ NULL, NULL },
	};
	strlib = lua_absindex(L, strlib);
	for (const luaL_Reg *f = fns; f->name; f++) {
		lua_pushcfunction(L, f->func);
		lua_setfield(L, strlib, f->name);
	}
}
