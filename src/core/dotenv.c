/* src/core/dotenv.c: .env parsing and the environment-then-file lookup. */
#include "core/config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"

/* A .env is a handful of lines; past this it is not a .env. */
#define DOTENV_MAX_FILE (1024 * 1024)

static bool dotenv_is_space(char c)
{
    return c == ' ' || c == '\t';
}

static bool dotenv_is_key_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool dotenv_is_key_char(char c)
{
    return dotenv_is_key_start(c) || (c >= '0' && c <= '9');
}

static const char *dotenv_skip_space(const char *p, const char *end)
{
    while (p < end && dotenv_is_space(*p))
        p++;
    return p;
}

/* After a closing quote only spaces and a comment may follow. */
static int dotenv_tail(const char *p, const char *end)
{
    p = dotenv_skip_space(p, end);
    if (p == end || *p == '#')
        return 0;
    return VA_EINVAL;
}

/* A single-quoted value: literal up to the next quote. p is past the opening quote. */
static int dotenv_single(const char *p, const char *end, char *out)
{
    const char *close = memchr(p, '\'', (size_t)(end - p));
    if (!close)
        return VA_EINVAL;
    memcpy(out, p, (size_t)(close - p));
    out[close - p] = '\0';
    return dotenv_tail(close + 1, end);
}

/* A double-quoted value with \n \r \t \" \\ escapes. p is past the opening quote.
 * An unknown escape is an error rather than a guess at what was meant. */
static int dotenv_double(const char *p, const char *end, char *out)
{
    for (;;) {
        if (p == end)
            return VA_EINVAL;
        char c = *p++;
        if (c == '"')
            break;
        if (c == '\\') {
            if (p == end)
                return VA_EINVAL;
            switch (*p++) {
            case 'n':
                c = '\n';
                break;
            case 'r':
                c = '\r';
                break;
            case 't':
                c = '\t';
                break;
            case '"':
                c = '"';
                break;
            case '\\':
                c = '\\';
                break;
            default:
                return VA_EINVAL;
            }
        }
        *out++ = c;
    }
    *out = '\0';
    return dotenv_tail(p, end);
}

/* An unquoted value: up to a '#' that follows whitespace, then trimmed. p is just
 * past the '='. */
static void dotenv_bare(const char *p, const char *end, char *out)
{
    for (const char *h = p; h < end; h++) {
        if (*h == '#' && h > p && dotenv_is_space(h[-1])) {
            end = h;
            break;
        }
    }
    p = dotenv_skip_space(p, end);
    while (end > p && dotenv_is_space(end[-1]))
        end--;
    memcpy(out, p, (size_t)(end - p));
    out[end - p] = '\0';
}

/* Parses one line p[0, n), its line end removed. scratch holds n + 2 bytes, enough
 * for key and value since both are pieces of the line. 1 with *key and *value set,
 * 0 for a blank or comment line, VA_EINVAL. */
static int dotenv_line(const char *p, size_t n, char *scratch, const char **key, const char **value)
{
    const char *end = p + n;

    /* The callback gets C strings: a NUL would silently cut the value. */
    if (memchr(p, '\0', n))
        return VA_EINVAL;
    p = dotenv_skip_space(p, end);
    if (p == end || *p == '#')
        return 0;
    /* "export KEY=..." lets the same file be sourced by a shell. */
    if (end - p > 6 && memcmp(p, "export", 6) == 0 && dotenv_is_space(p[6]))
        p = dotenv_skip_space(p + 6, end);

    const char *k = p;
    if (p == end || !dotenv_is_key_start(*p))
        return VA_EINVAL;
    while (p < end && dotenv_is_key_char(*p))
        p++;
    size_t klen = (size_t)(p - k);
    p = dotenv_skip_space(p, end);
    if (p == end || *p != '=')
        return VA_EINVAL;
    p++;

    memcpy(scratch, k, klen);
    scratch[klen] = '\0';
    char *out = scratch + klen + 1;
    *key = scratch;
    *value = out;

    const char *v = dotenv_skip_space(p, end);
    int err = 0;
    if (v < end && *v == '\'')
        err = dotenv_single(v + 1, end, out);
    else if (v < end && *v == '"')
        err = dotenv_double(v + 1, end, out);
    else
        dotenv_bare(p, end, out);
    if (err)
        return err;
    return 1;
}

int va_dotenv_parse(const char *buf, size_t len, va_dotenv_fn cb, void *ud, int *errline)
{
    size_t pos = 0;
    int line = 0;
    int err = 0;

    if (errline)
        *errline = 0;
    /* Editors on Windows may start the file with a byte order mark. */
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
        pos = 3;
    while (pos < len) {
        const char *p = buf + pos;
        size_t rest = len - pos;
        const char *nl = memchr(p, '\n', rest);
        size_t n = nl ? (size_t)(nl - p) : rest;
        pos += nl ? n + 1 : n;
        if (n > 0 && p[n - 1] == '\r')
            n--;
        line++;

        const char *key = NULL;
        const char *value = NULL;
        char *scratch = va_xmalloc(n + 2);
        int rc = dotenv_line(p, n, scratch, &key, &value);
        if (rc == 1)
            rc = cb(ud, key, value);
        free(scratch);
        if (rc) {
            err = rc;
            break;
        }
    }
    if (err && errline)
        *errline = line;
    return err;
}

void va_env_init(struct va_env *env)
{
    memset(env, 0, sizeof(*env));
}

void va_env_deinit(struct va_env *env)
{
    for (size_t i = 0; i < env->len; i++) {
        free(env->keys[i]);
        free(env->values[i]);
    }
    free(env->keys);
    free(env->values);
    va_env_init(env);
}

/* Takes ownership of key and value; a later duplicate replaces the earlier value. */
static void env_put(struct va_env *env, char *key, char *value)
{
    for (size_t i = 0; i < env->len; i++) {
        if (strcmp(env->keys[i], key) == 0) {
            free(key);
            free(env->values[i]);
            env->values[i] = value;
            return;
        }
    }
    if (env->len == env->cap) {
        size_t cap = env->cap ? env->cap * 2 : 16;
        env->keys = va_xrealloc(env->keys, cap * sizeof(*env->keys));
        env->values = va_xrealloc(env->values, cap * sizeof(*env->values));
        env->cap = cap;
    }
    env->keys[env->len] = key;
    env->values[env->len] = value;
    env->len++;
}

static int env_set_cb(void *ud, const char *key, const char *value)
{
    env_put(ud, va_xstrdup(key), va_xstrdup(value));
    return 0;
}

static int env_read_file(FILE *f, struct va_buf *b)
{
    char chunk[4096];

    for (;;) {
        size_t n = fread(chunk, 1, sizeof(chunk), f);
        if (n > 0) {
            int err = va_buf_append(b, chunk, n);
            if (err)
                return err;
        }
        if (n < sizeof(chunk)) {
            if (ferror(f))
                return errno ? -errno : -EIO;
            return 0;
        }
    }
}

int va_env_load_file(struct va_env *env, const char *path, char *err, size_t errlen)
{
    struct va_buf b;
    struct va_env tmp;
    int line = 0;
    int rc;

    if (err && errlen)
        err[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f) {
        rc = -errno;
        if (rc == -ENOENT)
            return 0;
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    va_buf_init(&b, DOTENV_MAX_FILE);
    errno = 0;
    rc = env_read_file(f, &b);
    fclose(f);
    if (rc) {
        if (err && errlen) {
            if (rc == VA_ETOOBIG)
                snprintf(err, errlen, "%s: larger than %d bytes", path, DOTENV_MAX_FILE);
            else
                snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        }
        va_buf_deinit(&b);
        return rc;
    }

    /* Parse aside so that a bad line leaves env as it was. */
    va_env_init(&tmp);
    rc = va_dotenv_parse(b.data ? b.data : "", b.len, env_set_cb, &tmp, &line);
    va_buf_deinit(&b);
    if (rc) {
        /* The line number only: the line itself may hold a secret. */
        if (err && errlen)
            snprintf(err, errlen, "%s:%d: cannot parse (expected KEY=VALUE)", path, line);
        va_env_deinit(&tmp);
        return VA_EINVAL;
    }
    for (size_t i = 0; i < tmp.len; i++)
        env_put(env, tmp.keys[i], tmp.values[i]);
    /* The strings now belong to env. */
    free(tmp.keys);
    free(tmp.values);
    return 0;
}

const char *va_env_lookup(void *ud, const char *name)
{
    const struct va_env *env = ud;
    const char *v = getenv(name);

    if (v && *v)
        return v;
    if (env) {
        for (size_t i = 0; i < env->len; i++) {
            if (strcmp(env->keys[i], name) == 0)
                return env->values[i];
        }
    }
    return v;
}
