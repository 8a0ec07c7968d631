/*
 * log: one logging function for the whole daemon.
 *
 * Under systemd (JOURNAL_STREAM names our stderr, or forced by config) each
 * message goes to the journal with structured fields (CONNECTOR=, FLOW=,
 * MAHOSO=, ...). Otherwise it goes to stderr as "<prio>lienthongd: ..." lines
 * (the sd-daemon priority prefix) or plain text when stderr is a terminal.
 *
 * Never log a secret or a citizen's personal data in clear.
 *
 * Repeated failures are rate-limited with a struct complaint (collectd's
 * utils_complain): the first failure is logged, repeats are logged with
 * exponentially growing intervals, and the recovery is logged once.
 */
#ifndef LT_LOG_H
#define LT_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

enum log_target {
	LOG_TARGET_AUTO = 0, /* journal when JOURNAL_STREAM matches stderr */
	LOG_TARGET_JOURNAL,
	LOG_TARGET_STDERR,
};

/* Sets the target and the maximum priority logged (LOG_ERR..LOG_DEBUG). */
void log_setup(enum log_target target, int max_prio);
void log_set_level(int max_prio);
int log_get_level(void);
/* "debug", "info", "notice", "warning", "err"/"error" -> prio; -1 if unknown. */
int log_level_from_name(const char *name);

/*
 * Logs a message. fields is NULL or a NULL-terminated list of "KEY=value"
 * journal fields (each a separate string), e.g. (const char *[]){"FLOW=x", NULL}.
 */
void log_fields(int prio, const char *const *fields, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_fieldsv(int prio, const char *const *fields, const char *fmt, va_list ap);

#define log_msg(prio, ...) log_fields((prio), NULL, __VA_ARGS__)
#define log_err(...)	   log_fields(LOG_ERR, NULL, __VA_ARGS__)
#define log_warn(...)	   log_fields(LOG_WARNING, NULL, __VA_ARGS__)
#define log_notice(...)	   log_fields(LOG_NOTICE, NULL, __VA_ARGS__)
#define log_info(...)	   log_fields(LOG_INFO, NULL, __VA_ARGS__)
#define log_debug(...)	   log_fields(LOG_DEBUG, NULL, __VA_ARGS__)

/* Logs "what: strerror" at LOG_CRIT and aborts. For x*alloc and invariants. */
_Noreturn void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Rate limiting of a repeated failure. Zero-initialise. complain() logs the
 * first time and then at most every interval (doubling up to 1 day);
 * complain_release() logs once that the condition cleared, if it was logged.
 */
struct complaint {
	uint64_t last_us;
	uint64_t interval_us;
	unsigned suppressed;
	bool active;
};

void complain(struct complaint *c, int prio, const char *const *fields, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void complain_release(struct complaint *c, int prio, const char *const *fields, const char *fmt,
		      ...) __attribute__((format(printf, 4, 5)));

#endif
