/* tests/fuzz/fuzz_ws.c: the WebSocket frame decoder (src/http/ws.c over wslay), fed as
 * a client's socket feeds it.
 *
 * The seam is tests/unit/test_http_ws.c's: va_ws_open() takes over one end of a
 * connected socket pair on a loop of its own, and the other end, driven here, sends
 * the fuzz input. A socketpair(AF_UNIX) stands in for the unit tests' loopback TCP
 * pair: the same byte stream to libuv, but no port per run (thousands of TCP pairs a
 * second would exhaust the ephemeral ports in TIME_WAIT).
 *
 * Input: one control byte, then the client's bytes (frames as a client sends them,
 * masked). The control byte picks
 *   bits 0-3  how the bytes arrive: 0 = all of them behind the upgrade request
 *             (va_ws_open()'s pre), else written in pieces of WS_FZ_SPLIT[n] bytes
 *             (at most 256 pieces) with one loop turn each, so frames, headers and
 *             Close reasons split across reads;
 *   bit 4     max_message 125 instead of 64 KiB (the 1009 paths);
 *   bit 5     max_queue 512 instead of 256 KiB (the 1008 path of a full send queue);
 *   bit 6     the owner echoes each message, as the MCP server answers on the same
 *             connection; a text message "close" makes it close with 1000, "close!"
 *             with an unsendable code and an over-long reason;
 *   bit 7     a slow client: a 4 KiB SO_SNDBUF on the server's socket and no reading
 *             until every byte is sent, so pongs and echoes back up into the send
 *             queue and reading stops (the backpressure paths).
 * Then the client half-closes (EOF), reads what is left and closes.
 *
 * Oracles besides the sanitizers: on_closed runs exactly once with a valid code, no
 * message is delivered after the owner closed, text messages are UTF-8 and within
 * max_message, the loop closes with nothing left open (uv_loop_close() == 0), and what
 * the server wrote is the 101 answer and then well-formed server frames: RSV bits 0,
 * unmasked, minimal lengths, known opcodes, control frames final and at most 125
 * bytes, text frames UTF-8, a Close with no payload or a sendable code and a UTF-8
 * reason, and nothing after a Close. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "http/ws.h"

#include "fuzz.h"

#define WS_FZ_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define WS_FZ_MAX_PIECES 256
#define WS_FZ_SETTLE_TURNS 1000
#define WS_FZ_RX_MAX (8 * 1024 * 1024)

static const size_t WS_FZ_SPLIT[16] = {0,   1,   2,   3,   5,    7,    11,    16,
                                       125, 126, 127, 128, 1000, 4096, 16384, 65536};

struct ws_fz {
    uv_loop_t loop;
    struct va_log log;
    struct va_ws *ws; /* NULL once on_closed ran */
    struct va_ws_cfg cfg;
    int cfd; /* the client's end */
    bool echo;
    bool slow;         /* the client reads nothing while it sends */
    bool owner_closed; /* va_ws_close() was called */
    bool ceof;         /* the client read EOF or a reset */
    int nclosed;
    struct va_buf rx; /* what the server wrote */
};

static bool ws_fz_code_sendable(unsigned code)
{
    if (code >= 1000 && code <= 1011)
        return code != 1004 && code != 1005 && code != 1006;
    return code >= 3000 && code <= 4999;
}

static void ws_fz_on_message(void *ud, enum va_ws_opcode op, const char *data, size_t len)
{
    struct ws_fz *f = ud;
    FUZZ_CHECK(f->ws && !f->owner_closed && f->nclosed == 0);
    FUZZ_CHECK(op == VA_WS_TEXT || op == VA_WS_BINARY);
    FUZZ_CHECK(len <= f->cfg.max_message);
    FUZZ_CHECK(data != NULL);
    if (op == VA_WS_TEXT)
        FUZZ_CHECK(va_ws_utf8_valid(data, len));
    if (!f->echo)
        return;
    if (op == VA_WS_TEXT && len == 5 && memcmp(data, "close", 5) == 0) {
        f->owner_closed = true;
        va_ws_close(f->ws, VA_WS_NORMAL, "bye");
        return;
    }
    if (op == VA_WS_TEXT && len == 6 && memcmp(data, "close!", 6) == 0) {
        /* 1005 cannot be sent (1011 goes instead); the reason is cut at 123 bytes, inside
         * no character */
        static const char reason[] = "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
                                     "\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                                     "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
                                     "\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                                     "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
                                     "\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                                     "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9";
        f->owner_closed = true;
        va_ws_close(f->ws, 1005, reason);
        return;
    }
    int err = va_ws_send(f->ws, op, data, len);
    FUZZ_CHECK(err == 0 || err == VA_ECLOSED || err == VA_EFULL);
    if (err == VA_EFULL)
        f->owner_closed = true; /* the connection closes with 1008 */
}

static void ws_fz_on_closed(void *ud, uint16_t code, const char *reason)
{
    struct ws_fz *f = ud;
    f->nclosed++;
    f->ws = NULL;
    FUZZ_CHECK(ws_fz_code_sendable(code) || code == 1005 || code == VA_WS_ABNORMAL);
    FUZZ_CHECK(reason != NULL && strlen(reason) <= 123);
}

static const struct va_ws_cb ws_fz_cb = {
    .on_message = ws_fz_on_message,
    .on_closed = ws_fz_on_closed,
};

/* Reads what the server wrote, without blocking. */
static void ws_fz_drain(struct ws_fz *f)
{
    char tmp[16384];
    while (f->cfd >= 0 && !f->ceof) {
        ssize_t n = read(f->cfd, tmp, sizeof(tmp));
        if (n > 0) {
            /* past the bound only the frames kept are checked */
            (void)va_buf_append(&f->rx, tmp, (size_t)n);
        } else if (n == 0 || errno != EAGAIN) {
            f->ceof = true;
        } else {
            break;
        }
    }
}

static void ws_fz_pump(struct ws_fz *f, bool sending)
{
    uv_run(&f->loop, UV_RUN_NOWAIT);
    if (!sending || !f->slow)
        ws_fz_drain(f);
}

/* The 101 answer, then server frames; a frame cut at the end (TCP dropped, or the
 * output bound) is not judged. */
static void ws_fz_check_output(const struct va_buf *rx)
{
    static const char status[] = "HTTP/1.1 101 Switching Protocols\r\n";
    FUZZ_CHECK(rx->len >= sizeof(status) - 1 && memcmp(rx->data, status, sizeof(status) - 1) == 0);
    const char *hend = memmem(rx->data, rx->len, "\r\n\r\n", 4);
    FUZZ_CHECK(hend != NULL);
    const uint8_t *p = (const uint8_t *)hend + 4;
    const uint8_t *end = (const uint8_t *)rx->data + rx->len;
    bool closed = false;
    while (end - p >= 2) {
        FUZZ_CHECK(!closed); /* nothing follows a Close */
        unsigned op = p[0] & 0x0f;
        FUZZ_CHECK((p[0] & 0x80) != 0); /* FIN: we never fragment */
        FUZZ_CHECK((p[0] & 0x70) == 0); /* RSV1-3 */
        FUZZ_CHECK((p[1] & 0x80) == 0); /* a server never masks */
        FUZZ_CHECK(op == 1 || op == 2 || op == 8 || op == 9 || op == 10);
        size_t hl = 2;
        uint64_t len = p[1] & 0x7f;
        if (len == 126) {
            if (end - p < 4)
                break;
            len = (uint64_t)p[2] << 8 | p[3];
            hl = 4;
            FUZZ_CHECK(len >= 126);
        } else if (len == 127) {
            if (end - p < 10)
                break;
            len = 0;
            for (int i = 2; i < 10; i++)
                len = len << 8 | p[i];
            hl = 10;
            FUZZ_CHECK(len > 65535 && len >> 63 == 0);
        }
        if (op >= 8)
            FUZZ_CHECK(len <= 125);
        if ((uint64_t)(end - p) - hl < len)
            break;
        const uint8_t *pl = p + hl;
        if (op == 8) {
            FUZZ_CHECK(len != 1);
            if (len >= 2) {
                FUZZ_CHECK(ws_fz_code_sendable((unsigned)pl[0] << 8 | pl[1]));
                FUZZ_CHECK(va_ws_utf8_valid((const char *)pl + 2, len - 2));
            }
            closed = true;
        }
        if (op == 1)
            FUZZ_CHECK(va_ws_utf8_valid((const char *)pl, len));
        p = pl + len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned ctl = data[0];
    const uint8_t *in = data + 1;
    size_t len = size - 1;

    /* libuv writes with write(2): a peer gone must be EPIPE, not a signal */
    signal(SIGPIPE, SIG_IGN);

    struct ws_fz f;
    memset(&f, 0, sizeof(f));
    f.echo = ctl & 0x40;
    f.slow = ctl & 0x80;
    f.cfg = (struct va_ws_cfg){
        .max_message = ctl & 0x10 ? 125 : 64 * 1024,
        .max_queue = ctl & 0x20 ? 512 : 256 * 1024,
        .close_timeout_ms = 50,
        .sndbuf = f.slow ? 4096 : 0,
    };
    va_buf_init(&f.rx, WS_FZ_RX_MAX);
    FUZZ_CHECK(uv_loop_init(&f.loop) == 0);
    int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    FUZZ_CHECK(null_fd >= 0);
    /* debug level: every log line formats peer-chosen close reasons and codes */
    va_log_init(&f.log, null_fd, VA_LOG_DEBUG);
    int sv[2];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    f.cfd = sv[1];
    FUZZ_CHECK(fcntl(f.cfd, F_SETFL, fcntl(f.cfd, F_GETFL) | O_NONBLOCK) == 0);

    size_t piece = WS_FZ_SPLIT[ctl & 0x0f];
    const char *pre = piece ? NULL : (const char *)in;
    FUZZ_CHECK(va_ws_open(&f.ws, &f.loop, &f.log, sv[0], WS_FZ_ACCEPT, NULL, pre, piece ? 0 : len,
                          "fuzz", &f.cfg, &ws_fz_cb, &f) == 0);

    if (piece) {
        if (piece < (len + WS_FZ_MAX_PIECES - 1) / WS_FZ_MAX_PIECES)
            piece = (len + WS_FZ_MAX_PIECES - 1) / WS_FZ_MAX_PIECES;
        size_t off = 0;
        int stalls = 0;
        while (off < len && f.nclosed == 0 && !f.ceof && stalls < 64) {
            size_t n = len - off < piece ? len - off : piece;
            ssize_t w = write(f.cfd, in + off, n);
            if (w > 0) {
                off += (size_t)w;
                stalls = 0;
            } else if (w < 0 && errno == EAGAIN) {
                stalls++; /* the server reads no more for now: let the loop turn */
            } else {
                break; /* EPIPE: the server dropped TCP */
            }
            ws_fz_pump(&f, true);
        }
    }

    /* EOF from the client: whatever state it is in, the connection must end */
    shutdown(f.cfd, SHUT_WR);
    for (int i = 0; i < WS_FZ_SETTLE_TURNS && (f.nclosed == 0 || !f.ceof); i++)
        ws_fz_pump(&f, false);
    if (f.nclosed == 0) {
        /* waiting on its close timer, say: drop the client and let the loop finish */
        close(f.cfd);
        f.cfd = -1;
        uv_run(&f.loop, UV_RUN_DEFAULT);
    }
    FUZZ_CHECK(f.nclosed == 1);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    FUZZ_CHECK(uv_loop_close(&f.loop) == 0);
    ws_fz_drain(&f);
    ws_fz_check_output(&f.rx);

    if (f.cfd >= 0)
        close(f.cfd);
    va_log_deinit(&f.log);
    close(null_fd);
    va_buf_deinit(&f.rx);
    return 0;
}
