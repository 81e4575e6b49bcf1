/* reload.h -- load a new snapshot and swap it in (SIGHUP, POST /reload). */
#ifndef MINICDN_RELOAD_H
#define MINICDN_RELOAD_H

#include <stddef.h>

/* Loads config_path (borrowed) completely; only if everything is valid is it
 * published, so a bad zone or map leaves the old snapshot serving.  Listen
 * addresses and worker count are not changed by a reload (warned about).
 * Returns 0, or -1 with the reason in err.  Thread-safe. */
int reload_config(const char *config_path, char *err, size_t errlen);

/* First load at start-up: same checks, publishes the first view. */
int reload_initial(const char *config_path, char *err, size_t errlen);

#endif
