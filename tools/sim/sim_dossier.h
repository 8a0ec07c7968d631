/*
 * sim_dossier.h: the simulated province's dossiers, shared by
 * sim_dossier.c (the deterministic stream of dossier changes, its compact
 * log, the provincial change feed and /_sim/feed), sim_dossier_text.c (the
 * Vietnamese vocabulary: people, organisations, addresses, officials and
 * the texts of processing steps) and sim_old_communes.c (the communes
 * before the 2025 reform, generated).
 *
 * The contract is notes/dossier-spec.md §1 and §4. Everything here is a
 * pure function of its arguments (the random generator passed in included),
 * so a dossier depends on --seed and its index only.
 */
#ifndef SIM_DOSSIER_H
#define SIM_DOSSIER_H

#include "sim_catalog.h"

/* A commune of old Hưng Yên or old Thái Bình (before 1 July 2025). */
struct sim_old_commune {
	const char *code;     /* 5 digits, the old code */
	const char *name;     /* "Xã Trung Nghĩa" */
	const char *new_code; /* the new commune it became part of (sim_communes) */
	const char *district; /* "Thành phố Hưng Yên" */
	const char *province; /* "Tỉnh Hưng Yên", "Tỉnh Thái Bình" */
};

/* The 384 rows of the conversion table (an old commune split in two has two). */
extern const struct sim_old_commune sim_old_communes[];
extern const size_t sim_n_old_communes;

/* ---- vocabulary (sim_dossier_text.c) ---------------------------------- */

/*
 * A Vietnamese full name, family name, one or two middle names and a given
 * name, drawn with the frequencies of real family names ("Nguyễn Thị Thu
 * Hương"). *female tells which given names were used (may be NULL).
 */
void sim_dossier_person(struct sim_rng *rng, char *buf, size_t len, bool *female);

/*
 * The name of an applicant that is not a citizen: loai 2 a business
 * ("Công ty TNHH Thương mại Hưng Phát"), 3 a state body, 4 another
 * organisation; place is a commune name used by some of them.
 */
void sim_dossier_organisation(struct sim_rng *rng, unsigned loai, const char *place, char *buf,
			      size_t len);

/*
 * A street address in a commune: "Thôn Đông, Xã Tân Hưng, tỉnh Hưng Yên",
 * "Số 25 đường Lê Lợi, Phường Phố Hiến, tỉnh Hưng Yên"; with district (an
 * old address) "..., Huyện Kim Động, Tỉnh Hưng Yên".
 */
void sim_dossier_address(struct sim_rng *rng, const char *commune, const char *district,
			 const char *province, char *buf, size_t len);

/* s without diacritics, lowercase, letters and digits only ("nguyenthithuhuong"). */
void sim_dossier_ascii(const char *s, char *buf, size_t len);

/* Roles of the officials who record processing steps. */
enum sim_staff_role {
	SIM_STAFF_DESK,	      /* one-stop desk: accepts, returns */
	SIM_STAFF_SPECIALIST, /* processes */
	SIM_STAFF_LEADER,     /* signs */
	SIM_STAFF__COUNT,
};

/*
 * The office (phongBan) and title (chucDanh) of official k of a role in a
 * unit: a department (dept: its provincial code, "STP") or, when dept is
 * NULL, a commune (old: before the reform). A commune's desk and leaders
 * ("Bộ phận Một cửa", "Lãnh đạo") and an old commune's officials ("") are
 * named after the commune by the caller ("Bộ phận Một cửa UBND Xã Tân Hưng").
 */
void sim_dossier_staff_post(const char *dept, bool old, enum sim_staff_role role, unsigned k,
			    const char **office, const char **title);

/* Texts of processing steps (buocXuLy.noiDung), by kind. */
enum sim_step_text {
	SIM_TXT_SUBMIT,
	SIM_TXT_ACCEPT,
	SIM_TXT_REJECT,
	SIM_TXT_TRANSFER,
	SIM_TXT_REVIEW,
	SIM_TXT_CONSULT,
	SIM_TXT_SIGN,
	SIM_TXT_SUPPLEMENT,
	SIM_TXT_RESUME,
	SIM_TXT_FEE,
	SIM_TXT_PAID,
	SIM_TXT_WITHDRAW,
	SIM_TXT_STOP,
	SIM_TXT_DONE,
	SIM_TXT_RETURN,
	SIM_TXT__COUNT,
};

/* The variants of a step text: *n gets their number. */
const char *const *sim_dossier_step_texts(enum sim_step_text t, unsigned *n);

#endif
