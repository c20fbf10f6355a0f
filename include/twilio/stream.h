/* include/twilio/stream.h: /ws/twilio, one Twilio Media Streams connection per call. */
#ifndef VA_TWILIO_STREAM_H
#define VA_TWILIO_STREAM_H

#include <stddef.h>
#include <stdint.h>

struct va_ctx;
struct va_http_conn;
struct va_http_req;
struct tw_hub;

/* The set of live streams and the scratch space they share (one parse at a time
 * on the loop, so one 64 KiB decode buffer serves every call). */
struct tw_hub *tw_hub_new(struct va_ctx *ctx);
/* Only once every stream has closed (tw_hub_active() == 0). */
void tw_hub_free(struct tw_hub *hub);
size_t tw_hub_active(const struct tw_hub *hub);
/* Closes every stream (e.g. 1001 at shutdown) and the calls' tick timer; each ends
 * asynchronously. Only at shutdown. */
void tw_hub_close_all(struct tw_hub *hub, uint16_t code, const char *reason);

/* Route handler for GET /ws/twilio: the WebSocket handshake, the signature over
 * PUBLIC_WS_URL when TWILIO_AUTH_TOKEN is set (403 before any 101), capacity
 * (MAX_CALLS, draining, disabled: 503), then the stream. */
void tw_stream_upgrade(struct va_ctx *ctx, struct va_http_conn *c, const struct va_http_req *req);

#endif
