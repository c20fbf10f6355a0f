/* src/core/net.c: IP addresses, address ranges and the client behind trusted proxies. */
#include "core/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "core/err.h"

/* ::ffff:0:0/96, RFC 4291 section 2.5.5.2. */
static const uint8_t net_v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool net_is_space(char c)
{
    return c == ' ' || c == '\t';
}

static void net_trim(const char **s, size_t *len)
{
    while (*len > 0 && net_is_space(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && net_is_space((*s)[*len - 1]))
        (*len)--;
}

static size_t net_addr_bytes(int family)
{
    return family == AF_INET ? 4 : 16;
}

/* Fills out from raw bytes, folding IPv4-mapped IPv6 into AF_INET. */
static void net_addr_set(struct va_addr *out, int family, const uint8_t *bytes)
{
    memset(out, 0, sizeof(*out));
    if (family == AF_INET6 && memcmp(bytes, net_v4mapped, sizeof(net_v4mapped)) == 0) {
        family = AF_INET;
        bytes += sizeof(net_v4mapped);
    }
    out->family = family;
    memcpy(out->bytes, bytes, net_addr_bytes(family));
    /* Cannot fail: the family is valid and text holds INET6_ADDRSTRLEN. */
    inet_ntop(family, out->bytes, out->text, sizeof(out->text));
}

/* Parses s[0, len) without normalising, so that va_cidr_parse() can adjust the
 * prefix of a mapped range. */
static int net_parse_raw(int *family, uint8_t bytes[16], const char *s, size_t len)
{
    /* inet_pton needs a terminator; the longest text form is INET6_ADDRSTRLEN - 1. */
    char tmp[INET6_ADDRSTRLEN];

    net_trim(&s, &len);
    if (len == 0 || len >= sizeof(tmp) || memchr(s, '\0', len))
        return VA_EINVAL;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    memset(bytes, 0, 16);
    if (inet_pton(AF_INET, tmp, bytes) == 1) {
        *family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, tmp, bytes) == 1) {
        *family = AF_INET6;
        return 0;
    }
    return VA_EINVAL;
}

int va_addr_parse(struct va_addr *out, const char *s, size_t len)
{
    uint8_t bytes[16];
    int family = 0;

    memset(out, 0, sizeof(*out));
    if (!s)
        return VA_EINVAL;
    int err = net_parse_raw(&family, bytes, s, len);
    if (err)
        return err;
    net_addr_set(out, family, bytes);
    return 0;
}

int va_addr_from_sockaddr(struct va_addr *out, const void *sa)
{
    sa_family_t family;

    memset(out, 0, sizeof(*out));
    if (!sa)
        return VA_EINVAL;
    /* Copy rather than cast: the caller's storage may be any sockaddr type. */
    memcpy(&family, (const char *)sa + offsetof(struct sockaddr, sa_family), sizeof(family));
    if (family == AF_INET) {
        struct sockaddr_in in;
        memcpy(&in, sa, sizeof(in));
        net_addr_set(out, AF_INET, (const uint8_t *)&in.sin_addr);
        return 0;
    }
    if (family == AF_INET6) {
        struct sockaddr_in6 in6;
        memcpy(&in6, sa, sizeof(in6));
        net_addr_set(out, AF_INET6, in6.sin6_addr.s6_addr);
        return 0;
    }
    return VA_EINVAL;
}

/* Clears every bit of a[0, nbytes) past the first prefix bits. */
static void net_mask(uint8_t *a, unsigned prefix, size_t nbytes)
{
    for (size_t i = 0; i < nbytes; i++) {
        unsigned lo = (unsigned)i * 8;
        if (prefix >= lo + 8)
            continue;
        if (prefix <= lo)
            a[i] = 0;
        else
            a[i] &= (uint8_t)(0xffu << (8 - (prefix - lo)));
    }
}

int va_cidr_parse(struct va_cidr *out, const char *s, size_t len)
{
    uint8_t bytes[16];
    int family = 0;

    memset(out, 0, sizeof(*out));
    if (!s)
        return VA_EINVAL;
    net_trim(&s, &len);
    /* "10.0.0.0 / 8" is refused rather than guessed at. */
    if (memchr(s, ' ', len) || memchr(s, '\t', len))
        return VA_EINVAL;
    const char *slash = memchr(s, '/', len);
    size_t alen = slash ? (size_t)(slash - s) : len;
    int err = net_parse_raw(&family, bytes, s, alen);
    if (err)
        return err;

    unsigned bits = family == AF_INET ? 32 : 128;
    unsigned prefix = bits;
    if (slash) {
        const char *p = slash + 1;
        size_t plen = len - alen - 1;
        if (plen == 0 || plen > 3)
            return VA_EINVAL;
        prefix = 0;
        for (size_t i = 0; i < plen; i++) {
            if (p[i] < '0' || p[i] > '9')
                return VA_EINVAL;
            prefix = prefix * 10 + (unsigned)(p[i] - '0');
        }
        if (prefix > bits)
            return VA_EINVAL;
    }
    /* Addresses are matched after mapped IPv6 is folded into IPv4, so a mapped range
     * must be folded the same way or it would never match. A mapped range wider than
     * /96 also covers plain IPv6 addresses: it stays IPv6, as written. */
    if (family == AF_INET6 && prefix >= 96 &&
        memcmp(bytes, net_v4mapped, sizeof(net_v4mapped)) == 0) {
        memmove(bytes, bytes + 12, 4);
        memset(bytes + 4, 0, 12);
        family = AF_INET;
        prefix -= 96;
    }
    net_mask(bytes, prefix, 16);
    out->family = family;
    memcpy(out->addr, bytes, sizeof(out->addr));
    out->prefix = (uint8_t)prefix;
    return 0;
}

static bool net_is_list_sep(char c)
{
    return c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int va_cidr_parse_list(struct va_cidr *out, size_t max, size_t *n, const char *s, size_t len)
{
    size_t count = 0;
    size_t i = 0;

    *n = 0;
    if (!s)
        return 0;
    while (i < len) {
        while (i < len && net_is_list_sep(s[i]))
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && !net_is_list_sep(s[i]))
            i++;
        if (count == max)
            return VA_ETOOBIG;
        int err = va_cidr_parse(&out[count], s + start, i - start);
        if (err)
            return err;
        count++;
    }
    *n = count;
    return 0;
}

bool va_cidr_match(const struct va_cidr *list, size_t n, const struct va_addr *addr)
{
    for (size_t i = 0; i < n; i++) {
        const struct va_cidr *c = &list[i];
        if (c->family != addr->family)
            continue;
        uint8_t a[16];
        size_t nbytes = net_addr_bytes(addr->family);
        memcpy(a, addr->bytes, nbytes);
        net_mask(a, c->prefix, nbytes);
        if (memcmp(a, c->addr, nbytes) == 0)
            return true;
    }
    return false;
}

void va_client_addr(struct va_addr *out, const struct va_addr *peer, const struct va_cidr *trust,
                    size_t ntrust, const char *cf, size_t cf_len, const char *xff, size_t xff_len)
{
    struct va_addr a;

    *out = *peer;
    /* Anyone can send these headers; only a proxy we run or chose may vouch for them. */
    if (!va_cidr_match(trust, ntrust, peer))
        return;
    if (cf && cf_len > 0 && va_addr_parse(&a, cf, cf_len) == 0) {
        *out = a;
        return;
    }
    if (!xff)
        return;
    /* Each proxy appends the address it saw, so the right end is the most trusted:
     * walk leftwards past our own proxies to the first address they did not vouch
     * for. Entries further left were written by the client and may be forged. */
    size_t end = xff_len;
    for (;;) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        const char *tok = xff + start;
        size_t tlen = end - start;
        net_trim(&tok, &tlen);
        if (tlen > 0) {
            /* An entry we cannot read (a port, "unknown", garbage) breaks the chain:
             * skipping it would hand the choice to the client-written part. */
            if (va_addr_parse(&a, tok, tlen))
                return;
            if (!va_cidr_match(trust, ntrust, &a)) {
                *out = a;
                return;
            }
        }
        if (start == 0)
            return;
        end = start - 1;
    }
}
