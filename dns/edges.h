/* edges.h -- regions, edges, and the choice of edge(s) for a client.
 *
 * An edgeset (from the config) is immutable.  A choice is the edgeset seen
 * through one health state: for every region and address family it holds the
 * candidate edges already ordered (home region, then backup regions, then by
 * great-circle distance), grouped into tiers of equal preference.  The health
 * checker builds a new choice whenever an edge changes state; queries only read.
 *
 * Algorithm (README):
 *  1. usable = edges that are up and report load <= load_threshold; if none,
 *     edges that are up; if none, every edge (fail-open, logged).  An edge
 *     whose /healthz says it is draining is never usable, not even fail-open:
 *     the operator took it out on purpose.
 *  2. client in region R (map or default): usable edges of R first; if R has
 *     none, the first backup region of R with usable edges; then every other
 *     usable edge by distance from R's coordinates.  Client with coordinates
 *     (GeoIP): usable edges by distance from the client.
 *  3. Edges at the same distance form a tier; within a tier, picks are weighted
 *     random without replacement.  The answer takes up to `answers` edges, tier
 *     by tier. */
#ifndef MINICDN_EDGES_H
#define MINICDN_EDGES_H

#include "common/buf.h"
#include "dns/conf.h"
#include "dns/geo.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct region {
	char *name;
	double lat, lon;
	int *backup;
	size_t n_backup;
	unsigned stat_id;
};

struct edge {
	char *name;
	int region;
	bool has4, has6;
	uint8_t a4[4], a6[16];
	unsigned weight;
	char *healthz;       /* NULL: never checked */
	unsigned stat_id;
};

struct edgeset {
	struct region *regions;
	size_t nr;
	struct edge *edges;
	size_t ne;
	int default_region;
	unsigned answers;
	double load_threshold;
	double *dist;        /* nr x nr great-circle distances in km */
};

struct edge_health {
	bool up;
	bool checked;        /* at least one check done */
	bool draining;       /* the edge's /healthz says "draining": true */
	double load;
	int last_status;     /* HTTP status of the last check, 0 = transport error */
	char last_error[96];
};

/* Builds the edgeset from a loaded config.  Returns NULL with a reason. */
struct edgeset *edgeset_new(const struct dns_conf *c, char *err, size_t errlen);
void edgeset_free(struct edgeset *es);
int edgeset_region(const struct edgeset *es, const char *name); /* -1 if unknown */

struct choice;

/* Builds the choice for a health state (h has es->ne entries; copied). */
struct choice *choice_new(const struct edgeset *es, const struct edge_health *h);
void choice_free(struct choice *c);
const struct edge_health *choice_health(const struct choice *c); /* es->ne entries */
bool choice_fail_open(const struct choice *c, int family);     /* no usable edge at all */

/* Picks up to max edges for a client located at loc (region already resolved
 * to the default if the map and GeoIP said nothing) and an address family
 * (AF_INET: edges with IPv4, AF_INET6: with IPv6).  Writes edge indices to
 * out and returns how many.  rng: caller's xorshift state.  No allocation. */
unsigned choice_pick(const struct edgeset *es, const struct choice *c, const struct geo_loc *loc,
                     int family, uint64_t *rng, unsigned max, int *out);

/* Appends a JSON object explaining the decision for loc (candidates with
 * health, load, distance, tier) and the edges picked. */
void choice_explain_json(const struct edgeset *es, const struct choice *c, const struct geo_loc *loc,
                         int family, const int *picked, unsigned npicked, struct buf *b);
/* Same as one log line of text. */
void choice_explain_text(const struct edgeset *es, const struct choice *c, const struct geo_loc *loc,
                         int family, const int *picked, unsigned npicked, struct buf *b);

double geo_distance_km(double lat1, double lon1, double lat2, double lon2);

#endif
