/* edge.h -- the edge's configuration and the one context object every edge
 * module receives (no globals besides what main.c owns). */
#ifndef MINICDN_EDGE_H
#define MINICDN_EDGE_H

#include "common/addr.h"
#include "common/cfg.h"
#include "edge/cachekey.h"
#include "edge/script.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct edge_config {
	char *name, *region, *origin, *control_secret, *log_level;
	struct addr listen;
	int threads, capacity;
	double load_override;
	struct {
		char *path;
		uint64_t map_size, max_object_size;
		int max_readers;
		double heuristic_fraction;
		int heuristic_max_ms, stale_if_error_ms;
	} cache;
	struct {
		int connect_timeout_ms, timeout_ms, max_connections;
	} upstream;
	struct {
		uint64_t max_header_size, max_body, max_url;
	} limits;
	struct query_rule *query_rules;
	size_t nquery_rules;
	struct script_config scripts; /* issue 5: edge/script.h */
};

/* The schema (edge/config.c): drives parsing, -t and --help. */
extern const struct cfg_key edge_config_schema[];

struct cache;
struct fetcher;
struct collapse;

struct edge_counters {
	_Atomic unsigned long requests, hits, misses, stale_served, revalidated, origin_fetches,
		origin_errors, stored, purged, bad_requests, collapsed, passes;
};

struct edge {
	struct edge_config cfg;
	struct cache *cache;
	struct fetcher *fetcher;
	struct collapse *collapse;
	long long start_ms;
	_Atomic long inflight;
	struct edge_counters n;
};

#endif
