/* Unit tests of the files connector (connectors/files.c), driven through its
 * struct connector callbacks on a real sd-event loop with real directories:
 * parsing of JSON Lines, JSON and CSV (fixtures in tests/fixtures/files/),
 * bad files moved to failed/ with a reason naming the line, files still
 * being written left alone, oldest first, acknowledgement into done/
 * without overwriting, and atomic output that reads back the same. Run from
 * the top of the tree (fixtures are found relative to it). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "connector.h"
#include "daemon.h"
#include "tap.h"
#include "util.h"

#define FIXTURES "tests/fixtures/files"

extern const struct connector conn_files;

static char top[64];
static struct daemon dmn;

/* ---- helpers --------------------------------------------------------- */

static char *path_of(const char *a, const char *b)
{
	return xasprintf("%s/%s", a, b);
}

/* Sets options by key through the real option table, like a config file would. */
static struct conn *conn_make(const char *name, const char *const *kv, bool check_only, char **err)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	char *why = NULL;
	c->type = &conn_files;
	c->name = xstrdup(name);
	c->opts = xcalloc(1, conn_files.opts_size);
	c->d = &dmn;
	c->refs = 1;
	if (conf_apply_defaults(conn_files.options, c->opts, &why) < 0) {
		printf("# bad default: %s\n", why);
		free(why);
		abort();
	}
	for (size_t i = 0; kv && kv[i]; i += 2) {
		const struct conf_option *o = conn_files.options;
		while (o->key && strcmp(o->key, kv[i]) != 0)
			o++;
		if (!o->key || conf_set_value(o, c->opts, kv[i + 1], &why) < 0) {
			printf("# cannot set %s = %s: %s\n", kv[i], kv[i + 1],
			       why ? why : "no such key");
			free(why);
			abort();
		}
	}
	*err = NULL;
	if (conn_files.init(c, check_only, err) < 0) {
		conf_free_values(conn_files.options, c->opts);
		free(c->opts);
		free(c->name);
		free(c);
		return NULL;
	}
	return c;
}

static void conn_drop(struct conn *c)
{
	if (!c)
		return;
	conn_files.free(c);
	conf_free_values(conn_files.options, c->opts);
	free(c->opts);
	free(c->name);
	free(c);
}

struct result {
	bool called;
	int calls;
	enum conn_outcome o;
	struct conn_batch *b;
	char *msg;
};

static void result_clear(struct result *r)
{
	conn_batch_free(r->b);
	free(r->msg);
	memset(r, 0, sizeof(*r));
}

static void on_pull(struct conn *c, enum conn_outcome o, struct conn_batch *b, const char *err,
		    void *ud)
{
	struct result *r = ud;
	(void)c;
	r->called = true;
	r->calls++;
	r->o = o;
	r->b = b;
	r->msg = err ? xstrdup(err) : NULL;
}

static void on_done(struct conn *c, enum conn_outcome o, const char *detail, void *ud)
{
	struct result *r = ud;
	(void)c;
	r->called = true;
	r->calls++;
	r->o = o;
	r->msg = detail ? xstrdup(detail) : NULL;
}

static void loop_until(const bool *flag)
{
	for (int i = 0; i < 200 && !*flag; i++)
		sd_event_run(dmn.ev, 10000);
}

/* Runs one pull to completion; *sync tells whether the callback came too early. */
static void do_pull(struct conn *c, struct result *r, bool *sync)
{
	result_clear(r);
	int rc = conn_files.pull(c, on_pull, r);
	*sync = r->called || rc < 0;
	loop_until(&r->called);
}

static void do_push(struct conn *c, json_t *records, struct result *r, bool *sync)
{
	result_clear(r);
	int rc = conn_files.push(c, records, "test", on_done, r);
	*sync = r->called || rc < 0;
	loop_until(&r->called);
}

static bool exists(const char *dir, const char *name)
{
	char *p = path_of(dir, name);
	bool e = access(p, F_OK) == 0;
	free(p);
	return e;
}

static char *slurp(const char *dir, const char *name)
{
	char *p = path_of(dir, name), *data = NULL;
	size_t len;
	if (read_file_bounded(p, 1 << 20, &data, &len) < 0)
		data = NULL;
	free(p);
	return data;
}

static void put(const char *dir, const char *name, const char *data, size_t len, time_t age_s)
{
	char *p = path_of(dir, name);
	if (write_file_atomic(p, data, len, 0640) < 0)
		abort();
	if (age_s) {
		struct timespec ts[2];
		clock_gettime(CLOCK_REALTIME, &ts[0]);
		ts[0].tv_sec -= age_s;
		ts[1] = ts[0];
		utimensat(AT_FDCWD, p, ts, 0);
	}
	free(p);
}

static void put_str(const char *dir, const char *name, const char *s, time_t age_s)
{
	put(dir, name, s, strlen(s), age_s);
}

static void copy_fixture(const char *dir, const char *fixture, const char *as, time_t age_s)
{
	char *src = path_of(FIXTURES, fixture), *data = NULL;
	size_t len;
	if (read_file_bounded(src, 1 << 20, &data, &len) < 0) {
		printf("# cannot read fixture %s (run from the top of the tree)\n", src);
		abort();
	}
	put(dir, as ? as : fixture, data, len, age_s);
	free(data);
	free(src);
}

/* Names of the regular files of dir, sorted, hidden ones included. */
static json_t *list_dir(const char *dir)
{
	json_t *a = json_array();
	DIR *d = opendir(dir);
	struct dirent *de;
	if (!d)
		return a;
	while ((de = readdir(d))) {
		struct stat st;
		char *p = path_of(dir, de->d_name);
		if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
			json_array_append_new(a, json_string(de->d_name));
		free(p);
	}
	closedir(d);
	/* simple insertion sort: directories here hold a handful of files */
	for (size_t i = 1; i < json_array_size(a); i++)
		for (size_t j = i; j > 0 && strcmp(json_string_value(json_array_get(a, j - 1)),
						   json_string_value(json_array_get(a, j))) > 0;
		     j--) {
			json_t *t = json_incref(json_array_get(a, j));
			json_array_set(a, j, json_array_get(a, j - 1));
			json_array_set_new(a, j - 1, t);
		}
	return a;
}

static size_t count_dir(const char *dir)
{
	json_t *a = list_dir(dir);
	size_t n = json_array_size(a);
	json_decref(a);
	return n;
}

static void empty_dir(const char *dir)
{
	json_t *a = list_dir(dir);
	size_t i;
	json_t *v;
	json_array_foreach (a, i, v) {
		char *p = path_of(dir, json_string_value(v));
		unlink(p);
		free(p);
	}
	json_decref(a);
}

static const char *rec_str(const struct conn_batch *b, size_t i, const char *key)
{
	return json_string_value(json_object_get(json_array_get(b->records, i), key));
}

/* A fresh source connector on dir/name with min_age 0 unless given. */
static struct conn *source(const char *name, const char *in, const char *extra_k,
			   const char *extra_v)
{
	char *err = NULL;
	const char *kv[] = {"in_dir", in, "min_age", "0", extra_k, extra_v, NULL};
	struct conn *c = conn_make(name, kv, false, &err);
	if (!c) {
		printf("# init failed: %s\n", err);
		abort();
	}
	return c;
}

/* ---- tests ----------------------------------------------------------- */

static void test_init(void)
{
	char *in = path_of(top, "init/in"), *out = path_of(top, "init/out/x");
	char *done = path_of(in, "done"), *failed = path_of(in, "failed");
	char *file = path_of(top, "plainfile");
	char *err = NULL;
	struct conn *c;
	struct stat st;

	c = conn_make("init", (const char *[]){"in_dir", in, "out_dir", out, NULL}, true, &err);
	ok(c && access(in, F_OK) < 0, "check_only validates without creating directories");
	conn_drop(c);

	c = conn_make("init", (const char *[]){"in_dir", in, "out_dir", out, NULL}, false, &err);
	ok(c != NULL, "init with in_dir and out_dir succeeds");
	ok(stat(done, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0750,
	   "init creates in_dir/done with mode 0750");
	ok(stat(failed, &st) == 0 && S_ISDIR(st.st_mode), "init creates in_dir/failed");
	ok(stat(out, &st) == 0 && S_ISDIR(st.st_mode), "init creates out_dir and its parents");
	conn_drop(c);

	c = conn_make("init", NULL, false, &err);
	ok(!c && err && strstr(err, "in_dir") && strstr(err, "out_dir"),
	   "init without in_dir and out_dir fails naming both keys");
	free(err);

	put_str(top, "plainfile", "x", 0);
	c = conn_make("init", (const char *[]){"in_dir", file, NULL}, true, &err);
	ok(!c && err && strstr(err, "not a directory"),
	   "check_only refuses an in_dir that exists and is not a directory");
	free(err);

	c = conn_make("init", (const char *[]){"out_dir", out, "csv_separator", "ab", NULL}, true,
		      &err);
	ok(!c && err && strstr(err, "csv_separator"),
	   "a csv_separator of two characters is refused");
	free(err);

	c = conn_make("init", (const char *[]){"out_dir", out, "out_prefix", "a/b", NULL}, true,
		      &err);
	ok(!c && err && strstr(err, "out_prefix"), "an out_prefix with a slash is refused");
	free(err);

	free(in);
	free(out);
	free(done);
	free(failed);
	free(file);
}

static void test_parse(void)
{
	char *in = path_of(top, "parse");
	char *done = path_of(in, "done");
	struct conn *c = source("parse", in, NULL, NULL);
	struct result r = {0};
	bool sync;
	json_t *want;

	/* JSON Lines: CRLF and LF, blank lines skipped, nested values kept. */
	copy_fixture(in, "records.jsonl", NULL, 100);
	do_pull(c, &r, &sync);
	ok(!sync, "pull completes from the loop, never from inside pull()");
	ok(r.called && r.o == CONN_OK && r.b, "a JSON Lines file is pulled");
	if (r.b) {
		is_int(json_array_size(r.b->records), 3, "JSON Lines: blank lines are skipped");
		is_str(r.b->token, "records.jsonl", "the batch token is the file name");
		char *origin = path_of(in, "records.jsonl");
		is_str(r.b->origin, origin, "the batch origin is the full path");
		free(origin);
		want = json_pack("{s:s, s:i}", "Ten", "Lê Thị Hoa", "Tuoi", 30);
		ok(json_equal(json_object_get(json_array_get(r.b->records, 1), "ThongTin"), want),
		   "JSON Lines: a nested object survives with its UTF-8 text (CRLF line)");
		json_decref(want);
		ok(conn_files.ack(c, r.b, true, NULL) == 0, "ack(ok) succeeds");
		ok(exists(done, "records.jsonl") && !exists(in, "records.jsonl"),
		   "ack(ok) moves the file to done/");
	}

	/* JSON: an array of objects, and a single object. */
	copy_fixture(in, "records.json", NULL, 90);
	copy_fixture(in, "one-object.json", NULL, 80);
	do_pull(c, &r, &sync);
	ok(r.o == CONN_OK && r.b && json_array_size(r.b->records) == 2,
	   "a JSON array of objects is one batch of its objects");
	if (r.b) {
		is_str(rec_str(r.b, 0, "TENTTHC"), "Đăng ký khai sinh", "JSON: text is kept");
		ok(json_is_null(json_object_get(json_array_get(r.b->records, 1), "PHI")) &&
			   json_is_true(json_object_get(json_array_get(r.b->records, 1), "ONLINE")),
		   "JSON: null and true are kept as such");
		conn_files.ack(c, r.b, true, NULL);
	}
	do_pull(c, &r, &sync);
	ok(r.o == CONN_OK && r.b && json_array_size(r.b->records) == 1 &&
		   !strcmp(rec_str(r.b, 0, "MATTHC"), "2.000001"),
	   "a JSON file holding one object is a batch of one");
	if (r.b)
		conn_files.ack(c, r.b, true, NULL);

	/* CSV: BOM, CRLF, "" escapes, embedded separator and CRLF, empty fields. */
	copy_fixture(in, "quoted.csv", NULL, 70);
	do_pull(c, &r, &sync);
	ok(r.o == CONN_OK && r.b, "a CSV file with quotes, BOM and CRLF is pulled");
	if (r.b) {
		is_int(json_array_size(r.b->records), 3,
		       "CSV: one record per row, the trailing blank line is skipped");
		ok(json_object_get(json_array_get(r.b->records, 0), "MaHoSo") != NULL,
		   "CSV: the BOM is not part of the first column name");
		is_str(rec_str(r.b, 0, "MaHoSo"), "H31.1-250101-0001",
		       "CSV: a quoted field is unquoted");
		is_str(rec_str(r.b, 0, "GhiChu"), "nói \"xin chào\", rồi đi",
		       "CSV: \"\" is a quote and a quoted comma is not a separator");
		is_str(rec_str(r.b, 0, "SoTien"), "8000",
		       "CSV: the last field of a CRLF line has no CR");
		is_str(rec_str(r.b, 1, "GhiChu"), "dòng một\r\ndòng hai",
		       "CSV: a line break inside quotes is part of the value");
		is_str(rec_str(r.b, 1, "SoTien"), "",
		       "CSV: an empty last field is an empty string");
		is_str(rec_str(r.b, 2, "HoTen"), "",
		       "CSV: an empty middle field is an empty string");
		is_str(rec_str(r.b, 2, "GhiChu"), "a,b,c",
		       "CSV: separators inside quotes are kept");
		is_str(rec_str(r.b, 2, "SoTien"), "1.000", "CSV: values stay text");
		conn_files.ack(c, r.b, true, NULL);
	}
	result_clear(&r);
	conn_drop(c);

	/* Another separator, by name (a bare ';' would be an INI comment). */
	c = source("parse", in, "csv_separator", "semicolon");
	copy_fixture(in, "semicolon.csv", NULL, 60);
	do_pull(c, &r, &sync);
	ok(r.o == CONN_OK && r.b && json_array_size(r.b->records) == 2 &&
		   !strcmp(rec_str(r.b, 0, "GhiChu"), "x;y") &&
		   !strcmp(rec_str(r.b, 1, "TrangThai"), "3"),
	   "CSV with csv_separator = semicolon is split on ';'");
	if (r.b)
		conn_files.ack(c, r.b, true, NULL);

	/* Nothing left. */
	do_pull(c, &r, &sync);
	ok(r.called && r.o == CONN_OK && !r.b, "an empty in_dir yields no batch and CONN_OK");

	/* An unacknowledged file is delivered again. */
	put_str(in, "again.jsonl", "{\"a\":1}\n", 50);
	do_pull(c, &r, &sync);
	conn_batch_free(r.b);
	r.b = NULL;
	do_pull(c, &r, &sync);
	ok(r.b && !strcmp(r.b->token, "again.jsonl"),
	   "a file pulled but not acknowledged is pulled again");
	if (r.b)
		conn_files.ack(c, r.b, true, NULL);

	result_clear(&r);
	conn_drop(c);
	free(done);
	free(in);
}

/* Pulls once expecting `good` back, and checks bad went to failed/ with a reason containing want.
 */
static void check_bad(struct conn *c, const char *in, const char *bad, const char *want,
		      const char *what)
{
	char *failed = path_of(in, "failed");
	char *rname = xasprintf("%s.reason", bad);
	struct result r = {0};
	bool sync;

	put_str(in, "good.jsonl", "{\"ok\":true}\n", 10);
	do_pull(c, &r, &sync);
	ok(r.o == CONN_OK && r.b && !strcmp(r.b->token, "good.jsonl"),
	   "%s: pull goes on to the next file", what);
	ok(exists(failed, bad) && !exists(in, bad), "%s: the file is moved to failed/", what);
	char *reason = slurp(failed, rname);
	ok(reason && strstr(reason, want) && strchr(reason, '\n') == reason + strlen(reason) - 1,
	   "%s: %s.reason is one line saying '%s'", what, bad, want);
	if (reason && !strstr(reason, want))
		printf("#   reason: %s", reason);
	free(reason);
	if (r.b)
		conn_files.ack(c, r.b, true, NULL);
	result_clear(&r);
	free(rname);
	free(failed);
}

static void test_bad_files(void)
{
	char *in = path_of(top, "bad");
	struct conn *c = source("bad", in, "max_file_bytes", "1k");
	char big[2048];

	copy_fixture(in, "not-object.jsonl", NULL, 100);
	check_bad(c, in, "not-object.jsonl", "line 3: expected an object",
		  "JSON Lines with an array on line 3");

	copy_fixture(in, "truncated.jsonl", NULL, 100);
	check_bad(c, in, "truncated.jsonl", "line 2", "JSON Lines cut off on line 2");

	copy_fixture(in, "short-row.csv", NULL, 100);
	check_bad(c, in, "short-row.csv", "line 4: 3 fields, header has 5", "CSV with a short row");

	put_str(in, "open-quote.csv", "a,b\n1,\"never closed\n2,3\n", 100);
	check_bad(c, in, "open-quote.csv", "line 2: quoted field not closed",
		  "CSV with an unterminated quote");

	copy_fixture(in, "latin1.csv", NULL, 100);
	check_bad(c, in, "latin1.csv", "line 2: not valid UTF-8", "a file that is not UTF-8");

	put(in, "nul.jsonl", "{\"a\":1}\n{\"b\":\"x\0y\"}\n", 20, 100);
	check_bad(c, in, "nul.jsonl", "line 2: NUL byte", "a file with a NUL byte");

	memset(big, ' ', sizeof(big));
	big[0] = '[';
	big[sizeof(big) - 1] = ']';
	put(in, "big.json", big, sizeof(big), 100);
	check_bad(c, in, "big.json", "too large", "a file larger than max_file_bytes");

	put_str(in, "notes.txt", "hello\n", 100);
	check_bad(c, in, "notes.txt", "unknown format", "a file with an unknown extension");

	put_str(in, "scalar.json", "42", 100);
	check_bad(c, in, "scalar.json", "expected an array of objects or one object",
		  "a JSON file holding a number");

	/* The same name failing twice keeps both files. */
	copy_fixture(in, "not-object.jsonl", NULL, 100);
	check_bad(c, in, "not-object.1.jsonl", "line 3", "a second bad file of the same name");

	/* ack(!ok): rejected by the sink for good. */
	{
		struct result r = {0};
		bool sync;
		char *failed = path_of(in, "failed");
		put_str(in, "rejected.jsonl", "{\"a\":1}\n", 10);
		do_pull(c, &r, &sync);
		ok(r.b && conn_files.ack(c, r.b, false, "sink said:\nno such agency") == 0,
		   "ack(!ok) succeeds");
		char *reason = slurp(failed, "rejected.jsonl.reason");
		is_str(reason, "sink said: no such agency\n",
		       "ack(!ok) moves the file to failed/ with the reason on one line");
		free(reason);
		json_t *st = conn_files.status(c);
		is_int(json_integer_value(json_object_get(st, "failed")), 11,
		       "status counts the files in failed/ (not the .reason files)");
		json_decref(st);
		result_clear(&r);
		free(failed);
	}

	conn_drop(c);
	free(in);
}

static void test_selection(void)
{
	char *in = path_of(top, "select");
	char *done = path_of(in, "done");
	char *err = NULL;
	struct conn *c = conn_make("select", (const char *[]){"in_dir", in, NULL}, false, &err);
	struct result r = {0};
	bool sync;

	/* Default min_age (2s): a file just written is left alone. */
	put_str(in, "fresh.jsonl", "{\"a\":1}\n", 0);
	put_str(in, "writing.jsonl.tmp", "{\"a\":1}\n", 100);
	put_str(in, "writing.jsonl.part", "{\"a\":1}\n", 100);
	put_str(in, ".hidden.jsonl", "{\"a\":1}\n", 100);
	do_pull(c, &r, &sync);
	ok(r.o == CONN_OK && !r.b,
	   "a fresh file (min_age), .tmp, .part and hidden files are not pulled");
	json_t *st = conn_files.status(c);
	is_int(json_integer_value(json_object_get(st, "waiting")), 1,
	       "status counts the fresh file as waiting, not the temporary ones");
	json_decref(st);

	put_str(in, "fresh.jsonl", "{\"a\":2}\n", 10);
	do_pull(c, &r, &sync);
	ok(r.b && !strcmp(r.b->token, "fresh.jsonl"), "the same file is pulled once old enough");
	if (r.b)
		conn_files.ack(c, r.b, true, NULL);
	ok(exists(in, "writing.jsonl.tmp") && exists(in, "writing.jsonl.part") &&
		   exists(in, ".hidden.jsonl"),
	   "files being written are left where they are");

	/* Oldest first, by mtime, not by name. */
	put_str(in, "a.jsonl", "{\"n\":\"a\"}\n", 10);
	put_str(in, "b.jsonl", "{\"n\":\"b\"}\n", 30);
	put_str(in, "c.jsonl", "{\"n\":\"c\"}\n", 20);
	const char *order[3] = {"b.jsonl", "c.jsonl", "a.jsonl"};
	bool in_order = true;
	for (int i = 0; i < 3; i++) {
		do_pull(c, &r, &sync);
		if (!r.b || strcmp(r.b->token, order[i]))
			in_order = false;
		if (r.b)
			conn_files.ack(c, r.b, true, NULL);
	}
	ok(in_order, "files are pulled oldest first (b, c, a by mtime)");

	/* A name already in done/ gets a numeric suffix, never overwritten. */
	put_str(in, "a.jsonl", "{\"n\":\"a2\"}\n", 10);
	do_pull(c, &r, &sync);
	if (r.b)
		conn_files.ack(c, r.b, true, NULL);
	char *first = slurp(done, "a.jsonl"), *second = slurp(done, "a.1.jsonl");
	ok(first && second && strstr(first, "\"a\"") && strstr(second, "\"a2\""),
	   "a name collision in done/ gets a numeric suffix and keeps both files");
	free(first);
	free(second);
	result_clear(&r);
	conn_drop(c);

	/* pattern and done_action = delete. */
	c = conn_make("select",
		      (const char *[]){"in_dir", in, "min_age", "0", "pattern", "*.csv",
				       "done_action", "delete", NULL},
		      false, &err);
	put_str(in, "x.jsonl", "{\"a\":1}\n", 10);
	put_str(in, "y.csv", "a\n1\n", 10);
	do_pull(c, &r, &sync);
	ok(r.b && !strcmp(r.b->token, "y.csv"), "only files matching pattern are pulled");
	if (r.b) {
		conn_files.ack(c, r.b, true, NULL);
		ok(!exists(in, "y.csv") && !exists(done, "y.csv"),
		   "done_action = delete removes the file on ack");
	}
	do_pull(c, &r, &sync);
	ok(!r.b && exists(in, "x.jsonl"), "a file not matching pattern stays");
	result_clear(&r);

	/* Freeing with a completion pending: no callback afterwards, nothing leaks. */
	put_str(in, "z.csv", "a\n1\n", 10);
	conn_files.pull(c, on_pull, &r);
	conn_drop(c);
	sd_event_run(dmn.ev, 1000);
	ok(!r.called, "a connector freed with a pull pending never calls back");
	ok(exists(in, "z.csv"), "the file of a cancelled pull stays in in_dir");

	free(done);
	free(in);
}

static void test_push(void)
{
	char *out = path_of(top, "out");
	char *err = NULL;
	struct conn *c;
	struct result r = {0};
	bool sync;
	json_t *recs = json_pack("[{s:s, s:i}, {s:s, s:{s:s}}, {s:s, s:b}]", "MaHoSo", "A1",
				 "TrangThai", 1, "MaHoSo", "A2", "ThongTin", "Ten", "Phạm Minh",
				 "MaHoSo", "A3", "DaThanhToan", 1);

	/* JSON Lines, split by max_records_per_file. */
	c = conn_make("w",
		      (const char *[]){"out_dir", out, "max_records_per_file", "2", "out_prefix",
				       "lt", NULL},
		      false, &err);
	do_push(c, recs, &r, &sync);
	ok(!sync && r.o == CONN_OK, "push of 3 records completes OK from the loop");
	json_t *names = list_dir(out);
	is_int(json_array_size(names), 2, "max_records_per_file = 2 splits 3 records in 2 files");
	const char *n0 = json_string_value(json_array_get(names, 0));
	ok(n0 && strncmp(n0, "lt-", 3) == 0 &&
		   strlen(n0) == strlen("lt-20250101T000000-0001.jsonl") && n0[11] == 'T' &&
		   str_endswith(n0, "-0001.jsonl"),
	   "output names are PREFIX-yyyyMMddTHHmmss-SEQ.jsonl (%s)", n0 ? n0 : "none");
	bool no_tmp = true;
	size_t i;
	json_t *v;
	json_array_foreach (names, i, v)
		if (json_string_value(v)[0] == '.' || strstr(json_string_value(v), ".tmp"))
			no_tmp = false;
	ok(no_tmp, "no temporary file is left in out_dir");
	{
		struct stat st;
		char *p = path_of(out, n0 ? n0 : "-");
		ok(stat(p, &st) == 0 && (st.st_mode & 0777) == 0640,
		   "output files get file_mode 0640");
		free(p);
	}
	char *text = n0 ? slurp(out, n0) : NULL;
	is_str(text,
	       "{\"MaHoSo\":\"A1\",\"TrangThai\":1}\n{\"MaHoSo\":\"A2\",\"ThongTin\":{\"Ten\":"
	       "\"Phạm Minh\"}}\n",
	       "JSON Lines output is one compact object per line");
	free(text);
	json_decref(names);

	/* Round trip: a source on out_dir reads back the same records, in order. */
	{
		struct conn *src = source("rt", out, NULL, NULL);
		json_t *got = json_array();
		for (int k = 0; k < 4; k++) {
			do_pull(src, &r, &sync);
			if (!r.b)
				break;
			json_array_extend(got, r.b->records);
			conn_files.ack(src, r.b, true, NULL);
		}
		ok(json_equal(got, recs), "JSON Lines output pulled back equals what was pushed");
		json_decref(got);
		result_clear(&r);
		conn_drop(src);
		char *dn = path_of(out, "done");
		empty_dir(dn);
		free(dn);
	}
	conn_drop(c);

	/* CSV: union header, value rendering, quoting, BOM and CRLF. */
	json_t *crecs = json_pack("[{s:s, s:i}, {s:s, s:s, s:b, s:n, s:[i,i]}]", "MaHoSo", "A\"1",
				  "SoTien", 8000, "MaHoSo", "A2", "GhiChu", "x,y\nz", "DaThanhToan",
				  1, "Rong", "DS", 1, 2);
	c = conn_make("w", (const char *[]){"out_dir", out, "format", "csv", NULL}, false, &err);
	do_push(c, crecs, &r, &sync);
	ok(r.o == CONN_OK, "push as CSV completes OK");
	names = list_dir(out);
	n0 = json_string_value(json_array_get(names, 0));
	ok(json_array_size(names) == 1 && n0 && !strncmp(n0, "w-", 2) && str_endswith(n0, ".csv"),
	   "out_prefix defaults to the connector name; CSV files end in .csv");
	text = n0 ? slurp(out, n0) : NULL;
	is_str(text,
	       "\xef\xbb\xbfMaHoSo,SoTien,GhiChu,DaThanhToan,Rong,DS\r\n"
	       "\"A\"\"1\",8000,,,,\r\n"
	       "A2,,\"x,y\nz\",true,,\"[1,2]\"\r\n",
	       "CSV output: BOM, union of keys in first-seen order, JSON text for non-strings, "
	       "quoting, CRLF");
	free(text);
	json_decref(names);
	{
		struct conn *src = source("rt", out, NULL, NULL);
		do_pull(src, &r, &sync);
		ok(r.b && json_array_size(r.b->records) == 2 &&
			   !strcmp(rec_str(r.b, 0, "MaHoSo"), "A\"1") &&
			   !strcmp(rec_str(r.b, 1, "GhiChu"), "x,y\nz") &&
			   !strcmp(rec_str(r.b, 1, "DS"), "[1,2]") &&
			   !strcmp(rec_str(r.b, 0, "SoTien"), "8000"),
		   "CSV output pulled back gives the same values as text");
		if (r.b)
			conn_files.ack(src, r.b, true, NULL);
		result_clear(&r);
		conn_drop(src);
	}
	conn_drop(c);

	/* JSON: a pretty array that reads back equal. */
	c = conn_make("w", (const char *[]){"out_dir", out, "format", "json", NULL}, false, &err);
	do_push(c, recs, &r, &sync);
	names = list_dir(out);
	n0 = json_string_value(json_array_get(names, 0));
	text = n0 ? slurp(out, n0) : NULL;
	ok(r.o == CONN_OK && text && text[0] == '[' && strchr(text, '\n') &&
		   str_endswith(n0, ".json"),
	   "JSON output is an indented array in a .json file");
	free(text);
	json_decref(names);
	{
		struct conn *src = source("rt", out, NULL, NULL);
		do_pull(src, &r, &sync);
		ok(r.b && json_equal(r.b->records, recs),
		   "JSON output pulled back equals what was pushed");
		if (r.b)
			conn_files.ack(src, r.b, true, NULL);
		result_clear(&r);
		conn_drop(src);
	}

	/* Refusals. */
	json_t *bad = json_pack("[{s:i}, i]", "a", 1, 2);
	do_push(c, bad, &r, &sync);
	ok(r.o == CONN_FAIL && r.msg && strstr(r.msg, "record 2"),
	   "a record that is not an object fails the push for good, naming it");
	is_int(count_dir(out), 0, "a refused push writes nothing");
	json_decref(bad);
	json_t *none = json_array();
	do_push(c, none, &r, &sync);
	ok(r.o == CONN_OK && count_dir(out) == 0, "an empty push is OK and writes no file");
	json_decref(none);

	/* Probe. */
	result_clear(&r);
	conn_files.probe(c, on_done, &r);
	loop_until(&r.called);
	ok(r.o == CONN_OK, "probe is OK when out_dir is writable");
	conn_drop(c);
	c = conn_make("w", (const char *[]){"out_dir", out, NULL}, false, &err);
	char *dn = path_of(out, "done"), *fl = path_of(out, "failed");
	empty_dir(dn);
	rmdir(dn);
	rmdir(fl);
	rmdir(out);
	result_clear(&r);
	conn_files.probe(c, on_done, &r);
	loop_until(&r.called);
	ok(r.o == CONN_FAIL && r.msg && strstr(r.msg, out), "probe fails naming a missing out_dir");
	result_clear(&r);
	do_push(c, recs, &r, &sync);
	ok(r.o == CONN_FAIL && r.msg, "push into a missing out_dir fails");
	result_clear(&r);
	conn_drop(c);

	/* A source-only connector cannot push; a sink-only one cannot pull. */
	c = source("ro", out, NULL, NULL);
	do_push(c, recs, &r, &sync);
	ok(r.o == CONN_FAIL && r.msg && strstr(r.msg, "out_dir"), "push without out_dir fails");
	result_clear(&r);
	conn_drop(c);

	free(dn);
	free(fl);
	json_decref(crecs);
	json_decref(recs);
	free(out);
}

int main(void)
{
	snprintf(top, sizeof(top), "/tmp/lt-files-XXXXXX");
	if (!mkdtemp(top))
		return 1;
	if (sd_event_new(&dmn.ev) < 0)
		return 1;

	test_init();
	test_parse();
	test_bad_files();
	test_selection();
	test_push();

	sd_event_unref(dmn.ev);
	char *cmd = xasprintf("rm -rf '%s'", top);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", top);
	free(cmd);
	return tap_done();
}
