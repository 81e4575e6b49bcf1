/* site.h -- the websites an edge fronts: which site a Host belongs to, and
 * the checks a site list passes before it is used.  Pure: no I/O.
 *
 * Each site has its hostnames (exact, or "*.example.com" for one more
 * label), its origin, optionally its certificate, and cache settings that
 * override the edge-wide ones.  A Host no site has goes to the configured
 * default site, or is refused (421): never to someone else's origin. */
#ifndef MINICDN_SITE_H
#define MINICDN_SITE_H

#include "edge/cache/cachekey.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct edge_site {
	char *name;                      /* [a-z0-9-], unique; names the site in logs and metrics */
	char **hosts;                    /* "www.example.com", "*.example.com"; "*" = any */
	size_t nhosts;
	char *origin;                    /* base URL, no trailing '/' */
	char *origin_host;               /* Host sent to the origin; NULL: the client's */
	char *ca_file;                   /* verifies an https origin; NULL: the system store */
	char *cert, *key, *ocsp;         /* PEM chain, PEM key, DER OCSP response; NULL: none */
	bool redirect_http;              /* plain HTTP answers 308 to https:// */
	char *hsts;                      /* Strict-Transport-Security value over HTTPS; NULL: none */
	struct query_rule *query_rules;  /* NULL: the edge-wide rules */
	size_t nquery_rules;
	uint64_t max_object_size;        /* 0: the edge-wide value */
	int stale_if_error_ms;           /* 0: the edge-wide value */
	/* set by site_list_check */
	const char *label;               /* cache-key scheme: "http" for the one-origin form, else name */
	int idx;                         /* position in the list (per-site counters) */
};

/* Checks sites[0..n) (names, hosts unique across sites, origins, options
 * that need a certificate) and fills label and idx; strips trailing '/'
 * from origins.  oneorigin: the list is the single-origin shorthand (its
 * site keys with "http", so caches from before sites keep their keys).
 * Returns 0, or -1 with the reason in err. */
int site_list_check(struct edge_site *sites, size_t n, bool oneorigin, char *err, size_t errlen);

/* The site serving host (a normalised "name[:port]"): an exact name first,
 * then "*.parent" for one label more, then "*"; def when none has it (may
 * be NULL: the request is refused).  Cost: a scan of every site's names. */
const struct edge_site *site_find(const struct edge_site *sites, size_t n, const char *host,
                                  const struct edge_site *def);

/* The site named name, or NULL. */
const struct edge_site *site_by_name(const struct edge_site *sites, size_t n, const char *name);

/* Whether the pattern ("a.example", "*.example", "*") covers the name
 * (lower case, no port). */
bool site_host_matches(const char *pattern, const char *name, size_t len);

#endif
