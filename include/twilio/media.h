/* include/twilio/media.h: the Twilio Media Streams protocol as pure functions (no I/O,
 * no clock, no globals); see ../shared/reference/twilio.md §4 and §5.
 *
 * tw_media_parse() turns one WebSocket text message into a struct tw_event;
 * tw_media_build_*() append the three messages a bridge may send (§4.2). */
#ifndef VA_TWILIO_MEDIA_H
#define VA_TWILIO_MEDIA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define TW_SID_MAX 64         /* bytes of any SID; Twilio's are 34 */
#define TW_MARK_NAME_MAX 256  /* bytes of a mark name */
#define TW_PARAMS_MAX 32      /* start.customParameters entries */
#define TW_PARAM_PAIR_MAX 499 /* name + value bytes: Twilio wants them under 500 */
#define TW_ENCODING_MAX 32    /* bytes of start.mediaFormat.encoding */
#define TW_EVENT_NAME_MAX 32  /* bytes of an unknown event's name kept for the log */
/* Every custom parameter stored as name NUL value NUL. */
#define TW_PARAMS_TEXT_MAX (TW_PARAMS_MAX * (TW_PARAM_PAIR_MAX + 2))

enum tw_event_type {
    TW_EV_NONE = 0, /* set when parsing fails */
    TW_EV_CONNECTED,
    TW_EV_START,
    TW_EV_MEDIA,
    TW_EV_DTMF,
    TW_EV_MARK,
    TW_EV_STOP,
    TW_EV_UNKNOWN, /* a well-formed message with an event we do not know: ignore it */
};

/* media.track says "inbound"/"outbound", dtmf.track "inbound_track"/"outbound_track":
 * both spellings map to the same value. Any other string is TW_TRACK_OTHER, not an
 * error (with <Connect><Stream> Twilio sends inbound only). */
enum tw_track {
    TW_TRACK_OTHER = 0,
    TW_TRACK_INBOUND,
    TW_TRACK_OUTBOUND,
};
#define TW_TRACK_BIT(t) (1u << (t)) /* for struct tw_ev_start.tracks */

/* One entry of start.customParameters: offsets into tw_ev_start.param_text, where
 * name and value are NUL-terminated. Offsets, not pointers, so the event stays a
 * plain value that can be copied. */
struct tw_param_ref {
    uint16_t name_off;
    uint16_t name_len;
    uint16_t value_off;
    uint16_t value_len;
};

struct tw_ev_start {
    char stream_sid[TW_SID_MAX + 1]; /* start.streamSid; tw_event.stream_sid holds it too */
    char account_sid[TW_SID_MAX + 1];
    char call_sid[TW_SID_MAX + 1];
    unsigned tracks;                    /* OR of TW_TRACK_BIT() of each start.tracks entry */
    char encoding[TW_ENCODING_MAX + 1]; /* "audio/x-mulaw" */
    uint32_t sample_rate;               /* 8000 */
    uint32_t channels;                  /* 1 */
    size_t nparams;                     /* in message order */
    struct tw_param_ref params[TW_PARAMS_MAX];
    char param_text[TW_PARAMS_TEXT_MAX];
};

struct tw_ev_media {
    enum tw_track track;
    uint64_t chunk;     /* per-track count from 1 */
    uint64_t timestamp; /* ms since stream start; may jump (gaps, §5) */
    /* Decoded mu-law: points into the caller's audio buffer given to tw_media_parse(),
     * valid while that buffer is. NULL when the payload is empty. */
    const uint8_t *payload;
    size_t payload_len;
};

struct tw_ev_dtmf {
    enum tw_track track; /* "inbound_track" -> TW_TRACK_INBOUND */
    char digit;          /* '0'..'9', '*' or '#' */
};

struct tw_ev_mark {
    char name[TW_MARK_NAME_MAX + 1];
    size_t name_len;
};

struct tw_ev_stop {
    char account_sid[TW_SID_MAX + 1];
    char call_sid[TW_SID_MAX + 1];
};

/* A parsed message. It owns no heap memory; only the member of the union named by
 * type is meaningful (tw_media_parse() writes only that one, so parsing a media
 * message into an event that held a start costs nothing for the unused bytes).
 * About 17 KB because of the custom parameters: keep one per connection and reuse
 * it for every message rather than putting one on a small stack. */
struct tw_event {
    enum tw_event_type type;
    bool has_seq;                    /* false only for connected (and unknown events) */
    uint64_t seq;                    /* sequenceNumber: start is 1, +1 per later message */
    char stream_sid[TW_SID_MAX + 1]; /* "" for connected and unknown events */
    union {
        struct tw_ev_start start;
        struct tw_ev_media media;
        struct tw_ev_dtmf dtmf;
        struct tw_ev_mark mark;
        struct tw_ev_stop stop;
        char unknown[TW_EVENT_NAME_MAX + 1]; /* the event name, cut at 32 bytes */
    };
};

/* Parses msg[0, len), one complete text message (need not be NUL-terminated).
 *
 * Returns 0 with ev filled in, including TW_EV_UNKNOWN for a well-formed object
 * whose "event" we do not know (log it at debug level and go on: Twilio adds
 * events). Otherwise ev->type is TW_EV_NONE, a one-line reason is written to
 * errbuf (always NUL-terminated when errbuf_len > 0; errbuf may be NULL), e.g.
 * "media.payload missing", "start.streamSid not a string", and the result is
 *   VA_EPROTO   malformed JSON, not an object, trailing bytes, a required field
 *               missing or of the wrong type, a bad number, digit or base64;
 *   VA_ETOOBIG  a field past its bound (SIDs 64 bytes, mark name 256, encoding 32,
 *               more than 32 custom parameters or a name + value of 500 bytes or
 *               more), or a payload that decodes to more than audio_cap bytes.
 *
 * Rules, per reference §4:
 *  - keys in any order; unknown keys ignored; for a duplicated key the first wins;
 *  - sequenceNumber, media.chunk and media.timestamp must be JSON strings holding
 *    a decimal uint64 ("0".."18446744073709551615", no sign, space or junk:
 *    "12a" fails, leading zeros pass). A JSON number there is refused ("not a
 *    string"): Twilio sends strings, so a number means a peer that is not Twilio;
 *  - start.mediaFormat.sampleRate and .channels must be JSON numbers holding a
 *    positive integer that fits uint32; encoding a string. The parser reports the
 *    format, the caller decides whether it can handle it;
 *  - required: "event" (string) everywhere; sequenceNumber for start, media,
 *    dtmf, mark and stop; the top-level streamSid for media, dtmf, mark and stop;
 *    start.{accountSid, streamSid, callSid, tracks, mediaFormat}; media.{track,
 *    chunk, timestamp, payload}; dtmf.{track, digit}; mark.name; stop.{accountSid,
 *    callSid}. SIDs must be 1..64 bytes;
 *  - start's top-level streamSid may be absent, but when present must equal
 *    start.streamSid; start.customParameters may be absent (= {}), its values
 *    must be strings; start.tracks is an array of strings;
 *  - media.payload is padded base64 with no whitespace, of any length (empty
 *    too), decoded into audio[0, audio_cap) (audio may be NULL when audio_cap is
 *    0); a 4-character group with unused low bits set still decodes (as OpenSSL
 *    does); anything else is refused;
 *  - dtmf.digit is exactly one of 0-9 * #.
 * A media message in Twilio's own compact shape is read in place, with no allocation;
 * anything else goes through cJSON, which allocates and frees before returning. */
int tw_media_parse(struct tw_event *ev, const char *msg, size_t len, uint8_t *audio,
                   size_t audio_cap, char *errbuf, size_t errbuf_len);
/* The same through cJSON only. Both give the same result for any input (the Twilio
 * fuzz target checks it). */
int tw_media_parse_json(struct tw_event *ev, const char *msg, size_t len, uint8_t *audio,
                        size_t audio_cap, char *errbuf, size_t errbuf_len);

/* Name of t for logs ("media", "unknown", "none"); never NULL. */
const char *tw_event_type_name(enum tw_event_type t);

/* The value of custom parameter name (NUL-terminated, value_len set when not NULL),
 * or NULL when start.customParameters has no such name. Names compare exactly. */
const char *tw_start_param(const struct tw_ev_start *s, const char *name, size_t *value_len);

static inline const char *tw_start_param_name(const struct tw_ev_start *s, size_t i)
{
    return s->param_text + s->params[i].name_off;
}

static inline const char *tw_start_param_value(const struct tw_ev_start *s, size_t i)
{
    return s->param_text + s->params[i].value_off;
}

/* Builders: each appends one message to out, exactly as reference §4.2, with no
 * whitespace, and never resets out. stream_sid and name are ours, NUL-terminated,
 * JSON-escaped on the way out. 0, VA_ETOOBIG (out reached its max), or VA_EINVAL
 * for a NULL or empty stream_sid or one longer than 64 bytes, a NULL or empty mark
 * name or one longer than 256 bytes, or NULL mulaw with len > 0. On failure out is
 * unchanged. No allocation beyond out's own growth. */

/* {"event":"media","streamSid":"MZ...","media":{"payload":"<base64 of mulaw>"}}.
 * Raw mu-law only (a WAV header plays as noise); send k x 160 bytes (§5). */
int tw_media_build_media(struct va_buf *out, const char *stream_sid, const uint8_t *mulaw,
                         size_t len);

/* {"event":"mark","streamSid":"MZ...","mark":{"name":"..."}} */
int tw_media_build_mark(struct va_buf *out, const char *stream_sid, const char *name);

/* {"event":"clear","streamSid":"MZ..."} */
int tw_media_build_clear(struct va_buf *out, const char *stream_sid);

/* Standard padded base64 (RFC 4648 §4), allocation-free; also usable elsewhere. */

/* Characters tw_b64_encode() writes for n bytes (4 * ceil(n / 3)). */
static inline size_t tw_b64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

/* Writes tw_b64_encoded_len(n) characters to out (no NUL); returns that count. */
size_t tw_b64_encode(char *out, const uint8_t *in, size_t n);

/* Decodes in[0, len) into out[0, cap): 0 and *out_len; VA_ETOOBIG, with out not
 * touched, when the result would pass cap (known from len before decoding);
 * VA_EPROTO when the text is not padded base64 (length not a multiple of 4, a
 * character outside the alphabet, misplaced '='), with out[0, cap) possibly
 * written. Unused low bits of the last group are ignored. */
int tw_b64_decode(uint8_t *out, size_t cap, const char *in, size_t len, size_t *out_len);

#endif
