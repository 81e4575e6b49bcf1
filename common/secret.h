/* secret.h -- shared secrets read from files, and lists of them for rotation.
 *
 * A configuration names a secret inline (control_secret = "...") or, so that
 * no secret sits in a deployed config, in a file (control_secret_file =
 * "/etc/minicdn/x.secret").  A path "%credentials%/NAME" is the file systemd
 * passes with LoadCredential=NAME ($CREDENTIALS_DIRECTORY/NAME); outside
 * systemd (a `-t` check run by hand or by Ansible) it is /etc/credstore/NAME,
 * where LoadCredential=NAME finds it.  Both keys may be lists: during a
 * rotation a receiver accepts every listed secret, a sender uses the first. */
#ifndef MINICDN_SECRET_H
#define MINICDN_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#define SECRET_CREDENTIALS "%credentials%/"
#define SECRET_CREDSTORE "/etc/credstore" /* where %credentials% points outside systemd */
#define SECRET_MAX 4096                   /* bytes in a secret file */

/* The file a configured path names ("%credentials%/NAME" resolved as above,
 * anything else unchanged).  Returns a malloc'd path. */
char *secret_path(const char *path);

/* 0 if path is a regular file with no group or other permission bits (a
 * secret readable by others is not a secret); -1 with the reason otherwise. */
int secret_check_file(const char *path, char *err, size_t errlen);

/* Reads a secret file (path resolved with secret_path): secret_check_file,
 * at most SECRET_MAX bytes, no NUL byte, one trailing newline (LF or CRLF)
 * dropped, not empty.  Returns a malloc'd string, or NULL with "PATH: reason". */
char *secret_read_file(const char *path, char *err, size_t errlen);

/* Reads files[0..nfiles) and appends their contents to the string list *list
 * of *n entries (a CFG_STRLIST as cfg_load makes it: malloc'd array of
 * malloc'd strings that cfg_free releases).  Returns 0, or -1 with the reason
 * and the list unchanged. */
int secret_append_files(char ***list, size_t *n, char *const *files, size_t nfiles, char *err,
                        size_t errlen);

#endif
