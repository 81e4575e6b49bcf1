/* health.c -- edge health checks with libcurl multi */
#include "dns/health.h"
#include "dns/snap.h"
#include "common/daemon.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BODY_MAX 65536

struct hstate {
	char *name;
	int fails, succs;
	struct edge_health h;
	struct hstate *next;
};

static pthread_mutex_t hlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hcond = PTHREAD_COND_INITIALIZER;
static struct hstate *states;
static bool running, stopping, first_done, kicked;
static pthread_t hth;

static struct hstate *state_get(const char *name, const char *initial, bool create)
{
	for (struct hstate *s = states; s; s = s->next)
		if (!strcmp(s->name, name))
			return s;
	if (!create)
		return NULL;
	struct hstate *s = xcalloc(1, sizeof *s);
	s->name = xstrdup(name);
	s->h.up = !strcmp(initial, "up");
	s->next = states;
	states = s;
	return s;
}

void health_fill(const struct edgeset *es, const char *initial, struct edge_health *h)
{
	pthread_mutex_lock(&hlock);
	for (size_t i = 0; i < es->ne; i++) {
		if (!es->edges[i].healthz) {
			memset(&h[i], 0, sizeof h[i]);
			h[i].up = true;
			continue;
		}
		struct hstate *s = state_get(es->edges[i].name, initial, false);
		if (s) {
			h[i] = s->h;
		} else {
			memset(&h[i], 0, sizeof h[i]);
			h[i].up = !strcmp(initial, "up");
		}
	}
	pthread_mutex_unlock(&hlock);
}

struct check {
	char *name, *url;
	CURL *easy;
	char *body;
	size_t len;
	bool done;
	CURLcode rc;
	long status;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct check *c = arg;
	size_t add = size * n;
	if (c->len + add > BODY_MAX)
		return 0; /* a health document this large is an error */
	c->body = xrealloc(c->body, c->len + add + 1);
	memcpy(c->body + c->len, p, add);
	c->len += add;
	c->body[c->len] = '\0';
	return add;
}

/* Runs every check in parallel, each bounded by timeout_ms; returns early
 * (leaving checks not done) when the server is stopping. */
static void run_checks(CURLM *m, struct check *cs, size_t n, int timeout_ms)
{
	for (size_t i = 0; i < n; i++) {
		CURL *e = curl_easy_init();
		cs[i].easy = e;
		curl_easy_setopt(e, CURLOPT_URL, cs[i].url);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &cs[i]);
		curl_easy_setopt(e, CURLOPT_PRIVATE, &cs[i]);
		curl_easy_setopt(e, CURLOPT_USERAGENT, "minicdn-dns-health");
		curl_easy_setopt(e, CURLOPT_PROXY, ""); /* never through an environment proxy */
		curl_multi_add_handle(m, e);
	}
	int still = (int)n;
	while (still > 0) {
		pthread_mutex_lock(&hlock);
		bool stop = stopping;
		pthread_mutex_unlock(&hlock);
		if (stop)
			break;
		curl_multi_perform(m, &still);
		int left;
		CURLMsg *msg;
		while ((msg = curl_multi_info_read(m, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct check *c;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
			c->done = true;
			c->rc = msg->data.result;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &c->status);
		}
		if (still > 0)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	}
}

/* Folds one finished check into the edge's state (rise/fall counting, load,
 * draining).  hlock held.  Returns true if the edge went up or down, crossed
 * the load threshold, or started or stopped draining. */
static bool apply_check(const struct check *c, struct hstate *s, const bool okst[600],
                        const struct conf_health *hc)
{
	bool ok = c->rc == CURLE_OK && c->status >= 100 && c->status < 600 && okst[c->status];
	double load = 0;
	bool draining = false;
	if (c->rc == CURLE_OK && c->body) {
		json_t *j = json_loads(c->body, 0, NULL);
		json_t *l = j ? json_object_get(j, "load") : NULL;
		if (l && json_is_number(l))
			load = json_number_value(l);
		draining = j && json_is_true(json_object_get(j, "draining"));
		json_decref(j);
	}
	bool was_up = s->h.up, was_draining = s->h.draining, changed = false;
	double old_load = s->h.load;
	s->h.checked = true;
	s->h.last_status = c->rc == CURLE_OK ? (int)c->status : 0;
	if (c->rc != CURLE_OK)
		snprintf(s->h.last_error, sizeof s->h.last_error, "%s", curl_easy_strerror(c->rc));
	else if (!ok)
		snprintf(s->h.last_error, sizeof s->h.last_error, "HTTP status %ld", c->status);
	else
		s->h.last_error[0] = '\0';
	if (ok) {
		s->h.load = load;
		s->h.draining = draining;
		s->succs++;
		s->fails = 0;
		if (!s->h.up && s->succs >= hc->rise)
			s->h.up = true;
	} else {
		s->fails++;
		s->succs = 0;
		if (s->h.up && s->fails >= hc->fall)
			s->h.up = false;
	}
	if (was_up != s->h.up) {
		changed = true;
		if (s->h.up)
			log_info("health", "edge %s is up (load %.2f)", s->name, s->h.load);
		else
			log_warn("health", "edge %s is down: %s", s->name, s->h.last_error);
	}
	if (was_draining != s->h.draining) {
		changed = true;
		log_info("health", "edge %s %s", s->name, s->h.draining ? "is draining: no longer answered" : "is undrained");
	}
	if ((old_load <= hc->load_threshold) != (s->h.load <= hc->load_threshold)) {
		changed = true;
		log_info("health", "edge %s load %.2f is %s the threshold %.2f", s->name, s->h.load,
		         s->h.load > hc->load_threshold ? "above" : "back under", hc->load_threshold);
	}
	return changed;
}

/* One round over every checked edge.  Returns true if something changed. */
static bool round_once(void)
{
	view_lock();
	const struct view *v = view_current();
	if (!v) {
		view_unlock();
		return false;
	}
	const struct snapshot *snap = v->snap;
	const struct conf_health hc = snap->conf.health;
	bool okst[600];
	char why[200];
	dns_conf_statuses(hc.up_statuses, okst, why, sizeof why);
	char *initial = xstrdup(hc.initial);
	size_t n = 0;
	struct check *cs = xcalloc(snap->es->ne + 1, sizeof *cs);
	for (size_t i = 0; i < snap->es->ne; i++)
		if (snap->es->edges[i].healthz) {
			cs[n].name = xstrdup(snap->es->edges[i].name);
			cs[n].url = xstrdup(snap->es->edges[i].healthz);
			n++;
		}
	view_unlock();

	CURLM *m = curl_multi_init();
	run_checks(m, cs, n, hc.timeout_ms);
	bool changed = false;
	pthread_mutex_lock(&hlock);
	for (size_t i = 0; i < n; i++) {
		struct hstate *s = state_get(cs[i].name, initial, true);
		if (cs[i].done) /* else abandoned at shutdown */
			changed |= apply_check(&cs[i], s, okst, &hc);
	}
	pthread_mutex_unlock(&hlock);
	for (size_t i = 0; i < n; i++) {
		curl_multi_remove_handle(m, cs[i].easy);
		curl_easy_cleanup(cs[i].easy);
		free(cs[i].name);
		free(cs[i].url);
		free(cs[i].body);
	}
	curl_multi_cleanup(m);
	free(cs);
	free(initial);
	return changed;
}

/* Publishes a new choice if the usable set differs from the current one. */
static void refresh_view(void)
{
	view_lock();
	const struct view *v = view_current();
	if (v) {
		struct snapshot *snap = v->snap;
		struct edge_health *h = xcalloc(snap->es->ne + 1, sizeof *h);
		health_fill(snap->es, snap->conf.health.initial, h);
		const struct edge_health *cur = choice_health(v->choice);
		bool differ = false;
		for (size_t i = 0; i < snap->es->ne; i++)
			if (h[i].up != cur[i].up || h[i].draining != cur[i].draining ||
			    (h[i].load <= snap->es->load_threshold) != (cur[i].load <= snap->es->load_threshold))
				differ = true;
		if (differ) {
			view_publish(snap, h);
			bool all_down4 = choice_fail_open(view_current()->choice, AF_INET);
			if (all_down4)
				log_warn("health", "no usable edge: answering with every edge (fail-open)");
		}
		free(h);
	}
	view_unlock();
}

static void *health_main(void *arg)
{
	(void)arg;
	for (;;) {
		long long t0 = daemon_now_ms();
		round_once();
		refresh_view();
		/* Lock order is view_lock then hlock: read the interval first. */
		view_lock();
		const struct view *v = view_current();
		int interval = v ? v->snap->conf.health.interval_ms : 1000;
		view_unlock();
		pthread_mutex_lock(&hlock);
		if (!first_done) {
			first_done = true;
			pthread_cond_broadcast(&hcond);
		}
		long long until = t0 + interval;
		while (!stopping && !kicked) {
			long long now = daemon_now_ms();
			if (now >= until)
				break;
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			long long wait = until - now;
			ts.tv_sec += wait / 1000;
			ts.tv_nsec += (wait % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&hcond, &hlock, &ts);
		}
		kicked = false;
		bool stop = stopping;
		pthread_mutex_unlock(&hlock);
		if (stop)
			break;
	}
	return NULL;
}

void health_start(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	running = true;
	pthread_create(&hth, NULL, health_main, NULL);
}

void health_stop(void)
{
	if (!running)
		return;
	pthread_mutex_lock(&hlock);
	stopping = true;
	pthread_cond_broadcast(&hcond);
	pthread_mutex_unlock(&hlock);
	pthread_join(hth, NULL);
	running = false;
	while (states) {
		struct hstate *s = states;
		states = s->next;
		free(s->name);
		free(s);
	}
	curl_global_cleanup();
}

bool health_wait_first_round(int timeout_ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&hlock);
	while (!first_done)
		if (pthread_cond_timedwait(&hcond, &hlock, &ts) != 0)
			break;
	bool done = first_done;
	pthread_mutex_unlock(&hlock);
	return done;
}

void health_kick(void)
{
	pthread_mutex_lock(&hlock);
	kicked = true;
	pthread_cond_broadcast(&hcond);
	pthread_mutex_unlock(&hlock);
}
