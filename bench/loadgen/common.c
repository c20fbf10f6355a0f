/* bench/loadgen/common.c: what both load generator roles share (see lg.h). */
#include "lg.h"

#include "http/ws.h"
#include "twilio/media.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t lg_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* --- buffers --- */

uint8_t *lg_buf_room(struct lg_buf *b, size_t n)
{
    if (b->off && b->off == b->len)
        b->off = b->len = 0;
    if (b->len + n > b->cap && b->off) { /* slide down before growing */
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) {
            fputs("va-loadgen: out of memory\n", stderr);
            abort();
        }
        b->cap = cap;
    }
    return b->p + b->len;
}

void lg_buf_commit(struct lg_buf *b, size_t n) { b->len += n; }

void lg_buf_add(struct lg_buf *b, const void *data, size_t n)
{
    memcpy(lg_buf_room(b, n), data, n);
    b->len += n;
}

void lg_buf_consume(struct lg_buf *b, size_t n)
{
    b->off += n;
    if (b->off == b->len)
        b->off = b->len = 0;
}

void lg_buf_free(struct lg_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* --- WebSocket --- */

/* Masking keys drawn 1 KiB at a time: one RAND_bytes per 256 frames. */
static uint8_t lg_keys[1024];
static size_t lg_keys_at = sizeof lg_keys;

static size_t lg_ws_head(uint8_t *h, int opcode, size_t n, int masked)
{
    size_t k = 0;
    h[k++] = (uint8_t)(0x80 | opcode);
    uint8_t m = masked ? 0x80 : 0;
    if (n < 126) {
        h[k++] = (uint8_t)(m | n);
    } else if (n < 65536) {
        h[k++] = (uint8_t)(m | 126);
        h[k++] = (uint8_t)(n >> 8);
        h[k++] = (uint8_t)n;
    } else {
        h[k++] = (uint8_t)(m | 127);
        for (int i = 7; i >= 0; i--)
            h[k++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    return k;
}

/* Frame of n payload bytes at the end of out; returns the payload's place. The mask,
 * when masked, is applied by lg_ws_seal once the payload is written. */
static uint8_t *lg_ws_open(struct lg_buf *out, int opcode, size_t n, int masked, uint8_t **key)
{
    uint8_t *h = lg_buf_room(out, n + 14);
    size_t k = lg_ws_head(h, opcode, n, masked);
    *key = NULL;
    if (masked) {
        if (lg_keys_at + 4 > sizeof lg_keys) {
            RAND_bytes(lg_keys, sizeof lg_keys);
            lg_keys_at = 0;
        }
        memcpy(h + k, lg_keys + lg_keys_at, 4);
        lg_keys_at += 4;
        *key = h + k;
        k += 4;
    }
    lg_buf_commit(out, k + n);
    return h + k;
}

void lg_ws_put(struct lg_buf *out, int opcode, const void *payload, size_t n, int masked)
{
    uint8_t *key;
    uint8_t *p = lg_ws_open(out, opcode, n, masked, &key);
    memcpy(p, payload, n);
    if (key)
        va_ws_mask(p, p, n, key);
}

int lg_ws_rx_run(struct lg_ws_rx *rx, int (*on_msg)(void *ud, int op, uint8_t *p, size_t n),
                 void *ud)
{
    int rc = 0;
    for (;;) {
        uint8_t *b = lg_buf_data(&rx->in);
        size_t avail = lg_buf_size(&rx->in);
        if (avail < 2)
            break;
        int fin = b[0] & 0x80, op = b[0] & 0x0f, masked = b[1] & 0x80;
        if (b[0] & 0x70)
            return -1; /* no extension negotiated */
        uint64_t n = b[1] & 0x7f;
        size_t k = 2;
        if (n == 126) {
            if (avail < 4)
                break;
            n = (uint64_t)b[2] << 8 | b[3];
            k = 4;
        } else if (n == 127) {
            if (avail < 10)
                break;
            n = 0;
            for (int i = 0; i < 8; i++)
                n = n << 8 | b[2 + i];
            k = 10;
        }
        if (n > rx->max)
            return -1;
        uint8_t *key = NULL;
        if (masked) {
            if (avail < k + 4)
                break;
            key = b + k;
            k += 4;
        }
        if (avail < k + n)
            break;
        uint8_t *p = b + k;
        if (key)
            va_ws_mask(p, p, (size_t)n, key);
        if (op >= 8) { /* control: whole, may sit between fragments */
            if (!fin || n > 125)
                return -1;
            rc = on_msg(ud, op, p, (size_t)n);
        } else if (op == LG_WS_CONT) {
            if (!rx->msg_op || lg_buf_size(&rx->msg) + n > rx->max)
                return -1;
            lg_buf_add(&rx->msg, p, (size_t)n);
            if (fin) {
                int mop = rx->msg_op;
                rx->msg_op = 0;
                lg_buf_add(&rx->msg, "", 1); /* a NUL after, for the JSON scanners */
                rc = on_msg(ud, mop, lg_buf_data(&rx->msg), lg_buf_size(&rx->msg) - 1);
                rx->msg.off = rx->msg.len = 0;
            }
        } else if (op == LG_WS_TEXT || op == LG_WS_BIN) {
            if (rx->msg_op)
                return -1;
            if (fin) {
                rc = on_msg(ud, op, p, (size_t)n);
            } else {
                rx->msg_op = op;
                lg_buf_add(&rx->msg, p, (size_t)n);
            }
        } else {
            return -1;
        }
        lg_buf_consume(&rx->in, k + (size_t)n);
        if (rc)
            return rc;
    }
    return 0;
}

void lg_ws_rx_free(struct lg_ws_rx *rx)
{
    lg_buf_free(&rx->in);
    lg_buf_free(&rx->msg);
}

/* --- base64: the daemon's (src/twilio/media.c) --- */

size_t lg_b64_enc(char *out, const uint8_t *in, size_t n)
{
    size_t k = tw_b64_encode(out, in, n);
    out[k] = '\0';
    return k;
}

long lg_b64_dec(uint8_t *out, const char *in, size_t n)
{
    size_t k = 0;
    return tw_b64_decode(out, n / 4 * 3, in, n, &k) ? -1 : (long)k;
}

/* --- fixed-shape JSON --- */

static const char *lg_json_at(const char *js, size_t n, const char *key)
{
    size_t kl = strlen(key);
    const char *end = js + n;
    for (const char *p = js; p + kl + 3 <= end; p++) {
        p = memchr(p, '"', (size_t)(end - p));
        if (!p || p + kl + 3 > end)
            return NULL;
        if (memcmp(p + 1, key, kl) == 0 && p[kl + 1] == '"') {
            const char *v = p + kl + 2;
            while (v < end && (*v == ' ' || *v == ':'))
                v++;
            return v < end ? v : NULL;
        }
    }
    return NULL;
}

const char *lg_json_str(const char *js, size_t n, const char *key, size_t *vlen)
{
    const char *v = lg_json_at(js, n, key);
    if (!v || *v != '"')
        return NULL;
    v++;
    const char *q = memchr(v, '"', (size_t)(js + n - v));
    if (!q)
        return NULL;
    *vlen = (size_t)(q - v);
    return v;
}

/* --- loop turns --- */

static void lg_coalesce_cb(uv_prepare_t *h)
{
    struct lg_coalesce *c = h->data;
    uint64_t now = lg_now_ns();
    if (c->last_ns && now - c->last_ns < c->gap_ns) {
        struct timespec ts = {0, (long)(c->gap_ns - (now - c->last_ns))};
        nanosleep(&ts, NULL);
        now = lg_now_ns();
    }
    c->last_ns = now;
}

void lg_coalesce_start(struct lg_coalesce *c, uv_loop_t *loop, unsigned gap_us)
{
    c->gap_ns = (uint64_t)gap_us * 1000;
    c->last_ns = 0;
    uv_prepare_init(loop, &c->prepare);
    c->prepare.data = c;
    uv_prepare_start(&c->prepare, lg_coalesce_cb);
    uv_unref((uv_handle_t *)&c->prepare); /* it never keeps the loop alive */
}

/* --- stamps (lg.h) --- */

#define LG_MARKER 0x70

static uint8_t lg_code(unsigned v)
{
    return (uint8_t)((v & 0x10 ? 0xf0 : 0x70) | (v & 0x0f));
}

void lg_tag_write(uint8_t *p, uint32_t id)
{
    unsigned sum = 0;
    p[0] = LG_MARKER;
    for (int i = 0; i < 6; i++) {
        unsigned v = (id >> (5 * i)) & 31;
        p[1 + i] = lg_code(v);
        sum += v;
    }
    p[7] = lg_code((sum + 7) & 31);
}

long lg_tag_read(const uint8_t *p, size_t n)
{
    if (n < LG_TAG_BYTES || p[0] != LG_MARKER)
        return -1;
    unsigned long id = 0;
    unsigned sum = 0;
    for (int i = 0; i < 6; i++) {
        uint8_t b = p[1 + i];
        if ((b & 0x70) != 0x70)
            return -1;
        unsigned v = (unsigned)((b & 0x80) >> 3 | (b & 0x0f));
        id |= (unsigned long)v << (5 * i);
        sum += v;
    }
    return p[7] == lg_code((sum + 7) & 31) ? (long)id : -1;
}

void lg_stamps_init(struct lg_stamps *s, const char *prefix, unsigned proc)
{
    memset(s, 0, sizeof *s);
    s->prefix = prefix ? strdup(prefix) : NULL;
    s->base = proc << 27;
}

static double *lg_grow(double *a, size_t *cap, size_t need)
{
    if (need <= *cap)
        return a;
    size_t c = *cap ? *cap * 2 : 1 << 16;
    while (c < need)
        c *= 2;
    a = realloc(a, c * sizeof *a);
    if (!a)
        abort();
    *cap = c;
    return a;
}

uint32_t lg_stamps_next(struct lg_stamps *s)
{
    s->sent = lg_grow(s->sent, &s->cap_sent, s->n_sent + 1);
    s->sent[s->n_sent] = 0.0 / 0.0;
    return s->base + (uint32_t)s->n_sent++;
}

void lg_stamps_sent_at(struct lg_stamps *s, uint32_t id, uint64_t t_ns)
{
    s->sent[id - s->base] = (double)t_ns;
}

void lg_stamps_scan(struct lg_stamps *s, const uint8_t *audio, size_t n, uint64_t t_ns)
{
    if (!s->prefix)
        return;
    for (size_t off = 0; off + LG_TAG_BYTES <= n; off += 160) {
        long id = lg_tag_read(audio + off, n - off);
        if (id < 0)
            continue;
        s->recv = lg_grow(s->recv, &s->cap_recv, s->n_recv + 2);
        s->recv[s->n_recv++] = (double)id;
        s->recv[s->n_recv++] = (double)t_ns;
    }
}

void lg_lag(struct lg_stamps *s, uint64_t late_ns)
{
    uint64_t b = late_ns / 100000;
    s->lag_hist[b < 1023 ? b : 1023]++;
    s->lag_n++;
    if (late_ns > s->lag_max_ns)
        s->lag_max_ns = late_ns;
}

static double lg_lag_pct(const struct lg_stamps *s, double p)
{
    uint64_t want = (uint64_t)(p * (double)s->lag_n), seen = 0;
    for (int i = 0; i < 1024; i++) {
        seen += s->lag_hist[i];
        if (seen > want)
            return (i + 1) * 0.1; /* the bucket's upper bound, ms */
    }
    return s->lag_max_ns / 1e6;
}

static void lg_write(const char *prefix, const char *ext, const void *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s.%s", prefix, ext);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n))
        fprintf(stderr, "va-loadgen: cannot write %s\n", path);
    if (f)
        fclose(f);
}

void lg_stamps_save(struct lg_stamps *s)
{
    if (!s->prefix)
        return;
    lg_write(s->prefix, "sent", s->sent, s->n_sent * sizeof(double));
    lg_write(s->prefix, "recv", s->recv, s->n_recv * sizeof(double));
    char js[128];
    int k = snprintf(js, sizeof js, "{\"p50\":%.2f,\"p99\":%.2f,\"max\":%.2f}", lg_lag_pct(s, 0.5),
                     lg_lag_pct(s, 0.99), s->lag_max_ns / 1e6);
    lg_write(s->prefix, "lag", js, (size_t)k);
}

void lg_stamps_free(struct lg_stamps *s)
{
    free(s->prefix);
    free(s->sent);
    free(s->recv);
    memset(s, 0, sizeof *s);
}
