/*
 * registry: the connector and flow types this lienthongd knows.
 *
 * In-tree types are listed in two static NULL-terminated tables (the
 * OpenSMTPD table.c way); adding a connector is one line here. Out-of-tree
 * connectors come from shared objects in [daemon] plugin_dir: each exports
 * `const struct connector lienthong_connector` and is refused when its
 * abi_version is not ours. Plugins are never unloaded: a reload may still
 * have instances of the old configuration running on them.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "connector.h"
#include "flow.h"
#include "log.h"
#include "util.h"

extern const struct connector conn_files;
extern const struct connector conn_adapter;
extern const struct connector conn_csdl;
extern const struct connector conn_provincial;
extern const struct connector conn_dvcqg;
extern const struct connector conn_paygov;
extern const struct flow_type flow_relay;
extern const struct flow_type flow_catalog;
extern const struct flow_type flow_dossier;
extern const struct flow_type flow_payment;

static const struct connector *const builtin_connectors[] = {
	&conn_files, &conn_adapter, &conn_csdl, &conn_provincial, &conn_dvcqg, &conn_paygov, NULL,
};

static const struct flow_type *const builtin_flows[] = {
	&flow_relay, &flow_catalog, &flow_dossier, &flow_payment, NULL,
};

/* Plugins loaded so far: their types and the real paths they came from. */
static const struct connector **plugin_types;
static char **plugin_paths;
static size_t n_plugins;

const struct connector *conn_type_at(size_t i)
{
	size_t nb = LT_ARRAY_SIZE(builtin_connectors) - 1;
	if (i < nb)
		return builtin_connectors[i];
	i -= nb;
	return i < n_plugins ? plugin_types[i] : NULL;
}

const struct connector *conn_type_find(const char *name)
{
	for (size_t i = 0; conn_type_at(i); i++)
		if (!strcmp(conn_type_at(i)->name, name))
			return conn_type_at(i);
	return NULL;
}

const struct flow_type *flow_type_at(size_t i)
{
	return i < LT_ARRAY_SIZE(builtin_flows) - 1 ? builtin_flows[i] : NULL;
}

const struct flow_type *flow_type_find(const char *name)
{
	for (size_t i = 0; flow_type_at(i); i++)
		if (!strcmp(flow_type_at(i)->name, name))
			return flow_type_at(i);
	return NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_one(const char *path, struct conf_errors *errs)
{
	char real[PATH_MAX];
	if (!realpath(path, real)) {
		conf_errors_add(errs, "%s: cannot resolve plugin path: %s", path, strerror(errno));
		return;
	}
	for (size_t i = 0; i < n_plugins; i++)
		if (!strcmp(plugin_paths[i], real))
			return; /* loaded by an earlier (re)load */
	void *h = dlopen(real, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		conf_errors_add(errs, "%s: cannot load connector plugin: %s", real, dlerror());
		return;
	}
	const struct connector *t = dlsym(h, "lienthong_connector");
	if (!t) {
		conf_errors_add(
			errs, "%s: not a lienthong connector: no symbol lienthong_connector", real);
		dlclose(h);
		return;
	}
	if (t->abi_version != CONN_ABI_VERSION) {
		conf_errors_add(
			errs,
			"%s: connector plugin '%s' was built for connector ABI %u, this "
			"lienthongd speaks ABI %u; rebuild it against this version's connector.h",
			real, t->name ? t->name : "?", t->abi_version, CONN_ABI_VERSION);
		dlclose(h);
		return;
	}
	if (!t->name || !t->init || !t->free) {
		conf_errors_add(errs, "%s: connector plugin lacks a name, init or free", real);
		dlclose(h);
		return;
	}
	if (conn_type_find(t->name)) {
		conf_errors_add(errs,
				"%s: connector plugin '%s' clashes with a connector type of "
				"the same name",
				real, t->name);
		dlclose(h);
		return;
	}
	plugin_types = xrealloc(plugin_types, (n_plugins + 1) * sizeof(*plugin_types));
	plugin_paths = xrealloc(plugin_paths, (n_plugins + 1) * sizeof(*plugin_paths));
	plugin_types[n_plugins] = t;
	plugin_paths[n_plugins] = xstrdup(real);
	n_plugins++;
	log_info("loaded connector plugin '%s' from %s", t->name, real);
}

void conn_load_plugins(const char *dir, struct conf_errors *errs)
{
	DIR *dh = opendir(dir);
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;

	if (!dh) {
		if (errno != ENOENT)
			conf_errors_add(errs, "%s: cannot open plugin directory: %s", dir,
					strerror(errno));
		return;
	}
	while ((de = readdir(dh))) {
		if (de->d_name[0] == '.' || !str_endswith(de->d_name, ".so"))
			continue;
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xasprintf("%s/%s", dir, de->d_name);
	}
	closedir(dh);
	qsort(names, n, sizeof(*names), cmp_str); /* deterministic order */
	for (size_t i = 0; i < n; i++) {
		load_one(names[i], errs);
		free(names[i]);
	}
	free(names);
}
