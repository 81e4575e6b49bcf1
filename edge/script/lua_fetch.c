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
 * answered without contacting the origin (synchronously: a local LMDB read);
 * otherwise the origin is fetched (with that Host) and the response stored if
 * it is cacheable, exactly as a client's request for the same URL would be.
 *
 * Origin subrequests never block the worker thread: the request goes to the
 * edge's fetcher (edge/upstream/fetch.h, libcurl multi in its own thread, connections
 * kept alive), the dispatch suspends the client connection (req->suspend),
 * and fetch() yields the script's coroutine.  When the transfer ends the
 * fetcher's thread calls req->wake (the dispatch resumes the connection),
 * the dispatch calls script_resume on the worker thread, and fetch()
 * returns its result through the continuation below.
 *
 * Only the configured origin is reachable (the argument is a path), so a
 * script cannot turn the edge into a proxy to arbitrary hosts.  Bounded by:
 * the per-request count (lua_core_count_fetch), a timeout capped by the
 * configured subrequest timeout and by what is left of the wall-clock budget
 * (and by the fetcher's own timeout), and a maximum body size (the transfer is
 * aborted past it). */
#include "edge/script/lua_fetch.h"
#include "edge/script/lua_core.h"
#include "common/buf.h"
#include "common/hdrlist.h"
#include "common/xmalloc.h"
#include "edge/upstream/fetch.h"

#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stddef.h>
#include <lauxlib.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct fetch_ctx {
	struct buf body;
	struct buf hdrs;
	long status;
	struct curl_slist *hl;
	struct buf reqh;     /* subrequest headers, packed "name\0value\0" (Vary selection) */
	bool yieldable;      /* the calling coroutine can wait */
	struct lua_sub *sub; /* set when the origin must be asked: l_fetch yields */
};

/* An origin subrequest in flight.  Owned by the task that waits for it
 * (lua_core_set_pending) until fetch_cont takes it over. */
struct lua_sub {
	struct fetch_waiter w; /* first: the wake callback casts back */
	struct fetch *f;       /* a reference */
	bool registered;       /* w is in f's waiters */
	void (*wake)(void *ctx);
	void (*suspend)(void *ctx);
	void *ctx;
	bool store;            /* from = "cache": store the response if cacheable */
	char *path;
	struct buf reqh;       /* the subrequest's headers (Vary selection on store) */
};

/* Pushes the result table; hdrs packed "name\0value\0", cache (may be
 * NULL) is r.cache. */
static int push_result(lua_State *L, long status, const struct buf *hdrs, const char *body,
                       size_t body_len, const char *cache)
{
	int nhdrs = 0;
	struct hdrlist_iter it;
	const char *k, *v;
	hdrlist_init(&it, hdrs);
	while (hdrlist_next(&it, &k, &v))
		nhdrs++;
	lua_createtable(L, 0, 4);
	lua_createtable(L, 0, nhdrs);
	hdrlist_init(&it, hdrs);
	while (hdrlist_next(&it, &k, &v)) {
		char low[130];
		size_t kl = strlen(k);
		if (kl >= sizeof low)
			kl = sizeof low - 1;
		for (size_t i = 0; i < kl; i++)
			low[i] = (char)tolower((unsigned char)k[i]);
		lua_pushlstring(L, low, kl);
		lua_pushstring(L, v);
		lua_rawset(L, -3);
	}
	lua_setfield(L, -2, "headers");
	if (cache) {
		lua_pushstring(L, cache);
		lua_setfield(L, -2, "cache");
	}
	lua_pushinteger(L, status);
	lua_setfield(L, -2, "status");
	lua_pushlstring(L, body ? body : "", body_len);
	lua_setfield(L, -2, "body");
	return 1;
}

/* Vary selection for cache subrequests: the subrequest's own headers
 * (cls: a struct buf packed "name\0value\0"). */
static const char *reqh_get(void *cls, const char *name)
{
	return fetch_header(cls, name);
}

/* What fetch()'s options table (argument 2, if any) asks for; raises on a
 * bad option.  Strings in o are borrowed from that table. */
struct fetch_opts {
	const char *method;
	const char *body;
	size_t body_len;
	int timeout_ms;
	bool from_cache;
};

static void read_opts(lua_State *L, struct fetch_ctx *f, struct fetch_opts *o)
{
	if (!lua_istable(L, 2))
		return;
	if (lua_getfield(L, 2, "from") != LUA_TNIL) {
		const char *from = lua_tostring(L, -1);
		if (from && !strcmp(from, "cache"))
			o->from_cache = true;
		else if (!from || strcmp(from, "origin"))
			(void)luaL_error(L, "fetch: from must be \"origin\" or \"cache\"");
	}
	lua_pop(L, 1);
	if (lua_getfield(L, 2, "method") == LUA_TSTRING)
		o->method = lua_tostring(L, -1);
	lua_pop(L, 1);
	if (strcmp(o->method, "GET") && strcmp(o->method, "HEAD") && strcmp(o->method, "POST") &&
	    strcmp(o->method, "PUT") && strcmp(o->method, "DELETE"))
		(void)luaL_error(L, "fetch: unsupported method '%s'", o->method);
	if (o->from_cache && strcmp(o->method, "GET"))
		(void)luaL_error(L, "fetch: from = \"cache\" is for GET subrequests only");
	if (lua_getfield(L, 2, "body") == LUA_TSTRING)
		o->body = lua_tolstring(L, -1, &o->body_len);
	lua_pop(L, 1);
	if (lua_getfield(L, 2, "timeout") == LUA_TNUMBER) {
		double t = lua_tonumber(L, -1) * 1000;
		if (t >= 1 && t < o->timeout_ms)
			o->timeout_ms = (int)t;
	}
	lua_pop(L, 1);
	if (lua_getfield(L, 2, "headers") == LUA_TTABLE) {
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			const char *k = lua_tostring(L, -2), *v = lua_tostring(L, -1);
			if (k && v && !strpbrk(k, "\r\n:") && !strpbrk(v, "\r\n") && strlen(k) < 128 &&
			    strlen(v) < 4096 && !(o->from_cache && !strcasecmp(k, "Host"))) {
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
	const struct lua_vm_limits *lim = lua_core_limits(L);
	const struct lua_vm_site *site = lua_core_site(L);

	struct fetch_opts o = { "GET", NULL, 0, lim->fetch_timeout_ms, false };
	read_opts(L, f, &o);
	const char *method = o.method, *body = o.body;
	size_t body_len = o.body_len;
	int timeout_ms = o.timeout_ms;
	bool from_cache = o.from_cache;
	int left = lua_core_time_left_ms(L);
	if (left < timeout_ms)
		timeout_ms = left;
	if (timeout_ms < 1) {
		lua_pushnil(L);
		lua_pushliteral(L, "no time left for a subrequest");
		return 2;
	}

	/* Cache subrequest: a fresh entry answers without the origin. */
	const struct script_req *req = from_cache ? lua_core_current_req(L) : NULL;
	const struct script_cache_ops *ops = req ? req->cache : NULL;
	if (ops) {
		int st = 0;
		int hit = ops->get(req->ctx, path, reqh_get, &f->reqh, lim->fetch_max_body, &st, &f->hdrs,
		                   &f->body);
		if (hit < 0) {
			lua_pushnil(L);
			lua_pushliteral(L, "cached body over the subrequest size limit");
			return 2;
		}
		if (hit > 0)
			return push_result(L, st, &f->hdrs, f->body.data, f->body.len, "hit");
		char *line = xasprintf("Host: %s", ops->host(req->ctx));
		f->hl = curl_slist_append(f->hl, line);
		free(line);
	}

	if (!req)
		req = lua_core_current_req(L);
	if (!req || !req->fetcher || !req->suspend || !req->wake) {
		lua_pushnil(L);
		lua_pushliteral(L, "origin subrequests are not available here");
		return 2;
	}
	if (!f->yieldable)
		return luaL_error(L, "fetch: cannot wait for the origin here (inside a callback of a C "
		                     "function such as string.gsub or table.sort, or while the script loads)");
	char *url = xasprintf("%s%s", site->origin, path);
	f->hl = curl_slist_append(f->hl, "Via: 1.1 minicdn-edge (script)");
	f->hl = curl_slist_append(f->hl, "User-Agent: minicdn-edge-script/0.1");
	char *b = NULL;
	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		b = xmalloc(body_len + 1);
		if (body_len)
			memcpy(b, body, body_len);
	}
	struct fetch *ft = fetch_new(method, url, f->hl, b, body_len, NULL, NULL);
	f->hl = NULL; /* the fetch owns the list now */
	free(url);
	ft->timeout_ms = timeout_ms;
	ft->max_body = lim->fetch_max_body;
	struct lua_sub *s = xcalloc(1, sizeof *s);
	s->f = ft;
	s->wake = req->wake;
	s->suspend = req->suspend;
	s->ctx = req->ctx;
	s->store = ops != NULL;
	s->path = xstrdup(path);
	s->reqh = f->reqh;
	memset(&f->reqh, 0, sizeof f->reqh);
	f->sub = s;
	return 0;
}

/* In the fetcher's thread, under f->lock: resumes the client connection
 * once the transfer is over (header and body progress are not wanted). */
static void sub_wake(struct fetch_waiter *w)
{
	struct lua_sub *s = (struct lua_sub *)w;
	if (s->f->state < F_DONE) {
		w->waiting = true;
		return;
	}
	s->wake(s->ctx);
}

/* On the worker thread, the connection resumed: 1 if the transfer is over
 * (the waiter is removed), else waits again. */
static int sub_ready(void *p)
{
	struct lua_sub *s = p;
	pthread_mutex_lock(&s->f->lock);
	bool done = s->f->state >= F_DONE;
	if (done) {
		fetch_remove_waiter(s->f, &s->w);
		s->registered = false;
	} else {
		s->w.waiting = true;
		s->suspend(s->ctx);
	}
	pthread_mutex_unlock(&s->f->lock);
	return done;
}

static void sub_free(struct lua_sub *s)
{
	if (s->registered) {
		pthread_mutex_lock(&s->f->lock);
		fetch_remove_waiter(s->f, &s->w);
		pthread_mutex_unlock(&s->f->lock);
	}
	fetch_unref(s->f);
	free(s->path);
	buf_free(&s->reqh);
	free(s);
}

/* The request ends while waiting: the transfer goes on in the fetcher and
 * its result is dropped. */
static void sub_cancel(void *p)
{
	sub_free(p);
}

/* Runs protected inside the resumed coroutine: pushes fetch()'s results. */
static int sub_result(lua_State *L)
{
	struct lua_sub *s = lua_touserdata(L, 1);
	struct fetch *f = s->f;
	if (f->state != F_DONE) {
		lua_pushnil(L);
		if (f->too_big)
			lua_pushliteral(L, "subrequest body over the size limit");
		else
			lua_pushstring(L, f->err[0] ? f->err : "subrequest failed");
		return 2;
	}
	const char *cache = NULL;
	if (s->store) {
		const struct script_req *req = lua_core_current_req(L);
		const struct script_cache_ops *ops = req ? req->cache : NULL;
		if (ops && ops->put(req->ctx, s->path, reqh_get, &s->reqh, (int)f->status, &f->hdrs,
		                    f->body.data, f->body.len, f->request_time,
		                    f->response_time ? f->response_time : (int64_t)time(NULL)) > 0)
			cache = "stored";
		else
			cache = "miss";
	}
	return push_result(L, (long)f->status, &f->hdrs, f->body.data, f->body.len, cache);
}

/* fetch()'s continuation after the yield. */
static int fetch_cont(lua_State *L, int status, lua_KContext k)
{
	struct lua_sub *s = (struct lua_sub *)k;
	lua_settop(L, 0);
	lua_pushcfunction(L, sub_result);
	lua_pushlightuserdata(L, s);
	int st = lua_pcall(L, 1, LUA_MULTRET, 0);
	sub_free(s);
	if (st != LUA_OK)
		return lua_error(L);
	return lua_gettop(L);
}

/* fetch(path [, opts]) -> result | nil, err */
static int l_fetch(lua_State *L)
{
	struct fetch_ctx f;
	memset(&f, 0, sizeof f);
	lua_core_count_fetch(L);
	lua_settop(L, 2);
	lua_pushcfunction(L, fetch_inner);
	lua_insert(L, 1);
	lua_pushlightuserdata(L, &f);
	f.yieldable = lua_isyieldable(L);
	int st = lua_pcall(L, 3, LUA_MULTRET, 0);
	buf_free(&f.body);
	buf_free(&f.hdrs);
	buf_free(&f.reqh);
	curl_slist_free_all(f.hl);
	if (st != LUA_OK)
		return lua_error(L);
	if (!f.sub)
		return lua_gettop(L);
	/* Wait for the origin: suspend the client connection, then start the
	 * transfer (so its wake-up cannot come before the suspension). */
	struct lua_sub *s = f.sub;
	s->w.wake = sub_wake;
	s->w.waiting = true;
	pthread_mutex_lock(&s->f->lock);
	fetch_add_waiter(s->f, &s->w);
	s->registered = true;
	pthread_mutex_unlock(&s->f->lock);
	s->suspend(s->ctx);
	fetch_submit(lua_core_current_req(L)->fetcher, s->f);
	lua_core_set_pending(L, s, sub_ready, sub_cancel);
	return lua_yieldk(L, 0, (lua_KContext)s, fetch_cont);
}

int lua_fetch_open(lua_State *L)
{
	lua_pushcfunction(L, l_fetch);
	return 1;
}
