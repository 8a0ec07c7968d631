/*
 * test_tls: the HTTP core's TLS options (tls_verify, ca_file, client_cert,
 * client_key) against real TLS servers over loopback, on a real sd-event
 * loop. At the start a throwaway PKI is made with the openssl command in a
 * fresh /tmp directory: a CA, a server certificate for 127.0.0.1 (SAN
 * IP:127.0.0.1) and a client certificate signed by it, and an unrelated
 * self-signed "wrong" CA. `openssl s_server -www` children serve it: one
 * plain, one demanding a client certificate of the CA (-Verify 1), one that
 * logs the ALPN protocols the client offers. -www answers a GET with an
 * HTTP/1.0 200 status page (which shows the client certificate it got).
 *
 * The servers listen on port 0 and the test reads the port from the
 * "ACCEPT 127.0.0.1:PORT" line s_server writes (and flushes) once it
 * listens: no race for a port picked beforehand, and the line also says
 * that connections are accepted from then on.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "http.h"
#include "httptest.h"
#include "log.h"
#include "simproc.h"
#include "tap.h"
#include "util.h"

#define OPENSSL_BIN		"openssl"
#define SERVER_START_TIMEOUT_MS 3000
#define REQUEST_TIMEOUT_MS	5000
#define LOG_MAX_BYTES		(1 << 20)

/* Only what the certificates need; the system's openssl.cnf plays no part. */
static const char openssl_cnf[] = "[req]\n"
				  "distinguished_name = dn\n"
				  "prompt = no\n"
				  "[dn]\n"
				  "[ca_ext]\n"
				  "basicConstraints = critical,CA:TRUE\n"
				  "keyUsage = critical,keyCertSign,cRLSign\n"
				  "subjectKeyIdentifier = hash\n"
				  "[server_ext]\n"
				  "basicConstraints = critical,CA:FALSE\n"
				  "keyUsage = critical,digitalSignature\n"
				  "extendedKeyUsage = serverAuth\n"
				  "subjectAltName = IP:127.0.0.1\n"
				  "[client_ext]\n"
				  "basicConstraints = critical,CA:FALSE\n"
				  "keyUsage = critical,digitalSignature\n"
				  "extendedKeyUsage = clientAuth\n";

/* The mkdtemp directory and the files in it. */
struct pki {
	char dir[64]; /* "" when not made */
	char cnf[128], log[128];
	char ca[128], ca_key[128];
	char wrong_ca[128], wrong_key[128];
	char server_cert[128], server_key[128];
	char client_cert[128], client_key[128];
	char missing[128]; /* never created */
};

struct tls_server {
	pid_t pid; /* 0 when not running */
	int port;
	char log[128];
	char url[64]; /* "https://127.0.0.1:PORT" */
};

/* ---- children ----------------------------------------------------------- */

/* Forks argv (argv[0] looked up in PATH) with stdin from /dev/null and stdout
 * and stderr appended to log. Returns the pid, or -errno. A child that
 * cannot execute exits 127. */
static pid_t spawn(const char *const *argv, const char *log, bool die_with_parent)
{
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0)
		return pid;
	/* a crashed test must not leave servers behind */
	if (die_with_parent)
		prctl(PR_SET_PDEATHSIG, SIGTERM);
	int in = open("/dev/null", O_RDONLY);
	int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (in >= 0)
		dup2(in, 0);
	if (out >= 0) {
		dup2(out, 1);
		dup2(out, 2);
	}
	execvp(argv[0], (char *const *)argv);
	static const char msg[] = "cannot execute " OPENSSL_BIN "\n";
	ssize_t w = write(2, msg, sizeof(msg) - 1);
	(void)w;
	_exit(127);
}

/* Runs argv to its end (see spawn). Returns its exit status (127: it could
 * not be executed, 128+N: killed by signal N), or -errno. */
static int run_quiet(const char *const *argv, const char *log)
{
	int st;
	pid_t pid = spawn(argv, log, false);
	if (pid < 0)
		return pid;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- the PKI -------------------------------------------------------------- */

static void pki_path(const struct pki *p, char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", p->dir, name);
}

/* One `openssl req -x509` making an EC key and a certificate for subject,
 * self-signed or (ca, ca_key not NULL) signed by ca. */
static int pki_cert(const struct pki *p, const char *ext, const char *subject, const char *key,
		    const char *cert, const char *ca, const char *ca_key)
{
	const char *argv[32];
	size_t n = 0;
	argv[n++] = OPENSSL_BIN;
	argv[n++] = "req";
	argv[n++] = "-x509";
	argv[n++] = "-config";
	argv[n++] = p->cnf;
	argv[n++] = "-extensions";
	argv[n++] = ext;
	argv[n++] = "-newkey";
	argv[n++] = "ec";
	argv[n++] = "-pkeyopt";
	argv[n++] = "ec_paramgen_curve:P-256";
	argv[n++] = "-nodes";
	argv[n++] = "-keyout";
	argv[n++] = key;
	argv[n++] = "-out";
	argv[n++] = cert;
	argv[n++] = "-days";
	argv[n++] = "2";
	argv[n++] = "-subj";
	argv[n++] = subject;
	if (ca) {
		argv[n++] = "-CA";
		argv[n++] = ca;
		argv[n++] = "-CAkey";
		argv[n++] = ca_key;
	}
	argv[n] = NULL;
	int r = run_quiet(argv, p->log);
	if (r != 0)
		printf("# openssl req for %s exited with %d\n", subject, r);
	return r == 0 ? 0 : -EIO;
}

/* Makes the directory and every certificate in it. Returns 0, or -errno
 * after saying why as TAP comments. */
static int pki_make(struct pki *p)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->dir, sizeof(p->dir), "/tmp/test_tls.XXXXXX");
	if (!mkdtemp(p->dir)) {
		printf("# mkdtemp: %s\n", strerror(errno));
		p->dir[0] = '\0';
		return -EIO;
	}
	pki_path(p, p->cnf, sizeof(p->cnf), "openssl.cnf");
	pki_path(p, p->log, sizeof(p->log), "openssl.log");
	pki_path(p, p->ca, sizeof(p->ca), "ca.pem");
	pki_path(p, p->ca_key, sizeof(p->ca_key), "ca.key");
	pki_path(p, p->wrong_ca, sizeof(p->wrong_ca), "wrong-ca.pem");
	pki_path(p, p->wrong_key, sizeof(p->wrong_key), "wrong-ca.key");
	pki_path(p, p->server_cert, sizeof(p->server_cert), "server.pem");
	pki_path(p, p->server_key, sizeof(p->server_key), "server.key");
	pki_path(p, p->client_cert, sizeof(p->client_cert), "client.pem");
	pki_path(p, p->client_key, sizeof(p->client_key), "client.key");
	pki_path(p, p->missing, sizeof(p->missing), "no-such-ca.pem");
	int r = write_file_atomic(p->cnf, openssl_cnf, strlen(openssl_cnf), 0600);
	if (r < 0) {
		printf("# cannot write %s: %s\n", p->cnf, strerror(-r));
		return r;
	}
	if (pki_cert(p, "ca_ext", "/CN=lienthong test CA", p->ca_key, p->ca, NULL, NULL) < 0 ||
	    pki_cert(p, "server_ext", "/CN=127.0.0.1", p->server_key, p->server_cert, p->ca,
		     p->ca_key) < 0 ||
	    pki_cert(p, "ca_ext", "/CN=lienthong wrong CA", p->wrong_key, p->wrong_ca, NULL, NULL) <
		    0 ||
	    pki_cert(p, "client_ext", "/CN=lienthong test client", p->client_key, p->client_cert,
		     p->ca, p->ca_key) < 0) {
		simproc_print_log(p->log);
		return -EIO;
	}
	return 0;
}

/* Removes the directory and everything in it (it has no subdirectories). */
static void pki_remove(struct pki *p)
{
	if (!p->dir[0])
		return;
	DIR *d = opendir(p->dir);
	if (d) {
		const struct dirent *e;
		while ((e = readdir(d))) {
			char path[512];
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			snprintf(path, sizeof(path), "%s/%s", p->dir, e->d_name);
			unlink(path);
		}
		closedir(d);
	}
	if (rmdir(p->dir) < 0)
		printf("# cannot remove %s: %s\n", p->dir, strerror(errno));
	p->dir[0] = '\0';
}

/* ---- s_server ---------------------------------------------------------------- */

/* The port of the "ACCEPT 127.0.0.1:PORT" line in log, or 0. */
static int server_port(const char *log)
{
	static const char tag[] = "ACCEPT 127.0.0.1:";
	char *text = NULL;
	size_t len = 0;
	int port = 0;
	if (read_file_bounded(log, LOG_MAX_BYTES, &text, &len) < 0)
		return 0;
	for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		if (!strncmp(l, tag, sizeof(tag) - 1)) {
			port = atoi(l + sizeof(tag) - 1);
			break;
		}
	}
	free(text);
	return port > 0 && port < 65536 ? port : 0;
}

/*
 * Starts `openssl s_server -www` with the PKI's server certificate on
 * 127.0.0.1 and an ephemeral port, plus extra (NULL-terminated), its output
 * in DIR/name.log. Returns 0 once it listens, or -errno after saying why as
 * TAP comments. Call server_stop(s) afterwards either way.
 */
static int server_start(struct tls_server *s, const struct pki *p, const char *name,
			const char *const *extra)
{
	const char *argv[32];
	size_t n = 0;
	memset(s, 0, sizeof(*s));
	snprintf(s->log, sizeof(s->log), "%s/%s.log", p->dir, name);
	argv[n++] = OPENSSL_BIN;
	argv[n++] = "s_server";
	argv[n++] = "-www";
	argv[n++] = "-accept";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "-cert";
	argv[n++] = p->server_cert;
	argv[n++] = "-key";
	argv[n++] = p->server_key;
	for (size_t i = 0; extra && extra[i] && n < LT_ARRAY_SIZE(argv) - 1; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	pid_t pid = spawn(argv, s->log, true);
	if (pid < 0) {
		printf("# fork: %s\n", strerror((int)-pid));
		return (int)pid;
	}
	s->pid = pid;
	for (int i = 0; i < SERVER_START_TIMEOUT_MS / 10; i++) {
		s->port = server_port(s->log);
		if (s->port) {
			snprintf(s->url, sizeof(s->url), "https://127.0.0.1:%d", s->port);
			return 0;
		}
		if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
			s->pid = 0;
			printf("# openssl s_server (%s) exited at start:\n", name);
			simproc_print_log(s->log);
			return -ECHILD;
		}
		usleep(10000);
	}
	printf("# openssl s_server (%s) did not listen within %d ms:\n", name,
	       SERVER_START_TIMEOUT_MS);
	simproc_print_log(s->log);
	return -ETIMEDOUT;
}

static void server_stop(struct tls_server *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
}

/* Waits up to timeout_ms for s to exit by itself (true) (-naccept). */
static bool server_exited(struct tls_server *s, int timeout_ms)
{
	for (int i = 0; i <= timeout_ms / 10; i++) {
		if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
			s->pid = 0;
			return true;
		}
		usleep(10000);
	}
	return false;
}

/* ---- requests ---------------------------------------------------------------- */

/* Made from the test's base options with TLS settings of a case. */
static struct http_opts tls_opts(const char *url, bool verify, const char *ca_file,
				 const char *cert, const char *key)
{
	struct http_opts o = base_opts(url);
	o.tls_verify = verify;
	o.ca_file = (char *)ca_file;
	o.client_cert = (char *)cert;
	o.client_key = (char *)key;
	return o;
}

/*
 * GETs path through a new client made from o, runs the loop until it
 * completes and frees the client. max_attempts 0: the client's. Fills r
 * (cleared first) and st (the client's statistics at the end). Returns
 * whether it completed in time.
 */
static bool fetch(sd_event *ev, struct http_core *core, const char *name, struct http_opts o,
		  struct http_request *rq, struct result *r, struct http_stats *st)
{
	int n = 0;
	result_clear(r);
	r->counter = &n;
	struct http_client *c = client(core, name, o);
	submit(c, rq, r);
	bool done = simproc_run_until(ev, &n, 1, REQUEST_TIMEOUT_MS);
	http_client_stats(c, st);
	http_client_free(c);
	r->counter = NULL;
	if (!done)
		printf("# %s: no answer within %d ms\n", name, REQUEST_TIMEOUT_MS);
	else if (r->o != HTTP_OK || getenv("TEST_DEBUG"))
		printf("# %s: %s, HTTP %ld, curl %d, %u attempt(s): %s\n", name,
		       http_outcome_name(r->o), r->status, r->curl_code, r->attempts,
		       r->why ? r->why : "-");
	return done;
}

static int classify_calls;

/* Body rules that would accept anything they are shown. */
static enum http_outcome classify_anything_ok(const struct http_response *r, void *ud, char **why)
{
	(void)r;
	(void)ud;
	(void)why;
	classify_calls++;
	return HTTP_OK;
}

/* ---- checks ---------------------------------------------------------------- */

static const struct conf_option *opt(const char *key)
{
	for (const struct conf_option *o = http_options; o->key; o++)
		if (!strcmp(o->key, key))
			return o;
	return NULL;
}

static void test_help(void)
{
	const struct conf_option *v = opt("tls_verify");
	ok(v && v->def && !strcmp(v->def, "true"), "tls_verify is on by default");
	ok(v && contains(v->help, "test system") && contains(v->help, "never in production"),
	   "the help of tls_verify says turning it off is for test systems only, never production");
	ok(opt("ca_file") && opt("client_cert") && opt("client_key"),
	   "ca_file, client_cert and client_key are options of every HTTP connector");
}

static void test_server_verify(sd_event *ev, struct http_core *core, const struct pki *p,
			       const struct tls_server *srv)
{
	struct result r = {0};
	struct http_stats st;
	struct http_opts o;
	struct http_request *rq;
	char url[96];

	o = tls_opts(srv->url, true, p->ca, NULL, NULL);
	if (fetch(ev, core, "tls-ca", o, req("GET", "/"), &r, &st)) {
		is_int(r.o, HTTP_OK, "with ca_file = the server's CA and tls_verify on: ok");
		is_int(r.status, 200, "... the TLS server answered 200");
		ok(contains(r.body, "s_server"), "... with its status page");
		is_int(r.attempts, 1, "... at the first attempt");
	} else {
		ok(0, "a request verified with the right CA completes");
	}

	/* Before the verifying clients below, which must fail all the same:
	 * nothing this client accepted (a TLS session) may carry over to them. */
	o = tls_opts(srv->url, false, NULL, NULL, NULL);
	if (fetch(ev, core, "tls-noverify", o, req("GET", "/"), &r, &st)) {
		is_int(r.o, HTTP_OK, "tls_verify=false without a CA: ok (a lab's self-made cert)");
		is_int(r.status, 200, "... the TLS server answered 200");
	} else {
		ok(0, "a request without verification completes");
	}

	/* The system store does not know our CA. One attempt (request override),
	 * and body rules that would call anything ok. */
	o = tls_opts(srv->url, true, NULL, NULL, NULL);
	rq = req("GET", "/");
	http_request_max_attempts(rq, 1);
	http_request_classify(rq, classify_anything_ok, NULL);
	classify_calls = 0;
	if (fetch(ev, core, "tls-system-store", o, rq, &r, &st)) {
		ok(r.o != HTTP_OK, "verification against the system store fails: not ok (%s)",
		   http_outcome_name(r.o));
		is_int(r.curl_code, CURLE_PEER_FAILED_VERIFICATION,
		       "... because the peer's certificate was not verified");
		ok(contains(r.why, "certificate"), "... and why names the certificate problem (%s)",
		   r.why ? r.why : "(null)");
		is_int(r.status, 0, "... no HTTP answer was read from the unverified server");
		is_int(r.attempts, 1, "... with max_attempts 1 it is tried once");
		is_int(st.requests, 1, "... and only one attempt reached the network");
		is_int(classify_calls, 0,
		       "... the body rules never see it (they cannot make a TLS failure ok)");
	} else {
		ok(0, "a request verified against the system store completes");
	}

	o = tls_opts(srv->url, true, p->wrong_ca, NULL, NULL);
	o.max_attempts = 1;
	if (fetch(ev, core, "tls-wrong-ca", o, req("GET", "/"), &r, &st)) {
		ok(r.o != HTTP_OK, "ca_file of another CA: not ok (%s)", http_outcome_name(r.o));
		is_int(r.curl_code, CURLE_PEER_FAILED_VERIFICATION,
		       "... because the peer's certificate was not verified");
		ok(contains(r.why, "certificate"), "... and why names the certificate problem (%s)",
		   r.why ? r.why : "(null)");
		is_int(r.attempts, 1, "... client max_attempts 1: tried once");
	} else {
		ok(0, "a request verified with the wrong CA completes");
	}

	/* Right CA, wrong name: the certificate is for 127.0.0.1 only. */
	snprintf(url, sizeof(url), "https://localhost:%d", srv->port);
	o = tls_opts(url, true, p->ca, NULL, NULL);
	o.max_attempts = 1;
	if (fetch(ev, core, "tls-wrong-name", o, req("GET", "/"), &r, &st)) {
		ok(r.o != HTTP_OK, "the host name is verified too: 'localhost' is not ok (%s)",
		   http_outcome_name(r.o));
		is_int(r.curl_code, CURLE_PEER_FAILED_VERIFICATION,
		       "... because the name is not in the certificate");
		ok(contains(r.why, "localhost"), "... and why names the host (%s)",
		   r.why ? r.why : "(null)");
	} else {
		ok(0, "a request to a name the certificate lacks completes");
	}

	/* A ca_file that does not exist: refused by http_client_new, or each
	 * request fails naming it. */
	struct http_client *c = NULL;
	char *err = NULL;
	o = tls_opts(srv->url, true, p->missing, NULL, NULL);
	o.max_attempts = 1;
	int rc = http_client_new(core, "tls-missing-ca", &o, &c, &err);
	if (rc < 0) {
		printf("# http_client_new refuses a missing ca_file: %s\n", err ? err : "(null)");
		ok(contains(err, p->missing), "a missing ca_file is refused, naming the file");
		free(err);
	} else {
		http_client_free(c);
		printf("# http_client_new accepts a missing ca_file; the request fails\n");
		if (fetch(ev, core, "tls-missing-ca", o, req("GET", "/"), &r, &st)) {
			ok(r.o != HTTP_OK, "a missing ca_file: not ok (%s)",
			   http_outcome_name(r.o));
			ok(contains(r.why, p->missing), "... and why names the file (%s)",
			   r.why ? r.why : "(null)");
		} else {
			ok(0, "a request with a missing ca_file completes");
		}
	}
	result_clear(&r);
}

static void test_client_cert(sd_event *ev, struct http_core *core, const struct pki *p,
			     const struct tls_server *srv)
{
	struct result r = {0};
	struct http_stats st;
	struct http_opts o;

	/* First: the clients after it must fail all the same, nothing of its
	 * authenticated session carrying over to them. */
	o = tls_opts(srv->url, true, p->ca, p->client_cert, p->client_key);
	if (fetch(ev, core, "mtls-cert", o, req("GET", "/"), &r, &st)) {
		is_int(r.o, HTTP_OK, "client_cert + client_key to a server demanding one: ok");
		is_int(r.status, 200, "... the TLS server answered 200");
		ok(contains(r.body, "CN=lienthong test client"),
		   "... and it got our client certificate");
	} else {
		ok(0, "a request with a client certificate completes");
	}

	o = tls_opts(srv->url, true, p->ca, NULL, NULL);
	o.max_attempts = 1;
	if (fetch(ev, core, "mtls-none", o, req("GET", "/"), &r, &st)) {
		ok(r.o != HTTP_OK, "no client certificate for a server demanding one: not ok (%s)",
		   http_outcome_name(r.o));
		is_int(r.status, 0, "... the handshake failed: no HTTP answer");
		ok(contains(r.why, "certificate"),
		   "... and why says a certificate was required (%s)", r.why ? r.why : "(null)");
	} else {
		ok(0, "a request without a client certificate completes");
	}

	/* A client certificate that is not there is a configuration error,
	 * refused when the client is made (at load and reload), naming it. */
	char missing_cert[160];
	snprintf(missing_cert, sizeof(missing_cert), "%s/no-such-client.pem", p->dir);
	o = tls_opts(srv->url, true, p->ca, missing_cert, p->client_key);
	struct http_client *mc = NULL;
	char *merr = NULL;
	int mrc = http_client_new(core, "mtls-missing", &o, &mc, &merr);
	ok(mrc < 0 && mc == NULL, "a missing client_cert file: the client is refused (%d)", mrc);
	ok(contains(merr, missing_cert) && contains(merr, "client_cert"),
	   "... naming the option and the file (%s)", merr ? merr : "(null)");
	free(merr);
	http_client_free(mc);
	result_clear(&r);
}

static void test_client_new(struct http_core *core, const struct pki *p)
{
	struct http_client *c = NULL;
	char *err = NULL;
	struct http_opts o = tls_opts("https://127.0.0.1:1", true, p->ca, NULL, p->client_key);
	int rc = http_client_new(core, "key-only", &o, &c, &err);
	is_int(rc, -EINVAL, "client_key without client_cert: http_client_new refuses");
	ok(c == NULL, "... and makes no client");
	ok(contains(err, "client_key") && contains(err, "client_cert"),
	   "... saying client_key needs client_cert (%s)", err ? err : "(null)");
	free(err);
	http_client_free(c);
}

static void test_alpn(sd_event *ev, struct http_core *core, const struct pki *p,
		      struct tls_server *srv)
{
	struct result r = {0};
	struct http_stats st;
	struct http_opts o = tls_opts(srv->url, true, p->ca, NULL, NULL);
	char *log = NULL;
	size_t len = 0;

	if (fetch(ev, core, "alpn", o, req("GET", "/"), &r, &st))
		is_int(r.o, HTTP_OK, "HTTP/2 offered to an HTTP/1-only server: ok (falls back)");
	else
		ok(0, "a request to the ALPN-logging server completes");
	/* s_server writes its log unflushed: only its own exit (-naccept 1) shows it */
	ok(server_exited(srv, 2000), "the ALPN-logging server exits after its one connection");
	if (read_file_bounded(srv->log, LOG_MAX_BYTES, &log, &len) < 0)
		log = NULL;
	ok(contains(log, "advertised by the client: h2, http/1.1"),
	   "HTTP/2 is requested: the TLS handshake offers h2 (ALPN), then http/1.1");
	if (!contains(log, "advertised by the client"))
		simproc_print_log(srv->log);
	free(log);
	result_clear(&r);
}

int main(void)
{
	uint64_t t0 = now_mono_us();
	struct pki p = {0};
	struct tls_server plain = {0}, mtls = {0}, alpn = {0};
	sd_event *ev = NULL;
	struct http_core *core = NULL;
	const char *version[] = {OPENSSL_BIN, "version", NULL};
	const char *mtls_args[] = {"-Verify", "1", "-CAfile", NULL, NULL};
	const char *alpn_args[] = {"-alpn", "http/1.1", "-naccept", "1", NULL};

	log_setup(LOG_TARGET_STDERR, getenv("TEST_DEBUG") ? LOG_DEBUG : LOG_ERR);
	signal(SIGPIPE, SIG_IGN);
	test_help();

	int rc = run_quiet(version, "/dev/null");
	ok(rc == 0, "the openssl command runs (needed to make the test PKI and servers)");
	if (rc != 0) {
		printf("# '%s version' %s\n", OPENSSL_BIN,
		       rc == 127 ? "cannot be executed: is openssl installed and on PATH?"
				 : "failed");
		goto out;
	}
	rc = pki_make(&p);
	ok(rc == 0, "openssl makes a CA, server and client certificates, and a wrong CA");
	if (rc < 0)
		goto out;
	mtls_args[3] = p.ca;
	ok(server_start(&plain, &p, "server", NULL) == 0, "openssl s_server starts");
	ok(server_start(&mtls, &p, "server-mtls", mtls_args) == 0,
	   "openssl s_server demanding a client certificate starts");
	ok(server_start(&alpn, &p, "server-alpn", alpn_args) == 0,
	   "openssl s_server logging ALPN starts");
	if (!plain.pid || !mtls.pid || !alpn.pid)
		goto out;

	if (sd_event_new(&ev) < 0) {
		ok(0, "sd_event_new");
		goto out;
	}
	core = http_core_new(ev);
	ok(core != NULL, "http core starts on an sd-event loop");
	if (!core)
		goto out;
	test_server_verify(ev, core, &p, &plain);
	test_client_cert(ev, core, &p, &mtls);
	test_client_new(core, &p);
	test_alpn(ev, core, &p, &alpn);
	is_int(done_inside_submit, 0, "no done callback ran inside http_submit");
	is_int(http_core_pending(core), 0, "nothing pending at the end");
out:
	http_core_free(core);
	sd_event_unref(ev);
	server_stop(&alpn);
	server_stop(&mtls);
	server_stop(&plain);
	pki_remove(&p);
	printf("# test_tls took %llu ms\n", (unsigned long long)((now_mono_us() - t0) / 1000));
	return tap_done();
}
