/*
 * sim_server.c: the HTTP side of the simulator: the MHD daemon, the route
 * table, and the life of one request from its headers to its answer.
 *
 * A request is read whole (bounded by --max-body, 413 beyond), routed by
 * method and path, given its faults (sim_fault.c) unless it is a control
 * request (/_sim/..., /health), answered by its route handler, and then
 * either answered at once or parked in the delay queue (sim_delay.c) for
 * its latency or hang. A parked request comes back through the same access
 * handler when MHD resumes it; then its ready reply is queued, or, for a
 * hang or a client that left, the connection is closed without an answer.
 *
 * Stats are recorded just before the reply is queued, so a client that got
 * its answer always finds it counted in /_sim/stats.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "jsontext.h"
#include "sim.h"

#define CONTROL_PREFIX "/_sim/"

struct route {
	char *method; /* owned */
	char *path;   /* owned */
	size_t path_len;
	unsigned flags;
	sim_route_fn fn;
	char *service; /* owned, may be NULL */
};

static struct route *routes;
static size_t n_routes;
static struct MHD_Daemon *daemon_h;
static _Atomic uint64_t seq_counter;

/* ---- routes --------------------------------------------------------- */

void sim_route_add(const struct sim_route *r)
{
	struct route *n;

	for (size_t i = 0; i < n_routes; i++) {
		if (strcmp(routes[i].method, r->method) == 0 &&
		    strcmp(routes[i].path, r->path) == 0)
			sim_die("route %s %s registered twice", r->method, r->path);
	}
	routes = sim_xrealloc(routes, (n_routes + 1) * sizeof(*routes));
	n = &routes[n_routes++];
	n->method = sim_xstrdup(r->method);
	n->path = sim_xstrdup(r->path);
	n->path_len = strlen(r->path);
	n->flags = r->flags;
	n->fn = r->fn;
	n->service = r->service ? sim_xstrdup(r->service) : NULL;
}

/*
 * The route for method and path, or NULL; *path_known tells whether some
 * route has the path (with another method: 405 rather than 404).
 */
static const struct route *route_find(const char *method, const char *path, bool *path_known)
{
	const char *m = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0 ? MHD_HTTP_METHOD_GET : method;

	*path_known = false;
	for (size_t i = 0; i < n_routes; i++) {
		const struct route *r = &routes[i];
		bool match = (r->flags & SIM_ROUTE_PREFIX)
				     ? strncmp(path, r->path, r->path_len) == 0
				     : strcmp(path, r->path) == 0;

		if (!match)
			continue;
		if (strcmp(r->method, m) == 0)
			return r;
		*path_known = true;
	}
	return NULL;
}

void sim_server_free(void)
{
	for (size_t i = 0; i < n_routes; i++) {
		free(routes[i].method);
		free(routes[i].path);
		free(routes[i].service);
	}
	free(routes);
	routes = NULL;
	n_routes = 0;
}

/* ---- request helpers ------------------------------------------------ */

const char *sim_request_header(const struct sim_request *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

const char *sim_request_query(const struct sim_request *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

json_t *sim_request_json_object(const struct sim_request *rq, struct sim_reply *rp)
{
	if (rq->json == NULL || !json_is_object(rq->json)) {
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
				"Nội dung yêu cầu không phải là đối tượng JSON hợp lệ");
		return NULL;
	}
	return rq->json;
}

/* ---- replies -------------------------------------------------------- */

void sim_reply_clear(struct sim_reply *rp)
{
	free(rp->body);
	memset(rp, 0, sizeof(*rp));
}

void sim_reply_buffer(struct sim_reply *rp, unsigned status, const char *content_type, char *body,
		      size_t len)
{
	free(rp->body);
	rp->status = status;
	rp->content_type = content_type;
	rp->body = body;
	rp->body_len = len;
}

void sim_reply_json(struct sim_reply *rp, unsigned status, json_t *obj)
{
	char *text = json_dumps(obj, SIM_JSON_DUMP_FLAGS | JSON_ENCODE_ANY);

	json_decref(obj);
	if (text == NULL)
		sim_die("json_dumps: out of memory");
	sim_reply_buffer(rp, status, "application/json; charset=utf-8", text, strlen(text));
}

void sim_reply_text(struct sim_reply *rp, unsigned status, const char *content_type,
		    const char *text)
{
	char *copy = sim_xstrdup(text);

	sim_reply_buffer(rp, status, content_type, copy, strlen(copy));
}

void sim_reply_error(struct sim_reply *rp, unsigned status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o = json_pack("{s:s, s:s}", "error", code, "message", msg);
	if (o == NULL) /* msg was cut inside a UTF-8 sequence, or no memory */
		o = json_pack("{s:s, s:s}", "error", code, "message", "");
	if (o == NULL)
		sim_die("json_pack: out of memory");
	sim_reply_json(rp, status, o);
}

void sim_reply_header(struct sim_reply *rp, const char *name, const char *fmt, ...)
{
	va_list ap;

	if (rp->n_headers >= SIM_REPLY_MAX_HEADERS)
		return;
	rp->headers[rp->n_headers].name = name;
	va_start(ap, fmt);
	vsnprintf(rp->headers[rp->n_headers].value, sizeof(rp->headers[0].value), fmt, ap);
	va_end(ap);
	rp->n_headers++;
}

/* ---- the life of a request ------------------------------------------ */

static void record(struct sim_request *rq, unsigned status)
{
	uint64_t elapsed_us = sim_now_us() - rq->start_us;

	if (rq->control)
		return;
	sim_stats_request(rq->path, rq->service, rq->seq, status, rq->fault, elapsed_us);
	if (sim_config.verbose) {
		const char *f = sim_fault_name(rq->fault);

		sim_log(SIM_LOG_DEBUG, "#%llu %s %s%s%s -> %u%s%s (%.1f ms)",
			(unsigned long long)rq->seq, rq->method, rq->path, rq->service ? " " : "",
			rq->service ? rq->service : "", status, f ? " fault=" : "", f ? f : "",
			(double)elapsed_us / 1000.0);
	}
}

static enum MHD_Result send_reply(struct sim_request *rq)
{
	struct sim_reply *rp = &rq->reply;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	rq->state = SIM_RQ_DONE;
	if (rp->status == 0)
		sim_reply_error(rp, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal_error",
				"handler gave no answer");
	record(rq, rp->status);
	if (rp->body == NULL) {
		resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	} else {
		resp = MHD_create_response_from_buffer(rp->body_len, rp->body,
						       MHD_RESPMEM_MUST_FREE);
		if (resp != NULL)
			rp->body = NULL; /* MHD frees it */
	}
	if (resp == NULL) {
		sim_log(SIM_LOG_ERR, "cannot create a response (out of memory?)");
		return MHD_NO;
	}
	if (rp->content_type != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rp->content_type);
	for (unsigned i = 0; i < rp->n_headers; i++)
		MHD_add_response_header(resp, rp->headers[i].name, rp->headers[i].value);
	ret = MHD_queue_response(rq->conn, rp->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* The answer of an injected fault (not for hangs). */
static void fault_reply(const struct sim_fault_decision *d, struct sim_reply *rp)
{
	switch (d->fault) {
	case SIM_FAULT_ERROR:
		sim_reply_error(rp, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal_error",
				"Lỗi hệ thống (mô phỏng)");
		break;
	case SIM_FAULT_RATE_LIMITED:
		sim_reply_error(rp, MHD_HTTP_TOO_MANY_REQUESTS, "rate_limited",
				"Vượt quá giới hạn yêu cầu, thử lại sau %u giây", d->retry_after_s);
		sim_reply_header(rp, MHD_HTTP_HEADER_RETRY_AFTER, "%u", d->retry_after_s);
		break;
	case SIM_FAULT_MALFORMED:
		/* What a proxy in front of the adapter, or a cut connection, gives. */
		if (d->malformed_html)
			sim_reply_text(rp, MHD_HTTP_OK, "text/html",
				       "<html><body>502 Bad Gateway</body></html>");
		else
			sim_reply_text(
				rp, MHD_HTTP_OK, "application/json; charset=utf-8",
				"{\"error_code\":0,\"message\":\"OK\",\"result\":[{\"ma\":\"1.00");
		break;
	case SIM_FAULT_FAIL_NEXT:
		sim_reply_error(rp, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
				"Dịch vụ tạm thời không khả dụng (mô phỏng)");
		break;
	case SIM_FAULT_DOWN:
		sim_reply_text(rp, MHD_HTTP_SERVICE_UNAVAILABLE, "text/html",
			       "<html><body>503 Service Unavailable</body></html>");
		break;
	case SIM_FAULT_NONE:
	case SIM_FAULT_HANG:
	case SIM_FAULT__COUNT: break;
	}
}

/* Parks rq for delay_ms; false when the queue is stopping. */
static bool park(struct sim_request *rq, unsigned delay_ms, enum sim_rq_state state)
{
	rq->state = state;
	if (sim_delay_add(rq->conn, sim_now_us() + (uint64_t)delay_ms * 1000u, &rq->gone) == 0)
		return true;
	rq->gone = true;
	return false;
}

/* The whole request is in: route, fault, answer or park. */
static enum MHD_Result process(struct sim_request *rq)
{
	struct sim_reply *rp = &rq->reply;
	struct sim_fault_decision d;
	const struct route *r;
	bool path_known;

	rq->body = rq->body_buf ? rq->body_buf : "";
	r = route_find(rq->method, rq->path, &path_known);
	rq->control = (r != NULL && (r->flags & SIM_ROUTE_CONTROL)) ||
		      strncmp(rq->path, CONTROL_PREFIX, strlen(CONTROL_PREFIX)) == 0;
	if (rq->too_big) {
		sim_reply_error(rp, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large",
				"Nội dung yêu cầu vượt quá %zu byte", sim_config.max_body_bytes);
		return send_reply(rq);
	}
	if (r != NULL && (r->flags & SIM_ROUTE_JSON) && rq->body_len > 0)
		rq->json = jsontext_parse(rq->body, rq->body_len, 0, NULL);
	if (r != NULL && (r->flags & SIM_ROUTE_ADAPTER) && json_is_object(rq->json))
		rq->service = json_string_value(json_object_get(rq->json, "service"));
	else if (r != NULL)
		rq->service = r->service;

	if (rq->control) {
		if (r != NULL)
			r->fn(rq, rp);
		else
			sim_reply_error(rp, MHD_HTTP_NOT_FOUND, "not_found", "Không có %s %s",
					rq->method, rq->path);
		return send_reply(rq);
	}

	sim_fault_decide(rq->path, rq->service, &d);
	rq->fault = d.fault;
	rq->wrap_message = d.wrap_message;
	if (d.fault == SIM_FAULT_HANG) {
		if (park(rq, d.hang_ms, SIM_RQ_HANGING))
			return MHD_YES;
		record(rq, 0);
		return MHD_NO;
	}
	if (d.fault != SIM_FAULT_NONE)
		fault_reply(&d, rp);
	else if (r != NULL)
		r->fn(rq, rp);
	else if (path_known)
		sim_reply_error(rp, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
				"Phương thức %s không được hỗ trợ cho %s", rq->method, rq->path);
	else
		sim_reply_error(rp, MHD_HTTP_NOT_FOUND, "not_found", "Không có %s %s", rq->method,
				rq->path);
	if (d.latency_ms > 0 && park(rq, d.latency_ms, SIM_RQ_DELAYED))
		return MHD_YES;
	return send_reply(rq);
}

/* Adds an upload chunk, or notes that the body is too big and drops it. */
static void take_body(struct sim_request *rq, const char *data, size_t n)
{
	size_t need;

	if (rq->too_big)
		return;
	if (n > sim_config.max_body_bytes - rq->body_len) {
		rq->too_big = true;
		free(rq->body_buf);
		rq->body_buf = NULL;
		rq->body_len = rq->body_cap = 0;
		return;
	}
	need = rq->body_len + n + 1;
	if (need > rq->body_cap) {
		size_t cap = rq->body_cap ? rq->body_cap : 1024;

		while (cap < need)
			cap *= 2;
		rq->body_buf = sim_xrealloc(rq->body_buf, cap);
		rq->body_cap = cap;
	}
	memcpy(rq->body_buf + rq->body_len, data, n);
	rq->body_len += n;
	rq->body_buf[rq->body_len] = '\0';
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct sim_request *rq = *con_cls;

	(void)cls;
	(void)version;
	if (rq == NULL) {
		const char *cl;

		rq = sim_xcalloc(1, sizeof(*rq));
		rq->seq = atomic_fetch_add(&seq_counter, 1) + 1;
		rq->start_us = sim_now_us();
		rq->conn = conn;
		rq->method = method;
		rq->path = url;
		rq->body = "";
		*con_cls = rq;
		/* Refuse a declared oversized body before reading it. */
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						 MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL) {
			char *end;
			unsigned long long n;

			errno = 0;
			n = strtoull(cl, &end, 10);
			if (errno == ERANGE || n > sim_config.max_body_bytes) {
				rq->too_big = true;
				return process(rq);
			}
		}
		return MHD_YES;
	}
	if (*upload_size != 0) {
		take_body(rq, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	switch (rq->state) {
	case SIM_RQ_RECEIVING: return process(rq);
	case SIM_RQ_DELAYED:
		if (rq->gone) {
			record(rq, 0);
			rq->state = SIM_RQ_DONE;
			return MHD_NO;
		}
		return send_reply(rq);
	case SIM_RQ_HANGING:
		record(rq, 0);
		rq->state = SIM_RQ_DONE;
		return MHD_NO;
	case SIM_RQ_DONE: break;
	}
	return MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct sim_request *rq = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (rq == NULL)
		return;
	json_decref(rq->json);
	free(rq->body_buf);
	sim_reply_clear(&rq->reply);
	free(rq);
	*con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	/* Our deliberate close of a hung request (MHD_NO) is not an error. */
	if (strncmp(msg, "Application reported internal error", 35) == 0)
		return;
	sim_log(SIM_LOG_WARN, "http: %s", msg);
}

/* ---- start and stop ------------------------------------------------- */

/* GET /health: the process is up and serving (never faulted). */
static void get_health(struct sim_request *rq, struct sim_reply *rp)
{
	(void)rq;
	sim_reply_text(rp, MHD_HTTP_OK, "text/plain", "ok");
}

/* Splits "host:port" / "[v6]:port" and resolves it (numeric host or name). */
static int resolve_listen(const char *listen, struct addrinfo **out)
{
	char host[256];
	const char *colon = strrchr(listen, ':');
	const char *h = listen;
	size_t hlen;
	struct addrinfo hints;
	int r;

	if (colon == NULL || colon[1] == '\0')
		goto bad;
	hlen = (size_t)(colon - listen);
	if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
		h++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		goto bad;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	r = getaddrinfo(host, colon + 1, &hints, out);
	if (r != 0) {
		sim_log(SIM_LOG_ERR, "--listen %s: %s", listen, gai_strerror(r));
		return -EINVAL;
	}
	return 0;
bad:
	sim_log(SIM_LOG_ERR, "--listen %s: expected ADDR:PORT", listen);
	return -EINVAL;
}

int sim_server_start(unsigned *port)
{
	struct addrinfo *ai = NULL;
	const union MHD_DaemonInfo *info;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
			 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	unsigned pool = sim_config.threads > 1 ? sim_config.threads : 0;
	int r;

	sim_route_add(&(struct sim_route){"GET", "/health", SIM_ROUTE_CONTROL, get_health, NULL});
	r = resolve_listen(sim_config.listen, &ai);
	if (r < 0)
		return r;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	daemon_h = MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log,
		NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_THREAD_POOL_SIZE, pool,
		MHD_OPTION_CONNECTION_LIMIT, sim_config.max_connections,
		MHD_OPTION_CONNECTION_TIMEOUT, sim_config.idle_timeout_s,
		MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)4096, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		(size_t)(64 * 1024), MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
		MHD_OPTION_END);
	freeaddrinfo(ai);
	if (daemon_h == NULL) {
		sim_log(SIM_LOG_ERR, "cannot listen on %s", sim_config.listen);
		return -EADDRNOTAVAIL;
	}
	info = MHD_get_daemon_info(daemon_h, MHD_DAEMON_INFO_BIND_PORT);
	if (info == NULL || info->port == 0) {
		sim_log(SIM_LOG_ERR, "cannot learn the bound port");
		return -EIO;
	}
	*port = info->port;
	return 0;
}

void sim_server_stop(void)
{
	MHD_socket lfd;

	if (daemon_h == NULL)
		return;
	/* Stop accepting first, so no new request parks while we drain. */
	lfd = MHD_quiesce_daemon(daemon_h);
	if (lfd != MHD_INVALID_SOCKET)
		close(lfd);
	sim_delay_stop();
	MHD_stop_daemon(daemon_h);
	daemon_h = NULL;
}
