/* conf.c -- minicdn-dns configuration schema and cross-checks */
#include "dns/conf.h"
#include "common/log.h"
#include "common/secret.h"
#include "common/xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OFF(f) offsetof(struct dns_conf, f)

static const struct cfg_key zone_keys[] = {
	{ "name", CFG_STRING, offsetof(struct conf_zone, name), NULL, 0, 0, CFG_REQUIRED, NULL, 0, 0, NULL,
	  "zone apex, e.g. \"cdn.test.\"" },
	{ "file", CFG_STRING, offsetof(struct conf_zone, file), NULL, 0, 0, CFG_REQUIRED | CFG_PATH, NULL, 0, 0, NULL,
	  "master-format zone file (relative to the config file)" },
	CFG_END
};

static const struct cfg_key region_keys[] = {
	{ "name", CFG_STRING, offsetof(struct conf_region, name), NULL, 0, 0, CFG_REQUIRED, NULL, 0, 0, NULL,
	  "region name used by the map and the edges" },
	{ "lat", CFG_FLOAT, offsetof(struct conf_region, lat), NULL, -90, 90, CFG_REQUIRED, NULL, 0, 0, NULL,
	  "latitude in degrees" },
	{ "lon", CFG_FLOAT, offsetof(struct conf_region, lon), NULL, -180, 180, CFG_REQUIRED, NULL, 0, 0, NULL,
	  "longitude in degrees" },
	{ "backup", CFG_STRLIST, offsetof(struct conf_region, backup), NULL, 0, 0, 0, NULL, 0,
	  offsetof(struct conf_region, n_backup), NULL,
	  "regions used, in order, before distance when this one has no healthy edge" },
	CFG_END
};

static const struct cfg_key edge_keys[] = {
	{ "name", CFG_STRING, offsetof(struct conf_edge, name), NULL, 0, 0, CFG_REQUIRED, NULL, 0, 0, NULL,
	  "edge name (stats, logs)" },
	{ "region", CFG_STRING, offsetof(struct conf_edge, region), NULL, 0, 0, CFG_REQUIRED, NULL, 0, 0, NULL,
	  "region the edge belongs to" },
	{ "address", CFG_STRING, offsetof(struct conf_edge, address), NULL, 0, 0, 0, NULL, 0, 0, NULL,
	  "IPv4 address answered in A records" },
	{ "address6", CFG_STRING, offsetof(struct conf_edge, address6), NULL, 0, 0, 0, NULL, 0, 0, NULL,
	  "IPv6 address answered in AAAA records" },
	{ "weight", CFG_INT, offsetof(struct conf_edge, weight), "1", 1, 1000000, 0, NULL, 0, 0, NULL,
	  "relative share among equally near edges" },
	{ "healthz", CFG_STRING, offsetof(struct conf_edge, healthz), NULL, 0, 0, 0, NULL, 0, 0, NULL,
	  "health URL (GET, JSON with \"load\"); unset = always up" },
	CFG_END
};

static const struct cfg_key health_keys[] = {
	{ "interval", CFG_MS, offsetof(struct conf_health, interval_ms), "2s", 50, 3600000, 0, NULL, 0, 0, NULL,
	  "time between two checks of an edge" },
	{ "timeout", CFG_MS, offsetof(struct conf_health, timeout_ms), "1s", 10, 600000, 0, NULL, 0, 0, NULL,
	  "a check not answered in this time failed" },
	{ "fall", CFG_INT, offsetof(struct conf_health, fall), "2", 1, 100, 0, NULL, 0, 0, NULL,
	  "consecutive failures that mark an edge down" },
	{ "rise", CFG_INT, offsetof(struct conf_health, rise), "2", 1, 100, 0, NULL, 0, 0, NULL,
	  "consecutive successes that mark an edge up" },
	{ "up_statuses", CFG_STRING, offsetof(struct conf_health, up_statuses), "200", 0, 0, 0, NULL, 0, 0, NULL,
	  "HTTP statuses that count as up: \"200\", \"200-299,304\"" },
	{ "initial", CFG_STRING, offsetof(struct conf_health, initial), "up", 0, 0, 0, NULL, 0, 0, NULL,
	  "state of an edge before its first check: \"up\" or \"down\"" },
	{ "load_threshold", CFG_FLOAT, offsetof(struct conf_health, load_threshold), "0.9", 0, 1000, 0, NULL, 0,
	  0, NULL, "edges reporting a higher load are skipped while others have room" },
	CFG_END
};

const struct cfg_key dns_conf_schema[] = {
	{ "listen", CFG_STRLIST, OFF(listen), NULL, 0, 0, CFG_REQUIRED, NULL, 0, OFF(n_listen), NULL,
	  "DNS addresses, UDP and TCP: [ \"127.0.0.1:5353\", \"[::1]:5353\" ]" },
	{ "stats_listen", CFG_ADDR, OFF(stats_listen), NULL, 0, 0, CFG_REQUIRED, NULL, 0, 0, NULL,
	  "HTTP stats listener: /healthz /stats /metrics /explain, POST /reload" },
	{ "control_secret", CFG_STRLIST, OFF(control_secret), NULL, 0, 0, 0, NULL, 0, OFF(n_control_secret), NULL,
	  "optional; when set, POST /reload needs \"Authorization: Bearer <secret>\" (GETs stay open); "
	  "a list accepts each (rotation). Better: control_secret_file" },
	{ "control_secret_file", CFG_STRLIST, OFF(control_secret_file), NULL, 0, 0, CFG_PATH, NULL, 0,
	  OFF(n_control_secret_file), NULL,
	  "file(s) holding the control secret (one trailing newline dropped; mode 600 or 400: "
	  "refused if group or others may read it); \"%credentials%/NAME\" is systemd's "
	  "LoadCredential=NAME ($CREDENTIALS_DIRECTORY/NAME, else /etc/credstore/NAME); "
	  "a list accepts each secret during a rotation" },
	{ "workers", CFG_INT, OFF(workers), "0", 0, 64, 0, NULL, 0, 0, NULL,
	  "UDP worker threads (SO_REUSEPORT socket each); 0 = one per CPU" },
	{ "log_level", CFG_STRING, OFF(log_level), "info", 0, 0, 0, NULL, 0, 0, NULL,
	  "error, warn, info or debug" },
	{ "query_log", CFG_BOOL, OFF(query_log), "false", 0, 0, 0, NULL, 0, 0, NULL,
	  "log one line per dynamic answer explaining the choice" },
	{ "ttl", CFG_INT, OFF(ttl), "20", 0, 86400, 0, NULL, 0, 0, NULL, "TTL of dynamic answers (seconds)" },
	{ "answers", CFG_INT, OFF(answers), "1", 1, 16, 0, NULL, 0, 0, NULL,
	  "maximum addresses in a dynamic answer" },
	{ "edns_udp_size", CFG_INT, OFF(edns_udp_size), "1232", 512, 4096, 0, NULL, 0, 0, NULL,
	  "largest UDP reply we send (and advertise)" },
	{ "tcp_idle_timeout", CFG_MS, OFF(tcp_idle_timeout_ms), "10s", 100, 3600000, 0, NULL, 0, 0, NULL,
	  "idle TCP connections are closed after this (RFC 7766)" },
	{ "tcp_max_connections", CFG_INT, OFF(tcp_max_connections), "256", 1, 100000, 0, NULL, 0, 0, NULL,
	  "concurrent TCP connections; more are refused" },
	{ "zones", CFG_LIST, OFF(zones), NULL, 0, 0, CFG_REQUIRED, zone_keys, sizeof(struct conf_zone),
	  OFF(n_zones), NULL, "zones served: ( { name = \"cdn.test.\"; file = \"cdn.test.zone\"; } )" },
	{ "dynamic", CFG_STRLIST, OFF(dynamic), NULL, 0, 0, 0, NULL, 0, OFF(n_dynamic), NULL,
	  "names answered with edges: [ \"www.cdn.test.\", \"*.cdn.test.\" ]" },
	{ "map", CFG_STRING, OFF(map), NULL, 0, 0, CFG_PATH, NULL, 0, 0, NULL,
	  "subnet map file: lines \"CIDR REGION\", # comments" },
	{ "geoip", CFG_STRING, OFF(geoip), NULL, 0, 0, CFG_PATH, NULL, 0, 0, NULL,
	  "MaxMind DB consulted (location.latitude/longitude) for addresses not in the map" },
	{ "default_region", CFG_STRING, OFF(default_region), NULL, 0, 0, CFG_REQUIRED, NULL, 0, 0, NULL,
	  "region for clients found nowhere" },
	{ "regions", CFG_LIST, OFF(regions), NULL, 0, 0, CFG_REQUIRED, region_keys, sizeof(struct conf_region),
	  OFF(n_regions), NULL, "regions with coordinates" },
	{ "edges", CFG_LIST, OFF(edges), NULL, 0, 0, CFG_REQUIRED, edge_keys, sizeof(struct conf_edge),
	  OFF(n_edges), NULL, "edge servers" },
	{ "health", CFG_GROUP, OFF(health), NULL, 0, 0, 0, health_keys, 0, 0, NULL,
	  "health checks of the edges' /healthz" },
	CFG_END
};

int dns_conf_statuses(const char *spec, bool ok[600], char *err, size_t errlen)
{
	memset(ok, 0, 600 * sizeof ok[0]);
	const char *p = spec;
	int any = 0;
	while (*p) {
		char *end;
		long a = strtol(p, &end, 10), b;
		if (end == p)
			goto bad;
		b = a;
		if (*end == '-') {
			p = end + 1;
			b = strtol(p, &end, 10);
			if (end == p)
				goto bad;
		}
		if (a < 100 || b > 599 || a > b)
			goto bad;
		for (long i = a; i <= b; i++)
			ok[i] = true;
		any = 1;
		p = end;
		while (*p == ' ')
			p++;
		if (*p == ',')
			p++;
		else if (*p)
			goto bad;
		while (*p == ' ')
			p++;
	}
	if (any)
		return 0;
bad:
	snprintf(err, errlen, "'%s' is not a list of HTTP statuses (e.g. \"200\", \"200-299,304\")", spec);
	return -1;
}

static int region_known(const struct dns_conf *c, const char *name)
{
	for (size_t i = 0; i < c->n_regions; i++)
		if (!strcmp(c->regions[i].name, name))
			return 1;
	return 0;
}

int dns_conf_load(const char *path, struct dns_conf *c, char *err, size_t errlen)
{
	if (cfg_load(path, dns_conf_schema, c, err, errlen) < 0)
		return -1;
	enum log_level lvl;
	bool st[600];
	char why[256];
	if (log_level_parse(c->log_level, &lvl) < 0) {
		snprintf(err, errlen, "%s: log_level '%s' is not error, warn, info or debug", path, c->log_level);
		goto fail;
	}
	if (secret_append_files(&c->control_secret, &c->n_control_secret, c->control_secret_file,
	                        c->n_control_secret_file, why, sizeof why) < 0) {
		snprintf(err, errlen, "%s: control_secret_file: %s", path, why);
		goto fail;
	}
	for (size_t i = 0; i < c->n_control_secret; i++)
		if (!c->control_secret[i][0]) {
			snprintf(err, errlen, "%s: control_secret must not be empty (leave it out to disable the check)", path);
			goto fail;
		}
	if (c->n_listen == 0 || c->n_listen > 16) {
		snprintf(err, errlen, "%s: 'listen' needs 1 to 16 addresses", path);
		goto fail;
	}
	for (size_t i = 0; i < c->n_listen; i++) {
		struct addr a;
		if (addr_parse(c->listen[i], &a, why, sizeof why) < 0) {
			snprintf(err, errlen, "%s: listen[%zu]: %s", path, i, why);
			goto fail;
		}
	}
	if (c->n_zones == 0 || c->n_regions == 0 || c->n_edges == 0) {
		snprintf(err, errlen, "%s: 'zones', 'regions' and 'edges' must not be empty", path);
		goto fail;
	}
	if (c->n_regions > 1000 || c->n_edges > 1000) {
		snprintf(err, errlen, "%s: at most 1000 regions and 1000 edges", path);
		goto fail;
	}
	for (size_t i = 0; i < c->n_regions; i++) {
		for (size_t j = 0; j < i; j++)
			if (!strcmp(c->regions[i].name, c->regions[j].name)) {
				snprintf(err, errlen, "%s: region '%s' defined twice", path, c->regions[i].name);
				goto fail;
			}
		for (size_t j = 0; j < c->regions[i].n_backup; j++)
			if (!region_known(c, c->regions[i].backup[j])) {
				snprintf(err, errlen, "%s: region '%s': unknown backup region '%s'", path,
				         c->regions[i].name, c->regions[i].backup[j]);
				goto fail;
			}
	}
	if (!region_known(c, c->default_region)) {
		snprintf(err, errlen, "%s: default_region '%s' is not in 'regions'", path, c->default_region);
		goto fail;
	}
	for (size_t i = 0; i < c->n_edges; i++) {
		struct conf_edge *e = &c->edges[i];
		struct addr a;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(e->name, c->edges[j].name)) {
				snprintf(err, errlen, "%s: edge '%s' defined twice", path, e->name);
				goto fail;
			}
		if (!region_known(c, e->region)) {
			snprintf(err, errlen, "%s: edge '%s': unknown region '%s'", path, e->name, e->region);
			goto fail;
		}
		if (!e->address && !e->address6) {
			snprintf(err, errlen, "%s: edge '%s' needs 'address' or 'address6'", path, e->name);
			goto fail;
		}
		if (e->address && (addr_parse_ip(e->address, 0, &a, why, sizeof why) < 0 ||
		                   a.ss.ss_family != AF_INET)) {
			snprintf(err, errlen, "%s: edge '%s': 'address' must be an IPv4 address, not '%s'", path,
			         e->name, e->address);
			goto fail;
		}
		if (e->address6 && (addr_parse_ip(e->address6, 0, &a, why, sizeof why) < 0 ||
		                    a.ss.ss_family != AF_INET6)) {
			snprintf(err, errlen, "%s: edge '%s': 'address6' must be an IPv6 address, not '%s'", path,
			         e->name, e->address6);
			goto fail;
		}
		if (e->healthz && strncmp(e->healthz, "http://", 7) && strncmp(e->healthz, "https://", 8)) {
			snprintf(err, errlen, "%s: edge '%s': healthz must be an http:// or https:// URL", path,
			         e->name);
			goto fail;
		}
	}
	if (dns_conf_statuses(c->health.up_statuses, st, why, sizeof why) < 0) {
		snprintf(err, errlen, "%s: health.up_statuses: %s", path, why);
		goto fail;
	}
	if (strcmp(c->health.initial, "up") && strcmp(c->health.initial, "down")) {
		snprintf(err, errlen, "%s: health.initial must be \"up\" or \"down\"", path);
		goto fail;
	}
	return 0;
fail:
	dns_conf_free(c);
	return -1;
}

void dns_conf_free(struct dns_conf *c)
{
	cfg_free(dns_conf_schema, c);
}
