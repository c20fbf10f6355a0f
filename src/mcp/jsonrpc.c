/* src/mcp/jsonrpc.c: MCP over JSON-RPC 2.0 as a pure request -> response engine. */
#include "mcp/jsonrpc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/err.h"
#include "core/json.h"

/* Newest first: the fallback answer for an unknown version is the first. */
static const char *const rpc_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};

/* What server/discover and -32022 list: the modern revision and our newest handshake. */
#define RPC_SUPPORTED "[\"" MCP_VERSION_MODERN "\",\"" MCP_VERSION_LATEST "\"]"

#define RPC_META_VERSION "io.modelcontextprotocol/protocolVersion"
#define RPC_META_CAPS "io.modelcontextprotocol/clientCapabilities"

/* JSON-RPC integer ids are echoed exactly; past 2^53 a double cannot promise that. */
#define RPC_ID_INT_MAX 9007199254740992.0

void mcp_session_init(struct mcp_session *s, const struct mcp_registry *reg,
                      const struct mcp_server_info *info)
{
    memset(s, 0, sizeof(*s));
    s->reg = reg;
    s->info = info;
}

void mcp_session_set_scope(struct mcp_session *s, const char *scope)
{
    snprintf(s->scope, sizeof(s->scope), "%s", scope);
}

const char *mcp_session_version(const struct mcp_session *s)
{
    return s->version[0] ? s->version : MCP_VERSION_DEFAULT;
}

bool mcp_version_supported(const char *v, size_t len)
{
    for (size_t i = 0; i < sizeof(rpc_versions) / sizeof(rpc_versions[0]); i++)
        if (strlen(rpc_versions[i]) == len && memcmp(rpc_versions[i], v, len) == 0)
            return true;
    return false;
}

int mcp_session_set_version(struct mcp_session *s, const char *v, size_t len)
{
    if (!mcp_version_supported(v, len))
        return VA_EINVAL;
    memcpy(s->version, v, len);
    s->version[len] = '\0';
    return 0;
}

/* ---- parsing helpers ---- */

/* Whole-message JSON: valid UTF-8 (MCP is UTF-8 only), no raw NUL, nothing after the value
 * but whitespace. */
static bool rpc_utf8_ok(const unsigned char *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        size_t n;
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            n = 2;
        else if (c >= 0xe0 && c <= 0xef)
            n = 3;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 4;
        else
            return false;
        if (len - i < n)
            return false;
        for (size_t k = 1; k < n; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
        /* overlong 3/4-byte forms, surrogates, past U+10FFFF */
        if ((c == 0xe0 && p[i + 1] < 0xa0) || (c == 0xed && p[i + 1] > 0x9f) ||
            (c == 0xf0 && p[i + 1] < 0x90) || (c == 0xf4 && p[i + 1] > 0x8f))
            return false;
        i += n;
    }
    return true;
}

static cJSON *rpc_parse(const char *msg, size_t len)
{
    const char *end = NULL;
    cJSON *v;
    if (len == 0 || !rpc_utf8_ok((const unsigned char *)msg, len))
        return NULL;
    v = cJSON_ParseWithLengthOpts(msg, len, &end, false);
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

static void rpc_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* See mcp_pending.idempotency_key. Fields are NUL-separated so that no two different
 * inputs hash the same text. */
static void rpc_default_key(const struct mcp_session *s, const struct mcp_id *id, const char *tool,
                            const cJSON *args, char out[MCP_KEY_MAX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char *a = args ? cJSON_PrintUnformatted(args) : NULL;
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    if (!h || !EVP_DigestInit_ex(h, EVP_sha256(), NULL))
        abort(); /* out of memory: va_xmalloc's policy */
    EVP_DigestUpdate(h, s->scope, strlen(s->scope) + 1);
    EVP_DigestUpdate(h, id->json, id->len);
    EVP_DigestUpdate(h, "", 1);
    EVP_DigestUpdate(h, tool, strlen(tool) + 1);
    EVP_DigestUpdate(h, a ? a : "{}", strlen(a ? a : "{}"));
    EVP_DigestFinal_ex(h, md, &mdlen);
    EVP_MD_CTX_free(h);
    free(a);
    size_t n = (size_t)snprintf(out, MCP_KEY_MAX, "auto:");
    for (unsigned int i = 0; i < mdlen && n + 2 < MCP_KEY_MAX; i++, n += 2)
        snprintf(out + n, 3, "%02x", md[i]);
}

/* Stores v as compact JSON. JSON-RPC ids are a string or an exact integer; legacy ids are
 * any JSON value. -1 when it cannot be an id (or is longer than MCP_ID_MAX). */
static int rpc_id_set(struct mcp_id *id, const cJSON *v, bool jsonrpc)
{
    char *text;
    size_t n;
    if (jsonrpc && cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        int k;
        if (!isfinite(d) || floor(d) != d || fabs(d) > RPC_ID_INT_MAX)
            return -1;
        k = snprintf(id->json, sizeof(id->json), "%.0f", d);
        if (k < 0 || (size_t)k >= sizeof(id->json))
            return -1;
        id->len = (size_t)k;
        return 0;
    }
    if (jsonrpc && !cJSON_IsString(v))
        return -1;
    text = cJSON_PrintUnformatted(v);
    if (!text)
        abort(); /* cJSON fails here only when out of memory: va_xmalloc's policy */
    n = strlen(text);
    if (n >= sizeof(id->json)) {
        free(text);
        return -1;
    }
    memcpy(id->json, text, n + 1);
    id->len = n;
    free(text);
    return 0;
}

/* ---- writing helpers ---- */

/* Inside a batch answer, responses after the first are separated by a comma. */
static int rpc_sep(struct va_buf *out, bool batch)
{
    if (batch && out->len > 0 && out->data[out->len - 1] != '[')
        return va_buf_append_char(out, ',');
    return 0;
}

/* {"jsonrpc":"2.0","id":<id>, or the legacy {"id":<id>, */
static int rpc_head(struct va_buf *out, const struct mcp_id *id, bool legacy)
{
    int err = va_buf_append_str(out, legacy ? "{\"id\":" : "{\"jsonrpc\":\"2.0\",\"id\":");
    if (!err)
        err = id ? va_buf_append(out, id->json, id->len) : va_buf_append_str(out, "null");
    return err;
}

static int rpc_error_full(struct va_buf *out, bool batch, bool legacy, const struct mcp_id *id,
                          int code, const char *message, const char *data)
{
    int err = rpc_sep(out, batch);
    if (!err)
        err = rpc_head(out, id, legacy);
    if (!err)
        err = va_buf_printf(out, ",\"error\":{\"code\":%d,\"message\":", code);
    if (!err)
        err = va_json_str(out, message, strlen(message));
    if (!err && data)
        err = va_buf_printf(out, ",\"data\":%s", data);
    if (!err)
        err = va_buf_append_str(out, "}}");
    return err;
}

int mcp_build_error(struct va_buf *out, const struct mcp_id *id, int code, const char *message)
{
    return rpc_error_full(out, false, false, id, code, message, NULL);
}

static int rpc_server_meta(struct va_buf *out, const struct mcp_server_info *info)
{
    int err =
        va_buf_append_str(out, "\"_meta\":{\"io.modelcontextprotocol/serverInfo\":{\"name\":");
    if (!err)
        err = va_json_str(out, info->name, strlen(info->name));
    if (!err)
        err = va_buf_append_str(out, ",\"version\":");
    if (!err)
        err = va_json_str(out, info->version, strlen(info->version));
    if (!err)
        err = va_buf_append_str(out, "}}");
    return err;
}

/* ---- one request ---- */

struct rpc_req {
    struct mcp_session *s;
    struct va_buf *out;
    struct mcp_result *res;
    bool batch;
    bool legacy; /* the tool.call dialect */
    bool modern; /* 2026-07-28, stateless */
    const struct mcp_id *id;
    const char *method;
    const cJSON *params; /* NULL when absent */
};

static int rpc_error(struct rpc_req *q, int code, const char *message)
{
    return rpc_error_full(q->out, q->batch, q->legacy, q->id, code, message, NULL);
}

/* Starts a successful result: head, "result":{ and, when modern, "resultType". */
static int rpc_result_open(struct rpc_req *q)
{
    int err = rpc_sep(q->out, q->batch);
    if (!err)
        err = rpc_head(q->out, q->id, false);
    if (!err)
        err = va_buf_append_str(q->out, q->modern ? ",\"result\":{\"resultType\":\"complete\""
                                                  : ",\"result\":{");
    return err;
}

/* Adds a modern result's trailing serverInfo, then closes result and message. */
static int rpc_result_close(struct rpc_req *q)
{
    int err = 0;
    if (q->modern) {
        err = va_buf_append_char(q->out, ',');
        if (!err)
            err = rpc_server_meta(q->out, q->s->info);
    }
    if (!err)
        err = va_buf_append_str(q->out, "}}");
    return err;
}

static int rpc_initialize(struct rpc_req *q)
{
    struct mcp_session *s = q->s;
    const struct mcp_server_info *info = s->info;
    const cJSON *ver, *client;
    const char *chosen = rpc_versions[0];
    struct va_buf *out = q->out;
    int err;

    /* 2025-03-26: "The initialize request MUST NOT be part of a JSON-RPC batch" */
    if (q->batch)
        return rpc_error(q, MCP_RPC_INVALID_REQUEST, "Invalid Request: initialize in a batch");
    if (s->initialized)
        return rpc_error(q, MCP_RPC_INVALID_REQUEST, "Invalid Request: already initialized");
    if (!cJSON_IsObject(q->params))
        return rpc_error(q, MCP_RPC_INVALID_PARAMS, "Invalid params: params must be an object");
    ver = cJSON_GetObjectItemCaseSensitive(q->params, "protocolVersion");
    if (!cJSON_IsString(ver))
        return rpc_error(q, MCP_RPC_INVALID_PARAMS,
                         "Invalid params: protocolVersion must be a string");
    /* Supported: echo it. Otherwise our newest, not an error: the client decides
     * (what the SDK servers do; reference section 3). */
    if (mcp_version_supported(ver->valuestring, strlen(ver->valuestring)))
        chosen = ver->valuestring;
    client = cJSON_GetObjectItemCaseSensitive(q->params, "clientInfo");
    if (cJSON_IsObject(client)) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(client, "name");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(client, "version");
        if (cJSON_IsString(n))
            rpc_copy(s->client_name, sizeof(s->client_name), n->valuestring);
        if (cJSON_IsString(v))
            rpc_copy(s->client_version, sizeof(s->client_version), v->valuestring);
    }
    rpc_copy(s->version, sizeof(s->version), chosen);
    s->initialized = true;

    err = rpc_result_open(q);
    if (!err)
        err = va_buf_printf(out,
                            "\"protocolVersion\":\"%s\",\"capabilities\":{\"tools\":{"
                            "\"listChanged\":false}},\"serverInfo\":{\"name\":",
                            s->version);
    if (!err)
        err = va_json_str(out, info->name, strlen(info->name));
    if (!err)
        err = va_buf_append_str(out, ",\"version\":");
    if (!err)
        err = va_json_str(out, info->version, strlen(info->version));
    if (!err)
        err = va_buf_append_char(out, '}');
    if (!err && info->instructions) {
        err = va_buf_append_str(out, ",\"instructions\":");
        if (!err)
            err = va_json_str(out, info->instructions, strlen(info->instructions));
    }
    if (!err)
        err = rpc_result_close(q);
    return err;
}

static int rpc_discover(struct rpc_req *q)
{
    int err = rpc_result_open(q);
    if (!err)
        err = va_buf_printf(q->out,
                            ",\"supportedVersions\":" RPC_SUPPORTED
                            ",\"capabilities\":{\"tools\":{}},\"ttlMs\":%lu,\"cacheScope\":"
                            "\"public\"",
                            (unsigned long)q->s->info->ttl_ms);
    if (!err)
        err = rpc_result_close(q);
    return err;
}

static int rpc_tools_list(struct rpc_req *q)
{
    struct va_buf list;
    int err;
    if (q->params && !cJSON_IsObject(q->params))
        return rpc_error(q, MCP_RPC_INVALID_PARAMS, "Invalid params: params must be an object");
    /* one page only: any cursor is one we never issued */
    if (q->params && cJSON_GetObjectItemCaseSensitive(q->params, "cursor"))
        return rpc_error(q, MCP_RPC_INVALID_PARAMS, "Invalid params: unknown cursor");
    va_buf_init(&list, q->out->max);
    err = mcp_registry_list_mcp(q->s->reg,
                                q->modern ? MCP_VERSION_MODERN : mcp_session_version(q->s), &list);
    if (!err)
        err = rpc_result_open(q);
    if (!err && q->modern)
        err = va_buf_append_char(q->out, ',');
    /* the registry writes {"tools":[...]}: splice its members into our result object */
    if (!err)
        err = va_buf_append(q->out, list.data + 1, list.len - 2);
    if (!err && q->modern)
        err = va_buf_printf(q->out, ",\"ttlMs\":%lu,\"cacheScope\":\"public\"",
                            (unsigned long)q->s->info->ttl_ms);
    if (!err)
        err = rpc_result_close(q);
    va_buf_deinit(&list);
    return err;
}

/* Argument failures are answered now, as results: the handler never runs. */
#define RPC_ARGS_TEXT_MAX 1024

static int rpc_tools_call(struct rpc_req *q)
{
    const char *args_key = q->legacy ? "args" : "arguments";
    const cJSON *name, *args, *meta, *key;
    const struct mcp_tool *tool;
    struct mcp_pending p;
    struct va_buf text;
    int err;

    if (!cJSON_IsObject(q->params))
        return rpc_error(q, MCP_RPC_INVALID_PARAMS, "Invalid params: params must be an object");
    name = cJSON_GetObjectItemCaseSensitive(q->params, "name");
    if (!cJSON_IsString(name))
        return rpc_error(q, MCP_RPC_INVALID_PARAMS, "Invalid params: name must be a string");
    args = cJSON_GetObjectItemCaseSensitive(q->params, args_key);
    if (args && !cJSON_IsObject(args))
        return rpc_error(q, MCP_RPC_INVALID_PARAMS,
                         q->legacy ? "Invalid params: args must be an object"
                                   : "Invalid params: arguments must be an object");
    meta = cJSON_GetObjectItemCaseSensitive(q->params, "_meta");
    key = cJSON_IsObject(meta) ? cJSON_GetObjectItemCaseSensitive(meta, "idempotencyKey") : NULL;
    if (key &&
        (!cJSON_IsString(key) || strlen(key->valuestring) >= MCP_KEY_MAX || !key->valuestring[0]))
        return rpc_error(q, MCP_RPC_INVALID_PARAMS,
                         "Invalid params: _meta.idempotencyKey must be a short string");
    tool =
        mcp_registry_find(q->s->reg, name->valuestring, strlen(name->valuestring), MCP_OFFER_MCP);
    if (!tool) {
        struct va_buf msg;
        va_buf_init(&msg, 256);
        va_buf_append_str(&msg, "Unknown tool: ");
        va_buf_append(&msg, name->valuestring, strnlen(name->valuestring, 128));
        err = rpc_error(q, MCP_RPC_INVALID_PARAMS, msg.data);
        va_buf_deinit(&msg);
        return err;
    }

    memset(&p, 0, sizeof(p));
    p.kind = MCP_PENDING_CALL;
    p.dialect =
        q->legacy ? MCP_DIALECT_TOOL_CALL : (q->modern ? MCP_DIALECT_MODERN : MCP_DIALECT_JSONRPC);
    p.id = *q->id;
    p.batch = q->batch;
    p.structured = q->modern || strcmp(mcp_session_version(q->s), "2025-06-18") >= 0;
    p.tool = tool;
    p.info = q->s->info;
    if (key)
        rpc_copy(p.idempotency_key, sizeof(p.idempotency_key), key->valuestring);
    else
        rpc_default_key(q->s, q->id, name->valuestring, args, p.idempotency_key);

    va_buf_init(&text, RPC_ARGS_TEXT_MAX);
    if (mcp_registry_check_args(tool, args, &text)) {
        err = mcp_build_tool_result(q->out, &p, MCP_RESULT_INVALID_ARGS_JSON,
                                    sizeof(MCP_RESULT_INVALID_ARGS_JSON) - 1, true,
                                    text.data ? text.data : "Invalid arguments.",
                                    text.data ? text.len : sizeof("Invalid arguments.") - 1);
        va_buf_deinit(&text);
        return err;
    }
    va_buf_deinit(&text);
    p.args = args ? cJSON_Duplicate(args, true) : cJSON_CreateObject();
    if (!p.args)
        abort(); /* out of memory: va_xmalloc's policy */
    q->res->pending[q->res->count++] = p;
    return 0;
}

/* 2026-07-28: stateless, every request says its version and capabilities in _meta. */
static int rpc_modern(struct rpc_req *q, const cJSON *meta)
{
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(meta, RPC_META_VERSION);
    const cJSON *caps = cJSON_GetObjectItemCaseSensitive(meta, RPC_META_CAPS);
    const char *m = q->method;

    if (!cJSON_IsString(ver))
        return rpc_error(q, MCP_RPC_INVALID_PARAMS,
                         "Invalid params: _meta " RPC_META_VERSION " must be a string");
    if (strcmp(ver->valuestring, MCP_VERSION_MODERN) != 0) {
        struct va_buf data;
        int err;
        va_buf_init(&data, 512);
        va_buf_append_str(&data, "{\"supported\":" RPC_SUPPORTED ",\"requested\":");
        va_json_str(&data, ver->valuestring, strnlen(ver->valuestring, 64));
        err = va_buf_append_char(&data, '}');
        if (!err)
            err = rpc_error_full(q->out, q->batch, false, q->id, MCP_RPC_UNSUPPORTED_VERSION,
                                 "Unsupported protocol version", data.data);
        va_buf_deinit(&data);
        return err;
    }
    if (!cJSON_IsObject(caps))
        return rpc_error(q, MCP_RPC_INVALID_PARAMS,
                         "Invalid params: _meta " RPC_META_CAPS " must be an object");
    if (strcmp(m, "server/discover") == 0)
        return rpc_discover(q);
    if (strcmp(m, "tools/list") == 0)
        return rpc_tools_list(q);
    if (strcmp(m, "tools/call") == 0)
        return rpc_tools_call(q);
    /* initialize, ping and the rest are gone in this revision */
    return rpc_error(q, MCP_RPC_METHOD_NOT_FOUND, "Method not found");
}

static void rpc_notification(struct rpc_req *q)
{
    struct mcp_session *s = q->s;
    if (strcmp(q->method, "notifications/initialized") == 0) {
        s->ready = true;
    } else if (strcmp(q->method, "notifications/cancelled") == 0 && cJSON_IsObject(q->params)) {
        const cJSON *rid = cJSON_GetObjectItemCaseSensitive(q->params, "requestId");
        struct mcp_pending *p = &q->res->pending[q->res->count];
        if (!rid || q->res->count == MCP_BATCH_MAX)
            return;
        memset(p, 0, sizeof(*p));
        if (rpc_id_set(&p->id, rid, true))
            return;
        p->kind = MCP_PENDING_CANCEL;
        q->res->count++;
    }
    /* every other notification is ignored: a notification is never answered */
}

static bool rpc_has_modern_meta(const cJSON *params)
{
    const cJSON *meta =
        cJSON_IsObject(params) ? cJSON_GetObjectItemCaseSensitive(params, "_meta") : NULL;
    return cJSON_IsObject(meta) && cJSON_GetObjectItemCaseSensitive(meta, RPC_META_VERSION);
}

/* One message object (or batch element). */
static int rpc_one(struct mcp_session *s, const cJSON *msg, bool batch, struct va_buf *out,
                   struct mcp_result *res)
{
    struct rpc_req q = {.s = s, .out = out, .res = res, .batch = batch};
    const cJSON *jv, *idv, *method;
    struct mcp_id id;

    if (!cJSON_IsObject(msg))
        return rpc_error(&q, MCP_RPC_INVALID_REQUEST, "Invalid Request");
    jv = cJSON_GetObjectItemCaseSensitive(msg, "jsonrpc");
    idv = cJSON_GetObjectItemCaseSensitive(msg, "id");
    method = cJSON_GetObjectItemCaseSensitive(msg, "method");

    /* the seed's dialect: no "jsonrpc", "method":"tool.call", any id; never in a batch */
    if (!jv && !batch && cJSON_IsString(method) && strcmp(method->valuestring, "tool.call") == 0) {
        q.legacy = true;
        if (!idv || rpc_id_set(&id, idv, false))
            return rpc_error(&q, MCP_RPC_INVALID_REQUEST, "Invalid Request");
        q.id = &id;
        q.method = method->valuestring;
        q.params = cJSON_GetObjectItemCaseSensitive(msg, "params");
        return rpc_tools_call(&q);
    }

    /* an id we cannot echo exactly is answered with null, as JSON-RPC says */
    if (idv && !rpc_id_set(&id, idv, true))
        q.id = &id;
    if (idv && !q.id)
        return rpc_error(&q, MCP_RPC_INVALID_REQUEST, "Invalid Request");
    if (!cJSON_IsString(jv) || strcmp(jv->valuestring, "2.0") != 0)
        return rpc_error(&q, MCP_RPC_INVALID_REQUEST, "Invalid Request");
    if (!method) {
        /* a response to us: we send no requests, so there is nothing to match */
        if (idv && (cJSON_GetObjectItemCaseSensitive(msg, "result") ||
                    cJSON_GetObjectItemCaseSensitive(msg, "error")))
            return 0;
        return rpc_error(&q, MCP_RPC_INVALID_REQUEST, "Invalid Request");
    }
    if (!cJSON_IsString(method))
        return rpc_error(&q, MCP_RPC_INVALID_REQUEST, "Invalid Request");
    q.method = method->valuestring;
    q.params = cJSON_GetObjectItemCaseSensitive(msg, "params");

    if (!idv) {
        rpc_notification(&q);
        return 0;
    }
    if (rpc_has_modern_meta(q.params)) {
        q.modern = true;
        return rpc_modern(&q, cJSON_GetObjectItemCaseSensitive(q.params, "_meta"));
    }
    if (strcmp(q.method, "initialize") == 0)
        return rpc_initialize(&q);
    /* tolerated before notifications/initialized, and before initialize too: the
     * WebSocket path and header-less HTTP run without a handshake */
    if (strcmp(q.method, "ping") == 0) {
        int err = rpc_result_open(&q);
        if (!err)
            err = rpc_result_close(&q);
        return err;
    }
    if (strcmp(q.method, "tools/list") == 0)
        return rpc_tools_list(&q);
    if (strcmp(q.method, "tools/call") == 0)
        return rpc_tools_call(&q);
    return rpc_error(&q, MCP_RPC_METHOD_NOT_FOUND, "Method not found");
}

int mcp_handle(struct mcp_session *s, const char *msg, size_t len, struct va_buf *out,
               struct mcp_result *res)
{
    cJSON *root;
    int err = 0;

    memset(res, 0, sizeof(*res));
    res->start = out->len;
    root = rpc_parse(msg, len);
    if (!root)
        return rpc_error_full(out, false, false, NULL, MCP_RPC_PARSE_ERROR, "Parse error", NULL);
    if (!cJSON_IsArray(root)) {
        err = rpc_one(s, root, false, out, res);
        goto out;
    }
    /* batches: only the 2025-03-26 revision has them; an empty one is one Invalid Request */
    if (strcmp(mcp_session_version(s), "2025-03-26") != 0 || cJSON_GetArraySize(root) == 0 ||
        cJSON_GetArraySize(root) > MCP_BATCH_MAX) {
        err = rpc_error_full(out, false, false, NULL, MCP_RPC_INVALID_REQUEST, "Invalid Request",
                             NULL);
        goto out;
    }
    res->batch = true;
    err = va_buf_append_char(out, '[');
    const cJSON *e;
    cJSON_ArrayForEach(e, root)
    {
        if (err)
            break;
        err = rpc_one(s, e, true, out, res);
    }
out:
    cJSON_Delete(root);
    return err;
}

int mcp_finish(const struct mcp_result *res, struct va_buf *out)
{
    if (!res->batch)
        return 0;
    if (out->len == res->start + 1) {
        /* only notifications: no body at all (HTTP 202) */
        out->len = res->start;
        if (out->data)
            out->data[out->len] = '\0';
        return 0;
    }
    return va_buf_append_char(out, ']');
}

void mcp_result_deinit(struct mcp_result *res)
{
    for (size_t i = 0; i < res->count; i++) {
        cJSON_Delete(res->pending[i].args);
        res->pending[i].args = NULL;
    }
    res->count = 0;
}

int mcp_pending_start(struct mcp_pending *p, struct mcp_call_done *done)
{
    struct mcp_call_ctx cx = {
        .origin = MCP_ORIGIN_MCP,
        .tool = p->tool->name,
        .idempotency_key = p->idempotency_key[0] ? p->idempotency_key : NULL,
        .timeout_ms = p->tool->def.timeout_ms,
    };
    int err = mcp_registry_call(p->tool, p->args, &cx, done);
    cJSON_Delete(p->args);
    p->args = NULL;
    return err;
}

/* The legacy dialect's failure: the result object plus the sentence as "message". */
static int rpc_legacy_failure(struct va_buf *out, cJSON *v, const char *text, size_t text_len)
{
    char *s;
    int err;
    if (text && cJSON_IsObject(v) && !cJSON_GetObjectItemCaseSensitive(v, "message")) {
        char *t = va_xstrndup(text, text_len);
        cJSON_AddStringToObject(v, "message", t);
        free(t);
    }
    s = cJSON_PrintUnformatted(v);
    if (!s)
        abort();
    err = va_buf_append_str(out, s);
    free(s);
    return err;
}

int mcp_build_tool_result(struct va_buf *out, const struct mcp_pending *p, const char *result_json,
                          size_t len, bool is_error, const char *text, size_t text_len)
{
    bool modern = p->dialect == MCP_DIALECT_MODERN;
    bool legacy = p->dialect == MCP_DIALECT_TOOL_CALL;
    cJSON *v = rpc_parse(result_json, len);
    int err;

    if (!v)
        return rpc_error_full(out, p->batch, legacy, &p->id, MCP_RPC_INTERNAL_ERROR,
                              "Internal error", NULL);
    err = rpc_sep(out, p->batch);
    if (!err)
        err = rpc_head(out, &p->id, legacy);
    if (!err)
        err = va_buf_append_str(out, ",\"result\":");
    if (legacy) {
        if (!err && is_error && text)
            err = rpc_legacy_failure(out, v, text, text_len);
        else if (!err)
            err = va_buf_append(out, result_json, len);
        if (!err)
            err = va_buf_append_char(out, '}');
        goto done;
    }
    if (!err)
        err = va_buf_append_str(out, modern ? "{\"resultType\":\"complete\",\"content\":[{\"type\":"
                                              "\"text\",\"text\":"
                                            : "{\"content\":[{\"type\":\"text\",\"text\":");
    if (!err)
        err = text ? va_json_str(out, text, text_len) : va_json_str(out, result_json, len);
    if (!err)
        err = va_buf_append_str(out, "}]");
    /* legacy revisions want an object here; 2026-07-28 takes any JSON value */
    if (!err && p->structured && (modern || cJSON_IsObject(v))) {
        err = va_buf_append_str(out, ",\"structuredContent\":");
        if (!err)
            err = va_buf_append(out, result_json, len);
    }
    if (!err)
        err = va_buf_append_str(out, is_error ? ",\"isError\":true" : ",\"isError\":false");
    if (!err && modern) {
        err = va_buf_append_char(out, ',');
        if (!err)
            err = rpc_server_meta(out, p->info);
    }
    if (!err)
        err = va_buf_append_str(out, "}}");
done:
    cJSON_Delete(v);
    return err;
}

int mcp_build_call_result(struct va_buf *out, const struct mcp_pending *p,
                          const struct mcp_call_result *r)
{
    return mcp_build_tool_result(out, p, r->json, r->len, r->is_error, r->text, r->text_len);
}

/* ---- mcp_peek ---- */

static void rpc_peek_one(const cJSON *m, struct mcp_peek *pk, bool first)
{
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(m, "method");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(m, "params");
    if (!cJSON_IsObject(m) || !cJSON_IsString(method) || id)
        /* requests, and anything malformed, get an answer; responses do not */
        if (!(cJSON_IsObject(m) && !method && id))
            pk->expects_response = true;
    if (!first)
        return;
    if (cJSON_IsString(method))
        rpc_copy(pk->method, sizeof(pk->method), method->valuestring);
    if (cJSON_IsObject(params)) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(params, "name");
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(params, "_meta");
        const cJSON *ver =
            cJSON_IsObject(meta) ? cJSON_GetObjectItemCaseSensitive(meta, RPC_META_VERSION) : NULL;
        if (cJSON_IsString(name))
            rpc_copy(pk->name, sizeof(pk->name), name->valuestring);
        if (cJSON_IsString(ver))
            rpc_copy(pk->meta_version, sizeof(pk->meta_version), ver->valuestring);
    }
}

int mcp_peek(const char *msg, size_t len, struct mcp_peek *pk)
{
    cJSON *root = rpc_parse(msg, len);
    memset(pk, 0, sizeof(*pk));
    if (!root)
        return VA_EPROTO;
    if (cJSON_IsArray(root)) {
        const cJSON *e;
        pk->batch = true;
        if (cJSON_GetArraySize(root) == 0)
            pk->expects_response = true;
        cJSON_ArrayForEach(e, root)
        {
            rpc_peek_one(e, pk, false);
        }
    } else {
        rpc_peek_one(root, pk, true);
    }
    cJSON_Delete(root);
    return 0;
}
