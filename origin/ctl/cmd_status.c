/* cmd_status.c -- `minicdnctl status`: every node's /healthz, in parallel, as a table.
 *
 * A node is "up" when /healthz answers 200 with "status":"ok" (or "degraded",
 * which still serves); anything else -- no answer within the timeout, another
 * status code, unparsable JSON -- is "down".  Exit status 1 if any node is down.
 * For every DNS node that is up, its /stats is read too and its view of the
 * edges (health-checked state, load, answers) printed as a second table.
 * DNS nodes that are up must report the same "digest" (what they answer
 * from: zones, map, edges); a node whose digest differs from the most common
 * one is flagged "DIFFERS" and the exit status is 1 as well. */
#include "common/xmalloc.h"
#include "origin/ctl/ctl.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node_state {
	bool up;
	const char *why;   /* reason when down; borrowed from the req or a literal */
	json_t *health;    /* parsed /healthz (owned) or NULL */
	bool differs;      /* a DNS node whose digest is not the most common one */
	char buf[32];      /* room for "HTTP 503" */
};

static const char *jstr(json_t *o, const char *k, const char *def)
{
	json_t *v = o ? json_object_get(o, k) : NULL;
	return json_is_string(v) ? json_string_value(v) : def;
}

static void fmt_uptime(json_t *o, char *out, size_t n)
{
	json_t *v = o ? json_object_get(o, "uptime_s") : NULL;
	if (!json_is_number(v)) {
		snprintf(out, n, "-");
		return;
	}
	long long s = (long long)json_number_value(v);
	if (s >= 86400)
		snprintf(out, n, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(out, n, "%lldh%02lldm", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(out, n, "%lldm%02llds", s / 60, s % 60);
	else
		snprintf(out, n, "%llds", s);
}

static void fmt_load(json_t *o, char *out, size_t n)
{
	json_t *v = o ? json_object_get(o, "load") : NULL;
	if (json_is_number(v))
		snprintf(out, n, "%.2f", json_number_value(v));
	else
		snprintf(out, n, "-");
}

/* The DNS server's view of edge health, from its /stats ("edges": [...]). */
static void print_dns_view(const char *dns_name, json_t *stats)
{
	json_t *edges = json_object_get(stats, "edges");
	if (!json_is_array(edges) || json_array_size(edges) == 0)
		return;
	printf("\nedges as seen by %s (health checks):\n%-14s %-8s %-11s %-6s %-9s %s\n", dns_name, "EDGE",
	       "REGION", "STATE", "LOAD", "ANSWERS", "LAST ERROR");
	size_t i;
	json_t *e;
	json_array_foreach(edges, i, e) {
		const char *state = jstr(e, "state", NULL);
		json_t *up = json_object_get(e, "up"), *usable = json_object_get(e, "usable");
		if (!state) {
			if (json_is_true(json_object_get(e, "draining")))
				state = "draining";
			else if (!json_is_boolean(up))
				state = "?";
			else if (!json_is_true(up))
				state = "down";
			else
				state = json_is_false(usable) ? "overloaded" : "up";
		}
		if (json_is_false(json_object_get(e, "checked")))
			state = "unchecked";
		char load[32];
		fmt_load(e, load, sizeof load);
		json_t *ans = json_object_get(e, "answers");
		printf("%-14s %-8s %-11s %-6s %-9lld %s\n", jstr(e, "name", "?"), jstr(e, "region", "-"), state, load,
		       json_is_integer(ans) ? (long long)json_integer_value(ans) : 0LL,
		       strcmp(state, "up") ? jstr(e, "error", "") : "");
	}
}

/* Up or down, from a node's answer to GET /healthz. */
static void judge(const struct ctl_req *r, struct node_state *st)
{
	if (r->status == 0) {
		st->why = r->error[0] ? r->error : "no response";
		return;
	}
	st->health = json_loadb(r->resp.data ? r->resp.data : "", r->resp.len, 0, NULL);
	const char *s = jstr(st->health, "status", NULL);
	if (r->status != 200) {
		snprintf(st->buf, sizeof st->buf, "HTTP %ld", r->status);
		st->why = st->buf;
	} else if (!json_is_object(st->health)) {
		st->why = "healthz is not JSON";
	} else if (!s || (strcmp(s, "ok") != 0 && strcmp(s, "degraded") != 0)) {
		st->why = "status not ok";
	} else {
		st->up = true;
	}
}

/* Reads /stats of every DNS node that is up.  Returns n parsed documents
 * (NULL where none); caller frees each and the array. */
static json_t **dns_stats(struct ctl *ctl, const struct node_state *st, size_t n)
{
	struct ctl_req *sreq = xcalloc(n, sizeof *sreq);
	size_t *sidx = xcalloc(n, sizeof *sidx);
	json_t **stats = xcalloc(n, sizeof *stats);
	size_t ns = 0;
	for (size_t i = 0; i < n; i++)
		if (st[i].up && !strcmp(ctl->cfg.nodes[i].role, "dns")) {
			sreq[ns].url = ctl_url(ctl->cfg.nodes[i].url, "/stats");
			sidx[ns++] = i;
		}
	if (ns) {
		ctl_http_run(sreq, ns, ctl->cfg.timeout_ms, NULL);
		for (size_t k = 0; k < ns; k++)
			if (sreq[k].status == 200)
				stats[sidx[k]] = json_loadb(sreq[k].resp.data ? sreq[k].resp.data : "", sreq[k].resp.len, 0, NULL);
	}
	for (size_t k = 0; k < ns; k++)
		ctl_req_clear(&sreq[k]);
	free(sreq);
	free(sidx);
	return stats;
}

/* Marks st[i].differs for up DNS nodes whose digest is not the most common
 * one (ties: the first node's).  Returns how many were marked. */
static int digest_check(const struct ctl *ctl, struct node_state *st, size_t n)
{
	const char *best = NULL;
	size_t best_count = 0;
	for (size_t i = 0; i < n; i++) {
		bool dns = st[i].up && !strcmp(ctl->cfg.nodes[i].role, "dns");
		const char *d = dns ? jstr(st[i].health, "digest", NULL) : NULL;
		if (!d)
			continue;
		size_t c = 0;
		for (size_t k = 0; k < n; k++)
			if (st[k].up && !strcmp(ctl->cfg.nodes[k].role, "dns") &&
			    !strcmp(d, jstr(st[k].health, "digest", "")))
				c++;
		if (c > best_count) {
			best = d;
			best_count = c;
		}
	}
	int marked = 0;
	for (size_t i = 0; best && i < n; i++)
		if (st[i].up && !strcmp(ctl->cfg.nodes[i].role, "dns") &&
		    strcmp(best, jstr(st[i].health, "digest", ""))) {
			st[i].differs = true;
			marked++;
		}
	return marked;
}

static void print_json(const struct ctl *ctl, const struct ctl_req *reqs, const struct node_state *st,
                       json_t **stats, size_t n, int down, int ndiffer)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		const struct ctl_node *nd = &ctl->cfg.nodes[i];
		json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:f, s:I}", "name", nd->name, "role", nd->role,
		                      "url", nd->url, "state", st[i].up ? "up" : "down", "latency_ms",
		                      reqs[i].latency_ms, "http_status", (json_int_t)reqs[i].status);
		if (!st[i].up)
			json_object_set_new(o, "error", json_string(st[i].why));
		if (st[i].differs)
			json_object_set_new(o, "digest_differs", json_true());
		if (st[i].health)
			json_object_set(o, "healthz", st[i].health);
		if (stats[i] && json_is_array(json_object_get(stats[i], "edges")))
			json_object_set(o, "edges", json_object_get(stats[i], "edges"));
		json_array_append_new(arr, o);
	}
	json_t *top = json_pack("{s:o, s:i, s:i, s:i}", "nodes", arr, "up", (int)(n - (size_t)down), "down", down,
	                        "dns_digest_differs", ndiffer);
	char *s = json_dumps(top, JSON_INDENT(2));
	puts(s);
	free(s);
	json_decref(top);
}

static void print_table(const struct ctl *ctl, const struct ctl_req *reqs, const struct node_state *st,
                        json_t **stats, size_t n, int down, int ndiffer)
{
	printf("%-12s %-7s %-26s %-6s %-7s %-8s %-9s %-6s %s\n", "NAME", "ROLE", "URL", "STATE", "REGION",
	       "VERSION", "UPTIME", "LOAD", "LATENCY");
	for (size_t i = 0; i < n; i++) {
		const struct ctl_node *nd = &ctl->cfg.nodes[i];
		json_t *h = st[i].health;
		char up[32], load[32], lat[48];
		fmt_uptime(st[i].up ? h : NULL, up, sizeof up);
		fmt_load(st[i].up ? h : NULL, load, sizeof load);
		if (reqs[i].status)
			snprintf(lat, sizeof lat, "%.1fms", reqs[i].latency_ms);
		else
			snprintf(lat, sizeof lat, "-");
		printf("%-12s %-7s %-26s %-6s %-7s %-8s %-9s %-6s %s", nd->name, nd->role, nd->url,
		       st[i].up ? "up" : "down", st[i].up ? jstr(h, "region", "-") : "-",
		       st[i].up ? jstr(h, "version", "-") : "-", up, load, lat);
		if (!st[i].up)
			printf("  (%s)", st[i].why);
		if (st[i].differs)
			printf("  DIFFERS: digest %s", jstr(h, "digest", "?"));
		printf("\n");
	}
	for (size_t i = 0; i < n; i++)
		if (stats[i])
			print_dns_view(ctl->cfg.nodes[i].name, stats[i]);
	printf("\n%zu up, %d down\n", n - (size_t)down, down);
	if (ndiffer)
		printf("%d DNS server(s) answer from different data than the others (digest differs)\n", ndiffer);
}

CTL_COMMAND(status)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			ctl->json = true;
		} else {
			fprintf(stderr, "usage: minicdnctl status [--json]\n");
			return 2;
		}
	}
	size_t n = ctl->cfg.n_nodes;
	if (n == 0) {
		fprintf(stderr, "minicdnctl: %s lists no nodes\n", ctl->config_path);
		return 1;
	}
	struct ctl_req *reqs = xcalloc(n, sizeof *reqs);
	struct node_state *st = xcalloc(n, sizeof *st);
	for (size_t i = 0; i < n; i++) {
		reqs[i].method = "GET";
		reqs[i].url = ctl_url(ctl->cfg.nodes[i].url, "/healthz");
	}
	if (ctl_http_run(reqs, n, ctl->cfg.timeout_ms, NULL) < 0) {
		fprintf(stderr, "minicdnctl: libcurl failed\n");
		for (size_t i = 0; i < n; i++)
			ctl_req_clear(&reqs[i]);
		free(reqs);
		free(st);
		return 1;
	}
	int down = 0;
	for (size_t i = 0; i < n; i++) {
		judge(&reqs[i], &st[i]);
		down += !st[i].up;
	}
	json_t **stats = dns_stats(ctl, st, n); /* DNS nodes that are up: their view of the edges */
	int ndiffer = digest_check(ctl, st, n);
	if (ctl->json)
		print_json(ctl, reqs, st, stats, n, down, ndiffer);
	else
		print_table(ctl, reqs, st, stats, n, down, ndiffer);
	for (size_t i = 0; i < n; i++) {
		json_decref(st[i].health);
		json_decref(stats[i]);
		ctl_req_clear(&reqs[i]);
	}
	free(stats);
	free(reqs);
	free(st);
	return down || ndiffer ? 1 : 0;
}
