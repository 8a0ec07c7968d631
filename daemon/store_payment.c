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
#include <pthread.h>
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

/* Opens path read-only with a read transaction begun (its snapshot). */
static int load_open(const char *path, sqlite3 **db, char **err)
{
	int rc = sqlite3_open_v2(path, db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(*db, 5000);
		rc = sqlite3_exec(*db, "BEGIN", NULL, NULL, NULL);
	}
	if (rc != SQLITE_OK) {
		*err = xasprintf("%s: cannot open the store to read the payments: %s", path,
				 *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
		return -EIO;
	}
	return 0;
}

/*
 * What the portal acknowledged of a dossier is probed in portal_fees (one
 * short row per dossier) for each successful, trusted transaction of the
 * range: only a dossier paid online can be portal_without_fee, and a set
 * of every dossier of the range would cost a temporary b-tree of a million
 * codes. The probes run on a thread and a connection of their own, fed the
 * dossier codes as the transactions are read (a queue of pointers into the
 * set's arena, whose strings never move), so that the two reads overlap on
 * two cores; the portal's snapshot may be a moment apart from the
 * payments', which another flow writes anyway.
 */
struct probe_out {
	struct rec_portal *portal;
	size_t n, cap;
	char *err;
	int r;
};

struct portal_feed {
	pthread_mutex_t mu;
	pthread_cond_t more;
	const char **codes; /* dossier codes to probe, in the set's arena */
	size_t n, cap, taken;
	bool done; /* the reader has queued its last code */
	/* the probing thread's own */
	const char *path;
	sqlite3 *db;
	struct probe_out out;
};

#define PORTAL_FEED_BATCH 1024

static void feed_push(struct portal_feed *pf, const char *const *batch, size_t n, bool done)
{
	pthread_mutex_lock(&pf->mu);
	if (pf->n + n > pf->cap) {
		pf->cap = LT_MAX(pf->cap * 2, pf->n + n + 4096);
		pf->codes = xrealloc(pf->codes, pf->cap * sizeof(*pf->codes));
	}
	if (n)
		memcpy(pf->codes + pf->n, batch, n * sizeof(*batch));
	pf->n += n;
	pf->done |= done;
	pthread_cond_signal(&pf->more);
	pthread_mutex_unlock(&pf->mu);
}

static const char portal_sql[] = "SELECT paid_online, fee_lines FROM portal_fees WHERE mahoso = ?1";

/*
 * Probes what is queued until the reader is done and nothing is left,
 * with st (on db) into out: the probing thread from the start, the reader
 * too once it has read everything (each on its own connection).
 */
static void portal_drain(struct portal_feed *pf, sqlite3 *db, sqlite3_stmt *st,
			 struct probe_out *out)
{
	const char *batch[PORTAL_FEED_BATCH];
	for (;;) {
		pthread_mutex_lock(&pf->mu);
		while (pf->taken == pf->n && !pf->done)
			pthread_cond_wait(&pf->more, &pf->mu);
		size_t n = LT_MIN(pf->n - pf->taken, (size_t)PORTAL_FEED_BATCH);
		if (n)
			memcpy(batch, pf->codes + pf->taken, n * sizeof(*batch));
		pf->taken += n;
		pthread_mutex_unlock(&pf->mu);
		if (!n)
			return; /* the reader is done, and everything was taken */
		for (size_t i = 0; i < n && out->r == 0; i++) {
			int rc = sqlite3_bind_text(st, 1, batch[i], -1, SQLITE_STATIC);
			if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
				out->portal =
					grow(out->portal, &out->cap, out->n, sizeof(*out->portal));
				out->portal[out->n++] = (struct rec_portal){
					.mahoso = batch[i],
					.paid_online = sqlite3_column_int(st, 0),
					.fee_lines = sqlite3_column_int(st, 1),
				};
				rc = SQLITE_DONE;
			}
			if (rc != SQLITE_DONE) {
				out->err = xasprintf("reading what the portal was sent: %s",
						     sqlite3_errmsg(db));
				out->r = -EIO;
			}
			sqlite3_reset(st);
		}
	}
}

/* Prepares the probe on db and drains the feed into out. */
static void portal_probe(struct portal_feed *pf, sqlite3 *db, struct probe_out *out)
{
	sqlite3_stmt *st = NULL;
	if (out->r == 0 && sqlite3_prepare_v2(db, portal_sql, -1, &st, NULL) != SQLITE_OK) {
		out->err = xasprintf("reading what the portal was sent: %s", sqlite3_errmsg(db));
		out->r = -EIO;
	}
	if (st)
		portal_drain(pf, db, st, out);
	sqlite3_finalize(st);
}

static void *portal_probe_run(void *ud)
{
	struct portal_feed *pf = ud;
	pf->out.r = load_open(pf->path, &pf->db, &pf->out.err);
	if (pf->out.r == 0)
		portal_probe(pf, pf->db, &pf->out);
	return NULL;
}

/* In the order of the day index (no sort). */
static const char *const load_sql[] = {
	"SELECT ref, nullif(txid, ''), mahoso, amount, state, at_ms, verified FROM pay_tx "
	"WHERE day BETWEEN ?1 AND ?2 ORDER BY day, id",
	"SELECT nullif(ref, ''), mahoso, amount, state, method, at_ms FROM fee_records "
	"WHERE day BETWEEN ?1 AND ?2 ORDER BY day, id",
};

/*
 * Reads the transactions (which 0: the dossiers of their trusted successes
 * go to pf, and pf is told when there are no more) or the fee records (1).
 */
static int load_rows(sqlite3 *db, struct store_pay_set *set, int which, int64_t from, int64_t to,
		     struct portal_feed *pf, char **err)
{
	sqlite3_stmt *st = NULL;
	size_t cap = 0, n = 0, nb = 0;
	const char *batch[PORTAL_FEED_BATCH];
	int rc = sqlite3_prepare_v2(db, load_sql[which], -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 1, from);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, to);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (which == 0) {
			set->tx = grow(set->tx, &cap, n, sizeof(*set->tx));
			struct rec_tx *t = &set->tx[n++];
			*t = (struct rec_tx){
				.ref = col_text(set, st, 0),
				.txid = col_text(set, st, 1),
				.mahoso = col_text(set, st, 2),
				.amount = sqlite3_column_int64(st, 3),
				.state = sqlite3_column_int(st, 4),
				.at_ms = sqlite3_column_int64(st, 5),
				.verified = sqlite3_column_int(st, 6) != 0,
			};
			if (t->mahoso && t->verified && t->state == REC_TX_SUCCESS) {
				batch[nb++] = t->mahoso;
				if (nb == PORTAL_FEED_BATCH) {
					feed_push(pf, batch, nb, false);
					nb = 0;
				}
			}
		} else {
			set->fee = grow(set->fee, &cap, n, sizeof(*set->fee));
			set->fee[n++] = (struct rec_fee){
				.ref = col_text(set, st, 0),
				.mahoso = col_text(set, st, 1),
				.amount = sqlite3_column_int64(st, 2),
				.state = fee_state((const char *)sqlite3_column_text(st, 3)),
				.method = fee_method((const char *)sqlite3_column_text(st, 4)),
				.at_ms = sqlite3_column_int64(st, 5),
			};
		}
		rc = SQLITE_OK;
	}
	if (which == 0)
		feed_push(pf, batch, nb, true); /* also after a failure: the thread must end */
	if (rc != SQLITE_DONE) {
		*err = xasprintf("reading the payments: %s", sqlite3_errmsg(db));
		sqlite3_finalize(st);
		return -EIO;
	}
	sqlite3_finalize(st);
	if (which == 0)
		set->in.n_tx = n;
	else
		set->in.n_fee = n;
	return 0;
}

int store_pay_load(const char *path, int64_t from_day, int64_t to_day, struct store_pay_set **out,
		   char **err)
{
	struct store_pay_set *set = xcalloc(1, sizeof(*set));
	struct portal_feed pf = {.path = path};
	/* on a failed read the feed is closed, and nobody waits on it */
	pthread_t th;
	pthread_mutex_init(&pf.mu, NULL);
	pthread_cond_init(&pf.more, NULL);
	bool threaded = pthread_create(&th, NULL, portal_probe_run, &pf) == 0;
	*out = NULL;
	*err = NULL;
	int r = load_open(path, &set->db, err);
	if (r == 0)
		r = load_rows(set->db, set, 0, from_day, to_day, &pf, err);
	else
		feed_push(&pf, NULL, 0, true);
	if (r == 0)
		r = load_rows(set->db, set, 1, from_day, to_day, NULL, err);
	/* the reader is done reading: it probes too, what the thread has not taken */
	struct probe_out mine = {0};
	if (r == 0)
		portal_probe(&pf, set->db, &mine);
	if (threaded)
		pthread_join(th, NULL);
	else
		portal_probe_run(&pf); /* no thread to be had: the same, after */
	if (r == 0 && (pf.out.r < 0 || mine.r < 0)) {
		struct probe_out *bad = mine.r < 0 ? &mine : &pf.out;
		r = bad->r;
		*err = bad->err;
		bad->err = NULL;
	}
	/* both probers' entries: the order does not matter to the matching */
	set->portal = xrealloc(pf.out.portal, (pf.out.n + mine.n + 1) * sizeof(*set->portal));
	if (mine.n)
		memcpy(set->portal + pf.out.n, mine.portal, mine.n * sizeof(*mine.portal));
	set->in.n_portal = pf.out.n + mine.n;
	free(mine.portal);
	free(mine.err);
	free(pf.codes);
	free(pf.out.err);
	if (pf.db) {
		(void)sqlite3_exec(pf.db, "COMMIT", NULL, NULL, NULL);
		sqlite3_close(pf.db);
	}
	pthread_cond_destroy(&pf.more);
	pthread_mutex_destroy(&pf.mu);
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
	/* the header's JSON only for a dossier stored before migration 7 */
	static const char sql[] = "SELECT agency, iif(paid_online IS NULL, json_extract(header, "
				  "'$.DinhDanhCHS[0].SoDinhDanh'), applicant_id) FROM dossiers "
				  "WHERE mahoso = ?1";
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
