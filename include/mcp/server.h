/* include/mcp/server.h: the MCP server on MCP_HOST:MCP_PORT, one listener, two transports.
 *
 * Its own va_http_server instance serves:
 *   - WebSocket: an upgrade on "/" or "/mcp" (Sec-WebSocket-Protocol: mcp echoed when
 *     offered), one JSON-RPC message per text frame, one struct mcp_session per connection.
 *   - Streamable HTTP on "/mcp": POST answers application/json, or text/event-stream (one
 *     "event: message") when Accept lists text/event-stream but not application/json;
 *     Mcp-Session-Id issued at initialize (128 random bits, hex) and required afterwards
 *     (missing 400, unknown or expired 404); 202 and no body when a POST holds only
 *     notifications; MCP-Protocol-Version checked (400 when unsupported); GET 405 (no
 *     server-initiated stream); DELETE ends the session. 2026-07-28 requests (params._meta
 *     protocolVersion) are served statelessly after the Mcp-Method / Mcp-Name /
 *     MCP-Protocol-Version header checks (400 with -32020). The legacy tool.call dialect
 *     needs no session.
 *
 * Checks on every request and upgrade, in this order: Origin (when present it must be
 * listed, else 403), Authorization (when a token is configured: "Bearer <token>", constant
 * time, else 401 with WWW-Authenticate), the per-client rate limit (HTTP: 429 with
 * Retry-After; WebSocket: per connection, a JSON-RPC error -32000 per refused request).
 *
 * Tool calls run through the registry on the loop; each is bounded by the tool's
 * timeout_ms (then answered with MCP_RESULT_TIMEOUT_*, the handler's late result
 * discarded) and by max_in_flight per connection or HTTP session (over it, a call is
 * answered at once as an isError "busy" result). An HTTP POST is answered once every
 * result it asked for is in.
 *
 * Not OAuth-conformant: the token is a static shared secret (mcp.md §9).
 */
#ifndef VA_MCP_SERVER_H
#define VA_MCP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "mcp/jsonrpc.h"
#include "mcp/registry.h"

struct va_log;
struct mcp_server;

struct mcp_server_cfg {
    const char *host;       /* IP literal; without auth_token only loopback is accepted */
    uint16_t port;          /* 0 = ephemeral, see mcp_server_port() */
    const char *auth_token; /* NULL or "" = none */
    const char *const *allowed_origins; /* exact Origin values; "*" allows any */
    size_t norigins;                    /* 0: any request carrying Origin gets 403 */
    const struct mcp_server_info *info; /* borrowed; outlives the server */
    size_t max_message_bytes;           /* WebSocket message and HTTP body, e.g. 64 KiB */
    size_t max_response_bytes;          /* one answer (a tools/list, a batch), e.g. 1 MiB */
    uint32_t max_in_flight;             /* tool calls outstanding per connection/session */
    uint32_t rate_per_min;              /* messages per minute per connection/client */
    uint32_t rate_burst;                /* bucket size */
    uint32_t max_sessions;              /* HTTP sessions alive at once */
    uint32_t session_idle_ms;           /* an HTTP session unused this long expires */
    uint32_t max_ws;                    /* WebSocket connections at once */
    /* HTTP limits of the listener (see struct va_http_server_cfg) */
    uint32_t max_connections;
    uint32_t max_header_bytes;
    uint32_t request_timeout_ms;
    uint32_t idle_timeout_ms;
};

/* Fills cfg with the defaults above (64 KiB messages, 1 MiB answers, 8 in flight,
 * 600/min burst 60, 64 sessions idle 30 min, 64 WebSockets, 256 connections, 8 KiB
 * headers, 10 s request, 60 s idle). host, port, token, origins and info stay unset. */
void mcp_server_cfg_defaults(struct mcp_server_cfg *cfg);

/*
 * Binds and listens. reg, cfg->info and the strings of cfg are borrowed and must outlive
 * the server (the token and origins are copied). Returns 0, VA_EINVAL (a host that is not
 * an IP literal, a non-loopback host without auth_token: logged as an error naming
 * MCP_AUTH_TOKEN, or a zero limit), or the bind error. On failure nothing is left open.
 */
int mcp_server_open(struct mcp_server **out, uv_loop_t *loop, struct va_log *log,
                    const struct mcp_server_cfg *cfg, const struct mcp_registry *reg);

/* The bound port. */
uint16_t mcp_server_port(const struct mcp_server *s);

/* WebSocket connections and HTTP sessions alive (for /ready and logs). */
size_t mcp_server_connections(const struct mcp_server *s);
size_t mcp_server_sessions(const struct mcp_server *s);

/* Requests and tool-call batches not yet answered (the drain waits for them). */
size_t mcp_server_busy(const struct mcp_server *s);

/* The daemon is draining: new HTTP requests and WebSocket upgrades get 503 with
 * Retry-After, idle keep-alive connections close; work in flight goes on. */
void mcp_server_drain(struct mcp_server *s);

/*
 * Stops listening, closes every WebSocket (1001), answers HTTP requests still held with
 * 503 (JSON-RPC error, Retry-After) and closes their connections, abandons calls in
 * flight (their tools' cancel hooks are called). Asynchronous: on_closed(ud) runs exactly
 * once, last, when every handle is closed and every started tool call has completed; the
 * server's memory is gone by then. on_closed may be NULL.
 */
void mcp_server_close(struct mcp_server *s, void (*on_closed)(void *ud), void *ud);

#endif
