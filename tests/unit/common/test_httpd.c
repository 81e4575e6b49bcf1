/* test_httpd.c -- the Bearer check and the 401 reply (on a real loopback listener) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/httpd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static void test_bearer(void **st)
{
	assert_true(httpd_bearer_ok("Bearer s3cret", "s3cret"));
	assert_true(httpd_bearer_ok("bearer s3cret", "s3cret")); /* scheme is case-insensitive */
	assert_true(httpd_bearer_ok("BEARER s3cret", "s3cret"));
	assert_false(httpd_bearer_ok("Bearer S3cret", "s3cret")); /* the token is not */
	assert_false(httpd_bearer_ok("Bearer s3cre", "s3cret"));  /* prefix */
	assert_false(httpd_bearer_ok("Bearer s3cretX", "s3cret")); /* longer */
	assert_false(httpd_bearer_ok("Bearer s3cret ", "s3cret"));
	assert_false(httpd_bearer_ok("Bearer ", "s3cret"));
	assert_false(httpd_bearer_ok("Bearer", "s3cret"));
	assert_false(httpd_bearer_ok("Basic s3cret", "s3cret"));
	assert_false(httpd_bearer_ok("s3cret", "s3cret"));
	assert_false(httpd_bearer_ok(NULL, "s3cret"));
	/* No secret configured matches nothing, not even an empty token. */
	assert_false(httpd_bearer_ok("Bearer ", ""));
	assert_false(httpd_bearer_ok("Bearer ", NULL));
	assert_false(httpd_bearer_ok(NULL, NULL));
	/* A long secret, differing only in its last byte. */
	char secret[300], tok[310];
	memset(secret, 'a', sizeof secret - 1);
	secret[sizeof secret - 1] = '\0';
	snprintf(tok, sizeof tok, "Bearer %s", secret);
	assert_true(httpd_bearer_ok(tok, secret));
	tok[strlen(tok) - 1] = 'b';
	assert_false(httpd_bearer_ok(tok, secret));
}

/* During a rotation both secrets are accepted; nothing else is. */
static void test_bearer_any(void **st)
{
	char *two[] = { (char *)"old-secret", (char *)"new-secret", NULL };
	assert_true(httpd_bearer_any("Bearer old-secret", two, 2));
	assert_true(httpd_bearer_any("Bearer new-secret", two, 2));
	assert_false(httpd_bearer_any("Bearer other", two, 2));
	assert_false(httpd_bearer_any("Bearer new-secret", two, 1)); /* only the first listed */
	assert_false(httpd_bearer_any("Bearer old-secret", NULL, 0));
	assert_false(httpd_bearer_any(NULL, two, 2));
	char *empty[] = { (char *)"", NULL };
	assert_false(httpd_bearer_any("Bearer ", empty, 1));
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload, size_t *upload_size, void **ctx)
{
	const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (!httpd_bearer_ok(auth, "k3y"))
		return httpd_reply_unauthorized(c, "needs \"Bearer\"");
	return httpd_reply(c, 200, "text/plain", "ok", 2);
}

/* Sends one request to 127.0.0.1:port and returns the whole response in out. */
static void roundtrip(unsigned port, const char *req, char *out, size_t cap)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct timeval tv = { 5, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	size_t n = 0;
	ssize_t r;
	while (n < cap - 1 && (r = read(fd, out + n, cap - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	close(fd);
}

static void test_reply_unauthorized(void **st)
{
	struct addr a;
	char err[256];
	assert_int_equal(addr_parse_ip("127.0.0.1", 0, &a, err, sizeof err), 0);
	struct httpd_opts o = { .listen = &a, .handler = handler };
	struct MHD_Daemon *d = httpd_start(&o, err, sizeof err);
	assert_non_null(d);
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	assert_non_null(info);
	unsigned port = info->port;
	char resp[4096];

	roundtrip(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", resp, sizeof resp);
	assert_non_null(strstr(resp, "HTTP/1.1 401 "));
	assert_non_null(strstr(resp, "\r\nWWW-Authenticate: Bearer\r\n"));
	assert_non_null(strstr(resp, "\r\nContent-Type: application/json\r\n"));
	assert_non_null(strstr(resp, "\r\n\r\n{\"error\":\"needs \\\"Bearer\\\"\"}\n"));

	roundtrip(port, "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k3y\r\nConnection: close\r\n\r\n", resp,
	          sizeof resp);
	assert_non_null(strstr(resp, "HTTP/1.1 200 "));
	assert_null(strstr(resp, "WWW-Authenticate"));
	httpd_stop(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bearer),
		cmocka_unit_test(test_bearer_any),
		cmocka_unit_test(test_reply_unauthorized),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
