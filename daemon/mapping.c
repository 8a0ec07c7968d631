/*
 * mapping: the engine behind the JSON files of mappings/. Loads and
 * validates field maps and code tables (every error with file, line and
 * field, all files' errors collected), applies a field map to a record
 * (never crashing, collecting one problem per target field), looks codes
 * up by validity date, and holds the transforms the national data needs:
 * money written as text, Unicode NFC, Vietnamese dates in UTC+7. The file
 * format is in docs/mappings.md; contracts are in mapping.h.
 *
 * A loaded set is read-only, so maps may be applied from several threads
 * at once (a worker thread off the loop, for example).
 */
#include "mapping.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <utf8proc.h>

#include "conf.h"
#include "jsonpos.h"
#include "util.h"

#define MAP_FORMAT_VERSION   1
#define MAP_MAX_FILE_BYTES   (16u << 20)
#define MAP_MAX_FILES	     1000
#define MAP_MAX_NAME_BYTES   64
#define MAP_MAX_TARGET_BYTES 128
#define MAP_MAX_PATH_BYTES   512
#define MAP_MAX_PATH_STEPS   32
#define MAP_MAX_SPEC_DEPTH   16
#define MAP_MAX_TRANSFORMS   32
#define MAP_MAX_CODE_BYTES   256
#define MAP_MAX_SPLIT_PARTS  32
#define MAP_MAX_TRUNCATE     1000000
#define MAP_MAX_PROBLEMS     50	  /* per record; the rest are counted */
#define MAP_MAX_CANON_DEPTH  1000 /* deeper than jansson's parser allows anyway */
#define MAP_MAX_CANON_BYTES  (1u << 30)
#define MAP_QUOTE_CHARS	     60	 /* code points of a value quoted in a problem */
#define MAP_MAX_MONEY_BYTES  256 /* longer text is not an amount */
#define MAP_MAX_VND	     1000000000000000LL

#define VN_OFFSET_MS (7LL * 3600 * 1000)
#define DAY_MS	     86400000LL
#define OPEN_BEGIN   INT64_MIN
#define OPEN_END     INT64_MAX

/* ==== text helpers ===================================================== */

/* Next code point of s (len bytes left); its length, or -1 when not UTF-8. */
static ssize_t next_cp(const char *s, size_t len, int32_t *cp)
{
	if (len && !((unsigned char)*s & 0x80)) { /* most bytes of Vietnamese text */
		*cp = (unsigned char)*s;
		return 1;
	}
	utf8proc_ssize_t n =
		utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)LT_MIN(len, 4), cp);
	return n > 0 ? n : -1;
}

static bool utf8_valid(const char *s, size_t len)
{
	int32_t cp;
	for (size_t i = 0; i < len;) {
		if (!((unsigned char)s[i] & 0x80)) {
			i++;
			continue;
		}
		ssize_t n = next_cp(s + i, len - i, &cp);
		if (n < 0)
			return false;
		i += (size_t)n;
	}
	return true;
}

/*
 * What "trim" removes at both ends: Unicode White_Space, plus the zero-width
 * space and byte-order mark that copy-paste from office documents leaves.
 */
static bool is_space_cp(int32_t c)
{
	return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
	       (c >= 0x2000 && c <= 0x200b) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
	       c == 0x205f || c == 0x3000 || c == 0xfeff;
}

/* The trimmed span of s; -EINVAL when s is not UTF-8. Only the ends are decoded. */
static int utf8_trim_span(const char *s, size_t len, size_t *start, size_t *end)
{
	size_t a = 0, b = len;
	int32_t cp;
	if (!utf8_valid(s, len))
		return -EINVAL;
	while (a < b) {
		ssize_t n = next_cp(s + a, b - a, &cp);
		if (!is_space_cp(cp))
			break;
		a += (size_t)n;
	}
	while (b > a) {
		size_t k = b - 1;
		while (k > a && ((unsigned char)s[k] & 0xc0) == 0x80)
			k--;
		if (next_cp(s + k, b - k, &cp) < 0 || !is_space_cp(cp))
			break;
		b = k;
	}
	*start = a < b ? a : 0;
	*end = a < b ? b : 0;
	return 0;
}

static char *utf8_trim(const char *s)
{
	size_t a, b;
	if (utf8_trim_span(s, strlen(s), &a, &b))
		return NULL;
	return xstrndup(s + a, b - a);
}

/* Lower or upper case, code point by code point (Vietnamese needs Unicode). */
static char *utf8_case(const char *s, bool upper)
{
	size_t len = strlen(s);
	char *out = xmalloc(4 * len + 1), *o = out;
	int32_t cp;
	for (size_t i = 0; i < len;) {
		ssize_t n = next_cp(s + i, len - i, &cp);
		if (n < 0) {
			free(out);
			return NULL;
		}
		i += (size_t)n;
		cp = upper ? utf8proc_toupper(cp) : utf8proc_tolower(cp);
		o += utf8proc_encode_char(cp, (utf8proc_uint8_t *)o);
	}
	*o = '\0';
	return out;
}

/*
 * Whether valid UTF-8 s is certainly its own NFC without asking utf8proc
 * (a tenth of the cost): every code point is one that NFC leaves alone
 * and that no neighbour composes with — U+0000..U+02FF (Latin, Latin-1,
 * Extended-A/B, IPA, spacing modifiers; combining marks begin at U+0300),
 * U+1E00..U+1EFF (Latin Extended Additional: Vietnamese's precomposed
 * letters) and U+2010..U+2027 (dashes, quotes, ellipsis). Vietnamese text
 * as systems store it is all of these; anything else goes the long way.
 */
static bool nfc_stable(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	while (*u) {
		uint32_t cp;
		if (u[0] < 0x80) {
			u++;
			continue;
		}
		if ((u[0] & 0xe0) == 0xc0) {
			cp = ((uint32_t)(u[0] & 0x1f) << 6) | (u[1] & 0x3f);
			u += 2;
		} else if ((u[0] & 0xf0) == 0xe0) {
			cp = ((uint32_t)(u[0] & 0x0f) << 12) | ((uint32_t)(u[1] & 0x3f) << 6) |
			     (u[2] & 0x3f);
			u += 3;
		} else {
			return false;
		}
		if (!(cp < 0x300 || (cp >= 0x1e00 && cp <= 0x1eff) ||
		      (cp >= 0x2010 && cp <= 0x2027)))
			return false;
	}
	return true;
}

/* Whether utf8 is its own NFC without asking utf8proc: 1 yes, 0 ask, -1 not UTF-8. */
static int nfc_same(const char *utf8)
{
	const char *p = utf8;
	while (*p && !((unsigned char)*p & 0x80))
		p++;
	if (!*p) /* ASCII is its own NFC: the common case of codes and keys */
		return 1;
	if (!utf8_valid(p, strlen(p)))
		return -1;
	return nfc_stable(p);
}

char *map_nfc(const char *utf8)
{
	if (!utf8)
		return NULL;
	int same = nfc_same(utf8);
	if (same)
		return same > 0 ? xstrdup(utf8) : NULL;
	/* utf8proc allocates with malloc(), so the caller's free() matches. It
	 * fails only on memory exhaustion here; that is reported as text it
	 * cannot normalise rather than aborting on a record's content. */
	return (char *)utf8proc_NFC((const utf8proc_uint8_t *)utf8);
}

/* Number of code points of valid UTF-8 s. */
static size_t utf8_count(const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += ((unsigned char)s[i] & 0xc0) != 0x80;
	return n;
}

/*
 * The byte length of the longest prefix of s with at most max code points
 * that ends on a grapheme-cluster boundary (a letter is never cut from its
 * combining accents, a UTF-8 sequence never split).
 */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
	size_t i = 0, count = 0, cut = 0;
	int32_t prev = -1, cp, state = 0;
	while (i < len) {
		ssize_t n = next_cp(s + i, len - i, &cp);
		if (n < 0)
			break;
		if (prev < 0 || utf8proc_grapheme_break_stateful(prev, cp, &state))
			cut = i; /* a boundary before cp */
		if (count == max)
			return cut;
		prev = cp;
		count++;
		i += (size_t)n;
	}
	return len;
}

/*
 * s clipped to MAP_QUOTE_CHARS code points, with "…" when clipped, and
 * control characters as spaces so that a message stays on one line.
 */
static char *clip(const char *s)
{
	size_t len = strlen(s);
	char *r = utf8_count(s, len) <= MAP_QUOTE_CHARS
			  ? xstrdup(s)
			  : xasprintf("%.*s…", (int)utf8_cut(s, len, MAP_QUOTE_CHARS), s);
	for (char *p = r; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return r;
}

/* Shortest "%g" text that reads back as d. */
static void fmt_real(double d, char *buf, size_t len)
{
	for (int p = 1; p <= 17; p++) {
		snprintf(buf, len, "%.*g", p, d);
		if (strtod(buf, NULL) == d)
			return;
	}
}

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "a list";
	case JSON_STRING: return "text";
	case JSON_INTEGER:
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

/* A value as a problem quotes it: 'text' (clipped), 42, a list, ... */
static char *describe(const json_t *v)
{
	char num[64];
	if (!v)
		return xstrdup("nothing");
	switch (json_typeof(v)) {
	case JSON_STRING: {
		char *c = clip(json_string_value(v));
		char *r = xasprintf("'%s'", c);
		free(c);
		return r;
	}
	case JSON_INTEGER: return xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
	case JSON_REAL: fmt_real(json_real_value(v), num, sizeof(num)); return xstrdup(num);
	case JSON_TRUE: return xstrdup("true");
	case JSON_FALSE: return xstrdup("false");
	default: return xstrdup(type_name(v));
	}
}

/* ==== dates ============================================================ */

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = floor_div(y, 400);
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = floor_div(z, 146097);
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int m)
{
	static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return dm[m - 1];
}

/* The Asia/Ho_Chi_Minh calendar day of a wall time. */
static int64_t vn_day(int64_t wall_ms)
{
	/* clamped far beyond any real date, so the addition cannot overflow */
	wall_ms = LT_MAX(LT_MIN(wall_ms, INT64_MAX / 2), INT64_MIN / 2);
	return floor_div(wall_ms + VN_OFFSET_MS, DAY_MS);
}

static char *fmt_day(int64_t day, char *buf, size_t len)
{
	int64_t y;
	int m, d;
	civil_from_days(day, &y, &m, &d);
	snprintf(buf, len, "%04" PRId64 "-%02d-%02d", y, m, d);
	return buf;
}

/* n decimal digits at s into *out. */
static bool get_digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

static bool valid_date(int y, int m, int d)
{
	return y >= 1 && y <= 9999 && m >= 1 && m <= 12 && d >= 1 && d <= days_in_month(y, m);
}

static bool valid_time(int h, int mi, int s)
{
	return h >= 0 && h <= 23 && mi >= 0 && mi <= 59 && s >= 0 && s <= 59;
}

/* Wall ms of a date and time of day in Asia/Ho_Chi_Minh. */
static int64_t vn_wall_ms(int y, int m, int d, int h, int mi, int s)
{
	return (days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60 + s) * 1000 - VN_OFFSET_MS;
}

/* "YYYY-MM-DD" (strict) into a day number. */
static int parse_day(const char *s, int64_t *day)
{
	int y, m, d;
	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-' || !get_digits(s, 4, &y) ||
	    !get_digits(s + 5, 2, &m) || !get_digits(s + 8, 2, &d) || !valid_date(y, m, d))
		return -EINVAL;
	*day = days_from_civil(y, m, d);
	return 0;
}

int map_parse_vn_time(const char *text, int64_t *wall_ms)
{
	int y, m, d, h, mi, s;
	if (!text || strlen(text) != 14 || !get_digits(text, 4, &y) ||
	    !get_digits(text + 4, 2, &m) || !get_digits(text + 6, 2, &d) ||
	    !get_digits(text + 8, 2, &h) || !get_digits(text + 10, 2, &mi) ||
	    !get_digits(text + 12, 2, &s) || !valid_date(y, m, d) || !valid_time(h, mi, s))
		return -EINVAL;
	*wall_ms = vn_wall_ms(y, m, d, h, mi, s);
	return 0;
}

/* Broken-down Asia/Ho_Chi_Minh time of wall ms; false outside years 1..9999. */
static bool vn_civil(int64_t wall_ms, int64_t *y, int *m, int *d, int *secs_of_day)
{
	if (wall_ms < INT64_MIN / 2 || wall_ms > INT64_MAX / 2)
		return false;
	int64_t local = wall_ms + VN_OFFSET_MS;
	int64_t day = floor_div(local, DAY_MS);
	civil_from_days(day, y, m, d);
	*secs_of_day = (int)((local - day * DAY_MS) / 1000);
	return *y >= 1 && *y <= 9999;
}

char *map_format_vn_time(int64_t wall_ms, char *buf, size_t len)
{
	int64_t y;
	int m, d, sod;
	if (!buf || len < 15 || !vn_civil(wall_ms, &y, &m, &d, &sod))
		return NULL;
	snprintf(buf, len, "%04" PRId64 "%02d%02d%02d%02d%02d", y, m, d, sod / 3600, sod / 60 % 60,
		 sod % 60);
	return buf;
}

enum date_fmt {
	DATE_COMPACT,	  /* yyyyMMddHHmmss */
	DATE_COMPACT_DAY, /* yyyyMMdd */
	DATE_ISO_DAY,	  /* yyyy-MM-dd */
	DATE_VN_DAY,	  /* dd/MM/yyyy */
	DATE_ISO,	  /* 2026-11-27T11:33:06+07:00 */
	DATE_EPOCH_MS,	  /* integer ms since 1970 UTC */
	DATE_FMT_COUNT,
};

static const char *const date_fmt_names[DATE_FMT_COUNT] = {
	"yyyyMMddHHmmss", "yyyyMMdd", "yyyy-MM-dd", "dd/MM/yyyy", "iso", "epoch_ms",
};

/* ISO 8601: date, optional [T ]HH:MM[:SS[.fff]] and Z or +HH:MM/+HHMM. */
static int parse_iso(const char *s, int64_t *ms)
{
	int y, m, d, h = 0, mi = 0, sec = 0, oh = 7, om = 0, sign = 1, frac = 0;
	if (strlen(s) < 10 || s[4] != '-' || s[7] != '-' || !get_digits(s, 4, &y) ||
	    !get_digits(s + 5, 2, &m) || !get_digits(s + 8, 2, &d) || !valid_date(y, m, d))
		return -EINVAL;
	const char *p = s + 10;
	if (*p == 'T' || *p == ' ') {
		if (!get_digits(p + 1, 2, &h) || p[3] != ':' || !get_digits(p + 4, 2, &mi))
			return -EINVAL;
		p += 6;
		if (*p == ':') {
			if (!get_digits(p + 1, 2, &sec))
				return -EINVAL;
			p += 3;
			if (*p == '.' || *p == ',') {
				int digits = 0;
				for (p++; *p >= '0' && *p <= '9'; p++, digits++)
					if (digits < 3)
						frac = frac * 10 + (*p - '0');
				if (!digits)
					return -EINVAL;
				for (; digits < 3; digits++)
					frac *= 10;
			}
		}
		if (!valid_time(h, mi, sec))
			return -EINVAL;
		if (*p == 'Z' || *p == 'z') {
			oh = 0;
			p++;
		} else if (*p == '+' || *p == '-') {
			sign = *p == '-' ? -1 : 1;
			if (!get_digits(p + 1, 2, &oh))
				return -EINVAL;
			p += 3;
			if (*p == ':')
				p++;
			if (!get_digits(p, 2, &om))
				return -EINVAL;
			p += 2;
			if (oh > 14 || om > 59)
				return -EINVAL;
		}
	}
	if (*p)
		return -EINVAL;
	int64_t local = (days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60 + sec) * 1000 + frac;
	*ms = local - sign * (oh * 3600 + om * 60) * 1000LL;
	return 0;
}

int map_parse_iso_time(const char *text, int64_t *wall_ms)
{
	return text ? parse_iso(text, wall_ms) : -EINVAL;
}

/* A date value (text or, for the digit formats and epoch_ms, a number) into wall ms. */
static int parse_date(const json_t *v, enum date_fmt f, int64_t *ms)
{
	char buf[32];
	const char *s;
	int y, m, d;
	if (json_is_integer(v)) {
		if (f == DATE_EPOCH_MS) {
			*ms = json_integer_value(v);
			return 0;
		}
		if (f != DATE_COMPACT && f != DATE_COMPACT_DAY)
			return -EINVAL;
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		s = buf;
	} else if (json_is_string(v)) {
		s = json_string_value(v);
	} else {
		return -EINVAL;
	}
	switch (f) {
	case DATE_COMPACT: return map_parse_vn_time(s, ms);
	case DATE_COMPACT_DAY:
		if (strlen(s) != 8 || !get_digits(s, 4, &y) || !get_digits(s + 4, 2, &m) ||
		    !get_digits(s + 6, 2, &d) || !valid_date(y, m, d))
			return -EINVAL;
		*ms = vn_wall_ms(y, m, d, 0, 0, 0);
		return 0;
	case DATE_ISO_DAY: {
		int64_t day;
		if (parse_day(s, &day))
			return -EINVAL;
		*ms = day * DAY_MS - VN_OFFSET_MS;
		return 0;
	}
	case DATE_VN_DAY: {
		/* d/M/yyyy or dd/MM/yyyy */
		const char *p = s;
		int part[3] = {0, 0, 0};
		for (int i = 0; i < 3; i++) {
			int n = 0;
			for (; *p >= '0' && *p <= '9' && n < 4; p++, n++)
				part[i] = part[i] * 10 + (*p - '0');
			if (!n || (i < 2 && (n > 2 || *p++ != '/')) || (i == 2 && n != 4))
				return -EINVAL;
		}
		if (*p || !valid_date(part[2], part[1], part[0]))
			return -EINVAL;
		*ms = vn_wall_ms(part[2], part[1], part[0], 0, 0, 0);
		return 0;
	}
	case DATE_ISO: return parse_iso(s, ms);
	case DATE_EPOCH_MS: {
		char *end;
		errno = 0;
		long long n = strtoll(s, &end, 10);
		if (errno || end == s || *end)
			return -EINVAL;
		*ms = n;
		return 0;
	}
	default: return -EINVAL;
	}
}

static json_t *format_date(int64_t ms, enum date_fmt f)
{
	char buf[48];
	int64_t y;
	int m, d, sod;
	if (f == DATE_EPOCH_MS)
		return json_integer(ms);
	if (!vn_civil(ms, &y, &m, &d, &sod))
		return NULL;
	switch (f) {
	case DATE_COMPACT: map_format_vn_time(ms, buf, sizeof(buf)); break;
	case DATE_COMPACT_DAY: snprintf(buf, sizeof(buf), "%04" PRId64 "%02d%02d", y, m, d); break;
	case DATE_ISO_DAY: snprintf(buf, sizeof(buf), "%04" PRId64 "-%02d-%02d", y, m, d); break;
	case DATE_VN_DAY: snprintf(buf, sizeof(buf), "%02d/%02d/%04" PRId64, d, m, y); break;
	default:
		snprintf(buf, sizeof(buf), "%04" PRId64 "-%02d-%02dT%02d:%02d:%02d+07:00", y, m, d,
			 sod / 3600, sod / 60 % 60, sod % 60);
		break;
	}
	return json_string(buf);
}

/* ==== money ============================================================ */

/* Texts that say a fee is not charged (compared NFC, lower case, trimmed). */
static const char *const money_free_words[] = {
	"không",
	"không có",
	"không thu",
	"không thu phí",
	"không thu lệ phí",
	"không mất phí",
	"miễn",
	"miễn phí",
	"miễn lệ phí",
	"miễn thu",
	NULL,
};

/* Currency words that may follow the amount (longest first). */
static const char *const money_units[] = {
	"việt nam đồng", "đồng", "vnđ", "vnd", "đ", "₫", NULL,
};

/* Group-of-three digits separated by sep: "1.200.000". Returns the digits. */
static bool thousands(const char *s, size_t len, char sep, int64_t *v)
{
	size_t i = 0, lead = 0;
	int64_t n = 0;
	while (i < len && s[i] >= '0' && s[i] <= '9') {
		n = n * 10 + (s[i] - '0');
		i++;
		lead++;
	}
	/* "0.500" and "08.000" are not how anyone groups an amount. */
	if (lead < 1 || lead > 3 || s[0] == '0')
		return false;
	size_t groups = 0;
	while (i < len) {
		if (s[i] != sep || i + 4 > len)
			return false;
		for (size_t k = 1; k <= 3; k++) {
			if (s[i + k] < '0' || s[i + k] > '9')
				return false;
			n = n * 10 + (s[i + k] - '0');
		}
		i += 4;
		if (++groups > 5) /* beyond 10^18 */
			return false;
	}
	if (!groups)
		return false;
	*v = n;
	return true;
}

/*
 * The amount part ([0-9.,]+): plain digits; "." or "," as thousands
 * separator in groups of three; both, when the last one is a decimal
 * separator followed by zeros only ("1.200.000,00").
 */
static bool money_number(const char *s, size_t len, int64_t *v)
{
	size_t dots = 0, commas = 0;
	for (size_t i = 0; i < len; i++) {
		dots += s[i] == '.';
		commas += s[i] == ',';
	}
	if (!dots && !commas) {
		if (len > 16)
			return false;
		int64_t n = 0;
		for (size_t i = 0; i < len; i++)
			n = n * 10 + (s[i] - '0');
		*v = n;
		return true;
	}
	if (dots && commas) {
		/* the last separator is the decimal one and occurs once */
		size_t last = len;
		while (last > 0 && s[last - 1] != '.' && s[last - 1] != ',')
			last--;
		char dec = s[last - 1], grp = dec == '.' ? ',' : '.';
		if ((dec == '.' ? dots : commas) != 1 || last == len || len - last > 2)
			return false;
		for (size_t i = last; i < len; i++)
			if (s[i] != '0')
				return false; /* a fraction of a đồng */
		return thousands(s, last - 1, grp, v);
	}
	return thousands(s, len, dots ? '.' : ',', v);
}

int map_money(const char *text, int64_t *vnd)
{
	int r = -EINVAL;
	char *nfc = NULL, *low = NULL;
	if (!text || strlen(text) > MAP_MAX_MONEY_BYTES)
		return -EINVAL;
	if (!(nfc = map_nfc(text)) || !(low = utf8_case(nfc, false)))
		goto out;
	size_t a, b;
	if (utf8_trim_span(low, strlen(low), &a, &b) || a == b)
		goto out;
	const char *s = low + a;
	size_t len = b - a;
	for (size_t i = 0; money_free_words[i]; i++) {
		if (strlen(money_free_words[i]) == len && !memcmp(s, money_free_words[i], len)) {
			*vnd = 0;
			r = 0;
			goto out;
		}
	}
	size_t n = 0;
	while (n < len && ((s[n] >= '0' && s[n] <= '9') || s[n] == '.' || s[n] == ','))
		n++;
	int64_t v;
	if (!n || s[0] < '0' || s[0] > '9' || !money_number(s, n, &v) || v > MAP_MAX_VND)
		goto out;
	/* What may follow: spaces, one currency word, spaces, "/per unit". */
	size_t i = n;
	while (i < len && s[i] == ' ')
		i++;
	for (size_t u = 0; money_units[u]; u++) {
		size_t ul = strlen(money_units[u]);
		if (len - i >= ul && !memcmp(s + i, money_units[u], ul) &&
		    (i + ul == len || s[i + ul] == ' ' || s[i + ul] == '/')) {
			i += ul;
			break;
		}
	}
	while (i < len && s[i] == ' ')
		i++;
	if (i < len && s[i] == '/' && i + 1 < len)
		i = len; /* "50.000 đồng/hồ sơ": the amount per unit */
	if (i != len)
		goto out;
	*vnd = v;
	r = 0;
out:
	free(nfc);
	free(low);
	return r;
}

/* ==== paths ============================================================ */

enum step_kind { STEP_KEY, STEP_INDEX, STEP_ALL };

struct step {
	enum step_kind kind;
	char *key; /* owned; STEP_KEY */
	size_t index;
};

struct path {
	char *text; /* owned */
	struct step *steps;
	size_t n;
	bool has_all;
};

static void path_free(struct path *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		free(p->steps[i].key);
	free(p->steps);
	free(p->text);
	free(p);
}

/* Parses "A.B", "A[].B", "A[0].B", "[0].A". On error *why (caller frees). */
static int path_parse(const char *text, struct path **out, char **why)
{
	struct path *p = xcalloc(1, sizeof(*p));
	size_t len = strlen(text), i = 0;
	*out = NULL;
	p->text = xstrdup(text);
	p->steps = xcalloc(MAP_MAX_PATH_STEPS, sizeof(*p->steps));
	if (!len) {
		*why = xstrdup("empty path");
		goto fail;
	}
	if (len > MAP_MAX_PATH_BYTES) {
		*why = xasprintf("path longer than %d bytes", MAP_MAX_PATH_BYTES);
		goto fail;
	}
	bool need_name = text[0] != '[';
	while (i < len) {
		if (p->n == MAP_MAX_PATH_STEPS) {
			*why = xasprintf("'%s' has more than %d steps", text, MAP_MAX_PATH_STEPS);
			goto fail;
		}
		struct step *st = &p->steps[p->n];
		if (need_name) {
			size_t start = i;
			while (i < len && text[i] != '.' && text[i] != '[' && text[i] != ']' &&
			       (unsigned char)text[i] >= 0x20)
				i++;
			if (i == start) {
				*why = xasprintf("'%s': a name is expected at offset %zu", text, i);
				goto fail;
			}
			st->kind = STEP_KEY;
			st->key = xstrndup(text + start, i - start);
			p->n++;
			need_name = false;
			continue;
		}
		if (text[i] == '.') {
			i++;
			need_name = true;
			if (i == len) {
				*why = xasprintf("'%s' ends with '.'", text);
				goto fail;
			}
			continue;
		}
		if (text[i] != '[') {
			*why = xasprintf("'%s': unexpected '%c' at offset %zu", text, text[i], i);
			goto fail;
		}
		size_t j = ++i, idx = 0;
		while (i < len && text[i] >= '0' && text[i] <= '9' && i - j < 9)
			idx = idx * 10 + (size_t)(text[i++] - '0');
		if (i >= len || text[i] != ']') {
			*why = xasprintf("'%s': '[' must be followed by digits (at most 9) or "
					 "nothing, then ']'",
					 text);
			goto fail;
		}
		i++;
		st->kind = i - j == 1 ? STEP_ALL : STEP_INDEX;
		st->index = idx;
		p->has_all |= st->kind == STEP_ALL;
		p->n++;
	}
	*out = p;
	return 0;
fail:
	path_free(p);
	return -EINVAL;
}

static const json_t *walk(const json_t *v, const struct step *st, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		if (st[i].kind == STEP_KEY)
			v = json_is_object(v) ? json_object_get(v, st[i].key) : NULL;
		else
			v = json_is_array(v) ? json_array_get(v, st[i].index) : NULL;
	}
	return v;
}

/* Appends to acc every value reached from v by steps (st[0] is a []). */
static void collect(const json_t *v, const struct step *st, size_t n, json_t *acc)
{
	size_t i = 0;
	while (v && i < n && st[i].kind != STEP_ALL) {
		v = walk(v, &st[i], 1);
		i++;
	}
	if (!v)
		return;
	if (i == n) {
		json_array_append(acc, (json_t *)v);
		return;
	}
	if (!json_is_array(v))
		return;
	size_t k;
	const json_t *e;
	json_array_foreach (v, k, e) {
		collect(e, st + i + 1, n - i - 1, acc);
	}
}

static json_t *path_get(const json_t *doc, const struct path *p)
{
	size_t k = 0;
	while (k < p->n && p->steps[k].kind != STEP_ALL)
		k++;
	const json_t *pre = walk(doc, p->steps, k);
	if (k == p->n)
		return pre ? json_incref((json_t *)pre) : NULL;
	if (!json_is_array(pre))
		return NULL;
	json_t *acc = json_array();
	collect(pre, p->steps + k, p->n - k, acc);
	return acc;
}

json_t *map_path_get(const json_t *doc, const char *path)
{
	struct path *p;
	char *why = NULL;
	if (!doc || !path || path_parse(path, &p, &why)) {
		free(why);
		return NULL;
	}
	json_t *r = path_get(doc, p);
	path_free(p);
	return r;
}

/* ==== canonical text =================================================== */

static int canon_string(struct dynbuf *b, const char *s)
{
	char *n = map_nfc(s);
	const char *t = n ? n : s, *run = t;
	int r = dynbuf_add(b, "\"", 1);
	for (const char *p = t; !r; p++) {
		unsigned char c = (unsigned char)*p;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		/* the bytes up to here need no escape */
		if ((r = dynbuf_add(b, run, (size_t)(p - run))) || !c)
			break;
		run = p + 1;
		switch (c) {
		case '"': r = dynbuf_add(b, "\\\"", 2); break;
		case '\\': r = dynbuf_add(b, "\\\\", 2); break;
		case '\n': r = dynbuf_add(b, "\\n", 2); break;
		case '\r': r = dynbuf_add(b, "\\r", 2); break;
		case '\t': r = dynbuf_add(b, "\\t", 2); break;
		case '\b': r = dynbuf_add(b, "\\b", 2); break;
		case '\f': r = dynbuf_add(b, "\\f", 2); break;
		default: r = dynbuf_printf(b, "\\u%04x", c); break;
		}
	}
	if (!r)
		r = dynbuf_add(b, "\"", 1);
	free(n);
	return r;
}

struct canon_key {
	char *nfc; /* owned */
	const char *key;
	json_t *value;
};

static int canon_key_cmp(const void *a, const void *b)
{
	const struct canon_key *x = a, *y = b;
	int c = strcmp(x->nfc, y->nfc);
	return c ? c : strcmp(x->key, y->key);
}

static int canon(struct dynbuf *b, const json_t *j, int depth);

static int canon_object(struct dynbuf *b, const json_t *j, int depth)
{
	size_t n = json_object_size(j), i = 0;
	struct canon_key *k = xcalloc(n ? n : 1, sizeof(*k));
	const char *key;
	json_t *v;
	int r;
	json_object_foreach ((json_t *)j, key, v) {
		if (i == n)
			break;
		char *nf = map_nfc(key);
		k[i++] = (struct canon_key){nf ? nf : xstrdup(key), key, v};
	}
	qsort(k, i, sizeof(*k), canon_key_cmp);
	r = dynbuf_add(b, "{", 1);
	for (size_t m = 0; !r && m < i; m++) {
		if ((m && (r = dynbuf_add(b, ",", 1))) || (r = canon_string(b, k[m].key)) ||
		    (r = dynbuf_add(b, ":", 1)))
			break;
		r = canon(b, k[m].value, depth + 1);
	}
	if (!r)
		r = dynbuf_add(b, "}", 1);
	for (size_t m = 0; m < i; m++)
		free(k[m].nfc);
	free(k);
	return r;
}

static int canon_array(struct dynbuf *b, const json_t *j, int depth)
{
	size_t i;
	json_t *v;
	int r = dynbuf_add(b, "[", 1);
	json_array_foreach (j, i, v) {
		if (r || (i && (r = dynbuf_add(b, ",", 1))))
			break;
		r = canon(b, v, depth + 1);
	}
	return r ? r : dynbuf_add(b, "]", 1);
}

static int canon(struct dynbuf *b, const json_t *j, int depth)
{
	char num[64];
	if (depth > MAP_MAX_CANON_DEPTH)
		return -E2BIG;
	switch (json_typeof(j)) {
	case JSON_OBJECT: return canon_object(b, j, depth);
	case JSON_ARRAY: return canon_array(b, j, depth);
	case JSON_STRING: return canon_string(b, json_string_value(j));
	case JSON_INTEGER: return dynbuf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
	case JSON_REAL:
		fmt_real(json_real_value(j), num, sizeof(num));
		/* a real keeps looking like one: 3.0 is not 3 */
		if (!strpbrk(num, ".eE"))
			strcat(num, ".0");
		return dynbuf_addstr(b, num);
	case JSON_TRUE: return dynbuf_addstr(b, "true");
	case JSON_FALSE: return dynbuf_addstr(b, "false");
	default: return dynbuf_addstr(b, "null");
	}
}

char *map_canonical(const json_t *j)
{
	struct dynbuf b;
	if (!j)
		return NULL;
	dynbuf_init(&b, MAP_MAX_CANON_BYTES);
	if (canon(&b, j, 0)) {
		dynbuf_free(&b);
		return NULL;
	}
	return dynbuf_steal(&b, NULL);
}

/* ==== the loaded set =================================================== */

enum xf_kind {
	XF_TRIM,
	XF_NFC,
	XF_LOWER,
	XF_UPPER,
	XF_INT,
	XF_NUMBER,
	XF_MONEY,
	XF_STRING,
	XF_UNIQUE,
	XF_SORT,
	XF_FIRST,
	XF_SPLIT_CODE,
	XF_TRUNCATE,
	XF_LOOKUP,
	XF_DATE,
	XF_ID_TYPE,
};

enum xf_arg { ARG_NONE, ARG_COUNT, ARG_TABLE, ARG_DATE };

static const struct xf_def {
	const char *name;
	enum xf_kind kind;
	enum xf_arg arg;
	bool on_list; /* acts on a list as a whole, not element by element */
	bool text;    /* usable in a code table's "normalize" */
	int64_t max;  /* ARG_COUNT: the largest argument */
} xf_defs[] = {
	{"trim", XF_TRIM, ARG_NONE, false, true, 0},
	{"nfc", XF_NFC, ARG_NONE, false, true, 0},
	{"lower", XF_LOWER, ARG_NONE, false, true, 0},
	{"upper", XF_UPPER, ARG_NONE, false, true, 0},
	{"int", XF_INT, ARG_NONE, false, false, 0},
	{"number", XF_NUMBER, ARG_NONE, false, false, 0},
	{"money", XF_MONEY, ARG_NONE, false, false, 0},
	{"string", XF_STRING, ARG_NONE, false, false, 0},
	{"unique", XF_UNIQUE, ARG_NONE, true, false, 0},
	{"sort", XF_SORT, ARG_NONE, true, false, 0},
	{"first", XF_FIRST, ARG_NONE, true, false, 0},
	{"split_code", XF_SPLIT_CODE, ARG_COUNT, false, false, MAP_MAX_SPLIT_PARTS},
	{"truncate", XF_TRUNCATE, ARG_COUNT, false, false, MAP_MAX_TRUNCATE},
	{"lookup", XF_LOOKUP, ARG_TABLE, false, false, 0},
	{"date", XF_DATE, ARG_DATE, false, false, 0},
	{"id_type", XF_ID_TYPE, ARG_NONE, false, false, 0},
	{NULL, XF_TRIM, ARG_NONE, false, false, 0},
};

struct xform {
	const struct xf_def *def;
	int64_t n;		       /* split_code, truncate */
	char *table_name;	       /* owned; lookup */
	const struct map_table *table; /* borrowed from the set; lookup, resolved after load */
	enum date_fmt date_from, date_to;
};

enum spec_kind { SPEC_FROM, SPEC_CONSTANT, SPEC_EACH, SPEC_OBJECT };

/* One target field. Everything is owned. */
struct spec {
	char *target;
	enum spec_kind kind;
	struct path *path; /* FROM, EACH; OBJECT's "within" (NULL: the same context) */
	bool required;
	struct path *when_path; /* required_when: required when the value there is */
	json_t *when_values;	/* (when_not_in: is not) one of these; owned */
	bool when_not_in;
	bool as_list; /* OBJECT: the object as a list of one */
	json_t *def;
	json_t *constant;
	struct xform *xf;
	size_t n_xf;
	struct spec *fields; /* EACH, OBJECT */
	size_t n_fields;
};

#define MAP_MAX_DATE_PATHS 8

struct map_record {
	char *name;
	char *file;
	char *key;
	struct path *date_paths[MAP_MAX_DATE_PATHS]; /* "date": the record's own date */
	size_t n_date_paths;
	enum date_fmt date_fmt;
	struct spec *fields;
	size_t n_fields;
	char **aspects;
	char **cmp_paths;
	size_t n_cmp;
};

struct table_entry {
	char *code;	   /* owned, normalised */
	json_t *to;	   /* owned; NULL when ambiguous */
	json_t *ambiguous; /* owned: the candidates, when the code has no single value */
	int64_t from_day;  /* inclusive Asia/Ho_Chi_Minh days, OPEN_BEGIN/OPEN_END */
	int64_t to_day;
	size_t index; /* in the file's "entries" */
	int line;
};

#define MAP_MAX_NORMALIZE 8

struct map_table {
	char *name;
	char *file;
	const struct xf_def *norm[MAP_MAX_NORMALIZE];
	size_t n_norm;
	struct table_entry *e; /* sorted by code, then from_day */
	size_t n;
};

struct map_set {
	struct map_record **records; /* owned */
	size_t n_records;
	struct map_table **tables; /* owned */
	size_t n_tables;
};

static void spec_clear(struct spec *s)
{
	free(s->target);
	path_free(s->path);
	path_free(s->when_path);
	json_decref(s->when_values);
	json_decref(s->def);
	json_decref(s->constant);
	for (size_t i = 0; i < s->n_xf; i++)
		free(s->xf[i].table_name);
	free(s->xf);
	for (size_t i = 0; i < s->n_fields; i++)
		spec_clear(&s->fields[i]);
	free(s->fields);
}

static void record_free(struct map_record *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_fields; i++)
		spec_clear(&m->fields[i]);
	free(m->fields);
	for (size_t i = 0; i < m->n_cmp; i++) {
		free(m->aspects[i]);
		free(m->cmp_paths[i]);
	}
	free(m->aspects);
	free(m->cmp_paths);
	for (size_t i = 0; i < m->n_date_paths; i++)
		path_free(m->date_paths[i]);
	free(m->name);
	free(m->file);
	free(m->key);
	free(m);
}

static void table_free(struct map_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++) {
		free(t->e[i].code);
		json_decref(t->e[i].to);
		json_decref(t->e[i].ambiguous);
	}
	free(t->e);
	free(t->name);
	free(t->file);
	free(t);
}

void map_set_free(struct map_set *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_records; i++)
		record_free(s->records[i]);
	for (size_t i = 0; i < s->n_tables; i++)
		table_free(s->tables[i]);
	free(s->records);
	free(s->tables);
	free(s);
}

size_t map_set_count(const struct map_set *s)
{
	return s ? s->n_records + s->n_tables : 0;
}

const struct map_record *map_record_find(const struct map_set *s, const char *name)
{
	for (size_t i = 0; s && name && i < s->n_records; i++)
		if (!strcmp(s->records[i]->name, name))
			return s->records[i];
	return NULL;
}

const struct map_table *map_table_find(const struct map_set *s, const char *name)
{
	for (size_t i = 0; s && name && i < s->n_tables; i++)
		if (!strcmp(s->tables[i]->name, name))
			return s->tables[i];
	return NULL;
}

const char *map_record_file(const struct map_record *m)
{
	return m ? m->file : NULL;
}

const char *map_record_key(const struct map_record *m)
{
	return m ? m->key : NULL;
}

const char *map_record_compare_at(const struct map_record *m, size_t i, const char **path)
{
	if (!m || i >= m->n_cmp)
		return NULL;
	if (path)
		*path = m->cmp_paths[i];
	return m->aspects[i];
}

/* ==== code tables ====================================================== */

/* Applies a table's "normalize" steps to a code. NULL when not UTF-8. */
static char *normalize_code(const struct map_table *t, const char *code)
{
	char *s = xstrdup(code);
	for (size_t i = 0; s && i < t->n_norm; i++) {
		char *n = NULL;
		switch (t->norm[i]->kind) {
		case XF_TRIM: n = utf8_trim(s); break;
		case XF_NFC: n = map_nfc(s); break;
		case XF_LOWER: n = utf8_case(s, false); break;
		default: n = utf8_case(s, true); break;
		}
		free(s);
		s = n;
	}
	return s;
}

/* Index of the first entry for code (sorted table), or t->n. */
static size_t table_first(const struct map_table *t, const char *code)
{
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(t->e[mid].code, code) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

enum find_result { FOUND, AMBIGUOUS, NOT_VALID, UNKNOWN };

/* The entry of code valid on day; [*first, *end) spans all entries of the code. */
static enum find_result table_find(const struct map_table *t, const char *code, int64_t day,
				   const struct table_entry **hit, size_t *first, size_t *end)
{
	size_t i = table_first(t, code), j = i;
	while (j < t->n && !strcmp(t->e[j].code, code))
		j++;
	*first = i;
	*end = j;
	*hit = NULL;
	if (i == j)
		return UNKNOWN;
	for (size_t k = i; k < j; k++) {
		if (t->e[k].from_day <= day && day <= t->e[k].to_day) {
			*hit = &t->e[k];
			return t->e[k].ambiguous ? AMBIGUOUS : FOUND;
		}
	}
	return NOT_VALID;
}

static int64_t at_or_now(int64_t at_ms)
{
	return at_ms ? at_ms : now_wall_ms();
}

int map_lookup(const struct map_table *t, const char *code, int64_t at_ms, const json_t **value)
{
	const struct table_entry *hit;
	size_t first, end;
	if (!t || !code)
		return 1;
	char *norm = normalize_code(t, code);
	if (!norm)
		return 1;
	enum find_result r = table_find(t, norm, vn_day(at_or_now(at_ms)), &hit, &first, &end);
	free(norm);
	if (r != FOUND)
		return 1;
	if (value)
		*value = hit->to;
	return 0;
}

/* "from 2025-03-01", "until 2025-02-28", "2024-01-01 to 2024-12-31", "always" */
static char *validity_text(const struct table_entry *e)
{
	char a[16], b[16];
	if (e->from_day == OPEN_BEGIN && e->to_day == OPEN_END)
		return xstrdup("always");
	if (e->from_day == OPEN_BEGIN)
		return xasprintf("until %s", fmt_day(e->to_day, b, sizeof(b)));
	if (e->to_day == OPEN_END)
		return xasprintf("from %s", fmt_day(e->from_day, a, sizeof(a)));
	return xasprintf("%s to %s", fmt_day(e->from_day, a, sizeof(a)),
			 fmt_day(e->to_day, b, sizeof(b)));
}

/* ==== loading and validation =========================================== */

struct pending_lookup {
	struct xform *xf; /* borrowed: in a record of the set; NULL when it was refused */
	char *table;	  /* owned */
	char *file;	  /* owned */
	char *jpath;	  /* owned */
	int line;
};

struct load_msg {
	int line;
	size_t seq;
	char *text; /* owned */
};

struct load {
	struct conf_errors *errs;
	const char *file;
	const struct jsonpos *pos;
	struct pending_lookup *pend;
	size_t n_pend;
	size_t n_errors;       /* of the current file */
	struct load_msg *msgs; /* owned: the current file's, flushed sorted by line */
	char **refused;	       /* owned: names of files refused, not to be reported again */
	size_t n_refused;
};

static void lerr(struct load *ld, const char *jpath, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void lerr(struct load *ld, const char *jpath, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *m = xvasprintf(fmt, ap);
	va_end(ap);
	int line = jsonpos_line(ld->pos, jpath);
	ld->msgs = xrealloc(ld->msgs, (ld->n_errors + 1) * sizeof(*ld->msgs));
	ld->msgs[ld->n_errors] = (struct load_msg){
		line, ld->n_errors,
		xasprintf("%s:%d: %s: %s", ld->file, line, *jpath ? jpath : "(top)", m)};
	ld->n_errors++;
	free(m);
}

static int load_msg_cmp(const void *a, const void *b)
{
	const struct load_msg *x = a, *y = b;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* A file's messages go out in line order, whatever order the checks ran in. */
static void flush_msgs(struct load *ld)
{
	if (ld->n_errors)
		qsort(ld->msgs, ld->n_errors, sizeof(*ld->msgs), load_msg_cmp);
	for (size_t i = 0; i < ld->n_errors; i++) {
		conf_errors_add(ld->errs, "%s", ld->msgs[i].text);
		free(ld->msgs[i].text);
	}
	free(ld->msgs);
	ld->msgs = NULL;
}

static char *jp_key(const char *base, const char *key)
{
	return *base ? xasprintf("%s.%s", base, key) : xstrdup(key);
}

static char *jp_idx(const char *base, size_t i)
{
	return xasprintf("%s[%zu]", base, i);
}

/* Reports every member of obj not in allowed (NULL-terminated). */
static void check_keys(struct load *ld, const json_t *obj, const char *jpath,
		       const char *const *allowed, const char *what)
{
	const char *key;
	json_t *v;
	json_object_foreach ((json_t *)obj, key, v) {
		bool known = false;
		for (size_t i = 0; allowed[i] && !known; i++)
			known = !strcmp(key, allowed[i]);
		if (known)
			continue;
		char *p = jp_key(jpath, key), *c = clip(key);
		lerr(ld, p, "unknown key '%s' in %s", c, what);
		free(c);
		free(p);
	}
}

/* A map or table name: [A-Za-z0-9][A-Za-z0-9_.-]*, at most 64 bytes. */
static bool valid_name(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > MAP_MAX_NAME_BYTES)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool alnum =
			(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && (i == 0 || (c != '_' && c != '-' && c != '.')))
			return false;
	}
	return true;
}

/* A target field name: no path syntax (compare paths address it), no controls. */
static bool valid_target(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > MAP_MAX_TARGET_BYTES)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '.' || s[i] == '[' || s[i] == ']' || (unsigned char)s[i] < 0x20)
			return false;
	return true;
}

static const struct xf_def *xf_find(const char *name)
{
	for (size_t i = 0; xf_defs[i].name; i++)
		if (!strcmp(xf_defs[i].name, name))
			return &xf_defs[i];
	return NULL;
}

static int date_fmt_find(const char *name)
{
	for (int i = 0; i < DATE_FMT_COUNT; i++)
		if (!strcmp(date_fmt_names[i], name))
			return i;
	return -1;
}

static const char known_transforms[] = "trim, nfc, lower, upper, int, number, money, string, "
				       "unique, sort, first, split_code, truncate, lookup, date, "
				       "id_type";
static const char known_date_fmts[] = "yyyyMMddHHmmss, yyyyMMdd, yyyy-MM-dd, dd/MM/yyyy, iso, "
				      "epoch_ms";

static bool parse_date_arg(struct load *ld, const json_t *arg, const char *jpath, struct xform *x)
{
	static const char *const keys[] = {"from", "to", NULL};
	if (!json_is_object(arg)) {
		lerr(ld, jpath, "date takes {\"from\": FORMAT, \"to\": FORMAT}, got %s",
		     type_name(arg));
		return false;
	}
	size_t before = ld->n_errors;
	check_keys(ld, arg, jpath, keys, "a date transform (expected from, to)");
	for (int k = 0; k < 2; k++) {
		const json_t *f = json_object_get(arg, keys[k]);
		char *p = jp_key(jpath, keys[k]);
		int i = json_is_string(f) ? date_fmt_find(json_string_value(f)) : -1;
		if (!f)
			lerr(ld, p, "missing (a date format: %s)", known_date_fmts);
		else if (i < 0)
			lerr(ld, p, "unknown date format %s%s%s (known: %s)",
			     json_is_string(f) ? "'" : "",
			     json_is_string(f) ? json_string_value(f) : type_name(f),
			     json_is_string(f) ? "'" : "", known_date_fmts);
		else if (k == 0)
			x->date_from = (enum date_fmt)i;
		else
			x->date_to = (enum date_fmt)i;
		free(p);
	}
	return ld->n_errors == before;
}

/* One element of "transform": "name" or {"name": argument}. */
static bool parse_xform(struct load *ld, const json_t *t, const char *jpath, struct xform *x)
{
	const char *name;
	const json_t *arg = NULL;
	if (json_is_string(t)) {
		name = json_string_value(t);
	} else if (json_is_object(t) && json_object_size(t) == 1) {
		void *it = json_object_iter((json_t *)t);
		name = json_object_iter_key(it);
		arg = json_object_iter_value(it);
	} else {
		lerr(ld, jpath, "a transform is a name or an object with one key, got %s",
		     json_is_object(t) ? "an object with several keys" : type_name(t));
		return false;
	}
	const struct xf_def *d = xf_find(name);
	char *c = clip(name);
	bool ok = false;
	if (!d) {
		lerr(ld, jpath, "unknown transform '%s' (known: %s)", c, known_transforms);
		goto out;
	}
	x->def = d;
	if (d->arg == ARG_NONE && arg) {
		lerr(ld, jpath, "transform '%s' takes no argument: write it as \"%s\"", c, c);
		goto out;
	}
	if (d->arg != ARG_NONE && !arg) {
		lerr(ld, jpath, "transform '%s' needs an argument: {\"%s\": ...}", c, c);
		goto out;
	}
	char *ap = arg ? jp_key(jpath, name) : NULL;
	switch (d->arg) {
	case ARG_NONE: ok = true; break;
	case ARG_COUNT:
		if (!json_is_integer(arg) || json_integer_value(arg) < 1 ||
		    json_integer_value(arg) > d->max) {
			char *v = describe(arg);
			lerr(ld, ap, "%s takes a whole number from 1 to %" PRId64 ", got %s", c,
			     d->max, v);
			free(v);
			break;
		}
		x->n = json_integer_value(arg);
		ok = true;
		break;
	case ARG_TABLE:
		if (!json_is_string(arg) || !valid_name(json_string_value(arg))) {
			char *v = describe(arg);
			lerr(ld, ap, "lookup takes the name of a code table, got %s", v);
			free(v);
			break;
		}
		x->table_name = xstrdup(json_string_value(arg));
		ld->pend = xrealloc(ld->pend, (ld->n_pend + 1) * sizeof(*ld->pend));
		ld->pend[ld->n_pend++] =
			(struct pending_lookup){x, xstrdup(x->table_name), xstrdup(ld->file),
						xstrdup(ap), jsonpos_line(ld->pos, ap)};
		ok = true;
		break;
	case ARG_DATE: ok = parse_date_arg(ld, arg, ap, x); break;
	}
	free(ap);
out:
	free(c);
	return ok;
}

static bool parse_fields(struct load *ld, const json_t *obj, const char *jpath, int depth,
			 struct spec **out, size_t *n_out);

static bool parse_path_at(struct load *ld, const json_t *v, const char *jpath, struct path **out)
{
	char *why = NULL;
	if (!json_is_string(v)) {
		lerr(ld, jpath, "a path is text like \"A.B\", \"A[].B\" or \"A[0].B\", got %s",
		     type_name(v));
		return false;
	}
	if (path_parse(json_string_value(v), out, &why)) {
		lerr(ld, jpath, "bad path: %s", why);
		free(why);
		return false;
	}
	return true;
}

/*
 * "required_when": {"path": PATH, "in": [VALUES]} or {"path": PATH, "not_in":
 * [VALUES]}: the field is required when the value at PATH (read like the
 * field's from, in the same object) is, or is not, one of VALUES.
 */
static void parse_when(struct load *ld, const json_t *w, const char *jpath, struct spec *sp)
{
	static const char *const keys[] = {"path", "in", "not_in", NULL};
	if (!json_is_object(w)) {
		lerr(ld, jpath,
		     "required_when is {\"path\": PATH, \"in\": [VALUES]} or {\"path\": PATH, "
		     "\"not_in\": [VALUES]}, got %s",
		     type_name(w));
		return;
	}
	check_keys(ld, w, jpath, keys, "required_when (expected path, in, not_in)");
	const json_t *path = json_object_get(w, "path"), *in = json_object_get(w, "in"),
		     *not_in = json_object_get(w, "not_in");
	char *p = jp_key(jpath, "path");
	if (!path)
		lerr(ld, p, "missing: the path of the value the requirement depends on");
	else if (parse_path_at(ld, path, p, &sp->when_path) && sp->when_path->has_all)
		lerr(ld, p, "required_when depends on one value: '%s' has []", sp->when_path->text);
	free(p);
	if (!!in == !!not_in) {
		lerr(ld, jpath, "required_when takes one of in and not_in");
		return;
	}
	const json_t *list = in ? in : not_in;
	p = jp_key(jpath, in ? "in" : "not_in");
	size_t i;
	const json_t *e;
	bool scalars = json_is_array(list) && json_array_size(list) > 0;
	json_array_foreach (list, i, e) {
		scalars &= json_is_string(e) || json_is_number(e);
	}
	if (!scalars)
		lerr(ld, p, "%s is a non-empty list of texts or numbers, got %s",
		     in ? "in" : "not_in",
		     json_is_array(list) ? (json_array_size(list) ? "a list holding other values"
								  : "an empty list")
					 : type_name(list));
	else {
		sp->when_values = json_deep_copy(list);
		sp->when_not_in = !in;
	}
	free(p);
}

static const char *const spec_keys[] = {"from",	   "constant",	"each",		 "within",
					"fields",  "required",	"required_when", "as_list",
					"default", "transform", "note",		 NULL};

static bool parse_spec(struct load *ld, const char *target, const json_t *v, const char *jpath,
		       int depth, struct spec *sp)
{
	size_t before = ld->n_errors;
	sp->target = xstrdup(target);
	if (!valid_target(target))
		lerr(ld, jpath,
		     "a target field name is 1 to %d bytes without '.', '[', ']' or control "
		     "characters",
		     MAP_MAX_TARGET_BYTES);
	if (!json_is_object(v)) {
		lerr(ld, jpath, "a field is an object like {\"from\": \"PATH\"}, got %s",
		     type_name(v));
		return false;
	}
	check_keys(ld, v, jpath, spec_keys,
		   "a field (expected from, constant, each, within, fields, required, "
		   "required_when, as_list, default, transform, note)");
	const json_t *from = json_object_get(v, "from"), *constant = json_object_get(v, "constant"),
		     *each = json_object_get(v, "each"), *within = json_object_get(v, "within"),
		     *fields = json_object_get(v, "fields"), *req = json_object_get(v, "required"),
		     *def = json_object_get(v, "default"), *xf = json_object_get(v, "transform"),
		     *note = json_object_get(v, "note"),
		     *when = json_object_get(v, "required_when"),
		     *as_list = json_object_get(v, "as_list");
	int sources = !!from + !!constant + !!each + !!within;
	if (sources > 1) {
		lerr(ld, jpath, "from, constant, each and within exclude each other");
		return false;
	}
	if (each || within || (fields && !from && !constant))
		sp->kind = each ? SPEC_EACH : SPEC_OBJECT;
	else if (constant)
		sp->kind = SPEC_CONSTANT;
	else if (from)
		sp->kind = SPEC_FROM;
	else {
		lerr(ld, jpath, "a field needs one of from, constant, each or fields");
		return false;
	}
	if (fields && (from || constant))
		lerr(ld, jpath, "fields goes with each or within, not with %s",
		     from ? "from" : "constant");
	if ((each || within) && !fields) {
		char *p = jp_key(jpath, "fields");
		lerr(ld, p, "missing: %s needs fields", each ? "each" : "within");
		free(p);
	}
	char *p;
	if (from) {
		p = jp_key(jpath, "from");
		parse_path_at(ld, from, p, &sp->path);
		free(p);
	}
	if (each) {
		p = jp_key(jpath, "each");
		parse_path_at(ld, each, p, &sp->path);
		free(p);
	}
	if (within) {
		p = jp_key(jpath, "within");
		if (parse_path_at(ld, within, p, &sp->path) && sp->path->has_all)
			lerr(ld, p, "within picks one object: '%s' has [] (use each for a list)",
			     sp->path->text);
		free(p);
	}
	if (constant)
		sp->constant = json_deep_copy(constant);
	if (req) {
		p = jp_key(jpath, "required");
		if (!json_is_boolean(req))
			lerr(ld, p, "required is true or false, got %s", type_name(req));
		else if (constant)
			lerr(ld, p, "a constant is never missing: required does not apply");
		else
			sp->required = json_is_true(req);
		free(p);
	}
	if (when) {
		p = jp_key(jpath, "required_when");
		if (constant)
			lerr(ld, p, "a constant is never missing: required_when does not apply");
		else if (req)
			lerr(ld, p, "required and required_when exclude each other");
		else if (def)
			lerr(ld, p,
			     "required_when and default exclude each other (with a default the "
			     "field is never missing)");
		else
			parse_when(ld, when, p, sp);
		free(p);
	}
	if (as_list) {
		p = jp_key(jpath, "as_list");
		if (!json_is_boolean(as_list))
			lerr(ld, p, "as_list is true or false, got %s", type_name(as_list));
		else if (sp->kind != SPEC_OBJECT)
			lerr(ld, p,
			     "as_list goes with within or fields (it makes their object a list of "
			     "one)");
		else
			sp->as_list = json_is_true(as_list);
		free(p);
	}
	if (def) {
		p = jp_key(jpath, "default");
		if (json_is_null(def))
			lerr(ld, p, "a default of null means no default: leave it out");
		else if (constant)
			lerr(ld, p, "a constant is never missing: default does not apply");
		else if (sp->required)
			lerr(ld, p,
			     "required and default exclude each other (with a default the "
			     "field is never missing)");
		else if (!when)
			sp->def = json_deep_copy(def);
		free(p);
	}
	if (note && !json_is_string(note)) {
		p = jp_key(jpath, "note");
		lerr(ld, p, "note is text, got %s", type_name(note));
		free(p);
	}
	if (xf) {
		p = jp_key(jpath, "transform");
		if (!from || fields) {
			lerr(ld, p, "transform applies to a value taken with from");
		} else if (!json_is_array(xf)) {
			lerr(ld, p, "transform is a list like [\"trim\", \"nfc\"], got %s",
			     type_name(xf));
		} else if (json_array_size(xf) > MAP_MAX_TRANSFORMS) {
			lerr(ld, p, "more than %d transforms", MAP_MAX_TRANSFORMS);
		} else {
			size_t n = json_array_size(xf);
			sp->xf = xcalloc(n ? n : 1, sizeof(*sp->xf));
			sp->n_xf = n;
			for (size_t i = 0; i < n; i++) {
				char *ep = jp_idx(p, i);
				parse_xform(ld, json_array_get(xf, i), ep, &sp->xf[i]);
				free(ep);
			}
		}
		free(p);
	}
	if (fields) {
		p = jp_key(jpath, "fields");
		if (depth >= MAP_MAX_SPEC_DEPTH)
			lerr(ld, p, "fields nested deeper than %d levels", MAP_MAX_SPEC_DEPTH);
		else if (!from && !constant)
			parse_fields(ld, fields, p, depth + 1, &sp->fields, &sp->n_fields);
		free(p);
	}
	return ld->n_errors == before;
}

static bool parse_fields(struct load *ld, const json_t *obj, const char *jpath, int depth,
			 struct spec **out, size_t *n_out)
{
	size_t before = ld->n_errors;
	if (!json_is_object(obj)) {
		lerr(ld, jpath, "fields is an object (target name -> field), got %s",
		     type_name(obj));
		return false;
	}
	size_t n = json_object_size(obj), i = 0;
	if (!n) {
		lerr(ld, jpath, "no fields");
		return false;
	}
	*out = xcalloc(n, sizeof(**out));
	const char *key;
	json_t *v;
	json_object_foreach ((json_t *)obj, key, v) {
		if (i == n)
			break;
		char *p = jp_key(jpath, key);
		parse_spec(ld, key, v, p, depth, &(*out)[i++]);
		*n_out = i;
		free(p);
	}
	return ld->n_errors == before;
}

static const struct spec *spec_find(const struct spec *f, size_t n, const char *target)
{
	for (size_t i = 0; i < n; i++)
		if (f[i].target && !strcmp(f[i].target, target))
			return &f[i];
	return NULL;
}

/*
 * Checks that a compare path follows the map's structure: names of fields,
 * [] or [N] after an each, names after a within. What lies inside a value
 * taken with from is not known, so anything may follow it. NULL or why.
 */
static char *compare_path_check(const struct map_record *m, const struct path *p)
{
	const struct spec *f = m->fields, *s = NULL;
	const char *in = "the map"; /* what the next name is looked up in */
	size_t n = m->n_fields;
	for (size_t i = 0; i < p->n; i++) {
		const struct step *st = &p->steps[i];
		if (s && (s->kind == SPEC_FROM || s->kind == SPEC_CONSTANT))
			return NULL;
		if (s && (s->kind == SPEC_EACH || s->as_list)) {
			if (st->kind == STEP_KEY)
				return xasprintf("'%s': %s is a list: write %s[] or %s[N]", p->text,
						 s->target, s->target, s->target);
			in = s->target;
			f = s->fields;
			n = s->n_fields;
			s = NULL;
			continue;
		}
		if (st->kind != STEP_KEY)
			return xasprintf("'%s': %s is not a list", p->text,
					 s ? s->target : "the record");
		const struct spec *next = spec_find(f, n, st->key);
		if (!next)
			return xasprintf("'%s': no field '%s' in %s", p->text, st->key, in);
		s = next;
		in = s->target;
		f = s->fields;
		n = s->n_fields;
	}
	return NULL;
}

static const char *const top_keys_record[] = {
	"lienthong_mapping", "name", "description", "kind", "source", "key", "fields",
	"compare",	     "date", NULL};
static const char *const top_keys_codes[] = {
	"lienthong_mapping", "name", "description", "kind", "source", "normalize", "entries", NULL};
static const char *const top_keys_any[] = {
	"lienthong_mapping", "name", "description", "kind",    "source", "key", "fields",
	"compare",	     "date", "normalize",   "entries", NULL};

/*
 * "date": {"from": PATH or [PATH...], "format": FORMAT}: where a record
 * carries its own date, the date code tables are judged at.
 */
static void parse_map_date(struct load *ld, const json_t *d, struct map_record *m)
{
	static const char *const keys[] = {"from", "format", "note", NULL};
	if (!json_is_object(d)) {
		lerr(ld, "date",
		     "date is {\"from\": PATH or [PATH, ...], \"format\": FORMAT}, got %s",
		     type_name(d));
		return;
	}
	check_keys(ld, d, "date", keys, "the map's date (expected from, format, note)");
	const json_t *from = json_object_get(d, "from"), *fmt = json_object_get(d, "format"),
		     *note = json_object_get(d, "note");
	int f = json_is_string(fmt) ? date_fmt_find(json_string_value(fmt)) : -1;
	if (!fmt)
		lerr(ld, "date.format", "missing (a date format: %s)", known_date_fmts);
	else if (f < 0) {
		char *v = describe(fmt);
		lerr(ld, "date.format", "unknown date format %s (known: %s)", v, known_date_fmts);
		free(v);
	} else {
		m->date_fmt = (enum date_fmt)f;
	}
	if (note && !json_is_string(note))
		lerr(ld, "date.note", "note is text, got %s", type_name(note));
	if (!from) {
		lerr(ld, "date.from", "missing: the path of the record's date (or a list of them)");
		return;
	}
	bool list = json_is_array(from);
	size_t n = list ? json_array_size(from) : 1;
	if (list && (n == 0 || n > MAP_MAX_DATE_PATHS)) {
		lerr(ld, "date.from", "from is a path or a list of 1 to %d paths, got %zu",
		     MAP_MAX_DATE_PATHS, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char *p = list ? jp_idx("date.from", i) : xstrdup("date.from");
		struct path *pp = NULL;
		if (parse_path_at(ld, list ? json_array_get(from, i) : from, p, &pp)) {
			if (pp->has_all)
				lerr(ld, p, "a record has one date: '%s' has []", pp->text);
			m->date_paths[m->n_date_paths++] = pp;
		}
		free(p);
	}
}

static struct map_record *parse_record(struct load *ld, const json_t *root)
{
	struct map_record *m = xcalloc(1, sizeof(*m));
	const json_t *fields = json_object_get(root, "fields"), *key = json_object_get(root, "key"),
		     *cmp = json_object_get(root, "compare");
	if (!fields)
		lerr(ld, "fields", "missing: a field map needs fields");
	else
		parse_fields(ld, fields, "fields", 0, &m->fields, &m->n_fields);
	if (json_object_get(root, "date"))
		parse_map_date(ld, json_object_get(root, "date"), m);
	if (key) {
		const struct spec *s = json_is_string(key) ? spec_find(m->fields, m->n_fields,
								       json_string_value(key))
							   : NULL;
		if (!json_is_string(key))
			lerr(ld, "key", "key is the name of a target field, got %s",
			     type_name(key));
		else if (!s && fields)
			lerr(ld, "key", "'%s' is not a field of the map", json_string_value(key));
		else if (s && s->kind != SPEC_FROM && s->kind != SPEC_CONSTANT)
			lerr(ld, "key", "'%s' is not a single value (it has fields)",
			     json_string_value(key));
		else
			m->key = xstrdup(json_string_value(key));
	}
	if (cmp && !json_is_object(cmp)) {
		lerr(ld, "compare", "compare is an object (aspect -> path), got %s",
		     type_name(cmp));
	} else if (cmp) {
		size_t n = json_object_size(cmp);
		m->aspects = xcalloc(n ? n : 1, sizeof(char *));
		m->cmp_paths = xcalloc(n ? n : 1, sizeof(char *));
		const char *aspect;
		json_t *v;
		json_object_foreach ((json_t *)cmp, aspect, v) {
			char *p = jp_key("compare", aspect);
			struct path *pp = NULL;
			if (m->n_cmp < n && !valid_name(aspect)) {
				lerr(ld, p, "an aspect name is [A-Za-z0-9_.-], at most %d bytes",
				     MAP_MAX_NAME_BYTES);
			} else if (m->n_cmp < n && parse_path_at(ld, v, p, &pp)) {
				char *why = fields ? compare_path_check(m, pp) : NULL;
				if (why) {
					lerr(ld, p, "%s", why);
					free(why);
				} else {
					m->aspects[m->n_cmp] = xstrdup(aspect);
					m->cmp_paths[m->n_cmp++] = xstrdup(pp->text);
				}
			}
			path_free(pp);
			free(p);
		}
	}
	return m;
}

/* Validity date: null (open) or "YYYY-MM-DD". */
static bool parse_validity(struct load *ld, const json_t *entry, const char *jpath, const char *key,
			   int64_t open, int64_t *day)
{
	const json_t *v = json_object_get(entry, key);
	*day = open;
	if (!v || json_is_null(v))
		return true;
	char *p = jp_key(jpath, key);
	bool ok = json_is_string(v) && parse_day(json_string_value(v), day) == 0;
	if (!ok) {
		char *d = describe(v);
		lerr(ld, p, "bad date %s (expected YYYY-MM-DD or null)", d);
		free(d);
	}
	free(p);
	return ok;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct table_entry *x = a, *y = b;
	int c = strcmp(x->code, y->code);
	if (c)
		return c;
	if (x->from_day != y->from_day)
		return x->from_day < y->from_day ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

static struct map_table *parse_table(struct load *ld, const json_t *root)
{
	static const char *const entry_keys[] = {"from",     "to",   "ambiguous", "valid_from",
						 "valid_to", "note", NULL};
	struct map_table *t = xcalloc(1, sizeof(*t));
	const json_t *norm = json_object_get(root, "normalize"),
		     *entries = json_object_get(root, "entries");
	if (norm && (!json_is_array(norm) || json_array_size(norm) > MAP_MAX_NORMALIZE)) {
		lerr(ld, "normalize",
		     "normalize is a list of at most %d of trim, nfc, lower, upper",
		     MAP_MAX_NORMALIZE);
	} else if (norm) {
		size_t i;
		json_t *v;
		json_array_foreach (norm, i, v) {
			const struct xf_def *d =
				json_is_string(v) ? xf_find(json_string_value(v)) : NULL;
			if (d && d->text) {
				t->norm[t->n_norm++] = d;
				continue;
			}
			char *p = jp_idx("normalize", i), *dv = describe(v);
			lerr(ld, p, "%s is not a text normalisation (trim, nfc, lower, upper)", dv);
			free(dv);
			free(p);
		}
	}
	if (!entries) {
		lerr(ld, "entries", "missing: a code table needs entries");
		return t;
	}
	if (!json_is_array(entries) || !json_array_size(entries)) {
		lerr(ld, "entries", "entries is a non-empty list of {\"from\", \"to\"}, got %s",
		     json_is_array(entries) ? "an empty list" : type_name(entries));
		return t;
	}
	size_t n = json_array_size(entries), i;
	json_t *e;
	t->e = xcalloc(n, sizeof(*t->e));
	json_array_foreach (entries, i, e) {
		char *p = jp_idx("entries", i);
		struct table_entry te = {.index = i, .line = jsonpos_line(ld->pos, p)};
		size_t before = ld->n_errors;
		if (!json_is_object(e)) {
			lerr(ld, p,
			     "an entry is an object like {\"from\": \"A\", \"to\": \"B\"}, "
			     "got %s",
			     type_name(e));
			free(p);
			continue;
		}
		check_keys(ld, e, p, entry_keys,
			   "an entry (expected from, to, ambiguous, valid_from, valid_to, note)");
		const json_t *from = json_object_get(e, "from"), *to = json_object_get(e, "to"),
			     *amb = json_object_get(e, "ambiguous"),
			     *note = json_object_get(e, "note");
		char *fp = jp_key(p, "from");
		if (!json_is_string(from) || !json_string_length(from) ||
		    json_string_length(from) > MAP_MAX_CODE_BYTES) {
			char *d = describe(from);
			lerr(ld, fp,
			     "from is the code as text (1 to %d bytes; write \"0\", not 0), "
			     "got %s",
			     MAP_MAX_CODE_BYTES, d);
			free(d);
		} else if (!(te.code = normalize_code(t, json_string_value(from))) || !*te.code) {
			lerr(ld, fp, "the code is empty after normalize");
		}
		free(fp);
		if (!to && !amb)
			lerr(ld, p, "an entry needs to (or ambiguous)");
		if (to && amb)
			lerr(ld, p, "to and ambiguous exclude each other");
		if (amb && (!json_is_array(amb) || json_array_size(amb) < 2)) {
			char *ap = jp_key(p, "ambiguous");
			lerr(ld, ap, "ambiguous is a list of the candidate values (at least 2)");
			free(ap);
		}
		if (note && !json_is_string(note)) {
			char *np = jp_key(p, "note");
			lerr(ld, np, "note is text, got %s", type_name(note));
			free(np);
		}
		bool dates = parse_validity(ld, e, p, "valid_from", OPEN_BEGIN, &te.from_day);
		dates &= parse_validity(ld, e, p, "valid_to", OPEN_END, &te.to_day);
		if (dates && te.from_day > te.to_day) {
			char *vp = jp_key(p, "valid_to");
			lerr(ld, vp, "valid_to is before valid_from");
			free(vp);
		}
		if (ld->n_errors == before) {
			te.to = to ? json_deep_copy(to) : NULL;
			te.ambiguous = amb ? json_deep_copy(amb) : NULL;
			t->e[t->n++] = te;
		} else {
			free(te.code);
		}
		free(p);
	}
	qsort(t->e, t->n, sizeof(*t->e), entry_cmp);
	/* Sorted by code and start: an entry overlaps when it starts on or
	 * before the latest end of an earlier entry of its code. */
	const struct table_entry *reach = NULL;
	for (size_t k = 0; k < t->n; k++) {
		const struct table_entry *b = &t->e[k];
		if (!reach || strcmp(reach->code, b->code)) {
			reach = b;
			continue;
		}
		if (reach->to_day >= b->from_day) {
			const struct table_entry *early = reach->index < b->index ? reach : b;
			const struct table_entry *late = reach->index < b->index ? b : reach;
			char *p = jp_idx("entries", late->index), *c = clip(late->code);
			char *va = validity_text(late), *vb = validity_text(early);
			lerr(ld, p,
			     "code '%s' (%s) overlaps entries[%zu] on line %d (%s): validity must "
			     "not overlap",
			     c, va, early->index, early->line, vb);
			free(va);
			free(vb);
			free(c);
			free(p);
		}
		if (b->to_day > reach->to_day)
			reach = b;
	}
	return t;
}

static void add_record(struct map_set *s, struct map_record *m)
{
	s->records = xrealloc(s->records, (s->n_records + 1) * sizeof(*s->records));
	s->records[s->n_records++] = m;
}

static void add_table(struct map_set *s, struct map_table *t)
{
	s->tables = xrealloc(s->tables, (s->n_tables + 1) * sizeof(*s->tables));
	s->tables[s->n_tables++] = t;
}

static const char *name_owner(const struct map_set *s, const char *name)
{
	const struct map_record *m = map_record_find(s, name);
	const struct map_table *t = map_table_find(s, name);
	return m ? m->file : t ? t->file : NULL;
}

static void load_file(struct map_set *set, struct load *ld, const char *path)
{
	char *text = NULL;
	size_t len = 0;
	json_t *root = NULL;
	struct jsonpos *pos = NULL;
	json_error_t jerr;
	size_t pend_start = ld->n_pend;
	ld->file = path;
	ld->pos = NULL;
	ld->n_errors = 0;
	int r = read_file_bounded(path, MAP_MAX_FILE_BYTES, &text, &len);
	if (r) {
		conf_errors_add(ld->errs, "%s: %s", path,
				r == -EFBIG ? "larger than 16 MiB" : strerror(-r));
		goto out;
	}
	if (!(root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr))) {
		conf_errors_add(ld->errs, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
		goto out;
	}
	/* Without an index the messages still name the file, at line 0. */
	jsonpos_index(text, len, &pos);
	ld->pos = pos;
	if (!json_is_object(root)) {
		lerr(ld, "", "a mapping file is one JSON object, got %s", type_name(root));
		goto out;
	}
	const json_t *ver = json_object_get(root, "lienthong_mapping"),
		     *name = json_object_get(root, "name"), *kind = json_object_get(root, "kind"),
		     *desc = json_object_get(root, "description"),
		     *src = json_object_get(root, "source");
	if (!ver)
		lerr(ld, "lienthong_mapping",
		     "missing: every mapping file starts with "
		     "\"lienthong_mapping\": %d",
		     MAP_FORMAT_VERSION);
	else if (!json_is_integer(ver) || json_integer_value(ver) != MAP_FORMAT_VERSION) {
		char *d = describe(ver);
		lerr(ld, "lienthong_mapping",
		     "unsupported format version %s (this lienthong reads %d)", d,
		     MAP_FORMAT_VERSION);
		free(d);
	}
	const char *nm = json_string_value(name);
	if (!name)
		lerr(ld, "name", "missing");
	else if (!nm || !valid_name(nm)) {
		char *d = describe(name);
		lerr(ld, "name", "%s is not a name ([A-Za-z0-9_.-], at most %d bytes)", d,
		     MAP_MAX_NAME_BYTES);
		free(d);
		nm = NULL;
	} else if (name_owner(set, nm)) {
		lerr(ld, "name", "'%s' is already the name of %s", nm, name_owner(set, nm));
	}
	if (desc && !json_is_string(desc))
		lerr(ld, "description", "description is text, got %s", type_name(desc));
	if (src && !json_is_string(src))
		lerr(ld, "source", "source is text, got %s", type_name(src));
	const char *k = json_string_value(kind);
	bool is_record = k && !strcmp(k, "record"), is_codes = k && !strcmp(k, "codes");
	if (!kind)
		lerr(ld, "kind", "missing: \"record\" (a field map) or \"codes\" (a code table)");
	else if (!is_record && !is_codes) {
		char *d = describe(kind);
		lerr(ld, "kind", "%s is not \"record\" or \"codes\"", d);
		free(d);
	}
	if (is_record || is_codes) {
		/* a key of the other kind gets a message saying so */
		const char *key;
		json_t *v;
		json_object_foreach (root, key, v) {
			bool here = false, any = false;
			const char *const *mine = is_record ? top_keys_record : top_keys_codes;
			for (size_t i = 0; mine[i]; i++)
				here |= !strcmp(mine[i], key);
			for (size_t i = 0; top_keys_any[i]; i++)
				any |= !strcmp(top_keys_any[i], key);
			if (here)
				continue;
			char *c = clip(key);
			if (any)
				lerr(ld, key, "'%s' belongs to a %s, not a %s", c,
				     is_record ? "code table" : "field map",
				     is_record ? "field map" : "code table");
			else
				lerr(ld, key, "unknown key '%s' in a %s", c,
				     is_record ? "field map" : "code table");
			free(c);
		}
	} else {
		check_keys(ld, root, "", top_keys_any, "a mapping file");
	}
	if (is_record) {
		struct map_record *m = parse_record(ld, root);
		m->name = xstrdup(nm ? nm : "");
		m->file = xstrdup(path);
		if (ld->n_errors || !nm) {
			/* its lookups are still checked, without a place to resolve to */
			for (size_t i = pend_start; i < ld->n_pend; i++)
				ld->pend[i].xf = NULL;
			record_free(m);
		} else {
			add_record(set, m);
		}
	} else if (is_codes) {
		struct map_table *t = parse_table(ld, root);
		t->name = xstrdup(nm ? nm : "");
		t->file = xstrdup(path);
		if (ld->n_errors || !nm)
			table_free(t);
		else
			add_table(set, t);
	}
	if (ld->n_errors && nm && !name_owner(set, nm)) {
		ld->refused = xrealloc(ld->refused, (ld->n_refused + 1) * sizeof(*ld->refused));
		ld->refused[ld->n_refused++] = xstrdup(nm);
	}
out:
	flush_msgs(ld);
	jsonpos_free(pos);
	ld->pos = NULL;
	json_decref(root);
	free(text);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int map_set_load(const char *dir, struct map_set **out, struct conf_errors *errs)
{
	struct conf_errors local = {0};
	struct load ld = {.errs = errs ? errs : &local};
	struct map_set *set = NULL;
	char **names = NULL;
	size_t n = 0;
	int r = 0;
	*out = NULL;
	size_t errs_before = ld.errs->n;
	DIR *d = dir ? opendir(dir) : NULL;
	if (!d) {
		r = dir ? -errno : -EINVAL;
		conf_errors_add(ld.errs, "%s: cannot open the mappings directory: %s",
				dir ? dir : "(none)", strerror(-r));
		goto out;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		/* dot files are editors' and tools' scratch copies */
		if (de->d_name[0] == '.' || !str_endswith(de->d_name, ".json"))
			continue;
		if (n == MAP_MAX_FILES) {
			conf_errors_add(ld.errs, "%s: more than %d mapping files", dir,
					MAP_MAX_FILES);
			break;
		}
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), name_cmp);
	set = xcalloc(1, sizeof(*set));
	size_t dl = strlen(dir);
	for (size_t i = 0; i < n; i++) {
		char *path = (dl && dir[dl - 1] == '/') ? xasprintf("%s%s", dir, names[i])
							: xasprintf("%s/%s", dir, names[i]);
		load_file(set, &ld, path);
		free(path);
	}
	/* Lookups name tables of any file: resolved once all are loaded. */
	for (size_t i = 0; i < ld.n_pend; i++) {
		struct pending_lookup *pl = &ld.pend[i];
		const struct map_table *t = map_table_find(set, pl->table);
		if (t && pl->xf)
			pl->xf->table = t;
		bool refused = false;
		for (size_t k = 0; k < ld.n_refused; k++)
			refused |= !strcmp(ld.refused[k], pl->table);
		if (t || refused)
			continue;
		conf_errors_add(ld.errs, "%s:%d: %s: %s '%s'", pl->file, pl->line, pl->jpath,
				map_record_find(set, pl->table)
					? "lookup needs a code table, not the field map"
					: "no code table named",
				pl->table);
	}
	if (ld.errs->n != errs_before)
		r = -EINVAL;
out:
	for (size_t i = 0; i < ld.n_pend; i++) {
		free(ld.pend[i].table);
		free(ld.pend[i].file);
		free(ld.pend[i].jpath);
	}
	free(ld.pend);
	for (size_t i = 0; i < ld.n_refused; i++)
		free(ld.refused[i]);
	free(ld.refused);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (r == 0) {
		*out = set;
		set = NULL;
	}
	map_set_free(set);
	conf_errors_free(&local);
	return r;
}

/* ==== applying a field map ============================================= */

struct apply {
	int64_t at_ms;
	int64_t day;
	json_t *problems;  /* owned */
	size_t n_dropped;  /* problems beyond MAP_MAX_PROBLEMS */
	json_t *notes;	   /* owned; NULL when the caller does not want them */
	const char *ptype; /* "type" of the next problems: "data" or "code" */
};

static void problem(struct apply *a, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void problem(struct apply *a, const char *field, const char *fmt, ...)
{
	if (json_array_size(a->problems) >= MAP_MAX_PROBLEMS) {
		a->n_dropped++;
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	char *m = xvasprintf(fmt, ap);
	va_end(ap);
	json_array_append_new(a->problems, json_pack("{s:s, s:s, s:s}", "field", field, "reason", m,
						     "type", a->ptype ? a->ptype : "data"));
	free(m);
}

/*
 * The names of fields and source paths that problems quote are built on the
 * stack for every field mapped, problem or not: no allocation, and a name
 * past MAP_NAME_BYTES is cut (it only ever appears in a message).
 */
#define MAP_NAME_BYTES 512

/* a, sep, b into buf; sep is left out when a is empty. Returns buf. */
static const char *name_join(char *buf, const char *a, const char *sep, const char *b)
{
	const char *parts[3] = {a, *a ? sep : "", b};
	size_t n = 0;
	for (size_t i = 0; i < 3; i++) {
		size_t k = LT_MIN(strlen(parts[i]), MAP_NAME_BYTES - 1 - n);
		memcpy(buf + n, parts[i], k);
		n += k;
	}
	buf[n] = '\0';
	return buf;
}

static const char *name_idx(char *buf, const char *prefix, size_t i)
{
	snprintf(buf, MAP_NAME_BYTES, "%s[%zu]", prefix, i);
	return buf;
}

/* Integer when d is whole and fits, real otherwise: 15 and "15" map alike. */
static json_t *number_value(double d)
{
	if (d == floor(d) && fabs(d) < 9.2e18)
		return json_integer((json_int_t)d);
	return json_real(d);
}

/* [+-]digits, at most 18 digits, surrounding spaces allowed. */
static bool text_int(const char *s, json_int_t *out)
{
	size_t a, b;
	if (utf8_trim_span(s, strlen(s), &a, &b) || a == b)
		return false;
	size_t i = a, digits = 0;
	bool neg = false;
	if (s[i] == '+' || s[i] == '-')
		neg = s[i++] == '-';
	json_int_t v = 0;
	for (; i < b; i++, digits++) {
		if (s[i] < '0' || s[i] > '9' || digits == 18)
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (!digits)
		return false;
	*out = neg ? -v : v;
	return true;
}

/* [+-]digits[(.|,)digits], the comma being a decimal separator ("0,5"). */
static json_t *text_number(const char *s)
{
	char buf[80];
	size_t a, b, n = 0, int_digits = 0, frac_digits = 0;
	bool frac_zero = true, in_frac = false;
	if (utf8_trim_span(s, strlen(s), &a, &b) || a == b || b - a >= sizeof(buf))
		return NULL;
	for (size_t i = a; i < b; i++) {
		char c = s[i];
		if ((c == '+' || c == '-') && i == a) {
			buf[n++] = c;
		} else if ((c == '.' || c == ',') && !in_frac && int_digits) {
			in_frac = true;
			buf[n++] = '.';
		} else if (c >= '0' && c <= '9') {
			buf[n++] = c;
			if (in_frac) {
				frac_digits++;
				frac_zero &= c == '0';
			} else {
				int_digits++;
			}
		} else {
			return NULL;
		}
	}
	if (!int_digits || (in_frac && !frac_digits) || int_digits > 30 || frac_digits > 30)
		return NULL;
	buf[n] = '\0';
	if (frac_zero && int_digits <= 18) {
		json_int_t v;
		char *dot = strchr(buf, '.');
		if (dot)
			*dot = '\0';
		if (text_int(buf, &v))
			return json_integer(v);
	}
	double d = strtod(buf, NULL);
	return isfinite(d) ? json_real(d) : NULL;
}

/* A value as code text for a lookup: text as is, an integer in decimal. */
static char *code_text(const json_t *v)
{
	if (json_is_string(v))
		return xstrdup(json_string_value(v));
	if (json_is_integer(v))
		return xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
	return NULL;
}

static json_t *do_lookup(struct apply *a, const struct xform *x, const json_t *v, const char *field)
{
	char day[16];
	const struct map_table *t = x->table;
	char *code = code_text(v), *norm = NULL, *d = describe(v);
	json_t *r = NULL;
	const struct table_entry *hit;
	size_t first, end;
	if (!code) {
		problem(a, field, "expected a code, got %s", type_name(v));
		goto out;
	}
	if (!t) { /* unreachable in a loaded set: lookups are resolved at load */
		problem(a, field, "no code table '%s'", x->table_name);
		goto out;
	}
	if (!(norm = normalize_code(t, code))) {
		problem(a, field, "%s is not valid UTF-8", d);
		goto out;
	}
	fmt_day(a->day, day, sizeof(day));
	/* Well-formed data the code lists do not cover (a retired agency, a
	 * new unit): the mapping data needs a fix, not the record. */
	a->ptype = "code";
	switch (table_find(t, norm, a->day, &hit, &first, &end)) {
	case FOUND: r = hit->to ? json_deep_copy(hit->to) : json_null(); break;
	case UNKNOWN:
		problem(a, field, "unknown code %s in table %s (valid at %s)", d, t->name, day);
		break;
	case NOT_VALID: {
		struct dynbuf b;
		dynbuf_init(&b, 1024);
		for (size_t i = first; i < end; i++) {
			char *vt = validity_text(&t->e[i]);
			dynbuf_printf(&b, "%s%s", i > first ? ", " : "", vt);
			free(vt);
		}
		problem(a, field, "unknown code %s in table %s (valid at %s; the code is valid %s)",
			d, t->name, day, b.data ? b.data : "");
		dynbuf_free(&b);
		break;
	}
	case AMBIGUOUS: {
		char *cands = json_dumps(hit->ambiguous, JSON_COMPACT | JSON_ENCODE_ANY);
		problem(a, field, "code %s in table %s has no single value at %s: one of %s", d,
			t->name, day, cands ? cands : "several");
		free(cands);
		break;
	}
	}
	a->ptype = "data";
out:
	free(code);
	free(norm);
	free(d);
	return r;
}

/* The result of a text transform (t taken), or a problem when t is NULL. */
static json_t *text_result(struct apply *a, const json_t *v, char *t, const char *field)
{
	if (!t) {
		char *d = describe(v);
		problem(a, field, "%s is not valid UTF-8", d);
		free(d);
		return NULL;
	}
	json_t *r = json_string(t);
	free(t);
	return r;
}

/*
 * The kind of a citizen id: 1 for a 12-digit CCCD, 2 for a 9-digit CMND
 * (LoaiDinhDanh). The problem describes the text without quoting it: an id
 * number is personal data, and problems end up in logs.
 */
static json_t *id_type(struct apply *a, const char *s, const char *field)
{
	size_t n = strlen(s), digits = strspn(s, "0123456789");
	if (digits == n && n == 12)
		return json_integer(1);
	if (digits == n && n == 9)
		return json_integer(2);
	if (!n)
		problem(a, field,
			"an empty citizen id is not a CCCD (12 digits) or CMND (9 digits)");
	else if (digits == n)
		problem(a, field,
			"a citizen id of %zu digit%s is not a CCCD (12 digits) or CMND "
			"(9 digits)",
			n, n == 1 ? "" : "s");
	else
		problem(a, field,
			"a citizen id with characters other than digits is not a CCCD "
			"(12 digits) or CMND (9 digits)");
	return NULL;
}

/* One element-wise transform of one value. NULL (with a problem) on failure. */
static json_t *xform_one(struct apply *a, const struct xform *x, const json_t *v, const char *field)
{
	const char *s = json_string_value(v);
	char *d = NULL, *t = NULL;
	json_t *r = NULL;
	enum xf_kind k = x->def->kind;
	bool wants_text = k == XF_TRIM || k == XF_NFC || k == XF_LOWER || k == XF_UPPER ||
			  k == XF_SPLIT_CODE || k == XF_TRUNCATE || k == XF_ID_TYPE;
	if (wants_text && !s) {
		problem(a, field, "expected text, got %s (%s)", type_name(v), x->def->name);
		return NULL;
	}
	switch (k) {
	case XF_TRIM: {
		size_t len = strlen(s), b, e;
		if (utf8_trim_span(s, len, &b, &e) < 0)
			return text_result(a, v, NULL, field);
		/* most values have nothing to trim: the value itself, no copy */
		return b == 0 && e == len ? json_incref((json_t *)v) : json_stringn(s + b, e - b);
	}
	case XF_NFC:
		if (nfc_same(s) > 0)
			return json_incref((json_t *)v);
		return text_result(a, v, map_nfc(s), field);
	case XF_LOWER: return text_result(a, v, utf8_case(s, false), field);
	case XF_UPPER: return text_result(a, v, utf8_case(s, true), field);
	case XF_INT: {
		json_int_t n;
		if (json_is_integer(v))
			return json_incref((json_t *)v);
		if (json_is_real(v)) {
			double f = json_real_value(v);
			if (f == floor(f) && fabs(f) < 9.2e18)
				return json_integer((json_int_t)f);
		} else if (s && text_int(s, &n)) {
			return json_integer(n);
		}
		if (s || json_is_real(v)) {
			d = describe(v);
			problem(a, field, "%s is not an integer", d);
		} else {
			problem(a, field, "expected an integer, got %s", type_name(v));
		}
		break;
	}
	case XF_NUMBER:
		if (json_is_integer(v)) /* exact, even beyond 2^53 */
			return json_incref((json_t *)v);
		if (json_is_real(v))
			return number_value(json_number_value(v));
		if (s && (r = text_number(s)))
			return r;
		if (s) {
			d = describe(v);
			problem(a, field, "%s is not a number", d);
		} else {
			problem(a, field, "expected a number, got %s", type_name(v));
		}
		break;
	case XF_MONEY: {
		int64_t vnd;
		if (json_is_number(v)) {
			double f = json_number_value(v);
			if (f >= 0 && f == floor(f) && f <= (double)MAP_MAX_VND)
				return json_integer((json_int_t)f);
		} else if (s && map_money(s, &vnd) == 0) {
			return json_integer(vnd);
		}
		if (s || json_is_number(v)) {
			d = describe(v);
			problem(a, field, "%s is not an amount", d);
		} else {
			problem(a, field, "expected an amount, got %s", type_name(v));
		}
		break;
	}
	case XF_STRING: {
		char num[64];
		if (s)
			return json_incref((json_t *)v);
		if (json_is_integer(v)) {
			snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
			return json_string(num);
		}
		if (json_is_real(v)) {
			fmt_real(json_real_value(v), num, sizeof(num));
			return json_string(num);
		}
		problem(a, field, "expected text or a number, got %s", type_name(v));
		break;
	}
	case XF_SPLIT_CODE: {
		const char *p = s;
		for (int64_t part = 0; part < x->n; part++) {
			const char *dot = strchr(p, '.');
			size_t plen = dot ? (size_t)(dot - p) : strlen(p);
			if (!plen || (!dot && part + 1 < x->n)) {
				d = describe(v);
				problem(a, field,
					"%s does not have %" PRId64 " dot-separated parts", d,
					x->n);
				goto out;
			}
			p += plen;
			if (part + 1 < x->n)
				p++;
		}
		return json_stringn(s, (size_t)(p - s));
	}
	case XF_TRUNCATE: {
		size_t len = strlen(s), count = utf8_count(s, len);
		if (count <= (size_t)x->n)
			return json_incref((json_t *)v);
		size_t cut = utf8_cut(s, len, (size_t)x->n);
		if (a->notes) {
			t = xasprintf("truncated to %zu of %zu characters", utf8_count(s, cut),
				      count);
			json_array_append_new(a->notes,
					      json_pack("{s:s, s:s}", "field", field, "note", t));
		}
		r = json_stringn(s, cut);
		break;
	}
	case XF_LOOKUP: return do_lookup(a, x, v, field);
	case XF_ID_TYPE: return id_type(a, s, field);
	case XF_DATE: {
		int64_t ms;
		if (parse_date(v, x->date_from, &ms)) {
			d = describe(v);
			problem(a, field, "%s is not a date in format %s", d,
				date_fmt_names[x->date_from]);
			break;
		}
		if (!(r = format_date(ms, x->date_to))) {
			d = describe(v);
			problem(a, field, "%s cannot be written in format %s", d,
				date_fmt_names[x->date_to]);
		}
		break;
	}
	default: problem(a, field, "transform %s does not apply to one value", x->def->name);
	}
out:
	free(d);
	free(t);
	return r;
}

struct sort_key {
	int rank; /* null, false, true, number, text, list, object */
	double num;
	const char *str;
	char *canon; /* owned; lists and objects, and for unique */
	size_t idx;
	json_t *v;
};

static int type_rank(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_NULL: return 0;
	case JSON_FALSE: return 1;
	case JSON_TRUE: return 2;
	case JSON_INTEGER:
	case JSON_REAL: return 3;
	case JSON_STRING: return 4;
	case JSON_ARRAY: return 5;
	default: return 6;
	}
}

static int sort_key_cmp(const void *pa, const void *pb)
{
	const struct sort_key *a = pa, *b = pb;
	int c = 0;
	if (a->rank != b->rank)
		c = a->rank < b->rank ? -1 : 1;
	else if (a->rank == 3 && a->num != b->num)
		c = a->num < b->num ? -1 : 1;
	else if (a->rank == 4)
		c = strcmp(a->str, b->str);
	else if (a->rank >= 5)
		c = strcmp(a->canon ? a->canon : "", b->canon ? b->canon : "");
	return c ? c : (a->idx < b->idx ? -1 : a->idx > b->idx);
}

static int canon_idx_cmp(const void *pa, const void *pb)
{
	const struct sort_key *a = pa, *b = pb;
	int c = strcmp(a->canon ? a->canon : "", b->canon ? b->canon : "");
	return c ? c : (a->idx < b->idx ? -1 : a->idx > b->idx);
}

/* unique (first occurrence kept, order kept) or sort (stable) of list v. */
static json_t *list_op(json_t *v, enum xf_kind k)
{
	size_t n = json_array_size(v), i;
	json_t *e, *r = json_array();
	struct sort_key *keys = xcalloc(n ? n : 1, sizeof(*keys));
	json_array_foreach (v, i, e) {
		keys[i] = (struct sort_key){.rank = type_rank(e), .idx = i, .v = e};
		if (json_is_number(e))
			keys[i].num = json_number_value(e);
		keys[i].str = json_string_value(e);
		if (k == XF_UNIQUE || keys[i].rank >= 5)
			keys[i].canon = map_canonical(e);
	}
	if (k == XF_SORT) {
		qsort(keys, n, sizeof(*keys), sort_key_cmp);
		for (i = 0; i < n; i++)
			json_array_append(r, keys[i].v);
	} else {
		/* equal canonical texts are equal values; keep the first of each */
		bool *dup = xcalloc(n ? n : 1, sizeof(*dup));
		qsort(keys, n, sizeof(*keys), canon_idx_cmp);
		for (i = 1; i < n; i++)
			if (keys[i].canon && keys[i - 1].canon &&
			    !strcmp(keys[i].canon, keys[i - 1].canon))
				dup[keys[i].idx] = true;
		json_array_foreach (v, i, e) {
			if (!dup[i])
				json_array_append(r, e);
		}
		free(dup);
	}
	for (i = 0; i < n; i++)
		free(keys[i].canon);
	free(keys);
	return r;
}

/*
 * Runs a field's transforms over v (a reference the function takes). A list
 * goes element by element, except through unique, sort and first. Returns
 * the result (NULL: absent, as after first of an empty list); *failed when
 * a problem was reported.
 */
static json_t *apply_xforms(struct apply *a, const struct spec *sp, json_t *v, const char *field,
			    bool *failed)
{
	for (size_t i = 0; v && i < sp->n_xf; i++) {
		const struct xform *x = &sp->xf[i];
		json_t *r;
		if (x->def->on_list) {
			if (!json_is_array(v))
				continue; /* one value is its own unique, sorted, first self */
			if (x->def->kind == XF_FIRST)
				r = json_array_size(v) ? json_incref(json_array_get(v, 0)) : NULL;
			else
				r = list_op(v, x->def->kind);
		} else if (json_is_array(v)) {
			size_t k;
			json_t *e;
			r = json_array();
			json_array_foreach (v, k, e) {
				char f[MAP_NAME_BYTES];
				name_idx(f, field, k);
				json_t *o = json_is_array(e) ? NULL : xform_one(a, x, e, f);
				if (json_is_array(e))
					problem(a, f, "expected one value, got a list (%s)",
						x->def->name);
				if (o)
					json_array_append_new(r, o);
				else
					*failed = true;
			}
		} else {
			r = xform_one(a, x, v, field);
			if (!r)
				*failed = true;
		}
		json_decref(v);
		v = r;
		if (*failed)
			break;
	}
	if (*failed) {
		json_decref(v);
		return NULL;
	}
	return v;
}

static json_t *apply_fields(struct apply *a, const struct spec *f, size_t n, const json_t *ctx,
			    const char *prefix, const char *src);

/*
 * Whether a field is required for this record: "required", or the
 * condition of "required_when" on the value at its path in ctx. *why gets
 * the reason of a condition met (caller frees), for the problem.
 */
static bool is_required(const struct spec *sp, const json_t *ctx, char **why)
{
	*why = NULL;
	if (!sp->when_values)
		return sp->required;
	json_t *v = path_get(ctx, sp->when_path);
	bool in = false;
	size_t i;
	const json_t *e;
	json_array_foreach (sp->when_values, i, e) {
		in |= v && json_equal(v, (json_t *)e);
	}
	bool req = in != sp->when_not_in;
	if (req) {
		char *d = v && !json_is_null(v) ? describe(v) : xstrdup("absent");
		*why = xasprintf(" (required as %s is %s)", sp->when_path->text, d);
		free(d);
	}
	json_decref(v);
	return req;
}

/* "missing" handling: the default, a problem when required, else nothing. */
static json_t *absent(struct apply *a, const struct spec *sp, bool req, const char *why,
		      const char *field, const char *src)
{
	if (sp->def)
		return json_deep_copy(sp->def);
	if (req)
		problem(a, field, "missing: no value at %s%s", src, why ? why : "");
	return NULL;
}

static const char *src_path(char *buf, const char *src, const struct path *p)
{
	if (!p)
		return name_join(buf, "", "", *src ? src : "(record)");
	return name_join(buf, src, p->text[0] == '[' ? "" : ".", p->text);
}

/* The value of one target field (new ref), or NULL when it is left out. */
static json_t *apply_spec(struct apply *a, const struct spec *sp, const json_t *ctx,
			  const char *field, const char *src)
{
	json_t *v = NULL, *r = NULL;
	char from_buf[MAP_NAME_BYTES], *why = NULL;
	const char *from = src_path(from_buf, src, sp->kind == SPEC_CONSTANT ? NULL : sp->path);
	bool failed = false, req = is_required(sp, ctx, &why);
	switch (sp->kind) {
	case SPEC_CONSTANT: r = json_deep_copy(sp->constant); break;
	case SPEC_FROM:
		v = path_get(ctx, sp->path);
		if (v && !json_is_null(v) &&
		    !(req && json_is_array(v) && sp->path->has_all && !json_array_size(v))) {
			r = apply_xforms(a, sp, v, field, &failed);
			v = NULL;
			if (failed)
				break;
		}
		if (!r || json_is_null(r)) {
			json_decref(r);
			r = absent(a, sp, req, why, field, from);
		}
		break;
	case SPEC_EACH:
		v = path_get(ctx, sp->path);
		if (!v || json_is_null(v) || (req && json_is_array(v) && !json_array_size(v))) {
			r = absent(a, sp, req, why, field, from);
		} else if (!json_is_array(v)) {
			problem(a, field, "expected a list at %s, got %s", from, type_name(v));
		} else {
			size_t i;
			json_t *e;
			r = json_array();
			json_array_foreach (v, i, e) {
				char f[MAP_NAME_BYTES], s[MAP_NAME_BYTES];
				name_idx(f, field, i);
				name_idx(s, from, i);
				if (json_is_object(e))
					json_array_append_new(
						r,
						apply_fields(a, sp->fields, sp->n_fields, e, f, s));
				else
					problem(a, f, "expected an object at %s, got %s", s,
						type_name(e));
			}
		}
		break;
	case SPEC_OBJECT:
		v = sp->path ? path_get(ctx, sp->path) : json_incref((json_t *)ctx);
		if (!v || json_is_null(v)) {
			r = absent(a, sp, req, why, field, from);
		} else if (!json_is_object(v)) {
			problem(a, field, "expected an object at %s, got %s", from, type_name(v));
		} else if (!sp->as_list) {
			r = apply_fields(a, sp->fields, sp->n_fields, v, field,
					 sp->path ? from : src);
		} else {
			/* a list of one: problems name its element, as for each */
			char f[MAP_NAME_BYTES];
			json_t *o = apply_fields(a, sp->fields, sp->n_fields, v,
						 name_idx(f, field, 0), sp->path ? from : src);
			if (json_object_size(o))
				r = json_pack("[o]", o);
			else {
				char *none = xasprintf("%s (none of its fields)", from);
				json_decref(o);
				r = absent(a, sp, req, why, field, none);
				free(none);
			}
		}
		break;
	}
	json_decref(v);
	free(why);
	return r;
}

static json_t *apply_fields(struct apply *a, const struct spec *f, size_t n, const json_t *ctx,
			    const char *prefix, const char *src)
{
	json_t *o = json_object();
	for (size_t i = 0; i < n; i++) {
		char field[MAP_NAME_BYTES];
		json_t *v =
			apply_spec(a, &f[i], ctx, name_join(field, prefix, ".", f[i].target), src);
		if (v)
			json_object_set_new(o, f[i].target, v);
	}
	return o;
}

/*
 * The map's "date": the first of its paths with a value in src gives the
 * date code tables are judged at, instead of the caller's. A value that is
 * not a date is a problem (the record is bad), not a silent fallback.
 */
static void record_date(struct apply *a, const struct map_record *m, const json_t *src)
{
	for (size_t i = 0; i < m->n_date_paths; i++) {
		json_t *v = path_get(src, m->date_paths[i]);
		int64_t ms;
		if (!v || json_is_null(v)) {
			json_decref(v);
			continue;
		}
		if (parse_date(v, m->date_fmt, &ms) == 0) {
			a->at_ms = ms;
		} else {
			char *d = describe(v);
			problem(a, "(date)", "%s at %s is not a date in format %s", d,
				m->date_paths[i]->text, date_fmt_names[m->date_fmt]);
			free(d);
		}
		json_decref(v);
		return;
	}
}

int map_apply_notes(const struct map_record *m, const json_t *src, int64_t at_ms, json_t **out,
		    json_t **problems, json_t **notes)
{
	struct apply a = {.at_ms = at_or_now(at_ms), .problems = json_array()};
	json_t *r = NULL;
	*out = NULL;
	if (problems)
		*problems = NULL;
	if (notes)
		*notes = NULL;
	if (!m) {
		json_decref(a.problems);
		return -EINVAL;
	}
	a.day = vn_day(a.at_ms);
	a.notes = notes ? json_array() : NULL;
	if (!json_is_object(src)) {
		problem(&a, "(record)", "expected an object, got %s",
			src ? type_name(src) : "nothing");
	} else {
		record_date(&a, m, src);
		a.day = vn_day(a.at_ms);
		r = apply_fields(&a, m->fields, m->n_fields, src, "", "");
	}
	if (a.n_dropped) {
		char *more = xasprintf("%zu more problems not listed", a.n_dropped);
		json_array_append_new(a.problems,
				      json_pack("{s:s, s:s}", "field", "(record)", "reason", more));
		free(more);
	}
	if (notes)
		*notes = a.notes;
	if (json_array_size(a.problems)) {
		json_decref(r);
		if (problems)
			*problems = a.problems;
		else
			json_decref(a.problems);
		return 1;
	}
	json_decref(a.problems);
	*out = r;
	return 0;
}

int map_apply(const struct map_record *m, const json_t *src, int64_t at_ms, json_t **out,
	      json_t **problems)
{
	return map_apply_notes(m, src, at_ms, out, problems, NULL);
}
