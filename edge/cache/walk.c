/* walk.c -- what the start-up check's child process runs: a walk over every
 * record of the store, then, after an unclean stop, the body checksums.
 *
 * Runs in a child (check.c forks it): a damaged page can make LMDB read out
 * of bounds or trip an assertion, and that must kill the child, not the
 * edge.  It opens the store itself and knows no struct cache; it reports
 * on a pipe, one line per event.  Calls: only LMDB, entry.h and the inline
 * helpers of store_int.h. */
#include "edge/cache/store_int.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Whether the main database names exactly the databases of an MCE2 store
 * (e, a, l, t, m: entries keyed by URL, no format record). */
static bool mce2_names(MDB_txn *t)
{
	MDB_dbi main_dbi;
	MDB_cursor *cur;
	if (mdb_dbi_open(t, NULL, 0, &main_dbi) || mdb_cursor_open(t, main_dbi, &cur))
		return false;
	char seen[8] = "";
	size_t n = 0;
	bool ok = true;
	MDB_val k, v;
	for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && ok;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		ok = n < 5 && k.mv_size == 1 && strchr("ealtm", *(char *)k.mv_data) &&
		     !memchr(seen, *(char *)k.mv_data, n);
		if (ok)
			seen[n++] = *(char *)k.mv_data;
	}
	mdb_cursor_close(cur);
	return ok && n == 5;
}

/* The checksum pass over bodies 1..last_id, after an unclean stop.  It may
 * outlive the start-up wait and run while the edge writes (store_check),
 * so it opens the store with locking, as a registered reader, and reads in
 * short transactions: a long one would keep the writer from reusing freed
 * pages.  Reports on fd: "bad ID" per mismatch, "upto ID" (every body
 * below ID verified) per batch.  rate: bytes per second at most, 0 = as
 * fast as the disk goes.  Returns 0, or -1 if the store cannot be read. */
#define VERIFY_BATCH_RECORDS 256
#define VERIFY_BATCH_BYTES (16u << 20)
static int verify_bodies(const char *path, uint64_t map_size, uint64_t last_id, uint64_t rate,
                         int fd, size_t *verified)
{
	MDB_env *env = NULL;
	MDB_dbi bdbi;
	MDB_txn *t = NULL;
	int rc;
	if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_mapsize(env, (size_t)map_size)) ||
	    (rc = mdb_env_set_maxdbs(env, 8)) ||
	    (rc = mdb_env_open(env, path, MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD, 0640)) ||
	    (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &t)) ||
	    (rc = mdb_dbi_open(t, "b", MDB_INTEGERKEY, &bdbi)) ||
	    (rc = mdb_txn_commit(t), t = NULL, rc) || /* the handle outlives the txn */
	    (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &t))) {
		dprintf(fd, "# %s\n", mdb_strerror(rc));
		if (t)
			mdb_txn_abort(t);
		mdb_env_close(env);
		return -1;
	}
	mdb_txn_reset(t);
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint64_t next = 1, bytes = 0;
	int ret = 0;
	while (next <= last_id) {
		MDB_cursor *cur;
		if (mdb_txn_renew(t) || mdb_cursor_open(t, bdbi, &cur)) {
			ret = -1;
			break;
		}
		size_t slot, n = 0, batch = 0;
		MDB_val k = body_key(&slot, next), v;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		for (; rc == 0 && n < VERIFY_BATCH_RECORDS && batch < VERIFY_BATCH_BYTES;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), n++) {
			uint64_t id = body_id(&k);
			if (id > last_id)
				break; /* written by the running edge: not from the stop */
			if (entry_verify(v.mv_data, v.mv_size) < 0 &&
			    dprintf(fd, "bad %llu\n", (unsigned long long)id) < 0)
				rc = -1;
			(*verified)++;
			batch += v.mv_size;
			next = id + 1;
		}
		mdb_cursor_close(cur);
		mdb_txn_reset(t);
		if (rc == MDB_NOTFOUND || (rc == 0 && n < VERIFY_BATCH_RECORDS &&
		                           batch < VERIFY_BATCH_BYTES))
			next = last_id + 1; /* past the last body: done */
		else if (rc != 0 && rc != MDB_NOTFOUND) {
			ret = -1;
			break;
		}
		if (dprintf(fd, "upto %llu\n", (unsigned long long)next) < 0) {
			ret = -1; /* the edge is gone */
			break;
		}
		bytes += batch;
		if (rate) { /* sleep off whatever ran ahead of the rate */
			clock_gettime(CLOCK_MONOTONIC, &now);
			double el = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
			double ahead = (double)bytes / (double)rate - el;
			for (; ahead > 0; ahead -= 1) /* usleep takes under a second */
				usleep((useconds_t)(ahead > 1 ? 999999 : ahead * 1e6));
		}
	}
	mdb_txn_abort(t);
	mdb_env_close(env);
	return ret;
}

/* The state of one walk: the read transaction, what was counted so far, and
 * the first reason found for calling the store damaged. */
struct walk {
	MDB_txn *t;
	MDB_envinfo info;
	MDB_dbi bdbi;
	size_t main_entries, bodies, refs;
	uint64_t last_id;
	char why[300];
};

/* The format first: an older store is not damaged, just not ours.  Sets
 * *clean and *state (how the previous run stopped).  Returns 0, 1 (damage,
 * reason in w->why) or CHECK_FORMAT. */
static int walk_format(struct walk *w, const MDB_stat *est, bool *clean, const char **state)
{
	MDB_dbi mdbi;
	MDB_val v;
	if (est->ms_entries == 0) {
		*state = "new";
		return 0;
	}
	int rc = mdb_dbi_open(w->t, "m", 0, &mdbi);
	if (rc == 0)
		rc = mdb_get(w->t, mdbi, (MDB_val *)&m_format, &v);
	if (rc == MDB_NOTFOUND) {
		/* Only the exact set of names of an MCE2 store is a format
		 * change; a missing "m" in a garbage tree is damage. */
		if (!mce2_names(w->t)) {
			snprintf(w->why, sizeof w->why, "no format record, and not an older store");
			return 1;
		}
		snprintf(w->why, sizeof w->why, "no format record: an MCE2 store (one value per URL), "
		         "this edge writes %s", STORE_FORMAT);
		return CHECK_FORMAT;
	}
	if (rc == 0 && (v.mv_size != 4 || memcmp(v.mv_data, STORE_FORMAT, 4))) {
		snprintf(w->why, sizeof w->why, "format %.*s, this edge writes %s",
		         (int)(v.mv_size > 16 ? 16 : v.mv_size), (const char *)v.mv_data, STORE_FORMAT);
		return CHECK_FORMAT;
	}
	if (rc) {
		snprintf(w->why, sizeof w->why, "database m: %s", mdb_strerror(rc));
		return 1;
	}
	*clean = mdb_get(w->t, mdbi, (MDB_val *)&m_clean, &v) == 0;
	*state = *clean ? "clean" : "unclean";
	return 0;
}

/* Whether record n (k, v) of database i is well formed (i as in walk_db).
 * A reference whose body is missing sets w->why instead. */
static bool walk_record(struct walk *w, int i, const MDB_val *k, const MDB_val *v, size_t n)
{
	struct entry_view ev;
	bool ok = true;
	switch (i) {
	case -2: { /* txnid -> count + page numbers */
		size_t cnt = 0;
		if (v->mv_size >= sizeof cnt)
			memcpy(&cnt, v->mv_data, sizeof cnt);
		ok = k->mv_size == sizeof(size_t) && v->mv_size >= sizeof cnt && cnt < v->mv_size &&
		     v->mv_size == (cnt + 1) * sizeof cnt;
		for (size_t j = 1; ok && j <= cnt; j++) {
			size_t pg;
			memcpy(&pg, (char *)v->mv_data + j * sizeof pg, sizeof pg);
			ok = pg >= 2 && pg <= w->info.me_last_pgno;
		}
		break;
	}
	case -1: /* our five names */
		ok = k->mv_size == 1 && strchr("mbelt", *(char *)k->mv_data);
		w->main_entries++;
		break;
	case 0: /* m */
		ok = (k->mv_size == m_bytes.mv_size && !memcmp(k->mv_data, "bytes", 5) &&
		      v->mv_size == 8) ||
		     (k->mv_size == m_format.mv_size && !memcmp(k->mv_data, "format", 6)) ||
		     (k->mv_size == m_clean.mv_size && !memcmp(k->mv_data, "clean", 5));
		break;
	case 1: /* b: body id -> entry */
		ok = k->mv_size == 8 && entry_decode(v->mv_data, v->mv_size, &ev) == 0;
		if (ok)
			w->last_id = body_id(k);
		w->bodies++;
		break;
	case 2: { /* e: a reference whose body exists, or a Vary record */
		struct ref r;
		if (is_vary(v))
			break;
		ok = ref_decode(v, &r) == 0;
		if (ok) {
			size_t bk;
			MDB_val bkey = body_key(&bk, r.id), bv;
			if (mdb_get(w->t, w->bdbi, &bkey, &bv) != 0) {
				snprintf(w->why, sizeof w->why, "database e: record %zu points at body "
				         "%llu, which is missing", n, (unsigned long long)r.id);
				break;
			}
			w->refs++;
		}
		break;
	}
	case 3: ok = k->mv_size > 8 && v->mv_size == 0; break;
	default: break;
	}
	return ok;
}

/* Walks database i: -2 the free-page list, -1 the main database, 0.. the
 * names below.  Sets w->why on the first fault. */
static void walk_db(struct walk *w, int i)
{
	static const char *const names[] = { "m", "b", "e", "l", "t" }; /* constant: i >= 0 */
	MDB_dbi dbi = 0; /* FREE_DBI */
	int rc = 0;
	if (i == -1)
		rc = mdb_dbi_open(w->t, NULL, 0, &dbi);
	else if (i >= 0)
		rc = mdb_dbi_open(w->t, names[i], i == 4 ? MDB_DUPSORT : i == 1 ? MDB_INTEGERKEY : 0, &dbi);
	if (rc == MDB_NOTFOUND && w->main_entries == 0)
		return; /* a new store: created on open */
	const char *dn = i < 0 ? (i == -1 ? "main" : "free") : names[i];
	if (rc) {
		snprintf(w->why, sizeof w->why, "database %s: %s", dn, mdb_strerror(rc));
		return;
	}
	if (i == 1)
		w->bdbi = dbi;
	MDB_stat st;
	MDB_cursor *cur;
	if ((rc = mdb_stat(w->t, dbi, &st)) || (rc = mdb_cursor_open(w->t, dbi, &cur))) {
		snprintf(w->why, sizeof w->why, "database %s: %s", dn, mdb_strerror(rc));
		return;
	}
	MDB_val k, v;
	size_t n = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), n++) {
		bool ok = walk_record(w, i, &k, &v, n);
		if (w->why[0])
			break;
		if (!ok) {
			snprintf(w->why, sizeof w->why, "database %s: malformed record %zu", dn, n);
			break;
		}
	}
	mdb_cursor_close(cur);
	if (!w->why[0] && rc != MDB_NOTFOUND)
		snprintf(w->why, sizeof w->why, "database %s: %s", dn, mdb_strerror(rc));
	else if (!w->why[0] && n != st.ms_entries)
		snprintf(w->why, sizeof w->why, "database %s: %zu records walked, %zu counted", dn, n,
		         (size_t)st.ms_entries);
	else if (!w->why[0] && i == 2 && w->refs != w->bodies)
		snprintf(w->why, sizeof w->why, "%zu entries but %zu bodies", w->refs, w->bodies);
}

/* Opens the store read-only and walks it.  Returns 0 (sound), 1 (damaged,
 * reason in w->why) or CHECK_FORMAT. */
static int walk_store(struct walk *w, const char *path, uint64_t map_size, bool *clean,
                      const char **state)
{
	MDB_env *env = NULL;
	int rc, ret = 1;
	if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_mapsize(env, (size_t)map_size)) ||
	    (rc = mdb_env_set_maxdbs(env, 8))) {
		snprintf(w->why, sizeof w->why, "lmdb: %s", mdb_strerror(rc));
		goto out;
	}
	/* NOLOCK: nobody else has the store open yet (the edge is starting). */
	if ((rc = mdb_env_open(env, path, MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS | MDB_NORDAHEAD, 0640))) {
		snprintf(w->why, sizeof w->why, "cannot open: %s", mdb_strerror(rc));
		goto out;
	}
	if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &w->t))) {
		snprintf(w->why, sizeof w->why, "first read transaction: %s", mdb_strerror(rc));
		goto out;
	}
	/* The meta page must not point past the end of the file. */
	MDB_stat est;
	struct stat sb;
	char data[4096];
	snprintf(data, sizeof data, "%s/data.mdb", path);
	if (mdb_env_info(env, &w->info) || mdb_env_stat(env, &est) || stat(data, &sb) < 0 ||
	    (uint64_t)(w->info.me_last_pgno + 1) * est.ms_psize > (uint64_t)sb.st_size) {
		snprintf(w->why, sizeof w->why, "meta page points past the end of the file");
		goto out;
	}
	if ((ret = walk_format(w, &est, clean, state)) != 0)
		goto out;
	/* Walk order: the free-page list (writers allocate from it), the main
	 * database (names of the others), then ours: "m", the bodies "b" (each
	 * decoded), then "e" (each reference must find its body).  Checksums
	 * come after, in their own pass (verify_bodies). */
	for (int i = -2; i < 5 && !w->why[0]; i++)
		walk_db(w, i);
	ret = w->why[0] ? 1 : 0;
out:
	if (w->t)
		mdb_txn_abort(w->t);
	w->t = NULL;
	if (env)
		mdb_env_close(env);
	return ret;
}

/* Walks every record of a store opened read-only, then, after an unclean
 * stop, verifies every body's checksum.  Writes lines to fd: "structure
 * ok" when the walk found the store sound and the checksum pass begins,
 * that pass's "bad ID" and "upto ID", and last "end STATE N" (how the
 * previous run stopped: clean, unclean, new or unknown; N body checksums
 * verified) followed by the reason if the store is not sound.  Returns 0
 * if it is sound apart from the bodies reported bad, 1 if it is damaged,
 * CHECK_FORMAT if it is of another format. */
int check_walk(const char *path, uint64_t map_size, uint64_t rate, int fd)
{
	struct walk w = { 0 };
	bool clean = true;
	const char *state = "unknown"; /* how the previous run stopped */
	size_t verified = 0;
	int ret = walk_store(&w, path, map_size, &clean, &state);
	if (ret == 0 && !clean && w.last_id) {
		/* Sound structure: from here on the edge may open the store and
		 * serve while the checksums are verified (store_check). */
		if (dprintf(fd, "structure ok\n") < 0)
			return 1;
		if (verify_bodies(path, map_size, w.last_id, rate, fd, &verified) < 0)
			snprintf(w.why, sizeof w.why, "checksum pass: cannot read the store");
		if (w.why[0])
			ret = 1;
	}
	if (dprintf(fd, "end %s %zu\n%s", state, verified, w.why) < 0)
		return 1;
	return ret;
}
