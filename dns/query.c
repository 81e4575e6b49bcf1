/* query.c -- DNS query in, answer out (no I/O)
 *
 * Order of business, like NSD's query.c: validate the header, parse the
 * question and the OPT record, pick the zone, walk the zone (CNAME chain,
 * wildcard, delegation), add the dynamic edge answer, then OPT.  Anything that
 * does not fit a UDP reply turns into an empty reply with TC set. */
#include "dns/query.h"
#include "dns/rcode.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <string.h>

#define F_QR 0x8000
#define F_AA 0x0400
#define F_TC 0x0200
#define F_RD 0x0100
#define F_CD 0x0010

#define ECS_CODE 8
#define MAX_CHAIN 8
#define MAX_COMP 32

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline void wr16(uint8_t *p, unsigned v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* ---------- the parsed query ---------- */

struct ecs {
	bool present;
	uint16_t family;      /* 1 = IPv4, 2 = IPv6 */
	uint8_t source, scope;
	uint8_t addr[16];     /* zero-padded */
};

struct q {
	uint16_t id, flags;
	uint8_t lc[256];      /* question name, lowercased */
	size_t qlen;          /* its length */
	uint8_t labels[128];  /* offset of each label in lc */
	unsigned nlabels;
	uint16_t qtype, qclass;
	size_t qend;          /* end of the question in the packet */
	bool edns;
	uint16_t udp_size;
	uint8_t version;
	bool do_bit;
	struct ecs ecs;
};

/* ASCII lowercase of every byte value. */
static const uint8_t lower[256] = {
#define L1(c) ((c) >= 'A' && (c) <= 'Z' ? (c) + 32 : (c))
#define L4(c) L1(c), L1(c + 1), L1(c + 2), L1(c + 3)
#define L16(c) L4(c), L4(c + 4), L4(c + 8), L4(c + 12)
#define L64(c) L16(c), L16(c + 16), L16(c + 32), L16(c + 48)
	L64(0), L64(64), L64(128), L64(192)
#undef L64
#undef L16
#undef L4
#undef L1
};

/* Reads the question name at p[off..len) without compression (a question
 * must not be compressed).  Returns the offset past it, or 0. */
static size_t parse_qname(const uint8_t *p, size_t len, size_t off, struct q *q)
{
	size_t o = 0;
	q->nlabels = 0;
	for (;;) {
		if (off >= len)
			return 0;
		unsigned l = p[off];
		if (l > 63) /* pointer or reserved label type */
			return 0;
		if (o + l + 1 > 255 || off + l + 1 > len)
			return 0;
		q->labels[q->nlabels++] = (uint8_t)o;
		q->lc[o++] = (uint8_t)l;
		off++;
		if (l == 0)
			break;
		/* A table lookup per byte: this loop runs for every byte of every query. */
		const uint8_t *src = p + off;
		uint8_t *dst = q->lc + o;
		for (unsigned i = 0; i < l; i++)
			dst[i] = lower[src[i]];
		o += l;
		off += l;
	}
	q->qlen = o;
	q->nlabels--; /* the root label does not count */
	return off;
}

/* Skips a possibly compressed name.  Returns the offset past it, or 0. */
static size_t skip_name(const uint8_t *p, size_t len, size_t off)
{
	for (unsigned n = 0; n < 128; n++) {
		if (off >= len)
			return 0;
		unsigned l = p[off];
		if ((l & 0xC0) == 0xC0)
			return off + 2 <= len ? off + 2 : 0;
		if (l > 63)
			return 0;
		off += l + 1;
		if (l == 0)
			return off;
	}
	return 0;
}

/* RFC 7871 section 6; any deviation is FORMERR (returns -1). */
static int parse_ecs(const uint8_t *p, size_t n, struct ecs *e)
{
	if (n < 4 || e->present)
		return -1;
	e->family = rd16(p);
	e->source = p[2];
	e->scope = p[3];
	unsigned maxbits = e->family == 1 ? 32 : e->family == 2 ? 128 : 0;
	if (!maxbits || e->source > maxbits || e->scope != 0)
		return -1;
	size_t alen = (e->source + 7u) / 8u;
	if (n - 4 != alen)
		return -1;
	memset(e->addr, 0, sizeof e->addr);
	memcpy(e->addr, p + 4, alen);
	if (e->source % 8 && (e->addr[alen - 1] & (0xFF >> (e->source % 8))))
		return -1; /* address bits beyond the source prefix */
	e->present = true;
	return 0;
}

/* Parses the additional section for OPT.  Returns 0, or an rcode. */
static int parse_additional(const uint8_t *p, size_t len, size_t off, unsigned count, struct q *q)
{
	for (unsigned i = 0; i < count; i++) {
		size_t nstart = off;
		off = skip_name(p, len, off);
		if (!off || off + 10 > len)
			return RCODE_FORMERR;
		uint16_t type = rd16(p + off), rdlen = rd16(p + off + 8);
		if (off + 10 + rdlen > len)
			return RCODE_FORMERR;
		if (type == DNS_T_OPT) {
			if (q->edns || p[nstart] != 0 || off != nstart + 1)
				return RCODE_FORMERR; /* two OPTs, or an OPT not owned by the root */
			q->edns = true;
			q->udp_size = rd16(p + off + 2);
			q->version = p[off + 5];
			q->do_bit = (p[off + 6] & 0x80) != 0;
			const uint8_t *o = p + off + 10, *end = o + rdlen;
			while (o < end) {
				if (end - o < 4)
					return RCODE_FORMERR;
				uint16_t code = rd16(o), olen = rd16(o + 2);
				if ((size_t)(end - o - 4) < olen)
					return RCODE_FORMERR;
				if (code == ECS_CODE && q->version == 0 && parse_ecs(o + 4, olen, &q->ecs) < 0)
					return RCODE_FORMERR;
				o += 4 + olen;
			}
		}
		off += 10 + rdlen;
	}
	return 0;
}

/* ---------- the reply writer ---------- */

struct comp {
	const uint8_t *name;  /* lowercased wire name (borrowed from zone or query) */
	uint8_t len;
	uint16_t off;
};

struct w {
	uint8_t *b;
	size_t len, limit;    /* limit: bytes usable for records (room for OPT kept aside) */
	bool full;            /* something required did not fit */
	uint16_t count[3];    /* answer, authority, additional */
	const struct q *q;
	struct comp comp[MAX_COMP];
	unsigned ncomp;
};

enum { SEC_AN = 0, SEC_NS = 1, SEC_AR = 2 };

/* Writes a name as a pointer when we already have it (the question, a suffix
 * of it, or an earlier name), else in full and remembers where. */
static bool put_name(struct w *w, const uint8_t *name, size_t nlen)
{
	const struct q *q = w->q;
	for (unsigned i = 0; i < q->nlabels; i++) {
		size_t o = q->labels[i];
		if (q->qlen - o == nlen && memcmp(q->lc + o, name, nlen) == 0) {
			if (w->len + 2 > w->limit)
				return false;
			wr16(w->b + w->len, 0xC000 | (12 + o));
			w->len += 2;
			return true;
		}
	}
	for (unsigned i = 0; i < w->ncomp; i++)
		if (w->comp[i].len == nlen && memcmp(w->comp[i].name, name, nlen) == 0) {
			if (w->len + 2 > w->limit)
				return false;
			wr16(w->b + w->len, 0xC000 | w->comp[i].off);
			w->len += 2;
			return true;
		}
	if (w->len + nlen > w->limit)
		return false;
	if (w->ncomp < MAX_COMP && w->len < 0x3FFF)
		w->comp[w->ncomp++] = (struct comp){ name, (uint8_t)nlen, (uint16_t)w->len };
	memcpy(w->b + w->len, name, nlen);
	w->len += nlen;
	return true;
}

static size_t name_len(const uint8_t *n)
{
	size_t o = 0;
	while (n[o])
		o += n[o] + 1u;
	return o + 1;
}

/* Appends every record of s with the given owner; ttl_override != 0 replaces
 * the TTL (SOA in negative answers).  All or nothing: on overflow the writer
 * is rolled back and false returned. */
static bool put_rrset(struct w *w, int sec, const uint8_t *owner, size_t olen, const struct rrset *s,
                      uint32_t ttl_override)
{
	size_t save_len = w->len;
	unsigned save_comp = w->ncomp;
	for (unsigned i = 0; i < s->count; i++) {
		if (!put_name(w, owner, olen))
			goto overflow;
		size_t bl = s->off[i + 1] - s->off[i];
		if (w->len + bl > w->limit)
			goto overflow;
		const uint8_t *body = s->wire + s->off[i];
		memcpy(w->b + w->len, body, bl);
		if (ttl_override)
			wr32(w->b + w->len + 4, ttl_override);
		if (s->target[i] && w->ncomp < MAX_COMP && w->len + s->target[i] < 0x3FFF)
			w->comp[w->ncomp++] = (struct comp){ body + s->target[i], (uint8_t)name_len(body + s->target[i]),
				                             (uint16_t)(w->len + s->target[i]) };
		w->len += bl;
	}
	w->count[sec] += s->count;
	return true;
overflow:
	w->len = save_len;
	w->ncomp = save_comp;
	return false;
}

static bool put_addr(struct w *w, const uint8_t *owner, size_t olen, int family, const uint8_t *a, uint32_t ttl)
{
	size_t alen = family == AF_INET ? 4 : 16;
	if (!put_name(w, owner, olen) || w->len + 10 + alen > w->limit)
		return false;
	uint8_t *b = w->b + w->len;
	wr16(b, family == AF_INET ? DNS_T_A : DNS_T_AAAA);
	wr16(b + 2, 1);
	wr32(b + 4, ttl);
	wr16(b + 8, (unsigned)alen);
	memcpy(b + 10, a, alen);
	w->len += 10 + alen;
	w->count[SEC_AN]++;
	return true;
}

/* ---------- answering ---------- */

struct ans {
	const struct zone *z;
	int rcode;
	bool aa;
	bool dynamic;          /* the answer depends on the client's location */
	unsigned scope;        /* ECS scope of a dynamic answer */
};

/* Additional-section records (A/AAAA) for names inside the zone. */
static void add_glue(struct w *w, const struct zone *z, const struct rrset *s)
{
	for (unsigned i = 0; i < s->count; i++) {
		if (!s->target[i])
			continue;
		const uint8_t *t = s->wire + s->off[i] + s->target[i];
		size_t tl = name_len(t);
		if (!zone_contains(z, t, tl))
			continue;
		const struct znode *n = zone_find(z, t, tl);
		if (!n)
			continue;
		const struct rrset *a = znode_rrset(n, DNS_T_A), *aaaa = znode_rrset(n, DNS_T_AAAA);
		/* Additional data is optional: what does not fit is left out, no TC. */
		if (a)
			put_rrset(w, SEC_AR, t, tl, a, 0);
		if (aaaa)
			put_rrset(w, SEC_AR, t, tl, aaaa, 0);
	}
}

static void put_negative(struct w *w, struct ans *a)
{
	if (!put_rrset(w, SEC_NS, a->z->apex, a->z->apex_len, a->z->soa, a->z->neg_ttl))
		w->full = true;
}

static void put_referral(struct w *w, struct ans *a, const struct znode *cut)
{
	const struct rrset *ns = znode_rrset(cut, DNS_T_NS);
	a->aa = false;
	if (!put_rrset(w, SEC_NS, cut->name, cut->name_len, ns, 0)) {
		w->full = true;
		return;
	}
	add_glue(w, a->z, ns);
}

/* Client location: ECS address if present (and not /0), else the source. */
static void locate(const struct view *v, const struct q *q, const struct sockaddr *client,
                   struct geo_loc *loc, int *fam_out, uint8_t *addr_out)
{
	int fam;
	uint8_t addr[16];
	if (q->ecs.present && q->ecs.source > 0) {
		fam = q->ecs.family == 1 ? AF_INET : AF_INET6;
		memcpy(addr, q->ecs.addr, 16);
	} else if (client->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)client;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			fam = AF_INET;
			memcpy(addr, s6->sin6_addr.s6_addr + 12, 4);
		} else {
			fam = AF_INET6;
			memcpy(addr, s6->sin6_addr.s6_addr, 16);
		}
	} else {
		fam = AF_INET;
		memcpy(addr, &((const struct sockaddr_in *)client)->sin_addr, 4);
	}
	geo_locate(v->snap->geo, fam, addr, loc);
	if (loc->source == GEO_NONE)
		loc->region = v->snap->es->default_region;
	if (fam_out)
		*fam_out = fam;
	if (addr_out)
		memcpy(addr_out, addr, 16);
}

static void query_log_line(const struct view *v, const struct q *q, const struct sockaddr *client,
                           const struct geo_loc *loc, int lfam, const uint8_t *laddr, int afam,
                           const int *picked, unsigned n)
{
	struct buf b = BUF_INIT;
	char name[1100], ip[INET6_ADDRSTRLEN], res[INET6_ADDRSTRLEN];
	addr_format_ip(client, res, sizeof res);
	inet_ntop(lfam, laddr, ip, sizeof ip);
	buf_printf(&b, "q=%s %s resolver=%s client=%s", dname_to_text(q->lc, name, sizeof name),
	           afam == AF_INET6 ? "AAAA" : "A", res, ip);
	if (q->ecs.present)
		buf_printf(&b, "/%u(ecs)", q->ecs.source);
	buf_printf(&b, " match=%s/%u region=%s scope=%u",
	           loc->source == GEO_MAP ? "map" : loc->source == GEO_GEOIP ? "geoip" : "default", loc->match_len,
	           loc->source == GEO_GEOIP ? "-" : v->snap->es->regions[loc->region].name, loc->scope);
	choice_explain_text(v->snap->es, v->choice, loc, afam, picked, n, &b);
	log_info("query", "%s", b.data);
	buf_free(&b);
}

static void answer_dynamic(struct query_env *env, struct w *w, struct ans *a, const struct q *q,
                           const struct sockaddr *client, const uint8_t *owner, size_t olen, uint16_t qtype)
{
	const struct view *v = env->view;
	const struct edgeset *es = v->snap->es;
	struct geo_loc loc;
	int lfam;
	uint8_t laddr[16];
	locate(v, q, client, &loc, &lfam, laddr);
	a->dynamic = true;
	a->scope = loc.scope;
	int afam = qtype == DNS_T_AAAA ? AF_INET6 : AF_INET;
	int picked[16];
	unsigned n = choice_pick(es, v->choice, &loc, afam, &env->rng, es->answers, picked);
	uint32_t ttl = (uint32_t)v->snap->conf.ttl;
	for (unsigned i = 0; i < n; i++) {
		const struct edge *e = &es->edges[picked[i]];
		if (!put_addr(w, owner, olen, afam, afam == AF_INET ? e->a4 : e->a6, ttl)) {
			w->full = true;
			break;
		}
	}
	if (env->stats) {
		env->stats->dynamic++;
		if (loc.source != GEO_GEOIP)
			env->stats->region[es->regions[loc.region].stat_id]++;
		for (unsigned i = 0; i < n; i++)
			env->stats->edge[es->edges[picked[i]].stat_id]++;
		if (n && choice_fail_open(v->choice, afam))
			env->stats->fail_open++;
	}
	if (v->snap->conf.query_log)
		query_log_line(v, q, client, &loc, lfam, laddr, afam, picked, n);
}

/* The zone walk: CNAME chain, wildcard, delegation, NXDOMAIN/NODATA. */
static void answer_zone(struct query_env *env, struct w *w, struct ans *a, const struct q *q,
                        const struct sockaddr *client)
{
	const struct zone *z = a->z;
	const uint8_t *name = q->lc;
	size_t nlen = q->qlen;
	uint8_t wild[256];
	for (unsigned chain = 0;; chain++) {
		const struct znode *n = zone_find(z, name, nlen);
		if (!n) {
			/* closest encloser: strip labels until a name exists */
			const uint8_t *ce = name;
			size_t celen = nlen;
			const struct znode *cen = NULL;
			while (celen > z->apex_len) {
				celen -= (size_t)ce[0] + 1;
				ce += ce[0] + 1;
				if ((cen = zone_find(z, ce, celen)) != NULL)
					break;
			}
			if (cen && cen->cut) {
				put_referral(w, a, cen->cut);
				return;
			}
			const struct znode *wn = NULL;
			if (cen && celen + 2 <= 255) {
				wild[0] = 1;
				wild[1] = '*';
				memcpy(wild + 2, ce, celen);
				wn = zone_find(z, wild, celen + 2);
			}
			if (!wn) {
				a->rcode = RCODE_NXDOMAIN;
				put_negative(w, a);
				return;
			}
			n = wn; /* RFC 4592: synthesise from the wildcard with the query's owner */
		} else if (n->cut) {
			put_referral(w, a, n->cut);
			return;
		}
		const struct rrset *cn = znode_rrset(n, DNS_T_CNAME);
		if (cn && q->qtype != DNS_T_CNAME) {
			if (!put_rrset(w, SEC_AN, name, nlen, cn, 0)) {
				w->full = true;
				return;
			}
			const uint8_t *t = cn->wire + cn->off[0] + cn->target[0];
			size_t tl = name_len(t);
			if (chain + 1 >= MAX_CHAIN || !zone_contains(z, t, tl))
				return; /* the resolver follows it from here */
			name = t;
			nlen = tl;
			continue;
		}
		bool any = false;
		if (n->dynamic && (q->qtype == DNS_T_A || q->qtype == DNS_T_AAAA || q->qtype == DNS_T_ANY)) {
			answer_dynamic(env, w, a, q, client, name, nlen, q->qtype == DNS_T_ANY ? DNS_T_A : q->qtype);
			any = w->count[SEC_AN] > 0;
		}
		for (const struct rrset *s = n->rrsets; s && !w->full; s = s->next) {
			if (s->type != q->qtype && q->qtype != DNS_T_ANY)
				continue;
			if (n->dynamic && (s->type == DNS_T_A || s->type == DNS_T_AAAA))
				continue; /* dynamic names answer addresses from the edge choice only */
			if (!put_rrset(w, SEC_AN, name, nlen, s, 0)) {
				w->full = true;
				return;
			}
			any = true;
			if (s->type == DNS_T_NS || s->type == DNS_T_MX || s->type == DNS_T_SRV)
				add_glue(w, z, s);
		}
		if (!any && !w->full)
			put_negative(w, a); /* NODATA (also at the end of a CNAME chain) */
		return;
	}
}

static const struct zone *find_zone(const struct snapshot *s, const struct q *q)
{
	const struct zone *best = NULL;
	for (size_t i = 0; i < s->nzones; i++) {
		const struct zone *z = s->zones[i];
		if ((!best || z->apex_len > best->apex_len) && zone_contains(z, q->lc, q->qlen))
			best = z;
	}
	return best;
}

/* Header, optional question, counts.  Returns the writer positioned after the question. */
static void start_reply(struct w *w, const struct q *q, const uint8_t *pkt, bool with_question)
{
	wr16(w->b, q->id);
	wr16(w->b + 4, with_question ? 1 : 0);
	memset(w->b + 6, 0, 6);
	w->len = 12;
	if (with_question) {
		memcpy(w->b + 12, pkt + 12, q->qend - 12); /* the question as sent: case preserved */
		w->len = q->qend;
	}
	w->count[0] = w->count[1] = w->count[2] = 0;
	w->ncomp = 0;
	w->full = false;
}

static size_t put_opt(uint8_t *b, size_t off, const struct q *q, int rcode, uint16_t our_size,
                      bool with_ecs, unsigned scope)
{
	uint8_t *p = b + off;
	p[0] = 0;
	wr16(p + 1, DNS_T_OPT);
	wr16(p + 3, our_size);
	p[5] = (uint8_t)(rcode >> 4);
	p[6] = 0; /* version 0 */
	p[7] = q->do_bit ? 0x80 : 0;
	p[8] = 0;
	size_t olen = 0;
	if (with_ecs) {
		size_t alen = (q->ecs.source + 7u) / 8u;
		uint8_t *o = p + 11;
		wr16(o, ECS_CODE);
		wr16(o + 2, (unsigned)(4 + alen));
		wr16(o + 4, q->ecs.family);
		o[6] = q->ecs.source;
		o[7] = (uint8_t)scope;
		memcpy(o + 8, q->ecs.addr, alen);
		olen = 8 + alen;
	}
	wr16(p + 9, (unsigned)olen);
	return off + 11 + olen;
}

static inline void count_reply(struct counters *st, bool tcp, unsigned rcode, bool ecs)
{
	if (tcp)
		st->tcp++;
	else
		st->udp++;
	st->rcode[rcode < COUNTERS_RCODES ? rcode : COUNTERS_RCODES - 1]++;
	if (ecs)
		st->ecs++;
}

size_t query_process(struct query_env *env, const uint8_t *pkt, size_t len, const struct sockaddr *client,
                     bool tcp, uint8_t *out, size_t cap)
{
	struct counters *st = env->stats;
	struct q q;
	struct w w;
	struct ans a = { NULL, RCODE_NOERROR, true, false, 0 };
	bool with_question = false;
	if (len < 12 || (pkt[2] & 0x80)) { /* too short, or a response: drop it on the floor */
		if (st)
			st->dropped++;
		return 0;
	}
	if (cap > 65535)
		cap = 65535;
	q.id = rd16(pkt);
	q.flags = rd16(pkt + 2);
	q.edns = false;
	q.ecs.present = false;
	q.do_bit = false;
	q.version = 0;
	q.qlen = 0;
	q.nlabels = 0;
	q.qend = 12;
	w.b = out;
	w.q = &q;
	unsigned opcode = (q.flags >> 11) & 0xF;
	unsigned qd = rd16(pkt + 4), an = rd16(pkt + 6), ns = rd16(pkt + 8), ar = rd16(pkt + 10);
	if (opcode != 0) {
		a.rcode = RCODE_NOTIMP;
		goto reply;
	}
	if (qd != 1 || an != 0 || ns != 0) {
		a.rcode = RCODE_FORMERR;
		goto reply;
	}
	size_t off = parse_qname(pkt, len, 12, &q);
	if (!off || off + 4 > len) {
		a.rcode = RCODE_FORMERR;
		goto reply;
	}
	q.qtype = rd16(pkt + off);
	q.qclass = rd16(pkt + off + 2);
	q.qend = off + 4;
	with_question = true;
	int rc = parse_additional(pkt, len, q.qend, ar, &q);
	if (rc) {
		a.rcode = rc;
		q.ecs.present = false;
		goto reply;
	}
	if (q.edns && q.version != 0) {
		a.rcode = RCODE_BADVERS;
		q.ecs.present = false;
		goto reply;
	}
	if (q.qtype == DNS_T_OPT) {
		a.rcode = RCODE_FORMERR;
		goto reply;
	}
	if ((q.qclass != 1 && q.qclass != 255) || q.qtype == 251 || q.qtype == 252) {
		a.rcode = RCODE_REFUSED; /* other classes, zone transfers */
		a.aa = false;
		goto reply;
	}
	a.z = find_zone(env->view->snap, &q);
	if (!a.z) {
		a.rcode = RCODE_REFUSED;
		a.aa = false;
		goto reply;
	}
reply:;
	/* Size: 512 without EDNS; with it, what the client takes, capped by ours. */
	uint16_t our_size = (uint16_t)env->view->snap->conf.edns_udp_size;
	size_t limit = 512;
	if (tcp)
		limit = cap;
	else if (q.edns)
		limit = q.udp_size < 512 ? 512 : q.udp_size > our_size ? our_size : q.udp_size;
	if (limit > cap)
		limit = cap;
	size_t opt_room = q.edns ? 11 + (q.ecs.present ? 8 + 16 : 0) : 0;
	w.limit = limit - opt_room;
	start_reply(&w, &q, pkt, with_question);
	if (a.z)
		answer_zone(env, &w, &a, &q, client);
	uint16_t flags = F_QR | (q.flags & (0x7800 | F_RD | F_CD)) | (a.aa && a.z ? F_AA : 0);
	if (w.full) {
		if (tcp) {
			a.rcode = RCODE_SERVFAIL; /* 64 KiB is not enough: the zone data is unreasonable */
		} else {
			flags |= F_TC;
			if (st)
				st->truncated++;
		}
		start_reply(&w, &q, pkt, with_question);
	}
	flags |= (uint16_t)(a.rcode & 0xF);
	wr16(out + 2, flags);
	wr16(out + 6, w.count[SEC_AN]);
	wr16(out + 8, w.count[SEC_NS]);
	unsigned arc = w.count[SEC_AR];
	size_t n = w.len;
	if (q.edns) {
		/* Scope 0 for answers that do not depend on the location, and for a
		 * /0 source (RFC 7871 7.2.1: the resolver's address decided). */
		unsigned scope = a.dynamic && !w.full && q.ecs.source > 0 ? a.scope : 0;
		n = put_opt(out, n, &q, a.rcode, our_size, q.ecs.present, scope);
		arc++;
	}
	wr16(out + 10, arc);
	if (st)
		count_reply(st, tcp, a.rcode, q.ecs.present);
	return n;
}

/* ---------- explain ---------- */

int query_explain(const struct view *v, const char *name, const char *address, uint16_t qtype, uint64_t *rng,
                  struct buf *b)
{
	struct addr ad;
	char why[200];
	if (qtype != DNS_T_A && qtype != DNS_T_AAAA) {
		buf_puts(b, "{\"error\":\"type must be A or AAAA\"}");
		return -1;
	}
	int afam = qtype == DNS_T_AAAA ? AF_INET6 : AF_INET;
	if (addr_parse_ip(address, 0, &ad, why, sizeof why) < 0) {
		buf_puts(b, "{\"error\":");
		buf_json_str(b, why);
		buf_puts(b, "}");
		return -1;
	}
	/* Build a real query for name and run it, so the zone walk is the same. */
	uint8_t pkt[300], out[4096];
	size_t o = 12;
	memset(pkt, 0, 12);
	pkt[5] = 1;
	const char *p = name;
	while (*p && !(p[0] == '.' && p[1] == '\0')) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);
		if (l == 0 || l > 63 || o + l + 1 > 12 + 254) {
			buf_puts(b, "{\"error\":\"bad name\"}");
			return -1;
		}
		pkt[o++] = (uint8_t)l;
		memcpy(pkt + o, p, l);
		o += l;
		p += l + (dot ? 1 : 0);
	}
	pkt[o++] = 0;
	wr16(pkt + o, qtype);
	wr16(pkt + o + 2, 1);
	o += 4;
	struct q q;
	memset(&q, 0, sizeof q);
	parse_qname(pkt, o, 12, &q);
	const struct zone *z = find_zone(v->snap, &q);
	struct query_env env = { v, NULL, *rng };
	size_t n = query_process(&env, pkt, o, (const struct sockaddr *)&ad.ss, true, out, sizeof out);
	*rng = env.rng;
	struct geo_loc loc;
	locate(v, &q, (const struct sockaddr *)&ad.ss, &loc, NULL, NULL);
	buf_puts(b, "{\"name\":");
	buf_json_str(b, name);
	buf_puts(b, ",\"address\":");
	buf_json_str(b, address);
	buf_printf(b, ",\"type\":\"%s\",\"zone\":", afam == AF_INET6 ? "AAAA" : "A");
	if (z)
		buf_json_str(b, z->origin);
	else
		buf_puts(b, "null");
	const char *rcode = rcode_name(n >= 12 ? out[3] & 0xF : RCODE_SERVFAIL);
	buf_printf(b, ",\"rcode\":\"%s\",\"answers\":%u", rcode ? rcode : "?", n >= 12 ? rd16(out + 6) : 0);
	buf_printf(b, ",\"location\":{\"source\":\"%s\",\"match_len\":%u,\"scope\":%u",
	           loc.source == GEO_MAP ? "map" : loc.source == GEO_GEOIP ? "geoip" : "default", loc.match_len,
	           loc.scope);
	if (loc.source == GEO_GEOIP)
		buf_printf(b, ",\"lat\":%.4f,\"lon\":%.4f}", loc.lat, loc.lon);
	else {
		buf_puts(b, ",\"region\":");
		buf_json_str(b, v->snap->es->regions[loc.region].name);
		buf_puts(b, "}");
	}
	/* Which edges the answer named: read them back from the reply. */
	int picked[16];
	unsigned np = 0;
	if (n >= 12 && rd16(out + 6) > 0) {
		size_t off = q.qlen + 16;
		for (unsigned i = 0; i < rd16(out + 6) && off + 12 <= n && np < 16; i++) {
			off = skip_name(out, n, off);
			if (!off || off + 10 > n)
				break;
			uint16_t t = rd16(out + off), rdl = rd16(out + off + 8);
			const struct edgeset *es = v->snap->es;
			if (t == DNS_T_A && rdl == 4 && afam == AF_INET)
				for (size_t e = 0; e < es->ne && np < 16; e++)
					if (es->edges[e].has4 && !memcmp(es->edges[e].a4, out + off + 10, 4))
						picked[np++] = (int)e;
			if (t == DNS_T_AAAA && rdl == 16 && afam == AF_INET6)
				for (size_t e = 0; e < es->ne && np < 16; e++)
					if (es->edges[e].has6 && !memcmp(es->edges[e].a6, out + off + 10, 16))
						picked[np++] = (int)e;
			off += 10 + rdl;
		}
	}
	buf_puts(b, ",\"choice\":");
	choice_explain_json(v->snap->es, v->choice, &loc, afam, picked, np, b);
	buf_puts(b, "}");
	return 0;
}
