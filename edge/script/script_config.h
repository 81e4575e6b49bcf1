/* script_config.h -- the edge's `scripts = { ... }` configuration group:
 * the settings and the keys that parse them (docs/scripts.md lists them). */
#ifndef MINICDN_EDGE_SCRIPT_CONFIG_H
#define MINICDN_EDGE_SCRIPT_CONFIG_H

#include "common/cfg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct script_config {
	bool enabled;
	char **pubkey;       /* the origin's Ed25519 public key file(s): a bundle signed */
	size_t npubkey;      /* by any is accepted (rotation); at most BUNDLE_MAX_KEYS */
	char *path;          /* LMDB directory for bundles and the KV store */
	uint64_t map_size;   /* LMDB map size */
	uint64_t memory;     /* Lua memory cap per state (per worker) */
	uint64_t memory_total; /* ceiling on the footprint of all states together */
	int instructions;    /* instruction budget per request, in thousands */
	int time_ms;         /* wall-clock budget per request */
	int fetch_timeout_ms;/* cap on one subrequest */
	int max_fetches;     /* subrequests per request */
	uint64_t fetch_max_body; /* largest subrequest body kept */
	char *regions;       /* optional "CIDR REGION" file for req.region */
	char *default_region;
};

/* Keys of the group; the edge's schema embeds them as
 *   { .name = "scripts", .type = CFG_GROUP, .offset = offsetof(conf, scripts), .sub = script_cfg_keys } */
extern const struct cfg_key script_cfg_keys[];

#endif
