/*
 * ctl_probe: how fast lienthongd's control socket answers while the daemon
 * is busy (bench/bench-payment.sh runs it during a reconciliation). Like an
 * operator's `lienthongctl status` or a monitoring check, each probe
 * connects, sends {"v":1,"cmd":"status"} and reads the one-line answer; the
 * time from connect() to the answer's newline is recorded. A probe starts
 * INTERVAL_MS after the previous one ended, until SIGTERM or SIGINT, or
 * SECONDS have passed. A probe not answered within 10 s counts as an error
 * with that time. Then it prints, in milliseconds:
 *
 *   probe n N
 *   probe errors N
 *   probe p50_ms X
 *   probe p99_ms X
 *   probe max_ms X
 *
 *   ctl_probe SOCKET [INTERVAL_MS [SECONDS]]   (defaults 10, 600)
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define ANSWER_MAX_BYTES (1024 * 1024)
#define PROBE_TIMEOUT_MS 10000

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* One probe: 0 answered "ok":true, -1 otherwise. */
static int probe(const char *path, char *buf)
{
	static const char req[] = "{\"v\":1,\"cmd\":\"status\"}\n";
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t got = 0;
	int rc = -1;
	double t0 = now_ms();
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1))
		goto out;
	while (got < ANSWER_MAX_BYTES - 1) {
		int left = PROBE_TIMEOUT_MS - (int)(now_ms() - t0);
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int pr = left > 0 ? poll(&p, 1, left) : 0;
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			goto out;
		ssize_t n = read(fd, buf + got, ANSWER_MAX_BYTES - 1 - got);
		if (n <= 0)
			goto out;
		got += (size_t)n;
		buf[got] = '\0';
		if (memchr(buf + got - n, '\n', (size_t)n)) {
			rc = strstr(buf, "\"ok\": true") || strstr(buf, "\"ok\":true") ? 0 : -1;
			break;
		}
	}
out:
	close(fd);
	return rc;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The nearest-rank percentile q (0..1) of the n sorted values v. */
static double pct(const double *v, size_t n, double q)
{
	if (n == 0)
		return 0;
	size_t k = (size_t)(q * (double)n + 0.999999);
	return v[k == 0 ? 0 : k > n ? n - 1 : k - 1];
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: ctl_probe SOCKET [INTERVAL_MS [SECONDS]]\n");
		return 2;
	}
	long interval_ms = argc > 2 ? atol(argv[2]) : 10;
	double seconds = argc > 3 ? atof(argv[3]) : 600;
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	char *buf = malloc(ANSWER_MAX_BYTES);
	size_t cap = 4096, n = 0, errors = 0;
	double *rtt = malloc(cap * sizeof(*rtt));
	if (!buf || !rtt)
		return 1;
	double end = now_ms() + seconds * 1e3;
	while (!stop && now_ms() < end) {
		double t0 = now_ms();
		if (probe(argv[1], buf) != 0)
			errors++;
		if (n == cap) {
			double *m = realloc(rtt, 2 * cap * sizeof(*rtt));
			if (!m)
				break;
			rtt = m;
			cap *= 2;
		}
		rtt[n++] = now_ms() - t0;
		struct timespec ts = {.tv_sec = interval_ms / 1000,
				      .tv_nsec = (interval_ms % 1000) * 1000000L};
		while (!stop && nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	qsort(rtt, n, sizeof(*rtt), cmp_double);
	printf("probe n %zu\nprobe errors %zu\n", n, errors);
	printf("probe p50_ms %.2f\nprobe p99_ms %.2f\nprobe max_ms %.2f\n", pct(rtt, n, 0.50),
	       pct(rtt, n, 0.99), n ? rtt[n - 1] : 0.0);
	free(rtt);
	free(buf);
	return 0;
}
