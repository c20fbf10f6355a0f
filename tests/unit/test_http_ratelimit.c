/* tests/unit/test_http_ratelimit.c: token buckets in a fixed table, on a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "core/err.h"
#include "http/ratelimit.h"

static struct va_addr addr_of(const char *s)
{
    struct va_addr a;
    assert_int_equal(va_addr_parse(&a, s, strlen(s)), 0);
    return a;
}

/* The n-th of many distinct IPv4 addresses. */
static struct va_addr addr_n(uint32_t n)
{
    char text[32];
    snprintf(text, sizeof(text), "10.%u.%u.%u", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
    return addr_of(text);
}

static size_t used_slots(const struct va_rl *rl)
{
    size_t used = 0;
    for (size_t i = 0; i < rl->nslots; i++)
        used += rl->slots[i].key.family != 0;
    return used;
}

static void test_init(void **state)
{
    struct va_rl rl;
    (void)state;

    assert_int_equal(va_rl_init(&rl, 0, 10, 64), VA_EINVAL);
    assert_null(rl.slots);
    assert_int_equal(va_rl_init(&rl, 60, 0, 64), VA_EINVAL);
    assert_int_equal(va_rl_init(&rl, 60, 10, 0), VA_EINVAL);
    assert_int_equal(va_rl_init(&rl, 60, 10, ((size_t)1 << 24) + 1), VA_EINVAL);

    static const struct {
        size_t asked, got;
    } sizes[] = {{1, 1}, {2, 2}, {3, 4}, {5, 8}, {8, 8}, {1000, 1024}, {1024, 1024}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        assert_int_equal(va_rl_init(&rl, 60, 10, sizes[i].asked), 0);
        assert_int_equal(rl.nslots, sizes[i].got);
        assert_int_equal(used_slots(&rl), 0);
        va_rl_deinit(&rl);
        assert_null(rl.slots);
    }
}

static void test_burst_then_limited(void **state)
{
    struct va_rl rl;
    struct va_addr a = addr_of("198.51.100.1");
    uint32_t retry = 0;
    (void)state;

    assert_int_equal(va_rl_init(&rl, 60, 3, 64), 0);
    for (int i = 0; i < 3; i++)
        assert_true(va_rl_take(&rl, &a, 1000, &retry));
    assert_false(va_rl_take(&rl, &a, 1000, &retry));
    assert_int_equal(retry, 1);
    /* A refused request takes nothing: still one second to the next token. */
    retry = 0;
    assert_false(va_rl_take(&rl, &a, 1000, &retry));
    assert_int_equal(retry, 1);
    /* NULL retry_after_s is allowed. */
    assert_false(va_rl_take(&rl, &a, 1000, NULL));
    va_rl_deinit(&rl);
}

static void test_refill(void **state)
{
    struct va_rl rl;
    struct va_addr a = addr_of("198.51.100.1");
    uint32_t retry = 0;
    (void)state;

    assert_int_equal(va_rl_init(&rl, 60, 2, 64), 0); /* one token a second */
    assert_true(va_rl_take(&rl, &a, 0, &retry));
    assert_true(va_rl_take(&rl, &a, 0, &retry));
    assert_false(va_rl_take(&rl, &a, 999, &retry));
    assert_int_equal(retry, 1);
    assert_true(va_rl_take(&rl, &a, 1000, &retry));
    assert_false(va_rl_take(&rl, &a, 1000, &retry));
    /* Half a token now, the other half later: refill is not quantised. */
    assert_false(va_rl_take(&rl, &a, 1500, &retry));
    assert_true(va_rl_take(&rl, &a, 2000, &retry));
    /* A long pause refills to the burst and no further. */
    assert_true(va_rl_take(&rl, &a, 1000000, &retry));
    assert_true(va_rl_take(&rl, &a, 1000000, &retry));
    assert_false(va_rl_take(&rl, &a, 1000000, &retry));
    /* A clock that steps back refills nothing and breaks nothing. */
    assert_false(va_rl_take(&rl, &a, 5, &retry));
    assert_int_equal(retry, 1);
    assert_true(va_rl_take(&rl, &a, 1001000, &retry));
    va_rl_deinit(&rl);
}

static void test_retry_after(void **state)
{
    struct va_rl rl;
    struct va_addr a = addr_of("2001:db8::1");
    uint32_t retry = 0;
    (void)state;

    /* One a minute: the wait counts down, rounded up, never below 1. */
    assert_int_equal(va_rl_init(&rl, 1, 1, 16), 0);
    assert_true(va_rl_take(&rl, &a, 0, &retry));
    assert_false(va_rl_take(&rl, &a, 0, &retry));
    assert_int_equal(retry, 60);
    assert_false(va_rl_take(&rl, &a, 30000, &retry));
    assert_int_equal(retry, 30);
    assert_false(va_rl_take(&rl, &a, 30001, &retry));
    assert_int_equal(retry, 30);
    assert_false(va_rl_take(&rl, &a, 59500, &retry));
    assert_int_equal(retry, 1);
    assert_false(va_rl_take(&rl, &a, 59999, &retry));
    assert_int_equal(retry, 1);
    assert_true(va_rl_take(&rl, &a, 60000, &retry));
    va_rl_deinit(&rl);

    /* 7 a minute: 8.57 s per token -> 9. */
    assert_int_equal(va_rl_init(&rl, 7, 1, 16), 0);
    assert_true(va_rl_take(&rl, &a, 0, &retry));
    assert_false(va_rl_take(&rl, &a, 0, &retry));
    assert_int_equal(retry, 9);
    va_rl_deinit(&rl);

    /* Faster than one a second still says 1, never 0. */
    assert_int_equal(va_rl_init(&rl, 600, 1, 16), 0);
    assert_true(va_rl_take(&rl, &a, 0, &retry));
    assert_false(va_rl_take(&rl, &a, 0, &retry));
    assert_int_equal(retry, 1);
    assert_true(va_rl_take(&rl, &a, 100, &retry));
    va_rl_deinit(&rl);
}

static void test_addresses_independent(void **state)
{
    struct va_rl rl;
    struct va_addr a = addr_of("192.0.2.1");
    struct va_addr b = addr_of("192.0.2.2");
    /* Same leading bytes, other family: another client. */
    struct va_addr c = addr_of("c000:201::");
    struct va_addr mapped = addr_of("::ffff:192.0.2.1");
    uint32_t retry;
    (void)state;

    assert_int_equal(va_rl_init(&rl, 60, 1, 64), 0);
    assert_true(va_rl_take(&rl, &a, 0, &retry));
    assert_false(va_rl_take(&rl, &a, 0, &retry));
    assert_true(va_rl_take(&rl, &b, 0, &retry));
    assert_true(va_rl_take(&rl, &c, 0, &retry));
    /* The mapped form is the same client as its IPv4 address. */
    assert_false(va_rl_take(&rl, &mapped, 0, &retry));
    assert_int_equal(used_slots(&rl), 3);
    va_rl_deinit(&rl);
}

static void test_full_table_evicts(void **state)
{
    struct va_rl rl;
    struct va_addr hot = addr_of("203.0.113.66");
    uint32_t retry;
    (void)state;

    /* 8 slots: the probe window is the whole table, so every newcomer competes with
     * the hot client. */
    assert_int_equal(va_rl_init(&rl, 1, 1, 8), 0);
    struct va_rl_slot *slots = rl.slots;
    assert_true(va_rl_take(&rl, &hot, 0, &retry));
    for (uint32_t i = 0; i < 5000; i++) {
        uint64_t now = 1 + (uint64_t)i;
        struct va_addr a = addr_n(i);
        /* A newcomer always gets a bucket, even with the table full. */
        assert_true(va_rl_take(&rl, &a, now, &retry));
        /* The hot client is seen every round, so it is never the least recent and
         * keeps its empty bucket: churn cannot reset it. */
        assert_false(va_rl_take(&rl, &hot, now, &retry));
    }
    /* No growth: the same table, every slot in use. */
    assert_ptr_equal(rl.slots, slots);
    assert_int_equal(rl.nslots, 8);
    assert_int_equal(used_slots(&rl), 8);
    /* The most recent newcomers are still remembered. */
    struct va_addr last = addr_n(4999);
    assert_false(va_rl_take(&rl, &last, 5000, &retry));
    /* Old ones were evicted: they come back with a full bucket. */
    struct va_addr first = addr_n(0);
    assert_true(va_rl_take(&rl, &first, 5000, &retry));
    va_rl_deinit(&rl);
}

static void test_many_clients_small_table(void **state)
{
    struct va_rl rl;
    uint32_t retry;
    (void)state;

    /* Far more clients than slots, with probe windows wrapping the table end. */
    assert_int_equal(va_rl_init(&rl, 60, 2, 64), 0);
    for (uint32_t round = 0; round < 3; round++) {
        for (uint32_t i = 0; i < 20000; i++) {
            struct va_addr a = addr_n(i);
            va_rl_take(&rl, &a, (uint64_t)round * 100000 + i, &retry);
        }
    }
    assert_int_equal(rl.nslots, 64);
    assert_int_equal(used_slots(&rl), 64);
    /* A client that is seen keeps working normally afterwards. */
    struct va_addr a = addr_of("198.51.100.200");
    assert_true(va_rl_take(&rl, &a, 400000, &retry));
    assert_true(va_rl_take(&rl, &a, 400000, &retry));
    assert_false(va_rl_take(&rl, &a, 400000, &retry));
    assert_int_equal(retry, 1);
    va_rl_deinit(&rl);
}

static void test_single_slot(void **state)
{
    struct va_rl rl;
    struct va_addr a = addr_of("192.0.2.1");
    struct va_addr b = addr_of("192.0.2.2");
    uint32_t retry;
    (void)state;

    assert_int_equal(va_rl_init(&rl, 60, 1, 1), 0);
    assert_true(va_rl_take(&rl, &a, 0, &retry));
    assert_false(va_rl_take(&rl, &a, 0, &retry));
    assert_true(va_rl_take(&rl, &b, 0, &retry)); /* evicts a */
    assert_true(va_rl_take(&rl, &a, 0, &retry)); /* evicts b */
    assert_int_equal(used_slots(&rl), 1);
    va_rl_deinit(&rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_burst_then_limited),
        cmocka_unit_test(test_refill),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_addresses_independent),
        cmocka_unit_test(test_full_table_evicts),
        cmocka_unit_test(test_many_clients_small_table),
        cmocka_unit_test(test_single_slot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
