/*
 * daemon: the state of the running lienthongd and the operations the
 * control socket needs (status, reload, run/pause/resume).
 *
 * Lifecycle (Unbound's init/start split): daemon_new() only records paths;
 * daemon_start() loads the config, opens the store, creates the HTTP core,
 * connectors, flows and the control socket, and only then sends READY=1.
 * Any failure there is a clear message and exit 1, never a half-started
 * daemon. daemon_reload() builds a new config and new instances aside and
 * swaps them in only if everything is valid.
 */
#ifndef LT_DAEMON_H
#define LT_DAEMON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "connector.h"
#include "flow.h"

struct sd_event;
struct sd_event_source;
struct store;
struct http_core;
struct control;
struct daemon_retired;

struct daemon {
	struct sd_event *ev;	/* owned */
	char *config_path;	/* owned */
	struct config *cfg;	/* owned: the config in force */
	struct store *store;	/* owned */
	struct http_core *http; /* owned */
	struct control *ctl;	/* owned */
	struct conn **conns;	/* owned refs */
	size_t n_conns;
	struct flow **flows; /* owned */
	size_t n_flows;
	struct daemon_retired *retired; /* owned: instances of replaced configs still finishing */
	uint64_t start_mono_us;
	int64_t start_wall_ms;
	uint64_t reloads_ok, reloads_failed;
	char *last_reload_error; /* owned */
	bool stopping;
	bool under_systemd; /* NOTIFY_SOCKET set */
	int exit_code;
	struct sd_event_source *health_timer; /* owned: store checks, STATUS= */
	struct sd_event_source *stop_timer;   /* owned: shutdown deadline */
	struct sd_event_source *retire_defer; /* owned: frees retired sets after a pass ends */
	char status_line[256];		      /* last STATUS= sent */
};

/* Records the config path. Nothing is acquired yet. */
struct daemon *daemon_new(const char *config_path);
/* Acquires everything; returns 0 or negative with a message already logged. */
int daemon_start(struct daemon *d);
/* Runs the loop until stopped. Returns the process exit code. */
int daemon_run(struct daemon *d);
void daemon_free(struct daemon *d);

/*
 * Reloads the config file. On success returns 0 and the new config is in
 * force. Otherwise returns -EINVAL (or -errno), the old config keeps running
 * and *errors (new ref, may be NULL) holds every message as a JSON array.
 */
int daemon_reload(struct daemon *d, json_t **errors);
/* Begins a graceful stop: flows are asked to persist and finish. */
void daemon_stop(struct daemon *d, int exit_code);

struct conn *daemon_conn_find(struct daemon *d, const char *name);
struct flow *daemon_flow_find(struct daemon *d, const char *name);
/* Whether a flow of this name from a replaced config is still in a pass. */
bool daemon_retired_running(struct daemon *d, const char *name);

/* JSON views for the control socket and lienthongctl (new refs). */
json_t *daemon_status_json(struct daemon *d);
json_t *daemon_connectors_json(struct daemon *d);
json_t *conn_status_json(struct conn *c);
/* Prometheus text exposition of every metric (caller frees). */
char *daemon_metrics_text(struct daemon *d);

/* Updates the one-line STATUS= summary (sd_notify) when it changed. */
void daemon_update_status(struct daemon *d);
/* Called by flows when a pass ended, to refresh STATUS= and finish a stop. */
void daemon_flow_ended(struct daemon *d, struct flow *f);

/*
 * --check-config: loads the config, builds every connector and flow in
 * check-only mode, prints every error to stderr. Returns 0 when valid.
 */
int daemon_check_config(const char *config_path);

#endif
