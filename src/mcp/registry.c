/* src/mcp/registry.c: the one tool registry, offered over MCP and to the model. */
#include "mcp/registry.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/json.h"
#include "mcp/schema.h"

#define REG_NAME_MAX 64 /* OpenAI function names: ^[A-Za-z0-9_-]{1,64}$ */

void mcp_call_done_init(struct mcp_call_done *done,
                        void (*on_done)(struct mcp_call_done *done,
                                        const struct mcp_call_result *res),
                        void *ud)
{
    memset(done, 0, sizeof(*done));
    done->on_done = on_done;
    done->ud = ud;
}

void mcp_call_complete_text(struct mcp_call_done *done, const char *result_json, size_t len,
                            bool is_error, const char *text, size_t text_len)
{
    struct mcp_call_result res = {
        .json = result_json,
        .len = len,
        .is_error = is_error,
        .text = text,
        .text_len = text ? text_len : 0,
    };
    assert(!done->completed);
    done->completed = true;
    done->on_done(done, &res);
}

void mcp_call_complete(struct mcp_call_done *done, const char *result_json, size_t len,
                       bool is_error)
{
    mcp_call_complete_text(done, result_json, len, is_error, NULL, 0);
}

void mcp_registry_init(struct mcp_registry *r, size_t max)
{
    r->tools = max ? va_xcalloc(max, sizeof(*r->tools)) : NULL;
    r->count = 0;
    r->max = max;
}

static void reg_tool_free(struct mcp_tool *t)
{
    free(t->name);
    free(t->title);
    free(t->description);
    cJSON_Delete(t->input);
    cJSON_Delete(t->output);
    free(t->input_text);
    free(t->output_text);
    free(t->annotations_text);
    memset(t, 0, sizeof(*t));
}

void mcp_registry_deinit(struct mcp_registry *r)
{
    for (size_t i = 0; i < r->count; i++)
        reg_tool_free(&r->tools[i]);
    free(r->tools);
    memset(r, 0, sizeof(*r));
}

static bool reg_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > REG_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Parses a whole JSON text (nothing but whitespace after it). */
static cJSON *reg_parse(const char *text, size_t len)
{
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!v)
        return NULL;
    while (end < text + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (end != text + len) {
        cJSON_Delete(v);
        return NULL;
    }
    return v;
}

/* Parses, checks and re-prints one schema. */
static int reg_schema(const char *text, const char *what, cJSON **parsed, char **compact,
                      struct va_buf *why)
{
    cJSON *s = reg_parse(text, strlen(text));
    const cJSON *type;
    if (!s) {
        if (why)
            va_buf_printf(why, "%s: not valid JSON", what);
        return VA_EINVAL;
    }
    type = cJSON_GetObjectItemCaseSensitive(s, "type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "object") != 0) {
        if (why)
            va_buf_printf(why, "%s: type must be \"object\"", what);
        cJSON_Delete(s);
        return VA_EINVAL;
    }
    if (mcp_schema_check(s, why)) {
        cJSON_Delete(s);
        return VA_EINVAL;
    }
    *parsed = s;
    *compact = cJSON_PrintUnformatted(s);
    if (!*compact)
        abort(); /* cJSON's only failure here is out of memory: va_xmalloc's policy */
    return 0;
}

static int reg_fail(struct va_buf *why, const char *what)
{
    if (why)
        va_buf_append_str(why, what);
    return VA_EINVAL;
}

int mcp_registry_add(struct mcp_registry *r, const struct mcp_tool_def *def, struct va_buf *why)
{
    struct mcp_tool t;
    int err;

    if (!reg_name_ok(def->name))
        return reg_fail(why, "name: 1 to 64 of A-Z a-z 0-9 _ -");
    if (!def->description || !def->description[0])
        return reg_fail(why, "description: required");
    if (!def->call)
        return reg_fail(why, "call: a handler is required");
    if (!def->timeout_ms)
        return reg_fail(why, "timeout_ms: must be > 0");
    if (!(def->offer & MCP_OFFER_BOTH) || (def->offer & ~(unsigned)MCP_OFFER_BOTH))
        return reg_fail(why, "offer: MCP, model or both");
    if (!def->input_schema)
        return reg_fail(why, "input_schema: required");
    if (mcp_registry_find(r, def->name, strlen(def->name), MCP_OFFER_BOTH))
        return reg_fail(why, "name: already registered");
    if (r->count == r->max)
        return VA_EFULL;

    memset(&t, 0, sizeof(t));
    err = reg_schema(def->input_schema, "input_schema", &t.input, &t.input_text, why);
    if (err)
        goto fail;
    if (def->output_schema) {
        err = reg_schema(def->output_schema, "output_schema", &t.output, &t.output_text, why);
        if (err)
            goto fail;
    }
    if (def->annotations) {
        cJSON *a = reg_parse(def->annotations, strlen(def->annotations));
        if (!cJSON_IsObject(a)) {
            cJSON_Delete(a);
            err = reg_fail(why, "annotations: not a JSON object");
            goto fail;
        }
        t.annotations_text = cJSON_PrintUnformatted(a);
        cJSON_Delete(a);
        if (!t.annotations_text)
            abort();
    }
    t.name = va_xstrdup(def->name);
    t.title = def->title ? va_xstrdup(def->title) : NULL;
    t.description = va_xstrdup(def->description);
    t.def = *def;
    t.def.name = t.name;
    t.def.title = t.title;
    t.def.description = t.description;
    t.def.input_schema = t.input_text;
    t.def.output_schema = t.output_text;
    t.def.annotations = t.annotations_text;
    r->tools[r->count++] = t;
    return 0;

fail:
    reg_tool_free(&t);
    return err;
}

const struct mcp_tool *mcp_registry_find(const struct mcp_registry *r, const char *name, size_t len,
                                         unsigned offer)
{
    for (size_t i = 0; i < r->count; i++) {
        const struct mcp_tool *t = &r->tools[i];
        if ((t->def.offer & offer) && strlen(t->name) == len && memcmp(t->name, name, len) == 0)
            return t;
    }
    return NULL;
}

/* Protocol revisions are ISO dates, so they order as strings. */
static bool reg_since(const char *version, const char *rev)
{
    return strcmp(version, rev) >= 0;
}

int mcp_registry_list_mcp(const struct mcp_registry *r, const char *version, struct va_buf *out)
{
    bool first = true;
    int err = va_buf_append_str(out, "{\"tools\":[");
    for (size_t i = 0; i < r->count && !err; i++) {
        const struct mcp_tool *t = &r->tools[i];
        if (!(t->def.offer & MCP_OFFER_MCP))
            continue;
        err = va_buf_append_str(out, first ? "{\"name\":" : ",{\"name\":");
        first = false;
        if (!err)
            err = va_json_str(out, t->name, strlen(t->name));
        if (!err && t->title && reg_since(version, "2025-06-18")) {
            err = va_buf_append_str(out, ",\"title\":");
            if (!err)
                err = va_json_str(out, t->title, strlen(t->title));
        }
        if (!err)
            err = va_buf_append_str(out, ",\"description\":");
        if (!err)
            err = va_json_str(out, t->description, strlen(t->description));
        if (!err)
            err = va_buf_printf(out, ",\"inputSchema\":%s", t->input_text);
        if (!err && t->output_text && reg_since(version, "2025-06-18"))
            err = va_buf_printf(out, ",\"outputSchema\":%s", t->output_text);
        if (!err && t->annotations_text && reg_since(version, "2025-03-26"))
            err = va_buf_printf(out, ",\"annotations\":%s", t->annotations_text);
        if (!err)
            err = va_buf_append_char(out, '}');
    }
    if (!err)
        err = va_buf_append_str(out, "]}");
    return err;
}

int mcp_registry_list_model(const struct mcp_registry *r, struct va_buf *out)
{
    bool first = true;
    int err = va_buf_append_char(out, '[');
    for (size_t i = 0; i < r->count && !err; i++) {
        const struct mcp_tool *t = &r->tools[i];
        if (!(t->def.offer & MCP_OFFER_MODEL))
            continue;
        err = va_buf_append_str(out, first ? "{\"type\":\"function\",\"name\":"
                                           : ",{\"type\":\"function\",\"name\":");
        first = false;
        if (!err)
            err = va_json_str(out, t->name, strlen(t->name));
        if (!err)
            err = va_buf_append_str(out, ",\"description\":");
        if (!err)
            err = va_json_str(out, t->description, strlen(t->description));
        if (!err)
            err = va_buf_printf(out, ",\"parameters\":%s}", t->input_text);
    }
    if (!err)
        err = va_buf_append_char(out, ']');
    return err;
}

int mcp_registry_check_args(const struct mcp_tool *t, const cJSON *args, struct va_buf *text)
{
    struct mcp_schema_report rep;
    cJSON empty = {.type = cJSON_Object};
    int err = mcp_schema_validate(t->input, args ? args : &empty, &rep);
    if (!err || !text)
        return err;
    va_buf_append_str(text, "Invalid arguments: ");
    mcp_schema_format(&rep, MCP_SCHEMA_STYLE_SENTENCE, text);
    va_buf_append_char(text, '.');
    return err;
}

/* Argument failures are sentences of a few fields; a tool's schema is ours, so this
 * bound only cuts a pathological list (cut text is still a valid sentence prefix). */
#define REG_ARGS_TEXT_MAX 1024

static void reg_complete_invalid(struct mcp_call_done *done, struct va_buf *text)
{
    mcp_call_complete_text(done, MCP_RESULT_INVALID_ARGS_JSON,
                           sizeof(MCP_RESULT_INVALID_ARGS_JSON) - 1, true,
                           text->data ? text->data : "Invalid arguments.",
                           text->data ? text->len : sizeof("Invalid arguments.") - 1);
}

int mcp_registry_call(const struct mcp_tool *t, const cJSON *args, const struct mcp_call_ctx *cx,
                      struct mcp_call_done *done)
{
    struct va_buf text;
    cJSON empty = {.type = cJSON_Object};
    struct mcp_call_ctx own = *cx;
    int err;

    va_buf_init(&text, REG_ARGS_TEXT_MAX);
    if (mcp_registry_check_args(t, args, &text)) {
        reg_complete_invalid(done, &text);
        va_buf_deinit(&text);
        return 0;
    }
    va_buf_deinit(&text);
    own.tool = t->name;
    own.timeout_ms = t->def.timeout_ms;
    err = t->def.call(t->def.tool_ud, args ? args : &empty, &own, done);
    if (err) {
        /* the handler did not start, so it never completes: keep on_done's promise */
        assert(!done->completed);
        mcp_call_complete_text(done, MCP_RESULT_INTERNAL_JSON, sizeof(MCP_RESULT_INTERNAL_JSON) - 1,
                               true, MCP_RESULT_INTERNAL_TEXT,
                               sizeof(MCP_RESULT_INTERNAL_TEXT) - 1);
    }
    return err;
}

int mcp_registry_call_json(const struct mcp_tool *t, const char *args_json, size_t len,
                           const struct mcp_call_ctx *cx, struct mcp_call_done *done)
{
    cJSON *args = reg_parse(args_json, len);
    int err;
    if (!args) {
        static const char msg[] = "Invalid arguments: not valid JSON.";
        mcp_call_complete_text(done, MCP_RESULT_INVALID_ARGS_JSON,
                               sizeof(MCP_RESULT_INVALID_ARGS_JSON) - 1, true, msg,
                               sizeof(msg) - 1);
        return 0;
    }
    err = mcp_registry_call(t, args, cx, done);
    cJSON_Delete(args);
    return err;
}
