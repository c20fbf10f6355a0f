/* include/mcp/jsonrpc.h: MCP over JSON-RPC 2.0 as a pure request -> response engine.
 *
 * One call of mcp_handle() takes one transport message (a WebSocket text frame, an HTTP
 * POST body) and appends the answer to a caller buffer. Tool calls are asynchronous:
 * mcp_handle() never runs a handler; it returns them as pending entries, and the caller
 * (the transport, on the loop) starts each with mcp_pending_start(), arms its timeout,
 * and on completion appends the response with mcp_build_tool_result(). When no entry is
 * outstanding, mcp_finish() closes the answer. No I/O, clock or global in here.
 *
 * Served: initialize (2024-11-05, 2025-03-26, 2025-06-18, 2025-11-25; an unsupported
 * version is answered with 2025-11-25), ping, tools/list, tools/call, notifications;
 * the stateless 2026-07-28 revision per request (params._meta carrying
 * io.modelcontextprotocol/protocolVersion: server/discover, tools/list, tools/call); the
 * legacy {"id","method":"tool.call","params":{"name","args"}} dialect. Batches only when
 * the session's revision is 2025-03-26.
 */
#ifndef VA_MCP_JSONRPC_H
#define VA_MCP_JSONRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "mcp/registry.h"

#define MCP_VERSION_LATEST "2025-11-25"  /* newest handshake revision */
#define MCP_VERSION_DEFAULT "2025-03-26" /* assumed before initialize (HTTP without header) */
#define MCP_VERSION_MODERN "2026-07-28"  /* stateless */

#define MCP_ID_MAX 256     /* a request id as compact JSON; longer ids are Invalid Request */
#define MCP_BATCH_MAX 16   /* elements per batch; more is one Invalid Request */
#define MCP_SCOPE_MAX 48  /* mcp_session.scope */
#define MCP_KEY_MAX 128    /* _meta.idempotencyKey; longer keys are refused (-32602) */
#define MCP_CLIENT_MAX 64  /* clientInfo name/version kept (cut past it) */
#define MCP_VERSION_MAX 16 /* "YYYY-MM-DD" and room */

/* Fixed for the process; outlives every session. */
struct mcp_server_info {
    const char *name;         /* serverInfo.name, "voice-agent-mcp" */
    const char *version;      /* serverInfo.version */
    const char *instructions; /* may be NULL */
    uint32_t ttl_ms;          /* 2026-07-28 ttlMs for discover and tools/list */
};

/* One connection (WebSocket) or HTTP session: plain memory. */
struct mcp_session {
    const struct mcp_registry *reg;
    const struct mcp_server_info *info;
    char version[MCP_VERSION_MAX]; /* negotiated; "" until initialize or set_version */
    bool initialized;              /* initialize answered */
    bool ready;                    /* notifications/initialized received */
    char client_name[MCP_CLIENT_MAX];
    char client_version[MCP_CLIENT_MAX];
    /* Who is asking, for default idempotency keys: the Mcp-Session-Id, a per-connection
     * random id on WebSocket, "" for a stateless request. */
    char scope[MCP_SCOPE_MAX];
};

/* reg and info are borrowed and outlive the session. */
void mcp_session_init(struct mcp_session *s, const struct mcp_registry *reg,
                      const struct mcp_server_info *info);

/* Sets the session's scope (copied, cut to MCP_SCOPE_MAX - 1). */
void mcp_session_set_scope(struct mcp_session *s, const char *scope);

/* The revision in force: negotiated, else MCP_VERSION_DEFAULT. */
const char *mcp_session_version(const struct mcp_session *s);

/* Whether v[0, len) is a handshake revision we serve (2024-11-05 .. 2025-11-25). */
bool mcp_version_supported(const char *v, size_t len);

/* For Streamable HTTP's MCP-Protocol-Version header on a session without a handshake:
 * 0, or VA_EINVAL when unsupported (the transport answers 400). */
int mcp_session_set_version(struct mcp_session *s, const char *v, size_t len);

/* A request id, kept as its compact JSON text so it is echoed with its JSON type. */
struct mcp_id {
    char json[MCP_ID_MAX];
    size_t len;
};

enum mcp_pending_kind {
    MCP_PENDING_CALL,   /* start it; answer with mcp_build_tool_result() */
    MCP_PENDING_CANCEL, /* notifications/cancelled: drop the reply to `id` if still pending */
};

enum mcp_dialect {
    MCP_DIALECT_JSONRPC,   /* legacy-era JSON-RPC (initialize handshake) */
    MCP_DIALECT_MODERN,    /* 2026-07-28: resultType and _meta serverInfo on the result */
    MCP_DIALECT_TOOL_CALL, /* {"id","result":<structuredContent>} */
};

/* One call to start, or one cancellation. Plain memory; may be copied (moves args). */
struct mcp_pending {
    enum mcp_pending_kind kind;
    enum mcp_dialect dialect;
    struct mcp_id id;
    bool batch;      /* part of a batch answer (see mcp_build_tool_result) */
    bool structured; /* the revision has structuredContent (2025-06-18 on) */
    const struct mcp_tool *tool;
    cJSON *args; /* owned; freed by mcp_pending_start() or mcp_result_deinit() */
    /* params._meta.idempotencyKey, else "auto:" + SHA-256 of the session's scope, the
     * request id, the tool name and the arguments: a retried request (same id) never
     * runs twice, and two requests never share a key by accident. */
    char idempotency_key[MCP_KEY_MAX];
    const struct mcp_server_info *info;
};

/* What one message asked for besides what mcp_handle() wrote. */
struct mcp_result {
    size_t start; /* out->len when mcp_handle() began */
    bool batch;   /* the answer is an array: mcp_finish() closes it */
    size_t count;
    struct mcp_pending pending[MCP_BATCH_MAX];
};

/*
 * Handles msg[0, len), one transport message. Appends to out what can be answered now:
 * nothing (notifications, responses), one response, or for a batch "[" and the ready
 * responses. Fills res (always, reset first) with the calls to start and the
 * cancellations seen. Then for each MCP_PENDING_CALL the caller runs mcp_pending_start()
 * and, when it completes, mcp_build_tool_result(); once none is outstanding,
 * mcp_finish(). If out is then still at res->start, there is nothing to send (HTTP 202).
 * Returns 0, or VA_ETOOBIG when out reached its bound (send nothing; close or 500).
 * Protocol faults are answers, not return codes.
 */
int mcp_handle(struct mcp_session *s, const char *msg, size_t len, struct va_buf *out,
               struct mcp_result *res);

/* Starts p's call through the registry (validation and the completion contract of
 * registry.h), then frees p->args: handlers only borrow args during call(). p stays valid
 * for mcp_build_tool_result(). origin is MCP; timeout_ms is the tool's. */
int mcp_pending_start(struct mcp_pending *p, struct mcp_call_done *done);

/*
 * Appends the response to p for one tool result (from on_done, or a timeout result the
 * caller makes up): JSON-RPC {"jsonrpc":"2.0","id":..,"result":{"content":[{"type":
 * "text","text":<text or the JSON>}],"structuredContent":<json>,"isError":..}}
 * (structuredContent from 2025-06-18; 2026-07-28 adds resultType and _meta serverInfo),
 * or the legacy {"id":..,"result":<json>} (a failure's text added as "message" when the
 * object has none). A result_json that is not JSON (a tool bug) becomes a -32603 error.
 * In a batch a separating comma is added. 0 or VA_ETOOBIG.
 */
int mcp_build_tool_result(struct va_buf *out, const struct mcp_pending *p, const char *result_json,
                          size_t len, bool is_error, const char *text, size_t text_len);

/* The same from a struct mcp_call_result (what on_done receives). */
int mcp_build_call_result(struct va_buf *out, const struct mcp_pending *p,
                          const struct mcp_call_result *r);

/* Closes the answer once no call is outstanding: "]" after a batch, or nothing at all
 * when the batch produced no response. 0 or VA_ETOOBIG. */
int mcp_finish(const struct mcp_result *res, struct va_buf *out);

/* Frees what res still owns (args of calls never started). */
void mcp_result_deinit(struct mcp_result *res);

/* Appends a JSON-RPC error {"jsonrpc":"2.0","id":<id or null>,"error":{"code","message"}}
 * (id NULL -> null): for transports answering before mcp_handle() (e.g. 413 bodies). */
int mcp_build_error(struct va_buf *out, const struct mcp_id *id, int code, const char *message);

/* What a transport must know before handling a message: Streamable HTTP 2026-07-28 checks
 * Mcp-Method / Mcp-Name / MCP-Protocol-Version against the body (-32020), and answers 202
 * when a POST holds only notifications or responses. Strings are cut to their arrays and
 * empty when absent. Pure; 0, or VA_EPROTO when msg is not JSON. */
struct mcp_peek {
    bool batch;
    bool expects_response; /* some request in it (needs an answer) */
    char method[64];
    char name[128];                     /* params.name (tools/call) */
    char meta_version[MCP_VERSION_MAX]; /* params._meta io.modelcontextprotocol/protocolVersion */
};
int mcp_peek(const char *msg, size_t len, struct mcp_peek *pk);

/* JSON-RPC and MCP error codes. */
enum mcp_rpc_code {
    MCP_RPC_PARSE_ERROR = -32700,
    MCP_RPC_INVALID_REQUEST = -32600,
    MCP_RPC_METHOD_NOT_FOUND = -32601,
    MCP_RPC_INVALID_PARAMS = -32602,
    MCP_RPC_INTERNAL_ERROR = -32603,
    MCP_RPC_HEADER_MISMATCH = -32020,     /* 2026-07-28 */
    MCP_RPC_MISSING_CAPABILITY = -32021,  /* 2026-07-28 */
    MCP_RPC_UNSUPPORTED_VERSION = -32022, /* 2026-07-28 */
};

#endif
