/* include/core/buf.h: growable byte buffer with a hard maximum fixed at init. */
#ifndef VA_CORE_BUF_H
#define VA_CORE_BUF_H

#include <stddef.h>

struct va_buf {
    char *data; /* always NUL-terminated past len when non-NULL */
    size_t len;
    size_t cap;
    size_t max; /* appending past it is VA_ETOOBIG and leaves the buffer unchanged */
};

void va_buf_init(struct va_buf *b, size_t max);
void va_buf_deinit(struct va_buf *b);
void va_buf_reset(struct va_buf *b); /* len = 0, memory kept */
/* Room for n more bytes (and the terminator) at data + len, for writing in place;
 * the caller then adds n to len and terminates. 0 or VA_ETOOBIG. */
int va_buf_reserve(struct va_buf *b, size_t n);
/* 0 or VA_ETOOBIG. */
int va_buf_append(struct va_buf *b, const void *p, size_t n);
int va_buf_append_str(struct va_buf *b, const char *s);
int va_buf_append_char(struct va_buf *b, char c);
int va_buf_printf(struct va_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Removes the first n bytes (n <= len). */
void va_buf_consume(struct va_buf *b, size_t n);
/* Hands the memory to the caller (free() it); the buffer is left empty. */
char *va_buf_steal(struct va_buf *b, size_t *len);

/* Aborting allocators: sound because every buffer a peer can grow is capped. */
void *va_xmalloc(size_t n);
void *va_xcalloc(size_t n, size_t size);
void *va_xrealloc(void *p, size_t n);
char *va_xstrdup(const char *s);
char *va_xstrndup(const char *s, size_t n);

#endif
