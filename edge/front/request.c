/* request.c -- the client request's accessors and its connection as upstream sees it */
#include "edge/front/request.h"
#include "edge/cache/cachekey.h"

const char *edge_req_key(struct edge_req *r)
{
	if (!r->key.len) {
		const struct edge_config *lc = edge_live(r->edge);
		cachekey_join(r->host.data, r->host.len, r->path.data, r->path.len, lc->query_rules,
		              lc->nquery_rules, &r->key);
	}
	return r->key.data;
}

static const char *conn_header(void *cls, const char *name)
{
	return MHD_lookup_connection_value(cls, MHD_HEADER_KIND, name);
}

const char *edge_req_header(const struct edge_req *r, const char *name)
{
	return conn_header(r->conn, name);
}

struct each_ctx {
	void (*cb)(void *, const char *, const char *);
	void *arg;
};

static enum MHD_Result each_tramp(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct each_ctx *c = cls;
	c->cb(c->arg, key, value ? value : "");
	return MHD_YES;
}

static void conn_each_header(void *cls, void (*cb)(void *, const char *, const char *), void *arg)
{
	struct each_ctx c = { cb, arg };
	MHD_get_connection_values(cls, MHD_HEADER_KIND, each_tramp, &c);
}

void edge_req_each_header(const struct edge_req *r, void (*cb)(void *, const char *, const char *),
                          void *arg)
{
	conn_each_header(r->conn, cb, arg);
}

static void conn_suspend(void *cls)
{
	MHD_suspend_connection(cls);
}

static void conn_resume(void *cls)
{
	MHD_resume_connection(cls);
}

const struct proxy_client_ops edge_conn_ops = { conn_header, conn_each_header, conn_suspend,
	                                        conn_resume };

struct proxy_call *edge_req_call(struct edge_req *r)
{
	struct proxy_call *pc = &r->pc;
	pc->edge = r->edge;
	pc->ops = &edge_conn_ops;
	pc->cls = r->conn;
	pc->method = r->method;
	pc->key = edge_req_key(r);
	pc->host = r->host.data;
	pc->path = r->path.data;
	pc->client = r->client;
	pc->is_get = r->is_get;
	pc->is_head = r->is_head;
	pc->has_auth = r->has_auth;
	pc->body = &r->body;
	return pc;
}
