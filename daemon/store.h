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
/*
 * Whether a group is open on the loop's connection (another flow's, between
 * two of its steps): a commit made inside it is durable only once that
 * group commits. A flow that must act only on durable writes (move a file
 * away) waits until this is false right after its own commit.
 */
bool store_in_group(const struct store *s);
/*
 * How many outermost groups were committed so far, and in *failed (may be
 * NULL) how many were lost (rolled back): a flow whose commit happened
 * inside another's group (store_in_group true right after it) knows its
 * writes are on disk once the count has moved on, and lost if the failed
 * count moved first.
 */
uint64_t store_groups_committed(const struct store *s, uint64_t *failed);
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
	const char *scope; /* the part of its world a pass judged it in ("2025-06-02"), or NULL */
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
/* The same, only those last seen in scope (NULL: any), for a pass that judged that part. */
int store_mismatch_clear_unseen_in(struct store *s, const char *kind, const char *scope,
				   int64_t seen_before_ms, int64_t when_ms, unsigned *cleared);
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

/* ---- dossier outbox (the dossier flow) ---------------------------------- */

/*
 * The durable, per-dossier ordered outbox of dossier changes for the
 * national portal (dossier-spec §5, §6). One row per dossier holds its
 * latest mapped header with a version (incremented by every change that
 * brings a header) and the version the portal acknowledged; its progress
 * rows (CapNhatTienDoHoSoMC) are appended in feed order and go
 * pending -> sending -> sent (or dead). A dossier "has work" while its
 * header version is ahead of the acknowledged one or a row is pending.
 *
 * Times are wall milliseconds given by the caller. Operator listings give
 * every "x_ms" also as ISO 8601 "x". Texts are borrowed for the call.
 * Writes return 0, a documented positive code, or -errno as the rest of
 * the store (-ENOSPC: STORE_FULL and, inside store_begin(), the whole
 * group is lost); each is applied entirely or not at all.
 */

/* Bounds on what a caller may hand in (-E2BIG beyond, or clipped where said). */
#define STORE_OUTBOX_KEY_MAX_BYTES    128	    /* mahoso, agency */
#define STORE_OUTBOX_HEADER_MAX_BYTES (1024 * 1024) /* a mapped header */
#define STORE_OUTBOX_ROW_MAX_BYTES    (256 * 1024)  /* a mapped progress row */
#define STORE_OUTBOX_ERROR_MAX_BYTES  1024	    /* last_error, reasons: clipped */
#define STORE_OUTBOX_RAW_MAX_BYTES    (64 * 1024)   /* raw bodies, raw changes: clipped */
#define STORE_OUTBOX_IDS_MAX	      65536	    /* ids in one call */
#define STORE_OUTBOX_DUE_MAX	      10000	    /* dossiers in one store_outbox_due() */
#define STORE_OUTBOX_DUE_ROWS_MAX     1000	    /* rows per dossier in one due() */
/* store_outbox_dossier() gives the newest this many progress rows and events. */
#define STORE_OUTBOX_VIEW_MAX 200

/* One change of the provincial feed, mapped. Texts borrowed. */
struct store_outbox_change {
	const char *mahoso; /* MaHoSo, required */
	const char *agency; /* national agency id, or NULL (the stored one is kept) */
	/* The mapped national header as JSON text, or NULL when this change did
	 * not change it. A header increments the dossier's header_version. */
	const char *header;
	/* The mapped CapNhatTienDoHoSoMC row as JSON text, or NULL when the
	 * change brings no progress row. */
	const char *row;
	int status;	    /* national TrangThaiHoSo 1..10; 0 = unknown (kept) */
	int64_t due_ms;	    /* NgayHenTra; 0 = unknown (the stored one is kept) */
	int64_t changed_ms; /* when the change happened at the province (thoiDiem) */
	int64_t seen_ms;    /* when the daemon read it: orders the queue */
	int64_t seq;	    /* the feed's seq of the change */
	/* The header's DuocThanhToanTrucTuyen, number of DanhSachLePhi entries
	 * and applicant id (DinhDanhCHS, or NULL), when fees_known: the payment
	 * flow reads them; otherwise it reads the header's JSON. */
	bool fees_known;
	int paid_online, fee_lines;
	const char *applicant_id;
};

/* A set of progress row ids (borrowed). Order and repeats do not matter. */
struct store_outbox_ids {
	const int64_t *id;
	size_t n;
};

/*
 * Records change c: upserts the dossier (header stored and header_version
 * incremented when c->header is given; status, agency, due date and
 * changed_ms updated; finished_ms set the first time the status is 3, 7, 9
 * or 10, to c->changed_ms; the dossier's state — active, held, dead — is
 * not changed: a held or dead dossier still collects its changes), appends
 * c->row as a pending progress row, and writes the event "received". A
 * dossier that had no work is queued at c->seen_ms. Meant to run inside the
 * flow's group (store_begin) together with the feed cursor.
 * *progress_id (may be NULL) is the new row's id, 0 when c->row is NULL.
 * Returns 0, -EINVAL (missing mahoso or times, status out of range, a
 * header or row that is not JSON), -E2BIG (beyond the bounds above), or
 * -errno. A refused change leaves nothing and the caller's group goes on;
 * any other failure inside a group loses the whole group (as -ENOSPC does
 * for every write), never half a change.
 */
int store_outbox_enqueue(struct store *s, const struct store_outbox_change *c,
			 int64_t *progress_id);

/*
 * What is due at now_ms: a JSON array (new ref, NULL on error) of at most
 * max_dossiers (capped at STORE_OUTBOX_DUE_MAX; 0 gives []) dossiers that
 * are active, have work, whose next attempt is due, and that have no row
 * in 'sending' (a dossier with a batch in flight, or in doubt after a
 * crash, is not handed out again until store_outbox_progress_acked,
 * _failed, _dead or _resolve settled those rows). Oldest queued first: the
 * queue time is when the dossier's unsent work arrived (its first unsent
 * change's seen_ms) or its back-off time after a failure. Each element:
 *   {"mahoso", "header_version", "header_sent_version", "portal_state"
 *    ("unknown"|"absent"|"present": create or update), "attempts",
 *    "rows_pending" (all of them, may exceed the rows given),
 *    "header": the header, parsed — present only when header_version >
 *        header_sent_version: it must then be sent (and acknowledged)
 *        before any of the rows,
 *    "progress": [{"id", "seq", "row" (parsed), "created_ms" (the change's
 *        seen_ms)}] its first pending rows in
 *        enqueue order, at most max_rows_per_dossier (capped at
 *        STORE_OUTBOX_DUE_ROWS_MAX; 0 gives [])}.
 * The header is not marked in flight: the caller must not send a dossier
 * whose header it already has in flight. Reads through an index: the cost
 * is that of the result (plus the dossiers in flight), not of the backlog.
 */
json_t *store_outbox_due(struct store *s, int64_t now_ms, unsigned max_dossiers,
			 unsigned max_rows_per_dossier);
/* What store_outbox_due_ex() hands out. */
struct store_outbox_due_opts {
	unsigned max_dossiers;	       /* capped at STORE_OUTBOX_DUE_MAX; 0 gives [] */
	unsigned max_rows_per_dossier; /* capped at STORE_OUTBOX_DUE_ROWS_MAX */
	/* Stop once this many headers and rows are handed out (the last
	 * dossier's rows are cut to fit); 0 = no such bound. */
	unsigned max_items;
	/* false: no rows for a dossier whose header goes out as a create
	 * (portal_state not "present"): the portal takes its rows only once
	 * it has the dossier, so they are not read for nothing. */
	bool rows_after_create;
	/* Dossiers for which skip() says true are left out before anything of
	 * them is read, and not counted (those whose header the caller has in
	 * flight); at most STORE_OUTBOX_DUE_SKIP_MAX per call. May be NULL. */
	bool (*skip)(const char *mahoso, void *ud);
	void *ud;
};
#define STORE_OUTBOX_DUE_SKIP_MAX 20000
/* As store_outbox_due(), bounded as o says. */
json_t *store_outbox_due_ex(struct store *s, int64_t now_ms, const struct store_outbox_due_opts *o);

/*
 * Marks rows pending -> sending in batch (the caller's number, kept with
 * the rows), with the event "progress_sent" per dossier. To be committed
 * before the request goes out: rows found 'sending' later (after a crash)
 * are in doubt, never resent blindly. All or nothing: returns 0, 1 when an
 * id is not a pending row (nothing is marked), -EINVAL (empty set, an id
 * <= 0), -E2BIG (more than STORE_OUTBOX_IDS_MAX), or -errno.
 */
int store_outbox_sending(struct store *s, const struct store_outbox_ids *ids, int64_t batch,
			 int64_t now_ms);

/*
 * The portal acknowledged these rows: sending -> sent (sent_ms = now_ms),
 * event "progress_acked" per dossier, and each dossier's attempts and
 * failure reason cleared. Ids not in 'sending' are left alone (an
 * acknowledgement repeated after a crash changes nothing). Returns 0 or -errno.
 */
int store_outbox_progress_acked(struct store *s, const struct store_outbox_ids *ids,
				int64_t now_ms);

/*
 * The portal acknowledged header version (as handed out by due()):
 * header_sent_version becomes version (never lowered), portal_state
 * "present", attempts 0, event "header_acked". When the header changed
 * while it was being sent (header_version > version), the dossier keeps
 * its work and due() hands out the newer header. Returns 0, 1 when mahoso
 * is unknown, -EINVAL when version is not 1..header_version, or -errno.
 */
int store_outbox_header_acked(struct store *s, const char *mahoso, int64_t version, int64_t now_ms);

/*
 * What TraCuuHoSo said about mahoso: state is "present", "absent" or
 * "unknown". "absent" also forgets the acknowledged header version (the
 * portal does not have it: the header goes out again, as a create).
 * Returns 0, 1 when mahoso is unknown, -EINVAL for another state, or -errno.
 */
int store_outbox_portal_state(struct store *s, const char *mahoso, const char *state,
			      int64_t now_ms);

/*
 * A request for mahoso failed and is to be retried at next_attempt_ms: its
 * rows among ids go sending -> pending (ids may be empty: a header
 * failure), the dossier's attempts + 1, last_error = error (clipped),
 * last_response = raw (the body, clipped; may be NULL), its failure reason
 * (error up to the first ':') counted in store_outbox_queue(), event
 * "error". Returns 0, 1 when mahoso is unknown, -EINVAL (no error text, an
 * id <= 0), or -errno.
 */
int store_outbox_failed(struct store *s, const char *mahoso, const struct store_outbox_ids *ids,
			int64_t next_attempt_ms, const char *error, const char *raw,
			int64_t now_ms);

/*
 * Something of mahoso failed for good: what is "header" (the current
 * header version), "progress" (its rows among ids, pending or sending,
 * become 'dead') or "change" (a change that could not be mapped; raw is
 * the change, and a dossier never seen is created for it). The dossier
 * becomes 'dead' (a held one stays held) — nothing more goes out for it
 * until an operator retries or drops the dead letter, while later changes
 * still enqueue — one dead letter records it, with the events
 * "unmappable" (what = "change") and "dead". *letter_id (may be NULL) is
 * the letter's id. Returns 0, -EINVAL (unknown what, no reason, ids with
 * what other than "progress"), or -errno.
 */
int store_outbox_dead(struct store *s, const char *mahoso, const char *what,
		      const struct store_outbox_ids *ids, const char *reason, const char *raw,
		      int64_t now_ms, int64_t *letter_id);

/*
 * The rows left in 'sending' (at start, after a crash): a JSON array (new
 * ref, NULL on error) of {"mahoso", "ids": [..], "rows": [parsed rows, in
 * the order of ids], "batch" (the newest)}, by mahoso, ids ascending.
 * Bounded by what the flow had in flight.
 */
json_t *store_outbox_in_doubt(struct store *s);

/*
 * Settles rows in doubt after TraCuuHoSo: sent (present at the portal)
 * sending -> sent; resend (absent) sending -> pending, due again at once.
 * Event "resolved" per dossier. Either set may be NULL or empty; ids not
 * in 'sending' are left alone. Returns 0, -EINVAL, -E2BIG, or -errno.
 */
int store_outbox_resolve(struct store *s, const struct store_outbox_ids *sent,
			 const struct store_outbox_ids *resend, int64_t now_ms);

/*
 * The queue for `lienthongctl` and metrics, from counters kept in the same
 * transactions as the rows (no scan of the backlog): {"depth" (dossiers
 * with work, any state), "rows_pending", "rows_sending", "dossiers"
 * (total), "dead_letters" (open), "oldest_age_s" and "oldest_ms"/"oldest"
 * (how long the longest-waiting active dossier has had unsent work; null
 * when none), "by_state": {"active" (active with work), "held", "dead"
 * (all so marked)}, "by_reason": {failure reason: dossiers whose latest
 * attempt failed with it}, "at_ms"/"at"}. New ref, NULL on error.
 */
json_t *store_outbox_queue(struct store *s, int64_t now_ms);

/*
 * One dossier for the operator: every column of its row (times as "x_ms"
 * and ISO "x", "header" parsed), "progress": its newest
 * STORE_OUTBOX_VIEW_MAX rows oldest first (state, batch, attempts, times,
 * "row" parsed) with "progress_total", "events": its newest
 * STORE_OUTBOX_VIEW_MAX events, newest last ("detail" parsed) with
 * "events_total", and "dead_letters": all of its letters, with raw.
 * Returns 0 with *out (new ref), 1 when unknown, -EINVAL, or -errno.
 */
int store_outbox_dossier(struct store *s, const char *mahoso, json_t **out);

/*
 * Dead letters in state ("dead", "retried", "dropped"; NULL = all), newest
 * first, at most limit (0 = all): {"id", "mahoso", "what", "progress_id"
 * (the first row), "rows" (how many), "version" (a header's), "reason",
 * "raw_bytes" (raw itself is in store_outbox_dossier()), "state",
 * "closed_by", "note", times}. New ref, NULL on error or unknown state.
 */
json_t *store_outbox_deadletters(struct store *s, const char *state, unsigned limit);

/*
 * Retries dead letter letter_id, or every open one when 0: its rows go
 * dead -> pending, the letter "retried" by actor, attempts and back-off
 * reset (due at now_ms), event "retried"; the dossier becomes active again
 * once none of its letters is open (a held one stays held). A retried
 * "change" letter only releases the dossier: mapping the raw change again
 * is the caller's. *retried (may be NULL) counts the letters. Returns 0, 1
 * when the letter (or, for 0, any letter) is not open, -ENOENT for an
 * unknown id, -EINVAL, or -errno.
 */
int store_outbox_retry(struct store *s, int64_t letter_id, const char *actor, int64_t now_ms,
		       unsigned *retried);

/*
 * Gives up on open dead letter letter_id: "dropped" by actor with reason
 * (the note); its rows stay dead and are never sent; a dropped header
 * version counts as sent (a later header goes out as usual). The dossier
 * becomes active again once none of its letters is open. Event "dropped".
 * The caller audits it. Returns 0, 1 when the letter is not open, -ENOENT
 * for an unknown id, -EINVAL (no actor or reason), or -errno.
 */
int store_outbox_drop(struct store *s, int64_t letter_id, const char *actor, const char *reason,
		      int64_t now_ms);

/*
 * An operator holds a dossier (nothing goes out, changes still enqueue) or
 * releases it (active again, or dead while a dead letter is open). Events
 * "held" / "released" with actor. Returns 0, 1 when it already is (not)
 * held, -ENOENT for an unknown dossier, -EINVAL, or -errno.
 */
int store_outbox_hold(struct store *s, const char *mahoso, const char *actor, int64_t now_ms);
int store_outbox_release(struct store *s, const char *mahoso, const char *actor, int64_t now_ms);

/*
 * Deadlines. Overdue: dossiers not finished whose due date is before now_ms,
 * most overdue first, whatever their outbox state (the deadline is the
 * office's, not the portal's): {"mahoso", "agency", "status", "state",
 * "due_ms"/"due", "overdue_s", "received", "changed"}. Late: dossiers
 * finished after their due date, finished at or after since_ms, oldest
 * first: {"mahoso", "agency", "status", "due", "finished", "late_s"}. At
 * most limit rows (0 = all). New ref, NULL on error.
 */
json_t *store_outbox_overdue(struct store *s, int64_t now_ms, unsigned limit);
json_t *store_outbox_late(struct store *s, int64_t since_ms, unsigned limit);

/* ---- payments (the payment flow, payment-spec) ------------------------- */

/* A platform transaction as received (a list row or a QUERY answer). */
struct store_pay_tx {
	const char *ref;    /* MaThamChieu (required) */
	const char *txid;   /* MaGiaoDich, or NULL */
	const char *mahoso; /* or NULL */
	int64_t amount;	    /* VND */
	int state;	    /* TrangThaiGD: 1, 3, 4 */
	int64_t at_ms;	    /* ThoiGianGD */
	bool verified;	    /* its MaXacThuc verified */
	const char *source; /* "list", "query", "file" */
	const char *raw;    /* as received, or NULL */
};

/* A provincial fee record as received. */
struct store_fee_record {
	const char *ref;    /* maThamChieu, or NULL (paid at the desk) */
	const char *mahoso; /* required */
	int64_t amount;
	const char *state;  /* DA_THANH_TOAN, CHUA_THANH_TOAN, CHO_XAC_NHAN */
	const char *method; /* TRUC_TUYEN, TIEN_MAT, CHUYEN_KHOAN */
	int64_t at_ms;
	const char *raw;
};

/*
 * Records a transaction (one per MaThamChieu and MaGiaoDich) or a fee
 * record (one per dossier and MaThamChieu), replacing what was stored for
 * it (a state moves on; a transaction's dossier code is kept when the new
 * sighting, a QUERY answer, has none). Run inside the caller's group for a page. Returns
 * 0, -EINVAL (a required field missing, an unknown state or method, a
 * text over 4 KB but raw), or -errno.
 */
int store_pay_tx_put(struct store *s, const struct store_pay_tx *t, int64_t seen_ms);
int store_fee_put(struct store *s, const struct store_fee_record *f, int64_t seen_ms);

/*
 * After a day's list (fees false) or fee records (fees true) were read
 * whole and stored: removes that day's (yyyymmdd) transactions, except
 * QUERY answers, or fee records last seen before seen_before_ms — what the
 * source no longer holds (a row corrected, a damaged row sent right).
 * Inside the caller's group. *removed (may be NULL) counts them. Returns 0
 * or -errno.
 */
int store_pay_prune(struct store *s, bool fees, int64_t day, int64_t seen_before_ms,
		    unsigned *removed);

/*
 * The payment attempts still waiting for a confirmation that were made
 * between from_ms and to_ms (a fee record CHO_XAC_NHAN, or a transaction
 * the platform listed as pending, with no trusted success or failure of
 * the same MaThamChieu), oldest first, at most limit (0: all), as
 * [{"ref": MaThamChieu, "at_ms": when, "mahoso": its dossier (when known)}]:
 * what the payment flow asks the
 * platform about (QUERY). New ref; NULL on a store error.
 */
json_t *store_pay_pending(struct store *s, int64_t from_ms, int64_t to_ms, unsigned limit);

/* The Asia/Ho_Chi_Minh day of wall_ms as yyyymmdd (the unit of a reconciliation). */
int64_t store_pay_day(int64_t wall_ms);

/*
 * What one reconciliation reads, loaded from the store file at path on
 * read-only connections of its own (any thread): the transactions and fee
 * records of days from..to (yyyymmdd), in one snapshot, and, for the
 * dossiers of their successful payments, what the portal acknowledged
 * (portal_fees), probed at the same time on a second connection and
 * thread as the successful payments are read.
 * in is ready for reconcile(); its strings live
 * in the set, whose snapshot stays open until store_pay_set_free() (the
 * reports' descriptions of dossiers read the same state). Returns 0 with
 * *out, or -errno with *err (caller frees).
 */
struct store_pay_set;
struct rec_input;
int store_pay_load(const char *path, int64_t from_day, int64_t to_day, struct store_pay_set **out,
		   char **err);
/* The loaded arrays (borrowed from set) as reconcile() reads them. */
const struct rec_input *store_pay_input(const struct store_pay_set *set);
/*
 * What the set's snapshot knows of dossier mahoso, for the office's
 * reports: its agency (the unit that processes it) and the applicant's
 * identifier (DinhDanhCHS) of its latest header; each NULL when unknown;
 * the strings live in the set.
 * Same thread as the load. Returns 0 (also for an unknown dossier), or
 * -EIO.
 */
int store_pay_describe(struct store_pay_set *set, const char *mahoso, const char **agency,
		       const char **applicant);
void store_pay_set_free(struct store_pay_set *set);

/* The audit trail: who did what to which thing. */
int store_audit_add(struct store *s, const char *actor, const char *action, const char *target,
		    const char *detail);
json_t *store_audit_list(struct store *s, unsigned limit);

#endif
