/* src/realtime/breaker.c: circuit breaker over Realtime connect results (pure).
 *
 * Why: with OpenAI down or the key revoked, every call would wait out a connect timeout
 * before its apology; once `threshold` connects in a row have failed, calls are refused
 * at once and a single probe connection per cooldown finds out when service is back. */
#include "realtime/client.h"

#include <stdio.h>
#include <string.h>

static void rt_breaker_note(struct rt_breaker *b, const char *why)
{
    snprintf(b->last_error, sizeof(b->last_error), "%s", why ? why : "");
}

static void rt_breaker_count(struct rt_breaker *b)
{
    if (b->failures < UINT32_MAX)
        b->failures++;
}

void rt_breaker_init(struct rt_breaker *b, uint32_t threshold, uint32_t cooldown_ms)
{
    memset(b, 0, sizeof(*b));
    b->state = RT_BREAKER_CLOSED;
    b->threshold = threshold ? threshold : 1;
    b->cooldown_ms = cooldown_ms;
}

bool rt_breaker_allows(const struct rt_breaker *b)
{
    return b->state == RT_BREAKER_CLOSED;
}

void rt_breaker_success(struct rt_breaker *b)
{
    b->state = RT_BREAKER_CLOSED;
    b->failures = 0;
    b->next_probe_ms = 0;
}

bool rt_breaker_failure(struct rt_breaker *b, uint64_t now_ms, const char *why)
{
    rt_breaker_note(b, why);
    rt_breaker_count(b);
    if (b->state == RT_BREAKER_OPEN || b->failures < b->threshold)
        return false;
    b->state = RT_BREAKER_OPEN;
    b->next_probe_ms = now_ms + b->cooldown_ms;
    return true;
}

bool rt_breaker_probe_due(struct rt_breaker *b, uint64_t now_ms)
{
    if (b->state != RT_BREAKER_OPEN || b->probing || now_ms < b->next_probe_ms)
        return false;
    b->probing = true;
    return true;
}

void rt_breaker_probe_done(struct rt_breaker *b, bool ok, uint64_t now_ms, const char *why)
{
    b->probing = false;
    if (ok) {
        rt_breaker_success(b);
        return;
    }
    if (b->state == RT_BREAKER_CLOSED) {
        rt_breaker_failure(b, now_ms, why);
        return;
    }
    rt_breaker_note(b, why);
    rt_breaker_count(b);
    b->next_probe_ms = now_ms + b->cooldown_ms;
}
