/* bench/loadgen/floor.c: what this machine charges for the least a call bridge must do.
 *
 * Whatever it is written in, a bridge reads each of a caller's 20 ms frames when it arrives
 * (reading less often adds latency) and writes it on. These two roles measure that and
 * nothing else: plain TCP, no TLS, no WebSocket, no JSON, one libuv loop, as the daemon.
 *
 *   va-loadgen relay [--forward 1|0]
 *       listens on two loopback ports and prints {"listening":[IN,OUT]}. The k-th
 *       connection to OUT is the sink of the k-th connection to IN; every read from IN is
 *       written to its sink (--forward 0: read and dropped). Reads go to one shared
 *       buffer; writes are uv_try_write(), as src/http/ws.c does. On SIGTERM it prints
 *       {"reads","bytes"} and exits.
 *   va-loadgen streams --in IN --out OUT [--calls N] [--bytes B] [--seconds S]
 *       [--ramp-ms M] [--coalesce-us U]
 *       N sinks to OUT (read and discarded), then N sources to IN, each writing B bytes
 *       (300: a Twilio media message or an append) every 20 ms at its own random phase,
 *       for S seconds (20); prints {"streams","sent"} and exits.
 *
 * bench/bench.sh runs both at the benchmark's N after the calls and prints the relay's CPU
 * per stream-second as floorRelay*; docs/performance.md compares it with the daemon's. */
#include "lg.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FL_PERIOD_NS 20000000ull

struct fl_relay {
    uv_loop_t *loop;
    uv_tcp_t lin, lout;
    uv_tcp_t **ins, **outs; /* by order of arrival */
    size_t n_in, n_out, cap_in, cap_out;
    int forward;
    uint64_t reads, bytes;
    uv_signal_t sig;
    char buf[65536];
};

static int fl_usage(const char *role, const char *msg)
{
    fprintf(stderr, "va-loadgen %s: %s (see bench/loadgen/floor.c)\n", role, msg);
    return 2;
}

static void fl_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)hint;
    struct fl_relay *r = h->loop->data;
    *b = uv_buf_init(r->buf, sizeof r->buf);
}

static void fl_free_handle(uv_handle_t *h)
{
    free(h);
}

static void fl_relay_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct fl_relay *r = s->loop->data;
    if (n < 0) {
        uv_close((uv_handle_t *)s, NULL);
        return;
    }
    if (n == 0)
        return;
    r->reads++;
    r->bytes += (uint64_t)n;
    size_t k = (size_t)(uintptr_t)s->data;
    if (r->forward && k < r->n_out) {
        uv_buf_t w = uv_buf_init(b->base, (unsigned)n);
        uv_try_write((uv_stream_t *)r->outs[k], &w, 1);
    }
}

static uv_tcp_t *fl_accept(uv_stream_t *srv, uv_tcp_t ***list, size_t *n, size_t *cap)
{
    uv_tcp_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    uv_tcp_init(srv->loop, c);
    if (uv_accept(srv, (uv_stream_t *)c)) {
        uv_close((uv_handle_t *)c, fl_free_handle);
        return NULL;
    }
    uv_tcp_nodelay(c, 1);
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        *list = realloc(*list, *cap * sizeof **list);
    }
    (*list)[*n] = c;
    c->data = (void *)(uintptr_t)*n;
    (*n)++;
    return c;
}

static void fl_on_in(uv_stream_t *srv, int status)
{
    struct fl_relay *r = srv->loop->data;
    uv_tcp_t *c = status ? NULL : fl_accept(srv, &r->ins, &r->n_in, &r->cap_in);
    if (c)
        uv_read_start((uv_stream_t *)c, fl_alloc, fl_relay_read);
}

static void fl_sink_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    if (n < 0)
        uv_close((uv_handle_t *)s, NULL);
}

static void fl_on_out(uv_stream_t *srv, int status)
{
    struct fl_relay *r = srv->loop->data;
    uv_tcp_t *c = status ? NULL : fl_accept(srv, &r->outs, &r->n_out, &r->cap_out);
    if (c) /* only to notice the sink closing */
        uv_read_start((uv_stream_t *)c, fl_alloc, fl_sink_read);
}

static void fl_close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void fl_on_term(uv_signal_t *s, int sig)
{
    (void)sig;
    uv_walk(s->loop, fl_close_any, NULL);
}

static int fl_listen(uv_loop_t *loop, uv_tcp_t *t, uv_connection_cb cb)
{
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(loop, t);
    if (uv_tcp_bind(t, (const struct sockaddr *)&a, 0) || uv_listen((uv_stream_t *)t, 4096, cb))
        return -1;
    struct sockaddr_in got;
    int len = sizeof got;
    uv_tcp_getsockname(t, (struct sockaddr *)&got, &len);
    return ntohs(got.sin_port);
}

int lg_relay_main(int argc, char **argv)
{
    struct fl_relay *r = calloc(1, sizeof *r);
    if (!r)
        return 1;
    r->forward = 1;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc || strcmp(argv[i], "--forward"))
            return fl_usage("relay", "options: --forward 1|0");
        r->forward = atoi(argv[i + 1]) != 0;
    }
    r->loop = uv_default_loop();
    r->loop->data = r;
    int pin = fl_listen(r->loop, &r->lin, fl_on_in), pout = fl_listen(r->loop, &r->lout, fl_on_out);
    if (pin < 0 || pout < 0)
        return fl_usage("relay", "cannot listen on 127.0.0.1");
    uv_signal_init(r->loop, &r->sig);
    uv_signal_start(&r->sig, fl_on_term, SIGTERM);
    printf("{\"listening\":[%d,%d]}\n", pin, pout);
    fflush(stdout);
    uv_run(r->loop, UV_RUN_DEFAULT);
    printf("{\"reads\":%llu,\"bytes\":%llu}\n", (unsigned long long)r->reads,
           (unsigned long long)r->bytes);
    uv_loop_close(r->loop);
    for (size_t i = 0; i < r->n_in; i++)
        free(r->ins[i]);
    for (size_t i = 0; i < r->n_out; i++)
        free(r->outs[i]);
    free(r->ins);
    free(r->outs);
    free(r);
    return 0;
}

/* --- streams --- */

struct fl_stream {
    uv_tcp_t tcp;
    uv_connect_t req;
    uint64_t next_ns; /* 0: not connected */
    bool source;      /* writes (to the relay's IN); else a sink */
};

struct fl_gen {
    uv_loop_t *loop;
    struct fl_stream *src, *snk;
    int n, bytes, ramp_ms, seconds, connected_sinks;
    struct sockaddr_in in, out;
    uint64_t end_ns, sent;
    uv_timer_t tick;
    struct lg_coalesce co;
    char msg[4096];
    char rbuf[65536];
    unsigned seed;
};

static void fl_gen_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)hint;
    struct fl_gen *g = h->loop->data;
    *b = uv_buf_init(g->rbuf, sizeof g->rbuf);
}

static void fl_connected(uv_connect_t *req, int status)
{
    struct fl_stream *s = req->data;
    struct fl_gen *g = s->tcp.loop->data;
    if (status) {
        fprintf(stderr, "va-loadgen streams: connect: %s\n", uv_strerror(status));
        exit(1);
    }
    if (s->source) {
        uv_tcp_nodelay(&s->tcp, 1);
        uint64_t r = ((uint64_t)rand_r(&g->seed) << 16) ^ (uint64_t)rand_r(&g->seed);
        s->next_ns = lg_now_ns() + (g->ramp_ms ? r % ((uint64_t)g->ramp_ms * 1000000u) : 0) + 1;
        return;
    }
    uv_read_start((uv_stream_t *)&s->tcp, fl_gen_alloc, fl_sink_read);
    /* sources only once every sink is there, so that the relay pairs them in order */
    if (++g->connected_sinks < g->n)
        return;
    for (int i = 0; i < g->n; i++) {
        uv_tcp_init(g->loop, &g->src[i].tcp);
        g->src[i].req.data = &g->src[i];
        g->src[i].source = true;
        uv_tcp_connect(&g->src[i].req, &g->src[i].tcp, (const struct sockaddr *)&g->in,
                       fl_connected);
    }
}

static void fl_tick(uv_timer_t *t)
{
    struct fl_gen *g = t->data;
    uint64_t now = lg_now_ns();
    if (g->end_ns && now >= g->end_ns) {
        uv_walk(g->loop, fl_close_any, NULL);
        return;
    }
    for (int i = 0; i < g->n; i++) {
        struct fl_stream *s = &g->src[i];
        while (s->next_ns && s->next_ns <= now) {
            if (!g->end_ns)
                g->end_ns = now + (uint64_t)g->seconds * 1000000000u;
            uv_buf_t w = uv_buf_init(g->msg, (unsigned)g->bytes);
            if (uv_try_write((uv_stream_t *)&s->tcp, &w, 1) > 0)
                g->sent++;
            s->next_ns += FL_PERIOD_NS;
        }
    }
}

int lg_streams_main(int argc, char **argv)
{
    struct fl_gen *g = calloc(1, sizeof *g);
    if (!g)
        return 1;
    int pin = 0, pout = 0, co_us = 500;
    g->n = 1;
    g->bytes = 300;
    g->seconds = 20;
    g->ramp_ms = 1000;
    g->seed = (unsigned)lg_now_ns();
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            return fl_usage("streams", "every option takes a value");
        int v = atoi(argv[i + 1]);
        if (!strcmp(a, "--in"))
            pin = v;
        else if (!strcmp(a, "--out"))
            pout = v;
        else if (!strcmp(a, "--calls"))
            g->n = v;
        else if (!strcmp(a, "--bytes"))
            g->bytes = v;
        else if (!strcmp(a, "--seconds"))
            g->seconds = v;
        else if (!strcmp(a, "--ramp-ms"))
            g->ramp_ms = v;
        else if (!strcmp(a, "--coalesce-us"))
            co_us = v;
        else
            return fl_usage("streams", "unknown option");
    }
    if (pin <= 0 || pin > 65535 || pout <= 0 || pout > 65535 || g->n < 1 || g->n > 100000 ||
        g->bytes < 1 || g->bytes > (int)sizeof g->msg || g->seconds < 1 || g->ramp_ms < 0 ||
        co_us < 0 || co_us > 100000)
        return fl_usage("streams", "--in and --out required; --calls 1-100000, --bytes 1-4096, "
                                   "--seconds >= 1, --ramp-ms >= 0, --coalesce-us 0-100000");
    memset(g->msg, 'x', sizeof g->msg);
    g->loop = uv_default_loop();
    g->loop->data = g;
    uv_ip4_addr("127.0.0.1", pin, &g->in);
    uv_ip4_addr("127.0.0.1", pout, &g->out);
    g->src = calloc((size_t)g->n, sizeof *g->src);
    g->snk = calloc((size_t)g->n, sizeof *g->snk);
    if (!g->src || !g->snk)
        return 1;
    /* one sink at a time, so that they arrive at the relay in order */
    for (int i = 0; i < g->n; i++) {
        uv_tcp_init(g->loop, &g->snk[i].tcp);
        g->snk[i].req.data = &g->snk[i];
        uv_tcp_connect(&g->snk[i].req, &g->snk[i].tcp, (const struct sockaddr *)&g->out,
                       fl_connected);
        while (g->connected_sinks <= i)
            uv_run(g->loop, UV_RUN_ONCE);
    }
    uv_timer_init(g->loop, &g->tick);
    g->tick.data = g;
    uv_timer_start(&g->tick, fl_tick, 1, 1);
    if (co_us)
        lg_coalesce_start(&g->co, g->loop, (unsigned)co_us);
    uv_run(g->loop, UV_RUN_DEFAULT);
    printf("{\"streams\":%d,\"sent\":%llu}\n", g->n, (unsigned long long)g->sent);
    uv_loop_close(g->loop);
    free(g->src);
    free(g->snk);
    free(g);
    return 0;
}
