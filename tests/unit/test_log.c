/* Unit tests of log: priorities filter, connector/flow prefixes, and the
 * rate limiting of repeated failures (logged once, repeats suppressed,
 * recovery logged once). stderr is captured into a temporary file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "tap.h"
#include "util.h"

static char path[] = "/tmp/lt-log-XXXXXX";
static long offset;

/* Returns what was logged since the last call (caller frees). */
static char *captured(void)
{
	fflush(stderr);
	char *all = NULL;
	size_t len = 0;
	if (read_file_bounded(path, 1 << 20, &all, &len) < 0)
		return xstrdup("");
	char *part = xstrdup(all + offset);
	offset = (long)len;
	free(all);
	return part;
}

static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

int main(void)
{
	int fd = mkstemp(path);
	if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
		return 1;
	close(fd);
	log_setup(LOG_TARGET_STDERR, LOG_INFO);

	log_debug("hidden detail");
	log_info("shown info");
	char *out = captured();
	ok(!strstr(out, "hidden detail"), "messages above the level are not logged");
	ok(strstr(out, "<6>info: shown info") != NULL, "stderr lines carry the priority prefix");
	free(out);

	log_fields(LOG_WARNING, (const char *[]){"CONNECTOR=csdl", "MAHOSO=x", NULL}, "timeout");
	out = captured();
	ok(strstr(out, "<4>warning: csdl: timeout") != NULL,
	   "a CONNECTOR= field prefixes the text with the connector");
	free(out);

	struct complaint c = {0};
	const char *fields[] = {"CONNECTOR=dvcqg", NULL};
	for (int i = 0; i < 50; i++)
		complain(&c, LOG_WARNING, fields, "endpoint down");
	out = captured();
	is_int(count(out, "endpoint down"), 1, "fifty identical failures are logged once");
	free(out);
	complain_release(&c, LOG_NOTICE, fields, "endpoint recovered");
	complain_release(&c, LOG_NOTICE, fields, "endpoint recovered");
	out = captured();
	is_int(count(out, "endpoint recovered"), 1, "the recovery is logged once");
	free(out);
	struct complaint quiet = {0};
	complain_release(&quiet, LOG_NOTICE, fields, "never failed");
	out = captured();
	ok(!strstr(out, "never failed"), "no recovery line without an earlier failure");
	free(out);
	/* After the interval the repeat is logged with the count suppressed. */
	complain(&c, LOG_WARNING, fields, "down again");
	complain(&c, LOG_WARNING, fields, "down again");
	c.last_us -= c.interval_us + 1;
	complain(&c, LOG_WARNING, fields, "down again");
	out = captured();
	ok(strstr(out, "down again (repeated 1 times since last logged)") != NULL,
	   "a repeat after the interval says how many were suppressed");
	free(out);
	is_int(log_level_from_name("warning"), LOG_WARNING, "level names map to priorities");
	is_int(log_level_from_name("loud"), -1, "an unknown level name is -1");
	unlink(path);
	return tap_done();
}
