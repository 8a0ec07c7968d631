/*
 * http: the HTTP core shared by every connector.
 *
 * One curl multi handle driven by the daemon's sd-event loop through curl's
 * multi-socket API (CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION). Each
 * connector instance gets an http_client with its own options: TLS (verify
 * on by default, CA file, client certificate and key), timeouts, maximum
 * response size, concurrency limit, retry policy and circuit breaker.
 * Connections are reused, HTTP/2 is used where offered (ALPN), gzip/deflate
 * responses are decoded.
 *
 * Outcome of an attempt: a classify callback (connector body rules) or the
 * default: transport error, 408, 429, 5xx -> retry; other 4xx -> fail;
 * 2xx/3xx -> ok. Retries: exponential back-off with full jitter
 * (random in [0, min(cap, base * 2^attempt)]), Retry-After honoured (capped
 * at backoff_cap), up to max_attempts. The circuit breaker opens after
 * breaker_failures consecutive transport errors or 5xx answers (a 429 is
 * the server asking us to slow down: it neither counts nor resets the
 * count; a request that was sent before the circuit opened does not move
 * it); while open, requests
 * fail at once with HTTP_RETRY "circuit open"; after breaker_open one probe
 * is let through (half-open); its success closes the circuit.
 */
#ifndef LT_HTTP_H
#define LT_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

struct sd_event;
struct curl_slist;

/* [connector.X] keys of every HTTP connector. */
struct http_opts {
	char *url; /* base URL; request paths are appended */
	bool tls_verify;
	char *ca_file;
	char *client_cert;
	char *client_key;
	int64_t connect_timeout_ms;
	int64_t timeout_ms;
	int64_t max_response_bytes;
	int64_t concurrency;
	int64_t max_attempts;
	int64_t backoff_base_ms;
	int64_t backoff_cap_ms;
	int64_t breaker_failures;
	int64_t breaker_open_ms;
};

extern const struct conf_option http_options[];

enum http_outcome {
	HTTP_OK = 0,
	HTTP_RETRY = 1, /* transient; after max_attempts the caller decides */
	HTTP_FAIL = 2,	/* permanent */
};

const char *http_outcome_name(enum http_outcome o);

struct http_response {
	long status;	  /* 0 when no HTTP answer (transport error) */
	const char *body; /* NUL-terminated, may be "" */
	size_t body_len;
	const char *content_type; /* may be NULL */
	int64_t retry_after_ms;	  /* -1 when absent */
	int curl_code;		  /* CURLcode of the transfer */
	const char *error;	  /* transport error text or NULL */
	uint64_t elapsed_us;	  /* last attempt */
	unsigned attempts;
};

/* Body-level rules. Returns the outcome; may set *why (malloc'd, caller frees). */
typedef enum http_outcome (*http_classify_fn)(const struct http_response *r, void *ud, char **why);
/* Completion, called exactly once per submitted request, never from within http_submit. */
typedef void (*http_done_fn)(const struct http_response *r, enum http_outcome o, const char *why,
			     void *ud);

/* The default classification by status code only (see top). */
enum http_outcome http_classify_status(const struct http_response *r, char **why);

struct http_core;
struct http_client;
struct http_request;

struct http_core *http_core_new(struct sd_event *ev);
/* Frees the core; every client must be freed before. */
void http_core_free(struct http_core *core);
/* Requests in flight or waiting, all clients. */
size_t http_core_pending(const struct http_core *core);

/* Returns 0 with *out, or negative with *err (bad option combination). */
int http_client_new(struct http_core *core, const char *name, const struct http_opts *o,
		    struct http_client **out, char **err);
/* Cancels pending requests (their done is called with HTTP_RETRY "cancelled") and frees. */
void http_client_free(struct http_client *c);
void http_client_cancel_all(struct http_client *c);

enum http_circuit { HTTP_CIRCUIT_CLOSED, HTTP_CIRCUIT_OPEN, HTTP_CIRCUIT_HALF_OPEN };
const char *http_circuit_name(enum http_circuit s);

#define HTTP_LATENCY_BUCKETS 12
/* Upper bounds in seconds of the latency histogram buckets (the last is +Inf). */
extern const double http_latency_bounds_s[HTTP_LATENCY_BUCKETS];

struct http_stats {
	uint64_t requests;	  /* attempts sent */
	uint64_t ok, retry, fail; /* attempt outcomes */
	uint64_t retries;	  /* attempts after the first */
	uint64_t rate_limited;	  /* 429 answers (they do not trip the breaker) */
	uint64_t circuit_opens;
	uint64_t circuit_rejects;
	uint64_t in_flight, queued;
	uint64_t latency_count[HTTP_LATENCY_BUCKETS]; /* non-cumulative */
	double latency_sum_s;
	enum http_circuit circuit;
	int64_t circuit_until_ms; /* wall time the open circuit half-opens */
	int64_t last_ok_ms, last_err_ms;
	const char *last_err; /* borrowed, valid until the next call into the client */
};

void http_client_stats(const struct http_client *c, struct http_stats *out);
const struct http_opts *http_client_opts(const struct http_client *c);

/*
 * Request construction. path is appended to the client's url unless it is an
 * absolute http(s) URL. The request is owned by the caller until submitted.
 */
struct http_request *http_request_new(const char *method, const char *path);
void http_request_free(struct http_request *r);
void http_request_header(struct http_request *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Steals body (malloc'd). */
void http_request_body(struct http_request *r, char *body, size_t len, const char *content_type);
/* Serialises j compactly as the body, Content-Type: application/json. */
void http_request_json(struct http_request *r, const json_t *j);
/* HTTP Basic credentials for this request (copied). */
void http_request_basic_auth(struct http_request *r, const char *user, const char *password);
void http_request_classify(struct http_request *r, http_classify_fn fn, void *ud);
void http_request_done(struct http_request *r, http_done_fn fn, void *ud);
/* Overrides the client's max_attempts for this request (1 = no retry). */
void http_request_max_attempts(struct http_request *r, unsigned n);

/*
 * Submits r (ownership passes to the client in all cases). The done callback
 * is always called later from the loop, also when the circuit is open.
 * Returns 0, or -ESHUTDOWN when the client is being freed (done still called).
 */
int http_submit(struct http_client *c, struct http_request *r);

/* Full-jitter back-off delay for attempt n (1-based) in ms, honouring retry_after_ms >= 0. */
int64_t http_backoff_ms(const struct http_opts *o, unsigned attempt, int64_t retry_after_ms);
/* Parses a Retry-After value (delta seconds or HTTP date). -1 when invalid. */
int64_t http_parse_retry_after(const char *value, int64_t now_wall_ms);

#endif
