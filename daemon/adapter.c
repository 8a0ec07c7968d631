/*
 * adapter: the national integration adapter's envelope and authentication,
 * on top of one http_client (see adapter.h and shared/domain/INTERFACES.md
 * §1).
 *
 * Calls wait in `waiting` until the credentials they need are held (an
 * OAuth2 token, then a session), are then sent and sit in `sent` until the
 * HTTP core hands back the final answer. Only one login and one token
 * request are ever in flight; everything that needs them waits. A call
 * answered "session expired" (or 401 under OAuth2) goes back to `waiting`
 * once, which triggers the one re-login all such calls share.
 *
 * Body-level classification runs in the HTTP core's classify callback, so
 * that an answer the rules call transient (an HTML page from a gateway) is
 * retried with the core's back-off like any 503.
 *
 * Sessions, tokens, the password and the consumer secret are never logged
 * and are wiped when dropped. Nothing here calls a done callback from inside
 * adapter_call or adapter_login; failures of waiting calls are delivered
 * from the HTTP completion that decided them.
 */
#include "adapter.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "list.h"
#include "jsontext.h"
#include "log.h"
#include "util.h"

#define ADAPTER_EXCERPT_BYTES	80  /* of a non-JSON answer, in the reason */
#define ADAPTER_MESSAGE_BYTES	400 /* of an answer's message, in the reason */
#define ADAPTER_TOKEN_DEFAULT_S 300 /* lifetime of a token whose answer omits expires_in */

const struct conf_option adapter_options[] = {
	{"auth", CONF_ENUM, "session", 0, 0, "none|session|oauth2|oauth2+session",
	 offsetof(struct adapter_opts, auth), 0,
	 "How to authenticate: none, session (log in with username/password, the session "
	 "travels in every body), oauth2 (gateway client-credentials token as a Bearer header) "
	 "or oauth2+session (both, for an adapter behind an LGSP/NGSP gateway)."},
	{"auth_endpoint", CONF_STRING, "/auth", 0, 0, NULL,
	 offsetof(struct adapter_opts, auth_endpoint), 0,
	 "Path (appended to url) of the adapter's login service."},
	{"integration_endpoint", CONF_STRING, "/integration", 0, 0, NULL,
	 offsetof(struct adapter_opts, integration_endpoint), 0,
	 "Path of the adapter's integration service (writes and look-ups)."},
	{"share_endpoint", CONF_STRING, "/share", 0, 0, NULL,
	 offsetof(struct adapter_opts, share_endpoint), 0,
	 "Path of the adapter's sharing service (catalogues)."},
	{"username", CONF_STRING, NULL, 0, 0, NULL, offsetof(struct adapter_opts, username), 0,
	 "Account name for the session login (auth = session or oauth2+session)."},
	{"password", CONF_SECRET, NULL, 0, 0, NULL, offsetof(struct adapter_opts, password), 0,
	 "File (absolute path) or systemd credential name holding the login password; the "
	 "file must not be readable by others."},
	{"dstcode", CONF_STRING, NULL, 0, 0, NULL, offsetof(struct adapter_opts, dstcode), 0,
	 "Value of the dstcode header sent with the login, when the adapter asks for one."},
	{"madonvi", CONF_STRING, NULL, 0, 0, NULL, offsetof(struct adapter_opts, madonvi), 0,
	 "Agency id (mã đơn vị) sent as \"madonvi\" in every call."},
	{"token_url", CONF_URL, NULL, 0, 0, NULL, offsetof(struct adapter_opts, token_url), 0,
	 "OAuth2 token endpoint of the gateway (auth = oauth2 or oauth2+session), e.g. "
	 "https://gateway.example/token."},
	{"consumer_key", CONF_STRING, NULL, 0, 0, NULL, offsetof(struct adapter_opts, consumer_key),
	 0, "OAuth2 client id (consumer key) issued by the gateway."},
	{"consumer_secret", CONF_SECRET, NULL, 0, 0, NULL,
	 offsetof(struct adapter_opts, consumer_secret), 0,
	 "File (absolute path) or systemd credential name holding the OAuth2 consumer secret."},
	{"success_codes", CONF_STRING, "0,00", 0, 0, NULL,
	 offsetof(struct adapter_opts, success_codes), 0,
	 "Comma-separated error_code values that mean success; any other code is a failure."},
	{"expired_codes", CONF_STRING, "-1", 0, 0, NULL,
	 offsetof(struct adapter_opts, expired_codes), 0,
	 "Comma-separated error_code values that mean the session expired: the adapter logs in "
	 "again and retries the call once."},
	{"expired_pattern", CONF_STRING, "hết hạn|expired|session", 0, 0, NULL,
	 offsetof(struct adapter_opts, expired_pattern), 0,
	 "'|'-separated pieces of text (ASCII letters compared case-insensitively) whose presence "
	 "in the message of an unsuccessful answer also means the session expired."},
	CONF_OPTION_END,
};

/* One adapter_call or adapter_login. */
struct call {
	struct list_node node; /* on waiting or sent (or a local list), or none */
	struct adapter *a;     /* borrowed; NULL once the adapter is freed */
	bool is_login;	       /* adapter_login: done when credentials are held */
	enum adapter_endpoint ep;
	char *service;	/* owned */
	json_t *params; /* owned, may be NULL */
	adapter_classify_fn classify;
	bool classify_first;   /* classify sees a refusal before the expiry rule */
	unsigned max_attempts; /* 0: the client's */
	adapter_done_fn done;  /* NULL once cancelled */
	void *ud;
	bool relogged;	      /* the one re-login after an expiry is spent */
	bool token_refreshed; /* the one token refresh after a 401 is spent */
	uint64_t sent_session_gen, sent_token_gen;

	/* What classify found in the last attempt (cls_attempt). */
	unsigned cls_attempt;
	json_t *answer; /* owned */
	bool expired, unauthorized;
};

/* A login or token request in flight. */
struct auth_req {
	struct adapter *a; /* borrowed; NULL once the adapter is freed */
	bool is_token;
	uint64_t token_gen; /* token used to send it */
	unsigned cls_attempt;
	bool unauthorized;
	char *value; /* owned secret: the session or access token */
	int64_t expires_in_s;
};

struct adapter {
	struct http_client *http; /* borrowed */
	char *name, *field;	  /* owned */
	const char *fields[2];
	struct adapter_opts o;		       /* owned copies; secrets wiped on free */
	char **success, **expired, **patterns; /* owned NULL-terminated lists */

	char *session; /* owned secret */
	uint64_t session_gen;
	char *token; /* owned secret */
	uint64_t token_gen;
	uint64_t token_expiry_us;	    /* monotonic */
	struct auth_req *login, *token_req; /* in flight, NULL otherwise */
	bool login_401_spent;
	unsigned long logins;
	struct complaint auth_complaint; /* repeated login/token failures */

	struct list_head waiting; /* need credentials first */
	struct list_head sent;	  /* submitted to the HTTP client */
	bool freeing;
};

/* The response handed over when there is no HTTP answer to show. */
static const struct http_response no_response = {.body = "", .retry_after_ms = -1};

/* ---- lists and small helpers ------------------------------------------- */

/* The call of a list node; NULL for NULL (an empty list's head, say). */
static struct call *call_of(struct list_node *n)
{
	return list_entry(n, struct call, node);
}

/* Moves every call of from to the end of to. */
static void call_take_all(struct list_head *to, struct list_head *from)
{
	struct call *c;
	while ((c = call_of(from->head)))
		list_append(to, &c->node);
}

static void call_forget_answer(struct call *c)
{
	json_decref(c->answer);
	c->answer = NULL;
	c->expired = c->unauthorized = false;
}

static void call_free(struct call *c)
{
	if (!c)
		return;
	list_remove(&c->node);
	free(c->service);
	json_decref(c->params);
	json_decref(c->answer);
	free(c);
}

static void auth_req_free(struct auth_req *q)
{
	if (!q)
		return;
	secret_free(q->value);
	free(q);
}

static bool uses_session(const struct adapter *a)
{
	return a->o.auth == ADAPTER_AUTH_SESSION || a->o.auth == ADAPTER_AUTH_BOTH;
}

static bool uses_token(const struct adapter *a)
{
	return a->o.auth == ADAPTER_AUTH_OAUTH2 || a->o.auth == ADAPTER_AUTH_BOTH;
}

static bool is_2xx(long status)
{
	return status >= 200 && status < 300;
}

static char **split_list(const char *s, char sep)
{
	size_t n = 0;
	char **v = xcalloc(1, sizeof(*v));
	const char *p = s ? s : "";
	while (*p) {
		const char *end = strchr(p, sep);
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char *item = str_strip(xstrndup(p, len));
		if (*item) {
			v = xrealloc(v, (n + 2) * sizeof(*v));
			v[n++] = item;
			v[n] = NULL;
		} else {
			free(item);
		}
		p += len;
		if (*p)
			p++;
	}
	return v;
}

static void split_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static bool in_list(char *const *v, const char *s)
{
	for (size_t i = 0; v && v[i]; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

static char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Substring search folding ASCII letters only: UTF-8 bytes compare as they are. */
static bool contains_ascii_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	if (!n)
		return false;
	for (const char *h = hay; *h; h++) {
		size_t i = 0;
		while (i < n && h[i] && ascii_lower(h[i]) == ascii_lower(needle[i]))
			i++;
		if (i == n)
			return true;
	}
	return false;
}

/* At most max bytes of s, not cutting a UTF-8 sequence, control characters as spaces. */
static char *excerpt(const char *s, size_t len, size_t max)
{
	size_t n = LT_MIN(len, max);
	if (n < len)
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	char *e = xstrndup(s, n);
	for (char *p = e; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return e;
}

static char *not_json_why(const struct http_response *r)
{
	char type[64];
	const char *ct = r->content_type && *r->content_type ? r->content_type : "no content type";
	size_t tl = strcspn(ct, ";");
	snprintf(type, sizeof(type), "%.*s", (int)LT_MIN(tl, sizeof(type) - 1), ct);
	char *ex = excerpt(r->body, r->body_len, ADAPTER_EXCERPT_BYTES);
	char *why = xasprintf("answer is not JSON (%s: %s)", type, ex);
	free(ex);
	return why;
}

static void answer_view(json_t *ans, const struct http_response *raw, struct adapter_answer *out)
{
	const char *code = ans ? json_string_value(json_object_get(ans, "error_code")) : NULL;
	const char *msg = ans ? json_string_value(json_object_get(ans, "message")) : NULL;
	json_t *res = ans ? json_object_get(ans, "result") : NULL;
	out->answer = ans;
	out->result = res;
	out->error_code = code ? code : "";
	out->message = msg ? msg : "";
	out->raw = raw ? raw : &no_response;
}

/* "message (error_code X)", the message bounded. */
static char *answer_why(const char *prefix, const struct adapter_answer *aa)
{
	char *msg = excerpt(aa->message, strlen(aa->message), ADAPTER_MESSAGE_BYTES);
	char *why;
	if (*msg)
		why = xasprintf("%s%s (error_code %s)", prefix, msg, aa->error_code);
	else
		why = xasprintf("%serror_code %s", prefix, aa->error_code);
	free(msg);
	return why;
}

static void drop_session(struct adapter *a)
{
	secret_free(a->session);
	a->session = NULL;
}

static void drop_token(struct adapter *a)
{
	secret_free(a->token);
	a->token = NULL;
	a->token_expiry_us = 0;
}

static bool token_valid(const struct adapter *a)
{
	return a->token && now_mono_us() < a->token_expiry_us;
}

/* ---- answers ----------------------------------------------------------- */

static void normalise_error_code(json_t *j)
{
	json_t *ec = json_object_get(j, "error_code");
	char buf[64];
	if (!ec)
		return;
	if (json_is_string(ec)) {
		char *s = str_strip(xstrdup(json_string_value(ec)));
		json_object_set_new(j, "error_code", json_string(s));
		free(s);
	} else if (json_is_integer(ec)) {
		snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(ec));
		json_object_set_new(j, "error_code", json_string(buf));
	} else if (json_is_real(ec)) {
		double d = json_real_value(ec);
		if (d == (double)(long long)d)
			snprintf(buf, sizeof(buf), "%lld", (long long)d);
		else
			snprintf(buf, sizeof(buf), "%g", d);
		json_object_set_new(j, "error_code", json_string(buf));
	} else {
		/* null, boolean, object: no usable code, so treated as absent */
		json_object_del(j, "error_code");
	}
}

json_t *adapter_parse_answer(const char *body, size_t len)
{
	json_error_t e;
	if (!body || !len)
		return NULL;
	json_t *j = jsontext_parse(body, len, 0, &e);
	if (!j || !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	json_t *msg = json_object_get(j, "message");
	if (json_is_string(msg)) {
		json_t *inner =
			jsontext_parse(json_string_value(msg), json_string_length(msg), 0, &e);
		if (json_is_object(inner) &&
		    (json_object_get(inner, "error_code") || json_object_get(inner, "result"))) {
			/* The wrapper's code stands when the wrapped answer has none. */
			json_t *outer_code = json_object_get(j, "error_code");
			if (!json_object_get(inner, "error_code") && outer_code)
				json_object_set(inner, "error_code", outer_code);
			json_decref(j);
			j = inner;
			inner = NULL;
		}
		json_decref(inner);
	}
	normalise_error_code(j);
	return j;
}

static bool is_expired(const struct adapter *a, const struct adapter_answer *aa)
{
	if (*aa->error_code && in_list(a->expired, aa->error_code))
		return true;
	for (size_t i = 0; a->patterns[i]; i++)
		if (contains_ascii_ci(aa->message, a->patterns[i]))
			return true;
	return false;
}

/* ---- delivery ---------------------------------------------------------- */

/* Calls c's done (c is off every list) and frees c. Touches nothing of c->a. */
static void call_deliver(struct call *c, json_t *answer, const struct http_response *raw,
			 enum http_outcome o, const char *why)
{
	struct adapter_answer aa;
	answer_view(answer, raw, &aa);
	if (c->done)
		c->done(&aa, o, o == HTTP_OK ? NULL : why, c->ud);
	call_free(c);
}

/* Completes every call waiting now (not those added by their callbacks). */
static void fail_waiting(struct adapter *a, enum http_outcome o, const char *why,
			 const struct http_response *raw)
{
	struct list_head l = {0};
	struct call *c;
	call_take_all(&l, &a->waiting);
	/* From here a may be freed by a callback. */
	while ((c = call_of(list_pop_front(&l))))
		call_deliver(c, NULL, raw, o, why);
}

/* ---- requests ---------------------------------------------------------- */

static enum http_outcome call_classify(const struct http_response *r, void *ud, char **why);
static void call_http_done(const struct http_response *r, enum http_outcome o, const char *why,
			   void *ud);
static enum http_outcome auth_classify(const struct http_response *r, void *ud, char **why);
static void auth_http_done(const struct http_response *r, enum http_outcome o, const char *why,
			   void *ud);

static void add_bearer(struct adapter *a, struct http_request *r)
{
	http_request_header(r, "Authorization: Bearer %s", a->token);
}

static void start_token(struct adapter *a)
{
	struct auth_req *q = xcalloc(1, sizeof(*q));
	struct http_request *r = http_request_new("POST", a->o.token_url);
	q->a = a;
	q->is_token = true;
	http_request_basic_auth(r, a->o.consumer_key, a->o.consumer_secret);
	http_request_body(r, xstrdup("grant_type=client_credentials"),
			  strlen("grant_type=client_credentials"),
			  "application/x-www-form-urlencoded");
	http_request_header(r, "Accept: application/json");
	http_request_classify(r, auth_classify, q);
	http_request_done(r, auth_http_done, q);
	a->token_req = q;
	http_submit(a->http, r);
}

static void start_login(struct adapter *a)
{
	struct auth_req *q = xcalloc(1, sizeof(*q));
	struct http_request *r = http_request_new("POST", a->o.auth_endpoint);
	json_t *body =
		json_pack("{s:s, s:s}", "username", a->o.username, "password", a->o.password);
	if (!body)
		log_fatal("cannot build the login request");
	q->a = a;
	http_request_json(r, body);
	json_decref(body);
	if (a->o.dstcode && *a->o.dstcode)
		http_request_header(r, "dstcode: %s", a->o.dstcode);
	if (uses_token(a)) {
		add_bearer(a, r);
		q->token_gen = a->token_gen;
	}
	http_request_classify(r, auth_classify, q);
	http_request_done(r, auth_http_done, q);
	a->login = q;
	http_submit(a->http, r);
}

static void send_call(struct adapter *a, struct call *c)
{
	json_t *env = json_object();
	const char *path = c->ep == ADAPTER_SHARE ? a->o.share_endpoint : a->o.integration_endpoint;
	struct http_request *r = http_request_new("POST", path);

	if (uses_session(a))
		json_object_set_new(env, "session", json_string(a->session));
	if (a->o.madonvi && *a->o.madonvi)
		json_object_set_new(env, "madonvi", json_string(a->o.madonvi));
	json_object_set_new(env, "service", json_string(c->service));
	if (c->params)
		json_object_update_missing(env, c->params);
	http_request_json(r, env);
	json_decref(env);
	if (uses_token(a))
		add_bearer(a, r);
	c->sent_session_gen = a->session_gen;
	c->sent_token_gen = a->token_gen;
	call_forget_answer(c);
	c->cls_attempt = 0;
	if (c->max_attempts)
		http_request_max_attempts(r, c->max_attempts);
	http_request_classify(r, call_classify, c);
	http_request_done(r, call_http_done, c);
	list_append(&a->sent, &c->node);
	http_submit(a->http, r);
}

/*
 * Moves things along: fetches the token or logs in when a waiting call needs
 * it, otherwise sends the waiting calls and completes waiting logins. Only
 * called where done callbacks may run (they cannot be reached from
 * adapter_call: logins only wait while credentials are missing).
 */
static void kick(struct adapter *a)
{
	struct list_head logins = {0};
	struct call *c;

	if (a->freeing || list_empty(&a->waiting))
		return;
	if (uses_token(a) && !token_valid(a)) {
		drop_token(a);
		if (!a->token_req)
			start_token(a);
		return;
	}
	if (uses_session(a) && !a->session) {
		if (!a->login)
			start_login(a);
		return;
	}
	while ((c = call_of(a->waiting.head))) {
		if (c->is_login)
			list_append(&logins, &c->node);
		else
			send_call(a, c);
	}
	/* From here a may be freed by a callback. */
	while ((c = call_of(list_pop_front(&logins))))
		call_deliver(c, NULL, NULL, HTTP_OK, NULL);
}

/* ---- classification ---------------------------------------------------- */

static enum http_outcome call_classify(const struct http_response *r, void *ud, char **why)
{
	struct call *c = ud;
	struct adapter *a = c->a;
	struct adapter_answer aa;
	enum http_outcome o = HTTP_OK;
	char *w = NULL;

	call_forget_answer(c);
	c->cls_attempt = r->attempts;
	if (!a)
		return http_classify_status(r, why);
	if (r->status == 401 && uses_token(a)) {
		c->unauthorized = true;
		*why = xstrdup("HTTP 401: the gateway refused the access token");
		return HTTP_FAIL;
	}
	c->answer = adapter_parse_answer(r->body, r->body_len);
	if (!c->answer) {
		if (is_2xx(r->status)) {
			*why = not_json_why(r);
			return HTTP_RETRY;
		}
		return http_classify_status(r, why);
	}
	answer_view(c->answer, r, &aa);
	bool success = *aa.error_code && in_list(a->success, aa.error_code);
	if (c->classify && c->classify_first && !success && is_2xx(r->status)) {
		/* The connector knows the service's refusals ("đã tồn tại"): one it
		 * recognises (it gives a reason) is never taken for an expiry. */
		char *w2 = NULL;
		enum http_outcome o2 = c->classify(&aa, HTTP_FAIL, c->ud, &w2);
		if (w2) {
			*why = w2;
			return o2;
		}
	}
	if (uses_session(a) && !success && r->status < 500 && is_expired(a, &aa)) {
		c->expired = true;
		*why = answer_why("session expired: ", &aa);
		return HTTP_FAIL;
	}
	if (!is_2xx(r->status)) {
		o = http_classify_status(r, &w);
		if (w && *aa.message) {
			char *m = excerpt(aa.message, strlen(aa.message), ADAPTER_MESSAGE_BYTES);
			char *t = xasprintf("%s: %s", w, m);
			free(m);
			free(w);
			w = t;
		}
	}
	if (o == HTTP_OK) {
		if (!*aa.error_code) {
			o = HTTP_FAIL;
			w = xstrdup("answer has no error_code");
		} else if (!success) {
			o = HTTP_FAIL;
			w = answer_why("", &aa);
		}
	}
	if (c->classify) {
		char *w2 = NULL;
		o = c->classify(&aa, o, c->ud, &w2);
		if (w2) {
			free(w);
			w = w2;
		}
	}
	*why = w;
	return o;
}

static enum http_outcome auth_classify(const struct http_response *r, void *ud, char **why)
{
	struct auth_req *q = ud;
	struct adapter *a = q->a;
	struct adapter_answer aa;
	json_t *ans = NULL;
	enum http_outcome o = HTTP_OK;

	secret_free(q->value);
	q->value = NULL;
	q->unauthorized = false;
	q->cls_attempt = r->attempts;
	if (!a)
		return http_classify_status(r, why);
	if (r->status == 401 && !q->is_token && uses_token(a)) {
		q->unauthorized = true;
		*why = xstrdup("HTTP 401: the gateway refused the access token");
		return HTTP_FAIL;
	}
	if (q->is_token && (r->status == 400 || r->status == 401 || r->status == 403)) {
		/* RFC 6749 §5.2: invalid_client and friends; waiting will not help */
		json_error_t e;
		ans = jsontext_parse(r->body, r->body_len, 0, &e);
		const char *desc = json_string_value(json_object_get(ans, "error_description"));
		if (!desc)
			desc = json_string_value(json_object_get(ans, "error"));
		char *d = desc ? excerpt(desc, strlen(desc), ADAPTER_MESSAGE_BYTES) : NULL;
		*why = xasprintf("HTTP %ld%s%s", r->status, d ? ": " : "", d ? d : "");
		free(d);
		o = HTTP_FAIL;
		goto out;
	}
	if (!is_2xx(r->status)) {
		o = http_classify_status(r, why);
		goto out;
	}
	if (q->is_token) {
		json_error_t e;
		ans = jsontext_parse(r->body, r->body_len, 0, &e);
		if (!json_is_object(ans)) {
			*why = not_json_why(r);
			o = HTTP_RETRY;
			goto out;
		}
		const char *tok = json_string_value(json_object_get(ans, "access_token"));
		if (!tok || !*tok) {
			*why = xstrdup("answer has no access_token");
			o = HTTP_FAIL;
			goto out;
		}
		json_t *exp = json_object_get(ans, "expires_in");
		q->expires_in_s = ADAPTER_TOKEN_DEFAULT_S;
		if (json_is_integer(exp) && json_integer_value(exp) > 0)
			q->expires_in_s = json_integer_value(exp);
		else if (json_is_string(exp) && atoll(json_string_value(exp)) > 0)
			q->expires_in_s = atoll(json_string_value(exp));
		q->value = xstrdup(tok);
		goto out;
	}
	ans = adapter_parse_answer(r->body, r->body_len);
	if (!ans) {
		*why = not_json_why(r);
		o = HTTP_RETRY;
		goto out;
	}
	answer_view(ans, r, &aa);
	if (!*aa.error_code) {
		*why = xstrdup("answer has no error_code");
		o = HTTP_FAIL;
	} else if (!in_list(a->success, aa.error_code)) {
		*why = answer_why("", &aa);
		o = HTTP_FAIL;
	} else {
		const char *s = json_string_value(json_object_get(ans, "session"));
		if (!s || !*s) {
			*why = xstrdup("answer has no session");
			o = HTTP_FAIL;
		} else {
			q->value = xstrdup(s);
		}
	}
out:
	json_decref(ans);
	return o;
}

/* ---- completions ------------------------------------------------------- */

static void auth_http_done(const struct http_response *r, enum http_outcome o, const char *why,
			   void *ud)
{
	struct auth_req *q = ud;
	struct adapter *a = q->a;
	bool fresh = q->cls_attempt == r->attempts && r->curl_code == 0 && r->attempts > 0;
	char *reason = NULL;

	if (!a)
		goto out;
	if (q->is_token)
		a->token_req = NULL;
	else
		a->login = NULL;

	if (o == HTTP_OK && fresh && q->value) {
		if (q->is_token) {
			drop_token(a);
			a->token = q->value;
			a->token_gen++;
			/* renew at 90% of the lifetime, before the gateway says 401 */
			a->token_expiry_us = now_mono_us() + (uint64_t)q->expires_in_s * 900000u;
			log_fields(LOG_INFO, a->fields, "OAuth2 token obtained (valid %lld s)",
				   (long long)q->expires_in_s);
			complain_release(&a->auth_complaint, LOG_NOTICE, a->fields,
					 "OAuth2 token request succeeds again");
		} else {
			drop_session(a);
			a->session = q->value;
			a->session_gen++;
			a->logins++;
			a->login_401_spent = false;
			log_fields(LOG_INFO, a->fields, "logged in to the adapter (login %lu)",
				   a->logins);
			complain_release(&a->auth_complaint, LOG_NOTICE, a->fields,
					 "login succeeds again");
		}
		q->value = NULL;
		kick(a);
		goto out;
	}
	if (!q->is_token && fresh && q->unauthorized && !a->login_401_spent) {
		a->login_401_spent = true;
		if (q->token_gen == a->token_gen)
			drop_token(a);
		kick(a);
		goto out;
	}
	reason = xasprintf("%s failed: %s", q->is_token ? "token request" : "login",
			   why ? why : http_outcome_name(o));
	complain(&a->auth_complaint, LOG_WARNING, a->fields, "%s", reason);
	/*
	 * The waiting calls were never sent: a refused login (wrong password,
	 * locked account) is a configuration problem to fix, not a verdict on
	 * their data, so they are to be retried later, never failed for good.
	 */
	fail_waiting(a, HTTP_RETRY, reason, r);
out:
	free(reason);
	auth_req_free(q);
}

static void call_http_done(const struct http_response *r, enum http_outcome o, const char *why,
			   void *ud)
{
	struct call *c = ud;
	struct adapter *a = c->a;
	bool fresh = c->cls_attempt == r->attempts && r->curl_code == 0 && r->attempts > 0;

	if (!a) {
		/* cancelled by adapter_free, which already called done */
		call_free(c);
		return;
	}
	list_remove(&c->node);
	if (fresh && c->expired && uses_session(a)) {
		if (c->relogged) {
			/* The adapter keeps refusing fresh sessions: its problem,
			 * not the call's data, so retry later. */
			call_deliver(c, c->answer, r, HTTP_RETRY,
				     "session rejected after re-login");
			return;
		}
		c->relogged = true;
		/* Only the first call back with this session drops it: one re-login for all. */
		if (c->sent_session_gen == a->session_gen && a->session) {
			log_fields(LOG_INFO, a->fields, "session expired; logging in again");
			drop_session(a);
		}
		call_forget_answer(c);
		list_append(&a->waiting, &c->node);
		kick(a);
		return;
	}
	if (fresh && c->unauthorized && uses_token(a) && !c->token_refreshed) {
		c->token_refreshed = true;
		if (c->sent_token_gen == a->token_gen)
			drop_token(a);
		call_forget_answer(c);
		list_append(&a->waiting, &c->node);
		kick(a);
		return;
	}
	call_deliver(c, fresh ? c->answer : NULL, r, o, why);
}

/* ---- public ------------------------------------------------------------ */

static void opts_free(struct adapter_opts *o)
{
	free(o->auth_endpoint);
	free(o->integration_endpoint);
	free(o->share_endpoint);
	free(o->username);
	secret_free(o->password);
	free(o->dstcode);
	free(o->madonvi);
	free(o->token_url);
	free(o->consumer_key);
	secret_free(o->consumer_secret);
	free(o->success_codes);
	free(o->expired_codes);
	free(o->expired_pattern);
	memset(o, 0, sizeof(*o));
}

static char *dup_opt(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static bool empty(const char *s)
{
	return !s || !*s;
}

int adapter_new(struct http_client *http, const struct adapter_opts *o, const char *name,
		struct adapter **out, char **err)
{
	*out = NULL;
	if (!http) {
		*err = xstrdup("the adapter needs an HTTP client");
		return -EINVAL;
	}
	if (o->auth < ADAPTER_AUTH_NONE || o->auth > ADAPTER_AUTH_BOTH) {
		*err = xasprintf("unknown auth mode %d", o->auth);
		return -EINVAL;
	}
	if (empty(o->integration_endpoint) || empty(o->share_endpoint)) {
		*err = xstrdup("integration_endpoint and share_endpoint must be set");
		return -EINVAL;
	}
	if (empty(o->success_codes)) {
		*err = xstrdup("success_codes is empty: no answer could ever succeed");
		return -EINVAL;
	}
	if ((o->auth == ADAPTER_AUTH_SESSION || o->auth == ADAPTER_AUTH_BOTH) &&
	    (empty(o->username) || empty(o->password) || empty(o->auth_endpoint))) {
		*err = xstrdup("auth with a session needs username, password and auth_endpoint");
		return -EINVAL;
	}
	if ((o->auth == ADAPTER_AUTH_OAUTH2 || o->auth == ADAPTER_AUTH_BOTH) &&
	    (empty(o->token_url) || empty(o->consumer_key) || empty(o->consumer_secret))) {
		*err = xstrdup("auth with oauth2 needs token_url, consumer_key and "
			       "consumer_secret");
		return -EINVAL;
	}

	struct adapter *a = xcalloc(1, sizeof(*a));
	a->http = http;
	a->name = xstrdup(name ? name : "adapter");
	a->field = xasprintf("CONNECTOR=%s", a->name);
	a->fields[0] = a->field;
	a->fields[1] = NULL;
	a->o.auth = o->auth;
	a->o.auth_endpoint = dup_opt(o->auth_endpoint);
	a->o.integration_endpoint = dup_opt(o->integration_endpoint);
	a->o.share_endpoint = dup_opt(o->share_endpoint);
	a->o.username = dup_opt(o->username);
	a->o.password = dup_opt(o->password);
	a->o.dstcode = dup_opt(o->dstcode);
	a->o.madonvi = dup_opt(o->madonvi);
	a->o.token_url = dup_opt(o->token_url);
	a->o.consumer_key = dup_opt(o->consumer_key);
	a->o.consumer_secret = dup_opt(o->consumer_secret);
	a->o.success_codes = dup_opt(o->success_codes);
	a->o.expired_codes = dup_opt(o->expired_codes);
	a->o.expired_pattern = dup_opt(o->expired_pattern);
	a->success = split_list(a->o.success_codes, ',');
	a->expired = split_list(a->o.expired_codes, ',');
	a->patterns = split_list(a->o.expired_pattern, '|');
	*out = a;
	return 0;
}

void adapter_free(struct adapter *a)
{
	struct list_head l = {0};
	struct call *c;

	if (!a || a->freeing)
		return;
	a->freeing = true;
	/* In-flight HTTP requests keep their struct call / auth_req, orphaned: the
	 * HTTP completion frees them later without touching a. */
	if (a->login)
		a->login->a = NULL;
	if (a->token_req)
		a->token_req->a = NULL;
	call_take_all(&l, &a->waiting);
	while ((c = call_of(list_pop_front(&a->sent)))) {
		c->a = NULL;
		if (c->done)
			c->done(&(struct adapter_answer){.error_code = "",
							 .message = "",
							 .raw = &no_response},
				HTTP_RETRY, "cancelled", c->ud);
		c->done = NULL;
	}
	while ((c = call_of(list_pop_front(&l))))
		call_deliver(c, NULL, NULL, HTTP_RETRY, "cancelled");
	drop_session(a);
	drop_token(a);
	split_free(a->success);
	split_free(a->expired);
	split_free(a->patterns);
	opts_free(&a->o);
	free(a->field);
	free(a->name);
	free(a);
}

int adapter_call(struct adapter *a, enum adapter_endpoint ep, const char *service, json_t *params,
		 adapter_classify_fn classify, adapter_done_fn done, void *ud)
{
	const struct adapter_call_opts o = {.classify = classify};
	return adapter_call_ex(a, ep, service, params, &o, done, ud);
}

int adapter_call_ex(struct adapter *a, enum adapter_endpoint ep, const char *service,
		    json_t *params, const struct adapter_call_opts *o, adapter_done_fn done,
		    void *ud)
{
	if (!a || a->freeing) {
		json_decref(params);
		return -ESHUTDOWN;
	}
	if (empty(service) || (params && !json_is_object(params))) {
		json_decref(params);
		return -EINVAL;
	}
	struct call *c = xcalloc(1, sizeof(*c));
	c->a = a;
	c->ep = ep;
	c->service = xstrdup(service);
	c->params = params;
	c->classify = o ? o->classify : NULL;
	c->classify_first = o && o->classify_first;
	c->max_attempts = o ? o->max_attempts : 0;
	c->done = done;
	c->ud = ud;
	list_append(&a->waiting, &c->node);
	kick(a);
	return 0;
}

int adapter_login(struct adapter *a, adapter_done_fn done, void *ud)
{
	if (!a || a->freeing)
		return -ESHUTDOWN;
	if (a->o.auth == ADAPTER_AUTH_NONE)
		return -EOPNOTSUPP;
	struct call *c = xcalloc(1, sizeof(*c));
	c->a = a;
	c->is_login = true;
	c->done = done;
	c->ud = ud;
	/* "Now": whatever is held is dropped, unless a login is already under way. */
	if (uses_session(a)) {
		if (!a->login)
			drop_session(a);
	} else if (!a->token_req) {
		drop_token(a);
	}
	list_append(&a->waiting, &c->node);
	kick(a);
	return 0;
}

bool adapter_has_session(const struct adapter *a)
{
	if (uses_session(a) && !a->session)
		return false;
	if (uses_token(a) && !token_valid(a))
		return false;
	return true;
}

unsigned long adapter_logins(const struct adapter *a)
{
	return a->logins;
}
