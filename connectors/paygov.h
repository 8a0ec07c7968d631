/*
 * paygov: the connector to the national online payment platform (nền tảng
 * thanh toán trực tuyến), for the payment flow (payment-spec §1-§2,
 * shared/domain/INTERFACES.md §4). Its typed interface is
 * `const struct paygov_ops *` in conn->type->ext.
 *
 * Two requests: QUERY (what became of one payment attempt, by MaThamChieu)
 * and the daily transaction list (every page of one day). Every message is
 * signed with MaXacThuc, a plain SHA-256 over its fields and the partner's
 * secret key; a message that does not verify is never trusted: it is handed
 * over only to be described in a payment.bad_signature mismatch.
 *
 * The message functions below are pure (no I/O, no connector): the MAC, its
 * constant-time verification, the check of one list transaction, and the
 * reader of the list's file forms (JSON, CSV), shared by the HTTP pages and
 * by the files dropped for provinces on segregated networks.
 */
#ifndef LT_PAYGOV_H
#define LT_PAYGOV_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "connector.h"

/* MaXacThuc: lowercase hex SHA-256. */
#define PAYGOV_MAC_HEX_LEN 64
/* Longest text of one field accepted in a message or a list row. */
#define PAYGOV_MAX_FIELD_BYTES 2048
/* Longest cursor of the daily list accepted, given or answered. */
#define PAYGOV_MAX_CURSOR_BYTES 512
/* Most problems listed one by one for one read; past it they are counted. */
#define PAYGOV_MAX_PROBLEMS 10000
/* Most pages one daily list read may take (page_size 5000: 500 million). */
#define PAYGOV_MAX_PAGES 100000

/* The signed messages (payment-spec §1), each with its own field order. */
enum paygov_msg {
	PAYGOV_MSG_QUERY = 0,	     /* QUERY request */
	PAYGOV_MSG_QUERY_ANSWER = 1, /* QUERY answer */
	PAYGOV_MSG_CONFIRM = 2,	     /* a transaction of the daily list */
};

/* Verdicts of paygov_verify and paygov_msg_verify (0: it verifies). */
enum paygov_sig {
	PAYGOV_SIG_OK = 0,
	PAYGOV_SIG_MISSING = 1,	  /* no MaXacThuc (absent, null or empty) */
	PAYGOV_SIG_MALFORMED = 2, /* MaXacThuc is not 64 lowercase hex characters */
	PAYGOV_SIG_MISMATCH = 3,  /* it does not verify with the key */
	PAYGOV_SIG_FIELD = 4,	  /* a signed field is neither text, an integer nor null */
};

/* Classes of paygov_check_tx (0: the transaction can be trusted). */
enum paygov_check {
	PAYGOV_TX_OK = 0,
	PAYGOV_TX_BAD_SIGNATURE = 1, /* MaXacThuc missing, malformed or not verifying */
	PAYGOV_TX_MALFORMED = 2,     /* not the shape of a transaction */
};

/* "ok", "bad_signature", "malformed" (what problems carry as "class"); "?" otherwise. */
const char *paygov_check_name(int check);

/* File forms of the daily list (payment-spec §2). */
enum paygov_format {
	PAYGOV_JSON = 0, /* {"ngay": "YYYY-MM-DD", "items": [TX...]} */
	PAYGOV_CSV = 1,	 /* RFC 4180, header line of field names, optional BOM */
};

/*
 * MaXacThuc of fields[0..n) (each text as signed; NULL counts as "", an
 * absent or null field) with key appended: the lowercase hex SHA-256 of
 * "f1|f2|...|fn|key" into out_hex (64 characters and a NUL). A plain hash,
 * not an HMAC (payment-spec §1). Returns 0, -EINVAL (NULL key or out_hex),
 * or -EIO when the digest fails.
 */
int paygov_mac(const char *const *fields, size_t n, const char *key,
	       char out_hex[PAYGOV_MAC_HEX_LEN + 1]);

/*
 * Whether mac is the MaXacThuc of fields[0..n) with key. The comparison
 * takes the same time wherever the first difference is. Returns
 * PAYGOV_SIG_OK (0), PAYGOV_SIG_MISSING (mac NULL or ""),
 * PAYGOV_SIG_MALFORMED (not exactly 64 characters of [0-9a-f]: uppercase
 * hex is refused too), PAYGOV_SIG_MISMATCH, or negative as paygov_mac.
 */
int paygov_verify(const char *const *fields, size_t n, const char *key, const char *mac);

/*
 * The same for a JSON message of kind: the fields in kind's order, each a
 * string as it is, an integer in decimal, absent or null as "". A field of
 * another type (a real, a boolean, an object, a list) or a string holding
 * a NUL cannot be signed text: paygov_msg_mac returns PAYGOV_SIG_FIELD and
 * paygov_msg_verify does too, with *why naming the field (caller frees;
 * why may be NULL). paygov_msg_verify reads "MaXacThuc" of msg and sets
 * *why for every verdict but PAYGOV_SIG_OK. Returns as paygov_verify;
 * -EINVAL when msg is not an object.
 */
int paygov_msg_mac(const json_t *msg, enum paygov_msg kind, const char *key,
		   char out_hex[PAYGOV_MAC_HEX_LEN + 1], char **why);
int paygov_msg_verify(const json_t *msg, enum paygov_msg kind, const char *key, char **why);

/*
 * Classifies one transaction of the daily list (a signed confirmation plus
 * the unsigned MaHoSo and ThoiGianCapNhat, payment-spec §2):
 *
 * PAYGOV_TX_MALFORMED: not an object; a field of the wrong type (an amount
 *   as text "150.000" or a real, TrangThaiGD as text, ...) or value
 *   (LoaiBanTin not "CONFIRM", MaTienTe not "704", TrangThaiGD not 1, 3 or
 *   4, a success without MaLoi "00" or MaGiaoDich, ThoiGianGD or
 *   ThoiGianCapNhat not a yyyyMMddHHmmss time, an empty MaThamChieu or
 *   MaDoiTac, a field longer than PAYGOV_MAX_FIELD_BYTES). The shape is
 *   judged first, so that a malformed row is called malformed whatever its
 *   signature says.
 * PAYGOV_TX_BAD_SIGNATURE: well-formed, but MaXacThuc is missing, not 64
 *   lowercase hex characters, or does not verify with key.
 * PAYGOV_TX_OK: it can be trusted.
 *
 * *why (caller frees) says what is wrong for the first two, naming the
 * field; NULL for OK. why may be NULL. Returns the class, or -EINVAL (tx or
 * key NULL) or -EIO (digest failure) with *why NULL.
 */
int paygov_check_tx(const json_t *tx, const char *key, char **why);

/*
 * Reads the daily list in one of its file forms from text[0, len) (need
 * not be NUL-terminated). Never stops at the first bad row: every row that
 * is a transaction in shape goes into *txs (a new array; rows in file
 * order, CSV values typed as in the JSON form: SoTien and TrangThaiGD
 * integers, the rest text, unknown columns kept as text), and everything
 * else becomes one entry of *problems (a new array), in order, each
 *
 *   {"class": "malformed" | "duplicate",
 *    "where": "line 12 (row 11)" (CSV: the line the row starts on, and
 *             its number among the data rows) | "item 7 (line 9)" (JSON)
 *             | "line 3" (the file from there on) | "the file",
 *    "line": 12 (when known),
 *    "why": "SoTien \"150.000\" is not a whole number of VND",
 *    "item": the row as read (an object of the CSV row's fields by header
 *            name, the JSON item, or a bounded excerpt of the raw text),
 *    "ma_tham_chieu": ..., "ma_giao_dich": ... (text, when the row has them),
 *    "cut": true (only when the rows from there on are unknown: the file
 *           ends inside a row or item, or the problem is the file's own —
 *           its shape, its header — not one row's: the list is incomplete)}
 *
 * Problems: a file that is not the list's shape (then no rows); a CSV
 * header that lacks a signed field or MaXacThuc, or names one twice; a row
 * with bytes that are not UTF-8 (or a NUL); a row with more or fewer fields
 * than the header, a bad quote; a cut file (a quoted field or a JSON item
 * not closed at the end, a last CSV line without end of line whose fields
 * or MaXacThuc are incomplete); a row failing the shape of paygov_check_tx
 * (an amount as text, ...); a row with the MaThamChieu and MaGiaoDich of
 * an earlier one ("duplicate": the first is kept). Blank CSV lines are not
 * rows. After PAYGOV_MAX_PROBLEMS problems, the rest are counted in one
 * last problem. Signatures are not checked here (no key): run
 * paygov_check_tx on each transaction.
 *
 * Returns 0 (also when there are problems), or -EINVAL (text NULL with
 * len > 0, txs or problems NULL, unknown fmt) with nothing set.
 */
int paygov_parse_list(const char *text, size_t len, enum paygov_format fmt, json_t **txs,
		      json_t **problems);

/* ---- the connector ---------------------------------------------------- */

/*
 * A QUERY answer. verified: its MaXacThuc verified with the key; only then
 * are the fields set (ma_loi, trang_thai, ...). Otherwise they are NULL / 0
 * / -1, why says what is wrong with the signature, and raw is all there is:
 * for describing it in a payment.bad_signature mismatch, nothing else.
 * Everything is borrowed for the callback's duration.
 */
struct paygov_answer {
	bool verified;
	const char *ma_loi;	   /* MaLoi: "00" success, "01" unknown MaThamChieu */
	int trang_thai;		   /* TrangThaiGD: 1 success, 3 pending, 4 failed; 0 absent */
	const char *ma_tham_chieu; /* MaThamChieu, as asked */
	const char *ma_giao_dich;  /* MaGiaoDich, "" when absent */
	const char *ma_ngan_hang;  /* MaNganHang, "" when absent */
	int64_t so_tien;	   /* SoTien in VND, -1 when absent */
	const char *thoi_gian_gd;  /* ThoiGianGD yyyyMMddHHmmss, "" when absent */
	const char *why;	   /* !verified: why the answer is not trusted */
	json_t *raw;		   /* the answer as received */
};

/*
 * Completion of query. CONN_OK: a is the answer (verified or not). Else a
 * is NULL and why says what went wrong, naming the MaThamChieu:
 * CONN_RETRY for transport errors, 5xx, 429 and an answer that is not JSON
 * (a gateway's HTML page, a cut body), after the HTTP core's attempts;
 * CONN_FAIL for other 4xx (401: the token), an answer that is not an
 * object or not the shape of a QUERY answer; a verified answer for
 * another MaThamChieu or partner, or one refusing the request (a MaLoi
 * other than "00" without TrangThaiGD: "02" a bad request); and MaLoi "07"
 * (the platform did not accept our MaXacThuc: key or partner is wrong),
 * verified or not. An answer that does not verify is CONN_OK with
 * a->verified false, whatever it says.
 */
typedef void (*paygov_query_cb)(struct conn *c, enum conn_outcome o, const struct paygov_answer *a,
				const char *why, void *ud);

/*
 * One day of the platform's list. txs: every transaction that verified,
 * is well-formed, belongs to the partner and to the day (ThoiGianGD),
 * each (MaThamChieu, MaGiaoDich) once, in the platform's order. problems:
 * everything else the platform served, as for paygov_parse_list, with
 * classes "malformed", "duplicate" and "bad_signature" and where "page 3,
 * item 17". Both arrays are borrowed for the callback's duration.
 */
struct paygov_day {
	const char *ngay; /* YYYY-MM-DD, as asked */
	json_t *txs;
	json_t *problems;
	unsigned pages;
};

/*
 * Completion of day_list. CONN_OK: day is the whole day. Else day is NULL
 * and why names the page: a partial list is never reported as the list.
 */
typedef void (*paygov_day_cb)(struct conn *c, enum conn_outcome o, const struct paygov_day *day,
			      const char *why, void *ud);

/*
 * One page of day_pages, as judged: txs and problems as for paygov_day but
 * of this page only (duplicates are judged across the whole day); pages is
 * the page's number from 1. Borrowed for the callback's duration.
 */
typedef void (*paygov_page_cb)(struct conn *c, const struct paygov_day *page, void *ud);

struct paygov_ops {
	/*
	 * QUERY (payment-spec §2): POST {query_path} with a signed request
	 * for ma_tham_chieu (1..PAYGOV_MAX_FIELD_BYTES bytes, no control
	 * characters) and thoi_gian_gd (yyyyMMddHHmmss: when the attempt was
	 * made), the answer verified. A QUERY only reads, so the HTTP core
	 * may send it again after a 5xx. Bad arguments fail from the loop.
	 * Returns 0, or negative (nothing will be called).
	 */
	int (*query)(struct conn *c, const char *ma_tham_chieu, const char *thoi_gian_gd,
		     paygov_query_cb done, void *ud);
	/*
	 * Every page of the list of day (YYYY-MM-DD): GET
	 * {list_path}?ngay=D&cursor=C&limit={page_size} from the empty cursor
	 * until has_more is false, one page after the other, each item
	 * checked with paygov_check_tx. CONN_FAIL: a 4xx; a page that is not
	 * an object, whose "items" is not a list, whose "next_cursor" is
	 * missing, not text/number or longer than PAYGOV_MAX_CURSOR_BYTES, or
	 * whose "has_more" is not a boolean; a page that does not move past
	 * its cursor; more than PAYGOV_MAX_PAGES pages. CONN_RETRY: transport
	 * errors, 5xx, 429, an answer that is not JSON (a cut page), after
	 * the HTTP core's attempts. A day that is not a date fails from the
	 * loop. Returns 0, or negative (nothing will be called).
	 */
	int (*day_list)(struct conn *c, const char *day, paygov_day_cb done, void *ud);
	/*
	 * The same read, handing each page over as it is judged (page, on the
	 * loop, before the next page is asked for) instead of holding the
	 * whole day: memory stays that of one page whatever the day's size.
	 * done ends it as for day_list, its txs and problems holding only
	 * what no page did (the count of problems past PAYGOV_MAX_PROBLEMS);
	 * CONN_OK means every page was handed over and the day is whole.
	 * After a failure the pages already handed over are a part of the
	 * day, not the day.
	 */
	int (*day_pages)(struct conn *c, const char *day, paygov_page_cb page, paygov_day_cb done,
			 void *ud);
	/*
	 * paygov_check_tx with the instance's key, for transactions read from
	 * files (the key never leaves the connector). Returns as
	 * paygov_check_tx; -EINVAL when c is not a paygov instance (a check-only
	 * one will do: the key is read from its options).
	 */
	int (*check_tx)(struct conn *c, const json_t *tx, char **why);
};

extern const struct connector conn_paygov;

#endif
