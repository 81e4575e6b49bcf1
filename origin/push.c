/* push.c -- the bundle control API: push, rollback, unpush, list; signing
 * and storing a version (history.c), then sending it (deliver.c) */
#include "origin/push.h"
#include "origin/deliver.h"
#include "origin/history.h"
#include "common/bundle.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct push {
	/* op_lock serialises operations that talk to edges (push, rollback,
	 * unpush, a reconciliation round) so versions and sends never interleave.
	 * state_lock guards the history index and edge states and is only held
	 * briefly, so GET /bundles and /healthz never wait for an edge. */
	pthread_mutex_t op_lock;
	pthread_mutex_t state_lock;
	uint8_t sk[BUNDLE_SK_LEN];
	struct history hist;
	struct deliver *deliver;
};

/* ---------- operations ---------- */

static unsigned error_out(struct buf *out, unsigned status, const char *msg)
{
	buf_puts(out, "{\"error\":");
	buf_json_str(out, msg);
	buf_puts(out, "}\n");
	return status;
}

/* Signs b under b->version, stores it, makes it current and pushes it to
 * every edge.  op_lock held.  Writes the result JSON to out; returns the status. */
static unsigned publish(struct push *p, struct bundle *b, unsigned long long rollback_of, struct buf *out)
{
	char err[256];
	size_t len, envlen;
	char *bytes = bundle_serialize(b, &len, err, sizeof err);
	if (!bytes)
		return error_out(out, 400, err);
	char *env = bundle_sign(bytes, len, p->sk, &envlen);
	struct history_ver v = { .version = b->version, .del = b->op == BUNDLE_OP_DELETE, .created = b->created,
		                 .rollback_of = rollback_of };
	bundle_digest_hex(bytes, len, v.digest);
	free(bytes);
	if (history_write(&p->hist, b->name, &v, env, envlen, err, sizeof err) < 0) {
		log_error("push", "cannot store %s v%llu: %s", b->name, v.version, err);
		free(env);
		return error_out(out, 500, err);
	}

	pthread_mutex_lock(&p->state_lock);
	history_record(&p->hist, b->name, &v, env, envlen);
	size_t ne = deliver_mark_behind(p->deliver);
	pthread_mutex_unlock(&p->state_lock);
	log_info("push", "%s v%llu (%s%s) signed, digest %s; pushing to %zu edges", b->name, v.version,
	         v.del ? "delete" : "activate", rollback_of ? ", rollback" : "", v.digest, ne);

	buf_puts(out, "{\"name\":");
	buf_json_str(out, b->name);
	buf_printf(out, ",\"version\":%llu,\"op\":\"%s\",\"digest\":\"%s\"", v.version,
	           v.del ? "delete" : "activate", v.digest);
	if (rollback_of)
		buf_printf(out, ",\"rollback_of\":%llu", rollback_of);
	buf_puts(out, ",");
	/* The history owns env now; it cannot be replaced meanwhile because
	 * every writer holds op_lock, which we hold. */
	deliver_publish(p->deliver, b->name, &v, env, envlen, out);
	buf_puts(out, "}\n");
	return 200;
}

static json_t *parse_body(const char *body, size_t len, struct buf *out, unsigned *status)
{
	json_error_t je;
	json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(o)) {
		*status = error_out(out, 400, o ? "request body must be a JSON object" : je.text);
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Compiles every module as text (never runs it) so a syntax error is caught
 * here, before anything is signed, instead of being refused by every edge.
 * Returns 0, or -1 with "module M does not compile: ..." in err. */
static int check_compiles(const struct bundle *b, char *err, size_t errlen)
{
	lua_State *L = luaL_newstate();
	if (!L) {
		snprintf(err, errlen, "cannot create a Lua state");
		return -1;
	}
	int rc = 0;
	for (size_t i = 0; i < b->nmodules && rc == 0; i++) {
		const struct bundle_module *m = &b->modules[i];
		char chunk[BUNDLE_MAX_NAME + 8];
		snprintf(chunk, sizeof chunk, "=%s", m->name);
		if (luaL_loadbufferx(L, m->source, m->len, chunk, "t") != LUA_OK) {
			snprintf(err, errlen, "module %s does not compile: %s", m->name, lua_tostring(L, -1));
			rc = -1;
		}
		lua_settop(L, 0);
	}
	lua_close(L);
	return rc;
}

static unsigned op_push(struct push *p, const char *body, size_t len, struct buf *out)
{
	unsigned status;
	json_t *o = parse_body(body, len, out, &status);
	if (!o)
		return status;
	json_t *jb = json_object_get(o, "bundle");
	json_t *jv = json_object_get(o, "version");
	char err[256];
	struct bundle *b = NULL;
	if (!json_is_string(jb)) {
		status = error_out(out, 400, "\"bundle\" (the bundle JSON as a string) is required");
		goto done;
	}
	if (jv && (!json_is_integer(jv) || json_integer_value(jv) < 0 ||
	           (unsigned long long)json_integer_value(jv) > BUNDLE_MAX_VERSION)) {
		status = error_out(out, 400, "\"version\" must be an integer between 0 and 2^53");
		goto done;
	}
	b = bundle_parse(json_string_value(jb), json_string_length(jb), err, sizeof err);
	if (!b) {
		status = error_out(out, 400, err);
		goto done;
	}
	if (b->op != BUNDLE_OP_ACTIVATE) {
		status = error_out(out, 400, "push takes an activate bundle; use unpush to remove one");
		goto done;
	}
	if (!history_name_ok(b->name)) {
		status = error_out(out, 400, "bundle name must not start with '.'");
		goto done;
	}
	if (check_compiles(b, err, sizeof err) < 0) {
		status = error_out(out, 400, err);
		goto done;
	}
	pthread_mutex_lock(&p->op_lock);
	pthread_mutex_lock(&p->state_lock);
	unsigned long long cur = history_current(history_find(&p->hist, b->name));
	pthread_mutex_unlock(&p->state_lock);
	unsigned long long want = jv ? (unsigned long long)json_integer_value(jv) : 0;
	if (want && want <= cur) {
		pthread_mutex_unlock(&p->op_lock);
		snprintf(err, sizeof err, "version %llu is not higher than the current %llu", want, cur);
		status = error_out(out, 409, err);
		goto done;
	}
	if (!want && cur >= BUNDLE_MAX_VERSION) {
		pthread_mutex_unlock(&p->op_lock);
		status = error_out(out, 409, "version space exhausted");
		goto done;
	}
	b->version = want ? want : cur + 1;
	b->created = (long long)time(NULL);
	status = publish(p, b, 0, out);
	pthread_mutex_unlock(&p->op_lock);
done:
	bundle_free(b);
	json_decref(o);
	return status;
}

long push_rollback_target(const unsigned long long *ver, const bool *del, const unsigned long long *rb,
                          size_t n)
{
	if (n == 0)
		return -1;
	/* The content now current came from version `eff` (itself, or the one it
	 * re-signs); restore the newest activation older than that.  Repeated
	 * rollbacks so walk back through history instead of toggling. */
	unsigned long long eff = rb[n - 1] ? rb[n - 1] : ver[n - 1];
	for (size_t i = n; i-- > 0;)
		if (!del[i] && ver[i] < eff)
			return (long)i;
	return -1;
}

static const char *body_name(json_t *o)
{
	const char *n = json_string_value(json_object_get(o, "name"));
	return n && history_name_ok(n) ? n : NULL;
}

static unsigned op_rollback(struct push *p, const char *body, size_t len, struct buf *out)
{
	unsigned status;
	json_t *o = parse_body(body, len, out, &status);
	if (!o)
		return status;
	const char *name = body_name(o);
	char err[256];
	char *env = NULL;
	struct bundle *b = NULL;
	if (!name) {
		json_decref(o);
		return error_out(out, 400, "\"name\" (a bundle name) is required");
	}
	pthread_mutex_lock(&p->op_lock);
	pthread_mutex_lock(&p->state_lock);
	struct history_bundle *h = history_find(&p->hist, name);
	long t = -1;
	unsigned long long cur = 0, target = 0, target_rb = 0;
	if (h) {
		unsigned long long *ver = xcalloc(h->n, sizeof *ver), *rb = xcalloc(h->n, sizeof *rb);
		bool *del = xcalloc(h->n, sizeof *del);
		for (size_t i = 0; i < h->n; i++) {
			ver[i] = h->v[i].version;
			rb[i] = h->v[i].rollback_of;
			del[i] = h->v[i].del;
		}
		t = push_rollback_target(ver, del, rb, h->n);
		cur = history_current(h);
		if (t >= 0) {
			target = h->v[t].version;
			target_rb = h->v[t].rollback_of;
		}
		free(ver);
		free(rb);
		free(del);
	}
	pthread_mutex_unlock(&p->state_lock);
	if (!h) {
		status = error_out(out, 404, "no such bundle");
		goto done;
	}
	if (t < 0) {
		status = error_out(out, 409, "no earlier version to roll back to");
		goto done;
	}
	size_t envlen = 0;
	env = history_read_env(&p->hist, name, target, &envlen, err, sizeof err);
	if (!env || !(b = bundle_open(env, envlen, p->hist.pk, NULL, NULL, err, sizeof err))) {
		if (!env)
			snprintf(err, sizeof err, "version %llu is missing from the history", target);
		status = error_out(out, 500, err);
		goto done;
	}
	log_info("push", "rollback of %s: re-signing the content of v%llu as v%llu", name,
	         target_rb ? target_rb : target, cur + 1);
	b->version = cur + 1;
	b->created = (long long)time(NULL);
	status = publish(p, b, target_rb ? target_rb : target, out);
done:
	pthread_mutex_unlock(&p->op_lock);
	bundle_free(b);
	free(env);
	json_decref(o);
	return status;
}

static unsigned op_unpush(struct push *p, const char *body, size_t len, struct buf *out)
{
	unsigned status;
	json_t *o = parse_body(body, len, out, &status);
	if (!o)
		return status;
	const char *name = body_name(o);
	if (!name) {
		json_decref(o);
		return error_out(out, 400, "\"name\" (a bundle name) is required");
	}
	pthread_mutex_lock(&p->op_lock);
	pthread_mutex_lock(&p->state_lock);
	struct history_bundle *h = history_find(&p->hist, name);
	unsigned long long cur = history_current(h);
	bool deleted = h && h->v[h->n - 1].del;
	pthread_mutex_unlock(&p->state_lock);
	if (!h) {
		status = error_out(out, 404, "no such bundle");
	} else if (deleted) {
		status = error_out(out, 409, "bundle is already unpushed");
	} else {
		struct bundle *b = xcalloc(1, sizeof *b);
		b->name = xstrdup(name);
		b->op = BUNDLE_OP_DELETE;
		b->version = cur + 1;
		b->created = (long long)time(NULL);
		status = publish(p, b, 0, out);
		bundle_free(b);
	}
	pthread_mutex_unlock(&p->op_lock);
	json_decref(o);
	return status;
}

static unsigned op_list(struct push *p, struct buf *out)
{
	pthread_mutex_lock(&p->state_lock);
	buf_puts(out, "{\"bundles\":[");
	for (size_t i = 0; i < p->hist.n; i++) {
		const struct history_bundle *h = &p->hist.b[i];
		const struct history_ver *c = &h->v[h->n - 1];
		buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
		buf_json_str(out, h->name);
		buf_printf(out, ",\"version\":%llu,\"op\":\"%s\",\"active\":%s,\"digest\":\"%s\",\"history\":[",
		           c->version, c->del ? "delete" : "activate", c->del ? "false" : "true", c->digest);
		for (size_t k = 0; k < h->n; k++) {
			const struct history_ver *v = &h->v[k];
			buf_printf(out, "%s{\"version\":%llu,\"op\":\"%s\",\"created\":%lld,\"digest\":\"%s\"",
			           k ? "," : "", v->version, v->del ? "delete" : "activate", v->created, v->digest);
			if (v->rollback_of)
				buf_printf(out, ",\"rollback_of\":%llu", v->rollback_of);
			buf_puts(out, "}");
		}
		buf_puts(out, "]}");
	}
	buf_puts(out, "],\"edges\":[");
	deliver_edges_json(p->deliver, out);
	buf_puts(out, "]}\n");
	pthread_mutex_unlock(&p->state_lock);
	return 200;
}

unsigned push_handle(struct push *p, const char *method, const char *path, const char *body,
                     size_t len, struct buf *out)
{
	bool post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
	if (!strcmp(path, "/push") && post)
		return op_push(p, body, len, out);
	if (!strcmp(path, "/rollback") && post)
		return op_rollback(p, body, len, out);
	if (!strcmp(path, "/unpush") && post)
		return op_unpush(p, body, len, out);
	if (!strcmp(path, "/bundles") && get)
		return op_list(p, out);
	if (!strcmp(path, "/push") || !strcmp(path, "/rollback") || !strcmp(path, "/unpush") ||
	    !strcmp(path, "/bundles"))
		return error_out(out, 405, "method not allowed");
	return error_out(out, 404, "no such control endpoint (push, rollback, unpush, bundles)");
}

/* ---------- health, metrics ---------- */

void push_health_json(struct push *p, struct buf *b)
{
	pthread_mutex_lock(&p->state_lock);
	size_t ne, behind, active = 0;
	deliver_counts(p->deliver, &ne, &behind);
	for (size_t i = 0; i < p->hist.n; i++)
		active += !p->hist.b[i].v[p->hist.b[i].n - 1].del;
	buf_printf(b, ",\"scripts\":{\"bundles\":%zu,\"active\":%zu,\"edges\":%zu,\"edges_behind\":%zu}",
	           p->hist.n, active, ne, behind);
	pthread_mutex_unlock(&p->state_lock);
}

void push_metrics(struct push *p, struct buf *b)
{
	pthread_mutex_lock(&p->state_lock);
	size_t ne, behind;
	deliver_counts(p->deliver, &ne, &behind);
	size_t nh = p->hist.n;
	pthread_mutex_unlock(&p->state_lock);
	struct deliver_stats st;
	deliver_stats(p->deliver, &st);
	buf_printf(b,
	           "# HELP minicdn_origin_bundle_sends_total Bundle envelopes sent to edges, by outcome.\n"
	           "# TYPE minicdn_origin_bundle_sends_total counter\n"
	           "minicdn_origin_bundle_sends_total{result=\"activated\"} %lu\n"
	           "minicdn_origin_bundle_sends_total{result=\"rejected\"} %lu\n"
	           "minicdn_origin_bundle_sends_total{result=\"unreachable\"} %lu\n"
	           "# HELP minicdn_origin_bundles Bundles known to the origin.\n"
	           "# TYPE minicdn_origin_bundles gauge\n"
	           "minicdn_origin_bundles %zu\n"
	           "# HELP minicdn_origin_edges_behind Edges not known to hold every current bundle.\n"
	           "# TYPE minicdn_origin_edges_behind gauge\n"
	           "minicdn_origin_edges_behind %zu\n"
	           "# HELP minicdn_origin_reconcile_rounds_total Reconciliation rounds run.\n"
	           "# TYPE minicdn_origin_reconcile_rounds_total counter\n"
	           "minicdn_origin_reconcile_rounds_total %lu\n",
	           st.activated, st.rejected, st.unreachable, nh, behind, st.rounds);
}

/* ---------- lifecycle ---------- */

struct push *push_new(const struct origin_config *cfg, bool dry, char *err, size_t errlen)
{
	char why[256];
	uint8_t pk[BUNDLE_PK_LEN];
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialise");
		return NULL;
	}
	struct push *p = xcalloc(1, sizeof *p);
	if (bundle_key_read(cfg->push.secret_key, p->sk, sizeof p->sk, why, sizeof why) < 0) {
		snprintf(err, errlen, "push.secret_key: %s", why);
		free(p);
		return NULL;
	}
	bundle_sk_to_pk(p->sk, pk);
	history_init(&p->hist, cfg->push.state_dir, pk);
	pthread_mutex_init(&p->op_lock, NULL);
	pthread_mutex_init(&p->state_lock, NULL);
	p->deliver = deliver_new(cfg, &p->hist, &p->op_lock, &p->state_lock);
	if (!dry) {
		if (history_load(&p->hist, why, sizeof why) < 0) {
			snprintf(err, errlen, "push.state_dir: %s", why);
			push_free(p);
			return NULL;
		}
		size_t ne, behind;
		deliver_counts(p->deliver, &ne, &behind);
		log_info("push", "%zu bundles (%zu versions) in %s; %zu edges", p->hist.n,
		         history_versions(&p->hist), p->hist.dir, ne);
	}
	return p;
}

void push_start(struct push *p)
{
	deliver_start(p->deliver);
}

void push_set_edges(struct push *p, const struct origin_config *cfg)
{
	deliver_configure(p->deliver, cfg);
}

void push_free(struct push *p)
{
	if (!p)
		return;
	deliver_free(p->deliver); /* stops the reconciliation thread first */
	history_free(&p->hist);
	sodium_memzero(p->sk, sizeof p->sk);
	pthread_mutex_destroy(&p->op_lock);
	pthread_mutex_destroy(&p->state_lock);
	free(p);
}
