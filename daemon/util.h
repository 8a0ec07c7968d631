/*
 * util: allocation that aborts on exhaustion, bounded growable buffers,
 * clocks, and the file helpers every module needs (atomic writes, bounded
 * reads, secrets with permission checks).
 *
 * Out of memory is not a condition lienthong recovers from: durable state is
 * in the store and systemd restarts us, so x*alloc log and abort.
 */
#ifndef LT_UTIL_H
#define LT_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define LT_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define LT_MIN(a, b)	 ((a) < (b) ? (a) : (b))
#define LT_MAX(a, b)	 ((a) > (b) ? (a) : (b))

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a new string (caller frees). */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap);

/*
 * A growable byte buffer that never grows past max_bytes (curl's dynbuf).
 * data is always NUL-terminated (the NUL is not counted in len).
 */
struct dynbuf {
	char *data; /* owned */
	size_t len;
	size_t cap;
	size_t max_bytes; /* 0 = unlimited */
};

void dynbuf_init(struct dynbuf *b, size_t max_bytes);
/* Returns 0, or -E2BIG when the result would exceed max_bytes (b unchanged). */
int dynbuf_add(struct dynbuf *b, const void *p, size_t n);
int dynbuf_addstr(struct dynbuf *b, const char *s);
int dynbuf_printf(struct dynbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dynbuf_reset(struct dynbuf *b);
/* Hands the buffer to the caller (never NULL) and leaves b empty. */
char *dynbuf_steal(struct dynbuf *b, size_t *len);
void dynbuf_free(struct dynbuf *b);

/* Clocks, in microseconds (monotonic) and milliseconds/seconds (wall). */
uint64_t now_mono_us(void);
int64_t now_wall_ms(void);
/* ISO 8601 UTC "2026-11-27T04:33:06Z" of a wall time in ms into buf (>= 32). */
char *fmt_time_iso(int64_t wall_ms, char *buf, size_t len);
/* The same as a JSON string, or JSON null for 0 (never happened): status fields. New ref. */
json_t *fmt_time_json(int64_t wall_ms);

/* Random 64-bit value from a process-wide PRNG seeded from getrandom(). */
uint64_t rand_u64(void);
/* Uniform in [0, n) (n > 0). */
uint64_t rand_below(uint64_t n);

/* Offset in s of the first byte that is not valid UTF-8 (overlong forms,
 * surrogates and NUL included); len when all of it is. */
size_t utf8_bad_at(const unsigned char *s, size_t len);

/*
 * Reads a whole file of at most max_bytes into a new NUL-terminated buffer.
 * Returns 0, -errno, or -EFBIG when the file is larger than max_bytes.
 */
int read_file_bounded(const char *path, size_t max_bytes, char **out, size_t *len);

/*
 * Writes data to path atomically: temp file in the same directory, fsync,
 * rename, fsync of the directory. mode applies to the new file.
 * Returns 0 or -errno.
 */
int write_file_atomic(const char *path, const void *data, size_t len, unsigned mode);

/* fsync() a directory by path. Returns 0 or -errno. */
int fsync_dir(const char *dir);

/* mkdir -p with mode for the created components. Returns 0 or -errno. */
int mkdir_p(const char *path, unsigned mode);

/*
 * Reads a secret (password, token, key). ref is an absolute path or a bare
 * credential name looked up in $CREDENTIALS_DIRECTORY (systemd
 * LoadCredential=). The file must not be accessible by "other" nor writable
 * by its group; trailing newlines are stripped. On failure *err gets a
 * message naming the file and the reason (caller frees).
 * Returns 0 or -errno (-EPERM for loose permissions).
 */
int secret_read(const char *ref, char **out, char **err);

/* Zero and free a secret. Accepts NULL. */
void secret_free(char *s);

/* String helpers. */
bool str_startswith(const char *s, const char *prefix);
bool str_endswith(const char *s, const char *suffix);
/* Strip leading and trailing ASCII whitespace in place; returns s. */
char *str_strip(char *s);

/*
 * Parses "1500", "1500ms", "2s", "5m", "1h", "1d" into milliseconds.
 * A bare number means default_unit_ms units. Returns 0 or -EINVAL/-ERANGE.
 */
int parse_duration_ms(const char *s, int64_t default_unit_ms, int64_t *out);
/* Parses "1024", "64k", "10M", "2G" (binary multiples) into bytes. */
int parse_size_bytes(const char *s, int64_t *out);

#endif
