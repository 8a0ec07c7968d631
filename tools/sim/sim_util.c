/*
 * sim_util.c: the small helpers every file of the simulator needs:
 * allocation that aborts on exhaustion, logging to stderr, clocks and the
 * Vietnamese time format, the seeded random streams, a growable text
 * buffer, and the few decoders (UTF-8 check, form bodies, base64) that the
 * handlers need for input from outside.
 *
 * Randomness is a pure function of --seed: sim_rand_at() hashes (seed,
 * stream, n) so that a request's fate depends on its position in the
 * sequence, not on which worker thread served it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

/* ---- allocation ----------------------------------------------------- */

static _Noreturn void oom(size_t n)
{
	sim_die("out of memory (%zu bytes)", n);
}

void *sim_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		oom(n);
	return p;
}

void *sim_xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

	if (p == NULL)
		oom(nmemb * size);
	return p;
}

void *sim_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		oom(n);
	return q;
}

char *sim_xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		oom(strlen(s) + 1);
	return p;
}

char *sim_xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		oom(0);
	return s;
}

/* ---- logging -------------------------------------------------------- */

static const char *const level_names[] = {"error", "warning", "info", "debug"};

void sim_vlog(enum sim_log_level level, const char *fmt, va_list ap)
{
	char line[1024];
	int n;

	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	/* One write per line so that lines from several threads do not mix. */
	fprintf(stderr, "%s: %s: %s\n", SIM_NAME, level_names[level], line);
}

void sim_log(enum sim_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sim_vlog(level, fmt, ap);
	va_end(ap);
}

void sim_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sim_vlog(SIM_LOG_ERR, fmt, ap);
	va_end(ap);
	abort();
}

/* ---- clocks --------------------------------------------------------- */

uint64_t sim_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int64_t sim_now_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *sim_fmt_vn_time(int64_t wall_ms, char *buf, size_t len)
{
	/* Asia/Ho_Chi_Minh is UTC+7 without daylight saving time. */
	time_t t = (time_t)(wall_ms / 1000) + 7 * 3600;
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y%m%d%H%M%S", &tm) == 0) {
		if (len > 0)
			buf[0] = '\0';
	}
	return buf;
}

/* ---- randomness ----------------------------------------------------- */

uint64_t sim_mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15u;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
	return x ^ (x >> 31);
}

uint64_t sim_rand_at(uint64_t stream, uint64_t n)
{
	return sim_mix64(sim_mix64(sim_mix64(sim_config.seed) ^ stream) ^ n);
}

double sim_unit(uint64_t r)
{
	return (double)(r >> 11) * (1.0 / 9007199254740992.0);
}

void sim_rng_init(struct sim_rng *rng, uint64_t stream)
{
	for (unsigned i = 0; i < 4; i++)
		rng->s[i] = sim_rand_at(stream, i);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t sim_rng_next(struct sim_rng *rng)
{
	uint64_t *s = rng->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

uint64_t sim_rng_below(struct sim_rng *rng, uint64_t n)
{
	/* Rejection sampling: no modulo bias. */
	uint64_t limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t r;

	do
		r = sim_rng_next(rng);
	while (r >= limit);
	return r % n;
}

/* ---- text buffer ---------------------------------------------------- */

static void buf_reserve(struct sim_buf *b, size_t more)
{
	size_t need = b->len + more + 1;
	size_t cap;

	if (need < more)
		sim_die("buffer size overflow");
	if (need <= b->cap)
		return;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap * 2 > cap ? cap * 2 : need;
	b->data = sim_xrealloc(b->data, cap);
	b->cap = cap;
}

void sim_buf_add(struct sim_buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void sim_buf_adds(struct sim_buf *b, const char *s)
{
	sim_buf_add(b, s, strlen(s));
}

void sim_buf_addf(struct sim_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		sim_die("vsnprintf failed");
	buf_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

char *sim_buf_steal(struct sim_buf *b, size_t *len)
{
	char *p;

	buf_reserve(b, 0);
	p = b->data;
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

void sim_buf_free(struct sim_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* ---- decoders ------------------------------------------------------- */

bool sim_parse_dec(const char *s, uint64_t def, uint64_t *out)
{
	uint64_t v = 0;
	size_t n = 0;

	if (s == NULL || *s == '\0') {
		*out = def;
		return true;
	}
	for (; s[n] != '\0'; n++) {
		if (n >= 19 || s[n] < '0' || s[n] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[n] - '0');
	}
	*out = v;
	return true;
}

bool sim_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		unsigned c = p[i];
		unsigned need;
		uint32_t cp;

		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (n - i <= need)
			return false;
		for (unsigned k = 1; k <= need; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		/* Overlong forms, surrogates and values past U+10FFFF. */
		if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

bool sim_str_equal_ct(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = la != lb;

	for (size_t i = 0; i < la; i++)
		diff |= (unsigned char)a[i] ^ (unsigned char)b[lb ? i % lb : 0];
	return diff == 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes a form-urlencoded component [s, s+n) into out; false if it does not fit. */
static bool form_decode(const char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (c == '+') {
			c = ' ';
		} else if (c == '%' && i + 2 < n) {
			int hi = hexval(s[i + 1]);
			int lo = hexval(s[i + 2]);

			if (hi >= 0 && lo >= 0) {
				c = hi * 16 + lo;
				i += 2;
			}
		}
		if (o + 1 >= cap)
			return false;
		out[o++] = (char)c;
	}
	if (cap == 0)
		return false;
	out[o] = '\0';
	return true;
}

bool sim_form_get(const char *body, size_t len, const char *key, char *out, size_t cap)
{
	const char *p = body, *end = body + len;
	char name[128];

	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(stop - p));
		const char *kend = eq ? eq : stop;

		if (form_decode(p, (size_t)(kend - p), name, sizeof(name)) &&
		    strcmp(name, key) == 0)
			return form_decode(eq ? eq + 1 : stop, eq ? (size_t)(stop - eq - 1) : 0,
					   out, cap);
		p = amp ? amp + 1 : end;
	}
	return false;
}

static int b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long sim_base64_decode(const char *in, char *out, size_t cap)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;
	size_t i;

	for (i = 0; in[i] && in[i] != '='; i++) {
		int v = b64val((unsigned char)in[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o + 1 >= cap)
				return -1;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	for (; in[i] == '='; i++)
		;
	if (in[i] != '\0' || cap == 0)
		return -1;
	out[o] = '\0';
	return (long)o;
}
