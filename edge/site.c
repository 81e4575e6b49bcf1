/* site.c -- Host to site, and the site list's checks */
#include "edge/site.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

bool site_host_matches(const char *pattern, const char *name, size_t len)
{
	if (!strcmp(pattern, "*"))
		return true;
	if (pattern[0] == '*' && pattern[1] == '.') {
		/* One label more than the parent, as certificates' wildcards. */
		const char *dot = memchr(name, '.', len);
		if (!dot || dot == name)
			return false;
		size_t rest = len - (size_t)(dot + 1 - name);
		return rest == strlen(pattern + 2) && !strncasecmp(dot + 1, pattern + 2, rest);
	}
	return strlen(pattern) == len && !strncasecmp(pattern, name, len);
}

/* The name part of a normalised host[:port] ("[v6]" keeps its brackets). */
static size_t host_name_len(const char *host)
{
	if (host[0] == '[') {
		const char *e = strchr(host, ']');
		return e ? (size_t)(e + 1 - host) : strlen(host);
	}
	const char *c = strchr(host, ':');
	return c ? (size_t)(c - host) : strlen(host);
}

const struct edge_site *site_find(const struct edge_site *sites, size_t n, const char *host,
                                  const struct edge_site *def)
{
	size_t len = host_name_len(host);
	/* Three passes, so an exact name wins over a wildcard listed first. */
	for (int pass = 0; pass < 3; pass++)
		for (size_t i = 0; i < n; i++)
			for (size_t j = 0; j < sites[i].nhosts; j++) {
				const char *p = sites[i].hosts[j];
				int kind = !strcmp(p, "*") ? 2 : p[0] == '*' ? 1 : 0;
				if (kind == pass && site_host_matches(p, host, len))
					return &sites[i];
			}
	return def;
}

const struct edge_site *site_by_name(const struct edge_site *sites, size_t n, const char *name)
{
	for (size_t i = 0; name && i < n; i++)
		if (!strcmp(sites[i].name, name))
			return &sites[i];
	return NULL;
}

static int check_name(const struct edge_site *s, char *err, size_t errlen)
{
	size_t l = strlen(s->name);
	if (!l || l > 63 || strspn(s->name, "abcdefghijklmnopqrstuvwxyz0123456789-") != l) {
		snprintf(err, errlen, "site name '%s': 1-63 of a-z, 0-9 and '-'", s->name);
		return -1;
	}
	/* The name is the cache keys' scheme: these two are the shorthand's. */
	if (!strcmp(s->name, "http") || !strcmp(s->name, "https")) {
		snprintf(err, errlen, "site name '%s' is reserved", s->name);
		return -1;
	}
	return 0;
}

static int check_host(const struct edge_site *s, const char *h, char *err, size_t errlen)
{
	const char *name = h[0] == '*' && h[1] == '.' ? h + 2 : h;
	size_t l = strlen(name);
	if (!strcmp(h, "*") || (l && l < 254 && strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-.") == l &&
	                        name[0] != '.' && name[l - 1] != '.' && !strchr(name, '*')))
		return 0;
	snprintf(err, errlen, "site %s: host '%s': a lower-case name, '*.parent' or '*'", s->name, h);
	return -1;
}

int site_list_check(struct edge_site *sites, size_t n, bool oneorigin, char *err, size_t errlen)
{
	if (!n) {
		snprintf(err, errlen, "no site: set origin, or sites = ( { ... } )");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct edge_site *s = &sites[i];
		s->idx = (int)i;
		s->label = oneorigin ? "http" : s->name;
		if (!oneorigin && check_name(s, err, errlen) < 0)
			return -1;
		for (size_t k = 0; k < i; k++)
			if (!strcmp(sites[k].name, s->name)) {
				snprintf(err, errlen, "two sites named '%s'", s->name);
				return -1;
			}
		if (!s->origin || (strncmp(s->origin, "http://", 7) && strncmp(s->origin, "https://", 8))) {
			snprintf(err, errlen, "site %s: origin must be an http:// or https:// URL, not '%s'",
			         s->name, s->origin ? s->origin : "");
			return -1;
		}
		size_t ol = strlen(s->origin);
		while (ol > 8 && s->origin[ol - 1] == '/')
			s->origin[--ol] = '\0'; /* request paths start with '/' */
		if (!s->nhosts) {
			snprintf(err, errlen, "site %s: hosts must name at least one host", s->name);
			return -1;
		}
		for (size_t j = 0; j < s->nhosts; j++) {
			if (check_host(s, s->hosts[j], err, errlen) < 0)
				return -1;
			for (size_t k = 0; k <= i; k++)
				for (size_t m = 0; m < (k == i ? j : sites[k].nhosts); m++)
					if (!strcmp(sites[k].hosts[m], s->hosts[j])) {
						snprintf(err, errlen, "host '%s' is in site %s and site %s",
						         s->hosts[j], sites[k].name, s->name);
						return -1;
					}
		}
		if (!s->cert != !s->key) {
			snprintf(err, errlen, "site %s: cert and key go together", s->name);
			return -1;
		}
		if (!s->cert && (s->redirect_http || s->hsts || s->ocsp)) {
			snprintf(err, errlen, "site %s: redirect_http, hsts and ocsp need a cert", s->name);
			return -1;
		}
		for (size_t j = 0; j < s->nquery_rules; j++) {
			const char *m = s->query_rules[j].mode;
			if (strcmp(m, "keep") && strcmp(m, "sort") && strcmp(m, "ignore")) {
				snprintf(err, errlen, "site %s: query_rules[%zu].query must be keep, sort or ignore",
				         s->name, j);
				return -1;
			}
		}
	}
	return 0;
}
