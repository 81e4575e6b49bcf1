/* conns.c -- client connection deadlines and the oldest-idle-first cap */
#include "edge/front/conns.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

/* How often deadlines are looked at: a deadline is kept within this. */
#define SWEEP_MS 200

struct conn {
	struct conn *prev, *next;
	struct conns *cs;
	int fd;
	enum conn_phase phase;
	long long since_ms;  /* when the phase began */
	bool shut;           /* shutdown() already called */
};

struct conns {
	pthread_mutex_t lock;   /* guards the list and the counters */
	pthread_cond_t wake;
	pthread_t thread;
	bool stop;
	struct conns_limits lim;
	struct conn head;       /* list sentinel */
	uint64_t open, head_timeouts, body_timeouts, closed_for_room;
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void conns_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                  enum MHD_ConnectionNotificationCode code)
{
	struct conns *cs = cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		struct conn *k = xcalloc(1, sizeof *k);
		k->cs = cs;
		k->fd = ci ? ci->connect_fd : -1;
		k->phase = CONN_HEAD;
		k->since_ms = now_ms();
		pthread_mutex_lock(&cs->lock);
		k->next = cs->head.next;
		k->prev = &cs->head;
		cs->head.next->prev = k;
		cs->head.next = k;
		cs->open++;
		pthread_mutex_unlock(&cs->lock);
		*socket_context = k;
		return;
	}
	/* Closed: MHD tells before it closes the socket, so under the lock the
	 * sweeper never shuts down an fd that was reused. */
	struct conn *k = *socket_context;
	if (!k)
		return;
	pthread_mutex_lock(&cs->lock);
	k->prev->next = k->next;
	k->next->prev = k->prev;
	cs->open--;
	pthread_mutex_unlock(&cs->lock);
	free(k);
	*socket_context = NULL;
}

void conns_phase(struct MHD_Connection *c, enum conn_phase p)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn *k = ci ? ci->socket_context : NULL;
	if (!k)
		return;
	pthread_mutex_lock(&k->cs->lock);
	k->phase = p;
	k->since_ms = now_ms();
	pthread_mutex_unlock(&k->cs->lock);
}

static void shut(struct conn *k)
{
	k->shut = true;
	if (k->fd >= 0)
		shutdown(k->fd, SHUT_RDWR);
}

/* One pass, under the lock: deadlines, then room. */
static void sweep(struct conns *cs)
{
	long long now = now_ms();
	uint64_t live = 0;
	for (struct conn *k = cs->head.next; k != &cs->head; k = k->next) {
		if (k->shut)
			continue;
		long long age = now - k->since_ms;
		if (k->phase == CONN_HEAD && age > cs->lim.head_timeout_ms) {
			cs->head_timeouts++;
			shut(k);
		} else if (k->phase == CONN_BODY && age > cs->lim.body_timeout_ms) {
			cs->body_timeouts++;
			shut(k);
		} else {
			live++;
		}
	}
	/* Near the cap, connections waiting for a head (idle keep-alives,
	 * trickled heads) make room, oldest first, so a new client is not
	 * refused while others hold sockets doing nothing. */
	uint64_t headroom = cs->lim.max / 16 > 8 ? cs->lim.max / 16 : 8;
	if (cs->lim.max <= headroom)
		return;
	while (live > cs->lim.max - headroom) {
		struct conn *old = NULL;
		for (struct conn *k = cs->head.next; k != &cs->head; k = k->next)
			if (!k->shut && k->phase == CONN_HEAD && (!old || k->since_ms < old->since_ms))
				old = k;
		if (!old)
			break;
		cs->closed_for_room++;
		shut(old);
		live--;
	}
}

static void *sweeper(void *arg)
{
	struct conns *cs = arg;
	pthread_mutex_lock(&cs->lock);
	while (!cs->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += SWEEP_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&cs->wake, &cs->lock, &ts);
		if (!cs->stop)
			sweep(cs);
	}
	pthread_mutex_unlock(&cs->lock);
	return NULL;
}

struct conns *conns_new(const struct conns_limits *lim)
{
	struct conns *cs = xcalloc(1, sizeof *cs);
	cs->lim = *lim;
	cs->head.next = cs->head.prev = &cs->head;
	pthread_mutex_init(&cs->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&cs->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&cs->thread, NULL, sweeper, cs) != 0) {
		pthread_cond_destroy(&cs->wake);
		pthread_mutex_destroy(&cs->lock);
		free(cs);
		return NULL;
	}
	return cs;
}

void conns_free(struct conns *cs)
{
	if (!cs)
		return;
	pthread_mutex_lock(&cs->lock);
	cs->stop = true;
	pthread_cond_signal(&cs->wake);
	pthread_mutex_unlock(&cs->lock);
	pthread_join(cs->thread, NULL);
	/* Connections still listed (the daemon was not stopped first) leak
	 * their small records rather than race with MHD. */
	pthread_cond_destroy(&cs->wake);
	pthread_mutex_destroy(&cs->lock);
	free(cs);
}

void conns_stats(struct conns *cs, struct conns_stats *out)
{
	pthread_mutex_lock(&cs->lock);
	out->open = cs->open;
	out->head_timeouts = cs->head_timeouts;
	out->body_timeouts = cs->body_timeouts;
	out->closed_for_room = cs->closed_for_room;
	pthread_mutex_unlock(&cs->lock);
}
