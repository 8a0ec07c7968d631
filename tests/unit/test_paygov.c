/*
 * test_paygov: the paygov connector (connectors/paygov.c) and its message
 * functions (payment-spec §1-§2).
 *
 * Without network: MaXacThuc against vectors computed outside this code
 * (sha256sum over the joined text, embedded below), round trips, the
 * verdicts of paygov_verify, the classes of paygov_check_tx, and the list
 * reader on every bad input of the file forms (CSV with and without BOM,
 * quotes, a cut file, bytes that are not UTF-8, wrong field counts, amounts
 * as text, duplicated rows), each a problem naming its line while the good
 * rows are kept.
 *
 * Over loopback: the connector built the real way (a config file through
 * conf_load, conn_new on a daemon with an sd-event loop and the HTTP core)
 * against the simulator's payment platform: QUERY for a success, a pending,
 * a failed and an unknown payment, an answer with a bad signature, a wrong
 * token, a wrong key, 503 then success, a gateway's HTML page; the daily
 * list over many pages against what the simulator says it holds, with
 * duplicated rows, amounts as text and a cut page; the list exported as
 * files and read back. Answers the simulator never gives (500 then a
 * success, pages of the wrong shape, a page 2 that breaks) come from a
 * scripted server on loopback. The token and the key never reach the log.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "conf.h"
#include "conntest.h"
#include "connector.h"
#include "daemon.h"
#include "http.h"
#include "log.h"
#include "paygov.h"
#include "simproc.h"
#include "tap.h"
#include "util.h"

#define TOKEN	"pg-tok-Zq81-not-in-logs"
#define KEY	"pg-key-Wv27-not-in-logs"
#define PARTNER "HUNGYEN"
#define LIST	"/paygov/api/v1/giao-dich"
#define QUERY	"/paygov/api/v1/query"

/* The key of the vectors (the simulator's default). */
#define VKEY "paygov-partner-key"

static struct conntest ct;

static const struct paygov_ops *ops(void)
{
	return conn_paygov.ext;
}

static bool has(const char *s, const char *sub)
{
	return s && strstr(s, sub);
}

/* ---- MaXacThuc ---------------------------------------------------------- */

/*
 * Each vector's digest was computed with coreutils, not with this code:
 *	printf '%s' 'QUERY|1.0.6|HUNGYEN|H31...|20250602145336|paygov-partner-key' | sha256sum
 */
static void test_mac_vectors(void)
{
	static const char *const query[] = {"QUERY", "1.0.6", "HUNGYEN",
					    "H31.12526-250602-00001-20250602145336",
					    "20250602145336"};
	static const char *const confirm[] = {"CONFIRM",
					      "00",
					      "HUNGYEN",
					      "H31.12526-250602-00001-20250602145336",
					      "530000",
					      "704",
					      "PG250602000123",
					      "VCB",
					      "20250602145336",
					      "Nộp phí hồ sơ H31.12526-250602-00001",
					      "1"};
	/* absent fields as NULL: "QUERY|01|HUNGYEN|H31.X|||||||4|key" */
	static const char *const unknown[] = {"QUERY", "01", "HUNGYEN", "H31.X", NULL, NULL,
					      NULL,    NULL, NULL,	NULL,	 "4"};
	static const char *const ab[] = {"a", "b"};
	char out[PAYGOV_MAC_HEX_LEN + 1];

	is_int(paygov_mac(query, 5, VKEY, out), 0, "paygov_mac succeeds");
	is_str(out, "5b08ceb2fd9d5a045a1288da1d7c6fe35e49f872b8efec0e83db874430301652",
	       "QUERY request vector (sha256sum of the '|'-joined fields and key)");
	paygov_mac(confirm, 11, VKEY, out);
	is_str(out, "9afe346455cad89cfa5f99ccc4cfeff7a55c5bd1503ab80a94704e766c34817e",
	       "confirmation vector with Vietnamese text, hashed as its UTF-8 bytes");
	paygov_mac(unknown, 11, VKEY, out);
	is_str(out, "d9e4d9cab89a344b3157c53bd03f208db7bf85cd9b18a878a8532137e61e1f84",
	       "absent fields hash as empty texts between the '|'");
	paygov_mac(ab, 2, "k", out);
	is_str(out, "8bff25582189469cffc71d7fab53f48251373d083d33715ece93ddb67b1df625",
	       "a plain hash of \"a|b|k\", not an HMAC");
	paygov_mac(NULL, 0, VKEY, out);
	is_str(out, "6457feeb3be9fddce68c1b059f64bfe4f1c57515f7bfc3c510b4148b526df825",
	       "no fields: the key alone");
	is_int(paygov_mac(query, 5, NULL, out), -EINVAL, "no key: -EINVAL");
}

static void test_verify(void)
{
	static const char *const f[] = {"QUERY", "1.0.6", "HUNGYEN",
					"H31.12526-250602-00001-20250602145336", "20250602145336"};
	const char *good = "5b08ceb2fd9d5a045a1288da1d7c6fe35e49f872b8efec0e83db874430301652";
	char m[80];

	is_int(paygov_verify(f, 5, VKEY, good), PAYGOV_SIG_OK, "the right MaXacThuc verifies");
	is_int(paygov_verify(f, 5, "other-key", good), PAYGOV_SIG_MISMATCH,
	       "with another key it does not");
	is_int(paygov_verify(f, 4, VKEY, good), PAYGOV_SIG_MISMATCH,
	       "nor over a field list one short");
	is_int(paygov_verify(f, 5, VKEY, NULL), PAYGOV_SIG_MISSING, "NULL: missing");
	is_int(paygov_verify(f, 5, VKEY, ""), PAYGOV_SIG_MISSING, "empty: missing");
	/* Constant-time semantics: every position counts, not only a prefix. */
	snprintf(m, sizeof(m), "%s", good);
	m[0] = m[0] == '5' ? '6' : '5';
	is_int(paygov_verify(f, 5, VKEY, m), PAYGOV_SIG_MISMATCH,
	       "a difference in the first digit");
	snprintf(m, sizeof(m), "%s", good);
	m[63] = m[63] == '2' ? '3' : '2';
	is_int(paygov_verify(f, 5, VKEY, m), PAYGOV_SIG_MISMATCH, "a difference in the last digit");
	snprintf(m, sizeof(m), "%.32s", good);
	is_int(paygov_verify(f, 5, VKEY, m), PAYGOV_SIG_MALFORMED,
	       "a correct prefix (32 digits) is not a MaXacThuc");
	snprintf(m, sizeof(m), "%s0", good);
	is_int(paygov_verify(f, 5, VKEY, m), PAYGOV_SIG_MALFORMED, "65 digits are not either");
	snprintf(m, sizeof(m), "%s", good);
	for (char *p = m; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	is_int(paygov_verify(f, 5, VKEY, m), PAYGOV_SIG_MALFORMED,
	       "uppercase hex of the right digest is refused (lowercase is the contract)");
	snprintf(m, sizeof(m), "%.63sg", good);
	is_int(paygov_verify(f, 5, VKEY, m), PAYGOV_SIG_MALFORMED, "a non-hex character");
}

/* A transaction of the list, signed with key (CONFIRM fields, payment-spec §1). */
static json_t *tx_new(const char *ref, const char *magd, long long amount, int state,
		      const char *when, const char *key)
{
	char mac[PAYGOV_MAC_HEX_LEN + 1];
	json_t *t = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s}",
			      "LoaiBanTin", "CONFIRM", "MaLoi", "00", "MaDoiTac", PARTNER,
			      "MaThamChieu", ref, "SoTien", (json_int_t)amount, "MaTienTe", "704",
			      "MaGiaoDich", magd, "MaNganHang", "VCB", "ThoiGianGD", when,
			      "ThongTinGiaoDich", "Nộp phí, lệ phí \"hồ sơ\", số 1", "TrangThaiGD",
			      state, "MaHoSo", "H31.12526-250602-00001", "ThoiGianCapNhat", when);
	if (key && paygov_msg_mac(t, PAYGOV_MSG_CONFIRM, key, mac, NULL) == 0)
		json_object_set_new(t, "MaXacThuc", json_string(mac));
	return t;
}

/* Signs t again (after a change made on purpose). */
static void resign(json_t *t, const char *key)
{
	char mac[PAYGOV_MAC_HEX_LEN + 1];
	if (paygov_msg_mac(t, PAYGOV_MSG_CONFIRM, key, mac, NULL) == 0)
		json_object_set_new(t, "MaXacThuc", json_string(mac));
}

static void test_msg(void)
{
	char a[PAYGOV_MAC_HEX_LEN + 1], b[PAYGOV_MAC_HEX_LEN + 1];
	char *why = NULL;
	json_t *m =
		json_pack("{s:s, s:s, s:s, s:s, s:s}", "LoaiBanTin", "QUERY", "PhienBan", "1.0.6",
			  "MaDoiTac", "HUNGYEN", "MaThamChieu",
			  "H31.12526-250602-00001-20250602145336", "ThoiGianGD", "20250602145336");

	paygov_msg_mac(m, PAYGOV_MSG_QUERY, VKEY, a, NULL);
	is_str(a, "5b08ceb2fd9d5a045a1288da1d7c6fe35e49f872b8efec0e83db874430301652",
	       "a JSON QUERY request signs its fields in the contract's order");
	json_object_set_new(m, "Ip", json_string("10.0.0.1"));
	paygov_msg_mac(m, PAYGOV_MSG_QUERY, VKEY, b, NULL);
	is_str(b, a, "fields outside the list do not count");
	json_decref(m);

	/* Field text: the integer 530000 and the text "530000" sign alike; null as absent. */
	json_t *t = tx_new("R-1", "G1", 530000, 1, "20250602145336", NULL);
	paygov_msg_mac(t, PAYGOV_MSG_CONFIRM, VKEY, a, NULL);
	json_object_set_new(t, "SoTien", json_string("530000"));
	paygov_msg_mac(t, PAYGOV_MSG_CONFIRM, VKEY, b, NULL);
	is_str(b, a, "an integer signs as its decimal text");
	json_object_set_new(t, "MaNganHang", json_null());
	paygov_msg_mac(t, PAYGOV_MSG_CONFIRM, VKEY, a, NULL);
	json_object_del(t, "MaNganHang");
	paygov_msg_mac(t, PAYGOV_MSG_CONFIRM, VKEY, b, NULL);
	is_str(b, a, "null signs as absent");
	json_object_set_new(t, "MaNganHang", json_string(""));
	paygov_msg_mac(t, PAYGOV_MSG_CONFIRM, VKEY, b, NULL);
	is_str(b, a, "and as the empty text");
	json_object_set_new(t, "SoTien", json_real(530000.0));
	is_int(paygov_msg_mac(t, PAYGOV_MSG_CONFIRM, VKEY, a, &why), PAYGOV_SIG_FIELD,
	       "a real cannot be signed text (%s)", why ? why : "");
	ok(has(why, "SoTien"), "the field is named");
	free(why);
	json_object_set_new(t, "SoTien", json_true());
	is_int(paygov_msg_verify(t, PAYGOV_MSG_CONFIRM, VKEY, NULL), PAYGOV_SIG_MISSING,
	       "verify reports a missing MaXacThuc first");
	json_object_set_new(t, "MaXacThuc", json_string(a));
	is_int(paygov_msg_verify(t, PAYGOV_MSG_CONFIRM, VKEY, NULL), PAYGOV_SIG_FIELD,
	       "then a boolean field that cannot be signed");
	json_object_set_new(t, "SoTien",
			    json_stringn("53\0"
					 "0000",
					 7));
	is_int(paygov_msg_mac(t, PAYGOV_MSG_CONFIRM, VKEY, a, NULL), PAYGOV_SIG_FIELD,
	       "nor a text holding a NUL");
	json_decref(t);
	is_int(paygov_msg_mac(NULL, PAYGOV_MSG_CONFIRM, VKEY, a, NULL), -EINVAL, "NULL: -EINVAL");
}

static void test_check_tx(void)
{
	static const struct {
		const char *field, *want;
	} bad[] = {
		{"SoTien", "SoTien is missing"},
		{"TrangThaiGD", "TrangThaiGD is missing"},
		{"MaThamChieu", "MaThamChieu is missing"},
		{"ThoiGianGD", "ThoiGianGD is missing"},
	};
	static const struct {
		const char *json, *want;
	} vals[] = {
		{"{\"SoTien\":\"150.000\"}", "SoTien is text \"150.000\""},
		{"{\"SoTien\":150000.0}", "SoTien is a real number"},
		{"{\"SoTien\":-5}", "SoTien is negative"},
		{"{\"TrangThaiGD\":\"1\"}", "TrangThaiGD is text \"1\""},
		{"{\"TrangThaiGD\":2}", "TrangThaiGD is 2, not 1, 3 or 4"},
		{"{\"LoaiBanTin\":\"QUERY\"}", "LoaiBanTin is \"QUERY\", not CONFIRM"},
		{"{\"MaTienTe\":\"840\"}", "MaTienTe is \"840\", not 704"},
		{"{\"ThoiGianGD\":\"2025-06-02 14:53\"}", "ThoiGianGD is \"2025-06-02 14:53\""},
		{"{\"ThoiGianGD\":\"20250230145336\"}", "not a yyyyMMddHHmmss time"},
		{"{\"ThoiGianCapNhat\":\"yesterday\"}", "ThoiGianCapNhat is \"yesterday\""},
		{"{\"MaGiaoDich\":\"\"}", "(success) but MaGiaoDich is missing"},
		{"{\"MaLoi\":\"01\"}", "success) but MaLoi is \"01\""},
		{"{\"MaDoiTac\":7}", "MaDoiTac is an integer, not text"},
		{"{\"MaHoSo\":[\"x\"]}", "MaHoSo is a list, not text"},
		{"{\"MaThamChieu\":\"R\\n1\"}", "control characters"},
	};
	char *why = NULL, *w2 = NULL;
	json_t *t = tx_new("R-1", "G1", 530000, 1, "20250602145336", VKEY), *c;
	size_t i;

	is_int(paygov_check_tx(t, VKEY, &why), PAYGOV_TX_OK, "a signed transaction is ok (%s)",
	       why ? why : "no reason");
	ok(why == NULL, "with no reason");
	/* Round trips: every signed field counts, the unsigned ones do not. */
	static const char *const signed_f[] = {"LoaiBanTin",	   "MaLoi",	 "MaDoiTac",
					       "MaThamChieu",	   "SoTien",	 "MaTienTe",
					       "MaGiaoDich",	   "MaNganHang", "ThoiGianGD",
					       "ThongTinGiaoDich", "TrangThaiGD"};
	int broken = 0;
	for (i = 0; i < LT_ARRAY_SIZE(signed_f); i++) {
		c = json_deep_copy(t);
		json_t *v = json_object_get(c, signed_f[i]);
		/* a change that keeps the shape: another text or amount */
		if (!strcmp(signed_f[i], "LoaiBanTin") || !strcmp(signed_f[i], "MaTienTe") ||
		    !strcmp(signed_f[i], "MaLoi") || !strcmp(signed_f[i], "TrangThaiGD")) {
			/* these have one valid value for a success: sign with another key instead
			 */
			resign(c, "another-key");
		} else if (json_is_integer(v)) {
			json_object_set_new(c, signed_f[i],
					    json_integer(json_integer_value(v) + 1));
		} else if (!strcmp(signed_f[i], "ThoiGianGD")) {
			json_object_set_new(c, signed_f[i], json_string("20250602145337"));
		} else {
			char *s = xasprintf("%sX", json_string_value(v));
			json_object_set_new(c, signed_f[i], json_string(s));
			free(s);
		}
		broken += paygov_check_tx(c, VKEY, NULL) == PAYGOV_TX_BAD_SIGNATURE;
		json_decref(c);
	}
	is_int(broken, (int)LT_ARRAY_SIZE(signed_f),
	       "a change of any signed field (or the key) breaks the signature");
	c = json_deep_copy(t);
	json_object_set_new(c, "MaHoSo", json_string("H31.other"));
	json_object_set_new(c, "ThoiGianCapNhat", json_string("20250603000000"));
	json_object_set_new(c, "Extra", json_string("x"));
	is_int(paygov_check_tx(c, VKEY, NULL), PAYGOV_TX_OK,
	       "MaHoSo, ThoiGianCapNhat and other fields are not signed");
	json_decref(c);
	is_int(paygov_check_tx(t, "another-key", &why), PAYGOV_TX_BAD_SIGNATURE,
	       "another key: bad_signature");
	ok(has(why, "does not verify"), "saying it does not verify (%s)", why ? why : "");
	free(why);

	/* MaXacThuc wrong in form. */
	static const struct {
		const char *json, *want;
	} macs[] = {
		{"{\"MaXacThuc\":null}", "MaXacThuc is missing"},
		{"{\"MaXacThuc\":\"\"}", "MaXacThuc is missing"},
		{"{\"MaXacThuc\":42}", "MaXacThuc is an integer"},
		{"{\"MaXacThuc\":\"abc\"}", "not 64 lowercase hex"},
	};
	for (i = 0; i < LT_ARRAY_SIZE(macs); i++) {
		c = json_deep_copy(t);
		json_t *patch = json_loads(macs[i].json, 0, NULL);
		json_object_update(c, patch);
		int r = paygov_check_tx(c, VKEY, &why);
		ok(r == PAYGOV_TX_BAD_SIGNATURE && has(why, macs[i].want), "%s: bad_signature (%s)",
		   macs[i].json, why ? why : "ok");
		free(why);
		json_decref(patch);
		json_decref(c);
	}
	c = json_deep_copy(t);
	json_object_del(c, "MaXacThuc");
	is_int(paygov_check_tx(c, VKEY, NULL), PAYGOV_TX_BAD_SIGNATURE, "no MaXacThuc at all");
	{
		char *up = xstrdup(json_string_value(json_object_get(t, "MaXacThuc")));
		for (char *p = up; *p; p++)
			if (*p >= 'a' && *p <= 'f')
				*p = (char)(*p - 'a' + 'A');
		json_object_set_new(c, "MaXacThuc", json_string(up));
		is_int(paygov_check_tx(c, VKEY, NULL), PAYGOV_TX_BAD_SIGNATURE,
		       "the right digest in uppercase");
		free(up);
	}
	json_decref(c);

	/* Malformed: the shape is judged before the signature, whatever was signed. */
	for (i = 0; i < LT_ARRAY_SIZE(bad); i++) {
		c = json_deep_copy(t);
		json_object_del(c, bad[i].field);
		resign(c, VKEY);
		int r = paygov_check_tx(c, VKEY, &why);
		ok(r == PAYGOV_TX_MALFORMED && has(why, bad[i].want), "without %s: malformed (%s)",
		   bad[i].field, why ? why : "ok");
		free(why);
		json_decref(c);
	}
	for (i = 0; i < LT_ARRAY_SIZE(vals); i++) {
		c = json_deep_copy(t);
		json_t *patch = json_loads(vals[i].json, 0, NULL);
		json_object_update(c, patch);
		resign(c, VKEY); /* signed as served: still malformed */
		int r = paygov_check_tx(c, VKEY, &why);
		ok(r == PAYGOV_TX_MALFORMED && has(why, vals[i].want), "%s: malformed (%s)",
		   vals[i].json, why ? why : "ok");
		free(why);
		json_decref(patch);
		json_decref(c);
	}
	c = json_deep_copy(t);
	json_object_set_new(c, "SoTien", json_string("150.000"));
	json_object_del(c, "MaXacThuc");
	is_int(paygov_check_tx(c, VKEY, NULL), PAYGOV_TX_MALFORMED,
	       "an amount as text without a signature is malformed, not bad_signature");
	json_decref(c);
	c = json_string("x");
	is_int(paygov_check_tx(c, VKEY, &w2), PAYGOV_TX_MALFORMED, "a string: malformed (%s)",
	       w2 ? w2 : "");
	free(w2);
	json_decref(c);
	/* Pending and failed states are well-formed without MaGiaoDich or MaLoi 00. */
	c = tx_new("R-3", "", 10000, 3, "20250602145336", NULL);
	json_object_set_new(c, "MaLoi", json_string("99"));
	resign(c, VKEY);
	is_int(paygov_check_tx(c, VKEY, &why), PAYGOV_TX_OK,
	       "a pending one without MaGiaoDich (%s)", why ? why : "ok");
	free(why);
	json_decref(c);
	is_int(paygov_check_tx(NULL, VKEY, NULL), -EINVAL, "NULL tx: -EINVAL");
	is_int(paygov_check_tx(t, NULL, NULL), -EINVAL, "NULL key: -EINVAL");
	is_str(paygov_check_name(PAYGOV_TX_BAD_SIGNATURE), "bad_signature", "class names");
	json_decref(t);
}

/* ---- the list's file forms --------------------------------------------- */

static const char *const csv_cols[] = {
	"LoaiBanTin",  "MaLoi",	     "MaDoiTac",	"MaThamChieu", "SoTien",
	"MaTienTe",    "MaGiaoDich", "MaNganHang",	"ThoiGianGD",  "ThongTinGiaoDich",
	"TrangThaiGD", "MaHoSo",     "ThoiGianCapNhat", "MaXacThuc"};

/* A CSV field as RFC 4180 writes it. */
static void csv_add(struct dynbuf *b, const char *s, bool comma)
{
	if (comma)
		dynbuf_add(b, ",", 1);
	if (!strpbrk(s, ",\"\r\n")) {
		dynbuf_addstr(b, s);
		return;
	}
	dynbuf_add(b, "\"", 1);
	for (; *s; s++) {
		if (*s == '"')
			dynbuf_add(b, "\"", 1);
		dynbuf_add(b, s, 1);
	}
	dynbuf_add(b, "\"", 1);
}

/* The CSV line of tx (values as text) with eol. */
static void csv_row(struct dynbuf *b, const json_t *tx, const char *eol)
{
	for (size_t i = 0; i < LT_ARRAY_SIZE(csv_cols); i++) {
		const json_t *v = json_object_get(tx, csv_cols[i]);
		char num[32];
		const char *s = json_is_string(v) ? json_string_value(v) : "";
		if (json_is_integer(v)) {
			snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
			s = num;
		}
		csv_add(b, s, i > 0);
	}
	dynbuf_addstr(b, eol);
}

static void csv_header(struct dynbuf *b, const char *eol)
{
	for (size_t i = 0; i < LT_ARRAY_SIZE(csv_cols); i++)
		csv_add(b, csv_cols[i], i > 0);
	dynbuf_addstr(b, eol);
}

/* The i-th good transaction of the test files. */
static json_t *good_tx(int i)
{
	char ref[64], magd[32];
	snprintf(ref, sizeof(ref), "H31.12526-250602-%05d-20250602145336", i);
	snprintf(magd, sizeof(magd), "PG%08d", i);
	return tx_new(ref, magd, 10000LL * (i + 1), 1, "20250602145336", VKEY);
}

/* The problem at index i: its class, line and why. */
static const char *prob_why(const json_t *problems, size_t i)
{
	return json_string_value(json_object_get(json_array_get(problems, i), "why"));
}

static long long prob_line(const json_t *problems, size_t i)
{
	return json_integer_value(json_object_get(json_array_get(problems, i), "line"));
}

static const char *prob_class(const json_t *problems, size_t i)
{
	return json_string_value(json_object_get(json_array_get(problems, i), "class"));
}

/* Whether every transaction of txs passes paygov_check_tx with VKEY. */
static bool all_verify(const json_t *txs)
{
	size_t i;
	json_t *t;
	json_array_foreach (txs, i, t) {
		if (paygov_check_tx(t, VKEY, NULL) != PAYGOV_TX_OK)
			return false;
	}
	return json_array_size(txs) > 0;
}

static void test_csv_good(void)
{
	struct dynbuf b;
	json_t *txs = NULL, *pr = NULL, *t;
	char *text;
	size_t len;

	/* BOM, CRLF, a text with a comma, quotes and a line break. */
	dynbuf_init(&b, 0);
	dynbuf_addstr(&b, "\xef\xbb\xbf");
	csv_header(&b, "\r\n");
	for (int i = 0; i < 3; i++) {
		t = good_tx(i);
		if (i == 1) {
			json_object_set_new(t, "ThongTinGiaoDich",
					    json_string("Lệ phí, \"cấp bản sao\"\r\nhai dòng"));
			resign(t, VKEY);
		}
		csv_row(&b, t, "\r\n");
		json_decref(t);
	}
	text = dynbuf_steal(&b, &len);
	is_int(paygov_parse_list(text, len, PAYGOV_CSV, &txs, &pr), 0, "a CSV file is read");
	is_int(json_array_size(txs), 3, "with BOM and CRLF: every row");
	is_int(json_array_size(pr), 0, "and no problem");
	ok(all_verify(txs), "quoted commas, quotes and line breaks decode to the signed text");
	ok(json_is_integer(json_object_get(json_array_get(txs, 0), "SoTien")) &&
		   json_is_integer(json_object_get(json_array_get(txs, 0), "TrangThaiGD")) &&
		   json_is_string(json_object_get(json_array_get(txs, 0), "MaLoi")),
	   "SoTien and TrangThaiGD come as integers, MaLoi stays text \"00\"");
	is_str(json_string_value(json_object_get(json_array_get(txs, 0), "LoaiBanTin")), "CONFIRM",
	       "the BOM is not part of the first column's name");
	json_decref(txs);
	json_decref(pr);
	free(text);

	/* No BOM, LF, and the last line without an end of line but whole. */
	dynbuf_init(&b, 0);
	csv_header(&b, "\n");
	for (int i = 0; i < 4; i++) {
		t = good_tx(i);
		csv_row(&b, t, i == 3 ? "" : "\n");
		json_decref(t);
	}
	dynbuf_addstr(&b, "");
	text = dynbuf_steal(&b, &len);
	paygov_parse_list(text, len, PAYGOV_CSV, &txs, &pr);
	ok(json_array_size(txs) == 4 && json_array_size(pr) == 0 && all_verify(txs),
	   "no BOM, LF, a whole last row without end of line: 4 rows, no problem (%zu, %zu)",
	   json_array_size(txs), json_array_size(pr));
	json_decref(txs);
	json_decref(pr);
	free(text);
}

static void test_csv_bad(void)
{
	struct dynbuf b;
	json_t *txs = NULL, *pr = NULL, *t;
	char *text;
	size_t len;

	/*
	 * line 1 header, 2 good, 3 wrong field count, 4 amount as text, 5 good,
	 * 6 duplicate of line 2, 7 not UTF-8, 8 blank, 9 a bad quote, 10 good,
	 * 11 cut in the middle (no end of line).
	 */
	dynbuf_init(&b, 0);
	csv_header(&b, "\r\n");
	t = good_tx(0);
	csv_row(&b, t, "\r\n");
	json_decref(t);
	dynbuf_addstr(&b, "CONFIRM,00,HUNGYEN,H31.short,1000\r\n");
	t = good_tx(2);
	json_object_set_new(t, "SoTien", json_string("150.000"));
	resign(t, VKEY);
	csv_row(&b, t, "\r\n");
	json_decref(t);
	t = good_tx(3);
	csv_row(&b, t, "\r\n");
	json_decref(t);
	t = good_tx(0);
	csv_row(&b, t, "\r\n");
	json_decref(t);
	t = good_tx(4);
	json_object_set_new(t, "ThongTinGiaoDich", json_string("Thanh toan phi"));
	csv_row(&b, t, "\r\n");
	json_decref(t);
	/* Latin-1 'á' (0xE1) where UTF-8 has two bytes */
	text = strstr(b.data + b.len - 200, "Thanh toan");
	if (text)
		text[8] = (char)0xE1;
	dynbuf_addstr(&b, "\r\n");
	dynbuf_addstr(&b, "CONFIRM,00,HUNGYEN,H31.q\"x,1000\r\n");
	t = good_tx(5);
	csv_row(&b, t, "\r\n");
	json_decref(t);
	t = good_tx(6);
	csv_row(&b, t, "\r\n");
	json_decref(t);
	b.len -= 40; /* cut inside the last row's MaXacThuc */
	b.data[b.len] = '\0';
	text = dynbuf_steal(&b, &len);

	is_int(paygov_parse_list(text, len, PAYGOV_CSV, &txs, &pr), 0,
	       "a CSV with every kind of bad row is read, not refused");
	is_int(json_array_size(txs), 3, "the 3 good rows are kept (lines 2, 5, 10)");
	ok(all_verify(txs), "and they are exactly the good ones");
	is_int(json_array_size(pr), 6, "6 problems, one per bad row, none dropped");
	static const struct {
		long long line;
		const char *cls, *want;
	} want[] = {
		{3, "malformed", "5 fields, the header has 14"},
		{4, "malformed", "SoTien is text \"150.000\""},
		{6, "duplicate", "first at line 2 (row 1)"},
		{7, "malformed", "not UTF-8"},
		{9, "malformed", "quote inside an unquoted field"},
		{11, "malformed", "the file ends inside this row"},
	};
	for (size_t i = 0; i < LT_ARRAY_SIZE(want); i++)
		ok(prob_line(pr, i) == want[i].line && has(prob_class(pr, i), want[i].cls) &&
			   has(prob_why(pr, i), want[i].want),
		   "line %lld: %s, %s (%lld %s: %s)", want[i].line, want[i].cls, want[i].want,
		   prob_line(pr, i), prob_class(pr, i) ? prob_class(pr, i) : "-",
		   prob_why(pr, i) ? prob_why(pr, i) : "-");
	ok(has(json_string_value(json_object_get(json_array_get(pr, 1), "where")), "row 3"),
	   "a problem names the row too (%s)",
	   json_string_value(json_object_get(json_array_get(pr, 1), "where")));
	ok(json_is_object(json_object_get(json_array_get(pr, 1), "item")) &&
		   has(json_string_value(json_object_get(json_array_get(pr, 1), "ma_tham_chieu")),
		       "00002"),
	   "a malformed row keeps its fields and MaThamChieu for the report");
	ok(json_is_string(json_object_get(json_array_get(pr, 3), "item")),
	   "a row that is not UTF-8 keeps a readable excerpt");
	json_decref(txs);
	json_decref(pr);
	free(text);

	/* Cut inside a quoted field. */
	dynbuf_init(&b, 0);
	csv_header(&b, "\n");
	t = good_tx(0);
	csv_row(&b, t, "\n");
	json_decref(t);
	dynbuf_addstr(&b, "CONFIRM,00,HUNGYEN,H31.x,1000,704,G,VCB,20250602145336,\"Lệ phí");
	text = dynbuf_steal(&b, &len);
	paygov_parse_list(text, len, PAYGOV_CSV, &txs, &pr);
	ok(json_array_size(txs) == 1 && json_array_size(pr) == 1 && prob_line(pr, 0) == 3 &&
		   has(prob_why(pr, 0), "not closed"),
	   "cut inside a quoted field: the row before kept, the cut named (%s)",
	   prob_why(pr, 0) ? prob_why(pr, 0) : "-");
	json_decref(txs);
	json_decref(pr);
	free(text);

	/* A header without MaXacThuc: nothing can be trusted, one problem. */
	const char *nomac = "LoaiBanTin,MaLoi,MaDoiTac,MaThamChieu,SoTien,MaTienTe,MaGiaoDich,"
			    "MaNganHang,ThoiGianGD,ThongTinGiaoDich,TrangThaiGD\n"
			    "CONFIRM,00,HUNGYEN,R,1,704,G,VCB,20250602145336,x,1\n";
	paygov_parse_list(nomac, strlen(nomac), PAYGOV_CSV, &txs, &pr);
	ok(json_array_size(txs) == 0 && json_array_size(pr) == 1 &&
		   has(prob_why(pr, 0), "lacks MaXacThuc") && prob_line(pr, 0) == 1,
	   "a header without MaXacThuc: no row, one problem on line 1 (%s)",
	   prob_why(pr, 0) ? prob_why(pr, 0) : "-");
	json_decref(txs);
	json_decref(pr);
	paygov_parse_list("", 0, PAYGOV_CSV, &txs, &pr);
	ok(json_array_size(txs) == 0 && json_array_size(pr) == 1 && has(prob_why(pr, 0), "empty"),
	   "an empty file is a problem, not an empty day");
	json_decref(txs);
	json_decref(pr);
	is_int(paygov_parse_list(NULL, 3, PAYGOV_CSV, &txs, &pr), -EINVAL, "NULL text: -EINVAL");
	is_int(paygov_parse_list("x", 1, (enum paygov_format)7, &txs, &pr), -EINVAL,
	       "unknown format: -EINVAL");
}

static void test_json_file(void)
{
	struct dynbuf b;
	json_t *txs = NULL, *pr = NULL, *t;
	char *text, *s;
	size_t len;

	/* One item per line: line 1 '{"ngay":..,"items":[', items from line 2. */
	dynbuf_init(&b, 0);
	dynbuf_addstr(&b, "\xef\xbb\xbf{\"ngay\":\"2025-06-02\",\"items\":[\n");
	for (int i = 0; i < 8; i++) {
		if (i == 2) {
			dynbuf_addstr(&b, "\"not a transaction\",\n");
			continue;
		}
		t = good_tx(i == 5 ? 0 : i);
		if (i == 3) {
			json_object_set_new(t, "SoTien", json_string("150.000"));
			resign(t, VKEY);
		}
		s = json_dumps(t, JSON_COMPACT);
		if (i == 6) { /* Latin-1 inside a string */
			char *p = strstr(s, "Nộp");
			if (p) {
				memmove(p + 1, p + 4, strlen(p + 4) + 1);
				p[0] = (char)0xE1;
			}
		}
		dynbuf_addstr(&b, s);
		dynbuf_addstr(&b, i < 7 ? ",\n" : "\n");
		free(s);
		json_decref(t);
	}
	dynbuf_addstr(&b, "]}\n");
	text = dynbuf_steal(&b, &len);
	is_int(paygov_parse_list(text, len, PAYGOV_JSON, &txs, &pr), 0, "a JSON file is read");
	is_int(json_array_size(txs), 4, "the good items are kept (1, 2, 5, 8)");
	ok(all_verify(txs), "and only they");
	is_int(json_array_size(pr), 4, "4 problems");
	static const struct {
		long long line;
		const char *cls, *want;
	} want[] = {
		{4, "malformed", "it is a string, not a transaction"},
		{5, "malformed", "SoTien is text"},
		{7, "duplicate", "first at item 1 (line 2)"},
		{8, "malformed", "not UTF-8"},
	};
	for (size_t i = 0; i < LT_ARRAY_SIZE(want); i++)
		ok(prob_line(pr, i) == want[i].line && has(prob_class(pr, i), want[i].cls) &&
			   has(prob_why(pr, i), want[i].want),
		   "item on line %lld: %s, %s (%lld %s)", want[i].line, want[i].cls, want[i].want,
		   prob_line(pr, i), prob_why(pr, i) ? prob_why(pr, i) : "-");
	json_decref(txs);
	json_decref(pr);

	/* The same file cut in the middle of item 7: items before the cut kept. */
	size_t cut = (size_t)(strstr(text, "00006") - text);
	paygov_parse_list(text, cut, PAYGOV_JSON, &txs, &pr);
	ok(json_array_size(txs) == 3 && json_array_size(pr) == 4 && prob_line(pr, 3) == 8 &&
		   has(prob_why(pr, 3), "ends inside this item"),
	   "a cut file: the items before the cut kept, the cut named (%zu, %s)",
	   json_array_size(txs), prob_why(pr, 3) ? prob_why(pr, 3) : "-");
	json_decref(txs);
	json_decref(pr);
	free(text);

	static const struct {
		const char *text, *want;
	} shapes[] = {
		{"[]", "not a JSON object with \"items\""},
		{"{\"ngay\":\"2025-06-02\"}", "no \"items\" list"},
		{"{\"items\":{}}", "\"items\" is not a list"},
		{"{\"items\":[]} trailing", "text after the end"},
		{"{\"items\":[],\"items\":[]}", "appears twice"},
		{"", "empty"},
		{"{\"items\":[{\"a\":1} {\"b\":2}]}", "where ',' or ']' should be"},
	};
	for (size_t i = 0; i < LT_ARRAY_SIZE(shapes); i++) {
		paygov_parse_list(shapes[i].text, strlen(shapes[i].text), PAYGOV_JSON, &txs, &pr);
		ok(json_array_size(txs) == 0 && json_array_size(pr) >= 1 &&
			   has(prob_why(pr, json_array_size(pr) - 1), shapes[i].want),
		   "%s: a problem (%s)", shapes[i].text,
		   prob_why(pr, json_array_size(pr) - 1) ? prob_why(pr, json_array_size(pr) - 1)
							 : "-");
		json_decref(txs);
		json_decref(pr);
	}
	paygov_parse_list("{\"ngay\":\"x\",\"items\":[]}", 23, PAYGOV_JSON, &txs, &pr);
	ok(json_array_size(txs) == 0 && json_array_size(pr) == 0,
	   "an empty list is an empty day, not a problem");
	json_decref(txs);
	json_decref(pr);
}

static void test_problem_cap(void)
{
	struct dynbuf b;
	json_t *txs = NULL, *pr = NULL;
	char *text;
	size_t len, n = PAYGOV_MAX_PROBLEMS + 5;

	dynbuf_init(&b, 0);
	csv_header(&b, "\n");
	for (size_t i = 0; i < n; i++)
		dynbuf_addstr(&b, "a,b\n");
	text = dynbuf_steal(&b, &len);
	paygov_parse_list(text, len, PAYGOV_CSV, &txs, &pr);
	is_int(json_array_size(pr), PAYGOV_MAX_PROBLEMS + 1,
	       "problems past the bound are counted in one more");
	ok(has(prob_why(pr, PAYGOV_MAX_PROBLEMS), "5 more problems not listed"),
	   "which says how many (%s)", prob_why(pr, PAYGOV_MAX_PROBLEMS));
	json_decref(txs);
	json_decref(pr);
	free(text);
}

/* ---- the connector's configuration -------------------------------------- */

static char *keys_for(const char *url, const char *extra)
{
	return xasprintf("url = %s/paygov\ntoken = %s/token\nkey = %s/key\npartner = " PARTNER
			 "\nmax_attempts = 2\nbackoff_base = 5ms\nbackoff_cap = 20ms\n"
			 "breaker_failures = 0\ntimeout = 10s\n%s",
			 url, ct.dir, ct.dir, extra ? extra : "");
}

static void test_config(void)
{
	static const struct {
		const char *keys, *want;
	} bad[] = {
		{"key = %s/key\npartner = P\n", "token"},
		{"token = %s/token\nkey = %s/key\n", "partner"},
		{"token = %s/token\npartner = P\n", "key"},
		{"token = %s/loose\nkey = %s/key\npartner = P\n", "token"},
		{"token = %s/token\nkey = %s/loose\npartner = P\n", "key"},
		{"token = %s/token\nkey = %s/key\npartner = P\nquery_path = q\n", "query_path"},
		{"token = %s/token\nkey = %s/key\npartner = P\nlist_path = x\n", "list_path"},
		{"token = %s/token\nkey = %s/key\npartner = P\npage_size = 0\n", "page_size"},
		{"token = %s/token\nkey = %s/key\npartner = P\npage_size = 5001\n", "page_size"},
	};
	const char *defs[][2] = {{"query_path", "/api/v1/query"},
				 {"list_path", "/api/v1/giao-dich"},
				 {"page_size", "1000"}};
	struct conntest_conn t;
	char *keys, *loose;
	int found = 0;

	ok(conn_type_find("paygov") == &conn_paygov, "the registry knows type paygov");
	ok(conn_paygov.flags & CONN_F_HTTP, "paygov uses the HTTP core");
	for (const struct conf_option *o = conn_paygov.options; o->key; o++) {
		for (size_t i = 0; i < LT_ARRAY_SIZE(defs); i++)
			found += !strcmp(o->key, defs[i][0]) && o->def &&
				 !strcmp(o->def, defs[i][1]);
		if (!strcmp(o->key, "token") || !strcmp(o->key, "key"))
			found += o->type == CONF_SECRET ? 10 : 0;
		found += !strcmp(o->key, "partner") && o->type == CONF_STRING ? 100 : 0;
	}
	is_int(found, 123, "options with their defaults; token and key are secrets");

	loose = xasprintf("%s/loose", ct.dir);
	write_file_atomic(loose, "x", 1, 0644);
	free(loose);
	for (size_t i = 0; i < LT_ARRAY_SIZE(bad); i++) {
		char *k = xasprintf(bad[i].keys, ct.dir, ct.dir);
		keys = xasprintf("url = http://127.0.0.1:9\n%s", k);
		for (char *nl = strchr(k, '\n'); nl; nl = strchr(nl, '\n'))
			*nl = ' ';
		conntest_refused(&ct, keys, bad[i].want, k);
		free(keys);
		free(k);
	}
	keys = keys_for("http://127.0.0.1:9", NULL);
	conntest_check_only(&ct, &t, keys);
	if (t.c) {
		json_t *tx = good_tx(0);
		is_int(ops()->check_tx(t.c, tx, NULL), PAYGOV_TX_BAD_SIGNATURE,
		       "check_tx uses the configured key (not the vectors' key)");
		json_decref(tx);
	}
	conntest_conn_free(&t);
	free(keys);
}

/* ---- completions ------------------------------------------------------ */

struct qres {
	int calls;
	enum conn_outcome o;
	bool answered, verified;
	int state;
	long long amount;
	char *maloi, *magd, *bank, *when, *ref, *why, *sig_why;
	json_t *raw;
};

static void qres_clear(struct qres *r)
{
	free(r->maloi);
	free(r->magd);
	free(r->bank);
	free(r->when);
	free(r->ref);
	free(r->why);
	free(r->sig_why);
	json_decref(r->raw);
	memset(r, 0, sizeof(*r));
}

static char *dup0(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void on_query(struct conn *c, enum conn_outcome o, const struct paygov_answer *a,
		     const char *why, void *ud)
{
	struct qres *r = ud;
	(void)c;
	conntest_completion(&ct);
	qres_clear(r);
	r->calls = 1;
	r->o = o;
	r->why = dup0(why);
	if (a) {
		r->answered = true;
		r->verified = a->verified;
		r->state = a->trang_thai;
		r->amount = a->so_tien;
		r->maloi = dup0(a->ma_loi);
		r->magd = dup0(a->ma_giao_dich);
		r->bank = dup0(a->ma_ngan_hang);
		r->when = dup0(a->thoi_gian_gd);
		r->ref = dup0(a->ma_tham_chieu);
		r->sig_why = dup0(a->why);
		r->raw = json_incref(a->raw);
	}
}

static void run_query(struct conn *c, const char *ref, const char *when, struct qres *r)
{
	int rc;
	qres_clear(r);
	ct.in_call = true;
	rc = ops()->query(c, ref, when, on_query, r);
	ct.in_call = false;
	conntest_await(&ct, rc, "query", &r->calls, 20000);
}

struct lres {
	int calls;
	enum conn_outcome o;
	json_t *txs, *problems;
	unsigned pages;
	char *why, *ngay;
};

static void lres_clear(struct lres *r)
{
	json_decref(r->txs);
	json_decref(r->problems);
	free(r->why);
	free(r->ngay);
	memset(r, 0, sizeof(*r));
}

static void on_day(struct conn *c, enum conn_outcome o, const struct paygov_day *day,
		   const char *why, void *ud)
{
	struct lres *r = ud;
	(void)c;
	conntest_completion(&ct);
	lres_clear(r);
	r->calls = 1;
	r->o = o;
	r->why = dup0(why);
	if (day) {
		r->txs = json_incref(day->txs);
		r->problems = json_incref(day->problems);
		r->pages = day->pages;
		r->ngay = dup0(day->ngay);
	}
}

static void run_day(struct conn *c, const char *day, struct lres *r)
{
	int rc;
	lres_clear(r);
	ct.in_call = true;
	rc = ops()->day_list(c, day, on_day, r);
	ct.in_call = false;
	conntest_await(&ct, rc, "day_list", &r->calls, 60000);
}

/* day_pages: every page's transactions and problems, appended in order. */
struct pres {
	struct lres *r;
	json_t *txs, *problems;
	unsigned pages, last_page;
	bool in_order;
};

static void on_page(struct conn *c, const struct paygov_day *page, void *ud)
{
	struct pres *pr = ud;
	(void)c;
	pr->in_order &= page->pages == pr->last_page + 1;
	pr->last_page = page->pages;
	pr->pages++;
	json_array_extend(pr->txs, page->txs);
	json_array_extend(pr->problems, page->problems);
}

static void on_day_p(struct conn *c, enum conn_outcome o, const struct paygov_day *day,
		     const char *why, void *ud)
{
	on_day(c, o, day, why, ((struct pres *)ud)->r);
}

static void run_day_pages(struct conn *c, const char *day, struct lres *r, struct pres *pr)
{
	int rc;
	lres_clear(r);
	*pr = (struct pres){
		.r = r, .txs = json_array(), .problems = json_array(), .in_order = true};
	ct.in_call = true;
	rc = ops()->day_pages(c, day, on_page, on_day_p, pr);
	ct.in_call = false;
	conntest_await(&ct, rc, "day_pages", &r->calls, 60000);
}

static size_t count_class(const json_t *problems, const char *cls)
{
	size_t i, n = 0;
	json_t *p;
	json_array_foreach (problems, i, p) {
		n += !strcmp(json_string_value(json_object_get(p, "class")), cls);
	}
	return n;
}

/* ---- talking to the simulator directly -------------------------------- */

static size_t collect(char *p, size_t size, size_t nmemb, void *ud)
{
	return dynbuf_add(ud, p, size * nmemb) == 0 ? size * nmemb : 0;
}

/* GET path with the bearer token. Returns the JSON answer or NULL. */
static json_t *sim_paygov(const struct simproc *s, const char *path)
{
	struct dynbuf b;
	struct curl_slist *h = NULL;
	char *url = xasprintf("%s%s", s->url, path);
	CURL *e = curl_easy_init();
	json_t *j = NULL;

	dynbuf_init(&b, 64 << 20);
	h = curl_slist_append(h, "Authorization: Bearer " TOKEN);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
	if (curl_easy_perform(e) == CURLE_OK && b.data)
		j = json_loads(b.data, 0, NULL);
	curl_slist_free_all(h);
	curl_easy_cleanup(e);
	dynbuf_free(&b);
	free(url);
	return j;
}

/* What the simulator holds for one day. */
struct simday {
	char day[11];
	json_t *items; /* the whole day's list, read in one page */
	json_t *bad;   /* MaThamChieu -> true: the day's bad_signature class */
	json_t *pending_refs;
	size_t n;
};

static long long pay_stat(const struct simproc *s, const char *key)
{
	json_t *j = simproc_get(s, "/_sim/payment/stats");
	long long v = json_is_integer(json_object_get(j, key))
			      ? json_integer_value(json_object_get(j, key))
			      : -1;
	json_decref(j);
	return v;
}

/* The day with the most transactions, its list and its expected classes. */
static bool simday_get(const struct simproc *s, struct simday *d)
{
	json_t *st = simproc_get(s, "/_sim/payment/stats"), *v, *page, *ex, *e;
	const char *k, *best = NULL;
	long long most = 0;
	size_t i;
	char *path;

	memset(d, 0, sizeof(*d));
	json_object_foreach (json_object_get(st, "days"), k, v) {
		long long n = json_integer_value(json_object_get(v, "transactions"));
		if (n > most) {
			most = n;
			best = k;
		}
	}
	if (best)
		snprintf(d->day, sizeof(d->day), "%s", best);
	json_decref(st);
	if (!best)
		return false;
	path = xasprintf(LIST "?ngay=%s&limit=5000", d->day);
	page = sim_paygov(s, path);
	free(path);
	d->items = json_incref(json_object_get(page, "items"));
	json_decref(page);
	d->n = json_array_size(d->items);
	d->bad = json_object();
	path = xasprintf("/_sim/payment/expected?ngay=%s", d->day);
	ex = simproc_get(s, path);
	free(path);
	json_array_foreach (json_object_get(json_object_get(ex, "classes"), "bad_signature"), i,
			    e) {
		json_object_set_new(d->bad, json_string_value(e), json_true());
	}
	json_decref(ex);
	ex = simproc_get(s, "/_sim/payment/expected");
	d->pending_refs =
		json_incref(json_object_get(json_object_get(ex, "classes"), "pending_too_long"));
	json_decref(ex);
	return d->n > 0;
}

static void simday_free(struct simday *d)
{
	json_decref(d->items);
	json_decref(d->bad);
	json_decref(d->pending_refs);
	memset(d, 0, sizeof(*d));
}

/* The first item of the day whose TrangThaiGD is state and whose signature is good. */
static const json_t *simday_find(const struct simday *d, int state)
{
	size_t i;
	json_t *e;
	json_array_foreach (d->items, i, e) {
		const char *ref = json_string_value(json_object_get(e, "MaThamChieu"));
		if (json_integer_value(json_object_get(e, "TrangThaiGD")) == state && ref &&
		    !json_object_get(d->bad, ref))
			return e;
	}
	return NULL;
}

/* The item's ThoiGianGD, which the QUERY request carries. */
static const char *when_of(const json_t *e)
{
	return json_string_value(json_object_get(e, "ThoiGianGD"));
}

static const char *ref_of(const json_t *e)
{
	return json_string_value(json_object_get(e, "MaThamChieu"));
}

/* ---- QUERY against the simulator --------------------------------------- */

static void test_query(const struct simproc *s, const struct simday *d)
{
	struct conntest_conn t;
	struct qres r = {0};
	const json_t *e;
	long long before;
	char *keys, *err = NULL;

	if (!conntest_make(&ct, &t, s->url, NULL))
		return;

	e = simday_find(d, 1);
	ok(e != NULL, "the simulator has a successful payment on %s", d->day);
	if (e) {
		before = pay_stat(s, "query_requests");
		run_query(t.c, ref_of(e), when_of(e), &r);
		ok(r.o == CONN_OK && r.verified, "QUERY of a success: OK, verified (%s)",
		   r.why ? r.why : "no error");
		ok(r.state == 1 && r.maloi && !strcmp(r.maloi, "00"),
		   "TrangThaiGD 1, MaLoi 00 (%d, %s)", r.state, r.maloi ? r.maloi : "-");
		is_int(r.amount, json_integer_value(json_object_get(e, "SoTien")),
		       "SoTien as on the list");
		is_str(r.magd, json_string_value(json_object_get(e, "MaGiaoDich")),
		       "MaGiaoDich as on the list");
		is_str(r.bank, json_string_value(json_object_get(e, "MaNganHang")),
		       "MaNganHang as on the list");
		is_str(r.when, when_of(e), "ThoiGianGD as on the list");
		is_str(r.ref, ref_of(e), "the answer names the MaThamChieu asked");
		is_int(pay_stat(s, "query_requests") - before, 1,
		       "one request; the simulator verified our MaXacThuc (no 07)");
		json_t *st = simproc_get(s, "/_sim/payment/stats");
		is_int(json_integer_value(json_object_get(json_object_get(st, "query_answers"),
							  "bad_signature")),
		       0, "the simulator never saw a request signature it refused");
		json_decref(st);
	}

	e = simday_find(d, 4);
	if (e) {
		run_query(t.c, ref_of(e), when_of(e), &r);
		ok(r.o == CONN_OK && r.verified && r.state == 4,
		   "QUERY of a failed payment: TrangThaiGD 4 (%d, %s)", r.state,
		   r.why ? r.why : "no error");
	} else {
		ok(1, "no failed payment on %s # SKIP", d->day);
	}

	const char *pref = json_string_value(json_array_get(d->pending_refs, 0));
	ok(pref != NULL, "the simulator has a payment pending too long (%s)", pref ? pref : "-");
	if (pref && strlen(pref) > 14) {
		run_query(t.c, pref, pref + strlen(pref) - 14, &r);
		ok(r.o == CONN_OK && r.verified && r.state == 3,
		   "QUERY of a pending payment: TrangThaiGD 3 (%d, %s)", r.state,
		   r.why ? r.why : "no error");
	}

	run_query(t.c, "H31.00000-000000-00000-20250101000000", "20250101000000", &r);
	ok(r.o == CONN_OK && r.verified && r.maloi && !strcmp(r.maloi, "01") && r.state == 4,
	   "QUERY of an unknown payment: MaLoi 01, TrangThaiGD 4 (%s, %d)", r.maloi ? r.maloi : "-",
	   r.state);
	ok(r.amount == -1 && r.magd && !*r.magd, "with no amount and no MaGiaoDich");

	/* A payment whose platform messages are wrongly signed. */
	const char *bref = NULL;
	size_t i;
	json_t *x;
	json_array_foreach (d->items, i, x) {
		if (json_object_get(d->bad, ref_of(x))) {
			bref = ref_of(x);
			e = x;
			break;
		}
	}
	ok(bref != NULL, "the simulator has a bad_signature payment on %s", d->day);
	if (bref) {
		run_query(t.c, bref, when_of(e), &r);
		ok(r.o == CONN_OK && r.answered && !r.verified,
		   "a wrongly signed answer: OK but not verified (%s)",
		   r.sig_why ? r.sig_why
		   : r.why   ? r.why
			     : "verified");
		ok(r.state == 0 && r.amount == -1 && !r.maloi && !r.magd,
		   "and none of its fields are handed over");
		ok(json_is_object(r.raw) &&
			   !strcmp(json_string_value(json_object_get(r.raw, "MaThamChieu")), bref),
		   "only the raw answer, to describe it in a payment.bad_signature mismatch");
		ok(has(r.sig_why, "MaXacThuc"), "saying what is wrong with it (%s)",
		   r.sig_why ? r.sig_why : "-");
	}

	/* The platform answers pending forever (a bad input of the simulator). */
	e = simday_find(d, 1);
	if (e) {
		simproc_post(s, "/_sim/payment",
			     "{\"op\":\"malformed\",\"kind\":\"query_pending\"}");
		run_query(t.c, ref_of(e), when_of(e), &r);
		ok(r.o == CONN_OK && r.verified && r.state == 3,
		   "a platform answering pending: TrangThaiGD 3, for the flow to judge (%d)",
		   r.state);
		simproc_post(s, "/_sim/payment", "{\"op\":\"reset\"}");

		/* An amount as text in the answer: not an answer the flow can use. */
		simproc_post(s, "/_sim/payment", "{\"op\":\"malformed\",\"kind\":\"amount_text\"}");
		run_query(t.c, ref_of(e), when_of(e), &r);
		ok(r.o == CONN_FAIL && has(r.why, "SoTien is text") && has(r.why, ref_of(e)),
		   "an answer with SoTien as text is FAIL naming it (%s)", r.why ? r.why : "ok");
		simproc_post(s, "/_sim/payment", "{\"op\":\"reset\"}");

		/* 503 then success: the HTTP core tries again (QUERY only reads). */
		before = simproc_stat(s, "requests_total");
		simproc_faults(s, "{\"path\":\"" QUERY "\",\"fail_next\":1}");
		run_query(t.c, ref_of(e), when_of(e), &r);
		ok(r.o == CONN_OK && r.verified && r.state == 1, "503 then success: OK (%s)",
		   r.why ? r.why : "no error");
		is_int(simproc_stat(s, "requests_total") - before, 2, "in two attempts");
		simproc_faults(s, "{\"reset\":true}");

		/* A gateway's HTML page: RETRY, after the core's attempts. */
		simproc_faults(s, "{\"path\":\"" QUERY "\",\"malformed_rate\":1}");
		before = simproc_stat(s, "requests_total");
		run_query(t.c, ref_of(e), when_of(e), &r);
		ok(r.o == CONN_RETRY && has(r.why, "not JSON") && has(r.why, ref_of(e)) &&
			   !r.answered,
		   "an answer that is not JSON is RETRY naming the payment (%s)",
		   r.why ? r.why : "ok");
		is_int(simproc_stat(s, "requests_total") - before, 2,
		       "after max_attempts (2) attempts");
		simproc_faults(s, "{\"reset\":true}");

		/* 503 on every attempt. */
		simproc_faults(s, "{\"path\":\"" QUERY "\",\"down\":true}");
		run_query(t.c, ref_of(e), when_of(e), &r);
		ok(r.o == CONN_RETRY && has(r.why, "503"), "503 throughout: RETRY (%s)",
		   r.why ? r.why : "ok");
		simproc_faults(s, "{\"reset\":true}");
	}

	/* Bad arguments fail from the loop. */
	run_query(t.c, "", "20250101000000", &r);
	ok(r.o == CONN_FAIL && has(r.why, "empty"), "an empty MaThamChieu fails (%s)",
	   r.why ? r.why : "ok");
	run_query(t.c, "H31.x", "2025-01-01", &r);
	ok(r.o == CONN_FAIL && has(r.why, "ThoiGianGD"),
	   "a ThoiGianGD not yyyyMMddHHmmss fails (%s)", r.why ? r.why : "ok");

	json_t *stj = conn_paygov.status(t.c);
	ok(json_integer_value(json_object_get(stj, "answers_unverified")) == 1 &&
		   json_integer_value(json_object_get(stj, "queries_retry")) == 2 &&
		   json_integer_value(json_object_get(stj, "queries_failed")) == 3,
	   "status counts queries: 1 not verified, 2 to retry, 3 failed");
	json_decref(stj);
	conntest_conn_free(&t);

	/* A wrong token: 401, FAIL. */
	char *wrong = xasprintf("%s/wrong", ct.dir);
	write_file_atomic(wrong, "not-the-token", 13, 0600);
	keys = xasprintf("url = %s/paygov\ntoken = %s\nkey = %s/key\npartner = " PARTNER "\n",
			 s->url, wrong, ct.dir);
	if (conntest_conn_new(&ct, &t, keys, false, &err) == 0) {
		run_query(t.c, "H31.x-20250101000000", "20250101000000", &r);
		ok(r.o == CONN_FAIL && has(r.why, "401") && has(r.why, "H31.x-20250101000000"),
		   "a wrong token: FAIL naming 401 and the payment (%s)", r.why ? r.why : "ok");
		conntest_conn_free(&t);
	} else {
		ok(0, "a connector with a wrong token (%s)", err);
	}
	free(err);
	err = NULL;
	free(keys);

	/* A wrong key: the platform refuses our MaXacThuc (07), and we cannot verify it. */
	keys = xasprintf("url = %s/paygov\ntoken = %s/token\nkey = %s\npartner = " PARTNER "\n",
			 s->url, ct.dir, wrong);
	if (conntest_conn_new(&ct, &t, keys, false, &err) == 0) {
		run_query(t.c, "H31.x-20250101000000", "20250101000000", &r);
		ok(r.o == CONN_FAIL && has(r.why, "MaLoi 07") && has(r.why, "key"),
		   "a wrong key: FAIL, MaLoi 07, pointing at the key (%s)", r.why ? r.why : "ok");
		conntest_conn_free(&t);
	} else {
		ok(0, "a connector with a wrong key (%s)", err);
	}
	free(err);
	err = NULL;
	free(keys);

	/* Another partner code: the platform refuses the request (02). */
	keys = xasprintf("url = %s/paygov\ntoken = %s/token\nkey = %s/key\npartner = HANOI\n",
			 s->url, ct.dir, ct.dir);
	if (conntest_conn_new(&ct, &t, keys, false, &err) == 0) {
		run_query(t.c, "H31.x-20250101000000", "20250101000000", &r);
		ok(r.o == CONN_FAIL && has(r.why, "MaLoi \"02\""),
		   "a refusal without a state (MaLoi 02) is FAIL (%s)", r.why ? r.why : "ok");
		conntest_conn_free(&t);
	} else {
		ok(0, "a connector with another partner (%s)", err);
	}
	free(err);
	free(keys);
	free(wrong);
	qres_clear(&r);
}

/* ---- the daily list against the simulator --------------------------------- */

/* Whether the MaThamChieu of txs are those of the day minus the bad ones, in order. */
static bool same_refs(const json_t *txs, const struct simday *d)
{
	size_t i, k = 0;
	json_t *e;
	json_array_foreach (d->items, i, e) {
		if (json_object_get(d->bad, ref_of(e)))
			continue;
		if (k >= json_array_size(txs) || strcmp(ref_of(json_array_get(txs, k)), ref_of(e)))
			return false;
		k++;
	}
	return k == json_array_size(txs);
}

static void test_day_list(const struct simproc *s, const struct simday *d)
{
	struct conntest_conn t;
	struct lres r = {0};
	size_t nbad = json_object_size(d->bad), i, want;
	long long before;
	json_t *p;

	if (!conntest_make(&ct, &t, s->url, "page_size = 7\n"))
		return;
	ok(d->n > 14, "%s has %zu transactions, %zu of them wrongly signed", d->day, d->n, nbad);

	before = pay_stat(s, "list_pages");
	run_day(t.c, d->day, &r);
	ok(r.o == CONN_OK, "the day's list is read (%s)", r.why ? r.why : "no error");
	is_int(pay_stat(s, "list_pages") - before, (d->n + 6) / 7,
	       "page by page: %zu pages of 7, nothing more", (d->n + 6) / 7);
	is_int(r.pages, (d->n + 6) / 7, "the completion says how many pages");
	is_str(r.ngay, d->day, "and which day");
	is_int(json_array_size(r.txs), d->n - nbad, "every well-signed transaction");
	ok(same_refs(r.txs, d), "exactly those, each once, in the platform's order");
	bool verify = true;
	json_array_foreach (r.txs, i, p) {
		verify &= ops()->check_tx(t.c, p, NULL) == PAYGOV_TX_OK;
	}
	ok(verify, "each one passes check_tx with the configured key");
	is_int(json_array_size(r.problems), nbad, "the wrongly signed ones are problems");
	is_int(count_class(r.problems, "bad_signature"), nbad, "of class bad_signature");
	bool named = true;
	json_array_foreach (r.problems, i, p) {
		const char *ref = json_string_value(json_object_get(p, "ma_tham_chieu"));
		named &= ref && json_object_get(d->bad, ref) &&
			 has(json_string_value(json_object_get(p, "where")), "page ") &&
			 json_is_object(json_object_get(p, "item"));
	}
	ok(named, "each naming its MaThamChieu (the simulator's bad_signature set), page and item");

	/* Page by page: the same day, handed over as it is read. */
	struct pres pg;
	run_day_pages(t.c, d->day, &r, &pg);
	ok(r.o == CONN_OK && json_array_size(r.txs) == 0 && json_array_size(r.problems) == 0,
	   "day_pages: the completion holds nothing the pages did not give (%s)",
	   r.why ? r.why : "ok");
	ok(pg.pages == (d->n + 6) / 7 && pg.in_order && r.pages == pg.pages,
	   "every page handed over once, in order, before the completion (%u)", pg.pages);
	ok(same_refs(pg.txs, d) && count_class(pg.problems, "bad_signature") == nbad,
	   "together, the pages are the day: the same transactions and problems");
	json_decref(pg.txs);
	json_decref(pg.problems);
	simproc_post(s, "/_sim/payment",
		     "{\"op\":\"malformed\",\"kind\":\"duplicate_row\",\"every\":10}");
	run_day_pages(t.c, d->day, &r, &pg);
	want = 0;
	for (i = 0; i < d->n; i += 10)
		want += !json_object_get(d->bad, ref_of(json_array_get(d->items, i)));
	ok(r.o == CONN_OK && same_refs(pg.txs, d) && count_class(pg.problems, "duplicate") == want,
	   "duplicates are judged across pages (%zu)", want);
	json_decref(pg.txs);
	json_decref(pg.problems);
	simproc_post(s, "/_sim/payment", "{\"op\":\"reset\"}");

	/* Duplicated rows: each a problem, the transactions unchanged. */
	simproc_post(s, "/_sim/payment",
		     "{\"op\":\"malformed\",\"kind\":\"duplicate_row\",\"every\":10}");
	run_day(t.c, d->day, &r);
	want = 0;
	for (i = 0; i < d->n; i += 10)
		want += !json_object_get(d->bad, ref_of(json_array_get(d->items, i)));
	ok(r.o == CONN_OK && same_refs(r.txs, d), "duplicated rows: the list is still whole (%s)",
	   r.why ? r.why : "no error");
	is_int(count_class(r.problems, "duplicate"), want,
	       "every duplicate of a trusted row is a problem (%zu)", want);
	simproc_post(s, "/_sim/payment", "{\"op\":\"reset\"}");

	/* Amounts as text: malformed, never trusted. */
	simproc_post(s, "/_sim/payment",
		     "{\"op\":\"malformed\",\"kind\":\"amount_text\",\"every\":10}");
	run_day(t.c, d->day, &r);
	want = (d->n + 9) / 10;
	ok(r.o == CONN_OK, "amounts as text: the list is read (%s)", r.why ? r.why : "no error");
	is_int(count_class(r.problems, "malformed"), want, "each such row is malformed (%zu)",
	       want);
	size_t trusted_text = 0;
	for (i = 0; i < d->n; i += 10)
		trusted_text += !json_object_get(d->bad, ref_of(json_array_get(d->items, i)));
	is_int(json_array_size(r.txs), d->n - nbad - trusted_text, "and not in the transactions");
	bool text_named = true;
	json_array_foreach (r.problems, i, p) {
		if (!strcmp(json_string_value(json_object_get(p, "class")), "malformed"))
			text_named &=
				has(json_string_value(json_object_get(p, "why")), "SoTien is text");
	}
	ok(text_named, "saying SoTien is text");
	simproc_post(s, "/_sim/payment", "{\"op\":\"reset\"}");

	/* A cut page: RETRY naming the page, no list. */
	simproc_post(s, "/_sim/payment", "{\"op\":\"malformed\",\"kind\":\"truncated\"}");
	before = pay_stat(s, "list_pages");
	run_day(t.c, d->day, &r);
	ok(r.o == CONN_RETRY && has(r.why, "page 1") && has(r.why, "not JSON") && !r.txs,
	   "a cut page is RETRY naming the page, no partial list (%s)", r.why ? r.why : "ok");
	is_int(pay_stat(s, "list_pages") - before, 2, "after max_attempts (2) attempts");
	simproc_post(s, "/_sim/payment", "{\"op\":\"reset\"}");

	/* A 503 in the middle of the day: no partial list either. */
	simproc_faults(s, "{\"path\":\"" LIST "\",\"down\":true}");
	run_day(t.c, d->day, &r);
	ok(r.o == CONN_RETRY && has(r.why, "503") && !r.txs, "503: RETRY (%s)",
	   r.why ? r.why : "ok");
	simproc_faults(s, "{\"reset\":true}");

	/* A day without transactions; a day that is not a date. */
	run_day(t.c, "2001-01-01", &r);
	ok(r.o == CONN_OK && json_array_size(r.txs) == 0 && json_array_size(r.problems) == 0 &&
		   r.pages == 1,
	   "a day without transactions: an empty list in one page (%s)", r.why ? r.why : "ok");
	run_day(t.c, "2025-02-30", &r);
	ok(r.o == CONN_FAIL && has(r.why, "not a day"), "2025-02-30 is not a day (%s)",
	   r.why ? r.why : "ok");

	json_t *stj = conn_paygov.status(t.c);
	ok(json_integer_value(json_object_get(stj, "lists_ok")) == 6 &&
		   json_integer_value(json_object_get(stj, "lists_retry")) == 2 &&
		   json_integer_value(json_object_get(stj, "lists_failed")) == 1 &&
		   json_integer_value(json_object_get(stj, "list_bad_signatures")) >=
			   (json_int_t)nbad,
	   "status counts list reads and bad signatures");
	json_decref(stj);

	/* Freed with a read in flight: nothing is called afterwards. */
	simproc_faults(s, "{\"latency_ms\":100}");
	lres_clear(&r);
	struct qres q = {0};
	ops()->day_list(t.c, d->day, on_day, &r);
	ops()->query(t.c, "H31.x", "20250101000000", on_query, &q);
	simproc_run_for(ct.dmn.ev, 10);
	conntest_conn_free(&t);
	simproc_run_for(ct.dmn.ev, 250);
	ok(r.calls == 0 && q.calls == 0, "after free, no completion reaches the caller");
	is_int(http_core_pending(ct.dmn.http), 0, "and nothing is left in the HTTP core");
	simproc_faults(s, "{\"reset\":true}");
	lres_clear(&r);
	qres_clear(&q);
}

/* ---- the files the simulator exports ------------------------------------ */

/* Exports day as fmt into ct.dir and reads it. Returns the text or NULL. */
static char *export_read(const struct simproc *s, const char *day, const char *fmt, size_t *len)
{
	char *body =
		xasprintf("{\"ngay\":\"%s\",\"format\":\"%s\",\"dir\":\"%s\"}", day, fmt, ct.dir);
	json_t *a = simproc_json(s, "/_sim/payment/export", body);
	const char *path = json_string_value(json_object_get(a, "path"));
	char *text = NULL;

	if (!path || read_file_bounded(path, 64 << 20, &text, len) < 0)
		text = NULL;
	if (path)
		unlink(path);
	json_decref(a);
	free(body);
	return text;
}

/* txs checked with the connector's key: how many are ok and bad_signature. */
static void classify(struct conn *c, const json_t *txs, size_t *good, size_t *bad)
{
	size_t i;
	json_t *t;
	*good = *bad = 0;
	json_array_foreach (txs, i, t) {
		int r = ops()->check_tx(c, t, NULL);
		*good += r == PAYGOV_TX_OK;
		*bad += r == PAYGOV_TX_BAD_SIGNATURE;
	}
}

static void test_files(const struct simproc *s, const struct simday *d)
{
	static const char *const fmts[] = {"csv", "json"};
	struct conntest_conn t;
	json_t *txs = NULL, *pr = NULL;
	size_t nbad = json_object_size(d->bad), good, bad, len;
	char *text;

	if (!conntest_make(&ct, &t, s->url, NULL))
		return;
	for (size_t f = 0; f < 2; f++) {
		enum paygov_format fmt = f ? PAYGOV_JSON : PAYGOV_CSV;

		text = export_read(s, d->day, fmts[f], &len);
		ok(text != NULL, "the simulator exports %s as %s", d->day, fmts[f]);
		if (!text)
			continue;
		paygov_parse_list(text, len, fmt, &txs, &pr);
		is_int(json_array_size(txs), d->n, "%s file: every row read (%zu)", fmts[f], d->n);
		is_int(json_array_size(pr), 0, "%s file: no problem", fmts[f]);
		classify(t.c, txs, &good, &bad);
		ok(good == d->n - nbad && bad == nbad,
		   "%s file: check_tx trusts %zu, refuses the %zu wrongly signed (%zu, %zu)",
		   fmts[f], d->n - nbad, nbad, good, bad);
		json_decref(txs);
		json_decref(pr);
		free(text);

		/* Not UTF-8: every row with an "á" is a problem naming its line, none dropped. */
		simproc_post(s, "/_sim/payment", "{\"op\":\"malformed\",\"kind\":\"not_utf8\"}");
		text = export_read(s, d->day, fmts[f], &len);
		simproc_post(s, "/_sim/payment", "{\"op\":\"reset\"}");
		if (text) {
			paygov_parse_list(text, len, fmt, &txs, &pr);
			ok(json_array_size(txs) + json_array_size(pr) == d->n &&
				   json_array_size(pr) > 0 && prob_line(pr, 0) > 0 &&
				   has(prob_why(pr, 0), "not UTF-8") &&
				   !json_object_get(json_array_get(pr, 0), "cut"),
			   "%s file not UTF-8: %zu rows kept, %zu problems naming their line (%s)",
			   fmts[f], json_array_size(txs), json_array_size(pr),
			   prob_why(pr, 0) ? prob_why(pr, 0) : "-");
			json_decref(txs);
			json_decref(pr);
			free(text);
		}

		/* Cut in half: the rows before the cut kept, in order, the cut named. */
		simproc_post(s, "/_sim/payment", "{\"op\":\"malformed\",\"kind\":\"truncated\"}");
		text = export_read(s, d->day, fmts[f], &len);
		simproc_post(s, "/_sim/payment", "{\"op\":\"reset\"}");
		if (text) {
			bool prefix = true;
			paygov_parse_list(text, len, fmt, &txs, &pr);
			for (size_t i = 0; i < json_array_size(txs); i++)
				prefix &= !strcmp(ref_of(json_array_get(txs, i)),
						  ref_of(json_array_get(d->items, i)));
			ok(json_array_size(txs) > 0 && json_array_size(txs) < d->n && prefix &&
				   json_array_size(pr) == 1 && has(prob_why(pr, 0), "cut") &&
				   json_is_true(json_object_get(json_array_get(pr, 0), "cut")),
			   "%s file cut in half: %zu rows before the cut kept, the cut named and "
			   "flagged \"cut\" (%s)",
			   fmts[f], json_array_size(txs), prob_why(pr, 0) ? prob_why(pr, 0) : "-");
			json_decref(txs);
			json_decref(pr);
			free(text);
		}

		/* Duplicated rows. */
		simproc_post(s, "/_sim/payment",
			     "{\"op\":\"malformed\",\"kind\":\"duplicate_row\",\"every\":10}");
		text = export_read(s, d->day, fmts[f], &len);
		simproc_post(s, "/_sim/payment", "{\"op\":\"reset\"}");
		if (text) {
			paygov_parse_list(text, len, fmt, &txs, &pr);
			ok(json_array_size(txs) == d->n &&
				   count_class(pr, "duplicate") == (d->n + 9) / 10 &&
				   json_array_size(pr) == (d->n + 9) / 10,
			   "%s file with duplicated rows: %zu rows once, %zu duplicates", fmts[f],
			   json_array_size(txs), count_class(pr, "duplicate"));
			json_decref(txs);
			json_decref(pr);
			free(text);
		}
	}
	conntest_conn_free(&t);
}

/* ---- answers the simulator never gives: a scripted server ---------------- */

struct canned {
	pid_t pid;
	char url[64];
};

struct answer {
	const char *status; /* "200 OK" */
	const char *ctype;
	const char *body;
};

/* Serves answers[i] to the i-th request (the last one again after the end). */
static void canned_serve(int lfd, const struct answer *answers, size_t n)
{
	for (size_t k = 0;; k++) {
		const struct answer *a = &answers[k < n ? k : n - 1];
		char buf[8192];
		size_t have = 0, need = 0;
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			_exit(0);
		while (have < sizeof(buf) - 1) {
			ssize_t m = read(fd, buf + have, sizeof(buf) - 1 - have);
			char *end, *cl;
			if (m <= 0)
				break;
			have += (size_t)m;
			buf[have] = '\0';
			end = strstr(buf, "\r\n\r\n");
			if (!end)
				continue;
			cl = strcasestr(buf, "Content-Length:");
			need = (size_t)(end + 4 - buf) +
			       (cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0);
			if (have >= need)
				break;
		}
		char *head = xasprintf("HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
				       "Connection: close\r\n\r\n",
				       a->status, a->ctype, strlen(a->body));
		ssize_t w = write(fd, head, strlen(head));
		w = write(fd, a->body, strlen(a->body));
		(void)w;
		free(head);
		close(fd);
	}
}

static int canned_start(struct canned *k, const struct answer *answers, size_t n)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(k, 0, sizeof(*k));
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	snprintf(k->url, sizeof(k->url), "http://127.0.0.1:%u", ntohs(a.sin_port));
	k->pid = fork();
	if (k->pid == 0)
		canned_serve(fd, answers, n);
	close(fd);
	return k->pid > 0 ? 0 : -errno;
}

static void canned_stop(struct canned *k)
{
	if (k->pid > 0) {
		kill(k->pid, SIGTERM);
		waitpid(k->pid, NULL, 0);
	}
	k->pid = 0;
}

/* A connector on a scripted server; keys: url, credentials and extra. */
static bool canned_conn(struct canned *k, const struct answer *answers, size_t n,
			struct conntest_conn *t, const char *extra)
{
	char *keys, *err = NULL;
	int r;

	if (canned_start(k, answers, n) < 0) {
		ok(0, "a scripted server starts (%s)", strerror(errno));
		return false;
	}
	keys = xasprintf("url = %s\ntoken = %s/token\nkey = %s/key\npartner = " PARTNER "\n"
			 "list_path = /list\nquery_path = /query\nmax_attempts = 2\n"
			 "backoff_base = 5ms\nbackoff_cap = 10ms\nbreaker_failures = 0\n%s",
			 k->url, ct.dir, ct.dir, extra ? extra : "");
	r = conntest_conn_new(&ct, t, keys, false, &err);
	if (r < 0) {
		ok(0, "a connector on the scripted server (%s)", err);
		canned_stop(k);
	}
	free(err);
	free(keys);
	return r == 0;
}

/* A QUERY answer for ref, signed with KEY, as text (caller frees). */
static char *answer_text(const char *ref, int state, const char *maloi)
{
	char mac[PAYGOV_MAC_HEX_LEN + 1];
	json_t *a = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:i}",
			      "LoaiBanTin", "QUERY", "MaLoi", maloi, "MaDoiTac", PARTNER,
			      "MaThamChieu", ref, "SoTien", (json_int_t)530000, "MaTienTe", "704",
			      "MaGiaoDich", "G-1", "MaNganHang", "VCB", "ThoiGianGD",
			      "20250602145336", "ThongTinGiaoDich", "x", "TrangThaiGD", state);
	char *text;
	paygov_msg_mac(a, PAYGOV_MSG_QUERY_ANSWER, KEY, mac, NULL);
	json_object_set_new(a, "MaXacThuc", json_string(mac));
	text = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	return text;
}

/* A list page of the given transactions (signed with KEY), text (caller frees). */
static char *page_text(json_t *items, const char *next, bool more)
{
	json_t *p =
		json_pack("{s:o, s:s, s:b}", "items", items, "next_cursor", next, "has_more", more);
	char *text = json_dumps(p, JSON_COMPACT);
	json_decref(p);
	return text;
}

static void test_canned(void)
{
	const char *ref = "H31.12526-250602-00001-20250602145336";
	struct conntest_conn t;
	struct canned k;
	struct qres q = {0};
	struct lres r = {0};
	char *ok_answer = answer_text(ref, 1, "00");
	char *other = answer_text("H31.other-20250602145336", 1, "00");

	/* 500 then a success. */
	struct answer a500[] = {
		{"500 Internal Server Error", "application/json", "{\"error\":\"internal\"}"},
		{"200 OK", "application/json", ok_answer},
	};
	if (canned_conn(&k, a500, 2, &t, NULL)) {
		run_query(t.c, ref, "20250602145336", &q);
		ok(q.o == CONN_OK && q.verified && q.state == 1 && q.amount == 530000,
		   "500 then a signed success: OK, verified (%s)", q.why ? q.why : "no error");
		conntest_conn_free(&t);
		canned_stop(&k);
	}
	static const struct {
		const char *body, *want;
	} qbad[] = {
		{"[1]", "the answer is a list, not an object"},
		{"{\"LoaiBanTin\":\"QUERY\"}", "MaLoi is missing"},
		{"{\"LoaiBanTin\":\"CONFIRM\",\"MaLoi\":\"00\"}", "LoaiBanTin is \"CONFIRM\""},
	};
	for (size_t i = 0; i < LT_ARRAY_SIZE(qbad) + 1; i++) {
		struct answer one = {"200 OK", "application/json",
				     i < LT_ARRAY_SIZE(qbad) ? qbad[i].body : other};
		const char *want = i < LT_ARRAY_SIZE(qbad) ? qbad[i].want : "another payment";
		if (!canned_conn(&k, &one, 1, &t, NULL))
			continue;
		run_query(t.c, ref, "20250602145336", &q);
		ok(q.o == CONN_FAIL && has(q.why, want) && !q.answered, "%.40s: FAIL (%s)",
		   one.body, q.why ? q.why : "ok");
		conntest_conn_free(&t);
		canned_stop(&k);
	}

	/* List pages of the wrong shape: FAIL naming the page, no list. */
	static const struct {
		const char *body, *want;
	} shapes[] = {
		{"[1,2,3]", "the answer is a list, not an object"},
		{"{\"items\":{},\"next_cursor\":\"5\"}", "\"items\" is an object, not a list"},
		{"{\"items\":[]}", "\"next_cursor\" is absent"},
		{"{\"items\":[],\"next_cursor\":null}", "\"next_cursor\" is null"},
		{"{\"items\":[],\"next_cursor\":\"5\",\"has_more\":\"yes\"}",
		 "\"has_more\" is a string, not a boolean"},
		{"{\"items\":[],\"next_cursor\":\"\",\"has_more\":true}", "does not move"},
	};
	for (size_t i = 0; i < LT_ARRAY_SIZE(shapes); i++) {
		struct answer one = {"200 OK", "application/json", shapes[i].body};
		if (!canned_conn(&k, &one, 1, &t, NULL))
			continue;
		run_day(t.c, "2025-06-02", &r);
		ok(r.o == CONN_FAIL && has(r.why, "page 1") && has(r.why, shapes[i].want) && !r.txs,
		   "%s: FAIL naming the page (%s)", shapes[i].body, r.why ? r.why : "ok");
		conntest_conn_free(&t);
		canned_stop(&k);
	}

	/* Page 1 good, page 2 a gateway's page: the whole read is RETRY, no partial list. */
	json_t *items = json_array();
	json_array_append_new(items, tx_new(ref, "G-1", 530000, 1, "20250602145336", KEY));
	char *p1 = page_text(items, "1", true);
	struct answer broken[] = {
		{"200 OK", "application/json", p1},
		{"200 OK", "text/html", "<html><body>502 Bad Gateway</body></html>"},
	};
	if (canned_conn(&k, broken, 2, &t, NULL)) {
		run_day(t.c, "2025-06-02", &r);
		ok(r.o == CONN_RETRY && has(r.why, "page 2") && has(r.why, "not JSON") &&
			   has(r.why, "text/html") && !r.txs,
		   "page 2 broken: RETRY naming page 2, no partial list (%s)",
		   r.why ? r.why : "ok");
		conntest_conn_free(&t);
		canned_stop(&k);
	}
	free(p1);

	/* Rows of another day or partner, signed as they are: problems, not transactions. */
	items = json_array();
	json_array_append_new(items, tx_new(ref, "G-1", 530000, 1, "20250602145336", KEY));
	json_array_append_new(
		items, tx_new("H31.y-20250603000001", "G-2", 10000, 1, "20250603000001", KEY));
	json_t *o = tx_new("H31.z-20250602000001", "G-3", 10000, 1, "20250602000001", NULL);
	json_object_set_new(o, "MaDoiTac", json_string("HANOI"));
	resign(o, KEY);
	json_array_append_new(items, o);
	json_array_append_new(items, json_integer(7));
	p1 = page_text(items, "4", false);
	struct answer mixed = {"200 OK", "application/json", p1};
	if (canned_conn(&k, &mixed, 1, &t, NULL)) {
		run_day(t.c, "2025-06-02", &r);
		ok(r.o == CONN_OK && json_array_size(r.txs) == 1 &&
			   json_array_size(r.problems) == 3,
		   "1 transaction, 3 problems (%s)", r.why ? r.why : "no error");
		ok(has(prob_why(r.problems, 0), "not on the day asked for") &&
			   has(prob_why(r.problems, 1), "MaDoiTac is \"HANOI\"") &&
			   has(prob_why(r.problems, 2), "not a transaction"),
		   "another day, another partner, a number: each said (%s / %s / %s)",
		   prob_why(r.problems, 0) ? prob_why(r.problems, 0) : "-",
		   prob_why(r.problems, 1) ? prob_why(r.problems, 1) : "-",
		   prob_why(r.problems, 2) ? prob_why(r.problems, 2) : "-");
		is_str(json_string_value(json_object_get(json_array_get(r.problems, 2), "where")),
		       "page 1, item 4", "a problem names its page and item");
		conntest_conn_free(&t);
		canned_stop(&k);
	}
	free(p1);
	free(ok_answer);
	free(other);
	qres_clear(&q);
	lres_clear(&r);
}

int main(void)
{
	struct simproc s;
	struct simday d = {0};
	struct conntest_log lg = {0};
	char *logged;
	const char *args[] = {"--seed",	      "5", "--dossiers", "1000", "--paygov-token", TOKEN,
			      "--paygov-key", KEY, NULL};

	signal(SIGPIPE, SIG_IGN);
	test_mac_vectors();
	test_verify();
	test_msg();
	test_check_tx();
	test_csv_good();
	test_csv_bad();
	test_json_file();
	test_problem_cap();

	/* everything logged at debug goes to a file, checked for the secrets at the end */
	conntest_log_start(&lg, "paygov");
	log_setup(LOG_TARGET_STDERR, LOG_DEBUG);
	if (conntest_start(&ct, "paygov", "paygov", "platform", keys_for) < 0)
		return 1;
	conntest_write(&ct, "token", TOKEN "\n");
	conntest_write(&ct, "key", KEY "\n");

	test_config();
	test_canned();
	if (simproc_start(&s, "test_paygov", args) == 0) {
		if (simday_get(&s, &d)) {
			test_query(&s, &d);
			test_day_list(&s, &d);
			test_files(&s, &d);
		} else {
			ok(0, "the simulator serves a day of payments (/_sim/payment/stats)");
		}
	} else {
		ok(0, "the simulator starts ($BUILD/lienthong-sim)");
	}
	simday_free(&d);
	simproc_stop(&s);
	conntest_stop(&ct);

	logged = conntest_log_end(&lg, "list of");
	if (logged) {
		ok(!has(logged, TOKEN), "the token is never logged");
		ok(!has(logged, KEY), "the key is never logged");
	}
	free(logged);
	return tap_done();
}
