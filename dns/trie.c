/* trie.c -- path-compressed binary radix trie for longest-prefix match
 *
 * Keys are 128-bit (IPv4 sits in the top 32 bits of its own root).  Node 0 is
 * the IPv4 root, node 1 the IPv6 root; child index 0 means "no child" (a root
 * is never a child).  Every node carries its full key prefix so a lookup can
 * compare a compressed path with one XOR and a count of leading zeros. */
#include "dns/trie.h"
#include "common/xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct tnode {
	uint64_t k0, k1;     /* prefix bits, zero beyond len */
	uint32_t child[2];
	int32_t value;       /* TRIE_NONE for a pure branching node */
	uint8_t len;
};

/* IPv4 lookups start from a table indexed by the address's first 16 bits
 * (built by trie_finish): either the finished result, when those bits decide
 * it, or the node to go on from.  This skips the top of the trie, where a
 * large map is densest and lookups would spend most of their cache misses. */
#define V4_TOP_BITS 16
#define TOP_FINAL 0xFF

struct top {
	uint32_t node;     /* node to continue from */
	int32_t best;      /* best value so far / final value */
	uint8_t best_len;
	uint8_t scope;     /* TOP_FINAL unless the result is final */
};

struct trie {
	struct tnode *n;
	uint32_t used, cap;
	size_t count;
	struct top *top;   /* 1 << V4_TOP_BITS entries after trie_finish, else NULL */
};

struct trie *trie_new(void)
{
	struct trie *t = xcalloc(1, sizeof *t);
	t->cap = 1024;
	t->n = xmalloc(t->cap * sizeof *t->n);
	memset(t->n, 0, 2 * sizeof *t->n);
	t->n[0].value = t->n[1].value = TRIE_NONE;
	t->used = 2;
	return t;
}

void trie_free(struct trie *t)
{
	if (!t)
		return;
	free(t->n);
	free(t->top);
	free(t);
}

static uint32_t node_alloc(struct trie *t)
{
	if (t->used == t->cap) {
		t->cap *= 2;
		t->n = xrealloc(t->n, t->cap * sizeof *t->n);
	}
	uint32_t i = t->used++;
	memset(&t->n[i], 0, sizeof t->n[i]);
	t->n[i].value = TRIE_NONE;
	return i;
}

static inline uint64_t be64(const uint8_t *b)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | b[i];
	return v;
}

static void make_key(int family, const uint8_t *bytes, uint64_t *k0, uint64_t *k1)
{
	if (family == AF_INET) {
		*k0 = ((uint64_t)bytes[0] << 56) | ((uint64_t)bytes[1] << 48) |
		      ((uint64_t)bytes[2] << 40) | ((uint64_t)bytes[3] << 32);
		*k1 = 0;
	} else {
		*k0 = be64(bytes);
		*k1 = be64(bytes + 8);
	}
}

static inline unsigned key_bit(uint64_t k0, uint64_t k1, unsigned i)
{
	return i < 64 ? (unsigned)(k0 >> (63 - i)) & 1u : (unsigned)(k1 >> (127 - i)) & 1u;
}

static inline void mask_key(uint64_t *k0, uint64_t *k1, unsigned len)
{
	if (len == 0) {
		*k0 = *k1 = 0;
	} else if (len < 64) {
		*k0 &= ~0ull << (64 - len);
		*k1 = 0;
	} else if (len == 64) {
		*k1 = 0;
	} else if (len < 128) {
		*k1 &= ~0ull << (128 - len);
	}
}

/* Number of leading bits a and b share (128 if equal). */
static inline unsigned common_bits(uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1)
{
	uint64_t x = a0 ^ b0;
	if (x)
		return (unsigned)__builtin_clzll(x);
	x = a1 ^ b1;
	return x ? 64 + (unsigned)__builtin_clzll(x) : 128;
}

int trie_insert(struct trie *t, int family, const uint8_t *bytes, unsigned len, int value, int *old)
{
	uint64_t k0, k1;
	make_key(family, bytes, &k0, &k1);
	mask_key(&k0, &k1, len);
	uint32_t cur = family == AF_INET ? 0 : 1;
	for (;;) {
		struct tnode *n = &t->n[cur];
		if (n->len == len) {
			if (n->value == TRIE_NONE) {
				n->value = value;
				t->count++;
				return 0;
			}
			if (old)
				*old = n->value;
			return n->value == value ? 1 : -1;
		}
		unsigned dir = key_bit(k0, k1, n->len);
		uint32_t ci = n->child[dir];
		if (!ci) {
			uint32_t li = node_alloc(t); /* may move t->n */
			struct tnode *l = &t->n[li];
			l->k0 = k0, l->k1 = k1, l->len = (uint8_t)len, l->value = value;
			t->n[cur].child[dir] = li;
			t->count++;
			return 0;
		}
		struct tnode *c = &t->n[ci];
		unsigned common = common_bits(k0, k1, c->k0, c->k1);
		unsigned lim = len < c->len ? len : c->len;
		if (common > lim)
			common = lim;
		if (common == c->len) { /* c is a prefix of the new key: descend */
			cur = ci;
			continue;
		}
		uint32_t ni = node_alloc(t);
		struct tnode *nn = &t->n[ni];
		c = &t->n[ci];
		if (common == len) { /* new key is a prefix of c: insert above it */
			nn->k0 = k0, nn->k1 = k1, nn->len = (uint8_t)len, nn->value = value;
			nn->child[key_bit(c->k0, c->k1, len)] = ci;
		} else { /* they diverge at bit `common`: a branching node and a leaf */
			uint32_t li = node_alloc(t);
			nn = &t->n[ni];
			c = &t->n[ci];
			struct tnode *l = &t->n[li];
			uint64_t b0 = k0, b1 = k1;
			mask_key(&b0, &b1, common);
			nn->k0 = b0, nn->k1 = b1, nn->len = (uint8_t)common;
			l->k0 = k0, l->k1 = k1, l->len = (uint8_t)len, l->value = value;
			nn->child[key_bit(k0, k1, common)] = li;
			nn->child[key_bit(c->k0, c->k1, common)] = ci;
		}
		t->n[cur].child[dir] = ni;
		t->count++;
		return 0;
	}
}

/* Returns 1 if the subtree at i adds nothing to `inherited` (it can go). */
static int prune(struct trie *t, uint32_t i, int inherited)
{
	struct tnode *n = &t->n[i];
	if (n->value == inherited)
		n->value = TRIE_NONE;
	int eff = n->value != TRIE_NONE ? n->value : inherited;
	for (int d = 0; d < 2; d++)
		if (t->n[i].child[d] && prune(t, t->n[i].child[d], eff))
			t->n[i].child[d] = 0;
	n = &t->n[i];
	return n->value == TRIE_NONE && !n->child[0] && !n->child[1];
}

/* The lookup walk for the 16-bit prefix p, as far as those bits decide it. */
static void top_entry(const struct trie *t, uint32_t p, struct top *e)
{
	uint64_t k0 = (uint64_t)p << 48, k1 = 0;
	const struct tnode *nodes = t->n;
	uint32_t ni = 0;
	int best = TRIE_NONE;
	unsigned best_len = 0;
	for (;;) {
		const struct tnode *n = &nodes[ni];
		if (n->value != TRIE_NONE)
			best = n->value, best_len = n->len;
		e->best = best;
		e->best_len = (uint8_t)best_len;
		e->node = ni;
		e->scope = TOP_FINAL;
		if (n->len >= V4_TOP_BITS)
			return; /* go on from n */
		if (!n->child[0] && !n->child[1]) {
			e->scope = n->len;
			return;
		}
		uint32_t ci = n->child[key_bit(k0, k1, n->len)];
		if (!ci) {
			e->scope = (uint8_t)(n->len + 1u);
			return;
		}
		const struct tnode *c = &nodes[ci];
		unsigned common = common_bits(k0, k1, c->k0, c->k1);
		if (c->len > V4_TOP_BITS) {
			if (common < V4_TOP_BITS)
				e->scope = (uint8_t)(common + 1u);
			return; /* undecided: the full walk redoes this step from n */
		}
		if (common < c->len) {
			e->scope = (uint8_t)(common + 1u);
			return;
		}
		ni = ci;
	}
}

static void build_top(struct trie *t)
{
	free(t->top);
	t->top = xmalloc(((size_t)1 << V4_TOP_BITS) * sizeof *t->top);
	for (uint32_t p = 0; p < (1u << V4_TOP_BITS); p++)
		top_entry(t, p, &t->top[p]);
}

void trie_finish(struct trie *t)
{
	for (uint32_t r = 0; r < 2; r++)
		for (int d = 0; d < 2; d++)
			if (t->n[r].child[d] && prune(t, t->n[r].child[d], t->n[r].value))
				t->n[r].child[d] = 0;
	/* Give back the unused tail of the array. */
	if (t->used < t->cap) {
		t->cap = t->used;
		t->n = xrealloc(t->n, t->cap * sizeof *t->n);
	}
	build_top(t);
}

void trie_lookup(const struct trie *t, int family, const uint8_t *bytes, struct trie_result *out)
{
	uint64_t k0, k1;
	make_key(family, bytes, &k0, &k1);
	const unsigned maxbits = family == AF_INET ? 32 : 128;
	const struct tnode *nodes = t->n;
	const struct tnode *n = &nodes[family == AF_INET ? 0 : 1];
	int best = TRIE_NONE;
	unsigned best_len = 0, scope;
	if (family == AF_INET && t->top) {
		const struct top *e = &t->top[(unsigned)bytes[0] << 8 | bytes[1]];
		best = e->best;
		best_len = e->best_len;
		if (e->scope != TOP_FINAL) {
			out->value = best;
			out->match_len = best_len;
			out->scope = e->scope;
			return;
		}
		n = &nodes[e->node];
	}
	for (;;) {
		if (n->value != TRIE_NONE)
			best = n->value, best_len = n->len;
		if (n->len >= maxbits) {
			scope = maxbits;
			break;
		}
		if (!n->child[0] && !n->child[1]) {
			scope = n->len; /* nothing below: the whole block answers alike */
			break;
		}
		uint32_t ci = n->child[key_bit(k0, k1, n->len)];
		if (!ci) {
			scope = n->len + 1u;
			break;
		}
		const struct tnode *c = &nodes[ci];
		unsigned common = common_bits(k0, k1, c->k0, c->k1);
		if (common < c->len) {
			scope = common + 1u; /* the address leaves c's path at bit `common` */
			break;
		}
		n = c;
	}
	out->value = best;
	out->match_len = best_len;
	out->scope = scope > maxbits ? maxbits : scope;
}

size_t trie_count(const struct trie *t)
{
	return t->count;
}

size_t trie_memory(const struct trie *t)
{
	return sizeof *t + (size_t)t->cap * sizeof *t->n + (t->top ? ((size_t)1 << V4_TOP_BITS) * sizeof *t->top : 0);
}
