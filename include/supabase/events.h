/* include/supabase/events.h: call events delivered to the call-webhook Edge Function with
 * nothing lost.
 *
 * Every event is written to the spool directory (write, fsync, rename, fsync of the
 * directory: all through libuv's fs requests, never blocking the loop) before its first
 * POST, and its file is removed only after a 2xx. Retries back off exponentially with
 * jitter between retry_base_ms and retry_cap_ms; 401, 403 and 404 keep being retried with
 * an error log each time (a wrong key or an undeployed function must not throw records
 * away); any other 4xx except 408 and 429 moves the event to dead-letter.jsonl in the spool
 * directory with the reason. Files left by an earlier run are replayed by sb_events_open(),
 * oldest first. The spool is bounded: an event past spool_max_bytes is refused (logged,
 * counted), and from 80% full sb_events_healthy() says so.
 *
 * Spool file names: "<ms since epoch, 13 digits>-<6-digit counter>-<event id>.json", so
 * that names sort in submission order; ".*.tmp" files are writes a crash interrupted
 * (never acknowledged as spooled) and are removed at startup. */
#ifndef VA_SUPABASE_EVENTS_H
#define VA_SUPABASE_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct va_log;
struct sb_events; /* opaque */

struct sb_events_cfg {
    const char *url;              /* the function's whole URL; copied */
    const char *service_role_key; /* Bearer and apikey; copied, never logged */
    const char *spool_dir;        /* created (one level) when missing; copied */
    uint64_t spool_max_bytes;     /* events' JSON bytes on disk; 0 = 64 MiB */
    uint32_t retry_base_ms;       /* first retry delay; 0 = 1000 */
    uint32_t retry_cap_ms;        /* largest delay; 0 = 300000 */
    uint32_t timeout_ms;          /* one POST; 0 = 10000 */
    uint32_t max_in_flight;       /* POSTs at once; 0 = 4 */
};

struct sb_events_stats {
    uint64_t submitted, delivered, attempts, failures, dead_lettered, dropped, spool_errors;
    size_t pending;       /* submitted or replayed, not yet delivered or dead-lettered */
    uint64_t spool_bytes; /* JSON bytes in spool files */
    uint64_t spool_max_bytes;
};

/* Opens the spool (creating the directory), replays what an earlier run left there and
 * starts sending. 0, VA_EINVAL (no URL or key, URL not http(s)), or a libuv code when the
 * directory cannot be created or read: the caller decides whether to run without events. */
int sb_events_open(struct sb_events **out, uv_loop_t *loop, struct va_log *log,
                   const struct sb_events_cfg *cfg);

/* Takes one event (json[0, len) copied; id: [0-9a-f-], at most 40 characters, unique).
 * 0: spooled then sent in the background. VA_EFULL: the spool is full (the event is
 * dropped, logged and counted); VA_EINVAL: bad id; VA_ECLOSED: closing. When the spool
 * write fails the event is still sent from memory (logged, counted as a spool error). */
int sb_events_submit(struct sb_events *ev, const char *id, const char *json, size_t len);

/* Events not yet delivered or dead-lettered (the drain waits for these). */
size_t sb_events_pending(const struct sb_events *ev);

void sb_events_stats(const struct sb_events *ev, struct sb_events_stats *st);

/* false with one line in why[0, cap) when the spool is 80% full, the last 3 attempts
 * failed, or the spool cannot be written: for /ready's "degraded" list. */
bool sb_events_healthy(const struct sb_events *ev, char *why, size_t cap);

/* Stops sending: POSTs in flight are cancelled and everything not delivered stays spooled
 * for the next start. Spool writes already started finish first. on_closed(ud) runs once,
 * last; the memory is gone by then. */
void sb_events_close(struct sb_events *ev, void (*on_closed)(void *ud), void *ud);

#endif
