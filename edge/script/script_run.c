/* script_run.c -- a request through the scripts: the first matching route's
 * version runs in the thread's Lua state; its result, counters and errors */
#include "edge/script/script.h"
#include "edge/script/script_int.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* At most a few error lines per second per worker thread: a hostile script
 * must not turn into a log flood.  The window is static and thread-local on
 * purpose: it limits what a thread writes to the log, whatever scripts object
 * it runs for, and costs no lock. */
static int log_allowed(struct script_stats *st)
{
	static _Thread_local long long win;
	static _Thread_local int count;
	long long sec = now_us() / 1000000;
	(void)st;
	if (sec != win) {
		win = sec;
		count = 0;
	}
	return ++count <= 20;
}

static void set_name(struct script_resp *resp, const char *name)
{
	size_t n = strnlen(name, sizeof resp->script - 1);
	memcpy(resp->script, name, n);
	resp->script[n] = '\0';
}

/* A request waiting for a subrequest: what finishing it needs. */
struct script_task {
	struct lua_task *lt;
	struct lua_vm_threads *threads;    /* the states it runs in (borrowed) */
	struct script_ver *v;              /* a reference: the version it started on */
	const struct bundle_route *route;  /* in v->b */
	const char *method;                /* borrowed from the request */
	const char *path;
	size_t path_len;
	long long run_us;                  /* time spent running so far */
};

/* Accounts a finished (or waiting) call of v and turns its status into the
 * result.  t0: when this run started. */
static enum script_result finish(struct script_ver *v, const struct bundle_route *route,
                                 const char *method, const char *path, size_t path_len,
                                 enum lua_vm_status st, enum script_err kind, const char *err,
                                 long long run_us, struct script_resp *resp)
{
	struct script_stats *stats = v->stats;
	script_stats_count(stats, run_us);
	if (st == LVM_RESPONSE) {
		set_name(resp, v->b->name);
		resp->version = v->b->version;
		return SCRIPT_RESPONSE;
	}
	if (st == LVM_PASS) {
		atomic_fetch_add(&stats->passes, 1);
		return SCRIPT_PASS;
	}
	atomic_fetch_add(&stats->errors[kind], 1);
	if (log_allowed(stats))
		log_warn("script", "%s v%llu failed on %s %.*s: %s: %s", v->b->name,
		         (unsigned long long)v->b->version, method, (int)path_len, path,
		         script_err_name(kind), err);
	if (route->on_error != BUNDLE_ON_ERROR_500)
		return SCRIPT_PASS;
	script_resp_free(resp);
	memset(resp, 0, sizeof *resp);
	resp->status = 500;
	static const char msg[] = "script error\n";
	resp->body = xstrdup(msg);
	resp->body_len = sizeof msg - 1;
	script_resp_headers_init(resp, 1, 12 + 25);
	script_resp_header_add(resp, "Content-Type", 12, "text/plain; charset=utf-8", 25);
	set_name(resp, v->b->name);
	resp->version = v->b->version;
	return SCRIPT_RESPONSE;
}

/* The first route of s that matches req (and its version in *v), or NULL. */
static const struct bundle_route *route_find(const struct script_snap *s,
                                             const struct script_req *req,
                                             struct script_ver **v)
{
	for (size_t i = 0; i < s->n; i++)
		for (size_t r = 0; r < s->v[i]->b->nroutes; r++)
			if (bundle_route_match(&s->v[i]->b->routes[r], req->method, req->site, req->host,
			                       req->path, req->path_len)) {
				*v = s->v[i];
				return &s->v[i]->b->routes[r];
			}
	return NULL;
}

bool script_routes_match(struct scripts *sc, const struct script_req *req)
{
	if (!sc->ready)
		return false;
	struct script_snap *s = script_active_thread(&sc->active);
	struct script_ver *v;
	bool hit = s && route_find(s, req, &v);
	script_active_thread_done(&sc->active, s);
	return hit;
}

enum script_result script_handle(struct scripts *sc, const struct script_req *req,
                                 struct script_resp *resp, struct script_task **task)
{
	memset(resp, 0, sizeof *resp);
	*task = NULL;
	if (!sc->ready)
		return SCRIPT_PASS;
	struct script_snap *s = script_active_thread(&sc->active);
	if (!s || s->n == 0) {
		script_active_thread_done(&sc->active, s);
		return SCRIPT_PASS;
	}
	struct script_ver *v = NULL;
	const struct bundle_route *route = route_find(s, req, &v);
	if (!route) {
		script_active_thread_done(&sc->active, s);
		return SCRIPT_PASS;
	}
	struct lua_vm *vm = lua_vm_thread(sc->threads);
	char err[512];
	enum script_err kind = SERR_RUNTIME;
	enum lua_vm_status st;
	struct lua_task *lt = NULL;
	long long t0 = now_us();
	if (!vm) {
		snprintf(err, sizeof err, "no Lua state");
		st = LVM_ERROR;
	} else {
		lua_vm_sync(vm, s->gen, s->seqs, s->n);
		st = lua_vm_call(vm, v, req, NULL, resp, &kind, err, sizeof err, &lt);
	}
	if (st == LVM_YIELD) {
		/* The snapshot is only borrowed: the task takes its own reference to
		 * the version, which keeps its bundle (and route) alive however many
		 * pushes happen while it waits. */
		struct script_task *t = xcalloc(1, sizeof *t);
		t->lt = lt;
		t->threads = sc->threads;
		script_ver_ref(v);
		t->v = v;
		t->route = route;
		t->method = req->method;
		t->path = req->path;
		t->path_len = req->path_len;
		t->run_us = now_us() - t0;
		script_active_thread_done(&sc->active, s);
		*task = t;
		return SCRIPT_WAIT;
	}
	enum script_result result =
		finish(v, route, req->method, req->path, req->path_len, st, kind, err, now_us() - t0, resp);
	script_active_thread_done(&sc->active, s);
	lua_vm_thread_settle(sc->threads);
	return result;
}

enum script_result script_resume(struct script_task *t, struct script_resp *resp)
{
	memset(resp, 0, sizeof *resp);
	char err[512];
	enum script_err kind = SERR_RUNTIME;
	long long t0 = now_us();
	enum lua_vm_status st = lua_vm_resume(t->lt, resp, &kind, err, sizeof err);
	t->run_us += now_us() - t0;
	if (st == LVM_YIELD)
		return SCRIPT_WAIT;
	enum script_result result =
		finish(t->v, t->route, t->method, t->path, t->path_len, st, kind, err, t->run_us, resp);
	struct lua_vm_threads *threads = t->threads;
	script_ver_release(t->v);
	free(t);
	lua_vm_thread_settle(threads);
	return result;
}

void script_abort(struct script_task *t)
{
	if (!t)
		return;
	lua_vm_abort(t->lt);
	script_stats_count(t->v->stats, t->run_us);
	script_ver_release(t->v);
	free(t);
}

