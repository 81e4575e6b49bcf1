/* main.c -- minicdn-origin: serves a directory with per-path caching headers,
 * signs script bundles and pushes them to the edges. */
#include "common/daemon.h"
#include "common/log.h"
#include "common/version.h"
#include "origin/config.h"
#include "origin/push.h"
#include "origin/server.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

/* SIGHUP: loads the file again and swaps in rules, push edges and log level;
 * on any error the running configuration stays and the reason is logged. */
static void reload(const char *path, struct origin_config *cfg, struct server *srv, struct push *push)
{
	char err[512];
	struct origin_config ncfg;
	memset(&ncfg, 0, sizeof ncfg);
	if (origin_config_load(path, &ncfg, err, sizeof err) < 0) {
		log_error("origin", "reload refused, keeping the running configuration: %s", err);
		return;
	}
	if (server_reload(srv, &ncfg, err, sizeof err) < 0) {
		log_error("origin", "reload refused: %s", err);
		origin_config_free(&ncfg);
		return;
	}
	if (push)
		push_set_edges(push, &ncfg);
	enum log_level lvl;
	if (log_level_parse(ncfg.log_level, &lvl) == 0)
		log_set_level(lvl);
	if (memcmp(&ncfg.listen.ss, &cfg->listen.ss, sizeof cfg->listen.ss) || ncfg.threads != cfg->threads)
		log_warn("origin", "listen/threads changes need a restart");
	log_info("origin", "reloaded %s: %zu rules", path, ncfg.n_rules);
	origin_config_free(cfg);
	*cfg = ncfg;
}

int main(int argc, char **argv)
{
	struct daemon_opts opts;
	switch (daemon_parse_args(argc, argv, "minicdn-origin", "minicdn origin server",
	                          "/etc/minicdn/origin.conf", origin_config_schema, &opts)) {
	case DAEMON_ARGS_RUN: break;
	case DAEMON_ARGS_EXIT_OK: return 0;
	default: return 2;
	}
	log_init("minicdn-origin", LOG_LVL_INFO);

	char err[512];
	struct origin_config cfg;
	memset(&cfg, 0, sizeof cfg);
	if (origin_config_load(opts.config_path, &cfg, err, sizeof err) < 0) {
		fprintf(stderr, "minicdn-origin: %s\n", err);
		return 1;
	}
	enum log_level lvl;
	log_level_parse(cfg.log_level, &lvl);
	log_set_level(lvl);

	int rc = 1;
	struct push *push = NULL;
	struct server *srv = NULL;
	if (cfg.push.secret_key) {
		push = push_new(&cfg, opts.test_only, err, sizeof err);
		if (!push) {
			fprintf(stderr, "minicdn-origin: %s: %s\n", opts.config_path, err);
			goto out;
		}
	}
	if (opts.test_only) {
		printf("%s: configuration OK\n", opts.config_path);
		rc = 0;
		goto out;
	}

	daemon_block_signals(); /* before any thread (MHD, push retries) starts */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	srv = server_new(&cfg, push, err, sizeof err);
	if (!srv || server_start(srv, &cfg, err, sizeof err) < 0) {
		log_error("origin", "%s", err);
		goto out_curl;
	}
	if (push)
		push_start(push);
	char a[ADDR_STRLEN];
	log_info("origin", "%s serving %s on %s (%zu rules, push %s)", cfg.name, cfg.root,
	         addr_format(&cfg.listen, a, sizeof a), cfg.n_rules, push ? "enabled" : "disabled");

	daemon_notify_ready(); /* listener bound, push state loaded */
	for (;;) {
		enum daemon_event ev = daemon_wait(-1);
		if (ev == DAEMON_STOP)
			break;
		if (ev != DAEMON_RELOAD)
			continue;
		daemon_notify_reloading();
		reload(opts.config_path, &cfg, srv, push);
		daemon_notify_ready();
	}
	log_info("origin", "stopping");
	daemon_notify_stopping();
	rc = 0;
	server_free(srv); /* in-flight requests finish first */
	srv = NULL;
out_curl:
	server_free(srv);
	push_free(push); /* stops the retry thread */
	push = NULL;
	curl_global_cleanup();
out:
	push_free(push);
	origin_config_free(&cfg);
	return rc;
}
