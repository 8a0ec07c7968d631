/*
 * test_reconcile: the three-way matching of reconcile.h on small inputs
 * built for each rule (every class, each way of being decided, the order of
 * the passes), idempotence, and refusals. `test_reconcile --bench N` times
 * N transactions against N fee records (1 % of each discrepancy) and prints
 * `bench payment.match_s`, `bench payment.match_peak_rss_mb`.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reconcile.h"
#include "tap.h"
#include "util.h"

#define DAY_MS (86400LL * 1000)
#define NOW    (20000 * DAY_MS)

static struct rec_tx tx(const char *ref, const char *m, int64_t amount, int state, int64_t at)
{
	return (struct rec_tx){.ref = ref,
			       .txid = "GD",
			       .mahoso = m,
			       .amount = amount,
			       .state = state,
			       .at_ms = at,
			       .verified = true};
}

static struct rec_fee fee(const char *ref, const char *m, int64_t amount, enum rec_fee_state st,
			  enum rec_fee_method how, int64_t at)
{
	return (struct rec_fee){
		.ref = ref, .mahoso = m, .amount = amount, .state = st, .method = how, .at_ms = at};
}

/* "class/how/tx/fee" of every item, ";"-separated (caller frees). */
static char *decisions(const struct rec_result *r)
{
	struct dynbuf b;
	dynbuf_init(&b, 0);
	(void)dynbuf_addstr(&b, "");
	for (size_t i = 0; i < r->n; i++) {
		const struct rec_item *it = &r->items[i];
		(void)dynbuf_printf(&b, "%s%s/%d/%d/%d", i ? ";" : "", rec_class_name(it->cls),
				    it->how, it->tx == REC_NONE ? -1 : (int)it->tx,
				    it->fee == REC_NONE ? -1 : (int)it->fee);
	}
	return dynbuf_steal(&b, NULL);
}

static char *run(const struct rec_input *in, struct rec_result *out)
{
	int r = reconcile(in, out);
	if (r != 0)
		printf("#   reconcile() returned %d\n", r);
	return decisions(out);
}

static void check(const char *what, const struct rec_input *in, const char *want)
{
	struct rec_result out;
	char *got = run(in, &out);
	is_str(got, want, "%s", what);
	free(got);
	rec_free(&out);
}

static void test_rules(void)
{
	int64_t t0 = NOW - DAY_MS / 2;
	struct rec_input in = {.now_ms = NOW, .pending_max_ms = DAY_MS};

	struct rec_tx t1[] = {tx("R1", "D1", 530000, 1, t0)};
	struct rec_fee f1[] = {fee("R1", "D1", 530000, REC_FEE_PAID, REC_ONLINE, t0)};
	in = (struct rec_input){t1, 1, f1, 1, NULL, 0, NOW, DAY_MS};
	check("a success and the record with its MaThamChieu, paid, same amount: matched", &in,
	      "matched/0/0/0");

	f1[0].amount = 529000;
	check("the amounts differ: amount_differs", &in, "amount_differs/0/0/0");
	f1[0].amount = 530000;
	f1[0].state = REC_FEE_UNPAID;
	check("the record is not marked paid: platform_only (not paid locally)", &in,
	      "platform_only/3/0/0");

	struct rec_fee f2[] = {fee("R-OTHER", "D1", 530000, REC_FEE_PAID, REC_ONLINE, t0)};
	in.fee = f2;
	check("no record with its MaThamChieu: matched on dossier and amount", &in,
	      "matched/1/0/0");
	f2[0].amount = 1;
	check("a record of the dossier with another amount: platform_only (no record)", &in,
	      "platform_only/2/0/-1;local_only/8/-1/0");
	f2[0].mahoso = "D9";
	struct rec_portal p_d1[] = {{"D1", 1, 2}};
	in.portal = p_d1;
	in.n_portal = 1;
	check("a dossier the province knows only from the portal: platform_only", &in,
	      "platform_only/2/0/-1;local_only/8/-1/0");
	in.n_portal = 0;
	check("a dossier the province does not know at all: unknown_dossier", &in,
	      "unknown_dossier/2/0/-1;local_only/8/-1/0");

	/* The passes: one on MaThamChieu for all, then dossier and amount. */
	struct rec_tx t3[] = {tx("RX", "D2", 100, 1, t0 - 10), tx("RA", "D3", 100, 1, t0)};
	struct rec_fee f3[] = {fee("RA", "D3", 100, REC_FEE_PAID, REC_ONLINE, t0),
			       fee("RB", "D2", 100, REC_FEE_PAID, REC_ONLINE, t0)};
	in = (struct rec_input){t3, 2, f3, 2, NULL, 0, NOW, DAY_MS};
	check("each success takes its own record first, then by dossier and amount", &in,
	      "matched/1/0/1;matched/0/1/0");

	/* paid twice: the earliest success of a dossier is the payment */
	struct rec_tx t4[] = {tx("R2b", "D4", 100, 1, t0 + 60000), tx("R2a", "D4", 100, 1, t0)};
	struct rec_fee f4[] = {fee("R2a", "D4", 100, REC_FEE_PAID, REC_ONLINE, t0)};
	in = (struct rec_input){t4, 2, f4, 1, NULL, 0, NOW, DAY_MS};
	struct rec_result out;
	char *got = run(&in, &out);
	is_str(got, "paid_twice/5/0/-1;matched/0/1/0",
	       "a second success of the dossier is paid_twice, the earlier one matched");
	ok(out.n == 2 && out.items[0].other == 1, "paid_twice names the first payment");
	char *e = out.n ? rec_explain(&in, &out.items[0]) : NULL;
	ok(e && strstr(e, "R2a") && strstr(e, "R2b") && strstr(e, "100 ₫"),
	   "and its explanation names both (%s)", e ? e : "-");
	free(e);
	free(got);
	rec_free(&out);

	/* pending */
	struct rec_tx t5[] = {tx("P1", "D5", 100, 3, NOW - 3 * DAY_MS),
			      tx("P2", "D6", 100, 3, NOW - 1000)};
	struct rec_fee f5[] = {fee("P1", "D5", 100, REC_FEE_PENDING, REC_ONLINE, NOW - 3 * DAY_MS),
			       fee("P3", "D7", 100, REC_FEE_PENDING, REC_ONLINE, NOW - 2 * DAY_MS),
			       fee("P4", "D8", 100, REC_FEE_PENDING, REC_ONLINE, NOW - 1000)};
	in = (struct rec_input){t5, 2, f5, 3, NULL, 0, NOW, DAY_MS};
	check("pending past the allowed age on the platform, and a record waiting with no "
	      "transaction, are pending_too_long (once each); recent ones are not judged",
	      &in, "pending_too_long/6/0/0;pending_too_long/7/-1/1");

	/* local only */
	struct rec_tx t6[] = {tx("L2", "D10", 100, 4, t0)};
	struct rec_fee f6[] = {fee("L1", "D9", 100, REC_FEE_PAID, REC_ONLINE, t0),
			       fee("L2", "D10", 100, REC_FEE_PAID, REC_ONLINE, t0),
			       fee(NULL, "D11", 100, REC_FEE_PAID, REC_CASH, t0)};
	in = (struct rec_input){t6, 1, f6, 3, NULL, 0, NOW, DAY_MS};
	check("marked paid online with no success: local_only (none, or failed on the "
	      "platform); cash is not judged",
	      &in, "local_only/8/-1/0;local_only/9/0/1");

	/* bad signature: never trusted */
	struct rec_tx t7[] = {tx("S1", "D12", 100, 1, t0)};
	t7[0].verified = false;
	struct rec_fee f7[] = {fee("S1", "D12", 100, REC_FEE_PAID, REC_ONLINE, t0)};
	in = (struct rec_input){t7, 1, f7, 1, NULL, 0, NOW, DAY_MS};
	check("a transaction that does not verify is bad_signature, its record named in it "
	      "(not local_only too)",
	      &in, "bad_signature/4/0/0");

	/* portal */
	struct rec_tx t8[] = {tx("Q1", "D13", 100, 1, t0), tx("Q2", "D14", 100, 1, t0),
			      tx("Q3", "D15", 100, 1, t0), tx("Q4", "D13", 100, 1, t0 + 1)};
	struct rec_fee f8[] = {fee("Q1", "D13", 100, REC_FEE_PAID, REC_ONLINE, t0),
			       fee("Q2", "D14", 100, REC_FEE_PAID, REC_ONLINE, t0),
			       fee("Q3", "D15", 100, REC_FEE_PAID, REC_ONLINE, t0)};
	struct rec_portal p8[] = {{"D13", 0, 2}, {"D14", 1, 0}, {"D15", 1, 1}};
	in = (struct rec_input){t8, 4, f8, 3, p8, 3, NOW, DAY_MS};
	check("a dossier paid online that the portal was told was not, or given no fee, is "
	      "portal_without_fee, once per dossier",
	      &in,
	      "matched/0/0/0;portal_without_fee/10/0/-1;matched/0/1/1;portal_without_fee/11/1/-1;"
	      "matched/0/2/2;paid_twice/5/3/-1");
}

static void test_explain_and_refusals(void)
{
	struct rec_tx t[] = {tx("R1", "H31.1-250602-00001", 1234567, 1, NOW)};
	struct rec_fee f[] = {
		fee("R1", "H31.1-250602-00001", 1234000, REC_FEE_PAID, REC_ONLINE, NOW)};
	struct rec_input in = {t, 1, f, 1, NULL, 0, NOW, DAY_MS};
	struct rec_result out;
	is_int(reconcile(&in, &out), 0, "reconcile() succeeds");
	char *e = out.n ? rec_explain(&in, &out.items[0]) : NULL;
	ok(e && strstr(e, "1.234.567 ₫") && strstr(e, "1.234.000 ₫"),
	   "an explanation gives both amounts as the office writes them (%s)", e ? e : "-");
	free(e);
	is_int(out.count[REC_AMOUNT_DIFFERS], 1, "counts by class");
	is_int(out.amount[REC_AMOUNT_DIFFERS], 1234567, "amounts by class (the platform's)");
	rec_free(&out);

	t[0].ref = NULL;
	is_int(reconcile(&in, &out), -EINVAL, "a transaction without MaThamChieu is refused");
	in = (struct rec_input){NULL, 3, NULL, 0, NULL, 0, NOW, DAY_MS};
	is_int(reconcile(&in, &out), -EINVAL, "a count without an array is refused");
	in = (struct rec_input){NULL, 0, NULL, 0, NULL, 0, NOW, DAY_MS};
	is_int(reconcile(&in, &out), 0, "nothing to reconcile is fine");
	is_int(out.n, 0, "and decides nothing");
	rec_free(&out);
	ok(rec_class_name(REC_PORTAL_WITHOUT_FEE) &&
		   !strcmp(rec_class_name(REC_PORTAL_WITHOUT_FEE), "portal_without_fee") &&
		   rec_class_name(REC__COUNT) == NULL,
	   "class names are those of payment-spec §4");
}

/* ---- generated data (tests and --bench) ---------------------------------- */

struct gen {
	struct rec_tx *tx;
	struct rec_fee *fee;
	char *text; /* every string, NUL-separated */
	size_t n_tx, n_fee;
};

/* n dossiers paying online; every 100th of each kind a discrepancy. */
static void generate(struct gen *g, size_t n)
{
	g->text = xmalloc(n * 80);
	g->tx = xcalloc(n + n / 100 + 1, sizeof(*g->tx));
	g->fee = xcalloc(n + 1, sizeof(*g->fee));
	g->n_tx = g->n_fee = 0;
	char *p = g->text;
	for (size_t i = 0; i < n; i++) {
		char *m = p;
		p += sprintf(p, "H31.%05zu-250602-%05zu", i % 977, i) + 1;
		char *ref = p;
		p += sprintf(p, "H31.%05zu-250602-%05zu-20250602%06zu", i % 977, i, i % 240000) + 1;
		int64_t amount = 10000 + (int64_t)(i % 97) * 5000, at = NOW - DAY_MS / 2;
		struct rec_tx x = tx(ref, m, amount, 1, at);
		struct rec_fee f = fee(ref, m, amount, REC_FEE_PAID, REC_ONLINE, at);
		switch (i % 100) {
		case 1: f.state = REC_FEE_UNPAID; break; /* platform_only */
		case 2: x.state = 4; break;		 /* local_only */
		case 3: f.amount += 1000; break;	 /* amount_differs */
		case 4: x.verified = false; break;	 /* bad_signature */
		case 5:
			x.state = 3, x.at_ms = f.at_ms = NOW - 3 * DAY_MS; /* pending */
			f.state = REC_FEE_PENDING;
			break;
		case 6: g->tx[g->n_tx++] = tx(m, m, amount, 1, at - 1000); break; /* twice */
		default: break;
		}
		g->tx[g->n_tx++] = x;
		g->fee[g->n_fee++] = f;
	}
}

static void test_generated(void)
{
	struct gen g;
	generate(&g, 20000);
	struct rec_input in = {g.tx, g.n_tx, g.fee, g.n_fee, NULL, 0, NOW, DAY_MS};
	struct rec_result a, b;
	is_int(reconcile(&in, &a), 0, "20,000 generated dossiers reconcile");
	is_int(reconcile(&in, &b), 0, "twice");
	bool same = a.n == b.n;
	for (size_t i = 0; same && i < a.n; i++)
		same = a.items[i].cls == b.items[i].cls && a.items[i].how == b.items[i].how &&
		       a.items[i].tx == b.items[i].tx && a.items[i].fee == b.items[i].fee &&
		       a.items[i].portal == b.items[i].portal &&
		       a.items[i].other == b.items[i].other;
	ok(same, "a rerun decides exactly the same, in the same order (idempotent)");
	is_int(a.count[REC_PLATFORM_ONLY], 200, "every seeded platform_only is found");
	is_int(a.count[REC_LOCAL_ONLY], 200,
	       "every local_only (the records of the transactions not trusted are in their "
	       "bad_signature items)");
	is_int(a.count[REC_AMOUNT_DIFFERS], 200, "every amount_differs");
	is_int(a.count[REC_BAD_SIGNATURE], 200, "every bad_signature, once");
	is_int(a.count[REC_PENDING_TOO_LONG], 200, "every pending_too_long, once");
	is_int(a.count[REC_PAID_TWICE], 200,
	       "every paid_twice: the payment the province recorded is kept, even if later");
	is_int(a.count[REC_MATCHED], 20000 - 5 * 200, "and the rest matched");
	rec_free(&a);
	rec_free(&b);
	free(g.tx);
	free(g.fee);
	free(g.text);
}

static long peak_rss_kb(void)
{
	char *s = NULL;
	long kb = 0;
	if (read_file_bounded("/proc/self/status", 1 << 20, &s, NULL) == 0) {
		const char *p = strstr(s, "VmHWM:");
		if (p)
			kb = strtol(p + 6, NULL, 10);
	}
	free(s);
	return kb;
}

static int bench(size_t n)
{
	struct gen g;
	struct timespec a, b;
	generate(&g, n);
	struct rec_input in = {g.tx, g.n_tx, g.fee, g.n_fee, NULL, 0, NOW, DAY_MS};
	struct rec_result out;
	clock_gettime(CLOCK_MONOTONIC, &a);
	int r = reconcile(&in, &out);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	printf("bench payment.match_s %.3f s\n", s);
	printf("bench payment.match_peak_rss_mb %.1f MB\n", (double)peak_rss_kb() / 1024);
	printf("# %zu transactions, %zu fee records: %zu decisions, %zu matched\n", g.n_tx, g.n_fee,
	       out.n, out.count[REC_MATCHED]);
	rec_free(&out);
	free(g.tx);
	free(g.fee);
	free(g.text);
	return r == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--bench"))
		return bench((size_t)strtoull(argv[2], NULL, 10));
	test_rules();
	test_explain_and_refusals();
	test_generated();
	return tap_done();
}
