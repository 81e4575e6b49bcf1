/* secret.c -- shared secrets read from files, and lists of them for rotation */
#include "common/secret.h"
#include "common/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *secret_path(const char *path)
{
	size_t pl = strlen(SECRET_CREDENTIALS);
	if (strncmp(path, SECRET_CREDENTIALS, pl))
		return xstrdup(path);
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	return xasprintf("%s/%s", dir && dir[0] ? dir : SECRET_CREDSTORE, path + pl);
}

static int check_stat(const struct stat *st, char *err, size_t errlen)
{
	if (!S_ISREG(st->st_mode)) {
		snprintf(err, errlen, "not a regular file");
		return -1;
	}
	if (st->st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, errlen, "mode %03o lets group or others in; chmod 600 it (or 400) "
		         "and make the daemon's user its owner, or pass it with LoadCredential=",
		         (unsigned)(st->st_mode & 0777));
		return -1;
	}
	return 0;
}

int secret_check_file(const char *path, char *err, size_t errlen)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	return check_stat(&st, err, errlen);
}

char *secret_read_file(const char *path, char *err, size_t errlen)
{
	char *p = secret_path(path), *out = NULL;
	char why[256], buf[SECRET_MAX + 1];
	struct stat st;
	int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		snprintf(why, sizeof why, "%s", strerror(errno));
		goto fail;
	}
	/* fstat on the opened file: no window between the check and the read. */
	if (fstat(fd, &st) < 0) {
		snprintf(why, sizeof why, "%s", strerror(errno));
		goto fail;
	}
	if (check_stat(&st, why, sizeof why) < 0)
		goto fail;
	size_t len = 0;
	for (;;) {
		ssize_t r = read(fd, buf + len, sizeof buf - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(why, sizeof why, "%s", strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > SECRET_MAX) {
			snprintf(why, sizeof why, "longer than %d bytes", SECRET_MAX);
			goto fail;
		}
	}
	if (len && buf[len - 1] == '\n')
		len--;
	if (len && buf[len - 1] == '\r')
		len--;
	if (!len) {
		snprintf(why, sizeof why, "empty");
		goto fail;
	}
	if (memchr(buf, '\0', len)) {
		snprintf(why, sizeof why, "contains a NUL byte");
		goto fail;
	}
	out = xstrndup(buf, len);
	goto done;
fail:
	snprintf(err, errlen, "%s: %s", p, why);
done:
	explicit_bzero(buf, sizeof buf);
	if (fd >= 0)
		close(fd);
	free(p);
	return out;
}

int secret_append_files(char ***list, size_t *n, char *const *files, size_t nfiles, char *err,
                        size_t errlen)
{
	if (!nfiles)
		return 0;
	char **read = xcalloc(nfiles, sizeof *read);
	for (size_t i = 0; i < nfiles; i++) {
		if (!(read[i] = secret_read_file(files[i], err, errlen))) {
			while (i--)
				free(read[i]);
			free(read);
			return -1;
		}
	}
	/* cfg_load's string lists end with a NULL after the last entry. */
	char **l = xrealloc(*list, (*n + nfiles + 1) * sizeof *l);
	memcpy(l + *n, read, nfiles * sizeof *read);
	*n += nfiles;
	l[*n] = NULL;
	*list = l;
	free(read);
	return 0;
}
