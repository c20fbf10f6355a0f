/* src/supabase/rpc.c: PostgREST RPC over one curl multi, driven by uv polls and a uv timer.
 *
 * Shape: curl tells us which sockets to watch (sb_on_socket) and when to wake it
 * (sb_on_curl_timer); uv callbacks hand events back through curl_multi_socket_action and
 * then always drain curl_multi_info_read (sb_drain). Every uv entry point brackets its work
 * with sb_enter/sb_leave so that a done() which closes the client only marks it; the
 * teardown runs once no callback of ours is on the stack. */
#include "supabase/rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/list.h"
#include "core/log.h"

#define SB_MOD "supabase"
#define SB_MAX_RETRIES 2
#define SB_FN_MAX 63

struct sb_poll {
    uv_poll_t poll;
    struct sb_rpc *r;
    curl_socket_t fd;
    struct sb_poll *prev, *next;
};

struct sb_call {
    struct sb_call *prev, *next;
    struct sb_rpc *r;
    uv_timer_t backoff; /* retry delay; closing it frees the call */
    CURL *easy;
    char *body;
    size_t body_len;
    struct va_buf resp;
    char fn[SB_FN_MAX + 1];
    sb_rpc_done_fn done;
    void *ud;
    bool idempotent;
    bool in_multi;
    bool probe; /* the one call let through a breaker past its cooldown */
    bool too_big;
    bool doomed; /* its multi failed: finished with VA_EPROTO */
    unsigned attempt;
    char errbuf[CURL_ERROR_SIZE];
};

struct sb_rpc {
    uv_loop_t *loop;
    struct va_log *log;
    struct sb_rpc_cfg cfg; /* strings below */
    char *base_url;        /* without trailing '/' */
    struct curl_slist *headers;
    CURLM *multi;
    uv_timer_t timer; /* curl's timeout */
    struct sb_call *calls;
    struct sb_poll *polls;
    size_t in_flight;
    size_t handles; /* open uv handles: timer, polls, call timers */
    unsigned depth; /* our uv callbacks on the stack */
    bool closing;
    bool torn_down;
    void (*on_closed)(void *ud);
    void *closed_ud;
    /* breaker */
    uint32_t failures;
    bool open;
    bool probing;
    uint64_t open_until;
    char why[CURL_ERROR_SIZE + 64];
};

static void sb_drain(struct sb_rpc *r);
static void sb_teardown(struct sb_rpc *r);

/* ---------- lifetime bookkeeping ---------- */

static void sb_maybe_free(struct sb_rpc *r)
{
    if (!r->torn_down || r->handles)
        return;
    void (*cb)(void *) = r->on_closed;
    void *ud = r->closed_ud;
    curl_slist_free_all(r->headers);
    free(r->base_url);
    free(r);
    if (cb)
        cb(ud);
}

static void sb_enter(struct sb_rpc *r)
{
    r->depth++;
}

static void sb_leave(struct sb_rpc *r)
{
    r->depth--;
    if (!r->depth && r->closing && !r->torn_down)
        sb_teardown(r);
}

static void sb_handle_closed(uv_handle_t *h)
{
    struct sb_rpc *r = h->data;
    r->handles--;
    sb_maybe_free(r);
}

static void sb_poll_closed(uv_handle_t *h)
{
    struct sb_poll *p = h->data;
    struct sb_rpc *r = p->r;
    free(p);
    r->handles--;
    sb_maybe_free(r);
}

static void sb_poll_release(struct sb_rpc *r, struct sb_poll *p)
{
    VA_LIST_REMOVE(r->polls, p, prev, next);
    uv_poll_stop(&p->poll);
    uv_close((uv_handle_t *)&p->poll, sb_poll_closed);
}

static void sb_call_closed(uv_handle_t *h)
{
    struct sb_call *c = h->data;
    struct sb_rpc *r = c->r;
    free(c);
    r->handles--;
    sb_maybe_free(r);
}

/* ---------- breaker ---------- */

static void sb_breaker_ok(struct sb_rpc *r)
{
    r->failures = 0;
    r->probing = false;
    if (r->open) {
        r->open = false;
        va_log_info(r->log, SB_MOD, "circuit closed");
    }
}

static void sb_breaker_fail(struct sb_rpc *r, const struct sb_call *c, int err, long status)
{
    if (r->failures < UINT32_MAX)
        r->failures++;
    if (err)
        snprintf(r->why, sizeof(r->why), "supabase: %s%s%s", va_strerror(err),
                 c->errbuf[0] ? ": " : "", c->errbuf);
    else
        snprintf(r->why, sizeof(r->why), "supabase: HTTP %ld", status);
    if (!r->open && r->failures >= r->cfg.breaker_threshold) {
        r->open = true;
        r->open_until = uv_now(r->loop) + r->cfg.breaker_cooldown_ms;
        va_log_warn(r->log, SB_MOD, "circuit open", VA_LINT("failures", r->failures),
                    VA_LINT("cooldown_ms", r->cfg.breaker_cooldown_ms), VA_LSTR("error", r->why));
    }
}

/* May a new call start? Past the cooldown the first caller becomes the probe. */
static int sb_breaker_admit(struct sb_rpc *r, bool *probe)
{
    *probe = false;
    if (!r->open)
        return 0;
    if (r->probing || uv_now(r->loop) < r->open_until)
        return VA_EFULL;
    r->probing = true;
    *probe = true;
    return 0;
}

/* ---------- one call ---------- */

static int sb_map_curl(const struct sb_call *c, CURLcode res)
{
    if (c->too_big)
        return VA_ETOOBIG;
    switch (res) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT:
        return UV_ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        return UV_ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
        return UV_EAI_NONAME;
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
        return UV_ECONNRESET;
    default:
        return VA_EPROTO;
    }
}

static bool sb_status_transient(long status)
{
    return status == 502 || status == 503 || status == 504;
}

static size_t sb_on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct sb_call *c = ud;
    size_t n = size * nmemb;
    if (va_buf_append(&c->resp, ptr, n)) {
        c->too_big = true;
        return 0; /* != n: curl aborts with CURLE_WRITE_ERROR */
    }
    return n;
}

/* Unlinks, reports, and starts freeing the call; the easy handle is already out of the multi. */
static void sb_call_finish(struct sb_rpc *r, struct sb_call *c, int err, long status)
{
    VA_LIST_REMOVE(r->calls, c, prev, next);
    r->in_flight--;
    if (c->probe && r->probing) {
        /* the probe is over whatever its result; if it did not close the breaker, the
         * next one is a cooldown away */
        r->probing = false;
        if (r->open)
            r->open_until = uv_now(r->loop) + r->cfg.breaker_cooldown_ms;
    }
    if (c->easy)
        curl_easy_cleanup(c->easy);
    c->easy = NULL;
    if (err && err != VA_ETOOBIG && err != UV_ECANCELED)
        va_log_warn(r->log, SB_MOD, "rpc failed", VA_LSTR("function", c->fn),
                    VA_LINT("attempts", c->attempt + 1), VA_LSTR("err", va_strerror(err)),
                    VA_LSTR("detail", c->errbuf));
    else if (err == VA_ETOOBIG)
        va_log_warn(r->log, SB_MOD, "rpc response too big", VA_LSTR("function", c->fn),
                    VA_LINT("status", status), VA_LINT("limit", r->cfg.max_response_bytes));
    else if (!err && status >= 400)
        va_log_warn(r->log, SB_MOD, "rpc http error", VA_LSTR("function", c->fn),
                    VA_LINT("status", status), VA_LINT("attempts", c->attempt + 1));
    else if (!err)
        va_log_debug(r->log, SB_MOD, "rpc done", VA_LSTR("function", c->fn),
                     VA_LINT("status", status), VA_LINT("attempts", c->attempt + 1));
    c->done(c->ud, err, status, err ? NULL : c->resp.data, err ? 0 : c->resp.len);
    va_buf_deinit(&c->resp);
    free(c->body);
    c->body = NULL;
    uv_close((uv_handle_t *)&c->backoff, sb_call_closed);
}

static void sb_on_backoff(uv_timer_t *t)
{
    struct sb_call *c = t->data;
    struct sb_rpc *r = c->r;
    if (r->closing)
        return;
    sb_enter(r);
    CURLMcode mc = curl_multi_add_handle(r->multi, c->easy);
    if (mc) {
        snprintf(c->errbuf, sizeof(c->errbuf), "%s", curl_multi_strerror(mc));
        sb_call_finish(r, c, VA_EPROTO, 0);
    } else {
        c->in_multi = true;
    }
    sb_leave(r);
}

/* One attempt ended (the easy handle is out of the multi): retry or finish. */
static void sb_attempt_done(struct sb_rpc *r, struct sb_call *c, CURLcode res)
{
    long status = 0;
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    int err = sb_map_curl(c, res);
    bool transient = err == UV_ETIMEDOUT || err == UV_ECONNREFUSED || err == UV_EAI_NONAME ||
                     err == UV_ECONNRESET || (!err && sb_status_transient(status));
    if (transient)
        sb_breaker_fail(r, c, err, status);
    else if (!err || err == VA_ETOOBIG)
        sb_breaker_ok(r);

    if (transient && c->idempotent && c->attempt < SB_MAX_RETRIES && !r->open) {
        uint64_t delay = (uint64_t)r->cfg.retry_backoff_ms << c->attempt;
        va_log_info(r->log, SB_MOD, "rpc retry", VA_LSTR("function", c->fn),
                    VA_LINT("attempt", c->attempt + 1), VA_LINT("status", status),
                    VA_LSTR("err", err ? va_strerror(err) : "http"), VA_LINT("delay_ms", delay));
        c->attempt++;
        va_buf_reset(&c->resp);
        c->too_big = false;
        c->errbuf[0] = '\0';
        uv_timer_start(&c->backoff, sb_on_backoff, delay, 0);
        return;
    }
    if (err && err != VA_ETOOBIG)
        status = 0;
    sb_call_finish(r, c, err, status);
}

/* ---------- curl multi <-> uv ---------- */

/* A failed socket_action leaves the multi in an unknown state: every transfer in it fails
 * and a fresh multi takes its place (calls waiting on a backoff survive). */
static int sb_multi_new(struct sb_rpc *r);

static void sb_rebuild(struct sb_rpc *r, CURLMcode mc)
{
    va_log_error(r->log, SB_MOD, "curl multi failed, rebuilding",
                 VA_LSTR("error", curl_multi_strerror(mc)));
    /* detach everything from the old multi first, so that a done() starting a new call
     * below lands in the new one */
    for (struct sb_call *c = r->calls; c; c = c->next) {
        if (!c->in_multi)
            continue; /* on a backoff timer: re-adds itself to the new multi */
        curl_multi_remove_handle(r->multi, c->easy);
        c->in_multi = false;
        c->doomed = true;
    }
    curl_multi_cleanup(r->multi);
    r->multi = NULL;
    while (r->polls)
        sb_poll_release(r, r->polls);
    uv_timer_stop(&r->timer);
    if (sb_multi_new(r))
        abort(); /* out of memory: as va_xmalloc does */
    struct sb_call *c = r->calls;
    while (c && !r->closing) {
        struct sb_call *next = c->next; /* new calls go to the head, never after c */
        if (c->doomed) {
            snprintf(c->errbuf, sizeof(c->errbuf), "%s", curl_multi_strerror(mc));
            sb_call_finish(r, c, VA_EPROTO, 0);
        }
        c = next;
    }
    /* a close requested meanwhile cancels the rest in sb_teardown */
}

static void sb_socket_action(struct sb_rpc *r, curl_socket_t fd, int flags)
{
    int running = 0;
    CURLMcode mc = curl_multi_socket_action(r->multi, fd, flags, &running);
    if (mc) {
        sb_rebuild(r, mc);
        return;
    }
    /* Always drain, whatever `running` says: a transfer ending on a timeout is only
     * visible here. */
    sb_drain(r);
}

static void sb_drain(struct sb_rpc *r)
{
    CURLMsg *msg;
    int left;
    while (!r->closing && r->multi && (msg = curl_multi_info_read(r->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        /* the message dies with the easy handle: take both first */
        CURL *easy = msg->easy_handle;
        CURLcode res = msg->data.result;
        char *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        struct sb_call *c = (struct sb_call *)priv;
        curl_multi_remove_handle(r->multi, easy);
        c->in_multi = false;
        sb_attempt_done(r, c, res);
    }
}

static void sb_on_poll(uv_poll_t *h, int status, int events)
{
    struct sb_poll *p = h->data;
    struct sb_rpc *r = p->r;
    if (r->closing)
        return;
    int flags = 0;
    if (status < 0) {
        flags = CURL_CSELECT_ERR; /* libuv already stopped this poll */
    } else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    sb_enter(r);
    sb_socket_action(r, p->fd, flags);
    sb_leave(r);
}

static void sb_on_timer(uv_timer_t *t)
{
    struct sb_rpc *r = t->data;
    if (r->closing)
        return;
    sb_enter(r);
    sb_socket_action(r, CURL_SOCKET_TIMEOUT, 0);
    sb_leave(r);
}

/* CURLMOPT_SOCKETFUNCTION: only uv calls here, plus curl_multi_assign, which curl allows. */
static int sb_on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    struct sb_rpc *r = userp;
    struct sb_poll *p = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (p) {
            curl_multi_assign(r->multi, fd, NULL);
            sb_poll_release(r, p);
        }
        return 0;
    }
    if (!p) {
        p = va_xcalloc(1, sizeof(*p));
        p->r = r;
        p->fd = fd;
        int err = uv_poll_init_socket(r->loop, &p->poll, fd);
        if (err) {
            va_log_error(r->log, SB_MOD, "uv_poll_init_socket failed",
                         VA_LSTR("err", va_strerror(err)));
            free(p);
            return -1; /* curl fails that transfer */
        }
        p->poll.data = p;
        r->handles++;
        VA_LIST_PUSH(r->polls, p, prev, next);
        curl_multi_assign(r->multi, fd, p);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&p->poll, events, sb_on_poll);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: socket_action is refused from here, so even 0 ms goes through
 * the uv timer. */
static int sb_on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct sb_rpc *r = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&r->timer);
    else
        uv_timer_start(&r->timer, sb_on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static int sb_multi_new(struct sb_rpc *r)
{
    r->multi = curl_multi_init();
    if (!r->multi)
        return UV_ENOMEM;
    curl_multi_setopt(r->multi, CURLMOPT_SOCKETFUNCTION, sb_on_socket);
    curl_multi_setopt(r->multi, CURLMOPT_SOCKETDATA, r);
    curl_multi_setopt(r->multi, CURLMOPT_TIMERFUNCTION, sb_on_curl_timer);
    curl_multi_setopt(r->multi, CURLMOPT_TIMERDATA, r);
    return 0;
}

/* ---------- teardown ---------- */

static void sb_teardown(struct sb_rpc *r)
{
    r->torn_down = true;
    sb_enter(r); /* a done() calling back into us must not recurse into teardown */
    while (r->calls) {
        struct sb_call *c = r->calls;
        if (c->in_multi) {
            curl_multi_remove_handle(r->multi, c->easy);
            c->in_multi = false;
        }
        uv_timer_stop(&c->backoff);
        c->errbuf[0] = '\0';
        sb_call_finish(r, c, UV_ECANCELED, 0);
    }
    sb_leave(r);
    /* may still report CURL_POLL_REMOVE for cached connections: the socket callback
     * stays valid until it returns */
    curl_multi_cleanup(r->multi);
    r->multi = NULL;
    while (r->polls)
        sb_poll_release(r, r->polls); /* sockets curl closed without telling */
    uv_close((uv_handle_t *)&r->timer, sb_handle_closed);
}

/* ---------- public ---------- */

int sb_rpc_open(struct sb_rpc **out, uv_loop_t *loop, struct va_log *log,
                const struct sb_rpc_cfg *cfg)
{
    if (!cfg->base_url || !cfg->service_role_key || !cfg->service_role_key[0])
        return VA_EINVAL;
    if (strncmp(cfg->base_url, "http://", 7) && strncmp(cfg->base_url, "https://", 8))
        return VA_EINVAL;
    int err;
    struct sb_rpc *r = va_xcalloc(1, sizeof(*r));
    r->loop = loop;
    r->log = log;
    r->cfg = *cfg;
    if (!r->cfg.timeout_ms)
        r->cfg.timeout_ms = 5000;
    if (!r->cfg.connect_timeout_ms)
        r->cfg.connect_timeout_ms = 2000;
    if (!r->cfg.max_response_bytes)
        r->cfg.max_response_bytes = 64 * 1024;
    if (!r->cfg.max_in_flight)
        r->cfg.max_in_flight = 64;
    if (!r->cfg.breaker_threshold)
        r->cfg.breaker_threshold = 5;
    if (!r->cfg.breaker_cooldown_ms)
        r->cfg.breaker_cooldown_ms = 10000;
    if (!r->cfg.retry_backoff_ms)
        r->cfg.retry_backoff_ms = 100;
    r->cfg.base_url = NULL;
    r->cfg.service_role_key = NULL;

    size_t n = strlen(cfg->base_url);
    while (n && cfg->base_url[n - 1] == '/')
        n--;
    r->base_url = va_xstrndup(cfg->base_url, n);
    va_log_add_secret(log, cfg->service_role_key);

    /* built once, shared by every easy handle; the key lives only here */
    struct va_buf h;
    va_buf_init(&h, 64 * 1024);
    const char *fixed[] = {"Content-Type: application/json", "Accept: application/json",
                           "Expect:"}; /* no 100-continue round trip on bodies past 1 KiB */
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        r->headers = curl_slist_append(r->headers, fixed[i]);
    const char *prefix[] = {"apikey: ", "Authorization: Bearer "};
    for (size_t i = 0; i < 2; i++) {
        va_buf_reset(&h);
        err = va_buf_append_str(&h, prefix[i]);
        if (!err)
            err = va_buf_append_str(&h, cfg->service_role_key);
        struct curl_slist *s = err ? NULL : curl_slist_append(r->headers, h.data);
        if (!s) {
            err = err ? err : UV_ENOMEM;
            memset(h.data, 0, h.cap);
            va_buf_deinit(&h);
            goto fail_headers;
        }
        r->headers = s;
    }
    memset(h.data, 0, h.cap); /* no stray copy of the key */
    va_buf_deinit(&h);

    err = uv_timer_init(loop, &r->timer);
    if (err)
        goto fail_headers;
    r->timer.data = r;
    r->handles = 1;
    err = sb_multi_new(r);
    if (err)
        goto fail_timer;
    *out = r;
    return 0;

fail_timer:
    /* the timer is closed and r freed from its close callback */
    r->torn_down = true;
    uv_close((uv_handle_t *)&r->timer, sb_handle_closed);
    return err;
fail_headers:
    curl_slist_free_all(r->headers);
    free(r->base_url);
    free(r);
    return err;
}

static bool sb_fn_valid(const char *fn)
{
    size_t n = 0;
    for (; fn[n]; n++) {
        char ch = fn[n];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_';
        if (!ok || n >= SB_FN_MAX)
            return false;
    }
    return n > 0;
}

/* Starts one POST of body to url; label names it in logs. See sb_rpc_call(). */
static int sb_start(struct sb_rpc *r, const char *url, const char *label, const char *json_args,
                    size_t len, bool idempotent, sb_rpc_done_fn done, void *ud)
{
    if (r->in_flight >= r->cfg.max_in_flight)
        return VA_EFULL;
    bool probe;
    int err = sb_breaker_admit(r, &probe);
    if (err)
        return err;

    struct sb_call *c = va_xcalloc(1, sizeof(*c));
    c->r = r;
    c->done = done;
    c->ud = ud;
    c->idempotent = idempotent;
    c->probe = probe;
    snprintf(c->fn, sizeof(c->fn), "%s", label);
    if (!json_args || !len) {
        json_args = "{}";
        len = 2;
    }
    c->body = va_xmalloc(len);
    memcpy(c->body, json_args, len);
    c->body_len = len;
    va_buf_init(&c->resp, r->cfg.max_response_bytes);

    c->easy = curl_easy_init();
    if (!c->easy) {
        err = UV_ENOMEM;
        goto fail;
    }
    CURL *e = c->easy;
    CURLcode res = CURLE_OK;
    res |= curl_easy_setopt(e, CURLOPT_URL, url); /* copied by curl */
    res |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    res |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    res |= curl_easy_setopt(e, CURLOPT_POST, 1L);
    res |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
    res |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
    res |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sb_on_write);
    res |= curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    res |= curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    res |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    res |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)r->cfg.timeout_ms);
    res |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)r->cfg.connect_timeout_ms);
    res |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    res |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    res |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    if (res) {
        err = VA_EINVAL;
        goto fail;
    }
    err = uv_timer_init(r->loop, &c->backoff);
    if (err)
        goto fail;
    c->backoff.data = c;
    r->handles++;
    /* from here on the call is freed through its timer's close callback */
    VA_LIST_PUSH(r->calls, c, prev, next);
    r->in_flight++;

    CURLMcode mc = curl_multi_add_handle(r->multi, e);
    if (mc) {
        /* done() must not run from inside this call: unwind without it */
        c->done = NULL;
        va_log_error(r->log, SB_MOD, "curl_multi_add_handle failed",
                     VA_LSTR("error", curl_multi_strerror(mc)));
        VA_LIST_REMOVE(r->calls, c, prev, next);
        r->in_flight--;
        if (probe)
            r->probing = false;
        curl_easy_cleanup(c->easy);
        va_buf_deinit(&c->resp);
        free(c->body);
        uv_close((uv_handle_t *)&c->backoff, sb_call_closed);
        return VA_EPROTO;
    }
    c->in_multi = true;
    return 0;

fail:
    if (probe)
        r->probing = false;
    if (c->easy)
        curl_easy_cleanup(c->easy);
    va_buf_deinit(&c->resp);
    free(c->body);
    free(c);
    return err;
}

int sb_rpc_call(struct sb_rpc *r, const char *function, const char *json_args, size_t len,
                bool idempotent, sb_rpc_done_fn done, void *ud)
{
    if (r->closing)
        return VA_ECLOSED;
    if (!function || !done || !sb_fn_valid(function))
        return VA_EINVAL;
    char url[4096];
    int n = snprintf(url, sizeof(url), "%s/rest/v1/rpc/%s", r->base_url, function);
    if (n < 0 || (size_t)n >= sizeof(url))
        return VA_EINVAL;
    return sb_start(r, url, function, json_args, len, idempotent, done, ud);
}

int sb_rpc_post(struct sb_rpc *r, const char *label, const char *json, size_t len,
                sb_rpc_done_fn done, void *ud)
{
    if (r->closing)
        return VA_ECLOSED;
    if (!label || !done)
        return VA_EINVAL;
    return sb_start(r, r->base_url, label, json, len, false, done, ud);
}

bool sb_rpc_healthy(const struct sb_rpc *r, const char **why)
{
    if (!r->open)
        return true;
    if (why)
        *why = r->why;
    return false;
}

size_t sb_rpc_in_flight(const struct sb_rpc *r)
{
    return r->in_flight;
}

void sb_rpc_close(struct sb_rpc *r, void (*on_closed)(void *ud), void *ud)
{
    if (r->closing)
        return;
    r->closing = true;
    r->on_closed = on_closed;
    r->closed_ud = ud;
    if (!r->depth)
        sb_teardown(r);
}
