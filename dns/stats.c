/* stats.c -- HTTP stats/health/control listener of minicdn-dns */
#include "dns/stats.h"
#include "dns/counters.h"
#include "dns/health.h"
#include "dns/query.h"
#include "dns/rcode.h"
#include "dns/reload.h"
#include "dns/snap.h"
#include "common/daemon.h"
#include "common/httpd.h"
#include "common/log.h"
#include "common/version.h"
#include "common/xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct MHD_Daemon *httpd;
static const char *cfg_path;
static struct server *server;
static long long started_ms;
/* Refused reloads logged at most 10 a second: one stats listener per
 * process, so its limit lives with the listener's other state here. */
static struct log_limit refusals;

/* Health and identity of the current view's edges, read under view_lock. */
struct edge_row {
	char name[128], region[128];
	struct edge_health h;
	unsigned stat_id;
	int has_check;
};

static size_t edge_rows(struct edge_row **out, double *thr, uint64_t *gen, size_t *prefixes, size_t *mem,
                        long long *load_ms)
{
	view_lock();
	const struct view *v = view_current();
	size_t n = v ? v->snap->es->ne : 0;
	struct edge_row *r = xcalloc(n + 1, sizeof *r);
	if (v) {
		const struct edgeset *es = v->snap->es;
		struct edge_health *h = xcalloc(n + 1, sizeof *h);
		health_fill(es, v->snap->conf.health.initial, h);
		for (size_t i = 0; i < n; i++) {
			snprintf(r[i].name, sizeof r[i].name, "%s", es->edges[i].name);
			snprintf(r[i].region, sizeof r[i].region, "%s", es->regions[es->edges[i].region].name);
			r[i].h = h[i];
			r[i].stat_id = es->edges[i].stat_id;
			r[i].has_check = es->edges[i].healthz != NULL;
		}
		free(h);
		*thr = es->load_threshold;
		*gen = v->snap->generation;
		*prefixes = geo_map_prefixes(v->snap->geo);
		*mem = geo_map_memory(v->snap->geo);
		*load_ms = v->snap->load_ms;
	}
	view_unlock();
	*out = r;
	return n;
}

void stats_json(struct buf *b)
{
	struct counters c;
	counters_sum(&c);
	struct edge_row *r;
	double thr = 0;
	uint64_t gen = 0;
	size_t prefixes = 0, mem = 0;
	long long load_ms = 0;
	size_t n = edge_rows(&r, &thr, &gen, &prefixes, &mem, &load_ms);
	buf_printf(b, "{\"queries\":{\"udp\":%llu,\"tcp\":%llu,\"dropped\":%llu,\"truncated\":%llu,\"ecs\":%llu,"
	              "\"dynamic\":%llu,\"fail_open\":%llu},\"rcodes\":{",
	           (unsigned long long)c.udp, (unsigned long long)c.tcp, (unsigned long long)c.dropped,
	           (unsigned long long)c.truncated, (unsigned long long)c.ecs, (unsigned long long)c.dynamic,
	           (unsigned long long)c.fail_open);
	int first = 1;
	for (int i = 0; i < COUNTERS_RCODES; i++)
		if (rcode_name(i)) {
			buf_printf(b, "%s\"%s\":%llu", first ? "" : ",", rcode_name(i), (unsigned long long)c.rcode[i]);
			first = 0;
		}
	buf_puts(b, "},\"edges\":[");
	for (size_t i = 0; i < n; i++) {
		buf_printf(b, "%s{\"name\":", i ? "," : "");
		buf_json_str(b, r[i].name);
		buf_puts(b, ",\"region\":");
		buf_json_str(b, r[i].region);
		buf_printf(b, ",\"up\":%s,\"usable\":%s,\"checked\":%s,\"load\":%.3f,\"draining\":%s,"
		              "\"last_status\":%d,\"error\":",
		           r[i].h.up ? "true" : "false",
		           r[i].h.up && !r[i].h.draining && r[i].h.load <= thr ? "true" : "false",
		           r[i].h.checked ? "true" : "false", r[i].h.load, r[i].h.draining ? "true" : "false",
		           r[i].h.last_status);
		buf_json_str(b, r[i].h.last_error);
		buf_printf(b, ",\"answers\":%llu}", (unsigned long long)c.edge[r[i].stat_id]);
	}
	buf_puts(b, "],\"regions\":{");
	unsigned nr = counters_nids(COUNTERS_REGION);
	for (unsigned i = 0; i < nr; i++) {
		buf_puts(b, i ? "," : "");
		buf_json_str(b, counters_name(COUNTERS_REGION, i));
		buf_printf(b, ":%llu", (unsigned long long)c.region[i]);
	}
	buf_printf(b, "},\"snapshot\":{\"generation\":%llu,\"load_ms\":%lld,\"map_prefixes\":%zu,"
	              "\"map_memory_bytes\":%zu},\"tcp_connections\":%u,\"uptime_s\":%lld}",
	           (unsigned long long)gen, load_ms, prefixes, mem, server ? server_tcp_connections(server) : 0,
	           (daemon_now_ms() - started_ms) / 1000);
	free(r);
}

void stats_prometheus(struct buf *b)
{
	struct counters c;
	counters_sum(&c);
	struct edge_row *r;
	double thr = 0;
	uint64_t gen = 0;
	size_t prefixes = 0, mem = 0;
	long long load_ms = 0;
	size_t n = edge_rows(&r, &thr, &gen, &prefixes, &mem, &load_ms);
	buf_puts(b, "# HELP minicdn_dns_queries_total DNS queries received.\n# TYPE minicdn_dns_queries_total counter\n");
	buf_printf(b, "minicdn_dns_queries_total{transport=\"udp\"} %llu\n", (unsigned long long)c.udp);
	buf_printf(b, "minicdn_dns_queries_total{transport=\"tcp\"} %llu\n", (unsigned long long)c.tcp);
	buf_puts(b, "# HELP minicdn_dns_responses_total Responses by rcode.\n# TYPE minicdn_dns_responses_total counter\n");
	for (int i = 0; i < COUNTERS_RCODES; i++)
		if (rcode_name(i))
			buf_printf(b, "minicdn_dns_responses_total{rcode=\"%s\"} %llu\n", rcode_name(i),
			           (unsigned long long)c.rcode[i]);
	buf_printf(b, "# TYPE minicdn_dns_dropped_total counter\nminicdn_dns_dropped_total %llu\n",
	           (unsigned long long)c.dropped);
	buf_printf(b, "# TYPE minicdn_dns_truncated_total counter\nminicdn_dns_truncated_total %llu\n",
	           (unsigned long long)c.truncated);
	buf_printf(b, "# TYPE minicdn_dns_ecs_queries_total counter\nminicdn_dns_ecs_queries_total %llu\n",
	           (unsigned long long)c.ecs);
	buf_printf(b, "# TYPE minicdn_dns_dynamic_answers_total counter\nminicdn_dns_dynamic_answers_total %llu\n",
	           (unsigned long long)c.dynamic);
	buf_printf(b, "# TYPE minicdn_dns_fail_open_answers_total counter\nminicdn_dns_fail_open_answers_total %llu\n",
	           (unsigned long long)c.fail_open);
	buf_puts(b, "# HELP minicdn_dns_edge_up 1 if the edge passes its health checks.\n# TYPE minicdn_dns_edge_up gauge\n");
	for (size_t i = 0; i < n; i++)
		buf_printf(b, "minicdn_dns_edge_up{edge=\"%s\",region=\"%s\"} %d\n", r[i].name, r[i].region, r[i].h.up);
	buf_puts(b, "# TYPE minicdn_dns_edge_load gauge\n");
	for (size_t i = 0; i < n; i++)
		buf_printf(b, "minicdn_dns_edge_load{edge=\"%s\",region=\"%s\"} %g\n", r[i].name, r[i].region, r[i].h.load);
	buf_puts(b, "# HELP minicdn_dns_edge_answers_total Answers naming the edge.\n# TYPE minicdn_dns_edge_answers_total counter\n");
	unsigned ne = counters_nids(COUNTERS_EDGE);
	for (unsigned i = 0; i < ne; i++)
		buf_printf(b, "minicdn_dns_edge_answers_total{edge=\"%s\"} %llu\n", counters_name(COUNTERS_EDGE, i),
		           (unsigned long long)c.edge[i]);
	buf_puts(b, "# HELP minicdn_dns_region_answers_total Dynamic answers by client region.\n# TYPE minicdn_dns_region_answers_total counter\n");
	unsigned nr = counters_nids(COUNTERS_REGION);
	for (unsigned i = 0; i < nr; i++)
		buf_printf(b, "minicdn_dns_region_answers_total{region=\"%s\"} %llu\n", counters_name(COUNTERS_REGION, i),
		           (unsigned long long)c.region[i]);
	buf_printf(b, "# TYPE minicdn_dns_map_prefixes gauge\nminicdn_dns_map_prefixes %zu\n", prefixes);
	buf_printf(b, "# TYPE minicdn_dns_snapshot_generation gauge\nminicdn_dns_snapshot_generation %llu\n",
	           (unsigned long long)gen);
	buf_printf(b, "# TYPE minicdn_dns_tcp_connections gauge\nminicdn_dns_tcp_connections %u\n",
	           server ? server_tcp_connections(server) : 0);
	free(r);
}

struct post {
	size_t len;
};

/* POST /reload needs one of the current configuration's control secrets,
 * when any is set (the shared control API convention).  Compared under
 * view_lock since a reload may free the snapshot holding them; constant time
 * in the secrets' contents. */
static bool reload_authorized(struct MHD_Connection *conn)
{
	const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	view_lock();
	const struct view *v = view_current();
	bool ok = !v || !v->snap->conf.n_control_secret ||
	          httpd_bearer_any(h, v->snap->conf.control_secret, v->snap->conf.n_control_secret);
	view_unlock();
	return ok;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                               const char *version, const char *upload, size_t *upload_size, void **ctx)
{
	(void)cls, (void)version, (void)upload;
	if (!strcmp(method, "POST")) {
		if (!*ctx) {
			*ctx = xcalloc(1, sizeof(struct post));
			return MHD_YES;
		}
		struct post *p = *ctx;
		if (*upload_size) { /* the body is ignored, but bounded */
			p->len += *upload_size;
			*upload_size = 0;
			return MHD_YES;
		}
		free(p);
		*ctx = NULL;
		if (strcmp(url, "/reload"))
			return httpd_reply_error(conn, 404, "not found");
		if (!reload_authorized(conn)) {
			unsigned dropped;
			if (log_limit_allow(&refusals, 10, daemon_now_ms(), &dropped))
				log_warn("stats", "POST /reload refused: bad or missing control secret"
				         " (%u more not logged)", dropped);
			return httpd_reply_unauthorized(conn, "POST /reload needs Authorization: Bearer <control_secret>");
		}
		char err[1024];
		if (reload_config(cfg_path, err, sizeof err) < 0)
			return httpd_reply_error(conn, 400, err);
		struct buf b = BUF_INIT;
		view_lock();
		buf_printf(&b, "{\"ok\":true,\"generation\":%llu}\n",
		           (unsigned long long)view_current()->snap->generation);
		view_unlock();
		enum MHD_Result r = httpd_reply_json(conn, 200, &b);
		buf_free(&b);
		return r;
	}
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return httpd_reply_error(conn, 405, "method not allowed");
	struct buf b = BUF_INIT;
	enum MHD_Result r;
	if (!strcmp(url, "/healthz")) {
		struct edge_row *er;
		double thr = 0;
		uint64_t gen = 0;
		size_t prefixes = 0, mem = 0;
		long long load_ms = 0;
		size_t n = edge_rows(&er, &thr, &gen, &prefixes, &mem, &load_ms);
		view_lock();
		const struct view *v = view_current();
		size_t nz = v ? v->snap->nzones : 0;
		char digest[DIGEST_HEX_LEN + 1] = "";
		if (v)
			memcpy(digest, v->snap->digest, sizeof digest);
		view_unlock();
		buf_printf(&b, "{\"status\":\"ok\",\"role\":\"dns\",\"name\":\"minicdn-dns\",\"version\":\"%s\","
		              "\"uptime_s\":%lld,\"load\":0,\"zones\":%zu,\"map_prefixes\":%zu,\"generation\":%llu,"
		              "\"digest\":\"%s\",\"edges\":[",
		           MINICDN_VERSION, (daemon_now_ms() - started_ms) / 1000, nz, prefixes, (unsigned long long)gen,
		           digest);
		/* The edges as this server sees them (minicdnctl status prints them). */
		for (size_t i = 0; i < n; i++) {
			const char *state = er[i].h.draining ? "draining" : !er[i].h.up ? "down"
			                  : er[i].h.load <= thr ? "up" : "overloaded";
			buf_printf(&b, "%s{\"name\":", i ? "," : "");
			buf_json_str(&b, er[i].name);
			buf_puts(&b, ",\"region\":");
			buf_json_str(&b, er[i].region);
			buf_printf(&b, ",\"up\":%s,\"state\":\"%s\",\"load\":%.3f}", er[i].h.up ? "true" : "false", state,
			           er[i].h.load);
		}
		buf_puts(&b, "]}\n");
		free(er);
		r = httpd_reply_json(conn, 200, &b);
	} else if (!strcmp(url, "/stats")) {
		stats_json(&b);
		buf_puts(&b, "\n");
		r = httpd_reply_json(conn, 200, &b);
	} else if (!strcmp(url, "/metrics")) {
		stats_prometheus(&b);
		r = httpd_reply(conn, 200, "text/plain; version=0.0.4", b.data, b.len);
	} else if (!strcmp(url, "/explain")) {
		const char *name = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "name");
		const char *addr = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "addr");
		const char *type = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "type");
		uint16_t qtype = !type || !strcasecmp(type, "A") ? DNS_T_A : !strcasecmp(type, "AAAA") ? DNS_T_AAAA : 0;
		if (!name || !addr || !qtype) {
			r = httpd_reply_error(conn, 400, "usage: /explain?name=NAME&addr=ADDRESS[&type=A|AAAA]");
		} else {
			uint64_t rng = (uint64_t)daemon_now_ms() | 1;
			/* view_lock keeps the view alive while we read it (publishers take it too). */
			view_lock();
			int rc = query_explain(view_current(), name, addr, qtype, &rng, &b);
			view_unlock();
			buf_puts(&b, "\n");
			r = httpd_reply_json(conn, rc < 0 ? 400 : 200, &b);
		}
	} else {
		r = httpd_reply_error(conn, 404, "not found");
	}
	buf_free(&b);
	return r;
}

static void completed(void *cls, struct MHD_Connection *c, void **ctx, enum MHD_RequestTerminationCode t)
{
	(void)cls, (void)c, (void)t;
	free(*ctx);
	*ctx = NULL;
}

int stats_start(const struct addr *a, const char *config_path, struct server *srv, char *err, size_t errlen)
{
	cfg_path = config_path;
	server = srv;
	started_ms = daemon_now_ms();
	struct httpd_opts o = { 0 };
	o.listen = a;
	o.handler = handler;
	o.completed = completed;
	o.conn_limit = 64;
	o.conn_timeout_s = 10;
	httpd = httpd_start(&o, err, errlen);
	return httpd ? 0 : -1;
}

void stats_stop(void)
{
	httpd_stop(httpd);
	httpd = NULL;
}
