/*
 * test_jsontext: jsontext's parser and dumper held side by side with jansson
 * 2.14, whose behaviour they promise to reproduce. Every check is
 * differential: a named table of texts for each rule, seeded generated
 * documents (Vietnamese, escapes, big and small numbers, nesting past the
 * limit), a mutation fuzz over those, and the dumper on trees built through
 * jansson's API. What jansson accepts must come out as the same tree (and
 * the same dump), what it refuses must be refused with a sane error.
 *
 * "test_jsontext --bench FILE" instead prints throughput figures for FILE,
 * jansson's and ours, without asserting anything.
 */
#include "jsontext.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "tap.h"
#include "util.h"

#define ANY	    JSON_DECODE_ANY
#define DUMP_FLAGS  (JSON_COMPACT | JSON_ENCODE_ANY)
#define DEPTH_LIMIT JSONTEXT_MAX_DEPTH

/* ---- seeded PRNG (splitmix64): the same documents on every run ------- */

/* Rounds of mutation over the generated corpus; raise it for a long fuzz. */
#ifndef FUZZ_ROUNDS
#define FUZZ_ROUNDS 150
#endif

/* TEST_JSONTEXT_SEED in the environment picks other documents. */
static uint64_t rng_state = 0x6a736f6e74657874ULL;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static size_t rnd_below(size_t n)
{
	return (size_t)(rnd() % n);
}

/* ---- comparing with jansson ------------------------------------------- */

/* A printable excerpt of a text for diagnostics (static buffer). */
static const char *show(const char *t, size_t n)
{
	static char out[400];
	size_t o = 0;
	for (size_t i = 0; i < n && o < sizeof(out) - 8; i++) {
		unsigned char c = (unsigned char)t[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, sizeof(out) - o, "\\x%02x", c);
	}
	if (o >= sizeof(out) - 8)
		o += (size_t)snprintf(out + o, sizeof(out) - o, "...");
	out[o] = '\0';
	return out;
}

/* Equal values and byte-identical jansson dumps (which also sees key order and -0.0). */
static bool same_tree(const json_t *a, const json_t *b)
{
	char *da, *db;
	bool same;

	if (!a || !b)
		return a == b;
	if (!json_equal((json_t *)a, (json_t *)b))
		return false;
	da = json_dumps(a, DUMP_FLAGS);
	db = json_dumps(b, DUMP_FLAGS);
	same = (da && db) ? strcmp(da, db) == 0 : da == db;
	free(da);
	free(db);
	return same;
}

/* jsontext_dumps(j) equals json_dumps(j, COMPACT|ENCODE_ANY), NULL included. */
static bool dumps_equal(const json_t *j)
{
	char *a = json_dumps(j, DUMP_FLAGS);
	size_t len = 0;
	char *b = jsontext_dumps(j, &len);
	bool same = (a && b) ? !strcmp(a, b) && len == strlen(a) : a == b;
	if (!same)
		printf("#   json_dumps %.200s\n#   jsontext   %.200s\n", a ? a : "(null)",
		       b ? b : "(null)");
	free(a);
	free(b);
	return same;
}

/* An error that names the problem on one line, within the text. */
static bool sane_error(const json_error_t *e, size_t n)
{
	return e->text[0] && !strchr(e->text, '\n') && !strcmp(e->source, "<text>") &&
	       e->line >= 1 && e->column >= 0 && e->position >= 0 && (size_t)e->position <= n;
}

/*
 * Parses t with json_loadb and jsontext_parse; on an accepted text also
 * holds jsontext_dumps against json_dumps. Returns true when everything
 * agrees; else why says what differs. *accepted tells jansson's verdict,
 * *mine_err gets our error.
 */
static bool agree(const char *t, size_t n, size_t flags, bool *accepted, json_error_t *mine_err,
		  char *why, size_t why_len)
{
	json_error_t je, me;
	json_t *ref = json_loadb(t, n, flags, &je);
	json_t *mine = jsontext_parse(t, n, flags, &me);
	bool ok = true;

	*accepted = ref != NULL;
	if (mine_err)
		*mine_err = me;
	if (!ref != !mine) {
		snprintf(why, why_len, "jansson %s (%s), jsontext %s (%s)",
			 ref ? "accepts" : "refuses", ref ? "" : je.text,
			 mine ? "accepts" : "refuses", mine ? "" : me.text);
		ok = false;
	} else if (ref) {
		char *d_ref = json_dumps(ref, DUMP_FLAGS);
		size_t d_len = 0;
		char *d_mine = jsontext_dumps(ref, &d_len);
		if (!same_tree(ref, mine)) {
			char *dm = json_dumps(mine, DUMP_FLAGS);
			snprintf(why, why_len, "trees differ: jansson %.150s / jsontext %.150s",
				 d_ref ? d_ref : "(null)", dm ? dm : "(null)");
			free(dm);
			ok = false;
		} else if (!d_ref || !d_mine || strcmp(d_ref, d_mine) || d_len != strlen(d_ref)) {
			snprintf(why, why_len, "dumps differ: json_dumps %.150s / jsontext %.150s",
				 d_ref ? d_ref : "(null)", d_mine ? d_mine : "(null)");
			ok = false;
		} else if (me.text[0] || me.position != (int)n) {
			snprintf(why, why_len, "accepted, yet err says '%s' at %d", me.text,
				 me.position);
			ok = false;
		}
		free(d_ref);
		free(d_mine);
	} else if (!sane_error(&me, n)) {
		snprintf(why, why_len, "insane error: '%s' line %d column %d position %d", me.text,
			 me.line, me.column, me.position);
		ok = false;
	}
	json_decref(ref);
	json_decref(mine);
	return ok;
}

/* ---- (1) the rules, one named text each ------------------------------- */

struct text_case {
	const char *name;
	const char *text;
	size_t len;
	size_t flags;
	bool accept; /* what jansson does (checked too) */
	int at;	     /* refused: offset of the offending byte (len at an early end) */
};

#define GOOD(name, text)                                                                           \
	{                                                                                          \
		name, text, sizeof(text) - 1, 0, true, -1                                          \
	}
#define GOOD_ANY(name, text)                                                                       \
	{                                                                                          \
		name, text, sizeof(text) - 1, ANY, true, -1                                        \
	}
#define BAD(name, text, at)                                                                        \
	{                                                                                          \
		name, text, sizeof(text) - 1, 0, false, at                                         \
	}
#define BAD_ANY(name, text, at)                                                                    \
	{                                                                                          \
		name, text, sizeof(text) - 1, ANY, false, at                                       \
	}

static const struct text_case cases[] = {
	/* structure and whitespace */
	GOOD("empty array", "[]"),
	GOOD("empty object", "{}"),
	GOOD("nested empty containers", "[[],{},[[]],{\"a\":{}}]"),
	GOOD("space, tab, CR and LF are whitespace everywhere",
	     " \t\r\n[ 1 ,\t{ \"a\" :\r\n[ ] } ]\n\t "),
	GOOD("object in array in object", "{\"a\":[{\"b\":[1,{\"c\":null}]}]}"),
	GOOD("mixed array", "[1,-2,3.5,\"x\",true,false,null,[],{}]"),
	GOOD("key order is insertion order", "{\"z\":1,\"a\":2,\"m\":3,\"b\":4}"),
	GOOD("duplicate key: last value wins at the first place", "{\"a\":1,\"b\":2,\"a\":3}"),
	GOOD("duplicate key replacing a container", "{\"a\":[1,2],\"a\":{\"x\":null},\"b\":0}"),
	GOOD("duplicate key inside nested object", "{\"o\":{\"k\":1,\"k\":[true]},\"o2\":{}}"),
	GOOD("many members (hash growth)",
	     "{\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,\"k8\":8,"
	     "\"k9\":9,\"k10\":10,\"k11\":11,\"k12\":12,\"k13\":13,\"k14\":14,\"k15\":15,"
	     "\"k16\":16,\"k17\":17}"),
	BAD("empty text", "", 0),
	BAD_ANY("empty text with JSON_DECODE_ANY", "", 0),
	BAD("only whitespace", " \n\t ", 4),
	BAD("a scalar at the top needs JSON_DECODE_ANY", "1", 0),
	BAD("a string at the top needs JSON_DECODE_ANY", "\"a\"", 0),
	BAD("true at the top needs JSON_DECODE_ANY", "true", 0),
	BAD("a byte order mark is refused", "\xef\xbb\xbf[]", 0),
	BAD_ANY("a byte order mark is refused with JSON_DECODE_ANY",
		"\xef\xbb\xbf"
		"1",
		0),
	BAD("garbage after the value", "[]x", 2),
	BAD("a second value", "[] []", 3),
	BAD("garbage after whitespace", "{} \n ,", 5),
	BAD("trailing comma in an array", "[1,]", 3),
	BAD("trailing comma in an object", "{\"a\":1,}", 7),
	BAD("missing comma", "[1 2]", 3),
	BAD("missing colon", "{\"a\" 1}", 5),
	BAD("a number as key", "{1:2}", 1),
	BAD("a bare word as key", "{a:1}", 1),
	BAD("an object as key", "{{}:1}", 1),
	BAD("single quotes", "['a']", 1),
	BAD("unclosed array", "[1", 2),
	BAD("unclosed array after comma", "[1,", 3),
	BAD("unclosed object", "{\"a\":1", 6),
	BAD("object ends after colon", "{\"a\":", 5),
	BAD("object ends after key", "{\"a\"", 4),
	BAD("object value missing", "{\"a\":}", 5),
	BAD_ANY("unexpected ']' at the top", "]", 0),
	BAD("unexpected '}' in an array", "[}", 1),
	BAD("unexpected ']' in an object", "{]", 1),
	BAD("colon in an array", "[1:2]", 2),
	BAD("comma first", "[,1]", 1),
	BAD("double comma", "[1,,2]", 3),
	BAD("vertical tab is not whitespace", "[\v]", 1),
	BAD("form feed is not whitespace", "[\f1]", 1),
	BAD("no-break space is not whitespace",
	    "[\xc2\xa0"
	    "1]",
	    1),
	BAD("comments are refused", "[1/*c*/]", 2),
	BAD("NUL byte outside a string", "[\0]", 1),
	GOOD("jansson drops one NUL right after a number", "[1\0,2.5\0,-0\0 ]"),
	GOOD("jansson drops one NUL right after a literal", "[true\0,false\0,null\0]"),
	GOOD_ANY("a NUL after a scalar at the top is dropped", "7\0"),
	BAD("two NULs after a number", "[1\0\0]", 3),
	BAD("a NUL after a string is refused", "[\"a\"\0]", 4),
	BAD("a NUL after whitespace is refused", "[1 \0]", 3),
	BAD("a NUL after a container is refused", "[]\0", 2),
	BAD("invalid UTF-8 outside a string", "[\xff]", 1),
	BAD("an error on a later line", "[1,\n  2,\n  ]", 11),
	BAD("column counts characters after Vietnamese text", "[\"Chứng\",\n\"thực\", x]", 22),

	/* scalars at the top with JSON_DECODE_ANY */
	GOOD_ANY("a string at the top", "\"x\""),
	GOOD_ANY("an integer at the top", "42"),
	GOOD_ANY("a real at the top", "4.5"),
	GOOD_ANY("true at the top", "true"),
	GOOD_ANY("false at the top", "false"),
	GOOD_ANY("null at the top", "null"),
	GOOD_ANY("a scalar with whitespace around", " \n 7 \t"),
	GOOD_ANY("an array with JSON_DECODE_ANY", "[1]"),
	BAD_ANY("two scalars", "1 2", 2),
	BAD_ANY("a scalar then garbage", "\"a\"b", 3),

	/* literals */
	BAD("truncated literal", "[tru]", 1),
	BAD("capitalised literal", "[True]", 1),
	BAD("literal with trailing letters", "[nulls]", 5),
	BAD("two literals glued", "[truefalse]", 5),
	BAD("literal cut by the end", "[nul", 1),
	BAD("Infinity is not JSON", "[Infinity]", 1),
	BAD("NaN is not JSON", "[NaN]", 1),

	/* integers */
	GOOD("zero", "[0]"),
	GOOD("-0 is the integer 0", "[-0]"),
	GOOD("json_int_t maximum", "[9223372036854775807]"),
	GOOD("json_int_t minimum", "[-9223372036854775808]"),
	GOOD("18 and 19 digit integers", "[999999999999999999,1000000000000000000]"),
	BAD("too big integer", "[9223372036854775808]", 1),
	BAD("too big negative integer", "[-9223372036854775809]", 1),
	BAD("20-digit integer", "[12345678901234567890]", 1),
	BAD("a long run of digits", "[100000000000000000000000000000000000000000]", 1),
	BAD("leading zero", "[01]", 2),
	BAD("leading zero after minus", "[-01]", 3),
	BAD("minus alone", "[-]", 2),
	BAD("minus at the end", "[-", 2),
	BAD("plus sign", "[+1]", 1),
	BAD("hex number", "[0x10]", 2),
	BAD("number then letters", "[1abc]", 2),
	BAD_ANY("minus then space", "- 1", 1),

	/* reals */
	GOOD("exponent makes a real", "[1e2]"),
	GOOD("capital E", "[1E2]"),
	GOOD("exponent with plus", "[1e+2]"),
	GOOD("negative exponent", "[1e-2]"),
	GOOD("fraction and exponent", "[1.5e-3]"),
	GOOD("-0.0 keeps its sign", "[-0.0]"),
	GOOD("zero with exponent", "[0e0,-0e-0,0.0E+0]"),
	GOOD("0.1 rounds as strtod does", "[0.1,0.2,0.3]"),
	GOOD("1e300", "[1e300]"),
	GOOD("largest double", "[1.7976931348623157e308]"),
	GOOD("smallest normal", "[2.2250738585072014e-308]"),
	GOOD("smallest subnormal", "[5e-324]"),
	GOOD("underflow to zero is kept", "[1e-400,-1e-400]"),
	GOOD("long mantissa", "[3.14159265358979323846264338327950288]"),
	GOOD("integral real beyond int64", "[12345678901234567890.0]"),
	GOOD("20 digits with exponent is a real", "[12345678901234567890e0]"),
	GOOD("2^53+1 rounds to even", "[9007199254740993.0,9007199254740995e0]"),
	GOOD("many fraction zeros", "[0.000000000000000000000000000001]"),
	GOOD("exponent with leading zeros", "[1e0005,1E-0005]"),
	GOOD("huge exponent on zero", "[0e99999,0.0e-99999]"),
	GOOD("huge negative exponent underflows", "[1e-99999]"),
	GOOD("1e22 and 1e23 (fast path edge)", "[1e22,1e23,9007199254740992e22]"),
	BAD("real overflow", "[1e309]", 1),
	BAD("negative real overflow", "[-1e400]", 1),
	BAD("real overflow by mantissa", "[1.8e308]", 1),
	BAD("huge exponent overflows", "[1e99999]", 1),
	BAD("fraction starts with a dot", "[.5]", 1),
	BAD("dot without digits", "[1.]", 3),
	BAD("dot then exponent", "[1.e5]", 3),
	BAD("exponent without digits", "[1e]", 3),
	BAD("exponent sign without digits", "[1e+]", 4),
	BAD("two dots", "[1.2.3]", 4),
	BAD("exponent then dot", "[1e2.5]", 4),

	/* strings */
	GOOD("plain ASCII string", "[\"hello\"]"),
	GOOD("empty string", "[\"\"]"),
	GOOD("all short escapes", "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]"),
	GOOD("\\u escapes in the BMP", "[\"\\u00e9\\u4e2d\\u20AC\\u0080\\u07FF\\u0800\"]"),
	GOOD("\\u escape of a control", "[\"\\u0001\\u001f\\u007F\"]"),
	GOOD("uppercase and lowercase hex", "[\"\\u00E9\\u00e9\\uABcd\"]"),
	GOOD("surrogate pair", "[\"\\uD83D\\uDE00\"]"),
	GOOD("lowercase surrogate pair", "[\"\\ud83d\\ude00\"]"),
	GOOD("highest code point by pair", "[\"\\uDBFF\\uDFFF\"]"),
	GOOD("U+FFFF by escape", "[\"\\uFFFF\\uFFFE\"]"),
	GOOD("raw U+2028 and U+2029", "[\"\xe2\x80\xa8\xe2\x80\xa9\"]"),
	GOOD("raw Vietnamese", "[\"Chứng thực chữ ký trong các giấy tờ, văn bản\"]"),
	GOOD("raw 4-byte UTF-8", "[\"\xf0\x9f\x98\x80\"]"),
	GOOD("raw highest code point", "[\"\xf4\x8f\xbf\xbf\"]"),
	GOOD("raw DEL", "[\"\x7f\"]"),
	GOOD("strings around the 8-byte scan", "[\"1234567\",\"12345678\",\"123456789\"]"),
	GOOD("escape on an 8-byte boundary", "[\"1234567\\n\",\"12345678\\t\",\"a\\u00e9b\"]"),
	GOOD("UTF-8 across an 8-byte boundary", "[\"123456ứ\",\"1234567ứ\",\"12345678ứ\"]"),
	GOOD("empty key", "{\"\":1}"),
	GOOD("escaped key", "{\"a\\nb\":1,\"\\u00e9\":2}"),
	GOOD("escaped keys waiting while an escaped value is read",
	     "{\"k\\t1\":\"v\\n1\",\"k\\t2\":[\"v\\n2\"]}"),
	GOOD("Vietnamese key", "{\"trạngThái\":\"ĐÃ TIẾP NHẬN\"}"),
	BAD("unclosed string", "[\"abc", 5),
	BAD("unclosed string in a key", "{\"a", 3),
	BAD("control character in a string", "[\"a\x01\"]", 3),
	BAD("raw newline in a string", "[\"a\nb\"]", 3),
	BAD("raw tab in a string", "[\"\t\"]", 2),
	BAD("NUL byte in a string", "[\"a\0\"]", 3),
	BAD("control character in a key", "{\"\x1f\":1}", 2),
	BAD("\\u0000 is not allowed", "[\"\\u0000\"]", 3),
	BAD("\\u0000 is not allowed in a key", "{\"\\u0000\":1}", 3),
	BAD("invalid escape \\x", "[\"\\x41\"]", 3),
	BAD("invalid escape \\U", "[\"\\U00e9\"]", 3),
	BAD("invalid escape \\'", "[\"\\'\"]", 3),
	BAD("backslash at the end of input", "[\"\\", 3),
	BAD("short \\u escape", "[\"\\u12\"]", 6),
	BAD("\\u escape with a non-hex digit", "[\"\\u12G4\"]", 6),
	BAD("\\u escape cut by the end", "[\"\\u12", 6),
	BAD("lone high surrogate", "[\"\\uD800\"]", 3),
	BAD("high surrogate then text", "[\"\\uD800abc\"]", 3),
	BAD("lone low surrogate", "[\"\\uDC00\"]", 3),
	BAD("two high surrogates", "[\"\\uD800\\uD800\"]", 9),
	BAD("high surrogate then BMP escape", "[\"\\uD800\\u0041\"]", 9),
	BAD("high surrogate then short escape", "[\"\\uD800\\n\"]", 3),
	BAD("reversed surrogate pair", "[\"\\uDC00\\uD800\"]", 3),
	BAD("high surrogate then bad hex", "[\"\\uD800\\uDZ00\"]", 11),
	GOOD("UTF-8 boundaries that are valid",
	     "[\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf\xf0\x90\x80\x80"
	     "\xf4\x8f\xbf\xbf\"]"),
	BAD("overlong 3-byte form at its edge", "[\"\xe0\x9f\xbf\"]", 2),
	BAD("overlong 4-byte form at its edge", "[\"\xf0\x8f\xbf\xbf\"]", 2),
	BAD("surrogate at its edge", "[\"\xed\xa0\x80\"]", 2),
	BAD("lone continuation byte", "[\"\x80\"]", 2),
	BAD("overlong 2-byte form", "[\"\xc0\xaf\"]", 2),
	BAD("overlong C1 form", "[\"\xc1\xbf\"]", 2),
	BAD("overlong 3-byte form", "[\"\xe0\x80\xaf\"]", 2),
	BAD("overlong 4-byte form", "[\"\xf0\x80\x80\xaf\"]", 2),
	BAD("UTF-8 encoded high surrogate", "[\"\xed\xa0\x80\"]", 2),
	BAD("UTF-8 encoded low surrogate", "[\"\xed\xbf\xbf\"]", 2),
	BAD("code point past U+10FFFF", "[\"\xf4\x90\x80\x80\"]", 2),
	BAD("F5 lead byte", "[\"\xf5\x80\x80\x80\"]", 2),
	BAD("FF byte", "[\"\xff\"]", 2),
	BAD("truncated 3-byte sequence", "[\"\xe1\x80\"]", 2),
	BAD("sequence cut by the end of input", "[\"\xe1\x80", 2),
	BAD("2-byte lead before ASCII",
	    "[\"\xc3"
	    "a\"]",
	    2),
	BAD("Latin-1 text", "[\"caf\xe9\"]", 5),
	BAD("invalid UTF-8 in a key", "{\"\xff\":1}", 2),
	BAD("invalid UTF-8 after 8 plain bytes", "[\"abcdefghij\xc3(\"]", 12),
};

static void test_table(void)
{
	for (size_t i = 0; i < LT_ARRAY_SIZE(cases); i++) {
		const struct text_case *c = &cases[i];
		char why[512] = "";
		json_error_t me;
		bool accepted;
		bool same = agree(c->text, c->len, c->flags, &accepted, &me, why, sizeof(why));
		bool expected = accepted == c->accept;
		bool placed = true;

		if (!accepted && c->at >= 0) {
			int line = 1;
			for (int k = 0; k < c->at; k++)
				line += c->text[k] == '\n';
			placed = (me.position == c->at || me.position == c->at + 1) &&
				 me.line == line;
		}
		ok(same && expected && placed, "%s: %s%s", c->accept ? "accepted" : "refused",
		   c->name, same ? "" : " (differs from json_loadb)");
		if (!same)
			printf("#   %s\n#   text: %s\n", why, show(c->text, c->len));
		if (!expected)
			printf("#   jansson %s it\n", accepted ? "accepts" : "refuses");
		if (!placed)
			printf("#   error '%s' at line %d column %d position %d; want offset %d\n",
			       me.text, me.line, me.column, me.position, c->at);
	}
}

static void test_messages(void)
{
	static const struct {
		const char *text;
		const char *want;
	} msgs[] = {
		{"[\"caf\xe9\"]", "invalid UTF-8 in a string"},
		{"[1,]", "unexpected ']'"},
		{"[9223372036854775808]", "too big integer"},
		{"[-9223372036854775809]", "too big negative integer"},
		{"[\"a\x01\"]", "control character"},
		{"[\"\\u0000\"]", "\\u0000 is not allowed"},
		{"[\"abc", "end of input in a string"},
		{"[] x", "garbage after the value"},
		{"[1e400]", "real number overflow"},
		{"[\"\\uD800\"]", "surrogate"},
		{"\xef\xbb\xbf[]", "byte order mark"},
	};
	json_error_t e;

	for (size_t i = 0; i < LT_ARRAY_SIZE(msgs); i++) {
		json_t *j = jsontext_parse(msgs[i].text, strlen(msgs[i].text), 0, &e);
		ok(!j && strstr(e.text, msgs[i].want), "the error names the problem: '%s'",
		   msgs[i].want);
		if (j || !strstr(e.text, msgs[i].want))
			printf("#   got '%s'\n", e.text);
		json_decref(j);
	}

	json_t *j = jsontext_parse("[1,\n2,\n  ]", 10, 0, &e);
	ok(!j && e.line == 3 && e.column == 3 && e.position == 10,
	   "line, column and position of an error on the third line");
	json_decref(j);

	j = jsontext_parse("[\"Chứng\", x]", strlen("[\"Chứng\", x]"), 0, &e);
	ok(!j && e.line == 1 && e.column == 11 && e.position == 13,
	   "column counts characters, position bytes");
	if (j || e.column != 11)
		printf("#   line %d column %d position %d\n", e.line, e.column, e.position);
	json_decref(j);

	ok(json_error_code(&e) == json_error_invalid_syntax, "the error code is jansson's");

	j = jsontext_parse("[1]", 3, 0, &e);
	ok(j && e.text[0] == '\0' && e.position == 3 && !strcmp(e.source, "<text>"),
	   "success leaves an empty error text and the position at the end");
	json_decref(j);

	j = jsontext_parse("[1]", 3, 0, NULL);
	ok(j != NULL, "err may be NULL");
	json_decref(j);
	j = jsontext_parse("[", 1, 0, NULL);
	ok(j == NULL, "err may be NULL on a refusal too");

	static const size_t bad_flags[] = {JSON_REJECT_DUPLICATES, JSON_DISABLE_EOF_CHECK,
					   JSON_DECODE_INT_AS_REAL, JSON_ALLOW_NUL,
					   JSON_DECODE_ANY | JSON_REJECT_DUPLICATES};
	for (size_t i = 0; i < LT_ARRAY_SIZE(bad_flags); i++) {
		j = jsontext_parse("{\"a\":1}", 7, bad_flags[i], &e);
		ok(!j && strstr(e.text, "unsupported flags") &&
			   json_error_code(&e) == json_error_invalid_argument,
		   "flags 0x%zx are refused as unsupported", bad_flags[i]);
		json_decref(j);
	}
	j = jsontext_parse(NULL, 0, 0, &e);
	ok(!j && e.text[0], "a NULL text is refused");

	/* jansson 2.14 iterates objects in insertion order: the text comes back as it was. */
	static const char scrambled[] = "{\"zeta\":1,\"alpha\":2,\"mu\":3,\"beta\":4,\"omega\":5,"
					"\"chi\":6,\"eta\":7,\"pi\":8,\"tau\":9,\"nu\":10,"
					"\"iota\":{\"y\":1,\"x\":2},\"a\":[],\"zz\":null}";
	j = jsontext_parse(scrambled, sizeof(scrambled) - 1, 0, &e);
	char *back = jsontext_dumps(j, NULL);
	ok(back && !strcmp(back, scrambled), "members keep the order of the text");
	free(back);
	json_decref(j);

	/* The text need not be NUL-terminated: only len bytes are read. */
	char buf[8];
	memcpy(buf, "[12]9999", 8);
	j = jsontext_parse(buf, 4, 0, &e);
	ok(j && json_integer_value(json_array_get(j, 0)) == 12,
	   "only text[0, len) is parsed (no NUL needed)");
	json_decref(j);
	j = jsontext_parse("\"a\0b\"", 5, ANY, &e);
	ok(!j, "a raw NUL inside the given length is a control character");
}

/* ---- nesting ----------------------------------------------------------- */

/* n nested arrays around inner, or n nested {"k": ... } objects. */
static char *nested(size_t n, bool objects, const char *inner, size_t *len)
{
	struct dynbuf b;
	dynbuf_init(&b, 0);
	for (size_t i = 0; i < n; i++)
		dynbuf_addstr(&b,
			      objects ? (i % 2 ? "{\"k\":" : "{\"ứ\": ") : (i % 3 ? "[" : " ["));
	dynbuf_addstr(&b, inner);
	for (size_t i = n; i-- > 0;)
		dynbuf_addstr(&b, objects ? "}" : "]");
	return dynbuf_steal(&b, len);
}

static void test_nesting(void)
{
	static const struct {
		size_t depth;
		bool objects;
		const char *inner;
		bool accept;
	} deep[] = {
		{DEPTH_LIMIT, false, "", true},
		{DEPTH_LIMIT + 1, false, "", false},
		{DEPTH_LIMIT - 1, false, "1", true},
		{DEPTH_LIMIT, false, "1", false},
		{DEPTH_LIMIT - 1, true, "{}", true},
		{DEPTH_LIMIT - 1, true, "\"s\"", true},
		{DEPTH_LIMIT, true, "\"s\"", false},
		{DEPTH_LIMIT, true, "[]", false},
		{5000, false, "", false},
		{100, true, "[1,2]", true},
		{64, false, "", true},
		{65, false, "[]", true},
	};

	for (size_t i = 0; i < LT_ARRAY_SIZE(deep); i++) {
		size_t len;
		char *t = nested(deep[i].depth, deep[i].objects, deep[i].inner, &len);
		char why[512] = "";
		json_error_t me;
		bool accepted;
		bool same = agree(t, len, 0, &accepted, &me, why, sizeof(why));
		ok(same && accepted == deep[i].accept, "%zu nested %s around '%s' %s like jansson",
		   deep[i].depth, deep[i].objects ? "objects" : "arrays", deep[i].inner,
		   deep[i].accept ? "accepted" : "refused");
		if (!same)
			printf("#   %s\n", why);
		if (!accepted && strstr(me.text, "nesting") == NULL)
			printf("#   error: %s\n", me.text);
		free(t);
	}
	size_t len;
	char *t = nested(DEPTH_LIMIT + 1, false, "", &len);
	json_error_t e;
	json_t *j = jsontext_parse(t, len, 0, &e);
	ok(!j && strstr(e.text, "nesting deeper than 2048"), "too deep: '%s'", e.text);
	free(t);
}

/* ---- (2) generated documents ------------------------------------------- */

static const char *const ascii_words[] = {
	"maHoSo",
	"H31.12526-250602-00001",
	"DA_TIEP_NHAN",
	"seq",
	"a",
	"",
	"TP-CT",
	"x y z",
	"0706045509",
	"email@example.vn",
	"2025-06-02T14:53:36+07:00",
	"/path/to",
	"<tag>",
};
static const char *const viet_words[] = {
	"Chứng",
	"thực",
	"chữ",
	"ký",
	"trong",
	"các",
	"giấy",
	"tờ",
	"văn",
	"bản",
	"Công ty TNHH MTV",
	"Vận tải",
	"Thái Bình",
	"Xóm Mới",
	"Huyện Quỳnh Phụ",
	"Tỉnh",
	"Đăng ký",
	"hộ tịch",
	"ưu tiên",
	"Nguyễn Thị Hương",
	"ĐÃ TIẾP NHẬN",
	"Ỹ",
	"ẞ",
};
static const char *const raw_specials[] = {
	"\xe2\x80\xa8", "\xe2\x80\xa9", "\x7f", "€", "😀", "\xf4\x8f\xbf\xbf", "\xc2\x80", "/",
};
static const char *const short_escapes[] = {"\\\"", "\\\\", "\\/", "\\b",
					    "\\f",  "\\n",  "\\r", "\\t"};
static const char *const real_texts[] = {
	"1e300",
	"-0.0",
	"5e-324",
	"1.7976931348623157e308",
	"2.2250738585072014e-308",
	"0.1",
	"1e-400",
	"4.9e-324",
	"1E+2",
	"1e-2",
	"0e0",
	"-0.0e-0",
	"1.000000000000000000001",
	"9007199254740993.0",
	"1e23",
	"8.98846567431158e307",
	"123456789.123456789",
	"-1e-300",
	"1e22",
	"0.30000000000000004",
	"12345678901234567890.5",
	"2.5e-5",
	"100.0",
	"-12.75E+03",
};
static const char *const ws_pool[] = {"", "", "", "", " ", "\n", "\t", "\r\n  ", "  "};

static void gen_ws(struct dynbuf *b, bool pretty)
{
	if (pretty)
		dynbuf_addstr(b, ws_pool[rnd_below(LT_ARRAY_SIZE(ws_pool))]);
}

static void gen_string(struct dynbuf *b)
{
	size_t pieces = rnd_below(8) == 0 ? 10 + rnd_below(30) : rnd_below(6);

	dynbuf_addstr(b, "\"");
	for (size_t i = 0; i < pieces; i++) {
		unsigned cp;
		switch (rnd_below(10)) {
		case 0:
		case 1: dynbuf_addstr(b, ascii_words[rnd_below(LT_ARRAY_SIZE(ascii_words))]); break;
		case 2:
		case 3:
			dynbuf_addstr(b, viet_words[rnd_below(LT_ARRAY_SIZE(viet_words))]);
			dynbuf_addstr(b, " ");
			break;
		case 4:
			dynbuf_addstr(b, short_escapes[rnd_below(LT_ARRAY_SIZE(short_escapes))]);
			break;
		case 5:
			cp = 1 + (unsigned)rnd_below(0xfffe);
			if (cp >= 0xd800 && cp <= 0xdfff)
				cp -= 0x800;
			dynbuf_printf(b, rnd_below(2) ? "\\u%04x" : "\\u%04X", cp);
			break;
		case 6:
			cp = 0x10000 + (unsigned)rnd_below(0x100000);
			dynbuf_printf(b, "\\u%04X\\u%04x", 0xd800 + ((cp - 0x10000) >> 10),
				      0xdc00 + ((cp - 0x10000) & 0x3ff));
			break;
		case 7:
			dynbuf_addstr(b, raw_specials[rnd_below(LT_ARRAY_SIZE(raw_specials))]);
			break;
		case 8: {
			size_t n = 1 + rnd_below(70);
			for (size_t k = 0; k < n; k++) {
				char c = (char)(0x20 + rnd_below(0x5f));
				if (c == '"' || c == '\\')
					c = '.';
				dynbuf_add(b, &c, 1);
			}
			break;
		}
		default: dynbuf_printf(b, "\\u00%02x", (unsigned)rnd_below(0x20) + 1); break;
		}
	}
	dynbuf_addstr(b, "\"");
}

static void gen_digits(struct dynbuf *b, size_t n, bool lead_nonzero)
{
	for (size_t i = 0; i < n; i++) {
		char c = (char)('0' + rnd_below(10));
		if (i == 0 && lead_nonzero && c == '0')
			c = '1';
		dynbuf_add(b, &c, 1);
	}
}

static void gen_number(struct dynbuf *b)
{
	switch (rnd_below(12)) {
	case 0: dynbuf_printf(b, "%d", (int)rnd_below(201) - 100); break;
	case 1: dynbuf_printf(b, "%" PRId64, (int64_t)rnd()); break;
	case 2: {
		static const char *const edges[] = {
			"9223372036854775807", "-9223372036854775808", "-0", "0", "-1",
			"4294967296"};
		dynbuf_addstr(b, edges[rnd_below(LT_ARRAY_SIZE(edges))]);
		break;
	}
	case 3: {
		double d;
		uint64_t bits = rnd();
		memcpy(&d, &bits, sizeof(d));
		if (!isfinite(d))
			d = 1.5;
		dynbuf_printf(b, "%.17g", d);
		break;
	}
	case 4: dynbuf_addstr(b, real_texts[rnd_below(LT_ARRAY_SIZE(real_texts))]); break;
	case 5: {
		/* A decimal in every shape the grammar allows. */
		bool frac = rnd_below(2), exp = rnd_below(2);
		if (rnd_below(3) == 0)
			dynbuf_addstr(b, "-");
		if (rnd_below(4) == 0)
			dynbuf_addstr(b, "0");
		else
			gen_digits(b, 1 + rnd_below(frac || exp ? 22 : 18), true);
		if (frac) {
			dynbuf_addstr(b, ".");
			gen_digits(b, 1 + rnd_below(25), false);
		}
		if (exp) {
			static const char *const e[] = {"e", "E", "e+", "e-", "E+", "E-"};
			dynbuf_addstr(b, e[rnd_below(LT_ARRAY_SIZE(e))]);
			gen_digits(b, 1 + rnd_below(3), false);
		}
		break;
	}
	default: dynbuf_printf(b, "%u", (unsigned)rnd_below(100000)); break;
	}
}

static const char *const key_pool[] = {"a", "b", "maHoSo", "trạngThái", "k\\n", "\\u00e9"};

static void gen_value(struct dynbuf *b, int depth, int max_depth, bool pretty)
{
	size_t r = rnd_below(10);

	if (depth < max_depth && r < 2) {
		size_t n = rnd_below(7);
		dynbuf_addstr(b, "{");
		for (size_t i = 0; i < n; i++) {
			gen_ws(b, pretty);
			if (rnd_below(3) == 0)
				dynbuf_printf(b, "\"%s\"",
					      key_pool[rnd_below(LT_ARRAY_SIZE(key_pool))]);
			else
				gen_string(b);
			gen_ws(b, pretty);
			dynbuf_addstr(b, ":");
			gen_ws(b, pretty);
			gen_value(b, depth + 1, max_depth, pretty);
			gen_ws(b, pretty);
			if (i + 1 < n)
				dynbuf_addstr(b, ",");
		}
		gen_ws(b, pretty);
		dynbuf_addstr(b, "}");
	} else if (depth < max_depth && r < 4) {
		size_t n = rnd_below(8);
		dynbuf_addstr(b, "[");
		for (size_t i = 0; i < n; i++) {
			gen_ws(b, pretty);
			gen_value(b, depth + 1, max_depth, pretty);
			gen_ws(b, pretty);
			if (i + 1 < n)
				dynbuf_addstr(b, ",");
		}
		gen_ws(b, pretty);
		dynbuf_addstr(b, "]");
	} else if (r < 6) {
		gen_string(b);
	} else if (r < 9) {
		gen_number(b);
	} else {
		static const char *const lits[] = {"true", "false", "null"};
		dynbuf_addstr(b, lits[rnd_below(3)]);
	}
}

/* A generated document: an array or object at the top unless scalar_ok. */
static char *gen_doc(size_t *len, int max_depth, bool scalar_ok)
{
	struct dynbuf b;
	bool pretty = rnd_below(3) == 0;

	dynbuf_init(&b, 0);
	gen_ws(&b, pretty);
	if (!scalar_ok) {
		/* A container at the top, sometimes wrapped like a page of changes. */
		bool wrapped = rnd_below(2);
		size_t n = 1 + rnd_below(4);
		dynbuf_addstr(&b, wrapped ? "{\"items\":[" : "[");
		for (size_t i = 0; i < n; i++) {
			if (i)
				dynbuf_addstr(&b, ",");
			gen_value(&b, 1, max_depth, pretty);
		}
		dynbuf_addstr(&b, wrapped ? "]}" : "]");
	} else {
		gen_value(&b, 0, max_depth, pretty);
	}
	gen_ws(&b, pretty);
	return dynbuf_steal(&b, len);
}

/* Texts kept for the mutation fuzz. */
struct corpus {
	char **text;
	size_t *len;
	size_t n, cap;
};

static void corpus_add(struct corpus *c, char *t, size_t len)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 256;
		c->text = xrealloc(c->text, c->cap * sizeof(*c->text));
		c->len = xrealloc(c->len, c->cap * sizeof(*c->len));
	}
	c->text[c->n] = t;
	c->len[c->n++] = len;
}

static void corpus_free(struct corpus *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->text[i]);
	free(c->text);
	free(c->len);
}

static void test_generated(struct corpus *corp)
{
	size_t docs = 0, accepted_n = 0, failures = 0, bytes = 0;
	char why[512];

	for (int round = 0; round < 2500; round++) {
		bool scalar = round % 5 == 4;
		size_t len;
		char *t = gen_doc(&len, 1 + (int)rnd_below(7), scalar);
		bool accepted;

		docs++;
		bytes += len;
		if (!agree(t, len, scalar ? ANY : 0, &accepted, NULL, why, sizeof(why))) {
			if (failures++ < 5)
				printf("#   %s\n#   text: %s\n", why, show(t, len));
		}
		accepted_n += accepted;
		if (len <= 600)
			corpus_add(corp, t, len);
		else
			free(t);
	}
	ok(failures == 0, "%zu generated documents (%zu bytes) parse and dump as jansson does",
	   docs, bytes);
	ok(accepted_n * 10 >= docs * 8, "most generated documents are valid (%zu of %zu)",
	   accepted_n, docs);

	/* Page-like documents: bigger, the shape the daemon reads. */
	size_t pages_ok = 0;
	failures = 0;
	for (int round = 0; round < 12; round++) {
		struct dynbuf b;
		size_t len;
		bool accepted;
		dynbuf_init(&b, 0);
		dynbuf_addstr(&b, "{\"items\":[");
		for (int i = 0; i < 60; i++) {
			if (i)
				dynbuf_addstr(&b, ",");
			dynbuf_printf(&b, "{\"seq\":%d,\"maHoSo\":", i + 1);
			gen_string(&b);
			dynbuf_addstr(&b, ",\"hoSo\":");
			gen_value(&b, 0, 4, round % 2);
			dynbuf_addstr(&b, "}");
		}
		dynbuf_addstr(&b, "],\"next\":null}");
		char *t = dynbuf_steal(&b, &len);
		if (!agree(t, len, 0, &accepted, NULL, why, sizeof(why))) {
			if (failures++ < 3)
				printf("#   %s\n", why);
		}
		pages_ok += accepted;
		free(t);
	}
	ok(failures == 0 && pages_ok > 0,
	   "page-like documents of 60 changes agree with jansson (%zu of 12 valid)", pages_ok);

	/* Nesting around the limit, arrays and objects mixed. */
	size_t deep_acc = 0, deep_ref = 0;
	failures = 0;
	for (int round = 0; round < 40; round++) {
		struct dynbuf b;
		size_t depth = DEPTH_LIMIT - 6 + rnd_below(12), len;
		bool accepted, *obj = xcalloc(depth, sizeof(bool));
		dynbuf_init(&b, 0);
		for (size_t i = 0; i < depth; i++) {
			obj[i] = rnd_below(2);
			dynbuf_addstr(&b, obj[i] ? "{\"k\":" : "[");
			if (!obj[i] && rnd_below(8) == 0)
				dynbuf_addstr(&b, "0,");
		}
		/* An object member needs a value; an array may stay empty. */
		if (obj[depth - 1] || rnd_below(2))
			gen_value(&b, 0, 0, false);
		for (size_t i = depth; i-- > 0;)
			dynbuf_addstr(&b, obj[i] ? "}" : "]");
		char *t = dynbuf_steal(&b, &len);
		if (!agree(t, len, 0, &accepted, NULL, why, sizeof(why))) {
			if (failures++ < 3)
				printf("#   depth %zu: %s\n", depth, why);
		}
		deep_acc += accepted;
		deep_ref += !accepted;
		free(t);
		free(obj);
	}
	ok(failures == 0 && deep_acc && deep_ref,
	   "nesting around 2048 agrees with jansson (%zu accepted, %zu refused)", deep_acc,
	   deep_ref);
}

/*
 * Reals in the shapes the fast conversion takes (at most 19 digits, powers of
 * ten near +-22) and just past them, each held against jansson's strtod.
 */
static void test_reals(void)
{
	size_t failures = 0, n = 0;
	char why[512];

	for (int i = 0; i < 20000; i++) {
		struct dynbuf b;
		size_t len, digits = 1 + rnd_below(i % 2 ? 17 : 21), point = rnd_below(digits + 1);
		int exp10 = (int)rnd_below(61) - 30;
		bool accepted;

		dynbuf_init(&b, 0);
		dynbuf_addstr(&b, rnd_below(2) ? "[-" : "[");
		for (size_t k = 0; k < digits; k++) {
			if (k == point && k > 0)
				dynbuf_addstr(&b, ".");
			char c = (char)('0' + rnd_below(10));
			if (k == 0 && point != 1 && c == '0')
				c = '7';
			dynbuf_add(&b, &c, 1);
		}
		if (point == digits || point == 0 || rnd_below(2))
			dynbuf_printf(&b, "e%d", exp10);
		dynbuf_addstr(&b, "]");
		char *t = dynbuf_steal(&b, &len);
		n++;
		if (!agree(t, len, 0, &accepted, NULL, why, sizeof(why)) || !accepted) {
			if (failures++ < 5)
				printf("#   %s\n#   text: %s\n", why, t);
		}
		free(t);
	}
	ok(failures == 0, "%zu reals around the fast path convert to the bits strtod gives", n);
}

/*
 * Every lead byte from 0x80 with every second byte and a few followers,
 * inside a string: jansson's utf8_check_first/utf8_check_full against
 * ours, both reading (json_loadb) and writing (json_dumps of a nocheck
 * string).
 */
static void test_utf8_sweep(void)
{
	static const unsigned char tails[][2] = {
		{0x80, 0x80}, {0xbf, 0xbf}, {0x41, 0x41}, {0x80, '"'}, {0x90, 0xa0}};
	size_t texts = 0, valid = 0, parse_failures = 0, dump_failures = 0;
	char why[512];

	for (unsigned lead = 0x80; lead <= 0xff; lead++) {
		for (unsigned second = 0; second <= 0xff; second++) {
			for (size_t k = 0; k < LT_ARRAY_SIZE(tails); k++) {
				char t[] = {'[',
					    '"',
					    (char)lead,
					    (char)second,
					    (char)tails[k][0],
					    (char)tails[k][1],
					    '"',
					    ']'};
				bool accepted;
				texts++;
				if (!agree(t, sizeof(t), 0, &accepted, NULL, why, sizeof(why)) &&
				    parse_failures++ < 5)
					printf("#   %s\n#   text: %s\n", why, show(t, sizeof(t)));
				valid += accepted;

				json_t *j = json_stringn_nocheck(t + 2, 4);
				if (!dumps_equal(j))
					dump_failures++;
				json_decref(j);
			}
		}
	}
	ok(parse_failures == 0 && valid > 0,
	   "%zu strings led by every byte from 0x80 parse as jansson (%zu valid)", texts, valid);
	ok(dump_failures == 0, "the same bytes dump (or are refused) as json_dumps does");
}

/* ---- (3) mutation fuzz ------------------------------------------------- */

static const char *const splices[] = {
	"\xc0\xaf",
	"\xe0\x80\xaf",
	"\xed\xa0\x80",
	"\xf4\x90\x80\x80",
	"\xf0\x80\x80\xaf",
	"\x80",
	"\xff",
	"\xc3",
	"\xe2\x82",
	"\\uD800",
	"\\uDC00",
	"\\uD83D\\uDE00",
	"\\u0000",
	"\\x",
	"\\",
	"\"",
	"1e999",
	"-",
	"01",
	"9223372036854775808",
	"-9223372036854775809",
	"1.",
	".5",
	"e5",
	"[",
	"]",
	"{",
	"}",
	",",
	":",
	"true",
	"nul",
	"\xef\xbb\xbf",
	"\t",
	"\n",
	"\x1f",
	"\\u12",
	"ứ",
	"\\u00",
	"0",
	"-0",
	"1e-400",
	"\"\":",
	"[[[[",
	"]]]]",
};
static const unsigned char bytes_of_interest[] = {
	'"',  '\\', '{',  '}',	'[',  ']',  ',',  ':',	'0',  '1',  '-',
	'+',  'e',  'E',  '.',	'u',  't',  'n',  ' ',	0x00, 0x01, 0x1f,
	0x7f, 0x80, 0xbf, 0xc0, 0xc2, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xff,
};

/* One random mutation of t[0, *len) in place (t has room for 32 more bytes). */
static void mutate(char *t, size_t *len)
{
	size_t n = *len, pos = n ? rnd_below(n) : 0;

	switch (rnd_below(7)) {
	case 0:
		if (n)
			t[pos] ^= (char)(1u << rnd_below(8));
		break;
	case 1:
		if (n)
			t[pos] = (char)bytes_of_interest[rnd_below(sizeof(bytes_of_interest))];
		break;
	case 2:
		memmove(t + pos + 1, t + pos, n - pos);
		t[pos] = (char)bytes_of_interest[rnd_below(sizeof(bytes_of_interest))];
		*len = n + 1;
		break;
	case 3:
		if (n) {
			memmove(t + pos, t + pos + 1, n - pos - 1);
			*len = n - 1;
		}
		break;
	case 4: *len = pos; break;
	case 5: {
		const char *s = splices[rnd_below(LT_ARRAY_SIZE(splices))];
		size_t k = strlen(s);
		memmove(t + pos + k, t + pos, n - pos);
		memcpy(t + pos, s, k);
		*len = n + k;
		break;
	}
	default: {
		/* Replace a byte by a random one. */
		if (n)
			t[pos] = (char)rnd_below(256);
		break;
	}
	}
}

static void test_mutations(const struct corpus *corp)
{
	size_t texts = 0, accepted_n = 0, failures = 0;
	char why[512];
	char *buf = xmalloc(600 + 32 * 4 + 1);

	for (int round = 0; round < FUZZ_ROUNDS; round++) {
		for (size_t i = 0; i < corp->n; i++) {
			size_t len = corp->len[i];
			size_t flags = rnd_below(4) == 0 ? ANY : 0;
			bool accepted;
			memcpy(buf, corp->text[i], len);
			for (size_t m = 1 + rnd_below(3); m > 0; m--)
				mutate(buf, &len);
			texts++;
			if (!agree(buf, len, flags, &accepted, NULL, why, sizeof(why))) {
				if (failures++ < 8)
					printf("#   %s\n#   text: %s\n", why, show(buf, len));
			}
			accepted_n += accepted;
		}
	}
	free(buf);
	ok(failures == 0, "%zu mutated texts: accepted/refused, trees and dumps as jansson", texts);
	ok(accepted_n * 20 >= texts && (texts - accepted_n) * 4 >= texts,
	   "the mutations hit both sides (%zu accepted, %zu refused)", accepted_n,
	   texts - accepted_n);
}

/* ---- (4) the dumper on trees built through the API -------------------- */

static json_t *gen_tree(int depth)
{
	static const char *const raw[] = {
		"plain",
		"Chứng thực chữ ký",
		"quote\" back\\slash /slash",
		"\x01\x02\x1f\x7f",
		"\b\f\n\r\t",
		"\xe2\x80\xa8\xe2\x80\xa9",
		"😀€",
		"",
		"12345678\n12345678",
	};
	size_t r = rnd_below(10);
	json_t *j;

	if (depth > 0 && r < 2) {
		j = json_object();
		for (size_t n = rnd_below(6); n > 0; n--) {
			const char *k = raw[rnd_below(LT_ARRAY_SIZE(raw))];
			char key[64];
			snprintf(key, sizeof(key), "%s%zu", k, rnd_below(4));
			json_object_set_new(j, key, gen_tree(depth - 1));
		}
		return j;
	}
	if (depth > 0 && r < 4) {
		j = json_array();
		for (size_t n = rnd_below(6); n > 0; n--)
			json_array_append_new(j, gen_tree(depth - 1));
		return j;
	}
	switch (rnd_below(7)) {
	case 0: return json_string(raw[rnd_below(LT_ARRAY_SIZE(raw))]);
	case 1: return json_stringn("a\0b", 3); /* NUL inside: "\u0000" */
	case 2: return json_integer((json_int_t)rnd());
	case 3: {
		double d;
		uint64_t bits = rnd();
		memcpy(&d, &bits, sizeof(d));
		return json_real(isfinite(d) ? d : -0.0);
	}
	case 4: return json_real((double)(int64_t)rnd_below(1000000) / 8.0);
	case 5: return rnd_below(2) ? json_true() : json_false();
	default: return json_null();
	}
}

static void test_dump(void)
{
	size_t failures = 0;

	for (int i = 0; i < 1500; i++) {
		json_t *j = gen_tree(1 + (int)rnd_below(6));
		if (!dumps_equal(j))
			failures++;
		json_decref(j);
	}
	ok(failures == 0, "1500 API-built trees dump byte for byte as json_dumps");

	static const double reals[] = {
		0.1,
		1e300,
		-0.0,
		0.0,
		5e-324,
		1.0,
		1e16,
		1e17,
		123456789012345678.0,
		1.5e-5,
		0.0001,
		1e-5,
		1e22,
		1e21,
		9007199254740993.0,
		-1e-300,
		DBL_MAX,
		DBL_MIN,
		-DBL_MAX,
		9223372036854775808.0,
		-9223372036854775808.0,
		99999999999999984.0,
		1e-7,
		123e-20,
		0.5,
		-2.5,
		100.0,
		1e100,
		-1.0,
		3.0e-310,
	};
	failures = 0;
	for (size_t i = 0; i < LT_ARRAY_SIZE(reals); i++) {
		json_t *j = json_real(reals[i]);
		if (!dumps_equal(j))
			failures++;
		json_decref(j);
	}
	for (int i = 0; i < 20000; i++) {
		double d;
		uint64_t bits = rnd();
		if (i % 2)
			bits &= 0x80ffffffffffffffULL | (rnd_below(2) ? 0x4300000000000000ULL : 0);
		memcpy(&d, &bits, sizeof(d));
		if (!isfinite(d))
			continue;
		json_t *j = json_real(i % 3 ? d : nearbyint(d));
		if (!dumps_equal(j))
			failures++;
		json_decref(j);
	}
	ok(failures == 0, "reals print as jansson's %%.17g (edges and 20000 random doubles)");

	failures = 0;
	for (int i = 0; i < 5000; i++) {
		json_int_t v = i < 64 ? (json_int_t)(((uint64_t)1 << i) - 1) : (json_int_t)rnd();
		json_t *j = json_integer(i % 2 ? v : -v);
		if (!dumps_equal(j))
			failures++;
		json_decref(j);
	}
	json_t *j = json_integer(INT64_MIN);
	ok(failures == 0 && dumps_equal(j), "integers print as jansson's, extremes included");
	json_decref(j);

	/* JSON_ENCODE_ANY: scalars at the top. */
	json_t *scalars[] = {json_string("Vận tải \"x\"\n"),
			     json_integer(-42),
			     json_real(-0.0),
			     json_true(),
			     json_false(),
			     json_null(),
			     json_stringn("", 0)};
	failures = 0;
	for (size_t i = 0; i < LT_ARRAY_SIZE(scalars); i++) {
		if (!dumps_equal(scalars[i]))
			failures++;
		json_decref(scalars[i]);
	}
	ok(failures == 0, "scalars at the top dump as with JSON_ENCODE_ANY");

	/* Every byte below 0x20, and the ones around it. */
	char all[0x21 + 2];
	for (int c = 1; c <= 0x20; c++)
		all[c - 1] = (char)c;
	all[0x20] = '"';
	all[0x21] = '\\';
	all[0x22] = '/';
	j = json_stringn(all, sizeof(all));
	ok(dumps_equal(j), "every control escaped as jansson escapes it, '/' left alone");
	json_decref(j);

	j = json_stringn_nocheck("ab\xc3(", 4);
	size_t len = 99;
	char *s = jsontext_dumps(j, &len), *js;
	ok(!s && !json_dumps(j, DUMP_FLAGS),
	   "a string that is not UTF-8 is refused, as by jansson");
	free(s);
	json_decref(j);

	j = json_object();
	json_object_set_new_nocheck(j, "k\xff", json_integer(1));
	struct dynbuf b;
	dynbuf_init(&b, 0);
	js = json_dumps(j, DUMP_FLAGS);
	json_t *back = js ? json_loads(js, 0, NULL) : NULL;
	ok(jsontext_dump(&b, j) == -EINVAL && !back,
	   "a key that is not UTF-8 is -EINVAL (json_dumps writes '%s', not JSON)",
	   js ? js : "(null)");
	json_decref(back);
	free(js);
	dynbuf_free(&b);
	json_decref(j);

	j = json_object();
	json_object_setn_new_nocheck(j, "a\0b", 3, json_true());
	ok(dumps_equal(j), "a key holding NUL dumps as \\u0000, as jansson does");
	json_decref(j);

	dynbuf_init(&b, 0);
	ok(jsontext_dump(&b, NULL) == -EINVAL && !jsontext_dumps(NULL, NULL), "NULL is -EINVAL");
	dynbuf_free(&b);

	/* Depth: 2048 nested containers dump, 2049 do not (jansson would). */
	json_t *root = json_array(), *cur = root;
	for (int d = 1; d < DEPTH_LIMIT; d++) {
		json_t *next = d % 2 ? json_object() : json_array();
		if (json_is_array(cur))
			json_array_append_new(cur, next);
		else
			json_object_set_new(cur, "ứ", next);
		cur = next;
	}
	ok(dumps_equal(root), "2048 nested containers dump as json_dumps does");
	json_object_set_new(cur, "deeper", json_array());
	dynbuf_init(&b, 0);
	js = json_dumps(root, DUMP_FLAGS);
	ok(jsontext_dump(&b, root) == -EINVAL && js,
	   "2049 nested containers are -EINVAL (where json_dumps writes them)");
	free(js);
	dynbuf_free(&b);
	json_decref(root);

	/* A cycle (only the API can make one) ends at the depth limit. */
	json_t *a = json_array(), *c2 = json_array();
	json_array_append(a, c2);
	json_array_append(c2, a);
	s = jsontext_dumps(a, NULL);
	js = json_dumps(a, DUMP_FLAGS);
	ok(!s && !js, "a reference cycle is refused (jansson refuses it too)");
	free(s);
	free(js);
	json_array_clear(c2);
	json_decref(c2);
	json_decref(a);
}

static void test_dump_limits(void)
{
	struct dynbuf b;
	json_t *j = json_array();
	char *full;
	size_t full_len, failures = 0;

	/* About 30 KB, past the 4 KB staging buffer, with a long string too. */
	for (int i = 0; i < 150; i++)
		json_array_append_new(j, gen_tree(3));
	char *longs = xmalloc(9001);
	for (int i = 0; i < 9000; i++)
		longs[i] = (char)('a' + i % 26);
	longs[9000] = '\0';
	json_array_append_new(j, json_string(longs));
	/* Runs around the staging buffer's size go through each path of its flush. */
	static const size_t run_lens[] = {2047, 2048, 2049, 4095, 4096, 4097, 5000, 8192};
	for (size_t i = 0; i < LT_ARRAY_SIZE(run_lens); i++)
		json_array_append_new(j, json_stringn(longs + i, run_lens[i]));
	free(longs);
	full = jsontext_dumps(j, &full_len);
	ok(full && full_len > 12000, "a %zu-byte text to cut", full_len);

	const size_t limits[] = {1,    2,    100,   4095,	  4096,
				 4097, 8192, 12000, full_len / 2, full_len - 1};
	for (size_t i = 0; i < LT_ARRAY_SIZE(limits); i++) {
		dynbuf_init(&b, limits[i]);
		int r = jsontext_dump(&b, j);
		if (r != -E2BIG || b.len > limits[i] || (b.len && memcmp(b.data, full, b.len))) {
			failures++;
			printf("#   limit %zu: r %d len %zu\n", limits[i], r, b.len);
		}
		dynbuf_free(&b);
	}
	ok(failures == 0, "a limit below the text's length gives -E2BIG with a prefix in b");

	dynbuf_init(&b, full_len);
	ok(jsontext_dump(&b, j) == 0 && b.len == full_len && !memcmp(b.data, full, full_len),
	   "a limit of exactly the text's length is enough");
	dynbuf_free(&b);

	dynbuf_init(&b, 0);
	dynbuf_addstr(&b, "prefix:");
	ok(jsontext_dump(&b, j) == 0 && b.len == 7 + full_len && !memcmp(b.data, "prefix:", 7) &&
		   !memcmp(b.data + 7, full, full_len) && b.data[b.len] == '\0',
	   "the text is appended to what b holds, NUL-terminated");
	dynbuf_free(&b);

	dynbuf_init(&b, 3);
	json_t *small = json_integer(1234);
	ok(jsontext_dump(&b, small) == -E2BIG && b.len == 0, "-E2BIG on a tiny limit, b empty");
	dynbuf_free(&b);
	json_decref(small);

	free(full);
	json_decref(j);
}

/* Parsing and dumping reals do not depend on the locale's decimal point. */
static void test_locale(void)
{
	static const char *const locales[] = {"vi_VN.UTF-8", "de_DE.UTF-8", "fr_FR.UTF-8",
					      "ru_RU.UTF-8"};
	const char *used = NULL;

	for (size_t i = 0; i < LT_ARRAY_SIZE(locales) && !used; i++) {
		if (setlocale(LC_NUMERIC, locales[i]))
			used = locales[i];
	}
	if (!used) {
		printf("# no locale with a ',' decimal point installed: locale check skipped\n");
		return;
	}
	static const char text[] = "[1.5,1.00000000000000000000005,-2.5e-300,0.1]";
	json_t *j = jsontext_parse(text, sizeof(text) - 1, 0, NULL);
	char *s = jsontext_dumps(j, NULL);
	ok(s && !strcmp(s, "[1.5,1.0,-2.5e-300,0.10000000000000001]"),
	   "reals parse and print with '.' under %s", used);
	if (s && strcmp(s, "[1.5,1.0,-2.5e-300,0.10000000000000001]"))
		printf("#   got %s\n", s);
	free(s);
	json_decref(j);

	size_t failures = 0;
	for (int i = 0; i < 2000; i++) {
		double d;
		uint64_t bits = rnd();
		memcpy(&d, &bits, sizeof(d));
		j = json_real(isfinite(d) ? d : 0.5);
		if (!dumps_equal(j))
			failures++;
		json_decref(j);
	}
	ok(failures == 0, "random reals dump as json_dumps under %s", used);
	setlocale(LC_NUMERIC, "C");
}

/* ---- --bench ------------------------------------------------------------ */

static double now_s(void)
{
	return (double)now_mono_us() / 1e6;
}

/* One round: MB/s of parsing texts reps times, the parse alone timed (trees freed untimed). */
static double parse_round(const char *const *texts, const size_t *lens, size_t n, size_t reps,
			  bool ours)
{
	double spent = 0;
	size_t bytes = 0;

	for (size_t r = 0; r < reps; r++) {
		for (size_t i = 0; i < n; i++) {
			json_error_t e;
			double t0 = now_s();
			json_t *j = ours ? jsontext_parse(texts[i], lens[i], 0, &e)
					 : json_loadb(texts[i], lens[i], 0, &e);
			spent += now_s() - t0;
			bytes += lens[i];
			json_decref(j);
		}
	}
	return (double)bytes / spent / 1e6;
}

/* One round: MB/s of dumping trees reps times (freeing the text included). */
static double dump_round(json_t *const *trees, size_t n, size_t reps, bool ours)
{
	double spent = 0;
	size_t bytes = 0;

	for (size_t r = 0; r < reps; r++) {
		for (size_t i = 0; i < n; i++) {
			size_t len = 0;
			double t0 = now_s();
			char *s = ours ? jsontext_dumps(trees[i], &len)
				       : json_dumps(trees[i], JSON_COMPACT);
			if (!ours && s)
				len = strlen(s);
			free(s);
			spent += now_s() - t0;
			bytes += len;
		}
	}
	return (double)bytes / spent / 1e6;
}

/*
 * Best of 5 rounds each, ours and jansson's taking turns so that a busy
 * machine slows both alike. jansson gets a quarter of the repetitions.
 */
static void bench_set(const char *what, const char *const *texts, const size_t *lens,
		      json_t *const *trees, size_t n, size_t total)
{
	size_t reps = LT_MAX((size_t)4, (size_t)(20e6 / (double)total));
	double best[4] = {0, 0, 0, 0};

	for (int round = 0; round < 5; round++) {
		double got[4] = {
			parse_round(texts, lens, n, reps, true),
			parse_round(texts, lens, n, reps / 4, false),
			dump_round(trees, n, reps, true),
			dump_round(trees, n, reps / 4, false),
		};
		for (int k = 0; k < 4; k++)
			best[k] = LT_MAX(best[k], got[k]);
	}
	double per = (double)total / (double)n;
	printf("bench jsontext.%sparse_mb_s %.1f MB/s\n", what, best[0]);
	printf("bench jsontext.jansson_%sparse_mb_s %.1f MB/s\n", what, best[1]);
	printf("bench jsontext.%sdump_mb_s %.1f MB/s\n", what, best[2]);
	printf("bench jsontext.jansson_%sdump_mb_s %.1f MB/s\n", what, best[3]);
	printf("# %s: %zu text(s) of %.0f bytes: parse %.1f us vs jansson %.1f us (x%.1f), "
	       "dump %.1f us vs %.1f us (x%.1f)\n",
	       what[0] ? "one change at a time" : "the whole file", n, per, per / best[0],
	       per / best[1], best[0] / best[1], per / best[2], per / best[3], best[2] / best[3]);
}

static int bench(const char *path)
{
	char *text = NULL;
	size_t len = 0;
	json_error_t e;
	int r = read_file_bounded(path, 512u << 20, &text, &len);

	if (r < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(-r));
		return 1;
	}
	json_t *ref = json_loadb(text, len, 0, &e);
	if (!ref) {
		fprintf(stderr, "%s: jansson refuses it: %s\n", path, e.text);
		free(text);
		return 1;
	}
	json_t *mine = jsontext_parse(text, len, 0, &e);
	char *d_ref = json_dumps(ref, JSON_COMPACT), *d_mine = jsontext_dumps(ref, NULL);
	printf("# %s: %zu bytes; trees %s, dumps %s\n", path, len,
	       same_tree(ref, mine) ? "agree" : "DIFFER",
	       d_ref && d_mine && !strcmp(d_ref, d_mine) ? "agree" : "DIFFER");
	json_decref(mine);
	free(d_ref);
	free(d_mine);

	const char *texts[1] = {text};
	bench_set("", texts, &len, &ref, 1, len);

	/* The daemon handles one change at a time: the members of "items" one by one. */
	json_t *items = json_object_get(ref, "items");
	size_t n = json_array_size(items), total = 0;
	if (n) {
		char **t = xcalloc(n, sizeof(*t));
		size_t *l = xcalloc(n, sizeof(*l));
		json_t **trees = xcalloc(n, sizeof(*trees));
		for (size_t i = 0; i < n; i++) {
			trees[i] = json_array_get(items, i);
			t[i] = json_dumps(trees[i], JSON_COMPACT);
			l[i] = strlen(t[i]);
			total += l[i];
		}
		bench_set("item_", (const char *const *)t, l, trees, n, total);
		for (size_t i = 0; i < n; i++)
			free(t[i]);
		free(t);
		free(l);
		free(trees);
	}
	json_decref(ref);
	free(text);
	return 0;
}

int main(int argc, char **argv)
{
	struct corpus corp = {0};

	if (argc == 3 && !strcmp(argv[1], "--bench"))
		return bench(argv[2]);
	if (argc != 1) {
		fprintf(stderr, "usage: %s [--bench FILE]\n", argv[0]);
		return 2;
	}
	const char *seed = getenv("TEST_JSONTEXT_SEED");
	if (seed) {
		rng_state = strtoull(seed, NULL, 0);
		printf("# seed %s\n", seed);
	}

	test_table();
	test_messages();
	test_nesting();
	test_generated(&corp);
	test_reals();
	test_utf8_sweep();
	test_mutations(&corp);
	test_dump();
	test_dump_limits();
	test_locale();
	corpus_free(&corp);
	return tap_done();
}
