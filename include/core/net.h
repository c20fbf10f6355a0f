/* include/core/net.h: IP addresses and address ranges (pure, no I/O). */
#ifndef VA_CORE_NET_H
#define VA_CORE_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An IP address in binary and text form. IPv4-mapped IPv6 (::ffff:a.b.c.d) is
 * normalised to AF_INET so that ranges and rate-limit keys see one address. */
struct va_addr {
    int family;        /* AF_INET or AF_INET6 */
    uint8_t bytes[16]; /* 4 or 16 significant bytes, the rest 0 */
    char text[46];     /* INET6_ADDRSTRLEN */
};

/* One address range, e.g. 10.0.0.0/8 or ::1/128. */
struct va_cidr {
    int family;
    uint8_t addr[16]; /* network address, host bits cleared */
    uint8_t prefix;   /* 0..32 or 0..128 */
};

/* Parses an address from s[0, len) (no NUL needed; surrounding spaces trimmed).
 * 0 or VA_EINVAL. */
int va_addr_parse(struct va_addr *out, const char *s, size_t len);
/* From a sockaddr (sockaddr_in or sockaddr_in6). 0 or VA_EINVAL. */
int va_addr_from_sockaddr(struct va_addr *out, const void *sa);

/* Parses "a.b.c.d/n", "x::y/n" or a bare address (full-length prefix). Host bits are
 * cleared (10.1.2.3/8 is 10.0.0.0/8); ::ffff:a.b.c.d/n with n >= 96 becomes
 * a.b.c.d/(n - 96) because addresses are matched after the same folding. 0 or VA_EINVAL. */
int va_cidr_parse(struct va_cidr *out, const char *s, size_t len);
/* Parses a comma- or space-separated list into out[0, max); empty items are skipped.
 * 0, VA_EINVAL or VA_ETOOBIG; *n is 0 on failure. */
int va_cidr_parse_list(struct va_cidr *out, size_t max, size_t *n, const char *s, size_t len);
/* True when addr lies in one of the ranges. */
bool va_cidr_match(const struct va_cidr *list, size_t n, const struct va_addr *addr);

/* The client a request is from: the socket peer, unless the peer is in trust[]; then
 * CF-Connecting-IP when present and valid, else the right-most X-Forwarded-For entry
 * that is not itself trusted. Empty XFF entries are skipped; an unparsable one (a port,
 * "unknown") ends the walk and the peer is kept, since everything left of it may be
 * client-written. When every entry is trusted the peer is kept too. Header values may
 * be NULL (not NUL-terminated: only [0, len) is read). Always fills out. */
void va_client_addr(struct va_addr *out, const struct va_addr *peer, const struct va_cidr *trust,
                    size_t ntrust, const char *cf, size_t cf_len, const char *xff, size_t xff_len);

#endif
