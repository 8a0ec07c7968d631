/*
 * connector: the interface between the core and one external system.
 *
 * A connector is one `const struct connector` (Fluent Bit's output plugin,
 * OpenSMTPD's table backends): a name, an option table, and callbacks. The
 * core owns HTTP, retries, timers, persistence and metrics; a connector
 * builds requests and interprets answers as a state machine the core drives.
 * It never sleeps and never runs its own I/O loop.
 *
 * In-tree connectors are listed in the static table of registry.c.
 * Out-of-tree connectors are shared objects in [daemon] plugin_dir exporting
 * `const struct connector lienthong_connector`; one whose abi_version differs
 * from CONN_ABI_VERSION is refused with a message naming both versions.
 *
 * Record exchange (pull/ack/push) is the generic part every flow can use;
 * connectors that serve one specific flow expose a typed interface in `ext`
 * (documented next to the flow that uses it).
 */
#ifndef LT_CONNECTOR_H
#define LT_CONNECTOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "http.h"
#include "list.h"
#include "log.h"

#define CONN_ABI_VERSION 1

/* The outcome of one operation of a connector (not an errno). */
enum conn_outcome {
	CONN_OK = 0,
	CONN_RETRY = 1, /* try again later: transport error, 5xx, 429, circuit open */
	CONN_FAIL = 2,	/* failed for good: the same request will fail again */
};

const char *conn_outcome_name(enum conn_outcome o);
/* The connector outcome of an HTTP core (or adapter) outcome. */
enum conn_outcome conn_outcome_from_http(enum http_outcome o);
/* What a JSON value is, for messages about answers of the wrong shape:
 * "an object", "a list", "a string", "a number", "a boolean", "null". */
const char *conn_json_kind(const json_t *j);
/*
 * At most max bytes of s[0, len) as one line of valid UTF-8 text: control
 * characters become spaces, invalid bytes '?', a cut never splits a
 * character, and "..." marks one. Caller frees.
 */
char *conn_excerpt(const char *s, size_t len, size_t max);
/* Whether path (a connector's *_path option) starts with '/' or is an http(s) URL. */
bool conn_path_ok(const char *path);
/* s percent-encoded for a query string (RFC 3986 unreserved kept). Caller frees. */
char *conn_url_escape(const char *s);
/* Longest server text conn_server_text() gives. */
#define CONN_SERVER_TEXT_BYTES 300
/*
 * What the server said about a refusal: of a JSON answer its error code and
 * message ({"error":"bad_request","message":"..."}, {"error":"..."},
 * {"error":{"code":..,"message":..}}, RFC 7807 title/detail), or else an
 * excerpt of the body; "" for an empty one. Bounded, one line. Caller frees.
 */
char *conn_server_text(const struct http_response *r);
/*
 * The shape of a page of a cursor-paged list ({"items": [...],
 * "next_cursor": text or number, "has_more": boolean or absent}): on 0,
 * *items (borrowed from page), *next (text, caller frees; also when the
 * server sent a number) and *has_more; -EINVAL with *why (naming the list's
 * items as noun: "changes", "transactions") for any other shape or a
 * next_cursor longer than max_cursor bytes. Whether the page moves on from
 * its cursor is the caller's rule.
 */
int conn_cursor_page(const json_t *page, const char *noun, size_t max_cursor, json_t **items,
		     char **next, bool *has_more, char **why);

/* Connector flags. */
#define CONN_F_HTTP    0x1u /* instance gets an http_client from [connector.X] http keys */
#define CONN_F_ADAPTER 0x2u /* ... and an adapter (session/OAuth2 envelope); implies HTTP */

struct conn;
struct daemon;

/*
 * A batch of records pulled from a source. records is a JSON array (owned).
 * token names the batch for ack (owned, connector-defined, e.g. a file name).
 * origin says where it came from, for logs and mismatches (owned).
 */
struct conn_batch {
	json_t *records;
	char *token;
	char *origin;
};

void conn_batch_free(struct conn_batch *b);

/*
 * Completion of pull: on CONN_OK, b is the next batch (ownership passes to
 * the callee) or NULL when there is nothing more now. err explains
 * CONN_RETRY/CONN_FAIL (borrowed).
 */
typedef void (*conn_pull_cb)(struct conn *c, enum conn_outcome o, struct conn_batch *b,
			     const char *err, void *ud);
/* Completion of push or probe. detail explains a failure (borrowed). */
typedef void (*conn_done_cb)(struct conn *c, enum conn_outcome o, const char *detail, void *ud);

struct connector {
	unsigned abi_version; /* CONN_ABI_VERSION */
	const char *name;     /* type name used in `type =` */
	const char *description;
	unsigned flags;			   /* CONN_F_* */
	const struct conf_option *options; /* own keys, offsets into opts; may be NULL */
	size_t opts_size;

	/*
	 * Sets up c->priv from c->opts (and c->http / c->adapter when flagged).
	 * Called at start and when a changed section is applied on reload. On
	 * failure returns negative and sets *err (caller frees).
	 * check_only: called by --check-config; validate, acquire nothing.
	 */
	int (*init)(struct conn *c, bool check_only, char **err);
	/* Releases c->priv. Must cancel or finish pending callbacks first. */
	void (*free)(struct conn *c);

	/* Optional: a cheap health check (log in, list a folder). */
	int (*probe)(struct conn *c, conn_done_cb done, void *ud);

	/* Optional source side: next batch, then ack once it is durably handled. */
	int (*pull)(struct conn *c, conn_pull_cb done, void *ud);
	/*
	 * ok: the batch was delivered; the source may forget it (move the file to
	 * done/, advance a cursor). !ok: it can never be delivered; reason says
	 * why (move to failed/ with the reason). Synchronous. Returns 0 or -errno.
	 */
	int (*ack)(struct conn *c, const struct conn_batch *b, bool ok, const char *reason);

	/* Optional sink side: deliver records (a JSON array, borrowed). */
	int (*push)(struct conn *c, json_t *records, const char *origin, conn_done_cb done,
		    void *ud);

	/* Optional: extra fields for `lienthongctl status`/`connectors` (new ref). */
	json_t *(*status)(struct conn *c);

	const void *ext; /* typed interface for a specific flow, or NULL */
};

/* Counters kept by the core for every instance (metrics, status). */
struct conn_stats {
	uint64_t ops_ok, ops_retry, ops_fail;
	int64_t last_ok_ms, last_err_ms;
	char *last_err;		    /* owned */
	struct complaint complaint; /* rate-limits the failure log */
};

/* A configured connector instance. Refcounted: a running flow holds a ref. */
struct conn {
	const struct connector *type;	   /* borrowed (registry or plugin) */
	char *name;			   /* owned */
	const struct conf_connector *conf; /* borrowed from the config that made it */
	void *opts;			   /* borrowed: conf->opts */
	void *priv;			   /* connector-owned */
	struct daemon *d;		   /* borrowed */
	struct http_client *http;	   /* owned, when CONN_F_HTTP */
	struct adapter *adapter;	   /* owned, when CONN_F_ADAPTER */
	struct conn_stats stats;
	unsigned refs;
};

/*
 * Creates an instance from a config section (check_only: validate, no
 * resources). Returns 0 with *out set, or negative with *err.
 */
int conn_new(struct daemon *d, const struct conf_connector *cc, bool check_only, struct conn **out,
	     char **err);
struct conn *conn_ref(struct conn *c);
void conn_unref(struct conn *c);

/* Records an operation's outcome in c->stats (and logs failures, rate-limited). */
void conn_note(struct conn *c, enum conn_outcome o, const char *detail);

/* Registry: in-tree table plus loaded plugins. NULL when unknown. */
const struct connector *conn_type_find(const char *name);
/* Iterates the known types: returns the i-th, NULL past the end. */
const struct connector *conn_type_at(size_t i);
/*
 * Loads every *.so in dir as a connector plugin. Errors (bad ABI, missing
 * symbol, duplicate name) are added to errs; a missing dir is not an error.
 */
struct conf_errors;
void conn_load_plugins(const char *dir, struct conf_errors *errs);

/*
 * Pending operations of a connector instance (conn_later).
 *
 * Every connector keeps two promises: a completion is called from the loop,
 * never from inside the call that started the operation; and nothing is
 * called back once the instance was freed (connector.free), although the
 * requests it had in flight still come back, cancelled, when the core frees
 * c->http and c->adapter after it.
 *
 * An operation that can outlive the call embeds a struct conn_later and is
 * on a struct conn_later_list of its instance (a zeroed list is empty) from
 * conn_later_add() until its free calls conn_later_remove():
 *  - waiting for a request, its completion starts by reading l->owner: NULL
 *    means the instance was freed and nobody waits, so the completion only
 *    frees the operation;
 *  - answered without a request (bad arguments, nothing to do, a result
 *    settled locally), it is given to conn_later_defer(), and fire gives
 *    the answer from the loop.
 * The instance's free calls conn_later_cancel_all(): scheduled operations
 * are released without being fired, the others are orphaned (owner NULL).
 */
struct conn_later;
struct sd_event_source;

/* fire: gives a scheduled answer. release: frees the operation embedding l. */
typedef void (*conn_later_fn)(struct conn_later *l);

struct conn_later {
	struct list_node node;	       /* on the owner's list while it is pending */
	void *owner;		       /* borrowed: the connector's state; NULL once freed */
	struct sd_event_source *defer; /* owned: the scheduled answer, or NULL */
	conn_later_fn fire;
	conn_later_fn release;
};

struct conn_later_list {
	struct list_head ops;
};

/* The operation of type `type` whose struct conn_later member `member` is at l. */
#define conn_later_entry(l, type, member) list_entry(&(l)->node, type, member.node)

/*
 * Puts l (zeroed, embedded in an operation) on list, for owner (stored in
 * l->owner, borrowed). release frees the operation: conn_later_cancel_all()
 * and the loop (after fire) call it with l off its list and nothing
 * scheduled, and it must not touch the owner.
 */
void conn_later_add(struct conn_later_list *list, struct conn_later *l, void *owner,
		    conn_later_fn release);
/*
 * Schedules fire(l) on c's loop (c->d->ev), never from inside this call.
 * When it runs, l is already off its list, so fire may free the owner (read
 * l->owner before that); once fire returns, l is released: fire frees
 * nothing of l. Returns 0, or negative with nothing scheduled and l as it
 * was (the caller frees it): -EINVAL when c has no loop or l is scheduled
 * already, else sd-event's error.
 */
int conn_later_defer(struct conn_later *l, struct conn *c, conn_later_fn fire);
/*
 * Takes l off its list and drops its scheduled answer, if any (fire is not
 * called). For the operation's free; l may be on no list.
 */
void conn_later_remove(struct conn_later *l);
/*
 * For the instance's free: empties list. Scheduled operations are released
 * without being fired; the others get owner NULL and stay alive, for their
 * request's (cancelled) completion to free.
 */
void conn_later_cancel_all(struct conn_later_list *list);

#endif
