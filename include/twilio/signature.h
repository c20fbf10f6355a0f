/* include/twilio/signature.h: X-Twilio-Signature (pure; see ../shared/reference/twilio.md §3). */
#ifndef VA_TWILIO_SIGNATURE_H
#define VA_TWILIO_SIGNATURE_H

#include <stddef.h>

#include "http/form.h"

#define TW_SIG_LEN 28 /* base64 of a 20-byte HMAC-SHA1 */

/* base64(HMAC-SHA1(token, url + every pair's name and value, sorted by name in
 * byte order, then by value, exact duplicates dropped)) into out (NUL-terminated).
 * url is signed exactly as given (no variant, user:pass@ kept): this is the
 * primitive a fake Twilio signs with. pairs may be NULL when n == 0 (the WebSocket
 * upgrade); they are not reordered. 0, or VA_EINVAL for an empty token (an empty
 * HMAC key would make every signature forgeable) or an OpenSSL failure; out is then
 * the empty string. */
int tw_sig_compute(const char *token, size_t token_len, const char *url, size_t url_len,
                   const struct va_form_pair *pairs, size_t n, char out[TW_SIG_LEN + 1]);

enum tw_sig_flags {
    TW_SIG_TRY_SLASH = 1, /* also accept url + "/" (documented WebSocket quirk) */
};

/* 0 when sig matches url or one of its variants (as given; any explicit port
 * removed, since Twilio drops the port of HTTPS callbacks; or, when there is none,
 * the default port added: 443 for https/wss, 80 for http/ws; user:pass@ is removed
 * from each, since Twilio never signs it; with TW_SIG_TRY_SLASH each of those with
 * "/" appended as well), VA_EAUTH otherwise (including a NULL, empty, short or long
 * sig). VA_EINVAL for an empty token: fail closed, the caller answers 403 anyway.
 * Every variant is computed and compared in constant time, with no early exit.
 * The url must be the configured public one, never rebuilt from request headers. */
int tw_sig_check(const char *token, size_t token_len, const char *url, size_t url_len,
                 const struct va_form_pair *pairs, size_t n, const char *sig, size_t sig_len,
                 unsigned flags);

#endif
