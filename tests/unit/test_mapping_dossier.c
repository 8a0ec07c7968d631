/*
 * test_mapping_dossier: the mapping data of the dossier flow (mappings/
 * dossier.json, progress.json, dossier-status.json, unit.json) against
 * realistic changes of the provincial feed and the national JSON they must
 * become (tests/fixtures/mappings/dossier/case-*.json, broken-*.json), the
 * unit table against the tables it is generated from, and the engine's
 * additions these maps need: a map's own date for code-table validity,
 * required_when, as_list and the id_type transform (with their load
 * errors, word for word). A mutation loop applies both maps to thousands
 * of damaged changes (run under ASan/UBSan by make SAN=1).
 * Run from the repository root, like every unit test.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "mapping.h"
#include "tap.h"
#include "util.h"

#define FIX "tests/fixtures/mappings/dossier/"

/* Fixed mapping dates, Asia/Ho_Chi_Minh noon. */
#define AT_2026_11_27 1795755600000LL
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

/* got equals the JSON text want (NULL: nothing); shows both when not. Takes got. */
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

static struct map_set *load_dir(const char *dir)
{
	struct conf_errors errs = {0};
	struct map_set *s = NULL;
	int r = map_set_load(dir, &s, &errs);
	is_int(r, 0, "the mapping directory %s loads", dir);
	is_int(errs.n, 0, "%s loads without a single error", dir);
	for (size_t i = 0; i < errs.n; i++)
		printf("#   %s\n", errs.msgs[i]);
	conf_errors_free(&errs);
	return s;
}

/* ---- the real mapping files ------------------------------------------------ */

static void test_real_set(const struct map_set *s)
{
	const struct map_record *d = map_record_find(s, "dossier"),
				*p = map_record_find(s, "progress");
	ok(d && p, "the field maps 'dossier' and 'progress' are loaded");
	is_str(map_record_file(d), "mappings/dossier.json",
	       "dossier comes from mappings/dossier.json");
	is_str(map_record_key(d), "MaHoSo", "dossier headers are keyed by MaHoSo");
	is_str(map_record_key(p), "MaHoSo", "progress rows are keyed by MaHoSo");
	ok(map_table_find(s, "dossier-status") && map_table_find(s, "unit"),
	   "the code tables 'dossier-status' and 'unit' are loaded");
}

/* ---- the fixtures: changes and the national JSON they become --------------- */

static const char *const cases[] = {
	"case-normal.json",
	"case-pre-reform.json",
	"case-cmnd-online.json",
	"case-oversize.json",
	"broken-status.json",
	"broken-unit.json",
	"broken-old-unit-after-reform.json",
	"broken-split-commune.json",
	"broken-dates.json",
	"broken-date-format.json",
	"broken-id-length.json",
};

/*
 * Applies map m to the case's change as its "expect" says: {"header" or
 * "row": the exact national JSON, "notes": [...]} or {"problems": [...]},
 * each compared exactly (problems with field, reason and type).
 */
static void check_case(const struct map_record *m, const char *file, const char *what,
		       const json_t *change, int64_t at_ms, const json_t *expect,
		       const char *out_key)
{
	json_t *out = NULL, *problems = NULL, *notes = NULL;
	const json_t *want_out = json_object_get(expect, out_key),
		     *want_problems = json_object_get(expect, "problems"),
		     *want_notes = json_object_get(expect, "notes");
	int r = map_apply_notes(m, change, at_ms, &out, &problems, &notes);
	if (want_out) {
		is_int(r, 0, "%s: the %s maps", file, what);
		ok(out && json_equal(out, (json_t *)want_out),
		   "%s: the %s is exactly the expected national JSON", file, what);
		if (!out || !json_equal(out, (json_t *)want_out)) {
			show("got", out);
			show("want", want_out);
			show("problems", problems);
		}
		const char *first = out ? json_object_iter_key(json_object_iter(out)) : NULL;
		is_str(first, "MaHoSo", "%s: the %s starts with MaHoSo (the map's order)", file,
		       what);
		ok(want_notes && json_equal(notes, (json_t *)want_notes),
		   "%s: the %s's notes are exactly as expected", file, what);
		if (!want_notes || !json_equal(notes, (json_t *)want_notes))
			show("notes", notes);
	} else {
		is_int(r, 1, "%s: the %s cannot be mapped", file, what);
		ok(out == NULL, "%s: no %s comes out", file, what);
		ok(want_problems && json_equal(problems, (json_t *)want_problems),
		   "%s: the %s's problems are exactly as expected", file, what);
		if (!want_problems || !json_equal(problems, (json_t *)want_problems)) {
			show("got", problems);
			show("want", want_problems);
		}
	}
	json_decref(out);
	json_decref(problems);
	json_decref(notes);
}

static void test_cases(const struct map_set *s)
{
	const struct map_record *d = map_record_find(s, "dossier"),
				*p = map_record_find(s, "progress");
	for (size_t i = 0; i < LT_ARRAY_SIZE(cases); i++) {
		char *path = xasprintf(FIX "%s", cases[i]);
		json_t *c = load_json(path);
		int64_t at_ms = 0;
		ok(c && map_parse_vn_time(json_string_value(json_object_get(c, "at")), &at_ms) == 0,
		   "%s: a case with a change, a mapping date and what it must give", cases[i]);
		const json_t *change = json_object_get(c, "change");
		check_case(d, cases[i], "header", change, at_ms, json_object_get(c, "dossier"),
			   "header");
		check_case(p, cases[i], "progress row", change, at_ms,
			   json_object_get(c, "progress"), "row");
		json_decref(c);
		free(path);
	}
}

/* ---- the dossier's own date -------------------------------------------------- */

static json_t *apply_one(const struct map_record *m, const json_t *src, int64_t at_ms,
			 const char *field, json_t **problems)
{
	json_t *out = NULL;
	*problems = NULL;
	if (map_apply(m, src, at_ms, &out, problems) != 0)
		return NULL;
	json_t *v = json_incref(json_object_get(out, field));
	json_decref(out);
	return v;
}

static void test_dossier_date(const struct map_set *s)
{
	const struct map_record *d = map_record_find(s, "dossier");
	const struct map_table *unit = map_table_find(s, "unit");
	const json_t *v = NULL;
	json_t *c = load_json(FIX "case-pre-reform.json"), *problems = NULL;
	json_t *change = json_deep_copy(json_object_get(c, "change"));
	json_t *hoso = json_object_get(change, "hoSo");

	is_int(map_lookup(unit, "UBND-11956", AT_2026_11_27, &v), 1,
	       "the old Phường An Tảo (UBND-11956) is no unit at the 2026 mapping date...");
	ok(same(apply_one(d, change, AT_2026_11_27, "DonViXuLy", &problems), "\"H31.11953\""),
	   "...yet its dossier of 2025-05-10 maps to the agency of Phường Phố Hiến (the map's "
	   "date is the dossier's)");
	json_decref(problems);

	/* not accepted yet: the submission date */
	json_object_set_new(change, "trangThai", json_string("MOI_DANG_KY"));
	json_object_set_new(hoso, "ngayTiepNhan", json_null());
	ok(same(apply_one(d, change, AT_2026_11_27, "DonViXuLy", &problems), "\"H31.11953\""),
	   "without ngayTiepNhan the unit is judged at ngayNop (2025-05-09)");
	json_decref(problems);

	/* no date at all: the caller's */
	json_object_del(hoso, "ngayNop");
	ok(same(apply_one(d, change, AT_2026_11_27, "DonViXuLy", &problems), NULL) &&
		   same(json_incref(problems),
			"[{\"field\": \"DonViXuLy\", \"reason\": \"unknown code 'UBND-11956' in "
			"table unit (valid at 2026-11-27; the code is valid until 2025-06-30)\", "
			"\"type\": \"code\"}]"),
	   "without a dossier date the caller's date decides, and names itself in the problem");
	json_decref(problems);
	ok(same(apply_one(d, change, AT_2025_06_01, "DonViXuLy", &problems), "\"H31.11953\""),
	   "...so a caller's date before the reform maps the old unit");
	json_decref(problems);

	/* the offset counts: 17:30 UTC on 30 June is 00:30 on 1 July in Hanoi */
	json_object_set_new(change, "trangThai", json_string("DA_TIEP_NHAN"));
	json_object_set_new(hoso, "ngayTiepNhan", json_string("2025-06-30T17:30:00Z"));
	ok(same(apply_one(d, change, AT_2025_06_01, "DonViXuLy", &problems), NULL) &&
		   same(json_incref(problems),
			"[{\"field\": \"DonViXuLy\", \"reason\": \"unknown code 'UBND-11956' in "
			"table unit (valid at 2025-07-01; the code is valid until 2025-06-30)\", "
			"\"type\": \"code\"}]"),
	   "a reception at 2025-06-30T17:30Z is on 1 July in Hanoi: the old unit is gone");
	json_decref(problems);
	json_object_set_new(hoso, "donViXuLy", json_string("UBND-11953"));
	ok(same(apply_one(d, change, AT_2025_06_01, "NgayTiepNhan", &problems),
		"\"20250701003000\""),
	   "an ISO date in UTC is written in Hanoi time (yyyyMMddHHmmss)");
	json_decref(problems);
	json_object_set_new(hoso, "ngayTiepNhan", json_string("2025-06-30T23:59:59.999+07:00"));
	ok(same(apply_one(d, change, AT_2025_08_01, "NgayTiepNhan", &problems),
		"\"20250630235959\""),
	   "fractions of a second are dropped, not rounded into the next day");
	json_decref(problems);
	json_object_set_new(hoso, "ngayTiepNhan", json_string("2025-06-30T18:00-05:00"));
	ok(same(apply_one(d, change, AT_2025_08_01, "NgayTiepNhan", &problems),
		"\"20250701060000\""),
	   "an offset other than +07:00 (and no seconds) is converted");
	json_decref(problems);

	json_decref(change);
	json_decref(c);
}

/* ---- the code tables ------------------------------------------------------------ */

static void test_status_table(const struct map_set *s)
{
	static const char *const codes[] = {
		"MOI_DANG_KY",	   "DA_TIEP_NHAN",	 "TU_CHOI_TIEP_NHAN", "DANG_XU_LY",
		"YEU_CAU_BO_SUNG", "NGHIA_VU_TAI_CHINH", "CONG_DAN_RUT",      "DUNG_XU_LY",
		"DA_XU_LY_XONG",   "DA_TRA_KET_QUA",
	};
	const struct map_table *t = map_table_find(s, "dossier-status");
	bool all = true;
	for (size_t i = 0; i < LT_ARRAY_SIZE(codes); i++) {
		const json_t *v = NULL;
		all &= map_lookup(t, codes[i], AT_2026_11_27, &v) == 0 && json_is_integer(v) &&
		       json_integer_value(v) == (json_int_t)i + 1;
	}
	ok(all, "the ten provincial statuses of dossier-spec 2 map to the integers 1..10");
	const json_t *v = NULL;
	ok(map_lookup(t, " da_tiep_nhan ", AT_2026_11_27, &v) == 0 && json_integer_value(v) == 2,
	   "a status is looked up trimmed and in upper case");
	is_int(map_lookup(t, "CHO_PHE_DUYET", AT_2026_11_27, &v), 1,
	       "an unknown status is unknown");
	is_int(map_lookup(t, "DA_TIEP_NHAN", AT_2025_06_01, &v), 0,
	       "statuses have no validity dates");
}

/* The unit table is agency.json reversed plus the commune conversion, "UBND-" and "H31.". */
static void test_unit_table(const struct map_set *s)
{
	const struct map_table *unit = map_table_find(s, "unit");
	json_t *agency = load_json("mappings/agency.json"),
	       *commune = load_json("mappings/commune-hung-yen-2025.json"),
	       *file = load_json("mappings/unit.json");
	size_t i, n_agency = 0, n_commune = 0, bad = 0, n_new = 0, n_old = 0, n_amb = 0;
	json_t *e;

	json_array_foreach (json_object_get(agency, "entries"), i, e) {
		const char *nat = json_string_value(json_object_get(e, "from")),
			   *prov = json_string_value(json_object_get(e, "to"));
		const json_t *vf = json_object_get(e, "valid_from"),
			     *vt = json_object_get(e, "valid_to"), *v = NULL;
		/* a date inside the entry's validity, and one outside it when bounded */
		int64_t in = vf	  ? AT_2025_08_01
			     : vt ? AT_2025_06_01 - 120 * 86400000LL
				  : AT_2026_11_27;
		int64_t out = vf ? AT_2025_06_01 - 120 * 86400000LL : vt ? AT_2025_08_01 : 0;
		if (map_lookup(unit, prov, in, &v) || !json_is_string(v) ||
		    strcmp(json_string_value(v), nat))
			bad++;
		if (out && map_lookup(unit, prov, out, &v) != 1)
			bad++;
		n_agency++;
	}
	is_int(bad, 0,
	       "every department of agency.json maps back to its national id, with the "
	       "same validity");
	bad = 0;
	json_array_foreach (json_object_get(commune, "entries"), i, e) {
		const char *code = json_string_value(json_object_get(e, "from"));
		const json_t *to = json_object_get(e, "to"), *v = NULL;
		char *key = xasprintf("UBND-%s", code);
		bool after = json_object_get(e, "valid_from") != NULL;
		int r = map_lookup(unit, key, after ? AT_2025_08_01 : AT_2025_06_01, &v);
		if (!to) {
			n_amb++;
			bad += r != 1;
		} else {
			char *want = xasprintf("H31.%s", json_string_value(to));
			bad += r != 0 || !json_is_string(v) || strcmp(json_string_value(v), want);
			free(want);
			n_new += after;
			n_old += !after;
		}
		free(key);
		n_commune++;
	}
	is_int(bad, 0,
	       "every commune of the conversion maps as UBND-<code> -> H31.<new code> "
	       "at its dates; split ones are ambiguous");
	ok(n_new == 104 && n_old == 378 && n_amb == 3,
	   "104 new communes, 378 old ones with one successor, 3 split (got %zu, %zu, %zu)", n_new,
	   n_old, n_amb);
	is_int(json_array_size(json_object_get(file, "entries")), n_agency + n_commune,
	       "unit.json holds nothing else (%zu departments + %zu communes)", n_agency,
	       n_commune);

	const json_t *v = NULL;
	ok(map_lookup(unit, "UBND-12550", AT_2025_06_01, &v) == 0 &&
		   !strcmp(json_string_value(v), "H31.12526"),
	   "an old commune (Xã An Lễ, 12550) maps to its new commune's agency before the reform");
	is_int(map_lookup(unit, "UBND-12550", AT_2025_08_01, &v), 1, "...and to nothing after it");
	ok(map_lookup(unit, "UBND-11953", AT_2025_06_01, &v) == 0 &&
		   !strcmp(json_string_value(v), "H31.11953") &&
		   map_lookup(unit, "UBND-11953", AT_2025_08_01, &v) == 0 &&
		   !strcmp(json_string_value(v), "H31.11953"),
	   "a code kept by the new commune maps on both sides of the reform");
	is_int(map_lookup(unit, "UBND-12322", AT_2025_06_01, &v), 1,
	       "a split commune (Xã Ngọc Thanh) has no single agency");
	ok(map_lookup(unit, " STP ", AT_2026_11_27, &v) == 0 &&
		   !strcmp(json_string_value(v), "000.00.03.H31"),
	   "unit codes are trimmed");
	json_decref(agency);
	json_decref(commune);
	json_decref(file);
}

/* ---- the engine's additions ---------------------------------------------------- */

/* map_apply of JSON text: the output (NULL on problems), *problems set. */
static json_t *apply_text(const struct map_record *m, const char *src, int64_t at_ms,
			  json_t **problems)
{
	json_t *in = json_loads(src, 0, NULL), *out = NULL;
	*problems = NULL;
	if (!in)
		printf("# bad test JSON: %s\n", src);
	map_apply(m, in, at_ms, &out, problems);
	json_decref(in);
	return out;
}

/* Maps src and compares the output (want_out) or the problems (want_problems, [field, reason]). */
static bool maps_to(const struct map_record *m, const char *src, int64_t at_ms,
		    const char *want_out, const char *want_problems)
{
	json_t *problems = NULL, *out = apply_text(m, src, at_ms, &problems);
	bool eq;
	if (want_out) {
		eq = same(out, want_out);
		if (problems)
			show("problems", problems);
		eq &= problems == NULL;
	} else {
		/* drop "type": the cases above check it; here the reasons matter */
		size_t i;
		json_t *p;
		json_array_foreach (problems, i, p) {
			json_object_del(p, "type");
		}
		eq = same(json_incref(problems), want_problems) && !out;
		json_decref(out);
	}
	json_decref(problems);
	return eq;
}

static void test_map_date(const struct map_set *s)
{
	const struct map_record *m = map_record_find(s, "features");
	ok(maps_to(m, "{\"received\": \"20250610090000\", \"place\": \"A\", \"state\": \"new\"}",
		   AT_2026_11_27, "{\"place\": \"old-A\", \"people\": [], \"owner\": []}", NULL),
	   "the map's date (received) decides a code's validity, not the caller's");
	ok(maps_to(m,
		   "{\"received\": null, \"submitted\": \"20250610090000\", \"place\": \"A\", "
		   "\"state\": \"new\"}",
		   AT_2026_11_27, "{\"place\": \"old-A\", \"people\": [], \"owner\": []}", NULL),
	   "a null first path gives way to the next (submitted)");
	ok(maps_to(m, "{\"submitted\": 20250610090000, \"place\": \"A\", \"state\": \"new\"}",
		   AT_2026_11_27, "{\"place\": \"old-A\", \"people\": [], \"owner\": []}", NULL),
	   "a date is read in the map's format, here also as a 14-digit integer");
	ok(maps_to(m, "{\"place\": \"A\", \"state\": \"new\"}", AT_2026_11_27,
		   "{\"place\": \"new-A\", \"people\": [], \"owner\": []}", NULL),
	   "without a date in the record, the caller's date (2026)...");
	ok(maps_to(m, "{\"place\": \"A\", \"state\": \"new\"}", AT_2025_06_01,
		   "{\"place\": \"old-A\", \"people\": [], \"owner\": []}", NULL),
	   "...or 2025");
	ok(maps_to(m,
		   "{\"received\": \"2025-06-10\", \"submitted\": \"20250610090000\", \"place\": "
		   "\"A\", \"state\": \"new\"}",
		   AT_2026_11_27, NULL,
		   "[{\"field\": \"(date)\", \"reason\": \"'2025-06-10' at received is not a date "
		   "in format yyyyMMddHHmmss\"}]"),
	   "a record date in the wrong format is a problem, not a silent fall back");
	ok(maps_to(m, "{\"received\": true, \"state\": \"new\"}", AT_2026_11_27, NULL,
		   "[{\"field\": \"(date)\", \"reason\": \"true at received is not a date in "
		   "format yyyyMMddHHmmss\"}]"),
	   "a record date of the wrong type is a problem");
}

static void test_required_when(const struct map_set *s)
{
	const struct map_record *m = map_record_find(s, "features");
	ok(maps_to(m, "{\"state\": \"done\", \"accepted\": \"yes\"}", 0,
		   "{\"accepted\": \"yes\", \"people\": [], \"owner\": []}", NULL),
	   "required_when not_in: present, it maps");
	ok(maps_to(m, "{\"state\": \"done\"}", 0, NULL,
		   "[{\"field\": \"accepted\", \"reason\": \"missing: no value at accepted "
		   "(required as state is 'done')\"}]"),
	   "required_when not_in: a value outside the list makes the field required");
	ok(maps_to(m, "{\"state\": \"draft\"}", 0, "{\"people\": [], \"owner\": []}", NULL),
	   "required_when not_in: a value in the list leaves the field optional");
	ok(maps_to(m, "{\"state\": null}", 0, NULL,
		   "[{\"field\": \"accepted\", \"reason\": \"missing: no value at accepted "
		   "(required as state is absent)\"}]"),
	   "required_when not_in: an absent value is not in the list, so the field is required");
	ok(maps_to(m, "{\"state\": \"rejected\", \"accepted\": 1}", 0, NULL,
		   "[{\"field\": \"reason\", \"reason\": \"missing: no value at reason (required "
		   "as state is 'rejected')\"}]"),
	   "required_when in: a value in the list makes the field required");
	ok(maps_to(m, "{\"state\": 3, \"accepted\": 1}", 0, NULL,
		   "[{\"field\": \"reason\", \"reason\": \"missing: no value at reason (required "
		   "as state is 3)\"}]"),
	   "required_when in: numbers compare as numbers");
	ok(maps_to(m, "{\"state\": \"3\", \"accepted\": 1}", 0,
		   "{\"accepted\": 1, \"people\": [], \"owner\": []}", NULL),
	   "required_when in: the text '3' is not the number 3");
	ok(maps_to(m,
		   "{\"state\": \"new\", \"people\": [{\"name\": \"a\", \"contact\": 0}, "
		   "{\"name\": \"b\", \"contact\": 1}, {\"name\": \"c\", \"contact\": 1, "
		   "\"phone\": \"0912\"}]}",
		   0, NULL,
		   "[{\"field\": \"people[1].phone\", \"reason\": \"missing: no value at "
		   "people[1].phone (required as contact is 1)\"}]"),
	   "required_when inside each reads the element's own value");
}

static void test_as_list_and_id_type(const struct map_set *s)
{
	const struct map_record *m = map_record_find(s, "features"),
				*must = map_record_find(s, "must");
	ok(maps_to(m, "{\"state\": \"new\", \"person\": {\"id\": \"145209876\"}}", 0,
		   "{\"person\": [{\"kind\": 2, \"id\": \"145209876\"}], \"people\": [], "
		   "\"owner\": []}",
		   NULL),
	   "as_list: within's object becomes a list of one; id_type: 9 digits is a CMND (2)");
	ok(maps_to(m, "{\"state\": \"new\", \"person\": {\"name\": \"x\"}}", 0,
		   "{\"people\": [], \"owner\": []}", NULL),
	   "as_list: an object without any field is missing (left out), not [{}]");
	ok(maps_to(m, "{\"state\": \"new\", \"owner\": \"X\"}", 0,
		   "{\"people\": [], \"owner\": [{\"n\": \"X\"}]}", NULL),
	   "as_list on fields (no within): built from the same object");
	ok(maps_to(m, "{\"state\": \"new\", \"person\": {\"id\": \"1\"}}", 0, NULL,
		   "[{\"field\": \"person[0].kind\", \"reason\": \"a citizen id of 1 digit is not "
		   "a "
		   "CCCD (12 digits) or CMND (9 digits)\"}]"),
	   "as_list: a problem names the element [0]");
	ok(maps_to(must, "{\"must\": {\"x\": 5}}", 0, "{\"must\": [{\"x\": 5}]}", NULL),
	   "as_list required: an object with a field is the list of one");
	ok(maps_to(must, "{\"must\": {\"y\": 5}}", 0, NULL,
		   "[{\"field\": \"must\", \"reason\": \"missing: no value at must (none of its "
		   "fields)\"}]"),
	   "as_list required: an object without any field is a problem saying so");
	ok(maps_to(must, "{\"must\": [{\"x\": 5}]}", 0, NULL,
		   "[{\"field\": \"must\", \"reason\": \"expected an object at must, got a "
		   "list\"}]"),
	   "as_list takes an object, not a list (that is each)");

	ok(maps_to(m,
		   "{\"state\": \"new\", \"ids\": [\" 033092148215 \", \"145209876\", "
		   "\"1452098761\","
		   " \"0330921482x5\", \"\", \"０３３０９２１４８２１５\"]}",
		   0, NULL,
		   "[{\"field\": \"ids[2]\", \"reason\": \"a citizen id of 10 digits is not a CCCD "
		   "(12 digits) or CMND (9 digits)\"}, {\"field\": \"ids[3]\", \"reason\": \"a "
		   "citizen id with characters other than digits is not a CCCD (12 digits) or "
		   "CMND (9 digits)\"}, {\"field\": \"ids[4]\", \"reason\": \"an empty citizen id "
		   "is not a CCCD (12 digits) or CMND (9 digits)\"}, {\"field\": \"ids[5]\", "
		   "\"reason\": \"a citizen id with characters other than digits is not a CCCD "
		   "(12 digits) or CMND (9 digits)\"}]"),
	   "id_type: wrong lengths, letters, empty text and full-width digits are problems that "
	   "do not quote the id");
	ok(maps_to(m, "{\"state\": \"new\", \"ids\": [\" 033092148215 \", \"145209876\"]}", 0,
		   "{\"ids\": [1, 2], \"people\": [], \"owner\": []}", NULL),
	   "id_type: 12 digits is a CCCD (1), 9 digits a CMND (2), element by element");
	ok(maps_to(m, "{\"state\": \"new\", \"ids\": 33092148215}", 0, NULL,
		   "[{\"field\": \"ids\", \"reason\": \"expected text, got a number (trim)\"}]"),
	   "id_type: a number is refused (a CCCD's leading 0 would be lost)");
}

static void test_load_errors(void)
{
#define B FIX "bad/"
	static const char *const want[] = {
		B "a-date.json:6: date.from[0]: a record has one date: 'a[].b' has []",
		B "a-date.json:6: date.from[1]: a path is text like \"A.B\", \"A[].B\" or "
		  "\"A[0].B\", got a number",
		B "a-date.json:7: date.format: unknown date format 'unix' (known: yyyyMMddHHmmss, "
		  "yyyyMMdd, yyyy-MM-dd, dd/MM/yyyy, iso, epoch_ms)",
		B
		"a-date.json:8: date.formt: unknown key 'formt' in the map's date (expected from, "
		"format, note)",
		B "b-date-empty.json:5: date.format: missing (a date format: yyyyMMddHHmmss, "
		  "yyyyMMdd, yyyy-MM-dd, dd/MM/yyyy, iso, epoch_ms)",
		B
		"b-date-empty.json:5: date.from: missing: the path of the record's date (or a list "
		"of them)",
		B "c-date-text.json:5: date: date is {\"from\": PATH or [PATH, ...], \"format\": "
		  "FORMAT}, got text",
		B "d-date-many.json:5: date.note: note is text, got a number",
		B "d-date-many.json:5: date.from: from is a path or a list of 1 to 8 paths, got 9",
		B
		"e-when.json:6: fields.a.required_when: required_when is {\"path\": PATH, \"in\": "
		"[VALUES]} or {\"path\": PATH, \"not_in\": [VALUES]}, got text",
		B "e-when.json:7: fields.b.required_when: required_when takes one of in and not_in",
		B
		"e-when.json:8: fields.c.required_when.value: unknown key 'value' in required_when "
		"(expected path, in, not_in)",
		B "e-when.json:8: fields.c.required_when.path: missing: the path of the value the "
		  "requirement depends on",
		B "e-when.json:9: fields.d.required_when.path: required_when depends on one value: "
		  "'L[].s' has []",
		B
		"e-when.json:9: fields.d.required_when.not_in: not_in is a non-empty list of texts "
		"or numbers, got an empty list",
		B "e-when.json:10: fields.e.required_when.in: in is a non-empty list of texts or "
		  "numbers, got a list holding other values",
		B "e-when.json:11: fields.f.required_when: required and required_when exclude each "
		  "other",
		B "e-when.json:12: fields.g.required_when: required_when and default exclude each "
		  "other (with a default the field is never missing)",
		B "e-when.json:13: fields.h.required_when: a constant is never missing: "
		  "required_when does not apply",
		B "e-when.json:14: fields.i.as_list: as_list goes with within or fields (it makes "
		  "their object a list of one)",
		B "e-when.json:15: fields.j.as_list: as_list goes with within or fields (it makes "
		  "their object a list of one)",
		B "e-when.json:16: fields.k.as_list: as_list is true or false, got text",
		B "e-when.json:17: fields.l.transform[0]: transform 'id_type' takes no argument: "
		  "write it as \"id_type\"",
		B "e-when.json:20: compare.mx: 'm.x': m is a list: write m[] or m[N]",
		B "f-codes.json:5: date: 'date' belongs to a field map, not a code table",
	};
#undef B
	struct conf_errors errs = {0};
	struct map_set *s = (struct map_set *)1;
	is_int(map_set_load(FIX "bad", &s, &errs), -EINVAL,
	       "a directory of broken date, required_when, as_list and id_type uses is refused");
	ok(s == NULL, "nothing is loaded from it");
	is_int(errs.n, LT_ARRAY_SIZE(want), "every error of every file is collected");
	size_t n = LT_MIN(errs.n, LT_ARRAY_SIZE(want));
	for (size_t i = 0; i < n; i++)
		is_str(errs.msgs[i], want[i], "load error %zu names file:line: field", i + 1);
	for (size_t i = n; i < errs.n; i++)
		printf("#   extra: %s\n", errs.msgs[i]);
	conf_errors_free(&errs);
}

/* ---- damaged changes -------------------------------------------------------------- */

static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* A value of a random kind, sometimes huge or deeply nested. */
static json_t *junk(void)
{
	switch (next_rand() % 12) {
	case 0: return json_null();
	case 1: return json_true();
	case 2: return json_integer((json_int_t)next_rand());
	case 3: return json_real(-1.5e300);
	case 4: return json_string("");
	case 5: return json_string("2025-02-30T08:00:00+07:00");
	case 6: return json_string("\xe1\xbb\x87\xcc\x81 x");
	case 7: {
		char *big = xmalloc(100001);
		memset(big, 'a', 100000);
		big[100000] = '\0';
		json_t *j = json_string(big);
		free(big);
		return j;
	}
	case 8: return json_pack("[s, i, {}]", "UBND-11953", 5);
	case 9: {
		json_t *d = json_object();
		for (int i = 0; i < 200; i++)
			d = json_pack("{s:o}", "a", d);
		return d;
	}
	case 10: return json_string("000000000000");
	default: return json_object();
	}
}

/* Replaces a random member somewhere in j (objects and arrays, a few levels down). */
static void damage(json_t *j)
{
	for (int depth = 0; depth < 4; depth++) {
		if (json_is_object(j) && json_object_size(j)) {
			size_t k = next_rand() % json_object_size(j), i = 0;
			const char *key;
			json_t *v;
			json_object_foreach (j, key, v) {
				if (i++ != k)
					continue;
				if ((json_is_object(v) || json_is_array(v)) && next_rand() % 3) {
					j = v;
				} else {
					if (next_rand() % 5 == 0)
						json_object_del(j, key);
					else
						json_object_set_new(j, key, junk());
					return;
				}
				break;
			}
		} else if (json_is_array(j) && json_array_size(j)) {
			size_t k = next_rand() % json_array_size(j);
			json_t *v = json_array_get(j, k);
			if ((json_is_object(v) || json_is_array(v)) && next_rand() % 3)
				j = v;
			else {
				json_array_set_new(j, k, junk());
				return;
			}
		} else {
			return;
		}
	}
}

static bool well_formed(const json_t *problems)
{
	size_t i;
	const json_t *p;
	if (!json_is_array(problems) || !json_array_size(problems))
		return false;
	json_array_foreach (problems, i, p) {
		if (!json_is_string(json_object_get(p, "field")) ||
		    !json_is_string(json_object_get(p, "reason")))
			return false;
	}
	return true;
}

static void test_mutations(const struct map_set *s)
{
	const struct map_record *maps[2] = {map_record_find(s, "dossier"),
					    map_record_find(s, "progress")};
	json_t *base[3] = {load_json(FIX "case-normal.json"), load_json(FIX "case-pre-reform.json"),
			   load_json(FIX "case-cmnd-online.json")};
	int n_ok = 0, n_fail = 0, n_bad = 0;
	for (int i = 0; i < 3000; i++) {
		json_t *change = json_deep_copy(json_object_get(base[i % 3], "change"));
		int n = 1 + (int)(next_rand() % 4);
		for (int k = 0; k < n; k++)
			damage(change);
		for (int k = 0; k < 2; k++) {
			json_t *out = NULL, *problems = NULL, *notes = NULL;
			int r = map_apply_notes(maps[k], change, AT_2026_11_27, &out, &problems,
						&notes);
			if (r == 0 && json_is_object(out) && !problems && json_is_array(notes))
				n_ok++;
			else if (r == 1 && !out && well_formed(problems) && json_is_array(notes))
				n_fail++;
			else
				n_bad++;
			json_decref(out);
			json_decref(problems);
			json_decref(notes);
		}
		json_decref(change);
	}
	printf("# mutations: %d mapped, %d with problems\n", n_ok, n_fail);
	is_int(n_bad, 0, "6000 mappings of damaged changes: each maps or gives problems, no crash");
	ok(n_ok > 0 && n_fail > 0, "the damage produced both outcomes");
	for (int i = 0; i < 3; i++)
		json_decref(base[i]);
}

int main(void)
{
	struct map_set *s = load_dir("mappings");
	if (s) {
		test_real_set(s);
		test_cases(s);
		test_dossier_date(s);
		test_status_table(s);
		test_unit_table(s);
		test_mutations(s);
	}
	map_set_free(s);
	struct map_set *e = load_dir(FIX "engine");
	if (e) {
		test_map_date(e);
		test_required_when(e);
		test_as_list_and_id_type(e);
	}
	map_set_free(e);
	test_load_errors();
	return tap_done();
}
