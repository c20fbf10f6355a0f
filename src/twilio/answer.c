/* src/twilio/answer.c: POST /twilio/answer. */
#include "twilio/answer.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

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

void tw_answer_handle(struct va_ctx *ctx, struct va_http_conn *c, const struct va_http_req *req)
{
    const struct va_cfg *cfg = ctx->cfg;
    size_t ct_len = 0;
    const char *ct = va_http_req_header(req, "content-type", &ct_len);
    static const char form_type[] = "application/x-www-form-urlencoded";
    if (req->body_len && (!ct || ct_len < sizeof(form_type) - 1 ||
                          strncasecmp(ct, form_type, sizeof(form_type) - 1))) {
        va_http_respond_error(c, 415, "unsupported_media_type",
                              "expected application/x-www-form-urlencoded", NULL);
        return;
    }
    struct va_form form;
    if (va_form_parse(&form, req->body, req->body_len, ANSWER_MAX_PAIRS)) {
        va_http_respond_error(c, 400, "bad_form", "form body does not parse", NULL);
        return;
    }

    const char *why = NULL;
    bool signed_ok = cfg->twilio_auth_token && answer_check_sig(cfg, req, &form, &why) == 0;
    const struct va_form_pair *acct = va_form_get(&form, "AccountSid");
    if (signed_ok && cfg->twilio_account_sid && acct &&
        (acct->value_len != strlen(cfg->twilio_account_sid) ||
         memcmp(acct->value, cfg->twilio_account_sid, acct->value_len) != 0)) {
        signed_ok = false;
        why = "AccountSid does not match TWILIO_ACCOUNT_SID";
    }

    uint32_t retry_s = 0;
    bool allowed = va_rl_take(&ctx->answer_rl, &req->client, uv_now(ctx->loop), &retry_s);
    if (!allowed && !signed_ok) {
        char hdr[48];
        snprintf(hdr, sizeof(hdr), "Retry-After: %u\r\n", retry_s);
        va_log_warn(ctx->log, "twilio", "answer rate limited", VA_LSTR("remote", req->client.text),
                    VA_LINT("retryAfter", retry_s));
        va_http_respond_error(c, 429, "rate_limited", "too many requests", hdr);
        va_form_deinit(&form);
        return;
    }
    if (cfg->twilio_auth_token && !signed_ok) {
        /* the signature itself is never logged */
        va_log_warn(ctx->log, "twilio", "answer rejected", VA_LSTR("remote", req->client.text),
                    VA_LSTR("reason", why));
        va_http_respond_error(c, 403, "forbidden", "invalid Twilio signature", NULL);
        va_form_deinit(&form);
        return;
    }

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
