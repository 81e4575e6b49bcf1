/* trie.h -- longest-prefix match over IPv4 and IPv6 prefixes (path-compressed
 * binary radix trie, nodes in one flat array).
 *
 * Build once (trie_insert for every prefix, then trie_finish), then look up
 * from any number of threads without locks: the trie is immutable after
 * trie_finish.  A lookup costs O(prefix length) node visits and allocates
 * nothing.  Memory: at most 2 nodes of 32 bytes per inserted prefix. */
#ifndef MINICDN_TRIE_H
#define MINICDN_TRIE_H

#include <stddef.h>
#include <stdint.h>

#define TRIE_NONE (-1)

struct trie;

struct trie *trie_new(void);
void trie_free(struct trie *t);

/* Adds family/bytes/len -> value (value >= 0).  Returns 0, 1 when the same
 * prefix already had that value, or -1 when it already had another value
 * (the old value is kept; *old receives it). */
int trie_insert(struct trie *t, int family, const uint8_t *bytes, unsigned len, int value, int *old);

/* Drops prefixes whose value equals the one they would inherit from an
 * enclosing prefix (and subtrees that say nothing new), so that lookups can
 * report the widest equivalent scope.  Call once after the last insert. */
void trie_finish(struct trie *t);

struct trie_result {
	int value;         /* value of the longest matching prefix, TRIE_NONE if none */
	unsigned match_len;/* length of that prefix (0 if none) */
	unsigned scope;    /* widest prefix length around the address inside which every
	                      address gets the same lookup result */
};

/* Longest-prefix match of a full address (4 or 16 bytes).  An ECS source
 * prefix is looked up as its network address (bits beyond it zero); the scope
 * then may be longer than the source prefix, as RFC 7871 allows. */
void trie_lookup(const struct trie *t, int family, const uint8_t *bytes, struct trie_result *out);

size_t trie_count(const struct trie *t);       /* prefixes inserted */
size_t trie_memory(const struct trie *t);      /* bytes held */

#endif
