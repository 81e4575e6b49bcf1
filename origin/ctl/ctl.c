/* ctl.c -- minicdnctl's configuration schema and parallel HTTP fan-out */
#include "origin/ctl/ctl.h"
#include "common/secret.h"
#include "common/xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- configuration ---------- */

static const struct cfg_key node_keys[] = {
	{ "name", CFG_STRING, offsetof(struct ctl_node, name), NULL, 0, 0, CFG_REQUIRED, NULL, 0, 0, NULL,
	  "node name shown in tables" },
	{ "role", CFG_STRING, offsetof(struct ctl_node, role), NULL, 0, 0, CFG_REQUIRED, NULL, 0, 0, NULL,
	  "dns, edge or origin" },
	{ "url", CFG_STRING, offsetof(struct ctl_node, url), NULL, 0, 0, CFG_REQUIRED, NULL, 0, 0, NULL,
	  "base URL of its HTTP listener (DNS: the stats listener)" },
	CFG_END
};

const struct cfg_key ctl_config_schema[] = {
	{ "control_secret", CFG_STRING, offsetof(struct ctl_config, control_secret), NULL, 0, 0, 0, NULL, 0,
	  0, NULL, "shared secret for /.minicdn/ control APIs (Authorization: Bearer); "
	  "better: control_secret_file" },
	{ "control_secret_file", CFG_STRING, offsetof(struct ctl_config, control_secret_file), NULL, 0, 0,
	  CFG_PATH, NULL, 0, 0, NULL,
	  "file holding the control secret instead (one trailing newline dropped; mode 600 or 400: "
	  "refused if group or others may read it)" },
	{ "origin", CFG_STRING, offsetof(struct ctl_config, origin), NULL, 0, 0, 0, NULL, 0, 0, NULL,
	  "the origin's control URL (push, scripts, rollback, unpush)" },
	{ "timeout", CFG_MS, offsetof(struct ctl_config, timeout_ms), "3s", 50, 600000, 0, NULL, 0, 0, NULL,
	  "per-request timeout of status and fan-out requests" },
	{ "keys_dir", CFG_STRING, offsetof(struct ctl_config, keys_dir), "run/keys", 0, 0, CFG_PATH, NULL, 0, 0,
	  NULL, "where `keygen` writes origin.key / origin.pub by default" },
	{ "nodes", CFG_LIST, offsetof(struct ctl_config, nodes), NULL, 0, 0, 0, node_keys,
	  sizeof(struct ctl_node), offsetof(struct ctl_config, n_nodes), NULL, "the fleet" },
	CFG_END
};

int ctl_config_check(struct ctl_config *c, char *err, size_t errlen)
{
	if (c->control_secret_file) {
		char why[256];
		if (c->control_secret) {
			snprintf(err, errlen, "control_secret and control_secret_file are both set: keep one");
			return -1;
		}
		if (!(c->control_secret = secret_read_file(c->control_secret_file, why, sizeof why))) {
			snprintf(err, errlen, "control_secret_file: %s", why);
			return -1;
		}
	}
	for (size_t i = 0; i < c->n_nodes; i++) {
		const struct ctl_node *n = &c->nodes[i];
		if (strcmp(n->role, "dns") && strcmp(n->role, "edge") && strcmp(n->role, "origin")) {
			snprintf(err, errlen, "nodes[%zu] (%s): role '%s' must be dns, edge or origin", i, n->name,
			         n->role);
			return -1;
		}
		if (strncmp(n->url, "http://", 7) && strncmp(n->url, "https://", 8)) {
			snprintf(err, errlen, "nodes[%zu] (%s): url '%s' must start with http:// or https://", i,
			         n->name, n->url);
			return -1;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(c->nodes[j].name, n->name)) {
				snprintf(err, errlen, "nodes[%zu]: duplicate node name '%s'", i, n->name);
				return -1;
			}
	}
	return 0;
}

size_t *ctl_nodes_with_role(const struct ctl *ctl, const char *role, size_t *n)
{
	size_t *idx = xcalloc(ctl->cfg.n_nodes + 1, sizeof *idx);
	*n = 0;
	for (size_t i = 0; i < ctl->cfg.n_nodes; i++)
		if (!role || !strcmp(ctl->cfg.nodes[i].role, role))
			idx[(*n)++] = i;
	return idx;
}

int ctl_http_run(struct fanout_req *reqs, size_t n, int timeout_ms, const char *secret)
{
	return fanout_run(reqs, n, timeout_ms, secret);
}
