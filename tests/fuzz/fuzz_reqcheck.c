/* fuzz_reqcheck.c -- the strict request-head check (common/reqcheck) on
 * heads cut from raw bytes the way a lenient parser would: first line
 * "METHOD TARGET VERSION", then "name:value" lines, a line starting with
 * whitespace marked folded.  Invariants: a head passed as OK has at most one
 * Host, never both Content-Length and Transfer-Encoding, no CR/LF/NUL in a
 * value and no NUL or space in the target. */
#include "common/reqcheck.h"
#include "tests/fuzz/fuzz_util.h"

#include <strings.h>

#define MAXH 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line[MAXH + 1], *mem;
	size_t n = fuzz_split(data, size, line, MAXH + 1, &mem);
	/* Request line: split at the first and last space; the target keeps its bytes. */
	char *l0 = line[0];
	size_t l0len = strlen(l0);
	char *sp1 = strchr(l0, ' '), *sp2 = strrchr(l0, ' ');
	const char *method = "GET", *version = "HTTP/1.1", *target = l0;
	size_t tlen = l0len;
	if (sp1 && sp2 && sp1 != sp2) {
		*sp1 = '\0';
		*sp2 = '\0';
		method = l0;
		target = sp1 + 1;
		tlen = (size_t)(sp2 - target);
		version = sp2 + 1;
	}
	struct reqcheck_hdr h[MAXH];
	size_t nh = 0;
	for (size_t i = 1; i < n && nh < MAXH; i++) {
		char *l = line[i];
		size_t len = strlen(l);
		if (len && l[len - 1] == '\r')
			l[--len] = '\0';
		char *colon = strchr(l, ':');
		h[nh].folded = (l[0] == ' ' || l[0] == '\t');
		h[nh].name = l;
		h[nh].name_len = colon ? (size_t)(colon - l) : len;
		h[nh].value = colon ? colon + 1 : "";
		while (*h[nh].value == ' ')
			h[nh].value++;
		h[nh].value_len = strlen(h[nh].value);
		nh++;
	}
	struct reqcheck_head r = { .method = method, .target = target, .target_len = tlen,
	                           .version = version, .h = h, .nh = nh };
	enum reqcheck_reason why = reqcheck_head(&r);
	FUZZ_CHECK((unsigned)why < REQCHECK_N);
	FUZZ_CHECK(reqcheck_status(why) == 400 || reqcheck_status(why) == 501);
	FUZZ_CHECK(reqcheck_name(why)[0] != '?');
	if (why == REQCHECK_OK) {
		int hosts = 0, cl = 0, te = 0;
		for (size_t i = 0; i < nh; i++) {
			FUZZ_CHECK(!h[i].folded);
			for (size_t k = 0; k < h[i].value_len; k++)
				FUZZ_CHECK(h[i].value[k] != '\r' && h[i].value[k] != '\n');
			hosts += h[i].name_len == 4 && !strncasecmp(h[i].name, "host", 4);
			cl += h[i].name_len == 14 && !strncasecmp(h[i].name, "content-length", 14);
			te += h[i].name_len == 17 && !strncasecmp(h[i].name, "transfer-encoding", 17);
		}
		FUZZ_CHECK(hosts <= 1 && !(cl && te));
		FUZZ_CHECK(memchr(target, '\0', tlen) == NULL && memchr(target, ' ', tlen) == NULL);
	}
	/* The raw input as a target, NULs included. */
	(void)reqcheck_target((const char *)data, size);
	free(mem);
	return 0;
}
