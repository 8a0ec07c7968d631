/*
 * store_int: what the store's source files (store.c, store_catalog.c,
 * store_outbox.c) share
 * and nothing else may see: the struct store, the ids of the prepared
 * statements, and the helpers that run a statement with the store's error
 * mapping, bracket a multi-statement operation, and turn rows into JSON.
 * Only store*.c include this header (it includes sqlite3.h).
 *
 * The contracts of these helpers are the ones store.c's header comment
 * describes for every write: a failure is mapped by store_fail() (health,
 * log, abort of the caller's batch), and a write inside an aborted batch is
 * refused by store_write_check() before it reaches SQLite.
 */
#ifndef LT_STORE_INT_H
#define LT_STORE_INT_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "store.h"

/* Statements of store.c (SQL in st_sql[] there). */
enum st_id {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SAVEPOINT,
	ST_RELEASE,
	ST_ROLLBACK_TO,
	ST_PROBE_FILL,
	ST_PROBE_EMPTY,
	ST_CURSOR_GET,
	ST_CURSOR_SET,
	ST_RUN_BEGIN,
	ST_RUN_END,
	ST_RUNS_ALL,
	ST_RUNS_FLOW,
	ST_MM_FIND,
	ST_MM_INSERT,
	ST_MM_REFRESH,
	ST_MM_REOPEN,
	ST_MM_RESOLVE,
	ST_MM_EVENT,
	ST_MM_STATE_OF,
	ST_MM_SET_STATE,
	ST_MM_EVENTS,
	ST_MM_UNSEEN_EVENTS,
	ST_MM_UNSEEN_RESOLVE,
	ST_MM_GET,
	ST_MM_COUNTS,
	ST_AUDIT_ADD,
	ST_AUDIT_LIST,
	ST__COUNT
};

/* Statements of store_catalog.c (SQL in cat_sql[] there). */
enum stc_id {
	STC_PROC_FIND,
	STC_PROC_INSERT,
	STC_PROC_SEEN,
	STC_PROC_CHANGE,
	STC_VERSION_ADD,
	STC_PROC_WITHDRAW,
	STC_VERSION_WITHDRAWN,
	STC_PROC_DELIVERED,
	STC_PROC_INDEX,
	STC_PROC_GET,
	STC_PROV_GET,
	STC_HISTORY,
	STC_COUNTS,
	STC_LAST_CHANGES,
	STC_PROV_PUT,
	STC_PROV_CODES,
	STC_PROV_DELETE,
	STC__COUNT
};

/* Statements of store_outbox.c (SQL in ob_sql[] there). */
enum sto_id {
	STO_UPSERT,
	STO_ROW_ADD,
	STO_EVENT_RECEIVED,
	STO_EVENT,
	STO_DUE,
	STO_DUE_ROWS,
	STO_MOVE_DOSSIERS,
	STO_MOVE_EVENTS,
	STO_MOVE_ROWS,
	STO_HEADER_ACKED,
	STO_PORTAL_FEES,
	STO_PORTAL_FEES_GONE,
	STO_FIND,
	STO_PORTAL_STATE,
	STO_FAILED,
	STO_DEAD_DOSSIER,
	STO_DEAD_LETTER,
	STO_IN_DOUBT,
	STO_COUNTS,
	STO_OLDEST,
	STO_DOSSIER_GET,
	STO_DOSSIER_ROWS,
	STO_DOSSIER_ROWS_COUNT,
	STO_DOSSIER_EVENTS,
	STO_DOSSIER_EVENTS_COUNT,
	STO_DOSSIER_LETTERS,
	STO_LETTERS_ALL,
	STO_LETTERS_STATE,
	STO_LETTER_GET,
	STO_RETRY_DOSSIERS,
	STO_RETRY_EVENTS,
	STO_RETRY_ROWS,
	STO_RETRY_LETTERS,
	STO_DROP_DOSSIER,
	STO_DROP_LETTER,
	STO_HOLD,
	STO_RELEASE,
	STO_OVERDUE,
	STO_LATE,
	STO__COUNT
};

/* Statements of store_payment.c (SQL in pay_sql[] there). */
enum stp_id { STP_TX_PUT, STP_FEE_PUT, STP_PENDING, STP_TX_PRUNE, STP_FEE_PRUNE, STP__COUNT };

struct store {
	sqlite3 *db;		       /* owned */
	char *path;		       /* owned */
	sqlite3_stmt *st[ST__COUNT];   /* owned */
	sqlite3_stmt *cat[STC__COUNT]; /* owned */
	sqlite3_stmt *ob[STO__COUNT];  /* owned */
	sqlite3_stmt *pay[STP__COUNT]; /* owned */
	int version;
	int64_t page_size;
	int64_t default_max_pages; /* max_page_count before we limited it */
	int64_t max_size_bytes;	   /* 0 = unlimited */
	unsigned depth;		   /* store_begin() nesting */
	uint64_t groups_committed; /* outermost groups committed (store_groups_committed) */
	uint64_t groups_failed;	   /* ... and lost */
	int tx_err;		   /* why the explicit transaction was aborted, or 0 */
	enum store_health health;
	char *why; /* owned; NULL when health is STORE_OK */
	struct complaint full_complaint;
	struct complaint error_complaint;
	struct store_ckpt *ckpt; /* the checkpoint thread, or NULL (SQLite's own) */
};

/*
 * Prepares n statements (persistent) into st[]. On failure *err names the
 * file and the statement (caller frees); statements already prepared stay
 * in st[] for store_close() to finalize. Returns 0 or -EIO.
 */
int store_prepare(struct store *s, const char *const *sql, sqlite3_stmt **st, size_t n, char **err);
/* Prepares the statements of store_catalog.c into s->cat (at open). */
int store_catalog_prepare(struct store *s, char **err);
/* Prepares the statements of store_outbox.c into s->ob (at open). */
int store_outbox_prepare(struct store *s, char **err);
/* Prepares the statements of store_payment.c into s->pay (at open). */
int store_payment_prepare(struct store *s, char **err);

/*
 * Maps the SQLite result rc of operation op to a negative errno, updates the
 * health, logs, and aborts the caller's batch when the failure lost a write.
 * st is the failed statement (or NULL): it is reset here.
 */
int store_fail(struct store *s, sqlite3_stmt *st, int rc, const char *op);
/* Resets st and clears its bindings: nothing stays pending between calls. */
void store_stmt_done(sqlite3_stmt *st);
/*
 * Binds the arguments described by types ('i' int64_t, 't' text or NULL)
 * to st in order and runs it to completion. Returns 0 or -errno.
 */
int store_stmt_runv(struct store *s, sqlite3_stmt *st, const char *op, const char *types,
		    va_list ap);
/* Runs query st (bound as above): its rows (store_row_json) as an array, NULL on error. */
json_t *store_stmt_listv(struct store *s, sqlite3_stmt *st, const char *op, const char *types,
			 va_list ap);

/* Writes are refused while an aborted explicit transaction is still open. */
/* Ends the explicit transaction after a failure: the batch is lost (rolled
 * back at once; later writes and commits of it return err). */
void store_abort_tx(struct store *s, int err);
int store_write_check(const struct store *s);
/*
 * Brackets an operation of several statements: its own transaction in
 * autocommit mode, a savepoint inside the caller's transaction. store_op_end
 * keeps the writes when r >= 0 and returns r (or the commit's error).
 */
int store_op_begin(struct store *s, const char *op);
int store_op_end(struct store *s, int r, const char *op);

/* Sets o[key] = v (stolen); aborts on failure (out of memory). */
void store_json_put(json_t *o, const char *key, json_t *v);
/* n bytes of text as a JSON string, invalid UTF-8 replaced by U+FFFD. */
json_t *store_json_text(const unsigned char *p, size_t n);
/* The current row of st as an object of every column; "*_ms" also in ISO 8601. */
json_t *store_row_json(sqlite3_stmt *st);
/* A listing's limit for SQL: 0 (all) becomes -1. */
int64_t store_sql_limit(unsigned limit);

#endif
