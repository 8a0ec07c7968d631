/*
 * tap.h: the unit tests' tiny harness. Each check prints a TAP line
 * ("ok 3 - what it protects" / "not ok 3 - ..."); tap_done() prints the plan
 * and returns the exit status. tests/run adds the counts of every binary.
 */
#ifndef LT_TAP_H
#define LT_TAP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed;

#define ok(cond, ...)                                                                              \
	do {                                                                                       \
		int tap_c_ = !!(cond);                                                             \
		tap_n++;                                                                           \
		if (!tap_c_)                                                                       \
			tap_failed++;                                                              \
		printf("%sok %d - ", tap_c_ ? "" : "not ", tap_n);                                 \
		printf(__VA_ARGS__);                                                               \
		printf("\n");                                                                      \
		if (!tap_c_)                                                                       \
			printf("#   failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);            \
		fflush(stdout);                                                                    \
	} while (0)

#define is_int(got, want, ...)                                                                     \
	do {                                                                                       \
		long long tap_g_ = (long long)(got), tap_w_ = (long long)(want);                   \
		ok(tap_g_ == tap_w_, __VA_ARGS__);                                                 \
		if (tap_g_ != tap_w_)                                                              \
			printf("#   got %lld, want %lld\n", tap_g_, tap_w_);                       \
	} while (0)

#define is_str(got, want, ...)                                                                     \
	do {                                                                                       \
		const char *tap_g_ = (got), *tap_w_ = (want);                                      \
		int tap_eq_ = (tap_g_ && tap_w_) ? strcmp(tap_g_, tap_w_) == 0 : tap_g_ == tap_w_; \
		ok(tap_eq_, __VA_ARGS__);                                                          \
		if (!tap_eq_)                                                                      \
			printf("#   got '%s', want '%s'\n", tap_g_ ? tap_g_ : "(null)",            \
			       tap_w_ ? tap_w_ : "(null)");                                        \
	} while (0)

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	if (tap_failed)
		printf("# %d of %d checks failed\n", tap_failed, tap_n);
	return tap_failed ? 1 : 0;
}

#endif
