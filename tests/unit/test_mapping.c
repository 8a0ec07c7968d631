/*
 * test_mapping: the mapping engine against the real mappings/ directory and
 * the fixtures of tests/fixtures/mappings/ (messy national records and the
 * provincial records they must become, a directory of broken mapping files
 * with the exact messages they must give), plus jsonpos, the transforms on
 * their own, and a mutation loop that applies the procedure map to
 * thousands of damaged records (run under ASan/UBSan by make SAN=1).
 * Run from the repository root, like every unit test.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

#include "conf.h"
#include "jsonpos.h"
#include "mapping.h"
#include "tap.h"
#include "util.h"

#define FIX "tests/fixtures/mappings/"

/* Fixed mapping dates, Asia/Ho_Chi_Minh noon (ms checked in test_vn_time). */
#define AT_2026_11_27 1795755600000LL
#define AT_2024_06_01 1717218000000LL
#define AT_2025_06_01 1748754000000LL
#define AT_2025_08_01 1754024400000LL

static json_t *load_json(const char *path)
{
	json_error_t e;
	json_t *j = json_load_file(path, 0, &e);
	if (!j)
		printf("# cannot load %s: %s line %d\n", path, e.text, e.line);
	return j;
}

static void show(const char *what, const json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	printf("#   %s: %s\n", what, s ? s : "(null)");
	free(s);
}

/* ---- jsonpos ----------------------------------------------------------- */

static void test_jsonpos(void)
{
	static const char text[] = "{\n"
				   "  \"a\": 1,\n"
				   "  \"b\": {\n"
				   "    \"c\": [10,\n"
				   "          {\"d\": \"x\\\"y\"}],\n"
				   "    \"e\\u00e9\": null\n"
				   "  },\n"
				   "  \"f.g\": [], \"h\": {}\n"
				   "}\n";
	struct jsonpos *p = NULL;
	is_int(jsonpos_index(text, strlen(text), &p), 0, "jsonpos indexes a JSON text");
	is_int(jsonpos_count(p), 10, "jsonpos records every value (root, members, elements)");
	is_int(jsonpos_line(p, ""), 1, "jsonpos: the root is on line 1");
	is_int(jsonpos_line(p, "a"), 2, "jsonpos: a member's line");
	is_int(jsonpos_line(p, "b"), 3, "jsonpos: an object member starts on its brace's line");
	is_int(jsonpos_line(p, "b.c[0]"), 4, "jsonpos: an array element");
	is_int(jsonpos_line(p, "b.c[1]"), 5, "jsonpos: an element on a later line");
	is_int(jsonpos_line(p, "b.c[1].d"), 5, "jsonpos: a member inside an array element");
	is_int(jsonpos_line(p, "b.e\xc3\xa9"), 6, "jsonpos: a key with a \\u escape is decoded");
	is_int(jsonpos_line(p, "f.g"), 8, "jsonpos: a key holding a dot is used verbatim");
	is_int(jsonpos_line(p, "h"), 8, "jsonpos: two members on one line");
	is_int(jsonpos_line(p, "b.c[1].zz"), 5,
	       "jsonpos: an absent member gives the line of the object lacking it");
	is_int(jsonpos_line(p, "b.c[7]"), 4, "jsonpos: an absent element gives its array's line");
	is_int(jsonpos_line(p, "nothing.at.all"), 1, "jsonpos: nothing matching gives the root");
	is_int(jsonpos_line(NULL, "a"), 0, "jsonpos: no index, line 0");
	jsonpos_free(p);

	p = NULL;
	ok(jsonpos_index("{\"a\": }", 7, &p) == -EINVAL && !p,
	   "jsonpos refuses text that is not JSON");
	ok(jsonpos_index("[1] 2", 5, &p) == -EINVAL && !p, "jsonpos refuses trailing data");
	ok(jsonpos_index("\"a\nb\"", 5, &p) == -EINVAL && !p,
	   "jsonpos refuses a raw newline in a string");
	char deep[3000];
	memset(deep, '[', 1500);
	memset(deep + 1500, ']', 1500);
	ok(jsonpos_index(deep, 3000, &p) == -E2BIG && !p, "jsonpos refuses nesting beyond 1024");
	memset(deep, '[', 1000);
	memset(deep + 1000, ']', 1000);
	ok(jsonpos_index(deep, 2000, &p) == 0 && jsonpos_line(p, "[0][0][0]") == 1,
	   "jsonpos takes nesting of 1000");
	jsonpos_free(p);
	jsonpos_free(NULL);
}

/* ---- paths --------------------------------------------------------------- */

static bool same(json_t *got, const char *want_json)
{
	json_t *want = want_json ? json_loads(want_json, JSON_DECODE_ANY, NULL) : NULL;
	bool eq = (!got && !want) || (got && want && json_equal(got, want));
	if (!eq) {
		show("got", got);
		printf("#   want: %s\n", want_json ? want_json : "(null)");
	}
	json_decref(want);
	json_decref(got);
	return eq;
}

static void test_path_get(void)
{
	json_t *d = json_loads("{\"A\": {\"B\": 1, \"N\": null},"
			       " \"L\": [{\"B\": 1}, {\"C\": 2}, {\"B\": [3, 4]}, 5],"
			       " \"M\": [[1, 2], [3], []], \"S\": \"text\", \"E\": []}",
			       0, NULL);
	json_t *root_list = json_loads("[{\"A\": 1}, {\"A\": 2}]", 0, NULL);
	ok(same(map_path_get(d, "A.B"), "1"), "path A.B reads a member of a member");
	ok(same(map_path_get(d, "A"), "{\"B\": 1, \"N\": null}"), "path A gives the object");
	ok(same(map_path_get(d, "A.N"), "null"), "a JSON null is a value, not absent");
	ok(same(map_path_get(d, "A.X"), NULL), "an absent member gives NULL");
	ok(same(map_path_get(d, "S.B"), NULL), "a member of text is absent, not a crash");
	ok(same(map_path_get(d, "L[0].B"), "1"), "path L[0].B reads one element");
	ok(same(map_path_get(d, "L[9].B"), NULL), "an index past the end is absent");
	ok(same(map_path_get(d, "L[].B"), "[1, [3, 4]]"),
	   "path L[].B: every element's B, elements without it skipped");
	ok(same(map_path_get(d, "L[].B[]"), "[3, 4]"),
	   "L[].B[] flattens one level more; a B that is not a list gives nothing");
	ok(same(map_path_get(d, "M[][]"), "[1, 2, 3]"), "M[][] flattens nested lists");
	ok(same(map_path_get(d, "M[]"), "[[1, 2], [3], []]"), "M[] keeps the elements as they are");
	ok(same(map_path_get(d, "E[].B"), "[]"), "[] over an empty list is an empty list");
	ok(same(map_path_get(d, "S[]"), NULL), "[] over text is absent");
	ok(same(map_path_get(d, "Q[].B"), NULL), "[] over an absent member is absent");
	ok(same(map_path_get(root_list, "[1].A"), "2"), "a path may start with an index");
	ok(same(map_path_get(root_list, "[].A"), "[1, 2]"), "a path may start with []");
	ok(same(map_path_get(d, "A..B"), NULL), "a malformed path (A..B) gives NULL");
	ok(same(map_path_get(d, "L[x]"), NULL), "a malformed path (L[x]) gives NULL");
	ok(same(map_path_get(d, "L[0"), NULL), "a malformed path (L[0) gives NULL");
	ok(same(map_path_get(d, ""), NULL), "an empty path gives NULL");
	ok(same(map_path_get(NULL, "A"), NULL), "no document gives NULL");
	json_decref(d);
	json_decref(root_list);
}

/* ---- the real mapping files ---------------------------------------------- */

static struct map_set *load_real(void)
{
	struct conf_errors errs = {0};
	struct map_set *s = NULL;
	int r = map_set_load("mappings", &s, &errs);
	is_int(r, 0, "the mappings/ directory loads");
	is_int(errs.n, 0, "the mappings/ directory loads without a single error");
	for (size_t i = 0; i < errs.n; i++)
		printf("#   %s\n", errs.msgs[i]);
	conf_errors_free(&errs);
	return s;
}

static void test_real_set(const struct map_set *s)
{
	is_int(map_set_count(s), 9,
	       "nine mapping files: procedure, agency, level, time-unit, commune, dossier, "
	       "progress, dossier-status, unit");
	const struct map_record *m = map_record_find(s, "procedure");
	ok(m != NULL, "the field map 'procedure' is found by name");
	is_str(map_record_file(m), "mappings/procedure.json", "a map knows its file");
	is_str(map_record_key(m), "maThuTuc", "the procedure map is keyed by maThuTuc");
	ok(map_table_find(s, "procedure") == NULL, "a field map is not a code table");
	ok(map_record_find(s, "agency") == NULL, "a code table is not a field map");
	ok(map_table_find(s, "nope") == NULL && map_record_find(s, NULL) == NULL,
	   "unknown names give NULL");
	static const char *const want[][2] = {
		{"fee", "phiLePhi[].soTien"}, {"time_limit", "thoiHanGiaiQuyet"},
		{"channel", "kenhNop"},	      {"documents", "thanhPhanHoSo[].giayTo[].ten"},
		{"agency", "coQuanThucHien"},
	};
	const char *path = NULL, *aspect;
	size_t i;
	bool all = true;
	for (i = 0; (aspect = map_record_compare_at(m, i, &path)); i++)
		all &= i < 5 && !strcmp(aspect, want[i][0]) && !strcmp(path, want[i][1]);
	ok(all && i == 5, "the compare section lists the five aspects of catalog-spec 3 in order");
}

static json_t *apply_ok(const struct map_record *m, const json_t *src, int64_t at_ms)
{
	json_t *out = NULL, *problems = NULL;
	int r = map_apply(m, src, at_ms, &out, &problems);
	if (r != 0)
		show("problems", problems);
	json_decref(problems);
	return r == 0 ? out : NULL;
}

static void test_procedure_fixtures(const struct map_set *s)
{
	const struct map_record *m = map_record_find(s, "procedure");
	for (int k = 1; k <= 2; k++) {
		char np[128], pp[128];
		snprintf(np, sizeof(np), FIX "national-%d.json", k);
		snprintf(pp, sizeof(pp), FIX "provincial-%d.json", k);
		json_t *n = load_json(np), *want = load_json(pp);
		json_t *got = apply_ok(m, n, AT_2026_11_27);
		ok(got && want && json_equal(got, want),
		   "national-%d.json (messy) maps exactly to provincial-%d.json", k, k);
		if (got && want && !json_equal(got, want)) {
			show("got", got);
			show("want", want);
		}
		/* the object's key order is the map's field order */
		const char *first = got ? json_object_iter_key(json_object_iter(got)) : NULL;
		is_str(first, "maThuTuc", "mapped record %d starts with the map's first field", k);
		json_decref(got);
		json_decref(n);
		json_decref(want);
	}
}

/* Appends code point cp as UTF-8 to buf at *n. */
static void put_utf8(char *buf, size_t *n, uint32_t cp)
{
	utf8proc_ssize_t k =
		utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)buf + *n);
	*n += (size_t)k;
	buf[*n] = '\0';
}

/*
 * map_nfc takes a short cut for text whose every code point NFC leaves
 * alone: it must agree with utf8proc for each code point of those ranges,
 * alone, after a base letter, and followed by combining marks (which take
 * the long way and may compose with it).
 */
static void test_nfc_fast_path(void)
{
	static const uint32_t ranges[][2] = {{0x80, 0x2ff}, {0x1e00, 0x1eff}, {0x2010, 0x2027}};
	static const uint32_t after[] = {0, 0x300, 0x301, 0x303, 0x309, 0x323, 0x302, 0x306};
	size_t checked = 0, bad = 0;
	char buf[32];
	for (size_t r = 0; r < LT_ARRAY_SIZE(ranges); r++) {
		for (uint32_t cp = ranges[r][0]; cp <= ranges[r][1]; cp++) {
			for (size_t a = 0; a < LT_ARRAY_SIZE(after); a++) {
				size_t n = 0;
				put_utf8(buf, &n, 'e');
				put_utf8(buf, &n, cp);
				if (after[a])
					put_utf8(buf, &n, after[a]);
				char *mine = map_nfc(buf);
				char *ref = (char *)utf8proc_NFC((const utf8proc_uint8_t *)buf);
				if (!mine || !ref || strcmp(mine, ref)) {
					if (bad++ < 5)
						printf("#   U+%04X then U+%04X differs\n",
						       (unsigned)cp, (unsigned)after[a]);
				}
				checked++;
				free(mine);
				free(ref);
			}
		}
	}
	ok(checked > 5000 && bad == 0,
	   "map_nfc's short cut agrees with utf8proc on every code point it covers, alone and "
	   "before combining marks");
}

static void test_nfc(const struct map_set *s)
{
	const struct map_record *m = map_record_find(s, "procedure");
	json_t *a = load_json(FIX "national-1.json");
	json_t *b = json_deep_copy(a);
	/* NFD: "Đăng ký khai sinh" with decomposed a-breve and y-acute */
	json_object_set_new(a, "TENTTHC",
			    json_string("\xc4\x90"
					"a\xcc\x86ng ky\xcc\x81 khai sinh"));
	json_object_set_new(b, "TENTTHC", json_string("\xc4\x90\xc4\x83ng k\xc3\xbd khai sinh"));
	ok(strcmp(json_string_value(json_object_get(a, "TENTTHC")),
		  json_string_value(json_object_get(b, "TENTTHC"))) != 0,
	   "the NFD and NFC names differ byte for byte");
	json_t *ma = apply_ok(m, a, AT_2026_11_27), *mb = apply_ok(m, b, AT_2026_11_27);
	ok(ma && mb && json_equal(ma, mb), "NFD and NFC names map to the same record (nfc)");
	is_str(json_string_value(json_object_get(ma, "tenThuTuc")),
	       "\xc4\x90\xc4\x83ng k\xc3\xbd khai sinh", "the mapped name is NFC");
	char *ca = map_canonical(a), *cb = map_canonical(b);
	ok(ca && cb && !strcmp(ca, cb), "NFD and NFC national records have one canonical text");
	free(ca);
	free(cb);
	json_decref(ma);
	json_decref(mb);
	json_decref(a);
	json_decref(b);

	char *n = map_nfc("Vie\xcc\xa3\xcc\x82t Nam");
	is_str(n, "Vi\xe1\xbb\x87t Nam",
	       "map_nfc composes e + dot below + circumflex into one letter");
	free(n);
	ok(map_nfc("\xff\xfe") == NULL, "map_nfc refuses text that is not UTF-8");
	ok(map_nfc("a\xed\xa0\x80") == NULL, "map_nfc refuses an encoded surrogate");
	ok(map_nfc(NULL) == NULL, "map_nfc of NULL is NULL");
	test_nfc_fast_path();
}

static bool problems_are(const json_t *problems, const char *const (*want)[2], size_t n)
{
	bool eq = json_array_size(problems) == n;
	for (size_t i = 0; eq && i < n; i++) {
		json_t *p = json_array_get(problems, i);
		const char *f = json_string_value(json_object_get(p, "field"));
		const char *r = json_string_value(json_object_get(p, "reason"));
		eq = f && r && !strcmp(f, want[i][0]) && !strcmp(r, want[i][1]);
	}
	if (!eq) {
		show("problems", problems);
		for (size_t i = 0; i < n; i++)
			printf("#   want %s: %s\n", want[i][0], want[i][1]);
	}
	return eq;
}

static void test_unmappable(const struct map_set *s)
{
	const struct map_record *m = map_record_find(s, "procedure");
	json_t *out = (json_t *)1, *problems = NULL;

	json_t *bad = load_json(FIX "national-malformed.json");
	is_int(map_apply(m, bad, AT_2026_11_27, &out, &problems), 1,
	       "a record with TENTTHC missing and SOTIEN 'abc' cannot be translated");
	ok(out == NULL, "no record comes out of a failed mapping");
	static const char *const want_bad[][2] = {
		{"tenThuTuc", "missing: no value at TENTTHC"},
		{"phiLePhi[1].soTien", "'abc' is not an amount"},
	};
	ok(problems_are(problems, want_bad, 2),
	   "each problem names the target field and the reason");
	json_decref(problems);
	json_decref(bad);

	json_t *text = json_string("Lỗi: không tìm thấy");
	is_int(map_apply(m, text, AT_2026_11_27, &out, &problems), 1,
	       "a result[0] that is a string cannot be translated");
	static const char *const want_text[][2] = {{"(record)", "expected an object, got text"}};
	ok(problems_are(problems, want_text, 1), "a record that is not an object: one problem");
	json_decref(problems);
	json_decref(text);

	is_int(map_apply(m, NULL, 0, &out, &problems), 1, "no record at all is a problem too");
	json_decref(problems);

	json_t *retired = load_json(FIX "national-retired-agency.json");
	json_t *old = apply_ok(m, retired, AT_2024_06_01);
	ok(old && same(json_incref(json_object_get(old, "coQuanThucHien")), "[\"SKHDT\"]"),
	   "the retired agency 000.00.15.H31 maps at a 2024 date");
	json_decref(old);
	is_int(map_apply(m, retired, AT_2026_11_27, &out, &problems), 1,
	       "the retired agency makes the record unmappable at a 2026 date");
	static const char *const want_ret[][2] = {
		{"coQuanThucHien[0]", "unknown code '000.00.15.H31' in table agency (valid at "
				      "2026-11-27; the code is valid until 2025-02-28)"},
	};
	ok(problems_are(problems, want_ret, 1), "the problem names the code, table and dates");
	json_decref(problems);
	json_decref(retired);

	/* many broken fee lines: the list is bounded */
	json_t *many = load_json(FIX "national-2.json");
	json_t *fees = map_path_get(many, "CACHTHUCTHUCHIEN[0].THOIGIAN[0].PHILEPHI");
	json_array_clear(fees);
	for (int i = 0; i < 200; i++)
		json_array_append_new(fees, json_pack("{s:s}", "SOTIEN", "abc"));
	json_decref(fees);
	is_int(map_apply(m, many, AT_2026_11_27, &out, &problems), 1, "200 bad fee lines fail");
	is_int(json_array_size(problems), 51,
	       "problems stop at 50, plus one line counting the rest");
	is_str(json_string_value(json_object_get(json_array_get(problems, 50), "reason")),
	       "150 more problems not listed", "the last line says how many were left out");
	json_decref(problems);
	json_decref(many);
}

/* ---- transforms ---------------------------------------------------------- */

static void test_money(void)
{
	static const struct {
		const char *text;
		int64_t vnd; /* -1: not an amount */
	} cases[] = {
		{"8.000", 8000},
		{"8.000 đồng", 8000},
		{"8.000 \xc4\x91o\xcc\x82\xcc\x80ng", 8000}, /* NFD đồng */
		{"50.000 đồng/hồ sơ", 50000},
		{"50.000 đồng / hồ sơ", 50000},
		{"1.200.000", 1200000},
		{"100.000 Đồng", 100000},
		{"100.000 VNĐ", 100000},
		{"100.000đ", 100000},
		{"100.000 ₫", 100000},
		{"20.000/bản", 20000},
		{"Không", 0},
		{" KHÔNG ", 0},
		{"Miễn phí", 0},
		{"miễn lệ phí", 0},
		{"0", 0},
		{"0 đồng", 0},
		{"8000", 8000},
		{" 8000 ", 8000},
		{"1,200,000", 1200000},
		{"1,200", 1200},
		{"1.200.000,00", 1200000},
		{"1,200,000.00 VND", 1200000},
		{"1.000.000.000.000", 1000000000000LL},
		{"0,5", -1},
		{"8.5", -1},
		{"8.00", -1},
		{"8.000,5", -1},
		{"1.200,000", -1},
		{"1,200.000,00", -1},
		{"0.500", -1},
		{"08.000", -1},
		{"8.0000", -1},
		{"-8.000", -1},
		{"+8.000", -1},
		{"", -1},
		{"   ", -1},
		{"abc", -1},
		{"Không quy định", -1},
		{"8.000 USD", -1},
		{"8.000 - 10.000", -1},
		{"Lệ phí: 8.000", -1},
		{"8.000 đồng/", -1},
		{".000", -1},
		{"99999999999999999999", -1},
		{"1.000.000.000.000.000.000", -1},
		{"\xff", -1},
	};
	for (size_t i = 0; i < LT_ARRAY_SIZE(cases); i++) {
		int64_t v = -1;
		int r = map_money(cases[i].text, &v);
		if (cases[i].vnd < 0)
			is_int(r, -EINVAL, "map_money: '%s' is not an amount", cases[i].text);
		else
			ok(r == 0 && v == cases[i].vnd,
			   "map_money: '%s' is %lld VND (got %d, %lld)", cases[i].text,
			   (long long)cases[i].vnd, r, (long long)v);
	}
	int64_t v;
	is_int(map_money(NULL, &v), -EINVAL, "map_money: NULL is not an amount");
	char big[1000];
	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	is_int(map_money(big, &v), -EINVAL, "map_money: a huge text is not an amount");
}

static void test_vn_time(void)
{
	int64_t ms = 0;
	char buf[32];
	is_int(map_parse_vn_time("20261127113306", &ms), 0, "parses yyyyMMddHHmmss");
	is_int(ms, 1795753986000LL, "yyyyMMddHHmmss is Asia/Ho_Chi_Minh (UTC+7) time");
	is_str(map_format_vn_time(ms, buf, sizeof(buf)), "20261127113306",
	       "formats wall ms back as yyyyMMddHHmmss");
	is_int(map_parse_vn_time("20261127120000", &ms), 0, "parses noon");
	is_int(ms, AT_2026_11_27, "the test's 2026-11-27 date is noon in Hanoi");
	map_parse_vn_time("20240601120000", &ms);
	is_int(ms, AT_2024_06_01, "the test's 2024-06-01 date is noon in Hanoi");
	map_parse_vn_time("20250601120000", &ms);
	is_int(ms, AT_2025_06_01, "the test's 2025-06-01 date is noon in Hanoi");
	map_parse_vn_time("20250801120000", &ms);
	is_int(ms, AT_2025_08_01, "the test's 2025-08-01 date is noon in Hanoi");
	is_int(map_parse_vn_time("20000229000000", &ms), 0, "29 February of a leap year");
	is_int(ms, 951757200000LL, "2000-02-29 00:00 in Hanoi");
	is_str(map_format_vn_time(-25201000, buf, sizeof(buf)), "19691231235959",
	       "times before 1970 format too");
	is_str(map_format_vn_time(0, buf, sizeof(buf)), "19700101070000",
	       "the epoch is 07:00 in Hanoi (24-hour clock)");
	static const char *const bad[] = {
		"2026112711330",   "202611271133060", "20260230120000",
		"20261127240000",  "20261127116000",  "20261127113360",
		"2026-11-27 11:3", "2026112711330x",  "",
		"19000229000000",
	};
	for (size_t i = 0; i < LT_ARRAY_SIZE(bad); i++)
		is_int(map_parse_vn_time(bad[i], &ms), -EINVAL, "'%s' is not yyyyMMddHHmmss",
		       bad[i]);
	is_int(map_parse_vn_time(NULL, &ms), -EINVAL, "NULL is not a time");
	ok(map_format_vn_time(0, buf, 14) == NULL, "formatting needs 15 bytes");
}

static void test_canonical(void)
{
	json_t *j =
		json_loads("{\"b\": [3, 3.0, 0.5, \"x\\ny\"], \"a\": {\"d\": null, \"c\": true},"
			   " \"\\u00e9\": \"e\\u0301\"}",
			   0, NULL);
	char *c = map_canonical(j);
	is_str(c,
	       "{\"a\":{\"c\":true,\"d\":null},\"b\":[3,3.0,0.5,\"x\\ny\"],\"\xc3\xa9\":"
	       "\"\xc3\xa9\"}",
	       "canonical text: sorted keys, compact, NFC strings, 3.0 stays a real");
	free(c);
	json_decref(j);
	json_t *a = json_loads("{\"x\": 1, \"y\": 2}", 0, NULL),
	       *b = json_loads("{\"y\": 2, \"x\": 1}", 0, NULL);
	char *ca = map_canonical(a), *cb = map_canonical(b);
	ok(ca && cb && !strcmp(ca, cb), "key order does not change the canonical text");
	free(ca);
	free(cb);
	json_decref(a);
	json_decref(b);
	json_t *s = json_string("plain");
	c = map_canonical(s);
	is_str(c, "\"plain\"", "a bare string has a canonical text (result[0] may be one)");
	free(c);
	json_decref(s);
	ok(map_canonical(NULL) == NULL, "no value, no text");
	s = json_string("a\"b\\c\x01\t\xc3\xa9");
	c = map_canonical(s);
	is_str(c, "\"a\\\"b\\\\c\\u0001\\t\xc3\xa9\"",
	       "canonical strings escape quotes, backslashes and controls, keep UTF-8");
	free(c);
	json_decref(s);

	/* deeper than any parser would build: refused, not a stack overflow */
	json_t *deep = json_array(), *cur = deep;
	for (int i = 0; i < 5000; i++) {
		json_t *n = json_array();
		json_array_append_new(cur, n);
		cur = n;
	}
	ok(map_canonical(deep) == NULL, "a value nested 5000 deep has no canonical text");
	json_decref(deep);
}

/* Writes text to dir/name. */
static void write_text(const char *dir, const char *name, const char *text)
{
	char *p = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
	free(p);
}

static void rm_dir(const char *dir, const char *const *names)
{
	for (size_t i = 0; names[i]; i++) {
		char *p = xasprintf("%s/%s", dir, names[i]);
		unlink(p);
		free(p);
	}
	rmdir(dir);
}

static const char transforms_map[] =
	"{\"lienthong_mapping\": 1, \"name\": \"t\", \"kind\": \"record\", \"key\": \"id\",\n"
	" \"fields\": {\n"
	"  \"id\": {\"from\": \"id\", \"transform\": [\"string\"]},\n"
	"  \"short\": {\"from\": \"text\", \"transform\": [{\"truncate\": 4}]},\n"
	"  \"when\": {\"from\": \"ts\", \"transform\": [{\"date\": {\"from\": \"yyyyMMddHHmmss\", "
	"\"to\": \"iso\"}}]},\n"
	"  \"back\": {\"from\": \"iso\", \"transform\": [{\"date\": {\"from\": \"iso\", \"to\": "
	"\"yyyyMMddHHmmss\"}}]},\n"
	"  \"day\": {\"from\": \"vn\", \"transform\": [{\"date\": {\"from\": \"dd/MM/yyyy\", "
	"\"to\": "
	"\"yyyy-MM-dd\"}}]},\n"
	"  \"ms\": {\"from\": \"ts\", \"transform\": [{\"date\": {\"from\": \"yyyyMMddHHmmss\", "
	"\"to\": \"epoch_ms\"}}]},\n"
	"  \"n\": {\"from\": \"n[]\", \"transform\": [\"number\"]},\n"
	"  \"i\": {\"from\": \"i[]\", \"transform\": [\"int\"]},\n"
	"  \"s\": {\"from\": \"s[]\", \"transform\": [\"string\"]},\n"
	"  \"first\": {\"from\": \"list[]\", \"transform\": [\"first\"]},\n"
	"  \"none\": {\"from\": \"empty[]\", \"transform\": [\"first\"], \"default\": \"d\"},\n"
	"  \"uniq\": {\"from\": \"list[]\", \"transform\": [\"unique\"]},\n"
	"  \"sorted\": {\"from\": \"list[]\", \"transform\": [\"sort\"]},\n"
	"  \"code\": {\"from\": \"code\", \"transform\": [{\"split_code\": 2}]},\n"
	"  \"up\": {\"from\": \"name\", \"transform\": [\"upper\"]},\n"
	"  \"low\": {\"from\": \"name\", \"transform\": [\"lower\", \"trim\"]},\n"
	"  \"lvl\": {\"from\": \"levels[]\", \"transform\": [{\"lookup\": \"lv\"}, \"unique\"]},\n"
	"  \"opt\": {\"from\": \"missing\"},\n"
	"  \"dflt\": {\"from\": \"missing\", \"default\": [\"x\"]},\n"
	"  \"nul\": {\"from\": \"nul\", \"default\": 0},\n"
	"  \"const\": {\"constant\": {\"a\": [1]}},\n"
	"  \"obj\": {\"fields\": {\"copy\": {\"from\": \"code\"}}},\n"
	"  \"rows\": {\"each\": \"rows\", \"fields\": {\"v\": {\"from\": \"v\", \"required\": "
	"true, \"transform\": [\"int\"]}}}\n"
	" }}\n";

static const char transforms_table[] =
	"{\"lienthong_mapping\": 1, \"name\": \"lv\", \"kind\": \"codes\", \"normalize\": "
	"[\"trim\", \"upper\"],\n"
	" \"entries\": [\n"
	"  {\"from\": \"1\", \"to\": \"one\"},\n"
	"  {\"from\": \"a\", \"to\": {\"obj\": true}, \"valid_to\": \"2025-06-30\"},\n"
	"  {\"from\": \"A\", \"to\": null, \"valid_from\": \"2025-07-01\"},\n"
	"  {\"from\": \"s\", \"ambiguous\": [\"x\", \"y\"]}\n"
	" ]}\n";

static void test_transforms(void)
{
	char dir[] = "/tmp/test_mapping.XXXXXX";
	static const char *const files[] = {"t.json", "lv.json", NULL};
	struct conf_errors errs = {0};
	struct map_set *s = NULL;
	if (!mkdtemp(dir)) {
		ok(0, "mkdtemp");
		return;
	}
	write_text(dir, "t.json", transforms_map);
	write_text(dir, "lv.json", transforms_table);
	is_int(map_set_load(dir, &s, &errs), 0, "a scratch map using every transform loads");
	for (size_t i = 0; i < errs.n; i++)
		printf("#   %s\n", errs.msgs[i]);
	conf_errors_free(&errs);
	const struct map_record *m = map_record_find(s, "t");
	const struct map_table *lv = map_table_find(s, "lv");

	json_t *src = json_loads(
		"{\"id\": 42, \"text\": \"Vie\xcc\xa3\xcc\x82t Nam\", \"ts\": \"20261127113306\","
		" \"iso\": \"2026-11-27T04:33:06Z\", \"vn\": \"1/7/2025\","
		" \"n\": [\"0,5\", \"03\", 15, 2.0, \" 1.25 \", \"-4\", 9007199254740993],"
		" \"i\": [\"1\", \" 2 \", 3, 4.0, \"+5\"], \"s\": [\"a\", 7, 0.25],"
		" \"list\": [\"b\", \"a\", \"b\", 2, 1, [1], null],"
		" \"empty\": [], \"code\": \"1.001193.000.00.00.H31\","
		" \"name\": \"  \xc4\x90\xe1\xbb\x93ng Vi\xe1\xbb\x87t  \","
		" \"levels\": [\" 1\", 1, \"1 \"],"
		" \"nul\": null, \"rows\": [{\"v\": \"7\"}, {\"v\": 8}]}",
		0, NULL);
	json_t *out = NULL, *problems = NULL, *notes = NULL;
	is_int(map_apply_notes(m, src, AT_2026_11_27, &out, &problems, &notes), 0,
	       "the scratch record maps");
	if (problems)
		show("problems", problems);
	ok(same(json_incref(out),
		"{\"id\": \"42\", \"short\": \"Vi\", \"when\": \"2026-11-27T11:33:06+07:00\","
		" \"back\": \"20261127113306\", \"day\": \"2025-07-01\", \"ms\": 1795753986000,"
		" \"n\": [0.5, 3, 15, 2, 1.25, -4, 9007199254740993],"
		" \"i\": [1, 2, 3, 4, 5], \"s\": [\"a\", \"7\", \"0.25\"],"
		" \"first\": \"b\", \"none\": \"d\","
		" \"uniq\": [\"b\", \"a\", 2, 1, [1], null],"
		" \"sorted\": [null, 1, 2, \"a\", \"b\", \"b\", [1]],"
		" \"code\": \"1.001193\","
		" \"up\": \"  \xc4\x90\xe1\xbb\x92NG VI\xe1\xbb\x86T  \","
		" \"low\": \"\xc4\x91\xe1\xbb\x93ng vi\xe1\xbb\x87t\","
		" \"lvl\": [\"one\"], \"dflt\": [\"x\"], \"nul\": 0, \"const\": {\"a\": [1]},"
		" \"obj\": {\"copy\": \"1.001193.000.00.00.H31\"},"
		" \"rows\": [{\"v\": 7}, {\"v\": 8}]}"),
	   "every transform gives what docs/mappings.md says");
	ok(same(json_incref(notes), "[{\"field\": \"short\", \"note\": \"truncated to 2 of 10 "
				    "characters\"}]"),
	   "truncate leaves a note; NFD 'Viet' at 4 keeps 'Vi' (the accented e is 3 code points)");
	ok(json_object_get(out, "opt") == NULL, "an optional absent field is left out");
	json_decref(out);
	json_decref(notes);
	json_decref(src);

	/* problems, each with its field and reason */
	src = json_loads(
		"{\"id\": true, \"text\": 5, \"ts\": \"2026-02-30\", \"iso\": \"yesterday\","
		" \"vn\": \"31/02/2025\", \"n\": [\"1.2.3\", \"x\"], \"i\": [\"1.5\", 2.5, [1]],"
		" \"code\": \"1\", \"name\": 3, \"levels\": [\"9\", \"s\", \"a\", 1.5],"
		" \"rows\": [{\"x\": 1}, 5, {\"v\": \"x\"}]}",
		0, NULL);
	is_int(map_apply_notes(m, src, AT_2026_11_27, &out, &problems, &notes), 1,
	       "a record of wrong values fails");
	static const char *const want[][2] = {
		{"id", "expected text or a number, got a boolean"},
		{"short", "expected text, got a number (truncate)"},
		{"when", "'2026-02-30' is not a date in format yyyyMMddHHmmss"},
		{"back", "'yesterday' is not a date in format iso"},
		{"day", "'31/02/2025' is not a date in format dd/MM/yyyy"},
		{"ms", "'2026-02-30' is not a date in format yyyyMMddHHmmss"},
		{"n[0]", "'1.2.3' is not a number"},
		{"n[1]", "'x' is not a number"},
		{"i[0]", "'1.5' is not an integer"},
		{"i[1]", "2.5 is not an integer"},
		{"i[2]", "expected one value, got a list (int)"},
		{"code", "'1' does not have 2 dot-separated parts"},
		{"up", "expected text, got a number (upper)"},
		{"low", "expected text, got a number (lower)"},
		{"lvl[0]", "unknown code '9' in table lv (valid at 2026-11-27)"},
		{"lvl[1]", "code 's' in table lv has no single value at 2026-11-27: one of "
			   "[\"x\",\"y\"]"},
		{"lvl[3]", "expected a code, got a number"},
		{"rows[0].v", "missing: no value at rows[0].v"},
		{"rows[1]", "expected an object at rows[1], got a number"},
		{"rows[2].v", "'x' is not an integer"},
	};
	ok(problems_are(problems, want, LT_ARRAY_SIZE(want)),
	   "every failing transform reports its field and a readable reason");
	ok(out == NULL, "nothing comes out");
	json_decref(problems);
	json_decref(notes);
	json_decref(src);

	/* a code whose value is null counts as absent: the default applies */
	src = json_loads("{\"levels\": [\"a\"]}", 0, NULL);
	json_t *o2 = apply_ok(m, src, AT_2025_06_01);
	ok(o2 && same(json_incref(json_object_get(o2, "lvl")), "[{\"obj\": true}]"),
	   "a code table value may be any JSON (an object here)");
	json_decref(o2);
	o2 = apply_ok(m, src, AT_2025_08_01);
	ok(o2 && same(json_incref(json_object_get(o2, "lvl")), "[null]"),
	   "an element looked up to null stays in the list");
	json_decref(o2);
	json_decref(src);

	const json_t *v = NULL;
	is_int(map_lookup(lv, " 1 ", AT_2026_11_27, &v), 0, "map_lookup applies normalize");
	is_str(json_string_value(v), "one", "map_lookup gives the entry's value");
	is_int(map_lookup(lv, "s", AT_2026_11_27, &v), 1, "an ambiguous entry has no single value");
	is_int(map_lookup(lv, "A", AT_2025_06_01, &v), 0, "a code before its change");
	ok(json_is_object(v), "an entry's value may be an object");
	is_int(map_lookup(lv, "A", AT_2025_08_01, &v), 0, "a code after its change");
	ok(json_is_null(v), "the new entry's value is null");
	is_int(map_lookup(NULL, "1", 0, &v), 1, "no table: unknown");
	is_int(map_lookup(lv, NULL, 0, &v), 1, "no code: unknown");

	is_int(map_apply(NULL, src, 0, &out, &problems), -EINVAL, "no map is an error");
	map_set_free(s);
	rm_dir(dir, files);
}

static void test_lookups(const struct map_set *s)
{
	const struct map_table *tu = map_table_find(s, "time-unit");
	static const char *const units[][2] = {
		{"Ngày làm việc", "ngay_lam_viec"},
		{"ngày làm việc", "ngay_lam_viec"},
		{" Ngày làm việc ", "ngay_lam_viec"},
		{"NGÀY LÀM VIỆC", "ngay_lam_viec"},
		{"Nga\xcc\x80y la\xcc\x80m vie\xcc\xa3\xcc\x82\x63", "ngay_lam_viec"}, /* NFD */
		{"Ngày", "ngay"},
		{"Giờ", "gio"},
		{"Tháng", "thang"},
		{"\xc2\xa0tháng\t", "thang"},
	};
	const json_t *v;
	for (size_t i = 0; i < LT_ARRAY_SIZE(units); i++) {
		v = NULL;
		ok(map_lookup(tu, units[i][0], 0, &v) == 0 && v &&
			   !strcmp(json_string_value(v), units[i][1]),
		   "time-unit: '%s' -> %s", units[i][0], units[i][1]);
	}
	is_int(map_lookup(tu, "tuần", 0, &v), 1, "time-unit: 'tuần' (week) is unknown");
	is_int(map_lookup(tu, "", 0, &v), 1, "time-unit: empty text is unknown");

	const struct map_table *ag = map_table_find(s, "agency");
	is_int(map_lookup(ag, "000.00.15.H31", AT_2024_06_01, &v), 0,
	       "agency 000.00.15.H31 (Sở KH&ĐT) is valid in 2024");
	is_str(json_string_value(v), "SKHDT", "and maps to SKHDT");
	is_int(map_lookup(ag, "000.00.15.H31", AT_2026_11_27, &v), 1,
	       "agency 000.00.15.H31 is unknown in 2026");
	is_int(map_lookup(ag, "000.00.15.H31", 1740761999000LL, &v), 0,
	       "000.00.15.H31 is valid on 2025-02-28 23:59:59 in Hanoi");
	is_int(map_lookup(ag, "000.00.15.H31", 1740762000000LL, &v), 1,
	       "000.00.15.H31 is not valid from 2025-03-01 00:00 in Hanoi");
	is_int(map_lookup(ag, "000.00.06.H31", 1740761999000LL, &v), 1,
	       "000.00.06.H31 (Sở NN&MT) does not exist before 2025-03-01");
	is_int(map_lookup(ag, "000.00.06.H31", 1740762000000LL, &v), 0,
	       "000.00.06.H31 exists from 2025-03-01 00:00 in Hanoi");
	is_str(json_string_value(v), "SNNMT", "and maps to SNNMT");
	is_int(map_lookup(ag, "000.00.00.H31", 0, &v), 0, "lookups at 0 are at the current time");
	is_str(json_string_value(v), "UBND-TINH", "000.00.00.H31 is the provincial UBND");

	const struct map_table *lv = map_table_find(s, "level");
	ok(map_lookup(lv, "2", 0, &v) == 0 && !strcmp(json_string_value(v), "huyen"),
	   "level 2 (district) still maps: old records keep it");
	is_int(map_lookup(lv, "4", 0, &v), 1, "level 4 does not exist");

	const struct map_table *cm = map_table_find(s, "commune-hung-yen-2025");
	ok(map_lookup(cm, "11956", AT_2025_06_01, &v) == 0 &&
		   !strcmp(json_string_value(v), "11953"),
	   "commune: old 11956 (Phường An Tảo) -> 11953 (Phường Phố Hiến) on 2025-06-01");
	is_int(map_lookup(cm, "11956", AT_2025_08_01, &v), 1,
	       "commune: old 11956 is unknown on 2025-08-01");
	ok(map_lookup(cm, "11953", AT_2025_06_01, &v) == 0 &&
		   !strcmp(json_string_value(v), "11953"),
	   "commune: old 11953 (Phường Hiến Nam) -> 11953 before the reform");
	ok(map_lookup(cm, "11953", AT_2025_08_01, &v) == 0 &&
		   !strcmp(json_string_value(v), "11953"),
	   "commune: new 11953 -> itself after the reform");
	ok(map_lookup(cm, "13273", AT_2025_06_01, &v) == 0 &&
		   !strcmp(json_string_value(v), "13279"),
	   "commune: a Thái Bình commune (13273 Vũ Tiến) -> 13279 Vũ Tiên");
	is_int(map_lookup(cm, "12322", AT_2025_06_01, &v), 1,
	       "commune: old 12322, split between two new communes, has no single new code");
	ok(map_lookup(cm, "12322", AT_2025_08_01, &v) == 0 &&
		   !strcmp(json_string_value(v), "12322"),
	   "commune: 12322 as a new code (Xã Hiệp Cường) after the reform");
	is_int(map_lookup(cm, "99999", AT_2025_06_01, &v), 1, "commune: an unknown code");
}

/* ---- load errors --------------------------------------------------------- */

static void test_load_errors(void)
{
#define B FIX "bad/"
	static const char *const want[] = {
		B "a-syntax.json:5:11: '}' expected near '\"entries\"'",
		B "b-record.json:5: descripton: unknown key 'descripton' in a field map",
		B "b-record.json:6: key: 'noSuchField' is not a field of the map",
		B "b-record.json:7: entries: 'entries' belongs to a code table, not a field map",
		B "b-record.json:9: fields.a.requird: unknown key 'requird' in a field (expected "
		  "from, constant, each, within, fields, required, required_when, as_list, "
		  "default, transform, note)",
		B "b-record.json:10: fields.b.transform[1]: unknown transform 'nfd' (known: trim, "
		  "nfc, "
		  "lower, upper, int, number, money, string, unique, sort, first, split_code, "
		  "truncate, lookup, date, id_type)",
		B "b-record.json:11: fields.c.transform[0].truncate: truncate takes a whole number "
		  "from 1 to 1000000, got 0",
		B "b-record.json:11: fields.c.transform[1].split_code: split_code takes a whole "
		  "number "
		  "from 1 to 32, got '2'",
		B "b-record.json:12: fields.d.from: bad path: 'D[x].E': '[' must be followed by "
		  "digits "
		  "(at most 9) or nothing, then ']'",
		B "b-record.json:14: fields.f.default: required and default exclude each other "
		  "(with a "
		  "default the field is never missing)",
		B "b-record.json:15: fields.g: from, constant, each and within exclude each other",
		B "b-record.json:16: fields.h.transform[0].date.to: unknown date format 'unix' "
		  "(known: "
		  "yyyyMMddHHmmss, yyyyMMdd, yyyy-MM-dd, dd/MM/yyyy, iso, epoch_ms)",
		B "b-record.json:17: fields.i.within: within picks one object: 'I[].J' has [] (use "
		  "each for a list)",
		B "b-record.json:18: fields.j.fields: missing: each needs fields",
		B "b-record.json:19: fields.k.transform[0]: transform 'lookup' needs an argument: "
		  "{\"lookup\": ...}",
		B "b-record.json:20: fields.l.transform[0]: transform 'trim' takes no argument: "
		  "write "
		  "it as \"trim\"",
		B
		"b-record.json:21: fields.m.n: a target field name is 1 to 128 bytes without '.', "
		"'[', ']' or control characters",
		B "b-record.json:24: fields.r.from: bad path: 'R.' ends with '.'",
		B "b-record.json:24: fields.r.required: required is true or false, got text",
		B "b-record.json:27: compare.fee: 'p[].soTien': no field 'soTien' in p",
		B "b-record.json:28: compare.name: 'zz': no field 'zz' in the map",
		B "b-record.json:29: compare.docs: 'p.q': p is a list: write p[] or p[N]",
		B "c-table.json:2: lienthong_mapping: unsupported format version 2 (this lienthong "
		  "reads 1)",
		B "c-table.json:5: normalize[1]: 'nfd' is not a text normalisation (trim, nfc, "
		  "lower, "
		  "upper)",
		B "c-table.json:6: fields: 'fields' belongs to a field map, not a code table",
		B
		"c-table.json:8: entries[0].valid_from: bad date '2025-02-30' (expected YYYY-MM-DD "
		"or null)",
		B "c-table.json:9: entries[1].valid_to: valid_to is before valid_from",
		B
		"c-table.json:10: entries[2].from: from is the code as text (1 to 256 bytes; write "
		"\"0\", not 0), got 0",
		B "c-table.json:12: entries[4]: code 'C' (from 2025-06-30) overlaps entries[3] on "
		  "line "
		  "11 (until 2025-06-30): validity must not overlap",
		B "c-table.json:13: entries[5].vaild_to: unknown key 'vaild_to' in an entry "
		  "(expected "
		  "from, to, ambiguous, valid_from, valid_to, note)",
		B "c-table.json:14: entries[6]: an entry needs to (or ambiguous)",
		B "c-table.json:15: entries[7]: code 'C' (from 2026-01-01) overlaps entries[4] on "
		  "line "
		  "12 (from 2025-06-30): validity must not overlap",
		B "e-duplicate.json:4: name: 'good-record' is already the name of " B
		  "d-good-record.json",
		B "f-missing.json:1: name: missing",
		B "f-missing.json:1: kind: missing: \"record\" (a field map) or \"codes\" (a code "
		  "table)",
		B "g-array.json:1: (top): a mapping file is one JSON object, got a list",
		B "h-duplicate-key.json:4:8: duplicate object key near '\"name\"'",
		B "b-record.json:13: fields.e.transform[0].lookup: no code table named "
		  "'no-such-table'",
		B "b-record.json:22: fields.o.transform[0].lookup: lookup needs a code table, not "
		  "the "
		  "field map 'good-record'",
		B "b-record.json:23: fields.p.fields.q.transform[1].lookup: no code table named "
		  "'missing-too'",
	};
#undef B
	struct conf_errors errs = {0};
	struct map_set *s = (struct map_set *)1;
	is_int(map_set_load(FIX "bad", &s, &errs), -EINVAL,
	       "a directory of broken files is refused");
	ok(s == NULL, "nothing is loaded from it");
	is_int(errs.n, LT_ARRAY_SIZE(want), "every error of every file is collected");
	size_t n = LT_MIN(errs.n, LT_ARRAY_SIZE(want));
	for (size_t i = 0; i < n; i++)
		is_str(errs.msgs[i], want[i], "load error %zu names file:line: field", i + 1);
	for (size_t i = n; i < errs.n; i++)
		printf("#   extra: %s\n", errs.msgs[i]);
	conf_errors_free(&errs);

	is_int(map_set_load(FIX "no-such-dir", &s, &errs), -ENOENT,
	       "a missing directory is an error");
	ok(errs.n == 1 &&
		   strstr(errs.msgs[0], FIX "no-such-dir: cannot open the mappings directory"),
	   "the error names the directory");
	conf_errors_free(&errs);
	is_int(map_set_load(FIX "bad", &s, NULL), -EINVAL, "errors may go nowhere (errs NULL)");

	/* an empty directory is a valid, empty set */
	char dir[] = "/tmp/test_mapping.XXXXXX";
	if (mkdtemp(dir)) {
		is_int(map_set_load(dir, &s, &errs), 0, "an empty directory loads");
		is_int(map_set_count(s), 0, "as an empty set");
		map_set_free(s);
		/* trailing slash in the directory name */
		char *slash = xasprintf("%s/", dir);
		write_text(dir, "x.json",
			   "{\"lienthong_mapping\": 1, \"name\": \"x\", \"kind\": "
			   "\"codes\",\n \"entries\": 3}\n");
		map_set_load(slash, &s, &errs);
		ok(errs.n == 1 && str_startswith(errs.msgs[0], dir) &&
			   strstr(errs.msgs[0],
				  "/x.json:2: entries: entries is a non-empty list") &&
			   !strstr(errs.msgs[0], "//"),
		   "a directory given with a trailing slash names files without '//'");
		free(slash);
		conf_errors_free(&errs);
		static const char *const files[] = {"x.json", NULL};
		rm_dir(dir, files);
	}
	map_set_free(NULL);
	is_int(map_set_count(NULL), 0, "a NULL set has no maps");
}

/* ---- truncate and UTF-8 -------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static bool valid_utf8(const char *s)
{
	utf8proc_int32_t cp;
	size_t len = strlen(s);
	for (size_t i = 0; i < len;) {
		utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
						      (utf8proc_ssize_t)(len - i), &cp);
		if (n <= 0)
			return false;
		i += (size_t)n;
	}
	return true;
}

static size_t cp_count(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

static void test_truncate(void)
{
	static const char *const pieces[] = {
		"a",
		" ",
		"\xc4\x90",
		"\xe1\xbb\x87",
		"e\xcc\xa3\xcc\x82",
		"\xe2\x82\xab",
		"\xf0\x9f\x87\xbb\xf0\x9f\x87\xb3",
		"\xf0\x9f\x98\x80",
		"\xef\xbb\xbf",
	};
	char dir[] = "/tmp/test_mapping.XXXXXX";
	static const char *const files[] = {"t.json", NULL};
	struct conf_errors errs = {0};
	struct map_set *s = NULL;
	if (!mkdtemp(dir)) {
		ok(0, "mkdtemp");
		return;
	}
	bool all_valid = true, all_short = true, all_prefix = true, cut_one = false;
	for (int n = 1; n <= 7; n++) {
		char *map = xasprintf("{\"lienthong_mapping\": 1, \"name\": \"t\", \"kind\": "
				      "\"record\", \"fields\": {\"t\": {\"from\": \"t\", "
				      "\"transform\": [{\"truncate\": %d}]}}}",
				      n);
		write_text(dir, "t.json", map);
		free(map);
		if (map_set_load(dir, &s, &errs)) {
			ok(0, "truncate map %d loads", n);
			break;
		}
		const struct map_record *m = map_record_find(s, "t");
		for (int k = 0; k < 300; k++) {
			char text[256] = "";
			size_t parts = next_rand() % 12;
			for (size_t p = 0; p < parts; p++)
				strcat(text, pieces[next_rand() % LT_ARRAY_SIZE(pieces)]);
			json_t *src = json_pack("{s:s}", "t", text), *out = NULL, *pr = NULL;
			if (map_apply(m, src, 0, &out, &pr) == 0) {
				const char *t = json_string_value(json_object_get(out, "t"));
				all_valid &= t && valid_utf8(t);
				all_short &= t && cp_count(t) <= (size_t)n;
				all_prefix &= t && !strncmp(t, text, strlen(t));
				cut_one |= t && strlen(t) < strlen(text);
			} else {
				all_valid = false;
			}
			json_decref(out);
			json_decref(pr);
			json_decref(src);
		}
		map_set_free(s);
		s = NULL;
	}
	ok(all_valid, "truncate always leaves valid UTF-8 (2100 random multi-byte texts)");
	ok(all_short, "truncate leaves at most N code points");
	ok(all_prefix, "truncate keeps a prefix of the text");
	ok(cut_one, "the random texts did get truncated");

	/* a letter and its combining accents are one character to cut around */
	write_text(dir, "t.json",
		   "{\"lienthong_mapping\": 1, \"name\": \"t\", \"kind\": "
		   "\"record\", \"fields\": {\"t\": {\"from\": \"t\", "
		   "\"transform\": [{\"truncate\": 3}]}}}");
	map_set_load(dir, &s, &errs);
	json_t *src = json_pack("{s:s}", "t", "Vie\xcc\xa3\xcc\x82t"), *out = NULL, *pr = NULL;
	map_apply(map_record_find(s, "t"), src, 0, &out, &pr);
	is_str(json_string_value(json_object_get(out, "t")), "Vi",
	       "truncate does not cut an NFD letter from its accents");
	json_decref(out);
	json_decref(src);
	map_set_free(s);
	conf_errors_free(&errs);
	rm_dir(dir, files);
}

/* ---- a mutation loop --------------------------------------------------- */

static json_t *random_value(int depth)
{
	switch (next_rand() % 12) {
	case 0: return json_null();
	case 1: return json_true();
	case 2: return json_integer((json_int_t)(next_rand() % 2000) - 1000);
	case 3: return json_real(-1.5e300);
	case 4: return json_string("");
	case 5: return json_string("abc");
	case 6: return json_string("\xcc\x81\xcc\x81 8.000,5 Ngày");
	case 7: {
		size_t n = 100000 + next_rand() % 100000;
		char *big = xmalloc(n + 1);
		for (size_t i = 0; i < n; i++)
			big[i] = (char)('0' + next_rand() % 10);
		big[n] = '\0';
		json_t *s = json_string(big);
		free(big);
		return s;
	}
	case 8: return json_array();
	case 9: return json_object();
	case 10: {
		json_t *a = json_array(), *cur = a;
		for (int i = 0; i < 200; i++) {
			json_t *n = json_array();
			json_array_append_new(cur, n);
			cur = n;
		}
		return a;
	}
	default:
		if (depth > 2)
			return json_integer(1);
		json_t *o = json_object();
		json_object_set_new(o, "SOTIEN", random_value(depth + 1));
		json_object_set_new(o, "GIAYTO", random_value(depth + 1));
		return o;
	}
}

/* Replaces, drops or adds at a random place of j (an object or array). */
static void mutate(json_t *j, int depth)
{
	size_t n = json_is_object(j) ? json_object_size(j) : json_array_size(j);
	if (!n)
		return;
	size_t pick = next_rand() % n, i = 0;
	const char *key = NULL;
	json_t *child = NULL, *v;
	if (json_is_object(j)) {
		json_object_foreach (j, key, v) {
			if (i++ == pick)
				break;
		}
		child = json_object_get(j, key);
	} else {
		child = json_array_get(j, pick);
	}
	unsigned op = next_rand() % 10;
	if ((json_is_object(child) || json_is_array(child)) && op < 6 && depth < 20) {
		mutate(child, depth + 1);
	} else if (op < 8) {
		if (key)
			json_object_set_new(j, key, random_value(0));
		else
			json_array_set_new(j, pick, random_value(0));
	} else if (key) {
		json_object_del(j, key);
	} else {
		json_array_remove(j, pick);
	}
}

static void test_mutations(const struct map_set *s)
{
	const struct map_record *m = map_record_find(s, "procedure");
	json_t *base[2] = {load_json(FIX "national-1.json"), load_json(FIX "national-2.json")};
	int n_ok = 0, n_fail = 0, n_bad = 0;
	for (int k = 0; k < 3000; k++) {
		json_t *rec = json_deep_copy(base[k % 2]);
		int muts = 1 + (int)(next_rand() % 5);
		for (int i = 0; i < muts; i++)
			mutate(rec, 0);
		json_t *out = NULL, *problems = NULL, *notes = NULL;
		int r = map_apply_notes(m, rec, (int64_t)(next_rand() % 2000000000000ULL), &out,
					&problems, &notes);
		char *canon = map_canonical(rec);
		if (r == 0 && json_is_object(out) && !problems && canon) {
			n_ok++;
		} else if (r == 1 && !out && json_array_size(problems) > 0 && canon) {
			size_t i;
			json_t *p;
			json_array_foreach (problems, i, p) {
				if (!json_is_string(json_object_get(p, "field")) ||
				    !json_is_string(json_object_get(p, "reason")))
					n_bad++;
			}
			n_fail++;
		} else {
			n_bad++;
		}
		free(canon);
		json_decref(out);
		json_decref(problems);
		json_decref(notes);
		json_decref(rec);
	}
	printf("# mutations: %d mapped, %d with problems\n", n_ok, n_fail);
	is_int(n_bad, 0, "3000 mutated records: each maps or gives well-formed problems, no crash");
	ok(n_ok > 0 && n_fail > 0, "the mutations produced both outcomes");
	json_decref(base[0]);
	json_decref(base[1]);
}

int main(void)
{
	test_jsonpos();
	test_path_get();
	test_money();
	test_vn_time();
	test_canonical();
	struct map_set *s = load_real();
	if (s) {
		test_real_set(s);
		test_procedure_fixtures(s);
		test_nfc(s);
		test_unmappable(s);
		test_lookups(s);
		test_mutations(s);
	}
	map_set_free(s);
	test_transforms();
	test_truncate();
	test_load_errors();
	return tap_done();
}
