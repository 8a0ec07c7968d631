/*
 * main: lienthongd's command line.
 *
 *   lienthongd [--config FILE] [--check-config] [--print-config-template]
 *              [--version] [--help]
 *
 * Runs in the foreground (systemd Type=notify, or a terminal with logs on
 * stderr). Exit status: 0 after a clean stop, 1 when it could not start or
 * the configuration is invalid, 2 for a usage error.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "log.h"

#define DEFAULT_CONFIG "/etc/lienthong/lienthong.conf"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: lienthongd [OPTION]...\n"
		"Keep a province's one-stop administrative system in sync with the national\n"
		"procedure database, the National Public Service Portal and the payment platform.\n"
		"\n"
		"  -c, --config FILE           configuration file (default %s)\n"
		"  -t, --check-config          validate the configuration, its connectors and\n"
		"                              flows; print every error; exit 0 or 1\n"
		"      --print-config-template print the example configuration with every key\n"
		"  -V, --version               print the version and exit\n"
		"  -h, --help                  print this help and exit\n"
		"\n"
		"Signals: SIGTERM/SIGINT stop gracefully, SIGHUP reloads the configuration.\n"
		"Operate it with lienthongctl(1); configuration in lienthong.conf(5).\n",
		DEFAULT_CONFIG);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check-config", no_argument, NULL, 't'},
		{"print-config-template", no_argument, NULL, 'T'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *config = DEFAULT_CONFIG;
	bool check = false;
	int c;

	while ((c = getopt_long(argc, argv, "c:tVh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 't': check = true; break;
		case 'T': conf_print_template(stdout); return 0;
		case 'V': printf("lienthongd %s\n", LT_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "lienthongd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	log_setup(LOG_TARGET_AUTO, LOG_INFO);
	if (check)
		return daemon_check_config(config);

	struct daemon *d = daemon_new(config);
	int rc = 1;
	if (daemon_start(d) == 0)
		rc = daemon_run(d);
	daemon_free(d);
	if (rc == 0)
		log_notice("stopped");
	return rc;
}
