/* lua_req.c -- the request table scripts receive and the response they return
 *
 * req = { method, path, query, uri, host, body, client, region, edge_name,
 *         edge_region, headers (name -> value), args (query parameters) }
 * The table starts empty: each field is computed by __index the first time
 * it is read and stored raw, so a request costs only what its script reads
 * (a script reading two fields pays for two, not for twelve).  req.headers
 * and req.args are empty views whose __index looks one name up in the
 * request (in C, nothing stored); pairs() over any of them computes all. */
#include "edge/script/lua_req.h"
#include "edge/script/lua_core.h"
#include "edge/script/region.h"
#include "common/addr.h"
#include "common/buf.h"
#include "common/xmalloc.h"

#include <ctype.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_ARGS 100
#define MAX_RESP_HEADERS 64

static const char REQ_MT = 'R';

/* ---------- lazy fields ---------- */

struct hdr_ctx {
	lua_State *L;
	int tbl;
	int n;
};

static void add_header(void *arg, const char *name, const char *value)
{
	struct hdr_ctx *h = arg;
	char low[256];
	size_t n = strlen(name);
	if (n == 0 || n >= sizeof low || h->n >= 200)
		return;
	for (size_t i = 0; i < n; i++)
		low[i] = (char)tolower((unsigned char)name[i]);
	lua_pushlstring(h->L, low, n);
	/* Repeated headers are joined with ", " as RFC 9110 allows for lists. */
	if (lua_rawget(h->L, h->tbl) == LUA_TSTRING) {
		lua_pushliteral(h->L, ", ");
		lua_pushstring(h->L, value ? value : "");
		lua_concat(h->L, 3);
	} else {
		lua_pop(h->L, 1);
		lua_pushstring(h->L, value ? value : "");
	}
	lua_pushlstring(h->L, low, n);
	lua_insert(h->L, -2);
	lua_rawset(h->L, h->tbl);
	h->n++;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Pushes the percent-decoded (and '+' -> ' ') form of s[0..n). */
static void push_decoded(lua_State *L, const char *s, size_t n)
{
	if (!memchr(s, '%', n) && !memchr(s, '+', n)) {
		lua_pushlstring(L, s, n); /* nothing to decode: most parameters */
		return;
	}
	luaL_Buffer b;
	char *p = luaL_buffinitsize(L, &b, n);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int hi, lo;
		if (s[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
		    (lo = hexval((unsigned char)s[i + 2])) >= 0) {
			p[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			p[o++] = s[i] == '+' ? ' ' : s[i];
		}
	}
	luaL_pushresultsize(&b, o);
}

static void push_args(lua_State *L, const char *q)
{
	lua_createtable(L, 0, 4);
	int t = lua_gettop(L);
	int n = 0;
	while (q && *q && n < MAX_ARGS) {
		const char *amp = strchr(q, '&');
		size_t len = amp ? (size_t)(amp - q) : strlen(q);
		const char *eq = memchr(q, '=', len);
		size_t klen = eq ? (size_t)(eq - q) : len;
		if (klen) {
			push_decoded(L, q, klen);
			lua_pushvalue(L, -1);
			if (lua_rawget(L, t) == LUA_TNIL) { /* first occurrence wins */
				lua_pop(L, 1);
				if (eq)
					push_decoded(L, eq + 1, len - klen - 1);
				else
					lua_pushboolean(L, 1);
				lua_rawset(L, t);
			} else {
				lua_pop(L, 2);
			}
			n++;
		}
		q = amp ? amp + 1 : NULL;
	}
}

/* Does the query parameter name s[0..n), percent-decoded, equal k[0..kn)? */
static bool name_is(const char *s, size_t n, const char *k, size_t kn)
{
	size_t j = 0;
	for (size_t i = 0; i < n; i++, j++) {
		int c = (unsigned char)s[i], hi, lo;
		if (c == '%' && i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
		    (lo = hexval((unsigned char)s[i + 2])) >= 0) {
			c = hi * 16 + lo;
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		if (j == kn || (unsigned char)k[j] != c)
			return false;
	}
	return j == kn;
}

static int next_trampoline_req(lua_State *L)
{
	lua_settop(L, 2);
	return lua_next(L, 1) ? 2 : (lua_pushnil(L), 1);
}

/* ---------- req.headers: one header at a time ---------- */

/* Looking a header up scans the request's header list in C (a handful of
 * strcasecmp) instead of building a Lua table of every header: browsers send
 * a dozen headers and scripts read one or two.  pairs(req.headers) builds a
 * table of them all (lower-case names) for the loop. */

struct hdr_find {
	const char *name;
	const char *first; /* borrowed from the dispatch, valid during the request */
	struct buf v;      /* only for a repeated header */
	int n;
};

static void find_header(void *arg, const char *name, const char *value)
{
	struct hdr_find *f = arg;
	if (strcasecmp(name, f->name))
		return;
	value = value ? value : "";
	/* Repeated headers are joined with ", " as RFC 9110 allows for lists. */
	if (f->n++ == 0) {
		f->first = value;
		return;
	}
	if (f->n == 2)
		buf_append(&f->v, f->first, strlen(f->first));
	buf_append(&f->v, ", ", 2);
	buf_append(&f->v, value, strlen(value));
}

static int push_joined(lua_State *L)
{
	lua_pushlstring(L, lua_touserdata(L, 1), (size_t)lua_tointeger(L, 2));
	return 1;
}

/* __index(H, name): the header's value, nil if absent. */
static int hdr_index(lua_State *L)
{
	size_t n;
	const char *k = lua_tolstring(L, 2, &n);
	const struct script_req *req = lua_core_request(L, lua_topointer(L, 1));
	if (!k || !req || !req->headers_each || n == 0 || n > 255 || lua_type(L, 2) != LUA_TSTRING) {
		lua_pushnil(L);
		return 1;
	}
	struct hdr_find f = { k, NULL, BUF_INIT, 0 };
	req->headers_each(req->ctx, find_header, &f);
	if (!f.n) {
		lua_pushnil(L);
		return 1;
	}
	/* Not stored in H: a script reads a header once or twice, and a store
	 * would cost H a hash part per request. */
	if (f.n == 1) {
		lua_pushstring(L, f.first);
	} else {
		/* pushed from a C buffer: free it before anything can raise */
		char *joined = f.v.data;
		size_t len = f.v.len;
		lua_pushcfunction(L, push_joined);
		lua_pushlightuserdata(L, joined);
		lua_pushinteger(L, (lua_Integer)len);
		int st = lua_pcall(L, 2, 1, 0);
		buf_free(&f.v);
		if (st != LUA_OK)
			return lua_error(L);
	}
	return 1;
}

/* __pairs(H): next over a full table of the headers (lower-case names). */
static int hdr_pairs(lua_State *L)
{
	const struct script_req *req = lua_core_request(L, lua_topointer(L, 1));
	lua_pushcfunction(L, next_trampoline_req);
	lua_createtable(L, 0, 8);
	if (req && req->headers_each) {
		struct hdr_ctx h = { L, lua_gettop(L), 0 };
		req->headers_each(req->ctx, add_header, &h);
	}
	lua_pushnil(L);
	return 3;
}

/* ---------- req.args: one parameter at a time ---------- */

/* __index(A, name): the first parameter with that (decoded) name: its
 * decoded value, true if it has no '=', nil if absent. */
static int args_index(lua_State *L)
{
	size_t kn;
	const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &kn) : NULL;
	const struct script_req *req = lua_core_request(L, lua_topointer(L, 1));
	const char *q = req ? req->query : NULL;
	for (int n = 0; k && q && *q && n < MAX_ARGS;) {
		const char *amp = strchr(q, '&');
		size_t len = amp ? (size_t)(amp - q) : strlen(q);
		const char *eq = memchr(q, '=', len);
		size_t klen = eq ? (size_t)(eq - q) : len;
		if (klen) {
			if (name_is(q, klen, k, kn)) {
				if (eq)
					push_decoded(L, eq + 1, len - klen - 1);
				else
					lua_pushboolean(L, 1);
				return 1;
			}
			n++;
		}
		q = amp ? amp + 1 : NULL;
	}
	lua_pushnil(L);
	return 1;
}

/* __pairs(A): next over a full table of the parameters. */
static int args_pairs(lua_State *L)
{
	const struct script_req *req = lua_core_request(L, lua_topointer(L, 1));
	lua_pushcfunction(L, next_trampoline_req);
	push_args(L, req ? req->query : NULL);
	lua_pushnil(L);
	return 3;
}

/* Pushes an empty table with the view metatable at mt_idx, recorded as the
 * running call's view (so that it answers nil once the request is over). */
static void push_view(lua_State *L, int mt_idx, enum lua_core_view view)
{
	lua_createtable(L, 0, 0);
	lua_pushvalue(L, mt_idx);
	lua_setmetatable(L, -2);
	lua_core_set_view_table(L, view, lua_topointer(L, -1));
}

/* ---------- the request table: every field computed on first read ---------- */

/* The client's region from the edge's map (the edge's own region in a state
 * made without one). */
static const char *region_of(lua_State *L, const struct sockaddr *client)
{
	const struct lua_vm_site *site = lua_core_site(L);
	return site->regions ? script_regions_lookup(site->regions, client) : site->edge_region;
}

static void push_path(lua_State *L, const struct script_req *req)
{
	lua_pushlstring(L, req->path ? req->path : "/", req->path ? req->path_len : 1);
}

/* __index(req, k): computes the field, stores it raw so the next read is a
 * plain table access.  A request table kept past its request answers nil.
 * Upvalues: the metatables of req.headers and req.args. */
static int req_index(lua_State *L)
{
	size_t n;
	const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &n) : NULL;
	const struct script_req *req = lua_core_request(L, lua_topointer(L, 1));
	if (!k || !req) {
		lua_pushnil(L);
		return 1;
	}
	switch (k[0]) {
	case 'a':
		if (strcmp(k, "args"))
			goto nil;
		push_view(L, lua_upvalueindex(2), LUA_CORE_VIEW_ARGS);
		break;
	case 'b':
		if (strcmp(k, "body") || !req->body || !req->body_len)
			goto nil;
		lua_pushlstring(L, req->body, req->body_len);
		break;
	case 'c':
		if (strcmp(k, "client") || !req->client)
			goto nil;
		char ip[ADDR_STRLEN];
		addr_format_ip(req->client, ip, sizeof ip);
		lua_pushstring(L, ip);
		break;
	case 'e':
		if (!strcmp(k, "edge_name"))
			lua_pushstring(L, lua_core_site(L)->edge_name);
		else if (!strcmp(k, "edge_region"))
			lua_pushstring(L, lua_core_site(L)->edge_region);
		else
			goto nil;
		break;
	case 'h':
		if (!strcmp(k, "headers")) {
			push_view(L, lua_upvalueindex(1), LUA_CORE_VIEW_HEADERS);
		} else if (!strcmp(k, "host") && req->host) {
			lua_pushstring(L, req->host);
		} else {
			goto nil;
		}
		break;
	case 'm':
		if (strcmp(k, "method"))
			goto nil;
		lua_pushstring(L, req->method ? req->method : "GET");
		break;
	case 'p':
		if (strcmp(k, "path"))
			goto nil;
		push_path(L, req);
		break;
	case 'q':
		if (strcmp(k, "query") || !req->query)
			goto nil;
		lua_pushstring(L, req->query);
		break;
	case 'r':
		if (strcmp(k, "region"))
			goto nil;
		lua_pushstring(L, lua_core_region(L) ? lua_core_region(L) : region_of(L, req->client));
		break;
	case 'u':
		if (strcmp(k, "uri"))
			goto nil;
		push_path(L, req);
		if (req->query) {
			lua_pushliteral(L, "?");
			lua_pushstring(L, req->query);
			lua_concat(L, 3);
		}
		break;
	default:
		goto nil;
	}
	lua_pushvalue(L, 2);
	lua_pushvalue(L, -2);
	lua_rawset(L, 1);
	return 1;
nil:
	lua_pushnil(L);
	return 1;
}

/* __pairs(req): every field (computing the lazy ones), then next. */
static int req_pairs(lua_State *L)
{
	static const char *const fields[] = { "method", "path", "query", "uri", "host", "body",
		                              "client", "region", "edge_name", "edge_region",
		                              "headers", "args", NULL };
	for (const char *const *f = fields; *f; f++) {
		lua_getfield(L, 1, *f); /* computes and caches */
		lua_pop(L, 1);
	}
	lua_pushcfunction(L, next_trampoline_req);
	lua_pushvalue(L, 1);
	lua_pushnil(L);
	return 3;
}

void lua_req_open(lua_State *L)
{
	lua_createtable(L, 0, 2); /* req.headers */
	lua_pushcfunction(L, hdr_index);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, hdr_pairs);
	lua_setfield(L, -2, "__pairs");
	lua_createtable(L, 0, 2); /* req.args */
	lua_pushcfunction(L, args_index);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, args_pairs);
	lua_setfield(L, -2, "__pairs");
	lua_createtable(L, 0, 2); /* req */
	lua_insert(L, -3);
	lua_pushcclosure(L, req_index, 2);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, req_pairs);
	lua_setfield(L, -2, "__pairs");
	lua_rawsetp(L, LUA_REGISTRYINDEX, &REQ_MT);
}

/* Nothing is computed here: the fields appear as the script reads them. */
void lua_req_push(lua_State *L, const struct script_req *req, const char *region)
{
	(void)req;
	(void)region;
	lua_createtable(L, 0, 4);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &REQ_MT);
	lua_setmetatable(L, -2);
}

/* ---------- response ---------- */

/* tchar of RFC 9110 5.6.2: the characters of a header name. */
static bool tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	switch (c) {
	case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
	case '-': case '.': case '^': case '_': case '`': case '|': case '~':
		return true;
	default:
		return false;
	}
}

static bool token_ok(const char *s, size_t n)
{
	if (n == 0 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!tchar((unsigned char)s[i]))
			return false;
	return true;
}

static bool value_ok(const char *s, size_t n)
{
	if (n > 8192)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
			return false;
	return true;
}

/* A header as found in the script's table: the strings stay valid while the
 * table (or, for converted numbers, the stack slot) holds them. */
struct hsrc {
	const char *name, *val;
	size_t nl, vl;
};

/* One header value at the top of the stack (a string or a number).  A
 * number's text is made on a copy moved under the `above` slots on top (the
 * value, lua_next's key and for a list the list), so it lives until the
 * response is built without moving the table lua_next walks; the caller pops
 * the value either way. */
static int collect_value(lua_State *L, int above, struct hsrc *h, char *err, size_t errlen)
{
	if (lua_type(L, -1) == LUA_TSTRING) {
		h->val = lua_tolstring(L, -1, &h->vl);
	} else if (lua_type(L, -1) == LUA_TNUMBER) {
		if (!lua_checkstack(L, 4)) {
			snprintf(err, errlen, "response headers too many");
			return -1;
		}
		lua_pushvalue(L, -1);
		h->val = lua_tolstring(L, -1, &h->vl); /* converts the copy */
		lua_insert(L, -1 - above);
	} else {
		snprintf(err, errlen, "header values must be strings");
		return -1;
	}
	if (!token_ok(h->name, h->nl) || !value_ok(h->val, h->vl)) {
		snprintf(err, errlen, "invalid response header '%.*s'", (int)(h->nl > 64 ? 64 : h->nl),
		         h->name);
		return -1;
	}
	return 0;
}

/* Walks the headers table at h once, checking every header into src (at
 * most MAX_RESP_HEADERS); *count and *bytes say how many and how long. */
static int collect_headers(lua_State *L, int h, struct hsrc *src, size_t *count, size_t *bytes,
                           char *err, size_t errlen)
{
	size_t n = 0, b = 0;
	lua_pushnil(L);
	while (lua_next(L, h)) {
		if (lua_type(L, -2) != LUA_TSTRING) {
			snprintf(err, errlen, "response header names must be strings");
			return -1;
		}
		size_t nl;
		const char *name = lua_tolstring(L, -2, &nl);
		int t = lua_type(L, -1);
		if (t == LUA_TSTRING || t == LUA_TNUMBER) {
			if (n == MAX_RESP_HEADERS)
				goto too_many;
			src[n] = (struct hsrc){ .name = name, .nl = nl };
			if (collect_value(L, 2, &src[n], err, errlen) < 0)
				return -1;
			b += nl + src[n++].vl;
		} else if (t == LUA_TTABLE) {
			lua_Integer len = (lua_Integer)lua_rawlen(L, -1);
			if (len > MAX_RESP_HEADERS)
				goto too_many; /* refused without walking it */
			for (lua_Integer i = 1; i <= len; i++) {
				if (n == MAX_RESP_HEADERS)
					goto too_many;
				lua_rawgeti(L, -1, i);
				src[n] = (struct hsrc){ .name = name, .nl = nl };
				if (collect_value(L, 3, &src[n], err, errlen) < 0)
					return -1;
				b += nl + src[n++].vl;
				lua_pop(L, 1);
			}
		} else {
			snprintf(err, errlen, "response header '%s' must be a string", name);
			return -1;
		}
		lua_pop(L, 1);
	}
	*count = n;
	*bytes = b;
	return 0;
too_many:
	snprintf(err, errlen, "more than %d response headers", MAX_RESP_HEADERS);
	return -1;
}

enum { F_STATUS, F_BODY, F_CACHE, F_HEADERS, F_COUNT };
#define RESP_WALK_MAX 8 /* a response table has 2-4 fields */

static int field_of(lua_State *L, int idx)
{
	size_t n;
	const char *k = lua_tolstring(L, idx, &n);
	switch (n) {
	case 4:
		return !memcmp(k, "body", 4) ? F_BODY : -1;
	case 5:
		return !memcmp(k, "cache", 5) ? F_CACHE : -1;
	case 6:
		return !memcmp(k, "status", 6) ? F_STATUS : -1;
	case 7:
		return !memcmp(k, "headers", 7) ? F_HEADERS : -1;
	default:
		return -1;
	}
}

/* Leaves the values of the response table's fields at idx on the stack,
 * their indices in fld (0 if absent).  One walk of the table's keys finds
 * them (no key strings to make); a table with more than RESP_WALK_MAX
 * entries is read by name instead, so its size costs nothing. */
static int response_fields(lua_State *L, int idx, int fld[F_COUNT])
{
	static const char *const names[F_COUNT] = { "status", "body", "cache", "headers" };
	if (!lua_checkstack(L, F_COUNT + 4))
		return -1;
	for (int f = 0; f < F_COUNT; f++)
		fld[f] = 0;
	int walked = 0;
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (++walked > RESP_WALK_MAX) {
			lua_settop(L, idx);
			for (int f = 0; f < F_COUNT; f++) {
				lua_pushstring(L, names[f]);
				fld[f] = lua_rawget(L, idx) == LUA_TNIL ? 0 : lua_gettop(L);
			}
			return 0;
		}
		int f = lua_type(L, -2) == LUA_TSTRING ? field_of(L, -2) : -1;
		if (f < 0) {
			lua_pop(L, 1);
			continue;
		}
		/* keep the value below a copy of the key lua_next goes on from */
		lua_pushvalue(L, -2);
		lua_remove(L, -3);
		fld[f] = lua_gettop(L) - 1;
	}
	return 0;
}

int lua_req_response(lua_State *L, int idx, struct script_resp *resp, char *err, size_t errlen)
{
	idx = lua_absindex(L, idx);
	memset(resp, 0, sizeof *resp);
	resp->status = 200;
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		return 0;
	case LUA_TSTRING: {
		size_t n;
		const char *s = lua_tolstring(L, idx, &n);
		resp->body = xmalloc(n + 1);
		memcpy(resp->body, s, n);
		resp->body[n] = 0;
		resp->body_len = n;
		script_resp_headers_init(resp, 1, 12 + 25);
		goto content_type;
	}
	case LUA_TTABLE:
		break;
	default:
		snprintf(err, errlen, "handle() returned a %s (want a table, a string or nil)",
		         luaL_typename(L, idx));
		return -1;
	}
	/* The fields, raw (a response table's metamethods are not run from
	 * here): each value is left on the stack at fld[F_*], 0 if absent. */
	int fld[F_COUNT];
	if (response_fields(L, idx, fld) < 0)
		goto fail_mem;
	int t;
	if (fld[F_STATUS]) {
		int isnum;
		lua_Integer st = lua_tointegerx(L, fld[F_STATUS], &isnum);
		if (!isnum || st < 100 || st > 599) {
			snprintf(err, errlen, "response status must be an integer 100-599");
			goto fail;
		}
		resp->status = (int)st;
	}
	t = fld[F_BODY] ? lua_type(L, fld[F_BODY]) : LUA_TNIL;
	if (t == LUA_TSTRING || t == LUA_TNUMBER) {
		size_t n;
		const char *s = lua_tolstring(L, fld[F_BODY], &n);
		resp->body = xmalloc(n + 1);
		memcpy(resp->body, s, n);
		resp->body[n] = 0;
		resp->body_len = n;
	} else if (t != LUA_TNIL) {
		snprintf(err, errlen, "response body must be a string");
		goto fail;
	}
	t = fld[F_CACHE] ? lua_type(L, fld[F_CACHE]) : LUA_TNIL;
	if (t == LUA_TNUMBER) {
		lua_Number ttl = lua_tonumber(L, fld[F_CACHE]);
		if (ttl < 0 || ttl > 365 * 86400.0) {
			snprintf(err, errlen, "response cache ttl must be 0..31536000 seconds");
			goto fail;
		}
		resp->cache_ttl = (int)ttl;
	} else if (t == LUA_TBOOLEAN) {
		resp->cache_ttl = lua_toboolean(L, fld[F_CACHE]) ? 60 : 0;
	} else if (t != LUA_TNIL) {
		snprintf(err, errlen, "response cache must be a number of seconds or a boolean");
		goto fail;
	}
	t = fld[F_HEADERS] ? lua_type(L, fld[F_HEADERS]) : LUA_TNIL;
	struct hsrc src[MAX_RESP_HEADERS];
	size_t count = 0, bytes = 0;
	if (t == LUA_TTABLE) {
		if (collect_headers(L, fld[F_HEADERS], src, &count, &bytes, err, errlen) < 0)
			goto fail;
	} else if (t != LUA_TNIL) {
		snprintf(err, errlen, "response headers must be a table");
		goto fail;
	}
	/* One block for them all, with room for the default Content-Type. */
	script_resp_headers_init(resp, count + 1, bytes + 12 + 25);
	for (size_t i = 0; i < count; i++)
		script_resp_header_add(resp, src[i].name, src[i].nl, src[i].val, src[i].vl);
	lua_settop(L, idx);
content_type:
	for (size_t i = 0; i < resp->nheaders; i++)
		if (!strcasecmp(resp->headers[i].name, "content-type"))
			return 1;
	if (resp->body_len)
		script_resp_header_add(resp, "Content-Type", 12, "text/plain; charset=utf-8", 25);
	return 1;
fail_mem:
	snprintf(err, errlen, "response table: no room on the Lua stack");
fail:
	lua_settop(L, idx);
	script_resp_free(resp);
	return -1;
}
