/* history.c -- published bundle versions on disk and their in-memory index */
#include "origin/history.h"
#include "common/buf.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void history_init(struct history *h, const char *state_dir, const uint8_t pk[BUNDLE_PK_LEN])
{
	memset(h, 0, sizeof *h);
	h->dir = xasprintf("%s/bundles", state_dir);
	memcpy(h->pk, pk, BUNDLE_PK_LEN);
}

void history_free(struct history *h)
{
	for (size_t i = 0; i < h->n; i++) {
		free(h->b[i].name);
		free(h->b[i].v);
		free(h->b[i].env);
	}
	free(h->b);
	free(h->dir);
	memset(h, 0, sizeof *h);
}

bool history_name_ok(const char *name)
{
	if (!name || !name[0] || name[0] == '.' || strlen(name) > BUNDLE_MAX_NAME)
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '.' || *p == '_' || *p == '-'))
			return false;
	return true;
}

struct history_bundle *history_find(struct history *h, const char *name)
{
	for (size_t i = 0; i < h->n; i++)
		if (!strcmp(h->b[i].name, name))
			return &h->b[i];
	return NULL;
}

static struct history_bundle *find_or_add(struct history *h, const char *name)
{
	struct history_bundle *b = history_find(h, name);
	if (b)
		return b;
	h->b = xrealloc(h->b, (h->n + 1) * sizeof *h->b);
	b = &h->b[h->n++];
	memset(b, 0, sizeof *b);
	b->name = xstrdup(name);
	return b;
}

static int cmp_ver(const void *a, const void *b)
{
	unsigned long long x = ((const struct history_ver *)a)->version;
	unsigned long long y = ((const struct history_ver *)b)->version;
	return x < y ? -1 : x > y;
}

static void add_ver(struct history_bundle *b, const struct history_ver *v)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 8;
		b->v = xrealloc(b->v, b->cap * sizeof *b->v);
	}
	b->v[b->n++] = *v;
	qsort(b->v, b->n, sizeof *b->v, cmp_ver);
}

unsigned long long history_current(const struct history_bundle *b)
{
	return b && b->n ? b->v[b->n - 1].version : 0;
}

size_t history_versions(const struct history *h)
{
	size_t n = 0;
	for (size_t i = 0; i < h->n; i++)
		n += h->b[i].n;
	return n;
}

static char *ver_path(const struct history *h, const char *name, unsigned long long v, const char *ext)
{
	return xasprintf("%s/%s/%020llu.%s", h->dir, name, v, ext);
}

/* ---------- loading ---------- */

/* Reads one .meta file; false if it is unreadable or has no valid version. */
static bool meta_read(const char *path, struct history_ver *v)
{
	json_t *m = json_load_file(path, 0, NULL);
	json_t *jv = json_object_get(m, "version");
	if (!json_is_integer(jv) || json_integer_value(jv) < 1) {
		json_decref(m);
		return false;
	}
	memset(v, 0, sizeof *v);
	v->version = (unsigned long long)json_integer_value(jv);
	const char *op = json_string_value(json_object_get(m, "op"));
	v->del = op && !strcmp(op, "delete");
	v->created = json_integer_value(json_object_get(m, "created"));
	v->rollback_of = (unsigned long long)json_integer_value(json_object_get(m, "rollback_of"));
	const char *dg = json_string_value(json_object_get(m, "digest"));
	snprintf(v->digest, sizeof v->digest, "%s", dg ? dg : "");
	json_decref(m);
	return true;
}

/* The newest version whose envelope is readable and carries our signature
 * is the current one; anything newer that is damaged is dropped. */
static void settle_current(struct history *h, struct history_bundle *b)
{
	while (b->n) {
		size_t len = 0;
		char why[256];
		char *env = history_read_env(h, b->name, b->v[b->n - 1].version, &len, why, sizeof why);
		char *bytes = NULL;
		size_t blen;
		if (env && bundle_verify(env, len, h->pk, &bytes, &blen, why, sizeof why) == 0) {
			free(bytes);
			b->env = env;
			b->envlen = len;
			return;
		}
		char *path = ver_path(h, b->name, b->v[b->n - 1].version, "env");
		log_warn("push", "%s: missing or not signed by our key; version ignored", path);
		free(path);
		free(env);
		b->n--;
	}
}

static void load_name(struct history *h, const char *name)
{
	char *dir = xasprintf("%s/%s", h->dir, name);
	DIR *d = opendir(dir);
	free(dir);
	if (!d)
		return;
	struct dirent *de;
	struct history_bundle *b = NULL;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l != 25 || strcmp(de->d_name + 20, ".meta") != 0)
			continue;
		char *path = xasprintf("%s/%s/%s", h->dir, name, de->d_name);
		struct history_ver v;
		if (meta_read(path, &v)) {
			if (!b)
				b = find_or_add(h, name);
			add_ver(b, &v);
		} else {
			log_warn("push", "%s: unreadable metadata, ignored", path);
		}
		free(path);
	}
	closedir(d);
	if (b)
		settle_current(h, b);
}

int history_load(struct history *h, char *err, size_t errlen)
{
	if (fsutil_mkdir_p(h->dir, 0755, err, errlen) < 0)
		return -1;
	DIR *d = opendir(h->dir);
	if (!d) {
		snprintf(err, errlen, "%.200s: %s", h->dir, strerror(errno));
		return -1;
	}
	struct dirent *de;
	while ((de = readdir(d)))
		if (history_name_ok(de->d_name))
			load_name(h, de->d_name);
	closedir(d);
	/* Names whose every version was dropped leave an empty entry: remove. */
	size_t k = 0;
	for (size_t i = 0; i < h->n; i++) {
		if (h->b[i].n) {
			h->b[k++] = h->b[i];
		} else {
			free(h->b[i].name);
			free(h->b[i].v);
		}
	}
	h->n = k;
	return 0;
}

/* ---------- writing ---------- */

static char *meta_json(const char *name, const struct history_ver *v)
{
	struct buf b = BUF_INIT;
	buf_puts(&b, "{\"name\":");
	buf_json_str(&b, name);
	buf_printf(&b, ",\"version\":%llu,\"op\":\"%s\",\"created\":%lld,\"digest\":\"%s\",\"rollback_of\":%llu}\n",
	           v->version, v->del ? "delete" : "activate", v->created, v->digest, v->rollback_of);
	return buf_steal(&b);
}

int history_write(const struct history *h, const char *name, const struct history_ver *v, const char *env,
                  size_t envlen, char *err, size_t errlen)
{
	char *dir = xasprintf("%s/%s", h->dir, name);
	char *envp = ver_path(h, name, v->version, "env");
	char *metap = ver_path(h, name, v->version, "meta");
	char *meta = meta_json(name, v);
	int rc = fsutil_mkdir_p(dir, 0755, err, errlen);
	if (rc == 0)
		rc = fsutil_write_atomic(envp, env, envlen, 0644, err, errlen);
	if (rc == 0) /* .meta last: it is what marks the version as existing on restart */
		rc = fsutil_write_atomic(metap, meta, strlen(meta), 0644, err, errlen);
	free(meta);
	free(metap);
	free(envp);
	free(dir);
	return rc;
}

void history_record(struct history *h, const char *name, const struct history_ver *v, char *env,
                    size_t envlen)
{
	struct history_bundle *b = find_or_add(h, name);
	add_ver(b, v);
	free(b->env);
	b->env = env;
	b->envlen = envlen;
}

char *history_read_env(const struct history *h, const char *name, unsigned long long v, size_t *len,
                       char *err, size_t errlen)
{
	char *path = ver_path(h, name, v, "env");
	struct buf b = BUF_INIT;
	int rc = fsutil_read(path, BUNDLE_MAX_ENVELOPE, &b, err, errlen);
	free(path);
	if (rc < 0) {
		buf_free(&b);
		return NULL;
	}
	*len = b.len;
	return buf_steal(&b);
}
