/* include/twilio/twiml.h: the TwiML documents we answer with (pure). */
#ifndef VA_TWILIO_TWIML_H
#define VA_TWILIO_TWIML_H

#include <stddef.h>

#include "core/buf.h"

struct tw_param {
    const char *name;  /* ours, NUL-terminated */
    const char *value; /* may be peer data: (ptr, len), need not be terminated */
    size_t value_len;
};

/* Appends s[0, len) to out with & < > " ' escaped; control characters other than
 * tab, CR and LF are dropped (XML 1.0 cannot carry them), and so are DEL, bytes that
 * are not well-formed UTF-8, and U+FFFE/U+FFFF: one of them would make Twilio
 * reject the whole document (12100). 0 or VA_ETOOBIG; on failure out is unchanged.
 * This and the functions below append to out; none resets it. */
int tw_xml_escape(struct va_buf *out, const char *s, size_t len);

/* <?xml ...?><Response><Connect><Stream url="ws_url"><Parameter .../>...</Stream>
 * </Connect><Say>apology</Say></Response>, on one line with no trailing newline.
 * The <Say> plays only if the stream ends while the caller is still on the line; a
 * NULL or empty apology leaves it out (the call then ends with the stream). The
 * document starts at byte 0 with the XML declaration (leading whitespace is Twilio
 * error 12100). Each value is cut at a UTF-8 boundary so that name and value stay
 * under Twilio's 500 characters (counted in bytes). 0, VA_ETOOBIG, or VA_EINVAL for
 * a NULL ws_url, one with '?' or '#' (a query string fails the upgrade: 31920), a
 * NULL name or a name of 499 bytes or more; on failure out is unchanged. */
int tw_twiml_stream(struct va_buf *out, const char *ws_url, const struct tw_param *params,
                    size_t nparams, const char *apology);

/* <?xml ...?><Response><Say>apology</Say><Hangup/></Response>: the call is refused
 * politely. A NULL or empty apology leaves the <Say> out. 0 or VA_ETOOBIG; on
 * failure out is unchanged. */
int tw_twiml_apology(struct va_buf *out, const char *apology);

#endif
