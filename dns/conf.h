/* conf.h -- minicdn-dns configuration: the schema table and the struct it fills.
 *
 * One table (dns_conf_schema) drives parsing, `-t` and `--help`.  Relative
 * file names (zones, map, geoip) are relative to the config file's folder;
 * dns_conf_load resolves them. */
#ifndef MINICDN_DNS_CONF_H
#define MINICDN_DNS_CONF_H

#include "common/addr.h"
#include "common/cfg.h"
#include <stdbool.h>
#include <stddef.h>

struct conf_zone {
	char *name; /* "cdn.test." */
	char *file;
};

struct conf_region {
	char *name;
	double lat, lon;
	char **backup; /* region names tried in order when this one has no healthy edge */
	size_t n_backup;
};

struct conf_edge {
	char *name;
	char *region;
	char *address;  /* IPv4, may be NULL if address6 is set */
	char *address6; /* IPv6, may be NULL */
	int weight;
	char *healthz;  /* URL polled by the health checker; NULL = never checked (always up) */
};

struct conf_health {
	int interval_ms, timeout_ms;
	int fall, rise;
	char *up_statuses;  /* "200" or "200-299,304" */
	char *initial;      /* "up" or "down" */
	double load_threshold;
};

struct dns_conf {
	char **listen; size_t n_listen;   /* "ip:port" for UDP and TCP */
	struct addr stats_listen;
	/* None: POST /reload is open; else it needs "Authorization: Bearer <one of them>".
	 * The inline ones, then (dns_conf_load) the contents of control_secret_file. */
	char **control_secret; size_t n_control_secret;
	char **control_secret_file; size_t n_control_secret_file;
	int workers;
	char *log_level;
	bool query_log;
	int ttl;                 /* TTL of dynamic answers */
	int answers;             /* max addresses per dynamic answer */
	int edns_udp_size;       /* our largest UDP reply */
	int tcp_idle_timeout_ms;
	int tcp_max_connections;
	struct conf_zone *zones; size_t n_zones;
	char **dynamic; size_t n_dynamic;
	char *map;
	char *geoip;
	char *default_region;
	struct conf_region *regions; size_t n_regions;
	struct conf_edge *edges; size_t n_edges;
	struct conf_health health;
};

extern const struct cfg_key dns_conf_schema[];

/* Loads and checks path (cross references: regions, edges, default region).
 * Returns 0, or -1 with "FILE:LINE: reason" in err; c must be zeroed. */
int dns_conf_load(const char *path, struct dns_conf *c, char *err, size_t errlen);
void dns_conf_free(struct dns_conf *c);

/* Parses "200,204,300-399" into a 600-entry table of flags.  0 or -1. */
int dns_conf_statuses(const char *spec, bool ok[600], char *err, size_t errlen);

#endif
