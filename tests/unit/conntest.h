/*
 * conntest.h: what a connector's unit test needs to build real instances of
 * its connector type the way the daemon does: a small config file written
 * into a fresh /tmp directory, read through conf_load, and conn_new on a
 * struct daemon that has an sd-event loop and the HTTP core. Shared by
 * test_csdl, test_provincial, test_dvcqg and the connectors' tests to come
 * (paygov, ...). Talking to the simulator is simproc.h's part.
 *
 * It also keeps the lifecycle bookkeeping every connector test makes: a
 * completion must never run from inside the call that submitted it, so the
 * test sets ct.in_call around each call and each completion calls
 * conntest_completion(), which counts the ones that came from inside;
 * conntest_stop() checks that count and that the HTTP core is empty.
 *
 *	static struct conntest ct;
 *	static char *keys_for(const char *url, const char *extra)
 *	{
 *		return xasprintf("url = %s\npassword = %s/pw\n%s", url, ct.dir,
 *				 extra ? extra : "");
 *	}
 *	static void on_x(struct conn *c, ..., void *ud) { conntest_completion(&ct); ... }
 *	...
 *	if (conntest_start(&ct, "x", "x", "national", keys_for) < 0)
 *		return 1;
 *	conntest_write(&ct, "pw", PASSWORD);
 *	if (conntest_make(&ct, &t, s.url, "timeout = 1s\n")) {
 *		ct.in_call = true;
 *		rc = ops()->call(t.c, on_x, &r);
 *		ct.in_call = false;
 *		conntest_await(&ct, rc, "call", &r.calls, 10000);
 *		conntest_conn_free(&t);
 *	}
 *	...
 *	conntest_stop(&ct);
 *	return tap_done();
 *
 * Everything here is static inline: each test is one translation unit and
 * uses only some of it. Diagnostics go to stdout as TAP comments, since some
 * tests capture stderr. Needs tap.h and simproc.h, and links with the
 * daemon's objects as the connector tests do anyway.
 */
#ifndef LT_CONNTEST_H
#define LT_CONNTEST_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "conf.h"
#include "connector.h"
#include "daemon.h"
#include "http.h"
#include "simproc.h"
#include "tap.h"
#include "util.h"

struct conntest {
	char dir[64];	   /* the mkdtemp directory for config and secret files */
	struct daemon dmn; /* ev and http set by conntest_start, the rest zero */
	const char *type;  /* the connector type under test, e.g. "csdl" */
	const char *name;  /* the instance name: [connector.NAME] */
	/* The keys of a working instance on the server at url, plus extra (may be
	 * NULL); the caller frees the result. Used by conntest_make. */
	char *(*keys_for)(const char *url, const char *extra);
	bool in_call;	   /* set by the test while a connector call runs */
	int called_inside; /* completions that came while in_call was set */
};

/* stderr captured to a file: conntest_log_start and conntest_log_end. */
struct conntest_log {
	char path[64];
	int fd, saved_err;
};

/* One instance and the config it was made from. */
struct conntest_conn {
	struct config *cfg;
	struct conn *c;
};

static inline bool conntest_contains(const char *s, const char *sub)
{
	return s && strstr(s, sub);
}

/*
 * Makes the directory /tmp/lt-TAG-XXXXXX, the loop and the HTTP core, for
 * instances of type named name. Returns 0, or negative (said as "Bail out!").
 */
static inline int conntest_start(struct conntest *ct, const char *tag, const char *type,
				 const char *name, char *(*keys_for)(const char *, const char *))
{
	memset(ct, 0, sizeof(*ct));
	ct->type = type;
	ct->name = name;
	ct->keys_for = keys_for;
	snprintf(ct->dir, sizeof(ct->dir), "/tmp/lt-%s-XXXXXX", tag);
	if (!mkdtemp(ct->dir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return -errno;
	}
	if (sd_event_new(&ct->dmn.ev) < 0) {
		printf("Bail out! sd_event_new\n");
		return -ENOMEM;
	}
	ct->dmn.http = http_core_new(ct->dmn.ev);
	return 0;
}

/* Writes text to the file name of the directory (a secret: mode 0600). */
static inline void conntest_write(const struct conntest *ct, const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", ct->dir, name);
	write_file_atomic(path, text, strlen(text), 0600);
	free(path);
}

/*
 * Writes a config with [connector.NAME] type = TYPE plus keys, loads it and
 * makes the instance in *t. Returns 0, or negative with *err (caller frees).
 */
static inline int conntest_conn_new(struct conntest *ct, struct conntest_conn *t, const char *keys,
				    bool check_only, char **err)
{
	struct conf_errors errs = {0};
	char *path = xasprintf("%s/lienthong.conf", ct->dir);
	char *text = xasprintf("[daemon]\nlog_level = debug\n\n"
			       "[connector.%s]\ntype = %s\n%s\n",
			       ct->name, ct->type, keys);
	const struct conf_connector *cc;
	int r;

	memset(t, 0, sizeof(*t));
	*err = NULL;
	write_file_atomic(path, text, strlen(text), 0600);
	r = conf_load(path, &t->cfg, &errs);
	if (r < 0) {
		*err = conf_errors_join(&errs);
		goto out;
	}
	cc = conf_connector_find(t->cfg, ct->name);
	r = cc ? conn_new(&ct->dmn, cc, check_only, &t->c, err) : -ENOENT;
	if (r < 0) {
		conf_free(t->cfg);
		t->cfg = NULL;
	}
out:
	conf_errors_free(&errs);
	free(text);
	free(path);
	return r;
}

static inline void conntest_conn_free(struct conntest_conn *t)
{
	conn_unref(t->c);
	conf_free(t->cfg);
	memset(t, 0, sizeof(*t));
}

/* A working instance on the server at url with ct->keys_for(url, extra), or a
 * failed check naming why. Returns whether *t was made. */
static inline bool conntest_make(struct conntest *ct, struct conntest_conn *t, const char *url,
				 const char *extra)
{
	char *err = NULL, *keys = ct->keys_for(url, extra);
	int r = conntest_conn_new(ct, t, keys, false, &err);
	if (r < 0)
		ok(0, "a %s connector with %s (%s)", ct->type, extra ? extra : "defaults",
		   err ? err : "?");
	free(err);
	free(keys);
	return r == 0;
}

/* Checks that keys are refused in check-only mode with an error naming want.
 * The check is named "refused: LABEL(the error)". */
static inline void conntest_refused(struct conntest *ct, const char *keys, const char *want,
				    const char *label)
{
	struct conntest_conn t;
	char *err = NULL;
	int r = conntest_conn_new(ct, &t, keys, true, &err);

	ok(r < 0 && conntest_contains(err, want), "refused: %s(%s)", label, err ? err : "accepted");
	if (r == 0)
		conntest_conn_free(&t);
	free(err);
}

/* Checks that keys make an instance in check-only mode that acquires nothing
 * (no private state). *t stays for more checks: the caller frees it, made or
 * not. Returns whether it was made. */
static inline bool conntest_check_only(struct conntest *ct, struct conntest_conn *t,
				       const char *keys)
{
	char *err = NULL;
	bool made = conntest_conn_new(ct, t, keys, true, &err) == 0;

	ok(made && t->c && !t->c->priv, "check-only mode validates and acquires nothing (%s)",
	   err ? err : "no error");
	free(err);
	return made;
}

/* Called first by every completion: counts the ones that came from inside a call. */
static inline void conntest_completion(struct conntest *ct)
{
	if (ct->in_call)
		ct->called_inside++;
}

/*
 * After a call named what that returned rc: runs the loop until *calls (the
 * count its completion keeps) is 1 or more, timeout_ms at most. Returns
 * whether it is; says why not as a TAP comment.
 */
static inline bool conntest_await(struct conntest *ct, int rc, const char *what, const int *calls,
				  int64_t timeout_ms)
{
	if (rc < 0) {
		printf("# %s: %s\n", what, strerror(-rc));
		return false;
	}
	if (!simproc_run_until(ct->dmn.ev, calls, 1, timeout_ms)) {
		printf("# %s did not complete\n", what);
		return false;
	}
	return true;
}

/*
 * Sends stderr (where the log goes with LOG_TARGET_STDERR) to a fresh file
 * until conntest_log_end, so that a test can check what was logged: that
 * secrets and citizens' data never are. Call it before log_setup.
 */
static inline void conntest_log_start(struct conntest_log *lg, const char *tag)
{
	snprintf(lg->path, sizeof(lg->path), "/tmp/test_%s.log.XXXXXX", tag);
	lg->fd = mkstemp(lg->path);
	lg->saved_err = dup(2);
	if (lg->fd >= 0)
		dup2(lg->fd, 2);
}

/*
 * Gives stderr back and returns what was logged (the caller frees it), with
 * a check that it holds marker: then the log was captured. Returns NULL, as
 * a failed check, when the file cannot be read. With TEST_DEBUG set in the
 * environment the log is shown.
 */
static inline char *conntest_log_end(struct conntest_log *lg, const char *marker)
{
	char *logged = NULL;
	size_t len = 0;

	fflush(stderr);
	dup2(lg->saved_err, 2);
	if (read_file_bounded(lg->path, 64 << 20, &logged, &len) == 0) {
		ok(len > 0 && conntest_contains(logged, marker), "the log was captured (%zu bytes)",
		   len);
		if (getenv("TEST_DEBUG"))
			fputs(logged, stderr);
	} else {
		ok(0, "the log was captured");
	}
	unlink(lg->path);
	close(lg->fd);
	close(lg->saved_err);
	return logged;
}

/*
 * Checks that no completion ever came from inside a call and that nothing
 * is left in the HTTP core, then frees the loop and removes the directory.
 */
static inline void conntest_stop(struct conntest *ct)
{
	is_int(ct->called_inside, 0, "no completion ever came from inside a call");
	is_int(http_core_pending(ct->dmn.http), 0, "nothing pending at the end");
	http_core_free(ct->dmn.http);
	ct->dmn.http = NULL;
	ct->dmn.ev = sd_event_unref(ct->dmn.ev);
	char *cmd = xasprintf("rm -rf '%s'", ct->dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", ct->dir);
	free(cmd);
}

#endif
