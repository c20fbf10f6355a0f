/* src/realtime/events.c: OpenAI Realtime (GA) events, built and parsed (pure).
 * Shapes: ../shared/reference/openai-realtime.md §2, §3, §4, §5, §10. */
#include "realtime/events.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/err.h"
#include "core/json.h"
#include "twilio/media.h"

#define LIT(s) s, sizeof(s) - 1

/* --- builders --- */

/* A builder appends piece after piece; the first failure sticks and later pieces are
 * skipped, so each builder tests err once and rewinds once. */
struct rt_w {
    struct va_buf *out;
    size_t start;
    int err;
};

static void rt_w_raw(struct rt_w *w, const char *s, size_t n)
{
    if (!w->err)
        w->err = va_buf_append(w->out, s, n);
}
#define RT_W_LIT(w, s) rt_w_raw((w), LIT(s))

/* A quoted, escaped JSON string. */
static void rt_w_str(struct rt_w *w, const char *s, size_t n)
{
    if (!w->err)
        w->err = va_json_str(w->out, s, n);
}

static void rt_w_cstr(struct rt_w *w, const char *s)
{
    rt_w_str(w, s, strlen(s));
}

static void rt_w_u64(struct rt_w *w, uint64_t v)
{
    char s[24];
    int n = snprintf(s, sizeof(s), "%" PRIu64, v);
    rt_w_raw(w, s, (size_t)n);
}

/* The shortest "%g" text that reads back as v, so 0.6 goes out as 0.6 and not as
 * 0.59999999999999998. v is finite (checked by the caller). The daemon never calls
 * setlocale(), so the decimal point is '.'. */
static void rt_w_double(struct rt_w *w, double v)
{
    char s[32];
    int n = 0;
    for (int prec = 1; prec <= 17; prec++) {
        n = snprintf(s, sizeof(s), "%.*g", prec, v);
        if (strtod(s, NULL) == v)
            break;
    }
    rt_w_raw(w, s, (size_t)n);
}

static void rt_w_bool(struct rt_w *w, bool v)
{
    if (v)
        RT_W_LIT(w, "true");
    else
        RT_W_LIT(w, "false");
}

static void rt_w_begin(struct rt_w *w, struct va_buf *out)
{
    w->out = out;
    w->start = out->len;
    w->err = 0;
}

/* Leaves out as it was when the builder failed. */
static int rt_w_end(struct rt_w *w)
{
    if (w->err) {
        w->out->len = w->start;
        if (w->out->data)
            w->out->data[w->start] = '\0';
    }
    return w->err;
}

static bool rt_in(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (!strcmp(s, *set))
            return true;
    return false;
}

/* 1..max bytes, NUL-terminated. */
static bool rt_arg_ok(const char *s, size_t max)
{
    return s && s[0] && strnlen(s, max + 1) <= max;
}

/* tools_json must be one JSON array, whitespace around it allowed. */
static bool rt_tools_ok(const char *json)
{
    size_t len = strlen(json);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    bool ok = root && cJSON_IsArray(root);
    for (size_t i = end ? (size_t)(end - json) : len; ok && i < len; i++)
        ok = json[i] == ' ' || json[i] == '\t' || json[i] == '\n' || json[i] == '\r';
    cJSON_Delete(root);
    return ok;
}

static bool rt_session_cfg_ok(const struct rt_session_cfg *cfg, const char *event_id)
{
    static const char *const eagerness[] = {"low", "medium", "high", "auto", NULL};
    static const char *const noise[] = {"near_field", "far_field", NULL};
    if (event_id && !rt_arg_ok(event_id, RT_EVENT_ID_MAX))
        return false;
    if (cfg->format != RT_FMT_PCMU && cfg->format != RT_FMT_PCM24)
        return false;
    if (!rt_arg_ok(cfg->voice, RT_ID_MAX))
        return false;
    switch (cfg->vad) {
    case RT_VAD_SERVER:
        /* written this way round, NaN fails too */
        if (!(cfg->vad_threshold >= 0.0 && cfg->vad_threshold <= 1.0))
            return false;
        break;
    case RT_VAD_SEMANTIC:
        if (!cfg->vad_eagerness || !rt_in(cfg->vad_eagerness, eagerness))
            return false;
        break;
    case RT_VAD_NONE:
        break;
    default:
        return false;
    }
    if (cfg->noise_reduction && !rt_in(cfg->noise_reduction, noise))
        return false;
    if (cfg->transcription_model && !cfg->transcription_model[0])
        return false;
    if (cfg->transcription_model && cfg->transcription_language && !cfg->transcription_language[0])
        return false;
    if (cfg->tools_json && !rt_tools_ok(cfg->tools_json))
        return false;
    return true;
}

static void rt_w_format(struct rt_w *w, enum rt_audio_format f)
{
    if (f == RT_FMT_PCMU)
        RT_W_LIT(w, "{\"type\":\"audio/pcmu\"}");
    else
        RT_W_LIT(w, "{\"type\":\"audio/pcm\",\"rate\":24000}");
}

static void rt_w_turn_detection(struct rt_w *w, const struct rt_session_cfg *cfg)
{
    switch (cfg->vad) {
    case RT_VAD_SERVER:
        RT_W_LIT(w, "{\"type\":\"server_vad\",\"threshold\":");
        rt_w_double(w, cfg->vad_threshold);
        RT_W_LIT(w, ",\"prefix_padding_ms\":");
        rt_w_u64(w, cfg->vad_prefix_padding_ms);
        RT_W_LIT(w, ",\"silence_duration_ms\":");
        rt_w_u64(w, cfg->vad_silence_ms);
        RT_W_LIT(w, ",\"idle_timeout_ms\":null");
        break;
    case RT_VAD_SEMANTIC:
        RT_W_LIT(w, "{\"type\":\"semantic_vad\",\"eagerness\":");
        rt_w_cstr(w, cfg->vad_eagerness);
        break;
    case RT_VAD_NONE:
        RT_W_LIT(w, "null");
        return;
    }
    RT_W_LIT(w, ",\"create_response\":");
    rt_w_bool(w, cfg->create_response);
    RT_W_LIT(w, ",\"interrupt_response\":");
    rt_w_bool(w, cfg->interrupt_response);
    RT_W_LIT(w, "}");
}

int rt_build_session_update(struct va_buf *out, const struct rt_session_cfg *cfg,
                            const char *event_id)
{
    if (!cfg || !rt_session_cfg_ok(cfg, event_id))
        return VA_EINVAL;
    struct rt_w w;
    rt_w_begin(&w, out);
    RT_W_LIT(&w, "{\"type\":\"session.update\"");
    if (event_id) {
        RT_W_LIT(&w, ",\"event_id\":");
        rt_w_cstr(&w, event_id);
    }
    RT_W_LIT(&w, ",\"session\":{\"type\":\"realtime\"");
    if (cfg->instructions) {
        RT_W_LIT(&w, ",\"instructions\":");
        rt_w_cstr(&w, cfg->instructions);
    }
    RT_W_LIT(&w, ",\"output_modalities\":[\"audio\"],\"audio\":{\"input\":{\"format\":");
    rt_w_format(&w, cfg->format);
    RT_W_LIT(&w, ",\"noise_reduction\":");
    if (cfg->noise_reduction) {
        RT_W_LIT(&w, "{\"type\":");
        rt_w_cstr(&w, cfg->noise_reduction);
        RT_W_LIT(&w, "}");
    } else {
        RT_W_LIT(&w, "null");
    }
    RT_W_LIT(&w, ",\"transcription\":");
    if (cfg->transcription_model) {
        RT_W_LIT(&w, "{\"model\":");
        rt_w_cstr(&w, cfg->transcription_model);
        if (cfg->transcription_language) {
            RT_W_LIT(&w, ",\"language\":");
            rt_w_cstr(&w, cfg->transcription_language);
        }
        RT_W_LIT(&w, "}");
    } else {
        RT_W_LIT(&w, "null");
    }
    RT_W_LIT(&w, ",\"turn_detection\":");
    rt_w_turn_detection(&w, cfg);
    RT_W_LIT(&w, "},\"output\":{\"format\":");
    rt_w_format(&w, cfg->format);
    RT_W_LIT(&w, ",\"voice\":");
    rt_w_cstr(&w, cfg->voice);
    RT_W_LIT(&w, "}},\"tools\":");
    if (cfg->tools_json)
        rt_w_raw(&w, cfg->tools_json, strlen(cfg->tools_json));
    else
        RT_W_LIT(&w, "[]");
    RT_W_LIT(&w, ",\"tool_choice\":\"auto\"}}");
    return rt_w_end(&w);
}

int rt_build_append(struct va_buf *out, const uint8_t *audio, size_t len)
{
    static const char head[] = "{\"type\":\"input_audio_buffer.append\",\"audio\":\"";
    static const char tail[] = "\"}";
    if (!audio && len)
        return VA_EINVAL;
    /* past this the encoded length overflows; no buffer gets near it anyway */
    if (len > SIZE_MAX / 2)
        return VA_ETOOBIG;
    size_t enc = tw_b64_encoded_len(len);
    size_t total = sizeof(head) - 1 + enc + sizeof(tail) - 1;
    if (total < enc)
        return VA_ETOOBIG;
    /* 50 per second per call: one reserve, then the base64 is written in place */
    int err = va_buf_reserve(out, total);
    if (err)
        return err;
    char *p = out->data + out->len;
    memcpy(p, head, sizeof(head) - 1);
    p += sizeof(head) - 1;
    p += tw_b64_encode(p, audio, len);
    memcpy(p, tail, sizeof(tail) - 1);
    out->len += total;
    out->data[out->len] = '\0';
    return 0;
}

int rt_build_commit(struct va_buf *out)
{
    return va_buf_append(out, LIT("{\"type\":\"input_audio_buffer.commit\"}"));
}

int rt_build_response_create(struct va_buf *out, const char *instructions)
{
    struct rt_w w;
    rt_w_begin(&w, out);
    RT_W_LIT(&w, "{\"type\":\"response.create\"");
    if (instructions) {
        RT_W_LIT(&w, ",\"response\":{\"instructions\":");
        rt_w_cstr(&w, instructions);
        RT_W_LIT(&w, "}");
    }
    RT_W_LIT(&w, "}");
    return rt_w_end(&w);
}

int rt_build_response_cancel(struct va_buf *out)
{
    return va_buf_append(out, LIT("{\"type\":\"response.cancel\"}"));
}

int rt_build_truncate(struct va_buf *out, const char *item_id, uint64_t audio_end_ms)
{
    if (!rt_arg_ok(item_id, RT_ID_MAX))
        return VA_EINVAL;
    struct rt_w w;
    rt_w_begin(&w, out);
    RT_W_LIT(&w, "{\"type\":\"conversation.item.truncate\",\"item_id\":");
    rt_w_cstr(&w, item_id);
    RT_W_LIT(&w, ",\"content_index\":0,\"audio_end_ms\":");
    rt_w_u64(&w, audio_end_ms);
    RT_W_LIT(&w, "}");
    return rt_w_end(&w);
}

int rt_build_item_delete(struct va_buf *out, const char *item_id)
{
    if (!rt_arg_ok(item_id, RT_ID_MAX))
        return VA_EINVAL;
    struct rt_w w;
    rt_w_begin(&w, out);
    RT_W_LIT(&w, "{\"type\":\"conversation.item.delete\",\"item_id\":");
    rt_w_cstr(&w, item_id);
    RT_W_LIT(&w, "}");
    return rt_w_end(&w);
}

int rt_build_function_output(struct va_buf *out, const char *call_id, const char *output,
                             size_t output_len)
{
    if (!rt_arg_ok(call_id, RT_ID_MAX) || (!output && output_len))
        return VA_EINVAL;
    struct rt_w w;
    rt_w_begin(&w, out);
    RT_W_LIT(&w,
             "{\"type\":\"conversation.item.create\",\"item\":{\"type\":\"function_call_output\","
             "\"call_id\":");
    rt_w_cstr(&w, call_id);
    RT_W_LIT(&w, ",\"output\":");
    rt_w_str(&w, output ? output : "", output_len);
    RT_W_LIT(&w, "}}");
    return rt_w_end(&w);
}

int rt_build_message_item(struct va_buf *out, const char *role, const char *text, size_t len)
{
    const char *part;
    if (!role || (!text && len))
        return VA_EINVAL;
    if (!strcmp(role, "user") || !strcmp(role, "system"))
        part = "input_text";
    else if (!strcmp(role, "assistant"))
        part = "output_text";
    else
        return VA_EINVAL;
    struct rt_w w;
    rt_w_begin(&w, out);
    RT_W_LIT(&w, "{\"type\":\"conversation.item.create\",\"item\":{\"type\":\"message\",\"role\":");
    rt_w_cstr(&w, role);
    RT_W_LIT(&w, ",\"content\":[{\"type\":");
    rt_w_cstr(&w, part);
    RT_W_LIT(&w, ",\"text\":");
    rt_w_str(&w, text ? text : "", len);
    RT_W_LIT(&w, "}]}}");
    return rt_w_end(&w);
}

/* --- parser --- */

/* Where a parse reports its reason; type prefixes every reason once it is known. */
struct rt_parse {
    char *errbuf;
    size_t errbuf_len;
    const char *type;
};

__attribute__((format(printf, 3, 4))) static int rt_fail(struct rt_parse *p, int err,
                                                         const char *fmt, ...)
{
    if (p->errbuf && p->errbuf_len) {
        size_t off = 0;
        if (p->type) {
            int n = snprintf(p->errbuf, p->errbuf_len, "%s: ", p->type);
            off = n < 0 ? 0 : (size_t)n < p->errbuf_len ? (size_t)n : p->errbuf_len - 1;
        }
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->errbuf + off, p->errbuf_len - off, fmt, ap);
        va_end(ap);
    }
    return err;
}

/* "parent.key" in reasons; parent is NULL for top-level keys. */
#define RT_PATH_FMT "%s%s%s"
#define RT_PATH(parent, key) (parent) ? (parent) : "", (parent) ? "." : "", (key)

enum {
    RT_OPT = 0,      /* absent is fine; present must have the right type */
    RT_REQ = 1,      /* absent is an error; strings copied as ids must be non-empty */
    RT_NULLABLE = 2, /* null counts as absent */
};

/* 0 with *out the member, or NULL when it is absent (or null and nullable). */
static int rt_find(struct rt_parse *p, const cJSON *obj, const char *parent, const char *key,
                   unsigned flags, const cJSON **out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (it && (flags & RT_NULLABLE) && cJSON_IsNull(it))
        it = NULL;
    if (!it && (flags & RT_REQ))
        return rt_fail(p, VA_EPROTO, RT_PATH_FMT " missing", RT_PATH(parent, key));
    *out = it;
    return 0;
}

static int rt_object(struct rt_parse *p, const cJSON *obj, const char *parent, const char *key,
                     unsigned flags, const cJSON **out)
{
    int err = rt_find(p, obj, parent, key, flags, out);
    if (!err && *out && !cJSON_IsObject(*out))
        err = rt_fail(p, VA_EPROTO, RT_PATH_FMT " not an object", RT_PATH(parent, key));
    return err;
}

/* *s is NULL when the member is absent; cJSON NUL-terminates strings. */
static int rt_string(struct rt_parse *p, const cJSON *obj, const char *parent, const char *key,
                     unsigned flags, const char **s, size_t *len)
{
    const cJSON *it;
    *s = NULL;
    *len = 0;
    int err = rt_find(p, obj, parent, key, flags, &it);
    if (err || !it)
        return err;
    if (!cJSON_IsString(it) || !it->valuestring)
        return rt_fail(p, VA_EPROTO, RT_PATH_FMT " not a string", RT_PATH(parent, key));
    *s = it->valuestring;
    *len = strlen(it->valuestring);
    return 0;
}

/* An id, code or status copied into dst[max + 1]; longer is VA_ETOOBIG, absent leaves
 * dst empty. */
static int rt_id(struct rt_parse *p, const cJSON *obj, const char *parent, const char *key,
                 unsigned flags, char *dst, size_t max)
{
    const char *s;
    size_t len;
    int err = rt_string(p, obj, parent, key, flags, &s, &len);
    if (err || !s)
        return err;
    if (len > max)
        return rt_fail(p, VA_ETOOBIG, RT_PATH_FMT " too long (%zu bytes, at most %zu)",
                       RT_PATH(parent, key), len, max);
    if (len == 0 && (flags & RT_REQ))
        return rt_fail(p, VA_EPROTO, RT_PATH_FMT " empty", RT_PATH(parent, key));
    memcpy(dst, s, len);
    dst[len] = '\0';
    return 0;
}

/* Copies s[0, len) into dst[max + 1], cut when longer at the start of a UTF-8
 * sequence (at most 3 bytes back, so invalid UTF-8 cannot walk further). Returns
 * the bytes kept. */
static size_t rt_cut_copy(char *dst, size_t max, const char *s, size_t len, bool *cut)
{
    size_t n = len;
    *cut = false;
    if (n > max) {
        n = max;
        for (int k = 0; k < 3 && n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80; k++)
            n--;
        *cut = true;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
    return n;
}

/* Transcripts, arguments and messages into ev->text: cut, never refused, for size. */
static int rt_text(struct rt_parse *p, const cJSON *obj, const char *parent, const char *key,
                   unsigned flags, struct rt_event *ev)
{
    const char *s;
    size_t len;
    int err = rt_string(p, obj, parent, key, flags, &s, &len);
    if (err || !s)
        return err;
    ev->text_len = rt_cut_copy(ev->text, RT_TEXT_MAX, s, len, &ev->text_cut);
    return 0;
}

/* A JSON number holding an integer in 0..2^53 (exact in a double); absent leaves *out. */
static int rt_uint(struct rt_parse *p, const cJSON *obj, const char *parent, const char *key,
                   unsigned flags, uint64_t *out)
{
    const cJSON *it;
    int err = rt_find(p, obj, parent, key, flags, &it);
    if (err || !it)
        return err;
    if (!cJSON_IsNumber(it))
        return rt_fail(p, VA_EPROTO, RT_PATH_FMT " not a number", RT_PATH(parent, key));
    double d = it->valuedouble;
    /* the range test comes first, so the cast is defined (and NaN fails it) */
    if (!(d >= 0.0 && d <= 9007199254740992.0) || (double)(uint64_t)d != d)
        return rt_fail(p, VA_EPROTO, RT_PATH_FMT " not a non-negative integer",
                       RT_PATH(parent, key));
    *out = (uint64_t)d;
    return 0;
}

static int rt_item_id(struct rt_parse *p, const cJSON *root, struct rt_event *ev)
{
    return rt_id(p, root, NULL, "item_id", RT_REQ, ev->item_id, RT_ID_MAX);
}

static int rt_response_item(struct rt_parse *p, const cJSON *root, struct rt_event *ev)
{
    int err = rt_id(p, root, NULL, "response_id", RT_REQ, ev->response_id, RT_ID_MAX);
    if (!err)
        err = rt_item_id(p, root, ev);
    return err;
}

/* One direction's format: *known false for formats this bridge does not speak
 * (audio/pcma, or a rate other than 24000). */
static int rt_format(struct rt_parse *p, const cJSON *audio, const char *dir,
                     enum rt_audio_format *fmt, bool *known)
{
    char parent[40], fparent[48];
    const cJSON *d, *f, *rate;
    const char *t;
    size_t tlen;
    *known = false;
    snprintf(parent, sizeof(parent), "session.audio.%s", dir);
    snprintf(fparent, sizeof(fparent), "session.audio.%s.format", dir);
    int err = rt_object(p, audio, "session.audio", dir, RT_OPT, &d);
    if (!err && d)
        err = rt_object(p, d, parent, "format", RT_OPT, &f);
    else
        f = NULL;
    if (!err && f)
        err = rt_string(p, f, fparent, "type", RT_REQ, &t, &tlen);
    if (err || !f)
        return err;
    if (!strcmp(t, "audio/pcmu")) {
        *fmt = RT_FMT_PCMU;
        *known = true;
    } else if (!strcmp(t, "audio/pcm")) {
        rate = cJSON_GetObjectItemCaseSensitive(f, "rate");
        *fmt = RT_FMT_PCM24;
        *known = !rate || (cJSON_IsNumber(rate) && rate->valuedouble == 24000.0);
    }
    return 0;
}

static int rt_session(struct rt_parse *p, struct rt_event *ev, const cJSON *root, bool created)
{
    const cJSON *s, *audio = NULL;
    bool in_known = false, out_known = false;
    int err = rt_object(p, root, NULL, "session", RT_REQ, &s);
    if (!err)
        err = rt_id(p, s, "session", "id", created ? RT_REQ : RT_OPT, ev->session_id, RT_ID_MAX);
    if (!err)
        err = rt_uint(p, s, "session", "expires_at", RT_OPT, &ev->expires_at);
    if (!err)
        err = rt_object(p, s, "session", "audio", RT_OPT, &audio);
    if (!err && audio)
        err = rt_format(p, audio, "input", &ev->in_format, &in_known);
    if (!err && audio)
        err = rt_format(p, audio, "output", &ev->out_format, &out_known);
    ev->formats_known = in_known && out_known;
    return err;
}

static int rt_speech(struct rt_parse *p, struct rt_event *ev, const cJSON *root, const char *key)
{
    int err = rt_uint(p, root, NULL, key, RT_REQ, &ev->audio_ms);
    if (!err)
        err = rt_item_id(p, root, ev);
    return err;
}

/* type, code, message and event_id of an error object. The error event guarantees
 * type and message (reference §5); inside a failed transcription or response every
 * member is taken when present. */
static int rt_error_obj(struct rt_parse *p, struct rt_event *ev, const cJSON *e, const char *parent,
                        bool strict)
{
    unsigned req = strict ? RT_REQ : RT_NULLABLE;
    int err = rt_id(p, e, parent, "type", req, ev->error_type, RT_CODE_MAX);
    if (!err)
        err = rt_id(p, e, parent, "code", RT_NULLABLE, ev->error_code, RT_CODE_MAX);
    if (!err)
        err = rt_text(p, e, parent, "message", req, ev);
    if (!err)
        err = rt_id(p, e, parent, "event_id", RT_NULLABLE, ev->error_event_id, RT_ID_MAX);
    return err;
}

static int rt_response_done(struct rt_parse *p, struct rt_event *ev, const cJSON *root)
{
    const cJSON *r = NULL, *sd = NULL, *e = NULL;
    int err = rt_object(p, root, NULL, "response", RT_REQ, &r);
    if (!err)
        err = rt_id(p, r, "response", "id", RT_REQ, ev->response_id, RT_ID_MAX);
    if (!err)
        err = rt_id(p, r, "response", "status", RT_REQ, ev->status, sizeof(ev->status) - 1);
    if (!err)
        err = rt_object(p, r, "response", "status_details", RT_NULLABLE, &sd);
    if (!err && sd)
        err = rt_id(p, sd, "response.status_details", "reason", RT_NULLABLE, ev->status_reason,
                    sizeof(ev->status_reason) - 1);
    if (!err && sd)
        err = rt_object(p, sd, "response.status_details", "error", RT_NULLABLE, &e);
    if (!err && e)
        err = rt_error_obj(p, ev, e, "response.status_details.error", false);
    return err;
}

static int rt_audio_delta(struct rt_parse *p, struct rt_event *ev, const cJSON *root,
                          uint8_t *audio, size_t audio_cap)
{
    const char *b64;
    size_t len;
    int err = rt_response_item(p, root, ev);
    if (!err)
        err = rt_string(p, root, NULL, "delta", RT_REQ, &b64, &len);
    if (err)
        return err;
    if (!audio)
        audio_cap = 0;
    err = tw_b64_decode(audio, audio_cap, b64, len, &ev->audio_len);
    if (err == VA_ETOOBIG)
        return rt_fail(p, err, "delta too big (%zu base64 characters, room for %zu bytes)", len,
                       audio_cap);
    if (err)
        return rt_fail(p, VA_EPROTO, "delta not base64");
    ev->audio = audio;
    return 0;
}

static int rt_function_call(struct rt_parse *p, struct rt_event *ev, const cJSON *root)
{
    int err = rt_response_item(p, root, ev);
    if (!err)
        err = rt_id(p, root, NULL, "call_id", RT_REQ, ev->call_id, RT_ID_MAX);
    if (!err)
        err = rt_id(p, root, NULL, "name", RT_REQ, ev->name, RT_ID_MAX);
    if (!err)
        err = rt_text(p, root, NULL, "arguments", RT_REQ, ev);
    return err;
}

static int rt_rate_limits(struct rt_parse *p, struct rt_event *ev, const cJSON *root)
{
    const cJSON *arr, *e;
    char parent[32];
    size_t i = 0;
    int err = rt_find(p, root, NULL, "rate_limits", RT_REQ, &arr);
    if (err)
        return err;
    if (!cJSON_IsArray(arr))
        return rt_fail(p, VA_EPROTO, "rate_limits not an array");
    cJSON_ArrayForEach(e, arr)
    {
        const char *name;
        size_t len;
        uint64_t v;
        snprintf(parent, sizeof(parent), "rate_limits[%zu]", i++);
        if (!cJSON_IsObject(e))
            return rt_fail(p, VA_EPROTO, "%s not an object", parent);
        err = rt_string(p, e, parent, "name", RT_REQ, &name, &len);
        if (err)
            return err;
        int64_t *dst = !strcmp(name, "requests") ? &ev->remaining_requests
                       : !strcmp(name, "tokens") ? &ev->remaining_tokens
                                                 : NULL;
        if (!dst)
            continue; /* other limits may come; not used here */
        err = rt_uint(p, e, parent, "remaining", RT_REQ, &v);
        if (err)
            return err;
        *dst = (int64_t)v;
    }
    return 0;
}

static int rt_dispatch(struct rt_parse *p, struct rt_event *ev, enum rt_event_type type,
                       const cJSON *root, uint8_t *audio, size_t audio_cap)
{
    const cJSON *o;
    int err;
    switch (type) {
    case RT_EV_AUDIO_DELTA:
        return rt_audio_delta(p, ev, root, audio, audio_cap);
    case RT_EV_SESSION_CREATED:
        return rt_session(p, ev, root, true);
    case RT_EV_SESSION_UPDATED:
        return rt_session(p, ev, root, false);
    case RT_EV_SPEECH_STARTED:
        return rt_speech(p, ev, root, "audio_start_ms");
    case RT_EV_SPEECH_STOPPED:
        return rt_speech(p, ev, root, "audio_end_ms");
    case RT_EV_COMMITTED:
    case RT_EV_ITEM_DELETED:
        return rt_item_id(p, root, ev);
    case RT_EV_RESPONSE_CREATED:
        err = rt_object(p, root, NULL, "response", RT_REQ, &o);
        if (!err)
            err = rt_id(p, o, "response", "id", RT_REQ, ev->response_id, RT_ID_MAX);
        return err;
    case RT_EV_RESPONSE_DONE:
        return rt_response_done(p, ev, root);
    case RT_EV_AUDIO_DONE:
        return rt_response_item(p, root, ev);
    case RT_EV_TRANSCRIPT_DONE:
        err = rt_item_id(p, root, ev);
        if (!err)
            err = rt_id(p, root, NULL, "response_id", RT_OPT, ev->response_id, RT_ID_MAX);
        if (!err)
            err = rt_text(p, root, NULL, "transcript", RT_REQ, ev);
        return err;
    case RT_EV_INPUT_TRANSCRIPT:
        err = rt_item_id(p, root, ev);
        if (!err)
            err = rt_text(p, root, NULL, "transcript", RT_REQ, ev);
        return err;
    case RT_EV_INPUT_TRANSCRIPT_FAILED:
        err = rt_item_id(p, root, ev);
        if (!err)
            err = rt_object(p, root, NULL, "error", RT_REQ, &o);
        if (!err)
            err = rt_error_obj(p, ev, o, "error", false);
        return err;
    case RT_EV_FUNCTION_CALL:
        return rt_function_call(p, ev, root);
    case RT_EV_ITEM_TRUNCATED:
        err = rt_item_id(p, root, ev);
        if (!err)
            err = rt_uint(p, root, NULL, "audio_end_ms", RT_REQ, &ev->audio_ms);
        return err;
    case RT_EV_RATE_LIMITS:
        return rt_rate_limits(p, ev, root);
    case RT_EV_ERROR:
        err = rt_object(p, root, NULL, "error", RT_REQ, &o);
        if (!err)
            err = rt_error_obj(p, ev, o, "error", true);
        return err;
    case RT_EV_NONE:
    case RT_EV_OTHER:
        break;
    }
    return 0;
}

/* GA names only: a beta name (response.audio.delta, ...) is RT_EV_OTHER and shows up
 * in the log instead of half-working. The hot delta comes first. */
static const struct {
    const char *name;
    enum rt_event_type type;
} rt_types[] = {
    {"response.output_audio.delta", RT_EV_AUDIO_DELTA},
    {"session.created", RT_EV_SESSION_CREATED},
    {"session.updated", RT_EV_SESSION_UPDATED},
    {"input_audio_buffer.speech_started", RT_EV_SPEECH_STARTED},
    {"input_audio_buffer.speech_stopped", RT_EV_SPEECH_STOPPED},
    {"input_audio_buffer.committed", RT_EV_COMMITTED},
    {"response.created", RT_EV_RESPONSE_CREATED},
    {"response.done", RT_EV_RESPONSE_DONE},
    {"response.output_audio.done", RT_EV_AUDIO_DONE},
    {"response.output_audio_transcript.done", RT_EV_TRANSCRIPT_DONE},
    {"conversation.item.input_audio_transcription.completed", RT_EV_INPUT_TRANSCRIPT},
    {"conversation.item.input_audio_transcription.failed", RT_EV_INPUT_TRANSCRIPT_FAILED},
    {"response.function_call_arguments.done", RT_EV_FUNCTION_CALL},
    {"conversation.item.truncated", RT_EV_ITEM_TRUNCATED},
    {"conversation.item.deleted", RT_EV_ITEM_DELETED},
    {"rate_limits.updated", RT_EV_RATE_LIMITS},
    {"error", RT_EV_ERROR},
};

/* Everything but the text array (4 KiB, written only when an event has text). */
static void rt_event_reset(struct rt_event *ev)
{
    size_t after = offsetof(struct rt_event, text) + sizeof(ev->text);
    memset(ev, 0, offsetof(struct rt_event, text));
    memset((char *)ev + after, 0, sizeof(*ev) - after);
    ev->text[0] = '\0';
    ev->remaining_requests = -1;
    ev->remaining_tokens = -1;
}

/* ---- the delta fast path ----
 * A reply arrives as response.output_audio.delta messages of about 1 KB: cJSON would
 * allocate a node per member and copy the base64 out before it is decoded. This reads the
 * compact shape in place; anything it is not sure of goes the cJSON way. */
static bool rt_fast_delta(struct rt_event *ev, const char *json, size_t len, uint8_t *audio,
                          size_t audio_cap)
{
    static const char *const keys[] = {"type", "response_id", "item_id", "delta"};
    struct va_json_span v[4] = {0};
    struct va_json_flat f = {keys, v, 4, NULL, NULL, false};
    if (!va_json_flat(json, len, &f) || !va_json_span_is(&v[0], "response.output_audio.delta"))
        return false;
    for (size_t j = 1; j < 4; j++)
        if (!v[j].set || v[j].num)
            return false;
    size_t n;
    if (v[1].n == 0 || v[1].n > RT_ID_MAX || v[2].n == 0 || v[2].n > RT_ID_MAX ||
        tw_b64_decode(audio, audio ? audio_cap : 0, v[3].p, v[3].n, &n) != 0)
        return false;
    rt_event_reset(ev);
    ev->type = RT_EV_AUDIO_DELTA;
    memcpy(ev->type_name, v[0].p, v[0].n);
    ev->type_name[v[0].n] = '\0';
    memcpy(ev->response_id, v[1].p, v[1].n);
    ev->response_id[v[1].n] = '\0';
    memcpy(ev->item_id, v[2].p, v[2].n);
    ev->item_id[v[2].n] = '\0';
    ev->audio = audio;
    ev->audio_len = n;
    return true;
}

int rt_event_parse(struct rt_event *ev, const char *json, size_t len, uint8_t *audio,
                   size_t audio_cap, char *errbuf, size_t errbuf_len)
{
    if (rt_fast_delta(ev, json, len, audio, audio_cap)) {
        if (errbuf && errbuf_len)
            errbuf[0] = '\0';
        return 0;
    }
    return rt_event_parse_json(ev, json, len, audio, audio_cap, errbuf, errbuf_len);
}

int rt_event_parse_json(struct rt_event *ev, const char *json, size_t len, uint8_t *audio,
                        size_t audio_cap, char *errbuf, size_t errbuf_len)
{
    struct rt_parse p = {errbuf, errbuf_len, NULL};
    enum rt_event_type type = RT_EV_OTHER;
    const char *end = NULL, *name;
    size_t name_len;
    bool cut;
    cJSON *root = NULL;
    int err = 0;
    if (errbuf && errbuf_len)
        errbuf[0] = '\0';
    rt_event_reset(ev);
    if (!json || len == 0) {
        err = rt_fail(&p, VA_EPROTO, "empty message");
        goto out;
    }
    root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        size_t at = end && end >= json && end <= json + len ? (size_t)(end - json) : 0;
        err = rt_fail(&p, VA_EPROTO, "JSON does not parse (at byte %zu)", at);
        goto out;
    }
    /* cJSON stops after the first value; anything but whitespace behind it is junk */
    for (size_t i = end ? (size_t)(end - json) : len; i < len; i++) {
        char c = json[i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            err = rt_fail(&p, VA_EPROTO, "bytes after the JSON value (at byte %zu)", i);
            goto out;
        }
    }
    if (!cJSON_IsObject(root)) {
        err = rt_fail(&p, VA_EPROTO, "message not a JSON object");
        goto out;
    }
    err = rt_string(&p, root, NULL, "type", RT_REQ, &name, &name_len);
    if (err)
        goto out;
    if (name_len == 0) {
        err = rt_fail(&p, VA_EPROTO, "type empty");
        goto out;
    }
    for (size_t i = 0; i < sizeof(rt_types) / sizeof(rt_types[0]); i++) {
        if (!strcmp(name, rt_types[i].name)) {
            type = rt_types[i].type;
            p.type = rt_types[i].name;
            break;
        }
    }
    /* the beta name of conversation.item.added (reference §4): one name downstream */
    if (!strcmp(name, "conversation.item.created"))
        name = "conversation.item.added";
    rt_cut_copy(ev->type_name, sizeof(ev->type_name) - 1, name, strlen(name), &cut);
    err = rt_dispatch(&p, ev, type, root, audio, audio_cap);
    if (!err)
        ev->type = type;
out:
    cJSON_Delete(root);
    return err;
}
