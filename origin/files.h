/* files.h -- mapping request paths to files under the document root, safely,
 * and the validators (ETag, Last-Modified) and conditional-request logic
 * (RFC 9110 section 13) that go with them.
 *
 * Containment is checked twice: files_normalize refuses any ".." segment
 * (MHD has already percent-decoded the path, so "%2e%2e" arrives as ".."),
 * and files_open resolves symlinks with realpath() and refuses a target
 * outside the (resolved) root. */
#ifndef MINICDN_FILES_H
#define MINICDN_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define FILES_PATH_MAX 4096
#define FILES_ETAG_LEN 64

enum files_result {
	FILES_OK = 0,
	FILES_BAD_PATH,   /* ".." segment, control byte, backslash, not absolute: 400 */
	FILES_HIDDEN,     /* a segment starting with '.' (other than .well-known): 404 */
	FILES_NOT_FOUND,  /* 404 */
	FILES_FORBIDDEN,  /* resolves outside the root, not a regular file, unreadable: 403 */
	FILES_REDIRECT,   /* a directory requested without its trailing slash: 301 to path + "/" */
};

/* Normalises a decoded request path into out (outlen bytes): collapses "//"
 * and "/./", keeps a trailing slash.  Pure; no file system access. */
enum files_result files_normalize(const char *path, char *out, size_t outlen);

struct files_entry {
	int fd;          /* open, O_RDONLY; the caller owns it (hands it to MHD or closes it) */
	uint64_t size;
	time_t mtime;
	long mtime_nsec;
	char path[FILES_PATH_MAX]; /* resolved path of the file served (index file for directories) */
};

/* Opens the file for a normalised path under root_real (a realpath()'d root).
 * A path ending in '/' serves its index file.  Returns FILES_OK with out
 * filled, or another result (nothing to close). */
enum files_result files_open(const char *root_real, const char *norm, const char *index,
                             struct files_entry *out);

/* Strong validator from size and modification time: "\"<mtime>-<size>\"" in hex. */
void files_etag(uint64_t size, time_t mtime, long mtime_nsec, char out[FILES_ETAG_LEN]);

/* RFC 9110 section 13.2.2 for GET/HEAD: If-None-Match (weak comparison, "*",
 * lists) decides when present; otherwise If-Modified-Since (ignored when it
 * does not parse).  Either header may be NULL.  True means answer 304. */
bool files_not_modified(const char *if_none_match, const char *if_modified_since, const char *etag,
                        time_t mtime);

enum files_range { FILES_RANGE_NONE = 0, FILES_RANGE_OK, FILES_RANGE_UNSATISFIABLE };

/* RFC 9110 section 14: a single "bytes=" range against a representation of
 * size bytes.  Returns FILES_RANGE_OK with [*start, *start + *len), or
 * UNSATISFIABLE (answer 416), or NONE when the header is absent, malformed or
 * asks for several ranges (then the whole file is sent, which RFC 9110 allows). */
enum files_range files_range(const char *range, uint64_t size, uint64_t *start, uint64_t *len);

/* If-Range (RFC 9110 section 13.1.5): true if the Range header may be used --
 * no If-Range, or it equals the strong etag, or it is exactly the
 * Last-Modified date. */
bool files_if_range(const char *if_range, const char *etag, const char *last_modified);

#endif
