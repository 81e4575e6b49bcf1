/* cmd_keygen.c -- `minicdnctl keygen [--force] [PREFIX]`: a new Ed25519 key pair.
 *
 * Writes PREFIX.key (secret, mode 0600: the origin's push.secret_key) and
 * PREFIX.pub (public: what every edge is configured with), in the key file
 * format of common/bundle.h.  PREFIX defaults to <keys_dir>/origin.  Existing
 * keys are kept unless --force: replacing the key means reconfiguring every edge. */
#include "common/bundle.h"
#include "common/fsutil.h"
#include "common/xmalloc.h"
#include "origin/ctl/ctl.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* mkdir -p for the folder part of path; the folder itself is 0700 since it
 * holds the secret key. */
static int make_parent(const char *path, char *err, size_t errlen)
{
	const char *slash = strrchr(path, '/');
	if (!slash || slash == path)
		return 0;
	char *d = xstrndup(path, (size_t)(slash - path));
	int rc = fsutil_mkdir_p(d, 0700, err, errlen);
	free(d);
	return rc;
}

CTL_COMMAND(keygen)
{
	bool force = false;
	const char *prefix = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--force"))
			force = true;
		else if (argv[i][0] == '-' || prefix) {
			fprintf(stderr, "usage: minicdnctl keygen [--force] [PREFIX]   (writes PREFIX.key and PREFIX.pub)\n");
			return 2;
		} else
			prefix = argv[i];
	}
	char *def = NULL;
	if (!prefix)
		prefix = def = xasprintf("%s/origin", ctl->cfg.keys_dir ? ctl->cfg.keys_dir : "run/keys");
	char *skf = xasprintf("%s.key", prefix), *pkf = xasprintf("%s.pub", prefix);
	int rc = 1;
	char err[512];
	uint8_t pk[BUNDLE_PK_LEN], sk[BUNDLE_SK_LEN];

	if (!force && (access(skf, F_OK) == 0 || access(pkf, F_OK) == 0)) {
		fprintf(stderr, "minicdnctl: %s or %s exists; use --force to replace the key pair "
		                "(every edge then needs the new public key)\n", skf, pkf);
		goto out;
	}
	if (make_parent(skf, err, sizeof err) < 0) {
		fprintf(stderr, "minicdnctl: %s\n", err);
		goto out;
	}
	bundle_keygen(pk, sk);
	if (bundle_key_write(skf, sk, sizeof sk, true, err, sizeof err) < 0 ||
	    bundle_key_write(pkf, pk, sizeof pk, false, err, sizeof err) < 0) {
		fprintf(stderr, "minicdnctl: %s\n", err);
		goto out;
	}
	char hex[BUNDLE_PK_LEN * 2 + 1];
	sodium_bin2hex(hex, sizeof hex, pk, sizeof pk);
	printf("secret key: %s (mode 0600; the origin's push.secret_key)\n"
	       "public key: %s (configure it on every edge)\n"
	       "public key fingerprint: %.16s\n", skf, pkf, hex);
	rc = 0;
out:
	sodium_memzero(sk, sizeof sk);
	free(skf);
	free(pkf);
	free(def);
	return rc;
}
