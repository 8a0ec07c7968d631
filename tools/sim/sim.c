/*
 * sim.c: lienthong-sim's entry point: the command line, the module table,
 * start-up (modules, delay queue, HTTP server, port file, readiness) and
 * the clean shutdown on SIGTERM/SIGINT that frees everything, so that a run
 * under AddressSanitizer ends silent.
 *
 * Signals are blocked before any thread starts and taken synchronously by
 * the main thread with sigwaitinfo(): MHD's workers and the delay thread
 * never see them.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "sim.h"

struct sim_config sim_config;

/* Initialised in this order, finalised in reverse. */
static const struct sim_module *const modules[] = {
	&sim_stats_module,   &sim_session_module,
	&sim_fault_module,   &sim_adapter_module,
	&sim_catalog_module, &sim_provincial_module,
	&sim_dossier_module, &sim_portal_module,
	&sim_payment_module, NULL,
};

static const char usage_text[] =
	"Usage: " SIM_NAME " [OPTION]...\n"
	"Simulated national adapter (CSDL TTHC / Cổng DVCQG) and gateway for lienthong,\n"
	"with fault injection and introspection (/_sim/stats, /_sim/faults).\n"
	"\n"
	"Server:\n"
	"  --listen ADDR:PORT        listen address (default 127.0.0.1:8080; port 0 = any free)\n"
	"  --port-file FILE          write the bound port there once listening (atomically)\n"
	"  --threads N               HTTP worker threads (default 4)\n"
	"  --max-connections N       concurrent connections (default 10000)\n"
	"  --idle-timeout SECONDS    close idle keep-alive connections after (default 60)\n"
	"  --max-body BYTES          largest request body, k/M/G suffixes (default 16M); 413 "
	"beyond\n"
	"  --seed N                  seed of all randomness (default 1)\n"
	"  --keep-records N          records kept per service in the stats (default 1000000)\n"
	"  --verbose, -v             log every request\n"
	"\n"
	"Adapter:\n"
	"  --username U, --password P   login credentials (default lienthong / secret)\n"
	"  --dstcode CODE            login must carry header \"dstcode: CODE\"\n"
	"  --session-ttl SECONDS     session lifetime (default 3600; 0 = never expire)\n"
	"  --max-sessions N          live sessions (and tokens) kept, oldest dropped (default "
	"100000)\n"
	"  --auth-path PATH          (default /auth)\n"
	"  --integration-path PATH   (default /integration)\n"
	"  --share-path PATH         (default /share)\n"
	"  --wrap-message            wrap every adapter answer as a JSON string in \"message\"\n"
	"\n"
	"Gateway (OAuth2 client credentials):\n"
	"  --oauth2 KEY:SECRET       POST /token with Basic KEY:SECRET, then Bearer on every call\n"
	"  --token-ttl SECONDS       access token lifetime (default 3600)\n"
	"  --token-path PATH         (default /token)\n"
	"\n"
	"Procedure catalogue (CSDL TTHC services on the share path; provincial REST API):\n"
	"  --procedures N            national procedures generated from --seed (default 2000)\n"
	"  --provincial-token TOKEN  Bearer token of /provincial/api/v1 (default\n"
	"                            provincial-secret-token)\n"
	"\n"
	"Dossiers (provincial change feed; national portal services on the integration path):\n"
	"  --dossiers N              dossiers received in the window (default 1000)\n"
	"  --dossier-days D          the window: the D days before now (default 1)\n"
	"  --dossier-now TIME        now for the stream: yyyy-mm-ddTHH:MM[:SS][+07:00|Z] or\n"
	"                            epoch seconds (default: the start of the current hour)\n"
	"\n"
	"Payments (national payment platform under /paygov; provincial fee records):\n"
	"  --payment-faults N        discrepancies of each class per 1,000 dossiers of the\n"
	"                            window (default 10; at least 3 unless 0)\n"
	"  --paygov-token TOKEN      Bearer token of /paygov/api/v1 (default paygov-secret-token)\n"
	"  --paygov-key KEY          the partner's secret key that MaXacThuc hashes (default\n"
	"                            paygov-partner-key)\n"
	"\n"
	"Faults (also at run time: POST /_sim/faults; never on /_sim/* and /health):\n"
	"  --error-rate P            answer 500 with probability P\n"
	"  --rate-limit-rate P       answer 429 with Retry-After\n"
	"  --retry-after S           Retry-After seconds (default 1)\n"
	"  --latency-ms N            delay every answer by N ms\n"
	"  --hang-rate P             never answer (hold the request --hang-ms, then close)\n"
	"  --hang-ms N               (default 600000)\n"
	"  --malformed-rate P        answer 200 with an HTML page or truncated JSON\n"
	"  --fail-next N             the next N requests get 503\n"
	"  --down                    every request gets 503\n"
	"\n"
	"  --help, -h                this text\n"
	"  --version, -V             version\n";

enum {
	OPT_LISTEN = 256,
	OPT_PORT_FILE,
	OPT_THREADS,
	OPT_MAX_CONNECTIONS,
	OPT_IDLE_TIMEOUT,
	OPT_MAX_BODY,
	OPT_SEED,
	OPT_KEEP_RECORDS,
	OPT_USERNAME,
	OPT_PASSWORD,
	OPT_DSTCODE,
	OPT_SESSION_TTL,
	OPT_MAX_SESSIONS,
	OPT_AUTH_PATH,
	OPT_INTEGRATION_PATH,
	OPT_SHARE_PATH,
	OPT_WRAP_MESSAGE,
	OPT_OAUTH2,
	OPT_TOKEN_TTL,
	OPT_TOKEN_PATH,
	OPT_ERROR_RATE,
	OPT_RATE_LIMIT_RATE,
	OPT_RETRY_AFTER,
	OPT_LATENCY_MS,
	OPT_HANG_RATE,
	OPT_HANG_MS,
	OPT_MALFORMED_RATE,
	OPT_FAIL_NEXT,
	OPT_DOWN,
	OPT_PROCEDURES,
	OPT_PROVINCIAL_TOKEN,
	OPT_DOSSIERS,
	OPT_DOSSIER_DAYS,
	OPT_DOSSIER_NOW,
	OPT_PAYMENT_FAULTS,
	OPT_PAYGOV_TOKEN,
	OPT_PAYGOV_KEY,
};

static const struct option long_options[] = {
	{"listen", required_argument, NULL, OPT_LISTEN},
	{"port-file", required_argument, NULL, OPT_PORT_FILE},
	{"threads", required_argument, NULL, OPT_THREADS},
	{"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
	{"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
	{"max-body", required_argument, NULL, OPT_MAX_BODY},
	{"seed", required_argument, NULL, OPT_SEED},
	{"keep-records", required_argument, NULL, OPT_KEEP_RECORDS},
	{"username", required_argument, NULL, OPT_USERNAME},
	{"password", required_argument, NULL, OPT_PASSWORD},
	{"dstcode", required_argument, NULL, OPT_DSTCODE},
	{"session-ttl", required_argument, NULL, OPT_SESSION_TTL},
	{"max-sessions", required_argument, NULL, OPT_MAX_SESSIONS},
	{"auth-path", required_argument, NULL, OPT_AUTH_PATH},
	{"integration-path", required_argument, NULL, OPT_INTEGRATION_PATH},
	{"share-path", required_argument, NULL, OPT_SHARE_PATH},
	{"wrap-message", no_argument, NULL, OPT_WRAP_MESSAGE},
	{"oauth2", required_argument, NULL, OPT_OAUTH2},
	{"token-ttl", required_argument, NULL, OPT_TOKEN_TTL},
	{"token-path", required_argument, NULL, OPT_TOKEN_PATH},
	{"error-rate", required_argument, NULL, OPT_ERROR_RATE},
	{"rate-limit-rate", required_argument, NULL, OPT_RATE_LIMIT_RATE},
	{"retry-after", required_argument, NULL, OPT_RETRY_AFTER},
	{"latency-ms", required_argument, NULL, OPT_LATENCY_MS},
	{"hang-rate", required_argument, NULL, OPT_HANG_RATE},
	{"hang-ms", required_argument, NULL, OPT_HANG_MS},
	{"malformed-rate", required_argument, NULL, OPT_MALFORMED_RATE},
	{"fail-next", required_argument, NULL, OPT_FAIL_NEXT},
	{"down", no_argument, NULL, OPT_DOWN},
	{"procedures", required_argument, NULL, OPT_PROCEDURES},
	{"provincial-token", required_argument, NULL, OPT_PROVINCIAL_TOKEN},
	{"dossiers", required_argument, NULL, OPT_DOSSIERS},
	{"dossier-days", required_argument, NULL, OPT_DOSSIER_DAYS},
	{"dossier-now", required_argument, NULL, OPT_DOSSIER_NOW},
	{"payment-faults", required_argument, NULL, OPT_PAYMENT_FAULTS},
	{"paygov-token", required_argument, NULL, OPT_PAYGOV_TOKEN},
	{"paygov-key", required_argument, NULL, OPT_PAYGOV_KEY},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

/* ---- option values -------------------------------------------------- */

static _Noreturn void bad_option(const char *name, const char *value, const char *what)
{
	fprintf(stderr, "%s: --%s %s: %s\nTry '%s --help'.\n", SIM_NAME, name, value, what,
		SIM_NAME);
	exit(2);
}

static uint64_t parse_uint(const char *name, const char *s, uint64_t min, uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (s[0] < '0' || s[0] > '9')
		bad_option(name, s, "not a number");
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		bad_option(name, s, "not a number");
	if (v < min || v > max) {
		char what[96];

		snprintf(what, sizeof(what), "must be between %" PRIu64 " and %" PRIu64, min, max);
		bad_option(name, s, what);
	}
	return v;
}

static double parse_rate(const char *name, const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= 0.0 && v <= 1.0))
		bad_option(name, s, "must be a probability between 0 and 1");
	return v;
}

static size_t parse_size(const char *name, const char *s)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	errno = 0;
	if (s[0] < '0' || s[0] > '9')
		bad_option(name, s, "not a size");
	v = strtoull(s, &end, 10);
	if (errno == 0 && end[0] != '\0' && end[1] == '\0') {
		switch (end[0]) {
		case 'k':
		case 'K':
			shift = 10;
			end++;
			break;
		case 'm':
		case 'M':
			shift = 20;
			end++;
			break;
		case 'g':
		case 'G':
			shift = 30;
			end++;
			break;
		default: break;
		}
	}
	if (errno != 0 || *end != '\0' || v == 0 || v > (UINT64_C(1) << 32) >> shift)
		bad_option(name, s, "must be a size from 1 byte to 4G (k, M, G suffixes)");
	return (size_t)(v << shift);
}

static const char *parse_path(const char *name, const char *s)
{
	if (s[0] != '/' || strncmp(s, "/_sim/", 6) == 0 || strcmp(s, "/health") == 0 ||
	    strlen(s) > 256)
		bad_option(name, s, "must start with '/' and not be /health or under /_sim/");
	return s;
}

/*
 * A moment: epoch seconds, or yyyy-mm-ddTHH:MM[:SS] in +07:00 unless
 * followed by "Z" or "+07:00"/"+0700" (no other offsets).
 */
static int64_t parse_moment(const char *name, const char *s)
{
	unsigned y, mo, d, h, mi, sec = 0;
	int n = 0, pos = 0;
	int64_t days, offset_s = 7 * 3600;
	const char *rest;

	if (s[0] >= '0' && s[0] <= '9' && strspn(s, "0123456789") == strlen(s))
		return (int64_t)parse_uint(name, s, 1, 253402300799u);
	if (sscanf(s, "%4u-%2u-%2uT%2u:%2u%n", &y, &mo, &d, &h, &mi, &n) != 5)
		bad_option(name, s, "expected yyyy-mm-ddTHH:MM[:SS][+07:00|Z] or epoch seconds");
	rest = s + n;
	if (sscanf(rest, ":%2u%n", &sec, &pos) == 1)
		rest += pos;
	if (strcmp(rest, "Z") == 0)
		offset_s = 0;
	else if (*rest != '\0' && strcmp(rest, "+07:00") != 0 && strcmp(rest, "+0700") != 0)
		bad_option(name, s, "the offset must be +07:00 or Z");
	if (y < 1971 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    sec > 59)
		bad_option(name, s, "not a valid date and time");
	/* Days from civil (H. Hinnant), y >= 1971. */
	{
		unsigned yy = y - (mo <= 2), era = yy / 400, yoe = yy - era * 400;
		unsigned doy = (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5 + d - 1;
		unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

		days = (int64_t)era * 146097 + (int64_t)doe - 719468;
	}
	return days * 86400 + h * 3600 + mi * 60 + sec - offset_s;
}

static void parse_args(int argc, char **argv)
{
	struct sim_config *c = &sim_config;
	const char *name;
	int opt, idx;

	memset(c, 0, sizeof(*c));
	c->listen = "127.0.0.1:8080";
	c->seed = 1;
	c->threads = 4;
	c->max_connections = 10000;
	c->idle_timeout_s = 60;
	c->max_body_bytes = 16u << 20;
	c->keep_records = 1000000;
	c->session_ttl_s = 3600;
	c->max_sessions = 100000;
	c->token_ttl_s = 3600;
	c->username = "lienthong";
	c->password = "secret";
	c->auth_path = "/auth";
	c->integration_path = "/integration";
	c->share_path = "/share";
	c->token_path = "/token";
	c->procedures = 2000;
	c->provincial_token = "provincial-secret-token";
	c->dossiers = 1000;
	c->dossier_days = 1;
	c->payment_faults = 10;
	c->paygov_token = "paygov-secret-token";
	c->paygov_key = "paygov-partner-key";
	sim_faultset_defaults(&c->faults);

	while ((opt = getopt_long(argc, argv, "vhV", long_options, &idx)) != -1) {
		name = opt >= 256 ? long_options[idx].name : "";
		switch (opt) {
		case OPT_LISTEN: c->listen = optarg; break;
		case OPT_PORT_FILE: c->port_file = optarg; break;
		case OPT_THREADS: c->threads = (unsigned)parse_uint(name, optarg, 1, 1024); break;
		case OPT_MAX_CONNECTIONS:
			c->max_connections = (unsigned)parse_uint(name, optarg, 1, 1000000);
			break;
		case OPT_IDLE_TIMEOUT:
			c->idle_timeout_s = (unsigned)parse_uint(name, optarg, 0, 86400);
			break;
		case OPT_MAX_BODY: c->max_body_bytes = parse_size(name, optarg); break;
		case OPT_SEED: c->seed = parse_uint(name, optarg, 0, UINT64_MAX); break;
		case OPT_KEEP_RECORDS:
			c->keep_records = (size_t)parse_uint(name, optarg, 0, 1000000000);
			break;
		case OPT_USERNAME: c->username = optarg; break;
		case OPT_PASSWORD: c->password = optarg; break;
		case OPT_DSTCODE: c->dstcode = optarg; break;
		case OPT_SESSION_TTL:
			c->session_ttl_s =
				(unsigned)parse_uint(name, optarg, 0, 100u * 365 * 86400);
			break;
		case OPT_MAX_SESSIONS:
			c->max_sessions = (unsigned)parse_uint(name, optarg, 1, 100000000);
			break;
		case OPT_AUTH_PATH: c->auth_path = parse_path(name, optarg); break;
		case OPT_INTEGRATION_PATH: c->integration_path = parse_path(name, optarg); break;
		case OPT_SHARE_PATH: c->share_path = parse_path(name, optarg); break;
		case OPT_TOKEN_PATH: c->token_path = parse_path(name, optarg); break;
		case OPT_WRAP_MESSAGE: c->faults.wrap_message = true; break;
		case OPT_OAUTH2: {
			const char *colon = strchr(optarg, ':');

			if (colon == NULL || colon == optarg || colon[1] == '\0')
				bad_option(name, "...", "expected KEY:SECRET");
			free(c->oauth2_key);
			free(c->oauth2_secret);
			c->oauth2_key = strndup(optarg, (size_t)(colon - optarg));
			c->oauth2_secret = sim_xstrdup(colon + 1);
			if (c->oauth2_key == NULL)
				sim_die("out of memory");
			break;
		}
		case OPT_TOKEN_TTL:
			c->token_ttl_s = (unsigned)parse_uint(name, optarg, 1, 100u * 365 * 86400);
			break;
		case OPT_ERROR_RATE: c->faults.error_rate = parse_rate(name, optarg); break;
		case OPT_RATE_LIMIT_RATE:
			c->faults.rate_limit_rate = parse_rate(name, optarg);
			break;
		case OPT_RETRY_AFTER:
			c->faults.retry_after_s = (unsigned)parse_uint(name, optarg, 0, 86400);
			break;
		case OPT_LATENCY_MS:
			c->faults.latency_ms = (unsigned)parse_uint(name, optarg, 0, 86400000);
			break;
		case OPT_HANG_RATE: c->faults.hang_rate = parse_rate(name, optarg); break;
		case OPT_HANG_MS:
			c->faults.hang_ms = (unsigned)parse_uint(name, optarg, 0, 86400000);
			break;
		case OPT_MALFORMED_RATE: c->faults.malformed_rate = parse_rate(name, optarg); break;
		case OPT_FAIL_NEXT:
			c->faults.fail_next = parse_uint(name, optarg, 0, UINT64_MAX);
			break;
		case OPT_DOWN: c->faults.down = true; break;
		case OPT_PROCEDURES:
			c->procedures = (unsigned)parse_uint(name, optarg, 0, 100000);
			break;
		case OPT_PROVINCIAL_TOKEN:
			if (optarg[0] == '\0' || strlen(optarg) > 512)
				bad_option(name, "...", "must be 1 to 512 bytes");
			c->provincial_token = optarg;
			break;
		case OPT_DOSSIERS:
			c->dossiers = (unsigned)parse_uint(name, optarg, 0, 5000000);
			break;
		case OPT_DOSSIER_DAYS:
			c->dossier_days = (unsigned)parse_uint(name, optarg, 1, 3650);
			break;
		case OPT_DOSSIER_NOW: c->dossier_now_s = parse_moment(name, optarg); break;
		case OPT_PAYMENT_FAULTS:
			c->payment_faults = (unsigned)parse_uint(name, optarg, 0, 100);
			break;
		case OPT_PAYGOV_TOKEN:
			if (optarg[0] == '\0' || strlen(optarg) > 512)
				bad_option(name, "...", "must be 1 to 512 bytes");
			c->paygov_token = optarg;
			break;
		case OPT_PAYGOV_KEY:
			if (optarg[0] == '\0' || strlen(optarg) > 512)
				bad_option(name, "...", "must be 1 to 512 bytes");
			c->paygov_key = optarg;
			break;
		case 'v': c->verbose = true; break;
		case 'h': fputs(usage_text, stdout); exit(0);
		case 'V': printf("%s %s\n", SIM_NAME, LT_VERSION); exit(0);
		default: fprintf(stderr, "Try '%s --help'.\n", SIM_NAME); exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\nTry '%s --help'.\n", SIM_NAME,
			argv[optind], SIM_NAME);
		exit(2);
	}
	{
		const char *paths[] = {c->auth_path, c->integration_path, c->share_path,
				       c->oauth2_key ? c->token_path : NULL};

		for (size_t i = 0; i < SIM_ARRAY_SIZE(paths); i++)
			for (size_t j = i + 1; j < SIM_ARRAY_SIZE(paths); j++)
				if (paths[i] && paths[j] && strcmp(paths[i], paths[j]) == 0)
					bad_option("*-path", paths[i],
						   "two endpoints share this path");
	}
}

/* ---- start-up helpers ----------------------------------------------- */

/* Enough descriptors for the connection limit (the soft limit is often 1024). */
static void raise_nofile(void)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)sim_config.max_connections + 256;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want) {
		unsigned n = rl.rlim_cur > 256 ? (unsigned)(rl.rlim_cur - 256) : 16;

		sim_log(SIM_LOG_WARN, "open files limited to %llu: at most %u connections",
			(unsigned long long)rl.rlim_cur, n);
		sim_config.max_connections = n;
	}
}

/* Writes "PORT\n" to path atomically (temp file, fsync, rename). */
static int write_port_file(const char *path, unsigned port)
{
	char *tmp = sim_xasprintf("%s.tmp.%ld", path, (long)getpid());
	char text[16];
	int len = snprintf(text, sizeof(text), "%u\n", port);
	int fd = -1, r = 0;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, (size_t)len) != len || fsync(fd) != 0) {
		r = -errno;
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		r = -errno;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		r = -errno;
out:
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		sim_log(SIM_LOG_ERR, "--port-file %s: %s", path, strerror(-r));
		unlink(tmp);
	}
	free(tmp);
	return r;
}

/* "ADDR" part of --listen, for the ready line. */
static void listen_host(char *buf, size_t len)
{
	const char *colon = strrchr(sim_config.listen, ':');
	size_t n = colon ? (size_t)(colon - sim_config.listen) : strlen(sim_config.listen);

	snprintf(buf, len, "%.*s", (int)n, sim_config.listen);
}

int main(int argc, char **argv)
{
	sigset_t sigs;
	size_t n_inited = 0;
	unsigned port = 0;
	char host[256];
	int sig, status = 1;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	/* Before any thread exists, so that all inherit the mask. */
	if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) != 0)
		sim_die("pthread_sigmask failed");
	raise_nofile();

	for (; modules[n_inited] != NULL; n_inited++) {
		int r = modules[n_inited]->init();

		if (r < 0) {
			sim_log(SIM_LOG_ERR, "module %s: %s", modules[n_inited]->name,
				strerror(-r));
			goto out;
		}
	}
	if (sim_delay_start() < 0 || sim_server_start(&port) < 0)
		goto out;
	if (sim_config.port_file != NULL && write_port_file(sim_config.port_file, port) < 0)
		goto out;
	listen_host(host, sizeof(host));
	sim_log(SIM_LOG_INFO, "%s %s ready on %s:%u (seed %" PRIu64 ", %u threads%s)", SIM_NAME,
		LT_VERSION, host, port, sim_config.seed, sim_config.threads,
		sim_config.oauth2_key ? ", OAuth2 gateway" : "");
	printf("%s listening on %s:%u\n", SIM_NAME, host, port);
	fflush(stdout);
	sd_notifyf(0, "READY=1\nSTATUS=listening on %s:%u", host, port);

	for (;;) {
		sig = sigwaitinfo(&sigs, NULL);
		if (sig >= 0)
			break;
		if (errno != EINTR)
			sim_die("sigwaitinfo: %s", strerror(errno));
	}
	sim_log(SIM_LOG_INFO, "%s received, stopping", strsignal(sig));
	sd_notify(0, "STOPPING=1");
	status = 0;
out:
	sim_server_stop();
	sim_delay_stop();
	while (n_inited > 0) {
		const struct sim_module *m = modules[--n_inited];

		if (m->fini != NULL)
			m->fini();
	}
	sim_server_free();
	free(sim_config.oauth2_key);
	free(sim_config.oauth2_secret);
	return status;
}
