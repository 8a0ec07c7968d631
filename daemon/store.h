/*
 * store: durable state behind a small interface (SQLite in WAL mode now,
 * PostgreSQL possible later; nothing outside store*.c includes sqlite3.h).
 *
 * The schema is versioned (PRAGMA user_version) and migrated at open, each
 * migration in one transaction. A store that cannot be opened or migrated
 * is an error at start: the daemon does not half-start.
 *
 * Every write either commits (fsynced with synchronous=FULL) or fails with a
 * negative errno; -ENOSPC means the disk (or [store] max_size) is full:
 * store_health() then reports STORE_FULL, the caller keeps its work for a
 * later pass, and store_check() (run on a timer) clears the condition when a
 * probe write succeeds again.
 *
 * Error codes of writes: -ENOSPC full, -EIO other storage failures (health
 * becomes STORE_ERROR), -EINVAL a bad argument or constraint (health
 * unchanged), -EBUSY a lock held elsewhere past busy_timeout, -E2BIG a value
 * too large. A failure inside store_begin() rolls the whole batch back at
 * once; later writes and every store_commit() of that batch return the same
 * error, so a cursor written in the batch never moves past lost work.
 * Listing functions return NULL on error (logged); a limit of 0 means all.
 * One store is one SQLite connection, for the loop thread only.
 */
#ifndef LT_STORE_H
#define LT_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf.h"

struct store;

enum store_health { STORE_OK, STORE_FULL, STORE_ERROR };
const char *store_health_name(enum store_health h);

/* Opens (creating directories and file as needed) and migrates. */
int store_open(const struct conf_store *o, struct store **out, char **err);
void store_close(struct store *s);

/* Current health and, when not OK, why (borrowed). */
enum store_health store_health(const struct store *s, const char **why);
/* Tries a small write; updates health. Returns 0 when the store is writable. */
int store_check(struct store *s);
/*
 * Applies a new [store] max_size (bytes, 0 = unlimited) to the open store,
 * e.g. on reload. It does not change the health: store_check() does.
 * Returns 0 or -errno.
 */
int store_set_max_size(struct store *s, int64_t max_size_bytes);
int store_schema_version(const struct store *s);
/* File size in bytes of the database and its WAL. */
int64_t store_size_bytes(const struct store *s);

/*
 * Explicit transactions to group several writes into one commit (one fsync).
 * Nesting is counted; only the outermost commit writes. Returns 0 or -errno.
 */
int store_begin(struct store *s);
int store_commit(struct store *s);
void store_rollback(struct store *s);

/* Cursors: a named position in a source (e.g. "provincial.dossiers"). */
/* Returns 0 with *value (caller frees), 1 when unset, or -errno. */
int store_cursor_get(struct store *s, const char *name, char **value);
int store_cursor_set(struct store *s, const char *name, const char *value);

/* Runs: one row per pass of a flow. */
int store_run_begin(struct store *s, const char *flow, int64_t started_ms, int64_t *run_id);
/* outcome: "ok", "retry", "failed", "cancelled". */
int store_run_end(struct store *s, int64_t run_id, int64_t ended_ms, const char *outcome,
		  uint64_t items_ok, uint64_t items_failed, const char *summary);
/* The last n runs of flow (NULL = all flows), newest first, as a JSON array (new ref). */
json_t *store_runs_list(struct store *s, const char *flow, unsigned n);

/* The mismatch log. One row per (kind, key); repeats update last_seen. */
struct mismatch {
	const char *kind;    /* e.g. "catalog.missing_provincial", "relay.unreadable" */
	const char *key;     /* identifies the thing (MATTHC, MaHoSo, file name) */
	const char *summary; /* one line, Vietnamese where it faces the office */
	const char *detail;  /* JSON text with both values, or NULL */
	const char *raw;     /* raw payload, or NULL */
	const char *agency;  /* or NULL */
	const char *dossier; /* or NULL */
	int64_t seen_ms;
};
/*
 * Inserts or refreshes. *is_new is true when the (kind,key) was not open;
 * a closed one that reappears reopens. Returns 0 or -errno.
 */
int store_mismatch_upsert(struct store *s, const struct mismatch *m, int64_t *id, bool *is_new);
/* Closes (state resolved by "lienthongd", note) the open mismatch (kind,key). 1 if none. */
int store_mismatch_clear(struct store *s, const char *kind, const char *key, int64_t when_ms,
			 const char *note);
/* Open mismatches of kind last seen before ms (a pass that no longer finds them). */
int store_mismatch_clear_unseen(struct store *s, const char *kind, int64_t seen_before_ms,
				int64_t when_ms, unsigned *cleared);
/*
 * An operator's decision on mismatch id: state is "open", "acknowledged",
 * "resolved" or "waived"; actor names who (never NULL). Records an event.
 * Returns 0, 1 when it already is in that state, -ENOENT for an unknown id,
 * -EINVAL for an unknown state, or -errno.
 */
int store_mismatch_set_state(struct store *s, int64_t id, const char *state, const char *actor,
			     int64_t when_ms, const char *note);
/* The state changes of mismatch id, oldest first, as a JSON array. New ref. */
json_t *store_mismatch_events(struct store *s, int64_t id);
/*
 * Filters may be NULL. A kind ending in ".*" or "." matches every kind with
 * that prefix ("catalog.*"). Newest first, at most limit rows. New ref.
 */
json_t *store_mismatch_list(struct store *s, const char *kind, const char *state, unsigned limit);
/* What `lienthongctl mismatches` filters on; NULL / 0 fields do not filter. */
struct store_mismatch_filter {
	const char *kind;    /* exact, or a prefix ending in ".*" or "." as above */
	const char *key;     /* exact (e.g. a MATTHC, across kinds) */
	const char *state;   /* "open", "acknowledged", "resolved", "waived" */
	int64_t since_ms;    /* last seen at or after */
	const char *agency;  /* exact */
	const char *dossier; /* exact */
	unsigned limit;	     /* at most this many rows, newest first */
};
/* The mismatches that pass every filter of f, newest (last seen) first. New ref. */
json_t *store_mismatch_query(struct store *s, const struct store_mismatch_filter *f);
/*
 * Mismatch id: every column (as store_mismatch_list) and "events" (as
 * store_mismatch_events). Returns 0 with *out (new ref), 1 when there is no
 * such mismatch, or -errno.
 */
int store_mismatch_get(struct store *s, int64_t id, json_t **out);
/* Counts of mismatches by state as an object {"open":n,...}. New ref. */
json_t *store_mismatch_counts(struct store *s);

/* ---- procedures (the catalog flow) ------------------------------------- */

/*
 * One national procedure as the catalog flow saw it. Texts are borrowed.
 * A procedure is never deleted: a withdrawn one is marked, and every change
 * (new, changed, withdrawn, reinstated) is a row of its history.
 */
struct store_procedure {
	const char *code;     /* MATTHC */
	const char *name;     /* TENTTHC, for listings */
	const char *national; /* JSON text of the national record */
	const char *mapped;   /* JSON text of the mapped record; NULL when unmappable */
	const char *hash;     /* hex content hash of the national record */
	/* JSON array text of the top-level fields that changed, or NULL */
	const char *fields_changed;
	int64_t seen_ms;
};

enum store_proc_change {
	STORE_PROC_SAME, /* hash unchanged: only last_seen moved */
	STORE_PROC_NEW,
	STORE_PROC_CHANGED,
	STORE_PROC_REINSTATED, /* was withdrawn, published again */
};

/*
 * Records that a pass saw p (code, national and hash are required, else
 * -EINVAL). *change (may be NULL) says what it was:
 *   NEW         unknown code: inserted active, history row "new";
 *   SAME        active with the same hash: last_seen moves, name and mapped
 *               are refreshed (a mapping fix re-maps without a national
 *               change), no history row;
 *   CHANGED     active with another hash: the record is replaced, history
 *               row "changed" with p->fields_changed and the new record;
 *   REINSTATED  was withdrawn: active again, history row "reinstated" that
 *               also carries the change (fields_changed, record) when the
 *               hash differs.
 * Returns 0 or -errno.
 */
int store_proc_upsert(struct store *s, const struct store_procedure *p,
		      enum store_proc_change *change);
/*
 * Marks an active procedure withdrawn (history row "withdrawn").
 * Returns 0, 1 if unknown or already withdrawn, or -errno.
 */
int store_proc_withdraw(struct store *s, const char *code, int64_t when_ms);
/*
 * Records that the provincial system accepted the version with this hash.
 * Returns 0, 1 if code is unknown, or -errno.
 */
int store_proc_delivered(struct store *s, const char *code, const char *hash, int64_t when_ms);
/*
 * Every procedure's state in one object, for a pass to diff against:
 * {"CODE": {"hash": "..", "status": "active"|"withdrawn", "delivered_hash": ".."|null}}.
 * New ref, NULL on error.
 */
json_t *store_proc_index(struct store *s);
/*
 * One procedure for `lienthongctl procedure`: {"code", "name", "status",
 * "hash", "delivered_hash", every time as "x_ms" and ISO "x" (first_seen,
 * last_seen, changed, withdrawn, delivered; null when unset), "national"
 * and "mapped" (parsed; mapped null when unmappable), "provincial" (the
 * provincial record parsed, or null) and "provincial_seen_ms"/
 * "provincial_seen" (the snapshot that last had it),
 * "history": [{"at_ms", "at", "change", "hash", "fields_changed"}] newest
 * first}. A code known only provincially has status "provincial_only" and
 * null national fields. Records that do not parse are given as strings.
 * Returns 0 with *out (new ref), 1 when unknown (neither national nor
 * provincial), or -errno.
 */
int store_proc_get(struct store *s, const char *code, json_t **out);
/*
 * {"total", "active", "withdrawn", "provincial_total", "provincial_only"
 * (provincial codes never seen nationally), "undelivered" (active ones
 * whose current hash was not delivered), "last_changes": the newest limit
 * history rows [{"code", "name", "change", "at_ms", "at", "fields_changed"}]}.
 * The flow's last passes are store_runs_list()'s. New ref, NULL on error.
 */
json_t *store_proc_summary(struct store *s, unsigned limit);

/*
 * The provincial catalogue as last read: replaces the whole snapshot with
 * records (array of objects, each keyed by the string record[key_field])
 * in one transaction (a savepoint inside the caller's). A record without
 * such a key (or with an empty or over-long one) is skipped, and so is a
 * repeat of a key earlier in records (the first is kept); both are counted
 * in one warning.
 * Returns 0 or -errno (-EINVAL when records is not an array).
 */
int store_prov_catalog_replace(struct store *s, const json_t *records, const char *key_field,
			       int64_t when_ms);
/* Sets one record of the snapshot (after the province accepted a delivery). */
int store_prov_catalog_set(struct store *s, const char *code, const char *record_text,
			   int64_t when_ms);

/* The audit trail: who did what to which thing. */
int store_audit_add(struct store *s, const char *actor, const char *action, const char *target,
		    const char *detail);
json_t *store_audit_list(struct store *s, unsigned limit);

#endif
