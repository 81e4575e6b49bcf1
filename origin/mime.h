/* mime.h -- file name to Content-Type */
#ifndef MINICDN_MIME_H
#define MINICDN_MIME_H

/* Content-Type for a path, from its extension (case-insensitive); text types
 * carry "; charset=utf-8".  Unknown or no extension: application/octet-stream.
 * The returned string is static. */
const char *mime_type(const char *path);

#endif
