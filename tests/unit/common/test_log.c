/* test_log.c -- the log line escaper and the per-kind rate limit */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/log.h"

#include <pthread.h>
#include <string.h>

static void test_escape(void **state)
{
	(void)state;
	char out[64];
	assert_string_equal(log_escape(out, sizeof out, "a\r\nb\\c\0d", 8), "a\\x0d\\x0ab\\x5cc\\x00d");
	/* Cut at a whole escape: never half of "\x0a". */
	assert_string_equal(log_escape(out, 6, "ab\ncd", 5), "ab");
	assert_string_equal(log_escape(out, 7, "ab\ncd", 5), "ab\\x0a");
	assert_string_equal(log_escape(out, 8, "ab\ncd", 5), "ab\\x0ac");
}

static void test_limit_window(void **state)
{
	(void)state;
	struct log_limit l = {0};
	unsigned dropped = 99;
	int allowed = 0;
	for (int i = 0; i < 25; i++)
		allowed += log_limit_allow(&l, 10, 5000 + i, &dropped);
	assert_int_equal(allowed, 10);
	/* The first line of the next second says what was left out. */
	assert_true(log_limit_allow(&l, 10, 6001, &dropped));
	assert_int_equal(dropped, 15);
	assert_true(log_limit_allow(&l, 10, 6002, &dropped));
	assert_int_equal(dropped, 0);
}

struct hammer {
	struct log_limit *l;
	int allowed;
	unsigned dropped_said;
};

static void *hammer_run(void *arg)
{
	struct hammer *h = arg;
	unsigned d;
	for (int i = 0; i < 10000; i++)
		if (log_limit_allow(h->l, 10, 42000, &d)) {
			h->allowed++;
			h->dropped_said += d;
		}
	return NULL;
}

/* Four threads in one second: exactly ten lines in all, whatever the
 * interleaving. */
static void test_limit_threads(void **state)
{
	(void)state;
	struct log_limit l = {0};
	struct hammer h[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		h[i] = (struct hammer){ &l, 0, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, hammer_run, &h[i]), 0);
	}
	int allowed = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		allowed += h[i].allowed;
	}
	assert_int_equal(allowed, 10);
	unsigned d;
	assert_true(log_limit_allow(&l, 10, 43000, &d));
	assert_int_equal(d, 40000 - 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_limit_window),
		cmocka_unit_test(test_limit_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
