/*
 * store_outbox: the dossier outbox in the store — per dossier the latest
 * mapped header with its versions, the progress rows in feed order, the
 * dead letters and the timeline. Contracts in store.h; tables, indexes and
 * triggers in store.c's migration 3; errors, transactions and health as in
 * store.c (store_int.h).
 *
 * It is built for a flow of 5,000 changes a second in grouped commits and
 * a backlog of a million rows, so nothing here reads in proportion to the
 * backlog:
 *  - enqueue is two statements (dossier upsert, row insert), and no
 *    savepoint inside the caller's group (see group_lost());
 *  - the routine timeline (a change received, a batch sent, a batch
 *    acknowledged) is read from the progress rows, which say when and in
 *    which batch, rather than written as events: dossier_events has only
 *    what the rows cannot tell (failures, dead letters, operators);
 *  - the dossier row carries the counts of its pending and sending rows and
 *    has_work, updated by the same statements that move rows, so that
 *    "what is due" is a walk of a partial index (dossiers with work, by
 *    state and queue time) that stops at its LIMIT, and a dossier's rows
 *    are one index range;
 *  - the operators' totals are counters in outbox_counts, kept by triggers
 *    on dossiers and dead_letters in the writing transaction: a status
 *    call reads a dozen rows, not a million;
 *  - moving rows (sending, acked, failed, resolved, dead) is two or three
 *    set-based statements per call whatever the number of ids, the ids
 *    handed to SQLite as one JSON array (json_each).
 *
 * The queue order. A dossier is queued at next_attempt_ms: when work
 * arrives on a dossier that had none, that is the change's seen_ms (so the
 * backlog drains first-come first-served and a dossier that keeps
 * changing is not pushed back by every change); after a failure it is the
 * back-off the caller gives. A dossier with rows in 'sending' is skipped:
 * one batch per dossier in flight, and rows in doubt after a crash stay
 * out until resolved.
 */
#include "store_int.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsontext.h"
#include "util.h"

/* A failure reason (the part of an error before ':') is at most this long. */
#define OB_REASON_MAX_BYTES 48

/* The filter of the rows a move applies to: ids, from states, one dossier or all. */
#define OB_IDS	 "(SELECT value FROM json_each(?1))"
#define OB_WHERE "id IN " OB_IDS " AND state IN (?3, ?4) AND (?5 IS NULL OR dossier_id = ?5)"
/* has_work as it follows from the columns, with rows_pending shifted by d. */
#define OB_WORK(d) "(header_version > header_sent_version OR rows_pending + " d " > 0)"
/* A dossier leaves 'dead' when no letter (but those of condition c) is open. */
#define OB_UNDEAD(c)                                                                               \
	"iif(state = 'dead' AND NOT EXISTS (SELECT 1 FROM dead_letters AS o WHERE "                \
	"o.dossier_id = dossiers.id AND o.state = 'dead' AND " c "), 'active', state)"

static const char *const ob_sql[STO__COUNT] = {
	/*
	 * ?1 mahoso ?2 agency ?3 header ?4 status ?5 due ?6 changed ?7 seen
	 * ?8 the progress row or NULL ?9 ?10 ?11 the header's payment facts and
	 * applicant id, or NULL.
	 * The VALUES are those of a new dossier;
	 * an existing one takes the deltas from them (excluded.*). A row that
	 * is not JSON makes rows_pending NULL, which NOT NULL refuses: this
	 * statement is the one that refuses a change (see enqueue).
	 */
	[STO_UPSERT] =
		"INSERT INTO dossiers (mahoso, has_work, state, next_attempt_ms, work_since_ms, "
		"header_version, header_sent_version, rows_pending, rows_sending, portal_state, "
		"attempts, status, due_ms, finished_ms, received_ms, changed_ms, updated_ms, "
		"agency, header, paid_online, fee_lines, applicant_id) VALUES (?1, ?3 IS NOT NULL "
		"OR ?8 IS NOT "
		"NULL, 'active', ?7, iif(?3 IS NOT NULL OR ?8 IS NOT NULL, ?7, NULL), ?3 IS NOT "
		"NULL, 0, iif(?8 IS NULL, 0, iif(json_valid(?8), 1, NULL)), 0, 'unknown', 0, ?4, "
		"?5, iif(?4 IN (3, 7, 9, 10), ?6, NULL), ?7, ?6, ?7, ?2, ?3, ?9, ?10, ?11) "
		"ON CONFLICT (mahoso) DO UPDATE SET "
		"has_work = has_work OR excluded.has_work, "
		"work_since_ms = iif(has_work, work_since_ms, excluded.work_since_ms), "
		"next_attempt_ms = iif(has_work OR NOT excluded.has_work, next_attempt_ms, "
		"max(next_attempt_ms, excluded.next_attempt_ms)), "
		"header_version = header_version + excluded.header_version, "
		"rows_pending = rows_pending + excluded.rows_pending, "
		"status = coalesce(excluded.status, status), "
		"due_ms = coalesce(excluded.due_ms, due_ms), "
		"finished_ms = coalesce(finished_ms, excluded.finished_ms), "
		"changed_ms = excluded.changed_ms, updated_ms = excluded.updated_ms, "
		"agency = coalesce(excluded.agency, agency), "
		"header = coalesce(excluded.header, header), "
		"paid_online = iif(excluded.header IS NULL, paid_online, excluded.paid_online), "
		"fee_lines = iif(excluded.header IS NULL, fee_lines, excluded.fee_lines), "
		"applicant_id = iif(excluded.header IS NULL, applicant_id, excluded.applicant_id)",
	/* ?5 header version of the change (NULL: none) ?6 status */
	[STO_ROW_ADD] = "INSERT INTO progress (dossier_id, seq, state, created_ms, row, "
			"header_version, status) VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6)",
	[STO_EVENT_RECEIVED] =
		"INSERT INTO dossier_events (dossier_id, at_ms, event, detail) VALUES (?1, ?2, "
		"'received', json_object('seq', ?3, 'status', ?4, 'header_version', ?5, "
		"'progress_id', ?6))",
	[STO_EVENT] = "INSERT INTO dossier_events (dossier_id, at_ms, event, detail) "
		      "VALUES (?1, ?2, ?3, ?4)",
	/* INDEXED BY: the plan must not depend on statistics. */
	[STO_DUE] = "SELECT id, mahoso, header_version, header_sent_version, portal_state, "
		    "attempts, rows_pending, iif(header_version > header_sent_version, header, "
		    "NULL) FROM dossiers INDEXED BY dossiers_due WHERE has_work = 1 AND "
		    "state = 'active' AND next_attempt_ms <= ?1 AND rows_sending = 0 "
		    "ORDER BY next_attempt_ms LIMIT ?2",
	[STO_DUE_ROWS] = "SELECT id, seq, row, created_ms FROM progress WHERE dossier_id = ?1 AND "
			 "state = 'pending' ORDER BY id LIMIT ?2",

	/*
	 * Moving rows: ?1 ids (JSON array) ?2 to-state ?3 ?4 from-states ?5
	 * dossier id or NULL ?6 now. Run in this order — dossiers, events,
	 * rows — since the first two read the rows' states before the move.
	 * ?7: a success (attempts and failure reason cleared).
	 */
	[STO_MOVE_DOSSIERS] =
		"UPDATE dossiers SET rows_pending = rows_pending + c.dp, "
		"rows_sending = rows_sending + c.ds, has_work = " OB_WORK(
			"c.dp") ", "
				"work_since_ms = iif(" OB_WORK(
					"c.dp") ", coalesce(work_since_ms, ?6), NULL), "
						"attempts = iif(?7, 0, attempts), reason = iif(?7, "
						"NULL, reason), "
						"updated_ms = ?6 FROM (SELECT dossier_id, "
						"sum((?2 = 'pending') - (state = 'pending')) AS "
						"dp, "
						"sum((?2 = 'sending') - (state = 'sending')) AS ds "
						"FROM progress WHERE " OB_WHERE
						" GROUP BY dossier_id) AS c "
						"WHERE dossiers.id = c.dossier_id",
	/* ?2 event, ?7 JSON object text of further detail, or NULL. */
	[STO_MOVE_EVENTS] =
		"INSERT INTO dossier_events (dossier_id, at_ms, event, detail) "
		"SELECT dossier_id, ?6, ?2, json_patch(coalesce(?7, '{}'), "
		"json_object('ids', json_group_array(id))) FROM progress WHERE " OB_WHERE
		" GROUP BY dossier_id ORDER BY min(id)",
	/* ?7 batch or NULL, ?8 dead letter or NULL. */
	[STO_MOVE_ROWS] = "UPDATE progress SET state = ?2, batch = coalesce(?7, batch), "
			  "attempts = attempts + (?2 = 'sending'), "
			  "sending_ms = iif(?2 = 'sending', ?6, sending_ms), "
			  "sent_ms = iif(?2 = 'sent', ?6, sent_ms), "
			  "letter_id = coalesce(?8, letter_id) WHERE " OB_WHERE,

	[STO_HEADER_ACKED] =
		"UPDATE dossiers SET header_sent_version = max(header_sent_version, ?2), "
		"portal_state = 'present', attempts = 0, reason = NULL, "
		"has_work = (header_version > max(header_sent_version, ?2) OR rows_pending > 0), "
		"work_since_ms = iif(header_version > max(header_sent_version, ?2) OR "
		"rows_pending > 0, coalesce(work_since_ms, ?3), NULL), updated_ms = ?3 "
		"WHERE mahoso = ?1 AND ?2 BETWEEN 1 AND header_version",
	/* the payment facts of the header the portal now has (portal_fees) */
	[STO_PORTAL_FEES] =
		"INSERT INTO portal_fees (mahoso, paid_online, fee_lines) SELECT mahoso, "
		"coalesce(paid_online, json_extract(header, '$.DuocThanhToanTrucTuyen'), 0), "
		"coalesce(fee_lines, json_array_length(header, '$.DanhSachLePhi'), 0) FROM "
		"dossiers WHERE mahoso = ?1 AND header IS NOT NULL ON CONFLICT (mahoso) DO UPDATE "
		"SET paid_online = excluded.paid_online, fee_lines = excluded.fee_lines",
	[STO_PORTAL_FEES_GONE] = "DELETE FROM portal_fees WHERE mahoso = ?1",
	[STO_FIND] = "SELECT id, header_version FROM dossiers WHERE mahoso = ?1",
	[STO_PORTAL_STATE] =
		"UPDATE dossiers SET portal_state = ?2, "
		"header_sent_version = iif(?2 = 'absent', 0, header_sent_version), "
		"has_work = (header_version > iif(?2 = 'absent', 0, header_sent_version) OR "
		"rows_pending > 0), "
		"work_since_ms = iif(header_version > iif(?2 = 'absent', 0, header_sent_version) "
		"OR rows_pending > 0, coalesce(work_since_ms, ?3), NULL), updated_ms = ?3 "
		"WHERE mahoso = ?1",
	[STO_FAILED] = "UPDATE dossiers SET attempts = attempts + 1, next_attempt_ms = ?2, "
		       "last_error = ?3, last_response = ?4, reason = ?5, updated_ms = ?6 "
		       "WHERE mahoso = ?1 RETURNING id, attempts",
	/* A change that cannot be mapped may be the first one of its dossier. */
	[STO_DEAD_DOSSIER] =
		"INSERT INTO dossiers (mahoso, state, received_ms, changed_ms, updated_ms, "
		"reason, last_error, last_response) VALUES (?1, 'dead', ?2, ?2, ?2, ?3, ?4, ?5) "
		"ON CONFLICT (mahoso) DO UPDATE SET state = iif(state = 'held', 'held', 'dead'), "
		"reason = excluded.reason, last_error = excluded.last_error, "
		"last_response = excluded.last_response, updated_ms = excluded.updated_ms "
		"RETURNING id, header_version",
	/* ?1 ids (JSON) ?2 dossier ?3 what ?4 header version ?5 reason ?6 raw ?7 now */
	[STO_DEAD_LETTER] =
		"INSERT INTO dead_letters (dossier_id, what, progress_id, rows, version, reason, "
		"raw, at_ms, state) SELECT ?2, ?3, min(id), count(*), ?4, ?5, ?6, ?7, 'dead' "
		"FROM progress WHERE id IN " OB_IDS " AND dossier_id = ?2 AND "
		"state IN ('pending', 'sending')",
	/* The literal IN term lets SQLite use the partial index progress_open. */
	[STO_IN_DOUBT] = "SELECT d.mahoso, p.id, p.batch, p.row FROM progress AS p "
			 "JOIN dossiers AS d ON d.id = p.dossier_id WHERE p.state = 'sending' "
			 "AND p.state IN ('pending', 'sending') ORDER BY d.mahoso, p.id",

	[STO_COUNTS] = "SELECT name, n FROM outbox_counts",
	[STO_OLDEST] = "SELECT work_since_ms FROM dossiers INDEXED BY dossiers_work "
		       "WHERE has_work = 1 AND state = 'active' AND work_since_ms IS NOT NULL "
		       "ORDER BY work_since_ms LIMIT 1",

	[STO_DOSSIER_GET] =
		"SELECT id, mahoso, agency, state, portal_state, status, has_work, "
		"header_version, header_sent_version, rows_pending, rows_sending, attempts, "
		"next_attempt_ms, work_since_ms, due_ms, finished_ms, received_ms, changed_ms, "
		"updated_ms, reason, last_error, last_response, header FROM dossiers "
		"WHERE mahoso = ?1",
	[STO_DOSSIER_ROWS] = "SELECT id, seq, state, batch, attempts, letter_id, created_ms, "
			     "sent_ms, row FROM progress WHERE dossier_id = ?1 ORDER BY id DESC "
			     "LIMIT ?2",
	[STO_DOSSIER_ROWS_COUNT] = "SELECT count(*) FROM progress WHERE dossier_id = ?1",
	/*
	 * The timeline: the stored events, and those the progress rows tell
	 * (received, progress_sent per batch, progress_acked per batch). At
	 * one time, a row's arrival comes first, then its sending, the stored
	 * events, its acknowledgement (k), each in row or event id order.
	 */
	[STO_DOSSIER_EVENTS] =
		"SELECT at_ms, event, detail FROM ("
		"SELECT at_ms, 2 AS k, id AS o, event, detail FROM dossier_events "
		"WHERE dossier_id = ?1 "
		"UNION ALL SELECT created_ms, 0, id, 'received', json_object('seq', seq, "
		"'status', status, 'header_version', header_version, 'progress_id', id) "
		"FROM progress WHERE dossier_id = ?1 "
		"UNION ALL SELECT min(sending_ms), 1, min(id), 'progress_sent', "
		"json_object('batch', batch, 'ids', json_group_array(id)) FROM progress "
		"WHERE dossier_id = ?1 AND sending_ms IS NOT NULL GROUP BY batch "
		"UNION ALL SELECT max(sent_ms), 3, min(id), 'progress_acked', "
		"json_object('ids', json_group_array(id)) FROM progress "
		"WHERE dossier_id = ?1 AND state = 'sent' GROUP BY batch) "
		"ORDER BY at_ms DESC, k DESC, o DESC LIMIT ?2",
	[STO_DOSSIER_EVENTS_COUNT] =
		"SELECT (SELECT count(*) FROM dossier_events WHERE dossier_id = ?1) + "
		"(SELECT count(*) + count(DISTINCT iif(sending_ms IS NULL, NULL, "
		"coalesce(batch, -1))) + count(DISTINCT iif(state = 'sent', coalesce(batch, -1), "
		"NULL)) FROM progress WHERE dossier_id = ?1)",
	[STO_DOSSIER_LETTERS] = "SELECT id, what, progress_id, rows, version, reason, raw, at_ms, "
				"state, closed_by, note, closed_ms FROM dead_letters "
				"WHERE dossier_id = ?1 ORDER BY id",

#define OB_LETTER_COLUMNS                                                                          \
	"l.id, d.mahoso, l.what, l.progress_id, l.rows, l.version, l.reason, "                     \
	"length(CAST(l.raw AS BLOB)) AS raw_bytes, l.at_ms, l.state, l.closed_by, l.note, "        \
	"l.closed_ms FROM dead_letters AS l JOIN dossiers AS d ON d.id = l.dossier_id"
	[STO_LETTERS_ALL] = "SELECT " OB_LETTER_COLUMNS " ORDER BY l.id DESC LIMIT ?1",
	[STO_LETTERS_STATE] = "SELECT " OB_LETTER_COLUMNS " WHERE l.state = ?2 "
			      "ORDER BY l.id DESC LIMIT ?1",
	[STO_LETTER_GET] = "SELECT dossier_id, what, state, version FROM dead_letters "
			   "WHERE id = ?1",

	/*
	 * Retrying letters ?1..?2 (one, or all) at ?3 by ?4, in this order:
	 * dossiers and events read the letters and rows before they change.
	 */
	[STO_RETRY_DOSSIERS] =
		"UPDATE dossiers SET rows_pending = rows_pending + c.k, "
		"has_work = " OB_WORK(
			"c.k") ", "
			       "work_since_ms = iif(" OB_WORK(
				       "c.k") ", coalesce(work_since_ms, ?3), NULL), "
					      "next_attempt_ms = ?3, attempts = 0, reason = NULL, "
					      "updated_ms = ?3, "
					      "state = " OB_UNDEAD(
						      "o.id NOT BETWEEN ?1 AND ?2") " "
										    "FROM (SELECT "
										    "l.dossier_id, "
										    "sum((SELECT "
										    "count(*) FROM "
										    "progress AS p "
										    "WHERE "
										    "p.letter_id = "
										    "l.id AND "
										    "p.state = "
										    "'dead')) AS k "
										    "FROM "
										    "dead_letters "
										    "AS l "
										    "WHERE l.state "
										    "= 'dead' AND "
										    "l.id BETWEEN "
										    "?1 AND ?2 "
										    "GROUP BY "
										    "l.dossier_id) "
										    "AS c "
										    "WHERE "
										    "dossiers.id = "
										    "c.dossier_id",
	[STO_RETRY_EVENTS] =
		"INSERT INTO dossier_events (dossier_id, at_ms, event, detail) SELECT dossier_id, "
		"?3, 'retried', json_object('by', ?4, 'letters', json_group_array(id)) "
		"FROM dead_letters WHERE state = 'dead' AND id BETWEEN ?1 AND ?2 "
		"GROUP BY dossier_id",
	[STO_RETRY_ROWS] = "UPDATE progress SET state = 'pending' WHERE state = 'dead' AND "
			   "letter_id IN (SELECT id FROM dead_letters WHERE state = 'dead' AND "
			   "id BETWEEN ?1 AND ?2)",
	[STO_RETRY_LETTERS] = "UPDATE dead_letters SET state = 'retried', closed_by = ?4, "
			      "closed_ms = ?3 WHERE state = 'dead' AND id BETWEEN ?1 AND ?2",

	/* ?1 dossier ?2 letter ?3 header version it gives up (0: none) ?4 now */
	[STO_DROP_DOSSIER] =
		"UPDATE dossiers SET header_sent_version = max(header_sent_version, ?3), "
		"has_work = (header_version > max(header_sent_version, ?3) OR rows_pending > 0), "
		"work_since_ms = iif(header_version > max(header_sent_version, ?3) OR "
		"rows_pending > 0, coalesce(work_since_ms, ?4), NULL), "
		"attempts = 0, reason = NULL, updated_ms = ?4, "
		"state = " OB_UNDEAD("o.id <> ?2") " WHERE id = ?1",
	[STO_DROP_LETTER] = "UPDATE dead_letters SET state = 'dropped', closed_by = ?2, "
			    "note = ?3, closed_ms = ?4 WHERE id = ?1 AND state = 'dead'",

	[STO_HOLD] = "UPDATE dossiers SET state = 'held', updated_ms = ?2 "
		     "WHERE mahoso = ?1 AND state <> 'held' RETURNING id",
	[STO_RELEASE] = "UPDATE dossiers SET state = iif(EXISTS (SELECT 1 FROM dead_letters AS o "
			"WHERE o.dossier_id = dossiers.id AND o.state = 'dead'), 'dead', "
			"'active'), updated_ms = ?2 WHERE mahoso = ?1 AND state = 'held' "
			"RETURNING id",

	[STO_OVERDUE] =
		"SELECT mahoso, agency, status, state, due_ms, (?1 - due_ms) / 1000 AS "
		"overdue_s, received_ms, changed_ms FROM dossiers WHERE finished_ms IS NULL "
		"AND due_ms IS NOT NULL AND due_ms < ?1 ORDER BY due_ms LIMIT ?2",
	[STO_LATE] = "SELECT mahoso, agency, status, due_ms, finished_ms, "
		     "(finished_ms - due_ms) / 1000 AS late_s FROM dossiers "
		     "WHERE finished_ms > due_ms AND finished_ms >= ?1 ORDER BY finished_ms "
		     "LIMIT ?2",
};

int store_outbox_prepare(struct store *s, char **err)
{
	return store_prepare(s, ob_sql, s->ob, STO__COUNT, err);
}

/* ---- helpers -------------------------------------------------------------- */

static int ob_exec(struct store *s, enum sto_id id, const char *op, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	int r = store_stmt_runv(s, s->ob[id], op, types, ap);
	va_end(ap);
	return r;
}

static json_t *ob_list(struct store *s, enum sto_id id, const char *op, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	json_t *a = store_stmt_listv(s, s->ob[id], op, types, ap);
	va_end(ap);
	return a;
}

/* Binds text t (or NULL) without copying: t outlives the statement's run. */
static int bind_text(sqlite3_stmt *st, int i, const char *t)
{
	return t ? sqlite3_bind_text(st, i, t, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

/*
 * Steps st (bound with result rc) to its end. *had_row (may be NULL) says
 * whether it gave a row; vals (n of them) get the integer columns of its
 * last row.
 */
static int step_all(struct store *s, sqlite3_stmt *st, int rc, const char *op, bool *had_row,
		    int64_t *vals, int n)
{
	if (had_row)
		*had_row = false;
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	while (rc == SQLITE_ROW) {
		if (had_row)
			*had_row = true;
		for (int i = 0; i < n; i++)
			vals[i] = sqlite3_column_int64(st, i);
		rc = sqlite3_step(st);
	}
	int r = rc == SQLITE_DONE ? 0 : store_fail(s, st, rc, op);
	store_stmt_done(st);
	return r;
}

/* Binds an id, NULL when 0. */
static int bind_id(sqlite3_stmt *st, int i, int64_t id)
{
	return id ? sqlite3_bind_int64(st, i, id) : sqlite3_bind_null(st, i);
}

static json_t *new_object(void)
{
	json_t *o = json_object();
	if (!o)
		log_fatal("out of memory building JSON");
	return o;
}

static json_t *new_array(void)
{
	json_t *a = json_array();
	if (!a)
		log_fatal("out of memory building JSON");
	return a;
}

static void append(json_t *a, json_t *v)
{
	if (!v || json_array_append_new(a, v) < 0)
		log_fatal("out of memory building JSON");
}

/*
 * n bytes of stored JSON text, parsed. What we stored was checked to be
 * JSON (json_valid) but a damaged file may differ: such a text is given as
 * a string, so that the operator and the flow still see it.
 */
static json_t *parse_text(const unsigned char *p, size_t n, const char *what)
{
	json_error_t e;
	if (!p)
		return json_null();
	json_t *v = jsontext_parse((const char *)p, n, JSON_DECODE_ANY, &e);
	if (v)
		return v;
	log_warn("store: a stored %s does not parse as JSON (%s at %d); given as text", what,
		 e.text, e.position);
	return store_json_text(p, n);
}

static json_t *column_parsed(sqlite3_stmt *st, int i, const char *what)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return json_null();
	return parse_text(sqlite3_column_text(st, i), (size_t)sqlite3_column_bytes(st, i), what);
}

/* Replaces the JSON text o[key] by its parsed value. */
static void parse_member(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (json_is_string(v))
		store_json_put(o, key,
			       parse_text((const unsigned char *)json_string_value(v),
					  json_string_length(v), key));
}

/* The length of the longest prefix of t of at most max bytes that ends on a character. */
static size_t clip_len(const char *t, size_t max)
{
	size_t n = strlen(t);
	if (n <= max)
		return n;
	n = max;
	/* Back off continuation bytes, then the lead byte whose sequence was cut. */
	while (n > 0 && ((unsigned char)t[n] & 0xc0) == 0x80)
		n--;
	return n;
}

/* t clipped to max bytes (caller frees), NULL for NULL. */
static char *clip(const char *t, size_t max)
{
	return t ? xstrndup(t, clip_len(t, max)) : NULL;
}

/* The failure reason of an error: its text before the first ':', trimmed (caller frees). */
static char *reason_of(const char *error)
{
	size_t n = strcspn(error, ":");
	while (n > 0 && (error[n - 1] == ' ' || error[n - 1] == '\t'))
		n--;
	size_t start = strspn(error, " \t");
	if (start >= n)
		return xstrdup("error");
	char *head = xstrndup(error + start, n - start);
	char *r = clip(head, OB_REASON_MAX_BYTES);
	free(head);
	return r;
}

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/*
 * ids as a JSON array text, ascending and without repeats (caller frees),
 * with *n_unique. NULL or empty gives "[]". Returns 0, -EINVAL for an id
 * <= 0, -E2BIG for too many.
 */
static int ids_text(const struct store_outbox_ids *ids, char **out, size_t *n_unique)
{
	struct dynbuf b;
	size_t n = ids ? ids->n : 0, u = 0;
	*out = NULL;
	*n_unique = 0;
	if (n > STORE_OUTBOX_IDS_MAX)
		return -E2BIG;
	if (n > 0 && !ids->id)
		return -EINVAL;
	int64_t *v = xcalloc(n ? n : 1, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		if (ids->id[i] <= 0) {
			free(v);
			return -EINVAL;
		}
		v[i] = ids->id[i];
	}
	qsort(v, n, sizeof(*v), cmp_id);
	dynbuf_init(&b, 0);
	(void)dynbuf_addstr(&b, "[");
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && v[i] == v[i - 1])
			continue;
		(void)dynbuf_printf(&b, "%s%lld", u ? "," : "", (long long)v[i]);
		u++;
	}
	(void)dynbuf_addstr(&b, "]");
	free(v);
	*out = dynbuf_steal(&b, NULL);
	*n_unique = u;
	return 0;
}

/* A compact JSON text of o (caller frees); o is released. */
static char *dump_steal(json_t *o)
{
	char *t = jsontext_dumps(o, NULL);
	json_decref(o);
	if (!t)
		log_fatal("out of memory serialising JSON");
	return t;
}

/* Adds event of dossier id at at_ms with detail (stolen; NULL for none). */
static int event_add(struct store *s, int64_t dossier, int64_t at_ms, const char *event,
		     json_t *detail, const char *op)
{
	char *d = detail ? dump_steal(detail) : NULL;
	int r = ob_exec(s, STO_EVENT, op, "iitt", dossier, at_ms, event, d);
	free(d);
	return r;
}

/* A mahoso (or agency, actor) we accept: 1..STORE_OUTBOX_KEY_MAX_BYTES. */
static int key_check(const char *k)
{
	if (!k || !k[0])
		return -EINVAL;
	return strlen(k) > STORE_OUTBOX_KEY_MAX_BYTES ? -E2BIG : 0;
}

/*
 * How a set of rows moves: from one of two states to another, for one
 * dossier or any, with an event per dossier (NULL: none) whose detail gets
 * the moved ids added to extra (JSON object text, may be NULL).
 */
struct move {
	const char *to;
	const char *from_a, *from_b;
	int64_t dossier; /* 0: the rows' own dossiers */
	const char *event;
	const char *extra;
	int64_t batch;	/* 0: unchanged */
	int64_t letter; /* 0: unchanged */
	bool success;	/* clears the dossiers' attempts and failure reason */
};

static int bind_move(sqlite3_stmt *st, const char *ids_json, const struct move *m, int64_t now_ms)
{
	int rc = bind_text(st, 1, ids_json);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 3, m->from_a);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 4, m->from_b);
	if (rc == SQLITE_OK)
		rc = bind_id(st, 5, m->dossier);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 6, now_ms);
	return rc;
}

/* Moves the rows of ids_json as m says; *moved counts them. Inside the caller's op. */
static int rows_move(struct store *s, const char *ids_json, const struct move *m, int64_t now_ms,
		     const char *op, int64_t *moved)
{
	sqlite3_stmt *st = s->ob[STO_MOVE_DOSSIERS];
	int rc = bind_move(st, ids_json, m, now_ms);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 2, m->to);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(st, 7, m->success);
	int r = step_all(s, st, rc, op, NULL, NULL, 0);
	if (r < 0)
		return r;

	if (m->event) {
		st = s->ob[STO_MOVE_EVENTS];
		rc = bind_move(st, ids_json, m, now_ms);
		if (rc == SQLITE_OK)
			rc = bind_text(st, 2, m->event);
		if (rc == SQLITE_OK)
			rc = bind_text(st, 7, m->extra);
		r = step_all(s, st, rc, op, NULL, NULL, 0);
		if (r < 0)
			return r;
	}

	st = s->ob[STO_MOVE_ROWS];
	rc = bind_move(st, ids_json, m, now_ms);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 2, m->to);
	if (rc == SQLITE_OK)
		rc = bind_id(st, 7, m->batch);
	if (rc == SQLITE_OK)
		rc = bind_id(st, 8, m->letter);
	r = step_all(s, st, rc, op, NULL, NULL, 0);
	if (r == 0 && moved)
		*moved = sqlite3_changes64(s->db);
	return r;
}

/* ---- the flow's side ---------------------------------------------------- */

/*
 * got[0] the id of dossier mahoso, got[1] (when n is 2) its header_version:
 * 0, 1 when unknown, or -errno. A look-up after a write rather than its
 * RETURNING clause: SQLite materialises RETURNING rows in a temporary
 * b-tree, a pager's worth of allocations per statement, which cost more
 * than this index probe on every change.
 */
static int dossier_find(struct store *s, const char *mahoso, int64_t *got, int n, const char *op)
{
	sqlite3_stmt *st = s->ob[STO_FIND];
	bool found = false;
	int r = step_all(s, st, bind_text(st, 1, mahoso), op, &found, got, n);
	return r < 0 ? r : found ? 0 : 1;
}

static int change_check(const struct store_outbox_change *c)
{
	int r;
	if (!c)
		return -EINVAL;
	r = key_check(c->mahoso);
	if (r < 0)
		return r;
	if (c->agency && strlen(c->agency) > STORE_OUTBOX_KEY_MAX_BYTES)
		return -E2BIG;
	if (c->status < 0 || c->status > 10 || c->changed_ms <= 0 || c->seen_ms <= 0 ||
	    c->due_ms < 0)
		return -EINVAL;
	if (c->header && strlen(c->header) > STORE_OUTBOX_HEADER_MAX_BYTES)
		return -E2BIG;
	if (c->row && strlen(c->row) > STORE_OUTBOX_ROW_MAX_BYTES)
		return -E2BIG;
	return 0;
}

/*
 * Inside the caller's group, enqueue runs without a savepoint of its own: a
 * savepoint per change cost a third of the rate (measured, 100,000 changes:
 * 13,000-17,000 changes/s with one, 18,000-26,000 without), most of it in
 * the statement sub-journal it fills and frees. All or nothing still holds:
 * the first statement (the upsert) is the only one that can refuse a change
 * (-EINVAL: a header or row that is not JSON), and a statement failing
 * after it is not a refusal but a bug or damage, for which half a change
 * must not commit with the group: the group is then lost, as store.c loses
 * it for a full disk (store_fail).
 */
static int group_lost(struct store *s, int err, const char *op)
{
	if (s->depth == 0 || s->tx_err)
		return err;
	log_err("store: %s failed half-way: the caller's group is rolled back", op);
	store_abort_tx(s, err);
	return err;
}

int store_outbox_enqueue(struct store *s, const struct store_outbox_change *c, int64_t *progress_id)
{
	const char *op = "queueing a dossier change";
	int64_t got[2] = {0, 0}, row_id = 0; /* dossier id, header_version */
	bool own = false, wrote = false;
	sqlite3_stmt *st;
	int rc;
	int r = change_check(c);
	if (r < 0)
		return r;
	r = store_write_check(s);
	if (r < 0)
		return r;
	if (s->depth == 0) {
		r = store_op_begin(s, op);
		if (r < 0)
			return r;
		own = true;
	}

	st = s->ob[STO_UPSERT];
	rc = bind_text(st, 1, c->mahoso);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 2, c->agency);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 3, c->header);
	if (rc == SQLITE_OK)
		rc = bind_id(st, 4, c->status);
	if (rc == SQLITE_OK)
		rc = bind_id(st, 5, c->due_ms);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 6, c->changed_ms);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 7, c->seen_ms);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 8, c->row);
	if (rc == SQLITE_OK)
		rc = c->header && c->fees_known ? sqlite3_bind_int(st, 9, c->paid_online)
						: sqlite3_bind_null(st, 9);
	if (rc == SQLITE_OK)
		rc = c->header && c->fees_known ? sqlite3_bind_int(st, 10, c->fee_lines)
						: sqlite3_bind_null(st, 10);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 11, c->header && c->fees_known ? c->applicant_id : NULL);
	r = step_all(s, st, rc, op, NULL, NULL, 0);
	if (r < 0)
		goto out;
	wrote = true;
	r = dossier_find(s, c->mahoso, got, 2, op);
	if (r != 0) {
		r = r < 0 ? r : -EIO; /* the row just written is not there */
		goto out;
	}

	if (c->row) {
		st = s->ob[STO_ROW_ADD];
		rc = sqlite3_bind_int64(st, 1, got[0]);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int64(st, 2, c->seq);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int64(st, 3, c->seen_ms);
		if (rc == SQLITE_OK)
			rc = bind_text(st, 4, c->row);
		if (rc == SQLITE_OK)
			rc = bind_id(st, 5, c->header ? got[1] : 0);
		if (rc == SQLITE_OK)
			rc = bind_id(st, 6, c->status);
		r = step_all(s, st, rc, op, NULL, NULL, 0);
		if (r < 0)
			goto out;
		row_id = sqlite3_last_insert_rowid(s->db);
		goto out; /* the row is its "received" event (STO_DOSSIER_EVENTS) */
	}

	st = s->ob[STO_EVENT_RECEIVED];
	rc = sqlite3_bind_int64(st, 1, got[0]);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, c->seen_ms);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, c->seq);
	if (rc == SQLITE_OK)
		rc = bind_id(st, 4, c->status);
	if (rc == SQLITE_OK)
		rc = bind_id(st, 5, c->header ? got[1] : 0);
	if (rc == SQLITE_OK)
		rc = bind_id(st, 6, row_id);
	r = step_all(s, st, rc, op, NULL, NULL, 0);
out:
	if (own)
		r = store_op_end(s, r, op);
	else if (r < 0 && wrote)
		r = group_lost(s, r, op);
	if (r == 0 && progress_id)
		*progress_id = row_id;
	return r;
}

/* The first max_rows pending rows of dossier id, as due() gives them. */
static int due_rows(struct store *s, int64_t dossier, unsigned max_rows, json_t *a)
{
	sqlite3_stmt *st = s->ob[STO_DUE_ROWS];
	int rc = sqlite3_bind_int64(st, 1, dossier);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, max_rows);
	if (rc == SQLITE_OK) {
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			json_t *o = new_object();
			store_json_put(o, "id", json_integer(sqlite3_column_int64(st, 0)));
			store_json_put(o, "seq", json_integer(sqlite3_column_int64(st, 1)));
			store_json_put(o, "row", column_parsed(st, 2, "progress row"));
			store_json_put(o, "created_ms", json_integer(sqlite3_column_int64(st, 3)));
			append(a, o);
		}
	}
	int r = rc == SQLITE_DONE ? 0 : store_fail(s, st, rc, "reading due progress rows");
	store_stmt_done(st);
	return r;
}

json_t *store_outbox_due(struct store *s, int64_t now_ms, unsigned max_dossiers,
			 unsigned max_rows_per_dossier)
{
	struct store_outbox_due_opts o = {
		.max_dossiers = max_dossiers,
		.max_rows_per_dossier = max_rows_per_dossier,
		.rows_after_create = true,
	};
	return store_outbox_due_ex(s, now_ms, &o);
}

json_t *store_outbox_due_ex(struct store *s, int64_t now_ms, const struct store_outbox_due_opts *o)
{
	const char *op = "reading the due dossiers";
	sqlite3_stmt *st = s->ob[STO_DUE];
	json_t *a = new_array();
	int rc, r = 0;
	unsigned n = 0, max_dossiers = LT_MIN(o->max_dossiers, STORE_OUTBOX_DUE_MAX);
	unsigned max_rows = LT_MIN(o->max_rows_per_dossier, STORE_OUTBOX_DUE_ROWS_MAX);
	uint64_t items = 0, max_items = o->max_items ? o->max_items : UINT64_MAX;
	if (max_dossiers == 0)
		return a;
	rc = sqlite3_bind_int64(st, 1, now_ms);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(
			st, 2, (int64_t)max_dossiers + (o->skip ? STORE_OUTBOX_DUE_SKIP_MAX : 0));
	if (rc == SQLITE_OK) {
		while (r == 0 && n < max_dossiers && items < max_items &&
		       (rc = sqlite3_step(st)) == SQLITE_ROW) {
			int64_t pending = sqlite3_column_int64(st, 6);
			const char *state = (const char *)sqlite3_column_text(st, 4);
			bool header = sqlite3_column_type(st, 7) != SQLITE_NULL;
			if (o->skip && o->skip((const char *)sqlite3_column_text(st, 1), o->ud))
				continue;
			n++;
			json_t *d = new_object(), *rows = new_array();
			store_json_put(d, "mahoso",
				       store_json_text(sqlite3_column_text(st, 1),
						       (size_t)sqlite3_column_bytes(st, 1)));
			store_json_put(d, "header_version",
				       json_integer(sqlite3_column_int64(st, 2)));
			store_json_put(d, "header_sent_version",
				       json_integer(sqlite3_column_int64(st, 3)));
			store_json_put(d, "portal_state", json_string(state));
			store_json_put(d, "attempts", json_integer(sqlite3_column_int64(st, 5)));
			store_json_put(d, "rows_pending", json_integer(pending));
			if (header) {
				store_json_put(d, "header", column_parsed(st, 7, "header"));
				items++;
			}
			bool create = header && !(state && !strcmp(state, "present"));
			uint64_t room = max_items - items;
			unsigned want = (unsigned)LT_MIN((uint64_t)max_rows, room);
			if (want > 0 && pending > 0 && (o->rows_after_create || !create)) {
				r = due_rows(s, sqlite3_column_int64(st, 0), want, rows);
				items += json_array_size(rows);
			}
			store_json_put(d, "progress", rows);
			append(a, d);
		}
	}
	if (r == 0 && rc != SQLITE_DONE && rc != SQLITE_ROW)
		r = store_fail(s, st, rc, op);
	store_stmt_done(st);
	if (r < 0) {
		json_decref(a);
		return NULL;
	}
	return a;
}

int store_outbox_sending(struct store *s, const struct store_outbox_ids *ids, int64_t batch,
			 int64_t now_ms)
{
	const char *op = "marking progress rows as sending";
	char *ids_json = NULL;
	size_t n = 0;
	int64_t moved = 0;
	int r = ids_text(ids, &ids_json, &n);
	if (r == 0 && n == 0)
		r = -EINVAL;
	if (r == 0)
		r = store_write_check(s);
	if (r < 0)
		goto out;
	r = store_op_begin(s, op);
	if (r < 0)
		goto out;
	struct move m = {.to = "sending",
			 .from_a = "pending",
			 .from_b = "pending",
			 .batch = batch}; /* its event is read from the rows */
	r = rows_move(s, ids_json, &m, now_ms, op, &moved);
	/* All or nothing: a negative r rolls the op back, then says 1. */
	if (r == 0 && moved != (int64_t)n)
		r = -ESTALE;
	r = store_op_end(s, r, op);
	if (r == -ESTALE)
		r = 1;
out:
	free(ids_json);
	return r;
}

/* Moves the rows of ids as m says, in one op. */
static int move_op(struct store *s, const struct store_outbox_ids *ids, const struct move *m,
		   int64_t now_ms, const char *op)
{
	char *ids_json = NULL;
	size_t n = 0;
	int r = ids_text(ids, &ids_json, &n);
	if (r == 0)
		r = store_write_check(s);
	if (r < 0 || n == 0)
		goto out;
	r = store_op_begin(s, op);
	if (r < 0)
		goto out;
	r = rows_move(s, ids_json, m, now_ms, op, NULL);
	r = store_op_end(s, r, op);
out:
	free(ids_json);
	return r;
}

int store_outbox_progress_acked(struct store *s, const struct store_outbox_ids *ids, int64_t now_ms)
{
	struct move m = {.to = "sent",
			 .from_a = "sending",
			 .from_b = "sending",
			 .success = true}; /* its event is read from the rows */
	return move_op(s, ids, &m, now_ms, "recording acknowledged progress rows");
}

int store_outbox_header_acked(struct store *s, const char *mahoso, int64_t version, int64_t now_ms)
{
	const char *op = "recording an acknowledged header";
	int64_t got[2] = {0, 0}; /* dossier id, header_version */
	bool found = false;
	int r = key_check(mahoso);
	if (r == 0)
		r = store_write_check(s);
	if (r < 0)
		return r;
	r = store_op_begin(s, op);
	if (r < 0)
		return r;
	sqlite3_stmt *st = s->ob[STO_HEADER_ACKED];
	int rc = bind_text(st, 1, mahoso);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, version);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, now_ms);
	r = step_all(s, st, rc, op, NULL, NULL, 0);
	if (r == 0)
		found = sqlite3_changes(s->db) > 0;
	if (r == 0 && found)
		r = ob_exec(s, STO_PORTAL_FEES, op, "t", mahoso);
	if (r == 0)
		r = dossier_find(s, mahoso, got, 2, op);
	if (r == 0 && !found) {
		/* a version the dossier never had */
		r = -EINVAL;
	} else if (r == 0) {
		json_t *d = new_object();
		store_json_put(d, "version", json_integer(version));
		store_json_put(d, "header_version", json_integer(got[1]));
		r = event_add(s, got[0], now_ms, "header_acked", d, op);
	}
	return store_op_end(s, r, op);
}

int store_outbox_portal_state(struct store *s, const char *mahoso, const char *state,
			      int64_t now_ms)
{
	const char *op = "recording what the portal has of a dossier";
	int r = key_check(mahoso);
	if (r == 0 && (!state || (strcmp(state, "present") != 0 && strcmp(state, "absent") != 0 &&
				  strcmp(state, "unknown") != 0)))
		r = -EINVAL;
	if (r == 0)
		r = store_write_check(s);
	if (r < 0)
		return r;
	r = store_op_begin(s, op);
	if (r < 0)
		return r;
	r = ob_exec(s, STO_PORTAL_STATE, op, "tti", mahoso, state, now_ms);
	if (r == 0 && sqlite3_changes(s->db) == 0)
		r = 1;
	/* the portal has nothing of it: nothing it was sent counts any more */
	if (r == 0 && strcmp(state, "absent") == 0)
		r = ob_exec(s, STO_PORTAL_FEES_GONE, op, "t", mahoso);
	return store_op_end(s, r, op);
}

int store_outbox_failed(struct store *s, const char *mahoso, const struct store_outbox_ids *ids,
			int64_t next_attempt_ms, const char *error, const char *raw, int64_t now_ms)
{
	const char *op = "recording a failed dossier request";
	char *ids_json = NULL, *err = NULL, *body = NULL, *reason = NULL;
	int64_t got[2] = {0, 0}; /* dossier id, attempts */
	size_t n = 0;
	bool found = false;
	int r = key_check(mahoso);
	if (r == 0 && (!error || !error[0]))
		r = -EINVAL;
	if (r == 0)
		r = ids_text(ids, &ids_json, &n);
	if (r == 0)
		r = store_write_check(s);
	if (r < 0)
		goto out;
	err = clip(error, STORE_OUTBOX_ERROR_MAX_BYTES);
	body = clip(raw, STORE_OUTBOX_RAW_MAX_BYTES);
	reason = reason_of(err);
	r = store_op_begin(s, op);
	if (r < 0)
		goto out;
	sqlite3_stmt *st = s->ob[STO_FAILED];
	int rc = bind_text(st, 1, mahoso);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, next_attempt_ms);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 3, err);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 4, body);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 5, reason);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 6, now_ms);
	r = step_all(s, st, rc, op, &found, got, 2);
	if (r == 0 && !found)
		r = 1;
	if (r == 0 && n > 0) {
		struct move m = {.to = "pending",
				 .from_a = "sending",
				 .from_b = "sending",
				 .dossier = got[0]};
		r = rows_move(s, ids_json, &m, now_ms, op, NULL);
	}
	if (r == 0) {
		json_t *d = new_object();
		json_error_t e;
		store_json_put(d, "error",
			       store_json_text((const unsigned char *)err, strlen(err)));
		store_json_put(d, "attempts", json_integer(got[1]));
		store_json_put(d, "next_attempt_ms", json_integer(next_attempt_ms));
		store_json_put(d, "ids", json_loads(ids_json, 0, &e));
		r = event_add(s, got[0], now_ms, "error", d, op);
	}
	r = store_op_end(s, r, op);
out:
	free(ids_json);
	free(err);
	free(body);
	free(reason);
	return r;
}

int store_outbox_dead(struct store *s, const char *mahoso, const char *what,
		      const struct store_outbox_ids *ids, const char *reason, const char *raw,
		      int64_t now_ms, int64_t *letter_id)
{
	const char *op = "recording a dead letter";
	char *ids_json = NULL, *why = NULL, *body = NULL, *kind = NULL;
	int64_t got[2] = {0, 0}, letter = 0; /* dossier id, header_version */
	size_t n = 0;
	int r = key_check(mahoso);
	if (r == 0 && (!what || (strcmp(what, "header") != 0 && strcmp(what, "progress") != 0 &&
				 strcmp(what, "change") != 0)))
		r = -EINVAL;
	if (r == 0 && (!reason || !reason[0]))
		r = -EINVAL;
	if (r == 0)
		r = ids_text(ids, &ids_json, &n);
	if (r == 0 && n > 0 && strcmp(what, "progress") != 0)
		r = -EINVAL;
	if (r == 0)
		r = store_write_check(s);
	if (r < 0)
		goto out;
	why = clip(reason, STORE_OUTBOX_ERROR_MAX_BYTES);
	body = clip(raw, STORE_OUTBOX_RAW_MAX_BYTES);
	kind = reason_of(why);
	r = store_op_begin(s, op);
	if (r < 0)
		goto out;
	sqlite3_stmt *st = s->ob[STO_DEAD_DOSSIER];
	int rc = bind_text(st, 1, mahoso);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, now_ms);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 3, kind);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 4, why);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 5, body);
	r = step_all(s, st, rc, op, NULL, got, 2);
	if (r < 0)
		goto end;

	st = s->ob[STO_DEAD_LETTER];
	rc = bind_text(st, 1, ids_json);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, got[0]);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 3, what);
	if (rc == SQLITE_OK)
		rc = strcmp(what, "header") == 0 ? sqlite3_bind_int64(st, 4, got[1])
						 : sqlite3_bind_null(st, 4);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 5, why);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 6, body);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 7, now_ms);
	r = step_all(s, st, rc, op, NULL, NULL, 0);
	if (r < 0)
		goto end;
	letter = sqlite3_last_insert_rowid(s->db);

	if (n > 0) {
		struct move m = {.to = "dead",
				 .from_a = "pending",
				 .from_b = "sending",
				 .dossier = got[0],
				 .letter = letter};
		r = rows_move(s, ids_json, &m, now_ms, op, NULL);
		if (r < 0)
			goto end;
	}
	if (strcmp(what, "change") == 0) {
		json_t *d = new_object();
		store_json_put(d, "reason",
			       store_json_text((const unsigned char *)why, strlen(why)));
		r = event_add(s, got[0], now_ms, "unmappable", d, op);
		if (r < 0)
			goto end;
	}
	json_t *d = new_object();
	json_error_t e;
	store_json_put(d, "letter", json_integer(letter));
	store_json_put(d, "what", json_string(what));
	store_json_put(d, "reason", store_json_text((const unsigned char *)why, strlen(why)));
	if (n > 0)
		store_json_put(d, "ids", json_loads(ids_json, 0, &e));
	r = event_add(s, got[0], now_ms, "dead", d, op);
end:
	r = store_op_end(s, r, op);
	if (r == 0 && letter_id)
		*letter_id = letter;
out:
	free(ids_json);
	free(why);
	free(body);
	free(kind);
	return r;
}

json_t *store_outbox_in_doubt(struct store *s)
{
	sqlite3_stmt *st = s->ob[STO_IN_DOUBT];
	json_t *a = new_array(), *cur = NULL;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *mahoso = store_json_text(sqlite3_column_text(st, 0),
						 (size_t)sqlite3_column_bytes(st, 0));
		if (!cur || !json_equal(json_object_get(cur, "mahoso"), mahoso)) {
			cur = new_object();
			store_json_put(cur, "mahoso", json_incref(mahoso));
			store_json_put(cur, "ids", new_array());
			store_json_put(cur, "rows", new_array());
			store_json_put(cur, "batch", json_null());
			append(a, cur);
		}
		json_decref(mahoso);
		append(json_object_get(cur, "ids"), json_integer(sqlite3_column_int64(st, 1)));
		append(json_object_get(cur, "rows"), column_parsed(st, 3, "progress row"));
		/* A dossier's batches go out in id order: its last row's is the newest. */
		if (sqlite3_column_type(st, 2) != SQLITE_NULL)
			store_json_put(cur, "batch", json_integer(sqlite3_column_int64(st, 2)));
	}
	if (rc != SQLITE_DONE) {
		(void)store_fail(s, st, rc, "listing progress rows in doubt");
		json_decref(a);
		a = NULL;
	}
	store_stmt_done(st);
	return a;
}

int store_outbox_resolve(struct store *s, const struct store_outbox_ids *sent,
			 const struct store_outbox_ids *resend, int64_t now_ms)
{
	const char *op = "resolving progress rows in doubt";
	char *sent_json = NULL, *resend_json = NULL;
	size_t n_sent = 0, n_resend = 0;
	int r = ids_text(sent, &sent_json, &n_sent);
	if (r == 0)
		r = ids_text(resend, &resend_json, &n_resend);
	if (r == 0)
		r = store_write_check(s);
	if (r < 0 || n_sent + n_resend == 0)
		goto out;
	r = store_op_begin(s, op);
	if (r < 0)
		goto out;
	if (n_sent > 0) {
		struct move m = {.to = "sent",
				 .from_a = "sending",
				 .from_b = "sending",
				 .event = "resolved",
				 .extra = "{\"outcome\":\"sent\"}",
				 .success = true};
		r = rows_move(s, sent_json, &m, now_ms, op, NULL);
	}
	if (r == 0 && n_resend > 0) {
		struct move m = {.to = "pending",
				 .from_a = "sending",
				 .from_b = "sending",
				 .event = "resolved",
				 .extra = "{\"outcome\":\"resend\"}"};
		r = rows_move(s, resend_json, &m, now_ms, op, NULL);
	}
	r = store_op_end(s, r, op);
out:
	free(sent_json);
	free(resend_json);
	return r;
}

/* ---- operators ------------------------------------------------------------ */

static void put_time(json_t *o, const char *name, int64_t ms, bool set)
{
	char key[64], iso[32];
	snprintf(key, sizeof(key), "%s_ms", name);
	store_json_put(o, key, set ? json_integer(ms) : json_null());
	store_json_put(o, name,
		       set ? json_string(fmt_time_iso(ms, iso, sizeof(iso))) : json_null());
}

static int64_t count_of(const json_t *counts, const char *name)
{
	return json_integer_value(json_object_get(counts, name));
}

json_t *store_outbox_queue(struct store *s, int64_t now_ms)
{
	const char *op = "reading the outbox counters";
	sqlite3_stmt *st = s->ob[STO_COUNTS];
	json_t *counts = new_object(), *reasons = new_object(), *o = NULL;
	int64_t oldest = 0;
	bool have_oldest = false;
	int rc, r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *name = store_json_text(sqlite3_column_text(st, 0),
					       (size_t)sqlite3_column_bytes(st, 0));
		const char *t = json_string_value(name);
		int64_t n = sqlite3_column_int64(st, 1);
		if (strncmp(t, "reason:", 7) == 0) {
			if (n > 0)
				store_json_put(reasons, t + 7, json_integer(n));
		} else {
			store_json_put(counts, t, json_integer(n));
		}
		json_decref(name);
	}
	r = rc == SQLITE_DONE ? 0 : store_fail(s, st, rc, op);
	store_stmt_done(st);
	if (r == 0) {
		st = s->ob[STO_OLDEST];
		r = step_all(s, st, SQLITE_OK, op, &have_oldest, &oldest, 1);
	}
	if (r < 0)
		goto out;

	o = new_object();
	json_t *by_state = new_object();
	int64_t active = count_of(counts, "dossiers.active.work");
	int64_t held = count_of(counts, "dossiers.held") + count_of(counts, "dossiers.held.work");
	int64_t dead = count_of(counts, "dossiers.dead") + count_of(counts, "dossiers.dead.work");
	store_json_put(o, "depth",
		       json_integer(active + count_of(counts, "dossiers.held.work") +
				    count_of(counts, "dossiers.dead.work")));
	store_json_put(o, "rows_pending", json_integer(count_of(counts, "rows.pending")));
	store_json_put(o, "rows_sending", json_integer(count_of(counts, "rows.sending")));
	store_json_put(o, "dossiers",
		       json_integer(active + count_of(counts, "dossiers.active") + held + dead));
	store_json_put(o, "dead_letters", json_integer(count_of(counts, "letters.dead")));
	store_json_put(o, "oldest_age_s",
		       have_oldest ? json_integer(LT_MAX(now_ms - oldest, 0) / 1000) : json_null());
	put_time(o, "oldest", oldest, have_oldest);
	store_json_put(by_state, "active", json_integer(active));
	store_json_put(by_state, "held", json_integer(held));
	store_json_put(by_state, "dead", json_integer(dead));
	store_json_put(o, "by_state", by_state);
	store_json_put(o, "by_reason", reasons);
	reasons = NULL;
	put_time(o, "at", now_ms, true);
out:
	json_decref(counts);
	json_decref(reasons);
	return o;
}

/* count(*) of query id for dossier. */
static int count_for(struct store *s, enum sto_id id, int64_t dossier, int64_t *n)
{
	sqlite3_stmt *st = s->ob[id];
	*n = 0;
	return step_all(s, st, sqlite3_bind_int64(st, 1, dossier), "counting a dossier's rows",
			NULL, n, 1);
}

/* Takes the newest-first rows of a, parses key of each, returns them oldest first. */
static json_t *oldest_first(json_t *a, const char *key)
{
	json_t *up = new_array();
	for (size_t i = json_array_size(a); i-- > 0;) {
		json_t *e = json_array_get(a, i);
		parse_member(e, key);
		append(up, json_incref(e));
	}
	json_decref(a);
	return up;
}

int store_outbox_dossier(struct store *s, const char *mahoso, json_t **out)
{
	const char *op = "reading a dossier";
	json_t *o = NULL, *rows = NULL, *events = NULL, *letters = NULL;
	int64_t n_rows = 0, n_events = 0, id;
	*out = NULL;
	int r = key_check(mahoso);
	if (r < 0)
		return r;
	sqlite3_stmt *st = s->ob[STO_DOSSIER_GET];
	int rc = bind_text(st, 1, mahoso);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		o = store_row_json(st);
		r = 0;
	} else if (rc == SQLITE_DONE) {
		r = 1;
	} else {
		r = store_fail(s, st, rc, op);
	}
	store_stmt_done(st);
	if (r != 0)
		return r;
	id = json_integer_value(json_object_get(o, "id"));
	parse_member(o, "header");

	rows = ob_list(s, STO_DOSSIER_ROWS, op, "ii", id, (int64_t)STORE_OUTBOX_VIEW_MAX);
	events = ob_list(s, STO_DOSSIER_EVENTS, op, "ii", id, (int64_t)STORE_OUTBOX_VIEW_MAX);
	letters = ob_list(s, STO_DOSSIER_LETTERS, op, "i", id);
	if (!rows || !events || !letters) {
		r = -EIO;
		goto out;
	}
	r = count_for(s, STO_DOSSIER_ROWS_COUNT, id, &n_rows);
	if (r == 0)
		r = count_for(s, STO_DOSSIER_EVENTS_COUNT, id, &n_events);
	if (r < 0)
		goto out;
	/* Read newest first (the newest N), shown oldest first. */
	store_json_put(o, "progress", oldest_first(rows, "row"));
	rows = NULL;
	store_json_put(o, "progress_total", json_integer(n_rows));
	store_json_put(o, "events", oldest_first(events, "detail"));
	events = NULL;
	store_json_put(o, "events_total", json_integer(n_events));
	store_json_put(o, "dead_letters", letters);
	letters = NULL;
	*out = o;
	o = NULL;
out:
	json_decref(o);
	json_decref(rows);
	json_decref(events);
	json_decref(letters);
	return r;
}

static bool letter_state_known(const char *state)
{
	return strcmp(state, "dead") == 0 || strcmp(state, "retried") == 0 ||
	       strcmp(state, "dropped") == 0;
}

json_t *store_outbox_deadletters(struct store *s, const char *state, unsigned limit)
{
	const char *op = "listing dead letters";
	if (!state)
		return ob_list(s, STO_LETTERS_ALL, op, "i", store_sql_limit(limit));
	if (!letter_state_known(state))
		return NULL;
	return ob_list(s, STO_LETTERS_STATE, op, "it", store_sql_limit(limit), state);
}

/* A dead letter as retry and drop need it. */
struct letter {
	int64_t dossier;
	bool header;
	int64_t version; /* a header letter's */
};

/* Letter id: 0 when open, 1 when closed, -ENOENT when unknown, or -errno. */
static int letter_get(struct store *s, int64_t id, struct letter *l)
{
	sqlite3_stmt *st = s->ob[STO_LETTER_GET];
	int r = -ENOENT;
	int rc = sqlite3_bind_int64(st, 1, id);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		l->dossier = sqlite3_column_int64(st, 0);
		l->header = strcmp((const char *)sqlite3_column_text(st, 1), "header") == 0;
		l->version = sqlite3_column_int64(st, 3);
		r = strcmp((const char *)sqlite3_column_text(st, 2), "dead") == 0 ? 0 : 1;
	} else if (rc != SQLITE_DONE) {
		r = store_fail(s, st, rc, "reading a dead letter");
	}
	store_stmt_done(st);
	return r;
}

int store_outbox_retry(struct store *s, int64_t letter_id, const char *actor, int64_t now_ms,
		       unsigned *retried)
{
	const char *op = "retrying dead letters";
	int64_t lo = 1, hi = INT64_MAX, n = 0;
	struct letter l;
	int r = key_check(actor);
	if (retried)
		*retried = 0;
	if (r == 0 && letter_id < 0)
		r = -EINVAL;
	if (r == 0)
		r = store_write_check(s);
	if (r == 0 && letter_id > 0) {
		r = letter_get(s, letter_id, &l);
		lo = hi = letter_id;
	}
	if (r != 0)
		return r;
	r = store_op_begin(s, op);
	if (r < 0)
		return r;
	r = ob_exec(s, STO_RETRY_DOSSIERS, op, "iii", lo, hi, now_ms);
	if (r == 0)
		r = ob_exec(s, STO_RETRY_EVENTS, op, "iiit", lo, hi, now_ms, actor);
	if (r == 0)
		r = ob_exec(s, STO_RETRY_ROWS, op, "ii", lo, hi);
	if (r == 0) {
		r = ob_exec(s, STO_RETRY_LETTERS, op, "iiit", lo, hi, now_ms, actor);
		n = sqlite3_changes64(s->db);
	}
	r = store_op_end(s, r, op);
	if (r == 0 && n == 0)
		r = 1;
	if (r == 0 && retried)
		*retried = (unsigned)LT_MIN(n, (int64_t)UINT32_MAX);
	return r;
}

int store_outbox_drop(struct store *s, int64_t letter_id, const char *actor, const char *reason,
		      int64_t now_ms)
{
	const char *op = "dropping a dead letter";
	char *note = NULL;
	struct letter l;
	int r = key_check(actor);
	if (r == 0 && (letter_id <= 0 || !reason || !reason[0]))
		r = -EINVAL;
	if (r == 0)
		r = store_write_check(s);
	if (r == 0)
		r = letter_get(s, letter_id, &l);
	if (r != 0)
		return r;
	note = clip(reason, STORE_OUTBOX_ERROR_MAX_BYTES);
	r = store_op_begin(s, op);
	if (r < 0)
		goto out;
	r = ob_exec(s, STO_DROP_DOSSIER, op, "iiii", l.dossier, letter_id, l.header ? l.version : 0,
		    now_ms);
	if (r == 0)
		r = ob_exec(s, STO_DROP_LETTER, op, "itti", letter_id, actor, note, now_ms);
	if (r == 0) {
		json_t *d = new_object();
		store_json_put(d, "by", json_string(actor));
		store_json_put(d, "letter", json_integer(letter_id));
		store_json_put(d, "reason",
			       store_json_text((const unsigned char *)note, strlen(note)));
		r = event_add(s, l.dossier, now_ms, "dropped", d, op);
	}
	r = store_op_end(s, r, op);
out:
	free(note);
	return r;
}

/* Hold (hold true) or release mahoso for actor. */
static int hold_or_release(struct store *s, const char *mahoso, const char *actor, int64_t now_ms,
			   bool hold)
{
	const char *op = hold ? "holding a dossier" : "releasing a dossier";
	int64_t id = 0;
	bool changed = false;
	int r = key_check(mahoso);
	if (r == 0)
		r = key_check(actor);
	if (r == 0)
		r = store_write_check(s);
	if (r < 0)
		return r;
	r = store_op_begin(s, op);
	if (r < 0)
		return r;
	sqlite3_stmt *st = s->ob[hold ? STO_HOLD : STO_RELEASE];
	int rc = bind_text(st, 1, mahoso);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, now_ms);
	r = step_all(s, st, rc, op, &changed, &id, 1);
	if (r == 0 && !changed) {
		r = dossier_find(s, mahoso, &id, 1, op);
		if (r == 0)
			r = 1;
		else if (r == 1)
			r = -ENOENT;
	}
	if (r == 0) {
		json_t *d = new_object();
		store_json_put(d, "by",
			       store_json_text((const unsigned char *)actor, strlen(actor)));
		r = event_add(s, id, now_ms, hold ? "held" : "released", d, op);
	}
	return store_op_end(s, r, op);
}

int store_outbox_hold(struct store *s, const char *mahoso, const char *actor, int64_t now_ms)
{
	return hold_or_release(s, mahoso, actor, now_ms, true);
}

int store_outbox_release(struct store *s, const char *mahoso, const char *actor, int64_t now_ms)
{
	return hold_or_release(s, mahoso, actor, now_ms, false);
}

json_t *store_outbox_overdue(struct store *s, int64_t now_ms, unsigned limit)
{
	return ob_list(s, STO_OVERDUE, "listing overdue dossiers", "ii", now_ms,
		       store_sql_limit(limit));
}

json_t *store_outbox_late(struct store *s, int64_t since_ms, unsigned limit)
{
	return ob_list(s, STO_LATE, "listing late dossiers", "ii", since_ms,
		       store_sql_limit(limit));
}
