/* geo.c -- client address to region (subnet map) or coordinates (GeoIP) */
#include "dns/geo.h"
#include "dns/trie.h"
#include "common/addr.h"
#include "common/xmalloc.h"

#include <errno.h>
#include <maxminddb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct geo {
	struct trie *map;
	MMDB_s mmdb;
	int have_mmdb;
};

static int find_name(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(names[i], s))
			return (int)i;
	return -1;
}

struct mapent {
	uint8_t bytes[16];
	uint8_t family, len;
	uint16_t region;
	uint32_t line;
};

static int cmp_mapent(const void *a, const void *b)
{
	const struct mapent *x = a, *y = b;
	if (x->family != y->family)
		return x->family < y->family ? -1 : 1;
	int c = memcmp(x->bytes, y->bytes, 16);
	if (c)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->line < y->line ? -1 : x->line > y->line;
}

/* Dotted-quad "a.b.c.d/len" without inet_pton; returns -1 for anything else
 * (IPv6, odd forms), which then goes through cidr_parse for checks and errors. */
static int fast_v4(const char *s, struct cidr *c)
{
	uint32_t a = 0;
	for (int part = 0; part < 4; part++) {
		unsigned v = 0, nd = 0;
		while (*s >= '0' && *s <= '9' && nd < 4)
			v = v * 10 + (unsigned)(*s++ - '0'), nd++;
		if (nd == 0 || nd > 3 || v > 255)
			return -1;
		a = a << 8 | v;
		if (part < 3 && *s++ != '.')
			return -1;
	}
	if (*s++ != '/')
		return -1;
	unsigned l = 0, nd = 0;
	while (*s >= '0' && *s <= '9' && nd < 3)
		l = l * 10 + (unsigned)(*s++ - '0'), nd++;
	if (nd == 0 || *s || l > 32)
		return -1;
	if (l < 32 && (a & (0xFFFFFFFFu >> l)))
		return -1; /* host bits: let cidr_parse word the error */
	memset(c, 0, sizeof *c);
	c->family = AF_INET;
	c->prefix_len = (uint8_t)l;
	c->bytes[0] = (uint8_t)(a >> 24), c->bytes[1] = (uint8_t)(a >> 16);
	c->bytes[2] = (uint8_t)(a >> 8), c->bytes[3] = (uint8_t)a;
	return 0;
}

/* Reads every line first, sorts by address, then inserts: consecutive
 * inserts share their path in the trie, which makes a 1M-line map load
 * several times faster than file order (and lays nodes out for lookups). */
static int load_map(struct geo *g, const char *path, const char *const *names, size_t n_names,
                    char *err, size_t errlen)
{
	struct mapent *ents = NULL;
	size_t nents = 0, cap = 0;
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	char line[512];
	unsigned long lineno = 0;
	/* The last region seen is tried first: generated maps come in runs. */
	int last = -1;
	char lastname[128] = "";
	while (fgets(line, sizeof line, f)) {
		lineno++;
		size_t ll = strlen(line);
		if (ll == sizeof line - 1 && line[ll - 1] != '\n') {
			snprintf(err, errlen, "%s:%lu: line too long", path, lineno);
			goto fail;
		}
		char *p = line;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '#' || *p == '\n' || *p == '\r' || !*p)
			continue;
		char *pfx = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
			p++;
		if (!*p || *p == '\n' || *p == '\r') {
			snprintf(err, errlen, "%s:%lu: expected \"CIDR REGION\"", path, lineno);
			goto fail;
		}
		*p++ = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		char *reg = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '#')
			p++;
		char *rend = p;
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			p++;
		if (rend == reg || (*p && *p != '#')) {
			snprintf(err, errlen, "%s:%lu: expected \"CIDR REGION\"", path, lineno);
			goto fail;
		}
		*rend = '\0';
		struct cidr c;
		char why[160];
		if (fast_v4(pfx, &c) < 0 && cidr_parse(pfx, &c, why, sizeof why) < 0) {
			snprintf(err, errlen, "%s:%lu: %s", path, lineno, why);
			goto fail;
		}
		int r;
		if (last >= 0 && !strcmp(lastname, reg)) {
			r = last;
		} else {
			r = find_name(names, n_names, reg);
			if (r < 0) {
				snprintf(err, errlen, "%s:%lu: unknown region '%s'", path, lineno, reg);
				goto fail;
			}
			last = r;
			snprintf(lastname, sizeof lastname, "%s", reg);
		}
		if (nents == cap) {
			cap = cap ? cap * 2 : 4096;
			ents = xrealloc(ents, cap * sizeof *ents);
		}
		struct mapent *e = &ents[nents++];
		memcpy(e->bytes, c.bytes, 16);
		e->family = (uint8_t)c.family;
		e->len = c.prefix_len;
		e->region = (uint16_t)r;
		e->line = (uint32_t)lineno;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		goto fail;
	}
	fclose(f);
	f = NULL;
	qsort(ents, nents, sizeof *ents, cmp_mapent);
	for (size_t i = 0; i < nents; i++) {
		int old;
		if (trie_insert(g->map, ents[i].family, ents[i].bytes, ents[i].len, ents[i].region, &old) < 0) {
			struct cidr c = { ents[i].family, { 0 }, ents[i].len };
			char txt[64];
			memcpy(c.bytes, ents[i].bytes, 16);
			snprintf(err, errlen, "%s:%u: %s listed again with another region (was '%s')", path,
			         ents[i].line, cidr_format(&c, txt, sizeof txt), names[old]);
			goto fail;
		}
	}
	free(ents);
	trie_finish(g->map);
	return 0;
fail:
	if (f)
		fclose(f);
	free(ents);
	return -1;
}

struct geo *geo_load(const char *map_path, const char *geoip_path, const char *const *names,
                     size_t n_names, char *err, size_t errlen)
{
	struct geo *g = xcalloc(1, sizeof *g);
	g->map = trie_new();
	if (map_path && *map_path && load_map(g, map_path, names, n_names, err, errlen) < 0)
		goto fail;
	if (geoip_path && *geoip_path) {
		int rc = MMDB_open(geoip_path, MMDB_MODE_MMAP, &g->mmdb);
		if (rc != MMDB_SUCCESS) {
			snprintf(err, errlen, "%s: %s", geoip_path, MMDB_strerror(rc));
			goto fail;
		}
		g->have_mmdb = 1;
	}
	return g;
fail:
	geo_free(g);
	return NULL;
}

void geo_free(struct geo *g)
{
	if (!g)
		return;
	trie_free(g->map);
	if (g->have_mmdb)
		MMDB_close(&g->mmdb);
	free(g);
}

static int geoip_locate(const struct geo *g, int family, const uint8_t *bytes, struct geo_loc *out)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	if (family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, bytes, 4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, bytes, 16);
	}
	int mmerr;
	/* libmaxminddb only reads the database; the const cast is its API's. */
	MMDB_lookup_result_s r = MMDB_lookup_sockaddr((MMDB_s *)&g->mmdb, (struct sockaddr *)&ss, &mmerr);
	if (mmerr != MMDB_SUCCESS)
		return 0;
	/* The network the lookup ended in (an entry or an empty range) answers
	 * alike, so it bounds the scope as well; an IPv4 lookup in an IPv6
	 * database reports it in IPv6 bits. */
	unsigned nm = r.netmask;
	if (family == AF_INET && nm > 32)
		nm = nm >= 96 ? nm - 96 : 0;
	if (nm > out->scope)
		out->scope = nm;
	if (!r.found_entry)
		return 0;
	MMDB_entry_data_s lat, lon;
	if (MMDB_get_value(&r.entry, &lat, "location", "latitude", NULL) != MMDB_SUCCESS || !lat.has_data ||
	    MMDB_get_value(&r.entry, &lon, "location", "longitude", NULL) != MMDB_SUCCESS || !lon.has_data)
		return 0;
	double la = lat.type == MMDB_DATA_TYPE_DOUBLE ? lat.double_value
	          : lat.type == MMDB_DATA_TYPE_FLOAT ? lat.float_value : 1000;
	double lo = lon.type == MMDB_DATA_TYPE_DOUBLE ? lon.double_value
	          : lon.type == MMDB_DATA_TYPE_FLOAT ? lon.float_value : 1000;
	if (la < -90 || la > 90 || lo < -180 || lo > 180)
		return 0;
	out->source = GEO_GEOIP;
	out->lat = la;
	out->lon = lo;
	out->match_len = nm;
	return 1;
}

void geo_locate(const struct geo *g, int family, const uint8_t *bytes, struct geo_loc *out)
{
	struct trie_result tr;
	trie_lookup(g->map, family, bytes, &tr);
	out->scope = tr.scope;
	out->region = tr.value;
	out->match_len = tr.match_len;
	out->lat = out->lon = 0;
	if (tr.value != TRIE_NONE) {
		out->source = GEO_MAP;
		return;
	}
	out->source = GEO_NONE;
	if (g->have_mmdb)
		geoip_locate(g, family, bytes, out);
}

size_t geo_map_prefixes(const struct geo *g)
{
	return trie_count(g->map);
}

size_t geo_map_memory(const struct geo *g)
{
	return trie_memory(g->map);
}
