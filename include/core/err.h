/* include/core/err.h: error codes shared by every module. */
#ifndef VA_CORE_ERR_H
#define VA_CORE_ERR_H

/* Functions return 0 or a negative code: -errno and UV_E* pass through unchanged;
 * our own codes start at -1000 so they never collide with either. */
enum va_err {
    VA_EPROTO = -1000,  /* peer broke a protocol rule */
    VA_ETOOBIG = -1001, /* input or buffer past its configured bound */
    VA_EFULL = -1002,   /* bounded queue full */
    VA_EINVAL = -1003,  /* invalid argument or configuration value */
    VA_ENOTFOUND = -1004,
    VA_EAUTH = -1005,   /* missing or wrong credential / signature */
    VA_ESTATE = -1006,  /* operation not valid in the object's current state */
    VA_ECLOSED = -1007, /* object is closing or closed */
};

/* Names any code from this enum, libuv or errno; never NULL. */
const char *va_strerror(int err);

#endif
