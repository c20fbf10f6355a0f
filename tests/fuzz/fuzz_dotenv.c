/* tests/fuzz/fuzz_dotenv.c: the .env parser (src/core/dotenv.c) and, behind it, the
 * validation of every configuration value (src/core/config.c).
 *
 * The input is a .env file. va_dotenv_parse() reads it as va_env_load_file() does
 * (without the file: no I/O here), then va_cfg_load() reads the configuration from the
 * pairs it produced, later duplicates winning, so every value a file can hold meets
 * the parser of its variable (ports, limits, URLs, CIDR lists, phone numbers, choices).
 * The process environment is not consulted: the input alone decides.
 *
 * Oracles besides the sanitizers: keys match [A-Za-z_][A-Za-z0-9_]*; key and value fit
 * in their line; a failure names a line of the file; a refused configuration says why. */
#include <stdbool.h>
#include <string.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"

#include "fuzz.h"

#define DOTENV_FZ_MAX_PAIRS 256

struct dotenv_fz {
    char *keys[DOTENV_FZ_MAX_PAIRS];
    char *values[DOTENV_FZ_MAX_PAIRS];
    size_t n;
    size_t size; /* of the input: no key or value can be longer */
};

static bool dotenv_fz_key_ok(const char *k)
{
    if (!((k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z') || k[0] == '_'))
        return false;
    for (const char *p = k + 1; *p; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return false;
    }
    return true;
}

static int dotenv_fz_cb(void *ud, const char *key, const char *value)
{
    struct dotenv_fz *d = ud;
    FUZZ_CHECK(dotenv_fz_key_ok(key));
    FUZZ_CHECK(strlen(key) < d->size && strlen(value) < d->size);
    if (d->n == DOTENV_FZ_MAX_PAIRS)
        return 1; /* a callback may stop the parse: the code comes back with the line */
    d->keys[d->n] = va_xstrdup(key);
    d->values[d->n] = va_xstrdup(value);
    d->n++;
    return 0;
}

/* va_env_lookup() without getenv(): the last value of name in the file. */
static const char *dotenv_fz_lookup(void *ud, const char *name)
{
    const struct dotenv_fz *d = ud;
    for (size_t i = d->n; i-- > 0;) {
        if (strcmp(d->keys[i], name) == 0)
            return d->values[i];
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dotenv_fz d = {.size = size};
    int line = -1;
    int err = va_dotenv_parse((const char *)data, size, dotenv_fz_cb, &d, &line);
    if (err) {
        FUZZ_CHECK(err == VA_EINVAL || (err == 1 && d.n == DOTENV_FZ_MAX_PAIRS));
        size_t lines = 1;
        for (size_t i = 0; i < size; i++)
            lines += data[i] == '\n';
        FUZZ_CHECK(line >= 1 && (size_t)line <= lines);
    } else {
        FUZZ_CHECK(line == 0);
        struct va_cfg cfg;
        char why[256] = "";
        int cerr = va_cfg_load(&cfg, dotenv_fz_lookup, &d, why, sizeof(why));
        if (cerr) {
            FUZZ_CHECK(cerr == VA_EINVAL);
            FUZZ_CHECK(why[0] != '\0' && memchr(why, '\0', sizeof(why)));
        } else {
            FUZZ_CHECK(cfg.trust_proxy_len <= VA_CFG_MAX_PROXIES);
            va_cfg_deinit(&cfg);
        }
    }
    for (size_t i = 0; i < d.n; i++) {
        free(d.keys[i]);
        free(d.values[i]);
    }
    return 0;
}
