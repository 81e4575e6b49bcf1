/* script.c -- edge scripts: receive, verify, store, activate and run bundles */
#include "edge/script/script.h"
#include "edge/script/lua_kv.h"
#include "edge/script/lua_vm.h"
#include "common/addr.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <errno.h>
#include <jansson.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* ---------- configuration ---------- */

#define K(f) offsetof(struct script_config, f)
const struct cfg_key script_cfg_keys[] = {
	{ .name = "enabled", .type = CFG_BOOL, .offset = K(enabled), .def = "true",
	  .help = "accept and run pushed Lua bundles" },
	{ .name = "pubkey", .type = CFG_STRLIST, .offset = K(pubkey), .count_offset = K(npubkey),
	  .flags = CFG_PATH,
	  .help = "origin's Ed25519 public key file, or a list of them while the origin's key is "
	          "rotated: a bundle signed by any is accepted (bundles are refused without one)" },
	{ .name = "path", .type = CFG_STRING, .offset = K(path), .flags = CFG_PATH,
	  .help = "LMDB directory for bundles and the script KV store" },
	{ .name = "map_size", .type = CFG_SIZE, .offset = K(map_size), .def = "64M", .min = 1 << 20,
	  .max = 1e12, .help = "LMDB map size of the script store" },
	{ .name = "memory", .type = CFG_SIZE, .offset = K(memory), .def = "32M", .min = 1 << 20,
	  .max = 4e9, .help = "Lua memory cap per worker state" },
	{ .name = "instructions", .type = CFG_INT, .offset = K(instructions), .def = "10000",
	  .min = 10, .max = 2000000000, .help = "instruction budget per request, in thousands" },
	{ .name = "time", .type = CFG_MS, .offset = K(time_ms), .def = "1s", .min = 1, .max = 600000,
	  .help = "wall-clock budget per request" },
	{ .name = "fetch_timeout", .type = CFG_MS, .offset = K(fetch_timeout_ms), .def = "2s", .min = 1,
	  .max = 600000, .help = "cap on one subrequest" },
	{ .name = "max_fetches", .type = CFG_INT, .offset = K(max_fetches), .def = "4", .min = 0,
	  .max = 100, .help = "subrequests per request" },
	{ .name = "fetch_max_body", .type = CFG_SIZE, .offset = K(fetch_max_body), .def = "1M",
	  .min = 1, .max = 1e9, .help = "largest subrequest body" },
	{ .name = "regions", .type = CFG_STRING, .offset = K(regions), .flags = CFG_PATH,
	  .help = "\"CIDR REGION\" file giving req.region of clients" },
	{ .name = "default_region", .type = CFG_STRING, .offset = K(default_region), .def = "",
	  .help = "req.region when no prefix matches (default: the edge's region)" },
	CFG_END,
};
#undef K

/* ---------- state ---------- */

struct snap {
	atomic_int refs;
	uint64_t gen;
	struct script_ver **v; /* sorted by name; each holds a reference */
	size_t n;
	uint64_t *seqs;
};

static struct {
	int ready;
	struct script_config cfg;
	uint8_t pk[SCRIPT_MAX_KEYS][BUNDLE_PK_LEN];
	size_t npk; /* 0: no key configured, pushes are refused */
	MDB_env *env;
	MDB_dbi dbi_bundles; /* name -> signed envelope of the active version */
	MDB_dbi dbi_seen;    /* name -> highest version accepted (activate or delete), decimal */
	MDB_dbi dbi_prev;    /* name -> envelope of the version before the active one */
	pthread_mutex_t snap_mu;
	pthread_mutex_t push_mu; /* one push/delete at a time */
	struct snap *snap;
	atomic_ullong pub_gen;   /* generation of S.snap, read without the lock */
	pthread_key_t tl_key;    /* each worker thread's cached snapshot reference */
	int tl_key_ok;
	atomic_ullong seq;
	uint64_t gen;
	struct script_stats *stats;
	pthread_mutex_t stats_mu;
	char *edge_region;
	struct { struct cidr c; char *region; } *regions;
	size_t nregions;
	struct lua_vm_limits lim;
	struct lua_vm_site site;
} S = { .snap_mu = PTHREAD_MUTEX_INITIALIZER, .push_mu = PTHREAD_MUTEX_INITIALIZER,
	    .stats_mu = PTHREAD_MUTEX_INITIALIZER };

void script_resp_free(struct script_resp *r)
{
	free(r->headers);
	free(r->body);
	r->headers = NULL;
	r->nheaders = r->hmax = 0;
	r->hstr = r->hend = NULL;
	r->body = NULL;
	r->body_len = 0;
}

void script_resp_headers_init(struct script_resp *r, size_t nmax, size_t bytes)
{
	size_t slots = nmax * sizeof *r->headers;
	size_t strings = bytes + 2 * nmax; /* with the terminators */
	r->headers = xmalloc(slots + strings + 1);
	r->nheaders = 0;
	r->hmax = nmax;
	r->hstr = (char *)r->headers + slots;
	r->hend = r->hstr + strings;
}

int script_resp_header_add(struct script_resp *r, const char *name, size_t nl, const char *val,
                           size_t vl)
{
	if (r->nheaders >= r->hmax || (size_t)(r->hend - r->hstr) < nl + vl + 2)
		return -1;
	struct script_hdr *h = &r->headers[r->nheaders++];
	h->name = memcpy(r->hstr, name, nl);
	h->name[nl] = '\0';
	h->value = memcpy(h->name + nl + 1, val, vl);
	h->value[vl] = '\0';
	r->hstr = h->value + vl + 1;
	return 0;
}

static struct script_stats *stats_for(const char *name)
{
	pthread_mutex_lock(&S.stats_mu);
	struct script_stats *s = S.stats;
	while (s && strcmp(s->name, name) != 0)
		s = s->next;
	if (!s) {
		/* aligned: each counter slot owns a cache line */
		size_t sz = (sizeof *s + 63) & ~(size_t)63;
		s = aligned_alloc(64, sz);
		if (!s)
			abort();
		memset(s, 0, sz);
		snprintf(s->name, sizeof s->name, "%s", name);
		s->next = S.stats;
		S.stats = s;
	}
	pthread_mutex_unlock(&S.stats_mu);
	return s;
}

static void ver_free(struct script_ver *v)
{
	bundle_free(v->b);
	free(v->raw);
	free(v->env);
	free(v);
}

void script_ver_release(struct script_ver *v)
{
	if (v && atomic_fetch_sub(&v->refs, 1) == 1)
		ver_free(v);
}

static void snap_release(struct snap *s)
{
	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	for (size_t i = 0; i < s->n; i++)
		script_ver_release(s->v[i]);
	free(s->v);
	free(s->seqs);
	free(s);
}

static struct snap *snap_acquire(void)
{
	pthread_mutex_lock(&S.snap_mu);
	struct snap *s = S.snap;
	if (s)
		atomic_fetch_add(&s->refs, 1);
	pthread_mutex_unlock(&S.snap_mu);
	return s;
}

/* New snapshot = current with name replaced by v (or removed if v is NULL).
 * Takes the caller's reference to v.  Publishes it; the old one is released. */
static void snap_publish(const char *name, struct script_ver *v)
{
	struct snap *old = snap_acquire();
	struct snap *s = xcalloc(1, sizeof *s);
	size_t cap = (old ? old->n : 0) + 1;
	s->v = xcalloc(cap, sizeof *s->v);
	s->seqs = xcalloc(cap, sizeof *s->seqs);
	int placed = 0;
	for (size_t i = 0; old && i < old->n; i++) {
		int c = strcmp(old->v[i]->b->name, name);
		if (c > 0 && v && !placed) {
			s->v[s->n++] = v;
			placed = 1;
		}
		if (c == 0)
			continue;
		atomic_fetch_add(&old->v[i]->refs, 1);
		s->v[s->n++] = old->v[i];
	}
	if (v && !placed)
		s->v[s->n++] = v;
	for (size_t i = 0; i < s->n; i++)
		s->seqs[i] = s->v[i]->seq;
	atomic_init(&s->refs, 1);
	pthread_mutex_lock(&S.snap_mu);
	s->gen = ++S.gen;
	struct snap *prev = S.snap;
	S.snap = s;
	atomic_store(&S.pub_gen, s->gen);
	pthread_mutex_unlock(&S.snap_mu);
	snap_release(prev); /* the registry's reference */
	snap_release(old);  /* ours */
}

/* Worker threads keep a reference to the snapshot they last used and take
 * the lock only when a push changed it: the hot path is one atomic load, and
 * no cache line is written by every request of every thread. */
struct tl_snap {
	struct snap *s;
	uint64_t gen;
};

static void tl_snap_free(void *p)
{
	struct tl_snap *t = p;
	snap_release(t->s);
	free(t);
}

/* The calling thread's current snapshot (borrowed, see snap_thread_done). */
static struct snap *snap_thread(void)
{
	if (!S.tl_key_ok)
		return snap_acquire();
	struct tl_snap *t = pthread_getspecific(S.tl_key);
	if (!t) {
		t = xcalloc(1, sizeof *t);
		pthread_setspecific(S.tl_key, t);
	}
	if (!t->s || t->gen != atomic_load_explicit(&S.pub_gen, memory_order_acquire)) {
		snap_release(t->s);
		t->s = snap_acquire();
		t->gen = t->s ? t->s->gen : 0;
	}
	/* Borrowed: the thread's cached reference keeps the snapshot alive, and
	 * only this thread replaces it, at the start of its next request.  No
	 * atomic per request (the counter's cache line would bounce between the
	 * worker threads' cores). */
	return t->s;
}

/* Ends the use of a snap_thread() result. */
static void snap_thread_done(struct snap *s)
{
	if (!S.tl_key_ok)
		snap_release(s);
}

bool script_any(void)
{
	struct snap *s = S.snap; /* racy read is fine: a hint for the fast path */
	return S.ready && s && s->n > 0;
}

struct script_ver *script_active(const char *name)
{
	struct snap *s = snap_acquire();
	struct script_ver *r = NULL;
	for (size_t i = 0; s && i < s->n; i++)
		if (!strcmp(s->v[i]->b->name, name)) {
			r = s->v[i];
			atomic_fetch_add(&r->refs, 1);
		}
	snap_release(s);
	return r;
}

/* ---------- regions ---------- */

static int load_regions(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	char line[512];
	int lineno = 0;
	while (fgets(line, sizeof line, f)) {
		lineno++;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		char pfx[128], region[64];
		if (sscanf(line, "%127s %63s", pfx, region) != 2) {
			if (sscanf(line, "%127s", pfx) == 1) {
				snprintf(err, errlen, "%s:%d: want \"CIDR REGION\"", path, lineno);
				fclose(f);
				return -1;
			}
			continue;
		}
		struct cidr c;
		char why[128];
		if (cidr_parse(pfx, &c, why, sizeof why) < 0) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
			fclose(f);
			return -1;
		}
		S.regions = xrealloc(S.regions, (S.nregions + 1) * sizeof *S.regions);
		S.regions[S.nregions].c = c;
		S.regions[S.nregions].region = xstrdup(region);
		S.nregions++;
	}
	fclose(f);
	return 0;
}

const char *script_region_of(const struct sockaddr *sa)
{
	const char *best = NULL;
	int best_len = -1;
	if (sa) {
		const uint8_t *bytes = NULL;
		int fam = sa->sa_family;
		uint8_t mapped[4];
		if (fam == AF_INET) {
			bytes = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		} else if (fam == AF_INET6) {
			bytes = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
			static const uint8_t v4pfx[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
			if (!memcmp(bytes, v4pfx, 12)) { /* v4-mapped: match the IPv4 map */
				memcpy(mapped, bytes + 12, 4);
				bytes = mapped;
				fam = AF_INET;
			}
		}
		/* Linear: region maps for scripts are small (tens of lines). */
		for (size_t i = 0; bytes && i < S.nregions; i++)
			if (S.regions[i].c.family == fam && S.regions[i].c.prefix_len > best_len &&
			    cidr_contains(&S.regions[i].c, fam, bytes)) {
				best = S.regions[i].region;
				best_len = S.regions[i].c.prefix_len;
			}
	}
	if (best)
		return best;
	return S.cfg.default_region && *S.cfg.default_region ? S.cfg.default_region : S.edge_region;
}

/* ---------- store ---------- */

static int mkdir_p(const char *path)
{
	char tmp[1024];
	snprintf(tmp, sizeof tmp, "%s", path);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	return mkdir(tmp, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

static uint64_t seen_version(MDB_txn *txn, const char *name)
{
	MDB_val k = { strlen(name), (void *)name }, v;
	char num[32];
	if (mdb_get(txn, S.dbi_seen, &k, &v) || v.mv_size >= sizeof num)
		return 0;
	memcpy(num, v.mv_data, v.mv_size);
	num[v.mv_size] = 0;
	return strtoull(num, NULL, 10);
}

/* Verifies, parses and wraps an envelope into a version (refs = 1). */
static struct script_ver *ver_from_envelope(const char *env, size_t envlen, char *err, size_t errlen)
{
	char *raw = NULL;
	size_t rawlen = 0;
	struct bundle *b = bundle_open_any(env, envlen, S.pk, S.npk, &raw, &rawlen, err, errlen);
	if (!b)
		return NULL;
	struct script_ver *v = xcalloc(1, sizeof *v);
	atomic_init(&v->refs, 1);
	v->seq = atomic_fetch_add(&S.seq, 1) + 1;
	v->b = b;
	v->raw = raw;
	v->rawlen = rawlen;
	v->env = xstrndup(env, envlen);
	v->envlen = envlen;
	bundle_digest_hex(raw, rawlen, v->digest);
	v->activated = (long long)time(NULL);
	v->stats = stats_for(b->name);
	return v;
}

/* Compiles v in a throw-away state to check it before activation. */
static int precompile(struct script_ver *v, char *err, size_t errlen)
{
	struct lua_vm *vm = lua_vm_new(&S.lim, &S.site);
	if (!vm) {
		snprintf(err, errlen, "cannot create a Lua state (memory cap too small?)");
		return -1;
	}
	int rc = lua_vm_compile(vm, v, err, errlen);
	lua_vm_free(vm);
	return rc;
}

static int load_active(char *err, size_t errlen)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, val;
	int rc = mdb_txn_begin(S.env, NULL, MDB_RDONLY, &txn);
	if (rc) {
		snprintf(err, errlen, "scripts store: %s", mdb_strerror(rc));
		return -1;
	}
	mdb_cursor_open(txn, S.dbi_bundles, &cur);
	int n = 0;
	while (!mdb_cursor_get(cur, &k, &val, n ? MDB_NEXT : MDB_FIRST)) {
		n++;
		char why[512];
		/* Re-verified on every start: a tampered store file is not trusted. */
		struct script_ver *v = ver_from_envelope(val.mv_data, val.mv_size, why, sizeof why);
		if (!v || precompile(v, why, sizeof why) < 0) {
			log_error("script", "stored bundle '%.*s' not loaded: %s", (int)k.mv_size,
			          (char *)k.mv_data, why);
			if (v)
				script_ver_release(v);
			continue;
		}
		log_info("script", "loaded %s v%llu (%s) from the store", v->b->name,
		         (unsigned long long)v->b->version, v->digest);
		snap_publish(v->b->name, v);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return 0;
}

int script_init(const struct script_config *cfg, const char *edge_name, const char *edge_region,
                const char *origin, char *err, size_t errlen)
{
	int rc;
	MDB_txn *txn = NULL;
	memset(&S.cfg, 0, sizeof S.cfg);
	S.cfg = *cfg;
	S.cfg.pubkey = NULL; /* read into S.pk below, not kept */
	S.cfg.npubkey = 0;
	S.cfg.path = cfg->path ? xstrdup(cfg->path) : NULL;
	S.cfg.regions = cfg->regions ? xstrdup(cfg->regions) : NULL;
	S.cfg.default_region = cfg->default_region ? xstrdup(cfg->default_region) : NULL;
	S.edge_region = xstrdup(edge_region ? edge_region : "");
	S.lim = (struct lua_vm_limits){
		.memory = cfg->memory ? cfg->memory : 32u << 20,
		.instructions = (long long)(cfg->instructions ? cfg->instructions : 10000) * 1000,
		.time_ms = cfg->time_ms ? cfg->time_ms : 1000,
		.fetch_timeout_ms = cfg->fetch_timeout_ms ? cfg->fetch_timeout_ms : 2000,
		.max_fetches = cfg->max_fetches,
		.fetch_max_body = cfg->fetch_max_body ? cfg->fetch_max_body : 1u << 20,
	};
	S.site.edge_name = xstrdup(edge_name ? edge_name : "");
	S.site.edge_region = xstrdup(edge_region ? edge_region : "");
	S.site.origin = xstrdup(origin ? origin : "");
	/* origin may end with '/': paths from scripts start with one */
	size_t ol = strlen(S.site.origin);
	if (ol && S.site.origin[ol - 1] == '/')
		((char *)S.site.origin)[ol - 1] = 0;

	if (cfg->npubkey > SCRIPT_MAX_KEYS) {
		snprintf(err, errlen, "scripts.pubkey: %zu keys, at most %d", cfg->npubkey, SCRIPT_MAX_KEYS);
		goto fail;
	}
	for (size_t i = 0; i < cfg->npubkey; i++)
		if (bundle_key_read(cfg->pubkey[i], S.pk[i], sizeof S.pk[i], err, errlen) < 0)
			goto fail;
	S.npk = cfg->npubkey;
	if (S.cfg.regions && load_regions(S.cfg.regions, err, errlen) < 0)
		goto fail;
	if (!S.cfg.path || !S.cfg.enabled) {
		/* Not configured: the edge runs without scripts; pushes get 503. */
		log_info("script", "edge scripts disabled (%s)", S.cfg.path ? "scripts.enabled = false"
		                                                      : "no scripts.path");
		script_shutdown();
		return 0;
	}
	if (mkdir_p(S.cfg.path) < 0) {
		snprintf(err, errlen, "%s: %s", S.cfg.path, strerror(errno));
		goto fail;
	}
	if ((rc = mdb_env_create(&S.env)) || (rc = mdb_env_set_maxdbs(S.env, 8)) ||
	    (rc = mdb_env_set_mapsize(S.env, cfg->map_size ? cfg->map_size : 64u << 20)) ||
	    (rc = mdb_env_set_maxreaders(S.env, 512)) ||
	    /* NOSYNC: KV writes stay cheap; bundle activations call mdb_env_sync. */
	    (rc = mdb_env_open(S.env, S.cfg.path, MDB_NOSYNC | MDB_NOTLS, 0644))) {
		snprintf(err, errlen, "%s: %s", S.cfg.path, mdb_strerror(rc));
		goto fail;
	}
	if ((rc = mdb_txn_begin(S.env, NULL, 0, &txn)) ||
	    (rc = mdb_dbi_open(txn, "bundles", MDB_CREATE, &S.dbi_bundles)) ||
	    (rc = mdb_dbi_open(txn, "seen", MDB_CREATE, &S.dbi_seen)) ||
	    (rc = mdb_dbi_open(txn, "prev", MDB_CREATE, &S.dbi_prev)) || (rc = mdb_txn_commit(txn))) {
		if (txn && rc)
			mdb_txn_abort(txn);
		snprintf(err, errlen, "%s: %s", S.cfg.path, mdb_strerror(rc));
		goto fail;
	}
	if (kv_init(S.env, err, errlen) < 0)
		goto fail;
	lua_vm_init_threads(&S.lim, &S.site);
	S.tl_key_ok = pthread_key_create(&S.tl_key, tl_snap_free) == 0;
	S.ready = 1;
	if (S.npk && load_active(err, errlen) < 0)
		goto fail;
	else if (!S.npk)
		log_warn("script", "scripts.pubkey not set: pushed bundles will be refused");
	return 0;
fail:
	script_shutdown();
	return -1;
}

void script_shutdown(void)
{
	if (S.ready)
		lua_vm_fini_threads();
	if (S.tl_key_ok) {
		/* The calling thread's cached reference; worker threads released theirs on exit. */
		struct tl_snap *t = pthread_getspecific(S.tl_key);
		if (t)
			tl_snap_free(t);
		pthread_setspecific(S.tl_key, NULL);
		pthread_key_delete(S.tl_key);
		S.tl_key_ok = 0;
	}
	S.ready = 0;
	snap_release(S.snap);
	S.snap = NULL;
	kv_close();
	if (S.env) {
		mdb_env_sync(S.env, 1);
		mdb_env_close(S.env);
	}
	S.env = NULL;
	free(S.cfg.path);
	free(S.cfg.regions);
	free(S.cfg.default_region);
	memset(&S.cfg, 0, sizeof S.cfg);
	free(S.edge_region);
	S.edge_region = NULL;
	for (size_t i = 0; i < S.nregions; i++)
		free(S.regions[i].region);
	free(S.regions);
	S.regions = NULL;
	S.nregions = 0;
	free((char *)S.site.edge_name);
	free((char *)S.site.edge_region);
	free((char *)S.site.origin);
	memset(&S.site, 0, sizeof S.site);
	while (S.stats) {
		struct script_stats *n = S.stats->next;
		free(S.stats);
		S.stats = n;
	}
	S.npk = 0;
}

/* ---------- push / delete ---------- */

static int refuse(struct buf *out, int status, const char *name, const char *why)
{
	log_warn("script", "bundle%s%s refused: %s", name ? " " : "", name ? name : "", why);
	buf_puts(out, "{\"result\":\"rejected\",\"error\":");
	buf_json_str(out, why);
	buf_puts(out, "}\n");
	return status;
}

static int do_push(const char *body, size_t len, const char *want_delete_name, struct buf *out)
{
	char err[1024];
	if (!S.npk)
		return refuse(out, 403, NULL, "no origin public key configured (scripts.pubkey)");
	struct script_ver *v = ver_from_envelope(body, len, err, sizeof err);
	if (!v)
		return refuse(out, strstr(err, "signature") || strstr(err, "unsigned") ? 403 : 400, NULL, err);
	const char *name = v->b->name;
	if (want_delete_name && (v->b->op != BUNDLE_OP_DELETE || strcmp(want_delete_name, name))) {
		script_ver_release(v);
		return refuse(out, 400, want_delete_name, "DELETE needs a signed op \"delete\" bundle for that name");
	}
	pthread_mutex_lock(&S.push_mu);
	MDB_txn *txn = NULL;
	int rc = mdb_txn_begin(S.env, NULL, 0, &txn);
	if (rc) {
		pthread_mutex_unlock(&S.push_mu);
		script_ver_release(v);
		snprintf(err, sizeof err, "store: %s", mdb_strerror(rc));
		return refuse(out, 500, NULL, err);
	}
	uint64_t seen = seen_version(txn, name);
	if (v->b->version <= seen) {
		snprintf(err, sizeof err, "version %llu is not higher than %llu (replay or stale bundle)",
		         (unsigned long long)v->b->version, (unsigned long long)seen);
		goto refused_409;
	}
	if (v->b->op == BUNDLE_OP_ACTIVATE && precompile(v, err, sizeof err) < 0) {
		char why[1100];
		snprintf(why, sizeof why, "does not compile: %.1000s", err);
		snprintf(err, sizeof err, "%.1000s", why);
		mdb_txn_abort(txn);
		pthread_mutex_unlock(&S.push_mu);
		int st = refuse(out, 422, name, err);
		script_ver_release(v);
		return st;
	}
	MDB_val k = { strlen(name), (void *)name }, val, cur;
	char num[32];
	int nl = snprintf(num, sizeof num, "%llu", (unsigned long long)v->b->version);
	MDB_val nv = { (size_t)nl, num };
	rc = mdb_put(txn, S.dbi_seen, &k, &nv, 0);
	if (!rc && !mdb_get(txn, S.dbi_bundles, &k, &cur))
		rc = mdb_put(txn, S.dbi_prev, &k, &cur, 0);
	if (!rc && v->b->op == BUNDLE_OP_ACTIVATE) {
		val = (MDB_val){ v->envlen, v->env };
		rc = mdb_put(txn, S.dbi_bundles, &k, &val, 0);
	} else if (!rc) {
		rc = mdb_del(txn, S.dbi_bundles, &k, NULL);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	if (!rc)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	if (!rc)
		rc = mdb_env_sync(S.env, 1);
	if (rc) {
		pthread_mutex_unlock(&S.push_mu);
		script_ver_release(v);
		snprintf(err, sizeof err, "store: %s", mdb_strerror(rc));
		return refuse(out, 500, name, err);
	}
	uint64_t version = v->b->version;
	char digest[17];
	memcpy(digest, v->digest, sizeof digest);
	char *nm = xstrdup(name);
	int del = v->b->op == BUNDLE_OP_DELETE;
	if (del) {
		snap_publish(nm, NULL);
		script_ver_release(v);
	} else {
		snap_publish(nm, v); /* takes our reference */
	}
	pthread_mutex_unlock(&S.push_mu);
	log_info("script", "%s %s v%llu (%s)", del ? "removed" : "activated", nm,
	         (unsigned long long)version, digest);
	buf_printf(out, "{\"result\":\"%s\",\"name\":", del ? "deleted" : "activated");
	buf_json_str(out, nm);
	buf_printf(out, ",\"version\":%llu,\"digest\":\"%s\"}\n", (unsigned long long)version, digest);
	free(nm);
	return 200;
refused_409:
	mdb_txn_abort(txn);
	pthread_mutex_unlock(&S.push_mu);
	{
		char nm2[BUNDLE_MAX_NAME + 1];
		snprintf(nm2, sizeof nm2, "%s", name);
		script_ver_release(v);
		return refuse(out, 409, nm2, err);
	}
}

static void list_json(struct buf *out)
{
	struct snap *s = snap_acquire();
	MDB_txn *txn = NULL;
	mdb_txn_begin(S.env, NULL, MDB_RDONLY, &txn);
	buf_puts(out, "{\"edge\":");
	buf_json_str(out, S.site.edge_name);
	buf_puts(out, ",\"scripts\":[");
	for (size_t i = 0; s && i < s->n; i++) {
		const struct script_ver *v = s->v[i];
		const struct bundle *b = v->b;
		if (i)
			buf_puts(out, ",");
		buf_puts(out, "{\"name\":");
		buf_json_str(out, b->name);
		buf_printf(out, ",\"version\":%llu,\"digest\":\"%s\",\"activated\":%lld,\"created\":%lld",
		           (unsigned long long)b->version, v->digest, v->activated, b->created);
		if (txn) {
			MDB_val k = { strlen(b->name), (void *)b->name }, pv;
			if (!mdb_get(txn, S.dbi_prev, &k, &pv)) {
				/* The previous version, for rollback: its number only (parse is cheap). */
				char *raw;
				size_t rl;
				char e[128];
				if (!bundle_verify_any(pv.mv_data, pv.mv_size, S.pk, S.npk, &raw, &rl, e, sizeof e)) {
					json_t *o = json_loadb(raw, rl, 0, NULL);
					json_t *ver = o ? json_object_get(o, "version") : NULL;
					if (json_is_integer(ver))
						buf_printf(out, ",\"previous\":%lld", (long long)json_integer_value(ver));
					json_decref(o);
					free(raw);
				}
			}
		}
		buf_puts(out, ",\"routes\":[");
		for (size_t r = 0; r < b->nroutes; r++) {
			buf_puts(out, r ? ",{\"host\":" : "{\"host\":");
			buf_json_str(out, b->routes[r].host);
			buf_puts(out, ",\"path\":");
			buf_json_str(out, b->routes[r].path);
			if (b->routes[r].method) {
				buf_puts(out, ",\"method\":");
				buf_json_str(out, b->routes[r].method);
			}
			buf_printf(out, ",\"on_error\":\"%s\"}",
			           b->routes[r].on_error == BUNDLE_ON_ERROR_ORIGIN ? "origin" : "500");
		}
		buf_puts(out, "]}");
	}
	buf_puts(out, "]}\n");
	if (txn)
		mdb_txn_abort(txn);
	snap_release(s);
}

int script_control(const char *method, const char *path, const char *body, size_t len,
                   struct buf *out)
{
	static const char base[] = "/.minicdn/scripts";
	if (!S.ready || !S.cfg.enabled)
		return refuse(out, 503, NULL, "scripts are disabled on this edge");
	if (strncmp(path, base, sizeof base - 1) != 0)
		return refuse(out, 404, NULL, "no such control path");
	const char *rest = path + sizeof base - 1;
	if (!strcmp(method, "GET") && (!*rest || !strcmp(rest, "/"))) {
		list_json(out);
		return 200;
	}
	if (!strcmp(method, "POST") && (!*rest || !strcmp(rest, "/")))
		return do_push(body, len, NULL, out);
	if (!strcmp(method, "DELETE") && rest[0] == '/' && rest[1])
		return do_push(body, len, rest + 1, out);
	return refuse(out, 405, NULL, "use GET or POST /.minicdn/scripts, DELETE /.minicdn/scripts/NAME");
}

/* ---------- running ---------- */

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const char *err_kind_name(enum script_err k)
{
	static const char *n[SERR_N] = { "runtime", "instructions", "time", "memory", "response" };
	return (unsigned)k < SERR_N ? n[k] : "?";
}

/* At most a few error lines per script per second: a hostile script must not
 * turn into a log flood. */
static int log_allowed(struct script_stats *st)
{
	static _Thread_local long long win;
	static _Thread_local int count;
	long long sec = now_us() / 1000000;
	(void)st;
	if (sec != win) {
		win = sec;
		count = 0;
	}
	return ++count <= 20;
}

/* This thread's counter slot, assigned round-robin on first use. */
static unsigned stat_slot(void)
{
	static atomic_uint next_slot;
	static _Thread_local int mine = -1;
	if (mine < 0)
		mine = (int)(atomic_fetch_add(&next_slot, 1) % SCRIPT_STAT_SLOTS);
	return (unsigned)mine;
}

static unsigned long long slot_sum(const struct script_stats *st, bool time)
{
	unsigned long long n = 0;
	for (int i = 0; i < SCRIPT_STAT_SLOTS; i++)
		n += atomic_load_explicit(time ? &st->slot[i].time_us : &st->slot[i].invocations,
		                          memory_order_relaxed);
	return n;
}

static void set_name(struct script_resp *resp, const char *name)
{
	size_t n = strnlen(name, sizeof resp->script - 1);
	memcpy(resp->script, name, n);
	resp->script[n] = '\0';
}

/* A request waiting for a subrequest: what finishing it needs. */
struct script_task {
	struct lua_task *lt;
	struct script_ver *v;              /* a reference: the version it started on */
	const struct bundle_route *route;  /* in v->b */
	const char *method;                /* borrowed from the request */
	const char *path;
	size_t path_len;
	long long run_us;                  /* time spent running so far */
};

/* Accounts a finished (or waiting) call of v and turns its status into the
 * result.  t0: when this run started. */
static enum script_result finish(struct script_ver *v, const struct bundle_route *route,
                                 const char *method, const char *path, size_t path_len,
                                 enum lua_vm_status st, enum script_err kind, const char *err,
                                 long long run_us, struct script_resp *resp)
{
	struct script_stats *stats = v->stats;
	struct script_stat_slot *slot = &stats->slot[stat_slot()];
	atomic_fetch_add_explicit(&slot->invocations, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&slot->time_us, (unsigned long long)run_us, memory_order_relaxed);
	if (st == LVM_RESPONSE) {
		set_name(resp, v->b->name);
		resp->version = v->b->version;
		return SCRIPT_RESPONSE;
	}
	if (st == LVM_PASS) {
		atomic_fetch_add(&stats->passes, 1);
		return SCRIPT_PASS;
	}
	atomic_fetch_add(&stats->errors[kind], 1);
	if (log_allowed(stats))
		log_warn("script", "%s v%llu failed on %s %.*s: %s: %s", v->b->name,
		         (unsigned long long)v->b->version, method, (int)path_len, path,
		         err_kind_name(kind), err);
	if (route->on_error != BUNDLE_ON_ERROR_500)
		return SCRIPT_PASS;
	script_resp_free(resp);
	memset(resp, 0, sizeof *resp);
	resp->status = 500;
	static const char msg[] = "script error\n";
	resp->body = xstrdup(msg);
	resp->body_len = sizeof msg - 1;
	script_resp_headers_init(resp, 1, 12 + 25);
	script_resp_header_add(resp, "Content-Type", 12, "text/plain; charset=utf-8", 25);
	set_name(resp, v->b->name);
	resp->version = v->b->version;
	return SCRIPT_RESPONSE;
}

enum script_result script_handle(const struct script_req *req, struct script_resp *resp,
                                 struct script_task **task)
{
	memset(resp, 0, sizeof *resp);
	*task = NULL;
	if (!S.ready)
		return SCRIPT_PASS;
	struct snap *s = snap_thread();
	if (!s || s->n == 0) {
		snap_thread_done(s);
		return SCRIPT_PASS;
	}
	struct script_ver *v = NULL;
	const struct bundle_route *route = NULL;
	for (size_t i = 0; i < s->n && !route; i++)
		for (size_t r = 0; r < s->v[i]->b->nroutes; r++)
			if (bundle_route_match(&s->v[i]->b->routes[r], req->method, req->host, req->path,
			                       req->path_len)) {
				v = s->v[i];
				route = &v->b->routes[r];
				break;
			}
	if (!route) {
		snap_thread_done(s);
		return SCRIPT_PASS;
	}
	struct lua_vm *vm = lua_vm_thread();
	char err[512];
	enum script_err kind = SERR_RUNTIME;
	enum lua_vm_status st;
	struct lua_task *lt = NULL;
	long long t0 = now_us();
	if (!vm) {
		snprintf(err, sizeof err, "no Lua state");
		st = LVM_ERROR;
	} else {
		lua_vm_sync(vm, s->gen, s->seqs, s->n);
		st = lua_vm_call(vm, v, req, NULL, resp, &kind, err, sizeof err, &lt);
	}
	if (st == LVM_YIELD) {
		/* The snapshot is only borrowed: the task takes its own reference to
		 * the version, which keeps its bundle (and route) alive however many
		 * pushes happen while it waits. */
		struct script_task *t = xcalloc(1, sizeof *t);
		t->lt = lt;
		atomic_fetch_add(&v->refs, 1);
		t->v = v;
		t->route = route;
		t->method = req->method;
		t->path = req->path;
		t->path_len = req->path_len;
		t->run_us = now_us() - t0;
		snap_thread_done(s);
		*task = t;
		return SCRIPT_WAIT;
	}
	enum script_result result =
		finish(v, route, req->method, req->path, req->path_len, st, kind, err, now_us() - t0, resp);
	snap_thread_done(s);
	return result;
}

enum script_result script_resume(struct script_task *t, struct script_resp *resp)
{
	memset(resp, 0, sizeof *resp);
	char err[512];
	enum script_err kind = SERR_RUNTIME;
	long long t0 = now_us();
	enum lua_vm_status st = lua_vm_resume(t->lt, resp, &kind, err, sizeof err);
	t->run_us += now_us() - t0;
	if (st == LVM_YIELD)
		return SCRIPT_WAIT;
	enum script_result result =
		finish(t->v, t->route, t->method, t->path, t->path_len, st, kind, err, t->run_us, resp);
	script_ver_release(t->v);
	free(t);
	return result;
}

void script_abort(struct script_task *t)
{
	if (!t)
		return;
	lua_vm_abort(t->lt);
	struct script_stats *stats = t->v->stats;
	struct script_stat_slot *slot = &stats->slot[stat_slot()];
	atomic_fetch_add_explicit(&slot->invocations, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&slot->time_us, (unsigned long long)t->run_us, memory_order_relaxed);
	script_ver_release(t->v);
	free(t);
}

/* ---------- metrics ---------- */

void script_metrics(struct buf *out)
{
	struct snap *s = snap_acquire();
	buf_puts(out, "# HELP minicdn_script_active_version Active version of each script bundle.\n"
	              "# TYPE minicdn_script_active_version gauge\n");
	for (size_t i = 0; s && i < s->n; i++)
		buf_printf(out, "minicdn_script_active_version{script=\"%s\"} %llu\n", s->v[i]->b->name,
		           (unsigned long long)s->v[i]->b->version);
	snap_release(s);
	pthread_mutex_lock(&S.stats_mu);
	buf_puts(out, "# HELP minicdn_script_invocations_total Requests handled by each script.\n"
	              "# TYPE minicdn_script_invocations_total counter\n");
	for (struct script_stats *st = S.stats; st; st = st->next)
		buf_printf(out, "minicdn_script_invocations_total{script=\"%s\"} %llu\n", st->name,
		           slot_sum(st, false));
	buf_puts(out, "# HELP minicdn_script_passes_total Requests a script passed on (returned nil).\n"
	              "# TYPE minicdn_script_passes_total counter\n");
	for (struct script_stats *st = S.stats; st; st = st->next)
		buf_printf(out, "minicdn_script_passes_total{script=\"%s\"} %llu\n", st->name,
		           (unsigned long long)atomic_load(&st->passes));
	buf_puts(out, "# HELP minicdn_script_errors_total Script failures by kind.\n"
	              "# TYPE minicdn_script_errors_total counter\n");
	for (struct script_stats *st = S.stats; st; st = st->next)
		for (int k = 0; k < SERR_N; k++)
			buf_printf(out, "minicdn_script_errors_total{script=\"%s\",kind=\"%s\"} %llu\n", st->name,
			           err_kind_name((enum script_err)k),
			           (unsigned long long)atomic_load(&st->errors[k]));
	buf_puts(out, "# HELP minicdn_script_seconds_total Time spent running each script.\n"
	              "# TYPE minicdn_script_seconds_total counter\n");
	for (struct script_stats *st = S.stats; st; st = st->next)
		buf_printf(out, "minicdn_script_seconds_total{script=\"%s\"} %.6f\n", st->name,
		           (double)slot_sum(st, true) / 1e6);
	pthread_mutex_unlock(&S.stats_mu);
	buf_printf(out, "# TYPE minicdn_script_kv_entries gauge\nminicdn_script_kv_entries %ld\n",
	           kv_count());
}
