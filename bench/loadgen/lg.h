/* bench/loadgen: the C load generator of make bench (bench/bench.sh).
 *
 * One binary, four roles, each its own process so that each gets a core of its own and its
 * CPU is counted apart:
 *   va-loadgen twilio ...    N callers: Twilio Media Streams over plain WebSocket to the
 *                            daemon, real-time paced at random phases, playback with mark
 *                            echoes, late-frame accounting (bench/loadgen/twilio.c)
 *   va-loadgen realtime ...  the OpenAI Realtime peer over TLS: session, server VAD,
 *                            replies in bursts, barge-in (bench/loadgen/realtime.c)
 *   va-loadgen relay ...     the floor: the least any bridge does per frame (a read and a
 *   va-loadgen streams ...   write over plain TCP), measured the same way (floor.c)
 * Both stamp frames (below) so that bench.sh can time each one from sender to receiver.
 * This file: what both roles share. */
#ifndef VA_BENCH_LG_H
#define VA_BENCH_LG_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* CLOCK_MONOTONIC in ns: the clock of every stamp. */
uint64_t lg_now_ns(void);

/* A growable byte buffer; consumed bytes are dropped from the front lazily. */
struct lg_buf {
    uint8_t *p;
    size_t off; /* first unconsumed byte */
    size_t len; /* end of data */
    size_t cap;
};
void lg_buf_add(struct lg_buf *b, const void *data, size_t n);
/* Room for n more bytes after the data; lg_buf_commit(b, k) then keeps k of them. */
uint8_t *lg_buf_room(struct lg_buf *b, size_t n);
void lg_buf_commit(struct lg_buf *b, size_t n);
static inline uint8_t *lg_buf_data(const struct lg_buf *b) { return b->p + b->off; }
static inline size_t lg_buf_size(const struct lg_buf *b) { return b->len - b->off; }
void lg_buf_consume(struct lg_buf *b, size_t n);
void lg_buf_free(struct lg_buf *b);

/* WebSocket (RFC 6455). */
enum { LG_WS_CONT = 0, LG_WS_TEXT = 1, LG_WS_BIN = 2, LG_WS_CLOSE = 8, LG_WS_PING = 9,
       LG_WS_PONG = 10 };
/* Appends one whole frame to out; masked (a client's frames) with a random key. */
void lg_ws_put(struct lg_buf *out, int opcode, const void *payload, size_t n, int masked);

/* Incoming frames to messages: fragments joined, masks removed. */
struct lg_ws_rx {
    struct lg_buf in;  /* bytes read, not yet parsed */
    struct lg_buf msg; /* fragments of the message being joined */
    int msg_op;        /* its opcode, 0: none */
    size_t max;        /* largest message accepted */
};
/* Calls on_msg for every whole message (text/binary) and control frame in rx->in
 * (payload writable, valid during the call). Returns 0, or -1 on a protocol error or
 * an oversized message, or what on_msg returned when it was not 0 (parsing stops). */
int lg_ws_rx_run(struct lg_ws_rx *rx, int (*on_msg)(void *ud, int op, uint8_t *p, size_t n),
                 void *ud);
void lg_ws_rx_free(struct lg_ws_rx *rx);

/* base64 (padded), the daemon's tw_b64_* (src/twilio/media.c). lg_b64_enc writes a NUL
 * after its output: out needs n / 3 * 4 + 5 bytes. lg_b64_dec is strict and returns the
 * decoded length (at most n / 4 * 3), or -1. */
size_t lg_b64_enc(char *out, const uint8_t *in, size_t n);
long lg_b64_dec(uint8_t *out, const char *in, size_t n);


/* Fixed-shape JSON: the string value of "key" (the first "key": at any depth), no escape
 * decoding (our peers' ids, names and base64 have none). NULL when absent. */
const char *lg_json_str(const char *js, size_t n, const char *key, size_t *vlen);

/* Frame stamps: the added latency of single frames, across processes.
 * In pcmu mode the daemon passes audio through byte for byte, so a frame can carry its own
 * name: its first 8 bytes are replaced by a tag, found again by the receiver at a 160-byte
 * boundary. The tag is 8 of the 32 quietest mu-law codes (0x70-0x7f, 0xf0-0xff: at most
 * 120 of 32767, below any VAD threshold): the marker 0x70, six codes of 5 bits each (a
 * 30-bit id, low bits first) and a check code, (sum of the six + 7) mod 32. Digital
 * silence (0xff) and the reply tone never read as a tag. An id is (proc << 27) + n: proc
 * names the sending process, n counts its stamped frames from 0. Times are
 * CLOCK_MONOTONIC, one clock for every process. Each process writes, at exit,
 *   PREFIX.sent  float64 little-endian: the send time (ns) of its frame n at index n
 *   PREFIX.recv  float64 pairs (id, arrival time in ns) for the frames it received
 *   PREFIX.lag   JSON {"p50","p99","max"}, ms: how late its own timers ran, the part of a
 *                stamp's delay that is the load generator's
 * and bench/bench.sh pairs them up. */
#define LG_TAG_BYTES 8
void lg_tag_write(uint8_t *p, uint32_t id);
long lg_tag_read(const uint8_t *p, size_t n); /* the id, or -1 */

struct lg_stamps {
    char *prefix; /* NULL: records nothing */
    uint32_t base;
    double *sent;
    size_t n_sent, cap_sent;
    double *recv;
    size_t n_recv, cap_recv;
    uint64_t lag_hist[1024]; /* timer lateness in 0.1 ms steps, the last one open-ended */
    uint64_t lag_n, lag_max_ns;
};
void lg_stamps_init(struct lg_stamps *s, const char *prefix, unsigned proc);
uint32_t lg_stamps_next(struct lg_stamps *s); /* a new id; its time follows */
void lg_stamps_sent_at(struct lg_stamps *s, uint32_t id, uint64_t t_ns);
/* Every tag at 160-byte boundaries of audio: received at t_ns. */
void lg_stamps_scan(struct lg_stamps *s, const uint8_t *audio, size_t n, uint64_t t_ns);
/* How late this process's loop ran a timer (the part of a stamp's delay that is ours). */
void lg_lag(struct lg_stamps *s, uint64_t late_ns);
/* PREFIX.sent, PREFIX.recv, PREFIX.lag ({"p50","p99","max"} in ms). */
void lg_stamps_save(struct lg_stamps *s);
void lg_stamps_free(struct lg_stamps *s);

/* Under load, at most one loop turn per gap: before the loop polls, when the previous
 * turn began less than gap ago, sleep out the rest, so that one turn handles all that
 * arrived meanwhile. Each wake-up costs a context switch (about 10 us on the bench VM) and
 * a busy generator woke every 50-300 us for one or two messages. The price: a read or a
 * timer up to gap later, only under load (it shows in the timers' lateness). */
struct lg_coalesce {
    uv_prepare_t prepare;
    uint64_t gap_ns, last_ns;
};
void lg_coalesce_start(struct lg_coalesce *c, uv_loop_t *loop, unsigned gap_us);

int lg_twilio_main(int argc, char **argv);
int lg_realtime_main(int argc, char **argv);
int lg_relay_main(int argc, char **argv);
int lg_streams_main(int argc, char **argv);

#endif
