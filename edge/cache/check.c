/* check.c -- the start-up check of an existing store, as the edge runs it.
 *
 * Forks a child that runs walk.c over the store before the edge opens it,
 * waits for its report (the structure walk, then body checksums after an
 * unclean stop) and, if the checksum pass outlives the start-up wait, goes
 * on reading it in a background thread while the edge serves.  At the end
 * of such a pass the entries of bad bodies are deleted through
 * writer_call().  Calls: walk.c (in the child), badset.c, records.c (todo
 * lists), writer.c (writer_call); only cache.c calls into it. */
#include "edge/cache/store_int.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK_DEADLINE_S 60

/* ---------- reading the check's reports (start-up, then in the background) ---------- */

/* The child's lines as they arrive; after "end", the rest is the reason. */
struct check_read {
	char buf[1024];
	size_t len;
	bool structure, ended;
	char state[16];
	unsigned long verified;
	char why[300];
	size_t whylen;
};

/* Takes in n more bytes of the child's report in r->buf and acts on the
 * complete lines. */
static void check_take(struct cache *c, struct check_read *r, size_t n)
{
	r->len += n;
	size_t pos = 0;
	while (!r->ended) {
		char *nl = memchr(r->buf + pos, '\n', r->len - pos);
		if (!nl)
			break;
		*nl = '\0';
		const char *line = r->buf + pos;
		unsigned long long id;
		if (!strcmp(line, "structure ok"))
			r->structure = true;
		else if (sscanf(line, "bad %llu", &id) == 1)
			badset_add(c, id);
		else if (sscanf(line, "upto %llu", &id) == 1)
			atomic_store(&c->verified_upto, id);
		else if (sscanf(line, "end %15s %lu", r->state, &r->verified) == 2)
			r->ended = true;
		else if (line[0] == '#')
			log_warn("cache", "store check: %s", line + 2);
		pos = (size_t)(nl + 1 - r->buf);
	}
	if (r->ended) { /* the reason, as it comes */
		size_t k = r->len - pos;
		if (k > sizeof r->why - 1 - r->whylen)
			k = sizeof r->why - 1 - r->whylen;
		memcpy(r->why + r->whylen, r->buf + pos, k);
		r->whylen += k;
		r->why[r->whylen] = '\0';
		pos = r->len;
	}
	memmove(r->buf, r->buf + pos, r->len - pos);
	r->len -= pos;
	if (r->len == sizeof r->buf) /* a line longer than any the child writes */
		r->len = 0;
}

/* Reads one chunk of the report; false at end of file (the child is done). */
static bool check_read_some(struct cache *c, struct check_read *r, int fd)
{
	ssize_t n = read(fd, r->buf + r->len, sizeof r->buf - r->len);
	if (n < 0 && errno == EINTR)
		return true;
	if (n <= 0)
		return false;
	check_take(c, r, (size_t)n);
	return true;
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* ---------- the check at start-up ---------- */

/* Checks the store at path in a child process.  Returns 0 if it is sound (or
 * absent), -1 with the reason in why if it is damaged (a body's checksum
 * included), -2 if it is of an older format.
 *
 * The start waits for the structure walk (CHECK_DEADLINE_S at most: past
 * that the check is abandoned, and every body from before the stop is
 * verified on read for this run), then o->check_ms for the checksums.  A
 * checksum pass still running then goes on in the background: c->check_pid
 * and c->check_fd are set, and check_start() hands them to check_main(). */
int store_check(struct cache *c, const struct cache_opts *o, char *why, size_t whylen)
{
	char data[4096];
	snprintf(data, sizeof data, "%s/data.mdb", o->path);
	struct stat sb;
	if (stat(data, &sb) < 0 || sb.st_size == 0)
		return 0;
	int pfd[2];
	if (pipe(pfd) < 0)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &c->check_t0);
	pid_t pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return 0;
	}
	if (pid == 0) {
		/* The child may die on a wild page by design: its stderr (and a
		 * sanitizer's report of that) is not the edge's log.  A write
		 * to an edge gone away ends it (EPIPE), without a signal. */
		int devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0)
			dup2(devnull, 2);
		signal(SIGPIPE, SIG_IGN);
		close(pfd[0]);
		_exit(check_walk(o->path, o->map_size, o->verify_rate, pfd[1]));
	}
	close(pfd[1]);
	struct check_read *r = xcalloc(1, sizeof *r);
	double deadline = CHECK_DEADLINE_S * 1e3;
	bool eof = false, structure = false;
	for (;;) {
		double left = deadline - ms_since(&c->check_t0);
		if (left <= 0)
			break;
		struct pollfd pf = { pfd[0], POLLIN, 0 };
		int pr = poll(&pf, 1, left > 1000 ? 1000 : (int)left + 1);
		if (pr > 0 && !check_read_some(c, r, pfd[0])) {
			eof = true;
			break;
		}
		if (r->structure && !structure) { /* the checksum pass begins */
			structure = true;
			deadline = o->check_ms ? ms_since(&c->check_t0) + (double)o->check_ms : 1e300;
		}
	}
	if (!eof) {
		atomic_store(&c->unverified, true); /* old bodies verified on read meanwhile */
		if (!r->structure) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			close(pfd[0]);
			c->verify_all = true;
			log_warn("cache", "store check of %s took more than %d s: abandoned; every body "
			         "from before the stop is verified on read for this run", o->path,
			         CHECK_DEADLINE_S);
		} else {
			c->check_pid = pid;
			c->check_fd = pfd[0];
			c->check_r = r; /* check_main() reads on */
			log_warn("cache", "store %s: the previous run did not stop cleanly: structure "
			         "sound in %.0f ms; the body checksums go on in the background, each "
			         "body from before the stop verified on read until then", o->path,
			         ms_since(&c->check_t0));
			return 0;
		}
		free(r);
		return 0;
	}
	int status = 0;
	waitpid(pid, &status, 0);
	close(pfd[0]);
	double ms = ms_since(&c->check_t0);
	snprintf(why, whylen, "%s", r->why);
	if (r->ended && !strcmp(r->state, "clean"))
		log_info("cache", "store %s: the previous run stopped cleanly: structure checked "
		         "in %.0f ms, body checksums skipped", o->path, ms);
	else if (r->ended && !strcmp(r->state, "unclean"))
		log_warn("cache", "store %s: the previous run did not stop cleanly: %lu body "
		         "checksums verified in %.0f ms", o->path, r->verified, ms);
	free(r);
	int rc = -1;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		rc = 0;
		uint64_t bad = badset_first(c);
		if (bad) { /* found while the start waited: the store is not sound */
			snprintf(why, whylen, "database b: body %llu: checksum mismatch (bytes lost in "
			         "an unclean stop)", (unsigned long long)bad);
			rc = -1;
		}
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == CHECK_FORMAT) {
		rc = -2;
	} else if (WIFSIGNALED(status)) {
		snprintf(why, whylen, "the check crashed reading it (signal %d)", WTERMSIG(status));
	} else if (!why[0]) {
		snprintf(why, whylen, "the check failed (exit %d)", WEXITSTATUS(status));
	}
	badset_clear(c);
	atomic_store(&c->verified_upto, 0);
	return rc;
}

/* ---------- the background half ---------- */

/* Deletes the entries whose bodies the checksum pass found bad (a full
 * scan of the references, once, at the end of a background pass; run by
 * the writer, in its transaction). */
static long drop_bad_in(struct cache *c, MDB_txn *t)
{
	MDB_cursor *cur;
	struct buf todo = BUF_INIT;
	if (mdb_cursor_open(t, c->e, &cur) == 0) {
		MDB_val k, v;
		for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			struct ref r;
			if (ref_decode(&v, &r) == 0 && r.id < atomic_load(&c->verify_limit) &&
			    badset_has(c, r.id))
				todo_push(&todo, k.mv_data, k.mv_size);
		}
		mdb_cursor_close(cur);
	}
	return todo_delete(c, t, &todo);
}

/* The background half of the check: reads the checksum pass's report to
 * its end.  A complete pass lifts the verification on read, after the bad
 * bodies' entries are deleted (they were never served). */
static void *check_main(void *arg)
{
	struct cache *c = arg;
	struct check_read *r = c->check_r;
	while (check_read_some(c, r, c->check_fd))
		;
	int status = 0;
	waitpid(c->check_pid, &status, 0);
	double s = ms_since(&c->check_t0) / 1e3;
	if (atomic_load(&c->check_stop)) {
		log_info("cache", "store %s: background checksum pass stopped by the shutdown; the "
		         "next start verifies again", c->path);
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && r->ended && !c->bad_overflow) {
		size_t nbad = badset_count(c);
		long dropped = nbad ? writer_call(c, drop_bad_in) : 0;
		if (dropped >= 0) {
			nbad = badset_freeze(c);
			if (!nbad)
				atomic_store(&c->verify_limit, 0);
			atomic_store(&c->unverified, false);
		}
		if (nbad)
			log_error("cache", "store %s: background checksum pass done in %.1f s: %lu "
			          "verified, %zu mismatched (bytes lost in the unclean stop; never "
			          "served; entries deleted: %ld)", c->path, s, r->verified, nbad,
			          dropped);
		else
			log_info("cache", "store %s: background checksum pass done in %.1f s: %lu "
			         "verified, all sound", c->path, s, r->verified);
	} else {
		log_warn("cache", "store %s: background checksum pass ended early (%s): the bodies "
		         "it did not reach stay verified on read for this run", c->path,
		         r->why[0] ? r->why : c->bad_overflow ? "too many bad bodies" : "no report");
	}
	close(c->check_fd);
	c->check_fd = -1;
	free(r);
	c->check_r = NULL;
	return NULL;
}

/* Ends the background pass (at close): the child is killed, its reader
 * slot freed by LMDB's next reader check. */
void check_stop(struct cache *c)
{
	if (c->check_started) {
		atomic_store(&c->check_stop, true);
		kill(c->check_pid, SIGKILL);
		pthread_join(c->check_thread, NULL);
		c->check_started = false;
	} else if (c->check_pid > 0) { /* not handed to check_main */
		kill(c->check_pid, SIGKILL);
		waitpid(c->check_pid, NULL, 0);
		close(c->check_fd);
		free(c->check_r);
		c->check_r = NULL;
	}
	c->check_pid = 0;
}

/* Hands a checksum pass still running after store_check to check_main(). */
void check_start(struct cache *c)
{
	if (c->check_pid > 0)
		c->check_started = pthread_create(&c->check_thread, NULL, check_main, c) == 0;
}
