/*
 * test_store: the store against real SQLite files in a temporary directory:
 * opening, creating and migrating; refusing files that are newer, foreign or
 * not databases; cursors, runs, the mismatch log and its events, the audit
 * trail; nested transactions; and a full store (a small [store] max_size)
 * that loses nothing, reports STORE_FULL, and recovers through store_check().
 *
 * The test does not include sqlite3.h (only store*.c may): where it must
 * forge a database header, it writes the documented header bytes itself.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "tap.h"
#include "util.h"

/* 2026-11-27T04:33:06Z */
#define T0_MS 1795753986000LL

static char tmpdir[] = "/tmp/test_store.XXXXXX";

static struct conf_store conf_of(const char *path, int64_t max_size_bytes)
{
	struct conf_store c = {
		.path = (char *)path,
		.busy_timeout_ms = 2000,
		.max_size_bytes = max_size_bytes,
		.synchronous = 0,
		.retry_interval_ms = 1000,
	};
	return c;
}

static char *tmp_path(const char *name)
{
	return xasprintf("%s/%s", tmpdir, name);
}

static int open_at(const char *path, int64_t max_size_bytes, struct store **s, char **err)
{
	struct conf_store c = conf_of(path, max_size_bytes);
	return store_open(&c, s, err);
}

static bool contains(const char *hay, const char *needle)
{
	return hay && strstr(hay, needle);
}

static size_t arr_len(json_t *a)
{
	return json_is_array(a) ? json_array_size(a) : (size_t)-1;
}

static const char *str_at(json_t *a, size_t i, const char *key)
{
	return json_string_value(json_object_get(json_array_get(a, i), key));
}

static long long int_at(json_t *a, size_t i, const char *key)
{
	json_t *v = json_object_get(json_array_get(a, i), key);
	return json_is_integer(v) ? (long long)json_integer_value(v) : -999;
}

/* Writes a big-endian 32-bit field of the database header (SQLite file format). */
static int patch_header(const char *path, off_t offset, uint32_t v)
{
	unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
			      (unsigned char)(v >> 8), (unsigned char)v};
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = pwrite(fd, b, 4, offset) == 4 ? 0 : -EIO;
	close(fd);
	return r;
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static void test_open_and_migrate(void)
{
	char *dir = tmp_path("var/lib/lienthong");
	char *path = tmp_path("var/lib/lienthong/state.db");
	char *wal = xasprintf("%s-wal", path);
	struct store *s = NULL;
	char *err = NULL;
	const char *why = "unset";
	struct stat st;

	int r = open_at(path, 0, &s, &err);
	is_int(r, 0, "open creates the missing directories and the database");
	is_str(err, NULL, "a successful open leaves no error message");
	if (r < 0)
		goto out;
	ok(stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0750,
	   "the created directory has mode 0750");
	ok(stat(path, &st) == 0 && (st.st_mode & 07777) == 0640,
	   "the database file is not readable by others (0640): it holds citizens' data");
	int version = store_schema_version(s);
	ok(version >= 1, "a new database is migrated to the current schema (version %d)", version);
	is_int(store_health(s, &why), STORE_OK, "a new store is healthy");
	is_str(why, NULL, "a healthy store has no why");
	is_str(store_health_name(STORE_FULL), "full", "health names are stable words");
	is_int(store_cursor_set(s, "test.first", "1"), 0, "a first write succeeds");
	ok(exists(wal), "the database runs in WAL mode (a -wal file exists while open)");
	ok(store_size_bytes(s) > 0, "store_size_bytes counts the database and its WAL");
	store_close(s);
	s = NULL;

	r = open_at(path, 0, &s, &err);
	is_int(r, 0, "reopening an up-to-date database succeeds");
	if (r == 0) {
		char *v = NULL;
		is_int(store_schema_version(s), version, "reopening does not change the version");
		is_int(store_cursor_get(s, "test.first", &v), 0, "data survives a reopen");
		is_str(v, "1", "the stored value is read back after a reopen");
		free(v);
	}
out:
	store_close(s);
	free(err);
	free(dir);
	free(path);
	free(wal);
}

static void test_refusals(void)
{
	char *path = tmp_path("newer.db");
	char *wal = xasprintf("%s-wal", path);
	struct store *s = NULL;
	char *err = NULL;
	int r;

	/* A newer schema: user_version is the big-endian int at offset 60. */
	r = open_at(path, 0, &s, &err);
	store_close(s);
	s = NULL;
	ok(r == 0 && !exists(wal), "closing checkpoints the WAL into the database file");
	is_int(patch_header(path, 60, 99), 0, "the test can forge a newer schema version");
	r = open_at(path, 0, &s, &err);
	ok(r < 0 && s == NULL, "a database of a newer schema is refused");
	ok(contains(err, "database schema version 99 is newer than this lienthongd supports ("),
	   "the refusal says the database's version is newer than what we support");
	ok(contains(err, path), "the refusal names the file");
	free(err);
	err = NULL;

	/* Another application's SQLite file: application_id at offset 68. */
	is_int(patch_header(path, 60, 1), 0, "the test restores the version");
	is_int(patch_header(path, 68, 0x12345678), 0, "the test forges another application id");
	r = open_at(path, 0, &s, &err);
	ok(r < 0 && s == NULL, "another application's database is refused, not migrated");
	ok(contains(err, "not a lienthong database") && contains(err, path),
	   "the refusal says whose file it is not, and which file");
	free(err);
	err = NULL;
	free(path);

	/* A file that is not a database at all. */
	path = tmp_path("garbage.db");
	char junk[4096];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = "not a database\n"[i % 15];
	is_int(write_file_atomic(path, junk, sizeof(junk), 0640), 0, "the test writes junk");
	r = open_at(path, 0, &s, &err);
	ok(r < 0 && s == NULL, "a file that is not a database is refused");
	ok(contains(err, path) && contains(err, "file is not a database"),
	   "the error names the file and carries SQLite's reason (%s)", err ? err : "none");
	free(err);
	err = NULL;
	char *back = NULL;
	size_t len = 0;
	ok(read_file_bounded(path, 8192, &back, &len) == 0 && len == sizeof(junk) &&
		   memcmp(back, junk, len) == 0,
	   "a refused file is left untouched");
	free(back);
	free(path);

	/* A directory that cannot be created: a component is a file. */
	char *file = tmp_path("plainfile");
	is_int(write_file_atomic(file, "x", 1, 0640), 0, "the test writes a plain file");
	path = tmp_path("plainfile/sub/state.db");
	r = open_at(path, 0, &s, &err);
	ok(r < 0 && s == NULL, "a database under a path that cannot be a directory is refused");
	ok(contains(err, path) && contains(err, strerror(ENOTDIR)),
	   "the error names the file and the reason (%s)", err ? err : "none");
	free(err);
	err = NULL;
	free(path);
	free(file);

	/* A read-only location. root writes anywhere, so only as a user. */
	if (geteuid() != 0) {
		char *ro = tmp_path("readonly");
		mkdir(ro, 0500);
		path = tmp_path("readonly/state.db");
		r = open_at(path, 0, &s, &err);
		ok(r < 0 && s == NULL, "a database in a read-only directory is refused");
		ok(contains(err, path), "the error names the file (%s)", err ? err : "none");
		free(err);
		err = NULL;
		chmod(ro, 0700);
		free(path);
		free(ro);

		/* SQLite would quietly open a read-only file read-only. */
		path = tmp_path("readonly-file.db");
		r = open_at(path, 0, &s, &err);
		store_close(s);
		s = NULL;
		free(err);
		err = NULL;
		chmod(path, 0440);
		r = open_at(path, 0, &s, &err);
		ok(r < 0 && s == NULL, "a read-only database file is refused");
		ok(contains(err, path) && contains(err, "read-only"),
		   "the error names the file and says it is read-only (%s)", err ? err : "none");
		free(err);
		err = NULL;
		free(path);
	} else {
		printf("# running as root: the read-only directory case is not checked\n");
	}

	r = open_at("relative/state.db", 0, &s, &err);
	ok(r == -EINVAL && contains(err, "absolute"), "a relative path is refused with a reason");
	free(err);
	free(wal);
}

static void test_cursors(struct store *s)
{
	char *v = (char *)"stale";
	is_int(store_cursor_get(s, "provincial.dossiers", &v), 1, "an unset cursor returns 1");
	ok(v == NULL, "an unset cursor leaves no value");
	is_int(store_cursor_set(s, "provincial.dossiers", "2026-11-27T00:00:00Z"), 0,
	       "a cursor is stored");
	is_int(store_cursor_get(s, "provincial.dossiers", &v), 0, "a stored cursor is found");
	is_str(v, "2026-11-27T00:00:00Z", "a cursor reads back what was stored");
	free(v);
	is_int(store_cursor_set(s, "provincial.dossiers", "2026-11-27T01:00:00Z"), 0,
	       "a cursor is overwritten");
	is_int(store_cursor_get(s, "provincial.dossiers", &v), 0, "an overwritten cursor is found");
	is_str(v, "2026-11-27T01:00:00Z", "a cursor reads back its latest value");
	free(v);
	is_int(store_cursor_get(s, "csdl.procedures", &v), 1, "cursors are independent by name");
	is_int(store_cursor_set(s, "x", NULL), -EINVAL, "a NULL cursor value is refused");
}

static void test_runs(struct store *s)
{
	int64_t a = 0, b = 0, c = 0;
	is_int(store_run_begin(s, "catalog", T0_MS, &a), 0, "a run begins");
	is_int(store_run_begin(s, "dossier", T0_MS + 1000, &b), 0, "a second flow's run begins");
	is_int(store_run_begin(s, "catalog", T0_MS + 2000, &c), 0, "a later run begins");
	ok(a > 0 && b > a && c > b, "runs get increasing ids");
	is_int(store_run_end(s, a, T0_MS + 500, "ok", 5, 1, "5 thủ tục"), 0, "a run ends");
	is_int(store_run_end(s, b, T0_MS + 1500, "exploded", 0, 0, NULL), -EINVAL,
	       "an unknown outcome is refused");
	is_int(store_run_end(s, 424242, T0_MS, "ok", 0, 0, NULL), -ENOENT,
	       "ending a run that does not exist says so");

	json_t *all = store_runs_list(s, NULL, 10);
	is_int(arr_len(all), 3, "every flow's runs are listed without a filter");
	ok(int_at(all, 0, "id") == c && int_at(all, 1, "id") == b && int_at(all, 2, "id") == a,
	   "runs are listed newest first");
	is_str(str_at(all, 2, "outcome"), "ok", "a run's outcome is listed");
	is_int(int_at(all, 2, "items_ok"), 5, "a run's ok count is listed");
	is_int(int_at(all, 2, "items_failed"), 1, "a run's failure count is listed");
	is_str(str_at(all, 2, "summary"), "5 thủ tục", "a run's summary is listed as UTF-8");
	is_int(int_at(all, 2, "started_ms"), T0_MS, "times are listed in ms");
	is_str(str_at(all, 2, "started"), "2026-11-27T04:33:06Z", "times are listed in ISO 8601");
	ok(json_is_null(json_object_get(json_array_get(all, 0), "ended_ms")) &&
		   json_is_null(json_object_get(json_array_get(all, 0), "outcome")),
	   "a running run has no end and no outcome yet");
	json_decref(all);

	json_t *cat = store_runs_list(s, "catalog", 10);
	ok(arr_len(cat) == 2 && int_at(cat, 0, "id") == c && int_at(cat, 1, "id") == a,
	   "the flow filter lists only that flow's runs, newest first");
	json_decref(cat);
	cat = store_runs_list(s, "catalog", 1);
	ok(arr_len(cat) == 1 && int_at(cat, 0, "id") == c, "n bounds the list to the newest");
	json_decref(cat);
	json_t *none = store_runs_list(s, "report", 10);
	is_int(arr_len(none), 0, "a flow without runs lists an empty array");
	json_decref(none);
}

static struct mismatch mm(const char *kind, const char *key, const char *summary, int64_t seen_ms)
{
	struct mismatch m = {
		.kind = kind,
		.key = key,
		.summary = summary,
		.detail = "{\"national\":\"A\",\"provincial\":\"B\"}",
		.raw = NULL,
		.agency = "000.00.12.H56",
		.dossier = NULL,
		.seen_ms = seen_ms,
	};
	return m;
}

/* The events of mismatch id joined as "event:state:actor,...". */
static char *events_of(struct store *s, int64_t id)
{
	json_t *ev = store_mismatch_events(s, id);
	struct dynbuf b;
	dynbuf_init(&b, 0);
	for (size_t i = 0; i < arr_len(ev) && ev; i++)
		dynbuf_printf(&b, "%s%s:%s:%s", i ? "," : "", str_at(ev, i, "event"),
			      str_at(ev, i, "state"), str_at(ev, i, "actor"));
	json_decref(ev);
	return dynbuf_steal(&b, NULL);
}

static json_t *find_mm(struct store *s, const char *kind, const char *key)
{
	json_t *all = store_mismatch_list(s, kind, NULL, 0);
	json_t *found = NULL;
	for (size_t i = 0; all && i < json_array_size(all); i++)
		if (strcmp(str_at(all, i, "key"), key) == 0)
			found = json_incref(json_array_get(all, i));
	json_decref(all);
	return found;
}

static void test_mismatches(struct store *s)
{
	const char *kind = "catalog.missing_provincial";
	int64_t id = 0, id2 = 0;
	bool is_new = false;
	struct mismatch m = mm(kind, "1.001234", "Thủ tục thiếu ở tỉnh", T0_MS);
	char *ev;

	is_int(store_mismatch_upsert(s, &m, &id, &is_new), 0, "a new mismatch is recorded");
	ok(is_new && id > 0, "a new (kind,key) is reported as new");
	m.summary = "Thủ tục vẫn thiếu ở tỉnh";
	m.seen_ms = T0_MS + 60000;
	is_new = true;
	is_int(store_mismatch_upsert(s, &m, &id2, &is_new), 0, "a repeat is recorded");
	ok(!is_new && id2 == id, "a repeat of an open mismatch is not new and keeps its id");
	json_t *row = find_mm(s, kind, "1.001234");
	is_int(json_integer_value(json_object_get(row, "occurrences")), 2,
	       "a repeat counts an occurrence");
	is_str(json_string_value(json_object_get(row, "summary")), "Thủ tục vẫn thiếu ở tỉnh",
	       "a repeat refreshes the summary");
	is_int(json_integer_value(json_object_get(row, "first_seen_ms")), T0_MS,
	       "a repeat keeps first_seen");
	is_int(json_integer_value(json_object_get(row, "last_seen_ms")), T0_MS + 60000,
	       "a repeat moves last_seen");
	is_str(json_string_value(json_object_get(row, "first_seen")), "2026-11-27T04:33:06Z",
	       "first_seen is also listed in ISO 8601");
	is_str(json_string_value(json_object_get(row, "state")), "open", "the mismatch is open");
	is_str(json_string_value(json_object_get(row, "agency")), "000.00.12.H56",
	       "every column is listed (agency)");
	ok(json_is_null(json_object_get(row, "raw")) &&
		   json_is_null(json_object_get(row, "dossier")),
	   "absent values are listed as null");
	json_decref(row);

	is_int(store_mismatch_clear(s, kind, "1.001234", T0_MS + 120000, "đã bổ sung"), 0,
	       "an open mismatch is cleared");
	is_int(store_mismatch_clear(s, kind, "1.001234", T0_MS + 120000, NULL), 1,
	       "clearing an already closed mismatch returns 1");
	is_int(store_mismatch_clear(s, kind, "no-such-key", T0_MS, NULL), 1,
	       "clearing an unknown mismatch returns 1");
	row = find_mm(s, kind, "1.001234");
	is_str(json_string_value(json_object_get(row, "state")), "resolved",
	       "a cleared mismatch is resolved");
	is_str(json_string_value(json_object_get(row, "state_by")), "lienthongd",
	       "a cleared mismatch is resolved by lienthongd");
	is_str(json_string_value(json_object_get(row, "state_note")), "đã bổ sung",
	       "the clearing note is kept");
	is_str(json_string_value(json_object_get(row, "state_at")), "2026-11-27T04:35:06Z",
	       "the state change time is listed in ISO 8601 as state_at");
	json_decref(row);

	m.seen_ms = T0_MS + 180000;
	is_int(store_mismatch_upsert(s, &m, &id2, &is_new), 0, "a resolved mismatch reappears");
	ok(is_new && id2 == id, "a reappearing resolved mismatch is new again, same row");
	row = find_mm(s, kind, "1.001234");
	is_str(json_string_value(json_object_get(row, "state")), "open", "it is open again");
	is_int(json_integer_value(json_object_get(row, "occurrences")), 3,
	       "occurrences count across reopenings");
	json_decref(row);
	ev = events_of(s, id);
	is_str(ev, "opened:open:lienthongd,resolved:resolved:lienthongd,reopened:open:lienthongd",
	       "every state change is an event: opened, resolved, reopened");
	free(ev);

	/* An operator waives it: seeing it again keeps it waived. */
	is_int(store_mismatch_set_state(s, id, "waived", "root", T0_MS + 200000, "chấp nhận"), 0,
	       "an operator waives a mismatch");
	is_int(store_mismatch_set_state(s, id, "waived", "root", T0_MS + 200000, NULL), 1,
	       "setting the same state again changes nothing");
	is_int(store_mismatch_set_state(s, 999999, "waived", "root", T0_MS, NULL), -ENOENT,
	       "an unknown mismatch id is reported");
	is_int(store_mismatch_set_state(s, id, "forgotten", "root", T0_MS, NULL), -EINVAL,
	       "an unknown state is refused");
	m.seen_ms = T0_MS + 240000;
	is_int(store_mismatch_upsert(s, &m, &id2, &is_new), 0, "a waived mismatch is seen again");
	ok(!is_new, "a waived mismatch seen again is not new");
	row = find_mm(s, kind, "1.001234");
	is_str(json_string_value(json_object_get(row, "state")), "waived",
	       "a waived mismatch stays waived when seen again");
	is_int(json_integer_value(json_object_get(row, "last_seen_ms")), T0_MS + 240000,
	       "a waived mismatch seen again still records when");
	is_str(json_string_value(json_object_get(row, "state_by")), "root",
	       "the operator who waived it is kept");
	json_decref(row);
	is_int(store_mismatch_clear(s, kind, "1.001234", T0_MS, NULL), 1,
	       "an automatic clear does not touch a waived mismatch");

	/* An acknowledged one is refreshed, not reopened, and can be cleared. */
	struct mismatch a = mm(kind, "1.000002", "Thiếu", T0_MS);
	int64_t ida = 0;
	is_int(store_mismatch_upsert(s, &a, &ida, &is_new), 0, "another mismatch is recorded");
	is_int(store_mismatch_set_state(s, ida, "acknowledged", "operator", T0_MS + 1, NULL), 0,
	       "an operator acknowledges it");
	a.seen_ms = T0_MS + 2;
	is_int(store_mismatch_upsert(s, &a, &ida, &is_new), 0, "it is seen again");
	ok(!is_new, "an acknowledged mismatch seen again is not new");
	row = find_mm(s, kind, "1.000002");
	is_str(json_string_value(json_object_get(row, "state")), "acknowledged",
	       "an acknowledged mismatch stays acknowledged when seen again");
	json_decref(row);
	is_int(store_mismatch_clear(s, kind, "1.000002", T0_MS + 3, NULL), 0,
	       "an acknowledged mismatch is cleared when it goes away");

	/* Invalid UTF-8 in a raw payload must not make the list fail. */
	struct mismatch bad = mm("relay.unreadable", "drop-01.json", "Tệp không đọc được", T0_MS);
	bad.raw = "{\"x\":\"\xff\xfe\"}";
	is_int(store_mismatch_upsert(s, &bad, NULL, &is_new), 0,
	       "a mismatch with a non-UTF-8 raw payload is stored");
	row = find_mm(s, "relay.unreadable", "drop-01.json");
	is_str(json_string_value(json_object_get(row, "raw")),
	       "{\"x\":\"\xef\xbf\xbd\xef\xbf\xbd\"}",
	       "invalid UTF-8 is listed with replacement characters");
	json_decref(row);

	is_int(store_mismatch_upsert(s, &(struct mismatch){.kind = kind, .key = "k"}, NULL, NULL),
	       -EINVAL, "a mismatch without a summary is refused");
}

/* What a flow nested in another's group learns of its writes' fate. */
static void test_groups(struct store *s)
{
	uint64_t failed = 9, before = store_groups_committed(s, &failed), f0 = failed;
	ok(!store_in_group(s), "no group open to begin with");
	is_int(store_begin(s), 0, "a flow opens a group");
	is_int(store_begin(s), 0, "another flow's writes nest in it");
	ok(store_in_group(s), "inside, the nested flow sees a group open");
	is_int(store_commit(s), 0, "the nested commit");
	ok(store_in_group(s) && store_groups_committed(s, NULL) == before,
	   "commits nothing yet: the outer group is still open");
	is_int(store_commit(s), 0, "the outer commit");
	ok(!store_in_group(s) && store_groups_committed(s, &failed) == before + 1 && failed == f0,
	   "then one more group is on disk, none lost");
}

static void test_clear_unseen(struct store *s)
{
	const char *kind = "payment.unmatched";
	int64_t ids[3];
	bool is_new;
	unsigned cleared = 99;
	const char *keys[3] = {"tx-a", "tx-b", "tx-c"};

	for (int i = 0; i < 3; i++) {
		struct mismatch m = mm(kind, keys[i], "Giao dịch chưa khớp", T0_MS + i * 1000);
		store_mismatch_upsert(s, &m, &ids[i], &is_new);
	}
	struct mismatch other = mm("payment.fee_missing", "tx-a", "Thiếu phí", T0_MS);
	int64_t other_id = 0;
	store_mismatch_upsert(s, &other, &other_id, &is_new);

	is_int(store_mismatch_clear_unseen(s, kind, T0_MS + 1500, T0_MS + 5000, &cleared), 0,
	       "clearing what a pass no longer saw succeeds");
	is_int(cleared, 2, "only mismatches last seen before the cutoff are cleared");
	json_t *open = store_mismatch_list(s, kind, "open", 0);
	ok(arr_len(open) == 1 && strcmp(str_at(open, 0, "key"), "tx-c") == 0,
	   "the one seen after the cutoff stays open");
	json_decref(open);
	json_t *res = store_mismatch_list(s, kind, "resolved", 0);
	ok(arr_len(res) == 2 && strcmp(str_at(res, 0, "key"), "tx-b") == 0 &&
		   strcmp(str_at(res, 1, "key"), "tx-a") == 0,
	   "the cleared ones are resolved, listed by last seen, newest first");
	is_str(str_at(res, 0, "state_by"), "lienthongd", "they were resolved by lienthongd");
	json_decref(res);
	json_t *o = find_mm(s, "payment.fee_missing", "tx-a");
	is_str(json_string_value(json_object_get(o, "state")), "open",
	       "a mismatch of another kind with the same key is not cleared");
	json_decref(o);
	char *ev = events_of(s, ids[0]);
	is_str(ev, "opened:open:lienthongd,resolved:resolved:lienthongd",
	       "clearing unseen mismatches records a resolved event for each");
	free(ev);
	ev = events_of(s, ids[2]);
	is_str(ev, "opened:open:lienthongd", "no event is recorded for the one left open");
	free(ev);
	is_int(store_mismatch_clear_unseen(s, kind, T0_MS + 1500, T0_MS + 6000, &cleared), 0,
	       "clearing again succeeds");
	is_int(cleared, 0, "clearing again finds nothing more to close");

	/* scoped: a pass that judged one day clears only that day's */
	const char *skind = "payment.platform_only";
	struct mismatch d1 = mm(skind, "ref-1", "Ngày 1", T0_MS);
	struct mismatch d2 = mm(skind, "ref-2", "Ngày 2", T0_MS);
	d1.scope = "2025-06-01";
	d2.scope = "2025-06-02";
	store_mismatch_upsert(s, &d1, NULL, &is_new);
	store_mismatch_upsert(s, &d2, NULL, &is_new);
	is_int(store_mismatch_clear_unseen_in(s, skind, "2025-06-02", T0_MS + 1000, T0_MS + 7000,
					      &cleared),
	       0, "clearing within a scope succeeds");
	is_int(cleared, 1, "only the mismatch of that scope is cleared");
	o = find_mm(s, skind, "ref-1");
	is_str(json_string_value(json_object_get(o, "state")), "open",
	       "the other day's mismatch, not looked at, stays open");
	json_decref(o);
	d2.seen_ms = T0_MS + 8000;
	store_mismatch_upsert(s, &d2, NULL, &is_new);
	ok(is_new, "seen again, the cleared one reopens");
	is_int(store_mismatch_clear_unseen_in(s, skind, "2025-06-02", T0_MS + 8000, T0_MS + 9000,
					      &cleared),
	       0, "clearing the scope again");
	is_int(cleared, 0, "a mismatch seen in this pass is not cleared");

	json_t *c = store_mismatch_counts(s);
	json_t *list = store_mismatch_list(s, NULL, NULL, 0);
	long long total = 0;
	const char *st;
	json_t *v;
	json_object_foreach (c, st, v)
		total += json_integer_value(v);
	ok(json_object_size(c) == 4 && json_is_integer(json_object_get(c, "acknowledged")),
	   "counts list every state, with zeros");
	is_int(total, arr_len(list), "counts add up to the number of mismatches");
	json_t *open_all = store_mismatch_list(s, NULL, "open", 0);
	is_int(json_integer_value(json_object_get(c, "open")), arr_len(open_all),
	       "the open count matches the open list");
	json_t *one = store_mismatch_list(s, NULL, NULL, 1);
	is_int(arr_len(one), 1, "the list limit bounds the number of rows");
	json_decref(one);
	json_decref(open_all);
	json_decref(list);
	json_decref(c);
}

static void test_audit(struct store *s)
{
	is_int(store_audit_add(s, "root", "resolve", "mismatch:12", "{\"note\":\"ok\"}"), 0,
	       "an audit entry is recorded");
	is_int(store_audit_add(s, "lienthongd", "push", "dossier:H56.25-0001", NULL), 0,
	       "an audit entry without detail is recorded");
	is_int(store_audit_add(s, "lienthongd", "push", "dossier:H56.25-0002", "{}"), 0,
	       "a third audit entry is recorded");
	is_int(store_audit_add(s, NULL, "push", NULL, NULL), -EINVAL,
	       "an audit entry needs an actor");
	json_t *a = store_audit_list(s, 2);
	is_int(arr_len(a), 2, "the audit list is bounded by its limit");
	is_str(str_at(a, 0, "target"), "dossier:H56.25-0002", "the audit list is newest first");
	is_str(str_at(a, 1, "target"), "dossier:H56.25-0001", "then the one before");
	is_str(str_at(a, 0, "actor"), "lienthongd", "the actor is listed");
	is_str(str_at(a, 0, "action"), "push", "the action is listed");
	ok(json_is_null(json_object_get(json_array_get(a, 1), "detail")), "no detail is null");
	ok(int_at(a, 0, "at_ms") > T0_MS - 86400000LL * 365 * 10 && str_at(a, 0, "at"),
	   "the audit time is listed in ms and ISO 8601");
	json_decref(a);
}

static void test_transactions(const char *path)
{
	struct store *s = NULL, *peer = NULL;
	char *err = NULL, *v = NULL;
	if (open_at(path, 0, &s, &err) < 0 || open_at(path, 0, &peer, &err) < 0) {
		ok(0, "two connections open the same database: %s", err);
		free(err);
		store_close(s);
		return;
	}
	is_int(store_commit(s), -EINVAL, "a commit without a transaction is refused");

	is_int(store_begin(s), 0, "a transaction begins");
	is_int(store_begin(s), 0, "a nested transaction begins");
	is_int(store_cursor_set(s, "tx.a", "1"), 0, "a write inside the transaction succeeds");
	is_int(store_audit_add(s, "test", "batch", "tx.a", NULL), 0, "a second write joins it");
	is_int(store_commit(s), 0, "the inner commit succeeds");
	is_int(store_cursor_get(peer, "tx.a", &v), 1,
	       "after the inner commit nothing is visible to another connection yet");
	free(v);
	is_int(store_commit(s), 0, "the outer commit succeeds");
	is_int(store_cursor_get(peer, "tx.a", &v), 0,
	       "after the outer commit the write is visible to another connection");
	free(v);
	is_int(store_check(s), 0, "store_check works between transactions");

	is_int(store_begin(s), 0, "a transaction begins for a rollback");
	is_int(store_begin(s), 0, "a nested one too");
	is_int(store_cursor_set(s, "tx.b", "1"), 0, "a write inside it succeeds");
	is_int(store_check(s), -EBUSY, "store_check refuses to probe inside a transaction");
	store_rollback(s);
	is_int(store_cursor_set(s, "tx.c", "1"), -ECANCELED,
	       "after an inner rollback further writes of the batch are refused");
	is_int(store_commit(s), -ECANCELED, "the outer commit reports the batch was cancelled");
	is_int(store_cursor_get(s, "tx.b", &v), 1, "nothing of a rolled back batch is stored");
	free(v);
	is_int(store_cursor_get(s, "tx.c", &v), 1, "not even a write made after the rollback");
	free(v);
	is_int(store_cursor_set(s, "tx.d", "1"), 0, "after the batch ended, writes autocommit");
	is_int(store_cursor_get(peer, "tx.d", &v), 0, "an autocommitted write is visible at once");
	free(v);
	store_close(peer);
	store_close(s);
}

static size_t audit_count(struct store *s)
{
	json_t *a = store_audit_list(s, 0);
	size_t n = arr_len(a);
	json_decref(a);
	return n;
}

static void test_full(void)
{
	char *path = tmp_path("full/state.db");
	char *err = NULL, *v = NULL;
	struct store *s = NULL;
	const char *why = NULL;
	char detail[1001];
	int r = 0, n_ok = 0;
	int64_t limit = 384 * 1024; /* room for schema growth; the test fills it anyway */

	memset(detail, 'x', sizeof(detail) - 1);
	detail[sizeof(detail) - 1] = '\0';
	if (open_at(path, limit, &s, &err) < 0) {
		ok(0, "a store with a small max_size opens: %s", err);
		free(err);
		free(path);
		return;
	}
	is_int(store_cursor_set(s, "full.pos", "00001"), 0,
	       "a cursor is stored before the disk fills");

	/* A batch that hits the limit is committed entirely or not at all. */
	int n_batch = 0;
	is_int(store_begin(s), 0, "a batch begins");
	for (int i = 0; i < 100000; i++) {
		r = store_audit_add(s, "test", "batch", "full", detail);
		if (r < 0)
			break;
		n_batch++;
	}
	is_int(r, -ENOSPC, "the batch hits the limit");
	ok(n_batch > 10, "the batch's writes succeeded until the limit (%d)", n_batch);
	is_int(store_health(s, NULL), STORE_FULL, "a batch that fills the store sets STORE_FULL");
	is_int(store_cursor_set(s, "full.pos", "00002"), -ENOSPC,
	       "after a write of the batch was lost, the batch refuses further writes");
	is_int(store_commit(s), -ENOSPC, "the batch's commit reports -ENOSPC");
	is_int(audit_count(s), 0, "no write of the failed batch was committed");
	is_int(store_cursor_get(s, "full.pos", &v), 0, "the cursor is still there");
	is_str(v, "00001", "the cursor did not advance past the lost batch");
	free(v);
	is_int(store_check(s), 0, "the lost batch freed its room: store_check clears the health");

	/* Autocommitted writes until the limit. */
	for (int i = 0; i < 100000; i++) {
		r = store_audit_add(s, "test", "fill", "full", detail);
		if (r < 0)
			break;
		n_ok++;
	}
	is_int(r, -ENOSPC, "writing past [store] max_size fails with -ENOSPC");
	ok(n_ok > 10, "writes succeeded until the limit (%d)", n_ok);
	is_int(store_health(s, &why), STORE_FULL, "a full store reports STORE_FULL");
	ok(contains(why, "max_size") && contains(why, path),
	   "the health says why, naming the file (%s)", why ? why : "none");
	is_int(audit_count(s), n_ok,
	       "every write acknowledged before the store filled is readable");
	ok(store_size_bytes(s) <= limit + 64 * 1024 * 1024, "store_size_bytes stays bounded");

	/* A small write may still fit, but that does not prove room. */
	is_int(store_cursor_set(s, "full.pos", "00003"), 0, "a write that fits a page succeeds");
	is_int(store_health(s, NULL), STORE_FULL, "one successful write does not clear STORE_FULL");
	is_int(store_check(s), -ENOSPC, "store_check fails while the store is still full");
	is_int(store_health(s, NULL), STORE_FULL, "and the health stays STORE_FULL");

	is_int(store_set_max_size(s, 8 * 1024 * 1024), 0, "the limit is raised (a reload)");
	is_int(store_health(s, NULL), STORE_FULL, "raising the limit alone does not change health");
	is_int(store_check(s), 0, "store_check succeeds once there is room");
	is_int(store_health(s, &why), STORE_OK, "and the store is healthy again");
	is_str(why, NULL, "a healthy store has no why");
	is_int(store_audit_add(s, "test", "after", "full", detail), 0, "writes succeed again");
	store_close(s);
	s = NULL;

	r = open_at(path, limit, &s, &err);
	is_int(r, 0, "a store over its max_size still opens (it must start to report)");
	if (r == 0) {
		is_int(audit_count(s), n_ok + 1, "everything committed survived the reopen");
		/* The probe's freed pages are inside the file: a few rows fit. */
		r = 0;
		for (int i = 0; i < 1000 && r == 0; i++)
			r = store_audit_add(s, "test", "fill", "full", detail);
		is_int(r, -ENOSPC, "the reopened store still enforces max_size");
	}
	store_close(s);
	free(err);
	free(path);
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static long long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* Whether a thread of this process is named name (/proc/self/task/N/comm). */
static bool thread_named(const char *name)
{
	bool found = false;
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	while (d && !found && (e = readdir(d))) {
		char p[64], *comm = NULL;
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "/proc/self/task/%.20s/comm", e->d_name);
		if (read_file_bounded(p, 64, &comm, NULL) == 0)
			found = strncmp(comm, name, strlen(name)) == 0;
		free(comm);
	}
	if (d)
		closedir(d);
	return found;
}

/*
 * Checkpoints happen off the loop while the store is open: a thread of the
 * store's checkpoints them, and after commits of some 2,000 WAL pages (past
 * its 1,000, short of the 8,000 at which the loop would checkpoint itself)
 * the database file grows to hold them without any further call.
 */
static void test_checkpoints(void)
{
	char *path = tmp_path("ckpt.db");
	struct store *s = NULL;
	char *err = NULL, value[2048];
	if (open_at(path, 0, &s, &err) != 0) {
		ok(0, "the checkpoint store opens: %s", err);
		free(err);
		free(path);
		return;
	}
	ok(thread_named("lt-checkpoint"), "an open store has its checkpoint thread");
	long long before = file_size(path);
	memset(value, 'x', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	int failed = 0;
	for (int i = 0; i < 2000; i++) {
		char name[32];
		snprintf(name, sizeof(name), "ckpt.%d", i);
		failed += store_cursor_set(s, name, value) != 0; /* one commit each */
	}
	is_int(failed, 0, "2,000 commits of 2 KB each succeed");
	long long after = before;
	for (int i = 0; i < 200 && after < before + 2000LL * 1024; i++) {
		usleep(10000);
		after = file_size(path);
	}
	ok(after >= before + 2000LL * 1024,
	   "the database file took the WAL's pages while open (%lld -> %lld bytes): the "
	   "checkpoint thread ran",
	   before, after);
	store_close(s);
	ok(!thread_named("lt-checkpoint"), "closing the store ends it");
	free(path);
}

int main(void)
{
	/* Failures are expected here; the checks say what matters. */
	log_setup(LOG_TARGET_STDERR, getenv("TEST_VERBOSE") ? LOG_DEBUG : LOG_CRIT);
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}

	test_open_and_migrate();
	test_refusals();

	char *path = tmp_path("main.db");
	struct store *s = NULL;
	char *err = NULL;
	if (open_at(path, 0, &s, &err) == 0) {
		test_cursors(s);
		test_runs(s);
		test_mismatches(s);
		test_clear_unseen(s);
		test_groups(s);
		test_audit(s);
		store_close(s);
	} else {
		ok(0, "the main test store opens: %s", err);
		free(err);
	}
	free(path);

	path = tmp_path("tx.db");
	test_transactions(path);
	free(path);

	test_full();
	test_checkpoints();

	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return tap_done();
}
