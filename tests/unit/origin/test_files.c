/* test_files.c -- path normalisation, containment (symlinks), validators, 304 logic */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/httpdate.h"
#include "origin/files.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void norm_ok(const char *in, const char *want)
{
	char out[FILES_PATH_MAX];
	assert_int_equal(files_normalize(in, out, sizeof out), FILES_OK);
	assert_string_equal(out, want);
}

static void test_normalize(void **state)
{
	char out[FILES_PATH_MAX];
	norm_ok("/", "/");
	norm_ok("/index.html", "/index.html");
	norm_ok("//a///b", "/a/b");
	norm_ok("/a/./b/.", "/a/b");
	norm_ok("/a/b/", "/a/b/");
	norm_ok("/.well-known/x", "/.well-known/x");
	norm_ok("/a..b/c", "/a..b/c");       /* dots inside a name are fine */
	assert_int_equal(files_normalize("/../etc/passwd", out, sizeof out), FILES_BAD_PATH);
	assert_int_equal(files_normalize("/a/../../x", out, sizeof out), FILES_BAD_PATH);
	assert_int_equal(files_normalize("/a/..", out, sizeof out), FILES_BAD_PATH);
	assert_int_equal(files_normalize("/a\\..\\b", out, sizeof out), FILES_BAD_PATH);
	assert_int_equal(files_normalize("/a\x01" "b", out, sizeof out), FILES_BAD_PATH);
	assert_int_equal(files_normalize("relative", out, sizeof out), FILES_BAD_PATH);
	assert_int_equal(files_normalize("", out, sizeof out), FILES_BAD_PATH);
	assert_int_equal(files_normalize("/.git/config", out, sizeof out), FILES_HIDDEN);
	assert_int_equal(files_normalize("/a/.env", out, sizeof out), FILES_HIDDEN);
	/* too long for the output */
	char small[8];
	assert_int_equal(files_normalize("/abcdefghij", small, sizeof small), FILES_BAD_PATH);
}

static char tmpl[64];
static char root_real[PATH_MAX];

static void put(const char *rel, const char *text)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/%s", tmpl, rel);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	snprintf(tmpl, sizeof tmpl, "/tmp/minicdn-files-XXXXXX");
	if (!mkdtemp(tmpl))
		return -1;
	char p[PATH_MAX], q[PATH_MAX];
	snprintf(p, sizeof p, "%s/root", tmpl);
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/root/dir", tmpl);
	mkdir(p, 0755);
	put("root/index.html", "home");
	put("root/dir/index.html", "dir home");
	put("root/a.txt", "hello");
	put("secret.txt", "outside");
	snprintf(p, sizeof p, "%s/secret.txt", tmpl);
	snprintf(q, sizeof q, "%s/root/escape.txt", tmpl);
	if (symlink(p, q) < 0)
		return -1;
	snprintf(p, sizeof p, "%s", tmpl);
	snprintf(q, sizeof q, "%s/root/up", tmpl);
	if (symlink(p, q) < 0) /* a directory symlink pointing out */
		return -1;
	snprintf(q, sizeof q, "%s/root/inside.txt", tmpl);
	if (symlink("a.txt", q) < 0) /* a symlink that stays inside is fine */
		return -1;
	snprintf(p, sizeof p, "%s/root", tmpl);
	if (!realpath(p, root_real))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_open(void **state)
{
	struct files_entry fe;
	assert_int_equal(files_open(root_real, "/a.txt", "index.html", &fe), FILES_OK);
	assert_int_equal(fe.size, 5);
	char buf[16] = { 0 };
	assert_int_equal(read(fe.fd, buf, sizeof buf), 5);
	assert_string_equal(buf, "hello");
	close(fe.fd);

	assert_int_equal(files_open(root_real, "/", "index.html", &fe), FILES_OK);
	assert_int_equal(fe.size, 4);
	close(fe.fd);
	assert_int_equal(files_open(root_real, "/dir/", "index.html", &fe), FILES_OK);
	assert_int_equal(fe.size, 8);
	close(fe.fd);
	assert_int_equal(files_open(root_real, "/dir", "index.html", &fe), FILES_REDIRECT);
	assert_int_equal(files_open(root_real, "/nope.txt", "index.html", &fe), FILES_NOT_FOUND);
	assert_int_equal(files_open(root_real, "/a.txt/", "index.html", &fe), FILES_NOT_FOUND);
	/* symlinks out of the root are refused, whether file or directory */
	assert_int_equal(files_open(root_real, "/escape.txt", "index.html", &fe), FILES_FORBIDDEN);
	assert_int_equal(files_open(root_real, "/up/secret.txt", "index.html", &fe), FILES_FORBIDDEN);
	assert_int_equal(files_open(root_real, "/inside.txt", "index.html", &fe), FILES_OK);
	assert_int_equal(fe.size, 5);
	close(fe.fd);
}

static void test_etag(void **state)
{
	char a[FILES_ETAG_LEN], b[FILES_ETAG_LEN], c[FILES_ETAG_LEN];
	files_etag(100, 1700000000, 5000, a);
	files_etag(101, 1700000000, 5000, b);
	files_etag(100, 1700000000, 6000, c);
	assert_int_equal(a[0], '"');
	assert_int_equal(a[strlen(a) - 1], '"');
	assert_string_not_equal(a, b);
	assert_string_not_equal(a, c);
}

static void test_not_modified(void **state)
{
	const char *et = "\"abc-12\"";
	time_t mt = 1700000000;
	char d_same[HTTPDATE_LEN], d_later[HTTPDATE_LEN], d_earlier[HTTPDATE_LEN];
	httpdate_format(mt, d_same);
	httpdate_format(mt + 10, d_later);
	httpdate_format(mt - 10, d_earlier);

	assert_false(files_not_modified(NULL, NULL, et, mt));
	assert_true(files_not_modified("\"abc-12\"", NULL, et, mt));
	assert_true(files_not_modified("W/\"abc-12\"", NULL, et, mt));        /* weak comparison */
	assert_true(files_not_modified("\"x\", \"abc-12\"", NULL, et, mt));   /* list */
	assert_true(files_not_modified("*", NULL, et, mt));
	assert_false(files_not_modified("\"abc-1\"", NULL, et, mt));
	assert_false(files_not_modified("\"abc-123\"", NULL, et, mt));
	assert_true(files_not_modified(NULL, d_same, et, mt));
	assert_true(files_not_modified(NULL, d_later, et, mt));
	assert_false(files_not_modified(NULL, d_earlier, et, mt));
	assert_false(files_not_modified(NULL, "garbage", et, mt));
	/* If-None-Match decides when present, even if the date would say 304 */
	assert_false(files_not_modified("\"other\"", d_later, et, mt));
}

static void test_range(void **state)
{
	uint64_t st, len;
	assert_int_equal(files_range(NULL, 100, &st, &len), FILES_RANGE_NONE);
	assert_int_equal(files_range("bytes=0-9", 100, &st, &len), FILES_RANGE_OK);
	assert_int_equal(st, 0);
	assert_int_equal(len, 10);
	assert_int_equal(files_range("bytes=90-", 100, &st, &len), FILES_RANGE_OK);
	assert_int_equal(st, 90);
	assert_int_equal(len, 10);
	assert_int_equal(files_range("bytes=90-1000", 100, &st, &len), FILES_RANGE_OK); /* clamped */
	assert_int_equal(len, 10);
	assert_int_equal(files_range("bytes=-5", 100, &st, &len), FILES_RANGE_OK);       /* suffix */
	assert_int_equal(st, 95);
	assert_int_equal(len, 5);
	assert_int_equal(files_range("bytes=-500", 100, &st, &len), FILES_RANGE_OK);
	assert_int_equal(st, 0);
	assert_int_equal(len, 100);
	assert_int_equal(files_range("bytes=100-", 100, &st, &len), FILES_RANGE_UNSATISFIABLE);
	assert_int_equal(files_range("bytes=-0", 100, &st, &len), FILES_RANGE_UNSATISFIABLE);
	assert_int_equal(files_range("bytes=0-", 0, &st, &len), FILES_RANGE_UNSATISFIABLE);
	/* ignored: malformed, reversed, other units, several ranges */
	assert_int_equal(files_range("bytes=9-0", 100, &st, &len), FILES_RANGE_NONE);
	assert_int_equal(files_range("bytes=a-b", 100, &st, &len), FILES_RANGE_NONE);
	assert_int_equal(files_range("bytes=0-1x", 100, &st, &len), FILES_RANGE_NONE);
	assert_int_equal(files_range("items=0-1", 100, &st, &len), FILES_RANGE_NONE);
	assert_int_equal(files_range("bytes=0-1,5-6", 100, &st, &len), FILES_RANGE_NONE);
	assert_int_equal(files_range("bytes=99999999999999999999999-", 100, &st, &len), FILES_RANGE_NONE);

	assert_true(files_if_range(NULL, "\"e\"", "Mon, 01 Jan 2024 00:00:00 GMT"));
	assert_true(files_if_range("\"e\"", "\"e\"", NULL));
	assert_false(files_if_range("\"x\"", "\"e\"", NULL));
	assert_false(files_if_range("W/\"e\"", "\"e\"", NULL)); /* weak never matches */
	assert_true(files_if_range("Mon, 01 Jan 2024 00:00:00 GMT", "\"e\"", "Mon, 01 Jan 2024 00:00:00 GMT"));
	assert_false(files_if_range("Tue, 02 Jan 2024 00:00:00 GMT", "\"e\"", "Mon, 01 Jan 2024 00:00:00 GMT"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normalize),
		cmocka_unit_test_setup_teardown(test_open, setup, teardown),
		cmocka_unit_test(test_etag),
		cmocka_unit_test(test_not_modified),
		cmocka_unit_test(test_range),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
