/*
 * store_payment: the payment flow's transactions and fee records in the
 * store (migration 5), and the loader that reads a day range of them for a
 * reconciliation. Contracts in store.h; errors, transactions and health as
 * in store.c (store_int.h).
 *
 * The loader does not use the loop's connection: a reconciliation of a
 * million transactions runs on the worker thread, so it opens the store
 * read-only on a connection of its own — in WAL mode a reader sees one
 * consistent snapshot and never blocks the loop's writes — and copies what
 * it reads into arrays whose strings live in one arena of large blocks (no
 * allocation per string, nothing that moves once handed out).
 */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "reconcile.h"
#include "util.h"

/* Longest text of a transaction or a fee record but raw (codes, names). */
#define STORE_PAY_TEXT_MAX 4096
#define VN_OFFSET_MS	   (7LL * 3600 * 1000)
#define DAY_MS		   86400000LL

static const char *const pay_sql[STP__COUNT] = {
	[STP_TX_PUT] = "INSERT INTO pay_tx (day, ref, txid, mahoso, amount, state, at_ms, "
		       "verified, source, seen_ms, raw) VALUES (?1, ?2, coalesce(?3, ''), ?4, ?5, "
		       "?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (ref, txid) DO UPDATE SET "
		       "day = excluded.day, mahoso = coalesce(excluded.mahoso, mahoso), amount = "
		       "excluded.amount, "
		       "state = excluded.state, at_ms = excluded.at_ms, "
		       "verified = excluded.verified, source = excluded.source, "
		       "seen_ms = excluded.seen_ms, raw = excluded.raw",
	/*
	 * Attempts still waiting for a confirmation, attempted between ?3 and
	 * ?4 (days ?1..?2 bound the index range): a fee record the province
	 * holds as CHO_XAC_NHAN, or a transaction the platform listed as
	 * pending, for which no trusted final state (success or failure) is
	 * known. The oldest first; one row per MaThamChieu.
	 */
	[STP_PENDING] =
		"SELECT ref, min(at_ms), mahoso FROM (SELECT ref, at_ms, mahoso FROM fee_records "
		"WHERE day BETWEEN ?1 AND ?2 AND state = 'CHO_XAC_NHAN' AND ref <> '' AND at_ms "
		"BETWEEN ?3 AND ?4 UNION ALL SELECT ref, at_ms, mahoso FROM pay_tx WHERE day "
		"BETWEEN ?1 AND ?2 "
		"AND state = 3 AND verified = 1 AND at_ms BETWEEN ?3 AND ?4) AS w WHERE NOT "
		"EXISTS (SELECT 1 FROM pay_tx AS t WHERE t.ref = w.ref AND t.state IN (1, 4) "
		"AND t.verified = 1) GROUP BY ref ORDER BY 2, 1 LIMIT ?5",
	/* a day's list or fee records read whole: what it no longer holds goes */
	[STP_TX_PRUNE] = "DELETE FROM pay_tx WHERE day = ?1 AND source <> 'query' AND seen_ms < ?2",
	[STP_FEE_PRUNE] = "DELETE FROM fee_records WHERE day = ?1 AND seen_ms < ?2",
	[STP_FEE_PUT] =
		"INSERT INTO fee_records (day, mahoso, ref, amount, state, method, "
		"at_ms, seen_ms, raw) VALUES (?1, ?2, coalesce(?3, ''), ?4, ?5, ?6, ?7, ?8, "
		"?9) ON CONFLICT (mahoso, ref) DO UPDATE SET day = excluded.day, "
		"amount = excluded.amount, state = excluded.state, "
		"method = excluded.method, at_ms = excluded.at_ms, "
		"seen_ms = excluded.seen_ms, raw = excluded.raw",
};

int store_payment_prepare(struct store *s, char **err)
{
	return store_prepare(s, pay_sql, s->pay, STP__COUNT, err);
}

int64_t store_pay_day(int64_t wall_ms)
{
	/* days since 1970-01-01 in +07:00, then the civil date (Hinnant) */
	int64_t z = (wall_ms + VN_OFFSET_MS) / DAY_MS - ((wall_ms + VN_OFFSET_MS) % DAY_MS < 0);
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t y = yoe + era * 400, doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153, d = doy - (153 * mp + 2) / 5 + 1;
	int64_t m = mp < 10 ? mp + 3 : mp - 9;
	return (y + (m <= 2)) * 10000 + m * 100 + d;
}

static bool text_ok(const char *t, bool required)
{
	return t ? strlen(t) <= STORE_PAY_TEXT_MAX : !required;
}

static bool one_of(const char *t, const char *const *set)
{
	for (; t && *set; set++)
		if (strcmp(t, *set) == 0)
			return true;
	return false;
}

static int pay_run(struct store *s, enum stp_id id, const char *op, const char *types, ...)
{
	int r = store_write_check(s);
	if (r < 0)
		return r;
	va_list ap;
	va_start(ap, types);
	r = store_stmt_runv(s, s->pay[id], op, types, ap);
	va_end(ap);
	return r;
}

int store_pay_tx_put(struct store *s, const struct store_pay_tx *t, int64_t seen_ms)
{
	if (!t || !t->ref || !*t->ref || !text_ok(t->ref, true) || !text_ok(t->txid, false) ||
	    !text_ok(t->mahoso, false) || !text_ok(t->source, true))
		return -EINVAL;
	return pay_run(s, STP_TX_PUT, "recording a payment transaction", "itttiiiitit",
		       store_pay_day(t->at_ms), t->ref, t->txid, t->mahoso, t->amount,
		       (int64_t)t->state, t->at_ms, (int64_t)t->verified, t->source, seen_ms,
		       t->raw);
}

int store_fee_put(struct store *s, const struct store_fee_record *f, int64_t seen_ms)
{
	static const char *const states[] = {"DA_THANH_TOAN", "CHUA_THANH_TOAN", "CHO_XAC_NHAN",
					     NULL};
	static const char *const methods[] = {"TRUC_TUYEN", "TIEN_MAT", "CHUYEN_KHOAN", NULL};
	if (!f || !f->mahoso || !*f->mahoso || !text_ok(f->mahoso, true) ||
	    !text_ok(f->ref, false) || !one_of(f->state, states) || !one_of(f->method, methods))
		return -EINVAL;
	return pay_run(s, STP_FEE_PUT, "recording a fee record", "ittittiit",
		       store_pay_day(f->at_ms), f->mahoso, f->ref, f->amount, f->state, f->method,
		       f->at_ms, seen_ms, f->raw);
}

int store_pay_prune(struct store *s, bool fees, int64_t day, int64_t seen_before_ms,
		    unsigned *removed)
{
	int r = pay_run(s, fees ? STP_FEE_PRUNE : STP_TX_PRUNE,
			fees ? "removing fee records no longer listed"
			     : "removing transactions no longer listed",
			"ii", day, seen_before_ms);
	if (r == 0 && removed)
		*removed = (unsigned)sqlite3_changes(s->db);
	return r;
}

json_t *store_pay_pending(struct store *s, int64_t from_ms, int64_t to_ms, unsigned limit)
{
	sqlite3_stmt *st = s->pay[STP_PENDING];
	json_t *list = json_array();
	int rc = sqlite3_bind_int64(st, 1, store_pay_day(from_ms));
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, store_pay_day(to_ms));
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, from_ms);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 4, to_ms);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 5, limit ? (int64_t)limit : -1);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_array_append_new(list,
				      json_pack("{s:s, s:I, s:s?}", "ref",
						(const char *)sqlite3_column_text(st, 0), "at_ms",
						(json_int_t)sqlite3_column_int64(st, 1), "mahoso",
						(const char *)sqlite3_column_text(st, 2)));
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_DONE) {
		store_fail(s, st, rc, "listing the payments awaiting confirmation");
		json_decref(list);
		list = NULL;
	}
	store_stmt_done(st);
	return list;
}

/* ---- the loader ------------------------------------------------------------ */

#define ARENA_BLOCK (1u << 20)

struct arena_block {
	struct arena_block *next;
	size_t used, cap;
	char data[];
};

struct store_pay_set {
	sqlite3 *db;		/* the read-only connection, its snapshot still open */
	sqlite3_stmt *describe; /* a dossier's agency and applicant */
	struct rec_input in;
	struct rec_tx *tx;
	struct rec_fee *fee;
	struct rec_portal *portal;
	struct arena_block *blocks;
};

/* A copy of n bytes of p, NUL-terminated, in the set's arena. */
static const char *arena_copy(struct store_pay_set *set, const unsigned char *p, size_t n)
{
	struct arena_block *b = set->blocks;
	if (!p)
		return NULL;
	if (!b || b->cap - b->used < n + 1) {
		size_t cap = n + 1 > ARENA_BLOCK ? n + 1 : ARENA_BLOCK;
		b = xmalloc(sizeof(*b) + cap);
		b->next = set->blocks;
		b->used = 0;
		b->cap = cap;
		set->blocks = b;
	}
	char *o = b->data + b->used;
	memcpy(o, p, n);
	o[n] = '\0';
	b->used += n + 1;
	return o;
}

static const char *col_text(struct store_pay_set *set, sqlite3_stmt *st, int i)
{
	const unsigned char *p = sqlite3_column_text(st, i);
	return arena_copy(set, p, (size_t)sqlite3_column_bytes(st, i));
}

/* Grows *a (of *cap elements of size sz) to hold n + 1. */
static void *grow(void *a, size_t *cap, size_t n, size_t sz)
{
	if (n < *cap)
		return a;
	*cap = *cap ? *cap * 2 : 4096;
	return xrealloc(a, *cap * sz);
}

static enum rec_fee_state fee_state(const char *t)
{
	return !strcmp(t, "DA_THANH_TOAN")  ? REC_FEE_PAID
	       : !strcmp(t, "CHO_XAC_NHAN") ? REC_FEE_PENDING
					    : REC_FEE_UNPAID;
}

static enum rec_fee_method fee_method(const char *t)
{
	return !strcmp(t, "TRUC_TUYEN") ? REC_ONLINE
	       : !strcmp(t, "TIEN_MAT") ? REC_CASH
					: REC_TRANSFER;
}

/*
 * In the order of the day index (no sort); the portal's part driven by the
 * day's successful transactions, one probe of the dossiers' unique index
 * each (CROSS JOIN fixes that order): only a dossier paid online can be
 * portal_without_fee, and a set of every dossier of the range would cost
 * a temporary b-tree of a million codes.
 */
static const char *const load_sql[] = {
	"SELECT ref, nullif(txid, ''), mahoso, amount, state, at_ms, verified FROM pay_tx "
	"WHERE day BETWEEN ?1 AND ?2 ORDER BY day, id",
	"SELECT nullif(ref, ''), mahoso, amount, state, method, at_ms FROM fee_records "
	"WHERE day BETWEEN ?1 AND ?2 ORDER BY day, id",
	/* what the portal was last sent (and acknowledged a header of) */
	"SELECT d.mahoso, coalesce(json_extract(d.header, '$.DuocThanhToanTrucTuyen'), 0), "
	"coalesce(json_array_length(d.header, '$.DanhSachLePhi'), 0) FROM pay_tx AS t "
	"CROSS JOIN dossiers AS d ON d.mahoso = t.mahoso WHERE t.day BETWEEN ?1 AND ?2 "
	"AND t.state = 1 AND t.verified = 1 AND d.header_sent_version > 0 "
	"AND d.header IS NOT NULL ORDER BY t.day, t.id",
};

static int load_rows(sqlite3 *db, struct store_pay_set *set, int which, int64_t from, int64_t to,
		     char **err)
{
	sqlite3_stmt *st = NULL;
	size_t cap = 0, n = 0;
	int rc = sqlite3_prepare_v2(db, load_sql[which], -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 1, from);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, to);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (which == 0) {
			set->tx = grow(set->tx, &cap, n, sizeof(*set->tx));
			set->tx[n++] = (struct rec_tx){
				.ref = col_text(set, st, 0),
				.txid = col_text(set, st, 1),
				.mahoso = col_text(set, st, 2),
				.amount = sqlite3_column_int64(st, 3),
				.state = sqlite3_column_int(st, 4),
				.at_ms = sqlite3_column_int64(st, 5),
				.verified = sqlite3_column_int(st, 6) != 0,
			};
		} else if (which == 1) {
			set->fee = grow(set->fee, &cap, n, sizeof(*set->fee));
			set->fee[n++] = (struct rec_fee){
				.ref = col_text(set, st, 0),
				.mahoso = col_text(set, st, 1),
				.amount = sqlite3_column_int64(st, 2),
				.state = fee_state((const char *)sqlite3_column_text(st, 3)),
				.method = fee_method((const char *)sqlite3_column_text(st, 4)),
				.at_ms = sqlite3_column_int64(st, 5),
			};
		} else {
			set->portal = grow(set->portal, &cap, n, sizeof(*set->portal));
			set->portal[n++] = (struct rec_portal){
				.mahoso = col_text(set, st, 0),
				.paid_online = sqlite3_column_int(st, 1),
				.fee_lines = sqlite3_column_int(st, 2),
			};
		}
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_DONE) {
		*err = xasprintf("reading the payments: %s", sqlite3_errmsg(db));
		sqlite3_finalize(st);
		return -EIO;
	}
	sqlite3_finalize(st);
	if (which == 0)
		set->in.n_tx = n;
	else if (which == 1)
		set->in.n_fee = n;
	else
		set->in.n_portal = n;
	return 0;
}

int store_pay_load(const char *path, int64_t from_day, int64_t to_day, struct store_pay_set **out,
		   char **err)
{
	sqlite3 *db = NULL;
	struct store_pay_set *set = xcalloc(1, sizeof(*set));
	int r = 0;
	*out = NULL;
	*err = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		*err = xasprintf("%s: cannot open the store to read the payments: %s", path,
				 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		r = -EIO;
		goto out;
	}
	sqlite3_busy_timeout(db, 5000);
	/* one transaction: the three reads see one snapshot */
	rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	for (int w = 0; rc == SQLITE_OK && r == 0 && w < 3; w++)
		r = load_rows(db, set, w, from_day, to_day, err);
	if (rc != SQLITE_OK && !*err) {
		*err = xasprintf("%s: %s", path, sqlite3_errmsg(db));
		r = -EIO;
	}
out:
	set->db = db;
	if (r < 0) {
		store_pay_set_free(set);
		return r;
	}
	set->in.tx = set->tx;
	set->in.fee = set->fee;
	set->in.portal = set->portal;
	*out = set;
	return 0;
}

const struct rec_input *store_pay_input(const struct store_pay_set *set)
{
	return set ? &set->in : NULL;
}

int store_pay_describe(struct store_pay_set *set, const char *mahoso, const char **agency,
		       const char **applicant)
{
	static const char sql[] = "SELECT agency, json_extract(header, "
				  "'$.DinhDanhCHS[0].SoDinhDanh') FROM dossiers WHERE mahoso = ?1";
	*agency = *applicant = NULL;
	if (!set || !set->db || !mahoso)
		return -EINVAL;
	int rc = set->describe ? SQLITE_OK
			       : sqlite3_prepare_v2(set->db, sql, -1, &set->describe, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(set->describe, 1, mahoso, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(set->describe);
	if (rc == SQLITE_ROW) {
		*agency = col_text(set, set->describe, 0);
		*applicant = col_text(set, set->describe, 1);
		rc = SQLITE_DONE;
	}
	if (set->describe) {
		sqlite3_reset(set->describe);
		sqlite3_clear_bindings(set->describe);
	}
	return rc == SQLITE_DONE ? 0 : -EIO;
}

void store_pay_set_free(struct store_pay_set *set)
{
	if (!set)
		return;
	sqlite3_finalize(set->describe);
	if (set->db) {
		/* ends the snapshot (read only: nothing to keep) */
		(void)sqlite3_exec(set->db, "COMMIT", NULL, NULL, NULL);
		sqlite3_close(set->db);
	}
	while (set->blocks) {
		struct arena_block *b = set->blocks;
		set->blocks = b->next;
		free(b);
	}
	free(set->tx);
	free(set->fee);
	free(set->portal);
	free(set);
}
