/* include/supabase/rpc.h: PostgREST RPC client, libcurl multi driven by the libuv loop.
 *
 * POST {base_url}/rest/v1/rpc/<function> with a JSON body; the service-role key goes out as
 * `apikey: <key>` and `Authorization: Bearer <key>` and is never logged (it is also
 * registered with va_log_add_secret()). One curl multi per client: connections are kept
 * alive and reused; DNS runs on curl's resolver thread; nothing blocks the loop.
 *
 * Process-wide curl state: the daemon calls curl_global_init(CURL_GLOBAL_DEFAULT) once in
 * main() before any sb_rpc_open(), and curl_global_cleanup() last, after on_closed has run
 * and uv_run() has returned (no writable globals here, so no refcount either).
 *
 * Retries happen only when the caller says the call is idempotent (get_member_balance;
 * redeem_voucher carrying its idempotency key): connect failures, timeouts, and HTTP
 * 502/503/504 are retried up to twice, after retry_backoff_ms and then twice that (a uv
 * timer). Nothing else is retried: 4xx, other 5xx and an oversized body finish at once.
 * The worst-case wait is therefore 3 * timeout_ms + 3 * retry_backoff_ms.
 *
 * Circuit breaker: breaker_threshold consecutive transport failures (connect errors,
 * timeouts, resets, 502/503/504) open it; for breaker_cooldown_ms calls fail fast, then
 * one call is let through as a probe: a response closes the breaker, a failure reopens it
 * for another cooldown. sb_rpc_healthy() reports it for /ready. */
#ifndef VA_SUPABASE_RPC_H
#define VA_SUPABASE_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct va_log;
struct sb_rpc; /* opaque */

struct sb_rpc_cfg {
    const char *base_url;         /* SUPABASE_URL, e.g. "https://x.supabase.co"; copied */
    const char *service_role_key; /* copied; never logged */
    uint32_t timeout_ms;          /* whole attempt; 0 = 5000 */
    uint32_t connect_timeout_ms;  /* 0 = 2000 */
    size_t max_response_bytes;    /* body bound, past it VA_ETOOBIG; 0 = 64 KiB */
    uint32_t max_in_flight;       /* calls accepted and not yet done; 0 = 64 */
    uint32_t breaker_threshold;   /* consecutive transport failures; 0 = 5 */
    uint32_t breaker_cooldown_ms; /* 0 = 10000 */
    uint32_t retry_backoff_ms;    /* first retry delay, doubled for the second; 0 = 100 */
};

/* Result of one call, exactly once. err is 0 whenever an HTTP response arrived, whatever its
 * status (PostgREST's error body is in body then); otherwise negative and http_status is 0:
 *   UV_ETIMEDOUT      connect or total timeout
 *   UV_ECONNREFUSED   could not connect
 *   UV_EAI_NONAME     host not resolved
 *   UV_ECONNRESET     connection dropped or empty reply
 *   VA_ETOOBIG        body past max_response_bytes (http_status is set)
 *   VA_EPROTO         any other curl failure (the error buffer is logged)
 *   UV_ECANCELED      the client closed with the call in flight
 * body[0, body_len) is NUL-terminated and valid only during the callback (NULL when err). */
typedef void (*sb_rpc_done_fn)(void *ud, int err, long http_status, const char *body,
                               size_t body_len);

/* Creates the client (no connection yet). 0, VA_EINVAL (no URL, no key, URL not http(s)) or
 * a libuv code; on failure *out is untouched and nothing runs. log must outlive the client. */
int sb_rpc_open(struct sb_rpc **out, uv_loop_t *loop, struct va_log *log,
                const struct sb_rpc_cfg *cfg);

/* Starts POST {base}/rest/v1/rpc/<function> with json_args[0, len) (copied; NULL or len 0
 * sends "{}"). Asynchronous: on 0, done(ud, ...) follows exactly once, never from inside
 * this call. A negative return means done() will not be called:
 *   VA_EINVAL   function not [A-Za-z0-9_]{1,63}
 *   VA_EFULL    max_in_flight reached, or the breaker is open (sb_rpc_healthy() tells)
 *   VA_ECLOSED  sb_rpc_close() was called
 * There is no per-call cancel: a caller that stops caring ignores the result (timeouts
 * bound the wait); sb_rpc_close() cancels everything. Safe from inside done(). */
int sb_rpc_call(struct sb_rpc *r, const char *function, const char *json_args, size_t len,
                bool idempotent, sb_rpc_done_fn done, void *ud);

/* POST json[0, len) to base_url itself (a whole endpoint URL, e.g. an Edge Function), with
 * the same headers, timeouts and breaker as sb_rpc_call() and never retried here (the
 * caller owns its retry policy). label (a short name for logs, at most 63 bytes kept)
 * stands where the function name would. Same return codes and done() contract. */
int sb_rpc_post(struct sb_rpc *r, const char *label, const char *json, size_t len,
                sb_rpc_done_fn done, void *ud);

/* false while the breaker is open (probe included); *why (may be NULL) then points into the
 * client, valid until its next callback or close: the last failure with curl's error text,
 * never a secret. For /ready's "degraded" list. */
bool sb_rpc_healthy(const struct sb_rpc *r, const char **why);

/* Calls accepted and not yet done. */
size_t sb_rpc_in_flight(const struct sb_rpc *r);

/* Refuses new calls; every call in flight gets done(UV_ECANCELED) before this returns
 * (or, when called from inside a done(), right after that callback returns). Then the easy
 * handles, curl_multi_cleanup(), the timer, and every poll handle close; on_closed(ud) runs
 * exactly once, last, from the loop. Idempotent. */
void sb_rpc_close(struct sb_rpc *r, void (*on_closed)(void *ud), void *ud);

#endif
