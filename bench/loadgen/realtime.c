/* bench/loadgen/realtime.c: va-loadgen realtime, the OpenAI Realtime peer of make bench.
 *
 * The benchmark path of tests/fakes/realtime.js (GA interface, ../shared/reference/
 * openai-realtime.md) in C, one thread, one libuv loop, so that 1,000 concurrent sessions
 * cost a fraction of a core:
 *   va-loadgen realtime [options]
 *     --port P (0: ephemeral)  --host H (127.0.0.1)  --tls CERT KEY (PEM; else plain ws)
 *     --key K                  required bearer (401 otherwise); Azure path: api-key header
 *     --reply-ms N (1200)      reply audio length   --delta-ms N (100) audio per delta
 *     --burst-factor X (5)     deltas X times faster than real time (0: all at once)
 *     --reply-hz F (1000) --reply-amp A (8000)   the reply, a tone
 *     --reply-text T           its transcript ("This is the assistant speaking.")
 *     --response-latency-ms N  between response.created and the first delta (0)
 *     --vad-threshold-rms R (500) --vad-speech-ms N (60)   server VAD as realtime.js
 *     --transcript T --transcript-delay-ms N (50)   caller transcription, when configured
 *     --expire-s S (3600)      session.created expires_at = now + S
 *     --stamp PREFIX --proc N (0-7)   frame stamps (lg.h): PREFIX.<proc>.sent/.recv/.lag
 *     --coalesce-us N (250)    under load, at most one loop turn per N us (0: off), below
 *     --verbose                diagnostics on stderr
 * Stdout: {"listening":PORT}; on SIGTERM/SIGINT the stamps are saved, one JSON summary line
 * is printed and the process exits 0. GET /_control/stats answers the same summary.
 *
 * What realtime.js does and this does too: upgrade checks (path 404, key 401, ?model= 400,
 * api-version on the Azure path 400, OpenAI-Beta: error + close 4000), session.created with
 * the GA defaults, session.update validated on a copy and answered by session.updated with
 * the merged session, appends decoded in the session's format, server VAD on 20 ms windows
 * (speech_started / speech_stopped / committed / user item added+done / transcription /
 * VAD response), barge-in (interrupt_response cancels the running response: turn_detected),
 * responses in audio or text with the event order of realtime.js, truncate / delete /
 * retrieve / item.create / commit / clear / response.create / response.cancel with the
 * errors of realtime.js, event_id "event_<session>_<n>" on every server event.
 * Not here: --tool-call, --refuse-*, --upgrade-delay-ms, the timed close/drop/stall/expire
 * options, --fragment, --log, --record-dir, --workers, --truncate-clamp, the other control
 * endpoints, per-session summary lines.
 *
 * Costs: appends take a fast path (exact shape, base64 straight into a stack buffer, VAD
 * with a table of squares); other messages are checked by a small JSON walker; events are
 * printed into a scratch buffer and framed into the connection's output, which goes out
 * once per callback (one write / SSL_write). One uv_timer per session paces its response
 * from the moment its VAD fired. A session whose output passes 4 MiB (peer not reading) is
 * no longer read nor advanced until it drains below 1 MiB; its reply then goes on at its pace.
 * --coalesce-us: at most one loop turn per N us under load (lg_coalesce_start, lg.h):
 * 15-25% less CPU at 1,000 sessions, for reads and timers up to N us later. PREFIX.lag
 * also holds libuv's millisecond timer granularity (p50 about 0.7 ms).
 * Measured: 0.41-0.45 ms of CPU per call-second at 200 calls through the daemon; about half
 * a core for 1,000 sessions x 50 appends/s, most of it one read() and one TLS record per
 * append, epoll and the writes (kernel and OpenSSL), not this file.
 */
#include "lg.h"

#include "audio/mulaw.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <uv.h>

#define LIT(s) s, sizeof(s) - 1
#define OUT_CHOKE (4u << 20)
#define OUT_RESUME (1u << 20)
#define HEAD_MAX 16384
#define MSG_MAX (32u << 20)
#define READ_CHUNK 16384
#define ID_RAW_MAX 64 /* item ids kept as their raw JSON string text */

/* ---- options ---- */

static struct {
    int port;
    const char *host;
    const char *cert, *certkey;
    const char *key;
    int reply_ms, delta_ms, latency_ms;
    double burst, reply_hz, reply_amp;
    const char *reply_text;
    double vad_rms;
    int vad_speech_ms;
    const char *transcript;
    int transcript_delay_ms;
    long expire_s;
    const char *stamp;
    unsigned proc;
    int coalesce_us;
    bool verbose;
} O = {0,    "127.0.0.1", NULL, NULL, NULL, 1200, 100, 0, 5, 1000, 8000,
       "This is the assistant speaking.", 500, 60, NULL, 50, 3600, NULL, 0, 250, false};

/* ---- process state ---- */

static uv_loop_t *L;
static SSL_CTX *CTX;
static struct lg_stamps ST;
static struct lg_buf J; /* the event being built */
static unsigned session_seq;

static struct {
    uint64_t connections, sessions, open, closed, appends, input_bytes, appends_before_update,
        speech_started, speech_stopped, commits, responses, completed, cancelled, vad_skipped,
        truncates, deletes, cancels, errors_sent, protocol_errors, malformed, tls_errors,
        rejected, beta_rejected, chokes, output_audio_bytes, items_created, events_sent;
} S;

__attribute__((format(printf, 1, 2))) static void verbose(const char *fmt, ...)
{
    if (!O.verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("[va-loadgen realtime] ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- G.711: mu-law is the daemon's (audio/mulaw.h); A-law as tests/fakes/g711.js (Sun g711.c) ---- */

enum { F_PCM = 0, F_PCMU = 1, F_PCMA = 2 };
static const char *const FMT_JSON[] = {"{\"type\":\"audio/pcm\",\"rate\":24000}",
                                       "{\"type\":\"audio/pcmu\"}", "{\"type\":\"audio/pcma\"}"};
static unsigned fmt_bpm(int f) { return f == F_PCM ? 48 : 8; }
static unsigned fmt_rate(int f) { return f == F_PCM ? 24000 : 8000; }

static uint32_t SQ[2][256]; /* squares of decoded mu-law / A-law codes */

static int16_t alaw_dec(uint8_t i)
{
    int a = i ^ 0x55;
    int s = (a & 0x0f) << 4;
    int seg = (a & 0x70) >> 4;
    if (seg == 0)
        s += 8;
    else if (seg == 1)
        s += 0x108;
    else
        s = (s + 0x108) << (seg - 1);
    return (int16_t)(a & 0x80 ? s : -s);
}

static uint8_t lin_to_alaw(int pcm)
{
    static const int seg_end[8] = {0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff};
    int mask;
    pcm >>= 3;
    if (pcm >= 0) {
        mask = 0xd5;
    } else {
        mask = 0x55;
        pcm = -pcm - 1;
    }
    int seg = 0;
    while (seg < 8 && pcm > seg_end[seg])
        seg++;
    if (seg >= 8)
        return (uint8_t)((0x7f ^ mask) & 0xff);
    int aval = seg << 4;
    aval |= seg < 2 ? (pcm >> 1) & 0xf : (pcm >> seg) & 0xf;
    return (uint8_t)((aval ^ mask) & 0xff);
}

/* ---- the reply: the tone of realtime.js, cut in deltas, base64 done once ---- */

static struct reply {
    bool built;
    uint8_t *audio;
    size_t len, chunk, nchunks;
    char *b64;       /* every chunk's base64, one after the other */
    size_t *b64_off; /* nchunks + 1 offsets */
} RP[3];

static const struct reply *reply_get(int f)
{
    struct reply *r = &RP[f];
    if (r->built)
        return r;
    unsigned rate = fmt_rate(f);
    size_t n = (size_t)floor((double)rate * O.reply_ms / 1000.0 + 0.5);
    r->len = f == F_PCM ? n * 2 : n;
    r->audio = malloc(r->len ? r->len : 1);
    for (size_t i = 0; i < n; i++) {
        double x = O.reply_amp * sin(2 * M_PI * O.reply_hz * (double)i / rate);
        int s = (int)floor(x + 0.5); /* Math.round */
        if (f == F_PCM) {
            r->audio[2 * i] = (uint8_t)(s & 0xff);
            r->audio[2 * i + 1] = (uint8_t)((s >> 8) & 0xff);
        } else {
            r->audio[i] = f == F_PCMU ? audio_mulaw_encode1((int16_t)s) : lin_to_alaw(s);
        }
    }
    r->chunk = (size_t)O.delta_ms * fmt_bpm(f);
    r->nchunks = r->len ? (r->len + r->chunk - 1) / r->chunk : 1;
    r->b64 = malloc(r->len / 3 * 4 + 4 * r->nchunks + 8);
    r->b64_off = malloc((r->nchunks + 1) * sizeof(size_t));
    size_t at = 0;
    for (size_t i = 0; i < r->nchunks; i++) {
        size_t a = i * r->chunk, b = a + r->chunk < r->len ? a + r->chunk : r->len;
        r->b64_off[i] = at;
        if (b > a)
            at += lg_b64_enc(r->b64 + at, r->audio + a, b - a);
    }
    r->b64_off[r->nchunks] = at;
    r->built = true;
    return r;
}

/* The reply text, JSON-escaped once; word k ends at WEND[k] (split on every ' ' as JS). */
static char *RTEXT;
static size_t *WEND;
static size_t NWORDS;

/* ---- JSON output ---- */

static void jr(const void *s, size_t n) { lg_buf_add(&J, s, n); }
#define JL(s) jr(s, sizeof(s) - 1)

__attribute__((format(printf, 1, 2))) static void jf(const char *fmt, ...)
{
    va_list ap;
    size_t room = 256;
    for (;;) {
        char *p = (char *)lg_buf_room(&J, room);
        va_start(ap, fmt);
        int k = vsnprintf(p, room, fmt, ap);
        va_end(ap);
        if (k < 0)
            return;
        if ((size_t)k < room) {
            lg_buf_commit(&J, (size_t)k);
            return;
        }
        room = (size_t)k + 1;
    }
}

/* Escapes s[0, n) into b as JSON string content (no quotes). */
static void esc_into(struct lg_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            lg_buf_add(b, e, 2);
        } else if (ch < 0x20) {
            char e[8];
            int k = snprintf(e, sizeof e, "\\u%04x", ch);
            lg_buf_add(b, e, (size_t)k);
        } else {
            lg_buf_add(b, &s[i], 1);
        }
    }
}

static void jesc(const char *s, size_t n)
{
    JL("\"");
    esc_into(&J, s, n);
    JL("\"");
}

static void jcstr(const char *s) { jesc(s, strlen(s)); }

/* Raw JSON string content (already escaped: it came from JSON), quoted. */
static void jq(const char *s, size_t n)
{
    JL("\"");
    jr(s, n);
    JL("\"");
}

/* The raw text of a JSON string (quoted here), or null when !has. */
static void jq_or_null(bool has, const char *s, size_t n)
{
    if (has)
        jq(s, n);
    else
        JL("null");
}

/* s, JSON text already, or null when s is NULL. */
static void jr_or_null(const char *s)
{
    if (s)
        jr(s, strlen(s));
    else
        JL("null");
}

/* s as a JSON string, or null when s is NULL. */
static void jc_or_null(const char *s)
{
    if (s)
        jcstr(s);
    else
        JL("null");
}

/* The shortest %g that reads back as v (JSON.stringify of a number). */
static void jnum(double v)
{
    char s[32];
    int n = 0;
    if (v == floor(v) && fabs(v) < 1e15) {
        n = snprintf(s, sizeof s, "%.0f", v);
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            n = snprintf(s, sizeof s, "%.*g", prec, v);
            if (strtod(s, NULL) == v)
                break;
        }
    }
    jr(s, (size_t)n);
}

/* ---- JSON input: a validating skipper and an object walker (values as raw text) ---- */

static const char *jws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static int hexd(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

static const char *jlit(const char *p, const char *e, const char *w, size_t n)
{
    return (size_t)(e - p) >= n && memcmp(p, w, n) == 0 ? p + n : NULL;
}

/* The end of the JSON value at p (whitespace before it skipped), or NULL if malformed. */
static const char *jskip(const char *p, const char *e, int depth)
{
    p = jws(p, e);
    if (p >= e || depth > 100)
        return NULL;
    switch (*p) {
    case '"':
        for (p++; p < e;) {
            unsigned char ch = (unsigned char)*p;
            if (ch == '"')
                return p + 1;
            if (ch < 0x20)
                return NULL;
            if (ch == '\\') {
                if (++p >= e)
                    return NULL;
                switch (*p) {
                case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                    p++;
                    break;
                case 'u':
                    if (e - p < 5 || !hexd(p[1]) || !hexd(p[2]) || !hexd(p[3]) || !hexd(p[4]))
                        return NULL;
                    p += 5;
                    break;
                default:
                    return NULL;
                }
            } else {
                p++;
            }
        }
        return NULL;
    case '{':
    case '[': {
        char close = *p == '{' ? '}' : ']';
        bool obj = *p == '{';
        p = jws(p + 1, e);
        if (p < e && *p == close)
            return p + 1;
        for (;;) {
            if (obj) {
                p = jws(p, e);
                if (p >= e || *p != '"')
                    return NULL;
                p = jskip(p, e, depth + 1);
                if (!p)
                    return NULL;
                p = jws(p, e);
                if (p >= e || *p != ':')
                    return NULL;
                p++;
            }
            p = jskip(p, e, depth + 1);
            if (!p)
                return NULL;
            p = jws(p, e);
            if (p < e && *p == ',') {
                p++;
                continue;
            }
            if (p < e && *p == close)
                return p + 1;
            return NULL;
        }
    }
    case 't':
        return jlit(p, e, LIT("true"));
    case 'f':
        return jlit(p, e, LIT("false"));
    case 'n':
        return jlit(p, e, LIT("null"));
    default: {
        const char *q = p;
        if (q < e && *q == '-')
            q++;
        if (q >= e || *q < '0' || *q > '9')
            return NULL;
        if (*q == '0')
            q++;
        else
            while (q < e && *q >= '0' && *q <= '9')
                q++;
        if (q < e && *q == '.') {
            q++;
            if (q >= e || *q < '0' || *q > '9')
                return NULL;
            while (q < e && *q >= '0' && *q <= '9')
                q++;
        }
        if (q < e && (*q == 'e' || *q == 'E')) {
            q++;
            if (q < e && (*q == '+' || *q == '-'))
                q++;
            if (q >= e || *q < '0' || *q > '9')
                return NULL;
            while (q < e && *q >= '0' && *q <= '9')
                q++;
        }
        return q;
    }
    }
}

/* A value: raw text [p, e). p == NULL: absent. */
struct jv {
    const char *p, *e;
};

static char jkind(struct jv v) { return v.p ? *v.p : 0; }
static bool j_is_str(struct jv v) { return jkind(v) == '"'; }
static bool j_is_obj(struct jv v) { return jkind(v) == '{'; }
static bool j_is_arr(struct jv v) { return jkind(v) == '['; }
static bool j_is_null(struct jv v) { return jkind(v) == 'n'; }
static bool j_is_bool(struct jv v) { return jkind(v) == 't' || jkind(v) == 'f'; }
static bool j_is_num(struct jv v)
{
    char k = jkind(v);
    return k == '-' || (k >= '0' && k <= '9');
}
static double j_num(struct jv v) { return strtod(v.p, NULL); }
static bool j_is_int(struct jv v)
{
    if (!j_is_num(v))
        return false;
    double d = j_num(v);
    return isfinite(d) && d == floor(d);
}
/* String content (raw, escaped) */
static const char *j_s(struct jv v) { return v.p + 1; }
static size_t j_sn(struct jv v) { return (size_t)(v.e - v.p - 2); }
static bool j_str_eq(struct jv v, const char *s)
{
    return j_is_str(v) && j_sn(v) == strlen(s) && memcmp(j_s(v), s, j_sn(v)) == 0;
}
static size_t j_len(struct jv v) { return (size_t)(v.e - v.p); }

/* JS typeof, as realtime.js names it in invalid_type messages. */
static const char *j_typename(struct jv v)
{
    switch (jkind(v)) {
    case '"': return "string";
    case '{': return "object";
    case '[': return "array";
    case 't': case 'f': return "boolean";
    case 'n': return "null";
    default: return "number";
    }
}

/* Members of the object v in order: returns false at its end. */
struct jit {
    const char *p, *e;
};
static struct jit j_iter(struct jv v)
{
    struct jit it = {v.p + 1, v.e};
    return it;
}
static bool j_next(struct jit *it, const char **k, size_t *kn, struct jv *val)
{
    const char *p = jws(it->p, it->e);
    if (p < it->e && *p == ',')
        p = jws(p + 1, it->e);
    if (p >= it->e || *p != '"')
        return false;
    const char *ke = jskip(p, it->e, 0);
    *k = p + 1;
    *kn = (size_t)(ke - p - 2);
    p = jws(ke, it->e) + 1; /* ':' */
    val->p = jws(p, it->e);
    val->e = jskip(val->p, it->e, 0);
    it->p = val->e;
    return true;
}

/* The member key of object v (the last one, as JSON.parse), or an absent value. */
static struct jv j_get(struct jv obj, const char *key)
{
    struct jv r = {NULL, NULL}, v;
    if (!j_is_obj(obj))
        return r;
    size_t kl = strlen(key), kn;
    const char *k;
    struct jit it = j_iter(obj);
    while (j_next(&it, &k, &kn, &v))
        if (kn == kl && memcmp(k, key, kl) == 0)
            r = v;
    return r;
}

/* ---- request errors (realtime.js ReqError) ---- */

static struct {
    const char *code; /* NULL: null */
    char param[200];  /* "" : null */
    char msg[1024];
} E;

__attribute__((format(printf, 3, 4))) static int fail(const char *code, const char *param,
                                                      const char *fmt, ...)
{
    E.code = code;
    snprintf(E.param, sizeof E.param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(E.msg, sizeof E.msg, fmt, ap);
    va_end(ap);
    return -1;
}

static int err_unknown(const char *p) { return fail("unknown_parameter", p, "Unknown parameter: '%s'.", p); }
static int err_missing(const char *p)
{
    return fail("missing_required_parameter", p, "Missing required parameter: '%s'.", p);
}
static int err_value(const char *p, struct jv v, const char *hint)
{
    int n = v.p ? (int)(j_len(v) < 300 ? j_len(v) : 300) : 9;
    return fail("invalid_value", p, "Invalid value: %.*s for '%s'.%s%s", n, v.p ? v.p : "undefined",
                p, hint ? " " : "", hint ? hint : "");
}
static int err_type(const char *p, const char *want, struct jv v)
{
    return fail("invalid_type", p, "Invalid type for '%s': expected %s, but got %s.", p, want,
                j_typename(v));
}

/* realtime.js onlyKeys: every key of obj is in allowed (NULL-terminated). */
static int only_keys(struct jv obj, const char *const *allowed, const char *prefix)
{
    struct jit it = j_iter(obj);
    const char *k;
    size_t kn;
    struct jv v;
    while (j_next(&it, &k, &kn, &v)) {
        const char *const *a = allowed;
        for (; *a; a++)
            if (strlen(*a) == kn && memcmp(*a, k, kn) == 0)
                break;
        if (!*a) {
            char p[200];
            if (prefix)
                snprintf(p, sizeof p, "%s.%.*s", prefix, (int)(kn < 100 ? kn : 100), k);
            else
                snprintf(p, sizeof p, "%.*s", (int)(kn < 100 ? kn : 100), k);
            return err_unknown(p);
        }
    }
    return 0;
}

static int need_obj(struct jv v, const char *p)
{
    return j_is_obj(v) ? 0 : err_type(p, "an object", v);
}

/* ---- sessions ---- */

enum { IT_USER, IT_ASSIST, IT_MSG, IT_FCALL, IT_FOUT };

struct item {
    char id[ID_RAW_MAX + 1]; /* raw JSON string content */
    uint8_t idn;
    uint8_t kind;
    bool text_mode;   /* assistant: output_text instead of output_audio */
    bool incomplete;  /* assistant status */
    bool in_progress; /* assistant, while its response runs */
    bool transcribed; /* user */
    uint8_t bpm;
    uint32_t audio_bytes;
    uint32_t words; /* assistant transcript / text: its first words of the reply text */
    double dur_ms;  /* user */
    char *pub;      /* client items: their public JSON */
    char *call_id;  /* client function_call items: raw call_id */
};

/* session config values kept as JSON text */
enum { R_MODEL, R_MODAL, R_INSTR, R_TOOLS, R_TCHOICE, R_MAXTOK, R_TRACING, R_TRUNC, R_PROMPT,
       R_INCLUDE, R_TRANSCR, R_NOISE, R_THRESH, R_IDLE, R_EAGER, R_VOICE, R_SPEED, R_N };

struct cfg {
    char *raw[R_N];
    uint8_t in_fmt, out_fmt;
    uint8_t td; /* 0 null, 1 server_vad, 2 semantic_vad */
    bool create_resp, interrupt_resp, text_out;
    uint32_t prefix_ms, silence_ms;
};

struct resp {
    bool active;
    bool text_mode, conv, closed_item, incomplete;
    uint8_t fmt;
    unsigned n, a_n; /* resp_<n>, item_a<a_n> */
    char *voice, *maxtok, *metadata; /* JSON text, owned */
    size_t step, nsteps;
    uint64_t t0, interval; /* ns */
    unsigned words_sent, out_tokens;
    uint32_t audio_bytes;
    bool has_prev;
    char prev[ID_RAW_MAX + 1];
};

struct transcript_due {
    unsigned u_n;
    double dur_ms;
    uint64_t due;
};

enum { C_TLS, C_HTTP, C_WS };

struct conn {
    int fd;
    SSL *ssl;
    uv_poll_t poll;
    uv_timer_t timer;
    int handles; /* open libuv handles */
    int state;
    int events; /* the poll mask in force */
    bool dead, close_after, choked, session;
    bool rd_wants_wr, wr_wants_rd, hs_wants_wr;
    struct lg_buf out;
    struct lg_ws_rx rx;
    uint64_t t_read;  /* ns of the read being parsed */
    uint64_t t_timer; /* ns the timer was set for */
    uint32_t stamps[8];
    unsigned n_stamps;
    /* session */
    unsigned seq, ev_seq;
    char id[24], conv_id[24];
    long long expires_at;
    bool updated_once;
    struct cfg cfg;
    struct item *items;
    size_t n_items, cap_items;
    unsigned n_u, n_a, n_c, n_resp;
    struct resp r;
    struct transcript_due tq[8];
    unsigned n_tq;
    uint64_t audio_out_bytes;
    /* input audio and VAD */
    double in_ms, buf_ms;
    uint64_t vad_ms;
    int vad_fmt;
    uint64_t acc;      /* sum of squares of the window being filled */
    unsigned acc_n;    /* its samples */
    int carry;         /* PCM: a held odd byte, -1: none */
    bool speech;       /* VAD state: in speech */
    uint64_t loud_ms, onset_ms, quiet_ms, start_ms;
    unsigned vad_u; /* item_u<n> of the speech */
};

static void conn_close(struct conn *c);
static void conn_flush(struct conn *c);
static void sched(struct conn *c);

/* ---- events ---- */

static void ev_begin(struct conn *c, const char *type)
{
    J.off = J.len = 0;
    jf("{\"type\":\"%s\",\"event_id\":\"event_%u_%u\"", type, c->seq, ++c->ev_seq);
}

static void ev_end(struct conn *c)
{
    JL("}");
    if (c->dead || c->close_after)
        return;
    lg_ws_put(&c->out, LG_WS_TEXT, lg_buf_data(&J), lg_buf_size(&J), 0);
    S.events_sent++;
}

/* error event: code/param from E, client_eid the raw event_id string content or NULL */
static void send_error(struct conn *c, const char *type, const char *code, const char *param,
                       const char *msg, const char *eid, size_t eidn)
{
    S.errors_sent++;
    ev_begin(c, "error");
    JL(",\"error\":{\"type\":");
    jcstr(type ? type : "invalid_request_error");
    JL(",\"code\":");
    jc_or_null(code);
    JL(",\"message\":");
    jcstr(msg);
    JL(",\"param\":");
    if (param && *param)
        jcstr(param);
    else
        JL("null");
    JL(",\"event_id\":");
    jq_or_null(eid, eid, eidn);
    JL("}");
    ev_end(c);
    verbose("session %u: error %s: %s", c->seq, code ? code : "null", msg);
}

static void ids(const struct conn *c)
{
    jf(",\"response_id\":\"resp_%u\",\"item_id\":\"item_a%u\",\"output_index\":0,"
       "\"content_index\":0",
       c->r.n, c->r.a_n);
}

/* ---- conversation ---- */

static struct item *item_find(struct conn *c, const char *id, size_t n)
{
    for (size_t i = c->n_items; i-- > 0;)
        if (c->items[i].idn == n && memcmp(c->items[i].id, id, n) == 0)
            return &c->items[i];
    return NULL;
}

static struct item *item_find_a(struct conn *c, unsigned a_n)
{
    char id[32];
    int n = snprintf(id, sizeof id, "item_a%u", a_n);
    return item_find(c, id, (size_t)n);
}

/* Inserts at position pos (0..n_items); returns the new item, zeroed but for its id. */
static struct item *item_insert(struct conn *c, size_t pos, const char *id, size_t n)
{
    if (c->n_items == c->cap_items) {
        c->cap_items = c->cap_items ? c->cap_items * 2 : 8;
        c->items = realloc(c->items, c->cap_items * sizeof *c->items);
        if (!c->items)
            abort();
    }
    memmove(&c->items[pos + 1], &c->items[pos], (c->n_items - pos) * sizeof *c->items);
    c->n_items++;
    struct item *it = &c->items[pos];
    memset(it, 0, sizeof *it);
    memcpy(it->id, id, n);
    it->idn = (uint8_t)n;
    return it;
}

static void item_remove(struct conn *c, struct item *it)
{
    free(it->pub);
    free(it->call_id);
    size_t pos = (size_t)(it - c->items);
    memmove(&c->items[pos], &c->items[pos + 1], (c->n_items - pos - 1) * sizeof *c->items);
    c->n_items--;
}

/* The first w words of the reply text, as a JSON string. */
static void j_words(uint32_t w)
{
    JL("\"");
    if (w)
        jr(RTEXT, WEND[w - 1]);
    JL("\"");
}

static void j_user_transcript(const struct conn *c, const struct item *it)
{
    (void)c;
    if (!it->transcribed) {
        JL("null");
    } else if (O.transcript) {
        jcstr(O.transcript);
    } else {
        jf("\"caller speech %.0f ms\"", floor(it->dur_ms + 0.5));
    }
}

/* realtime.js publicItem */
static void j_item(const struct conn *c, const struct item *it)
{
    if (it->pub) {
        jr(it->pub, strlen(it->pub));
        return;
    }
    JL("{\"id\":\"");
    jr(it->id, it->idn);
    JL("\",\"object\":\"realtime.item\",\"type\":\"message\",\"status\":");
    if (it->kind == IT_USER) {
        JL("\"completed\",\"role\":\"user\",\"content\":[{\"type\":\"input_audio\",\"transcript\":");
        j_user_transcript(c, it);
        JL("}]}");
        return;
    }
    if (it->in_progress)
        JL("\"in_progress\"");
    else if (it->incomplete)
        JL("\"incomplete\"");
    else
        JL("\"completed\"");
    if (it->text_mode)
        JL(",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":");
    else
        JL(",\"role\":\"assistant\",\"content\":[{\"type\":\"output_audio\",\"transcript\":");
    j_words(it->words);
    JL("}]}");
}

/* ---- responses ---- */

/* A response object's fields from the conversation_id value to the voice value (the
 * caller writes "conversation_id": before and closes the audio objects after). */
static void j_resp_settings(const struct conn *c)
{
    const struct resp *r = &c->r;
    if (r->conv)
        jf("\"%s\"", c->conv_id);
    else
        JL("null");
    if (r->text_mode)
        JL(",\"output_modalities\":[\"text\"]");
    else
        JL(",\"output_modalities\":[\"audio\"]");
    JL(",\"max_output_tokens\":");
    jr(r->maxtok, strlen(r->maxtok));
    JL(",\"audio\":{\"output\":{\"format\":");
    jr(FMT_JSON[r->fmt], strlen(FMT_JSON[r->fmt]));
    JL(",\"voice\":");
    jr(r->voice, strlen(r->voice));
}

static void j_resp_obj(const struct conn *c, const char *status)
{
    const struct resp *r = &c->r;
    jf("{\"object\":\"realtime.response\",\"id\":\"resp_%u\",\"status\":\"%s\",", r->n, status);
    JL("\"status_details\":null,\"output\":[],\"conversation_id\":");
    j_resp_settings(c);
    JL("}},\"usage\":null,\"metadata\":");
    jr_or_null(r->metadata);
    JL("}");
}

/* The response's assistant item as it stands (the conversation's copy when it is there). */
static void j_resp_item(struct conn *c)
{
    struct item *it = item_find_a(c, c->r.a_n);
    if (it) {
        j_item(c, it);
        return;
    }
    struct item tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.idn = (uint8_t)snprintf(tmp.id, sizeof tmp.id, "item_a%u", c->r.a_n);
    tmp.kind = IT_ASSIST;
    tmp.text_mode = c->r.text_mode;
    tmp.in_progress = !c->r.closed_item;
    tmp.incomplete = c->r.incomplete;
    tmp.words = c->r.words_sent;
    j_item(c, &tmp);
}

static uint32_t resp_words_now(struct conn *c)
{
    struct item *it = item_find_a(c, c->r.a_n);
    return it ? it->words : c->r.words_sent;
}

static void resp_free(struct resp *r)
{
    free(r->voice);
    free(r->maxtok);
    free(r->metadata);
    r->voice = r->maxtok = r->metadata = NULL;
}

/* realtime.js finishResponse */
static void resp_finish(struct conn *c, bool completed, const char *reason)
{
    struct resp *r = &c->r;
    if (!r->active)
        return;
    uint32_t w = resp_words_now(c);
    /* closeItem */
    if (r->text_mode) {
        ev_begin(c, "response.output_text.done");
        ids(c);
        JL(",\"text\":");
        j_words(w);
        ev_end(c);
        ev_begin(c, "response.content_part.done");
        ids(c);
        JL(",\"part\":{\"type\":\"output_text\",\"text\":");
        j_words(w);
        JL("}");
        ev_end(c);
    } else {
        ev_begin(c, "response.output_audio.done");
        ids(c);
        ev_end(c);
        ev_begin(c, "response.output_audio_transcript.done");
        ids(c);
        JL(",\"transcript\":");
        j_words(w);
        ev_end(c);
        ev_begin(c, "response.content_part.done");
        ids(c);
        JL(",\"part\":{\"type\":\"output_audio\",\"transcript\":");
        j_words(w);
        JL("}");
        ev_end(c);
    }
    /* closeOutputItem */
    struct item *it = item_find_a(c, r->a_n);
    if (it) {
        it->in_progress = false;
        it->incomplete = !completed;
    }
    r->closed_item = true;
    r->incomplete = !completed;
    r->active = false; /* the item shows its final status from here */
    ev_begin(c, "response.output_item.done");
    jf(",\"response_id\":\"resp_%u\",\"output_index\":0,\"item\":", r->n);
    j_resp_item(c);
    ev_end(c);
    if (r->conv && it) {
        ev_begin(c, "conversation.item.done");
        JL(",\"previous_item_id\":");
        jq_or_null(r->has_prev, r->prev, strlen(r->prev));
        JL(",\"item\":");
        j_item(c, it);
        ev_end(c);
    }
    unsigned in_tok = 100 + (unsigned)floor(c->in_ms / 100 + 0.5);
    unsigned out = r->out_tokens;
    if (completed)
        S.completed++;
    else
        S.cancelled++;
    ev_begin(c, "response.done");
    JL(",\"response\":");
    /* respObj with status, status_details, output and usage in place */
    const char *status = completed ? "completed" : "cancelled";
    jf("{\"object\":\"realtime.response\",\"id\":\"resp_%u\",\"status\":\"%s\",", r->n, status);
    if (completed)
        JL("\"status_details\":null");
    else
        jf("\"status_details\":{\"type\":\"cancelled\",\"reason\":\"%s\"}", reason);
    JL(",\"output\":[");
    j_resp_item(c);
    JL("],\"conversation_id\":");
    j_resp_settings(c);
    jf("}},\"usage\":{\"total_tokens\":%u,\"input_tokens\":%u,\"output_tokens\":%u,"
       "\"input_token_details\":{\"text_tokens\":100,\"audio_tokens\":%u,\"image_tokens\":0,"
       "\"cached_tokens\":0},\"output_token_details\":{\"text_tokens\":%u,\"audio_tokens\":%u}}",
       in_tok + out, in_tok, out, in_tok - 100, out < 20 ? out : 20, out > 20 ? out - 20 : 0);
    JL(",\"metadata\":");
    jr_or_null(r->metadata);
    JL("}");
    ev_end(c);
    resp_free(r);
    verbose("session %u: resp_%u %s", c->seq, r->n, status);
}

/* One step of the plan: a delta (audio chunk or text word) or the end. */
static void resp_step(struct conn *c)
{
    struct resp *r = &c->r;
    size_t k = r->step++;
    if (k + 1 == r->nsteps) {
        resp_finish(c, true, NULL);
        return;
    }
    struct item *it = item_find_a(c, r->a_n);
    if (r->text_mode) {
        ev_begin(c, "response.output_text.delta");
        ids(c);
        JL(",\"delta\":\"");
        size_t a = k ? WEND[k - 1] : 0;
        jr(RTEXT + a, WEND[k] - a);
        JL("\"");
        ev_end(c);
        r->words_sent = (unsigned)k + 1;
        if (it)
            it->words = r->words_sent;
        r->out_tokens++;
        return;
    }
    const struct reply *rp = reply_get(r->fmt);
    size_t a = k * rp->chunk, b = a + rp->chunk < rp->len ? a + rp->chunk : rp->len;
    if (b > a) {
        size_t n = b - a;
        ev_begin(c, "response.output_audio.delta");
        ids(c);
        JL(",\"delta\":\"");
        if (k == 0 && ST.prefix && n >= LG_TAG_BYTES && r->fmt == F_PCMU) {
            uint8_t piece[65536];
            uint8_t *pp = n <= sizeof piece ? piece : malloc(n);
            memcpy(pp, rp->audio + a, n);
            uint32_t sid = lg_stamps_next(&ST);
            lg_tag_write(pp, sid);
            char *dst = (char *)lg_buf_room(&J, n / 3 * 4 + 8);
            lg_buf_commit(&J, lg_b64_enc(dst, pp, n));
            if (pp != piece)
                free(pp);
            if (c->n_stamps < sizeof c->stamps / sizeof c->stamps[0])
                c->stamps[c->n_stamps++] = sid;
            else
                lg_stamps_sent_at(&ST, sid, lg_now_ns());
        } else {
            jr(rp->b64 + rp->b64_off[k], rp->b64_off[k + 1] - rp->b64_off[k]);
        }
        JL("\"");
        ev_end(c);
        r->audio_bytes += (uint32_t)n;
        if (it)
            it->audio_bytes += (uint32_t)n;
        c->audio_out_bytes += n;
        S.output_audio_bytes += n;
        unsigned bpm = fmt_bpm(r->fmt);
        r->out_tokens += (unsigned)((n + (size_t)bpm * 50 - 1) / ((size_t)bpm * 50));
    }
    size_t nch = rp->nchunks;
    unsigned upto = (unsigned)(((k + 1) * NWORDS) / nch);
    if (upto > r->words_sent) {
        ev_begin(c, "response.output_audio_transcript.delta");
        ids(c);
        JL(",\"delta\":\"");
        size_t wa = r->words_sent ? WEND[r->words_sent - 1] : 0;
        jr(RTEXT + wa, WEND[upto - 1] - wa);
        JL("\"");
        ev_end(c);
        r->words_sent = upto;
        if (it)
            it->words = upto;
        r->out_tokens++;
    }
}

static uint64_t step_due(const struct resp *r) { return r->t0 + r->step * r->interval; }

/* The steps that are due; the first one regardless when force. */
static void resp_run(struct conn *c, uint64_t now, bool force)
{
    while (c->r.active && c->r.step < c->r.nsteps && !c->dead && !c->choked &&
           lg_buf_size(&c->out) <= OUT_CHOKE && (force || step_due(&c->r) <= now)) {
        force = false;
        resp_step(c);
    }
}

/* params of response.create (NULL for VAD), already checked */
static void resp_start(struct conn *c, struct jv params)
{
    struct resp *r = &c->r;
    const struct cfg *g = &c->cfg;
    memset(r, 0, sizeof *r);
    r->active = true;
    r->n = ++c->n_resp;
    r->fmt = g->out_fmt;
    r->text_mode = g->text_out;
    r->conv = true;
    struct jv ao = j_get(j_get(params, "audio"), "output");
    struct jv f = j_get(ao, "format");
    if (f.p) {
        struct jv t = j_get(f, "type");
        r->fmt = j_str_eq(t, "audio/pcmu") ? F_PCMU : j_str_eq(t, "audio/pcma") ? F_PCMA : F_PCM;
    }
    struct jv v = j_get(ao, "voice");
    r->voice = v.p ? strndup(v.p, j_len(v)) : strdup(g->raw[R_VOICE]);
    struct jv m = j_get(params, "output_modalities");
    if (m.p)
        r->text_mode = memchr(m.p, 't', j_len(m)) != NULL; /* ["text"] or ["audio"] */
    if (j_str_eq(j_get(params, "conversation"), "none"))
        r->conv = false;
    v = j_get(params, "max_output_tokens");
    r->maxtok = v.p ? strndup(v.p, j_len(v)) : strdup(g->raw[R_MAXTOK]);
    v = j_get(params, "metadata");
    r->metadata = v.p ? strndup(v.p, j_len(v)) : NULL;
    r->interval = O.burst > 0 ? (uint64_t)(O.delta_ms / O.burst * 1e6) : 0;
    S.responses++;
    ev_begin(c, "response.created");
    JL(",\"response\":");
    j_resp_obj(c, "in_progress");
    ev_end(c);
    ev_begin(c, "rate_limits.updated");
    jf(",\"rate_limits\":[{\"name\":\"requests\",\"limit\":1000,\"remaining\":%llu,"
       "\"reset_seconds\":60},{\"name\":\"tokens\",\"limit\":50000,\"remaining\":%llu,"
       "\"reset_seconds\":60}]",
       S.responses < 1000 ? (unsigned long long)(1000 - S.responses) : 0ULL,
       S.responses * 50 < 50000 ? (unsigned long long)(50000 - S.responses * 50) : 0ULL);
    ev_end(c);
    /* newAssistantItem */
    r->a_n = ++c->n_a;
    char id[32];
    int idn = snprintf(id, sizeof id, "item_a%u", r->a_n);
    if (r->conv) {
        if (c->n_items) {
            r->has_prev = true;
            memcpy(r->prev, c->items[c->n_items - 1].id, c->items[c->n_items - 1].idn);
            r->prev[c->items[c->n_items - 1].idn] = '\0';
        }
        struct item *it = item_insert(c, c->n_items, id, (size_t)idn);
        it->kind = IT_ASSIST;
        it->text_mode = r->text_mode;
        it->in_progress = true;
        it->bpm = (uint8_t)fmt_bpm(r->fmt);
    }
    ev_begin(c, "response.output_item.added");
    jf(",\"response_id\":\"resp_%u\",\"output_index\":0,\"item\":", r->n);
    j_resp_item(c);
    ev_end(c);
    if (r->conv) {
        ev_begin(c, "conversation.item.added");
        JL(",\"previous_item_id\":");
        jq_or_null(r->has_prev, r->prev, strlen(r->prev));
        JL(",\"item\":");
        j_resp_item(c);
        ev_end(c);
    }
    ev_begin(c, "response.content_part.added");
    ids(c);
    if (r->text_mode)
        JL(",\"part\":{\"type\":\"output_text\",\"text\":\"\"}");
    else
        JL(",\"part\":{\"type\":\"output_audio\",\"transcript\":\"\"}");
    ev_end(c);
    r->nsteps = (r->text_mode ? NWORDS : reply_get(r->fmt)->nchunks) + 1;
    /* on a whole millisecond, so that the timer's lateness is the loop's alone */
    uint64_t now = lg_now_ns();
    r->t0 = r->interval ? (now + 999999) / 1000000 * 1000000 : now;
    r->t0 += (uint64_t)O.latency_ms * 1000000;
    if (O.latency_ms == 0)
        resp_run(c, now, true);
    sched(c);
    verbose("session %u: resp_%u started", c->seq, r->n);
}

/* ---- input audio, server VAD (realtime.js feedVad / vadWindow) ---- */

static void vad_reset(struct conn *c)
{
    c->speech = false;
    c->loud_ms = c->onset_ms = c->quiet_ms = c->start_ms = 0;
    c->vad_u = 0;
}

static void commit_item(struct conn *c, unsigned u_n, double dur_ms)
{
    char id[32];
    int idn = snprintf(id, sizeof id, "item_u%u", u_n);
    bool has_prev = c->n_items > 0;
    char prev[ID_RAW_MAX + 1];
    size_t prevn = 0;
    if (has_prev) {
        prevn = c->items[c->n_items - 1].idn;
        memcpy(prev, c->items[c->n_items - 1].id, prevn);
    }
    struct item *it = item_insert(c, c->n_items, id, (size_t)idn);
    it->kind = IT_USER;
    it->dur_ms = dur_ms;
    c->buf_ms = 0;
    S.commits++;
    ev_begin(c, "input_audio_buffer.committed");
    JL(",\"previous_item_id\":");
    jq_or_null(has_prev, prev, prevn);
    jf(",\"item_id\":\"%s\"", id);
    ev_end(c);
    for (int k = 0; k < 2; k++) {
        it = item_find(c, id, (size_t)idn);
        ev_begin(c, k ? "conversation.item.done" : "conversation.item.added");
        JL(",\"previous_item_id\":");
        jq_or_null(has_prev, prev, prevn);
        JL(",\"item\":");
        j_item(c, it);
        ev_end(c);
    }
    if (c->cfg.raw[R_TRANSCR][0] != 'n' && c->n_tq < sizeof c->tq / sizeof c->tq[0]) {
        struct transcript_due *t = &c->tq[c->n_tq++];
        t->u_n = u_n;
        t->dur_ms = dur_ms;
        t->due = lg_now_ns() + (uint64_t)O.transcript_delay_ms * 1000000;
        sched(c);
    }
}

static void transcript_send(struct conn *c, const struct transcript_due *t)
{
    char id[32];
    int idn = snprintf(id, sizeof id, "item_u%u", t->u_n);
    struct item *it = item_find(c, id, (size_t)idn);
    if (!it)
        return;
    it->transcribed = true;
    for (int k = 0; k < 2; k++) {
        ev_begin(c, k ? "conversation.item.input_audio_transcription.completed"
                      : "conversation.item.input_audio_transcription.delta");
        jf(",\"item_id\":\"%s\",\"content_index\":0,\"%s\":", id, k ? "transcript" : "delta");
        j_user_transcript(c, it);
        if (k) {
            JL(",\"usage\":{\"type\":\"duration\",\"seconds\":");
            jnum(floor(t->dur_ms + 0.5) / 1000);
            JL("}");
        }
        ev_end(c);
    }
}

static void vad_window(struct conn *c, bool loud, uint64_t start, uint64_t end)
{
    const struct cfg *g = &c->cfg;
    if (!g->td)
        return;
    if (!c->speech) {
        if (!loud) {
            c->loud_ms = 0;
            return;
        }
        if (c->loud_ms == 0)
            c->onset_ms = start;
        c->loud_ms += 20;
        if (c->loud_ms < (uint64_t)O.vad_speech_ms)
            return;
        uint64_t prefix = g->td == 1 ? g->prefix_ms : 300;
        c->speech = true;
        c->quiet_ms = 0;
        c->vad_u = ++c->n_u;
        c->start_ms = c->onset_ms > prefix ? c->onset_ms - prefix : 0;
        S.speech_started++;
        ev_begin(c, "input_audio_buffer.speech_started");
        jf(",\"audio_start_ms\":%llu,\"item_id\":\"item_u%u\"", (unsigned long long)c->start_ms,
           c->vad_u);
        ev_end(c);
        if (g->interrupt_resp && c->r.active)
            resp_finish(c, false, "turn_detected");
        return;
    }
    if (loud) {
        c->quiet_ms = 0;
        return;
    }
    c->quiet_ms += 20;
    uint64_t silence = g->td == 1 ? g->silence_ms : 500;
    if (c->quiet_ms < silence)
        return;
    unsigned u = c->vad_u;
    uint64_t speech_start = c->start_ms;
    vad_reset(c);
    S.speech_stopped++;
    ev_begin(c, "input_audio_buffer.speech_stopped");
    jf(",\"audio_end_ms\":%llu,\"item_id\":\"item_u%u\"", (unsigned long long)end, u);
    ev_end(c);
    commit_item(c, u, (double)(end - speech_start));
    if (g->create_resp) {
        if (c->r.active)
            S.vad_skipped++;
        else
            resp_start(c, (struct jv){NULL, NULL});
    }
}

static void vad_feed(struct conn *c, const uint8_t *a, size_t n)
{
    int f = c->cfg.in_fmt;
    if (c->vad_fmt != f) {
        c->vad_fmt = f;
        c->acc = 0;
        c->acc_n = 0;
        c->carry = -1;
    }
    const unsigned win = fmt_rate(f) / 50;
    const double thr = O.vad_rms * O.vad_rms * win;
    if (f == F_PCM) {
        size_t i = 0;
        if (c->carry >= 0 && n) {
            int16_t s = (int16_t)((unsigned)c->carry | (unsigned)a[0] << 8);
            c->acc += (uint64_t)((int32_t)s * s);
            c->acc_n++;
            c->carry = -1;
            i = 1;
            if (c->acc_n == win) {
                bool loud = (double)c->acc > thr;
                c->acc = 0;
                c->acc_n = 0;
                c->vad_ms += 20;
                vad_window(c, loud, c->vad_ms - 20, c->vad_ms);
            }
        }
        for (; i + 1 < n; i += 2) {
            int16_t s = (int16_t)((unsigned)a[i] | (unsigned)a[i + 1] << 8);
            c->acc += (uint64_t)((int32_t)s * s);
            if (++c->acc_n == win) {
                bool loud = (double)c->acc > thr;
                c->acc = 0;
                c->acc_n = 0;
                c->vad_ms += 20;
                vad_window(c, loud, c->vad_ms - 20, c->vad_ms);
            }
        }
        if (i < n)
            c->carry = a[i];
        return;
    }
    const uint32_t *sq = SQ[f == F_PCMA];
    size_t i = 0;
    while (i < n) {
        size_t k = win - c->acc_n;
        if (k > n - i)
            k = n - i;
        uint64_t acc = c->acc;
        for (size_t j = 0; j < k; j++)
            acc += sq[a[i + j]];
        i += k;
        c->acc = acc;
        c->acc_n += (unsigned)k;
        if (c->acc_n == win) {
            bool loud = (double)c->acc > thr;
            c->acc = 0;
            c->acc_n = 0;
            c->vad_ms += 20;
            vad_window(c, loud, c->vad_ms - 20, c->vad_ms);
        }
    }
}

/* An append's decoded audio. */
static void on_audio(struct conn *c, const uint8_t *a, size_t n)
{
    lg_stamps_scan(&ST, a, n, c->t_read);
    S.appends++;
    S.input_bytes += n;
    if (!c->updated_once)
        S.appends_before_update++;
    double ms = (double)n / fmt_bpm(c->cfg.in_fmt);
    c->in_ms += ms;
    c->buf_ms += ms;
    vad_feed(c, a, n);
}

static int append_b64(struct conn *c, const char *b64, size_t n)
{
    uint8_t stack[16384];
    static struct lg_buf big;
    uint8_t *dst = stack;
    if (n / 4 * 3 > sizeof stack) {
        big.off = big.len = 0;
        dst = lg_buf_room(&big, n / 4 * 3 + 4);
    }
    long k = lg_b64_dec(dst, b64, n);
    if (k < 0)
        return fail("invalid_value", "audio", "Invalid 'audio'. Expected base64-encoded audio bytes.");
    if (k > 15 * 1024 * 1024)
        return fail("invalid_value", "audio", "Audio chunk too large: at most 15 MiB per append.");
    on_audio(c, dst, (size_t)k);
    return 0;
}

/* ---- session.update (realtime.js mergeSession) ---- */

static void cfg_set(struct cfg *m, const struct cfg *base, int i, const char *p, size_t n)
{
    if (m->raw[i] != base->raw[i])
        free(m->raw[i]);
    m->raw[i] = strndup(p, n);
}
static void cfg_setv(struct cfg *m, const struct cfg *base, int i, struct jv v)
{
    cfg_set(m, base, i, v.p, j_len(v));
}
static void cfg_sets(struct cfg *m, const struct cfg *base, int i, const char *s)
{
    cfg_set(m, base, i, s, strlen(s));
}

static const char *const VOICES[] = {"alloy", "ash",     "ballad", "coral", "echo",
                                     "sage",  "shimmer", "verse",  "marin", "cedar", NULL};

static int check_format(struct jv v, const char *p, uint8_t *fmt)
{
    static const char *const keys[] = {"type", "rate", NULL};
    char q[200];
    if (j_is_str(v))
        return err_type(p, "an object", v); /* beta "g711_ulaw"/"pcm16" */
    if (need_obj(v, p) || only_keys(v, keys, p))
        return -1;
    struct jv t = j_get(v, "type"), rate = j_get(v, "rate");
    snprintf(q, sizeof q, "%s.type", p);
    if (!t.p)
        return err_missing(q);
    if (j_str_eq(t, "audio/pcm")) {
        snprintf(q, sizeof q, "%s.rate", p);
        if (rate.p && !(j_is_num(rate) && j_num(rate) == 24000))
            return err_value(q, rate, "Supported values are: 24000.");
        *fmt = F_PCM;
        return 0;
    }
    if (!j_str_eq(t, "audio/pcmu") && !j_str_eq(t, "audio/pcma"))
        return err_value(q, t, "Supported values are: 'audio/pcm', 'audio/pcmu' and 'audio/pcma'.");
    if (rate.p) {
        snprintf(q, sizeof q, "%s.rate", p);
        return err_unknown(q);
    }
    *fmt = j_str_eq(t, "audio/pcmu") ? F_PCMU : F_PCMA;
    return 0;
}

static int check_modalities(struct jv v, const char *p)
{
    if (!j_is_arr(v))
        return err_type(p, "an array", v);
    /* exactly ["audio"] or ["text"] */
    const char *q = jws(v.p + 1, v.e);
    struct jv one = {q, jskip(q, v.e, 0)};
    if (!one.e || !(j_str_eq(one, "audio") || j_str_eq(one, "text")) || *jws(one.e, v.e) != ']')
        return err_value(p, v, "Supported values are: ['audio'] or ['text'].");
    return 0;
}

static bool name_ok(struct jv v)
{
    if (!j_is_str(v) || j_sn(v) < 1 || j_sn(v) > 64)
        return false;
    for (size_t i = 0; i < j_sn(v); i++) {
        char ch = j_s(v)[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

static int check_tools(struct jv v, const char *p)
{
    static const char *const keys[] = {"type", "name", "description", "parameters", NULL};
    if (!j_is_arr(v))
        return err_type(p, "an array", v);
    const char *q = jws(v.p + 1, v.e);
    for (int i = 0; *q != ']'; i++) {
        struct jv t = {q, jskip(q, v.e, 0)};
        char b[200], c2[240];
        snprintf(b, sizeof b, "%s[%d]", p, i);
        if (need_obj(t, b) || only_keys(t, keys, b))
            return -1;
        struct jv x = j_get(t, "type");
        snprintf(c2, sizeof c2, "%s.type", b);
        if (!j_str_eq(x, "function"))
            return err_value(c2, x, "Supported values are: 'function'.");
        x = j_get(t, "name");
        snprintf(c2, sizeof c2, "%s.name", b);
        if (!name_ok(x))
            return err_value(c2, x, NULL);
        x = j_get(t, "description");
        snprintf(c2, sizeof c2, "%s.description", b);
        if (x.p && !j_is_str(x))
            return err_type(c2, "a string", x);
        x = j_get(t, "parameters");
        snprintf(c2, sizeof c2, "%s.parameters", b);
        if (x.p && !j_is_obj(x))
            return err_type(c2, "an object", x);
        q = jws(t.e, v.e);
        if (*q == ',')
            q = jws(q + 1, v.e);
    }
    return 0;
}

static int check_tool_choice(struct jv v, const char *p)
{
    static const char *const keys[] = {"type", "name", NULL};
    char q[200];
    if (j_is_str(v)) {
        if (!j_str_eq(v, "auto") && !j_str_eq(v, "none") && !j_str_eq(v, "required"))
            return err_value(p, v, "Supported values are: 'auto', 'none' and 'required'.");
        return 0;
    }
    if (need_obj(v, p) || only_keys(v, keys, p))
        return -1;
    snprintf(q, sizeof q, "%s.type", p);
    if (!j_str_eq(j_get(v, "type"), "function"))
        return err_value(q, j_get(v, "type"), NULL);
    snprintf(q, sizeof q, "%s.name", p);
    if (!j_is_str(j_get(v, "name")))
        return err_missing(q);
    return 0;
}

static int check_max_tokens(struct jv v, const char *p)
{
    if (j_str_eq(v, "inf"))
        return 0;
    if (!(j_is_int(v) && j_num(v) >= 1 && j_num(v) <= 4096))
        return err_value(p, v, "Expected an integer between 1 and 4096 or 'inf'.");
    return 0;
}

static void turn_defaults(struct cfg *m, const struct cfg *base, int td)
{
    m->td = (uint8_t)td;
    m->create_resp = m->interrupt_resp = true;
    m->prefix_ms = 300;
    m->silence_ms = 200;
    cfg_sets(m, base, R_THRESH, "0.5");
    cfg_sets(m, base, R_IDLE, "null");
    cfg_sets(m, base, R_EAGER, "\"auto\"");
}

static int merge_turn(struct cfg *m, const struct cfg *base, struct jv v, const char *p)
{
    static const char *const server_keys[] = {"type",
                                              "threshold",
                                              "prefix_padding_ms",
                                              "silence_duration_ms",
                                              "idle_timeout_ms",
                                              "create_response",
                                              "interrupt_response",
                                              NULL};
    static const char *const semantic_keys[] = {"type", "eagerness", "create_response",
                                                "interrupt_response", NULL};
    char q[200];
    if (j_is_null(v)) {
        m->td = 0;
        return 0;
    }
    if (need_obj(v, p))
        return -1;
    struct jv t = j_get(v, "type");
    int td;
    snprintf(q, sizeof q, "%s.type", p);
    if (!t.p) {
        if (!m->td)
            return err_missing(q);
        td = m->td;
    } else if (j_str_eq(t, "server_vad")) {
        td = 1;
    } else if (j_str_eq(t, "semantic_vad")) {
        td = 2;
    } else {
        if (j_is_null(t))
            return err_missing(q);
        return err_value(q, t, "Supported values are: 'server_vad' and 'semantic_vad'.");
    }
    if (m->td != td)
        turn_defaults(m, base, td);
    if (only_keys(v, td == 1 ? server_keys : semantic_keys, p))
        return -1;
    struct jit it = j_iter(v);
    const char *k;
    size_t kn;
    struct jv x;
    while (j_next(&it, &k, &kn, &x)) {
        snprintf(q, sizeof q, "%s.%.*s", p, (int)kn, k);
#define KEY(s) (kn == sizeof(s) - 1 && memcmp(k, s, kn) == 0)
        if (KEY("threshold")) {
            if (!(j_is_num(x) && j_num(x) >= 0 && j_num(x) <= 1))
                return err_value(q, x, "Expected a number between 0 and 1.");
            cfg_setv(m, base, R_THRESH, x);
        } else if (KEY("prefix_padding_ms") || KEY("silence_duration_ms")) {
            if (!(j_is_int(x) && j_num(x) >= 0))
                return err_value(q, x, "Expected a non-negative integer.");
            double d = j_num(x);
            uint32_t u = d > 4e9 ? 4000000000u : (uint32_t)d;
            if (KEY("prefix_padding_ms"))
                m->prefix_ms = u;
            else
                m->silence_ms = u;
        } else if (KEY("idle_timeout_ms")) {
            if (!j_is_null(x) && !(j_is_int(x) && j_num(x) >= 0))
                return err_value(q, x, "Expected null or a non-negative integer.");
            cfg_setv(m, base, R_IDLE, x);
        } else if (KEY("create_response") || KEY("interrupt_response")) {
            if (!j_is_bool(x))
                return err_type(q, "a boolean", x);
            if (KEY("create_response"))
                m->create_resp = *x.p == 't';
            else
                m->interrupt_resp = *x.p == 't';
        } else if (KEY("eagerness")) {
            if (!j_str_eq(x, "low") && !j_str_eq(x, "medium") && !j_str_eq(x, "high") &&
                !j_str_eq(x, "auto"))
                return err_value(q, x, "Supported values are: 'low', 'medium', 'high' and 'auto'.");
            cfg_setv(m, base, R_EAGER, x);
        }
#undef KEY
    }
    return 0;
}

static int merge_session(struct conn *c, struct cfg *m, struct jv upd)
{
    static const char *const session_keys[] = {
        "type",  "model",    "instructions", "output_modalities", "audio",  "tools",
        "tool_choice", "max_output_tokens", "tracing", "truncation", "prompt", "include", NULL};
    static const char *const audio_keys[] = {"input", "output", NULL};
    static const char *const in_keys[] = {"format", "transcription", "noise_reduction",
                                          "turn_detection", NULL};
    static const char *const out_keys[] = {"format", "voice", "speed", NULL};
    static const char *const tr_keys[] = {"model", "language", "prompt", NULL};
    static const char *const nr_keys[] = {"type", NULL};
    const struct cfg *base = &c->cfg;
    struct jv v;
    if (!upd.p)
        return err_missing("session");
    if (need_obj(upd, "session") || only_keys(upd, session_keys, "session"))
        return -1;
    v = j_get(upd, "type");
    if (!v.p)
        return err_missing("session.type");
    if (!j_str_eq(v, "realtime"))
        return err_value("session.type", v, "Supported values are: 'realtime'.");
    if ((v = j_get(upd, "model")).p) {
        if (!j_is_str(v))
            return err_type("session.model", "a string", v);
        cfg_setv(m, base, R_MODEL, v);
    }
    if ((v = j_get(upd, "instructions")).p) {
        if (!j_is_str(v))
            return err_type("session.instructions", "a string", v);
        cfg_setv(m, base, R_INSTR, v);
    }
    if ((v = j_get(upd, "output_modalities")).p) {
        if (check_modalities(v, "session.output_modalities"))
            return -1;
        cfg_setv(m, base, R_MODAL, v);
        m->text_out = memchr(v.p, 't', j_len(v)) != NULL;
    }
    if ((v = j_get(upd, "tools")).p) {
        if (check_tools(v, "session.tools"))
            return -1;
        cfg_setv(m, base, R_TOOLS, v);
    }
    if ((v = j_get(upd, "tool_choice")).p) {
        if (check_tool_choice(v, "session.tool_choice"))
            return -1;
        cfg_setv(m, base, R_TCHOICE, v);
    }
    if ((v = j_get(upd, "max_output_tokens")).p) {
        if (check_max_tokens(v, "session.max_output_tokens"))
            return -1;
        cfg_setv(m, base, R_MAXTOK, v);
    }
    if ((v = j_get(upd, "tracing")).p)
        cfg_setv(m, base, R_TRACING, v);
    if ((v = j_get(upd, "truncation")).p)
        cfg_setv(m, base, R_TRUNC, v);
    if ((v = j_get(upd, "prompt")).p)
        cfg_setv(m, base, R_PROMPT, v);
    if ((v = j_get(upd, "include")).p)
        cfg_setv(m, base, R_INCLUDE, v);
    struct jv audio = j_get(upd, "audio");
    if (!audio.p)
        return 0;
    if (need_obj(audio, "session.audio") || only_keys(audio, audio_keys, "session.audio"))
        return -1;
    struct jv ai = j_get(audio, "input");
    if (ai.p) {
        const char *p = "session.audio.input";
        if (need_obj(ai, p) || only_keys(ai, in_keys, p))
            return -1;
        if ((v = j_get(ai, "format")).p && check_format(v, "session.audio.input.format", &m->in_fmt))
            return -1;
        if ((v = j_get(ai, "transcription")).p) {
            if (!j_is_null(v)) {
                const char *tp = "session.audio.input.transcription";
                if (need_obj(v, tp) || only_keys(v, tr_keys, tp))
                    return -1;
                if (!j_is_str(j_get(v, "model")))
                    return err_missing("session.audio.input.transcription.model");
                struct jv x = j_get(v, "language");
                if (x.p && !j_is_str(x))
                    return err_type("session.audio.input.transcription.language", "a string", x);
                x = j_get(v, "prompt");
                if (x.p && !j_is_str(x))
                    return err_type("session.audio.input.transcription.prompt", "a string", x);
            }
            cfg_setv(m, base, R_TRANSCR, v);
        }
        if ((v = j_get(ai, "noise_reduction")).p) {
            if (!j_is_null(v)) {
                const char *np = "session.audio.input.noise_reduction";
                if (need_obj(v, np) || only_keys(v, nr_keys, np))
                    return -1;
                struct jv t = j_get(v, "type");
                if (!j_str_eq(t, "near_field") && !j_str_eq(t, "far_field"))
                    return err_value("session.audio.input.noise_reduction.type", t,
                                     "Supported values are: 'near_field' and 'far_field'.");
                char nr[64];
                int n = snprintf(nr, sizeof nr, "{\"type\":\"%.*s\"}", (int)j_sn(t), j_s(t));
                cfg_set(m, base, R_NOISE, nr, (size_t)n);
            } else {
                cfg_setv(m, base, R_NOISE, v);
            }
        }
        if ((v = j_get(ai, "turn_detection")).p &&
            merge_turn(m, base, v, "session.audio.input.turn_detection"))
            return -1;
    }
    struct jv ao = j_get(audio, "output");
    if (ao.p) {
        const char *p = "session.audio.output";
        if (need_obj(ao, p) || only_keys(ao, out_keys, p))
            return -1;
        if ((v = j_get(ao, "format")).p &&
            check_format(v, "session.audio.output.format", &m->out_fmt))
            return -1;
        if ((v = j_get(ao, "voice")).p) {
            const char *const *vo = VOICES;
            for (; *vo; vo++)
                if (j_str_eq(v, *vo))
                    break;
            if (!*vo)
                return err_value("session.audio.output.voice", v,
                                 "Supported values are: 'alloy', 'ash', 'ballad', 'coral', "
                                 "'echo', 'sage', 'shimmer', 'verse', 'marin', 'cedar'.");
            if ((strlen(m->raw[R_VOICE]) != j_len(v) ||
                 memcmp(m->raw[R_VOICE], v.p, j_len(v)) != 0) &&
                c->audio_out_bytes > 0)
                return fail("cannot_update_voice", "session.audio.output.voice",
                            "Cannot update a conversation's voice if assistant audio is present.");
            cfg_setv(m, base, R_VOICE, v);
        }
        if ((v = j_get(ao, "speed")).p) {
            if (!(j_is_num(v) && j_num(v) >= 0.25 && j_num(v) <= 1.5))
                return err_value("session.audio.output.speed", v,
                                 "Expected a number between 0.25 and 1.5.");
            cfg_setv(m, base, R_SPEED, v);
        }
    }
    return 0;
}

static void j_session(const struct conn *c)
{
    const struct cfg *g = &c->cfg;
    char *const *R = g->raw;
    jf("{\"type\":\"realtime\",\"object\":\"realtime.session\",\"id\":\"%s\",\"model\":", c->id);
    jr(R[R_MODEL], strlen(R[R_MODEL]));
#define RAW(key, i)                                                                                \
    do {                                                                                           \
        JL(",\"" key "\":");                                                                       \
        jr(R[i], strlen(R[i]));                                                                    \
    } while (0)
    RAW("output_modalities", R_MODAL);
    RAW("instructions", R_INSTR);
    RAW("tools", R_TOOLS);
    RAW("tool_choice", R_TCHOICE);
    RAW("max_output_tokens", R_MAXTOK);
    RAW("tracing", R_TRACING);
    RAW("truncation", R_TRUNC);
    RAW("prompt", R_PROMPT);
    jf(",\"expires_at\":%lld", c->expires_at);
    RAW("include", R_INCLUDE);
    JL(",\"audio\":{\"input\":{\"format\":");
    jr(FMT_JSON[g->in_fmt], strlen(FMT_JSON[g->in_fmt]));
    RAW("transcription", R_TRANSCR);
    RAW("noise_reduction", R_NOISE);
    JL(",\"turn_detection\":");
    if (g->td == 1) {
        JL("{\"type\":\"server_vad\",\"threshold\":");
        jr(R[R_THRESH], strlen(R[R_THRESH]));
        jf(",\"prefix_padding_ms\":%u,\"silence_duration_ms\":%u", g->prefix_ms, g->silence_ms);
        RAW("idle_timeout_ms", R_IDLE);
    } else if (g->td == 2) {
        JL("{\"type\":\"semantic_vad\"");
        RAW("eagerness", R_EAGER);
    } else {
        JL("null");
    }
    if (g->td)
        jf(",\"create_response\":%s,\"interrupt_response\":%s}", g->create_resp ? "true" : "false",
           g->interrupt_resp ? "true" : "false");
    JL("},\"output\":{\"format\":");
    jr(FMT_JSON[g->out_fmt], strlen(FMT_JSON[g->out_fmt]));
    RAW("voice", R_VOICE);
    RAW("speed", R_SPEED);
    JL("}}}");
#undef RAW
}

static void cfg_init(struct conn *c, const char *model_json)
{
    static const char *const defs[R_N] = {
        [R_MODAL] = "[\"audio\"]",
        [R_INSTR] = "\"You are a helpful, witty, and friendly AI.\"",
        [R_TOOLS] = "[]",
        [R_TCHOICE] = "\"auto\"",
        [R_MAXTOK] = "\"inf\"",
        [R_TRACING] = "null",
        [R_TRUNC] = "\"auto\"",
        [R_PROMPT] = "null",
        [R_INCLUDE] = "null",
        [R_TRANSCR] = "null",
        [R_NOISE] = "null",
        [R_THRESH] = "0.5",
        [R_IDLE] = "null",
        [R_EAGER] = "\"auto\"",
        [R_VOICE] = "\"marin\"",
        [R_SPEED] = "1",
    };
    struct cfg *g = &c->cfg;
    for (int i = 0; i < R_N; i++)
        g->raw[i] = strdup(i == R_MODEL ? model_json : defs[i]);
    g->in_fmt = g->out_fmt = F_PCM;
    g->td = 1;
    g->create_resp = g->interrupt_resp = true;
    g->prefix_ms = 300;
    g->silence_ms = 200;
    g->text_out = false;
}

/* ---- client events ---- */

static int on_session_update(struct conn *c, struct jv ev)
{
    struct cfg m = c->cfg;
    if (merge_session(c, &m, j_get(ev, "session"))) {
        for (int i = 0; i < R_N; i++)
            if (m.raw[i] != c->cfg.raw[i])
                free(m.raw[i]);
        return -1;
    }
    for (int i = 0; i < R_N; i++)
        if (m.raw[i] != c->cfg.raw[i])
            free(c->cfg.raw[i]);
    c->cfg = m;
    ev_begin(c, "session.updated");
    JL(",\"session\":");
    j_session(c);
    ev_end(c);
    c->updated_once = true;
    if (!m.td)
        vad_reset(c);
    verbose("session %u: updated (in %d out %d td %d silence %u prefix %u)", c->seq, m.in_fmt,
            m.out_fmt, m.td, m.silence_ms, m.prefix_ms);
    return 0;
}

static int item_not_found(struct jv id)
{
    if (j_is_str(id))
        return fail("item_not_found", "item_id", "Conversation item with id '%.*s' not found.",
                    (int)(j_sn(id) < 200 ? j_sn(id) : 200), j_s(id));
    return fail("item_not_found", "item_id", "Conversation item with id '%.*s' not found.",
                (int)(j_len(id) < 200 ? j_len(id) : 200), id.p);
}

static struct item *item_by(struct conn *c, struct jv id)
{
    return j_is_str(id) && j_sn(id) <= ID_RAW_MAX ? item_find(c, j_s(id), j_sn(id)) : NULL;
}

static int on_truncate(struct conn *c, struct jv ev)
{
    struct jv id = j_get(ev, "item_id"), ci = j_get(ev, "content_index"),
              end = j_get(ev, "audio_end_ms");
    S.truncates++;
    if (!id.p)
        return err_missing("item_id");
    if (!ci.p)
        return err_missing("content_index");
    if (!end.p)
        return err_missing("audio_end_ms");
    if (!j_is_int(ci) || j_num(ci) < 0)
        return err_value("content_index", ci, NULL);
    if (!j_is_int(end) || j_num(end) < 0)
        return err_value("audio_end_ms", end, "Expected a non-negative integer.");
    struct item *it = item_by(c, id);
    if (!it)
        return item_not_found(id);
    if (!(it->kind == IT_ASSIST && !it->text_mode))
        return fail(NULL, NULL, "Only model output audio messages can be truncated");
    if (j_num(ci) != 0)
        return err_value("content_index", ci, "The item has one content part.");
    uint64_t len_ms = it->audio_bytes / it->bpm;
    double ms = j_num(end);
    if (ms > (double)len_ms)
        return fail(NULL, NULL, "Audio content of %llums is already shorter than %.0fms",
                    (unsigned long long)len_ms, ms);
    if (ms == 0)
        return fail("invalid_value", "audio_end_ms",
                    "audio_end_ms must be greater than 0 (fake strictness: delete the item "
                    "instead).");
    double full_ms = (double)it->audio_bytes / it->bpm;
    uint64_t cut = (uint64_t)ms * it->bpm;
    if (cut < it->audio_bytes)
        it->audio_bytes = (uint32_t)cut;
    if (full_ms > 0 && it->words)
        it->words = (uint32_t)floor(it->words * ms / full_ms);
    ev_begin(c, "conversation.item.truncated");
    JL(",\"item_id\":\"");
    jr(it->id, it->idn);
    jf("\",\"content_index\":0,\"audio_end_ms\":%.0f", ms);
    ev_end(c);
    return 0;
}

static int on_delete(struct conn *c, struct jv ev)
{
    struct jv id = j_get(ev, "item_id");
    S.deletes++;
    if (!id.p)
        return err_missing("item_id");
    struct item *it = item_by(c, id);
    if (!it)
        return item_not_found(id);
    ev_begin(c, "conversation.item.deleted");
    JL(",\"item_id\":\"");
    jr(it->id, it->idn);
    JL("\"");
    ev_end(c);
    item_remove(c, it);
    return 0;
}

static int check_response_params(struct jv r)
{
    static const char *const keys[] = {"instructions", "output_modalities", "conversation",
                                       "metadata",     "tools",             "tool_choice",
                                       "max_output_tokens", "audio", "input", "prompt", NULL};
    static const char *const akeys[] = {"output", NULL};
    static const char *const okeys[] = {"format", "voice", NULL};
    struct jv v;
    uint8_t f;
    if (!r.p)
        return 0;
    if (need_obj(r, "response") || only_keys(r, keys, "response"))
        return -1;
    if ((v = j_get(r, "instructions")).p && !j_is_str(v))
        return err_type("response.instructions", "a string", v);
    if ((v = j_get(r, "output_modalities")).p && check_modalities(v, "response.output_modalities"))
        return -1;
    if ((v = j_get(r, "conversation")).p && !j_str_eq(v, "auto") && !j_str_eq(v, "none"))
        return err_value("response.conversation", v, "Supported values are: 'auto' and 'none'.");
    if ((v = j_get(r, "tools")).p && check_tools(v, "response.tools"))
        return -1;
    if ((v = j_get(r, "tool_choice")).p && check_tool_choice(v, "response.tool_choice"))
        return -1;
    if ((v = j_get(r, "max_output_tokens")).p &&
        check_max_tokens(v, "response.max_output_tokens"))
        return -1;
    struct jv a = j_get(r, "audio");
    if (a.p) {
        if (need_obj(a, "response.audio") || only_keys(a, akeys, "response.audio"))
            return -1;
        struct jv o = j_get(a, "output");
        if (o.p) {
            if (need_obj(o, "response.audio.output") ||
                only_keys(o, okeys, "response.audio.output"))
                return -1;
            if ((v = j_get(o, "format")).p &&
                check_format(v, "response.audio.output.format", &f))
                return -1;
            v = j_get(o, "voice");
            if (v.p) {
                const char *const *vo = VOICES;
                for (; *vo; vo++)
                    if (j_str_eq(v, *vo))
                        break;
                if (!*vo)
                    return err_value("response.audio.output.voice", v, NULL);
            }
        }
    }
    return 0;
}

static int check_item(struct jv it)
{
    static const char *const mkeys[] = {"id", "type", "object", "status", "role", "content", NULL};
    static const char *const okeys[] = {"id", "type", "object", "status", "call_id", "output", NULL};
    static const char *const fkeys[] = {"id",      "type", "object",    "status",
                                        "call_id", "name", "arguments", NULL};
    if (!it.p)
        return err_missing("item");
    if (need_obj(it, "item"))
        return -1;
    struct jv t = j_get(it, "type"), id = j_get(it, "id");
    if (!t.p)
        return err_missing("item.type");
    if (id.p && (!j_is_str(id) || j_sn(id) == 0 || j_sn(id) > 32))
        return err_value("item.id", id, "Expected a string of 1 to 32 characters.");
    if (j_str_eq(t, "message")) {
        if (only_keys(it, mkeys, "item"))
            return -1;
        struct jv role = j_get(it, "role"), content = j_get(it, "content");
        bool asst = j_str_eq(role, "assistant");
        if (!asst && !j_str_eq(role, "user") && !j_str_eq(role, "system"))
            return err_value("item.role", role,
                             "Supported values are: 'user', 'assistant' and 'system'.");
        if (!j_is_arr(content))
            return err_missing("item.content");
        const char *q = jws(content.p + 1, content.e);
        for (int i = 0; *q != ']'; i++) {
            struct jv part = {q, jskip(q, content.e, 0)};
            char p[64];
            snprintf(p, sizeof p, "item.content[%d]", i);
            if (need_obj(part, p))
                return -1;
            struct jv pt = j_get(part, "type");
            bool txt = j_str_eq(pt, asst ? "output_text" : "input_text");
            if (!txt && !j_str_eq(pt, asst ? "output_audio" : "input_audio")) {
                snprintf(p, sizeof p, "item.content[%d].type", i);
                return err_value(p, pt,
                                 asst ? "Supported values are: 'output_text' and 'output_audio'."
                                      : "Supported values are: 'input_text' and 'input_audio'.");
            }
            if (txt && !j_is_str(j_get(part, "text"))) {
                snprintf(p, sizeof p, "item.content[%d].text", i);
                return err_missing(p);
            }
            q = jws(part.e, content.e);
            if (*q == ',')
                q = jws(q + 1, content.e);
        }
    } else if (j_str_eq(t, "function_call_output")) {
        if (only_keys(it, okeys, "item"))
            return -1;
        struct jv x = j_get(it, "call_id");
        if (!x.p)
            return err_missing("item.call_id");
        if (!j_is_str(x))
            return err_type("item.call_id", "a string", x);
        x = j_get(it, "output");
        if (!x.p)
            return err_missing("item.output");
        if (!j_is_str(x))
            return err_type("item.output", "a string", x);
    } else if (j_str_eq(t, "function_call")) {
        if (only_keys(it, fkeys, "item"))
            return -1;
        static const char *const need[] = {"call_id", "name", "arguments"};
        for (int i = 0; i < 3; i++)
            if (!j_is_str(j_get(it, need[i]))) {
                char p[32];
                snprintf(p, sizeof p, "item.%s", need[i]);
                return err_missing(p);
            }
    } else {
        return err_value("item.type", t,
                         "Supported values are: 'message', 'function_call' and "
                         "'function_call_output'.");
    }
    return 0;
}

static int on_item_create(struct conn *c, struct jv ev)
{
    struct jv it = j_get(ev, "item"), prev = j_get(ev, "previous_item_id");
    if (check_item(it))
        return -1;
    bool root = j_str_eq(prev, "root");
    struct item *after = root ? NULL : item_by(c, prev);
    if (prev.p && !j_is_null(prev) && !root && !after) {
        if (j_is_str(prev))
            return fail("invalid_value", "previous_item_id", "Previous item with id '%.*s' not found.",
                        (int)(j_sn(prev) < 200 ? j_sn(prev) : 200), j_s(prev));
        return err_value("previous_item_id", prev, NULL);
    }
    struct jv id = j_get(it, "id"), t = j_get(it, "type"), call = j_get(it, "call_id");
    if (id.p && item_by(c, id))
        return fail("invalid_value", "item.id", "Item with id '%.*s' already exists.",
                    (int)j_sn(id), j_s(id));
    int kind = j_str_eq(t, "message") ? IT_MSG : j_str_eq(t, "function_call") ? IT_FCALL : IT_FOUT;
    if (kind == IT_FOUT) {
        bool found = false;
        for (size_t i = 0; i < c->n_items && !found; i++)
            found = c->items[i].call_id && strlen(c->items[i].call_id) == j_sn(call) &&
                    memcmp(c->items[i].call_id, j_s(call), j_sn(call)) == 0;
        if (!found)
            return fail("invalid_value", "item.call_id",
                        "Tool call ID '%.*s' not found in conversation.",
                        (int)(j_sn(call) < 200 ? j_sn(call) : 200), j_s(call));
    }
    char idb[40];
    const char *ids_ = idb;
    size_t idn;
    if (id.p) {
        ids_ = j_s(id);
        idn = j_sn(id);
    } else {
        idn = (size_t)snprintf(idb, sizeof idb, "item_c%u", ++c->n_c);
    }
    /* where: after prev, at the front for root, else at the end */
    size_t pos = c->n_items;
    bool has_prev = false;
    char pv[ID_RAW_MAX + 1];
    size_t pvn = 0;
    if (root) {
        pos = 0;
    } else if (after) {
        pos = (size_t)(after - c->items) + 1;
        has_prev = true;
        pvn = after->idn;
        memcpy(pv, after->id, pvn);
    } else if (!prev.p && c->n_items) {
        has_prev = true;
        pvn = c->items[c->n_items - 1].idn;
        memcpy(pv, c->items[c->n_items - 1].id, pvn);
    }
    /* its public JSON */
    struct lg_buf pub = {0};
    lg_buf_add(&pub, LIT("{\"id\":\""));
    lg_buf_add(&pub, ids_, idn);
    lg_buf_add(&pub, LIT("\",\"object\":\"realtime.item\",\"type\":"));
    lg_buf_add(&pub, t.p, j_len(t));
    lg_buf_add(&pub, LIT(",\"status\":\"completed\""));
    static const char *const mk[] = {"role", "content", NULL};
    static const char *const ok[] = {"call_id", "output", NULL};
    static const char *const fk[] = {"name", "call_id", "arguments", NULL};
    for (const char *const *k = kind == IT_MSG ? mk : kind == IT_FOUT ? ok : fk; *k; k++) {
        struct jv x = j_get(it, *k);
        lg_buf_add(&pub, LIT(",\""));
        lg_buf_add(&pub, *k, strlen(*k));
        lg_buf_add(&pub, LIT("\":"));
        lg_buf_add(&pub, x.p, j_len(x));
    }
    lg_buf_add(&pub, LIT("}"));
    lg_buf_add(&pub, "", 1);
    struct item *ni = item_insert(c, pos, ids_, idn);
    ni->kind = (uint8_t)kind;
    ni->pub = (char *)pub.p;
    if (kind == IT_FCALL)
        ni->call_id = strndup(j_s(call), j_sn(call));
    S.items_created++;
    for (int k = 0; k < 2; k++) {
        ev_begin(c, k ? "conversation.item.done" : "conversation.item.added");
        JL(",\"previous_item_id\":");
        jq_or_null(has_prev, pv, pvn);
        JL(",\"item\":");
        j_item(c, ni);
        ev_end(c);
    }
    return 0;
}

static int on_event(struct conn *c, struct jv ev, struct jv type)
{
    struct jv v;
#define T(s) j_str_eq(type, s)
    if (T("session.update"))
        return on_session_update(c, ev);
    if (T("input_audio_buffer.append")) {
        v = j_get(ev, "audio");
        if (!v.p)
            return err_missing("audio");
        if (!j_is_str(v))
            return err_type("audio", "a string", v);
        return append_b64(c, j_s(v), j_sn(v));
    }
    if (T("input_audio_buffer.commit")) {
        if (c->buf_ms < 100)
            return fail("input_audio_buffer_commit_empty", NULL,
                        "Error committing input audio buffer: buffer too small. Expected at least "
                        "100ms of audio, but buffer only has %.2fms of audio.",
                        floor(c->buf_ms * 100) / 100);
        unsigned u = c->speech ? c->vad_u : ++c->n_u;
        double dur = c->buf_ms;
        vad_reset(c);
        commit_item(c, u, dur);
        return 0;
    }
    if (T("input_audio_buffer.clear")) {
        c->buf_ms = 0;
        vad_reset(c);
        ev_begin(c, "input_audio_buffer.cleared");
        ev_end(c);
        return 0;
    }
    if (T("response.create")) {
        struct jv r = j_get(ev, "response");
        if (check_response_params(r))
            return -1;
        if (c->r.active)
            return fail("conversation_already_has_active_response", NULL,
                        "Conversation already has an active response in progress: resp_%u. Wait "
                        "until the response is finished before creating a new one.",
                        c->r.n);
        resp_start(c, r);
        return 0;
    }
    if (T("response.cancel")) {
        S.cancels++;
        v = j_get(ev, "response_id");
        char want[32];
        snprintf(want, sizeof want, "resp_%u", c->r.n);
        if (!c->r.active || (v.p && !j_str_eq(v, want)))
            return fail("response_cancel_not_active", NULL,
                        "Cancellation failed: no active response found");
        resp_finish(c, false, "client_cancelled");
        return 0;
    }
    if (T("conversation.item.truncate"))
        return on_truncate(c, ev);
    if (T("conversation.item.delete"))
        return on_delete(c, ev);
    if (T("conversation.item.create"))
        return on_item_create(c, ev);
    if (T("conversation.item.retrieve")) {
        v = j_get(ev, "item_id");
        if (!j_is_str(v))
            return err_missing("item_id");
        struct item *it = item_by(c, v);
        if (!it)
            return item_not_found(v);
        ev_begin(c, "conversation.item.retrieved");
        JL(",\"item\":");
        j_item(c, it);
        ev_end(c);
        return 0;
    }
    if (T("output_audio_buffer.clear"))
        return fail("invalid_value", "type",
                    "output_audio_buffer.clear is only supported for WebRTC and SIP connections.");
    if (T("transcription_session.update"))
        return fail("invalid_value", "type",
                    "transcription_session.update is not supported in a realtime session.");
#undef T
    return err_value("type", type, "Unknown client event type.");
}

/* realtime.js EVENT_KEYS: the keys each client event may have besides type and event_id */
static const char *const *event_keys(struct jv type)
{
    static const char *const k_update[] = {"type", "event_id", "session", NULL};
    static const char *const k_append[] = {"type", "event_id", "audio", NULL};
    static const char *const k_none[] = {"type", "event_id", NULL};
    static const char *const k_create[] = {"type", "event_id", "response", NULL};
    static const char *const k_cancel[] = {"type", "event_id", "response_id", NULL};
    static const char *const k_trunc[] = {"type", "event_id", "item_id", "content_index",
                                          "audio_end_ms", NULL};
    static const char *const k_item[] = {"type", "event_id", "item_id", NULL};
    static const char *const k_icreate[] = {"type", "event_id", "item", "previous_item_id", NULL};
    static const struct {
        const char *name;
        const char *const *keys;
    } tab[] = {
        {"session.update", k_update},
        {"input_audio_buffer.append", k_append},
        {"input_audio_buffer.commit", k_none},
        {"input_audio_buffer.clear", k_none},
        {"response.create", k_create},
        {"response.cancel", k_cancel},
        {"conversation.item.truncate", k_trunc},
        {"conversation.item.delete", k_item},
        {"conversation.item.create", k_icreate},
        {"conversation.item.retrieve", k_item},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (j_str_eq(type, tab[i].name))
            return tab[i].keys;
    return NULL;
}

static void on_text(struct conn *c, const char *p, size_t n)
{
    static const char pre[] = "{\"type\":\"input_audio_buffer.append\",\"audio\":\"";
    const size_t pn = sizeof pre - 1;
    /* the hot path: the daemon's exact append shape */
    if (n >= pn + 2 && memcmp(p, pre, pn) == 0 && p[n - 2] == '"' && p[n - 1] == '}' &&
        !memchr(p + pn, '"', n - pn - 2)) {
        if (append_b64(c, p + pn, n - pn - 2))
            send_error(c, NULL, E.code, E.param, E.msg, NULL, 0);
        return;
    }
    const char *e = p + n;
    const char *end = jskip(p, e, 0);
    if (!end || jws(end, e) != e) {
        S.malformed++;
        send_error(c, NULL, "invalid_json", NULL,
                   "We could not parse the JSON body of your request. (malformed JSON)", NULL, 0);
        return;
    }
    struct jv ev = {jws(p, e), end};
    if (!j_is_obj(ev)) {
        S.malformed++;
        send_error(c, NULL, "invalid_json", NULL, "Expected a JSON object.", NULL, 0);
        return;
    }
    struct jv eid = j_get(ev, "event_id"), type = j_get(ev, "type");
    if (eid.p && (!j_is_str(eid) || j_sn(eid) > 512)) {
        send_error(c, NULL, "invalid_value", "event_id",
                   "Invalid event_id: expected a string of at most 512 characters.", NULL, 0);
        return;
    }
    const char *eids = eid.p ? j_s(eid) : NULL;
    size_t eidn = eid.p ? j_sn(eid) : 0;
    const char *const *keys = event_keys(type);
    int rc;
    if (keys && only_keys(ev, keys, NULL))
        rc = -1;
    else if (!type.p)
        rc = err_missing("type");
    else
        rc = on_event(c, ev, type);
    if (rc)
        send_error(c, NULL, E.code, E.param, E.msg, eids, eidn);
}

/* ---- WebSocket messages ---- */

static int on_msg(void *ud, int op, uint8_t *p, size_t n)
{
    struct conn *c = ud;
    switch (op) {
    case LG_WS_TEXT:
        on_text(c, (const char *)p, n);
        break;
    case LG_WS_BIN:
        S.malformed++;
        send_error(c, NULL, "invalid_json", NULL,
                   "Binary frames are not supported; send JSON text messages.", NULL, 0);
        break;
    case LG_WS_PING:
        lg_ws_put(&c->out, LG_WS_PONG, p, n, 0);
        break;
    case LG_WS_PONG:
        break;
    case LG_WS_CLOSE:
        lg_ws_put(&c->out, LG_WS_CLOSE, p, n >= 2 ? 2 : 0, 0);
        c->close_after = true;
        return 1;
    default:
        break;
    }
    return c->dead || c->close_after ? 1 : 0;
}

/* ---- HTTP upgrade ---- */

static const char *status_text(int code)
{
    switch (code) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    default: return "Error";
    }
}

static void http_reply(struct conn *c, int code, const char *body, size_t n)
{
    char head[256];
    int k = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     code, status_text(code), n);
    lg_buf_add(&c->out, head, (size_t)k);
    lg_buf_add(&c->out, body, n);
    c->close_after = true;
}

/* code_s NULL: "code":null; "-": no code member (realtime.js's plain-request answers) */
static void http_error(struct conn *c, int code, const char *msg, const char *code_s,
                       const char *param)
{
    J.off = J.len = 0;
    JL("{\"error\":{\"message\":");
    jcstr(msg);
    JL(",\"type\":\"invalid_request_error\"");
    if (code_s && strcmp(code_s, "-") == 0) {
        /* none */
    } else if (code_s) {
        JL(",\"code\":");
        jcstr(code_s);
    } else {
        JL(",\"code\":null");
    }
    if (param) {
        JL(",\"param\":");
        jcstr(param);
    }
    JL("}}");
    S.rejected++;
    http_reply(c, code, (const char *)lg_buf_data(&J), lg_buf_size(&J));
    verbose("upgrade refused %d: %s", code, msg);
}

static void j_summary(void);

struct hdr {
    const char *p;
    size_t n;
};

static bool has_token(struct hdr h, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i + tl <= h.n; i++)
        if (strncasecmp(h.p + i, tok, tl) == 0)
            return true;
    return false;
}

/* The decoded value of query parameter name into out (cap bytes), or -1 when absent. */
static int query_param(const char *q, size_t qn, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *e = q + qn;
    for (const char *p = q; p < e;) {
        const char *amp = memchr(p, '&', (size_t)(e - p));
        const char *pe = amp ? amp : e;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ke = eq ? eq : pe;
        if ((size_t)(ke - p) == nl && memcmp(p, name, nl) == 0) {
            size_t k = 0;
            for (const char *v = eq ? eq + 1 : pe; v < pe && k + 1 < cap; v++) {
                if (*v == '%' && pe - v >= 3 && hexd(v[1]) && hexd(v[2])) {
                    char hx[3] = {v[1], v[2], 0};
                    out[k++] = (char)strtol(hx, NULL, 16);
                    v += 2;
                } else {
                    out[k++] = *v == '+' ? ' ' : *v;
                }
            }
            out[k] = '\0';
            return (int)k;
        }
        p = pe + 1;
    }
    return -1;
}

static void session_start(struct conn *c, const char *model);

/* 1: a whole head was handled, 0: more bytes needed. */
static int http_head(struct conn *c)
{
    const char *b = (const char *)lg_buf_data(&c->rx.in);
    size_t n = lg_buf_size(&c->rx.in);
    const char *end = memmem(b, n, "\r\n\r\n", 4);
    if (!end) {
        if (n > HEAD_MAX) {
            S.protocol_errors++;
            http_error(c, 431, "Request header too large.", NULL, NULL);
            return 1;
        }
        return 0;
    }
    size_t hn = (size_t)(end - b) + 4;
    /* request line */
    const char *le = memmem(b, hn, "\r\n", 2);
    const char *sp1 = memchr(b, ' ', (size_t)(le - b));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(le - sp1 - 1)) : NULL;
    if (!sp1 || !sp2) {
        S.protocol_errors++;
        http_error(c, 400, "Bad request line.", NULL, NULL);
        return 1;
    }
    const char *target = sp1 + 1;
    size_t tn = (size_t)(sp2 - target);
    const char *qm = memchr(target, '?', tn);
    size_t pathn = qm ? (size_t)(qm - target) : tn;
    const char *query = qm ? qm + 1 : target + tn;
    size_t qn = (size_t)(target + tn - query);
    bool get = sp1 - b == 3 && memcmp(b, "GET", 3) == 0;
    struct hdr up = {0}, key = {0}, ver = {0}, proto = {0}, authz = {0}, apikey = {0};
    bool beta = false, has_apikey = false;
    for (const char *l = le + 2; l < end;) {
        const char *nl = memmem(l, (size_t)(end + 2 - l), "\r\n", 2);
        const char *colon = memchr(l, ':', (size_t)(nl - l));
        if (colon) {
            size_t kn = (size_t)(colon - l);
            const char *v = colon + 1, *ve = nl;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            struct hdr h = {v, (size_t)(ve - v)};
#define H(s) (kn == sizeof(s) - 1 && strncasecmp(l, s, kn) == 0)
            if (H("upgrade"))
                up = h;
            else if (H("sec-websocket-key"))
                key = h;
            else if (H("sec-websocket-version"))
                ver = h;
            else if (H("sec-websocket-protocol"))
                proto = h;
            else if (H("authorization"))
                authz = h;
            else if (H("api-key")) {
                apikey = h;
                has_apikey = true;
            } else if (H("openai-beta"))
                beta = true;
#undef H
        }
        l = nl + 2;
    }
    lg_buf_consume(&c->rx.in, hn);
    char path[512];
    snprintf(path, sizeof path, "%.*s", (int)(pathn < 400 ? pathn : 400), target);
    bool openai = strcmp(path, "/v1/realtime") == 0, azure = strcmp(path, "/openai/v1/realtime") == 0;
    char msg[600];
    if (!up.p || !has_token(up, "websocket")) {
        /* a plain request: the stats, else what realtime.js answers */
        if (get && strcmp(path, "/_control/stats") == 0) {
            J.off = J.len = 0;
            j_summary();
            http_reply(c, 200, (const char *)lg_buf_data(&J), lg_buf_size(&J));
        } else if (openai || azure) {
            http_error(c, 426, "Upgrade to a WebSocket connection is required.", "-", NULL);
        } else {
            snprintf(msg, sizeof msg, "Invalid URL (%.*s %s)", (int)(sp1 - b < 16 ? sp1 - b : 16),
                     b, path);
            http_error(c, 404, msg, "-", NULL);
        }
        return 1;
    }
    if (!openai && !azure) {
        snprintf(msg, sizeof msg, "Invalid URL (GET %s)", path);
        http_error(c, 404, msg, NULL, NULL);
        return 1;
    }
    if (!get || !key.p || key.n > 64 || ver.n != 2 || memcmp(ver.p, "13", 2) != 0) {
        S.protocol_errors++;
        http_error(c, 400, "Bad WebSocket upgrade request.", NULL, NULL);
        return 1;
    }
    /* key: "Bearer K" (Azure: api-key first) */
    const char *kp = NULL;
    size_t kn = 0;
    if (authz.p && authz.n > 7 && memcmp(authz.p, "Bearer ", 7) == 0) {
        kp = authz.p + 7;
        kn = authz.n - 7;
        for (size_t i = 0; i < kn; i++)
            if (kp[i] == ' ' || kp[i] == '\t')
                kp = NULL;
    }
    if (azure && has_apikey) {
        kp = apikey.p;
        kn = apikey.n;
    }
    if (!kp || !kn || (O.key && (kn != strlen(O.key) || memcmp(kp, O.key, kn) != 0))) {
        http_error(c, 401, kp && kn ? "Incorrect API key provided." : "You didn't provide an API key.",
                   kp && kn ? "invalid_api_key" : NULL, NULL);
        return 1;
    }
    char model[256];
    if (query_param(query, qn, "model", model, sizeof model) <= 0) {
        http_error(c, 400, "Missing required parameter: 'model'.", "missing_required_parameter",
                   "model");
        return 1;
    }
    char dummy[8];
    if (azure && query_param(query, qn, "api-version", dummy, sizeof dummy) >= 0) {
        http_error(c, 400, "Unknown parameter: 'api-version'.", "unknown_parameter", "api-version");
        return 1;
    }
    /* 101 */
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char kb[128];
    memcpy(kb, key.p, key.n);
    memcpy(kb + key.n, guid, sizeof guid - 1);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdn = 0;
    EVP_Digest(kb, key.n + sizeof guid - 1, md, &mdn, EVP_sha1(), NULL);
    char accept[64];
    lg_b64_enc(accept, md, mdn);
    char head[512];
    int k = snprintf(head, sizeof head,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n",
                     accept);
    lg_buf_add(&c->out, head, (size_t)k);
    if (proto.p && proto.n) { /* ws: the first subprotocol offered */
        const char *comma = memchr(proto.p, ',', proto.n);
        size_t pn = comma ? (size_t)(comma - proto.p) : proto.n;
        while (pn && proto.p[pn - 1] == ' ')
            pn--;
        k = snprintf(head, sizeof head, "Sec-WebSocket-Protocol: %.*s\r\n", (int)(pn < 200 ? pn : 200),
                     proto.p);
        lg_buf_add(&c->out, head, (size_t)k);
    }
    lg_buf_add(&c->out, "\r\n", 2);
    c->state = C_WS;
    S.connections++;
    if (beta) {
        S.beta_rejected++;
        S.errors_sent++;
        uint8_t rnd[3];
        RAND_bytes(rnd, sizeof rnd);
        J.off = J.len = 0;
        jf("{\"type\":\"error\",\"event_id\":\"event_beta_%02x%02x%02x\",\"error\":{\"type\":"
           "\"invalid_request_error\",\"code\":\"beta_api_shape_disabled\",\"message\":\"The beta "
           "Realtime API shape is disabled for this model; remove the OpenAI-Beta header and use "
           "the GA interface.\",\"param\":null,\"event_id\":null}}",
           rnd[0], rnd[1], rnd[2]);
        lg_ws_put(&c->out, LG_WS_TEXT, lg_buf_data(&J), lg_buf_size(&J), 0);
        static const char reason[] = "\x0f\xa0" "beta api shape disabled"; /* 4000 */
        lg_ws_put(&c->out, LG_WS_CLOSE, reason, sizeof reason - 1, 0);
        c->close_after = true;
        return 1;
    }
    session_start(c, model);
    return 1;
}

static void session_start(struct conn *c, const char *model)
{
    c->session = true;
    c->seq = ++session_seq;
    uint8_t rnd[16];
    RAND_bytes(rnd, sizeof rnd);
    snprintf(c->id, sizeof c->id, "sess_%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
             rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    snprintf(c->conv_id, sizeof c->conv_id, "conv_%02x%02x%02x%02x%02x%02x%02x%02x", rnd[8],
             rnd[9], rnd[10], rnd[11], rnd[12], rnd[13], rnd[14], rnd[15]);
    c->expires_at = (long long)time(NULL) + O.expire_s;
    J.off = J.len = 0;
    jcstr(model);
    lg_buf_add(&J, "", 1);
    char *mj = strdup((const char *)lg_buf_data(&J));
    cfg_init(c, mj);
    free(mj);
    c->vad_fmt = -1;
    c->carry = -1;
    S.sessions++;
    S.open++;
    ev_begin(c, "session.created");
    JL(",\"session\":");
    j_session(c);
    ev_end(c);
    verbose("session %u: %s model %s", c->seq, c->id, model);
}

/* ---- I/O ---- */

static void poll_cb(uv_poll_t *h, int status, int events);

static void poll_update(struct conn *c)
{
    if (c->dead)
        return;
    int ev = 0;
    if ((!c->choked && !c->close_after) || c->wr_wants_rd)
        ev |= UV_READABLE;
    if (lg_buf_size(&c->out) || c->rd_wants_wr || c->hs_wants_wr)
        ev |= UV_WRITABLE;
    if (ev == c->events)
        return;
    c->events = ev;
    if (ev)
        uv_poll_start(&c->poll, ev, poll_cb);
    else
        uv_poll_stop(&c->poll);
}

static void conn_flush(struct conn *c)
{
    if (c->dead)
        return;
    size_t n = lg_buf_size(&c->out);
    if (n) {
        if (c->n_stamps) {
            uint64_t t = lg_now_ns();
            for (unsigned i = 0; i < c->n_stamps; i++)
                lg_stamps_sent_at(&ST, c->stamps[i], t);
            c->n_stamps = 0;
        }
        if (c->ssl) {
            if (c->state == C_TLS)
                return; /* after the handshake */
            c->wr_wants_rd = false;
            int w = SSL_write(c->ssl, lg_buf_data(&c->out), n > INT32_MAX ? INT32_MAX : (int)n);
            if (w > 0) {
                lg_buf_consume(&c->out, (size_t)w);
            } else {
                int e = SSL_get_error(c->ssl, w);
                if (e == SSL_ERROR_WANT_READ) {
                    c->wr_wants_rd = true;
                } else if (e != SSL_ERROR_WANT_WRITE) {
                    verbose("session %u: SSL_write failed (%d)", c->seq, e);
                    ERR_clear_error();
                    conn_close(c);
                    return;
                }
            }
        } else {
            ssize_t w = send(c->fd, lg_buf_data(&c->out), n, MSG_NOSIGNAL);
            if (w > 0) {
                lg_buf_consume(&c->out, (size_t)w);
            } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                conn_close(c);
                return;
            }
        }
    }
    size_t left = lg_buf_size(&c->out);
    if (!c->choked && left > OUT_CHOKE) {
        c->choked = true;
        S.chokes++;
        verbose("session %u: peer not reading (%zu bytes queued): paused", c->seq, left);
    } else if (c->choked && left < OUT_RESUME) {
        c->choked = false;
        /* the reply goes on from here at its pace, not in one burst of what is overdue */
        uint64_t now = lg_now_ns();
        if (c->r.active && step_due(&c->r) < now)
            c->r.t0 = now - c->r.step * c->r.interval;
        sched(c);
    }
    if (c->close_after && !left) {
        if (c->ssl)
            SSL_shutdown(c->ssl); /* close_notify, best effort */
        conn_close(c);
        return;
    }
    poll_update(c);
}

/* Reads what there is; returns -1 at EOF or on an error. */
static int conn_read(struct conn *c)
{
    c->rd_wants_wr = false;
    for (;;) {
        uint8_t *room = lg_buf_room(&c->rx.in, READ_CHUNK);
        if (c->ssl) {
            int r = SSL_read(c->ssl, room, READ_CHUNK);
            if (r > 0) {
                lg_buf_commit(&c->rx.in, (size_t)r);
                /* more already in OpenSSL's hands: read on; in the kernel: poll fires again */
                if (r == READ_CHUNK || SSL_has_pending(c->ssl))
                    continue;
                return 0;
            }
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ)
                return 0;
            if (e == SSL_ERROR_WANT_WRITE) {
                c->rd_wants_wr = true;
                return 0;
            }
            if (e != SSL_ERROR_ZERO_RETURN && e != SSL_ERROR_SYSCALL)
                S.tls_errors++;
            ERR_clear_error(); /* the queue stays empty while all goes well */
            return -1;
        }
        ssize_t r = read(c->fd, room, READ_CHUNK);
        if (r > 0) {
            lg_buf_commit(&c->rx.in, (size_t)r);
            if (r == READ_CHUNK)
                continue;
            return 0;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (r < 0 && errno == EINTR)
            continue;
        return -1;
    }
}

static void conn_input(struct conn *c)
{
    if (c->state == C_HTTP) {
        if (!http_head(c))
            return;
        if (c->close_after)
            return;
    }
    if (c->state != C_WS)
        return;
    int rc = lg_ws_rx_run(&c->rx, on_msg, c);
    if (rc < 0) {
        S.protocol_errors++;
        verbose("session %u: WebSocket protocol error", c->seq);
        static const char code[] = "\x03\xea"; /* 1002 */
        lg_ws_put(&c->out, LG_WS_CLOSE, code, 2, 0);
        c->close_after = true;
    }
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    struct conn *c = h->data;
    if (c->dead)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->state == C_TLS) {
        c->hs_wants_wr = false;
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_WRITE) {
                c->hs_wants_wr = true;
            } else if (e != SSL_ERROR_WANT_READ) {
                S.tls_errors++;
                verbose("TLS handshake failed (%d)", e);
                ERR_clear_error();
                conn_close(c);
                return;
            }
            poll_update(c);
            return;
        }
        c->state = C_HTTP;
        events |= UV_READABLE;
    }
    bool eof = false;
    if ((events & UV_READABLE) || (c->rd_wants_wr && (events & UV_WRITABLE))) {
        if (!c->choked && !c->close_after) {
            eof = conn_read(c) < 0;
            c->t_read = lg_now_ns();
            conn_input(c);
        } else if (c->wr_wants_rd) {
            /* SSL_write waits for a read: fall through to the flush */
        }
    }
    if (c->dead)
        return;
    conn_flush(c);
    if (eof && !c->dead)
        conn_close(c);
}

/* ---- timers ---- */

static void timer_cb(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->dead)
        return;
    uint64_t now = lg_now_ns();
    lg_lag(&ST, now > c->t_timer ? now - c->t_timer : 0);
    if (c->r.active && !c->choked)
        resp_run(c, now, step_due(&c->r) <= c->t_timer);
    for (unsigned i = 0; i < c->n_tq;) {
        if (c->tq[i].due <= now) {
            struct transcript_due td = c->tq[i];
            memmove(&c->tq[i], &c->tq[i + 1], (c->n_tq - i - 1) * sizeof c->tq[0]);
            c->n_tq--;
            transcript_send(c, &td);
        } else {
            i++;
        }
    }
    conn_flush(c);
    if (!c->dead)
        sched(c);
}

static void sched(struct conn *c)
{
    if (c->dead)
        return;
    uint64_t due = UINT64_MAX;
    if (c->r.active && !c->choked && c->r.step < c->r.nsteps)
        due = step_due(&c->r);
    for (unsigned i = 0; i < c->n_tq; i++)
        if (c->tq[i].due < due)
            due = c->tq[i].due;
    if (due == UINT64_MAX) {
        uv_timer_stop(&c->timer);
        return;
    }
    /* libuv fires once its (millisecond) loop time reaches the timeout: round up */
    uint64_t due_ms = (due + 999999) / 1000000, now_ms = uv_now(L);
    c->t_timer = due;
    uv_timer_start(&c->timer, timer_cb, due_ms > now_ms ? due_ms - now_ms : 0, 0);
}

/* ---- connections ---- */

static void conn_free(struct conn *c)
{
    if (c->ssl)
        SSL_free(c->ssl);
    close(c->fd);
    lg_buf_free(&c->out);
    lg_ws_rx_free(&c->rx);
    for (size_t i = 0; i < c->n_items; i++) {
        free(c->items[i].pub);
        free(c->items[i].call_id);
    }
    free(c->items);
    if (c->session)
        for (int i = 0; i < R_N; i++)
            free(c->cfg.raw[i]);
    resp_free(&c->r);
    free(c);
}

static void handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles == 0)
        conn_free(c);
}

static void conn_close(struct conn *c)
{
    if (c->dead)
        return;
    c->dead = true;
    if (c->session) {
        S.open--;
        S.closed++;
        verbose("session %u: closed", c->seq);
    }
    uv_close((uv_handle_t *)&c->poll, handle_closed);
    uv_close((uv_handle_t *)&c->timer, handle_closed);
}

static void accept_cb(uv_poll_t *h, int status, int events)
{
    (void)events;
    if (status < 0)
        return;
    int lfd = *(int *)h->data;
    for (int i = 0; i < 256; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                fprintf(stderr, "va-loadgen realtime: accept: %s\n", strerror(errno));
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c)
            abort();
        c->fd = fd;
        c->rx.max = MSG_MAX;
        c->carry = -1;
        c->vad_fmt = -1;
        if (CTX) {
            c->ssl = SSL_new(CTX);
            SSL_set_fd(c->ssl, fd);
            SSL_set_accept_state(c->ssl);
            c->state = C_TLS;
        } else {
            c->state = C_HTTP;
        }
        uv_poll_init(L, &c->poll, fd);
        uv_timer_init(L, &c->timer);
        c->poll.data = c->timer.data = c;
        c->handles = 2;
        c->events = UV_READABLE;
        uv_poll_start(&c->poll, UV_READABLE, poll_cb);
    }
}

/* ---- summary and exit ---- */

static void j_summary(void)
{
    jf("{\"sessions\":%llu,\"open\":%llu,\"closedSessions\":%llu,\"connections\":%llu,"
       "\"appends\":%llu,\"inputBytes\":%llu,\"appendsBeforeUpdate\":%llu,"
       "\"speechStarted\":%llu,\"speechStopped\":%llu,\"commits\":%llu,\"responses\":%llu,"
       "\"responsesCompleted\":%llu,\"responsesCancelled\":%llu,\"vadResponsesSkipped\":%llu,"
       "\"truncates\":%llu,\"deletes\":%llu,\"cancels\":%llu,\"itemsCreated\":%llu,"
       "\"outputAudioBytes\":%llu,\"eventsSent\":%llu,\"errorsSent\":%llu,"
       "\"protocolErrors\":%llu,\"malformed\":%llu,\"tlsErrors\":%llu,\"upgradesRefused\":%llu,"
       "\"betaRejected\":%llu,\"chokes\":%llu}",
       (unsigned long long)S.sessions, (unsigned long long)S.open, (unsigned long long)S.closed,
       (unsigned long long)S.connections, (unsigned long long)S.appends,
       (unsigned long long)S.input_bytes, (unsigned long long)S.appends_before_update,
       (unsigned long long)S.speech_started, (unsigned long long)S.speech_stopped,
       (unsigned long long)S.commits, (unsigned long long)S.responses,
       (unsigned long long)S.completed, (unsigned long long)S.cancelled,
       (unsigned long long)S.vad_skipped, (unsigned long long)S.truncates,
       (unsigned long long)S.deletes, (unsigned long long)S.cancels,
       (unsigned long long)S.items_created, (unsigned long long)S.output_audio_bytes,
       (unsigned long long)S.events_sent, (unsigned long long)S.errors_sent,
       (unsigned long long)S.protocol_errors, (unsigned long long)S.malformed,
       (unsigned long long)S.tls_errors, (unsigned long long)S.rejected,
       (unsigned long long)S.beta_rejected, (unsigned long long)S.chokes);
}

static void on_signal(uv_signal_t *h, int sig)
{
    (void)h;
    (void)sig;
    lg_stamps_save(&ST);
    J.off = J.len = 0;
    j_summary();
    JL("\n");
    fwrite(lg_buf_data(&J), 1, lg_buf_size(&J), stdout);
    fflush(stdout);
    lg_stamps_free(&ST);
    _exit(0);
}

/* ---- command line ---- */

static void usage(const char *msg)
{
    fprintf(stderr, "va-loadgen realtime: %s\nsee the header of bench/loadgen/realtime.c\n", msg);
    exit(2);
}

static double num_arg(const char *opt, const char *v, bool integer, double lo, double hi)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (!*v || *end || errno || !isfinite(d) || d < lo || d > hi || (integer && d != floor(d))) {
        char m[200];
        snprintf(m, sizeof m, "%s: bad number %s", opt, v);
        usage(m);
    }
    return d;
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            char m[200];
            snprintf(m, sizeof m, "unexpected argument %s", a);
            usage(m);
        }
        char name[64];
        const char *val = NULL;
        const char *eq = strchr(a, '=');
        snprintf(name, sizeof name, "%.*s", (int)(eq ? eq - a : (long)strlen(a)), a);
        if (eq)
            val = eq + 1;
        if (!strcmp(name, "--verbose")) {
            O.verbose = true;
            continue;
        }
        if (!strcmp(name, "--tls")) {
            if (eq || i + 2 >= argc)
                usage("--tls needs two values");
            O.cert = argv[++i];
            O.certkey = argv[++i];
            continue;
        }
        if (!val) {
            if (i + 1 >= argc) {
                char m[200];
                snprintf(m, sizeof m, "%s needs a value", name);
                usage(m);
            }
            val = argv[++i];
        }
        if (!strcmp(name, "--port"))
            O.port = (int)num_arg(name, val, true, 0, 65535);
        else if (!strcmp(name, "--host"))
            O.host = val;
        else if (!strcmp(name, "--key"))
            O.key = val;
        else if (!strcmp(name, "--reply-ms"))
            O.reply_ms = (int)num_arg(name, val, true, 0, 3600000);
        else if (!strcmp(name, "--delta-ms"))
            O.delta_ms = (int)num_arg(name, val, true, 1, 600000);
        else if (!strcmp(name, "--burst-factor"))
            O.burst = num_arg(name, val, false, 0, 1e6);
        else if (!strcmp(name, "--reply-hz"))
            O.reply_hz = num_arg(name, val, false, 0, 1e6);
        else if (!strcmp(name, "--reply-amp"))
            O.reply_amp = num_arg(name, val, false, 0, 32767);
        else if (!strcmp(name, "--reply-text"))
            O.reply_text = val;
        else if (!strcmp(name, "--response-latency-ms"))
            O.latency_ms = (int)num_arg(name, val, true, 0, 600000);
        else if (!strcmp(name, "--vad-threshold-rms"))
            O.vad_rms = num_arg(name, val, false, 0, 1e6);
        else if (!strcmp(name, "--vad-speech-ms"))
            O.vad_speech_ms = (int)num_arg(name, val, true, 0, 600000);
        else if (!strcmp(name, "--transcript"))
            O.transcript = val;
        else if (!strcmp(name, "--transcript-delay-ms"))
            O.transcript_delay_ms = (int)num_arg(name, val, true, 0, 600000);
        else if (!strcmp(name, "--expire-s"))
            O.expire_s = (long)num_arg(name, val, true, 0, 1e9);
        else if (!strcmp(name, "--stamp"))
            O.stamp = val;
        else if (!strcmp(name, "--proc"))
            O.proc = (unsigned)num_arg(name, val, true, 0, 7);
        else if (!strcmp(name, "--coalesce-us"))
            O.coalesce_us = (int)num_arg(name, val, true, 0, 100000);
        else {
            char m[200];
            snprintf(m, sizeof m, "unknown option %s", name);
            usage(m);
        }
    }
    if (!O.key)
        usage("--key is required");
}

static void reply_text_init(void)
{
    struct lg_buf t = {0};
    size_t n = strlen(O.reply_text), cap = 1;
    for (size_t i = 0; i < n; i++)
        cap += O.reply_text[i] == ' ';
    WEND = malloc(cap * sizeof *WEND);
    const char *w = O.reply_text;
    for (;;) {
        const char *sp = strchr(w, ' ');
        size_t wl = sp ? (size_t)(sp - w) : strlen(w);
        esc_into(&t, w, wl);
        WEND[NWORDS++] = lg_buf_size(&t);
        if (!sp)
            break;
        lg_buf_add(&t, " ", 1);
        w = sp + 1;
    }
    lg_buf_add(&t, "", 1);
    RTEXT = (char *)t.p;
}

int lg_realtime_main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < 256; i++) {
        int32_t u = audio_mulaw_decode1((uint8_t)i), a = alaw_dec((uint8_t)i);
        SQ[0][i] = (uint32_t)(u * u);
        SQ[1][i] = (uint32_t)(a * a);
    }
    reply_text_init();
    char prefix[4096];
    if (O.stamp)
        snprintf(prefix, sizeof prefix, "%s.%u", O.stamp, O.proc);
    lg_stamps_init(&ST, O.stamp ? prefix : NULL, O.proc);
    if (O.cert) {
        CTX = SSL_CTX_new(TLS_server_method());
        if (!CTX || SSL_CTX_use_certificate_chain_file(CTX, O.cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(CTX, O.certkey, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(CTX) != 1) {
            fprintf(stderr, "va-loadgen realtime: cannot load %s / %s\n", O.cert, O.certkey);
            ERR_print_errors_fp(stderr);
            return 1;
        }
        SSL_CTX_set_mode(CTX, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        SSL_CTX_set_read_ahead(CTX, 1);
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, O.host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)O.port);
        sl = sizeof *s4;
    } else if (inet_pton(AF_INET6, O.host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)O.port);
        sl = sizeof *s6;
    } else {
        usage("--host: not an IP address");
        return 2;
    }
    static int lfd;
    lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&ss, sl) != 0 || listen(lfd, 4096) != 0) {
        fprintf(stderr, "va-loadgen realtime: listen on %s:%d: %s\n", O.host, O.port,
                strerror(errno));
        return 1;
    }
    sl = sizeof ss;
    getsockname(lfd, (struct sockaddr *)&ss, &sl);
    int port = ntohs(ss.ss_family == AF_INET ? s4->sin_port : s6->sin6_port);
    L = uv_default_loop();
    static uv_poll_t lp;
    uv_poll_init(L, &lp, lfd);
    lp.data = &lfd;
    uv_poll_start(&lp, UV_READABLE, accept_cb);
    static uv_signal_t sig_term, sig_int;
    uv_signal_init(L, &sig_term);
    uv_signal_init(L, &sig_int);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    printf("{\"listening\":%d}\n", port);
    fflush(stdout);
    static struct lg_coalesce coalesce;
    if (O.coalesce_us)
        lg_coalesce_start(&coalesce, L, (unsigned)O.coalesce_us);
    uv_run(L, UV_RUN_DEFAULT);
    return 0;
}
