/*
 * fsync_rate: the benchmarks' measure of the disk under the store: how many
 * durable small writes per second it takes in DIR, the ceiling of a store
 * that syncs every commit (bench/bench-dossier.sh prints it beside the
 * dossier flow's rate). Like a WAL in its steady state, it overwrites 4 KiB
 * pages of a file of 1 MiB, in turn, each followed by fdatasync(), for
 * SECONDS (default 2), then prints the syncs per second (an integer) and
 * removes the file.
 *
 *   fsync_rate DIR [SECONDS]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAGE_BYTES 4096
#define FILE_PAGES 256

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static char page[PAGE_BYTES];
	char path[4096];
	double secs = 2, t0, t;
	unsigned long n = 0;
	int fd, rc = 1;

	if (argc < 2 || argc > 3 || (argc == 3 && (secs = atof(argv[2])) <= 0)) {
		fprintf(stderr, "usage: fsync_rate DIR [SECONDS]\n");
		return 2;
	}
	if (snprintf(path, sizeof(path), "%s/fsync_rate.XXXXXX", argv[1]) >= (int)sizeof(path)) {
		fprintf(stderr, "fsync_rate: %s: path too long\n", argv[1]);
		return 2;
	}
	fd = mkstemp(path);
	if (fd < 0) {
		fprintf(stderr, "fsync_rate: %s: %s\n", path, strerror(errno));
		return 1;
	}
	memset(page, 'x', sizeof(page));
	for (unsigned i = 0; i < FILE_PAGES; i++) {
		if (write(fd, page, sizeof(page)) != (ssize_t)sizeof(page))
			goto fail;
	}
	if (fsync(fd) < 0)
		goto fail;
	t0 = now_s();
	do {
		page[0] = (char)('a' + n % 26);
		if (pwrite(fd, page, sizeof(page), (off_t)(n % FILE_PAGES) * PAGE_BYTES) !=
			    (ssize_t)sizeof(page) ||
		    fdatasync(fd) < 0)
			goto fail;
		n++;
		t = now_s();
	} while (t - t0 < secs);
	printf("%.0f\n", (double)n / (t - t0));
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "fsync_rate: %s: %s\n", path, strerror(errno));
out:
	close(fd);
	unlink(path);
	return rc;
}
