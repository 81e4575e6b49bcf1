/* bundle-sign.c -- test tool: make keys and signed bundle envelopes (common/bundle.h)
 *
 *   bundle-sign keygen PUBFILE SECFILE
 *   bundle-sign sign SECFILE PATH VERSION      # dir or .lua file -> envelope on stdout
 *   bundle-sign delete SECFILE NAME VERSION    # signed unpush tombstone on stdout
 *   bundle-sign raw SECFILE FILE               # signs FILE's bytes as they are */
#include "common/bundle.h"
#include "common/xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int usage(void)
{
	fprintf(stderr, "usage: bundle-sign keygen PUB SEC | sign SEC PATH VERSION | "
	                "delete SEC NAME VERSION | raw SEC FILE\n");
	return 2;
}

int main(int argc, char **argv)
{
	char err[1024];
	uint8_t pk[BUNDLE_PK_LEN], sk[BUNDLE_SK_LEN];
	if (argc == 4 && !strcmp(argv[1], "keygen")) {
		bundle_keygen(pk, sk);
		if (bundle_key_write(argv[2], pk, sizeof pk, false, err, sizeof err) < 0 ||
		    bundle_key_write(argv[3], sk, sizeof sk, true, err, sizeof err) < 0) {
			fprintf(stderr, "bundle-sign: %s\n", err);
			return 1;
		}
		return 0;
	}
	if (argc < 4)
		return usage();
	if (bundle_key_read(argv[2], sk, sizeof sk, err, sizeof err) < 0) {
		fprintf(stderr, "bundle-sign: %s\n", err);
		return 1;
	}
	char *bytes = NULL;
	size_t len = 0;
	if (!strcmp(argv[1], "raw") && argc == 4) {
		FILE *f = fopen(argv[3], "rb");
		if (!f) {
			perror(argv[3]);
			return 1;
		}
		bytes = xmalloc(BUNDLE_MAX_BYTES + 2);
		len = fread(bytes, 1, BUNDLE_MAX_BYTES + 1, f);
		fclose(f);
	} else if (argc == 5 && (!strcmp(argv[1], "sign") || !strcmp(argv[1], "delete"))) {
		struct bundle *b;
		if (!strcmp(argv[1], "sign")) {
			b = bundle_load_path(argv[3], err, sizeof err);
			if (!b) {
				fprintf(stderr, "bundle-sign: %s\n", err);
				return 1;
			}
		} else {
			b = xcalloc(1, sizeof *b);
			b->name = xstrdup(argv[3]);
			b->op = BUNDLE_OP_DELETE;
		}
		b->version = strtoull(argv[4], NULL, 10);
		b->created = (long long)time(NULL);
		bytes = bundle_serialize(b, &len, err, sizeof err);
		bundle_free(b);
		if (!bytes) {
			fprintf(stderr, "bundle-sign: %s\n", err);
			return 1;
		}
	} else {
		return usage();
	}
	size_t envlen;
	char *env = bundle_sign(bytes, len, sk, &envlen);
	fwrite(env, 1, envlen, stdout);
	free(env);
	free(bytes);
	return 0;
}
