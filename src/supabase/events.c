/* src/supabase/events.c: the call-event spool and its delivery (see events.h).
 *
 * One item per event walks: SPOOLING (fs chain: open tmp, write, fsync, close, rename,
 * fsync dir) -> QUEUED -> SENDING -> delivered (UNLINK) | WAITING (backoff) -> QUEUED ...
 * | dead letter (append, fsync, UNLINK). Items stay in submission order in one list; one
 * timer wakes the earliest WAITING item. */
#include "supabase/events.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "supabase/rpc.h"

#define EV_MOD "events"
#define EV_ID_MAX 40
#define EV_NAME_MAX 96
#define EV_FAILING_AFTER 3 /* consecutive failed attempts before /ready says so */
#define EV_DEAD_LETTER "dead-letter.jsonl"
#define EV_BODY_EXCERPT 200

enum ev_state { EV_SPOOLING, EV_QUEUED, EV_SENDING, EV_WAITING, EV_FINISHING };

enum ev_step {
    EV_STEP_OPEN,
    EV_STEP_WRITE,
    EV_STEP_FSYNC,
    EV_STEP_CLOSE,
    EV_STEP_RENAME,
    EV_STEP_DIRSYNC,
    EV_STEP_DEAD_WRITE,
    EV_STEP_DEAD_SYNC,
    EV_STEP_UNLINK,
};

struct ev_item {
    struct ev_item *prev, *next;
    struct sb_events *ev;
    char id[EV_ID_MAX + 1];
    char name[EV_NAME_MAX];
    char *json;
    size_t len;
    enum ev_state state;
    enum ev_step step;
    bool durable; /* its file is in the spool */
    bool fs_busy; /* an fs request of this item is running */
    unsigned attempts;
    uint64_t due_ms; /* WAITING: when to try again */
    uv_fs_t fs;
    uv_file fd;
    size_t written;
    char *dead_line; /* the dead-letter record being appended */
    size_t dead_len;
};

struct sb_events {
    uv_loop_t *loop;
    struct va_log *log;
    struct sb_events_cfg cfg;
    char *dir;
    uv_file dir_fd;
    uv_file dead_fd;
    struct sb_rpc *rpc;
    struct ev_item *head, *tail; /* submission order */
    uv_timer_t retry;
    size_t in_flight;
    size_t fs_busy;
    uint32_t counter;
    uint64_t rng;
    uint32_t fails; /* consecutive failed attempts */
    long last_status;
    int last_err;
    bool spool_broken; /* the last spool write failed */
    bool near_full;    /* logged once per crossing of 80% */
    bool closing;
    bool rpc_closed;
    bool retry_closed;
    void (*on_closed)(void *ud);
    void *closed_ud;
    struct sb_events_stats st;
};

static void ev_pump(struct sb_events *ev);
static void ev_fs_next(struct ev_item *it);
static void ev_maybe_closed(struct sb_events *ev);
static void ev_on_retry(uv_timer_t *t);

/* ---------- items ---------- */

static struct ev_item *ev_item_new(struct sb_events *ev, const char *id, char *json, size_t len)
{
    struct ev_item *it = va_xcalloc(1, sizeof(*it));
    it->ev = ev;
    snprintf(it->id, sizeof(it->id), "%s", id);
    it->json = json;
    it->len = len;
    it->fd = -1;
    it->fs.data = it;
    it->prev = ev->tail;
    if (ev->tail)
        ev->tail->next = it;
    else
        ev->head = it;
    ev->tail = it;
    ev->st.pending++;
    return it;
}

static void ev_item_free(struct ev_item *it)
{
    struct sb_events *ev = it->ev;
    if (it->prev)
        it->prev->next = it->next;
    else
        ev->head = it->next;
    if (it->next)
        it->next->prev = it->prev;
    else
        ev->tail = it->prev;
    if (it->durable)
        ev->st.spool_bytes -= it->len;
    ev->st.pending--;
    free(it->dead_line);
    free(it->json);
    free(it);
}

static bool ev_id_ok(const char *id)
{
    size_t n = 0;
    for (; id[n]; n++) {
        char ch = id[n];
        if (n >= EV_ID_MAX || !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || ch == '-'))
            return false;
    }
    return n > 0;
}

static void ev_path(const struct sb_events *ev, const char *name, bool tmp, char *out, size_t cap)
{
    snprintf(out, cap, tmp ? "%s/.%s.tmp" : "%s/%s", ev->dir, name);
}

/* ---------- spool size ---------- */

static void ev_check_fill(struct sb_events *ev)
{
    uint64_t pct = ev->st.spool_bytes * 100 / ev->cfg.spool_max_bytes;
    if (!ev->near_full && pct >= 80) {
        ev->near_full = true;
        va_log_error(ev->log, EV_MOD, "event spool nearly full", VA_LINT("percent", pct),
                     VA_LINT("bytes", ev->st.spool_bytes),
                     VA_LINT("maxBytes", ev->cfg.spool_max_bytes),
                     VA_LINT("pending", ev->st.pending));
    } else if (ev->near_full && pct < 70) {
        ev->near_full = false;
        va_log_info(ev->log, EV_MOD, "event spool below 70% again", VA_LINT("percent", pct));
    }
}

/* ---------- the fs chain ---------- */

static void ev_fs_failed(struct ev_item *it, const char *what, int err)
{
    struct sb_events *ev = it->ev;
    if (it->fd >= 0) {
        uv_fs_t req;
        uv_fs_close(NULL, &req, it->fd, NULL); /* a close of a local file does not wait */
        uv_fs_req_cleanup(&req);
        it->fd = -1;
    }
    if (it->step <= EV_STEP_DIRSYNC) {
        it->durable = false;
        ev->st.spool_bytes -= it->len;
        ev->spool_broken = true;
        ev->st.spool_errors++;
        va_log_error(ev->log, EV_MOD, "event not spooled: kept in memory only",
                     VA_LSTR("eventId", it->id), VA_LSTR("step", what),
                     VA_LSTR("reason", uv_strerror(err)));
        it->state = EV_QUEUED;
        ev_pump(ev);
        return;
    }
    /* the dead letter or the removal failed: the event stays spooled, replayed next run */
    va_log_error(ev->log, EV_MOD, "spool file not updated", VA_LSTR("eventId", it->id),
                 VA_LSTR("step", what), VA_LSTR("reason", uv_strerror(err)));
    ev_item_free(it);
}

static void ev_on_fs(uv_fs_t *req)
{
    struct ev_item *it = req->data;
    struct sb_events *ev = it->ev;
    ssize_t res = req->result;
    uv_fs_req_cleanup(req);
    it->fs_busy = false;
    ev->fs_busy--;
    static const char *const names[] = {"open",   "write",     "fsync",       "close",
                                        "rename", "dir fsync", "dead letter", "dead letter fsync",
                                        "unlink"};
    if (res < 0 && !(it->step == EV_STEP_UNLINK && res == UV_ENOENT)) {
        ev_fs_failed(it, names[it->step], (int)res);
        ev_maybe_closed(ev);
        return;
    }
    switch (it->step) {
    case EV_STEP_OPEN:
        it->fd = (uv_file)res;
        it->step = EV_STEP_WRITE;
        break;
    case EV_STEP_WRITE:
        it->written += (size_t)res;
        if (it->written >= it->len)
            it->step = EV_STEP_FSYNC;
        break;
    case EV_STEP_FSYNC:
        it->step = EV_STEP_CLOSE;
        break;
    case EV_STEP_CLOSE:
        it->fd = -1;
        it->step = EV_STEP_RENAME;
        break;
    case EV_STEP_RENAME:
        it->step = EV_STEP_DIRSYNC;
        break;
    case EV_STEP_DIRSYNC:
        it->durable = true;
        ev->spool_broken = false;
        it->state = EV_QUEUED;
        ev_pump(ev);
        ev_maybe_closed(ev);
        return;
    case EV_STEP_DEAD_WRITE:
        it->step = EV_STEP_DEAD_SYNC;
        break;
    case EV_STEP_DEAD_SYNC:
        it->step = EV_STEP_UNLINK;
        break;
    case EV_STEP_UNLINK:
        ev_item_free(it);
        ev_maybe_closed(ev);
        return;
    }
    ev_fs_next(it);
}

/* Starts the request of it->step. */
static void ev_fs_next(struct ev_item *it)
{
    struct sb_events *ev = it->ev;
    char path[4096], tmp[4096];
    uv_buf_t b;
    int err = 0;
    it->fs_busy = true;
    ev->fs_busy++;
    switch (it->step) {
    case EV_STEP_OPEN:
        ev_path(ev, it->name, true, tmp, sizeof(tmp));
        err = uv_fs_open(ev->loop, &it->fs, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600,
                         ev_on_fs);
        break;
    case EV_STEP_WRITE:
        b = uv_buf_init(it->json + it->written, (unsigned)(it->len - it->written));
        err = uv_fs_write(ev->loop, &it->fs, it->fd, &b, 1, (int64_t)it->written, ev_on_fs);
        break;
    case EV_STEP_FSYNC:
        err = uv_fs_fsync(ev->loop, &it->fs, it->fd, ev_on_fs);
        break;
    case EV_STEP_CLOSE:
        err = uv_fs_close(ev->loop, &it->fs, it->fd, ev_on_fs);
        break;
    case EV_STEP_RENAME:
        ev_path(ev, it->name, true, tmp, sizeof(tmp));
        ev_path(ev, it->name, false, path, sizeof(path));
        err = uv_fs_rename(ev->loop, &it->fs, tmp, path, ev_on_fs);
        break;
    case EV_STEP_DIRSYNC:
        err = uv_fs_fsync(ev->loop, &it->fs, ev->dir_fd, ev_on_fs);
        break;
    case EV_STEP_DEAD_WRITE:
        b = uv_buf_init(it->dead_line, (unsigned)it->dead_len);
        err = uv_fs_write(ev->loop, &it->fs, ev->dead_fd, &b, 1, -1, ev_on_fs);
        break;
    case EV_STEP_DEAD_SYNC:
        err = uv_fs_fsync(ev->loop, &it->fs, ev->dead_fd, ev_on_fs);
        break;
    case EV_STEP_UNLINK:
        ev_path(ev, it->name, false, path, sizeof(path));
        err = uv_fs_unlink(ev->loop, &it->fs, path, ev_on_fs);
        break;
    }
    if (err) { /* not started: no callback */
        it->fs_busy = false;
        ev->fs_busy--;
        ev_fs_failed(it, "submit", err);
    }
}

/* ---------- delivery ---------- */

static uint64_t ev_rand(struct sb_events *ev)
{
    /* xorshift64*: jitter only, no secrecy needed */
    ev->rng ^= ev->rng >> 12;
    ev->rng ^= ev->rng << 25;
    ev->rng ^= ev->rng >> 27;
    return ev->rng * 2685821657736338717ULL;
}

/* Full backoff with jitter: base * 2^(attempts-1), capped, then a uniform draw from its
 * upper half so that many events failing together do not retry together. */
static uint64_t ev_backoff_ms(struct sb_events *ev, unsigned attempts)
{
    uint64_t d = ev->cfg.retry_base_ms;
    for (unsigned i = 1; i < attempts && d < ev->cfg.retry_cap_ms; i++)
        d *= 2;
    if (d > ev->cfg.retry_cap_ms)
        d = ev->cfg.retry_cap_ms;
    return d / 2 + ev_rand(ev) % (d / 2 + 1);
}

static void ev_arm_retry(struct sb_events *ev)
{
    uint64_t next = UINT64_MAX;
    for (struct ev_item *it = ev->head; it; it = it->next)
        if (it->state == EV_WAITING && it->due_ms < next)
            next = it->due_ms;
    if (next == UINT64_MAX || ev->closing) {
        uv_timer_stop(&ev->retry);
        return;
    }
    uint64_t now = uv_now(ev->loop);
    uv_timer_start(&ev->retry, ev_on_retry, next > now ? next - now : 0, 0);
}

static void ev_on_retry(uv_timer_t *t)
{
    struct sb_events *ev = t->data;
    uint64_t now = uv_now(ev->loop);
    for (struct ev_item *it = ev->head; it; it = it->next)
        if (it->state == EV_WAITING && it->due_ms <= now)
            it->state = EV_QUEUED;
    ev_pump(ev);
    ev_arm_retry(ev);
}

static void ev_wait(struct sb_events *ev, struct ev_item *it)
{
    it->state = EV_WAITING;
    it->due_ms = uv_now(ev->loop) + ev_backoff_ms(ev, it->attempts);
    ev_arm_retry(ev);
}

static void ev_finish(struct ev_item *it)
{
    it->state = EV_FINISHING;
    it->step = EV_STEP_UNLINK;
    if (!it->durable) {
        ev_item_free(it);
        return;
    }
    ev_fs_next(it);
}

static void ev_dead_letter(struct sb_events *ev, struct ev_item *it, long status, const char *body,
                           size_t body_len)
{
    ev->st.dead_lettered++;
    struct va_buf reason, line;
    va_buf_init(&reason, 512);
    va_buf_printf(&reason, "HTTP %ld: ", status);
    va_buf_append(&reason, body ? body : "",
                  body ? (body_len < EV_BODY_EXCERPT ? body_len : EV_BODY_EXCERPT) : 0);
    va_log_error(ev->log, EV_MOD, "event refused: moved to the dead letter file",
                 VA_LSTR("eventId", it->id), VA_LINT("status", status),
                 VA_LSTRN("reason", reason.data, reason.len));
    va_buf_init(&line, it->len + 1024);
    va_buf_append_str(&line, "{\"id\":");
    va_json_str(&line, it->id, strlen(it->id));
    va_buf_append_str(&line, ",\"reason\":");
    va_json_str(&line, reason.data, reason.len);
    va_buf_printf(&line, ",\"status\":%ld,\"event\":", status);
    va_buf_append(&line, it->json, it->len);
    va_buf_append_str(&line, "}\n");
    va_buf_deinit(&reason);
    if (ev->dead_fd < 0 || !it->durable) {
        va_buf_deinit(&line);
        ev_finish(it);
        return;
    }
    it->dead_line = line.data; /* ownership moves to the item */
    it->dead_len = line.len;
    it->state = EV_FINISHING;
    it->step = EV_STEP_DEAD_WRITE;
    ev_fs_next(it);
}

static void ev_on_done(void *ud, int err, long status, const char *body, size_t body_len)
{
    struct ev_item *it = ud;
    struct sb_events *ev = it->ev;
    ev->in_flight--;
    if (err == UV_ECANCELED || ev->closing) {
        it->state = EV_QUEUED; /* stays spooled for the next start */
        ev_maybe_closed(ev);
        return;
    }
    ev->last_status = status;
    ev->last_err = err;
    if (!err && status >= 200 && status < 300) {
        ev->fails = 0;
        ev->st.delivered++;
        va_log_debug(ev->log, EV_MOD, "event delivered", VA_LSTR("eventId", it->id),
                     VA_LINT("status", status), VA_LINT("attempts", it->attempts));
        ev_finish(it);
        ev_pump(ev);
        return;
    }
    ev->fails++;
    ev->st.failures++;
    bool keep = err || status == 408 || status == 429 || status >= 500 || status < 400 ||
                status == 401 || status == 403 || status == 404;
    if (!keep) {
        ev_dead_letter(ev, it, status, body, body_len);
        ev_pump(ev);
        return;
    }
    ev_wait(ev, it);
    uint64_t delay = it->due_ms - uv_now(ev->loop);
    if (status == 401 || status == 403 || status == 404) {
        va_log_error(ev->log, EV_MOD,
                     status == 404 ? "call-webhook not found: is the function deployed? retrying"
                                   : "call-webhook refused our key: check "
                                     "SUPABASE_SERVICE_ROLE_KEY; retrying",
                     VA_LSTR("eventId", it->id), VA_LINT("status", status),
                     VA_LINT("attempt", it->attempts), VA_LINT("retryMs", delay),
                     VA_LINT("pending", ev->st.pending));
    } else {
        va_log_warn(ev->log, EV_MOD, "event delivery failed, retrying", VA_LSTR("eventId", it->id),
                    VA_LINT("status", status),
                    VA_LSTR("reason", err ? va_strerror(err) : "HTTP status"),
                    VA_LINT("attempt", it->attempts), VA_LINT("retryMs", delay));
    }
    ev_pump(ev);
}

static void ev_send(struct sb_events *ev, struct ev_item *it)
{
    it->state = EV_SENDING;
    it->attempts++;
    ev->st.attempts++;
    ev->in_flight++;
    int err = sb_rpc_post(ev->rpc, "call-webhook", it->json, it->len, ev_on_done, it);
    if (err) { /* breaker open or client full: same as a failed attempt */
        ev->in_flight--;
        ev->fails++;
        ev->st.failures++;
        ev->last_err = err;
        ev->last_status = 0;
        ev_wait(ev, it);
    }
}

static void ev_pump(struct sb_events *ev)
{
    if (ev->closing)
        return;
    for (struct ev_item *it = ev->head; it && ev->in_flight < ev->cfg.max_in_flight; it = it->next)
        if (it->state == EV_QUEUED)
            ev_send(ev, it);
}

/* ---------- open: the spool and its replay ---------- */

/* Reads one spool file whole (startup only: the loop is not serving yet). */
static int ev_read_file(const char *path, uint64_t max, char **out, size_t *len)
{
    FILE *f = fopen(path, "rbe");
    if (!f)
        return VA_ENOTFOUND;
    struct va_buf b;
    va_buf_init(&b, max);
    char chunk[8192];
    size_t n;
    int err = 0;
    while (!err && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        err = va_buf_append(&b, chunk, n);
    fclose(f);
    if (err || b.len == 0) {
        va_buf_deinit(&b);
        return err ? err : VA_EPROTO;
    }
    *out = b.data;
    *len = b.len;
    return 0;
}

/* "<13 digits>-<6 digits>-<id>.json" -> id. */
static bool ev_name_id(const char *name, char id[EV_ID_MAX + 1])
{
    size_t n = strlen(name);
    if (n < 21 + 1 + 5 || strcmp(name + n - 5, ".json") != 0 || name[13] != '-' || name[20] != '-')
        return false;
    size_t idlen = n - 21 - 5;
    if (idlen > EV_ID_MAX)
        return false;
    memcpy(id, name + 21, idlen);
    id[idlen] = '\0';
    return ev_id_ok(id);
}

static void ev_replay(struct sb_events *ev)
{
    uv_fs_t req;
    uv_dirent_t d;
    int n = uv_fs_scandir(NULL, &req, ev->dir, 0, NULL); /* sorted by name */
    size_t replayed = 0, removed = 0, foreign = 0;
    char path[4096];
    while (n > 0 && uv_fs_scandir_next(&req, &d) != UV_EOF) {
        size_t len = strlen(d.name);
        snprintf(path, sizeof(path), "%s/%s", ev->dir, d.name);
        if (d.name[0] == '.' && len > 4 && strcmp(d.name + len - 4, ".tmp") == 0) {
            unlink(path); /* a write a crash cut short: never acknowledged */
            removed++;
            continue;
        }
        char id[EV_ID_MAX + 1];
        if (strcmp(d.name, EV_DEAD_LETTER) == 0)
            continue;
        if (!ev_name_id(d.name, id) || strlen(d.name) >= EV_NAME_MAX) {
            foreign++;
            continue;
        }
        char *json = NULL;
        size_t jlen = 0;
        if (ev_read_file(path, ev->cfg.spool_max_bytes, &json, &jlen)) {
            va_log_error(ev->log, EV_MOD, "unreadable spool file left in place",
                         VA_LSTR("file", d.name));
            continue;
        }
        struct ev_item *it = ev_item_new(ev, id, json, jlen);
        snprintf(it->name, sizeof(it->name), "%s", d.name);
        it->durable = true;
        it->state = EV_QUEUED;
        it->step = EV_STEP_UNLINK;
        ev->st.spool_bytes += jlen;
        replayed++;
    }
    uv_fs_req_cleanup(&req);
    if (replayed || removed || foreign)
        va_log_info(ev->log, EV_MOD, "spool replayed", VA_LINT("events", replayed),
                    VA_LINT("bytes", ev->st.spool_bytes), VA_LINT("tmpRemoved", removed),
                    VA_LINT("otherFiles", foreign));
    ev_check_fill(ev);
}

/* mkdir -p: the spool's parents may not exist yet (a fresh /var/lib). 0 or a libuv code. */
static int ev_mkdirs(const char *dir)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s", dir);
    if (n <= 0 || (size_t)n >= sizeof(path))
        return UV_ENAMETOOLONG;
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) && errno != EEXIST)
            return uv_translate_sys_error(errno);
        *p = '/';
    }
    if (mkdir(path, 0700) && errno != EEXIST)
        return uv_translate_sys_error(errno);
    return 0;
}

int sb_events_open(struct sb_events **out, uv_loop_t *loop, struct va_log *log,
                   const struct sb_events_cfg *cfg)
{
    if (!cfg->url || !cfg->service_role_key || !cfg->spool_dir || !cfg->spool_dir[0])
        return VA_EINVAL;
    struct sb_events *ev = va_xcalloc(1, sizeof(*ev));
    ev->loop = loop;
    ev->log = log;
    ev->cfg = *cfg;
    ev->cfg.url = ev->cfg.service_role_key = ev->cfg.spool_dir = NULL;
    if (!ev->cfg.spool_max_bytes)
        ev->cfg.spool_max_bytes = 64u << 20;
    if (!ev->cfg.retry_base_ms)
        ev->cfg.retry_base_ms = 1000;
    if (!ev->cfg.retry_cap_ms)
        ev->cfg.retry_cap_ms = 300000;
    if (ev->cfg.retry_cap_ms < ev->cfg.retry_base_ms)
        ev->cfg.retry_cap_ms = ev->cfg.retry_base_ms;
    if (!ev->cfg.timeout_ms)
        ev->cfg.timeout_ms = 10000;
    if (!ev->cfg.max_in_flight)
        ev->cfg.max_in_flight = 4;
    ev->st.spool_max_bytes = ev->cfg.spool_max_bytes;
    ev->dir_fd = ev->dead_fd = -1;
    size_t n = strlen(cfg->spool_dir);
    while (n > 1 && cfg->spool_dir[n - 1] == '/')
        n--;
    ev->dir = va_xstrndup(cfg->spool_dir, n);
    if (RAND_bytes((unsigned char *)&ev->rng, sizeof(ev->rng)) != 1 || !ev->rng)
        ev->rng = uv_hrtime() | 1;

    int err = ev_mkdirs(ev->dir);
    if (!err) {
        ev->dir_fd = open(ev->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (ev->dir_fd < 0)
            err = uv_translate_sys_error(errno);
    }
    if (!err) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", ev->dir, EV_DEAD_LETTER);
        ev->dead_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (ev->dead_fd < 0)
            err = uv_translate_sys_error(errno);
    }
    struct sb_rpc_cfg rc = {
        .base_url = cfg->url,
        .service_role_key = cfg->service_role_key,
        .timeout_ms = ev->cfg.timeout_ms,
        .max_in_flight = ev->cfg.max_in_flight,
    };
    if (!err)
        err = sb_rpc_open(&ev->rpc, loop, log, &rc);
    if (err) {
        va_log_error(log, EV_MOD, "call events unavailable", VA_LSTR("spoolDir", ev->dir),
                     VA_LSTR("reason", va_strerror(err)));
        if (ev->dir_fd >= 0)
            close(ev->dir_fd);
        if (ev->dead_fd >= 0)
            close(ev->dead_fd);
        free(ev->dir);
        free(ev);
        return err;
    }
    uv_timer_init(loop, &ev->retry);
    ev->retry.data = ev;
    ev_replay(ev);
    va_log_info(log, EV_MOD, "call events ready", VA_LSTR("spoolDir", ev->dir),
                VA_LINT("pending", ev->st.pending), VA_LINT("retryBaseMs", ev->cfg.retry_base_ms),
                VA_LINT("retryCapMs", ev->cfg.retry_cap_ms));
    *out = ev;
    ev_pump(ev);
    return 0;
}

/* ---------- public ---------- */

int sb_events_submit(struct sb_events *ev, const char *id, const char *json, size_t len)
{
    if (ev->closing)
        return VA_ECLOSED;
    if (!ev_id_ok(id) || !len)
        return VA_EINVAL;
    ev->st.submitted++;
    if (ev->st.spool_bytes + len > ev->cfg.spool_max_bytes) {
        ev->st.dropped++;
        va_log_error(ev->log, EV_MOD, "call event dropped: spool full", VA_LSTR("eventId", id),
                     VA_LINT("bytes", ev->st.spool_bytes),
                     VA_LINT("maxBytes", ev->cfg.spool_max_bytes));
        return VA_EFULL;
    }
    char *copy = va_xmalloc(len);
    memcpy(copy, json, len);
    struct ev_item *it = ev_item_new(ev, id, copy, len);
    uv_timeval64_t tv;
    uv_gettimeofday(&tv);
    uint64_t ms = (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
    snprintf(it->name, sizeof(it->name), "%013llu-%06u-%s.json", (unsigned long long)ms,
             ev->counter++ % 1000000u, id);
    ev->st.spool_bytes += len; /* counted from now: the bound holds while writes run */
    it->durable = true;        /* undone by ev_fs_failed() */
    it->state = EV_SPOOLING;
    it->step = EV_STEP_OPEN;
    ev_check_fill(ev);
    ev_fs_next(it);
    return 0;
}

size_t sb_events_pending(const struct sb_events *ev)
{
    return ev->st.pending;
}

void sb_events_stats(const struct sb_events *ev, struct sb_events_stats *st)
{
    *st = ev->st;
}

bool sb_events_healthy(const struct sb_events *ev, char *why, size_t cap)
{
    uint64_t pct = ev->st.spool_bytes * 100 / ev->cfg.spool_max_bytes;
    if (pct >= 80) {
        snprintf(why, cap, "call events: spool %llu%% full (%zu pending)", (unsigned long long)pct,
                 ev->st.pending);
        return false;
    }
    if (ev->spool_broken) {
        snprintf(why, cap, "call events: spool not writable, events kept in memory only");
        return false;
    }
    if (ev->fails >= EV_FAILING_AFTER) {
        if (ev->last_status)
            snprintf(why, cap, "call events: delivery failing (HTTP %ld), %zu pending",
                     ev->last_status, ev->st.pending);
        else
            snprintf(why, cap, "call events: delivery failing (%s), %zu pending",
                     va_strerror(ev->last_err), ev->st.pending);
        return false;
    }
    return true;
}

/* ---------- close ---------- */

static void ev_maybe_closed(struct sb_events *ev)
{
    if (!ev->closing || !ev->rpc_closed || !ev->retry_closed || ev->fs_busy || ev->in_flight)
        return;
    va_log_info(ev->log, EV_MOD, "call events closed", VA_LINT("leftSpooled", ev->st.pending),
                VA_LINT("delivered", ev->st.delivered));
    while (ev->head)
        ev_item_free(ev->head);
    close(ev->dir_fd);
    close(ev->dead_fd);
    void (*cb)(void *) = ev->on_closed;
    void *ud = ev->closed_ud;
    free(ev->dir);
    free(ev);
    if (cb)
        cb(ud);
}

static void ev_on_rpc_closed(void *ud)
{
    struct sb_events *ev = ud;
    ev->rpc_closed = true;
    ev_maybe_closed(ev);
}

static void ev_on_retry_closed(uv_handle_t *h)
{
    struct sb_events *ev = h->data;
    ev->retry_closed = true;
    ev_maybe_closed(ev);
}

void sb_events_close(struct sb_events *ev, void (*on_closed)(void *ud), void *ud)
{
    if (ev->closing)
        return;
    ev->closing = true;
    ev->on_closed = on_closed;
    ev->closed_ud = ud;
    uv_close((uv_handle_t *)&ev->retry, ev_on_retry_closed);
    sb_rpc_close(ev->rpc, ev_on_rpc_closed, ev); /* in-flight POSTs: done(UV_ECANCELED) */
}
