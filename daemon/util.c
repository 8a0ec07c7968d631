/*
 * util: allocation, bounded buffers, clocks, randomness and file helpers.
 * See util.h for the contracts.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		log_fatal("out of memory allocating %zu bytes", n);
	return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (!p)
		log_fatal("out of memory allocating %zu x %zu bytes", nmemb, size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		log_fatal("out of memory reallocating %zu bytes", n);
	return q;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s ? s : "");
	if (!p)
		log_fatal("out of memory duplicating a string");
	return p;
}

char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (!p)
		log_fatal("out of memory duplicating a string");
	return p;
}

char *xvasprintf(const char *fmt, va_list ap)
{
	char *p = NULL;
	if (vasprintf(&p, fmt, ap) < 0)
		log_fatal("out of memory formatting a string");
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *p = xvasprintf(fmt, ap);
	va_end(ap);
	return p;
}

/* ---- dynbuf ---------------------------------------------------------- */

void dynbuf_init(struct dynbuf *b, size_t max_bytes)
{
	memset(b, 0, sizeof(*b));
	b->max_bytes = max_bytes;
}

int dynbuf_add(struct dynbuf *b, const void *p, size_t n)
{
	if (b->max_bytes && (n > b->max_bytes || b->len > b->max_bytes - n))
		return -E2BIG;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int dynbuf_addstr(struct dynbuf *b, const char *s)
{
	return dynbuf_add(b, s, strlen(s));
}

int dynbuf_printf(struct dynbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = xvasprintf(fmt, ap);
	va_end(ap);
	int r = dynbuf_addstr(b, s);
	free(s);
	return r;
}

void dynbuf_reset(struct dynbuf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

char *dynbuf_steal(struct dynbuf *b, size_t *len)
{
	char *p = b->data ? b->data : xstrdup("");
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

void dynbuf_free(struct dynbuf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* ---- clocks and randomness ------------------------------------------- */

uint64_t now_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int64_t now_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *fmt_time_iso(int64_t wall_ms, char *buf, size_t len)
{
	time_t t = (time_t)(wall_ms / 1000);
	struct tm tm;
	if (wall_ms <= 0 || !gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "-");
	return buf;
}

json_t *fmt_time_json(int64_t wall_ms)
{
	char buf[40];
	return wall_ms > 0 ? json_string(fmt_time_iso(wall_ms, buf, sizeof(buf))) : json_null();
}

/* xoshiro256** seeded from getrandom(); the daemon is single-threaded. */
static uint64_t rng_state[4];
static int rng_seeded;

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t rand_u64(void)
{
	if (!rng_seeded) {
		if (getrandom(rng_state, sizeof(rng_state), 0) != (ssize_t)sizeof(rng_state)) {
			uint64_t seed = now_mono_us() ^ ((uint64_t)getpid() << 32);
			for (int i = 0; i < 4; i++) {
				seed += 0x9e3779b97f4a7c15ULL;
				uint64_t z = seed;
				z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
				z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
				rng_state[i] = z ^ (z >> 31);
			}
		}
		rng_seeded = 1;
	}
	uint64_t *s = rng_state;
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

uint64_t rand_below(uint64_t n)
{
	if (n == 0)
		return 0;
	uint64_t limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t v;
	do
		v = rand_u64();
	while (v >= limit);
	return v % n;
}

/* ---- files ----------------------------------------------------------- */

int read_file_bounded(const char *path, size_t max_bytes, char **out, size_t *len)
{
	struct dynbuf b;
	char chunk[65536];
	int r = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dynbuf_init(&b, max_bytes);
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		if (dynbuf_add(&b, chunk, (size_t)n) < 0) {
			r = -EFBIG;
			goto out;
		}
	}
	*out = dynbuf_steal(&b, len);
out:
	close(fd);
	dynbuf_free(&b);
	return r;
}

int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}

int write_file_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
	char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	int r = 0, fd = -1;
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	else
		strcpy(dir, ".");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	const char *p = data;
	size_t left = len;
	while (left) {
		ssize_t n = write(fd, p, left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		p += n;
		left -= (size_t)n;
	}
	if (fsync(fd) < 0) {
		r = -errno;
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		r = -errno;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		r = -errno;
		goto out;
	}
	r = fsync_dir(dir);
out:
	if (fd >= 0)
		close(fd);
	if (r < 0)
		unlink(tmp);
	free(tmp);
	free(dir);
	return r;
}

int mkdir_p(const char *path, unsigned mode)
{
	char *p = xstrdup(path);
	int r = 0;
	for (char *s = p + 1;; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			*s = '\0';
			if (mkdir(p, mode) < 0 && errno != EEXIST) {
				r = -errno;
				break;
			}
			*s = c;
			if (c == '\0')
				break;
		}
	}
	free(p);
	if (r == 0) {
		struct stat st;
		if (stat(path, &st) < 0)
			r = -errno;
		else if (!S_ISDIR(st.st_mode))
			r = -ENOTDIR;
	}
	return r;
}

int secret_read(const char *ref, char **out, char **err)
{
	char *path = NULL, *data = NULL;
	size_t len = 0;
	int r;
	struct stat st;

	*out = NULL;
	if (!ref || !*ref) {
		*err = xstrdup("empty secret reference");
		return -EINVAL;
	}
	if (ref[0] == '/') {
		path = xstrdup(ref);
	} else {
		const char *dir = getenv("CREDENTIALS_DIRECTORY");
		if (!dir || !*dir || strchr(ref, '/')) {
			*err = xasprintf("secret '%s' is neither an absolute path nor a credential "
					 "($CREDENTIALS_DIRECTORY is %s)",
					 ref, dir && *dir ? "set" : "not set");
			return -EINVAL;
		}
		path = xasprintf("%s/%s", dir, ref);
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		r = -errno;
		*err = xasprintf("cannot open secret file %s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		*err = xasprintf("cannot stat secret file %s: %s", path, strerror(errno));
		close(fd);
		goto out;
	}
	close(fd);
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		*err = xasprintf("secret file %s is not a regular file", path);
		goto out;
	}
	if (st.st_mode & (S_IRWXO | S_IWGRP)) {
		r = -EPERM;
		*err = xasprintf("secret file %s has mode %04o: it must not be readable by others "
				 "nor writable by its group (chmod 0600 or 0640)",
				 path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	r = read_file_bounded(path, 64 * 1024, &data, &len);
	if (r < 0) {
		*err = xasprintf("cannot read secret file %s: %s", path,
				 r == -EFBIG ? "larger than 64 KiB" : strerror(-r));
		goto out;
	}
	while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
		data[--len] = '\0';
	if (len == 0) {
		r = -EINVAL;
		*err = xasprintf("secret file %s is empty", path);
		secret_free(data);
		goto out;
	}
	*out = data;
	r = 0;
out:
	free(path);
	return r;
}

void secret_free(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/* ---- strings and parsing --------------------------------------------- */

bool str_startswith(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool str_endswith(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

char *str_strip(char *s)
{
	char *p = s;
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	size_t n = strlen(p);
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\n' || p[n - 1] == '\r'))
		n--;
	memmove(s, p, n);
	s[n] = '\0';
	return s;
}

static int parse_scaled(const char *s, int64_t *num, const char **unit)
{
	char *end;
	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (end == s)
		return -EINVAL;
	if (errno == ERANGE)
		return -ERANGE;
	while (*end == ' ')
		end++;
	*num = v;
	*unit = end;
	return 0;
}

static int mul_checked(int64_t a, int64_t b, int64_t *out)
{
	if (a != 0 && b > INT64_MAX / a)
		return -ERANGE;
	*out = a * b;
	return 0;
}

int parse_duration_ms(const char *s, int64_t default_unit_ms, int64_t *out)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {{"ms", 1},	     {"s", 1000},    {"sec", 1000},  {"m", 60000},
		     {"min", 60000}, {"h", 3600000}, {"d", 86400000}};
	int64_t n;
	const char *unit;
	int r = parse_scaled(s, &n, &unit);
	if (r < 0)
		return r;
	if (!*unit)
		return mul_checked(n, default_unit_ms, out);
	for (size_t i = 0; i < LT_ARRAY_SIZE(units); i++)
		if (strcmp(unit, units[i].unit) == 0)
			return mul_checked(n, units[i].ms, out);
	return -EINVAL;
}

int parse_size_bytes(const char *s, int64_t *out)
{
	int64_t n;
	const char *unit;
	int r = parse_scaled(s, &n, &unit);
	if (r < 0)
		return r;
	int64_t m = 1;
	if (!*unit || strcmp(unit, "B") == 0)
		m = 1;
	else if (strcasecmp(unit, "k") == 0 || strcasecmp(unit, "KiB") == 0 ||
		 strcmp(unit, "K") == 0)
		m = 1024;
	else if (strcasecmp(unit, "M") == 0 || strcasecmp(unit, "MiB") == 0)
		m = 1024 * 1024;
	else if (strcasecmp(unit, "G") == 0 || strcasecmp(unit, "GiB") == 0)
		m = 1024LL * 1024 * 1024;
	else
		return -EINVAL;
	return mul_checked(n, m, out);
}

size_t utf8_bad_at(const unsigned char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned ch = s[i], cp;
		size_t n;
		if (ch < 0x80) {
			if (ch == 0)
				return i;
			i++;
			continue;
		}
		if (ch >= 0xc2 && ch <= 0xdf) {
			n = 1;
			cp = ch & 0x1f;
		} else if ((ch & 0xf0) == 0xe0) {
			n = 2;
			cp = ch & 0x0f;
		} else if (ch >= 0xf0 && ch <= 0xf4) {
			n = 3;
			cp = ch & 0x07;
		} else {
			return i;
		}
		if (len - i <= n)
			return i;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return i;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
			return i;
		if (n == 3 && (cp < 0x10000 || cp > 0x10ffff))
			return i;
		i += n + 1;
	}
	return len;
}
