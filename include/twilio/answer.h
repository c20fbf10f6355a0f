/* include/twilio/answer.h: POST /twilio/answer, Twilio's voice webhook. */
#ifndef VA_TWILIO_ANSWER_H
#define VA_TWILIO_ANSWER_H

struct va_ctx;
struct va_http_conn;
struct va_http_req;

/* Checks the signature (when TWILIO_AUTH_TOKEN is set) and the rate limit, then
 * answers the Stream TwiML, or the apology TwiML when no call can start. Twilio
 * never gets a 5xx: it would play its own error message instead of ours. */
void tw_answer_handle(struct va_ctx *ctx, struct va_http_conn *c, const struct va_http_req *req);

/* Twilio's status callback (configured on the number): the same checks, then a
 * call.status event with Twilio's CallStatus and CallDuration; 204. */
void tw_status_handle(struct va_ctx *ctx, struct va_http_conn *c, const struct va_http_req *req);

#endif
