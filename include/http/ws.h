/* include/http/ws.h: WebSocket server connections (RFC 6455), framing by wslay,
 * socket I/O on our libuv loop. General purpose: /ws/twilio and the MCP server
 * both use it, so nothing protocol-specific lives here.
 *
 * Bounds: a message larger than max_message closes with 1009; text that is not
 * UTF-8 with 1007; an unmasked client frame or another framing error with 1002;
 * unsent bytes past max_queue (a peer that stopped reading) close with 1008 and
 * a log line, so memory never grows with a slow peer. After we send a Close the
 * peer has close_timeout_ms to answer before TCP is dropped. */
#ifndef VA_HTTP_WS_H
#define VA_HTTP_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct va_log;
struct va_ws;
struct va_http_req;

enum va_ws_opcode { VA_WS_TEXT = 1, VA_WS_BINARY = 2 };

/* Close codes we use (RFC 6455 7.4.1). 1006 is reported, never sent. */
enum va_ws_close_code {
    VA_WS_NORMAL = 1000,
    VA_WS_GOING_AWAY = 1001,
    VA_WS_PROTOCOL_ERROR = 1002,
    VA_WS_ABNORMAL = 1006,
    VA_WS_INVALID_DATA = 1007,
    VA_WS_POLICY = 1008,
    VA_WS_TOO_BIG = 1009,
    VA_WS_INTERNAL = 1011,
};

/* Checks an upgrade request (GET, Upgrade lists websocket, Connection lists
 * upgrade, Sec-WebSocket-Version: 13, a Sec-WebSocket-Key of 16 bytes in
 * base64); tokens compare case-insensitively. The HTTP version is not in
 * struct va_http_req, so it is not checked here. Pure. 0 and accept[29] =
 * base64(SHA-1(key + GUID)) NUL-terminated, or the HTTP status to refuse with
 * and a static *why: 400, 426 for a missing or wrong version (answer it with
 * "Sec-WebSocket-Version: 13"), 500 only if OpenSSL cannot hash. */
int va_ws_handshake_check(const struct va_http_req *req, char accept[29], const char **why);

/* True when the comma-separated Sec-WebSocket-Protocol header lists proto
 * (every such header line is read; names compare case-sensitively). */
bool va_ws_offers_protocol(const struct va_http_req *req, const char *proto);

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past
 * U+10FFFF, no truncated sequence at the end. Pure. */
bool va_ws_utf8_valid(const char *s, size_t len);

/* dst[i] = src[i] ^ key[i % 4] for i < len: RFC 6455 masking, either way (dst may be
 * src). Eight bytes at a time. Pure. */
void va_ws_mask(void *dst, const void *src, size_t len, const unsigned char key[4]);

/* Bytes asked of the socket per read. */
#define VA_WS_READ_BUF (16 * 1024)

struct va_ws_cfg {
    size_t max_message;        /* reassembled message bound, e.g. 64 KiB for Twilio */
    size_t max_queue;          /* unsent bytes bound, e.g. 256 KiB */
    uint32_t close_timeout_ms; /* wait for the peer's Close after ours, e.g. 5000 */
    int sndbuf;                /* SO_SNDBUF for the socket, 0 = kernel default */
    /* VA_WS_READ_BUF bytes that connections on one loop may share (a read is consumed
     * before its callback returns), owned by the caller and outliving the connection;
     * NULL: a buffer allocated per read. */
    char *read_buf;
};

struct va_ws_cb {
    /* One complete message (fragments joined, control frames handled inside). */
    void (*on_message)(void *ud, enum va_ws_opcode op, const char *data, size_t len);
    /* Exactly once and last, from a uv close callback (never from inside a
     * call into this module); the struct va_ws is freed right after it
     * returns, so call nothing on it here. code is the peer's close code (1005
     * when its Close had none), ours when we closed first (also when the peer
     * then never answered and close_timeout_ms dropped TCP, and for the codes
     * we fail with: 1002, 1007, 1008, 1009), or 1006 when the connection
     * dropped without a Close. reason is never NULL: the Close reason, or a
     * short local cause for 1006 ("EOF", "ECONNRESET"). */
    void (*on_closed)(void *ud, uint16_t code, const char *reason);
};

/* Takes over the connected socket fd (the HTTP server hands it over after the
 * upgrade request), writes the 101 answer (with Sec-WebSocket-Protocol when
 * subprotocol is not NULL), then processes pre[0, pre_len): bytes that arrived
 * behind the request (copied; the caller keeps pre). remote is the client
 * address text, kept for logs (cut to 63 bytes); accept comes from
 * va_ws_handshake_check(). Asynchronous: no callback runs before va_ws_open()
 * returns; pre is processed and reading starts on the next loop iteration.
 * 0, or a negative code with fd closed and no callback (the memory is
 * released on the loop: run it before uv_loop_close()). */
int va_ws_open(struct va_ws **out, uv_loop_t *loop, struct va_log *log, uv_os_sock_t fd,
               const char *accept, const char *subprotocol, const char *pre, size_t pre_len,
               const char *remote, const struct va_ws_cfg *cfg, const struct va_ws_cb *cb,
               void *ud);

/* Copies and queues one message; the bytes go out at the end of this loop turn
 * (inside on_message, after it returns), together with whatever else was sent
 * meanwhile, or at once when that batch passes 16 KiB. 0; VA_ECLOSED once closing (after
 * va_ws_close() or the peer's Close); VA_EFULL when va_ws_queued() plus this
 * frame would pass max_queue: the connection is then closed with 1008 and a
 * warn line (on_closed follows). A message larger than max_queue always fails
 * that way. op VA_WS_TEXT must carry UTF-8: it is not checked. */
int va_ws_send(struct va_ws *ws, enum va_ws_opcode op, const void *data, size_t len);

/* Hands what va_ws_send() batched to the kernel now, for a message that must not wait
 * for the end of the loop turn (Twilio's clear on barge-in). A no-op inside on_message,
 * where the write follows as soon as it returns, and when nothing is batched. */
void va_ws_flush(struct va_ws *ws);

/* Starts the close handshake (idempotent; a no-op once a Close is under way);
 * on_closed follows. Safe from inside on_message; no on_message follows it.
 * code must be sendable (1000-1003, 1007-1011, 3000-4999), else 1011 is sent;
 * reason (may be NULL) is cut to 123 bytes at a UTF-8 boundary. */
void va_ws_close(struct va_ws *ws, uint16_t code, const char *reason);

/* Bytes queued but not yet handed to the kernel (wslay's queue, our batch and
 * libuv's write queue). Reading pauses while this is above max_queue. */
size_t va_ws_queued(const struct va_ws *ws);

#endif
