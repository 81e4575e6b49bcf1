/* test_fetch_upload.c -- a streamed request body's window: how much the
 * client side may put, when its connection is suspended, and that a
 * transfer already over takes nothing (no libcurl transfer runs here). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "edge/upstream/fetch.h"

static int suspends, resumes;

static void on_suspend(void *cls)
{
	assert_ptr_equal(cls, &suspends);
	suspends++;
}

static void on_resume(void *cls)
{
	resumes++;
}

static void test_window(void **state)
{
	static char data[FETCH_UPLOAD_WINDOW * 2];
	memset(data, 'b', sizeof data);
	suspends = resumes = 0;
	struct fetch *f = fetch_new("POST", "http://127.0.0.1:1/up", NULL, NULL, 0, NULL, NULL);
	fetch_upload_init(f, -1, on_resume, &suspends);
	size_t taken;
	/* Below the window: all of it, nobody suspended. */
	assert_int_equal(fetch_upload_put(f, data, 100000, &taken, on_suspend), FETCH_PUT_OK);
	assert_int_equal(taken, 100000);
	assert_int_equal(suspends, 0);
	/* Past it: up to the window, and the client waits. */
	assert_int_equal(fetch_upload_put(f, data, sizeof data, &taken, on_suspend), FETCH_PUT_OK);
	assert_int_equal(taken, FETCH_UPLOAD_WINDOW - 100000);
	assert_int_equal(suspends, 1);
	/* Full: nothing taken, suspended again, never resumed by the put itself. */
	assert_int_equal(fetch_upload_put(f, data, 10, &taken, on_suspend), FETCH_PUT_OK);
	assert_int_equal(taken, 0);
	assert_int_equal(suspends, 2);
	assert_int_equal(resumes, 0);
	/* The transfer ended (the origin failed): nothing more is taken. */
	pthread_mutex_lock(&f->lock);
	f->state = F_FAILED;
	pthread_mutex_unlock(&f->lock);
	assert_int_equal(fetch_upload_put(f, data, 10, &taken, on_suspend), FETCH_PUT_OVER);
	assert_int_equal(taken, 0);
	assert_int_equal(suspends, 2);
	fetch_upload_end(f);
	fetch_upload_detach(f);
	assert_int_equal(resumes, 0);
	fetch_unref(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
