/* test_script.c -- the edge script runtime without HTTP: push/verify/replay,
 * activation, restart, routes, the request API, KV, the sandbox against
 * hostile scripts, and origin subrequests that yield the script's coroutine
 * (several requests interleaved on one thread's Lua state). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/bundle.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "edge/upstream/fetch.h"
#include "edge/script/script.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static char dir[64];
static uint8_t pk[BUNDLE_PK_LEN], sk[BUNDLE_SK_LEN];
static struct script_config cfg;
static struct scripts *sc; /* the scripts object under test */

/* A small origin: GET /d/MS answers "got /d/MS" after MS milliseconds
 * (header X-O: MS); any other path is never answered (the connection is held
 * for 3 s), so subrequests to it run into their timeout.  One thread per
 * connection. */
static int mute_fd = -1;
static char origin[64];
static struct fetcher *fr;

static void *origin_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char req[4096];
	size_t n = 0;
	ssize_t k;
	while (n < sizeof req - 1 && (k = read(fd, req + n, sizeof req - 1 - n)) > 0) {
		n += (size_t)k;
		req[n] = 0;
		if (strstr(req, "\r\n\r\n"))
			break;
	}
	req[n] = 0;
	char path[256] = "";
	sscanf(req, "%*s %255s", path);
	int ms;
	if (sscanf(path, "/d/%d", &ms) == 1) {
		usleep((useconds_t)ms * 1000);
		char body[300], resp[600];
		int bl = snprintf(body, sizeof body, "got %s", path);
		int rl = snprintf(resp, sizeof resp,
		                  "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-O: %d\r\n"
		                  "Connection: close\r\n\r\n%s", bl, ms, body);
		if (write(fd, resp, (size_t)rl) < 0)
			perror("origin write");
	} else {
		usleep(3000 * 1000);
	}
	close(fd);
	return NULL;
}

static void *origin_main(void *arg)
{
	for (;;) {
		int fd = accept(mute_fd, NULL, NULL);
		if (fd < 0)
			return NULL;
		pthread_t th;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		pthread_create(&th, &at, origin_conn, (void *)(intptr_t)fd);
		pthread_attr_destroy(&at);
	}
}

static int init(void)
{
	char err[512];
	if (mute_fd < 0) {
		struct sockaddr_in a = { .sin_family = AF_INET };
		socklen_t al = sizeof a;
		inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
		mute_fd = socket(AF_INET, SOCK_STREAM, 0);
		if (bind(mute_fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(mute_fd, 64) < 0 ||
		    getsockname(mute_fd, (struct sockaddr *)&a, &al) < 0)
			return -1;
		snprintf(origin, sizeof origin, "http://127.0.0.1:%d", ntohs(a.sin_port));
		pthread_t th;
		pthread_create(&th, NULL, origin_main, NULL);
		pthread_detach(th);
		struct fetcher_opts fo = { origin, 1000, 5000, 8 };
		fr = fetcher_start(&fo, err, sizeof err);
		if (!fr)
			return -1;
	}
	sc = script_init(&cfg, "edge-test", "eu", origin, err, sizeof err);
	if (!sc) {
		fprintf(stderr, "script_init: %s\n", err);
		return -1;
	}
	return 0;
}

static int setup(void **st)
{
	char err[256], p[128], rp[128];
	log_init("test_script", getenv("TEST_LOG") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
	snprintf(dir, sizeof dir, "/tmp/test_script.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	bundle_keygen(pk, sk);
	snprintf(p, sizeof p, "%s/origin.pub", dir);
	if (bundle_key_write(p, pk, sizeof pk, false, err, sizeof err) < 0)
		return -1;
	snprintf(rp, sizeof rp, "%s/regions", dir);
	FILE *f = fopen(rp, "w");
	fputs("# test map\n127.0.2.0/24 us\n127.0.3.0/24 ap\n", f);
	fclose(f);
	memset(&cfg, 0, sizeof cfg);
	cfg.enabled = true;
	cfg.pubkey = xcalloc(2, sizeof *cfg.pubkey);
	cfg.pubkey[0] = xstrdup(p);
	cfg.npubkey = 1;
	cfg.path = xasprintf("%s/db", dir);
	cfg.map_size = 16 << 20;
	cfg.memory = 8 << 20;
	cfg.instructions = 2000; /* 2M instructions */
	cfg.time_ms = 300;
	cfg.fetch_timeout_ms = 200;
	cfg.max_fetches = 2;
	cfg.fetch_max_body = 1 << 20;
	cfg.regions = xstrdup(rp);
	return init();
}

static int teardown(void **st)
{
	script_shutdown(sc);
	sc = NULL;
	fetcher_stop(fr);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		return -1;
	free(cfg.pubkey[0]);
	free(cfg.pubkey);
	free(cfg.path);
	free(cfg.regions);
	close(mute_fd);
	return 0;
}

/* ---------- helpers ---------- */

/* Signs lua (with manifest) as version ver; key: sk or another. */
static char *sign_lua(const char *lua, uint64_t ver, const uint8_t *key, size_t *envlen)
{
	char err[512];
	struct bundle *b = bundle_from_lua(lua, strlen(lua), "test.lua", err, sizeof err);
	if (!b)
		fail_msg("bundle: %s", err);
	b->version = ver;
	size_t len;
	char *bytes = bundle_serialize(b, &len, err, sizeof err);
	if (!bytes)
		fail_msg("serialize: %s", err);
	char *env = bundle_sign(bytes, len, key, envlen);
	free(bytes);
	bundle_free(b);
	return env;
}

static int push_env(const char *env, size_t len, struct buf *out)
{
	buf_reset(out);
	return script_control(sc, "POST", "/.minicdn/scripts", env, len, out);
}

static int push(const char *lua, uint64_t ver)
{
	size_t n;
	struct buf out = BUF_INIT;
	char *env = sign_lua(lua, ver, sk, &n);
	int st = push_env(env, n, &out);
	if (st != 200)
		print_message("push v%llu -> %d %s", (unsigned long long)ver, st, out.data);
	free(env);
	buf_free(&out);
	return st;
}

struct hdrs {
	const char *names[4], *values[4];
};

/* A client connection as the dispatch would have it: headers, and the
 * suspend/wake pair (wake comes from the fetcher's thread). */
struct conn {
	struct hdrs h; /* first: hdr_get casts ctx */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int suspended, woken;
};

static void conn_suspend(void *ctx)
{
	struct conn *c = ctx;
	pthread_mutex_lock(&c->mu);
	c->suspended++;
	pthread_mutex_unlock(&c->mu);
}

static void conn_wake(void *ctx)
{
	struct conn *c = ctx;
	pthread_mutex_lock(&c->mu);
	c->woken++;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/* Waits (at most 5 s) until c was woken as often as it was suspended. */
static bool conn_wait(struct conn *c)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	pthread_mutex_lock(&c->mu);
	int rc = 0;
	while (c->woken < c->suspended && rc == 0)
		rc = pthread_cond_timedwait(&c->cv, &c->mu, &ts);
	bool ok = c->woken == c->suspended;
	pthread_mutex_unlock(&c->mu);
	return ok;
}

static void conn_init(struct conn *c)
{
	memset(c, 0, sizeof *c);
	c->h.names[0] = "Host";
	c->h.values[0] = "www.cdn.test";
	c->h.names[1] = "X-Name";
	c->h.values[1] = "Ada";
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
}

/* Starts a request on c (c and *a must outlive it); SCRIPT_WAIT leaves *task. */
static enum script_result start(struct conn *c, struct sockaddr_in *a, const char *method,
                                const char *path, const char *query, struct script_resp *resp,
                                struct script_task **task);

static const char *hdr_get(void *ctx, const char *name)
{
	struct hdrs *h = ctx;
	for (int i = 0; i < 4 && h->names[i]; i++)
		if (!strcasecmp(h->names[i], name))
			return h->values[i];
	return NULL;
}

static void hdr_each(void *ctx, void (*cb)(void *, const char *, const char *), void *arg)
{
	struct hdrs *h = ctx;
	for (int i = 0; i < 4 && h->names[i]; i++)
		cb(arg, h->names[i], h->values[i]);
}

static struct sockaddr_in client_addr(const char *ip)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	inet_pton(AF_INET, ip, &a.sin_addr);
	return a;
}

static enum script_result start(struct conn *c, struct sockaddr_in *a, const char *method,
                                const char *path, const char *query, struct script_resp *resp,
                                struct script_task **task)
{
	struct script_req req = {
		.method = method, .host = "www.cdn.test", .path = path, .path_len = strlen(path),
		.query = query, .client = (struct sockaddr *)a, .header = hdr_get,
		.headers_each = hdr_each, .ctx = c, .fetcher = fr, .suspend = conn_suspend,
		.wake = conn_wake,
	};
	return script_handle(sc, &req, resp, task);
}

/* Runs one request to its end (waiting for its subrequests); returns the
 * result, fills resp. */
static enum script_result run(const char *method, const char *path, const char *query,
                              const char *client, struct script_resp *resp)
{
	struct conn c;
	conn_init(&c);
	struct sockaddr_in a = client_addr(client ? client : "127.0.1.5");
	struct script_task *t;
	enum script_result res = start(&c, &a, method, path, query, resp, &t);
	while (res == SCRIPT_WAIT) {
		if (!conn_wait(&c))
			fail_msg("%s: no wake-up within 5 s", path);
		res = script_resume(t, resp);
	}
	assert_int_equal(c.woken, c.suspended);
	return res;
}

static char *body_of(const char *path, const char *query, int *status)
{
	struct script_resp r;
	enum script_result res = run("GET", path, query, NULL, &r);
	if (res == SCRIPT_PASS) {
		*status = 0;
		return NULL;
	}
	*status = r.status;
	char *b = xstrndup(r.body ? r.body : "", r.body_len);
	script_resp_free(&r);
	return b;
}

static unsigned long long metric(const char *needle)
{
	struct buf m = BUF_INIT;
	script_metrics(sc, &m);
	const char *p = strstr(m.data, needle);
	unsigned long long v = p ? strtoull(p + strlen(needle), NULL, 10) : ~0ull;
	buf_free(&m);
	return v;
}

#define HELLO(v, extra) \
	"--[[minicdn\nname = \"hello\";\nroutes = ( { path = \"/hello*\"; method = \"GET\"; } );\n]]\n" \
	"function handle(req)\n" extra \
	"  return { status = 200, headers = { [\"X-V\"] = \"" v "\" },\n" \
	"           body = \"v" v " \" .. req.edge_name .. \" \" .. req.region .. \" \" .. (req.args.id or \"-\")" \
	" .. \" \" .. (req.headers[\"x-name\"] or \"-\") }\nend\n"

/* ---------- tests ---------- */

static void test_push_and_run(void **st)
{
	assert_int_equal(push(HELLO("1", ""), 10), 200);
	int status;
	char *b = body_of("/hello", "id=42&x=1", &status);
	assert_int_equal(status, 200);
	assert_string_equal(b, "v1 edge-test eu 42 Ada");
	free(b);
	/* Region from the client address. */
	struct script_resp r;
	assert_int_equal(run("GET", "/hello", NULL, "127.0.3.9", &r), SCRIPT_RESPONSE);
	assert_string_equal(r.body, "v1 edge-test ap - Ada");
	assert_string_equal(r.script, "hello");
	assert_int_equal(r.version, 10);
	int ct = 0, xv = 0;
	for (size_t i = 0; i < r.nheaders; i++) {
		ct |= !strcasecmp(r.headers[i].name, "Content-Type");
		xv |= !strcmp(r.headers[i].name, "X-V") && !strcmp(r.headers[i].value, "1");
	}
	assert_true(ct && xv);
	script_resp_free(&r);
	/* Routes: other paths and methods fall through. */
	assert_int_equal(run("GET", "/other", NULL, NULL, &r), SCRIPT_PASS);
	assert_int_equal(run("POST", "/hello", NULL, NULL, &r), SCRIPT_PASS);
	assert_true(metric("minicdn_script_invocations_total{script=\"hello\"} ") >= 2);
}

static void test_refused_keep_old(void **st)
{
	struct buf out = BUF_INIT;
	size_t n;
	int status;
	/* Replay of the active bundle and an older version. */
	char *env = sign_lua(HELLO("1", ""), 10, sk, &n);
	assert_int_equal(push_env(env, n, &out), 409);
	assert_non_null(strstr(out.data, "replay"));
	free(env);
	assert_int_equal(push(HELLO("0", ""), 9), 409);
	/* Wrong key. */
	uint8_t pk2[BUNDLE_PK_LEN], sk2[BUNDLE_SK_LEN];
	bundle_keygen(pk2, sk2);
	env = sign_lua(HELLO("2", ""), 11, sk2, &n);
	assert_int_equal(push_env(env, n, &out), 403);
	free(env);
	/* Unsigned: a bare bundle and an envelope without sig. */
	const char *unsigned_env = "{\"format\":\"minicdn-bundle-1\",\"bundle\":\"e30=\"}";
	assert_int_equal(push_env(unsigned_env, strlen(unsigned_env), &out), 403);
	assert_int_equal(push_env("garbage", 7, &out), 400);
	/* Does not compile; and compiles but has no handle. */
	assert_int_equal(push("--[[minicdn\nname=\"hello\";\nroutes=({path=\"/hello\";});\n]]\nfunction handle(req\n", 12), 422);
	assert_int_equal(push("--[[minicdn\nname=\"hello\";\nroutes=({path=\"/hello\";});\n]]\nlocal x = 1\n", 13), 422);
	/* Top-level code that loops forever is caught at push time. */
	assert_int_equal(push("--[[minicdn\nname=\"hello\";\nroutes=({path=\"/hello\";});\n]]\nwhile true do end\n", 14), 422);
	char *b = body_of("/hello", NULL, &status);
	assert_int_equal(status, 200);
	assert_string_equal(b, "v1 edge-test eu - Ada");
	free(b);
	buf_free(&out);
}

static void test_activate_new_then_restart(void **st)
{
	int status;
	assert_int_equal(push(HELLO("2", ""), 20), 200);
	char *b = body_of("/hello", NULL, &status);
	assert_string_equal(b, "v2 edge-test eu - Ada");
	free(b);
	struct buf out = BUF_INIT;
	assert_int_equal(script_control(sc, "GET", "/.minicdn/scripts", NULL, 0, &out), 200);
	assert_non_null(strstr(out.data, "\"name\":\"hello\",\"version\":20"));
	assert_non_null(strstr(out.data, "\"previous\":10"));
	buf_free(&out);
	/* Restart: the active version comes back from LMDB. */
	script_shutdown(sc);
	sc = NULL;
	assert_int_equal(init(), 0);
	b = body_of("/hello", NULL, &status);
	assert_int_equal(status, 200);
	assert_string_equal(b, "v2 edge-test eu - Ada");
	free(b);
	/* And the replay protection survived the restart too. */
	assert_int_equal(push(HELLO("1", ""), 15), 409);
}

/* In-flight requests finish on the version they started with, even when
 * the new version runs on the same thread (same Lua state) while the old one
 * waits for its subrequest. */
static void test_inflight_keeps_old(void **st)
{
	assert_int_equal(push(HELLO("3", "  fetch('/d/150')\n"), 30), 200);
	struct conn c;
	conn_init(&c);
	struct sockaddr_in a = client_addr("127.0.1.5");
	struct script_resp r;
	struct script_task *t;
	assert_int_equal(start(&c, &a, "GET", "/hello", NULL, &r, &t), SCRIPT_WAIT);
	assert_int_equal(c.suspended, 1);
	assert_int_equal(push(HELLO("4", ""), 31), 200);
	int status;
	char *b = body_of("/hello", NULL, &status);
	assert_string_equal(b, "v4 edge-test eu - Ada");
	free(b);
	assert_true(conn_wait(&c));
	assert_int_equal(script_resume(t, &r), SCRIPT_RESPONSE);
	assert_string_equal(r.body, "v3 edge-test eu - Ada");
	assert_int_equal(r.version, 30);
	script_resp_free(&r);
}

static const char *HOSTILE_HDR =
	"--[[minicdn\nname = \"evil\";\nroutes = ( { path = \"/evil/*\"; },\n"
	"  { path = \"/soft/*\"; on_error = \"origin\"; } );\n]]\n";

static void hostile(const char *body, int ver)
{
	char *src = xasprintf("%s%s", HOSTILE_HDR, body);
	assert_int_equal(push(src, (uint64_t)ver), 200);
	free(src);
}

static void test_hostile(void **st)
{
	struct {
		const char *code;
		const char *kind; /* errors_total kind that must grow, NULL: any 500 */
	} cases[] = {
		{ "function handle(req) while true do end end", "instructions" },
		{ "function handle(req) while true do pcall(function() while true do end end) end end", "instructions" },
		{ "function handle(req) local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1000) .. i end end", "memory" },
		{ "function handle(req) return string.rep('x', 1 << 30) end", "memory" },
		{ "function handle(req) local function f(n) return 1 + f(n + 1) end return tostring(f(1)) end", NULL },
		{ "function handle(req) return io.open('/etc/passwd'):read('a') end", "runtime" },
		{ "function handle(req) os.execute('touch /tmp/pwned') return 'x' end", "runtime" },
		{ "function handle(req) os.exit(1) end", "runtime" },
		{ "function handle(req) return debug.getregistry() end", "runtime" },
		{ "function handle(req) return load('return 1')() end", "runtime" },
		{ "function handle(req) return string.dump(handle) end", "runtime" },
		{ "function handle(req) return ('').dump(handle) end", "runtime" },
		{ "function handle(req) return require('os').execute('id') end", "runtime" },
		{ "function handle(req) return package.loadlib('libc.so.6', 'system') end", "runtime" },
		{ "function handle(req) collectgarbage('stop') return 'x' end", "runtime" },
		{ "function handle(req) getmetatable('').__index.upper = function() return 'pwned' end end", "runtime" },
		{ "function handle(req) string.upper = nil end", "runtime" },
		{ "function handle(req) setmetatable({}, { __gc = function() while true do end end }) end", "runtime" },
		{ "function handle(req) rawset(_G, 'x', 1) end", "runtime" },
		{ "function handle(req) x_global = 1 return 'x' end", "runtime" },
		{ "function handle(req) local s = 0 while true do s = s + 1 end end", "instructions" },
		{ "function handle(req) return 42 end", "response" },
		{ "function handle(req) return { status = 200, headers = { ['X\\r\\nY'] = 'v' } } end", "response" },
		{ "function handle(req) return { headers = { X = 'a\\r\\nInjected: 1' } } end", "response" },
		{ "function handle(req) return { headers = { X = 'a\\0b' } } end", "response" },
		{ "function handle(req) return { headers = { ['Bad Name'] = 'v' } } end", "response" },
		{ "function handle(req) return { headers = { [''] = 'v' } } end", "response" },
		{ "function handle(req) return { headers = { 'v' } } end", "response" },
		{ "function handle(req) return { headers = { X = true } } end", "response" },
		{ "function handle(req) return { headers = { X = { 'a', false } } } end", "response" },
		{ "function handle(req) return { headers = { X = { 'a', 2, { } } } } end", "response" },
		{ "function handle(req) return { headers = 'X: 1' } end", "response" },
		{ "function handle(req) local h = {} for i = 1, 65 do h['X-' .. i] = 'v' end return { headers = h } end", "response" },
		{ "function handle(req) local l = {} for i = 1, 65 do l[i] = 'v' end return { headers = { X = l } } end", "response" },
		{ "function handle(req) return { headers = { A = { 'v', 'v' }, B = ('v '):rep(40, ',') .. '', C = ('x'):rep(9000) } } end", "response" },
		{ "function handle(req) return { status = 99 } end", "response" },
		{ "function handle(req) return { status = 'ok' } end", "response" },
		{ "function handle(req) return { status = 200.5 } end", "response" },
		{ "function handle(req) return { body = {} } end", "response" },
		{ "function handle(req) return { cache = -1 } end", "response" },
		{ "function handle(req) return { cache = 'yes' } end", "response" },
	};
	char needle[128];
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		hostile(cases[i].code, 100 + (int)i);
		unsigned long long before = 0;
		if (cases[i].kind) {
			snprintf(needle, sizeof needle,
			         "minicdn_script_errors_total{script=\"evil\",kind=\"%s\"} ", cases[i].kind);
			before = metric(needle);
		}
		struct script_resp r;
		enum script_result res = run("GET", "/evil/x", NULL, NULL, &r);
		if (res != SCRIPT_RESPONSE || r.status != 500)
			fail_msg("case %zu (%s): result %d status %d body %.*s", i, cases[i].code, res, r.status,
			         (int)r.body_len, r.body ? r.body : "");
		script_resp_free(&r);
		if (cases[i].kind && metric(needle) != before + 1)
			fail_msg("case %zu: %s not counted as %s", i, cases[i].code, cases[i].kind);
		/* The same failure on an on_error = "origin" route falls through. */
		assert_int_equal(run("GET", "/soft/x", NULL, NULL, &r), SCRIPT_PASS);
		/* Other scripts are unaffected, and the string library is intact. */
		int status;
		char *b = body_of("/hello", "id=1", &status);
		assert_int_equal(status, 200);
		assert_string_equal(b, "v4 edge-test eu 1 Ada");
		free(b);
	}
	/* No file was created by os.execute. */
	assert_int_equal(access("/tmp/pwned", F_OK), -1);
	/* The string metatable and library survive tampering attempts. */
	hostile("function handle(req) return { body = ('abc'):upper() .. tostring(getmetatable('')) } end", 200);
	int status;
	char *b = body_of("/evil/x", NULL, &status);
	assert_string_equal(b, "ABCprotected");
	free(b);
}

/* Response tables in every accepted shape become the same headers. */
static void test_response_shapes(void **st)
{
	hostile("function handle(req)\n"
	        "  local h = { ['X-Num'] = 42, ['X-Float'] = 1.5, ['X-List'] = { 'a', 7, 'c' },\n"
	        "              ['content-type'] = 'text/x-mine', ['X-Empty'] = '', ['X-None'] = { } }\n"
	        "  for i = 1, 57 do h['X-' .. i] = tostring(i) end\n"
	        "  return { status = 201, headers = h, body = 12 }\n"
	        "end", 300);
	struct script_resp r;
	assert_int_equal(run("GET", "/evil/x", NULL, NULL, &r), SCRIPT_RESPONSE);
	assert_int_equal(r.status, 201);
	assert_int_equal(r.body_len, 2);
	assert_memory_equal(r.body, "12", 2);
	/* 57 + X-Num + X-Float + 3 list items + content-type + X-Empty = 64, the
	 * limit, and no default Content-Type beside the script's own. */
	assert_int_equal(r.nheaders, 64);
	int seen = 0, list = 0;
	for (size_t i = 0; i < r.nheaders; i++) {
		const char *n = r.headers[i].name, *v = r.headers[i].value;
		seen |= (!strcmp(n, "X-Num") && !strcmp(v, "42")) << 0;
		seen |= (!strcmp(n, "X-Float") && !strcmp(v, "1.5")) << 1;
		seen |= (!strcmp(n, "content-type") && !strcmp(v, "text/x-mine")) << 2;
		seen |= (!strcmp(n, "X-Empty") && !strcmp(v, "")) << 3;
		seen |= (!strcmp(n, "X-57") && !strcmp(v, "57")) << 4;
		if (!strcmp(n, "X-List"))
			list = list * 10 + (!strcmp(v, "a") ? 1 : !strcmp(v, "7") ? 2 : !strcmp(v, "c") ? 3 : 9);
		assert_true(strcasecmp(n, "Content-Type") || !strcmp(v, "text/x-mine"));
	}
	assert_int_equal(seen, 31);
	assert_int_equal(list, 123); /* in list order */
	script_resp_free(&r);
	/* A response table with many other fields is read by name. */
	hostile("function handle(req)\n"
	        "  local r = { 'a', 'b', status = 202, body = 'many', x1 = 1, x2 = 2, x3 = 3 }\n"
	        "  for i = 1, 20 do r['y' .. i] = i end\n"
	        "  return r\n"
	        "end", 302);
	assert_int_equal(run("GET", "/evil/x", NULL, NULL, &r), SCRIPT_RESPONSE);
	assert_int_equal(r.status, 202);
	assert_int_equal(r.body_len, 4);
	assert_memory_equal(r.body, "many", 4);
	script_resp_free(&r);
	/* ... and one with a few, whatever their order in the table. */
	hostile("function handle(req) return { [1] = 'x', cache = false, headers = { ['X-A'] = 'a' },\n"
	        "  status = 203, body = 'few' } end", 303);
	assert_int_equal(run("GET", "/evil/x", NULL, NULL, &r), SCRIPT_RESPONSE);
	assert_int_equal(r.status, 203);
	assert_memory_equal(r.body, "few", 3);
	assert_int_equal(r.nheaders, 2); /* X-A and the default Content-Type */
	assert_string_equal(r.headers[0].name, "X-A");
	script_resp_free(&r);
	/* A plain string gets the default Content-Type. */
	hostile("function handle(req) return 'plain' end", 304);
	assert_int_equal(run("GET", "/evil/x", NULL, NULL, &r), SCRIPT_RESPONSE);
	assert_int_equal(r.nheaders, 1);
	assert_string_equal(r.headers[0].value, "text/plain; charset=utf-8");
	script_resp_free(&r);
}

static void test_kv(void **st)
{
	assert_int_equal(push("--[[minicdn\nname=\"counter\";\nroutes=({path=\"/count\";},{path=\"/kv/*\";});\n]]\n"
	                      "function handle(req)\n"
	                      "  if req.path == '/count' then return tostring(kv.incr('hits')) end\n"
	                      "  if req.path == '/kv/set' then kv.set('k', req.args.v, tonumber(req.args.ttl)) return 'ok' end\n"
	                      "  if req.path == '/kv/get' then return kv.get('k') or 'nil' end\n"
	                      "  if req.path == '/kv/del' then return tostring(kv.delete('k')) end\n"
	                      "end\n", 1), 200);
	int status;
	for (int i = 1; i <= 3; i++) {
		char *b = body_of("/count", NULL, &status);
		char want[16];
		snprintf(want, sizeof want, "%d", i);
		assert_string_equal(b, want);
		free(b);
	}
	char *b = body_of("/kv/set", "v=hello&ttl=0.3", &status);
	free(b);
	b = body_of("/kv/get", NULL, &status);
	assert_string_equal(b, "hello");
	free(b);
	usleep(400000);
	b = body_of("/kv/get", NULL, &status);
	assert_string_equal(b, "nil"); /* expired */
	free(b);
	b = body_of("/kv/set", "v=x", &status);
	free(b);
	b = body_of("/kv/del", NULL, &status);
	assert_string_equal(b, "true");
	free(b);
	/* Another script cannot see counter's keys. */
	assert_int_equal(push("--[[minicdn\nname=\"spy\";\nroutes=({path=\"/spy\";});\n]]\n"
	                      "function handle(req) return kv.get('hits') or 'nil' end\n", 1), 200);
	b = body_of("/spy", NULL, &status);
	assert_string_equal(b, "nil");
	free(b);
	/* The counter survives a restart (LMDB). */
	script_shutdown(sc);
	sc = NULL;
	assert_int_equal(init(), 0);
	b = body_of("/count", NULL, &status);
	assert_string_equal(b, "4");
	free(b);
}

static void test_fetch_bounded(void **st)
{
	/* The origin never answers: fetch times out and returns nil, err;
	 * the third fetch in one request is over the limit of 2. */
	assert_int_equal(push("--[[minicdn\nname=\"sub\";\nroutes=({path=\"/sub\";},{path=\"/many\";});\n]]\n"
	                      "function handle(req)\n"
	                      "  if req.path == '/sub' then local r, err = fetch('/x') return 'nil:' .. tostring(r == nil) .. ':' .. tostring(err ~= nil) end\n"
	                      "  for i = 1, 3 do fetch('/x') end return 'unreachable'\n"
	                      "end\n", 1), 200);
	int status;
	char *b = body_of("/sub", NULL, &status);
	assert_string_equal(b, "nil:true:true");
	free(b);
	b = body_of("/many", NULL, &status);
	assert_int_equal(status, 500);
	free(b);
}

#define ASYNC_SRC \
	"--[[minicdn\nname=\"async\";\nroutes=({path=\"/a/*\";});\n]]\n" \
	"function handle(req)\n" \
	"  local p = req.path\n" \
	"  if p == '/a/one' then local r, err = fetch('/d/' .. req.args.ms)\n" \
	"    return r and (r.status .. ' ' .. r.body .. ' ' .. r.headers['x-o'] .. ' ' .. req.args.ms) or ('err ' .. err) end\n" \
	"  if p == '/a/two' then local r1 = fetch('/d/20') local r2 = fetch('/d/30') return r1.body .. '+' .. r2.body end\n" \
	"  if p == '/a/pcall' then local ok, r = pcall(fetch, '/d/10') return tostring(ok) .. ' ' .. r.body end\n" \
	"  if p == '/a/gsub' then return (string.gsub('x', 'x', function() return fetch('/d/1').body end)) end\n" \
	"  if p == '/a/spin' then local n = 0 for i = 1, tonumber(req.args.n) do n = n + i end\n" \
	"    local r = fetch('/d/10') for i = 1, tonumber(req.args.n) do n = n + i end return r.body end\n" \
	"end\n"

static char *finish_body(struct conn *c, struct script_task *t, int *status)
{
	struct script_resp r;
	if (!conn_wait(c))
		fail_msg("no wake-up within 5 s");
	enum script_result res = script_resume(t, &r);
	assert_int_equal(res, SCRIPT_RESPONSE);
	*status = r.status;
	char *b = xstrndup(r.body ? r.body : "", r.body_len);
	script_resp_free(&r);
	return b;
}

/* Origin subrequests yield: several requests wait at once on one thread's
 * Lua state, others run meanwhile, each keeps its own budgets. */
static void test_fetch_async(void **st)
{
	assert_int_equal(push(ASYNC_SRC, 1), 200);
	int status;
	char *b = body_of("/a/one", "ms=5", &status);
	assert_string_equal(b, "200 got /d/5 5 5");
	free(b);
	b = body_of("/a/two", NULL, &status);
	assert_string_equal(b, "got /d/20+got /d/30");
	free(b);
	b = body_of("/a/pcall", NULL, &status);
	assert_string_equal(b, "true got /d/10");
	free(b);
	/* A C function's callback cannot wait: a clear error, not a stall. */
	unsigned long long rt0 = metric("minicdn_script_errors_total{script=\"async\",kind=\"runtime\"} ");
	b = body_of("/a/gsub", NULL, &status);
	assert_int_equal(status, 500); /* on_error "500" (the default) */
	free(b);
	assert_int_equal(metric("minicdn_script_errors_total{script=\"async\",kind=\"runtime\"} "), rt0 + 1);

	/* Two requests wait at once (the slower one started first); a third
	 * runs to completion meanwhile; they finish in the order of their
	 * subrequests, each with its own request. */
	struct conn ca, cb;
	conn_init(&ca);
	conn_init(&cb);
	struct sockaddr_in a = client_addr("127.0.1.5");
	struct script_resp r;
	struct script_task *ta, *tb;
	assert_int_equal(start(&ca, &a, "GET", "/a/one", "ms=150", &r, &ta), SCRIPT_WAIT);
	assert_int_equal(start(&cb, &a, "GET", "/a/one", "ms=20", &r, &tb), SCRIPT_WAIT);
	b = body_of("/a/pcall", NULL, &status);
	assert_string_equal(b, "true got /d/10");
	free(b);
	b = finish_body(&cb, tb, &status);
	assert_string_equal(b, "200 got /d/20 20 20");
	free(b);
	assert_int_equal(ca.woken, 0); /* still waiting */
	b = finish_body(&ca, ta, &status);
	assert_string_equal(b, "200 got /d/150 150 150");
	free(b);

	/* Instruction budgets are per request: each of these spends ~1.6M of
	 * its 2M, interleaved (a shared count would kill the later ones). */
	assert_int_equal(start(&ca, &a, "GET", "/a/spin", "n=400000", &r, &ta), SCRIPT_WAIT);
	assert_int_equal(start(&cb, &a, "GET", "/a/spin", "n=400000", &r, &tb), SCRIPT_WAIT);
	b = finish_body(&ca, ta, &status);
	assert_string_equal(b, "got /d/10");
	free(b);
	b = finish_body(&cb, tb, &status);
	assert_string_equal(b, "got /d/10");
	free(b);
	/* ... and still enforced in a coroutine. */
	unsigned long long in0 = metric("minicdn_script_errors_total{script=\"async\",kind=\"instructions\"} ");
	assert_int_equal(run("GET", "/a/spin", "n=1100000", NULL, &r), SCRIPT_RESPONSE);
	assert_int_equal(r.status, 500);
	script_resp_free(&r);
	assert_int_equal(metric("minicdn_script_errors_total{script=\"async\",kind=\"instructions\"} "), in0 + 1);
	/* A killed coroutine is not reused without its budget: the next
	 * runaway request on this thread is stopped too (Lua 5.4.4 keeps hooks
	 * off in a thread reset after a kill from the hook). */
	assert_int_equal(run("GET", "/a/spin", "n=1100000", NULL, &r), SCRIPT_RESPONSE);
	assert_int_equal(r.status, 500);
	script_resp_free(&r);
	assert_int_equal(metric("minicdn_script_errors_total{script=\"async\",kind=\"instructions\"} "), in0 + 2);

	/* The request goes away while waiting: no wake-up afterwards, nothing
	 * leaks (ASan), the state keeps serving. */
	unsigned long long inv0 = metric("minicdn_script_invocations_total{script=\"async\"} ");
	conn_init(&ca);
	assert_int_equal(start(&ca, &a, "GET", "/a/one", "ms=50", &r, &ta), SCRIPT_WAIT);
	script_abort(ta);
	usleep(200 * 1000);
	assert_int_equal(ca.woken, 0);
	assert_int_equal(metric("minicdn_script_invocations_total{script=\"async\"} "), inv0 + 1);
	b = body_of("/a/one", "ms=1", &status);
	assert_string_equal(b, "200 got /d/1 1 1");
	free(b);
}

static void test_delete(void **st)
{
	size_t n;
	struct buf out = BUF_INIT;
	/* A signed tombstone removes the script; an older bundle cannot return. */
	char *tomb = NULL;
	{
		char err[256];
		struct bundle b = { .name = "hello", .version = 40, .op = BUNDLE_OP_DELETE };
		size_t len;
		char *bytes = bundle_serialize(&b, &len, err, sizeof err);
		assert_non_null(bytes);
		tomb = bundle_sign(bytes, len, sk, &n);
		free(bytes);
	}
	assert_int_equal(script_control(sc, "DELETE", "/.minicdn/scripts/other", tomb, n, &out), 400);
	buf_reset(&out);
	assert_int_equal(script_control(sc, "DELETE", "/.minicdn/scripts/hello", tomb, n, &out), 200);
	struct script_resp r;
	assert_int_equal(run("GET", "/hello", NULL, NULL, &r), SCRIPT_PASS);
	assert_int_equal(push(HELLO("4", ""), 31), 409);
	assert_int_equal(push(HELLO("5", ""), 41), 200);
	assert_int_equal(run("GET", "/hello", NULL, NULL, &r), SCRIPT_RESPONSE);
	script_resp_free(&r);
	free(tomb);
	buf_free(&out);
}

/* Two scripts objects in one process (as two edges would be) share nothing:
 * bundles, versions seen, KV data, regions and Lua states are each one's
 * own, and freeing one leaves the other running. */
static void test_independent_objects(void **st)
{
	char err[256];
	int status;
	struct script_config c2 = cfg;
	c2.path = xasprintf("%s/db2", dir);
	c2.regions = NULL;
	c2.default_region = (char *)"mars";
	struct scripts *one = sc;
	struct scripts *two = script_init(&c2, "edge-two", "as", origin, err, sizeof err);
	if (!two)
		fail_msg("second script_init: %s", err);
	static const char solo[] =
		"--[[minicdn\nname=\"solo\";\nroutes=({path=\"/solo\";});\n]]\n"
		"function handle(req) return req.edge_name .. ' ' .. req.region .. ' ' .. kv.incr('n') end\n";
	sc = two;
	assert_int_equal(push(solo, 1), 200);
	char *b = body_of("/solo", NULL, &status);
	assert_string_equal(b, "edge-two mars 1");
	free(b);
	b = body_of("/solo", NULL, &status);
	assert_string_equal(b, "edge-two mars 2");
	free(b);
	assert_int_equal(metric("minicdn_script_invocations_total{script=\"solo\"} "), 2);

	sc = one;
	b = body_of("/solo", NULL, &status); /* not active here */
	assert_null(b);
	assert_int_equal(status, 0);
	assert_int_equal(metric("minicdn_script_invocations_total{script=\"solo\"} "), ~0ull);
	assert_int_equal(push(solo, 1), 200); /* version 1 was seen by the other store only */
	b = body_of("/solo", NULL, &status);
	assert_string_equal(b, "edge-test eu 1");
	free(b);

	script_shutdown(two);
	b = body_of("/solo", NULL, &status);
	assert_string_equal(b, "edge-test eu 2");
	free(b);
	free(c2.path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_push_and_run),
		cmocka_unit_test(test_refused_keep_old),
		cmocka_unit_test(test_activate_new_then_restart),
		cmocka_unit_test(test_inflight_keeps_old),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_response_shapes),
		cmocka_unit_test(test_kv),
		cmocka_unit_test(test_fetch_bounded),
		cmocka_unit_test(test_fetch_async),
		cmocka_unit_test(test_delete),
		cmocka_unit_test(test_independent_objects),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
