/* cfg.c -- schema-driven configuration loading on top of libconfig */
#include "common/cfg.h"
#include "common/secret.h"
#include "common/addr.h"
#include "common/xmalloc.h"

#include <errno.h>
#include <libconfig.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

/* ---------- value parsers ---------- */

int cfg_parse_size(const char *text, uint64_t *out, char *err, size_t errlen)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (end == text || errno || text[0] == '-') {
		snprintf(err, errlen, "'%s' is not a size (e.g. 4096, 64K, 256M, 2G)", text);
		return -1;
	}
	uint64_t mul = 1;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': mul = 1ull << 10; end++; break;
	case 'm': case 'M': mul = 1ull << 20; end++; break;
	case 'g': case 'G': mul = 1ull << 30; end++; break;
	case 't': case 'T': mul = 1ull << 40; end++; break;
	default: end = NULL;
	}
	if (end && (*end == 'B' || *end == 'b'))
		end++;
	if (!end || *end != '\0' || (v && mul > UINT64_MAX / v)) {
		snprintf(err, errlen, "'%s' is not a size (e.g. 4096, 64K, 256M, 2G)", text);
		return -1;
	}
	*out = v * mul;
	return 0;
}

int cfg_parse_ms(const char *text, int *out, char *err, size_t errlen)
{
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	double mul;
	if (end == text || errno || v < 0)
		goto bad;
	if (*end == '\0' || strcmp(end, "ms") == 0)
		mul = 1;
	else if (strcmp(end, "s") == 0)
		mul = 1000;
	else if (strcmp(end, "m") == 0)
		mul = 60000;
	else if (strcmp(end, "h") == 0)
		mul = 3600000;
	else
		goto bad;
	if (v * mul > 2147483647.0)
		goto bad;
	*out = (int)llround(v * mul);
	return 0;
bad:
	snprintf(err, errlen, "'%s' is not a duration (e.g. 250ms, 5s, 2m, 1h)", text);
	return -1;
}

/* ---------- loading ---------- */

struct loader {
	const char *name; /* file name for messages */
	char *err;
	size_t errlen;
	const char *dir;  /* the file's folder, for CFG_PATH keys; NULL: paths as given */
	size_t dirlen;
};

static int fail(struct loader *ld, const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct loader *ld, const config_setting_t *s, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	const char *file = s ? config_setting_source_file(s) : NULL;
	unsigned line = s ? config_setting_source_line(s) : 0;
	if (line)
		snprintf(ld->err, ld->errlen, "%s:%u: %s", file ? file : ld->name, line, msg);
	else
		snprintf(ld->err, ld->errlen, "%s: %s", ld->name, msg);
	return -1;
}

static int in_bounds(const struct cfg_key *k, double v)
{
	return k->min >= k->max || (v >= k->min && v <= k->max);
}

static const char *type_name(enum cfg_type t)
{
	switch (t) {
	case CFG_STRING: return "string";
	case CFG_INT: return "integer";
	case CFG_SIZE: return "size";
	case CFG_MS: return "duration";
	case CFG_BOOL: return "boolean";
	case CFG_FLOAT: return "number";
	case CFG_ADDR: return "address";
	case CFG_STRLIST: return "list of strings";
	case CFG_GROUP: return "group";
	case CFG_LIST: return "list of groups";
	case CFG_CUSTOM: return "string";
	}
	return "?";
}

static int load_group(struct loader *ld, const config_setting_t *grp, const struct cfg_key *keys,
                      char *base, const char *path);

/* dir/rel, with the folder part made canonical when it exists, so logs say
 * "/srv/cdn/run/edge-eu" rather than "deploy/local/../../run/edge-eu".  A
 * folder that does not exist yet (the daemon creates it) stays as joined. */
static char *path_join(const char *dir, size_t dirlen, const char *rel)
{
	char *joined = xasprintf("%.*s/%s", (int)dirlen, dir, rel);
	char *slash = strrchr(joined, '/');
	*slash = '\0';
	char *canon = realpath(joined, NULL);
	*slash = '/';
	if (!canon)
		return joined;
	char *out = xasprintf("%s%s", canon, slash);
	free(canon);
	free(joined);
	return out;
}

/* A path to take relative to the config file's folder: not absolute, and not
 * "%credentials%/..." (common/secret.h resolves that one). */
static bool relative_path(const char *text)
{
	return text[0] && text[0] != '/' && strncmp(text, SECRET_CREDENTIALS, strlen(SECRET_CREDENTIALS));
}

/* Converts text (from the file or a default) into the target of k. */
static int set_from_text(struct loader *ld, const config_setting_t *s, const struct cfg_key *k,
                         char *dst, const char *text, const char *path)
{
	char why[256];
	switch (k->type) {
	case CFG_STRING:
		free(*(char **)dst);
		/* Relative to the file, not to wherever the daemon was started:
		 * a config then means the same from any working directory. */
		if ((k->flags & CFG_PATH) && ld->dir && relative_path(text))
			*(char **)dst = path_join(ld->dir, ld->dirlen, text);
		else
			*(char **)dst = xstrdup(text);
		return 0;
	case CFG_INT: {
		char *end;
		errno = 0;
		long v = strtol(text, &end, 0);
		if (end == text || *end || errno || v < -2147483647L || v > 2147483647L)
			return fail(ld, s, "'%s' must be an integer", path);
		if (!in_bounds(k, (double)v))
			return fail(ld, s, "'%s' = %ld is out of range [%g, %g]", path, v, k->min, k->max);
		*(int *)dst = (int)v;
		return 0;
	}
	case CFG_SIZE: {
		uint64_t v;
		if (cfg_parse_size(text, &v, why, sizeof why) < 0)
			return fail(ld, s, "'%s': %s", path, why);
		if (!in_bounds(k, (double)v))
			return fail(ld, s, "'%s' = %s is out of range [%.0f, %.0f]", path, text, k->min, k->max);
		*(uint64_t *)dst = v;
		return 0;
	}
	case CFG_MS: {
		int v;
		if (cfg_parse_ms(text, &v, why, sizeof why) < 0)
			return fail(ld, s, "'%s': %s", path, why);
		if (!in_bounds(k, (double)v))
			return fail(ld, s, "'%s' = %s is out of range [%gms, %gms]", path, text, k->min, k->max);
		*(int *)dst = v;
		return 0;
	}
	case CFG_BOOL:
		if (!strcmp(text, "true") || !strcmp(text, "yes") || !strcmp(text, "1"))
			*(bool *)dst = true;
		else if (!strcmp(text, "false") || !strcmp(text, "no") || !strcmp(text, "0"))
			*(bool *)dst = false;
		else
			return fail(ld, s, "'%s' must be true or false", path);
		return 0;
	case CFG_FLOAT: {
		char *end;
		errno = 0;
		double v = strtod(text, &end);
		if (end == text || *end || errno)
			return fail(ld, s, "'%s' must be a number", path);
		if (!in_bounds(k, v))
			return fail(ld, s, "'%s' = %g is out of range [%g, %g]", path, v, k->min, k->max);
		*(double *)dst = v;
		return 0;
	}
	case CFG_ADDR:
		if (addr_parse(text, (struct addr *)dst, why, sizeof why) < 0)
			return fail(ld, s, "'%s': %s", path, why);
		return 0;
	case CFG_CUSTOM:
		if (k->parse(text, dst, why, sizeof why) < 0)
			return fail(ld, s, "'%s': %s", path, why);
		return 0;
	default:
		return fail(ld, s, "'%s': internal error: no text form for %s", path, type_name(k->type));
	}
}

/* Reads a scalar setting as text so numbers and strings go through one path. */
static int scalar_text(struct loader *ld, const config_setting_t *s, const struct cfg_key *k,
                       char *tmp, size_t tmplen, const char **text, const char *path)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_STRING:
		if (k->type == CFG_INT || k->type == CFG_FLOAT || k->type == CFG_BOOL)
			return fail(ld, s, "'%s' must be a %s, not a string", path, type_name(k->type));
		*text = config_setting_get_string(s);
		return 0;
	case CONFIG_TYPE_INT:
		snprintf(tmp, tmplen, "%d", config_setting_get_int(s));
		break;
	case CONFIG_TYPE_INT64:
		snprintf(tmp, tmplen, "%lld", config_setting_get_int64(s));
		break;
	case CONFIG_TYPE_FLOAT:
		if (k->type != CFG_FLOAT && k->type != CFG_MS)
			return fail(ld, s, "'%s' must be a %s", path, type_name(k->type));
		snprintf(tmp, tmplen, "%.17g", config_setting_get_float(s));
		break;
	case CONFIG_TYPE_BOOL:
		if (k->type != CFG_BOOL)
			return fail(ld, s, "'%s' must be a %s, not a boolean", path, type_name(k->type));
		snprintf(tmp, tmplen, "%s", config_setting_get_bool(s) ? "true" : "false");
		break;
	default:
		return fail(ld, s, "'%s' must be a %s", path, type_name(k->type));
	}
	if (k->type == CFG_STRING || k->type == CFG_ADDR || k->type == CFG_CUSTOM)
		return fail(ld, s, "'%s' must be a string (in double quotes)", path);
	if (k->type == CFG_BOOL && config_setting_type(s) != CONFIG_TYPE_BOOL)
		return fail(ld, s, "'%s' must be true or false", path);
	*text = tmp;
	return 0;
}

static int load_key(struct loader *ld, const config_setting_t *s, const struct cfg_key *k,
                    char *base, const char *path)
{
	char *dst = base + k->offset;
	char tmp[64];
	const char *text = NULL;

	switch (k->type) {
	case CFG_GROUP:
		if (!config_setting_is_group(s))
			return fail(ld, s, "'%s' must be a group { ... }", path);
		return load_group(ld, s, k->sub, dst, path);
	case CFG_LIST: {
		if (!config_setting_is_list(s) && !config_setting_is_array(s))
			return fail(ld, s, "'%s' must be a list ( { ... }, ... )", path);
		int n = config_setting_length(s);
		char *arr = xcalloc((size_t)(n ? n : 1), k->elem_size);
		*(char **)dst = arr;
		*(size_t *)(base + k->count_offset) = (size_t)n;
		for (int i = 0; i < n; i++) {
			const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
			char epath[300];
			snprintf(epath, sizeof epath, "%s[%d]", path, i);
			if (!config_setting_is_group(e))
				return fail(ld, e, "'%s' must be a group { ... }", epath);
			if (load_group(ld, e, k->sub, arr + (size_t)i * k->elem_size, epath) < 0)
				return -1;
		}
		return 0;
	}
	case CFG_STRLIST: {
		/* A single string is a list of one: `pubkey = "a.pub"` and, during a
		 * rotation, `pubkey = [ "a.pub", "b.pub" ]`. */
		bool one = config_setting_type(s) == CONFIG_TYPE_STRING;
		if (!one && !config_setting_is_list(s) && !config_setting_is_array(s))
			return fail(ld, s, "'%s' must be a string or a list of strings [ \"a\", \"b\" ]", path);
		int n = one ? 1 : config_setting_length(s);
		char **arr = xcalloc((size_t)n + 1, sizeof *arr);
		*(char ***)dst = arr;
		*(size_t *)(base + k->count_offset) = (size_t)n;
		for (int i = 0; i < n; i++) {
			const config_setting_t *e = one ? s : config_setting_get_elem(s, (unsigned)i);
			if (config_setting_type(e) != CONFIG_TYPE_STRING)
				return fail(ld, e, "'%s' must contain only strings", path);
			const char *etext = config_setting_get_string(e);
			if ((k->flags & CFG_PATH) && ld->dir && relative_path(etext))
				arr[i] = path_join(ld->dir, ld->dirlen, etext);
			else
				arr[i] = xstrdup(etext);
		}
		return 0;
	}
	default:
		if (scalar_text(ld, s, k, tmp, sizeof tmp, &text, path) < 0)
			return -1;
		return set_from_text(ld, s, k, dst, text, path);
	}
}

/* Applies defaults (and checks required keys) for a group that is absent. */
static int load_defaults(struct loader *ld, const config_setting_t *where, const struct cfg_key *keys,
                         char *base, const char *path)
{
	for (const struct cfg_key *k = keys; k->name; k++) {
		char kpath[256];
		snprintf(kpath, sizeof kpath, "%s%s%s", path, *path ? "." : "", k->name);
		if (k->flags & CFG_REQUIRED)
			return fail(ld, where, "missing required key '%s'", kpath);
		if (k->type == CFG_GROUP) {
			if (load_defaults(ld, where, k->sub, base + k->offset, kpath) < 0)
				return -1;
		} else if (k->def) {
			if (set_from_text(ld, where, k, base + k->offset, k->def, kpath) < 0)
				return -1;
		}
	}
	return 0;
}

static int load_group(struct loader *ld, const config_setting_t *grp, const struct cfg_key *keys,
                      char *base, const char *path)
{
	int n = config_setting_length(grp);
	/* Unknown keys first: a typo must never silently fall back to a default. */
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(grp, (unsigned)i);
		const char *name = config_setting_name(s);
		const struct cfg_key *k = keys;
		while (k->name && strcmp(k->name, name) != 0)
			k++;
		if (!k->name)
			return fail(ld, s, "unknown key '%s%s%s'", path, *path ? "." : "", name);
	}
	for (const struct cfg_key *k = keys; k->name; k++) {
		char kpath[256];
		snprintf(kpath, sizeof kpath, "%s%s%s", path, *path ? "." : "", k->name);
		const config_setting_t *s = config_setting_get_member(grp, k->name);
		if (s) {
			if (load_key(ld, s, k, base, kpath) < 0)
				return -1;
		} else if (k->flags & CFG_REQUIRED) {
			return fail(ld, grp, "missing required key '%s'", kpath);
		} else if (k->type == CFG_GROUP) {
			if (load_defaults(ld, grp, k->sub, base + k->offset, kpath) < 0)
				return -1;
		} else if (k->def) {
			if (set_from_text(ld, grp, k, base + k->offset, k->def, kpath) < 0)
				return -1;
		}
	}
	return 0;
}

static int finish(config_t *cf, int rc, const char *name, bool is_file, const struct cfg_key *schema,
                  void *base, char *err, size_t errlen)
{
	if (rc == CONFIG_FALSE) {
		const char *file = config_error_file(cf);
		snprintf(err, errlen, "%s:%d: %s", file ? file : name, config_error_line(cf),
		         config_error_text(cf));
		config_destroy(cf);
		return -1;
	}
	struct loader ld = { name, err, errlen, NULL, 0 };
	const char *slash = is_file ? strrchr(name, '/') : NULL;
	if (slash) {
		ld.dir = name;
		ld.dirlen = slash == name ? 1 : (size_t)(slash - name);
	}
	int r = load_group(&ld, config_root_setting(cf), schema, base, "");
	config_destroy(cf);
	if (r < 0)
		cfg_free(schema, base);
	return r;
}

int cfg_load(const char *path, const struct cfg_key *schema, void *base, char *err, size_t errlen)
{
	config_t cf;
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	fclose(f);
	config_init(&cf);
	config_set_auto_convert(&cf, 0);
	return finish(&cf, config_read_file(&cf, path), path, true, schema, base, err, errlen);
}

int cfg_load_string(const char *text, const char *name, const struct cfg_key *schema, void *base,
                    char *err, size_t errlen)
{
	config_t cf;
	config_init(&cf);
	config_set_auto_convert(&cf, 0);
	return finish(&cf, config_read_string(&cf, text), name, false, schema, base, err, errlen);
}

/* ---------- freeing and reference ---------- */

static void free_group(const struct cfg_key *keys, char *base)
{
	for (const struct cfg_key *k = keys; k->name; k++) {
		char *dst = base + k->offset;
		switch (k->type) {
		case CFG_STRING:
			free(*(char **)dst);
			*(char **)dst = NULL;
			break;
		case CFG_GROUP:
			free_group(k->sub, dst);
			break;
		case CFG_LIST: {
			char *arr = *(char **)dst;
			size_t n = *(size_t *)(base + k->count_offset);
			for (size_t i = 0; arr && i < n; i++)
				free_group(k->sub, arr + i * k->elem_size);
			free(arr);
			*(char **)dst = NULL;
			*(size_t *)(base + k->count_offset) = 0;
			break;
		}
		case CFG_STRLIST: {
			char **arr = *(char ***)dst;
			size_t n = *(size_t *)(base + k->count_offset);
			for (size_t i = 0; arr && i < n; i++)
				free(arr[i]);
			free(arr);
			*(char ***)dst = NULL;
			*(size_t *)(base + k->count_offset) = 0;
			break;
		}
		default:
			break;
		}
	}
}

void cfg_free(const struct cfg_key *schema, void *base)
{
	free_group(schema, base);
}

static void print_keys(const struct cfg_key *keys, FILE *out, const char *prefix)
{
	for (const struct cfg_key *k = keys; k->name; k++) {
		char path[256];
		snprintf(path, sizeof path, "%s%s", prefix, k->name);
		if (k->type == CFG_GROUP || k->type == CFG_LIST) {
			fprintf(out, "  %-28s %-16s %s\n", path, type_name(k->type), k->help ? k->help : "");
			char sub[260];
			snprintf(sub, sizeof sub, "%s%s.", path, k->type == CFG_LIST ? "[]" : "");
			print_keys(k->sub, out, sub);
			continue;
		}
		char def[96];
		if (k->flags & CFG_REQUIRED)
			snprintf(def, sizeof def, "(required)");
		else if (k->def)
			snprintf(def, sizeof def, "[%s]", k->def);
		else
			def[0] = '\0';
		fprintf(out, "  %-28s %-16s %s%s %s\n", path, type_name(k->type), k->help ? k->help : "",
		        k->flags & CFG_PATH ? " (relative to this file)" : "", def);
	}
}

void cfg_print_reference(const struct cfg_key *schema, FILE *out)
{
	print_keys(schema, out, "");
}
