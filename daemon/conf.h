/*
 * conf: the configuration file.
 *
 * INI (libinih) with sections [daemon], [store], [control],
 * [connector.NAME] and [flow.NAME]. Every key is declared in an option table
 * (struct conf_option) with its type, default, range and help; the same
 * tables generate etc/lienthong.conf (lienthongd --print-config-template) so
 * the example cannot drift from the code. Unknown sections and keys are
 * errors naming file and line. All errors of a file are collected, not just
 * the first.
 *
 * A config is built aside and only swapped in when valid (dbus-broker's
 * reload), so a bad reload leaves the running config untouched.
 */
#ifndef LT_CONF_H
#define LT_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum conf_type {
	CONF_STRING,   /* char *           */
	CONF_PATH,     /* char *, absolute path required */
	CONF_URL,      /* char *, http:// or https:// */
	CONF_SECRET,   /* char *: the secret's content; the config names a file
			* or a $CREDENTIALS_DIRECTORY credential (util secret_read) */
	CONF_INT,      /* int64_t          */
	CONF_BOOL,     /* bool             */
	CONF_DURATION, /* int64_t, milliseconds; "500ms", "30s", "5m", "1h", "1d" */
	CONF_SIZE,     /* int64_t, bytes; "64k", "10M", "1G" */
	CONF_ENUM,     /* int, index into choices "a|b|c" */
	CONF_MODE,     /* int, octal file mode "0660" */
};

#define CONF_REQUIRED 0x1u /* no default; must be set */

struct conf_option {
	const char *key;
	enum conf_type type;
	const char *def;     /* default as config text; NULL = unset (NULL/0) */
	int64_t min, max;    /* INT value, DURATION ms, SIZE bytes; min == max == 0: unchecked */
	const char *choices; /* CONF_ENUM: "a|b|c" */
	size_t offset;	     /* offsetof() into the struct the table fills */
	unsigned flags;
	const char *help; /* one or more sentences; printed into the template */
};

/* Table terminator. */
#define CONF_OPTION_END                                                                            \
	{                                                                                          \
		.key = NULL                                                                        \
	}

struct conf_daemon {
	int log_level;	/* LOG_* priority */
	int log_target; /* enum log_target */
	char *plugin_dir;
	char *mappings_dir;
	int64_t shutdown_timeout_ms;
	int64_t health_interval_ms;
};

struct conf_store {
	char *path;
	int64_t busy_timeout_ms;
	int64_t max_size_bytes;
	int synchronous; /* 0 full, 1 normal */
	int64_t retry_interval_ms;
};

struct conf_control {
	char *path;
	int mode;
	char *group;
	int64_t max_clients;
	int64_t max_request_bytes;
	int64_t idle_timeout_ms;
};

struct connector;
struct flow_type;
struct map_set;
struct config;

/* One [connector.NAME] section. */
struct conf_connector {
	char *name;
	const struct config *owner;   /* the config this section belongs to */
	const struct connector *type; /* borrowed from the registry */
	bool enabled;
	int line;	    /* line of the section header */
	void *opts;	    /* owned; type->opts_size bytes filled by type->options */
	void *http_opts;    /* owned struct http_opts when the type uses HTTP */
	void *adapter_opts; /* owned struct adapter_opts when it speaks the adapter */
	char *fingerprint;  /* owned; every key = value, to tell an unchanged section on reload */
};

/* One [flow.NAME] section. */
struct conf_flow {
	char *name;
	const struct config *owner;   /* the config this section belongs to */
	const struct flow_type *type; /* borrowed */
	bool enabled;
	int line;
	int64_t interval_ms; /* 0 = only on demand (lienthongctl run) */
	int64_t jitter_ms;
	bool run_at_start;
	void *opts; /* owned; type->opts_size bytes */
	char *fingerprint;
};

struct config {
	char *path;
	int64_t loaded_wall_ms;
	struct conf_daemon daemon;
	struct conf_store store;
	struct conf_control control;
	struct conf_connector *connectors;
	size_t n_connectors;
	struct conf_flow *flows;
	size_t n_flows;
	struct map_set *maps; /* owned: [daemon] mappings_dir, NULL when the directory is absent */
};

/* A list of error messages, "file:line: message". */
struct conf_errors {
	char **msgs;
	size_t n;
};

void conf_errors_add(struct conf_errors *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void conf_errors_free(struct conf_errors *e);
/* All messages joined with "\n" (caller frees). */
char *conf_errors_join(const struct conf_errors *e);

/*
 * Loads and validates path (connectors and flows are looked up in the
 * registries, plugins from [daemon] plugin_dir are loaded first). On success
 * *out is a new config (free with conf_free) and 0 is returned; otherwise
 * every problem found is in errs and -EINVAL (or -errno when the file cannot
 * be read) is returned.
 */
int conf_load(const char *path, struct config **out, struct conf_errors *errs);
void conf_free(struct config *c);

/*
 * Parses one value of option o from text into the struct at base.
 * Returns 0, or -EINVAL with *why set (caller frees).
 */
int conf_set_value(const struct conf_option *o, void *base, const char *value, char **why);
/* Frees what conf_set_value allocated for the options of table in base. */
void conf_free_values(const struct conf_option *table, void *base);
/* Applies defaults of table to base. Returns 0 or -EINVAL (bad default: a bug). */
int conf_apply_defaults(const struct conf_option *table, void *base, char **why);

/* Lookups in a loaded config. NULL when absent. */
const struct conf_connector *conf_connector_find(const struct config *c, const char *name);
const struct conf_flow *conf_flow_find(const struct config *c, const char *name);

/* Writes the commented example configuration (every section type, every key). */
void conf_print_template(FILE *f);

/* Options of the fixed sections (for the template and the docs). */
extern const struct conf_option conf_daemon_options[];
extern const struct conf_option conf_store_options[];
extern const struct conf_option conf_control_options[];

#endif
