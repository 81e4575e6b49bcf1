/* cmd_explain.c -- `minicdnctl explain NAME ADDRESS [A|AAAA]`: asks every DNS
 * node which edge(s) an A (default) or AAAA query for NAME would get for a
 * client at ADDRESS, and why, without sending DNS (GET /explain on the DNS
 * stats listener). */
#include "common/xmalloc.h"
#include "origin/ctl/ctl.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char *escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	char *r = xstrdup(e ? e : "");
	curl_free(e);
	return r;
}

static const char *js(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_string(v) ? json_string_value(v) : "-";
}

static void print_human(const char *node, json_t *j)
{
	json_t *loc = json_object_get(j, "location"), *ch = json_object_get(j, "choice");
	printf("%s: %s %s for %s -> zone %s, %s\n", node, js(j, "name"), js(j, "type"), js(j, "address"),
	       json_is_string(json_object_get(j, "zone")) ? js(j, "zone") : "(none)", js(j, "rcode"));
	if (json_is_object(loc)) {
		json_t *ml = json_object_get(loc, "match_len"), *sc = json_object_get(loc, "scope");
		printf("  location: %s match /%lld, region %s, ECS scope /%lld\n", js(loc, "source"),
		       (long long)json_integer_value(ml), js(loc, "region"), (long long)json_integer_value(sc));
	}
	if (!json_is_object(ch))
		return;
	json_t *cands = json_object_get(ch, "candidates"), *e;
	size_t i;
	printf("  %-14s %-8s %-16s %-11s %-6s %-9s %s\n", "EDGE", "REGION", "ADDRESS", "STATE", "LOAD", "DIST_KM",
	       "PICKED");
	json_array_foreach(cands, i, e) {
		printf("  %-14s %-8s %-16s %-11s %-6.2f %-9.0f %s\n", js(e, "edge"), js(e, "region"), js(e, "address"),
		       js(e, "state"), json_number_value(json_object_get(e, "load")),
		       json_number_value(json_object_get(e, "distance_km")),
		       json_is_true(json_object_get(e, "picked")) ? "yes" : "");
	}
	printf("  why: %s\n", js(ch, "why"));
}

CTL_COMMAND(explain)
{
	int a = 1;
	for (; a < argc && argv[a][0] == '-' && argv[a][1]; a++) {
		if (!strcmp(argv[a], "--json"))
			ctl->json = true;
		else {
			fprintf(stderr, "minicdnctl explain: unknown option '%s'\n", argv[a]);
			return 2;
		}
	}
	const char *type = argc - a == 3 ? argv[a + 2] : "A";
	if ((argc - a != 2 && argc - a != 3) || (strcasecmp(type, "A") && strcasecmp(type, "AAAA"))) {
		fprintf(stderr, "usage: minicdnctl explain [--json] NAME ADDRESS [A|AAAA]\n");
		return 2;
	}
	size_t n;
	size_t *idx = ctl_nodes_with_role(ctl, "dns", &n);
	if (n == 0) {
		fprintf(stderr, "minicdnctl explain: no node with role \"dns\" in %s\n", ctl->config_path);
		free(idx);
		return 1;
	}
	struct ctl_req *reqs = xcalloc(n, sizeof *reqs);
	char *en = escape(argv[a]), *ea = escape(argv[a + 1]);
	char *path = xasprintf("/explain?name=%s&addr=%s&type=%s", en, ea, strcasecmp(type, "AAAA") ? "A" : "AAAA");
	for (size_t i = 0; i < n; i++)
		reqs[i].url = ctl_url(ctl->cfg.nodes[idx[i]].url, path);
	ctl_http_run(reqs, n, ctl->cfg.timeout_ms, ctl->cfg.control_secret);
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		const char *node = ctl->cfg.nodes[idx[i]].name;
		if (reqs[i].status == 0) {
			fprintf(stderr, "%s: %s\n", node, reqs[i].error);
			rc = 1;
			continue;
		}
		json_t *j = json_loads(reqs[i].resp.data ? reqs[i].resp.data : "", 0, NULL);
		if (reqs[i].status != 200 || !j) {
			json_t *e = j ? json_object_get(j, "error") : NULL;
			fprintf(stderr, "%s: HTTP %ld: %s\n", node, reqs[i].status,
			        json_is_string(e) ? json_string_value(e) : "bad answer");
			rc = 1;
		} else if (ctl->json) {
			printf("%s\n", reqs[i].resp.data);
		} else {
			print_human(node, j);
		}
		json_decref(j);
	}
	for (size_t i = 0; i < n; i++)
		ctl_req_clear(&reqs[i]);
	free(reqs);
	free(path);
	free(en);
	free(ea);
	free(idx);
	return rc;
}
