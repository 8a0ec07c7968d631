/*
 * flow_payment: online fee payments reconciled against the dossiers (issue
 * 5, docs/contracts/payment-spec.md). The flow type is in flow_payment.c;
 * this is what the control socket asks of it.
 */
#ifndef LT_FLOW_PAYMENT_H
#define LT_FLOW_PAYMENT_H

#include <stdbool.h>

#include "flow.h"

struct ctl_later;

extern const struct flow_type flow_payment;

/*
 * The reports of days from..to (YYYY-MM-DD, at most 366 days), reconciled
 * on demand from what the store holds (nothing is fetched, no mismatch is
 * recorded), written under the flow's reports_dir in formats (REPORT_*
 * bits, 0: the flow's report_formats). The matching runs on the flow's
 * worker thread; later is answered with {"from","to","paths":{...},
 * "summary":{...},"inputs":{...},"seconds":s} or an error. Returns 0, or
 * -EINVAL with *err (bad dates; later not used: the caller answers).
 */
int flow_payment_report(struct flow *f, const char *from, const char *to, unsigned formats,
			struct ctl_later *later, char **err);

#endif
