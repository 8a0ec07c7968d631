/*
 * lienthongctl: the operator's client of lienthongd's control socket.
 *
 *   lienthongctl [--socket PATH] [--json] [--timeout SECONDS] COMMAND [ARGS...]
 *
 * It sends one request and prints the answer: readable text by default
 * (tables for status and connectors, with column widths counted in
 * characters because names and errors are Vietnamese), the JSON result with
 * --json for scripts. The command list, usages and argument names come from
 * the daemon's ctl_commands table, so help and argument mapping cannot drift
 * from the server; commands this client does not know are still sent (a newer
 * daemon may know them) with their arguments as {"args":[...]}.
 *
 * Exit status: 0 ok, 1 the daemon answered that the command failed, 2 usage
 * error, 3 the daemon is unreachable or did not speak the protocol.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control.h"
#include "util.h"

#ifndef LT_VERSION
#define LT_VERSION "unknown"
#endif

#define CTL_DEFAULT_SOCKET     "/run/lienthong/control.sock"
#define CTL_DEFAULT_TIMEOUT_MS 30000
#define ERROR_WIDTH	       60 /* characters of an error shown in a table cell */

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

/* ---- text width (UTF-8) ------------------------------------------------ */

/* Combining marks take no column (NFD Vietnamese: "e" + U+0302 + U+0301). */
static bool is_combining(unsigned cp)
{
	return (cp >= 0x300 && cp <= 0x36f) || (cp >= 0x1ab0 && cp <= 0x1aff) ||
	       (cp >= 0x1dc0 && cp <= 0x1dff) || (cp >= 0x20d0 && cp <= 0x20ff) ||
	       (cp >= 0xfe20 && cp <= 0xfe2f);
}

/* Decodes one code point at s; returns its byte length (1 for an invalid byte). */
static size_t utf8_next(const char *s, unsigned *cp)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = u[0] < 0x80	       ? 1
		   : (u[0] >> 5) == 6  ? 2
		   : (u[0] >> 4) == 14 ? 3
		   : (u[0] >> 3) == 30 ? 4
				       : 0;
	if (n == 0) {
		*cp = u[0];
		return 1;
	}
	*cp = n == 1 ? u[0] : u[0] & (0x7f >> n);
	for (size_t i = 1; i < n; i++) {
		if ((u[i] & 0xc0) != 0x80) {
			*cp = u[0];
			return 1;
		}
		*cp = (*cp << 6) | (u[i] & 0x3f);
	}
	return n;
}

static size_t text_width(const char *s)
{
	size_t w = 0;
	unsigned cp;
	while (*s) {
		s += utf8_next(s, &cp);
		w += !is_combining(cp);
	}
	return w;
}

/*
 * A copy of s fit for one table cell: control characters (newlines in an
 * error) become spaces, and a text wider than max ends with "…".
 */
static char *cell_text(const char *s, size_t max)
{
	struct dynbuf b;
	bool cut = max && text_width(s) > max;
	size_t w = 0;
	unsigned cp;
	dynbuf_init(&b, 0);
	while (*s) {
		size_t n = utf8_next(s, &cp);
		if (!is_combining(cp)) {
			if (cut && w + 1 >= max)
				break;
			w++;
		}
		if (cp < 0x20 || cp == 0x7f)
			dynbuf_add(&b, " ", 1);
		else
			dynbuf_add(&b, s, n);
		s += n;
	}
	if (cut)
		dynbuf_addstr(&b, "…");
	return dynbuf_steal(&b, NULL);
}

/* ---- tables ------------------------------------------------------------ */

struct table {
	size_t ncols;
	const char *const *head;
	char **cells; /* owned, nrows * ncols */
	size_t nrows;
};

/* Adds a row; takes ownership of the ncols strings. */
static void table_row(struct table *t, char **row)
{
	t->cells = xrealloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(char *));
	memcpy(t->cells + t->nrows * t->ncols, row, t->ncols * sizeof(char *));
	t->nrows++;
}

static void print_padded(const char *s, size_t width, bool last)
{
	fputs(s, stdout);
	if (last)
		return;
	for (size_t w = text_width(s); w < width + 2; w++)
		putchar(' ');
}

static void table_print_free(struct table *t)
{
	size_t *width = xcalloc(t->ncols, sizeof(size_t));
	for (size_t c = 0; c < t->ncols; c++) {
		width[c] = text_width(t->head[c]);
		for (size_t r = 0; r < t->nrows; r++)
			width[c] = LT_MAX(width[c], text_width(t->cells[r * t->ncols + c]));
	}
	for (size_t c = 0; c < t->ncols; c++)
		print_padded(t->head[c], width[c], c + 1 == t->ncols);
	putchar('\n');
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++)
			print_padded(t->cells[r * t->ncols + c], width[c], c + 1 == t->ncols);
		putchar('\n');
	}
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(width);
}

/* ---- values ------------------------------------------------------------ */

/* "2h 03m", "4m 05s", "12s", "3d 04h". */
static char *fmt_duration(int64_t s)
{
	if (s < 0)
		s = -s;
	if (s < 60)
		return xasprintf("%llds", (long long)s);
	if (s < 3600)
		return xasprintf("%lldm %02llds", (long long)(s / 60), (long long)(s % 60));
	if (s < 86400)
		return xasprintf("%lldh %02lldm", (long long)(s / 3600),
				 (long long)(s % 3600 / 60));
	return xasprintf("%lldd %02lldh", (long long)(s / 86400), (long long)(s % 86400 / 3600));
}

/* "12s ago", "in 4m"; the coarse unit only, tables are about orders of magnitude. */
static char *fmt_relative(int64_t delta_s)
{
	int64_t a = delta_s < 0 ? -delta_s : delta_s;
	char unit[32];
	if (a < 60)
		snprintf(unit, sizeof(unit), "%llds", (long long)a);
	else if (a < 3600)
		snprintf(unit, sizeof(unit), "%lldm", (long long)(a / 60));
	else if (a < 86400)
		snprintf(unit, sizeof(unit), "%lldh %02lldm", (long long)(a / 3600),
			 (long long)(a % 3600 / 60));
	else
		snprintf(unit, sizeof(unit), "%lldd %02lldh", (long long)(a / 86400),
			 (long long)(a % 86400 / 3600));
	return delta_s > 0 ? xasprintf("in %s", unit) : xasprintf("%s ago", unit);
}

/* Parses "2026-11-27T04:33:06Z" (fraction and offset allowed) into epoch seconds. */
static bool parse_iso(const char *s, int64_t *out)
{
	struct tm tm;
	int n = 0, oh = 0, om = 0;
	char sign = 0;
	memset(&tm, 0, sizeof(tm));
	if (sscanf(s, "%4d-%2d-%2d%*1[T ]%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
		return false;
	s += n;
	if (*s == '.')
		for (s++; *s >= '0' && *s <= '9'; s++)
			;
	if ((*s == '+' || *s == '-') && sscanf(s + 1, "%2d:%2d", &oh, &om) >= 1)
		sign = *s;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return false;
	*out = (int64_t)t - (sign == '+' ? 1 : sign == '-' ? -1 : 0) * (oh * 3600 + om * 60);
	return true;
}

/* A time as epoch seconds from an ISO string or a number (s, or ms when huge). */
static bool json_time(json_t *v, int64_t *out)
{
	if (json_is_string(v))
		return parse_iso(json_string_value(v), out);
	if (json_is_number(v) && json_number_value(v) > 0) {
		double x = json_number_value(v);
		*out = (int64_t)(x > 1e11 ? x / 1000 : x);
		return true;
	}
	return false;
}

/* The relative time of v, or "-" when unset. */
static char *cell_time(json_t *v)
{
	int64_t t;
	if (!json_time(v, &t))
		return xstrdup("-");
	return fmt_relative(t - (int64_t)time(NULL));
}

/* next_run: an ISO time, seconds from now ("in_s"), or {"in_s": n}. */
static char *cell_next_run(json_t *flow)
{
	json_t *v = json_object_get(flow, "next_run");
	json_t *in = json_is_object(v)	 ? json_object_get(v, "in_s")
		     : json_is_number(v) ? v
					 : json_object_get(flow, "next_run_in_s");
	if (json_is_number(in))
		return fmt_relative(LT_MAX((int64_t)json_number_value(in), (int64_t)0));
	return json_is_string(v) ? cell_time(v) : xstrdup("-");
}

/* A string member, or "-". Any scalar is shown as its JSON text. */
static char *cell_str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (json_is_string(v))
		return cell_text(json_string_value(v), 0);
	if (!v || json_is_null(v) || json_is_object(v) || json_is_array(v))
		return xstrdup("-");
	char *s = json_dumps(v, JSON_ENCODE_ANY);
	return s ? s : xstrdup("-");
}

/* "5m ago: text" from an error text and its time, truncated. */
static char *cell_error(json_t *o, const char *text_key, const char *at_key)
{
	const char *e = json_string_value(json_object_get(o, text_key));
	int64_t t;
	char *s, *rel, *cell;
	if (!e || !*e)
		return xstrdup("-");
	if (at_key && json_time(json_object_get(o, at_key), &t)) {
		rel = fmt_relative(t - (int64_t)time(NULL));
		s = xasprintf("%s: %s", rel, e);
		free(rel);
	} else {
		s = xstrdup(e);
	}
	cell = cell_text(s, ERROR_WIDTH);
	free(s);
	return cell;
}

static char *fmt_bytes(double n)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	size_t u = 0;
	while (n >= 1024 && u + 1 < LT_ARRAY_SIZE(unit)) {
		n /= 1024;
		u++;
	}
	return u ? xasprintf("%.1f %s", n, unit[u]) : xasprintf("%.0f B", n);
}

/* ---- printers ---------------------------------------------------------- */

/* A string member for printf, "-" when absent. Borrowed. */
static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "-";
}

static void print_json(json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
	putchar('\n');
}

static void print_connector_table(json_t *list)
{
	static const char *const head[] = {"CONNECTOR", "TYPE",	   "STATE",
					   "CIRCUIT",	"LAST OK", "LAST ERROR"};
	struct table t = {.ncols = LT_ARRAY_SIZE(head), .head = head};
	size_t i;
	json_t *c;
	if (!json_array_size(list)) {
		printf("no connectors configured\n");
		return;
	}
	json_array_foreach (list, i, c) {
		char *row[] = {cell_str(c, "name"),
			       cell_str(c, "type"),
			       cell_str(c, "state"),
			       cell_str(c, "circuit"),
			       cell_time(json_object_get(c, "last_ok")),
			       cell_error(c, "last_error", "last_error_at")};
		table_row(&t, row);
	}
	table_print_free(&t);
}

static void print_flow_table(json_t *list)
{
	static const char *const head[] = {"FLOW",    "STATE",	  "LAST RUN",
					   "LAST OK", "NEXT RUN", "LAST ERROR"};
	struct table t = {.ncols = LT_ARRAY_SIZE(head), .head = head};
	size_t i;
	json_t *f;
	if (!json_array_size(list)) {
		printf("no flows configured\n");
		return;
	}
	json_array_foreach (list, i, f) {
		char *row[] = {cell_str(f, "name"),
			       cell_str(f, "state"),
			       cell_time(json_object_get(f, "last_start")),
			       cell_time(json_object_get(f, "last_ok")),
			       cell_next_run(f),
			       cell_error(f, "last_error", "last_error_at")};
		table_row(&t, row);
	}
	table_print_free(&t);
}

static void print_header_config(json_t *cfg)
{
	int64_t t;
	char *path = cell_str(cfg, "path");
	printf("%-12s%s", "config:", path);
	if (json_time(json_object_get(cfg, "loaded"), &t)) {
		char *rel = fmt_relative(t - (int64_t)time(NULL));
		char *when = cell_str(cfg, "loaded");
		printf(", loaded %s (%s)", when, rel);
		free(rel);
		free(when);
	}
	putchar('\n');
	free(path);
}

static void print_header_store(json_t *st)
{
	char *health = cell_str(st, "health");
	json_t *size = json_object_get(st, "size_bytes");
	const char *why = json_string_value(json_object_get(st, "why"));
	printf("%-12s%s", "store:", health);
	if (json_is_number(size)) {
		char *b = fmt_bytes(json_number_value(size));
		printf(", %s", b);
		free(b);
	}
	if (why && *why) {
		char *w = cell_text(why, 0);
		printf(" (%s)", w);
		free(w);
	}
	putchar('\n');
	free(health);
}

/*
 * "label:  3 ok, 1 failed, last error: ..." from {"ok":3,"failed":1,
 * "last_error":"..."}: counts before their key, other scalars after it.
 */
static void print_header_counts(const char *label, json_t *o)
{
	const char *k;
	json_t *v;
	bool first = true;
	printf("%-12s", label);
	json_object_foreach (o, k, v) {
		char *s, *key;
		if (json_is_null(v) || json_is_object(v) || json_is_array(v))
			continue;
		s = cell_str(o, k);
		key = xstrdup(k);
		for (char *p = key; *p; p++)
			*p = *p == '_' ? ' ' : *p;
		if (json_is_integer(v))
			printf("%s%s %s", first ? "" : ", ", s, key);
		else
			printf("%s%s: %s", first ? "" : ", ", key, s);
		free(key);
		free(s);
		first = false;
	}
	printf("%s\n", first ? "-" : "");
}

static void print_status(json_t *r)
{
	json_t *up = json_object_get(r, "uptime_s");
	json_t *mismatches = json_object_get(r, "mismatches");
	char *version = cell_str(r, "version");
	printf("lienthongd %s", version);
	if (json_is_integer(json_object_get(r, "pid")))
		printf(", pid %lld", (long long)json_integer_value(json_object_get(r, "pid")));
	if (json_is_number(up)) {
		char *u = fmt_duration((int64_t)json_number_value(up));
		printf(", up %s", u);
		free(u);
	}
	printf("%s\n", json_is_true(json_object_get(r, "stopping")) ? ", stopping" : "");
	free(version);
	print_header_config(json_object_get(r, "config"));
	print_header_store(json_object_get(r, "store"));
	print_header_counts("reloads:", json_object_get(r, "reloads"));
	if (json_is_object(mismatches))
		print_header_counts("mismatches:", mismatches);
	putchar('\n');
	print_connector_table(json_object_get(r, "connectors"));
	putchar('\n');
	print_flow_table(json_object_get(r, "flows"));
}

static void print_connectors(json_t *r)
{
	print_connector_table(json_is_array(r) ? r : json_object_get(r, "connectors"));
}

static void print_metrics(json_t *r)
{
	const char *text = json_string_value(json_object_get(r, "text"));
	if (text)
		fputs(text, stdout);
	else
		print_json(r);
}

static void print_version(json_t *r)
{
	printf("lienthongd %s (control protocol %lld)\nlienthongctl %s (control protocol %d)\n",
	       jstr(r, "version"), (long long)json_integer_value(json_object_get(r, "protocol")),
	       LT_VERSION, CTL_PROTO_VERSION);
}

static void print_help_answer(json_t *r)
{
	size_t i, w = 0;
	json_t *c;
	json_array_foreach (json_object_get(r, "commands"), i, c) {
		w = LT_MAX(w, text_width(jstr(c, "usage")));
	}
	json_array_foreach (json_object_get(r, "commands"), i, c) {
		const char *usage = jstr(c, "usage");
		const char *level = jstr(c, "level");
		printf("  %s", usage);
		for (size_t k = text_width(usage); k < w + 2; k++)
			putchar(' ');
		printf("%s%s\n", jstr(c, "help"),
		       !strcmp(level, "write") ? " (root or the service user)" : "");
	}
}

static void print_reload(json_t *r)
{
	(void)r;
	printf("configuration reloaded\n");
}

static void print_run(json_t *r)
{
	const char *flow = jstr(r, "flow");
	if (json_is_true(json_object_get(r, "started")))
		printf("flow %s started\n", flow);
	else
		printf("flow %s not started: %s\n", flow, jstr(r, "reason"));
}

static void print_flow_state(json_t *r)
{
	printf("flow %s is now %s\n", jstr(r, "flow"), jstr(r, "state"));
}

/*
 * Text printers by command. A result without the member a printer needs (a
 * daemon of another version) is printed as JSON instead.
 */
static const struct {
	const char *cmd;
	void (*print)(json_t *result);
	const char *must_have; /* member that must exist, or NULL: any object or array */
} printers[] = {
	{"status", print_status, NULL},
	{"connectors", print_connectors, NULL},
	{"metrics", print_metrics, "text"},
	{"version", print_version, "version"},
	{"help", print_help_answer, "commands"},
	{"reload", print_reload, NULL},
	{"run", print_run, "flow"},
	{"pause", print_flow_state, "state"},
	{"resume", print_flow_state, "state"},
};

static void print_result(const char *cmd, json_t *result)
{
	for (size_t i = 0; i < LT_ARRAY_SIZE(printers); i++) {
		if (strcmp(printers[i].cmd, cmd) != 0)
			continue;
		bool fits = printers[i].must_have
				    ? json_object_get(result, printers[i].must_have) != NULL
				    : json_is_object(result) || json_is_array(result);
		if (fits) {
			printers[i].print(result);
			return;
		}
		break;
	}
	print_json(result);
}

static void print_failure(json_t *answer)
{
	const char *e = json_string_value(json_object_get(answer, "error"));
	const char *code = json_string_value(json_object_get(answer, "code"));
	size_t i;
	json_t *v;
	fprintf(stderr, "lienthongctl: %s%s%s%s\n", e ? e : "the command failed", code ? " (" : "",
		code ? code : "", code ? ")" : "");
	json_array_foreach (json_object_get(answer, "errors"), i, v) {
		if (json_is_string(v))
			fprintf(stderr, "  %s\n", json_string_value(v));
	}
}

/* ---- arguments --------------------------------------------------------- */

static const struct ctl_command *command_find(const char *name)
{
	for (const struct ctl_command *c = ctl_commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

/*
 * Builds args from the positional arguments using the command's usage:
 * "run FLOW" maps the first argument to "flow"; "[NOTE]" is optional.
 * Returns NULL with a message on stderr when the count does not fit.
 */
static json_t *build_args(const struct ctl_command *c, int argc, char **argv)
{
	json_t *args = json_object();
	char *usage = xstrdup(c->usage), *save = NULL;
	int i = 0, required = 0;
	strtok_r(usage, " ", &save); /* the command name */
	for (char *tok = strtok_r(NULL, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		bool optional = tok[0] == '[';
		char *name = tok + optional;
		name[strcspn(name, "]")] = '\0';
		for (char *p = name; *p; p++)
			*p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
		required += !optional;
		if (i < argc)
			json_object_set_new(args, name, json_string(argv[i]));
		else if (!optional)
			break;
		i++;
	}
	if (argc < required || argc > i) {
		fprintf(stderr, "lienthongctl: usage: lienthongctl %s\n", c->usage);
		json_decref(args);
		args = NULL;
	}
	free(usage);
	return args;
}

static json_t *build_unknown_args(int argc, char **argv)
{
	json_t *list = json_array();
	for (int i = 0; i < argc; i++)
		json_array_append_new(list, json_string(argv[i]));
	return json_pack("{s:o}", "args", list);
}

static void usage_full(void)
{
	size_t w = 0;
	printf("Usage: lienthongctl [--socket PATH] [--json] [--timeout SECONDS] COMMAND "
	       "[ARGS...]\n"
	       "\n"
	       "Talks to lienthongd over its control socket.\n"
	       "\n"
	       "Commands:\n");
	for (const struct ctl_command *c = ctl_commands; c->name; c++)
		w = LT_MAX(w, text_width(c->usage));
	for (const struct ctl_command *c = ctl_commands; c->name; c++) {
		printf("  %s", c->usage);
		for (size_t k = text_width(c->usage); k < w + 2; k++)
			putchar(' ');
		printf("%s%s\n", c->help,
		       c->level == CTL_WRITE ? " (root or the service user)" : "");
	}
	printf("\n"
	       "Options:\n"
	       "  -s, --socket PATH    control socket (default $LIENTHONG_SOCKET, else %s)\n"
	       "  -j, --json           print the result as JSON (the whole answer on failure)\n"
	       "  -t, --timeout SECS   give up after this long (default %d s)\n"
	       "  -h, --help           show this help\n"
	       "  -V, --version        show the version\n"
	       "\n"
	       "Exit status: 0 ok, 1 the command failed, 2 usage error,\n"
	       "3 the daemon is unreachable or did not answer in the protocol.\n",
	       CTL_DEFAULT_SOCKET, CTL_DEFAULT_TIMEOUT_MS / 1000);
}

static int usage_error(const char *msg)
{
	fprintf(stderr, "lienthongctl: %s\nTry 'lienthongctl --help'.\n", msg);
	return EXIT_USAGE;
}

static bool parse_timeout(const char *s, int *out_ms)
{
	int64_t ms;
	char *end;
	double secs;
	if (parse_duration_ms(s, 1000, &ms) == 0 && ms > 0 && ms <= INT32_MAX) {
		*out_ms = (int)ms;
		return true;
	}
	errno = 0;
	secs = strtod(s, &end);
	if (errno || end == s || *end || !(secs > 0) || secs > 86400)
		return false;
	*out_ms = LT_MAX((int)(secs * 1000), 1);
	return true;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},  {"json", no_argument, NULL, 'j'},
		{"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},	   {NULL, 0, NULL, 0},
	};
	const char *path = getenv("LIENTHONG_SOCKET");
	int timeout_ms = CTL_DEFAULT_TIMEOUT_MS, opt, r;
	bool as_json = false;
	json_t *args = NULL, *answer = NULL;
	char *err = NULL;
	int code;

	if (!path || !*path)
		path = CTL_DEFAULT_SOCKET;
	/* "+": options end at the command, so its arguments may start with '-'. */
	while ((opt = getopt_long(argc, argv, "+s:jt:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 's': path = optarg; break;
		case 'j': as_json = true; break;
		case 't':
			if (!parse_timeout(optarg, &timeout_ms))
				return usage_error("--timeout wants a positive number of seconds");
			break;
		case 'h': usage_full(); return EXIT_OK;
		case 'V':
			printf("lienthongctl %s (control protocol %d)\n", LT_VERSION,
			       CTL_PROTO_VERSION);
			return EXIT_OK;
		default: return usage_error("unknown option");
		}
	}
	if (optind >= argc)
		return usage_error("no command given");

	const char *cmd = argv[optind];
	const struct ctl_command *c = command_find(cmd);
	args = c ? build_args(c, argc - optind - 1, argv + optind + 1)
		 : build_unknown_args(argc - optind - 1, argv + optind + 1);
	if (!args)
		return EXIT_USAGE;

	r = ctl_client_call(path, cmd, args, timeout_ms, &answer, &err);
	json_decref(args);
	if (r < 0) {
		fprintf(stderr, "lienthongctl: %s\n", err ? err : strerror(-r));
		free(err);
		return EXIT_UNREACHABLE;
	}
	if (json_is_true(json_object_get(answer, "ok"))) {
		json_t *result = json_object_get(answer, "result");
		if (as_json)
			print_json(result);
		else
			print_result(cmd, result);
		code = EXIT_OK;
	} else {
		if (as_json)
			print_json(answer);
		print_failure(answer);
		code = EXIT_FAILED;
	}
	json_decref(answer);
	if (fflush(stdout) != 0 && code == EXIT_OK)
		code = EXIT_FAILED;
	return code;
}
