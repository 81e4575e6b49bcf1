/* fsutil.c -- mkdir -p, whole-file read, atomic write */
#include "common/fsutil.h"
#include "common/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* mkdir that accepts an existing directory (and only a directory). */
static int mkdir_one(const char *path, mode_t mode)
{
	if (mkdir(path, mode) == 0)
		return 0;
	if (errno != EEXIST)
		return -1;
	struct stat st;
	if (stat(path, &st) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

int fsutil_mkdir_p(const char *path, mode_t mode, char *err, size_t errlen)
{
	if (!path[0]) {
		errno = ENOENT;
		snprintf(err, errlen, "cannot create an empty path");
		return -1;
	}
	char *tmp = xstrdup(path);
	int rc = -1;
	for (size_t n = strlen(tmp); n > 1 && tmp[n - 1] == '/';)
		tmp[--n] = '\0'; /* "a/b/" is "a/b": the last component gets mode */
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/' || p[-1] == '/')
			continue;
		*p = '\0';
		if (mkdir_one(tmp, 0755) < 0)
			goto fail;
		*p = '/';
	}
	if (mkdir_one(tmp, mode) < 0)
		goto fail;
	rc = 0;
	goto out;
fail:;
	int e = errno;
	snprintf(err, errlen, "cannot create %.200s: %s", tmp, strerror(e));
	errno = e;
out:
	free(tmp);
	return rc;
}

int fsutil_read(const char *path, size_t max, struct buf *out, char *err, size_t errlen)
{
	size_t start = out->len;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		goto fail;
	for (;;) {
		/* Room for max + 1 bytes at most: one byte past max proves it too big. */
		size_t want = 65536, got = out->len - start;
		if (want > max + 1 - got)
			want = max + 1 - got;
		buf_reserve(out, want);
		ssize_t n = read(fd, out->data + out->len, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0) {
			out->data[out->len] = '\0';
			break;
		}
		out->len += (size_t)n;
		out->data[out->len] = '\0';
		if (out->len - start > max) {
			errno = EFBIG;
			snprintf(err, errlen, "%.200s: larger than %zu bytes", path, max);
			goto undo;
		}
	}
	close(fd);
	return 0;
fail:;
	int e = errno;
	snprintf(err, errlen, "%.200s: %s", path, strerror(e));
	errno = e;
undo:
	if (fd >= 0) {
		int e2 = errno;
		close(fd);
		errno = e2;
	}
	out->len = start;
	if (out->data)
		out->data[start] = '\0';
	return -1;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Makes the rename durable.  A file system that cannot sync a folder
 * (EINVAL) gives no stronger guarantee to have; anything else is an error. */
static int sync_dir(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	int rc = fsync(dfd) < 0 && errno != EINVAL ? -1 : 0;
	int e = errno;
	close(dfd);
	errno = e;
	return rc;
}

int fsutil_write_atomic(const char *path, const void *data, size_t len, mode_t mode, char *err,
                        size_t errlen)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup(".");
	char *tmp = xasprintf("%s/.%s.XXXXXX", dir, slash ? slash + 1 : path);
	const char *what = tmp;
	int rc = -1, e;
	/* mkostemp: a unique name, so concurrent writers of one path never share
	 * a temporary file; created 0600, so a secret is never readable. */
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		goto fail;
	if (fchmod(fd, mode) < 0 || write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		e = errno;
		close(fd);
		errno = e;
		goto fail_unlink;
	}
	if (close(fd) < 0)
		goto fail_unlink;
	what = path;
	if (rename(tmp, path) < 0)
		goto fail_unlink;
	what = dir;
	if (sync_dir(dir) < 0)
		goto fail;
	rc = 0;
	goto out;
fail_unlink:
	e = errno;
	unlink(tmp);
	errno = e;
fail:
	e = errno;
	snprintf(err, errlen, "%.200s: %s", what, strerror(e));
	errno = e;
out:
	free(tmp);
	free(dir);
	return rc;
}
