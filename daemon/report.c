/*
 * report: renders one reconciliation result (payment-spec §5) into the
 * office's CSV, XLSX, HTML and JSON files. See report.h for the contracts.
 *
 * Every format is produced through a struct out: a fixed 64 KiB buffer
 * flushed into a sink, either the temporary file itself or, for the XLSX,
 * a ZIP entry whose deflate stream writes into the file. So memory stays
 * bounded by the buffers (plus one byte per item for its class) however
 * many items the result holds; the result itself is the caller's.
 *
 * The XLSX is the smallest workbook Excel and LibreOffice open without a
 * repair prompt: content types, package and workbook relationships, the
 * workbook, a stylesheet, core properties and one worksheet per sheet, with
 * inline strings (no shared-string table to hold in memory). ZIP local
 * headers are written with zero sizes and patched with pwrite() once the
 * entry is complete, so no data descriptors are needed.
 */
#include "report.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "util.h"

unsigned report_xlsx_rows_per_sheet = 1048575;

#define OUT_BUF_BYTES	 (64 * 1024)
#define MAX_TEXT_BYTES	 32000 /* per cell: Excel holds 32,767 characters */
#define MASK_BYTES	 256
#define MAX_DAYS	 1000	    /* daily rows and chart bars; a longer range gets none */
#define VN_OFFSET_S	 (7 * 3600) /* Asia/Ho_Chi_Minh, no daylight saving */
#define FILE_PREFIX	 "doi-soat-thanh-toan"
#define REPORT_MODE	 0640
#define ZIP_MAX_32	 0xffffffffu
#define DEFLATE_LEVEL	 6
#define COMPRESS_MAX_DIR 100000 /* directory entries looked at per call */

/* ---- classes --------------------------------------------------------- */

enum {
	CLS_MATCHED,
	CLS_PLATFORM_ONLY,
	CLS_LOCAL_ONLY,
	CLS_AMOUNT_DIFFERS,
	CLS_PAID_TWICE,
	CLS_PENDING_TOO_LONG,
	CLS_BAD_SIGNATURE,
	CLS_PORTAL_WITHOUT_FEE,
	CLS_UNKNOWN_DOSSIER,
	CLS_OTHER, /* a class this version has no label for: shown by its name */
	CLS_N
};

static const struct cls_info {
	const char *name;  /* in the result */
	const char *label; /* what the office reads */
	const char *sheet; /* XLSX sheet: <= 31 characters, none of []:*?/\ */
	const char *color; /* chart */
} cls_info[CLS_N] = {
	{"matched", "Khớp", "Khớp", "#2ca02c"},
	{"platform_only", "Đã thanh toán trên nền tảng, tỉnh chưa ghi nhận",
	 "Nền tảng có, tỉnh chưa ghi", "#d62728"},
	{"local_only", "Tỉnh ghi đã thanh toán, không có giao dịch thành công",
	 "Tỉnh ghi, nền tảng không có", "#ff7f0e"},
	{"amount_differs", "Số tiền lệch", "Số tiền lệch", "#9467bd"},
	{"paid_twice", "Hồ sơ thanh toán hai lần", "Thanh toán hai lần", "#8c564b"},
	{"pending_too_long", "Chờ xác nhận quá hạn", "Chờ xác nhận quá hạn", "#bcbd22"},
	{"bad_signature", "Sai chữ ký (MaXacThuc)", "Sai chữ ký", "#e377c2"},
	{"portal_without_fee", "Đã thanh toán trực tuyến nhưng gửi Cổng thiếu thông tin phí",
	 "Cổng thiếu thông tin phí", "#17becf"},
	{"unknown_dossier", "Giao dịch không thuộc hồ sơ nào của tỉnh",
	 "Không thuộc hồ sơ của tỉnh", "#7f7f7f"},
	{"", "Khác (loại chưa có nhãn)", "Khác", "#1f77b4"},
};

/* Details list the discrepancies first and the matched items (if any) last. */
static const int detail_order[CLS_N] = {
	CLS_PLATFORM_ONLY,
	CLS_LOCAL_ONLY,
	CLS_AMOUNT_DIFFERS,
	CLS_PAID_TWICE,
	CLS_PENDING_TOO_LONG,
	CLS_BAD_SIGNATURE,
	CLS_PORTAL_WITHOUT_FEE,
	CLS_UNKNOWN_DOSSIER,
	CLS_OTHER,
	CLS_MATCHED,
};

static int cls_lookup(const char *name)
{
	for (int i = 0; i < CLS_OTHER; i++)
		if (name && strcmp(name, cls_info[i].name) == 0)
			return i;
	return CLS_OTHER;
}

unsigned report_formats_parse(const char *text, char **err)
{
	static const struct {
		const char *name;
		unsigned bit;
	} names[] = {{"csv", REPORT_CSV},
		     {"xlsx", REPORT_XLSX},
		     {"html", REPORT_HTML},
		     {"json", REPORT_JSON},
		     {"matched", REPORT_INCLUDE_MATCHED}};
	unsigned bits = 0;
	char *copy = xstrdup(text ? text : ""), *save = NULL;
	for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
		size_t i = 0;
		while (i < LT_ARRAY_SIZE(names) && strcmp(t, names[i].name) != 0)
			i++;
		if (i == LT_ARRAY_SIZE(names)) {
			*err = xasprintf("unknown format '%s' (csv, xlsx, html, json; matched)", t);
			free(copy);
			return 0;
		}
		bits |= names[i].bit;
	}
	free(copy);
	if (!(bits & REPORT_ALL)) {
		*err = xstrdup("name at least one format of csv, xlsx, html, json");
		return 0;
	}
	return bits;
}

const char *report_class_label(const char *name)
{
	return cls_info[cls_lookup(name)].label;
}

/* The columns of a detail row, in CSV and XLSX order. */
enum {
	COL_CLASS,
	COL_DAY,
	COL_REF,
	COL_DOSSIER,
	COL_TXN,
	COL_AGENCY,
	COL_PAMT,
	COL_LAMT,
	COL_PSTATE,
	COL_LSTATE,
	COL_APPLICANT,
	COL_EXPL,
	COL_N
};

static const struct col_info {
	const char *label;
	const char *label_csv; /* the CSV's amounts are integers: the label says the unit */
	unsigned width;	       /* XLSX, in characters */
} col_info[COL_N] = {
	{"Loại chênh lệch", NULL, 34},
	{"Ngày", NULL, 12},
	{"Mã tham chiếu", NULL, 40},
	{"Mã hồ sơ", NULL, 26},
	{"Mã giao dịch", NULL, 18},
	{"Cơ quan", NULL, 16},
	{"Số tiền trên nền tảng", "Số tiền trên nền tảng (đồng)", 20},
	{"Số tiền tại tỉnh", "Số tiền tại tỉnh (đồng)", 18},
	{"Trạng thái trên nền tảng", NULL, 22},
	{"Trạng thái tại tỉnh", NULL, 18},
	{"Người nộp (đã che)", NULL, 18},
	{"Giải thích", NULL, 90},
};

/* ---- small public helpers -------------------------------------------- */

char *report_vnd(int64_t vnd, char *buf, size_t len)
{
	char digits[32];
	uint64_t mag = vnd < 0 ? (uint64_t)0 - (uint64_t)vnd : (uint64_t)vnd;
	int nd = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)mag);
	if (!buf || len == 0)
		return buf;
	/* sign + digits + dots + " ₫" (4 bytes) + NUL */
	size_t need = (vnd < 0) + (size_t)nd + (size_t)(nd - 1) / 3 + 4 + 1;
	if (len < need) {
		buf[0] = '\0';
		return buf;
	}
	char *p = buf;
	if (vnd < 0)
		*p++ = '-';
	for (int i = 0; i < nd; i++) {
		if (i > 0 && (nd - i) % 3 == 0)
			*p++ = '.';
		*p++ = digits[i];
	}
	memcpy(p, " \xe2\x82\xab", 5); /* " ₫" and the NUL */
	return buf;
}

static bool is_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* "YYYY-MM-DD" at the start of s, month and day in range. */
static bool iso_day_ok(const char *s)
{
	if (!s || strlen(s) < 10 || !is_digits(s, 4) || s[4] != '-' || !is_digits(s + 5, 2) ||
	    s[7] != '-' || !is_digits(s + 8, 2))
		return false;
	int m = (s[5] - '0') * 10 + (s[6] - '0');
	int d = (s[8] - '0') * 10 + (s[9] - '0');
	return m >= 1 && m <= 12 && d >= 1 && d <= 31;
}

char *report_date_vn(const char *iso, char *buf, size_t len)
{
	if (!buf || len == 0)
		return buf;
	if (!iso) {
		buf[0] = '\0';
	} else if (iso_day_ok(iso) && len >= 11) {
		memcpy(buf, iso + 8, 2);
		buf[2] = '/';
		memcpy(buf + 3, iso + 5, 2);
		buf[5] = '/';
		memcpy(buf + 6, iso, 4);
		buf[10] = '\0';
	} else {
		/* Cut at a character boundary, never inside a UTF-8 sequence. */
		size_t n = strlen(iso);
		if (n >= len) {
			n = len - 1;
			while (n > 0 && ((unsigned char)iso[n] & 0xc0) == 0x80)
				n--;
		}
		memcpy(buf, iso, n);
		buf[n] = '\0';
	}
	return buf;
}

static size_t utf8_count(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

/* Byte offset of code point number k (0-based) in s. */
static size_t utf8_offset(const char *s, size_t k)
{
	size_t i = 0;
	for (size_t seen = 0; s[i]; i++) {
		if (((unsigned char)s[i] & 0xc0) != 0x80) {
			if (seen == k)
				return i;
			seen++;
		}
	}
	return i;
}

char *report_mask_id(const char *id, char *buf, size_t len)
{
	if (!buf || len == 0)
		return buf;
	size_t o = 0;
	buf[0] = '\0';
	if (!id)
		return buf;
	size_t n = utf8_count(id);
	size_t head = 0, tail_at = strlen(id), stars = n;
	if (n >= 7) {
		head = utf8_offset(id, 3);
		tail_at = utf8_offset(id, n - 3);
		stars = n - 6;
	}
	/* Truncation only ever hides more: the tail goes only if all fits. */
	if (head < len - o) {
		memcpy(buf + o, id, head);
		o += head;
	}
	for (size_t i = 0; i < stars && o + 1 < len; i++)
		buf[o++] = '*';
	if (n >= 7 && strlen(id + tail_at) < len - o) {
		size_t t = strlen(id + tail_at);
		memcpy(buf + o, id + tail_at, t);
		o += t;
	}
	buf[o] = '\0';
	return buf;
}

/* An identifier long enough that masking it inside other texts is safe. */
static bool id_scrubbable(const char *id)
{
	return id && utf8_count(id) >= 7;
}

/* text with every occurrence of id replaced by masked: text itself when it
 * has none, else a new string in *owned. */
static const char *scrub(const char *text, const char *id, const char *masked, char **owned)
{
	if (!text || !id_scrubbable(id) || !strstr(text, id))
		return text;
	struct dynbuf b;
	dynbuf_init(&b, 0);
	size_t idn = strlen(id);
	const char *p = text, *hit;
	while ((hit = strstr(p, id))) {
		dynbuf_add(&b, p, (size_t)(hit - p));
		dynbuf_addstr(&b, masked);
		p = hit + idn;
	}
	dynbuf_addstr(&b, p);
	free(*owned);
	*owned = dynbuf_steal(&b, NULL);
	return *owned;
}

/* "dd/mm/yyyy HH:MM" of a wall time in Vietnam; "" for none. */
static void time_vn(int64_t wall_ms, char *buf, size_t len)
{
	struct tm tm;
	time_t t = (time_t)(wall_ms / 1000 + VN_OFFSET_S);
	if (wall_ms <= 0 || !gmtime_r(&t, &tm) || !strftime(buf, len, "%d/%m/%Y %H:%M", &tm))
		snprintf(buf, len, "%s", "");
}

/* ---- output through a bounded buffer ---------------------------------- */

typedef int (*out_sink_fn)(void *ctx, const void *p, size_t n);

struct out {
	char *buf; /* owned, OUT_BUF_BYTES */
	size_t len;
	out_sink_fn sink;
	void *ctx; /* borrowed */
	int err;   /* the first failure; later output is dropped */
};

static void out_init(struct out *o, out_sink_fn sink, void *ctx)
{
	o->buf = xmalloc(OUT_BUF_BYTES);
	o->len = 0;
	o->sink = sink;
	o->ctx = ctx;
	o->err = 0;
}

static int out_flush(struct out *o)
{
	if (o->len && !o->err)
		o->err = o->sink(o->ctx, o->buf, o->len);
	o->len = 0;
	return o->err;
}

/* Flushes and frees; returns the first error. */
static int out_done(struct out *o)
{
	int r = out_flush(o);
	free(o->buf);
	o->buf = NULL;
	return r;
}

static void out_add(struct out *o, const void *p, size_t n)
{
	if (o->err)
		return;
	if (n > OUT_BUF_BYTES - o->len && out_flush(o))
		return;
	if (n >= OUT_BUF_BYTES) {
		o->err = o->sink(o->ctx, p, n);
		return;
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

static void out_str(struct out *o, const char *s)
{
	out_add(o, s, strlen(s));
}

static void out_printf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	for (int pass = 0; pass < 2 && !o->err; pass++) {
		size_t room = OUT_BUF_BYTES - o->len;
		va_start(ap, fmt);
		int n = vsnprintf(o->buf + o->len, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->err = -EINVAL;
			return;
		}
		if ((size_t)n < room) {
			o->len += (size_t)n;
			return;
		}
		if (pass == 0 && o->len) {
			out_flush(o);
			continue;
		}
		va_start(ap, fmt);
		char *s = xvasprintf(fmt, ap);
		va_end(ap);
		out_str(o, s);
		free(s);
		return;
	}
}

/*
 * Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not
 * one (a stray continuation byte, an overlong form, a surrogate, too big).
 */
static size_t utf8_seq(const unsigned char *s, uint32_t *cp)
{
	unsigned c = s[0];
	size_t n;
	uint32_t v;
	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		v = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		v = c & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10ffff)) ||
	    (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return n;
}

#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */
#define ELLIPSIS    "\xe2\x80\xa6" /* … */

/*
 * Text for XML and HTML: markup characters escaped; what XML 1.0 forbids
 * (controls other than tab and line ends, U+FFFE/U+FFFF, invalid UTF-8)
 * becomes U+FFFD, so that one odd byte in a payer's text cannot make Excel
 * refuse the workbook. At most MAX_TEXT_BYTES of s, then "…".
 */
static void out_esc(struct out *o, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	const unsigned char *run = p, *start = p;
	while (*p) {
		if ((size_t)(p - start) >= MAX_TEXT_BYTES) {
			out_add(o, run, (size_t)(p - run));
			out_str(o, ELLIPSIS);
			return;
		}
		uint32_t cp = 0;
		size_t n = utf8_seq(p, &cp);
		const char *rep = NULL;
		if (n == 0) {
			rep = REPLACEMENT;
			n = 1;
		} else if (cp == '&') {
			rep = "&amp;";
		} else if (cp == '<') {
			rep = "&lt;";
		} else if (cp == '>') {
			rep = "&gt;";
		} else if (cp == '"') {
			rep = "&quot;";
		} else if (cp == '\'') {
			rep = "&#39;";
		} else if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0x7f ||
			   cp == 0xfffe || cp == 0xffff) {
			rep = REPLACEMENT;
		}
		if (rep) {
			out_add(o, run, (size_t)(p - run));
			out_str(o, rep);
			p += n;
			run = p;
		} else {
			p += n;
		}
	}
	out_add(o, run, (size_t)(p - run));
}

/* ---- temporary files, renamed into place at the end ------------------- */

struct tfile {
	char *path; /* owned: the final name */
	char *tmp;  /* owned: hidden temporary name in the same directory */
	int fd;
	uint64_t off; /* bytes written so far */
};

static int tfile_open(struct tfile *t, const char *dir, const char *name, char **err)
{
	t->path = xasprintf("%s/%s", dir, name);
	t->tmp = xasprintf("%s/.%s.XXXXXX", dir, name);
	t->off = 0;
	t->fd = mkostemp(t->tmp, O_CLOEXEC);
	if (t->fd < 0) {
		int r = -errno;
		*err = xasprintf("cannot create a temporary file for %s: %s", t->path,
				 strerror(-r));
		free(t->tmp);
		t->tmp = NULL;
		return r;
	}
	if (fchmod(t->fd, REPORT_MODE) < 0) {
		int r = -errno;
		*err = xasprintf("%s: chmod: %s", t->tmp, strerror(-r));
		return r;
	}
	return 0;
}

static int tfile_write(void *ctx, const void *p, size_t n)
{
	struct tfile *t = ctx;
	const char *c = p;
	while (n) {
		ssize_t w = write(t->fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += w;
		n -= (size_t)w;
		t->off += (uint64_t)w;
	}
	return 0;
}

static int tfile_pwrite(struct tfile *t, const void *p, size_t n, uint64_t off)
{
	const char *c = p;
	while (n) {
		ssize_t w = pwrite(t->fd, c, n, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* fsync and close; the file stays under its temporary name. */
static int tfile_sync(struct tfile *t)
{
	int r = 0;
	if (fsync(t->fd) < 0)
		r = -errno;
	if (close(t->fd) < 0 && r == 0)
		r = -errno;
	t->fd = -1;
	return r;
}

/* Removes the temporary file (if still there) and frees. */
static void tfile_discard(struct tfile *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	if (t->tmp)
		unlink(t->tmp);
	free(t->tmp);
	free(t->path);
	t->tmp = t->path = NULL;
}

/* ---- the result, prepared --------------------------------------------- */

struct tally {
	int64_t count;
	int64_t amount;
};

struct day {
	char iso[11];
	struct tally t[CLS_N];
};

struct rep {
	const json_t *res;   /* borrowed */
	const json_t *items; /* borrowed; NULL when the result has none */
	size_t n_items;
	uint8_t *cls;		 /* owned: the class of each item */
	size_t listed[CLS_N];	 /* items per class */
	struct tally sum[CLS_N]; /* the summary */
	struct day *days;	 /* owned, by date */
	size_t n_days;
	bool days_too_many;
	bool with_matched;
	char from_vn[11], to_vn[11];
	char generated_vn[32];
	char run_id[48];
};

static void sat_add(int64_t *acc, int64_t v)
{
	if (__builtin_add_overflow(*acc, v, acc))
		*acc = v > 0 ? INT64_MAX : INT64_MIN;
}

static bool get_int(const json_t *o, const char *key, int64_t *v)
{
	const json_t *j = json_object_get(o, key);
	if (!json_is_integer(j))
		return false;
	*v = (int64_t)json_integer_value(j);
	return true;
}

/* What an item adds to its class's amount when the result has no summary. */
static int64_t item_amount(const json_t *item)
{
	int64_t v;
	if (get_int(item, "platform_amount", &v) || get_int(item, "local_amount", &v))
		return v;
	return 0;
}

static int day_cmp(const void *a, const void *b)
{
	return strcmp(((const struct day *)a)->iso, ((const struct day *)b)->iso);
}

/* The day of iso (sorted insert); NULL when MAX_DAYS are taken. */
static struct day *day_get(struct rep *r, const char *iso)
{
	size_t lo = 0, hi = r->n_days;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strncmp(r->days[mid].iso, iso, 10);
		if (c == 0)
			return &r->days[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (r->n_days == MAX_DAYS) {
		r->days_too_many = true;
		return NULL;
	}
	if (!r->days)
		r->days = xcalloc(MAX_DAYS, sizeof(*r->days));
	memmove(&r->days[lo + 1], &r->days[lo], (r->n_days - lo) * sizeof(*r->days));
	memset(&r->days[lo], 0, sizeof(*r->days));
	memcpy(r->days[lo].iso, iso, 10);
	r->n_days++;
	return &r->days[lo];
}

/* Every day from..to (YYYY-MM-DD, checked) as an empty day, unless the
 * period is longer than MAX_DAYS. */
static void days_fill(struct rep *r, const char *from, const char *to)
{
	struct tm a, b;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.tm_year = atoi(from) - 1900;
	a.tm_mon = atoi(from + 5) - 1;
	a.tm_mday = atoi(from + 8);
	b.tm_year = atoi(to) - 1900;
	b.tm_mon = atoi(to + 5) - 1;
	b.tm_mday = atoi(to + 8);
	time_t ta = timegm(&a), tb = timegm(&b);
	if (ta == (time_t)-1 || tb == (time_t)-1 || tb < ta || (tb - ta) / 86400 >= MAX_DAYS)
		return;
	for (time_t t = ta; t <= tb; t += 86400) {
		struct tm tm;
		char iso[16];
		if (!gmtime_r(&t, &tm) || !strftime(iso, sizeof(iso), "%Y-%m-%d", &tm))
			return;
		day_get(r, iso);
	}
}

static void rep_free(struct rep *r)
{
	free(r->cls);
	free(r->days);
}

static int rep_prepare(struct rep *r, const json_t *res, unsigned formats, char **err)
{
	memset(r, 0, sizeof(*r));
	r->res = res;
	r->with_matched = formats & REPORT_INCLUDE_MATCHED;
	if (!json_is_object(res)) {
		*err = xstrdup("the reconciliation result is not a JSON object");
		return -EINVAL;
	}
	const char *from = json_string_value(json_object_get(res, "from"));
	const char *to = json_string_value(json_object_get(res, "to"));
	if (!from || strlen(from) != 10 || !iso_day_ok(from) || !to || strlen(to) != 10 ||
	    !iso_day_ok(to)) {
		*err = xstrdup("the reconciliation result needs \"from\" and \"to\" as YYYY-MM-DD");
		return -EINVAL;
	}
	if (strcmp(from, to) > 0) {
		*err = xasprintf(
			"the reconciliation result's \"from\" (%s) is after its \"to\" (%s)", from,
			to);
		return -EINVAL;
	}
	report_date_vn(from, r->from_vn, sizeof(r->from_vn));
	report_date_vn(to, r->to_vn, sizeof(r->to_vn));
	int64_t gen;
	if (get_int(res, "generated_ms", &gen))
		time_vn(gen, r->generated_vn, sizeof(r->generated_vn));
	const json_t *rid = json_object_get(res, "run_id");
	if (json_is_integer(rid))
		snprintf(r->run_id, sizeof(r->run_id), "%lld", (long long)json_integer_value(rid));
	else if (json_is_string(rid))
		snprintf(r->run_id, sizeof(r->run_id), "%s", json_string_value(rid));

	r->items = json_object_get(res, "items");
	if (r->items && !json_is_null(r->items) && !json_is_array(r->items)) {
		*err = xstrdup("the reconciliation result's \"items\" is not an array");
		return -EINVAL;
	}
	if (!json_is_array(r->items))
		r->items = NULL;
	r->n_items = r->items ? json_array_size(r->items) : 0;
	r->cls = xmalloc(r->n_items ? r->n_items : 1);
	for (size_t i = 0; i < r->n_items; i++) {
		const json_t *it = json_array_get(r->items, i);
		const char *c = json_string_value(json_object_get(it, "class"));
		if (!json_is_object(it) || !c) {
			*err = xasprintf("item %zu of the reconciliation result is not an object "
					 "with a string \"class\"",
					 i);
			return -EINVAL;
		}
		r->cls[i] = (uint8_t)cls_lookup(c);
		r->listed[r->cls[i]]++;
	}

	/* The summary: as given, or counted from the items. */
	const json_t *sum = json_object_get(res, "summary");
	if (json_is_object(sum)) {
		const char *k;
		const json_t *v;
		json_object_foreach ((json_t *)sum, k, v) {
			int c = cls_lookup(k);
			int64_t n;
			if (get_int(v, "count", &n))
				sat_add(&r->sum[c].count, n);
			if (get_int(v, "amount", &n))
				sat_add(&r->sum[c].amount, n);
		}
	} else {
		for (size_t i = 0; i < r->n_items; i++) {
			r->sum[r->cls[i]].count++;
			sat_add(&r->sum[r->cls[i]].amount,
				item_amount(json_array_get(r->items, i)));
		}
	}

	/* Daily totals: every day of the period (a quiet day shows as one), then
	 * as given, or counted from the items. */
	days_fill(r, from, to);
	const json_t *daily = json_object_get(res, "daily");
	if (json_is_array(daily)) {
		size_t i;
		const json_t *d;
		json_array_foreach (daily, i, d) {
			const char *iso = json_string_value(json_object_get(d, "day"));
			struct day *dy;
			if (!iso_day_ok(iso) || !(dy = day_get(r, iso)))
				continue;
			const char *k;
			const json_t *v;
			json_object_foreach ((json_t *)d, k, v) {
				int64_t n;
				if (!json_is_object(v))
					continue;
				int c = cls_lookup(k);
				if (get_int(v, "count", &n))
					sat_add(&dy->t[c].count, n);
				if (get_int(v, "amount", &n))
					sat_add(&dy->t[c].amount, n);
			}
		}
	} else {
		for (size_t i = 0; i < r->n_items; i++) {
			const json_t *it = json_array_get(r->items, i);
			const char *iso = json_string_value(json_object_get(it, "day"));
			struct day *dy;
			if (!iso_day_ok(iso) || !(dy = day_get(r, iso)))
				continue;
			dy->t[r->cls[i]].count++;
			sat_add(&dy->t[r->cls[i]].amount, item_amount(it));
		}
	}
	if (r->days_too_many)
		r->n_days = 0;
	if (r->n_days)
		qsort(r->days, r->n_days, sizeof(*r->days), day_cmp);
	return 0;
}

/* Whether items of class c are listed in CSV, XLSX and JSON. */
static bool rep_lists(const struct rep *r, int c)
{
	return c != CLS_MATCHED || r->with_matched;
}

/* ---- one item, ready to print ----------------------------------------- */

enum { TXT_REF, TXT_DOSSIER, TXT_TXN, TXT_AGENCY, TXT_EXPL, TXT_N };
static const char *const txt_key[TXT_N] = {"ma_tham_chieu", "ma_ho_so", "ma_giao_dich", "agency",
					   "explanation"};

struct row {
	int cls;
	const char *class_label; /* borrowed: the table's label or the item's class */
	char day[48];
	const char *txt[TXT_N]; /* borrowed, or owned[] */
	char *owned[TXT_N];
	char num[TXT_N][24];
	bool has_pamt, has_lamt;
	int64_t pamt, lamt;
	const char *pstate; /* borrowed, or pstate_buf */
	char pstate_buf[24];
	const char *lstate;
	char masked[MASK_BYTES];
};

/* The text of a field: a string as it is, an integer in decimal, else "". */
static const char *field_text(const json_t *item, const char *key, char *buf, size_t len)
{
	const json_t *j = json_object_get(item, key);
	if (json_is_string(j))
		return json_string_value(j);
	if (json_is_integer(j)) {
		snprintf(buf, len, "%lld", (long long)json_integer_value(j));
		return buf;
	}
	return "";
}

static const char *platform_state_label(const json_t *j, char *buf, size_t len)
{
	if (json_is_string(j))
		return json_string_value(j);
	if (!json_is_integer(j))
		return "";
	switch (json_integer_value(j)) {
	case 1: return "Thành công";
	case 3: return "Đang chờ xác nhận";
	case 4: return "Thất bại";
	default: snprintf(buf, len, "Mã %lld", (long long)json_integer_value(j)); return buf;
	}
}

static const char *local_state_label(const json_t *j)
{
	const char *s = json_string_value(j);
	if (!s)
		return "";
	if (strcmp(s, "DA_THANH_TOAN") == 0)
		return "Đã thanh toán";
	if (strcmp(s, "CHUA_THANH_TOAN") == 0)
		return "Chưa thanh toán";
	if (strcmp(s, "CHO_XAC_NHAN") == 0)
		return "Chờ xác nhận";
	return s;
}

static void row_load(struct row *w, const json_t *item, int cls)
{
	char idbuf[24];
	memset(w, 0, sizeof(*w));
	w->cls = cls;
	w->class_label = cls == CLS_OTHER ? json_string_value(json_object_get(item, "class"))
					  : cls_info[cls].label;
	report_date_vn(json_string_value(json_object_get(item, "day")), w->day, sizeof(w->day));
	const char *id = field_text(item, "applicant_id", idbuf, sizeof(idbuf));
	report_mask_id(id, w->masked, sizeof(w->masked));
	for (int i = 0; i < TXT_N; i++) {
		w->txt[i] = field_text(item, txt_key[i], w->num[i], sizeof(w->num[i]));
		w->txt[i] = scrub(w->txt[i], id, w->masked, &w->owned[i]);
	}
	w->has_pamt = get_int(item, "platform_amount", &w->pamt);
	w->has_lamt = get_int(item, "local_amount", &w->lamt);
	w->pstate = platform_state_label(json_object_get(item, "platform_state"), w->pstate_buf,
					 sizeof(w->pstate_buf));
	w->lstate = local_state_label(json_object_get(item, "local_state"));
}

static void row_clear(struct row *w)
{
	for (int i = 0; i < TXT_N; i++)
		free(w->owned[i]);
}

/* ---- CSV -------------------------------------------------------------- */

/*
 * One RFC 4180 field. A text that Excel would take for a formula (starting
 * with = + - @ or a tab/CR) gets a leading apostrophe: the explanation can
 * carry a payer's text, and a CSV must not run formulas on the office's PC.
 */
static void csv_field(struct out *o, const char *s, bool first)
{
	if (!first)
		out_add(o, ",", 1);
	if (!s || !*s)
		return;
	size_t n = strlen(s);
	if (n > MAX_TEXT_BYTES) {
		n = MAX_TEXT_BYTES;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	bool guard = strchr("=+-@\t\r", s[0]) != NULL;
	bool quote = guard || s[0] == ' ' || s[n - 1] == ' ' || n < strlen(s) ||
		     memchr(s, ',', n) || memchr(s, '"', n) || memchr(s, '\n', n) ||
		     memchr(s, '\r', n);
	if (!quote) {
		out_add(o, s, n);
		return;
	}
	out_add(o, "\"", 1);
	if (guard)
		out_add(o, "'", 1);
	const char *run = s;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"') {
			out_add(o, run, (size_t)(s + i + 1 - run));
			out_add(o, "\"", 1);
			run = s + i + 1;
		}
	}
	out_add(o, run, (size_t)(s + n - run));
	if (n < strlen(s))
		out_str(o, ELLIPSIS);
	out_add(o, "\"", 1);
}

static void csv_amount(struct out *o, bool has, int64_t v)
{
	if (has)
		out_printf(o, ",%lld", (long long)v);
	else
		out_add(o, ",", 1);
}

static int write_csv(const struct rep *r, struct tfile *t)
{
	struct out o;
	out_init(&o, tfile_write, t);
	out_str(&o, "\xef\xbb\xbf"); /* BOM: Excel then reads UTF-8 */
	for (int c = 0; c < COL_N; c++)
		csv_field(&o, col_info[c].label_csv ? col_info[c].label_csv : col_info[c].label,
			  c == 0);
	out_str(&o, "\r\n");
	for (int k = 0; k < CLS_N && !o.err; k++) {
		int c = detail_order[k];
		if (!r->listed[c] || !rep_lists(r, c))
			continue;
		for (size_t i = 0; i < r->n_items && !o.err; i++) {
			if (r->cls[i] != c)
				continue;
			struct row w;
			row_load(&w, json_array_get(r->items, i), c);
			csv_field(&o, w.class_label, true);
			csv_field(&o, w.day, false);
			csv_field(&o, w.txt[TXT_REF], false);
			csv_field(&o, w.txt[TXT_DOSSIER], false);
			csv_field(&o, w.txt[TXT_TXN], false);
			csv_field(&o, w.txt[TXT_AGENCY], false);
			csv_amount(&o, w.has_pamt, w.pamt);
			csv_amount(&o, w.has_lamt, w.lamt);
			csv_field(&o, w.pstate, false);
			csv_field(&o, w.lstate, false);
			csv_field(&o, w.masked, false);
			csv_field(&o, w.txt[TXT_EXPL], false);
			out_str(&o, "\r\n");
			row_clear(&w);
		}
	}
	return out_done(&o);
}

/* ---- JSON ------------------------------------------------------------- */

/*
 * Masks "applicant_id" wherever it is, and the item's own identifier inside
 * any other string, in a copy of the item (j is that copy).
 */
static void json_mask(json_t *j, const char *id, const char *masked)
{
	if (json_is_object(j)) {
		const char *k;
		json_t *v;
		json_object_foreach (j, k, v) {
			if (strcmp(k, "applicant_id") == 0 && !json_is_null(v)) {
				char buf[24], m[MASK_BYTES];
				const char *s =
					json_is_integer(v)
						? (snprintf(buf, sizeof(buf), "%lld",
							    (long long)json_integer_value(v)),
						   buf)
						: json_string_value(v);
				json_object_set_new(
					j, k,
					json_string(report_mask_id(s ? s : "", m, sizeof(m))));
			} else {
				json_mask(v, id, masked);
			}
		}
	} else if (json_is_array(j)) {
		size_t i;
		json_t *v;
		json_array_foreach (j, i, v) {
			json_mask(v, id, masked);
		}
	} else if (json_is_string(j)) {
		char *owned = NULL;
		const char *s = scrub(json_string_value(j), id, masked, &owned);
		if (owned)
			json_string_set(j, s);
		free(owned);
	}
}

/* v as indented JSON, every line after the first indented by indent more. */
static void json_put(struct out *o, const json_t *v, const char *indent)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
	if (!s) {
		if (!o->err)
			o->err = -EINVAL;
		return;
	}
	const char *p = s, *nl;
	while ((nl = strchr(p, '\n'))) {
		out_add(o, p, (size_t)(nl + 1 - p));
		out_str(o, indent);
		p = nl + 1;
	}
	out_str(o, p);
	free(s);
}

static void json_key(struct out *o, const char *k, bool *first)
{
	json_t *ks = json_string(k);
	out_str(o, *first ? "\n  " : ",\n  ");
	*first = false;
	json_put(o, ks, "");
	out_str(o, ": ");
	json_decref(ks);
}

static void json_items(struct out *o, const struct rep *r)
{
	bool any = false;
	out_str(o, "[");
	for (size_t i = 0; i < r->n_items && !o->err; i++) {
		if (!rep_lists(r, r->cls[i]))
			continue;
		const json_t *it = json_array_get(r->items, i);
		char buf[24], m[MASK_BYTES];
		const char *id = field_text(it, "applicant_id", buf, sizeof(buf));
		report_mask_id(id, m, sizeof(m));
		json_t *copy = json_deep_copy(it);
		if (!copy) {
			o->err = -ENOMEM;
			break;
		}
		json_mask(copy, id, m);
		out_str(o, any ? ",\n    " : "\n    ");
		json_put(o, copy, "    ");
		json_decref(copy);
		any = true;
	}
	out_str(o, any ? "\n  ]" : "]");
}

static int write_json(const struct rep *r, struct tfile *t)
{
	struct out o;
	bool first = true, items_done = false;
	out_init(&o, tfile_write, t);
	out_str(&o, "{");
	const char *k;
	const json_t *v;
	json_object_foreach ((json_t *)r->res, k, v) {
		if (strcmp(k, "matched_items_included") == 0)
			continue;
		json_key(&o, k, &first);
		if (strcmp(k, "items") == 0) {
			json_items(&o, r);
			items_done = true;
		} else {
			json_put(&o, v, "  ");
		}
	}
	if (!items_done) {
		json_key(&o, "items", &first);
		json_items(&o, r);
	}
	/* Readers must know whether an absent matched item means "not listed". */
	json_key(&o, "matched_items_included", &first);
	out_str(&o, r->with_matched ? "true" : "false");
	out_str(&o, "\n}\n");
	return out_done(&o);
}

/* ---- HTML ------------------------------------------------------------- */

static const char html_css[] =
	"body{font-family:\"Segoe UI\",Roboto,\"Noto Sans\",Arial,sans-serif;color:#1a1a1a;"
	"margin:24px;line-height:1.4;font-size:14px}\n"
	"h1{font-size:22px;margin:0 0 4px}\n"
	"h2{font-size:18px;margin:28px 0 8px;border-bottom:2px solid #1f4e79;padding-bottom:4px}\n"
	".meta,.note{color:#444;margin:4px 0}\n"
	".note{font-size:13px}\n"
	"table{border-collapse:collapse;margin:8px 0 16px}\n"
	"th,td{border:1px solid #bbb;padding:4px 6px;text-align:left;vertical-align:top}\n"
	"thead th{background:#e8eef5}\n"
	"td.n,th.n{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}\n"
	"tfoot td{font-weight:bold;background:#f4f4f4}\n"
	"table.detail{font-size:12px;width:100%}\n"
	"td.x{min-width:22em}\n"
	".sw{display:inline-block;width:0;height:11px;border-left:11px solid;margin-right:6px;"
	"vertical-align:-1px}\n"
	".chart{overflow-x:auto}\n"
	"@page{size:A4 landscape;margin:12mm}\n"
	"@media print{\n"
	" body{margin:0;font-size:10pt}\n"
	" *{background:none !important;box-shadow:none !important}\n"
	" thead{display:table-header-group}\n"
	" tfoot{display:table-footer-group}\n"
	" tr{break-inside:avoid;page-break-inside:avoid}\n"
	" section.cls{break-before:page;page-break-before:always}\n"
	" .chart{overflow:visible}\n"
	" svg,.sw{-webkit-print-color-adjust:exact;print-color-adjust:exact}\n"
	" a{color:inherit;text-decoration:none}\n"
	"}\n";

static void html_vnd(struct out *o, int64_t v)
{
	char b[REPORT_VND_LEN];
	out_str(o, report_vnd(v, b, sizeof(b)));
}

static void html_count(struct out *o, int64_t n)
{
	/* Counts group their thousands like amounts do: 12.345 */
	char b[REPORT_VND_LEN];
	report_vnd(n, b, sizeof(b));
	char *sp = strchr(b, ' ');
	if (sp)
		*sp = '\0';
	out_str(o, b);
}

static void html_summary(struct out *o, const struct rep *r)
{
	struct tally mism = {0, 0}, all = {0, 0};
	out_str(o, "<section id=\"tong-hop\"><h2>Tổng hợp</h2>\n"
		   "<table class=\"summary\"><thead><tr><th>Loại</th><th class=\"n\">Số lượng</th>"
		   "<th class=\"n\">Số tiền</th></tr></thead>\n<tbody>\n");
	for (int c = 0; c < CLS_N; c++) {
		if (c == CLS_OTHER && !r->sum[c].count && !r->listed[c])
			continue;
		bool linked = c != CLS_MATCHED && r->listed[c];
		out_printf(o, "<tr><td><span class=\"sw\" style=\"border-color:%s\"></span>",
			   cls_info[c].color);
		if (linked)
			out_printf(o, "<a href=\"#cls-%s\">",
				   c == CLS_OTHER ? "khac" : cls_info[c].name);
		out_esc(o, cls_info[c].label);
		if (linked)
			out_str(o, "</a>");
		out_str(o, "</td><td class=\"n\">");
		html_count(o, r->sum[c].count);
		out_str(o, "</td><td class=\"n\">");
		html_vnd(o, r->sum[c].amount);
		out_str(o, "</td></tr>\n");
		if (c != CLS_MATCHED) {
			sat_add(&mism.count, r->sum[c].count);
			sat_add(&mism.amount, r->sum[c].amount);
		}
		sat_add(&all.count, r->sum[c].count);
		sat_add(&all.amount, r->sum[c].amount);
	}
	out_str(o, "</tbody>\n<tfoot><tr><td>Tổng chênh lệch (không kể khớp)</td><td class=\"n\">");
	html_count(o, mism.count);
	out_str(o, "</td><td class=\"n\">");
	html_vnd(o, mism.amount);
	out_str(o, "</td></tr>\n<tr><td>Tổng cộng</td><td class=\"n\">");
	html_count(o, all.count);
	out_str(o, "</td><td class=\"n\">");
	html_vnd(o, all.amount);
	out_str(o, "</td></tr></tfoot></table>\n");

	out_str(o, "<p class=\"note\">Giao dịch khớp không được liệt kê từng dòng trong trang này "
		   "(chỉ có số liệu tổng hợp). ");
	if (r->with_matched)
		out_str(o,
			"Danh sách giao dịch khớp có trong các tệp CSV, XLSX và JSON cùng tên. ");
	else
		out_str(o, "Các tệp CSV, XLSX và JSON cùng tên liệt kê mọi chênh lệch, không "
			   "liệt kê giao dịch khớp. ");
	out_str(o, "Mã định danh người nộp được che (giữ 3 ký tự đầu và 3 ký tự cuối). "
		   "Tệp CSV ghi số tiền là số nguyên (đồng, không có dấu phân cách) để Excel "
		   "cộng được.</p>\n");

	const json_t *in = json_object_get(r->res, "inputs");
	if (json_is_object(in)) {
		static const struct {
			const char *key, *label;
		} inputs[] = {
			{"platform", "giao dịch trên nền tảng thanh toán"},
			{"provincial", "bản ghi phí của hệ thống một cửa tỉnh"},
			{"portal", "hồ sơ gửi Cổng Dịch vụ công quốc gia"},
		};
		out_str(o, "<p class=\"note\">Dữ liệu đối soát:");
		bool any = false;
		for (size_t i = 0; i < LT_ARRAY_SIZE(inputs); i++) {
			int64_t n;
			if (!get_int(in, inputs[i].key, &n))
				continue;
			out_str(o, any ? "; " : " ");
			html_count(o, n);
			out_printf(o, " %s", inputs[i].label);
			any = true;
		}
		const json_t *src = json_object_get(in, "sources");
		if (json_is_array(src) && json_array_size(src)) {
			size_t i;
			const json_t *s;
			out_str(o, any ? ". Nguồn: " : " nguồn: ");
			json_array_foreach (src, i, s) {
				if (i)
					out_str(o, ", ");
				out_esc(o, json_string_value(s));
			}
		}
		out_str(o, ".</p>\n");
	}
	out_str(o, "</section>\n");
}

/* A round step (1, 2 or 5 times a power of ten) of at most 5 ticks to max. */
static int64_t nice_step(int64_t max)
{
	static const int64_t m[] = {1, 2, 5};
	for (int64_t p = 1;; p *= 10) {
		for (int i = 0; i < 3; i++)
			if (m[i] * p * 5 >= max)
				return m[i] * p;
		if (p > INT64_MAX / 100)
			return p * 10;
	}
}

static void html_chart(struct out *o, const struct rep *r)
{
	int64_t top = 0, period[CLS_N] = {0};
	bool present[CLS_N] = {false};
	int n_legend = 0;
	for (size_t d = 0; d < r->n_days; d++) {
		int64_t stack = 0;
		for (int c = 1; c < CLS_N; c++) {
			if (r->days[d].t[c].amount > 0)
				sat_add(&stack, r->days[d].t[c].amount);
			sat_add(&period[c], r->days[d].t[c].amount);
			if (r->days[d].t[c].count || r->days[d].t[c].amount)
				present[c] = true;
		}
		top = LT_MAX(top, stack);
	}
	for (int c = 1; c < CLS_N; c++)
		n_legend += present[c];

	const int n = (int)r->n_days;
	const int plot_w = LT_MAX(480, n * (n <= 16 ? 48 : n <= 31 ? 28 : n <= 92 ? 12 : 4));
	const int pitch = plot_w / LT_MAX(n, 1); /* a few days spread over the plot */
	const int bar = LT_MIN(64, LT_MAX(2, pitch * 3 / 4));
	const int left = 110, plot_top = 16, plot_h = 220;
	const int width = left + plot_w + 20;
	const int axis_y = plot_top + plot_h;
	const int legend_y = axis_y + 40;
	const int height = legend_y + LT_MAX(1, n_legend) * 18 + 8;
	int64_t step = nice_step(LT_MAX(top, 1));
	int64_t ymax = (top + step - 1) / step * step;
	if (ymax <= 0)
		ymax = step;

	out_printf(o,
		   "<div class=\"chart\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
		   "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" font-family=\"sans-serif\" "
		   "font-size=\"11\">\n<title>Số tiền chênh lệch theo ngày và theo loại</title>\n",
		   width, height, width, height);
	for (int64_t v = 0; v <= ymax; v += step) {
		int y = axis_y - (int)llround((double)v * plot_h / (double)ymax);
		char b[REPORT_VND_LEN];
		out_printf(o,
			   "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\"/>"
			   "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n",
			   left, y, left + plot_w, y, v ? "#ddd" : "#444", left - 6, y + 4,
			   report_vnd(v, b, sizeof(b)));
		if (v > INT64_MAX - step)
			break;
	}
	const int label_every = (44 + pitch - 1) / pitch;
	for (int d = 0; d < n; d++) {
		const struct day *dy = &r->days[d];
		int x = left + d * pitch + (pitch - bar) / 2;
		int64_t cum = 0;
		int y_prev = axis_y;
		char dvn[11];
		report_date_vn(dy->iso, dvn, sizeof(dvn));
		for (int c = 1; c < CLS_N; c++) {
			if (dy->t[c].amount <= 0)
				continue;
			sat_add(&cum, dy->t[c].amount);
			int y = axis_y - (int)llround((double)cum * plot_h / (double)ymax);
			char b[REPORT_VND_LEN];
			out_printf(o,
				   "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\">"
				   "<title>%s · ",
				   x, y, bar, LT_MAX(y_prev - y, 0), cls_info[c].color, dvn);
			out_esc(o, cls_info[c].label);
			out_printf(o, ": %s (", report_vnd(dy->t[c].amount, b, sizeof(b)));
			html_count(o, dy->t[c].count);
			out_str(o, ")</title></rect>\n");
			y_prev = y;
		}
		if (d % label_every == 0)
			out_printf(o,
				   "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%.5s</text>\n",
				   left + d * pitch + pitch / 2, axis_y + 16, dvn);
	}
	if (!n_legend)
		out_printf(o,
			   "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">Không có chênh lệch "
			   "nào trong kỳ</text>\n",
			   left + plot_w / 2, plot_top + plot_h / 2);
	int ly = legend_y;
	for (int c = 1; c < CLS_N; c++) {
		if (!present[c])
			continue;
		char b[REPORT_VND_LEN];
		out_printf(o,
			   "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>"
			   "<text x=\"%d\" y=\"%d\">",
			   left, ly - 10, cls_info[c].color, left + 18, ly);
		out_esc(o, cls_info[c].label);
		out_printf(o, ": %s</text>\n", report_vnd(period[c], b, sizeof(b)));
		ly += 18;
	}
	out_str(o, "</svg></div>\n");
}

static void html_daily(struct out *o, const struct rep *r)
{
	out_str(o, "<section id=\"theo-ngay\"><h2>Theo ngày</h2>\n");
	if (r->days_too_many || !r->n_days) {
		out_printf(o, "<p class=\"note\">%s</p>\n</section>\n",
			   r->days_too_many ? "Kỳ đối soát quá dài để trình bày theo từng ngày; "
					      "xem số liệu tổng hợp ở trên."
					    : "Không có số liệu theo ngày.");
		return;
	}
	out_str(o, "<p class=\"note\">Biểu đồ: số tiền chênh lệch mỗi ngày, xếp chồng theo "
		   "loại (giao dịch khớp không vẽ; xem bảng dưới).</p>\n");
	html_chart(o, r);
	out_str(o, "<table class=\"daily\"><thead><tr><th>Ngày</th><th class=\"n\">Khớp: số "
		   "lượng</th><th class=\"n\">Khớp: số tiền</th><th class=\"n\">Chênh lệch: số "
		   "lượng</th><th class=\"n\">Chênh lệch: số tiền</th></tr></thead>\n<tbody>\n");
	for (size_t d = 0; d < r->n_days; d++) {
		const struct day *dy = &r->days[d];
		struct tally m = {0, 0};
		char dvn[11];
		for (int c = 1; c < CLS_N; c++) {
			sat_add(&m.count, dy->t[c].count);
			sat_add(&m.amount, dy->t[c].amount);
		}
		out_printf(o, "<tr><td>%s</td><td class=\"n\">",
			   report_date_vn(dy->iso, dvn, sizeof(dvn)));
		html_count(o, dy->t[CLS_MATCHED].count);
		out_str(o, "</td><td class=\"n\">");
		html_vnd(o, dy->t[CLS_MATCHED].amount);
		out_str(o, "</td><td class=\"n\">");
		html_count(o, m.count);
		out_str(o, "</td><td class=\"n\">");
		html_vnd(o, m.amount);
		out_str(o, "</td></tr>\n");
	}
	out_str(o, "</tbody></table>\n</section>\n");
}

static void html_td(struct out *o, const char *cls, const char *s)
{
	out_str(o, cls ? cls : "<td>");
	out_esc(o, s);
	out_str(o, "</td>");
}

static void html_class(struct out *o, const struct rep *r, int c)
{
	size_t shown = LT_MIN(r->listed[c], (size_t)REPORT_HTML_MAX_ROWS);
	out_printf(o, "<section class=\"cls\" id=\"cls-%s\"><h2>",
		   c == CLS_OTHER ? "khac" : cls_info[c].name);
	out_esc(o, cls_info[c].label);
	out_str(o, " (");
	html_count(o, (int64_t)r->listed[c]);
	out_str(o, ")</h2>\n");
	if (shown < r->listed[c]) {
		out_str(o, "<p class=\"note\">Trang này chỉ liệt kê ");
		html_count(o, (int64_t)shown);
		out_str(o,
			" dòng đầu; danh sách đầy đủ có trong các tệp CSV và XLSX cùng tên.</p>\n");
	}
	out_str(o, "<table class=\"detail\"><thead><tr>");
	for (int k = c == CLS_OTHER ? COL_CLASS : COL_DAY; k < COL_N; k++)
		out_printf(o, "<th%s>%s</th>", k == COL_PAMT || k == COL_LAMT ? " class=\"n\"" : "",
			   col_info[k].label);
	out_str(o, "</tr></thead>\n<tbody>\n");
	size_t done = 0;
	for (size_t i = 0; i < r->n_items && done < shown && !o->err; i++) {
		if (r->cls[i] != c)
			continue;
		struct row w;
		row_load(&w, json_array_get(r->items, i), c);
		out_str(o, "<tr>");
		if (c == CLS_OTHER)
			html_td(o, NULL, w.class_label);
		html_td(o, NULL, w.day);
		html_td(o, NULL, w.txt[TXT_REF]);
		html_td(o, NULL, w.txt[TXT_DOSSIER]);
		html_td(o, NULL, w.txt[TXT_TXN]);
		html_td(o, NULL, w.txt[TXT_AGENCY]);
		out_str(o, "<td class=\"n\">");
		if (w.has_pamt)
			html_vnd(o, w.pamt);
		out_str(o, "</td><td class=\"n\">");
		if (w.has_lamt)
			html_vnd(o, w.lamt);
		out_str(o, "</td>");
		html_td(o, NULL, w.pstate);
		html_td(o, NULL, w.lstate);
		html_td(o, NULL, w.masked);
		html_td(o, "<td class=\"x\">", w.txt[TXT_EXPL]);
		out_str(o, "</tr>\n");
		row_clear(&w);
		done++;
	}
	out_str(o, "</tbody></table>\n</section>\n");
}

static int write_html(const struct rep *r, struct tfile *t)
{
	struct out o;
	out_init(&o, tfile_write, t);
	out_printf(&o,
		   "<!DOCTYPE html>\n<html lang=\"vi\">\n<head>\n<meta charset=\"utf-8\"/>\n"
		   "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n"
		   "<title>Đối soát thanh toán %s – %s</title>\n<style>\n%s</style>\n</head>\n"
		   "<body>\n<header><h1>Báo cáo đối soát thanh toán trực tuyến</h1>\n"
		   "<p class=\"meta\">Kỳ đối soát: từ ngày %s đến ngày %s",
		   r->from_vn, r->to_vn, html_css, r->from_vn, r->to_vn);
	if (r->generated_vn[0])
		out_printf(&o, " · Lập lúc %s (giờ Việt Nam)", r->generated_vn);
	if (r->run_id[0]) {
		out_str(&o, " · Lần chạy ");
		out_esc(&o, r->run_id);
	}
	out_str(&o, "</p>\n</header>\n<main>\n");
	html_summary(&o, r);
	html_daily(&o, r);
	for (int k = 0; k < CLS_N && !o.err; k++) {
		int c = detail_order[k];
		if (c != CLS_MATCHED && r->listed[c])
			html_class(&o, r, c);
	}
	out_str(&o, "</main>\n</body>\n</html>\n");
	return out_done(&o);
}

/* ---- ZIP -------------------------------------------------------------- */

struct zip_entry {
	char *name; /* owned */
	uint32_t crc, csize, usize;
	uint64_t off; /* of the local header */
};

struct zip {
	struct tfile *f; /* borrowed */
	struct zip_entry *e;
	size_t n, cap;
	z_stream zs;
	bool zs_ready;
	uint64_t csize, usize; /* of the entry being written */
	uint32_t crc;
	uint16_t dos_time, dos_date;
	unsigned char *obuf; /* owned, OUT_BUF_BYTES */
	int err;
};

static void put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)(v & 0xff);
	p[1] = (unsigned char)((v >> 8) & 0xff);
}

static void put32(unsigned char *p, uint32_t v)
{
	put16(p, v & 0xffff);
	put16(p + 2, v >> 16);
}

static int zip_init(struct zip *z, struct tfile *f, int64_t wall_ms)
{
	memset(z, 0, sizeof(*z));
	z->f = f;
	z->obuf = xmalloc(OUT_BUF_BYTES);
	/* Raw deflate (negative window bits): ZIP has its own headers. */
	if (deflateInit2(&z->zs, DEFLATE_LEVEL, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	z->zs_ready = true;
	struct tm tm;
	time_t t = (time_t)(wall_ms / 1000 + VN_OFFSET_S);
	if (wall_ms > 0 && gmtime_r(&t, &tm) && tm.tm_year >= 80) {
		z->dos_time = (uint16_t)((tm.tm_hour << 11) | (tm.tm_min << 5) | (tm.tm_sec / 2));
		z->dos_date =
			(uint16_t)(((tm.tm_year - 80) << 9) | ((tm.tm_mon + 1) << 5) | tm.tm_mday);
	} else {
		z->dos_date = (1 << 5) | 1; /* 1980-01-01 */
	}
	return 0;
}

static void zip_free(struct zip *z)
{
	if (z->zs_ready)
		deflateEnd(&z->zs);
	for (size_t i = 0; i < z->n; i++)
		free(z->e[i].name);
	free(z->e);
	free(z->obuf);
}

static int zip_begin(struct zip *z, const char *name)
{
	unsigned char h[30];
	size_t nl = strlen(name);
	if (z->err)
		return z->err;
	if (z->n == z->cap) {
		z->cap = z->cap ? 2 * z->cap : 16;
		z->e = xrealloc(z->e, z->cap * sizeof(*z->e));
	}
	struct zip_entry *e = &z->e[z->n++];
	memset(e, 0, sizeof(*e));
	e->name = xstrdup(name);
	e->off = z->f->off;
	if (e->off > ZIP_MAX_32)
		return z->err = -EFBIG;
	memset(h, 0, sizeof(h));
	put32(h, 0x04034b50);
	put16(h + 4, 20);
	put16(h + 8, 8); /* deflate */
	put16(h + 10, z->dos_time);
	put16(h + 12, z->dos_date);
	/* crc and sizes (14..25) are patched by zip_end */
	put16(h + 26, (unsigned)nl);
	z->crc = (uint32_t)crc32(0L, Z_NULL, 0);
	z->csize = z->usize = 0;
	if (deflateReset(&z->zs) != Z_OK)
		return z->err = -EINVAL;
	if ((z->err = tfile_write(z->f, h, sizeof(h))) == 0)
		z->err = tfile_write(z->f, name, nl);
	return z->err;
}

static int zip_deflate(struct zip *z, int flush)
{
	int zr;
	do {
		z->zs.next_out = z->obuf;
		z->zs.avail_out = OUT_BUF_BYTES;
		zr = deflate(&z->zs, flush);
		if (zr == Z_STREAM_ERROR)
			return -EINVAL;
		size_t have = OUT_BUF_BYTES - z->zs.avail_out;
		if (have) {
			int r = tfile_write(z->f, z->obuf, have);
			if (r)
				return r;
			z->csize += have;
		}
	} while (z->zs.avail_out == 0 || (flush == Z_FINISH && zr != Z_STREAM_END));
	return 0;
}

/* out_sink_fn for the entry being written. */
static int zip_write(void *ctx, const void *p, size_t n)
{
	struct zip *z = ctx;
	if (z->err)
		return z->err;
	z->crc = (uint32_t)crc32(z->crc, p, (uInt)n);
	z->usize += n;
	if (z->usize > ZIP_MAX_32)
		return z->err = -EFBIG;
	z->zs.next_in = (Bytef *)(uintptr_t)p;
	z->zs.avail_in = (uInt)n;
	z->err = zip_deflate(z, Z_NO_FLUSH);
	return z->err;
}

static int zip_end(struct zip *z)
{
	unsigned char h[12];
	struct zip_entry *e = &z->e[z->n - 1];
	if (z->err)
		return z->err;
	z->zs.next_in = NULL;
	z->zs.avail_in = 0;
	if ((z->err = zip_deflate(z, Z_FINISH)))
		return z->err;
	if (z->csize > ZIP_MAX_32)
		return z->err = -EFBIG;
	e->crc = z->crc;
	e->csize = (uint32_t)z->csize;
	e->usize = (uint32_t)z->usize;
	put32(h, e->crc);
	put32(h + 4, e->csize);
	put32(h + 8, e->usize);
	z->err = tfile_pwrite(z->f, h, sizeof(h), e->off + 14);
	return z->err;
}

/* The central directory and its end record. */
static int zip_finish(struct zip *z)
{
	unsigned char h[46];
	if (z->err)
		return z->err;
	uint64_t cd_off = z->f->off;
	for (size_t i = 0; i < z->n && !z->err; i++) {
		const struct zip_entry *e = &z->e[i];
		size_t nl = strlen(e->name);
		memset(h, 0, sizeof(h));
		put32(h, 0x02014b50);
		put16(h + 4, 20);
		put16(h + 6, 20);
		put16(h + 10, 8);
		put16(h + 12, z->dos_time);
		put16(h + 14, z->dos_date);
		put32(h + 16, e->crc);
		put32(h + 20, e->csize);
		put32(h + 24, e->usize);
		put16(h + 28, (unsigned)nl);
		put32(h + 42, (uint32_t)e->off);
		if ((z->err = tfile_write(z->f, h, 46)) == 0)
			z->err = tfile_write(z->f, e->name, nl);
	}
	uint64_t cd_len = z->f->off - cd_off;
	if (z->err)
		return z->err;
	if (cd_off + cd_len > ZIP_MAX_32 || z->n > 0xffff)
		return z->err = -EFBIG;
	memset(h, 0, 22);
	put32(h, 0x06054b50);
	put16(h + 8, (unsigned)z->n);
	put16(h + 10, (unsigned)z->n);
	put32(h + 12, (uint32_t)cd_len);
	put32(h + 16, (uint32_t)cd_off);
	return z->err = tfile_write(z->f, h, 22);
}

/* One whole small part from a string. */
static int zip_part(struct zip *z, const char *name, const char *text)
{
	if (zip_begin(z, name) == 0 && zip_write(z, text, strlen(text)) == 0)
		zip_end(z);
	return z->err;
}

/* ---- XLSX ------------------------------------------------------------- */

#define NS_MAIN	 "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
#define NS_REL	 "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
#define XML_DECL "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n"

/* Cell styles (indexes into cellXfs below). */
enum { XS_TEXT, XS_HEADER, XS_VND, XS_VND_BOLD, XS_BOLD, XS_TITLE, XS_COUNT, XS_COUNT_BOLD };

static const char xlsx_styles[] = XML_DECL
	"<styleSheet xmlns=\"" NS_MAIN "\">"
	"<numFmts count=\"1\"><numFmt numFmtId=\"164\" formatCode=\"#,##0 &quot;₫&quot;\"/>"
	"</numFmts>"
	"<fonts count=\"3\">"
	"<font><sz val=\"11\"/><name val=\"Calibri\"/><family val=\"2\"/></font>"
	"<font><b/><sz val=\"11\"/><name val=\"Calibri\"/><family val=\"2\"/></font>"
	"<font><b/><sz val=\"14\"/><name val=\"Calibri\"/><family val=\"2\"/></font>"
	"</fonts>"
	"<fills count=\"3\"><fill><patternFill patternType=\"none\"/></fill>"
	"<fill><patternFill patternType=\"gray125\"/></fill>"
	"<fill><patternFill patternType=\"solid\"><fgColor rgb=\"FFDDEBF7\"/>"
	"<bgColor indexed=\"64\"/></patternFill></fill></fills>"
	"<borders count=\"1\"><border><left/><right/><top/><bottom/><diagonal/></border></borders>"
	"<cellStyleXfs count=\"1\"><xf numFmtId=\"0\" fontId=\"0\" fillId=\"0\" borderId=\"0\"/>"
	"</cellStyleXfs>"
	"<cellXfs count=\"8\">"
	"<xf numFmtId=\"0\" fontId=\"0\" fillId=\"0\" borderId=\"0\" xfId=\"0\"/>"
	"<xf numFmtId=\"0\" fontId=\"1\" fillId=\"2\" borderId=\"0\" xfId=\"0\" applyFont=\"1\" "
	"applyFill=\"1\"/>"
	"<xf numFmtId=\"164\" fontId=\"0\" fillId=\"0\" borderId=\"0\" xfId=\"0\" "
	"applyNumberFormat=\"1\"/>"
	"<xf numFmtId=\"164\" fontId=\"1\" fillId=\"0\" borderId=\"0\" xfId=\"0\" "
	"applyNumberFormat=\"1\" applyFont=\"1\"/>"
	"<xf numFmtId=\"0\" fontId=\"1\" fillId=\"0\" borderId=\"0\" xfId=\"0\" applyFont=\"1\"/>"
	"<xf numFmtId=\"0\" fontId=\"2\" fillId=\"0\" borderId=\"0\" xfId=\"0\" applyFont=\"1\"/>"
	"<xf numFmtId=\"3\" fontId=\"0\" fillId=\"0\" borderId=\"0\" xfId=\"0\" "
	"applyNumberFormat=\"1\"/>"
	"<xf numFmtId=\"3\" fontId=\"1\" fillId=\"0\" borderId=\"0\" xfId=\"0\" "
	"applyNumberFormat=\"1\" applyFont=\"1\"/>"
	"</cellXfs>"
	"<cellStyles count=\"1\"><cellStyle name=\"Normal\" xfId=\"0\" builtinId=\"0\"/>"
	"</cellStyles></styleSheet>";

/* One worksheet: the summary (cls < 0) or a part of one class's items. */
struct xsheet {
	int cls;
	size_t skip, rows; /* items of the class before this sheet, and on it */
	char name[64];
};

static void xc_str(struct out *o, int col, size_t row, const char *s, int style)
{
	if (!s || !*s)
		return;
	out_printf(o, "<c r=\"%c%zu\" t=\"inlineStr\"", 'A' + col, row);
	if (style)
		out_printf(o, " s=\"%d\"", style);
	size_t n = strlen(s);
	bool keep = s[0] == ' ' || s[0] == '\t' || s[0] == '\n' || s[n - 1] == ' ' ||
		    s[n - 1] == '\n' || s[n - 1] == '\t';
	out_str(o, keep ? "><is><t xml:space=\"preserve\">" : "><is><t>");
	out_esc(o, s);
	out_str(o, "</t></is></c>");
}

static void xc_num(struct out *o, int col, size_t row, int64_t v, int style)
{
	out_printf(o, "<c r=\"%c%zu\"", 'A' + col, row);
	if (style)
		out_printf(o, " s=\"%d\"", style);
	out_printf(o, "><v>%lld</v></c>", (long long)v);
}

static void xsheet_head(struct out *o, const unsigned *widths, int ncols, bool freeze)
{
	out_str(o, XML_DECL "<worksheet xmlns=\"" NS_MAIN "\" xmlns:r=\"" NS_REL "\">");
	if (freeze)
		out_str(o, "<sheetViews><sheetView workbookViewId=\"0\"><pane ySplit=\"1\" "
			   "topLeftCell=\"A2\" activePane=\"bottomLeft\" state=\"frozen\"/>"
			   "<selection pane=\"bottomLeft\"/></sheetView></sheetViews>");
	else
		out_str(o, "<sheetViews><sheetView workbookViewId=\"0\"/></sheetViews>");
	out_str(o, "<sheetFormatPr defaultRowHeight=\"15\"/><cols>");
	for (int c = 0; c < ncols; c++)
		out_printf(o, "<col min=\"%d\" max=\"%d\" width=\"%u\" customWidth=\"1\"/>", c + 1,
			   c + 1, widths[c]);
	out_str(o, "</cols><sheetData>");
}

static void xsheet_tail(struct out *o)
{
	out_str(o, "</sheetData><pageMargins left=\"0.5\" right=\"0.5\" top=\"0.6\" bottom=\"0.6\" "
		   "header=\"0.3\" footer=\"0.3\"/><pageSetup paperSize=\"9\" "
		   "orientation=\"landscape\"/></worksheet>");
}

static void xlsx_summary(struct out *o, const struct rep *r)
{
	static const unsigned widths[3] = {60, 16, 22};
	struct tally mism = {0, 0}, all = {0, 0};
	size_t row = 1;
	xsheet_head(o, widths, 3, false);
	out_printf(o, "<row r=\"%zu\">", row);
	xc_str(o, 0, row, "Báo cáo đối soát thanh toán trực tuyến", XS_TITLE);
	out_printf(o, "</row><row r=\"%zu\">", ++row);
	xc_str(o, 0, row, "Kỳ đối soát", XS_BOLD);
	char period[48];
	snprintf(period, sizeof(period), "%s – %s", r->from_vn, r->to_vn);
	xc_str(o, 1, row, period, 0);
	out_str(o, "</row>");
	if (r->generated_vn[0]) {
		out_printf(o, "<row r=\"%zu\">", ++row);
		xc_str(o, 0, row, "Lập lúc (giờ Việt Nam)", XS_BOLD);
		xc_str(o, 1, row, r->generated_vn, 0);
		out_str(o, "</row>");
	}
	if (r->run_id[0]) {
		out_printf(o, "<row r=\"%zu\">", ++row);
		xc_str(o, 0, row, "Lần chạy", XS_BOLD);
		xc_str(o, 1, row, r->run_id, 0);
		out_str(o, "</row>");
	}
	row += 2;
	out_printf(o, "<row r=\"%zu\">", row);
	xc_str(o, 0, row, "Loại chênh lệch", XS_HEADER);
	xc_str(o, 1, row, "Số lượng", XS_HEADER);
	xc_str(o, 2, row, "Số tiền", XS_HEADER);
	out_str(o, "</row>");
	for (int c = 0; c < CLS_N; c++) {
		if (c == CLS_OTHER && !r->sum[c].count && !r->listed[c])
			continue;
		out_printf(o, "<row r=\"%zu\">", ++row);
		xc_str(o, 0, row, cls_info[c].label, 0);
		xc_num(o, 1, row, r->sum[c].count, XS_COUNT);
		xc_num(o, 2, row, r->sum[c].amount, XS_VND);
		out_str(o, "</row>");
		if (c != CLS_MATCHED) {
			sat_add(&mism.count, r->sum[c].count);
			sat_add(&mism.amount, r->sum[c].amount);
		}
		sat_add(&all.count, r->sum[c].count);
		sat_add(&all.amount, r->sum[c].amount);
	}
	out_printf(o, "<row r=\"%zu\">", ++row);
	xc_str(o, 0, row, "Tổng chênh lệch (không kể khớp)", XS_BOLD);
	xc_num(o, 1, row, mism.count, XS_COUNT_BOLD);
	xc_num(o, 2, row, mism.amount, XS_VND_BOLD);
	out_printf(o, "</row><row r=\"%zu\">", ++row);
	xc_str(o, 0, row, "Tổng cộng", XS_BOLD);
	xc_num(o, 1, row, all.count, XS_COUNT_BOLD);
	xc_num(o, 2, row, all.amount, XS_VND_BOLD);
	out_str(o, "</row>");
	row++;
	out_printf(o, "<row r=\"%zu\">", ++row);
	xc_str(o, 0, row,
	       r->with_matched
		       ? "Mỗi loại có danh sách chi tiết ở một trang tính riêng, kể cả "
			 "giao dịch khớp."
		       : "Mỗi loại chênh lệch có danh sách chi tiết ở một trang tính riêng; "
			 "giao dịch khớp chỉ có số liệu tổng hợp.",
	       0);
	out_printf(o, "</row><row r=\"%zu\">", ++row);
	xc_str(o, 0, row, "Mã định danh người nộp được che (giữ 3 ký tự đầu và 3 ký tự cuối).", 0);
	out_str(o, "</row>");
	const json_t *in = json_object_get(r->res, "inputs");
	static const struct {
		const char *key, *label;
	} inputs[] = {
		{"platform", "Giao dịch trên nền tảng thanh toán"},
		{"provincial", "Bản ghi phí của hệ thống một cửa tỉnh"},
		{"portal", "Hồ sơ gửi Cổng Dịch vụ công quốc gia"},
	};
	bool gap = false;
	for (size_t i = 0; json_is_object(in) && i < LT_ARRAY_SIZE(inputs); i++) {
		int64_t n;
		if (!get_int(in, inputs[i].key, &n))
			continue;
		if (!gap)
			row++;
		gap = true;
		out_printf(o, "<row r=\"%zu\">", ++row);
		xc_str(o, 0, row, inputs[i].label, 0);
		xc_num(o, 1, row, n, XS_COUNT);
		out_str(o, "</row>");
	}
	xsheet_tail(o);
}

static void xlsx_class(struct out *o, const struct rep *r, const struct xsheet *s)
{
	unsigned widths[COL_N];
	for (int k = 0; k < COL_N; k++)
		widths[k] = col_info[k].width;
	xsheet_head(o, widths, COL_N, true);
	out_str(o, "<row r=\"1\">");
	for (int k = 0; k < COL_N; k++)
		xc_str(o, k, 1, col_info[k].label, XS_HEADER);
	out_str(o, "</row>");
	size_t seen = 0, row = 1;
	for (size_t i = 0; i < r->n_items && row - 1 < s->rows && !o->err; i++) {
		if (r->cls[i] != s->cls || seen++ < s->skip)
			continue;
		struct row w;
		row_load(&w, json_array_get(r->items, i), s->cls);
		out_printf(o, "<row r=\"%zu\">", ++row);
		xc_str(o, COL_CLASS, row, w.class_label, 0);
		xc_str(o, COL_DAY, row, w.day, 0);
		xc_str(o, COL_REF, row, w.txt[TXT_REF], 0);
		xc_str(o, COL_DOSSIER, row, w.txt[TXT_DOSSIER], 0);
		xc_str(o, COL_TXN, row, w.txt[TXT_TXN], 0);
		xc_str(o, COL_AGENCY, row, w.txt[TXT_AGENCY], 0);
		if (w.has_pamt)
			xc_num(o, COL_PAMT, row, w.pamt, XS_VND);
		if (w.has_lamt)
			xc_num(o, COL_LAMT, row, w.lamt, XS_VND);
		xc_str(o, COL_PSTATE, row, w.pstate, 0);
		xc_str(o, COL_LSTATE, row, w.lstate, 0);
		xc_str(o, COL_APPLICANT, row, w.masked, 0);
		xc_str(o, COL_EXPL, row, w.txt[TXT_EXPL], 0);
		out_str(o, "</row>");
		row_clear(&w);
	}
	xsheet_tail(o);
}

/* A sheet name in a formula, quoted (the names in cls_info hold no quote). */
static void xlsx_sheet_ref(struct out *o, const char *name)
{
	out_str(o, "&#39;");
	out_esc(o, name);
	out_str(o, "&#39;");
}

static int write_xlsx(const struct rep *r, struct tfile *t)
{
	struct zip z;
	struct out o;
	struct xsheet *sh = NULL;
	size_t n_sh = 0;
	int64_t gen = 0;
	size_t per = report_xlsx_rows_per_sheet ? report_xlsx_rows_per_sheet : 1;
	int rc;

	get_int(r->res, "generated_ms", &gen);
	if ((rc = zip_init(&z, t, gen)))
		goto out;
	/* The sheets: the summary, then each listed class, split past `per` rows. */
	size_t cap = 1;
	for (int c = 0; c < CLS_N; c++)
		if (rep_lists(r, c))
			cap += (r->listed[c] + per - 1) / per;
	sh = xcalloc(cap, sizeof(*sh));
	sh[n_sh].cls = -1;
	snprintf(sh[n_sh++].name, sizeof(sh->name), "%s", "Tổng hợp");
	for (int k = 0; k < CLS_N; k++) {
		int c = detail_order[k];
		if (!rep_lists(r, c))
			continue;
		for (size_t skip = 0, part = 1; skip < r->listed[c]; skip += per, part++) {
			struct xsheet *s = &sh[n_sh++];
			s->cls = c;
			s->skip = skip;
			s->rows = LT_MIN(per, r->listed[c] - skip);
			if (part == 1)
				snprintf(s->name, sizeof(s->name), "%s", cls_info[c].sheet);
			else
				snprintf(s->name, sizeof(s->name), "%s (%zu)", cls_info[c].sheet,
					 part);
		}
	}

	out_init(&o, zip_write, &z);
	zip_begin(&z, "[Content_Types].xml");
	out_str(&o, XML_DECL "<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/"
			     "content-types\">"
			     "<Default Extension=\"rels\" ContentType=\"application/"
			     "vnd.openxmlformats-package.relationships+xml\"/>"
			     "<Default Extension=\"xml\" ContentType=\"application/xml\"/>"
			     "<Override PartName=\"/xl/workbook.xml\" ContentType=\"application/"
			     "vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/>"
			     "<Override PartName=\"/xl/styles.xml\" ContentType=\"application/"
			     "vnd.openxmlformats-officedocument.spreadsheetml.styles+xml\"/>"
			     "<Override PartName=\"/docProps/core.xml\" ContentType=\"application/"
			     "vnd.openxmlformats-package.core-properties+xml\"/>");
	for (size_t i = 0; i < n_sh; i++)
		out_printf(&o,
			   "<Override PartName=\"/xl/worksheets/sheet%zu.xml\" "
			   "ContentType=\"application/"
			   "vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/>",
			   i + 1);
	out_str(&o, "</Types>");
	out_flush(&o);
	zip_end(&z);

	zip_part(&z, "_rels/.rels",
		 XML_DECL "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/"
			  "relationships\"><Relationship Id=\"rId1\" Type=\"" NS_REL
			  "/officeDocument\" Target=\"xl/workbook.xml\"/><Relationship Id=\"rId2\" "
			  "Type=\"http://schemas.openxmlformats.org/package/2006/relationships/"
			  "metadata/core-properties\" Target=\"docProps/core.xml\"/>"
			  "</Relationships>");

	zip_begin(&z, "docProps/core.xml");
	char iso[32];
	fmt_time_iso(gen > 0 ? gen : now_wall_ms(), iso, sizeof(iso));
	out_printf(&o,
		   XML_DECL "<cp:coreProperties xmlns:cp=\"http://schemas.openxmlformats.org/"
			    "package/2006/metadata/core-properties\" "
			    "xmlns:dc=\"http://purl.org/dc/elements/1.1/\" "
			    "xmlns:dcterms=\"http://purl.org/dc/terms/\" "
			    "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">"
			    "<dc:title>Đối soát thanh toán %s – %s</dc:title>"
			    "<dc:creator>lienthongd</dc:creator>"
			    "<dcterms:created xsi:type=\"dcterms:W3CDTF\">%s</dcterms:created>"
			    "</cp:coreProperties>",
		   r->from_vn, r->to_vn, iso);
	out_flush(&o);
	zip_end(&z);

	zip_begin(&z, "xl/workbook.xml");
	out_str(&o, XML_DECL "<workbook xmlns=\"" NS_MAIN "\" xmlns:r=\"" NS_REL "\">"
			     "<bookViews><workbookView/></bookViews><sheets>");
	for (size_t i = 0; i < n_sh; i++) {
		out_str(&o, "<sheet name=\"");
		out_esc(&o, sh[i].name);
		out_printf(&o, "\" sheetId=\"%zu\" r:id=\"rId%zu\"/>", i + 1, i + 1);
	}
	out_str(&o, "</sheets>");
	if (n_sh > 1) {
		/* Each detail sheet prints its header row on every page. */
		out_str(&o, "<definedNames>");
		for (size_t i = 1; i < n_sh; i++) {
			out_printf(&o,
				   "<definedName name=\"_xlnm.Print_Titles\" localSheetId=\"%zu\">",
				   i);
			xlsx_sheet_ref(&o, sh[i].name);
			out_str(&o, "!$1:$1</definedName>");
		}
		out_str(&o, "</definedNames>");
	}
	out_str(&o, "</workbook>");
	out_flush(&o);
	zip_end(&z);

	zip_begin(&z, "xl/_rels/workbook.xml.rels");
	out_str(&o, XML_DECL "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/"
			     "2006/relationships\">");
	for (size_t i = 0; i < n_sh; i++)
		out_printf(&o,
			   "<Relationship Id=\"rId%zu\" Type=\"" NS_REL
			   "/worksheet\" Target=\"worksheets/sheet%zu.xml\"/>",
			   i + 1, i + 1);
	out_printf(&o,
		   "<Relationship Id=\"rId%zu\" Type=\"" NS_REL
		   "/styles\" Target=\"styles.xml\"/></Relationships>",
		   n_sh + 1);
	out_flush(&o);
	zip_end(&z);

	zip_part(&z, "xl/styles.xml", xlsx_styles);

	for (size_t i = 0; i < n_sh && !z.err && !o.err; i++) {
		char name[48];
		snprintf(name, sizeof(name), "xl/worksheets/sheet%zu.xml", i + 1);
		zip_begin(&z, name);
		if (sh[i].cls < 0)
			xlsx_summary(&o, r);
		else
			xlsx_class(&o, r, &sh[i]);
		out_flush(&o);
		zip_end(&z);
	}
	rc = out_done(&o);
	if (!rc)
		rc = zip_finish(&z);
	if (!rc)
		rc = z.err;
out:
	free(sh);
	zip_free(&z);
	return rc;
}

/* ---- writing all formats ---------------------------------------------- */

static const struct fmt {
	unsigned bit;
	const char *ext;
	int (*write)(const struct rep *r, struct tfile *t);
} fmts[] = {
	{REPORT_CSV, "csv", write_csv},
	{REPORT_XLSX, "xlsx", write_xlsx},
	{REPORT_HTML, "html", write_html},
	{REPORT_JSON, "json", write_json},
};

/* One format being written, on a thread of its own. */
struct writer {
	const struct rep *r;
	struct tfile *t;
	int (*write)(const struct rep *r, struct tfile *t);
	pthread_t thread;
	bool started;
	int rc;
};

static void *writer_run(void *ud)
{
	struct writer *w = ud;
	w->rc = w->write(w->r, w->t);
	if (!w->rc)
		w->rc = tfile_sync(w->t);
	return NULL;
}

int report_write_payments(const json_t *result, const char *dir, unsigned formats, json_t **paths,
			  char **err)
{
	struct rep r;
	struct tfile t[LT_ARRAY_SIZE(fmts)];
	char *msg = NULL;
	int rc;

	memset(t, 0, sizeof(t));
	for (size_t i = 0; i < LT_ARRAY_SIZE(t); i++)
		t[i].fd = -1;
	if (paths)
		*paths = NULL;
	if ((rc = rep_prepare(&r, result, formats, &msg)))
		goto out;
	if (!(formats & REPORT_ALL) || (formats & ~(REPORT_ALL | REPORT_INCLUDE_MATCHED))) {
		msg = xasprintf("report formats 0x%x: none or unknown", formats);
		rc = -EINVAL;
		goto out;
	}
	if (!dir || !*dir) {
		msg = xstrdup("no reports directory given");
		rc = -EINVAL;
		goto out;
	}
	if ((rc = mkdir_p(dir, 0750))) {
		msg = xasprintf("reports directory %s: %s", dir, strerror(-rc));
		goto out;
	}
	const char *from = json_string_value(json_object_get(result, "from"));
	const char *to = json_string_value(json_object_get(result, "to"));
	char base[64];
	snprintf(base, sizeof(base), FILE_PREFIX "_%.4s%.2s%.2s_%.4s%.2s%.2s", from, from + 5,
		 from + 8, to, to + 5, to + 8);

	/* The formats are written at once, a thread each: they only read the
	 * prepared result (struct rep and the borrowed JSON), each writes its
	 * own file. A thread that cannot be had writes its format here. */
	struct writer w[LT_ARRAY_SIZE(fmts)];
	memset(w, 0, sizeof(w));
	for (size_t i = 0; i < LT_ARRAY_SIZE(fmts); i++) {
		if (!(formats & fmts[i].bit))
			continue;
		char name[80];
		snprintf(name, sizeof(name), "%s.%s", base, fmts[i].ext);
		if ((rc = tfile_open(&t[i], dir, name, &msg)))
			break; /* the writers already started are joined first */
		w[i] = (struct writer){.r = &r, .t = &t[i], .write = fmts[i].write};
		w[i].started = pthread_create(&w[i].thread, NULL, writer_run, &w[i]) == 0;
		if (!w[i].started)
			writer_run(&w[i]);
	}
	for (size_t i = 0; i < LT_ARRAY_SIZE(fmts); i++)
		if (w[i].started)
			pthread_join(w[i].thread, NULL);
	if (rc)
		goto out;
	for (size_t i = 0; i < LT_ARRAY_SIZE(fmts); i++) {
		if (!w[i].rc)
			continue;
		rc = w[i].rc;
		msg = xasprintf("writing %s: %s%s", t[i].path, strerror(-rc),
				rc == -EFBIG && fmts[i].bit == REPORT_XLSX
					? " (no part of an XLSX may pass 4 GiB)"
					: "");
		goto out;
	}
	/* Every file is complete and durable under its temporary name: publish. */
	for (size_t i = 0; i < LT_ARRAY_SIZE(t); i++) {
		if (!t[i].tmp)
			continue;
		if (rename(t[i].tmp, t[i].path) < 0) {
			rc = -errno;
			msg = xasprintf("renaming %s to %s: %s", t[i].tmp, t[i].path,
					strerror(-rc));
			goto out;
		}
		free(t[i].tmp);
		t[i].tmp = NULL;
	}
	if ((rc = fsync_dir(dir))) {
		msg = xasprintf("reports directory %s: fsync: %s", dir, strerror(-rc));
		goto out;
	}
	/* A compressed copy of an earlier report of the same name is now stale. */
	bool unlinked = false;
	for (size_t i = 0; i < LT_ARRAY_SIZE(t); i++) {
		if (!t[i].path)
			continue;
		char *gz = xasprintf("%s.gz", t[i].path);
		if (unlink(gz) == 0)
			unlinked = true;
		free(gz);
	}
	if (unlinked)
		fsync_dir(dir);
	if (paths) {
		*paths = json_object();
		for (size_t i = 0; i < LT_ARRAY_SIZE(t); i++)
			if (t[i].path)
				json_object_set_new(*paths, fmts[i].ext, json_string(t[i].path));
	}
out:
	for (size_t i = 0; i < LT_ARRAY_SIZE(t); i++)
		tfile_discard(&t[i]);
	rep_free(&r);
	if (rc && err)
		*err = msg ? msg : xasprintf("reports: %s", strerror(-rc));
	else
		free(msg);
	return rc;
}

/* ---- compression of older reports ------------------------------------- */

static bool is_report_name(const char *n)
{
	return str_startswith(n, "doi-soat-") &&
	       (str_endswith(n, ".csv") || str_endswith(n, ".xlsx") || str_endswith(n, ".html") ||
		str_endswith(n, ".json"));
}

static int gzip_one(const char *dir, const char *name, const struct stat *st, char **err)
{
	char *src = xasprintf("%s/%s", dir, name);
	char *dst = xasprintf("%s/%s.gz", dir, name);
	char *tmp = xasprintf("%s/.%s.gz.XXXXXX", dir, name);
	char *buf = xmalloc(OUT_BUF_BYTES);
	int in = -1, fd = -1, rc = 0;
	gzFile gz = NULL;

	if ((in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		rc = -errno;
		*err = xasprintf("%s: %s", src, strerror(-rc));
		goto out;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		rc = -errno;
		*err = xasprintf("cannot create a temporary file for %s: %s", dst, strerror(-rc));
		free(tmp);
		tmp = NULL;
		goto out;
	}
	/* gzclose() closes what it was given: a duplicate, so fd stays ours to fsync. */
	int gfd = dup(fd);
	if (gfd < 0 || !(gz = gzdopen(gfd, "wb"))) {
		rc = gfd < 0 ? -errno : -ENOMEM;
		if (gfd >= 0)
			close(gfd);
		*err = xasprintf("%s: cannot start compressing: %s", dst, strerror(-rc));
		goto out;
	}
	for (;;) {
		ssize_t n = read(in, buf, OUT_BUF_BYTES);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			*err = xasprintf("%s: %s", src, strerror(-rc));
			goto out;
		}
		if (n == 0)
			break;
		if (gzwrite(gz, buf, (unsigned)n) != (int)n) {
			rc = -EIO;
			*err = xasprintf("%s: compressing failed", dst);
			goto out;
		}
	}
	int zr = gzclose(gz);
	gz = NULL;
	if (zr != Z_OK) {
		rc = zr == Z_ERRNO ? -errno : -EIO;
		*err = xasprintf("%s: %s", dst, strerror(-rc));
		goto out;
	}
	const struct timespec times[2] = {st->st_atim, st->st_mtim};
	if (fchmod(fd, st->st_mode & 0777) < 0 || futimens(fd, times) < 0 || fsync(fd) < 0) {
		rc = -errno;
		*err = xasprintf("%s: %s", tmp, strerror(-rc));
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		rc = -errno;
		*err = xasprintf("%s: %s", tmp, strerror(-rc));
		goto out;
	}
	fd = -1;
	if (rename(tmp, dst) < 0) {
		rc = -errno;
		*err = xasprintf("renaming %s to %s: %s", tmp, dst, strerror(-rc));
		goto out;
	}
	free(tmp);
	tmp = NULL;
	/* The .gz must be durable before the only other copy goes. */
	if ((rc = fsync_dir(dir))) {
		*err = xasprintf("%s: fsync: %s", dir, strerror(-rc));
		goto out;
	}
	if (unlink(src) < 0) {
		rc = -errno;
		*err = xasprintf("%s: %s", src, strerror(-rc));
	}
out:
	if (gz)
		gzclose(gz);
	if (fd >= 0)
		close(fd);
	if (in >= 0)
		close(in);
	if (tmp)
		unlink(tmp);
	free(tmp);
	free(buf);
	free(dst);
	free(src);
	return rc;
}

int report_compress_older(const char *dir, int64_t older_than_ms, unsigned *n_compressed,
			  char **err)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	unsigned done = 0;
	char *msg = NULL;
	int rc = 0;
	DIR *d = NULL;

	if (n_compressed)
		*n_compressed = 0;
	if (!dir || older_than_ms < 0) {
		msg = xstrdup("report_compress_older: no directory or a negative age");
		rc = -EINVAL;
		goto out;
	}
	if (!(d = opendir(dir))) {
		rc = -errno;
		msg = xasprintf("reports directory %s: %s", dir, strerror(-rc));
		goto out;
	}
	/* Names first, work after: the directory changes under readdir otherwise. */
	struct dirent *de;
	while ((de = readdir(d)) && n < COMPRESS_MAX_DIR) {
		const char *nm = de->d_name;
		if (!is_report_name(nm) && !str_startswith(nm, ".doi-soat-"))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			names = xrealloc(names, cap * sizeof(*names));
		}
		names[n++] = xstrdup(nm);
	}
	int64_t cutoff = now_wall_ms() - older_than_ms;
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (fstatat(dirfd(d), names[i], &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		int64_t mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
		if (mtime_ms >= cutoff)
			continue;
		if (names[i][0] == '.') {
			/* A writer that died long ago left it. */
			unlinkat(dirfd(d), names[i], 0);
			continue;
		}
		char *e = NULL;
		int r = gzip_one(dir, names[i], &st, &e);
		if (r == 0) {
			done++;
		} else if (!rc) {
			rc = r;
			msg = e;
			e = NULL;
		}
		free(e);
	}
	if (done)
		fsync_dir(dir);
out:
	if (d)
		closedir(d);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (n_compressed)
		*n_compressed = done;
	if (rc && err)
		*err = msg;
	else
		free(msg);
	return rc;
}
