/* tests/unit/test_realtime_events.c: OpenAI Realtime (GA) events, built and parsed;
 * reference openai-realtime.md §2 to §5 and §10. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include <math.h>

#include "core/buf.h"
#include "core/err.h"
#include "realtime/events.h"
#include "twilio/media.h"

#define AUDIO_CAP (64 * 1024)
#define DELTA_BYTES 3200 /* 400 ms of audio/pcmu, as in reference §10 */

/* --- reference texts, verbatim --- */

/* §2, the whole session.update example. */
static const char REF_SESSION_UPDATE[] =
    "{\"type\":\"session.update\",\"event_id\":\"cfg_1\",\"session\":{\"type\":\"realtime\",\n"
    " \"instructions\":\"Member-services assistant. Short answers: this is a phone call.\",\n"
    " \"output_modalities\":[\"audio\"],\n"
    " \"audio\":{\"input\":{\"format\":{\"type\":\"audio/pcmu\"},\"noise_reduction\":{\"type\":"
    "\"near_field\"},\n"
    "   \"transcription\":{\"model\":\"gpt-4o-mini-transcribe\",\"language\":\"en\"},\n"
    "   \"turn_detection\":{\"type\":\"server_vad\",\"threshold\":0.5,\"prefix_padding_ms\":300,"
    "\"silence_duration_ms\":500,\n"
    "    \"idle_timeout_ms\":null,\"create_response\":true,\"interrupt_response\":true}},\n"
    "  \"output\":{\"format\":{\"type\":\"audio/pcmu\"},\"voice\":\"marin\",\"speed\":1.0}},\n"
    " \"tools\":[{\"type\":\"function\",\"name\":\"get_member_balance\",\"description\":\"Points "
    "balance of a member.\",\n"
    "   \"parameters\":{\"type\":\"object\",\"properties\":{\"memberId\":{\"type\":\"string\"}},"
    "\"required\":[\"memberId\"]}},\n"
    "  {\"type\":\"function\",\"name\":\"redeem_voucher\",\"description\":\"Redeem a voucher for a "
    "member.\",\n"
    "   \"parameters\":{\"type\":\"object\",\"properties\":{\"memberId\":{\"type\":\"string\"},"
    "\"code\":{\"type\":\"string\"}},\"required\":[\"memberId\",\"code\"]}}],\n"
    " \"tool_choice\":\"auto\",\"max_output_tokens\":\"inf\"}}";

/* The tools array of §2, as a config would hold it. */
static const char REF_TOOLS[] =
    "[{\"type\":\"function\",\"name\":\"get_member_balance\",\"description\":\"Points balance of a "
    "member.\",\"parameters\":{\"type\":\"object\",\"properties\":{\"memberId\":{\"type\":"
    "\"string\"}},\"required\":[\"memberId\"]}},{\"type\":\"function\",\"name\":"
    "\"redeem_voucher\",\"description\":\"Redeem a voucher for a member.\",\"parameters\":{"
    "\"type\":\"object\",\"properties\":{\"memberId\":{\"type\":\"string\"},\"code\":{\"type\":"
    "\"string\"}},\"required\":[\"memberId\",\"code\"]}}]";

/* §10, every "in" event (the "ev" member of each line). E4's "<b64, 3200 B = 400 ms>"
 * is filled in by setup(). */
static const char E1[] = "{\"type\":\"session.created\",\"event_id\":\"e1\",\"session\":{\"type\":"
                         "\"realtime\",\"id\":\"sess_1\",\"expires_at\":1756324625}}";
static const char E2[] =
    "{\"type\":\"session.updated\",\"event_id\":\"e2\",\"session\":{\"type\":\"realtime\","
    "\"audio\":{\"input\":{\"format\":{\"type\":\"audio/pcmu\"}},\"output\":{\"format\":{"
    "\"type\":\"audio/pcmu\"}}}}}";
static const char E3[] =
    "{\"type\":\"response.created\",\"event_id\":\"e3\",\"response\":{\"object\":\"realtime."
    "response\",\"id\":\"resp_1\",\"status\":\"in_progress\",\"status_details\":null,\"output\":["
    "]}}";
static const char E4_FMT[] =
    "{\"type\":\"response.output_audio.delta\",\"event_id\":\"e4\",\"response_id\":\"resp_1\","
    "\"item_id\":\"item_a1\",\"output_index\":0,\"content_index\":0,\"delta\":\"%s\"}";
static const char E5[] = "{\"type\":\"input_audio_buffer.speech_started\",\"event_id\":\"e5\","
                         "\"audio_start_ms\":900,\"item_id\":\"item_u1\"}";
static const char E6[] =
    "{\"type\":\"response.output_audio.done\",\"event_id\":\"e6\",\"response_id\":\"resp_1\","
    "\"item_id\":\"item_a1\",\"output_index\":0,\"content_index\":0}";
static const char E7[] = "{\"type\":\"response.done\",\"event_id\":\"e7\",\"response\":{\"id\":"
                         "\"resp_1\",\"status\":\"cancelled\",\"status_details\":{\"type\":"
                         "\"cancelled\",\"reason\":\"turn_detected\"}}}";
static const char E8[] = "{\"type\":\"conversation.item.truncated\",\"event_id\":\"e8\",\"item_"
                         "id\":\"item_a1\",\"content_index\":0,\"audio_end_ms\":200}";
static const char E9[] = "{\"type\":\"input_audio_buffer.speech_stopped\",\"event_id\":\"e9\","
                         "\"audio_end_ms\":3100,\"item_id\":\"item_u1\"}";
static const char E10[] = "{\"type\":\"input_audio_buffer.committed\",\"event_id\":\"e10\","
                          "\"previous_item_id\":\"item_a1\",\"item_id\":\"item_u1\"}";
static const char E11[] = "{\"type\":\"response.created\",\"event_id\":\"e11\",\"response\":{"
                          "\"id\":\"resp_2\",\"status\":\"in_progress\"}}";
static const char E12[] =
    "{\"type\":\"response.function_call_arguments.done\",\"event_id\":\"e12\",\"response_id\":"
    "\"resp_2\",\"item_id\":\"item_f1\",\"output_index\":0,\"call_id\":\"call_1\",\"name\":"
    "\"get_member_balance\",\"arguments\":\"{\\\"memberId\\\":\\\"member_123\\\"}\"}";
static const char E13[] =
    "{\"type\":\"conversation.item.input_audio_transcription.completed\",\"event_id\":\"e13\","
    "\"item_id\":\"item_u1\",\"content_index\":0,\"transcript\":\"What's my balance? Member "
    "123.\"}";
static const char E14[] =
    "{\"type\":\"response.done\",\"event_id\":\"e14\",\"response\":{\"id\":\"resp_2\",\"status\":"
    "\"completed\",\"output\":[{\"id\":\"item_f1\",\"type\":\"function_call\",\"status\":"
    "\"completed\",\"name\":\"get_member_balance\",\"call_id\":\"call_1\",\"arguments\":\"{\\\""
    "memberId\\\":\\\"member_123\\\"}\"}]}}";
static const char E15[] =
    "{\"type\":\"conversation.item.added\",\"event_id\":\"e15\",\"previous_item_id\":\"item_f1\","
    "\"item\":{\"id\":\"item_o1\",\"type\":\"function_call_output\",\"call_id\":\"call_1\"}}";
static const char E16[] = "{\"type\":\"response.created\",\"event_id\":\"e16\",\"response\":{"
                          "\"id\":\"resp_3\",\"status\":\"in_progress\"}}";
static const char E17[] =
    "{\"type\":\"response.output_audio_transcript.done\",\"event_id\":\"e17\",\"response_id\":"
    "\"resp_3\",\"item_id\":\"item_a2\",\"output_index\":0,\"content_index\":0,\"transcript\":"
    "\"You have 1,250 points.\"}";
static const char E18[] = "{\"type\":\"response.done\",\"event_id\":\"e18\",\"response\":{\"id\":"
                          "\"resp_3\",\"status\":\"completed\"}}";

/* §4 */
static const char R4_TRANSCRIPT_DELTA[] =
    "{\"type\":\"response.output_audio_transcript.delta\",\"event_id\":\"e1\",\"response_id\":"
    "\"resp_1\",\"item_id\":\"item_a1\",\"output_index\":0,\"content_index\":0,\"delta\":"
    "\"Hello, \"}";
static const char R4_ITEM_DONE[] =
    "{\"type\":\"conversation.item.done\",\"event_id\":\"e2\",\"previous_item_id\":\"item_u1\","
    "\"item\":{\"id\":\"item_a1\",\"type\":\"message\",\"role\":\"assistant\",\"status\":"
    "\"completed\",\"content\":[{\"type\":\"output_audio\",\"transcript\":\"Hello, how can I "
    "help?\"}]}}";
static const char R4_RESPONSE_DONE[] =
    "{\"type\":\"response.done\",\"event_id\":\"e3\",\"response\":{\"object\":\"realtime."
    "response\",\"id\":\"resp_1\",\"status\":\"completed\",\"status_details\":null,\"output\":[],"
    "\"usage\":{\"total_tokens\":253,\"input_tokens\":132,\"output_tokens\":121}}}";
static const char R4_RATE_LIMITS[] =
    "{\"type\":\"rate_limits.updated\",\"event_id\":\"e4\",\"rate_limits\":[{\"name\":"
    "\"requests\",\"limit\":1000,\"remaining\":999,\"reset_seconds\":60},{\"name\":\"tokens\","
    "\"limit\":50000,\"remaining\":49950,\"reset_seconds\":60}]}";

/* §5, the ellipses included. */
static const char R5_ERROR[] =
    "{\"type\":\"error\",\"event_id\":\"e9\",\"error\":{\"type\":\"invalid_request_error\","
    "\"code\":\"\xe2\x80\xa6\",\"message\":\"\xe2\x80\xa6\",\"param\":null,\"event_id\":"
    "\"cl_7\"}}";

/* Not in the reference; shapes from its prose (§4, §5). */
static const char X_TRANSCRIPTION_FAILED[] =
    "{\"type\":\"conversation.item.input_audio_transcription.failed\",\"event_id\":\"e20\","
    "\"item_id\":\"item_u2\",\"content_index\":0,\"error\":{\"type\":\"transcription_error\","
    "\"code\":\"audio_unintelligible\",\"message\":\"Audio is unintelligible.\",\"param\":null}}";
static const char X_DELETED[] = "{\"type\":\"conversation.item.deleted\",\"event_id\":\"e21\","
                                "\"item_id\":\"item_a1\"}";
static const char X_TRUNCATE_ERROR[] =
    "{\"type\":\"error\",\"event_id\":\"e22\",\"error\":{\"type\":\"invalid_request_error\","
    "\"code\":null,\"message\":\"Audio content of 120ms is already shorter than 800ms\","
    "\"param\":null,\"event_id\":null}}";

/* --- fixture --- */

struct fx {
    struct rt_event ev;
    uint8_t audio[AUDIO_CAP];
    char why[256];
    uint8_t delta_audio[DELTA_BYTES];
    char e4[8192]; /* E4_FMT with the delta filled in */
    struct va_buf b;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    char b64[(DELTA_BYTES + 2) / 3 * 4 + 1];
    for (size_t i = 0; i < DELTA_BYTES; i++)
        f->delta_audio[i] = (uint8_t)(i * 7 + (i >> 5));
    b64[tw_b64_encode(b64, f->delta_audio, DELTA_BYTES)] = '\0';
    snprintf(f->e4, sizeof(f->e4), E4_FMT, b64);
    va_buf_init(&f->b, 1 << 20);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    va_buf_deinit(&f->b);
    free(f);
    return 0;
}

/* rt_event_parse() and the cJSON-only rt_event_parse_json() agree on msg: the same
 * result, and for an event the same fields and audio. */
static void expect_same_path(struct fx *f, const char *copy, size_t len, size_t cap, int err)
{
    struct rt_event *ref = calloc(1, sizeof(*ref));
    uint8_t *ra = malloc(cap ? cap : 1);
    assert_true(ref && ra);
    char why[256];
    assert_int_equal(rt_event_parse_json(ref, copy, len, ra, cap, why, sizeof(why)), err);
    assert_int_equal(ref->type, f->ev.type);
    if (!err) {
        assert_string_equal(ref->type_name, f->ev.type_name);
        assert_string_equal(ref->item_id, f->ev.item_id);
        assert_string_equal(ref->response_id, f->ev.response_id);
        assert_int_equal(ref->audio_len, f->ev.audio_len);
        assert_int_equal(!ref->audio, !f->ev.audio);
        if (ref->audio_len)
            assert_memory_equal(ra, f->ev.audio, ref->audio_len);
    }
    free(ra);
    free(ref);
}

/* Parses a copy of msg[0, len) of exactly len bytes (no terminator), so ASan sees any
 * read past the end; checks the errbuf contract either way, and that the delta fast path
 * gives what cJSON gives. */
static int parse_cap(struct fx *f, const char *msg, size_t len, size_t cap)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, msg, len);
    memset(f->why, 'x', sizeof(f->why));
    int err = rt_event_parse(&f->ev, copy, len, f->audio, cap, f->why, sizeof(f->why));
    expect_same_path(f, copy, len, cap, err);
    free(copy);
    assert_non_null(memchr(f->why, '\0', sizeof(f->why)));
    if (err) {
        assert_int_equal(f->ev.type, RT_EV_NONE);
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

static void expect_ok(struct fx *f, const char *msg, enum rt_event_type type)
{
    int err = parse(f, msg);
    if (err)
        fail_msg("%s: %s\nin: %.300s", va_strerror(err), f->why, msg);
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

/* The fields a type does not name stay empty. */
static void assert_blank_ids(const struct rt_event *ev, unsigned keep)
{
    enum { ITEM = 1, RESP = 2, CALL = 4, NAME = 8, SESS = 16 };
    if (!(keep & ITEM))
        assert_string_equal(ev->item_id, "");
    if (!(keep & RESP))
        assert_string_equal(ev->response_id, "");
    if (!(keep & CALL))
        assert_string_equal(ev->call_id, "");
    if (!(keep & NAME))
        assert_string_equal(ev->name, "");
    if (!(keep & SESS))
        assert_string_equal(ev->session_id, "");
}

/* --- parser: reference messages --- */

static void test_reference_session_events(void **state)
{
    struct fx *f = *state;
    expect_ok(f, E1, RT_EV_SESSION_CREATED);
    assert_string_equal(f->ev.type_name, "session.created");
    assert_string_equal(f->ev.session_id, "sess_1");
    assert_int_equal(f->ev.expires_at, 1756324625);
    assert_false(f->ev.formats_known);
    assert_blank_ids(&f->ev, 16);

    expect_ok(f, E2, RT_EV_SESSION_UPDATED);
    assert_true(f->ev.formats_known);
    assert_int_equal(f->ev.in_format, RT_FMT_PCMU);
    assert_int_equal(f->ev.out_format, RT_FMT_PCMU);
    assert_int_equal(f->ev.expires_at, 0);
    assert_blank_ids(&f->ev, 0);
}

static void test_reference_response_events(void **state)
{
    struct fx *f = *state;
    expect_ok(f, E3, RT_EV_RESPONSE_CREATED);
    assert_string_equal(f->ev.response_id, "resp_1");
    assert_blank_ids(&f->ev, 2);
    expect_ok(f, E11, RT_EV_RESPONSE_CREATED);
    assert_string_equal(f->ev.response_id, "resp_2");
    expect_ok(f, E16, RT_EV_RESPONSE_CREATED);
    assert_string_equal(f->ev.response_id, "resp_3");

    expect_ok(f, E7, RT_EV_RESPONSE_DONE);
    assert_string_equal(f->ev.response_id, "resp_1");
    assert_string_equal(f->ev.status, "cancelled");
    assert_string_equal(f->ev.status_reason, "turn_detected");
    assert_string_equal(f->ev.error_type, "");

    expect_ok(f, E14, RT_EV_RESPONSE_DONE);
    assert_string_equal(f->ev.response_id, "resp_2");
    assert_string_equal(f->ev.status, "completed");
    assert_string_equal(f->ev.status_reason, "");
    assert_blank_ids(&f->ev, 2);

    expect_ok(f, E18, RT_EV_RESPONSE_DONE);
    assert_string_equal(f->ev.response_id, "resp_3");
    assert_string_equal(f->ev.status, "completed");

    expect_ok(f, R4_RESPONSE_DONE, RT_EV_RESPONSE_DONE);
    assert_string_equal(f->ev.response_id, "resp_1");
    assert_string_equal(f->ev.status, "completed");
    assert_string_equal(f->ev.status_reason, "");

    expect_ok(f, E6, RT_EV_AUDIO_DONE);
    assert_string_equal(f->ev.response_id, "resp_1");
    assert_string_equal(f->ev.item_id, "item_a1");
    assert_blank_ids(&f->ev, 3);

    expect_ok(f, E17, RT_EV_TRANSCRIPT_DONE);
    assert_string_equal(f->ev.response_id, "resp_3");
    assert_string_equal(f->ev.item_id, "item_a2");
    assert_string_equal(f->ev.text, "You have 1,250 points.");
    assert_int_equal(f->ev.text_len, strlen("You have 1,250 points."));
    assert_false(f->ev.text_cut);

    expect_ok(f, E12, RT_EV_FUNCTION_CALL);
    assert_string_equal(f->ev.type_name, "response.function_call_arguments.done");
    assert_string_equal(f->ev.response_id, "resp_2");
    assert_string_equal(f->ev.item_id, "item_f1");
    assert_string_equal(f->ev.call_id, "call_1");
    assert_string_equal(f->ev.name, "get_member_balance");
    assert_string_equal(f->ev.text, "{\"memberId\":\"member_123\"}");
    assert_int_equal(f->ev.text_len, strlen("{\"memberId\":\"member_123\"}"));
    assert_false(f->ev.text_cut);
}

static void test_reference_audio_delta(void **state)
{
    struct fx *f = *state;
    expect_ok(f, f->e4, RT_EV_AUDIO_DELTA);
    assert_string_equal(f->ev.type_name, "response.output_audio.delta");
    assert_string_equal(f->ev.response_id, "resp_1");
    assert_string_equal(f->ev.item_id, "item_a1");
    assert_ptr_equal(f->ev.audio, f->audio);
    assert_int_equal(f->ev.audio_len, DELTA_BYTES);
    assert_memory_equal(f->ev.audio, f->delta_audio, DELTA_BYTES);
    assert_blank_ids(&f->ev, 3);
    assert_int_equal(f->ev.text_len, 0);
}

static void test_reference_input_events(void **state)
{
    struct fx *f = *state;
    expect_ok(f, E5, RT_EV_SPEECH_STARTED);
    assert_int_equal(f->ev.audio_ms, 900);
    assert_string_equal(f->ev.item_id, "item_u1");
    assert_blank_ids(&f->ev, 1);

    expect_ok(f, E9, RT_EV_SPEECH_STOPPED);
    assert_int_equal(f->ev.audio_ms, 3100);
    assert_string_equal(f->ev.item_id, "item_u1");

    expect_ok(f, E10, RT_EV_COMMITTED);
    assert_string_equal(f->ev.item_id, "item_u1");
    assert_int_equal(f->ev.audio_ms, 0);

    expect_ok(f, E13, RT_EV_INPUT_TRANSCRIPT);
    assert_string_equal(f->ev.item_id, "item_u1");
    assert_string_equal(f->ev.text, "What's my balance? Member 123.");
    assert_int_equal(f->ev.text_len, 30);

    expect_ok(f, X_TRANSCRIPTION_FAILED, RT_EV_INPUT_TRANSCRIPT_FAILED);
    assert_string_equal(f->ev.item_id, "item_u2");
    assert_string_equal(f->ev.error_type, "transcription_error");
    assert_string_equal(f->ev.error_code, "audio_unintelligible");
    assert_string_equal(f->ev.text, "Audio is unintelligible.");
    assert_string_equal(f->ev.error_event_id, "");
}

static void test_reference_item_events(void **state)
{
    struct fx *f = *state;
    expect_ok(f, E8, RT_EV_ITEM_TRUNCATED);
    assert_string_equal(f->ev.item_id, "item_a1");
    assert_int_equal(f->ev.audio_ms, 200);

    expect_ok(f, X_DELETED, RT_EV_ITEM_DELETED);
    assert_string_equal(f->ev.item_id, "item_a1");

    expect_ok(f, E15, RT_EV_OTHER);
    assert_string_equal(f->ev.type_name, "conversation.item.added");
    assert_blank_ids(&f->ev, 0);

    expect_ok(f, R4_ITEM_DONE, RT_EV_OTHER);
    assert_string_equal(f->ev.type_name, "conversation.item.done");
    expect_ok(f, R4_TRANSCRIPT_DELTA, RT_EV_OTHER);
    assert_string_equal(f->ev.type_name, "response.output_audio_transcript.delta");
    assert_int_equal(f->ev.text_len, 0);
}

static void test_reference_rate_limits(void **state)
{
    struct fx *f = *state;
    expect_ok(f, R4_RATE_LIMITS, RT_EV_RATE_LIMITS);
    assert_int_equal(f->ev.remaining_requests, 999);
    assert_int_equal(f->ev.remaining_tokens, 49950);

    expect_ok(f, "{\"type\":\"rate_limits.updated\",\"rate_limits\":[]}", RT_EV_RATE_LIMITS);
    assert_int_equal(f->ev.remaining_requests, -1);
    assert_int_equal(f->ev.remaining_tokens, -1);

    /* unknown limits pass unchecked; known ones in any order */
    expect_ok(f,
              "{\"type\":\"rate_limits.updated\",\"rate_limits\":[{\"name\":\"tokens\","
              "\"remaining\":0},{\"name\":\"audio_seconds\",\"remaining\":\"x\"}]}",
              RT_EV_RATE_LIMITS);
    assert_int_equal(f->ev.remaining_requests, -1);
    assert_int_equal(f->ev.remaining_tokens, 0);
}

static void test_reference_errors(void **state)
{
    struct fx *f = *state;
    expect_ok(f, R5_ERROR, RT_EV_ERROR);
    assert_string_equal(f->ev.error_type, "invalid_request_error");
    assert_string_equal(f->ev.error_code, "\xe2\x80\xa6");
    assert_string_equal(f->ev.text, "\xe2\x80\xa6");
    assert_int_equal(f->ev.text_len, 3);
    assert_string_equal(f->ev.error_event_id, "cl_7");

    /* §5: code, param and event_id nullable, here all null */
    expect_ok(f, X_TRUNCATE_ERROR, RT_EV_ERROR);
    assert_string_equal(f->ev.error_type, "invalid_request_error");
    assert_string_equal(f->ev.error_code, "");
    assert_string_equal(f->ev.error_event_id, "");
    assert_string_equal(f->ev.text, "Audio content of 120ms is already shorter than 800ms");

    /* and absent */
    expect_ok(f, "{\"type\":\"error\",\"error\":{\"type\":\"server_error\",\"message\":\"\"}}",
              RT_EV_ERROR);
    assert_string_equal(f->ev.error_type, "server_error");
    assert_string_equal(f->ev.error_code, "");
    assert_string_equal(f->ev.text, "");

    expect_ok(f,
              "{\"type\":\"error\",\"event_id\":\"e9\",\"error\":{\"type\":\"invalid_request_"
              "error\",\"code\":\"beta_api_shape_disabled\",\"message\":\"m\",\"param\":\"session."
              "type\",\"event_id\":\"cfg_1\"}}",
              RT_EV_ERROR);
    assert_string_equal(f->ev.error_code, "beta_api_shape_disabled");
    assert_string_equal(f->ev.error_event_id, "cfg_1");

    /* response.done of a failed response carries its error */
    expect_ok(f,
              "{\"type\":\"response.done\",\"response\":{\"id\":\"resp_9\",\"status\":\"failed\","
              "\"status_details\":{\"type\":\"failed\",\"error\":{\"type\":\"server_error\","
              "\"code\":null,\"message\":\"boom\"}}}}",
              RT_EV_RESPONSE_DONE);
    assert_string_equal(f->ev.status, "failed");
    assert_string_equal(f->ev.status_reason, "");
    assert_string_equal(f->ev.error_type, "server_error");
    assert_string_equal(f->ev.error_code, "");
    assert_string_equal(f->ev.text, "boom");

    expect_ok(f,
              "{\"type\":\"response.done\",\"response\":{\"id\":\"resp_9\",\"status\":"
              "\"incomplete\",\"status_details\":{\"type\":\"incomplete\",\"reason\":\"max_output_"
              "tokens\"}}}",
              RT_EV_RESPONSE_DONE);
    assert_string_equal(f->ev.status, "incomplete");
    assert_string_equal(f->ev.status_reason, "max_output_tokens");
}

/* A reused event keeps nothing of the previous message. */
static void test_reuse_event(void **state)
{
    struct fx *f = *state;
    expect_ok(f, R5_ERROR, RT_EV_ERROR);
    expect_ok(f, f->e4, RT_EV_AUDIO_DELTA);
    assert_string_equal(f->ev.error_type, "");
    assert_string_equal(f->ev.error_code, "");
    assert_string_equal(f->ev.error_event_id, "");
    assert_string_equal(f->ev.text, "");
    assert_int_equal(f->ev.remaining_requests, -1);
    expect_ok(f, E7, RT_EV_RESPONSE_DONE);
    assert_null(f->ev.audio);
    assert_int_equal(f->ev.audio_len, 0);
    assert_string_equal(f->ev.item_id, "");
    expect_err(f, "{\"type\":\"response.done\"}", VA_EPROTO, NULL);
    expect_ok(f, E1, RT_EV_SESSION_CREATED);
    assert_string_equal(f->ev.status, "");
    assert_string_equal(f->ev.status_reason, "");
}

static void test_session_formats(void **state)
{
    struct fx *f = *state;
    char msg[512];
    static const char fmt[] = "{\"type\":\"session.updated\",\"session\":{\"audio\":{\"input\":{"
                              "\"format\":%s},\"output\":{\"format\":%s}}}}";
    static const struct {
        const char *in, *out;
        bool known;
        enum rt_audio_format fin, fout;
    } cases[] = {
        {"{\"type\":\"audio/pcmu\"}", "{\"type\":\"audio/pcmu\"}", true, RT_FMT_PCMU, RT_FMT_PCMU},
        {"{\"type\":\"audio/pcm\",\"rate\":24000}", "{\"type\":\"audio/pcm\",\"rate\":24000}", true,
         RT_FMT_PCM24, RT_FMT_PCM24},
        {"{\"type\":\"audio/pcm\"}", "{\"type\":\"audio/pcmu\"}", true, RT_FMT_PCM24, RT_FMT_PCMU},
        {"{\"type\":\"audio/pcma\"}", "{\"type\":\"audio/pcmu\"}", false, 0, 0},
        {"{\"type\":\"audio/pcm\",\"rate\":16000}", "{\"type\":\"audio/pcmu\"}", false, 0, 0},
        /* beta names are not formats here */
        {"{\"type\":\"g711_ulaw\"}", "{\"type\":\"audio/pcmu\"}", false, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(msg, sizeof(msg), fmt, cases[i].in, cases[i].out);
        expect_ok(f, msg, RT_EV_SESSION_UPDATED);
        assert_int_equal(f->ev.formats_known, cases[i].known);
        if (cases[i].known) {
            assert_int_equal(f->ev.in_format, cases[i].fin);
            assert_int_equal(f->ev.out_format, cases[i].fout);
        }
    }
    /* one direction absent, or no audio at all: not known */
    expect_ok(f,
              "{\"type\":\"session.updated\",\"session\":{\"audio\":{\"input\":{\"format\":{"
              "\"type\":\"audio/pcmu\"}}}}}",
              RT_EV_SESSION_UPDATED);
    assert_false(f->ev.formats_known);
    expect_ok(f, "{\"type\":\"session.updated\",\"session\":{\"id\":\"sess_2\"}}",
              RT_EV_SESSION_UPDATED);
    assert_false(f->ev.formats_known);
    assert_string_equal(f->ev.session_id, "sess_2");
    /* session.created with the defaults of §2 */
    expect_ok(f,
              "{\"type\":\"session.created\",\"session\":{\"id\":\"sess_3\",\"model\":\"gpt-"
              "realtime\",\"expires_at\":1756324625,\"audio\":{\"input\":{\"format\":{\"type\":"
              "\"audio/pcm\",\"rate\":24000}},\"output\":{\"format\":{\"type\":\"audio/pcm\","
              "\"rate\":24000},\"voice\":\"marin\"}}}}",
              RT_EV_SESSION_CREATED);
    assert_true(f->ev.formats_known);
    assert_int_equal(f->ev.in_format, RT_FMT_PCM24);
    assert_int_equal(f->ev.out_format, RT_FMT_PCM24);
    /* expires_at absent */
    expect_ok(f, "{\"type\":\"session.created\",\"session\":{\"id\":\"s\"}}",
              RT_EV_SESSION_CREATED);
    assert_int_equal(f->ev.expires_at, 0);
}

static void test_other_events(void **state)
{
    struct fx *f = *state;
    /* beta-era names are OTHER, whatever they carry */
    expect_ok(f, "{\"type\":\"response.audio.delta\",\"delta\":7}", RT_EV_OTHER);
    assert_string_equal(f->ev.type_name, "response.audio.delta");
    expect_ok(f, "{\"type\":\"response.audio_transcript.done\"}", RT_EV_OTHER);
    expect_ok(f, "{\"type\":\"conversation.item.input_audio_transcription.delta\",\"delta\":\"x\"}",
              RT_EV_OTHER);
    /* ... except conversation.item.created, named like added */
    expect_ok(f,
              "{\"type\":\"conversation.item.created\",\"item\":{\"id\":\"item_o1\",\"type\":"
              "\"function_call_output\"}}",
              RT_EV_OTHER);
    assert_string_equal(f->ev.type_name, "conversation.item.added");
    expect_ok(f, "{\"type\":\"input_audio_buffer.timeout_triggered\"}", RT_EV_OTHER);
    /* a long name is cut for the log */
    char msg[256], name[101];
    memset(name, 'n', 100);
    name[100] = '\0';
    snprintf(msg, sizeof(msg), "{\"type\":\"%s\"}", name);
    expect_ok(f, msg, RT_EV_OTHER);
    assert_int_equal(strlen(f->ev.type_name), sizeof(f->ev.type_name) - 1);
    assert_memory_equal(f->ev.type_name, name, sizeof(f->ev.type_name) - 1);
    /* names compare exactly */
    expect_ok(f, "{\"type\":\"Error\"}", RT_EV_OTHER);
    expect_ok(f, "{\"type\":\"error \"}", RT_EV_OTHER);
}

/* --- parser: required fields --- */

/* Parses json, walks the dotted path (numbers index arrays), and replaces the last
 * member with repl (JSON text) or removes it when repl is NULL. Returns the new text. */
static char *edit(const char *json, const char *path, const char *repl)
{
    cJSON *root = cJSON_Parse(json);
    assert_non_null(root);
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    cJSON *parent = root;
    char *key = buf;
    for (char *dot; (dot = strchr(key, '.')) != NULL; key = dot + 1) {
        *dot = '\0';
        parent = key[0] >= '0' && key[0] <= '9' ? cJSON_GetArrayItem(parent, atoi(key))
                                                : cJSON_GetObjectItemCaseSensitive(parent, key);
        assert_non_null(parent);
    }
    cJSON *item;
    if (key[0] >= '0' && key[0] <= '9')
        item = cJSON_GetArrayItem(parent, atoi(key));
    else
        item = cJSON_GetObjectItemCaseSensitive(parent, key);
    if (!item)
        fail_msg("%s not in %s", path, json);
    if (repl) {
        cJSON *r = cJSON_Parse(repl);
        assert_non_null(r);
        /* the keyed call: ReplaceItemViaPointer would leave the member without its name */
        if (cJSON_IsArray(parent))
            assert_true(cJSON_ReplaceItemInArray(parent, atoi(key), r));
        else
            assert_true(cJSON_ReplaceItemInObjectCaseSensitive(parent, key, r));
    } else {
        cJSON_Delete(cJSON_DetachItemViaPointer(parent, item));
    }
    char *out = cJSON_PrintUnformatted(root);
    assert_non_null(out);
    cJSON_Delete(root);
    return out;
}

static void expect_edit(struct fx *f, const char *json, const char *path, const char *repl,
                        int want, const char *why)
{
    char *msg = edit(json, path, repl);
    expect_err(f, msg, want, why);
    free(msg);
}

static void test_missing_fields(void **state)
{
    struct fx *f = *state;
    const struct {
        const char *json, *path, *why;
    } cases[] = {
        {E1, "type", "type missing"},
        {E1, "session", "session.created: session missing"},
        {E1, "session.id", "session.created: session.id missing"},
        {E2, "session", "session.updated: session missing"},
        {E5, "audio_start_ms", "input_audio_buffer.speech_started: audio_start_ms missing"},
        {E5, "item_id", "input_audio_buffer.speech_started: item_id missing"},
        {E9, "audio_end_ms", "input_audio_buffer.speech_stopped: audio_end_ms missing"},
        {E9, "item_id", "input_audio_buffer.speech_stopped: item_id missing"},
        {E10, "item_id", "input_audio_buffer.committed: item_id missing"},
        {E3, "response", "response.created: response missing"},
        {E3, "response.id", "response.created: response.id missing"},
        {E7, "response", "response.done: response missing"},
        {E7, "response.id", "response.done: response.id missing"},
        {E7, "response.status", "response.done: response.status missing"},
        {f->e4, "response_id", "response.output_audio.delta: response_id missing"},
        {f->e4, "item_id", "response.output_audio.delta: item_id missing"},
        {f->e4, "delta", "response.output_audio.delta: delta missing"},
        {E6, "response_id", "response.output_audio.done: response_id missing"},
        {E6, "item_id", "response.output_audio.done: item_id missing"},
        {E17, "item_id", "response.output_audio_transcript.done: item_id missing"},
        {E17, "transcript", "response.output_audio_transcript.done: transcript missing"},
        {E13, "item_id", "conversation.item.input_audio_transcription.completed: item_id missing"},
        {E13, "transcript",
         "conversation.item.input_audio_transcription.completed: transcript missing"},
        {X_TRANSCRIPTION_FAILED, "item_id",
         "conversation.item.input_audio_transcription.failed: item_id missing"},
        {X_TRANSCRIPTION_FAILED, "error",
         "conversation.item.input_audio_transcription.failed: error missing"},
        {E12, "response_id", "response.function_call_arguments.done: response_id missing"},
        {E12, "item_id", "response.function_call_arguments.done: item_id missing"},
        {E12, "call_id", "response.function_call_arguments.done: call_id missing"},
        {E12, "name", "response.function_call_arguments.done: name missing"},
        {E12, "arguments", "response.function_call_arguments.done: arguments missing"},
        {E8, "item_id", "conversation.item.truncated: item_id missing"},
        {E8, "audio_end_ms", "conversation.item.truncated: audio_end_ms missing"},
        {X_DELETED, "item_id", "conversation.item.deleted: item_id missing"},
        {R4_RATE_LIMITS, "rate_limits", "rate_limits.updated: rate_limits missing"},
        {R4_RATE_LIMITS, "rate_limits.0.name", "rate_limits.updated: rate_limits[0].name missing"},
        {R4_RATE_LIMITS, "rate_limits.1.remaining",
         "rate_limits.updated: rate_limits[1].remaining missing"},
        {R5_ERROR, "error", "error: error missing"},
        {R5_ERROR, "error.type", "error: error.type missing"},
        {R5_ERROR, "error.message", "error: error.message missing"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_edit(f, cases[i].json, cases[i].path, NULL, VA_EPROTO, cases[i].why);

    /* the optional ones may go */
    static const struct {
        const char *json, *path;
        enum rt_event_type type;
    } optional[] = {
        {E1, "session.expires_at", RT_EV_SESSION_CREATED},
        {E1, "event_id", RT_EV_SESSION_CREATED},
        {E7, "response.status_details", RT_EV_RESPONSE_DONE},
        {E7, "response.status_details.reason", RT_EV_RESPONSE_DONE},
        {E17, "response_id", RT_EV_TRANSCRIPT_DONE},
        {R5_ERROR, "error.code", RT_EV_ERROR},
        {R5_ERROR, "error.param", RT_EV_ERROR},
        {R5_ERROR, "error.event_id", RT_EV_ERROR},
        {X_TRANSCRIPTION_FAILED, "error.type", RT_EV_INPUT_TRANSCRIPT_FAILED},
        {X_TRANSCRIPTION_FAILED, "error.code", RT_EV_INPUT_TRANSCRIPT_FAILED},
        {X_TRANSCRIPTION_FAILED, "error.message", RT_EV_INPUT_TRANSCRIPT_FAILED},
        {E2, "session.audio", RT_EV_SESSION_UPDATED},
        {E2, "session.audio.input.format", RT_EV_SESSION_UPDATED},
    };
    for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++) {
        char *msg = edit(optional[i].json, optional[i].path, NULL);
        expect_ok(f, msg, optional[i].type);
        free(msg);
    }
}

static void test_mistyped_fields(void **state)
{
    struct fx *f = *state;
    const struct {
        const char *json, *path, *repl;
        int err;
        const char *why;
    } cases[] = {
        {E1, "type", "7", VA_EPROTO, "type not a string"},
        {E1, "type", "\"\"", VA_EPROTO, "type empty"},
        {E1, "type", "null", VA_EPROTO, "type not a string"},
        {E1, "session", "\"sess_1\"", VA_EPROTO, "session.created: session not an object"},
        {E1, "session.id", "1", VA_EPROTO, "session.created: session.id not a string"},
        {E1, "session.id", "\"\"", VA_EPROTO, "session.created: session.id empty"},
        {E1, "session.expires_at", "\"1756324625\"", VA_EPROTO,
         "session.created: session.expires_at not a number"},
        {E1, "session.expires_at", "-1", VA_EPROTO,
         "session.created: session.expires_at not a non-negative integer"},
        {E2, "session.audio", "[]", VA_EPROTO, "session.updated: session.audio not an object"},
        {E2, "session.audio.input", "\"pcmu\"", VA_EPROTO,
         "session.updated: session.audio.input not an object"},
        {E2, "session.audio.input.format", "\"audio/pcmu\"", VA_EPROTO,
         "session.updated: session.audio.input.format not an object"},
        {E2, "session.audio.output.format.type", "null", VA_EPROTO,
         "session.updated: session.audio.output.format.type not a string"},
        {E2, "session.audio.output.format", "{}", VA_EPROTO,
         "session.updated: session.audio.output.format.type missing"},
        {E5, "audio_start_ms", "\"900\"", VA_EPROTO,
         "input_audio_buffer.speech_started: audio_start_ms not a number"},
        {E5, "audio_start_ms", "900.5", VA_EPROTO,
         "input_audio_buffer.speech_started: audio_start_ms not a non-negative integer"},
        {E5, "audio_start_ms", "1e300", VA_EPROTO,
         "input_audio_buffer.speech_started: audio_start_ms not a non-negative integer"},
        {E9, "audio_end_ms", "null", VA_EPROTO,
         "input_audio_buffer.speech_stopped: audio_end_ms not a number"},
        {E10, "item_id", "\"\"", VA_EPROTO, "input_audio_buffer.committed: item_id empty"},
        {E10, "item_id", "[\"item_u1\"]", VA_EPROTO,
         "input_audio_buffer.committed: item_id not a string"},
        {E3, "response", "null", VA_EPROTO, "response.created: response not an object"},
        {E7, "response.status", "1", VA_EPROTO, "response.done: response.status not a string"},
        {E7, "response.status", "\"\"", VA_EPROTO, "response.done: response.status empty"},
        {E7, "response.status_details", "\"cancelled\"", VA_EPROTO,
         "response.done: response.status_details not an object"},
        {E7, "response.status_details.reason", "{}", VA_EPROTO,
         "response.done: response.status_details.reason not a string"},
        {f->e4, "delta", "7", VA_EPROTO, "response.output_audio.delta: delta not a string"},
        {f->e4, "delta", "\"abc\"", VA_EPROTO, "response.output_audio.delta: delta not base64"},
        {f->e4, "delta", "\"ab=c\"", VA_EPROTO, "response.output_audio.delta: delta not base64"},
        {f->e4, "delta", "\"a b=\"", VA_EPROTO, "response.output_audio.delta: delta not base64"},
        {f->e4, "response_id", "null", VA_EPROTO,
         "response.output_audio.delta: response_id not a string"},
        {E17, "response_id", "3", VA_EPROTO,
         "response.output_audio_transcript.done: response_id not a string"},
        {E17, "transcript", "null", VA_EPROTO,
         "response.output_audio_transcript.done: transcript not a string"},
        {E12, "arguments", "{\"memberId\":\"member_123\"}", VA_EPROTO,
         "response.function_call_arguments.done: arguments not a string"},
        {E8, "audio_end_ms", "-200", VA_EPROTO,
         "conversation.item.truncated: audio_end_ms not a non-negative integer"},
        {R4_RATE_LIMITS, "rate_limits", "{}", VA_EPROTO,
         "rate_limits.updated: rate_limits not an array"},
        {R4_RATE_LIMITS, "rate_limits.1", "5", VA_EPROTO,
         "rate_limits.updated: rate_limits[1] not an object"},
        {R4_RATE_LIMITS, "rate_limits.0.remaining", "\"999\"", VA_EPROTO,
         "rate_limits.updated: rate_limits[0].remaining not a number"},
        {R4_RATE_LIMITS, "rate_limits.0.name", "1", VA_EPROTO,
         "rate_limits.updated: rate_limits[0].name not a string"},
        {R5_ERROR, "error", "\"boom\"", VA_EPROTO, "error: error not an object"},
        {R5_ERROR, "error.type", "null", VA_EPROTO, "error: error.type not a string"},
        {R5_ERROR, "error.code", "400", VA_EPROTO, "error: error.code not a string"},
        {R5_ERROR, "error.message", "null", VA_EPROTO, "error: error.message not a string"},
        {R5_ERROR, "error.event_id", "7", VA_EPROTO, "error: error.event_id not a string"},
        {X_TRANSCRIPTION_FAILED, "error", "null", VA_EPROTO,
         "conversation.item.input_audio_transcription.failed: error not an object"},
        {X_TRANSCRIPTION_FAILED, "error.code", "1", VA_EPROTO,
         "conversation.item.input_audio_transcription.failed: error.code not a string"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_edit(f, cases[i].json, cases[i].path, cases[i].repl, cases[i].err, cases[i].why);

    /* nullable and not required: null is absent */
    expect_edit(f, E7, "response.status_details.reason", "null", 0, NULL);
    expect_edit(f, X_TRANSCRIPTION_FAILED, "error.message", "null", 0, NULL);
    /* the largest exact integer passes (written here, as cJSON prints it rounded) */
    expect_ok(f,
              "{\"type\":\"input_audio_buffer.speech_started\",\"audio_start_ms\":"
              "9007199254740992,\"item_id\":\"item_u1\"}",
              RT_EV_SPEECH_STARTED);
    assert_int_equal(f->ev.audio_ms, 9007199254740992ull);
    expect_err(f,
               "{\"type\":\"input_audio_buffer.speech_started\",\"audio_start_ms\":"
               "18014398509481984,\"item_id\":\"item_u1\"}",
               VA_EPROTO,
               "input_audio_buffer.speech_started: audio_start_ms not a non-negative integer");
    /* unknown keys and key order do not matter */
    expect_ok(f,
              "{\"item_id\":\"i\",\"x\":{\"y\":[1,2]},\"type\":\"input_audio_buffer.committed\"}",
              RT_EV_COMMITTED);
}

/* --- parser: bounds --- */

static char *rep(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_id_lengths(void **state)
{
    struct fx *f = *state;
    const struct {
        const char *json, *path, *name;
        size_t max;
    } cases[] = {
        {E1, "session.id", "session.created: session.id", RT_ID_MAX},
        {E10, "item_id", "input_audio_buffer.committed: item_id", RT_ID_MAX},
        {f->e4, "item_id", "response.output_audio.delta: item_id", RT_ID_MAX},
        {f->e4, "response_id", "response.output_audio.delta: response_id", RT_ID_MAX},
        {E3, "response.id", "response.created: response.id", RT_ID_MAX},
        {E12, "call_id", "response.function_call_arguments.done: call_id", RT_ID_MAX},
        {E12, "name", "response.function_call_arguments.done: name", RT_ID_MAX},
        {R5_ERROR, "error.event_id", "error: error.event_id", RT_ID_MAX},
        {R5_ERROR, "error.code", "error: error.code", RT_CODE_MAX},
        {R5_ERROR, "error.type", "error: error.type", RT_CODE_MAX},
        {E7, "response.status", "response.done: response.status", 31},
        {E7, "response.status_details.reason", "response.done: response.status_details.reason", 63},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (size_t n = cases[i].max; n <= cases[i].max + 1; n++) {
            char *id = rep('i', n);
            char repl[256], why[256];
            snprintf(repl, sizeof(repl), "\"%s\"", id);
            snprintf(why, sizeof(why), "%s too long (%zu bytes, at most %zu)", cases[i].name, n,
                     cases[i].max);
            if (n == cases[i].max) {
                char *msg = edit(cases[i].json, cases[i].path, repl);
                if (parse(f, msg))
                    fail_msg("%s: %s", cases[i].name, f->why);
                free(msg);
            } else {
                expect_edit(f, cases[i].json, cases[i].path, repl, VA_ETOOBIG, why);
            }
            free(id);
        }
    }
    /* a full-length id lands whole */
    char *id = rep('z', RT_ID_MAX), repl[128];
    snprintf(repl, sizeof(repl), "\"%s\"", id);
    char *msg = edit(E12, "call_id", repl);
    expect_ok(f, msg, RT_EV_FUNCTION_CALL);
    assert_string_equal(f->ev.call_id, id);
    free(msg);
    free(id);
}

/* transcript = 'a' x pad, then tail; expects text_len kept bytes and text_cut. */
static void check_cut(struct fx *f, const char *base, const char *key, size_t pad, const char *tail,
                      size_t kept, bool cut)
{
    size_t tlen = strlen(tail);
    char *s = malloc(pad + tlen + 3);
    assert_non_null(s);
    s[0] = '"';
    memset(s + 1, 'a', pad);
    memcpy(s + 1 + pad, tail, tlen);
    memcpy(s + 1 + pad + tlen, "\"", 2);
    char *msg = edit(base, key, s);
    int err = parse(f, msg);
    if (err)
        fail_msg("%s", f->why);
    assert_int_equal(f->ev.text_len, kept);
    assert_int_equal(strlen(f->ev.text), kept);
    assert_int_equal(f->ev.text_cut, cut);
    /* what is kept is the start of the input, and valid UTF-8 up to its end */
    assert_memory_equal(f->ev.text, s + 1, kept);
    if (kept)
        assert_true(((unsigned char)f->ev.text[kept - 1] & 0xc0) != 0xc0);
    free(msg);
    free(s);
}

static void test_text_cut(void **state)
{
    struct fx *f = *state;
    /* up to RT_TEXT_MAX is whole */
    check_cut(f, E13, "transcript", RT_TEXT_MAX, "", RT_TEXT_MAX, false);
    check_cut(f, E13, "transcript", RT_TEXT_MAX - 2, "\xc3\xa9", RT_TEXT_MAX, false);
    /* past it, the cut never splits a sequence: 2, 3 and 4 bytes across the line */
    check_cut(f, E13, "transcript", RT_TEXT_MAX + 1, "", RT_TEXT_MAX, true);
    check_cut(f, E13, "transcript", RT_TEXT_MAX - 1, "\xc3\xa9", RT_TEXT_MAX - 1, true);
    check_cut(f, E13, "transcript", RT_TEXT_MAX - 2, "\xe2\x82\xac", RT_TEXT_MAX - 2, true);
    check_cut(f, E13, "transcript", RT_TEXT_MAX - 1, "\xe2\x82\xac", RT_TEXT_MAX - 1, true);
    check_cut(f, E13, "transcript", RT_TEXT_MAX - 3, "\xf0\x9f\x98\x80", RT_TEXT_MAX - 3, true);
    check_cut(f, E13, "transcript", RT_TEXT_MAX - 1, "\xf0\x9f\x98\x80", RT_TEXT_MAX - 1, true);
    check_cut(f, E13, "transcript", RT_TEXT_MAX, "\xf0\x9f\x98\x80", RT_TEXT_MAX, true);
    /* JSON escapes count as the UTF-8 they decode to */
    check_cut(f, E13, "transcript", RT_TEXT_MAX - 1, "\\u00e9", RT_TEXT_MAX - 1, true);
    check_cut(f, E13, "transcript", RT_TEXT_MAX - 3, "\\ud83d\\ude00x", RT_TEXT_MAX - 3, true);
    /* the same rule for every text field */
    check_cut(f, E17, "transcript", RT_TEXT_MAX - 1, "\xc3\xa9", RT_TEXT_MAX - 1, true);
    check_cut(f, E12, "arguments", 10000, "", RT_TEXT_MAX, true);
    check_cut(f, R5_ERROR, "error.message", RT_TEXT_MAX - 2, "\xe2\x80\xa6", RT_TEXT_MAX - 2, true);
    /* the other fields stay */
    assert_string_equal(f->ev.error_type, "invalid_request_error");
    assert_string_equal(f->ev.error_event_id, "cl_7");
}

static void test_delta_sizes(void **state)
{
    struct fx *f = *state;
    size_t len = strlen(f->e4);
    /* exactly the room there is, then one byte short */
    assert_int_equal(parse_cap(f, f->e4, len, DELTA_BYTES), 0);
    assert_int_equal(f->ev.audio_len, DELTA_BYTES);
    assert_int_equal(parse_cap(f, f->e4, len, DELTA_BYTES - 1), VA_ETOOBIG);
    assert_string_equal(f->why, "response.output_audio.delta: delta too big (4268 base64 "
                                "characters, room for 3199 bytes)");
    assert_int_equal(parse_cap(f, f->e4, len, 0), VA_ETOOBIG);

    /* no buffer at all: only an empty delta fits */
    static const char empty[] = "{\"type\":\"response.output_audio.delta\",\"response_id\":\"r\","
                                "\"item_id\":\"i\",\"delta\":\"\"}";
    assert_int_equal(rt_event_parse(&f->ev, empty, strlen(empty), NULL, 0, NULL, 0), 0);
    assert_int_equal(f->ev.type, RT_EV_AUDIO_DELTA);
    assert_int_equal(f->ev.audio_len, 0);
    assert_int_equal(rt_event_parse(&f->ev, f->e4, len, NULL, 0, f->why, sizeof(f->why)),
                     VA_ETOOBIG);

    /* every length edge of base64 padding */
    for (size_t n = 0; n < 40; n++) {
        uint8_t raw[40];
        char b64[64], msg[256];
        for (size_t i = 0; i < n; i++)
            raw[i] = (uint8_t)(255 - i * 13);
        b64[tw_b64_encode(b64, raw, n)] = '\0';
        snprintf(msg, sizeof(msg),
                 "{\"type\":\"response.output_audio.delta\",\"response_id\":\"r\",\"item_id\":"
                 "\"i\",\"delta\":\"%s\"}",
                 b64);
        assert_int_equal(parse_cap(f, msg, strlen(msg), n), 0);
        assert_int_equal(f->ev.audio_len, n);
        if (n)
            assert_memory_equal(f->audio, raw, n);
        if (n)
            assert_int_equal(parse_cap(f, msg, strlen(msg), n - 1), VA_ETOOBIG);
    }
}

static void test_malformed_json(void **state)
{
    struct fx *f = *state;
    expect_err(f, "", VA_EPROTO, "empty message");
    assert_int_equal(rt_event_parse(&f->ev, NULL, 0, f->audio, AUDIO_CAP, f->why, sizeof(f->why)),
                     VA_EPROTO);
    expect_err(f, "{", VA_EPROTO, NULL);
    expect_err(f, "{\"type\":\"error\",}", VA_EPROTO, NULL);
    expect_err(f, "{\"type\":\"error\" \"error\":{}}", VA_EPROTO, NULL);
    expect_err(f, "nul", VA_EPROTO, NULL);
    expect_err(f, "[]", VA_EPROTO, "message not a JSON object");
    expect_err(f, "\"session.created\"", VA_EPROTO, "message not a JSON object");
    expect_err(f, "null", VA_EPROTO, "message not a JSON object");
    expect_err(f, "{}", VA_EPROTO, "type missing");
    expect_err(f, "{\"type\":\"input_audio_buffer.committed\",\"item_id\":\"i\"} x", VA_EPROTO,
               "bytes after the JSON value (at byte 54)");
    expect_err(f, "{\"type\":\"x\"}{\"type\":\"x\"}", VA_EPROTO,
               "bytes after the JSON value (at byte 12)");
    expect_ok(f, " \r\n\t{\"type\":\"input_audio_buffer.committed\",\"item_id\":\"i\"}\n ",
              RT_EV_COMMITTED);
    /* a NUL inside the length ends nothing */
    static const char nul[] = "{\"type\":\"x\"}\0";
    assert_int_equal(parse_cap(f, nul, sizeof(nul) - 1, AUDIO_CAP), VA_EPROTO);
    assert_int_equal(parse_cap(f, nul, sizeof(nul) - 2, AUDIO_CAP), 0);
}

/* Every prefix of every reference message is refused (and ASan checks each read). */
static void test_truncated(void **state)
{
    struct fx *f = *state;
    const char *msgs[] = {
        E1,  E2,  E3,  f->e4,          E5,      E6, E7, E8, E9, E10, E11, E12, E13, E14, E15,
        E16, E17, E18, R4_RATE_LIMITS, R5_ERROR};
    for (size_t m = 0; m < sizeof(msgs) / sizeof(msgs[0]); m++) {
        size_t len = strlen(msgs[m]);
        size_t step = len > 1000 ? 37 : 1; /* the delta: every 37th offset and the end */
        for (size_t n = 0; n < len; n += step)
            assert_int_equal(parse_cap(f, msgs[m], n, AUDIO_CAP), VA_EPROTO);
        for (size_t n = len - 8; n < len; n++)
            assert_int_equal(parse_cap(f, msgs[m], n, AUDIO_CAP), VA_EPROTO);
        assert_int_equal(parse_cap(f, msgs[m], len, AUDIO_CAP), 0);
    }
}

static void test_errbuf(void **state)
{
    struct fx *f = *state;
    static const char msg[] = "{\"type\":\"response.output_audio.delta\"}";
    /* NULL or tiny errbuf: same result, nothing written past it */
    assert_int_equal(rt_event_parse(&f->ev, msg, strlen(msg), f->audio, AUDIO_CAP, NULL, 0),
                     VA_EPROTO);
    char small[12];
    memset(small, 'x', sizeof(small));
    assert_int_equal(rt_event_parse(&f->ev, msg, strlen(msg), f->audio, AUDIO_CAP, small, 8),
                     VA_EPROTO);
    assert_string_equal(small, "respons");
    assert_int_equal(small[8], 'x');
    assert_int_equal(rt_event_parse(&f->ev, msg, strlen(msg), f->audio, AUDIO_CAP, small, 1),
                     VA_EPROTO);
    assert_string_equal(small, "");
    /* cleared on success */
    memset(f->why, 'x', sizeof(f->why));
    assert_int_equal(
        rt_event_parse(&f->ev, E10, strlen(E10), f->audio, AUDIO_CAP, f->why, sizeof(f->why)), 0);
    assert_string_equal(f->why, "");
}

/* --- builders --- */

static struct rt_session_cfg ref_cfg(void)
{
    struct rt_session_cfg c = {
        .instructions = "Member-services assistant. Short answers: this is a phone call.",
        .voice = "marin",
        .format = RT_FMT_PCMU,
        .vad = RT_VAD_SERVER,
        .vad_threshold = 0.5,
        .vad_prefix_padding_ms = 300,
        .vad_silence_ms = 500,
        .create_response = true,
        .interrupt_response = true,
        .transcription_model = "gpt-4o-mini-transcribe",
        .transcription_language = "en",
        .noise_reduction = "near_field",
        .tools_json = REF_TOOLS,
    };
    return c;
}

/* Builds into a buffer already holding "<<", checks the exact text after it and that
 * it is one JSON object. */
static void expect_session(const struct rt_session_cfg *c, const char *event_id, const char *want)
{
    struct va_buf b;
    va_buf_init(&b, 1 << 16);
    assert_int_equal(va_buf_append_str(&b, "<<"), 0);
    int err = rt_build_session_update(&b, c, event_id);
    if (err)
        fail_msg("%s", va_strerror(err));
    if (strcmp(b.data + 2, want) != 0)
        fail_msg("got  %s\nwant %s", b.data + 2, want);
    assert_int_equal(b.len, 2 + strlen(want));
    cJSON *j = cJSON_Parse(b.data + 2);
    assert_non_null(j);
    assert_null(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "session"), "model"));
    cJSON_Delete(j);
    va_buf_deinit(&b);
}

static void test_session_update_reference(void **state)
{
    (void)state;
    struct rt_session_cfg c = ref_cfg();
    expect_session(
        &c, "cfg_1",
        "{\"type\":\"session.update\",\"event_id\":\"cfg_1\",\"session\":{\"type\":\"realtime\","
        "\"instructions\":\"Member-services assistant. Short answers: this is a phone call.\","
        "\"output_modalities\":[\"audio\"],\"audio\":{\"input\":{\"format\":{\"type\":\"audio/"
        "pcmu\"},\"noise_reduction\":{\"type\":\"near_field\"},\"transcription\":{\"model\":\"gpt-"
        "4o-mini-transcribe\",\"language\":\"en\"},\"turn_detection\":{\"type\":\"server_vad\","
        "\"threshold\":0.5,\"prefix_padding_ms\":300,\"silence_duration_ms\":500,\"idle_timeout_"
        "ms\":null,\"create_response\":true,\"interrupt_response\":true}},\"output\":{\"format\":{"
        "\"type\":\"audio/pcmu\"},\"voice\":\"marin\"}},\"tools\":[{\"type\":\"function\","
        "\"name\":\"get_member_balance\",\"description\":\"Points balance of a member.\","
        "\"parameters\":{\"type\":\"object\",\"properties\":{\"memberId\":{\"type\":\"string\"}},"
        "\"required\":[\"memberId\"]}},{\"type\":\"function\",\"name\":\"redeem_voucher\","
        "\"description\":\"Redeem a voucher for a member.\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"memberId\":{\"type\":\"string\"},\"code\":{\"type\":\"string\"}},"
        "\"required\":[\"memberId\",\"code\"]}}],\"tool_choice\":\"auto\"}}");

    /* the same JSON as reference §2 but for the two keys this bridge leaves at their
     * defaults (output speed 1.0, max_output_tokens "inf") */
    struct va_buf b;
    va_buf_init(&b, 1 << 16);
    assert_int_equal(rt_build_session_update(&b, &c, "cfg_1"), 0);
    cJSON *got = cJSON_Parse(b.data), *ref = cJSON_Parse(REF_SESSION_UPDATE);
    assert_non_null(got);
    assert_non_null(ref);
    cJSON *s = cJSON_GetObjectItemCaseSensitive(ref, "session");
    cJSON_DeleteItemFromObjectCaseSensitive(s, "max_output_tokens");
    cJSON_DeleteItemFromObjectCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "audio"), "output"),
        "speed");
    assert_true(cJSON_Compare(got, ref, 1));
    cJSON_Delete(got);
    cJSON_Delete(ref);
    va_buf_deinit(&b);
}

static void test_session_update_modes(void **state)
{
    (void)state;
    /* semantic VAD, PCM 24 kHz, no transcription, no noise reduction, no tools */
    struct rt_session_cfg c = ref_cfg();
    c.format = RT_FMT_PCM24;
    c.vad = RT_VAD_SEMANTIC;
    c.vad_eagerness = "high";
    c.create_response = false;
    c.interrupt_response = true;
    c.transcription_model = NULL;
    c.noise_reduction = NULL;
    c.tools_json = NULL;
    c.instructions = "Be brief.";
    c.voice = "cedar";
    expect_session(
        &c, "cfg_2",
        "{\"type\":\"session.update\",\"event_id\":\"cfg_2\",\"session\":{\"type\":\"realtime\","
        "\"instructions\":\"Be brief.\",\"output_modalities\":[\"audio\"],\"audio\":{\"input\":{"
        "\"format\":{\"type\":\"audio/pcm\",\"rate\":24000},\"noise_reduction\":null,"
        "\"transcription\":null,\"turn_detection\":{\"type\":\"semantic_vad\",\"eagerness\":"
        "\"high\",\"create_response\":false,\"interrupt_response\":true}},\"output\":{\"format\":{"
        "\"type\":\"audio/pcm\",\"rate\":24000},\"voice\":\"cedar\"}},\"tools\":[],\"tool_"
        "choice\":\"auto\"}}");

    /* VAD off, no instructions, no event_id, transcription without a language, far field,
     * tools with whitespace kept verbatim */
    c = ref_cfg();
    c.vad = RT_VAD_NONE;
    c.instructions = NULL;
    c.transcription_model = "whisper-1";
    c.transcription_language = NULL;
    c.noise_reduction = "far_field";
    c.tools_json = " [ ]\n";
    expect_session(
        &c, NULL,
        "{\"type\":\"session.update\",\"session\":{\"type\":\"realtime\",\"output_modalities\":["
        "\"audio\"],\"audio\":{\"input\":{\"format\":{\"type\":\"audio/pcmu\"},\"noise_reduction\":"
        "{\"type\":\"far_field\"},\"transcription\":{\"model\":\"whisper-1\"},\"turn_detection\":"
        "null},\"output\":{\"format\":{\"type\":\"audio/pcmu\"},\"voice\":\"marin\"}},\"tools\": "
        "[ ]\n,\"tool_choice\":\"auto\"}}");

    /* server VAD with both flags off, other figures, PCM 24 kHz, tools on */
    c = ref_cfg();
    c.format = RT_FMT_PCM24;
    c.vad_threshold = 0.6;
    c.vad_prefix_padding_ms = 0;
    c.vad_silence_ms = 4294967295u;
    c.create_response = false;
    c.interrupt_response = false;
    c.transcription_model = NULL;
    c.tools_json = "[{\"type\":\"function\",\"name\":\"f\",\"parameters\":{}}]";
    c.instructions = "";
    expect_session(
        &c, "x",
        "{\"type\":\"session.update\",\"event_id\":\"x\",\"session\":{\"type\":\"realtime\","
        "\"instructions\":\"\",\"output_modalities\":[\"audio\"],\"audio\":{\"input\":{\"format\":"
        "{\"type\":\"audio/pcm\",\"rate\":24000},\"noise_reduction\":{\"type\":\"near_field\"},"
        "\"transcription\":null,\"turn_detection\":{\"type\":\"server_vad\",\"threshold\":0.6,"
        "\"prefix_padding_ms\":0,\"silence_duration_ms\":4294967295,\"idle_timeout_ms\":null,"
        "\"create_response\":false,\"interrupt_response\":false}},\"output\":{\"format\":{\"type\":"
        "\"audio/pcm\",\"rate\":24000},\"voice\":\"marin\"}},\"tools\":[{\"type\":\"function\","
        "\"name\":\"f\",\"parameters\":{}}],\"tool_choice\":\"auto\"}}");
}

/* The threshold goes out in its shortest form. */
static void test_session_update_threshold(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *text;
    } cases[] = {{0.0, "0"},
                 {1.0, "1"},
                 {0.5, "0.5"},
                 {0.6, "0.6"},
                 {0.55, "0.55"},
                 {0.1, "0.1"},
                 {1.0 / 3, "0.3333333333333333"},
                 {1e-5, "1e-05"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rt_session_cfg c = ref_cfg();
        c.vad_threshold = cases[i].v;
        struct va_buf b;
        va_buf_init(&b, 1 << 16);
        assert_int_equal(rt_build_session_update(&b, &c, NULL), 0);
        char want[64];
        snprintf(want, sizeof(want), "\"threshold\":%s,", cases[i].text);
        if (!strstr(b.data, want))
            fail_msg("%s not in %s", want, b.data);
        cJSON *j = cJSON_Parse(b.data);
        cJSON *td = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "session"),
                                                     "audio"),
                    "input"),
                "turn_detection"),
            "threshold");
        assert_true(cJSON_IsNumber(td));
        assert_true(td->valuedouble == cases[i].v);
        cJSON_Delete(j);
        va_buf_deinit(&b);
    }
}

static void test_session_update_escaping(void **state)
{
    (void)state;
    struct rt_session_cfg c = ref_cfg();
    c.instructions = "Say \"hi\"\\\n\tthen \xc3\xa9\x01 \xff</script>";
    c.voice = "ma\"rin";
    c.transcription_model = NULL;
    c.noise_reduction = NULL;
    c.tools_json = NULL;
    c.vad = RT_VAD_NONE;
    expect_session(
        &c, "cfg\"1",
        "{\"type\":\"session.update\",\"event_id\":\"cfg\\\"1\",\"session\":{\"type\":"
        "\"realtime\",\"instructions\":\"Say \\\"hi\\\"\\\\\\n\\tthen \xc3\xa9\\u0001 "
        "\\ufffd</script>\",\"output_modalities\":[\"audio\"],\"audio\":{\"input\":{\"format\":{"
        "\"type\":\"audio/pcmu\"},\"noise_reduction\":null,\"transcription\":null,\"turn_"
        "detection\":null},\"output\":{\"format\":{\"type\":\"audio/pcmu\"},\"voice\":\"ma\\\"rin\""
        "}},\"tools\":[],\"tool_choice\":\"auto\"}}");
}

static void expect_refused(const struct rt_session_cfg *c, const char *event_id, int want)
{
    struct va_buf b;
    va_buf_init(&b, 1 << 16);
    assert_int_equal(va_buf_append_str(&b, "keep"), 0);
    int err = rt_build_session_update(&b, c, event_id);
    if (err != want)
        fail_msg("got %d (%s), want %d", err, va_strerror(err), want);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "keep");
    va_buf_deinit(&b);
}

static void test_session_update_refuses(void **state)
{
    (void)state;
    static const char *const bad_tools[] = {
        "",
        " ",
        "{}",
        "null",
        "\"[]\"",
        "[",
        "[1,",
        "[] x",
        "[][]",
        "[{\"type\":\"function\"}",
        "[{\"a\":1,}]",
        "tools",
    };
    for (size_t i = 0; i < sizeof(bad_tools) / sizeof(bad_tools[0]); i++) {
        struct rt_session_cfg c = ref_cfg();
        c.tools_json = bad_tools[i];
        expect_refused(&c, "cfg_1", VA_EINVAL);
    }
    struct rt_session_cfg c;
#define REFUSE(stmt)                                                                               \
    do {                                                                                           \
        c = ref_cfg();                                                                             \
        stmt;                                                                                      \
        expect_refused(&c, "cfg_1", VA_EINVAL);                                                    \
    } while (0)
    REFUSE(c.voice = NULL);
    REFUSE(c.voice = "");
    REFUSE(c.format = (enum rt_audio_format)7);
    REFUSE(c.vad = (enum rt_vad)9);
    REFUSE(c.vad_threshold = -0.01);
    REFUSE(c.vad_threshold = 1.01);
    REFUSE(c.vad_threshold = NAN);
    REFUSE(c.vad_threshold = INFINITY);
    REFUSE((c.vad = RT_VAD_SEMANTIC, c.vad_eagerness = NULL));
    REFUSE((c.vad = RT_VAD_SEMANTIC, c.vad_eagerness = "fast"));
    REFUSE(c.noise_reduction = "loud");
    REFUSE(c.noise_reduction = "");
    REFUSE(c.transcription_model = "");
    REFUSE(c.transcription_language = "");
#undef REFUSE
    char *long_voice = rep('v', RT_ID_MAX + 1);
    c = ref_cfg();
    c.voice = long_voice;
    expect_refused(&c, NULL, VA_EINVAL);
    free(long_voice);
    c = ref_cfg();
    expect_refused(&c, "", VA_EINVAL);
    char *eid = rep('e', RT_EVENT_ID_MAX + 1);
    expect_refused(&c, eid, VA_EINVAL);
    eid[RT_EVENT_ID_MAX] = '\0';
    struct va_buf b;
    va_buf_init(&b, 1 << 16);
    assert_int_equal(rt_build_session_update(&b, &c, eid), 0);
    va_buf_deinit(&b);
    free(eid);
    assert_int_equal(rt_build_session_update(&b, NULL, NULL), VA_EINVAL);
    /* a language without a model is ignored, as transcription is off */
    c.transcription_model = NULL;
    c.transcription_language = "";
    va_buf_init(&b, 1 << 16);
    assert_int_equal(rt_build_session_update(&b, &c, NULL), 0);
    assert_non_null(strstr(b.data, "\"transcription\":null"));
    va_buf_deinit(&b);

    /* out's max: exactly enough passes, a byte less is VA_ETOOBIG with out unchanged */
    c = ref_cfg();
    va_buf_init(&b, 1 << 16);
    assert_int_equal(rt_build_session_update(&b, &c, "cfg_1"), 0);
    size_t need = b.len;
    va_buf_deinit(&b);
    va_buf_init(&b, need + 2);
    assert_int_equal(va_buf_append(&b, "ab", 2), 0);
    assert_int_equal(rt_build_session_update(&b, &c, "cfg_1"), 0);
    va_buf_deinit(&b);
    for (size_t max = 0; max < need + 2; max += max < 64 ? 1 : 97) {
        va_buf_init(&b, max);
        int err = max >= 2 ? va_buf_append(&b, "ab", 2) : 0;
        assert_int_equal(err, 0);
        assert_int_equal(rt_build_session_update(&b, &c, "cfg_1"), VA_ETOOBIG);
        assert_int_equal(b.len, max >= 2 ? 2 : 0);
        if (b.data)
            assert_int_equal(b.data[b.len], '\0');
        va_buf_deinit(&b);
    }
}

/* Builds with fn into a buffer holding "<<" and checks the text after it. */
#define EXPECT_BUILD(want, call)                                                                   \
    do {                                                                                           \
        struct va_buf b_;                                                                          \
        va_buf_init(&b_, 1 << 16);                                                                 \
        assert_int_equal(va_buf_append_str(&b_, "<<"), 0);                                         \
        struct va_buf *out = &b_;                                                                  \
        int err_ = (call);                                                                         \
        if (err_)                                                                                  \
            fail_msg("%s", va_strerror(err_));                                                     \
        assert_string_equal(b_.data + 2, (want));                                                  \
        assert_int_equal(b_.len, 2 + strlen(want));                                                \
        cJSON *j_ = cJSON_Parse(b_.data + 2);                                                      \
        assert_non_null(j_);                                                                       \
        cJSON_Delete(j_);                                                                          \
        va_buf_deinit(&b_);                                                                        \
    } while (0)

#define EXPECT_REFUSED(want_err, call)                                                             \
    do {                                                                                           \
        struct va_buf b_;                                                                          \
        va_buf_init(&b_, 1 << 16);                                                                 \
        assert_int_equal(va_buf_append_str(&b_, "<<"), 0);                                         \
        struct va_buf *out = &b_;                                                                  \
        assert_int_equal((call), (want_err));                                                      \
        assert_string_equal(b_.data, "<<");                                                        \
        assert_int_equal(b_.len, 2);                                                               \
        va_buf_deinit(&b_);                                                                        \
    } while (0)

static void test_build_small_events(void **state)
{
    (void)state;
    EXPECT_BUILD("{\"type\":\"input_audio_buffer.commit\"}", rt_build_commit(out));
    EXPECT_BUILD("{\"type\":\"response.create\"}", rt_build_response_create(out, NULL));
    EXPECT_BUILD("{\"type\":\"response.create\",\"response\":{\"instructions\":\"Greet the "
                 "caller.\"}}",
                 rt_build_response_create(out, "Greet the caller."));
    EXPECT_BUILD("{\"type\":\"response.create\",\"response\":{\"instructions\":\"a\\\"b\\nc\"}}",
                 rt_build_response_create(out, "a\"b\nc"));
    EXPECT_BUILD("{\"type\":\"response.cancel\"}", rt_build_response_cancel(out));
    EXPECT_BUILD("{\"type\":\"conversation.item.truncate\",\"item_id\":\"item_a1\",\"content_"
                 "index\":0,\"audio_end_ms\":200}",
                 rt_build_truncate(out, "item_a1", 200));
    EXPECT_BUILD("{\"type\":\"conversation.item.truncate\",\"item_id\":\"item_a1\",\"content_"
                 "index\":0,\"audio_end_ms\":18446744073709551615}",
                 rt_build_truncate(out, "item_a1", UINT64_MAX));
    EXPECT_BUILD("{\"type\":\"conversation.item.delete\",\"item_id\":\"item_a1\"}",
                 rt_build_item_delete(out, "item_a1"));
    EXPECT_BUILD("{\"type\":\"conversation.item.delete\",\"item_id\":\"it\\\\em\"}",
                 rt_build_item_delete(out, "it\\em"));

    /* §10's tool output, verbatim */
    static const char result[] =
        "{\"success\":true,\"memberId\":\"member_123\",\"balance\":1500,\"currency\":\"RWF\"}";
    EXPECT_BUILD("{\"type\":\"conversation.item.create\",\"item\":{\"type\":\"function_call_"
                 "output\",\"call_id\":\"call_1\",\"output\":\"{\\\"success\\\":true,\\\""
                 "memberId\\\":\\\"member_123\\\",\\\"balance\\\":1500,\\\"currency\\\":\\\"RWF\\\""
                 "}\"}}",
                 rt_build_function_output(out, "call_1", result, strlen(result)));
    /* output is (ptr, len): a NUL inside is escaped, bytes after len are not read */
    EXPECT_BUILD("{\"type\":\"conversation.item.create\",\"item\":{\"type\":\"function_call_"
                 "output\",\"call_id\":\"call_1\",\"output\":\"a\\u0000b\"}}",
                 rt_build_function_output(out, "call_1", "a\0bcdef", 3));
    EXPECT_BUILD("{\"type\":\"conversation.item.create\",\"item\":{\"type\":\"function_call_"
                 "output\",\"call_id\":\"call_1\",\"output\":\"\"}}",
                 rt_build_function_output(out, "call_1", NULL, 0));

    EXPECT_BUILD("{\"type\":\"conversation.item.create\",\"item\":{\"type\":\"message\",\"role\":"
                 "\"system\",\"content\":[{\"type\":\"input_text\",\"text\":\"Recap: caller "
                 "asked.\"}]}}",
                 rt_build_message_item(out, "system", "Recap: caller asked.", 20));
    EXPECT_BUILD("{\"type\":\"conversation.item.create\",\"item\":{\"type\":\"message\",\"role\":"
                 "\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"What's my "
                 "balance?\"}]}}",
                 rt_build_message_item(out, "user", "What's my balance?", 18));
    EXPECT_BUILD("{\"type\":\"conversation.item.create\",\"item\":{\"type\":\"message\",\"role\":"
                 "\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"You have "
                 "1,250 points.\\n\"}]}}",
                 rt_build_message_item(out, "assistant", "You have 1,250 points.\nXX", 23));
}

static void test_build_refuses(void **state)
{
    (void)state;
    char *long_id = rep('i', RT_ID_MAX + 1);
    EXPECT_REFUSED(VA_EINVAL, rt_build_truncate(out, NULL, 1));
    EXPECT_REFUSED(VA_EINVAL, rt_build_truncate(out, "", 1));
    EXPECT_REFUSED(VA_EINVAL, rt_build_truncate(out, long_id, 1));
    EXPECT_REFUSED(VA_EINVAL, rt_build_item_delete(out, NULL));
    EXPECT_REFUSED(VA_EINVAL, rt_build_item_delete(out, ""));
    EXPECT_REFUSED(VA_EINVAL, rt_build_item_delete(out, long_id));
    EXPECT_REFUSED(VA_EINVAL, rt_build_function_output(out, NULL, "x", 1));
    EXPECT_REFUSED(VA_EINVAL, rt_build_function_output(out, "", "x", 1));
    EXPECT_REFUSED(VA_EINVAL, rt_build_function_output(out, long_id, "x", 1));
    EXPECT_REFUSED(VA_EINVAL, rt_build_function_output(out, "call_1", NULL, 1));
    EXPECT_REFUSED(VA_EINVAL, rt_build_message_item(out, "developer", "x", 1));
    EXPECT_REFUSED(VA_EINVAL, rt_build_message_item(out, NULL, "x", 1));
    EXPECT_REFUSED(VA_EINVAL, rt_build_message_item(out, "user", NULL, 1));
    EXPECT_REFUSED(VA_EINVAL, rt_build_append(out, NULL, 1));
    long_id[RT_ID_MAX] = '\0';
    EXPECT_BUILD("{\"type\":\"conversation.item.delete\",\"item_id\":\"iiiiiiiiiiiiiiiiiiiiiiii"
                 "iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii\"}",
                 rt_build_item_delete(out, long_id));
    free(long_id);

    /* out's max: unchanged on VA_ETOOBIG */
    struct va_buf b;
    va_buf_init(&b, 30);
    assert_int_equal(va_buf_append_str(&b, "<<"), 0);
    assert_int_equal(rt_build_response_create(&b, "a long instruction text"), VA_ETOOBIG);
    assert_int_equal(rt_build_truncate(&b, "item_a1", 1), VA_ETOOBIG);
    assert_int_equal(rt_build_message_item(&b, "user", "x", 1), VA_ETOOBIG);
    assert_int_equal(rt_build_function_output(&b, "c", "x", 1), VA_ETOOBIG);
    assert_int_equal(rt_build_item_delete(&b, "item_a1"), VA_ETOOBIG);
    assert_int_equal(rt_build_commit(&b), VA_ETOOBIG);
    assert_string_equal(b.data, "<<");
    assert_int_equal(rt_build_response_cancel(&b), 0); /* 26 bytes: fits */
    assert_int_equal(b.len, 28);
    va_buf_deinit(&b);
}

static void test_build_append(void **state)
{
    (void)state;
    static const uint8_t ff[] = {0xff, 0xff, 0xff, 0x00};
    EXPECT_BUILD("{\"type\":\"input_audio_buffer.append\",\"audio\":\"////AA==\"}",
                 rt_build_append(out, ff, 4));
    EXPECT_BUILD("{\"type\":\"input_audio_buffer.append\",\"audio\":\"\"}",
                 rt_build_append(out, NULL, 0));
    /* RFC 4648 §10 */
    EXPECT_BUILD("{\"type\":\"input_audio_buffer.append\",\"audio\":\"Zm9vYmE=\"}",
                 rt_build_append(out, (const uint8_t *)"fooba", 5));

    /* max: exactly enough, then a byte short (unchanged, including a fresh buffer) */
    size_t need =
        strlen("{\"type\":\"input_audio_buffer.append\",\"audio\":\"\"}") + tw_b64_encoded_len(160);
    uint8_t frame[160];
    memset(frame, 0xff, sizeof(frame));
    struct va_buf b;
    va_buf_init(&b, need + 1);
    assert_int_equal(va_buf_append_char(&b, '<'), 0);
    assert_int_equal(rt_build_append(&b, frame, sizeof(frame)), 0);
    assert_int_equal(b.len, need + 1);
    assert_int_equal(b.data[b.len], '\0');
    assert_true(b.cap <= b.max + 1);
    va_buf_deinit(&b);
    va_buf_init(&b, need);
    assert_int_equal(va_buf_append_char(&b, '<'), 0);
    assert_int_equal(rt_build_append(&b, frame, sizeof(frame)), VA_ETOOBIG);
    assert_string_equal(b.data, "<");
    va_buf_deinit(&b);
    va_buf_init(&b, need - 1);
    assert_int_equal(rt_build_append(&b, frame, sizeof(frame)), VA_ETOOBIG);
    assert_null(b.data);
    assert_int_equal(rt_build_append(&b, frame, 3), 0);
    va_buf_deinit(&b);
}

/* Append, then read it back with cJSON and tw_b64_decode: every length up to 600, the
 * Twilio frame and 100 ms of PCM; into fresh and reused buffers, after other content. */
static void test_append_round_trip(void **state)
{
    (void)state;
    enum { N = 4800 };
    uint8_t *audio = malloc(N), *back = malloc(N);
    assert_non_null(audio);
    assert_non_null(back);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < N; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        audio[i] = (uint8_t)x;
    }
    struct va_buf reused;
    va_buf_init(&reused, 1 << 20);
    for (size_t len = 0; len <= N; len += len < 600 ? 1 : len == 600 ? 2600 : 1600) {
        for (int pass = 0; pass < 2; pass++) {
            struct va_buf fresh, *b = pass ? &reused : &fresh;
            va_buf_init(&fresh, 1 << 20);
            va_buf_reset(b);
            assert_int_equal(va_buf_append_str(b, "prefix "), 0);
            assert_int_equal(rt_build_append(b, audio, len), 0);
            size_t total = b->len;
            /* the buffer stays usable through va_buf_* */
            assert_int_equal(va_buf_append_str(b, "\n"), 0);
            assert_int_equal(b->len, total + 1);
            assert_int_equal(strlen(b->data), b->len);
            assert_memory_equal(b->data, "prefix ", 7);
            cJSON *j = cJSON_ParseWithLength(b->data + 7, total - 7);
            assert_non_null(j);
            assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "type")->valuestring,
                                "input_audio_buffer.append");
            const char *b64 = cJSON_GetObjectItemCaseSensitive(j, "audio")->valuestring;
            assert_int_equal(strlen(b64), tw_b64_encoded_len(len));
            size_t n = 0;
            assert_int_equal(tw_b64_decode(back, N, b64, strlen(b64), &n), 0);
            assert_int_equal(n, len);
            if (len)
                assert_memory_equal(back, audio, len);
            cJSON_Delete(j);
            va_buf_deinit(&fresh);
        }
    }
    va_buf_deinit(&reused);
    free(audio);
    free(back);
}

/* What the bridge sends, the fake would parse: builders and parser agree on ids. */
static void test_build_then_parse_ids(void **state)
{
    struct fx *f = *state;
    /* an id the parser accepts at full length is one the builders take */
    char *id = rep('q', RT_ID_MAX), msg[256];
    snprintf(msg, sizeof(msg),
             "{\"type\":\"conversation.item.truncated\",\"item_id\":\"%s\","
             "\"audio_end_ms\":5}",
             id);
    expect_ok(f, msg, RT_EV_ITEM_TRUNCATED);
    va_buf_reset(&f->b);
    assert_int_equal(rt_build_truncate(&f->b, f->ev.item_id, f->ev.audio_ms), 0);
    assert_int_equal(rt_build_item_delete(&f->b, f->ev.item_id), 0);
    free(id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_reference_session_events),
        T(test_reference_response_events),
        T(test_reference_audio_delta),
        T(test_reference_input_events),
        T(test_reference_item_events),
        T(test_reference_rate_limits),
        T(test_reference_errors),
        T(test_reuse_event),
        T(test_session_formats),
        T(test_other_events),
        T(test_missing_fields),
        T(test_mistyped_fields),
        T(test_id_lengths),
        T(test_text_cut),
        T(test_delta_sizes),
        T(test_malformed_json),
        T(test_truncated),
        T(test_errbuf),
        T(test_session_update_reference),
        T(test_session_update_modes),
        T(test_session_update_threshold),
        T(test_session_update_escaping),
        T(test_session_update_refuses),
        T(test_build_small_events),
        T(test_build_refuses),
        T(test_build_append),
        T(test_append_round_trip),
        T(test_build_then_parse_ids),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
