/* include/core/log.h: one JSON object per line on stdout, secrets redacted.
 *
 *   VA_LOG_INFO_(lg, "http", "request", VA_LSTR("route", "/health"), VA_LINT("status", 200));
 *
 * The level is checked before any field is formatted. Secrets never reach the
 * output: values registered with va_log_add_secret() are masked wherever they
 * appear, so are "Bearer <token>" and "sk-..." shapes, and fields whose key names
 * a credential (authorization, signature, token, key, password, secret) are
 * replaced whole. */
#ifndef VA_CORE_LOG_H
#define VA_CORE_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/config.h"

enum va_lf_type { VA_LF_NONE = 0, VA_LF_STR, VA_LF_INT, VA_LF_DBL, VA_LF_BOOL };

struct va_log_field {
    const char *key;
    enum va_lf_type type;
    union {
        const char *s;
        long long i;
        double d;
        bool b;
    } v;
    size_t len; /* VA_LF_STR: byte length, or (size_t)-1 for NUL-terminated */
};

#define VA_LSTR(k, x)                                                                              \
    ((struct va_log_field){.key = (k), .type = VA_LF_STR, .v.s = (x), .len = (size_t)-1})
#define VA_LSTRN(k, p, n)                                                                          \
    ((struct va_log_field){.key = (k), .type = VA_LF_STR, .v.s = (p), .len = (n)})
#define VA_LINT(k, x) ((struct va_log_field){.key = (k), .type = VA_LF_INT, .v.i = (long long)(x)})
#define VA_LDBL(k, x) ((struct va_log_field){.key = (k), .type = VA_LF_DBL, .v.d = (double)(x)})
#define VA_LBOOL(k, x) ((struct va_log_field){.key = (k), .type = VA_LF_BOOL, .v.b = (x)})

#define VA_LOG_MAX_SECRETS 16

struct va_log {
    enum va_log_level level;
    int fd;
    char *secrets[VA_LOG_MAX_SECRETS];
    size_t nsecrets;
    struct va_buf line; /* reused for every line */
    struct va_buf tmp;
};

void va_log_init(struct va_log *lg, int fd, enum va_log_level level);
void va_log_deinit(struct va_log *lg);
/* Copies s; every later occurrence in any field is masked. Values shorter than 4
 * bytes are ignored (masking "1" everywhere would ruin the log, not protect it). */
void va_log_add_secret(struct va_log *lg, const char *s);

/* Formats and writes one line. Use the VA_LOG macro, which checks the level first. */
void va_log_emit(struct va_log *lg, enum va_log_level lv, const char *mod, const char *msg,
                 const struct va_log_field *f, size_t n);

/* Appends s[0, len) to out with secrets masked as described above (pure). */
int va_log_redact(struct va_buf *out, const char *s, size_t len, char *const *secrets,
                  size_t nsecrets);
/* True when a field with this key must never show its value. */
bool va_log_key_is_secret(const char *key);

const char *va_log_level_name(enum va_log_level lv);

/* A leading dummy element lets the field list be empty in C11. */
#define VA_LOG(lg, lv, mod, msg, ...)                                                              \
    do {                                                                                           \
        struct va_log *va_lg_ = (lg);                                                              \
        if ((lv) >= va_lg_->level) {                                                               \
            const struct va_log_field va_f_[] = {{0}, __VA_ARGS__};                                \
            va_log_emit(va_lg_, (lv), (mod), (msg), va_f_ + 1,                                     \
                        sizeof(va_f_) / sizeof(va_f_[0]) - 1);                                     \
        }                                                                                          \
    } while (0)

#define va_log_debug(lg, mod, msg, ...) VA_LOG(lg, VA_LOG_DEBUG, mod, msg, __VA_ARGS__)
#define va_log_info(lg, mod, msg, ...) VA_LOG(lg, VA_LOG_INFO, mod, msg, __VA_ARGS__)
#define va_log_warn(lg, mod, msg, ...) VA_LOG(lg, VA_LOG_WARN, mod, msg, __VA_ARGS__)
#define va_log_error(lg, mod, msg, ...) VA_LOG(lg, VA_LOG_ERROR, mod, msg, __VA_ARGS__)

#endif
