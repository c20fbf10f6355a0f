/* src/main.c: voice-agent entry point: configuration, the loop, signals, the drain. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <uv.h>

#include "call/call.h"
#include "call/event.h"
#include "call/rtlink.h"
#include "core/config.h"
#include "core/ctx.h"
#include "core/err.h"
#include "core/log.h"
#include "http/probe.h"
#include "http/routes.h"
#include "http/server.h"
#include "http/ws.h"
#include "mcp/registry.h"
#include "mcp/server.h"
#include "mcp/tools.h"
#include "realtime/client.h"
#include "supabase/events.h"
#include "supabase/rpc.h"
#include "twilio/stream.h"

#define MAIN_RL_SLOTS 4096
#define MAIN_DRAIN_POLL_MS 50

#define MAIN_MAX_ORIGINS 16

/* --healthcheck: the whole probe, as a container's HEALTHCHECK expects an answer fast */
#define MAIN_HEALTHCHECK_TIMEOUT_MS 2000

struct main_state {
    struct va_ctx ctx;
    char origin_text[1024];
    char *origins[MAIN_MAX_ORIGINS];
    struct rt_breaker breaker;
    struct mcp_registry registry;
    struct mcp_server_info mcp_info;
    uv_signal_t sigterm, sigint;
    uv_timer_t drain_poll, drain_deadline;
    /* before each poll: the turn that just ended, less its time in epoll (libuv's idle
     * time), goes to the loop-turn histogram */
    uv_prepare_t turn;
    uint64_t turn_t, turn_idle;
    bool timers_open;
    int exit_code;
};

static void main_usage(FILE *out)
{
    fputs("usage: voice-agent [--env-file PATH] [--healthcheck] [--version]\n"
          "                   [--print-config-table] [--print-env-example]\n"
          "Reads its configuration from the environment and from PATH (default .env,\n"
          "optional); the environment wins. See README.md for every variable.\n"
          "--healthcheck: GET /health from the daemon this configuration describes;\n"
          "exit 0 on 200 within 2 s, else 1 (a container's HEALTHCHECK).\n",
          out);
}

static void main_on_closed_handle(uv_handle_t *h)
{
    (void)h;
}

static void main_on_http_closed(void *ud)
{
    struct va_ctx *ctx = ud;
    ctx->http = NULL;
}

static void main_on_mcp_closed(void *ud)
{
    struct va_ctx *ctx = ud;
    ctx->mcp = NULL;
}

static void main_on_events_closed(void *ud)
{
    struct va_ctx *ctx = ud;
    ctx->events = NULL;
}

/* Calls, their Realtime links and the lws context, each closing asynchronously. */
static void main_close_services(struct va_ctx *ctx)
{
    /* Twilio plays the <Say> after </Connect> to callers still on the line */
    tw_hub_close_all(ctx->twilio, VA_WS_GOING_AWAY, "server shutting down");
    call_rtlink_close(ctx->rtlink);
    if (ctx->lws)
        rt_lws_close(ctx->lws, NULL, NULL);
    if (ctx->mcp)
        mcp_server_close(ctx->mcp, main_on_mcp_closed, ctx);
    if (ctx->rpc)
        sb_rpc_close(ctx->rpc, NULL, NULL);
    /* after the calls: their call.ended events are spooled first */
    if (ctx->events)
        sb_events_close(ctx->events, main_on_events_closed, ctx);
}

/* Everything has finished or the deadline passed: close every handle so uv_run returns. */
static void main_stop(struct main_state *m)
{
    struct va_ctx *ctx = &m->ctx;
    if (ctx->state == VA_STOPPING)
        return;
    ctx->state = VA_STOPPING;
    va_log_info(ctx->log, "main", "stopping",
                VA_LINT("busy", ctx->http ? va_http_server_busy(ctx->http) : 0),
                VA_LINT("activeCalls", ctx->active_calls));
    if (ctx->http)
        va_http_server_close(ctx->http);
    main_close_services(ctx);
    uv_close((uv_handle_t *)&m->sigterm, main_on_closed_handle);
    uv_close((uv_handle_t *)&m->sigint, main_on_closed_handle);
    uv_close((uv_handle_t *)&m->drain_poll, main_on_closed_handle);
    uv_close((uv_handle_t *)&m->drain_deadline, main_on_closed_handle);
    uv_close((uv_handle_t *)&m->turn, main_on_closed_handle);
}

static void main_on_turn(uv_prepare_t *h)
{
    struct main_state *m = h->data;
    uint64_t now = uv_hrtime();
    uint64_t idle = uv_metrics_idle_time(h->loop);
    if (m->turn_t && now - m->turn_t >= idle - m->turn_idle)
        va_metrics_observe(&m->ctx.metrics, VA_H_LOOP_TURN,
                           (double)((now - m->turn_t) - (idle - m->turn_idle)) / 1e9);
    m->turn_t = now;
    m->turn_idle = idle;
}

static bool main_work_left(const struct main_state *m)
{
    return m->ctx.active_calls > 0 || (m->ctx.http && va_http_server_busy(m->ctx.http) > 0) ||
           (m->ctx.mcp && mcp_server_busy(m->ctx.mcp) > 0) ||
           (m->ctx.events && sb_events_pending(m->ctx.events) > 0);
}

static void main_on_drain_poll(uv_timer_t *t)
{
    struct main_state *m = t->data;
    if (!main_work_left(m))
        main_stop(m);
}

static void main_on_drain_deadline(uv_timer_t *t)
{
    struct main_state *m = t->data;
    va_log_warn(m->ctx.log, "main", "drain deadline reached",
                VA_LINT("timeoutS", m->ctx.cfg->drain_timeout_s),
                VA_LINT("activeCalls", m->ctx.active_calls),
                VA_LINT("busy", m->ctx.http ? va_http_server_busy(m->ctx.http) : 0));
    main_stop(m);
}

static void main_on_signal(uv_signal_t *s, int signum)
{
    struct main_state *m = s->data;
    struct va_ctx *ctx = &m->ctx;
    if (ctx->state != VA_RUNNING) {
        va_log_warn(ctx->log, "main", "second signal: exiting now", VA_LINT("signal", signum));
        _exit(1);
    }
    ctx->state = VA_DRAINING;
    va_log_info(ctx->log, "main", "draining", VA_LINT("signal", signum),
                VA_LINT("timeoutS", ctx->cfg->drain_timeout_s));
    if (ctx->http)
        va_http_server_drain(ctx->http);
    if (ctx->mcp)
        mcp_server_drain(ctx->mcp);
    if (!main_work_left(m)) {
        main_stop(m);
        return;
    }
    uv_timer_start(&m->drain_poll, main_on_drain_poll, MAIN_DRAIN_POLL_MS, MAIN_DRAIN_POLL_MS);
    uv_timer_start(&m->drain_deadline, main_on_drain_deadline,
                   (uint64_t)ctx->cfg->drain_timeout_s * 1000, 0);
}

/* Only logs what is left: closing handles we did not create (lws's) would abort. */
static void main_walk_leftover(uv_handle_t *h, void *arg)
{
    struct va_log *log = arg;
    va_log_error(log, "main", "handle left open at exit",
                 VA_LSTR("type", uv_handle_type_name(h->type)));
}

/* MCP_ALLOWED_ORIGINS: "a, b" into out[] (pointing into text); returns the count. */
static size_t main_split_origins(const char *list, char *text, char **out, size_t max)
{
    size_t n = 0;
    if (!list)
        return 0;
    snprintf(text, 1024, "%s", list);
    for (char *save = NULL, *tok = strtok_r(text, ", ", &save); tok && n < max;
         tok = strtok_r(NULL, ", ", &save))
        out[n++] = tok;
    return n;
}

/* After uv_run has returned: what outlives the loop's handles. */
static void main_free_ctx(struct va_ctx *ctx)
{
    if (ctx->lws)
        rt_lws_free(ctx->lws);
    call_rtlink_free(ctx->rtlink);
    call_shared_free(ctx->calls);
    mcp_tools_free(ctx->tools);
    if (ctx->registry)
        mcp_registry_deinit(ctx->registry);
    tw_hub_free(ctx->twilio);
    va_rl_deinit(&ctx->answer_rl);
    cJSON_Delete(ctx->event_schema);
}

/* Call events: on when storage is enabled and Supabase is configured. Without the spool
 * there is no promise to keep, so a spool that cannot be opened turns events off (logged,
 * /ready degraded). */
static void main_open_events(struct va_ctx *ctx, uv_loop_t *loop)
{
    const struct va_cfg *cfg = ctx->cfg;
    ctx->event_schema = cJSON_Parse(call_event_schema_json);
    if (!cfg->storage_enabled || !cfg->supabase_service_role_key ||
        (!cfg->call_events_url && !cfg->supabase_url))
        return;
    char url[2048];
    if (cfg->call_events_url)
        snprintf(url, sizeof(url), "%s", cfg->call_events_url);
    else
        snprintf(url, sizeof(url), "%s%sfunctions/v1/call-webhook", cfg->supabase_url,
                 cfg->supabase_url[strlen(cfg->supabase_url) - 1] == '/' ? "" : "/");
    struct sb_events_cfg ec = {
        .url = url,
        .service_role_key = cfg->supabase_service_role_key,
        .spool_dir = cfg->call_events_spool_dir,
        .spool_max_bytes = (uint64_t)cfg->call_events_spool_max_mb << 20,
        .retry_base_ms = cfg->call_events_retry_base_ms,
        .retry_cap_ms = cfg->call_events_retry_cap_ms,
        .timeout_ms = cfg->call_events_timeout_ms,
    };
    if (sb_events_open(&ctx->events, loop, ctx->log, &ec))
        ctx->events = NULL; /* logged by sb_events_open() */
}

static int main_run(const struct va_cfg *cfg, struct va_log *log)
{
    struct main_state m;
    memset(&m, 0, sizeof(m));
    uv_loop_t loop;
    int err = uv_loop_init(&loop);
    if (err)
        return err;
    uv_loop_configure(&loop, UV_METRICS_IDLE_TIME);
    struct va_ctx *ctx = &m.ctx;
    ctx->loop = &loop;
    ctx->cfg = cfg;
    ctx->log = log;
    ctx->state = VA_RUNNING;
    ctx->start_ms = uv_now(&loop);
    uv_timeval64_t tv0;
    uv_gettimeofday(&tv0);
    ctx->start_wall_s = (double)tv0.tv_sec + (double)tv0.tv_usec / 1e6;
    err =
        va_rl_init(&ctx->answer_rl, cfg->rate_limit_per_min, cfg->rate_limit_burst, MAIN_RL_SLOTS);
    if (err) {
        uv_loop_close(&loop);
        return err;
    }

    ctx->twilio = tw_hub_new(ctx);
    ctx->calls = call_shared_new(cfg->realtime_max_message_bytes);
    rt_breaker_init(&m.breaker, cfg->breaker_threshold, cfg->breaker_cooldown_ms);
    ctx->breaker = &m.breaker;
    /* the tools: one registry for MCP clients and the model */
    mcp_registry_init(&m.registry, 16);
    ctx->registry = &m.registry;
    if (cfg->supabase_url && cfg->supabase_service_role_key) {
        /* three attempts of 2 s fit in a tool's 8 s timeout */
        struct sb_rpc_cfg scfg = {.base_url = cfg->supabase_url,
                                  .service_role_key = cfg->supabase_service_role_key,
                                  .timeout_ms = 2000,
                                  .connect_timeout_ms = 1000};
        err = sb_rpc_open(&ctx->rpc, &loop, log, &scfg);
        if (err)
            va_log_error(log, "main", "supabase client unavailable: tools will fail",
                         VA_LSTR("reason", va_strerror(err)));
    }
    ctx->tools = mcp_tools_register(ctx->registry, ctx->rpc, log);
    main_open_events(ctx, &loop);
    if (cfg->mcp_enabled) {
        struct mcp_server_cfg mc;
        mcp_server_cfg_defaults(&mc);
        m.mcp_info = (struct mcp_server_info){.name = "voice-agent", .version = VA_VERSION};
        mc.host = cfg->mcp_host;
        mc.port = cfg->mcp_port;
        mc.auth_token = cfg->mcp_auth_token;
        mc.info = &m.mcp_info;
        mc.allowed_origins = (const char *const *)m.origins;
        mc.norigins = main_split_origins(cfg->mcp_allowed_origins, m.origin_text, m.origins,
                                         MAIN_MAX_ORIGINS);
        err = mcp_server_open(&ctx->mcp, &loop, log, &mc, ctx->registry);
        if (err)
            ctx->mcp = NULL; /* logged by the server; /ready lists it as degraded */
        else
            va_log_info(log, "main", "mcp listening", VA_LSTR("host", cfg->mcp_host),
                        VA_LINT("port", mcp_server_port(ctx->mcp)),
                        VA_LBOOL("auth", cfg->mcp_auth_token != NULL));
    }
    if (!cfg->audio_echo) {
        err = rt_lws_open(&ctx->lws, &loop, log, cfg->realtime_ca_file);
        if (err)
            va_log_error(log, "main", "realtime client unavailable: calls will be refused",
                         VA_LSTR("reason", va_strerror(err)));
        else
            ctx->rtlink = call_rtlink_new(ctx);
    }
    struct va_http_server_cfg hcfg = {
        .host = cfg->host,
        .port = cfg->port,
        .max_connections = cfg->http_max_connections,
        .max_header_bytes = cfg->http_max_header_bytes,
        .max_body_bytes = cfg->http_max_body_bytes,
        .request_timeout_ms = cfg->http_request_timeout_ms,
        .idle_timeout_ms = cfg->http_idle_timeout_ms,
        .trust_proxy = cfg->trust_proxy,
        .trust_proxy_len = cfg->trust_proxy_len,
    };
    struct va_http_server_cb hcb = {.on_request = va_routes_handle,
                                    .on_closed = main_on_http_closed};
    err = va_http_server_open(&ctx->http, &loop, log, &hcfg, &hcb, ctx);
    if (err) {
        va_log_error(log, "main", "cannot listen", VA_LSTR("host", cfg->host),
                     VA_LINT("port", cfg->port), VA_LSTR("reason", uv_strerror(err)));
        main_close_services(ctx);
        uv_run(&loop, UV_RUN_DEFAULT); /* lets the failed listener close */
        main_free_ctx(ctx);
        uv_loop_close(&loop);
        return err;
    }
    uv_signal_init(&loop, &m.sigterm);
    uv_signal_init(&loop, &m.sigint);
    uv_timer_init(&loop, &m.drain_poll);
    uv_timer_init(&loop, &m.drain_deadline);
    uv_prepare_init(&loop, &m.turn);
    m.sigterm.data = m.sigint.data = m.drain_poll.data = m.drain_deadline.data = m.turn.data = &m;
    uv_prepare_start(&m.turn, main_on_turn);
    uv_signal_start(&m.sigterm, main_on_signal, SIGTERM);
    uv_signal_start(&m.sigint, main_on_signal, SIGINT);

    va_log_info(log, "main", "listening", VA_LSTR("host", cfg->host),
                VA_LINT("port", va_http_server_port(ctx->http)), VA_LSTR("version", VA_VERSION),
                VA_LBOOL("enabled", cfg->enabled), VA_LBOOL("duplex", cfg->duplex_enabled),
                VA_LBOOL("mcp", cfg->mcp_enabled), VA_LBOOL("storage", cfg->storage_enabled),
                VA_LBOOL("signatures", cfg->twilio_auth_token != NULL));
    va_log_debug(
        log, "config", "effective configuration", VA_LSTR("realtimeUrl", cfg->openai_realtime_url),
        VA_LSTR("model", cfg->openai_realtime_model), VA_LSTR("voice", cfg->openai_realtime_voice),
        VA_LSTR("publicWsUrl", cfg->public_ws_url), VA_LSTR("publicBaseUrl", cfg->public_base_url),
        VA_LINT("maxCalls", cfg->max_calls), VA_LINT("drainTimeoutS", cfg->drain_timeout_s),
        VA_LINT("rateLimitPerMin", cfg->rate_limit_per_min),
        VA_LINT("rateLimitBurst", cfg->rate_limit_burst),
        VA_LINT("trustedProxyRanges", cfg->trust_proxy_len));
    if (!cfg->twilio_auth_token)
        va_log_warn(log, "main", "TWILIO_AUTH_TOKEN unset: Twilio signatures are not checked");

    uv_run(&loop, UV_RUN_DEFAULT);

    main_free_ctx(ctx);
    err = uv_loop_close(&loop);
    if (err) {
        uv_walk(&loop, main_walk_leftover, log);
        va_log_error(log, "main", "loop not empty at exit", VA_LSTR("reason", uv_strerror(err)));
        return err;
    }
    va_log_info(log, "main", "stopped");
    return 0;
}

#define MAIN_INSTRUCTIONS_MAX (64 * 1024)

/* OPENAI_INSTRUCTIONS_FILE replaces OPENAI_INSTRUCTIONS; read once, before the loop. */
static int main_read_instructions(struct va_cfg *cfg, char *msg, size_t msglen)
{
    FILE *f = fopen(cfg->openai_instructions_file, "rb");
    if (!f) {
        snprintf(msg, msglen, "OPENAI_INSTRUCTIONS_FILE: cannot open %s: %s",
                 cfg->openai_instructions_file, strerror(errno));
        return VA_EINVAL;
    }
    char *text = va_xmalloc(MAIN_INSTRUCTIONS_MAX + 1);
    size_t n = fread(text, 1, MAIN_INSTRUCTIONS_MAX + 1, f);
    bool bad = ferror(f) || n > MAIN_INSTRUCTIONS_MAX || memchr(text, '\0', n);
    fclose(f);
    if (bad || n == 0) {
        snprintf(msg, msglen, "OPENAI_INSTRUCTIONS_FILE: %s must be 1..%d bytes of text",
                 cfg->openai_instructions_file, MAIN_INSTRUCTIONS_MAX);
        free(text);
        return VA_EINVAL;
    }
    text[n] = '\0';
    free(cfg->openai_instructions);
    cfg->openai_instructions = text;
    return 0;
}

/* --healthcheck: GET /health from HOST:PORT as this configuration has them (the wildcard
 * as loopback); one line on stdout, 0 on 200, 1 otherwise (2 means "reserved" to Docker). */
static int main_healthcheck(const struct va_cfg *cfg)
{
    const char *host = va_http_probe_host(cfg->host);
    const char *lb = strchr(host, ':') ? "[" : "", *rb = *lb ? "]" : "";
    if (cfg->port == 0) {
        printf("healthcheck: PORT=0 (a port picked at start): nothing to probe\n");
        return 1;
    }
    int status = va_http_probe(host, cfg->port, "/health", MAIN_HEALTHCHECK_TIMEOUT_MS);
    if (status < 0) {
        printf("healthcheck: http://%s%s%s:%u/health: %s\n", lb, host, rb, (unsigned)cfg->port,
               va_strerror(status));
        return 1;
    }
    printf("healthcheck: http://%s%s%s:%u/health: %d\n", lb, host, rb, (unsigned)cfg->port, status);
    return status == 200 ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *env_file = ".env";
    bool healthcheck = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--env-file") == 0 && i + 1 < argc) {
            env_file = argv[++i];
        } else if (strcmp(argv[i], "--healthcheck") == 0) {
            healthcheck = true;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("voice-agent %s\n", VA_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--print-config-table") == 0) {
            return va_cfg_print_table(stdout) ? 1 : 0;
        } else if (strcmp(argv[i], "--print-env-example") == 0) {
            return va_cfg_print_example(stdout) ? 1 : 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            main_usage(stdout);
            return 0;
        } else {
            main_usage(stderr);
            return 2;
        }
    }

    /* libuv's plain writev to a dead peer would otherwise kill us */
    signal(SIGPIPE, SIG_IGN);

    struct va_log log;
    va_log_init(&log, STDOUT_FILENO, VA_LOG_INFO);
    struct va_env env;
    va_env_init(&env);
    char msg[512];
    int err = va_env_load_file(&env, env_file, msg, sizeof(msg));
    if (err) {
        va_log_error(&log, "config", "cannot read env file", VA_LSTR("file", env_file),
                     VA_LSTR("reason", err == VA_EINVAL ? msg : va_strerror(err)));
        va_env_deinit(&env);
        va_log_deinit(&log);
        return healthcheck ? 1 : 2;
    }
    struct va_cfg cfg;
    err = va_cfg_load(&cfg, va_env_lookup, &env, msg, sizeof(msg));
    va_env_deinit(&env);
    if (err) {
        va_log_error(&log, "config", "invalid configuration", VA_LSTR("reason", msg));
        va_log_deinit(&log);
        return healthcheck ? 1 : 2;
    }
    if (healthcheck) {
        err = main_healthcheck(&cfg);
        va_cfg_deinit(&cfg);
        va_log_deinit(&log);
        return err;
    }
    log.level = cfg.log_level;
    if (cfg.openai_instructions_file) {
        err = main_read_instructions(&cfg, msg, sizeof(msg));
        if (err) {
            va_log_error(&log, "config", "invalid configuration", VA_LSTR("reason", msg));
            va_cfg_deinit(&cfg);
            va_log_deinit(&log);
            return 2;
        }
    }
    const char *secrets[] = {cfg.openai_api_key, cfg.twilio_auth_token,
                             cfg.supabase_service_role_key, cfg.mcp_auth_token};
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        va_log_add_secret(&log, secrets[i]);

    curl_global_init(CURL_GLOBAL_DEFAULT);
    err = main_run(&cfg, &log);
    curl_global_cleanup(); /* after every curl handle, once uv_run has returned */
    va_cfg_deinit(&cfg);
    va_log_deinit(&log);
    return err ? 1 : 0;
}
