/* include/http/ratelimit.h: per-client token buckets (pure; time is passed in). */
#ifndef VA_HTTP_RATELIMIT_H
#define VA_HTTP_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/net.h"

/* A fixed-size table of buckets keyed by address: memory never grows with the
 * number of clients. When the table is full the least recently seen of the
 * probed slots is reused; a full bucket carries no information, so forgetting it
 * is harmless, and an attacker rotating addresses only evicts other attackers
 * first (stale slots are reused before live ones). */
struct va_rl_slot {
    struct va_addr key; /* family 0 = free */
    double tokens;
    uint64_t last_ms;
};

struct va_rl {
    struct va_rl_slot *slots;
    size_t nslots; /* power of two */
    double per_ms; /* refill, tokens per millisecond */
    double burst;  /* bucket size */
};

/* nslots is rounded up to a power of two; the table is allocated once here and never
 * grows. 0 or VA_EINVAL (zero rate, burst or nslots, or nslots past 2^24). */
int va_rl_init(struct va_rl *rl, uint32_t per_min, uint32_t burst, size_t nslots);
void va_rl_deinit(struct va_rl *rl);

/* Takes one token for addr at now_ms (a monotonic clock). true = allowed; false =
 * limited and *retry_after_s (>= 1, the seconds until one token is due, rounded up)
 * says when to come back; retry_after_s may be NULL. A refused request takes nothing.
 * Each IPv6 address has its own bucket (no /64 grouping). */
bool va_rl_take(struct va_rl *rl, const struct va_addr *addr, uint64_t now_ms,
                uint32_t *retry_after_s);

#endif
