/* buf.h -- growable byte buffer, used to build responses and JSON.
 *
 * A buf owns its memory; buf_free releases it.  data is always NUL-terminated
 * (not counted in len) so text can be used as a C string. */
#ifndef MINICDN_BUF_H
#define MINICDN_BUF_H

#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
};

#define BUF_INIT { NULL, 0, 0 }

void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included. */
void buf_json_str(struct buf *b, const char *s);
void buf_reset(struct buf *b);
/* Gives the data to the caller (who frees it) and empties the buf. */
char *buf_steal(struct buf *b);
void buf_free(struct buf *b);

#endif
