/*
 * sim_dossier.c: the province's dossiers as its one-stop system reports
 * them (notes/dossier-spec.md §1, §4): a deterministic stream of dossier
 * changes, kept as a compact append-only log and served as the provincial
 * change feed, with the control routes that grow it:
 *
 *   GET  /provincial/api/v1/ho-so/thay-doi?cursor=C&limit=N
 *        -> {"items":[CHANGE...],"next_cursor":"C2","has_more":bool}
 *   GET  /_sim/feed  -> {"changes","dossiers","open","malformed","now","last",...}
 *   POST /_sim/feed  {"op":"generate","count":K} | {"op":"malformed","count":K[,"kind":K]}
 *                    | {"op":"rate","per_s":R}
 *
 * The stream is a discrete-event simulation in virtual time. Dossier i
 * arrives at a time that grows with i (most in the --dossier-days D days
 * before "now", about 12 % earlier, a few in June 2025 at communes before the
 * reform; after the first --dossiers N, at the same rate after "now"). On
 * arrival its whole life is planned from (--seed, i): the procedure (from
 * the catalogue's published procedures), the receiving unit, the applicant,
 * and the steps 1|2 -> 4... -> (5 -> 4 | 6 -> 4) -> 9 -> 10, or 3, 7, 8, with
 * times in working hours (Mon-Fri 07:30-11:30, 13:30-17:00, +07:00). A
 * min-heap of every open dossier's next step merges the lives in time
 * order; the log at start holds every step up to "now", and generate/rate
 * take the next ones, so the feed is a log that only grows.
 *
 * Memory: a change is rendered to JSON once, but the parts it shares with
 * the other changes of its dossier (the header's fixed fields, its dates
 * and lists while they do not change, the official, the step's text) are
 * stored once as fragments and referenced from the change's text by a
 * 0x01 byte and 8 bytes (offset and length); JSON text never holds a raw
 * 0x01. A page is the texts copied with the references expanded. Texts
 * live in 64 MB chunks and the change index in fixed blocks, so nothing
 * moves once written: readers take no lock, only the published count
 * (atomic); the one writer at a time holds the generator's mutex.
 *
 * The time each change is appended is kept too, by the key of the progress
 * row the dossier flow makes of it, so that the portal (sim_svc_portal.c)
 * can tell how long a change took from the feed to the portal.
 */
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sim_dossier.h"
#include "sim_payment.h"

#define FEED_PATH     "/provincial/api/v1/ho-so/thay-doi"
#define DEFAULT_LIMIT 500
#define MAX_LIMIT     1000

#define MAX_PROCS	 20000 /* procedures taken from the catalogue */
#define MAX_STEPS	 16
#define MAX_GENERATE	 10000000
#define MAX_MALFORMED	 10000
#define MAX_RATE	 100000.0
#define MALFORMED_SERIAL 90000

/* ---- time --------------------------------------------------------------- */

#define VN_OFFSET_S	(7 * 3600)
#define DAY_S		86400
#define HOUR_S		3600
#define MORNING_START	(7 * HOUR_S + 1800)  /* 07:30 */
#define MORNING_LEN	(4 * HOUR_S)	     /* to 11:30 */
#define AFTERNOON_START (13 * HOUR_S + 1800) /* 13:30 */
#define AFTERNOON_LEN	(3 * HOUR_S + 1800)  /* to 17:00 */
#define WORKDAY_S	(MORNING_LEN + AFTERNOON_LEN)
#define WORKWEEK_S	(5 * WORKDAY_S)

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* Days since 1970-01-01 of a civil date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = floor_div(y, 400);
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = floor_div(z, 146097);
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Epoch seconds of a local (+07:00) civil date and time. */
static int64_t vn_time(int64_t y, unsigned mo, unsigned d, unsigned h, unsigned mi, unsigned s)
{
	return days_from_civil(y, mo, d) * DAY_S + h * HOUR_S + mi * 60 + s - VN_OFFSET_S;
}

#define ISO_LEN 25 /* "2025-01-01T08:30:00+07:00" */

static void put2(char *p, unsigned v)
{
	p[0] = (char)('0' + v / 10 % 10);
	p[1] = (char)('0' + v % 10);
}

/* t as "yyyy-MM-ddTHH:mm:ss+07:00" into out (ISO_LEN + 1 bytes). */
static void fmt_iso(int64_t t, char *out)
{
	int64_t local = t + VN_OFFSET_S, day = floor_div(local, DAY_S), y;
	unsigned sod = (unsigned)(local - day * DAY_S), m, d;

	civil_from_days(day, &y, &m, &d);
	put2(out, (unsigned)(y / 100));
	put2(out + 2, (unsigned)(y % 100));
	out[4] = '-';
	put2(out + 5, m);
	out[7] = '-';
	put2(out + 8, d);
	out[10] = 'T';
	put2(out + 11, sod / 3600);
	out[13] = ':';
	put2(out + 14, sod / 60 % 60);
	out[16] = ':';
	put2(out + 17, sod % 60);
	memcpy(out + 19, "+07:00", 7);
}

/* "yyMMdd" of t (+07:00) into out (7 bytes). */
static void fmt_yymmdd(int64_t t, char *out)
{
	int64_t y;
	unsigned m, d;

	civil_from_days(floor_div(t + VN_OFFSET_S, DAY_S), &y, &m, &d);
	put2(out, (unsigned)(y % 100));
	put2(out + 2, m);
	put2(out + 4, d);
	out[6] = '\0';
}

/*
 * Working time: seconds of office hours since the Monday of the epoch's
 * week. work_of() of a moment outside office hours is the start of the
 * next working period, so wall_of(work_of(t)) snaps t forward into office
 * hours. Holidays are not modelled.
 */
static int64_t work_of(int64_t t)
{
	int64_t local = t + VN_OFFSET_S;
	int64_t day = floor_div(local, DAY_S);
	int64_t sod = local - day * DAY_S;
	int64_t mday = day + 3; /* 1970-01-01 was a Thursday: Monday-based */
	int64_t week = floor_div(mday, 7);
	int64_t wd = mday - week * 7;
	int64_t w = week * WORKWEEK_S;

	if (wd >= 5)
		return w + 5 * WORKDAY_S;
	return w + wd * WORKDAY_S + clamp64(sod - MORNING_START, 0, MORNING_LEN) +
	       clamp64(sod - AFTERNOON_START, 0, AFTERNOON_LEN);
}

static int64_t wall_of(int64_t w)
{
	int64_t week = floor_div(w, WORKWEEK_S);
	int64_t rem = w - week * WORKWEEK_S;
	int64_t wd = rem / WORKDAY_S, within = rem % WORKDAY_S;
	int64_t sod = within < MORNING_LEN ? MORNING_START + within
					   : AFTERNOON_START + within - MORNING_LEN;

	return (week * 7 + wd - 3) * DAY_S + sod - VN_OFFSET_S;
}

static int64_t snap(int64_t t)
{
	return wall_of(work_of(t));
}

/* ---- units (catalog-spec §2) ------------------------------------------ */

static const struct dept {
	const char *code; /* provincial */
	const char *madonvi;
	const char *name;
	const char *from;  /* valid from (yyyy-mm-dd), NULL: always */
	const char *until; /* valid until, NULL: always */
} depts[] = {
	{"UBND-TINH", "000.00.00.H31", "UBND tỉnh Hưng Yên", NULL, NULL},
	{"VP-UBND", "000.00.01.H31", "Văn phòng UBND tỉnh", NULL, NULL},
	{"SNV", "000.00.02.H31", "Sở Nội vụ", NULL, NULL},
	{"STP", "000.00.03.H31", "Sở Tư pháp", NULL, NULL},
	{"STC", "000.00.04.H31", "Sở Tài chính", NULL, NULL},
	{"SCT", "000.00.05.H31", "Sở Công Thương", NULL, NULL},
	{"SNNMT", "000.00.06.H31", "Sở Nông nghiệp và Môi trường", "2025-03-01", NULL},
	{"SXD", "000.00.07.H31", "Sở Xây dựng", NULL, NULL},
	{"SGDDT", "000.00.08.H31", "Sở Giáo dục và Đào tạo", NULL, NULL},
	{"SYT", "000.00.09.H31", "Sở Y tế", NULL, NULL},
	{"SVHTTDL", "000.00.10.H31", "Sở Văn hóa, Thể thao và Du lịch", NULL, NULL},
	{"SKHCN", "000.00.11.H31", "Sở Khoa học và Công nghệ", NULL, NULL},
	{"SDTTG", "000.00.12.H31", "Sở Dân tộc và Tôn giáo", "2025-03-01", NULL},
	{"TTRA", "000.00.13.H31", "Thanh tra tỉnh", NULL, NULL},
	{"CATINH", "000.00.14.H31", "Công an tỉnh", NULL, NULL},
	{"SKHDT", "000.00.15.H31", "Sở Kế hoạch và Đầu tư", NULL, "2025-02-28"},
};

#define UBND_XA "UBND-XA"

static int64_t date_of(const char *ymd)
{
	unsigned y, m, d;

	if (ymd == NULL || sscanf(ymd, "%4u-%2u-%2u", &y, &m, &d) != 3)
		return 0;
	return vn_time(y, m, d, 0, 0, 0);
}

/* True when department k exists at time t. */
static bool dept_valid(unsigned k, int64_t t)
{
	const struct dept *dp = &depts[k];

	if (dp->from != NULL && t < date_of(dp->from))
		return false;
	if (dp->until != NULL && t >= date_of(dp->until) + DAY_S)
		return false;
	return true;
}

static int dept_find(const char *code)
{
	for (unsigned k = 0; k < SIM_ARRAY_SIZE(depts); k++) {
		if (strcmp(depts[k].code, code) == 0)
			return (int)k;
	}
	return -1;
}

/* ---- procedures (a snapshot of the catalogue at start) ----------------- */

enum limit_unit { LU_WORKDAY, LU_DAY, LU_HOUR, LU_MONTH };

struct dproc {
	char *code, *name, *field, *field_name, *result;
	int dept;	   /* department executing it, -1: communes only */
	bool commune;	   /* UBND-XA executes it */
	unsigned channels; /* bit k: channel k (1..3) */
	enum limit_unit unit;
	double limit;
	unsigned n_fees;
	struct {
		char *ma, *desc;
		int64_t amount;
	} fees[2];
	unsigned n_docs;
	char *docs[6];
	uint64_t weight_end; /* cumulative weight, for the weighted draw */
};

/* ---- the log ------------------------------------------------------------ */

#define CHUNK_BITS 26
#define CHUNK_SIZE ((uint64_t)1 << CHUNK_BITS)
#define MAX_CHUNKS 16384
#define BLOCK_BITS 16
#define BLOCK_SIZE ((uint64_t)1 << BLOCK_BITS)
#define MAX_BLOCKS 4096 /* 268 million changes */
#define REF_MARK   '\x01'
#define REF_BYTES  9

/* A change of the log: its encoded text and the length once expanded. */
struct centry {
	uint64_t off;
	uint32_t len;
	uint32_t text_len;
};

static struct {
	char *chunks[MAX_CHUNKS];
	struct centry *blocks[MAX_BLOCKS];
	uint64_t used;	    /* arena offset of the next byte */
	_Atomic uint64_t n; /* published changes: seq 1..n */
} L;

static char *arena_at(uint64_t off)
{
	return L.chunks[off >> CHUNK_BITS] + (off & (CHUNK_SIZE - 1));
}

/* Room for n bytes that never straddle two chunks. Generator lock held. */
static uint64_t arena_alloc(size_t n)
{
	uint64_t off = L.used;
	size_t c;

	if (n > CHUNK_SIZE)
		sim_die("dossier: a text of %zu bytes", n);
	if ((off & (CHUNK_SIZE - 1)) + n > CHUNK_SIZE)
		off = (off | (CHUNK_SIZE - 1)) + 1;
	c = (size_t)(off >> CHUNK_BITS);
	if (c >= MAX_CHUNKS)
		sim_die("dossier: the change log is full");
	if (L.chunks[c] == NULL)
		L.chunks[c] = sim_xmalloc(CHUNK_SIZE);
	L.used = off + n;
	return off;
}

/* Stores a fragment; returns its reference (offset << 24 | length). */
static uint64_t frag_put(const char *s, size_t n)
{
	uint64_t off;

	if (n >= (1u << 24))
		sim_die("dossier: a fragment of %zu bytes", n);
	off = arena_alloc(n);
	memcpy(arena_at(off), s, n);
	return off << 24 | n;
}

/* A change being encoded: literal text and fragment references. */
struct enc {
	struct sim_buf b;
	uint64_t text_len;
};

static void lit(struct enc *e, const char *s, size_t n)
{
	sim_buf_add(&e->b, s, n);
	e->text_len += n;
}

static void lits(struct enc *e, const char *s)
{
	lit(e, s, strlen(s));
}

static void ref(struct enc *e, uint64_t r)
{
	char m[REF_BYTES];

	m[0] = REF_MARK;
	for (unsigned i = 0; i < 8; i++)
		m[1 + i] = (char)(r >> (8 * i));
	sim_buf_add(&e->b, m, sizeof(m));
	e->text_len += r & 0xffffff;
}

/* Appends the encoded change e (emptied) as the next seq and publishes it. */
static uint64_t log_append(struct enc *e)
{
	uint64_t n = atomic_load_explicit(&L.n, memory_order_relaxed);
	uint64_t off, blk = n >> BLOCK_BITS;
	struct centry *ce;

	if (blk >= MAX_BLOCKS || e->text_len >= UINT32_MAX)
		sim_die("dossier: the change log is full");
	off = arena_alloc(e->b.len);
	memcpy(arena_at(off), e->b.data, e->b.len);
	if (L.blocks[blk] == NULL)
		L.blocks[blk] = sim_xmalloc(BLOCK_SIZE * sizeof(struct centry));
	ce = &L.blocks[blk][n & (BLOCK_SIZE - 1)];
	ce->off = off;
	ce->len = (uint32_t)e->b.len;
	ce->text_len = (uint32_t)e->text_len;
	atomic_store_explicit(&L.n, n + 1, memory_order_release);
	e->b.len = 0;
	e->text_len = 0;
	return n + 1;
}

static const struct centry *log_entry(uint64_t seq)
{
	return &L.blocks[(seq - 1) >> BLOCK_BITS][(seq - 1) & (BLOCK_SIZE - 1)];
}

/* Copies the text of ce, references expanded, to out; returns the bytes written. */
static size_t log_expand(const struct centry *ce, char *out)
{
	const char *p = arena_at(ce->off), *end = p + ce->len;
	char *o = out;

	while (p < end) {
		const char *m = memchr(p, REF_MARK, (size_t)(end - p));
		uint64_t r = 0;

		if (m == NULL)
			m = end;
		memcpy(o, p, (size_t)(m - p));
		o += m - p;
		if (m == end)
			break;
		for (unsigned i = 0; i < 8; i++)
			r |= (uint64_t)(unsigned char)m[1 + i] << (8 * i);
		memcpy(o, arena_at(r >> 24), r & 0xffffff);
		o += r & 0xffffff;
		p = m + REF_BYTES;
	}
	return (size_t)(o - out);
}

static void log_free(void)
{
	for (size_t i = 0; i < MAX_CHUNKS && L.chunks[i] != NULL; i++) {
		free(L.chunks[i]);
		L.chunks[i] = NULL;
	}
	for (size_t i = 0; i < MAX_BLOCKS && L.blocks[i] != NULL; i++) {
		free(L.blocks[i]);
		L.blocks[i] = NULL;
	}
	L.used = 0;
	atomic_store(&L.n, 0);
}

/* ---- append times ---------------------------------------------------------- */

/*
 * When each change was appended, for the portal's latency figures: an open
 * addressing table (linear probing) of the changes' keys (never 0: 0 is an
 * empty slot) beside 32-bit stamps: bit 31 "received", bits 0..30 the
 * append time in ms since the table's epoch (saturating after 24 days).
 * 12 bytes a slot, the load at most 3/4: 24 MB for 10^6 changes. Its own
 * mutex, taken per change by the writer (under the generator's lock) and
 * per batch by the portal (under the portal's): the generator's or the
 * portal's first, then this one.
 */
#define AT_RECEIVED ((uint32_t)1 << 31)
#define AT_MS_MAX   (AT_RECEIVED - 1)

static struct {
	pthread_mutex_t lock;
	uint64_t *keys;
	uint32_t *stamps;
	size_t cap, n;
	uint64_t epoch_us;
} A = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The slot of key, or the empty one it would take. Lock held, cap > 0. */
static size_t at_find(uint64_t key)
{
	size_t i;

	for (i = key & (A.cap - 1); A.keys[i] != 0 && A.keys[i] != key; i = (i + 1) & (A.cap - 1))
		;
	return i;
}

static void at_grow(void)
{
	uint64_t *keys = A.keys;
	uint32_t *stamps = A.stamps;
	size_t cap = A.cap;

	A.cap = cap ? cap * 2 : (size_t)1 << 16;
	A.keys = sim_xcalloc(A.cap, sizeof(*A.keys));
	A.stamps = sim_xcalloc(A.cap, sizeof(*A.stamps));
	for (size_t k = 0; k < cap; k++) {
		size_t i;

		if (keys[k] == 0)
			continue;
		i = at_find(keys[k]);
		A.keys[i] = keys[k];
		A.stamps[i] = stamps[k];
	}
	free(keys);
	free(stamps);
}

/* Remembers that the change with key was appended now; a key seen before keeps its time. */
static void at_record(uint64_t key)
{
	uint64_t now = sim_now_us(), ms;
	size_t i;

	if (key == 0)
		return;
	pthread_mutex_lock(&A.lock);
	if (A.cap == 0)
		A.epoch_us = now;
	if (4 * (A.n + 1) > 3 * A.cap)
		at_grow();
	i = at_find(key);
	if (A.keys[i] == 0) {
		ms = (now - A.epoch_us) / 1000;
		A.keys[i] = key;
		A.stamps[i] = (uint32_t)(ms < AT_MS_MAX ? ms : AT_MS_MAX);
		A.n++;
	}
	pthread_mutex_unlock(&A.lock);
}

int sim_dossier_change_received(uint64_t key, uint64_t *appended_us)
{
	int r = -ENOENT;
	size_t i;

	if (key == 0)
		return -ENOENT;
	pthread_mutex_lock(&A.lock);
	if (A.cap > 0) {
		i = at_find(key);
		if (A.keys[i] == key && (A.stamps[i] & AT_RECEIVED) != 0) {
			r = 0;
		} else if (A.keys[i] == key) {
			*appended_us = A.epoch_us + (uint64_t)A.stamps[i] * 1000;
			A.stamps[i] |= AT_RECEIVED;
			r = 1;
		}
	}
	pthread_mutex_unlock(&A.lock);
	return r;
}

void sim_dossier_changes_unmark(void)
{
	pthread_mutex_lock(&A.lock);
	for (size_t i = 0; i < A.cap; i++)
		A.stamps[i] &= ~AT_RECEIVED;
	pthread_mutex_unlock(&A.lock);
}

static uint64_t key_add(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return (h ^ 0x1f) * 1099511628211u; /* a separator */
}

uint64_t sim_dossier_change_key(const char *mahoso, const char *when14, int status)
{
	char st[16];
	uint64_t h = 1469598103934665603u;

	if (mahoso == NULL || mahoso[0] == '\0' || when14 == NULL || strlen(when14) != 14 ||
	    status < 1 || status > 10)
		return 0;
	snprintf(st, sizeof(st), "%d", status);
	h = sim_mix64(key_add(key_add(key_add(h, mahoso), when14), st));
	return h != 0 ? h : 1;
}

static void at_free(void)
{
	pthread_mutex_lock(&A.lock);
	free(A.keys);
	free(A.stamps);
	A.keys = NULL;
	A.stamps = NULL;
	A.cap = A.n = 0;
	pthread_mutex_unlock(&A.lock);
}

/* ---- JSON text ----------------------------------------------------------- */

static void esc(struct sim_buf *b, const char *s)
{
	const char *run = s;

	sim_buf_add(b, "\"", 1);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		sim_buf_add(b, run, (size_t)(s - run));
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};

			sim_buf_add(b, e, 2);
		} else {
			sim_buf_addf(b, "\\u%04x", c);
		}
		run = s + 1;
	}
	sim_buf_add(b, run, (size_t)(s - run));
	sim_buf_add(b, "\"", 1);
}

/* ,"key":"value" (comma unless first). */
static void kstr(struct sim_buf *b, const char *key, const char *v, bool comma)
{
	sim_buf_addf(b, "%s\"%s\":", comma ? "," : "", key);
	esc(b, v);
}

static void kint(struct sim_buf *b, const char *key, int64_t v)
{
	sim_buf_addf(b, ",\"%s\":%lld", key, (long long)v);
}

/* ,"key":"ISO" or ,"key":null for 0. */
static void kdate(struct sim_buf *b, const char *key, int64_t t, bool comma)
{
	char iso[ISO_LEN + 1];

	if (t == 0) {
		sim_buf_addf(b, "%s\"%s\":null", comma ? "," : "", key);
		return;
	}
	fmt_iso(t, iso);
	sim_buf_addf(b, "%s\"%s\":\"%s\"", comma ? "," : "", key, iso);
}

/* ---- dossiers --------------------------------------------------------------- */

/* What a step does to the header. */
enum effect {
	EFF_NONE,
	EFF_ACCEPT,
	EFF_REJECT,
	EFF_SUPP,
	EFF_RESUME,
	EFF_DONE,
	EFF_RETURN,
	EFF_END
};

#define ROLE_CITIZEN SIM_STAFF__COUNT

struct step {
	int64_t t;
	int64_t aux; /* EFF_ACCEPT, EFF_RESUME: the due date from then on */
	uint8_t status;
	uint8_t text; /* enum sim_step_text */
	uint8_t variant;
	uint8_t role; /* enum sim_staff_role or ROLE_CITIZEN */
	uint8_t effect;
};

/* An open dossier: its plan and the header as the log has shown it so far. */
struct dossier {
	uint64_t index;
	char code[64]; /* maHoSo */
	const struct dproc *proc;
	uint8_t n_steps, next, n_supp;
	bool has_result, dates_dirty, lists_dirty;
	struct step steps[MAX_STEPS];
	int64_t accepted, due, finished, returned, rejected; /* 0: null */
	struct {
		int64_t asked, due_before, due_after;
		uint8_t variant;
	} supp[2];
	uint64_t ref_a, ref_b, ref_dates, ref_lists, ref_citizen;
	uint64_t ref_staff[SIM_STAFF__COUNT];
};

/* Classes of arrivals. */
enum cls { CLS_PRE, CLS_OLD, CLS_RECENT, CLS_LATER };

/* Malformed kinds (spec §4). */
/* MAL_NOHOSO (a change without its dossier) only when asked for by kind:
 * the kinds in turn stop at MAL_OVERSIZE. */
enum mal { MAL_NONE, MAL_STATUS, MAL_UNIT, MAL_DATES, MAL_OVERSIZE, MAL_NOHOSO, MAL__COUNT };
static const char *const mal_names[MAL__COUNT] = {NULL,	   "status",   "unit",
						  "dates", "oversize", "nohoso"};

static const char *const status_names[11] = {
	NULL,	      "MOI_DANG_KY",	 "DA_TIEP_NHAN",       "TU_CHOI_TIEP_NHAN",
	"DANG_XU_LY", "YEU_CAU_BO_SUNG", "NGHIA_VU_TAI_CHINH", "CONG_DAN_RUT",
	"DUNG_XU_LY", "DA_XU_LY_XONG",	 "DA_TRA_KET_QUA",
};

/* A heap entry: the next step of an open dossier, or (d NULL) the arrival of index. */
struct hev {
	int64_t t;
	uint64_t index;
	struct dossier *d;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t rate_thread;
	bool rate_running, stopping;
	double rate_per_s;
	uint64_t rate_start_us, rate_done;

	struct dproc *procs; /* owned, with their strings */
	size_t n_procs;
	uint64_t weight_total;
	size_t *old_ok; /* indices of old communes that became part of one new commune */
	size_t n_old_ok;

	int64_t now, window_start, old_start, pre_start, reform;
	uint64_t n_pre, n_old, n_recent, n_total;

	struct hev *heap; /* owned, and the dossiers in it */
	size_t n_heap, cap_heap;
	uint64_t next_arrival; /* index of the arrival in the heap */
	uint64_t dossiers;     /* arrived */
	uint64_t malformed;
	int64_t last_time;

	struct sim_map *serials; /* "agency-yyMMdd" -> last serial */
	struct sim_map *staff;	 /* "unit|role|k" -> fragment reference */
	uint64_t ref_text[SIM_TXT__COUNT][8];
	uint64_t ref_lists_empty;
	struct enc enc; /* the change being encoded, reused */
} G = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

/* Sub-streams of SIM_STREAM_DATA (the catalogue uses kinds below 0x20). */
enum { K_ARRIVAL = 0x21, K_DOSSIER, K_STAFF, K_MALFORMED, K_PROC };

static uint64_t dstream(unsigned kind, uint64_t index)
{
	return sim_mix64(((uint64_t)SIM_STREAM_DATA << 48) ^ ((uint64_t)kind << 40) ^ index);
}

static double uni(struct sim_rng *rng, double a, double b)
{
	return a + (b - a) * sim_unit(sim_rng_next(rng));
}

static int64_t uni_s(struct sim_rng *rng, double a, double b)
{
	return (int64_t)uni(rng, a, b);
}

/* Chance in per mille. */
static bool permille(struct sim_rng *rng, unsigned pm)
{
	return sim_rng_below(rng, 1000) < pm;
}

/* ---- the plan of a dossier ------------------------------------------------ */

static int64_t due_of(const struct dproc *p, int64_t t)
{
	double v = p->limit > 0 ? p->limit : 1;

	switch (p->unit) {
	case LU_HOUR: return wall_of(work_of(t) + (int64_t)(v * HOUR_S));
	case LU_DAY: return snap(t + (int64_t)(v * DAY_S));
	case LU_MONTH: return snap(t + (int64_t)(v * 30 * DAY_S));
	default: return wall_of(work_of(t) + (int64_t)(v * WORKDAY_S));
	}
}

/*
 * Adds a step at t or, when that is not after the previous one, a little
 * after it; officials act in office hours only.
 */
static void add_step(struct dossier *d, struct sim_rng *rng, int64_t t, unsigned status,
		     enum sim_step_text text, unsigned role, enum effect eff, int64_t aux)
{
	struct step *s;
	unsigned n;

	if (d->n_steps >= MAX_STEPS)
		return;
	if (d->n_steps > 0 && t < d->steps[d->n_steps - 1].t + 60)
		t = d->steps[d->n_steps - 1].t + 60 + (int64_t)sim_rng_below(rng, 900);
	/* Out of office hours: some time into the next working period, not all at 07:30. */
	if (role != ROLE_CITIZEN && snap(t) != t)
		t = wall_of(work_of(t) + (int64_t)sim_rng_below(rng, 90 * 60));
	s = &d->steps[d->n_steps++];
	sim_dossier_step_texts(text, &n);
	s->t = t;
	s->aux = aux;
	s->status = (uint8_t)status;
	s->text = (uint8_t)text;
	s->variant = (uint8_t)sim_rng_below(rng, n);
	s->role = (uint8_t)role;
	s->effect = (uint8_t)eff;
}

static int64_t last_t(const struct dossier *d)
{
	return d->steps[d->n_steps - 1].t;
}

/* The usual life: 1|2 -> 4 ... -> 9 -> 10, with the detours of spec §4. */
static void plan_regular(struct dossier *d, struct sim_rng *rng, int64_t r, bool online)
{
	const struct dproc *p = d->proc;
	int64_t t2, due, cur, wdue, span, t9;
	unsigned n_mid, n_supp, supp_at, end_at, end_status = 9;
	bool late;

	if (online) {
		add_step(d, rng, r, 1, SIM_TXT_SUBMIT, ROLE_CITIZEN, EFF_NONE, 0);
		if (permille(rng, 30)) {
			add_step(d, rng, wall_of(work_of(r) + uni_s(rng, 0.2 * HOUR_S, 8 * HOUR_S)),
				 3, SIM_TXT_REJECT, SIM_STAFF_DESK, EFF_REJECT, 0);
			return;
		}
		if (permille(rng, 10)) {
			add_step(d, rng, r + uni_s(rng, 600, 20 * HOUR_S), 7, SIM_TXT_WITHDRAW,
				 ROLE_CITIZEN, EFF_END, 0);
			return;
		}
		t2 = wall_of(work_of(r) + uni_s(rng, 0.2 * HOUR_S, 6 * HOUR_S));
	} else {
		t2 = snap(r) == r ? r : wall_of(work_of(r) + uni_s(rng, 0, 3 * HOUR_S));
	}
	add_step(d, rng, t2, 2, SIM_TXT_ACCEPT, SIM_STAFF_DESK, EFF_ACCEPT, 0);
	t2 = last_t(d);
	due = due_of(p, t2);
	d->steps[d->n_steps - 1].aux = due;
	cur = work_of(t2);
	wdue = work_of(due);
	span = wdue - cur > 1800 ? wdue - cur : 1800;
	late = permille(rng, 150);

	cur += (int64_t)(uni(rng, 0.01, 0.06) * (double)span) + 60;
	add_step(d, rng, wall_of(cur), 4, SIM_TXT_TRANSFER, SIM_STAFF_DESK, EFF_NONE, 0);
	cur = work_of(last_t(d));

	n_mid = (unsigned)sim_rng_below(rng, 3);
	n_supp = permille(rng, 140) ? (permille(rng, 150) ? 2 : 1) : 0;
	supp_at = (unsigned)sim_rng_below(rng, n_mid + 1);
	if (permille(rng, 20))
		end_status = 7;
	else if (permille(rng, 15))
		end_status = 8;
	end_at = (unsigned)sim_rng_below(rng, n_mid + 1);

	for (unsigned k = 0; k <= n_mid; k++) {
		for (unsigned s = 0; k == supp_at && s < n_supp; s++) {
			int64_t back, ndue;

			cur += (int64_t)(uni(rng, 0.05, 0.2) * (double)span) + 60;
			add_step(d, rng, wall_of(cur), 5, SIM_TXT_SUPPLEMENT, SIM_STAFF_SPECIALIST,
				 EFF_SUPP, 0);
			if (permille(rng, 80)) {
				/* The applicant never comes back. */
				add_step(d, rng, last_t(d) + uni_s(rng, 15.0 * DAY_S, 30.0 * DAY_S),
					 8, SIM_TXT_STOP, SIM_STAFF_SPECIALIST, EFF_END, 0);
				d->steps[d->n_steps - 1].variant = 0;
				return;
			}
			back = snap(last_t(d) + uni_s(rng, 1.0 * DAY_S, 10.0 * DAY_S));
			ndue = due_of(p, back);
			add_step(d, rng, back, 4, SIM_TXT_RESUME, SIM_STAFF_DESK, EFF_RESUME, ndue);
			cur = work_of(last_t(d));
			wdue = work_of(ndue);
			span = wdue - cur > 1800 ? wdue - cur : 1800;
		}
		if (end_status != 9 && k == end_at) {
			cur += (int64_t)(uni(rng, 0.05, 0.3) * (double)span) + 60;
			add_step(d, rng, wall_of(cur), end_status,
				 end_status == 7 ? SIM_TXT_WITHDRAW : SIM_TXT_STOP,
				 end_status == 7 ? SIM_STAFF_DESK : SIM_STAFF_SPECIALIST, EFF_END,
				 0);
			return;
		}
		if (k < n_mid) {
			cur += (int64_t)(uni(rng, 0.1, 0.3) * (double)span) + 60;
			enum sim_step_text mt = n_mid == 2 && k == 1 ? SIM_TXT_SIGN
						: permille(rng, 300) ? SIM_TXT_CONSULT
								     : SIM_TXT_REVIEW;

			add_step(d, rng, wall_of(cur), 4, mt, SIM_STAFF_SPECIALIST, EFF_NONE, 0);
			cur = work_of(last_t(d));
		}
	}
	if (p->n_fees > 0 && permille(rng, 300)) {
		int64_t paid;

		cur += (int64_t)(uni(rng, 0.05, 0.15) * (double)span) + 60;
		add_step(d, rng, wall_of(cur), 6, SIM_TXT_FEE, SIM_STAFF_SPECIALIST, EFF_NONE, 0);
		paid = snap(last_t(d) + uni_s(rng, 0.5 * DAY_S, 4.0 * DAY_S));
		if (permille(rng, 600))
			add_step(d, rng, paid, 4, SIM_TXT_PAID, SIM_STAFF_DESK, EFF_NONE, 0);
		cur = work_of(paid);
	}
	if (late) {
		double over = (double)(span > WORKDAY_S ? span : WORKDAY_S);

		t9 = wdue + (int64_t)(uni(rng, 0.05, 0.6) * over) + 60;
		if (t9 < cur + 600)
			t9 = cur + 600;
	} else {
		int64_t room = wdue - cur;

		t9 = room > 1200 ? cur + (int64_t)(uni(rng, 0.2, 0.9) * (double)room) : cur + 600;
	}
	add_step(d, rng, wall_of(t9), 9, SIM_TXT_DONE, SIM_STAFF_LEADER, EFF_DONE, 0);
	if (permille(rng, 30))
		return; /* never collected */
	t9 = work_of(last_t(d));
	add_step(d, rng,
		 wall_of(t9 + (online ? uni_s(rng, 120, 4 * HOUR_S)
				      : uni_s(rng, 0.3 * HOUR_S, 3.0 * WORKDAY_S))),
		 10, SIM_TXT_RETURN, SIM_STAFF_DESK, EFF_RETURN, 0);
	/* Variants 0, 1: in person; 2: an electronic result. */
	d->steps[d->n_steps - 1].variant = online ? 2 : (uint8_t)sim_rng_below(rng, 2);
}

/*
 * A dossier received before the reform that stalled: accepted in June
 * 2025, consulted on, touched again after 1 July, and finished late around
 * "now" (or still open, overdue).
 */
static void plan_stalled(struct dossier *d, struct sim_rng *rng, int64_t r)
{
	int64_t t2 = snap(r) == r ? r : wall_of(work_of(r) + uni_s(rng, 0, 3 * HOUR_S)), again, t9;

	add_step(d, rng, t2, 2, SIM_TXT_ACCEPT, SIM_STAFF_DESK, EFF_ACCEPT, due_of(d->proc, t2));
	add_step(d, rng, wall_of(work_of(t2) + uni_s(rng, 0.5 * HOUR_S, WORKDAY_S)), 4,
		 SIM_TXT_TRANSFER, SIM_STAFF_DESK, EFF_NONE, 0);
	add_step(d, rng, snap(t2 + uni_s(rng, 7.0 * DAY_S, 20.0 * DAY_S)), 4, SIM_TXT_CONSULT,
		 SIM_STAFF_SPECIALIST, EFF_NONE, 0);
	again = G.reform + uni_s(rng, 2.0 * DAY_S, 40.0 * DAY_S);
	if (again > G.now - 3 * DAY_S)
		again = G.reform + uni_s(rng, 0.5 * DAY_S, 2.0 * DAY_S);
	add_step(d, rng, snap(again), 4, SIM_TXT_REVIEW, SIM_STAFF_SPECIALIST, EFF_NONE, 0);
	t9 = G.now + uni_s(rng, -10.0 * DAY_S, 10.0 * DAY_S);
	add_step(d, rng, t9, 9, SIM_TXT_DONE, SIM_STAFF_LEADER, EFF_DONE, 0);
	add_step(d, rng, wall_of(work_of(last_t(d)) + uni_s(rng, 0.3 * HOUR_S, 2.0 * WORKDAY_S)),
		 10, SIM_TXT_RETURN, SIM_STAFF_DESK, EFF_RETURN, 0);
	d->steps[d->n_steps - 1].variant = (uint8_t)sim_rng_below(rng, 2);
}

/* ---- rendering the fixed parts ------------------------------------------ */

/* The unit a dossier is received by. */
struct unit {
	char code[32];	  /* provincial: "STP", "UBND-11953" */
	char agency[32];  /* national agency id: "000.00.03.H31", "H31.11953" */
	char name[160];	  /* "Sở Tư pháp", "UBND Xã Tân Hưng" */
	const char *dept; /* provincial code of a department, NULL: a commune */
	const char *commune, *district, *province; /* the applicant's commune */
	bool old;
};

/* A commune for an applicant or a unit: old before the reform. */
static void pick_commune(struct sim_rng *rng, bool old, struct unit *u)
{
	if (old && G.n_old_ok > 0) {
		const struct sim_old_commune *oc =
			&sim_old_communes[G.old_ok[sim_rng_below(rng, G.n_old_ok)]];

		snprintf(u->code, sizeof(u->code), "UBND-%s", oc->code);
		snprintf(u->agency, sizeof(u->agency), "H31.%s", oc->new_code);
		snprintf(u->name, sizeof(u->name), "UBND %s", oc->name);
		u->commune = oc->name;
		u->district = oc->district;
		u->province = oc->province;
		u->old = true;
		return;
	}
	{
		const struct sim_commune *c = &sim_communes[sim_rng_below(rng, sim_n_communes)];

		snprintf(u->code, sizeof(u->code), "UBND-%s", c->code);
		snprintf(u->agency, sizeof(u->agency), "H31.%s", c->code);
		snprintf(u->name, sizeof(u->name), "UBND %s", c->name);
		u->commune = c->name;
		u->district = NULL;
		u->province = NULL;
		u->old = false;
	}
}

/* The fragment of an official: "nguoiXuLy","chucDanh","phongBan". */
static uint64_t staff_ref(const struct unit *u, enum sim_staff_role role, unsigned k)
{
	char key[64], name[128];
	const char *office, *title;
	struct sim_buf b = {0};
	struct sim_rng rng;
	uint64_t h = 1469598103934665603u, r;
	void *v;

	snprintf(key, sizeof(key), "%s|%d|%u", u->code, (int)role, k);
	v = sim_map_get(G.staff, key);
	if (v != NULL)
		return (uint64_t)(uintptr_t)v;
	for (const char *s = key; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	sim_rng_init(&rng, dstream(K_STAFF, h));
	sim_dossier_person(&rng, name, sizeof(name), NULL);
	sim_dossier_staff_post(u->dept, u->old, role, k, &office, &title);
	kstr(&b, "nguoiXuLy", name, false);
	kstr(&b, "chucDanh", title, true);
	if (u->dept == NULL && (office[0] == '\0' || role != SIM_STAFF_SPECIALIST)) {
		char full[224];

		/* "Bộ phận Một cửa UBND Xã Tân Hưng", "Lãnh đạo UBND Xã Tân Hưng" */
		snprintf(full, sizeof(full), "%s%s%s", office, office[0] ? " " : "", u->name);
		kstr(&b, "phongBan", full, true);
	} else {
		kstr(&b, "phongBan", office, true);
	}
	r = frag_put(b.data, b.len);
	sim_buf_free(&b);
	sim_map_put(G.staff, key, (void *)(uintptr_t)r);
	return r;
}

/* "dd" digits of v into s. */
static void digits(struct sim_rng *rng, char *s, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		s[i] = (char)('0' + sim_rng_below(rng, 10));
	s[n] = '\0';
}

static const char *const id_provinces[] = {"033", "033", "033", "034", "034", "034",
					   "034", "001", "030", "035", "036", "022"};
static const char *const phone_prefixes[] = {"098", "097", "096", "091", "094", "088", "086",
					     "035", "036", "038", "039", "070", "079", "083"};
static const char *const mail_domains[] = {"gmail.com", "gmail.com",   "gmail.com",
					   "yahoo.com", "outlook.com", "hungyen.gov.vn"};

/* Number of characters (code points) of UTF-8 text s. */
static size_t chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

/* Appends unit to buf (cap bytes) until the text has at least want characters. */
static void pad_chars(char *buf, size_t cap, const char *unit, size_t want)
{
	size_t len = strlen(buf), n = chars(buf), ulen = strlen(unit), uchars = chars(unit);

	while (n < want && len + ulen < cap) {
		memcpy(buf + len, unit, ulen + 1);
		len += ulen;
		n += uchars;
	}
}

/*
 * Plans dossier index (received at r, of class cls) into d and renders its
 * fixed parts (fragments A and B, its officials, the applicant for online
 * steps). mal breaks one aspect for a malformed change.
 */
static void dossier_plan(struct dossier *d, uint64_t index, int64_t r, enum cls cls, enum mal mal)
{
	struct sim_rng rng;
	struct unit u, home;
	const struct dproc *p = NULL;
	char name[720], idno[16], phone[16], email[96], addr[320], ascii[64], trich[4096];
	struct sim_buf b = {0};
	unsigned loai, kenh, tries;
	bool online, pre = r < G.reform, female;
	uint64_t fi;

	memset(d, 0, sizeof(*d));
	d->index = index;
	sim_rng_init(&rng, dstream(mal != MAL_NONE ? K_MALFORMED : K_DOSSIER, index));

	/* The procedure, one that exists at r (and a communal one for a stalled dossier). */
	for (tries = 0; tries < 24; tries++) {
		uint64_t w = sim_rng_below(&rng, G.weight_total);
		size_t lo = 0, hi = G.n_procs - 1;

		while (lo < hi) {
			size_t mid = (lo + hi) / 2;

			if (G.procs[mid].weight_end > w)
				hi = mid;
			else
				lo = mid + 1;
		}
		p = &G.procs[lo];
		if (cls == CLS_PRE && !p->commune && tries < 23)
			continue;
		if (p->dept >= 0 && !p->commune && !dept_valid((unsigned)p->dept, r) && tries < 23)
			continue;
		break;
	}
	d->proc = p;

	/* The unit, and the commune the applicant lives in. */
	memset(&u, 0, sizeof(u));
	memset(&home, 0, sizeof(home));
	pick_commune(&rng, pre, &home);
	if (p->commune && (p->dept < 0 || cls == CLS_PRE || permille(&rng, 600))) {
		u = home;
	} else {
		const struct dept *dp = &depts[p->dept >= 0 ? p->dept : 3];

		snprintf(u.code, sizeof(u.code), "%s", dp->code);
		snprintf(u.agency, sizeof(u.agency), "%s", dp->madonvi);
		snprintf(u.name, sizeof(u.name), "%s", dp->name);
		u.dept = dp->code;
	}

	/* The channel. */
	online = (p->channels & 4) && (permille(&rng, 450) || !(p->channels & (2 | 8))) &&
		 mal == MAL_NONE;
	if (online)
		kenh = 2;
	else if ((p->channels & 8) && (permille(&rng, 50) || !(p->channels & 2)))
		kenh = 3;
	else
		kenh = 1;

	/* The life. */
	if (mal != MAL_NONE)
		add_step(d, &rng, r, 2, SIM_TXT_ACCEPT, SIM_STAFF_DESK, EFF_ACCEPT, due_of(p, r));
	else if (cls == CLS_PRE)
		plan_stalled(d, &rng, r);
	else
		plan_regular(d, &rng, r, online);
	if (mal != MAL_NONE)
		d->steps[0].t = r; /* in the feed's order, even out of office hours */

	/* The code: <agency>-<yyMMdd>-<serial>, serials per agency and day. */
	{
		char key[40], ymd[8];
		uintptr_t serial;

		fmt_yymmdd(d->steps[0].t, ymd);
		snprintf(key, sizeof(key), "%.31s-%s", u.agency, ymd);
		if (mal != MAL_NONE) {
			serial = MALFORMED_SERIAL + (uintptr_t)d->index + 1;
		} else {
			serial = (uintptr_t)sim_map_get(G.serials, key) + 1;
			sim_map_put(G.serials, key, (void *)serial);
		}
		snprintf(d->code, sizeof(d->code), "%s-%05lu", key, (unsigned long)serial);
	}

	/* The applicant. */
	fi = sim_rng_below(&rng, 1000);
	loai = fi < 900 ? 1 : fi < 970 ? 2 : fi < 985 ? 3 : 4;
	sim_dossier_person(&rng, name, sizeof(name), &female);
	if (loai != 1)
		sim_dossier_organisation(&rng, loai, home.commune, name, sizeof(name));
	if (permille(&rng, 920)) {
		unsigned birth = 1950 + (unsigned)sim_rng_below(&rng, 56);

		snprintf(idno, sizeof(idno), "%s%u%02u",
			 id_provinces[sim_rng_below(&rng, SIM_ARRAY_SIZE(id_provinces))],
			 (birth >= 2000 ? 2u : 0u) + (female ? 1u : 0u), birth % 100);
		digits(&rng, idno + 6, 6);
	} else {
		snprintf(idno, sizeof(idno), "%s", permille(&rng, 500) ? "14" : "15");
		digits(&rng, idno + 2, 7);
	}
	snprintf(phone, sizeof(phone), "%s",
		 phone_prefixes[sim_rng_below(&rng, SIM_ARRAY_SIZE(phone_prefixes))]);
	digits(&rng, phone + 3, 7);
	sim_dossier_ascii(name, ascii, sizeof(ascii));
	if (online || permille(&rng, 500))
		snprintf(email, sizeof(email), "%.40s%u@%s", ascii,
			 (unsigned)sim_rng_below(&rng, 1000),
			 mail_domains[sim_rng_below(&rng, SIM_ARRAY_SIZE(mail_domains))]);
	else
		email[0] = '\0';
	sim_dossier_address(&rng, home.commune, home.district, home.province, addr, sizeof(addr));
	if (mal == MAL_OVERSIZE) /* beyond the portal's 500 characters for ChuHoSo */
		pad_chars(name, sizeof(name), " A", 600);
	if (loai == 1)
		snprintf(trich, sizeof(trich), "%s (%s %s)", p->name, female ? "bà" : "ông", name);
	else
		snprintf(trich, sizeof(trich), "%s (%s)", p->name, name);
	if (mal == MAL_OVERSIZE) /* beyond the portal's 2,000 characters for TrichYeuHoSo */
		pad_chars(trich, sizeof(trich), " - kèm theo", 2500);

	/* Fragment A: maHoSo .. ngayNop. */
	kstr(&b, "maHoSo", d->code, false);
	kstr(&b, "maThuTuc", p->code, true);
	kstr(&b, "tenThuTuc", p->name, true);
	kstr(&b, "maLinhVuc", p->field, true);
	kstr(&b, "tenLinhVuc", p->field_name, true);
	kint(&b, "kenhNop", kenh);
	sim_buf_adds(&b, ",\"chuHoSo\":{");
	kstr(&b, "hoTen", name, false);
	kstr(&b, "soGiayTo", idno, true);
	kint(&b, "loaiDoiTuong", loai);
	kstr(&b, "soDienThoai", phone, true);
	kstr(&b, "email", email, true);
	kstr(&b, "diaChi", addr, true);
	sim_buf_adds(&b, "}");
	kstr(&b, "trichYeu", trich, true);
	kdate(&b, "ngayNop", d->steps[0].t, true);
	d->ref_a = frag_put(b.data, b.len);
	b.len = 0;

	/* Fragment B: donViXuLy .. taiLieu, and a comma. */
	{
		bool digital = online || permille(&rng, 400), paid_online;
		unsigned n_fees = 0, ttt;
		int64_t fee_sum = 0;
		enum sim_payment_render pay = SIM_PAYMENT_AS_IS;

		for (unsigned i = 0; i < p->n_fees; i++) {
			n_fees += p->fees[i].amount > 0;
			fee_sum += p->fees[i].amount > 0 ? p->fees[i].amount : 0;
		}
		paid_online = online && n_fees > 0 && permille(&rng, 600);
		/* The payment side records its payments, and may take them off the header. */
		if (mal == MAL_NONE && fee_sum > 0)
			pay = sim_payment_dossier(
				&(struct sim_payment_dossier){d->index, d->code, d->steps[0].t,
							      G.now, fee_sum, kenh, paid_online});
		kstr(&b, "donViXuLy", mal == MAL_UNIT ? "UBND-99999" : u.code, false);
		if (online)
			kstr(&b, "noiNop",
			     permille(&rng, 500)
				     ? "Cổng Dịch vụ công quốc gia"
				     : "Hệ thống thông tin giải quyết TTHC tỉnh Hưng Yên",
			     true);
		else if (kenh == 3)
			kstr(&b, "noiNop", "Dịch vụ bưu chính công ích (Bưu điện tỉnh Hưng Yên)",
			     true);
		else if (u.dept != NULL)
			kstr(&b, "noiNop", "Trung tâm Phục vụ hành chính công tỉnh Hưng Yên", true);
		else {
			char where[224];

			snprintf(where, sizeof(where), "Bộ phận Một cửa %s", u.name);
			kstr(&b, "noiNop", where, true);
		}
		kint(&b, "coThanhPhanSoHoa", digital);
		kint(&b, "daXacThucVNeID", online && permille(&rng, 850));
		/* Drawn as always, so that the rest of the dossier stays as generated. */
		ttt = paid_online ? (permille(&rng, 500) ? 1 : 2) : 0;
		if (pay == SIM_PAYMENT_NOT_ONLINE) {
			ttt = 0;
			paid_online = false;
		}
		kint(&b, "thanhToanTrucTuyen", ttt);
		sim_buf_adds(&b, ",\"lePhi\":[");
		n_fees = 0;
		for (unsigned i = 0; i < p->n_fees && pay != SIM_PAYMENT_NO_FEES; i++) {
			if (p->fees[i].amount <= 0)
				continue;
			sim_buf_adds(&b, n_fees++ ? ",{" : "{");
			kstr(&b, "ten", p->fees[i].desc, false);
			kstr(&b, "ma", p->fees[i].ma, true);
			kint(&b, "hinhThucThu", paid_online ? 2 : 1);
			kint(&b, "gia", p->fees[i].amount);
			kint(&b, "loai", strncmp(p->fees[i].desc, "Phí", 4) == 0 ? 1 : 2);
			sim_buf_adds(&b, "}");
		}
		sim_buf_adds(&b, "],\"taiLieu\":[");
		for (unsigned i = 0; i < p->n_docs; i++) {
			sim_buf_adds(&b, i ? ",{" : "{");
			kstr(&b, "ten", p->docs[i], false);
			kint(&b, "duocSoHoa", digital && (online || permille(&rng, 700)));
			kint(&b, "duocTaiSuDung", permille(&rng, 150));
			kint(&b, "duocLayTuKhoDMQG", permille(&rng, 100));
			sim_buf_adds(&b, "}");
		}
		sim_buf_adds(&b, "],");
		d->ref_b = frag_put(b.data, b.len);
		b.len = 0;
	}

	/* The officials and, for online steps, the applicant. */
	for (unsigned role = 0; role < SIM_STAFF__COUNT; role++)
		d->ref_staff[role] =
			staff_ref(&u, (enum sim_staff_role)role, (unsigned)sim_rng_below(&rng, 3));
	if (online) {
		kstr(&b, "nguoiXuLy", name, false);
		kstr(&b, "chucDanh", loai == 1 ? "Người nộp hồ sơ" : "Người đại diện tổ chức",
		     true);
		kstr(&b, "phongBan", "", true);
		d->ref_citizen = frag_put(b.data, b.len);
	}
	sim_buf_free(&b);
	d->ref_lists = G.ref_lists_empty;
	d->dates_dirty = true;
}

/* ---- rendering a change --------------------------------------------------- */

static void apply_effect(struct dossier *d, const struct step *s)
{
	switch (s->effect) {
	case EFF_ACCEPT:
		d->accepted = s->t;
		d->due = s->aux;
		d->dates_dirty = true;
		break;
	case EFF_REJECT:
		d->rejected = s->t;
		d->dates_dirty = true;
		break;
	case EFF_SUPP:
		if (d->n_supp < 2) {
			d->supp[d->n_supp].asked = s->t;
			d->supp[d->n_supp].due_before = d->due;
			d->supp[d->n_supp].due_after = 0;
			d->supp[d->n_supp].variant = s->variant;
			d->n_supp++;
		}
		d->lists_dirty = true;
		break;
	case EFF_RESUME:
		if (d->n_supp > 0)
			d->supp[d->n_supp - 1].due_after = s->aux;
		d->due = s->aux;
		d->dates_dirty = d->lists_dirty = true;
		break;
	case EFF_DONE:
		d->finished = s->t;
		d->has_result = true;
		d->dates_dirty = d->lists_dirty = true;
		break;
	case EFF_RETURN:
		d->returned = s->t;
		d->dates_dirty = true;
		break;
	case EFF_END:
		d->finished = s->t;
		d->dates_dirty = true;
		break;
	default: break;
	}
}

static void render_dates(struct dossier *d, enum mal mal)
{
	struct sim_buf b = {0};

	kdate(&b, "ngayTiepNhan", mal == MAL_DATES ? 0 : d->accepted, true);
	kdate(&b, "ngayHenTra", mal == MAL_DATES ? 0 : d->due, true);
	kdate(&b, "ngayKetThuc", d->finished, true);
	kdate(&b, "ngayTra", d->returned, true);
	kdate(&b, "ngayTuChoi", d->rejected, true);
	sim_buf_add(&b, ",", 1);
	d->ref_dates = frag_put(b.data, b.len);
	d->dates_dirty = false;
	sim_buf_free(&b);
}

static void render_lists(struct dossier *d)
{
	struct sim_buf b = {0};
	unsigned n;
	const char *const *texts = sim_dossier_step_texts(SIM_TXT_SUPPLEMENT, &n);

	sim_buf_adds(&b, "\"boSung\":[");
	for (unsigned i = 0; i < d->n_supp; i++) {
		sim_buf_adds(&b, i ? ",{" : "{");
		kdate(&b, "ngayYeuCau", d->supp[i].asked, false);
		kdate(&b, "ngayHenTraTruoc", d->supp[i].due_before, true);
		kdate(&b, "ngayHenTraMoi", d->supp[i].due_after, true);
		kstr(&b, "noiDung", texts[d->supp[i].variant % n], true);
		sim_buf_adds(&b, "}");
	}
	sim_buf_adds(&b, "],\"ketQua\":[");
	if (d->has_result) {
		char url[160];

		snprintf(url, sizeof(url), "https://dichvucong.hungyen.gov.vn/ket-qua/%s/1.pdf",
			 d->code);
		sim_buf_adds(&b, "{");
		kstr(&b, "ten", d->proc->result, false);
		kstr(&b, "duongDan", url, true);
		sim_buf_adds(&b, "}");
	}
	sim_buf_adds(&b, "]}");
	d->ref_lists = frag_put(b.data, b.len);
	d->lists_dirty = false;
	sim_buf_free(&b);
}

/* Appends step d->next of d to the log (at time t, normally the step's). */
static void emit(struct dossier *d, enum mal mal)
{
	const struct step *s = &d->steps[d->next];
	struct enc *e = &G.enc;
	char num[32], iso[ISO_LEN + 1], start[ISO_LEN + 1], end[ISO_LEN + 1];
	uint64_t seq = atomic_load_explicit(&L.n, memory_order_relaxed) + 1;
	int64_t deadline;

	apply_effect(d, s);
	if (d->dates_dirty)
		render_dates(d, mal);
	if (d->lists_dirty)
		render_lists(d);
	fmt_iso(s->t, iso);
	fmt_iso(d->next > 0 ? d->steps[d->next - 1].t : s->t, start);
	deadline = d->due != 0 ? d->due : wall_of(work_of(s->t) + WORKDAY_S);
	fmt_iso(deadline, end);

	snprintf(num, sizeof(num), "%llu", (unsigned long long)seq);
	lits(e, "{\"seq\":");
	lits(e, num);
	lits(e, ",\"maHoSo\":\"");
	lits(e, d->code);
	lits(e, "\",\"thoiDiem\":\"");
	lit(e, iso, ISO_LEN);
	lits(e, "\",\"trangThai\":\"");
	lits(e, mal == MAL_STATUS ? "CHO_PHE_DUYET" : status_names[s->status]);
	if (mal == MAL_NOHOSO) {
		lits(e, "\",\"hoSo\":null");
	} else {
		lits(e, "\",\"hoSo\":{");
		ref(e, d->ref_a);
		ref(e, d->ref_dates);
		ref(e, d->ref_b);
		ref(e, d->ref_lists);
	}
	lits(e, ",\"buocXuLy\":{");
	ref(e, s->role == ROLE_CITIZEN ? d->ref_citizen : d->ref_staff[s->role]);
	lits(e, ",");
	if (mal == MAL_OVERSIZE) {
		struct sim_buf b = {0};

		sim_buf_adds(&b, "\"noiDung\":\"");
		for (unsigned i = 0; i < 70; i++) /* 70 x 30 = 2,100 characters */
			sim_buf_adds(&b, "Nội dung xử lý quá dài. ......");
		sim_buf_adds(&b, "\"");
		lit(e, b.data, b.len);
		sim_buf_free(&b);
	} else {
		ref(e, G.ref_text[s->text][s->variant]);
	}
	if (mal != MAL_DATES) {
		lits(e, ",\"thoiDiem\":\"");
		lit(e, iso, ISO_LEN);
		lits(e, "\"");
	}
	lits(e, ",\"ngayBatDau\":\"");
	lit(e, start, ISO_LEN);
	lits(e, "\",\"ngayKetThucTheoQuyDinh\":\"");
	lit(e, end, ISO_LEN);
	lits(e, "\"}}");
	log_append(e);
	/* The key of the row the flow makes of it: none without a known status or a time. */
	if (mal != MAL_STATUS && mal != MAL_DATES && mal != MAL_NOHOSO) {
		static const unsigned char at[14] = {0, 1,  2,	3,  5,	6,  8,
						     9, 11, 12, 14, 15, 17, 18};
		char when14[15];

		for (unsigned i = 0; i < 14; i++)
			when14[i] = iso[at[i]];
		when14[14] = '\0';
		at_record(sim_dossier_change_key(d->code, when14, s->status));
	}
	G.last_time = s->t;
	d->next++;
}

/* ---- the stream ------------------------------------------------------------ */

static bool hev_less(const struct hev *a, const struct hev *b)
{
	return a->t != b->t ? a->t < b->t : a->index < b->index;
}

static void heap_push(struct hev ev)
{
	size_t i;

	if (G.n_heap == G.cap_heap) {
		G.cap_heap = G.cap_heap ? G.cap_heap * 2 : 1024;
		G.heap = sim_xrealloc(G.heap, G.cap_heap * sizeof(*G.heap));
	}
	i = G.n_heap++;
	while (i > 0 && hev_less(&ev, &G.heap[(i - 1) / 2])) {
		G.heap[i] = G.heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	G.heap[i] = ev;
}

static struct hev heap_pop(void)
{
	struct hev top = G.heap[0], last = G.heap[--G.n_heap];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= G.n_heap)
			break;
		if (c + 1 < G.n_heap && hev_less(&G.heap[c + 1], &G.heap[c]))
			c++;
		if (!hev_less(&G.heap[c], &last))
			break;
		G.heap[i] = G.heap[c];
		i = c;
	}
	if (G.n_heap > 0)
		G.heap[i] = last;
	return top;
}

/*
 * Arrival time of dossier i, increasing with i: stratified over the window
 * of its class so that N arrivals cover it evenly.
 */
static int64_t arrival(uint64_t i, enum cls *cls)
{
	double u = sim_unit(sim_rand_at(dstream(K_ARRIVAL, 0), i));
	int64_t start, len;
	uint64_t j, n;

	if (i < G.n_pre) {
		*cls = CLS_PRE;
		start = G.pre_start;
		len = G.reform - DAY_S - G.pre_start;
		j = i;
		n = G.n_pre;
	} else if (i < G.n_pre + G.n_old) {
		*cls = CLS_OLD;
		start = G.old_start;
		len = G.window_start - G.old_start;
		j = i - G.n_pre;
		n = G.n_old;
	} else if (i < G.n_total) {
		*cls = CLS_RECENT;
		start = G.window_start;
		len = G.now - G.window_start;
		j = i - G.n_pre - G.n_old;
		n = G.n_recent;
	} else {
		*cls = CLS_LATER;
		start = G.now;
		len = G.now - G.window_start;
		/* With no window of its own (--dossiers 0), the default rate. */
		n = G.n_recent > 0 ? G.n_recent : 1000;
		return start + (int64_t)(((double)(i - G.n_total) + u) * (double)len / (double)n);
	}
	return start + (int64_t)(((double)j + u) * (double)len / (double)n);
}

/* Takes the next event of the stream; appends a change unless it was an arrival. */
static bool stream_step(void)
{
	struct hev ev = heap_pop();
	struct dossier *d = ev.d;

	if (d == NULL) {
		enum cls cls;

		d = sim_xmalloc(sizeof(*d));
		arrival(ev.index, &cls);
		dossier_plan(d, ev.index, ev.t, cls, MAL_NONE);
		G.dossiers++;
		G.next_arrival = ev.index + 1;
		{
			enum cls c2;
			int64_t t = arrival(G.next_arrival, &c2);

			heap_push((struct hev){t, G.next_arrival, NULL});
		}
		heap_push((struct hev){d->steps[0].t, d->index, d});
		return false;
	}
	emit(d, MAL_NONE);
	if (d->next < d->n_steps)
		heap_push((struct hev){d->steps[d->next].t, d->index, d});
	else
		free(d);
	return true;
}

/* Appends count changes of the stream. Lock held. */
static void stream_take(uint64_t count)
{
	while (count > 0) {
		if (stream_step())
			count--;
	}
}

/* Appends a broken change of the given kind for a dossier of its own. Lock held. */
static void malformed_one(enum mal kind)
{
	struct dossier *d = sim_xmalloc(sizeof(*d));
	int64_t t = G.last_time != 0 ? G.last_time : G.now;

	dossier_plan(d, G.malformed, t, CLS_RECENT, kind);
	emit(d, kind);
	free(d);
	G.malformed++;
}

/* ---- the catalogue snapshot ---------------------------------------------- */

static char *jdup(const json_t *o, const char *key, const char *def)
{
	const char *s = json_string_value(json_object_get(o, key));

	return sim_xstrdup(s != NULL ? s : def);
}

/* Reads the published procedures from the catalogue; 0 or -ENOENT when there are none. */
static int procs_load(void)
{
	struct sim_map *published = sim_map_new(), *field_names = sim_map_new();
	json_t *list, *fields;
	char *text = sim_catalog_list_result();
	size_t idx, len;
	json_t *v;
	uint64_t page;

	list = json_loads(text, 0, NULL);
	free(text);
	json_array_foreach (list, idx, v) {
		const char *c = json_string_value(json_object_get(v, "MATTHC"));

		if (c != NULL)
			sim_map_put(published, c, (void *)1);
	}
	json_decref(list);
	fields = sim_catalog_fields();
	json_array_foreach (fields, idx, v) {
		const char *c = json_string_value(json_object_get(v, "MALINHVUC"));
		const char *n = json_string_value(json_object_get(v, "TENLINHVUC"));

		if (c != NULL && n != NULL)
			sim_map_put(field_names, c, (void *)n);
	}

	G.procs = sim_xcalloc(MAX_PROCS, sizeof(*G.procs));
	for (page = 1; G.n_procs < MAX_PROCS; page++) {
		json_t *doc, *data;

		text = sim_catalog_prov_page(page, 1000, &len);
		doc = json_loadb(text, len, 0, NULL);
		free(text);
		data = json_object_get(doc, "data");
		if (json_array_size(data) == 0) {
			json_decref(doc);
			break;
		}
		json_array_foreach (data, idx, v) {
			struct dproc *p = &G.procs[G.n_procs];
			const char *code = json_string_value(json_object_get(v, "maThuTuc"));
			const char *field =
				json_string_value(json_array_get(json_object_get(v, "linhVuc"), 0));
			json_t *t = json_object_get(v, "thoiHanGiaiQuyet"), *a;
			const char *unit = json_string_value(json_object_get(t, "donVi"));
			size_t k;
			json_t *x;
			uint64_t pop;

			if (code == NULL || field == NULL || G.n_procs >= MAX_PROCS ||
			    sim_map_get(published, code) == NULL)
				continue;
			p->dept = -1;
			json_array_foreach (json_object_get(v, "coQuanThucHien"), k, x) {
				const char *ag = json_string_value(x);
				int dk;

				if (ag == NULL)
					continue;
				if (strcmp(ag, UBND_XA) == 0)
					p->commune = true;
				else if (p->dept < 0 && (dk = dept_find(ag)) >= 0 &&
					 strcmp(ag, "UBND-TINH") != 0)
					p->dept = dk;
			}
			if (p->dept < 0 && !p->commune) {
				json_array_foreach (json_object_get(v, "coQuanThucHien"), k, x) {
					if (json_string_value(x) != NULL &&
					    dept_find(json_string_value(x)) >= 0)
						p->dept = dept_find(json_string_value(x));
				}
			}
			if (p->dept < 0 && !p->commune)
				continue;
			p->code = sim_xstrdup(code);
			p->name = jdup(v, "tenThuTuc", code);
			p->field = sim_xstrdup(field);
			p->field_name =
				sim_xstrdup(sim_map_get(field_names, field)
						    ? (const char *)sim_map_get(field_names, field)
						    : field);
			p->result = sim_xstrdup(
				json_string_value(json_array_get(json_object_get(v, "ketQua"), 0))
					? json_string_value(
						  json_array_get(json_object_get(v, "ketQua"), 0))
					: "Kết quả giải quyết thủ tục hành chính");
			json_array_foreach (json_object_get(v, "kenhNop"), k, x) {
				if (json_integer_value(x) >= 1 && json_integer_value(x) <= 3)
					p->channels |= 1u << json_integer_value(x);
			}
			if (p->channels == 0)
				p->channels = 2;
			p->limit = json_number_value(json_object_get(t, "giaTri"));
			p->unit = unit == NULL		       ? LU_WORKDAY
				  : strcmp(unit, "ngay") == 0  ? LU_DAY
				  : strcmp(unit, "gio") == 0   ? LU_HOUR
				  : strcmp(unit, "thang") == 0 ? LU_MONTH
							       : LU_WORKDAY;
			json_array_foreach (json_object_get(v, "phiLePhi"), k, x) {
				if (p->n_fees >= 2)
					break;
				p->fees[p->n_fees].ma = jdup(x, "ma", "");
				p->fees[p->n_fees].desc = jdup(x, "moTa", "Lệ phí");
				p->fees[p->n_fees].amount =
					json_integer_value(json_object_get(x, "soTien"));
				p->n_fees++;
			}
			a = json_object_get(json_array_get(json_object_get(v, "thanhPhanHoSo"), 0),
					    "giayTo");
			json_array_foreach (a, k, x) {
				if (p->n_docs >= SIM_ARRAY_SIZE(p->docs))
					break;
				p->docs[p->n_docs++] = jdup(x, "ten", "Giấy tờ");
			}
			/* Communal procedures and a few popular ones make most dossiers. */
			pop = 1u << (sim_rand_at(dstream(K_PROC, 0), G.n_procs) % 5);
			G.weight_total += (p->commune ? 6 : 1) * pop;
			p->weight_end = G.weight_total;
			G.n_procs++;
		}
		json_decref(doc);
	}
	json_decref(fields);
	sim_map_free(published, NULL);
	sim_map_free(field_names, NULL);
	return G.n_procs > 0 ? 0 : -ENOENT;
}

static void procs_free(void)
{
	for (size_t i = 0; i < G.n_procs; i++) {
		struct dproc *p = &G.procs[i];

		free(p->code);
		free(p->name);
		free(p->field);
		free(p->field_name);
		free(p->result);
		for (unsigned k = 0; k < p->n_fees; k++) {
			free(p->fees[k].ma);
			free(p->fees[k].desc);
		}
		for (unsigned k = 0; k < p->n_docs; k++)
			free(p->docs[k]);
	}
	free(G.procs);
	G.procs = NULL;
	G.n_procs = 0;
	G.weight_total = 0;
}

static void get_feed(struct sim_request *rq, struct sim_reply *rp)
{
	uint64_t cursor, limit, n, first, last, total = 0;
	char *body, *o;
	char tail[96];
	int tl;

	if (!sim_provincial_auth_ok(rq, rp))
		return;
	if (!sim_parse_dec(sim_request_query(rq, "cursor"), 0, &cursor)) {
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
				"cursor không hợp lệ (số thứ tự thập phân)");
		return;
	}
	if (!sim_parse_dec(sim_request_query(rq, "limit"), DEFAULT_LIMIT, &limit) || limit < 1 ||
	    limit > MAX_LIMIT) {
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request", "limit phải từ 1 đến %d",
				MAX_LIMIT);
		return;
	}
	n = atomic_load_explicit(&L.n, memory_order_acquire);
	first = cursor + 1;
	last = cursor < n ? (n - cursor > limit ? cursor + limit : n) : cursor;
	for (uint64_t s = first; s <= last; s++)
		total += log_entry(s)->text_len + 1;
	tl = snprintf(tail, sizeof(tail), "],\"next_cursor\":\"%llu\",\"has_more\":%s}",
		      (unsigned long long)last, last < n ? "true" : "false");
	body = sim_xmalloc(total + (size_t)tl + 16);
	o = body;
	memcpy(o, "{\"items\":[", 10);
	o += 10;
	for (uint64_t s = first; s <= last; s++) {
		if (s > first)
			*o++ = ',';
		o += log_expand(log_entry(s), o);
	}
	memcpy(o, tail, (size_t)tl);
	o += tl;
	sim_reply_buffer(rp, MHD_HTTP_OK, "application/json; charset=utf-8", body,
			 (size_t)(o - body));
}

/* ---- /_sim/feed ------------------------------------------------------------ */

static void *rate_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&G.lock);
	while (!G.stopping) {
		struct timespec ts;

		if (G.rate_per_s > 0 && G.n_procs > 0) {
			double elapsed = (double)(sim_now_us() - G.rate_start_us) / 1e6;
			uint64_t want = (uint64_t)(elapsed * G.rate_per_s);

			if (want > G.rate_done) {
				uint64_t k = want - G.rate_done;

				if (k > 100000)
					k = 100000;
				stream_take(k);
				G.rate_done += k;
			}
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 10 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		if (G.rate_per_s > 0)
			pthread_cond_timedwait(&G.wake, &G.lock, &ts);
		else
			pthread_cond_wait(&G.wake, &G.lock);
	}
	pthread_mutex_unlock(&G.lock);
	return NULL;
}

static void get_feed_state(struct sim_request *rq, struct sim_reply *rp)
{
	char now[ISO_LEN + 1], last[ISO_LEN + 1];
	uint64_t n, open = 0, bytes;
	json_t *o;

	(void)rq;
	pthread_mutex_lock(&G.lock);
	n = atomic_load(&L.n);
	for (size_t i = 0; i < G.n_heap; i++)
		open += G.heap[i].d != NULL;
	fmt_iso(G.now, now);
	fmt_iso(G.last_time != 0 ? G.last_time : G.now, last);
	bytes = L.used + ((n + BLOCK_SIZE - 1) >> BLOCK_BITS) * BLOCK_SIZE * sizeof(struct centry);
	o = json_pack("{s:I, s:I, s:I, s:I, s:s, s:s, s:f, s:I, s:I}", "changes", (json_int_t)n,
		      "dossiers", (json_int_t)G.dossiers, "open", (json_int_t)open, "malformed",
		      (json_int_t)G.malformed, "now", now, "last", last, "rate_per_s", G.rate_per_s,
		      "procedures", (json_int_t)G.n_procs, "log_bytes", (json_int_t)bytes);
	pthread_mutex_unlock(&G.lock);
	sim_reply_json(rp, MHD_HTTP_OK, o);
}

/* A non-negative integer member in [min, max], or false. */
static bool member_count(const json_t *req, const char *key, json_int_t min, json_int_t max,
			 json_int_t *out)
{
	json_t *v = json_object_get(req, key);

	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return false;
	*out = json_integer_value(v);
	return true;
}

static void post_feed(struct sim_request *rq, struct sim_reply *rp)
{
	json_t *req = sim_request_json_object(rq, rp), *o;
	const char *op;
	json_int_t count;

	if (req == NULL)
		return;
	op = json_string_value(json_object_get(req, "op"));
	if (op == NULL)
		op = "";
	if (strcmp(op, "generate") == 0) {
		uint64_t first;

		if (!member_count(req, "count", 1, MAX_GENERATE, &count)) {
			sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
					"\"count\" must be an integer from 1 to %d", MAX_GENERATE);
			return;
		}
		pthread_mutex_lock(&G.lock);
		if (G.n_procs == 0) {
			pthread_mutex_unlock(&G.lock);
			sim_reply_error(
				rp, MHD_HTTP_CONFLICT, "no_procedures",
				"the catalogue has no published procedure to file dossiers for");
			return;
		}
		first = atomic_load(&L.n) + 1;
		stream_take((uint64_t)count);
		o = json_pack("{s:b, s:I, s:I}", "ok", 1, "first_seq", (json_int_t)first,
			      "last_seq", (json_int_t)atomic_load(&L.n));
		pthread_mutex_unlock(&G.lock);
		sim_log(SIM_LOG_INFO, "feed: %lld changes generated", (long long)count);
		sim_reply_json(rp, MHD_HTTP_OK, o);
	} else if (strcmp(op, "malformed") == 0) {
		const char *kind = json_string_value(json_object_get(req, "kind"));
		enum mal only = MAL_NONE;
		json_t *seqs, *kinds;

		if (!member_count(req, "count", 1, MAX_MALFORMED, &count)) {
			sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
					"\"count\" must be an integer from 1 to %d", MAX_MALFORMED);
			return;
		}
		for (unsigned k = 1; kind != NULL && k < MAL__COUNT; k++) {
			if (strcmp(kind, mal_names[k]) == 0)
				only = (enum mal)k;
		}
		if (kind != NULL && only == MAL_NONE) {
			sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
					"\"kind\" must be status, unit, dates, oversize or nohoso");
			return;
		}
		seqs = json_array();
		kinds = json_array();
		pthread_mutex_lock(&G.lock);
		if (G.n_procs == 0) {
			pthread_mutex_unlock(&G.lock);
			json_decref(seqs);
			json_decref(kinds);
			sim_reply_error(
				rp, MHD_HTTP_CONFLICT, "no_procedures",
				"the catalogue has no published procedure to file dossiers for");
			return;
		}
		for (json_int_t i = 0; i < count; i++) {
			enum mal k = only != MAL_NONE ? only
						      : (enum mal)(1 + G.malformed % MAL_OVERSIZE);

			malformed_one(k);
			json_array_append_new(seqs, json_integer((json_int_t)atomic_load(&L.n)));
			json_array_append_new(kinds, json_string(mal_names[k]));
		}
		pthread_mutex_unlock(&G.lock);
		o = json_pack("{s:b, s:o, s:o}", "ok", 1, "seqs", seqs, "kinds", kinds);
		sim_reply_json(rp, MHD_HTTP_OK, o);
	} else if (strcmp(op, "rate") == 0) {
		json_t *v = json_object_get(req, "per_s");
		double r = json_number_value(v);

		if (!json_is_number(v) || !(r >= 0 && r <= MAX_RATE)) {
			sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
					"\"per_s\" must be a number from 0 to %.0f", MAX_RATE);
			return;
		}
		pthread_mutex_lock(&G.lock);
		G.rate_per_s = r;
		G.rate_start_us = sim_now_us();
		G.rate_done = 0;
		pthread_cond_signal(&G.wake);
		pthread_mutex_unlock(&G.lock);
		sim_log(SIM_LOG_INFO, "feed: %g changes per second", r);
		sim_reply_json(rp, MHD_HTTP_OK, json_pack("{s:b, s:f}", "ok", 1, "per_s", r));
	} else {
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
				"expected {\"op\":\"generate\"|\"malformed\"|\"rate\",...}");
	}
}

/* ---- module ------------------------------------------------------------------ */

#define EMPTY_LISTS "\"boSung\":[],\"ketQua\":[]}"

static void texts_render(void)
{
	struct sim_buf b = {0};

	for (unsigned t = 0; t < SIM_TXT__COUNT; t++) {
		unsigned n;
		const char *const *v = sim_dossier_step_texts((enum sim_step_text)t, &n);

		for (unsigned k = 0; k < n && k < 8; k++) {
			b.len = 0;
			kstr(&b, "noiDung", v[k], false);
			G.ref_text[t][k] = frag_put(b.data, b.len);
		}
	}
	sim_buf_free(&b);
	G.ref_lists_empty = frag_put(EMPTY_LISTS, strlen(EMPTY_LISTS));
}

/* Old communes that became part of exactly one new commune. */
static void old_communes_index(void)
{
	G.old_ok = sim_xcalloc(sim_n_old_communes, sizeof(*G.old_ok));
	for (size_t i = 0; i < sim_n_old_communes; i++) {
		unsigned n = 0;

		for (size_t j = 0; j < sim_n_old_communes; j++)
			n += strcmp(sim_old_communes[i].code, sim_old_communes[j].code) == 0;
		if (n == 1)
			G.old_ok[G.n_old_ok++] = i;
	}
}

static int dossier_init(void)
{
	uint64_t t_start = sim_now_us(), n = sim_config.dossiers;
	int64_t wall = sim_now_wall_ms() / 1000;
	int r;

	G.reform = vn_time(2025, 7, 1, 0, 0, 0);
	G.now = sim_config.dossier_now_s != 0 ? sim_config.dossier_now_s
					      : wall - (wall % HOUR_S); /* the hour started */
	G.window_start = G.now - (int64_t)sim_config.dossier_days * DAY_S;
	G.old_start = G.window_start - 45 * DAY_S;
	G.pre_start = G.reform - 29 * DAY_S;
	/* A few dossiers from before the reform when the windows do not reach it. */
	if (n >= 20 && G.old_start >= G.reform)
		G.n_pre = n / 200 > 0 ? n / 200 : 1;
	G.n_old = n >= 10 ? n * 12 / 100 : 0;
	G.n_recent = n - G.n_pre - G.n_old;
	G.n_total = n;
	G.serials = sim_map_new();
	G.staff = sim_map_new();
	old_communes_index();
	sim_route_add(
		&(struct sim_route){"GET", FEED_PATH, 0, get_feed, "provincial.ho-so.thay-doi"});
	sim_route_add(
		&(struct sim_route){"GET", "/_sim/feed", SIM_ROUTE_CONTROL, get_feed_state, NULL});
	sim_route_add(&(struct sim_route){"POST", "/_sim/feed", SIM_ROUTE_CONTROL | SIM_ROUTE_JSON,
					  post_feed, NULL});

	pthread_mutex_lock(&G.lock);
	texts_render();
	r = procs_load();
	if (r < 0) {
		pthread_mutex_unlock(&G.lock);
		sim_log(SIM_LOG_WARN, "dossiers: the catalogue has no published procedure: the "
				      "change feed stays empty");
	} else {
		heap_push((struct hev){arrival(0, &(enum cls){CLS_PRE}), 0, NULL});
		while (G.n_heap > 0 && G.heap[0].t <= G.now &&
		       (G.heap[0].d != NULL || G.heap[0].index < G.n_total))
			stream_step();
		pthread_mutex_unlock(&G.lock);
		sim_log(SIM_LOG_INFO,
			"dossiers: %llu received, %llu changes up to now, %llu MB (%.0f ms)",
			(unsigned long long)G.dossiers, (unsigned long long)atomic_load(&L.n),
			(unsigned long long)(L.used >> 20),
			(double)(sim_now_us() - t_start) / 1000.0);
	}
	if (pthread_create(&G.rate_thread, NULL, rate_main, NULL) != 0)
		return -EAGAIN;
	G.rate_running = true;
	return 0;
}

static void dossier_fini(void)
{
	if (G.rate_running) {
		pthread_mutex_lock(&G.lock);
		G.stopping = true;
		pthread_cond_signal(&G.wake);
		pthread_mutex_unlock(&G.lock);
		pthread_join(G.rate_thread, NULL);
		G.rate_running = false;
	}
	for (size_t i = 0; i < G.n_heap; i++)
		free(G.heap[i].d);
	free(G.heap);
	G.heap = NULL;
	G.n_heap = G.cap_heap = 0;
	procs_free();
	free(G.old_ok);
	G.old_ok = NULL;
	sim_map_free(G.serials, NULL);
	sim_map_free(G.staff, NULL);
	G.serials = G.staff = NULL;
	sim_buf_free(&G.enc.b);
	log_free();
	at_free();
}

const struct sim_module sim_dossier_module = {"dossier", dossier_init, dossier_fini};
