/* bundle.c -- signed Lua script bundles: build, serialise, sign, verify, parse */
#include "common/bundle.h"
#include "common/glob.h"
#include "common/cfg.h"
#include "common/fsutil.h"
#include "common/xmalloc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static void crypto_init(void)
{
	/* Thread-safe and idempotent; it only fails if no entropy source exists. */
	if (sodium_init() < 0)
		abort();
}

void bundle_free(struct bundle *b)
{
	if (!b)
		return;
	free(b->name);
	free(b->entry);
	for (size_t i = 0; i < b->nroutes; i++) {
		free(b->routes[i].host);
		free(b->routes[i].path);
		free(b->routes[i].method);
	}
	free(b->routes);
	for (size_t i = 0; i < b->nmodules; i++) {
		free(b->modules[i].name);
		free(b->modules[i].source);
	}
	free(b->modules);
	free(b);
}

/* ---------- validation ---------- */

static bool valid_name(const char *s, bool allow_dot_sep)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > BUNDLE_MAX_NAME || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(isalnum(c) || c == '_' || c == '.' || (!allow_dot_sep && c == '-')))
			return false;
	}
	return true;
}

static bool valid_glob(const char *s, bool is_path)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > BUNDLE_MAX_GLOB)
		return false;
	if (is_path && s[0] != '/' && s[0] != '*')
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

static bool valid_method(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 16)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isupper((unsigned char)s[i]))
			return false;
	return true;
}

int bundle_validate(const struct bundle *b, char *err, size_t errlen)
{
	if (!valid_name(b->name, false)) {
		snprintf(err, errlen, "bundle name must be 1-%d of [A-Za-z0-9._-]", BUNDLE_MAX_NAME);
		return -1;
	}
	if (b->version < 1 || b->version > BUNDLE_MAX_VERSION) {
		snprintf(err, errlen, "bundle version must be between 1 and 2^53");
		return -1;
	}
	if (b->op == BUNDLE_OP_DELETE)
		return 0;
	if (b->nroutes == 0 || b->nroutes > BUNDLE_MAX_ROUTES) {
		snprintf(err, errlen, "a bundle needs 1-%d routes", BUNDLE_MAX_ROUTES);
		return -1;
	}
	if (b->nmodules == 0 || b->nmodules > BUNDLE_MAX_MODULES) {
		snprintf(err, errlen, "a bundle needs 1-%d modules", BUNDLE_MAX_MODULES);
		return -1;
	}
	for (size_t i = 0; i < b->nroutes; i++) {
		const struct bundle_route *r = &b->routes[i];
		if (!valid_glob(r->host, false)) {
			snprintf(err, errlen, "route %zu: bad host pattern", i);
			return -1;
		}
		if (!valid_glob(r->path, true)) {
			snprintf(err, errlen, "route %zu: path pattern must start with '/' or '*'", i);
			return -1;
		}
		if (r->method && !valid_method(r->method)) {
			snprintf(err, errlen, "route %zu: method must be an upper-case token", i);
			return -1;
		}
		if (r->on_error != BUNDLE_ON_ERROR_500 && r->on_error != BUNDLE_ON_ERROR_ORIGIN) {
			snprintf(err, errlen, "route %zu: bad on_error", i);
			return -1;
		}
	}
	bool have_entry = false;
	size_t total = 0;
	for (size_t i = 0; i < b->nmodules; i++) {
		const struct bundle_module *m = &b->modules[i];
		if (!valid_name(m->name, true)) {
			snprintf(err, errlen, "module %zu: name must be 1-%d of [A-Za-z0-9_.]", i, BUNDLE_MAX_NAME);
			return -1;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(b->modules[j].name, m->name)) {
				snprintf(err, errlen, "module '%s' appears twice", m->name);
				return -1;
			}
		if (!m->source || memchr(m->source, '\0', m->len)) {
			snprintf(err, errlen, "module '%s': source must be text", m->name);
			return -1;
		}
		/* Binary chunks start with ESC; refuse them here already (the edge
		 * also loads with mode "t"). */
		if (m->len && m->source[0] == 0x1b) {
			snprintf(err, errlen, "module '%s': binary chunks are not accepted", m->name);
			return -1;
		}
		total += m->len;
		if (b->entry && !strcmp(b->entry, m->name))
			have_entry = true;
	}
	if (total > BUNDLE_MAX_BYTES) {
		snprintf(err, errlen, "sources exceed %u bytes", BUNDLE_MAX_BYTES);
		return -1;
	}
	if (!have_entry) {
		snprintf(err, errlen, "entry module '%s' is missing", b->entry ? b->entry : "(none)");
		return -1;
	}
	return 0;
}

/* ---------- serialisation ---------- */

char *bundle_serialize(const struct bundle *b, size_t *len, char *err, size_t errlen)
{
	if (bundle_validate(b, err, errlen) < 0)
		return NULL;
	json_t *o = json_object();
	json_object_set_new(o, "format", json_integer(1));
	json_object_set_new(o, "name", json_string(b->name));
	json_object_set_new(o, "version", json_integer((json_int_t)b->version));
	json_object_set_new(o, "op", json_string(b->op == BUNDLE_OP_DELETE ? "delete" : "activate"));
	json_object_set_new(o, "created", json_integer(b->created));
	if (b->op == BUNDLE_OP_ACTIVATE) {
		json_object_set_new(o, "entry", json_string(b->entry));
		json_t *routes = json_array();
		for (size_t i = 0; i < b->nroutes; i++) {
			const struct bundle_route *r = &b->routes[i];
			json_t *jr = json_object();
			json_object_set_new(jr, "host", json_string(r->host));
			json_object_set_new(jr, "path", json_string(r->path));
			if (r->method)
				json_object_set_new(jr, "method", json_string(r->method));
			json_object_set_new(jr, "on_error",
			                    json_string(r->on_error == BUNDLE_ON_ERROR_ORIGIN ? "origin" : "500"));
			json_array_append_new(routes, jr);
		}
		json_object_set_new(o, "routes", routes);
		json_t *mods = json_array();
		for (size_t i = 0; i < b->nmodules; i++) {
			json_t *jm = json_object();
			json_object_set_new(jm, "name", json_string(b->modules[i].name));
			json_object_set_new(jm, "source",
			                    json_stringn(b->modules[i].source, b->modules[i].len));
			json_array_append_new(mods, jm);
		}
		json_object_set_new(o, "modules", mods);
	}
	char *txt = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!txt) {
		/* json_stringn refuses invalid UTF-8 (returns NULL and the set is dropped). */
		snprintf(err, errlen, "cannot serialise bundle (invalid UTF-8 in a source?)");
		return NULL;
	}
	*len = strlen(txt);
	if (*len > BUNDLE_MAX_BYTES) {
		snprintf(err, errlen, "serialised bundle is %zu bytes, over the %u limit", *len,
		         BUNDLE_MAX_BYTES);
		free(txt);
		return NULL;
	}
	char *out = xstrndup(txt, *len);
	free(txt); /* jansson's allocator is malloc, but keep ownership explicit */
	return out;
}

static char *dup_jstr(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_string(v) ? xstrndup(json_string_value(v), json_string_length(v)) : NULL;
}

struct bundle *bundle_parse(const char *bytes, size_t len, char *err, size_t errlen)
{
	struct bundle *b = NULL;
	json_t *o = NULL;
	json_error_t je;

	if (len > BUNDLE_MAX_BYTES) {
		snprintf(err, errlen, "bundle is %zu bytes, over the %u limit", len, BUNDLE_MAX_BYTES);
		return NULL;
	}
	o = json_loadb(bytes, len, JSON_REJECT_DUPLICATES, &je);
	if (!o || !json_is_object(o)) {
		snprintf(err, errlen, "bundle is not a JSON object%s%s", o ? "" : ": ", o ? "" : je.text);
		goto fail;
	}
	json_t *fmt = json_object_get(o, "format");
	if (!json_is_integer(fmt) || json_integer_value(fmt) != 1) {
		snprintf(err, errlen, "unsupported bundle format (want 1)");
		goto fail;
	}
	b = xcalloc(1, sizeof *b);
	b->name = dup_jstr(o, "name");
	json_t *ver = json_object_get(o, "version");
	if (!b->name || !json_is_integer(ver) || json_integer_value(ver) < 1) {
		snprintf(err, errlen, "bundle needs a string name and a positive integer version");
		goto fail;
	}
	b->version = (uint64_t)json_integer_value(ver);
	json_t *op = json_object_get(o, "op");
	if (op && json_is_string(op) && !strcmp(json_string_value(op), "delete"))
		b->op = BUNDLE_OP_DELETE;
	else if (op && !(json_is_string(op) && !strcmp(json_string_value(op), "activate"))) {
		snprintf(err, errlen, "op must be \"activate\" or \"delete\"");
		goto fail;
	}
	json_t *created = json_object_get(o, "created");
	if (json_is_integer(created))
		b->created = json_integer_value(created);

	if (b->op == BUNDLE_OP_ACTIVATE) {
		b->entry = dup_jstr(o, "entry");
		if (!b->entry)
			b->entry = xstrdup("main");
		json_t *routes = json_object_get(o, "routes");
		json_t *mods = json_object_get(o, "modules");
		if (!json_is_array(routes) || !json_is_array(mods)) {
			snprintf(err, errlen, "bundle needs routes and modules arrays");
			goto fail;
		}
		if (json_array_size(routes) > BUNDLE_MAX_ROUTES || json_array_size(mods) > BUNDLE_MAX_MODULES) {
			snprintf(err, errlen, "too many routes or modules");
			goto fail;
		}
		b->routes = xcalloc(json_array_size(routes) + 1, sizeof *b->routes);
		for (size_t i = 0; i < json_array_size(routes); i++) {
			json_t *jr = json_array_get(routes, i);
			struct bundle_route *r = &b->routes[b->nroutes++];
			if (!json_is_object(jr)) {
				snprintf(err, errlen, "route %zu is not an object", i);
				goto fail;
			}
			r->host = dup_jstr(jr, "host");
			if (!r->host)
				r->host = xstrdup("*");
			r->path = dup_jstr(jr, "path");
			r->method = dup_jstr(jr, "method");
			if (r->method && !strcmp(r->method, "*")) {
				free(r->method);
				r->method = NULL;
			}
			const char *oe = json_string_value(json_object_get(jr, "on_error"));
			if (!oe || !strcmp(oe, "500"))
				r->on_error = BUNDLE_ON_ERROR_500;
			else if (!strcmp(oe, "origin"))
				r->on_error = BUNDLE_ON_ERROR_ORIGIN;
			else {
				snprintf(err, errlen, "route %zu: on_error must be \"500\" or \"origin\"", i);
				goto fail;
			}
		}
		b->modules = xcalloc(json_array_size(mods) + 1, sizeof *b->modules);
		for (size_t i = 0; i < json_array_size(mods); i++) {
			json_t *jm = json_array_get(mods, i);
			struct bundle_module *m = &b->modules[b->nmodules++];
			json_t *src = json_object_get(jm, "source");
			m->name = dup_jstr(jm, "name");
			if (!m->name || !json_is_string(src)) {
				snprintf(err, errlen, "module %zu needs a name and a source string", i);
				goto fail;
			}
			m->len = json_string_length(src);
			m->source = xstrndup(json_string_value(src), m->len);
		}
	}
	if (bundle_validate(b, err, errlen) < 0)
		goto fail;
	json_decref(o);
	return b;
fail:
	bundle_free(b);
	json_decref(o);
	return NULL;
}

/* ---------- signing and verifying ---------- */

static char *b64_encode(const uint8_t *p, size_t n)
{
	size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
	char *out = xmalloc(cap);
	sodium_bin2base64(out, cap, p, n, sodium_base64_VARIANT_ORIGINAL);
	return out;
}

/* Decodes into a new buffer of at most max bytes; -1 on bad input. */
static int b64_decode(const char *s, size_t slen, size_t max, uint8_t **out, size_t *outlen)
{
	/* Padding takes off at most 2 bytes: refuse before allocating if larger. */
	size_t cap = slen / 4 * 3 + 3;
	if (slen / 4 * 3 > max + 2)
		return -1;
	uint8_t *p = xmalloc(cap + 1);
	size_t n;
	if (sodium_base642bin(p, cap, s, slen, NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    n > max) {
		free(p);
		return -1;
	}
	p[n] = 0;
	*out = p;
	*outlen = n;
	return 0;
}

char *bundle_sign(const char *bytes, size_t len, const uint8_t sk[BUNDLE_SK_LEN], size_t *envlen)
{
	uint8_t sig[BUNDLE_SIG_LEN];
	crypto_init();
	crypto_sign_detached(sig, NULL, (const uint8_t *)bytes, len, sk);
	char *b64 = b64_encode((const uint8_t *)bytes, len);
	char *s64 = b64_encode(sig, sizeof sig);
	char *env = xasprintf("{\"format\":\"%s\",\"bundle\":\"%s\",\"sig\":\"%s\"}",
	                      BUNDLE_ENVELOPE_FORMAT, b64, s64);
	free(b64);
	free(s64);
	*envlen = strlen(env);
	return env;
}

int bundle_verify(const char *env, size_t envlen, const uint8_t pk[BUNDLE_PK_LEN], char **bytes,
                  size_t *len, char *err, size_t errlen)
{
	struct bundle_keys one = { .n = 1 };
	memcpy(one.pk[0], pk, BUNDLE_PK_LEN);
	return bundle_verify_any(env, envlen, &one, bytes, len, err, errlen);
}

int bundle_verify_any(const char *env, size_t envlen, const struct bundle_keys *keys, char **bytes,
                      size_t *len, char *err, size_t errlen)
{
	json_error_t je;
	json_t *o = NULL;
	uint8_t *payload = NULL, *sig = NULL;
	size_t plen = 0, siglen = 0;

	crypto_init();
	if (envlen > BUNDLE_MAX_ENVELOPE) {
		snprintf(err, errlen, "envelope is %zu bytes, over the %u limit", envlen,
		         (unsigned)BUNDLE_MAX_ENVELOPE);
		return -1;
	}
	o = json_loadb(env, envlen, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(o)) {
		snprintf(err, errlen, "envelope is not a JSON object");
		goto fail;
	}
	const char *fmt = json_string_value(json_object_get(o, "format"));
	json_t *jb = json_object_get(o, "bundle"), *js = json_object_get(o, "sig");
	if (!fmt || strcmp(fmt, BUNDLE_ENVELOPE_FORMAT) != 0) {
		snprintf(err, errlen, "envelope format must be \"%s\"", BUNDLE_ENVELOPE_FORMAT);
		goto fail;
	}
	if (!json_is_string(js)) {
		snprintf(err, errlen, "unsigned bundle (no \"sig\")");
		goto fail;
	}
	if (!json_is_string(jb)) {
		snprintf(err, errlen, "envelope has no \"bundle\"");
		goto fail;
	}
	if (b64_decode(json_string_value(jb), json_string_length(jb), BUNDLE_MAX_BYTES, &payload, &plen) < 0) {
		snprintf(err, errlen, "bundle is not valid base64 or is over %u bytes", BUNDLE_MAX_BYTES);
		goto fail;
	}
	if (b64_decode(json_string_value(js), json_string_length(js), BUNDLE_SIG_LEN, &sig, &siglen) < 0 ||
	    siglen != BUNDLE_SIG_LEN) {
		snprintf(err, errlen, "signature is not 64 bytes of base64");
		goto fail;
	}
	size_t k = 0;
	while (k < keys->n && crypto_sign_verify_detached(sig, payload, plen, keys->pk[k]) != 0)
		k++;
	if (k == keys->n) {
		snprintf(err, errlen, "bad signature (not signed by %s)",
		         keys->n > 1 ? "any of the configured origin keys" : "the configured origin key");
		goto fail;
	}
	free(sig);
	json_decref(o);
	*bytes = (char *)payload;
	*len = plen;
	return 0;
fail:
	free(payload);
	free(sig);
	json_decref(o);
	return -1;
}

struct bundle *bundle_open(const char *env, size_t envlen, const uint8_t pk[BUNDLE_PK_LEN],
                           char **raw, size_t *rawlen, char *err, size_t errlen)
{
	struct bundle_keys one = { .n = 1 };
	memcpy(one.pk[0], pk, BUNDLE_PK_LEN);
	return bundle_open_any(env, envlen, &one, raw, rawlen, err, errlen);
}

struct bundle *bundle_open_any(const char *env, size_t envlen, const struct bundle_keys *keys,
                               char **raw, size_t *rawlen, char *err, size_t errlen)
{
	char *bytes;
	size_t len;
	if (bundle_verify_any(env, envlen, keys, &bytes, &len, err, errlen) < 0)
		return NULL;
	struct bundle *b = bundle_parse(bytes, len, err, errlen);
	if (b && raw) {
		*raw = bytes;
		*rawlen = len;
	} else {
		free(bytes);
	}
	return b;
}

void bundle_digest_hex(const char *bytes, size_t len, char out[17])
{
	uint8_t h[8];
	crypto_init();
	crypto_generichash(h, sizeof h, (const uint8_t *)bytes, len, NULL, 0);
	sodium_bin2hex(out, 17, h, sizeof h);
}

/* ---------- matching ---------- */

bool bundle_route_match(const struct bundle_route *r, const char *method, const char *host,
                        const char *path, size_t pathlen)
{
	if (r->method && (!method || strcmp(r->method, method) != 0))
		return false;
	if (!(r->host[0] == '*' && r->host[1] == '\0')) {
		if (!host)
			return false;
		/* Compare without the port ("a.test:8080" -> "a.test"); IPv6 literals keep brackets. */
		size_t hl = strlen(host);
		const char *colon = strrchr(host, ':');
		if (colon && host[0] != '[')
			hl = (size_t)(colon - host);
		else if (colon && host[0] == '[' && colon > host && colon[-1] == ']')
			hl = (size_t)(colon - host);
		if (!glob_match(r->host, host, hl, true))
			return false;
	}
	return glob_match(r->path, path, pathlen, false);
}

/* ---------- building from disk ---------- */

struct manifest_route {
	char *host, *path, *method, *on_error;
};

struct manifest {
	char *name;
	int version;
	char *entry;
	struct manifest_route *routes;
	size_t nroutes;
};

static const struct cfg_key route_keys[] = {
	{ .name = "host", .type = CFG_STRING, .offset = offsetof(struct manifest_route, host), .def = "*",
	  .help = "host glob (case-insensitive)" },
	{ .name = "path", .type = CFG_STRING, .offset = offsetof(struct manifest_route, path),
	  .flags = CFG_REQUIRED, .help = "path glob" },
	{ .name = "method", .type = CFG_STRING, .offset = offsetof(struct manifest_route, method),
	  .help = "method, default any" },
	{ .name = "on_error", .type = CFG_STRING, .offset = offsetof(struct manifest_route, on_error),
	  .def = "500", .help = "\"500\" or \"origin\"" },
	CFG_END,
};

static const struct cfg_key manifest_keys[] = {
	{ .name = "name", .type = CFG_STRING, .offset = offsetof(struct manifest, name), .flags = CFG_REQUIRED },
	{ .name = "version", .type = CFG_INT, .offset = offsetof(struct manifest, version), .def = "0",
	  .min = 0, .max = 2147483647 },
	{ .name = "entry", .type = CFG_STRING, .offset = offsetof(struct manifest, entry), .def = "main" },
	{ .name = "routes", .type = CFG_LIST, .offset = offsetof(struct manifest, routes),
	  .count_offset = offsetof(struct manifest, nroutes), .elem_size = sizeof(struct manifest_route),
	  .sub = route_keys, .flags = CFG_REQUIRED },
	CFG_END,
};

/* Turns a loaded manifest into a bundle without modules.  Takes nothing. */
static struct bundle *from_manifest(const struct manifest *m, const char *where, char *err, size_t errlen)
{
	struct bundle *b = xcalloc(1, sizeof *b);
	b->name = xstrdup(m->name);
	b->version = (uint64_t)m->version;
	b->entry = xstrdup(m->entry);
	b->created = (long long)time(NULL);
	b->routes = xcalloc(m->nroutes + 1, sizeof *b->routes);
	for (size_t i = 0; i < m->nroutes; i++) {
		const struct manifest_route *mr = &m->routes[i];
		struct bundle_route *r = &b->routes[b->nroutes++];
		r->host = xstrdup(mr->host);
		r->path = xstrdup(mr->path);
		r->method = mr->method && strcmp(mr->method, "*") ? xstrdup(mr->method) : NULL;
		if (!strcmp(mr->on_error, "origin"))
			r->on_error = BUNDLE_ON_ERROR_ORIGIN;
		else if (!strcmp(mr->on_error, "500"))
			r->on_error = BUNDLE_ON_ERROR_500;
		else {
			snprintf(err, errlen, "%s: routes[%zu].on_error must be \"500\" or \"origin\"", where, i);
			bundle_free(b);
			return NULL;
		}
	}
	return b;
}

static void add_module(struct bundle *b, const char *name, char *src, size_t len)
{
	b->modules = xrealloc(b->modules, (b->nmodules + 1) * sizeof *b->modules);
	b->modules[b->nmodules++] = (struct bundle_module){ xstrdup(name), src, len };
}

/* Reads a whole file of at most max bytes; NUL-terminated, *len excludes it. */
static char *read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
	struct buf b = BUF_INIT;
	if (fsutil_read(path, max, &b, err, errlen) < 0) {
		buf_free(&b);
		return NULL;
	}
	*len = b.len;
	return buf_steal(&b);
}

static int cmp_module(const void *a, const void *b)
{
	return strcmp(((const struct bundle_module *)a)->name, ((const struct bundle_module *)b)->name);
}

struct bundle *bundle_load_dir(const char *dir, char *err, size_t errlen)
{
	struct manifest m = { 0 };
	struct bundle *b = NULL;
	DIR *d = NULL;
	char *conf = xasprintf("%s/bundle.conf", dir);

	if (cfg_load(conf, manifest_keys, &m, err, errlen) < 0)
		goto fail;
	b = from_manifest(&m, conf, err, errlen);
	if (!b)
		goto fail;
	d = opendir(dir);
	if (!d) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	struct dirent *de;
	size_t total = 0;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n < 5 || strcmp(de->d_name + n - 4, ".lua") != 0 || de->d_name[0] == '.')
			continue;
		if (b->nmodules >= BUNDLE_MAX_MODULES) {
			snprintf(err, errlen, "%s: more than %d .lua files", dir, BUNDLE_MAX_MODULES);
			goto fail;
		}
		char *p = xasprintf("%s/%s", dir, de->d_name);
		size_t len;
		char *src = read_file(p, BUNDLE_MAX_BYTES - total, &len, err, errlen);
		free(p);
		if (!src)
			goto fail;
		total += len;
		char *modname = xstrndup(de->d_name, n - 4);
		add_module(b, modname, src, len);
		free(modname);
	}
	if (b->nmodules)
		qsort(b->modules, b->nmodules, sizeof *b->modules, cmp_module);
	if (!b->version)
		b->version = 1; /* placeholder so validation can run; the signer sets the real one */
	if (bundle_validate(b, err, errlen) < 0) {
		char why[256];
		snprintf(why, sizeof why, "%s", err);
		snprintf(err, errlen, "%s: %s", dir, why);
		goto fail;
	}
	b->version = (uint64_t)m.version;
	closedir(d);
	cfg_free(manifest_keys, &m);
	free(conf);
	return b;
fail:
	if (d)
		closedir(d);
	bundle_free(b);
	cfg_free(manifest_keys, &m);
	free(conf);
	return NULL;
}

#define MANIFEST_OPEN "--[[minicdn"

struct bundle *bundle_from_lua(const char *src, size_t len, const char *name, char *err, size_t errlen)
{
	struct manifest m = { 0 };
	struct bundle *b = NULL;
	const char *p = src, *end = src + len;

	while (p < end && isspace((unsigned char)*p))
		p++;
	size_t ol = strlen(MANIFEST_OPEN);
	if ((size_t)(end - p) < ol || memcmp(p, MANIFEST_OPEN, ol) != 0) {
		snprintf(err, errlen, "%s: a single-file bundle must start with a " MANIFEST_OPEN
		         " ... ]] manifest comment", name);
		return NULL;
	}
	p += ol;
	const char *close = memmem(p, (size_t)(end - p), "]]", 2);
	if (!close) {
		snprintf(err, errlen, "%s: manifest comment is not closed with ]]", name);
		return NULL;
	}
	/* Keep line numbers right in messages: the manifest starts on line 1. */
	char *text = xstrndup(p, (size_t)(close - p));
	int rc = cfg_load_string(text, name, manifest_keys, &m, err, errlen);
	free(text);
	if (rc < 0)
		return NULL;
	b = from_manifest(&m, name, err, errlen);
	if (!b)
		goto fail;
	add_module(b, m.entry, xstrndup(src, len), len);
	uint64_t v = b->version;
	if (!b->version)
		b->version = 1;
	if (bundle_validate(b, err, errlen) < 0) {
		char why[256];
		snprintf(why, sizeof why, "%s", err);
		snprintf(err, errlen, "%s: %s", name, why);
		goto fail;
	}
	b->version = v;
	cfg_free(manifest_keys, &m);
	return b;
fail:
	bundle_free(b);
	cfg_free(manifest_keys, &m);
	return NULL;
}

struct bundle *bundle_load_file(const char *file, char *err, size_t errlen)
{
	size_t len;
	char *src = read_file(file, BUNDLE_MAX_BYTES, &len, err, errlen);
	if (!src)
		return NULL;
	struct bundle *b = bundle_from_lua(src, len, file, err, errlen);
	free(src);
	return b;
}

struct bundle *bundle_load_path(const char *path, char *err, size_t errlen)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	return S_ISDIR(st.st_mode) ? bundle_load_dir(path, err, errlen)
	                           : bundle_load_file(path, err, errlen);
}

/* ---------- keys ---------- */

void bundle_keygen(uint8_t pk[BUNDLE_PK_LEN], uint8_t sk[BUNDLE_SK_LEN])
{
	crypto_init();
	crypto_sign_keypair(pk, sk);
}

void bundle_sk_to_pk(const uint8_t sk[BUNDLE_SK_LEN], uint8_t pk[BUNDLE_PK_LEN])
{
	crypto_init();
	crypto_sign_ed25519_sk_to_pk(pk, sk);
}

int bundle_key_write(const char *path, const uint8_t *key, size_t keylen, bool secret, char *err,
                     size_t errlen)
{
	crypto_init();
	char *b64 = b64_encode(key, keylen);
	size_t n = strlen(b64);
	b64[n] = '\n'; /* the encoded buffer has room: it held the NUL */
	int rc = fsutil_write_atomic(path, b64, n + 1, secret ? 0600 : 0644, err, errlen);
	sodium_memzero(b64, n + 1);
	free(b64);
	return rc;
}

int bundle_key_read(const char *path, uint8_t *key, size_t keylen, char *err, size_t errlen)
{
	size_t len;
	char *txt = read_file(path, 4096, &len, err, errlen);
	if (!txt)
		return -1;
	while (len && isspace((unsigned char)txt[len - 1]))
		txt[--len] = 0;
	const char *p = txt;
	while (*p && isspace((unsigned char)*p))
		p++;
	uint8_t *raw = NULL;
	size_t n = 0;
	int rc = -1;
	crypto_init();
	if (b64_decode(p, strlen(p), keylen, &raw, &n) < 0 || n != keylen) {
		snprintf(err, errlen, "%s: not a %zu-byte base64 key", path, keylen);
	} else {
		memcpy(key, raw, keylen);
		rc = 0;
	}
	if (raw) {
		sodium_memzero(raw, n);
		free(raw);
	}
	sodium_memzero(txt, len);
	free(txt);
	return rc;
}
