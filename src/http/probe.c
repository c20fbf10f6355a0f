/* src/http/probe.c: one blocking GET with a deadline, for `voice-agent --healthcheck`.
 *
 * Plain sockets and poll(), not a uv loop: the probe is a short-lived process with one
 * connection and one deadline, and a blocking call is the whole of its job. */
#include "http/probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"

/* "HTTP/1.1 200" is all we read; a few more bytes let a short first read carry it. */
#define PROBE_STATUS_MAX 64

const char *va_http_probe_host(const char *bind_host)
{
    if (!bind_host || strcmp(bind_host, "0.0.0.0") == 0)
        return "127.0.0.1";
    if (strcmp(bind_host, "::") == 0)
        return "::1";
    return bind_host;
}

static int64_t probe_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until deadline; 0, -ETIMEDOUT or -errno. */
static int probe_wait(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - probe_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 0;
        if (n == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

/* "HTTP/1.x NNN" at the start of buf[0, len): the status, or VA_EPROTO. */
static int probe_parse_status(const char *buf, size_t len)
{
    static const char prefix[] = "HTTP/1.";
    size_t plen = sizeof(prefix) - 1;
    if (len < plen + 5 || memcmp(buf, prefix, plen) != 0)
        return VA_EPROTO;
    const char *p = buf + plen + 1; /* past the minor version digit */
    if (p[0] != ' ')
        return VA_EPROTO;
    int status = 0;
    for (int i = 1; i <= 3; i++) {
        if (p[i] < '0' || p[i] > '9')
            return VA_EPROTO;
        status = status * 10 + (p[i] - '0');
    }
    return status >= 100 && status <= 599 ? status : VA_EPROTO;
}

static int probe_addr(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        *len = sizeof(*in4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        *len = sizeof(*in6);
        return 0;
    }
    return VA_EINVAL;
}

int va_http_probe(const char *host, uint16_t port, const char *path, uint32_t timeout_ms)
{
    int64_t deadline = probe_now_ms() + timeout_ms;
    struct sockaddr_storage ss;
    socklen_t sslen;
    int err = probe_addr(host, port, &ss, &sslen);
    if (err)
        return err;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;

    if (connect(fd, (struct sockaddr *)&ss, sslen) != 0) {
        if (errno != EINPROGRESS) {
            err = -errno;
            goto done;
        }
        err = probe_wait(fd, POLLOUT, deadline);
        if (err)
            goto done;
        int soerr = 0;
        socklen_t solen = sizeof(soerr);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &solen);
        if (soerr) {
            err = -soerr;
            goto done;
        }
    }

    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: voice-agent-healthcheck\r\n"
                     "Connection: close\r\n\r\n",
                     path, host);
    if (n < 0 || (size_t)n >= sizeof(req)) {
        err = VA_EINVAL;
        goto done;
    }
    for (size_t off = 0; off < (size_t)n;) {
        ssize_t w = send(fd, req + off, (size_t)n - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            err = -errno;
            goto done;
        }
        err = probe_wait(fd, POLLOUT, deadline);
        if (err)
            goto done;
    }

    /* the status line: "HTTP/1.1 200 OK\r\n"; the first 12 bytes decide */
    char buf[PROBE_STATUS_MAX];
    size_t got = 0;
    while (got < 12) {
        ssize_t r = recv(fd, buf + got, sizeof(buf) - got, 0);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        if (r == 0) {
            err = VA_EPROTO; /* closed before a status line */
            goto done;
        }
        if (errno != EAGAIN && errno != EINTR) {
            err = -errno;
            goto done;
        }
        err = probe_wait(fd, POLLIN, deadline);
        if (err)
            goto done;
    }
    err = probe_parse_status(buf, got);

done:
    close(fd);
    return err;
}
