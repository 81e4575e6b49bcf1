/* edges.c -- regions, edges and the nearest-healthy-edge choice */
#include "dns/edges.h"
#include "dns/counters.h"
#include "common/addr.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_TIER_PICK 1024 /* edges in one tier we shuffle on the stack */

struct tier {
	uint32_t start, end;  /* range in idx[] */
	uint32_t weight;      /* sum of weights */
};

struct fam {
	int *idx;             /* edge indices, tiers back to back */
	struct tier *tiers;
	uint32_t *first, *count; /* per region: its tiers */
	int *usable;          /* usable edges of this family (GeoIP path) */
	size_t nusable;
	bool fail_open;
};

struct choice {
	struct edge_health *h;
	struct fam f[2];      /* 0: IPv4, 1: IPv6 */
	size_t ne, nr;
};

double geo_distance_km(double lat1, double lon1, double lat2, double lon2)
{
	const double r = 6371.0, d2r = M_PI / 180.0;
	double dlat = (lat2 - lat1) * d2r, dlon = (lon2 - lon1) * d2r;
	double a = sin(dlat / 2) * sin(dlat / 2) +
	           cos(lat1 * d2r) * cos(lat2 * d2r) * sin(dlon / 2) * sin(dlon / 2);
	if (a > 1)
		a = 1;
	return 2 * r * asin(sqrt(a));
}

/* ---------- edgeset ---------- */

int edgeset_region(const struct edgeset *es, const char *name)
{
	for (size_t i = 0; i < es->nr; i++)
		if (!strcmp(es->regions[i].name, name))
			return (int)i;
	return -1;
}

struct edgeset *edgeset_new(const struct dns_conf *c, char *err, size_t errlen)
{
	struct edgeset *es = xcalloc(1, sizeof *es);
	es->nr = c->n_regions;
	es->regions = xcalloc(es->nr, sizeof *es->regions);
	for (size_t i = 0; i < es->nr; i++) {
		es->regions[i].name = xstrdup(c->regions[i].name);
		es->regions[i].lat = c->regions[i].lat;
		es->regions[i].lon = c->regions[i].lon;
		es->regions[i].stat_id = counters_id(COUNTERS_REGION, c->regions[i].name);
	}
	for (size_t i = 0; i < es->nr; i++) {
		struct region *r = &es->regions[i];
		r->n_backup = c->regions[i].n_backup;
		r->backup = xcalloc(r->n_backup + 1, sizeof *r->backup);
		for (size_t j = 0; j < r->n_backup; j++) {
			r->backup[j] = edgeset_region(es, c->regions[i].backup[j]);
			if (r->backup[j] < 0) {
				snprintf(err, errlen, "region '%s': unknown backup '%s'", r->name, c->regions[i].backup[j]);
				goto fail;
			}
		}
	}
	es->ne = c->n_edges;
	es->edges = xcalloc(es->ne, sizeof *es->edges);
	for (size_t i = 0; i < es->ne; i++) {
		const struct conf_edge *ce = &c->edges[i];
		struct edge *e = &es->edges[i];
		e->name = xstrdup(ce->name);
		e->region = edgeset_region(es, ce->region);
		e->weight = (unsigned)ce->weight;
		e->stat_id = counters_id(COUNTERS_EDGE, ce->name);
		e->healthz = ce->healthz ? xstrdup(ce->healthz) : NULL;
		if (e->region < 0) {
			snprintf(err, errlen, "edge '%s': unknown region '%s'", ce->name, ce->region);
			goto fail;
		}
		if (ce->address) {
			if (inet_pton(AF_INET, ce->address, e->a4) != 1) {
				snprintf(err, errlen, "edge '%s': bad address '%s'", ce->name, ce->address);
				goto fail;
			}
			e->has4 = true;
		}
		if (ce->address6) {
			if (inet_pton(AF_INET6, ce->address6, e->a6) != 1) {
				snprintf(err, errlen, "edge '%s': bad address6 '%s'", ce->name, ce->address6);
				goto fail;
			}
			e->has6 = true;
		}
	}
	es->default_region = edgeset_region(es, c->default_region);
	if (es->default_region < 0) {
		snprintf(err, errlen, "unknown default_region '%s'", c->default_region);
		goto fail;
	}
	es->answers = (unsigned)c->answers;
	es->load_threshold = c->health.load_threshold;
	es->dist = xcalloc(es->nr * es->nr, sizeof *es->dist);
	for (size_t i = 0; i < es->nr; i++)
		for (size_t j = 0; j < es->nr; j++)
			es->dist[i * es->nr + j] = geo_distance_km(es->regions[i].lat, es->regions[i].lon,
			                                           es->regions[j].lat, es->regions[j].lon);
	return es;
fail:
	edgeset_free(es);
	return NULL;
}

void edgeset_free(struct edgeset *es)
{
	if (!es)
		return;
	for (size_t i = 0; i < es->nr; i++) {
		free(es->regions[i].name);
		free(es->regions[i].backup);
	}
	for (size_t i = 0; i < es->ne; i++) {
		free(es->edges[i].name);
		free(es->edges[i].healthz);
	}
	free(es->regions);
	free(es->edges);
	free(es->dist);
	free(es);
}

/* ---------- choice ---------- */

static bool has_family(const struct edge *e, int fi)
{
	return fi == 0 ? e->has4 : e->has6;
}

/* Usability level: 2 = up with room, 1 = up but loaded, 0 = down,
 * -1 = draining (below down: not even fail-open picks it). */
static int level(const struct edgeset *es, const struct edge_health *h, size_t i)
{
	if (h[i].draining)
		return -1;
	if (!h[i].up)
		return 0;
	return h[i].load <= es->load_threshold ? 2 : 1;
}

struct sortent {
	double d;
	int region;
};

static int cmp_sortent(const void *a, const void *b)
{
	const struct sortent *x = a, *y = b;
	if (x->d != y->d)
		return x->d < y->d ? -1 : 1;
	return x->region - y->region;
}

static void build_family(const struct edgeset *es, struct choice *c, int fi)
{
	struct fam *f = &c->f[fi];
	size_t ne = es->ne, nr = es->nr;
	/* 1. the usable set: best level present among edges of this family */
	int best = -1;
	for (size_t i = 0; i < ne; i++)
		if (has_family(&es->edges[i], fi) && level(es, c->h, i) > best)
			best = level(es, c->h, i);
	f->usable = xcalloc(ne + 1, sizeof *f->usable);
	bool *ok = xcalloc(ne + 1, sizeof *ok);
	for (size_t i = 0; i < ne; i++)
		if (best >= 0 && has_family(&es->edges[i], fi) && level(es, c->h, i) == best) {
			ok[i] = true;
			f->usable[f->nusable++] = (int)i;
		}
	f->fail_open = best == 0;
	/* per region: count usable edges */
	size_t *per = xcalloc(nr, sizeof *per);
	for (size_t i = 0; i < ne; i++)
		if (ok[i])
			per[es->edges[i].region]++;
	f->first = xcalloc(nr, sizeof *f->first);
	f->count = xcalloc(nr, sizeof *f->count);
	/* at most nr tiers per region, ne entries per region */
	f->tiers = xcalloc(nr * nr + 1, sizeof *f->tiers);
	f->idx = xcalloc(nr * ne + 1, sizeof *f->idx);
	uint32_t nt = 0, ni = 0;
	struct sortent *se = xcalloc(nr, sizeof *se);
	bool *used = xcalloc(nr, sizeof *used);
	for (size_t r = 0; r < nr; r++) {
		f->first[r] = nt;
		memset(used, 0, nr * sizeof *used);
		int order[2] = { -1, -1 };
		if (per[r])
			order[0] = (int)r;
		else
			for (size_t b = 0; b < es->regions[r].n_backup; b++)
				if (per[es->regions[r].backup[b]]) {
					order[0] = es->regions[r].backup[b];
					break;
				}
		/* home or backup region: its own tier */
		if (order[0] >= 0) {
			used[order[0]] = true;
			struct tier *t = &f->tiers[nt++];
			t->start = ni;
			for (size_t i = 0; i < ne; i++)
				if (ok[i] && es->edges[i].region == order[0]) {
					f->idx[ni++] = (int)i;
					t->weight += es->edges[i].weight;
				}
			t->end = ni;
		}
		/* the rest by distance from r; regions at the same distance share a tier */
		size_t ns = 0;
		for (size_t o = 0; o < nr; o++)
			if (!used[o] && per[o])
				se[ns++] = (struct sortent){ es->dist[r * nr + o], (int)o };
		qsort(se, ns, sizeof *se, cmp_sortent);
		for (size_t k = 0; k < ns;) {
			struct tier *t = &f->tiers[nt++];
			t->start = ni;
			size_t k2 = k;
			while (k2 < ns && se[k2].d == se[k].d) {
				for (size_t i = 0; i < ne; i++)
					if (ok[i] && es->edges[i].region == se[k2].region) {
						f->idx[ni++] = (int)i;
						t->weight += es->edges[i].weight;
					}
				k2++;
			}
			t->end = ni;
			k = k2;
		}
		f->count[r] = nt - f->first[r];
	}
	free(se);
	free(used);
	free(per);
	free(ok);
}

struct choice *choice_new(const struct edgeset *es, const struct edge_health *h)
{
	struct choice *c = xcalloc(1, sizeof *c);
	c->ne = es->ne;
	c->nr = es->nr;
	c->h = xcalloc(es->ne + 1, sizeof *c->h);
	memcpy(c->h, h, es->ne * sizeof *h);
	build_family(es, c, 0);
	build_family(es, c, 1);
	return c;
}

void choice_free(struct choice *c)
{
	if (!c)
		return;
	for (int fi = 0; fi < 2; fi++) {
		free(c->f[fi].idx);
		free(c->f[fi].tiers);
		free(c->f[fi].first);
		free(c->f[fi].count);
		free(c->f[fi].usable);
	}
	free(c->h);
	free(c);
}

const struct edge_health *choice_health(const struct choice *c)
{
	return c->h;
}

bool choice_fail_open(const struct choice *c, int family)
{
	return c->f[family == AF_INET6].fail_open;
}

static inline uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

/* Weighted picks without replacement from cand[0..n) (reordered in place). */
static unsigned pick_tier(const struct edgeset *es, int *cand, unsigned n, uint32_t total, uint64_t *rng,
                          unsigned want, int *out)
{
	unsigned got = 0;
	while (got < want && n > 0) {
		uint64_t x = total ? rng_next(rng) % total : 0;
		unsigned k = 0;
		for (; k + 1 < n; k++) {
			uint32_t w = es->edges[cand[k]].weight;
			if (x < w)
				break;
			x -= w;
		}
		out[got++] = cand[k];
		total -= es->edges[cand[k]].weight;
		cand[k] = cand[--n];
	}
	return got;
}

static unsigned pick_region(const struct edgeset *es, const struct fam *f, int region, uint64_t *rng,
                            unsigned max, int *out)
{
	unsigned got = 0;
	for (uint32_t t = f->first[region], e = t + f->count[region]; t < e && got < max; t++) {
		const struct tier *tr = &f->tiers[t];
		unsigned n = tr->end - tr->start;
		if (n == 1) {
			out[got++] = f->idx[tr->start];
			continue;
		}
		int cand[MAX_TIER_PICK];
		if (n > MAX_TIER_PICK)
			n = MAX_TIER_PICK;
		memcpy(cand, f->idx + tr->start, n * sizeof *cand);
		uint32_t total = 0;
		for (unsigned k = 0; k < n; k++)
			total += es->edges[cand[k]].weight;
		got += pick_tier(es, cand, n, total, rng, max - got, out + got);
	}
	return got;
}

/* GeoIP clients: order usable edges by distance from the client's point. */
static unsigned pick_point(const struct edgeset *es, const struct fam *f, double lat, double lon,
                           uint64_t *rng, unsigned max, int *out)
{
	struct sortent se[1000]; /* conf.c caps regions at 1000 */
	size_t nr = es->nr < 1000 ? es->nr : 1000, ns = 0;
	for (size_t r = 0; r < nr; r++)
		se[ns++] = (struct sortent){ geo_distance_km(lat, lon, es->regions[r].lat, es->regions[r].lon),
			                     (int)r };
	qsort(se, ns, sizeof *se, cmp_sortent);
	unsigned got = 0;
	for (size_t k = 0; k < ns && got < max;) {
		int cand[MAX_TIER_PICK];
		unsigned n = 0;
		uint32_t total = 0;
		size_t k2 = k;
		while (k2 < ns && se[k2].d == se[k].d) {
			for (size_t u = 0; u < f->nusable && n < MAX_TIER_PICK; u++)
				if (es->edges[f->usable[u]].region == se[k2].region) {
					cand[n++] = f->usable[u];
					total += es->edges[f->usable[u]].weight;
				}
			k2++;
		}
		got += pick_tier(es, cand, n, total, rng, max - got, out + got);
		k = k2;
	}
	return got;
}

unsigned choice_pick(const struct edgeset *es, const struct choice *c, const struct geo_loc *loc,
                     int family, uint64_t *rng, unsigned max, int *out)
{
	const struct fam *f = &c->f[family == AF_INET6];
	if (loc->source == GEO_GEOIP)
		return pick_point(es, f, loc->lat, loc->lon, rng, max, out);
	return pick_region(es, f, loc->region, rng, max, out);
}

/* ---------- explanations ---------- */

static double client_distance(const struct edgeset *es, const struct geo_loc *loc, int region)
{
	if (loc->source == GEO_GEOIP)
		return geo_distance_km(loc->lat, loc->lon, es->regions[region].lat, es->regions[region].lon);
	return es->dist[(size_t)loc->region * es->nr + (size_t)region];
}

static const char *state_word(const struct edgeset *es, const struct choice *c, size_t i)
{
	if (!c->h[i].up)
		return "down";
	return c->h[i].load <= es->load_threshold ? "up" : "overloaded";
}

static int was_picked(const int *picked, unsigned n, size_t i)
{
	for (unsigned k = 0; k < n; k++)
		if (picked[k] == (int)i)
			return 1;
	return 0;
}

static const char *why(const struct edgeset *es, const struct choice *c, const struct geo_loc *loc,
                       int family, const int *picked, unsigned npicked)
{
	if (npicked == 0)
		return "no edge has an address of this family";
	if (choice_fail_open(c, family))
		return "fail-open: no edge is up, answering with all";
	if (loc->source == GEO_GEOIP)
		return "nearest usable edge to the GeoIP coordinates";
	int r0 = es->edges[picked[0]].region;
	if (r0 == loc->region)
		return "usable edge in the client's region";
	for (size_t b = 0; b < es->regions[loc->region].n_backup; b++)
		if (es->regions[loc->region].backup[b] == r0)
			return "client's region has no usable edge: backup region";
	return "client's region has no usable edge: nearest region with one";
}

void choice_explain_json(const struct edgeset *es, const struct choice *c, const struct geo_loc *loc,
                         int family, const int *picked, unsigned npicked, struct buf *b)
{
	buf_printf(b, "{\"family\":\"%s\",\"fail_open\":%s,\"candidates\":[", family == AF_INET6 ? "AAAA" : "A",
	           choice_fail_open(c, family) ? "true" : "false");
	int first = 1;
	for (size_t i = 0; i < es->ne; i++) {
		const struct edge *e = &es->edges[i];
		if (!has_family(e, family == AF_INET6))
			continue;
		char ip[INET6_ADDRSTRLEN];
		inet_ntop(family, family == AF_INET6 ? (const void *)e->a6 : (const void *)e->a4, ip, sizeof ip);
		buf_printf(b, "%s{\"edge\":", first ? "" : ",");
		buf_json_str(b, e->name);
		buf_puts(b, ",\"region\":");
		buf_json_str(b, es->regions[e->region].name);
		buf_printf(b, ",\"address\":\"%s\",\"state\":\"%s\",\"load\":%.3f,\"weight\":%u,"
		              "\"distance_km\":%.0f,\"picked\":%s}",
		           ip, state_word(es, c, i), c->h[i].load, e->weight, client_distance(es, loc, e->region),
		           was_picked(picked, npicked, i) ? "true" : "false");
		first = 0;
	}
	buf_puts(b, "],\"answer\":[");
	for (unsigned k = 0; k < npicked; k++) {
		buf_puts(b, k ? "," : "");
		buf_json_str(b, es->edges[picked[k]].name);
	}
	buf_puts(b, "],\"why\":");
	buf_json_str(b, why(es, c, loc, family, picked, npicked));
	buf_puts(b, "}");
}

void choice_explain_text(const struct edgeset *es, const struct choice *c, const struct geo_loc *loc,
                         int family, const int *picked, unsigned npicked, struct buf *b)
{
	buf_puts(b, " candidates=");
	int first = 1;
	for (size_t i = 0; i < es->ne; i++) {
		const struct edge *e = &es->edges[i];
		if (!has_family(e, family == AF_INET6))
			continue;
		buf_printf(b, "%s%s/%s/%s/load=%.2f/%.0fkm", first ? "" : ",", e->name, es->regions[e->region].name,
		           state_word(es, c, i), c->h[i].load, client_distance(es, loc, e->region));
		first = 0;
	}
	buf_puts(b, " answer=");
	for (unsigned k = 0; k < npicked; k++)
		buf_printf(b, "%s%s", k ? "," : "", es->edges[picked[k]].name);
	buf_printf(b, " why=\"%s\"", why(es, c, loc, family, picked, npicked));
}
