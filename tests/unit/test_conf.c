/* Unit tests of conf: typed keys, ranges, defaults, unknown keys and
 * sections named with file and line, secrets, and the generated template
 * staying equal to etc/lienthong.conf. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "http.h"
#include "tap.h"
#include "util.h"

static char dir[64];

static char *write_conf(const char *name, const char *text)
{
	char *p = xasprintf("%s/%s", dir, name);
	write_file_atomic(p, text, strlen(text), 0640);
	return p;
}

static bool has_error(const struct conf_errors *e, const char *needle)
{
	for (size_t i = 0; i < e->n; i++)
		if (strstr(e->msgs[i], needle))
			return true;
	return false;
}

static void test_valid(void)
{
	struct conf_errors e = {0};
	struct config *c = NULL;
	char *p = write_conf(
		"ok.conf", "[daemon]\nlog_level = debug\nshutdown_timeout = 3s\n"
			   "[store]\npath = /tmp/x.db\nmax_size = 1G\n"
			   "[control]\nmode = 0600\n"
			   "[connector.drop]\ntype = files\nin_dir = /tmp/in\n"
			   "[flow.move]\ntype = relay\nsource = drop\nsink = drop\ninterval = 5m\n"
			   "jitter = 30s\n");
	int r = conf_load(p, &c, &e);
	is_int(r, 0, "a valid file loads");
	for (size_t i = 0; i < e.n; i++)
		printf("# %s\n", e.msgs[i]);
	if (c) {
		is_int(c->daemon.log_level, 7, "log_level debug maps to LOG_DEBUG");
		is_int(c->daemon.shutdown_timeout_ms, 3000, "a duration is parsed to ms");
		is_int(c->store.max_size_bytes, 1LL << 30, "a size is parsed to bytes");
		is_int(c->control.mode, 0600, "a mode is parsed as octal");
		is_int(c->control.max_clients, 32, "an unset key takes its default");
		is_int(c->n_connectors, 1, "one connector section");
		is_int(c->n_flows, 1, "one flow section");
		is_int(c->flows[0].interval_ms, 300000, "flow interval parsed");
		is_int(c->flows[0].jitter_ms, 30000, "flow jitter parsed");
		ok(conf_connector_find(c, "drop") != NULL, "the connector is found by name");
	}
	conf_free(c);
	conf_errors_free(&e);
	free(p);
}

static void test_errors(void)
{
	struct conf_errors e = {0};
	struct config *c = NULL;
	char *p = write_conf("bad.conf", "[daemon]\n"		      /* 1 */
					 "log_level = loud\n"	      /* 2 */
					 "colour = blue\n"	      /* 3 */
					 "[store]\n"		      /* 4 */
					 "busy_timeout = 2 weeks\n"   /* 5 */
					 "[control]\n"		      /* 6 */
					 "max_clients = 100000\n"     /* 7 */
					 "[nonsense]\n"		      /* 8 */
					 "a = b\n"		      /* 9 */
					 "[connector.x]\n"	      /* 10 */
					 "type = warp\n"	      /* 11 */
					 "[connector.y]\n"	      /* 12 */
					 "in_dir = relative/path\n"); /* 13 */
	int r = conf_load(p, &c, &e);
	ok(r < 0 && c == NULL, "an invalid file is refused");
	ok(has_error(&e, "bad.conf:2:") && has_error(&e, "'loud' is not one of"),
	   "a bad enum value is named with file and line");
	ok(has_error(&e, "bad.conf:3: [daemon] unknown key 'colour'"),
	   "an unknown key is named with file and line");
	ok(has_error(&e, "bad.conf:5:") && has_error(&e, "not a duration"),
	   "a bad duration is named with its line");
	ok(has_error(&e, "bad.conf:7:") && has_error(&e, "out of range"),
	   "an out-of-range integer is named with its line");
	ok(has_error(&e, "bad.conf:9: unknown section [nonsense]"),
	   "an unknown section is named with its line");
	ok(has_error(&e, "bad.conf:11:") && has_error(&e, "unknown connector type 'warp'"),
	   "an unknown connector type is named");
	ok(has_error(&e, "[connector.y] missing required key 'type'"),
	   "a connector without type is reported");
	ok(e.n >= 7, "every error is collected, not just the first (%zu)", e.n);
	conf_errors_free(&e);
	free(p);

	p = write_conf("dup.conf", "[daemon]\nlog_level = info\nlog_level = debug\n");
	r = conf_load(p, &c, &e);
	ok(r < 0 && has_error(&e, "dup.conf:3:") && has_error(&e, "set twice"),
	   "a key set twice is an error on the second line");
	conf_errors_free(&e);
	free(p);

	r = conf_load("/nonexistent/lienthong.conf", &c, &e);
	ok(r < 0 && has_error(&e, "/nonexistent/lienthong.conf: cannot open"),
	   "a missing file is reported with its path");
	conf_errors_free(&e);
}

static void test_secret(void)
{
	struct conf_errors e = {0};
	struct config *c = NULL;
	char *secret = xasprintf("%s/pw", dir);
	write_file_atomic(secret, "hunter2\n", 8, 0644);
	char *text = xasprintf("[connector.nat]\ntype = adapter\nurl = http://127.0.0.1:1\n"
			       "password = %s\n",
			       secret);
	char *p = write_conf("sec.conf", text);
	int r = conf_load(p, &c, &e);
	ok(r < 0 && has_error(&e, "sec.conf:4:") && has_error(&e, "must not be readable by others"),
	   "a loose secrets file is refused with file and line");
	conf_errors_free(&e);
	chmod(secret, 0600);
	r = conf_load(p, &c, &e);
	is_int(r, 0, "a 0600 secrets file is accepted");
	conf_free(c);
	conf_errors_free(&e);
	free(p);
	free(text);
	free(secret);
}

static void test_template(void)
{
	char *path = xasprintf("%s/template.conf", dir);
	FILE *f = fopen(path, "w");
	conf_print_template(f);
	fclose(f);
	char *gen = NULL, *committed = NULL;
	size_t glen = 0, clen = 0;
	read_file_bounded(path, 1 << 20, &gen, &glen);
	int r = read_file_bounded("etc/lienthong.conf", 1 << 20, &committed, &clen);
	ok(r == 0 && glen == clen && memcmp(gen, committed, glen) == 0,
	   "etc/lienthong.conf is what the option tables generate (make etc/lienthong.conf)");
	/* The template itself is a valid configuration (every key commented). */
	struct conf_errors e = {0};
	struct config *c = NULL;
	is_int(conf_load(path, &c, &e), 0, "the generated template loads");
	conf_free(c);
	conf_errors_free(&e);
	free(gen);
	free(committed);
	free(path);
}

int main(void)
{
	strcpy(dir, "/tmp/lt-conf-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	test_valid();
	test_errors();
	test_secret();
	test_template();
	char *cmd = xasprintf("rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("# cleanup failed\n");
	free(cmd);
	return tap_done();
}
