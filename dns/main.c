/* main.c -- minicdn-dns: authoritative, geo-redirecting DNS server */
#include "dns/conf.h"
#include "dns/health.h"
#include "dns/reload.h"
#include "dns/server.h"
#include "dns/snap.h"
#include "dns/stats.h"
#include "common/daemon.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	struct daemon_opts o;
	switch (daemon_parse_args(argc, argv, "minicdn-dns", "authoritative DNS that sends clients to the nearest healthy edge",
	                          "/etc/minicdn/dns.conf", dns_conf_schema, &o)) {
	case DAEMON_ARGS_EXIT_OK: return 0;
	case DAEMON_ARGS_USAGE: return 2;
	case DAEMON_ARGS_RUN: break;
	}
	log_init("minicdn-dns", LOG_LVL_INFO);
	char err[1024];
	if (o.test_only) {
		/* -t loads everything a start would (zones, map, GeoIP), then drops it. */
		struct snapshot *s = snapshot_load(o.config_path, err, sizeof err);
		if (!s) {
			fprintf(stderr, "minicdn-dns: %s\n", err);
			return 1;
		}
		printf("%s: configuration OK (%zu zone(s), %zu map prefixes, %zu edges)\n", o.config_path, s->nzones,
		       geo_map_prefixes(s->geo), s->es->ne);
		snapshot_free(s);
		return 0;
	}
	daemon_block_signals();
	if (reload_initial(o.config_path, err, sizeof err) < 0) {
		log_error("main", "%s", err);
		return 1;
	}
	const struct snapshot *snap = view_current()->snap;
	enum log_level lvl;
	if (log_level_parse(snap->conf.log_level, &lvl) == 0)
		log_set_level(lvl);
	/* The first health round runs before we answer, bounded by the check timeout. */
	health_start();
	if (!health_wait_first_round(snap->conf.health.timeout_ms + 1000))
		log_warn("main", "first health round not finished; answering with the initial state");
	struct server *srv = server_start(&snap->conf, err, sizeof err);
	if (!srv) {
		log_error("main", "%s", err);
		health_stop();
		view_shutdown();
		return 1;
	}
	if (stats_start(&snap->conf.stats_listen, o.config_path, srv, err, sizeof err) < 0) {
		log_error("main", "stats listener: %s", err);
		server_stop(srv);
		health_stop();
		view_shutdown();
		return 1;
	}
	snap = NULL; /* may be swapped from now on */
	log_info("main", "serving");
	daemon_notify_ready(); /* zones loaded, UDP/TCP and stats listeners bound */
	for (;;) {
		enum daemon_event ev = daemon_wait(-1);
		if (ev == DAEMON_STOP)
			break;
		if (ev == DAEMON_RELOAD) {
			log_info("main", "SIGHUP: reloading %s", o.config_path);
			daemon_notify_reloading();
			if (reload_config(o.config_path, err, sizeof err) == 0)
				log_info("main", "reload done");
			daemon_notify_ready();
		}
	}
	log_info("main", "stopping");
	daemon_notify_stopping();
	stats_stop();
	server_stop(srv);
	health_stop();
	view_shutdown();
	log_info("main", "stopped");
	return 0;
}
