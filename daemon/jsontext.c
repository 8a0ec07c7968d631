/*
 * jsontext: JSON text to jansson trees and back, without jansson's stream.
 *
 * json_loadb() pulls every byte through a callback, re-validates UTF-8 one
 * character at a time and copies each token into a strbuffer before
 * converting it; json_dumps() pushes every token through a callback into a
 * strbuffer. Here the parser walks the text in place: strings are scanned
 * eight bytes at a time until a quote, backslash, control or non-ASCII byte
 * shows up, a string without escapes goes to json_stringn_nocheck() straight
 * from the text (it was validated on the way), numbers are converted by hand
 * with strtod only for the hard reals, and an explicit stack replaces
 * recursion. The dumper stages its output in a small buffer flushed into
 * the caller's dynbuf and copies plain runs of strings whole.
 *
 * Acceptance is jansson 2.14's (load.c, utf.c, strconv.c): whitespace is
 * space, tab, LF and CR; every value, scalars included, counts one level
 * against JSON_PARSER_MAX_DEPTH; integers must fit json_int_t; a real that
 * overflows is refused, one that underflows is kept; \u escapes must pair
 * surrogates and may not make a NUL; the UTF-8 rules refuse overlongs,
 * surrogates and code points past U+10FFFF; and, a quirk of its one-byte
 * push-back, a NUL right after a number or a literal is skipped.
 * tests/unit/test_jsontext.c holds the two side by side.
 */
#include "jsontext.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#if defined(JSON_PARSER_MAX_DEPTH) && JSONTEXT_MAX_DEPTH != JSON_PARSER_MAX_DEPTH
#error "JSONTEXT_MAX_DEPTH must follow jansson's JSON_PARSER_MAX_DEPTH"
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define JSONTEXT_SWAR 1
#else
#define JSONTEXT_SWAR 0
#endif

/* ---- shared byte classes ---------------------------------------------- */

/* Every byte of a 64-bit word set to c. */
#define BYTES(c) (0x0101010101010101ULL * (uint64_t)(uint8_t)(c))

/*
 * Nonzero when one of the 8 bytes in x (loaded little-endian) is a byte a
 * string scan must stop at: '"', '\\', a control, or a byte with the high
 * bit (UTF-8 to check). Borrows only run towards higher bytes, so the lowest
 * set bit always marks the first such byte.
 */
static inline uint64_t str_stops(uint64_t x)
{
	uint64_t q = x ^ BYTES('"');
	uint64_t s = x ^ BYTES('\\');
	uint64_t m = ((q - BYTES(1)) & ~q) | ((s - BYTES(1)) & ~s) | ((x - BYTES(0x20)) & ~x) | x;
	return m & BYTES(0x80);
}

/* The same test for one byte. */
static inline bool str_stop(unsigned c)
{
	return c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
}

/* Returns the first byte in [p, end) that str_stops() flags, or end. */
static inline const unsigned char *str_skip_plain(const unsigned char *p, const unsigned char *end)
{
#if JSONTEXT_SWAR
	while (end - p >= 8) {
		uint64_t x;
		memcpy(&x, p, 8);
		uint64_t m = str_stops(x);
		if (m)
			return p + (__builtin_ctzll(m) >> 3);
		p += 8;
	}
#endif
	while (p < end && !str_stop(*p))
		p++;
	return p;
}

/*
 * Length of the UTF-8 sequence starting at p (lead byte >= 0x80) when it is
 * one jansson's utf8_check_full() accepts: no overlong form, no surrogate,
 * nothing past U+10FFFF, complete before end. 0 otherwise.
 */
static inline size_t utf8_seq_len(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0];
	size_t avail = (size_t)(end - p);
	unsigned lo = 0x80, hi = 0xbf;

	if (c < 0xc2)
		return 0;
	if (c < 0xe0)
		return avail >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c < 0xf0) {
		if (avail < 3)
			return 0;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
		return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 ? 3 : 0;
	}
	if (c < 0xf5) {
		if (avail < 4)
			return 0;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
		return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 && (p[3] & 0xc0) == 0x80
			       ? 4
			       : 0;
	}
	return 0;
}

/* ---- parser ------------------------------------------------------------ */

/* A growable buffer for strings that need decoding (escapes). */
struct scratch {
	char *data; /* owned */
	size_t len;
	size_t cap;
};

struct parser {
	const unsigned char *start; /* borrowed: the text */
	const unsigned char *end;
	json_error_t *err;  /* borrowed, may be NULL */
	struct scratch val; /* decoded string values */
	struct scratch key; /* decoded keys: a key waits there while its scalar value is read */
};

static void scratch_add(struct scratch *s, const void *p, size_t n)
{
	if (!n)
		return;
	if (n > s->cap - s->len) {
		size_t cap = s->cap ? s->cap : 256;
		while (cap - s->len < n)
			cap *= 2;
		s->data = xrealloc(s->data, cap);
		s->cap = cap;
	}
	memcpy(s->data + s->len, p, n);
	s->len += n;
}

static void error_init(json_error_t *err)
{
	if (!err)
		return;
	memset(err, 0, sizeof(*err));
	err->line = -1;
	err->column = -1;
	memcpy(err->source, "<text>", sizeof("<text>"));
}

static int clamp_int(size_t v)
{
	return v > INT_MAX ? INT_MAX : (int)v;
}

/*
 * Records an error at the byte at (end for a premature end): its line, its
 * column in characters and the count of bytes read through it.
 */
__attribute__((format(printf, 4, 5))) static void
fail(struct parser *ps, const unsigned char *at, enum json_error_code code, const char *fmt, ...)
{
	json_error_t *e = ps->err;
	const unsigned char *q, *line_start = ps->start;
	size_t line = 1, column = 0;
	const unsigned char *through;
	va_list ap;

	if (!e)
		return;
	through = at < ps->end ? at + 1 : ps->end;
	for (q = ps->start; q < at; q++) {
		if (*q == '\n') {
			line++;
			line_start = q + 1;
		}
	}
	for (q = line_start; q < through; q++) {
		if ((*q & 0xc0) != 0x80)
			column++;
	}
	e->line = clamp_int(line);
	e->column = clamp_int(column);
	e->position = clamp_int((size_t)(through - ps->start));
	va_start(ap, fmt);
	vsnprintf(e->text, JSON_ERROR_TEXT_LENGTH - 1, fmt, ap);
	va_end(ap);
	e->text[JSON_ERROR_TEXT_LENGTH - 2] = '\0';
	e->text[JSON_ERROR_TEXT_LENGTH - 1] = (char)code;
}

/* "unexpected X, expected <wanted>" for the byte at p (or the end). */
static void fail_unexpected(struct parser *ps, const unsigned char *p, const char *wanted)
{
	if (p >= ps->end)
		fail(ps, ps->end, json_error_premature_end_of_input, "end of input, expected %s",
		     wanted);
	else if (p == ps->start && ps->end - p >= 3 && !memcmp(p, "\xef\xbb\xbf", 3))
		fail(ps, p, json_error_invalid_syntax, "a byte order mark is not allowed");
	else if (*p > 0x20 && *p < 0x7f)
		fail(ps, p, json_error_invalid_syntax, "unexpected '%c', expected %s", *p, wanted);
	else
		fail(ps, p, json_error_invalid_syntax, "unexpected byte 0x%02x, expected %s", *p,
		     wanted);
}

static inline const unsigned char *skip_ws(const unsigned char *p, const unsigned char *end)
{
	while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	return p;
}

static int hex_value(unsigned c)
{
	if (c >= '0' && c <= '9')
		return (int)(c - '0');
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return (int)(c - 'a' + 10);
	return -1;
}

/* The code unit of the \uXXXX escape whose 'u' is at u; -1 after an error. */
static long hex4(struct parser *ps, const unsigned char *u)
{
	long v = 0;
	for (int i = 1; i <= 4; i++) {
		if (ps->end - u <= i) {
			fail(ps, ps->end, json_error_premature_end_of_input,
			     "end of input in a string");
			return -1;
		}
		int h = hex_value(u[i]);
		if (h < 0) {
			fail(ps, u + i, json_error_invalid_syntax,
			     "invalid \\u escape in a string");
			return -1;
		}
		v = (v << 4) | h;
	}
	return v;
}

static size_t utf8_encode(unsigned long cp, char *b)
{
	if (cp < 0x80) {
		b[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		b[0] = (char)(0xc0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		b[0] = (char)(0xe0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	b[0] = (char)(0xf0 | (cp >> 18));
	b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	b[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * Decodes the escape whose backslash is at p into sc. Returns the byte after
 * it, NULL after an error.
 */
static const unsigned char *decode_escape(struct parser *ps, const unsigned char *p,
					  struct scratch *sc, bool is_key)
{
	char c, utf8[4];
	long cp, lo;
	const unsigned char *q;

	if (ps->end - p < 2) {
		fail(ps, ps->end, json_error_premature_end_of_input, "end of input in a string");
		return NULL;
	}
	switch (p[1]) {
	case '"': c = '"'; break;
	case '\\': c = '\\'; break;
	case '/': c = '/'; break;
	case 'b': c = '\b'; break;
	case 'f': c = '\f'; break;
	case 'n': c = '\n'; break;
	case 'r': c = '\r'; break;
	case 't': c = '\t'; break;
	case 'u':
		cp = hex4(ps, p + 1);
		if (cp < 0)
			return NULL;
		q = p + 6;
		if (cp >= 0xd800 && cp <= 0xdbff) {
			if (ps->end - q < 2 || q[0] != '\\' || q[1] != 'u') {
				fail(ps, p + 1, json_error_invalid_syntax,
				     "unpaired surrogate \\u%04lX in a string", cp);
				return NULL;
			}
			lo = hex4(ps, q + 1);
			if (lo < 0)
				return NULL;
			if (lo < 0xdc00 || lo > 0xdfff) {
				fail(ps, q + 1, json_error_invalid_syntax,
				     "unpaired surrogate \\u%04lX in a string", cp);
				return NULL;
			}
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			q += 6;
		} else if (cp >= 0xdc00 && cp <= 0xdfff) {
			fail(ps, p + 1, json_error_invalid_syntax,
			     "unpaired surrogate \\u%04lX in a string", cp);
			return NULL;
		} else if (cp == 0) {
			if (is_key)
				fail(ps, p + 1, json_error_null_byte_in_key,
				     "\\u0000 is not allowed in an object key");
			else
				fail(ps, p + 1, json_error_null_character,
				     "\\u0000 is not allowed");
			return NULL;
		}
		scratch_add(sc, utf8, utf8_encode((unsigned long)cp, utf8));
		return q;
	default:
		fail(ps, p + 1, json_error_invalid_syntax, "invalid escape in a string");
		return NULL;
	}
	scratch_add(sc, &c, 1);
	return p + 2;
}

/*
 * Scans the string whose opening quote is at p. Returns the byte after its
 * closing quote, with *out and *out_len its decoded bytes: in the text itself
 * when it has no escape, else in sc. NULL after an error.
 */
static const unsigned char *scan_string(struct parser *ps, const unsigned char *p,
					struct scratch *sc, bool is_key, const char **out,
					size_t *out_len)
{
	const unsigned char *end = ps->end, *run;
	bool decoded = false;

	run = ++p;
	for (;;) {
		p = str_skip_plain(p, end);
		if (p == end) {
			fail(ps, end, json_error_premature_end_of_input,
			     "end of input in a string");
			return NULL;
		}
		if (*p == '"')
			break;
		if (*p >= 0x80) {
			size_t n = utf8_seq_len(p, end);
			if (!n) {
				fail(ps, p, json_error_invalid_utf8, "invalid UTF-8 in a string");
				return NULL;
			}
			p += n;
			continue;
		}
		if (*p != '\\') {
			fail(ps, p, json_error_invalid_syntax,
			     "control character 0x%02x in a string", *p);
			return NULL;
		}
		if (!decoded) {
			sc->len = 0;
			decoded = true;
		}
		scratch_add(sc, run, (size_t)(p - run));
		p = decode_escape(ps, p, sc, is_key);
		if (!p)
			return NULL;
		run = p;
	}
	if (decoded) {
		scratch_add(sc, run, (size_t)(p - run));
		*out = sc->data;
		*out_len = sc->len;
	} else {
		*out = (const char *)run;
		*out_len = (size_t)(p - run);
	}
	return p + 1;
}

static inline bool is_digit(unsigned c)
{
	return c - '0' < 10;
}

/* The C locale for strtod_l(), made once (the daemon's locale is not ours to assume). */
static locale_t c_numeric_locale(void)
{
	static _Atomic(locale_t) cached;
	locale_t loc = atomic_load(&cached), expected = (locale_t)0;

	if (loc)
		return loc;
	loc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	if (!loc)
		return (locale_t)0;
	if (!atomic_compare_exchange_strong(&cached, &expected, loc)) {
		freelocale(loc);
		loc = expected;
	}
	return loc;
}

/*
 * The double of the real literal [s, e) (already checked against the
 * grammar), as strtod() rounds it. Returns 0, or -ERANGE when it overflows
 * (jansson refuses that; an underflow is kept, as there).
 */
static int real_value(const unsigned char *s, const unsigned char *e, double *out)
{
	static const double exact_pow10[] = {1e0,  1e1,	 1e2,  1e3,  1e4,  1e5,	 1e6,  1e7,
					     1e8,  1e9,	 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
					     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
	const unsigned char *p = s;
	bool neg = false, fast = true;
	uint64_t m = 0;
	int digits = 0;
	long exp10 = 0;
	char small[64], *copy;
	size_t n = (size_t)(e - s);
	double v;
	locale_t loc;

	if (*p == '-') {
		neg = true;
		p++;
	}
	/*
	 * Clinger's fast path: a mantissa of at most 2^53 and a power of ten
	 * of at most 22 are both exact doubles, so one multiplication or
	 * division rounds exactly as strtod does.
	 */
	for (; p < e && is_digit(*p); p++) {
		if (digits >= 19) {
			fast = false;
			break;
		}
		m = m * 10 + (*p - '0');
		if (m)
			digits++;
	}
	if (fast && p < e && *p == '.') {
		for (p++; p < e && is_digit(*p); p++) {
			if (digits >= 19) {
				fast = false;
				break;
			}
			m = m * 10 + (*p - '0');
			if (m)
				digits++;
			exp10--;
		}
	}
	if (fast && p < e && (*p == 'e' || *p == 'E')) {
		bool eneg = false;
		long x = 0;
		p++;
		if (*p == '+' || *p == '-')
			eneg = *p++ == '-';
		for (; p < e; p++) {
			if (x < 100000)
				x = x * 10 + (*p - '0');
		}
		exp10 += eneg ? -x : x;
	}
#if FLT_EVAL_METHOD == 0
	if (fast && m == 0) {
		*out = neg ? -0.0 : 0.0;
		return 0;
	}
	if (fast && m <= (UINT64_C(1) << 53) && exp10 >= -22 && exp10 <= 22) {
		v = (double)m;
		v = exp10 < 0 ? v / exact_pow10[-exp10] : v * exact_pow10[exp10];
		*out = neg ? -v : v;
		return 0;
	}
#else
	(void)exact_pow10;
#endif
	copy = n < sizeof(small) ? small : xmalloc(n + 1);
	memcpy(copy, s, n);
	copy[n] = '\0';
	loc = c_numeric_locale();
	errno = 0;
	v = loc ? strtod_l(copy, NULL, loc) : strtod(copy, NULL);
	int overflow = (v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE;
	if (copy != small)
		free(copy);
	if (overflow)
		return -ERANGE;
	*out = v;
	return 0;
}

/*
 * Scans the number starting at p into *out (a new integer or real). Returns
 * the byte after it, NULL after an error.
 */
static const unsigned char *scan_number(struct parser *ps, const unsigned char *p, json_t **out)
{
	const unsigned char *s = p, *end = ps->end, *digits;
	bool neg = false;
	double d;

	if (*p == '-') {
		neg = true;
		p++;
	}
	if (p == end || !is_digit(*p)) {
		fail_unexpected(ps, p, "a digit");
		return NULL;
	}
	digits = p;
	if (*p == '0') {
		p++;
		if (p < end && is_digit(*p)) {
			fail(ps, p, json_error_invalid_syntax, "a number may not start with 0");
			return NULL;
		}
	} else {
		while (p < end && is_digit(*p))
			p++;
	}
	if (p == end || (*p != '.' && *p != 'e' && *p != 'E')) {
		uint64_t u = 0;
		json_int_t v;

		/* 19 digits fit in 64 unsigned bits; 20 never fit json_int_t. */
		if (p - digits > 19)
			goto too_big;
		for (const unsigned char *q = digits; q < p; q++)
			u = u * 10 + (*q - '0');
		if (neg) {
			if (u > (uint64_t)LLONG_MAX + 1)
				goto too_big;
			v = u == (uint64_t)LLONG_MAX + 1 ? LLONG_MIN : -(json_int_t)u;
		} else {
			if (u > (uint64_t)LLONG_MAX)
				goto too_big;
			v = (json_int_t)u;
		}
		*out = json_integer(v);
		return p;
	}
	if (*p == '.') {
		p++;
		if (p == end || !is_digit(*p)) {
			fail_unexpected(ps, p, "a digit after '.'");
			return NULL;
		}
		while (p < end && is_digit(*p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p == end || !is_digit(*p)) {
			fail_unexpected(ps, p, "a digit in the exponent");
			return NULL;
		}
		while (p < end && is_digit(*p))
			p++;
	}
	if (real_value(s, p, &d)) {
		fail(ps, s, json_error_numeric_overflow, "real number overflow");
		return NULL;
	}
	*out = json_real(d);
	return p;

too_big:
	fail(ps, s, json_error_numeric_overflow,
	     neg ? "too big negative integer" : "too big integer");
	return NULL;
}

/*
 * Hangs v (a new reference, NULL when its constructor failed) under the
 * innermost open container, under ps's pending key for an object, or makes
 * it the root. Returns 0, -1 after an error (v released).
 */
static inline int attach(struct parser *ps, const unsigned char *at, json_t **stack, size_t depth,
			 const char *key, size_t key_len, json_t *v, json_t **root)
{
	int r;

	if (!v) {
		fail(ps, at, json_error_out_of_memory, "out of memory");
		return -1;
	}
	if (depth == 0) {
		*root = v;
		return 0;
	}
	if (json_is_array(stack[depth - 1]))
		r = json_array_append_new(stack[depth - 1], v);
	else
		r = json_object_setn_new_nocheck(stack[depth - 1], key, key_len, v);
	if (r)
		fail(ps, at, json_error_out_of_memory, "out of memory");
	return r;
}

/*
 * A state machine over the text: "value" reads a value (a container is
 * hung under its parent as soon as it opens and pushed on the stack),
 * "next" what may follow one, "key" an object member's key and colon; the
 * key waits in key/key_len for its value. fail and out are the cleanup.
 */
json_t *jsontext_parse(const char *text, size_t len, size_t flags, json_error_t *err)
{
	struct parser ps = {.err = err};
	json_t *small_stack[64], **stack = small_stack, *root = NULL, *v;
	size_t depth = 0;
	const unsigned char *p, *end, *at;
	const char *key = NULL, *str;
	size_t key_len = 0, str_len;

	error_init(err);
	if (!text || (flags & ~(size_t)JSON_DECODE_ANY)) {
		if (err) {
			snprintf(err->text, JSON_ERROR_TEXT_LENGTH - 1, "%s",
				 text ? "unsupported flags" : "wrong arguments");
			err->text[JSON_ERROR_TEXT_LENGTH - 1] = (char)json_error_invalid_argument;
		}
		return NULL;
	}
	ps.start = p = (const unsigned char *)text;
	ps.end = end = p + len;

	p = skip_ws(p, end);
	if (!(flags & JSON_DECODE_ANY) && (p == end || (*p != '[' && *p != '{'))) {
		fail_unexpected(&ps, p, "'[' or '{'");
		goto fail;
	}

value:
	p = skip_ws(p, end);
	at = p;
	if (p == end) {
		fail_unexpected(&ps, p, "a value");
		goto fail;
	}
	/* jansson counts every value, scalars too, against its limit. */
	if (depth >= JSONTEXT_MAX_DEPTH) {
		fail(&ps, p, json_error_stack_overflow, "nesting deeper than %d",
		     JSONTEXT_MAX_DEPTH);
		goto fail;
	}
	switch (*p) {
	case '{':
	case '[':
		v = *p == '{' ? json_object() : json_array();
		if (attach(&ps, at, stack, depth, key, key_len, v, &root))
			goto fail;
		if (stack == small_stack && depth == LT_ARRAY_SIZE(small_stack)) {
			stack = xmalloc(JSONTEXT_MAX_DEPTH * sizeof(*stack));
			memcpy(stack, small_stack, sizeof(small_stack));
		}
		stack[depth++] = v;
		p = skip_ws(p + 1, end);
		if (json_is_array(v)) {
			if (p < end && *p == ']') {
				p++;
				depth--;
				goto next;
			}
			goto value;
		}
		if (p < end && *p == '}') {
			p++;
			depth--;
			goto next;
		}
		goto key;
	case '"':
		p = scan_string(&ps, p, &ps.val, false, &str, &str_len);
		if (!p)
			goto fail;
		v = json_stringn_nocheck(str, str_len);
		break;
	case 't':
	case 'f':
	case 'n': {
		const char *word = *p == 't' ? "true" : *p == 'f' ? "false" : "null";
		size_t n = strlen(word);
		if ((size_t)(end - p) < n || memcmp(p, word, n)) {
			fail(&ps, p, json_error_invalid_syntax, "invalid literal");
			goto fail;
		}
		p += n;
		v = *word == 't' ? json_true() : *word == 'f' ? json_false() : json_null();
		break;
	}
	default:
		if (*p == '-' || is_digit(*p)) {
			v = NULL;
			p = scan_number(&ps, p, &v);
			if (!p)
				goto fail;
			break;
		}
		fail_unexpected(&ps, p, "a value");
		goto fail;
	}
	if (attach(&ps, at, stack, depth, key, key_len, v, &root))
		goto fail;
	/*
	 * jansson reads one byte past a number or a literal and pushes it
	 * back; a pushed-back NUL is lost, so json_loadb accepts "[1\0]" and
	 * "true\0" as if the NUL were not there. Do the same.
	 */
	if (*at != '"' && p < end && *p == '\0')
		p++;

next:
	if (depth == 0)
		goto done;
	p = skip_ws(p, end);
	if (json_is_array(stack[depth - 1])) {
		if (p < end && *p == ',') {
			p++;
			goto value;
		}
		if (p < end && *p == ']') {
			p++;
			depth--;
			goto next;
		}
		fail_unexpected(&ps, p, "',' or ']'");
		goto fail;
	}
	if (p < end && *p == ',') {
		p = skip_ws(p + 1, end);
		goto key;
	}
	if (p < end && *p == '}') {
		p++;
		depth--;
		goto next;
	}
	fail_unexpected(&ps, p, "',' or '}'");
	goto fail;

key:
	if (p == end || *p != '"') {
		fail_unexpected(&ps, p, "a string key");
		goto fail;
	}
	p = scan_string(&ps, p, &ps.key, true, &key, &key_len);
	if (!p)
		goto fail;
	p = skip_ws(p, end);
	if (p == end || *p != ':') {
		fail_unexpected(&ps, p, "':'");
		goto fail;
	}
	p++;
	goto value;

done:
	p = skip_ws(p, end);
	if (p != end) {
		fail(&ps, p, json_error_end_of_input_expected, "garbage after the value");
		goto fail;
	}
	if (err)
		err->position = clamp_int(len);
	goto out;

fail:
	json_decref(root);
	root = NULL;
out:
	if (stack != small_stack)
		free(stack);
	free(ps.val.data);
	free(ps.key.data);
	return root;
}

/* ---- dumper ------------------------------------------------------------ */

/*
 * Output staged in a small buffer so that punctuation and short tokens cost
 * a memcpy, not a dynbuf_add each. rc sticks at the first failure, after
 * which nothing more reaches b (b keeps a prefix).
 */
struct out {
	struct dynbuf *b; /* borrowed */
	int rc;
	size_t n;
	char buf[4096];
};

static void out_flush(struct out *o)
{
	if (o->n && !o->rc)
		o->rc = dynbuf_add(o->b, o->buf, o->n);
	o->n = 0;
}

static inline void out_put(struct out *o, const void *p, size_t n)
{
	if (n > sizeof(o->buf) - o->n) {
		out_flush(o);
		if (n > sizeof(o->buf) / 2) {
			if (!o->rc)
				o->rc = dynbuf_add(o->b, p, n);
			return;
		}
	}
	memcpy(o->buf + o->n, p, n);
	o->n += n;
}

static inline void out_byte(struct out *o, char c)
{
	if (o->n == sizeof(o->buf))
		out_flush(o);
	o->buf[o->n++] = c;
}

static const char digit_pairs[] = "00010203040506070809101112131415161718192021222324252627282930"
				  "31323334353637383940414243444546474849505152535455565758596061"
				  "6263646566676869707172737475767778798081828384858687888990919293"
				  "949596979899";

/* Decimal of v into b (at least 21 bytes); returns its length. */
static size_t fmt_int(char *b, json_int_t v)
{
	char tmp[24];
	char *t = tmp + sizeof(tmp);
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	size_t n;

	while (u >= 100) {
		unsigned i = (unsigned)(u % 100) * 2;
		u /= 100;
		*--t = digit_pairs[i + 1];
		*--t = digit_pairs[i];
	}
	if (u >= 10) {
		*--t = digit_pairs[u * 2 + 1];
		*--t = digit_pairs[u * 2];
	} else {
		*--t = (char)('0' + u);
	}
	if (v < 0)
		*--t = '-';
	n = (size_t)(tmp + sizeof(tmp) - t);
	memcpy(b, t, n);
	return n;
}

/*
 * A real as jansson 2.14 writes it (jsonp_dtostr with precision 17) into b
 * (at least 40 bytes). Returns its length, 0 for NaN or infinity.
 */
static size_t fmt_real(char *b, double v)
{
	char raw[64];
	size_t n = 0;
	int r;
	bool point_or_exp = false;

	if (!isfinite(v))
		return 0;
	/*
	 * An integral value below 1e17 has at most 17 digits, all of which
	 * "%.17g" prints without an exponent; jansson then adds ".0".
	 */
	if (v > -1e17 && v < 1e17 && v == (double)(long long)v) {
		if (v == 0 && signbit(v))
			b[n++] = '-';
		n += fmt_int(b + n, (json_int_t)v);
		memcpy(b + n, ".0", 2);
		return n + 2;
	}
	r = snprintf(raw, sizeof(raw), "%.17g", v);
	if (r <= 0 || (size_t)r >= sizeof(raw))
		return 0;
	/*
	 * Whatever is not a digit, sign or 'e' is the locale's decimal point
	 * (possibly several bytes): one '.'. The exponent loses its '+' and
	 * leading zeros, as in jansson.
	 */
	for (const char *p = raw; *p;) {
		if ((*p >= '0' && *p <= '9') || *p == '-' || *p == '+') {
			b[n++] = *p++;
		} else if (*p == 'e') {
			b[n++] = *p++;
			point_or_exp = true;
			if (*p == '-')
				b[n++] = *p++;
			else if (*p == '+')
				p++;
			while (*p == '0' && p[1])
				p++;
		} else {
			b[n++] = '.';
			point_or_exp = true;
			while (*p && !((*p >= '0' && *p <= '9') || *p == 'e' || *p == '-'))
				p++;
		}
	}
	if (!point_or_exp) {
		memcpy(b + n, ".0", 2);
		n += 2;
	}
	return n;
}

/* The string s[0, len) quoted and escaped as jansson does; -EINVAL when not UTF-8. */
static int dump_string(struct out *o, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)s, *end = p + len, *run = p;

	out_byte(o, '"');
	for (;;) {
		p = str_skip_plain(p, end);
		if (p == end)
			break;
		unsigned c = *p;
		if (c >= 0x80) {
			size_t n = utf8_seq_len(p, end);
			if (!n)
				return -EINVAL;
			p += n;
			continue;
		}
		out_put(o, run, (size_t)(p - run));
		switch (c) {
		case '"': out_put(o, "\\\"", 2); break;
		case '\\': out_put(o, "\\\\", 2); break;
		case '\b': out_put(o, "\\b", 2); break;
		case '\f': out_put(o, "\\f", 2); break;
		case '\n': out_put(o, "\\n", 2); break;
		case '\r': out_put(o, "\\r", 2); break;
		case '\t': out_put(o, "\\t", 2); break;
		default: {
			char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			out_put(o, e, sizeof(e));
			break;
		}
		}
		run = ++p;
	}
	out_put(o, run, (size_t)(p - run));
	out_byte(o, '"');
	return 0;
}

/* An open container being written: its next element or member. */
struct dump_frame {
	const json_t *c; /* borrowed */
	void *iter;	 /* objects: the member being written */
	size_t i, n;	 /* arrays: the element being written, of n */
};

/* Writes "key": for the member at iter. */
static int dump_key(struct out *o, void *iter)
{
	int r = dump_string(o, json_object_iter_key(iter), json_object_iter_key_len(iter));
	out_byte(o, ':');
	return r;
}

int jsontext_dump(struct dynbuf *b, const json_t *j)
{
	struct out out, *o = &out;
	struct dump_frame small_stack[32], *stack = small_stack;
	size_t depth = 0;
	const json_t *v = j;
	char num[48];
	size_t n;
	int r = 0;

	o->b = b;
	o->rc = 0;
	o->n = 0;

value:
	if (!v) {
		r = -EINVAL;
		goto out;
	}
	switch (json_typeof(v)) {
	case JSON_NULL: out_put(o, "null", 4); break;
	case JSON_TRUE: out_put(o, "true", 4); break;
	case JSON_FALSE: out_put(o, "false", 5); break;
	case JSON_INTEGER:
		n = fmt_int(num, json_integer_value(v));
		out_put(o, num, n);
		break;
	case JSON_REAL:
		n = fmt_real(num, json_real_value(v));
		if (!n) {
			r = -EINVAL;
			goto out;
		}
		out_put(o, num, n);
		break;
	case JSON_STRING:
		r = dump_string(o, json_string_value(v), json_string_length(v));
		if (r)
			goto out;
		break;
	case JSON_ARRAY:
	case JSON_OBJECT:
		/* The depth limit is also what ends a reference cycle. */
		if (depth >= JSONTEXT_MAX_DEPTH) {
			r = -EINVAL;
			goto out;
		}
		if (stack == small_stack && depth == LT_ARRAY_SIZE(small_stack)) {
			stack = xmalloc(JSONTEXT_MAX_DEPTH * sizeof(*stack));
			memcpy(stack, small_stack, sizeof(small_stack));
		}
		struct dump_frame *f = &stack[depth];
		f->c = v;
		if (json_is_array(v)) {
			f->i = 0;
			f->n = json_array_size(v);
			if (!f->n) {
				out_put(o, "[]", 2);
				break;
			}
			out_byte(o, '[');
			depth++;
			v = json_array_get(v, 0);
			goto value;
		}
		f->iter = json_object_iter((json_t *)v);
		if (!f->iter) {
			out_put(o, "{}", 2);
			break;
		}
		out_byte(o, '{');
		depth++;
		r = dump_key(o, f->iter);
		if (r)
			goto out;
		v = json_object_iter_value(f->iter);
		goto value;
	default: r = -EINVAL; goto out;
	}

	while (depth > 0) {
		struct dump_frame *f = &stack[depth - 1];

		if (o->rc)
			break;
		if (json_is_array(f->c)) {
			if (++f->i < f->n) {
				out_byte(o, ',');
				v = json_array_get(f->c, f->i);
				goto value;
			}
			out_byte(o, ']');
		} else {
			f->iter = json_object_iter_next((json_t *)f->c, f->iter);
			if (f->iter) {
				out_byte(o, ',');
				r = dump_key(o, f->iter);
				if (r)
					goto out;
				v = json_object_iter_value(f->iter);
				goto value;
			}
			out_byte(o, '}');
		}
		depth--;
	}
	out_flush(o);
	r = o->rc;

out:
	if (stack != small_stack)
		free(stack);
	return r;
}

char *jsontext_dumps(const json_t *j, size_t *len)
{
	struct dynbuf b;

	dynbuf_init(&b, 0);
	if (jsontext_dump(&b, j)) {
		dynbuf_free(&b);
		return NULL;
	}
	return dynbuf_steal(&b, len);
}
