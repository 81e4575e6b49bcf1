/* h1resp.h -- an incremental, strict HTTP/1.1 response parser (RFC 9112)
 * for the edge's own origin client.  No I/O and no allocation: the caller
 * reads from the socket into its buffer and calls h1resp_parse on the bytes
 * it has not consumed yet; each call reports one event and how many bytes it
 * consumed.  Events point into the caller's input, valid until it next
 * changes the buffer.
 *
 * The head must arrive whole line by line: a line not yet terminated gives
 * H1R_NEED_MORE with nothing consumed, and the caller keeps the partial line
 * and reads more; a line is refused as soon as the part in cannot fit the
 * bounds below, so a buffer of H1RESP_MAX_HEAD bytes always makes progress.
 * Body bytes are reported as soon as they are in. */
#ifndef MINICDN_EDGE_H1RESP_H
#define MINICDN_EDGE_H1RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The whole head (status line and fields, of one response including its 1xx
 * interims) and a chunk-size or trailer line may not be longer than this. */
#define H1RESP_MAX_HEAD (64u << 10)
#define H1RESP_MAX_LINE 4096u

enum h1resp_event {
	H1R_NEED_MORE,   /* more input needed; everything reported consumed */
	H1R_STATUS,      /* a status line: status (also for a 1xx interim) */
	H1R_HEADER,      /* one field line: name/name_len, value/value_len (OWS trimmed) */
	H1R_HEADERS_END, /* end of a head; after a 1xx interim a new status line follows */
	H1R_BODY,        /* body bytes, framing removed: data/data_len */
	H1R_DONE,        /* the response is complete; bytes after it are the next one's */
	H1R_ERROR,       /* malformed or refused: error (static text) */
};

enum h1resp_framing {
	H1F_NONE,        /* no body: HEAD, 1xx, 204, 304 */
	H1F_LENGTH,      /* Content-Length */
	H1F_CHUNKED,     /* Transfer-Encoding ending in chunked */
	H1F_CLOSE,       /* neither: the body ends when the connection closes */
};

struct h1resp {
	/* results, valid after the event that sets them */
	unsigned status;           /* after H1R_STATUS */
	unsigned minor;            /* HTTP/1.<minor> */
	int64_t content_length;    /* after H1R_HEADERS_END: -1 when not given (or chunked) */
	enum h1resp_framing framing;
	bool keep_alive;           /* after H1R_DONE: the connection may carry another request */
	const char *name, *value;  /* H1R_HEADER */
	size_t name_len, value_len;
	const char *data;          /* H1R_BODY */
	size_t data_len;
	const char *error;         /* H1R_ERROR */
	/* parser state (private) */
	bool head;                 /* the request was HEAD */
	int state;
	size_t head_bytes;
	uint64_t left;             /* body or chunk bytes still to come */
	bool saw_cl, saw_te, te_chunked, conn_close, conn_keep;
};

/* Ready for the response to a request; head: it was a HEAD. */
void h1resp_init(struct h1resp *p, bool head);

/* Parses from in[0..len), sets *used to the bytes consumed (<= len) and
 * reports the event that stopped it.  After H1R_DONE or H1R_ERROR it reports
 * the same again until h1resp_init. */
enum h1resp_event h1resp_parse(struct h1resp *p, const char *in, size_t len, size_t *used);

/* The connection closed (no more input): H1R_DONE if that ends the
 * response (a close-delimited body), else H1R_ERROR (truncated). */
enum h1resp_event h1resp_eof(struct h1resp *p);

#endif
