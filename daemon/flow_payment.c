/*
 * flow_payment: online fee payments made through the national payment
 * platform, reconciled three ways — the platform's transactions, the
 * provincial system's fee records and what the national portal was sent
 * for each dossier — with every difference in the mismatch log and the
 * provincial office's reports (issue 5; docs/contracts/payment-spec.md).
 *
 * A pass, over the days of its plan (the `days` complete days before
 * today, and today so far when `today` is set), oldest first:
 *   1. LIST   the platform's transactions of the day: every page of the
 *             paygov connector's daily list, each page stored as it
 *             arrives (memory stays one page), or, with list_files, the file
 *             giao-dich-YYYYMMDD.json or .csv dropped into a files
 *             connector's folder (read and judged row by row on the worker
 *             thread). Trusted transactions are stored; a row whose
 *             MaXacThuc does not verify is stored as untrusted (the
 *             matcher calls it bad_signature and uses nothing of it); a
 *             malformed or duplicated row is a mismatch. A list that is
 *             incomplete (a cut file, a failed page) stores what it holds
 *             but does not count as the day's list. A list read whole
 *             removes what the day held and it no longer lists, unless one
 *             of its rows could not be read (that row may be one of them).
 *   2. FEES   the provincial fee records of the day (provincial connector),
 *             page by page the same way.
 *   3. QUERY  each payment attempt still waiting for a confirmation that
 *             was made between query_max_age and query_min_age ago is asked
 *             about (QUERY), `query_window` at a time; a trusted answer is
 *             stored, an answer that does not verify is stored untrusted.
 *             An attempt older than query_max_age is no longer asked: the
 *             matcher calls it pending_too_long.
 *   4. MATCH  for each day whose list and fee records the store holds (from
 *             this pass or an earlier one), the day is loaded from the
 *             store on a read-only connection and matched on the worker
 *             thread (reconcile.c); the result becomes the daily reports
 *             and, on the loop, the payment.<class> mismatches of that day
 *             (scope the day), written in small groups so that the loop
 *             keeps answering; a mismatch of that day not found again is
 *             resolved. The same inputs give the same mismatches: reruns
 *             only refresh them.
 *   5. MONTH  the monthly report of every month a matched day belongs to
 *             (from its first day to the last day of the plan), and report
 *             files older than compress_after are gzipped.
 *
 * The office's on-demand reports (`lienthongctl report payments --from
 * --to`) are step 4 without the mismatches, for any range, answered
 * through the control socket when written (flow_payment_report).
 */
#include "flow_payment.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "conf.h"
#include "control.h"
#include "daemon.h"
#include "files.h"
#include "log.h"
#include "mapping.h"
#include "paygov.h"
#include "provincial.h"
#include "reconcile.h"
#include "report.h"
#include "store.h"
#include "util.h"
#include "worker.h"

/* Store writes per commit (one fsync), and per turn of the loop. */
#define PAY_GROUP_WRITES 500
/* Most days one pass or one report covers. */
#define PAY_MAX_DAYS 366
#define DAY_MS	     86400000LL
/* A dropped file's rows wait for another flow's open group: look again after. */
#define PAY_ACK_RETRY_US 10000

struct payment_opts {
	char *platform;
	char *fees;
	char *list_files;
	int64_t days;
	bool today;
	int64_t query_min_age_ms;
	int64_t query_max_age_ms;
	int64_t query_window;
	int64_t query_limit;
	char *reports_dir;
	char *report_formats;
	bool report_matched;
	bool monthly;
	int64_t compress_after_ms;
};

#define O(f) offsetof(struct payment_opts, f)
static const struct conf_option payment_options[] = {
	{"platform", CONF_STRING, NULL, 0, 0, NULL, O(platform), CONF_REQUIRED,
	 "Connector of the national payment platform (type paygov): QUERY, and the daily "
	 "transaction list unless list_files is set."},
	{"fees", CONF_STRING, NULL, 0, 0, NULL, O(fees), CONF_REQUIRED,
	 "Connector of the provincial system (type provincial): the fee records of each day."},
	{"list_files", CONF_STRING, NULL, 0, 0, NULL, O(list_files), 0,
	 "Connector of a drop folder (type files) where the platform's daily list arrives as "
	 "giao-dich-YYYYMMDD.json or .csv, instead of the platform's list endpoint. A file "
	 "read goes to done/ (failed/ when unusable)."},
	{"days", CONF_INT, "3", 1, 31, NULL, O(days), 0,
	 "Complete days before today reconciled by every pass (late records and corrections "
	 "of the days before are taken in)."},
	{"today", CONF_BOOL, "false", 0, 0, NULL, O(today), 0,
	 "Also reconcile today so far (its mismatches may only mean that a record is on its "
	 "way)."},
	{"query_min_age", CONF_DURATION, "15m", 0, 30LL * 86400000, NULL, O(query_min_age_ms), 0,
	 "A payment attempt waiting for confirmation is asked about (QUERY) once it is this "
	 "old."},
	{"query_max_age", CONF_DURATION, "2d", 60000, 365LL * 86400000, NULL, O(query_max_age_ms),
	 0,
	 "... and no longer past this age: still pending then, it is a pending_too_long "
	 "mismatch."},
	{"query_window", CONF_INT, "8", 1, 256, NULL, O(query_window), 0,
	 "QUERY requests handed to the platform connector at once."},
	{"query_limit", CONF_INT, "10000", 0, 1000000, NULL, O(query_limit), 0,
	 "Most QUERY requests of one pass, oldest attempts first (0: none)."},
	{"reports_dir", CONF_PATH, "/var/lib/lienthong/reports", 0, 0, NULL, O(reports_dir), 0,
	 "Folder of the office's reconciliation reports (doi-soat-thanh-toan_FROM_TO.*)."},
	{"report_formats", CONF_STRING, "csv,xlsx,html,json", 0, 0, NULL, O(report_formats), 0,
	 "Report files written, comma-separated: csv (UTF-8 with BOM), xlsx, html, json."},
	{"report_matched", CONF_BOOL, "false", 0, 0, NULL, O(report_matched), 0,
	 "Also list every matched payment in the CSV, XLSX and JSON reports (the summary "
	 "always counts them)."},
	{"monthly", CONF_BOOL, "true", 0, 0, NULL, O(monthly), 0,
	 "Write the monthly report of every month a pass reconciled a day of."},
	{"compress_after", CONF_DURATION, "7d", 0, 3650LL * 86400000, NULL, O(compress_after_ms), 0,
	 "Report files older than this are gzipped (0: never)."},
	CONF_OPTION_END,
};
#undef O

/* ---- days ----------------------------------------------------------------- */

/* yyyymmdd -> "YYYY-MM-DD". */
static void day_text(int64_t ymd, char out[11])
{
	unsigned y = (unsigned)(ymd / 10000) % 10000, m = (unsigned)(ymd / 100) % 100,
		 d = (unsigned)ymd % 100;
	snprintf(out, 11, "%04u-%02u-%02u", y % 10000, m % 100, d % 100);
}

/* "YYYY-MM-DD" -> the wall ms of its noon in Asia/Ho_Chi_Minh, or -1. */
static int64_t day_noon_ms(const char *text)
{
	int64_t ms;
	if (!text || strlen(text) != 10 || map_parse_iso_time(text, &ms) < 0)
		return -1;
	return ms + 12 * 3600 * 1000LL;
}

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* ---- the reconciliation job (worker thread) --------------------------------- */

struct pay_pass;

/*
 * One reconciliation of days from..to: loaded, matched, the §5 result
 * built and the reports written on the worker; then done() on the loop.
 */
struct rec_job {
	/* in */
	char *store_path;
	char from[11], to[11];
	int64_t now_ms, pending_max_ms;
	unsigned formats;
	char *reports_dir;
	json_t *sources;
	/* out */
	int r;
	char *err;
	json_t *result;	 /* the §5 document: freed on the worker once written */
	json_t *summary; /* its summary and inputs, for the loop */
	json_t *inputs;
	json_t *mismatches; /* daily: its items but matched ones, for the loop */
	json_t *paths;
	double seconds;
	/* where the time went, for the log and the answer: load, match, the
	 * items listed (described and explained), the files, the cleanup */
	double phase_s[5];
	/* who waits */
	struct pay_pass *p; /* a pass (a ref), or NULL */
	size_t day;	    /* a day of the pass: its mismatches are recorded */
	bool daily;
	struct ctl_later *later; /* an operator's report, or NULL */
	struct payment *pay;	 /* its flow: done() runs before the flow goes */
	char *field;		 /* "FLOW=name", for the log */
};

static const char *fee_state_text(enum rec_fee_state s)
{
	return s == REC_FEE_PAID      ? "DA_THANH_TOAN"
	       : s == REC_FEE_PENDING ? "CHO_XAC_NHAN"
				      : "CHUA_THANH_TOAN";
}

/* The §5 item of it (not matched ones, unless asked). */
static json_t *item_json(struct store_pay_set *set, const struct rec_input *in,
			 const struct rec_item *it, const char *day)
{
	const struct rec_tx *t = it->tx != REC_NONE ? &in->tx[it->tx] : NULL;
	const struct rec_fee *f = it->fee != REC_NONE ? &in->fee[it->fee] : NULL;
	const struct rec_portal *pt = it->portal != REC_NONE ? &in->portal[it->portal] : NULL;
	const char *ref = t ? t->ref : f ? f->ref : NULL;
	const char *mahoso = t && t->mahoso ? t->mahoso : f ? f->mahoso : pt ? pt->mahoso : NULL;
	const char *agency = NULL, *applicant = NULL;
	if (mahoso)
		(void)store_pay_describe(set, mahoso, &agency, &applicant);
	char *why = rec_explain(in, it);
	json_t *o = json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?}", "class",
			      rec_class_name(it->cls), "day", day, "ma_tham_chieu", ref, "ma_ho_so",
			      mahoso, "ma_giao_dich", t ? t->txid : NULL, "agency", agency,
			      "applicant_id", applicant, "explanation", why);
	json_object_set_new(o, "platform_amount",
			    t && t->verified ? json_integer(t->amount) : json_null());
	json_object_set_new(o, "local_amount", f ? json_integer(f->amount) : json_null());
	json_object_set_new(o, "platform_state",
			    t && t->verified ? json_integer(t->state) : json_null());
	json_object_set_new(o, "local_state",
			    f ? json_string(fee_state_text(f->state)) : json_null());
	free(why);
	return o;
}

/* Counts and amounts per class of a range, in total and per day (index from its first day). */
struct tally {
	size_t ndays;
	int64_t first_day_no; /* days since the epoch, Asia/Ho_Chi_Minh */
	int64_t (*count)[REC__COUNT], (*amount)[REC__COUNT];
	int64_t total_count[REC__COUNT], total_amount[REC__COUNT];
};

/* Days since the epoch of wall ms, in Asia/Ho_Chi_Minh. */
static int64_t day_no(int64_t ms)
{
	int64_t v = ms + 7 * 3600 * 1000LL;
	return v / DAY_MS - (v % DAY_MS < 0);
}

static json_t *class_counts(const int64_t *count, const int64_t *amount, bool all)
{
	json_t *o = json_object();
	for (int c = 0; c < REC__COUNT; c++)
		if (all || count[c])
			json_object_set_new(o, rec_class_name((enum rec_class)c),
					    json_pack("{s:I, s:I}", "count", (json_int_t)count[c],
						      "amount", (json_int_t)amount[c]));
	return o;
}

static void rec_job_run(void *ud)
{
	struct rec_job *j = ud;
	struct store_pay_set *set = NULL;
	struct rec_result res = {0};
	uint64_t t0 = now_mono_us();
	int64_t from = store_pay_day(day_noon_ms(j->from)), to = store_pay_day(day_noon_ms(j->to));

	uint64_t mark = t0;
#define PHASE(i)                                                                                   \
	do {                                                                                       \
		uint64_t now_ = now_mono_us();                                                     \
		j->phase_s[i] = (double)(now_ - mark) / 1e6;                                       \
		mark = now_;                                                                       \
	} while (0)
	j->r = store_pay_load(j->store_path, from, to, &set, &j->err);
	PHASE(0);
	if (j->r < 0)
		goto out;
	struct rec_input in = *store_pay_input(set);
	in.now_ms = j->now_ms;
	in.pending_max_ms = j->pending_max_ms;
	j->r = reconcile(&in, &res);
	PHASE(1);
	if (j->r < 0) {
		j->err = xasprintf("cannot reconcile %s..%s: %s", j->from, j->to, strerror(-j->r));
		goto out;
	}
	/* a day's index in the range: an item dated outside it (a record
	 * stored under its day but timed just across midnight) counts on the
	 * nearest day of the range */
	struct tally ty = {.first_day_no = day_no(day_noon_ms(j->from))};
	ty.ndays = (size_t)(day_no(day_noon_ms(j->to)) - ty.first_day_no + 1);
	ty.count = xcalloc(ty.ndays, sizeof(*ty.count));
	ty.amount = xcalloc(ty.ndays, sizeof(*ty.amount));
	json_t *items = json_array();
	bool all = j->formats & REPORT_INCLUDE_MATCHED;
	for (size_t i = 0; i < res.n; i++) {
		const struct rec_item *it = &res.items[i];
		const struct rec_tx *t = it->tx != REC_NONE ? &in.tx[it->tx] : NULL;
		const struct rec_fee *f = it->fee != REC_NONE ? &in.fee[it->fee] : NULL;
		int64_t d = day_no(t ? t->at_ms : f ? f->at_ms : j->now_ms) - ty.first_day_no;
		size_t di = d < 0 ? 0 : (size_t)d >= ty.ndays ? ty.ndays - 1 : (size_t)d;
		int64_t amount = t && t->verified ? t->amount : f ? f->amount : 0;
		ty.count[di][it->cls]++;
		ty.amount[di][it->cls] += amount;
		ty.total_count[it->cls]++;
		ty.total_amount[it->cls] += amount;
		if (it->cls != REC_MATCHED || all) {
			char day[11];
			day_text(store_pay_day((ty.first_day_no + (int64_t)di) * DAY_MS), day);
			json_array_append_new(items, item_json(set, &in, it, day));
		}
	}
	/* every class in the summary, zero or not: the office sees what was checked */
	json_t *summary = class_counts(ty.total_count, ty.total_amount, true);
	json_t *daily = json_array();
	for (size_t di = 0; di < ty.ndays; di++) {
		char day[11];
		int64_t n = 0;
		for (int c = 0; c < REC__COUNT; c++)
			n += ty.count[di][c];
		if (!n)
			continue;
		day_text(store_pay_day((ty.first_day_no + (int64_t)di) * DAY_MS), day);
		json_t *e = class_counts(ty.count[di], ty.amount[di], false);
		json_object_set_new(e, "day", json_string(day));
		json_array_append_new(daily, e);
	}
	free(ty.count);
	free(ty.amount);
	j->result = json_pack("{s:s, s:s, s:I, s:{s:I, s:I, s:I, s:O}, s:o, s:o, s:o}", "from",
			      j->from, "to", j->to, "generated_ms", (json_int_t)j->now_ms, "inputs",
			      "platform", (json_int_t)in.n_tx, "provincial", (json_int_t)in.n_fee,
			      "portal", (json_int_t)in.n_portal, "sources", j->sources, "summary",
			      summary, "daily", daily, "items", items);
	PHASE(2);
	if (j->formats & REPORT_ALL)
		j->r = report_write_payments(j->result, j->reports_dir, j->formats, &j->paths,
					     &j->err);
	PHASE(3);
out:
	rec_free(&res);
	store_pay_set_free(set);
	if (j->result) {
		/* what the loop needs; the rest (a million items, maybe) is freed
		 * on this thread after the answer (rec_job_done), not on the loop */
		json_t *it;
		size_t i;
		j->summary = json_incref(json_object_get(j->result, "summary"));
		j->inputs = json_incref(json_object_get(j->result, "inputs"));
		if (j->daily && j->r >= 0) {
			j->mismatches = json_array();
			json_array_foreach (json_object_get(j->result, "items"), i, it) {
				if (strcmp(jstr(it, "class"), "matched") != 0)
					json_array_append(j->mismatches, it);
			}
		}
	}
	PHASE(4);
#undef PHASE
	j->seconds = (double)(now_mono_us() - t0) / 1e6;
}

static void rec_job_free(struct rec_job *j)
{
	free(j->store_path);
	free(j->field);
	free(j->reports_dir);
	free(j->err);
	json_decref(j->sources);
	json_decref(j->result);
	json_decref(j->summary);
	json_decref(j->inputs);
	json_decref(j->mismatches);
	json_decref(j->paths);
	free(j);
}

/* ---- the flow ---------------------------------------------------------------- */

enum phase { PH_DAYS, PH_QUERY, PH_MATCH, PH_MONTH, PH_DONE };

struct pay_day {
	int64_t ymd;
	char text[11];
	bool list_known, fees_known; /* held by the store (this pass or an earlier one) */
	bool list_now, fees_now;     /* read whole in this pass */
	bool matched;
	size_t unreadable; /* rows of this pass's list that could not be read */
};

/* Rows of one read waiting to be written, PAY_GROUP_WRITES a turn. */
enum put_kind { PUT_TX, PUT_UNTRUSTED, PUT_PROBLEM, PUT_FEE, PUT_MISMATCH, PUT_PRUNE, PUT_ACK };
struct put_batch {
	enum put_kind kind;
	json_t *rows; /* array */
	size_t next;
	size_t day; /* index into the pass's days */
	char *source;
	struct put_batch *next_batch;
};

struct payment;

struct pay_pass {
	unsigned refs;
	struct payment *pay; /* NULL once the flow is gone */
	enum phase phase;
	bool stopping, store_failed;
	bool waiting; /* a request or a job is out: the step waits for it */
	int64_t start_ms;
	struct pay_day *days;
	size_t n_days, cur;
	int step_of_day; /* 0 list, 1 fees, 2 next */
	struct put_batch *puts, *puts_tail;
	size_t writes;
	/* QUERY */
	json_t *pending;
	size_t q_next, q_in_flight;
	size_t to_clear; /* 1 + a day whose matching's mismatches are being written */
	bool ack_wait;	 /* a file's rows wait for another flow's group to commit */
	uint64_t ack_after, ack_failed; /* ... until store_groups_committed() reaches this */
	/* months done */
	int64_t month_next; /* yyyymm01 of the next month to report, 0 none */
	/* counts */
	size_t n_tx, n_untrusted, n_problems, n_fees, n_fee_bad, n_queries, n_query_failed;
	size_t n_days_matched, n_mismatches, n_cleared, n_reports;
	size_t count[REC__COUNT];
	struct flow_result res;
};

struct payment {
	struct flow *f;
	struct conn *platform; /* ref */
	struct conn *fees;     /* ref */
	struct conn *files;    /* ref, may be NULL */
	unsigned formats;
	char *field; /* "FLOW=name" */
	struct worker *worker;
	struct pay_pass *pass;
	sd_event_source *step;
	size_t reports_pending; /* operators' reports on the worker */
	json_t *last_summary;	/* the last day matched: its counts */
};

#define PAY_FIELDS(p) ((const char *const[]){(p)->field, NULL})

static void step_soon(struct payment *pay);
static void step_later(struct payment *pay, uint64_t usec);

static void batch_free(struct put_batch *b)
{
	json_decref(b->rows);
	free(b->source);
	free(b);
}

static void pass_unref(struct pay_pass *p)
{
	if (!p || --p->refs > 0)
		return;
	while (p->puts) {
		struct put_batch *b = p->puts;
		p->puts = b->next_batch;
		batch_free(b);
	}
	json_decref(p->pending);
	free(p->days);
	flow_result_clear(&p->res);
	free(p);
}

static struct store *pstore(struct pay_pass *p)
{
	return p->pay ? p->pay->f->d->store : NULL;
}

/* Notes a failed write: the pass stops, nothing more to lose. Returns r >= 0. */
static bool group_write(struct pay_pass *p, int r, const char *what)
{
	if (!flow_store_ok(&p->res, &p->store_failed, r, what))
		return false;
	p->writes++;
	return true;
}

static void group_begin(struct pay_pass *p)
{
	struct store *s = pstore(p);
	if (s && !p->store_failed)
		group_write(p, store_begin(s), "begin a transaction");
}

static void group_commit(struct pay_pass *p)
{
	struct store *s = pstore(p);
	if (s && !p->store_failed)
		group_write(p, store_commit(s), "commit");
	p->writes = 0;
}

static void queue_put(struct pay_pass *p, enum put_kind kind, json_t *rows, const char *source,
		      size_t day)
{
	if (!json_array_size(rows))
		return;
	struct put_batch *b = xcalloc(1, sizeof(*b));
	b->kind = kind;
	b->rows = json_incref(rows);
	b->day = day;
	b->source = source ? xstrdup(source) : NULL;
	if (p->puts_tail)
		p->puts_tail->next_batch = b;
	else
		p->puts = b;
	p->puts_tail = b;
}

/* Records a mismatch of kind "payment.<what>" seen in the day's scope; detail is stolen. */
static void mismatch(struct pay_pass *p, const char *what, const char *key, const char *summary,
		     json_t *detail, const char *agency, const char *dossier, const char *scope)
{
	struct store *s = pstore(p);
	char kind[64];
	snprintf(kind, sizeof(kind), "payment.%s", what);
	char *dtext = detail ? json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	struct mismatch m = {
		.kind = kind,
		.key = key,
		.summary = summary,
		.detail = dtext,
		.agency = agency,
		.dossier = dossier,
		.seen_ms = now_wall_ms(),
		.scope = scope,
	};
	bool is_new = false;
	if (s && group_write(p, store_mismatch_upsert(s, &m, NULL, &is_new), "record a mismatch") &&
	    is_new)
		log_fields(LOG_NOTICE, PAY_FIELDS(p->pay), "mismatch %s %s: %s", kind, key,
			   summary);
	p->n_mismatches++;
	json_decref(detail);
	free(dtext);
}

/* yyyyMMddHHmmss of tx field k as wall ms, or fallback. */
static int64_t vn_ms(const json_t *o, const char *k, int64_t fallback)
{
	int64_t ms;
	const char *t = jstr(o, k);
	return t && map_parse_vn_time(t, &ms) == 0 ? ms : fallback;
}

static int put_tx(struct pay_pass *p, const json_t *tx, bool verified, const char *source,
		  int64_t fallback_ms)
{
	char *raw = json_dumps(tx, JSON_COMPACT | JSON_SORT_KEYS);
	const char *txid = jstr(tx, "MaGiaoDich");
	struct store_pay_tx t = {
		.ref = jstr(tx, "MaThamChieu"),
		.txid = verified ? txid : NULL,
		.mahoso = jstr(tx, "MaHoSo"),
		.amount = verified ? json_integer_value(json_object_get(tx, "SoTien")) : 0,
		.state = verified ? (int)json_integer_value(json_object_get(tx, "TrangThaiGD")) : 0,
		.at_ms = vn_ms(tx, "ThoiGianGD", fallback_ms),
		.verified = verified,
		.source = source,
		.raw = raw,
	};
	int r = store_pay_tx_put(pstore(p), &t, now_wall_ms());
	free(raw);
	return r;
}

/* A fee record of the provincial list; 0, or -EINVAL with *why. */
static int put_fee(struct pay_pass *p, const json_t *fee, char **why)
{
	int64_t at = 0;
	json_t *amount = json_object_get(fee, "soTien");
	const char *t = jstr(fee, "thoiGian");
	*why = NULL;
	if (!json_is_object(fee))
		*why = xstrdup("not a JSON object");
	else if (!jstr(fee, "maHoSo") || !*jstr(fee, "maHoSo"))
		*why = xstrdup("maHoSo is missing");
	else if (!json_is_integer(amount) || json_integer_value(amount) < 0)
		*why = xstrdup("soTien is not a whole number of VND");
	else if (!t || map_parse_iso_time(t, &at) < 0)
		*why = xstrdup("thoiGian is not an ISO 8601 time");
	else if (json_object_get(fee, "maThamChieu") &&
		 !json_is_null(json_object_get(fee, "maThamChieu")) && !jstr(fee, "maThamChieu"))
		*why = xstrdup("maThamChieu is neither text nor null");
	if (*why)
		return -EINVAL;
	char *raw = json_dumps(fee, JSON_COMPACT | JSON_SORT_KEYS);
	struct store_fee_record r = {
		.ref = jstr(fee, "maThamChieu"),
		.mahoso = jstr(fee, "maHoSo"),
		.amount = json_integer_value(amount),
		.state = jstr(fee, "trangThai"),
		.method = jstr(fee, "hinhThuc"),
		.at_ms = at,
		.raw = raw,
	};
	int e = store_fee_put(pstore(p), &r, now_wall_ms());
	free(raw);
	if (e == -EINVAL)
		*why = xasprintf("trangThai \"%s\" or hinhThuc \"%s\" is not known, or a text "
				 "is too long",
				 r.state ? r.state : "", r.method ? r.method : "");
	return e;
}

/* A §5 item of a matched day as a mismatch (the reports' item is the detail). */
static void put_item_mismatch(struct pay_pass *p, json_t *item, const char *scope)
{
	const char *cls = jstr(item, "class");
	const char *ref = jstr(item, "ma_tham_chieu"), *mahoso = jstr(item, "ma_ho_so");
	const char *key = strcmp(cls, "portal_without_fee") == 0 || !ref ? mahoso : ref;
	char masked[64];
	if (!key)
		return;
	const char *id = jstr(item, "applicant_id");
	json_t *detail = json_deep_copy(item);
	if (id) /* the log is read by more people than the office: mask it here too */
		json_object_set_new(detail, "applicant_id",
				    json_string(report_mask_id(id, masked, sizeof(masked))));
	char *summary = xasprintf("%s: %s", report_class_label(cls), jstr(item, "explanation"));
	mismatch(p, cls, key, summary, detail, jstr(item, "agency"), mahoso, scope);
	free(summary);
}

/* A problem of a list (a row that is malformed or repeated) as a mismatch. */
static void put_problem(struct pay_pass *p, const json_t *pb, const char *source, const char *scope)
{
	const char *cls = jstr(pb, "class");
	const char *ref = jstr(pb, "ma_tham_chieu"), *txid = jstr(pb, "ma_giao_dich");
	char *key = ref ? xasprintf("%s/%s", ref, txid ? txid : "")
			: xasprintf("%s %s %s", source, scope, jstr(pb, "where"));
	char *summary =
		xasprintf("%s %s, %s: %s", source, scope, jstr(pb, "where"), jstr(pb, "why"));
	mismatch(p, cls && !strcmp(cls, "duplicate") ? "duplicate_row" : "malformed_row", key,
		 summary, json_deep_copy(pb), NULL, NULL, scope);
	free(summary);
	free(key);
}

static void ack_file(struct pay_pass *p, const char *name, bool whole)
{
	struct conn *files = p->pay ? p->pay->files : NULL;
	struct conn_batch b = {.token = (char *)name};
	if (!files || p->store_failed)
		return;
	if (files->type->ack(files, &b, whole,
			     whole ? NULL : "the list is incomplete (cut): send it whole again") <
	    0)
		flow_result_note(&p->res, CONN_RETRY, "cannot move %s out of %s", name,
				 files->name);
}

/* How the store names the rows of a day's list. */
static const char *list_source(const struct pay_pass *p)
{
	return p->pay && p->pay->files ? "file" : "list";
}

/* Queues, after the rows of a day read whole, the removal of what it no longer holds. */
static void queue_prune(struct pay_pass *p, bool fees, const char *source)
{
	json_t *flag = json_pack("[b]", fees);
	queue_put(p, PUT_PRUNE, flag, source, p->cur);
	json_decref(flag);
}

/* Writes up to PAY_GROUP_WRITES rows of the queue in one commit. Returns true when empty. */
static bool write_some(struct pay_pass *p)
{
	size_t n = 0;
	if (!p->puts)
		return true;
	group_begin(p);
	while (p->puts && n < PAY_GROUP_WRITES && !p->store_failed) {
		struct put_batch *b = p->puts;
		const char *scope = p->days[b->day].text;
		if (b->kind == PUT_ACK) {
			/* every row of the file before it is written: commit, then move
			 * the file out of the drop folder (whole: done/; cut: failed/),
			 * but only once the rows are on disk: inside another flow's
			 * open group, the commit waits for that group's */
			group_commit(p);
			struct store *s = pstore(p);
			uint64_t failed = 0, done = store_groups_committed(s, &failed);
			if (s && store_in_group(s) && !p->ack_after) {
				p->ack_after = done + 1;
				p->ack_failed = failed;
			}
			if (s && p->ack_after && failed != p->ack_failed) {
				/* the group that held the rows was lost: the file stays
				 * where it is, for the next pass to read again */
				group_write(p, -EIO, "keep the rows of a dropped file");
				return false;
			}
			if (s && p->ack_after && done < p->ack_after) {
				p->ack_wait = true;
				return false;
			}
			p->ack_after = 0;
			ack_file(p, b->source, json_is_true(json_array_get(b->rows, 0)));
			p->puts = b->next_batch;
			if (!p->puts)
				p->puts_tail = NULL;
			batch_free(b);
			group_begin(p);
			continue;
		}
		for (; b->next < json_array_size(b->rows) && n < PAY_GROUP_WRITES; n++) {
			json_t *row = json_array_get(b->rows, b->next++);
			char *why = NULL;
			int r;
			switch (b->kind) {
			case PUT_TX:
				if (group_write(p, put_tx(p, row, true, list_source(p), 0),
						"record a transaction"))
					p->n_tx++;
				break;
			case PUT_UNTRUSTED: {
				/* a problem of class bad_signature; its item, if it has a
				 * reference, is kept untrusted for the matcher */
				json_t *item = json_object_get(row, "item");
				if (json_is_object(item) && jstr(item, "MaThamChieu") &&
				    *jstr(item, "MaThamChieu")) {
					if (group_write(p,
							put_tx(p, item, false, list_source(p),
							       day_noon_ms(scope)),
							"record a transaction"))
						p->n_untrusted++;
				} else {
					put_problem(p, row, b->source, scope);
					p->n_problems++;
				}
				break;
			}
			case PUT_PROBLEM:
				put_problem(p, row, b->source, scope);
				p->n_problems++;
				break;
			case PUT_FEE:
				r = put_fee(p, row, &why);
				if (r == -EINVAL) {
					char *key = xasprintf("%s %s item %zu", b->source, scope,
							      b->next);
					char *summary = xasprintf("%s %s, item %zu: %s", b->source,
								  scope, b->next, why);
					mismatch(p, "malformed_fee", key, summary,
						 json_pack("{s:s, s:O}", "why", why, "item", row),
						 NULL, jstr(row, "maHoSo"), scope);
					free(summary);
					free(key);
					p->n_fee_bad++;
				} else if (group_write(p, r, "record a fee record")) {
					p->n_fees++;
				}
				free(why);
				break;
			case PUT_MISMATCH: put_item_mismatch(p, row, scope); break;
			case PUT_PRUNE: {
				unsigned gone = 0;
				bool fees = json_is_true(row);
				if (group_write(p,
						store_pay_prune(pstore(p), fees,
								p->days[b->day].ymd, p->start_ms,
								&gone),
						"remove what the source no longer lists") &&
				    gone)
					log_fields(LOG_NOTICE, PAY_FIELDS(p->pay),
						   "%s %s: %u %s no longer listed, removed",
						   b->source, scope, gone,
						   fees ? "fee records" : "transactions");
				break;
			}
			case PUT_ACK: break; /* handled above */
			}
			/* released as written: a million rows never all wait to be freed at once */
			json_array_set_new(b->rows, b->next - 1, json_null());
			if (p->store_failed)
				break;
		}
		if (b->next >= json_array_size(b->rows)) {
			p->puts = b->next_batch;
			if (!p->puts)
				p->puts_tail = NULL;
			batch_free(b);
		}
	}
	group_commit(p);
	return !p->puts;
}

/* ---- cursors: what the store holds of a day ------------------------------- */

static char *day_cursor_name(const struct payment *pay, int64_t ymd)
{
	return xasprintf("payment.%s.%lld", pay->f->name, (long long)ymd);
}

static void day_load(struct payment *pay, struct pay_day *d)
{
	char *name = day_cursor_name(pay, d->ymd), *v = NULL;
	if (pay->f->d->store && store_cursor_get(pay->f->d->store, name, &v) == 0 && v) {
		d->list_known = strstr(v, "list") != NULL;
		d->fees_known = strstr(v, "fees") != NULL;
	}
	free(v);
	free(name);
}

static void day_save(struct pay_pass *p, struct pay_day *d)
{
	char *name = day_cursor_name(p->pay, d->ymd);
	const char *v = d->list_known && d->fees_known ? "list,fees"
			: d->list_known		       ? "list"
			: d->fees_known		       ? "fees"
						       : "";
	struct store *s = pstore(p);
	if (s)
		group_write(p, store_cursor_set(s, name, v), "set a cursor");
	free(name);
}

/* ---- LIST ------------------------------------------------------------------ */

/* The rows of one day's list read whole (platform pages, or a file). */
/* Writes everything queued now (a page handed over by a connector). */
static void drain(struct pay_pass *p)
{
	while (p->puts && !p->store_failed && !p->ack_wait)
		write_some(p);
}

/*
 * Queues the rows of (a part of) a day's list: trusted transactions, rows
 * that do not verify, and problems. Returns false when a problem says the
 * rows from there on are unknown (a cut).
 */
static bool queue_list(struct pay_pass *p, json_t *txs, json_t *problems, const char *source)
{
	bool complete = true;
	/* a row that could not be read may still be a payment the list holds:
	 * after one, the day's stored rows are not pruned (see list_read) */
	json_t *bad = json_array(), *other = json_array();
	size_t i;
	json_t *pb;
	json_array_foreach (problems, i, pb) {
		const char *cls = jstr(pb, "class");
		json_array_append(cls && !strcmp(cls, "bad_signature") ? bad : other, pb);
		if (cls && strcmp(cls, "malformed") == 0)
			p->days[p->cur].unreadable++;
		if (json_is_true(json_object_get(pb, "cut")))
			complete = false;
	}
	queue_put(p, PUT_TX, txs, source, p->cur);
	queue_put(p, PUT_UNTRUSTED, bad, source, p->cur);
	queue_put(p, PUT_PROBLEM, other, source, p->cur);
	json_decref(bad);
	json_decref(other);
	return complete;
}

/* The day's list was read to its end: whole unless cut. Returns complete. */
static bool list_read(struct pay_pass *p, const char *source, bool complete)
{
	struct pay_day *d = &p->days[p->cur];
	if (complete) {
		if (!d->unreadable)
			queue_prune(p, false, source);
		else
			log_fields(
				LOG_WARNING, PAY_FIELDS(p->pay),
				"%s %s: %zu row%s could not be read: nothing stored of the day is "
				"taken as gone",
				source, d->text, d->unreadable, d->unreadable == 1 ? "" : "s");
		d->list_now = d->list_known = true;
	} else {
		flow_result_note(&p->res, CONN_RETRY,
				 "%s %s: the list is incomplete (see the payment.malformed_row "
				 "mismatches); the day waits for a complete one",
				 source, d->text);
	}
	return complete;
}

/* A page of the platform's list: written now, so that memory stays one page. */
static void on_list_page(struct conn *c, const struct paygov_day *page, void *ud)
{
	struct pay_pass *p = ud;
	(void)c;
	if (!p->pay)
		return;
	queue_list(p, page->txs, page->problems, "paygov");
	drain(p);
}

static void on_day_list(struct conn *c, enum conn_outcome o, const struct paygov_day *day,
			const char *why, void *ud)
{
	struct pay_pass *p = ud;
	p->waiting = false;
	if (p->pay) {
		conn_note(c, o, why);
		if (o == CONN_OK)
			list_read(p, "paygov", queue_list(p, day->txs, day->problems, "paygov"));
		else
			flow_result_note(&p->res, o, "list of %s: %s", p->days[p->cur].text,
					 why ? why : conn_outcome_name(o));
		step_soon(p->pay);
	}
	pass_unref(p);
}

/* A list file read on the worker thread. */
struct file_job {
	struct pay_pass *p; /* ref */
	struct conn *files; /* ref */
	struct conn *platform;
	char *name, *path;
	size_t max_bytes;
	int r;
	char *why;
	json_t *txs, *problems;
};

static void file_job_run(void *ud)
{
	struct file_job *j = ud;
	char *data = NULL;
	size_t len = 0;
	const struct paygov_ops *ops = j->platform->type->ext;
	j->r = read_file_bounded(j->path, j->max_bytes, &data, &len);
	if (j->r < 0) {
		j->why = xasprintf("%s: cannot read: %s", j->path, strerror(-j->r));
		return;
	}
	j->r = paygov_parse_list(data, len,
				 str_endswith(j->name, ".csv") ? PAYGOV_CSV : PAYGOV_JSON, &j->txs,
				 &j->problems);
	free(data);
	if (j->r < 0) {
		j->why = xasprintf("%s: cannot read the list: %s", j->path, strerror(-j->r));
		return;
	}
	/* signatures: a transaction that does not verify moves to the problems */
	json_t *trusted = json_array();
	size_t i;
	json_t *tx;
	json_array_foreach (j->txs, i, tx) {
		char *why = NULL;
		int c = ops->check_tx(j->platform, tx, &why);
		if (c == PAYGOV_TX_OK) {
			json_array_append(trusted, tx);
		} else {
			json_t *pb = json_pack(
				"{s:s, s:s, s:s, s:O}", "class",
				c == PAYGOV_TX_BAD_SIGNATURE ? "bad_signature" : "malformed",
				"where", "", "why", why ? why : "not trusted", "item", tx);
			char *where = xasprintf("%s, transaction %zu", j->name, i + 1);
			json_object_set_new(pb, "where", json_string(where));
			const char *ref = jstr(tx, "MaThamChieu");
			if (ref)
				json_object_set_new(pb, "ma_tham_chieu", json_string(ref));
			if (jstr(tx, "MaGiaoDich"))
				json_object_set_new(pb, "ma_giao_dich",
						    json_string(jstr(tx, "MaGiaoDich")));
			json_array_append_new(j->problems, pb);
			free(where);
		}
		free(why);
	}
	json_decref(j->txs);
	j->txs = trusted;
}

static void file_job_done(void *ud, bool ran)
{
	struct file_job *j = ud;
	struct pay_pass *p = j->p;
	p->waiting = false;
	if (ran && p->pay) {
		if (j->r < 0) {
			flow_result_note(&p->res, CONN_RETRY, "%s", j->why);
		} else {
			bool whole =
				list_read(p, j->name, queue_list(p, j->txs, j->problems, j->name));
			json_t *flag = json_pack("[b]", whole);
			queue_put(p, PUT_ACK, flag, j->name, p->cur);
			json_decref(flag);
		}
		step_soon(p->pay);
	}
	json_decref(j->txs);
	json_decref(j->problems);
	conn_unref(j->files);
	conn_unref(j->platform);
	free(j->name);
	free(j->path);
	free(j->why);
	free(j);
	pass_unref(p);
}

/* Asks for the list of the current day. Returns true when something is out. */
static bool start_list(struct pay_pass *p)
{
	struct payment *pay = p->pay;
	struct pay_day *d = &p->days[p->cur];
	if (!pay->files) {
		const struct paygov_ops *ops = pay->platform->type->ext;
		p->refs++;
		if (ops->day_pages(pay->platform, d->text, on_list_page, on_day_list, p) < 0) {
			p->refs--;
			flow_result_note(&p->res, CONN_FAIL, "cannot ask for the list of %s",
					 d->text);
			return false;
		}
		return true;
	}
	const struct files_ops *fops = pay->files->type->ext;
	char compact[9];
	snprintf(compact, sizeof(compact), "%lld", (long long)d->ymd);
	static const char *const exts[] = {"json", "csv"};
	for (size_t i = 0; i < LT_ARRAY_SIZE(exts); i++) {
		char *name = xasprintf("giao-dich-%s.%s", compact, exts[i]);
		char *path = NULL, *why = NULL;
		size_t max = 0;
		int r = fops->locate(pay->files, name, &path, &max, &why);
		if (r == -ENOENT) {
			free(name);
			continue;
		}
		if (r < 0) {
			struct conn_batch b = {.token = name};
			flow_result_note(&p->res, CONN_FAIL, "%s", why);
			(void)pay->files->type->ack(pay->files, &b, false, why);
			free(why);
			free(name);
			return false;
		}
		struct file_job *j = xcalloc(1, sizeof(*j));
		j->p = p;
		j->files = conn_ref(pay->files);
		j->platform = conn_ref(pay->platform);
		j->name = name;
		j->path = path;
		j->max_bytes = max;
		p->refs++;
		if (!pay->worker ||
		    worker_submit(pay->worker, file_job_run, file_job_done, j) < 0) {
			file_job_run(j);
			file_job_done(j, true);
			return false;
		}
		return true;
	}
	if (!d->list_known)
		log_fields(LOG_INFO, PAY_FIELDS(pay), "no list file for %s yet in %s", d->text,
			   pay->files->name);
	return false;
}

/* ---- FEES ----------------------------------------------------------------- */

/* A page of the fee records: written now, so that memory stays one page. */
static void on_fee_page(struct conn *c, enum conn_outcome o, json_t *records, const char *why,
			void *ud)
{
	struct pay_pass *p = ud;
	(void)c, (void)o, (void)why;
	if (!p->pay)
		return;
	queue_put(p, PUT_FEE, records, "le-phi", p->cur);
	drain(p);
}

static void on_fees(struct conn *c, enum conn_outcome o, json_t *records, const char *why, void *ud)
{
	struct pay_pass *p = ud;
	p->waiting = false;
	if (p->pay) {
		conn_note(c, o, why);
		struct pay_day *d = &p->days[p->cur];
		if (o == CONN_OK) {
			queue_put(p, PUT_FEE, records, "le-phi", p->cur);
			queue_prune(p, true, "le-phi");
			d->fees_now = d->fees_known = true;
		} else {
			flow_result_note(&p->res, o, "fee records of %s: %s", d->text,
					 why ? why : conn_outcome_name(o));
		}
		step_soon(p->pay);
	}
	pass_unref(p);
}

static bool start_fees(struct pay_pass *p)
{
	struct payment *pay = p->pay;
	const struct provincial_ops *ops = pay->fees->type->ext;
	p->refs++;
	if (ops->fee_pages(pay->fees, p->days[p->cur].text, on_fee_page, on_fees, p) < 0) {
		p->refs--;
		flow_result_note(&p->res, CONN_FAIL, "cannot ask for the fee records of %s",
				 p->days[p->cur].text);
		return false;
	}
	return true;
}

/* ---- QUERY ---------------------------------------------------------------- */

struct query_op {
	struct pay_pass *p;
	int64_t at_ms;
	char *mahoso;
};

static void on_query(struct conn *c, enum conn_outcome o, const struct paygov_answer *a,
		     const char *why, void *ud)
{
	struct query_op *q = ud;
	struct pay_pass *p = q->p;
	p->q_in_flight--;
	if (p->pay) {
		conn_note(c, o, why);
		if (o != CONN_OK) {
			p->n_query_failed++;
			flow_result_note(&p->res, o, "QUERY: %s", why ? why : conn_outcome_name(o));
		} else {
			json_t *tx = json_deep_copy(a->raw);
			if (!json_is_object(tx))
				tx = json_object();
			json_object_set_new(tx, "MaThamChieu", json_string(a->ma_tham_chieu));
			if (q->mahoso)
				json_object_set_new(tx, "MaHoSo", json_string(q->mahoso));
			if (a->verified && a->trang_thai) {
				/* an unknown reference (MaLoi 01) is a failed attempt */
				json_object_set_new(tx, "SoTien",
						    json_integer(a->so_tien < 0 ? 0 : a->so_tien));
				json_object_set_new(tx, "TrangThaiGD", json_integer(a->trang_thai));
			}
			group_begin(p);
			if (group_write(p,
					put_tx(p, tx, a->verified && a->trang_thai != 0, "query",
					       q->at_ms),
					"record a QUERY answer"))
				p->n_queries++;
			group_commit(p);
			if (!a->verified)
				log_fields(LOG_WARNING, PAY_FIELDS(p->pay),
					   "QUERY %s: the answer does not verify: %s",
					   a->ma_tham_chieu, a->why ? a->why : "");
			json_decref(tx);
		}
		step_soon(p->pay);
	}
	free(q->mahoso);
	free(q);
	pass_unref(p);
}

static void query_some(struct pay_pass *p)
{
	struct payment *pay = p->pay;
	const struct payment_opts *o = pay->f->opts;
	const struct paygov_ops *ops = pay->platform->type->ext;
	while (p->q_next < json_array_size(p->pending) &&
	       p->q_in_flight < (size_t)o->query_window && !p->stopping && !p->store_failed) {
		json_t *e = json_array_get(p->pending, p->q_next++);
		char when[16];
		struct query_op *q = xcalloc(1, sizeof(*q));
		q->p = p;
		q->at_ms = json_integer_value(json_object_get(e, "at_ms"));
		q->mahoso = jstr(e, "mahoso") ? xstrdup(jstr(e, "mahoso")) : NULL;
		map_format_vn_time(q->at_ms, when, sizeof(when));
		p->refs++;
		p->q_in_flight++;
		if (ops->query(pay->platform, jstr(e, "ref"), when, on_query, q) < 0) {
			p->refs--;
			p->q_in_flight--;
			p->n_query_failed++;
			flow_result_note(&p->res, CONN_FAIL, "cannot send QUERY %s",
					 jstr(e, "ref"));
			free(q->mahoso);
			free(q);
		}
	}
}

/* ---- MATCH and MONTH --------------------------------------------------------- */

static struct rec_job *rec_job_new(struct payment *pay, const char *from, const char *to,
				   unsigned formats)
{
	const struct payment_opts *o = pay->f->opts;
	struct rec_job *j = xcalloc(1, sizeof(*j));
	j->pay = pay;
	j->store_path = xstrdup(pay->f->d->cfg->store.path);
	j->field = xstrdup(pay->field);
	snprintf(j->from, sizeof(j->from), "%s", from);
	snprintf(j->to, sizeof(j->to), "%s", to);
	j->now_ms = now_wall_ms();
	j->pending_max_ms = o->query_max_age_ms;
	j->formats = formats;
	j->reports_dir = xstrdup(o->reports_dir);
	j->sources = json_pack("[s, s]", pay->files ? "files" : "paygov:list", "provincial:le-phi");
	return j;
}

static void rec_job_done(void *ud, bool ran);

static bool submit_rec(struct payment *pay, struct rec_job *j)
{
	if (pay->worker && worker_submit(pay->worker, rec_job_run, rec_job_done, j) == 0)
		return true;
	rec_job_run(j);
	rec_job_done(j, true);
	return false;
}

static void log_job(const struct rec_job *j, const char *what)
{
	log_fields(LOG_INFO, (const char *const[]){j->field, NULL},
		   "%s %s..%s in %.2f s (load %.2f, match %.2f, items %.2f, files %.2f, cleanup "
		   "%.2f): %lld transactions, %lld fee records, %lld portal entries",
		   what, j->from, j->to, j->seconds, j->phase_s[0], j->phase_s[1], j->phase_s[2],
		   j->phase_s[3], j->phase_s[4],
		   (long long)json_integer_value(json_object_get(j->inputs, "platform")),
		   (long long)json_integer_value(json_object_get(j->inputs, "provincial")),
		   (long long)json_integer_value(json_object_get(j->inputs, "portal")));
}

static void note_report(struct pay_pass *p, struct rec_job *j)
{
	if (j->r < 0) {
		flow_result_note(&p->res, CONN_RETRY, "reconciling %s..%s: %s", j->from, j->to,
				 j->err ? j->err : strerror(-j->r));
		return;
	}
	p->n_reports++;
	log_job(j, "reconciled");
}

static void json_job_free(void *ud)
{
	json_decref(ud);
	/* a million items freed leave the heap holed: give it back now, so
	 * that the next report starts from the daemon's own size */
	malloc_trim(0);
}

static void json_job_freed(void *ud, bool ran)
{
	if (!ran)
		json_decref(ud);
}

static void rec_job_done(void *ud, bool ran)
{
	struct rec_job *j = ud;
	struct pay_pass *p = j->p;
	/* the result's items go back to the worker to be freed after this */
	if (ran && j->result && j->pay->worker &&
	    worker_submit(j->pay->worker, json_job_free, json_job_freed, j->result) == 0)
		j->result = NULL;
	if (j->later) {
		j->pay->reports_pending--;
		if (!ran) {
			ctl_later_done(j->later, -ECANCELED, NULL,
				       "the payment flow stopped before the report was written");
		} else if (j->r < 0) {
			ctl_later_done(j->later, j->r, NULL, j->err);
		} else {
			json_t *res = json_pack(
				"{s:s, s:s, s:o, s:O, s:O, s:f, s:{s:f, s:f, s:f, s:f, s:f}}",
				"from", j->from, "to", j->to, "paths",
				j->paths ? json_incref(j->paths) : json_object(), "summary",
				j->summary, "inputs", j->inputs, "seconds", j->seconds, "phases_s",
				"load", j->phase_s[0], "match", j->phase_s[1], "items",
				j->phase_s[2], "files", j->phase_s[3], "cleanup", j->phase_s[4]);
			log_job(j, "report written:");
			ctl_later_done(j->later, 0, res, NULL);
		}
	}
	if (p) {
		p->waiting = false;
		if (ran && p->pay) {
			note_report(p, j);
			if (j->daily && j->r >= 0) {
				struct pay_day *d = &p->days[j->day];
				d->matched = true;
				p->n_days_matched++;
				json_t *s = j->summary;
				for (int c = 0; c < REC__COUNT; c++)
					p->count[c] += (size_t)json_integer_value(json_object_get(
						json_object_get(s,
								rec_class_name((enum rec_class)c)),
						"count"));
				json_decref(p->pay->last_summary);
				p->pay->last_summary =
					json_pack("{s:s, s:O}", "day", d->text, "summary", s);
				/* the day's mismatches; once written, what it no longer has */
				queue_put(p, PUT_MISMATCH, j->mismatches, NULL, j->day);
				p->to_clear = j->day + 1;
			}
		}
		if (p->pay)
			step_soon(p->pay);
		pass_unref(p);
	}
	rec_job_free(j);
}

/* Resolves the day's payment mismatches a complete matching no longer found. */
static void clear_day(struct pay_pass *p, struct pay_day *d)
{
	static const char *const kinds[] = {"malformed_row", "duplicate_row", "malformed_fee"};
	struct store *s = pstore(p);
	unsigned n = 0;
	char kind[64];
	if (!s || p->store_failed)
		return;
	int64_t now = now_wall_ms();
	for (int c = 0; c < REC__COUNT; c++) {
		if (c == REC_MATCHED)
			continue;
		snprintf(kind, sizeof(kind), "payment.%s", rec_class_name((enum rec_class)c));
		if (store_mismatch_clear_unseen_in(s, kind, d->text, p->start_ms, now, &n) == 0)
			p->n_cleared += n;
	}
	/* the rows of a list or of the fee records read whole in this pass */
	for (size_t i = 0; i < LT_ARRAY_SIZE(kinds); i++) {
		if (i < 2 ? !d->list_now : !d->fees_now)
			continue;
		snprintf(kind, sizeof(kind), "payment.%s", kinds[i]);
		if (store_mismatch_clear_unseen_in(s, kind, d->text, p->start_ms, now, &n) == 0)
			p->n_cleared += n;
	}
}

static bool start_match(struct pay_pass *p, size_t day)
{
	struct payment *pay = p->pay;
	struct pay_day *d = &p->days[day];
	if (!d->list_known || !d->fees_known)
		return false;
	struct rec_job *j = rec_job_new(pay, d->text, d->text, pay->formats);
	j->p = p;
	j->day = day;
	j->daily = true;
	p->refs++;
	return submit_rec(pay, j);
}

/* The month of ymd: its first day; the last day the pass matched in it. */
static bool start_month(struct pay_pass *p)
{
	struct payment *pay = p->pay;
	while (p->month_next) {
		int64_t month = p->month_next / 100;
		/* the next month matched after this one, if any */
		int64_t last = 0, next = 0;
		for (size_t i = 0; i < p->n_days; i++) {
			if (!p->days[i].matched)
				continue;
			if (p->days[i].ymd / 100 == month)
				last = p->days[i].ymd;
			else if (p->days[i].ymd / 100 > month && !next)
				next = p->days[i].ymd / 100 * 100 + 1;
		}
		int64_t first = p->month_next;
		p->month_next = next;
		if (!last)
			continue;
		char from[11], to[11];
		day_text(first, from);
		day_text(last, to);
		struct rec_job *j = rec_job_new(pay, from, to, pay->formats);
		j->p = p;
		p->refs++;
		return submit_rec(pay, j);
	}
	return false;
}

/* ---- the pass -------------------------------------------------------------- */

static void end_pass(struct payment *pay)
{
	struct pay_pass *p = pay->pass;
	const struct payment_opts *o = pay->f->opts;
	unsigned gz = 0;
	char *err = NULL;
	if (o->compress_after_ms > 0 && !p->stopping &&
	    report_compress_older(o->reports_dir, o->compress_after_ms, &gz, &err) < 0) {
		log_fields(LOG_WARNING, PAY_FIELDS(pay), "compressing old reports: %s",
			   err ? err : "failed");
		free(err);
	}
	pay->pass = NULL;
	flow_count(pay->f, p->n_tx + p->n_fees + p->n_queries,
		   p->n_problems + p->n_fee_bad + p->n_query_failed);
	char *counts = xasprintf(
		"%zu day%s matched of %zu; %zu transactions (%zu untrusted), %zu fee records, "
		"%zu QUERY answers, %zu bad rows; %zu matched, %zu mismatches seen, %zu cleared",
		p->n_days_matched, p->n_days_matched == 1 ? "" : "s", p->n_days, p->n_tx,
		p->n_untrusted, p->n_fees, p->n_queries, p->n_problems + p->n_fee_bad,
		p->count[REC_MATCHED], p->n_mismatches, p->n_cleared);
	enum conn_outcome oc = p->stopping ? CONN_RETRY : p->res.outcome;
	if (p->stopping)
		flow_finish(pay->f, oc, "stopped; %s", counts);
	else if (p->res.why)
		flow_finish(pay->f, oc, "%s; %s", p->res.why, counts);
	else
		flow_finish(pay->f, oc, "%s", counts);
	free(counts);
	p->pay = NULL;
	pass_unref(p);
}

/* One turn: write what is queued, then move the pass on. */
static int on_step(sd_event_source *s, void *userdata)
{
	struct payment *pay = userdata;
	struct pay_pass *p = pay->pass;
	(void)s;
	sd_event_source_disable_unref(pay->step);
	pay->step = NULL;
	if (!p)
		return 0;
	if (p->puts && !p->store_failed) {
		if (!write_some(p)) {
			if (p->ack_wait) {
				p->ack_wait = false;
				step_later(pay, PAY_ACK_RETRY_US);
			} else {
				step_soon(pay);
			}
			return 0;
		}
	}
	if (p->waiting)
		return 0;
	if (p->stopping || p->store_failed) {
		if (!p->q_in_flight) /* the answers still coming are not lost: wait for them */
			end_pass(pay);
		return 0;
	}
	for (;;) {
		if (p->phase == PH_DAYS) {
			if (p->cur >= p->n_days) {
				p->phase = PH_QUERY;
				p->cur = 0;
				continue;
			}
			int st = p->step_of_day++;
			if (st == 2) {
				day_save(p, &p->days[p->cur]);
				p->cur++;
				p->step_of_day = 0;
				continue;
			}
			if ((st == 0 ? start_list(p) : start_fees(p))) {
				p->waiting = true;
				return 0;
			}
			continue;
		}
		if (p->phase == PH_QUERY) {
			const struct payment_opts *o = pay->f->opts;
			if (!p->pending) {
				int64_t now = now_wall_ms();
				p->pending = pstore(p) && o->query_limit
						     ? store_pay_pending(pstore(p),
									 now - o->query_max_age_ms,
									 now - o->query_min_age_ms,
									 (unsigned)o->query_limit)
						     : json_array();
				if (!p->pending) {
					p->pending = json_array();
					flow_result_note(&p->res, CONN_RETRY,
							 "store: cannot list the payments awaiting "
							 "confirmation");
				}
			}
			query_some(p);
			if (p->q_in_flight)
				return 0;
			p->phase = PH_MATCH;
			p->cur = 0;
			continue;
		}
		if (p->phase == PH_MATCH) {
			if (p->to_clear) {
				/* the day's mismatches are written: resolve what it no longer has
				 */
				clear_day(p, &p->days[p->to_clear - 1]);
				p->to_clear = 0;
			}
			if (p->cur >= p->n_days) {
				const struct payment_opts *o = pay->f->opts;
				p->phase = PH_MONTH;
				for (size_t i = 0; o->monthly && i < p->n_days && !p->month_next;
				     i++)
					if (p->days[i].matched)
						p->month_next = p->days[i].ymd / 100 * 100 + 1;
				continue;
			}
			if (start_match(p, p->cur++)) {
				p->waiting = true;
				return 0;
			}
			continue;
		}
		if (p->phase == PH_MONTH) {
			if (start_month(p)) {
				p->waiting = true;
				return 0;
			}
			p->phase = PH_DONE;
		}
		break;
	}
	end_pass(pay);
	return 0;
}

static void step_soon(struct payment *pay)
{
	if (!pay || pay->step)
		return;
	if (sd_event_add_defer(pay->f->d->ev, &pay->step, on_step, pay) < 0)
		pay->step = NULL;
}

static int on_step_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	(void)usec;
	return on_step(s, userdata);
}

/* The next turn in usec (waiting for another flow's group to commit). */
static void step_later(struct payment *pay, uint64_t usec)
{
	if (!pay || pay->step)
		return;
	if (sd_event_add_time_relative(pay->f->d->ev, &pay->step, CLOCK_MONOTONIC, usec, 1000,
				       on_step_timer, pay) < 0) {
		pay->step = NULL;
		step_soon(pay);
	}
}

/* ---- flow type ---------------------------------------------------------------- */

static int payment_start(struct flow *f)
{
	struct payment *pay = f->priv;
	const struct payment_opts *o = f->opts;
	if (!pay || pay->pass)
		return -EBUSY;
	if (!f->d->store)
		return -EIO;
	struct pay_pass *p = xcalloc(1, sizeof(*p));
	p->refs = 1;
	p->pay = pay;
	p->start_ms = now_wall_ms();
	p->n_days = (size_t)o->days + (o->today ? 1 : 0);
	p->days = xcalloc(p->n_days, sizeof(*p->days));
	for (size_t i = 0; i < p->n_days; i++) {
		struct pay_day *d = &p->days[i];
		d->ymd = store_pay_day(p->start_ms - (int64_t)(o->days - (int64_t)i) * DAY_MS);
		day_text(d->ymd, d->text);
		day_load(pay, d);
	}
	pay->pass = p;
	step_soon(pay);
	log_fields(LOG_INFO, PAY_FIELDS(pay), "pass started: %s..%s", p->days[0].text,
		   p->days[p->n_days - 1].text);
	return 0;
}

static void payment_stop(struct flow *f)
{
	struct payment *pay = f->priv;
	if (!pay || !pay->pass)
		return;
	pay->pass->stopping = true;
	step_soon(pay);
}

static json_t *payment_status(struct flow *f)
{
	struct payment *pay = f->priv;
	const struct payment_opts *o = f->opts;
	if (!pay)
		return NULL;
	json_t *j = json_pack("{s:s, s:s, s:s?, s:s, s:I}", "platform", pay->platform->name, "fees",
			      pay->fees->name, "list_files", pay->files ? pay->files->name : NULL,
			      "reports_dir", o->reports_dir, "reports_running",
			      (json_int_t)pay->reports_pending);
	json_object_set(j, "last_day", pay->last_summary ? pay->last_summary : json_null());
	if (pay->pass) {
		struct pay_pass *p = pay->pass;
		static const char *const phases[] = {"days", "query", "match", "month", "done"};
		json_object_set_new(
			j, "pass",
			json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "phase", phases[p->phase],
				  "day", p->days[LT_MIN(p->cur, p->n_days - 1)].text,
				  "transactions", (json_int_t)p->n_tx, "fee_records",
				  (json_int_t)p->n_fees, "queries", (json_int_t)p->n_queries,
				  "days_matched", (json_int_t)p->n_days_matched, "mismatches",
				  (json_int_t)p->n_mismatches));
	}
	return j;
}

static void payment_free(struct flow *f)
{
	struct payment *pay = f->priv;
	if (!pay)
		return;
	sd_event_source_disable_unref(pay->step);
	pay->step = NULL;
	if (pay->pass) {
		pay->pass->pay = NULL;
		pass_unref(pay->pass);
		pay->pass = NULL;
	}
	/* jobs still queued get done(ran = false): operators are told */
	worker_free(pay->worker);
	conn_unref(pay->platform);
	conn_unref(pay->fees);
	conn_unref(pay->files);
	json_decref(pay->last_summary);
	free(pay->field);
	free(pay);
	f->priv = NULL;
}

static int payment_init(struct flow *f, bool check_only, char **err)
{
	const struct payment_opts *o = f->opts;
	struct conn *platform = flow_conn(f, "platform", o->platform, &conn_paygov, err);
	if (!platform)
		return -EINVAL;
	struct conn *fees = flow_conn(f, "fees", o->fees, &conn_provincial, err);
	if (!fees)
		return -EINVAL;
	struct conn *files = NULL;
	if (o->list_files && !(files = flow_conn(f, "list_files", o->list_files, &conn_files, err)))
		return -EINVAL;
	unsigned formats = report_formats_parse(o->report_formats, err);
	if (!formats) {
		char *e = *err;
		*err = xasprintf("report_formats: %s", e);
		free(e);
		return -EINVAL;
	}
	if (o->query_min_age_ms >= o->query_max_age_ms) {
		*err = xstrdup("query_min_age must be shorter than query_max_age");
		return -EINVAL;
	}
	if (check_only)
		return 0;
	struct payment *pay = xcalloc(1, sizeof(*pay));
	pay->f = f;
	pay->platform = conn_ref(platform);
	pay->fees = conn_ref(fees);
	pay->files = files ? conn_ref(files) : NULL;
	pay->formats = formats | (o->report_matched ? REPORT_INCLUDE_MATCHED : 0);
	pay->field = xasprintf("FLOW=%s", f->name);
	pay->worker = worker_new(f->d->ev, "lt-payment");
	if (!pay->worker)
		log_fields(LOG_WARNING, PAY_FIELDS(pay),
			   "no worker thread (%s): matching runs on the loop", strerror(errno));
	f->priv = pay;
	return 0;
}

int flow_payment_report(struct flow *f, const char *from, const char *to, unsigned formats,
			struct ctl_later *later, char **err)
{
	struct payment *pay = f && f->type == &flow_payment ? f->priv : NULL;
	int64_t a = day_noon_ms(from), b = day_noon_ms(to);
	if (!pay) {
		*err = xstrdup("no payment flow to reconcile with");
		return -ENOENT;
	}
	if (a < 0 || b < 0) {
		*err = xasprintf("dates are YYYY-MM-DD: --from '%s', --to '%s'", from ? from : "",
				 to ? to : "");
		return -EINVAL;
	}
	if (b < a || (b - a) / DAY_MS >= PAY_MAX_DAYS) {
		*err = xasprintf("--from %s --to %s: the range must run forward and span at most "
				 "%d days",
				 from, to, PAY_MAX_DAYS);
		return -EINVAL;
	}
	struct rec_job *j = rec_job_new(pay, from, to, formats ? formats : pay->formats);
	j->later = later;
	pay->reports_pending++;
	submit_rec(pay, j);
	return 0;
}

const struct flow_type flow_payment = {
	.name = "payment",
	.description = "online fee payments reconciled against the fee records and the portal, "
		       "with the office's reports and payment mismatches",
	.options = payment_options,
	.opts_size = sizeof(struct payment_opts),
	.init = payment_init,
	.free = payment_free,
	.start = payment_start,
	.stop = payment_stop,
	.status = payment_status,
};
