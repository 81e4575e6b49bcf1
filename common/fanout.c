/* fanout.c -- parallel HTTP requests with libcurl multi */
#include "common/fanout.h"
#include "common/xmalloc.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *fanout_url(const char *base, const char *path)
{
	size_t n = strlen(base);
	while (n && base[n - 1] == '/')
		n--;
	return xasprintf("%.*s%s%s", (int)n, base, path[0] == '/' ? "" : "/", path);
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
	struct fanout_req *r = ud;
	size_t n = size * nmemb;
	if (r->resp.len + n > FANOUT_MAX_RESP)
		return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
	buf_append(&r->resp, p, n);
	return n;
}

int fanout_run(struct fanout_req *reqs, size_t n, int timeout_ms, const char *secret)
{
	CURLM *m = curl_multi_init();
	if (!m)
		return -1;
	CURL **easy = xcalloc(n + 1, sizeof *easy);
	struct curl_slist **hdrs = xcalloc(n + 1, sizeof *hdrs);
	char *auth = secret ? xasprintf("Authorization: Bearer %s", secret) : NULL;

	for (size_t i = 0; i < n; i++) {
		struct fanout_req *r = &reqs[i];
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
		struct fanout_req *r;
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

void fanout_req_clear(struct fanout_req *r)
{
	free(r->url);
	r->url = NULL;
	buf_free(&r->resp);
}
