/* src/core/err.c: names for error codes. */
#include "core/err.h"

#include <uv.h>

const char *va_strerror(int err)
{
    switch (err) {
    case 0:
        return "ok";
    case VA_EPROTO:
        return "protocol error";
    case VA_ETOOBIG:
        return "too big";
    case VA_EFULL:
        return "queue full";
    case VA_EINVAL:
        return "invalid value";
    case VA_ENOTFOUND:
        return "not found";
    case VA_EAUTH:
        return "authentication failed";
    case VA_ESTATE:
        return "invalid state";
    case VA_ECLOSED:
        return "closed";
    default:
        break;
    }
    /* libuv maps every negative errno too, and says "Unknown system error" otherwise. */
    return uv_strerror(err);
}
