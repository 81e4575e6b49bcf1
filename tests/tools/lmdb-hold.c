/* lmdb-hold.c -- test tool: holds an LMDB environment's write lock
 *
 *   lmdb-hold DIR    # begins a write transaction on the environment in DIR
 *                    # (an edge's cache directory), prints "held", and on
 *                    # SIGTERM or SIGINT aborts it (nothing written) and exits
 *
 * Until then every other writer of that environment -- the edge's writer
 * thread -- waits for the lock: a test can hold a purge or a store between
 * its queueing and its commit for as long as it likes, with no timing. */
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: lmdb-hold DIR\n");
		return 2;
	}
	/* Blocked before the lock is taken, so the signal that releases it is
	 * never lost in between; sigwait picks it up below. */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigprocmask(SIG_BLOCK, &stop, NULL);
	MDB_env *env = NULL;
	MDB_txn *t = NULL;
	int rc;
	/* Map size 0: the environment's own.  Nothing is written, so this
	 * process may open it without the edge's WRITEMAP. */
	if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_maxreaders(env, 1024)) ||
	    (rc = mdb_env_open(env, argv[1], 0, 0640)) || (rc = mdb_txn_begin(env, NULL, 0, &t))) {
		fprintf(stderr, "lmdb-hold: %s: %s\n", argv[1], mdb_strerror(rc));
		if (env)
			mdb_env_close(env);
		return 1;
	}
	printf("held\n");
	fflush(stdout);
	int sig;
	sigwait(&stop, &sig);
	mdb_txn_abort(t);
	mdb_env_close(env);
	printf("released\n");
	return 0;
}
