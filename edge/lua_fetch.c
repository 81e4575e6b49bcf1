/* lua_fetch.c -- bounded subrequests from scripts to the origin or the cache
 *
 *   local r, err = fetch("/api/user?id=1", { method = "GET", headers = {...},
 *                                            body = "...", timeout = 0.5,
 *                                            from = "origin" | "cache" })
 *   r = { status = 200, headers = { ["content-type"] = "..." }, body = "...",
 *         cache = "hit" | "stored" | "miss" (from = "cache" only) }
 *
 * from = "cache" (GET only) reads the edge's cache through the dispatch's
 * script_cache_ops: a fresh entry for the URL on the request's host is
 * answered without contacting the origin; otherwise the origin is fetched
 * (with that Host) and the response stored if it is cacheable, exactly as a
 * client's request for the same URL would be.
 *
 * Only the configured origin is reachable (the argument is a path), so a
 * script cannot turn the edge into a proxy to arbitrary hosts.  Bounded by:
 * the per-request count (lua_vm_count_fetch), a timeout capped by the
 * configured subrequest timeout and by what is left of the wall-clock budget,
 * and a maximum body size.  The curl handle is reused per worker state, so
 * connections to the origin are kept alive. */
#include "edge/lua_vm.h"
#include "common/buf.h"
#include "common/xmalloc.h"

#include <ctype.h>
#include <curl/curl.h>
#include <lauxlib.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct fetch_ctx {
	struct buf body;
	size_t max;
	int too_big;
	struct buf hdrs;
	int nhdrs;
	long status;
	struct curl_slist *hl;
	char *url;
	struct buf reqh;     /* subrequest headers, packed "name\0value\0" (Vary selection) */
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct fetch_ctx *f = ud;
	size_t len = sz * n;
	if (f->body.len + len > f->max) {
		f->too_big = 1;
		return 0; /* aborts the transfer */
	}
	buf_append(&f->body, p, len);
	return len;
}

/* Collects "name\0value\0" pairs in C: no Lua call (which may raise) runs
 * inside a curl callback. */
static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	struct fetch_ctx *f = ud;
	size_t len = sz * n;
	char *colon = memchr(p, ':', len);
	if (!colon || colon == p || colon - p > 128 || f->nhdrs >= 100)
		return len; /* status line, blank line, too many */
	size_t nl = (size_t)(colon - p);
	const char *v = colon + 1, *end = p + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
		end--;
	if ((size_t)(end - v) > 8192)
		return len;
	buf_append(&f->hdrs, p, nl); /* as received: lower-cased when pushed to Lua */
	buf_append(&f->hdrs, "", 1);
	buf_append(&f->hdrs, v, (size_t)(end - v));
	buf_append(&f->hdrs, "", 1);
	f->nhdrs++;
	return len;
}

/* Pushes the result table built from f; cache (may be NULL) is r.cache. */
static int push_result(lua_State *L, struct fetch_ctx *f, const char *cache)
{
	lua_createtable(L, 0, 4);
	lua_createtable(L, 0, f->nhdrs);
	for (size_t o = 0; o < f->hdrs.len;) {
		const char *k = f->hdrs.data + o;
		const char *v = k + strlen(k) + 1;
		char low[130];
		size_t kl = strlen(k);
		if (kl >= sizeof low)
			kl = sizeof low - 1;
		for (size_t i = 0; i < kl; i++)
			low[i] = (char)tolower((unsigned char)k[i]);
		lua_pushlstring(L, low, kl);
		lua_pushstring(L, v);
		lua_rawset(L, -3);
		o = (size_t)(v - f->hdrs.data) + strlen(v) + 1;
	}
	lua_setfield(L, -2, "headers");
	if (cache) {
		lua_pushstring(L, cache);
		lua_setfield(L, -2, "cache");
	}
	lua_pushinteger(L, f->status);
	lua_setfield(L, -2, "status");
	lua_pushlstring(L, f->body.data ? f->body.data : "", f->body.len);
	lua_setfield(L, -2, "body");
	return 1;
}

static void curl_free_handle(void *h)
{
	curl_easy_cleanup(h);
}

/* Vary selection for cache subrequests: the subrequest's own headers. */
static const char *reqh_get(void *cls, const char *name)
{
	struct fetch_ctx *f = cls;
	size_t pos = 0;
	while (pos < f->reqh.len) {
		const char *n = f->reqh.data + pos;
		pos += strlen(n) + 1;
		const char *v = f->reqh.data + pos;
		pos += strlen(v) + 1;
		if (!strcasecmp(n, name))
			return v;
	}
	return NULL;
}

/* Runs protected (see l_fetch): everything C allocates lives in *f, which
 * l_fetch frees whether this returns or raises. */
static int fetch_inner(lua_State *L)
{
	struct fetch_ctx *f = lua_touserdata(L, 3);
	size_t plen;
	const char *path = luaL_checklstring(L, 1, &plen);
	luaL_argcheck(L, plen > 0 && plen < 4096 && path[0] == '/', 1,
	              "subrequests take a path on the origin (\"/...\")");
	for (size_t i = 0; i < plen; i++)
		if ((unsigned char)path[i] <= 0x20 || path[i] == 0x7f)
			return luaL_argerror(L, 1, "path must not contain spaces or control characters");
	if (!lua_isnoneornil(L, 2))
		luaL_checktype(L, 2, LUA_TTABLE);
	const struct lua_vm_limits *lim = lua_vm_limits(L);
	const struct lua_vm_site *site = lua_vm_site(L);

	const char *method = "GET";
	const char *body = NULL;
	size_t body_len = 0;
	int timeout_ms = lim->fetch_timeout_ms;
	bool from_cache = false;
	if (lua_istable(L, 2)) {
		if (lua_getfield(L, 2, "from") != LUA_TNIL) {
			const char *from = lua_tostring(L, -1);
			if (from && !strcmp(from, "cache"))
				from_cache = true;
			else if (!from || strcmp(from, "origin"))
				return luaL_error(L, "fetch: from must be \"origin\" or \"cache\"");
		}
		lua_pop(L, 1);
		if (lua_getfield(L, 2, "method") == LUA_TSTRING)
			method = lua_tostring(L, -1);
		lua_pop(L, 1);
		if (strcmp(method, "GET") && strcmp(method, "HEAD") && strcmp(method, "POST") &&
		    strcmp(method, "PUT") && strcmp(method, "DELETE"))
			return luaL_error(L, "fetch: unsupported method '%s'", method);
		if (from_cache && strcmp(method, "GET"))
			return luaL_error(L, "fetch: from = \"cache\" is for GET subrequests only");
		if (lua_getfield(L, 2, "body") == LUA_TSTRING)
			body = lua_tolstring(L, -1, &body_len);
		lua_pop(L, 1);
		if (lua_getfield(L, 2, "timeout") == LUA_TNUMBER) {
			double t = lua_tonumber(L, -1) * 1000;
			if (t >= 1 && t < timeout_ms)
				timeout_ms = (int)t;
		}
		lua_pop(L, 1);
		if (lua_getfield(L, 2, "headers") == LUA_TTABLE) {
			lua_pushnil(L);
			while (lua_next(L, -2)) {
				const char *k = lua_tostring(L, -2), *v = lua_tostring(L, -1);
				if (k && v && !strpbrk(k, "\r\n:") && !strpbrk(v, "\r\n") && strlen(k) < 128 &&
				    strlen(v) < 4096 && !(from_cache && !strcasecmp(k, "Host"))) {
					char line[4300];
					buf_append(&f->reqh, k, strlen(k) + 1);
					buf_append(&f->reqh, v, strlen(v) + 1);
					snprintf(line, sizeof line, "%s: %s", k, v);
					f->hl = curl_slist_append(f->hl, line);
				}
				lua_pop(L, 1);
			}
		}
		lua_pop(L, 1);
	}
	int left = lua_vm_time_left_ms(L);
	if (left < timeout_ms)
		timeout_ms = left;
	if (timeout_ms < 1) {
		lua_pushnil(L);
		lua_pushliteral(L, "no time left for a subrequest");
		return 2;
	}

	/* Cache subrequest: a fresh entry answers without the origin. */
	const struct script_req *req = from_cache ? lua_vm_current_req(L) : NULL;
	const struct script_cache_ops *ops = req ? req->cache : NULL;
	if (ops) {
		int st = 0;
		int hit = ops->get(req->ctx, path, reqh_get, f, lim->fetch_max_body, &st, &f->hdrs, &f->body);
		if (hit < 0) {
			lua_pushnil(L);
			lua_pushliteral(L, "cached body over the subrequest size limit");
			return 2;
		}
		if (hit > 0) {
			f->status = st;
			for (size_t o = 0; o < f->hdrs.len; o++)
				f->nhdrs += f->hdrs.data[o] == 0; /* two NULs per header */
			f->nhdrs /= 2;
			return push_result(L, f, "hit");
		}
		char *line = xasprintf("Host: %s", ops->host(req->ctx));
		f->hl = curl_slist_append(f->hl, line);
		free(line);
	}

	void (*freefn)(void *);
	void **slot = lua_vm_curl_slot(L, &freefn);
	CURL *c = *slot;
	if (!c) {
		c = curl_easy_init();
		*slot = c;
		lua_vm_set_curl_free(L, curl_free_handle);
	} else {
		curl_easy_reset(c);
	}
	f->url = xasprintf("%s%s", site->origin, path);
	f->max = lim->fetch_max_body;
	curl_easy_setopt(c, CURLOPT_URL, f->url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, f);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "minicdn-edge-script/" "0.1");
	f->hl = curl_slist_append(f->hl, "Via: 1.1 minicdn-edge (script)");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, f->hl);
	if (!strcmp(method, "HEAD"))
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
	}
	int64_t t_req = (int64_t)time(NULL);
	CURLcode rc = curl_easy_perform(c);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	/* Leave no pointers to this call's data in the reused handle. */
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	if (rc != CURLE_OK) {
		lua_pushnil(L);
		lua_pushstring(L, f->too_big ? "subrequest body over the size limit" : curl_easy_strerror(rc));
		return 2;
	}
	f->status = status;
	const char *cache = NULL;
	if (ops) {
		if (!strcmp(method, "GET") &&
		    ops->put(req->ctx, path, reqh_get, f, (int)status, &f->hdrs, f->body.data, f->body.len,
		             t_req, (int64_t)time(NULL)) > 0)
			cache = "stored";
		else
			cache = "miss";
	}
	return push_result(L, f, cache);
}

/* fetch(path [, opts]) -> result | nil, err */
static int l_fetch(lua_State *L)
{
	struct fetch_ctx f;
	memset(&f, 0, sizeof f);
	lua_vm_count_fetch(L);
	lua_settop(L, 2);
	lua_pushcfunction(L, fetch_inner);
	lua_insert(L, 1);
	lua_pushlightuserdata(L, &f);
	int st = lua_pcall(L, 3, LUA_MULTRET, 0);
	buf_free(&f.body);
	buf_free(&f.hdrs);
	buf_free(&f.reqh);
	curl_slist_free_all(f.hl);
	free(f.url);
	if (st != LUA_OK)
		return lua_error(L);
	return lua_gettop(L);
}

int lua_fetch_open(lua_State *L)
{
	lua_pushcfunction(L, l_fetch);
	return 1;
}
