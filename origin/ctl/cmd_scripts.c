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
	size_t ne;
	size_t *edges = ctl_nodes_with_role(ctl, "edge", &ne);
	bool have_origin = ctl->cfg.origin && ctl->cfg.origin[0];
	size_t n = ne + 1;
	struct fanout_req *reqs = xcalloc(n, sizeof *reqs);
	for (size_t i = 0; i < ne; i++) {
		reqs[i].url = ctl_url(ctl->cfg.nodes[edges[i]].url, "/.minicdn/scripts");
		reqs[i].auth = true;
	}
	reqs[ne].url = ctl_url(have_origin ? ctl->cfg.origin : "http://0.0.0.0:0", "/.minicdn/bundles");
	reqs[ne].auth = true;
	ctl_http_run(reqs, have_origin ? n : ne, ctl->cfg.timeout_ms, ctl->cfg.control_secret);

	json_t **listing = xcalloc(n, sizeof *listing);
	for (size_t i = 0; i < n; i++)
		if (reqs[i].status == 200)
			listing[i] = json_loadb(reqs[i].resp.data ? reqs[i].resp.data : "", reqs[i].resp.len, 0, NULL);
	json_t *origin = listing[ne];
	json_t *obundles = json_object_get(origin, "bundles");

	json_t *names = json_object();
	collect_names(names, obundles);
	for (size_t i = 0; i < ne; i++) {
		json_t *arr = json_object_get(listing[i], "scripts");
		collect_names(names, json_is_array(arr) ? arr : json_object_get(listing[i], "bundles"));
	}

	int bad = 0;
	if (!have_origin)
		fprintf(stderr, "minicdnctl: no 'origin' in %s: showing the edges only\n", ctl->config_path);
	else if (!origin) {
		fprintf(stderr, "minicdnctl: origin %s: %s\n", reqs[ne].url,
		        reqs[ne].status ? "bad answer" : reqs[ne].error);
		bad = 1;
	}

	json_t *out = json_object();
	json_t *jb = json_array();
	/* one row per bundle name */
	if (!ctl->json) {
		printf("%-20s %-10s", "BUNDLE", "ORIGIN");
		for (size_t i = 0; i < ne; i++)
			printf(" %-12s", ctl->cfg.nodes[edges[i]].name);
		printf("\n");
	}
	const char *name;
	json_t *unused;
	json_object_foreach(names, name, unused) {
		long long cur = 0;
		bool deleted = false;
		size_t k;
		json_t *ob;
		json_array_foreach(obundles, k, ob) {
			const char *bn = json_string_value(json_object_get(ob, "name"));
			if (bn && !strcmp(bn, name)) {
				cur = json_integer_value(json_object_get(ob, "version"));
				deleted = json_is_false(json_object_get(ob, "active"));
			}
		}
		char ocol[32];
		if (!origin)
			snprintf(ocol, sizeof ocol, "?");
		else if (!cur)
			snprintf(ocol, sizeof ocol, "unknown");
		else if (deleted)
			snprintf(ocol, sizeof ocol, "removed");
		else
			snprintf(ocol, sizeof ocol, "v%lld", cur);
		json_t *row = json_pack("{s:s, s:I, s:b, s:o}", "name", name, "origin_version", (json_int_t)cur,
		                        "removed", deleted, "edges", json_object());
		if (!ctl->json)
			printf("%-20s %-10s", name, ocol);
		for (size_t i = 0; i < ne; i++) {
			char col[48];
			const char *ename = ctl->cfg.nodes[edges[i]].name;
			if (!listing[i]) {
				snprintf(col, sizeof col, "?");
				json_object_set_new(json_object_get(row, "edges"), ename, json_null());
			} else {
				long long v = edge_version(listing[i], name);
				bool ok = origin ? (deleted ? v == 0 : v >= cur) : true;
				if (!ok)
					bad = 1;
				if (v)
					snprintf(col, sizeof col, "v%lld%s", v, ok ? "" : (deleted ? "!" : "<"));
				else
					snprintf(col, sizeof col, "-%s", ok ? "" : "<");
				json_object_set_new(json_object_get(row, "edges"), ename, json_integer(v));
			}
			if (!ctl->json)
				printf(" %-12s", col);
		}
		if (!ctl->json)
			printf("\n");
		json_array_append_new(jb, row);
	}
	if (json_object_size(names) == 0 && !ctl->json)
		printf("(no bundles)\n");

	json_t *jerr = json_object();
	for (size_t i = 0; i < ne; i++) {
		if (listing[i])
			continue;
		bad = 1;
		const char *why = reqs[i].status ? "bad answer" : reqs[i].error;
		char tmp[300];
		if (reqs[i].status && reqs[i].status != 200)
			snprintf(tmp, sizeof tmp, "HTTP %ld: %.200s", reqs[i].status, reqs[i].resp.data ? reqs[i].resp.data : "");
		else
			snprintf(tmp, sizeof tmp, "%s", why);
		for (char *c = tmp; *c; c++)
			if (*c == '\n')
				*c = ' ';
		json_object_set_new(jerr, ctl->cfg.nodes[edges[i]].name, json_string(tmp));
		if (!ctl->json)
			fprintf(stderr, "edge %s: cannot list scripts: %s\n", ctl->cfg.nodes[edges[i]].name, tmp);
	}
	if (ctl->json) {
		json_object_set_new(out, "bundles", jb);
		json_object_set_new(out, "errors", jerr);
		json_object_set_new(out, "in_sync", json_boolean(!bad));
		char *s = json_dumps(out, JSON_INDENT(2));
		puts(s);
		free(s);
	} else {
		json_decref(jb);
		json_decref(jerr);
		printf("\n%s\n", bad ? "NOT in sync  (< behind the origin, ! still active after removal, ? unreachable)"
		                     : "all edges run the origin's current versions");
	}
	json_decref(out);
	json_decref(names);
	for (size_t i = 0; i < n; i++) {
		json_decref(listing[i]);
		ctl_req_clear(&reqs[i]);
	}
	free(listing);
	free(reqs);
	free(edges);
	return bad;
}
