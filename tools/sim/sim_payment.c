/*
 * sim_payment.c: online fee payment as the simulator plays it
 * (notes/payment-spec.md §2-§4): the national payment platform, the
 * province's fee records, and the seeded discrepancies between them that a
 * reconciler must find:
 *
 *   POST /paygov/api/v1/query                       QUERY request -> signed QUERY answer
 *   GET  /paygov/api/v1/giao-dich?ngay=&cursor=&limit=
 *        -> {"items":[TX...],"next_cursor":"C2","has_more":bool}
 *   GET  /provincial/api/v1/le-phi?ngay=&cursor=&limit=
 *        -> {"items":[FEE...],"next_cursor":"C2","has_more":bool}
 *   GET  /_sim/payment/expected[?ngay=]   -> {"ngay","classes":{class:[key...]},"counts"}
 *   GET  /_sim/payment/stats              -> requests served, records, quota, bad inputs
 *   POST /_sim/payment/export  {"ngay","format":"json"|"csv","dir"} -> the day as a file
 *   POST /_sim/payment  {"op":"malformed","kind":K[,"on":bool][,"every":N]} | {"op":"reset"}
 *
 * The records come from the dossier stream (sim_dossier.c): it reports
 * every dossier with fees through sim_payment_dossier(), in index order.
 * A dossier paying online makes one attempt on the day it was received (a
 * platform transaction and a provincial record that agree), one paying at
 * the desk a provincial record only. The discrepancies are drawn among the
 * dossiers of the first --dossiers (the initial window), Q of each class:
 * portal_without_fee while the stream plans (it changes what the feed
 * shows, so it must be known before the dossier's first change is
 * rendered), the others when this module starts, after the stream has
 * planned the whole window. Later dossiers (POST /_sim/feed) pay cleanly.
 *
 * Platform messages carry MaXacThuc, the lowercase hex SHA-256 of their
 * signed fields joined by '|' with the partner's key (--paygov-key) last.
 *
 * Records are kept in arrays that only grow, with per-day index lists in
 * creation order, so a day's list is a log: a cursor (the number of the
 * day's items already read) stays valid while the list grows. One mutex
 * guards everything; it is taken after the generator's (the stream calls
 * in with its lock held) and never the other way round.
 */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jsontext.h"
#include "sim_payment.h"
#include "util.h"

#define QUERY_PATH  "/paygov/api/v1/query"
#define LIST_PATH   "/paygov/api/v1/giao-dich"
#define FEE_PATH    "/provincial/api/v1/le-phi"
#define PARTNER	    "HUNGYEN"
#define MSG_VERSION "1.0.6"
#define CURRENCY    "704"

#define DEFAULT_LIMIT 1000
#define MAX_LIMIT     5000
#define MAHOSO_MAX    40  /* codes are at most 26 bytes */
#define REF_MAX	      64  /* maHoSo "-" yyyyMMddHHmmss */
#define ECHO_MAX      128 /* longest MaThamChieu echoed back */
#define DIR_MAX	      512
#define PENDING_AGE_S (3 * 86400) /* pending_too_long: attempts at least this old */
#define WINDOW_PWF    8		  /* portal_without_fee slots in the first 8/10 of the window */

#define VN_OFFSET_S (7 * 3600)
#define DAY_S	    86400

/* ---- classes, records ------------------------------------------------------- */

/* What happens to a dossier's payment; the classes of spec §4 plus matched. */
enum pclass {
	PC_DESK = 0, /* paid at the desk: a provincial record only, no class */
	PC_MATCHED,
	PC_PLATFORM_ONLY,
	PC_LOCAL_ONLY,
	PC_AMOUNT_DIFFERS,
	PC_PAID_TWICE,
	PC_PENDING_TOO_LONG,
	PC_BAD_SIGNATURE,
	PC_PORTAL_WITHOUT_FEE,
	PC_UNKNOWN_DOSSIER,
	PC__COUNT,
};

static const char *const class_names[PC__COUNT] = {
	NULL,	      "matched",	  "platform_only", "local_only",	 "amount_differs",
	"paid_twice", "pending_too_long", "bad_signature", "portal_without_fee", "unknown_dossier",
};

/* A dossier with fees, as reported by the stream. */
struct entry {
	char mahoso[MAHOSO_MAX];
	uint64_t index;
	int64_t received, t1; /* t1: the online attempt */
	int64_t amount;
	uint8_t kenh;
	uint8_t cls;	   /* enum pclass */
	uint8_t variant;   /* which half (or third) of its class */
	uint8_t n_unknown; /* unknown_dossier transactions made beside it */
};

/* How a transaction's MaXacThuc is wrong (bad_signature), if it is. */
enum sig { SIG_OK, SIG_WRONG_KEY, SIG_UPPERCASE, SIG_MISSING };

/* A platform transaction. MaThamChieu is mahoso "-" yyyyMMddHHmmss of t. */
struct tx {
	char mahoso[MAHOSO_MAX];
	int64_t t, updated, amount;
	uint64_t magd; /* the last 10 digits of MaGiaoDich */
	uint8_t state; /* TrangThaiGD 1, 3, 4 */
	uint8_t sig;   /* enum sig */
	uint8_t bank;
};

enum fee_state { FS_PAID, FS_UNPAID, FS_WAITING };
static const char *const fee_states[] = {"DA_THANH_TOAN", "CHUA_THANH_TOAN", "CHO_XAC_NHAN"};
enum fee_form { FF_ONLINE, FF_CASH, FF_TRANSFER };
static const char *const fee_forms[] = {"TRUC_TUYEN", "TIEN_MAT", "CHUYEN_KHOAN"};

/* A provincial fee record. maThamChieu is mahoso "-" yyyyMMddHHmmss of ref_t, null for 0. */
struct fee {
	char mahoso[MAHOSO_MAX];
	int64_t ref_t, t, amount;
	uint8_t state, form;
};

/* An item of /_sim/payment/expected: the key of a tx's, a fee's or (portal_without_fee) maHoSo. */
struct xitem {
	uint8_t cls;
	bool of_fee;
	uint32_t idx;
};

/* One day's records, in creation order (indices into P.txs, P.fees). */
struct pday {
	uint32_t *tx, *fee;
	size_t n_tx, cap_tx, n_fee, cap_fee;
	struct xitem *x;
	size_t n_x, cap_x;
};

/* Bad inputs (spec §4), each off by default. */
enum mal {
	MAL_AMOUNT_TEXT,
	MAL_DUPLICATE_ROW,
	MAL_TRUNCATED,
	MAL_NOT_UTF8,
	MAL_QUERY_PENDING,
	MAL__COUNT
};
static const char *const mal_names[MAL__COUNT] = {"amount_text", "duplicate_row", "truncated",
						  "not_utf8", "query_pending"};

/* QUERY outcomes, for the stats. */
enum qa {
	QA_SUCCESS,
	QA_PENDING,
	QA_FAILED,
	QA_UNKNOWN,
	QA_BAD_SIGNATURE,
	QA_BAD_REQUEST,
	QA__COUNT
};
static const char *const qa_names[QA__COUNT] = {"success", "pending",	    "failed",
						"unknown", "bad_signature", "bad_request"};

#define GROW(arr, n, cap)                                                                          \
	do {                                                                                       \
		if ((n) == (cap)) {                                                                \
			(cap) = (cap) ? (cap)*2 : 64;                                              \
			(arr) = sim_xrealloc((arr), (cap) * sizeof(*(arr)));                       \
		}                                                                                  \
	} while (0)

static struct {
	pthread_mutex_t lock;
	bool configured;    /* quota and n_initial set */
	bool ready;	    /* init done: new dossiers are recorded at once */
	bool closed;	    /* fini done: the stream may still run (rate), nothing is kept */
	unsigned quota;	    /* Q: discrepancies of each class in the initial window */
	uint64_t n_initial; /* --dossiers */
	int64_t now;	    /* "now" of the stream */

	struct entry *pending; /* the initial window, until init */
	size_t n_pending, cap_pending;
	unsigned pwf_taken;  /* portal_without_fee assigned so far */
	unsigned n_unknown;  /* unknown_dossier transactions made */
	uint64_t n_dossiers; /* dossiers with fees reported */

	struct tx *txs;
	size_t n_tx, cap_tx;
	struct fee *fees;
	size_t n_fee, cap_fee;
	struct sim_map *days; /* "YYYY-MM-DD" -> struct pday */
	struct sim_map *refs; /* MaThamChieu -> tx index + 1 */
	unsigned counts[PC__COUNT];

	unsigned mal[MAL__COUNT]; /* 0 off; else on, for every mal-th item where that applies */
	uint64_t queries[QA__COUNT];
	uint64_t list_pages, list_items, fee_pages, fee_items, exports;
} P = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ---- time -------------------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Days since 1970-01-01 of t in +07:00. */
static int64_t day_of(int64_t t)
{
	return floor_div(t + VN_OFFSET_S, DAY_S);
}

/* The last second of t's day (+07:00). */
static int64_t day_last(int64_t t)
{
	return (day_of(t) + 1) * DAY_S - VN_OFFSET_S - 1;
}

static void fmt_tm(int64_t local, const char *fmt, char *out, size_t len)
{
	time_t tt = (time_t)local;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(out, len, fmt, &tm) == 0)
		snprintf(out, len, "%s", "");
}

/* yyyyMMddHHmmss (+07:00) into out (15 bytes). */
static void fmt14(int64_t t, char *out)
{
	fmt_tm(t + VN_OFFSET_S, "%Y%m%d%H%M%S", out, 15);
}

/* yyyy-MM-ddTHH:mm:ss+07:00 into out (26 bytes). */
static void fmt_iso(int64_t t, char *out)
{
	fmt_tm(t + VN_OFFSET_S, "%Y-%m-%dT%H:%M:%S+07:00", out, 26);
}

/* YYYY-MM-DD of t's day into out (11 bytes). */
static void fmt_day(int64_t t, char *out)
{
	fmt_tm(t + VN_OFFSET_S, "%Y-%m-%d", out, 11);
}

/* True when s is a valid date YYYY-MM-DD (the key of a day). */
static bool day_valid(const char *s)
{
	struct tm tm = {0};
	char back[11];

	if (s == NULL || strlen(s) != 10 || strspn(s, "0123456789-") != 10 || s[4] != '-' ||
	    s[7] != '-')
		return false;
	tm.tm_year = atoi(s) - 1900;
	tm.tm_mon = atoi(s + 5) - 1;
	tm.tm_mday = atoi(s + 8);
	if (tm.tm_year < 70 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1)
		return false;
	fmt_tm((int64_t)timegm(&tm), "%Y-%m-%d", back, sizeof(back));
	return strcmp(back, s) == 0;
}

/* ---- randomness ----------------------------------------------------------------- */

/* Sub-streams of SIM_STREAM_DATA (the catalogue uses kinds below 0x20, the dossiers 0x21..). */
enum { K_PAY = 0x30, K_PAY_CLASS, K_PAY_SLOT };

static uint64_t pstream(unsigned kind, uint64_t index)
{
	return sim_mix64(((uint64_t)SIM_STREAM_DATA << 48) ^ ((uint64_t)kind << 40) ^ index);
}

/* Draw n of dossier index's payment stream. */
static uint64_t draw(uint64_t index, uint64_t n)
{
	return sim_rand_at(pstream(K_PAY, index), n);
}

static const char *const banks[] = {"VCB", "BIDV", "CTG", "VBA", "TCB", "MB", "VPB", "ACB", "STB"};

/* ---- signing -------------------------------------------------------------------- */

/* A member of a platform message: text NULL when absent; number: an integer in JSON. */
struct field {
	const char *name;
	const char *text;
	bool number;
};

/* Lowercase hex SHA-256 of the texts of f[0..n) joined by '|', then '|' key, into out (65). */
static void mac_of(const struct field *f, size_t n, const char *key, char *out)
{
	static const char hex[] = "0123456789abcdef";
	struct sim_buf b = {0};
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;

	for (size_t i = 0; i < n; i++) {
		if (f[i].text != NULL)
			sim_buf_adds(&b, f[i].text);
		sim_buf_add(&b, "|", 1);
	}
	sim_buf_adds(&b, key);
	if (EVP_Digest(b.data, b.len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32)
		sim_die("payment: SHA-256 failed");
	sim_buf_free(&b);
	for (unsigned i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

/* The MaXacThuc a message gets: right, or wrong in the way sig says ("" when missing). */
static void mac_make(const struct field *f, size_t n, enum sig sig, char *out)
{
	const char *key = sim_config.paygov_key;

	switch (sig) {
	case SIG_WRONG_KEY: key = "khoa-bi-mat-khac"; break;
	case SIG_MISSING: out[0] = '\0'; return;
	default: break;
	}
	mac_of(f, n, key, out);
	if (sig == SIG_UPPERCASE) {
		for (char *p = out; *p; p++)
			if (*p >= 'a' && *p <= 'f')
				*p = (char)(*p - 'a' + 'A');
	}
}

/* Adds the present fields to o. */
static void put_fields(json_t *o, const struct field *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (f[i].text == NULL)
			continue;
		json_object_set_new(o, f[i].name,
				    f[i].number ? json_integer(strtoll(f[i].text, NULL, 10))
						: json_string(f[i].text));
	}
}

/* ---- transactions as text --------------------------------------------------------- */

#define TX_SIGNED 11
#define TX_FIELDS 13 /* and MaXacThuc */

/* The fields of a transaction (a list item or a QUERY answer) and their storage. */
struct txtext {
	char ref[REF_MAX], amount[32], magd[32], when[16], info[160], state[4], updated[16];
	char mac[65];
	struct field f[TX_FIELDS];
};

/* "150.000": amount with dots between thousands. */
static void amount_dotted(int64_t v, char *out, size_t len)
{
	char digits[24];
	size_t n = (size_t)snprintf(digits, sizeof(digits), "%lld", (long long)v), o = 0;

	for (size_t i = 0; i < n && o + 2 < len; i++) {
		if (i > 0 && (n - i) % 3 == 0 && digits[0] != '-')
			out[o++] = '.';
		out[o++] = digits[i];
	}
	out[o] = '\0';
}

/*
 * Fills tt with x as a message of type loai ("CONFIRM": a list item with
 * MaHoSo and ThoiGianCapNhat; "QUERY": an answer), TrangThaiGD state,
 * SoTien as dotted text when amount_text, and signs it (wrongly for a
 * bad_signature transaction).
 */
static void tx_text(const struct tx *x, const char *loai, unsigned state, bool amount_text,
		    struct txtext *tt)
{
	bool list = strcmp(loai, "CONFIRM") == 0;
	char when[16];

	fmt14(x->t, when);
	snprintf(tt->ref, sizeof(tt->ref), "%s-%s", x->mahoso, when);
	if (amount_text)
		amount_dotted(x->amount, tt->amount, sizeof(tt->amount));
	else
		snprintf(tt->amount, sizeof(tt->amount), "%lld", (long long)x->amount);
	snprintf(tt->magd, sizeof(tt->magd), "%.8s%010llu", when, (unsigned long long)x->magd);
	snprintf(tt->when, sizeof(tt->when), "%s", when);
	snprintf(tt->info, sizeof(tt->info), "Thanh toán phí, lệ phí hồ sơ %s", x->mahoso);
	snprintf(tt->state, sizeof(tt->state), "%u", state);
	fmt14(x->updated, tt->updated);
	tt->f[0] = (struct field){"LoaiBanTin", loai, false};
	tt->f[1] = (struct field){"MaLoi", "00", false};
	tt->f[2] = (struct field){"MaDoiTac", PARTNER, false};
	tt->f[3] = (struct field){"MaThamChieu", tt->ref, false};
	tt->f[4] = (struct field){"SoTien", tt->amount, !amount_text};
	tt->f[5] = (struct field){"MaTienTe", CURRENCY, false};
	tt->f[6] = (struct field){"MaGiaoDich", tt->magd, false};
	tt->f[7] = (struct field){"MaNganHang", banks[x->bank % SIM_ARRAY_SIZE(banks)], false};
	tt->f[8] = (struct field){"ThoiGianGD", tt->when, false};
	tt->f[9] = (struct field){"ThongTinGiaoDich", tt->info, false};
	tt->f[10] = (struct field){"TrangThaiGD", tt->state, true};
	tt->f[11] = (struct field){"MaHoSo", list ? x->mahoso : NULL, false};
	tt->f[12] = (struct field){"ThoiGianCapNhat", list ? tt->updated : NULL, false};
	mac_make(tt->f, TX_SIGNED, (enum sig)x->sig, tt->mac);
}

static json_t *txtext_json(const struct txtext *tt, bool mac_missing)
{
	json_t *o = json_object();

	put_fields(o, tt->f, TX_FIELDS);
	if (!mac_missing)
		json_object_set_new(o, "MaXacThuc", json_string(tt->mac));
	return o;
}

/* A CSV field (RFC 4180: quoted when it holds a comma, a quote or a line break). */
static void csv_field(struct sim_buf *b, const char *s, bool comma)
{
	if (comma)
		sim_buf_add(b, ",", 1);
	if (strpbrk(s, ",\"\r\n") == NULL) {
		sim_buf_adds(b, s);
		return;
	}
	sim_buf_add(b, "\"", 1);
	for (; *s; s++) {
		if (*s == '"')
			sim_buf_add(b, "\"", 1);
		sim_buf_add(b, s, 1);
	}
	sim_buf_add(b, "\"", 1);
}

/* ---- recording -------------------------------------------------------------------- */

static struct pday *day_get(int64_t t)
{
	char key[11];
	struct pday *d;

	fmt_day(t, key);
	d = sim_map_get(P.days, key);
	if (d == NULL) {
		d = sim_xcalloc(1, sizeof(*d));
		sim_map_put(P.days, key, d);
	}
	return d;
}

static void day_free(void *v)
{
	struct pday *d = v;

	free(d->tx);
	free(d->fee);
	free(d->x);
	free(d);
}

static void expect(int64_t t, enum pclass cls, bool of_fee, size_t idx)
{
	struct pday *d = day_get(t);

	GROW(d->x, d->n_x, d->cap_x);
	d->x[d->n_x++] = (struct xitem){(uint8_t)cls, of_fee, (uint32_t)idx};
	P.counts[cls]++;
}

static size_t tx_add(const char *mahoso, int64_t t, int64_t updated, int64_t amount, unsigned state,
		     uint64_t rnd, enum sig sig)
{
	struct tx *x;
	struct pday *d = day_get(t);
	char ref[REF_MAX], when[16];

	GROW(P.txs, P.n_tx, P.cap_tx);
	x = &P.txs[P.n_tx];
	memset(x, 0, sizeof(*x));
	snprintf(x->mahoso, sizeof(x->mahoso), "%s", mahoso);
	x->t = t;
	x->updated = updated;
	x->amount = amount;
	x->magd = rnd % 10000000000u;
	x->bank = (uint8_t)((rnd >> 40) % SIM_ARRAY_SIZE(banks));
	x->state = (uint8_t)state;
	x->sig = (uint8_t)sig;
	GROW(d->tx, d->n_tx, d->cap_tx);
	d->tx[d->n_tx++] = (uint32_t)P.n_tx;
	fmt14(t, when);
	snprintf(ref, sizeof(ref), "%s-%s", mahoso, when);
	sim_map_put(P.refs, ref, (void *)(uintptr_t)(P.n_tx + 1));
	return P.n_tx++;
}

static size_t fee_add(const char *mahoso, int64_t ref_t, int64_t t, int64_t amount,
		      enum fee_state state, enum fee_form form)
{
	struct fee *f;
	struct pday *d = day_get(t);

	GROW(P.fees, P.n_fee, P.cap_fee);
	f = &P.fees[P.n_fee];
	memset(f, 0, sizeof(*f));
	snprintf(f->mahoso, sizeof(f->mahoso), "%s", mahoso);
	f->ref_t = ref_t;
	f->t = t;
	f->amount = amount;
	f->state = (uint8_t)state;
	f->form = (uint8_t)form;
	GROW(d->fee, d->n_fee, d->cap_fee);
	d->fee[d->n_fee++] = (uint32_t)P.n_fee;
	return P.n_fee++;
}

/* t + 0..span-1 seconds drawn, not past the end of t's day. */
static int64_t later(int64_t t, int64_t min, uint64_t rnd, int64_t span)
{
	int64_t v = t + min + (int64_t)(rnd % (uint64_t)span), last = day_last(t);

	return v < last ? v : last;
}

static const int64_t typical_fees[] = {10000, 20000, 30000, 50000, 100000, 150000, 200000, 500000};

/* Makes the records of entry e (lock held). */
static void materialize(struct entry *e)
{
	uint64_t i = e->index;
	int64_t t1 = e->t1, upd = later(t1, 5, draw(i, 1), 115);
	size_t x;

	switch ((enum pclass)e->cls) {
	case PC_DESK:
		fee_add(e->mahoso, 0, e->received, e->amount, FS_PAID,
			e->kenh == 3 ? FF_TRANSFER : FF_CASH);
		break;
	case PC_MATCHED:
	case PC_PORTAL_WITHOUT_FEE:
		x = tx_add(e->mahoso, t1, upd, e->amount, 1, draw(i, 2), SIG_OK);
		fee_add(e->mahoso, t1, upd, e->amount, FS_PAID, FF_ONLINE);
		expect(t1, PC_MATCHED, false, x);
		if (e->cls == PC_PORTAL_WITHOUT_FEE)
			expect(t1, PC_PORTAL_WITHOUT_FEE, false, x);
		break;
	case PC_PLATFORM_ONLY:
		x = tx_add(e->mahoso, t1, upd, e->amount, 1, draw(i, 2), SIG_OK);
		if (e->variant % 2 == 0)
			fee_add(e->mahoso, t1, t1, e->amount, FS_UNPAID, FF_ONLINE);
		expect(t1, PC_PLATFORM_ONLY, false, x);
		break;
	case PC_LOCAL_ONLY:
		if (e->variant % 2 == 1)
			tx_add(e->mahoso, t1, later(t1, 60, draw(i, 3), 540), e->amount, 4,
			       draw(i, 2), SIG_OK);
		x = fee_add(e->mahoso, t1, upd, e->amount, FS_PAID, FF_ONLINE);
		expect(t1, PC_LOCAL_ONLY, true, x);
		break;
	case PC_AMOUNT_DIFFERS: {
		int64_t d = 1000 * (1 + (int64_t)(draw(i, 4) % 50));

		if ((draw(i, 5) & 1) && e->amount - d > 0)
			d = -d;
		x = tx_add(e->mahoso, t1, upd, e->amount, 1, draw(i, 2), SIG_OK);
		fee_add(e->mahoso, t1, upd, e->amount + d, FS_PAID, FF_ONLINE);
		expect(t1, PC_AMOUNT_DIFFERS, false, x);
		break;
	}
	case PC_PAID_TWICE: {
		int64_t t2 = later(t1, 120, draw(i, 6), 3600);

		if (t2 <= t1) /* t1 was the day's last second */
			t2 = t1 - 1;
		x = tx_add(e->mahoso, t1, upd, e->amount, 1, draw(i, 2), SIG_OK);
		fee_add(e->mahoso, t1, upd, e->amount, FS_PAID, FF_ONLINE);
		expect(t1, PC_MATCHED, false, x);
		x = tx_add(e->mahoso, t2, later(t2, 5, draw(i, 7), 115), e->amount, 1, draw(i, 8),
			   SIG_OK);
		expect(t2, PC_PAID_TWICE, false, x);
		break;
	}
	case PC_PENDING_TOO_LONG:
		x = tx_add(e->mahoso, t1, t1, e->amount, 3, draw(i, 2), SIG_OK);
		fee_add(e->mahoso, t1, t1, e->amount, FS_WAITING, FF_ONLINE);
		expect(t1, PC_PENDING_TOO_LONG, false, x);
		break;
	case PC_BAD_SIGNATURE:
		x = tx_add(e->mahoso, t1, upd, e->amount, 1, draw(i, 2),
			   (enum sig)(SIG_WRONG_KEY + e->variant % 3));
		fee_add(e->mahoso, t1, upd, e->amount, FS_PAID, FF_ONLINE);
		expect(t1, PC_BAD_SIGNATURE, false, x);
		break;
	default: break;
	}
	for (unsigned k = 0; k < e->n_unknown; k++) {
		/* The host's agency and day, a serial no dossier has: 8xxxx. */
		char code[MAHOSO_MAX];
		size_t n = strlen(e->mahoso);
		int64_t t = later(e->received, 60, draw(i, 10 + k), 3600);

		snprintf(code, sizeof(code), "%s", e->mahoso);
		if (n > 5)
			snprintf(code + n - 5, 6, "8%04u", P.n_unknown % 10000);
		P.n_unknown++;
		x = tx_add(code, t, later(t, 5, draw(i, 20 + k), 115),
			   typical_fees[draw(i, 30 + k) % SIM_ARRAY_SIZE(typical_fees)], 1,
			   draw(i, 40 + k), SIG_OK);
		expect(t, PC_UNKNOWN_DOSSIER, false, x);
	}
}

/*
 * Q, the discrepancies of each class in the initial window: --payment-faults
 * per 1,000 dossiers, rounded, at least 3 unless it is 0. Set at the first
 * call, which may come from the stream before this module's init (lock held).
 */
static void configure(void)
{
	uint64_t n = sim_config.dossiers, f = sim_config.payment_faults;
	uint64_t q = (n * f + 500) / 1000;

	if (P.configured)
		return;
	P.n_initial = n;
	P.quota = f == 0 || n == 0 ? 0 : (unsigned)(q < 3 ? 3 : q);
	P.configured = true;
}

enum sim_payment_render sim_payment_dossier(const struct sim_payment_dossier *pd)
{
	enum sim_payment_render render = SIM_PAYMENT_AS_IS;
	struct entry e;

	if (pd->amount <= 0 || pd->mahoso == NULL || strlen(pd->mahoso) >= MAHOSO_MAX)
		return SIM_PAYMENT_AS_IS;
	memset(&e, 0, sizeof(e));
	snprintf(e.mahoso, sizeof(e.mahoso), "%s", pd->mahoso);
	e.index = pd->index;
	e.received = pd->received_s;
	e.amount = pd->amount;
	e.kenh = (uint8_t)pd->kenh;
	e.cls = pd->online ? PC_MATCHED : PC_DESK;
	e.t1 = later(pd->received_s, 30, draw(pd->index, 0), 570);

	pthread_mutex_lock(&P.lock);
	if (P.closed) { /* the stream's rate thread outlives this module at shutdown */
		pthread_mutex_unlock(&P.lock);
		return SIM_PAYMENT_AS_IS;
	}
	configure();
	P.now = pd->now_s;
	P.n_dossiers++;
	/*
	 * portal_without_fee: slot k of Q lies in the first 8/10 of the window
	 * and goes to the first dossier paying online at or after it.
	 */
	if (pd->online && !P.ready && pd->index < P.n_initial && P.pwf_taken < P.quota) {
		uint64_t span = P.n_initial * WINDOW_PWF / 10, k = P.pwf_taken;
		double u = sim_unit(sim_rand_at(pstream(K_PAY_SLOT, 0), k));
		uint64_t slot =
			(uint64_t)(((double)k + u) * (double)(span ? span : 1) / (double)P.quota);

		if (slot <= pd->index) {
			e.cls = PC_PORTAL_WITHOUT_FEE;
			e.variant = (uint8_t)(P.pwf_taken % 2);
			render = e.variant == 0 ? SIM_PAYMENT_NOT_ONLINE : SIM_PAYMENT_NO_FEES;
			P.pwf_taken++;
		}
	}
	if (P.ready) {
		materialize(&e);
	} else {
		GROW(P.pending, P.n_pending, P.cap_pending);
		P.pending[P.n_pending++] = e;
	}
	pthread_mutex_unlock(&P.lock);
	return render;
}

/* Fisher-Yates with the seeded draws of stream. */
static void shuffle(size_t *a, size_t n, uint64_t stream)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)(sim_rand_at(stream, i) % i), t = a[i - 1];

		a[i - 1] = a[j];
		a[j] = t;
	}
}

/* Takes the next entry of pool from *at that is still matched, or NULL. */
static struct entry *take(const size_t *pool, size_t n, size_t *at)
{
	while (*at < n) {
		struct entry *e = &P.pending[pool[(*at)++]];

		if (e->cls == PC_MATCHED)
			return e;
	}
	return NULL;
}

/*
 * The discrepancies of the initial window other than portal_without_fee:
 * round after round, each class takes one more dossier paying online, in a
 * seeded order; pending_too_long only those old enough, the others the
 * recent ones first. unknown_dossier transactions go beside Q dossiers with
 * fees, any.
 */
static void assign_classes(void)
{
	static const enum pclass order[] = {PC_PENDING_TOO_LONG, PC_PLATFORM_ONLY,
					    PC_LOCAL_ONLY,	 PC_AMOUNT_DIFFERS,
					    PC_PAID_TWICE,	 PC_BAD_SIGNATURE};
	size_t *old = sim_xcalloc(P.n_pending + 1, sizeof(*old));
	size_t *recent = sim_xcalloc(P.n_pending + 1, sizeof(*recent));
	size_t *all = sim_xcalloc(P.n_pending + 1, sizeof(*all));
	size_t n_old = 0, n_recent = 0, n_all = 0, at_old = 0, at_recent = 0;
	unsigned count[PC__COUNT] = {0};

	for (size_t i = 0; i < P.n_pending; i++) {
		const struct entry *e = &P.pending[i];

		if (e->index >= P.n_initial)
			continue;
		all[n_all++] = i;
		if (e->cls != PC_MATCHED)
			continue;
		if (e->t1 <= P.now - PENDING_AGE_S)
			old[n_old++] = i;
		else
			recent[n_recent++] = i;
	}
	shuffle(old, n_old, pstream(K_PAY_CLASS, 0));
	shuffle(recent, n_recent, pstream(K_PAY_CLASS, 1));
	shuffle(all, n_all, pstream(K_PAY_CLASS, 2));
	for (unsigned k = 0; k < P.quota; k++) {
		for (size_t c = 0; c < SIM_ARRAY_SIZE(order); c++) {
			struct entry *e;

			if (order[c] == PC_PENDING_TOO_LONG) {
				e = take(old, n_old, &at_old);
			} else {
				e = take(recent, n_recent, &at_recent);
				if (e == NULL)
					e = take(old, n_old, &at_old);
			}
			if (e == NULL)
				continue;
			e->cls = (uint8_t)order[c];
			e->variant = (uint8_t)(count[order[c]]++ % 6);
		}
	}
	for (unsigned k = 0; k < P.quota && n_all > 0; k++) {
		struct entry *e = &P.pending[all[k % n_all]];

		if (e->n_unknown < UINT8_MAX)
			e->n_unknown++;
	}
	free(old);
	free(recent);
	free(all);
}

/* ---- requests ------------------------------------------------------------------------ */

static bool paygov_auth_ok(const struct sim_request *rq, struct sim_reply *rp)
{
	const char *auth = sim_request_header(rq, MHD_HTTP_HEADER_AUTHORIZATION);

	if (auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0 &&
	    sim_str_equal_ct(auth + 7, sim_config.paygov_token))
		return true;
	sim_reply_error(rp, MHD_HTTP_UNAUTHORIZED, "unauthorized",
			auth ? "Mã truy cập không hợp lệ"
			     : "Thiếu mã truy cập (Authorization: Bearer)");
	sim_reply_header(rp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"paygov\"");
	return false;
}

/* ngay, cursor and limit of a page request; false after answering 400. */
static bool page_args(const struct sim_request *rq, struct sim_reply *rp, const char **day,
		      uint64_t *cursor, uint64_t *limit)
{
	*day = sim_request_query(rq, "ngay");
	if (!day_valid(*day)) {
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
				"ngay phải là một ngày dạng YYYY-MM-DD");
		return false;
	}
	if (!sim_parse_dec(sim_request_query(rq, "cursor"), 0, cursor)) {
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request", "cursor không hợp lệ");
		return false;
	}
	if (!sim_parse_dec(sim_request_query(rq, "limit"), DEFAULT_LIMIT, limit) || *limit < 1 ||
	    *limit > MAX_LIMIT) {
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request", "limit phải từ 1 đến %d",
				MAX_LIMIT);
		return false;
	}
	return true;
}

/* Position pos of a day's list has a bad input of kind k (lock held). */
static bool mal_at(enum mal k, uint64_t pos)
{
	return P.mal[k] != 0 && pos % P.mal[k] == 0;
}

/* Appends the list item of day position pos (twice when it is a duplicated row). */
static void list_item(json_t *items, uint32_t idx, uint64_t pos)
{
	const struct tx *x = &P.txs[idx];
	struct txtext tt = {0};
	json_t *o;

	tx_text(x, "CONFIRM", x->state, mal_at(MAL_AMOUNT_TEXT, pos), &tt);
	o = txtext_json(&tt, x->sig == SIG_MISSING);
	if (mal_at(MAL_DUPLICATE_ROW, pos))
		json_array_append(items, o);
	json_array_append_new(items, o);
}

static void fee_item(json_t *items, uint32_t idx)
{
	const struct fee *f = &P.fees[idx];
	char ref[REF_MAX], when[16], iso[26];
	json_t *o = json_object();

	if (f->ref_t != 0) {
		fmt14(f->ref_t, when);
		snprintf(ref, sizeof(ref), "%s-%s", f->mahoso, when);
		json_object_set_new(o, "maThamChieu", json_string(ref));
	} else {
		json_object_set_new(o, "maThamChieu", json_null());
	}
	fmt_iso(f->t, iso);
	json_object_set_new(o, "maHoSo", json_string(f->mahoso));
	json_object_set_new(o, "soTien", json_integer(f->amount));
	json_object_set_new(o, "trangThai", json_string(fee_states[f->state]));
	json_object_set_new(o, "hinhThuc", json_string(fee_forms[f->form]));
	json_object_set_new(o, "thoiGian", json_string(iso));
	json_array_append_new(items, o);
}

/* Dumps o (stolen) into a malloc'd text; *len its length. */
static char *dump(json_t *o, size_t *len)
{
	char *text = jsontext_dumps(o, len);

	json_decref(o);
	if (text == NULL)
		sim_die("payment: a JSON text could not be written");
	return text;
}

/* GET list or fee pages: a day's records from the cursor on. */
static void get_page(struct sim_request *rq, struct sim_reply *rp, bool fees)
{
	const char *day;
	uint64_t cursor, limit, n, last;
	const struct pday *d;
	json_t *o, *items;
	char next[24];
	bool truncated;
	size_t len;
	char *body;

	if (!(fees ? sim_provincial_auth_ok(rq, rp) : paygov_auth_ok(rq, rp)) ||
	    !page_args(rq, rp, &day, &cursor, &limit))
		return;
	items = json_array();
	pthread_mutex_lock(&P.lock);
	d = sim_map_get(P.days, day);
	n = d == NULL ? 0 : fees ? d->n_fee : d->n_tx;
	last = cursor < n ? (n - cursor > limit ? cursor + limit : n) : cursor;
	for (uint64_t p = cursor; p < last; p++) {
		if (fees)
			fee_item(items, d->fee[p]);
		else
			list_item(items, d->tx[p], p);
	}
	if (fees) {
		P.fee_pages++;
		P.fee_items += last > cursor ? last - cursor : 0;
	} else {
		P.list_pages++;
		P.list_items += last > cursor ? last - cursor : 0;
	}
	truncated = !fees && P.mal[MAL_TRUNCATED] != 0;
	pthread_mutex_unlock(&P.lock);
	snprintf(next, sizeof(next), "%llu", (unsigned long long)last);
	o = json_pack("{s:o, s:s, s:b}", "items", items, "next_cursor", next, "has_more", last < n);
	body = dump(o, &len);
	if (truncated) /* cut in the middle, as a connection that broke */
		len /= 2;
	sim_reply_buffer(rp, MHD_HTTP_OK, "application/json; charset=utf-8", body, len);
}

static void get_list(struct sim_request *rq, struct sim_reply *rp)
{
	get_page(rq, rp, false);
}

static void get_fees(struct sim_request *rq, struct sim_reply *rp)
{
	get_page(rq, rp, true);
}

/*
 * The text of a signed request field: a string as it is, an integer in
 * decimal, absent or null "". NULL for another type (never verifies).
 */
static const char *req_text(const json_t *req, const char *name, char *buf, size_t cap)
{
	const json_t *v = json_object_get(req, name);

	if (v == NULL || json_is_null(v))
		return "";
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v)) {
		snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
		return buf;
	}
	return NULL;
}

/* True when s is 64 lowercase hex characters. */
static bool mac_form_ok(const char *s)
{
	return s != NULL && strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

/* A QUERY answer without a transaction: MaLoi, the echoed MaThamChieu, TrangThaiGD (0: none). */
static json_t *short_answer(const char *maloi, const char *ref, unsigned state)
{
	char st[4], mac[65];
	struct field f[TX_SIGNED] = {
		{"LoaiBanTin", "QUERY", false},
		{"MaLoi", maloi, false},
		{"MaDoiTac", PARTNER, false},
		{"MaThamChieu", ref, false},
		{"SoTien", NULL, true},
		{"MaTienTe", NULL, false},
		{"MaGiaoDich", NULL, false},
		{"MaNganHang", NULL, false},
		{"ThoiGianGD", NULL, false},
		{"ThongTinGiaoDich", NULL, false},
		{"TrangThaiGD", state ? st : NULL, true},
	};
	json_t *o = json_object();

	snprintf(st, sizeof(st), "%u", state);
	put_fields(o, f, TX_SIGNED);
	mac_make(f, TX_SIGNED, SIG_OK, mac);
	json_object_set_new(o, "MaXacThuc", json_string(mac));
	return o;
}

static void post_query(struct sim_request *rq, struct sim_reply *rp)
{
	static const char *const signed_names[] = {"LoaiBanTin", "PhienBan", "MaDoiTac",
						   "MaThamChieu", "ThoiGianGD"};
	struct field f[SIM_ARRAY_SIZE(signed_names)];
	char nums[SIM_ARRAY_SIZE(signed_names)][24], mac[65];
	const char *given, *ref, *loai, *partner;
	bool verifiable = true;
	json_t *req, *answer;
	enum qa outcome;
	uintptr_t slot;

	if (!paygov_auth_ok(rq, rp) || (req = sim_request_json_object(rq, rp)) == NULL)
		return;
	for (size_t i = 0; i < SIM_ARRAY_SIZE(signed_names); i++) {
		f[i] = (struct field){signed_names[i],
				      req_text(req, signed_names[i], nums[i], sizeof(nums[i])),
				      false};
		verifiable = verifiable && f[i].text != NULL;
	}
	given = json_string_value(json_object_get(req, "MaXacThuc"));
	ref = json_string_value(json_object_get(req, "MaThamChieu"));
	if (ref != NULL && strlen(ref) > ECHO_MAX)
		ref = NULL;
	if (verifiable)
		mac_of(f, SIM_ARRAY_SIZE(f), sim_config.paygov_key, mac);
	if (!verifiable || !mac_form_ok(given) || !sim_str_equal_ct(given, mac)) {
		answer = short_answer("07", ref, 0);
		outcome = QA_BAD_SIGNATURE;
		goto out;
	}
	loai = json_string_value(json_object_get(req, "LoaiBanTin"));
	partner = json_string_value(json_object_get(req, "MaDoiTac"));
	if (loai == NULL || strcmp(loai, "QUERY") != 0 || partner == NULL ||
	    strcmp(partner, PARTNER) != 0 || ref == NULL || ref[0] == '\0') {
		answer = short_answer("02", ref, 0);
		outcome = QA_BAD_REQUEST;
		goto out;
	}
	pthread_mutex_lock(&P.lock);
	slot = (uintptr_t)sim_map_get(P.refs, ref);
	if (slot == 0) {
		pthread_mutex_unlock(&P.lock);
		answer = short_answer("01", ref, 4);
		outcome = QA_UNKNOWN;
	} else {
		const struct tx *x = &P.txs[slot - 1];
		unsigned state = P.mal[MAL_QUERY_PENDING] ? 3 : x->state;
		struct txtext tt = {0};

		tx_text(x, "QUERY", state, P.mal[MAL_AMOUNT_TEXT] != 0, &tt);
		pthread_mutex_unlock(&P.lock);
		answer = txtext_json(&tt, x->sig == SIG_MISSING);
		outcome = x->sig != SIG_OK ? QA_BAD_SIGNATURE
			  : state == 1	   ? QA_SUCCESS
			  : state == 3	   ? QA_PENDING
					   : QA_FAILED;
	}
out:
	pthread_mutex_lock(&P.lock);
	P.queries[outcome]++;
	pthread_mutex_unlock(&P.lock);
	sim_reply_json(rp, MHD_HTTP_OK, answer);
}

/* ---- /_sim/payment ---------------------------------------------------------------------- */

/* The key of an expected item (lock held). */
static void xitem_key(const struct xitem *it, char *out, size_t len)
{
	const char *mahoso = it->of_fee ? P.fees[it->idx].mahoso : P.txs[it->idx].mahoso;
	int64_t t = it->of_fee ? P.fees[it->idx].ref_t : P.txs[it->idx].t;
	char when[16];

	if (it->cls == PC_PORTAL_WITHOUT_FEE) {
		snprintf(out, len, "%s", mahoso);
		return;
	}
	fmt14(t, when);
	snprintf(out, len, "%s-%s", mahoso, when);
}

struct expect_ctx {
	json_t *lists[PC__COUNT];
};

static int expect_day(const char *key, void *value, void *ud)
{
	const struct pday *d = value;
	struct expect_ctx *c = ud;
	char k[REF_MAX];

	(void)key;
	for (size_t i = 0; i < d->n_x; i++) {
		xitem_key(&d->x[i], k, sizeof(k));
		json_array_append_new(c->lists[d->x[i].cls], json_string(k));
	}
	return 0;
}

static void get_expected(struct sim_request *rq, struct sim_reply *rp)
{
	const char *day = sim_request_query(rq, "ngay");
	struct expect_ctx c;
	json_t *classes = json_object(), *counts = json_object();

	if (day != NULL && !day_valid(day)) {
		json_decref(classes);
		json_decref(counts);
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
				"ngay must be a date YYYY-MM-DD (or absent: every day)");
		return;
	}
	for (size_t k = 1; k < PC__COUNT; k++)
		c.lists[k] = json_array();
	pthread_mutex_lock(&P.lock);
	if (day != NULL) {
		void *d = sim_map_get(P.days, day);

		if (d != NULL)
			expect_day(day, d, &c);
	} else {
		sim_map_each(P.days, expect_day, &c);
	}
	pthread_mutex_unlock(&P.lock);
	for (size_t k = 1; k < PC__COUNT; k++) {
		json_object_set_new(counts, class_names[k],
				    json_integer((json_int_t)json_array_size(c.lists[k])));
		json_object_set_new(classes, class_names[k], c.lists[k]);
	}
	sim_reply_json(
		rp, MHD_HTTP_OK,
		json_pack("{s:s?, s:o, s:o}", "ngay", day, "classes", classes, "counts", counts));
}

static int stats_day(const char *key, void *value, void *ud)
{
	const struct pday *d = value;

	json_object_set_new(ud, key,
			    json_pack("{s:I, s:I}", "transactions", (json_int_t)d->n_tx,
				      "fee_records", (json_int_t)d->n_fee));
	return 0;
}

static json_t *mal_state(void)
{
	json_t *o = json_object();

	for (size_t k = 0; k < MAL__COUNT; k++)
		json_object_set_new(o, mal_names[k], json_integer(P.mal[k]));
	return o;
}

static void get_stats(struct sim_request *rq, struct sim_reply *rp)
{
	json_t *q = json_object(), *days = json_object(), *o;
	uint64_t total = 0;

	(void)rq;
	pthread_mutex_lock(&P.lock);
	for (size_t k = 0; k < QA__COUNT; k++) {
		total += P.queries[k];
		json_object_set_new(q, qa_names[k], json_integer((json_int_t)P.queries[k]));
	}
	sim_map_each(P.days, stats_day, days);
	o = json_pack("{s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o}",
		      "query_requests", (json_int_t)total, "query_answers", q, "list_pages",
		      (json_int_t)P.list_pages, "list_items", (json_int_t)P.list_items, "fee_pages",
		      (json_int_t)P.fee_pages, "fee_items", (json_int_t)P.fee_items, "exports",
		      (json_int_t)P.exports, "transactions", (json_int_t)P.n_tx, "fee_records",
		      (json_int_t)P.n_fee, "dossiers_with_fees", (json_int_t)P.n_dossiers,
		      "faults_per_1000", (json_int_t)sim_config.payment_faults, "quota",
		      (json_int_t)P.quota, "malformed", mal_state(), "days", days);
	pthread_mutex_unlock(&P.lock);
	sim_reply_json(rp, MHD_HTTP_OK, o);
}

/* Replaces every UTF-8 "á" by the single byte 0xE1 (Latin-1, Windows-1258): not UTF-8. */
static size_t latin1_a(char *s, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		if (i + 1 < len && (unsigned char)s[i] == 0xC3 && (unsigned char)s[i + 1] == 0xA1) {
			s[o++] = (char)0xE1;
			i++;
		} else {
			s[o++] = s[i];
		}
	}
	return o;
}

/* The day's list as a file body (lock held); *rows the lines or items written. */
static char *export_body(const char *day, bool csv, size_t *len, size_t *rows)
{
	const struct pday *d = sim_map_get(P.days, day);
	size_t n = d == NULL ? 0 : d->n_tx;
	struct sim_buf b = {0};
	json_t *items;

	*rows = 0;
	if (!csv) {
		items = json_array();
		for (size_t p = 0; p < n; p++)
			list_item(items, d->tx[p], p);
		*rows = json_array_size(items);
		return dump(json_pack("{s:s, s:o}", "ngay", day, "items", items), len);
	}
	sim_buf_adds(&b, "\xEF\xBB\xBF"); /* the BOM a spreadsheet writes */
	{
		struct txtext tt = {0};
		const struct tx dummy = {.mahoso = ""};

		tx_text(&dummy, "CONFIRM", 1, false, &tt);
		for (size_t i = 0; i < TX_FIELDS; i++)
			csv_field(&b, tt.f[i].name, i > 0);
		csv_field(&b, "MaXacThuc", true);
		sim_buf_adds(&b, "\r\n");
	}
	for (size_t p = 0; p < n; p++) {
		const struct tx *x = &P.txs[d->tx[p]];
		struct txtext tt = {0};

		tx_text(x, "CONFIRM", x->state, mal_at(MAL_AMOUNT_TEXT, p), &tt);
		for (unsigned rep = 0; rep < (mal_at(MAL_DUPLICATE_ROW, p) ? 2u : 1u); rep++) {
			for (size_t i = 0; i < TX_FIELDS; i++)
				csv_field(&b, tt.f[i].text ? tt.f[i].text : "", i > 0);
			csv_field(&b, x->sig == SIG_MISSING ? "" : tt.mac, true);
			sim_buf_adds(&b, "\r\n");
			(*rows)++;
		}
	}
	return sim_buf_steal(&b, len);
}

static void post_export(struct sim_request *rq, struct sim_reply *rp)
{
	json_t *req = sim_request_json_object(rq, rp);
	const char *day, *format, *dir;
	char name[40], *path = NULL, *body = NULL;
	size_t len, rows, items;
	struct stat st;
	bool csv;
	int r;

	if (req == NULL)
		return;
	day = json_string_value(json_object_get(req, "ngay"));
	format = json_string_value(json_object_get(req, "format"));
	dir = json_string_value(json_object_get(req, "dir"));
	if (!day_valid(day) || format == NULL ||
	    (strcmp(format, "json") != 0 && strcmp(format, "csv") != 0) || dir == NULL ||
	    dir[0] != '/' || strlen(dir) > DIR_MAX) {
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
				"expected {\"ngay\":\"YYYY-MM-DD\",\"format\":\"json\"|\"csv\","
				"\"dir\":\"/absolute/path\"}");
		return;
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
				"dir is not an existing directory");
		return;
	}
	csv = strcmp(format, "csv") == 0;
	snprintf(name, sizeof(name), "giao-dich-%.4s%.2s%.2s.%s", day, day + 5, day + 8, format);
	path = sim_xasprintf("%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name);
	pthread_mutex_lock(&P.lock);
	body = export_body(day, csv, &len, &rows);
	items = sim_map_get(P.days, day) ? ((struct pday *)sim_map_get(P.days, day))->n_tx : 0;
	if (P.mal[MAL_NOT_UTF8])
		len = latin1_a(body, len);
	if (P.mal[MAL_TRUNCATED])
		len /= 2;
	P.exports++;
	pthread_mutex_unlock(&P.lock);
	r = write_file_atomic(path, body, len, 0644);
	if (r < 0) {
		sim_reply_error(rp, MHD_HTTP_INTERNAL_SERVER_ERROR, "write_failed", "%s: %s", path,
				strerror(-r));
		goto out;
	}
	sim_log(SIM_LOG_INFO, "payment: %s written (%zu transactions)", path, items);
	sim_reply_json(rp, MHD_HTTP_OK,
		       json_pack("{s:b, s:s, s:s, s:s, s:I, s:I, s:I}", "ok", 1, "path", path,
				 "ngay", day, "format", format, "items", (json_int_t)items, "rows",
				 (json_int_t)rows, "bytes", (json_int_t)len));
out:
	free(body);
	free(path);
}

static void post_control(struct sim_request *rq, struct sim_reply *rp)
{
	json_t *req = sim_request_json_object(rq, rp), *on, *every;
	const char *op, *kind;
	int k = -1;

	if (req == NULL)
		return;
	op = json_string_value(json_object_get(req, "op"));
	if (op != NULL && strcmp(op, "reset") == 0) {
		pthread_mutex_lock(&P.lock);
		memset(P.mal, 0, sizeof(P.mal));
		pthread_mutex_unlock(&P.lock);
		goto answer;
	}
	if (op == NULL || strcmp(op, "malformed") != 0) {
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
				"expected {\"op\":\"malformed\",\"kind\":K[,\"on\":bool]"
				"[,\"every\":N]} or {\"op\":\"reset\"}");
		return;
	}
	kind = json_string_value(json_object_get(req, "kind"));
	for (size_t i = 0; kind != NULL && i < MAL__COUNT; i++)
		if (strcmp(kind, mal_names[i]) == 0)
			k = (int)i;
	on = json_object_get(req, "on");
	every = json_object_get(req, "every");
	if (k < 0 || (on != NULL && !json_is_boolean(on)) ||
	    (every != NULL && (!json_is_integer(every) || json_integer_value(every) < 1 ||
			       json_integer_value(every) > 1000000))) {
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
				"kind: amount_text, duplicate_row, truncated, not_utf8 or "
				"query_pending; on: a boolean; every: 1..1000000");
		return;
	}
	pthread_mutex_lock(&P.lock);
	P.mal[k] = on != NULL && json_is_false(on)
			   ? 0
			   : (unsigned)(every != NULL ? json_integer_value(every) : 1);
	pthread_mutex_unlock(&P.lock);
	sim_log(SIM_LOG_INFO, "payment: bad input %s %s", mal_names[k], P.mal[k] ? "on" : "off");
answer:
	pthread_mutex_lock(&P.lock);
	req = mal_state();
	pthread_mutex_unlock(&P.lock);
	sim_reply_json(rp, MHD_HTTP_OK, json_pack("{s:b, s:o}", "ok", 1, "malformed", req));
}

/* ---- module ---------------------------------------------------------------------------- */

static int payment_init(void)
{
	uint64_t t0 = sim_now_us();

	pthread_mutex_lock(&P.lock);
	configure();
	P.days = sim_map_new();
	P.refs = sim_map_new();
	assign_classes();
	for (size_t i = 0; i < P.n_pending; i++)
		materialize(&P.pending[i]);
	free(P.pending);
	P.pending = NULL;
	P.n_pending = P.cap_pending = 0;
	P.ready = true;
	sim_log(SIM_LOG_INFO,
		"payments: %llu dossiers with fees, %zu transactions, %zu fee records, %u of "
		"each discrepancy (%.0f ms)",
		(unsigned long long)P.n_dossiers, P.n_tx, P.n_fee, P.quota,
		(double)(sim_now_us() - t0) / 1000.0);
	pthread_mutex_unlock(&P.lock);

	sim_route_add(&(struct sim_route){"POST", QUERY_PATH, SIM_ROUTE_JSON, post_query,
					  "paygov.query"});
	sim_route_add(&(struct sim_route){"GET", LIST_PATH, 0, get_list, "paygov.giao-dich"});
	sim_route_add(&(struct sim_route){"GET", FEE_PATH, 0, get_fees, "provincial.le-phi"});
	sim_route_add(&(struct sim_route){"GET", "/_sim/payment/expected", SIM_ROUTE_CONTROL,
					  get_expected, NULL});
	sim_route_add(&(struct sim_route){"GET", "/_sim/payment/stats", SIM_ROUTE_CONTROL,
					  get_stats, NULL});
	sim_route_add(&(struct sim_route){"POST", "/_sim/payment/export",
					  SIM_ROUTE_CONTROL | SIM_ROUTE_JSON, post_export, NULL});
	sim_route_add(&(struct sim_route){"POST", "/_sim/payment",
					  SIM_ROUTE_CONTROL | SIM_ROUTE_JSON, post_control, NULL});
	return 0;
}

static void payment_fini(void)
{
	pthread_mutex_lock(&P.lock);
	free(P.pending);
	free(P.txs);
	free(P.fees);
	sim_map_free(P.days, day_free);
	sim_map_free(P.refs, NULL);
	P.pending = NULL;
	P.txs = NULL;
	P.fees = NULL;
	P.days = P.refs = NULL;
	P.n_pending = P.cap_pending = P.n_tx = P.cap_tx = P.n_fee = P.cap_fee = 0;
	P.ready = P.configured = false;
	P.closed = true;
	pthread_mutex_unlock(&P.lock);
}

const struct sim_module sim_payment_module = {"payment", payment_init, payment_fini};
