/* cmd_scripts.c -- `minicdnctl scripts`: every bundle, the version the origin
 * holds as current, and the version active on each edge (from each edge's
 * GET /.minicdn/scripts), asked in parallel.
 *
 * Exit 1 if an edge cannot be asked or does not run the origin's current
 * version of some bundle (behind, or still running an unpushed one). */
#include "common/xmalloc.h"
#include "origin/ctl/ctl.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Version of `name` in an edge listing ({"scripts":[{"name","version"}...]}), 0 if absent. */
static long long edge_version(json_t *listing, const char *name)
{
	json_t *arr = json_object_get(listing, "scripts");
	if (!json_is_array(arr))
		arr = json_object_get(listing, "bundles");
	size_t i;
	json_t *o;
	json_array_foreach(arr, i, o) {
		const char *n = json_string_value(json_object_get(o, "name"));
		if (n && !strcmp(n, name))
			return json_integer_value(json_object_get(o, "version"));
	}
	return 0;
}

/* Adds every name in arr (objects with "name") to names if missing. */
static void collect_names(json_t *names, json_t *arr)
{
	size_t i;
	json_t *o;
	json_array_foreach(arr, i, o) {
		const char *n = json_string_value(json_object_get(o, "name"));
		if (n && !json_object_get(names, n))
			json_object_set_new(names, n, json_true());
	}
}

/* What the command learnt, shared by the row printers below. */
struct listing {
	struct ctl *ctl;
	size_t *edges, ne;             /* indexes into ctl->cfg.nodes */
	json_t **edge;                 /* per edge, its listing; NULL if it did not answer */
	json_t *origin, *obundles;     /* the origin's GET /bundles; NULL if none */
	int bad;                       /* exit status so far */
};

/* The origin's current version of name (0 if unknown) and whether it is removed. */
static long long origin_version(const struct listing *l, const char *name, bool *deleted)
{
	long long cur = 0;
	size_t k;
	json_t *ob;
	*deleted = false;
	json_array_foreach(l->obundles, k, ob) {
		const char *bn = json_string_value(json_object_get(ob, "name"));
		if (bn && !strcmp(bn, name)) {
			cur = json_integer_value(json_object_get(ob, "version"));
			*deleted = json_is_false(json_object_get(ob, "active"));
		}
	}
	return cur;
}

/* One bundle: prints its table row (unless --json) and returns its JSON
 * object; an edge that does not run the origin's version sets l->bad. */
static json_t *bundle_row(struct listing *l, const char *name)
{
	bool deleted;
	long long cur = origin_version(l, name, &deleted);
	char ocol[32];
	if (!l->origin)
		snprintf(ocol, sizeof ocol, "?");
	else if (!cur)
		snprintf(ocol, sizeof ocol, "unknown");
	else if (deleted)
		snprintf(ocol, sizeof ocol, "removed");
	else
		snprintf(ocol, sizeof ocol, "v%lld", cur);
	json_t *row = json_pack("{s:s, s:I, s:b, s:o}", "name", name, "origin_version", (json_int_t)cur,
	                        "removed", deleted, "edges", json_object());
	if (!l->ctl->json)
		printf("%-20s %-10s", name, ocol);
	for (size_t i = 0; i < l->ne; i++) {
		char col[48];
		const char *ename = l->ctl->cfg.nodes[l->edges[i]].name;
		if (!l->edge[i]) {
			snprintf(col, sizeof col, "?");
			json_object_set_new(json_object_get(row, "edges"), ename, json_null());
		} else {
			long long v = edge_version(l->edge[i], name);
			bool ok = l->origin ? (deleted ? v == 0 : v >= cur) : true;
			if (!ok)
				l->bad = 1;
			if (v)
				snprintf(col, sizeof col, "v%lld%s", v, ok ? "" : (deleted ? "!" : "<"));
			else
				snprintf(col, sizeof col, "-%s", ok ? "" : "<");
			json_object_set_new(json_object_get(row, "edges"), ename, json_integer(v));
		}
		if (!l->ctl->json)
			printf(" %-12s", col);
	}
	if (!l->ctl->json)
		printf("\n");
	return row;
}

/* {"edge name": "why it could not be listed"} for every edge that did not
 * answer (also said on stderr unless --json); sets l->bad if any. */
static json_t *edge_errors(struct listing *l, const struct fanout_req *reqs)
{
	json_t *jerr = json_object();
	for (size_t i = 0; i < l->ne; i++) {
		if (l->edge[i])
			continue;
		l->bad = 1;
		const char *why = reqs[i].status ? "bad answer" : reqs[i].error;
		char tmp[300];
		if (reqs[i].status && reqs[i].status != 200)
			snprintf(tmp, sizeof tmp, "HTTP %ld: %.200s", reqs[i].status, reqs[i].resp.data ? reqs[i].resp.data : "");
		else
			snprintf(tmp, sizeof tmp, "%s", why);
		for (char *c = tmp; *c; c++)
			if (*c == '\n')
				*c = ' ';
		const char *ename = l->ctl->cfg.nodes[l->edges[i]].name;
		json_object_set_new(jerr, ename, json_string(tmp));
		if (!l->ctl->json)
			fprintf(stderr, "edge %s: cannot list scripts: %s\n", ename, tmp);
	}
	return jerr;
}

CTL_COMMAND(scripts)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			ctl->json = true;
		} else {
			fprintf(stderr, "usage: minicdnctl scripts [--json]\n");
			return 2;
		}
	}
	struct listing l = { .ctl = ctl };
	l.edges = ctl_nodes_with_role(ctl, "edge", &l.ne);
	size_t ne = l.ne;
	bool have_origin = ctl->cfg.origin && ctl->cfg.origin[0];
	size_t n = ne + 1;
	struct fanout_req *reqs = xcalloc(n, sizeof *reqs);
	for (size_t i = 0; i < ne; i++) {
		reqs[i].url = ctl_url(ctl->cfg.nodes[l.edges[i]].url, "/.minicdn/scripts");
		reqs[i].auth = true;
	}
	reqs[ne].url = ctl_url(have_origin ? ctl->cfg.origin : "http://0.0.0.0:0", "/.minicdn/bundles");
	reqs[ne].auth = true;
	ctl_http_run(reqs, have_origin ? n : ne, ctl->cfg.timeout_ms, ctl->cfg.control_secret);

	l.edge = xcalloc(n, sizeof *l.edge);
	for (size_t i = 0; i < n; i++)
		if (reqs[i].status == 200)
			l.edge[i] = json_loadb(reqs[i].resp.data ? reqs[i].resp.data : "", reqs[i].resp.len, 0, NULL);
	l.origin = l.edge[ne];
	l.obundles = json_object_get(l.origin, "bundles");

	json_t *names = json_object();
	collect_names(names, l.obundles);
	for (size_t i = 0; i < ne; i++) {
		json_t *arr = json_object_get(l.edge[i], "scripts");
		collect_names(names, json_is_array(arr) ? arr : json_object_get(l.edge[i], "bundles"));
	}

	if (!have_origin)
		fprintf(stderr, "minicdnctl: no 'origin' in %s: showing the edges only\n", ctl->config_path);
	else if (!l.origin) {
		fprintf(stderr, "minicdnctl: origin %s: %s\n", reqs[ne].url,
		        reqs[ne].status ? "bad answer" : reqs[ne].error);
		l.bad = 1;
	}

	/* one row per bundle name */
	if (!ctl->json) {
		printf("%-20s %-10s", "BUNDLE", "ORIGIN");
		for (size_t i = 0; i < ne; i++)
			printf(" %-12s", ctl->cfg.nodes[l.edges[i]].name);
		printf("\n");
	}
	json_t *jb = json_array();
	const char *name;
	json_t *unused;
	json_object_foreach(names, name, unused)
		json_array_append_new(jb, bundle_row(&l, name));
	if (json_object_size(names) == 0 && !ctl->json)
		printf("(no bundles)\n");

	json_t *jerr = edge_errors(&l, reqs);
	if (ctl->json) {
		json_t *out = json_pack("{s:o, s:o, s:b}", "bundles", jb, "errors", jerr, "in_sync", !l.bad);
		char *s = json_dumps(out, JSON_INDENT(2));
		puts(s);
		free(s);
		json_decref(out);
	} else {
		json_decref(jb);
		json_decref(jerr);
		printf("\n%s\n", l.bad ? "NOT in sync  (< behind the origin, ! still active after removal, ? unreachable)"
		                       : "all edges run the origin's current versions");
	}
	json_decref(names);
	for (size_t i = 0; i < n; i++) {
		json_decref(l.edge[i]);
		ctl_req_clear(&reqs[i]);
	}
	free(l.edge);
	free(reqs);
	free(l.edges);
	return l.bad;
}
