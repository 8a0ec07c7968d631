/*
 * sim_payment.h: the hook between the dossier stream (sim_dossier.c) and the
 * simulated payment side (sim_payment.c: the national payment platform
 * under /paygov and the provincial fee records, notes/payment-spec.md
 * §2-§4).
 *
 * The stream tells the payment side about every dossier it plans that has
 * fee lines with gia > 0, in the order of the dossiers' indices; the payment
 * side answers how the change feed must render that dossier's payment
 * fields: as generated, or (seeded discrepancy portal_without_fee) without
 * them.
 */
#ifndef SIM_PAYMENT_H
#define SIM_PAYMENT_H

#include "sim.h"

/* A planned dossier with fees, as the stream generated it. Strings borrowed. */
struct sim_payment_dossier {
	uint64_t index;	    /* its index in the stream (0, 1, ...) */
	const char *mahoso; /* maHoSo */
	int64_t received_s; /* ngayNop: its first change, epoch s */
	int64_t now_s;	    /* "now" of the stream, epoch s */
	int64_t amount;	    /* the sum of its fee lines with gia > 0, VND, > 0 */
	unsigned kenh;	    /* kenhNop 1..3 */
	bool online;	    /* thanhToanTrucTuyen 1 or 2 as generated: it pays online */
};

/* How the change feed renders the payment fields of a dossier. */
enum sim_payment_render {
	SIM_PAYMENT_AS_IS = 0,	/* as generated */
	SIM_PAYMENT_NOT_ONLINE, /* thanhToanTrucTuyen 0, fee lines hinhThucThu 1 */
	SIM_PAYMENT_NO_FEES,	/* lePhi [] */
};

/*
 * Records the payments of dossier pd (its online attempt and platform
 * transaction, or its payment at the desk, and the provincial fee record)
 * and returns how the feed renders it. Called by the stream's writer, with
 * the generator's lock held, once per dossier in index order, also before
 * the payment module's init (the records are then completed by it).
 * Deterministic: a function of --seed, --dossiers, --payment-faults and the
 * sequence of dossiers. Thread-safe.
 */
enum sim_payment_render sim_payment_dossier(const struct sim_payment_dossier *pd);

#endif
