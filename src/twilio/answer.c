/* src/twilio/answer.c: Twilio's webhooks, POST /twilio/answer and POST /twilio/status. */
#include "twilio/answer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "call/event.h"
#include "core/ctx.h"
#include "http/form.h"
#include "http/routes.h"
#include "http/server.h"
#include "twilio/signature.h"
#include "twilio/twiml.h"

#define ANSWER_MAX_PAIRS 256
#define ANSWER_TWIML_MAX (16 * 1024)

static void answer_twiml(struct va_http_conn *c, struct va_buf *doc)
{
    va_http_respond(c, 200, "text/xml", NULL, doc->data, doc->len);
}

/* The URL Twilio signed: the configured public base, never the Host header. */
static int answer_signed_url(const struct va_cfg *cfg, const struct va_http_req *req,
                             struct va_buf *url)
{
    int err = va_buf_append_str(url, cfg->public_base_url);
    if (!err)
        err = va_buf_append(url, req->path, req->path_len);
    if (!err && req->query) {
        err = va_buf_append_char(url, '?');
        if (!err)
            err = va_buf_append(url, req->query, req->query_len);
    }
    return err;
}

/* 0 when the request carries a valid X-Twilio-Signature; else *why says what is wrong. */
static int answer_check_sig(const struct va_cfg *cfg, const struct va_http_req *req,
                            const struct va_form *form, const char **why)
{
    size_t sig_len = 0;
    const char *sig = va_http_req_header(req, "x-twilio-signature", &sig_len);
    if (!sig) {
        *why = "signature missing";
        return -1;
    }
    if (!cfg->public_base_url) {
        *why = "PUBLIC_BASE_URL unset: cannot know the URL Twilio signed";
        return -1;
    }
    struct va_buf url;
    va_buf_init(&url, 8192);
    int err = answer_signed_url(cfg, req, &url);
    if (!err)
        err = tw_sig_check(cfg->twilio_auth_token, strlen(cfg->twilio_auth_token), url.data,
                           url.len, form->pairs, form->len, sig, sig_len, 0);
    va_buf_deinit(&url);
    if (err)
        *why = "signature invalid";
    return err;
}

static void answer_param(struct tw_param *p, size_t *n, const struct va_form *form,
                         const char *name)
{
    const struct va_form_pair *pair = va_form_get(form, name);
    if (!pair)
        return;
    p[*n].name = name;
    p[*n].value = pair->value;
    p[*n].value_len = pair->value_len;
    (*n)++;
}

/* What both webhooks check first: form body, signature, AccountSid, rate limit. true with
 * form parsed (the caller deinits it) and *allowed set; false once answered with an error.
 * A request with a valid signature is served past the rate limit (answered with the
 * apology for /twilio/answer): Twilio itself must not be locked out. */
static bool answer_accept(struct va_ctx *ctx, struct va_http_conn *c, const struct va_http_req *req,
                          struct va_form *form, bool *allowed, const char *what)
{
    const struct va_cfg *cfg = ctx->cfg;
    size_t ct_len = 0;
    const char *ct = va_http_req_header(req, "content-type", &ct_len);
    static const char form_type[] = "application/x-www-form-urlencoded";
    if (req->body_len && (!ct || ct_len < sizeof(form_type) - 1 ||
                          strncasecmp(ct, form_type, sizeof(form_type) - 1))) {
        va_http_respond_error(c, 415, "unsupported_media_type",
                              "expected application/x-www-form-urlencoded", NULL);
        return false;
    }
    if (va_form_parse(form, req->body, req->body_len, ANSWER_MAX_PAIRS)) {
        va_http_respond_error(c, 400, "bad_form", "form body does not parse", NULL);
        return false;
    }

    const char *why = NULL;
    bool signed_ok = cfg->twilio_auth_token && answer_check_sig(cfg, req, form, &why) == 0;
    const struct va_form_pair *acct = va_form_get(form, "AccountSid");
    if (signed_ok && cfg->twilio_account_sid && acct &&
        (acct->value_len != strlen(cfg->twilio_account_sid) ||
         memcmp(acct->value, cfg->twilio_account_sid, acct->value_len) != 0)) {
        signed_ok = false;
        why = "AccountSid does not match TWILIO_ACCOUNT_SID";
    }

    uint32_t retry_s = 0;
    *allowed = va_rl_take(&ctx->answer_rl, &req->client, uv_now(ctx->loop), &retry_s);
    if (!*allowed && !signed_ok) {
        char hdr[48];
        snprintf(hdr, sizeof(hdr), "Retry-After: %u\r\n", retry_s);
        va_log_warn(ctx->log, "twilio", "webhook rate limited", VA_LSTR("route", what),
                    VA_LSTR("remote", req->client.text), VA_LINT("retryAfter", retry_s));
        va_http_respond_error(c, 429, "rate_limited", "too many requests", hdr);
        va_form_deinit(form);
        return false;
    }
    if (cfg->twilio_auth_token && !signed_ok) {
        /* the signature itself is never logged */
        va_log_warn(ctx->log, "twilio", "webhook rejected", VA_LSTR("route", what),
                    VA_LSTR("remote", req->client.text), VA_LSTR("reason", why));
        va_http_respond_error(c, 403, "forbidden", "invalid Twilio signature", NULL);
        va_form_deinit(form);
        return false;
    }
    return true;
}

/* A form value as a NUL-terminated string cut to cap - 1 bytes; "" when absent. */
static const char *answer_value(const struct va_form *form, const char *name, char *buf, size_t cap)
{
    const struct va_form_pair *p = va_form_get(form, name);
    size_t n = p ? (p->value_len < cap - 1 ? p->value_len : cap - 1) : 0;
    if (n)
        memcpy(buf, p->value, n);
    buf[n] = '\0';
    return buf;
}

static uint64_t answer_wall_ms(void)
{
    uv_timeval64_t tv;
    uv_gettimeofday(&tv);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* A refused call is on record too: one call.ended with status "rejected". */
static void answer_rejected_event(struct va_ctx *ctx, const struct va_form *form,
                                  const char *reason)
{
    char sid[65], acct[65], from[65], to[65];
    answer_value(form, "CallSid", sid, sizeof(sid));
    if (!sid[0])
        return;
    uint64_t now = answer_wall_ms();
    struct call_event e = {
        .type = "call.ended",
        .now_ms = now,
        .call_sid = sid,
        .account_sid = answer_value(form, "AccountSid", acct, sizeof(acct))[0] ? acct : NULL,
        .from = answer_value(form, "From", from, sizeof(from)),
        .to = answer_value(form, "To", to, sizeof(to)),
        .status = "rejected",
        .reason = reason,
        .started_ms = now,
        .ended_ms = now,
        .duration_s = 0,
        .intent_source = "none",
        .intent = "unknown",
        .tw_duration = -1,
    };
    call_event_emit(ctx, &e);
}

void tw_answer_handle(struct va_ctx *ctx, struct va_http_conn *c, const struct va_http_req *req)
{
    const struct va_cfg *cfg = ctx->cfg;
    struct va_form form;
    bool allowed;
    if (!answer_accept(ctx, c, req, &form, &allowed, "answer"))
        return;

    const struct va_form_pair *sid = va_form_get(&form, "CallSid");
    const char *call_sid = sid ? sid->value : "";
    struct va_buf doc;
    va_buf_init(&doc, ANSWER_TWIML_MAX);
    const char *refuse = NULL;
    if (!allowed)
        refuse = "rate limited";
    else if (!va_calls_accepting(ctx, &refuse))
        refuse = refuse ? refuse : "not accepting";
    else
        refuse = NULL;

    int err;
    if (refuse) {
        err = tw_twiml_apology(&doc, cfg->apology_text);
        va_log_warn(ctx->log, "twilio", "call refused", VA_LSTR("callSid", call_sid),
                    VA_LSTR("reason", refuse), VA_LSTR("remote", req->client.text));
        answer_rejected_event(ctx, &form, refuse);
        va_metrics_call_ended(&ctx->metrics, VA_CALL_REJECTED, 0);
    } else {
        struct tw_param params[3];
        size_t n = 0;
        answer_param(params, &n, &form, "From");
        answer_param(params, &n, &form, "To");
        answer_param(params, &n, &form, "CallSid");
        err = tw_twiml_stream(&doc, cfg->public_ws_url, params, n, cfg->apology_text);
        va_log_info(ctx->log, "twilio", "call answered", VA_LSTR("callSid", call_sid),
                    VA_LSTR("remote", req->client.text));
    }
    if (err)
        va_http_respond_error(c, 400, "bad_request", "parameters too large for TwiML", NULL);
    else
        answer_twiml(c, &doc);
    va_buf_deinit(&doc);
    va_form_deinit(&form);
}

/* Twilio's CallStatus values and the call status each means for our record. */
static const char *answer_status_map(const char *tw)
{
    static const char *const map[][2] = {
        {"queued", "in-progress"},  {"ringing", "in-progress"}, {"in-progress", "in-progress"},
        {"completed", "completed"}, {"busy", "failed"},         {"failed", "failed"},
        {"no-answer", "failed"},    {"canceled", "failed"},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(tw, map[i][0]) == 0)
            return map[i][1];
    return NULL;
}

void tw_status_handle(struct va_ctx *ctx, struct va_http_conn *c, const struct va_http_req *req)
{
    struct va_form form;
    bool allowed;
    if (!answer_accept(ctx, c, req, &form, &allowed, "status"))
        return;
    char sid[65], acct[65], from[65], to[65], st[32], dur[16], ts[65];
    answer_value(&form, "CallSid", sid, sizeof(sid));
    answer_value(&form, "CallStatus", st, sizeof(st));
    answer_value(&form, "CallDuration", dur, sizeof(dur));
    const char *status = answer_status_map(st);
    if (!sid[0] || !status) {
        va_log_warn(ctx->log, "twilio", "status callback refused", VA_LSTR("callSid", sid),
                    VA_LSTR("callStatus", st), VA_LSTR("remote", req->client.text));
        va_http_respond_error(c, 400, "bad_request", "CallSid and a known CallStatus required",
                              NULL);
        va_form_deinit(&form);
        return;
    }
    int64_t duration = -1;
    if (dur[0]) {
        char *end = NULL;
        long long v = strtoll(dur, &end, 10);
        if (end && !*end && v >= 0 && v <= 604800)
            duration = v;
    }
    struct call_event e = {
        .type = "call.status",
        .now_ms = answer_wall_ms(),
        .call_sid = sid,
        .account_sid = answer_value(&form, "AccountSid", acct, sizeof(acct))[0] ? acct : NULL,
        .from = answer_value(&form, "From", from, sizeof(from)),
        .to = answer_value(&form, "To", to, sizeof(to)),
        .status = status,
        .duration_s = -1,
        .tw_status = st,
        .tw_duration = duration,
        .tw_timestamp = answer_value(&form, "Timestamp", ts, sizeof(ts))[0] ? ts : NULL,
    };
    va_log_info(ctx->log, "twilio", "call status", VA_LSTR("callSid", sid),
                VA_LSTR("callStatus", st), VA_LINT("durationS", duration));
    call_event_emit(ctx, &e);
    va_http_respond(c, 204, "text/plain", NULL, NULL, 0);
    va_form_deinit(&form);
}
