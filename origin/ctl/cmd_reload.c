/* cmd_reload.c -- `minicdnctl reload`: POST /reload to every DNS node, which
 * reloads its config, zones and map and swaps them in atomically; a node that
 * rejects the new data keeps serving the old and says why (exit 1). */
#include "common/xmalloc.h"
#include "origin/ctl/ctl.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

CTL_COMMAND(reload)
{
	if (argc != 1) {
		fprintf(stderr, "usage: minicdnctl reload\n");
		return 2;
	}
	size_t n;
	size_t *idx = ctl_nodes_with_role(ctl, "dns", &n);
	if (n == 0) {
		fprintf(stderr, "minicdnctl reload: no node with role \"dns\" in %s\n", ctl->config_path);
		free(idx);
		return 1;
	}
	struct ctl_req *reqs = xcalloc(n, sizeof *reqs);
	for (size_t i = 0; i < n; i++) {
		reqs[i].method = "POST";
		reqs[i].url = ctl_url(ctl->cfg.nodes[idx[i]].url, "/reload");
		reqs[i].body = "{}";
		reqs[i].body_len = 2;
		reqs[i].auth = true;
	}
	ctl_http_run(reqs, n, ctl->cfg.timeout_ms > 10000 ? ctl->cfg.timeout_ms : 10000, ctl->cfg.control_secret);
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		const char *node = ctl->cfg.nodes[idx[i]].name;
		json_t *j = reqs[i].resp.data ? json_loads(reqs[i].resp.data, 0, NULL) : NULL;
		if (reqs[i].status == 200) {
			json_t *g = j ? json_object_get(j, "generation") : NULL;
			printf("%s: reloaded (generation %lld)\n", node, (long long)json_integer_value(g));
		} else {
			json_t *e = j ? json_object_get(j, "error") : NULL;
			printf("%s: reload rejected, still serving the previous data: %s\n", node,
			       reqs[i].status == 0 ? reqs[i].error
			       : json_is_string(e) ? json_string_value(e) : "bad answer");
			rc = 1;
		}
		json_decref(j);
		ctl_req_clear(&reqs[i]);
	}
	free(reqs);
	free(idx);
	return rc;
}
