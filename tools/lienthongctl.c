/*
 * lienthongctl: the operator's client of lienthongd's control socket.
 *
 *   lienthongctl [--socket PATH] [--json] [--iso] [--timeout SECONDS] COMMAND [ARGS...]
 *
 * It sends one request and prints the answer: readable text by default
 * (tables for status, connectors, procedures, mismatches and the dossier
 * outbox, with column widths counted in characters because names and errors
 * are Vietnamese), the JSON result with --json for scripts. The command
 * list, usages, argument and option names come from the daemon's
 * ctl_commands table, so help and argument mapping cannot drift from the
 * server: "mismatches [--kind KIND]" makes --kind VALUE (or --kind=VALUE)
 * the argument "kind", and "retry ID|--all" wants exactly one of "id" and
 * "all" (true). Commands this client does not know are still sent (a newer
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
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "util.h"

#ifndef LT_VERSION
#define LT_VERSION "unknown"
#endif

#define CTL_DEFAULT_SOCKET     "/run/lienthong/control.sock"
#define CTL_DEFAULT_TIMEOUT_MS 30000
/* report without --timeout: a year of a large province's payments */
#define CTL_REPORT_TIMEOUT_MS (30 * 60 * 1000)
#define ERROR_WIDTH	      60   /* characters of an error shown in a table cell */
#define OUT_WIDTH	      100  /* columns a table fits in when stdout is no terminal */
#define USAGE_WIDTH	      32   /* a longer usage in help gets a line of its own */
#define BLOCK_BYTES	      4096 /* of a raw record or a detail shown by `mismatch` */
#define HISTORY_ROWS	      20   /* rows of a procedure's history shown */
#define FIELDS_WIDTH	      26   /* of the changed fields in the procedures table */
#define PRETTY_MARGIN	      6 /* a JSON value that fits the width less this stays on one line */

/* --iso: absolute times (UTC) in tables instead of "5m ago". */
static bool opt_iso;

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
 * error, escape sequences in a record from outside) become spaces, and a
 * text wider than max ends with "…".
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
		if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
			dynbuf_add(&b, " ", 1);
		else
			dynbuf_add(&b, s, n);
		s += n;
	}
	if (cut)
		dynbuf_addstr(&b, "…");
	return dynbuf_steal(&b, NULL);
}

/* s past its first n characters (and the combining marks that belong to them). */
static const char *text_skip(const char *s, size_t n)
{
	unsigned cp;
	size_t len;
	while (*s) {
		len = utf8_next(s, &cp);
		if (!is_combining(cp)) {
			if (!n)
				break;
			n--;
		}
		s += len;
	}
	return s;
}

/*
 * A cell of s at most max wide that shows where s departs from other: when
 * the first difference lies past what a plain cut keeps, the cell starts
 * with "…" and a little context before it. A fee that differs at the end of
 * a long array is then visible in both columns.
 */
static char *cell_diff(const char *s, const char *other, size_t max)
{
	size_t i = 0, before;
	char *head, *rest, *out;
	if (!other || text_width(s) <= max || max < 8)
		return cell_text(s, max);
	while (s[i] && s[i] == other[i])
		i++;
	while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80)
		i--;
	head = xstrndup(s, i);
	before = text_width(head);
	free(head);
	if (before < max * 2 / 3)
		return cell_text(s, max);
	/* Context before the difference, but never leave the cell part empty
	 * (s may end where the difference starts: a name that lost a suffix). */
	size_t skip = LT_MIN(before - max / 3, text_width(s) - (max - 1));
	rest = cell_text(text_skip(s, skip), max - 1);
	out = xasprintf("…%s", rest);
	free(rest);
	return out;
}

/* The columns stdout has: the terminal's, else OUT_WIDTH. */
static size_t out_width(void)
{
	struct winsize ws;
	if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 60)
		return ws.ws_col;
	return OUT_WIDTH;
}

/*
 * Prints text, at most max_bytes of it, each line after indent; control
 * characters but newlines become spaces (a raw record comes from outside).
 * Returns whether text was cut.
 */
static bool print_block(const char *text, const char *indent, size_t max_bytes)
{
	const char *s = text;
	unsigned cp;
	bool bol = true;
	while (*s && (size_t)(s - text) < max_bytes) {
		size_t n = utf8_next(s, &cp);
		if ((size_t)(s - text) + n > max_bytes)
			break;
		if (bol)
			fputs(indent, stdout);
		bol = cp == '\n';
		if (cp == '\n')
			putchar('\n');
		else if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
			putchar(' ');
		else
			fwrite(s, 1, n, stdout);
		s += n;
	}
	if (!bol)
		putchar('\n');
	return *s != '\0';
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

/*
 * Narrows column flex (names, summaries) so that the table fits in width
 * columns, cutting its cells with "…"; never below min_flex, so on a narrow
 * terminal the table overflows rather than showing nothing.
 */
static void table_fit(struct table *t, size_t flex, size_t width, size_t min_flex)
{
	size_t total = 2 * (t->ncols - 1), flex_w = text_width(t->head[flex]);
	for (size_t c = 0; c < t->ncols; c++) {
		size_t w = text_width(t->head[c]);
		for (size_t r = 0; r < t->nrows; r++)
			w = LT_MAX(w, text_width(t->cells[r * t->ncols + c]));
		total += w;
		if (c == flex)
			flex_w = w;
	}
	if (total <= width)
		return;
	size_t max = LT_MAX(flex_w > total - width ? flex_w - (total - width) : 0, min_flex);
	for (size_t r = 0; r < t->nrows; r++) {
		char **cell = &t->cells[r * t->ncols + flex];
		if (text_width(*cell) > max) {
			char *cut = cell_text(*cell, max);
			free(*cell);
			*cell = cut;
		}
	}
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

/* "2026-11-27T04:33:06Z". */
static char *fmt_iso(int64_t t)
{
	char buf[40];
	return xstrdup(fmt_time_iso(t * 1000, buf, sizeof(buf)));
}

/* The relative time of v (absolute with --iso), or "-" when unset. */
static char *cell_time(json_t *v)
{
	int64_t t;
	if (!json_time(v, &t))
		return xstrdup("-");
	return opt_iso ? fmt_iso(t) : fmt_relative(t - (int64_t)time(NULL));
}

/*
 * The time member name of o: the store gives both "x" (ISO) and "x_ms";
 * either will do.
 */
static json_t *member_time(json_t *o, const char *name)
{
	char key[64];
	json_t *v = json_object_get(o, name);
	int64_t t;
	if (json_time(v, &t))
		return v;
	snprintf(key, sizeof(key), "%s_ms", name);
	return json_object_get(o, key);
}

/* "2026-11-27T04:33:06Z (5m ago)" for a detail line, or none_text when unset. */
/* "AT (5m ago)" for time t; takes at. */
static char *with_relative(char *at, int64_t t)
{
	char *rel = fmt_relative(t - (int64_t)time(NULL));
	char *s = xasprintf("%s (%s)", at, rel);
	free(at);
	free(rel);
	return s;
}

static char *when_text(json_t *v, const char *none_text)
{
	int64_t t;
	if (!json_time(v, &t))
		return xstrdup(none_text);
	return with_relative(fmt_iso(t), t);
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

/*
 * A procedure name for display: national names come with spaces around
 * them (the record is kept as sent), which would shift a table column.
 * "-" when NULL.
 */
static char *name_text(const char *s, size_t max)
{
	if (!s)
		return xstrdup("-");
	s += strspn(s, " \t\r\n");
	size_t n = strlen(s);
	while (n && strchr(" \t\r\n", s[n - 1]))
		n--;
	char *trimmed = xstrndup(s, n), *cell = cell_text(trimmed, max);
	free(trimmed);
	return cell;
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

/*
 * One command of help on one line (scripts and test_docs.sh read the first
 * word of each): usage, then help aligned at column width + 4. A usage
 * wider than USAGE_WIDTH (mismatches and its options) is not counted in
 * width, so it does not push every other help to the right.
 */
static void print_command_help(const char *usage, const char *help, bool write, size_t width)
{
	printf("  %s", usage);
	for (size_t k = text_width(usage); k < width + 2; k++)
		putchar(' ');
	printf("%s%s%s\n", text_width(usage) > width ? "  " : "", help,
	       write ? " (root or the service user)" : "");
}

/* The usage column's width: the widest usage that is not too wide. */
static size_t usage_column(size_t width, size_t w)
{
	return w <= USAGE_WIDTH ? LT_MAX(width, w) : width;
}

static void print_help_answer(json_t *r)
{
	size_t i, w = 0;
	json_t *c;
	json_array_foreach (json_object_get(r, "commands"), i, c) {
		w = usage_column(w, text_width(jstr(c, "usage")));
	}
	json_array_foreach (json_object_get(r, "commands"), i, c) {
		print_command_help(jstr(c, "usage"), jstr(c, "help"),
				   !strcmp(jstr(c, "level"), "write"), w);
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

/* ---- procedures and mismatches ------------------------------------------ */

/* An integer member as text into buf, "-" when absent. */
static const char *jnum(json_t *o, const char *key, char *buf, size_t len)
{
	json_t *v = json_object_get(o, key);
	if (json_is_integer(v))
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	else if (json_is_number(v))
		snprintf(buf, len, "%g", json_number_value(v));
	else
		snprintf(buf, len, "-");
	return buf;
}

/*
 * A value as one line: a string as its text, anything else as compact JSON
 * (flags: JSON_SORT_KEYS where two values are read side by side).
 */
static char *value_text_f(json_t *v, size_t flags)
{
	if (!v || json_is_null(v))
		return xstrdup("-");
	if (json_is_string(v))
		return xstrdup(json_string_length(v) ? json_string_value(v) : "\"\"");
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | flags);
	return s ? s : xstrdup("?");
}

static char *value_text(json_t *v)
{
	return value_text_f(v, 0);
}

/*
 * JSON text (a column the store keeps as text: detail, fields_changed) or an
 * already parsed value, as a value. New ref; NULL when v is NULL or null.
 */
static json_t *json_of(json_t *v)
{
	json_error_t e;
	json_t *j;
	if (!v || json_is_null(v))
		return NULL;
	if (json_is_string(v) &&
	    (j = json_loads(json_string_value(v), JSON_DECODE_ANY, &e)) != NULL)
		return j;
	return json_incref(v);
}

/*
 * fields_changed as "TENTTHC, PHILEPHI", or "-"; at most max wide (0: no
 * limit), the fields that do not fit counted ("TENTTHC +4"): a count says
 * more than a name cut in the middle.
 */
static char *fields_text(json_t *v, size_t max)
{
	json_t *a = json_of(v), *f;
	struct dynbuf b;
	size_t i, w = 0;
	if (!json_is_array(a)) {
		char *s = a ? value_text(a) : xstrdup("-");
		char *cell = cell_text(s, max);
		free(s);
		json_decref(a);
		return cell;
	}
	dynbuf_init(&b, 0);
	json_array_foreach (a, i, f) {
		char *t = value_text(f), *name = cell_text(t, 0);
		size_t left = json_array_size(a) - i, more = left > 1 ? 5 : 0;
		size_t tw = text_width(name) + (i ? 2 : 0);
		free(t);
		if (max && i && w + tw + more > max) {
			dynbuf_printf(&b, " +%zu", left);
			free(name);
			break;
		}
		dynbuf_printf(&b, "%s%s", i ? ", " : "", name);
		w += tw;
		free(name);
	}
	json_decref(a);
	if (!b.len) {
		dynbuf_free(&b);
		return xstrdup("-");
	}
	/* One field wider than max alone. */
	char *s = dynbuf_steal(&b, NULL), *cell = cell_text(s, max);
	free(s);
	return cell;
}

/*
 * Equal as the operator reads them: numbers by value (3 and 3.0), objects
 * whatever their member order.
 */
static bool json_same(json_t *a, json_t *b)
{
	const char *k;
	json_t *v;
	size_t i;
	if (json_is_number(a) && json_is_number(b))
		return json_number_value(a) == json_number_value(b);
	if (json_typeof(a) != json_typeof(b))
		return false;
	if (json_is_array(a)) {
		if (json_array_size(a) != json_array_size(b))
			return false;
		json_array_foreach (a, i, v) {
			if (!json_same(v, json_array_get(b, i)))
				return false;
		}
		return true;
	}
	if (json_is_object(a)) {
		if (json_object_size(a) != json_object_size(b))
			return false;
		json_object_foreach (a, k, v) {
			json_t *w = json_object_get(b, k);
			if (!w || !json_same(v, w))
				return false;
		}
		return true;
	}
	return json_equal(a, b);
}

/* "5m ago" (or the --iso time) of member name of o, or "-". */
static char *cell_member_time(json_t *o, const char *name)
{
	return cell_time(member_time(o, name));
}

/* The last pass of a catalog flow as "5m ago", "never", or the flow's own text. */
static char *pass_text(json_t *v)
{
	if (json_is_object(v))
		v = member_time(v, "at");
	return json_time(v, &(int64_t){0}) ? cell_time(v) : xstrdup("never");
}

static void print_catalog_flow(json_t *f, int lw)
{
	json_t *detail = json_object_get(f, "detail");
	json_t *pass = json_object_get(detail, "pass");
	const char *summary = json_string_value(json_object_get(f, "last_summary"));
	char *name = cell_str(f, "name"), *state = cell_str(f, "state");
	char *full = pass_text(json_object_get(detail, "last_full"));
	char *quick = pass_text(json_object_get(detail, "last_quick"));
	char *next = cell_next_run(f);
	char *label = xasprintf("flow %s:", name);
	printf("%-*s %s; last full pass %s, last quick pass %s; ", lw, label, state, full, quick);
	printf(strcmp(next, "-") ? "next run %s\n" : "no run scheduled\n", next);
	if (json_is_object(pass)) {
		char a[32], b[32], c[32];
		printf("%-*s now: %s pass, %s: %s listed, %s of %s fetched\n", lw, "",
		       jstr(pass, "mode"), jstr(pass, "phase"), jnum(pass, "listed", a, sizeof(a)),
		       jnum(pass, "fetched", b, sizeof(b)), jnum(pass, "to_fetch", c, sizeof(c)));
	}
	if (summary && *summary) {
		char *t = cell_text(summary, 0);
		printf("%-*s last pass: %s\n", lw, "", t);
		free(t);
	}
	if (json_string_value(json_object_get(f, "last_error"))) {
		char *e = cell_error(f, "last_error", "last_error_at");
		printf("%-*s last error %s\n", lw, "", e);
		free(e);
	}
	free(label);
	free(name);
	free(state);
	free(full);
	free(quick);
	free(next);
}

static void print_procedures(json_t *r)
{
	static const char *const head[] = {"AT", "CHANGE", "MATTHC", "NAME", "FIELDS"};
	struct table t = {.ncols = LT_ARRAY_SIZE(head), .head = head};
	json_t *flows = json_object_get(r, "flows"), *v;
	json_t *changes = json_object_get(r, "last_changes");
	char n[6][32];
	size_t i, lw = strlen("catalog flows:");

	/* The labels' column: "flow NAME:" may be wider than the others. */
	json_array_foreach (flows, i, v) {
		lw = LT_MAX(lw, strlen("flow :") + strlen(jstr(v, "name")));
	}
	lw = LT_MIN(lw, (size_t)40);
	printf("%-*s %s known nationally: %s active, %s withdrawn; %s not delivered\n", (int)lw,
	       "procedures:", jnum(r, "total", n[0], 32), jnum(r, "active", n[1], 32),
	       jnum(r, "withdrawn", n[2], 32), jnum(r, "undelivered", n[3], 32));
	printf("%-*s %s in the provincial catalogue, %s of them unknown nationally\n", (int)lw,
	       "provincial:", jnum(r, "provincial_total", n[4], 32),
	       jnum(r, "provincial_only", n[5], 32));
	if (!json_array_size(flows))
		printf("%-*s none configured\n", (int)lw, "catalog flows:");
	json_array_foreach (flows, i, v) {
		print_catalog_flow(v, (int)lw);
	}
	putchar('\n');
	if (!json_array_size(changes)) {
		printf("no changes recorded yet\n");
		return;
	}
	printf("latest changes:\n");
	json_array_foreach (changes, i, v) {
		char *row[] = {cell_member_time(v, "at"), cell_str(v, "change"),
			       cell_str(v, "code"),
			       name_text(json_string_value(json_object_get(v, "name")), 0),
			       fields_text(json_object_get(v, "fields_changed"), FIELDS_WIDTH)};
		table_row(&t, row);
	}
	table_fit(&t, 3, out_width(), 20);
	table_print_free(&t);
}

/* "delivered:" of a procedure: is the current version in the provincial system? */
static char *delivered_text(json_t *r)
{
	const char *hash = json_string_value(json_object_get(r, "hash"));
	const char *dh = json_string_value(json_object_get(r, "delivered_hash"));
	char *when = when_text(member_time(r, "delivered"), "");
	char *s;
	if (!dh)
		s = xstrdup("never");
	else if (hash && !strcmp(hash, dh))
		s = xasprintf("the current version%s%s", *when ? ", " : "", when);
	else
		s = xasprintf("an older version%s%s", *when ? ", " : "", when);
	free(when);
	return s;
}

/* National (mapped) and provincial records side by side, differing rows marked. */
static void print_side_by_side(json_t *mapped, json_t *prov)
{
	static const char *const head[] = {" ", "FIELD", "QUỐC GIA", "TỈNH"};
	struct table t = {.ncols = LT_ARRAY_SIZE(head), .head = head};
	json_t *keys = json_array(), *v;
	const char *k;
	size_t i, field_w = text_width("FIELD"), value_w;

	json_object_foreach (mapped, k, v) {
		json_array_append_new(keys, json_string(k));
	}
	json_object_foreach (prov, k, v) {
		if (!json_object_get(mapped, k))
			json_array_append_new(keys, json_string(k));
	}
	json_array_foreach (keys, i, v) {
		field_w = LT_MAX(field_w, LT_MIN(text_width(json_string_value(v)), (size_t)24));
	}
	/* Four columns, three gaps of two. */
	value_w = out_width() > field_w + 1 + 6 + 24 ? (out_width() - field_w - 1 - 6) / 2 : 12;
	json_array_foreach (keys, i, v) {
		k = json_string_value(v);
		json_t *a = json_object_get(mapped, k), *b = json_object_get(prov, k);
		char *ta = value_text_f(a, JSON_SORT_KEYS), *tb = value_text_f(b, JSON_SORT_KEYS);
		/* With one record missing every row would differ: no marks then. */
		bool same = !mapped || !prov || (a && b && json_same(a, b));
		char *row[] = {xstrdup(same ? " " : "≠"), cell_text(k, 24),
			       cell_diff(ta, same ? NULL : tb, value_w),
			       cell_diff(tb, same ? NULL : ta, value_w)};
		free(ta);
		free(tb);
		table_row(&t, row);
	}
	json_decref(keys);
	table_print_free(&t);
}

/* The records part of `procedure`: why a side is missing, or the table. */
static void print_procedure_records(json_t *r)
{
	json_t *mapped = json_object_get(r, "mapped"), *prov = json_object_get(r, "provincial");
	const char *status = json_string_value(json_object_get(r, "status"));
	if (!json_is_object(mapped))
		printf("%s\n",
		       !status || !json_object_get(r, "national") ? "no national record"
		       : !strcmp(status, "provincial_only")
			       ? "known only provincially: no national record"
		       : json_is_string(mapped)
			       ? "the mapped national record does not parse (--json shows it)"
		       : !strcmp(status, "withdrawn") ? "withdrawn nationally: no mapped record"
						      : "the national record does not map (see the "
							"mismatches)");
	if (!json_is_object(prov))
		printf("%s\n", json_is_string(prov)
				       ? "the provincial record does not parse (--json shows it)"
				       : "not in the provincial catalogue");
	if (!json_is_object(mapped) && !json_is_object(prov))
		return;
	print_side_by_side(json_is_object(mapped) ? mapped : NULL,
			   json_is_object(prov) ? prov : NULL);
	int64_t delivered, read;
	if (json_is_object(prov) && json_time(member_time(r, "delivered"), &delivered) &&
	    json_time(member_time(r, "provincial_seen"), &read) && delivered > read)
		printf("(TỈNH as read before the last delivery; the next pass reads it again)\n");
}

static void print_procedure_history(json_t *history)
{
	static const char *const head[] = {"AT", "CHANGE", "FIELDS"};
	struct table t = {.ncols = LT_ARRAY_SIZE(head), .head = head};
	size_t i;
	json_t *h;
	if (!json_array_size(history)) {
		printf("history: none\n");
		return;
	}
	printf("history:\n");
	json_array_foreach (history, i, h) {
		if (i == HISTORY_ROWS)
			break;
		char *row[] = {cell_member_time(h, "at"), cell_str(h, "change"),
			       fields_text(json_object_get(h, "fields_changed"), 0)};
		table_row(&t, row);
	}
	table_fit(&t, 2, out_width(), 20);
	table_print_free(&t);
	if (json_array_size(history) > HISTORY_ROWS)
		printf("… %zu older (--json shows them)\n",
		       json_array_size(history) - HISTORY_ROWS);
}

/* The open (and acknowledged) mismatches of a procedure. */
static void print_procedure_mismatches(json_t *list, const char *code)
{
	static const char *const head[] = {"ID", "KIND", "SUMMARY"};
	struct table t = {.ncols = LT_ARRAY_SIZE(head), .head = head};
	size_t i, closed = 0;
	json_t *m;
	json_array_foreach (list, i, m) {
		const char *state = jstr(m, "state");
		if (strcmp(state, "open") != 0 && strcmp(state, "acknowledged") != 0) {
			closed++;
			continue;
		}
		char *summary = cell_str(m, "summary");
		char *row[] = {cell_str(m, "id"), cell_str(m, "kind"),
			       !strcmp(state, "open") ? xstrdup(summary)
						      : xasprintf("(%s) %s", state, summary)};
		free(summary);
		table_row(&t, row);
	}
	if (t.nrows) {
		printf("open mismatches:\n");
		table_fit(&t, 2, out_width(), 24);
		table_print_free(&t);
	} else {
		printf("open mismatches: none\n");
	}
	if (closed)
		printf("and %zu closed (lienthongctl mismatches --key %s)\n", closed, code);
}

static void print_procedure(json_t *r)
{
	char *code = cell_str(r, "code"), *status = cell_str(r, "status");
	char *first = cell_member_time(r, "first_seen"), *last = cell_member_time(r, "last_seen");
	char *changed = cell_member_time(r, "changed"), *withdrawn = NULL;
	char *delivered = delivered_text(r), *prov_seen = cell_member_time(r, "provincial_seen");
	/* A record without TENTTHC (malformed) or known only provincially. */
	json_t *name_v = json_object_get(r, "name");
	if (!json_is_string(name_v))
		name_v = json_object_get(json_object_get(r, "mapped"), "tenThuTuc");
	if (!json_is_string(name_v))
		name_v = json_object_get(json_object_get(r, "provincial"), "tenThuTuc");
	char *name = name_text(json_string_value(name_v), 0);

	printf("%s  %s  [%s]\n", code, name, status);
	if (!strcmp(first, "-"))
		printf("%-12s never nationally", "seen:");
	else
		printf("%-12s first %s, last %s", "seen:", first, last);
	/* A new procedure's changed time is its first sighting: no news. */
	if (strcmp(changed, "-") != 0 && strcmp(changed, first) != 0)
		printf("; changed %s", changed);
	if (json_time(member_time(r, "withdrawn"), &(int64_t){0})) {
		withdrawn = cell_member_time(r, "withdrawn");
		printf("; withdrawn %s", withdrawn);
	}
	printf("\n%-12s %s\n", "delivered:", delivered);
	printf("%-12s read %s\n\n", "provincial:", prov_seen);
	print_procedure_records(r);
	putchar('\n');
	print_procedure_history(json_object_get(r, "history"));
	putchar('\n');
	print_procedure_mismatches(json_object_get(r, "mismatches"), code);
	free(code);
	free(name);
	free(status);
	free(first);
	free(last);
	free(changed);
	free(withdrawn);
	free(delivered);
	free(prov_seen);
}

/* "12 open, 0 acknowledged, 3 resolved, 0 waived" of a counts object. */
static char *counts_text(json_t *counts)
{
	struct dynbuf b;
	const char *k;
	json_t *v;
	dynbuf_init(&b, 0);
	json_object_foreach (counts, k, v) {
		if (json_is_integer(v))
			dynbuf_printf(&b, "%s%lld %s", b.len ? ", " : "",
				      (long long)json_integer_value(v), k);
	}
	return b.len ? dynbuf_steal(&b, NULL) : (dynbuf_free(&b), xstrdup("-"));
}

static void print_mismatches(json_t *r)
{
	static const char *const head[] = {"ID",	"KIND", "KEY",	  "STATE",
					   "LAST SEEN", "SEEN", "SUMMARY"};
	struct table t = {.ncols = LT_ARRAY_SIZE(head), .head = head};
	json_t *list = json_object_get(r, "mismatches"), *m;
	char *counts = counts_text(json_object_get(r, "counts"));
	size_t i;
	if (!json_array_size(list)) {
		printf("no mismatches match\n");
	} else {
		json_array_foreach (list, i, m) {
			char *row[] = {cell_str(m, "id"),
				       cell_str(m, "kind"),
				       cell_str(m, "key"),
				       cell_str(m, "state"),
				       cell_member_time(m, "last_seen"),
				       cell_str(m, "occurrences"),
				       cell_str(m, "summary")};
			table_row(&t, row);
		}
		table_fit(&t, 6, out_width(), 24);
		table_print_free(&t);
		printf("\n%zu shown; ", json_array_size(list));
	}
	printf("in the whole log: %s\n", counts);
	free(counts);
}

/*
 * Pretty JSON that keeps what fits on a line on one line ({"ma": "P1",
 * "soTien": 8000}), so that 4 KiB of a record shows more than its first
 * fee lines. Appends to b at indent.
 */
static void pretty_json(json_t *v, size_t indent, struct dynbuf *b)
{
	char *one = json_dumps(v, JSON_ENCODE_ANY);
	const char *k;
	json_t *m;
	size_t i, n = 0;
	if (!one || indent + text_width(one) + PRETTY_MARGIN <= out_width() ||
	    !(json_is_object(v) ? json_object_size(v) : json_array_size(v))) {
		dynbuf_addstr(b, one ? one : "?");
		free(one);
		return;
	}
	free(one);
	dynbuf_addstr(b, json_is_object(v) ? "{\n" : "[\n");
	if (json_is_object(v)) {
		json_object_foreach (v, k, m) {
			json_t *key = json_string(k);
			char *kt = key ? json_dumps(key, JSON_ENCODE_ANY) : NULL;
			dynbuf_printf(b, "%s%*s%s: ", n++ ? ",\n" : "", (int)indent + 2, "",
				      kt ? kt : "?");
			pretty_json(m, indent + 2, b);
			free(kt);
			json_decref(key);
		}
	} else {
		json_array_foreach (v, i, m) {
			dynbuf_printf(b, "%s%*s", i ? ",\n" : "", (int)indent + 2, "");
			pretty_json(m, indent + 2, b);
		}
	}
	dynbuf_printf(b, "\n%*s%s", (int)indent, "", json_is_object(v) ? "}" : "]");
}

static char *pretty_text(json_t *v)
{
	struct dynbuf b;
	dynbuf_init(&b, 0);
	pretty_json(v, 0, &b);
	return dynbuf_steal(&b, NULL);
}

/*
 * "label:" then the value on the same line when short, else indented below;
 * lw is the labels' column width.
 */
static void print_labelled_json(const char *label, int lw, json_t *v)
{
	char *text = json_is_string(v) ? xstrdup(json_string_value(v)) : pretty_text(v);
	if (!strchr(text, '\n') && text_width(text) + (size_t)lw + 3 <= out_width()) {
		char *t = cell_text(text, 0);
		printf("  %-*s %s\n", lw, label, t);
		free(t);
	} else {
		printf("  %s\n", label);
		if (print_block(text, "    ", BLOCK_BYTES))
			printf("    … cut at %d KiB (--json shows all)\n", BLOCK_BYTES / 1024);
	}
	free(text);
}

/* A mismatch's detail: both values first, then whatever else it carries. */
static void print_mismatch_detail(json_t *detail_v)
{
	static const char *const first[] = {"national", "provincial"};
	json_t *d = json_of(detail_v), *v;
	const char *k;
	int lw = 12;
	json_object_foreach (d, k, v) {
		lw = LT_MAX(lw, (int)LT_MIN(strlen(k) + 1, (size_t)24));
	}
	if (!d) {
		printf("detail: -\n");
		return;
	}
	printf("detail:\n");
	if (!json_is_object(d)) {
		print_labelled_json("", lw, d);
		json_decref(d);
		return;
	}
	for (size_t i = 0; i < LT_ARRAY_SIZE(first); i++)
		if ((v = json_object_get(d, first[i])) != NULL) {
			char label[32];
			snprintf(label, sizeof(label), "%s:", first[i]);
			print_labelled_json(label, lw, v);
		}
	json_object_foreach (d, k, v) {
		char label[64];
		if (!strcmp(k, first[0]) || !strcmp(k, first[1]))
			continue;
		snprintf(label, sizeof(label), "%s:", k);
		print_labelled_json(label, lw, v);
	}
	json_decref(d);
}

/* The raw record: pretty JSON when it parses, else its text; both cut. */
static void print_mismatch_raw(json_t *raw)
{
	const char *text = json_string_value(raw);
	json_error_t e;
	json_t *j;
	char *pretty = NULL;
	size_t len;
	if (!text) {
		if (!raw || json_is_null(raw)) {
			printf("raw: -\n");
			return;
		}
		pretty = pretty_text(raw);
	} else if ((j = json_loads(text, JSON_DECODE_ANY, &e)) != NULL) {
		pretty = pretty_text(j);
		json_decref(j);
	}
	len = strlen(pretty ? pretty : text);
	printf("raw (%s, %zu bytes):\n", pretty ? "JSON" : "text", len);
	if (print_block(pretty ? pretty : text, "  ", BLOCK_BYTES))
		printf("  … cut at %d KiB of %zu bytes (--json shows all)\n", BLOCK_BYTES / 1024,
		       len);
	free(pretty);
}

static void print_mismatch_events(json_t *events)
{
	static const char *const head[] = {"AT", "STATE", "BY", "NOTE"};
	struct table t = {.ncols = LT_ARRAY_SIZE(head), .head = head};
	size_t i;
	json_t *e;
	if (!json_array_size(events)) {
		printf("events: none\n");
		return;
	}
	printf("events:\n");
	json_array_foreach (events, i, e) {
		const char *state = jstr(e, "state"), *event = jstr(e, "event");
		char *row[] = {cell_member_time(e, "at"),
			       strcmp(event, "-") && strcmp(event, state)
				       ? xasprintf("%s (%s)", state, event)
				       : xstrdup(state),
			       cell_str(e, "actor"), cell_str(e, "note")};
		table_row(&t, row);
	}
	table_fit(&t, 3, out_width(), 24);
	table_print_free(&t);
}

static void print_mismatch(json_t *r)
{
	char *id = cell_str(r, "id"), *kind = cell_str(r, "kind"), *key = cell_str(r, "key");
	char *state = cell_str(r, "state"), *by = cell_str(r, "state_by");
	char *since = when_text(member_time(r, "state"), "-");
	char *note = cell_str(r, "state_note"), *agency = cell_str(r, "agency");
	char *dossier = cell_str(r, "dossier"),
	     *first = when_text(member_time(r, "first_seen"), "-");
	char *last = when_text(member_time(r, "last_seen"), "-");
	char *times = cell_str(r, "occurrences"), *summary = cell_str(r, "summary");

	printf("mismatch %s\n", id);
	printf("%-13s %s\n", "kind:", kind);
	printf("%-13s %s\n", "key:", key);
	printf("%-13s %s", "state:", state);
	if (strcmp(by, "-") != 0 || strcmp(since, "-") != 0)
		printf(", by %s, %s", by, since);
	if (strcmp(note, "-") != 0)
		printf(": %s", note);
	putchar('\n');
	printf("%-13s %s\n", "agency:", agency);
	printf("%-13s %s\n", "dossier:", dossier);
	printf("%-13s %s\n", "first seen:", first);
	printf("%-13s %s\n", "last seen:", last);
	printf("%-13s %s\n", "occurrences:", times);
	printf("%-13s %s\n\n", "summary:", summary);
	print_mismatch_detail(json_object_get(r, "detail"));
	putchar('\n');
	print_mismatch_raw(json_object_get(r, "raw"));
	putchar('\n');
	print_mismatch_events(json_object_get(r, "events"));
	free(id);
	free(kind);
	free(key);
	free(state);
	free(by);
	free(since);
	free(note);
	free(agency);
	free(dossier);
	free(first);
	free(last);
	free(times);
	free(summary);
}

/* ---- the dossier outbox ------------------------------------------------- */

/* TrangThaiHoSo, the national dossier status codes (dvcqg-trangthaihoso-codes.csv). */
static const char *const status_names[] = {
	[1] = "Mới đăng ký",
	[2] = "Được tiếp nhận",
	[3] = "Không được tiếp nhận",
	[4] = "Đang xử lý",
	[5] = "Yêu cầu bổ sung giấy tờ",
	[6] = "Yêu cầu thực hiện nghĩa vụ tài chính",
	[7] = "Công dân yêu cầu rút hồ sơ",
	[8] = "Dừng xử lý",
	[9] = "Đã xử lý xong",
	[10] = "Đã trả kết quả",
};

/* "4 Đang xử lý" of a status member (number or numeric text), or "-". */
static char *status_text(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	long long n = json_is_integer(v)  ? json_integer_value(v)
		      : json_is_string(v) ? strtoll(json_string_value(v), NULL, 10)
					  : 0;
	if (n >= 1 && n < (long long)LT_ARRAY_SIZE(status_names))
		return xasprintf("%lld %s", n, status_names[n]);
	return cell_str(o, key);
}

/*
 * A time of a timeline as the office reads it: local time to the second
 * ("2026-11-27 14:03:12"; the zone is said once, see zone_text), or ISO UTC
 * with --iso; "-" when unset.
 */
static char *local_time(json_t *v)
{
	char buf[40];
	struct tm tm;
	int64_t t;
	if (!json_time(v, &t))
		return xstrdup("-");
	time_t tt = (time_t)t;
	if (opt_iso || !localtime_r(&tt, &tm) ||
	    !strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm))
		return fmt_iso(t);
	return xstrdup(buf);
}

/* "local time, UTC+07:00" (or "UTC" with --iso): what local_time() shows. */
static char *zone_text(void)
{
	time_t now = time(NULL);
	struct tm tm;
	if (opt_iso || !localtime_r(&now, &tm))
		return xstrdup("UTC");
	long off = tm.tm_gmtoff, a = off < 0 ? -off : off;
	return xasprintf("local time, UTC%c%02ld:%02ld", off < 0 ? '-' : '+', a / 3600,
			 a % 3600 / 60);
}

/* "2026-11-27 14:03:12 (5m ago)" of member name of o, or none_text. */
static char *local_when(json_t *o, const char *name, const char *none_text)
{
	json_t *v = member_time(o, name);
	int64_t t;
	if (!json_time(v, &t))
		return xstrdup(none_text);
	return with_relative(local_time(v), t);
}

/* A duration member in seconds ("3d 04h"), or "-". */
static char *cell_secs(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_number(v) ? fmt_duration((int64_t)json_number_value(v)) : xstrdup("-");
}

/*
 * An event's detail on one line: "seq 12, status 4, header version 2" with
 * a reason or an error last ("letter 7, what change: unknown status X").
 * Members are shown whatever they are, so new details need no new code.
 */
static char *detail_text(json_t *detail_v)
{
	static const char *const last[] = {"reason", "error"};
	json_t *d = json_of(detail_v), *v;
	const char *k;
	struct dynbuf b;
	if (!d)
		return xstrdup("-");
	if (!json_is_object(d)) {
		char *s = value_text(d);
		json_decref(d);
		return s;
	}
	dynbuf_init(&b, 0);
	json_object_foreach (d, k, v) {
		if (!strcmp(k, last[0]) || !strcmp(k, last[1]) || json_is_null(v))
			continue;
		/* "next_attempt_ms": a time, shown as the timeline shows times. */
		bool ms = json_is_integer(v) && str_endswith(k, "_ms");
		char *key = ms ? xstrndup(k, strlen(k) - 3) : xstrdup(k);
		char *val = ms ? local_time(v) : value_text(v);
		for (char *p = key; *p; p++)
			*p = *p == '_' ? ' ' : *p;
		dynbuf_printf(&b, "%s%s %s", b.len ? ", " : "", key, val);
		free(key);
		free(val);
	}
	for (size_t i = 0; i < LT_ARRAY_SIZE(last); i++) {
		const char *t = json_string_value(json_object_get(d, last[i]));
		if (t)
			dynbuf_printf(&b, "%s%s", b.len ? ": " : "", t);
	}
	json_decref(d);
	if (!b.len) {
		dynbuf_free(&b);
		return xstrdup("-");
	}
	char *s = dynbuf_steal(&b, NULL), *cell = cell_text(s, 0);
	free(s);
	return cell;
}

/* The dossier flows of a queue answer, one line each. */
static void print_dossier_flows(json_t *flows, int lw)
{
	size_t i;
	json_t *f;
	if (!json_array_size(flows))
		printf("%-*s none configured\n", lw, "dossier flows:");
	json_array_foreach (flows, i, f) {
		char *name = cell_str(f, "name"), *state = cell_str(f, "state");
		char *ok = cell_time(json_object_get(f, "last_ok"));
		char *label = xasprintf("flow %s:", name);
		printf("%-*s %s, last ok %s", lw, label, state, ok);
		if (json_string_value(json_object_get(f, "last_error"))) {
			char *e = cell_error(f, "last_error", "last_error_at");
			printf("; last error %s", e);
			free(e);
		}
		putchar('\n');
		free(label);
		free(name);
		free(state);
		free(ok);
	}
}

static void print_queue(json_t *r)
{
	static const char *const head[] = {"FAILING WITH", "DOSSIERS"};
	struct table t = {.ncols = LT_ARRAY_SIZE(head), .head = head};
	json_t *by_state = json_object_get(r, "by_state"), *v;
	json_t *by_reason = json_object_get(r, "by_reason");
	char n[8][32];
	const char *k;
	size_t i;
	int lw = (int)strlen("dead letters:");

	json_array_foreach (json_object_get(r, "flows"), i, v) {
		lw = LT_MAX(lw,
			    (int)LT_MIN(strlen("flow :") + strlen(jstr(v, "name")), (size_t)40));
	}
	printf("%-*s %s dossiers with work: %s rows pending, %s sending\n", lw,
	       "queue:", jnum(r, "depth", n[0], 32), jnum(r, "rows_pending", n[1], 32),
	       jnum(r, "rows_sending", n[2], 32));
	if (json_is_number(json_object_get(r, "oldest_age_s"))) {
		char *age = cell_secs(r, "oldest_age_s"), *since = local_when(r, "oldest", "-");
		printf("%-*s waiting %s, since %s\n", lw, "oldest work:", age, since);
		free(age);
		free(since);
	} else {
		printf("%-*s nothing waiting\n", lw, "oldest work:");
	}
	printf("%-*s %s known: %s active with work, %s held, %s dead\n", lw,
	       "dossiers:", jnum(r, "dossiers", n[3], 32), jnum(by_state, "active", n[4], 32),
	       jnum(by_state, "held", n[5], 32), jnum(by_state, "dead", n[6], 32));
	printf("%-*s %s open\n", lw, "dead letters:", jnum(r, "dead_letters", n[7], 32));
	print_dossier_flows(json_object_get(r, "flows"), lw);
	putchar('\n');
	json_object_foreach (by_reason, k, v) {
		char *row[] = {cell_text(k, 0), value_text(v)};
		table_row(&t, row);
	}
	if (!t.nrows) {
		printf("no dossier is failing\n");
		return;
	}
	table_fit(&t, 0, out_width(), 24);
	table_print_free(&t);
}

/* A dossier's header lines: what it is, where it stands, its deadline. */
static void print_dossier_head(json_t *r)
{
	json_t *header = json_object_get(r, "header");
	char n[6][32];
	char *state = cell_str(r, "state"), *agency = cell_str(r, "agency");
	char *status = status_text(r, "status");
	char *code = cell_str(header, "MaTTHC");
	char *name = name_text(json_string_value(json_object_get(header, "TenTTHC")), 0);
	char *received = local_when(r, "received", "-"), *changed = local_when(r, "changed", "-");
	char *due = local_when(r, "due", "-"), *finished = local_when(r, "finished", "-");
	char *portal = cell_str(r, "portal_state");
	int64_t due_s, fin_s;

	printf("dossier %s  [%s]\n", jstr(r, "mahoso"), state);
	printf("%-12s %s\n", "agency:", agency);
	printf("%-12s %s\n", "status:", status);
	if (strcmp(name, "-") != 0)
		printf("%-12s %s  %s\n", "procedure:", code, name);
	else
		printf("%-12s %s\n", "procedure:", code);
	printf("%-12s %s\n", "received:", received);
	printf("%-12s %s\n", "changed:", changed);
	printf("%-12s %s", "due:", due);
	if (json_time(member_time(r, "due"), &due_s)) {
		bool done = json_time(member_time(r, "finished"), &fin_s);
		int64_t end = done ? fin_s : (int64_t)time(NULL);
		if (end > due_s) {
			char *late = fmt_duration(end - due_s);
			printf(done ? "; finished %s late" : "; overdue by %s", late);
			free(late);
		}
	}
	printf("\n%-12s %s\n", "finished:", finished);
	printf("%-12s %s; header version %s of %s acknowledged\n", "portal:", portal,
	       jnum(r, "header_sent_version", n[0], 32), jnum(r, "header_version", n[1], 32));
	printf("%-12s %s pending, %s sending, %s in all\n",
	       "rows:", jnum(r, "rows_pending", n[2], 32), jnum(r, "rows_sending", n[3], 32),
	       jnum(r, "progress_total", n[4], 32));
	if (json_integer_value(json_object_get(r, "attempts")) > 0) {
		char *next = local_when(r, "next_attempt", "-");
		printf("%-12s %s failed, next attempt %s\n",
		       "attempts:", jnum(r, "attempts", n[5], 32), next);
		free(next);
	}
	if (json_string_value(json_object_get(r, "last_error"))) {
		char *e = cell_text(jstr(r, "last_error"), 0);
		printf("%-12s %s\n", "last error:", e);
		free(e);
	}
	free(state);
	free(agency);
	free(status);
	free(code);
	free(name);
	free(received);
	free(changed);
	free(due);
	free(finished);
	free(portal);
}

static void print_dossier_events(json_t *r)
{
	static const char *const head[] = {"AT", "EVENT", "DETAIL"};
	struct table t = {.ncols = LT_ARRAY_SIZE(head), .head = head};
	json_t *events = json_object_get(r, "events"), *e;
	json_int_t total = json_integer_value(json_object_get(r, "events_total"));
	char *zone = zone_text();
	size_t i;
	if (!json_array_size(events)) {
		printf("timeline: none\n");
		free(zone);
		return;
	}
	printf("timeline (%s):\n", zone);
	free(zone);
	if (total > (json_int_t)json_array_size(events))
		printf("… %lld older events (the store keeps them)\n",
		       (long long)total - (long long)json_array_size(events));
	json_array_foreach (events, i, e) {
		char *row[] = {local_time(member_time(e, "at")), cell_str(e, "event"),
			       detail_text(json_object_get(e, "detail"))};
		table_row(&t, row);
	}
	table_fit(&t, 2, out_width(), 24);
	table_print_free(&t);
}

static void print_dossier_rows(json_t *r)
{
	static const char *const head[] = {"ID",   "SEQ",	 "STATE",     "BATCH",
					   "SENT", "TRẠNG THÁI", "THỜI ĐIỂM", "NỘI DUNG"};
	struct table t = {.ncols = LT_ARRAY_SIZE(head), .head = head};
	json_t *rows = json_object_get(r, "progress"), *p;
	json_int_t total = json_integer_value(json_object_get(r, "progress_total"));
	size_t i;
	if (!json_array_size(rows)) {
		printf("progress rows: none\n");
		return;
	}
	printf("progress rows:\n");
	if (total > (json_int_t)json_array_size(rows))
		printf("… %lld older rows (the store keeps them)\n",
		       (long long)total - (long long)json_array_size(rows));
	json_array_foreach (rows, i, p) {
		json_t *row = json_object_get(p, "row");
		char *row_cells[] = {cell_str(p, "id"),
				     cell_str(p, "seq"),
				     cell_str(p, "state"),
				     cell_str(p, "batch"),
				     local_time(member_time(p, "sent")),
				     status_text(row, "TrangThai"),
				     cell_str(row, "ThoiDiemXuLy"),
				     cell_str(row, "NoiDungXuLy")};
		table_row(&t, row_cells);
	}
	table_fit(&t, 7, out_width(), 20);
	table_print_free(&t);
}

/* REASON of a dead letter, with the operator's note when it was dropped. */
static char *letter_reason(json_t *l)
{
	const char *note = json_string_value(json_object_get(l, "note"));
	char *reason = cell_str(l, "reason");
	if (!note || !*note)
		return reason;
	char *n = cell_text(note, 0), *s = xasprintf("%s (%s: %s)", reason, jstr(l, "state"), n);
	free(reason);
	free(n);
	return s;
}

/* A table of dead letters (with the dossier column when mahoso). */
static void print_letter_table(json_t *list, bool mahoso)
{
	static const char *const head[] = {"ID", "AT", "MAHOSO", "WHAT", "STATE", "BY", "REASON"};
	static const char *const head_one[] = {"ID", "AT", "WHAT", "STATE", "BY", "REASON"};
	struct table t = {.ncols = mahoso ? LT_ARRAY_SIZE(head) : LT_ARRAY_SIZE(head_one),
			  .head = mahoso ? head : head_one};
	size_t i;
	json_t *l;
	json_array_foreach (list, i, l) {
		char *what = cell_str(l, "what");
		json_int_t rows = json_integer_value(json_object_get(l, "rows"));
		if (!strcmp(what, "progress") && rows > 0) {
			char *w = xasprintf("progress ×%lld", (long long)rows);
			free(what);
			what = w;
		}
		char *cells[] = {cell_str(l, "id"),
				 cell_member_time(l, "at"),
				 mahoso ? cell_str(l, "mahoso") : NULL,
				 what,
				 cell_str(l, "state"),
				 cell_str(l, "closed_by"),
				 letter_reason(l)};
		if (mahoso) {
			table_row(&t, cells);
		} else {
			char *one[] = {cells[0], cells[1], cells[3], cells[4], cells[5], cells[6]};
			table_row(&t, one);
		}
	}
	table_fit(&t, t.ncols - 1, out_width(), 24);
	table_print_free(&t);
}

static void print_dossier(json_t *r)
{
	json_t *letters = json_object_get(r, "dead_letters");
	print_dossier_head(r);
	putchar('\n');
	print_dossier_events(r);
	putchar('\n');
	print_dossier_rows(r);
	putchar('\n');
	if (!json_array_size(letters)) {
		printf("dead letters: none\n");
		return;
	}
	printf("dead letters (the raw changes: --json):\n");
	print_letter_table(letters, false);
}

static void print_deadletters(json_t *r)
{
	json_t *list = json_object_get(r, "dead_letters");
	char n[32];
	if (!json_array_size(list))
		printf("no dead letters match\n");
	else
		print_letter_table(list, true);
	if (json_array_size(list))
		printf("\n%zu shown; ", json_array_size(list));
	printf("%s open in all\n", jnum(r, "open", n, sizeof(n)));
}

/* "N shown" and whether --limit cut the list. */
static void print_list_footer(json_t *list, json_t *r, const char *what)
{
	json_int_t limit = json_integer_value(json_object_get(r, "limit"));
	size_t n = json_array_size(list);
	printf("\n%zu %s%s\n", n, what,
	       limit > 0 && n >= (size_t)limit ? " (the first ones only: --limit for more)" : "");
}

static void print_overdue(json_t *r)
{
	static const char *const head[] = {"MAHOSO",  "AGENCY", "STATUS",  "DUE",
					   "OVERDUE", "OUTBOX", "RECEIVED"};
	struct table t = {.ncols = LT_ARRAY_SIZE(head), .head = head};
	json_t *list = json_object_get(r, "overdue"), *o;
	char *zone = zone_text();
	size_t i;
	if (!json_array_size(list)) {
		printf("no dossier is overdue\n");
		free(zone);
		return;
	}
	json_array_foreach (list, i, o) {
		char *row[] = {cell_str(o, "mahoso"),
			       cell_str(o, "agency"),
			       status_text(o, "status"),
			       local_time(member_time(o, "due")),
			       cell_secs(o, "overdue_s"),
			       cell_str(o, "state"),
			       local_time(member_time(o, "received"))};
		table_row(&t, row);
	}
	table_fit(&t, 2, out_width(), 14);
	table_print_free(&t);
	print_list_footer(list, r, "overdue, most overdue first");
	printf("(times in %s)\n", zone);
	free(zone);
}

static void print_late(json_t *r)
{
	static const char *const head[] = {"MAHOSO", "AGENCY", "STATUS", "DUE", "FINISHED", "LATE"};
	struct table t = {.ncols = LT_ARRAY_SIZE(head), .head = head};
	json_t *list = json_object_get(r, "late"), *o;
	char *zone = zone_text(), *since = local_time(member_time(r, "since"));
	size_t i;
	if (!json_array_size(list)) {
		printf("no dossier finished late since %s (%s)\n", since, zone);
		free(zone);
		free(since);
		return;
	}
	json_array_foreach (list, i, o) {
		char *row[] = {cell_str(o, "mahoso"),
			       cell_str(o, "agency"),
			       status_text(o, "status"),
			       local_time(member_time(o, "due")),
			       local_time(member_time(o, "finished")),
			       cell_secs(o, "late_s")};
		table_row(&t, row);
	}
	table_fit(&t, 2, out_width(), 14);
	table_print_free(&t);
	char *what = xasprintf("finished late since %s, oldest first", since);
	print_list_footer(list, r, what);
	printf("(times in %s)\n", zone);
	free(what);
	free(zone);
	free(since);
}

static void print_retry(json_t *r)
{
	json_int_t retried = json_integer_value(json_object_get(r, "retried"));
	json_int_t still = json_integer_value(json_object_get(r, "still_dead"));
	const char *why = json_string_value(json_object_get(r, "reason"));
	if (json_is_integer(json_object_get(r, "letter")))
		printf("dead letter %lld retried\n",
		       (long long)json_integer_value(json_object_get(r, "letter")));
	else if (!retried && !still)
		printf("no open dead letter to retry\n");
	else
		printf("%lld dead letter%s retried\n", (long long)retried, retried == 1 ? "" : "s");
	if (still) {
		char *w = why ? cell_text(why, 0) : NULL;
		printf("%lld still dead (their changes still do not map)%s%s\n", (long long)still,
		       w ? ": " : "", w ? w : "");
		free(w);
	}
}

static void print_drop(json_t *r)
{
	char *reason = cell_str(r, "reason");
	printf("dead letter %lld dropped by %s: %s\n",
	       (long long)json_integer_value(json_object_get(r, "letter")), jstr(r, "by"), reason);
	free(reason);
}

static void print_hold(json_t *r)
{
	printf("dossier %s is now %s\n", jstr(r, "mahoso"), jstr(r, "state"));
}

static void print_release(json_t *r)
{
	const char *state = jstr(r, "state");
	if (!strcmp(state, "dead"))
		printf("dossier %s released, but still dead: a dead letter of it is open "
		       "(lienthongctl dossier %s)\n",
		       jstr(r, "mahoso"), jstr(r, "mahoso"));
	else
		printf("dossier %s released: now %s\n", jstr(r, "mahoso"), state);
}

static void print_mismatch_state(json_t *r)
{
	const char *note = json_string_value(json_object_get(r, "note"));
	printf("mismatch %lld %s by %s%s%s\n",
	       (long long)json_integer_value(json_object_get(r, "id")), jstr(r, "state"),
	       jstr(r, "by"), note ? ": " : "", note ? note : "");
}

/* 1234567 -> "1.234.567", as the office writes numbers. */
static char *grouped(json_int_t n)
{
	char digits[32], out[48];
	size_t len = (size_t)snprintf(digits, sizeof(digits), "%lld", (long long)(n < 0 ? -n : n));
	size_t o = 0;
	if (n < 0)
		out[o++] = '-';
	for (size_t i = 0; i < len; i++) {
		if (i && (len - i) % 3 == 0)
			out[o++] = '.';
		out[o++] = digits[i];
	}
	out[o] = '\0';
	return xstrdup(out);
}

static void print_report(json_t *r)
{
	static const char *const head[] = {"CLASS", "COUNT", "AMOUNT (VND)"};
	static const char *const order[] = {
		"matched",	  "platform_only",	"local_only",
		"amount_differs", "paid_twice",		"pending_too_long",
		"bad_signature",  "portal_without_fee", "unknown_dossier"};
	struct table t = {.ncols = LT_ARRAY_SIZE(head), .head = head};
	json_t *in = json_object_get(r, "inputs"), *sum = json_object_get(r, "summary"), *v;
	const char *k;
	printf("payments %s..%s reconciled in %.2f s: %lld transactions, %lld fee records, %lld "
	       "portal entries\n\n",
	       jstr(r, "from"), jstr(r, "to"), json_number_value(json_object_get(r, "seconds")),
	       (long long)json_integer_value(json_object_get(in, "platform")),
	       (long long)json_integer_value(json_object_get(in, "provincial")),
	       (long long)json_integer_value(json_object_get(in, "portal")));
	for (size_t i = 0; i < LT_ARRAY_SIZE(order); i++) {
		json_t *c = json_object_get(sum, order[i]);
		if (!c)
			continue;
		char *row[] = {xstrdup(order[i]),
			       grouped(json_integer_value(json_object_get(c, "count"))),
			       grouped(json_integer_value(json_object_get(c, "amount")))};
		table_row(&t, row);
	}
	table_fit(&t, 0, out_width(), 16);
	table_print_free(&t);
	printf("\nreports:\n");
	json_object_foreach (json_object_get(r, "paths"), k, v) {
		printf("  %-5s %s\n", k, json_string_value(v));
	}
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
	{"procedures", print_procedures, "total"},
	{"procedure", print_procedure, "code"},
	{"mismatches", print_mismatches, "mismatches"},
	{"mismatch", print_mismatch, "kind"},
	{"queue", print_queue, "depth"},
	{"dossier", print_dossier, "mahoso"},
	{"deadletters", print_deadletters, "dead_letters"},
	{"overdue", print_overdue, "overdue"},
	{"late", print_late, "late"},
	{"retry", print_retry, "retried"},
	{"drop", print_drop, "letter"},
	{"hold", print_hold, "mahoso"},
	{"release", print_release, "mahoso"},
	{"ack", print_mismatch_state, "state"},
	{"resolve", print_mismatch_state, "state"},
	{"waive", print_mismatch_state, "state"},
	{"report", print_report, "summary"},
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
 * One argument of a usage: "FLOW", "[MODE]", "[--kind KIND]", "[--force]",
 * or one of the alternatives of "ID|--all" (exactly one of them is given).
 */
struct usage_arg {
	char *member;	/* the args member: "flow", "kind" (lower case, '-' as '_') */
	char *option;	/* "kind" for --kind; NULL for a positional argument */
	char *choice;	/* "ID|--all" for each of its alternatives; NULL otherwise */
	bool has_value; /* --kind KIND, not a bare --force */
	bool optional;
	bool seen;
};

/* The member an argument maps to: "MAHOSO" -> "mahoso", "dry-run" -> "dry_run". */
static char *member_name(const char *s, size_t n)
{
	char *m = xstrndup(s, n);
	for (char *p = m; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p == '-' ? '_' : *p);
	return m;
}

/*
 * The alternatives of an unbracketed "ID|--all" (a positional argument or a
 * bare option, one of them required) appended to a (n of them so far).
 */
static size_t usage_choice(const char *tok, struct usage_arg **a, size_t n)
{
	char *copy = xstrdup(tok), *save = NULL;
	for (char *alt = strtok_r(copy, "|", &save); alt; alt = strtok_r(NULL, "|", &save)) {
		struct usage_arg u = {.optional = true, .choice = xstrdup(tok)};
		bool opt = alt[0] == '-' && alt[1] == '-';
		u.option = opt ? xstrdup(alt + 2) : NULL;
		u.member = member_name(alt + (opt ? 2 : 0), strlen(alt + (opt ? 2 : 0)));
		*a = xrealloc(*a, (n + 1) * sizeof(**a));
		(*a)[n++] = u;
	}
	free(copy);
	return n;
}

/*
 * Parses the usage after the command name into *out (n of them). An option's
 * value is the next word when the option's bracket is still open
 * ("[--kind KIND]") or, unbracketed, when it is an upper-case placeholder.
 */
static size_t usage_parse(const char *usage, struct usage_arg **out)
{
	char *copy = xstrdup(usage), *save = NULL, *tok, *next;
	struct usage_arg *a = NULL;
	size_t n = 0;
	strtok_r(copy, " ", &save); /* the command name */
	for (tok = strtok_r(NULL, " ", &save); tok; tok = next) {
		next = strtok_r(NULL, " ", &save);
		if (tok[0] != '[' && strchr(tok, '|')) {
			n = usage_choice(tok, &a, n);
			continue;
		}
		struct usage_arg u = {.optional = tok[0] == '['};
		char *name = tok + u.optional;
		size_t len = strcspn(name, "]");
		bool closed = name[len] == ']';
		if (name[0] == '-' && name[1] == '-') {
			u.option = xstrndup(name + 2, len - 2);
			u.member = member_name(name + 2, len - 2);
			if (next && !closed &&
			    strspn(next, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-]") ==
				    strlen(next)) {
				u.has_value = true;
				next = strtok_r(NULL, " ", &save);
			}
		} else {
			u.member = member_name(name, len);
		}
		a = xrealloc(a, (n + 1) * sizeof(*a));
		a[n++] = u;
	}
	free(copy);
	*out = a;
	return n;
}

static void usage_free(struct usage_arg *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(a[i].member);
		free(a[i].option);
		free(a[i].choice);
	}
	free(a);
}

/* The option argument of usage named name (n bytes), or NULL. */
static struct usage_arg *usage_option(struct usage_arg *a, size_t n, const char *name, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (a[i].option && strlen(a[i].option) == len && !strncmp(a[i].option, name, len))
			return &a[i];
	return NULL;
}

/* Whether --name (len bytes) is an option of lienthongctl itself. */
static bool is_global_option(const char *name, size_t len)
{
	static const char *const names[] = {"socket", "json", "iso", "timeout", "help", "version"};
	for (size_t i = 0; i < LT_ARRAY_SIZE(names); i++)
		if (strlen(names[i]) == len && !strncmp(names[i], name, len))
			return true;
	return false;
}

static json_t *args_usage_error(const struct ctl_command *c, json_t *args, char *msg)
{
	if (msg)
		fprintf(stderr, "lienthongctl: %s\n", msg);
	fprintf(stderr, "%susage: lienthongctl %s\n", msg ? "" : "lienthongctl: ", c->usage);
	free(msg);
	json_decref(args);
	return NULL;
}

/*
 * Builds args from the command line using the command's usage: "run FLOW"
 * maps the first positional argument to "flow", "[NOTE]" is optional, and
 * "[--kind KIND]" takes --kind VALUE or --kind=VALUE as "kind". "--" ends
 * the options (a flow may be named "--x"). Returns NULL with a message on
 * stderr for an unknown option, a missing value or a count that does not fit.
 */
static json_t *build_args(const struct ctl_command *c, int argc, char **argv)
{
	struct usage_arg *u = NULL;
	size_t n = usage_parse(c->usage, &u), npos = 0;
	json_t *args = json_object();
	char *msg = NULL;
	bool options_done = false;

	for (int i = 0; i < argc && !msg; i++) {
		const char *a = argv[i];
		if (!options_done && !strcmp(a, "--")) {
			options_done = true;
			continue;
		}
		if (options_done || a[0] != '-' || a[1] != '-') {
			size_t k = 0, seen = 0;
			for (; k < n; k++)
				if (!u[k].option && seen++ == npos)
					break;
			if (k == n) {
				msg = xasprintf("too many arguments for %s", c->name);
				break;
			}
			json_t *v = json_string(a);
			if (!v) {
				msg = xasprintf("argument %zu is not UTF-8 text", npos + 1);
				break;
			}
			json_object_set_new(args, u[k].member, v);
			u[k].seen = true;
			npos++;
			continue;
		}
		const char *eq = strchr(a + 2, '=');
		size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
		struct usage_arg *o = usage_option(u, n, a + 2, len);
		const char *value = eq ? eq + 1 : NULL;
		if (!o) {
			msg = xasprintf("%s has no option --%.*s%s", c->name, (int)len, a + 2,
					is_global_option(a + 2, len)
						? " (options of lienthongctl "
						  "itself go before the command)"
						: "");
		} else if (o->seen) {
			msg = xasprintf("option --%s given twice", o->option);
		} else if (!o->has_value && eq) {
			msg = xasprintf("option --%s takes no value", o->option);
		} else if (o->has_value && !eq &&
			   (value = i + 1 < argc ? argv[++i] : NULL) == NULL) {
			msg = xasprintf("option --%s needs a value", o->option);
		} else if (o->has_value && !*value) {
			msg = xasprintf("option --%s needs a value, not an empty one", o->option);
		} else {
			json_t *v = o->has_value ? json_string(value) : json_true();
			if (!v) {
				msg = xasprintf("the value of --%s is not UTF-8 text", o->option);
				break;
			}
			json_object_set_new(args, o->member, v);
			o->seen = true;
		}
	}
	for (size_t k = 0; k < n && !msg; k++)
		if (!u[k].optional && !u[k].seen)
			msg = u[k].option ? xasprintf("option --%s is required", u[k].option)
					  : xstrdup("");
	/* "ID|--all": exactly one of the alternatives (listed next to each other). */
	for (size_t k = 0; k < n && !msg; k++) {
		size_t given = 0, j = k;
		if (!u[k].choice || (k && u[k - 1].choice && !strcmp(u[k - 1].choice, u[k].choice)))
			continue;
		for (; j < n && u[j].choice && !strcmp(u[j].choice, u[k].choice); j++)
			given += u[j].seen;
		if (given > 1)
			msg = xasprintf("%s takes one of %s, not several", c->name, u[k].choice);
		else if (!given)
			msg = xstrdup("");
	}
	if (msg && !*msg) { /* a missing positional: the usage says it all */
		free(msg);
		usage_free(u, n);
		return args_usage_error(c, args, NULL);
	}
	usage_free(u, n);
	return msg ? args_usage_error(c, args, msg) : args;
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
	printf("Usage: lienthongctl [--socket PATH] [--json] [--iso] [--timeout SECONDS] COMMAND "
	       "[ARGS...]\n"
	       "\n"
	       "Talks to lienthongd over its control socket.\n"
	       "\n"
	       "Commands:\n");
	for (const struct ctl_command *c = ctl_commands; c->name; c++)
		w = usage_column(w, text_width(c->usage));
	for (const struct ctl_command *c = ctl_commands; c->name; c++)
		print_command_help(c->usage, c->help, c->level == CTL_WRITE, w);
	printf("\n"
	       "Options:\n"
	       "  -s, --socket PATH    control socket (default $LIENTHONG_SOCKET, else %s)\n"
	       "  -j, --json           print the result as JSON (the whole answer on failure)\n"
	       "  -i, --iso            print times as ISO 8601 (UTC), not \"5m ago\"\n"
	       "  -t, --timeout SECS   give up after this long (default %d s)\n"
	       "  -h, --help           show this help\n"
	       "  -V, --version        show the version\n"
	       "\n"
	       "Command options go after the command: mismatches --kind catalog.* --state open\n"
	       "(or --kind=catalog.*); -- ends them.\n"
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
		{"socket", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{"iso", no_argument, NULL, 'i'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *path = getenv("LIENTHONG_SOCKET");
	int timeout_ms = CTL_DEFAULT_TIMEOUT_MS, opt, r;
	bool timeout_set = false;
	bool as_json = false;
	json_t *args = NULL, *answer = NULL;
	char *err = NULL;
	int code;

	if (!path || !*path)
		path = CTL_DEFAULT_SOCKET;
	/* "+": options end at the command, so its arguments may start with '-'. */
	while ((opt = getopt_long(argc, argv, "+s:jit:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 's': path = optarg; break;
		case 'j': as_json = true; break;
		case 'i': opt_iso = true; break;
		case 't':
			if (!parse_timeout(optarg, &timeout_ms))
				return usage_error("--timeout wants a positive number of seconds");
			timeout_set = true;
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

	/* a report of a large range takes a while: the daemon answers when written */
	if (!timeout_set && strcmp(cmd, "report") == 0)
		timeout_ms = CTL_REPORT_TIMEOUT_MS;
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
