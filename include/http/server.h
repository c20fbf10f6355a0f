/* include/http/server.h: HTTP/1.1 server on a libuv loop, parsing with llhttp.
 *
 * Requests on one connection are handled strictly in order (pipelining included):
 * the parser pauses at each complete request and resumes only once it has been
 * answered. Every peer-filled buffer is bounded: request line + headers
 * (max_header_bytes, 431), body (max_body_bytes, 413), and the unsent response
 * bytes of a peer that does not read (reading stops until they drain). */
#ifndef VA_HTTP_SERVER_H
#define VA_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/net.h"

struct va_log;
struct va_http_server;
struct va_http_conn;

struct va_http_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* Valid only during on_request; copy what must outlive it. */
struct va_http_req {
    const char *method; /* "GET", "POST", ... */
    const char *target; /* raw request target, as sent */
    size_t target_len;
    const char *path; /* target up to '?' */
    size_t path_len;
    const char *query; /* after '?', NULL when there is none */
    size_t query_len;
    const struct va_http_header *headers;
    size_t nheaders;
    const char *body;
    size_t body_len;
    bool keep_alive;       /* what the client asked for */
    bool upgrade;          /* Connection: upgrade with an Upgrade header */
    struct va_addr peer;   /* the socket peer */
    struct va_addr client; /* peer, or the forwarded client when the peer is a trusted proxy */
};

/* Case-insensitive header lookup: the first value, or NULL. */
const char *va_http_req_header(const struct va_http_req *req, const char *name, size_t *len);

/* Whether the request carries "Authorization: Bearer <token>" (scheme case-insensitive,
 * spaces around the token ignored), compared in constant time. */
bool va_http_bearer_ok(const struct va_http_req *req, const char *token, size_t token_len);

struct va_http_server_cfg {
    const char *host;
    uint16_t port; /* 0 = ephemeral, see va_http_server_port() */
    uint32_t max_connections;
    uint32_t max_header_bytes;
    uint32_t max_body_bytes;
    uint32_t request_timeout_ms; /* from a request's first byte to its last */
    uint32_t idle_timeout_ms;    /* keep-alive with nothing in flight */
    const struct va_cidr *trust_proxy;
    size_t trust_proxy_len;
};

struct va_http_server_cb {
    /* One call per complete request; the handler answers exactly once with
     * va_http_respond(), now or later on the loop. */
    void (*on_request)(void *ud, struct va_http_conn *c, const struct va_http_req *req);
    /* Exactly once and last, after va_http_server_close() and every handle closed. */
    void (*on_closed)(void *ud);
};

/* Binds and listens. 0 or a negative code (bind errors pass through). */
int va_http_server_open(struct va_http_server **out, uv_loop_t *loop, struct va_log *log,
                        const struct va_http_server_cfg *cfg, const struct va_http_server_cb *cb,
                        void *ud);
/* The bound port (useful when cfg.port was 0). */
uint16_t va_http_server_port(const struct va_http_server *srv);
/* Drain mode: idle keep-alive connections close now, every later response says
 * Connection: close. New connections are still accepted, so probes still answer. */
void va_http_server_drain(struct va_http_server *srv);
/* Requests begun but not yet answered: the work a drain waits for. */
size_t va_http_server_busy(const struct va_http_server *srv);
/* Stops listening and drops every connection. Asynchronous: on_closed follows. */
void va_http_server_close(struct va_http_server *srv);

/* Answers the request in flight on c. extra_headers is NULL or complete header
 * lines ("Retry-After: 3\r\n"). Logs one access line (route, status, ms, remote).
 * 0 or VA_ESTATE when nothing is in flight. */
int va_http_respond(struct va_http_conn *c, int status, const char *content_type,
                    const char *extra_headers, const void *body, size_t len);
/* Hands the socket of an upgrade request over: *fd is a duplicate descriptor
 * the caller now owns (e.g. for va_ws_open), *pre the bytes that arrived behind
 * the request (free() it; may be NULL when none). The connection is released
 * here; the access line is logged with status (101). 0 or a negative code, and
 * then the request is still to be answered with va_http_respond(). */
int va_http_upgrade(struct va_http_conn *c, int status, uv_os_sock_t *fd, char **pre,
                    size_t *pre_len);

/* {"error":code,"message":message} with the given status. */
int va_http_respond_error(struct va_http_conn *c, int status, const char *code, const char *message,
                          const char *extra_headers);

const char *va_http_reason(int status);

#endif
