/* cmd_purge.c -- `minicdnctl purge [--site S] URL | --prefix P | --tag T`:
 * asks every edge in the configuration to purge, in parallel, and prints one
 * line per edge (purged count, or why it failed).  --site limits the purge to
 * one site (alone: the whole site).  Exit 0 only if every edge purged; 1 if
 * any edge failed or was unreachable; 2 on bad usage.
 *
 * Wire: POST <edge>/.minicdn/purge, Authorization: Bearer <control_secret>,
 * body {"url":U} | {"prefix":P} | {"tag":T}, with "site":S when given,
 * -> {"purged":N}. */
#include "common/xmalloc.h"
#include "origin/ctl/ctl.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int purge_usage(void)
{
	fprintf(stderr, "usage: minicdnctl purge [--json] [--site SITE] URL | --prefix PREFIX | --tag TAG\n"
	                "       minicdnctl purge [--json] --site SITE   (everything of that site)\n"
	                "  URL     http://host/path?query (normalised like a request, all variants)\n"
	                "  PREFIX  http://host/path... or /path... (every host of the site)\n"
	                "  TAG     a Surrogate-Key / Cache-Tag value set by the origin\n"
	                "  SITE    a site's name in the edges' config; required for a path prefix\n"
	                "          or a tag when the edges serve several sites\n");
	return 2;
}

/* The count an edge's answer says it purged, or -1 with why in detail. */
static long purge_answer(const struct fanout_req *r, char *detail, size_t len)
{
	long purged = -1;
	json_t *j = json_loadb(r->resp.data ? r->resp.data : "", r->resp.len, 0, NULL);
	if (r->status == 200) {
		json_t *v = j ? json_object_get(j, "purged") : NULL;
		if (json_is_integer(v))
			purged = (long)json_integer_value(v);
		else
			snprintf(detail, len, "unexpected answer");
	} else if (r->status == 0) {
		snprintf(detail, len, "unreachable: %s", r->error);
	} else {
		const char *e = j ? json_string_value(json_object_get(j, "error")) : NULL;
		snprintf(detail, len, "HTTP %ld%s%s", r->status, e ? ": " : "", e ? e : "");
	}
	json_decref(j);
	return purged;
}

CTL_COMMAND(purge)
{
	const char *kind = NULL, *value = NULL, *site = NULL;
	bool json = ctl->json;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--site")) {
			if (site || i + 1 >= argc || !*argv[i + 1])
				return purge_usage();
			site = argv[++i];
		} else if (!strcmp(argv[i], "--prefix") || !strcmp(argv[i], "--tag")) {
			if (kind || i + 1 >= argc)
				return purge_usage();
			kind = argv[i][2] == 'p' ? "prefix" : "tag";
			value = argv[++i];
		} else if (argv[i][0] == '-' || kind) {
			return purge_usage();
		} else {
			kind = "url";
			value = argv[i];
		}
	}
	if (!kind && site) {
		kind = "prefix";
		value = "/";
	}
	if (!kind || !*value)
		return purge_usage();
	if (!strcmp(kind, "url") && strncmp(value, "http://", 7) && strncmp(value, "https://", 8)) {
		fprintf(stderr, "minicdnctl purge: URL must be absolute (http://host/path)\n");
		return 2;
	}

	size_t n;
	size_t *idx = ctl_nodes_with_role(ctl, "edge", &n);
	if (n == 0) {
		free(idx);
		fprintf(stderr, "minicdnctl purge: no edge nodes in %s\n", ctl->config_path);
		return 1;
	}
	json_t *b = json_object();
	json_object_set_new(b, kind, json_string(value));
	if (site)
		json_object_set_new(b, "site", json_string(site));
	char *body = json_dumps(b, JSON_COMPACT);
	json_decref(b);

	struct fanout_req *reqs = xcalloc(n, sizeof *reqs);
	for (size_t i = 0; i < n; i++) {
		reqs[i].method = "POST";
		reqs[i].url = ctl_url(ctl->cfg.nodes[idx[i]].url, "/.minicdn/purge");
		reqs[i].body = body;
		reqs[i].body_len = strlen(body);
		reqs[i].auth = true;
	}
	ctl_http_run(reqs, n, ctl->cfg.timeout_ms, ctl->cfg.control_secret);

	int rc = 0;
	long total = 0;
	json_t *out = json ? json_array() : NULL;
	if (!json)
		printf("%-14s %-8s %8s  %s\n", "EDGE", "RESULT", "PURGED", "DETAIL");
	for (size_t i = 0; i < n; i++) {
		const struct ctl_node *node = &ctl->cfg.nodes[idx[i]];
		struct fanout_req *r = &reqs[i];
		char detail[300] = "";
		long purged = purge_answer(r, detail, sizeof detail);
		bool ok = purged >= 0;
		if (!ok)
			rc = 1;
		else
			total += purged;
		if (json) {
			json_t *o = json_object();
			json_object_set_new(o, "edge", json_string(node->name));
			json_object_set_new(o, "ok", json_boolean(ok));
			if (ok)
				json_object_set_new(o, "purged", json_integer(purged));
			else
				json_object_set_new(o, "error", json_string(detail));
			json_array_append_new(out, o);
		} else {
			char pc[24] = "-";
			if (ok)
				snprintf(pc, sizeof pc, "%ld", purged);
			printf("%-14s %-8s %8s  %s\n", node->name, ok ? "ok" : "FAILED", pc, detail);
		}
	}
	if (json) {
		char *s = json_dumps(out, JSON_COMPACT);
		printf("%s\n", s);
		free(s);
		json_decref(out);
	} else {
		printf("%s %s=%s%s%s: %ld entries purged on %zu edge(s)%s\n", rc ? "INCOMPLETE:" : "done:",
		       kind, value, site ? " site=" : "", site ? site : "", total, n,
		       rc ? ", some edges failed" : "");
	}
	for (size_t i = 0; i < n; i++)
		ctl_req_clear(&reqs[i]);
	free(reqs);
	free(body);
	free(idx);
	return rc;
}
