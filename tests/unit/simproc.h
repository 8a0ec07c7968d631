/*
 * simproc.h: the simulator (lienthong-sim) as a child process of a unit test,
 * so that connectors and the HTTP core are tested against a real server over
 * loopback. Shared by the unit tests that need the simulator (test_http,
 * test_adapter, and the connectors' tests to come).
 *
 * simproc_start() runs $BUILD/lienthong-sim ($BUILD defaults to "build") on
 * 127.0.0.1 with an ephemeral port, waits for the port file it writes in a
 * fresh /tmp directory and sets the simulator's base URL in s->url. The
 * simproc_get/post/json helpers talk to it synchronously with curl (not
 * through the code under test), typically to /_sim/faults, /_sim/stats and
 * the other /_sim/ control endpoints. simproc_stop() ends it and removes the
 * directory. The sd-event helpers run the test's loop until a callback counter
 * reaches a value (or any condition holds), or a deadline passes.
 *
 *	struct simproc s;
 *	const char *args[] = {"--seed", "7", NULL};
 *	if (simproc_start(&s, "test_x", args) == 0) {
 *		... point the code under test at s.url, submit, then ...
 *		ok(simproc_run_until(ev, &n, 1, 5000), "the call completes");
 *		simproc_faults(&s, "{\"reset\":true,\"down\":true}");
 *		is_int(simproc_stat(&s, "requests_total"), 1, "one request reached it");
 *	} else {
 *		ok(0, "the simulator starts ($BUILD/lienthong-sim)");
 *	}
 *	simproc_stop(&s);
 *
 * Everything here is static inline: each test is one translation unit and
 * uses only some of it. Diagnostics go to stdout as TAP comments ("# ..."),
 * since some tests capture stderr. Needs libcurl, jansson, libsystemd and
 * daemon/util.h (-Idaemon), all of which unit tests link anyway.
 */
#ifndef LT_SIMPROC_H
#define LT_SIMPROC_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "util.h"

/* Arguments a test may add after the fixed ones (--listen, --port-file). */
#define SIMPROC_MAX_ARGS 24
/* How long simproc_start waits for the port file. */
#define SIMPROC_START_TIMEOUT_MS 5000
/* Bound on an answer to simproc_json, and its timeout. */
#define SIMPROC_MAX_ANSWER_BYTES   (1 << 20)
#define SIMPROC_REQUEST_TIMEOUT_MS 5000L

struct simproc {
	pid_t pid;    /* 0 when not running */
	char dir[64]; /* the mkdtemp directory holding "port" and "sim.log"; "" if none */
	char url[64]; /* "http://127.0.0.1:PORT", without a trailing slash */
};

/* Shows the first lines of the simulator's log as TAP comments: simproc_stop
 * removes the file. */
static inline void simproc_print_log(const char *log)
{
	char *text = NULL;
	size_t len = 0;
	const char *line;
	int shown = 0;

	if (!log || read_file_bounded(log, 1 << 20, &text, &len) < 0)
		return;
	for (line = text; *line && shown < 20; shown++) {
		size_t n = strcspn(line, "\n");
		printf("#   %.*s\n", (int)n, line);
		line += n + (line[n] == '\n');
	}
	free(text);
}

/*
 * Starts the simulator with args (NULL-terminated, may be NULL; e.g. "--seed",
 * "7") after "--listen 127.0.0.1:0 --port-file DIR/port"; its stdout and
 * stderr go to DIR/sim.log. name (short: it goes into the directory name) says
 * which test it belongs to. Returns 0 once it listens, or a negative errno
 * (-ETIMEDOUT: no port in time, -ECHILD: it exited, -E2BIG: too many args)
 * after printing why and the start of the simulator's log as TAP comments.
 * Call simproc_stop(s) afterwards either way.
 */
static inline int simproc_start(struct simproc *s, const char *name, const char *const *args)
{
	const char *build = getenv("BUILD");
	char *bin = xasprintf("%s/lienthong-sim", build && *build ? build : "build");
	char *pf = NULL, *log = NULL, *port = NULL, *exec_failed = NULL;
	const char *argv[5 + SIMPROC_MAX_ARGS + 1]; /* 5: bin and the fixed options */
	size_t n = 0;
	int r = -ETIMEDOUT;

	memset(s, 0, sizeof(*s));
	snprintf(s->dir, sizeof(s->dir), "/tmp/%s.XXXXXX", name);
	if (!mkdtemp(s->dir)) {
		r = -errno;
		s->dir[0] = '\0';
		goto out;
	}
	pf = xasprintf("%s/port", s->dir);
	log = xasprintf("%s/sim.log", s->dir);
	argv[n++] = bin;
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--port-file";
	argv[n++] = pf;
	for (size_t i = 0; args && args[i]; i++) {
		if (n >= LT_ARRAY_SIZE(argv) - 1) {
			r = -E2BIG;
			goto out;
		}
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	exec_failed = xasprintf("cannot execute %s\n", bin); /* the child only writes */
	s->pid = fork();
	if (s->pid < 0) {
		r = -errno;
		s->pid = 0;
		goto out;
	}
	if (s->pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(bin, (char *const *)argv);
		ssize_t w = write(2, exec_failed, strlen(exec_failed));
		(void)w;
		_exit(127);
	}
	for (int i = 0; i < SIMPROC_START_TIMEOUT_MS / 10; i++) {
		size_t len;
		if (read_file_bounded(pf, 64, &port, &len) == 0 && len > 0)
			break;
		free(port);
		port = NULL;
		if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
			s->pid = 0;
			r = -ECHILD;
			goto out;
		}
		usleep(10000);
	}
	if (!port)
		goto out;
	snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", atoi(port));
	r = 0;
out:
	if (r < 0) {
		printf("# cannot start %s: %s\n", bin,
		       r == -ECHILD	 ? "it exited"
		       : r == -ETIMEDOUT ? "no port file in time"
					 : strerror(-r));
		simproc_print_log(log);
	}
	free(exec_failed);
	free(bin);
	free(pf);
	free(log);
	free(port);
	return r;
}

/* Ends the simulator (SIGTERM, then waits for it) and removes its directory.
 * Safe after a failed simproc_start and when called twice. */
static inline void simproc_stop(struct simproc *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
	if (s->dir[0]) {
		char *p = xasprintf("%s/port", s->dir);
		unlink(p);
		free(p);
		p = xasprintf("%s/sim.log", s->dir);
		unlink(p);
		free(p);
		rmdir(s->dir);
		s->dir[0] = '\0';
	}
}

static inline size_t simproc_collect(char *p, size_t size, size_t nmemb, void *ud)
{
	/* a short count makes curl stop: the answer is over its bound */
	return dynbuf_add(ud, p, size * nmemb) == 0 ? size * nmemb : 0;
}

/*
 * Synchronous request to the simulator at s->url + path: a POST of post_body
 * when it is not NULL, a GET otherwise. Returns the parsed JSON answer (the
 * caller's reference), or NULL when there is no answer or it is not JSON
 * (whatever the HTTP status).
 */
static inline json_t *simproc_json(const struct simproc *s, const char *path, const char *post_body)
{
	struct dynbuf b;
	json_t *j = NULL;
	char *url = xasprintf("%s%s", s->url, path);
	CURL *e = curl_easy_init();

	dynbuf_init(&b, SIMPROC_MAX_ANSWER_BYTES);
	if (!e)
		goto out;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, simproc_collect);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, SIMPROC_REQUEST_TIMEOUT_MS);
	if (post_body)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, post_body);
	if (curl_easy_perform(e) == CURLE_OK && b.data)
		j = json_loads(b.data, 0, NULL);
out:
	curl_easy_cleanup(e);
	dynbuf_free(&b);
	free(url);
	return j;
}

/* GET path; as simproc_json. */
static inline json_t *simproc_get(const struct simproc *s, const char *path)
{
	return simproc_json(s, path, NULL);
}

/* POSTs json to path (e.g. "/_sim/expire-sessions", "{}") and drops the answer.
 * Returns 0 if a JSON answer came back, -EIO otherwise. */
static inline int simproc_post(const struct simproc *s, const char *path, const char *json)
{
	json_t *j = simproc_json(s, path, json);
	int r = j ? 0 : -EIO;
	json_decref(j);
	return r;
}

/* Sets the simulator's faults (POST /_sim/faults; "reset":true first clears all earlier ones). */
static inline int simproc_faults(const struct simproc *s, const char *json)
{
	return simproc_post(s, "/_sim/faults", json);
}

/* One integer counter of GET /_sim/stats (0 if absent), or -1 without an answer. */
static inline long long simproc_stat(const struct simproc *s, const char *key)
{
	json_t *j = simproc_get(s, "/_sim/stats");
	long long v = j ? json_integer_value(json_object_get(j, key)) : -1;
	json_decref(j);
	return v;
}

/* ---- the test's event loop --------------------------------------------- */

/* Runs ev until cond(ud) holds (true) or timeout_ms pass (false). cond is
 * checked before each turn, so a condition that already holds runs nothing. */
static inline bool simproc_run_until_fn(sd_event *ev, bool (*cond)(void *ud), void *ud,
					int64_t timeout_ms)
{
	uint64_t end = now_mono_us() + (uint64_t)timeout_ms * 1000;
	while (!cond(ud)) {
		if (now_mono_us() >= end)
			return false;
		sd_event_run(ev, 20000);
	}
	return true;
}

struct simproc_count {
	const int *counter;
	int want;
};

static inline bool simproc_count_reached(void *ud)
{
	const struct simproc_count *c = ud;
	return *c->counter >= c->want;
}

/* Runs ev until *counter (typically incremented by done callbacks) reaches
 * want (true) or timeout_ms pass (false). */
static inline bool simproc_run_until(sd_event *ev, const int *counter, int want, int64_t timeout_ms)
{
	struct simproc_count c = {counter, want};
	return simproc_run_until_fn(ev, simproc_count_reached, &c, timeout_ms);
}

/* Runs ev for ms milliseconds whatever happens (to let timers fire, or to
 * show that nothing does). */
static inline void simproc_run_for(sd_event *ev, int64_t ms)
{
	uint64_t end = now_mono_us() + (uint64_t)ms * 1000;
	while (now_mono_us() < end)
		sd_event_run(ev, 5000);
}

#endif
