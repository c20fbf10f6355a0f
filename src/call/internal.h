/* src/call/internal.h: the call's state, shared by call.c (lifecycle, inbound clock,
 * recording) and bridge.c (the Realtime session, playout, barge-in, transcripts). */
#ifndef VA_CALL_INTERNAL_H
#define VA_CALL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audio/frame.h"
#include "audio/resample.h"
#include "call/call.h"
#include "core/buf.h"
#include "mcp/registry.h"
#include "realtime/events.h"

#define CALL_SID_MAX 64
#define CALL_NUM_MAX 32
#define CALL_ITEMS 8        /* assistant audio items remembered for marks and barge-in */
#define CALL_SEGS 16        /* item boundaries inside the outbound queue */
#define CALL_MARK_EVERY 320 /* bytes of mu-law: a mark at least every 40 ms */
#define CALL_TURNS_MAX 256
#define CALL_TURN_TEXT_MAX (32 * 1024) /* transcript bytes kept per call */
#define CALL_STALL_MS 750              /* no media while speaking: append silence */
#define CALL_STALL_FILL_MS 1000

enum call_rt_state {
    CALL_RT_NONE,        /* no model (echo line check) */
    CALL_RT_CONNECTING,  /* socket opening */
    CALL_RT_CONFIGURING, /* session.update sent, waiting for session.updated */
    CALL_RT_READY,
    CALL_RT_FAILED,
};

/* One assistant audio item, for marks and truncation. Times in ms of its audio. */
struct call_item {
    char id[RT_ID_MAX + 1];
    char response_id[RT_ID_MAX + 1];
    uint64_t rx_ms_x8; /* received, in mu-law bytes at 8 kHz (ms * 8) */
    uint64_t sent;     /* bytes sent to Twilio */
    uint64_t heard_ms; /* largest echoed mark */
    uint64_t first_ms; /* when its first audio arrived (turn order) */
    bool done;         /* output_audio.done seen */
    bool interrupted;  /* cut by a barge-in */
    uint64_t cut_ms;   /* what the caller heard when cut */
    bool used;
};

struct call_seg { /* a run of queued bytes belonging to one item */
    int item;
    size_t bytes;
};

struct call_mark { /* a mark in flight */
    uint32_t gen;
    int item;
    uint64_t item_ms;
    uint64_t total; /* bytes sent in this generation up to the mark */
};

#define CALL_TOOLS 8 /* function calls of the model in flight per call */

/* One function call of the model, from arguments.done to its function_call_output. */
struct call_tool {
    struct call *call;
    struct mcp_call_done done; /* the registry's completion; lives until on_done */
    const struct mcp_tool *tool;
    char call_id[RT_ID_MAX + 1];
    char response_id[RT_ID_MAX + 1];
    char *args;
    size_t args_len;
    uint64_t started_ms;
    bool deferred; /* side effects: waits for its response to complete */
    bool running;
    bool answered; /* function_call_output sent (result, failure or timeout) */
};

#define CALL_TOOLRECS 16             /* tool calls kept for the call's events */
#define CALL_TOOLREC_RESULT_MAX 2048 /* a longer result is kept as null */

/* One finished tool call, for the events. */
struct call_toolrec {
    char name[65];
    char call_id[RT_ID_MAX + 1];
    const char *outcome; /* static: success, failure, error, timeout, cancelled */
    uint64_t latency_ms, at_ms;
    char *result; /* JSON object text or NULL */
    size_t result_len;
};

enum call_turn_role { CALL_TURN_CALLER, CALL_TURN_AGENT, CALL_TURN_DTMF };

struct call_turn {
    enum call_turn_role role;
    uint64_t at_ms; /* since the call started */
    bool interrupted;
    uint32_t off, len; /* text in call.turn_text */
};

struct call {
    struct va_ctx *ctx;
    const struct call_tw_port *port;
    void *port_ud;
    const struct call_rt_port *rt;
    void *rt_ud;
    char stream_sid[CALL_SID_MAX + 1];
    char call_sid[CALL_SID_MAX + 1];
    char from[CALL_NUM_MAX + 1];
    char to[CALL_NUM_MAX + 1];
    uint64_t start_ms;
    uint64_t start_wall_ms; /* for the events' timestamps */
    char account_sid[CALL_SID_MAX + 1];
    bool ended;
    bool failed; /* our side or the Realtime service ended it */
    char end_reason[160];
    int holds; /* open connections and the recording: the memory lives until 0 */

    /* inbound clock: what downstream hears, in 8 kHz samples since the start */
    bool have_ts;
    uint64_t next_ts_ms;
    uint64_t in_samples;
    uint64_t agent_next;
    uint64_t last_media_ms;
    bool stall_filled;

    bool have_seq;
    uint64_t last_seq;

    /* counters for the summary line */
    uint64_t frames_in, bytes_in, frames_out, bytes_out;
    uint64_t seq_gaps, seq_dups, gaps_filled, silence_ms, dtmf, marks;
    uint64_t in_dropped, out_dropped, stale_marks, barge_ins, truncates, deletes;
    uint64_t react_us_max, react_us_sum;
    uint64_t rt_connect_ns; /* uv_hrtime() when the current session's connect began */

    struct audio_rec *rec;
    bool echo;

    /* the Realtime session */
    enum call_rt_state rt_state;
    int rt_refused;  /* the port refused to connect at open: the call fails once on record */
    void *conn;      /* current session */
    void *next_conn; /* rotation: the session replacing it */
    bool next_ready;
    uint64_t session_ms; /* when the current session became ready */
    bool pcm24;
    struct audio_resampler up, down;
    uint8_t pcm_odd[1]; /* a delta may end between the two bytes of a sample */
    bool pcm_odd_have;
    struct va_buf in_batch; /* audio waiting for an append (pcmu or pcm24 bytes) */
    size_t batch_bytes;
    size_t hold_bytes; /* INBOUND_SILENCE_HOLD_MS of quiet frames, 0 = none */
    bool caller_speaking;
    bool active_resp;
    char active_resp_id[RT_ID_MAX + 1];
    char dropped_resp_id[RT_ID_MAX + 1]; /* deltas of an interrupted response are dropped */

    /* outbound playout */
    struct audio_playout outq;
    struct call_seg segs[CALL_SEGS];
    size_t seg_head, seg_len;
    struct call_item items[CALL_ITEMS];
    int item_next;
    /* marks in flight: a mark follows a frame, so OUTBOUND_AHEAD_MS / 20 + 1 at most */
    struct call_mark *marks_q;
    size_t marks_cap, mark_head, mark_len;
    uint32_t gen;
    uint64_t gen_sent, gen_heard; /* bytes in this generation */
    size_t since_mark;

    /* the model's function calls */
    struct call_tool *tools[CALL_TOOLS];
    bool want_create; /* tool outputs sent: a response.create is due once all are in */

    /* transcript */
    struct call_turn *turns; /* grown on demand up to CALL_TURNS_MAX: most calls have few */
    size_t nturns, turns_cap;
    struct va_buf turn_text;
    uint64_t turns_dropped;

    /* call events */
    uint32_t ev_seq;
    char intent[33]; /* from set_call_intent; "" until then */
    struct call_toolrec *toolrecs; /* CALL_TOOLRECS, allocated at the first tool call */
    size_t ntoolrecs;
};

/* bridge.c */
int bridge_open(struct call *c);
void bridge_close(struct call *c);
void bridge_caller_audio(struct call *c, const uint8_t *mulaw, size_t len);
void bridge_mark(struct call *c, const char *name);
void bridge_tick(struct call *c, uint64_t now);
void bridge_deinit(struct call *c);

/* call.c */
void call_send_agent(struct call *c, const uint8_t *mulaw, size_t len);
void call_fail(struct call *c, const char *reason);
void call_turn_add(struct call *c, enum call_turn_role role, uint64_t at_ms, const char *text,
                   size_t len, bool interrupted);
void call_release(struct call *c);
/* A tool call finished (or was refused, cut, timed out): kept for the events, and a
 * call.updated goes out. result may be NULL. */
void call_tool_record(struct call *c, const char *name, const char *call_id, const char *outcome,
                      uint64_t latency_ms, const char *result, size_t result_len);

#endif
