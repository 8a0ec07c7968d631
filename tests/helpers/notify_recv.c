/*
 * notify_recv: the system tests' stand-in for systemd's notification
 * socket. Binds a datagram UNIX socket at PATH and appends every message it
 * receives to OUT, one message per line (newlines inside a message become
 * spaces), until killed. Tests then grep OUT for READY=1, RELOADING=1, ...
 *
 *   notify_recv PATH OUT
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char buf[4096];

	if (argc != 3 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "usage: notify_recv PATH OUT\n");
		return 2;
	}
	strcpy(sa.sun_path, argv[1]);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "notify_recv: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	FILE *out = fopen(argv[2], "a");
	if (!out) {
		fprintf(stderr, "notify_recv: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		buf[n] = '\0';
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] == '\n')
				buf[i] = ' ';
		fprintf(out, "%s\n", buf);
		fflush(out);
	}
}
