/*
 * sim.h: declarations shared by the files of lienthong-sim, the simulated
 * national and provincial systems (DESIGN.md "The simulator").
 *
 * The simulator is one MHD daemon (sim_server.c) that routes a request by
 * HTTP method and path to a route handler. Modules (sim_adapter.c,
 * sim_fault.c, sim_stats.c, sim_session.c, ...) register their routes at
 * start from the module table in sim.c. The adapter envelope (sim_adapter.c)
 * then dispatches on the body's "service" field to a service handler found
 * in the service tables (sim_svc_*.c). Faults (sim_fault.c) are decided per
 * request before a handler runs; delays and hangs park the connection in the
 * delay queue (sim_delay.c) instead of blocking a worker thread.
 *
 * Threads: MHD calls handlers from its worker pool. Everything a handler
 * touches that is shared is guarded by its module's mutex or is atomic; the
 * configuration (sim_config) is written before the server starts and only
 * read afterwards.
 */
#ifndef SIM_H
#define SIM_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct MHD_Connection;

#define SIM_NAME "lienthong-sim"
#ifndef LT_VERSION
#define LT_VERSION "0.0.0"
#endif

#define SIM_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Compact; 15 significant digits print 0.1 as 0.1, not 0.10000000000000001. */
#define SIM_JSON_DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* ---- faults ----------------------------------------------------------- */

/* What a fault set asks for. Rates are probabilities in [0, 1]. */
struct sim_faultset {
	double error_rate;	/* 500 with a JSON error */
	double rate_limit_rate; /* 429 with Retry-After: retry_after_s */
	double hang_rate;	/* no answer for hang_ms, then the connection is closed */
	double malformed_rate;	/* 200 with an HTML page or truncated JSON */
	unsigned retry_after_s;
	unsigned latency_ms; /* added to every answer */
	unsigned hang_ms;
	uint64_t fail_next; /* the next fail_next requests get 503 */
	bool down;	    /* every request gets 503 */
	bool wrap_message;  /* adapter answers wrapped as a string in "message" */
};

/* Fault kinds, in the order of the stats "faults" object. */
enum sim_fault {
	SIM_FAULT_NONE = 0,
	SIM_FAULT_ERROR,
	SIM_FAULT_RATE_LIMITED,
	SIM_FAULT_HANG,
	SIM_FAULT_MALFORMED,
	SIM_FAULT_FAIL_NEXT,
	SIM_FAULT_DOWN,
	SIM_FAULT__COUNT,
};

/* The outcome of sim_fault_decide() for one request. */
struct sim_fault_decision {
	enum sim_fault fault;
	unsigned latency_ms;
	unsigned hang_ms;
	unsigned retry_after_s;
	bool wrap_message;
	bool malformed_html; /* malformed: HTML page (true) or truncated JSON */
};

/* The defaults of a fault set: no faults, Retry-After 1 s, hang 600 s. */
void sim_faultset_defaults(struct sim_faultset *fs);

/* "error", "rate_limited", ... ; NULL for SIM_FAULT_NONE. */
const char *sim_fault_name(enum sim_fault f);

/*
 * Decides the faults of one request from the fault set that applies to it:
 * the set scoped to service (if service is not NULL and has one), else the
 * set scoped to path, else the global set. Deterministic for a given --seed
 * and order of calls. Counts the fault in the stats.
 */
void sim_fault_decide(const char *path, const char *service, struct sim_fault_decision *d);

/* ---- configuration ---------------------------------------------------- */

struct sim_config {
	const char *listen;    /* ADDR:PORT, borrowed from argv */
	const char *port_file; /* NULL: none */
	uint64_t seed;
	unsigned threads;
	unsigned max_connections;
	unsigned idle_timeout_s;
	size_t max_body_bytes;
	size_t keep_records;	/* per service */
	unsigned session_ttl_s; /* 0: never expire */
	unsigned max_sessions;
	unsigned token_ttl_s;
	const char *username;
	const char *password;
	const char *dstcode; /* NULL: not checked */
	char *oauth2_key;    /* owned; NULL: gateway mode off */
	char *oauth2_secret; /* owned */
	const char *auth_path;
	const char *integration_path;
	const char *share_path;
	const char *token_path;
	struct sim_faultset faults;   /* initial global fault set */
	unsigned procedures;	      /* national catalogue size at start (--procedures) */
	const char *provincial_token; /* Bearer token of the provincial API */
	unsigned dossiers;	      /* dossiers received in the feed's window (--dossiers) */
	unsigned dossier_days;	      /* the window, in days before "now" (--dossier-days) */
	int64_t dossier_now_s;	  /* "now" of the dossier stream, epoch s; 0: the hour started */
	unsigned payment_faults;  /* discrepancies of each class per 1,000 dossiers */
	const char *paygov_token; /* Bearer token of /paygov (--paygov-token) */
	const char *paygov_key;	  /* the partner's secret key for MaXacThuc (--paygov-key) */
	bool verbose;
};

/* Written by main before the server starts, read-only afterwards. */
extern struct sim_config sim_config;

/* ---- modules ---------------------------------------------------------- */

/*
 * A module owns one concern. init runs before the server starts (it
 * registers the module's routes) and returns 0 or -errno; fini runs after
 * the server stopped and frees everything (it may run after a failed or
 * skipped init). Listed in sim.c.
 */
struct sim_module {
	const char *name;
	int (*init)(void);
	void (*fini)(void);
};

extern const struct sim_module sim_stats_module;
extern const struct sim_module sim_fault_module;
extern const struct sim_module sim_session_module;
extern const struct sim_module sim_adapter_module;
extern const struct sim_module sim_catalog_module;
extern const struct sim_module sim_provincial_module;
/*
 * True when a request to the provincial REST API carries its Bearer token
 * (--provincial-token); otherwise answers 401 and returns false. Shared by
 * the catalogue routes and the dossier feed.
 */
struct sim_request;
struct sim_reply;
bool sim_provincial_auth_ok(const struct sim_request *rq, struct sim_reply *rp);
extern const struct sim_module sim_dossier_module;
extern const struct sim_module sim_portal_module;
/* The payment platform (/paygov) and the provincial fee records (sim_payment.c). */
extern const struct sim_module sim_payment_module;

/*
 * End-to-end latency from the feed to the portal (sim_dossier.c keeps the
 * table, sim_svc_portal.c looks received rows up). The key of a change is
 * the key of the progress row the dossier flow makes of it: MaHoSo, the
 * step's time as ThoiDiemXuLy ("yyyyMMddHHmmss", +07:00) and the national
 * status 1..10 (dossier-spec §2); 0 when an argument is missing. Within a
 * dossier, steps are at least a minute apart, so the key names one change.
 */
uint64_t sim_dossier_change_key(const char *mahoso, const char *when14, int status);
/*
 * Looks key up among the changes appended to the feed: 1 and *appended_us
 * (sim_now_us clock, to the millisecond) the first time it is received, 0
 * when it was received before (not marked again), -ENOENT when no change
 * has it. Thread-safe.
 */
int sim_dossier_change_received(uint64_t key, uint64_t *appended_us);
/* Forgets which changes were received (the portal forgot everything). */
void sim_dossier_changes_unmark(void);

/* ---- requests, replies and routes ------------------------------------ */

#define SIM_REPLY_MAX_HEADERS 4

/* What a handler answers. body is owned (malloc'd) and handed to MHD. */
struct sim_reply {
	unsigned status;	  /* 0 until set */
	const char *content_type; /* static string */
	char *body;
	size_t body_len;
	unsigned n_headers;
	struct {
		const char *name; /* static string */
		char value[128];
	} headers[SIM_REPLY_MAX_HEADERS];
};

enum sim_rq_state {
	SIM_RQ_RECEIVING = 0, /* reading the body */
	SIM_RQ_DELAYED,	      /* reply ready, suspended until the latency expires */
	SIM_RQ_HANGING,	      /* suspended, no reply will be sent */
	SIM_RQ_DONE,	      /* reply queued (or connection refused) */
};

/*
 * One HTTP request, from its first header to its completion. Handlers read
 * the public fields; the rest belong to sim_server.c and sim_delay.c.
 */
struct sim_request {
	/* public, read-only for handlers */
	uint64_t seq;	    /* 1, 2, ... in arrival order (all requests) */
	const char *method; /* borrowed from MHD */
	const char *path;   /* URL path without query, borrowed from MHD */
	const char *body;   /* NUL-terminated; "" when none */
	size_t body_len;
	json_t *json;	     /* parsed body for SIM_ROUTE_JSON routes, or NULL */
	const char *service; /* adapter service or route service name, or NULL */
	bool wrap_message;   /* adapter answers must be wrapped */
	struct MHD_Connection *conn;

	/* private */
	enum sim_rq_state state;
	uint64_t start_us;
	char *body_buf; /* owned */
	size_t body_cap;
	bool too_big;
	bool control; /* /_sim and /health: no faults, not counted */
	bool gone;    /* set by the delay queue: client left or shutdown */
	enum sim_fault fault;
	struct sim_reply reply;
};

/* Route flags. */
enum {
	SIM_ROUTE_PREFIX = 1 << 0,  /* path matches as a prefix */
	SIM_ROUTE_CONTROL = 1 << 1, /* never faulted, not counted in the stats */
	SIM_ROUTE_JSON = 1 << 2,    /* the body is parsed into rq->json (NULL if not JSON) */
	SIM_ROUTE_ADAPTER = 1 << 3, /* body "service" names the service (faults, stats) */
};

/* A route handler fills rp (status, body). It must not block. */
typedef void (*sim_route_fn)(struct sim_request *rq, struct sim_reply *rp);

struct sim_route {
	const char *method; /* "GET", "POST"; HEAD matches GET */
	const char *path;   /* copied by sim_route_add */
	unsigned flags;
	sim_route_fn fn;
	const char *service; /* stats/fault name for non-adapter routes, or NULL; copied */
};

/* Registers a route (before the server starts). Aborts on a duplicate. */
void sim_route_add(const struct sim_route *r);

/* Header or query argument of the request, or NULL. */
const char *sim_request_header(const struct sim_request *rq, const char *name);
const char *sim_request_query(const struct sim_request *rq, const char *name);

/*
 * The parsed body as a JSON object, or NULL after answering 400 into rp
 * (body missing, not JSON or not an object).
 */
json_t *sim_request_json_object(const struct sim_request *rq, struct sim_reply *rp);

/* Sets the reply to the compact dump of obj (stolen). */
void sim_reply_json(struct sim_reply *rp, unsigned status, json_t *obj);
/* Sets the reply to a copy of text. */
void sim_reply_text(struct sim_reply *rp, unsigned status, const char *content_type,
		    const char *text);
/* Sets the reply to body (stolen, malloc'd). */
void sim_reply_buffer(struct sim_reply *rp, unsigned status, const char *content_type, char *body,
		      size_t len);
/* {"error":code,"message":"..."} with the given status. */
void sim_reply_error(struct sim_reply *rp, unsigned status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Adds a header (name static). Silently ignored beyond SIM_REPLY_MAX_HEADERS. */
void sim_reply_header(struct sim_reply *rp, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Frees the body; rp can be reused. */
void sim_reply_clear(struct sim_reply *rp);

/*
 * Starts the MHD daemon on sim_config.listen (routes must be registered).
 * *port gets the bound port. Returns 0 or -errno (logged).
 */
int sim_server_start(unsigned *port);
/* Stops the daemon: resumes parked connections, closes all. Accepts "not started". */
void sim_server_stop(void);
/* Frees the route table. */
void sim_server_free(void);

/* ---- delay queue ------------------------------------------------------ */

/* Starts the timer thread. Returns 0 or -errno. */
int sim_delay_start(void);

/*
 * Suspends conn (the caller is its access handler) and resumes it at
 * due_us (sim_now_us clock), or earlier when the client closes the
 * connection or the queue stops; in these cases *gone is set to true before
 * the resume. Returns 0, or -ESHUTDOWN when the queue is stopping (conn is
 * then not suspended).
 */
int sim_delay_add(struct MHD_Connection *conn, uint64_t due_us, bool *gone);

/* Stops the thread and resumes every parked connection with *gone = true. */
void sim_delay_stop(void);

/* ---- adapter services ------------------------------------------------- */

/* Adapter endpoints a service answers on. */
enum {
	SIM_EP_INTEGRATION = 1 << 0,
	SIM_EP_SHARE = 1 << 1,
	SIM_EP_ANY = SIM_EP_INTEGRATION | SIM_EP_SHARE,
};

struct sim_service;

/* One adapter call, after the envelope (session, service) was checked. */
struct sim_call {
	const struct sim_service *service;
	unsigned endpoint;   /* SIM_EP_INTEGRATION or SIM_EP_SHARE */
	const char *madonvi; /* "" when absent */
	json_t *params;	     /* the request object, borrowed */
	struct sim_request *rq;
	/*
	 * Optional, set by the handler: the answer's "result" as ready JSON
	 * text (malloc'd, handed over), spliced into the answer in place of
	 * its "result" member, so that large pre-rendered results are not
	 * parsed and dumped again. NULL when the answer object is complete.
	 */
	char *result_text;
};

/*
 * A service handler returns the answer object (new reference, never NULL),
 * usually from sim_answer_ok() or sim_answer_error(). The envelope wraps it
 * when wrap_message is on. It must not block.
 */
typedef json_t *(*sim_service_fn)(struct sim_call *call);

struct sim_service {
	const char *name;   /* NULL ends a table */
	unsigned endpoints; /* SIM_EP_* */
	sim_service_fn fn;
};

/* Service tables, one per sim_svc_*.c, each ending with a NULL name. */
extern const struct sim_service sim_base_services[];
extern const struct sim_service sim_csdl_services[];
extern const struct sim_service sim_portal_services[];

/* {"error_code":0,"message":"OK","result":result}; result stolen (NULL: null). */
json_t *sim_answer_ok(json_t *result);
/* {"error_code":code,"message":"..."}. */
json_t *sim_answer_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * In gateway mode (--oauth2), checks "Authorization: Bearer <token>"; on
 * failure answers 401 into rp and returns false. True when not in gateway
 * mode.
 */
bool sim_gateway_check(const struct sim_request *rq, struct sim_reply *rp);

/* ---- sessions and tokens ---------------------------------------------- */

#define SIM_TICKET_LEN 32 /* hex characters of a session or token */

/* Creates a session; buf gets its token (>= SIM_TICKET_LEN + 1 bytes). */
void sim_session_new(char *buf);
bool sim_session_valid(const char *token);
void sim_session_expire_all(void);
unsigned sim_session_ttl(void);
void sim_session_set_ttl(unsigned ttl_s);
/* Same for OAuth2 access tokens (TTL --token-ttl). */
void sim_token_new(char *buf);
bool sim_token_valid(const char *token);

/* ---- stats ------------------------------------------------------------ */

enum sim_counter {
	SIM_CTR_LOGINS = 0,
	SIM_CTR_LOGINS_FAILED,
	SIM_CTR_SESSION_EXPIRED,
	SIM_CTR_TOKENS_ISSUED,
	SIM_CTR_TOKENS_REFUSED,
	SIM_CTR__COUNT,
};

void sim_stats_count(enum sim_counter c);
void sim_stats_fault(enum sim_fault f);

/*
 * Records one answered (or abandoned: status 0) request. path and service
 * (may be NULL) are copied. fault is SIM_FAULT_NONE or the fault applied.
 */
void sim_stats_request(const char *path, const char *service, uint64_t seq, unsigned status,
		       enum sim_fault fault, uint64_t elapsed_us);

/*
 * Keeps the elements of the JSON array records (borrowed) as records
 * received by service, in order, up to --keep-records per service.
 */
void sim_stats_records(const char *service, const json_t *records);

/* ---- utilities (sim_util.c) ------------------------------------------- */

void *sim_xmalloc(size_t n);
void *sim_xcalloc(size_t nmemb, size_t size);
void *sim_xrealloc(void *p, size_t n);
char *sim_xstrdup(const char *s);
char *sim_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

enum sim_log_level { SIM_LOG_ERR, SIM_LOG_WARN, SIM_LOG_INFO, SIM_LOG_DEBUG };
/* One line on stderr: "lienthong-sim: <level>: message". Thread-safe. */
void sim_log(enum sim_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_vlog(enum sim_log_level level, const char *fmt, va_list ap);
/* Logs and aborts. */
void sim_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Monotonic microseconds; wall-clock milliseconds since the epoch. */
uint64_t sim_now_us(void);
int64_t sim_now_wall_ms(void);
/* "yyyyMMddHHmmss" of wall_ms in Asia/Ho_Chi_Minh (UTC+7) into buf (>= 15). */
char *sim_fmt_vn_time(int64_t wall_ms, char *buf, size_t len);

/* Random streams: each concern draws from its own so they do not interact. */
enum sim_stream {
	SIM_STREAM_FAULT = 1,
	SIM_STREAM_SESSION,
	SIM_STREAM_TOKEN,
	SIM_STREAM_DATA, /* generated data; later modules derive sub-streams */
};
/* The splitmix64 finaliser: a bijective 64-bit mix. */
uint64_t sim_mix64(uint64_t x);
/* Value n of a stream, a pure function of (--seed, stream, n). */
uint64_t sim_rand_at(uint64_t stream, uint64_t n);
/* A uniform double in [0, 1) from 64 random bits. */
double sim_unit(uint64_t r);

/* xoshiro256** generator for sequences (not thread-safe: one per user). */
struct sim_rng {
	uint64_t s[4];
};
void sim_rng_init(struct sim_rng *rng, uint64_t stream);
uint64_t sim_rng_next(struct sim_rng *rng);
/* Uniform in [0, n), n > 0. */
uint64_t sim_rng_below(struct sim_rng *rng, uint64_t n);

/* Growable text buffer for building answers. */
struct sim_buf {
	char *data; /* owned, NUL-terminated */
	size_t len;
	size_t cap;
};
void sim_buf_add(struct sim_buf *b, const void *p, size_t n);
void sim_buf_adds(struct sim_buf *b, const char *s);
void sim_buf_addf(struct sim_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the data (never NULL) to the caller and empties b. */
char *sim_buf_steal(struct sim_buf *b, size_t *len);
void sim_buf_free(struct sim_buf *b);

/* True when s[0..n) is valid UTF-8 without NUL bytes. */
bool sim_utf8_valid(const char *s, size_t n);
/* A decimal of at most 19 digits into *out; NULL or "" is def. False when not one. */
bool sim_parse_dec(const char *s, uint64_t def, uint64_t *out);
/* Compares without a data-dependent early exit. */
bool sim_str_equal_ct(const char *a, const char *b);
/*
 * Finds key in an application/x-www-form-urlencoded body and decodes its
 * value into out (cap bytes with the NUL). Returns true when found and it fit.
 */
bool sim_form_get(const char *body, size_t len, const char *key, char *out, size_t cap);
/* Decodes standard base64 into out (cap bytes with the NUL); -1 if invalid or too long. */
long sim_base64_decode(const char *in, char *out, size_t cap);

/* ---- string map (sim_map.c) ------------------------------------------- */

/* A string-keyed hash map. Keys are copied; values are borrowed pointers. */
struct sim_map;

struct sim_map *sim_map_new(void);
/* Calls free_value (may be NULL) on every value. Accepts NULL. */
void sim_map_free(struct sim_map *m, void (*free_value)(void *));
void *sim_map_get(const struct sim_map *m, const char *key);
/* Inserts or replaces; returns the previous value or NULL. */
void *sim_map_put(struct sim_map *m, const char *key, void *value);
/* Removes key; returns its value or NULL. */
void *sim_map_remove(struct sim_map *m, const char *key);
size_t sim_map_size(const struct sim_map *m);
/* Calls fn for each entry in insertion order; stops when fn returns non-zero. */
int sim_map_each(const struct sim_map *m, int (*fn)(const char *key, void *value, void *ud),
		 void *ud);

#endif
