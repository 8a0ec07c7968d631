/*
 * test_store_outbox: the dossier outbox in a real SQLite store. Every
 * function of the "dossier outbox" section of store.h; the ordering the
 * dossier flow relies on (a dossier's rows come back in enqueue order, one
 * batch per dossier in flight, the header before the rows, a header that
 * changed while it was sent goes again); crash semantics with a child
 * process killed by SIGKILL between steps (rows marked sending come back
 * in doubt, nothing committed is lost, an uncommitted group with its
 * cursor leaves no trace); dead letters retried, dropped, held and
 * released; overdue and late dossiers; the operator's JSON; a group that
 * fills a small store and leaves nothing behind; the counters of
 * store_outbox_queue() against the rows themselves.
 *
 * It prints (does not check) throughput and latencies: 100,000 changes
 * over 20,000 dossiers enqueued in fsynced groups of 1,000, the drain of
 * that backlog through due/sending/acked, due() and queue() with a backlog
 * of 50,000 rows (1,000,000 with TEST_LARGE=1), and the size per 1,000
 * changes.
 */
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "tap.h"
#include "util.h"

/* 2026-11-27T04:33:06Z */
#define T0_MS  1795753986000LL
#define MIN_MS (60 * 1000LL)
#define DAY_MS (24 * 60 * MIN_MS)

static char tmpdir[] = "/tmp/test_store_outbox.XXXXXX";

static struct store *open_store(const char *name, int64_t max_size_bytes)
{
	char *path = xasprintf("%s/%s", tmpdir, name);
	struct conf_store c = {
		.path = path,
		.busy_timeout_ms = 2000,
		.max_size_bytes = max_size_bytes,
		.synchronous = 0, /* FULL */
		.retry_interval_ms = 1000,
	};
	struct store *s = NULL;
	char *err = NULL;
	if (store_open(&c, &s, &err) < 0) {
		printf("# cannot open %s: %s\n", path, err ? err : "?");
		s = NULL;
	}
	free(err);
	free(path);
	return s;
}

static struct store_outbox_change chg(const char *mahoso, const char *header, const char *row,
				      int status, int64_t seen_ms)
{
	struct store_outbox_change c = {
		.mahoso = mahoso,
		.agency = "000.00.03.H31",
		.header = header,
		.row = row,
		.status = status,
		.due_ms = 0,
		.changed_ms = seen_ms - 1000,
		.seen_ms = seen_ms,
		.seq = seen_ms - T0_MS,
	};
	return c;
}

/* Enqueues and returns the new row's id (0 without a row, -1 on failure). */
static int64_t enq(struct store *s, const char *mahoso, const char *header, const char *row,
		   int status, int64_t seen_ms)
{
	struct store_outbox_change c = chg(mahoso, header, row, status, seen_ms);
	int64_t id = -1;
	int r = store_outbox_enqueue(s, &c, &id);
	if (r != 0) {
		printf("#   enqueue %s returned %d\n", mahoso, r);
		return -1;
	}
	return id;
}

static const char *sget(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static long long iget(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_integer(v) ? (long long)json_integer_value(v) : -999;
}

/* JSON of v, compact with sorted keys (caller frees). */
static char *dump(const json_t *v)
{
	return v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
}

static bool json_eq(const json_t *o, const char *key, const char *want)
{
	char *got = dump(json_object_get(o, key));
	bool eq = got && strcmp(got, want) == 0;
	if (!eq)
		printf("#   %s is %s, want %s\n", key, got ? got : "(absent)", want);
	free(got);
	return eq;
}

/* The mahoso of due() in order, "A,B,C" (caller frees). */
static char *due_names(struct store *s, int64_t now_ms, unsigned max)
{
	json_t *a = store_outbox_due(s, now_ms, max, 0);
	struct dynbuf b;
	size_t i;
	json_t *d;
	if (!a)
		return xstrdup("(error)");
	dynbuf_init(&b, 0);
	(void)dynbuf_addstr(&b, "");
	json_array_foreach (a, i, d) {
		(void)dynbuf_printf(&b, "%s%s", i ? "," : "", sget(d, "mahoso"));
	}
	json_decref(a);
	return dynbuf_steal(&b, NULL);
}

/* The element of due() for mahoso (new ref), or NULL. */
static json_t *due_one(struct store *s, int64_t now_ms, const char *mahoso, unsigned max_rows)
{
	json_t *a = store_outbox_due(s, now_ms, 100, max_rows), *found = NULL;
	size_t i;
	json_t *d;
	json_array_foreach (a, i, d) {
		if (strcmp(sget(d, "mahoso"), mahoso) == 0)
			found = json_incref(d);
	}
	json_decref(a);
	return found;
}

/* The progress ids of a due() element, into ids (at most max); returns how many. */
static size_t ids_of(const json_t *d, int64_t *ids, size_t max)
{
	size_t i, n = 0;
	json_t *p;
	json_array_foreach (json_object_get(d, "progress"), i, p) {
		if (n < max)
			ids[n++] = iget(p, "id");
	}
	return n;
}

/* The "n" member of each row of a due() element, "1,2,3" (caller frees). */
static char *rows_of(const json_t *d)
{
	struct dynbuf b;
	size_t i;
	json_t *p;
	dynbuf_init(&b, 0);
	(void)dynbuf_addstr(&b, "");
	json_array_foreach (json_object_get(d, "progress"), i, p) {
		(void)dynbuf_printf(&b, "%s%lld", i ? "," : "",
				    iget(json_object_get(p, "row"), "n"));
	}
	return dynbuf_steal(&b, NULL);
}

static json_t *view(struct store *s, const char *mahoso)
{
	json_t *o = NULL;
	int r = store_outbox_dossier(s, mahoso, &o);
	if (r != 0)
		printf("#   store_outbox_dossier(%s) returned %d\n", mahoso, r);
	return o;
}

/* The events of mahoso, oldest first, "received,header_acked,..." (caller frees). */
static char *events_of(struct store *s, const char *mahoso)
{
	json_t *o = view(s, mahoso);
	struct dynbuf b;
	size_t i;
	json_t *e;
	dynbuf_init(&b, 0);
	(void)dynbuf_addstr(&b, "");
	json_array_foreach (json_object_get(o, "events"), i, e) {
		(void)dynbuf_printf(&b, "%s%s", i ? "," : "", sget(e, "event"));
	}
	json_decref(o);
	return dynbuf_steal(&b, NULL);
}

/* The states of mahoso's rows, oldest first, "sent,pending" (caller frees). */
static char *row_states(struct store *s, const char *mahoso)
{
	json_t *o = view(s, mahoso);
	struct dynbuf b;
	size_t i;
	json_t *p;
	dynbuf_init(&b, 0);
	(void)dynbuf_addstr(&b, "");
	json_array_foreach (json_object_get(o, "progress"), i, p) {
		(void)dynbuf_printf(&b, "%s%s", i ? "," : "", sget(p, "state"));
	}
	json_decref(o);
	return dynbuf_steal(&b, NULL);
}

/* Integer member key of the queue (a path "by_state.dead" goes one level down). */
static long long qget(struct store *s, const char *key)
{
	json_t *q = store_outbox_queue(s, T0_MS + DAY_MS);
	const json_t *o = q;
	char buf[64];
	snprintf(buf, sizeof(buf), "%s", key);
	char *dot = strchr(buf, '.');
	if (dot) {
		*dot = '\0';
		o = json_object_get(q, buf);
		key = key + (dot - buf) + 1;
	}
	long long v = iget(o, key);
	json_decref(q);
	return v;
}

static long long vget(struct store *s, const char *mahoso, const char *key)
{
	json_t *o = view(s, mahoso);
	long long v = iget(o, key);
	json_decref(o);
	return v;
}

static char *vstr(struct store *s, const char *mahoso, const char *key)
{
	json_t *o = view(s, mahoso);
	const char *v = sget(o, key);
	char *r = v ? xstrdup(v) : NULL;
	json_decref(o);
	return r;
}

#define H1     "{\"MaHoSo\":\"D1\",\"TrangThaiHoSo\":2,\"TrichYeuHoSo\":\"Cấp giấy phép\"}"
#define H2     "{\"MaHoSo\":\"D1\",\"TrangThaiHoSo\":4}"
#define ROW(n) "{\"n\":" #n ",\"ThoiDiemXuLy\":\"2026-11-27 11:33:06\"}"

/* ---- enqueue and due --------------------------------------------------------- */

static void test_enqueue(void)
{
	struct store *s = open_store("enqueue.db", 0);
	int64_t t = T0_MS;
	json_t *o, *d;
	char *n;
	if (!s) {
		ok(0, "the enqueue store opens");
		return;
	}
	int64_t r1 = enq(s, "E1", H1, ROW(1), 2, t);
	ok(r1 > 0, "a change with a progress row gives the new row's id");
	o = view(s, "E1");
	is_int(iget(o, "header_version"), 1, "a change with a header makes header_version 1");
	is_int(iget(o, "header_sent_version"), 0, "a new dossier's header was never acknowledged");
	is_int(iget(o, "has_work"), 1, "a new dossier with a header and a row has work");
	is_int(iget(o, "rows_pending"), 1, "its row is pending");
	is_str(sget(o, "state"), "active", "a new dossier is active");
	is_str(sget(o, "portal_state"), "unknown", "nobody knows yet whether the portal has it");
	is_int(iget(o, "status"), 2, "the national status of the change is kept");
	is_str(sget(o, "agency"), "000.00.03.H31", "the agency is kept");
	is_int(iget(o, "received_ms"), t, "received_ms is when the first change was seen");
	is_str(sget(o, "received"), "2026-11-27T04:33:06Z", "received is also given in ISO 8601");
	is_int(iget(o, "changed_ms"), t - 1000, "changed_ms is the time of the change itself");
	ok(json_eq(o, "header", H1), "the stored header is given parsed");
	ok(json_is_null(json_object_get(o, "finished_ms")),
	   "a dossier at status 2 is not finished");
	json_decref(o);

	n = due_names(s, t - 1, 10);
	is_str(n, "", "a dossier is not due before its change was seen");
	free(n);
	d = due_one(s, t, "E1", 10);
	ok(d != NULL, "a dossier is due from the time its change was seen");
	ok(json_eq(d, "header", H1), "due() gives the unsent header, parsed");
	is_int(iget(d, "header_version"), 1, "due() gives the header version to acknowledge");
	is_str(sget(d, "portal_state"), "unknown", "due() says whether to create or update");
	n = rows_of(d);
	is_str(n, "1", "due() gives the pending row, parsed");
	free(n);
	json_decref(d);

	int64_t r2 = enq(s, "E1", NULL, ROW(2), 4, t + 1000);
	int64_t r3 = enq(s, "E1", H2, ROW(3), 4, t + 2000);
	ok(r1 < r2 && r2 < r3, "row ids grow in enqueue order");
	is_int(enq(s, "E1", NULL, NULL, 4, t + 3000), 0,
	       "a change with neither header nor row is recorded, without a row id");
	d = due_one(s, t + 5000, "E1", 2);
	is_int(iget(d, "header_version"), 2,
	       "every change with a header increments header_version");
	ok(json_eq(d, "header", H2), "due() gives the latest header");
	n = rows_of(d);
	is_str(n, "1,2", "due() gives at most max_rows rows, oldest first");
	free(n);
	is_int(iget(d, "rows_pending"), 3, "rows_pending counts every pending row");
	json_decref(d);
	n = events_of(s, "E1");
	is_str(n, "received,received,received,received", "every change writes a received event");
	free(n);
	o = view(s, "E1");
	json_t *ev = json_array_get(json_object_get(o, "events"), 1);
	ok(json_eq(ev, "detail",
		   "{\"header_version\":null,\"progress_id\":2,\"seq\":1000,"
		   "\"status\":4}"),
	   "the received event names the feed seq, status, header version and row");
	json_decref(o);

	/* Refusals leave nothing behind. */
	struct store_outbox_change c = chg("E1", "{not json", ROW(9), 4, t + 4000);
	is_int(store_outbox_enqueue(s, &c, NULL), -EINVAL, "a header that is not JSON is refused");
	c = chg("E1", NULL, "[1,", 4, t + 4000);
	is_int(store_outbox_enqueue(s, &c, NULL), -EINVAL, "a row that is not JSON is refused");
	is_int(vget(s, "E1", "header_version"), 2,
	       "a refused change did not increment header_version (all or nothing)");
	is_int(vget(s, "E1", "events_total"), 4, "a refused change wrote no event");
	is_int(vget(s, "E1", "rows_pending"), 3, "a refused change added no row");
	/* Inside a group (no savepoint there): a refusal leaves the group intact. */
	is_int(store_begin(s), 0, "a group begins");
	ok(enq(s, "E9", H1, ROW(1), 2, t) > 0, "a change is queued in the group");
	c = chg("E1", H2, "{\"n\":", 4, t + 4000);
	is_int(store_outbox_enqueue(s, &c, NULL), -EINVAL,
	       "a known dossier's change with a bad row is refused inside a group");
	c = chg("E8", NULL, "nope", 4, t + 4000);
	is_int(store_outbox_enqueue(s, &c, NULL), -EINVAL,
	       "a new dossier's change with a bad row is refused inside a group");
	ok(enq(s, "E9", NULL, ROW(2), 4, t + 1) > 0, "the group goes on after a refusal");
	is_int(store_commit(s), 0, "and commits");
	is_int(vget(s, "E1", "header_version"), 2,
	       "the refused change left nothing in its dossier (header not taken)");
	is_int(vget(s, "E1", "rows_pending"), 3, "nor a row");
	json_t *none = NULL;
	is_int(store_outbox_dossier(s, "E8", &none), 1, "nor a new dossier");
	is_int(vget(s, "E9", "rows_pending"), 2, "the rest of the group is committed");
	c = chg("", H1, NULL, 2, t);
	is_int(store_outbox_enqueue(s, &c, NULL), -EINVAL, "an empty MaHoSo is refused");
	c = chg("E1", H1, NULL, 11, t);
	is_int(store_outbox_enqueue(s, &c, NULL), -EINVAL, "a status beyond 10 is refused");
	c = chg("E1", H1, NULL, 2, t);
	c.seen_ms = 0;
	is_int(store_outbox_enqueue(s, &c, NULL), -EINVAL, "a change without seen_ms is refused");
	char *big = xcalloc(STORE_OUTBOX_ROW_MAX_BYTES + 16, 1);
	big[0] = '"';
	memset(big + 1, 'a', STORE_OUTBOX_ROW_MAX_BYTES);
	big[STORE_OUTBOX_ROW_MAX_BYTES + 1] = '"';
	c = chg("E1", NULL, big, 4, t);
	is_int(store_outbox_enqueue(s, &c, NULL), -E2BIG, "a row beyond the bound is refused");
	memset(big, 'M', STORE_OUTBOX_KEY_MAX_BYTES + 1);
	big[STORE_OUTBOX_KEY_MAX_BYTES + 1] = '\0';
	c = chg(big, H1, NULL, 2, t);
	is_int(store_outbox_enqueue(s, &c, NULL), -E2BIG, "an over-long MaHoSo is refused");
	free(big);

	/* The queue across dossiers: first come, first served. */
	enq(s, "E3", H1, ROW(1), 2, t + 10000);
	enq(s, "E2", H1, ROW(1), 2, t + 20000);
	n = due_names(s, t + 30000, 10);
	is_str(n, "E1,E9,E3,E2", "dossiers are due oldest unsent work first");
	free(n);
	enq(s, "E1", NULL, ROW(4), 4, t + 40000);
	enq(s, "E3", NULL, ROW(2), 4, t + 41000);
	n = due_names(s, t + 50000, 10);
	is_str(n, "E1,E9,E3,E2", "a dossier that keeps changing keeps its place in the queue");
	free(n);
	n = due_names(s, t + 15000, 10);
	is_str(n, "E1,E9,E3", "a dossier whose work arrived after now is not due yet");
	free(n);
	n = due_names(s, t + 50000, 2);
	is_str(n, "E1,E9", "due() gives at most max_dossiers dossiers");
	free(n);
	json_t *a = store_outbox_due(s, t + 50000, 0, 10);
	is_int(a ? (long long)json_array_size(a) : -1, 0, "due() for 0 dossiers gives []");
	json_decref(a);
	d = due_one(s, t + 50000, "E2", 0);
	ok(d && json_array_size(json_object_get(d, "progress")) == 0 &&
		   json_object_get(d, "header"),
	   "due() with 0 rows per dossier gives the header and no rows");
	json_decref(d);
	store_close(s);
}

/* ---- the flow's cycle: header first, one batch in flight, acks ---------------- */

/* Sends every row of mahoso through due/sending/acked max_rows at a time; "n,n,..". */
static char *drain_one(struct store *s, const char *mahoso, unsigned max_rows, int64_t now_ms,
		       const char *late_mahoso)
{
	struct dynbuf b;
	int64_t ids[64];
	int rounds = 0;
	dynbuf_init(&b, 0);
	(void)dynbuf_addstr(&b, "");
	for (json_t *d; (d = due_one(s, now_ms, mahoso, max_rows)) && rounds < 100; rounds++) {
		char *r = rows_of(d);
		size_t n = ids_of(d, ids, LT_ARRAY_SIZE(ids));
		struct store_outbox_ids set = {.id = ids, .n = n};
		(void)dynbuf_printf(&b, "%s%s", b.len ? "," : "", r);
		free(r);
		json_decref(d);
		if (store_outbox_sending(s, &set, rounds + 1, now_ms) != 0)
			break;
		/* Rows that arrive while a batch is in flight go after it. */
		if (late_mahoso && rounds == 0) {
			enq(s, late_mahoso, NULL, "{\"n\":26}", 4, now_ms);
			enq(s, late_mahoso, NULL, "{\"n\":27}", 4, now_ms);
		}
		if (store_outbox_progress_acked(s, &set, now_ms) != 0)
			break;
	}
	return dynbuf_steal(&b, NULL);
}

static void test_cycle(void)
{
	struct store *s = open_store("cycle.db", 0);
	int64_t t = T0_MS, ids[8];
	json_t *d;
	char *n;
	if (!s) {
		ok(0, "the cycle store opens");
		return;
	}
	enq(s, "F1", H1, ROW(1), 2, t);
	enq(s, "F1", NULL, ROW(2), 4, t + 1);
	enq(s, "F1", NULL, ROW(3), 4, t + 2);
	d = due_one(s, t + 10, "F1", 10);
	ok(d && json_object_get(d, "header") &&
		   json_array_size(json_object_get(d, "progress")) == 3,
	   "a new dossier is due with its header (to go first) and its rows");
	json_decref(d);
	is_int(store_outbox_header_acked(s, "F1", 1, t + 20), 0, "the header is acknowledged");
	d = due_one(s, t + 30, "F1", 10);
	ok(d && !json_object_get(d, "header"),
	   "after its header is acknowledged, due() no longer gives it");
	is_str(sget(d, "portal_state"), "present",
	       "an acknowledged header means the portal has it");
	is_int(iget(d, "header_sent_version"), 1,
	       "header_sent_version is the acknowledged version");
	ids_of(d, ids, 8);
	json_decref(d);

	struct store_outbox_ids two = {.id = ids, .n = 2};
	is_int(store_outbox_sending(s, &two, 7, t + 40), 0, "two rows are marked sending");
	d = due_one(s, t + 50, "F1", 10);
	ok(d == NULL,
	   "a dossier with rows in sending is not handed out again (its third row waits)");
	json_decref(d);
	is_int(qget(s, "rows_sending"), 2, "the queue counts the rows in sending");
	is_int(qget(s, "rows_pending"), 1, "and the one still pending");
	is_int(store_outbox_sending(s, &two, 8, t + 60), 1,
	       "marking rows that are not pending says 1");
	int64_t mixed_ids[2] = {ids[2], ids[0]};
	struct store_outbox_ids mixed = {.id = mixed_ids, .n = 2};
	is_int(store_outbox_sending(s, &mixed, 9, t + 60), 1,
	       "a set with one row not pending is refused");
	n = row_states(s, "F1");
	is_str(n, "sending,sending,pending",
	       "all or nothing: the pending row of a refused set stays pending");
	free(n);
	struct store_outbox_ids none = {.id = ids, .n = 0};
	is_int(store_outbox_sending(s, &none, 1, t), -EINVAL, "an empty set cannot be sent");
	int64_t bad_id = -3;
	struct store_outbox_ids bad = {.id = &bad_id, .n = 1};
	is_int(store_outbox_sending(s, &bad, 1, t), -EINVAL, "an id <= 0 is refused");

	is_int(store_outbox_progress_acked(s, &two, t + 70), 0, "the two rows are acknowledged");
	n = row_states(s, "F1");
	is_str(n, "sent,sent,pending", "acknowledged rows are sent");
	free(n);
	d = due_one(s, t + 80, "F1", 10);
	n = rows_of(d);
	is_str(n, "3", "after the acknowledgement the dossier's next row is due");
	free(n);
	json_decref(d);
	is_int(store_outbox_progress_acked(s, &two, t + 90), 0,
	       "a repeated acknowledgement is accepted");
	n = row_states(s, "F1");
	is_str(n, "sent,sent,pending", "and changes nothing");
	free(n);
	struct store_outbox_ids third = {.id = ids + 2, .n = 1};
	is_int(store_outbox_sending(s, &third, 8, t + 100), 0, "the third row is marked sending");
	store_close(s);
	/* A restart between marking and acknowledging changes nothing. */
	s = open_store("cycle.db", 0);
	if (!s) {
		ok(0, "the cycle store reopens");
		return;
	}
	is_int(store_outbox_progress_acked(s, &third, t + 110), 0,
	       "the row marked before a restart is acknowledged after it");
	d = due_one(s, t + 120, "F1", 10);
	ok(d == NULL, "a dossier with everything acknowledged is not due");
	json_decref(d);
	is_int(vget(s, "F1", "has_work"), 0, "and has no work");
	is_int(qget(s, "depth"), 0, "the queue is empty");
	is_int(qget(s, "rows_pending") + qget(s, "rows_sending"), 0,
	       "no row is pending or sending");
	json_t *o = view(s, "F1");
	json_t *p0 = json_array_get(json_object_get(o, "progress"), 0);
	json_t *p2 = json_array_get(json_object_get(o, "progress"), 2);
	is_int(iget(p0, "batch"), 7, "a row keeps the batch it went out in");
	is_int(iget(p2, "batch"), 8, "each row its own batch");
	is_int(iget(p0, "attempts"), 1, "a row counts its sending attempts");
	is_int(iget(p0, "sent_ms"), t + 70, "a sent row records when it was acknowledged");
	is_str(sget(p0, "sent"), "2026-11-27T04:33:06Z", "also in ISO 8601");
	json_decref(o);
	n = events_of(s, "F1");
	is_str(n,
	       "received,received,received,header_acked,progress_sent,progress_acked,"
	       "progress_sent,progress_acked",
	       "the timeline has every step in order");
	free(n);
	o = view(s, "F1");
	json_t *ev = json_array_get(json_object_get(o, "events"), 4);
	ok(json_eq(ev, "detail", "{\"batch\":7,\"ids\":[1,2]}"),
	   "progress_sent names the batch and the rows");
	json_decref(o);

	/* A header that changed while it was sent goes again. */
	enq(s, "F2", H1, NULL, 2, t + 200);
	d = due_one(s, t + 210, "F2", 10);
	is_int(iget(d, "header_version"), 1, "F2's header version 1 is handed out");
	json_decref(d);
	enq(s, "F2", H2, NULL, 4, t + 220);
	is_int(store_outbox_header_acked(s, "F2", 1, t + 230), 0,
	       "the portal acknowledges version 1 after version 2 arrived");
	d = due_one(s, t + 240, "F2", 10);
	ok(d && json_eq(d, "header", H2),
	   "a header that changed while it was sent is handed out again, the new one");
	is_int(iget(d, "header_sent_version"), 1, "with the version the portal has");
	json_decref(d);
	is_int(store_outbox_header_acked(s, "F2", 2, t + 250), 0, "version 2 is acknowledged");
	d = due_one(s, t + 260, "F2", 10);
	ok(d == NULL, "then F2 has no work");
	json_decref(d);
	is_int(store_outbox_header_acked(s, "F2", 1, t + 270), 0, "a stale acknowledgement");
	is_int(vget(s, "F2", "header_sent_version"), 2, "does not lower header_sent_version");
	is_int(store_outbox_header_acked(s, "F2", 3, t), -EINVAL,
	       "acknowledging a version that does not exist is refused");
	is_int(store_outbox_header_acked(s, "F2", 0, t), -EINVAL, "version 0 is refused");
	is_int(store_outbox_header_acked(s, "nobody", 1, t), 1, "an unknown dossier says 1");

	/* Rows before any header: due() gives them without a header. */
	enq(s, "F3", NULL, ROW(1), 4, t + 300);
	d = due_one(s, t + 310, "F3", 10);
	ok(d && !json_object_get(d, "header") && iget(d, "header_version") == 0,
	   "a dossier without any header is handed out with header_version 0 and no header");
	json_decref(d);

	/* Many rows, several batches, rows arriving while one is in flight. */
	for (int i = 1; i <= 25; i++) {
		char row[32];
		snprintf(row, sizeof(row), "{\"n\":%d}", i);
		enq(s, "F5", i == 1 ? H1 : NULL, row, 4, t + 1000 + i);
	}
	is_int(store_outbox_header_acked(s, "F5", 1, t + 1100), 0, "F5's header is acknowledged");
	n = drain_one(s, "F5", 4, t + 2000, "F5");
	is_str(n, "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27",
	       "a dossier's rows come back from due() in enqueue order, batch after batch");
	free(n);
	is_int(vget(s, "F5", "rows_pending"), 0, "every row of F5 went out");
	store_close(s);
}

/* ---- the counters against the rows --------------------------------------------- */

/*
 * Recounts, from every listed dossier's view, what store_outbox_queue()
 * counts with its triggers, and compares.
 */
static void check_counters(struct store *s, const char *const *names, size_t n, const char *when)
{
	long long depth = 0, pending = 0, sending = 0, active = 0, held = 0, dead = 0, open = 0;
	bool rows_agree = true;
	for (size_t i = 0; i < n; i++) {
		json_t *o = NULL;
		if (store_outbox_dossier(s, names[i], &o) != 0)
			continue;
		long long p = 0, q = 0;
		size_t j;
		json_t *e;
		json_array_foreach (json_object_get(o, "progress"), j, e) {
			p += strcmp(sget(e, "state"), "pending") == 0;
			q += strcmp(sget(e, "state"), "sending") == 0;
		}
		json_array_foreach (json_object_get(o, "dead_letters"), j, e) {
			open += strcmp(sget(e, "state"), "dead") == 0;
		}
		if (p != iget(o, "rows_pending") || q != iget(o, "rows_sending")) {
			printf("#   %s: %lld pending and %lld sending rows, the row says %lld, "
			       "%lld\n",
			       names[i], p, q, iget(o, "rows_pending"), iget(o, "rows_sending"));
			rows_agree = false;
		}
		bool work = iget(o, "header_version") > iget(o, "header_sent_version") || p > 0;
		if (work != (iget(o, "has_work") == 1)) {
			printf("#   %s: has_work is %lld\n", names[i], iget(o, "has_work"));
			rows_agree = false;
		}
		const char *state = sget(o, "state");
		depth += work;
		pending += p;
		sending += q;
		active += work && strcmp(state, "active") == 0;
		held += strcmp(state, "held") == 0;
		dead += strcmp(state, "dead") == 0;
		json_decref(o);
	}
	ok(rows_agree, "%s: each dossier's counts and has_work agree with its rows", when);
	json_t *q = store_outbox_queue(s, T0_MS);
	json_t *bs = json_object_get(q, "by_state");
	bool agree = iget(q, "depth") == depth && iget(q, "rows_pending") == pending &&
		     iget(q, "rows_sending") == sending && iget(bs, "active") == active &&
		     iget(bs, "held") == held && iget(bs, "dead") == dead &&
		     iget(q, "dead_letters") == open && iget(q, "dossiers") == (long long)n;
	if (!agree) {
		char *got = dump(q);
		printf("#   queue %s; recounted depth %lld pending %lld sending %lld active %lld "
		       "held %lld dead %lld letters %lld dossiers %zu\n",
		       got, depth, pending, sending, active, held, dead, open, n);
		free(got);
	}
	ok(agree, "%s: the queue's counters agree with the rows", when);
	json_decref(q);
}

/* ---- failures -------------------------------------------------------------------- */

static void test_failures(void)
{
	static const char *const names[] = {"G1", "G2", "G3"};
	struct store *s = open_store("failures.db", 0);
	int64_t t = T0_MS, ids[8], g3[8];
	json_t *d, *q;
	char *n;
	if (!s) {
		ok(0, "the failures store opens");
		return;
	}
	enq(s, "G1", H1, ROW(1), 2, t);
	store_outbox_header_acked(s, "G1", 1, t);
	d = due_one(s, t, "G1", 10);
	ids_of(d, ids, 8);
	json_decref(d);
	struct store_outbox_ids one = {.id = ids, .n = 1};
	store_outbox_sending(s, &one, 1, t);
	is_int(store_outbox_failed(s, "G1", &one, t + MIN_MS, "http 503: Service Unavailable",
				   "<html>busy</html>", t + 10),
	       0, "a failed request is recorded");
	n = row_states(s, "G1");
	is_str(n, "pending", "the failed request's rows are pending again");
	free(n);
	is_int(vget(s, "G1", "attempts"), 1, "the dossier counts the failed attempt");
	n = vstr(s, "G1", "last_error");
	is_str(n, "http 503: Service Unavailable", "the error is kept");
	free(n);
	n = vstr(s, "G1", "last_response");
	is_str(n, "<html>busy</html>", "the raw body of the failure is kept");
	free(n);
	n = vstr(s, "G1", "next_attempt");
	is_str(n, "2026-11-27T04:34:06Z", "the back-off time is given in ISO 8601");
	free(n);
	d = due_one(s, t + 20, "G1", 10);
	ok(d == NULL, "a failed dossier waits for its back-off");
	json_decref(d);
	d = due_one(s, t + MIN_MS, "G1", 10);
	n = rows_of(d);
	is_str(n, "1", "and is due again, with its row, at next_attempt_ms");
	free(n);
	json_decref(d);
	q = store_outbox_queue(s, t);
	ok(json_eq(q, "by_reason", "{\"http 503\":1}"),
	   "the queue counts dossiers by failure reason");
	json_decref(q);

	enq(s, "G2", H1, NULL, 2, t);
	is_int(store_outbox_failed(s, "G2", NULL, t + MIN_MS, "timeout: no answer in 30 s", NULL,
				   t + 10),
	       0, "a failed header (no rows) is recorded");
	n = events_of(s, "G2");
	is_str(n, "received,error", "an error event is written");
	free(n);
	is_int(store_outbox_failed(s, "G1", NULL, t + 2 * MIN_MS, "timeout: again", NULL, t + 20),
	       0, "G1 fails again");
	is_int(vget(s, "G1", "attempts"), 2, "attempts count consecutive failures");
	q = store_outbox_queue(s, t);
	ok(json_eq(q, "by_reason", "{\"timeout\":2}"),
	   "a dossier is counted under the reason of its latest failure only");
	json_decref(q);
	is_int(store_outbox_failed(s, "nobody", NULL, t, "x: y", NULL, t), 1,
	       "a failure of an unknown dossier says 1");
	is_int(store_outbox_failed(s, "G1", NULL, t, NULL, NULL, t), -EINVAL,
	       "a failure without an error text is refused");
	is_int(store_outbox_failed(s, "G1", NULL, t, "", NULL, t), -EINVAL,
	       "an empty error text is refused");

	/* A failure names its dossier: another dossier's rows are not touched. */
	enq(s, "G3", H1, ROW(1), 2, t);
	store_outbox_header_acked(s, "G3", 1, t);
	d = due_one(s, t, "G3", 10);
	ids_of(d, g3, 8);
	json_decref(d);
	struct store_outbox_ids other = {.id = g3, .n = 1};
	store_outbox_sending(s, &other, 2, t);
	store_outbox_failed(s, "G1", &other, t, "http 500: x", NULL, t);
	n = row_states(s, "G3");
	is_str(n, "sending", "a failure of G1 leaves G3's rows alone");
	free(n);
	check_counters(s, names, 3, "after failures");

	/* Success clears the attempts and the reason, keeps the last error. */
	store_outbox_sending(s, &one, 3, t + 3 * MIN_MS);
	is_int(store_outbox_progress_acked(s, &one, t + 3 * MIN_MS), 0, "G1's row gets through");
	is_int(vget(s, "G1", "attempts"), 0, "a success resets the attempts");
	n = vstr(s, "G1", "reason");
	is_str(n, NULL, "and clears the failure reason");
	free(n);
	n = vstr(s, "G1", "last_error");
	is_str(n, "http 500: x", "the last error stays for the record");
	free(n);
	store_outbox_header_acked(s, "G2", 1, t + 3 * MIN_MS);
	q = store_outbox_queue(s, t);
	ok(json_eq(q, "by_reason", "{}"), "reasons leave the counts when their dossiers succeed");
	json_decref(q);

	/* Long texts are clipped, at a character. */
	char *err = xcalloc(5001, 1), *raw = xcalloc(100001, 1);
	for (int i = 0; i < 5000; i += 2)
		memcpy(err + i, "\xc3\xa1", 2); /* á */
	memset(raw, 'r', 100000);
	is_int(store_outbox_failed(s, "G2", NULL, t, err, raw, t), 0, "a long error is recorded");
	n = vstr(s, "G2", "last_error");
	is_int(n ? (long long)strlen(n) : -1, STORE_OUTBOX_ERROR_MAX_BYTES,
	       "the error is clipped to STORE_OUTBOX_ERROR_MAX_BYTES on a character boundary");
	free(n);
	n = vstr(s, "G2", "last_response");
	is_int(n ? (long long)strlen(n) : -1, STORE_OUTBOX_RAW_MAX_BYTES,
	       "the raw body is clipped to STORE_OUTBOX_RAW_MAX_BYTES");
	free(n);
	n = vstr(s, "G2", "reason");
	is_int(n ? (long long)strlen(n) : -1, 48, "a reason without ':' is its first 48 bytes");
	free(n);
	free(err);
	free(raw);
	check_counters(s, names, 3, "after successes");
	store_close(s);
}

/* ---- dead letters, hold and release ------------------------------------------- */

/* Marks every due row of mahoso sending; ids into ids (8 at most). */
static size_t send_all(struct store *s, const char *mahoso, int64_t now_ms, int64_t *ids)
{
	json_t *d = due_one(s, now_ms, mahoso, 8);
	size_t n = ids_of(d, ids, 8);
	json_decref(d);
	struct store_outbox_ids set = {.id = ids, .n = n};
	if (n && store_outbox_sending(s, &set, 1, now_ms) != 0)
		printf("#   marking %s's rows failed\n", mahoso);
	return n;
}

static void test_dead_letters(void)
{
	static const char *const names[] = {"K1", "K2", "K3", "K4", "K5", "K6", "K7", "K8"};
	struct store *s = open_store("dead.db", 0);
	int64_t t = T0_MS, ids[8], letter = 0, l2 = 0;
	unsigned retried = 99;
	json_t *d, *a;
	char *n;
	if (!s) {
		ok(0, "the dead letters store opens");
		return;
	}
	const char *raw = "{\"error_code\":\"-1\",\"message\":\"Hồ sơ K1 không tồn tại\"}";
	enq(s, "K1", H1, ROW(1), 2, t);
	enq(s, "K1", NULL, ROW(2), 4, t + 1);
	store_outbox_header_acked(s, "K1", 1, t + 2);
	size_t k = send_all(s, "K1", t + 3, ids);
	struct store_outbox_ids set = {.id = ids, .n = k};
	is_int(store_outbox_dead(s, "K1", "progress", &set, "portal: Hồ sơ K1 không tồn tại", raw,
				 t + 4, &letter),
	       0, "rows refused for good become a dead letter");
	ok(letter > 0, "the dead letter's id is returned");
	n = vstr(s, "K1", "state");
	is_str(n, "dead", "the dossier is dead");
	free(n);
	n = row_states(s, "K1");
	is_str(n, "dead,dead", "its rows are dead");
	free(n);
	ok(enq(s, "K1", NULL, ROW(3), 4, t + 5) > 0, "a dead dossier still collects its changes");
	d = due_one(s, t + DAY_MS, "K1", 10);
	ok(d == NULL, "nothing goes out for a dead dossier");
	json_decref(d);
	is_int(qget(s, "by_state.dead"), 1, "the queue counts the dead dossier");
	is_int(qget(s, "dead_letters"), 1, "and its open dead letter");
	a = store_outbox_deadletters(s, "dead", 10);
	is_int(a ? (long long)json_array_size(a) : -1, 1, "deadletters lists the open letter");
	json_t *l = json_array_get(a, 0);
	is_str(sget(l, "mahoso"), "K1", "the letter names its dossier");
	is_str(sget(l, "what"), "progress", "and what died");
	is_int(iget(l, "rows"), 2, "and how many rows");
	is_int(iget(l, "progress_id"), ids[0], "and the first of them");
	is_int(iget(l, "raw_bytes"), (long long)strlen(raw), "the listing gives the raw size");
	ok(!json_object_get(l, "raw"), "but not the raw body itself");
	is_str(sget(l, "at"), "2026-11-27T04:33:06Z", "the letter's time is in ISO 8601");
	json_decref(a);
	ok(store_outbox_deadletters(s, "bogus", 10) == NULL,
	   "an unknown letter state lists nothing");
	n = events_of(s, "K1");
	is_str(n, "received,received,header_acked,progress_sent,dead,received",
	       "the timeline shows the death");
	free(n);

	is_int(store_outbox_retry(s, letter, "operator", t + 100, &retried), 0,
	       "the dead letter is retried");
	is_int(retried, 1, "one letter was retried");
	n = vstr(s, "K1", "state");
	is_str(n, "active", "the dossier is active again");
	free(n);
	d = due_one(s, t + 100, "K1", 10);
	n = rows_of(d);
	is_str(n, "1,2,3", "a retried dossier sends its revived rows first, in order");
	free(n);
	json_decref(d);
	a = store_outbox_deadletters(s, "retried", 0);
	l = json_array_get(a, 0);
	is_str(sget(l, "closed_by"), "operator", "the retried letter names who retried it");
	ok(sget(l, "closed") != NULL, "and when, in ISO 8601");
	json_decref(a);
	is_int(store_outbox_retry(s, letter, "operator", t, NULL), 1,
	       "retrying a letter that is not open says 1");
	is_int(store_outbox_retry(s, 99999, "operator", t, NULL), -ENOENT,
	       "retrying an unknown letter says -ENOENT");
	is_int(store_outbox_retry(s, letter, NULL, t, NULL), -EINVAL, "a retry needs an actor");

	/* A header that dies and is dropped. */
	enq(s, "K2", H1, NULL, 2, t);
	is_int(store_outbox_dead(s, "K2", "header", NULL, "portal: Thiếu trường MaTTHC", NULL,
				 t + 1, &l2),
	       0, "a refused header becomes a dead letter");
	is_int(store_outbox_drop(s, l2, "operator", "sửa ánh xạ rồi gửi lại sau", t + 2), 0,
	       "the header's dead letter is dropped");
	n = vstr(s, "K2", "state");
	is_str(n, "active", "a dossier whose only letter is dropped is active");
	free(n);
	is_int(vget(s, "K2", "header_sent_version"), 1,
	       "the dropped header version counts as sent");
	d = due_one(s, t + DAY_MS, "K2", 10);
	ok(d == NULL, "so it is not sent");
	json_decref(d);
	a = store_outbox_deadletters(s, "dropped", 0);
	is_str(sget(json_array_get(a, 0), "note"), "sửa ánh xạ rồi gửi lại sau",
	       "the dropped letter keeps the operator's reason");
	json_decref(a);
	enq(s, "K2", H2, NULL, 4, t + 3);
	d = due_one(s, t + DAY_MS, "K2", 10);
	ok(d && json_eq(d, "header", H2), "a later header goes out as usual");
	json_decref(d);
	is_int(store_outbox_drop(s, l2, "operator", "again", t), 1,
	       "dropping a letter that is not open says 1");
	is_int(store_outbox_drop(s, 99999, "operator", "x", t), -ENOENT,
	       "dropping an unknown letter says -ENOENT");
	is_int(store_outbox_drop(s, l2, "operator", NULL, t), -EINVAL, "a drop needs a reason");
	is_int(store_outbox_dead(s, "K2", "header", &set, "x", NULL, t, NULL), -EINVAL,
	       "a header letter with rows is refused");
	is_int(store_outbox_dead(s, "K2", "bogus", NULL, "x", NULL, t, NULL), -EINVAL,
	       "an unknown kind of letter is refused");

	/* A change that cannot be mapped, of a dossier never seen. */
	const char *change = "{\"seq\":9,\"maHoSo\":\"K3\",\"trangThai\":\"LA\"}";
	is_int(store_outbox_dead(s, "K3", "change", NULL, "unknown status: LA", change, t, &letter),
	       0, "an unmappable change becomes a dead letter");
	n = vstr(s, "K3", "state");
	is_str(n, "dead", "its dossier, never seen before, exists and is dead");
	free(n);
	n = events_of(s, "K3");
	is_str(n, "unmappable,dead", "the timeline says unmappable, then dead");
	free(n);
	json_t *o = view(s, "K3");
	l = json_array_get(json_object_get(o, "dead_letters"), 0);
	is_str(sget(l, "raw"), change, "the dossier view gives the raw change");
	json_decref(o);
	enq(s, "K3", H1, ROW(1), 2, t + 1);
	d = due_one(s, t + DAY_MS, "K3", 10);
	ok(d == NULL, "later changes of that dossier wait");
	json_decref(d);
	store_outbox_retry(s, letter, "operator", t + 2, NULL);
	d = due_one(s, t + DAY_MS, "K3", 10);
	ok(d != NULL, "and go out once the letter is retried");
	json_decref(d);

	/* Two letters on one dossier. */
	enq(s, "K4", H1, ROW(1), 2, t);
	store_outbox_header_acked(s, "K4", 1, t);
	k = send_all(s, "K4", t, ids);
	set.n = k;
	store_outbox_dead(s, "K4", "progress", &set, "a: x", NULL, t, &letter);
	store_outbox_dead(s, "K4", "change", NULL, "b: y", NULL, t, &l2);
	store_outbox_retry(s, letter, "operator", t, NULL);
	n = vstr(s, "K4", "state");
	is_str(n, "dead", "a dossier stays dead while another of its letters is open");
	free(n);
	store_outbox_drop(s, l2, "operator", "bỏ qua", t);
	n = vstr(s, "K4", "state");
	is_str(n, "active", "and is active once the last one is closed");
	free(n);

	/* Retry all. */
	enq(s, "K5", H1, NULL, 2, t);
	enq(s, "K6", H1, NULL, 2, t);
	store_outbox_dead(s, "K5", "header", NULL, "x: 1", NULL, t, NULL);
	store_outbox_dead(s, "K6", "header", NULL, "x: 2", NULL, t, NULL);
	is_int(store_outbox_retry(s, 0, "operator", t + 10, &retried), 0,
	       "every open letter is retried");
	is_int(retried, 2, "both open letters were retried");
	n = due_names(s, t + 10, 20);
	ok(strstr(n, "K5") && strstr(n, "K6"), "both dossiers are due again (%s)", n);
	free(n);
	is_int(store_outbox_retry(s, 0, "operator", t, &retried), 1,
	       "retrying all with none open says 1");

	/* Hold and release. */
	enq(s, "K7", H1, ROW(1), 2, t);
	is_int(store_outbox_hold(s, "K7", "operator", t + 1), 0, "a dossier is held");
	d = due_one(s, t + DAY_MS, "K7", 10);
	ok(d == NULL, "a held dossier is not due");
	json_decref(d);
	is_int(store_outbox_hold(s, "K7", "operator", t + 1), 1, "holding it again says 1");
	ok(enq(s, "K7", NULL, ROW(2), 4, t + 2) > 0, "a held dossier still collects its changes");
	is_int(qget(s, "by_state.held"), 1, "the queue counts the held dossier");
	is_int(store_outbox_release(s, "K7", "operator", t + 3), 0, "the dossier is released");
	d = due_one(s, t + DAY_MS, "K7", 10);
	n = rows_of(d);
	is_str(n, "1,2", "a released dossier is due with everything it collected");
	free(n);
	json_decref(d);
	is_int(store_outbox_release(s, "K7", "operator", t), 1, "releasing it again says 1");
	is_int(store_outbox_hold(s, "nobody", "operator", t), -ENOENT,
	       "holding an unknown dossier says -ENOENT");
	is_int(store_outbox_release(s, "nobody", "operator", t), -ENOENT,
	       "releasing an unknown dossier says -ENOENT");
	n = events_of(s, "K7");
	is_str(n, "received,held,received,released", "hold and release are in the timeline");
	free(n);

	/* Hold a dead dossier: release gives it back dead while its letter is open. */
	enq(s, "K8", H1, NULL, 2, t);
	store_outbox_dead(s, "K8", "header", NULL, "x: 3", NULL, t, &letter);
	store_outbox_hold(s, "K8", "operator", t);
	store_outbox_release(s, "K8", "operator", t);
	n = vstr(s, "K8", "state");
	is_str(n, "dead", "a dead dossier held and released is dead again");
	free(n);
	store_outbox_hold(s, "K8", "operator", t);
	store_outbox_retry(s, letter, "operator", t, NULL);
	n = vstr(s, "K8", "state");
	is_str(n, "held", "retrying a held dossier's letter leaves it held");
	free(n);
	store_outbox_release(s, "K8", "operator", t);
	n = vstr(s, "K8", "state");
	is_str(n, "active", "and releasing it then makes it active");
	free(n);
	a = store_outbox_deadletters(s, NULL, 0);
	is_int(a ? (long long)json_array_size(a) : -1, 8, "deadletters(NULL) lists every letter");
	ok(a && iget(json_array_get(a, 0), "id") > iget(json_array_get(a, 1), "id"),
	   "newest first");
	json_decref(a);
	a = store_outbox_deadletters(s, NULL, 3);
	is_int(a ? (long long)json_array_size(a) : -1, 3, "at most limit letters");
	json_decref(a);
	check_counters(s, names, LT_ARRAY_SIZE(names), "after dead letters");
	store_close(s);
}

static void test_portal_state(void)
{
	struct store *s = open_store("portal.db", 0);
	int64_t t = T0_MS;
	json_t *d;
	if (!s) {
		ok(0, "the portal store opens");
		return;
	}
	enq(s, "P1", H1, NULL, 2, t);
	store_outbox_header_acked(s, "P1", 1, t);
	is_int(store_outbox_portal_state(s, "P1", "absent", t + 1), 0,
	       "the portal says it does not have P1");
	char *n = vstr(s, "P1", "portal_state");
	is_str(n, "absent", "portal_state is recorded");
	free(n);
	d = due_one(s, t + 2, "P1", 10);
	ok(d && json_eq(d, "header", H1) && iget(d, "header_sent_version") == 0,
	   "a dossier the portal does not have is sent again, as a create");
	json_decref(d);
	is_int(store_outbox_portal_state(s, "P1", "present", t + 3), 0, "present is recorded");
	d = due_one(s, t + 4, "P1", 10);
	is_str(sget(d, "portal_state"), "present", "due() gives it: the header goes as an update");
	json_decref(d);
	is_int(store_outbox_portal_state(s, "P1", "bogus", t), -EINVAL,
	       "an unknown state is refused");
	is_int(store_outbox_portal_state(s, "nobody", "present", t), 1,
	       "an unknown dossier says 1");
	store_close(s);
}

/* ---- deadlines ---------------------------------------------------------------------- */

static void enq_dated(struct store *s, const char *mahoso, int status, int64_t due_ms,
		      int64_t changed_ms)
{
	struct store_outbox_change c = chg(mahoso, H1, NULL, status, changed_ms + 1000);
	c.due_ms = due_ms;
	c.changed_ms = changed_ms;
	int r = store_outbox_enqueue(s, &c, NULL);
	if (r != 0)
		printf("#   enqueue %s returned %d\n", mahoso, r);
}

/* The mahoso of a listing, "A,B" (caller frees). */
static char *names_of(json_t *a)
{
	struct dynbuf b;
	size_t i;
	json_t *e;
	dynbuf_init(&b, 0);
	(void)dynbuf_addstr(&b, a ? "" : "(error)");
	json_array_foreach (a, i, e) {
		(void)dynbuf_printf(&b, "%s%s", i ? "," : "", sget(e, "mahoso"));
	}
	json_decref(a);
	return dynbuf_steal(&b, NULL);
}

static void test_deadlines(void)
{
	struct store *s = open_store("deadlines.db", 0);
	int64_t now = T0_MS + 10 * DAY_MS;
	json_t *a;
	char *n;
	if (!s) {
		ok(0, "the deadlines store opens");
		return;
	}
	enq_dated(s, "O1", 4, now - 2 * DAY_MS, now - 5 * DAY_MS);
	enq_dated(s, "O2", 4, now - 1 * DAY_MS, now - 5 * DAY_MS);
	enq_dated(s, "O3", 4, now + 1 * DAY_MS, now - 5 * DAY_MS);
	enq_dated(s, "O4", 9, now - 3 * DAY_MS, now - 4 * DAY_MS); /* finished in time */
	enq_dated(s, "O5", 4, now - 5 * DAY_MS, now - 8 * DAY_MS);
	enq_dated(s, "O5", 10, 0, now - 1 * DAY_MS); /* finished 4 days late */
	enq_dated(s, "O6", 4, now - 9 * DAY_MS, now - 9 * DAY_MS);
	enq_dated(s, "O6", 9, 0, now - 7 * DAY_MS); /* late by 2 days, finished a week ago */
	enq_dated(s, "O6", 10, 0, now - 6 * DAY_MS);
	enq_dated(s, "O7", 3, now - 1 * DAY_MS, now - 2 * DAY_MS); /* rejected in time */
	store_outbox_hold(s, "O2", "operator", now);

	a = store_outbox_overdue(s, now, 0);
	json_t *first = json_incref(json_array_get(a, 0));
	n = names_of(a);
	is_str(n, "O1,O2", "overdue: open dossiers past their due date, most overdue first");
	free(n);
	is_int(iget(first, "overdue_s"), 2 * 86400, "overdue_s says by how much");
	ok(sget(first, "due") && strcmp(sget(first, "due"), "2026-12-05T04:33:06Z") == 0,
	   "the due date is also in ISO 8601");
	is_str(sget(first, "state"), "active", "the outbox state is given");
	json_decref(first);
	n = names_of(store_outbox_overdue(s, now, 1));
	is_str(n, "O1", "overdue gives at most limit dossiers");
	free(n);
	n = names_of(store_outbox_overdue(s, now + 3 * DAY_MS, 0));
	is_str(n, "O1,O2,O3", "a dossier becomes overdue when its due date passes");
	free(n);

	a = store_outbox_late(s, now - 30 * DAY_MS, 0);
	json_t *l0 = json_incref(json_array_get(a, 0));
	n = names_of(a);
	is_str(n, "O6,O5", "late: dossiers finished after their due date, oldest first");
	free(n);
	is_int(iget(l0, "late_s"), 2 * 86400, "late_s says by how much");
	is_int(iget(l0, "finished_ms"), now - 7 * DAY_MS,
	       "a dossier finishes the first time it reaches 9, 10, 3 or 7");
	json_decref(l0);
	n = names_of(store_outbox_late(s, now - 2 * DAY_MS, 0));
	is_str(n, "O5", "late since a time leaves out those finished before it");
	free(n);
	is_int(vget(s, "O4", "finished_ms"), now - 4 * DAY_MS, "status 9 finishes a dossier");
	is_int(vget(s, "O7", "finished_ms"), now - 2 * DAY_MS, "and so does status 3");
	is_int(vget(s, "O5", "due_ms"), now - 5 * DAY_MS,
	       "a change without a due date keeps the stored one");
	store_close(s);
}

/* ---- the operator's view -------------------------------------------------------- */

static void test_views(void)
{
	struct store *s = open_store("views.db", 0);
	int64_t t = T0_MS;
	json_t *o, *q;
	if (!s) {
		ok(0, "the views store opens");
		return;
	}
	q = store_outbox_queue(s, t);
	ok(q && json_is_null(json_object_get(q, "oldest_age_s")) &&
		   json_is_null(json_object_get(q, "oldest")) && iget(q, "depth") == 0,
	   "an empty queue has depth 0 and no oldest work");
	json_decref(q);
	is_int(store_begin(s), 0, "a group begins");
	for (int i = 1; i <= 250; i++) {
		char row[32];
		snprintf(row, sizeof(row), "{\"n\":%d}", i);
		enq(s, "V1", i == 1 ? H1 : NULL, row, 4, t + i * 1000);
	}
	is_int(store_commit(s), 0, "250 changes of one dossier are committed in one group");
	o = view(s, "V1");
	json_t *rows = json_object_get(o, "progress"), *events = json_object_get(o, "events");
	is_int(json_array_size(rows), STORE_OUTBOX_VIEW_MAX, "the view is bounded in rows");
	is_int(iget(o, "progress_total"), 250, "and says how many there are");
	is_int(iget(json_object_get(json_array_get(rows, 0), "row"), "n"), 51,
	       "it gives the newest rows, oldest first");
	is_int(iget(json_object_get(json_array_get(rows, 199), "row"), "n"), 250,
	       "the newest row last");
	is_str(sget(json_array_get(rows, 0), "state"), "pending", "each row has its state");
	ok(sget(json_array_get(rows, 0), "created") != NULL, "and its times in ISO 8601");
	is_int(json_array_size(events), STORE_OUTBOX_VIEW_MAX, "the view is bounded in events");
	is_int(iget(o, "events_total"), 250, "and says how many there are");
	ok(json_is_object(json_object_get(json_array_get(events, 199), "detail")) &&
		   iget(json_object_get(json_array_get(events, 199), "detail"), "seq") == 250000,
	   "the newest event is last, its detail parsed");
	ok(json_is_object(json_object_get(o, "header")), "the header is parsed");
	ok(json_is_array(json_object_get(o, "dead_letters")), "dead letters are listed (none)");
	is_str(sget(o, "work_since"), "2026-11-27T04:33:07Z", "work_since says since when");
	json_decref(o);
	o = NULL;
	is_int(store_outbox_dossier(s, "nobody", &o), 1, "an unknown dossier says 1");
	ok(o == NULL, "and gives nothing");
	is_int(store_outbox_dossier(s, "", &o), -EINVAL, "an empty MaHoSo is refused");

	q = store_outbox_queue(s, t + 61 * 1000);
	is_int(iget(q, "oldest_age_s"), 60, "oldest_age_s is the age of the oldest unsent work");
	is_str(sget(q, "oldest"), "2026-11-27T04:33:07Z", "oldest is its time in ISO 8601");
	is_int(iget(q, "rows_pending"), 250, "the queue counts pending rows");
	is_int(iget(q, "depth"), 1, "and dossiers with work");
	ok(sget(q, "at") != NULL, "it says when it was read");
	json_decref(q);
	store_close(s);
}

/* ---- crashes: a child killed with SIGKILL between steps ------------------------- */

/* Runs fn in a child that kills itself with SIGKILL at the end; true when it did. */
static bool crash_child(void (*fn)(void))
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		fn();
		kill(getpid(), SIGKILL);
		_exit(1);
	}
	int status = 0;
	if (waitpid(pid, &status, 0) != pid)
		return false;
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

static void child_uncommitted_group(void)
{
	struct store *s = open_store("crash.db", 0);
	if (!s)
		return;
	if (store_begin(s) != 0)
		return;
	for (int i = 0; i < 10; i++) {
		char m[16];
		snprintf(m, sizeof(m), "C2-%d", i);
		enq(s, m, H1, ROW(1), 2, T0_MS + 100 + i);
	}
	enq(s, "C1", NULL, ROW(2), 4, T0_MS + 200);
	store_outbox_header_acked(s, "C1", 1, T0_MS + 200);
	store_cursor_set(s, "provincial.dossiers", "12");
	/* killed here, before store_commit() */
}

static void child_in_flight(void)
{
	struct store *s = open_store("crash.db", 0);
	int64_t ids[8];
	if (!s)
		return;
	enq(s, "C3", H1, ROW(1), 2, T0_MS + 300);
	enq(s, "C3", NULL, ROW(2), 4, T0_MS + 301);
	enq(s, "C4", H1, ROW(1), 2, T0_MS + 302);
	store_outbox_header_acked(s, "C3", 1, T0_MS + 303);
	store_outbox_header_acked(s, "C4", 1, T0_MS + 303);
	send_all(s, "C3", T0_MS + 304, ids);
	json_t *d = due_one(s, T0_MS + 304, "C4", 8);
	size_t n = ids_of(d, ids, 8);
	json_decref(d);
	struct store_outbox_ids set = {.id = ids, .n = n};
	store_outbox_sending(s, &set, 6, T0_MS + 305);
	/* killed here: the requests went out, nobody knows whether they arrived */
}

static void child_committed_groups(void)
{
	struct store *s = open_store("groups.db", 0);
	if (!s)
		return;
	for (int g = 0; g < 11; g++) {
		char cursor[16];
		if (store_begin(s) != 0)
			return;
		for (int i = 0; i < 100; i++) {
			char m[32];
			snprintf(m, sizeof(m), "G%02d-%03d", g, i);
			enq(s, m, H1, ROW(1), 2, T0_MS + g * 1000 + i);
		}
		snprintf(cursor, sizeof(cursor), "%d", g);
		store_cursor_set(s, "provincial.dossiers", cursor);
		if (g < 10 && store_commit(s) != 0)
			return;
		/* the eleventh group is killed before its commit */
	}
}

static void test_crashes(void)
{
	struct store *s = open_store("crash.db", 0);
	char *v = NULL, *n;
	json_t *o = NULL, *a;
	if (!s) {
		ok(0, "the crash store opens");
		return;
	}
	enq(s, "C1", H1, ROW(1), 2, T0_MS);
	store_cursor_set(s, "provincial.dossiers", "1");
	store_close(s);

	ok(crash_child(child_uncommitted_group), "a child is killed inside an uncommitted group");
	s = open_store("crash.db", 0);
	if (!s) {
		ok(0, "the crash store reopens");
		return;
	}
	is_int(store_cursor_get(s, "provincial.dossiers", &v), 0, "the cursor is still there");
	is_str(v, "1", "the cursor of the lost group did not move");
	free(v);
	is_int(store_outbox_dossier(s, "C2-0", &o), 1, "no dossier of the lost group exists");
	n = row_states(s, "C1");
	is_str(n, "pending", "no row of the lost group was added to a known dossier");
	free(n);
	is_int(vget(s, "C1", "header_sent_version"), 0,
	       "no acknowledgement of the lost group stayed");
	is_int(qget(s, "rows_pending"), 1, "the counters did not move either");
	is_int(qget(s, "dossiers"), 1, "one dossier, as committed");
	store_close(s);

	ok(crash_child(child_in_flight), "a child is killed with requests in flight");
	s = open_store("crash.db", 0);
	if (!s) {
		ok(0, "the crash store reopens");
		return;
	}
	a = store_outbox_in_doubt(s);
	ok(a && json_array_size(a) == 2, "the rows left sending are in doubt, by dossier");
	json_t *c3 = json_array_get(a, 0), *c4 = json_array_get(a, 1);
	is_str(sget(c3, "mahoso"), "C3", "dossiers in doubt come in MaHoSo order");
	ok(json_eq(c3, "ids", "[2,3]"), "with the ids of their rows in doubt");
	is_int(iget(json_array_get(json_object_get(c3, "rows"), 1), "n"), 2,
	       "the rows in doubt are given parsed, in id order");
	is_int(iget(c4, "batch"), 6, "and the batch they went out in");
	json_decref(a);
	n = due_names(s, T0_MS + DAY_MS, 10);
	is_str(n, "C1", "rows in doubt keep their dossiers out of due() until resolved");
	free(n);
	store_close(s);
	s = open_store("crash.db", 0);
	if (!s) {
		ok(0, "the crash store reopens again");
		return;
	}
	a = store_outbox_in_doubt(s);
	is_int(a ? (long long)json_array_size(a) : -1, 2, "doubt survives another restart");
	json_decref(a);
	int64_t sent_ids[] = {2}, resend_ids[] = {3, 4};
	struct store_outbox_ids sent = {.id = sent_ids, .n = 1};
	struct store_outbox_ids resend = {.id = resend_ids, .n = 2};
	is_int(store_outbox_resolve(s, &sent, &resend, T0_MS + 400), 0,
	       "the doubt is resolved (TraCuuHoSo found one row, not the others)");
	n = row_states(s, "C3");
	is_str(n, "sent,pending", "a row the portal has is sent, a row it lacks is pending again");
	free(n);
	a = store_outbox_in_doubt(s);
	is_int(a ? (long long)json_array_size(a) : -1, 0, "nothing is in doubt any more");
	json_decref(a);
	n = due_names(s, T0_MS + 400, 10);
	is_str(n, "C1,C3,C4", "the resolved dossiers are due again");
	free(n);
	n = events_of(s, "C3");
	ok(strstr(n, "progress_sent,resolved,resolved") != NULL,
	   "the resolution is in the timeline (%s)", n);
	free(n);
	is_int(qget(s, "rows_sending"), 0, "no row is counted sending");
	store_close(s);

	ok(crash_child(child_committed_groups),
	   "a child commits ten groups and is killed inside the eleventh");
	s = open_store("groups.db", 0);
	if (!s) {
		ok(0, "the groups store reopens");
		return;
	}
	is_int(qget(s, "dossiers"), 1000, "every dossier of the committed groups is there");
	is_int(qget(s, "rows_pending"), 1000, "with every row");
	is_int(store_cursor_get(s, "provincial.dossiers", &v), 0, "the cursor is there");
	is_str(v, "9", "at the last committed group");
	free(v);
	is_int(store_outbox_dossier(s, "G10-000", &o), 1, "nothing of the killed group is");
	a = store_outbox_due(s, T0_MS + DAY_MS, 10000, 1);
	is_int(a ? (long long)json_array_size(a) : -1, 1000, "all of it is due");
	json_decref(a);
	store_close(s);
}

/* ---- a group that fills the store ------------------------------------------------ */

static char *fake_header(int d, int version);

static void test_full_group(void)
{
	struct store *s = open_store("full.db", 512 * 1024);
	int r = 0, n_ok = 0;
	if (!s) {
		ok(0, "a store with a small max_size opens");
		return;
	}
	ok(enq(s, "Z0", H1, ROW(1), 2, T0_MS) > 0, "a change is stored before the group");
	is_int(store_begin(s), 0, "a group begins");
	is_int(store_outbox_header_acked(s, "Z0", 1, T0_MS), 0,
	       "the group acknowledges the stored dossier's header");
	for (int i = 1; i < 5000; i++) {
		char m[32];
		char *h = fake_header(i, 1);
		snprintf(m, sizeof(m), "Z%d", i);
		struct store_outbox_change c = chg(m, h, ROW(1), 2, T0_MS + i);
		r = store_outbox_enqueue(s, &c, NULL);
		free(h);
		if (r < 0)
			break;
		n_ok++;
	}
	is_int(r, -ENOSPC, "the group's enqueues hit the limit with -ENOSPC");
	ok(n_ok > 5, "enqueues succeeded until the limit (%d)", n_ok);
	is_int(store_health(s, NULL), STORE_FULL, "the store reports STORE_FULL");
	is_int(store_cursor_set(s, "provincial.dossiers", "5000"), -ENOSPC,
	       "the cursor of the lost group is refused");
	is_int(store_commit(s), -ENOSPC, "the group's commit reports -ENOSPC");
	json_t *o = NULL;
	is_int(store_outbox_dossier(s, "Z1", &o), 1, "no dossier of the lost group is stored");
	is_int(vget(s, "Z0", "header_sent_version"), 0, "the group's acknowledgement is lost too");
	is_int(vget(s, "Z0", "events_total"), 1, "no event of the group is stored");
	is_int(qget(s, "dossiers"), 1, "the counters are as before the group");
	is_int(qget(s, "rows_pending"), 1, "every counter");
	char *v = NULL;
	is_int(store_cursor_get(s, "provincial.dossiers", &v), 1, "the cursor was never set");
	free(v);
	is_int(store_health(s, NULL), STORE_FULL, "the health stays STORE_FULL after the group");
	store_close(s);
}

/* ---- timings (printed, not checked) ---------------------------------------------- */

/* A mapped national header of dossier d, about 2 KB as the portal's are. */
static char *fake_header(int d, int version)
{
	return xasprintf(
		"{\"MaHoSo\":\"000.00.03.H31-251127-%05d\",\"MaTTHC\":\"1.001193.000.00.00.H31\","
		"\"TenTTHC\":\"Cấp giấy phép hoạt động cơ sở dịch vụ thẩm mỹ theo quy định\","
		"\"MaLinhVuc\":\"G13\",\"TenLinhVuc\":\"Khám bệnh, chữa bệnh\",\"KenhThucHien\":2,"
		"\"ChuHoSo\":\"Nguyễn Thị Thu Hương\",\"LoaiDoiTuong\":1,\"MaDoiTuong\":\"\","
		"\"SoDienThoai\":\"0912345678\",\"Email\":\"huong.nguyen@example.vn\","
		"\"TrichYeuHoSo\":\"Đề nghị cấp giấy phép hoạt động cơ sở dịch vụ thẩm mỹ tại số "
		"%d "
		"đường Trần Hưng Đạo, phường Hội An, thành phố Đà Nẵng, kèm hồ sơ năng lực, "
		"chứng chỉ hành nghề của người phụ trách chuyên môn và bản kê khai thiết bị\","
		"\"NgayNopHoSo\":\"20251127083000\",\"NgayTiepNhan\":\"20251127090000\","
		"\"NgayHenTra\":\"20251211170000\",\"NgayKetThucXuLy\":\"\",\"NgayTra\":\"\","
		"\"NgayTuChoi\":\"\",\"TrangThaiHoSo\":%d,\"DonViXuLy\":\"000.00.03.H31\","
		"\"HinhThuc\":0,\"NoiNopHoSo\":2,\"HoSoCoThanhPhanSoHoa\":1,"
		"\"TaiKhoanDuocXacThucVoiVNeID\":1,\"DuocThanhToanTrucTuyen\":2,"
		"\"DinhDanhCHS\":[{\"LoaiDinhDanh\":1,\"SoDinhDanh\":\"048190001234\"}],"
		"\"TaiLieuNop\":[{\"TepDinhKemId\":\"a1\",\"TenTepDinhKem\":\"Đơn đề nghị cấp giấy "
		"phép.pdf\",\"DuocSoHoa\":1,\"DuocTaiSuDung\":0,\"DuocLayTuKhoDMQG\":0},"
		"{\"TepDinhKemId\":\"a2\",\"TenTepDinhKem\":\"Chứng chỉ hành nghề.pdf\","
		"\"DuocSoHoa\":1,\"DuocTaiSuDung\":1,\"DuocLayTuKhoDMQG\":1},"
		"{\"TepDinhKemId\":\"a3\",\"TenTepDinhKem\":\"Danh mục thiết bị y tế.pdf\","
		"\"DuocSoHoa\":1,\"DuocTaiSuDung\":0,\"DuocLayTuKhoDMQG\":0}],"
		"\"DanhSachLePhi\":[{\"TenPhiLePhi\":\"Phí thẩm định cấp giấy phép hoạt động\","
		"\"MaPhiLePhi\":\"P1\",\"HinhThucThu\":2,\"Gia\":4300000,\"LoaiPhiLePhi\":1}],"
		"\"DanhSachHoSoBoSung\":[],\"DanhSachGiayToKetQua\":[]}",
		d, d, 1 + version % 10);
}

/* A mapped progress row, about 400 bytes. */
static char *fake_row(int d, int k)
{
	return xasprintf("{\"MaHoSo\":\"000.00.03.H31-251127-%05d\",\"NguoiXuLy\":\"Trần Văn "
			 "Bình\",\"ChucDanh\":\"Chuyên viên\",\"ThoiDiemXuLy\":\"202511271%05d\","
			 "\"PhongBanXuLy\":\"Phòng Nghiệp vụ Y\",\"NoiDungXuLy\":\"Thẩm định hồ sơ "
			 "bước %d: kiểm tra thành phần và tính hợp lệ của hồ sơ\",\"TrangThai\":4,"
			 "\"NgayBatDau\":\"20251127090000\",\"NgayKetThucTheoQuyDinh\":"
			 "\"20251211170000\"}",
			 d, k, k);
}

static double ms_since(uint64_t t0_us)
{
	return (double)(now_mono_us() - t0_us) / 1000.0;
}

static long max_rss_kb(void)
{
	struct rusage u;
	getrusage(RUSAGE_SELF, &u);
	return u.ru_maxrss;
}

/*
 * n_changes over n_dossiers (each dossier gets its changes spread over the
 * feed), in groups with the feed cursor. Returns the failures.
 */
static int fill(struct store *s, int n_changes, int n_dossiers, int group, double *worst_ms)
{
	int failed = 0;
	*worst_ms = 0;
	for (int i = 0; i < n_changes; i += group) {
		uint64_t t0 = now_mono_us();
		char cursor[24];
		failed += store_begin(s) != 0;
		for (int j = i; j < i + group && j < n_changes; j++) {
			/* A stride coprime with n_dossiers visits every dossier in turn. */
			int d = (int)(((int64_t)j * 7919) % n_dossiers);
			char m[48];
			char *h = fake_header(d, j / n_dossiers),
			     *row = fake_row(d, j / n_dossiers);
			snprintf(m, sizeof(m), "000.00.03.H31-251127-%05d", d);
			struct store_outbox_change c = chg(m, h, row, 4, T0_MS + j);
			c.due_ms = T0_MS + 14 * DAY_MS;
			failed += store_outbox_enqueue(s, &c, NULL) != 0;
			free(h);
			free(row);
		}
		snprintf(cursor, sizeof(cursor), "%d", i + group);
		failed += store_cursor_set(s, "provincial.dossiers", cursor) != 0;
		failed += store_commit(s) != 0;
		double ms = ms_since(t0);
		if (ms > *worst_ms)
			*worst_ms = ms;
	}
	return failed;
}

/*
 * One round of the flow: due, headers acked, rows marked sending (one
 * commit), rows acked (another). *rows counts the rows sent; *empty says
 * that nothing was due. Returns the failures.
 */
static int drain_round(struct store *s, int64_t now_ms, unsigned max_dossiers, unsigned max_rows,
		       int64_t batch, size_t *rows, bool *empty)
{
	static int64_t ids[STORE_OUTBOX_IDS_MAX];
	json_t *a = store_outbox_due(s, now_ms, max_dossiers, max_rows), *d;
	size_t i, n = 0;
	int failed = 0;
	*rows = 0;
	*empty = a && json_array_size(a) == 0;
	if (!a)
		return 1;
	failed += store_begin(s) != 0;
	json_array_foreach (a, i, d) {
		if (json_object_get(d, "header"))
			failed += store_outbox_header_acked(s, sget(d, "mahoso"),
							    iget(d, "header_version"), now_ms) != 0;
		n += ids_of(d, ids + n, LT_ARRAY_SIZE(ids) - n);
	}
	struct store_outbox_ids set = {.id = ids, .n = n};
	if (n)
		failed += store_outbox_sending(s, &set, batch, now_ms) != 0;
	failed += store_commit(s) != 0;
	if (n)
		failed += store_outbox_progress_acked(s, &set, now_ms) != 0;
	*rows = n;
	json_decref(a);
	return failed;
}

static void time_flow(int n_changes, int n_dossiers)
{
	char name[48];
	double worst = 0;
	snprintf(name, sizeof(name), "timing-%d.db", n_changes);
	struct store *s = open_store(name, 0);
	if (!s) {
		ok(0, "the timing store opens");
		return;
	}
	uint64_t t0 = now_mono_us();
	int failed = fill(s, n_changes, n_dossiers, 1000, &worst);
	double t_fill = ms_since(t0);
	int64_t size = store_size_bytes(s);
	is_int(failed, 0, "every write of the %d-change enqueue timing succeeded", n_changes);
	printf("# enqueue: %d changes over %d dossiers (2 KB header + 0.4 KB row each), groups "
	       "of 1,000 with the cursor, synchronous=FULL: %.0f ms, %.0f changes/s, slowest "
	       "group %.0f ms; store %.1f MB = %.0f KB per 1,000 changes\n",
	       n_changes, n_dossiers, t_fill, n_changes / (t_fill / 1000.0), worst,
	       (double)size / 1048576.0, (double)size / 1024.0 / (n_changes / 1000.0));

	t0 = now_mono_us();
	json_t *q = store_outbox_queue(s, T0_MS + DAY_MS);
	double t_queue = ms_since(t0);
	is_int(iget(q, "rows_pending"), n_changes, "the queue counts the whole backlog");
	json_decref(q);

	size_t rows = 0, total = 0;
	int rounds = 0;
	double worst_round = 0;
	bool empty = false;
	t0 = now_mono_us();
	for (;; rounds++) {
		uint64_t r0 = now_mono_us();
		failed += drain_round(s, T0_MS + DAY_MS, 500, 50, rounds + 1, &rows, &empty);
		if (empty || failed)
			break;
		total += rows;
		if (ms_since(r0) > worst_round)
			worst_round = ms_since(r0);
	}
	double t_drain = ms_since(t0);
	is_int(failed, 0, "every write of the drain succeeded");
	is_int(total, n_changes, "the drain sent every row exactly once");
	is_int(qget(s, "depth"), 0, "and left nothing behind");
	printf("# drain: %zu rows of %d dossiers in %d rounds (due 500 dossiers x 50 rows, "
	       "headers acked + rows marked sending in one commit, rows acked in another): "
	       "%.0f ms, %.0f rows/s, slowest round %.0f ms; queue() %.2f ms; feed to "
	       "acknowledgement, the store's part: %.0f changes/s\n",
	       total, n_dossiers, rounds, t_drain, total / (t_drain / 1000.0), worst_round, t_queue,
	       n_changes / ((t_fill + t_drain) / 1000.0));
	store_close(s);
}

static void time_backlog(int n_rows, bool drain)
{
	char name[48];
	double worst = 0;
	int n_dossiers = n_rows / 5;
	snprintf(name, sizeof(name), "backlog-%d.db", n_rows);
	struct store *s = open_store(name, 0);
	if (!s) {
		ok(0, "the backlog store opens");
		return;
	}
	long rss0 = max_rss_kb();
	uint64_t t0 = now_mono_us();
	int failed = fill(s, n_rows, n_dossiers, 10000, &worst);
	double t_fill = ms_since(t0);
	is_int(failed, 0, "the %d-row backlog is built", n_rows);
	long rss1 = max_rss_kb();
	int64_t now = T0_MS + DAY_MS;

	double due_sum = 0, due_max = 0, due_big = 0, q_sum = 0, q_max = 0;
	size_t got = 0;
	for (int i = 0; i < 20; i++) {
		t0 = now_mono_us();
		json_t *a = store_outbox_due(s, now, 100, 50);
		double ms = ms_since(t0);
		got = a ? json_array_size(a) : 0;
		json_decref(a);
		due_sum += ms;
		due_max = ms > due_max ? ms : due_max;
	}
	is_int(got, 100, "due() gives the 100 dossiers it was asked for");
	t0 = now_mono_us();
	json_t *a = store_outbox_due(s, now, 1000, 10);
	due_big = ms_since(t0);
	json_decref(a);
	for (int i = 0; i < 100; i++) {
		t0 = now_mono_us();
		json_t *q = store_outbox_queue(s, now);
		double ms = ms_since(t0);
		json_decref(q);
		q_sum += ms;
		q_max = ms > q_max ? ms : q_max;
	}

	/* 1,000 dossiers in flight at the head of the queue: due() steps over them. */
	size_t rows = 0;
	is_int(store_begin(s), 0, "a round marks rows sending");
	a = store_outbox_due(s, now, 1000, 50);
	static int64_t ids[STORE_OUTBOX_IDS_MAX];
	size_t i, n = 0;
	json_t *d;
	json_array_foreach (a, i, d) {
		n += ids_of(d, ids + n, LT_ARRAY_SIZE(ids) - n);
	}
	json_decref(a);
	struct store_outbox_ids set = {.id = ids, .n = n};
	failed += store_outbox_sending(s, &set, 1, now) != 0;
	failed += store_commit(s) != 0;
	t0 = now_mono_us();
	a = store_outbox_due(s, now, 100, 50);
	double due_skip = ms_since(t0);
	json_decref(a);
	failed += store_outbox_progress_acked(s, &set, now) != 0;
	is_int(failed, 0, "the in-flight round succeeded");

	int64_t size = store_size_bytes(s);
	printf("# backlog of %d rows over %d dossiers (built at %.0f changes/s in groups of "
	       "10,000): due(100 dossiers, 50 rows) avg %.2f ms max %.2f ms; due(1000, 10) "
	       "%.1f ms; due(100, 50) past 1,000 dossiers in flight %.2f ms; queue() avg %.3f "
	       "ms max %.3f ms; store %.0f MB = %.0f KB per 1,000 changes; max RSS %ld -> %ld "
	       "KB while building\n",
	       n_rows, n_dossiers, n_rows / (t_fill / 1000.0), due_sum / 20, due_max, due_big,
	       due_skip, q_sum / 100, q_max, (double)size / 1048576.0,
	       (double)size / 1024.0 / (n_rows / 1000.0), rss0, rss1);

	if (drain) {
		long rss2 = max_rss_kb();
		size_t total = 0;
		bool empty = false;
		t0 = now_mono_us();
		for (int r = 0; r < 100000; r++) {
			failed += drain_round(s, now, 500, 50, r + 2, &rows, &empty);
			if (empty || failed)
				break;
			total += rows;
		}
		double t_drain = ms_since(t0);
		is_int(failed, 0, "the backlog drains without a failure");
		is_int(total + n, n_rows, "every row of the backlog was sent once");
		is_int(qget(s, "depth"), 0, "the whole backlog drained");
		printf("# drained %zu rows in %.0f ms (%.0f rows/s); max RSS %ld KB before, %ld "
		       "KB after\n",
		       total, t_drain, total / (t_drain / 1000.0), rss2, max_rss_kb());
	}
	store_close(s);
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* ---- due_ex: what the dossier flow asks for --------------------------------- */

static bool skip_x1(const char *mahoso, void *ud)
{
	(*(int *)ud)++;
	return strcmp(mahoso, "X1") == 0;
}

static void test_due_ex(void)
{
	struct store *s = open_store("due_ex.db", 0);
	int64_t t = T0_MS;
	if (!s) {
		ok(0, "the due_ex store opens");
		return;
	}
	/* X1, X2: new (a create each); X3: known to the portal, an update */
	enq(s, "X1", H1, ROW(1), 2, t);
	enq(s, "X1", H2, ROW(2), 4, t + 1);
	enq(s, "X2", H1, ROW(3), 2, t + 2);
	enq(s, "X3", H1, ROW(4), 2, t + 3);
	is_int(store_outbox_header_acked(s, "X3", 1, t + 4), 0, "X3's header is acknowledged");
	enq(s, "X3", H2, ROW(5), 4, t + 5);
	enq(s, "X3", H2, ROW(6), 4, t + 6);

	struct store_outbox_due_opts o = {
		.max_dossiers = 10, .max_rows_per_dossier = 10, .rows_after_create = true};
	json_t *a = store_outbox_due_ex(s, t + 100, &o), *d;
	size_t i, rows = 0, headers = 0;
	json_array_foreach (a, i, d) {
		rows += json_array_size(json_object_get(d, "progress"));
		headers += json_object_get(d, "header") != NULL;
	}
	is_int((long long)json_array_size(a), 3, "due_ex without bounds hands out every dossier");
	is_int((long long)rows, 6, "... with every pending row (rows_after_create)");
	is_int((long long)headers, 3, "... and every due header");
	d = json_array_get(a, 2);
	is_str(sget(d, "mahoso"), "X3", "the update comes in queue order");
	is_int((long long)json_array_size(json_object_get(d, "progress")), 3,
	       "an update's rows come with its header");
	json_decref(a);

	o.rows_after_create = false;
	a = store_outbox_due_ex(s, t + 100, &o);
	rows = 0;
	json_array_foreach (a, i, d) {
		rows += json_array_size(json_object_get(d, "progress"));
	}
	is_int((long long)rows, 3, "rows_after_create false: only the rows of the update (X3)");
	json_decref(a);

	o.max_items = 3;
	a = store_outbox_due_ex(s, t + 100, &o);
	is_int((long long)json_array_size(a), 3, "max_items 3: three headers, three dossiers");
	d = json_array_get(a, 2);
	is_int((long long)json_array_size(json_object_get(d, "progress")), 0,
	       "... and the last dossier's rows cut to fit (none left)");
	json_decref(a);

	o.max_items = 4;
	a = store_outbox_due_ex(s, t + 100, &o);
	d = json_array_get(a, 2);
	is_int((long long)json_array_size(json_object_get(d, "progress")), 1,
	       "max_items 4: one row of X3 fits after the three headers");
	json_decref(a);

	int calls = 0;
	o.max_items = 0;
	o.max_dossiers = 2;
	o.skip = skip_x1;
	o.ud = &calls;
	a = store_outbox_due_ex(s, t + 100, &o);
	char *names = NULL;
	{
		struct dynbuf b;
		dynbuf_init(&b, 0);
		(void)dynbuf_addstr(&b, "");
		json_array_foreach (a, i, d) {
			(void)dynbuf_printf(&b, "%s%s", i ? "," : "", sget(d, "mahoso"));
		}
		names = dynbuf_steal(&b, NULL);
	}
	is_str(names, "X2,X3", "a skipped dossier is left out and not counted in max_dossiers");
	ok(calls >= 3, "skip is asked about each dossier looked at");
	free(names);
	json_decref(a);
	store_close(s);
}

int main(void)
{
	log_setup(LOG_TARGET_STDERR, getenv("TEST_VERBOSE") ? LOG_DEBUG : LOG_CRIT);
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_enqueue();
	test_due_ex();
	test_cycle();
	test_failures();
	test_dead_letters();
	test_portal_state();
	test_deadlines();
	test_views();
	test_crashes();
	test_full_group();
#if defined(__SANITIZE_ADDRESS__)
	/* Under the sanitizers the times mean nothing: a smaller run for coverage. */
	time_flow(10000, 2000);
	time_backlog(10000, true);
#else
	time_flow(100000, 20000);
	if (getenv("TEST_LARGE"))
		time_backlog(1000000, true);
	else
		time_backlog(50000, false);
#endif
	if (!getenv("TEST_KEEP"))
		nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	else
		printf("# kept %s\n", tmpdir);
	return tap_done();
}
