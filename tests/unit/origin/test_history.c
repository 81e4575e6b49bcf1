/* test_history.c -- published bundle versions: names, write, reload, damaged versions dropped */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "origin/history.h"
#include "common/xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[64];
static uint8_t pk[BUNDLE_PK_LEN], sk[BUNDLE_SK_LEN];

static int setup(void **st)
{
	snprintf(root, sizeof root, "/tmp/test_history.XXXXXX");
	if (!mkdtemp(root))
		return -1;
	bundle_keygen(pk, sk);
	return 0;
}

static int teardown(void **st)
{
	char *cmd = xasprintf("rm -rf '%s'", root);
	int rc = system(cmd);
	free(cmd);
	return rc == 0 ? 0 : -1;
}

/* A signed envelope for a delete bundle of name at version v (the smallest
 * bundle that validates), with the key k. */
static char *envelope(const char *name, unsigned long long v, const uint8_t *k, size_t *len)
{
	struct bundle b = { .name = (char *)name, .version = v, .op = BUNDLE_OP_DELETE, .created = 1 };
	char err[256];
	size_t blen;
	char *bytes = bundle_serialize(&b, &blen, err, sizeof err);
	if (!bytes)
		fail_msg("%s", err);
	char *env = bundle_sign(bytes, blen, k, len);
	free(bytes);
	return env;
}

static void publish(struct history *h, const char *name, unsigned long long v, const uint8_t *k)
{
	char err[256];
	size_t len;
	char *env = envelope(name, v, k, &len);
	struct history_ver hv = { .version = v, .del = true, .created = 1, .rollback_of = v > 1 ? v - 1 : 0 };
	snprintf(hv.digest, sizeof hv.digest, "%016llx", v);
	assert_int_equal(history_write(h, name, &hv, env, len, err, sizeof err), 0);
	history_record(h, name, &hv, env, len);
}

static void test_names(void **st)
{
	assert_true(history_name_ok("geo-hello"));
	assert_true(history_name_ok("a.b_c-1"));
	assert_false(history_name_ok(NULL));
	assert_false(history_name_ok(""));
	assert_false(history_name_ok("."));
	assert_false(history_name_ok(".."));
	assert_false(history_name_ok(".hidden"));
	assert_false(history_name_ok("a/b"));
	assert_false(history_name_ok("a b"));
	char longname[BUNDLE_MAX_NAME + 2];
	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	assert_false(history_name_ok(longname));
	longname[BUNDLE_MAX_NAME] = '\0';
	assert_true(history_name_ok(longname));
}

static void test_write_and_reload(void **st)
{
	char err[256];
	struct history h;
	history_init(&h, root, pk);
	assert_int_equal(history_load(&h, err, sizeof err), 0); /* creates <root>/bundles */
	assert_int_equal(h.n, 0);
	publish(&h, "one", 1, sk);
	publish(&h, "one", 2, sk);
	publish(&h, "two", 5, sk);
	assert_int_equal(history_current(history_find(&h, "one")), 2);
	assert_int_equal(history_current(history_find(&h, "two")), 5);
	assert_int_equal(history_current(NULL), 0);
	assert_null(history_find(&h, "three"));
	size_t len;
	char *env = history_read_env(&h, "one", 1, &len, err, sizeof err);
	assert_non_null(env);
	assert_int_equal(strlen(env), len);
	free(env);
	assert_null(history_read_env(&h, "one", 9, &len, err, sizeof err));
	history_free(&h);

	/* A restart sees the same history, metadata included. */
	history_init(&h, root, pk);
	assert_int_equal(history_load(&h, err, sizeof err), 0);
	assert_int_equal(h.n, 2);
	assert_int_equal(history_versions(&h), 3);
	struct history_bundle *b = history_find(&h, "one");
	assert_non_null(b);
	assert_int_equal(b->n, 2);
	assert_int_equal(b->v[0].version, 1);
	assert_int_equal(b->v[1].version, 2);
	assert_true(b->v[1].del);
	assert_int_equal(b->v[1].rollback_of, 1);
	assert_string_equal(b->v[1].digest, "0000000000000002");
	assert_non_null(b->env);
	size_t elen;
	char *want = envelope("one", 2, sk, &elen);
	assert_int_equal(b->envlen, elen);
	assert_memory_equal(b->env, want, elen); /* Ed25519 signing is deterministic */
	free(want);
	history_free(&h);
}

static void test_damaged_dropped(void **st)
{
	char err[256];
	char *sub = xasprintf("%s/d", root);
	assert_int_equal(mkdir(sub, 0755), 0);
	struct history h;
	history_init(&h, sub, pk);
	assert_int_equal(history_load(&h, err, sizeof err), 0);
	uint8_t opk[BUNDLE_PK_LEN], osk[BUNDLE_SK_LEN];
	bundle_keygen(opk, osk);
	publish(&h, "keep", 1, sk);
	publish(&h, "keep", 2, osk);   /* signed with another key: not ours */
	publish(&h, "gone", 1, osk);   /* every version foreign: the name disappears */
	history_free(&h);
	/* Unreadable metadata for version 3: ignored. */
	char *bad = xasprintf("%s/bundles/keep/%020llu.meta", sub, 3ULL);
	FILE *f = fopen(bad, "w");
	assert_non_null(f);
	fputs("{not json", f);
	fclose(f);

	history_init(&h, sub, pk);
	assert_int_equal(history_load(&h, err, sizeof err), 0);
	assert_int_equal(h.n, 1);
	assert_null(history_find(&h, "gone"));
	assert_int_equal(history_current(history_find(&h, "keep")), 1);
	history_free(&h);
	free(bad);
	free(sub);
}

static void test_load_fails_on_a_file(void **st)
{
	char err[256];
	char *file = xasprintf("%s/file", root);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	struct history h;
	history_init(&h, file, pk); /* <file>/bundles cannot be created */
	assert_int_equal(history_load(&h, err, sizeof err), -1);
	assert_non_null(strstr(err, "/file: Not a directory"));
	history_free(&h);
	free(file);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_write_and_reload),
		cmocka_unit_test(test_damaged_dropped),
		cmocka_unit_test(test_load_fails_on_a_file),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
