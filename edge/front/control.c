/* control.c -- healthz, metrics, the purge API and draining */
#include "edge/front/control.h"
#include "edge/front/conns.h"
#include "edge/front/script_http.h"
#include "edge/cache/cachekey.h"
#include "common/daemon.h"
#include "common/httpd.h"
#include "common/log.h"
#include "common/version.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static double load_of(struct edge *e)
{
	const struct edge_config *lc = edge_live(e);
	if (lc->load_override >= 0)
		return lc->load_override;
	long in = counters_get(&e->n, C_INFLIGHT) - 1; /* not counting the health check itself */
	return (double)(in < 0 ? 0 : in) / (double)lc->capacity;
}

static enum MHD_Result healthz(struct edge_req *r)
{
	struct edge *e = r->edge;
	struct cache_stats cs;
	cache_get_stats(e->cache, &cs);
	struct buf b = BUF_INIT;
	buf_puts(&b, "{\"status\":\"ok\",\"role\":\"edge\",\"name\":");
	buf_json_str(&b, e->cfg.name);
	buf_puts(&b, ",\"region\":");
	buf_json_str(&b, e->cfg.region);
	buf_printf(&b, ",\"draining\":%s", atomic_load(&e->draining) ? "true" : "false");
	buf_printf(&b, ",\"version\":\"%s\",\"uptime_s\":%lld,\"load\":%.3f,\"inflight\":%ld,"
	               "\"cache\":{\"entries\":%llu,\"bytes\":%llu,\"map_size\":%llu}}\n",
	           MINICDN_VERSION, (daemon_now_ms() - e->start_ms) / 1000, load_of(e),
	           counters_get(&e->n, C_INFLIGHT) - 1, (unsigned long long)cs.entries,
	           (unsigned long long)cs.bytes, (unsigned long long)cs.map_size);
	enum MHD_Result ret = httpd_reply_json(r->conn, 200, &b);
	buf_free(&b);
	return ret;
}

/* Per-site counters, labelled with the site's name. */
static void site_metrics(struct edge *e, struct buf *b)
{
	static const struct {
		const char *name, *help;
		enum counter c;
	} k[] = {
		{ "site_requests_total", "Requests per site.", C_REQUESTS },
		{ "site_cache_hits_total", "Fresh hits per site.", C_HITS },
		{ "site_cache_misses_total", "Misses per site.", C_MISSES },
		{ "site_purged_total", "Entries purged per site.", C_PURGED },
	};
	const struct edge_config *c = &e->cfg; /* the names are fixed at start-up */
	for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
		buf_printf(b, "# HELP minicdn_edge_%s %s\n# TYPE minicdn_edge_%s counter\n", k[i].name,
		           k[i].help, k[i].name);
		for (size_t s = 0; s < c->nsites; s++)
			buf_printf(b, "minicdn_edge_%s{site=\"%s\"} %ld\n", k[i].name, c->sites[s].name,
			           counters_get(&e->site_n[s], k[i].c));
	}
}

static enum MHD_Result metrics(struct edge_req *r)
{
	struct edge *e = r->edge;
	struct cache_stats cs;
	cache_get_stats(e->cache, &cs);
	struct buf b = BUF_INIT;
#define C(name, help, v) \
	buf_printf(&b, "# HELP minicdn_edge_" name " " help "\n# TYPE minicdn_edge_" name " counter\n" \
	               "minicdn_edge_" name " %lu\n", (unsigned long)(v))
#define G(name, help, v) \
	buf_printf(&b, "# HELP minicdn_edge_" name " " help "\n# TYPE minicdn_edge_" name " gauge\n" \
	               "minicdn_edge_" name " %llu\n", (unsigned long long)(v))
	C("requests_total", "Requests received.", counters_get(&e->n, C_REQUESTS));
	C("cache_hits_total", "Requests answered fresh from the cache.", counters_get(&e->n, C_HITS));
	C("cache_misses_total", "Requests with no usable entry.", counters_get(&e->n, C_MISSES));
	C("stale_served_total", "Stale responses served (stale-while-revalidate, stale-if-error).",
	  counters_get(&e->n, C_STALE_SERVED));
	C("revalidated_total", "Entries revalidated with a 304.", counters_get(&e->n, C_REVALIDATED));
	C("origin_fetches_total", "Requests sent to the origin.", counters_get(&e->n, C_ORIGIN_FETCHES));
	C("origin_errors_total", "Origin failures (network or 5xx).", counters_get(&e->n, C_ORIGIN_ERRORS));
	C("collapsed_total", "Requests that joined an in-flight fetch.", counters_get(&e->n, C_COLLAPSED));
	C("stored_total", "Responses stored.", counters_get(&e->n, C_STORED));
	C("purged_total", "Entries purged.", counters_get(&e->n, C_PURGED));
	C("bad_requests_total", "Requests refused as malformed.", counters_get(&e->n, C_BAD_REQUESTS));
	C("evicted_total", "Entries evicted by the LRU.", cs.evicted);
	G("cache_entries", "Entries in the cache.", cs.entries);
	G("cache_bytes", "Accounted bytes in the cache.", cs.bytes);
	G("cache_map_bytes", "LMDB map size.", cs.map_size);
	G("cache_unverified", "1 while bodies from before an unclean stop are being verified "
	  "(each is verified on read until then).", cs.unverified);
	C("cache_bad_bodies_total", "Bodies from before an unclean stop found with a bad "
	  "checksum (never served).", cs.bad_bodies);
	for (int i = 1; i < REQCHECK_N; i++)
		buf_printf(&b, "%sminicdn_edge_rejected_requests_total{reason=\"%s\"} %lu\n",
		           i == 1 ? "# HELP minicdn_edge_rejected_requests_total Request heads refused by the "
		                    "strict checks (400/501, connection closed), by reason.\n"
		                    "# TYPE minicdn_edge_rejected_requests_total counter\n" : "",
		           reqcheck_name((enum reqcheck_reason)i), atomic_load(&e->rejected[i]));
	struct conns_stats ks;
	conns_stats(e->conns, &ks);
	G("client_connections", "Client connections open.", ks.open);
	C("head_timeouts_total", "Connections closed for not sending a whole request head in time.",
	  ks.head_timeouts);
	C("body_timeouts_total", "Connections closed for not sending a whole body in time.",
	  ks.body_timeouts);
	C("closed_for_room_total", "Idle connections closed to make room near max_connections.",
	  ks.closed_for_room);
	G("request_body_bytes", "Request bytes held in memory.", atomic_load(&e->body_bytes));
	long inflight = counters_get(&e->n, C_INFLIGHT) - 1; /* not this request */
	G("inflight_requests", "Requests in flight.", inflight > 0 ? inflight : 0);
	C("misdirected_total", "Requests for a Host no site has (421).", counters_get(&e->n, C_MISDIRECTED));
#undef C
#undef G
	site_metrics(e, &b);
	script_metrics(e->scripts, &b);
	enum MHD_Result ret = httpd_reply(r->conn, 200, "text/plain; version=0.0.4", b.data, b.len);
	buf_free(&b);
	return ret;
}

/* The site an absolute URL's host belongs to (lc's sites; NULL: none). */
static const struct edge_site *site_of(const struct edge_config *lc, const char *host)
{
	return site_find(lc->sites, lc->nsites, host,
	                 site_by_name(lc->sites, lc->nsites, lc->default_site));
}

/* {"prefix": P}: "http(s)://host/p" (that host's site) or "/p" (site, or
 * every host of the one-origin form). */
static long purge_prefix(struct edge *e, const struct edge_config *lc, const char *prefix,
                         const struct edge_site *site, char *err, size_t errlen)
{
	long n = -1;
	struct buf p = BUF_INIT;
	if (!strncasecmp(prefix, "http://", 7) || !strncasecmp(prefix, "https://", 8)) {
		/* Normalise the host part only: a prefix may end mid-segment. */
		const char *h = prefix + (prefix[4] == 's' || prefix[4] == 'S' ? 8 : 7);
		const char *slash = strchr(h, '/');
		struct buf host = BUF_INIT;
		if (cachekey_normalize_host(h, slash ? (size_t)(slash - h) : strlen(h), &host) < 0) {
			snprintf(err, errlen, "bad host in prefix");
			buf_free(&host);
			goto out;
		}
		const struct edge_site *hs = site_of(lc, host.data);
		if (!hs || (site && hs != site)) {
			snprintf(err, errlen, "%s is not a host of %s", host.data, site ? site->name : "any site");
			buf_free(&host);
			goto out;
		}
		buf_printf(&p, "%s://%s%s", hs->label, host.data, slash ? slash : "/");
		buf_free(&host);
	} else if (prefix[0] == '/') {
		if (!site && lc->nsites > 1) {
			snprintf(err, errlen, "several sites: a path prefix needs \"site\"");
			goto out;
		}
		/* "scope:///p": every host of the site, never another site's. */
		if (site)
			buf_printf(&p, "%s://", site->label);
		buf_puts(&p, prefix);
	} else {
		snprintf(err, errlen, "prefix must be http://host/path... or /path...");
		goto out;
	}
	n = cache_purge_prefix(e->cache, p.data);
out:
	buf_free(&p);
	return n;
}

/* ---------- draining ---------- */

static void drain_flag_path(const struct edge *e, char *out, size_t n)
{
	snprintf(out, n, "%s/draining", e->cfg.cache.path);
}

void control_drain_restore(struct edge *e)
{
	char path[4096];
	drain_flag_path(e, path, sizeof path);
	bool on = access(path, F_OK) == 0;
	atomic_store(&e->draining, on);
	if (on)
		log_warn("control", "draining (flag %s from before the restart): undrain to take traffic", path);
}

/* Records the state in the flag file first, so the answer the operator gets
 * is also what a restart will find.  Returns 0, or -1 with errno set. */
static int drain_set(struct edge *e, bool on)
{
	char path[4096];
	drain_flag_path(e, path, sizeof path);
	if (on) {
		int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0)
			return -1;
		close(fd);
	} else if (unlink(path) < 0 && errno != ENOENT) {
		return -1;
	}
	bool was = atomic_exchange(&e->draining, on);
	if (was != on)
		log_info("control", "%s", on ? "draining: /healthz reports it, DNS servers stop answering this edge"
		                              : "undrained: taking traffic again");
	return 0;
}

static enum MHD_Result drain_handle(struct edge_req *r, bool on)
{
	if (strcmp(r->method, "POST"))
		return httpd_reply_error(r->conn, 405, "use POST");
	if (drain_set(r->edge, on) < 0) {
		char why[160];
		snprintf(why, sizeof why, "drain flag file: %s", strerror(errno));
		return httpd_reply_error(r->conn, 500, why);
	}
	struct buf b = BUF_INIT;
	buf_printf(&b, "{\"draining\":%s}\n", on ? "true" : "false");
	enum MHD_Result ret = httpd_reply_json(r->conn, 200, &b);
	buf_free(&b);
	return ret;
}

long control_purge(struct edge *e, const char *text, size_t len, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j = json_loadb(text, len, 0, &je);
	long n = -1;
	err[0] = '\0';
	if (!j || !json_is_object(j)) {
		snprintf(err, errlen, "body must be a JSON object: {\"url\":U} | {\"prefix\":P} | {\"tag\":T}, "
		         "optionally with \"site\":S");
		goto out;
	}
	const char *url = json_string_value(json_object_get(j, "url"));
	const char *prefix = json_string_value(json_object_get(j, "prefix"));
	const char *tag = json_string_value(json_object_get(j, "tag"));
	const char *sname = json_string_value(json_object_get(j, "site"));
	if (!!url + !!prefix + !!tag != 1) {
		snprintf(err, errlen, "exactly one of url, prefix, tag (strings) is required");
		goto out;
	}
	const struct edge_config *lc = edge_live(e); /* one snapshot: sites, rules and counts agree */
	const struct edge_site *site = NULL;
	if (sname && !(site = site_by_name(lc->sites, lc->nsites, sname))) {
		snprintf(err, errlen, "no site named '%s'", sname);
		goto out;
	}
	if (!site && lc->nsites == 1)
		site = &lc->sites[0];
	if (url) {
		struct buf key = BUF_INIT, path = BUF_INIT, host = BUF_INIT;
		/* A URL is normalised exactly like a request target, so every
		 * spelling of it purges the one entry. */
		const struct edge_site *us = NULL;
		if (cachekey_split(url, NULL, &path, &host) < 0 || url[0] == '/')
			snprintf(err, errlen, "url must be absolute: http://host/path");
		else if (!(us = site_of(lc, host.data)) || (site && us != site))
			snprintf(err, errlen, "%s is not a host of %s", host.data, site ? site->name : "any site");
		bool ok = us && (!site || us == site);
		if (ok) {
			const struct query_rule *rules;
			size_t nr;
			edge_site_rules(lc, us, &rules, &nr);
			cachekey_join(us->label, host.data, host.len, path.data, path.len, rules, nr, &key);
			n = cache_purge_key(e->cache, key.data);
			site = us;
		}
		buf_free(&key);
		buf_free(&path);
		buf_free(&host);
		if (!ok)
			goto out;
	} else if (prefix) {
		if ((n = purge_prefix(e, lc, prefix, site, err, errlen)) < 0 && err[0])
			goto out;
	} else if (site && lc->nsites > 1) {
		/* The site's entries with that tag, never another site's. */
		struct buf t = BUF_INIT;
		buf_printf(&t, "%s://%c%s", site->label, CACHEKEY_VARY_SEP, tag);
		n = cache_purge_tag(e->cache, t.data);
		buf_free(&t);
	} else if (lc->nsites > 1) {
		snprintf(err, errlen, "several sites: a tag purge needs \"site\"");
		goto out;
	} else {
		n = cache_purge_tag(e->cache, tag);
	}
	if (n < 0) {
		snprintf(err, errlen, "storage error");
	} else {
		counters_add(&e->n, C_PURGED, n);
		if (site)
			counters_add(&e->site_n[site->idx], C_PURGED, n);
	}
out:
	json_decref(j);
	return n;
}

enum MHD_Result control_handle(struct edge_req *r)
{
	const char *p = r->path.data;
	if (!strcmp(p, "/healthz"))
		return healthz(r);
	if (!strcmp(p, "/metrics"))
		return metrics(r);
	/* Bundles carry their own Ed25519 signature (edge/script.c). */
	if (!strncmp(p, "/.minicdn/scripts", 17) && (p[17] == '\0' || p[17] == '/'))
		return script_http_control(r);
	const struct edge_config *lc = edge_live(r->edge);
	if (!httpd_bearer_any(edge_req_header(r, "Authorization"), lc->control_secret, lc->ncontrol_secret)) {
		unsigned dropped;
		if (log_limit_allow(&r->edge->refusal_log, 10, daemon_now_ms(), &dropped)) {
			char ip[ADDR_STRLEN] = "-";
			if (r->client)
				addr_format_ip(r->client, ip, sizeof ip);
			log_warn("control", "control request %s %s from %s refused: bad or missing secret"
			         " (%u more not logged)", r->method, r->target, ip, dropped);
		}
		return httpd_reply_unauthorized(r->conn, "control API needs Authorization: Bearer <secret>");
	}
	if (!strcmp(p, "/.minicdn/purge")) {
		if (strcmp(r->method, "POST"))
			return httpd_reply_error(r->conn, 405, "use POST");
		char err[200];
		long n = control_purge(r->edge, r->body.data ? r->body.data : "", r->body.len, err, sizeof err);
		if (n < 0)
			return httpd_reply_error(r->conn, n == -1 && strcmp(err, "storage error") ? 400 : 500, err);
		log_info("control", "purge %.*s: %ld entries", (int)(r->body.len > 200 ? 200 : r->body.len),
		         r->body.data ? r->body.data : "", n);
		struct buf b = BUF_INIT;
		buf_printf(&b, "{\"purged\":%ld}\n", n);
		enum MHD_Result ret = httpd_reply_json(r->conn, 200, &b);
		buf_free(&b);
		return ret;
	}
	if (!strcmp(p, "/.minicdn/drain") || !strcmp(p, "/.minicdn/undrain"))
		return drain_handle(r, p[10] == 'd');
	return httpd_reply_error(r->conn, 404, "no such control endpoint");
}
