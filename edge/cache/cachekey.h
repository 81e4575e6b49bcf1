/* cachekey.h -- request target to cache key; pure string work, no I/O.
 *
 * A key is "SCOPE://host[:port]/normalised/path?query", SCOPE the site's
 * (edge/site.h: "http" for the one-origin form, else the site's name, so two
 * sites never share an entry and a purge can be limited to one): host lower-cased and
 * the default port dropped; the path percent-decoded where that is safe
 * (unreserved characters), hex upper-cased, dot segments removed (so
 * "/a/../b" and "/b" share an entry and no path escapes "/"); the query kept,
 * sorted by parameter, or dropped per the matching rule.  Variants (Vary) add
 * CACHEKEY_VARY_SEP and the selected request header values. */
#ifndef MINICDN_CACHEKEY_H
#define MINICDN_CACHEKEY_H

#include "common/buf.h"
#include <stddef.h>

#define CACHEKEY_VARY_SEP '\x1f'
#define CACHEKEY_MAX 4096

enum query_mode { QUERY_KEEP = 0, QUERY_SORT, QUERY_IGNORE };

struct query_rule {
	char *path;   /* glob: '*' matches any run of characters; owned by the config */
	char *mode;   /* "keep" | "sort" | "ignore" */
};

/* Mode of the first rule whose glob matches the normalised path, QUERY_KEEP if none. */
enum query_mode cachekey_query_mode(const struct query_rule *rules, size_t n, const char *path);

/* Normalises a path (no query) into out.  Returns 0, or -1 if it is not an
 * origin-form path (does not start with '/', bad %-escape, NUL, control chars). */
int cachekey_normalize_path(const char *path, size_t len, struct buf *out);

/* Normalises a host[:port] (from Host or the absolute-form authority).
 * Returns 0, or -1 if empty or containing characters not allowed in a host. */
int cachekey_normalize_host(const char *host, size_t len, struct buf *out);

/* Checks and normalises a request target: origin-form "/p?q" with host from
 * the Host header, or absolute-form "http://h/p?q" whose authority wins over
 * Host (RFC 9112 3.2.2).  Appends the normalised path and raw query (as sent
 * to the origin) to path_out and the normalised host to host_out.  Returns 0
 * or -1 (target rejected, 400). */
int cachekey_split(const char *target, const char *host_hdr, struct buf *path_out, struct buf *host_out);
/* Appends the key of a split target (host, path and query) in scope to key,
 * the query kept, sorted or dropped per the first matching rule. */
void cachekey_join(const char *scope, const char *host, size_t hlen, const char *path_query,
                   size_t len, const struct query_rule *rules, size_t nrules, struct buf *key);
/* Both in one: split (path_out and host_out optional) then join into key. */
int cachekey_build(const char *scope, const char *target, const char *host_hdr,
                   const struct query_rule *rules, size_t nrules, struct buf *key,
                   struct buf *path_out, struct buf *host_out);

#endif
