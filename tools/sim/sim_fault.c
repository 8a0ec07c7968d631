/*
 * sim_fault.c: fault injection: the global fault set, the sets scoped to
 * one service or one path, the per-request decision, and the control
 * routes GET/POST /_sim/faults.
 *
 * A request uses exactly one set: its service's scoped set if there is one,
 * else its path's, else the global set. In that set "down" wins, then
 * "fail_next" (counted down per set), then one uniform draw u decides among
 * hang, rate limit, error and malformed by consecutive bands of their
 * rates: [0, hang) hangs, the next rate_limit_rate 429s, and so on, so the
 * rates are exact and the kinds exclusive. Draw n is a pure function of
 * (--seed, n) and n counts faultable requests, so a given seed and request
 * sequence gives the same faults every run. Latency and wrap_message apply
 * on top of any outcome.
 */
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define MAX_SCOPES    256
#define MAX_SCOPE_KEY 256

enum scope_kind { SCOPE_SERVICE, SCOPE_PATH };

struct scope {
	enum scope_kind kind;
	char *key; /* owned */
	struct sim_faultset set;
};

static struct {
	pthread_mutex_t lock;
	struct sim_faultset global;
	struct scope scopes[MAX_SCOPES];
	size_t n_scopes;
	uint64_t draws;
	uint64_t malformed;
} F = {.lock = PTHREAD_MUTEX_INITIALIZER};

static const char *const fault_names[SIM_FAULT__COUNT] = {
	[SIM_FAULT_ERROR] = "error",	     [SIM_FAULT_RATE_LIMITED] = "rate_limited",
	[SIM_FAULT_HANG] = "hang",	     [SIM_FAULT_MALFORMED] = "malformed",
	[SIM_FAULT_FAIL_NEXT] = "fail_next", [SIM_FAULT_DOWN] = "down",
};

const char *sim_fault_name(enum sim_fault f)
{
	return f > SIM_FAULT_NONE && f < SIM_FAULT__COUNT ? fault_names[f] : NULL;
}

void sim_faultset_defaults(struct sim_faultset *fs)
{
	memset(fs, 0, sizeof(*fs));
	fs->retry_after_s = 1;
	fs->hang_ms = 600000;
}

/* ---- decision ------------------------------------------------------- */

static struct sim_faultset *find_scope(enum scope_kind kind, const char *key)
{
	for (size_t i = 0; i < F.n_scopes; i++) {
		if (F.scopes[i].kind == kind && strcmp(F.scopes[i].key, key) == 0)
			return &F.scopes[i].set;
	}
	return NULL;
}

/*
 * The set scoped to path: the longest scope that is path itself or one of
 * its prefixes ending at a '/' ("/provincial/api/v1/thu-tuc" scopes
 * "/provincial/api/v1/thu-tuc/1.001193..." too), so that a REST resource
 * and its items fail together.
 */
static struct sim_faultset *find_path_scope(const char *path)
{
	struct sim_faultset *best = NULL;
	size_t best_len = 0;

	for (size_t i = 0; i < F.n_scopes; i++) {
		const char *key = F.scopes[i].key;
		size_t n = strlen(key);

		if (F.scopes[i].kind != SCOPE_PATH || n < best_len || strncmp(path, key, n) != 0)
			continue;
		if (path[n] == '\0' || path[n] == '/' || (n > 0 && key[n - 1] == '/')) {
			best = &F.scopes[i].set;
			best_len = n;
		}
	}
	return best;
}

void sim_fault_decide(const char *path, const char *service, struct sim_fault_decision *d)
{
	struct sim_faultset *fs = NULL;
	double u, edge;

	memset(d, 0, sizeof(*d));
	pthread_mutex_lock(&F.lock);
	if (F.n_scopes > 0 && service != NULL)
		fs = find_scope(SCOPE_SERVICE, service);
	if (F.n_scopes > 0 && fs == NULL && path != NULL)
		fs = find_path_scope(path);
	if (fs == NULL)
		fs = &F.global;
	d->latency_ms = fs->latency_ms;
	d->hang_ms = fs->hang_ms;
	d->retry_after_s = fs->retry_after_s;
	d->wrap_message = fs->wrap_message;
	u = sim_unit(sim_rand_at(SIM_STREAM_FAULT, F.draws++));
	if (fs->down) {
		d->fault = SIM_FAULT_DOWN;
	} else if (fs->fail_next > 0) {
		fs->fail_next--;
		d->fault = SIM_FAULT_FAIL_NEXT;
	} else if (u < (edge = fs->hang_rate)) {
		d->fault = SIM_FAULT_HANG;
	} else if (u < (edge += fs->rate_limit_rate)) {
		d->fault = SIM_FAULT_RATE_LIMITED;
	} else if (u < (edge += fs->error_rate)) {
		d->fault = SIM_FAULT_ERROR;
	} else if (u < edge + fs->malformed_rate) {
		d->fault = SIM_FAULT_MALFORMED;
		/* Alternate HTML page and truncated JSON. */
		d->malformed_html = F.malformed++ % 2 == 0;
	}
	pthread_mutex_unlock(&F.lock);
	if (d->fault != SIM_FAULT_NONE)
		sim_stats_fault(d->fault);
}

/* ---- configuration as JSON ------------------------------------------ */

static json_t *set_to_json(const struct sim_faultset *fs)
{
	json_t *o = json_pack("{s:f, s:f, s:I, s:I, s:f, s:I, s:f, s:I, s:b, s:b}", "error_rate",
			      fs->error_rate, "rate_limit_rate", fs->rate_limit_rate,
			      "retry_after_s", (json_int_t)fs->retry_after_s, "latency_ms",
			      (json_int_t)fs->latency_ms, "hang_rate", fs->hang_rate, "hang_ms",
			      (json_int_t)fs->hang_ms, "malformed_rate", fs->malformed_rate,
			      "fail_next", (json_int_t)fs->fail_next, "down", fs->down,
			      "wrap_message", fs->wrap_message);

	if (o == NULL)
		sim_die("json_pack: out of memory");
	return o;
}

/* The whole configuration. Lock held. */
static json_t *config_to_json(void)
{
	json_t *o = json_object();
	json_t *services = json_object();
	json_t *paths = json_object();

	if (o == NULL || services == NULL || paths == NULL)
		sim_die("json: out of memory");
	for (size_t i = 0; i < F.n_scopes; i++) {
		json_t *into = F.scopes[i].kind == SCOPE_SERVICE ? services : paths;

		json_object_set_new(into, F.scopes[i].key, set_to_json(&F.scopes[i].set));
	}
	json_object_set_new(o, "global", set_to_json(&F.global));
	json_object_set_new(o, "services", services);
	json_object_set_new(o, "paths", paths);
	json_object_set_new(o, "session_ttl_s", json_integer(sim_session_ttl()));
	return o;
}

/*
 * Applies the fields of req onto fs. Returns NULL, or a message (static or
 * in err) naming the first bad field; fs is then partly changed, so callers
 * work on a copy.
 */
static const char *apply_fields(json_t *req, struct sim_faultset *fs, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		int type; /* 'r' rate, 'u' unsigned, 'U' uint64, 'b' bool */
		size_t off;
	} fields[] = {
		{"error_rate", 'r', offsetof(struct sim_faultset, error_rate)},
		{"rate_limit_rate", 'r', offsetof(struct sim_faultset, rate_limit_rate)},
		{"hang_rate", 'r', offsetof(struct sim_faultset, hang_rate)},
		{"malformed_rate", 'r', offsetof(struct sim_faultset, malformed_rate)},
		{"retry_after_s", 'u', offsetof(struct sim_faultset, retry_after_s)},
		{"latency_ms", 'u', offsetof(struct sim_faultset, latency_ms)},
		{"hang_ms", 'u', offsetof(struct sim_faultset, hang_ms)},
		{"fail_next", 'U', offsetof(struct sim_faultset, fail_next)},
		{"down", 'b', offsetof(struct sim_faultset, down)},
		{"wrap_message", 'b', offsetof(struct sim_faultset, wrap_message)},
	};
	const char *key;
	json_t *v;

	json_object_foreach (req, key, v) {
		size_t i;
		char *p;

		if (strcmp(key, "service") == 0 || strcmp(key, "path") == 0 ||
		    strcmp(key, "reset") == 0 || strcmp(key, "session_ttl_s") == 0)
			continue;
		for (i = 0; i < SIM_ARRAY_SIZE(fields); i++) {
			if (strcmp(key, fields[i].name) == 0)
				break;
		}
		if (i == SIM_ARRAY_SIZE(fields)) {
			snprintf(err, errlen, "unknown field \"%.100s\"", key);
			return err;
		}
		p = (char *)fs + fields[i].off;
		switch (fields[i].type) {
		case 'r': {
			double r = json_number_value(v);

			if (!json_is_number(v) || !(r >= 0.0 && r <= 1.0))
				goto bad;
			memcpy(p, &r, sizeof(r));
			break;
		}
		case 'u': {
			unsigned u;

			if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			    json_integer_value(v) > 86400000)
				goto bad;
			u = (unsigned)json_integer_value(v);
			memcpy(p, &u, sizeof(u));
			break;
		}
		case 'U': {
			uint64_t u;

			if (!json_is_integer(v) || json_integer_value(v) < 0)
				goto bad;
			u = (uint64_t)json_integer_value(v);
			memcpy(p, &u, sizeof(u));
			break;
		}
		case 'b': {
			bool b = json_is_true(v);

			if (!json_is_boolean(v))
				goto bad;
			memcpy(p, &b, sizeof(b));
			break;
		}
		}
		continue;
	bad:
		snprintf(err, errlen, "bad value for \"%s\" (%s)", key,
			 fields[i].type == 'r'	 ? "a number in [0, 1]"
			 : fields[i].type == 'b' ? "true or false"
						 : "a non-negative integer");
		return err;
	}
	return NULL;
}

static void drop_scope(size_t i)
{
	free(F.scopes[i].key);
	F.scopes[i] = F.scopes[--F.n_scopes];
}

static void reset_all(void)
{
	while (F.n_scopes > 0)
		drop_scope(F.n_scopes - 1);
	sim_faultset_defaults(&F.global);
	sim_session_set_ttl(sim_config.session_ttl_s);
}

/* ---- control routes ------------------------------------------------- */

static void get_faults(struct sim_request *rq, struct sim_reply *rp)
{
	json_t *o;

	(void)rq;
	pthread_mutex_lock(&F.lock);
	o = config_to_json();
	pthread_mutex_unlock(&F.lock);
	sim_reply_json(rp, MHD_HTTP_OK, o);
}

/*
 * POST /_sim/faults: merges the given fields into the global set, or into
 * the set scoped by "service" or "path" (created from the defaults).
 * {"reset":true} clears everything (with a scope: drops that scope).
 */
static void post_faults(struct sim_request *rq, struct sim_reply *rp)
{
	json_t *req = sim_request_json_object(rq, rp);
	json_t *jservice, *jpath, *jttl, *jreset, *o;
	enum scope_kind kind = SCOPE_SERVICE;
	const char *key = NULL;
	struct sim_faultset *target, copy;
	const char *why;
	char err[200];

	if (req == NULL)
		return;
	jservice = json_object_get(req, "service");
	jpath = json_object_get(req, "path");
	jttl = json_object_get(req, "session_ttl_s");
	jreset = json_object_get(req, "reset");
	if (jservice != NULL && jpath != NULL) {
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
				"give \"service\" or \"path\", not both");
		return;
	}
	if (jservice != NULL || jpath != NULL) {
		json_t *j = jservice ? jservice : jpath;

		kind = jservice ? SCOPE_SERVICE : SCOPE_PATH;
		key = json_string_value(j);
		if (key == NULL || key[0] == '\0' || strlen(key) > MAX_SCOPE_KEY) {
			sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
					"\"%s\" must be a non-empty string of at most %d bytes",
					jservice ? "service" : "path", MAX_SCOPE_KEY);
			return;
		}
		if (jttl != NULL) {
			sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
					"session_ttl_s is global, it cannot be scoped");
			return;
		}
	}
	if (jttl != NULL && (!json_is_integer(jttl) || json_integer_value(jttl) < 0 ||
			     json_integer_value(jttl) > 100L * 365 * 86400)) {
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
				"bad value for \"session_ttl_s\" (a non-negative integer)");
		return;
	}
	if (jreset != NULL && !json_is_boolean(jreset)) {
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
				"bad value for \"reset\" (true or false)");
		return;
	}

	pthread_mutex_lock(&F.lock);
	if (json_is_true(jreset)) {
		if (key == NULL) {
			reset_all();
		} else {
			for (size_t i = 0; i < F.n_scopes; i++) {
				if (F.scopes[i].kind == kind && strcmp(F.scopes[i].key, key) == 0) {
					drop_scope(i);
					break;
				}
			}
		}
	}
	target = key ? find_scope(kind, key) : &F.global;
	if (target != NULL) {
		copy = *target;
	} else {
		sim_faultset_defaults(&copy);
	}
	why = apply_fields(req, &copy, err, sizeof(err));
	if (why != NULL) {
		pthread_mutex_unlock(&F.lock);
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request", "%s", why);
		return;
	}
	/* A reset of a scope with no other field only drops the scope. */
	if (target == NULL && key != NULL &&
	    !(json_is_true(jreset) && json_object_size(req) == 2)) {
		if (F.n_scopes == MAX_SCOPES) {
			pthread_mutex_unlock(&F.lock);
			sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
					"too many scoped fault sets (at most %d)", MAX_SCOPES);
			return;
		}
		F.scopes[F.n_scopes].kind = kind;
		F.scopes[F.n_scopes].key = sim_xstrdup(key);
		target = &F.scopes[F.n_scopes++].set;
	}
	if (target != NULL)
		*target = copy;
	if (jttl != NULL)
		sim_session_set_ttl((unsigned)json_integer_value(jttl));
	o = config_to_json();
	pthread_mutex_unlock(&F.lock);
	sim_log(SIM_LOG_INFO, "faults changed%s%s", key ? " for " : "", key ? key : "");
	sim_reply_json(rp, MHD_HTTP_OK, o);
}

/* ---- module --------------------------------------------------------- */

static int fault_init(void)
{
	pthread_mutex_lock(&F.lock);
	F.global = sim_config.faults;
	pthread_mutex_unlock(&F.lock);
	sim_route_add(
		&(struct sim_route){"GET", "/_sim/faults", SIM_ROUTE_CONTROL, get_faults, NULL});
	sim_route_add(&(struct sim_route){"POST", "/_sim/faults",
					  SIM_ROUTE_CONTROL | SIM_ROUTE_JSON, post_faults, NULL});
	return 0;
}

static void fault_fini(void)
{
	pthread_mutex_lock(&F.lock);
	while (F.n_scopes > 0)
		drop_scope(F.n_scopes - 1);
	pthread_mutex_unlock(&F.lock);
}

const struct sim_module sim_fault_module = {"fault", fault_init, fault_fini};
