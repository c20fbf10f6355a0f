/* Unit tests: the call bridge on fake Twilio and Realtime ports: session setup,
 * pacing by mark echoes, barge-in truncation, stale marks, transcripts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "call/call.h"
#include "call/internal.h"
#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "mcp/registry.h"
#include "twilio/media.h"

struct fake {
    uv_loop_t loop;
    struct va_cfg cfg;
    struct va_log log;
    struct va_ctx ctx;
    struct call *call;
    bool connected;
    bool close_asked;
    /* what the ports saw */
    char sent[64][8192]; /* Realtime messages, truncated */
    int nsent;
    size_t media_bytes;
    char marks[256][128];
    int nmarks;
    int clears;
    bool hung_up;
    int runs; /* of the fake tool */
};

static const char *cfg_lookup(void *ud, const char *name)
{
    const char *const *kv = ud;
    for (; kv[0]; kv += 2)
        if (strcmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

static int tw_media(void *ud, const uint8_t *mulaw, size_t len)
{
    struct fake *f = ud;
    (void)mulaw;
    f->media_bytes += len;
    return 0;
}

static int tw_mark(void *ud, const char *name)
{
    struct fake *f = ud;
    snprintf(f->marks[f->nmarks++ % 256], 128, "%s", name);
    return 0;
}

static int tw_clear(void *ud)
{
    struct fake *f = ud;
    f->clears++;
    return 0;
}

static void tw_hangup(void *ud, const char *reason)
{
    struct fake *f = ud;
    (void)reason;
    f->hung_up = true;
}

static const struct call_tw_port tw_port = {tw_media, tw_mark, tw_clear, tw_hangup};

static int rt_connect(void *ud, struct call *c, void **conn)
{
    struct fake *f = ud;
    (void)c;
    f->connected = true;
    *conn = f; /* the fake is the connection handle */
    return 0;
}

static int rt_send(void *conn, const char *json, size_t len)
{
    struct fake *f = conn;
    snprintf(f->sent[f->nsent++ % 64], 8192, "%.*s", (int)len, json);
    return 0;
}

/* Asynchronous like the real port: the test delivers on_closed later. */
static void rt_close(void *conn, uint16_t code, const char *reason)
{
    struct fake *f = conn;
    (void)code;
    (void)reason;
    f->close_asked = true;
}

static const struct call_rt_port rt_port = {rt_connect, rt_send, rt_close};

static struct fake *setup(const char *const *extra)
{
    struct fake *f = calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    const char *kv[64] = {"OPENAI_API_KEY", "sk-test", "OUTBOUND_AHEAD_MS", "200", NULL};
    size_t n = 4;
    for (; extra && *extra; extra++)
        kv[n++] = *extra;
    kv[n] = NULL;
    char err[256];
    assert_int_equal(va_cfg_load(&f->cfg, cfg_lookup, kv, err, sizeof(err)), 0);
    va_log_init(&f->log, STDERR_FILENO, VA_LOG_ERROR);
    f->ctx.loop = &f->loop;
    f->ctx.cfg = &f->cfg;
    f->ctx.log = &f->log;
    f->ctx.calls = call_shared_new(1 << 20);
    struct call_info info = {.stream_sid = "MZ1", .call_sid = "CA1"};
    assert_int_equal(call_open(&f->call, &f->ctx, &info, &tw_port, f, &rt_port, f), 0);
    assert_true(f->connected);
    return f;
}

static void teardown(struct fake *f)
{
    call_end(f->call, "test over");
    assert_true(f->close_asked);
    call_rt_closed(f->call, f, 0, 1000, "closed"); /* the last hold: frees the call */
    call_shared_free(f->ctx.calls);
    va_log_deinit(&f->log);
    va_cfg_deinit(&f->cfg);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
}

static void rt_in(struct fake *f, const char *json)
{
    call_rt_message(f->call, f, json, strlen(json));
}

static void ready(struct fake *f)
{
    call_rt_opened(f->call, f);
    assert_non_null(strstr(f->sent[0], "\"type\":\"session.update\""));
    rt_in(f, "{\"type\":\"session.created\",\"session\":{\"id\":\"s1\",\"expires_at\":1}}");
    rt_in(f,
          "{\"type\":\"session.updated\",\"session\":{\"type\":\"realtime\",\"audio\":{\"input\":"
          "{\"format\":{\"type\":\"audio/pcmu\"}},\"output\":{\"format\":{\"type\":\"audio/"
          "pcmu\"}}}}}");
}

/* A delta of ms milliseconds of mu-law for item/response. */
static void delta(struct fake *f, const char *resp, const char *item, size_t ms)
{
    size_t n = ms * 8;
    uint8_t *audio = malloc(n);
    memset(audio, 0x55, n);
    char *b64 = malloc(tw_b64_encoded_len(n) + 1);
    size_t bl = tw_b64_encode(b64, audio, n);
    b64[bl] = '\0';
    char *json = malloc(bl + 256);
    snprintf(json, bl + 256,
             "{\"type\":\"response.output_audio.delta\",\"response_id\":\"%s\",\"item_id\":\"%s\","
             "\"output_index\":0,\"content_index\":0,\"delta\":\"%s\"}",
             resp, item, b64);
    rt_in(f, json);
    free(json);
    free(b64);
    free(audio);
}

static const char *last_sent(struct fake *f)
{
    return f->sent[(f->nsent - 1) % 64];
}

static void test_audio_held_until_ready(void **state)
{
    (void)state;
    struct fake *f = setup(NULL);
    uint8_t frame[160];
    memset(frame, 0x5e, sizeof(frame)); /* not quiet: no silence hold */
    call_media_in(f->call, 0, frame, sizeof(frame));
    call_media_in(f->call, 20, frame, sizeof(frame));
    assert_int_equal(f->nsent, 0); /* nothing before session.update is answered */
    ready(f);
    /* session.update, then the held audio in one append */
    assert_int_equal(f->nsent, 2);
    assert_non_null(strstr(f->sent[1], "\"type\":\"input_audio_buffer.append\""));
    call_media_in(f->call, 40, frame, sizeof(frame));
    assert_int_equal(f->nsent, 3); /* 20 ms batches: every frame */
    teardown(f);
}

/* The length of the audio in an append (the fake never sees audio over 4 KiB). */
static size_t append_bytes(const char *json)
{
    const char *a = strstr(json, "\"audio\":\"");
    assert_non_null(a);
    a += 9;
    const char *e = strchr(a, '"');
    assert_non_null(e);
    uint8_t out[4096];
    size_t n = 0;
    assert_int_equal(tw_b64_decode(out, sizeof(out), a, (size_t)(e - a), &n), 0);
    return n;
}

/* INBOUND_SILENCE_HOLD_MS (100): quiet frames wait while the caller is not speaking,
 * a louder frame takes them along at once, and during speech every frame leaves. */
static void test_silence_hold(void **state)
{
    (void)state;
    struct fake *f = setup(NULL);
    ready(f);
    size_t base = f->nsent;
    uint8_t quiet[160], loud[160];
    memset(quiet, 0xff, sizeof(quiet));
    quiet[80] = 0xe0; /* the loudest quiet code: -39 dBFS */
    memset(loud, 0xff, sizeof(loud));
    loud[80] = 0xdf; /* one step louder */
    uint32_t ts = 0;
    for (int i = 0; i < 4; i++, ts += 20)
        call_media_in(f->call, ts, quiet, sizeof(quiet));
    assert_int_equal(f->nsent, base); /* 80 ms held */
    call_media_in(f->call, ts, quiet, sizeof(quiet));
    ts += 20;
    assert_int_equal(f->nsent, base + 1); /* 100 ms: the hold is full */
    assert_int_equal(append_bytes(last_sent(f)), 800);
    call_media_in(f->call, ts, quiet, sizeof(quiet));
    ts += 20;
    assert_int_equal(f->nsent, base + 1);
    call_media_in(f->call, ts, loud, sizeof(loud));
    ts += 20;
    assert_int_equal(f->nsent, base + 2); /* held silence and the onset, at once */
    assert_int_equal(append_bytes(last_sent(f)), 320);
    /* while the caller speaks nothing waits, quiet or not */
    rt_in(f, "{\"type\":\"input_audio_buffer.speech_started\",\"audio_start_ms\":100,"
             "\"item_id\":\"item_u1\"}");
    size_t before = f->nsent;
    call_media_in(f->call, ts, quiet, sizeof(quiet));
    ts += 20;
    assert_int_equal(f->nsent, before + 1);
    assert_int_equal(append_bytes(last_sent(f)), 160);
    rt_in(f, "{\"type\":\"input_audio_buffer.speech_stopped\",\"audio_end_ms\":900,"
             "\"item_id\":\"item_u1\"}");
    before = f->nsent;
    call_media_in(f->call, ts, quiet, sizeof(quiet));
    assert_int_equal(f->nsent, before); /* held again */
    teardown(f);

    /* 0: off, every frame leaves at once */
    const char *off[] = {"INBOUND_SILENCE_HOLD_MS", "0", NULL};
    f = setup(off);
    ready(f);
    base = f->nsent;
    call_media_in(f->call, 0, quiet, sizeof(quiet));
    call_media_in(f->call, 20, quiet, sizeof(quiet));
    assert_int_equal(f->nsent, base + 2);
    teardown(f);
}

static void test_pacing_and_marks(void **state)
{
    (void)state;
    struct fake *f = setup(NULL);
    ready(f);
    rt_in(f, "{\"type\":\"response.created\",\"response\":{\"id\":\"r1\"}}");
    delta(f, "r1", "i1", 1000);
    /* 200 ms ahead at most: 10 frames, marks every 40 ms */
    assert_int_equal(f->media_bytes, 1600);
    assert_int_equal(f->nmarks, 5);
    assert_string_equal(f->marks[0], "g0:i1:40");
    assert_string_equal(f->marks[4], "g0:i1:200");
    /* a name that is not one of ours in flight plays nothing */
    call_mark_in(f->call, "g0:other:999");
    call_mark_in(f->call, "g0:i1");
    assert_int_equal(f->media_bytes, 1600);
    /* Twilio played 80 ms: 80 ms more may go */
    call_mark_in(f->call, "g0:i1:40");
    call_mark_in(f->call, "g0:i1:80");
    assert_int_equal(f->media_bytes, 2240);
    teardown(f);
}

static void test_barge_in_truncates_at_heard(void **state)
{
    (void)state;
    struct fake *f = setup(NULL);
    ready(f);
    rt_in(f, "{\"type\":\"response.created\",\"response\":{\"id\":\"r1\"}}");
    delta(f, "r1", "i1", 1000);
    call_mark_in(f->call, "g0:i1:40");
    call_mark_in(f->call, "g0:i1:80");
    call_mark_in(f->call, "g0:i1:120");
    rt_in(f, "{\"type\":\"input_audio_buffer.speech_started\",\"audio_start_ms\":900,"
             "\"item_id\":\"u1\"}");
    assert_int_equal(f->clears, 1);
    assert_string_equal(last_sent(f), "{\"type\":\"conversation.item.truncate\",\"item_id\":\"i1\","
                                      "\"content_index\":0,\"audio_end_ms\":120}");
    /* echoes of marks cleared by Twilio are not playback */
    size_t media = f->media_bytes;
    call_mark_in(f->call, "g0:i1:160");
    call_mark_in(f->call, "g0:i1:200");
    assert_int_equal(f->media_bytes, media);
    /* later deltas of the interrupted response are dropped */
    delta(f, "r1", "i1", 200);
    assert_int_equal(f->media_bytes, media);
    /* a new response plays in the new generation */
    rt_in(f, "{\"type\":\"response.done\",\"response\":{\"id\":\"r1\",\"status\":\"cancelled\"}}");
    rt_in(f, "{\"type\":\"response.created\",\"response\":{\"id\":\"r2\"}}");
    delta(f, "r2", "i2", 100);
    assert_string_equal(f->marks[(f->nmarks - 1) % 256], "g1:i2:100"); /* end of its audio */
    teardown(f);
}

static void test_barge_in_nothing_heard_deletes(void **state)
{
    (void)state;
    struct fake *f = setup(NULL);
    ready(f);
    rt_in(f, "{\"type\":\"response.created\",\"response\":{\"id\":\"r1\"}}");
    delta(f, "r1", "i1", 300);
    rt_in(f, "{\"type\":\"input_audio_buffer.speech_started\",\"audio_start_ms\":10,"
             "\"item_id\":\"u1\"}");
    assert_string_equal(last_sent(f), "{\"type\":\"conversation.item.delete\",\"item_id\":\"i1\"}");
    teardown(f);
}

static void test_no_barge_in_when_silent(void **state)
{
    (void)state;
    struct fake *f = setup(NULL);
    ready(f);
    rt_in(f, "{\"type\":\"response.created\",\"response\":{\"id\":\"r1\"}}");
    delta(f, "r1", "i1", 100);
    rt_in(f, "{\"type\":\"response.output_audio.done\",\"response_id\":\"r1\",\"item_id\":\"i1\","
             "\"output_index\":0,\"content_index\":0}");
    rt_in(f, "{\"type\":\"response.done\",\"response\":{\"id\":\"r1\",\"status\":\"completed\"}}");
    /* all of it played: the echo of the last mark */
    call_mark_in(f->call, f->marks[(f->nmarks - 1) % 256]);
    int sent = f->nsent;
    rt_in(f, "{\"type\":\"input_audio_buffer.speech_started\",\"audio_start_ms\":10,"
             "\"item_id\":\"u1\"}");
    assert_int_equal(f->clears, 0);
    assert_int_equal(f->nsent, sent);
    teardown(f);
}

static void test_transcript_cut_at_heard(void **state)
{
    (void)state;
    struct fake *f = setup(NULL);
    ready(f);
    rt_in(f, "{\"type\":\"response.created\",\"response\":{\"id\":\"r1\"}}");
    delta(f, "r1", "i1", 1000);
    for (int ms = 40; ms <= 200; ms += 40) {
        char name[32];
        snprintf(name, sizeof(name), "g0:i1:%d", ms);
        call_mark_in(f->call, name);
    }
    rt_in(f, "{\"type\":\"input_audio_buffer.speech_started\",\"audio_start_ms\":10,"
             "\"item_id\":\"u1\"}");
    /* 200 of 1000 ms heard: the first fifth of the words */
    rt_in(f, "{\"type\":\"response.output_audio_transcript.done\",\"response_id\":\"r1\","
             "\"item_id\":\"i1\",\"output_index\":0,\"content_index\":0,\"transcript\":"
             "\"one two three four five six seven eight nine ten\"}");
    struct call *c = f->call;
    assert_int_equal(c->nturns, 1);
    assert_true(c->turns[0].interrupted);
    assert_int_equal(c->turns[0].role, CALL_TURN_AGENT);
    assert_memory_equal(c->turn_text.data + c->turns[0].off, "one two", c->turns[0].len);
    assert_int_equal(c->turns[0].len, 7);
    teardown(f);
}

/* A tool with side effects, completing at once; counts its runs in the fake. */
static int fake_tool(void *ud, const cJSON *args, const struct mcp_call_ctx *cx,
                     struct mcp_call_done *done)
{
    struct fake *f = ud;
    (void)args;
    assert_string_equal(cx->idempotency_key, "call_1");
    f->runs++;
    mcp_call_complete(done, "{\"success\":true}", 16, false);
    return 0;
}

static void with_tool(struct fake *f, struct mcp_registry *reg)
{
    mcp_registry_init(reg, 4);
    struct mcp_tool_def def = {
        .name = "redeem_voucher",
        .description = "test",
        .input_schema = "{\"type\":\"object\",\"properties\":{\"code\":{\"type\":\"string\"}}}",
        .timeout_ms = 1000,
        .has_side_effects = true,
        .offer = MCP_OFFER_BOTH,
        .call = fake_tool,
        .tool_ud = f,
    };
    assert_int_equal(mcp_registry_add(reg, &def, NULL), 0);
    f->ctx.registry = reg;
}

static const char fcall[] =
    "{\"type\":\"response.function_call_arguments.done\",\"response_id\":\"r1\",\"item_id\":"
    "\"f1\",\"output_index\":0,\"call_id\":\"call_1\",\"name\":\"redeem_voucher\","
    "\"arguments\":\"{\\\"code\\\":\\\"SAVE50\\\"}\"}";

static void test_side_effect_waits_for_completed_response(void **state)
{
    (void)state;
    struct fake *f = setup(NULL);
    struct mcp_registry reg;
    with_tool(f, &reg);
    ready(f);
    assert_non_null(strstr(f->sent[0], "\"name\":\"redeem_voucher\"")); /* offered */
    rt_in(f, "{\"type\":\"response.created\",\"response\":{\"id\":\"r1\"}}");
    rt_in(f, fcall);
    assert_int_equal(f->runs, 0); /* not while its response may still be cancelled */
    rt_in(f, "{\"type\":\"response.done\",\"response\":{\"id\":\"r1\",\"status\":\"completed\"}}");
    assert_int_equal(f->runs, 1);
    assert_non_null(strstr(f->sent[(f->nsent - 2) % 64], "\"type\":\"function_call_output\""));
    assert_string_equal(last_sent(f), "{\"type\":\"response.create\"}");
    teardown(f);
    mcp_registry_deinit(&reg);
}

static void test_side_effect_skipped_when_cancelled(void **state)
{
    (void)state;
    struct fake *f = setup(NULL);
    struct mcp_registry reg;
    with_tool(f, &reg);
    ready(f);
    rt_in(f, "{\"type\":\"response.created\",\"response\":{\"id\":\"r1\"}}");
    rt_in(f, fcall);
    rt_in(f, "{\"type\":\"response.done\",\"response\":{\"id\":\"r1\",\"status\":\"cancelled\"}}");
    assert_int_equal(f->runs, 0); /* a barged-in request never redeems */
    assert_non_null(strstr(f->sent[(f->nsent - 2) % 64], "not done: the caller interrupted"));
    teardown(f);
    mcp_registry_deinit(&reg);
}

static void test_realtime_close_fails_call(void **state)
{
    (void)state;
    struct fake *f = setup(NULL);
    ready(f);
    call_rt_closed(f->call, f, 0, 1011, "server error");
    assert_true(f->hung_up);
    call_end(f->call, "stream closed");
    call_shared_free(f->ctx.calls);
    va_log_deinit(&f->log);
    va_cfg_deinit(&f->cfg);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
}

static int rt_connect_refused(void *ud, struct call *c, void **conn)
{
    (void)ud;
    (void)c;
    (void)conn;
    return VA_ESTATE; /* what the rtlink port says while its breaker is open */
}

static const struct call_rt_port rt_port_refusing = {rt_connect_refused, rt_send, rt_close};

/* The breaker opened between a stream's upgrade and its start: the call must still be
 * opened and put on record, failed at once, not dropped with no trace (soak finding). */
static void test_connect_refused_at_open_fails_call(void **state)
{
    (void)state;
    struct fake *f = calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    const char *kv[] = {"OPENAI_API_KEY", "sk-test", NULL};
    char err[256];
    assert_int_equal(va_cfg_load(&f->cfg, cfg_lookup, kv, err, sizeof(err)), 0);
    va_log_init(&f->log, STDERR_FILENO, VA_LOG_ERROR);
    f->ctx.loop = &f->loop;
    f->ctx.cfg = &f->cfg;
    f->ctx.log = &f->log;
    f->ctx.calls = call_shared_new(1 << 20);
    struct call_info info = {.stream_sid = "MZ1", .call_sid = "CA1"};
    assert_int_equal(call_open(&f->call, &f->ctx, &info, &tw_port, f, &rt_port_refusing, f), 0);
    assert_non_null(f->call);
    assert_true(f->hung_up); /* Twilio plays the apology */
    assert_string_equal(f->call->end_reason, "failed: realtime connect failed: invalid state");
    uint8_t frame[160];
    memset(frame, 0xff, sizeof(frame));
    call_media_in(f->call, 0, frame, sizeof(frame)); /* media before the close: ignored */
    assert_int_equal(f->nsent, 0);
    call_end_failed(f->call, "socket closed (1011)"); /* no connection held: frees the call */
    assert_int_equal(f->ctx.metrics.calls[VA_CALL_FAILED], 1);
    call_shared_free(f->ctx.calls);
    va_log_deinit(&f->log);
    va_cfg_deinit(&f->cfg);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_audio_held_until_ready),
        cmocka_unit_test(test_silence_hold),
        cmocka_unit_test(test_pacing_and_marks),
        cmocka_unit_test(test_barge_in_truncates_at_heard),
        cmocka_unit_test(test_barge_in_nothing_heard_deletes),
        cmocka_unit_test(test_no_barge_in_when_silent),
        cmocka_unit_test(test_transcript_cut_at_heard),
        cmocka_unit_test(test_realtime_close_fails_call),
        cmocka_unit_test(test_connect_refused_at_open_fails_call),
        cmocka_unit_test(test_side_effect_waits_for_completed_response),
        cmocka_unit_test(test_side_effect_skipped_when_cancelled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
