/* fsutil.h -- small file-system helpers: mkdir -p, read a whole file into a
 * buf, write a file atomically.  Errors are returned with the reason (path
 * included) in err; errno is left as the failing call set it. */
#ifndef MINICDN_FSUTIL_H
#define MINICDN_FSUTIL_H

#include "common/buf.h"
#include <stddef.h>
#include <sys/types.h>

/* Creates path and any missing parents (parents 0755, path itself mode).
 * An existing directory is fine; an existing non-directory is ENOTDIR.
 * Returns 0 or -1. */
int fsutil_mkdir_p(const char *path, mode_t mode, char *err, size_t errlen);

/* Appends the whole file at path to out (on success out->data is not NULL,
 * even for an empty file, and stays NUL-terminated).
 * Refuses a file over max bytes (EFBIG, "larger than max bytes") without
 * reading more than max + 1 bytes of it; on any error out is left as it was.
 * Returns 0 or -1. */
int fsutil_read(const char *path, size_t max, struct buf *out, char *err, size_t errlen);

/* Writes len bytes to path so that after a crash path holds either the old
 * content or all of the new: a temporary file in the same folder (created
 * mode 0600, then set to exactly mode, umask aside) is written and fsync'd,
 * renamed over path, and the folder is fsync'd.  Returns 0 or -1 (the
 * temporary file is then removed and path untouched). */
int fsutil_write_atomic(const char *path, const void *data, size_t len, mode_t mode, char *err,
                        size_t errlen);

#endif
