/* test_cache.c -- the LMDB store through its API: round trip, 304 update,
 * 304 updates through the writer, purges ordered with queued stores, purges
 * that do not wait for the writer, clean-shutdown marker, body checksums
 * after an unclean stop (at start-up, and in the background with bodies
 * verified on read meanwhile), refusal of an older store format, Vary
 * records leaving with their last variant, LRU eviction sparing an object
 * that is being read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "edge/cache/cache.h"

static char dir[64];

static int setup(void **state)
{
	snprintf(dir, sizeof dir, "/tmp/test_cache.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static struct cache *open_store(void)
{
	struct cache_opts o = { .path = dir, .map_size = 64 << 20 };
	char err[256];
	struct cache *c = cache_open(&o, err, sizeof err);
	if (!c)
		fail_msg("cache_open: %s", err);
	return c;
}

static const struct entry_meta META = { 200, 0, 1000, 1001, 1000, 0, 3600, -1, -1, 0 };
static const char HDRS[] = "content-type\0text/plain\0etag\0\"v1\"\0";

static void put(struct cache *c, const char *key, const char *body, const char *tags, size_t tl)
{
	assert_int_equal(cache_store(c, key, NULL, NULL, NULL, &META, HDRS, sizeof HDRS - 1, tags, tl,
	                             body, strlen(body)),
	                 0);
}

/* Returns the body of key ("" if absent: a miss) in out. */
static bool get(struct cache *c, const char *key, char *out, size_t outlen)
{
	struct cache_ref *ref;
	struct entry_view v;
	out[0] = '\0';
	if (cache_lookup(c, key, NULL, NULL, &ref, &v, NULL) != CACHE_HIT)
		return false;
	size_t n = v.body_len < outlen - 1 ? (size_t)v.body_len : outlen - 1;
	memcpy(out, v.body, n);
	out[n] = '\0';
	cache_ref_release(c, ref);
	return true;
}

static void test_roundtrip_update_purge(void **state)
{
	struct cache *c = open_store();
	char b[4096];
	put(c, "http://h/a", "body-a", "t1\0all\0", 7);
	put(c, "http://h/b", "body-b", "all\0", 4);
	char big[3000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	put(c, "http://h/big", big, "", 0); /* an overflow page */
	assert_true(get(c, "http://h/a", b, sizeof b));
	assert_string_equal(b, "body-a");
	assert_true(get(c, "http://h/big", b, sizeof b));
	assert_string_equal(b, big);
	struct cache_stats st;
	cache_get_stats(c, &st);
	assert_int_equal(st.entries, 3);
	/* A replaced entry leaves no second body behind. */
	put(c, "http://h/a", "body-a2", "t1\0all\0", 7);
	cache_get_stats(c, &st);
	assert_int_equal(st.entries, 3);
	/* 304: new headers and meta, same body and tags. */
	struct entry_meta m = META;
	m.lifetime = 7;
	static const char H2[] = "etag\0\"v2\"\0";
	assert_int_equal(cache_update(c, "http://h/a", &m, H2, sizeof H2 - 1), 0);
	struct cache_ref *ref;
	struct entry_view v;
	assert_int_equal(cache_lookup(c, "http://h/a", NULL, NULL, &ref, &v, NULL), CACHE_HIT);
	assert_int_equal(v.meta.lifetime, 7);
	assert_string_equal(entry_get_header(&v, "etag"), "\"v2\"");
	assert_null(entry_get_header(&v, "content-type"));
	assert_int_equal(v.body_len, 7);
	assert_memory_equal(v.body, "body-a2", 7);
	assert_int_equal(v.tags_len, 7);
	cache_ref_release(c, ref);
	assert_int_equal(cache_update(c, "http://h/none", &m, H2, sizeof H2 - 1), -1);
	/* Purges. */
	assert_int_equal(cache_purge_tag(c, "t1"), 1);
	assert_false(get(c, "http://h/a", b, sizeof b));
	assert_int_equal(cache_purge_tag(c, "all"), 1);
	assert_false(get(c, "http://h/b", b, sizeof b));
	assert_int_equal(cache_purge_prefix(c, "/bi"), 1);
	assert_false(get(c, "http://h/big", b, sizeof b));
	cache_get_stats(c, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, 0);
	cache_close(c);
}

/* ---------- a purge must not be undone by a store queued before it ---------- */

struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool entered, open;
	int done_rc[6];
	int ndone;
};

static void blocker_done(void *cls, int rc)
{
	/* Runs in the writer thread: holds it until the test opens the gate. */
	struct gate *g = cls;
	pthread_mutex_lock(&g->lock);
	g->entered = true;
	g->done_rc[g->ndone++] = rc;
	pthread_cond_broadcast(&g->cond);
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static void plain_done(void *cls, int rc)
{
	struct gate *g = cls;
	pthread_mutex_lock(&g->lock);
	g->done_rc[g->ndone++] = rc;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static void wait_done(struct gate *g, int n)
{
	pthread_mutex_lock(&g->lock);
	while (g->ndone < n)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

/* ---------- 304 updates through the writer ---------- */

static void test_update_async(void **state)
{
	struct cache *c = open_store();
	char b[256];
	put(c, "http://h/u", "body-u", "tu\0", 3);
	put(c, "http://h/v", "body-v", "", 0);
	struct gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false, { 0 }, 0 };
	cache_store_async(c, "http://h/other", NULL, NULL, NULL, &META, HDRS, sizeof HDRS - 1, "", 0,
	                  "x", 1, blocker_done, &g);
	pthread_mutex_lock(&g.lock);
	while (!g.entered)
		pthread_cond_wait(&g.cond, &g.lock);
	pthread_mutex_unlock(&g.lock);
	struct entry_meta m = META;
	m.lifetime = 9;
	static const char H2[] = "etag\0\"v2\"\0x-longer-than-before\0yes\0";
	cache_update_async(c, "http://h/u", &m, H2, sizeof H2 - 1, plain_done, &g);
	cache_update_async(c, "http://h/gone", &m, H2, sizeof H2 - 1, plain_done, &g);
	/* Queued, not committed: readers still see the old meta and headers. */
	struct cache_ref *ref;
	struct entry_view v;
	assert_int_equal(cache_lookup(c, "http://h/u", NULL, NULL, &ref, &v, NULL), CACHE_HIT);
	assert_int_equal(v.meta.lifetime, 3600);
	assert_string_equal(entry_get_header(&v, "etag"), "\"v1\"");
	cache_ref_release(c, ref);
	pthread_mutex_lock(&g.lock);
	g.open = true;
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
	wait_done(&g, 3);
	assert_int_equal(g.done_rc[1], 0);
	assert_int_equal(g.done_rc[2], -1); /* nothing at that key */
	assert_int_equal(cache_lookup(c, "http://h/u", NULL, NULL, &ref, &v, NULL), CACHE_HIT);
	assert_int_equal(v.meta.lifetime, 9);
	assert_string_equal(entry_get_header(&v, "etag"), "\"v2\"");
	assert_string_equal(entry_get_header(&v, "x-longer-than-before"), "yes");
	assert_null(entry_get_header(&v, "content-type"));
	assert_int_equal(v.body_len, 6);
	assert_memory_equal(v.body, "body-u", 6);
	assert_int_equal(v.tags_len, 3);
	cache_ref_release(c, ref);
	/* Same-sized headers again: the accounted bytes do not move. */
	struct cache_stats st1, st2;
	cache_get_stats(c, &st1);
	m.lifetime = 10;
	cache_update_async(c, "http://h/u", &m, H2, sizeof H2 - 1, plain_done, &g);
	wait_done(&g, 4);
	assert_int_equal(g.done_rc[3], 0);
	cache_get_stats(c, &st2);
	assert_int_equal(st2.bytes, st1.bytes);
	/* An update queued before a purge is committed first, then purged. */
	cache_update_async(c, "http://h/v", &m, H2, sizeof H2 - 1, plain_done, &g);
	assert_int_equal(cache_purge_key(c, "http://h/v"), 1);
	wait_done(&g, 5);
	assert_int_equal(g.done_rc[4], 0);
	assert_false(get(c, "http://h/v", b, sizeof b));
	assert_int_equal(cache_purge_tag(c, "tu"), 1);
	assert_int_equal(cache_purge_key(c, "http://h/other"), 1);
	/* Every update's size change was accounted: nothing left, zero bytes. */
	cache_get_stats(c, &st2);
	assert_int_equal(st2.entries, 0);
	assert_int_equal(st2.bytes, 0);
	cache_close(c);
}

struct purger {
	struct cache *c;
	long n;
};

static void *purge_thread(void *arg)
{
	struct purger *p = arg;
	p->n = cache_purge_key(p->c, "http://h/race");
	return NULL;
}

static void test_purge_after_queued_store(void **state)
{
	struct cache *c = open_store();
	char b[256];
	put(c, "http://h/race", "old", "", 0);
	struct gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false, { 0 }, 0 };
	/* Hold the writer in a done callback, then queue the store of a
	 * response fetched before the purge. */
	cache_store_async(c, "http://h/other", NULL, NULL, NULL, &META, HDRS, sizeof HDRS - 1, "", 0,
	                  "x", 1, blocker_done, &g);
	pthread_mutex_lock(&g.lock);
	while (!g.entered)
		pthread_cond_wait(&g.cond, &g.lock);
	pthread_mutex_unlock(&g.lock);
	cache_store_async(c, "http://h/race", NULL, NULL, NULL, &META, HDRS, sizeof HDRS - 1, "", 0,
	                  "fetched-before-purge", 20, plain_done, &g);
	/* The purge (another thread: it waits for the writer). */
	struct purger p = { c, -7 };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, purge_thread, &p), 0);
	usleep(100 * 1000); /* an unordered purge would be done by now */
	pthread_mutex_lock(&g.lock);
	g.open = true;
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
	pthread_join(th, NULL);
	pthread_mutex_lock(&g.lock);
	while (g.ndone < 2)
		pthread_cond_wait(&g.cond, &g.lock);
	pthread_mutex_unlock(&g.lock);
	assert_int_equal(g.done_rc[0], 0);
	assert_int_equal(g.done_rc[1], 0);
	/* The queued store was committed first, then purged with the rest. */
	assert_int_equal(p.n, 1);
	assert_false(get(c, "http://h/race", b, sizeof b));
	assert_true(get(c, "http://h/other", b, sizeof b));
	/* Purges of every kind still work from the writer's own thread path
	 * (no writer queued work): a store then a purge by prefix. */
	struct entry_meta later = META;
	later.request_time = (int64_t)time(NULL) + 1; /* requested after the purge */
	assert_int_equal(cache_store(c, "http://h/race", NULL, NULL, NULL, &later, HDRS,
	                             sizeof HDRS - 1, "", 0, "again", 5),
	                 0);
	assert_int_equal(cache_purge_prefix(c, "http://h/ra"), 1);
	assert_false(get(c, "http://h/race", b, sizeof b));
	cache_close(c);
}

/* ---------- purges that do not wait ---------- */

struct async_purge {
	struct cache *c;
	char arg[64];
	struct gate *g;      /* its lock guards the fields below */
	bool returned;
	long n;
	int calls;
};

static void async_purged(void *cls, long n)
{
	struct async_purge *a = cls;
	pthread_mutex_lock(&a->g->lock);
	a->n = n;
	a->calls++;
	pthread_cond_broadcast(&a->g->cond);
	pthread_mutex_unlock(&a->g->lock);
}

static void *async_purge_thread(void *arg)
{
	struct async_purge *a = arg;
	cache_purge_async(a->c, CACHE_PURGE_KEY, a->arg, async_purged, a);
	/* The argument was copied: the caller may reuse its buffer at once. */
	memset(a->arg, 'x', sizeof a->arg - 1);
	pthread_mutex_lock(&a->g->lock);
	a->returned = true;
	pthread_cond_broadcast(&a->g->cond);
	pthread_mutex_unlock(&a->g->lock);
	return NULL;
}

/* cache_purge_async returns while the writer is busy (held here in a done
 * callback, so a purge that waited for its commit could not return), runs
 * its callback only after the commit, in queue order behind a store queued
 * before it. */
static void test_purge_async(void **state)
{
	struct cache *c = open_store();
	char b[256];
	put(c, "http://h/tagged", "t", "grp\0", 4);
	struct gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false, { 0 }, 0 };
	cache_store_async(c, "http://h/other", NULL, NULL, NULL, &META, HDRS, sizeof HDRS - 1, "", 0,
	                  "x", 1, blocker_done, &g);
	pthread_mutex_lock(&g.lock);
	while (!g.entered)
		pthread_cond_wait(&g.cond, &g.lock);
	pthread_mutex_unlock(&g.lock);
	cache_store_async(c, "http://h/race", NULL, NULL, NULL, &META, HDRS, sizeof HDRS - 1, "", 0,
	                  "fetched-before-purge", 20, plain_done, &g);
	struct async_purge a = { .c = c, .g = &g, .n = -7 };
	snprintf(a.arg, sizeof a.arg, "http://h/race");
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, async_purge_thread, &a), 0);
	/* The writer stays held until the gate opens, so this wait ends only
	 * if the purge did not wait for it; the deadline turns a purge that
	 * blocks into a failure instead of a hang. */
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 30;
	pthread_mutex_lock(&g.lock);
	int rc = 0;
	while (!a.returned && rc == 0)
		rc = pthread_cond_timedwait(&g.cond, &g.lock, &until);
	bool returned = a.returned;
	int calls = a.calls;
	g.open = true; /* let the writer go either way, so the test can end */
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
	pthread_join(th, NULL);
	assert_true(returned);        /* returned while the writer was busy */
	assert_int_equal(calls, 0);   /* and reported nothing before its commit */
	pthread_mutex_lock(&g.lock);
	while (a.calls == 0)
		pthread_cond_wait(&g.cond, &g.lock);
	pthread_mutex_unlock(&g.lock);
	wait_done(&g, 2);
	assert_int_equal(a.calls, 1);
	/* The store queued first was committed, then purged. */
	assert_int_equal(a.n, 1);
	assert_false(get(c, "http://h/race", b, sizeof b));
	assert_true(get(c, "http://h/other", b, sizeof b));
	/* Tags and prefixes too; a purge that matches nothing reports 0. */
	struct async_purge t = { .c = c, .g = &g, .n = -7 };
	cache_purge_async(c, CACHE_PURGE_TAG, "grp", async_purged, &t);
	cache_purge_async(c, CACHE_PURGE_PREFIX, "http://h/nothing", async_purged, &a);
	pthread_mutex_lock(&g.lock);
	while (t.calls == 0 || a.calls < 2)
		pthread_cond_wait(&g.cond, &g.lock);
	pthread_mutex_unlock(&g.lock);
	assert_int_equal(t.n, 1);
	assert_int_equal(a.n, 0);
	assert_false(get(c, "http://h/tagged", b, sizeof b));
	cache_close(c);
}

/* A response requested before a purge but stored after it (a fetch still
 * running when the purge came): not stored.  One requested after the purge
 * is stored.  By key, by prefix and by tag. */
static void test_purge_while_fetching(void **state)
{
	struct cache *c = open_store();
	char b[256];
	int64_t now = (int64_t)time(NULL);
	struct entry_meta before = META, after = META;
	before.request_time = now - 5;
	after.request_time = now + 1; /* a request sent after the purge's second */
	assert_int_equal(cache_purge_key(c, "http://h/k"), 0);
	assert_int_equal(cache_purge_prefix(c, "/pre/"), 0);
	assert_int_equal(cache_purge_tag(c, "tg"), 0);
	static const struct {
		const char *key, *tags;
		size_t tl;
	} cases[] = {
		{ "http://h/k", "", 0 },
		{ "http://other/pre/x", "", 0 },
		{ "http://h/tagged", "a\0tg\0", 5 },
	};
	for (int i = 0; i < 3; i++) {
		assert_int_equal(cache_store(c, cases[i].key, NULL, NULL, NULL, &before, HDRS,
		                             sizeof HDRS - 1, cases[i].tags, cases[i].tl, "stale", 5),
		                 -1);
		assert_false(get(c, cases[i].key, b, sizeof b));
		assert_int_equal(cache_store(c, cases[i].key, NULL, NULL, NULL, &after, HDRS,
		                             sizeof HDRS - 1, cases[i].tags, cases[i].tl, "fresh", 5),
		                 0);
		assert_true(get(c, cases[i].key, b, sizeof b));
		assert_string_equal(b, "fresh");
	}
	/* Not covered by any purge: stored whatever its request time. */
	assert_int_equal(cache_store(c, "http://h/free", NULL, NULL, NULL, &before, HDRS,
	                             sizeof HDRS - 1, "b\0", 2, "x", 1),
	                 0);
	assert_true(get(c, "http://h/free", b, sizeof b));
	/* Through the writer: the done callback hears -1. */
	struct gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, true, { 0 }, 0 };
	cache_store_async(c, "http://h/k", NULL, NULL, NULL, &before, HDRS, sizeof HDRS - 1, "", 0,
	                  "stale", 5, plain_done, &g);
	pthread_mutex_lock(&g.lock);
	while (g.ndone < 1)
		pthread_cond_wait(&g.cond, &g.lock);
	pthread_mutex_unlock(&g.lock);
	assert_int_equal(g.done_rc[0], -1);
	assert_true(get(c, "http://h/k", b, sizeof b));
	assert_string_equal(b, "fresh");
	/* Within one second: the purge sequence taken when the request was sent
	 * decides, not the request time (both requests below are "now"). */
	struct entry_meta sent = META, later = META;
	sent.request_time = later.request_time = (int64_t)time(NULL);
	sent.purge_seq = cache_purge_seq(c);
	assert_int_equal(cache_purge_key(c, "http://h/sub"), 0);
	later.purge_seq = cache_purge_seq(c);
	assert_true(later.purge_seq > sent.purge_seq);
	assert_int_equal(cache_store(c, "http://h/sub", NULL, NULL, NULL, &sent, HDRS, sizeof HDRS - 1,
	                             "", 0, "stale", 5),
	                 -1);
	assert_false(get(c, "http://h/sub", b, sizeof b));
	assert_int_equal(cache_store(c, "http://h/sub", NULL, NULL, NULL, &later, HDRS, sizeof HDRS - 1,
	                             "", 0, "fresh", 5),
	                 0);
	assert_true(get(c, "http://h/sub", b, sizeof b));
	assert_string_equal(b, "fresh");
	cache_close(c);
}

/* ---------- clean-shutdown marker and checksums ---------- */

/* Whether "m" holds the clean-shutdown marker (the store must be closed). */
static bool marker_set(void)
{
	MDB_env *env;
	MDB_txn *t;
	MDB_dbi m;
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 8);
	mdb_env_set_mapsize(env, 64 << 20);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY | MDB_NOLOCK, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &t), 0);
	assert_int_equal(mdb_dbi_open(t, "m", 0, &m), 0);
	MDB_val k = { 5, "clean" }, v;
	bool set = mdb_get(t, m, &k, &v) == 0;
	mdb_txn_abort(t);
	mdb_env_close(env);
	return set;
}

/* Flips the first byte of marker in data.mdb; returns how many were found. */
static int corrupt(const char *marker)
{
	char path[128];
	snprintf(path, sizeof path, "%s/data.mdb", dir);
	FILE *f = fopen(path, "r+b");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	char *d = malloc((size_t)len);
	fseek(f, 0, SEEK_SET);
	assert_int_equal(fread(d, 1, (size_t)len, f), (size_t)len);
	int found = 0;
	size_t ml = strlen(marker);
	for (long i = 0; i + (long)ml <= len; i++) {
		if (memcmp(d + i, marker, ml))
			continue;
		fseek(f, i, SEEK_SET);
		fputc(d[i] ^ 0x01, f);
		found++;
	}
	fclose(f);
	free(d);
	return found;
}

static bool damaged_aside(void)
{
	char path[128];
	struct stat sb;
	snprintf(path, sizeof path, "%s/data.mdb.damaged", dir);
	return stat(path, &sb) == 0;
}

/* An unclean stop: a child process opens the store, optionally stores,
 * and exits without cache_close (as a kill -9 would). */
static void unclean_run(const char *key, const char *body)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct cache *c = open_store();
		if (key)
			put(c, key, body, "", 0);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_clean_marker_and_checksums(void **state)
{
	char b[256];
	struct cache *c = open_store();
	put(c, "http://h/keep", "KEEP-BODY-MARKER", "", 0);
	cache_close(c);
	assert_true(marker_set());
	unclean_run("http://h/lost", "LOST-BODY-MARKER");
	assert_false(marker_set());
	/* Intact bytes after an unclean stop: verified, everything kept. */
	c = open_store();
	assert_false(damaged_aside());
	assert_true(get(c, "http://h/lost", b, sizeof b));
	assert_string_equal(b, "LOST-BODY-MARKER");
	assert_true(get(c, "http://h/keep", b, sizeof b));
	cache_close(c);
	assert_true(marker_set());
	unclean_run(NULL, NULL); /* the open clears the marker */
	assert_false(marker_set());
	/* A body byte that "never reached the disk": found by its checksum,
	 * the store is moved aside, nothing wrong is served. */
	assert_true(corrupt("LOST-BODY-MARKER") >= 1);
	c = open_store();
	assert_true(damaged_aside());
	assert_false(get(c, "http://h/lost", b, sizeof b));
	assert_false(get(c, "http://h/keep", b, sizeof b));
	cache_close(c);
}

/* ---------- checksums verified in the background ---------- */

#define BG_N 600 /* three batches of the checksum pass */

static struct cache *open_store_bg(uint64_t rate)
{
	struct cache_opts o = { .path = dir, .map_size = 64 << 20, .check_ms = 1, .verify_rate = rate };
	char err[256];
	struct cache *c = cache_open(&o, err, sizeof err);
	if (!c)
		fail_msg("cache_open: %s", err);
	return c;
}

static void bg_key(char *k, size_t n, int i)
{
	snprintf(k, n, "http://h/bg%d", i);
}

/* BG_N entries of 1000 bytes ("BG-BODY-0042-yyyy..."), then an unclean stop. */
static void bg_fill(void)
{
	struct cache *c = open_store();
	char k[64], body[1001];
	for (int i = 0; i < BG_N; i++) {
		bg_key(k, sizeof k, i);
		int n = snprintf(body, sizeof body, "BG-BODY-%04d-", i);
		memset(body + n, 'y', sizeof body - 1 - (size_t)n);
		body[sizeof body - 1] = '\0';
		put(c, k, body, "", 0);
	}
	cache_close(c);
	unclean_run(NULL, NULL);
	assert_false(marker_set());
}

static bool bg_get(struct cache *c, int i)
{
	char k[64], b[1100], want[32];
	bg_key(k, sizeof k, i);
	snprintf(want, sizeof want, "BG-BODY-%04d-", i);
	if (!get(c, k, b, sizeof b))
		return false;
	assert_int_equal(strlen(b), 1000);
	assert_memory_equal(b, want, strlen(want));
	return true;
}

static bool wait_verified(struct cache *c, int secs)
{
	struct cache_stats st;
	for (int i = 0; i < secs * 20; i++) {
		cache_get_stats(c, &st);
		if (!st.unverified)
			return true;
		usleep(50000);
	}
	return false;
}

/* The start waits 1 ms for checksums, then serves: old bodies the pass has
 * not reached are verified on read, bad ones never served, and at the end
 * of the pass their entries are gone and everything else kept. */
static void test_background_checksums(void **state)
{
	bg_fill();
	assert_true(corrupt("BG-BODY-0005-") >= 1); /* in the pass's first batch */
	assert_true(corrupt("BG-BODY-0590-") >= 1); /* in its last, seconds later */
	struct cache *c = open_store_bg(128 << 10);    /* about 5 s for 600 KB */
	assert_false(damaged_aside());
	struct cache_stats st;
	cache_get_stats(c, &st);
	assert_true(st.unverified);
	assert_false(bg_get(c, 590)); /* verified on read: refused */
	assert_true(bg_get(c, 580));  /* verified on read: sound */
	char b[64];
	put(c, "http://h/new", "NEW-BODY", "", 0); /* this run's own: trusted */
	assert_true(get(c, "http://h/new", b, sizeof b));
	assert_true(wait_verified(c, 60));
	cache_get_stats(c, &st);
	assert_int_equal(st.bad_bodies, 2);
	assert_int_equal(st.entries, BG_N - 2 + 1); /* the two bad entries deleted */
	int hits = 0;
	for (int i = 0; i < BG_N; i++)
		hits += bg_get(c, i);
	assert_int_equal(hits, BG_N - 2);
	assert_false(bg_get(c, 5));
	cache_close(c);
	assert_true(marker_set()); /* all verified: the next start may skip them */
}

/* Stopped before its pass ends, a store is not marked clean: the next start
 * verifies again (and, waiting this time, finds the bad body). */
static void test_background_checksums_interrupted(void **state)
{
	bg_fill();
	assert_true(corrupt("BG-BODY-0590-") >= 1); /* old page copies too */
	struct cache *c = open_store_bg(16 << 10); /* far slower than the test */
	assert_true(bg_get(c, 3));
	assert_false(bg_get(c, 590));
	cache_close(c);
	assert_false(marker_set());
	c = open_store();
	assert_true(damaged_aside());
	cache_close(c);
}

/* ---------- a store of the previous format is moved aside ---------- */

static void test_old_format(void **state)
{
	/* The MCE2 layout: e/a/l/t/m, entries under the URL, no format record. */
	MDB_env *env;
	MDB_txn *t;
	MDB_dbi dbi;
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 8);
	assert_int_equal(mdb_env_open(env, dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &t), 0);
	static const char *const names[] = { "e", "a", "l", "t", "m" };
	for (int i = 0; i < 5; i++)
		assert_int_equal(mdb_dbi_open(t, names[i], MDB_CREATE | (i == 3 ? MDB_DUPSORT : 0), &dbi), 0);
	uint8_t val[80] = "MCE2";
	MDB_val k = { 10, "http://h/o" }, v = { sizeof val, val };
	assert_int_equal(mdb_dbi_open(t, "e", 0, &dbi), 0);
	assert_int_equal(mdb_put(t, dbi, &k, &v, 0), 0);
	uint64_t bytes = 200;
	MDB_val mk = { 5, "bytes" }, mv = { 8, &bytes };
	assert_int_equal(mdb_dbi_open(t, "m", 0, &dbi), 0);
	assert_int_equal(mdb_put(t, dbi, &mk, &mv, 0), 0);
	assert_int_equal(mdb_txn_commit(t), 0);
	mdb_env_close(env);
	struct cache *c = open_store();
	assert_true(damaged_aside());
	char b[64];
	assert_false(get(c, "http://h/o", b, sizeof b));
	put(c, "http://h/o", "new", "", 0);
	assert_true(get(c, "http://h/o", b, sizeof b));
	cache_close(c);
}

static const char *accept_gzip(void *cls, const char *name)
{
	return !strcmp(name, "accept-encoding") ? cls : NULL;
}

/* Counts Vary records and variant references in "e" (the store closed). */
static void count_e(long *vary, long *variants)
{
	MDB_env *env;
	MDB_txn *t;
	MDB_dbi e;
	MDB_cursor *cur;
	MDB_val k, v;
	*vary = *variants = 0;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY | MDB_NOLOCK, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &t), 0);
	assert_int_equal(mdb_dbi_open(t, "e", 0, &e), 0);
	assert_int_equal(mdb_cursor_open(t, e, &cur), 0);
	for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (v.mv_size >= 4 && !memcmp(v.mv_data, "MCV1", 4))
			(*vary)++;
		else if (memchr(k.mv_data, '\x1f', k.mv_size))
			(*variants)++;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(t);
	mdb_env_close(env);
}

/* Every URL of a site sends Vary: Accept-Encoding: when eviction takes a
 * URL's last variant, its Vary record goes with it, so the store does not
 * fill up with records of URLs long evicted.  A purge of one variant's tag
 * does the same. */
static void test_vary_records_evicted(void **state)
{
	struct cache_opts o = { .path = dir, .map_size = 4 << 20 };
	char err[256];
	struct cache *c = cache_open(&o, err, sizeof err);
	if (!c)
		fail_msg("cache_open: %s", err);
	char body[2048], key[64];
	memset(body, 'x', sizeof body);
	const int n = 4000; /* 8 MB of bodies through a 4 MB map */
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof key, "http://h/v/%d", i);
		assert_int_equal(cache_store(c, key, "Accept-Encoding", accept_gzip, "gzip", &META, HDRS,
		                             sizeof HDRS - 1, "t-all\0", 6, body, sizeof body),
		                 0);
	}
	struct cache_stats st;
	cache_get_stats(c, &st);
	assert_true(st.evicted > 0);
	/* The newest URL is still a hit through its Vary record. */
	struct cache_ref *ref;
	struct entry_view v;
	snprintf(key, sizeof key, "http://h/v/%d", n - 1);
	assert_int_equal(cache_lookup(c, key, accept_gzip, "gzip", &ref, &v, NULL), CACHE_HIT);
	cache_ref_release(c, ref);
	/* Replacing a URL's only variant keeps its Vary record. */
	assert_int_equal(cache_store(c, key, "Accept-Encoding", accept_gzip, "gzip", &META, HDRS,
	                             sizeof HDRS - 1, NULL, 0, "new", 3),
	                 0);
	assert_int_equal(cache_lookup(c, key, accept_gzip, "gzip", &ref, &v, NULL), CACHE_HIT);
	assert_memory_equal(v.body, "new", 3);
	cache_ref_release(c, ref);
	cache_close(c);
	long vary, variants;
	count_e(&vary, &variants);
	assert_true(variants > 100 && variants < n);
	assert_int_equal(vary, variants); /* one record per URL still stored */

	/* A tag purge of every variant leaves no Vary record. */
	c = cache_open(&o, err, sizeof err);
	assert_non_null(c);
	assert_true(cache_purge_tag(c, "t-all") > 0);
	cache_close(c);
	count_e(&vary, &variants);
	assert_int_equal(variants, 1); /* the replaced one, stored without the tag */
	assert_int_equal(vary, 1);
}

/* ---------- LRU eviction ---------- */

/* A hit as the edge serves one: lookup, then the access queued with the
 * storage key the lookup found.  Returns whether it was a hit. */
static bool hit_and_touch(struct cache *c, const char *key)
{
	struct cache_ref *ref;
	struct entry_view v;
	struct buf sk = BUF_INIT;
	bool hit = cache_lookup(c, key, NULL, NULL, &ref, &v, &sk) == CACHE_HIT;
	if (hit) {
		cache_ref_release(c, ref);
		cache_touch(c, sk.data);
	}
	buf_free(&sk);
	return hit;
}

#define LRU_OLD 300 /* cold objects stored with the hot one */
#define LRU_NEW 500 /* cold objects stored after it was read */

/* A small map: a hot object and LRU_OLD cold ones are stored; the hot one
 * is read (a hit whose access the store records, as the edge's main loop
 * does once a second), then LRU_NEW more cold objects push the store past
 * its high-water mark while the hot one keeps being read.  Eviction takes
 * the least recently used: cold objects stored before the read, never the
 * hot one -- which, named to sort first, would be the first to go if its
 * access were not recorded -- and never the newest. */
static void test_lru_eviction(void **state)
{
	struct cache_opts o = { .path = dir, .map_size = 4 << 20 };
	char err[256], key[64], body[2048], b[4096];
	struct cache *c = cache_open(&o, err, sizeof err);
	if (!c)
		fail_msg("cache_open: %s", err);
	memset(body, 'c', sizeof body);
	const char *hot = "http://h/a-hot";
	assert_int_equal(cache_store(c, hot, NULL, NULL, NULL, &META, HDRS, sizeof HDRS - 1, NULL, 0,
	                             body, sizeof body),
	                 0);
	time_t stored = time(NULL);
	for (int i = 0; i < LRU_OLD; i++) {
		snprintf(key, sizeof key, "http://h/cold/old-%03d", i);
		assert_int_equal(cache_store(c, key, NULL, NULL, NULL, &META, HDRS, sizeof HDRS - 1,
		                             NULL, 0, body, sizeof body),
		                 0);
	}
	struct cache_stats st;
	cache_get_stats(c, &st);
	assert_int_equal(st.evicted, 0);
	/* The store records an access only when the last one is at least
	 * 10 s old (it rewrites two records per access): wait that long, so
	 * the read below moves the hot object to the young end. */
	time_t old_end = time(NULL);
	while (time(NULL) < stored + 10 || time(NULL) <= old_end)
		usleep(200 * 1000);
	assert_true(hit_and_touch(c, hot));
	cache_maintain(c);
	for (int i = 0; i < LRU_NEW; i++) {
		snprintf(key, sizeof key, "http://h/cold/new-%03d", i);
		assert_int_equal(cache_store(c, key, NULL, NULL, NULL, &META, HDRS, sizeof HDRS - 1,
		                             NULL, 0, body, sizeof body),
		                 0);
		if (i % 50 == 0) { /* still read while the cold ones come in */
			assert_true(hit_and_touch(c, hot));
			cache_maintain(c);
		}
	}
	cache_get_stats(c, &st);
	assert_true(st.evicted > 0);
	assert_true(st.evicted < LRU_OLD); /* only objects older than the read */
	assert_true(get(c, hot, b, sizeof b));
	assert_false(get(c, "http://h/cold/old-000", b, sizeof b)); /* the oldest went */
	snprintf(key, sizeof key, "http://h/cold/new-%03d", LRU_NEW - 1);
	assert_true(get(c, key, b, sizeof b)); /* the newest stayed */
	assert_true(get(c, "http://h/cold/new-000", b, sizeof b));
	cache_close(c);
}

/* Two sites' scopes ("a://", "b://") hold the same host and path: a purge
 * scoped to one never touches the other's entries. */
static void test_scoped_purges(void **state)
{
	struct cache *c = open_store();
	char b[64];
	/* (A purge also drops later stores of what it covers: all stored first.) */
	put(c, "a://h/p/1", "a1", NULL, 0);
	put(c, "a://h2/p/2", "a2", NULL, 0);
	put(c, "a://h/r", "ar", "t\0", 2);
	put(c, "b://h/p/1", "b1", NULL, 0);
	put(c, "b://h/q", "bq", "t\0", 2);
	put(c, "c://h/p/9", "c9", NULL, 0);
	assert_int_equal(cache_purge_prefix(c, "a:///p/"), 2); /* every host of a */
	assert_false(get(c, "a://h/p/1", b, sizeof b));
	assert_false(get(c, "a://h2/p/2", b, sizeof b));
	assert_true(get(c, "b://h/p/1", b, sizeof b));
	assert_true(get(c, "c://h/p/9", b, sizeof b));
	assert_int_equal(cache_purge_prefix(c, "b://h/p"), 1); /* absolute: that scope and host */
	assert_true(get(c, "a://h/r", b, sizeof b));
	assert_int_equal(cache_purge_tag(c, "b://\x1ft"), 1); /* b's entries tagged t */
	assert_false(get(c, "b://h/q", b, sizeof b));
	assert_true(get(c, "a://h/r", b, sizeof b));
	assert_int_equal(cache_purge_tag(c, "t"), 1); /* a's link to the tag survived */
	assert_false(get(c, "a://h/r", b, sizeof b));
	assert_int_equal(cache_purge_prefix(c, "/p/"), 1); /* a bare path: every scope */
	assert_false(get(c, "c://h/p/9", b, sizeof b));
	cache_close(c);
}

int main(void)
{
	log_init("test_cache", LOG_LVL_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip_update_purge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_purge_after_queued_store, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_async, setup, teardown),
		cmocka_unit_test_setup_teardown(test_purge_while_fetching, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clean_marker_and_checksums, setup, teardown),
		cmocka_unit_test_setup_teardown(test_background_checksums, setup, teardown),
		cmocka_unit_test_setup_teardown(test_background_checksums_interrupted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_old_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vary_records_evicted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lru_eviction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scoped_purges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_purge_async, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
