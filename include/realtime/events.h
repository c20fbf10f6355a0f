/* include/realtime/events.h: OpenAI Realtime (GA) client events built, server events
 * parsed. Pure: no I/O, no clock, no globals. See ../shared/reference/openai-realtime.md. */
#ifndef VA_REALTIME_EVENTS_H
#define VA_REALTIME_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define RT_ID_MAX 64        /* item, response, call ids and tool names */
#define RT_CODE_MAX 96      /* error codes and types */
#define RT_TEXT_MAX 4096    /* transcripts, error messages, tool arguments: cut beyond */
#define RT_EVENT_ID_MAX 512 /* client event_id, reference §1 */

enum rt_audio_format { RT_FMT_PCMU = 0, RT_FMT_PCM24 };
enum rt_vad { RT_VAD_SERVER = 0, RT_VAD_SEMANTIC, RT_VAD_NONE };

/* Strings are NUL-terminated and only read during rt_build_session_update(). */
struct rt_session_cfg {
    const char *instructions;    /* NULL = key left out (keeps the session's) */
    const char *voice;           /* required, 1..RT_ID_MAX bytes */
    enum rt_audio_format format; /* both directions */
    enum rt_vad vad;
    double vad_threshold; /* server_vad: 0..1, written in its shortest form (0.6, not 0.59999..) */
    uint32_t vad_prefix_padding_ms;
    uint32_t vad_silence_ms;
    const char *vad_eagerness; /* semantic_vad, required there: low|medium|high|auto */
    bool create_response;      /* both VAD modes */
    bool interrupt_response;
    const char *transcription_model;    /* NULL = transcription off */
    const char *transcription_language; /* NULL = auto (key left out) */
    const char *noise_reduction;        /* near_field | far_field | NULL (off) */
    const char *tools_json;             /* a JSON array of function tools, NULL = [] */
};

/* Builders append one complete event to out (no trailing newline, no whitespace but tools_json's)
 * and never reset it. 0, VA_ETOOBIG (out reached its max) or VA_EINVAL; out unchanged on failure.
 * Strings are JSON-escaped through va_json_str(). Synchronous and pure. */

/* {"type":"session.update","event_id":..,"session":{"type":"realtime","instructions":..,
 * "output_modalities":["audio"],"audio":{"input":{"format":F,"noise_reduction":{"type":..}|null,
 * "transcription":{"model":..,"language":..}|null,"turn_detection":T},"output":{"format":F,
 * "voice":..}},"tools":<tools_json>|[],"tool_choice":"auto"}} (reference §2), where F is
 * {"type":"audio/pcmu"} or {"type":"audio/pcm","rate":24000} and T is
 * {"type":"server_vad","threshold":..,"prefix_padding_ms":..,"silence_duration_ms":..,
 * "idle_timeout_ms":null,"create_response":..,"interrupt_response":..},
 * {"type":"semantic_vad","eagerness":..,"create_response":..,"interrupt_response":..} or null.
 * Never "model" (it is in the URL) and no beta key. event_id NULL = key left out, else
 * 1..RT_EVENT_ID_MAX bytes. tools_json is checked to parse as one JSON array (whitespace
 * around it allowed) and copied verbatim. VA_EINVAL for a value outside the ranges
 * written in struct rt_session_cfg. Allocates only inside cJSON to check tools_json. */
int rt_build_session_update(struct va_buf *out, const struct rt_session_cfg *cfg,
                            const char *event_id);
/* {"type":"input_audio_buffer.append","audio":"<base64 of audio>"}. The per-frame hot
 * path: one reserve in out, base64 written in place, no other allocation. audio may be
 * NULL when len is 0. */
int rt_build_append(struct va_buf *out, const uint8_t *audio, size_t len);
/* {"type":"input_audio_buffer.commit"}: manual turns only (VAD off). */
int rt_build_commit(struct va_buf *out);
/* {"type":"response.create"} or with "response":{"instructions":...} */
int rt_build_response_create(struct va_buf *out, const char *instructions);
/* {"type":"response.cancel"}: the active response (no response_id). */
int rt_build_response_cancel(struct va_buf *out);
/* {"type":"conversation.item.truncate","item_id":..,"content_index":0,"audio_end_ms":..};
 * item_id 1..RT_ID_MAX bytes, else VA_EINVAL (also for delete). */
int rt_build_truncate(struct va_buf *out, const char *item_id, uint64_t audio_end_ms);
/* {"type":"conversation.item.delete","item_id":..} */
int rt_build_item_delete(struct va_buf *out, const char *item_id);
/* conversation.item.create of a function_call_output; output is any text (usually JSON),
 * sent as a JSON string; call_id 1..RT_ID_MAX bytes. */
int rt_build_function_output(struct va_buf *out, const char *call_id, const char *output,
                             size_t output_len);
/* conversation.item.create of a message: role "user" (input_text), "assistant"
 * (output_text) or "system" (input_text), for seeding a new session; any other role
 * is VA_EINVAL. */
int rt_build_message_item(struct va_buf *out, const char *role, const char *text, size_t len);

enum rt_event_type {
    RT_EV_NONE = 0,
    RT_EV_SESSION_CREATED,  /* session_id, expires_at */
    RT_EV_SESSION_UPDATED,  /* in_format, out_format */
    RT_EV_SPEECH_STARTED,   /* audio_ms = audio_start_ms, item_id */
    RT_EV_SPEECH_STOPPED,   /* audio_ms = audio_end_ms, item_id */
    RT_EV_COMMITTED,        /* item_id */
    RT_EV_RESPONSE_CREATED, /* response_id */
    RT_EV_RESPONSE_DONE,    /* response_id, status, status_reason; error_* when failed */
    RT_EV_AUDIO_DELTA,      /* response_id, item_id, audio/audio_len (decoded) */
    RT_EV_AUDIO_DONE,       /* response_id, item_id */
    RT_EV_TRANSCRIPT_DONE,  /* response.output_audio_transcript.done: item_id, text */
    RT_EV_INPUT_TRANSCRIPT, /* conversation.item.input_audio_transcription.completed: item_id, text
                             */
    RT_EV_INPUT_TRANSCRIPT_FAILED, /* item_id, error_* */
    RT_EV_FUNCTION_CALL,  /* response.function_call_arguments.done: response_id, item_id, call_id,
                             name, text = arguments */
    RT_EV_ITEM_TRUNCATED, /* item_id, audio_ms = audio_end_ms */
    RT_EV_ITEM_DELETED,   /* item_id */
    RT_EV_RATE_LIMITS,    /* requests/tokens remaining */
    RT_EV_ERROR,          /* error_type, error_code, text = message, error_event_id */
    RT_EV_OTHER,          /* well-formed, not needed here: type_name says which
                           * (beta names land here too; conversation.item.created
                           * is named conversation.item.added) */
};

struct rt_event {
    enum rt_event_type type;
    char type_name[64];
    char item_id[RT_ID_MAX + 1];
    char response_id[RT_ID_MAX + 1];
    char call_id[RT_ID_MAX + 1];
    char name[RT_ID_MAX + 1];
    char session_id[RT_ID_MAX + 1];
    uint64_t expires_at; /* epoch seconds, 0 if absent */
    uint64_t audio_ms;
    enum rt_audio_format in_format, out_format; /* session.updated */
    bool formats_known;
    char status[32];        /* response.done: completed|cancelled|failed|incomplete */
    char status_reason[64]; /* turn_detected, client_cancelled, max_output_tokens... */
    char error_type[RT_CODE_MAX + 1];
    char error_code[RT_CODE_MAX + 1];
    char error_event_id[RT_ID_MAX + 1];
    int64_t remaining_requests, remaining_tokens; /* -1 when absent */
    /* AUDIO_DELTA: decoded audio in the caller's buffer */
    const uint8_t *audio;
    size_t audio_len;
    /* transcripts, arguments, error messages: NUL-terminated, cut at RT_TEXT_MAX */
    char text[RT_TEXT_MAX + 1];
    size_t text_len;
    bool text_cut;
};

/* Parses one server message json[0, len) (need not be NUL-terminated). Synchronous and
 * pure; allocates only inside cJSON and frees it all before returning.
 *
 * 0 with ev filled: ev->type from the table above, type_name always (cut at 63 bytes),
 * fields not named for that type empty/0, remaining_* -1. Required per type, every
 * other listed field taken when present (wrong JSON type still fails):
 *   session.created        session.id; session.expires_at optional
 *   session.updated        session; formats from session.audio.{input,output}.format
 *                          (also for created): formats_known only when both are
 *                          audio/pcmu or audio/pcm at 24000, so false means "absent
 *                          or a format this bridge does not speak"
 *   speech_started/stopped audio_start_ms / audio_end_ms, item_id
 *   committed, item.deleted item_id; item.truncated item_id, audio_end_ms
 *   response.created       response.id
 *   response.done          response.id, response.status; status_details nullable,
 *                          its reason -> status_reason, its error -> error_*, text
 *   output_audio.delta     response_id, item_id, delta (base64 into audio[0, audio_cap);
 *                          ev->audio points there; audio may be NULL when audio_cap is 0)
 *   output_audio.done      response_id, item_id
 *   transcript.done        item_id, transcript (response_id optional)
 *   input transcription    item_id, transcript; .failed: item_id, error object
 *   function_call_args     response_id, item_id, call_id, name, arguments (as text; cut
 *                          arguments are not JSON: check text_cut)
 *   rate_limits.updated    rate_limits array; "requests"/"tokens" entries need remaining
 *   error                  error.type, error.message; code, param, event_id nullable
 * Numbers are JSON integers 0..2^53. Strings that are ids must be non-empty when required.
 *
 * On failure ev->type is RT_EV_NONE (other fields unspecified) and a one-line reason
 * goes to errbuf (NUL-terminated when errbuf_len > 0; may be NULL; 160 bytes suffice),
 * prefixed by the event type, e.g. "response.output_audio.delta: delta missing":
 *   VA_EPROTO   empty input, malformed JSON, bytes after the value, not an object, type
 *               missing or empty, a required field missing, a field of the wrong
 *               JSON type, a bad number or base64;
 *   VA_ETOOBIG  an id or name past RT_ID_MAX, a code past RT_CODE_MAX, status or reason
 *               past their arrays, or a delta that decodes past audio_cap.
 * Text past RT_TEXT_MAX is not an error: it is cut at a UTF-8 boundary, text_cut set. */
int rt_event_parse(struct rt_event *ev, const char *json, size_t len, uint8_t *audio,
                   size_t audio_cap, char *errbuf, size_t errbuf_len);

/* rt_event_parse() always through cJSON. rt_event_parse() reads an audio delta of the
 * service's compact shape in place (va_json_flat()) and everything else this way; the
 * unit tests and the fuzz target hold the two to the same result. */
int rt_event_parse_json(struct rt_event *ev, const char *json, size_t len, uint8_t *audio,
                        size_t audio_cap, char *errbuf, size_t errbuf_len);

#endif
