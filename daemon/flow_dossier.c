/*
 * flow_dossier: every dossier change of the provincial system reaches the
 * National Public Service Portal, in order per dossier, exactly once,
 * across crashes, full disks and outages of days (dossier-spec §5).
 *
 * Three loops share one pass, driven by one step function on the event loop:
 *
 *   FEED     pages of the provincial change feed (provincial connector) are
 *            mapped (header: mapping "dossier", history row: "progress") and
 *            put in the outbox together with the feed cursor, in the same
 *            transaction: the cursor never moves past a change that is not
 *            durably stored. A change that cannot be mapped becomes a dead
 *            letter and a mismatch, never a silent skip.
 *   PUSH     what the outbox says is due goes to the portal (dvcqg
 *            connector): a dossier's header first (create while the portal
 *            is not known to have it, update after), then its progress rows in
 *            order. Rows are marked "sending" and that is committed before a
 *            request carries them; acknowledgements are recorded after. A
 *            refusal for good is a dead letter; anything else is retried with
 *            an exponential back-off per dossier.
 *   DOUBT    rows left "sending" by a crash, or whose request had an unclear
 *            end, are looked up on the portal (TraCuuHoSo) before anything of
 *            their dossier goes out again: present rows count as sent, absent
 *            ones are sent again. No row is sent twice.
 *
 * Writes are grouped: the step commits once (one fsync) for everything the
 * completions since the last step recorded plus the rows it is about to
 * send, then sends. A failed commit loses the group, never half of it: the
 * pass then stops, and the next pass starts again from what is durable (the
 * feed cursor, rows in doubt).
 *
 * Deadlines: every deadline_interval the dossiers past their due date and
 * not finished are flagged "dossier.overdue" (cleared once they finish or
 * their due date moves); a dossier that finishes after its due date is
 * recorded "dossier.late".
 *
 * A pass lasts pass_length and then ends with its counts (one run row);
 * with a short interval the next one follows at once. Only one pass of the
 * outbox runs at a time (the outbox is the store's, not the flow's): a
 * second dossier flow in one configuration is refused.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "conf.h"
#include "daemon.h"
#include "dvcqg.h"
#include "flow.h"
#include "flow_dossier.h"
#include "jsontext.h"
#include "log.h"
#include "mapping.h"
#include "provincial.h"
#include "store.h"
#include "util.h"
#include "worker.h"

#define DOSSIER_LOOKUPS_MAX  32	    /* TraCuuHoSo requests in flight for doubt */
#define DOSSIER_STEP_US	     2000   /* completions gathered into one commit */
#define DOSSIER_OVERDUE_MAX  100000 /* dossiers flagged overdue in one sweep */
#define DOSSIER_FEED_BACKOFF 60000  /* most ms between feed reads that fail */

struct dossier_opts {
	char *source;
	char *target;
	char *header_mapping;
	char *progress_mapping;
	int64_t poll_ms;
	int64_t pass_length_ms;
	int64_t max_in_flight;
	int64_t retry_min_ms;
	int64_t retry_max_ms;
	bool lookup_unknown;
	int64_t deadline_interval_ms;
};

#define O(f) offsetof(struct dossier_opts, f)
static const struct conf_option dossier_options[] = {
	{"source", CONF_STRING, NULL, 0, 0, NULL, O(source), CONF_REQUIRED,
	 "Connector of the provincial system (type provincial): its dossier change feed."},
	{"target", CONF_STRING, NULL, 0, 0, NULL, O(target), CONF_REQUIRED,
	 "Connector of the National Public Service Portal (type dvcqg)."},
	{"header_mapping", CONF_STRING, "dossier", 0, 0, NULL, O(header_mapping), 0,
	 "Field map (mappings/*.json \"name\") from a feed change to the portal's dossier "
	 "header (DongBoHoSoMC)."},
	{"progress_mapping", CONF_STRING, "progress", 0, 0, NULL, O(progress_mapping), 0,
	 "Field map from a feed change to the portal's processing-history row "
	 "(CapNhatTienDoHoSoMC)."},
	{"poll", CONF_DURATION, "1s", 50, 3600000, NULL, O(poll_ms), 0,
	 "Once the feed is read to its end, how long until it is read again (and how often "
	 "the outbox is looked at for work whose back-off has passed)."},
	{"pass_length", CONF_DURATION, "5min", 1000, 86400000, NULL, O(pass_length_ms), 0,
	 "A pass ends after this long with its counts (one run in `lienthongctl status`); "
	 "the next begins after interval."},
	{"max_in_flight", CONF_INT, "2000", 1, 10000, NULL, O(max_in_flight), 0,
	 "Headers and progress rows handed to the portal connector at once (it sends them in "
	 "batches, at most its concurrency at a time)."},
	{"retry_min", CONF_DURATION, "5s", 10, 86400000, NULL, O(retry_min_ms), 0,
	 "First wait before a dossier whose request failed is tried again; doubles with every "
	 "failure."},
	{"retry_max", CONF_DURATION, "1h", 10, 7LL * 86400000, NULL, O(retry_max_ms), 0,
	 "Longest wait between two attempts for one dossier (an outage of days is retried at "
	 "this pace)."},
	{"lookup_unknown", CONF_BOOL, "false", 0, 0, NULL, O(lookup_unknown), 0,
	 "Look a dossier up on the portal (TraCuuHoSo) before its first header, when it is not "
	 "known whether the portal has it (e.g. another system synced it before). false: send "
	 "a create; an \"already exists\" answer turns it into an update."},
	{"deadline_interval", CONF_DURATION, "1min", 1000, 86400000, NULL, O(deadline_interval_ms),
	 0,
	 "How often overdue dossiers (past their due date, not finished) are flagged in the "
	 "mismatch log, and flags of dossiers no longer overdue cleared."},
	CONF_OPTION_END,
};
#undef O

struct dossier;

/* One pass. Refcounted: every request in flight holds a reference. */
struct dpass {
	unsigned refs;
	struct dossier *df; /* NULL once the flow is gone */
	int64_t start_ms;
	uint64_t end_us; /* CLOCK_MONOTONIC: no new work after this */
	bool stopping, ending, store_failed;
	bool group_open;
	size_t writes;	  /* in the open group */
	size_t in_flight; /* requests outstanding (feed, pushes, look-ups) */
	size_t items_in_flight;
	size_t lookups;
	int64_t batch; /* last batch number given to store_outbox_sending */
	/* feed: cursor is durable (stored with the changes before it);
	 * read_cursor is where the next read starts, ahead of it by the pages
	 * still being prepared and stored (NULL: none, read from cursor) */
	char *cursor, *read_cursor;
	unsigned pages_pending;
	bool feed_busy, caught_up;
	uint64_t next_feed_us;
	unsigned feed_failures;
	/* headers and look-ups in flight, by MaHoSo (due() hands those out again) */
	json_t *busy;
	/* rows in doubt to look up: MaHoSo -> {"ids": [..], "rows": [..], "tries"} */
	json_t *doubt;
	uint64_t next_doubt_us;
	uint64_t next_deadline_us;
	uint64_t next_due_us;
	uint64_t push_hold_until_us; /* nothing got through lately: wait (push_outcome) */
	unsigned push_failures;
	/* counts */
	size_t n_changes, n_enqueued, n_unmappable, n_malformed, n_truncated;
	size_t n_headers, n_rows, n_failed, n_dead, n_resolved, n_resent, n_overdue, n_late;
	struct flow_result res;
};

struct dossier {
	struct flow *f;
	struct conn *src; /* ref */
	struct conn *dst; /* ref */
	const struct map_record *hmap, *pmap;
	char *field;	   /* "FLOW=name" */
	char *cursor_name; /* "dossier.<flow>.cursor" */
	char *late_name;   /* "dossier.<flow>.late_since_ms": see note_late() */
	int64_t late_since_ms;
	struct dpass *pass;
	sd_event_source *step;
	uint64_t step_at_us;
	struct worker *worker; /* prepares feed pages; NULL: on the loop */
};

#define DF_FIELDS(d) ((const char *const[]){(d)->field, NULL})

static void pass_unref(struct dpass *p)
{
	if (!p || --p->refs > 0)
		return;
	json_decref(p->busy);
	json_decref(p->doubt);
	free(p->cursor);
	free(p->read_cursor);
	flow_result_clear(&p->res);
	free(p);
}

static void step_at(struct dossier *df, uint64_t at_us);
static void step_soon(struct dossier *df)
{
	if (df)
		step_at(df, now_mono_us() + DOSSIER_STEP_US);
}

/* ---- store group ---------------------------------------------------------- */

static struct store *dstore(struct dpass *p)
{
	return p->df ? p->df->f->d->store : NULL;
}

/* Notes the result of a write; a failure stops the pass (the group is lost). */
static bool group_write(struct dpass *p, int r, const char *what)
{
	if (!flow_store_ok(&p->res, &p->store_failed, r, what))
		return false;
	p->writes++;
	return true;
}

/* Opens the group if needed; false when the store cannot take writes. */
static bool group_need(struct dpass *p)
{
	struct store *s = dstore(p);
	if (!s || p->store_failed)
		return false;
	if (!p->group_open) {
		int r = store_begin(s);
		if (r < 0)
			return group_write(p, r, "begin a transaction");
		p->group_open = true;
		p->writes = 0;
	}
	return true;
}

/* Commits the group (one fsync). false when it failed: the group is lost. */
static bool group_commit(struct dpass *p)
{
	struct store *s = dstore(p);
	if (!s || !p->group_open)
		return !p->store_failed;
	p->group_open = false;
	p->writes = 0;
	return group_write(p, store_commit(s), "commit");
}

/* Records a mismatch of kind "dossier.<what>" for key. */
static void mismatch(struct dpass *p, const char *what, const char *key, const char *summary,
		     json_t *detail, const char *raw, const char *agency, const char *mahoso)
{
	char kind[64];
	snprintf(kind, sizeof(kind), "dossier.%s", what);
	char *dtext = detail ? json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	struct mismatch m = {
		.kind = kind,
		.key = key,
		.summary = summary,
		.detail = dtext,
		.raw = raw,
		.agency = agency,
		.dossier = mahoso,
		.seen_ms = now_wall_ms(),
	};
	int64_t id = 0;
	bool is_new = false;
	if (group_need(p)) {
		int r = store_mismatch_upsert(dstore(p), &m, &id, &is_new);
		/* deadlines are the office's daily list, not news for the journal */
		bool deadline = !strcmp(what, "overdue") || !strcmp(what, "late");
		if (group_write(p, r, "record a mismatch") && is_new)
			log_fields(deadline ? LOG_INFO : LOG_NOTICE, DF_FIELDS(p->df),
				   "mismatch %s %s: %s", kind, key, summary);
	}
	json_decref(detail);
	free(dtext);
}

static int64_t backoff_ms(const struct dossier *df, int64_t attempts)
{
	const struct dossier_opts *o = df->f->opts;
	int64_t ms = o->retry_min_ms;
	for (int64_t i = 1; i < attempts && ms < o->retry_max_ms; i++)
		ms *= 2;
	ms = LT_MIN(ms, o->retry_max_ms);
	/* up to a quarter more, so that dossiers failed together spread out */
	return ms + (int64_t)rand_below((uint64_t)ms / 4 + 1);
}

/* ---- FEED ------------------------------------------------------------------- */

static int64_t vn_time_ms(const json_t *obj, const char *field)
{
	int64_t ms = 0;
	const char *t = json_string_value(json_object_get(obj, field));
	if (t && map_parse_vn_time(t, &ms) < 0)
		ms = 0;
	return ms;
}

/*
 * A change that names no dossier (or one no dossier can have): it cannot
 * become a dead letter of a dossier, so it is a mismatch of its own, keyed
 * by its place in the feed.
 */
static void change_malformed(struct dpass *p, const json_t *change, size_t index,
			     const char *reason, const char *raw)
{
	char key[96];
	json_t *seq = json_object_get(change, "seq");
	if (json_is_integer(seq))
		snprintf(key, sizeof(key), "seq %lld", (long long)json_integer_value(seq));
	else
		snprintf(key, sizeof(key), "cursor %.64s item %zu", p->cursor ? p->cursor : "-",
			 index);
	p->n_malformed++;
	flow_count(p->df->f, 0, 1);
	mismatch(p, "malformed", key,
		 "Thay đổi hồ sơ từ hệ thống của tỉnh không đúng định dạng (không xác định được "
		 "hồ sơ)",
		 json_pack("{s:s, s:s?}", "reason", reason, "cursor", p->cursor), raw, NULL, NULL);
}

/* A change that cannot be put in the outbox as it is: a dead letter and a mismatch. */
static void change_unmappable(struct dpass *p, const char *mahoso, const char *reason,
			      json_t *problems, const char *raw, const char *agency)
{
	int64_t letter = 0;
	if (!group_need(p))
		return;
	int r = store_outbox_dead(dstore(p), mahoso, "change", NULL, reason, raw, now_wall_ms(),
				  &letter);
	if (r == -EINVAL || r == -E2BIG) {
		change_malformed(p, NULL, 0, "the dossier code is not usable", raw);
		return;
	}
	if (!group_write(p, r, "record a dead letter"))
		return;
	p->n_unmappable++;
	flow_count(p->df->f, 0, 1);
	mismatch(p, "unmappable", mahoso,
		 "Thay đổi hồ sơ từ hệ thống của tỉnh không chuyển được sang dữ liệu của Cổng "
		 "DVCQG (mã, trường bắt buộc hoặc định dạng không hợp lệ)",
		 json_pack("{s:s, s:O?, s:I}", "reason", reason, "problems", problems,
			   "dead_letter", (json_int_t)letter),
		 raw, agency, mahoso);
}

/* "field: reason; field: reason" from map problems. */
static char *problems_text(const json_t *problems)
{
	struct dynbuf b;
	size_t i;
	json_t *pr;
	dynbuf_init(&b, 2048);
	json_array_foreach (problems, i, pr) {
		const char *field = json_string_value(json_object_get(pr, "field"));
		const char *reason = json_string_value(json_object_get(pr, "reason"));
		dynbuf_printf(&b, "%s%s: %s", i ? "; " : "", field ? field : "?",
			      reason ? reason : "?");
	}
	char *t = dynbuf_steal(&b, NULL);
	return t ? t : xstrdup("cannot be mapped");
}

/* Maps one change with m; NULL when it does not map (*problems set). */
static json_t *map_change(const struct map_record *m, const json_t *change, json_t **problems,
			  json_t **notes)
{
	json_t *out = NULL;
	*problems = NULL;
	int r = map_apply_notes(m, change, 0, &out, problems, notes);
	if (r < 0 && !*problems)
		*problems = json_pack("[{s:s, s:s}]", "field", "", "reason", strerror(-r));
	return r == 0 ? out : NULL;
}

/*
 * A change finished its dossier after the due date: the next deadline
 * sweep records the late dossiers finished since the earliest such change.
 * That watermark is a cursor written in the same transaction as the
 * change, so a pass that ends (or a crash) before its sweep loses nothing.
 */
static int note_late(struct store *s, struct dossier *df, int64_t finished_ms)
{
	char v[24];
	if (df->late_since_ms && df->late_since_ms <= finished_ms)
		return 0;
	snprintf(v, sizeof(v), "%lld", (long long)finished_ms);
	int r = store_cursor_set(s, df->late_name, v);
	if (r == 0)
		df->late_since_ms = finished_ms;
	return r;
}

/*
 * A change as the loop stores it: mapped, and its header and history row
 * serialised, by change_prepare() — pure work on immutable mappings and the
 * change, so a page of them is prepared on the flow's worker thread while
 * the loop pushes (see worker.h) — then stored by change_commit() on the
 * loop, in order.
 */
struct prepared {
	/* PREP_END (zero): not prepared — the end of a page's calloc'd array */
	enum { PREP_END, PREP_OK, PREP_NOT_CHANGE, PREP_NO_DOSSIER, PREP_UNMAPPABLE } kind;
	char *mahoso;
	char *agency;
	char *htext, *rtext;
	char *raw;	  /* the change as text, for a dead letter or mismatch only */
	json_t *problems; /* PREP_UNMAPPABLE */
	json_t *notes;	  /* truncations, header's then row's */
	int status;
	int paid_online, fee_lines; /* the header's, for the payment flow */
	char *applicant_id;
	int64_t due_ms, changed_ms, seq;
};

static void prepared_clear(struct prepared *c)
{
	free(c->mahoso);
	free(c->agency);
	free(c->applicant_id);
	free(c->htext);
	free(c->rtext);
	free(c->raw);
	json_decref(c->problems);
	json_decref(c->notes);
	memset(c, 0, sizeof(*c));
}

/* Maps and serialises change (any JSON value of a feed page) into *c. */
static void change_prepare(const struct map_record *hmap, const struct map_record *pmap,
			   const json_t *change, struct prepared *c)
{
	json_t *problems = NULL, *notes_h = NULL, *notes_p = NULL, *row = NULL, *hdr = NULL;
	const char *mahoso;

	memset(c, 0, sizeof(*c));
	if (!json_is_object(change) || !json_is_object(json_object_get(change, "hoSo"))) {
		c->kind = PREP_NOT_CHANGE;
		c->raw = jsontext_dumps(change, NULL);
		return;
	}
	hdr = map_change(hmap, change, &problems, &notes_h);
	if (hdr)
		row = map_change(pmap, change, &problems, &notes_p);
	mahoso = json_string_value(json_object_get(hdr ? hdr : row, "MaHoSo"));
	if (!mahoso)
		mahoso = json_string_value(
			json_object_get(json_object_get(change, "hoSo"), "maHoSo"));
	if (!mahoso)
		mahoso = json_string_value(json_object_get(change, "maHoSo"));
	c->mahoso = mahoso ? xstrdup(mahoso) : NULL;
	c->seq = json_integer_value(json_object_get(change, "seq"));
	if (!hdr || !row) {
		c->kind = mahoso ? PREP_UNMAPPABLE : PREP_NO_DOSSIER;
		c->raw = jsontext_dumps(change, NULL);
		c->problems = problems;
		problems = NULL;
		goto out;
	}
	c->kind = PREP_OK;
	c->htext = jsontext_dumps(hdr, NULL);
	c->rtext = jsontext_dumps(row, NULL);
	const char *agency = json_string_value(json_object_get(hdr, "DonViXuLy"));
	c->agency = agency ? xstrdup(agency) : NULL;
	c->status = (int)json_integer_value(json_object_get(hdr, "TrangThaiHoSo"));
	c->paid_online = (int)json_integer_value(json_object_get(hdr, "DuocThanhToanTrucTuyen"));
	c->fee_lines = (int)json_array_size(json_object_get(hdr, "DanhSachLePhi"));
	const char *id = json_string_value(json_object_get(
		json_array_get(json_object_get(hdr, "DinhDanhCHS"), 0), "SoDinhDanh"));
	c->applicant_id = id ? xstrdup(id) : NULL;
	c->due_ms = vn_time_ms(hdr, "NgayHenTra");
	c->changed_ms = vn_time_ms(row, "ThoiDiemXuLy");
	if (json_array_size(notes_h) || json_array_size(notes_p)) {
		c->notes = json_array();
		json_array_extend(c->notes, notes_h);
		json_array_extend(c->notes, notes_p);
	}
out:
	json_decref(problems);
	json_decref(notes_h);
	json_decref(notes_p);
	json_decref(hdr);
	json_decref(row);
}

/*
 * Puts a prepared change in the outbox (inside the open group). Also the
 * path of an operator's retry of a "change" dead letter (only_if_newer: the
 * header is only taken when no newer change of the dossier came). change
 * and index name a change without a dossier in its mismatch. Returns 0
 * stored, 1 not mappable (dead letter written when dead_letter), negative
 * on a store error (*err set when err).
 */
static int change_commit(struct dpass *p, struct store *s, struct dossier *df, struct prepared *pc,
			 const json_t *change, size_t index, bool dead_letter, bool only_if_newer,
			 char **err)
{
	const char *mahoso = pc->mahoso;
	int r;

	if (pc->kind == PREP_NOT_CHANGE || pc->kind == PREP_NO_DOSSIER) {
		if (err)
			*err = xstrdup("the change names no dossier");
		if (dead_letter && p)
			change_malformed(p, change, index,
					 pc->kind == PREP_NOT_CHANGE
						 ? "not a change object with hoSo"
						 : "no maHoSo",
					 pc->raw);
		return 1;
	}
	if (pc->kind == PREP_UNMAPPABLE) {
		char *why = problems_text(pc->problems);
		if (err)
			*err = xasprintf("%s: %s", mahoso, why);
		if (dead_letter && p)
			change_unmappable(p, mahoso, why, pc->problems, pc->raw, NULL);
		free(why);
		return 1;
	}
	int64_t now = now_wall_ms();
	struct store_outbox_change c = {
		.mahoso = mahoso,
		.agency = pc->agency,
		.header = pc->htext,
		.row = pc->rtext,
		.status = pc->status,
		.due_ms = pc->due_ms,
		.changed_ms = pc->changed_ms > 0 ? pc->changed_ms : now,
		.seen_ms = now,
		.seq = pc->seq,
		.fees_known = true,
		.paid_online = pc->paid_online,
		.fee_lines = pc->fee_lines,
		.applicant_id = pc->applicant_id,
	};
	if (only_if_newer) {
		json_t *cur = NULL;
		/* a dossier created by its dead letter has no header yet (and its
		 * changed_ms is when the letter died): the change's header is it */
		if (store_outbox_dossier(s, mahoso, &cur) == 0 &&
		    json_integer_value(json_object_get(cur, "header_version")) > 0 &&
		    json_integer_value(json_object_get(cur, "changed_ms")) > c.changed_ms) {
			c.header = NULL; /* a newer header is already there */
			c.status = 0;
			c.due_ms = 0;
		}
		json_decref(cur);
	}
	r = store_outbox_enqueue(s, &c, NULL);
	if (r == -EINVAL || r == -E2BIG) {
		char *raw = json_dumps(change, JSON_COMPACT);
		char *why = xasprintf("the outbox refuses the change: %s",
				      r == -E2BIG ? "too large" : "invalid values");
		if (err)
			*err = xasprintf("%s: %s", mahoso, why);
		if (dead_letter && p)
			change_unmappable(p, mahoso, why, NULL, raw, c.agency);
		free(why);
		free(raw);
		r = 1;
	} else if (r < 0 && err) {
		*err = xasprintf("store: %s", strerror(-r));
	}
	if (r == 0 && p && pc->notes) {
		p->n_truncated++;
		mismatch(p, "truncated", mahoso,
			 "Nội dung hồ sơ dài quá giới hạn của Cổng DVCQG: đã cắt bớt khi gửi",
			 json_pack("{s:O}", "notes", pc->notes), NULL, c.agency, mahoso);
	}
	if (r == 0 && (c.status == 9 || c.status == 10) && c.due_ms > 0 && c.changed_ms > c.due_ms)
		r = note_late(s, df, c.changed_ms);
	return r;
}

/* change_prepare() and change_commit() in one go, on the loop. */
static int store_change(struct dpass *p, struct store *s, struct dossier *df, const json_t *change,
			bool dead_letter, bool only_if_newer, char **err)
{
	struct prepared c;
	change_prepare(df->hmap, df->pmap, change, &c);
	int r = change_commit(p, s, df, &c, change, 0, dead_letter, only_if_newer, err);
	prepared_clear(&c);
	return r;
}

/* A page of the feed on its way through the worker (see struct prepared). */
struct page_job {
	struct dpass *p; /* ref */
	const struct map_record *hmap, *pmap;
	json_t *items; /* ref */
	char *next_cursor;
	bool has_more;
	struct prepared *c; /* one per item */
};

static void page_prepare(void *ud)
{
	struct page_job *j = ud;
	size_t i;
	json_t *ch;
	json_array_foreach (j->items, i, ch) {
		change_prepare(j->hmap, j->pmap, ch, &j->c[i]);
	}
}

/* Stores a prepared page and moves the feed cursor past it, in the open group. */
static void page_commit(struct dpass *p, struct page_job *j)
{
	struct dossier *df = p->df;
	size_t i;
	json_t *ch;
	if (!group_need(p))
		return;
	json_array_foreach (j->items, i, ch) {
		p->n_changes++;
		int r = change_commit(p, dstore(p), df, &j->c[i], ch, i, true, false, NULL);
		if (r < 0) {
			group_write(p, r, "store a dossier change");
			break;
		}
		if (r == 0)
			p->n_enqueued++;
		if (p->store_failed)
			break;
	}
	if (!p->store_failed &&
	    group_write(p, store_cursor_set(dstore(p), df->cursor_name, j->next_cursor),
			"set the feed cursor")) {
		free(p->cursor);
		p->cursor = xstrdup(j->next_cursor);
	}
	p->caught_up = !j->has_more;
	/* new work is due now */
	p->next_due_us = 0;
}

static void page_job_free(struct page_job *j)
{
	for (size_t i = 0; j->c[i].kind != PREP_END; i++)
		prepared_clear(&j->c[i]);
	free(j->c);
	json_decref(j->items);
	free(j->next_cursor);
	free(j);
}

static void items_free(void *ud)
{
	json_decref(ud);
}

static void items_freed(void *ud, bool ran)
{
	if (!ran)
		json_decref(ud);
}

/* The worker is done with a page (or gone: ran false): store it on the loop. */
static void page_done(void *ud, bool ran)
{
	struct page_job *j = ud;
	struct dpass *p = j->p;
	p->in_flight--;
	if (--p->pages_pending == 0) {
		free(p->read_cursor);
		p->read_cursor = NULL;
	}
	if (ran && p->df) {
		page_commit(p, j);
		step_soon(p->df);
		/* freeing a page's thousands of values is the worker's job too */
		if (worker_submit(p->df->worker, items_free, items_freed, j->items) == 0)
			j->items = NULL;
	}
	page_job_free(j);
	pass_unref(p);
}

static void on_changes(struct conn *conn, enum conn_outcome o, json_t *items,
		       const char *next_cursor, bool has_more, const char *why, void *ud)
{
	struct dpass *p = ud;
	struct dossier *df = p->df;
	p->in_flight--;
	p->feed_busy = false;
	if (!df)
		goto out;
	conn_note(conn, o, why);
	uint64_t now = now_mono_us();
	const struct dossier_opts *opt = df->f->opts;
	if (o != CONN_OK) {
		unsigned k = LT_MIN(p->feed_failures, 10u);
		int64_t wait = LT_MIN(opt->poll_ms << k, (int64_t)DOSSIER_FEED_BACKOFF);
		p->feed_failures++;
		p->next_feed_us = now + (uint64_t)LT_MAX(wait, opt->poll_ms) * 1000;
		flow_result_note(&p->res, o, "feed: %s", why ? why : conn_outcome_name(o));
		log_fields(p->feed_failures == 1 ? LOG_WARNING : LOG_DEBUG, DF_FIELDS(df),
			   "reading the dossier feed failed (%s): %s", conn_outcome_name(o),
			   why ? why : "");
		goto step;
	}
	if (p->feed_failures)
		log_fields(LOG_NOTICE, DF_FIELDS(df), "the dossier feed answers again");
	p->feed_failures = 0;
	struct page_job *j = xcalloc(1, sizeof(*j));
	j->hmap = df->hmap;
	j->pmap = df->pmap;
	j->items = json_incref(items);
	j->next_cursor = xstrdup(next_cursor);
	j->has_more = has_more;
	j->c = xcalloc(json_array_size(items) + 1, sizeof(*j->c));
	j->p = p;
	p->refs++;
	p->in_flight++; /* the page is still being read until it is stored */
	/* the next page is read while this one is prepared and stored */
	p->pages_pending++;
	free(p->read_cursor);
	p->read_cursor = xstrdup(next_cursor);
	p->next_feed_us = has_more ? 0 : now + (uint64_t)opt->poll_ms * 1000;
	if (!df->worker || worker_submit(df->worker, page_prepare, page_done, j) < 0) {
		page_prepare(j);
		page_done(j, true);
	}
	goto out;
step:
	step_soon(df);
out:
	pass_unref(p);
}

/* Pages read ahead of the durable cursor, at most: one prepared, one read. */
#define DOSSIER_PAGES_AHEAD 2

static bool feed_may_read(const struct dpass *p)
{
	return !p->feed_busy && p->pages_pending < DOSSIER_PAGES_AHEAD;
}

static void read_feed(struct dpass *p)
{
	struct dossier *df = p->df;
	const struct provincial_ops *ops = df->src->type->ext;
	p->feed_busy = true;
	p->in_flight++;
	p->refs++;
	if (ops->changes(df->src, p->read_cursor ? p->read_cursor : p->cursor, on_changes, p) < 0) {
		p->feed_busy = false;
		p->in_flight--;
		p->refs--;
		p->next_feed_us =
			now_mono_us() +
			(uint64_t)((const struct dossier_opts *)df->f->opts)->poll_ms * 1000;
		flow_result_note(&p->res, CONN_RETRY, "feed: cannot start a read");
	}
}

/* ---- PUSH -------------------------------------------------------------------- */

/* One item of a push: what to record when its verdict comes. */
struct push_item {
	char *mahoso;
	int64_t id;	 /* progress row id; 0 for a header */
	int64_t version; /* header version */
	int64_t attempts;
	int64_t created_ms;
};

struct push_op {
	struct dpass *p; /* ref */
	bool headers;
	enum dvcqg_op how; /* of headers */
	size_t acked;	   /* items the portal took or refused: it answered */
	json_t *payload;   /* the array handed to the connector */
	struct push_item *it;
	size_t n;
};

static void push_op_free(struct push_op *op)
{
	for (size_t i = 0; i < op->n; i++)
		free(op->it[i].mahoso);
	free(op->it);
	json_decref(op->payload);
	free(op);
}

static void unbusy(struct dpass *p, const char *mahoso)
{
	json_object_del(p->busy, mahoso);
}

/*
 * A stable name for why a request failed, for `lienthongctl queue`'s "by
 * reason" (the store counts the text before the first ':'): the
 * connector's text carries times and batch sizes that differ every time.
 */
static const char *reason_class(const char *why)
{
	static const struct {
		const char *needle, *reason;
	} classes[] = {
		{"unknown: ", "unknown to the portal"},
		{"circuit open", "portal circuit open"},
		{"HTTP 429", "rate limited (HTTP 429)"},
		{"HTTP 5", "portal error (HTTP 5xx)"},
		{"HTTP 4", "refused by the gateway (HTTP 4xx)"},
		{"not JSON", "answer not JSON"},
		{"imeout", "timeout"},
		{"timed out", "timeout"},
		{"log in", "cannot log in"},
		{"login", "cannot log in"},
		{"could not be submitted", "not submitted"},
	};
	for (size_t i = 0; why && i < LT_ARRAY_SIZE(classes); i++)
		if (strstr(why, classes[i].needle))
			return classes[i].reason;
	return "portal did not answer clearly";
}

/*
 * A request for mahoso failed for now: back to pending with a back-off.
 * own: the failure is the dossier's (others of the same push went
 * through), so its own back-off grows with its attempts; otherwise the
 * portal as a whole failed, the flow holds every push (push_outcome) and
 * the dossier keeps its place in the queue (retry_min), so that the oldest
 * go first when the portal is back.
 */
static void record_failed(struct dpass *p, const char *mahoso, const int64_t *ids, size_t n,
			  int64_t attempts, bool own, const char *why, const char *raw)
{
	const struct dossier_opts *o = p->df->f->opts;
	struct store_outbox_ids set = {ids, n};
	int64_t now = now_wall_ms();
	if (!group_need(p))
		return;
	char *text = xasprintf("%s: %s", reason_class(why), why && *why ? why : "failed");
	int64_t next = now + (own ? backoff_ms(p->df, attempts + 1) : o->retry_min_ms);
	int r = store_outbox_failed(dstore(p), mahoso, &set, next, text, raw, now);
	free(text);
	group_write(p, r, "record a failed attempt");
	p->n_failed++;
}

/*
 * After a push that got nothing through (the portal down, its circuit
 * open), the flow waits before handing out more — retry_min doubling up to
 * retry_max — rather than cycling the whole backlog through instant
 * failures; any acknowledgement ends the wait.
 */
static void push_outcome(struct dpass *p, size_t acked, size_t n)
{
	const struct dossier_opts *o = p->df->f->opts;
	if (acked || !n) {
		p->push_failures = 0;
		p->push_hold_until_us = 0;
		return;
	}
	int64_t ms = o->retry_min_ms;
	for (unsigned i = 0; i < p->push_failures && ms < o->retry_max_ms; i++)
		ms *= 2;
	p->push_failures++;
	p->push_hold_until_us = now_mono_us() + (uint64_t)LT_MIN(ms, o->retry_max_ms) * 1000;
}

/* A refusal for good: a dead letter and a mismatch. */
static void record_dead(struct dpass *p, const char *mahoso, const char *what, const int64_t *ids,
			size_t n, const char *why, const char *raw)
{
	struct store_outbox_ids set = {ids, n};
	int64_t letter = 0;
	if (!group_need(p))
		return;
	int r = store_outbox_dead(dstore(p), mahoso, what, n ? &set : NULL, why ? why : "refused",
				  raw, now_wall_ms(), &letter);
	if (!group_write(p, r, "record a dead letter"))
		return;
	p->n_dead++;
	flow_count(p->df->f, 0, n ? n : 1);
	log_fields(LOG_WARNING, DF_FIELDS(p->df), "the portal refuses the %s of dossier %s: %s",
		   what, mahoso, why ? why : "");
	mismatch(p, "rejected", mahoso,
		 "Cổng DVCQG từ chối dữ liệu hồ sơ: cần sửa dữ liệu hoặc ánh xạ rồi gửi lại",
		 json_pack("{s:s, s:s?, s:I}", "what", what, "reason", why, "dead_letter",
			   (json_int_t)letter),
		 raw, NULL, mahoso);
}

/* Records the verdicts of a DongBoHoSoMC push. */
static void settle_headers(struct push_op *op, const struct dvcqg_item *items, size_t n)
{
	struct dpass *p = op->p;
	int64_t now = now_wall_ms();
	for (size_t i = 0; i < n; i++) {
		const struct dvcqg_item *v = &items[i];
		struct push_item *it = &op->it[i];
		unbusy(p, it->mahoso);
		if (!group_need(p))
			continue;
		if (v->o == CONN_OK) {
			group_write(
				p,
				store_outbox_header_acked(dstore(p), it->mahoso, it->version, now),
				"record an acknowledged header");
			p->n_headers++;
		} else if (v->o == CONN_FAIL && v->unknown) {
			/* we believed the portal had it: it has not; create it again */
			group_write(p,
				    store_outbox_portal_state(dstore(p), it->mahoso, "absent", now),
				    "record the portal's state");
			record_failed(p, it->mahoso, NULL, 0, it->attempts, true,
				      "unknown: the portal does not know the dossier", v->raw);
		} else if (v->o == CONN_FAIL) {
			record_dead(p, it->mahoso, "header", NULL, 0, v->why, v->raw);
		} else {
			record_failed(p, it->mahoso, NULL, 0, it->attempts, op->acked > 0, v->why,
				      v->raw);
			flow_result_note(&p->res, CONN_RETRY, "portal: %s",
					 v->why ? v->why : "retry");
		}
	}
}

/* Adds dossier mahoso's rows to the doubt set, for a look-up before anything else. */
static void add_doubt(struct dpass *p, const char *mahoso, const int64_t *ids, const json_t *rows,
		      size_t n)
{
	json_t *e = json_object_get(p->doubt, mahoso);
	if (!e) {
		e = json_pack("{s:[], s:[], s:i}", "ids", "rows", "tries", 0);
		json_object_set_new(p->doubt, mahoso, e);
	}
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(json_object_get(e, "ids"), json_integer(ids[i]));
		json_array_append(json_object_get(e, "rows"), json_array_get(rows, i));
	}
}

/* Settles the run [a, b) of one dossier's rows of a progress push. */
static void settle_rows(struct push_op *op, const struct dvcqg_item *items, size_t a, size_t b)
{
	struct dpass *p = op->p;
	const char *mahoso = op->it[a].mahoso;
	int64_t *ok = xcalloc(b - a, sizeof(*ok)), *retry = xcalloc(b - a, sizeof(*ok));
	int64_t *doubt = xcalloc(b - a, sizeof(*ok));
	json_t *doubt_rows = json_array();
	size_t n_ok = 0, n_retry = 0, n_doubt = 0;
	const char *why = NULL, *raw = NULL;
	bool unknown = false;
	int64_t now = now_wall_ms();
	for (size_t i = a; i < b; i++) {
		const struct dvcqg_item *v = &items[i];
		struct push_item *it = &op->it[i];
		if (v->o == CONN_OK) {
			ok[n_ok++] = it->id;
			if (it->created_ms > 0)
				flow_latency_add(p->df->f, (double)(now - it->created_ms) / 1000.0);
		} else if (v->o == CONN_FAIL && !v->unknown) {
			/* this row is refused for good; the rows after it came back
			 * CONN_RETRY, not sent: they wait behind the dead letter */
			record_dead(p, mahoso, "progress", &it->id, 1, v->why, v->raw);
		} else if (v->o == CONN_RETRY && v->in_doubt) {
			doubt[n_doubt++] = it->id;
			json_array_append(doubt_rows, json_array_get(op->payload, i));
			why = why ? why : v->why;
		} else {
			unknown |= v->o == CONN_FAIL;
			retry[n_retry++] = it->id;
			why = why ? why : v->why;
			raw = raw ? raw : v->raw;
		}
	}
	if (n_ok && group_need(p)) {
		struct store_outbox_ids set = {ok, n_ok};
		group_write(p, store_outbox_progress_acked(dstore(p), &set, now),
			    "record acknowledged rows");
		p->n_rows += n_ok;
		flow_count(p->df->f, n_ok, 0);
	}
	if (unknown && group_need(p))
		group_write(p, store_outbox_portal_state(dstore(p), mahoso, "absent", now),
			    "record the portal's state");
	if (n_retry)
		record_failed(p, mahoso, retry, n_retry, op->it[a].attempts,
			      unknown || op->acked > 0,
			      unknown ? "unknown: the portal does not know the dossier" : why, raw);
	if (n_doubt) {
		/* looked up after retry_min: a request the portal is still working
		 * on must not be taken for one it never got */
		const struct dossier_opts *o = p->df->f->opts;
		add_doubt(p, mahoso, doubt, doubt_rows, n_doubt);
		p->next_doubt_us =
			LT_MAX(p->next_doubt_us, now_mono_us() + (uint64_t)o->retry_min_ms * 1000);
		p->n_failed++;
	}
	if ((n_retry && !unknown) || n_doubt)
		flow_result_note(&p->res, CONN_RETRY, "portal: %s", why ? why : "retry");
	json_decref(doubt_rows);
	free(ok);
	free(retry);
	free(doubt);
}

/* Completion of a push, headers or rows: the verdict of each item. */
static void on_push(struct conn *c, const struct dvcqg_item *items, size_t n, void *ud)
{
	struct push_op *op = ud;
	struct dpass *p = op->p;
	(void)c;
	p->in_flight--;
	p->items_in_flight -= op->n;
	if (!p->df)
		goto out;
	n = LT_MIN(n, op->n);
	for (size_t i = 0; i < n; i++)
		op->acked += items[i].o != CONN_RETRY;
	push_outcome(p, op->acked, op->n);
	if (op->headers)
		settle_headers(op, items, n);
	for (size_t a = 0; !op->headers && a < n;) {
		size_t b = a + 1;
		while (b < n && !strcmp(op->it[b].mahoso, op->it[a].mahoso))
			b++;
		settle_rows(op, items, a, b);
		a = b;
	}
	p->next_due_us = 0;
	step_soon(p->df);
out:
	pass_unref(p);
	push_op_free(op);
}

static struct push_op *push_op_new(struct dpass *p, bool headers, enum dvcqg_op how)
{
	struct push_op *op = xcalloc(1, sizeof(*op));
	op->p = p;
	op->headers = headers;
	op->how = how;
	op->payload = json_array();
	return op;
}

static void push_op_add(struct push_op *op, json_t *payload, const char *mahoso, int64_t id,
			int64_t version, int64_t attempts, int64_t created_ms)
{
	op->it = xrealloc(op->it, (op->n + 1) * sizeof(*op->it));
	op->it[op->n++] = (struct push_item){xstrdup(mahoso), id, version, attempts, created_ms};
	json_array_append(op->payload, payload);
}

/* Hands op to the connector, or (send false) forgets it; takes op. */
static void push_send(struct dpass *p, struct push_op *op, bool send)
{
	struct dossier *df = p->df;
	const struct dvcqg_ops *ops = df->dst->type->ext;
	if (!op->n || !send) {
		for (size_t i = 0; i < op->n && op->headers; i++)
			unbusy(p, op->it[i].mahoso);
		push_op_free(op);
		return;
	}
	p->refs++;
	p->in_flight++;
	p->items_in_flight += op->n;
	int r = op->headers ? ops->push_headers(df->dst, op->payload, op->how, on_push, op)
			    : ops->push_progress(df->dst, op->payload, on_push, op);
	if (r < 0) {
		/* nothing was sent: the rows marked sending go back */
		p->refs--;
		p->in_flight--;
		p->items_in_flight -= op->n;
		flow_result_note(&p->res, CONN_RETRY, "portal: cannot send a batch: %s",
				 strerror(-r));
		for (size_t i = 0; i < op->n; i++) {
			unbusy(p, op->it[i].mahoso);
			record_failed(p, op->it[i].mahoso, op->it[i].id ? &op->it[i].id : NULL,
				      op->it[i].id ? 1 : 0, op->it[i].attempts, false,
				      "the request could not be submitted", NULL);
		}
		push_op_free(op);
	}
}

static void on_lookup(struct conn *c, enum conn_outcome o, json_t *header, json_t *progress,
		      const char *raw, const char *why, void *ud);

struct lookup_op {
	struct dpass *p; /* ref */
	char *mahoso;
	bool before_create; /* lookup_unknown: not about doubt */
};

static void start_lookup(struct dpass *p, const char *mahoso, bool before_create)
{
	struct dossier *df = p->df;
	const struct dvcqg_ops *ops = df->dst->type->ext;
	struct lookup_op *op = xcalloc(1, sizeof(*op));
	op->p = p;
	op->mahoso = xstrdup(mahoso);
	op->before_create = before_create;
	json_object_set_new(p->busy, mahoso, json_true());
	p->refs++;
	p->in_flight++;
	p->lookups++;
	if (ops->lookup(df->dst, mahoso, on_lookup, op) < 0) {
		p->refs--;
		p->in_flight--;
		p->lookups--;
		unbusy(p, mahoso);
		free(op->mahoso);
		free(op);
	}
}

/* A list of pushes ready to go. */
struct push_list {
	struct push_op **op;
	size_t n;
};

/* Moves *op to the list when it is full, and starts a new one in its place. */
static void push_cut(struct push_list *l, struct push_op **op, size_t full)
{
	if ((*op)->n < full)
		return;
	l->op = xrealloc(l->op, (l->n + 1) * sizeof(*l->op));
	l->op[l->n++] = *op;
	*op = push_op_new((*op)->p, (*op)->headers, (*op)->how);
}

/* Whether mahoso has a header or look-up in flight, or rows in doubt. */
static bool is_busy(const char *mahoso, void *ud)
{
	const struct dpass *p = ud;
	return json_object_get(p->busy, mahoso) || json_object_get(p->doubt, mahoso);
}

/* Hands out what is due, up to max_in_flight; commits before anything is sent. */
static void push_due(struct dpass *p)
{
	struct dossier *df = p->df;
	const struct dossier_opts *o = df->f->opts;
	const struct dvcqg_ops *ops = df->dst->type->ext;
	size_t room = (size_t)o->max_in_flight > p->items_in_flight
			      ? (size_t)o->max_in_flight - p->items_in_flight
			      : 0;
	size_t hb = ops->header_batch(df->dst), pb = ops->progress_batch(df->dst);
	/* after pushes that got nothing through, one batch probes the portal */
	if (p->push_failures)
		room = LT_MIN(room, LT_MAX(hb, pb));
	if (!room || !group_need(p))
		return;
	int64_t now = now_wall_ms();
	struct store_outbox_due_opts q = {
		.max_dossiers = (unsigned)LT_MIN(room, (size_t)STORE_OUTBOX_DUE_MAX),
		.max_rows_per_dossier = (unsigned)pb,
		.max_items = (unsigned)room,
		.rows_after_create = false,
		.skip = is_busy,
		.ud = p,
	};
	json_t *due = store_outbox_due_ex(dstore(p), now, &q);
	if (!due) {
		group_write(p, -EIO, "read the outbox");
		return;
	}
	/* pushes are cut at whole dossiers, so that a dossier's rows share one call */
	struct push_list ready = {NULL, 0};
	struct push_op *creates = push_op_new(p, true, DVCQG_CREATE);
	struct push_op *updates = push_op_new(p, true, DVCQG_UPDATE);
	struct push_op *rows = push_op_new(p, false, DVCQG_CREATE);
	int64_t *ids = NULL;
	size_t n_ids = 0, i;
	json_t *d;
	json_array_foreach (due, i, d) {
		const char *m = json_string_value(json_object_get(d, "mahoso"));
		if (!room)
			break;
		if (!m || json_object_get(p->busy, m) || json_object_get(p->doubt, m))
			continue;
		json_t *hdr = json_object_get(d, "header");
		const char *state = json_string_value(json_object_get(d, "portal_state"));
		int64_t attempts = json_integer_value(json_object_get(d, "attempts"));
		bool present = state && !strcmp(state, "present");
		if (hdr) {
			if (o->lookup_unknown && state && !strcmp(state, "unknown")) {
				if (p->lookups < DOSSIER_LOOKUPS_MAX)
					start_lookup(p, m, true);
				continue;
			}
			struct push_op **h = present ? &updates : &creates;
			push_op_add(*h, hdr, m, 0,
				    json_integer_value(json_object_get(d, "header_version")),
				    attempts, 0);
			json_object_set_new(p->busy, m, json_true());
			room--;
			push_cut(&ready, h, hb);
			/* A dossier the portal does not have yet gets its rows once the
			 * create is acknowledged (the portal refuses rows of dossiers it
			 * does not know); one it has takes them with the update. */
			if (!present || !room)
				continue;
		}
		size_t k;
		json_t *r;
		json_array_foreach (json_object_get(d, "progress"), k, r) {
			if (!room)
				break;
			int64_t id = json_integer_value(json_object_get(r, "id"));
			push_op_add(rows, json_object_get(r, "row"), m, id, 0, attempts,
				    json_integer_value(json_object_get(r, "created_ms")));
			ids = xrealloc(ids, (n_ids + 1) * sizeof(*ids));
			ids[n_ids++] = id;
			room--;
		}
		push_cut(&ready, &rows, pb);
	}
	json_decref(due);
	bool send = true;
	if (n_ids) {
		struct store_outbox_ids set = {ids, n_ids};
		int r = store_outbox_sending(dstore(p), &set, ++p->batch, now);
		if (r == 1) {
			/* cannot happen while one pass owns the outbox: say so loudly */
			log_fields(LOG_ERR, DF_FIELDS(df),
				   "outbox: rows handed out as due were not pending; nothing sent");
			send = false;
		} else if (!group_write(p, r, "mark rows as sending")) {
			send = false;
		}
	}
	/* committed before any request carries the rows */
	if (!group_commit(p))
		send = false;
	for (size_t j = 0; j < ready.n; j++)
		push_send(p, ready.op[j], send);
	free(ready.op);
	push_send(p, creates, send);
	push_send(p, updates, send);
	push_send(p, rows, send);
	free(ids);
}

/* ---- DOUBT ------------------------------------------------------------------- */

/* A value as text for comparing rows ("4" and 4 are the same status). */
static void key_part(struct dynbuf *b, const json_t *v)
{
	if (json_is_string(v))
		dynbuf_addstr(b, json_string_value(v));
	else if (json_is_integer(v))
		dynbuf_printf(b, "%lld", (long long)json_integer_value(v));
	else if (v && !json_is_null(v)) {
		char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
		dynbuf_addstr(b, t ? t : "");
		free(t);
	}
	dynbuf_add(b, "\x1f", 1);
}

/* What identifies a progress row on the portal (the simulator counts
 * duplicates the same way): when, which status, what was done. */
static char *row_key(const json_t *row)
{
	struct dynbuf b;
	dynbuf_init(&b, 0);
	key_part(&b, json_object_get(row, "ThoiDiemXuLy"));
	key_part(&b, json_object_get(row, "TrangThai"));
	key_part(&b, json_object_get(row, "NoiDungXuLy"));
	return dynbuf_steal(&b, NULL);
}

static bool row_present(const json_t *row, const json_t *portal_rows)
{
	char *k = row_key(row);
	bool found = false;
	size_t i;
	json_t *r;
	json_array_foreach (portal_rows, i, r) {
		char *k2 = row_key(r);
		found = k && k2 && !strcmp(k, k2);
		free(k2);
		if (found)
			break;
	}
	free(k);
	return found;
}

/* Settles the doubt about mahoso's rows with what the portal holds. */
static void resolve_doubt(struct dpass *p, const char *mahoso, json_t *header, json_t *portal_rows)
{
	json_t *e = json_object_get(p->doubt, mahoso);
	json_t *ids = json_object_get(e, "ids"), *rows = json_object_get(e, "rows");
	size_t n = json_array_size(ids);
	int64_t *sent = xcalloc(n + 1, sizeof(*sent)), *resend = xcalloc(n + 1, sizeof(*resend));
	size_t n_sent = 0, n_resend = 0;
	int64_t now = now_wall_ms();
	bool unverified = header && !json_is_array(portal_rows);
	for (size_t i = 0; i < n; i++) {
		int64_t id = json_integer_value(json_array_get(ids, i));
		const json_t *row = json_array_get(rows, i);
		/* Unknown dossier: the portal refuses rows of dossiers it does not
		 * know, so none was applied. No list of rows: it cannot be told,
		 * and a row is never sent twice, so it counts as sent (and the
		 * office is told to check). */
		if (header && (unverified || row_present(row, portal_rows)))
			sent[n_sent++] = id;
		else
			resend[n_resend++] = id;
	}
	if (!group_need(p))
		goto out;
	struct store_outbox_ids s_sent = {sent, n_sent}, s_resend = {resend, n_resend};
	if (!group_write(p, store_outbox_resolve(dstore(p), &s_sent, &s_resend, now),
			 "settle rows in doubt"))
		goto out;
	if (!header)
		group_write(p, store_outbox_portal_state(dstore(p), mahoso, "absent", now),
			    "record the portal's state");
	p->n_resolved += n_sent;
	p->n_resent += n_resend;
	flow_count(p->df->f, n_sent, 0);
	log_fields(LOG_INFO, DF_FIELDS(p->df),
		   "dossier %s: %zu row%s in doubt found on the portal, %zu to send again", mahoso,
		   n_sent, n_sent == 1 ? "" : "s", n_resend);
	if (unverified && n_sent)
		mismatch(p, "unverified", mahoso,
			 "Không kiểm tra được Cổng DVCQG đã nhận quá trình xử lý hồ sơ hay chưa "
			 "(sau sự cố): cần kiểm tra trên Cổng",
			 json_pack("{s:O}", "rows", rows), NULL, NULL, mahoso);
	json_object_del(p->doubt, mahoso);
out:
	free(sent);
	free(resend);
}

static void on_lookup(struct conn *c, enum conn_outcome o, json_t *header, json_t *progress,
		      const char *raw, const char *why, void *ud)
{
	struct lookup_op *op = ud;
	struct dpass *p = op->p;
	p->in_flight--;
	p->lookups--;
	unbusy(p, op->mahoso);
	if (!p->df)
		goto out;
	conn_note(c, o, why);
	int64_t now = now_wall_ms();
	if (o == CONN_OK && op->before_create) {
		if (group_need(p))
			group_write(p,
				    store_outbox_portal_state(dstore(p), op->mahoso,
							      header ? "present" : "absent", now),
				    "record the portal's state");
	} else if (o == CONN_OK) {
		resolve_doubt(p, op->mahoso, header, progress);
	} else if (op->before_create) {
		record_failed(p, op->mahoso, NULL, 0, 0, false, why ? why : "look-up failed", raw);
		flow_result_note(&p->res, o, "portal: looking %s up: %s", op->mahoso,
				 why ? why : "failed");
	} else {
		json_t *e = json_object_get(p->doubt, op->mahoso);
		if (e)
			json_object_set_new(
				e, "tries",
				json_integer(json_integer_value(json_object_get(e, "tries")) + 1));
		flow_result_note(&p->res, o, "portal: looking %s up: %s", op->mahoso,
				 why ? why : "failed");
		log_fields(LOG_DEBUG, DF_FIELDS(p->df), "looking dossier %s up failed: %s%s%.200s",
			   op->mahoso, why ? why : "", raw ? ": " : "", raw ? raw : "");
		const struct dossier_opts *opt = p->df->f->opts;
		p->next_doubt_us = now_mono_us() + (uint64_t)opt->retry_min_ms * 1000;
	}
	p->next_due_us = 0;
	step_soon(p->df);
out:
	pass_unref(p);
	free(op->mahoso);
	free(op);
}

/* Looks up the dossiers with rows in doubt, a few at a time. */
static void look_up_doubt(struct dpass *p)
{
	const char *m;
	json_t *e;
	if (now_mono_us() < p->next_doubt_us)
		return;
	json_object_foreach (p->doubt, m, e) {
		if (p->lookups >= DOSSIER_LOOKUPS_MAX)
			break;
		if (!json_object_get(p->busy, m))
			start_lookup(p, m, false);
	}
}

/* At the start of a pass: rows left 'sending' by an earlier run are in doubt. */
static int load_doubt(struct dpass *p)
{
	json_t *list = store_outbox_in_doubt(dstore(p)), *e;
	size_t i;
	if (!list)
		return -EIO;
	json_array_foreach (list, i, e) {
		const char *m = json_string_value(json_object_get(e, "mahoso"));
		json_t *ids = json_object_get(e, "ids"), *rows = json_object_get(e, "rows");
		size_t n = json_array_size(ids);
		int64_t *v = xcalloc(n + 1, sizeof(*v));
		for (size_t k = 0; k < n; k++)
			v[k] = json_integer_value(json_array_get(ids, k));
		if (m)
			add_doubt(p, m, v, rows, n);
		free(v);
	}
	/* the requests of the run that left them may still be in the portal's hands */
	p->next_doubt_us =
		now_mono_us() +
		(uint64_t)((const struct dossier_opts *)p->df->f->opts)->retry_min_ms * 1000;
	if (json_array_size(list))
		log_fields(
			LOG_NOTICE, DF_FIELDS(p->df),
			"%zu dossier%s with progress rows in doubt after a stop; looking them up "
			"on the portal",
			json_array_size(list), json_array_size(list) == 1 ? "" : "s");
	json_decref(list);
	return 0;
}

/* ---- deadlines --------------------------------------------------------------- */

static void sweep_deadlines(struct dpass *p)
{
	struct store *s = dstore(p);
	int64_t now = now_wall_ms();
	unsigned cleared = 0;
	size_t i;
	json_t *d;
	if (!group_need(p))
		return;
	json_t *over = store_outbox_overdue(s, now, DOSSIER_OVERDUE_MAX + 1);
	if (!over) {
		group_write(p, -EIO, "read overdue dossiers");
		return;
	}
	json_array_foreach (over, i, d) {
		const char *m = json_string_value(json_object_get(d, "mahoso"));
		if (i == DOSSIER_OVERDUE_MAX || !m)
			break;
		mismatch(p, "overdue", m,
			 "Hồ sơ quá hạn giải quyết nhưng chưa có kết quả: cần gửi phiếu xin lỗi "
			 "và hẹn lại ngày trả kết quả",
			 json_pack("{s:O?, s:O?, s:O?, s:O?}", "due", json_object_get(d, "due"),
				   "overdue_s", json_object_get(d, "overdue_s"), "status",
				   json_object_get(d, "status"), "received",
				   json_object_get(d, "received")),
			 NULL, json_string_value(json_object_get(d, "agency")), m);
	}
	p->n_overdue = LT_MIN(json_array_size(over), (size_t)DOSSIER_OVERDUE_MAX);
	/* A flag not raised again now is of a dossier that finished or got a
	 * new due date; unless the list was cut, clear those. */
	if (json_array_size(over) <= DOSSIER_OVERDUE_MAX && !p->store_failed &&
	    store_mismatch_clear_unseen(s, "dossier.overdue", now, now_wall_ms(), &cleared) == 0 &&
	    cleared)
		log_fields(LOG_INFO, DF_FIELDS(p->df), "%u overdue flag%s cleared", cleared,
			   cleared == 1 ? "" : "s");
	json_decref(over);

	struct dossier *df = p->df;
	if (!df->late_since_ms || p->store_failed)
		return;
	json_t *late = store_outbox_late(s, df->late_since_ms, 0);
	json_array_foreach (late, i, d) {
		const char *m = json_string_value(json_object_get(d, "mahoso"));
		if (!m)
			continue;
		p->n_late++;
		mismatch(p, "late", m, "Hồ sơ giải quyết xong sau ngày hẹn trả kết quả (trễ hạn)",
			 json_pack("{s:O?, s:O?, s:O?}", "due", json_object_get(d, "due"),
				   "finished", json_object_get(d, "finished"), "late_s",
				   json_object_get(d, "late_s")),
			 NULL, json_string_value(json_object_get(d, "agency")), m);
	}
	/* recorded (in this group): the watermark goes with them */
	if (late && !p->store_failed &&
	    group_write(p, store_cursor_set(s, df->late_name, "0"), "set the late watermark"))
		df->late_since_ms = 0;
	json_decref(late);
}

/* ---- the step ---------------------------------------------------------------- */

static void end_pass(struct dossier *df)
{
	struct dpass *p = df->pass;
	group_commit(p);
	df->pass = NULL;
	char *counts = xasprintf(
		"%zu changes read, %zu queued, %zu unmappable, %zu malformed; %zu headers and %zu "
		"rows acknowledged, %zu failed attempts, %zu dead letters, %zu rows in doubt found "
		"sent and %zu sent again; %zu overdue",
		p->n_changes, p->n_enqueued, p->n_unmappable, p->n_malformed, p->n_headers,
		p->n_rows, p->n_failed, p->n_dead, p->n_resolved, p->n_resent, p->n_overdue);
	enum conn_outcome o = p->stopping && p->res.outcome == CONN_OK ? CONN_OK : p->res.outcome;
	if (p->stopping)
		flow_finish(df->f, o, "stopped; %s", counts);
	else if (p->res.why)
		flow_finish(df->f, o, "%s; %s", p->res.why, counts);
	else
		flow_finish(df->f, o, "%s", counts);
	free(counts);
	p->df = NULL;
	pass_unref(p);
}

static uint64_t earliest(uint64_t a, uint64_t b)
{
	return !a ? b : !b ? a : LT_MIN(a, b);
}

static int on_step(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct dossier *df = userdata;
	struct dpass *p = df->pass;
	(void)s;
	(void)usec;
	df->step_at_us = 0;
	if (!p)
		return 0;
	const struct dossier_opts *o = df->f->opts;
	uint64_t now = now_mono_us();
	if (now >= p->end_us)
		p->ending = true;
	if (p->stopping || p->ending || p->store_failed) {
		group_commit(p);
		if (p->in_flight == 0)
			end_pass(df);
		return 0;
	}
	if (feed_may_read(p) && now >= p->next_feed_us)
		read_feed(p);
	if (json_object_size(p->doubt))
		look_up_doubt(p);
	if (now >= p->next_deadline_us) {
		sweep_deadlines(p);
		p->next_deadline_us = now + (uint64_t)o->deadline_interval_ms * 1000;
	}
	/* hand out in bulk: a few slots freed are not worth a look at the outbox */
	size_t slack =
		(size_t)o->max_in_flight - LT_MIN(p->items_in_flight, (size_t)o->max_in_flight);
	if (now >= p->next_due_us && now >= p->push_hold_until_us &&
	    (slack * 4 >= (size_t)o->max_in_flight || p->items_in_flight == 0)) {
		size_t before = p->items_in_flight;
		push_due(p);
		/* nothing handed out: look again at the poll (back-offs end) */
		p->next_due_us =
			p->items_in_flight > before ? 0 : now + (uint64_t)o->poll_ms * 1000;
	}
	group_commit(p);
	if (p->store_failed) {
		step_soon(df);
		return 0;
	}
	uint64_t next = p->end_us;
	if (feed_may_read(p))
		next = earliest(next, p->next_feed_us);
	next = earliest(next,
			LT_MAX(p->next_due_us ? p->next_due_us : now + (uint64_t)o->poll_ms * 1000,
			       p->push_hold_until_us));
	next = earliest(next, p->next_deadline_us);
	if (json_object_size(p->doubt))
		next = earliest(next, LT_MAX(p->next_doubt_us, now + DOSSIER_STEP_US));
	step_at(df, next);
	return 0;
}

/* Arms the step for at_us unless it is armed sooner already. */
static void step_at(struct dossier *df, uint64_t at_us)
{
	if (df->step && df->step_at_us && df->step_at_us <= at_us)
		return;
	df->step_at_us = at_us;
	if (!df->step) {
		if (sd_event_add_time(df->f->d->ev, &df->step, CLOCK_MONOTONIC, at_us, 0, on_step,
				      df) < 0) {
			df->step = NULL;
			df->step_at_us = 0;
			log_fields(LOG_ERR, DF_FIELDS(df), "cannot arm the dossier flow's timer");
		}
		return;
	}
	sd_event_source_set_time(df->step, at_us);
	sd_event_source_set_enabled(df->step, SD_EVENT_ONESHOT);
}

/* ---- flow type --------------------------------------------------------------- */

static int dossier_start(struct flow *f)
{
	struct dossier *df = f->priv;
	const struct dossier_opts *o = f->opts;
	struct store *s = f->d->store;
	if (!df || df->pass)
		return -EBUSY;
	if (!s)
		return -ENOTCONN;
	struct dpass *p = xcalloc(1, sizeof(*p));
	p->refs = 1;
	p->df = df;
	p->start_ms = now_wall_ms();
	p->end_us = now_mono_us() + (uint64_t)o->pass_length_ms * 1000;
	p->busy = json_object();
	p->doubt = json_object();
	/* both durable: a pass of a replaced configuration may have moved them */
	char *late = NULL;
	int r = store_cursor_get(s, df->late_name, &late);
	df->late_since_ms = r == 0 && late ? atoll(late) : 0;
	free(late);
	if (r >= 0)
		r = store_cursor_get(s, df->cursor_name, &p->cursor);
	if (r < 0 || load_doubt(p) < 0) {
		p->df = NULL;
		pass_unref(p);
		return r < 0 ? r : -EIO;
	}
	if (!df->worker) {
		df->worker = worker_new(f->d->ev, "lt-dossier");
		if (!df->worker)
			log_fields(LOG_WARNING, DF_FIELDS(df),
				   "no worker thread (%s): feed pages are mapped on the loop",
				   strerror(errno));
	}
	df->pass = p;
	log_fields(LOG_DEBUG, DF_FIELDS(df), "pass started at feed cursor %s",
		   p->cursor ? p->cursor : "(start)");
	step_at(df, now_mono_us());
	return 0;
}

static void dossier_stop(struct flow *f)
{
	struct dossier *df = f->priv;
	if (!df || !df->pass)
		return;
	df->pass->stopping = true;
	step_at(df, now_mono_us());
}

static json_t *dossier_status(struct flow *f)
{
	struct dossier *df = f->priv;
	if (!df)
		return NULL;
	json_t *j = json_pack("{s:s, s:s}", "source", df->src->name, "target", df->dst->name);
	struct dpass *p = df->pass;
	if (p)
		json_object_set_new(
			j, "pass",
			json_pack("{s:s?, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "cursor",
				  p->cursor, "caught_up", p->caught_up, "changes",
				  (json_int_t)p->n_changes, "queued", (json_int_t)p->n_enqueued,
				  "headers_acked", (json_int_t)p->n_headers, "rows_acked",
				  (json_int_t)p->n_rows, "failed", (json_int_t)p->n_failed, "dead",
				  (json_int_t)p->n_dead, "in_flight",
				  (json_int_t)p->items_in_flight, "in_doubt",
				  (json_int_t)json_object_size(p->doubt)));
	json_t *q = f->d->store ? store_outbox_queue(f->d->store, now_wall_ms()) : NULL;
	if (q)
		json_object_set_new(j, "queue", q);
	return j;
}

static void dossier_free(struct flow *f)
{
	struct dossier *df = f->priv;
	if (!df)
		return;
	sd_event_source_disable_unref(df->step);
	if (df->pass)
		df->pass->df = NULL; /* a page the worker finishes now is dropped */
	worker_free(df->worker);
	if (df->pass) {
		if (df->pass->group_open)
			store_commit(f->d->store);
		pass_unref(df->pass);
	}
	conn_unref(df->src);
	conn_unref(df->dst);
	free(df->field);
	free(df->cursor_name);
	free(df->late_name);
	free(df);
	f->priv = NULL;
}

static const struct map_record *find_map(const struct config *cfg, const char *key,
					 const char *name, char **err)
{
	const struct map_record *m = cfg->maps ? map_record_find(cfg->maps, name) : NULL;
	if (!m)
		*err = xasprintf("%s: no field map named '%s' in %s", key, name,
				 cfg->daemon.mappings_dir);
	return m;
}

static int dossier_init(struct flow *f, bool check_only, char **err)
{
	const struct dossier_opts *o = f->opts;
	const struct config *cfg = f->conf->owner;
	/* One outbox, one pusher: two dossier flows would send the same rows. */
	for (size_t i = 0; i < cfg->n_flows; i++) {
		const struct conf_flow *other = &cfg->flows[i];
		if (other == f->conf)
			break;
		if (other->type == f->type && other->enabled && f->conf->enabled) {
			*err = xasprintf("a second dossier flow (the first is [flow.%s]): they "
					 "would push the same outbox",
					 other->name);
			return -EINVAL;
		}
	}
	struct conn *src = flow_conn(f, "source", o->source, &conn_provincial, err);
	if (!src)
		return -EINVAL;
	struct conn *dst = flow_conn(f, "target", o->target, &conn_dvcqg, err);
	if (!dst)
		return -EINVAL;
	const struct map_record *hm = find_map(cfg, "header_mapping", o->header_mapping, err);
	if (!hm)
		return -EINVAL;
	const struct map_record *pm = find_map(cfg, "progress_mapping", o->progress_mapping, err);
	if (!pm)
		return -EINVAL;
	if (o->retry_max_ms < o->retry_min_ms) {
		*err = xstrdup("retry_max is shorter than retry_min");
		return -EINVAL;
	}
	if (check_only)
		return 0;
	struct dossier *df = xcalloc(1, sizeof(*df));
	df->f = f;
	df->src = conn_ref(src);
	df->dst = conn_ref(dst);
	df->hmap = hm;
	df->pmap = pm;
	df->field = xasprintf("FLOW=%s", f->name);
	df->cursor_name = xasprintf("dossier.%s.cursor", f->name);
	df->late_name = xasprintf("dossier.%s.late_since_ms", f->name);
	f->priv = df;
	return 0;
}

const struct flow_type flow_dossier = {
	.name = "dossier",
	.description = "dossier changes from the provincial feed to the National Public Service "
		       "Portal, through the durable outbox",
	.options = dossier_options,
	.opts_size = sizeof(struct dossier_opts),
	.init = dossier_init,
	.free = dossier_free,
	.start = dossier_start,
	.stop = dossier_stop,
	.status = dossier_status,
	.latency_help = "from the change read from the province to the portal's acknowledgement",
};

/* ---- the operator's retry ---------------------------------------------------- */

static struct dossier *first_dossier_flow(struct daemon *d)
{
	for (size_t i = 0; i < d->n_flows; i++)
		if (d->flows[i]->type == &flow_dossier && d->flows[i]->priv)
			return d->flows[i]->priv;
	return NULL;
}

/*
 * Maps the raw change of "change" letter (an object from
 * store_outbox_dossier()'s dead_letters) again and enqueues it. Returns 0,
 * 1 when it still does not map (*err), or negative.
 */
static int remap_letter(struct store *s, struct dossier *df, const json_t *letter, char **err)
{
	json_error_t e;
	const char *raw = json_string_value(json_object_get(letter, "raw"));
	json_t *change = raw ? json_loads(raw, 0, &e) : NULL;
	if (!change) {
		*err = xasprintf("dead letter %lld: its raw change is not JSON",
				 (long long)json_integer_value(json_object_get(letter, "id")));
		return 1;
	}
	int r = store_change(NULL, s, df, change, false, true, err);
	json_decref(change);
	return r;
}

/* The letter id of dossier view dv (store_outbox_dossier) with its raw. */
static const json_t *letter_in(const json_t *dv, int64_t id)
{
	size_t i;
	json_t *l;
	json_array_foreach (json_object_get(dv, "dead_letters"), i, l)
		if (json_integer_value(json_object_get(l, "id")) == id)
			return l;
	return NULL;
}

/* Whether letter l (of store_outbox_deadletters) holds a change. */
static bool is_change(const json_t *l)
{
	const char *what = json_string_value(json_object_get(l, "what"));
	return what && !strcmp(what, "change");
}

/* Retries open letter l (a change is mapped again first): 0, 1 still dead, or -errno. */
static int retry_letter(struct store *s, struct dossier *df, const json_t *l, const char *actor,
			char **why)
{
	int64_t id = json_integer_value(json_object_get(l, "id"));
	if (is_change(l)) {
		const char *m = json_string_value(json_object_get(l, "mahoso"));
		json_t *dv = NULL;
		const json_t *full = NULL;
		if (m && store_outbox_dossier(s, m, &dv) == 0)
			full = letter_in(dv, id);
		int r = full ? remap_letter(s, df, full, why) : 1;
		json_decref(dv);
		if (r != 0)
			return r;
	}
	return store_outbox_retry(s, id, actor, now_wall_ms(), NULL);
}

int flow_dossier_retry(struct daemon *d, int64_t letter_id, const char *actor, unsigned *retried,
		       unsigned *still_dead, char **err)
{
	struct store *s = d->store;
	unsigned n_retried = 0, n_dead = 0;
	size_t i;
	json_t *l;
	int r = 0;
	if (!s)
		return -ENOTCONN;
	struct dossier *df = first_dossier_flow(d);
	/* the flow's open group first: a rollback here must not take it along */
	if (df && df->pass && !group_commit(df->pass))
		return -EIO;
	/* the open letters asked for, oldest first: retried changes keep feed order */
	json_t *open = store_outbox_deadletters(s, "dead", 0), *todo = json_array();
	if (!open) {
		json_decref(todo);
		return -EIO;
	}
	for (i = json_array_size(open); i-- > 0;) {
		l = json_array_get(open, i);
		if (!letter_id || json_integer_value(json_object_get(l, "id")) == letter_id)
			json_array_append(todo, l);
	}
	json_decref(open);
	json_array_foreach (todo, i, l) {
		if (is_change(l) && !df) {
			*err = xstrdup("a dead change is mapped again by the dossier flow, and "
				       "none is configured");
			r = -EINVAL;
			goto out;
		}
	}
	/* a letter that is not open: the store says whether it is closed or unknown */
	if (letter_id && !json_array_size(todo)) {
		r = store_outbox_retry(s, letter_id, actor, now_wall_ms(), NULL);
		goto out;
	}
	if ((r = store_begin(s)) < 0)
		goto out;
	json_array_foreach (todo, i, l) {
		char *why = NULL;
		int rr = retry_letter(s, df, l, actor, &why);
		if (rr == 0) {
			n_retried++;
		} else if (rr == 1) {
			n_dead++;
			if (letter_id) {
				*err = xasprintf("dead letter %lld still cannot be mapped: %s",
						 (long long)letter_id, why ? why : "?");
				r = -EINVAL;
			}
		} else {
			r = rr;
		}
		free(why);
		if (r < 0)
			break;
	}
	if (r < 0) {
		store_rollback(s);
		goto out;
	}
	r = store_commit(s);
	if (r == 0 && !n_retried)
		r = 1;
out:
	json_decref(todo);
	if (retried)
		*retried = n_retried;
	if (still_dead)
		*still_dead = n_dead;
	/* the flow sees the retried work at its next look */
	if (df && df->pass && n_retried) {
		df->pass->next_due_us = 0;
		step_soon(df);
	}
	return r;
}
