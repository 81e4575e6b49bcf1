/* deliver.c -- send bundle envelopes to the edges, track their sync state, retry */
#include "origin/deliver.h"
#include "common/daemon.h"
#include "common/fanout.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rejected {
	char *name;
	unsigned long long version;
	long long until_ms;            /* not re-sent before this (monotonic) */
};

struct pedge {
	char *name, *url;
	bool reachable;                /* last contact worked */
	bool synced;                   /* holds the current version of every bundle */
	long long last_ok_ms;          /* wall clock of the last successful contact */
	char err[192];
	struct rejected *rej;          /* versions this edge refused: not re-sent */
	size_t nrej;
};

struct deliver {
	pthread_mutex_t *op_lock;      /* borrowed, see deliver.h */
	pthread_mutex_t *state_lock;   /* borrowed; guards hist and e */
	struct history *hist;          /* borrowed */
	pthread_cond_t wake;           /* waited on with state_lock */
	bool stop, started;
	pthread_t thread;

	char *secret;                  /* control secret sent to edges; may be NULL */
	int timeout_ms, retry_ms, retry_rejected_ms;
	struct pedge *e;
	size_t ne;

	atomic_ulong n_activated, n_rejected, n_unreachable, n_rounds;
};

/* One envelope for one edge. */
struct send {
	size_t edge;                   /* index into d->e */
	bool del;                      /* a tombstone (for the log) */
	const char *name;              /* borrowed for the send */
	unsigned long long version;
	const char *env;               /* borrowed for the send */
	size_t envlen;
};

enum result { R_ACTIVATED, R_REJECTED, R_UNREACHABLE };
static const char *const result_names[] = { "activated", "rejected", "unreachable" };

/* ---------- edges ---------- */

static void edges_free(struct pedge *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].name);
		free(e[i].url);
		for (size_t j = 0; j < e[i].nrej; j++)
			free(e[i].rej[j].name);
		free(e[i].rej);
	}
	free(e);
}

static struct pedge *edges_from(const struct origin_config *cfg, size_t *n)
{
	struct pedge *e = xcalloc(cfg->push.n_edges + 1, sizeof *e);
	for (size_t i = 0; i < cfg->push.n_edges; i++) {
		e[i].name = xstrdup(cfg->push.edges[i].name);
		e[i].url = xstrdup(cfg->push.edges[i].url);
		snprintf(e[i].err, sizeof e[i].err, "not contacted yet");
	}
	*n = cfg->push.n_edges;
	return e;
}

static void settings_from(struct deliver *d, const struct origin_config *cfg)
{
	d->timeout_ms = cfg->push.timeout_ms;
	d->retry_ms = cfg->push.retry_ms;
	d->retry_rejected_ms = cfg->push.retry_rejected_ms;
	free(d->secret);
	d->secret = cfg->n_control_secret ? xstrdup(cfg->control_secret[0]) : NULL; /* senders use the first */
}

/* A version an edge refused (bad key, compile error on its Lua) is not
 * re-sent every round -- the answer would be the same -- but again after
 * retry_rejected, in case the edge was fixed (e.g. given the right key). */
static bool edge_rejected(const struct pedge *e, const char *name, unsigned long long v)
{
	for (size_t i = 0; i < e->nrej; i++)
		if (!strcmp(e->rej[i].name, name) && e->rej[i].version == v)
			return daemon_now_ms() < e->rej[i].until_ms;
	return false;
}

static void edge_mark_rejected(struct pedge *e, const char *name, unsigned long long v, int hold_ms)
{
	size_t i = 0;
	while (i < e->nrej && strcmp(e->rej[i].name, name))
		i++;
	if (i == e->nrej) {
		e->rej = xrealloc(e->rej, (e->nrej + 1) * sizeof *e->rej);
		e->rej[e->nrej++].name = xstrdup(name);
	}
	e->rej[i].version = v;
	e->rej[i].until_ms = daemon_now_ms() + hold_ms;
}

/* Classifies an edge's answer to POST /.minicdn/scripts: 2xx activated, 4xx
 * rejected (the bundle itself is refused: signature, replay, compile error),
 * anything else -- no answer, 5xx -- unreachable, retried later.  The reason
 * is the JSON "error" field, else the start of the body or the transport error. */
static enum result classify(const struct fanout_req *r, char *reason, size_t rlen)
{
	reason[0] = '\0';
	if (r->status >= 200 && r->status < 300)
		return R_ACTIVATED;
	if (r->status == 0) {
		snprintf(reason, rlen, "%.190s", r->error[0] ? r->error : "no response");
		return R_UNREACHABLE;
	}
	json_t *o = json_loadb(r->resp.data ? r->resp.data : "", r->resp.len, 0, NULL);
	const char *e = json_string_value(json_object_get(o, "error"));
	if (!e)
		e = json_string_value(json_object_get(o, "reason"));
	if (e)
		snprintf(reason, rlen, "HTTP %ld: %s", r->status, e);
	else
		snprintf(reason, rlen, "HTTP %ld: %.120s", r->status, r->resp.data ? r->resp.data : "");
	json_decref(o);
	for (char *c = reason; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	return r->status >= 400 && r->status < 500 ? R_REJECTED : R_UNREACHABLE;
}

/* Version of bundle `name` an edge reports in its GET /.minicdn/scripts
 * listing, 0 if absent.  Accepted shapes: {"bundles":[{"name":N,"version":V},...]}
 * (also under "scripts"), a bare array of those, or {"<name>":V | {"version":V}}. */
static unsigned long long listed_version(json_t *listing, const char *name)
{
	json_t *arr = json_is_array(listing) ? listing : NULL;
	if (!arr && json_is_object(listing)) {
		arr = json_object_get(listing, "bundles");
		if (!json_is_array(arr))
			arr = json_object_get(listing, "scripts");
	}
	if (json_is_array(arr)) {
		size_t i;
		json_t *o;
		json_array_foreach(arr, i, o) {
			const char *n = json_string_value(json_object_get(o, "name"));
			json_t *v = json_object_get(o, "version");
			if (n && !strcmp(n, name) && json_is_integer(v))
				return (unsigned long long)json_integer_value(v);
		}
		return 0;
	}
	json_t *v = json_is_object(listing) ? json_object_get(listing, name) : NULL;
	if (json_is_object(v))
		v = json_object_get(v, "version");
	return json_is_integer(v) ? (unsigned long long)json_integer_value(v) : 0;
}

/* ---------- sending ---------- */

/* Records the outcome r of sending s on its edge.  state_lock held. */
static void record_outcome(struct deliver *d, const struct send *s, enum result r, const char *reason)
{
	struct pedge *e = &d->e[s->edge];
	switch (r) {
	case R_ACTIVATED:
		d->n_activated++;
		e->reachable = true;
		e->last_ok_ms = daemon_wall_ms();
		e->err[0] = '\0';
		log_info("push", "%s v%llu -> %s: %s", s->name, s->version, e->name, s->del ? "removed" : "activated");
		break;
	case R_REJECTED:
		d->n_rejected++;
		e->reachable = true;
		e->last_ok_ms = daemon_wall_ms();
		edge_mark_rejected(e, s->name, s->version, d->retry_rejected_ms);
		snprintf(e->err, sizeof e->err, "%.40s v%llu rejected: %.120s", s->name, s->version, reason);
		log_warn("push", "%s v%llu -> %s: rejected (%s)", s->name, s->version, e->name, reason);
		break;
	case R_UNREACHABLE:
		d->n_unreachable++;
		e->reachable = false;
		e->synced = false;
		snprintf(e->err, sizeof e->err, "%s", reason);
		log_warn("push", "%s v%llu -> %s: unreachable (%s), will retry", s->name, s->version, e->name, reason);
		break;
	}
}

static void result_json(struct buf *out, bool first, const struct pedge *e, enum result r, long status,
                        const char *reason)
{
	buf_puts(out, first ? "{\"name\":" : ",{\"name\":");
	buf_json_str(out, e->name);
	buf_puts(out, ",\"url\":");
	buf_json_str(out, e->url);
	buf_printf(out, ",\"result\":\"%s\",\"http_status\":%ld", result_names[r], status);
	if (reason[0]) {
		buf_puts(out, ",\"reason\":");
		buf_json_str(out, reason);
	}
	buf_puts(out, "}");
}

/* Sends envelopes (one request each) in parallel and records the outcome on
 * each edge.  op_lock held.  If out is not NULL, appends the per-edge result
 * objects as a JSON array and counts them in cnt[3]. */
static void send_all(struct deliver *d, const struct send *s, size_t n, struct buf *out, unsigned cnt[3])
{
	struct fanout_req *reqs = xcalloc(n + 1, sizeof *reqs);
	pthread_mutex_lock(d->state_lock);
	for (size_t i = 0; i < n; i++) {
		reqs[i].method = "POST";
		reqs[i].url = fanout_url(d->e[s[i].edge].url, "/.minicdn/scripts");
		reqs[i].body = s[i].env;
		reqs[i].body_len = s[i].envlen;
		reqs[i].auth = true;
	}
	pthread_mutex_unlock(d->state_lock);
	/* secret and timeout_ms only change under op_lock, which we hold. */
	fanout_run(reqs, n, d->timeout_ms, d->secret);

	if (out)
		buf_puts(out, "[");
	pthread_mutex_lock(d->state_lock);
	for (size_t i = 0; i < n; i++) {
		char reason[192];
		enum result r = classify(&reqs[i], reason, sizeof reason);
		record_outcome(d, &s[i], r, reason);
		if (out) {
			result_json(out, i == 0, &d->e[s[i].edge], r, reqs[i].status, reason);
			cnt[r]++;
		}
	}
	pthread_mutex_unlock(d->state_lock);
	if (out)
		buf_puts(out, "]");
	for (size_t i = 0; i < n; i++)
		fanout_req_clear(&reqs[i]);
	free(reqs);
}

size_t deliver_mark_behind(struct deliver *d)
{
	for (size_t i = 0; i < d->ne; i++)
		d->e[i].synced = false;
	return d->ne;
}

void deliver_publish(struct deliver *d, const char *name, const struct history_ver *v, const char *env,
                     size_t envlen, struct buf *out)
{
	pthread_mutex_lock(d->state_lock);
	size_t ne = d->ne;
	pthread_mutex_unlock(d->state_lock);
	struct send *s = xcalloc(ne + 1, sizeof *s);
	for (size_t i = 0; i < ne; i++)
		s[i] = (struct send){ .edge = i, .del = v->del, .name = name, .version = v->version, .env = env,
		                      .envlen = envlen };
	unsigned cnt[3] = { 0, 0, 0 };
	buf_puts(out, "\"edges\":");
	send_all(d, s, ne, out, cnt);
	buf_printf(out, ",\"activated\":%u,\"rejected\":%u,\"unreachable\":%u", cnt[R_ACTIVATED], cnt[R_REJECTED],
	           cnt[R_UNREACHABLE]);
	pthread_mutex_lock(d->state_lock);
	for (size_t i = 0; i < ne; i++)
		if (!d->e[i].err[0])
			d->e[i].synced = true; /* it took this version (earlier ones were in sync or reconciled) */
	pthread_mutex_unlock(d->state_lock);
	free(s);
}

/* ---------- reconciliation ---------- */

/* An edge whose listing could not be had.  state_lock held. */
static void edge_unlisted(struct pedge *e, const struct fanout_req *r)
{
	char reason[192];
	if (r->status == 200)
		snprintf(reason, sizeof reason, "scripts listing is not JSON");
	else
		classify(r, reason, sizeof reason);
	if (e->reachable || strcmp(e->err, reason))
		log_warn("push", "edge %s: cannot list scripts: %s", e->name, reason);
	e->reachable = false;
	e->synced = false;
	snprintf(e->err, sizeof e->err, "%s", reason);
}

/* Compares edge i's listing with the history and appends what it lacks to
 * *s (envelopes borrowed from the history: op_lock keeps them alive).
 * state_lock held. */
static void edge_plan(struct deliver *d, size_t i, json_t *listing, struct send **s, size_t *ns)
{
	struct pedge *e = &d->e[i];
	if (!e->reachable) {
		/* Back after an outage: possibly reconfigured, so earlier
		 * refusals no longer say anything. */
		for (size_t j = 0; j < e->nrej; j++)
			e->rej[j].until_ms = 0;
	}
	e->reachable = true;
	e->last_ok_ms = daemon_wall_ms();
	bool behind = false;
	for (size_t k = 0; k < d->hist->n; k++) {
		const struct history_bundle *h = &d->hist->b[k];
		const struct history_ver *cur = &h->v[h->n - 1];
		unsigned long long have = listed_version(listing, h->name);
		/* A tombstone only matters to an edge that still lists the bundle. */
		bool need = cur->del ? (have && have < cur->version) : have < cur->version;
		if (!need)
			continue;
		behind = true; /* also when it refused this version: it is not in sync */
		if (edge_rejected(e, h->name, cur->version))
			continue;
		*s = xrealloc(*s, (*ns + 1) * sizeof **s);
		(*s)[(*ns)++] = (struct send){ .edge = i, .del = cur->del, .name = h->name, .version = cur->version,
		                               .env = h->env, .envlen = h->envlen };
	}
	if (!behind) {
		if (!e->synced)
			log_info("push", "edge %s is in sync", e->name);
		e->synced = true;
		e->err[0] = '\0';
	} else {
		e->synced = false;
	}
}

/* After the round's sends: whoever activated everything it was sent is in
 * sync now.  state_lock held. */
static void mark_caught_up(struct deliver *d, size_t ne, const struct send *s, size_t ns)
{
	for (size_t i = 0; i < ne; i++) {
		bool all = d->e[i].reachable;
		bool any = false;
		for (size_t j = 0; j < ns; j++)
			if (s[j].edge == i) {
				any = true;
				if (d->e[i].err[0])
					all = false;
			}
		if (any && all)
			d->e[i].synced = true;
	}
}

/* One reconciliation round (op_lock held): list every edge's scripts, send
 * what each lacks.  An edge is synced when it answered and holds the current
 * version of every bundle (or refused that exact version before).  The
 * history index only changes under op_lock, so the envelopes the plan
 * borrows stay valid until the round ends. */
static void reconcile(struct deliver *d)
{
	pthread_mutex_lock(d->state_lock);
	size_t ne = d->ne;
	if (ne == 0 || d->hist->n == 0) {
		for (size_t i = 0; i < ne; i++)
			d->e[i].synced = true;
		pthread_mutex_unlock(d->state_lock);
		return;
	}
	struct fanout_req *reqs = xcalloc(ne, sizeof *reqs);
	for (size_t i = 0; i < ne; i++) {
		reqs[i].method = "GET";
		reqs[i].url = fanout_url(d->e[i].url, "/.minicdn/scripts");
		reqs[i].auth = true;
	}
	pthread_mutex_unlock(d->state_lock);
	fanout_run(reqs, ne, d->timeout_ms, d->secret);
	d->n_rounds++;

	struct send *s = NULL;
	size_t ns = 0;
	pthread_mutex_lock(d->state_lock);
	for (size_t i = 0; i < ne; i++) {
		json_t *listing = NULL;
		if (reqs[i].status == 200)
			listing = json_loadb(reqs[i].resp.data ? reqs[i].resp.data : "", reqs[i].resp.len, 0, NULL);
		if (listing)
			edge_plan(d, i, listing, &s, &ns);
		else
			edge_unlisted(&d->e[i], &reqs[i]);
		json_decref(listing);
	}
	pthread_mutex_unlock(d->state_lock);

	if (ns) {
		send_all(d, s, ns, NULL, NULL);
		pthread_mutex_lock(d->state_lock);
		mark_caught_up(d, ne, s, ns);
		pthread_mutex_unlock(d->state_lock);
	}
	free(s);
	for (size_t i = 0; i < ne; i++)
		fanout_req_clear(&reqs[i]);
	free(reqs);
}

static void *retry_main(void *arg)
{
	struct deliver *d = arg;
	pthread_mutex_lock(d->state_lock);
	while (!d->stop) {
		pthread_mutex_unlock(d->state_lock);
		pthread_mutex_lock(d->op_lock);
		reconcile(d);
		pthread_mutex_unlock(d->op_lock);
		pthread_mutex_lock(d->state_lock);
		if (d->stop)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		long long ns = ts.tv_nsec + (long long)(d->retry_ms % 1000) * 1000000LL;
		ts.tv_sec += d->retry_ms / 1000 + ns / 1000000000LL;
		ts.tv_nsec = ns % 1000000000LL;
		pthread_cond_timedwait(&d->wake, d->state_lock, &ts);
	}
	pthread_mutex_unlock(d->state_lock);
	return NULL;
}

/* ---------- reading the state ---------- */

void deliver_edges_json(const struct deliver *d, struct buf *out)
{
	for (size_t i = 0; i < d->ne; i++) {
		const struct pedge *e = &d->e[i];
		buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
		buf_json_str(out, e->name);
		buf_puts(out, ",\"url\":");
		buf_json_str(out, e->url);
		buf_printf(out, ",\"reachable\":%s,\"synced\":%s,\"last_ok_ms\":%lld", e->reachable ? "true" : "false",
		           e->synced ? "true" : "false", e->last_ok_ms);
		if (e->err[0]) {
			buf_puts(out, ",\"error\":");
			buf_json_str(out, e->err);
		}
		buf_puts(out, "}");
	}
}

void deliver_counts(const struct deliver *d, size_t *edges, size_t *behind)
{
	size_t n = 0;
	for (size_t i = 0; i < d->ne; i++)
		n += !d->e[i].synced;
	*edges = d->ne;
	*behind = n;
}

void deliver_stats(const struct deliver *d, struct deliver_stats *st)
{
	st->activated = atomic_load(&d->n_activated);
	st->rejected = atomic_load(&d->n_rejected);
	st->unreachable = atomic_load(&d->n_unreachable);
	st->rounds = atomic_load(&d->n_rounds);
}

/* ---------- lifecycle ---------- */

struct deliver *deliver_new(const struct origin_config *cfg, struct history *hist, pthread_mutex_t *op_lock,
                            pthread_mutex_t *state_lock)
{
	struct deliver *d = xcalloc(1, sizeof *d);
	d->op_lock = op_lock;
	d->state_lock = state_lock;
	d->hist = hist;
	pthread_cond_init(&d->wake, NULL);
	settings_from(d, cfg);
	d->e = edges_from(cfg, &d->ne);
	return d;
}

void deliver_start(struct deliver *d)
{
	if (pthread_create(&d->thread, NULL, retry_main, d) == 0)
		d->started = true;
	else
		log_error("push", "cannot start the reconciliation thread");
}

void deliver_configure(struct deliver *d, const struct origin_config *cfg)
{
	pthread_mutex_lock(d->op_lock);
	pthread_mutex_lock(d->state_lock);
	edges_free(d->e, d->ne);
	d->e = edges_from(cfg, &d->ne);
	settings_from(d, cfg);
	pthread_cond_signal(&d->wake);
	pthread_mutex_unlock(d->state_lock);
	pthread_mutex_unlock(d->op_lock);
}

void deliver_free(struct deliver *d)
{
	if (!d)
		return;
	if (d->started) {
		pthread_mutex_lock(d->state_lock);
		d->stop = true;
		pthread_cond_signal(&d->wake);
		pthread_mutex_unlock(d->state_lock);
		pthread_join(d->thread, NULL);
	}
	edges_free(d->e, d->ne);
	free(d->secret);
	pthread_cond_destroy(&d->wake);
	free(d);
}
