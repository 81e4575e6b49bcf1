/* script.c -- edge scripts: the scripts object's life (store, KV, regions,
 * Lua states), the control endpoint and the metrics */
#include "edge/script/script.h"
#include "edge/script/script_int.h"
#include "edge/script/script_store.h"
#include "edge/script/kv.h"
#include "edge/script/region.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- lifecycle ---------- */

/* Copies the configuration and what scripts see of the edge into s. */
static void copy_settings(struct scripts *s, const struct script_config *cfg, const char *edge_name,
                          const char *edge_region, const char *origin)
{
	s->cfg = *cfg;
	s->cfg.pubkey = NULL; /* read into s->keys by script_init, not kept */
	s->cfg.npubkey = 0;
	s->cfg.path = cfg->path ? xstrdup(cfg->path) : NULL;
	s->cfg.regions = cfg->regions ? xstrdup(cfg->regions) : NULL;
	s->cfg.default_region = cfg->default_region ? xstrdup(cfg->default_region) : NULL;
	s->lim = (struct lua_vm_limits){
		.memory = cfg->memory ? cfg->memory : 32u << 20,
		.memory_total = cfg->memory_total,
		.instructions = (long long)(cfg->instructions ? cfg->instructions : 10000) * 1000,
		.time_ms = cfg->time_ms ? cfg->time_ms : 1000,
		.fetch_timeout_ms = cfg->fetch_timeout_ms ? cfg->fetch_timeout_ms : 2000,
		.max_fetches = cfg->max_fetches,
		.fetch_max_body = cfg->fetch_max_body ? cfg->fetch_max_body : 1u << 20,
	};
	s->site.edge_name = xstrdup(edge_name ? edge_name : "");
	s->site.edge_region = xstrdup(edge_region ? edge_region : "");
	s->site.origin = xstrdup(origin ? origin : "");
	/* origin may end with '/': paths from scripts start with one */
	size_t ol = strlen(s->site.origin);
	if (ol && s->site.origin[ol - 1] == '/')
		((char *)s->site.origin)[ol - 1] = 0;
}

/* Opens the LMDB environment shared by the bundle store and the KV store. */
static int open_env(struct scripts *s, char *err, size_t errlen)
{
	int rc;
	if (fsutil_mkdir_p(s->cfg.path, 0755, err, errlen) < 0)
		return -1;
	if ((rc = mdb_env_create(&s->env)) || (rc = mdb_env_set_maxdbs(s->env, 8)) ||
	    (rc = mdb_env_set_mapsize(s->env, s->cfg.map_size ? s->cfg.map_size : 64u << 20)) ||
	    (rc = mdb_env_set_maxreaders(s->env, 512)) ||
	    /* NOSYNC: KV writes stay cheap; bundle activations call mdb_env_sync. */
	    (rc = mdb_env_open(s->env, s->cfg.path, MDB_NOSYNC | MDB_NOTLS, 0644))) {
		snprintf(err, errlen, "%s: %s", s->cfg.path, mdb_strerror(rc));
		return -1;
	}
	return 0;
}

struct scripts *script_init(const struct script_config *cfg, const char *edge_name,
                            const char *edge_region, const char *origin, char *err,
                            size_t errlen)
{
	struct scripts *s = xcalloc(1, sizeof *s);
	pthread_mutex_init(&s->push_mu, NULL);
	pthread_mutex_init(&s->stats.mu, NULL);
	script_active_init(&s->active);
	copy_settings(s, cfg, edge_name, edge_region, origin);

	if (cfg->npubkey > BUNDLE_MAX_KEYS) {
		snprintf(err, errlen, "scripts.pubkey: %zu keys, at most %d", cfg->npubkey, BUNDLE_MAX_KEYS);
		goto fail;
	}
	for (size_t i = 0; i < cfg->npubkey; i++)
		if (bundle_key_read(cfg->pubkey[i], s->keys.pk[i], BUNDLE_PK_LEN, err, errlen) < 0)
			goto fail;
	s->keys.n = cfg->npubkey;
	const char *fallback = s->cfg.default_region && *s->cfg.default_region ? s->cfg.default_region
	                                                                      : s->site.edge_region;
	if (!(s->regions = script_regions_load(s->cfg.regions, fallback, err, errlen)))
		goto fail;
	if (!s->cfg.path || !s->cfg.enabled) {
		/* Not configured: the edge runs without scripts; pushes get 503. */
		log_info("script", "edge scripts disabled (%s)", s->cfg.path ? "scripts.enabled = false"
		                                                      : "no scripts.path");
		return s;
	}
	if (open_env(s, err, errlen) < 0 || script_store_open(s, err, errlen) < 0)
		goto fail;
	if (!(s->kv = kv_open(s->env, err, errlen)))
		goto fail;
	s->site.regions = s->regions;
	s->site.kv = s->kv;
	if (!(s->threads = lua_vm_threads_new(&s->lim, &s->site))) {
		snprintf(err, errlen, "no thread-local key left for the Lua states");
		goto fail;
	}
	s->ready = 1;
	if (s->keys.n && script_store_load(s, err, errlen) < 0)
		goto fail;
	else if (!s->keys.n)
		log_warn("script", "scripts.pubkey not set: pushed bundles will be refused");
	return s;
fail:
	script_shutdown(s);
	return NULL;
}

void script_shutdown(struct scripts *s)
{
	if (!s)
		return;
	lua_vm_threads_free(s->threads);
	script_active_fini(&s->active);
	kv_close(s->kv);
	if (s->env) {
		mdb_env_sync(s->env, 1);
		mdb_env_close(s->env);
	}
	free(s->cfg.path);
	free(s->cfg.regions);
	free(s->cfg.default_region);
	script_regions_free(s->regions);
	free((char *)s->site.edge_name);
	free((char *)s->site.edge_region);
	free((char *)s->site.origin);
	script_stats_free(&s->stats);
	pthread_mutex_destroy(&s->stats.mu);
	pthread_mutex_destroy(&s->push_mu);
	free(s);
}

bool script_any(const struct scripts *s)
{
	return s && s->ready && script_active_any(&s->active);
}

/* ---------- control and metrics ---------- */

int script_control(struct scripts *s, const char *method, const char *path, const char *body,
                   size_t len, struct buf *out)
{
	static const char base[] = "/.minicdn/scripts";
	if (!s || !s->ready || !s->cfg.enabled)
		return script_store_refuse(out, 503, NULL, "scripts are disabled on this edge");
	if (strncmp(path, base, sizeof base - 1) != 0)
		return script_store_refuse(out, 404, NULL, "no such control path");
	const char *rest = path + sizeof base - 1;
	if (!strcmp(method, "GET") && (!*rest || !strcmp(rest, "/"))) {
		script_store_list(s, out);
		return 200;
	}
	if (!strcmp(method, "POST") && (!*rest || !strcmp(rest, "/")))
		return script_store_push(s, body, len, NULL, out);
	if (!strcmp(method, "DELETE") && rest[0] == '/' && rest[1])
		return script_store_push(s, body, len, rest + 1, out);
	return script_store_refuse(out, 405, NULL,
	                           "use GET or POST /.minicdn/scripts, DELETE /.minicdn/scripts/NAME");
}

void script_metrics(struct scripts *s, struct buf *out)
{
	struct script_snap *snap = s ? script_active_acquire(&s->active) : NULL;
	buf_puts(out, "# HELP minicdn_script_active_version Active version of each script bundle.\n"
	              "# TYPE minicdn_script_active_version gauge\n");
	for (size_t i = 0; snap && i < snap->n; i++)
		buf_printf(out, "minicdn_script_active_version{script=\"%s\"} %llu\n", snap->v[i]->b->name,
		           (unsigned long long)snap->v[i]->b->version);
	script_snap_release(snap);
	if (s)
		script_stats_metrics(&s->stats, out);
	buf_printf(out, "# TYPE minicdn_script_kv_entries gauge\nminicdn_script_kv_entries %ld\n",
	           kv_count(s ? s->kv : NULL));
}
