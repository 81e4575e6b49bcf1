/* config.c -- minicdn-origin's configuration schema and semantic checks */
#include "origin/config.h"
#include "common/log.h"
#include <stdlib.h>
#include "common/secret.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define S(f) offsetof(struct origin_config, f)

static const struct cfg_key rule_keys[] = {
	{ "match", CFG_STRING, offsetof(struct rule_cfg, match), NULL, 0, 0, CFG_REQUIRED, NULL, 0, 0, NULL,
	  "path pattern: '*.css' (last segment) or '/api/*' (whole path); first match wins" },
	{ "cache_control", CFG_STRING, offsetof(struct rule_cfg, cache_control), NULL, 0, 0, 0, NULL, 0, 0,
	  NULL, "Cache-Control value for matching paths [default_cache_control]" },
	{ "surrogate_key", CFG_STRING, offsetof(struct rule_cfg, surrogate_key), NULL, 0, 0, 0, NULL, 0, 0,
	  NULL, "Surrogate-Key tags (space-separated) for purge by tag" },
	CFG_END
};

static const struct cfg_key edge_keys[] = {
	{ "name", CFG_STRING, offsetof(struct origin_edge_cfg, name), NULL, 0, 0, CFG_REQUIRED, NULL, 0, 0,
	  NULL, "edge name (as in its /healthz)" },
	{ "url", CFG_STRING, offsetof(struct origin_edge_cfg, url), NULL, 0, 0, CFG_REQUIRED, NULL, 0, 0, NULL,
	  "edge base URL, e.g. http://127.0.0.11:8080" },
	CFG_END
};

static const struct cfg_key push_keys[] = {
	{ "secret_key", CFG_STRING, offsetof(struct origin_push_cfg, secret_key), NULL, 0, 0, CFG_PATH, NULL, 0, 0,
	  NULL, "Ed25519 secret key file (minicdnctl keygen; mode 600 or 400: refused if group or "
	  "others may read it); \"%credentials%/NAME\" is systemd's LoadCredential=NAME; "
	  "unset = pushing disabled" },
	{ "state_dir", CFG_STRING, offsetof(struct origin_push_cfg, state_dir), "/var/lib/minicdn/origin", 0,
	  0, CFG_PATH, NULL, 0, 0, NULL, "bundle version history (survives restarts)" },
	{ "timeout", CFG_MS, offsetof(struct origin_push_cfg, timeout_ms), "3s", 50, 120000, 0, NULL, 0, 0,
	  NULL, "per-edge push timeout" },
	{ "retry_interval", CFG_MS, offsetof(struct origin_push_cfg, retry_ms), "5s", 100, 3600000, 0, NULL,
	  0, 0, NULL, "how often edges that missed a push are retried" },
	{ "retry_rejected", CFG_MS, offsetof(struct origin_push_cfg, retry_rejected_ms), "60s", 100, 86400000,
	  0, NULL, 0, 0, NULL, "a version an edge refused is re-sent after this long (the edge may have been fixed)" },
	{ "edges", CFG_LIST, offsetof(struct origin_push_cfg, edges), NULL, 0, 0, 0, edge_keys,
	  sizeof(struct origin_edge_cfg), offsetof(struct origin_push_cfg, n_edges), NULL,
	  "edges that receive script bundles" },
	CFG_END
};

const struct cfg_key origin_config_schema[] = {
	{ "name", CFG_STRING, S(name), "origin", 0, 0, 0, NULL, 0, 0, NULL, "node name in /healthz" },
	{ "region", CFG_STRING, S(region), "", 0, 0, 0, NULL, 0, 0, NULL, "region in /healthz" },
	{ "listen", CFG_ADDR, S(listen), NULL, 0, 0, CFG_REQUIRED, NULL, 0, 0, NULL, "ip:port to serve on" },
	{ "root", CFG_STRING, S(root), NULL, 0, 0, CFG_REQUIRED | CFG_PATH, NULL, 0, 0, NULL, "document root directory" },
	{ "index", CFG_STRING, S(index), "index.html", 0, 0, 0, NULL, 0, 0, NULL, "file served for a directory" },
	{ "threads", CFG_INT, S(threads), "4", 1, 256, 0, NULL, 0, 0, NULL, "HTTP worker threads" },
	{ "capacity", CFG_INT, S(capacity), "256", 1, 1000000, 0, NULL, 0, 0, NULL,
	  "in-flight requests that count as load 1.0" },
	{ "default_cache_control", CFG_STRING, S(default_cache_control), "public, max-age=60", 0, 0, 0, NULL,
	  0, 0, NULL, "Cache-Control when no rule matches" },
	{ "error_format", CFG_STRING, S(error_format), "plain", 0, 0, 0, NULL, 0, 0, NULL,
	  "plain or json bodies for 4xx (Accept: application/json always gets JSON)" },
	{ "control_secret", CFG_STRLIST, S(control_secret), NULL, 0, 0, 0, NULL, 0, S(n_control_secret), NULL,
	  "Bearer secret of the /.minicdn/ control API, also sent to the edges; a list accepts "
	  "each and sends the first (rotation); unset (and no control_secret_file) = disabled. "
	  "Better: control_secret_file" },
	{ "control_secret_file", CFG_STRLIST, S(control_secret_file), NULL, 0, 0, CFG_PATH, NULL, 0,
	  S(n_control_secret_file), NULL,
	  "file(s) holding the control secret (one trailing newline dropped; mode 600 or 400: "
	  "refused if group or others may read it); \"%credentials%/NAME\" is systemd's "
	  "LoadCredential=NAME ($CREDENTIALS_DIRECTORY/NAME, else /etc/credstore/NAME); "
	  "a list accepts each secret during a rotation" },
	{ "log_level", CFG_STRING, S(log_level), "info", 0, 0, 0, NULL, 0, 0, NULL, "error, warn, info, debug" },
	{ "rules", CFG_LIST, S(rules), NULL, 0, 0, 0, rule_keys, sizeof(struct rule_cfg), S(n_rules), NULL,
	  "Cache-Control / Surrogate-Key by path pattern" },
	{ "push", CFG_GROUP, S(push), NULL, 0, 0, 0, push_keys, 0, 0, NULL, "script bundle signing and push" },
	CFG_END
};

int origin_config_load(const char *path, struct origin_config *c, char *err, size_t errlen)
{
	char why[256];
	if (cfg_load(path, origin_config_schema, c, err, errlen) < 0)
		return -1;
	struct stat st;
	enum log_level lvl;
	if (stat(c->root, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(why, sizeof why, "root '%s' is not a directory", c->root);
		goto fail;
	}
	if (strcmp(c->error_format, "plain") && strcmp(c->error_format, "json")) {
		snprintf(why, sizeof why, "error_format '%s' must be plain or json", c->error_format);
		goto fail;
	}
	if (log_level_parse(c->log_level, &lvl) < 0) {
		snprintf(why, sizeof why, "log_level '%s' must be error, warn, info or debug", c->log_level);
		goto fail;
	}
	if (!c->index[0] || strchr(c->index, '/')) {
		snprintf(why, sizeof why, "index '%s' must be a plain file name", c->index);
		goto fail;
	}
	if (secret_append_files(&c->control_secret, &c->n_control_secret, c->control_secret_file,
	                        c->n_control_secret_file, why, sizeof why) < 0)
		goto fail;
	for (size_t i = 0; i < c->n_control_secret; i++)
		if (strlen(c->control_secret[i]) < 8) {
			snprintf(why, sizeof why, "control_secret is too short (8 characters at least)");
			goto fail;
		}
	if (c->push.secret_key) {
		char *kp = secret_path(c->push.secret_key), kwhy[200];
		free(c->push.secret_key);
		c->push.secret_key = kp;
		if (secret_check_file(kp, kwhy, sizeof kwhy) < 0) {
			snprintf(why, sizeof why, "push.secret_key %s: %s", kp, kwhy);
			goto fail;
		}
	}
	for (size_t i = 0; i < c->push.n_edges; i++) {
		const struct origin_edge_cfg *e = &c->push.edges[i];
		if (strncmp(e->url, "http://", 7) && strncmp(e->url, "https://", 8)) {
			snprintf(why, sizeof why, "push.edges[%zu]: url '%s' must start with http://", i, e->url);
			goto fail;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(c->push.edges[j].name, e->name)) {
				snprintf(why, sizeof why, "push.edges[%zu]: duplicate edge name '%s'", i, e->name);
				goto fail;
			}
	}
	struct rules *r = rules_new(c->rules, c->n_rules, c->default_cache_control, why, sizeof why);
	if (!r)
		goto fail;
	rules_free(r);
	return 0;
fail:
	snprintf(err, errlen, "%s: %s", path, why);
	origin_config_free(c);
	return -1;
}

void origin_config_free(struct origin_config *c)
{
	cfg_free(origin_config_schema, c);
}
