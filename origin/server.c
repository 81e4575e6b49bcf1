/* server.c -- minicdn-origin's HTTP side: files, health, metrics, control API */
#include "origin/server.h"
#include "common/buf.h"
#include "common/daemon.h"
#include "common/encoding.h"
#include "common/httpd.h"
#include "common/httpd_strict.h"
#include "common/httpdate.h"
#include "common/log.h"
#include "common/version.h"
#include "common/xmalloc.h"
#include "origin/compress.h"
#include "origin/files.h"
#include "origin/mime.h"
#include "origin/push.h"
#include "origin/rules.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Control requests carry a bundle (JSON with Lua sources): bounded before
 * anything is buffered. */
#define CONTROL_MAX_BODY (4u << 20)

/* ---------- the site snapshot ---------- */

struct site {
	char *root_real;
	char *index;
	struct rules *rules;
	bool errors_json;
	char **secrets; /* accepted control secrets; none: control API disabled */
	size_t nsecrets;
	char *name;
	char *region;
};

static void site_free(struct site *s)
{
	if (!s)
		return;
	free(s->root_real);
	free(s->index);
	rules_free(s->rules);
	for (size_t i = 0; i < s->nsecrets; i++)
		free(s->secrets[i]);
	free(s->secrets);
	free(s->name);
	free(s->region);
	free(s);
}

static struct site *site_new(const struct origin_config *c, char *err, size_t errlen)
{
	char real[PATH_MAX];
	if (c->root && !realpath(c->root, real)) {
		snprintf(err, errlen, "root '%s' cannot be resolved", c->root);
		return NULL;
	}
	struct rules *r = rules_new(c->rules, c->n_rules, c->default_cache_control, err, errlen);
	if (!r)
		return NULL;
	struct site *s = xcalloc(1, sizeof *s);
	s->root_real = c->root ? xstrdup(real) : NULL; /* NULL: control plane only */
	s->index = xstrdup(c->index);
	s->rules = r;
	s->errors_json = !strcmp(c->error_format, "json");
	s->secrets = xcalloc(c->n_control_secret + 1, sizeof *s->secrets);
	for (size_t i = 0; i < c->n_control_secret; i++)
		s->secrets[i] = xstrdup(c->control_secret[i]);
	s->nsecrets = c->n_control_secret;
	s->name = xstrdup(c->name);
	s->region = xstrdup(c->region);
	return s;
}

/* ---------- server ---------- */

#define N_STATUS 600

struct server {
	pthread_rwlock_t lock;   /* guards site (the pointer; the site itself is immutable) */
	struct site *site;
	struct MHD_Daemon *d;
	struct push *push;       /* borrowed, may be NULL */
	long long started_ms;
	atomic_int capacity;
	atomic_long inflight;
	atomic_ulong by_status[N_STATUS];
	atomic_ullong body_bytes; /* file bytes queued in 200 responses to GET */
	atomic_ulong reloads;
	atomic_ulong rejected[REQCHECK_N]; /* heads refused by reqcheck, by reason */
	struct log_limit refusal_log;     /* refused control requests: lines a second */
};

struct reqctx {
	struct buf body;
	bool too_big;
	bool started;   /* the access handler has seen the headers */
	bool nul_in_uri; /* raw target had %00: MHD's decoded path would be cut short */
	enum reqcheck_reason uri_why; /* the raw target's check */
};

/* ---------- replies ---------- */

static bool wants_json(struct MHD_Connection *c, const struct site *site)
{
	const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
	if (accept && strstr(accept, "application/json"))
		return true;
	return site->errors_json;
}

static enum MHD_Result reply_error(struct server *s, struct MHD_Connection *c, const struct site *site,
                                   unsigned status, const char *msg, const char *path)
{
	struct buf b = BUF_INIT;
	const char *ct;
	if (wants_json(c, site)) {
		buf_printf(&b, "{\"status\":%u,\"error\":", status);
		buf_json_str(&b, msg);
		if (path) {
			buf_puts(&b, ",\"path\":");
			buf_json_str(&b, path);
		}
		buf_puts(&b, "}\n");
		ct = "application/json";
	} else {
		buf_printf(&b, "%u %s\n", status, msg);
		ct = "text/plain; charset=utf-8";
	}
	struct MHD_Response *r = MHD_create_response_from_buffer(b.len, b.data, MHD_RESPMEM_MUST_COPY);
	buf_free(&b);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ct);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == 405)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	s->by_status[status]++;
	return ret;
}

static enum MHD_Result reply_buf(struct server *s, struct MHD_Connection *c, unsigned status,
                                 const char *ct, const struct buf *b)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(b->len, b->data ? b->data : (char *)"", MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ct);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	if (status < N_STATUS)
		s->by_status[status]++;
	return ret;
}

/* ---------- health and metrics ---------- */

static double server_load(struct server *s)
{
	/* The request asking counts itself: subtract it so an idle origin says 0. */
	long n = atomic_load(&s->inflight) - 1;
	return n > 0 ? (double)n / s->capacity : 0.0;
}

static enum MHD_Result handle_healthz(struct server *s, struct MHD_Connection *c, const struct site *site)
{
	struct buf b = BUF_INIT;
	buf_puts(&b, "{\"status\":\"ok\",\"role\":\"origin\",\"name\":");
	buf_json_str(&b, site->name);
	buf_puts(&b, ",\"region\":");
	buf_json_str(&b, site->region);
	buf_printf(&b, ",\"version\":\"%s\",\"uptime_s\":%lld,\"load\":%.3f,\"inflight\":%ld",
	           MINICDN_VERSION, (daemon_now_ms() - s->started_ms) / 1000, server_load(s),
	           atomic_load(&s->inflight) - 1);
	if (s->push)
		push_health_json(s->push, &b);
	buf_puts(&b, "}\n");
	enum MHD_Result r = reply_buf(s, c, 200, "application/json", &b);
	buf_free(&b);
	return r;
}

static enum MHD_Result handle_metrics(struct server *s, struct MHD_Connection *c)
{
	struct buf b = BUF_INIT;
	buf_puts(&b, "# HELP minicdn_origin_requests_total HTTP responses by status code.\n"
	             "# TYPE minicdn_origin_requests_total counter\n");
	for (int i = 100; i < N_STATUS; i++) {
		unsigned long v = atomic_load(&s->by_status[i]);
		if (v)
			buf_printf(&b, "minicdn_origin_requests_total{code=\"%d\"} %lu\n", i, v);
	}
	buf_printf(&b,
	           "# HELP minicdn_origin_body_bytes_total File bytes sent in 200 responses.\n"
	           "# TYPE minicdn_origin_body_bytes_total counter\n"
	           "minicdn_origin_body_bytes_total %llu\n"
	           "# HELP minicdn_origin_inflight Requests being served.\n"
	           "# TYPE minicdn_origin_inflight gauge\n"
	           "minicdn_origin_inflight %ld\n"
	           "# HELP minicdn_origin_reloads_total Successful configuration reloads.\n"
	           "# TYPE minicdn_origin_reloads_total counter\n"
	           "minicdn_origin_reloads_total %lu\n"
	           "# HELP minicdn_origin_uptime_seconds Seconds since start.\n"
	           "# TYPE minicdn_origin_uptime_seconds gauge\n"
	           "minicdn_origin_uptime_seconds %lld\n",
	           (unsigned long long)atomic_load(&s->body_bytes), atomic_load(&s->inflight) - 1,
	           atomic_load(&s->reloads), (daemon_now_ms() - s->started_ms) / 1000);
	buf_puts(&b, "# HELP minicdn_origin_rejected_requests_total Request heads refused by the strict "
	             "checks (answered 400/501, connection closed), by reason.\n"
	             "# TYPE minicdn_origin_rejected_requests_total counter\n");
	for (int i = 1; i < REQCHECK_N; i++)
		buf_printf(&b, "minicdn_origin_rejected_requests_total{reason=\"%s\"} %lu\n",
		           reqcheck_name((enum reqcheck_reason)i), atomic_load(&s->rejected[i]));
	if (s->push)
		push_metrics(s->push, &b);
	enum MHD_Result r = reply_buf(s, c, 200, "text/plain; version=0.0.4", &b);
	buf_free(&b);
	return r;
}

/* ---------- files ---------- */

/* The gzip representation of the open file fd (size bytes; not closed
 * here).  NULL if the file cannot be read whole or zlib fails. */
static struct MHD_Response *gzip_response(struct server *s, int fd, uint64_t size, bool head)
{
	struct buf raw = BUF_INIT, z = BUF_INIT;
	buf_reserve(&raw, (size_t)size);
	size_t got = 0;
	while (got < size) {
		ssize_t n = pread(fd, raw.data + got, (size_t)size - got, (off_t)got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	struct MHD_Response *r = NULL;
	if (got == size && compress_gzip(raw.data, got, &z) == 0) {
		/* MHD frees z.data with the response. */
		r = MHD_create_response_from_buffer(z.len, z.data ? z.data : (char *)"",
		                                    z.data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
		if (r) {
			z.data = NULL;
			if (!head)
				s->body_bytes += z.len;
		}
	}
	buf_free(&raw);
	buf_free(&z);
	return r;
}

/* The identity representation of fe: whole (200), the requested range (206)
 * or 416.  Takes fe->fd (closed here, or owned by the response).  NULL if
 * MHD cannot make a response. */
static struct MHD_Response *identity_response(struct server *s, struct MHD_Connection *c,
                                              const struct files_entry *fe, const char *etag, const char *lm,
                                              bool head, unsigned *status)
{
	char crange[96];
	struct MHD_Response *r;
	uint64_t off = 0, len = fe->size;
	enum files_range rr = FILES_RANGE_NONE;
	if (files_if_range(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_RANGE), etag, lm))
		rr = files_range(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE), fe->size,
		                 &off, &len);
	if (rr == FILES_RANGE_UNSATISFIABLE) {
		close(fe->fd);
		*status = 416;
		r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
		if (r) {
			snprintf(crange, sizeof crange, "bytes */%llu", (unsigned long long)fe->size);
			MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, crange);
		}
		return r;
	}
	*status = rr == FILES_RANGE_OK ? 206 : 200;
	/* MHD owns the fd from here (sendfile, closed with the response).
	 * For HEAD it sends the headers and Content-Length only. */
	r = MHD_create_response_from_fd_at_offset64(len, fe->fd, off);
	if (!r) {
		close(fe->fd);
		return NULL;
	}
	if (!head)
		s->body_bytes += len;
	if (*status == 206) {
		snprintf(crange, sizeof crange, "bytes %llu-%llu/%llu", (unsigned long long)off,
		         (unsigned long long)(off + len - 1), (unsigned long long)fe->size);
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, crange);
	}
	return r;
}

static enum MHD_Result handle_file(struct server *s, struct MHD_Connection *c, const struct site *site,
                                   const char *url, bool head)
{
	char norm[FILES_PATH_MAX];
	enum files_result fr = files_normalize(url, norm, sizeof norm);
	if (fr == FILES_BAD_PATH)
		return reply_error(s, c, site, 400, "bad path", NULL);
	if (fr == FILES_HIDDEN)
		return reply_error(s, c, site, 404, "not found", url);

	if (!site->root_real)
		return reply_error(s, c, site, 404, "not found (control plane only: no document root)", NULL);
	struct files_entry fe;
	fr = files_open(site->root_real, norm, site->index, &fe);
	switch (fr) {
	case FILES_OK:
		break;
	case FILES_REDIRECT: {
		char *loc = xasprintf("%s/", norm);
		struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
		MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, loc);
		MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, rules_match(site->rules, norm)->cache_control);
		enum MHD_Result ret = MHD_queue_response(c, 301, r);
		MHD_destroy_response(r);
		free(loc);
		s->by_status[301]++;
		return ret;
	}
	case FILES_NOT_FOUND:
		return reply_error(s, c, site, 404, "not found", url);
	case FILES_FORBIDDEN:
		log_info("origin", "refused %s: outside the root or not a regular file", url);
		return reply_error(s, c, site, 403, "forbidden", NULL);
	default:
		return reply_error(s, c, site, 400, "bad path", NULL);
	}

	/* Rules match the request path (plus the index name for directories). */
	char rpath[FILES_PATH_MAX + 256];
	size_t nl = strlen(norm);
	snprintf(rpath, sizeof rpath, "%s%s", norm, norm[nl - 1] == '/' ? site->index : "");
	const struct rule *rule = rules_match(site->rules, rpath);

	char etag[FILES_ETAG_LEN], lm[HTTPDATE_LEN];
	files_etag(fe.size, fe.mtime, fe.mtime_nsec, etag);
	httpdate_format(fe.mtime, lm);

	/* A text file has two representations, identity and gzip: every
	 * response for it says Vary: Accept-Encoding.  Range requests get
	 * identity (ranges of the gzip bytes help nobody). */
	const char *type = mime_type(fe.path);
	bool vary = compress_eligible(type, fe.size);
	bool gz = vary &&
	          encoding_accepts_gzip(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	                                                            MHD_HTTP_HEADER_ACCEPT_ENCODING)) &&
	          !MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
	if (gz) {
		char gtag[FILES_ETAG_LEN];
		gz = compress_etag(etag, gtag, sizeof gtag) == 0;
		if (gz)
			memcpy(etag, gtag, sizeof gtag);
	}

	const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
	const char *ims = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_MODIFIED_SINCE);
	unsigned status;
	struct MHD_Response *r;
	if (files_not_modified(inm, ims, etag, fe.mtime)) {
		close(fe.fd);
		status = 304;
		r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	} else if (gz) {
		status = 200;
		r = gzip_response(s, fe.fd, fe.size, head);
		close(fe.fd);
		if (!r)
			return reply_error(s, c, site, 500, "cannot read the file", NULL);
	} else {
		r = identity_response(s, c, &fe, etag, lm, head, &status);
	}
	if (!r)
		return MHD_NO;
	if (status == 200 || status == 206) {
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
		MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
	}
	if (gz && status == 200)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
	if (vary)
		MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, MHD_HTTP_HEADER_ACCEPT_ENCODING);
	MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
	MHD_add_response_header(r, MHD_HTTP_HEADER_LAST_MODIFIED, lm);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, rule->cache_control);
	if (rule->surrogate_key)
		MHD_add_response_header(r, "Surrogate-Key", rule->surrogate_key);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	s->by_status[status]++;
	return ret;
}

/* ---------- control API ---------- */

static enum MHD_Result handle_control(struct server *s, struct MHD_Connection *c, const struct site *site,
                                      const char *url, const char *method, struct reqctx *rc)
{
	if (!site->nsecrets || !s->push)
		return reply_error(s, c, site, 404, "control API disabled (no control_secret / push key)", url);
	const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (!httpd_bearer_any(auth, site->secrets, site->nsecrets)) {
		unsigned dropped;
		if (log_limit_allow(&s->refusal_log, 10, daemon_now_ms(), &dropped))
			log_warn("origin", "control request %s %s refused: bad or missing secret"
			         " (%u more not logged)", method, url, dropped);
		s->by_status[401]++;
		return httpd_reply_unauthorized(c, "unauthorized");
	}
	if (rc->too_big)
		return reply_error(s, c, site, 413, "request body too large", NULL);
	struct buf out = BUF_INIT;
	unsigned status = push_handle(s->push, method, url + strlen("/.minicdn"),
	                              rc->body.data ? rc->body.data : "", rc->body.len, &out);
	enum MHD_Result r = reply_buf(s, c, status, "application/json", &out);
	buf_free(&out);
	return r;
}

/* ---------- dispatch ---------- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size,
                                  void **con_cls)
{
	struct server *s = cls;
	struct reqctx *rc = *con_cls;
	if (!rc) {
		rc = xcalloc(1, sizeof *rc);
		*con_cls = rc;
		s->inflight++;
	}
	if (!rc->started) {
		rc->started = true;
		/* A head two parsers could read two ways is refused before any
		 * body is read, and the connection closed. */
		enum reqcheck_reason why = httpd_strict_check(c, method, version, rc->uri_why);
		if (why) {
			s->rejected[why]++;
			s->by_status[reqcheck_status(why)]++;
			log_debug("origin", "refused a request head: %s", reqcheck_name(why));
			return httpd_strict_reject(c, why);
		}
		return MHD_YES; /* headers seen; the body (if any) comes next */
	}
	if (*upload_size) {
		bool control = !strncmp(url, "/.minicdn/", 10);
		if (!control || rc->body.len + *upload_size > CONTROL_MAX_BODY)
			rc->too_big = true; /* only control requests may carry a body */
		else
			buf_append(&rc->body, upload_data, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}

	pthread_rwlock_rdlock(&s->lock);
	const struct site *site = s->site;
	enum MHD_Result ret;
	bool get = !strcmp(method, "GET"), head = !strcmp(method, "HEAD");
	if (rc->nul_in_uri) {
		ret = reply_error(s, c, site, 400, "bad path", NULL);
	} else if (!strncmp(url, "/.minicdn/", 10)) {
		ret = handle_control(s, c, site, url, method, rc);
	} else if (!get && !head) {
		ret = reply_error(s, c, site, 405, "method not allowed", NULL);
	} else if (rc->too_big) {
		ret = reply_error(s, c, site, 413, "request body not accepted", NULL);
	} else if (!strcmp(url, "/healthz")) {
		ret = handle_healthz(s, c, site);
	} else if (!strcmp(url, "/metrics")) {
		ret = handle_metrics(s, c);
	} else {
		ret = handle_file(s, c, site, url, head);
	}
	pthread_rwlock_unlock(&s->lock);
	return ret;
}

/* Sees the raw request-target before MHD percent-decodes it (the decoded
 * path is a C string, so "/a.html%00.css" would silently become "/a.html"). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct server *s = cls;
	struct reqctx *rc = xcalloc(1, sizeof *rc);
	rc->nul_in_uri = strcasestr(uri, "%00") != NULL;
	rc->uri_why = httpd_strict_uri(uri);
	s->inflight++;
	return rc;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct server *s = cls;
	struct reqctx *rc = *con_cls;
	if (!rc)
		return;
	/* MHD answered 400 itself (e.g. "Content-Length: 5,50") before the
	 * handler saw the head: counted with the strict checks' refusals. */
	if (!rc->started && toe == MHD_REQUEST_TERMINATED_WITH_ERROR)
		s->rejected[REQCHECK_PARSE]++;
	buf_free(&rc->body);
	free(rc);
	*con_cls = NULL;
	s->inflight--;
}

/* ---------- lifecycle ---------- */

struct server *server_new(const struct origin_config *cfg, struct push *push, char *err, size_t errlen)
{
	struct site *site = site_new(cfg, err, errlen);
	if (!site)
		return NULL;
	struct server *s = xcalloc(1, sizeof *s);
	pthread_rwlock_init(&s->lock, NULL);
	s->site = site;
	s->push = push;
	s->capacity = cfg->capacity;
	s->started_ms = daemon_now_ms();
	return s;
}

int server_start(struct server *s, const struct origin_config *cfg, char *err, size_t errlen)
{
	struct httpd_opts o = {
		.listen = &cfg->listen,
		.threads = (unsigned)cfg->threads,
		.handler = on_request,
		.handler_cls = s,
		.completed = on_completed,
		.completed_cls = s,
		.uri_log = on_uri,
		.uri_log_cls = s,
	};
	s->d = httpd_start(&o, err, errlen);
	return s->d ? 0 : -1;
}

int server_reload(struct server *s, const struct origin_config *cfg, char *err, size_t errlen)
{
	struct site *site = site_new(cfg, err, errlen);
	if (!site)
		return -1;
	pthread_rwlock_wrlock(&s->lock);
	struct site *old = s->site;
	s->site = site;
	s->capacity = cfg->capacity;
	pthread_rwlock_unlock(&s->lock);
	site_free(old);
	s->reloads++;
	return 0;
}

void server_free(struct server *s)
{
	if (!s)
		return;
	httpd_stop(s->d);
	site_free(s->site);
	pthread_rwlock_destroy(&s->lock);
	free(s);
}
