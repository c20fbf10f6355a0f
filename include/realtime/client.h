/* include/realtime/client.h: WebSocket client connections to the OpenAI Realtime API,
 * libwebsockets 4.1 on our libuv loop (lws context on a foreign loop).
 *
 * One struct rt_lws per daemon (the lws context), one struct rt_client per call.
 * DNS never blocks the loop: the host is resolved with uv_getaddrinfo and lws gets
 * the address, while the name stays the Host header and the TLS SNI / certificate
 * name. wss uses the system CAs; plain ws is accepted (local tests). */
#ifndef VA_REALTIME_CLIENT_H
#define VA_REALTIME_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct va_log;
struct rt_lws;
struct rt_client;

/* A parsed ws:// or wss:// URL (pure; see rt_url_parse()). */
#define RT_URL_HOST_MAX 253  /* a DNS name; an IPv6 literal fits too */
#define RT_URL_PATH_MAX 2047 /* path and query */
struct rt_url {
    bool tls;                       /* wss */
    bool ipv6;                      /* host is an IPv6 literal (it was written in brackets) */
    uint16_t port;                  /* given, or 80 / 443 */
    char host[RT_URL_HOST_MAX + 1]; /* no brackets, as written (names are not lower-cased) */
    char path[RT_URL_PATH_MAX + 1]; /* "/" when absent; the query stays, "?" included */
};
/* Parses url[0, len): scheme ws or wss (any case), host (a name or an IPv4 address, or an
 * IPv6 address in brackets), optional port 1..65535, optional path and query. Refused
 * with VA_EINVAL: userinfo ("user@"), a fragment, an empty host or port, spaces, control
 * or non-ASCII bytes anywhere (the path goes into the request line verbatim). VA_ETOOBIG
 * past the host or path bound. Pure: no NUL needed, nothing written on failure. */
int rt_url_parse(struct rt_url *out, const char *url, size_t len);

/* Creates the lws context on loop. ca_file NULL = the system CAs; a file replaces them
 * (tests pass their throwaway CA). lws logs errors and warnings only, as JSON lines on
 * stdout (see rt_lws_log_emit in client.c for why not through log). 0 or a negative
 * code (VA_EINVAL when lws refuses, e.g. libwebsockets-evlib-uv missing); no callback. */
int rt_lws_open(struct rt_lws **out, uv_loop_t *loop, struct va_log *log, const char *ca_file);
/* Closes every client still open (rt_client_close(c, 1001, "shutdown"): their on_closed
 * follows), then, once the last one is gone, destroys the context from a uv callback;
 * on_closed(ud) follows that (never from inside this call). lws's own handles finish
 * closing while the loop runs on: let uv_run return, then call rt_lws_free(). Idempotent
 * (a second call changes nothing). */
void rt_lws_close(struct rt_lws *l, void (*on_closed)(void *ud), void *ud);
/* After on_closed and after uv_run has returned: the second lws_context_destroy (on a
 * foreign loop the first leaves the context allocated), then frees l. NULL is a no-op. */
void rt_lws_free(struct rt_lws *l);

/* Strings are copied by rt_client_open(). */
struct rt_client_cfg {
    const char *url; /* ws:// or wss://host[:port]/path?query, e.g. ...?model=gpt-realtime */
    const char *auth_header;     /* "Authorization" (OpenAI) or "api-key" (Azure); NULL = none */
    const char *auth_value;      /* "Bearer sk-..." or the Azure key; never logged (registered
                                    with va_log_add_secret) */
    uint32_t connect_timeout_ms; /* DNS + TCP + TLS + upgrade; 0 = 10 s. Keep it under 20 s:
                                    lws's own handshake timeouts are 20 s */
    size_t max_message;          /* reassembled server message bound; 0 = 1 MiB */
    size_t max_queue;            /* unsent bytes bound; 0 = 256 KiB */
};

struct rt_client_cb {
    /* The upgrade succeeded: messages may be sent. */
    void (*on_open)(void *ud);
    /* One complete text message (fragments joined). */
    void (*on_message)(void *ud, const char *data, size_t len);
    /* Exactly once and last, from a uv callback (never from inside an rt_ call or an lws
     * callback); the client is freed after it returns. reason is never NULL.
     * After on_open: err 0 and the peer's Close code/reason (1005 when it had none),
     * ours when rt_client_close() came first, 1006 when TCP dropped without a Close;
     * or err VA_ETOOBIG (we closed with 1009: a message passed max_message) or
     * VA_EPROTO (we closed with 1003: a binary message).
     * Before on_open (code 1006, reason = lws's error text): VA_EAUTH (401/403 on the
     * upgrade), UV_ETIMEDOUT (connect_timeout_ms), UV_ECONNREFUSED or another -errno
     * when the TCP connect failed (read from SO_ERROR; lws 4.1 keeps none), a DNS error
     * (UV_EAI_*), VA_EPROTO (another HTTP status, a bad handshake, a TLS failure: then
     * reason is "TLS: " and OpenSSL's verify error); UV_ECANCELED with the code and
     * reason given to rt_client_close() when the caller aborted the connect.
     * http_status is the upgrade's status when one was received, else 0 (101 once open). */
    void (*on_closed)(void *ud, int err, int http_status, uint16_t code, const char *reason);
};

/* Starts connecting: uv_getaddrinfo, then lws to the first IPv4 address (else the first
 * IPv6 one; no fallback to further addresses), the Host header and TLS name being the
 * URL's host. Callbacks follow on the loop (never from inside this call).
 * 0 or a negative code with no callback: VA_EINVAL (bad URL or header), VA_ETOOBIG (a
 * Host line over 118 bytes or a path over 1024: lws 4.1 would cut them silently),
 * VA_ECLOSED (rt_lws_close() was called). */
int rt_client_open(struct rt_client **out, struct rt_lws *l, const struct rt_client_cfg *cfg,
                   const struct rt_client_cb *cb, void *ud);
/* The longest client frame header: 2 bytes, a 64-bit length, the masking key. */
#define RT_FRAME_HEAD_MAX 14
/* Writes one final text frame as a client sends it (RFC 6455 5.2): header, key, and
 * payload[0, len) masked with key; out holds len + RT_FRAME_HEAD_MAX bytes. Returns the
 * frame's length. Pure. */
size_t rt_ws_frame(unsigned char *out, const void *payload, size_t len, const unsigned char key[4]);
/* Queues one text message (copied; must be UTF-8, not checked). 0; VA_ESTATE before
 * on_open; VA_ECLOSED once closing; VA_EFULL when rt_client_queued() + len would pass
 * max_queue (nothing queued, the connection stays up; the caller decides); UV_EIO
 * when OpenSSL's DRBG gives no masking key. Safe from
 * inside on_open and on_message. What a loop turn queued leaves in one write. */
int rt_client_send(struct rt_client *c, const char *data, size_t len);
/* Payload bytes accepted by rt_client_send() and not yet handed to lws. */
size_t rt_client_queued(const struct rt_client *c);
/* Close handshake with code (1000-1003, 1007-1011, 3000-4999; else 1000 is sent) and
 * reason (may be NULL; cut to 123 bytes at a UTF-8 boundary); messages still queued are
 * dropped. While resolving or connecting it aborts instead (on_closed with UV_ECANCELED).
 * lws waits 5 s for the peer's Close before dropping TCP. Safe from inside on_open and
 * on_message (no on_message follows). Asynchronous: on_closed follows. Idempotent. */
void rt_client_close(struct rt_client *c, uint16_t code, const char *reason);

/* Circuit breaker over connect results (pure; time passed in). Closed: calls connect.
 * After `threshold` consecutive connect failures it opens: new calls are refused until
 * a probe connection succeeds; probes are due every cooldown_ms (the first cooldown_ms
 * after opening, the next cooldown_ms after a failed probe). A success (a call's
 * connect or a probe) closes it and resets failures. */
enum rt_breaker_state { RT_BREAKER_CLOSED, RT_BREAKER_OPEN };
struct rt_breaker {
    enum rt_breaker_state state;
    uint32_t threshold;
    uint32_t cooldown_ms;
    uint32_t failures;      /* consecutive */
    uint64_t next_probe_ms; /* when open */
    bool probing;           /* a probe is in flight */
    char last_error[96];
};
/* threshold 0 is taken as 1. */
void rt_breaker_init(struct rt_breaker *b, uint32_t threshold, uint32_t cooldown_ms);
/* true when a call may connect now (closed). */
bool rt_breaker_allows(const struct rt_breaker *b);
/* A call connected: closes the breaker, failures = 0 (an in-flight probe's result still
 * arrives through rt_breaker_probe_done()). */
void rt_breaker_success(struct rt_breaker *b);
/* Records a call's connect failure (why: copied, cut to fit, NULL = ""); returns true
 * when this failure opened the breaker. While open it only counts: probes keep their
 * schedule. */
bool rt_breaker_failure(struct rt_breaker *b, uint64_t now_ms, const char *why);
/* When open and no probe is in flight and one is due: marks probing, returns true. */
bool rt_breaker_probe_due(struct rt_breaker *b, uint64_t now_ms);
/* The probe's result: ok closes the breaker as rt_breaker_success() does; a failure
 * counts and schedules the next probe cooldown_ms from now (and, if a call's success
 * closed the breaker meanwhile, counts as rt_breaker_failure() would). */
void rt_breaker_probe_done(struct rt_breaker *b, bool ok, uint64_t now_ms, const char *why);

#endif
