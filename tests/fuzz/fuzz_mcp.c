/* tests/fuzz/fuzz_mcp.c: the MCP JSON-RPC request path (src/mcp/jsonrpc.c), with the
 * tool registry and argument schemas behind it (registry.c, schema.c).
 *
 * The input is what one peer sends on one session: messages separated by '\n', as
 * WebSocket frames or HTTP POST bodies arrive one by one (JSON needs no raw newline, so
 * a real exchange reads as JSON lines, e.g. initialize, notifications/initialized,
 * tools/call). A line "MCP-Protocol-Version: <v>" is that HTTP header instead: it sets the
 * session's revision as the Streamable HTTP transport does for a request without a
 * handshake. Each message runs as src/mcp/server.c's xchg_run() runs it: mcp_peek()
 * (what the HTTP transport looks at first), mcp_handle(), each pending call started
 * through the registry with its result appended as it completes, calls of the "later"
 * tool completed after the message was handled (a database round trip), then
 * mcp_finish(). The tools are fuzz_tools.h's: the product's schemas, no I/O.
 *
 * Oracles besides the sanitizers: every answer is JSON (one response, or an array for a
 * batch); a request is answered once, with its id echoed with the same JSON type and
 * value, and a notification never; peeked strings stay terminated; every started call
 * completes exactly once (the registry asserts it). */
#include <stdbool.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/err.h"
#include "http/ws.h"
#include "mcp/jsonrpc.h"
#include "mcp/registry.h"

#include "fuzz.h"
#include "fuzz_tools.h"

/* src/mcp/server.c's defaults */
#define MCP_FZ_MAX_RESPONSE (1024 * 1024)
#define MCP_FZ_MAX_MESSAGES 16

static const struct mcp_server_info mcp_fz_info = {
    .name = "voice-agent-mcp",
    .version = "0.1.0",
    .instructions = "Member balance lookup and voucher redemption.",
    .ttl_ms = 3600000,
};

/* One started call: where its result goes. */
struct mcp_fz_call {
    struct mcp_call_done done;
    struct va_buf *out;
    const struct mcp_pending *p;
    bool overflow;
    int ran;
};

static void mcp_fz_on_done(struct mcp_call_done *done, const struct mcp_call_result *r)
{
    struct mcp_fz_call *c = done->ud;
    c->ran++;
    FUZZ_CHECK(r->json != NULL);
    if (mcp_build_call_result(c->out, c->p, r))
        c->overflow = true;
}

static void mcp_fz_check_peek(const char *msg, size_t len)
{
    struct mcp_peek pk;
    int err = mcp_peek(msg, len, &pk);
    FUZZ_CHECK(err == 0 || err == VA_EPROTO);
    if (err)
        return;
    FUZZ_CHECK(memchr(pk.method, '\0', sizeof(pk.method)));
    FUZZ_CHECK(memchr(pk.name, '\0', sizeof(pk.name)));
    FUZZ_CHECK(memchr(pk.meta_version, '\0', sizeof(pk.meta_version)));
}

/* Parses msg as mcp_handle() does: strict UTF-8 without NUL, one value, nothing after it
 * but whitespace. NULL when it would not. */
static cJSON *mcp_fz_parse(const char *msg, size_t len)
{
    const char *end = NULL;
    if (!len || !va_ws_utf8_valid(msg, len) || memchr(msg, '\0', len))
        return NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(msg, len, &end, false);
    if (!v)
        return NULL;
    while (end < msg + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (end != msg + len) {
        cJSON_Delete(v);
        return NULL;
    }
    return v;
}

/* What one request object must get: 1 with *id for a request (an answer echoing id), 0 for
 * a JSON-RPC notification (no answer at all), -1 for anything else (an answer whose id, if
 * any, is not checked). The legacy tool.call dialect exists outside batches only. */
static int mcp_fz_expect(const cJSON *v, bool batch, const cJSON **id)
{
    if (!cJSON_IsObject(v))
        return -1;
    const cJSON *jv = cJSON_GetObjectItemCaseSensitive(v, "jsonrpc");
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(v, "method");
    *id = cJSON_GetObjectItemCaseSensitive(v, "id");
    if (!cJSON_IsString(method))
        return -1;
    bool legacy = !batch && !jv && strcmp(method->valuestring, "tool.call") == 0;
    if (!legacy && !(cJSON_IsString(jv) && strcmp(jv->valuestring, "2.0") == 0))
        return -1;
    if (!*id)
        return legacy ? -1 : 0;
    if (!legacy && cJSON_IsNumber(*id)) {
        double d = (*id)->valuedouble;
        if (!(d >= -9007199254740991.0 && d <= 9007199254740991.0) || (double)(int64_t)d != d)
            return -1;
    } else if (!legacy && !cJSON_IsString(*id)) {
        return -1;
    }
    char *text = cJSON_PrintUnformatted(*id);
    FUZZ_CHECK(text != NULL);
    bool fits = strlen(text) < MCP_ID_MAX;
    free(text);
    return fits ? 1 : -1;
}

/* Takes the first response of list (an array) whose id equals id out of it. */
static bool mcp_fz_take(cJSON *list, const cJSON *id)
{
    int i = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, list)
    {
        if (cJSON_Compare(cJSON_GetObjectItemCaseSensitive(r, "id"), id, true)) {
            cJSON_DeleteItemFromArray(list, i);
            return true;
        }
        i++;
    }
    return false;
}

/* A request is answered once, with its id; a notification never. In a batch: one response
 * per element at most, each request's id among them. */
static void mcp_fz_check_answer(const char *msg, size_t len, bool batch, const struct va_buf *out)
{
    cJSON *req = mcp_fz_parse(msg, len);
    if (!req)
        return;
    cJSON *ans = out->len ? cJSON_ParseWithLength(out->data, out->len) : NULL;
    FUZZ_CHECK(!out->len || ans);
    const cJSON *id = NULL;
    if (!batch) {
        int kind = mcp_fz_expect(req, false, &id);
        FUZZ_CHECK(kind != 0 || out->len == 0); /* not even with an error */
        FUZZ_CHECK(kind != 1 ||
                   cJSON_Compare(cJSON_GetObjectItemCaseSensitive(ans, "id"), id, true));
    } else {
        FUZZ_CHECK(cJSON_IsArray(req));
        int nans = ans ? cJSON_GetArraySize(ans) : 0;
        FUZZ_CHECK(nans <= cJSON_GetArraySize(req));
        const cJSON *e;
        cJSON_ArrayForEach(e, req)
        {
            if (mcp_fz_expect(e, true, &id) == 1)
                FUZZ_CHECK(ans && mcp_fz_take(ans, id));
        }
    }
    cJSON_Delete(ans);
    cJSON_Delete(req);
}

/* res and calls[MCP_BATCH_MAX] are the caller's, reused for every message of the input. */
static void mcp_fz_message(struct mcp_session *s, struct fz_tools *tools, const char *msg,
                           size_t len, struct mcp_result *res, struct mcp_fz_call *calls)
{
    mcp_fz_check_peek(msg, len);

    struct va_buf out;
    va_buf_init(&out, MCP_FZ_MAX_RESPONSE);
    memset(calls, 0, MCP_BATCH_MAX * sizeof(*calls));
    bool overflow = mcp_handle(s, msg, len, &out, res) != 0;
    FUZZ_CHECK(res->count <= MCP_BATCH_MAX);
    FUZZ_CHECK(res->start == 0);
    for (size_t i = 0; i < res->count; i++) {
        struct mcp_pending *p = &res->pending[i];
        if (p->kind != MCP_PENDING_CALL || overflow)
            continue;
        FUZZ_CHECK(p->tool != NULL);
        FUZZ_CHECK(memchr(p->idempotency_key, '\0', sizeof(p->idempotency_key)));
        struct mcp_fz_call *c = &calls[i];
        c->out = &out;
        c->p = p;
        mcp_call_done_init(&c->done, mcp_fz_on_done, c);
        (void)mcp_pending_start(p, &c->done);
    }
    fz_tools_release(tools);
    for (size_t i = 0; i < res->count; i++) {
        if (calls[i].p) {
            FUZZ_CHECK(calls[i].ran == 1);
            overflow |= calls[i].overflow;
        }
    }
    if (!overflow && mcp_finish(res, &out))
        overflow = true;
    if (!overflow && out.len) {
        cJSON *root = cJSON_ParseWithLength(out.data, out.len);
        if (!root)
            fprintf(stderr, "not JSON: %.*s\n", (int)out.len, out.data);
        FUZZ_CHECK(root != NULL);
        FUZZ_CHECK(res->batch ? cJSON_IsArray(root) : cJSON_IsObject(root));
        cJSON_Delete(root);
    }
    if (!overflow)
        mcp_fz_check_answer(msg, len, res->batch, &out);
    mcp_result_deinit(res);
    va_buf_deinit(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_tools tools;
    fz_tools_init(&tools);
    struct mcp_session s;
    mcp_session_init(&s, &tools.reg, &mcp_fz_info);
    struct mcp_result *res = malloc(sizeof(*res));
    struct mcp_fz_call *calls = malloc(MCP_BATCH_MAX * sizeof(*calls));
    FUZZ_CHECK(res && calls);

    const char *p = (const char *)data;
    size_t left = size;
    for (int n = 0; n < MCP_FZ_MAX_MESSAGES && left; n++) {
        const char *nl = memchr(p, '\n', left);
        size_t len = nl ? (size_t)(nl - p) : left;
        /* each message in a block of its own size: a read past it is an ASan report */
        char *msg = malloc(len ? len : 1);
        FUZZ_CHECK(msg != NULL);
        memcpy(msg, p, len);
        static const char hdr[] = "MCP-Protocol-Version:";
        if (len >= sizeof(hdr) - 1 && memcmp(msg, hdr, sizeof(hdr) - 1) == 0) {
            const char *v = msg + sizeof(hdr) - 1;
            size_t vl = len - (sizeof(hdr) - 1);
            while (vl && *v == ' ') {
                v++;
                vl--;
            }
            int err = mcp_session_set_version(&s, v, vl);
            FUZZ_CHECK(err == 0 || err == VA_EINVAL);
            FUZZ_CHECK(err || strlen(mcp_session_version(&s)) == vl);
        } else {
            mcp_fz_message(&s, &tools, msg, len, res, calls);
        }
        free(msg);
        FUZZ_CHECK(memchr(s.version, '\0', sizeof(s.version)));
        p += nl ? len + 1 : len;
        left -= nl ? len + 1 : len;
    }
    free(calls);
    free(res);
    fz_tools_deinit(&tools);
    return 0;
}
