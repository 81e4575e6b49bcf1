/* rules.h -- request path to caching headers: an ordered list of path
 * patterns, first match wins.
 *
 * Pattern syntax: '*' matches any run of characters (including '/'), '?' one
 * character.  A pattern that contains '/' is matched against the whole path
 * ("/api*", "/img/logo?.png"); one without '/' against the last path segment only
 * ("*.css", "index.html"), so "*.css" applies in every directory. */
#ifndef MINICDN_RULES_H
#define MINICDN_RULES_H

#include <stdbool.h>
#include <stddef.h>

/* One rule as written in the configuration (strings owned by the config). */
struct rule_cfg {
	char *match;          /* pattern */
	char *cache_control;  /* Cache-Control value; NULL = the default */
	char *surrogate_key;  /* Surrogate-Key value (space-separated tags); NULL = none */
};

struct rule {
	const char *match;
	const char *cache_control; /* never NULL after rules_new (default filled in) */
	const char *surrogate_key; /* may be NULL */
	bool full_path;            /* pattern contains '/' */
};

struct rules;

/* Compiles cfg (copied: the result owns its strings).  default_cc applies
 * when no rule matches and to rules without cache_control.  Returns NULL with
 * the reason in err for an empty pattern or a header value with control
 * characters. */
struct rules *rules_new(const struct rule_cfg *cfg, size_t n, const char *default_cc, char *err,
                        size_t errlen);
void rules_free(struct rules *r);

/* The first rule matching path, or the default rule (match "" ) if none does.
 * Never NULL; borrowed from r, valid until rules_free. */
const struct rule *rules_match(const struct rules *r, const char *path);

#endif
