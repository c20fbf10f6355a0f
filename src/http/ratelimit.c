/* src/http/ratelimit.c: per-address token buckets in a fixed open-addressed table. */
#include "http/ratelimit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "core/err.h"

/* Slots probed per lookup: small enough that a lookup stays a few cache lines,
 * large enough that collisions rarely evict a live bucket. */
#define RL_PROBE 8
/* 16 Mi slots (about 1.3 GB) is far past any sane setting: refuse rather than abort. */
#define RL_MAX_SLOTS ((size_t)1 << 24)
/* Refill is floating point: 1000 ms at 60/min may come out a hair under one token. */
#define RL_EPSILON 1e-9

int va_rl_init(struct va_rl *rl, uint32_t per_min, uint32_t burst, size_t nslots)
{
    memset(rl, 0, sizeof(*rl));
    if (per_min == 0 || burst == 0 || nslots == 0 || nslots > RL_MAX_SLOTS)
        return VA_EINVAL;
    size_t n = 1;
    while (n < nslots)
        n <<= 1;
    rl->slots = va_xcalloc(n, sizeof(*rl->slots));
    rl->nslots = n;
    rl->per_ms = (double)per_min / 60000.0;
    rl->burst = (double)burst;
    return 0;
}

void va_rl_deinit(struct va_rl *rl)
{
    free(rl->slots);
    memset(rl, 0, sizeof(*rl));
}

/* FNV-1a over the family and the significant address bytes. */
static uint64_t rl_hash(const struct va_addr *addr)
{
    uint64_t h = 14695981039346656037ull;
    size_t n = addr->family == AF_INET ? 4 : 16;

    h = (h ^ (uint8_t)addr->family) * 1099511628211ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ addr->bytes[i]) * 1099511628211ull;
    return h;
}

static bool rl_same(const struct va_addr *a, const struct va_addr *b)
{
    return a->family == b->family && memcmp(a->bytes, b->bytes, sizeof(a->bytes)) == 0;
}

/* The slot holding addr, or the one to give it: a free slot, else the least
 * recently seen of the window. */
static struct va_rl_slot *rl_find(struct va_rl *rl, const struct va_addr *addr, bool *found)
{
    size_t mask = rl->nslots - 1;
    size_t window = rl->nslots < RL_PROBE ? rl->nslots : RL_PROBE;
    size_t base = (size_t)rl_hash(addr);
    struct va_rl_slot *victim = &rl->slots[base & mask];

    for (size_t i = 0; i < window; i++) {
        struct va_rl_slot *s = &rl->slots[(base + i) & mask];
        if (s->key.family != 0 && rl_same(&s->key, addr)) {
            *found = true;
            return s;
        }
        if (victim->key.family != 0 && (s->key.family == 0 || s->last_ms < victim->last_ms))
            victim = s;
    }
    *found = false;
    return victim;
}

bool va_rl_take(struct va_rl *rl, const struct va_addr *addr, uint64_t now_ms,
                uint32_t *retry_after_s)
{
    bool found;
    struct va_rl_slot *s = rl_find(rl, addr, &found);

    if (!found) {
        s->key = *addr;
        s->tokens = rl->burst;
        s->last_ms = now_ms;
    } else if (now_ms > s->last_ms) {
        /* A clock that steps back just refills nothing. */
        s->tokens += (double)(now_ms - s->last_ms) * rl->per_ms;
        if (s->tokens > rl->burst)
            s->tokens = rl->burst;
        s->last_ms = now_ms;
    }

    if (s->tokens >= 1.0 - RL_EPSILON) {
        s->tokens -= 1.0;
        if (s->tokens < 0.0)
            s->tokens = 0.0;
        return true;
    }
    if (retry_after_s) {
        double secs = ceil((1.0 - s->tokens) / rl->per_ms / 1000.0 - RL_EPSILON);
        if (secs < 1.0)
            secs = 1.0;
        if (secs > (double)UINT32_MAX)
            secs = (double)UINT32_MAX;
        *retry_after_s = (uint32_t)secs;
    }
    return false;
}
