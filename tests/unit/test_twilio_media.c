/* tests/unit/test_twilio_media.c: Twilio Media Streams messages, reference §4 and §5. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "core/buf.h"
#include "core/err.h"
#include "twilio/media.h"

#define LIT(s) s, sizeof(s) - 1
#define AUDIO_CAP (64 * 1024)

#define ACCOUNT "AC0123456789abcdef0123456789abcdef"
#define STREAM "MZ3f2e1d0c4b5a69788796a5b4c3d2e1f0"
#define CALL "CA00112233445566778899aabbccddeeff"

/* Reference §4.1, verbatim, line breaks and indentation included. The media
 * example's "<216 base64 chars>" is filled in with a silent frame by ref_media(). */
static const char REF_CONNECTED[] = "{\"event\":\"connected\",\"protocol\":\"Call\",\"version\":"
                                    "\"1.0.0\"}";
static const char REF_START[] =
    "{\"event\":\"start\",\"sequenceNumber\":\"1\",\n"
    " \"start\":{\"accountSid\":\"AC0123456789abcdef0123456789abcdef\",\n"
    "          \"streamSid\":\"MZ3f2e1d0c4b5a69788796a5b4c3d2e1f0\",\n"
    "          \"callSid\":\"CA00112233445566778899aabbccddeeff\",\n"
    "          \"tracks\":[\"inbound\"],\n"
    "          \"customParameters\":{\"From\":\"+15551230000\",\"To\":\"+15559870000\","
    "\"CallSid\":\"CA00112233445566778899aabbccddeeff\"},\n"
    "          \"mediaFormat\":{\"encoding\":\"audio/x-mulaw\",\"sampleRate\":8000,"
    "\"channels\":1}},\n"
    " \"streamSid\":\"MZ3f2e1d0c4b5a69788796a5b4c3d2e1f0\"}";
static const char REF_MEDIA_FMT[] =
    "{\"event\":\"media\",\"sequenceNumber\":\"2\",\n"
    " \"media\":{\"track\":\"inbound\",\"chunk\":\"1\",\"timestamp\":\"0\",\"payload\":\"%s\"},\n"
    " \"streamSid\":\"MZ3f2e1d0c4b5a69788796a5b4c3d2e1f0\"}";
static const char REF_DTMF[] =
    "{\"event\":\"dtmf\",\"streamSid\":\"MZ3f2e1d0c4b5a69788796a5b4c3d2e1f0\","
    "\"sequenceNumber\":\"57\",\n"
    " \"dtmf\":{\"track\":\"inbound_track\",\"digit\":\"5\"}}";
static const char REF_MARK[] = "{\"event\":\"mark\",\"sequenceNumber\":\"58\",\"streamSid\":"
                               "\"MZ3f2e1d0c4b5a69788796a5b4c3d2e1f0\",\n"
                               " \"mark\":{\"name\":\"g1:item_a1:340\"}}";
static const char REF_STOP[] =
    "{\"event\":\"stop\",\"sequenceNumber\":\"912\",\n"
    " \"stop\":{\"accountSid\":\"AC0123456789abcdef0123456789abcdef\",\"callSid\":"
    "\"CA00112233445566778899aabbccddeeff\"},\n"
    " \"streamSid\":\"MZ3f2e1d0c4b5a69788796a5b4c3d2e1f0\"}";

/* Per-test memory: the event is about 17 KB. */
struct fx {
    struct tw_event ev;
    uint8_t audio[AUDIO_CAP];
    char why[256];
    char media[1024]; /* REF_MEDIA_FMT with the silent frame */
};

static void silent_b64(char out[217])
{
    memset(out, '/', 213);
    memcpy(out + 213, "w==", 4);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    char silent[217];
    silent_b64(silent);
    snprintf(f->media, sizeof(f->media), REF_MEDIA_FMT, silent);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

/* The cJSON-only parser gives what tw_media_parse() gave (its in-place media path
 * included): the code, the reason, and for media every field and audio byte. */
static void same_as_json(struct fx *f, const char *copy, size_t len, size_t cap, int err)
{
    struct tw_event *ref = malloc(sizeof(*ref));
    uint8_t *audio = malloc(cap ? cap : 1);
    char why[256];
    assert_non_null(ref);
    assert_non_null(audio);
    assert_int_equal(tw_media_parse_json(ref, copy, len, audio, cap, why, sizeof(why)), err);
    assert_int_equal(ref->type, f->ev.type);
    assert_string_equal(why, f->why);
    if (!err && ref->type == TW_EV_MEDIA) {
        assert_int_equal(ref->seq, f->ev.seq);
        assert_string_equal(ref->stream_sid, f->ev.stream_sid);
        assert_int_equal(ref->media.track, f->ev.media.track);
        assert_int_equal(ref->media.chunk, f->ev.media.chunk);
        assert_int_equal(ref->media.timestamp, f->ev.media.timestamp);
        assert_int_equal(ref->media.payload_len, f->ev.media.payload_len);
        if (ref->media.payload_len)
            assert_memory_equal(audio, f->audio, ref->media.payload_len);
    }
    free(audio);
    free(ref);
}

/* Parses a copy of msg[0, len) of exactly len bytes (no terminator), so ASan sees any
 * read past the end. */
static int parse_cap(struct fx *f, const char *msg, size_t len, size_t cap)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, msg, len);
    memset(f->why, 'x', sizeof(f->why));
    int err = tw_media_parse(&f->ev, copy, len, f->audio, cap, f->why, sizeof(f->why));
    same_as_json(f, copy, len, cap, err);
    free(copy);
    assert_non_null(memchr(f->why, '\0', sizeof(f->why)));
    if (err) {
        assert_int_equal(f->ev.type, TW_EV_NONE);
        assert_true(f->why[0] != '\0');
    } else {
        assert_int_equal(f->why[0], '\0');
    }
    return err;
}

static int parse(struct fx *f, const char *msg)
{
    return parse_cap(f, msg, strlen(msg), AUDIO_CAP);
}

static void expect_ok(struct fx *f, const char *msg, enum tw_event_type type)
{
    int err = parse(f, msg);
    if (err)
        fail_msg("%s: %s\nin: %s", va_strerror(err), f->why, msg);
    assert_int_equal(f->ev.type, type);
}

static void expect_err(struct fx *f, const char *msg, int want, const char *why)
{
    int err = parse(f, msg);
    if (err != want)
        fail_msg("got %d (%s), want %d; why: %s\nin: %.300s", err, va_strerror(err), want,
                 err ? f->why : "", msg);
    if (why && strcmp(f->why, why) != 0)
        fail_msg("why: got \"%s\", want \"%s\"\nin: %.300s", f->why, why, msg);
}

/* --- reference messages --- */

static void check_start(const struct tw_event *ev)
{
    assert_int_equal(ev->type, TW_EV_START);
    assert_true(ev->has_seq);
    assert_int_equal(ev->seq, 1);
    assert_string_equal(ev->stream_sid, STREAM);
    const struct tw_ev_start *s = &ev->start;
    assert_string_equal(s->stream_sid, STREAM);
    assert_string_equal(s->account_sid, ACCOUNT);
    assert_string_equal(s->call_sid, CALL);
    assert_int_equal(s->tracks, TW_TRACK_BIT(TW_TRACK_INBOUND));
    assert_string_equal(s->encoding, "audio/x-mulaw");
    assert_int_equal(s->sample_rate, 8000);
    assert_int_equal(s->channels, 1);
    assert_int_equal(s->nparams, 3);
    size_t vlen = 0;
    assert_string_equal(tw_start_param(s, "From", &vlen), "+15551230000");
    assert_int_equal(vlen, 12);
    assert_string_equal(tw_start_param(s, "To", NULL), "+15559870000");
    assert_string_equal(tw_start_param(s, "CallSid", &vlen), CALL);
    assert_int_equal(vlen, 34);
    assert_null(tw_start_param(s, "from", NULL)); /* names compare exactly */
    assert_null(tw_start_param(s, "Missing", NULL));
}

static void check_media_silent(const struct fx *f, uint64_t seq, uint64_t chunk, uint64_t ts)
{
    const struct tw_event *ev = &f->ev;
    assert_int_equal(ev->type, TW_EV_MEDIA);
    assert_int_equal(ev->seq, seq);
    assert_string_equal(ev->stream_sid, STREAM);
    assert_int_equal(ev->media.track, TW_TRACK_INBOUND);
    assert_int_equal(ev->media.chunk, chunk);
    assert_int_equal(ev->media.timestamp, ts);
    assert_int_equal(ev->media.payload_len, 160);
    assert_ptr_equal(ev->media.payload, f->audio);
    for (size_t i = 0; i < 160; i++)
        assert_int_equal(ev->media.payload[i], 0xFF);
}

static void check_dtmf(const struct tw_event *ev)
{
    assert_int_equal(ev->type, TW_EV_DTMF);
    assert_int_equal(ev->seq, 57);
    assert_string_equal(ev->stream_sid, STREAM);
    assert_int_equal(ev->dtmf.track, TW_TRACK_INBOUND);
    assert_int_equal(ev->dtmf.digit, '5');
}

static void check_mark(const struct tw_event *ev)
{
    assert_int_equal(ev->type, TW_EV_MARK);
    assert_int_equal(ev->seq, 58);
    assert_string_equal(ev->stream_sid, STREAM);
    assert_string_equal(ev->mark.name, "g1:item_a1:340");
    assert_int_equal(ev->mark.name_len, 14);
}

static void check_stop(const struct tw_event *ev)
{
    assert_int_equal(ev->type, TW_EV_STOP);
    assert_int_equal(ev->seq, 912);
    assert_string_equal(ev->stream_sid, STREAM);
    assert_string_equal(ev->stop.account_sid, ACCOUNT);
    assert_string_equal(ev->stop.call_sid, CALL);
}

static void check_connected(const struct tw_event *ev)
{
    assert_int_equal(ev->type, TW_EV_CONNECTED);
    assert_false(ev->has_seq);
    assert_string_equal(ev->stream_sid, "");
}

/* Checks f->ev against the reference message numbered i. */
static void check_ref(const struct fx *f, int i)
{
    switch (i) {
    case 0:
        check_connected(&f->ev);
        break;
    case 1:
        check_start(&f->ev);
        break;
    case 2:
        check_media_silent(f, 2, 1, 0);
        break;
    case 3:
        check_dtmf(&f->ev);
        break;
    case 4:
        check_mark(&f->ev);
        break;
    default:
        check_stop(&f->ev);
        break;
    }
}

#define NREFS 6
static enum tw_event_type ref_type(int i)
{
    static const enum tw_event_type types[NREFS] = {TW_EV_CONNECTED, TW_EV_START, TW_EV_MEDIA,
                                                    TW_EV_DTMF,      TW_EV_MARK,  TW_EV_STOP};
    return types[i];
}

static const char *ref_msg(const struct fx *f, int i)
{
    static const char *const refs[NREFS] = {REF_CONNECTED, REF_START, NULL,
                                            REF_DTMF,      REF_MARK,  REF_STOP};
    return i == 2 ? f->media : refs[i];
}

static void test_reference_messages(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < NREFS; i++) {
        expect_ok(f, ref_msg(f, i), ref_type(i));
        check_ref(f, i);
    }
    assert_int_equal(strlen(f->media) - strlen(REF_MEDIA_FMT) + 2, 216);
}

/* The same event struct serves a whole call: start, then media reuses the union. */
static void test_reuse_event(void **state)
{
    struct fx *f = *state;
    expect_ok(f, REF_START, TW_EV_START);
    expect_ok(f, f->media, TW_EV_MEDIA);
    check_media_silent(f, 2, 1, 0);
    expect_ok(f, REF_CONNECTED, TW_EV_CONNECTED);
    check_connected(&f->ev);
    expect_ok(f, REF_STOP, TW_EV_STOP);
    check_stop(&f->ev);
}

/* --- key order, unknown keys and events --- */

/* Reorders every object's keys, recursively: mode 0 reverses, mode 1 rotates by one. */
static void shuffle(cJSON *obj, int mode)
{
    if (!cJSON_IsObject(obj) && !cJSON_IsArray(obj))
        return;
    cJSON *items[64];
    int n = 0;
    while (obj->child && n < 64)
        items[n++] = cJSON_DetachItemViaPointer(obj, obj->child);
    for (int i = 0; i < n; i++) {
        cJSON *it = cJSON_IsObject(obj) ? items[mode == 0 ? n - 1 - i : (i + 1) % n] : items[i];
        shuffle(it, mode);
        cJSON_AddItemToArray(obj, it); /* keeps it->string: works for objects too */
    }
}

static char *reprint(const char *msg, int mode)
{
    cJSON *root = cJSON_Parse(msg);
    assert_non_null(root);
    shuffle(root, mode);
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    assert_non_null(out);
    return out;
}

static void test_shuffled_keys(void **state)
{
    struct fx *f = *state;
    for (int mode = 0; mode < 2; mode++) {
        for (int i = 0; i < NREFS; i++) {
            char *m = reprint(ref_msg(f, i), mode);
            assert_string_not_equal(m, ref_msg(f, i));
            int err = parse(f, m);
            if (err)
                fail_msg("%s in %s", f->why, m);
            check_ref(f, i);
            cJSON_free(m);
        }
    }
    /* "event" last, as in the dtmf example's neighbours */
    expect_ok(f,
              "{\"mark\":{\"name\":\"x\"},\"streamSid\":\"" STREAM "\",\"sequenceNumber\":\"3\","
              "\"event\":\"mark\"}",
              TW_EV_MARK);
    assert_string_equal(f->ev.mark.name, "x");
}

/* Adds unknown keys of every JSON type at the top and in every nested object. */
static void add_unknown(cJSON *obj)
{
    for (cJSON *it = obj->child; it; it = it->next)
        if (cJSON_IsObject(it) && strcmp(it->string, "customParameters") != 0)
            add_unknown(it); /* a custom parameter must be a string: not "unknown" */
    cJSON_AddNumberToObject(obj, "zzNumber", 1.5);
    cJSON_AddStringToObject(obj, "aaString", "x");
    cJSON_AddNullToObject(obj, "nothing");
    cJSON_AddTrueToObject(obj, "flag");
    cJSON *arr = cJSON_AddArrayToObject(obj, "list");
    cJSON_AddItemToArray(arr, cJSON_CreateObject());
    cJSON *o = cJSON_AddObjectToObject(obj, "nested");
    cJSON_AddStringToObject(o, "event", "stop"); /* a nested "event" means nothing */
}

static void test_unknown_keys(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < NREFS; i++) {
        cJSON *root = cJSON_Parse(ref_msg(f, i));
        assert_non_null(root);
        add_unknown(root);
        char *m = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        int err = parse(f, m);
        if (err)
            fail_msg("%s in %s", f->why, m);
        check_ref(f, i);
        cJSON_free(m);
    }
    /* connected's own keys are not checked at all */
    expect_ok(f, "{\"event\":\"connected\"}", TW_EV_CONNECTED);
    expect_ok(f, "{\"event\":\"connected\",\"protocol\":7,\"version\":null}", TW_EV_CONNECTED);
    /* a custom parameter named like a real field is only a parameter */
    expect_ok(f,
              "{\"event\":\"start\",\"sequenceNumber\":\"1\",\"start\":{\"accountSid\":\"" ACCOUNT
              "\",\"streamSid\":\"" STREAM "\",\"callSid\":\"" CALL
              "\",\"tracks\":[],\"customParameters\":{\"streamSid\":\"MZother\"},"
              "\"mediaFormat\":{\"encoding\":\"audio/x-mulaw\",\"sampleRate\":8000,"
              "\"channels\":1}}}",
              TW_EV_START);
    assert_string_equal(f->ev.stream_sid, STREAM);
    assert_string_equal(tw_start_param(&f->ev.start, "streamSid", NULL), "MZother");
    assert_int_equal(f->ev.start.tracks, 0);
    /* duplicated keys: the first wins */
    expect_ok(f,
              "{\"event\":\"mark\",\"event\":\"stop\",\"sequenceNumber\":\"3\",\"streamSid\":"
              "\"" STREAM "\",\"mark\":{\"name\":\"a\",\"name\":\"b\"}}",
              TW_EV_MARK);
    assert_string_equal(f->ev.mark.name, "a");
}

static void test_unknown_events(void **state)
{
    struct fx *f = *state;
    expect_ok(f, "{\"event\":\"transcription\",\"sequenceNumber\":\"9\",\"x\":{}}", TW_EV_UNKNOWN);
    assert_string_equal(f->ev.unknown, "transcription");
    assert_false(f->ev.has_seq);
    assert_string_equal(f->ev.stream_sid, "");
    /* nothing else is checked in an unknown event, not even its sequence number */
    expect_ok(f, "{\"event\":\"future\",\"sequenceNumber\":7,\"streamSid\":[]}", TW_EV_UNKNOWN);
    expect_ok(f, "{\"event\":\"\"}", TW_EV_UNKNOWN);
    assert_string_equal(f->ev.unknown, "");
    /* case matters: "Media" is not "media" */
    expect_ok(f, "{\"event\":\"Media\"}", TW_EV_UNKNOWN);
    assert_string_equal(f->ev.unknown, "Media");
    /* events we send, arriving from Twilio, are unknown too */
    expect_ok(f, "{\"event\":\"clear\",\"streamSid\":\"" STREAM "\"}", TW_EV_UNKNOWN);
    /* a long name is kept cut at 32 bytes */
    expect_ok(f, "{\"event\":\"0123456789abcdef0123456789ABCDEF-and-more\"}", TW_EV_UNKNOWN);
    assert_string_equal(f->ev.unknown, "0123456789abcdef0123456789ABCDEF");
    assert_string_equal(tw_event_type_name(TW_EV_UNKNOWN), "unknown");
    assert_string_equal(tw_event_type_name(TW_EV_MEDIA), "media");
    assert_string_equal(tw_event_type_name(TW_EV_NONE), "none");
    assert_string_equal(tw_event_type_name((enum tw_event_type)99), "invalid");
}

/* --- required fields: missing and mistyped --- */

/* A copy of msg with the value at dotted path replaced by repl (a JSON text), or
 * deleted when repl is NULL. */
static char *mutate(const char *msg, const char *path, const char *repl)
{
    cJSON *root = cJSON_Parse(msg);
    assert_non_null(root);
    cJSON *obj = root;
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    char *key = buf;
    for (char *dot; (dot = strchr(key, '.')) != NULL; key = dot + 1) {
        *dot = '\0';
        obj = cJSON_GetObjectItemCaseSensitive(obj, key);
        assert_non_null(obj);
    }
    assert_non_null(cJSON_GetObjectItemCaseSensitive(obj, key));
    if (repl) {
        cJSON *r = cJSON_Parse(repl);
        assert_non_null(r);
        assert_true(cJSON_ReplaceItemInObjectCaseSensitive(obj, key, r));
    } else {
        cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    }
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    assert_non_null(out);
    return out;
}

enum kind { K_STR, K_OBJ, K_ARR, K_NUM };

struct field {
    int ref; /* index into the reference messages */
    const char *path;
    enum kind kind;
};

static const struct field required[] = {
    {0, "event", K_STR},
    {1, "event", K_STR},
    {1, "sequenceNumber", K_STR},
    {1, "start", K_OBJ},
    {1, "start.accountSid", K_STR},
    {1, "start.streamSid", K_STR},
    {1, "start.callSid", K_STR},
    {1, "start.tracks", K_ARR},
    {1, "start.mediaFormat", K_OBJ},
    {1, "start.mediaFormat.encoding", K_STR},
    {1, "start.mediaFormat.sampleRate", K_NUM},
    {1, "start.mediaFormat.channels", K_NUM},
    {2, "event", K_STR},
    {2, "sequenceNumber", K_STR},
    {2, "streamSid", K_STR},
    {2, "media", K_OBJ},
    {2, "media.track", K_STR},
    {2, "media.chunk", K_STR},
    {2, "media.timestamp", K_STR},
    {2, "media.payload", K_STR},
    {3, "event", K_STR},
    {3, "sequenceNumber", K_STR},
    {3, "streamSid", K_STR},
    {3, "dtmf", K_OBJ},
    {3, "dtmf.track", K_STR},
    {3, "dtmf.digit", K_STR},
    {4, "event", K_STR},
    {4, "sequenceNumber", K_STR},
    {4, "streamSid", K_STR},
    {4, "mark", K_OBJ},
    {4, "mark.name", K_STR},
    {5, "event", K_STR},
    {5, "sequenceNumber", K_STR},
    {5, "streamSid", K_STR},
    {5, "stop", K_OBJ},
    {5, "stop.accountSid", K_STR},
    {5, "stop.callSid", K_STR},
};

static void test_missing_fields(void **state)
{
    struct fx *f = *state;
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        char *m = mutate(ref_msg(f, required[i].ref), required[i].path, NULL);
        char want[128];
        snprintf(want, sizeof(want), "%s missing", required[i].path);
        expect_err(f, m, VA_EPROTO, want);
        cJSON_free(m);
    }
    /* optional: start's top-level streamSid and customParameters */
    char *m = mutate(REF_START, "streamSid", NULL);
    expect_ok(f, m, TW_EV_START);
    cJSON_free(m);
    m = mutate(REF_START, "start.customParameters", NULL);
    expect_ok(f, m, TW_EV_START);
    assert_int_equal(f->ev.start.nparams, 0);
    cJSON_free(m);
}

static void test_mistyped_fields(void **state)
{
    struct fx *f = *state;
    /* JSON texts of every type; each field gets every one not of its kind */
    static const struct {
        const char *json;
        enum kind kind;
    } values[] = {
        {"1", K_NUM},         {"0", K_NUM},  {"null", K_OBJ + 10},     {"true", K_OBJ + 10},
        {"{}", K_OBJ},        {"[]", K_ARR}, {"[\"inbound\"]", K_ARR}, {"\"1\"", K_STR},
        {"{\"a\":1}", K_OBJ},
    };
    static const char *const kind_word[] = {"not a string", "not an object", "not an array",
                                            "not a number"};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
            if (values[v].kind == required[i].kind)
                continue;
            char *m = mutate(ref_msg(f, required[i].ref), required[i].path, values[v].json);
            char want[128];
            snprintf(want, sizeof(want), "%s %s", required[i].path, kind_word[required[i].kind]);
            expect_err(f, m, VA_EPROTO, want);
            cJSON_free(m);
        }
    }
    /* start's optional fields are typed when present */
    char *m = mutate(REF_START, "streamSid", "1");
    expect_err(f, m, VA_EPROTO, "streamSid not a string");
    cJSON_free(m);
    m = mutate(REF_START, "streamSid", "\"MZ3f2e1d0c4b5a69788796a5b4c3d2e1f1\"");
    expect_err(f, m, VA_EPROTO, "streamSid differs from start.streamSid");
    cJSON_free(m);
    m = mutate(REF_START, "start.customParameters", "[]");
    expect_err(f, m, VA_EPROTO, "start.customParameters not an object");
    cJSON_free(m);
    m = mutate(REF_START, "start.customParameters", "{\"From\":\"+1\",\"Count\":3}");
    expect_err(f, m, VA_EPROTO, "start.customParameters.Count not a string");
    cJSON_free(m);
    m = mutate(REF_START, "start.customParameters.To", "null");
    expect_err(f, m, VA_EPROTO, "start.customParameters.To not a string");
    cJSON_free(m);
    m = mutate(REF_START, "start.tracks", "[\"inbound\",5]");
    expect_err(f, m, VA_EPROTO, "start.tracks[1] not a string");
    cJSON_free(m);
    m = mutate(REF_START, "start.tracks", "[\"inbound\",\"outbound\",\"both\"]");
    expect_ok(f, m, TW_EV_START);
    assert_int_equal(f->ev.start.tracks, TW_TRACK_BIT(TW_TRACK_INBOUND) |
                                             TW_TRACK_BIT(TW_TRACK_OUTBOUND) |
                                             TW_TRACK_BIT(TW_TRACK_OTHER));
    cJSON_free(m);
    /* empty SIDs are refused, an empty mark name is a name */
    m = mutate(REF_START, "start.callSid", "\"\"");
    expect_err(f, m, VA_EPROTO, "start.callSid empty");
    cJSON_free(m);
    m = mutate(REF_MARK, "streamSid", "\"\"");
    expect_err(f, m, VA_EPROTO, "streamSid empty");
    cJSON_free(m);
    m = mutate(REF_MARK, "mark.name", "\"\"");
    expect_ok(f, m, TW_EV_MARK);
    assert_int_equal(f->ev.mark.name_len, 0);
    assert_string_equal(f->ev.mark.name, "");
    cJSON_free(m);
}

static void test_media_format(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *path;
        const char *json;
        int ok;
        uint32_t value;
    } cases[] = {
        {"start.mediaFormat.sampleRate", "16000", 1, 16000},
        {"start.mediaFormat.sampleRate", "8000.0", 1, 8000},
        {"start.mediaFormat.sampleRate", "8e3", 1, 8000},
        {"start.mediaFormat.sampleRate", "4294967295", 1, 4294967295u},
        {"start.mediaFormat.sampleRate", "4294967296", 0, 0},
        {"start.mediaFormat.sampleRate", "0", 0, 0},
        {"start.mediaFormat.sampleRate", "-8000", 0, 0},
        {"start.mediaFormat.sampleRate", "8000.5", 0, 0},
        {"start.mediaFormat.channels", "2", 1, 2},
        {"start.mediaFormat.channels", "0", 0, 0},
        {"start.mediaFormat.channels", "0.5", 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *m = mutate(REF_START, cases[i].path, cases[i].json);
        if (cases[i].ok) {
            expect_ok(f, m, TW_EV_START);
            uint32_t got =
                strstr(cases[i].path, "channels") ? f->ev.start.channels : f->ev.start.sample_rate;
            assert_int_equal(got, cases[i].value);
        } else {
            char want[128];
            snprintf(want, sizeof(want), "%s not a positive integer", cases[i].path);
            expect_err(f, m, VA_EPROTO, want);
        }
        cJSON_free(m);
    }
    /* a number cJSON reads as infinity */
    char big[sizeof(REF_START) + 8];
    const char *at = strstr(REF_START, "8000");
    snprintf(big, sizeof(big), "%.*s1e999%s", (int)(at - REF_START), REF_START, at + 4);
    expect_err(f, big, VA_EPROTO, "start.mediaFormat.sampleRate not a positive integer");
    /* the encoding is reported, not judged */
    char *m = mutate(REF_START, "start.mediaFormat.encoding", "\"audio/l16\"");
    expect_ok(f, m, TW_EV_START);
    assert_string_equal(f->ev.start.encoding, "audio/l16");
    cJSON_free(m);
    m = mutate(REF_START, "start.mediaFormat.encoding", "\"0123456789abcdef0123456789abcdef\"");
    expect_ok(f, m, TW_EV_START);
    cJSON_free(m);
    m = mutate(REF_START, "start.mediaFormat.encoding", "\"0123456789abcdef0123456789abcdefX\"");
    expect_err(f, m, VA_ETOOBIG, NULL);
    assert_non_null(strstr(f->why, "start.mediaFormat.encoding too long"));
    cJSON_free(m);
    m = mutate(REF_START, "start.mediaFormat.encoding", "\"\"");
    expect_err(f, m, VA_EPROTO, "start.mediaFormat.encoding empty");
    cJSON_free(m);
}

static void test_tracks_and_digits(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *json;
        enum tw_track track;
    } tracks[] = {
        {"\"inbound\"", TW_TRACK_INBOUND},       {"\"outbound\"", TW_TRACK_OUTBOUND},
        {"\"inbound_track\"", TW_TRACK_INBOUND}, {"\"outbound_track\"", TW_TRACK_OUTBOUND},
        {"\"both_tracks\"", TW_TRACK_OTHER},     {"\"\"", TW_TRACK_OTHER},
        {"\"Inbound\"", TW_TRACK_OTHER}};
    for (size_t i = 0; i < sizeof(tracks) / sizeof(tracks[0]); i++) {
        char *m = mutate(f->media, "media.track", tracks[i].json);
        expect_ok(f, m, TW_EV_MEDIA);
        assert_int_equal(f->ev.media.track, tracks[i].track);
        cJSON_free(m);
        m = mutate(REF_DTMF, "dtmf.track", tracks[i].json);
        expect_ok(f, m, TW_EV_DTMF);
        assert_int_equal(f->ev.dtmf.track, tracks[i].track);
        cJSON_free(m);
    }
    const char *digits = "0123456789*#";
    for (const char *d = digits; *d; d++) {
        char json[8];
        snprintf(json, sizeof(json), "\"%c\"", *d);
        char *m = mutate(REF_DTMF, "dtmf.digit", json);
        expect_ok(f, m, TW_EV_DTMF);
        assert_int_equal(f->ev.dtmf.digit, *d);
        cJSON_free(m);
    }
    static const char *const bad[] = {"\"\"",  "\"A\"", "\"55\"",      "\"5 \"", "\" 5\"",
                                      "\"+\"", "\"w\"", "\"\\u0000\"", "\"é\"",  "\"5\\u0000\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *m = mutate(REF_DTMF, "dtmf.digit", bad[i]);
        if (i == 9) {
            /* cJSON ends strings at an escaped NUL: "5\u0000" reads as "5" */
            expect_ok(f, m, TW_EV_DTMF);
        } else {
            expect_err(f, m, VA_EPROTO, "dtmf.digit not one of 0-9 * #");
        }
        cJSON_free(m);
    }
}

/* --- numbers carried as strings --- */

static void test_sequence_numbers(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *json;
        int err; /* 0, or 1 for "not a decimal integer", 2 "out of range", 3 "empty",
                    4 "not a string" */
        uint64_t value;
    } cases[] = {
        {"\"0\"", 0, 0},
        {"\"1\"", 0, 1},
        {"\"007\"", 0, 7},
        {"\"4294967296\"", 0, 4294967296ull},
        {"\"18446744073709551615\"", 0, UINT64_MAX},
        {"\"000000000000000000000000018446744073709551615\"", 0, UINT64_MAX},
        {"\"18446744073709551616\"", 2, 0},
        {"\"18446744073709551620\"", 2, 0},
        {"\"99999999999999999999\"", 2, 0},
        {"\"184467440737095516150\"", 2, 0},
        {"\"\"", 3, 0},
        {"\"12a\"", 1, 0},
        {"\"a12\"", 1, 0},
        {"\"-1\"", 1, 0},
        {"\"+1\"", 1, 0},
        {"\" 1\"", 1, 0},
        {"\"1 \"", 1, 0},
        {"\"1.0\"", 1, 0},
        {"\"1e3\"", 1, 0},
        {"\"0x10\"", 1, 0},
        {"\"١\"", 1, 0},        /* ARABIC-INDIC DIGIT ONE */
        {"\"1\\u0000\"", 0, 1}, /* cJSON ends strings at an escaped NUL */
        {"1", 4, 0},
        {"0", 4, 0},
        {"1.5", 4, 0},
        {"null", 4, 0},
    };
    static const char *const words[] = {"", "not a decimal integer", "out of range", "empty",
                                        "not a string"};
    static const struct {
        int ref;
        const char *path;
    } where[] = {{2, "sequenceNumber"}, {2, "media.chunk"},    {2, "media.timestamp"},
                 {1, "sequenceNumber"}, {3, "sequenceNumber"}, {4, "sequenceNumber"},
                 {5, "sequenceNumber"}};
    for (size_t w = 0; w < sizeof(where) / sizeof(where[0]); w++) {
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            char *m = mutate(ref_msg(f, where[w].ref), where[w].path, cases[i].json);
            if (cases[i].err == 0) {
                expect_ok(f, m, ref_type(where[w].ref));
                uint64_t got = !strcmp(where[w].path, "media.chunk")       ? f->ev.media.chunk
                               : !strcmp(where[w].path, "media.timestamp") ? f->ev.media.timestamp
                                                                           : f->ev.seq;
                assert_int_equal(got, cases[i].value);
            } else {
                char want[128];
                snprintf(want, sizeof(want), "%s %s", where[w].path, words[cases[i].err]);
                expect_err(f, m, VA_EPROTO, want);
            }
            cJSON_free(m);
        }
    }
}

/* --- payloads and base64 --- */

static void test_silent_frame(void **state)
{
    struct fx *f = *state;
    char b64[217];
    silent_b64(b64);
    uint8_t out[160];
    size_t n = 0;
    assert_int_equal(tw_b64_decode(out, sizeof(out), b64, 216, &n), 0);
    assert_int_equal(n, 160);
    for (size_t i = 0; i < 160; i++)
        assert_int_equal(out[i], 0xFF);
    /* exactly 160 bytes of room is enough, 159 is not */
    assert_int_equal(parse_cap(f, f->media, strlen(f->media), 160), 0);
    check_media_silent(f, 2, 1, 0);
    assert_int_equal(parse_cap(f, f->media, strlen(f->media), 159), VA_ETOOBIG);
    assert_non_null(strstr(f->why, "media.payload too big"));
    /* and the other way round */
    uint8_t ff[160];
    memset(ff, 0xFF, sizeof(ff));
    char enc[217] = {0};
    assert_int_equal(tw_b64_encode(enc, ff, sizeof(ff)), 216);
    assert_memory_equal(enc, b64, 216);
}

static void test_payload_lengths(void **state)
{
    struct fx *f = *state;
    /* any length, empty included, into a buffer of just that size */
    for (size_t len = 0; len <= 400; len++) {
        uint8_t raw[400];
        for (size_t i = 0; i < len; i++)
            raw[i] = (uint8_t)(i * 37 + len);
        char b64[600];
        size_t n = tw_b64_encode(b64, raw, len);
        assert_int_equal(n, tw_b64_encoded_len(len));
        char msg[1024];
        int k = snprintf(msg, sizeof(msg),
                         "{\"event\":\"media\",\"sequenceNumber\":\"5\",\"streamSid\":\"" STREAM
                         "\",\"media\":{\"track\":\"inbound\",\"chunk\":\"4\","
                         "\"timestamp\":\"60\",\"payload\":\"%.*s\"}}",
                         (int)n, b64);
        assert_true(k > 0 && (size_t)k < sizeof(msg));
        assert_int_equal(parse_cap(f, msg, (size_t)k, len), 0);
        assert_int_equal(f->ev.media.payload_len, len);
        if (len)
            assert_memory_equal(f->ev.media.payload, raw, len);
        else
            assert_null(f->ev.media.payload);
        if (len)
            assert_int_equal(parse_cap(f, msg, (size_t)k, len - 1), VA_ETOOBIG);
    }
    /* no room at all: only an empty payload passes */
    const char *empty = "{\"event\":\"media\",\"sequenceNumber\":\"5\",\"streamSid\":\"" STREAM
                        "\",\"media\":{\"track\":\"inbound\",\"chunk\":\"4\","
                        "\"timestamp\":\"60\",\"payload\":\"\"}}";
    assert_int_equal(tw_media_parse(&f->ev, empty, strlen(empty), NULL, 0, NULL, 0), 0);
    assert_int_equal(f->ev.media.payload_len, 0);
    assert_int_equal(tw_media_parse(&f->ev, f->media, strlen(f->media), NULL, 0, NULL, 0),
                     VA_ETOOBIG);
}

static void test_bad_base64(void **state)
{
    struct fx *f = *state;
    static const char *const bad[] = {
        "A",      "AA",    "AAA",        "AAAAA",    "AB=C",     "A===",
        "====",   "=AAA",  "AA=A",       "AAAA====", "AA==AAAA", "AAA*",
        "AA-_",   "AA AA", " AAAA",      "AAAA ",    "AAAA\\n",  "AAAA\\r\\nAAAA",
        "AA\\tA", "éAAA",  "AA\\u0001A", "AAA.",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char json[64];
        snprintf(json, sizeof(json), "\"%s\"", bad[i]);
        char *m = mutate(f->media, "media.payload", json);
        expect_err(f, m, VA_EPROTO, "media.payload not valid base64");
        cJSON_free(m);
    }
    /* ... also straight through the codec, with '=' at each position of a group */
    uint8_t out[16];
    size_t n;
    for (int pos = 0; pos < 4; pos++) {
        char g[9] = "AAAAAAAA";
        g[pos] = '=';
        assert_int_equal(tw_b64_decode(out, sizeof(out), g, 8, &n), VA_EPROTO);
        if (pos >= 2)
            continue;
        char h[5] = "AAAA";
        h[pos] = '=';
        assert_int_equal(tw_b64_decode(out, sizeof(out), h, 4, &n), VA_EPROTO);
    }
    /* every byte outside the alphabet, in every position of the last group */
    for (int c = 0; c < 256; c++) {
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '+' || c == '/' || c == '=')
            continue;
        for (int pos = 0; pos < 4; pos++) {
            char g[8] = "QUJDQUJD";
            g[4 + pos] = (char)c;
            assert_int_equal(tw_b64_decode(out, sizeof(out), g, 8, &n), VA_EPROTO);
        }
    }
    /* unused low bits set: decoded anyway, as OpenSSL does ("QR==" and "QUI=" mean "A", "AB") */
    assert_int_equal(tw_b64_decode(out, sizeof(out), "QR==", 4, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 'A');
    assert_int_equal(tw_b64_decode(out, sizeof(out), "QUJ=", 4, &n), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(out, "AB", 2);
}

static void test_base64_vectors(void **state)
{
    (void)state;
    /* RFC 4648 §10 */
    static const struct {
        const char *raw, *b64;
    } v[] = {{"", ""},
             {"f", "Zg=="},
             {"fo", "Zm8="},
             {"foo", "Zm9v"},
             {"foob", "Zm9vYg=="},
             {"fooba", "Zm9vYmE="},
             {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char enc[16] = {0};
        size_t rl = strlen(v[i].raw), bl = strlen(v[i].b64);
        assert_int_equal(tw_b64_encode(enc, (const uint8_t *)v[i].raw, rl), bl);
        assert_memory_equal(enc, v[i].b64, bl);
        uint8_t dec[8];
        size_t n = 99;
        assert_int_equal(tw_b64_decode(dec, rl, v[i].b64, bl, &n), 0);
        assert_int_equal(n, rl);
        assert_memory_equal(dec, v[i].raw, rl);
        if (rl) {
            uint8_t guard[8];
            memset(guard, 0xAA, sizeof(guard));
            assert_int_equal(tw_b64_decode(guard, rl - 1, v[i].b64, bl, &n), VA_ETOOBIG);
            for (size_t k = 0; k < sizeof(guard); k++)
                assert_int_equal(guard[k], 0xAA); /* untouched */
        }
    }
    /* all 256 byte values, every length to 3 x 64 + 2 */
    uint8_t raw[194], back[194];
    char enc[260];
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (uint8_t)(255 - i);
    for (size_t len = 0; len <= sizeof(raw); len++) {
        size_t n = tw_b64_encode(enc, raw, len), m = 0;
        assert_int_equal(n, tw_b64_encoded_len(len));
        assert_int_equal(tw_b64_decode(back, len, enc, n, &m), 0);
        assert_int_equal(m, len);
        assert_memory_equal(back, raw, len);
    }
    /* the whole alphabet */
    uint8_t all[48];
    for (int i = 0; i < 48; i++)
        all[i] = 0;
    const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 0;
    assert_int_equal(tw_b64_decode(all, sizeof(all), alpha, 64, &n), 0);
    assert_int_equal(n, 48);
    assert_int_equal(tw_b64_encode(enc, all, 48), 64);
    assert_memory_equal(enc, alpha, 64);
}

/* --- bounds --- */

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 3);
    assert_non_null(s);
    s[0] = '"';
    memset(s + 1, c, n);
    s[n + 1] = '"';
    s[n + 2] = '\0';
    return s;
}

static void test_oversize_fields(void **state)
{
    struct fx *f = *state;
    static const struct {
        int ref;
        const char *path;
    } sids[] = {{1, "start.accountSid"}, {1, "start.callSid"}, {2, "streamSid"},
                {3, "streamSid"},        {4, "streamSid"},     {5, "streamSid"},
                {5, "stop.accountSid"},  {5, "stop.callSid"}};
    for (size_t i = 0; i < sizeof(sids) / sizeof(sids[0]); i++) {
        char *v = repeat('S', 64);
        char *m = mutate(ref_msg(f, sids[i].ref), sids[i].path, v);
        int err = parse(f, m);
        if (err)
            fail_msg("%s: %s", sids[i].path, f->why);
        cJSON_free(m);
        free(v);
        v = repeat('S', 65);
        m = mutate(ref_msg(f, sids[i].ref), sids[i].path, v);
        char want[128];
        snprintf(want, sizeof(want), "%s too long (65 bytes, at most 64)", sids[i].path);
        expect_err(f, m, VA_ETOOBIG, want);
        cJSON_free(m);
        free(v);
    }
    /* start.streamSid, with the top-level copy matching */
    char *v = repeat('M', 64);
    char *m1 = mutate(REF_START, "start.streamSid", v);
    char *m = mutate(m1, "streamSid", v);
    expect_ok(f, m, TW_EV_START);
    assert_int_equal(strlen(f->ev.stream_sid), 64);
    cJSON_free(m);
    cJSON_free(m1);
    free(v);
    v = repeat('M', 65);
    m = mutate(REF_START, "start.streamSid", v);
    expect_err(f, m, VA_ETOOBIG, "start.streamSid too long (65 bytes, at most 64)");
    cJSON_free(m);
    free(v);

    /* mark name: 256 bytes pass, 257 do not (bytes, not characters) */
    v = repeat('n', 256);
    m = mutate(REF_MARK, "mark.name", v);
    expect_ok(f, m, TW_EV_MARK);
    assert_int_equal(f->ev.mark.name_len, 256);
    assert_int_equal(strlen(f->ev.mark.name), 256);
    cJSON_free(m);
    free(v);
    v = repeat('n', 257);
    m = mutate(REF_MARK, "mark.name", v);
    expect_err(f, m, VA_ETOOBIG, "mark.name too long (257 bytes, at most 256)");
    cJSON_free(m);
    free(v);
    char uni[300];
    size_t k = 0;
    uni[k++] = '"';
    for (int i = 0; i < 128; i++) {
        memcpy(uni + k, "\xc3\xa9", 2); /* 128 x é = 256 bytes */
        k += 2;
    }
    memcpy(uni + k, "\"", 2);
    m = mutate(REF_MARK, "mark.name", uni);
    expect_ok(f, m, TW_EV_MARK);
    assert_int_equal(f->ev.mark.name_len, 256);
    cJSON_free(m);
    memcpy(uni + k, "x\"", 3);
    m = mutate(REF_MARK, "mark.name", uni);
    expect_err(f, m, VA_ETOOBIG, NULL);
    cJSON_free(m);
}

/* A start message with n custom parameters, each named P<i> with a value making the
 * pair pair_len bytes long. */
static char *start_with_params(size_t n, size_t pair_len)
{
    cJSON *root = cJSON_Parse(REF_START);
    assert_non_null(root);
    cJSON *cp = cJSON_CreateObject();
    for (size_t i = 0; i < n; i++) {
        char name[24];
        snprintf(name, sizeof(name), "P%zu", i);
        size_t vlen = pair_len - strlen(name);
        char *val = malloc(vlen + 1);
        assert_non_null(val);
        memset(val, 'a' + (char)(i % 26), vlen);
        val[vlen] = '\0';
        cJSON_AddStringToObject(cp, name, val);
        free(val);
    }
    cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "start"),
                                           "customParameters", cp);
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    assert_non_null(out);
    return out;
}

static void test_custom_parameters(void **state)
{
    struct fx *f = *state;
    /* the most there can be: 32 pairs of 499 bytes */
    char *m = start_with_params(32, 499);
    expect_ok(f, m, TW_EV_START);
    const struct tw_ev_start *s = &f->ev.start;
    assert_int_equal(s->nparams, 32);
    for (size_t i = 0; i < 32; i++) {
        char name[24];
        snprintf(name, sizeof(name), "P%zu", i);
        assert_string_equal(tw_start_param_name(s, i), name);
        assert_int_equal(s->params[i].name_len, strlen(name));
        assert_int_equal(s->params[i].value_len, 499 - strlen(name));
        assert_int_equal(strlen(tw_start_param_value(s, i)), 499 - strlen(name));
        assert_int_equal(tw_start_param_value(s, i)[0], 'a' + (char)(i % 26));
        size_t vl = 0;
        assert_ptr_equal(tw_start_param(s, name, &vl), tw_start_param_value(s, i));
        assert_int_equal(vl, 499 - strlen(name));
    }
    cJSON_free(m);
    m = start_with_params(33, 10);
    expect_err(f, m, VA_ETOOBIG, "start.customParameters has more than 32 entries");
    cJSON_free(m);
    m = start_with_params(1, 500);
    expect_err(f, m, VA_ETOOBIG,
               "start.customParameters.P0: name and value 500 bytes, at most 499");
    cJSON_free(m);
    /* a name alone too long, and an empty name and value */
    char *v = repeat('N', 500);
    char doc[700];
    snprintf(doc, sizeof(doc), "{%s:\"\"}", v);
    m = mutate(REF_START, "start.customParameters", doc);
    expect_err(f, m, VA_ETOOBIG, NULL);
    assert_non_null(strstr(f->why, "name and value 500 bytes"));
    cJSON_free(m);
    free(v);
    m = mutate(REF_START, "start.customParameters", "{\"\":\"\"}");
    expect_ok(f, m, TW_EV_START);
    assert_int_equal(f->ev.start.nparams, 1);
    assert_string_equal(tw_start_param(&f->ev.start, "", NULL), "");
    cJSON_free(m);
    m = mutate(REF_START, "start.customParameters", "{}");
    expect_ok(f, m, TW_EV_START);
    assert_int_equal(f->ev.start.nparams, 0);
    assert_null(tw_start_param(&f->ev.start, "From", NULL));
    cJSON_free(m);
    /* escapes decode: name and value as the caller sent them */
    m = mutate(REF_START, "start.customParameters",
               "{\"Caller Name\":\"Zo\\u00eb O'Neil \\\"Z\\\"\"}");
    expect_ok(f, m, TW_EV_START);
    assert_string_equal(tw_start_param(&f->ev.start, "Caller Name", NULL),
                        "Zo\xc3\xab O'Neil \"Z\"");
    cJSON_free(m);
}

/* A media message of exactly 64 KiB: the WebSocket layer's bound for Twilio. */
static void test_64k_message(void **state)
{
    struct fx *f = *state;
    const size_t total = 64 * 1024;
    const char *head = "{\"event\":\"media\",\"sequenceNumber\":\"99\",\"streamSid\":\"" STREAM
                       "\",\"media\":{\"track\":\"inbound\",\"chunk\":\"98\",\"timestamp\":"
                       "\"1940\",\"payload\":\"";
    const char *tail = "\"}}";
    size_t room = total - strlen(head) - strlen(tail);
    size_t b64_len = room / 4 * 4;
    size_t raw_len = b64_len / 4 * 3;
    uint8_t *raw = malloc(raw_len);
    char *msg = malloc(total);
    assert_non_null(raw);
    assert_non_null(msg);
    for (size_t i = 0; i < raw_len; i++)
        raw[i] = (uint8_t)(i ^ (i >> 8));
    size_t k = strlen(head);
    memcpy(msg, head, k);
    assert_int_equal(tw_b64_encode(msg + k, raw, raw_len), b64_len);
    k += b64_len;
    memcpy(msg + k, tail, strlen(tail));
    k += strlen(tail);
    memset(msg + k, ' ', total - k); /* trailing whitespace is allowed */
    assert_int_equal(parse_cap(f, msg, total, raw_len), 0);
    assert_int_equal(f->ev.type, TW_EV_MEDIA);
    assert_int_equal(f->ev.media.payload_len, raw_len);
    assert_memory_equal(f->ev.media.payload, raw, raw_len);
    assert_int_equal(f->ev.media.timestamp, 1940);
    assert_true(raw_len > 48000);
    assert_int_equal(parse_cap(f, msg, total, raw_len - 1), VA_ETOOBIG);
    free(msg);
    free(raw);
}

/* --- malformed input --- */

static void test_malformed_json(void **state)
{
    struct fx *f = *state;
    static const char *const bad[] = {
        "{",
        "}",
        "{\"event\":",
        "{\"event\":\"media\"",
        "{\"event\":\"media\",}",
        "{'event':'media'}",
        "{event:\"media\"}",
        "nul",
        "{\"event\":\"media\\x\"}",
        "{\"event\":\"media\" \"x\":1}",
        "{\"a\":[1,2}",
        "\xef\xbb",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_err(f, bad[i], VA_EPROTO, NULL);
        if (!strstr(f->why, "JSON does not parse (at byte "))
            fail_msg("%s: %s", bad[i], f->why);
    }
    static const char *const not_obj[] = {"[]",        "null", "1",
                                          "\"media\"", "true", "[{\"event\":\"media\"}]"};
    for (size_t i = 0; i < sizeof(not_obj) / sizeof(not_obj[0]); i++)
        expect_err(f, not_obj[i], VA_EPROTO, "message not a JSON object");
    expect_err(f, "{} x", VA_EPROTO, "bytes after the JSON value (at byte 3)");
    expect_err(f, "{}{}", VA_EPROTO, "bytes after the JSON value (at byte 2)");
    expect_err(f, "{\"event\":\"connected\"},", VA_EPROTO, NULL);
    expect_err(f, "{}", VA_EPROTO, "event missing");
    /* whitespace around the object is fine */
    expect_ok(f, " \t\r\n{\"event\":\"connected\"} \t\r\n", TW_EV_CONNECTED);
    /* empty input, NULL input, a NUL byte inside the length */
    assert_int_equal(parse_cap(f, "", 0, AUDIO_CAP), VA_EPROTO);
    assert_string_equal(f->why, "empty message");
    assert_int_equal(tw_media_parse(&f->ev, NULL, 5, f->audio, AUDIO_CAP, NULL, 0), VA_EPROTO);
    assert_int_equal(parse_cap(f, LIT("{\"event\":\"connected\"}\0"), AUDIO_CAP), VA_EPROTO);
    assert_int_equal(parse_cap(f, LIT("{\"event\":\"conn\0ected\"}"), AUDIO_CAP), 0);
    assert_int_equal(f->ev.type, TW_EV_UNKNOWN); /* a raw NUL cuts cJSON's string */
    /* deep nesting ends in cJSON's limit, not in a stack overflow */
    size_t depth = 5000;
    char *deep = malloc(2 * depth + 32);
    assert_non_null(deep);
    size_t k = (size_t)snprintf(deep, 32, "{\"event\":\"x\",\"a\":");
    for (size_t i = 0; i < depth; i++)
        deep[k++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[k++] = ']';
    deep[k++] = '}';
    assert_int_equal(parse_cap(f, deep, k, AUDIO_CAP), VA_EPROTO);
    free(deep);
}

/* Every proper prefix of every reference message fails cleanly (no over-read: the
 * copy has exactly the prefix's length). */
static void test_truncated(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < NREFS; i++) {
        const char *msg = ref_msg(f, i);
        size_t len = strlen(msg);
        for (size_t cut = 0; cut < len; cut++)
            assert_int_equal(parse_cap(f, msg, cut, AUDIO_CAP), VA_EPROTO);
        assert_int_equal(parse_cap(f, msg, len, AUDIO_CAP), 0);
    }
}

static void test_errbuf(void **state)
{
    struct fx *f = *state;
    /* no buffer: still the code */
    assert_int_equal(tw_media_parse(&f->ev, LIT("{}"), f->audio, AUDIO_CAP, NULL, 99), VA_EPROTO);
    char tiny[6];
    memset(tiny, 'x', sizeof(tiny));
    assert_int_equal(tw_media_parse(&f->ev, LIT("{}"), f->audio, AUDIO_CAP, tiny, sizeof(tiny)),
                     VA_EPROTO);
    assert_string_equal(tiny, "event");
    char one[1] = {'x'};
    assert_int_equal(tw_media_parse(&f->ev, LIT("{}"), f->audio, AUDIO_CAP, one, 1), VA_EPROTO);
    assert_int_equal(one[0], '\0');
    /* a success clears a stale reason */
    char why[64] = "stale";
    assert_int_equal(
        tw_media_parse(&f->ev, LIT("{\"event\":\"connected\"}"), f->audio, AUDIO_CAP, why, 64), 0);
    assert_string_equal(why, "");
}

/* --- builders --- */

static void assert_buf(const struct va_buf *b, const char *want)
{
    size_t n = strlen(want);
    if (b->len != n || memcmp(b->data, want, n) != 0)
        fail_msg("got  %.*s\nwant %s", (int)b->len, b->data ? b->data : "", want);
    assert_int_equal(b->data[b->len], '\0');
}

static void test_build_exact(void **state)
{
    (void)state;
    struct va_buf b;
    va_buf_init(&b, 1 << 16);
    uint8_t ff[160];
    memset(ff, 0xFF, sizeof(ff));
    char silent[217] = {0};
    silent_b64(silent);
    char want[512];
    snprintf(want, sizeof(want),
             "{\"event\":\"media\",\"streamSid\":\"" STREAM "\",\"media\":{\"payload\":\"%s\"}}",
             silent);
    assert_int_equal(tw_media_build_media(&b, STREAM, ff, sizeof(ff)), 0);
    assert_buf(&b, want);

    va_buf_reset(&b);
    assert_int_equal(tw_media_build_media(&b, STREAM, (const uint8_t *)"foobar", 6), 0);
    assert_buf(&b, "{\"event\":\"media\",\"streamSid\":\"" STREAM
                   "\",\"media\":{\"payload\":\"Zm9vYmFy\"}}");
    va_buf_reset(&b);
    assert_int_equal(tw_media_build_media(&b, STREAM, NULL, 0), 0);
    assert_buf(&b,
               "{\"event\":\"media\",\"streamSid\":\"" STREAM "\",\"media\":{\"payload\":\"\"}}");

    va_buf_reset(&b);
    assert_int_equal(tw_media_build_mark(&b, STREAM, "g1:item_a1:340"), 0);
    assert_buf(&b, "{\"event\":\"mark\",\"streamSid\":\"" STREAM
                   "\",\"mark\":{\"name\":\"g1:item_a1:340\"}}");

    va_buf_reset(&b);
    assert_int_equal(tw_media_build_clear(&b, STREAM), 0);
    assert_buf(&b, "{\"event\":\"clear\",\"streamSid\":\"" STREAM "\"}");

    /* they append: three messages back to back */
    va_buf_reset(&b);
    assert_int_equal(tw_media_build_clear(&b, "MZ1"), 0);
    assert_int_equal(tw_media_build_mark(&b, "MZ1", "m"), 0);
    assert_int_equal(tw_media_build_media(&b, "MZ1", (const uint8_t *)"f", 1), 0);
    assert_buf(&b, "{\"event\":\"clear\",\"streamSid\":\"MZ1\"}"
                   "{\"event\":\"mark\",\"streamSid\":\"MZ1\",\"mark\":{\"name\":\"m\"}}"
                   "{\"event\":\"media\",\"streamSid\":\"MZ1\",\"media\":{\"payload\":\"Zg==\"}}");

    /* strings are JSON-escaped */
    va_buf_reset(&b);
    assert_int_equal(tw_media_build_mark(&b, "MZ\"1", "a\"b\\c\nd"), 0);
    assert_buf(&b, "{\"event\":\"mark\",\"streamSid\":\"MZ\\\"1\",\"mark\":{\"name\":"
                   "\"a\\\"b\\\\c\\nd\"}}");
    /* non-ASCII goes through va_json_str(): UTF-8 kept, controls and bad bytes escaped */
    va_buf_reset(&b);
    assert_int_equal(tw_media_build_mark(&b, STREAM, "\xc3\xa9\x01\xff\x7f"), 0);
    assert_buf(&b, "{\"event\":\"mark\",\"streamSid\":\"" STREAM
                   "\",\"mark\":{\"name\":\"\xc3\xa9\\u0001\\ufffd\\u007f\"}}");
    va_buf_deinit(&b);
}

static void test_build_refuses(void **state)
{
    (void)state;
    struct va_buf b;
    va_buf_init(&b, 1 << 16);
    assert_int_equal(va_buf_append_str(&b, "keep"), 0);
    char sid65[66], name257[258];
    memset(sid65, 'M', 65);
    sid65[65] = '\0';
    memset(name257, 'n', 257);
    name257[257] = '\0';
    uint8_t x = 0;
    assert_int_equal(tw_media_build_media(&b, NULL, &x, 1), VA_EINVAL);
    assert_int_equal(tw_media_build_media(&b, "", &x, 1), VA_EINVAL);
    assert_int_equal(tw_media_build_media(&b, sid65, &x, 1), VA_EINVAL);
    assert_int_equal(tw_media_build_media(&b, STREAM, NULL, 1), VA_EINVAL);
    assert_int_equal(tw_media_build_mark(&b, STREAM, NULL), VA_EINVAL);
    assert_int_equal(tw_media_build_mark(&b, STREAM, ""), VA_EINVAL);
    assert_int_equal(tw_media_build_mark(&b, STREAM, name257), VA_EINVAL);
    assert_int_equal(tw_media_build_mark(&b, NULL, "m"), VA_EINVAL);
    assert_int_equal(tw_media_build_clear(&b, NULL), VA_EINVAL);
    assert_int_equal(tw_media_build_clear(&b, sid65), VA_EINVAL);
    assert_buf(&b, "keep");
    /* 64-byte SID and 256-byte name are the limits, not past them */
    sid65[64] = '\0';
    name257[256] = '\0';
    assert_int_equal(tw_media_build_mark(&b, sid65, name257), 0);
    va_buf_deinit(&b);

    /* a full buffer: VA_ETOOBIG at every cut, and the buffer as it was */
    uint8_t audio[2000];
    memset(audio, 0x7F, sizeof(audio));
    struct va_buf full;
    va_buf_init(&full, 1 << 16);
    assert_int_equal(tw_media_build_media(&full, STREAM, audio, sizeof(audio)), 0);
    size_t need = full.len;
    va_buf_reset(&full);
    assert_int_equal(tw_media_build_mark(&full, STREAM, name257), 0);
    size_t need_mark = full.len;
    va_buf_reset(&full);
    assert_int_equal(tw_media_build_clear(&full, STREAM), 0);
    size_t need_clear = full.len;
    assert_int_equal(need_clear, 66);
    va_buf_deinit(&full);
    for (size_t max = 4; max < need; max += 97) {
        struct va_buf s;
        va_buf_init(&s, max);
        assert_int_equal(va_buf_append_str(&s, "abcd"), 0);
        assert_int_equal(tw_media_build_media(&s, STREAM, audio, sizeof(audio)), VA_ETOOBIG);
        assert_int_equal(s.len, 4);
        assert_string_equal(s.data, "abcd");
        assert_int_equal(tw_media_build_mark(&s, STREAM, name257),
                         max >= 4 + need_mark ? 0 : VA_ETOOBIG);
        va_buf_reset(&s);
        assert_int_equal(tw_media_build_clear(&s, STREAM), max >= need_clear ? 0 : VA_ETOOBIG);
        va_buf_deinit(&s);
    }
    struct va_buf exact;
    va_buf_init(&exact, need);
    assert_int_equal(tw_media_build_media(&exact, STREAM, audio, sizeof(audio)), 0);
    assert_int_equal(exact.len, need);
    va_buf_deinit(&exact);
}

/* Build, add the fields only Twilio sends, parse: the audio comes back. Several 1 KiB
 * encoding blocks are crossed (768 bytes each). */
static void test_round_trip(void **state)
{
    struct fx *f = *state;
    static const size_t lens[] = {0, 1, 2, 3, 159, 160, 161, 320, 767, 768, 769, 1536, 4800, 8001};
    uint8_t *audio = malloc(8001);
    assert_non_null(audio);
    uint32_t x = 12345;
    for (size_t i = 0; i < 8001; i++) {
        x = x * 1103515245u + 12345u;
        audio[i] = (uint8_t)(x >> 16);
    }
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        struct va_buf b;
        va_buf_init(&b, 1 << 16);
        assert_int_equal(tw_media_build_media(&b, STREAM, audio, lens[i]), 0);
        /* exactly the three keys of §4.2, in order */
        cJSON *root = cJSON_ParseWithLength(b.data, b.len);
        assert_non_null(root);
        assert_int_equal(cJSON_GetArraySize(root), 3);
        assert_string_equal(root->child->string, "event");
        assert_string_equal(root->child->next->string, "streamSid");
        assert_string_equal(root->child->next->next->string, "media");
        assert_int_equal(cJSON_GetArraySize(root->child->next->next), 1);
        cJSON_Delete(root);
        /* splice in sequenceNumber, track, chunk and timestamp */
        char *msg = malloc(b.len + 128);
        assert_non_null(msg);
        const char *at = strstr(b.data, "\"media\":{");
        assert_non_null(at);
        size_t pre = (size_t)(at - b.data);
        int k = snprintf(msg, b.len + 128,
                         "%.*s\"sequenceNumber\":\"7\",\"media\":{\"track\":\"outbound\","
                         "\"chunk\":\"6\",\"timestamp\":\"100\",%s",
                         (int)pre, b.data, at + strlen("\"media\":{"));
        assert_int_equal(parse_cap(f, msg, (size_t)k, lens[i]), 0);
        assert_int_equal(f->ev.type, TW_EV_MEDIA);
        assert_string_equal(f->ev.stream_sid, STREAM);
        assert_int_equal(f->ev.media.track, TW_TRACK_OUTBOUND);
        assert_int_equal(f->ev.media.payload_len, lens[i]);
        if (lens[i])
            assert_memory_equal(f->ev.media.payload, audio, lens[i]);
        free(msg);
        va_buf_deinit(&b);
    }
    free(audio);
}

/* Media messages near the compact shape the in-place path reads: each parses (or fails)
 * as cJSON alone would have it; parse_cap() compares the two. */
static void test_media_shapes(void **state)
{
    struct fx *f = *state;
    static const char *const ok[] = {
        "{\"event\":\"media\",\"sequenceNumber\":\"2\",\"media\":{\"track\":\"inbound\","
        "\"chunk\":\"1\",\"timestamp\":\"0\",\"payload\":\"/w==\"},\"streamSid\":\"MZ1\"}",
        /* keys shuffled, unknown keys of every type, whitespace, an escape */
        "{\"streamSid\":\"MZ1\",\"x\":\"y\",\"media\":{\"payload\":\"\",\"chunk\":\"07\","
        "\"timestamp\":\"9\",\"track\":\"outbound_track\",\"z\":\"\"},\"event\":\"media\","
        "\"sequenceNumber\":\"18446744073709551615\"}",
        "{\"event\":\"media\",\"n\":1,\"sequenceNumber\":\"2\",\"media\":{\"track\":\"x\","
        "\"chunk\":\"1\",\"timestamp\":\"0\",\"payload\":\"AAAA\",\"o\":{}},\"streamSid\":\"MZ1\"}",
        " {\"event\" : \"media\",\"sequenceNumber\":\"2\",\"media\":{\"track\":\"inbound\","
        "\"chunk\":\"1\",\"timestamp\":\"0\",\"payload\":\"AAAA\"},\"streamSid\":\"MZ\\u0031\"}\n",
        /* duplicates: the first wins */
        "{\"event\":\"media\",\"sequenceNumber\":\"2\",\"sequenceNumber\":\"x\",\"media\":"
        "{\"track\":\"inbound\",\"chunk\":\"1\",\"timestamp\":\"0\",\"payload\":\"AAAA\"},"
        "\"media\":1,\"streamSid\":\"MZ1\"}",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(parse(f, ok[i]), 0);
        assert_int_equal(f->ev.type, TW_EV_MEDIA);
    }
    static const char *const bad[] = {
        "{\"event\":\"media\",\"sequenceNumber\":\"\",\"media\":{\"track\":\"inbound\","
        "\"chunk\":\"1\",\"timestamp\":\"0\",\"payload\":\"/w==\"},\"streamSid\":\"MZ1\"}",
        "{\"event\":\"media\",\"sequenceNumber\":\"2\",\"media\":{\"track\":\"inbound\","
        "\"chunk\":\"18446744073709551616\",\"timestamp\":\"0\",\"payload\":\"/w==\"},"
        "\"streamSid\":\"MZ1\"}",
        "{\"event\":\"media\",\"sequenceNumber\":\"2\",\"media\":{\"track\":\"inbound\","
        "\"chunk\":\"1\",\"timestamp\":\"0\",\"payload\":\"/w=\"},\"streamSid\":\"MZ1\"}",
        "{\"event\":\"media\",\"sequenceNumber\":\"2\",\"media\":{\"track\":\"inbound\","
        "\"chunk\":\"1\",\"timestamp\":\"0\",\"payload\":\"/w==\"},\"streamSid\":\"\"}",
        "{\"event\":\"media\",\"sequenceNumber\":\"2\",\"media\":{\"track\":\"inbound\","
        "\"chunk\":\"1\",\"payload\":\"/w==\"},\"streamSid\":\"MZ1\"}",
        "{\"event\":\"media\",\"sequenceNumber\":\"2\",\"media\":{\"track\":\"inbound\","
        "\"chunk\":\"1\",\"timestamp\":\"0\",\"payload\":\"/w==\"},\"streamSid\":\"MZ1\"}x",
        "{\"event\":\"media\",\"sequenceNumber\":\"2\",\"media\":{\"track\":\"inbound\","
        "\"chunk\":\"1\",\"timestamp\":\"0\",\"payload\":\"/w==\"},\"streamSid\":\"MZ1\"",
        "{\"event\":\"media\",\"sequenceNumber\":\"2\",\"media\":\"x\",\"streamSid\":\"MZ1\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_not_equal(parse(f, bad[i]), 0);
    /* a payload one byte over the room: VA_ETOOBIG either way */
    assert_int_equal(parse_cap(f, ok[2], strlen(ok[2]), 2), VA_ETOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_reference_messages), T(test_reuse_event),    T(test_shuffled_keys),
        T(test_unknown_keys),       T(test_unknown_events), T(test_missing_fields),
        T(test_mistyped_fields),    T(test_media_format),   T(test_tracks_and_digits),
        T(test_sequence_numbers),   T(test_silent_frame),   T(test_payload_lengths),
        T(test_bad_base64),         T(test_base64_vectors), T(test_oversize_fields),
        T(test_custom_parameters),  T(test_64k_message),    T(test_malformed_json),
        T(test_truncated),          T(test_errbuf),         T(test_build_exact),
        T(test_build_refuses),      T(test_round_trip),     T(test_media_shapes),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
