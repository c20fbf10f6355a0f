/* src/realtime/breaker.c: the connect circuit breaker, driven with explicit times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "realtime/client.h"

static void test_init(void **state)
{
    (void)state;
    struct rt_breaker b;
    memset(&b, 0xA5, sizeof(b));
    rt_breaker_init(&b, 3, 5000);
    assert_int_equal(b.state, RT_BREAKER_CLOSED);
    assert_int_equal(b.threshold, 3);
    assert_int_equal(b.cooldown_ms, 5000);
    assert_int_equal(b.failures, 0);
    assert_false(b.probing);
    assert_string_equal(b.last_error, "");
    assert_true(rt_breaker_allows(&b));
    /* closed: never a probe */
    assert_false(rt_breaker_probe_due(&b, 0));
    assert_false(rt_breaker_probe_due(&b, UINT64_MAX));
    /* threshold 0 behaves as 1 */
    rt_breaker_init(&b, 0, 10);
    assert_int_equal(b.threshold, 1);
    assert_true(rt_breaker_failure(&b, 0, "x"));
    assert_false(rt_breaker_allows(&b));
}

static void test_opens_at_threshold(void **state)
{
    (void)state;
    struct rt_breaker b;
    rt_breaker_init(&b, 3, 1000);
    assert_false(rt_breaker_failure(&b, 100, "timeout"));
    assert_true(rt_breaker_allows(&b));
    assert_false(rt_breaker_failure(&b, 200, "refused"));
    assert_true(rt_breaker_allows(&b));
    assert_int_equal(b.failures, 2);
    /* the third in a row opens it, and only that one says so */
    assert_true(rt_breaker_failure(&b, 300, "401"));
    assert_false(rt_breaker_allows(&b));
    assert_int_equal(b.state, RT_BREAKER_OPEN);
    assert_int_equal(b.next_probe_ms, 1300);
    assert_string_equal(b.last_error, "401");
    /* late failures of calls let in before it opened only count */
    assert_false(rt_breaker_failure(&b, 900, "late"));
    assert_int_equal(b.failures, 4);
    assert_int_equal(b.next_probe_ms, 1300);
    assert_string_equal(b.last_error, "late");
}

static void test_success_resets_count(void **state)
{
    (void)state;
    struct rt_breaker b;
    rt_breaker_init(&b, 3, 1000);
    rt_breaker_failure(&b, 0, "a");
    rt_breaker_failure(&b, 0, "b");
    rt_breaker_success(&b);
    assert_int_equal(b.failures, 0);
    /* "consecutive": two more do not open it */
    assert_false(rt_breaker_failure(&b, 0, "c"));
    assert_false(rt_breaker_failure(&b, 0, "d"));
    assert_true(rt_breaker_allows(&b));
    assert_true(rt_breaker_failure(&b, 0, "e"));
}

static void test_probe_schedule(void **state)
{
    (void)state;
    struct rt_breaker b;
    rt_breaker_init(&b, 1, 1000);
    assert_true(rt_breaker_failure(&b, 5000, "down"));
    /* not before the cooldown */
    assert_false(rt_breaker_probe_due(&b, 5000));
    assert_false(rt_breaker_probe_due(&b, 5999));
    assert_false(b.probing);
    /* due exactly at it, once */
    assert_true(rt_breaker_probe_due(&b, 6000));
    assert_true(b.probing);
    assert_false(rt_breaker_probe_due(&b, 6000));
    assert_false(rt_breaker_probe_due(&b, 99999)); /* one probe in flight at a time */
    assert_false(rt_breaker_allows(&b));
    /* a failed probe reschedules from its own end */
    rt_breaker_probe_done(&b, false, 6400, "still down");
    assert_false(b.probing);
    assert_int_equal(b.next_probe_ms, 7400);
    assert_int_equal(b.failures, 2);
    assert_string_equal(b.last_error, "still down");
    assert_false(rt_breaker_allows(&b));
    assert_false(rt_breaker_probe_due(&b, 7399));
    assert_true(rt_breaker_probe_due(&b, 7400));
    /* a good probe closes it */
    rt_breaker_probe_done(&b, true, 7500, NULL);
    assert_true(rt_breaker_allows(&b));
    assert_int_equal(b.state, RT_BREAKER_CLOSED);
    assert_int_equal(b.failures, 0);
    assert_false(b.probing);
    assert_false(rt_breaker_probe_due(&b, 1u << 30));
}

static void test_late_probe_is_due(void **state)
{
    (void)state;
    struct rt_breaker b;
    rt_breaker_init(&b, 2, 250);
    rt_breaker_failure(&b, 0, "a");
    rt_breaker_failure(&b, 10, "b");
    /* asked long after: due at once, not a backlog of probes */
    assert_true(rt_breaker_probe_due(&b, 100000));
    rt_breaker_probe_done(&b, false, 100001, "c");
    assert_false(rt_breaker_probe_due(&b, 100250));
    assert_true(rt_breaker_probe_due(&b, 100251));
}

static void test_call_success_while_open(void **state)
{
    (void)state;
    struct rt_breaker b;
    rt_breaker_init(&b, 1, 1000);
    rt_breaker_failure(&b, 0, "down");
    assert_true(rt_breaker_probe_due(&b, 1000));
    /* a call admitted before the opening connected after all */
    rt_breaker_success(&b);
    assert_true(rt_breaker_allows(&b));
    assert_int_equal(b.failures, 0);
    /* the probe's success changes nothing more */
    rt_breaker_probe_done(&b, true, 1100, NULL);
    assert_true(rt_breaker_allows(&b));
    assert_false(b.probing);
}

static void test_probe_fails_after_close(void **state)
{
    (void)state;
    struct rt_breaker b;
    rt_breaker_init(&b, 1, 1000);
    rt_breaker_failure(&b, 0, "down");
    assert_true(rt_breaker_probe_due(&b, 1000));
    rt_breaker_success(&b);
    /* closed meanwhile; the failed probe counts like a call's failure: threshold 1 reopens */
    rt_breaker_probe_done(&b, false, 1200, "flap");
    assert_false(b.probing);
    assert_false(rt_breaker_allows(&b));
    assert_int_equal(b.next_probe_ms, 2200);
    assert_string_equal(b.last_error, "flap");

    rt_breaker_init(&b, 3, 1000);
    rt_breaker_failure(&b, 0, "a");
    rt_breaker_failure(&b, 0, "b");
    rt_breaker_failure(&b, 0, "c");
    assert_true(rt_breaker_probe_due(&b, 1000));
    rt_breaker_success(&b);
    rt_breaker_probe_done(&b, false, 1200, "d");
    assert_true(rt_breaker_allows(&b)); /* 1 of 3 */
    assert_int_equal(b.failures, 1);
}

static void test_last_error_bounds(void **state)
{
    (void)state;
    struct rt_breaker b;
    rt_breaker_init(&b, 5, 1000);
    char big[300];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    rt_breaker_failure(&b, 0, big);
    assert_int_equal(strlen(b.last_error), sizeof(b.last_error) - 1);
    rt_breaker_failure(&b, 0, NULL);
    assert_string_equal(b.last_error, "");
}

static void test_counter_saturates(void **state)
{
    (void)state;
    struct rt_breaker b;
    rt_breaker_init(&b, 1, 0);
    b.failures = UINT32_MAX - 1;
    rt_breaker_failure(&b, 0, "a");
    rt_breaker_failure(&b, 0, "b");
    assert_int_equal(b.failures, UINT32_MAX);
    /* cooldown 0: a probe is due at once after every failed one */
    assert_true(rt_breaker_probe_due(&b, 0));
    rt_breaker_probe_done(&b, false, 7, "c");
    assert_int_equal(b.failures, UINT32_MAX);
    assert_true(rt_breaker_probe_due(&b, 7));
}

/* A long random walk against a reference model written out separately. */
struct model {
    bool open, probing;
    uint32_t fails;
    uint64_t next;
};

static void test_random_walk(void **state)
{
    (void)state;
    struct rt_breaker b;
    struct model m = {0};
    const uint32_t thr = 4, cool = 300;
    rt_breaker_init(&b, thr, cool);
    uint64_t now = 0;
    uint32_t x = 12345;
    for (int i = 0; i < 200000; i++) {
        x = x * 1103515245u + 12345u;
        now += (x >> 8) % 97;
        switch ((x >> 20) % 5) {
        case 0: {
            bool opened = rt_breaker_failure(&b, now, "f");
            bool want = false;
            m.fails++;
            if (!m.open && m.fails >= thr) {
                m.open = true;
                m.next = now + cool;
                want = true;
            }
            assert_int_equal(opened, want);
            break;
        }
        case 1:
            rt_breaker_success(&b);
            m.open = false;
            m.fails = 0;
            break;
        case 2: {
            bool due = rt_breaker_probe_due(&b, now);
            bool want = m.open && !m.probing && now >= m.next;
            if (want)
                m.probing = true;
            assert_int_equal(due, want);
            break;
        }
        default:
            if (m.probing) {
                bool ok = (x >> 28) & 1;
                rt_breaker_probe_done(&b, ok, now, "p");
                m.probing = false;
                if (ok) {
                    m.open = false;
                    m.fails = 0;
                } else {
                    m.fails++;
                    if (m.open) {
                        m.next = now + cool;
                    } else if (m.fails >= thr) {
                        m.open = true;
                        m.next = now + cool;
                    }
                }
            }
            break;
        }
        assert_int_equal(rt_breaker_allows(&b), !m.open);
        assert_int_equal(b.failures, m.fails);
        assert_int_equal(b.probing, m.probing);
        if (m.open)
            assert_int_equal(b.next_probe_ms, m.next);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_opens_at_threshold),
        cmocka_unit_test(test_success_resets_count),
        cmocka_unit_test(test_probe_schedule),
        cmocka_unit_test(test_late_probe_is_due),
        cmocka_unit_test(test_call_success_while_open),
        cmocka_unit_test(test_probe_fails_after_close),
        cmocka_unit_test(test_last_error_bounds),
        cmocka_unit_test(test_counter_saturates),
        cmocka_unit_test(test_random_walk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
