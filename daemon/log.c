/*
 * log: journal or stderr output, levels, and rate limiting of repeated
 * failures. See log.h.
 */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include "util.h"

static enum log_target log_target = LOG_TARGET_STDERR;
static int log_max_prio = LOG_INFO;
static bool log_tty;

static bool journal_stream_is_stderr(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_setup(enum log_target target, int max_prio)
{
	if (target == LOG_TARGET_AUTO)
		target = journal_stream_is_stderr() ? LOG_TARGET_JOURNAL : LOG_TARGET_STDERR;
	log_target = target;
	log_max_prio = max_prio;
	log_tty = isatty(STDERR_FILENO);
}

void log_set_level(int max_prio)
{
	log_max_prio = max_prio;
}

int log_get_level(void)
{
	return log_max_prio;
}

int log_level_from_name(const char *name)
{
	static const struct {
		const char *name;
		int prio;
	} levels[] = {{"emerg", LOG_EMERG},  {"alert", LOG_ALERT},   {"crit", LOG_CRIT},
		      {"err", LOG_ERR},	     {"error", LOG_ERR},     {"warning", LOG_WARNING},
		      {"warn", LOG_WARNING}, {"notice", LOG_NOTICE}, {"info", LOG_INFO},
		      {"debug", LOG_DEBUG}};
	for (size_t i = 0; i < LT_ARRAY_SIZE(levels); i++)
		if (strcmp(name, levels[i].name) == 0)
			return levels[i].prio;
	return -1;
}

static const char *prio_word(int prio)
{
	static const char *const words[] = {"emerg",   "alert",	 "crit", "error",
					    "warning", "notice", "info", "debug"};
	return words[prio & 7];
}

void log_fieldsv(int prio, const char *const *fields, const char *fmt, va_list ap)
{
	if (prio > log_max_prio)
		return;
	int saved_errno = errno;
	char msg[4096];
	vsnprintf(msg, sizeof(msg), fmt, ap);

	/* A "CONNECTOR=x" or "FLOW=x" field also prefixes the text, so that the
	 * stderr form and journalctl's default output name the component. */
	const char *prefix = NULL;
	for (size_t i = 0; fields && fields[i]; i++) {
		if (str_startswith(fields[i], "CONNECTOR=") || str_startswith(fields[i], "FLOW=")) {
			prefix = strchr(fields[i], '=') + 1;
			break;
		}
	}

	if (log_target == LOG_TARGET_JOURNAL) {
		struct iovec iov[32];
		char *bufs[32];
		size_t n = 0;
		bufs[n] = prefix ? xasprintf("MESSAGE=%s: %s", prefix, msg)
				 : xasprintf("MESSAGE=%s", msg);
		n++;
		bufs[n++] = xasprintf("PRIORITY=%d", prio & 7);
		bufs[n++] = xstrdup("SYSLOG_IDENTIFIER=lienthongd");
		for (size_t i = 0; fields && fields[i] && n < LT_ARRAY_SIZE(bufs); i++)
			bufs[n++] = xstrdup(fields[i]);
		for (size_t i = 0; i < n; i++) {
			iov[i].iov_base = bufs[i];
			iov[i].iov_len = strlen(bufs[i]);
		}
		if (sd_journal_sendv(iov, (int)n) < 0)
			fprintf(stderr, "<%d>%s%s%s\n", prio & 7, prefix ? prefix : "",
				prefix ? ": " : "", msg);
		for (size_t i = 0; i < n; i++)
			free(bufs[i]);
	} else if (log_tty) {
		fprintf(stderr, "lienthongd: %s: %s%s%s\n", prio_word(prio), prefix ? prefix : "",
			prefix ? ": " : "", msg);
	} else {
		fprintf(stderr, "<%d>%s: %s%s%s\n", prio & 7, prio_word(prio), prefix ? prefix : "",
			prefix ? ": " : "", msg);
	}
	errno = saved_errno;
}

void log_fields(int prio, const char *const *fields, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_fieldsv(prio, fields, fmt, ap);
	va_end(ap);
}

void log_fatal(const char *fmt, ...)
{
	char msg[1024];
	int e = errno;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* No allocation here: we may be out of memory. */
	fprintf(stderr, "<2>lienthongd: fatal: %s%s%s\n", msg, e ? ": " : "", e ? strerror(e) : "");
	abort();
}

/* ---- rate limiting ---------------------------------------------------- */

#define COMPLAIN_FIRST_US (60ull * 1000000)
#define COMPLAIN_MAX_US	  (86400ull * 1000000)

void complain(struct complaint *c, int prio, const char *const *fields, const char *fmt, ...)
{
	uint64_t now = now_mono_us();
	if (c->active && now - c->last_us < c->interval_us) {
		c->suppressed++;
		return;
	}
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->suppressed)
		log_fields(prio, fields, "%s (repeated %u times since last logged)", msg,
			   c->suppressed);
	else
		log_fields(prio, fields, "%s", msg);
	c->interval_us =
		c->active ? LT_MIN(c->interval_us * 2, COMPLAIN_MAX_US) : COMPLAIN_FIRST_US;
	c->active = true;
	c->last_us = now;
	c->suppressed = 0;
}

void complain_release(struct complaint *c, int prio, const char *const *fields, const char *fmt,
		      ...)
{
	if (!c->active)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_fieldsv(prio, fields, fmt, ap);
	va_end(ap);
	memset(c, 0, sizeof(*c));
}
