/* config.c -- the edge's configuration schema (see common/cfg.h) */
#include "edge/edge.h"
#include "common/log.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Validators that store a pointer to a static string (cfg_free does not
 * free CUSTOM targets), so a bad value is reported as FILE:LINE by the
 * loader -- at start-up and on SIGHUP alike. */
static int one_of(const char *text, void *dst, const char *const *names, char *err, size_t errlen)
{
	for (int i = 0; names[i]; i++)
		if (!strcmp(text, names[i])) {
			*(const char **)dst = names[i];
			return 0;
		}
	snprintf(err, errlen, "'%s' is not one of", text);
	for (int i = 0; names[i]; i++) {
		size_t l = strlen(err);
		snprintf(err + l, errlen - l, "%s %s", i ? "," : "", names[i]);
	}
	return -1;
}

static int parse_log_level(const char *text, void *dst, char *err, size_t errlen)
{
	static const char *const names[] = { "error", "warn", "info", "debug", NULL };
	return one_of(text, dst, names, err, errlen);
}

static int parse_query_mode(const char *text, void *dst, char *err, size_t errlen)
{
	static const char *const names[] = { "keep", "sort", "ignore", NULL };
	return one_of(text, dst, names, err, errlen);
}

#define O(f) offsetof(struct edge_config, f)

static const struct cfg_key cache_keys[] = {
	{ "path", CFG_STRING, O(cache.path), "/var/lib/minicdn/edge", 0, 0, CFG_PATH, NULL, 0, 0, NULL,
	  "LMDB directory (created if missing); the cache survives restarts" },
	{ "map_size", CFG_SIZE, O(cache.map_size), "256M", 1 << 20, 1ull << 40, 0, NULL, 0, 0, NULL,
	  "LMDB map size: the most the cache may use; LRU eviction keeps it below" },
	{ "max_object_size", CFG_SIZE, O(cache.max_object_size), "16M", 0, 1ull << 36, 0, NULL, 0, 0,
	  NULL, "larger responses stream through without being stored" },
	{ "check_time", CFG_MS, O(cache.check_ms), "60s", 1, 86400000, 0, NULL, 0, 0, NULL,
	  "after an unclean stop, how long the start waits for the body checksums; the rest are "
	  "verified in the background, and until then each body from before the stop is "
	  "verified when it is read" },
	{ "verify_rate", CFG_SIZE, O(cache.verify_rate), "0", 0, 0, 0, NULL, 0, 0, NULL,
	  "bytes per second that background checksum pass reads at most (0: no limit)" },
	{ "max_readers", CFG_INT, O(cache.max_readers), "4096", 16, 1 << 20, 0, NULL, 0, 0, NULL,
	  "concurrent zero-copy hits (LMDB reader slots)" },
	{ "heuristic_fraction", CFG_FLOAT, O(cache.heuristic_fraction), "0.1", 0, 1, 0, NULL, 0, 0,
	  NULL, "heuristic freshness = this fraction of (Date - Last-Modified)" },
	{ "heuristic_max", CFG_MS, O(cache.heuristic_max_ms), "24h", 0, 0, 0, NULL, 0, 0, NULL,
	  "cap on heuristic freshness" },
	{ "stale_if_error", CFG_MS, O(cache.stale_if_error_ms), "0", 0, 0, 0, NULL, 0, 0, NULL,
	  "default: how long past expiry a stale entry may be served when the origin fails "
	  "(the response's stale-if-error wins); an origin error status (500, 502, 503, 504) "
	  "passes through unless this or stale-if-error covers the entry" },
	{ "stale_if_unreachable", CFG_MS, O(cache.stale_if_unreachable_ms), "1h", 0, 604800000, 0,
	  NULL, 0, 0, NULL,
	  "how long past expiry a stale entry is served when the origin cannot be reached "
	  "(connection refused or reset, timeout), RFC 9111 4.2.4; a longer stale-if-error wins; "
	  "never for responses with no-cache, must-revalidate, proxy-revalidate or s-maxage; "
	  "0: only stale-if-error" },
	{ "honor_client_no_cache", CFG_BOOL, O(cache.honor_client_no_cache), "true", 0, 0, 0, NULL, 0,
	  0, NULL,
	  "true (RFC 9111): a client's Cache-Control no-cache / max-age=0 or Pragma: no-cache makes "
	  "the edge revalidate with the origin; false protects the origin from reload storms by "
	  "answering those from the cache like any other request (SIGHUP reloads)" },
	CFG_END
};

static const struct cfg_key upstream_keys[] = {
	{ "connect_timeout", CFG_MS, O(upstream.connect_timeout_ms), "2s", 1, 600000, 0, NULL, 0, 0,
	  NULL, "origin connect timeout" },
	{ "timeout", CFG_MS, O(upstream.timeout_ms), "30s", 1, 3600000, 0, NULL, 0, 0, NULL,
	  "origin total transfer timeout" },
	{ "max_connections", CFG_INT, O(upstream.max_connections), "64", 1, 10000, 0, NULL, 0, 0,
	  NULL, "kept-alive connections to the origin" },
	CFG_END
};

static const struct cfg_key limit_keys[] = {
	{ "max_header_size", CFG_SIZE, O(limits.max_header_size), "8K", 4096, 1 << 24, 0, NULL, 0, 0,
	  NULL, "per-connection buffer for request line + headers; larger requests get 414/431 "
	  "(libmicrohttpd clears it per request: 32K costs ~20% of hit throughput)" },
	{ "max_url", CFG_SIZE, O(limits.max_url), "4K", 256, 1 << 20, 0, NULL, 0, 0, NULL,
	  "longest request target (414 above)" },
	{ "max_body", CFG_SIZE, O(limits.max_body), "8M", 0, 1ull << 32, 0, NULL, 0, 0, NULL,
	  "largest request body forwarded to the origin (413 above, before any of it is read)" },
	{ "bodies_memory", CFG_SIZE, O(limits.bodies_memory), "64M", 1 << 20, 1ull << 40, 0, NULL, 0, 0,
	  NULL, "request bodies held in memory by all connections together (503 above)" },
	{ "max_connections", CFG_INT, O(limits.max_connections), "1000", 16, 1000000, 0, NULL, 0, 0,
	  NULL, "client connections in all; near it the longest idle ones are closed first "
	  "(keep it under the open-files limit)" },
	{ "max_connections_per_client", CFG_INT, O(limits.max_connections_per_client), "64", 1, 1000000,
	  0, NULL, 0, 0, NULL, "connections from one client address (more are refused)" },
	{ "head_timeout", CFG_MS, O(limits.head_timeout_ms), "10s", 100, 3600000, 0, NULL, 0, 0, NULL,
	  "whole request head, from connection open or the previous response (not reset by each byte)" },
	{ "body_timeout", CFG_MS, O(limits.body_timeout_ms), "60s", 100, 3600000, 0, NULL, 0, 0, NULL,
	  "whole request body, from the end of its head" },
	CFG_END
};

static const struct cfg_key rule_keys[] = {
	{ "path", CFG_STRING, offsetof(struct query_rule, path), NULL, 0, 0, CFG_REQUIRED, NULL, 0, 0,
	  NULL, "path glob ('*' matches anything)" },
	{ "query", CFG_CUSTOM, offsetof(struct query_rule, mode), "keep", 0, 0, 0, NULL, 0, 0,
	  parse_query_mode,
	  "keep | sort | ignore: how the query string enters the cache key" },
	CFG_END
};

const struct cfg_key edge_config_schema[] = {
	{ "name", CFG_STRING, O(name), NULL, 0, 0, CFG_REQUIRED, NULL, 0, 0, NULL,
	  "node name (healthz, Via, Cache-Status)" },
	{ "region", CFG_STRING, O(region), NULL, 0, 0, CFG_REQUIRED, NULL, 0, 0, NULL, "region label" },
	{ "listen", CFG_ADDR, O(listen), NULL, 0, 0, CFG_REQUIRED, NULL, 0, 0, NULL,
	  "HTTP listener ip:port" },
	{ "origin", CFG_STRING, O(origin), NULL, 0, 0, CFG_REQUIRED, NULL, 0, 0, NULL,
	  "origin base URL, e.g. \"http://127.0.0.10:8080\"" },
	{ "access_log", CFG_STRING, O(access_log), NULL, 0, 0, CFG_PATH, NULL, 0, 0, NULL,
	  "one line per request (combined format, then cache result, seconds taken and edge); "
	  "reopened on SIGHUP for rotation; unset = none" },
	{ "control_secret", CFG_STRLIST, O(control_secret), NULL, 0, 0, 0, NULL, 0, O(ncontrol_secret),
	  NULL, "Bearer secret for /.minicdn/ control requests (purge, scripts); a list accepts each "
	  "(rotation). Better: control_secret_file. One of the two is required" },
	{ "control_secret_file", CFG_STRLIST, O(control_secret_file), NULL, 0, 0, CFG_PATH, NULL, 0,
	  O(ncontrol_secret_file), NULL,
	  "file(s) holding the control secret (one trailing newline dropped; mode 600 or 400: "
	  "refused if group or others may read it); \"%credentials%/NAME\" is systemd's "
	  "LoadCredential=NAME ($CREDENTIALS_DIRECTORY/NAME, else /etc/credstore/NAME); "
	  "a list accepts each secret during a rotation" },
	{ "threads", CFG_INT, O(threads), "2", 1, 256, 0, NULL, 0, 0, NULL, "HTTP worker threads" },
	{ "capacity", CFG_INT, O(capacity), "1000", 1, 10000000, 0, NULL, 0, 0, NULL,
	  "in-flight requests at which /healthz load reaches 1.0" },
	{ "load_override", CFG_FLOAT, O(load_override), "-1", -1, 1000, 0, NULL, 0, 0, NULL,
	  "if >= 0, /healthz reports this load (tests)" },
	{ "log_level", CFG_CUSTOM, O(log_level), "info", 0, 0, 0, NULL, 0, 0, parse_log_level,
	  "error | warn | info | debug (SIGHUP reloads)" },
	{ "cache", CFG_GROUP, 0, NULL, 0, 0, 0, cache_keys, 0, 0, NULL, "object store" },
	{ "upstream", CFG_GROUP, 0, NULL, 0, 0, 0, upstream_keys, 0, 0, NULL, "origin client" },
	{ "limits", CFG_GROUP, 0, NULL, 0, 0, 0, limit_keys, 0, 0, NULL, "request limits" },
	{ "scripts", CFG_GROUP, O(scripts), NULL, 0, 0, 0, script_cfg_keys, 0, 0, NULL,
	  "edge scripts: signed Lua bundles (docs/scripts.md)" },
	{ "query_rules", CFG_LIST, O(query_rules), NULL, 0, 0, 0, rule_keys, sizeof(struct query_rule),
	  O(nquery_rules), NULL, "per-path query handling in the cache key (first match wins)" },
	CFG_END
};
