/*
 * sim_svc_portal.c: the National Public Service Portal's dossier services
 * on the adapter's integration endpoint (notes/dossier-spec.md §3,
 * INTERFACES.md §3), with the state the portal keeps, and the control
 * routes that show it:
 *
 *   TraCuuHoSo {"mahoso": M}            -> result [] or [HEADER + "QuaTrinhXuLy": [rows]]
 *   DongBoHoSoMC {"isUpdating": "False"|"True", "data": [HEADER...]}
 *   CapNhatTienDoHoSoMC {"data": [PROGRESS...]}
 *   GET  /_sim/portal/dossier?mahoso=M  -> {"header","headers_received","progress"}
 *   GET  /_sim/portal/stats             -> {"dossiers","progress_rows","duplicates",...}
 *   POST /_sim/portal {"op":"reset"}    -> everything forgotten
 *   GET  /_sim/portal/latency           -> {"rows","unmatched","repeated","p50_s",...}
 *   POST /_sim/portal/latency {"op":"reset"}  -> the latency figures start again
 *
 * Per dossier the portal keeps the latest header as received and every
 * progress row in arrival order, as compact JSON text. A batch is
 * all-or-nothing: every item is checked first, in order, and the first
 * offending one is named in the error; only then is anything stored. A
 * progress row received again (same MaHoSo, ThoiDiemXuLy, TrangThai and
 * NoiDungXuLy) is stored again and counted as a duplicate; the rows seen
 * are remembered as 64-bit hashes. One mutex guards the state; texts are
 * dumped before it is taken.
 *
 * Latency: a progress row received for the first time whose MaHoSo,
 * ThoiDiemXuLy and TrangThai name a change of the feed (the feed keeps when
 * it appended each, sim_dossier_change_received) counts its time from the
 * feed to the portal in a log-linear histogram of microseconds (buckets
 * 1/64 of their value wide, up to 12 days): fixed memory, quantiles to
 * within 1.6 %, reported as the upper end of their bucket (never below the
 * truth, never above the maximum, which is exact).
 */
#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jsontext.h"
#include "sim.h"

#define MAX_BATCH	   1000 /* items per request */
#define MAX_CODE_CHARS	   100
#define MAX_TRICHYEU_CHARS 2000
#define MAX_NOIDUNG_CHARS  2000
#define MAX_CHUHOSO_CHARS  500
#define MSG_EXISTS	   "Hồ sơ %s đã tồn tại trên Cổng DVCQG"
#define MSG_UNKNOWN	   "Hồ sơ %s không tồn tại trên Cổng DVCQG"

#define LAT_SUB_BITS 6
#define LAT_SUB	     (1u << LAT_SUB_BITS)
#define LAT_BITS     40 /* latencies up to 2^40 us, 12.7 days */
#define LAT_BUCKETS  ((LAT_BITS - LAT_SUB_BITS - 1) * LAT_SUB + 2 * LAT_SUB)

struct prow {
	char *text;
	size_t len;
};

struct pdossier {
	char *header; /* the latest, without QuaTrinhXuLy */
	size_t header_len;
	uint64_t headers_received;
	struct prow *rows;
	size_t n_rows, cap_rows;
};

static struct {
	pthread_mutex_t lock;
	struct sim_map *dossiers; /* MaHoSo -> struct pdossier */
	uint64_t rows, duplicates, headers, creates, updates, refused;
	uint64_t *seen; /* open addressing of row hashes; 0 = empty */
	size_t seen_cap, seen_n;
	/* latency of the rows received since lat_since_ms (wall clock) */
	uint64_t lat_hist[LAT_BUCKETS];
	uint64_t lat_rows, lat_unmatched, lat_repeated, lat_max_us, lat_sum_us;
	int64_t lat_since_ms;
	uint64_t lat_since_us;
} P = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ---- helpers ------------------------------------------------------------ */

static size_t u8_chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

/* yyyyMMddHHmmss. */
static bool is_date14(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++) {
		if (n >= 14 || s[n] < '0' || s[n] > '9')
			return false;
	}
	return n == 14;
}

/* A status 1..10 as an integer or a decimal string; 0 when absent or invalid. */
static int status_value(const json_t *v)
{
	json_int_t x = -1;

	if (json_is_integer(v)) {
		x = json_integer_value(v);
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);

		if (s[0] != '\0' && strlen(s) <= 2 && strspn(s, "0123456789") == strlen(s))
			x = atoi(s);
	}
	return x >= 1 && x <= 10 ? (int)x : 0;
}

/* The string member key, or NULL; *bad when present but neither a string nor null. */
static const char *opt_string(const json_t *o, const char *key, bool *bad)
{
	json_t *v = json_object_get(o, key);

	*bad = v != NULL && !json_is_string(v) && !json_is_null(v);
	return json_string_value(v);
}

static char *dump(const json_t *j, size_t *len)
{
	char *text = jsontext_dumps(j, len);

	if (text == NULL)
		sim_die("portal: cannot serialise a received item");
	return text;
}

static void pdossier_free(void *v)
{
	struct pdossier *d = v;

	if (d == NULL)
		return;
	free(d->header);
	for (size_t i = 0; i < d->n_rows; i++)
		free(d->rows[i].text);
	free(d->rows);
	free(d);
}

/* The error answer: error_code "-1" as a string, as the portal does. */
static json_t *refuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_t *refuse(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o = json_pack("{s:s, s:s}", "error_code", "-1", "message", msg);
	if (o == NULL) /* msg cut inside a UTF-8 sequence */
		o = json_pack("{s:s, s:s}", "error_code", "-1", "message", "Lỗi dữ liệu");
	if (o == NULL)
		sim_die("portal: json_pack: out of memory");
	return o;
}

/* ---- duplicate rows -------------------------------------------------------- */

static uint64_t hash_add(uint64_t h, const char *s)
{
	for (; s != NULL && *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return (h ^ 0x1f) * 1099511628211u; /* a separator */
}

static uint64_t row_hash(const json_t *row)
{
	char st[8];
	int s = status_value(json_object_get(row, "TrangThai"));
	uint64_t h = 1469598103934665603u;

	snprintf(st, sizeof(st), "%d", s);
	h = hash_add(h, json_string_value(json_object_get(row, "MaHoSo")));
	h = hash_add(h, json_string_value(json_object_get(row, "ThoiDiemXuLy")));
	h = hash_add(h, st);
	h = hash_add(h, json_string_value(json_object_get(row, "NoiDungXuLy")));
	h = sim_mix64(h);
	return h != 0 ? h : 1;
}

/* Inserts h; true when it was there already. Lock held. */
static bool seen_add(uint64_t h)
{
	size_t i;

	if (2 * (P.seen_n + 1) > P.seen_cap) {
		size_t cap = P.seen_cap ? P.seen_cap * 2 : 4096;
		uint64_t *t = sim_xcalloc(cap, sizeof(*t));

		for (size_t k = 0; k < P.seen_cap; k++) {
			if (P.seen[k] == 0)
				continue;
			for (i = P.seen[k] & (cap - 1); t[i] != 0; i = (i + 1) & (cap - 1))
				;
			t[i] = P.seen[k];
		}
		free(P.seen);
		P.seen = t;
		P.seen_cap = cap;
	}
	for (i = h & (P.seen_cap - 1); P.seen[i] != 0; i = (i + 1) & (P.seen_cap - 1)) {
		if (P.seen[i] == h)
			return true;
	}
	P.seen[i] = h;
	P.seen_n++;
	return false;
}

/* ---- latency ------------------------------------------------------------------ */

static size_t lat_bucket(uint64_t us)
{
	unsigned shift;

	if (us >= (uint64_t)1 << LAT_BITS)
		us = ((uint64_t)1 << LAT_BITS) - 1;
	if (us < 2 * LAT_SUB)
		return (size_t)us;
	shift = (unsigned)(63 - __builtin_clzll(us)) - LAT_SUB_BITS;
	return (size_t)LAT_SUB * shift + (size_t)(us >> shift);
}

/* The largest latency bucket b holds. */
static uint64_t lat_bucket_top(size_t b)
{
	size_t shift;

	if (b < 2 * LAT_SUB)
		return b;
	shift = b / LAT_SUB - 1;
	return ((uint64_t)(b - LAT_SUB * shift + 1) << shift) - 1;
}

/* Counts a row received at now_us with key (0: not one of the feed's). Lock held. */
static void lat_note(uint64_t key, uint64_t now_us)
{
	uint64_t appended_us = 0, us;
	int r = sim_dossier_change_received(key, &appended_us);

	if (r < 0) {
		P.lat_unmatched++;
		return;
	}
	if (r == 0) {
		P.lat_repeated++;
		return;
	}
	us = now_us > appended_us ? now_us - appended_us : 0;
	P.lat_hist[lat_bucket(us)]++;
	P.lat_rows++;
	P.lat_sum_us += us;
	if (us > P.lat_max_us)
		P.lat_max_us = us;
}

/* Quantile q of the latencies in seconds, or null when there are none. Lock held. */
static json_t *lat_quantile(double q)
{
	uint64_t rank, seen = 0;

	if (P.lat_rows == 0)
		return json_null();
	rank = (uint64_t)(q * (double)P.lat_rows);
	if ((double)rank < q * (double)P.lat_rows)
		rank++;
	if (rank == 0)
		rank = 1;
	for (size_t b = 0; b < LAT_BUCKETS; b++) {
		seen += P.lat_hist[b];
		if (seen >= rank) {
			uint64_t top = lat_bucket_top(b);

			return json_real((double)(top < P.lat_max_us ? top : P.lat_max_us) / 1e6);
		}
	}
	return json_real((double)P.lat_max_us / 1e6);
}

/* Starts the latency figures again. Lock held. */
static void lat_reset(void)
{
	memset(P.lat_hist, 0, sizeof(P.lat_hist));
	P.lat_rows = P.lat_unmatched = P.lat_repeated = P.lat_max_us = P.lat_sum_us = 0;
	P.lat_since_ms = sim_now_wall_ms();
	P.lat_since_us = sim_now_us();
}

/* ---- checks ------------------------------------------------------------------ */

/*
 * Checks a header's fields; returns an error answer naming the field (and
 * the dossier), or NULL. *code gets MaHoSo when it is usable.
 */
static json_t *check_header(const json_t *h, size_t i, const char **code)
{
	static const char *const dates[] = {"NgayNopHoSo", "NgayHenTra", "NgayKetThucXuLy",
					    "NgayTra", "NgayTuChoi"};
	const char *m, *s;
	bool bad;
	int status;

	*code = NULL;
	if (!json_is_object(h))
		return refuse("Phần tử thứ %zu của data không phải là đối tượng", i + 1);
	m = opt_string(h, "MaHoSo", &bad);
	if (m == NULL || m[0] == '\0')
		return refuse("Thiếu trường bắt buộc MaHoSo (phần tử thứ %zu)", i + 1);
	if (u8_chars(m) > MAX_CODE_CHARS)
		return refuse("Trường MaHoSo vượt quá %d ký tự (phần tử thứ %zu)", MAX_CODE_CHARS,
			      i + 1);
	*code = m;
	s = opt_string(h, "MaTTHC", &bad);
	if (s == NULL || s[0] == '\0')
		return refuse("Thiếu trường bắt buộc MaTTHC (hồ sơ %s)", m);
	status = status_value(json_object_get(h, "TrangThaiHoSo"));
	if (status == 0)
		return refuse("Thiếu trường bắt buộc TrangThaiHoSo hoặc giá trị không hợp lệ "
			      "(hồ sơ %s)",
			      m);
	s = opt_string(h, "NgayTiepNhan", &bad);
	/* Required once a dossier was accepted: not for 1 (submitted), 3
	 * (refused at intake) or 7 (withdrawn), reachable without acceptance. */
	bool accepted = status >= 2 && status != 3 && status != 7;
	if (bad || (accepted && (s == NULL || s[0] == '\0')))
		return refuse("Thiếu trường bắt buộc NgayTiepNhan (hồ sơ %s)", m);
	if (s != NULL && s[0] != '\0' && !is_date14(s))
		return refuse("Trường NgayTiepNhan không đúng định dạng yyyyMMddHHmmss (hồ sơ %s)",
			      m);
	for (size_t k = 0; k < SIM_ARRAY_SIZE(dates); k++) {
		s = opt_string(h, dates[k], &bad);
		if (bad || (s != NULL && s[0] != '\0' && !is_date14(s)))
			return refuse("Trường %s không đúng định dạng yyyyMMddHHmmss (hồ sơ %s)",
				      dates[k], m);
	}
	s = opt_string(h, "TrichYeuHoSo", &bad);
	if (bad)
		return refuse("Trường TrichYeuHoSo phải là chuỗi (hồ sơ %s)", m);
	if (s != NULL && u8_chars(s) > MAX_TRICHYEU_CHARS)
		return refuse("Trường TrichYeuHoSo vượt quá %d ký tự (hồ sơ %s)",
			      MAX_TRICHYEU_CHARS, m);
	s = opt_string(h, "ChuHoSo", &bad);
	if (bad)
		return refuse("Trường ChuHoSo phải là chuỗi (hồ sơ %s)", m);
	if (s != NULL && u8_chars(s) > MAX_CHUHOSO_CHARS)
		return refuse("Trường ChuHoSo vượt quá %d ký tự (hồ sơ %s)", MAX_CHUHOSO_CHARS, m);
	return NULL;
}

/* The same for a progress row; existence is checked by the caller. */
static json_t *check_row(const json_t *r, size_t i, const char **code)
{
	const char *m, *s;
	bool bad;
	json_t *st;

	*code = NULL;
	if (!json_is_object(r))
		return refuse("Phần tử thứ %zu của data không phải là đối tượng", i + 1);
	m = opt_string(r, "MaHoSo", &bad);
	if (m == NULL || m[0] == '\0')
		return refuse("Thiếu trường bắt buộc MaHoSo (phần tử thứ %zu)", i + 1);
	if (u8_chars(m) > MAX_CODE_CHARS)
		return refuse("Trường MaHoSo vượt quá %d ký tự (phần tử thứ %zu)", MAX_CODE_CHARS,
			      i + 1);
	*code = m;
	s = opt_string(r, "ThoiDiemXuLy", &bad);
	if (bad || s == NULL || s[0] == '\0')
		return refuse("Thiếu trường bắt buộc ThoiDiemXuLy (hồ sơ %s)", m);
	if (!is_date14(s))
		return refuse("Trường ThoiDiemXuLy không đúng định dạng yyyyMMddHHmmss (hồ sơ %s)",
			      m);
	st = json_object_get(r, "TrangThai");
	if (st != NULL && !json_is_null(st) && status_value(st) == 0)
		return refuse("Trường TrangThai không hợp lệ (hồ sơ %s)", m);
	s = opt_string(r, "NoiDungXuLy", &bad);
	if (bad)
		return refuse("Trường NoiDungXuLy phải là chuỗi (hồ sơ %s)", m);
	if (s != NULL && u8_chars(s) > MAX_NOIDUNG_CHARS)
		return refuse("Trường NoiDungXuLy vượt quá %d ký tự (hồ sơ %s)", MAX_NOIDUNG_CHARS,
			      m);
	return NULL;
}

/* The "data" array of 1..MAX_BATCH items, or NULL with *err set. */
static json_t *batch_data(const struct sim_call *call, json_t **err)
{
	json_t *data = json_object_get(call->params, "data");

	*err = NULL;
	if (!json_is_array(data) || json_array_size(data) == 0) {
		*err = refuse("Thiếu tham số data (mảng không rỗng)");
		return NULL;
	}
	if (json_array_size(data) > MAX_BATCH) {
		*err = refuse("Tham số data có quá %d phần tử", MAX_BATCH);
		return NULL;
	}
	return data;
}

/* ---- services ------------------------------------------------------------------ */

static json_t *svc_dong_bo(struct sim_call *call)
{
	json_t *upd = json_object_get(call->params, "isUpdating"), *data, *err = NULL, *result;
	struct sim_map *batch = NULL;
	struct prow *texts;
	bool updating;
	size_t n, i;

	if (json_is_boolean(upd))
		updating = json_is_true(upd);
	else if (json_is_string(upd) && (strcasecmp(json_string_value(upd), "true") == 0 ||
					 strcasecmp(json_string_value(upd), "false") == 0))
		updating = strcasecmp(json_string_value(upd), "true") == 0;
	else
		return refuse("Tham số isUpdating không hợp lệ (True hoặc False)");
	data = batch_data(call, &err);
	if (data == NULL)
		return err;
	n = json_array_size(data);
	sim_stats_records(call->service->name, data);

	/* The texts to store, dumped before the lock is taken. */
	texts = sim_xcalloc(n, sizeof(*texts));
	for (i = 0; i < n; i++) {
		json_t *h = json_array_get(data, i);

		if (!json_is_object(h))
			continue;
		if (json_object_get(h, "QuaTrinhXuLy") != NULL) {
			json_t *c = json_copy(h);

			json_object_del(c, "QuaTrinhXuLy");
			texts[i].text = dump(c, &texts[i].len);
			json_decref(c);
		} else {
			texts[i].text = dump(h, &texts[i].len);
		}
	}

	pthread_mutex_lock(&P.lock);
	if (!updating)
		batch = sim_map_new();
	for (i = 0; i < n && err == NULL; i++) {
		const char *m;

		err = check_header(json_array_get(data, i), i, &m);
		if (err != NULL)
			break;
		if (updating && sim_map_get(P.dossiers, m) == NULL)
			err = refuse(MSG_UNKNOWN, m);
		else if (!updating &&
			 (sim_map_get(P.dossiers, m) != NULL || sim_map_get(batch, m) != NULL))
			err = refuse(MSG_EXISTS, m);
		else if (!updating)
			sim_map_put(batch, m, (void *)1);
	}
	if (err != NULL) {
		P.refused++;
		pthread_mutex_unlock(&P.lock);
		sim_map_free(batch, NULL);
		for (i = 0; i < n; i++)
			free(texts[i].text);
		free(texts);
		return err;
	}
	result = json_array();
	for (i = 0; i < n; i++) {
		const char *m =
			json_string_value(json_object_get(json_array_get(data, i), "MaHoSo"));
		struct pdossier *d = sim_map_get(P.dossiers, m);

		if (d == NULL) {
			d = sim_xcalloc(1, sizeof(*d));
			sim_map_put(P.dossiers, m, d);
			P.creates++;
		} else {
			free(d->header);
			P.updates++;
		}
		d->header = texts[i].text;
		d->header_len = texts[i].len;
		d->headers_received++;
		P.headers++;
		json_array_append_new(result, json_pack("{s:s}", "MaHoSo", m));
	}
	pthread_mutex_unlock(&P.lock);
	sim_map_free(batch, NULL);
	free(texts);
	return sim_answer_ok(result);
}

static json_t *svc_tien_do(struct sim_call *call)
{
	json_t *data, *err = NULL, *result;
	struct prow *texts;
	uint64_t *hashes, *keys, now_us;
	size_t n, i;

	data = batch_data(call, &err);
	if (data == NULL)
		return err;
	n = json_array_size(data);
	sim_stats_records(call->service->name, data);
	texts = sim_xcalloc(n, sizeof(*texts));
	hashes = sim_xcalloc(n, sizeof(*hashes));
	keys = sim_xcalloc(n, sizeof(*keys));
	for (i = 0; i < n; i++) {
		json_t *r = json_array_get(data, i);

		if (!json_is_object(r))
			continue;
		texts[i].text = dump(r, &texts[i].len);
		hashes[i] = row_hash(r);
		keys[i] = sim_dossier_change_key(
			json_string_value(json_object_get(r, "MaHoSo")),
			json_string_value(json_object_get(r, "ThoiDiemXuLy")),
			status_value(json_object_get(r, "TrangThai")));
	}

	pthread_mutex_lock(&P.lock);
	for (i = 0; i < n && err == NULL; i++) {
		const char *m;

		err = check_row(json_array_get(data, i), i, &m);
		if (err == NULL && sim_map_get(P.dossiers, m) == NULL)
			err = refuse(MSG_UNKNOWN, m);
	}
	if (err != NULL) {
		P.refused++;
		pthread_mutex_unlock(&P.lock);
		for (i = 0; i < n; i++)
			free(texts[i].text);
		free(texts);
		free(hashes);
		free(keys);
		return err;
	}
	now_us = sim_now_us();
	result = json_array();
	for (i = 0; i < n; i++) {
		const char *m =
			json_string_value(json_object_get(json_array_get(data, i), "MaHoSo"));
		struct pdossier *d = sim_map_get(P.dossiers, m);

		if (d->n_rows == d->cap_rows) {
			d->cap_rows = d->cap_rows ? d->cap_rows * 2 : 8;
			d->rows = sim_xrealloc(d->rows, d->cap_rows * sizeof(*d->rows));
		}
		d->rows[d->n_rows++] = texts[i];
		P.rows++;
		if (seen_add(hashes[i]))
			P.duplicates++;
		lat_note(keys[i], now_us);
		json_array_append_new(result, json_pack("{s:s}", "MaHoSo", m));
	}
	pthread_mutex_unlock(&P.lock);
	free(texts);
	free(hashes);
	free(keys);
	return sim_answer_ok(result);
}

/* Appends "[rows...]" of d. Lock held. */
static void add_rows(struct sim_buf *b, const struct pdossier *d)
{
	sim_buf_add(b, "[", 1);
	for (size_t i = 0; d != NULL && i < d->n_rows; i++) {
		if (i > 0)
			sim_buf_add(b, ",", 1);
		sim_buf_add(b, d->rows[i].text, d->rows[i].len);
	}
	sim_buf_add(b, "]", 1);
}

static const char *param_code(const json_t *o)
{
	static const char *const keys[] = {"mahoso", "MaHoSo", "maHoSo"};

	for (size_t i = 0; i < SIM_ARRAY_SIZE(keys); i++) {
		const char *s = json_string_value(json_object_get(o, keys[i]));

		if (s != NULL)
			return s;
	}
	return NULL;
}

static json_t *svc_tra_cuu(struct sim_call *call)
{
	const char *m = param_code(call->params);
	const struct pdossier *d;
	struct sim_buf b = {0};

	if (m == NULL || m[0] == '\0')
		return sim_answer_error(400, "Thiếu tham số mahoso (mã hồ sơ)");
	pthread_mutex_lock(&P.lock);
	d = sim_map_get(P.dossiers, m);
	if (d == NULL) {
		pthread_mutex_unlock(&P.lock);
		return sim_answer_ok(json_array());
	}
	/* [header with "QuaTrinhXuLy": rows] */
	sim_buf_add(&b, "[", 1);
	sim_buf_add(&b, d->header, d->header_len - 1);
	sim_buf_adds(&b, d->header_len > 2 ? ",\"QuaTrinhXuLy\":" : "\"QuaTrinhXuLy\":");
	add_rows(&b, d);
	sim_buf_adds(&b, "}]");
	pthread_mutex_unlock(&P.lock);
	call->result_text = sim_buf_steal(&b, NULL);
	return sim_answer_ok(NULL);
}

const struct sim_service sim_portal_services[] = {
	{"TraCuuHoSo", SIM_EP_INTEGRATION, svc_tra_cuu},
	{"DongBoHoSoMC", SIM_EP_INTEGRATION, svc_dong_bo},
	{"CapNhatTienDoHoSoMC", SIM_EP_INTEGRATION, svc_tien_do},
	{NULL, 0, NULL},
};

/* ---- control routes ------------------------------------------------------------- */

static void get_dossier(struct sim_request *rq, struct sim_reply *rp)
{
	const char *m = sim_request_query(rq, "mahoso");
	const struct pdossier *d;
	struct sim_buf b = {0};
	char *body;
	size_t len;

	if (m == NULL || m[0] == '\0') {
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request", "expected ?mahoso=M");
		return;
	}
	pthread_mutex_lock(&P.lock);
	d = sim_map_get(P.dossiers, m);
	sim_buf_adds(&b, "{\"header\":");
	if (d != NULL)
		sim_buf_add(&b, d->header, d->header_len);
	else
		sim_buf_adds(&b, "null");
	sim_buf_addf(&b, ",\"headers_received\":%llu,\"progress\":",
		     (unsigned long long)(d ? d->headers_received : 0));
	add_rows(&b, d);
	sim_buf_adds(&b, "}");
	pthread_mutex_unlock(&P.lock);
	body = sim_buf_steal(&b, &len);
	sim_reply_buffer(rp, MHD_HTTP_OK, "application/json; charset=utf-8", body, len);
}

static void get_stats(struct sim_request *rq, struct sim_reply *rp)
{
	json_t *o;

	(void)rq;
	pthread_mutex_lock(&P.lock);
	o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "dossiers",
		      (json_int_t)sim_map_size(P.dossiers), "progress_rows", (json_int_t)P.rows,
		      "duplicates", (json_int_t)P.duplicates, "headers_received",
		      (json_int_t)P.headers, "creates", (json_int_t)P.creates, "updates",
		      (json_int_t)P.updates, "refused_batches", (json_int_t)P.refused);
	pthread_mutex_unlock(&P.lock);
	sim_reply_json(rp, MHD_HTTP_OK, o);
}

static void get_latency(struct sim_request *rq, struct sim_reply *rp)
{
	char vn[16], since[32];
	json_t *o;

	(void)rq;
	pthread_mutex_lock(&P.lock);
	sim_fmt_vn_time(P.lat_since_ms, vn, sizeof(vn));
	snprintf(since, sizeof(since), "%.4s-%.2s-%.2sT%.2s:%.2s:%.2s+07:00", vn, vn + 4, vn + 6,
		 vn + 8, vn + 10, vn + 12);
	o = json_pack("{s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:s, s:f}", "rows",
		      (json_int_t)P.lat_rows, "unmatched", (json_int_t)P.lat_unmatched, "repeated",
		      (json_int_t)P.lat_repeated, "p50_s", lat_quantile(0.50), "p90_s",
		      lat_quantile(0.90), "p99_s", lat_quantile(0.99), "max_s",
		      P.lat_rows ? json_real((double)P.lat_max_us / 1e6) : json_null(), "mean_s",
		      P.lat_rows ? json_real((double)P.lat_sum_us / 1e6 / (double)P.lat_rows)
				 : json_null(),
		      "since", since, "elapsed_s", (double)(sim_now_us() - P.lat_since_us) / 1e6);
	pthread_mutex_unlock(&P.lock);
	sim_reply_json(rp, MHD_HTTP_OK, o);
}

/* {"op":"reset"}, or NULL after answering 400. */
static json_t *reset_request(struct sim_request *rq, struct sim_reply *rp)
{
	json_t *req = sim_request_json_object(rq, rp);
	const char *op;

	if (req == NULL)
		return NULL;
	op = json_string_value(json_object_get(req, "op"));
	if (op == NULL || strcmp(op, "reset") != 0) {
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
				"expected {\"op\":\"reset\"}");
		return NULL;
	}
	return req;
}

static void post_latency(struct sim_request *rq, struct sim_reply *rp)
{
	if (reset_request(rq, rp) == NULL)
		return;
	pthread_mutex_lock(&P.lock);
	lat_reset();
	pthread_mutex_unlock(&P.lock);
	sim_reply_json(rp, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
}

/* Forgets everything. Lock held. */
static void portal_clear(void)
{
	sim_map_free(P.dossiers, pdossier_free);
	P.dossiers = sim_map_new();
	free(P.seen);
	P.seen = NULL;
	P.seen_cap = P.seen_n = 0;
	P.rows = P.duplicates = P.headers = P.creates = P.updates = P.refused = 0;
	lat_reset();
	sim_dossier_changes_unmark();
}

static void post_portal(struct sim_request *rq, struct sim_reply *rp)
{
	if (reset_request(rq, rp) == NULL)
		return;
	pthread_mutex_lock(&P.lock);
	portal_clear();
	pthread_mutex_unlock(&P.lock);
	sim_log(SIM_LOG_INFO, "portal: state cleared");
	sim_reply_json(rp, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
}

static int portal_init(void)
{
	pthread_mutex_lock(&P.lock);
	P.dossiers = sim_map_new();
	lat_reset();
	pthread_mutex_unlock(&P.lock);
	sim_route_add(&(struct sim_route){"GET", "/_sim/portal/latency", SIM_ROUTE_CONTROL,
					  get_latency, NULL});
	sim_route_add(&(struct sim_route){"POST", "/_sim/portal/latency",
					  SIM_ROUTE_CONTROL | SIM_ROUTE_JSON, post_latency, NULL});
	sim_route_add(&(struct sim_route){"GET", "/_sim/portal/dossier", SIM_ROUTE_CONTROL,
					  get_dossier, NULL});
	sim_route_add(&(struct sim_route){"GET", "/_sim/portal/stats", SIM_ROUTE_CONTROL, get_stats,
					  NULL});
	sim_route_add(&(struct sim_route){"POST", "/_sim/portal",
					  SIM_ROUTE_CONTROL | SIM_ROUTE_JSON, post_portal, NULL});
	return 0;
}

static void portal_fini(void)
{
	pthread_mutex_lock(&P.lock);
	sim_map_free(P.dossiers, pdossier_free);
	P.dossiers = NULL;
	free(P.seen);
	P.seen = NULL;
	P.seen_cap = P.seen_n = 0;
	pthread_mutex_unlock(&P.lock);
}

const struct sim_module sim_portal_module = {"portal", portal_init, portal_fini};
