/* ctl.c -- minicdnctl's configuration schema and parallel HTTP fan-out */
#include "origin/ctl/ctl.h"
#include "common/xmalloc.h"

#include <curl/curl.h>
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
	  0, NULL, "shared secret for /.minicdn/ control APIs (Authorization: Bearer)" },
	{ "origin", CFG_STRING, offsetof(struct ctl_config, origin), NULL, 0, 0, 0, NULL, 0, 0, NULL,
	  "the origin's control URL (push, scripts, rollback, unpush)" },
	{ "timeout", CFG_MS, offsetof(struct ctl_config, timeout_ms), "3s", 50, 600000, 0, NULL, 0, 0, NULL,
	  "per-request timeout of status and fan-out requests" },
	{ "keys_dir", CFG_STRING, offsetof(struct ctl_config, keys_dir), "run/keys", 0, 0, 0, NULL, 0, 0,
	  NULL, "where `keygen` writes origin.key / origin.pub by default" },
	{ "nodes", CFG_LIST, offsetof(struct ctl_config, nodes), NULL, 0, 0, 0, node_keys,
	  sizeof(struct ctl_node), offsetof(struct ctl_config, n_nodes), NULL, "the fleet" },
	CFG_END
};

int ctl_config_check(const struct ctl_config *c, char *err, size_t errlen)
{
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

char *ctl_url(const char *base, const char *path)
{
	size_t n = strlen(base);
	while (n && base[n - 1] == '/')
		n--;
	return xasprintf("%.*s%s%s", (int)n, base, path[0] == '/' ? "" : "/", path);
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

/* ---------- HTTP fan-out ---------- */

/* Cap on a response body we keep: control APIs answer small JSON. */
#define CTL_MAX_RESP (8u << 20)

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
	struct ctl_req *r = ud;
	size_t n = size * nmemb;
	if (r->resp.len + n > CTL_MAX_RESP)
		return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
	buf_append(&r->resp, p, n);
	return n;
}

int ctl_http_run(struct ctl_req *reqs, size_t n, int timeout_ms, const char *secret)
{
	CURLM *m = curl_multi_init();
	if (!m)
		return -1;
	CURL **easy = xcalloc(n + 1, sizeof *easy);
	struct curl_slist **hdrs = xcalloc(n + 1, sizeof *hdrs);
	char *auth = secret ? xasprintf("Authorization: Bearer %s", secret) : NULL;

	for (size_t i = 0; i < n; i++) {
		struct ctl_req *r = &reqs[i];
		r->status = 0;
		r->error[0] = '\0';
		r->latency_ms = 0;
		buf_reset(&r->resp);
		CURL *e = curl_easy_init();
		if (!e) {
			snprintf(r->error, sizeof r->error, "libcurl: cannot create a handle");
			continue;
		}
		easy[i] = e;
		curl_easy_setopt(e, CURLOPT_URL, r->url);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
		curl_easy_setopt(e, CURLOPT_PRIVATE, r);
		curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->error);
		const char *method = r->method ? r->method : "GET";
		if (r->body) {
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
			char *ct = xasprintf("Content-Type: %s",
			                     r->content_type ? r->content_type : "application/json");
			hdrs[i] = curl_slist_append(hdrs[i], ct);
			free(ct);
		}
		if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
		else if (!strcmp(method, "POST") && !r->body)
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L), curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
		if (r->auth && auth)
			hdrs[i] = curl_slist_append(hdrs[i], auth);
		hdrs[i] = curl_slist_append(hdrs[i], "Expect:"); /* no 100-continue round trip */
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs[i]);
		curl_multi_add_handle(m, e);
	}

	int running = 1;
	while (running) {
		if (curl_multi_perform(m, &running) != CURLM_OK)
			break;
		if (running)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(m, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct ctl_req *r;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		if (msg->data.result == CURLE_OK) {
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &r->status);
		} else if (!r->error[0]) {
			snprintf(r->error, sizeof r->error, "%s", curl_easy_strerror(msg->data.result));
		}
		double t = 0;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_TOTAL_TIME, &t);
		r->latency_ms = t * 1000.0;
	}
	for (size_t i = 0; i < n; i++) {
		if (easy[i]) {
			curl_multi_remove_handle(m, easy[i]);
			curl_easy_cleanup(easy[i]);
		}
		curl_slist_free_all(hdrs[i]);
	}
	free(auth);
	free(hdrs);
	free(easy);
	curl_multi_cleanup(m);
	return 0;
}

void ctl_req_clear(struct ctl_req *r)
{
	free(r->url);
	r->url = NULL;
	buf_free(&r->resp);
}
