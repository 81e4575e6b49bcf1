/* test_mime.c -- extension to Content-Type */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "origin/mime.h"

static void test_known(void **state)
{
	assert_string_equal(mime_type("/index.html"), "text/html; charset=utf-8");
	assert_string_equal(mime_type("/css/site.css"), "text/css; charset=utf-8");
	assert_string_equal(mime_type("/img/logo.svg"), "image/svg+xml");
	assert_string_equal(mime_type("/api/menu.json"), "application/json");
	assert_string_equal(mime_type("/a/b.PNG"), "image/png");           /* case-insensitive */
	assert_string_equal(mime_type("/x.tar.gz"), "application/gzip");   /* last extension */
	assert_string_equal(mime_type("/f.woff2"), "font/woff2");
	assert_string_equal(mime_type("/m.webmanifest"), "application/manifest+json");
	assert_string_equal(mime_type("robots.txt"), "text/plain; charset=utf-8");
}

static void test_unknown(void **state)
{
	assert_string_equal(mime_type("/README"), "application/octet-stream");
	assert_string_equal(mime_type("/x.unknownext"), "application/octet-stream");
	assert_string_equal(mime_type("/.bashrc"), "application/octet-stream"); /* dotfile: no extension */
	assert_string_equal(mime_type("/dir.html/file"), "application/octet-stream"); /* dot in a directory */
	assert_string_equal(mime_type("/trailing."), "application/octet-stream");
	assert_string_equal(mime_type(""), "application/octet-stream");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known),
		cmocka_unit_test(test_unknown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
