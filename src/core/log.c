/* src/core/log.c: JSON line logger with redaction. */
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/json.h"

#define LOG_LINE_MAX (64 * 1024)
#define LOG_MASK "[redacted]"

const char *va_log_level_name(enum va_log_level lv)
{
    switch (lv) {
    case VA_LOG_DEBUG:
        return "debug";
    case VA_LOG_INFO:
        return "info";
    case VA_LOG_WARN:
        return "warn";
    case VA_LOG_ERROR:
        return "error";
    }
    return "info";
}

void va_log_init(struct va_log *lg, int fd, enum va_log_level level)
{
    memset(lg, 0, sizeof(*lg));
    lg->fd = fd;
    lg->level = level;
    va_buf_init(&lg->line, LOG_LINE_MAX);
    va_buf_init(&lg->tmp, LOG_LINE_MAX);
}

void va_log_deinit(struct va_log *lg)
{
    for (size_t i = 0; i < lg->nsecrets; i++)
        free(lg->secrets[i]);
    lg->nsecrets = 0;
    va_buf_deinit(&lg->line);
    va_buf_deinit(&lg->tmp);
}

void va_log_add_secret(struct va_log *lg, const char *s)
{
    if (!s || strlen(s) < 4 || lg->nsecrets == VA_LOG_MAX_SECRETS)
        return;
    for (size_t i = 0; i < lg->nsecrets; i++)
        if (strcmp(lg->secrets[i], s) == 0)
            return;
    lg->secrets[lg->nsecrets++] = va_xstrdup(s);
}

bool va_log_key_is_secret(const char *key)
{
    static const char *const words[] = {"authorization", "signature", "token",  "apikey", "api_key",
                                        "api-key",       "password",  "secret", "cookie"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        size_t wl = strlen(words[i]);
        for (const char *p = key; *p; p++)
            if (strncasecmp(p, words[i], wl) == 0)
                return true;
    }
    /* "key" alone or as a suffix (SUPABASE_SERVICE_ROLE_KEY), not "keepAlive" */
    size_t kl = strlen(key);
    return kl >= 3 && strcasecmp(key + kl - 3, "key") == 0;
}

/* Length of a token starting at s: the characters credentials are made of. */
static size_t log_token_len(const char *s, size_t len)
{
    size_t n = 0;
    while (n < len) {
        unsigned char c = (unsigned char)s[n];
        if (!(c == '-' || c == '_' || c == '.' || c == '~' || c == '+' || c == '/' || c == '=' ||
              (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            break;
        n++;
    }
    return n;
}

int va_log_redact(struct va_buf *out, const char *s, size_t len, char *const *secrets,
                  size_t nsecrets)
{
    int err = 0;
    size_t i = 0;
    while (!err && i < len) {
        size_t skip = 0;
        for (size_t k = 0; k < nsecrets && !skip; k++) {
            size_t sl = strlen(secrets[k]);
            if (sl <= len - i && memcmp(s + i, secrets[k], sl) == 0)
                skip = sl;
        }
        /* "Bearer x", "Basic x": keep the scheme, mask the credential */
        if (!skip && (len - i > 7 && strncasecmp(s + i, "bearer ", 7) == 0)) {
            err = va_buf_append(out, s + i, 7);
            i += 7;
            skip = log_token_len(s + i, len - i);
            if (!skip)
                continue;
        } else if (!skip && (len - i > 6 && strncasecmp(s + i, "basic ", 6) == 0)) {
            err = va_buf_append(out, s + i, 6);
            i += 6;
            skip = log_token_len(s + i, len - i);
            if (!skip)
                continue;
        } else if (!skip && len - i > 8 && s[i] == 's' && s[i + 1] == 'k' && s[i + 2] == '-' &&
                   (i == 0 || log_token_len(s + i - 1, 1) == 0)) {
            /* OpenAI keys: sk-..., sk-proj-... */
            size_t tl = log_token_len(s + i, len - i);
            if (tl >= 20)
                skip = tl;
        }
        if (err)
            break;
        if (skip) {
            err = va_buf_append(out, LOG_MASK, sizeof(LOG_MASK) - 1);
            i += skip;
        } else {
            err = va_buf_append(out, s + i, 1);
            i++;
        }
    }
    return err;
}

static void log_ts(char out[64])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

/* Appends "key": redacted string value. */
static int log_str_field(struct va_log *lg, const char *s, size_t len)
{
    va_buf_reset(&lg->tmp);
    int err = va_log_redact(&lg->tmp, s, len, lg->secrets, lg->nsecrets);
    if (err == VA_ETOOBIG) {
        /* keep the line: a huge value is cut, and says so */
        err = va_buf_append_str(&lg->tmp, "...[truncated]");
    }
    if (err)
        return err;
    return va_json_str(&lg->line, lg->tmp.data ? lg->tmp.data : "", lg->tmp.len);
}

void va_log_emit(struct va_log *lg, enum va_log_level lv, const char *mod, const char *msg,
                 const struct va_log_field *f, size_t n)
{
    char ts[64];
    log_ts(ts);
    struct va_buf *b = &lg->line;
    va_buf_reset(b);
    int err =
        va_buf_printf(b, "{\"ts\":\"%s\",\"level\":\"%s\",\"mod\":", ts, va_log_level_name(lv));
    if (!err)
        err = va_json_str(b, mod, strlen(mod));
    if (!err)
        err = va_buf_append_str(b, ",\"msg\":");
    if (!err)
        err = log_str_field(lg, msg, strlen(msg));
    for (size_t i = 0; i < n && !err; i++) {
        if (!f[i].key)
            continue;
        err = va_buf_append_char(b, ',');
        if (!err)
            err = va_json_str(b, f[i].key, strlen(f[i].key));
        if (!err)
            err = va_buf_append_char(b, ':');
        if (err)
            break;
        switch (f[i].type) {
        case VA_LF_STR: {
            const char *s = f[i].v.s ? f[i].v.s : "";
            size_t len = f[i].len == (size_t)-1 ? strlen(s) : f[i].len;
            if (!f[i].v.s)
                err = va_buf_append_str(b, "null");
            else if (va_log_key_is_secret(f[i].key))
                err = va_buf_append_str(b, "\"" LOG_MASK "\"");
            else
                err = log_str_field(lg, s, len);
            break;
        }
        case VA_LF_INT:
            err = va_buf_printf(b, "%lld", f[i].v.i);
            break;
        case VA_LF_DBL:
            /* JSON has no NaN or Infinity */
            if (f[i].v.d != f[i].v.d || f[i].v.d > 1e300 || f[i].v.d < -1e300)
                err = va_buf_append_str(b, "null");
            else
                err = va_buf_printf(b, "%.3f", f[i].v.d);
            break;
        case VA_LF_BOOL:
            err = va_buf_append_str(b, f[i].v.b ? "true" : "false");
            break;
        case VA_LF_NONE:
            err = va_buf_append_str(b, "null");
            break;
        }
    }
    if (!err)
        err = va_buf_append_str(b, "}\n");
    if (err) {
        va_buf_reset(b);
        va_buf_printf(
            b,
            "{\"ts\":\"%s\",\"level\":\"error\",\"mod\":\"log\",\"msg\":\"log line too long\"}\n",
            ts);
    }
    /* One write per line keeps lines whole when several writers share the pipe. */
    const char *p = b->data;
    size_t left = b->len;
    while (left) {
        ssize_t w = write(lg->fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        left -= (size_t)w;
    }
}
