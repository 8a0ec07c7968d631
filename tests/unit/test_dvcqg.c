/*
 * test_dvcqg: the dvcqg connector (connectors/dvcqg.c) built the real way (a
 * config file through conf_load, conn_new on a daemon with an sd-event loop
 * and the HTTP core) against the simulator's national portal services
 * (dossier-spec §3) over loopback: look-ups, creates, a create of a dossier
 * that exists turned into an update (alone, a whole batch the portal already
 * has, mixed batches), updates of unknown dossiers, progress rows in order,
 * refusals with the raw body kept, HTML answers retried, batch sizes,
 * expired sessions, the lifecycle, and that no citizen's data reaches the
 * log.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <jansson.h>

#include "conf.h"
#include "conntest.h"
#include "connector.h"
#include "daemon.h"
#include "dvcqg.h"
#include "http.h"
#include "log.h"
#include "simproc.h"
#include "tap.h"
#include "util.h"

#define PASSWORD "pw-dvcqg-Zr7-not-in-logs"
/* A citizen's data: must never reach the log. */
#define CITIZEN "Nguyễn Thị Thu Hương Kiểm Thử"
#define CCCD	"034199001234"

static struct conntest ct;
/* Makes every test's dossier codes distinct. */
static unsigned serial;

static const struct dvcqg_ops *ops(void)
{
	return conn_dvcqg.ext;
}

/* ---- instances built from a config file -------------------------------- */

static char *keys_for(const char *url, const char *extra)
{
	return xasprintf("url = %s\nusername = lienthong\npassword = %s/pw\n"
			 "madonvi = 000.00.00.H31\nmax_attempts = 3\nbackoff_base = 5ms\n"
			 "backoff_cap = 50ms\nbreaker_failures = 0\ntimeout = 10s\n%s",
			 url, ct.dir, extra ? extra : "");
}

/* ---- dossiers ------------------------------------------------------------ */

/* A new dossier code, unique in this test run. */
static char *new_code(void)
{
	return xasprintf("000.00.03.H31-250101-%05u", 90000 + ++serial);
}

/* A header the portal accepts: status 2 (accepted), in the portal's field names. */
static json_t *header(const char *code)
{
	json_t *h = json_pack(
		"{s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, "
		"s:s, s:i, s:i, s:i, s:[{s:i, s:s}]}",
		"MaHoSo", code, "MaTTHC", "1.001193.000.00.00.H31", "TenTTHC",
		"Cấp bản sao trích lục hộ tịch", "MaLinhVuc", "G09-TP03", "TenLinhVuc", "Hộ tịch",
		"KenhThucHien", 1, "ChuHoSo", CITIZEN, "LoaiDoiTuong", 1, "SoDienThoai",
		"0912345678", "Email", "huong.kiemthu@example.vn", "TrichYeuHoSo",
		"Đề nghị cấp bản sao trích lục khai sinh", "NgayNopHoSo", "20250101083000",
		"NgayTiepNhan", "20250101090000", "NgayHenTra", "20250106170000", "DonViXuLy",
		"000.00.03.H31", "NoiNopHoSo", "Bộ phận một cửa Sở Tư pháp", "TrangThaiHoSo", 2,
		"HoSoCoThanhPhanSoHoa", 1, "TaiKhoanDuocXacThucVoiVNeID", 0, "DinhDanhCHS",
		"LoaiDinhDanh", 1, "SoDinhDanh", CCCD);
	if (!h)
		printf("Bail out! cannot build a header\n");
	return h;
}

/* A progress row of code at minute m of 2 Jan 2025. */
static json_t *row(const char *code, unsigned m, int status, const char *text)
{
	char at[32];
	snprintf(at, sizeof(at), "202501020%u%02u00", 8 + m / 60, m % 60);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s}", "MaHoSo", code,
			 "NguoiXuLy", "Trần Văn Bình", "ChucDanh", "Chuyên viên", "ThoiDiemXuLy",
			 at, "PhongBanXuLy", "Phòng Hành chính tư pháp", "NoiDungXuLy", text,
			 "TrangThai", status, "NgayBatDau", at, "NgayKetThucTheoQuyDinh",
			 "20250106170000");
}

/* ---- the simulator's view ------------------------------------------------ */

static json_t *portal_dossier(const struct simproc *s, const char *code)
{
	char *p = xasprintf("/_sim/portal/dossier?mahoso=%s", code);
	json_t *j = simproc_get(s, p);
	free(p);
	return j;
}

static long long portal_headers_received(const struct simproc *s, const char *code)
{
	json_t *j = portal_dossier(s, code);
	long long n = json_integer_value(json_object_get(j, "headers_received"));
	json_decref(j);
	return n;
}

static long long portal_stat(const struct simproc *s, const char *key)
{
	json_t *j = simproc_get(s, "/_sim/portal/stats");
	long long n = json_is_integer(json_object_get(j, key))
			      ? json_integer_value(json_object_get(j, key))
			      : -1;
	json_decref(j);
	return n;
}

/* Requests a service answered (all statuses), from /_sim/stats. */
static long long service_requests(const struct simproc *s, const char *service)
{
	json_t *j = simproc_get(s, "/_sim/stats");
	json_t *e = json_object_get(json_object_get(j, "by_service"), service);
	long long n = json_integer_value(json_object_get(e, "count"));
	json_decref(j);
	return n;
}

/* ---- completions ------------------------------------------------------- */

/* A copy of a push's verdicts. */
struct pres {
	int calls;
	size_t n;
	struct dvcqg_item *items; /* why and raw owned */
};

static void pres_clear(struct pres *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free((char *)r->items[i].why);
		free((char *)r->items[i].raw);
	}
	free(r->items);
	memset(r, 0, sizeof(*r));
}

static void on_push(struct conn *c, const struct dvcqg_item *items, size_t n, void *ud)
{
	struct pres *r = ud;
	(void)c;
	conntest_completion(&ct);
	pres_clear(r);
	r->calls = 1;
	r->n = n;
	r->items = xcalloc(n ? n : 1, sizeof(*r->items));
	for (size_t i = 0; i < n; i++) {
		r->items[i] = items[i];
		r->items[i].why = items[i].why ? xstrdup(items[i].why) : NULL;
		r->items[i].raw = items[i].raw ? xstrdup(items[i].raw) : NULL;
	}
}

/* How many items have outcome o (and, for OK, were applied as op; -1: any). */
static size_t pres_count(const struct pres *r, enum conn_outcome o, int op)
{
	size_t k = 0;
	for (size_t i = 0; i < r->n; i++)
		k += r->items[i].o == o && (op < 0 || (int)r->items[i].applied == op);
	return k;
}

/* The first reason among the items, for messages. */
static const char *pres_why(const struct pres *r)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->items[i].why)
			return r->items[i].why;
	return "no reason";
}

static int run_headers(struct conn *c, json_t *headers, enum dvcqg_op op, struct pres *r)
{
	int rc;
	pres_clear(r);
	ct.in_call = true;
	rc = ops()->push_headers(c, headers, op, on_push, r);
	ct.in_call = false;
	conntest_await(&ct, rc, "push_headers", &r->calls, 30000);
	return rc;
}

static int run_progress(struct conn *c, json_t *rows, struct pres *r)
{
	int rc;
	pres_clear(r);
	ct.in_call = true;
	rc = ops()->push_progress(c, rows, on_push, r);
	ct.in_call = false;
	conntest_await(&ct, rc, "push_progress", &r->calls, 30000);
	return rc;
}

struct lres {
	int calls;
	enum conn_outcome o;
	json_t *header, *progress; /* copies */
	char *raw, *why;
};

static void lres_clear(struct lres *r)
{
	json_decref(r->header);
	json_decref(r->progress);
	free(r->raw);
	free(r->why);
	memset(r, 0, sizeof(*r));
}

static void on_lookup(struct conn *c, enum conn_outcome o, json_t *header, json_t *progress,
		      const char *raw, const char *why, void *ud)
{
	struct lres *r = ud;
	(void)c;
	conntest_completion(&ct);
	lres_clear(r);
	r->calls = 1;
	r->o = o;
	r->header = header ? json_deep_copy(header) : NULL;
	r->progress = progress ? json_deep_copy(progress) : NULL;
	r->raw = raw ? xstrdup(raw) : NULL;
	r->why = why ? xstrdup(why) : NULL;
}

static void run_lookup(struct conn *c, const char *code, struct lres *r)
{
	int rc;
	lres_clear(r);
	ct.in_call = true;
	rc = ops()->lookup(c, code, on_lookup, r);
	ct.in_call = false;
	conntest_await(&ct, rc, "lookup", &r->calls, 10000);
}

/* An array of new headers; their codes in *codes (a JSON array of strings). */
static json_t *new_headers(size_t n, json_t **codes)
{
	json_t *a = json_array();
	*codes = json_array();
	for (size_t i = 0; i < n; i++) {
		char *code = new_code();
		json_array_append_new(a, header(code));
		json_array_append_new(*codes, json_string(code));
		free(code);
	}
	return a;
}

/* ---- tests -------------------------------------------------------------- */

static void test_config(void)
{
	static const struct {
		const char *keys, *want;
	} bad[] = {
		{"header_batch = 0\n", "header_batch"},
		{"header_batch = 1001\n", "header_batch"},
		{"progress_batch = 0\n", "progress_batch"},
		{"progress_batch = 5000\n", "progress_batch"},
		{"headers_service =\n", "headers_service"},
	};
	const char *defs[][2] = {{"exists_pattern", "đã tồn tại|already exists"},
				 {"unknown_pattern", "không tồn tại|not found"},
				 {"header_batch", "50"},
				 {"progress_batch", "100"},
				 {"lookup_service", "TraCuuHoSo"},
				 {"headers_service", "DongBoHoSoMC"},
				 {"progress_service", "CapNhatTienDoHoSoMC"}};
	struct conntest_conn t;
	char *keys;
	int found = 0;

	ok(conn_type_find("dvcqg") == &conn_dvcqg, "the registry knows type dvcqg");
	ok(conn_dvcqg.flags & CONN_F_ADAPTER, "dvcqg speaks the adapter envelope");
	for (const struct conf_option *o = conn_dvcqg.options; o->key; o++)
		for (size_t i = 0; i < LT_ARRAY_SIZE(defs); i++)
			found += !strcmp(o->key, defs[i][0]) && o->def &&
				 !strcmp(o->def, defs[i][1]);
	is_int(found, (int)LT_ARRAY_SIZE(defs), "the options with their defaults");

	for (size_t i = 0; i < LT_ARRAY_SIZE(bad); i++) {
		/* the first line of the keys names the check */
		char *label = xasprintf("%.*s ", (int)strcspn(bad[i].keys, "\n"), bad[i].keys);
		keys = keys_for("http://127.0.0.1:9", bad[i].keys);
		conntest_refused(&ct, keys, bad[i].want, label);
		free(label);
		free(keys);
	}
	keys = keys_for("http://127.0.0.1:9", "header_batch = 7\nprogress_batch = 1000\n");
	conntest_check_only(&ct, &t, keys);
	if (t.c) {
		is_int(ops()->header_batch(t.c), 7, "header_batch is read through the ops");
		is_int(ops()->progress_batch(t.c), 1000, "progress_batch is read through the ops");
	}
	conntest_conn_free(&t);
	free(keys);
}

static void test_lookup_and_create(const struct simproc *s)
{
	struct conntest_conn t;
	struct lres l = {0};
	struct pres r = {0};
	json_t *codes, *hs;
	const char *code;

	if (!conntest_make(&ct, &t, s->url, NULL))
		return;
	hs = new_headers(3, &codes);
	code = json_string_value(json_array_get(codes, 0));

	run_lookup(t.c, code, &l);
	ok(l.o == CONN_OK && !l.header, "lookup of an unknown dossier: OK, not found (%s)",
	   l.why ? l.why : "no error");

	long long before = portal_stat(s, "dossiers");
	long long req0 = service_requests(s, "DongBoHoSoMC");
	run_headers(t.c, hs, DVCQG_CREATE, &r);
	is_int(r.n, 3, "one verdict per header");
	is_int(pres_count(&r, CONN_OK, DVCQG_CREATE), 3,
	       "a create of 3 new dossiers: all created (%s)", pres_why(&r));
	is_int(portal_stat(s, "dossiers") - before, 3, "the portal holds 3 more dossiers");
	is_int(service_requests(s, "DongBoHoSoMC") - req0, 1, "in one request");

	run_lookup(t.c, code, &l);
	ok(l.o == CONN_OK && l.header, "lookup of a created dossier: found (%s)",
	   l.why ? l.why : "no error");
	is_str(json_string_value(json_object_get(l.header, "MaHoSo")), code,
	       "the header is the dossier asked for");
	ok(l.raw && conntest_contains(l.raw, code), "the raw body comes along");
	ok(json_is_array(l.progress) && json_array_size(l.progress) == 0,
	   "no progress rows yet (QuaTrinhXuLy is an empty list)");

	/* Progress rows, then the look-up shows them in order. */
	json_t *rows = json_array();
	json_array_append_new(rows, row(code, 0, 2, "Tiếp nhận hồ sơ"));
	json_array_append_new(rows, row(code, 30, 4, "Chuyển phòng chuyên môn xử lý"));
	json_array_append_new(rows, row(code, 90, 9, "Đã xử lý xong, chờ trả kết quả"));
	before = portal_stat(s, "progress_rows");
	run_progress(t.c, rows, &r);
	is_int(pres_count(&r, CONN_OK, -1), 3, "a progress batch of 3 rows: all OK (%s)",
	       pres_why(&r));
	is_int(portal_stat(s, "progress_rows") - before, 3, "the portal holds 3 more rows");
	run_lookup(t.c, code, &l);
	ok(json_array_size(l.progress) == 3 &&
		   !strcmp(json_string_value(
				   json_object_get(json_array_get(l.progress, 2), "NoiDungXuLy")),
			   "Đã xử lý xong, chờ trả kết quả"),
	   "lookup returns the progress rows in arrival order");
	json_decref(rows);

	/* Bad arguments. */
	run_lookup(t.c, "", &l);
	ok(l.o == CONN_FAIL && conntest_contains(l.why, "empty"),
	   "an empty code fails from the loop (%s)", l.why ? l.why : "ok");
	json_t *empty = json_array();
	ok(ops()->push_headers(t.c, empty, DVCQG_CREATE, on_push, &r) == -EINVAL,
	   "an empty push is refused");
	json_decref(empty);
	json_t *twice = json_pack("[O, O]", json_array_get(hs, 1), json_array_get(hs, 1));
	ok(ops()->push_headers(t.c, twice, DVCQG_UPDATE, on_push, &r) == -EINVAL,
	   "a push with one MaHoSo twice is refused");
	json_decref(twice);

	/* Items that cannot be sent fail alone; the others go out. */
	json_t *odd = json_array();
	char *c1 = new_code();
	json_array_append_new(odd, json_string("not a header"));
	json_array_append_new(odd, header(c1));
	json_array_append_new(odd, json_pack("{s:i}", "MaHoSo", 12));
	run_headers(t.c, odd, DVCQG_CREATE, &r);
	ok(r.n == 3 && r.items[0].o == CONN_FAIL &&
		   conntest_contains(r.items[0].why, "item 1 is a string") &&
		   r.items[1].o == CONN_OK && r.items[2].o == CONN_FAIL &&
		   conntest_contains(r.items[2].why, "non-text MaHoSo") && !r.items[0].in_doubt,
	   "items without a usable MaHoSo fail alone, never sent (%s | %s)",
	   r.n ? pres_why(&r) : "-", r.n > 2 && r.items[2].why ? r.items[2].why : "-");
	json_decref(odd);
	free(c1);

	json_decref(hs);
	json_decref(codes);
	lres_clear(&l);
	pres_clear(&r);
	conntest_conn_free(&t);
}

/*
 * Creates of dossiers that exist. The portal answers "đã tồn tại" with
 * error_code "-1", which the adapter's default expired_codes also lists: the
 * connector is configured as dvcqg.h advises (expired_codes empty, the
 * expired_pattern recognises an expired session) so that requests can be
 * counted; test_default_expired covers the default.
 */
static void test_exists(const struct simproc *s)
{
	struct conntest_conn t;
	struct pres r = {0};
	json_t *codes, *hs, *codes2, *hs2, *mix;
	long long req0;

	if (!conntest_make(&ct, &t, s->url, "expired_codes =\n"))
		return;

	/* One dossier of the batch exists already. */
	hs = new_headers(4, &codes);
	json_t *first = json_pack("[O]", json_array_get(hs, 2));
	run_headers(t.c, first, DVCQG_CREATE, &r);
	json_decref(first);
	req0 = service_requests(s, "DongBoHoSoMC");
	run_headers(t.c, hs, DVCQG_CREATE, &r);
	is_int(pres_count(&r, CONN_OK, -1), 4, "a create with one existing dossier: all OK (%s)",
	       pres_why(&r));
	ok(r.n == 4 && r.items[2].applied == DVCQG_UPDATE && r.items[0].applied == DVCQG_CREATE &&
		   r.items[1].applied == DVCQG_CREATE && r.items[3].applied == DVCQG_CREATE,
	   "the existing one was applied as an update, the others created");
	is_int(portal_headers_received(s, json_string_value(json_array_get(codes, 2))), 2,
	       "the portal received the existing dossier's header twice (create, update)");
	is_int(service_requests(s, "DongBoHoSoMC") - req0, 3,
	       "in 3 requests: refused create, create of the rest, update");

	/* The whole batch exists (a batch sent again after a crash). */
	req0 = service_requests(s, "DongBoHoSoMC");
	run_headers(t.c, hs, DVCQG_CREATE, &r);
	is_int(pres_count(&r, CONN_OK, DVCQG_UPDATE), 4,
	       "a create of a batch the portal has: all applied as updates (%s)", pres_why(&r));
	ok(service_requests(s, "DongBoHoSoMC") - req0 <= 3, "in %lld requests, not one per dossier",
	   service_requests(s, "DongBoHoSoMC") - req0);

	/* Mixed: every other dossier exists. */
	hs2 = new_headers(10, &codes2);
	json_t *half = json_array();
	for (size_t i = 0; i < 10; i += 2)
		json_array_append(half, json_array_get(hs2, i));
	run_headers(t.c, half, DVCQG_CREATE, &r);
	json_decref(half);
	run_headers(t.c, hs2, DVCQG_CREATE, &r);
	size_t right = 0;
	for (size_t i = 0; i < r.n; i++)
		right += r.items[i].o == CONN_OK &&
			 r.items[i].applied == (i % 2 == 0 ? DVCQG_UPDATE : DVCQG_CREATE);
	is_int(right, 10, "a mixed batch: the 5 existing updated, the 5 new created (%s)",
	       pres_why(&r));
	long long total = 0;
	for (size_t i = 0; i < 10; i++)
		total += portal_headers_received(s, json_string_value(json_array_get(codes2, i)));
	is_int(total, 15, "the portal received each new header once, each existing one twice");

	/* Updates: a known dossier and an unknown one. */
	char *unknown = new_code();
	mix = json_array();
	json_array_append(mix, json_array_get(hs, 0));
	json_array_append_new(mix, header(unknown));
	json_array_append(mix, json_array_get(hs, 1));
	run_headers(t.c, mix, DVCQG_UPDATE, &r);
	ok(r.n == 3 && r.items[0].o == CONN_OK && r.items[0].applied == DVCQG_UPDATE &&
		   r.items[2].o == CONN_OK,
	   "an update batch: the known dossiers are updated (%s)", pres_why(&r));
	ok(r.n == 3 && r.items[1].o == CONN_FAIL && r.items[1].unknown &&
		   conntest_contains(r.items[1].raw, "không tồn tại") &&
		   conntest_contains(r.items[1].why, unknown),
	   "an update of an unknown dossier: FAIL, unknown, with the raw answer (%s)",
	   r.n > 1 && r.items[1].why ? r.items[1].why : "-");
	json_t *d = portal_dossier(s, unknown);
	ok(d && json_is_null(json_object_get(d, "header")),
	   "the unknown dossier was not created behind the caller's back");
	json_decref(d);
	json_decref(mix);
	free(unknown);

	json_t *st = conn_dvcqg.status(t.c);
	ok(json_integer_value(json_object_get(st, "moved_to_update")) >= 2,
	   "status counts creates moved to updates (%lld)",
	   (long long)json_integer_value(json_object_get(st, "moved_to_update")));
	json_decref(st);

	json_decref(hs);
	json_decref(codes);
	json_decref(hs2);
	json_decref(codes2);
	pres_clear(&r);
	conntest_conn_free(&t);
}

/*
 * With the adapter's default expired_codes ("-1"), every refusal first costs
 * a re-login; the verdicts must be the same.
 */
static void test_default_expired(const struct simproc *s)
{
	struct conntest_conn t;
	struct pres r = {0};
	json_t *codes, *hs;

	if (!conntest_make(&ct, &t, s->url, NULL))
		return;
	hs = new_headers(3, &codes);
	json_t *one = json_pack("[O]", json_array_get(hs, 1));
	run_headers(t.c, one, DVCQG_CREATE, &r);
	json_decref(one);
	long long logins = simproc_stat(s, "logins");
	run_headers(t.c, hs, DVCQG_CREATE, &r);
	ok(r.n == 3 && r.items[0].applied == DVCQG_CREATE && r.items[1].applied == DVCQG_UPDATE &&
		   r.items[2].applied == DVCQG_CREATE && pres_count(&r, CONN_OK, -1) == 3,
	   "default expired_codes: the existing dossier is still updated (%s)", pres_why(&r));
	is_int(simproc_stat(s, "logins"), logins,
	       "the portal's refusal (error_code -1) costs no re-login (classify_first)");
	json_t *st = conn_dvcqg.status(t.c);
	is_int(json_integer_value(json_object_get(st, "refusals_after_relogin")), 0,
	       "no refusal was taken for an expired session");
	json_decref(st);
	json_decref(hs);
	json_decref(codes);
	pres_clear(&r);
	conntest_conn_free(&t);
}

static void test_refusals(const struct simproc *s)
{
	struct conntest_conn t;
	struct pres r = {0};
	json_t *codes, *hs, *rows;

	if (!conntest_make(&ct, &t, s->url, NULL))
		return;

	/* A header without MaTTHC: the portal answers 200 with an error. */
	hs = new_headers(3, &codes);
	json_object_del(json_array_get(hs, 1), "MaTTHC");
	run_headers(t.c, hs, DVCQG_CREATE, &r);
	ok(r.n == 3 && r.items[1].o == CONN_FAIL && !r.items[1].unknown &&
		   conntest_contains(r.items[1].why, "MaTTHC") && r.items[1].raw &&
		   conntest_contains(r.items[1].raw, "error_code") && !r.items[1].in_doubt,
	   "a 200 with error_code: FAIL with the raw body (%s)",
	   r.n > 1 && r.items[1].why ? r.items[1].why : "-");
	ok(r.n == 3 && r.items[0].o == CONN_OK && r.items[2].o == CONN_OK,
	   "and the other dossiers of the batch are created");
	json_decref(hs);
	json_decref(codes);

	/* Progress: an unknown dossier's rows fail, the others go through. */
	char *known = new_code(), *unknown = new_code();
	json_t *one = json_pack("[o]", header(known));
	run_headers(t.c, one, DVCQG_CREATE, &r);
	json_decref(one);
	rows = json_array();
	json_array_append_new(rows, row(known, 1, 2, "Tiếp nhận"));
	json_array_append_new(rows, row(unknown, 1, 2, "Tiếp nhận"));
	json_array_append_new(rows, row(known, 2, 4, "Thụ lý"));
	json_array_append_new(rows, row(unknown, 2, 4, "Thụ lý"));
	run_progress(t.c, rows, &r);
	ok(r.n == 4 && r.items[0].o == CONN_OK && r.items[2].o == CONN_OK,
	   "progress: the known dossier's rows are appended (%s)", pres_why(&r));
	ok(r.n == 4 && r.items[1].o == CONN_FAIL && r.items[1].unknown &&
		   r.items[3].o == CONN_FAIL && r.items[3].unknown && r.items[1].raw,
	   "progress: the unknown dossier's rows fail, unknown, raw kept (%s)",
	   r.n > 1 && r.items[1].why ? r.items[1].why : "-");
	json_decref(rows);

	/* A row without ThoiDiemXuLy: that row fails, rows behind it are held back. */
	rows = json_array();
	json_array_append_new(rows, row(known, 3, 4, "Xin ý kiến"));
	json_array_append_new(rows, row(known, 4, 4, "Dòng lỗi"));
	json_array_append_new(rows, row(known, 5, 9, "Xong"));
	json_object_del(json_array_get(rows, 1), "ThoiDiemXuLy");
	long long before = portal_stat(s, "progress_rows");
	run_progress(t.c, rows, &r);
	ok(r.n == 3 && r.items[0].o == CONN_OK && r.items[1].o == CONN_FAIL &&
		   r.items[2].o == CONN_RETRY && !r.items[2].in_doubt,
	   "the bad row fails, the one before is sent, the one after held back (%s, %s, %s)",
	   r.n ? conn_outcome_name(r.items[0].o) : "-",
	   r.n > 1 ? conn_outcome_name(r.items[1].o) : "-",
	   r.n > 2 ? conn_outcome_name(r.items[2].o) : "-");
	is_int(portal_stat(s, "progress_rows") - before, 1,
	       "only the row before reached the portal");
	json_decref(rows);

	/* HTML from a gateway: RETRY, in doubt, and never resent by the core
	 * (progress rows are appended: a resend could add them twice). */
	simproc_faults(s, "{\"service\":\"CapNhatTienDoHoSoMC\",\"malformed_rate\":1}");
	rows = json_pack("[o]", row(known, 6, 9, "Xong"));
	long long req0 = service_requests(s, "CapNhatTienDoHoSoMC");
	run_progress(t.c, rows, &r);
	ok(r.n == 1 && r.items[0].o == CONN_RETRY && r.items[0].in_doubt &&
		   (conntest_contains(r.items[0].why, "not JSON")),
	   "an answer that is not JSON is RETRY, in doubt (%s)", pres_why(&r));
	is_int(service_requests(s, "CapNhatTienDoHoSoMC") - req0, 1,
	       "after one attempt: progress rows are not resent by the core");
	simproc_faults(s, "{\"reset\":true}");
	json_decref(rows);

	free(known);
	free(unknown);
	pres_clear(&r);
	conntest_conn_free(&t);
}

static void test_batches(const struct simproc *s)
{
	struct conntest_conn t;
	struct pres r = {0};
	json_t *codes, *hs, *rows;

	if (!conntest_make(&ct, &t, s->url, "header_batch = 7\nprogress_batch = 4\n"))
		return;
	hs = new_headers(20, &codes);
	long long req0 = service_requests(s, "DongBoHoSoMC");
	run_headers(t.c, hs, DVCQG_CREATE, &r);
	is_int(pres_count(&r, CONN_OK, DVCQG_CREATE), 20, "20 headers created (%s)", pres_why(&r));
	is_int(service_requests(s, "DongBoHoSoMC") - req0, 3,
	       "in batches of header_batch (7): 3 requests");
	/* At the boundary: header_batch headers in one request, one more in two. */
	json_t *c7, *h7 = new_headers(7, &c7), *c8, *h8 = new_headers(8, &c8);
	req0 = service_requests(s, "DongBoHoSoMC");
	run_headers(t.c, h7, DVCQG_CREATE, &r);
	long long n7 = service_requests(s, "DongBoHoSoMC") - req0;
	run_headers(t.c, h8, DVCQG_CREATE, &r);
	long long n8 = service_requests(s, "DongBoHoSoMC") - req0 - n7;
	ok(n7 == 1 && n8 == 2 && pres_count(&r, CONN_OK, DVCQG_CREATE) == 8,
	   "7 headers go in 1 request, 8 in 2 (%lld, %lld)", n7, n8);
	json_decref(h7);
	json_decref(c7);
	json_decref(h8);
	json_decref(c8);

	/* 10 rows of 3 dossiers, in batches of 4: order kept per dossier. */
	rows = json_array();
	for (unsigned m = 0; m < 10; m++) {
		char text[32];
		snprintf(text, sizeof(text), "Bước %u", m);
		json_array_append_new(
			rows, row(json_string_value(json_array_get(codes, m % 3)), m, 4, text));
	}
	req0 = service_requests(s, "CapNhatTienDoHoSoMC");
	run_progress(t.c, rows, &r);
	is_int(pres_count(&r, CONN_OK, -1), 10, "10 rows appended (%s)", pres_why(&r));
	is_int(service_requests(s, "CapNhatTienDoHoSoMC") - req0, 3,
	       "in batches of progress_batch (4): 3 requests");
	bool ordered = true;
	for (int k = 0; k < 3; k++) {
		json_t *d = portal_dossier(s, json_string_value(json_array_get(codes, k)));
		json_t *pr = json_object_get(d, "progress");
		int prev = -1;
		for (size_t i = 0; i < json_array_size(pr); i++) {
			int m = atoi(json_string_value(json_object_get(json_array_get(pr, i),
								       "NoiDungXuLy")) +
				     strlen("Bước "));
			ordered &= m > prev;
			prev = m;
		}
		ordered &= json_array_size(pr) == (size_t)(k == 0 ? 4 : 3);
		json_decref(d);
	}
	ok(ordered, "each dossier's rows arrived in order");
	is_int(portal_stat(s, "duplicates"), 0, "and none twice");
	json_decref(rows);

	/* Session expiry in the middle: transparent. */
	long long logins = simproc_stat(s, "logins");
	simproc_post(s, "/_sim/expire-sessions", "{}");
	rows = json_pack("[o]",
			 row(json_string_value(json_array_get(codes, 5)), 1, 2, "Tiếp nhận"));
	run_progress(t.c, rows, &r);
	ok(r.n == 1 && r.items[0].o == CONN_OK, "after the sessions expired the push is OK (%s)",
	   pres_why(&r));
	ok(simproc_stat(s, "logins") > logins, "the adapter logged in again");
	json_decref(rows);

	/* Freed with pushes in flight: nothing is called afterwards. */
	simproc_faults(s, "{\"latency_ms\":100}");
	json_t *more_codes, *more = new_headers(5, &more_codes);
	pres_clear(&r);
	ops()->push_headers(t.c, more, DVCQG_CREATE, on_push, &r);
	struct lres l = {0};
	ops()->lookup(t.c, json_string_value(json_array_get(codes, 0)), on_lookup, &l);
	simproc_run_for(ct.dmn.ev, 10);
	conntest_conn_free(&t);
	simproc_run_for(ct.dmn.ev, 300);
	ok(r.calls == 0 && l.calls == 0, "after free, no completion reaches the caller");
	is_int(http_core_pending(ct.dmn.http), 0, "and nothing is left in the HTTP core");
	simproc_faults(s, "{\"reset\":true}");
	json_decref(more);
	json_decref(more_codes);

	json_decref(hs);
	json_decref(codes);
	pres_clear(&r);
}

int main(void)
{
	struct simproc s;
	struct conntest_log lg = {0};
	char *logged;
	const char *args[] = {"--seed", "11", "--password", PASSWORD, "--dossiers", "50", NULL};

	signal(SIGPIPE, SIG_IGN);
	/* everything logged at debug goes to a file, checked for personal data at the end */
	conntest_log_start(&lg, "dvcqg");
	log_setup(LOG_TARGET_STDERR, LOG_DEBUG);
	if (conntest_start(&ct, "dvcqg", "dvcqg", "portal", keys_for) < 0)
		return 1;
	conntest_write(&ct, "pw", PASSWORD);

	test_config();
	if (simproc_start(&s, "test_dvcqg", args) == 0) {
		test_lookup_and_create(&s);
		test_exists(&s);
		test_default_expired(&s);
		test_refusals(&s);
		test_batches(&s);
	} else {
		ok(0, "the simulator starts ($BUILD/lienthong-sim)");
	}
	simproc_stop(&s);
	conntest_stop(&ct);

	logged = conntest_log_end(&lg, "DongBoHoSoMC");
	if (logged) {
		ok(!conntest_contains(logged, CITIZEN) && !conntest_contains(logged, CCCD) &&
			   !conntest_contains(logged, "0912345678"),
		   "no citizen's name, id or phone is ever logged");
		ok(!conntest_contains(logged, PASSWORD), "nor the password");
	}
	free(logged);
	return tap_done();
}
