/*
 * files: drop folders of JSON Lines, JSON and CSV files, for segregated
 * networks (a one-way transfer carries the files across) and for imports.
 *
 * Source side (in_dir): pull takes the oldest eligible file, parses it
 * whole into one batch (token = file name) and leaves it where it is; ack
 * moves it to in_dir/done/ (or deletes it) once the records are delivered,
 * or to in_dir/failed/ with a <name>.reason file when they never can be. A
 * file that cannot be parsed goes to failed/ at once, so one bad file never
 * blocks the folder. A file stays in in_dir until it is acknowledged, so a
 * crash at any point re-delivers it (at least once, never lost).
 *
 * Files that a writer may still be writing are left alone: names starting
 * with "." or ending in ".tmp"/".part", and files modified less than
 * min_age ago. Only regular files are taken (a symlink is never followed).
 *
 * Sink side (out_dir): push writes the records as one or more new files,
 * each first as .<name>.tmp, fsynced, then renamed without ever replacing
 * an existing file, then the directory fsynced; a reader using the rules
 * above never sees a partial file.
 *
 * Everything here is local disk I/O and done synchronously, but every
 * completion is delivered through a deferred sd-event source, so a caller
 * is never re-entered from inside pull/push/probe.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "connector.h"
#include "daemon.h"
#include "files.h"
#include "log.h"
#include "store.h"
#include "util.h"

enum { FILES_FMT_JSONL, FILES_FMT_CSV, FILES_FMT_JSON };
enum { FILES_DONE_MOVE, FILES_DONE_DELETE };

/* How much of a bad file is kept as the mismatch's raw payload. */
#define FILES_RAW_BYTES 4096
/* Attempts at a free name (numeric suffix) before giving up. */
#define FILES_MAX_SUFFIX 10000

struct files_opts {
	char *in_dir;
	char *out_dir;
	int format;
	char *pattern;
	int64_t max_file_bytes;
	int64_t max_records_per_file;
	int done_action;
	char *csv_separator;
	char *out_prefix;
	int64_t min_age_ms;
	int file_mode;
};

static const struct conf_option files_options[] = {
	{.key = "in_dir",
	 .type = CONF_PATH,
	 .offset = offsetof(struct files_opts, in_dir),
	 .help = "Folder read as a source: files dropped here are pulled oldest first. "
		 "Subfolders done/ and failed/ receive them afterwards."},
	{.key = "out_dir",
	 .type = CONF_PATH,
	 .offset = offsetof(struct files_opts, out_dir),
	 .help = "Folder written as a sink: each push writes new files here atomically."},
	{.key = "format",
	 .type = CONF_ENUM,
	 .def = "jsonl",
	 .choices = "jsonl|csv|json",
	 .offset = offsetof(struct files_opts, format),
	 .help = "Format of the files written to out_dir. Input files are read by their "
		 "extension: .jsonl, .ndjson, .json or .csv."},
	{.key = "pattern",
	 .type = CONF_STRING,
	 .def = "*",
	 .offset = offsetof(struct files_opts, pattern),
	 .help = "Shell glob the names of input files must match, e.g. *.csv."},
	{.key = "max_file_bytes",
	 .type = CONF_SIZE,
	 .def = "64M",
	 .min = 1,
	 .max = 1024LL * 1024 * 1024,
	 .offset = offsetof(struct files_opts, max_file_bytes),
	 .help = "Largest input file read; a larger one is moved to failed/."},
	{.key = "max_records_per_file",
	 .type = CONF_INT,
	 .def = "10000",
	 .min = 1,
	 .max = 1000000,
	 .offset = offsetof(struct files_opts, max_records_per_file),
	 .help = "Records per output file; a larger push is split into several files."},
	{.key = "done_action",
	 .type = CONF_ENUM,
	 .def = "move",
	 .choices = "move|delete",
	 .offset = offsetof(struct files_opts, done_action),
	 .help = "What happens to an input file once its records are delivered: moved "
		 "to in_dir/done/ or deleted."},
	{.key = "csv_separator",
	 .type = CONF_STRING,
	 .def = ",",
	 .offset = offsetof(struct files_opts, csv_separator),
	 .help = "Field separator of CSV files read and written: one character, or "
		 "comma, semicolon, tab or pipe (a bare ; would be read as a comment)."},
	{.key = "out_prefix",
	 .type = CONF_STRING,
	 .offset = offsetof(struct files_opts, out_prefix),
	 .help = "Start of the names of the files written (default: the connector "
		 "name): PREFIX-yyyyMMddTHHmmss-SEQ.EXT."},
	{.key = "min_age",
	 .type = CONF_DURATION,
	 .def = "2s",
	 .min = 0,
	 .max = 86400000,
	 .offset = offsetof(struct files_opts, min_age_ms),
	 .help = "Input files modified more recently than this are left alone: a "
		 "writer may still be writing them."},
	{.key = "file_mode",
	 .type = CONF_MODE,
	 .def = "0640",
	 .offset = offsetof(struct files_opts, file_mode),
	 .help = "Permissions of the files written (output files and .reason files)."},
	CONF_OPTION_END,
};

struct files;

/* A completion waiting for the loop. Owns batch and msg. */
struct files_pending {
	struct files *fs;
	sd_event_source *src; /* owned */
	struct files_pending *prev, *next;
	conn_pull_cb pull_done; /* exactly one of pull_done / done is set */
	conn_done_cb done;
	void *ud;
	enum conn_outcome o;
	struct conn_batch *batch;
	char *msg;
};

/* c->priv. Every pointer is owned except c. */
struct files {
	struct conn *c;
	char *field;	  /* "CONNECTOR=name" for log_fields */
	char *done_dir;	  /* in_dir/done, NULL without in_dir */
	char *failed_dir; /* in_dir/failed */
	char *prefix;
	char sep;
	unsigned seq; /* last sequence number used in an output name */
	uint64_t files_read, files_failed, files_written, records_written;
	struct files_pending *pending;
};

/* Journal fields naming the connector, for log_fields. */
#define FILES_FIELDS(fs) ((const char *const[]){(fs)->field, NULL})

/* ---- deferred completions ------------------------------------------- */

static void files_pending_unlink(struct files_pending *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		p->fs->pending = p->next;
	if (p->next)
		p->next->prev = p->prev;
	p->prev = p->next = NULL;
}

static int files_deferred(sd_event_source *s, void *userdata)
{
	struct files_pending *p = userdata;
	struct conn *c = p->fs->c;
	conn_pull_cb pull_done = p->pull_done;
	conn_done_cb done = p->done;
	void *ud = p->ud;
	enum conn_outcome o = p->o;
	struct conn_batch *b = p->batch;
	char *msg = p->msg;

	(void)s;
	/* Forget p before calling out: the callback may free the connector. */
	files_pending_unlink(p);
	sd_event_source_unref(p->src);
	free(p);
	if (pull_done)
		pull_done(c, o, b, msg, ud);
	else
		done(c, o, msg, ud);
	free(msg);
	return 0;
}

/*
 * Creates the completion before any work is done, so that once the work
 * has touched the disk its outcome is always delivered.
 */
static int files_pending_new(struct files *fs, struct files_pending **out)
{
	struct daemon *d = fs->c->d;
	struct files_pending *p;
	int r;

	if (!d || !d->ev)
		return -EINVAL;
	p = xcalloc(1, sizeof(*p));
	p->fs = fs;
	r = sd_event_add_defer(d->ev, &p->src, files_deferred, p);
	if (r < 0) {
		free(p);
		return r;
	}
	p->next = fs->pending;
	if (p->next)
		p->next->prev = p;
	fs->pending = p;
	*out = p;
	return 0;
}

static void files_pending_set(struct files_pending *p, enum conn_outcome o, char *msg)
{
	p->o = o;
	free(p->msg);
	p->msg = msg;
}

/* ---- names and paths ------------------------------------------------- */

/* Whether name could be an input file at all (age aside). */
static bool files_name_eligible(const struct files_opts *o, const char *name)
{
	if (name[0] == '.' || str_endswith(name, ".tmp") || str_endswith(name, ".part"))
		return false;
	return fnmatch(o->pattern ? o->pattern : "*", name, 0) == 0;
}

/* Input format from the extension, -1 when unknown. */
static int files_format_of(const char *name)
{
	const char *dot = strrchr(name, '.');
	if (!dot)
		return -1;
	if (strcasecmp(dot, ".jsonl") == 0 || strcasecmp(dot, ".ndjson") == 0)
		return FILES_FMT_JSONL;
	if (strcasecmp(dot, ".json") == 0)
		return FILES_FMT_JSON;
	if (strcasecmp(dot, ".csv") == 0)
		return FILES_FMT_CSV;
	return -1;
}

static bool files_token_valid(const char *t)
{
	return t && *t && !strchr(t, '/') && strcmp(t, ".") != 0 && strcmp(t, "..") != 0;
}

/*
 * rename(2) that never replaces an existing target. RENAME_NOREPLACE where
 * the filesystem has it, otherwise link + unlink (link fails on EEXIST too).
 */
static int files_rename_noreplace(const char *from, const char *to)
{
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
		return -errno;
	if (link(from, to) < 0)
		return -errno;
	if (unlink(from) < 0) {
		int r = -errno;
		unlink(to);
		return r;
	}
	return 0;
}

/* "name.csv" with n > 0 -> "name.n.csv"; without extension "name.n". */
static char *files_suffixed(const char *name, unsigned n)
{
	const char *dot = strrchr(name, '.');
	if (n == 0)
		return xstrdup(name);
	if (!dot || dot == name)
		return xasprintf("%s.%u", name, n);
	return xasprintf("%.*s.%u%s", (int)(dot - name), name, n, dot);
}

/*
 * Moves in_dir/name into dir under name or, when taken, name with a numeric
 * suffix, then fsyncs both directories. *final gets the name used.
 */
static int files_move(struct files *fs, const char *name, const char *dir, char **final)
{
	const struct files_opts *o = fs->c->opts;
	char *from = xasprintf("%s/%s", o->in_dir, name);
	int r = -EEXIST;

	for (unsigned n = 0; n < FILES_MAX_SUFFIX && r == -EEXIST; n++) {
		char *cand = files_suffixed(name, n);
		char *to = xasprintf("%s/%s", dir, cand);
		r = files_rename_noreplace(from, to);
		if (r == 0 && final) {
			*final = cand;
			cand = NULL;
		}
		free(cand);
		free(to);
	}
	if (r == 0)
		r = fsync_dir(dir);
	if (r == 0)
		r = fsync_dir(o->in_dir);
	free(from);
	return r;
}

/* ---- UTF-8 ----------------------------------------------------------- */

/* The raw head of a bad file as valid UTF-8 text: bad bytes and NULs become '?'. */
static char *files_raw_head(const char *path)
{
	unsigned char buf[FILES_RAW_BYTES];
	struct dynbuf out;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return NULL;
	do
		n = read(fd, buf, sizeof(buf));
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n <= 0)
		return NULL;
	dynbuf_init(&out, 0);
	for (size_t i = 0; i < (size_t)n;) {
		size_t good = utf8_bad_at(buf + i, (size_t)n - i);
		dynbuf_add(&out, buf + i, good);
		i += good;
		if (i < (size_t)n) {
			dynbuf_add(&out, "?", 1);
			i++;
		}
	}
	return dynbuf_steal(&out, NULL);
}

static size_t files_line_at(const char *s, size_t off)
{
	size_t line = 1;
	for (size_t i = 0; i < off; i++)
		if (s[i] == '\n')
			line++;
	return line;
}

/*
 * jansson's error text without its " near '...'" part: that part quotes the
 * file's content, which may be a citizen's data and is not needed to find
 * the fault once line and column are named.
 */
static char *files_json_why(const json_error_t *e)
{
	const char *near = strstr(e->text, " near ");
	int n = near ? (int)(near - e->text) : (int)strlen(e->text);
	return xasprintf("%.*s", n, e->text);
}

/* ---- parsers --------------------------------------------------------- */

static bool files_blank(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return false;
	return true;
}

static int files_parse_jsonl(const char *data, size_t len, json_t *out, char **why)
{
	const char *p = data, *end = data + len;
	size_t line = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		json_error_t e;
		json_t *v;

		line++;
		if (n && p[n - 1] == '\r')
			n--;
		if (!files_blank(p, n)) {
			v = json_loadb(p, n, JSON_DECODE_ANY, &e);
			if (!v) {
				char *t = files_json_why(&e);
				*why = xasprintf("line %zu, column %d: %s", line, e.column, t);
				free(t);
				return -EINVAL;
			}
			if (!json_is_object(v)) {
				json_decref(v);
				*why = xasprintf("line %zu: expected an object", line);
				return -EINVAL;
			}
			json_array_append_new(out, v);
		}
		p = nl ? nl + 1 : end;
	}
	return 0;
}

static int files_parse_json(const char *data, size_t len, json_t *out, char **why)
{
	json_error_t e;
	json_t *v = json_loadb(data, len, JSON_DECODE_ANY, &e);
	size_t i;
	json_t *item;

	if (!v) {
		char *t = files_json_why(&e);
		*why = xasprintf("line %d, column %d: %s", e.line, e.column, t);
		free(t);
		return -EINVAL;
	}
	if (json_is_object(v)) {
		json_array_append_new(out, v);
		return 0;
	}
	if (!json_is_array(v)) {
		json_decref(v);
		*why = xstrdup("expected an array of objects or one object");
		return -EINVAL;
	}
	json_array_foreach (v, i, item) {
		if (!json_is_object(item)) {
			json_decref(v);
			/* jansson keeps no positions for values: name the item, 1-based. */
			*why = xasprintf("item %zu: expected an object", i + 1);
			return -EINVAL;
		}
		json_array_append(out, item);
	}
	json_decref(v);
	return 0;
}

/* RFC 4180 reader over a buffer; line counts physical lines from 1. */
struct files_csv {
	const char *p, *end;
	char sep;
	size_t line;
	struct dynbuf field;
};

/*
 * Reads the next record into *rec (a new array of strings) and the line it
 * starts on into *rec_line. Returns 1, 0 at the end, or -EINVAL with *why.
 */
static int files_csv_next(struct files_csv *cs, json_t **rec, size_t *rec_line, char **why)
{
	json_t *fields;
	const char *p = cs->p, *end = cs->end;

	if (p >= end)
		return 0;
	fields = json_array();
	*rec_line = cs->line;
	for (;;) {
		dynbuf_reset(&cs->field);
		if (p < end && *p == '"') {
			size_t start_line = cs->line;
			p++;
			for (;;) {
				const char *q = memchr(p, '"', (size_t)(end - p));
				if (!q) {
					*why = xasprintf("line %zu: quoted field not closed",
							 start_line);
					goto fail;
				}
				for (const char *s = p; s < q; s++)
					if (*s == '\n')
						cs->line++;
				dynbuf_add(&cs->field, p, (size_t)(q - p));
				p = q + 1;
				if (p < end && *p == '"') {
					dynbuf_add(&cs->field, "\"", 1);
					p++;
					continue;
				}
				break;
			}
			if (p < end && *p != cs->sep && *p != '\r' && *p != '\n') {
				*why = xasprintf(
					"line %zu: unexpected character after a closing quote",
					cs->line);
				goto fail;
			}
		} else {
			const char *s = p;
			while (p < end && *p != cs->sep && *p != '\r' && *p != '\n') {
				if (*p == '"') {
					*why = xasprintf("line %zu: quote inside an unquoted field "
							 "(field %zu)",
							 cs->line, json_array_size(fields) + 1);
					goto fail;
				}
				p++;
			}
			dynbuf_add(&cs->field, s, (size_t)(p - s));
		}
		json_array_append_new(
			fields, json_stringn(cs->field.data ? cs->field.data : "", cs->field.len));
		if (p >= end)
			break;
		if (*p == cs->sep) {
			p++;
			continue;
		}
		/* CRLF, LF, or a lone CR: the record ends. */
		if (*p == '\r' && p + 1 < end && p[1] == '\n')
			p++;
		p++;
		cs->line++;
		break;
	}
	cs->p = p;
	*rec = fields;
	return 1;
fail:
	json_decref(fields);
	return -EINVAL;
}

static bool files_csv_blank(const json_t *rec)
{
	return json_array_size(rec) == 1 && json_string_length(json_array_get(rec, 0)) == 0;
}

static int files_parse_csv(const char *data, size_t len, char sep, json_t *out, char **why)
{
	struct files_csv cs = {.p = data, .end = data + len, .sep = sep, .line = 1};
	json_t *header = NULL, *rec = NULL;
	size_t line, i, nh;
	int r;

	dynbuf_init(&cs.field, 0);
	r = files_csv_next(&cs, &header, &line, why);
	if (r <= 0)
		goto out; /* an empty file is an empty batch */
	nh = json_array_size(header);
	for (i = 0; i < nh; i++) {
		const char *name = json_string_value(json_array_get(header, i));
		if (!*name) {
			*why = xasprintf("line %zu: column %zu of the header has no name", line,
					 i + 1);
			r = -EINVAL;
			goto out;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(name, json_string_value(json_array_get(header, j))) == 0) {
				*why = xasprintf("line %zu: columns %zu and %zu of the header have "
						 "the same name",
						 line, j + 1, i + 1);
				r = -EINVAL;
				goto out;
			}
		}
	}
	while ((r = files_csv_next(&cs, &rec, &line, why)) > 0) {
		size_t nf = json_array_size(rec);
		json_t *obj;
		if (files_csv_blank(rec)) {
			json_decref(rec);
			rec = NULL;
			continue;
		}
		if (nf != nh) {
			*why = xasprintf("line %zu: %zu field%s, header has %zu", line, nf,
					 nf == 1 ? "" : "s", nh);
			r = -EINVAL;
			goto out;
		}
		obj = json_object();
		for (i = 0; i < nf; i++)
			json_object_set(obj, json_string_value(json_array_get(header, i)),
					json_array_get(rec, i));
		json_array_append_new(out, obj);
		json_decref(rec);
		rec = NULL;
	}
out:
	json_decref(rec);
	json_decref(header);
	dynbuf_free(&cs.field);
	return r < 0 ? r : 0;
}

/*
 * Reads and parses in_dir/name. Returns 0 with *out, -ENOENT when the file
 * vanished, or another negative errno with *why (the file is bad).
 */
static int files_load(struct files *fs, const char *name, struct conn_batch **out, char **why)
{
	const struct files_opts *o = fs->c->opts;
	char *path = xasprintf("%s/%s", o->in_dir, name);
	char *data = NULL;
	const char *text;
	size_t len = 0, bad;
	json_t *records = NULL;
	int fmt = files_format_of(name), r;
	struct conn_batch *b;
	struct stat st;

	if (lstat(path, &st) < 0) {
		r = -errno;
		if (r != -ENOENT)
			*why = xasprintf("cannot read: %s", strerror(errno));
		goto out;
	}
	if (fmt < 0) {
		*why = xstrdup(
			"unknown format: the name must end in .jsonl, .ndjson, .json or .csv");
		r = -EINVAL;
		goto out;
	}
	if (st.st_size > o->max_file_bytes) {
		*why = xasprintf("too large: %lld bytes, max_file_bytes is %lld",
				 (long long)st.st_size, (long long)o->max_file_bytes);
		r = -EFBIG;
		goto out;
	}
	r = read_file_bounded(path, (size_t)o->max_file_bytes, &data, &len);
	if (r == -EFBIG) {
		*why = xasprintf("too large: more than max_file_bytes (%lld bytes)",
				 (long long)o->max_file_bytes);
		goto out;
	}
	if (r < 0) {
		if (r != -ENOENT)
			*why = xasprintf("cannot read: %s", strerror(-r));
		goto out;
	}
	text = data;
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
		text += 3;
		len -= 3;
	}
	bad = utf8_bad_at((const unsigned char *)text, len);
	if (bad < len) {
		*why = xasprintf("line %zu: %s at byte %zu", files_line_at(text, bad),
				 text[bad] ? "not valid UTF-8" : "NUL byte",
				 bad + (size_t)(text - data) + 1);
		r = -EILSEQ;
		goto out;
	}
	records = json_array();
	if (fmt == FILES_FMT_JSONL)
		r = files_parse_jsonl(text, len, records, why);
	else if (fmt == FILES_FMT_JSON)
		r = files_parse_json(text, len, records, why);
	else
		r = files_parse_csv(text, len, fs->sep, records, why);
	if (r < 0)
		goto out;
	b = xcalloc(1, sizeof(*b));
	b->records = records;
	records = NULL;
	b->token = xstrdup(name);
	b->origin = path;
	path = NULL;
	*out = b;
out:
	json_decref(records);
	free(data);
	free(path);
	return r;
}

/* ---- moving bad and rejected files ----------------------------------- */

/* reason on one line: newlines of a sink's message would split the .reason file. */
static char *files_one_line(const char *s)
{
	char *t = xstrdup(s && *s ? s : "rejected");
	for (char *p = t; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	return t;
}

/*
 * Moves in_dir/name to failed/ with name.reason, logs, and records a
 * mismatch of kind. Returns 0, or -errno when the file could not be moved
 * (then it is still in in_dir).
 */
static int files_fail_file(struct files *fs, const char *name, const char *reason, const char *kind)
{
	const struct files_opts *o = fs->c->opts;
	struct daemon *d = fs->c->d;
	char *path = xasprintf("%s/%s", o->in_dir, name);
	char *line = files_one_line(reason);
	char *raw = files_raw_head(path);
	char *final = NULL, *rpath = NULL, *text = NULL;
	int r, q;

	r = files_move(fs, name, fs->failed_dir, &final);
	if (r < 0) {
		log_fields(LOG_ERR, FILES_FIELDS(fs), "cannot move %s to %s: %s (%s)", path,
			   fs->failed_dir, strerror(-r), line);
		goto out;
	}
	fs->files_failed++;
	rpath = xasprintf("%s/%s.reason", fs->failed_dir, final);
	text = xasprintf("%s\n", line);
	q = write_file_atomic(rpath, text, strlen(text), (unsigned)o->file_mode);
	if (q < 0)
		log_fields(LOG_WARNING, FILES_FIELDS(fs), "cannot write %s: %s", rpath,
			   strerror(-q));
	log_fields(LOG_WARNING, FILES_FIELDS(fs), "%s moved to failed/%s: %s", name, final, line);
	if (d && d->store) {
		json_t *detail = json_pack("{s:s, s:s, s:s}", "file", name, "moved_to", final,
					   "reason", line);
		char *dtext = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
		char *summary = xasprintf("Tệp %s không xử lý được: %s", name, line);
		struct mismatch m = {
			.kind = kind,
			.key = name,
			.summary = summary,
			.detail = dtext,
			.raw = raw,
			.seen_ms = now_wall_ms(),
		};
		int64_t id;
		bool is_new;
		q = store_mismatch_upsert(d->store, &m, &id, &is_new);
		if (q < 0)
			log_fields(LOG_ERR, FILES_FIELDS(fs), "cannot record mismatch for %s: %s",
				   name, strerror(-q));
		free(summary);
		free(dtext);
		json_decref(detail);
	}
out:
	free(text);
	free(rpath);
	free(final);
	free(raw);
	free(line);
	free(path);
	return r;
}

/* ---- source side ----------------------------------------------------- */

static bool files_older(const struct timespec *a, const char *an, const struct timespec *b,
			const char *bn)
{
	if (a->tv_sec != b->tv_sec)
		return a->tv_sec < b->tv_sec;
	if (a->tv_nsec != b->tv_nsec)
		return a->tv_nsec < b->tv_nsec;
	return strcmp(an, bn) < 0;
}

/*
 * The oldest eligible file of in_dir (by mtime, then name). Returns 1 with
 * *name, 0 when none, or -errno.
 */
static int files_oldest(struct files *fs, char **name)
{
	const struct files_opts *o = fs->c->opts;
	int64_t newest_ms = now_wall_ms() - o->min_age_ms;
	struct timespec best_t = {0, 0};
	char *best = NULL;
	struct dirent *de;
	DIR *dir = opendir(o->in_dir);

	if (!dir)
		return -errno;
	while ((errno = 0, de = readdir(dir))) {
		struct stat st;
		int64_t mtime_ms;
		if (!files_name_eligible(o, de->d_name))
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
		if (mtime_ms > newest_ms)
			continue;
		if (!best || files_older(&st.st_mtim, de->d_name, &best_t, best)) {
			free(best);
			best = xstrdup(de->d_name);
			best_t = st.st_mtim;
		}
	}
	if (errno) {
		int r = -errno;
		closedir(dir);
		free(best);
		return r;
	}
	closedir(dir);
	*name = best;
	return best ? 1 : 0;
}

static int files_pull(struct conn *c, conn_pull_cb done, void *ud)
{
	struct files *fs = c->priv;
	const struct files_opts *o = c->opts;
	struct files_pending *p;
	int r = files_pending_new(fs, &p);

	if (r < 0)
		return r;
	p->pull_done = done;
	p->ud = ud;
	if (!o->in_dir) {
		files_pending_set(p, CONN_FAIL,
				  xstrdup("no in_dir: this connector is not a source"));
		return 0;
	}
	/* Bad files are moved out of the way, so each turn makes progress. */
	for (;;) {
		char *name = NULL, *why = NULL;
		struct conn_batch *b = NULL;

		r = files_oldest(fs, &name);
		if (r < 0) {
			files_pending_set(p, CONN_RETRY,
					  xasprintf("cannot list %s: %s", o->in_dir, strerror(-r)));
			break;
		}
		if (r == 0) {
			files_pending_set(p, CONN_OK, NULL);
			break;
		}
		r = files_load(fs, name, &b, &why);
		if (r == 0) {
			fs->files_read++;
			p->batch = b;
			files_pending_set(p, CONN_OK, NULL);
			free(name);
			break;
		}
		/* -ENOENT: the file vanished since it was listed; just look again. */
		if (r != -ENOENT)
			r = files_fail_file(fs, name, why, "files.unreadable");
		if (r < 0 && r != -ENOENT) {
			files_pending_set(p, CONN_RETRY,
					  xasprintf("cannot move the bad file %s to %s", name,
						    fs->failed_dir));
			free(why);
			free(name);
			break;
		}
		free(why);
		free(name);
	}
	return 0;
}

static int files_ack(struct conn *c, const struct conn_batch *b, bool ok, const char *reason)
{
	struct files *fs = c->priv;
	const struct files_opts *o = c->opts;
	int r;

	if (!o->in_dir || !b || !files_token_valid(b->token))
		return -EINVAL;
	if (!ok) {
		r = files_fail_file(fs, b->token, reason, "files.rejected");
		return r;
	}
	if (o->done_action == FILES_DONE_DELETE) {
		char *path = xasprintf("%s/%s", o->in_dir, b->token);
		r = unlink(path) < 0 ? -errno : fsync_dir(o->in_dir);
		free(path);
	} else {
		r = files_move(fs, b->token, fs->done_dir, NULL);
	}
	if (r < 0)
		log_fields(LOG_ERR, FILES_FIELDS(fs), "cannot %s %s after delivery: %s",
			   o->done_action == FILES_DONE_DELETE ? "delete" : "move to done/",
			   b->token, strerror(-r));
	return r;
}

static int files_locate(struct conn *c, const char *name, char **path, size_t *max_bytes,
			char **why)
{
	const struct files_opts *o = c->opts;
	struct stat st;
	*path = NULL;
	*why = NULL;
	if (!o->in_dir || !files_token_valid(name)) {
		*why = xasprintf(!o->in_dir ? "no in_dir: this connector is not a source"
					    : "'%s' is not a plain file name",
				 name ? name : "");
		return -EINVAL;
	}
	char *p = xasprintf("%s/%s", o->in_dir, name);
	if (lstat(p, &st) < 0) {
		int r = -errno;
		if (r != -ENOENT && r != -ENOTDIR)
			*why = xasprintf("%s: %s", p, strerror(errno));
		free(p);
		return r == -ENOTDIR ? -ENOENT : r;
	}
	int64_t mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
	if (!S_ISREG(st.st_mode)) {
		*why = xasprintf("%s: not a regular file", p);
		free(p);
		return -EINVAL;
	}
	if (st.st_size > o->max_file_bytes) {
		*why = xasprintf("%s: too large: %lld bytes, max_file_bytes is %lld", p,
				 (long long)st.st_size, (long long)o->max_file_bytes);
		free(p);
		return -EFBIG;
	}
	if (mtime_ms > now_wall_ms() - o->min_age_ms) {
		free(p); /* a writer may still be at it */
		return -ENOENT;
	}
	*path = p;
	*max_bytes = (size_t)o->max_file_bytes;
	return 0;
}

static const struct files_ops files_ops = {
	.locate = files_locate,
};

/* ---- sink side ------------------------------------------------------- */

static int files_csv_add_field(struct dynbuf *b, char sep, const char *s, size_t n)
{
	bool quote = false;
	int r = 0;
	for (size_t i = 0; i < n && !quote; i++)
		quote = s[i] == sep || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
	if (!quote)
		return dynbuf_add(b, s, n);
	r |= dynbuf_add(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		const char *q = memchr(s + i, '"', n - i);
		size_t k = q ? (size_t)(q - (s + i)) : n - i;
		r |= dynbuf_add(b, s + i, k);
		i += k;
		if (q)
			r |= dynbuf_add(b, "\"\"", 2);
	}
	r |= dynbuf_add(b, "\"", 1);
	return r;
}

static void files_csv_add_value(struct dynbuf *b, char sep, json_t *v)
{
	char *t;
	if (!v || json_is_null(v))
		return;
	if (json_is_string(v)) {
		files_csv_add_field(b, sep, json_string_value(v), json_string_length(v));
		return;
	}
	t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (t)
		files_csv_add_field(b, sep, t, strlen(t));
	free(t);
}

/* Renders records[from, to) in the output format into b. */
static void files_render(struct files *fs, json_t *records, size_t from, size_t to,
			 struct dynbuf *b)
{
	const struct files_opts *o = fs->c->opts;
	size_t i;

	if (o->format == FILES_FMT_JSONL) {
		for (i = from; i < to; i++) {
			char *t = json_dumps(json_array_get(records, i), JSON_COMPACT);
			dynbuf_addstr(b, t ? t : "{}");
			dynbuf_add(b, "\n", 1);
			free(t);
		}
	} else if (o->format == FILES_FMT_JSON) {
		json_t *part = json_array();
		char *t;
		for (i = from; i < to; i++)
			json_array_append(part, json_array_get(records, i));
		t = json_dumps(part, JSON_INDENT(2));
		dynbuf_addstr(b, t ? t : "[]");
		dynbuf_add(b, "\n", 1);
		free(t);
		json_decref(part);
	} else {
		/* Header: union of keys in first-seen order (jansson keeps insertion order). */
		json_t *keys = json_object(), *hdr = json_array(), *v;
		const char *k;
		size_t j;
		for (i = from; i < to; i++) {
			json_object_foreach (json_array_get(records, i), k, v) {
				if (!json_object_get(keys, k)) {
					json_object_set_new(keys, k, json_true());
					json_array_append_new(hdr, json_string(k));
				}
			}
		}
		dynbuf_add(b, "\xef\xbb\xbf", 3);
		json_array_foreach (hdr, j, v) {
			if (j)
				dynbuf_add(b, &fs->sep, 1);
			files_csv_add_field(b, fs->sep, json_string_value(v),
					    json_string_length(v));
		}
		dynbuf_add(b, "\r\n", 2);
		for (i = from; i < to; i++) {
			json_t *rec = json_array_get(records, i);
			json_array_foreach (hdr, j, v) {
				if (j)
					dynbuf_add(b, &fs->sep, 1);
				files_csv_add_value(b, fs->sep,
						    json_object_get(rec, json_string_value(v)));
			}
			dynbuf_add(b, "\r\n", 2);
		}
		json_decref(hdr);
		json_decref(keys);
	}
}

static int files_write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Writes data as a new file of out_dir named PREFIX-STAMP-SEQ.EXT, through
 * .NAME.tmp, never replacing an existing file. *path gets the final path.
 */
static int files_write_new(struct files *fs, const char *stamp, const char *data, size_t len,
			   char **path)
{
	static const char *const exts[] = {"jsonl", "csv", "json"};
	const struct files_opts *o = fs->c->opts;
	int r = -EEXIST;

	for (unsigned tries = 0; tries < FILES_MAX_SUFFIX && r == -EEXIST; tries++) {
		char *name =
			xasprintf("%s-%s-%04u.%s", fs->prefix, stamp, ++fs->seq, exts[o->format]);
		char *tmp = xasprintf("%s/.%s.tmp", o->out_dir, name);
		char *final = xasprintf("%s/%s", o->out_dir, name);
		int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
			      (mode_t)o->file_mode);

		free(name);
		if (fd < 0) {
			r = -errno;
		} else {
			/* fchmod: the umask must not decide who may read the output. */
			r = fchmod(fd, (mode_t)o->file_mode) < 0 ? -errno : 0;
			if (r == 0)
				r = files_write_all(fd, data, len);
			if (r == 0 && fsync(fd) < 0)
				r = -errno;
			if (close(fd) < 0 && r == 0)
				r = -errno;
			if (r == 0)
				r = files_rename_noreplace(tmp, final);
			if (r < 0)
				unlink(tmp);
		}
		if (r == 0) {
			*path = final;
			final = NULL;
		}
		free(final);
		free(tmp);
	}
	if (r == 0)
		r = fsync_dir(o->out_dir);
	return r;
}

static int files_push(struct conn *c, json_t *records, const char *origin, conn_done_cb done,
		      void *ud)
{
	struct files *fs = c->priv;
	const struct files_opts *o = c->opts;
	struct files_pending *p;
	size_t n, i, per, nfiles, written = 0;
	char stamp[32];
	struct tm tm;
	time_t now = time(NULL);
	int r = files_pending_new(fs, &p);

	(void)origin;
	if (r < 0)
		return r;
	p->done = done;
	p->ud = ud;
	if (!o->out_dir) {
		files_pending_set(p, CONN_FAIL,
				  xstrdup("no out_dir: this connector is not a sink"));
		return 0;
	}
	if (!json_is_array(records)) {
		files_pending_set(p, CONN_FAIL, xstrdup("records are not a JSON array"));
		return 0;
	}
	n = json_array_size(records);
	for (i = 0; i < n; i++) {
		if (!json_is_object(json_array_get(records, i))) {
			files_pending_set(p, CONN_FAIL,
					  xasprintf("record %zu is not an object", i + 1));
			return 0;
		}
	}
	if (!localtime_r(&now, &tm) || !strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm))
		snprintf(stamp, sizeof(stamp), "%lld", (long long)now);
	per = (size_t)o->max_records_per_file;
	nfiles = (n + per - 1) / per;
	files_pending_set(p, CONN_OK, NULL);
	for (i = 0; i < n; i += per) {
		struct dynbuf b;
		char *path = NULL;
		dynbuf_init(&b, 0);
		files_render(fs, records, i, LT_MIN(n, i + per), &b);
		r = files_write_new(fs, stamp, b.data ? b.data : "", b.len, &path);
		dynbuf_free(&b);
		if (r < 0) {
			bool full = r == -ENOSPC || r == -EDQUOT;
			files_pending_set(
				p, full ? CONN_RETRY : CONN_FAIL,
				xasprintf("%s writing to %s: %s (%zu of %zu files written)",
					  full ? "disk full" : "error", o->out_dir, strerror(-r),
					  written, nfiles));
			log_fields(full ? LOG_WARNING : LOG_ERR, FILES_FIELDS(fs), "%s", p->msg);
			break;
		}
		log_fields(LOG_DEBUG, FILES_FIELDS(fs), "wrote %s (%zu records)", path,
			   LT_MIN(n, i + per) - i);
		free(path);
		written++;
		fs->files_written++;
		fs->records_written += LT_MIN(n, i + per) - i;
	}
	return 0;
}

/* ---- probe, status, lifecycle ---------------------------------------- */

static char *files_dir_problem(const char *dir)
{
	struct stat st;
	if (stat(dir, &st) < 0)
		return xasprintf("%s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return xasprintf("%s is not a directory", dir);
	if (access(dir, W_OK | X_OK) < 0)
		return xasprintf("%s is not writable: %s", dir, strerror(errno));
	return NULL;
}

static int files_probe(struct conn *c, conn_done_cb done, void *ud)
{
	struct files *fs = c->priv;
	const struct files_opts *o = c->opts;
	const char *dirs[] = {o->in_dir, fs->done_dir, fs->failed_dir, o->out_dir};
	struct files_pending *p;
	int r = files_pending_new(fs, &p);

	if (r < 0)
		return r;
	p->done = done;
	p->ud = ud;
	files_pending_set(p, CONN_OK, NULL);
	for (size_t i = 0; i < LT_ARRAY_SIZE(dirs); i++) {
		char *why = dirs[i] ? files_dir_problem(dirs[i]) : NULL;
		if (why) {
			files_pending_set(p, CONN_FAIL, why);
			break;
		}
	}
	return 0;
}

/* Counts regular files of dir accepted by keep; -1 when dir cannot be read. */
static long files_count(const char *dir, const struct files_opts *o, bool failed)
{
	DIR *dh = opendir(dir);
	struct dirent *de;
	long n = 0;
	if (!dh)
		return -1;
	while ((de = readdir(dh))) {
		struct stat st;
		if (failed ? (de->d_name[0] == '.' || str_endswith(de->d_name, ".reason"))
			   : !files_name_eligible(o, de->d_name))
			continue;
		if (fstatat(dirfd(dh), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode))
			n++;
	}
	closedir(dh);
	return n;
}

static json_t *files_status(struct conn *c)
{
	struct files *fs = c->priv;
	const struct files_opts *o = c->opts;
	json_t *j = json_object();

	if (o->in_dir) {
		json_object_set_new(j, "in_dir", json_string(o->in_dir));
		json_object_set_new(j, "waiting", json_integer(files_count(o->in_dir, o, false)));
		json_object_set_new(j, "failed",
				    json_integer(files_count(fs->failed_dir, o, true)));
	}
	if (o->out_dir)
		json_object_set_new(j, "out_dir", json_string(o->out_dir));
	json_object_set_new(j, "files_read", json_integer((json_int_t)fs->files_read));
	json_object_set_new(j, "files_failed", json_integer((json_int_t)fs->files_failed));
	json_object_set_new(j, "files_written", json_integer((json_int_t)fs->files_written));
	json_object_set_new(j, "records_written", json_integer((json_int_t)fs->records_written));
	return j;
}

/* One separator byte from csv_separator: a character or a name. */
static int files_parse_sep(const char *s, char *out)
{
	static const struct {
		const char *name;
		char ch;
	} names[] = {
		{"comma", ','}, {"semicolon", ';'}, {"tab", '\t'}, {"\\t", '\t'}, {"pipe", '|'}};
	if (!s || !*s)
		return -EINVAL;
	for (size_t i = 0; i < LT_ARRAY_SIZE(names); i++) {
		if (strcasecmp(s, names[i].name) == 0) {
			*out = names[i].ch;
			return 0;
		}
	}
	if (s[1] || s[0] == '"' || s[0] == '\r' || s[0] == '\n' || (unsigned char)s[0] >= 0x80)
		return -EINVAL;
	*out = s[0];
	return 0;
}

/* check_only: an existing path must be a directory; a missing one will be created. */
static char *files_check_dir(const char *name, const char *key, const char *dir)
{
	struct stat st;
	if (dir[0] != '/')
		return xasprintf("connector.%s: %s must be an absolute path, not '%s'", name, key,
				 dir);
	if (stat(dir, &st) < 0) {
		if (errno == ENOENT)
			return NULL;
		return xasprintf("connector.%s: %s %s: %s", name, key, dir, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return xasprintf("connector.%s: %s %s is not a directory", name, key, dir);
	return NULL;
}

static void files_free(struct conn *c)
{
	struct files *fs = c->priv;
	if (!fs)
		return;
	/* Nobody holds a reference any more, so nobody waits for these. */
	while (fs->pending) {
		struct files_pending *p = fs->pending;
		files_pending_unlink(p);
		sd_event_source_unref(p->src);
		conn_batch_free(p->batch);
		free(p->msg);
		free(p);
	}
	free(fs->field);
	free(fs->done_dir);
	free(fs->failed_dir);
	free(fs->prefix);
	free(fs);
	c->priv = NULL;
}

static int files_init(struct conn *c, bool check_only, char **err)
{
	const struct files_opts *o = c->opts;
	const char *name = c->name ? c->name : "?";
	struct files *fs = NULL;
	char sep;
	const char *prefix = o->out_prefix && *o->out_prefix ? o->out_prefix : name;
	const char *dirs[2][2] = {{"in_dir", o->in_dir}, {"out_dir", o->out_dir}};
	int r;

	if (!o->in_dir && !o->out_dir) {
		*err = xasprintf("connector.%s: set in_dir (to read files), out_dir (to write "
				 "them), or both",
				 name);
		return -EINVAL;
	}
	if (files_parse_sep(o->csv_separator, &sep) < 0) {
		*err = xasprintf("connector.%s: csv_separator must be one ASCII character other "
				 "than a quote or a line break, or comma, semicolon, tab, pipe",
				 name);
		return -EINVAL;
	}
	if (strchr(prefix, '/') || prefix[0] == '.') {
		*err = xasprintf("connector.%s: out_prefix '%s' must not contain '/' nor start "
				 "with '.'",
				 name, prefix);
		return -EINVAL;
	}
	if (o->file_mode & ~0777) {
		*err = xasprintf("connector.%s: file_mode %04o has bits beyond 0777", name,
				 (unsigned)o->file_mode);
		return -EINVAL;
	}
	if (o->max_file_bytes <= 0 || o->max_records_per_file <= 0 || o->min_age_ms < 0) {
		*err = xasprintf("connector.%s: max_file_bytes and max_records_per_file must be "
				 "positive",
				 name);
		return -EINVAL;
	}
	for (size_t i = 0; i < 2; i++) {
		char *why;
		if (!dirs[i][1])
			continue;
		why = files_check_dir(name, dirs[i][0], dirs[i][1]);
		if (why) {
			*err = why;
			return -EINVAL;
		}
	}
	if (check_only)
		return 0;

	fs = xcalloc(1, sizeof(*fs));
	fs->c = c;
	fs->field = xasprintf("CONNECTOR=%s", name);
	fs->prefix = xstrdup(prefix);
	fs->sep = sep;
	if (o->in_dir) {
		fs->done_dir = xasprintf("%s/done", o->in_dir);
		fs->failed_dir = xasprintf("%s/failed", o->in_dir);
	}
	{
		const char *make[] = {o->in_dir, fs->done_dir, fs->failed_dir, o->out_dir};
		for (size_t i = 0; i < LT_ARRAY_SIZE(make); i++) {
			if (!make[i])
				continue;
			r = mkdir_p(make[i], 0750);
			if (r < 0) {
				*err = xasprintf("connector.%s: cannot create %s: %s", name,
						 make[i], strerror(-r));
				goto fail;
			}
		}
	}
	c->priv = fs;
	return 0;
fail:
	c->priv = fs;
	files_free(c);
	return r;
}

const struct connector conn_files = {
	.abi_version = CONN_ABI_VERSION,
	.name = "files",
	.description = "Drop folders of JSON Lines, JSON and CSV files (segregated networks, "
		       "imports)",
	.flags = 0,
	.options = files_options,
	.opts_size = sizeof(struct files_opts),
	.init = files_init,
	.free = files_free,
	.probe = files_probe,
	.pull = files_pull,
	.ack = files_ack,
	.push = files_push,
	.status = files_status,
	.ext = &files_ops,
};
