/* test_tls.c -- certificate sets: SNI choice (exact, wildcard, default),
 * refusal of a bad key / expired / wrong-host certificate with the old set
 * kept, ticket-key rotation.  Fixtures are made with openssl and certtool in
 * a temporary folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	return system(cmd);
}

static const char *path(const char *name)
{
	static char p[16][128]; /* a spec set holds 6 paths; specs are rebuilt before use */
	static int i;
	i = (i + 1) % 16;
	snprintf(p[i], sizeof p[i], "%s/%s", dir, name);
	return p[i];
}

/* A CA, then a leaf per site signed by it (chain file = leaf + CA). */
static int leaf(const char *name, const char *san)
{
	return sh("cd %s && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
	          "-keyout %s.key -subj /CN=%s -out %s.csr 2>/dev/null && "
	          "printf 'subjectAltName=%s\\n' >%s.ext && "
	          "openssl x509 -req -in %s.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 "
	          "-extfile %s.ext -out %s.leaf 2>/dev/null && cat %s.leaf ca.pem >%s.pem",
	          dir, name, name, name, san, name, name, name, name, name, name);
}

static int setup(void **state)
{
	snprintf(dir, sizeof dir, "/tmp/test_tls.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	if (sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
	       "-keyout ca.key -out ca.pem -days 30 -subj /CN=testca 2>/dev/null", dir))
		return -1;
	if (leaf("a", "DNS:a.test,DNS:www.a.test") || leaf("b", "DNS:*.b.test") ||
	    leaf("c", "DNS:c.test") || leaf("other", "DNS:a.test"))
		return -1;
	/* An expired certificate for a.test (certtool takes dates in a template). */
	if (sh("cd %s && certtool --generate-privkey --key-type ecdsa --outfile old.key 2>/dev/null && "
	       "printf 'cn = a.test\\ndns_name = a.test\\nactivation_date = \"2020-01-01 00:00:00\"\\n"
	       "expiration_date = \"2021-01-01 00:00:00\"\\n' >old.tmpl && "
	       "certtool --generate-self-signed --load-privkey old.key --template old.tmpl "
	       "--outfile old.pem 2>/dev/null",
	       dir))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	sh("rm -rf %s", dir);
	return 0;
}

static const char *const A_HOSTS[] = { "a.test", "www.a.test" };
static const char *const B_HOSTS[] = { "*.b.test" };
static const char *const C_HOSTS[] = { "c.test" };

static void specs3(struct tls_cert_spec sp[3])
{
	sp[0] = (struct tls_cert_spec){ "a", A_HOSTS, 2, path("a.pem"), path("a.key"), NULL };
	sp[1] = (struct tls_cert_spec){ "b", B_HOSTS, 1, path("b.pem"), path("b.key"), NULL };
	sp[2] = (struct tls_cert_spec){ "c", C_HOSTS, 1, path("c.pem"), path("c.key"), NULL };
}

static void test_pick_by_sni(void **state)
{
	struct tls_store *s = tls_store_new(0);
	assert_non_null(s);
	assert_int_equal(tls_store_pick(s, "a.test"), -1); /* nothing loaded */
	struct tls_cert_spec sp[3];
	specs3(sp);
	char err[300] = "";
	assert_int_equal(tls_store_load(s, sp, 3, 2, err, sizeof err), 0);
	assert_int_equal(tls_store_pick(s, "a.test"), 0);
	assert_int_equal(tls_store_pick(s, "WWW.A.Test"), 0);
	assert_int_equal(tls_store_pick(s, "x.b.test"), 1);
	/* A wildcard covers one label, not the bare domain or two labels. */
	assert_int_equal(tls_store_pick(s, "b.test"), 2);
	assert_int_equal(tls_store_pick(s, "y.x.b.test"), 2);
	assert_int_equal(tls_store_pick(s, "c.test"), 2);
	assert_int_equal(tls_store_pick(s, "unknown.test"), 2);
	assert_int_equal(tls_store_pick(s, NULL), 2);
	assert_int_equal(tls_store_pick(s, ""), 2);
	tls_store_free(s);
}

static void test_bad_cert_keeps_old(void **state)
{
	struct tls_store *s = tls_store_new(0);
	struct tls_cert_spec sp[3];
	specs3(sp);
	char err[300] = "";
	assert_int_equal(tls_store_load(s, sp, 3, 0, err, sizeof err), 0);

	/* a's certificate with another certificate's key. */
	struct tls_cert_spec bad[3];
	specs3(bad);
	bad[0].key_file = path("other.key");
	assert_int_equal(tls_store_load(s, bad, 3, 0, err, sizeof err), -1);
	assert_non_null(strstr(err, "key does not match"));
	assert_non_null(strstr(err, "a: "));

	bad[0].key_file = path("a.key");
	bad[0].cert_file = path("old.pem");
	bad[0].key_file = path("old.key");
	assert_int_equal(tls_store_load(s, bad, 3, 0, err, sizeof err), -1);
	assert_non_null(strstr(err, "expired"));

	/* b's certificate claimed for a host it does not cover. */
	specs3(bad);
	bad[1].hosts = C_HOSTS;
	assert_int_equal(tls_store_load(s, bad, 3, 0, err, sizeof err), -1);
	assert_non_null(strstr(err, "does not cover host c.test"));

	specs3(bad);
	bad[2].cert_file = path("missing.pem");
	assert_int_equal(tls_store_load(s, bad, 3, 0, err, sizeof err), -1);
	assert_non_null(strstr(err, "missing.pem"));

	/* Still the first set: SNI choice unchanged, default still a. */
	assert_int_equal(tls_store_pick(s, "x.b.test"), 1);
	assert_int_equal(tls_store_pick(s, "nobody.test"), 0);

	/* A good reload replaces it. */
	specs3(sp);
	assert_int_equal(tls_store_load(s, sp, 2, 1, err, sizeof err), 0);
	assert_int_equal(tls_store_pick(s, "c.test"), 1);
	tls_store_free(s);
}

static void test_ticket_rotation(void **state)
{
	struct tls_store *s = tls_store_new(3600);
	time_t now = time(NULL);
	assert_false(tls_store_tick(s, now));
	assert_false(tls_store_tick(s, now + 3599));
	assert_true(tls_store_tick(s, now + 3600));
	assert_false(tls_store_tick(s, now + 3601));
	assert_true(tls_store_tick(s, now + 7300));
	assert_int_equal(tls_store_rotations(s), 2);
	tls_store_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pick_by_sni),
		cmocka_unit_test(test_bad_cert_keeps_old),
		cmocka_unit_test(test_ticket_rotation),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
