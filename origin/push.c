/* push.c -- sign script bundles, keep their history, push them to the edges */
#include "origin/push.h"
#include "common/bundle.h"
#include "common/daemon.h"
#include "common/fanout.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------- state ---------- */

struct ver {
	unsigned long long version;
	bool del;                      /* tombstone (unpush) */
	long long created;
	unsigned long long rollback_of; /* version whose content this re-signs, 0 if none */
	char digest[17];               /* of the signed bundle bytes */
};

struct hist {
	char *name;
	struct ver *v;                 /* ascending versions */
	size_t n, cap;
	char *env;                     /* current (last) envelope, as sent to edges */
	size_t envlen;
};

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

struct push {
	/* op_lock serialises operations that talk to edges (push, rollback,
	 * unpush, a reconciliation round) so versions and sends never interleave.
	 * state_lock guards the in-memory index and edge states and is only held
	 * briefly, so GET /bundles and /healthz never wait for an edge. */
	pthread_mutex_t op_lock;
	pthread_mutex_t state_lock;
	pthread_cond_t wake;
	bool stop, started;
	pthread_t thread;

	uint8_t sk[BUNDLE_SK_LEN];
	uint8_t pk[BUNDLE_PK_LEN];
	char *dir;                     /* <state_dir>/bundles */
	char *secret;                  /* control secret sent to edges; may be NULL */
	int timeout_ms, retry_ms, retry_rejected_ms;

	struct hist *h;
	size_t nh;
	struct pedge *e;
	size_t ne;

	atomic_ulong n_activated, n_rejected, n_unreachable, n_rounds;
};

/* ---------- helpers ---------- */

static int mkdir_p(const char *path, char *err, size_t errlen)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			goto fail;
		*p = '/';
	}
	if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "cannot create %.200s: %s", tmp, strerror(errno));
	return -1;
}

/* Writes data to path through a temporary file, fsync and rename, then syncs
 * the directory: after a crash the file is either absent or complete. */
static int write_atomic(const char *dir, const char *name, const char *data, size_t len, char *err,
                        size_t errlen)
{
	char *path = xasprintf("%s/%s", dir, name);
	char *tmp = xasprintf("%s/.%s.tmp", dir, name);
	int rc = -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		goto fail;
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			goto fail;
		}
		off += (size_t)w;
	}
	if (fsync(fd) < 0) {
		close(fd);
		goto fail;
	}
	close(fd);
	if (rename(tmp, path) < 0)
		goto fail;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	rc = 0;
	goto out;
fail:
	snprintf(err, errlen, "%s: %s", path, strerror(errno ? errno : EIO));
	unlink(tmp);
out:
	free(path);
	free(tmp);
	return rc;
}

static char *read_all(const char *path, size_t max, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct buf b = BUF_INIT;
	char chunk[16384];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (b.len + n > max) {
			buf_free(&b);
			fclose(f);
			return NULL;
		}
		buf_append(&b, chunk, n);
	}
	fclose(f);
	*len = b.len;
	return buf_steal(&b);
}

/* Bundle names become directory names: bundle_validate allows
 * [A-Za-z0-9._-]; refuse a leading dot on top so "." and ".." never occur. */
static bool name_ok(const char *name)
{
	if (!name || !name[0] || name[0] == '.' || strlen(name) > BUNDLE_MAX_NAME)
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '.' || *p == '_' || *p == '-'))
			return false;
	return true;
}

static struct hist *hist_find(struct push *p, const char *name)
{
	for (size_t i = 0; i < p->nh; i++)
		if (!strcmp(p->h[i].name, name))
			return &p->h[i];
	return NULL;
}

static struct hist *hist_get(struct push *p, const char *name)
{
	struct hist *h = hist_find(p, name);
	if (h)
		return h;
	p->h = xrealloc(p->h, (p->nh + 1) * sizeof *p->h);
	h = &p->h[p->nh++];
	memset(h, 0, sizeof *h);
	h->name = xstrdup(name);
	return h;
}

static int cmp_ver(const void *a, const void *b)
{
	unsigned long long x = ((const struct ver *)a)->version, y = ((const struct ver *)b)->version;
	return x < y ? -1 : x > y;
}

static void hist_add(struct hist *h, const struct ver *v)
{
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 8;
		h->v = xrealloc(h->v, h->cap * sizeof *h->v);
	}
	h->v[h->n++] = *v;
	qsort(h->v, h->n, sizeof *h->v, cmp_ver);
}

static unsigned long long hist_current(const struct hist *h)
{
	return h && h->n ? h->v[h->n - 1].version : 0;
}

static char *ver_path(const struct push *p, const char *name, unsigned long long v, const char *ext)
{
	return xasprintf("%s/%s/%020llu.%s", p->dir, name, v, ext);
}

static char *meta_json(const char *name, const struct ver *v)
{
	struct buf b = BUF_INIT;
	buf_puts(&b, "{\"name\":");
	buf_json_str(&b, name);
	buf_printf(&b, ",\"version\":%llu,\"op\":\"%s\",\"created\":%lld,\"digest\":\"%s\",\"rollback_of\":%llu}\n",
	           v->version, v->del ? "delete" : "activate", v->created, v->digest, v->rollback_of);
	return buf_steal(&b);
}

/* ---------- loading the history ---------- */

static int load_name(struct push *p, const char *name)
{
	char *dir = xasprintf("%s/%s", p->dir, name);
	DIR *d = opendir(dir);
	free(dir);
	if (!d)
		return -1;
	struct dirent *de;
	struct hist *h = NULL;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l != 25 || strcmp(de->d_name + 20, ".meta") != 0)
			continue;
		char *path = xasprintf("%s/%s/%s", p->dir, name, de->d_name);
		json_t *m = json_load_file(path, 0, NULL);
		json_t *jv = json_object_get(m, "version");
		if (!json_is_integer(jv) || json_integer_value(jv) < 1) {
			log_warn("push", "%s: unreadable metadata, ignored", path);
			free(path);
			json_decref(m);
			continue;
		}
		struct ver v;
		memset(&v, 0, sizeof v);
		v.version = (unsigned long long)json_integer_value(jv);
		const char *op = json_string_value(json_object_get(m, "op"));
		v.del = op && !strcmp(op, "delete");
		v.created = json_integer_value(json_object_get(m, "created"));
		v.rollback_of = (unsigned long long)json_integer_value(json_object_get(m, "rollback_of"));
		const char *dg = json_string_value(json_object_get(m, "digest"));
		snprintf(v.digest, sizeof v.digest, "%s", dg ? dg : "");
		if (!h)
			h = hist_get(p, name);
		hist_add(h, &v);
		json_decref(m);
		free(path);
	}
	closedir(d);
	if (!h)
		return 0;
	/* The newest version whose envelope is readable and carries our signature
	 * is the current one; anything newer that is damaged is dropped. */
	while (h->n) {
		char *path = ver_path(p, name, h->v[h->n - 1].version, "env");
		size_t len = 0;
		char *env = read_all(path, BUNDLE_MAX_ENVELOPE, &len);
		char *bytes = NULL;
		size_t blen;
		char why[256];
		if (env && bundle_verify(env, len, p->pk, &bytes, &blen, why, sizeof why) == 0) {
			free(bytes);
			free(path);
			h->env = env;
			h->envlen = len;
			return 0;
		}
		log_warn("push", "%s: missing or not signed by our key; version ignored", path);
		free(env);
		free(path);
		h->n--;
	}
	return 0;
}

static int load_history(struct push *p)
{
	DIR *d = opendir(p->dir);
	if (!d)
		return -1;
	struct dirent *de;
	while ((de = readdir(d)))
		if (name_ok(de->d_name))
			load_name(p, de->d_name);
	closedir(d);
	/* Names whose every version was dropped leave an empty history: remove. */
	size_t k = 0;
	for (size_t i = 0; i < p->nh; i++) {
		if (p->h[i].n)
			p->h[k++] = p->h[i];
		else {
			free(p->h[i].name);
			free(p->h[i].v);
		}
	}
	p->nh = k;
	return 0;
}

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

enum result { R_ACTIVATED, R_REJECTED, R_UNREACHABLE };
static const char *const result_names[] = { "activated", "rejected", "unreachable" };

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

struct send {
	size_t edge;          /* index into p->e */
	bool del;             /* a tombstone (for the log) */
	char *name;
	unsigned long long version;
	char *env;            /* copy of the envelope */
	size_t envlen;
};

/* Sends envelopes (one request each) in parallel and records the outcome on
 * each edge.  Called with op_lock held.  If out is not NULL, appends the
 * per-edge result objects as a JSON array and counts them in cnt[3]. */
static void send_all(struct push *p, struct send *s, size_t n, struct buf *out, unsigned cnt[3])
{
	struct fanout_req *reqs = xcalloc(n + 1, sizeof *reqs);
	pthread_mutex_lock(&p->state_lock);
	for (size_t i = 0; i < n; i++) {
		reqs[i].method = "POST";
		reqs[i].url = fanout_url(p->e[s[i].edge].url, "/.minicdn/scripts");
		reqs[i].body = s[i].env;
		reqs[i].body_len = s[i].envlen;
		reqs[i].auth = true;
	}
	pthread_mutex_unlock(&p->state_lock);
	fanout_run(reqs, n, p->timeout_ms, p->secret);

	if (out)
		buf_puts(out, "[");
	pthread_mutex_lock(&p->state_lock);
	for (size_t i = 0; i < n; i++) {
		char reason[192];
		enum result r = classify(&reqs[i], reason, sizeof reason);
		struct pedge *e = &p->e[s[i].edge];
		switch (r) {
		case R_ACTIVATED:
			p->n_activated++;
			e->reachable = true;
			e->last_ok_ms = daemon_wall_ms();
			e->err[0] = '\0';
			log_info("push", "%s v%llu -> %s: %s", s[i].name, s[i].version, e->name,
			         s[i].del ? "removed" : "activated");
			break;
		case R_REJECTED:
			p->n_rejected++;
			e->reachable = true;
			e->last_ok_ms = daemon_wall_ms();
			edge_mark_rejected(e, s[i].name, s[i].version, p->retry_rejected_ms);
			snprintf(e->err, sizeof e->err, "%.40s v%llu rejected: %.120s", s[i].name, s[i].version, reason);
			log_warn("push", "%s v%llu -> %s: rejected (%s)", s[i].name, s[i].version, e->name, reason);
			break;
		case R_UNREACHABLE:
			p->n_unreachable++;
			e->reachable = false;
			e->synced = false;
			snprintf(e->err, sizeof e->err, "%s", reason);
			log_warn("push", "%s v%llu -> %s: unreachable (%s), will retry", s[i].name, s[i].version,
			         e->name, reason);
			break;
		}
		if (out) {
			buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
			buf_json_str(out, e->name);
			buf_puts(out, ",\"url\":");
			buf_json_str(out, e->url);
			buf_printf(out, ",\"result\":\"%s\",\"http_status\":%ld", result_names[r], reqs[i].status);
			if (reason[0]) {
				buf_puts(out, ",\"reason\":");
				buf_json_str(out, reason);
			}
			buf_puts(out, "}");
			cnt[r]++;
		}
	}
	pthread_mutex_unlock(&p->state_lock);
	if (out)
		buf_puts(out, "]");
	for (size_t i = 0; i < n; i++)
		fanout_req_clear(&reqs[i]);
	free(reqs);
}

/* One reconciliation round (op_lock held): list every edge's scripts, send
 * what each lacks.  An edge is synced when it answered and holds the current
 * version of every bundle (or refused that exact version before). */
static void reconcile(struct push *p)
{
	pthread_mutex_lock(&p->state_lock);
	size_t ne = p->ne, nh = p->nh;
	if (ne == 0 || nh == 0) {
		for (size_t i = 0; i < ne; i++)
			p->e[i].synced = true;
		pthread_mutex_unlock(&p->state_lock);
		return;
	}
	struct fanout_req *reqs = xcalloc(ne, sizeof *reqs);
	for (size_t i = 0; i < ne; i++) {
		reqs[i].method = "GET";
		reqs[i].url = fanout_url(p->e[i].url, "/.minicdn/scripts");
		reqs[i].auth = true;
	}
	pthread_mutex_unlock(&p->state_lock);
	fanout_run(reqs, ne, p->timeout_ms, p->secret);
	p->n_rounds++;

	struct send *s = NULL;
	size_t ns = 0;
	pthread_mutex_lock(&p->state_lock);
	for (size_t i = 0; i < ne; i++) {
		struct pedge *e = &p->e[i];
		json_t *listing = NULL;
		if (reqs[i].status == 200)
			listing = json_loadb(reqs[i].resp.data ? reqs[i].resp.data : "", reqs[i].resp.len, 0, NULL);
		if (!listing) {
			char reason[192];
			if (reqs[i].status == 200)
				snprintf(reason, sizeof reason, "scripts listing is not JSON");
			else
				classify(&reqs[i], reason, sizeof reason);
			if (e->reachable || strcmp(e->err, reason))
				log_warn("push", "edge %s: cannot list scripts: %s", e->name, reason);
			e->reachable = false;
			e->synced = false;
			snprintf(e->err, sizeof e->err, "%s", reason);
			continue;
		}
		if (!e->reachable) {
			/* Back after an outage: possibly reconfigured, so earlier
			 * refusals no longer say anything. */
			for (size_t j = 0; j < e->nrej; j++)
				e->rej[j].until_ms = 0;
		}
		e->reachable = true;
		e->last_ok_ms = daemon_wall_ms();
		bool behind = false;
		for (size_t k = 0; k < p->nh; k++) {
			const struct hist *h = &p->h[k];
			const struct ver *cur = &h->v[h->n - 1];
			unsigned long long have = listed_version(listing, h->name);
			/* A tombstone only matters to an edge that still lists the bundle. */
			bool need = cur->del ? (have && have < cur->version) : have < cur->version;
			if (!need)
				continue;
			behind = true; /* also when it refused this version: it is not in sync */
			if (edge_rejected(e, h->name, cur->version))
				continue;
			s = xrealloc(s, (ns + 1) * sizeof *s);
			s[ns].edge = i;
			s[ns].name = xstrdup(h->name);
			s[ns].version = cur->version;
			s[ns].env = xstrndup(h->env, h->envlen);
			s[ns].envlen = h->envlen;
			s[ns].del = cur->del;
			ns++;
		}
		json_decref(listing);
		if (!behind) {
			if (!e->synced)
				log_info("push", "edge %s is in sync", e->name);
			e->synced = true;
			e->err[0] = '\0';
		} else {
			e->synced = false;
		}
	}
	pthread_mutex_unlock(&p->state_lock);

	if (ns) {
		send_all(p, s, ns, NULL, NULL);
		/* Whoever activated everything it was sent is in sync now. */
		pthread_mutex_lock(&p->state_lock);
		for (size_t i = 0; i < ne; i++) {
			bool all = p->e[i].reachable;
			bool any = false;
			for (size_t j = 0; j < ns; j++)
				if (s[j].edge == i) {
					any = true;
					if (p->e[i].err[0])
						all = false;
				}
			if (any && all)
				p->e[i].synced = true;
		}
		pthread_mutex_unlock(&p->state_lock);
	}
	for (size_t j = 0; j < ns; j++) {
		free(s[j].name);
		free(s[j].env);
	}
	free(s);
	for (size_t i = 0; i < ne; i++)
		fanout_req_clear(&reqs[i]);
	free(reqs);
}

static void *retry_main(void *arg)
{
	struct push *p = arg;
	pthread_mutex_lock(&p->state_lock);
	while (!p->stop) {
		pthread_mutex_unlock(&p->state_lock);
		pthread_mutex_lock(&p->op_lock);
		reconcile(p);
		pthread_mutex_unlock(&p->op_lock);
		pthread_mutex_lock(&p->state_lock);
		if (p->stop)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		long long ns = ts.tv_nsec + (long long)(p->retry_ms % 1000) * 1000000LL;
		ts.tv_sec += p->retry_ms / 1000 + ns / 1000000000LL;
		ts.tv_nsec = ns % 1000000000LL;
		pthread_cond_timedwait(&p->wake, &p->state_lock, &ts);
	}
	pthread_mutex_unlock(&p->state_lock);
	return NULL;
}

/* ---------- operations ---------- */

/* Signs b under version v, stores it, makes it current and pushes it to every
 * edge.  op_lock held.  Writes the result JSON to out; returns the status. */
static unsigned publish(struct push *p, struct bundle *b, unsigned long long rollback_of, struct buf *out)
{
	char err[256];
	size_t len, envlen;
	char *bytes = bundle_serialize(b, &len, err, sizeof err);
	if (!bytes) {
		buf_puts(out, "{\"error\":");
		buf_json_str(out, err);
		buf_puts(out, "}\n");
		return 400;
	}
	char *env = bundle_sign(bytes, len, p->sk, &envlen);
	struct ver v;
	memset(&v, 0, sizeof v);
	v.version = b->version;
	v.del = b->op == BUNDLE_OP_DELETE;
	v.created = b->created;
	v.rollback_of = rollback_of;
	bundle_digest_hex(bytes, len, v.digest);
	free(bytes);

	char *dir = xasprintf("%s/%s", p->dir, b->name);
	char fname[64];
	char *meta = meta_json(b->name, &v);
	int ok = mkdir_p(dir, err, sizeof err);
	if (ok == 0) {
		snprintf(fname, sizeof fname, "%020llu.env", v.version);
		ok = write_atomic(dir, fname, env, envlen, err, sizeof err);
	}
	if (ok == 0) {
		/* .meta last: it is what marks the version as existing on restart. */
		snprintf(fname, sizeof fname, "%020llu.meta", v.version);
		ok = write_atomic(dir, fname, meta, strlen(meta), err, sizeof err);
	}
	free(meta);
	free(dir);
	if (ok < 0) {
		log_error("push", "cannot store %s v%llu: %s", b->name, v.version, err);
		free(env);
		buf_puts(out, "{\"error\":");
		buf_json_str(out, err);
		buf_puts(out, "}\n");
		return 500;
	}

	pthread_mutex_lock(&p->state_lock);
	struct hist *h = hist_get(p, b->name);
	hist_add(h, &v);
	free(h->env);
	h->env = env;
	h->envlen = envlen;
	size_t ne = p->ne;
	struct send *s = xcalloc(ne + 1, sizeof *s);
	for (size_t i = 0; i < ne; i++) {
		s[i].edge = i;
		s[i].name = b->name;
		s[i].version = v.version;
		s[i].env = env;
		s[i].envlen = envlen;
		s[i].del = v.del;
		p->e[i].synced = false;
	}
	pthread_mutex_unlock(&p->state_lock);
	log_info("push", "%s v%llu (%s%s) signed, digest %s; pushing to %zu edges", b->name, v.version,
	         v.del ? "delete" : "activate", rollback_of ? ", rollback" : "", v.digest, ne);

	unsigned cnt[3] = { 0, 0, 0 };
	buf_puts(out, "{\"name\":");
	buf_json_str(out, b->name);
	buf_printf(out, ",\"version\":%llu,\"op\":\"%s\",\"digest\":\"%s\"", v.version,
	           v.del ? "delete" : "activate", v.digest);
	if (rollback_of)
		buf_printf(out, ",\"rollback_of\":%llu", rollback_of);
	buf_puts(out, ",\"edges\":");
	/* send_all only reads the envelope; h->env cannot be replaced meanwhile
	 * because every writer holds op_lock, which we hold. */
	send_all(p, s, ne, out, cnt);
	buf_printf(out, ",\"activated\":%u,\"rejected\":%u,\"unreachable\":%u}\n", cnt[R_ACTIVATED],
	           cnt[R_REJECTED], cnt[R_UNREACHABLE]);
	pthread_mutex_lock(&p->state_lock);
	for (size_t i = 0; i < ne; i++)
		if (!p->e[i].err[0])
			p->e[i].synced = true; /* it took this version (earlier ones were in sync or reconciled) */
	pthread_mutex_unlock(&p->state_lock);
	free(s);
	return 200;
}

static json_t *parse_body(const char *body, size_t len, struct buf *out, unsigned *status)
{
	json_error_t je;
	json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(o)) {
		json_decref(o);
		buf_puts(out, "{\"error\":");
		buf_json_str(out, o ? "request body must be a JSON object" : je.text);
		buf_puts(out, "}\n");
		*status = 400;
		return NULL;
	}
	return o;
}

static unsigned error_out(struct buf *out, unsigned status, const char *msg)
{
	buf_puts(out, "{\"error\":");
	buf_json_str(out, msg);
	buf_puts(out, "}\n");
	return status;
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
	if (!name_ok(b->name)) {
		status = error_out(out, 400, "bundle name must not start with '.'");
		goto done;
	}
	if (check_compiles(b, err, sizeof err) < 0) {
		status = error_out(out, 400, err);
		goto done;
	}
	pthread_mutex_lock(&p->op_lock);
	pthread_mutex_lock(&p->state_lock);
	unsigned long long cur = hist_current(hist_find(p, b->name));
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
	return n && name_ok(n) ? n : NULL;
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
	struct hist *h = hist_find(p, name);
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
		cur = hist_current(h);
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
	char *path = ver_path(p, name, target, "env");
	size_t envlen = 0;
	env = read_all(path, BUNDLE_MAX_ENVELOPE, &envlen);
	free(path);
	if (!env || !(b = bundle_open(env, envlen, p->pk, NULL, NULL, err, sizeof err))) {
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
	struct hist *h = hist_find(p, name);
	unsigned long long cur = hist_current(h);
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
	for (size_t i = 0; i < p->nh; i++) {
		const struct hist *h = &p->h[i];
		const struct ver *c = &h->v[h->n - 1];
		buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
		buf_json_str(out, h->name);
		buf_printf(out, ",\"version\":%llu,\"op\":\"%s\",\"active\":%s,\"digest\":\"%s\",\"history\":[",
		           c->version, c->del ? "delete" : "activate", c->del ? "false" : "true", c->digest);
		for (size_t k = 0; k < h->n; k++) {
			const struct ver *v = &h->v[k];
			buf_printf(out, "%s{\"version\":%llu,\"op\":\"%s\",\"created\":%lld,\"digest\":\"%s\"",
			           k ? "," : "", v->version, v->del ? "delete" : "activate", v->created, v->digest);
			if (v->rollback_of)
				buf_printf(out, ",\"rollback_of\":%llu", v->rollback_of);
			buf_puts(out, "}");
		}
		buf_puts(out, "]}");
	}
	buf_puts(out, "],\"edges\":[");
	for (size_t i = 0; i < p->ne; i++) {
		const struct pedge *e = &p->e[i];
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
	size_t behind = 0, active = 0;
	for (size_t i = 0; i < p->ne; i++)
		behind += !p->e[i].synced;
	for (size_t i = 0; i < p->nh; i++)
		active += !p->h[i].v[p->h[i].n - 1].del;
	buf_printf(b, ",\"scripts\":{\"bundles\":%zu,\"active\":%zu,\"edges\":%zu,\"edges_behind\":%zu}", p->nh,
	           active, p->ne, behind);
	pthread_mutex_unlock(&p->state_lock);
}

void push_metrics(struct push *p, struct buf *b)
{
	pthread_mutex_lock(&p->state_lock);
	size_t behind = 0;
	for (size_t i = 0; i < p->ne; i++)
		behind += !p->e[i].synced;
	size_t nh = p->nh;
	pthread_mutex_unlock(&p->state_lock);
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
	           atomic_load(&p->n_activated), atomic_load(&p->n_rejected), atomic_load(&p->n_unreachable), nh,
	           behind, atomic_load(&p->n_rounds));
}

/* ---------- lifecycle ---------- */

struct push *push_new(const struct origin_config *cfg, bool dry, char *err, size_t errlen)
{
	struct push *p = xcalloc(1, sizeof *p);
	char why[256];
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialise");
		free(p);
		return NULL;
	}
	if (bundle_key_read(cfg->push.secret_key, p->sk, sizeof p->sk, why, sizeof why) < 0) {
		snprintf(err, errlen, "push.secret_key: %s", why);
		free(p);
		return NULL;
	}
	bundle_sk_to_pk(p->sk, p->pk);
	p->dir = xasprintf("%s/bundles", cfg->push.state_dir);
	p->secret = cfg->n_control_secret ? xstrdup(cfg->control_secret[0]) : NULL;
	p->timeout_ms = cfg->push.timeout_ms;
	p->retry_ms = cfg->push.retry_ms;
	p->retry_rejected_ms = cfg->push.retry_rejected_ms;
	pthread_mutex_init(&p->op_lock, NULL);
	pthread_mutex_init(&p->state_lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	p->e = edges_from(cfg, &p->ne);
	if (!dry) {
		if (mkdir_p(p->dir, why, sizeof why) < 0) {
			snprintf(err, errlen, "push.state_dir: %s", why);
			push_free(p);
			return NULL;
		}
		load_history(p);
		size_t versions = 0;
		for (size_t i = 0; i < p->nh; i++)
			versions += p->h[i].n;
		log_info("push", "%zu bundles (%zu versions) in %s; %zu edges", p->nh, versions, p->dir, p->ne);
	}
	return p;
}

void push_start(struct push *p)
{
	if (pthread_create(&p->thread, NULL, retry_main, p) == 0)
		p->started = true;
	else
		log_error("push", "cannot start the reconciliation thread");
}

void push_set_edges(struct push *p, const struct origin_config *cfg)
{
	pthread_mutex_lock(&p->op_lock);
	pthread_mutex_lock(&p->state_lock);
	edges_free(p->e, p->ne);
	p->e = edges_from(cfg, &p->ne);
	p->timeout_ms = cfg->push.timeout_ms;
	p->retry_ms = cfg->push.retry_ms;
	p->retry_rejected_ms = cfg->push.retry_rejected_ms;
	free(p->secret);
	p->secret = cfg->n_control_secret ? xstrdup(cfg->control_secret[0]) : NULL;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->state_lock);
	pthread_mutex_unlock(&p->op_lock);
}

void push_free(struct push *p)
{
	if (!p)
		return;
	if (p->started) {
		pthread_mutex_lock(&p->state_lock);
		p->stop = true;
		pthread_cond_signal(&p->wake);
		pthread_mutex_unlock(&p->state_lock);
		pthread_join(p->thread, NULL);
	}
	for (size_t i = 0; i < p->nh; i++) {
		free(p->h[i].name);
		free(p->h[i].v);
		free(p->h[i].env);
	}
	free(p->h);
	edges_free(p->e, p->ne);
	sodium_memzero(p->sk, sizeof p->sk);
	free(p->dir);
	free(p->secret);
	pthread_mutex_destroy(&p->op_lock);
	pthread_mutex_destroy(&p->state_lock);
	pthread_cond_destroy(&p->wake);
	free(p);
}
