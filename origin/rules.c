/* rules.c -- request path to caching headers (first matching pattern wins) */
#include "origin/rules.h"
#include "common/glob.h"
#include "common/xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rules {
	struct rule *v;
	size_t n;
	struct rule def;
	char *def_cc;
};

static bool header_safe(const char *v)
{
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return false;
	return true;
}

struct rules *rules_new(const struct rule_cfg *cfg, size_t n, const char *default_cc, char *err,
                        size_t errlen)
{
	if (!default_cc || !header_safe(default_cc)) {
		snprintf(err, errlen, "default Cache-Control value is missing or has control characters");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!cfg[i].match || !cfg[i].match[0]) {
			snprintf(err, errlen, "rules[%zu]: empty match pattern", i);
			return NULL;
		}
		if ((cfg[i].cache_control && !header_safe(cfg[i].cache_control)) ||
		    (cfg[i].surrogate_key && !header_safe(cfg[i].surrogate_key))) {
			snprintf(err, errlen, "rules[%zu] (%s): header value has control characters", i,
			         cfg[i].match);
			return NULL;
		}
	}
	struct rules *r = xcalloc(1, sizeof *r);
	r->def_cc = xstrdup(default_cc);
	r->def.match = "";
	r->def.cache_control = r->def_cc;
	r->v = xcalloc(n ? n : 1, sizeof *r->v);
	r->n = n;
	for (size_t i = 0; i < n; i++) {
		struct rule *d = &r->v[i];
		d->match = xstrdup(cfg[i].match);
		d->cache_control = xstrdup(cfg[i].cache_control ? cfg[i].cache_control : default_cc);
		d->surrogate_key = cfg[i].surrogate_key && cfg[i].surrogate_key[0] ? xstrdup(cfg[i].surrogate_key)
		                                                                   : NULL;
		d->full_path = strchr(d->match, '/') != NULL;
	}
	return r;
}

void rules_free(struct rules *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++) {
		free((char *)r->v[i].match);
		free((char *)r->v[i].cache_control);
		free((char *)r->v[i].surrogate_key);
	}
	free(r->v);
	free(r->def_cc);
	free(r);
}

const struct rule *rules_match(const struct rules *r, const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	for (size_t i = 0; i < r->n; i++)
		if (glob_match_str(r->v[i].match, r->v[i].full_path ? path : base))
			return &r->v[i];
	return &r->def;
}
