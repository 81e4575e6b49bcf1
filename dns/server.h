/* server.h -- the DNS sockets: N UDP workers with one SO_REUSEPORT socket
 * each (recvmmsg/sendmmsg batches, no lock: each reads the current view inside
 * a QSBR section), and one TCP thread (epoll, RFC 7766: length-prefixed
 * messages, several per connection, idle timeout, connection cap). */
#ifndef MINICDN_SERVER_H
#define MINICDN_SERVER_H

#include "dns/conf.h"
#include <stddef.h>

struct server;

/* Binds every listen address (UDP per worker, TCP once) and starts the
 * threads.  Returns NULL with a reason in err (nothing left running). */
struct server *server_start(const struct dns_conf *c, char *err, size_t errlen);
/* Stops the threads (in-flight queries finish), closes the sockets. */
void server_stop(struct server *s);
unsigned server_tcp_connections(const struct server *s);

#endif
