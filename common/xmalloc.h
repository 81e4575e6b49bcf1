/* xmalloc.h -- allocation that aborts on out-of-memory.
 *
 * A daemon that cannot allocate a few bytes cannot do anything useful, and
 * checking every small allocation hides the real error paths; so we abort in
 * one place (as Redis does).  Sizes that came from the network must be bounded
 * by the caller *before* calling these. */
#ifndef MINICDN_XMALLOC_H
#define MINICDN_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a malloc'd string formatted like printf; caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
