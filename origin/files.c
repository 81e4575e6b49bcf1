/* files.c -- request path to file under the document root, validators, 304 logic */
#include "origin/files.h"
#include "common/httpdate.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

enum files_result files_normalize(const char *path, char *out, size_t outlen)
{
	if (!path || path[0] != '/' || outlen < 2)
		return FILES_BAD_PATH;
	size_t o = 0;
	const char *p = path;
	out[o++] = '/';
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *seg = p;
		while (*p && *p != '/')
			p++;
		size_t len = (size_t)(p - seg);
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)seg[i];
			if (c < 0x20 || c == 0x7f || c == '\\')
				return FILES_BAD_PATH;
		}
		if (len == 1 && seg[0] == '.')
			continue;
		if (len == 2 && seg[0] == '.' && seg[1] == '.')
			return FILES_BAD_PATH;
		if (seg[0] == '.' && !(len == 11 && !memcmp(seg, ".well-known", 11)))
			return FILES_HIDDEN;
		if (o + 1 + len + 2 > outlen)
			return FILES_BAD_PATH;
		if (o > 1)
			out[o++] = '/';
		memcpy(out + o, seg, len);
		o += len;
	}
	/* Keep the trailing slash: it asks for the directory's index. */
	size_t plen = strlen(path);
	if (o > 1 && path[plen - 1] == '/') {
		if (o + 2 > outlen)
			return FILES_BAD_PATH;
		out[o++] = '/';
	}
	out[o] = '\0';
	return FILES_OK;
}

static bool inside(const char *root, const char *p)
{
	size_t n = strlen(root);
	if (n == 1 && root[0] == '/')
		return true;
	return strncmp(root, p, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

enum files_result files_open(const char *root_real, const char *norm, const char *index,
                             struct files_entry *out)
{
	char want[FILES_PATH_MAX], real[PATH_MAX];
	size_t nl = strlen(norm);
	bool dir_req = nl > 0 && norm[nl - 1] == '/';
	int w = snprintf(want, sizeof want, "%s%s%s", root_real, norm, dir_req ? index : "");
	if (w < 0 || (size_t)w >= sizeof want)
		return FILES_BAD_PATH;
	if (!realpath(want, real))
		return errno == EACCES ? FILES_FORBIDDEN : FILES_NOT_FOUND;
	if (!inside(root_real, real))
		return FILES_FORBIDDEN; /* a symlink pointing out of the root */
	/* O_NOFOLLOW: real has no symlinks left; if one appeared since, refuse. */
	int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return errno == ENOENT ? FILES_NOT_FOUND : FILES_FORBIDDEN;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return FILES_FORBIDDEN;
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		return dir_req ? FILES_NOT_FOUND : FILES_REDIRECT;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return FILES_FORBIDDEN;
	}
	/* Back to blocking reads for MHD's sendfile/read path. */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	out->fd = fd;
	out->size = (uint64_t)st.st_size;
	out->mtime = st.st_mtim.tv_sec;
	out->mtime_nsec = st.st_mtim.tv_nsec;
	snprintf(out->path, sizeof out->path, "%s", real);
	return FILES_OK;
}

void files_etag(uint64_t size, time_t mtime, long mtime_nsec, char out[FILES_ETAG_LEN])
{
	snprintf(out, FILES_ETAG_LEN, "\"%llx.%lx-%llx\"", (unsigned long long)mtime,
	         (unsigned long)(mtime_nsec / 1000), (unsigned long long)size);
}

/* Weak comparison: W/ prefixes are ignored on both sides. */
static bool etag_in_list(const char *list, const char *etag)
{
	if (etag[0] == 'W' && etag[1] == '/')
		etag += 2;
	size_t elen = strlen(etag);
	const char *p = list;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		if (*p == '*')
			return true;
		if (p[0] == 'W' && p[1] == '/')
			p += 2;
		const char *start = p;
		if (*p == '"') {
			p++;
			while (*p && *p != '"')
				p++;
			if (*p == '"')
				p++;
		} else {
			while (*p && *p != ',' && *p != ' ' && *p != '\t')
				p++;
		}
		if ((size_t)(p - start) == elen && !memcmp(start, etag, elen))
			return true;
		while (*p && *p != ',')
			p++;
	}
	return false;
}

bool files_not_modified(const char *if_none_match, const char *if_modified_since, const char *etag,
                        time_t mtime)
{
	if (if_none_match)
		return etag_in_list(if_none_match, etag);
	if (if_modified_since) {
		time_t t = httpdate_parse(if_modified_since);
		if (t == (time_t)-1)
			return false;
		return mtime <= t;
	}
	return false;
}

static bool parse_u64(const char **p, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	if (*s < '0' || *s > '9')
		return false;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*p = s;
	*out = v;
	return true;
}

enum files_range files_range(const char *range, uint64_t size, uint64_t *start, uint64_t *len)
{
	if (!range)
		return FILES_RANGE_NONE;
	const char *p = range;
	while (*p == ' ')
		p++;
	if (strncasecmp(p, "bytes=", 6) != 0)
		return FILES_RANGE_NONE;
	p += 6;
	while (*p == ' ')
		p++;
	if (strchr(p, ','))
		return FILES_RANGE_NONE; /* several ranges: send it all */
	uint64_t a = 0, b = 0;
	if (*p == '-') { /* suffix: the last N bytes */
		p++;
		if (!parse_u64(&p, &b))
			return FILES_RANGE_NONE;
		while (*p == ' ')
			p++;
		if (*p)
			return FILES_RANGE_NONE;
		if (b == 0 || size == 0)
			return FILES_RANGE_UNSATISFIABLE;
		if (b > size)
			b = size;
		*start = size - b;
		*len = b;
		return FILES_RANGE_OK;
	}
	if (!parse_u64(&p, &a) || *p++ != '-')
		return FILES_RANGE_NONE;
	bool open_end = !(*p >= '0' && *p <= '9');
	if (!open_end && !parse_u64(&p, &b))
		return FILES_RANGE_NONE;
	while (*p == ' ')
		p++;
	if (*p || (!open_end && b < a))
		return FILES_RANGE_NONE;
	if (a >= size)
		return FILES_RANGE_UNSATISFIABLE;
	if (open_end || b >= size)
		b = size - 1;
	*start = a;
	*len = b - a + 1;
	return FILES_RANGE_OK;
}

bool files_if_range(const char *if_range, const char *etag, const char *last_modified)
{
	if (!if_range)
		return true;
	if (if_range[0] == '"' || (if_range[0] == 'W' && if_range[1] == '/'))
		return !strcmp(if_range, etag); /* strong comparison: a weak tag never matches */
	return last_modified && !strcmp(if_range, last_modified);
}
