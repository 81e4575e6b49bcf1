/* test_push.c -- which version a rollback restores */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "origin/push.h"

static void test_rollback_target(void **state)
{
	/* v1 A, v2 B, v3 C: rollback restores v2 */
	unsigned long long v1[] = { 1, 2, 3 }, rb1[] = { 0, 0, 0 };
	bool d1[] = { false, false, false };
	assert_int_equal(push_rollback_target(v1, d1, rb1, 3), 1);

	/* ... then v4 = rollback of v2: the next rollback restores v1, not v3 */
	unsigned long long v2[] = { 1, 2, 3, 4 }, rb2[] = { 0, 0, 0, 2 };
	bool d2[] = { false, false, false, false };
	assert_int_equal(push_rollback_target(v2, d2, rb2, 4), 0);

	/* ... then v5 = rollback of v1: nothing older remains */
	unsigned long long v3[] = { 1, 2, 3, 4, 5 }, rb3[] = { 0, 0, 0, 2, 1 };
	bool d3[] = { false, false, false, false, false };
	assert_int_equal(push_rollback_target(v3, d3, rb3, 5), -1);

	/* v1 A, v2 B, v3 unpushed: rollback re-activates v2 */
	unsigned long long v4[] = { 1, 2, 3 }, rb4[] = { 0, 0, 0 };
	bool d4[] = { false, false, true };
	assert_int_equal(push_rollback_target(v4, d4, rb4, 3), 1);

	/* tombstones are skipped on the way back */
	unsigned long long v5[] = { 1, 2, 3 }, rb5[] = { 0, 0, 0 };
	bool d5[] = { false, true, false };
	assert_int_equal(push_rollback_target(v5, d5, rb5, 3), 0);

	/* a single version, or nothing */
	unsigned long long v6[] = { 7 }, rb6[] = { 0 };
	bool d6[] = { false };
	assert_int_equal(push_rollback_target(v6, d6, rb6, 1), -1);
	assert_int_equal(push_rollback_target(NULL, NULL, NULL, 0), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rollback_target),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
