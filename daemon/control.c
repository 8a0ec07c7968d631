/*
 * control: the operator socket of lienthongd (server side) and the client
 * call shared by lienthongctl and the tests.
 *
 * Everything runs on the daemon's sd-event loop and nothing here may block
 * it: the listening socket and every client are non-blocking, answers are
 * queued in a per-client output buffer written when the socket is writable,
 * and a client that stops reading stops being read (its pending requests wait
 * in a bounded input buffer) instead of growing our memory. Requests on one
 * connection are answered in order, so clients may pipeline.
 *
 * The command table ctl_commands[] is the one place that lists commands: a
 * new command is a small handler and one row. Handlers follow the contract of
 * ctl_handler_fn; in addition, a failing handler may leave an object in
 * *result whose members are added to the error answer (reload uses it for
 * its "errors" array).
 *
 * The level of a peer comes from SO_PEERCRED, recorded by the kernel at
 * connect time: anyone who can connect (socket mode and group) may read;
 * CTL_WRITE commands need uid 0 or our own euid, and every accepted one is
 * written to the store's audit trail.
 */
#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "flow.h"
#include "flow_dossier.h"
#include "flow_payment.h"
#include "log.h"
#include "report.h"
#include "store.h"
#include "util.h"

#ifndef LT_VERSION
#define LT_VERSION "unknown"
#endif

#define CTL_DEFAULT_MAX_CLIENTS	      32
#define CTL_DEFAULT_MAX_REQUEST_BYTES (64 * 1024)
#define CTL_DEFAULT_IDLE_TIMEOUT_MS   (60 * 1000)
/* Above this much unsent output we stop reading the client (back-pressure). */
#define CTL_OUT_HIGH_BYTES (256 * 1024)
/* Bytes read from a client per read(2). */
#define CTL_READ_CHUNK (64 * 1024)
/* The client call reads answers up to this size (a big status or report list). */
#define CTL_CLIENT_MAX_ANSWER_BYTES (64u * 1024 * 1024)
/* "uid:N", the actor of a changing command (audit trail, outbox records). */
#define CTL_ACTOR_MAX 32
/* Rows a listing (mismatches, dead letters, deadlines) gives without --limit. */
#define CTL_LIST_DEFAULT 200
/* late without --since: the dossiers finished late in this many days. */
#define CTL_LATE_DEFAULT_DAYS 30

struct ctl_client {
	struct control *ctl;	      /* borrowed: the owner */
	int fd;			      /* owned */
	struct sd_event_source *io;   /* owned */
	struct sd_event_source *idle; /* owned */
	struct ctl_peer peer;
	struct dynbuf in;  /* unprocessed input, at most max_request_bytes + 1 */
	struct dynbuf out; /* answers not yet written, from out_off on */
	size_t out_off;
	bool eof;     /* the peer shut down its side: answer what is buffered, then close */
	bool closing; /* close once out is written */
	struct ctl_later *waiting; /* a request answered later (CTL_LATER); later ones wait */
	struct ctl_client *next;
};

struct ctl_later {
	struct ctl_client *cl; /* NULL once the client is gone */
};

struct control {
	struct daemon *d;	    /* borrowed */
	int fd;			    /* owned */
	char *path;		    /* owned */
	bool unlink_on_free;	    /* false for a socket systemd passed us */
	struct sd_event_source *io; /* owned */
	struct ctl_client *clients; /* owned list */
	unsigned n_clients;
	unsigned max_clients;
	size_t max_request_bytes;
	uint64_t idle_timeout_us;
};

/* ---- errors and answers ---------------------------------------------- */

/* "EPERM" for EPERM; every errno glibc knows has a name. */
static const char *errno_code(int e)
{
	const char *n = e > 0 ? strerrorname_np(e) : NULL;
	return n ? n : "EIO";
}

static json_t *answer_ok(json_t *result)
{
	json_t *a = json_object();
	json_object_set_new(a, "v", json_integer(CTL_PROTO_VERSION));
	json_object_set_new(a, "ok", json_true());
	json_object_set_new(a, "result", result ? result : json_null());
	return a;
}

/* extra: an object whose members are added to the answer (borrowed), or NULL. */
static json_t *answer_err(int e, const char *msg, json_t *extra)
{
	json_t *a = json_object();
	json_object_set_new(a, "v", json_integer(CTL_PROTO_VERSION));
	json_object_set_new(a, "ok", json_false());
	json_object_set_new(a, "error", json_string(msg ? msg : strerror(e)));
	json_object_set_new(a, "code", json_string(errno_code(e)));
	if (json_is_object(extra)) {
		const char *k;
		json_t *v;
		json_object_foreach (extra, k, v) {
			if (!json_object_get(a, k))
				json_object_set(a, k, v);
		}
	}
	return a;
}

/* ---- argument helpers for handlers ----------------------------------- */

/*
 * The value of a named argument: args.NAME, or for clients that only know
 * positional arguments, args.args[pos]. Borrowed; NULL when absent or not a
 * string.
 */
static const char *arg_string(json_t *args, const char *name, size_t pos)
{
	json_t *v = json_object_get(args, name);
	if (!v)
		v = json_array_get(json_object_get(args, "args"), pos);
	return json_string_value(v);
}

/*
 * Who runs a command, as the audit trail and the store's records (dead
 * letters closed, dossiers held) name them: "uid:N". One text for both, so
 * that an audit entry and the record it explains can be matched.
 */
static void peer_actor(const struct ctl_peer *peer, char *buf, size_t len)
{
	snprintf(buf, len, "uid:%d", peer->uid);
}

/* Finds the flow named in args.flow; on failure returns NULL with *r and *err. */
static struct flow *arg_flow(struct daemon *d, json_t *args, const char *cmd, int *r, char **err)
{
	const char *name = arg_string(args, "flow", 0);
	struct flow *f;
	if (!name || !*name) {
		*err = xasprintf("usage: %s FLOW (argument \"flow\" missing)", cmd);
		*r = -EINVAL;
		return NULL;
	}
	f = daemon_flow_find(d, name);
	if (!f) {
		*err = xasprintf("no flow named '%s'", name);
		*r = -ENOENT;
	}
	return f;
}

static json_t *flow_state_result(const struct flow *f)
{
	return json_pack("{s:s, s:s}", "flow", f->name, "state", flow_state_name(flow_state(f)));
}

/* ---- command handlers ------------------------------------------------ */

static const char *level_name(enum ctl_level l)
{
	return l == CTL_WRITE ? "write" : "read";
}

static int cmd_help(struct daemon *d, const struct ctl_peer *peer, json_t *args, json_t **result,
		    char **err)
{
	(void)d, (void)args, (void)err;
	json_t *cmds = json_array();
	for (const struct ctl_command *c = ctl_commands; c->name; c++)
		json_array_append_new(cmds, json_pack("{s:s, s:s, s:s, s:s, s:b}", "name", c->name,
						      "level", level_name(c->level), "usage",
						      c->usage, "help", c->help, "allowed",
						      c->level == CTL_READ || peer->privileged));
	*result = json_pack("{s:i, s:o}", "protocol", CTL_PROTO_VERSION, "commands", cmds);
	return 0;
}

static int cmd_version(struct daemon *d, const struct ctl_peer *peer, json_t *args, json_t **result,
		       char **err)
{
	(void)d, (void)peer, (void)args, (void)err;
	*result = json_pack("{s:s, s:i}", "version", LT_VERSION, "protocol", CTL_PROTO_VERSION);
	return 0;
}

/* Wraps a JSON view of the daemon; NULL from it is an internal error. */
static int view_result(json_t *view, const char *what, json_t **result, char **err)
{
	if (!view) {
		*err = xasprintf("cannot build the %s view", what);
		return -EIO;
	}
	*result = view;
	return 0;
}

static int cmd_status(struct daemon *d, const struct ctl_peer *peer, json_t *args, json_t **result,
		      char **err)
{
	(void)peer, (void)args;
	return view_result(daemon_status_json(d), "status", result, err);
}

static int cmd_connectors(struct daemon *d, const struct ctl_peer *peer, json_t *args,
			  json_t **result, char **err)
{
	(void)peer, (void)args;
	return view_result(daemon_connectors_json(d), "connectors", result, err);
}

static int cmd_metrics(struct daemon *d, const struct ctl_peer *peer, json_t *args, json_t **result,
		       char **err)
{
	(void)peer, (void)args;
	char *text = daemon_metrics_text(d);
	if (!text) {
		*err = xstrdup("cannot build the metrics");
		return -EIO;
	}
	*result = json_pack("{s:s}", "text", text);
	free(text);
	return *result ? 0 : view_result(NULL, "metrics", result, err);
}

static int cmd_reload(struct daemon *d, const struct ctl_peer *peer, json_t *args, json_t **result,
		      char **err)
{
	(void)peer, (void)args;
	json_t *errors = NULL;
	int r = daemon_reload(d, &errors);
	if (r == 0) {
		/* On success daemon_reload hands back what waits for a restart. */
		*result = json_pack("{s:b, s:o}", "accepted", 1, "restart_needed",
				    json_is_array(errors) ? errors : json_array());
		if (!json_is_array(errors))
			json_decref(errors);
		return 0;
	}
	if (!json_is_array(errors)) {
		json_decref(errors);
		errors = json_array();
	}
	if (json_array_size(errors) == 0)
		json_array_append_new(errors, json_string(strerror(-r)));
	*err = xstrdup("new configuration rejected, still running the previous one");
	*result = json_pack("{s:o}", "errors", errors);
	return -EINVAL;
}

static int cmd_run(struct daemon *d, const struct ctl_peer *peer, json_t *args, json_t **result,
		   char **err)
{
	(void)peer;
	int r = 0;
	struct flow *f = arg_flow(d, args, "run", &r, err);
	if (!f)
		return r;
	const char *mode = arg_string(args, "mode", 1);
	if (mode && strcmp(mode, "full") != 0 && strcmp(mode, "quick") != 0) {
		*err = xasprintf("mode '%s': expected full or quick", mode);
		return -EINVAL;
	}
	snprintf(f->run_mode, sizeof(f->run_mode), "%s", mode ? mode : "");
	r = flow_run_now(f);
	f->run_mode[0] = '\0';
	if (r == 0 || r == 1) {
		*result = r == 0 ? json_pack("{s:s, s:b}", "flow", f->name, "started", 1)
				 : json_pack("{s:s, s:b, s:s}", "flow", f->name, "started", 0,
					     "reason", "already running");
		return 0;
	}
	if (r == -EBUSY)
		*err = xasprintf("flow %s is paused (resume it first)", f->name);
	else if (r == -EAGAIN)
		*err = xasprintf("flow %s not started: the daemon is stopping", f->name);
	else if (r == -ENOTCONN)
		*err = xasprintf("flow %s is disabled in the configuration (enabled = false)",
				 f->name);
	else
		*err = xasprintf("flow %s failed to start: %s", f->name, strerror(-r));
	return r < 0 ? r : -EIO;
}

static int cmd_pause_resume(struct daemon *d, json_t *args, const char *cmd,
			    int (*op)(struct flow *), json_t **result, char **err)
{
	int r = 0;
	struct flow *f = arg_flow(d, args, cmd, &r, err);
	if (!f)
		return r;
	r = op(f);
	if (r < 0) {
		*err = xasprintf("cannot %s flow %s: %s", cmd, f->name, strerror(-r));
		return r;
	}
	*result = flow_state_result(f);
	return 0;
}

static int cmd_pause(struct daemon *d, const struct ctl_peer *peer, json_t *args, json_t **result,
		     char **err)
{
	(void)peer;
	return cmd_pause_resume(d, args, "pause", flow_pause, result, err);
}

static int cmd_resume(struct daemon *d, const struct ctl_peer *peer, json_t *args, json_t **result,
		      char **err)
{
	(void)peer;
	return cmd_pause_resume(d, args, "resume", flow_resume, result, err);
}

/* The store, or an error for commands that read it. */
static struct store *need_store(struct daemon *d, char **err)
{
	if (!d->store)
		*err = xstrdup("the store is not open");
	return d->store;
}

/* The status objects of the flows of type (their scheduling and last errors). */
static json_t *flows_of_type(struct daemon *d, const char *type)
{
	json_t *flows = json_array();
	for (size_t i = 0; i < d->n_flows; i++)
		if (!strcmp(d->flows[i]->type->name, type))
			json_array_append_new(flows, flow_status_json(d->flows[i]));
	return flows;
}

static int cmd_procedures(struct daemon *d, const struct ctl_peer *peer, json_t *args,
			  json_t **result, char **err)
{
	(void)peer, (void)args;
	struct store *s = need_store(d, err);
	if (!s)
		return -EIO;
	json_t *sum = store_proc_summary(s, 20);
	if (!sum)
		return view_result(NULL, "procedures", result, err);
	json_object_set_new(sum, "flows", flows_of_type(d, "catalog"));
	*result = sum;
	return 0;
}

static int cmd_procedure(struct daemon *d, const struct ctl_peer *peer, json_t *args,
			 json_t **result, char **err)
{
	(void)peer;
	const char *code = arg_string(args, "matthc", 0);
	struct store *s = need_store(d, err);
	if (!s)
		return -EIO;
	if (!code || !*code) {
		*err = xstrdup("usage: procedure MATTHC");
		return -EINVAL;
	}
	json_t *p = NULL;
	int r = store_proc_get(s, code, &p);
	if (r == 1) {
		*err = xasprintf("no procedure %s, nationally or provincially", code);
		return -ENOENT;
	}
	if (r < 0 || !p)
		return view_result(NULL, "procedure", result, err);
	struct store_mismatch_filter flt = {.key = code, .limit = 100};
	json_t *mm = store_mismatch_query(s, &flt);
	json_object_set_new(p, "mismatches", mm ? mm : json_array());
	*result = p;
	return 0;
}

/* "2026-11-01" or "2026-11-01T08:00:00Z" -> wall ms; -1 when malformed. */
static int64_t parse_day(const char *text)
{
	struct tm tm = {0};
	const char *end = strptime(text, "%Y-%m-%d", &tm);
	if (!end)
		return -1;
	if (*end == 'T' && !(end = strptime(end, "T%H:%M:%S", &tm)))
		return -1;
	if (*end == 'Z')
		end++;
	if (*end)
		return -1;
	return (int64_t)timegm(&tm) * 1000;
}

/* --limit N of a listing into *limit (left alone when absent); -EINVAL with *err. */
static int arg_limit(json_t *args, unsigned *limit, char **err)
{
	const char *text = arg_string(args, "limit", SIZE_MAX);
	if (!text)
		return 0;
	char *end;
	long n = strtol(text, &end, 10);
	if (!*text || *end || n < 1 || n > 100000) {
		*err = xasprintf("limit '%s': expected 1 to 100000", text);
		return -EINVAL;
	}
	*limit = (unsigned)n;
	return 0;
}

static int cmd_mismatches(struct daemon *d, const struct ctl_peer *peer, json_t *args,
			  json_t **result, char **err)
{
	(void)peer;
	struct store *s = need_store(d, err);
	if (!s)
		return -EIO;
	struct store_mismatch_filter flt = {
		.kind = arg_string(args, "kind", SIZE_MAX),
		.state = arg_string(args, "state", SIZE_MAX),
		.agency = arg_string(args, "agency", SIZE_MAX),
		.dossier = arg_string(args, "dossier", SIZE_MAX),
		.key = arg_string(args, "key", SIZE_MAX),
		.limit = CTL_LIST_DEFAULT,
	};
	const char *since = arg_string(args, "since", SIZE_MAX);
	if (since && (flt.since_ms = parse_day(since)) < 0) {
		*err = xasprintf("since '%s': expected YYYY-MM-DD", since);
		return -EINVAL;
	}
	if (arg_limit(args, &flt.limit, err) < 0)
		return -EINVAL;
	static const char *const states[] = {"open", "acknowledged", "resolved", "waived"};
	bool known = !flt.state;
	for (size_t i = 0; i < LT_ARRAY_SIZE(states) && !known; i++)
		known = !strcmp(flt.state, states[i]);
	if (!known) {
		*err = xasprintf("state '%s': expected open, acknowledged, resolved or waived",
				 flt.state);
		return -EINVAL;
	}
	json_t *list = store_mismatch_query(s, &flt);
	if (!list)
		return view_result(NULL, "mismatches", result, err);
	*result = json_pack("{s:o, s:o}", "mismatches", list, "counts", store_mismatch_counts(s));
	return 0;
}

/* The positive number in args.id (listed by `lienthongctl LISTING`); 0 with a usage error. */
static int64_t arg_id(json_t *args, const char *usage, const char *listing, char **err)
{
	const char *id = arg_string(args, "id", 0);
	char *end = NULL;
	long long n = id ? strtoll(id, &end, 10) : 0;
	if (!id || !*id || *end || n <= 0) {
		*err = xasprintf("usage: %s (ID: a number from lienthongctl %s)", usage, listing);
		return 0;
	}
	return n;
}

static int cmd_mismatch(struct daemon *d, const struct ctl_peer *peer, json_t *args,
			json_t **result, char **err)
{
	(void)peer;
	struct store *s = need_store(d, err);
	if (!s)
		return -EIO;
	long long n = arg_id(args, "mismatch ID", "mismatches", err);
	if (!n)
		return -EINVAL;
	json_t *m = NULL;
	int r = store_mismatch_get(s, n, &m);
	if (r == 1) {
		*err = xasprintf("no mismatch %lld", n);
		return -ENOENT;
	}
	if (r < 0)
		return view_result(NULL, "mismatch", result, err);
	*result = m;
	return 0;
}

/*
 * ack, resolve, waive: an operator's decision on a mismatch, with who and a
 * note in its history (and in the audit trail, as every changing command).
 * A resolved mismatch that a later run finds again reopens with that
 * history (store_mismatch_upsert); a waived one stays waived.
 */
static int set_mismatch_state(struct daemon *d, const struct ctl_peer *peer, json_t *args,
			      const char *state, const char *usage, bool note_required,
			      json_t **result, char **err)
{
	const char *note = arg_string(args, "note", 1);
	char actor[CTL_ACTOR_MAX];
	struct store *s = need_store(d, err);
	if (!s)
		return -EIO;
	long long n = arg_id(args, usage, "mismatches", err);
	if (!n)
		return -EINVAL;
	if (note && !note[strspn(note, " \t\r\n")])
		note = NULL;
	if (note_required && !note) {
		*err = xasprintf("usage: %s (the note is required: it says why, in the "
				 "mismatch's history)",
				 usage);
		return -EINVAL;
	}
	peer_actor(peer, actor, sizeof(actor));
	int r = store_mismatch_set_state(s, n, state, actor, now_wall_ms(), note);
	if (r == 0) {
		*result = json_pack("{s:I, s:s, s:s, s:s?}", "id", (json_int_t)n, "state", state,
				    "by", actor, "note", note);
		return *result ? 0 : view_result(NULL, state, result, err);
	}
	if (r == 1) {
		*err = xasprintf("mismatch %lld is already %s", n, state);
		return -EALREADY;
	}
	if (r == -ENOENT)
		*err = xasprintf("no mismatch %lld", n);
	else
		*err = xasprintf("cannot change mismatch %lld: %s", n, strerror(-r));
	return r < 0 ? r : -EIO;
}

static int cmd_ack(struct daemon *d, const struct ctl_peer *peer, json_t *args, json_t **result,
		   char **err)
{
	return set_mismatch_state(d, peer, args, "acknowledged", "ack ID [--note TEXT]", false,
				  result, err);
}

static int cmd_resolve(struct daemon *d, const struct ctl_peer *peer, json_t *args, json_t **result,
		       char **err)
{
	return set_mismatch_state(d, peer, args, "resolved", "resolve ID --note TEXT", true, result,
				  err);
}

static int cmd_waive(struct daemon *d, const struct ctl_peer *peer, json_t *args, json_t **result,
		     char **err)
{
	return set_mismatch_state(d, peer, args, "waived", "waive ID --note TEXT", true, result,
				  err);
}

/* ---- the dossier outbox ---------------------------------------------- */

/* The dossier code in args.mahoso; NULL with a usage error in *err. */
static const char *arg_mahoso(json_t *args, const char *cmd, char **err)
{
	const char *m = arg_string(args, "mahoso", 0);
	if (!m || !*m) {
		*err = xasprintf("usage: %s MAHOSO (argument \"mahoso\" missing)", cmd);
		return NULL;
	}
	if (strlen(m) > STORE_OUTBOX_KEY_MAX_BYTES) {
		/* Not echoed: cut, it could end inside a character. */
		*err = xasprintf("MAHOSO is longer than %d bytes: no dossier has such a code",
				 STORE_OUTBOX_KEY_MAX_BYTES);
		return NULL;
	}
	return m;
}

/* Adds "NAME_ms" and the ISO "NAME" of wall time ms to o, as the store's views have them. */
static void put_time(json_t *o, const char *name, int64_t ms)
{
	char key[64], iso[40];
	snprintf(key, sizeof(key), "%s_ms", name);
	json_object_set_new(o, key, json_integer(ms));
	json_object_set_new(o, name, json_string(fmt_time_iso(ms, iso, sizeof(iso))));
}

static int cmd_queue(struct daemon *d, const struct ctl_peer *peer, json_t *args, json_t **result,
		     char **err)
{
	(void)peer, (void)args;
	struct store *s = need_store(d, err);
	if (!s)
		return -EIO;
	json_t *q = store_outbox_queue(s, now_wall_ms());
	if (!q)
		return view_result(NULL, "queue", result, err);
	json_object_set_new(q, "flows", flows_of_type(d, "dossier"));
	*result = q;
	return 0;
}

static int cmd_dossier(struct daemon *d, const struct ctl_peer *peer, json_t *args, json_t **result,
		       char **err)
{
	(void)peer;
	struct store *s = need_store(d, err);
	if (!s)
		return -EIO;
	const char *m = arg_mahoso(args, "dossier", err);
	if (!m)
		return -EINVAL;
	json_t *o = NULL;
	int r = store_outbox_dossier(s, m, &o);
	if (r == 1) {
		*err = xasprintf("no dossier %s", m);
		return -ENOENT;
	}
	if (r < 0 || !o)
		return view_result(NULL, "dossier", result, err);
	*result = o;
	return 0;
}

static int cmd_deadletters(struct daemon *d, const struct ctl_peer *peer, json_t *args,
			   json_t **result, char **err)
{
	(void)peer;
	struct store *s = need_store(d, err);
	if (!s)
		return -EIO;
	const char *state = arg_string(args, "state", SIZE_MAX);
	unsigned limit = CTL_LIST_DEFAULT;
	if (state && strcmp(state, "dead") != 0 && strcmp(state, "retried") != 0 &&
	    strcmp(state, "dropped") != 0) {
		*err = xasprintf("state '%s': expected dead (open), retried or dropped", state);
		return -EINVAL;
	}
	if (arg_limit(args, &limit, err) < 0)
		return -EINVAL;
	json_t *list = store_outbox_deadletters(s, state, limit);
	if (!list)
		return view_result(NULL, "dead letters", result, err);
	/* The open ones in all, from the outbox counters: a footer for the listing. */
	json_t *q = store_outbox_queue(s, now_wall_ms());
	json_t *open = json_object_get(q, "dead_letters");
	*result = json_pack("{s:o, s:O}", "dead_letters", list, "open", open ? open : json_null());
	json_decref(q);
	return 0;
}

static int cmd_retry(struct daemon *d, const struct ctl_peer *peer, json_t *args, json_t **result,
		     char **err)
{
	static const char usage[] = "retry ID|--all";
	const char *id = arg_string(args, "id", 0);
	/* A client that knows only positional arguments sends "--all" as one. */
	bool id_all = id && !strcmp(id, "--all");
	bool all = json_is_true(json_object_get(args, "all")) || id_all;
	char actor[CTL_ACTOR_MAX], *why = NULL;
	unsigned retried = 0, still_dead = 0;
	int64_t letter = 0;

	if (!need_store(d, err))
		return -EIO;
	if (all && id && !id_all) {
		*err = xasprintf("usage: %s (an ID or --all, not both)", usage);
		return -EINVAL;
	}
	if (!all && (letter = arg_id(args, usage, "deadletters", err)) == 0)
		return -EINVAL;
	peer_actor(peer, actor, sizeof(actor));
	int r = flow_dossier_retry(d, letter, actor, &retried, &still_dead, &why);
	if (r == 0 || (r == 1 && all)) {
		json_t *o = json_object();
		json_object_set_new(o, "letter", letter ? json_integer(letter) : json_null());
		json_object_set_new(o, "all", json_boolean(all));
		json_object_set_new(o, "retried", json_integer(retried));
		json_object_set_new(o, "still_dead", json_integer(still_dead));
		json_object_set_new(o, "reason", why ? json_string(why) : json_null());
		json_object_set_new(o, "by", json_string(actor));
		free(why);
		*result = o;
		return 0;
	}
	if (r == 1) {
		*err = xasprintf("dead letter %lld is not open (already retried or dropped)",
				 (long long)letter);
		r = -EALREADY;
	} else if (r == -ENOENT) {
		*err = xasprintf("no dead letter %lld", (long long)letter);
	} else if (why) {
		/* The flow's own sentence: which letter, and why it still does not map. */
		*err = why;
		why = NULL;
	} else if (letter) {
		*err = xasprintf("dead letter %lld not retried: %s", (long long)letter,
				 strerror(-r));
	} else {
		*err = xasprintf("dead letters not retried: %s", strerror(-r));
	}
	free(why);
	return r < 0 ? r : -EIO;
}

static int cmd_drop(struct daemon *d, const struct ctl_peer *peer, json_t *args, json_t **result,
		    char **err)
{
	static const char usage[] = "drop ID --reason TEXT";
	const char *reason = arg_string(args, "reason", 1);
	char actor[CTL_ACTOR_MAX];
	struct store *s = need_store(d, err);
	if (!s)
		return -EIO;
	int64_t letter = arg_id(args, usage, "deadletters", err);
	if (!letter)
		return -EINVAL;
	if (!reason || !reason[strspn(reason, " \t\r\n")]) {
		*err = xasprintf("usage: %s (the reason is required: it is kept with the letter "
				 "and in the audit trail)",
				 usage);
		return -EINVAL;
	}
	peer_actor(peer, actor, sizeof(actor));
	int r = store_outbox_drop(s, letter, actor, reason, now_wall_ms());
	if (r == 0) {
		*result = json_pack("{s:I, s:s, s:s, s:s}", "letter", (json_int_t)letter, "state",
				    "dropped", "by", actor, "reason", reason);
		return *result ? 0 : view_result(NULL, "drop", result, err);
	}
	if (r == 1) {
		*err = xasprintf("dead letter %lld is not open (already retried or dropped)",
				 (long long)letter);
		return -EALREADY;
	}
	if (r == -ENOENT)
		*err = xasprintf("no dead letter %lld", (long long)letter);
	else
		*err = xasprintf("cannot drop dead letter %lld: %s", (long long)letter,
				 strerror(-r));
	return r < 0 ? r : -EIO;
}

/* The outbox state of dossier mahoso after a hold or release ("active", "held", "dead"). */
static json_t *dossier_state(struct store *s, const char *mahoso)
{
	json_t *o = NULL, *state;
	if (store_outbox_dossier(s, mahoso, &o) != 0)
		return json_null();
	state = json_incref(json_object_get(o, "state"));
	json_decref(o);
	return state ? state : json_null();
}

static int cmd_hold_release(struct daemon *d, const struct ctl_peer *peer, json_t *args, bool hold,
			    json_t **result, char **err)
{
	const char *cmd = hold ? "hold" : "release";
	char actor[CTL_ACTOR_MAX];
	struct store *s = need_store(d, err);
	if (!s)
		return -EIO;
	const char *m = arg_mahoso(args, cmd, err);
	if (!m)
		return -EINVAL;
	peer_actor(peer, actor, sizeof(actor));
	int r = hold ? store_outbox_hold(s, m, actor, now_wall_ms())
		     : store_outbox_release(s, m, actor, now_wall_ms());
	if (r == 0) {
		*result = json_pack("{s:s, s:o, s:s}", "mahoso", m, "state", dossier_state(s, m),
				    "by", actor);
		return *result ? 0 : view_result(NULL, cmd, result, err);
	}
	if (r == 1) {
		*err = hold ? xasprintf("dossier %s is already held", m)
			    : xasprintf("dossier %s is not held", m);
		return -EALREADY;
	}
	if (r == -ENOENT)
		*err = xasprintf("no dossier %s", m);
	else
		*err = xasprintf("cannot %s dossier %s: %s", cmd, m, strerror(-r));
	return r < 0 ? r : -EIO;
}

static int cmd_hold(struct daemon *d, const struct ctl_peer *peer, json_t *args, json_t **result,
		    char **err)
{
	return cmd_hold_release(d, peer, args, true, result, err);
}

static int cmd_release(struct daemon *d, const struct ctl_peer *peer, json_t *args, json_t **result,
		       char **err)
{
	return cmd_hold_release(d, peer, args, false, result, err);
}

static int cmd_overdue(struct daemon *d, const struct ctl_peer *peer, json_t *args, json_t **result,
		       char **err)
{
	(void)peer;
	unsigned limit = CTL_LIST_DEFAULT;
	int64_t now = now_wall_ms();
	struct store *s = need_store(d, err);
	if (!s)
		return -EIO;
	if (arg_limit(args, &limit, err) < 0)
		return -EINVAL;
	json_t *list = store_outbox_overdue(s, now, limit);
	if (!list)
		return view_result(NULL, "overdue", result, err);
	json_t *o = json_pack("{s:o, s:I}", "overdue", list, "limit", (json_int_t)limit);
	put_time(o, "at", now);
	*result = o;
	return 0;
}

static int cmd_late(struct daemon *d, const struct ctl_peer *peer, json_t *args, json_t **result,
		    char **err)
{
	(void)peer;
	unsigned limit = CTL_LIST_DEFAULT;
	int64_t since_ms = now_wall_ms() - (int64_t)CTL_LATE_DEFAULT_DAYS * 86400 * 1000;
	const char *since = arg_string(args, "since", SIZE_MAX);
	struct store *s = need_store(d, err);
	if (!s)
		return -EIO;
	if (since && (since_ms = parse_day(since)) < 0) {
		*err = xasprintf("since '%s': expected YYYY-MM-DD", since);
		return -EINVAL;
	}
	if (arg_limit(args, &limit, err) < 0)
		return -EINVAL;
	json_t *list = store_outbox_late(s, since_ms, limit);
	if (!list)
		return view_result(NULL, "late", result, err);
	json_t *o = json_pack("{s:o, s:I}", "late", list, "limit", (json_int_t)limit);
	put_time(o, "since", since_ms);
	*result = o;
	return 0;
}

/* report payments --from D --to D: written by the payment flow's worker, answered later. */
static int cmd_report(struct daemon *d, const struct ctl_peer *peer, json_t *args, json_t **result,
		      char **err)
{
	(void)result;
	const char *what = arg_string(args, "what", 0);
	const char *from = arg_string(args, "from", SIZE_MAX);
	const char *to = arg_string(args, "to", SIZE_MAX);
	const char *formats = arg_string(args, "formats", SIZE_MAX);
	const char *name = arg_string(args, "flow", SIZE_MAX);
	struct flow *f = NULL;
	unsigned bits = 0;
	if (!what || strcmp(what, "payments") != 0) {
		*err = xasprintf("report '%s': the reports are: payments", what ? what : "");
		return -EINVAL;
	}
	if (!from || !to) {
		*err = xstrdup("usage: report payments --from YYYY-MM-DD --to YYYY-MM-DD");
		return -EINVAL;
	}
	for (size_t i = 0; i < d->n_flows; i++) {
		if (d->flows[i]->type != &flow_payment || (name && strcmp(d->flows[i]->name, name)))
			continue;
		if (f && !name) {
			*err = xstrdup("more than one payment flow: say which with --flow");
			return -EINVAL;
		}
		f = d->flows[i];
	}
	if (!f || !f->priv) {
		*err = name ? xasprintf("no payment flow named '%s'", name)
			    : xstrdup("no payment flow is configured (or it is disabled)");
		return -ENOENT;
	}
	if (formats && !(bits = report_formats_parse(formats, err)))
		return -EINVAL;
	struct ctl_later *later = ctl_later_new(peer);
	if (!later) {
		*err = xstrdup("this connection already waits for a report");
		return -EBUSY;
	}
	int r = flow_payment_report(f, from, to, bits, later, err);
	if (r < 0) {
		ctl_later_cancel(later); /* the error is the answer, given now */
		return r;
	}
	return CTL_LATER;
}

const struct ctl_command ctl_commands[] = {
	{"help", CTL_READ, cmd_help, "help", "List the commands and who may run them."},
	{"version", CTL_READ, cmd_version, "version",
	 "Show the daemon's version and control protocol version."},
	{"status", CTL_READ, cmd_status, "status",
	 "Show the daemon, its store, connectors and flows."},
	{"connectors", CTL_READ, cmd_connectors, "connectors",
	 "Show every connector with its circuit and last results."},
	{"metrics", CTL_READ, cmd_metrics, "metrics",
	 "Print every metric in Prometheus text format."},
	{"reload", CTL_WRITE, cmd_reload, "reload",
	 "Reload the configuration; an invalid one is rejected and the old one keeps running."},
	{"run", CTL_WRITE, cmd_run, "run FLOW [MODE]",
	 "Start a pass of FLOW now; MODE full or quick for flows that have both (catalog)."},
	{"pause", CTL_WRITE, cmd_pause, "pause FLOW",
	 "Stop scheduling FLOW (a running pass finishes)."},
	{"resume", CTL_WRITE, cmd_resume, "resume FLOW", "Schedule FLOW again after a pause."},
	{"procedures", CTL_READ, cmd_procedures, "procedures",
	 "Procedure catalogue: counts, last passes, latest changes."},
	{"procedure", CTL_READ, cmd_procedure, "procedure MATTHC",
	 "One procedure: national and provincial values side by side, history, mismatches."},
	{"mismatches", CTL_READ, cmd_mismatches,
	 "mismatches [--kind KIND] [--state STATE] [--since DATE] [--agency AGENCY] "
	 "[--dossier MAHOSO] [--key KEY] [--limit N]",
	 "The mismatch log, newest first; KIND may end in .* (catalog.*)."},
	{"mismatch", CTL_READ, cmd_mismatch, "mismatch ID",
	 "One mismatch with both values, the raw record and its history."},
	{"ack", CTL_WRITE, cmd_ack, "ack ID [--note TEXT]",
	 "Acknowledge mismatch ID: someone is on it (recorded with who, when and the note)."},
	{"resolve", CTL_WRITE, cmd_resolve, "resolve ID --note TEXT",
	 "Mark mismatch ID resolved, saying how; it reopens if a later run finds it again."},
	{"waive", CTL_WRITE, cmd_waive, "waive ID --note TEXT",
	 "Mark mismatch ID as not a problem, saying why; later runs leave it waived."},
	{"queue", CTL_READ, cmd_queue, "queue",
	 "The dossier outbox: depth, oldest waiting work, dossiers by state and by failure."},
	{"dossier", CTL_READ, cmd_dossier, "dossier MAHOSO",
	 "One dossier: its state, the timeline of what happened to it, its rows, dead letters."},
	{"deadletters", CTL_READ, cmd_deadletters, "deadletters [--state STATE] [--limit N]",
	 "Dead letters of the dossier flow, newest first; STATE dead (open), retried, dropped."},
	{"overdue", CTL_READ, cmd_overdue, "overdue [--limit N]",
	 "Dossiers past their due date and not finished, most overdue first."},
	{"late", CTL_READ, cmd_late, "late [--since DATE] [--limit N]",
	 "Dossiers finished after their due date, since DATE (default: 30 days ago)."},
	{"retry", CTL_WRITE, cmd_retry, "retry ID|--all",
	 "Send a dead letter again (a change is mapped again first), or every open one."},
	{"drop", CTL_WRITE, cmd_drop, "drop ID --reason TEXT",
	 "Give up on a dead letter for good; the reason is kept and audited."},
	{"report", CTL_WRITE, cmd_report,
	 "report WHAT --from DATE --to DATE [--formats LIST] [--flow FLOW]",
	 "Reconcile the payments of DATE..DATE (WHAT: payments) from the store and write the "
	 "office's reports (LIST: csv,xlsx,html,json, and matched to list matched payments "
	 "too); prints their paths."},
	{"hold", CTL_WRITE, cmd_hold, "hold MAHOSO",
	 "Send nothing more of a dossier until released; its changes still queue."},
	{"release", CTL_WRITE, cmd_release, "release MAHOSO",
	 "Let a held dossier's queued changes go out."},
	{.name = NULL},
};

static const struct ctl_command *command_find(const char *name)
{
	for (const struct ctl_command *c = ctl_commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

/* ---- dispatch -------------------------------------------------------- */

/* The thing a changing command acts on, for the audit trail. */
static const char *audit_target(json_t *args)
{
	static const char *const keys[] = {"flow", "connector", "target", "id", "mahoso"};
	for (size_t i = 0; i < LT_ARRAY_SIZE(keys); i++) {
		const char *s = json_string_value(json_object_get(args, keys[i]));
		if (s)
			return s;
	}
	const char *s = json_string_value(json_array_get(json_object_get(args, "args"), 0));
	if (s)
		return s;
	/* retry --all acts on every open dead letter. */
	return json_is_true(json_object_get(args, "all")) ? "all" : "";
}

static void audit(struct daemon *d, const struct ctl_peer *peer, const char *cmd, json_t *args)
{
	char actor[CTL_ACTOR_MAX];
	const char *target = audit_target(args);
	peer_actor(peer, actor, sizeof(actor));
	log_info("control: uid %d (pid %d) runs '%s'%s%.64s", peer->uid, peer->pid, cmd,
		 *target ? " on " : "", target);
	if (!d->store)
		return;
	char *detail = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS);
	int r = store_audit_add(d->store, actor, cmd, target, detail ? detail : "{}");
	if (r < 0)
		log_warn("control: cannot record '%s' by %s in the audit trail: %s", cmd, actor,
			 strerror(-r));
	free(detail);
}

/* Parses one request line and returns its answer (new ref), NULL when it is answered later. */
static json_t *ctl_dispatch(struct control *ctl, const struct ctl_peer *peer, const char *line,
			    size_t len)
{
	json_error_t jerr;
	json_t *req = NULL, *ans = NULL, *result = NULL, *args, *v;
	char *err = NULL, *msg = NULL;
	const struct ctl_command *c;
	const char *cmd;
	int r;

	req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!req) {
		msg = xasprintf("request is not JSON: %s (line 1, column %d)", jerr.text,
				jerr.column);
		ans = answer_err(EINVAL, msg, NULL);
		goto out;
	}
	if (!json_is_object(req)) {
		ans = answer_err(EINVAL, "request is not a JSON object", NULL);
		goto out;
	}
	v = json_object_get(req, "v");
	if (!json_is_integer(v) || json_integer_value(v) != CTL_PROTO_VERSION) {
		char *got = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
		msg = xasprintf("unsupported protocol version %.32s; this daemon speaks version %d",
				got ? got : "(none)", CTL_PROTO_VERSION);
		free(got);
		ans = answer_err(EPROTO, msg, NULL);
		goto out;
	}
	cmd = json_string_value(json_object_get(req, "cmd"));
	if (!cmd || !*cmd) {
		ans = answer_err(EINVAL, "request has no \"cmd\" string", NULL);
		goto out;
	}
	args = json_object_get(req, "args");
	if (args && !json_is_object(args)) {
		ans = answer_err(EINVAL, "\"args\" must be a JSON object", NULL);
		goto out;
	}
	if (!args) {
		args = json_object();
		json_object_set_new(req, "args", args);
	}
	c = command_find(cmd);
	if (!c) {
		msg = xasprintf("unknown command '%.64s'; 'help' lists the commands", cmd);
		ans = answer_err(ENOENT, msg, NULL);
		goto out;
	}
	if (c->level == CTL_WRITE && !peer->privileged) {
		msg = xasprintf("command '%s' needs root or the service user (uid %d)", c->name,
				(int)geteuid());
		log_notice("control: refused '%s' to uid %d (pid %d)", c->name, peer->uid,
			   peer->pid);
		ans = answer_err(EPERM, msg, NULL);
		goto out;
	}
	if (c->level == CTL_WRITE)
		audit(ctl->d, peer, c->name, args);
	r = c->handler(ctl->d, peer, args, &result, &err);
	if (r == CTL_LATER) {
		ans = NULL; /* ctl_later_done() answers */
		goto out;
	}
	if (r < 0) {
		ans = answer_err(-r, err, result);
		goto out;
	}
	ans = answer_ok(result);
	result = NULL;
out:
	json_decref(result);
	json_decref(req);
	free(err);
	free(msg);
	return ans;
}

/* ---- clients --------------------------------------------------------- */

static void client_free(struct ctl_client *cl)
{
	if (!cl)
		return;
	struct control *ctl = cl->ctl;
	for (struct ctl_client **p = &ctl->clients; *p; p = &(*p)->next) {
		if (*p == cl) {
			*p = cl->next;
			ctl->n_clients--;
			break;
		}
	}
	if (cl->waiting)
		cl->waiting->cl = NULL;
	sd_event_source_disable_unref(cl->io);
	sd_event_source_disable_unref(cl->idle);
	if (cl->fd >= 0)
		close(cl->fd);
	dynbuf_free(&cl->in);
	dynbuf_free(&cl->out);
	free(cl);
}

static size_t client_out_pending(const struct ctl_client *cl)
{
	return cl->out.len - cl->out_off;
}

static void client_queue(struct ctl_client *cl, json_t *ans)
{
	if (!ans)
		return; /* answered later, by ctl_later_done() */
	char *s = json_dumps(ans, JSON_COMPACT);
	if (!s) {
		/* Only a result with invalid content gets here: still answer. */
		json_t *e = answer_err(EIO, "cannot encode the answer", NULL);
		s = json_dumps(e, JSON_COMPACT);
		json_decref(e);
	}
	/* out has no maximum: back-pressure (no reading) bounds it to one answer past HIGH. */
	dynbuf_addstr(&cl->out, s ? s : "{\"v\":1,\"ok\":false,\"error\":\"out of memory\"}");
	dynbuf_add(&cl->out, "\n", 1);
	free(s);
	json_decref(ans);
}

/* Answers E2BIG and closes once the answer is out. */
static void client_too_long(struct ctl_client *cl)
{
	char *msg = xasprintf("request longer than %zu bytes", cl->ctl->max_request_bytes);
	client_queue(cl, answer_err(E2BIG, msg, NULL));
	free(msg);
	log_notice("control: dropped uid %d (pid %d): %s", cl->peer.uid, cl->peer.pid,
		   "request too long");
	cl->closing = true;
}

/* Answers every complete line in the input while output is not backed up. */
static void client_process(struct ctl_client *cl)
{
	size_t max = cl->ctl->max_request_bytes;
	size_t done = 0;
	while (!cl->closing && !cl->waiting && client_out_pending(cl) < CTL_OUT_HIGH_BYTES) {
		char *start = cl->in.data + done;
		size_t left = cl->in.len - done;
		char *nl = left ? memchr(start, '\n', left) : NULL;
		size_t len;
		if (!nl) {
			if (left > max) {
				client_too_long(cl);
			} else if (cl->eof && left) {
				/* The last request may lack its newline: answer it anyway. */
				len = left;
				done += left;
				client_queue(cl, ctl_dispatch(cl->ctl, &cl->peer, start, len));
				continue;
			}
			break;
		}
		len = (size_t)(nl - start);
		done += len + 1;
		if (len > max) {
			client_too_long(cl);
			break;
		}
		if (len && start[len - 1] == '\r')
			len--;
		if (len == 0)
			continue; /* blank lines are tolerated (telnet, socat) */
		client_queue(cl, ctl_dispatch(cl->ctl, &cl->peer, start, len));
	}
	if (done) {
		memmove(cl->in.data, cl->in.data + done, cl->in.len - done);
		cl->in.len -= done;
		cl->in.data[cl->in.len] = '\0';
	}
	if (cl->eof && cl->in.len == 0 && !cl->waiting)
		cl->closing = true;
}

static void client_touch(struct ctl_client *cl)
{
	int r = sd_event_source_set_time_relative(cl->idle, cl->ctl->idle_timeout_us);
	if (r >= 0)
		r = sd_event_source_set_enabled(cl->idle, SD_EVENT_ONESHOT);
	if (r < 0)
		log_warn("control: cannot re-arm a client's idle timer: %s", strerror(-r));
}

/* Writes what it can. Returns 0, or negative when the client is gone. */
static int client_flush(struct ctl_client *cl)
{
	while (client_out_pending(cl)) {
		ssize_t n = send(cl->fd, cl->out.data + cl->out_off, client_out_pending(cl),
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -errno;
		}
		cl->out_off += (size_t)n;
		client_touch(cl);
	}
	dynbuf_reset(&cl->out);
	cl->out_off = 0;
	return 0;
}

/*
 * Reads, answers, writes, and sets the events we wait for. Frees the client
 * when it is done; returns negative in that case.
 */
static int client_step(struct ctl_client *cl, bool readable)
{
	size_t limit = cl->ctl->max_request_bytes + 1; /* one full line and its newline */
	uint32_t events = 0;
	int r;

	if (readable && !cl->eof && !cl->closing && cl->in.len < limit) {
		char chunk[CTL_READ_CHUNK];
		size_t want = LT_MIN(sizeof(chunk), limit - cl->in.len);
		ssize_t n = recv(cl->fd, chunk, want, MSG_DONTWAIT);
		if (n > 0) {
			dynbuf_add(&cl->in, chunk, (size_t)n);
			client_touch(cl);
		} else if (n == 0) {
			cl->eof = true;
		} else if (errno != EAGAIN && errno != EINTR) {
			goto gone;
		}
	}
	client_process(cl);
	r = client_flush(cl);
	if (r < 0)
		goto gone;
	if (client_out_pending(cl))
		events |= EPOLLOUT;
	else if (cl->closing)
		goto gone;
	if (!cl->closing && !cl->eof && client_out_pending(cl) < CTL_OUT_HIGH_BYTES &&
	    cl->in.len < limit)
		events |= EPOLLIN;
	r = sd_event_source_set_io_events(cl->io, events);
	if (r < 0) {
		log_warn("control: cannot wait on a client: %s", strerror(-r));
		goto gone;
	}
	return 0;
gone:
	client_free(cl);
	return -1;
}

struct ctl_later *ctl_later_new(const struct ctl_peer *peer)
{
	struct ctl_client *cl = peer ? peer->client : NULL;
	if (!cl || cl->waiting)
		return NULL;
	struct ctl_later *l = xcalloc(1, sizeof(*l));
	l->cl = cl;
	cl->waiting = l;
	/* the answer may take longer than the idle timeout: that is not idling */
	(void)sd_event_source_set_enabled(cl->idle, SD_EVENT_OFF);
	return l;
}

void ctl_later_cancel(struct ctl_later *l)
{
	if (!l)
		return;
	if (l->cl) {
		l->cl->waiting = NULL;
		client_touch(l->cl);
	}
	free(l);
}

void ctl_later_done(struct ctl_later *l, int r, json_t *result, const char *err)
{
	if (!l)
		return;
	struct ctl_client *cl = l->cl;
	free(l);
	if (!cl) {
		json_decref(result);
		return;
	}
	cl->waiting = NULL;
	if (r < 0) {
		client_queue(cl, answer_err(-r, err ? err : strerror(-r), result));
		json_decref(result);
	} else {
		client_queue(cl, answer_ok(result));
	}
	client_touch(cl);
	client_step(cl, false); /* the requests that waited, then write */
}

static int on_client_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct ctl_client *cl = userdata;
	(void)s, (void)fd;
	if ((revents & (EPOLLHUP | EPOLLERR)) && !(revents & EPOLLIN) && !client_out_pending(cl)) {
		client_free(cl);
		return 0;
	}
	client_step(cl, revents & (EPOLLIN | EPOLLHUP | EPOLLERR));
	return 0;
}

static int on_client_idle(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct ctl_client *cl = userdata;
	(void)s, (void)usec;
	log_debug("control: closing idle client uid %d (pid %d)", cl->peer.uid, cl->peer.pid);
	client_free(cl);
	return 0;
}

/* Best effort: the client is refused before it gets an io source. */
static void refuse_client(int fd, const char *msg, int e)
{
	json_t *a = answer_err(e, msg, NULL);
	char *s = json_dumps(a, JSON_COMPACT);
	char *line = s ? xasprintf("%s\n", s) : NULL;
	if (line)
		(void)!send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
	free(line);
	free(s);
	json_decref(a);
	close(fd);
}

static int client_new(struct control *ctl, int fd)
{
	struct ucred uc;
	socklen_t ul = sizeof(uc);
	struct ctl_client *cl;
	int r;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) < 0) {
		r = -errno;
		log_warn("control: cannot read a client's credentials: %s", strerror(errno));
		close(fd);
		return r;
	}
	if (ctl->n_clients >= ctl->max_clients) {
		char *msg = xasprintf("too many control clients (at most %u); try again later",
				      ctl->max_clients);
		log_notice("control: refused uid %d (pid %d): %s", (int)uc.uid, (int)uc.pid, msg);
		refuse_client(fd, msg, EBUSY);
		free(msg);
		return -EBUSY;
	}
	cl = xcalloc(1, sizeof(*cl));
	cl->ctl = ctl;
	cl->fd = fd;
	cl->peer.uid = (int)uc.uid;
	cl->peer.gid = (int)uc.gid;
	cl->peer.pid = (int)uc.pid;
	cl->peer.privileged = uc.uid == 0 || uc.uid == geteuid();
	cl->peer.client = cl;
	dynbuf_init(&cl->in, ctl->max_request_bytes + 1);
	dynbuf_init(&cl->out, 0);
	cl->next = ctl->clients;
	ctl->clients = cl;
	ctl->n_clients++;

	r = sd_event_add_io(ctl->d->ev, &cl->io, fd, EPOLLIN, on_client_io, cl);
	if (r >= 0)
		r = sd_event_add_time_relative(ctl->d->ev, &cl->idle, CLOCK_MONOTONIC,
					       ctl->idle_timeout_us, 10 * 1000, on_client_idle, cl);
	if (r < 0) {
		log_warn("control: cannot watch a client: %s", strerror(-r));
		client_free(cl);
		return r;
	}
	(void)sd_event_source_set_description(cl->io, "control-client");
	log_debug("control: client uid %d (pid %d) connected%s", cl->peer.uid, cl->peer.pid,
		  cl->peer.privileged ? ", privileged" : "");
	return 0;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct control *ctl = userdata;
	(void)s, (void)revents;
	/* A few per wakeup: the listen backlog is drained without starving the loop. */
	for (int i = 0; i < 16; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn("control: accept: %s", strerror(errno));
			break;
		}
		client_new(ctl, cfd);
	}
	return 0;
}

/* ---- the listening socket -------------------------------------------- */

static int fill_addr(const char *path, struct sockaddr_un *sa, socklen_t *len)
{
	size_t n = strlen(path);
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (n == 0 || n >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memcpy(sa->sun_path, path, n + 1);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

/* A socket systemd passed us (lienthong.socket) listening on path, or -1. */
static int activated_fd(const char *path)
{
	int n = sd_listen_fds(0);
	for (int fd = SD_LISTEN_FDS_START; n > 0 && fd < SD_LISTEN_FDS_START + n; fd++)
		if (sd_is_socket_unix(fd, SOCK_STREAM, 1, path, 0) > 0)
			return fd;
	return -1;
}

/*
 * Removes a socket file left by a previous run. Refuses to remove anything
 * that is not a socket, or a socket somebody still listens on.
 */
static int remove_stale(const char *path, const struct sockaddr_un *sa, socklen_t salen, char **err)
{
	struct stat st;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		*err = xasprintf("cannot stat control socket %s: %s", path, strerror(errno));
		return -errno;
	}
	if (!S_ISSOCK(st.st_mode)) {
		*err = xasprintf("refusing to replace %s with the control socket: it exists and "
				 "is not a socket",
				 path);
		return -EEXIST;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		int r = connect(fd, (const struct sockaddr *)sa, salen);
		int e = errno;
		close(fd);
		if (r == 0 || e == EAGAIN) {
			*err = xasprintf("control socket %s is in use: is another lienthongd "
					 "running?",
					 path);
			return -EADDRINUSE;
		}
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		*err = xasprintf("cannot remove stale control socket %s: %s", path,
				 strerror(errno));
		return -errno;
	}
	return 0;
}

static int ensure_parent(const char *path, char **err)
{
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	int r = 0;
	if (slash && slash != dir) {
		*slash = '\0';
		r = mkdir_p(dir, 0755);
		if (r < 0)
			*err = xasprintf("cannot create directory %s for the control socket: %s",
					 dir, strerror(-r));
	}
	free(dir);
	return r;
}

static int group_gid(const char *name, gid_t *gid, char **err)
{
	struct group gr, *res = NULL;
	char buf[16384];
	int e = getgrnam_r(name, &gr, buf, sizeof(buf), &res);
	if (e || !res) {
		*err = xasprintf("[control] group '%s': %s", name,
				 e ? strerror(e) : "no such group");
		return e ? -e : -ENOENT;
	}
	*gid = res->gr_gid;
	return 0;
}

/* Creates, binds and sets permissions of our own socket. Returns the fd or negative. */
static int bind_socket(const struct conf_control *o, const char *path, char **err)
{
	struct sockaddr_un sa;
	socklen_t salen;
	int mode = o->mode;
	gid_t gid = (gid_t)-1;
	int fd = -1, r;

	r = fill_addr(path, &sa, &salen);
	if (r < 0) {
		*err = xasprintf("control socket path '%s' is empty or longer than %zu bytes", path,
				 sizeof(sa.sun_path) - 1);
		return r;
	}
	if (o->group && *o->group && (r = group_gid(o->group, &gid, err)) < 0)
		return r;
	if ((r = ensure_parent(path, err)) < 0 || (r = remove_stale(path, &sa, salen, err)) < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		*err = xasprintf("cannot create the control socket: %s", strerror(errno));
		return r;
	}
	if (bind(fd, (const struct sockaddr *)&sa, salen) < 0) {
		r = -errno;
		*err = xasprintf("cannot bind the control socket to %s: %s", path, strerror(errno));
		goto fail;
	}
	/* The file exists from bind() on: from here a failure removes it too. */
	if (chmod(path, (mode_t)mode) < 0) {
		r = -errno;
		*err = xasprintf("cannot set mode %04o on %s: %s", mode, path, strerror(errno));
		goto fail_unlink;
	}
	if (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0) {
		r = -errno;
		*err = xasprintf("cannot give %s to group %s: %s", path, o->group, strerror(errno));
		goto fail_unlink;
	}
	if (listen(fd, SOMAXCONN) < 0) {
		r = -errno;
		*err = xasprintf("cannot listen on %s: %s", path, strerror(errno));
		goto fail_unlink;
	}
	return fd;
fail_unlink:
	unlink(path);
fail:
	close(fd);
	return r;
}

int control_new(struct daemon *d, const struct conf_control *o, struct control **out, char **err)
{
	struct control *ctl = NULL;
	int r;

	*out = NULL;
	if (!o->path || !*o->path) {
		*err = xstrdup("[control] path is not set");
		return -EINVAL;
	}
	ctl = xcalloc(1, sizeof(*ctl));
	ctl->d = d;
	ctl->fd = -1;
	ctl->path = xstrdup(o->path);
	ctl->max_clients = o->max_clients > 0 ? (unsigned)LT_MIN(o->max_clients, 100000)
					      : CTL_DEFAULT_MAX_CLIENTS;
	ctl->max_request_bytes = o->max_request_bytes > 0
					 ? (size_t)LT_MIN(o->max_request_bytes, 64 * 1024 * 1024)
					 : CTL_DEFAULT_MAX_REQUEST_BYTES;
	ctl->idle_timeout_us = (uint64_t)(o->idle_timeout_ms > 0 ? o->idle_timeout_ms
								 : CTL_DEFAULT_IDLE_TIMEOUT_MS) *
			       1000u;

	ctl->fd = activated_fd(o->path);
	if (ctl->fd >= 0) {
		/* systemd owns the file, its mode and group (lienthong.socket). */
		int fl = fcntl(ctl->fd, F_GETFL);
		if (fl < 0 || fcntl(ctl->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
			r = -errno;
			*err = xasprintf("cannot make the socket-activated %s non-blocking: %s",
					 o->path, strerror(errno));
			goto fail;
		}
		log_info("control: using socket %s passed by systemd", o->path);
	} else {
		ctl->fd = bind_socket(o, o->path, err);
		if (ctl->fd < 0) {
			r = ctl->fd;
			goto fail;
		}
		ctl->unlink_on_free = true;
	}
	r = sd_event_add_io(d->ev, &ctl->io, ctl->fd, EPOLLIN, on_accept, ctl);
	if (r < 0) {
		*err = xasprintf("cannot watch the control socket: %s", strerror(-r));
		goto fail;
	}
	(void)sd_event_source_set_description(ctl->io, "control-listen");
	*out = ctl;
	return 0;
fail:
	control_free(ctl);
	return r;
}

void control_free(struct control *c)
{
	if (!c)
		return;
	while (c->clients)
		client_free(c->clients);
	sd_event_source_disable_unref(c->io);
	if (c->fd >= 0)
		close(c->fd);
	if (c->unlink_on_free && c->path)
		unlink(c->path);
	free(c->path);
	free(c);
}

unsigned control_clients(const struct control *c)
{
	return c ? c->n_clients : 0;
}

/* ---- client side ----------------------------------------------------- */

static int64_t ms_left(uint64_t deadline_us)
{
	uint64_t now = now_mono_us();
	return now >= deadline_us ? 0 : (int64_t)((deadline_us - now + 999) / 1000);
}

/* Waits for events on fd until the deadline. Returns >0 ready, 0 timeout, -errno. */
static int wait_fd(int fd, short events, uint64_t deadline_us)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		int64_t left = ms_left(deadline_us);
		int n = poll(&p, 1, (int)LT_MIN(left, INT_MAX));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		return n;
	}
}

static int client_connect(const char *path, uint64_t deadline_us, char **err)
{
	struct sockaddr_un sa;
	socklen_t salen;
	int fd, r;

	if (fill_addr(path, &sa, &salen) < 0) {
		*err = xasprintf("socket path '%s' is empty or too long", path);
		return -ENAMETOOLONG;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		*err = xasprintf("cannot create a socket: %s", strerror(errno));
		return r;
	}
	/* A UNIX connect either completes or fails with EAGAIN (backlog full): retry. */
	while (connect(fd, (const struct sockaddr *)&sa, salen) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN && ms_left(deadline_us) > 0) {
			struct timespec ts = {0, 10 * 1000 * 1000};
			nanosleep(&ts, NULL);
			continue;
		}
		r = errno == EAGAIN ? -ETIMEDOUT : -errno;
		*err = xasprintf("cannot connect to %s: %s%s", path, strerror(-r),
				 r == -ENOENT || r == -ECONNREFUSED ? " (is lienthongd running?)"
				 : r == -EACCES ? " (is your user in the socket's group?)"
						: "");
		close(fd);
		return r;
	}
	return fd;
}

static int client_send(int fd, const char *path, const char *data, size_t len, uint64_t deadline_us,
		       char **err)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL);
		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EPIPE || errno == ECONNRESET)
			return 0; /* the daemon hung up early; its answer may say why */
		if (errno != EAGAIN) {
			int r = -errno;
			*err = xasprintf("cannot send to %s: %s", path, strerror(errno));
			return r;
		}
		int w = wait_fd(fd, POLLOUT, deadline_us);
		if (w <= 0) {
			*err = xasprintf("cannot send to %s: %s", path,
					 w == 0 ? "timed out" : strerror(-w));
			return w == 0 ? -ETIMEDOUT : w;
		}
	}
	return 0;
}

/* Reads one line into *line (caller frees). */
static int client_recv_line(int fd, const char *path, uint64_t deadline_us, int timeout_ms,
			    char **line, size_t *len, char **err)
{
	struct dynbuf b;
	char chunk[65536];
	int r = 0;
	dynbuf_init(&b, CTL_CLIENT_MAX_ANSWER_BYTES);
	for (;;) {
		char *nl = b.len ? memchr(b.data, '\n', b.len) : NULL;
		if (nl) {
			b.len = (size_t)(nl - b.data);
			b.data[b.len] = '\0';
			break;
		}
		ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
		if (n > 0) {
			if (dynbuf_add(&b, chunk, (size_t)n) < 0) {
				*err = xasprintf("answer from %s is larger than %u MiB", path,
						 CTL_CLIENT_MAX_ANSWER_BYTES >> 20);
				r = -E2BIG;
				goto out;
			}
			continue;
		}
		if (n == 0 || (errno == ECONNRESET && b.len == 0)) {
			*err = xasprintf("%s closed the connection without an answer", path);
			r = -EPROTO;
			goto out;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			r = -errno;
			*err = xasprintf("cannot read from %s: %s", path, strerror(errno));
			goto out;
		}
		int w = wait_fd(fd, POLLIN, deadline_us);
		if (w <= 0) {
			*err = w == 0 ? xasprintf("no answer from %s within %d ms", path,
						  timeout_ms)
				      : xasprintf("cannot read from %s: %s", path, strerror(-w));
			r = w == 0 ? -ETIMEDOUT : w;
			goto out;
		}
	}
	*line = dynbuf_steal(&b, len);
out:
	dynbuf_free(&b);
	return r;
}

int ctl_client_call(const char *path, const char *cmd, json_t *args, int timeout_ms,
		    json_t **answer, char **err)
{
	uint64_t deadline_us = now_mono_us() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 1) * 1000u;
	json_t *req = NULL, *ans = NULL;
	char *text = NULL, *line = NULL;
	size_t line_len = 0;
	json_error_t jerr;
	int fd = -1, r;

	*answer = NULL;
	*err = NULL;
	/* args is borrowed: "o" steals the reference taken here. */
	req = json_pack("{s:i, s:s, s:o}", "v", CTL_PROTO_VERSION, "cmd", cmd, "args",
			args ? json_incref(args) : json_object());
	text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	if (!text) {
		*err = xstrdup("cannot encode the request (invalid UTF-8 in an argument?)");
		r = -EINVAL;
		goto out;
	}
	fd = client_connect(path, deadline_us, err);
	if (fd < 0) {
		r = fd;
		goto out;
	}
	size_t tlen = strlen(text);
	text = xrealloc(text, tlen + 2);
	text[tlen] = '\n';
	text[tlen + 1] = '\0';
	r = client_send(fd, path, text, tlen + 1, deadline_us, err);
	if (r < 0)
		goto out;
	r = client_recv_line(fd, path, deadline_us, timeout_ms, &line, &line_len, err);
	if (r < 0)
		goto out;
	ans = json_loadb(line, line_len, 0, &jerr);
	if (!json_is_object(ans) || !json_is_boolean(json_object_get(ans, "ok"))) {
		*err = xasprintf("answer from %s is not a protocol answer: %s", path,
				 ans ? "no \"ok\" member" : jerr.text);
		r = -EPROTO;
		goto out;
	}
	json_t *v = json_object_get(ans, "v");
	if (!json_is_integer(v) || json_integer_value(v) != CTL_PROTO_VERSION) {
		*err = xasprintf("%s speaks another protocol version than ours (%d)", path,
				 CTL_PROTO_VERSION);
		r = -EPROTO;
		goto out;
	}
	*answer = ans;
	ans = NULL;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	json_decref(ans);
	json_decref(req);
	free(text);
	free(line);
	return r;
}
