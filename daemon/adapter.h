/*
 * adapter: the national integration adapter's envelope and authentication
 * (shared/domain/INTERFACES.md §1), usable by every connector that speaks it.
 *
 *   POST {url}{auth_endpoint}   {"username","password"} + header dstcode
 *        -> {"error_code":0,"session":"...","message":"..."}
 *   POST {url}{integration_endpoint | share_endpoint}
 *        {"session","madonvi","service", ...params}
 *        -> {"error_code":..,"message":"..","result":[..]}
 *
 * The session travels in the body. A call answered "session expired" logs in
 * again and is retried once. A refused login or token request leaves the
 * waiting calls HTTP_RETRY (they were never sent: a wrong password is for
 * the operator to fix, not a verdict on the data). Gateways (LGSP/NGSP) add OAuth2
 * client-credentials: POST token_url with Basic key:secret, then
 * "Authorization: Bearer" on every call; a 401 refreshes the token once.
 * auth = none | session | oauth2 | oauth2+session.
 *
 * Answers are loose: error_code as integer or string, success as 0, "0",
 * "00" (configurable success_codes), the answer sometimes wrapped as a JSON
 * string inside "message". An unknown shape is a failure, never a success.
 * Non-JSON (an HTML error page) is HTTP_RETRY; an error_code that is not a
 * success is HTTP_FAIL unless a connector's classify says otherwise.
 */
#ifndef LT_ADAPTER_H
#define LT_ADAPTER_H

#include <jansson.h>
#include <stdbool.h>

#include "conf.h"
#include "http.h"

struct adapter_opts {
	int auth;	     /* ADAPTER_AUTH_* */
	char *auth_endpoint; /* e.g. /auth */
	char *integration_endpoint;
	char *share_endpoint;
	char *username;
	char *password;	 /* secret */
	char *dstcode;	 /* header dstcode on login */
	char *madonvi;	 /* agency id sent in every call */
	char *token_url; /* OAuth2 */
	char *consumer_key;
	char *consumer_secret; /* secret */
	char *success_codes;   /* comma-separated, e.g. "0,00" */
	char *expired_codes;   /* comma-separated error codes meaning session expired */
	char *expired_pattern; /* '|'-separated case-insensitive substrings of message */
};

enum { ADAPTER_AUTH_NONE, ADAPTER_AUTH_SESSION, ADAPTER_AUTH_OAUTH2, ADAPTER_AUTH_BOTH };

extern const struct conf_option adapter_options[];

enum adapter_endpoint { ADAPTER_INTEGRATION, ADAPTER_SHARE };

struct adapter;

/*
 * The answer of a call. answer is the parsed (unwrapped) answer object,
 * result its "result" member (may be NULL); both borrowed for the callback's
 * duration. raw is the last HTTP response (body kept for failures).
 */
struct adapter_answer {
	json_t *answer;
	json_t *result;
	const char *error_code; /* normalised to text, "" when absent */
	const char *message;	/* "" when absent */
	const struct http_response *raw;
};

/*
 * Connector rule on top of the envelope (e.g. "đã tồn tại" on a create is
 * not a failure for the caller). Called for every parsed answer; returns the
 * outcome to use instead of the default o (may set *why).
 */
typedef enum http_outcome (*adapter_classify_fn)(const struct adapter_answer *a,
						 enum http_outcome o, void *ud, char **why);
typedef void (*adapter_done_fn)(const struct adapter_answer *a, enum http_outcome o,
				const char *why, void *ud);

/* http is borrowed and must outlive the adapter. Returns 0 or negative with *err. */
int adapter_new(struct http_client *http, const struct adapter_opts *o, const char *name,
		struct adapter **out, char **err);
void adapter_free(struct adapter *a);

/*
 * Calls service with params (an object, stolen; may be NULL) merged into the
 * envelope. done is called exactly once, later, from the loop.
 */
int adapter_call(struct adapter *a, enum adapter_endpoint ep, const char *service, json_t *params,
		 adapter_classify_fn classify, adapter_done_fn done, void *ud);

/* Per-call options of adapter_call_ex. */
struct adapter_call_opts {
	adapter_classify_fn classify; /* as for adapter_call; may be NULL */
	/*
	 * classify sees an unsuccessful 2xx answer before the expiry rule; when
	 * it gives a reason (*why set) its outcome is final. For services whose
	 * refusals share an error_code with "session expired" (the portal's
	 * "-1" for "đã tồn tại").
	 */
	bool classify_first;
	/*
	 * Attempts for this call; 0 = the client's max_attempts, 1 = never
	 * resent by the HTTP core (for writes that must not be applied twice:
	 * the caller resolves a doubtful outcome itself). A re-login after an
	 * expired session still resends once: the refused call was not applied.
	 */
	unsigned max_attempts;
};

int adapter_call_ex(struct adapter *a, enum adapter_endpoint ep, const char *service,
		    json_t *params, const struct adapter_call_opts *o, adapter_done_fn done,
		    void *ud);

/* Logs in (or fetches a token) now, e.g. for a probe. done as for adapter_call. */
int adapter_login(struct adapter *a, adapter_done_fn done, void *ud);

/* Whether a session / token is currently held, and how many logins were made. */
bool adapter_has_session(const struct adapter *a);
unsigned long adapter_logins(const struct adapter *a);

/*
 * Normalises a raw answer body: parses JSON, unwraps an answer carried as a
 * JSON string in "message", extracts error_code as text. Returns a new
 * reference or NULL (not JSON / not an object).
 */
json_t *adapter_parse_answer(const char *body, size_t len);

#endif
