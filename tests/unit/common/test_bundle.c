/* test_bundle.c -- bundle format: build, serialise, sign, verify, parse, limits */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/bundle.h"
#include "common/xmalloc.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char HELLO[] =
	"--[[minicdn\n"
	"name = \"geo-hello\";\n"
	"version = 3;\n"
	"routes = ( { host = \"*.cdn.test\"; path = \"/hello*\"; method = \"GET\"; },\n"
	"           { path = \"/api/*\"; on_error = \"origin\"; } );\n"
	"]]\n"
	"function handle(req) return { status = 200, body = \"hi \\u{e9}\" } end\n";

static struct bundle *hello(void)
{
	char err[256];
	struct bundle *b = bundle_from_lua(HELLO, sizeof HELLO - 1, "hello.lua", err, sizeof err);
	if (!b)
		fail_msg("%s", err);
	return b;
}

static void test_from_lua(void **st)
{
	struct bundle *b = hello();
	assert_string_equal(b->name, "geo-hello");
	assert_int_equal(b->version, 3);
	assert_string_equal(b->entry, "main");
	assert_int_equal(b->nroutes, 2);
	assert_string_equal(b->routes[0].host, "*.cdn.test");
	assert_string_equal(b->routes[0].method, "GET");
	assert_int_equal(b->routes[0].on_error, BUNDLE_ON_ERROR_500);
	assert_string_equal(b->routes[1].host, "*");
	assert_null(b->routes[1].method);
	assert_int_equal(b->routes[1].on_error, BUNDLE_ON_ERROR_ORIGIN);
	assert_int_equal(b->nmodules, 1);
	assert_string_equal(b->modules[0].name, "main");
	assert_memory_equal(b->modules[0].source, HELLO, sizeof HELLO - 1);
	bundle_free(b);
}

static void test_round_trip(void **st)
{
	uint8_t pk[BUNDLE_PK_LEN], sk[BUNDLE_SK_LEN];
	char err[256];
	size_t len, envlen, rawlen;
	bundle_keygen(pk, sk);
	struct bundle *b = hello();
	b->version = 42;
	char *bytes = bundle_serialize(b, &len, err, sizeof err);
	assert_non_null(bytes);
	char *env = bundle_sign(bytes, len, sk, &envlen);
	char *raw = NULL;
	struct bundle *c = bundle_open(env, envlen, pk, &raw, &rawlen, err, sizeof err);
	if (!c)
		fail_msg("%s", err);
	assert_int_equal(rawlen, len);
	assert_memory_equal(raw, bytes, len);
	assert_string_equal(c->name, b->name);
	assert_int_equal(c->version, 42);
	assert_int_equal(c->nroutes, 2);
	assert_int_equal(c->routes[1].on_error, BUNDLE_ON_ERROR_ORIGIN);
	assert_null(c->routes[1].method);
	assert_int_equal(c->modules[0].len, b->modules[0].len);
	assert_memory_equal(c->modules[0].source, b->modules[0].source, b->modules[0].len);
	/* Serialising the parsed copy gives the same bytes. */
	size_t len2;
	char *bytes2 = bundle_serialize(c, &len2, err, sizeof err);
	assert_int_equal(len2, len);
	assert_memory_equal(bytes2, bytes, len);
	free(bytes2);
	free(raw);
	bundle_free(c);
	free(env);
	free(bytes);
	bundle_free(b);
}

/* Flipping any single byte of the signed payload must fail verification. */
static void test_tampered(void **st)
{
	uint8_t pk[BUNDLE_PK_LEN], sk[BUNDLE_SK_LEN];
	char err[256];
	size_t len, envlen;
	bundle_keygen(pk, sk);
	struct bundle *b = hello();
	char *bytes = bundle_serialize(b, &len, err, sizeof err);
	for (size_t i = 0; i < len; i += 7) {
		char *copy = xstrndup(bytes, len);
		copy[i] ^= 0x01;
		/* Sign the original, send the tampered bytes under the original signature. */
		char *good = bundle_sign(bytes, len, sk, &envlen);
		char *bad = bundle_sign(copy, len, sk, &envlen);
		/* splice: bad's bundle field with good's signature */
		char *gs = strstr(good, "\"sig\":"), *bs = strstr(bad, "\"sig\":");
		assert_non_null(gs);
		assert_non_null(bs);
		char *mix = xasprintf("%.*s%s", (int)(bs - bad), bad, gs);
		char *out = NULL;
		size_t outlen;
		assert_int_equal(bundle_verify(mix, strlen(mix), pk, &out, &outlen, err, sizeof err), -1);
		assert_non_null(strstr(err, "signature"));
		assert_null(out);
		free(mix);
		free(good);
		free(bad);
		free(copy);
	}
	free(bytes);
	bundle_free(b);
}

/* During a rotation an edge lists the old and the new origin key: a bundle
 * signed by either is accepted, one signed by a third key is not. */
static void test_any_of_keys(void **st)
{
	struct bundle_keys two = { .n = 2 }, second = { .n = 1 };
	uint8_t third_pk[BUNDLE_PK_LEN], sks[3][BUNDLE_SK_LEN];
	char err[256];
	size_t len, envlen;
	bundle_keygen(two.pk[0], sks[0]);
	bundle_keygen(two.pk[1], sks[1]);
	bundle_keygen(third_pk, sks[2]);
	memcpy(second.pk[0], two.pk[1], BUNDLE_PK_LEN);
	struct bundle *b = hello();
	char *bytes = bundle_serialize(b, &len, err, sizeof err);
	for (int signer = 0; signer < 2; signer++) {
		char *env = bundle_sign(bytes, len, sks[signer], &envlen);
		struct bundle *ok = bundle_open_any(env, envlen, &two, NULL, NULL, err, sizeof err);
		assert_non_null(ok);
		bundle_free(ok);
		/* The second key alone accepts only what it signed. */
		struct bundle *only2 = bundle_open_any(env, envlen, &second, NULL, NULL, err, sizeof err);
		if (signer == 1) {
			assert_non_null(only2);
			bundle_free(only2);
		} else {
			assert_null(only2);
		}
		free(env);
	}
	char *env = bundle_sign(bytes, len, sks[2], &envlen);
	assert_null(bundle_open_any(env, envlen, &two, NULL, NULL, err, sizeof err));
	assert_non_null(strstr(err, "any of the configured origin keys"));
	free(env);
	free(bytes);
	bundle_free(b);
}

static void test_wrong_key_and_unsigned(void **st)
{
	uint8_t pk[BUNDLE_PK_LEN], sk[BUNDLE_SK_LEN], pk2[BUNDLE_PK_LEN], sk2[BUNDLE_SK_LEN];
	char err[256];
	size_t len, envlen;
	bundle_keygen(pk, sk);
	bundle_keygen(pk2, sk2);
	struct bundle *b = hello();
	char *bytes = bundle_serialize(b, &len, err, sizeof err);
	char *env = bundle_sign(bytes, len, sk2, &envlen);
	assert_null(bundle_open(env, envlen, pk, NULL, NULL, err, sizeof err));
	assert_non_null(strstr(err, "bad signature"));
	struct bundle *ok = bundle_open(env, envlen, pk2, NULL, NULL, err, sizeof err);
	assert_non_null(ok);
	bundle_free(ok);
	/* Unsigned: the envelope without a sig field. */
	char *sig = strstr(env, ",\"sig\":");
	*sig = '}';
	sig[1] = 0;
	assert_null(bundle_open(env, strlen(env), pk2, NULL, NULL, err, sizeof err));
	assert_non_null(strstr(err, "unsigned"));
	/* A bare bundle (no envelope) is refused too. */
	assert_null(bundle_open(bytes, len, pk2, NULL, NULL, err, sizeof err));
	free(env);
	free(bytes);
	bundle_free(b);
}

static void test_malformed(void **st)
{
	uint8_t pk[BUNDLE_PK_LEN], sk[BUNDLE_SK_LEN];
	char err[256];
	size_t envlen;
	bundle_keygen(pk, sk);
	const char *bad[] = {
		"",
		"[]",
		"{\"format\":1}",
		"{\"format\":2,\"name\":\"a\",\"version\":1}",
		"{\"format\":1,\"name\":\"a\",\"version\":0,\"routes\":[],\"modules\":[]}",
		"{\"format\":1,\"name\":\"../x\",\"version\":1,\"routes\":[{\"path\":\"/\"}],\"modules\":[{\"name\":\"main\",\"source\":\"\"}]}",
		"{\"format\":1,\"name\":\"a\",\"version\":1,\"routes\":[],\"modules\":[{\"name\":\"main\",\"source\":\"\"}]}",
		"{\"format\":1,\"name\":\"a\",\"version\":1,\"routes\":[{\"path\":\"nope\"}],\"modules\":[{\"name\":\"main\",\"source\":\"\"}]}",
		"{\"format\":1,\"name\":\"a\",\"version\":1,\"routes\":[{\"path\":\"/\",\"on_error\":\"ignore\"}],\"modules\":[{\"name\":\"main\",\"source\":\"\"}]}",
		"{\"format\":1,\"name\":\"a\",\"version\":1,\"routes\":[{\"path\":\"/\",\"method\":\"get\"}],\"modules\":[{\"name\":\"main\",\"source\":\"\"}]}",
		"{\"format\":1,\"name\":\"a\",\"version\":1,\"routes\":[{\"path\":\"/\"}],\"modules\":[{\"name\":\"other\",\"source\":\"\"}]}",
		"{\"format\":1,\"name\":\"a\",\"version\":1,\"routes\":[{\"path\":\"/\"}],\"modules\":[{\"name\":\"main\",\"source\":\"\\u001bLua\"}]}",
		"{\"format\":1,\"name\":\"a\",\"version\":1,\"routes\":[{\"path\":\"/\"}],\"modules\":[{\"name\":\"main\",\"source\":\"\"},{\"name\":\"main\",\"source\":\"\"}]}",
		"{\"format\":1,\"name\":\"a\",\"name\":\"b\",\"version\":1,\"routes\":[{\"path\":\"/\"}],\"modules\":[{\"name\":\"main\",\"source\":\"\"}]}",
		"{\"format\":1,\"name\":\"a\",\"version\":1,\"op\":\"explode\",\"routes\":[{\"path\":\"/\"}],\"modules\":[{\"name\":\"main\",\"source\":\"\"}]}",
		"{\"format\":1,\"name\":\"a\",\"version\":9007199254740993,\"routes\":[{\"path\":\"/\"}],\"modules\":[{\"name\":\"main\",\"source\":\"\"}]}",
		"{\"format\":1,\"name\":\"a\",\"version\":1,\"routes\":[{\"path\":\"/\"}],\"modules\":[{\"name\":\"main\",\"source\":\"\"}]",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		err[0] = 0;
		/* Signed with the right key: only the content is wrong. */
		char *env = bundle_sign(bad[i], strlen(bad[i]), sk, &envlen);
		struct bundle *b = bundle_open(env, envlen, pk, NULL, NULL, err, sizeof err);
		if (b)
			fail_msg("case %zu accepted: %s", i, bad[i]);
		assert_true(err[0] != 0);
		free(env);
	}
	/* A minimal valid one passes, and a delete tombstone needs no modules. */
	const char *good = "{\"format\":1,\"name\":\"a\",\"version\":1,\"routes\":[{\"path\":\"/\"}],\"modules\":[{\"name\":\"main\",\"source\":\"\"}]}";
	struct bundle *b = bundle_parse(good, strlen(good), err, sizeof err);
	assert_non_null(b);
	bundle_free(b);
	const char *del = "{\"format\":1,\"name\":\"a\",\"version\":5,\"op\":\"delete\"}";
	b = bundle_parse(del, strlen(del), err, sizeof err);
	assert_non_null(b);
	assert_int_equal(b->op, BUNDLE_OP_DELETE);
	assert_int_equal(b->version, 5);
	bundle_free(b);
	/* Malformed envelopes. */
	const char *envs[] = { "{", "{\"format\":\"minicdn-bundle-1\",\"bundle\":\"!!!\",\"sig\":\"AAAA\"}",
		"{\"format\":\"x\",\"bundle\":\"e30=\",\"sig\":\"AAAA\"}",
		"{\"format\":\"minicdn-bundle-1\",\"bundle\":\"e30=\",\"sig\":\"AAAA\"}" };
	for (size_t i = 0; i < sizeof envs / sizeof *envs; i++)
		assert_null(bundle_open(envs[i], strlen(envs[i]), pk, NULL, NULL, err, sizeof err));
}

static void test_oversized(void **st)
{
	uint8_t pk[BUNDLE_PK_LEN], sk[BUNDLE_SK_LEN];
	char err[256];
	size_t envlen;
	bundle_keygen(pk, sk);
	/* Envelope over the limit: refused before parsing. */
	size_t n = BUNDLE_MAX_ENVELOPE + 10;
	char *big = xmalloc(n);
	memset(big, ' ', n);
	assert_int_equal(bundle_verify(big, n, pk, &(char *){ NULL }, &(size_t){ 0 }, err, sizeof err), -1);
	assert_non_null(strstr(err, "limit"));
	free(big);
	/* Signed payload over BUNDLE_MAX_BYTES: refused. */
	n = BUNDLE_MAX_BYTES + 100;
	big = xmalloc(n);
	memset(big, 'a', n);
	char *env = bundle_sign(big, n, sk, &envlen);
	assert_null(bundle_open(env, envlen, pk, NULL, NULL, err, sizeof err));
	free(env);
	free(big);
	/* A bundle whose source is too large does not serialise. */
	struct bundle *b = hello();
	free(b->modules[0].source);
	b->modules[0].len = BUNDLE_MAX_BYTES + 1;
	b->modules[0].source = xmalloc(b->modules[0].len + 1);
	memset(b->modules[0].source, '-', b->modules[0].len);
	b->modules[0].source[b->modules[0].len] = 0;
	size_t len;
	assert_null(bundle_serialize(b, &len, err, sizeof err));
	bundle_free(b);
}

static void test_routes(void **st)
{
	struct bundle_route r = { "*.cdn.test", "/hello*", "GET", BUNDLE_ON_ERROR_500 };
	assert_true(bundle_route_match(&r, "GET", "www.cdn.test:8080", "/hello", 6));
	assert_false(bundle_route_match(&r, "POST", "www.cdn.test", "/hello", 6));
	assert_false(bundle_route_match(&r, "GET", "www.other.test", "/hello", 6));
	assert_false(bundle_route_match(&r, "GET", NULL, "/hello", 6));
	assert_true(bundle_route_match(&r, "GET", "WWW.CDN.TEST", "/hello/x", 8)); /* host folds case */
	assert_false(bundle_route_match(&r, "GET", "www.cdn.test", "/HELLO", 6)); /* path does not */
	struct bundle_route any = { "*", "/x", NULL, BUNDLE_ON_ERROR_500 };
	assert_true(bundle_route_match(&any, "DELETE", NULL, "/x", 2));
}

static void test_dir_and_keys(void **st)
{
	char dir[] = "/tmp/test_bundle.XXXXXX";
	char err[256], p[512];
	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof p, "%s/bundle.conf", dir);
	FILE *f = fopen(p, "w");
	fputs("name = \"kv-counter\";\nroutes = ( { path = \"/count\"; } );\n", f);
	fclose(f);
	snprintf(p, sizeof p, "%s/main.lua", dir);
	f = fopen(p, "w");
	fputs("local u = require('util')\nfunction handle(req) return u.reply() end\n", f);
	fclose(f);
	snprintf(p, sizeof p, "%s/util.lua", dir);
	f = fopen(p, "w");
	fputs("return { reply = function() return { status = 200 } end }\n", f);
	fclose(f);
	struct bundle *b = bundle_load_path(dir, err, sizeof err);
	if (!b)
		fail_msg("%s", err);
	assert_string_equal(b->name, "kv-counter");
	assert_int_equal(b->version, 0); /* signer assigns */
	assert_int_equal(b->nmodules, 2);
	assert_string_equal(b->modules[0].name, "main");
	assert_string_equal(b->modules[1].name, "util");
	size_t len;
	assert_null(bundle_serialize(b, &len, err, sizeof err)); /* version 0 */
	b->version = 1;
	char *bytes = bundle_serialize(b, &len, err, sizeof err);
	assert_non_null(bytes);
	free(bytes);
	bundle_free(b);

	/* Manifest error names file and line. */
	snprintf(p, sizeof p, "%s/bundle.conf", dir);
	f = fopen(p, "w");
	fputs("name = \"x\";\nroutes = ( { path = \"/c\"; bogus = 1; } );\n", f);
	fclose(f);
	assert_null(bundle_load_path(dir, err, sizeof err));
	assert_non_null(strstr(err, "bundle.conf:2"));

	/* Keys: write, read back, secret mode 0600, garbage refused. */
	uint8_t pk[BUNDLE_PK_LEN], sk[BUNDLE_SK_LEN], pk2[BUNDLE_PK_LEN], sk2[BUNDLE_SK_LEN], d[BUNDLE_PK_LEN];
	bundle_keygen(pk, sk);
	char pkp[512], skp[512];
	snprintf(pkp, sizeof pkp, "%s/origin.pub", dir);
	snprintf(skp, sizeof skp, "%s/origin.key", dir);
	assert_int_equal(bundle_key_write(pkp, pk, sizeof pk, false, err, sizeof err), 0);
	assert_int_equal(bundle_key_write(skp, sk, sizeof sk, true, err, sizeof err), 0);
	struct stat stt;
	assert_int_equal(stat(skp, &stt), 0);
	assert_int_equal(stt.st_mode & 0777, 0600);
	assert_int_equal(bundle_key_read(pkp, pk2, sizeof pk2, err, sizeof err), 0);
	assert_int_equal(bundle_key_read(skp, sk2, sizeof sk2, err, sizeof err), 0);
	assert_memory_equal(pk, pk2, sizeof pk);
	assert_memory_equal(sk, sk2, sizeof sk);
	bundle_sk_to_pk(sk2, d);
	assert_memory_equal(d, pk, sizeof pk);
	assert_int_equal(bundle_key_read(skp, pk2, sizeof pk2, err, sizeof err), -1); /* wrong length */
	f = fopen(pkp, "w");
	fputs("not base64 at all!\n", f);
	fclose(f);
	assert_int_equal(bundle_key_read(pkp, pk2, sizeof pk2, err, sizeof err), -1);

	/* Single file without manifest is refused with a clear reason. */
	snprintf(p, sizeof p, "%s/plain.lua", dir);
	f = fopen(p, "w");
	fputs("function handle(req) end\n", f);
	fclose(f);
	assert_null(bundle_load_path(p, err, sizeof err));
	assert_non_null(strstr(err, "manifest"));

	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_from_lua),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_wrong_key_and_unsigned),
		cmocka_unit_test(test_any_of_keys),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_dir_and_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
