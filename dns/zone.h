/* zone.h -- authoritative zone data loaded from a master file (via ldns),
 * kept as pre-rendered wire format for a fast answer path.
 *
 * Names are stored as lowercased uncompressed wire format.  Every RRset keeps
 * its records as ready-to-copy bodies (type, class, TTL, rdlength, rdata);
 * only the owner name is written per answer.  A zone is immutable after
 * zone_load/zone_add_dynamic and is read by many threads without locks. */
#ifndef MINICDN_ZONE_H
#define MINICDN_ZONE_H

#include <stddef.h>
#include <stdint.h>

#define DNS_T_A 1
#define DNS_T_NS 2
#define DNS_T_CNAME 5
#define DNS_T_SOA 6
#define DNS_T_MX 15
#define DNS_T_TXT 16
#define DNS_T_AAAA 28
#define DNS_T_SRV 33
#define DNS_T_OPT 41
#define DNS_T_DS 43
#define DNS_T_ANY 255

struct rrset {
	uint16_t type;
	uint16_t count;
	uint32_t ttl;
	uint8_t *wire;        /* count bodies back to back */
	uint32_t *off;        /* count + 1 offsets into wire */
	uint16_t *target;     /* per record: offset in its body of an embedded name
	                         (NS, CNAME, MX, SRV target), 0 = none */
	struct rrset *next;
};

struct znode {
	uint8_t *name;        /* lowercased wire format */
	uint8_t name_len;
	uint8_t dynamic;      /* A/AAAA come from the edge choice */
	struct rrset *rrsets; /* NULL for an empty non-terminal */
	struct znode *cut;    /* delegation point at or above this node (never the apex) */
	struct znode *hnext;
};

struct zone {
	char *origin;         /* "cdn.test." */
	uint8_t apex[256];
	uint8_t apex_len;
	struct znode *apex_node;
	struct rrset *soa;
	uint32_t neg_ttl;     /* RFC 2308: min(SOA TTL, SOA MINIMUM) */
	struct znode **buckets;
	size_t nbuckets, nnodes;
};

/* Loads file as zone origin ("cdn.test.").  Returns NULL with "FILE:LINE:
 * reason" in err for syntax errors, records outside the zone, a missing or
 * misplaced SOA, CNAME next to other data. */
struct zone *zone_load(const char *origin, const char *file, char *err, size_t errlen);
void zone_free(struct zone *z);

/* Marks name (text, e.g. "www.cdn.test." or "*.cdn.test.") dynamic, creating
 * it if needed.  Returns 0, or -1 with a reason (outside the zone, CNAME). */
int zone_add_dynamic(struct zone *z, const char *name, char *err, size_t errlen);

/* True if the text name (e.g. "www.cdn.test.") is at or below the apex. */
int zone_contains_text(const struct zone *z, const char *name);
/* True if the lowercased wire name (len bytes) is at or below the apex. */
int zone_contains(const struct zone *z, const uint8_t *name, size_t len);
/* Exact lookup of a lowercased wire name; NULL if absent. */
struct znode *zone_find(const struct zone *z, const uint8_t *name, size_t len);
struct rrset *znode_rrset(const struct znode *n, uint16_t type);

/* Text form of a wire name into out (at least 1025 bytes for any name). */
const char *dname_to_text(const uint8_t *name, char *out, size_t outlen);

#endif
