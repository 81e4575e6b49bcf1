/* geo.h -- client address to location: subnet map (longest prefix), then an
 * optional MaxMind DB, then nothing (the caller applies the default region).
 *
 * A struct geo is immutable once loaded and is read by every worker thread
 * without locks; geo_locate allocates nothing when only the map is used. */
#ifndef MINICDN_GEO_H
#define MINICDN_GEO_H

#include <stddef.h>
#include <stdint.h>

struct geo;

enum geo_source { GEO_NONE = 0, GEO_MAP, GEO_GEOIP };

struct geo_loc {
	enum geo_source source;
	int region;         /* GEO_MAP: index into the region names given to geo_load */
	double lat, lon;    /* GEO_GEOIP: coordinates from the database */
	unsigned match_len; /* prefix length of the map entry or GeoIP network */
	unsigned scope;     /* widest prefix around the address with the same result */
};

/* Loads the map file (may be NULL: empty map) and the MaxMind DB (may be NULL).
 * Map lines are "CIDR REGION" with '#' comments; a region not in names[] or a
 * bad prefix is an error "FILE:LINE: reason".  Returns NULL on error. */
struct geo *geo_load(const char *map_path, const char *geoip_path, const char *const *names,
                     size_t n_names, char *err, size_t errlen);
void geo_free(struct geo *g);

/* Locates a 4- or 16-byte address. */
void geo_locate(const struct geo *g, int family, const uint8_t *bytes, struct geo_loc *out);

size_t geo_map_prefixes(const struct geo *g);
size_t geo_map_memory(const struct geo *g);

#endif
