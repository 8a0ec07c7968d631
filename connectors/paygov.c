/*
 * paygov (connector): the national online payment platform, for the
 * payment flow (connectors/paygov.h, payment-spec §1-§2). Two requests,
 * QUERY and the daily list, through the HTTP core; and the message rules
 * they share with the files dropped for segregated networks: MaXacThuc,
 * the shape of a transaction, the list's JSON and CSV forms.
 *
 * Trust: a message is used only once its MaXacThuc verifies with the
 * partner's key. The shape of a list transaction is judged before its
 * signature, so that an amount served as text is reported as the malformed
 * row it is whatever the platform signed; among the rows that verify, a
 * row with the MaThamChieu and MaGiaoDich of an earlier one is a duplicate
 * (a forged row that does not verify can therefore never push a genuine one
 * out as its "duplicate").
 *
 * The list readers never stop at the first bad row and never drop one
 * silently: every row is either a transaction or a problem naming its line
 * (files) or page and item (HTTP). The JSON file reader walks the text
 * item by item (each item's extent found by bracket matching, then parsed
 * on its own), so that one item with bytes that are not UTF-8 costs that
 * item only and a cut file keeps the items before the cut. A page of the
 * HTTP list, unlike a file, is all or nothing as a page: one that is not
 * the expected shape fails the whole read, and a partial list is never
 * reported as the list. A page that is not JSON at all is what a gateway
 * or a cut connection gives, so the HTTP core retries it like a 503.
 *
 * Pages are read one after the other: the cursor of the next page is in
 * the answer to the last one.
 *
 * The token and the key go into a header and a digest only; neither is
 * ever logged, nor is ThongTinGiaoDich (it may name the payer). Completions
 * always come from the loop: the HTTP core never calls back from inside
 * http_submit, and refusals of bad arguments go through the loop with
 * conn_later.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "connector.h"
#include "http.h"
#include "jsontext.h"
#include "log.h"
#include "paygov.h"
#include "util.h"

/* Bounds on what goes into reasons: an excerpt of an answer. */
#define PG_EXCERPT_BYTES 80
/* Of a row that cannot be read, the raw bytes kept in its problem. */
#define PG_RAW_BYTES 300
/* Columns of a CSV row stored; more are counted only (the row is then bad). */
#define PG_MAX_COLUMNS 64
/* Largest amount believed, in VND (a thousand trillion). */
#define PG_MAX_AMOUNT 1000000000000000LL
/* JSON nesting the file reader follows before calling an item broken. */
#define PG_MAX_DEPTH 64

#define PG_VERSION	 "1.0.6"
#define PG_CURRENCY_VND	 "704"
#define PG_MALOI_SUCCESS "00"
#define PG_MALOI_BAD_MAC "07"

/* ---- the signed fields (payment-spec §1) ------------------------------ */

static const char *const pg_query_fields[] = {
	"LoaiBanTin", "PhienBan", "MaDoiTac", "MaThamChieu", "ThoiGianGD",
};

/* The QUERY answer and a list transaction sign the same fields, in this order. */
static const char *const pg_answer_fields[] = {
	"LoaiBanTin", "MaLoi",	    "MaDoiTac",	  "MaThamChieu",      "SoTien",	     "MaTienTe",
	"MaGiaoDich", "MaNganHang", "ThoiGianGD", "ThongTinGiaoDich", "TrangThaiGD",
};

#define PG_MAX_SIGNED LT_ARRAY_SIZE(pg_answer_fields)

static void pg_fields_of(enum paygov_msg kind, const char *const **names, size_t *n)
{
	if (kind == PAYGOV_MSG_QUERY) {
		*names = pg_query_fields;
		*n = LT_ARRAY_SIZE(pg_query_fields);
	} else {
		*names = pg_answer_fields;
		*n = LT_ARRAY_SIZE(pg_answer_fields);
	}
}

const char *paygov_check_name(int check)
{
	switch (check) {
	case PAYGOV_TX_OK: return "ok";
	case PAYGOV_TX_BAD_SIGNATURE: return "bad_signature";
	case PAYGOV_TX_MALFORMED: return "malformed";
	default: return "?";
	}
}

/* ---- text helpers ----------------------------------------------------- */

static bool pg_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static int pg_num(const char *s, size_t n)
{
	int v = 0;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

static bool pg_date_ok(int y, int m, int d)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	if (y < 1900 || m < 1 || m > 12 || d < 1)
		return false;
	return d <= mdays[m - 1] + (m == 2 && leap);
}

/* Whether s is a platform time, yyyyMMddHHmmss. */
static bool pg_time_ok(const char *s)
{
	if (!s || strlen(s) != 14 || !pg_digits(s, 14))
		return false;
	return pg_date_ok(pg_num(s, 4), pg_num(s + 4, 2), pg_num(s + 6, 2)) &&
	       pg_num(s + 8, 2) < 24 && pg_num(s + 10, 2) < 60 && pg_num(s + 12, 2) < 60;
}

/* Whether s is a day, YYYY-MM-DD. */
static bool pg_day_ok(const char *s)
{
	if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-' || !pg_digits(s, 4) ||
	    !pg_digits(s + 5, 2) || !pg_digits(s + 8, 2))
		return false;
	return pg_date_ok(pg_num(s, 4), pg_num(s + 5, 2), pg_num(s + 8, 2));
}

/* Whether s holds no control character (it can go into a header or a reason). */
static bool pg_line_safe(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* ---- MaXacThuc -------------------------------------------------------- */

int paygov_mac(const char *const *fields, size_t n, const char *key,
	       char out_hex[PAYGOV_MAC_HEX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	EVP_MD_CTX *ctx;
	int ok;

	if (!key || !out_hex || (n > 0 && !fields))
		return -EINVAL;
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -EIO;
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	for (size_t i = 0; ok && i < n; i++) {
		if (fields[i])
			ok = EVP_DigestUpdate(ctx, fields[i], strlen(fields[i]));
		ok = ok && EVP_DigestUpdate(ctx, "|", 1);
	}
	ok = ok && EVP_DigestUpdate(ctx, key, strlen(key));
	ok = ok && EVP_DigestFinal_ex(ctx, md, &md_len);
	EVP_MD_CTX_free(ctx);
	if (!ok || md_len * 2 != PAYGOV_MAC_HEX_LEN)
		return -EIO;
	for (unsigned i = 0; i < md_len; i++) {
		out_hex[2 * i] = hex[md[i] >> 4];
		out_hex[2 * i + 1] = hex[md[i] & 15];
	}
	out_hex[PAYGOV_MAC_HEX_LEN] = '\0';
	return 0;
}

/* Whether mac has the form of a MaXacThuc: 64 characters of [0-9a-f]. */
static bool pg_mac_form(const char *mac)
{
	return strnlen(mac, PAYGOV_MAC_HEX_LEN + 1) == PAYGOV_MAC_HEX_LEN &&
	       strspn(mac, "0123456789abcdef") == PAYGOV_MAC_HEX_LEN;
}

int paygov_verify(const char *const *fields, size_t n, const char *key, const char *mac)
{
	char want[PAYGOV_MAC_HEX_LEN + 1];
	int r;

	if (!mac || !*mac)
		return PAYGOV_SIG_MISSING;
	if (!pg_mac_form(mac))
		return PAYGOV_SIG_MALFORMED;
	r = paygov_mac(fields, n, key, want);
	if (r < 0)
		return r;
	/* CRYPTO_memcmp reads every byte whatever differs: no timing oracle. */
	r = CRYPTO_memcmp(want, mac, PAYGOV_MAC_HEX_LEN) == 0 ? PAYGOV_SIG_OK : PAYGOV_SIG_MISMATCH;
	OPENSSL_cleanse(want, sizeof(want));
	return r;
}

/* "a string", "a real number", ... for a JSON value (jansson's integers and reals apart). */
static const char *pg_kind(const json_t *j)
{
	if (json_is_integer(j))
		return "an integer";
	if (json_is_real(j))
		return "a real number";
	return conn_json_kind(j);
}

/*
 * The signed text of field name of msg into *out: a string as it is, an
 * integer in decimal (into num), absent or null as "". Returns 0, or
 * PAYGOV_SIG_FIELD with *why (when why is not NULL).
 */
static int pg_field_text(const json_t *msg, const char *name, const char **out, char num[24],
			 char **why)
{
	const json_t *v = json_object_get(msg, name);

	if (!v || json_is_null(v)) {
		*out = "";
		return 0;
	}
	if (json_is_string(v)) {
		if (strlen(json_string_value(v)) != json_string_length(v)) {
			if (why)
				*why = xasprintf("%s holds a NUL character", name);
			return PAYGOV_SIG_FIELD;
		}
		*out = json_string_value(v);
		return 0;
	}
	if (json_is_integer(v)) {
		snprintf(num, 24, "%lld", (long long)json_integer_value(v));
		*out = num;
		return 0;
	}
	if (why)
		*why = xasprintf("%s is %s, not text, an integer or null", name, pg_kind(v));
	return PAYGOV_SIG_FIELD;
}

/* The signed texts of msg's fields of kind into text[] (with num[] for integers). */
static int pg_msg_texts(const json_t *msg, enum paygov_msg kind, const char **text, char (*num)[24],
			size_t *n, char **why)
{
	const char *const *names;
	int r;

	pg_fields_of(kind, &names, n);
	for (size_t i = 0; i < *n; i++)
		if ((r = pg_field_text(msg, names[i], &text[i], num[i], why)) != 0)
			return r;
	return 0;
}

int paygov_msg_mac(const json_t *msg, enum paygov_msg kind, const char *key,
		   char out_hex[PAYGOV_MAC_HEX_LEN + 1], char **why)
{
	const char *text[PG_MAX_SIGNED];
	char num[PG_MAX_SIGNED][24];
	size_t n;
	int r;

	if (why)
		*why = NULL;
	if (!json_is_object(msg) || kind > PAYGOV_MSG_CONFIRM)
		return -EINVAL;
	r = pg_msg_texts(msg, kind, text, num, &n, why);
	return r ? r : paygov_mac(text, n, key, out_hex);
}

int paygov_msg_verify(const json_t *msg, enum paygov_msg kind, const char *key, char **why)
{
	const char *text[PG_MAX_SIGNED];
	char num[PG_MAX_SIGNED][24];
	const json_t *jm;
	const char *mac;
	size_t n;
	int r;

	if (why)
		*why = NULL;
	if (!json_is_object(msg) || kind > PAYGOV_MSG_CONFIRM || !key)
		return -EINVAL;
	jm = json_object_get(msg, "MaXacThuc");
	if (jm && !json_is_null(jm) && !json_is_string(jm)) {
		if (why)
			*why = xasprintf("MaXacThuc is %s, not 64 lowercase hex characters",
					 pg_kind(jm));
		return PAYGOV_SIG_MALFORMED;
	}
	mac = json_string_value(jm);
	if (!mac || !*mac) {
		if (why)
			*why = xstrdup("MaXacThuc is missing");
		return PAYGOV_SIG_MISSING;
	}
	if (!pg_mac_form(mac) || strlen(mac) != json_string_length(jm)) {
		size_t mlen = json_string_length(jm);
		if (why)
			*why = xasprintf("MaXacThuc is not 64 lowercase hex characters (%s)",
					 mlen != PAYGOV_MAC_HEX_LEN ? "wrong length"
					 : strspn(mac, "0123456789ABCDEF") == mlen
						 ? "uppercase"
						 : "a character other than 0-9, a-f");
		return PAYGOV_SIG_MALFORMED;
	}
	r = pg_msg_texts(msg, kind, text, num, &n, why);
	if (r)
		return r;
	r = paygov_verify(text, n, key, mac);
	if (r == PAYGOV_SIG_MISMATCH && why)
		*why = xstrdup("MaXacThuc does not verify with the partner key");
	return r;
}

/* ---- the shape of a transaction --------------------------------------- */

/* The text of a string field: NULL when absent or null, "" when another type or holding a NUL. */
static const char *pg_str(const json_t *o, const char *name)
{
	const json_t *v = json_object_get(o, name);

	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
		return "";
	return json_string_value(v);
}

/* A value for a reason: text quoted and bounded, anything else by its kind. Caller frees. */
static char *pg_value_text(const json_t *v)
{
	if (json_is_string(v)) {
		char *ex =
			conn_excerpt(json_string_value(v), json_string_length(v), PG_EXCERPT_BYTES);
		char *t = xasprintf("\"%s\"", ex);
		free(ex);
		return t;
	}
	if (json_is_integer(v))
		return xasprintf("%lld", (long long)json_integer_value(v));
	return xstrdup(v ? pg_kind(v) : "missing");
}

/*
 * The type of field name: text (string or null/absent), or an integer.
 * Returns why not (caller frees), or NULL.
 */
static char *pg_want_text(const json_t *o, const char *name, bool required)
{
	const json_t *v = json_object_get(o, name);

	if (!v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0))
		return required ? xasprintf("%s is missing", name) : NULL;
	if (!json_is_string(v))
		return xasprintf("%s is %s, not text", name, pg_kind(v));
	if (strlen(json_string_value(v)) != json_string_length(v))
		return xasprintf("%s holds a NUL character", name);
	if (json_string_length(v) > PAYGOV_MAX_FIELD_BYTES)
		return xasprintf("%s is %zu bytes long, more than %d", name, json_string_length(v),
				 PAYGOV_MAX_FIELD_BYTES);
	return NULL;
}

/* An optional yyyyMMddHHmmss time field. */
static char *pg_want_time(const json_t *o, const char *name, bool required)
{
	char *why = pg_want_text(o, name, required), *vt;
	const char *s = pg_str(o, name);

	if (why || !s || !*s || pg_time_ok(s))
		return why;
	vt = pg_value_text(json_object_get(o, name));
	why = xasprintf("%s is %s, not a yyyyMMddHHmmss time", name, vt);
	free(vt);
	return why;
}

/* SoTien: a whole, non-negative number of VND (required or not). */
static char *pg_want_amount(const json_t *o, bool required)
{
	const json_t *v = json_object_get(o, "SoTien");
	char *vt;
	char *why;

	if (!v || json_is_null(v))
		return required ? xstrdup("SoTien is missing") : NULL;
	if (json_is_integer(v)) {
		json_int_t a = json_integer_value(v);
		if (a < 0)
			return xasprintf("SoTien is negative (%lld)", (long long)a);
		if (a > PG_MAX_AMOUNT)
			return xasprintf("SoTien is %lld VND, beyond belief", (long long)a);
		return NULL;
	}
	vt = pg_value_text(v);
	why = xasprintf("SoTien is %s%s, not a whole number of VND",
			json_is_string(v) ? "text " : "", vt);
	free(vt);
	return why;
}

/* TrangThaiGD: 1, 3 or 4 (required or not). Sets *state (0 when absent). */
static char *pg_want_state(const json_t *o, bool required, int *state)
{
	const json_t *v = json_object_get(o, "TrangThaiGD");
	json_int_t s;
	char *vt, *why;

	*state = 0;
	if (!v || json_is_null(v))
		return required ? xstrdup("TrangThaiGD is missing") : NULL;
	s = json_integer_value(v);
	if (json_is_integer(v) && (s == 1 || s == 3 || s == 4)) {
		*state = (int)s;
		return NULL;
	}
	vt = pg_value_text(v);
	why = xasprintf("TrangThaiGD is %s%s, not 1, 3 or 4", json_is_string(v) ? "text " : "", vt);
	free(vt);
	return why;
}

/* MaTienTe: "704" (VND), as text or integer; absent allowed when !required. */
static char *pg_want_currency(const json_t *o, bool required)
{
	const json_t *v = json_object_get(o, "MaTienTe");
	char *vt, *why;

	if (!v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0))
		return required ? xstrdup("MaTienTe is missing") : NULL;
	if ((json_is_string(v) && strcmp(json_string_value(v), PG_CURRENCY_VND) == 0) ||
	    (json_is_integer(v) && json_integer_value(v) == 704))
		return NULL;
	vt = pg_value_text(v);
	why = xasprintf("MaTienTe is %s, not " PG_CURRENCY_VND " (VND)", vt);
	free(vt);
	return why;
}

/* LoaiBanTin must be want. */
static char *pg_want_type(const json_t *o, const char *want)
{
	const char *s = pg_str(o, "LoaiBanTin");
	char *vt, *why;

	if (s && strcmp(s, want) == 0)
		return NULL;
	vt = pg_value_text(json_object_get(o, "LoaiBanTin"));
	why = xasprintf("LoaiBanTin is %s, not %s", vt, want);
	free(vt);
	return why;
}

/* The shape of a list transaction (paygov_check_tx's MALFORMED). Caller frees. */
static char *pg_tx_shape(const json_t *tx)
{
	static const char *const optional_text[] = {"MaGiaoDich", "MaNganHang", "ThongTinGiaoDich",
						    "MaHoSo"};
	char *why = NULL;
	int state = 0;
	const char *s;

	if (!json_is_object(tx))
		return xasprintf("it is %s, not a transaction", tx ? conn_json_kind(tx) : "empty");
	if ((why = pg_want_type(tx, "CONFIRM")) || (why = pg_want_text(tx, "MaLoi", true)) ||
	    (why = pg_want_text(tx, "MaDoiTac", true)) ||
	    (why = pg_want_text(tx, "MaThamChieu", true)) || (why = pg_want_amount(tx, true)) ||
	    (why = pg_want_currency(tx, true)) || (why = pg_want_time(tx, "ThoiGianGD", true)) ||
	    (why = pg_want_state(tx, true, &state)) ||
	    (why = pg_want_time(tx, "ThoiGianCapNhat", false)))
		return why;
	for (size_t i = 0; i < LT_ARRAY_SIZE(optional_text); i++)
		if ((why = pg_want_text(tx, optional_text[i], false)))
			return why;
	if (!pg_line_safe(pg_str(tx, "MaThamChieu")))
		return xstrdup("MaThamChieu holds control characters");
	if (state == 1) {
		s = pg_str(tx, "MaLoi");
		if (strcmp(s, PG_MALOI_SUCCESS) != 0) {
			char *vt = pg_value_text(json_object_get(tx, "MaLoi"));
			why = xasprintf("TrangThaiGD is 1 (success) but MaLoi is %s, not 00", vt);
			free(vt);
			return why;
		}
		s = pg_str(tx, "MaGiaoDich");
		if (!s || !*s)
			return xstrdup("TrangThaiGD is 1 (success) but MaGiaoDich is missing");
	}
	return NULL;
}

int paygov_check_tx(const json_t *tx, const char *key, char **why)
{
	char *w;
	int r;

	if (why)
		*why = NULL;
	if (!tx || !key)
		return -EINVAL;
	w = pg_tx_shape(tx);
	if (w) {
		if (why)
			*why = w;
		else
			free(w);
		return PAYGOV_TX_MALFORMED;
	}
	r = paygov_msg_verify(tx, PAYGOV_MSG_CONFIRM, key, why);
	if (r < 0)
		return r;
	/* PAYGOV_SIG_FIELD cannot come: the shape allowed only signable types. */
	return r == PAYGOV_SIG_OK ? PAYGOV_TX_OK : PAYGOV_TX_BAD_SIGNATURE;
}

/* ---- reading a list: rows to transactions and problems ----------------- */

/*
 * What a list read collects. key, partner and day (yyyyMMdd) are set for
 * the HTTP list (checks the files leave to their caller), NULL for files.
 */
struct pg_reader {
	json_t *txs;	  /* owned */
	json_t *problems; /* owned */
	json_t *seen;	  /* owned: "MaThamChieu\nMaGiaoDich" -> where it was first */
	size_t n_problems;
	size_t first_unlisted_line;
	char *first_unlisted_where;
	const char *key;
	const char *partner;
	const char *day;
};

static void pg_reader_init(struct pg_reader *rd)
{
	memset(rd, 0, sizeof(*rd));
	rd->txs = json_array();
	rd->problems = json_array();
	rd->seen = json_object();
}

static void pg_reader_free(struct pg_reader *rd)
{
	json_decref(rd->txs);
	json_decref(rd->problems);
	json_decref(rd->seen);
	free(rd->first_unlisted_where);
	memset(rd, 0, sizeof(*rd));
}

/* A problem object (see paygov_parse_list); why is stolen, item borrowed. */
static json_t *pg_problem_new(const char *cls, const char *where, size_t line, char *why,
			      const json_t *item, const char *raw, size_t raw_len)
{
	json_t *p = json_object();
	const char *s;

	json_object_set_new(p, "class", json_string(cls));
	json_object_set_new(p, "where", json_string(where));
	if (line)
		json_object_set_new(p, "line", json_integer((json_int_t)line));
	json_object_set_new(p, "why", json_string(why));
	/* the rows from here on are unknown: a cut, or a problem of the file
	 * itself (its shape, its header) rather than of one row or item */
	if ((why && strstr(why, "cut?")) || !strcmp(where, "the file") ||
	    (str_startswith(where, "line ") && !strchr(where, '(')))
		json_object_set_new(p, "cut", json_true());
	if (item) {
		json_object_set_new(p, "item", json_deep_copy(item));
	} else if (raw) {
		char *ex = conn_excerpt(raw, raw_len, PG_RAW_BYTES);
		json_object_set_new(p, "item", json_string(ex));
		free(ex);
	}
	if (json_is_object(item)) {
		if ((s = pg_str(item, "MaThamChieu")) && *s)
			json_object_set_new(p, "ma_tham_chieu", json_string(s));
		if ((s = pg_str(item, "MaGiaoDich")) && *s)
			json_object_set_new(p, "ma_giao_dich", json_string(s));
	}
	free(why);
	return p;
}

/*
 * Adds a problem of class cls at where (line 0: unknown) with why (stolen)
 * and the row as item (borrowed, may be NULL) or else its raw text. Past
 * PAYGOV_MAX_PROBLEMS it is only counted.
 */
static void pg_problem(struct pg_reader *rd, const char *cls, const char *where, size_t line,
		       char *why, const json_t *item, const char *raw, size_t raw_len)
{
	if (rd->n_problems++ >= PAYGOV_MAX_PROBLEMS) {
		if (!rd->first_unlisted_where) {
			rd->first_unlisted_where = xstrdup(where);
			rd->first_unlisted_line = line;
		}
		free(why);
		return;
	}
	json_array_append_new(rd->problems,
			      pg_problem_new(cls, where, line, why, item, raw, raw_len));
}

/* Closes a read: the problems past PAYGOV_MAX_PROBLEMS, counted in one more. */
static void pg_reader_finish(struct pg_reader *rd)
{
	size_t more;

	if (rd->n_problems <= PAYGOV_MAX_PROBLEMS)
		return;
	more = rd->n_problems - PAYGOV_MAX_PROBLEMS;
	json_array_append_new(
		rd->problems,
		pg_problem_new("malformed", rd->first_unlisted_where, rd->first_unlisted_line,
			       xasprintf("%zu more problem%s not listed, the first of them at %s",
					 more, more == 1 ? "" : "s", rd->first_unlisted_where),
			       NULL, NULL, 0));
}

/*
 * Judges one row read at where (item borrowed): a transaction goes into
 * rd->txs, anything else becomes a problem.
 */
static void pg_take(struct pg_reader *rd, json_t *item, const char *where, size_t line)
{
	char *why = pg_tx_shape(item), *k, *vt;
	const char *mtc, *mgd, *mdt, *tgd;
	json_t *was;
	int r;

	if (why) {
		pg_problem(rd, "malformed", where, line, why, item, NULL, 0);
		return;
	}
	if (rd->key) {
		r = paygov_msg_verify(item, PAYGOV_MSG_CONFIRM, rd->key, &why);
		if (r != PAYGOV_SIG_OK) {
			if (r < 0)
				why = xasprintf("cannot verify MaXacThuc: %s", strerror(-r));
			pg_problem(rd, "bad_signature", where, line, why, item, NULL, 0);
			return;
		}
	}
	mdt = pg_str(item, "MaDoiTac");
	if (rd->partner && strcmp(mdt, rd->partner) != 0) {
		vt = pg_value_text(json_object_get(item, "MaDoiTac"));
		pg_problem(rd, "malformed", where, line,
			   xasprintf("MaDoiTac is %s, not this partner's", vt), item, NULL, 0);
		free(vt);
		return;
	}
	tgd = pg_str(item, "ThoiGianGD");
	if (rd->day && strncmp(tgd, rd->day, 8) != 0) {
		pg_problem(rd, "malformed", where, line,
			   xasprintf("ThoiGianGD %s is not on the day asked for (%.4s-%.2s-%.2s)",
				     tgd, rd->day, rd->day + 4, rd->day + 6),
			   item, NULL, 0);
		return;
	}
	mtc = pg_str(item, "MaThamChieu");
	mgd = pg_str(item, "MaGiaoDich");
	k = xasprintf("%s\n%s", mtc, mgd ? mgd : "");
	was = json_object_get(rd->seen, k);
	if (was) {
		char *a = conn_excerpt(mtc, strlen(mtc), PG_EXCERPT_BYTES);
		char *b = conn_excerpt(mgd ? mgd : "", mgd ? strlen(mgd) : 0, PG_EXCERPT_BYTES);
		pg_problem(rd, "duplicate", where, line,
			   xasprintf("MaThamChieu %s with MaGiaoDich %s again, first at %s", a, b,
				     json_string_value(was)),
			   item, NULL, 0);
		free(a);
		free(b);
		free(k);
		return;
	}
	json_object_set_new(rd->seen, k, json_string(where));
	free(k);
	json_array_append(rd->txs, item);
}

/* ---- the CSV form ----------------------------------------------------- */

/* RFC 4180 reader over a buffer; line counts physical lines from 1. */
struct pg_csv {
	const char *p, *end;
	size_t line;
	struct dynbuf field;
	char *v[PG_MAX_COLUMNS]; /* owned: the last record's fields */
	size_t len[PG_MAX_COLUMNS];
	size_t n; /* fields of the last record (may exceed PG_MAX_COLUMNS) */
};

static void pg_csv_clear(struct pg_csv *cs)
{
	for (size_t i = 0; i < LT_MIN(cs->n, (size_t)PG_MAX_COLUMNS); i++) {
		free(cs->v[i]);
		cs->v[i] = NULL;
	}
	cs->n = 0;
}

/* Moves the reader past the end of the current physical line. */
static void pg_csv_skip_line(struct pg_csv *cs)
{
	const char *nl = memchr(cs->p, '\n', (size_t)(cs->end - cs->p));
	if (nl) {
		cs->p = nl + 1;
		cs->line++;
	} else {
		cs->p = cs->end;
	}
}

/*
 * Reads the next record's fields (raw bytes, not yet checked for UTF-8)
 * into cs->v. *start and *start_line: where it begins; *eol: whether it
 * ended with a line end (not the end of the text). Returns 1, 0 at the
 * end, or -1 for a record that cannot be read, with *why, the reader past
 * it (at the next line, or at the end for an unclosed quote).
 */
static int pg_csv_next(struct pg_csv *cs, const char **start, size_t *start_line, bool *eol,
		       char **why)
{
	const char *p = cs->p, *end = cs->end;

	pg_csv_clear(cs);
	*eol = false;
	if (p >= end)
		return 0;
	*start = p;
	*start_line = cs->line;
	for (;;) {
		dynbuf_reset(&cs->field);
		if (p < end && *p == '"') {
			size_t quote_line = cs->line;
			p++;
			for (;;) {
				const char *q = memchr(p, '"', (size_t)(end - p));
				if (!q) {
					*why = xasprintf("a quoted field opened on line %zu is not "
							 "closed: the file ends inside it (cut?)",
							 quote_line);
					cs->p = end;
					return -1;
				}
				for (const char *s = p; s < q; s++)
					cs->line += *s == '\n';
				dynbuf_add(&cs->field, p, (size_t)(q - p));
				p = q + 1;
				if (p < end && *p == '"') {
					dynbuf_add(&cs->field, "\"", 1);
					p++;
					continue;
				}
				break;
			}
			if (p < end && *p != ',' && *p != '\r' && *p != '\n') {
				*why = xasprintf("field %zu: text after its closing quote",
						 cs->n + 1);
				cs->p = p;
				pg_csv_skip_line(cs);
				return -1;
			}
		} else {
			const char *s = p;
			while (p < end && *p != ',' && *p != '\r' && *p != '\n') {
				if (*p == '"') {
					*why = xasprintf("field %zu: a quote inside an unquoted "
							 "field",
							 cs->n + 1);
					cs->p = p;
					pg_csv_skip_line(cs);
					return -1;
				}
				p++;
			}
			dynbuf_add(&cs->field, s, (size_t)(p - s));
		}
		if (cs->n < PG_MAX_COLUMNS) {
			cs->len[cs->n] = cs->field.len;
			cs->v[cs->n] =
				xstrndup(cs->field.data ? cs->field.data : "", cs->field.len);
		}
		cs->n++;
		if (p >= end)
			break;
		if (*p == ',') {
			p++;
			continue;
		}
		/* CRLF, LF, or a lone CR: the record ends. */
		if (*p == '\r' && p + 1 < end && p[1] == '\n')
			p++;
		p++;
		cs->line++;
		*eol = true;
		break;
	}
	cs->p = p;
	return 1;
}

/* Whether the last record is one empty field (a blank line). */
static bool pg_csv_blank(const struct pg_csv *cs)
{
	return cs->n == 1 && cs->len[0] == 0;
}

/* An integer column's text as JSON: a decimal integer when it is one, else the text. */
static json_t *pg_csv_int(const char *s, size_t len)
{
	if (len == 0)
		return json_null();
	if (len <= 18 && pg_digits(s, len) && (s[0] != '0' || len == 1))
		return json_integer((json_int_t)strtoll(s, NULL, 10));
	return json_stringn(s, len);
}

/* Whether column name holds an integer in the JSON form. */
static bool pg_int_column(const char *name)
{
	return strcmp(name, "SoTien") == 0 || strcmp(name, "TrangThaiGD") == 0;
}

/* The header: column names in cs->v. Returns NULL, or why it cannot be one (caller frees). */
static char *pg_csv_header(const struct pg_csv *cs)
{
	struct dynbuf lack;
	char *why = NULL;

	if (cs->n > PG_MAX_COLUMNS)
		return xasprintf("the header has %zu columns, more than %d", cs->n, PG_MAX_COLUMNS);
	for (size_t i = 0; i < cs->n; i++) {
		if (!cs->len[i])
			return xasprintf("column %zu of the header has no name", i + 1);
		for (size_t j = 0; j < i; j++)
			if (strcmp(cs->v[i], cs->v[j]) == 0)
				return xasprintf("columns %zu and %zu of the header are both %s",
						 j + 1, i + 1, cs->v[i]);
	}
	dynbuf_init(&lack, 0);
	for (size_t f = 0; f <= PG_MAX_SIGNED; f++) {
		const char *name = f < PG_MAX_SIGNED ? pg_answer_fields[f] : "MaXacThuc";
		bool have = false;
		for (size_t i = 0; i < cs->n && !have; i++)
			have = strcmp(cs->v[i], name) == 0;
		if (!have)
			dynbuf_printf(&lack, "%s%s", lack.len ? ", " : "", name);
	}
	if (lack.len)
		why = xasprintf("the header lacks %s: not a list of transactions", lack.data);
	dynbuf_free(&lack);
	return why;
}

static void pg_read_csv(struct pg_reader *rd, const char *text, size_t len)
{
	struct pg_csv cs = {.p = text, .end = text + len, .line = 1};
	char *names[PG_MAX_COLUMNS] = {0};
	size_t ncols = 0, row = 0, line = 0, bad, mac_col = 0;
	const char *start = text;
	char *why = NULL, *where;
	bool eol;
	int r;

	dynbuf_init(&cs.field, 0);
	/* The header: the first line that is not blank. */
	while ((r = pg_csv_next(&cs, &start, &line, &eol, &why)) > 0 && pg_csv_blank(&cs))
		;
	if (r == 0) {
		pg_problem(rd, "malformed", "the file", 0,
			   xstrdup(len ? "the file has no header line: it holds no transaction"
				       : "the file is empty: not even a header line"),
			   NULL, NULL, 0);
		goto out;
	}
	bad = r > 0 ? utf8_bad_at((const unsigned char *)start, (size_t)(cs.p - start))
		    : (size_t)(cs.p - start);
	if (r > 0 && bad < (size_t)(cs.p - start))
		why = xasprintf("byte %zu is not UTF-8 text", (size_t)(start - text) + bad + 1);
	else if (r > 0)
		why = pg_csv_header(&cs);
	if (why) {
		where = xasprintf("line %zu", line);
		pg_problem(rd, "malformed", where, line,
			   xasprintf("the header line: %s; no row of the file was read", why), NULL,
			   start, (size_t)(cs.p - start));
		free(where);
		free(why);
		goto out;
	}
	ncols = cs.n;
	for (size_t i = 0; i < ncols; i++) {
		names[i] = cs.v[i];
		cs.v[i] = NULL;
		if (strcmp(names[i], "MaXacThuc") == 0)
			mac_col = i;
	}
	cs.n = 0;

	for (;;) {
		why = NULL;
		r = pg_csv_next(&cs, &start, &line, &eol, &why);
		if (r == 0)
			break;
		if (r > 0 && pg_csv_blank(&cs))
			continue;
		row++;
		where = xasprintf("line %zu (row %zu)", line, row);
		if (r < 0) {
			pg_problem(rd, "malformed", where, line, why, NULL, start,
				   (size_t)(cs.p - start));
			free(where);
			continue;
		}
		bad = utf8_bad_at((const unsigned char *)start, (size_t)(cs.p - start));
		if (bad < (size_t)(cs.p - start)) {
			pg_problem(rd, "malformed", where, line,
				   xasprintf("byte %zu of the file is not UTF-8 text%s",
					     (size_t)(start - text) + bad + 1,
					     start[bad] ? "" : " (a NUL)"),
				   NULL, start, (size_t)(cs.p - start));
			free(where);
			continue;
		}
		if (!eol && (cs.n != ncols || !pg_mac_form(cs.v[mac_col]))) {
			/* A whole last row without a line end is fine; a cut one is not. */
			pg_problem(rd, "malformed", where, line,
				   xasprintf("the file ends inside this row (%zu of %zu fields, "
					     "no end of line): cut?",
					     cs.n, ncols),
				   NULL, start, (size_t)(cs.p - start));
			free(where);
			continue;
		}
		if (cs.n != ncols) {
			pg_problem(rd, "malformed", where, line,
				   xasprintf("%zu field%s, the header has %zu", cs.n,
					     cs.n == 1 ? "" : "s", ncols),
				   NULL, start, (size_t)(cs.p - start));
			free(where);
			continue;
		}
		json_t *tx = json_object();
		for (size_t i = 0; i < ncols; i++)
			json_object_set_new(tx, names[i],
					    pg_int_column(names[i])
						    ? pg_csv_int(cs.v[i], cs.len[i])
						    : json_stringn(cs.v[i], cs.len[i]));
		pg_take(rd, tx, where, line);
		json_decref(tx);
		free(where);
	}
out:
	pg_csv_clear(&cs);
	for (size_t i = 0; i < ncols; i++)
		free(names[i]);
	dynbuf_free(&cs.field);
}

/* ---- the JSON form ---------------------------------------------------- */

struct pg_jscan {
	const char *text, *p, *end;
	const char *counted; /* lines are counted up to here */
	size_t line;
};

static void pg_js_ws(struct pg_jscan *js)
{
	while (js->p < js->end &&
	       (*js->p == ' ' || *js->p == '\t' || *js->p == '\r' || *js->p == '\n'))
		js->p++;
}

/* The line of position at (>= the last one asked for). */
static size_t pg_js_line(struct pg_jscan *js, const char *at)
{
	for (; js->counted < at; js->counted++)
		js->line += *js->counted == '\n';
	return js->line;
}

/*
 * The end of the JSON value starting at p: after its closing bracket or
 * quote, found by matching brackets outside strings (the bytes inside
 * strings are not judged here); for a scalar, the next delimiter. NULL
 * when the text ends first or the value nests deeper than PG_MAX_DEPTH.
 */
static const char *pg_js_skip(const char *p, const char *end)
{
	int depth = 0;
	bool in_str = false;

	if (p >= end)
		return NULL;
	if (*p != '{' && *p != '[' && *p != '"') {
		while (p < end && !strchr(",]} \t\r\n", *p))
			p++;
		return p;
	}
	for (; p < end; p++) {
		char ch = *p;
		if (in_str) {
			if (ch == '\\') {
				if (p + 1 >= end)
					return NULL;
				p++;
			} else if (ch == '"') {
				in_str = false;
				if (depth == 0)
					return p + 1;
			}
			continue;
		}
		if (ch == '"') {
			in_str = true;
		} else if (ch == '{' || ch == '[') {
			if (++depth > PG_MAX_DEPTH)
				return NULL;
		} else if (ch == '}' || ch == ']') {
			if (--depth <= 0)
				return p + 1;
		}
	}
	return NULL;
}

/* A problem about the file as a whole at the scanner's position. */
static void pg_js_problem(struct pg_reader *rd, struct pg_jscan *js, char *why)
{
	size_t line = pg_js_line(js, js->p);
	char *where = xasprintf("line %zu", line);
	pg_problem(rd, "malformed", where, line, why, NULL, js->p, (size_t)(js->end - js->p));
	free(where);
}

/* The items list, the scanner just past its '['. Returns false when reading must stop. */
static bool pg_js_items(struct pg_reader *rd, struct pg_jscan *js)
{
	size_t item = 0;

	pg_js_ws(js);
	if (js->p < js->end && *js->p == ']') {
		js->p++;
		return true;
	}
	for (;;) {
		const char *start = js->p, *q;
		size_t line;
		char *where;
		json_error_t err;
		json_t *v;

		item++;
		pg_js_ws(js);
		start = js->p;
		line = pg_js_line(js, start);
		where = xasprintf("item %zu (line %zu)", item, line);
		if (start >= js->end) {
			pg_problem(rd, "malformed", where, line,
				   xasprintf("the file ends before item %zu: cut?", item), NULL,
				   NULL, 0);
			free(where);
			return false;
		}
		q = pg_js_skip(start, js->end);
		if (!q) {
			pg_problem(rd, "malformed", where, line,
				   xstrdup("the file ends inside this item: cut?"), NULL, start,
				   (size_t)(js->end - start));
			free(where);
			return false;
		}
		v = jsontext_parse(start, (size_t)(q - start), JSON_DECODE_ANY, &err);
		if (!v) {
			size_t bad = utf8_bad_at((const unsigned char *)start, (size_t)(q - start));
			pg_problem(rd, "malformed", where, line,
				   bad < (size_t)(q - start)
					   ? xasprintf("byte %zu of the file is not UTF-8 text",
						       (size_t)(start - js->text) + bad + 1)
					   : xasprintf("not JSON: %s", err.text),
				   NULL, start, (size_t)(q - start));
		} else {
			pg_take(rd, v, where, line);
			json_decref(v);
		}
		free(where);
		js->p = q;
		pg_js_ws(js);
		if (js->p >= js->end) {
			pg_js_problem(rd, js,
				      xasprintf("the file ends after item %zu: cut?", item));
			return false;
		}
		if (*js->p == ']') {
			js->p++;
			return true;
		}
		if (*js->p != ',') {
			pg_js_problem(rd, js,
				      xasprintf("after item %zu: '%c' where ',' or ']' should be",
						item, *js->p));
			return false;
		}
		js->p++;
	}
}

static void pg_read_json(struct pg_reader *rd, const char *text, size_t len)
{
	struct pg_jscan js = {
		.text = text, .p = text, .end = text + len, .counted = text, .line = 1};
	bool items = false;

	pg_js_ws(&js);
	if (js.p >= js.end || *js.p != '{') {
		pg_js_problem(rd, &js,
			      xstrdup(js.p >= js.end
					      ? "the file is empty: not a list"
					      : "the file is not a JSON object with \"items\""));
		return;
	}
	js.p++;
	for (;;) {
		const char *q;
		json_t *k;
		bool is_items;

		pg_js_ws(&js);
		if (js.p < js.end && *js.p == '}') {
			js.p++;
			break;
		}
		q = js.p < js.end && *js.p == '"' ? pg_js_skip(js.p, js.end) : NULL;
		k = q ? jsontext_parse(js.p, (size_t)(q - js.p), JSON_DECODE_ANY, NULL) : NULL;
		if (!json_is_string(k)) {
			json_decref(k);
			pg_js_problem(rd, &js,
				      xstrdup(js.p >= js.end ? "the file ends inside the object: "
							       "cut?"
							     : "not a JSON object: a key should be "
							       "here"));
			return;
		}
		is_items = strcmp(json_string_value(k), "items") == 0;
		json_decref(k);
		js.p = q;
		pg_js_ws(&js);
		if (js.p >= js.end || *js.p != ':') {
			pg_js_problem(rd, &js, xstrdup("not a JSON object: ':' should be here"));
			return;
		}
		js.p++;
		pg_js_ws(&js);
		if (is_items) {
			if (items) {
				pg_js_problem(rd, &js, xstrdup("\"items\" appears twice"));
				return;
			}
			items = true;
			if (js.p >= js.end || *js.p != '[') {
				pg_js_problem(rd, &js, xstrdup("\"items\" is not a list"));
				return;
			}
			js.p++;
			if (!pg_js_items(rd, &js))
				return;
		} else {
			q = pg_js_skip(js.p, js.end);
			if (!q || q == js.p) {
				pg_js_problem(rd, &js,
					      xstrdup("the file ends inside the object: cut?"));
				return;
			}
			js.p = q;
		}
		pg_js_ws(&js);
		if (js.p < js.end && *js.p == ',') {
			js.p++;
			continue;
		}
		if (js.p < js.end && *js.p == '}') {
			js.p++;
			break;
		}
		pg_js_problem(rd, &js,
			      xstrdup(js.p >= js.end ? "the file ends inside the object: cut?"
						     : "not a JSON object: ',' or '}' should be "
						       "here"));
		return;
	}
	pg_js_ws(&js);
	if (js.p < js.end)
		pg_js_problem(rd, &js, xstrdup("text after the end of the JSON object"));
	if (!items)
		pg_problem(rd, "malformed", "the file", 0,
			   xstrdup("the file has no \"items\" list: it holds no transaction"), NULL,
			   NULL, 0);
}

int paygov_parse_list(const char *text, size_t len, enum paygov_format fmt, json_t **txs,
		      json_t **problems)
{
	struct pg_reader rd;

	if ((!text && len) || !txs || !problems || (fmt != PAYGOV_JSON && fmt != PAYGOV_CSV))
		return -EINVAL;
	if (!text)
		text = "";
	pg_reader_init(&rd);
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
		/* The BOM Excel wants; not a character of the first field. */
		text += 3;
		len -= 3;
	}
	if (fmt == PAYGOV_CSV)
		pg_read_csv(&rd, text, len);
	else
		pg_read_json(&rd, text, len);
	pg_reader_finish(&rd);
	*txs = rd.txs;
	*problems = rd.problems;
	rd.txs = rd.problems = NULL;
	pg_reader_free(&rd);
	return 0;
}

/* ---- the connector ---------------------------------------------------- */

struct pg_opts {
	char *token;   /* secret */
	char *partner; /* MaDoiTac */
	char *key;     /* secret */
	char *query_path;
	char *list_path;
	int64_t page_size;
};

static const struct conf_option pg_options[] = {
	{.key = "token",
	 .type = CONF_SECRET,
	 .offset = offsetof(struct pg_opts, token),
	 .help = "File (absolute path) or systemd credential name holding the API token, sent "
		 "as Authorization: Bearer; the file must not be readable by others. Required."},
	{.key = "partner",
	 .type = CONF_STRING,
	 .offset = offsetof(struct pg_opts, partner),
	 .help = "The province's partner code on the platform (MaDoiTac), e.g. HUNGYEN. "
		 "Required."},
	{.key = "key",
	 .type = CONF_SECRET,
	 .offset = offsetof(struct pg_opts, key),
	 .help = "File (absolute path) or systemd credential name holding the partner's secret "
		 "key, with which every message's MaXacThuc is made and checked; the file must "
		 "not be readable by others. Required."},
	{.key = "query_path",
	 .type = CONF_STRING,
	 .def = "/api/v1/query",
	 .offset = offsetof(struct pg_opts, query_path),
	 .help = "Path (appended to url) to which QUERY requests are posted."},
	{.key = "list_path",
	 .type = CONF_STRING,
	 .def = "/api/v1/giao-dich",
	 .offset = offsetof(struct pg_opts, list_path),
	 .help = "Path (appended to url) of the daily transaction list: GET with ngay, cursor "
		 "and limit answers {\"items\": [...], \"next_cursor\": \"...\", \"has_more\": "
		 "true|false}."},
	{.key = "page_size",
	 .type = CONF_INT,
	 .def = "1000",
	 .min = 1,
	 .max = 5000,
	 .offset = offsetof(struct pg_opts, page_size),
	 .help = "Transactions asked for per page of the daily list (the limit parameter)."},
	CONF_OPTION_END,
};

/*
 * One operation in progress, pending on its connector's list. later.owner
 * is the struct pg, NULL once the connector was freed: the HTTP core still
 * calls back (cancelled) and the op then only frees itself.
 */
struct pg_op {
	struct conn_later later;
	paygov_query_cb query_done;
	paygov_day_cb day_done;
	paygov_page_cb day_page; /* day_pages: each page as it is judged */
	void *ud;
	json_t *answer; /* owned: the answer's parse by pg_json_classify */
	char *msg;	/* a local answer (bad arguments) through the loop: CONN_FAIL */
	/* query */
	char *ma_tham_chieu;
	/* day_list */
	char day[11];		     /* YYYY-MM-DD */
	char day_compact[9];	     /* yyyyMMdd, what ThoiGianGD starts with */
	char *cursor;		     /* of the page asked for */
	unsigned page;		     /* the page asked for, from 1 */
	struct pg_reader rd;	     /* every page's items so far (day_pages: this page's) */
	size_t n_given, n_bad_given; /* day_pages: transactions, bad signatures handed over */
	uint64_t start_us;
};

/* c->priv. Owns everything but c. */
struct pg {
	struct conn *c;
	char *field;			/* "CONNECTOR=name" */
	struct conn_later_list pending; /* of struct pg_op */
	uint64_t queries_ok, queries_retry, queries_failed, answers_unverified;
	uint64_t lists_ok, lists_retry, lists_failed, pages;
	uint64_t list_txs, list_problems, list_bad_signatures;
	int64_t list_read_ms;
	char list_day[11];
};

#define PG_FIELDS(pg) ((const char *const[]){(pg)->field, NULL})

static void pg_op_free(struct pg_op *op)
{
	if (!op)
		return;
	conn_later_remove(&op->later);
	json_decref(op->answer);
	free(op->msg);
	free(op->ma_tham_chieu);
	free(op->cursor);
	if (op->rd.txs)
		pg_reader_free(&op->rd);
	free(op);
}

static void pg_op_release(struct conn_later *l)
{
	pg_op_free(conn_later_entry(l, struct pg_op, later));
}

static struct pg_op *pg_op_new(struct pg *pg)
{
	struct pg_op *op = xcalloc(1, sizeof(*op));
	conn_later_add(&pg->pending, &op->later, pg, pg_op_release);
	return op;
}

static void pg_answer_later(struct conn_later *l)
{
	struct pg_op *op = conn_later_entry(l, struct pg_op, later);
	struct conn *c = ((struct pg *)l->owner)->c;

	if (op->day_done)
		op->day_done(c, CONN_FAIL, NULL, op->msg, op->ud);
	else
		op->query_done(c, CONN_FAIL, NULL, op->msg, op->ud);
}

/*
 * Answers CONN_FAIL with msg (stolen) from the loop, to query_done or else
 * day_done. Returns 0 or negative (nothing called).
 */
static int pg_fail_later(struct pg *pg, paygov_query_cb query_done, paygov_day_cb day_done,
			 void *ud, char *msg)
{
	struct pg_op *op = pg_op_new(pg);
	int r;

	op->query_done = query_done;
	op->day_done = day_done;
	op->ud = ud;
	op->msg = msg;
	r = conn_later_defer(&op->later, pg->c, pg_answer_later);
	if (r < 0)
		pg_op_free(op);
	return r;
}

/* A request to path with the bearer token. */
static struct http_request *pg_request(struct pg *pg, const char *method, const char *path)
{
	const struct pg_opts *opt = pg->c->opts;
	struct http_request *r = http_request_new(method, path);

	http_request_header(r, "Authorization: Bearer %s", opt->token);
	http_request_header(r, "Accept: application/json");
	return r;
}

/*
 * Why a request failed: "unexpected HTTP status N" for a non-2xx the core
 * called OK, the classify's reason for a 2xx (it shows the body already),
 * else "why: server text". Caller frees.
 */
static char *pg_failure(const struct http_response *r, enum http_outcome o, const char *why)
{
	const char *w = why && *why ? why : http_outcome_name(o);
	char *text, *msg;

	if (r && o == HTTP_OK)
		return xasprintf("unexpected HTTP status %ld", r->status);
	if (!r || r->status == 0 || (r->status >= 200 && r->status <= 299))
		return xstrdup(w);
	text = conn_server_text(r);
	msg = *text ? xasprintf("%s: %s", w, text) : xstrdup(w);
	free(text);
	return msg;
}

/*
 * Body rules, per attempt: a 2xx that is not JSON (a gateway's HTML page, a
 * cut body) is retried like a 503; a JSON answer is kept in op->answer for
 * the completion.
 */
static enum http_outcome pg_json_classify(const struct http_response *r, void *ud, char **why)
{
	struct pg_op *op = ud;

	json_decref(op->answer);
	op->answer = NULL;
	if (r->status < 200 || r->status > 299)
		return http_classify_status(r, why);
	op->answer = jsontext_parse(r->body, r->body_len, JSON_DECODE_ANY, NULL);
	if (!op->answer) {
		char *ex = conn_excerpt(r->body, r->body_len, PG_EXCERPT_BYTES);
		const char *ct =
			r->content_type && *r->content_type ? r->content_type : "no content type";
		*why = xasprintf("the answer is not JSON (%.*s: %s)", (int)strcspn(ct, ";"), ct,
				 ex);
		free(ex);
		return HTTP_RETRY;
	}
	return HTTP_OK;
}

/* ---- QUERY ------------------------------------------------------------ */

/* The shape of a QUERY answer. Returns why not (caller frees), or NULL. */
static char *pg_answer_shape(const json_t *a)
{
	static const char *const text[] = {"MaDoiTac", "MaThamChieu", "MaGiaoDich", "MaNganHang",
					   "ThongTinGiaoDich"};
	const char *maloi, *s;
	char *why = NULL;
	int state = 0;

	if ((why = pg_want_type(a, "QUERY")) || (why = pg_want_text(a, "MaLoi", true)) ||
	    (why = pg_want_amount(a, false)) || (why = pg_want_currency(a, false)) ||
	    (why = pg_want_time(a, "ThoiGianGD", false)) || (why = pg_want_state(a, false, &state)))
		return why;
	for (size_t i = 0; i < LT_ARRAY_SIZE(text); i++)
		if ((why = pg_want_text(a, text[i], false)))
			return why;
	maloi = pg_str(a, "MaLoi");
	if (strcmp(maloi, PG_MALOI_SUCCESS) == 0 && state == 0)
		return xstrdup("MaLoi is 00 but TrangThaiGD is missing");
	if (state == 1) {
		if (strcmp(maloi, PG_MALOI_SUCCESS) != 0) {
			char *vt = pg_value_text(json_object_get(a, "MaLoi"));
			why = xasprintf("TrangThaiGD is 1 (success) but MaLoi is %s, not 00", vt);
			free(vt);
			return why;
		}
		s = pg_str(a, "MaGiaoDich");
		if (!s || !*s)
			return xstrdup("TrangThaiGD is 1 (success) but MaGiaoDich is missing");
		if (!json_object_get(a, "SoTien") || json_is_null(json_object_get(a, "SoTien")))
			return xstrdup("TrangThaiGD is 1 (success) but SoTien is missing");
	}
	return NULL;
}

/*
 * Judges the QUERY answer j for MaThamChieu mtc. Returns the outcome; on
 * CONN_OK fills *a (pointers into j and mtc, and *sig_why: the caller frees
 * it after a), otherwise sets *why.
 */
static enum conn_outcome pg_answer_judge(struct pg *pg, const char *mtc, json_t *j,
					 struct paygov_answer *a, char **sig_why, char **why)
{
	const struct pg_opts *opt = pg->c->opts;
	char *shape, *vt;
	const char *s;
	int r;

	*sig_why = NULL;
	memset(a, 0, sizeof(*a));
	a->raw = j;
	a->so_tien = -1;
	if (!json_is_object(j)) {
		*why = xasprintf("the answer is %s, not an object",
				 j ? conn_json_kind(j) : "empty");
		return CONN_FAIL;
	}
	shape = pg_answer_shape(j);
	if (shape) {
		*why = xasprintf("not a QUERY answer: %s", shape);
		free(shape);
		return CONN_FAIL;
	}
	r = paygov_msg_verify(j, PAYGOV_MSG_QUERY_ANSWER, opt->key, sig_why);
	if (r < 0) {
		*why = xasprintf("cannot verify the answer: %s", strerror(-r));
		return CONN_RETRY;
	}
	if (strcmp(pg_str(j, "MaLoi"), PG_MALOI_BAD_MAC) == 0) {
		/* Whoever sent it, no answer will come while our MaXacThuc is refused. */
		*why = xasprintf("the platform refused the request's MaXacThuc (MaLoi 07)%s: are "
				 "key and partner the platform's?",
				 r == PAYGOV_SIG_OK ? ""
						    : ", and its answer does not verify either");
		free(*sig_why);
		*sig_why = NULL;
		return CONN_FAIL;
	}
	if (r != PAYGOV_SIG_OK) {
		a->why = *sig_why;
		return CONN_OK;
	}
	if (!json_integer_value(json_object_get(j, "TrangThaiGD"))) {
		/* the shape let no state pass only for MaLoi other than 00: a refusal */
		vt = pg_value_text(json_object_get(j, "MaLoi"));
		*why = xasprintf("the platform refused the QUERY (MaLoi %s, no TrangThaiGD)", vt);
		free(vt);
		return CONN_FAIL;
	}
	s = pg_str(j, "MaThamChieu");
	if (s && *s && strcmp(s, mtc) != 0) {
		vt = pg_value_text(json_object_get(j, "MaThamChieu"));
		*why = xasprintf("the answer is for another payment (MaThamChieu %s)", vt);
		free(vt);
		return CONN_FAIL;
	}
	s = pg_str(j, "MaDoiTac");
	if (s && *s && strcmp(s, opt->partner) != 0) {
		vt = pg_value_text(json_object_get(j, "MaDoiTac"));
		*why = xasprintf("the answer is for another partner (MaDoiTac %s)", vt);
		free(vt);
		return CONN_FAIL;
	}
	a->verified = true;
	a->ma_loi = pg_str(j, "MaLoi");
	a->trang_thai = (int)json_integer_value(json_object_get(j, "TrangThaiGD"));
	a->ma_tham_chieu = mtc;
	a->ma_giao_dich = (s = pg_str(j, "MaGiaoDich")) ? s : "";
	a->ma_ngan_hang = (s = pg_str(j, "MaNganHang")) ? s : "";
	a->thoi_gian_gd = (s = pg_str(j, "ThoiGianGD")) ? s : "";
	if (json_is_integer(json_object_get(j, "SoTien")))
		a->so_tien = json_integer_value(json_object_get(j, "SoTien"));
	return CONN_OK;
}

static void pg_query_done(const struct http_response *r, enum http_outcome o, const char *why,
			  void *ud)
{
	struct pg_op *op = ud;
	struct pg *pg = op->later.owner;
	paygov_query_cb done = op->query_done;
	void *done_ud = op->ud;
	enum conn_outcome co = conn_outcome_from_http(o);
	struct paygov_answer a;
	char *what = NULL, *msg = NULL, *sig_why = NULL, *ex, *mtc;
	json_t *answer;
	struct conn *c;

	if (!pg) {
		pg_op_free(op);
		return;
	}
	c = pg->c;
	/* what the answer points into outlives the op */
	mtc = op->ma_tham_chieu;
	op->ma_tham_chieu = NULL;
	answer = op->answer;
	op->answer = NULL;
	pg_op_free(op);

	if (co == CONN_OK && (r->status < 200 || r->status > 299))
		co = CONN_FAIL;
	if (o != HTTP_OK || co != CONN_OK)
		what = pg_failure(r, o, why);
	else
		co = pg_answer_judge(pg, mtc, answer, &a, &sig_why, &what);
	ex = conn_excerpt(mtc, strlen(mtc), PG_EXCERPT_BYTES);
	if (what)
		msg = xasprintf("QUERY %s: %s", ex, what);
	free(what);
	switch (co) {
	case CONN_OK:
		pg->queries_ok++;
		if (!a.verified) {
			pg->answers_unverified++;
			log_fields(LOG_WARNING, PG_FIELDS(pg),
				   "QUERY %s: the answer is not trusted: %s", ex, a.why);
		}
		break;
	case CONN_RETRY: pg->queries_retry++; break;
	case CONN_FAIL: pg->queries_failed++; break;
	}
	if (msg)
		log_fields(LOG_DEBUG, PG_FIELDS(pg), "%s", msg);
	free(ex);
	done(c, co, co == CONN_OK ? &a : NULL, msg, done_ud);
	json_decref(answer);
	free(sig_why);
	free(mtc);
	free(msg);
}

static int pg_query(struct conn *c, const char *ma_tham_chieu, const char *thoi_gian_gd,
		    paygov_query_cb done, void *ud)
{
	const struct pg_opts *opt;
	char mac[PAYGOV_MAC_HEX_LEN + 1];
	struct http_request *r;
	struct pg *pg;
	struct pg_op *op;
	json_t *body;
	size_t len;
	int rc;

	if (!c || !c->priv || !done)
		return -EINVAL;
	pg = c->priv;
	opt = c->opts;
	len = ma_tham_chieu ? strlen(ma_tham_chieu) : 0;
	if (len == 0 || len > PAYGOV_MAX_FIELD_BYTES || !pg_line_safe(ma_tham_chieu)) {
		pg->queries_failed++;
		return pg_fail_later(pg, done, NULL, ud,
				     xstrdup(len == 0 ? "QUERY: empty MaThamChieu"
					     : len > PAYGOV_MAX_FIELD_BYTES
						     ? "QUERY: over-long MaThamChieu"
						     : "QUERY: MaThamChieu holds control "
						       "characters"));
	}
	if (!pg_time_ok(thoi_gian_gd)) {
		pg->queries_failed++;
		char *ex = conn_excerpt(ma_tham_chieu, len, PG_EXCERPT_BYTES);
		rc = pg_fail_later(
			pg, done, NULL, ud,
			xasprintf("QUERY %s: ThoiGianGD is not a yyyyMMddHHmmss time", ex));
		free(ex);
		return rc;
	}
	body = json_pack("{s:s, s:s, s:s, s:s, s:s}", "LoaiBanTin", "QUERY", "PhienBan", PG_VERSION,
			 "MaDoiTac", opt->partner, "MaThamChieu", ma_tham_chieu, "ThoiGianGD",
			 thoi_gian_gd);
	if (!body || paygov_msg_mac(body, PAYGOV_MSG_QUERY, opt->key, mac, NULL) != 0) {
		/* only a string that is not UTF-8 gets here */
		json_decref(body);
		pg->queries_failed++;
		return pg_fail_later(pg, done, NULL, ud,
				     xstrdup("QUERY: MaThamChieu is not UTF-8 text"));
	}
	json_object_set_new(body, "MaXacThuc", json_string(mac));
	OPENSSL_cleanse(mac, sizeof(mac));
	r = pg_request(pg, "POST", opt->query_path);
	http_request_json(r, body);
	json_decref(body);
	op = pg_op_new(pg);
	op->query_done = done;
	op->ud = ud;
	op->ma_tham_chieu = xstrdup(ma_tham_chieu);
	http_request_classify(r, pg_json_classify, op);
	http_request_done(r, pg_query_done, op);
	rc = http_submit(c->http, r);
	/* -ESHUTDOWN: done is still called (cancelled). */
	return rc == -ESHUTDOWN ? 0 : rc;
}

/* ---- the daily list --------------------------------------------------- */

static void pg_page_done(const struct http_response *r, enum http_outcome o, const char *why,
			 void *ud);

/* Asks for op->page from op->cursor. Returns 0 or negative (nothing will be called). */
static int pg_page_get(struct pg_op *op)
{
	struct pg *pg = op->later.owner;
	const struct pg_opts *opt = pg->c->opts;
	const char *path = opt->list_path;
	char *cur = conn_url_escape(op->cursor);
	char *url =
		xasprintf("%s%cngay=%s&cursor=%s&limit=%lld", path, strchr(path, '?') ? '&' : '?',
			  op->day, cur, (long long)opt->page_size);
	struct http_request *r = pg_request(pg, "GET", url);
	int rc;

	free(cur);
	free(url);
	http_request_classify(r, pg_json_classify, op);
	http_request_done(r, pg_page_done, op);
	rc = http_submit(pg->c->http, r);
	/* -ESHUTDOWN: done is still called (cancelled), so the op lives on. */
	return rc == -ESHUTDOWN ? 0 : rc;
}

/*
 * Judges the page in op->answer and adds its items to op->rd. Returns
 * CONN_OK with *next (caller frees) when another page is needed, CONN_OK
 * with *next NULL at the end, or CONN_FAIL with *why.
 */
static enum conn_outcome pg_page_take(struct pg_op *op, char **next, char **why)
{
	json_t *items, *e;
	bool has_more;
	size_t i, n;

	if (conn_cursor_page(op->answer, "transactions", PAYGOV_MAX_CURSOR_BYTES, &items, next,
			     &has_more, why) < 0)
		return CONN_FAIL;
	n = json_array_size(items);
	if (has_more && strcmp(*next, op->cursor) == 0) {
		/* Reading on from next_cursor would give this page again, forever. */
		*why = xasprintf("the list does not move: %zu transaction%s, more waiting and the "
				 "same next_cursor",
				 n, n == 1 ? "" : "s");
		goto fail;
	}
	if (has_more && op->page >= PAYGOV_MAX_PAGES) {
		*why = xasprintf("more than %d pages: raise page_size", PAYGOV_MAX_PAGES);
		goto fail;
	}
	json_array_foreach (items, i, e) {
		char *where = xasprintf("page %u, item %zu", op->page, i + 1);
		pg_take(&op->rd, e, where, 0);
		free(where);
	}
	if (!has_more) {
		free(*next);
		*next = NULL;
	}
	return CONN_OK;
fail:
	free(*next);
	*next = NULL;
	return CONN_FAIL;
}

/* Problems of class bad_signature in problems. */
static size_t pg_bad_signatures(const json_t *problems)
{
	size_t n = 0, i;
	json_t *p;
	json_array_foreach (problems, i, p)
		n += strcmp(json_string_value(json_object_get(p, "class")), "bad_signature") == 0;
	return n;
}

static void pg_page_done(const struct http_response *r, enum http_outcome o, const char *why,
			 void *ud)
{
	struct pg_op *op = ud;
	struct pg *pg = op->later.owner;
	paygov_day_cb done = op->day_done;
	void *done_ud = op->ud;
	enum conn_outcome co = conn_outcome_from_http(o);
	struct paygov_day day = {0};
	char *what = NULL, *msg = NULL, *next = NULL;
	struct pg_reader rd = {0};
	char ngay[11];
	struct conn *c;
	int rc;

	if (!pg) {
		pg_op_free(op);
		return;
	}
	c = pg->c;
	if (co == CONN_OK && (r->status < 200 || r->status > 299))
		co = CONN_FAIL;
	if (o != HTTP_OK || co != CONN_OK) {
		what = pg_failure(r, o, why);
	} else {
		pg->pages++;
		co = pg_page_take(op, &next, &what);
	}
	if (co == CONN_OK && op->day_page) {
		/* the page goes to the flow now; the reader keeps only what it
		 * needs across pages (the duplicates' index, the problem count) */
		struct paygov_day pd = {.ngay = op->day,
					.txs = op->rd.txs,
					.problems = op->rd.problems,
					.pages = op->page};
		op->n_given += json_array_size(op->rd.txs);
		op->n_bad_given += pg_bad_signatures(op->rd.problems);
		op->day_page(c, &pd, op->ud);
		json_array_clear(op->rd.txs);
		json_array_clear(op->rd.problems);
	}
	if (co == CONN_OK && next) {
		free(op->cursor);
		op->cursor = next;
		op->page++;
		rc = pg_page_get(op);
		if (rc == 0)
			return;
		co = CONN_RETRY;
		what = xasprintf("cannot submit the request: %s", strerror(-rc));
	}
	if (what) {
		char *cur = conn_excerpt(op->cursor, strlen(op->cursor), PG_EXCERPT_BYTES);
		msg = xasprintf("list of %s, page %u (cursor \"%s\"): %s", op->day, op->page, cur,
				what);
		free(cur);
		free(what);
	}
	if (co == CONN_OK) {
		size_t nbad, ntx;
		pg_reader_finish(&op->rd);
		rd = op->rd;
		memset(&op->rd, 0, sizeof(op->rd));
		nbad = op->n_bad_given + pg_bad_signatures(rd.problems);
		ntx = op->n_given + json_array_size(rd.txs);
		pg->lists_ok++;
		pg->list_txs += ntx;
		pg->list_problems += rd.n_problems;
		pg->list_bad_signatures += nbad;
		pg->list_read_ms = now_wall_ms();
		memcpy(pg->list_day, op->day, sizeof(pg->list_day));
		log_fields(nbad ? LOG_WARNING : LOG_INFO, PG_FIELDS(pg),
			   "list of %s: %zu transactions, %zu problems (%zu bad signatures) in %u "
			   "pages, %llu ms",
			   op->day, ntx, rd.n_problems, nbad, op->page,
			   (unsigned long long)((now_mono_us() - op->start_us) / 1000));
	} else {
		if (co == CONN_RETRY)
			pg->lists_retry++;
		else
			pg->lists_failed++;
		log_fields(LOG_DEBUG, PG_FIELDS(pg), "%s", msg);
	}
	memcpy(ngay, op->day, sizeof(ngay));
	day.ngay = ngay;
	day.txs = rd.txs;
	day.problems = rd.problems;
	day.pages = op->page;
	pg_op_free(op);
	done(c, co, co == CONN_OK ? &day : NULL, msg, done_ud);
	if (rd.txs)
		pg_reader_free(&rd);
	free(msg);
}

static int pg_day_pages(struct conn *c, const char *day, paygov_page_cb page, paygov_day_cb done,
			void *ud)
{
	const struct pg_opts *opt;
	struct pg *pg;
	struct pg_op *op;
	int r;

	if (!c || !c->priv || !done)
		return -EINVAL;
	pg = c->priv;
	opt = c->opts;
	if (!pg_day_ok(day)) {
		char *ex = day ? conn_excerpt(day, strlen(day), PG_EXCERPT_BYTES) : xstrdup("");
		r = pg_fail_later(pg, NULL, done, ud,
				  xasprintf("list: \"%s\" is not a day (YYYY-MM-DD)", ex));
		free(ex);
		if (r == 0)
			pg->lists_failed++;
		return r;
	}
	op = pg_op_new(pg);
	op->day_done = done;
	op->day_page = page;
	op->ud = ud;
	memcpy(op->day, day, 10);
	memcpy(op->day_compact, day, 4);
	memcpy(op->day_compact + 4, day + 5, 2);
	memcpy(op->day_compact + 6, day + 8, 2);
	op->cursor = xstrdup("");
	op->page = 1;
	op->start_us = now_mono_us();
	pg_reader_init(&op->rd);
	op->rd.key = opt->key;
	op->rd.partner = opt->partner;
	op->rd.day = op->day_compact;
	r = pg_page_get(op);
	if (r < 0)
		pg_op_free(op);
	return r;
}

static int pg_day_list(struct conn *c, const char *day, paygov_day_cb done, void *ud)
{
	return pg_day_pages(c, day, NULL, done, ud);
}

static int pg_check(struct conn *c, const json_t *tx, char **why)
{
	const struct pg_opts *opt;

	if (why)
		*why = NULL;
	if (!c || c->type != &conn_paygov || !c->opts)
		return -EINVAL;
	opt = c->opts;
	if (!opt->key)
		return -EINVAL;
	return paygov_check_tx(tx, opt->key, why);
}

/* ---- status, lifecycle ------------------------------------------------ */

static json_t *pg_status(struct conn *c)
{
	struct pg *pg = c->priv;
	json_t *j = json_object();

	if (!pg)
		return j;
	json_object_set_new(j, "queries_ok", json_integer((json_int_t)pg->queries_ok));
	json_object_set_new(j, "queries_retry", json_integer((json_int_t)pg->queries_retry));
	json_object_set_new(j, "queries_failed", json_integer((json_int_t)pg->queries_failed));
	json_object_set_new(j, "answers_unverified",
			    json_integer((json_int_t)pg->answers_unverified));
	json_object_set_new(j, "lists_ok", json_integer((json_int_t)pg->lists_ok));
	json_object_set_new(j, "lists_retry", json_integer((json_int_t)pg->lists_retry));
	json_object_set_new(j, "lists_failed", json_integer((json_int_t)pg->lists_failed));
	json_object_set_new(j, "pages", json_integer((json_int_t)pg->pages));
	json_object_set_new(j, "list_transactions", json_integer((json_int_t)pg->list_txs));
	json_object_set_new(j, "list_problems", json_integer((json_int_t)pg->list_problems));
	json_object_set_new(j, "list_bad_signatures",
			    json_integer((json_int_t)pg->list_bad_signatures));
	json_object_set_new(j, "list_day",
			    pg->list_day[0] ? json_string(pg->list_day) : json_null());
	json_object_set_new(j, "list_read_at", fmt_time_json(pg->list_read_ms));
	return j;
}

static void pg_free(struct conn *c)
{
	struct pg *pg = c->priv;
	if (!pg)
		return;
	/* Requests in flight come back cancelled when the core frees c->http. */
	conn_later_cancel_all(&pg->pending);
	free(pg->field);
	free(pg);
	c->priv = NULL;
}

static bool pg_empty(const char *s)
{
	return !s || !*s;
}

static int pg_init(struct conn *c, bool check_only, char **err)
{
	const struct pg_opts *opt = c->opts;
	const char *name = c->name ? c->name : "?";
	struct pg *pg;

	*err = NULL;
	if (pg_empty(opt->token))
		*err = xasprintf("connector.%s: token is required (a file or credential holding "
				 "the platform's API token)",
				 name);
	else if (!pg_line_safe(opt->token))
		*err = xasprintf("connector.%s: the token contains control characters", name);
	else if (pg_empty(opt->partner))
		*err = xasprintf("connector.%s: partner is required (the province's MaDoiTac on "
				 "the platform)",
				 name);
	else if (!pg_line_safe(opt->partner) || strlen(opt->partner) > 64)
		*err = xasprintf("connector.%s: partner must be a code of at most 64 characters "
				 "without control characters",
				 name);
	else if (pg_empty(opt->key))
		*err = xasprintf("connector.%s: key is required (a file or credential holding the "
				 "partner's secret key)",
				 name);
	else if (!conn_path_ok(opt->query_path))
		*err = xasprintf("connector.%s: query_path must be a path starting with '/' (or "
				 "an http(s) URL)",
				 name);
	else if (!conn_path_ok(opt->list_path))
		*err = xasprintf("connector.%s: list_path must be a path starting with '/' (or "
				 "an http(s) URL)",
				 name);
	else if (opt->page_size < 1 || opt->page_size > 5000)
		*err = xasprintf("connector.%s: page_size must be 1..5000", name);
	if (*err)
		return -EINVAL;
	if (check_only)
		return 0;
	if (!c->http) {
		*err = xasprintf("connector.%s: no HTTP client (url)", name);
		return -EINVAL;
	}
	pg = xcalloc(1, sizeof(*pg));
	pg->c = c;
	pg->field = xasprintf("CONNECTOR=%s", name);
	c->priv = pg;
	return 0;
}

static const struct paygov_ops pg_ops = {
	.query = pg_query,
	.day_list = pg_day_list,
	.day_pages = pg_day_pages,
	.check_tx = pg_check,
};

const struct connector conn_paygov = {
	.abi_version = CONN_ABI_VERSION,
	.name = "paygov",
	.description = "The national online payment platform: QUERY of one payment and the "
		       "daily transaction list, every message's MaXacThuc verified",
	.flags = CONN_F_HTTP,
	.options = pg_options,
	.opts_size = sizeof(struct pg_opts),
	.init = pg_init,
	.free = pg_free,
	.status = pg_status,
	.ext = &pg_ops,
};
