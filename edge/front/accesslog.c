/* accesslog.c -- per-thread buffered access log lines, appended in chunks */
#include "edge/front/accesslog.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct al_buf {
	pthread_mutex_t lock; /* the owning thread and accesslog_flush() */
	struct buf b;
	struct al_buf *next;
};

struct accesslog {
	unsigned gen;            /* tells this log's thread buffers from a closed one's */
	char *path;
	pthread_mutex_t fd_lock; /* the fd against a reopen */
	int fd;
	pthread_mutex_t list_lock;
	struct al_buf *bufs;
	unsigned long write_errors;
};

/* One access log at a time: a thread's buffer is found without a lookup;
 * my_gen tells it from a buffer of a log since closed (tests open several). */
static _Thread_local struct al_buf *my_buf;
static _Thread_local unsigned my_gen;
static _Atomic unsigned log_gen;

struct accesslog *accesslog_open(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		snprintf(err, errlen, "access log %s: %s", path, strerror(errno));
		return NULL;
	}
	struct accesslog *al = xcalloc(1, sizeof *al);
	al->gen = ++log_gen;
	al->path = xstrdup(path);
	al->fd = fd;
	pthread_mutex_init(&al->fd_lock, NULL);
	pthread_mutex_init(&al->list_lock, NULL);
	return al;
}

/* Writes b out and empties it (b->lock held). */
static void write_buf(struct accesslog *al, struct buf *b)
{
	if (!b->len)
		return;
	pthread_mutex_lock(&al->fd_lock);
	size_t off = 0;
	while (off < b->len) {
		ssize_t n = write(al->fd, b->data + off, b->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* A full disk must not stop the edge: the lines are lost,
			 * and said so once in a while. */
			if (al->write_errors++ % 1000 == 0)
				log_warn("accesslog", "%s: write: %s (lines dropped)", al->path,
				         strerror(n < 0 ? errno : EIO));
			break;
		}
		off += (size_t)n;
	}
	pthread_mutex_unlock(&al->fd_lock);
	b->len = 0;
}

void accesslog_add(struct accesslog *al, const char *line, size_t len)
{
	struct al_buf *ab = my_gen == al->gen ? my_buf : NULL;
	if (!ab) {
		ab = xcalloc(1, sizeof *ab);
		pthread_mutex_init(&ab->lock, NULL);
		pthread_mutex_lock(&al->list_lock);
		ab->next = al->bufs;
		al->bufs = ab;
		pthread_mutex_unlock(&al->list_lock);
		my_buf = ab;
		my_gen = al->gen;
	}
	pthread_mutex_lock(&ab->lock);
	buf_append(&ab->b, line, len);
	if (ab->b.len >= ACCESSLOG_CHUNK)
		write_buf(al, &ab->b);
	pthread_mutex_unlock(&ab->lock);
}

/* ---------- the line ---------- */

/* A line under construction: appends never pass its end (what does not fit
 * is cut; the line still ends in '\n'). */
struct logline {
	char d[4096];
	size_t n;
};

static void ll_put(struct logline *l, const char *s, size_t len)
{
	size_t room = sizeof l->d - 1 - l->n; /* one byte kept for the '\n' */
	if (len > room)
		len = room;
	memcpy(l->d + l->n, s, len);
	l->n += len;
}

static void ll_str(struct logline *l, const char *s)
{
	ll_put(l, s ? s : "-", strlen(s ? s : "-"));
}

/* A client's string: quotes, backslashes and bytes outside printable ASCII
 * as \xHH, so it cannot forge a field or a line; NULL as "-". */
static void ll_esc(struct logline *l, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	if (!s) {
		ll_str(l, "-");
		return;
	}
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
			char x[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };
			ll_put(l, x, 4);
		} else {
			ll_put(l, (const char *)&c, 1);
		}
	}
}

static void ll_num(struct logline *l, long long v)
{
	char t[24];
	ll_put(l, t, (size_t)snprintf(t, sizeof t, "%lld", v));
}

void accesslog_request(struct accesslog *al, const struct accesslog_entry *e)
{
	/* The date changes once a second: formatted then, per thread. */
	static _Thread_local time_t last;
	static _Thread_local char date[40];
	time_t now = time(NULL);
	if (now != last) {
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(date, sizeof date, "[%d/%b/%Y:%H:%M:%S +0000]", &tm);
		last = now;
	}
	struct logline l;
	l.n = 0;
	ll_str(&l, e->client);
	ll_str(&l, " - - ");
	ll_str(&l, date);
	ll_str(&l, " \"");
	ll_esc(&l, e->method);
	ll_str(&l, " ");
	ll_esc(&l, e->target);
	ll_str(&l, " ");
	ll_esc(&l, e->version);
	ll_str(&l, "\" ");
	ll_num(&l, e->status);
	ll_str(&l, " ");
	if (e->bytes >= 0)
		ll_num(&l, e->bytes);
	else
		ll_str(&l, "-");
	ll_str(&l, " \"");
	ll_esc(&l, e->referer);
	ll_str(&l, "\" \"");
	ll_esc(&l, e->user_agent);
	ll_str(&l, "\" ");
	ll_str(&l, e->result);
	char t[48];
	ll_put(&l, t, (size_t)snprintf(t, sizeof t, " %lld.%06lld ", e->us / 1000000, e->us % 1000000));
	ll_str(&l, e->node);
	ll_str(&l, " ");
	ll_str(&l, e->site ? e->site : "-");
	if (e->aborted)
		ll_str(&l, " aborted");
	l.d[l.n++] = '\n';
	accesslog_add(al, l.d, l.n);
}

/* ---------- buffers and the file ---------- */

void accesslog_flush(struct accesslog *al)
{
	pthread_mutex_lock(&al->list_lock);
	for (struct al_buf *ab = al->bufs; ab; ab = ab->next) {
		pthread_mutex_lock(&ab->lock);
		write_buf(al, &ab->b);
		pthread_mutex_unlock(&ab->lock);
	}
	pthread_mutex_unlock(&al->list_lock);
}

int accesslog_reopen(struct accesslog *al)
{
	accesslog_flush(al);
	int fd = open(al->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	pthread_mutex_lock(&al->fd_lock);
	int old = al->fd;
	al->fd = fd;
	pthread_mutex_unlock(&al->fd_lock);
	close(old);
	return 0;
}

void accesslog_close(struct accesslog *al)
{
	if (!al)
		return;
	accesslog_flush(al);
	close(al->fd);
	for (struct al_buf *ab = al->bufs, *next; ab; ab = next) {
		next = ab->next;
		buf_free(&ab->b);
		pthread_mutex_destroy(&ab->lock);
		free(ab);
	}
	pthread_mutex_destroy(&al->fd_lock);
	pthread_mutex_destroy(&al->list_lock);
	free(al->path);
	free(al);
}
