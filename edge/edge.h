/* edge.h -- the edge's configuration and the one context object every edge
 * module receives (no globals besides what main.c owns). */
#ifndef MINICDN_EDGE_H
#define MINICDN_EDGE_H

#include "common/addr.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/reqcheck.h"
#include "edge/cache/cachekey.h"
#include "edge/counters.h"
#include "edge/site.h"
#include "edge/script/script.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* The configuration.  SIGHUP reloads (edge/main.c) log_level, control_secret,
 * capacity, load_override, cache.max_object_size, cache.heuristic_*,
 * cache.stale_if_error, cache.honor_client_no_cache, limits.max_url, limits.max_body, query_rules,
 * default_site and sites (with their certificates; the list of site names
 * itself needs a restart): read those through edge_live(); everything else
 * needs a restart and is read from edge.cfg.  log_level and
 * query_rules[].query point to static strings (validated by the loader). */
#define EDGE_MAX_LISTEN 8
struct edge_config {
	char *name, *region, *origin;
	/* Accepted Bearer secrets: the inline ones, then (after loading, see
	 * edge_config_check in edge/config.c) the contents of control_secret_file. */
	char **control_secret;
	size_t ncontrol_secret;
	char **control_secret_file;
	size_t ncontrol_secret_file;
	const char *log_level;
	char **listen, **https_listen;    /* "ip:port" lists as written */
	size_t nlisten, nhttps_listen;
	char *control_listen;             /* NULL: the control API on every listener */
	bool control_tls;                 /* control_listen speaks HTTPS (default certificate) */
	char *default_site;               /* NULL: a Host no site has gets 421 */
	struct edge_site *sites;          /* site.h; the origin shorthand makes one */
	size_t nsites;
	/* parsed from the lists above by edge_config_check */
	struct addr http_addr[EDGE_MAX_LISTEN], https_addr[EDGE_MAX_LISTEN], control_addr;
	size_t nhttp, nhttps;
	int threads, capacity;
	char *access_log;                 /* file, NULL: none */
	double load_override;
	struct {
		char *path;
		uint64_t map_size, max_object_size;
		int max_readers;
		double heuristic_fraction;
		int heuristic_max_ms, stale_if_error_ms;
		int stale_if_unreachable_ms; /* stale served while the origin cannot be reached */
		int check_ms;         /* start-up wait for body checksums after an unclean stop */
		uint64_t verify_rate; /* the background checksum pass's bytes/s, 0 = no limit */
		bool honor_client_no_cache; /* false: ignore client no-cache / max-age=0 / Pragma */
		/* Large objects in slices (docs/edge.md): slice_size 0 = off. */
		uint64_t slice_size, slice_min, max_sliced_object_size;
	} cache;
	struct {
		int connect_timeout_ms, timeout_ms, max_connections;
	} upstream;
	struct {
		uint64_t max_header_size, max_body, max_url, bodies_memory;
		int max_connections, max_connections_per_client, head_timeout_ms, body_timeout_ms;
	} limits;
	struct query_rule *query_rules;
	size_t nquery_rules;
	struct script_config scripts; /* script/script.h */
};

/* The schema (edge/config.c): drives parsing, -t and --help. */
extern const struct cfg_key edge_config_schema[];

/* After cfg_load: the checks the schema cannot express (addresses, the
 * origin or sites, query modes); turns the one-origin form into a site.
 * Returns 0, or -1 with "path: reason" in err. */
int edge_config_check(struct edge_config *c, const char *path, char *err, size_t errlen);

struct cache;
struct tls_store;
struct fetcher;
struct collapse;

struct edge {
	struct edge_config cfg;           /* as loaded at start-up */
	/* The settings SIGHUP may change: an immutable snapshot swapped
	 * atomically; a replaced one is kept until exit (a request may still
	 * read it), which costs one small config per reload. */
	struct edge_config *_Atomic live;
	struct cache *cache;
	struct accesslog *alog;           /* NULL: no access log */
	struct fetcher *fetcher;
	struct collapse *collapse;
	struct scripts *scripts;          /* script.h: bundles, Lua states, KV store */
	struct tls_store *tls;            /* common/tls.h; NULL: no HTTPS */
	long long start_ms;
	/* Drained by the operator (control.c): /healthz says so and the DNS
	 * servers stop answering this edge; requests are still served.  Kept in
	 * a flag file in the cache directory, so a restart keeps it. */
	_Atomic bool draining;
	struct counters n;                /* counters.h: per-thread shards */
	struct counters *site_n;          /* one set per site (cfg.nsites; by edge_site.idx) */
	struct conns *conns;              /* front/conns.h: client connection deadlines */
	atomic_ulong rejected[REQCHECK_N];/* request heads refused by the strict checks, by reason */
	atomic_llong body_bytes;          /* request bodies held in memory now (limits.bodies_memory) */
	struct log_limit refusal_log;     /* refused control requests: lines a second (common/log.h) */
	/* Set once a script response was stored in the cache: from then on
	 * script routes first look for a fresh cached copy (one LMDB lookup),
	 * before that they do not pay for it (front/script_http.c). */
	atomic_int scripts_cached;
};

/* The reloadable settings in force (never NULL once main() started the edge;
 * valid until exit). */
static inline const struct edge_config *edge_live(const struct edge *e)
{
	return atomic_load_explicit(&((struct edge *)e)->live, memory_order_acquire);
}

/* A site's cache settings: its own where it has them, else the edge-wide
 * ones of lc (s may be NULL: edge-wide). */
static inline void edge_site_rules(const struct edge_config *lc, const struct edge_site *s,
                                   const struct query_rule **rules, size_t *n)
{
	bool own = s && s->query_rules;
	*rules = own ? s->query_rules : lc->query_rules;
	*n = own ? s->nquery_rules : lc->nquery_rules;
}

static inline uint64_t edge_site_max_object(const struct edge_config *lc, const struct edge_site *s)
{
	return s && s->max_object_size ? s->max_object_size : lc->cache.max_object_size;
}

static inline int edge_site_stale_if_error_ms(const struct edge_config *lc, const struct edge_site *s)
{
	return s && s->stale_if_error_ms ? s->stale_if_error_ms : lc->cache.stale_if_error_ms;
}

#endif
