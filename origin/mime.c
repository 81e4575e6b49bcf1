/* mime.c -- file name to Content-Type (a small fixed table, binary search) */
#include "origin/mime.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct mime_ent {
	const char *ext;
	const char *type;
};

/* Sorted by extension (lower case) for bsearch. */
static const struct mime_ent mime_table[] = {
	{ "avif", "image/avif" },
	{ "bin", "application/octet-stream" },
	{ "css", "text/css; charset=utf-8" },
	{ "csv", "text/csv; charset=utf-8" },
	{ "gif", "image/gif" },
	{ "gz", "application/gzip" },
	{ "htm", "text/html; charset=utf-8" },
	{ "html", "text/html; charset=utf-8" },
	{ "ico", "image/x-icon" },
	{ "jpeg", "image/jpeg" },
	{ "jpg", "image/jpeg" },
	{ "js", "text/javascript; charset=utf-8" },
	{ "json", "application/json" },
	{ "lua", "text/x-lua; charset=utf-8" },
	{ "map", "application/json" },
	{ "md", "text/markdown; charset=utf-8" },
	{ "mjs", "text/javascript; charset=utf-8" },
	{ "mp3", "audio/mpeg" },
	{ "mp4", "video/mp4" },
	{ "otf", "font/otf" },
	{ "pdf", "application/pdf" },
	{ "png", "image/png" },
	{ "svg", "image/svg+xml" },
	{ "tar", "application/x-tar" },
	{ "ttf", "font/ttf" },
	{ "txt", "text/plain; charset=utf-8" },
	{ "wasm", "application/wasm" },
	{ "webm", "video/webm" },
	{ "webmanifest", "application/manifest+json" },
	{ "webp", "image/webp" },
	{ "woff", "font/woff" },
	{ "woff2", "font/woff2" },
	{ "xml", "application/xml" },
	{ "zip", "application/zip" },
};

static int cmp_ext(const void *key, const void *ent)
{
	return strcasecmp(key, ((const struct mime_ent *)ent)->ext);
}

const char *mime_type(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	const char *dot = strrchr(base, '.');
	if (!dot || dot == base || !dot[1] || strlen(dot + 1) > 16)
		return "application/octet-stream";
	const struct mime_ent *e = bsearch(dot + 1, mime_table, sizeof mime_table / sizeof mime_table[0],
	                                   sizeof mime_table[0], cmp_ext);
	return e ? e->type : "application/octet-stream";
}
