/* test_ctl.c -- minicdnctl's configuration schema, semantic checks, URL joining */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "origin/ctl/ctl.h"

#include <stdlib.h>
#include <string.h>

static int load(const char *text, struct ctl_config *c, char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	if (cfg_load_string(text, "ctl.conf", ctl_config_schema, c, err, errlen) < 0)
		return -1;
	if (ctl_config_check(c, err, errlen) < 0) {
		cfg_free(ctl_config_schema, c);
		return -1;
	}
	return 0;
}

static void test_good(void **state)
{
	struct ctl_config c;
	char err[512];
	assert_int_equal(load("control_secret = \"s3cret-s3cret\"; origin = \"http://127.0.0.10:8080\";\n"
	                      "nodes = ( { name = \"dns\"; role = \"dns\"; url = \"http://127.0.0.1:8053\"; },\n"
	                      "          { name = \"eu\"; role = \"edge\"; url = \"http://127.0.0.11:8080/\"; } );\n",
	                      &c, err, sizeof err), 0);
	assert_int_equal(c.n_nodes, 2);
	assert_string_equal(c.nodes[1].role, "edge");
	assert_int_equal(c.timeout_ms, 3000); /* default */
	assert_string_equal(c.keys_dir, "run/keys");
	struct ctl ctl = { .cfg = c };
	size_t n;
	size_t *idx = ctl_nodes_with_role(&ctl, "edge", &n);
	assert_int_equal(n, 1);
	assert_int_equal(idx[0], 1);
	free(idx);
	idx = ctl_nodes_with_role(&ctl, NULL, &n);
	assert_int_equal(n, 2);
	free(idx);
	cfg_free(ctl_config_schema, &c);
}

static void test_bad(void **state)
{
	struct ctl_config c;
	char err[512];
	assert_int_equal(load("nodes = ( { name = \"x\"; role = \"cache\"; url = \"http://a\"; } );", &c, err,
	                      sizeof err), -1);
	assert_non_null(strstr(err, "role 'cache'"));
	assert_int_equal(load("nodes = ( { name = \"x\"; role = \"edge\"; url = \"ftp://a\"; } );", &c, err,
	                      sizeof err), -1);
	assert_non_null(strstr(err, "http://"));
	assert_int_equal(load("nodes = ( { name = \"x\"; role = \"edge\"; url = \"http://a\"; },\n"
	                      "{ name = \"x\"; role = \"dns\"; url = \"http://b\"; } );", &c, err, sizeof err), -1);
	assert_non_null(strstr(err, "duplicate"));
	assert_int_equal(load("nodes = ( { name = \"x\"; url = \"http://a\"; } );", &c, err, sizeof err), -1);
	assert_non_null(strstr(err, "ctl.conf:1"));
	assert_non_null(strstr(err, "role"));
	assert_int_equal(load("secret = \"typo\";", &c, err, sizeof err), -1);
	assert_non_null(strstr(err, "unknown key 'secret'"));
	assert_int_equal(load("timeout = \"fast\";", &c, err, sizeof err), -1);
}

static void test_url(void **state)
{
	char *u = ctl_url("http://h:1", "/healthz");
	assert_string_equal(u, "http://h:1/healthz");
	free(u);
	u = ctl_url("http://h:1//", "/healthz");
	assert_string_equal(u, "http://h:1/healthz");
	free(u);
	u = ctl_url("http://h:1", "x");
	assert_string_equal(u, "http://h:1/x");
	free(u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_url),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
