/* zone.c -- master-file loading (ldns) into pre-rendered wire format */
#include "dns/zone.h"
#include "common/xmalloc.h"

#include <ctype.h>
#include <errno.h>
#include <ldns/ldns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- names ---------- */

static uint64_t name_hash(const uint8_t *p, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h ^ (h >> 29);
}

static void name_lower(uint8_t *p, size_t len)
{
	/* Label length bytes are < 64 so lowering them is harmless. */
	for (size_t i = 0; i < len; i++)
		if (p[i] >= 'A' && p[i] <= 'Z')
			p[i] = (uint8_t)(p[i] + 32);
}

const char *dname_to_text(const uint8_t *name, char *out, size_t outlen)
{
	size_t o = 0;
	if (outlen < 2)
		return "";
	if (!name[0]) {
		snprintf(out, outlen, ".");
		return out;
	}
	while (*name && o + 6 < outlen) {
		unsigned l = *name++;
		for (unsigned i = 0; i < l && o + 6 < outlen; i++) {
			unsigned char c = name[i];
			if (c == '.' || c == '\\')
				o += (size_t)snprintf(out + o, outlen - o, "\\%c", c);
			else if (c <= ' ' || c >= 127)
				o += (size_t)snprintf(out + o, outlen - o, "\\%03u", c);
			else
				out[o++] = (char)c;
		}
		name += l;
		out[o++] = '.';
	}
	out[o] = '\0';
	return out;
}

int zone_contains(const struct zone *z, const uint8_t *name, size_t len)
{
	if (len < z->apex_len)
		return 0;
	/* Walk label by label so the match is on a label boundary. */
	size_t off = 0;
	while (len - off > z->apex_len)
		off += (size_t)name[off] + 1;
	return len - off == z->apex_len && memcmp(name + off, z->apex, z->apex_len) == 0;
}

int zone_contains_text(const struct zone *z, const char *name)
{
	ldns_rdf *d = NULL;
	if (ldns_str2rdf_dname(&d, name) != LDNS_STATUS_OK || !d)
		return 0;
	uint8_t w[256];
	size_t len = ldns_rdf_size(d);
	int in = 0;
	if (len <= 255) {
		memcpy(w, ldns_rdf_data(d), len);
		name_lower(w, len);
		in = zone_contains(z, w, len);
	}
	ldns_rdf_deep_free(d);
	return in;
}

struct znode *zone_find(const struct zone *z, const uint8_t *name, size_t len)
{
	struct znode *n = z->buckets[name_hash(name, len) & (z->nbuckets - 1)];
	for (; n; n = n->hnext)
		if (n->name_len == len && memcmp(n->name, name, len) == 0)
			return n;
	return NULL;
}

struct rrset *znode_rrset(const struct znode *n, uint16_t type)
{
	for (struct rrset *s = n->rrsets; s; s = s->next)
		if (s->type == type)
			return s;
	return NULL;
}

/* ---------- building ---------- */

static void rehash(struct zone *z)
{
	size_t nb = z->nbuckets ? z->nbuckets * 2 : 64;
	struct znode **b = xcalloc(nb, sizeof *b);
	for (size_t i = 0; i < z->nbuckets; i++) {
		struct znode *n = z->buckets[i], *next;
		for (; n; n = next) {
			next = n->hnext;
			size_t h = name_hash(n->name, n->name_len) & (nb - 1);
			n->hnext = b[h];
			b[h] = n;
		}
	}
	free(z->buckets);
	z->buckets = b;
	z->nbuckets = nb;
}

static struct znode *node_get(struct zone *z, const uint8_t *name, size_t len)
{
	struct znode *n = zone_find(z, name, len);
	if (n)
		return n;
	if (z->nnodes + 1 > z->nbuckets)
		rehash(z);
	n = xcalloc(1, sizeof *n);
	n->name = xmalloc(len);
	memcpy(n->name, name, len);
	n->name_len = (uint8_t)len;
	size_t h = name_hash(name, len) & (z->nbuckets - 1);
	n->hnext = z->buckets[h];
	z->buckets[h] = n;
	z->nnodes++;
	return n;
}

static void rrset_free(struct rrset *s)
{
	while (s) {
		struct rrset *next = s->next;
		free(s->wire);
		free(s->off);
		free(s->target);
		free(s);
		s = next;
	}
}

void zone_free(struct zone *z)
{
	if (!z)
		return;
	for (size_t i = 0; i < z->nbuckets; i++) {
		struct znode *n = z->buckets[i], *next;
		for (; n; n = next) {
			next = n->hnext;
			rrset_free(n->rrsets);
			free(n->name);
			free(n);
		}
	}
	free(z->buckets);
	free(z->origin);
	free(z);
}

/* Offset in rdata of the domain name that additional-section processing or
 * CNAME following needs, or -1. */
static int target_offset(uint16_t type)
{
	switch (type) {
	case DNS_T_NS: case DNS_T_CNAME: return 0;
	case DNS_T_MX: return 2;
	case DNS_T_SRV: return 6;
	default: return -1;
	}
}

static int add_rr(struct zone *z, const uint8_t *owner, size_t olen, uint16_t type, uint32_t ttl,
                  const uint8_t *rdata, size_t rdlen)
{
	struct znode *n = node_get(z, owner, olen);
	struct rrset *s = znode_rrset(n, type);
	if (!s) {
		s = xcalloc(1, sizeof *s);
		s->type = type;
		s->ttl = ttl;
		s->off = xcalloc(1, sizeof *s->off);
		/* Keep insertion order so answers list records as the file does. */
		struct rrset **pp = &n->rrsets;
		while (*pp)
			pp = &(*pp)->next;
		*pp = s;
	} else {
		for (unsigned i = 0; i < s->count; i++) /* identical record: once is enough */
			if (s->off[i + 1] - s->off[i] == rdlen + 10 && !memcmp(s->wire + s->off[i] + 10, rdata, rdlen))
				return 0;
		if (s->count == 65535)
			return -1;
		if (ttl < s->ttl) { /* RFC 2181 5.2: one TTL per RRset; take the smallest */
			s->ttl = ttl;
			for (unsigned i = 0; i < s->count; i++) {
				uint8_t *b = s->wire + s->off[i] + 4;
				b[0] = (uint8_t)(ttl >> 24), b[1] = (uint8_t)(ttl >> 16);
				b[2] = (uint8_t)(ttl >> 8), b[3] = (uint8_t)ttl;
			}
		}
	}
	size_t start = s->off[s->count];
	s->wire = xrealloc(s->wire, start + 10 + rdlen);
	s->off = xrealloc(s->off, (s->count + 2u) * sizeof *s->off);
	s->target = xrealloc(s->target, (s->count + 1u) * sizeof *s->target);
	uint8_t *b = s->wire + start;
	uint32_t t = s->ttl;
	b[0] = (uint8_t)(type >> 8), b[1] = (uint8_t)type, b[2] = 0, b[3] = 1;
	b[4] = (uint8_t)(t >> 24), b[5] = (uint8_t)(t >> 16), b[6] = (uint8_t)(t >> 8), b[7] = (uint8_t)t;
	b[8] = (uint8_t)(rdlen >> 8), b[9] = (uint8_t)rdlen;
	memcpy(b + 10, rdata, rdlen);
	int to = target_offset(type);
	s->target[s->count] = (uint16_t)(to >= 0 && (size_t)to < rdlen ? 10 + to : 0);
	s->count++;
	s->off[s->count] = (uint32_t)(start + 10 + rdlen);
	return 0;
}

/* Parent of a wire name (drops the first label); NULL at the root. */
static const uint8_t *parent(const uint8_t *name, size_t *len)
{
	if (!name[0])
		return NULL;
	*len -= (size_t)name[0] + 1;
	return name + name[0] + 1;
}

static int finish(struct zone *z, const char *file, char *err, size_t errlen)
{
	/* Empty non-terminals: every ancestor of a name up to the apex exists. */
	size_t nb = z->nbuckets;
	struct znode **all = xmalloc(z->nnodes * sizeof *all);
	size_t cnt = 0;
	for (size_t i = 0; i < nb; i++)
		for (struct znode *n = z->buckets[i]; n; n = n->hnext)
			all[cnt++] = n;
	for (size_t i = 0; i < cnt; i++) {
		size_t len = all[i]->name_len;
		const uint8_t *p = all[i]->name;
		while (len > z->apex_len && (p = parent(p, &len)) != NULL)
			node_get(z, p, len);
	}
	free(all);
	char txt[1100];
	for (size_t i = 0; i < z->nbuckets; i++) {
		for (struct znode *n = z->buckets[i]; n; n = n->hnext) {
			struct rrset *cn = znode_rrset(n, DNS_T_CNAME);
			if (cn && (cn->count > 1 || n->rrsets != cn || cn->next)) {
				snprintf(err, errlen, "%s: %s has a CNAME and other data", file,
				         dname_to_text(n->name, txt, sizeof txt));
				return -1;
			}
			/* The topmost delegation at or above n (below the apex). */
			size_t len = n->name_len;
			const uint8_t *p = n->name;
			n->cut = NULL;
			while (len > z->apex_len) {
				struct znode *a = zone_find(z, p, len);
				if (a && znode_rrset(a, DNS_T_NS))
					n->cut = a;
				p = parent(p, &len);
			}
		}
	}
	return 0;
}

/* Adds one parsed record.  Returns 0 or -1 with a reason. */
static int take_rr(struct zone *z, ldns_rr *rr, ldns_buffer *buf, const char *file, int line, int *nsoa,
                   char *err, size_t errlen)
{
	char txt[1100];
	ldns_rdf *own = ldns_rr_owner(rr);
	uint8_t oname[256];
	size_t olen = ldns_rdf_size(own);
	if (olen > 255 || olen == 0) {
		snprintf(err, errlen, "%s:%d: bad owner name", file, line);
		return -1;
	}
	memcpy(oname, ldns_rdf_data(own), olen);
	name_lower(oname, olen);
	if (!zone_contains(z, oname, olen)) {
		snprintf(err, errlen, "%s:%d: %s is outside the zone %s", file, line, dname_to_text(oname, txt, sizeof txt),
		         z->origin);
		return -1;
	}
	uint16_t type = (uint16_t)ldns_rr_get_type(rr);
	if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN) {
		snprintf(err, errlen, "%s:%d: %s: only class IN is served", file, line,
		         dname_to_text(oname, txt, sizeof txt));
		return -1;
	}
	if (type == DNS_T_SOA) {
		if (olen != z->apex_len) {
			snprintf(err, errlen, "%s:%d: the SOA must be at the apex %s", file, line, z->origin);
			return -1;
		}
		if (++*nsoa > 1) {
			snprintf(err, errlen, "%s:%d: more than one SOA record", file, line);
			return -1;
		}
	}
	if (type == DNS_T_OPT || type == DNS_T_ANY) {
		snprintf(err, errlen, "%s:%d: record type %u cannot appear in a zone", file, line, type);
		return -1;
	}
	ldns_buffer_clear(buf);
	if (ldns_rr_rdata2buffer_wire(buf, rr) != LDNS_STATUS_OK || ldns_buffer_position(buf) > 65535) {
		snprintf(err, errlen, "%s:%d: %s: cannot encode record", file, line, dname_to_text(oname, txt, sizeof txt));
		return -1;
	}
	uint8_t *rd = ldns_buffer_begin(buf);
	size_t rdlen = ldns_buffer_position(buf);
	/* Targets are matched case-insensitively: store them lowercased. */
	int to = target_offset(type);
	if (to >= 0 && (size_t)to < rdlen)
		name_lower(rd + to, rdlen - (size_t)to);
	if (add_rr(z, oname, olen, type, ldns_rr_ttl(rr), rd, rdlen) < 0) {
		snprintf(err, errlen, "%s:%d: %s: too many records", file, line, dname_to_text(oname, txt, sizeof txt));
		return -1;
	}
	return 0;
}

struct zone *zone_load(const char *origin, const char *file, char *err, size_t errlen)
{
	struct zone *z = xcalloc(1, sizeof *z);
	ldns_rdf *org = NULL, *cur_origin = NULL, *prev = NULL;
	ldns_buffer *buf = NULL;
	FILE *fp = NULL;
	int nsoa = 0;

	z->origin = xstrdup(origin);
	if (ldns_str2rdf_dname(&org, origin) != LDNS_STATUS_OK || !org) {
		snprintf(err, errlen, "%s: '%s' is not a domain name", file, origin);
		goto fail;
	}
	if (ldns_rdf_size(org) > 255) {
		snprintf(err, errlen, "%s: origin too long", file);
		goto fail;
	}
	z->apex_len = (uint8_t)ldns_rdf_size(org);
	memcpy(z->apex, ldns_rdf_data(org), z->apex_len);
	name_lower(z->apex, z->apex_len);
	rehash(z);

	fp = fopen(file, "r");
	if (!fp) {
		snprintf(err, errlen, "%s: cannot open: %s", file, strerror(errno));
		goto fail;
	}
	buf = ldns_buffer_new(4096);
	/* Record by record rather than ldns_zone_new_frm_fp_l, which leaks the
	 * records read so far when it meets an error. */
	cur_origin = ldns_rdf_clone(org);
	uint32_t ttl = 3600;
	int line = 1;
	for (;;) {
		ldns_rr *rr = NULL;
		int before = line;
		ldns_status st = ldns_rr_new_frm_fp_l(&rr, fp, &ttl, &cur_origin, &prev, &line);
		if (st == LDNS_STATUS_OK) {
			int rc = take_rr(z, rr, buf, file, before == line ? line : line - 1, &nsoa, err, errlen);
			ldns_rr_free(rr);
			if (rc < 0)
				goto fail;
			continue;
		}
		if (rr)
			ldns_rr_free(rr);
		if (st == LDNS_STATUS_SYNTAX_EMPTY || st == LDNS_STATUS_SYNTAX_TTL || st == LDNS_STATUS_SYNTAX_ORIGIN) {
			if (feof(fp))
				break;
			continue;
		}
		if (st == LDNS_STATUS_SYNTAX_INCLUDE) {
			snprintf(err, errlen, "%s:%d: $INCLUDE is not supported", file, line > 1 ? line - 1 : line);
			goto fail;
		}
		/* ldns has already counted the newline ending the bad record. */
		snprintf(err, errlen, "%s:%d: %s", file, line > 1 ? line - 1 : line, ldns_get_errorstr_by_id(st));
		goto fail;
	}
	if (nsoa == 0) {
		snprintf(err, errlen, "%s: no SOA record", file);
		goto fail;
	}
	z->apex_node = zone_find(z, z->apex, z->apex_len);
	z->soa = znode_rrset(z->apex_node, DNS_T_SOA);
	{
		const uint8_t *rd = z->soa->wire + 10;
		size_t rdlen = z->soa->off[1] - 10;
		uint32_t min = (uint32_t)rd[rdlen - 4] << 24 | (uint32_t)rd[rdlen - 3] << 16 |
		               (uint32_t)rd[rdlen - 2] << 8 | rd[rdlen - 1];
		z->neg_ttl = min < z->soa->ttl ? min : z->soa->ttl;
	}
	if (finish(z, file, err, errlen) < 0)
		goto fail;
	ldns_buffer_free(buf);
	ldns_rdf_deep_free(org);
	ldns_rdf_deep_free(cur_origin);
	if (prev)
		ldns_rdf_deep_free(prev);
	fclose(fp);
	return z;
fail:
	if (buf)
		ldns_buffer_free(buf);
	if (org)
		ldns_rdf_deep_free(org);
	if (cur_origin)
		ldns_rdf_deep_free(cur_origin);
	if (prev)
		ldns_rdf_deep_free(prev);
	if (fp)
		fclose(fp);
	zone_free(z);
	return NULL;
}

int zone_add_dynamic(struct zone *z, const char *name, char *err, size_t errlen)
{
	ldns_rdf *d = NULL;
	if (ldns_str2rdf_dname(&d, name) != LDNS_STATUS_OK || !d || ldns_rdf_size(d) > 255) {
		if (d)
			ldns_rdf_deep_free(d);
		snprintf(err, errlen, "dynamic name '%s' is not a domain name", name);
		return -1;
	}
	uint8_t w[256];
	size_t len = ldns_rdf_size(d);
	memcpy(w, ldns_rdf_data(d), len);
	ldns_rdf_deep_free(d);
	name_lower(w, len);
	if (!zone_contains(z, w, len)) {
		snprintf(err, errlen, "dynamic name '%s' is outside zone %s", name, z->origin);
		return -1;
	}
	struct znode *n = node_get(z, w, len);
	if (znode_rrset(n, DNS_T_CNAME)) {
		snprintf(err, errlen, "dynamic name '%s' has a CNAME in the zone file", name);
		return -1;
	}
	n->dynamic = 1;
	/* New node: make its ancestors exist and recompute cuts. */
	char txt[1100];
	if (finish(z, z->origin, err, errlen) < 0)
		return -1;
	if (n->cut) {
		snprintf(err, errlen, "dynamic name '%s' is below the delegation %s", name,
		         dname_to_text(n->cut->name, txt, sizeof txt));
		return -1;
	}
	return 0;
}
