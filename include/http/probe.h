/* include/http/probe.h: one blocking HTTP GET, for `voice-agent --healthcheck`.
 *
 * Not for the daemon's loop: it blocks the calling thread for up to timeout_ms.
 * A container's HEALTHCHECK runs it as a separate process every few seconds. */
#ifndef VA_HTTP_PROBE_H
#define VA_HTTP_PROBE_H

#include <stddef.h>
#include <stdint.h>

/* The address to probe for a listener bound to bind_host: the wildcard addresses
 * (0.0.0.0, ::) become the loopback of their family, anything else is itself. */
const char *va_http_probe_host(const char *bind_host);

/* GET path from host:port (host a numeric IPv4 or IPv6 address) with the whole
 * exchange (connect, request, status line) bounded by timeout_ms. Returns the
 * response's status code (100..599), or a negative code: -ETIMEDOUT, -ECONNREFUSED
 * and other -errno, VA_EINVAL for a host that is not an address, VA_EPROTO for a
 * reply that is not HTTP/1.x. Reads the status line only; the body is ignored. */
int va_http_probe(const char *host, uint16_t port, const char *path, uint32_t timeout_ms);

#endif
