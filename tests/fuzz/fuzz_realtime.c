/* tests/fuzz/fuzz_realtime.c: the OpenAI Realtime server event parser
 * (src/realtime/events.c).
 *
 * The input is one reassembled text message from the Realtime WebSocket, as the call
 * bridge hands it to rt_event_parse() (src/call/bridge.c). What the bridge then does
 * with the peer's strings on the pure side runs too: item ids go back in truncate and
 * delete events, a function call's name is looked up among the tools offered to the
 * model and its arguments (a JSON text the model wrote) go through the registry and its
 * schema checks (fuzz_tools.h, no I/O), the result goes back as function_call_output,
 * and transcripts become the recap of a rotated session.
 *
 * Oracles besides the sanitizers: a result is 0 with an event or VA_EPROTO/VA_ETOOBIG
 * with a reason; every string of the event is terminated within its array and text_len
 * is what is there; a delta decodes into a buffer of exactly its size and is VA_ETOOBIG
 * one byte short of it; every event built from the peer's strings is JSON; the delta
 * fast path and the cJSON path agree (rt_event_parse_json()). */
#include <stdbool.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/err.h"
#include "mcp/registry.h"
#include "realtime/events.h"

#include "fuzz.h"
#include "fuzz_tools.h"

#define RT_FZ_OUT_MAX (1024 * 1024)

static bool rt_terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

static void rt_check_json(const struct va_buf *out)
{
    cJSON *root = cJSON_ParseWithLength(out->data, out->len);
    if (!root)
        fprintf(stderr, "not JSON: %.*s\n", (int)out->len, out->data);
    FUZZ_CHECK(root != NULL);
    FUZZ_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "type")));
    cJSON_Delete(root);
}

/* Builds one client event with a builder's result err: 0 means JSON in out. */
static void rt_built(struct va_buf *out, int err)
{
    FUZZ_CHECK(err == 0 || err == VA_EINVAL || err == VA_ETOOBIG);
    if (!err)
        rt_check_json(out);
    va_buf_reset(out);
}

struct rt_fz_call {
    struct mcp_call_done done;
    const char *call_id;
    struct va_buf *out;
    int ran;
};

static void rt_fz_on_done(struct mcp_call_done *done, const struct mcp_call_result *r)
{
    struct rt_fz_call *c = done->ud;
    c->ran++;
    rt_built(c->out, rt_build_function_output(c->out, c->call_id, r->json, r->len));
}

/* bridge_function_call(): the tool the model named, run with the model's arguments. */
static void rt_function_call(const struct rt_event *ev, struct va_buf *out)
{
    struct fz_tools tools;
    fz_tools_init(&tools);
    const struct mcp_tool *tool =
        mcp_registry_find(&tools.reg, ev->name, strlen(ev->name), MCP_OFFER_MODEL);
    if (!tool || ev->text_cut) {
        static const char why[] = "{\"success\":false,\"error\":\"no such tool\"}";
        rt_built(out, rt_build_function_output(out, ev->call_id, why, sizeof(why) - 1));
    } else {
        struct rt_fz_call c = {.call_id = ev->call_id, .out = out};
        struct mcp_call_ctx cx = {.origin = MCP_ORIGIN_MODEL,
                                  .tool = tool->def.name,
                                  .idempotency_key = ev->call_id,
                                  .timeout_ms = tool->def.timeout_ms};
        mcp_call_done_init(&c.done, rt_fz_on_done, &c);
        char *args = va_xstrndup(ev->text, ev->text_len);
        (void)mcp_registry_call_json(tool, args, ev->text_len, &cx, &c.done);
        free(args);
        fz_tools_release(&tools);
        FUZZ_CHECK(c.ran == 1);
    }
    fz_tools_deinit(&tools);
}

/* The delta again into buffers of exactly its size and one byte less. */
static void rt_check_delta(const struct rt_event *ev, const uint8_t *msg, size_t size)
{
    size_t n = ev->audio_len;
    if (!n)
        return;
    struct rt_event *again = malloc(sizeof(*again));
    uint8_t *exact = malloc(n);
    uint8_t *tight = malloc(n - 1 ? n - 1 : 1);
    FUZZ_CHECK(again && exact && tight);
    FUZZ_CHECK(rt_event_parse(again, (const char *)msg, size, exact, n, NULL, 0) == 0);
    FUZZ_CHECK(again->type == RT_EV_AUDIO_DELTA && again->audio_len == n);
    FUZZ_CHECK(memcmp(exact, ev->audio, n) == 0);
    FUZZ_CHECK(rt_event_parse(again, (const char *)msg, size, tight, n - 1, NULL, 0) == VA_ETOOBIG);
    FUZZ_CHECK(again->type == RT_EV_NONE);
    free(tight);
    free(exact);
    free(again);
}

/* The delta fast path in rt_event_parse() and the cJSON-only rt_event_parse_json() give
 * the same result on every input. */
static void rt_check_same_path(const uint8_t *data, size_t size, int err, const struct rt_event *ev,
                               size_t cap)
{
    struct rt_event *ref = malloc(sizeof(*ref));
    uint8_t *ra = malloc(cap);
    FUZZ_CHECK(ref && ra);
    int rerr = rt_event_parse_json(ref, (const char *)data, size, ra, cap, NULL, 0);
    FUZZ_CHECK(rerr == err && ref->type == ev->type);
    if (!err) {
        FUZZ_CHECK(strcmp(ref->type_name, ev->type_name) == 0);
        FUZZ_CHECK(strcmp(ref->item_id, ev->item_id) == 0);
        FUZZ_CHECK(strcmp(ref->response_id, ev->response_id) == 0);
        FUZZ_CHECK(ref->audio_len == ev->audio_len && !ref->audio == !ev->audio);
        FUZZ_CHECK(!ev->audio_len || memcmp(ra, ev->audio, ev->audio_len) == 0);
    }
    free(ra);
    free(ref);
}

static void rt_check_event(const struct rt_event *ev)
{
    FUZZ_CHECK(ev->type > RT_EV_NONE && ev->type <= RT_EV_OTHER);
    FUZZ_CHECK(ev->type_name[0] != '\0' && rt_terminated(ev->type_name, sizeof(ev->type_name)));
    FUZZ_CHECK(rt_terminated(ev->item_id, sizeof(ev->item_id)));
    FUZZ_CHECK(rt_terminated(ev->response_id, sizeof(ev->response_id)));
    FUZZ_CHECK(rt_terminated(ev->call_id, sizeof(ev->call_id)));
    FUZZ_CHECK(rt_terminated(ev->name, sizeof(ev->name)));
    FUZZ_CHECK(rt_terminated(ev->session_id, sizeof(ev->session_id)));
    FUZZ_CHECK(rt_terminated(ev->status, sizeof(ev->status)));
    FUZZ_CHECK(rt_terminated(ev->status_reason, sizeof(ev->status_reason)));
    FUZZ_CHECK(rt_terminated(ev->error_type, sizeof(ev->error_type)));
    FUZZ_CHECK(rt_terminated(ev->error_code, sizeof(ev->error_code)));
    FUZZ_CHECK(rt_terminated(ev->error_event_id, sizeof(ev->error_event_id)));
    FUZZ_CHECK(ev->text_len <= RT_TEXT_MAX && ev->text[ev->text_len] == '\0');
    /* a cut backs off at most the 3 continuation bytes of one character */
    FUZZ_CHECK(!ev->text_cut || ev->text_len >= RT_TEXT_MAX - 3);
    FUZZ_CHECK(ev->remaining_requests >= -1 && ev->remaining_tokens >= -1);
    FUZZ_CHECK(ev->audio_ms <= 9007199254740992ull && ev->expires_at <= 9007199254740992ull);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rt_event *ev = malloc(sizeof(*ev));
    /* room for any delta this message holds, as call_shared_new() sizes it for the
     * largest message; on the heap and exact, so ASan sees its edges */
    size_t cap = size / 4 * 3 + 3;
    uint8_t *audio = malloc(cap);
    FUZZ_CHECK(ev && audio);
    char why[160];
    int err = rt_event_parse(ev, (const char *)data, size, audio, cap, why, sizeof(why));
    rt_check_same_path(data, size, err, ev, cap);
    if (err) {
        FUZZ_CHECK(err == VA_EPROTO || err == VA_ETOOBIG);
        FUZZ_CHECK(ev->type == RT_EV_NONE);
        FUZZ_CHECK(why[0] != '\0' && rt_terminated(why, sizeof(why)));
        goto out;
    }
    rt_check_event(ev);

    struct va_buf out;
    va_buf_init(&out, RT_FZ_OUT_MAX);
    switch (ev->type) {
    case RT_EV_AUDIO_DELTA:
        FUZZ_CHECK(ev->audio_len <= cap && ev->audio == audio);
        rt_check_delta(ev, data, size);
        rt_built(&out, rt_build_append(&out, ev->audio, ev->audio_len));
        break;
    case RT_EV_SPEECH_STARTED:
    case RT_EV_AUDIO_DONE:
    case RT_EV_ITEM_TRUNCATED:
        /* barge-in: the playing item is cut where the caller stopped hearing it */
        rt_built(&out, rt_build_truncate(&out, ev->item_id, ev->audio_ms));
        rt_built(&out, rt_build_item_delete(&out, ev->item_id));
        break;
    case RT_EV_FUNCTION_CALL:
        rt_function_call(ev, &out);
        break;
    case RT_EV_TRANSCRIPT_DONE:
    case RT_EV_INPUT_TRANSCRIPT:
        /* session rotation: transcripts come back as the recap */
        rt_built(&out, rt_build_message_item(&out, "system", ev->text, ev->text_len));
        rt_built(&out, rt_build_message_item(&out, "assistant", ev->text, ev->text_len));
        break;
    case RT_EV_ERROR:
        rt_built(&out, rt_build_response_create(&out, ev->text));
        break;
    default:
        break;
    }
    va_buf_deinit(&out);
out:
    free(audio);
    free(ev);
    return 0;
}
