/* reload.c -- build a new snapshot off to the side, then swap it in */
#include "dns/reload.h"
#include "dns/health.h"
#include "dns/snap.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* One reload at a time; loading happens outside view_lock so queries and
 * health publication go on meanwhile. */
static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;

static void publish(struct snapshot *s)
{
	struct edge_health *h = xcalloc(s->es->ne + 1, sizeof *h);
	health_fill(s->es, s->conf.health.initial, h);
	view_lock();
	const struct view *old = view_current();
	if (old) {
		const struct dns_conf *a = &old->snap->conf, *b = &s->conf;
		bool same = a->n_listen == b->n_listen && a->workers == b->workers;
		for (size_t i = 0; same && i < a->n_listen; i++)
			same = !strcmp(a->listen[i], b->listen[i]);
		if (!same)
			log_warn("reload", "listen addresses and workers change only on restart");
	}
	view_publish(s, h);
	view_unlock();
	free(h);
}

static int load(const char *config_path, char *err, size_t errlen)
{
	struct snapshot *s = snapshot_load(config_path, err, errlen);
	if (!s)
		return -1;
	log_info("reload", "loaded %s: %zu zone(s), %zu map prefixes, %zu edges in %zu regions, in %lld ms",
	         config_path, s->nzones, geo_map_prefixes(s->geo), s->es->ne, s->es->nr, s->load_ms);
	publish(s);
	return 0;
}

int reload_initial(const char *config_path, char *err, size_t errlen)
{
	pthread_mutex_lock(&reload_lock);
	int rc = load(config_path, err, errlen);
	pthread_mutex_unlock(&reload_lock);
	return rc;
}

int reload_config(const char *config_path, char *err, size_t errlen)
{
	pthread_mutex_lock(&reload_lock);
	int rc = load(config_path, err, errlen);
	pthread_mutex_unlock(&reload_lock);
	if (rc < 0)
		log_error("reload", "rejected, the previous configuration keeps serving: %s", err);
	else
		health_kick();
	return rc;
}
