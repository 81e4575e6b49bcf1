/* test_fsutil.c -- mkdir -p, bounded whole-file read, atomic write */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/fsutil.h"
#include "common/xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[64];

static int setup(void **st)
{
	snprintf(root, sizeof root, "/tmp/test_fsutil.XXXXXX");
	if (!mkdtemp(root))
		return -1;
	umask(022);
	return 0;
}

static int teardown(void **st)
{
	char *cmd = xasprintf("rm -rf '%s'", root);
	int rc = system(cmd);
	free(cmd);
	return rc == 0 ? 0 : -1;
}

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static mode_t mode_of(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return st.st_mode;
}

/* Entries in dir besides . and .. */
static int entries(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

static void test_mkdir_p(void **st)
{
	char err[256];
	char *leaf = xasprintf("%s/a/b//c", root);
	assert_int_equal(fsutil_mkdir_p(leaf, 0700, err, sizeof err), 0);
	assert_true(S_ISDIR(mode_of(leaf)));
	assert_int_equal(mode_of(leaf) & 0777, 0700);
	char *mid = xasprintf("%s/a/b", root);
	assert_int_equal(mode_of(mid) & 0777, 0755);
	/* Again: an existing directory is fine. */
	assert_int_equal(fsutil_mkdir_p(leaf, 0700, err, sizeof err), 0);
	/* A trailing slash still gives the leaf its mode. */
	char *slash = xasprintf("%s/d/", root), *d = xasprintf("%s/d", root);
	assert_int_equal(fsutil_mkdir_p(slash, 0711, err, sizeof err), 0);
	assert_int_equal(mode_of(d) & 0777, 0711);
	/* A file in the way: ENOTDIR, with the path in the message. */
	char *file = xasprintf("%s/file", root), *under = xasprintf("%s/file/x", root);
	put(file, "x");
	assert_int_equal(fsutil_mkdir_p(file, 0755, err, sizeof err), -1);
	assert_int_equal(errno, ENOTDIR);
	assert_non_null(strstr(err, "/file"));
	assert_int_equal(fsutil_mkdir_p(under, 0755, err, sizeof err), -1);
	assert_int_equal(errno, ENOTDIR);
	assert_int_equal(fsutil_mkdir_p("", 0755, err, sizeof err), -1);
	free(leaf), free(mid), free(slash), free(d), free(file), free(under);
}

static void test_read(void **st)
{
	char err[256];
	char *path = xasprintf("%s/r.txt", root);
	put(path, "hello world");
	struct buf b = BUF_INIT;
	buf_puts(&b, ">");
	assert_int_equal(fsutil_read(path, 11, &b, err, sizeof err), 0); /* exactly max */
	assert_int_equal(b.len, 12);
	assert_string_equal(b.data, ">hello world");
	/* One byte over the bound: refused, buffer as it was. */
	assert_int_equal(fsutil_read(path, 10, &b, err, sizeof err), -1);
	assert_int_equal(errno, EFBIG);
	assert_non_null(strstr(err, "larger than 10 bytes"));
	assert_int_equal(b.len, 12);
	assert_string_equal(b.data, ">hello world");
	buf_free(&b);
	/* Missing file: ENOENT and the path. */
	char *missing = xasprintf("%s/nope", root);
	assert_int_equal(fsutil_read(missing, 100, &b, err, sizeof err), -1);
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(err, "/nope"));
	assert_int_equal(b.len, 0);
	/* Empty file: fine, nothing appended. */
	put(path, "");
	assert_int_equal(fsutil_read(path, 0, &b, err, sizeof err), 0);
	assert_int_equal(b.len, 0);
	/* A directory is not a file. */
	assert_int_equal(fsutil_read(root, 100, &b, err, sizeof err), -1);
	assert_int_equal(errno, EISDIR);
	buf_free(&b);
	free(path), free(missing);
}

static void test_read_large(void **st)
{
	char err[256];
	char *path = xasprintf("%s/big", root);
	size_t n = 300000; /* several read() calls */
	char *data = xmalloc(n);
	for (size_t i = 0; i < n; i++)
		data[i] = (char)('a' + i % 26);
	assert_int_equal(fsutil_write_atomic(path, data, n, 0644, err, sizeof err), 0);
	struct buf b = BUF_INIT;
	assert_int_equal(fsutil_read(path, n, &b, err, sizeof err), 0);
	assert_int_equal(b.len, n);
	assert_memory_equal(b.data, data, n);
	assert_int_equal(b.data[n], '\0');
	buf_free(&b);
	assert_int_equal(fsutil_read(path, n - 1, &b, err, sizeof err), -1);
	assert_int_equal(errno, EFBIG);
	buf_free(&b);
	free(data), free(path);
}

static void test_write_atomic(void **st)
{
	char err[256];
	char *dir = xasprintf("%s/w", root);
	char *path = xasprintf("%s/w/key", root);
	assert_int_equal(fsutil_mkdir_p(dir, 0755, err, sizeof err), 0);
	assert_int_equal(fsutil_write_atomic(path, "secret\n", 7, 0600, err, sizeof err), 0);
	assert_int_equal(mode_of(path) & 0777, 0600);
	struct buf b = BUF_INIT;
	assert_int_equal(fsutil_read(path, 100, &b, err, sizeof err), 0);
	assert_string_equal(b.data, "secret\n");
	/* Replacing: new content and mode; no temporary file left behind. */
	assert_int_equal(fsutil_write_atomic(path, "two", 3, 0644, err, sizeof err), 0);
	assert_int_equal(mode_of(path) & 0777, 0644);
	buf_reset(&b);
	assert_int_equal(fsutil_read(path, 100, &b, err, sizeof err), 0);
	assert_string_equal(b.data, "two");
	assert_int_equal(entries(dir), 1);
	/* The target is a directory: rename fails, the temporary file is gone. */
	char *sub = xasprintf("%s/w/sub", root);
	assert_int_equal(mkdir(sub, 0755), 0);
	assert_int_equal(fsutil_write_atomic(sub, "x", 1, 0644, err, sizeof err), -1);
	assert_int_equal(errno, EISDIR);
	assert_int_equal(entries(dir), 2);
	/* No such folder. */
	char *nodir = xasprintf("%s/none/f", root);
	assert_int_equal(fsutil_write_atomic(nodir, "x", 1, 0644, err, sizeof err), -1);
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(err, "/none/"));
	buf_free(&b);
	free(dir), free(path), free(sub), free(nodir);
}

static void test_write_relative(void **st)
{
	char err[256], cwd[4096];
	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir(root), 0);
	assert_int_equal(fsutil_write_atomic("plain", "abc", 3, 0640, err, sizeof err), 0);
	struct buf b = BUF_INIT;
	assert_int_equal(fsutil_read("plain", 3, &b, err, sizeof err), 0);
	assert_string_equal(b.data, "abc");
	assert_int_equal(mode_of("plain") & 0777, 0640);
	buf_free(&b);
	assert_int_equal(chdir(cwd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mkdir_p),
		cmocka_unit_test(test_read),
		cmocka_unit_test(test_read_large),
		cmocka_unit_test(test_write_atomic),
		cmocka_unit_test(test_write_relative),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
