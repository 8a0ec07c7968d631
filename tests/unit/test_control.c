/*
 * test_control: the control socket on a real sd-event loop, with real UNIX
 * sockets in a temporary directory, a struct daemon with no connectors, no
 * flows and no store, and the client call lienthongctl uses.
 *
 * The daemon's loop is single-threaded, so the test drives it: raw clients
 * are non-blocking sockets read between sd_event_run() steps, and calls of
 * the blocking ctl_client_call() run in a forked child (also the way to be
 * an unprivileged peer: SO_PEERCRED records the credentials at connect time,
 * so the child drops them before connecting).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "conf.h"
#include "control.h"
#include "daemon.h"
#include "log.h"
#include "tap.h"
#include "util.h"

#define NOBODY 65534

#ifndef LT_VERSION
#define LT_VERSION "unknown"
#endif

static struct daemon *d;
static char dir[] = "/tmp/lt-test-control-XXXXXX";

/* Runs the daemon's loop for about ms. */
static void pump(int ms)
{
	uint64_t end = now_mono_us() + (uint64_t)ms * 1000u;
	while (now_mono_us() < end)
		sd_event_run(d->ev, 2000);
}

/* ---- raw clients --------------------------------------------------------- */

static int raw_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void raw_send(int fd, const char *s)
{
	size_t off = 0, len = strlen(s);
	while (off < len) {
		ssize_t n = send(fd, s + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0)
			off += (size_t)n;
		else if (n < 0 && errno == EAGAIN)
			sd_event_run(d->ev, 2000);
		else
			return;
	}
}

/*
 * Reads one answer line while serving the loop. Returns the parsed answer
 * (new ref), or NULL on EOF/reset or after timeout_ms; *closed tells EOF.
 * Reads byte by byte so that pipelined answers stay in the socket.
 */
static json_t *raw_answer(int fd, int timeout_ms, bool *closed)
{
	struct dynbuf b;
	uint64_t end = now_mono_us() + (uint64_t)timeout_ms * 1000u;
	json_t *j = NULL;
	dynbuf_init(&b, 1 << 20);
	if (closed)
		*closed = false;
	while (now_mono_us() < end) {
		char c;
		ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
		if (n == 1) {
			if (c == '\n') {
				j = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
				break;
			}
			dynbuf_add(&b, &c, 1);
			continue;
		}
		if (n == 0 || (n < 0 && errno != EAGAIN)) {
			if (closed)
				*closed = true;
			break;
		}
		sd_event_run(d->ev, 2000);
	}
	dynbuf_free(&b);
	return j;
}

/* Sends one line and returns the answer (new ref) or NULL. */
static json_t *raw_call(int fd, const char *line)
{
	raw_send(fd, line);
	return raw_answer(fd, 3000, NULL);
}

/* True when the server closes fd within timeout_ms (nothing else must arrive). */
static bool raw_closed_within(int fd, int timeout_ms)
{
	bool closed;
	json_t *j = raw_answer(fd, timeout_ms, &closed);
	json_decref(j);
	return closed && !j;
}

static const char *ans_code(json_t *a)
{
	return json_string_value(json_object_get(a, "code"));
}

static const char *ans_error(json_t *a)
{
	const char *s = json_string_value(json_object_get(a, "error"));
	return s ? s : "";
}

static bool ans_ok(json_t *a)
{
	return json_is_true(json_object_get(a, "ok")) &&
	       json_integer_value(json_object_get(a, "v")) == CTL_PROTO_VERSION;
}

/* ---- calls from a child process ------------------------------------------ */

struct child_call {
	int rc;
	json_t *answer; /* owned */
	char *err;	/* owned */
};

/*
 * ctl_client_call(cmd) in a forked child, optionally as nobody, while the
 * parent serves the loop. The child reports "rc\nanswer-or-error".
 */
static void child_call(const char *path, const char *cmd, json_t *args, bool as_nobody,
		       struct child_call *out)
{
	int p[2];
	struct dynbuf b;
	memset(out, 0, sizeof(*out));
	out->rc = -999;
	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		json_t *ans = NULL;
		char *err = NULL, *text;
		int r;
		close(p[0]);
		if (as_nobody && (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
				  setresuid(NOBODY, NOBODY, NOBODY) < 0))
			_exit(2);
		r = ctl_client_call(path, cmd, args, 5000, &ans, &err);
		text = ans ? json_dumps(ans, JSON_COMPACT) : NULL;
		dprintf(p[1], "%d\n%s", r, text ? text : err ? err : "");
		_exit(0);
	}
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return;
	}
	dynbuf_init(&b, 1 << 20);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	uint64_t end = now_mono_us() + 10 * 1000000u;
	while (now_mono_us() < end) {
		char chunk[4096];
		ssize_t n = read(p[0], chunk, sizeof(chunk));
		if (n > 0) {
			dynbuf_add(&b, chunk, (size_t)n);
			continue;
		}
		if (n == 0)
			break;
		sd_event_run(d->ev, 2000);
	}
	close(p[0]);
	waitpid(pid, NULL, 0);
	if (b.data) {
		char *nl = strchr(b.data, '\n');
		out->rc = atoi(b.data);
		if (nl && out->rc == 0)
			out->answer = json_loads(nl + 1, 0, NULL);
		else if (nl)
			out->err = xstrdup(nl + 1);
	}
	dynbuf_free(&b);
}

static void child_call_free(struct child_call *c)
{
	json_decref(c->answer);
	free(c->err);
}

/* ---- helpers ------------------------------------------------------------- */

static char *path_in(const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

static int file_mode(const char *path, bool *is_sock)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return -1;
	if (is_sock)
		*is_sock = S_ISSOCK(st.st_mode);
	return (int)(st.st_mode & 07777);
}

/* Every sample line's family was declared by a # TYPE line before it. */
static bool metrics_well_formed(const char *text, char **bad)
{
	char *copy = xstrdup(text), *save = NULL;
	struct dynbuf types;
	bool good = true;
	dynbuf_init(&types, 0);
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[256];
		if (str_startswith(line, "# TYPE ")) {
			sscanf(line + 7, "%255s", name);
			dynbuf_printf(&types, " %s ", name);
			continue;
		}
		if (line[0] == '#')
			continue;
		size_t n = strcspn(line, "{ ");
		snprintf(name, sizeof(name), " %.*s ", (int)LT_MIN(n, 200), line);
		bool found = types.data && strstr(types.data, name);
		for (const char *suf = "_bucket\0_sum\0_count\0"; !found && *suf;
		     suf += strlen(suf) + 1) {
			size_t sl = strlen(suf);
			if (n > sl && strncmp(line + n - sl, suf, sl) == 0) {
				snprintf(name, sizeof(name), " %.*s ", (int)(n - sl), line);
				found = types.data && strstr(types.data, name);
			}
		}
		if (!found || !strchr(line, ' ')) {
			*bad = xstrdup(line);
			good = false;
			break;
		}
	}
	dynbuf_free(&types);
	free(copy);
	return good;
}

static struct conf_control ctl_opts(const char *path, int mode, const char *group)
{
	struct conf_control o = {
		.path = (char *)path,
		.mode = mode,
		.group = (char *)group,
		.max_clients = 3,
		.max_request_bytes = 1024,
		.idle_timeout_ms = 400,
	};
	return o;
}

/* ---- the tests ----------------------------------------------------------- */

static void test_socket_file(void)
{
	char *path = path_in("a.sock"), *err = NULL;
	struct conf_control o = ctl_opts(path, 0640, NULL);
	struct control *c = NULL, *c2 = NULL;
	bool is_sock = false;
	int r;

	r = control_new(d, &o, &c, &err);
	is_int(r, 0, "control_new binds a socket (%s)", err ? err : "no error");
	free(err), err = NULL;
	is_int(file_mode(path, &is_sock), 0640, "the socket file gets the configured mode 0640");
	ok(is_sock, "the control path is a socket");

	r = control_new(d, &o, &c2, &err);
	is_int(r, -EADDRINUSE, "a second daemon on the same live socket is refused");
	ok(err && strstr(err, "in use"), "the refusal says the socket is in use: %s",
	   err ? err : "(null)");
	ok(!c2, "no control object after a failure");
	free(err), err = NULL;

	control_free(c);
	ok(access(path, F_OK) < 0 && errno == ENOENT, "control_free removes the socket file");

	/* A socket file left behind by a crashed daemon is replaced. */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ok(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "stale socket created");
	close(fd);
	r = control_new(d, &o, &c, &err);
	is_int(r, 0, "a stale socket file from a previous run is replaced (%s)",
	       err ? err : "no error");
	free(err), err = NULL;
	control_free(c);
	c = NULL;

	/* Anything else at the path is not ours to remove. */
	ok(write_file_atomic(path, "keep me", 7, 0600) == 0, "regular file created at the path");
	r = control_new(d, &o, &c, &err);
	ok(r < 0 && !c, "control_new refuses to replace a regular file");
	ok(err && strstr(err, "not a socket"), "the error says it is not a socket: %s",
	   err ? err : "(null)");
	free(err), err = NULL;
	char *content = NULL;
	size_t len = 0;
	ok(read_file_bounded(path, 100, &content, &len) == 0 && len == 7 &&
		   memcmp(content, "keep me", 7) == 0,
	   "the regular file is left untouched");
	free(content);
	unlink(path);

	/* An unknown group is a configuration error, not a silently open socket. */
	o.group = "lt-no-such-group-x";
	r = control_new(d, &o, &c, &err);
	ok(r < 0 && !c, "an unknown [control] group is an error");
	ok(err && strstr(err, "lt-no-such-group-x"), "the error names the group: %s",
	   err ? err : "(null)");
	ok(access(path, F_OK) < 0, "no socket file is left after the group error");
	free(err), err = NULL;
	free(path);

	/* The parent directory (RuntimeDirectory outside systemd) is created. */
	path = path_in("run/lienthong/c.sock");
	o = ctl_opts(path, 0600, NULL);
	r = control_new(d, &o, &c, &err);
	is_int(r, 0, "control_new creates a missing parent directory (%s)", err ? err : "no error");
	free(err), err = NULL;
	char *parent = path_in("run/lienthong");
	is_int(file_mode(parent, NULL), 0755, "the created directory has mode 0755");
	is_int(file_mode(path, NULL), 0600, "the socket file gets the configured mode 0600");
	control_free(c);
	free(parent);
	free(path);
}

static void test_table(void)
{
	size_t n = 0;
	bool good = true;
	for (const struct ctl_command *c = ctl_commands; c->name; c++, n++) {
		if (!c->handler || !c->help || !*c->help || !c->usage ||
		    strncmp(c->usage, c->name, strlen(c->name)) != 0)
			good = false;
	}
	ok(n >= 9, "the command table lists the commands (%zu)", n);
	ok(good, "every command has a handler, help, and a usage starting with its name");
}

static void test_basic_commands(const char *path)
{
	int fd = raw_connect(path);
	json_t *a;
	ok(fd >= 0, "a client connects to the socket");

	a = raw_call(fd, "{\"v\":1,\"cmd\":\"version\"}\n");
	ok(ans_ok(a), "version answers ok");
	is_str(json_string_value(json_object_get(json_object_get(a, "result"), "version")),
	       LT_VERSION, "version reports the build's version");
	is_int(json_integer_value(json_object_get(json_object_get(a, "result"), "protocol")), 1,
	       "version reports protocol 1");
	json_decref(a);

	a = raw_call(fd, "{\"v\":1,\"cmd\":\"help\",\"args\":{}}\n");
	ok(ans_ok(a), "help answers ok");
	size_t i, seen = 0;
	json_t *c;
	const char *pause_level = NULL, *status_level = NULL;
	json_array_foreach (json_object_get(json_object_get(a, "result"), "commands"), i, c) {
		const char *name = json_string_value(json_object_get(c, "name"));
		seen++;
		if (name && !strcmp(name, "pause"))
			pause_level = json_string_value(json_object_get(c, "level"));
		if (name && !strcmp(name, "status"))
			status_level = json_string_value(json_object_get(c, "level"));
	}
	size_t n = 0;
	while (ctl_commands[n].name)
		n++;
	is_int(seen, n, "help lists every command of the table");
	is_str(pause_level, "write", "help marks pause as a write command");
	is_str(status_level, "read", "help marks status as a read command");
	json_decref(a);

	if (d->cfg) {
		a = raw_call(fd, "{\"v\":1,\"cmd\":\"status\"}\n");
		ok(ans_ok(a) && json_is_object(json_object_get(a, "result")),
		   "status answers ok with an object");
		json_decref(a);
	}

	a = raw_call(fd, "{\"v\":1,\"cmd\":\"metrics\"}\n");
	const char *text = json_string_value(json_object_get(json_object_get(a, "result"), "text"));
	ok(ans_ok(a) && text, "metrics answers ok with a text");
	ok(text && strstr(text, "\nlienthong_up 1\n"), "metrics has lienthong_up 1");
	ok(text && strstr(text, "\nlienthong_control_clients 1\n"),
	   "metrics counts this connected client");
	ok(text && strstr(text, "lienthong_build_info{version=\"" LT_VERSION "\"} 1"),
	   "metrics has the build info with the version label");
	ok(text && strstr(text, "lienthong_config_reloads_total{result=\"failed\"} 0"),
	   "metrics has the failed reloads counter");
	char *bad = NULL;
	ok(text && metrics_well_formed(text, &bad), "every metric sample has a TYPE line first%s%s",
	   bad ? ": " : "", bad ? bad : "");
	free(bad);
	json_decref(a);

	/* Malformed input is answered and the connection stays usable. */
	a = raw_call(fd, "{\"v\":1,\"cmd\":\n");
	ok(a && !ans_ok(a), "a request that is not JSON gets an error answer");
	is_str(ans_code(a), "EINVAL", "not JSON -> EINVAL");
	json_decref(a);
	a = raw_call(fd, "{\"v\":2,\"cmd\":\"status\"}\n");
	is_str(ans_code(a), "EPROTO", "protocol version 2 -> EPROTO");
	ok(strstr(ans_error(a), "version 1") != NULL, "the EPROTO error names version 1: %s",
	   ans_error(a));
	json_decref(a);
	a = raw_call(fd, "{\"cmd\":\"status\"}\n");
	is_str(ans_code(a), "EPROTO", "a request without a version -> EPROTO");
	json_decref(a);
	a = raw_call(fd, "{\"v\":1,\"cmd\":\"frobnicate\"}\n");
	is_str(ans_code(a), "ENOENT", "an unknown command -> ENOENT");
	ok(strstr(ans_error(a), "help") != NULL, "the ENOENT error points to help: %s",
	   ans_error(a));
	json_decref(a);
	a = raw_call(fd, "{\"v\":1,\"cmd\":\"status\",\"args\":[1]}\n");
	is_str(ans_code(a), "EINVAL", "args that are not an object -> EINVAL");
	json_decref(a);
	a = raw_call(fd, "[1,2]\n");
	is_str(ans_code(a), "EINVAL", "a JSON value that is not an object -> EINVAL");
	json_decref(a);

	/* We run as root or as ourselves: privileged. */
	a = raw_call(fd, "{\"v\":1,\"cmd\":\"pause\",\"args\":{\"flow\":\"nope\"}}\n");
	is_str(ans_code(a), "ENOENT", "a privileged pause of an unknown flow -> ENOENT");
	ok(strstr(ans_error(a), "nope") != NULL, "the error names the flow: %s", ans_error(a));
	json_decref(a);
	a = raw_call(fd, "{\"v\":1,\"cmd\":\"run\",\"args\":{}}\n");
	is_str(ans_code(a), "EINVAL", "run without a flow -> EINVAL");
	json_decref(a);
	a = raw_call(fd, "{\"v\":1,\"cmd\":\"resume\",\"args\":{\"args\":[\"nope\"]}}\n");
	is_str(ans_code(a), "ENOENT", "a positional flow argument is understood too");
	json_decref(a);

	a = raw_call(fd, "\n\r\n{\"v\":1,\"cmd\":\"version\"}\r\n");
	ok(ans_ok(a), "blank lines are skipped and CRLF is accepted");
	json_decref(a);
	close(fd);
}

static void test_pipelining(const char *path)
{
	int fd = raw_connect(path);
	json_t *a[5];
	raw_send(fd, "{\"v\":1,\"cmd\":\"version\"}\n"
		     "not json\n"
		     "{\"v\":7,\"cmd\":\"version\"}\n"
		     "{\"v\":1,\"cmd\":\"nope\"}\n"
		     "{\"v\":1,\"cmd\":\"help\"}\n");
	for (int i = 0; i < 5; i++)
		a[i] = raw_answer(fd, 3000, NULL);
	ok(ans_ok(a[0]) && json_object_get(json_object_get(a[0], "result"), "version"),
	   "pipelined request 1 (version) is answered first");
	is_str(ans_code(a[1]), "EINVAL", "pipelined request 2 (not JSON) is answered second");
	is_str(ans_code(a[2]), "EPROTO", "pipelined request 3 (version 7) is answered third");
	is_str(ans_code(a[3]), "ENOENT", "pipelined request 4 (unknown) is answered fourth");
	ok(ans_ok(a[4]) && json_object_get(json_object_get(a[4], "result"), "commands"),
	   "pipelined request 5 (help) is answered last");
	for (int i = 0; i < 5; i++)
		json_decref(a[i]);

	/* A request split over several writes is reassembled. */
	raw_send(fd, "{\"v\":1,");
	pump(20);
	raw_send(fd, "\"cmd\":\"version\"}\n");
	json_t *b = raw_answer(fd, 3000, NULL);
	ok(ans_ok(b), "a request arriving in pieces is answered");
	json_decref(b);
	close(fd);

	/* A client that half-closes after its request still gets the answer. */
	fd = raw_connect(path);
	raw_send(fd, "{\"v\":1,\"cmd\":\"version\"}");
	shutdown(fd, SHUT_WR);
	b = raw_answer(fd, 3000, NULL);
	ok(ans_ok(b), "a last request without newline before EOF is answered");
	json_decref(b);
	ok(raw_closed_within(fd, 2000), "the server closes after answering a half-closed client");
	close(fd);
}

static void test_limits(const char *path)
{
	/* Exactly max_request_bytes (1024) is fine. */
	struct dynbuf b;
	dynbuf_init(&b, 0);
	dynbuf_addstr(&b, "{\"v\":1,\"cmd\":\"version\",\"args\":{\"pad\":\"");
	while (b.len < 1024 - 3)
		dynbuf_add(&b, "x", 1);
	dynbuf_addstr(&b, "\"}}");
	is_int(b.len, 1024, "the padded request is 1024 bytes");
	dynbuf_add(&b, "\n", 1);
	int fd = raw_connect(path);
	json_t *a = raw_call(fd, b.data);
	ok(ans_ok(a), "a request of exactly max_request_bytes is answered");
	json_decref(a);
	close(fd);
	dynbuf_free(&b);

	/* One byte more is refused and the connection closed. */
	char big[4097];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	fd = raw_connect(path);
	a = raw_call(fd, big);
	is_str(ans_code(a), "E2BIG", "a request longer than max_request_bytes -> E2BIG");
	is_str(ans_error(a), "request longer than 1024 bytes", "the E2BIG error gives the limit");
	json_decref(a);
	ok(raw_closed_within(fd, 2000), "the connection is closed after E2BIG");
	close(fd);

	/* max_clients = 3: the fourth is told and dropped, the others stay. */
	for (int i = 0; i < 100 && control_clients(d->ctl) > 0; i++)
		pump(5);
	int fds[3];
	for (int i = 0; i < 3; i++)
		fds[i] = raw_connect(path);
	for (int i = 0; i < 100 && control_clients(d->ctl) < 3; i++)
		pump(5);
	is_int(control_clients(d->ctl), 3, "three clients are connected");
	int extra = raw_connect(path);
	bool closed = false;
	a = raw_answer(extra, 3000, &closed);
	is_str(ans_code(a), "EBUSY", "the client past max_clients gets an EBUSY answer");
	ok(strstr(ans_error(a), "3") != NULL, "the EBUSY error gives the limit: %s", ans_error(a));
	json_decref(a);
	ok(raw_closed_within(extra, 2000), "the client past max_clients is disconnected");
	close(extra);
	is_int(control_clients(d->ctl), 3, "the three accepted clients are kept");
	a = raw_call(fds[2], "{\"v\":1,\"cmd\":\"version\"}\n");
	ok(ans_ok(a), "an accepted client is still served at the limit");
	json_decref(a);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	for (int i = 0; i < 100 && control_clients(d->ctl) > 0; i++)
		pump(5);
	is_int(control_clients(d->ctl), 0, "closed clients are forgotten");

	/* idle_timeout = 400 ms. */
	fd = raw_connect(path);
	uint64_t t0 = now_mono_us();
	ok(raw_closed_within(fd, 3000), "an idle client is disconnected");
	uint64_t waited_ms = (now_mono_us() - t0) / 1000;
	ok(waited_ms >= 300 && waited_ms < 2500, "after about the idle timeout (%llu ms)",
	   (unsigned long long)waited_ms);
	close(fd);
}

static void test_client_call(const char *path)
{
	struct child_call cc;
	json_t *ans = NULL;
	char *err = NULL;
	int r;

	child_call(path, "version", NULL, false, &cc);
	is_int(cc.rc, 0, "ctl_client_call gets an answer (%s)", cc.err ? cc.err : "no error");
	ok(ans_ok(cc.answer), "ctl_client_call returns the ok answer");
	child_call_free(&cc);

	json_t *args = json_pack("{s:s}", "flow", "nope");
	child_call(path, "pause", args, false, &cc);
	is_int(cc.rc, 0, "an error answer is still a completed call");
	is_str(ans_code(cc.answer), "ENOENT", "ctl_client_call passes args (pause nope -> ENOENT)");
	child_call_free(&cc);

	char *missing = path_in("missing.sock");
	r = ctl_client_call(missing, "pause", args, 1000, &ans, &err);
	is_int(args->refcount, 1, "ctl_client_call borrows args (no reference taken or dropped)");
	json_decref(args);
	is_int(r, -ENOENT, "calling a missing socket fails with -ENOENT");
	ok(err && strstr(err, missing) && strstr(err, "is lienthongd running?"),
	   "the error names the socket and suggests the daemon is down: %s", err ? err : "");
	ok(!ans, "no answer on failure");
	free(err), err = NULL;
	free(missing);

	/* A socket nobody serves: the call gives up at the timeout. */
	char *mute = path_in("mute.sock");
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", mute);
	ok(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 4) == 0,
	   "a mute listening socket");
	uint64_t t0 = now_mono_us();
	r = ctl_client_call(mute, "status", NULL, 200, &ans, &err);
	uint64_t took_ms = (now_mono_us() - t0) / 1000;
	is_int(r, -ETIMEDOUT, "a daemon that does not answer -> -ETIMEDOUT");
	ok(took_ms >= 150 && took_ms < 2000, "after about timeout_ms (%llu ms)",
	   (unsigned long long)took_ms);
	ok(err && strstr(err, "200 ms"), "the timeout error says how long: %s", err ? err : "");
	free(err), err = NULL;
	close(fd);
	unlink(mute);
	free(mute);
}

static void test_unprivileged(const char *path)
{
	struct child_call cc;
	if (geteuid() != 0) {
		printf("# skip: unprivileged peer checks need root to switch to uid %d\n", NOBODY);
		return;
	}
	json_t *args = json_pack("{s:s}", "flow", "catalog");
	child_call(path, "pause", args, true, &cc);
	is_int(cc.rc, 0, "nobody can connect to a 0666 socket (%s)", cc.err ? cc.err : "ok");
	is_str(ans_code(cc.answer), "EPERM", "pause from an unprivileged peer -> EPERM");
	ok(strstr(ans_error(cc.answer), "command 'pause' needs root or the service user") != NULL,
	   "the EPERM error says who may: %s", ans_error(cc.answer));
	child_call_free(&cc);
	json_decref(args);

	child_call(path, "reload", NULL, true, &cc);
	is_str(ans_code(cc.answer), "EPERM", "reload from an unprivileged peer -> EPERM");
	child_call_free(&cc);

	child_call(path, d->cfg ? "status" : "version", NULL, true, &cc);
	ok(ans_ok(cc.answer), "an unprivileged peer may read (%s)", d->cfg ? "status" : "version");
	child_call_free(&cc);
}

/* Metrics of hand-built connector and flow records (escaping, per-object rows). */
static void test_metrics_objects(void)
{
	static const struct connector files_type = {.abi_version = CONN_ABI_VERSION,
						    .name = "files"};
	struct conn conn = {.type = &files_type, .name = (char *)"drop"};
	struct flow flow = {.name = (char *)"we\"ird\\name\nx"};
	struct conn *conns[] = {&conn};
	struct flow *flows[] = {&flow};

	conn.stats.ops_ok = 5;
	conn.stats.ops_fail = 2;
	flow.runs_ok = 3;
	flow.paused = true;
	flow.last_ok_ms = 1700000000500;
	flow.last_duration_us = 2500000;
	d->conns = conns;
	d->n_conns = 1;
	d->flows = flows;
	d->n_flows = 1;
	char *text = daemon_metrics_text(d);
	d->conns = NULL;
	d->n_conns = 0;
	d->flows = NULL;
	d->n_flows = 0;

	ok(strstr(text, "lienthong_connector_operations_total{connector=\"drop\",type=\"files\","
			"outcome=\"ok\"} 5\n") != NULL,
	   "connector operations by outcome, with connector and type labels");
	ok(strstr(text, "outcome=\"fail\"} 2\n") != NULL, "failed operations are counted");
	ok(strstr(text, "lienthong_http_") == NULL, "no HTTP metrics for a connector without HTTP");
	const char *esc = "flow=\"we\\\"ird\\\\name\\nx\"";
	char *want =
		xasprintf("lienthong_flow_runs_total{%s,type=\"unknown\",result=\"ok\"} 3\n", esc);
	ok(strstr(text, want) != NULL, "flow runs, with \\, \" and newline escaped in the label");
	free(want);
	want = xasprintf("lienthong_flow_paused{%s,type=\"unknown\"} 1\n", esc);
	ok(strstr(text, want) != NULL, "a paused flow has lienthong_flow_paused 1");
	free(want);
	want = xasprintf("lienthong_flow_last_success_timestamp_seconds{%s,type=\"unknown\"} "
			 "1700000000.5\n",
			 esc);
	ok(strstr(text, want) != NULL, "last success is a timestamp in seconds");
	free(want);
	want = xasprintf("lienthong_flow_last_duration_seconds{%s,type=\"unknown\"} 2.5\n", esc);
	ok(strstr(text, want) != NULL, "last duration is in seconds");
	free(want);
	const char *a = strstr(text, "# TYPE lienthong_flow_runs_total counter\n");
	ok(a && !strstr(a + 1, "# TYPE lienthong_flow_runs_total"),
	   "one TYPE line per family even with several label values");
	char *bad = NULL;
	ok(metrics_well_formed(text, &bad), "the per-object metrics are well formed%s%s",
	   bad ? ": " : "", bad ? bad : "");
	free(bad);
	free(text);
}

static void write_config(const char *path)
{
	char *text = xasprintf("[daemon]\nlog_level = warning\n\n"
			       "[store]\npath = %s/state.db\n\n"
			       "[control]\npath = %s/ctl.sock\nmode = 0666\n",
			       dir, dir);
	write_file_atomic(path, text, strlen(text), 0644);
	free(text);
}

int main(void)
{
	struct conf_errors errs = {0};
	struct control *ctl = NULL;
	char *err = NULL, *cfg_path, *path;
	sd_event *ev = NULL;

	log_setup(LOG_TARGET_STDERR, LOG_WARNING);
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(dir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	chmod(dir, 0755); /* nobody must reach the socket in it */

	d = xcalloc(1, sizeof(*d));
	ok(sd_event_new(&ev) >= 0, "an sd-event loop");
	d->ev = ev;
	d->start_mono_us = now_mono_us();
	d->start_wall_ms = now_wall_ms();
	cfg_path = path_in("lienthong.conf");
	write_config(cfg_path);
	d->config_path = cfg_path;
	ok(conf_load(cfg_path, &d->cfg, &errs) == 0, "a minimal config loads (for status)");
	if (errs.n)
		printf("# %s\n", errs.msgs[0]);
	conf_errors_free(&errs);

	test_table();
	test_socket_file();

	path = path_in("ctl.sock");
	struct conf_control o = ctl_opts(path, 0666, NULL);
	is_int(control_new(d, &o, &ctl, &err), 0, "the control socket for the protocol tests (%s)",
	       err ? err : "no error");
	free(err), err = NULL;
	d->ctl = ctl;
	is_int(file_mode(path, NULL), 0666, "the socket file gets the configured mode 0666");

	if (ctl) {
		test_basic_commands(path);
		test_pipelining(path);
		test_limits(path);
		test_client_call(path);
		test_unprivileged(path);
		test_metrics_objects();

		int fd = raw_connect(path);
		for (int i = 0; i < 100 && control_clients(ctl) < 1; i++)
			pump(5);
		control_free(ctl);
		d->ctl = NULL;
		ok(raw_closed_within(fd, 1000), "control_free disconnects its clients");
		close(fd);
		ok(access(path, F_OK) < 0, "control_free removes the socket file");
	}

	conf_free(d->cfg);
	sd_event_unref(ev);
	free(d);
	free(path);
	unlink(cfg_path);
	free(cfg_path);
	char *cmd = xasprintf("rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	free(cmd);
	return tap_done();
}
