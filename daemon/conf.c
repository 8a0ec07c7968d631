/*
 * conf: loading, validating and describing the configuration file.
 *
 * The file is read in two steps. libinih tokenises it into (section, key,
 * value, line) entries; inih does not tell handlers the line number, so our
 * reader callback counts the lines it hands over. Then the entries are
 * applied section by section against the option tables, because a
 * connector's `type` decides which keys are valid and may come after them.
 * Every problem is collected with its file and line; nothing stops at the
 * first error, so an operator fixes a file in one go.
 */
#include "conf.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "adapter.h"
#include "connector.h"
#include "flow.h"
#include "http.h"
#include "log.h"
#include "mapping.h"
#include "util.h"

#define CONF_MAX_FILE_BYTES (1024 * 1024)

/* ---- error lists -------------------------------------------------------- */

void conf_errors_add(struct conf_errors *e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *m = xvasprintf(fmt, ap);
	va_end(ap);
	e->msgs = xrealloc(e->msgs, (e->n + 1) * sizeof(*e->msgs));
	e->msgs[e->n++] = m;
}

void conf_errors_free(struct conf_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->msgs[i]);
	free(e->msgs);
	e->msgs = NULL;
	e->n = 0;
}

char *conf_errors_join(const struct conf_errors *e)
{
	struct dynbuf b;
	dynbuf_init(&b, 0);
	for (size_t i = 0; i < e->n; i++) {
		if (i)
			dynbuf_addstr(&b, "\n");
		dynbuf_addstr(&b, e->msgs[i]);
	}
	return dynbuf_steal(&b, NULL);
}

/* ---- option tables of the fixed sections ------------------------------ */

#define D(f) offsetof(struct conf_daemon, f)
const struct conf_option conf_daemon_options[] = {
	{"log_level", CONF_ENUM, "info", 0, 0, "error|warning|notice|info|debug", D(log_level), 0,
	 "Most verbose priority logged."},
	{"log_target", CONF_ENUM, "auto", 0, 0, "auto|journal|stderr", D(log_target), 0,
	 "Where logs go: auto picks the journal when started by systemd, stderr otherwise."},
	{"plugin_dir", CONF_PATH, "/usr/local/lib/lienthong/connectors", 0, 0, NULL, D(plugin_dir),
	 0,
	 "Directory of out-of-tree connectors (*.so exporting lienthong_connector). "
	 "A missing directory is not an error."},
	{"mappings_dir", CONF_PATH, "/etc/lienthong/mappings", 0, 0, NULL, D(mappings_dir), 0,
	 "Directory of mapping and code-table files (*.json, see docs/mappings.md), loaded and "
	 "validated at start and on reload."},
	{"shutdown_timeout", CONF_DURATION, "5s", 100, 60000, NULL, D(shutdown_timeout_ms), 0,
	 "On SIGTERM, how long running passes get to persist their work before the daemon "
	 "exits anyway."},
	{"health_interval", CONF_DURATION, "10s", 1000, 3600000, NULL, D(health_interval_ms), 0,
	 "How often the store is re-checked after a failure and the STATUS= line refreshed."},
	CONF_OPTION_END,
};
#undef D

#define S(f) offsetof(struct conf_store, f)
const struct conf_option conf_store_options[] = {
	{"path", CONF_PATH, "/var/lib/lienthong/lienthong.db", 0, 0, NULL, S(path), 0,
	 "SQLite database holding all durable state (WAL mode; the -wal and -shm files live "
	 "beside it)."},
	{"busy_timeout", CONF_DURATION, "5s", 0, 600000, NULL, S(busy_timeout_ms), 0,
	 "How long a write waits for a lock held by another process (lienthongctl tools, "
	 "backups)."},
	{"max_size", CONF_SIZE, "0", 0, 0, NULL, S(max_size_bytes), 0,
	 "Largest size the database may grow to (e.g. 20G); 0 = no limit. Reaching it is "
	 "treated like a full disk: work is kept and retried, status says so."},
	{"synchronous", CONF_ENUM, "full", 0, 0, "full|normal", S(synchronous), 0,
	 "full: every commit is fsynced (nothing acknowledged is lost on power failure). "
	 "normal: faster, a power cut may lose the last commits."},
	{"retry_interval", CONF_DURATION, "10s", 1000, 3600000, NULL, S(retry_interval_ms), 0,
	 "After a failed write (disk full), how often the store is probed until it works "
	 "again."},
	CONF_OPTION_END,
};
#undef S

#define C(f) offsetof(struct conf_control, f)
const struct conf_option conf_control_options[] = {
	{"path", CONF_PATH, "/run/lienthong/control.sock", 0, 0, NULL, C(path), 0,
	 "UNIX socket of lienthongctl."},
	{"mode", CONF_MODE, "0660", 0600, 0777, NULL, C(mode), 0,
	 "Permissions of the socket. Anyone who can connect may read status; changing "
	 "commands need root or the service user."},
	{"group", CONF_STRING, NULL, 0, 0, NULL, C(group), 0,
	 "Group owning the socket (members may read status). Empty: the daemon's group."},
	{"max_clients", CONF_INT, "32", 1, 1024, NULL, C(max_clients), 0,
	 "Simultaneous control connections."},
	{"max_request_bytes", CONF_SIZE, "64k", 256, 16 * 1024 * 1024, NULL, C(max_request_bytes),
	 0, "Longest request line accepted."},
	{"idle_timeout", CONF_DURATION, "5m", 1000, 86400000, NULL, C(idle_timeout_ms), 0,
	 "A control connection idle this long is closed."},
	CONF_OPTION_END,
};
#undef C

/* Keys every [connector.NAME] section has, whatever its type. */
struct conn_common {
	char *type;
	bool enabled;
};
#define CC(f) offsetof(struct conn_common, f)
static const struct conf_option conn_common_options[] = {
	{"type", CONF_STRING, NULL, 0, 0, NULL, CC(type), CONF_REQUIRED,
	 "Connector type (lienthongd --print-config-template lists them)."},
	{"enabled", CONF_BOOL, "true", 0, 0, NULL, CC(enabled), 0,
	 "A disabled connector is validated but not started."},
	CONF_OPTION_END,
};
#undef CC

/* Keys every [flow.NAME] section has. */
struct flow_common {
	char *type;
	bool enabled;
	int64_t interval_ms;
	int64_t jitter_ms;
	bool run_at_start;
};
#define FC(f) offsetof(struct flow_common, f)
static const struct conf_option flow_common_options[] = {
	{"type", CONF_STRING, NULL, 0, 0, NULL, FC(type), 0,
	 "Flow type; defaults to the section's NAME."},
	{"enabled", CONF_BOOL, "true", 0, 0, NULL, FC(enabled), 0,
	 "A disabled flow is validated but never run."},
	{"interval", CONF_DURATION, "0", 0, 30LL * 86400000, NULL, FC(interval_ms), 0,
	 "Time between passes; 0 = only when asked (lienthongctl run)."},
	{"jitter", CONF_DURATION, "0", 0, 86400000, NULL, FC(jitter_ms), 0,
	 "Random delay up to this much added to each interval, so that many provinces do "
	 "not call the national systems at the same second."},
	{"run_at_start", CONF_BOOL, "false", 0, 0, NULL, FC(run_at_start), 0,
	 "Run a pass as soon as the daemon is ready."},
	CONF_OPTION_END,
};
#undef FC

/* ---- values ----------------------------------------------------------- */

static const char *type_name(enum conf_type t)
{
	switch (t) {
	case CONF_STRING: return "string";
	case CONF_PATH: return "absolute path";
	case CONF_URL: return "URL";
	case CONF_SECRET: return "secret (file path or credential name)";
	case CONF_INT: return "integer";
	case CONF_BOOL: return "boolean";
	case CONF_DURATION: return "duration";
	case CONF_SIZE: return "size";
	case CONF_ENUM: return "one of";
	case CONF_MODE: return "octal mode";
	}
	return "?";
}

static int enum_index(const char *choices, const char *value)
{
	size_t vlen = strlen(value);
	int i = 0;
	for (const char *p = choices; *p; i++) {
		const char *bar = strchr(p, '|');
		size_t n = bar ? (size_t)(bar - p) : strlen(p);
		if (n == vlen && strncmp(p, value, n) == 0)
			return i;
		if (!bar)
			break;
		p = bar + 1;
	}
	return -1;
}

static char *fmt_duration(int64_t ms)
{
	if (ms % 86400000 == 0 && ms)
		return xasprintf("%lldd", (long long)(ms / 86400000));
	if (ms % 3600000 == 0 && ms)
		return xasprintf("%lldh", (long long)(ms / 3600000));
	if (ms % 60000 == 0 && ms)
		return xasprintf("%lldm", (long long)(ms / 60000));
	if (ms % 1000 == 0)
		return xasprintf("%llds", (long long)(ms / 1000));
	return xasprintf("%lldms", (long long)ms);
}

static char *fmt_size(int64_t b)
{
	if (b % (1024LL * 1024 * 1024) == 0 && b)
		return xasprintf("%lldG", (long long)(b >> 30));
	if (b % (1024 * 1024) == 0 && b)
		return xasprintf("%lldM", (long long)(b >> 20));
	if (b % 1024 == 0 && b)
		return xasprintf("%lldk", (long long)(b >> 10));
	return xasprintf("%lld", (long long)b);
}

static int range_check(const struct conf_option *o, int64_t v, char **why)
{
	if (o->min == 0 && o->max == 0)
		return 0;
	if (v >= o->min && v <= o->max)
		return 0;
	char *lo, *hi;
	if (o->type == CONF_DURATION) {
		lo = fmt_duration(o->min);
		hi = fmt_duration(o->max);
	} else if (o->type == CONF_SIZE) {
		lo = fmt_size(o->min);
		hi = fmt_size(o->max);
	} else {
		lo = xasprintf("%lld", (long long)o->min);
		hi = xasprintf("%lld", (long long)o->max);
	}
	*why = xasprintf("out of range: must be between %s and %s", lo, hi);
	free(lo);
	free(hi);
	return -EINVAL;
}

static void free_value(const struct conf_option *o, void *base)
{
	char **sp = (char **)((char *)base + o->offset);
	switch (o->type) {
	case CONF_SECRET:
		secret_free(*sp);
		*sp = NULL;
		break;
	case CONF_STRING:
	case CONF_PATH:
	case CONF_URL:
		free(*sp);
		*sp = NULL;
		break;
	default: break;
	}
}

int conf_set_value(const struct conf_option *o, void *base, const char *value, char **why)
{
	void *field = (char *)base + o->offset;
	int64_t v;
	int r;

	*why = NULL;
	switch (o->type) {
	case CONF_STRING:
		free_value(o, base);
		*(char **)field = *value ? xstrdup(value) : NULL;
		return 0;
	case CONF_PATH:
		if (*value && value[0] != '/') {
			*why = xasprintf("'%s' is not an absolute path", value);
			return -EINVAL;
		}
		free_value(o, base);
		*(char **)field = *value ? xstrdup(value) : NULL;
		return 0;
	case CONF_URL:
		if (*value && !str_startswith(value, "http://") &&
		    !str_startswith(value, "https://")) {
			*why = xasprintf("'%s' is not an http:// or https:// URL", value);
			return -EINVAL;
		}
		free_value(o, base);
		*(char **)field = *value ? xstrdup(value) : NULL;
		return 0;
	case CONF_SECRET: {
		char *secret = NULL;
		if (!*value) {
			free_value(o, base);
			return 0;
		}
		r = secret_read(value, &secret, why);
		if (r < 0)
			return r;
		free_value(o, base);
		*(char **)field = secret;
		return 0;
	}
	case CONF_INT: {
		char *end;
		errno = 0;
		long long n = strtoll(value, &end, 10);
		if (!*value || *end || errno) {
			*why = xasprintf("'%s' is not an integer", value);
			return -EINVAL;
		}
		if ((r = range_check(o, n, why)) < 0)
			return r;
		*(int64_t *)field = n;
		return 0;
	}
	case CONF_BOOL:
		if (!strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "on") ||
		    !strcmp(value, "1"))
			*(bool *)field = true;
		else if (!strcmp(value, "false") || !strcmp(value, "no") || !strcmp(value, "off") ||
			 !strcmp(value, "0"))
			*(bool *)field = false;
		else {
			*why = xasprintf("'%s' is not a boolean (true/false, yes/no, on/off)",
					 value);
			return -EINVAL;
		}
		return 0;
	case CONF_DURATION:
		r = parse_duration_ms(value, 1000, &v);
		if (r < 0) {
			*why = xasprintf("'%s' is not a duration (e.g. 500ms, 30s, 5m, 1h, 1d; a "
					 "bare number is seconds)",
					 value);
			return -EINVAL;
		}
		if ((r = range_check(o, v, why)) < 0)
			return r;
		*(int64_t *)field = v;
		return 0;
	case CONF_SIZE:
		r = parse_size_bytes(value, &v);
		if (r < 0) {
			*why = xasprintf("'%s' is not a size (e.g. 512, 64k, 16M, 2G)", value);
			return -EINVAL;
		}
		if ((r = range_check(o, v, why)) < 0)
			return r;
		*(int64_t *)field = v;
		return 0;
	case CONF_ENUM: {
		int i = enum_index(o->choices, value);
		if (i < 0) {
			*why = xasprintf("'%s' is not one of %s", value, o->choices);
			return -EINVAL;
		}
		*(int *)field = i;
		return 0;
	}
	case CONF_MODE: {
		char *end;
		errno = 0;
		long m = strtol(value, &end, 8);
		if (!*value || *end || errno || m < 0 || m > 07777) {
			*why = xasprintf("'%s' is not an octal file mode (e.g. 0660)", value);
			return -EINVAL;
		}
		if ((r = range_check(o, m, why)) < 0)
			return r;
		*(int *)field = (int)m;
		return 0;
	}
	}
	*why = xstrdup("unknown option type");
	return -EINVAL;
}

void conf_free_values(const struct conf_option *table, void *base)
{
	if (!table || !base)
		return;
	for (const struct conf_option *o = table; o->key; o++)
		free_value(o, base);
}

int conf_apply_defaults(const struct conf_option *table, void *base, char **why)
{
	*why = NULL;
	if (!table)
		return 0;
	for (const struct conf_option *o = table; o->key; o++) {
		/* Secrets have no defaults: reading a file is not a default. */
		if (!o->def || o->type == CONF_SECRET)
			continue;
		char *w = NULL;
		if (conf_set_value(o, base, o->def, &w) < 0) {
			*why = xasprintf("default of %s: %s", o->key, w);
			free(w);
			return -EINVAL;
		}
	}
	return 0;
}

static const struct conf_option *table_find(const struct conf_option *t, const char *key)
{
	for (; t && t->key; t++)
		if (strcmp(t->key, key) == 0)
			return t;
	return NULL;
}

/* ---- tokenising with line numbers -------------------------------------- */

struct entry {
	char *section;
	char *key;
	char *value;
	int line;
	bool used;
};

struct parse_ctx {
	const char *path;
	FILE *f;
	int line;
	struct entry *entries;
	size_t n;
	struct conf_errors *errs;
};

/*
 * inih reads through this so that we know the line number of each entry.
 * A line longer than inih's buffer would reach it in pieces (and shift every
 * later line number): it is reported and the rest of the line skipped.
 */
static char *reader(char *str, int num, void *stream)
{
	struct parse_ctx *ctx = stream;
	char *s = fgets(str, num, ctx->f);
	if (!s)
		return NULL;
	ctx->line++;
	size_t len = strlen(s);
	if (len == (size_t)num - 1 && s[len - 1] != '\n' && !feof(ctx->f)) {
		int c;
		while ((c = fgetc(ctx->f)) != EOF && c != '\n')
			;
		conf_errors_add(ctx->errs, "%s:%d: line longer than %d bytes", ctx->path, ctx->line,
				num - 2);
		s[0] = '\0'; /* hand inih an empty line */
	}
	return s;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse_ctx *ctx = user;
	if (!name)
		return 1; /* a new section with INI_CALL_HANDLER_ON_NEW_SECTION */
	for (size_t i = 0; i < ctx->n; i++) {
		if (!strcmp(ctx->entries[i].section, section) &&
		    !strcmp(ctx->entries[i].key, name)) {
			conf_errors_add(ctx->errs,
					"%s:%d: [%s] key '%s' is set twice (first on line %d)",
					ctx->path, ctx->line, section, name, ctx->entries[i].line);
			return 1;
		}
	}
	ctx->entries = xrealloc(ctx->entries, (ctx->n + 1) * sizeof(*ctx->entries));
	ctx->entries[ctx->n++] = (struct entry){xstrdup(section), xstrdup(name),
						xstrdup(value ? value : ""), ctx->line, false};
	return 1;
}

/* ---- applying a section -------------------------------------------------- */

/* Applies entries of section sec to the tables (NULL-terminated list of
 * {table, base}); unknown keys are errors. Returns a fingerprint. */
struct table_ref {
	const struct conf_option *table;
	void *base;
};

static int cmp_entry_key(const void *a, const void *b)
{
	const struct entry *const *x = a, *const *y = b;
	return strcmp((*x)->key, (*y)->key);
}

static char *apply_section(struct parse_ctx *ctx, const char *sec, int sec_line,
			   const struct table_ref *refs, size_t nrefs, const char *what)
{
	struct dynbuf fp;
	struct entry **mine = NULL;
	size_t nmine = 0;
	dynbuf_init(&fp, 0);

	for (size_t i = 0; i < ctx->n; i++) {
		struct entry *e = &ctx->entries[i];
		if (strcmp(e->section, sec) != 0)
			continue;
		e->used = true;
		mine = xrealloc(mine, (nmine + 1) * sizeof(*mine));
		mine[nmine++] = e;
		const struct conf_option *o = NULL;
		void *base = NULL;
		for (size_t r = 0; r < nrefs && !o; r++) {
			o = table_find(refs[r].table, e->key);
			base = refs[r].base;
		}
		if (!o) {
			conf_errors_add(ctx->errs, "%s:%d: [%s] unknown key '%s'%s%s", ctx->path,
					e->line, sec, e->key, what ? " for " : "",
					what ? what : "");
			continue;
		}
		char *why = NULL;
		if (conf_set_value(o, base, e->value, &why) < 0) {
			conf_errors_add(ctx->errs, "%s:%d: [%s] %s: %s", ctx->path, e->line, sec,
					e->key, why);
			free(why);
		}
	}
	/* Required keys. */
	for (size_t r = 0; r < nrefs; r++) {
		for (const struct conf_option *o = refs[r].table; o && o->key; o++) {
			if (!(o->flags & CONF_REQUIRED))
				continue;
			bool set = false;
			for (size_t i = 0; i < nmine; i++)
				if (!strcmp(mine[i]->key, o->key))
					set = true;
			if (!set)
				conf_errors_add(ctx->errs,
						"%s:%d: [%s] missing required key '%s' (%s)",
						ctx->path, sec_line, sec, o->key, o->help);
		}
	}
	if (nmine)
		qsort(mine, nmine, sizeof(*mine), cmp_entry_key);
	for (size_t i = 0; i < nmine; i++)
		dynbuf_printf(&fp, "%s=%s\n", mine[i]->key, mine[i]->value);
	free(mine);
	return dynbuf_steal(&fp, NULL);
}

static int section_line(const struct parse_ctx *ctx, const char *sec)
{
	for (size_t i = 0; i < ctx->n; i++)
		if (!strcmp(ctx->entries[i].section, sec))
			return ctx->entries[i].line;
	return 0;
}

static const char *section_value(const struct parse_ctx *ctx, const char *sec, const char *key)
{
	for (size_t i = 0; i < ctx->n; i++)
		if (!strcmp(ctx->entries[i].section, sec) && !strcmp(ctx->entries[i].key, key))
			return ctx->entries[i].value;
	return NULL;
}

static bool valid_name(const char *s)
{
	if (!*s || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
			return false;
	return true;
}

static void defaults_or_bug(const struct conf_option *t, void *base)
{
	char *why = NULL;
	if (conf_apply_defaults(t, base, &why) < 0)
		log_fatal("option table bug: %s", why);
}

static void load_connector(struct parse_ctx *ctx, struct config *cfg, const char *sec)
{
	const char *name = sec + strlen("connector.");
	int line = section_line(ctx, sec);
	const char *tname = section_value(ctx, sec, "type");
	struct conn_common common = {0};
	struct conf_connector *cc;

	if (!valid_name(name)) {
		conf_errors_add(ctx->errs,
				"%s:%d: [%s] connector names use letters, digits, _ and - "
				"(at most 64)",
				ctx->path, line, sec);
	}
	const struct connector *type = tname ? conn_type_find(tname) : NULL;
	if (tname && !type) {
		struct dynbuf known;
		dynbuf_init(&known, 0);
		for (size_t i = 0; conn_type_at(i); i++)
			dynbuf_printf(&known, "%s%s", i ? ", " : "", conn_type_at(i)->name);
		conf_errors_add(ctx->errs, "%s:%d: [%s] unknown connector type '%s' (known: %s)",
				ctx->path, line, sec, tname, known.data ? known.data : "none");
		dynbuf_free(&known);
	}
	cfg->connectors =
		xrealloc(cfg->connectors, (cfg->n_connectors + 1) * sizeof(*cfg->connectors));
	cc = &cfg->connectors[cfg->n_connectors++];
	memset(cc, 0, sizeof(*cc));
	cc->name = xstrdup(name);
	cc->type = type;
	cc->line = line;

	struct table_ref refs[4];
	size_t n = 0;
	defaults_or_bug(conn_common_options, &common);
	refs[n++] = (struct table_ref){conn_common_options, &common};
	if (type) {
		unsigned flags = type->flags;
		if (flags & CONN_F_ADAPTER)
			flags |= CONN_F_HTTP;
		if (flags & CONN_F_HTTP) {
			cc->http_opts = xcalloc(1, sizeof(struct http_opts));
			defaults_or_bug(http_options, cc->http_opts);
			refs[n++] = (struct table_ref){http_options, cc->http_opts};
		}
		if (flags & CONN_F_ADAPTER) {
			cc->adapter_opts = xcalloc(1, sizeof(struct adapter_opts));
			defaults_or_bug(adapter_options, cc->adapter_opts);
			refs[n++] = (struct table_ref){adapter_options, cc->adapter_opts};
		}
		if (type->options) {
			cc->opts = xcalloc(1, type->opts_size ? type->opts_size : 1);
			defaults_or_bug(type->options, cc->opts);
			refs[n++] = (struct table_ref){type->options, cc->opts};
		}
	}
	char *what = type ? xasprintf("connector type '%s'", type->name) : NULL;
	cc->fingerprint = apply_section(ctx, sec, line, refs, type ? n : 1, what);
	free(what);
	cc->enabled = common.enabled;
	conf_free_values(conn_common_options, &common);
}

static void load_flow(struct parse_ctx *ctx, struct config *cfg, const char *sec)
{
	const char *name = sec + strlen("flow.");
	int line = section_line(ctx, sec);
	const char *tname = section_value(ctx, sec, "type");
	struct flow_common common = {0};
	struct conf_flow *cf;

	if (!tname)
		tname = name;
	if (!valid_name(name))
		conf_errors_add(ctx->errs,
				"%s:%d: [%s] flow names use letters, digits, _ and - "
				"(at most 64)",
				ctx->path, line, sec);
	const struct flow_type *type = flow_type_find(tname);
	if (!type) {
		struct dynbuf known;
		dynbuf_init(&known, 0);
		for (size_t i = 0; flow_type_at(i); i++)
			dynbuf_printf(&known, "%s%s", i ? ", " : "", flow_type_at(i)->name);
		conf_errors_add(ctx->errs, "%s:%d: [%s] unknown flow type '%s' (known: %s)",
				ctx->path, line, sec, tname, known.data ? known.data : "none");
		dynbuf_free(&known);
	}
	cfg->flows = xrealloc(cfg->flows, (cfg->n_flows + 1) * sizeof(*cfg->flows));
	cf = &cfg->flows[cfg->n_flows++];
	memset(cf, 0, sizeof(*cf));
	cf->name = xstrdup(name);
	cf->type = type;
	cf->line = line;

	struct table_ref refs[2];
	size_t n = 0;
	defaults_or_bug(flow_common_options, &common);
	refs[n++] = (struct table_ref){flow_common_options, &common};
	if (type && type->options) {
		cf->opts = xcalloc(1, type->opts_size ? type->opts_size : 1);
		defaults_or_bug(type->options, cf->opts);
		refs[n++] = (struct table_ref){type->options, cf->opts};
	}
	char *what = type ? xasprintf("flow type '%s'", type->name) : NULL;
	cf->fingerprint = apply_section(ctx, sec, line, refs, type ? n : 1, what);
	free(what);
	cf->enabled = common.enabled;
	cf->interval_ms = common.interval_ms;
	cf->jitter_ms = common.jitter_ms;
	cf->run_at_start = common.run_at_start;
	conf_free_values(flow_common_options, &common);
}

static const int level_prio[] = {LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG};

int conf_load(const char *path, struct config **out, struct conf_errors *errs)
{
	struct parse_ctx ctx = {.path = path, .errs = errs};
	struct config *cfg = NULL;
	size_t errs_before = errs->n;
	int r;

	*out = NULL;
	ctx.f = fopen(path, "re");
	if (!ctx.f) {
		r = -errno;
		conf_errors_add(errs, "%s: cannot open configuration file: %s", path,
				strerror(errno));
		return r;
	}
	int pr = ini_parse_stream(reader, &ctx, handler, &ctx);
	fclose(ctx.f);
	if (pr > 0)
		conf_errors_add(errs,
				"%s:%d: syntax error (expected [section], key = value, or a "
				"comment starting with ; or #)",
				path, pr);
	else if (pr < 0)
		conf_errors_add(errs, "%s: cannot parse (%d)", path, pr);

	cfg = xcalloc(1, sizeof(*cfg));
	cfg->path = xstrdup(path);
	cfg->loaded_wall_ms = now_wall_ms();
	defaults_or_bug(conf_daemon_options, &cfg->daemon);
	defaults_or_bug(conf_store_options, &cfg->store);
	defaults_or_bug(conf_control_options, &cfg->control);

	struct table_ref ref;
	ref = (struct table_ref){conf_daemon_options, &cfg->daemon};
	free(apply_section(&ctx, "daemon", section_line(&ctx, "daemon"), &ref, 1, NULL));
	cfg->daemon.log_level = level_prio[cfg->daemon.log_level];
	ref = (struct table_ref){conf_store_options, &cfg->store};
	free(apply_section(&ctx, "store", section_line(&ctx, "store"), &ref, 1, NULL));
	ref = (struct table_ref){conf_control_options, &cfg->control};
	free(apply_section(&ctx, "control", section_line(&ctx, "control"), &ref, 1, NULL));

	/* Plugins may define connector types, so load them before connectors. */
	if (cfg->daemon.plugin_dir)
		conn_load_plugins(cfg->daemon.plugin_dir, errs);
	/* Mappings belong to the config: a reload validates the new set with
	 * the new file, and a retired config keeps the set its passes use.
	 * An absent directory is no error until a flow asks for a mapping. */
	if (cfg->daemon.mappings_dir && access(cfg->daemon.mappings_dir, F_OK) == 0)
		map_set_load(cfg->daemon.mappings_dir, &cfg->maps, errs);

	for (size_t i = 0; i < ctx.n; i++) {
		struct entry *e = &ctx.entries[i];
		if (e->used)
			continue;
		if (str_startswith(e->section, "connector.")) {
			if (conf_connector_find(cfg, e->section + strlen("connector.")))
				continue;
			load_connector(&ctx, cfg, e->section);
		} else if (str_startswith(e->section, "flow.")) {
			if (conf_flow_find(cfg, e->section + strlen("flow.")))
				continue;
			load_flow(&ctx, cfg, e->section);
		} else if (!e->used) {
			/* Report each unknown section once, at its first key. */
			bool seen = false;
			for (size_t j = 0; j < i; j++)
				if (!strcmp(ctx.entries[j].section, e->section))
					seen = true;
			if (!seen)
				conf_errors_add(
					errs,
					"%s:%d: unknown section [%s] (known: daemon, store, "
					"control, connector.NAME, flow.NAME)",
					path, e->line, e->section[0] ? e->section : "(none)");
		}
	}

	for (size_t i = 0; i < ctx.n; i++) {
		free(ctx.entries[i].section);
		free(ctx.entries[i].key);
		free(ctx.entries[i].value);
	}
	free(ctx.entries);

	if (errs->n > errs_before) {
		conf_free(cfg);
		return -EINVAL;
	}
	/* The arrays are final now: sections can point back at their config. */
	for (size_t i = 0; i < cfg->n_connectors; i++)
		cfg->connectors[i].owner = cfg;
	for (size_t i = 0; i < cfg->n_flows; i++)
		cfg->flows[i].owner = cfg;
	*out = cfg;
	return 0;
}

void conf_free(struct config *c)
{
	if (!c)
		return;
	conf_free_values(conf_daemon_options, &c->daemon);
	conf_free_values(conf_store_options, &c->store);
	conf_free_values(conf_control_options, &c->control);
	for (size_t i = 0; i < c->n_connectors; i++) {
		struct conf_connector *cc = &c->connectors[i];
		if (cc->type && cc->opts)
			conf_free_values(cc->type->options, cc->opts);
		if (cc->http_opts)
			conf_free_values(http_options, cc->http_opts);
		if (cc->adapter_opts)
			conf_free_values(adapter_options, cc->adapter_opts);
		free(cc->opts);
		free(cc->http_opts);
		free(cc->adapter_opts);
		free(cc->name);
		free(cc->fingerprint);
	}
	free(c->connectors);
	for (size_t i = 0; i < c->n_flows; i++) {
		struct conf_flow *cf = &c->flows[i];
		if (cf->type && cf->opts)
			conf_free_values(cf->type->options, cf->opts);
		free(cf->opts);
		free(cf->name);
		free(cf->fingerprint);
	}
	free(c->flows);
	map_set_free(c->maps);
	free(c->path);
	free(c);
}

const struct conf_connector *conf_connector_find(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n_connectors; i++)
		if (!strcmp(c->connectors[i].name, name))
			return &c->connectors[i];
	return NULL;
}

const struct conf_flow *conf_flow_find(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n_flows; i++)
		if (!strcmp(c->flows[i].name, name))
			return &c->flows[i];
	return NULL;
}

/* ---- the template ------------------------------------------------------- */

static void print_wrapped(FILE *f, const char *text)
{
	const char *p = text;
	while (*p) {
		size_t n = strlen(p);
		if (n > 76) {
			n = 76;
			while (n > 0 && p[n] != ' ')
				n--;
			if (n == 0)
				n = 76;
		}
		fprintf(f, "# %.*s\n", (int)n, p);
		p += n;
		while (*p == ' ')
			p++;
	}
}

static void print_options(FILE *f, const struct conf_option *t)
{
	for (const struct conf_option *o = t; o && o->key; o++) {
		fprintf(f, "\n");
		print_wrapped(f, o->help);
		if (o->type == CONF_ENUM)
			fprintf(f, "# (%s %s", type_name(o->type), o->choices);
		else
			fprintf(f, "# (%s", type_name(o->type));
		if (o->min || o->max) {
			char *lo, *hi;
			if (o->type == CONF_DURATION) {
				lo = fmt_duration(o->min);
				hi = fmt_duration(o->max);
			} else if (o->type == CONF_SIZE) {
				lo = fmt_size(o->min);
				hi = fmt_size(o->max);
			} else if (o->type == CONF_MODE) {
				lo = xasprintf("%04llo", (unsigned long long)o->min);
				hi = xasprintf("%04llo", (unsigned long long)o->max);
			} else {
				lo = xasprintf("%lld", (long long)o->min);
				hi = xasprintf("%lld", (long long)o->max);
			}
			fprintf(f, ", %s..%s", lo, hi);
			free(lo);
			free(hi);
		}
		fprintf(f, "%s)\n", (o->flags & CONF_REQUIRED) ? ", required" : "");
		fprintf(f, "#%s = %s\n", o->key, o->def ? o->def : "");
	}
}

void conf_print_template(FILE *f)
{
	fprintf(f, "# lienthong.conf: configuration of lienthongd.\n"
		   "#\n"
		   "# Generated by `lienthongd --print-config-template` from the option tables\n"
		   "# in the code; every key is listed with its type, range and default\n"
		   "# (commented out). See lienthong.conf(5). Durations take ms, s, m, h, d\n"
		   "# (a bare number is seconds); sizes take k, M, G. Secrets are never\n"
		   "# written here: a secret key names a file (absolute path, mode 0600 or\n"
		   "# 0640) or a systemd credential (LoadCredential=) by its name.\n");
	fprintf(f, "\n[daemon]\n");
	print_options(f, conf_daemon_options);
	fprintf(f, "\n[store]\n");
	print_options(f, conf_store_options);
	fprintf(f, "\n[control]\n");
	print_options(f, conf_control_options);
	for (size_t i = 0; conn_type_at(i); i++) {
		const struct connector *t = conn_type_at(i);
		unsigned flags = t->flags;
		if (flags & CONN_F_ADAPTER)
			flags |= CONN_F_HTTP;
		fprintf(f, "\n# ---- connector type '%s'\n", t->name);
		print_wrapped(f, t->description);
		fprintf(f, "#[connector.%s]\n", t->name);
		fprintf(f, "#type = %s\n", t->name);
		print_options(f, conn_common_options + 1);
		if (flags & CONN_F_HTTP)
			print_options(f, http_options);
		if (flags & CONN_F_ADAPTER)
			print_options(f, adapter_options);
		print_options(f, t->options);
	}
	for (size_t i = 0; flow_type_at(i); i++) {
		const struct flow_type *t = flow_type_at(i);
		fprintf(f, "\n# ---- flow type '%s'\n", t->name);
		print_wrapped(f, t->description);
		fprintf(f, "#[flow.%s]\n", t->name);
		print_options(f, flow_common_options);
		print_options(f, t->options);
	}
}
