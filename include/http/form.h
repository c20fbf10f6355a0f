/* include/http/form.h: application/x-www-form-urlencoded decoding (pure). */
#ifndef VA_HTTP_FORM_H
#define VA_HTTP_FORM_H

#include <stddef.h>

struct va_form_pair {
    const char *name; /* NUL-terminated, may contain NUL bytes before name_len */
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* A decoded form: pairs point into one owned arena. */
struct va_form {
    struct va_form_pair *pairs;
    size_t len;
    char *arena;
};

/* Decodes body[0, len): pairs split on '&', name and value on the first '=' (an
 * encoded %3D stays inside its name or value), '+' -> space, %XX -> byte (a
 * malformed escape is kept literally, as browsers and Twilio's SDKs do), empty
 * segments skipped, a missing '=' gives an empty value. Values are not trimmed (the
 * signature covers them byte for byte). Pairs keep their order in the body. At most
 * max_pairs pairs: more is VA_ETOOBIG, checked before anything is allocated.
 * form need not be initialised. 0 or a negative code; on failure the form is empty
 * (va_form_deinit() is still safe). body need not outlive the form. */
int va_form_parse(struct va_form *form, const char *body, size_t len, size_t max_pairs);
/* Frees the arena and pairs and leaves the form empty; calling it twice is safe. */
void va_form_deinit(struct va_form *form);
/* First pair whose name is exactly name (a C string of ours, compared byte for
 * byte, case-sensitive), or NULL. */
const struct va_form_pair *va_form_get(const struct va_form *form, const char *name);

#endif
