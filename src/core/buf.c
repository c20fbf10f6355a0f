/* src/core/buf.c: bounded growable buffer and aborting allocators. */
#include "core/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

static void buf_oom(size_t n)
{
    fprintf(stderr, "{\"level\":\"error\",\"msg\":\"out of memory\",\"bytes\":%zu}\n", n);
    abort();
}

void *va_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        buf_oom(n);
    return p;
}

void *va_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        buf_oom(n * size);
    return p;
}

void *va_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        buf_oom(n);
    return q;
}

char *va_xstrndup(const char *s, size_t n)
{
    char *d = va_xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *va_xstrdup(const char *s)
{
    return va_xstrndup(s, strlen(s));
}

void va_buf_init(struct va_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void va_buf_deinit(struct va_buf *b)
{
    free(b->data);
    va_buf_init(b, b->max);
}

void va_buf_reset(struct va_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

int va_buf_reserve(struct va_buf *b, size_t n)
{
    if (n > b->max - b->len)
        return VA_ETOOBIG;
    size_t need = b->len + n + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    if (b->max < SIZE_MAX && cap > b->max + 1)
        cap = b->max + 1;
    b->data = va_xrealloc(b->data, cap);
    b->cap = cap;
    return 0;
}

int va_buf_append(struct va_buf *b, const void *p, size_t n)
{
    int err = va_buf_reserve(b, n);
    if (err)
        return err;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int va_buf_append_str(struct va_buf *b, const char *s)
{
    return va_buf_append(b, s, strlen(s));
}

int va_buf_append_char(struct va_buf *b, char c)
{
    return va_buf_append(b, &c, 1);
}

int va_buf_printf(struct va_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return VA_EINVAL;
    int err = va_buf_reserve(b, (size_t)n);
    if (err)
        return err;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void va_buf_consume(struct va_buf *b, size_t n)
{
    if (n >= b->len) {
        va_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *va_buf_steal(struct va_buf *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    va_buf_init(b, b->max);
    return p;
}
