/*
 * control: the status socket.
 *
 * A UNIX stream socket (mode [control] mode, group [control] group), a
 * versioned line protocol: one JSON request per line
 *   {"v":1,"cmd":"status","args":{...}}
 * one JSON answer per line
 *   {"v":1,"ok":true,"result":...}  or  {"v":1,"ok":false,"error":"...","code":"EPERM"}
 * Requests are bounded ([control] max_request_bytes); clients are bounded
 * ([control] max_clients) and dropped after [control] idle_timeout.
 * SO_PEERCRED decides the level: anyone who can connect may read; changing
 * commands need uid 0 or the daemon's own uid.
 */
#ifndef LT_CONTROL_H
#define LT_CONTROL_H

#include <jansson.h>
#include <stdbool.h>

#include "conf.h"

#define CTL_PROTO_VERSION 1

struct control;
struct daemon;

enum ctl_level { CTL_READ, CTL_WRITE };

struct ctl_client;

struct ctl_peer {
	int uid, gid, pid;
	bool privileged;	   /* may run CTL_WRITE commands */
	struct ctl_client *client; /* the connection, for ctl_later_new() */
};

/*
 * A command handler: fills *result (new ref) and returns 0, or returns a
 * negative errno with *err set (malloc'd message). On failure it may also
 * set *result to an object whose members are added to the error answer
 * (reload's "errors"). Called on the loop; answers go out in request order.
 */
typedef int (*ctl_handler_fn)(struct daemon *d, const struct ctl_peer *peer, json_t *args,
			      json_t **result, char **err);

/*
 * A handler whose answer takes long (a report computed on a worker thread)
 * answers later: it calls ctl_later_new(peer), hands the ticket to whatever
 * finishes the work, and returns CTL_LATER. Until ctl_later_done() answers,
 * the connection's next requests wait (answers stay in request order) and
 * its idle timeout is suspended; every other connection is served as
 * usual. The loop never waits.
 */
#define CTL_LATER 1
struct ctl_later;
/* NULL when the peer has no connection or already waits for an answer. */
struct ctl_later *ctl_later_new(const struct ctl_peer *peer);
/*
 * Answers the request of l and frees l: r 0 with result (stolen), or a
 * negative errno with err (and result, as for a handler, added to the
 * error answer). The client may have gone: then nothing is sent. On the
 * loop thread.
 */
void ctl_later_done(struct ctl_later *l, int r, json_t *result, const char *err);
/* Gives l up unanswered, from within the handler that took it (which then
 * answers as usual, with an error). */
void ctl_later_cancel(struct ctl_later *l);

struct ctl_command {
	const char *name;
	enum ctl_level level;
	ctl_handler_fn handler;
	const char *usage; /* "run FLOW" */
	const char *help;
};

/* Creates, binds and listens. Returns 0 or negative with *err. */
int control_new(struct daemon *d, const struct conf_control *o, struct control **out, char **err);
/* Closes the socket, unlinks its path, drops clients. */
void control_free(struct control *c);
/* Number of connected clients. */
unsigned control_clients(const struct control *c);

/* The command table (NULL-terminated), for help and tests. */
extern const struct ctl_command ctl_commands[];

/*
 * Client side, shared by lienthongctl and the tests: connects to path,
 * sends one request, reads one answer. args is borrowed (NULL means {});
 * timeout_ms covers connect, send and receive. Returns 0 with *answer (new
 * ref), or -errno with *err: -ENOENT/-ECONNREFUSED/-EACCES on connect,
 * -ETIMEDOUT, -EPROTO (closed, or not a protocol answer), -E2BIG (answer
 * over 64 MiB).
 */
int ctl_client_call(const char *path, const char *cmd, json_t *args, int timeout_ms,
		    json_t **answer, char **err);

#endif
