/* script_config.c -- keys of the edge's `scripts = { ... }` group */
#include "edge/script/script_config.h"

#include <stddef.h>

#define K(f) offsetof(struct script_config, f)
const struct cfg_key script_cfg_keys[] = {
	{ .name = "enabled", .type = CFG_BOOL, .offset = K(enabled), .def = "true",
	  .help = "accept and run pushed Lua bundles" },
	{ .name = "pubkey", .type = CFG_STRLIST, .offset = K(pubkey), .count_offset = K(npubkey),
	  .flags = CFG_PATH,
	  .help = "origin's Ed25519 public key file, or a list of them while the origin's key is "
	          "rotated: a bundle signed by any is accepted (bundles are refused without one)" },
	{ .name = "path", .type = CFG_STRING, .offset = K(path), .flags = CFG_PATH,
	  .help = "LMDB directory for bundles and the script KV store" },
	{ .name = "map_size", .type = CFG_SIZE, .offset = K(map_size), .def = "64M", .min = 1 << 20,
	  .max = 1e12, .help = "LMDB map size of the script store" },
	{ .name = "memory", .type = CFG_SIZE, .offset = K(memory), .def = "32M", .min = 1 << 20,
	  .max = 4e9, .help = "Lua memory cap per worker state" },
	{ .name = "memory_total", .type = CFG_SIZE, .offset = K(memory_total), .def = "256M",
	  .min = 1 << 20, .max = 1e12,
	  .help = "ceiling on what all worker states hold from the system together" },
	{ .name = "instructions", .type = CFG_INT, .offset = K(instructions), .def = "10000",
	  .min = 10, .max = 2000000000, .help = "instruction budget per request, in thousands" },
	{ .name = "time", .type = CFG_MS, .offset = K(time_ms), .def = "1s", .min = 1, .max = 600000,
	  .help = "wall-clock budget per request" },
	{ .name = "fetch_timeout", .type = CFG_MS, .offset = K(fetch_timeout_ms), .def = "2s", .min = 1,
	  .max = 600000, .help = "cap on one subrequest" },
	{ .name = "max_fetches", .type = CFG_INT, .offset = K(max_fetches), .def = "4", .min = 0,
	  .max = 100, .help = "subrequests per request" },
	{ .name = "fetch_max_body", .type = CFG_SIZE, .offset = K(fetch_max_body), .def = "1M",
	  .min = 1, .max = 1e9, .help = "largest subrequest body" },
	{ .name = "regions", .type = CFG_STRING, .offset = K(regions), .flags = CFG_PATH,
	  .help = "\"CIDR REGION\" file giving req.region of clients" },
	{ .name = "default_region", .type = CFG_STRING, .offset = K(default_region), .def = "",
	  .help = "req.region when no prefix matches (default: the edge's region)" },
	CFG_END,
};
#undef K
