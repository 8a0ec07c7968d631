/* Unit tests of util: bounded buffers, parsing of durations and sizes,
 * atomic writes and the secret-file permission rules. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "util.h"

static void test_dynbuf(void)
{
	struct dynbuf b;
	dynbuf_init(&b, 8);
	is_int(dynbuf_addstr(&b, "1234"), 0, "dynbuf accepts data under its maximum");
	is_int(dynbuf_addstr(&b, "56789"), -E2BIG, "dynbuf refuses growth past its maximum");
	is_str(b.data, "1234", "a refused add leaves the buffer unchanged");
	is_int(dynbuf_addstr(&b, "5678"), 0, "dynbuf fills exactly to its maximum");
	size_t len;
	char *s = dynbuf_steal(&b, &len);
	is_int(len, 8, "steal hands over the length");
	ok(b.data == NULL && b.len == 0, "steal leaves the buffer empty");
	free(s);
	dynbuf_free(&b);
}

static void test_parse(void)
{
	int64_t v;
	ok(parse_duration_ms("30s", 1000, &v) == 0 && v == 30000, "30s is 30000 ms");
	ok(parse_duration_ms("500ms", 1000, &v) == 0 && v == 500, "500ms");
	ok(parse_duration_ms("5m", 1000, &v) == 0 && v == 300000, "5m");
	ok(parse_duration_ms("2", 1000, &v) == 0 && v == 2000,
	   "a bare number takes the default unit");
	ok(parse_duration_ms("1d", 1000, &v) == 0 && v == 86400000, "1d");
	is_int(parse_duration_ms("5 parsecs", 1000, &v), -EINVAL, "an unknown unit is rejected");
	is_int(parse_duration_ms("-5s", 1000, &v), -EINVAL, "a negative duration is rejected");
	is_int(parse_duration_ms("", 1000, &v), -EINVAL, "an empty duration is rejected");
	is_int(parse_duration_ms("99999999999999999d", 1000, &v), -ERANGE, "overflow is detected");
	ok(parse_size_bytes("64k", &v) == 0 && v == 65536, "64k");
	ok(parse_size_bytes("16M", &v) == 0 && v == 16777216, "16M");
	ok(parse_size_bytes("2G", &v) == 0 && v == 2147483648LL, "2G");
	is_int(parse_size_bytes("12 apples", &v), -EINVAL, "a size with a bad unit is rejected");
}

static void test_files(const char *dir)
{
	char *path = xasprintf("%s/a/b/c", dir);
	is_int(mkdir_p(path, 0750), 0, "mkdir_p creates nested directories");
	is_int(mkdir_p(path, 0750), 0, "mkdir_p is idempotent");
	char *file = xasprintf("%s/out.txt", path);
	is_int(write_file_atomic(file, "hello", 5, 0640), 0, "atomic write succeeds");
	char *data = NULL;
	size_t len = 0;
	is_int(read_file_bounded(file, 100, &data, &len), 0, "the written file reads back");
	is_str(data, "hello", "with the same content");
	free(data);
	is_int(read_file_bounded(file, 3, &data, &len), -EFBIG, "a read past the bound is refused");
	struct stat st;
	stat(file, &st);
	is_int(st.st_mode & 0777, 0640, "the new file has the requested mode");
	char *tmp = xasprintf("%s.tmp.%d", file, (int)getpid());
	ok(access(tmp, F_OK) != 0, "no temporary file is left behind");
	is_int(write_file_atomic("/nonexistent-dir/x", "a", 1, 0600), -ENOENT,
	       "atomic write into a missing directory reports ENOENT");
	free(tmp);
	free(file);
	free(path);
}

static void test_secrets(const char *dir)
{
	char *p = xasprintf("%s/pw", dir);
	char *s = NULL, *err = NULL;
	write_file_atomic(p, "s3cret\n", 7, 0600);
	is_int(secret_read(p, &s, &err), 0, "a 0600 secret file is read");
	is_str(s, "s3cret", "its trailing newline is stripped");
	secret_free(s);
	chmod(p, 0644);
	is_int(secret_read(p, &s, &err), -EPERM, "a world-readable secret file is refused");
	ok(err && strstr(err, p) && strstr(err, "0644"), "the refusal names the file and its mode");
	free(err);
	err = NULL;
	chmod(p, 0660);
	is_int(secret_read(p, &s, &err), -EPERM, "a group-writable secret file is refused");
	free(err);
	err = NULL;
	chmod(p, 0640);
	is_int(secret_read(p, &s, &err), 0, "a group-readable secret file is accepted");
	secret_free(s);
	setenv("CREDENTIALS_DIRECTORY", dir, 1);
	is_int(secret_read("pw", &s, &err), 0,
	       "a credential name is found in $CREDENTIALS_DIRECTORY");
	secret_free(s);
	unsetenv("CREDENTIALS_DIRECTORY");
	is_int(secret_read("pw", &s, &err), -EINVAL,
	       "a credential name without the directory fails");
	ok(err && strstr(err, "CREDENTIALS_DIRECTORY"), "and says why");
	free(err);
	err = NULL;
	char *empty = xasprintf("%s/empty", dir);
	write_file_atomic(empty, "\n", 1, 0600);
	is_int(secret_read(empty, &s, &err), -EINVAL, "an empty secret file is refused");
	free(err);
	free(empty);
	free(p);
}

int main(void)
{
	char tmpl[] = "/tmp/lt-util-XXXXXX";
	char *dir = mkdtemp(tmpl);
	test_dynbuf();
	test_parse();
	test_files(dir);
	test_secrets(dir);
	char *cmd = xasprintf("rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("# cleanup failed\n");
	free(cmd);
	uint64_t hits = 0;
	for (int i = 0; i < 1000; i++)
		hits += rand_below(10) < 10;
	is_int(hits, 1000, "rand_below stays below its bound");
	return tap_done();
}
