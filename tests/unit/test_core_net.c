/* tests/unit/test_core_net.c: addresses, ranges and the client behind trusted proxies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "core/err.h"
#include "core/net.h"

static struct va_addr addr_of(const char *s)
{
    struct va_addr a;
    assert_int_equal(va_addr_parse(&a, s, strlen(s)), 0);
    return a;
}

static struct va_cidr cidr_of(const char *s)
{
    struct va_cidr c;
    assert_int_equal(va_cidr_parse(&c, s, strlen(s)), 0);
    return c;
}

static void test_addr_parse_valid(void **state)
{
    static const struct {
        const char *in;
        int family;
        const char *text;
    } cases[] = {
        {"1.2.3.4", AF_INET, "1.2.3.4"},
        {"0.0.0.0", AF_INET, "0.0.0.0"},
        {"255.255.255.255", AF_INET, "255.255.255.255"},
        {"  10.0.0.1\t", AF_INET, "10.0.0.1"},
        {"::1", AF_INET6, "::1"},
        {"::", AF_INET6, "::"},
        {"2001:DB8::1", AF_INET6, "2001:db8::1"},
        {"2001:0db8:0000:0000:0000:0000:0000:0001", AF_INET6, "2001:db8::1"},
        /* IPv4-mapped IPv6 folds into IPv4. */
        {"::ffff:10.1.2.3", AF_INET, "10.1.2.3"},
        {"::FFFF:0a01:0203", AF_INET, "10.1.2.3"},
        {"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", AF_INET6,
         "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
        /* IPv4-compatible (deprecated) and NAT64 prefixes are not mapped. */
        {"::1.2.3.4", AF_INET6, "::1.2.3.4"},
        {"64:ff9b::1.2.3.4", AF_INET6, "64:ff9b::102:304"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct va_addr a = addr_of(cases[i].in);
        assert_int_equal(a.family, cases[i].family);
        assert_string_equal(a.text, cases[i].text);
    }
    struct va_addr a = addr_of("::ffff:10.1.2.3");
    static const uint8_t want[16] = {10, 1, 2, 3};
    assert_memory_equal(a.bytes, want, 16);
}

static void test_addr_parse_invalid(void **state)
{
    static const char *const cases[] = {
        "",
        "   ",
        "1.2.3",
        "1.2.3.4.5",
        "256.0.0.1",
        "1.2.3.-1",
        "01.2.3.4",
        "0x1.2.3.4",
        "1.2.3.4 5",
        "1.2.3.4:80",
        "[::1]",
        "[::1]:443",
        "::g",
        "1:2:3:4:5:6:7:8:9",
        "fe80::1%eth0",
        "localhost",
        "unknown",
        "1.2.3.4/32",
        "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.2555",
    };
    struct va_addr a;
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(va_addr_parse(&a, cases[i], strlen(cases[i])), VA_EINVAL);
        assert_int_equal(a.family, 0);
    }
    assert_int_equal(va_addr_parse(&a, NULL, 0), VA_EINVAL);
    /* An embedded NUL must not cut the address short. */
    assert_int_equal(va_addr_parse(&a, "1.2.3.4\0junk", 12), VA_EINVAL);
    /* Longer than any address text, even if it were to start with one. */
    char longbuf[200];
    memset(longbuf, ' ', sizeof(longbuf));
    memcpy(longbuf, "1.2.3.4", 7);
    memset(longbuf + 7, '0', 100);
    assert_int_equal(va_addr_parse(&a, longbuf, sizeof(longbuf)), VA_EINVAL);
}

static void test_addr_parse_not_terminated(void **state)
{
    /* Only [0, len) is read: the bytes after are not part of the address. */
    static const char buf[] = "10.0.0.12345";
    struct va_addr a;
    (void)state;
    assert_int_equal(va_addr_parse(&a, buf, 8), 0);
    assert_string_equal(a.text, "10.0.0.1");
    assert_int_equal(va_addr_parse(&a, buf, 3), VA_EINVAL);
}

static void test_addr_from_sockaddr(void **state)
{
    struct va_addr a;
    (void)state;

    struct sockaddr_in in = {0};
    in.sin_family = AF_INET;
    in.sin_port = htons(80);
    inet_pton(AF_INET, "192.0.2.7", &in.sin_addr);
    assert_int_equal(va_addr_from_sockaddr(&a, &in), 0);
    assert_int_equal(a.family, AF_INET);
    assert_string_equal(a.text, "192.0.2.7");

    struct sockaddr_in6 in6 = {0};
    in6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8::7", &in6.sin6_addr);
    assert_int_equal(va_addr_from_sockaddr(&a, &in6), 0);
    assert_int_equal(a.family, AF_INET6);
    assert_string_equal(a.text, "2001:db8::7");

    /* A dual-stack listener reports IPv4 clients as mapped IPv6. */
    inet_pton(AF_INET6, "::ffff:192.0.2.8", &in6.sin6_addr);
    assert_int_equal(va_addr_from_sockaddr(&a, &in6), 0);
    assert_int_equal(a.family, AF_INET);
    assert_string_equal(a.text, "192.0.2.8");
    assert_true(a.bytes[4] == 0 && a.bytes[15] == 0);

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, &in, sizeof(in));
    assert_int_equal(va_addr_from_sockaddr(&a, &ss), 0);
    assert_string_equal(a.text, "192.0.2.7");

    struct sockaddr_un un = {0};
    un.sun_family = AF_UNIX;
    assert_int_equal(va_addr_from_sockaddr(&a, &un), VA_EINVAL);
    assert_int_equal(a.family, 0);
    assert_int_equal(va_addr_from_sockaddr(&a, NULL), VA_EINVAL);
}

static void test_cidr_parse(void **state)
{
    static const struct {
        const char *in;
        int family;
        const char *net; /* network address as text */
        unsigned prefix;
    } cases[] = {
        {"10.0.0.0/8", AF_INET, "10.0.0.0", 8},
        {"10.1.2.3/8", AF_INET, "10.0.0.0", 8}, /* host bits cleared */
        {"192.168.1.200/25", AF_INET, "192.168.1.128", 25},
        {"1.2.3.4", AF_INET, "1.2.3.4", 32},
        {"1.2.3.4/32", AF_INET, "1.2.3.4", 32},
        {"1.2.3.4/0", AF_INET, "0.0.0.0", 0},
        {"255.255.255.255/31", AF_INET, "255.255.255.254", 31},
        {"  172.16.0.0/12 ", AF_INET, "172.16.0.0", 12},
        {"10.0.0.0/08", AF_INET, "10.0.0.0", 8},
        {"::1", AF_INET6, "::1", 128},
        {"::1/128", AF_INET6, "::1", 128},
        {"::/0", AF_INET6, "::", 0},
        {"2001:db8:ffff::1/32", AF_INET6, "2001:db8::", 32},
        {"2001:db8::ff/121", AF_INET6, "2001:db8::80", 121},
        /* Mapped ranges fold the way mapped addresses do. */
        {"::ffff:10.9.8.7/104", AF_INET, "10.0.0.0", 8},
        {"::ffff:10.9.8.7", AF_INET, "10.9.8.7", 32},
        {"::ffff:0.0.0.0/96", AF_INET, "0.0.0.0", 0},
        /* Wider than /96 it covers plain IPv6 too and stays IPv6. */
        {"::ffff:10.9.8.7/80", AF_INET6, "::", 80},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct va_cidr c = cidr_of(cases[i].in);
        char text[INET6_ADDRSTRLEN];
        assert_int_equal(c.family, cases[i].family);
        assert_non_null(inet_ntop(c.family, c.addr, text, sizeof(text)));
        assert_string_equal(text, cases[i].net);
        assert_int_equal(c.prefix, cases[i].prefix);
    }
}

static void test_cidr_parse_invalid(void **state)
{
    static const char *const cases[] = {
        "",
        "/8",
        "10.0.0.0/",
        "10.0.0.0/33",
        "10.0.0.0/-1",
        "10.0.0.0/+8",
        "10.0.0.0/8x",
        "10.0.0.0/0008",
        "10.0.0.0/256",
        "::/129",
        "::1/1000",
        "10.0.0.0 /8",
        "10.0.0.0/ 8",
        "10.0.0/8",
        "10.0.0.0/8/8",
        "host/8",
        "[::1]/128",
    };
    struct va_cidr c;
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(va_cidr_parse(&c, cases[i], strlen(cases[i])), VA_EINVAL);
    assert_int_equal(va_cidr_parse(&c, NULL, 0), VA_EINVAL);
}

static void test_cidr_match(void **state)
{
    static const struct {
        const char *cidr;
        const char *addr;
        bool match;
    } cases[] = {
        {"10.0.0.0/8", "10.0.0.0", true},
        {"10.0.0.0/8", "10.255.255.255", true},
        {"10.0.0.0/8", "11.0.0.0", false},
        {"10.0.0.0/8", "9.255.255.255", false},
        {"192.168.1.128/25", "192.168.1.128", true},
        {"192.168.1.128/25", "192.168.1.255", true},
        {"192.168.1.128/25", "192.168.1.127", false},
        {"1.2.3.4/32", "1.2.3.4", true},
        {"1.2.3.4/32", "1.2.3.5", false},
        {"0.0.0.0/0", "1.2.3.4", true},
        {"0.0.0.0/0", "255.255.255.255", true},
        {"0.0.0.0/0", "::1", false}, /* families never mix */
        {"::/0", "2001:db8::1", true},
        {"::/0", "1.2.3.4", false},
        {"::/0", "::ffff:1.2.3.4", false}, /* mapped is IPv4 */
        {"::1/128", "::1", true},
        {"::1/128", "::2", false},
        {"2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true},
        {"2001:db8::/32", "2001:db9::", false},
        {"2001:db8::80/121", "2001:db8::ff", true},
        {"2001:db8::80/121", "2001:db8::7f", false},
        {"127.0.0.1", "::ffff:127.0.0.1", true},
        {"::ffff:127.0.0.0/104", "127.1.2.3", true},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct va_cidr c = cidr_of(cases[i].cidr);
        struct va_addr a = addr_of(cases[i].addr);
        assert_int_equal(va_cidr_match(&c, 1, &a), cases[i].match);
    }
    struct va_addr a = addr_of("1.2.3.4");
    assert_false(va_cidr_match(NULL, 0, &a));
}

static void test_cidr_parse_list(void **state)
{
    struct va_cidr list[4];
    size_t n = 99;
    const char *s = "10.0.0.0/8, 192.168.0.0/16 ::1\t,, 127.0.0.1";
    (void)state;

    assert_int_equal(va_cidr_parse_list(list, 4, &n, s, strlen(s)), 0);
    assert_int_equal(n, 4);
    assert_int_equal(list[0].prefix, 8);
    assert_int_equal(list[1].prefix, 16);
    assert_int_equal(list[2].family, AF_INET6);
    assert_int_equal(list[3].prefix, 32);
    struct va_addr a = addr_of("192.168.44.1");
    assert_true(va_cidr_match(list, n, &a));
    a = addr_of("172.16.0.1");
    assert_false(va_cidr_match(list, n, &a));

    assert_int_equal(va_cidr_parse_list(list, 4, &n, "", 0), 0);
    assert_int_equal(n, 0);
    assert_int_equal(va_cidr_parse_list(list, 4, &n, " , ,\n", 5), 0);
    assert_int_equal(n, 0);
    assert_int_equal(va_cidr_parse_list(list, 4, &n, NULL, 0), 0);
    assert_int_equal(n, 0);

    const char *five = "1.1.1.1 2.2.2.2 3.3.3.3 4.4.4.4 5.5.5.5";
    n = 99;
    assert_int_equal(va_cidr_parse_list(list, 4, &n, five, strlen(five)), VA_ETOOBIG);
    assert_int_equal(n, 0);
    struct va_cidr list5[5];
    assert_int_equal(va_cidr_parse_list(list5, 5, &n, five, strlen(five)), 0);
    assert_int_equal(n, 5);

    const char *bad = "10.0.0.0/8, 10.0.0.0/33";
    n = 99;
    assert_int_equal(va_cidr_parse_list(list, 4, &n, bad, strlen(bad)), VA_EINVAL);
    assert_int_equal(n, 0);
    /* A slash split by a space is two items, the second one invalid. */
    assert_int_equal(va_cidr_parse_list(list, 4, &n, "10.0.0.0 /8", 11), VA_EINVAL);
}

/* va_client_addr() with NUL-terminated header values (or NULL). */
static const char *client(const char *peer, const char *trust, const char *cf, const char *xff)
{
    static struct va_addr out;
    struct va_cidr list[8];
    size_t n = 0;
    struct va_addr p = addr_of(peer);

    assert_int_equal(va_cidr_parse_list(list, 8, &n, trust, strlen(trust)), 0);
    memset(&out, 0x55, sizeof(out));
    va_client_addr(&out, &p, list, n, cf, cf ? strlen(cf) : 0, xff, xff ? strlen(xff) : 0);
    return out.text;
}

static void test_client_addr(void **state)
{
    (void)state;
    /* No trusted proxy: the peer, whatever the headers say. */
    assert_string_equal(client("203.0.113.9", "", NULL, NULL), "203.0.113.9");
    assert_string_equal(client("203.0.113.9", "", "1.1.1.1", "2.2.2.2"), "203.0.113.9");
    /* A spoofed header from a peer outside the trusted ranges is ignored. */
    assert_string_equal(client("203.0.113.9", "127.0.0.1/32, 10.0.0.0/8", "1.1.1.1", "2.2.2.2"),
                        "203.0.113.9");
    assert_string_equal(client("203.0.113.9", "127.0.0.1", NULL, "127.0.0.1"), "203.0.113.9");

    /* Trusted peer: CF-Connecting-IP first. */
    assert_string_equal(client("127.0.0.1", "127.0.0.1", "198.51.100.4", "2.2.2.2"),
                        "198.51.100.4");
    assert_string_equal(client("127.0.0.1", "127.0.0.1", " 2001:db8::4 ", NULL), "2001:db8::4");
    /* Invalid or empty CF falls back to X-Forwarded-For, then to the peer. */
    assert_string_equal(client("127.0.0.1", "127.0.0.1", "nonsense", "2.2.2.2"), "2.2.2.2");
    assert_string_equal(client("127.0.0.1", "127.0.0.1", "", "2.2.2.2"), "2.2.2.2");
    assert_string_equal(client("127.0.0.1", "127.0.0.1", "nonsense", NULL), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "127.0.0.1", NULL, ""), "127.0.0.1");

    /* X-Forwarded-For: the right-most entry our proxies did not vouch for. */
    assert_string_equal(client("127.0.0.1", "127.0.0.1", NULL, "6.6.6.6, 2.2.2.2"), "2.2.2.2");
    assert_string_equal(client("10.0.0.2", "10.0.0.0/8", NULL, "6.6.6.6, 3.3.3.3, 10.0.0.5"),
                        "3.3.3.3");
    assert_string_equal(client("10.0.0.2", "10.0.0.0/8", NULL, "6.6.6.6,3.3.3.3,10.0.0.5,10.1.1.1"),
                        "3.3.3.3");
    /* Every entry trusted: nobody outside is named, keep the peer. */
    assert_string_equal(client("10.0.0.2", "10.0.0.0/8", NULL, "10.0.0.9, 10.0.0.5"), "10.0.0.2");
    /* Empty entries carry nothing and are skipped. */
    assert_string_equal(client("127.0.0.1", "127.0.0.1", NULL, "6.6.6.6,, 5.5.5.5 , "), "5.5.5.5");
    /* An unreadable entry ends the walk: what lies left of it is client-written. */
    assert_string_equal(client("127.0.0.1", "127.0.0.1", NULL, "6.6.6.6, unknown"), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "127.0.0.1", NULL, "6.6.6.6, 5.5.5.5:1234"),
                        "127.0.0.1");
    /* Mapped entries fold to IPv4, IPv6 entries work, IPv6 peers can be trusted. */
    assert_string_equal(client("127.0.0.1", "127.0.0.1", NULL, "::ffff:5.5.5.5"), "5.5.5.5");
    assert_string_equal(client("::1", "::1/128", NULL, "2001:db8::5"), "2001:db8::5");
    assert_string_equal(client("::ffff:127.0.0.1", "127.0.0.0/8", NULL, "4.4.4.4"), "4.4.4.4");
}

static void test_client_addr_lengths(void **state)
{
    /* Header values are (ptr, len): bytes past len are never read. */
    static const char xff[] = "6.6.6.6, 5.5.5.5, 127.0.0.1";
    static const char cf[] = "9.9.9.9trailing";
    struct va_addr peer = addr_of("127.0.0.1");
    struct va_cidr trust = cidr_of("127.0.0.1");
    struct va_addr out;
    (void)state;

    va_client_addr(&out, &peer, &trust, 1, NULL, 0, xff, 16); /* "6.6.6.6, 5.5.5.5" */
    assert_string_equal(out.text, "5.5.5.5");
    va_client_addr(&out, &peer, &trust, 1, NULL, 0, xff, 7);
    assert_string_equal(out.text, "6.6.6.6");
    va_client_addr(&out, &peer, &trust, 1, cf, 7, xff, sizeof(xff) - 1);
    assert_string_equal(out.text, "9.9.9.9");
    va_client_addr(&out, &peer, &trust, 1, cf, sizeof(cf) - 1, xff, sizeof(xff) - 1);
    assert_string_equal(out.text, "5.5.5.5");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_parse_valid),
        cmocka_unit_test(test_addr_parse_invalid),
        cmocka_unit_test(test_addr_parse_not_terminated),
        cmocka_unit_test(test_addr_from_sockaddr),
        cmocka_unit_test(test_cidr_parse),
        cmocka_unit_test(test_cidr_parse_invalid),
        cmocka_unit_test(test_cidr_match),
        cmocka_unit_test(test_cidr_parse_list),
        cmocka_unit_test(test_client_addr),
        cmocka_unit_test(test_client_addr_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
