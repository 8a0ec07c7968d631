/*
 * sim_catalog.h: the simulated procedure catalogue, shared by
 * sim_catalog.c (the deterministic model, its national and provincial
 * renderings, the state and /_sim/catalog), sim_svc_csdl.c (the four CSDL
 * TTHC adapter services), sim_provincial.c (the provincial REST API and
 * /_sim/provincial) and sim_communes.c (the generated commune table).
 *
 * The contract is notes/catalog-spec.md §1, §2, §4, §5: one model per
 * procedure, a pure function of (--seed, its index), rendered twice: the
 * messy national record that LayThuTuc answers, and the clean provincial
 * record that a correct mapping (spec §3) produces from it. Every function
 * here takes the catalogue's lock itself; texts handed out are copies.
 */
#ifndef SIM_CATALOG_H
#define SIM_CATALOG_H

#include "sim.h"

/* Longest procedure code accepted anywhere (national codes are ~22 bytes). */
#define SIM_CATALOG_CODE_MAX 64

/* A commune of the new Hưng Yên (from 1 July 2025): 5-digit code and name. */
struct sim_commune {
	const char *code;
	const char *name;
};

/* The 104 communes, sorted by code (sim_communes.c, generated). */
extern const struct sim_commune sim_communes[];
extern const size_t sim_n_communes;

/* ---- national side (the adapter services) --------------------------- */

/*
 * LayDanhSachTTHC: the JSON text of the result array, [{"MATTHC",
 * "TENTTHC"}...] of every published procedure in code order ("[]" while
 * empty_list is on). Caller frees.
 */
char *sim_catalog_list_result(void);

/*
 * LayThuTuc: the JSON text of the result array ("[record]") for code, or
 * NULL when the national side never had it. Caller frees.
 */
char *sim_catalog_record_result(const char *code);

/* LayDanhMucCoQuan and LayDanhMucLinhVuc result arrays (new references). */
json_t *sim_catalog_agencies(void);
json_t *sim_catalog_fields(void);

/* ---- provincial side (the REST API) ---------------------------------- */

/*
 * One page of the provincial catalogue in code order, as the whole answer
 * body {"data":[...],"page":P,"size":S,"total":T}. page >= 1, 1 <= size.
 * Caller frees; *len gets the length.
 */
char *sim_catalog_prov_page(uint64_t page, unsigned size, size_t *len);

/* The stored record of code as JSON text (caller frees), or NULL. */
char *sim_catalog_prov_get(const char *code, size_t *len);

/*
 * Stores record (borrowed, an object) under code as sent, replacing any
 * previous record, and counts the PUT. Returns 0, or -ENOSPC when the
 * provincial catalogue is full.
 */
int sim_catalog_prov_put(const char *code, const json_t *record);

/* Merges the members of set (borrowed object) into code's record. 0 or -ENOENT. */
int sim_catalog_prov_edit(const char *code, const json_t *set);

/* Removes code's record. 0 or -ENOENT. */
int sim_catalog_prov_delete(const char *code);

/* {"total":n,"by_code":{code:n...}} of the PUTs stored since start or reseed. */
json_t *sim_catalog_prov_puts(void);

/* True when code is acceptable as a procedure code in a URL. */
bool sim_catalog_code_valid(const char *code);

#endif
