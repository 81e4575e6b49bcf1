/* test_cfg.c -- the schema-driven config loader: values, defaults, errors with file:line */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/addr.h"
#include "common/cfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct peer {
	char *name;
	int weight;
};

struct conf {
	char *name;
	int workers;
	uint64_t map_size;
	int timeout_ms;
	bool verbose;
	double ratio;
	struct addr listen;
	char **tags;
	size_t ntags;
	struct {
		char *path;
		int depth;
	} store;
	struct peer *peers;
	size_t npeers;
};

static const struct cfg_key peer_keys[] = {
	{ .name = "name", .type = CFG_STRING, .offset = offsetof(struct peer, name), .flags = CFG_REQUIRED },
	{ .name = "weight", .type = CFG_INT, .offset = offsetof(struct peer, weight), .def = "1", .min = 1, .max = 100 },
	CFG_END,
};

static const struct cfg_key store_keys[] = {
	{ .name = "path", .type = CFG_STRING, .offset = offsetof(struct conf, store.path) - offsetof(struct conf, store), .def = "/tmp/x" },
	{ .name = "depth", .type = CFG_INT, .offset = offsetof(struct conf, store.depth) - offsetof(struct conf, store), .def = "2" },
	CFG_END,
};

static const struct cfg_key keys[] = {
	{ .name = "name", .type = CFG_STRING, .offset = offsetof(struct conf, name), .flags = CFG_REQUIRED },
	{ .name = "workers", .type = CFG_INT, .offset = offsetof(struct conf, workers), .def = "2", .min = 1, .max = 64 },
	{ .name = "map_size", .type = CFG_SIZE, .offset = offsetof(struct conf, map_size), .def = "64M" },
	{ .name = "timeout", .type = CFG_MS, .offset = offsetof(struct conf, timeout_ms), .def = "5s" },
	{ .name = "verbose", .type = CFG_BOOL, .offset = offsetof(struct conf, verbose), .def = "false" },
	{ .name = "ratio", .type = CFG_FLOAT, .offset = offsetof(struct conf, ratio), .def = "0.1", .min = 0, .max = 1 },
	{ .name = "listen", .type = CFG_ADDR, .offset = offsetof(struct conf, listen), .def = "127.0.0.1:80" },
	{ .name = "tags", .type = CFG_STRLIST, .offset = offsetof(struct conf, tags), .count_offset = offsetof(struct conf, ntags) },
	{ .name = "store", .type = CFG_GROUP, .offset = offsetof(struct conf, store), .sub = store_keys },
	{ .name = "peers", .type = CFG_LIST, .offset = offsetof(struct conf, peers), .count_offset = offsetof(struct conf, npeers),
	  .sub = peer_keys, .elem_size = sizeof(struct peer) },
	CFG_END,
};

static void test_full_config(void **state)
{
	struct conf c = { 0 };
	char err[512];
	const char *text =
		"name = \"edge-eu\";\n"
		"workers = 4;\n"
		"map_size = \"2G\";\n"
		"timeout = \"250ms\";\n"
		"verbose = true;\n"
		"ratio = 0.5;\n"
		"listen = \"[::1]:8080\";\n"
		"tags = [ \"a\", \"b\" ];\n"
		"store = { path = \"/var/x\"; };\n"
		"peers = ( { name = \"p1\"; weight = 3; }, { name = \"p2\"; } );\n";
	assert_int_equal(cfg_load_string(text, "t.conf", keys, &c, err, sizeof err), 0);
	assert_string_equal(c.name, "edge-eu");
	assert_int_equal(c.workers, 4);
	assert_true(c.map_size == 2ull << 30);
	assert_int_equal(c.timeout_ms, 250);
	assert_true(c.verbose);
	assert_true(c.ratio == 0.5);
	assert_int_equal(c.listen.ss.ss_family, AF_INET6);
	assert_int_equal(addr_port(&c.listen), 8080);
	assert_int_equal(c.ntags, 2);
	assert_string_equal(c.tags[1], "b");
	assert_string_equal(c.store.path, "/var/x");
	assert_int_equal(c.store.depth, 2); /* default inside a present group */
	assert_int_equal(c.npeers, 2);
	assert_string_equal(c.peers[0].name, "p1");
	assert_int_equal(c.peers[0].weight, 3);
	assert_int_equal(c.peers[1].weight, 1);
	cfg_free(keys, &c);
	assert_null(c.name);
	assert_null(c.peers);
}

static void test_defaults(void **state)
{
	struct conf c = { 0 };
	char err[512];
	assert_int_equal(cfg_load_string("name = \"x\";", "t.conf", keys, &c, err, sizeof err), 0);
	assert_int_equal(c.workers, 2);
	assert_true(c.map_size == 64ull << 20);
	assert_int_equal(c.timeout_ms, 5000);
	assert_false(c.verbose);
	assert_string_equal(c.store.path, "/tmp/x"); /* defaults of an absent group */
	assert_int_equal(addr_port(&c.listen), 80);
	assert_int_equal(c.npeers, 0);
	cfg_free(keys, &c);
}

/* Each bad config must fail with the file name, the right line and a useful reason. */
static void expect_error(const char *text, const char *want_prefix, const char *want_substr)
{
	struct conf c = { 0 };
	char err[512] = "";
	if (cfg_load_string(text, "bad.conf", keys, &c, err, sizeof err) != -1) {
		fprintf(stderr, "config accepted but should fail: %s\n", text);
		fail();
	}
	if (strncmp(err, want_prefix, strlen(want_prefix)) != 0 || !strstr(err, want_substr)) {
		fprintf(stderr, "error '%s' does not start with '%s' / contain '%s'\n", err, want_prefix, want_substr);
		fail();
	}
	assert_null(c.name); /* nothing half-applied */
}

static void test_errors(void **state)
{
	expect_error("name = \"x\";\nworkrs = 3;\n", "bad.conf:2:", "unknown key 'workrs'");
	expect_error("name = \"x\";\nstore = { pth = \"a\"; };\n", "bad.conf:2:", "unknown key 'store.pth'");
	expect_error("name = \"x\";\nworkers = = 3;\n", "bad.conf:2:", "syntax error");
	expect_error("name = \"x\";\nstore = { path = \"a\";\n", "bad.conf:", "syntax error");
	expect_error("workers = 3;\n", "bad.conf", "missing required key 'name'");
	expect_error("name = \"x\";\nworkers = 0;\n", "bad.conf:2:", "out of range");
	expect_error("name = \"x\";\nworkers = \"4\";\n", "bad.conf:2:", "must be a integer");
	expect_error("name = \"x\";\n\nlisten = \"1.2.3.4\";\n", "bad.conf:3:", "expected ip:port");
	expect_error("name = \"x\";\nlisten = \"1.2.3.999:80\";\n", "bad.conf:2:", "not an IPv4 or IPv6");
	expect_error("name = \"x\";\nlisten = \"1.2.3.4:70000\";\n", "bad.conf:2:", "port must be");
	expect_error("name = \"x\";\nmap_size = \"12Q\";\n", "bad.conf:2:", "not a size");
	expect_error("name = \"x\";\ntimeout = \"5 parsecs\";\n", "bad.conf:2:", "not a duration");
	expect_error("name = \"x\";\npeers = ( { weight = 2; } );\n", "bad.conf:2:", "missing required key 'peers[0].name'");
	expect_error("name = 5;\n", "bad.conf:1:", "must be a string");
	expect_error("name = \"x\";\nverbose = 1;\n", "bad.conf:2:", "true or false");
}

static void test_missing_file(void **state)
{
	struct conf c = { 0 };
	char err[512];
	assert_int_equal(cfg_load("/nonexistent/minicdn.conf", keys, &c, err, sizeof err), -1);
	assert_non_null(strstr(err, "/nonexistent/minicdn.conf: No such file"));
}

static void test_file_line(void **state)
{
	char path[] = "/tmp/test_cfg.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *text = "name = \"x\";\n# comment\n\nbogus = 1;\n";
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct conf c = { 0 };
	char err[512], want[600];
	assert_int_equal(cfg_load(path, keys, &c, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s:4: unknown key 'bogus'", path);
	assert_string_equal(err, want);
	unlink(path);
}

static void test_parsers(void **state)
{
	uint64_t sz;
	int ms;
	char err[128];
	assert_int_equal(cfg_parse_size("4096", &sz, err, sizeof err), 0);
	assert_true(sz == 4096);
	assert_int_equal(cfg_parse_size("64KB", &sz, err, sizeof err), 0);
	assert_true(sz == 65536);
	assert_int_equal(cfg_parse_size("-1", &sz, err, sizeof err), -1);
	assert_int_equal(cfg_parse_size("99999999999999999999T", &sz, err, sizeof err), -1);
	assert_int_equal(cfg_parse_ms("1.5s", &ms, err, sizeof err), 0);
	assert_int_equal(ms, 1500);
	assert_int_equal(cfg_parse_ms("2m", &ms, err, sizeof err), 0);
	assert_int_equal(ms, 120000);
	assert_int_equal(cfg_parse_ms("-3s", &ms, err, sizeof err), -1);
	assert_int_equal(cfg_parse_ms("9999h", &ms, err, sizeof err), -1);
}

/* CFG_PATH: relative values (and defaults) are relative to the config
 * file's folder, made canonical when that folder exists; absolute ones,
 * and configs given as a string, are taken as they are. */
struct paths {
	char *here, *up, *abs, *missing, *def, *plain;
};

static const struct cfg_key path_keys[] = {
	{ .name = "here", .type = CFG_STRING, .offset = offsetof(struct paths, here), .flags = CFG_PATH },
	{ .name = "up", .type = CFG_STRING, .offset = offsetof(struct paths, up), .flags = CFG_PATH },
	{ .name = "abs", .type = CFG_STRING, .offset = offsetof(struct paths, abs), .flags = CFG_PATH },
	{ .name = "missing", .type = CFG_STRING, .offset = offsetof(struct paths, missing), .flags = CFG_PATH },
	{ .name = "def", .type = CFG_STRING, .offset = offsetof(struct paths, def), .def = "state",
	  .flags = CFG_PATH },
	{ .name = "plain", .type = CFG_STRING, .offset = offsetof(struct paths, plain) },
	CFG_END,
};

static void test_paths(void **state)
{
	char dir[64] = "/tmp/test_cfg.XXXXXX", sub[96], file[128], want[256];
	assert_non_null(mkdtemp(dir));
	char *canon = realpath(dir, NULL); /* /tmp may itself be a link */
	assert_non_null(canon);
	char run[96];
	snprintf(run, sizeof run, "%s/run", dir);
	assert_int_equal(mkdir(run, 0700), 0);
	snprintf(sub, sizeof sub, "%s/conf", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(file, sizeof file, "%s/conf/x.conf", dir);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fputs("here = \"zone.txt\"; up = \"../run/cache\"; abs = \"/var/lib/x\";\n"
	      "missing = \"nodir/sub/f\"; plain = \"rel/x\";\n", f);
	fclose(f);
	struct paths p = { 0 };
	char err[512];
	assert_int_equal(cfg_load(file, path_keys, &p, err, sizeof err), 0);
	snprintf(want, sizeof want, "%s/conf/zone.txt", canon);
	assert_string_equal(p.here, want);
	snprintf(want, sizeof want, "%s/run/cache", canon); /* ".." resolved: the folder exists */
	assert_string_equal(p.up, want);
	assert_string_equal(p.abs, "/var/lib/x");
	snprintf(want, sizeof want, "%s/conf/nodir/sub/f", dir); /* not there yet: joined as is */
	assert_string_equal(p.missing, want);
	snprintf(want, sizeof want, "%s/conf/state", canon);
	assert_string_equal(p.def, want);
	assert_string_equal(p.plain, "rel/x"); /* not a CFG_PATH key */
	cfg_free(path_keys, &p);
	struct paths q = { 0 };
	assert_int_equal(cfg_load_string("here = \"zone.txt\";", "s.conf", path_keys, &q, err, sizeof err), 0);
	assert_string_equal(q.here, "zone.txt");
	cfg_free(path_keys, &q);
	unlink(file);
	rmdir(sub);
	rmdir(run);
	rmdir(dir);
	free(canon);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_config),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_file_line),
		cmocka_unit_test(test_parsers),
		cmocka_unit_test(test_paths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
