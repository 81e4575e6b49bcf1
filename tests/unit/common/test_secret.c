/* test_secret.c -- secrets from files: permissions, newline, credentials, lists */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/cfg.h"
#include "common/httpd.h"
#include "common/secret.h"
#include "common/xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static int setup(void **st)
{
	snprintf(dir, sizeof dir, "/tmp/minicdn-secret.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **st)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Writes dir/name with the given bytes and mode; returns the malloc'd path. */
static char *put(const char *name, const char *bytes, size_t len, mode_t mode)
{
	char *p = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(bytes, 1, len, f), len);
	fclose(f);
	assert_int_equal(chmod(p, mode), 0);
	return p;
}

static void test_read_strips_one_newline(void **st)
{
	char err[256];
	char *p = put("a", "s3cret\n", 7, 0600);
	char *s = secret_read_file(p, err, sizeof err);
	assert_string_equal(s, "s3cret");
	free(s);
	free(p);
	p = put("b", "s3cret\r\n", 8, 0400);
	s = secret_read_file(p, err, sizeof err);
	assert_string_equal(s, "s3cret");
	free(s);
	free(p);
	/* Only one newline goes: the rest is the secret's own. */
	p = put("c", "two\n\n", 5, 0600);
	s = secret_read_file(p, err, sizeof err);
	assert_string_equal(s, "two\n");
	free(s);
	free(p);
}

static void test_refuses_readable_by_others(void **st)
{
	char err[256];
	static const mode_t bad[] = { 0644, 0640, 0604, 0620, 0601 };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *p = put("open", "s3cret", 6, bad[i]);
		err[0] = 0;
		assert_null(secret_read_file(p, err, sizeof err));
		assert_non_null(strstr(err, "lets group or others in"));
		assert_non_null(strstr(err, p)); /* the message names the file */
		assert_int_equal(secret_check_file(p, err, sizeof err), -1);
		free(p);
	}
}

static void test_refuses_bad_content(void **st)
{
	char err[256];
	char *p = put("empty", "\n", 1, 0600);
	assert_null(secret_read_file(p, err, sizeof err));
	assert_non_null(strstr(err, "empty"));
	free(p);
	p = put("nul", "ab\0cd", 5, 0600);
	assert_null(secret_read_file(p, err, sizeof err));
	assert_non_null(strstr(err, "NUL"));
	free(p);
	char big[SECRET_MAX + 2];
	memset(big, 'x', sizeof big);
	p = put("big", big, sizeof big, 0600);
	assert_null(secret_read_file(p, err, sizeof err));
	assert_non_null(strstr(err, "longer than"));
	free(p);
	p = xasprintf("%s/missing", dir);
	assert_null(secret_read_file(p, err, sizeof err));
	free(p);
	assert_null(secret_read_file(dir, err, sizeof err)); /* a folder */
}

static void test_credentials_path(void **st)
{
	char err[256];
	setenv("CREDENTIALS_DIRECTORY", dir, 1);
	char *p = secret_path("%credentials%/edge-control");
	char *want = xasprintf("%s/edge-control", dir);
	assert_string_equal(p, want);
	free(p);
	free(want);
	char *f = put("edge-control", "from-credential\n", 16, 0400);
	char *s = secret_read_file("%credentials%/edge-control", err, sizeof err);
	assert_string_equal(s, "from-credential");
	free(s);
	free(f);
	unsetenv("CREDENTIALS_DIRECTORY");
	p = secret_path("%credentials%/edge-control");
	assert_string_equal(p, "/etc/credstore/edge-control");
	free(p);
	p = secret_path("/etc/minicdn/x.secret");
	assert_string_equal(p, "/etc/minicdn/x.secret");
	free(p);
}

/* A config's control_secret list grows by the files' contents, in order, and
 * cfg_free releases everything; a relative file is taken from the config's
 * folder, "%credentials%/" is left for secret_path. */
struct conf {
	char **secret;
	size_t nsecret;
	char **file;
	size_t nfile;
};
static const struct cfg_key keys[] = {
	{ .name = "secret", .type = CFG_STRLIST, .offset = offsetof(struct conf, secret),
	  .count_offset = offsetof(struct conf, nsecret) },
	{ .name = "secret_file", .type = CFG_STRLIST, .offset = offsetof(struct conf, file),
	  .count_offset = offsetof(struct conf, nfile), .flags = CFG_PATH },
	CFG_END,
};

static void test_list_from_config(void **st)
{
	char err[256];
	char *a = put("old", "old-secret\n", 11, 0600);
	char *b = put("new", "new-secret\n", 11, 0600);
	char *cf = put("x.conf", "secret = \"inline\"; secret_file = [ \"old\", \"new\" ];\n", 51, 0644);
	struct conf c = { 0 };
	assert_int_equal(cfg_load(cf, keys, &c, err, sizeof err), 0);
	assert_int_equal(c.nsecret, 1); /* a single string is a list of one */
	assert_int_equal(c.nfile, 2);
	assert_string_equal(c.file[1], b);
	assert_int_equal(secret_append_files(&c.secret, &c.nsecret, c.file, c.nfile, err, sizeof err), 0);
	assert_int_equal(c.nsecret, 3);
	assert_string_equal(c.secret[0], "inline");
	assert_string_equal(c.secret[1], "old-secret");
	assert_string_equal(c.secret[2], "new-secret");
	assert_null(c.secret[3]);
	/* What the control APIs then accept: each of them. */
	assert_true(httpd_bearer_any("Bearer inline", c.secret, c.nsecret));
	assert_true(httpd_bearer_any("Bearer old-secret", c.secret, c.nsecret));
	assert_true(httpd_bearer_any("Bearer new-secret", c.secret, c.nsecret));
	assert_false(httpd_bearer_any("Bearer new-secre", c.secret, c.nsecret));
	assert_false(httpd_bearer_any("Bearer new-secret\n", c.secret, c.nsecret));
	cfg_free(keys, &c);

	/* One unreadable file: error, and the list stays as it was. */
	chmod(b, 0644);
	memset(&c, 0, sizeof c);
	assert_int_equal(cfg_load(cf, keys, &c, err, sizeof err), 0);
	assert_int_equal(secret_append_files(&c.secret, &c.nsecret, c.file, c.nfile, err, sizeof err), -1);
	assert_int_equal(c.nsecret, 1);
	assert_non_null(strstr(err, "new"));
	cfg_free(keys, &c);

	free(cf);
	cf = put("y.conf", "secret_file = \"%credentials%/k\";\n", 33, 0644);
	memset(&c, 0, sizeof c);
	assert_int_equal(cfg_load(cf, keys, &c, err, sizeof err), 0);
	assert_string_equal(c.file[0], "%credentials%/k");
	cfg_free(keys, &c);
	free(a);
	free(b);
	free(cf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_strips_one_newline),
		cmocka_unit_test(test_refuses_readable_by_others),
		cmocka_unit_test(test_refuses_bad_content),
		cmocka_unit_test(test_credentials_path),
		cmocka_unit_test(test_list_from_config),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
