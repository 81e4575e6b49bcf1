/* main.c -- minicdn-edge: the caching HTTP edge server */
#include "edge/front/accesslog.h"
#include "edge/front/control.h"
#include "edge/cache/cache.h"
#include "edge/edge.h"
#include "edge/upstream/fetch.h"
#include "edge/front/conns.h"
#include "edge/front/http.h"
#include "edge/upstream/proxy.h"
#include "common/daemon.h"
#include "common/httpd.h"
#include "common/log.h"
#include "common/secret.h"
#include "common/xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_config(struct edge_config *c, const char *path, char *err, size_t errlen)
{
	if (strncmp(c->origin, "http://", 7) && strncmp(c->origin, "https://", 8)) {
		snprintf(err, errlen, "%s: origin must be an http:// or https:// URL, not '%s'", path, c->origin);
		return -1;
	}
	size_t ol = strlen(c->origin);
	while (ol > 8 && c->origin[ol - 1] == '/')
		c->origin[--ol] = '\0'; /* request paths start with '/' */
	enum log_level lvl;
	if (log_level_parse(c->log_level, &lvl) < 0) {
		snprintf(err, errlen, "%s: log_level must be error, warn, info or debug", path);
		return -1;
	}
	for (size_t i = 0; i < c->nquery_rules; i++) {
		const char *m = c->query_rules[i].mode;
		if (strcmp(m, "keep") && strcmp(m, "sort") && strcmp(m, "ignore")) {
			snprintf(err, errlen, "%s: query_rules[%zu].query must be keep, sort or ignore, not '%s'",
			         path, i, m);
			return -1;
		}
	}
	char why[256];
	if (secret_append_files(&c->control_secret, &c->ncontrol_secret, c->control_secret_file,
	                        c->ncontrol_secret_file, why, sizeof why) < 0) {
		snprintf(err, errlen, "%s: control_secret_file: %s", path, why);
		return -1;
	}
	if (!c->ncontrol_secret) {
		snprintf(err, errlen, "%s: control_secret or control_secret_file is required", path);
		return -1;
	}
	for (size_t i = 0; i < c->ncontrol_secret; i++)
		if (!c->control_secret[i][0]) {
			snprintf(err, errlen, "%s: control_secret must not be empty", path);
			return -1;
		}
	return 0;
}

/* The client connections' deadlines and cap (front/conns.h). */
static struct conns *start_conns(const struct edge_config *c, char *err, size_t errlen)
{
	struct conns_limits cl = { c->limits.head_timeout_ms, c->limits.body_timeout_ms,
		                   (unsigned)c->limits.max_connections };
	struct conns *cs = conns_new(&cl);
	if (!cs)
		snprintf(err, errlen, "cannot start the connection sweeper thread");
	return cs;
}

/* ---------- SIGHUP ---------- */

/* Snapshots replaced by a reload: kept until exit, a request may read one. */
struct retired {
	struct retired *next;
	struct edge_config *cfg;
};

/* Logs every restart-only setting that differs in n (it keeps its old value). */
static void warn_restart_only(const struct edge_config *o, const struct edge_config *n)
{
	const char *changed[24];
	int k = 0;
#define S(f, name) if (strcmp(o->f, n->f)) changed[k++] = name
#define I(f, name) if (o->f != n->f) changed[k++] = name
	S(name, "name");
	S(region, "region");
	S(origin, "origin");
	if (memcmp(&o->listen, &n->listen, sizeof o->listen)) changed[k++] = "listen";
	I(threads, "threads");
	S(cache.path, "cache.path");
	I(cache.map_size, "cache.map_size");
	I(cache.max_readers, "cache.max_readers");
	I(upstream.connect_timeout_ms, "upstream.connect_timeout");
	I(upstream.timeout_ms, "upstream.timeout");
	I(upstream.max_connections, "upstream.max_connections");
	I(limits.max_header_size, "limits.max_header_size");
	I(limits.bodies_memory, "limits.bodies_memory");
	I(limits.max_connections, "limits.max_connections");
	I(limits.max_connections_per_client, "limits.max_connections_per_client");
	I(limits.head_timeout_ms, "limits.head_timeout");
	I(limits.body_timeout_ms, "limits.body_timeout");
#undef S
#undef I
	for (int i = 0; i < k; i++)
		log_warn("main", "SIGHUP: %s changed: takes effect at the next restart", changed[i]);
}

/* Loads the file again; on success swaps the reloadable settings in (see
 * edge.h), on any error keeps the running ones and logs FILE:LINE: reason. */
static void reload(struct edge *e, const char *path, struct retired **retired)
{
	struct edge_config *n = xcalloc(1, sizeof *n);
	char err[512];
	if (cfg_load(path, edge_config_schema, n, err, sizeof err) < 0 ||
	    check_config(n, path, err, sizeof err) < 0) {
		log_error("main", "SIGHUP: %s: configuration rejected, the running one stays", err);
		cfg_free(edge_config_schema, n);
		free(n);
		return;
	}
	warn_restart_only(&e->cfg, n);
	enum log_level lvl;
	log_level_parse(n->log_level, &lvl);
	log_set_level(lvl);
	struct edge_config *old = atomic_exchange_explicit(&e->live, n, memory_order_acq_rel);
	if (old != &e->cfg) {
		struct retired *r = xmalloc(sizeof *r);
		r->cfg = old;
		r->next = *retired;
		*retired = r;
	}
	log_info("main", "SIGHUP: reloaded %s (log_level %s, %zu query rules, capacity %d, "
	         "stale_if_error %d ms)", path, n->log_level, n->nquery_rules, n->capacity,
	         n->cache.stale_if_error_ms);
}

/* Waits until in-flight requests finish, long enough for the slowest
 * suspended one: a miss waits at most upstream.timeout, a script waiting on
 * subrequests at most its wall-clock budget (each subrequest is capped by
 * what is left of it).  libmicrohttpd aborts if stopped with a connection
 * still suspended. */
static void wait_in_flight(struct edge *e)
{
	const struct edge_config *lc = edge_live(e);
	long long grace = lc->upstream.timeout_ms;
	if (lc->scripts.enabled && lc->scripts.time_ms > grace)
		grace = lc->scripts.time_ms;
	long long deadline = daemon_now_ms() + grace + 2000;
	while (counters_get(&e->n, C_INFLIGHT) > 0 && daemon_now_ms() < deadline)
		daemon_wait(20);
}

int main(int argc, char **argv)
{
	struct daemon_opts opts;
	switch (daemon_parse_args(argc, argv, "minicdn-edge", "caching HTTP edge (RFC 9111, LMDB)",
	                          "/etc/minicdn/edge.conf", edge_config_schema, &opts)) {
	case DAEMON_ARGS_RUN: break;
	case DAEMON_ARGS_EXIT_OK: return 0;
	default: return 2;
	}
	log_init("minicdn-edge", LOG_LVL_INFO);
	static struct edge e; /* zeroed: cfg_load wants a zeroed struct */
	char err[512];
	if (cfg_load(opts.config_path, edge_config_schema, &e.cfg, err, sizeof err) < 0 ||
	    check_config(&e.cfg, opts.config_path, err, sizeof err) < 0) {
		fprintf(stderr, "minicdn-edge: %s\n", err);
		cfg_free(edge_config_schema, &e.cfg);
		return 1;
	}
	if (opts.test_only) {
		printf("%s: configuration OK\n", opts.config_path);
		cfg_free(edge_config_schema, &e.cfg);
		return 0;
	}
	enum log_level lvl;
	log_level_parse(e.cfg.log_level, &lvl);
	log_set_level(lvl);
	daemon_block_signals();
	e.start_ms = daemon_now_ms();
	atomic_store(&e.live, &e.cfg);
	struct retired *retired = NULL;

	int rc = 1;
	struct MHD_Daemon *d = NULL;
	struct cache_opts co = { e.cfg.cache.path, e.cfg.cache.map_size, (unsigned)e.cfg.cache.max_readers,
		                 0.75, 0.6, e.cfg.cache.check_ms, e.cfg.cache.verify_rate };
	e.cache = cache_open(&co, err, sizeof err);
	if (!e.cache)
		goto fail;
	control_drain_restore(&e);
	struct fetcher_opts fo = { e.cfg.origin, e.cfg.upstream.connect_timeout_ms, e.cfg.upstream.timeout_ms,
		                   (unsigned)e.cfg.upstream.max_connections };
	e.fetcher = fetcher_start(&fo, err, sizeof err);
	if (!e.fetcher)
		goto fail;
	e.collapse = collapse_new();
	e.scripts = script_init(&e.cfg.scripts, e.cfg.name, e.cfg.region, e.cfg.origin, err, sizeof err);
	if (!e.scripts)
		goto fail;
	if (e.cfg.access_log && !(e.alog = accesslog_open(e.cfg.access_log, err, sizeof err)))
		goto fail;
	if (!(e.conns = start_conns(&e.cfg, err, sizeof err)))
		goto fail;
	d = http_start(&e, err, sizeof err);
	if (!d)
		goto fail;
	char a[ADDR_STRLEN];
	log_info("main", "%s (region %s) listening on %s, origin %s, cache %s (%llu MiB)", e.cfg.name,
	         e.cfg.region, addr_format(&e.cfg.listen, a, sizeof a), e.cfg.origin, e.cfg.cache.path,
	         (unsigned long long)(e.cfg.cache.map_size >> 20));
	daemon_notify_ready(); /* store open, listener bound, scripts loaded */
	for (;;) {
		enum daemon_event ev = daemon_wait(1000);
		if (ev == DAEMON_STOP)
			break;
		if (ev == DAEMON_RELOAD) {
			daemon_notify_reloading();
			reload(&e, opts.config_path, &retired);
			if (e.alog && accesslog_reopen(e.alog) < 0)
				log_warn("main", "access log %s: reopen: %s (still writing the old file)",
				         e.cfg.access_log, strerror(errno));
			daemon_notify_ready();
		}
		cache_maintain(e.cache);
		if (e.alog)
			accesslog_flush(e.alog);
	}
	log_info("main", "stopping: finishing in-flight requests");
	daemon_notify_stopping();
	/* Stop accepting, let in-flight requests (and suspended misses) finish,
	 * then stop MHD, the fetcher, and close LMDB last. */
	MHD_quiesce_daemon(d);
	wait_in_flight(&e);
	MHD_stop_daemon(d);
	d = NULL;
	rc = 0;
fail:
	if (rc)
		log_error("main", "%s", err);
	if (d)
		MHD_stop_daemon(d);
	conns_free(e.conns); /* after MHD: every connection was told closed */
	script_shutdown(e.scripts); /* after MHD: no request runs a script any more */
	accesslog_close(e.alog); /* after MHD: every request has logged its line */
	fetcher_stop(e.fetcher);
	cache_close(e.cache); /* before collapse_free: queued stores leave the collapse table */
	collapse_free(e.collapse);
	struct edge_config *live = atomic_load(&e.live);
	if (live && live != &e.cfg) {
		cfg_free(edge_config_schema, live);
		free(live);
	}
	while (retired) {
		struct retired *next = retired->next;
		cfg_free(edge_config_schema, retired->cfg);
		free(retired->cfg);
		free(retired);
		retired = next;
	}
	cfg_free(edge_config_schema, &e.cfg);
	if (!rc)
		log_info("main", "stopped");
	return rc;
}
