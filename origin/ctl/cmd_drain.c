/* cmd_drain.c -- `minicdnctl drain EDGE...` / `undrain EDGE...`: takes edges
 * out of DNS answers (for maintenance, an upgrade or before removing them)
 * and puts them back.  A drained edge keeps serving the requests that still
 * reach it; its /healthz says "draining": true and the DNS servers' health
 * checkers stop answering with it within one check interval, so after
 * TTL + interval no new client is sent there.  The state survives a SIGHUP
 * and a restart of the edge.  Exit 0 only if every named edge confirmed.
 *
 * Wire: POST <edge>/.minicdn/drain or /.minicdn/undrain, Authorization:
 * Bearer <control_secret> -> {"draining":true|false}. */
#include "common/xmalloc.h"
#include "origin/ctl/ctl.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct ctl_node *edge_named(const struct ctl *ctl, const char *name)
{
	for (size_t i = 0; i < ctl->cfg.n_nodes; i++)
		if (!strcmp(ctl->cfg.nodes[i].name, name) && !strcmp(ctl->cfg.nodes[i].role, "edge"))
			return &ctl->cfg.nodes[i];
	return NULL;
}

static int drain_run(struct ctl *ctl, int argc, char **argv, bool on)
{
	const char *cmd = on ? "drain" : "undrain";
	int first = 1;
	if (first < argc && !strcmp(argv[first], "--json")) {
		ctl->json = true;
		first++;
	}
	if (first >= argc) {
		fprintf(stderr, "usage: minicdnctl %s [--json] EDGE...  (edge names from %s)\n", cmd,
		        ctl->config_path);
		return 2;
	}
	size_t n = (size_t)(argc - first);
	const struct ctl_node **nodes = xcalloc(n, sizeof *nodes);
	for (size_t i = 0; i < n; i++) {
		nodes[i] = edge_named(ctl, argv[first + (int)i]);
		if (!nodes[i]) {
			fprintf(stderr, "minicdnctl %s: no edge named '%s' in %s\n", cmd, argv[first + (int)i],
			        ctl->config_path);
			free(nodes);
			return 2;
		}
	}
	struct fanout_req *reqs = xcalloc(n, sizeof *reqs);
	for (size_t i = 0; i < n; i++) {
		reqs[i].method = "POST";
		reqs[i].url = ctl_url(nodes[i]->url, on ? "/.minicdn/drain" : "/.minicdn/undrain");
		reqs[i].auth = true;
	}
	ctl_http_run(reqs, n, ctl->cfg.timeout_ms, ctl->cfg.control_secret);
	int rc = 0;
	json_t *out = ctl->json ? json_array() : NULL;
	for (size_t i = 0; i < n; i++) {
		struct fanout_req *r = &reqs[i];
		json_t *j = r->status ? json_loadb(r->resp.data ? r->resp.data : "", r->resp.len, 0, NULL) : NULL;
		json_t *d = j ? json_object_get(j, "draining") : NULL;
		bool ok = r->status == 200 && json_is_boolean(d) && json_is_true(d) == on;
		char detail[300] = "";
		if (r->status == 0) {
			snprintf(detail, sizeof detail, "unreachable: %s", r->error);
		} else if (!ok) {
			const char *e = j ? json_string_value(json_object_get(j, "error")) : NULL;
			snprintf(detail, sizeof detail, "HTTP %ld%s%s", r->status, e ? ": " : "", e ? e : "");
		}
		if (!ok)
			rc = 1;
		if (out) {
			json_t *o = json_pack("{s:s, s:b}", "edge", nodes[i]->name, "ok", ok);
			if (!ok)
				json_object_set_new(o, "error", json_string(detail));
			json_array_append_new(out, o);
		} else if (ok) {
			printf("%s: %s\n", nodes[i]->name, on ? "draining" : "undrained");
		} else {
			printf("%s: FAILED %s\n", nodes[i]->name, detail);
		}
		json_decref(j);
	}
	if (out) {
		char *s = json_dumps(out, JSON_COMPACT);
		printf("%s\n", s);
		free(s);
		json_decref(out);
	}
	for (size_t i = 0; i < n; i++)
		ctl_req_clear(&reqs[i]);
	free(reqs);
	free(nodes);
	return rc;
}

CTL_COMMAND(drain)
{
	return drain_run(ctl, argc, argv, true);
}

CTL_COMMAND(undrain)
{
	return drain_run(ctl, argc, argv, false);
}
