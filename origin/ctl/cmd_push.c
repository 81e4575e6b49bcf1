/* cmd_push.c -- `minicdnctl push DIR|FILE`, `rollback NAME`, `unpush NAME`:
 * ask the origin to sign and push, then print what every edge said.
 *
 * The bundle is built here from disk (common/bundle.h: a directory with
 * bundle.conf + *.lua, or one .lua file with a manifest comment) and sent
 * unsigned to the origin's control API (Bearer control_secret); the origin
 * assigns the version, signs with its key, stores the version and pushes it to
 * every edge.  Exit 0 only if every edge activated it. */
#include "common/bundle.h"
#include "common/xmalloc.h"
#include "origin/ctl/ctl.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The origin contacts every edge (bounded by its own push timeout) before it
 * answers, so give it more than the per-node timeout. */
static int op_timeout(const struct ctl *ctl)
{
	int t = ctl->cfg.timeout_ms * 4;
	return t < 30000 ? 30000 : t;
}

int ctl_origin_call(struct ctl *ctl, const char *method, const char *path, const char *body,
                    struct fanout_req *r)
{
	if (!ctl->cfg.origin || !ctl->cfg.origin[0]) {
		fprintf(stderr, "minicdnctl: %s has no 'origin' (the origin's control URL)\n", ctl->config_path);
		return -1;
	}
	memset(r, 0, sizeof *r);
	r->method = method;
	r->url = ctl_url(ctl->cfg.origin, path);
	r->body = body;
	r->body_len = body ? strlen(body) : 0;
	r->auth = true;
	if (ctl_http_run(r, 1, op_timeout(ctl), ctl->cfg.control_secret) < 0 || r->status == 0) {
		fprintf(stderr, "minicdnctl: origin %s: %s\n", r->url, r->error[0] ? r->error : "no response");
		return -1;
	}
	return 0;
}

int ctl_push_report(struct ctl *ctl, const char *what, struct fanout_req *r)
{
	json_t *o = json_loadb(r->resp.data ? r->resp.data : "", r->resp.len, 0, NULL);
	if (r->status != 200 || !json_is_object(o)) {
		const char *e = json_string_value(json_object_get(o, "error"));
		if (ctl->json && json_is_object(o))
			printf("%.*s", (int)r->resp.len, r->resp.data);
		fprintf(stderr, "minicdnctl: %s refused by the origin (HTTP %ld): %s\n", what, r->status,
		        e ? e : (r->resp.data ? r->resp.data : ""));
		json_decref(o);
		return 1;
	}
	json_t *edges = json_object_get(o, "edges");
	size_t total = json_array_size(edges);
	long long activated = json_integer_value(json_object_get(o, "activated"));
	bool del = !strcmp(json_string_value(json_object_get(o, "op")) ?: "", "delete");
	if (ctl->json) {
		printf("%.*s", (int)r->resp.len, r->resp.data);
	} else {
		printf("%s: %s version %lld%s (digest %s)", what, json_string_value(json_object_get(o, "name")) ?: "?",
		       json_integer_value(json_object_get(o, "version")), del ? " (removal)" : "",
		       json_string_value(json_object_get(o, "digest")) ?: "?");
		json_t *rb = json_object_get(o, "rollback_of");
		if (json_is_integer(rb))
			printf(", content of version %lld", json_integer_value(rb));
		printf("\n\n%-14s %-28s %-12s %s\n", "EDGE", "URL", "RESULT", "DETAIL");
		size_t i;
		json_t *e;
		json_array_foreach(edges, i, e) {
			const char *res = json_string_value(json_object_get(e, "result")) ?: "?";
			if (del && !strcmp(res, "activated"))
				res = "removed";
			printf("%-14s %-28s %-12s %s\n", json_string_value(json_object_get(e, "name")) ?: "?",
			       json_string_value(json_object_get(e, "url")) ?: "?", res,
			       json_string_value(json_object_get(e, "reason")) ?: "");
		}
		printf("\n%lld of %zu edges %s", activated, total, del ? "removed it" : "activated it");
		long long unreach = json_integer_value(json_object_get(o, "unreachable"));
		if (unreach)
			printf("; %lld unreachable (the origin keeps retrying them)", unreach);
		printf("\n");
	}
	json_decref(o);
	if (total == 0) {
		fprintf(stderr, "minicdnctl: the origin has no edges configured (push.edges)\n");
		return 1;
	}
	return activated == (long long)total ? 0 : 1;
}

CTL_COMMAND(push)
{
	const char *path = NULL;
	long long version = -1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			ctl->json = true;
		} else if (!strcmp(argv[i], "--version") && i + 1 < argc) {
			char *end;
			version = strtoll(argv[++i], &end, 10);
			if (*end || version < 1) {
				fprintf(stderr, "minicdnctl: --version needs a positive integer\n");
				return 2;
			}
		} else if (argv[i][0] == '-' || path) {
			path = NULL;
			break;
		} else {
			path = argv[i];
		}
	}
	if (!path) {
		fprintf(stderr, "usage: minicdnctl push [--json] [--version N] DIR|FILE.lua\n");
		return 2;
	}
	char err[512];
	struct bundle *b = bundle_load_path(path, err, sizeof err);
	if (!b) {
		fprintf(stderr, "minicdnctl: %s: %s\n", path, err);
		return 1;
	}
	/* 0 = let the origin pick the next version; the serialised form needs a
	 * valid number meanwhile (the origin replaces it). */
	long long want = version > 0 ? version : (long long)b->version;
	b->version = want > 0 ? (uint64_t)want : 1;
	size_t len;
	char *bytes = bundle_serialize(b, &len, err, sizeof err);
	bundle_free(b);
	if (!bytes) {
		fprintf(stderr, "minicdnctl: %s: %s\n", path, err);
		return 1;
	}
	json_t *req = json_pack("{s:s%, s:I}", "bundle", bytes, len, "version", (json_int_t)(want > 0 ? want : 0));
	free(bytes);
	char *body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	struct fanout_req r;
	int rc = 1;
	if (ctl_origin_call(ctl, "POST", "/.minicdn/push", body, &r) == 0)
		rc = ctl_push_report(ctl, "push", &r);
	ctl_req_clear(&r);
	free(body);
	return rc;
}

/* rollback and unpush: {"name": NAME} to an origin endpoint. */
static int name_op(struct ctl *ctl, int argc, char **argv, const char *what, const char *path)
{
	const char *name = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			ctl->json = true;
		else if (argv[i][0] == '-' || name) {
			name = NULL;
			break;
		} else
			name = argv[i];
	}
	if (!name) {
		fprintf(stderr, "usage: minicdnctl %s [--json] NAME\n", what);
		return 2;
	}
	json_t *req = json_pack("{s:s}", "name", name);
	char *body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	struct fanout_req r;
	int rc = 1;
	if (ctl_origin_call(ctl, "POST", path, body, &r) == 0)
		rc = ctl_push_report(ctl, what, &r);
	ctl_req_clear(&r);
	free(body);
	return rc;
}

CTL_COMMAND(rollback)
{
	return name_op(ctl, argc, argv, "rollback", "/.minicdn/rollback");
}

CTL_COMMAND(unpush)
{
	return name_op(ctl, argc, argv, "unpush", "/.minicdn/unpush");
}
