/*
 * jsonpos: a second, position-keeping scan of a JSON text that jansson has
 * already accepted, so that mapping-file errors can name lines. See
 * jsonpos.h for the path syntax.
 *
 * The scanner is a small recursive descent that follows the JSON grammar
 * just enough to know where each value starts; it does not check numbers or
 * string escapes beyond what it needs (jansson did that). Recursion is
 * bounded by JSONPOS_MAX_DEPTH, memory by JSONPOS_MAX_PATH_BYTES.
 */
#include "jsonpos.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define JSONPOS_MAX_DEPTH      1024
#define JSONPOS_MAX_PATH_BYTES (64u << 20)

struct jsonpos_entry {
	size_t off;	  /* into the paths buffer, while scanning */
	const char *path; /* into the paths buffer, once it stops moving */
	size_t order;
	int line;
};

/* All paths live NUL-separated in one buffer (owned); entries sorted by path. */
struct jsonpos {
	char *paths;
	struct jsonpos_entry *e;
	size_t n;
};

struct scan {
	const char *s;
	size_t len;
	size_t pos;
	int line;
	int depth;
	struct dynbuf path;  /* path of the value being scanned */
	struct dynbuf arena; /* every recorded path */
	struct dynbuf key;   /* scratch: a decoded member name */
	struct jsonpos_entry *e;
	size_t n, cap;
};

static int scan_value(struct scan *sc);

static void skip_ws(struct scan *sc)
{
	while (sc->pos < sc->len) {
		char c = sc->s[sc->pos];
		if (c == '\n')
			sc->line++;
		else if (c != ' ' && c != '\t' && c != '\r')
			return;
		sc->pos++;
	}
}

static int record(struct scan *sc)
{
	if (sc->n == sc->cap) {
		sc->cap = sc->cap ? 2 * sc->cap : 64;
		sc->e = xrealloc(sc->e, sc->cap * sizeof(*sc->e));
	}
	size_t off = sc->arena.len;
	if (dynbuf_add(&sc->arena, sc->path.data ? sc->path.data : "", sc->path.len) ||
	    dynbuf_add(&sc->arena, "", 1))
		return -E2BIG;
	sc->e[sc->n] = (struct jsonpos_entry){.off = off, .order = sc->n, .line = sc->line};
	sc->n++;
	return 0;
}

static void put_utf8(struct dynbuf *b, uint32_t cp)
{
	char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	dynbuf_add(b, u, n);
}

static int hex4(const char *p, uint32_t *out)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else
			return -EINVAL;
	}
	*out = v;
	return 0;
}

/*
 * Reads the string at pos (on its opening quote). With out, the decoded
 * text is appended there; values' strings are only skipped.
 */
static int scan_string(struct scan *sc, struct dynbuf *out)
{
	sc->pos++; /* the opening quote */
	while (sc->pos < sc->len) {
		char c = sc->s[sc->pos];
		if (c == '"') {
			sc->pos++;
			return 0;
		}
		if ((unsigned char)c < 0x20)
			return -EINVAL;
		if (c != '\\') {
			size_t start = sc->pos;
			while (sc->pos < sc->len && sc->s[sc->pos] != '"' &&
			       sc->s[sc->pos] != '\\' && (unsigned char)sc->s[sc->pos] >= 0x20)
				sc->pos++;
			if (out && dynbuf_add(out, sc->s + start, sc->pos - start))
				return -E2BIG;
			continue;
		}
		if (sc->pos + 1 >= sc->len)
			return -EINVAL;
		char e = sc->s[sc->pos + 1];
		sc->pos += 2;
		const char *simple = strchr("\"\\/bfnrt", e);
		if (e && simple) {
			static const char decoded[] = "\"\\/\b\f\n\r\t";
			if (out)
				dynbuf_add(out, &decoded[simple - "\"\\/bfnrt"], 1);
			continue;
		}
		if (e != 'u' || sc->pos + 4 > sc->len)
			return -EINVAL;
		uint32_t cp, lo;
		if (hex4(sc->s + sc->pos, &cp))
			return -EINVAL;
		sc->pos += 4;
		/* A high surrogate followed by an escaped low one is one code point. */
		if (cp >= 0xd800 && cp < 0xdc00 && sc->pos + 6 <= sc->len &&
		    sc->s[sc->pos] == '\\' && sc->s[sc->pos + 1] == 'u' &&
		    hex4(sc->s + sc->pos + 2, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			sc->pos += 6;
		} else if (cp >= 0xd800 && cp < 0xe000) {
			cp = 0xfffd;
		}
		if (out)
			put_utf8(out, cp);
	}
	return -EINVAL;
}

static int scan_object(struct scan *sc)
{
	size_t base = sc->path.len;
	int r;
	sc->pos++; /* { */
	skip_ws(sc);
	if (sc->pos < sc->len && sc->s[sc->pos] == '}') {
		sc->pos++;
		return 0;
	}
	for (;;) {
		skip_ws(sc);
		if (sc->pos >= sc->len || sc->s[sc->pos] != '"')
			return -EINVAL;
		dynbuf_reset(&sc->key);
		if ((r = scan_string(sc, &sc->key)))
			return r;
		skip_ws(sc);
		if (sc->pos >= sc->len || sc->s[sc->pos] != ':')
			return -EINVAL;
		sc->pos++;
		if ((base && dynbuf_add(&sc->path, ".", 1)) ||
		    dynbuf_add(&sc->path, sc->key.data ? sc->key.data : "", sc->key.len))
			return -E2BIG;
		r = scan_value(sc);
		sc->path.len = base;
		if (sc->path.data)
			sc->path.data[base] = '\0';
		if (r)
			return r;
		skip_ws(sc);
		if (sc->pos >= sc->len)
			return -EINVAL;
		if (sc->s[sc->pos] == '}') {
			sc->pos++;
			return 0;
		}
		if (sc->s[sc->pos] != ',')
			return -EINVAL;
		sc->pos++;
	}
}

static int scan_array(struct scan *sc)
{
	size_t base = sc->path.len;
	int r;
	sc->pos++; /* [ */
	skip_ws(sc);
	if (sc->pos < sc->len && sc->s[sc->pos] == ']') {
		sc->pos++;
		return 0;
	}
	for (size_t i = 0;; i++) {
		if (dynbuf_printf(&sc->path, "[%zu]", i))
			return -E2BIG;
		r = scan_value(sc);
		sc->path.len = base;
		sc->path.data[base] = '\0';
		if (r)
			return r;
		skip_ws(sc);
		if (sc->pos >= sc->len)
			return -EINVAL;
		if (sc->s[sc->pos] == ']') {
			sc->pos++;
			return 0;
		}
		if (sc->s[sc->pos] != ',')
			return -EINVAL;
		sc->pos++;
	}
}

static int scan_value(struct scan *sc)
{
	int r;
	skip_ws(sc);
	if (sc->pos >= sc->len)
		return -EINVAL;
	if ((r = record(sc)))
		return r;
	char c = sc->s[sc->pos];
	if (c == '{' || c == '[') {
		if (++sc->depth > JSONPOS_MAX_DEPTH)
			return -E2BIG;
		r = c == '{' ? scan_object(sc) : scan_array(sc);
		sc->depth--;
		return r;
	}
	if (c == '"')
		return scan_string(sc, NULL);
	/* number, true, false, null: jansson has checked their spelling */
	size_t start = sc->pos;
	while (sc->pos < sc->len && sc->s[sc->pos] &&
	       strchr("+-.0123456789eEabcdfilnrstu", sc->s[sc->pos]))
		sc->pos++;
	return sc->pos > start ? 0 : -EINVAL;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct jsonpos_entry *x = a, *y = b;
	int c = strcmp(x->path, y->path);
	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

int jsonpos_index(const char *text, size_t len, struct jsonpos **out)
{
	struct scan sc = {.s = text, .len = len, .line = 1};
	int r;
	dynbuf_init(&sc.path, JSONPOS_MAX_PATH_BYTES);
	dynbuf_init(&sc.arena, JSONPOS_MAX_PATH_BYTES);
	dynbuf_init(&sc.key, JSONPOS_MAX_PATH_BYTES);
	*out = NULL;
	if (!text) {
		r = -EINVAL;
		goto out;
	}
	if ((r = scan_value(&sc)))
		goto out;
	skip_ws(&sc);
	if (sc.pos != sc.len) {
		r = -EINVAL;
		goto out;
	}
	struct jsonpos *p = xcalloc(1, sizeof(*p));
	p->paths = dynbuf_steal(&sc.arena, NULL);
	p->e = sc.e;
	p->n = sc.n;
	sc.e = NULL;
	for (size_t i = 0; i < p->n; i++)
		p->e[i].path = p->paths + p->e[i].off;
	qsort(p->e, p->n, sizeof(*p->e), entry_cmp);
	*out = p;
out:
	free(sc.e);
	dynbuf_free(&sc.path);
	dynbuf_free(&sc.arena);
	dynbuf_free(&sc.key);
	return r;
}

void jsonpos_free(struct jsonpos *p)
{
	if (!p)
		return;
	free(p->paths);
	free(p->e);
	free(p);
}

size_t jsonpos_count(const struct jsonpos *p)
{
	return p ? p->n : 0;
}

/* The first entry (in document order) whose path is exactly path, or NULL. */
static const struct jsonpos_entry *find(const struct jsonpos *p, const char *path, size_t len)
{
	size_t lo = 0, hi = p->n;
	while (lo < hi) { /* lower bound */
		size_t mid = lo + (hi - lo) / 2;
		const char *s = p->e[mid].path;
		int c = strncmp(s, path, len);
		if (c == 0 && s[len] != '\0')
			c = 1;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < p->n) {
		const char *s = p->e[lo].path;
		if (strncmp(s, path, len) == 0 && s[len] == '\0')
			return &p->e[lo];
	}
	return NULL;
}

int jsonpos_line(const struct jsonpos *p, const char *path)
{
	if (!p || !path)
		return 0;
	size_t len = strlen(path);
	for (;;) {
		const struct jsonpos_entry *e = find(p, path, len);
		if (e)
			return e->line;
		if (len == 0)
			return 0;
		/* Drop the last component: "[N]" or ".key" (or the first key). */
		size_t i = len;
		if (path[len - 1] == ']') {
			while (i > 0 && path[i - 1] != '[')
				i--;
			len = i ? i - 1 : 0;
		} else {
			while (i > 0 && path[i - 1] != '.' && path[i - 1] != ']')
				i--;
			len = (i > 0 && path[i - 1] == '.') ? i - 1 : i;
		}
	}
}
