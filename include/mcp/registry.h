/* include/mcp/registry.h: the one tool registry, offered over MCP and to the model. */
#ifndef VA_MCP_REGISTRY_H
#define VA_MCP_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/buf.h"

/* Where a tool is offered: tools/list and tools/call, the Realtime session's tools, or both. */
enum mcp_offer {
    MCP_OFFER_MCP = 1u << 0,
    MCP_OFFER_MODEL = 1u << 1,
    MCP_OFFER_BOTH = MCP_OFFER_MCP | MCP_OFFER_MODEL,
};

enum mcp_origin {
    MCP_ORIGIN_MCP,   /* tools/call or the legacy tool.call */
    MCP_ORIGIN_MODEL, /* a Realtime function call */
};

/* What a handler learns about one call. Borrowed for the duration of call() only: a
 * handler that completes later copies what it needs before returning. */
struct mcp_call_ctx {
    enum mcp_origin origin;
    const char *tool;            /* the tool's registered name */
    /* model: call_id; MCP: _meta.idempotencyKey or the derived key (jsonrpc.h) */
    const char *idempotency_key;
    uint32_t timeout_ms;         /* the tool's declared timeout, enforced by the caller */
};

struct mcp_call_done;

/* One finished call. Borrowed for the duration of on_done only. */
struct mcp_call_result {
    const char *json; /* the tool's result object, e.g. {"success":true,...} */
    size_t len;
    bool is_error;    /* a failure the model can explain (unknown member, bad arguments) */
    const char *text; /* what to say about it; NULL means "the JSON itself" */
    size_t text_len;
};

/*
 * Completion contract. The caller owns a struct mcp_call_done, fills it with
 * mcp_call_done_init() and keeps it alive until on_done has run. Once a call is started
 * with mcp_registry_call(), on_done runs exactly once: synchronously inside
 * mcp_registry_call() (bad arguments, a handler that completes at once or fails to
 * start) or later from the loop. on_done is where the caller frees the object.
 *
 * Timeouts belong to the caller, which owns the loop: it arms a timer for
 * mcp_call_ctx.timeout_ms, and on expiry answers the peer itself (MCP_RESULT_TIMEOUT_*),
 * sets done->abandoned and calls the tool's cancel hook if it has one. The handler still
 * completes exactly once; on_done sees abandoned and only frees. No handler ever has to
 * know about timers, and a late result can never reach a peer twice.
 */
struct mcp_call_done {
    void (*on_done)(struct mcp_call_done *done, const struct mcp_call_result *res);
    void *ud;
    bool completed; /* set by mcp_call_complete*(); completing twice is a bug (assert) */
    bool abandoned; /* set by the caller (timeout, peer gone): the result is discarded */
};

void mcp_call_done_init(struct mcp_call_done *done,
                        void (*on_done)(struct mcp_call_done *done,
                                        const struct mcp_call_result *res),
                        void *ud);

/* Reports a handler's result, exactly once per call; result_json[0, len) is borrowed for
 * the duration of the call. The text shown to a person is the JSON itself. */
void mcp_call_complete(struct mcp_call_done *done, const char *result_json, size_t len,
                       bool is_error);

/* The same with a sentence for people and models ("No member with id member_999.") next
 * to the machine-readable result. text may be NULL (then as mcp_call_complete). */
void mcp_call_complete_text(struct mcp_call_done *done, const char *result_json, size_t len,
                            bool is_error, const char *text, size_t text_len);

/* What a caller answers on its own behalf. */
#define MCP_RESULT_TIMEOUT_JSON "{\"success\":false,\"error\":\"timeout\"}"
#define MCP_RESULT_TIMEOUT_TEXT "The tool did not answer in time."
#define MCP_RESULT_INTERNAL_JSON "{\"success\":false,\"error\":\"internal_error\"}"
#define MCP_RESULT_INTERNAL_TEXT "The tool failed; please try again later."

struct mcp_tool_def {
    const char *name;          /* 1..64 of [A-Za-z0-9_-]: valid for MCP and OpenAI alike */
    const char *title;         /* may be NULL; listed from 2025-06-18 */
    const char *description;   /* required: the model chooses tools by it */
    const char *input_schema;  /* JSON text, "type":"object", the subset in schema.h */
    const char *output_schema; /* JSON text or NULL; listed from 2025-06-18 */
    const char *annotations;   /* JSON object text or NULL; listed from 2025-03-26 */
    uint32_t timeout_ms;       /* > 0 */
    bool has_side_effects;     /* the model runs it only once its response completed */
    unsigned offer;            /* enum mcp_offer bits, not 0 */
    /* Starts the call; args conform to input_schema (checked before). 0: the call runs and
     * completes exactly once through done (possibly before returning). Negative: it did not
     * start and never completes; the registry then completes it as an internal error. */
    int (*call)(void *tool_ud, const cJSON *args, const struct mcp_call_ctx *cx,
                struct mcp_call_done *done);
    /* Optional: asked to hurry an abandoned call (e.g. abort its HTTP request). It must
     * still complete, possibly from inside this call. */
    void (*cancel)(void *tool_ud, struct mcp_call_done *done);
    void *tool_ud;
};

/* A registered tool; read-only to callers. */
struct mcp_tool {
    struct mcp_tool_def def; /* strings point at the copies below */
    char *name, *title, *description;
    cJSON *input;      /* parsed once at registration */
    cJSON *output;     /* NULL when none */
    char *input_text;  /* compact JSON, as listed */
    char *output_text; /* NULL when none */
    char *annotations_text;
};

struct mcp_registry {
    struct mcp_tool *tools; /* registration order, which is also the listing order */
    size_t count;
    size_t max;
};

/* Plain memory: room for max tools. */
void mcp_registry_init(struct mcp_registry *r, size_t max);
void mcp_registry_deinit(struct mcp_registry *r);

/* Copies def (strings included) and parses its schemas once. 0; VA_EINVAL for a bad name,
 * missing description or handler, a zero timeout or offer, JSON that does not parse, an
 * input schema whose type is not "object", or keywords outside schema.h's subset (why, if
 * not NULL, gets the reason); VA_EINVAL for a duplicate name; VA_EFULL past max. */
int mcp_registry_add(struct mcp_registry *r, const struct mcp_tool_def *def, struct va_buf *why);

/* The tool called name[0, len) among those offered through one of the offer bits, or NULL. */
const struct mcp_tool *mcp_registry_find(const struct mcp_registry *r, const char *name, size_t len,
                                         unsigned offer);

/* Appends the tools/list result object {"tools":[...]} for MCP-offered tools as the
 * protocol revision `version` ("2025-06-18", ...) shows them: annotations from
 * 2025-03-26, title and outputSchema from 2025-06-18. 0 or VA_ETOOBIG. */
int mcp_registry_list_mcp(const struct mcp_registry *r, const char *version, struct va_buf *out);

/* Appends the Realtime session.update `tools` array for model-offered tools:
 * [{"type":"function","name":...,"description":...,"parameters":<inputSchema>}]. */
int mcp_registry_list_model(const struct mcp_registry *r, struct va_buf *out);

/* Validates args (NULL means {}) against the tool's input schema. 0, or VA_EINVAL with the
 * failure described in text ("Invalid arguments: memberId must be a string; code is
 * required.") when text is not NULL. */
int mcp_registry_check_args(const struct mcp_tool *t, const cJSON *args, struct va_buf *text);

/* The structured result of an argument failure. */
#define MCP_RESULT_INVALID_ARGS_JSON "{\"success\":false,\"error\":\"invalid_arguments\"}"

/* Runs one call: validates args (NULL means {}), and on failure completes done at once with
 * MCP_RESULT_INVALID_ARGS_JSON and the sentence naming the fields, never calling the
 * handler. Otherwise calls the handler. In every case on_done runs exactly once (see
 * struct mcp_call_done). Returns 0, or the handler's negative code (already completed as
 * MCP_RESULT_INTERNAL_JSON) for the log. */
int mcp_registry_call(const struct mcp_tool *t, const cJSON *args, const struct mcp_call_ctx *cx,
                      struct mcp_call_done *done);

/* The same for the model's arguments, a JSON text (Realtime's "arguments" string): text
 * that does not parse completes as an argument failure. */
int mcp_registry_call_json(const struct mcp_tool *t, const char *args_json, size_t len,
                           const struct mcp_call_ctx *cx, struct mcp_call_done *done);

#endif
