/* fuzz_h1resp.c -- the HTTP/1.1 response parser over a stream of responses
 * (parsed one after the other, as on a kept-alive connection).  The first 8
 * bytes steer: bit 0 of byte 0 = the requests were HEAD, bytes 1..7 the sizes
 * of the pieces the stream arrives in.  Invariants: whole and in pieces give
 * the same events and the same header and body bytes; *used <= len; every
 * event that is not the end consumes a byte; names, values and body bytes lie
 * inside what the call consumed; a Content-Length body never exceeds its
 * length and a DONE one has exactly it; after DONE or ERROR the parser says
 * so again, consuming nothing. */
#include "edge/upstream/h1resp.h"
#include "tests/fuzz/fuzz_util.h"

/* What a run saw: events (BODY runs merged, NEED_MORE left out) and the
 * bytes of fields and bodies. */
struct rec {
	enum h1resp_event ev;
	unsigned status;
	int64_t cl;
	int framing;
	bool keep_alive;
	const char *error;
};

struct run {
	bool head;
	struct h1resp p;
	struct rec *rec;
	size_t nrec, caprec;
	uint8_t *bytes;
	size_t nbytes, capbytes;
	uint64_t body;    /* body bytes of the current response */
	bool over;        /* ERROR: nothing more is parsed */
	bool reinit;      /* DONE: the next byte starts a response */
};

static void bytes_add(struct run *r, const void *s, size_t n)
{
	FUZZ_CHECK(r->nbytes + n <= r->capbytes);
	memcpy(r->bytes + r->nbytes, s, n);
	r->nbytes += n;
}

static void record(struct run *r, enum h1resp_event ev, const char *in, size_t used)
{
	const struct h1resp *p = &r->p;
	if (ev == H1R_NEED_MORE)
		return;
	if (ev == H1R_BODY) {
		FUZZ_CHECK(p->data_len > 0 && p->data >= in && p->data + p->data_len <= in + used);
		bytes_add(r, p->data, p->data_len);
		r->body += p->data_len;
		if (p->framing == H1F_LENGTH)
			FUZZ_CHECK(r->body <= (uint64_t)p->content_length);
		if (r->nrec && r->rec[r->nrec - 1].ev == H1R_BODY)
			return;
	}
	if (ev == H1R_HEADER) {
		FUZZ_CHECK(p->name >= in && p->name + p->name_len <= in + used);
		FUZZ_CHECK(p->value >= in && p->value + p->value_len <= in + used);
		FUZZ_CHECK(p->name_len > 0);
		uint32_t l[2] = { (uint32_t)p->name_len, (uint32_t)p->value_len };
		bytes_add(r, l, sizeof l);
		bytes_add(r, p->name, p->name_len);
		bytes_add(r, p->value, p->value_len);
	}
	if (ev == H1R_DONE && p->framing == H1F_LENGTH)
		FUZZ_CHECK(r->body == (uint64_t)p->content_length);
	if (ev == H1R_DONE && p->framing == H1F_CLOSE)
		FUZZ_CHECK(!p->keep_alive);
	FUZZ_CHECK(r->nrec < r->caprec);
	struct rec *x = &r->rec[r->nrec++];
	x->ev = ev;
	x->status = p->status;
	x->cl = p->content_length;
	x->framing = (int)p->framing;
	x->keep_alive = ev == H1R_DONE && p->keep_alive;
	x->error = ev == H1R_ERROR ? p->error : NULL;
}

static bool rec_eq(const struct rec *a, const struct rec *b)
{
	return a->ev == b->ev && a->status == b->status && a->cl == b->cl && a->framing == b->framing &&
	       a->keep_alive == b->keep_alive && a->error == b->error;
}

/* Parses what buf[0..*have) holds, keeping the unconsumed tail at the front. */
static void run_feed(struct run *r, char *buf, size_t *have)
{
	while (!r->over) {
		if (r->reinit) {
			if (!*have)
				return;
			h1resp_init(&r->p, r->head);
			r->reinit = false;
			r->body = 0;
		}
		/* an exact-size copy: ASan sees any read past len */
		char *in = malloc(*have ? *have : 1);
		memcpy(in, buf, *have);
		size_t used = (size_t)-1;
		enum h1resp_event ev = h1resp_parse(&r->p, in, *have, &used);
		FUZZ_CHECK(used <= *have);
		if (ev != H1R_NEED_MORE && ev != H1R_DONE && ev != H1R_ERROR)
			FUZZ_CHECK(used > 0);
		record(r, ev, in, used);
		if (ev == H1R_DONE || ev == H1R_ERROR) {
			size_t again;
			FUZZ_CHECK(h1resp_parse(&r->p, in + used, *have - used, &again) == ev && again == 0);
		}
		free(in);
		memmove(buf, buf + used, *have - used);
		*have -= used;
		if (ev == H1R_NEED_MORE)
			return;
		if (ev == H1R_ERROR)
			r->over = true;
		if (ev == H1R_DONE)
			r->reinit = true;
	}
}

static void run_init(struct run *r, bool head, size_t size)
{
	memset(r, 0, sizeof *r);
	r->head = head;
	r->caprec = 2 * size + 8; /* each event but one DONE per response consumes a byte */
	r->rec = malloc(r->caprec * sizeof *r->rec);
	r->capbytes = 9 * size + 16; /* a field line of 3 bytes adds 8 of lengths */
	r->bytes = malloc(r->capbytes);
	h1resp_init(&r->p, head);
}

/* The stream s[0..n) in pieces: piece sizes from ctl (NULL: whole). */
static void run_stream(struct run *r, const uint8_t *s, size_t n, const uint8_t *ctl)
{
	char *buf = malloc(n + 1);
	size_t have = 0, at = 0;
	for (unsigned i = 0; at < n; i++) {
		size_t k = n - at;
		if (ctl) {
			uint8_t c = ctl[i % 7];
			size_t want = c & 0x80 ? 1 + (size_t)(c & 0x7f) * 4 : 1 + (size_t)(c % 32);
			if (want < k)
				k = want;
		}
		memcpy(buf + have, s + at, k);
		have += k;
		at += k;
		run_feed(r, buf, &have);
	}
	if (n == 0)
		run_feed(r, buf, &have);
	if (!r->over && !r->reinit)
		record(r, h1resp_eof(&r->p), NULL, 0);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 8)
		return 0;
	const uint8_t *s = data + 8;
	size_t n = size - 8;
	bool head = data[0] & 1;
	struct run whole, pieces;
	run_init(&whole, head, n);
	run_init(&pieces, head, n);
	run_stream(&whole, s, n, NULL);
	run_stream(&pieces, s, n, data + 1);
	FUZZ_CHECK(whole.nrec == pieces.nrec);
	for (size_t i = 0; i < whole.nrec; i++)
		FUZZ_CHECK(rec_eq(&whole.rec[i], &pieces.rec[i]));
	FUZZ_CHECK(whole.nbytes == pieces.nbytes);
	FUZZ_CHECK(memcmp(whole.bytes, pieces.bytes, whole.nbytes) == 0);
	free(whole.rec);
	free(whole.bytes);
	free(pieces.rec);
	free(pieces.bytes);
	return 0;
}
