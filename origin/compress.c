/* compress.c -- gzip content coding for the origin's text files */
#include "origin/compress.h"

#include <string.h>
#include <strings.h>
#include <zlib.h>

bool compress_eligible(const char *type, uint64_t size)
{
	if (size < COMPRESS_MIN_SIZE || size > COMPRESS_MAX_SIZE)
		return false;
	static const char *const prefixes[] = {
		"text/", "application/json", "application/javascript", "application/xml",
		"application/manifest+json", "application/wasm", "image/svg+xml", NULL,
	};
	for (int i = 0; prefixes[i]; i++)
		if (!strncasecmp(type, prefixes[i], strlen(prefixes[i])))
			return true;
	return false;
}

int compress_etag(const char *etag, char *out, size_t outlen)
{
	size_t n = strlen(etag);
	if (n < 2 || etag[n - 1] != '"' || n + 3 >= outlen)
		return -1;
	memcpy(out, etag, n - 1);
	memcpy(out + n - 1, "-gz\"", 5);
	return 0;
}

int compress_gzip(const void *in, size_t len, struct buf *out)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	/* windowBits 15 + 16: a gzip wrapper, not zlib's */
	if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	size_t start = out->len;
	uLong bound = deflateBound(&z, (uLong)len);
	buf_reserve(out, bound);
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)len;
	z.next_out = (Bytef *)out->data + start;
	z.avail_out = (uInt)bound;
	int rc = deflate(&z, Z_FINISH);
	size_t produced = bound - z.avail_out;
	deflateEnd(&z);
	if (rc != Z_STREAM_END)
		return -1;
	out->len = start + produced;
	return 0;
}
