/* script_store.c -- bundles on disk and their activation */
#include "edge/script/script_store.h"
#include "edge/script/script_int.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int script_store_open(struct scripts *s, char *err, size_t errlen)
{
	MDB_txn *txn = NULL;
	int rc;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) ||
	    (rc = mdb_dbi_open(txn, "bundles", MDB_CREATE, &s->dbi_bundles)) ||
	    (rc = mdb_dbi_open(txn, "seen", MDB_CREATE, &s->dbi_seen)) ||
	    (rc = mdb_dbi_open(txn, "prev", MDB_CREATE, &s->dbi_prev)) || (rc = mdb_txn_commit(txn))) {
		if (txn && rc)
			mdb_txn_abort(txn);
		snprintf(err, errlen, "%s: %s", s->cfg.path, mdb_strerror(rc));
		return -1;
	}
	return 0;
}

/* Verifies, parses and wraps an envelope into a version (refs = 1). */
static struct script_ver *ver_from_envelope(struct scripts *s, const char *env, size_t envlen,
                                            char *err, size_t errlen)
{
	return script_ver_new(env, envlen, &s->keys, atomic_fetch_add(&s->seq, 1) + 1, &s->stats, err,
	                      errlen);
}

static uint64_t seen_version(struct scripts *s, MDB_txn *txn, const char *name)
{
	MDB_val k = { strlen(name), (void *)name }, v;
	char num[32];
	if (mdb_get(txn, s->dbi_seen, &k, &v) || v.mv_size >= sizeof num)
		return 0;
	memcpy(num, v.mv_data, v.mv_size);
	num[v.mv_size] = 0;
	return strtoull(num, NULL, 10);
}

/* Compiles v in a throw-away state to check it before activation. */
static int precompile(struct scripts *s, struct script_ver *v, char *err, size_t errlen)
{
	struct lua_vm *vm = lua_vm_new(&s->lim, &s->site);
	if (!vm) {
		snprintf(err, errlen, "cannot create a Lua state (memory cap too small?)");
		return -1;
	}
	int rc = lua_vm_compile(vm, v, err, errlen);
	lua_vm_free(vm);
	return rc;
}

int script_store_load(struct scripts *s, char *err, size_t errlen)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, val;
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc) {
		snprintf(err, errlen, "scripts store: %s", mdb_strerror(rc));
		return -1;
	}
	mdb_cursor_open(txn, s->dbi_bundles, &cur);
	int n = 0;
	while (!mdb_cursor_get(cur, &k, &val, n ? MDB_NEXT : MDB_FIRST)) {
		n++;
		char why[512];
		/* Re-verified on every start: a tampered store file is not trusted. */
		struct script_ver *v = ver_from_envelope(s, val.mv_data, val.mv_size, why, sizeof why);
		if (!v || precompile(s, v, why, sizeof why) < 0) {
			log_error("script", "stored bundle '%.*s' not loaded: %s", (int)k.mv_size,
			          (char *)k.mv_data, why);
			if (v)
				script_ver_release(v);
			continue;
		}
		log_info("script", "loaded %s v%llu (%s) from the store", v->b->name,
		         (unsigned long long)v->b->version, v->digest);
		script_active_publish(&s->active, v->b->name, v);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return 0;
}

/* ---------- push / delete ---------- */

int script_store_refuse(struct buf *out, int status, const char *name, const char *why)
{
	log_warn("script", "bundle%s%s refused: %s", name ? " " : "", name ? name : "", why);
	buf_puts(out, "{\"result\":\"rejected\",\"error\":");
	buf_json_str(out, why);
	buf_puts(out, "}\n");
	return status;
}

int script_store_push(struct scripts *s, const char *body, size_t len, const char *want_delete_name,
                      struct buf *out)
{
	char err[1024];
	if (!s->keys.n)
		return script_store_refuse(out, 403, NULL, "no origin public key configured (scripts.pubkey)");
	struct script_ver *v = ver_from_envelope(s, body, len, err, sizeof err);
	if (!v)
		return script_store_refuse(out, strstr(err, "signature") || strstr(err, "unsigned") ? 403 : 400, NULL, err);
	const char *name = v->b->name;
	if (want_delete_name && (v->b->op != BUNDLE_OP_DELETE || strcmp(want_delete_name, name))) {
		script_ver_release(v);
		return script_store_refuse(out, 400, want_delete_name, "DELETE needs a signed op \"delete\" bundle for that name");
	}
	pthread_mutex_lock(&s->push_mu);
	MDB_txn *txn = NULL;
	int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc) {
		pthread_mutex_unlock(&s->push_mu);
		script_ver_release(v);
		snprintf(err, sizeof err, "store: %s", mdb_strerror(rc));
		return script_store_refuse(out, 500, NULL, err);
	}
	uint64_t seen = seen_version(s, txn, name);
	if (v->b->version <= seen) {
		snprintf(err, sizeof err, "version %llu is not higher than %llu (replay or stale bundle)",
		         (unsigned long long)v->b->version, (unsigned long long)seen);
		goto refused_409;
	}
	if (v->b->op == BUNDLE_OP_ACTIVATE && precompile(s, v, err, sizeof err) < 0) {
		char why[1100];
		snprintf(why, sizeof why, "does not compile: %.1000s", err);
		snprintf(err, sizeof err, "%.1000s", why);
		mdb_txn_abort(txn);
		pthread_mutex_unlock(&s->push_mu);
		int st = script_store_refuse(out, 422, name, err);
		script_ver_release(v);
		return st;
	}
	MDB_val k = { strlen(name), (void *)name }, val, cur;
	char num[32];
	int nl = snprintf(num, sizeof num, "%llu", (unsigned long long)v->b->version);
	MDB_val nv = { (size_t)nl, num };
	rc = mdb_put(txn, s->dbi_seen, &k, &nv, 0);
	if (!rc && !mdb_get(txn, s->dbi_bundles, &k, &cur))
		rc = mdb_put(txn, s->dbi_prev, &k, &cur, 0);
	if (!rc && v->b->op == BUNDLE_OP_ACTIVATE) {
		val = (MDB_val){ v->envlen, v->env };
		rc = mdb_put(txn, s->dbi_bundles, &k, &val, 0);
	} else if (!rc) {
		rc = mdb_del(txn, s->dbi_bundles, &k, NULL);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	if (!rc)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	if (!rc)
		rc = mdb_env_sync(s->env, 1);
	if (rc) {
		pthread_mutex_unlock(&s->push_mu);
		script_ver_release(v);
		snprintf(err, sizeof err, "store: %s", mdb_strerror(rc));
		return script_store_refuse(out, 500, name, err);
	}
	uint64_t version = v->b->version;
	char digest[17];
	memcpy(digest, v->digest, sizeof digest);
	char *nm = xstrdup(name);
	int del = v->b->op == BUNDLE_OP_DELETE;
	if (del) {
		script_active_publish(&s->active, nm, NULL);
		script_ver_release(v);
	} else {
		script_active_publish(&s->active, nm, v); /* takes our reference */
	}
	pthread_mutex_unlock(&s->push_mu);
	log_info("script", "%s %s v%llu (%s)", del ? "removed" : "activated", nm,
	         (unsigned long long)version, digest);
	buf_printf(out, "{\"result\":\"%s\",\"name\":", del ? "deleted" : "activated");
	buf_json_str(out, nm);
	buf_printf(out, ",\"version\":%llu,\"digest\":\"%s\"}\n", (unsigned long long)version, digest);
	free(nm);
	return 200;
refused_409:
	mdb_txn_abort(txn);
	pthread_mutex_unlock(&s->push_mu);
	{
		char nm2[BUNDLE_MAX_NAME + 1];
		snprintf(nm2, sizeof nm2, "%s", name);
		script_ver_release(v);
		return script_store_refuse(out, 409, nm2, err);
	}
}

void script_store_list(struct scripts *s, struct buf *out)
{
	struct script_snap *snap = script_active_acquire(&s->active);
	MDB_txn *txn = NULL;
	mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	buf_puts(out, "{\"edge\":");
	buf_json_str(out, s->site.edge_name);
	buf_puts(out, ",\"scripts\":[");
	for (size_t i = 0; snap && i < snap->n; i++) {
		const struct script_ver *v = snap->v[i];
		const struct bundle *b = v->b;
		if (i)
			buf_puts(out, ",");
		buf_puts(out, "{\"name\":");
		buf_json_str(out, b->name);
		buf_printf(out, ",\"version\":%llu,\"digest\":\"%s\",\"activated\":%lld,\"created\":%lld",
		           (unsigned long long)b->version, v->digest, v->activated, b->created);
		if (txn) {
			MDB_val k = { strlen(b->name), (void *)b->name }, pv;
			if (!mdb_get(txn, s->dbi_prev, &k, &pv)) {
				/* The previous version, for rollback: its number only (parse is cheap). */
				char *raw;
				size_t rl;
				char e[128];
				if (!bundle_verify_any(pv.mv_data, pv.mv_size, &s->keys, &raw, &rl, e, sizeof e)) {
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
	script_snap_release(snap);
}

