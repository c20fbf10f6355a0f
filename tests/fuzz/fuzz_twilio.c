/* tests/fuzz/fuzz_twilio.c: the Twilio Media Streams message parser (src/twilio/media.c).
 *
 * The input is one WebSocket text message from Twilio, as src/twilio/stream.c hands it
 * to tw_media_parse(). What the stream does next with a parsed event is pure as well
 * and runs here too: custom parameters are looked up, and the streamSid and mark names
 * that came from the peer go back out through the builders.
 *
 * Oracles besides the sanitizers: a result is 0 with an event or VA_EPROTO/VA_ETOOBIG
 * with a reason; every string of the event is terminated within its array; a decoded
 * payload equals its base64 re-encoded and decoded, decodes again into a buffer of
 * exactly its size, and is VA_ETOOBIG one byte short of it; every built message is
 * JSON and carries the peer's strings unchanged when they were valid UTF-8; the
 * in-place media path and the cJSON path agree on the code and, for a media event, on
 * every field and byte of audio (tw_check_same_path). The audio
 * buffer has exactly the room any payload of the message could need, on the heap, so
 * a write past it is an ASan report. */
#include <stdbool.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/err.h"
#include "http/ws.h"
#include "twilio/media.h"

#include "fuzz.h"

static bool tw_terminated(const char *s, size_t max)
{
    return memchr(s, '\0', max + 1) != NULL;
}

/* A built message is one JSON object whose streamSid (and mark name) are what was given. */
static void tw_check_built(const struct va_buf *out, const char *sid, const char *name)
{
    cJSON *root = cJSON_ParseWithLength(out->data, out->len);
    FUZZ_CHECK(root != NULL);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "streamSid");
    FUZZ_CHECK(cJSON_IsString(s));
    if (va_ws_utf8_valid(sid, strlen(sid)))
        FUZZ_CHECK(strcmp(s->valuestring, sid) == 0);
    if (name) {
        const cJSON *mk = cJSON_GetObjectItemCaseSensitive(root, "mark");
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(mk, "name");
        FUZZ_CHECK(cJSON_IsString(n));
        if (va_ws_utf8_valid(name, strlen(name)))
            FUZZ_CHECK(strcmp(n->valuestring, name) == 0);
    }
    cJSON_Delete(root);
}

/* What the stream sends with the peer's streamSid: a mark, a clear, a frame of audio. */
static void tw_build_back(const char *sid, const char *mark_name)
{
    static const uint8_t silence[160] = {0xff};
    struct va_buf out;
    va_buf_init(&out, 64 * 1024);
    int err = tw_media_build_mark(&out, sid, mark_name ? mark_name : "g1:item_a1:200");
    FUZZ_CHECK(err == 0 || err == VA_EINVAL);
    if (!err)
        tw_check_built(&out, sid, mark_name ? mark_name : "g1:item_a1:200");
    va_buf_reset(&out);
    err = tw_media_build_clear(&out, sid);
    FUZZ_CHECK(err == 0 || err == VA_EINVAL);
    if (!err)
        tw_check_built(&out, sid, NULL);
    va_buf_reset(&out);
    err = tw_media_build_media(&out, sid, silence, sizeof(silence));
    FUZZ_CHECK(err == 0 || err == VA_EINVAL);
    if (!err)
        tw_check_built(&out, sid, NULL);
    va_buf_deinit(&out);
}

static void tw_check_start(const struct tw_ev_start *s)
{
    FUZZ_CHECK(tw_terminated(s->stream_sid, TW_SID_MAX));
    FUZZ_CHECK(tw_terminated(s->account_sid, TW_SID_MAX));
    FUZZ_CHECK(tw_terminated(s->call_sid, TW_SID_MAX));
    FUZZ_CHECK(tw_terminated(s->encoding, TW_ENCODING_MAX));
    FUZZ_CHECK(s->nparams <= TW_PARAMS_MAX);
    for (size_t i = 0; i < s->nparams; i++) {
        const struct tw_param_ref *r = &s->params[i];
        FUZZ_CHECK((size_t)r->name_off + r->name_len < TW_PARAMS_TEXT_MAX);
        FUZZ_CHECK((size_t)r->value_off + r->value_len < TW_PARAMS_TEXT_MAX);
        FUZZ_CHECK(r->name_len + r->value_len < TW_PARAM_PAIR_MAX + 1);
        const char *name = tw_start_param_name(s, i);
        FUZZ_CHECK(name[r->name_len] == '\0');
        FUZZ_CHECK(tw_start_param_value(s, i)[r->value_len] == '\0');
        /* the first parameter of that name answers the lookup (a NUL inside a name
         * hides what follows it from a C-string lookup: skip those) */
        if (strlen(name) == r->name_len) {
            size_t vl = 0;
            const char *v = tw_start_param(s, name, &vl);
            FUZZ_CHECK(v != NULL);
            size_t first = 0;
            while (strcmp(tw_start_param_name(s, first), name) != 0)
                first++;
            FUZZ_CHECK(v == tw_start_param_value(s, first) && vl == s->params[first].value_len);
        }
    }
}

/* The payload again, through base64 and through tighter buffers. */
static void tw_check_media(const struct tw_ev_media *m, const uint8_t *msg, size_t size,
                           const uint8_t *audio, size_t cap)
{
    FUZZ_CHECK(m->payload_len <= cap);
    FUZZ_CHECK(m->payload_len ? m->payload == audio : m->payload == NULL);
    if (!m->payload_len)
        return;
    size_t n = m->payload_len;
    char *b64 = malloc(tw_b64_encoded_len(n));
    uint8_t *back = malloc(n);
    FUZZ_CHECK(b64 && back);
    size_t bl = tw_b64_encode(b64, m->payload, n);
    FUZZ_CHECK(bl == tw_b64_encoded_len(n));
    size_t got = 0;
    FUZZ_CHECK(tw_b64_decode(back, n, b64, bl, &got) == 0);
    FUZZ_CHECK(got == n && memcmp(back, m->payload, n) == 0);
    free(b64);

    /* exactly its size: the same event; one byte less: VA_ETOOBIG, nothing written */
    struct tw_event *ev = malloc(sizeof(*ev));
    FUZZ_CHECK(ev != NULL);
    FUZZ_CHECK(tw_media_parse(ev, (const char *)msg, size, back, n, NULL, 0) == 0);
    FUZZ_CHECK(ev->type == TW_EV_MEDIA && ev->media.payload_len == n);
    FUZZ_CHECK(memcmp(back, m->payload, n) == 0);
    uint8_t *tight = malloc(n - 1 ? n - 1 : 1);
    FUZZ_CHECK(tight != NULL);
    FUZZ_CHECK(tw_media_parse(ev, (const char *)msg, size, tight, n - 1, NULL, 0) == VA_ETOOBIG);
    FUZZ_CHECK(ev->type == TW_EV_NONE);
    free(tight);
    free(ev);
    free(back);
}

/* tw_media_parse() (in place for compact media messages) against the cJSON path. */
static void tw_check_same_path(const uint8_t *data, size_t size, int err, const struct tw_event *ev,
                               const uint8_t *audio, size_t cap)
{
    struct tw_event *ref = malloc(sizeof(*ref));
    uint8_t *ra = malloc(cap);
    FUZZ_CHECK(ref && ra);
    int rerr = tw_media_parse_json(ref, (const char *)data, size, ra, cap, NULL, 0);
    FUZZ_CHECK(rerr == err && ref->type == ev->type);
    if (!err && ev->type == TW_EV_MEDIA) {
        FUZZ_CHECK(ref->has_seq == ev->has_seq && ref->seq == ev->seq);
        FUZZ_CHECK(strcmp(ref->stream_sid, ev->stream_sid) == 0);
        const struct tw_ev_media *a = &ev->media, *b = &ref->media;
        FUZZ_CHECK(a->track == b->track && a->chunk == b->chunk && a->timestamp == b->timestamp);
        FUZZ_CHECK(a->payload_len == b->payload_len && !a->payload == !b->payload);
        FUZZ_CHECK(!a->payload_len || memcmp(audio, ra, a->payload_len) == 0);
    }
    free(ra);
    free(ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* 17 KB: on the heap, as the stream keeps it, so ASan sees its edges */
    struct tw_event *ev = malloc(sizeof(*ev));
    /* base64 carries 3 bytes in 4 characters: room for any payload this message holds */
    size_t cap = size / 4 * 3 + 3;
    uint8_t *audio = malloc(cap);
    FUZZ_CHECK(ev && audio);
    char why[160];
    int err = tw_media_parse(ev, (const char *)data, size, audio, cap, why, sizeof(why));
    tw_check_same_path(data, size, err, ev, audio, cap);
    if (err) {
        FUZZ_CHECK(err == VA_EPROTO || err == VA_ETOOBIG);
        FUZZ_CHECK(ev->type == TW_EV_NONE);
        FUZZ_CHECK(why[0] != '\0' && memchr(why, '\0', sizeof(why)));
        goto out;
    }
    FUZZ_CHECK(ev->type > TW_EV_NONE && ev->type <= TW_EV_UNKNOWN);
    FUZZ_CHECK(strcmp(tw_event_type_name(ev->type), "none") != 0);
    FUZZ_CHECK(tw_terminated(ev->stream_sid, TW_SID_MAX));
    switch (ev->type) {
    case TW_EV_START:
        tw_check_start(&ev->start);
        FUZZ_CHECK(strcmp(ev->stream_sid, ev->start.stream_sid) == 0);
        tw_build_back(ev->start.stream_sid, NULL);
        break;
    case TW_EV_MEDIA:
        tw_check_media(&ev->media, data, size, audio, cap);
        break;
    case TW_EV_DTMF:
        FUZZ_CHECK(strchr("0123456789*#", ev->dtmf.digit) && ev->dtmf.digit);
        break;
    case TW_EV_MARK:
        FUZZ_CHECK(tw_terminated(ev->mark.name, TW_MARK_NAME_MAX));
        FUZZ_CHECK(strlen(ev->mark.name) <= ev->mark.name_len);
        /* an echoed name sent back as a mark of ours (what a confused bridge would do) */
        if (ev->mark.name[0] && strlen(ev->mark.name) == ev->mark.name_len)
            tw_build_back(ev->stream_sid, ev->mark.name);
        break;
    case TW_EV_STOP:
        FUZZ_CHECK(tw_terminated(ev->stop.account_sid, TW_SID_MAX));
        FUZZ_CHECK(tw_terminated(ev->stop.call_sid, TW_SID_MAX));
        break;
    case TW_EV_UNKNOWN:
        FUZZ_CHECK(tw_terminated(ev->unknown, TW_EVENT_NAME_MAX));
        break;
    default:
        break;
    }
out:
    free(audio);
    free(ev);
    return 0;
}
