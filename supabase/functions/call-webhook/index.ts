// supabase/functions/call-webhook/index.ts: records the daemon's call events.
//
//   POST /call-webhook   Authorization: Bearer <SUPABASE_SERVICE_ROLE_KEY>
//                        Content-Type: application/json
//                        body: one event, call_event.schema.json
//   200 {"ok":true,"duplicate":false|true,"call_sid":"CA..."}   only after the commit
//   400 {"ok":false,"error":"...","errors":[{"path":"/call/status","message":"..."}]}
//   401 bad or missing bearer, 405 not POST, 413 body over 1 MiB, 415 not JSON,
//   500/503 the database failed (nothing acknowledged: the daemon retries; a retried
//   event that did commit comes back duplicate=true)
//
// One transaction per event: public.record_call_event() (supabase/migrations) stores the
// event once by its id and recomputes the call's row from all its events, so repeats
// change nothing and the order events arrive in does not matter.
//
// Env: SUPABASE_DB_URL and SUPABASE_SERVICE_ROLE_KEY (Supabase sets both);
// CALL_WEBHOOK_PORT (tests): serve on 127.0.0.1:<port> (0: any free port) instead of
// the platform's listener. Logs: one JSON object per line; the key is never logged.
import postgres from "npm:postgres@3.4.9";
import { Ajv2020 } from "npm:ajv@8.20.0/dist/2020.js";
import schema from "./call_event.schema.json" with { type: "json" };

const MAX_BODY_BYTES = 1 << 20;
// The schema leaves tool results free-form; 64 levels is far past any real event.
const MAX_DEPTH = 64;
const MAX_ERRORS = 20;
const STATEMENT_TIMEOUT_MS = 10000;
const JSON_CT = "application/json; charset=utf-8";
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const RFC3339_RE =
  /^([1-9]\d{3})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/i;

type Fields = Record<string, unknown>;
type Problem = { path: string; message: string };

function log(level: "info" | "warn" | "error", msg: string, fields: Fields = {}): void {
  const line = JSON.stringify({
    ts: new Date().toISOString(),
    level,
    mod: "call-webhook",
    msg,
    ...fields,
  });
  if (level === "info") console.log(line);
  else console.error(line);
}

// --- configuration, read once ---
const DB_URL = Deno.env.get("SUPABASE_DB_URL") ?? "";
const SERVICE_KEY = Deno.env.get("SUPABASE_SERVICE_ROLE_KEY") ?? "";
const encoder = new TextEncoder();
const KEY_DIGEST = SERVICE_KEY ? await sha256(SERVICE_KEY) : null;
if (!DB_URL) log("error", "SUPABASE_DB_URL is not set: every event gets 500");
if (!SERVICE_KEY) log("error", "SUPABASE_SERVICE_ROLE_KEY is not set: every event gets 500");

// prepare: false keeps it working behind a transaction pooler; few connections: one
// function instance handles a handful of events at once, the rest queue here.
const sql = DB_URL
  ? postgres(DB_URL, {
    max: 4,
    prepare: false,
    connect_timeout: 5,
    idle_timeout: 30,
    max_lifetime: 600,
    onnotice: () => {},
  })
  : null;

const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true });
const validate = ajv.compile(schema);

// --- helpers ---
async function sha256(s: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(s)));
}

// Constant time whatever the token: both sides are hashed to 32 bytes first, so neither
// the length nor the first differing byte shows in the timing.
async function authorized(header: string | null): Promise<boolean> {
  if (!KEY_DIGEST || header === null) return false;
  const m = /^Bearer +(\S+) *$/i.exec(header);
  const got = await sha256(m ? m[1] : "");
  let diff = m ? 0 : 1;
  for (let i = 0; i < got.length; i++) diff |= got[i] ^ KEY_DIGEST[i];
  return diff === 0;
}

function reply(status: number, body: Fields, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": JSON_CT, "Cache-Control": "no-store", ...headers },
  });
}

function fail(status: number, error: string, extra: Fields = {}, headers = {}): Response {
  return reply(status, { ok: false, error, ...extra }, headers);
}

// application/json, optionally with charset=utf-8.
function jsonContentType(ct: string | null): boolean {
  if (ct === null) return false;
  const [type, ...params] = ct.split(";").map((p) => p.trim().toLowerCase());
  if (type !== "application/json") return false;
  return params.every((p) => !p.startsWith("charset=") || /^charset="?utf-8"?$/.test(p));
}

// Reads at most max bytes; null when the body is larger (stops reading at once).
async function readBounded(req: Request, max: number): Promise<Uint8Array | null> {
  const cl = req.headers.get("content-length");
  if (cl !== null && /^\d+$/.test(cl) && Number(cl) > max) return null;
  if (req.body === null) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

// Nesting depth of JSON text, counted before JSON.parse so that a hostile body cannot
// exhaust the parser's stack. Brackets inside strings do not count.
function depthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c) i++; // backslash: skip the escaped character
      else if (ch === 0x22) inString = false;
    } else if (ch === 0x22) {
      inString = true;
    } else if (ch === 0x5b || ch === 0x7b) {
      if (++depth > max) return true;
    } else if (ch === 0x5d || ch === 0x7d) {
      depth--;
    }
  }
  return false;
}

// JSON Pointer to base/key; capped: a hostile key may be most of a megabyte.
function pointer(base: string, key: string | number): string {
  const p = `${base}/${String(key).replace(/~/g, "~0").replace(/\//g, "~1")}`;
  return p.length > 256 ? `${p.slice(0, 256)}...` : p;
}

// PostgreSQL text and jsonb hold neither U+0000 nor unpaired surrogates: refuse them
// here as 400 rather than fail in the database as 500 (which the daemon would retry).
function badStrings(v: unknown, path: string, out: Problem[]): void {
  if (out.length >= MAX_ERRORS) return;
  const check = (s: string, p: string) => {
    if (s.includes("\u0000")) out.push({ path: p, message: "must not contain U+0000" });
    else if (!s.isWellFormed()) {
      out.push({ path: p, message: "must not contain unpaired surrogates" });
    }
  };
  if (typeof v === "string") {
    check(v, path);
  } else if (Array.isArray(v)) {
    v.forEach((x, i) => badStrings(x, pointer(path, i), out));
  } else if (v !== null && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) {
      check(k, pointer(path, k));
      badStrings(x, pointer(path, k), out);
    }
  }
}

function validTimestamp(s: string): boolean {
  const m = RFC3339_RE.exec(s);
  if (!m) return false;
  const [y, mo, d, h, mi, se] = m.slice(1, 7).map(Number);
  const days = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  return mo >= 1 && mo <= 12 && d >= 1 && d <= days && h <= 23 && mi <= 59 && se <= 59;
}

// Everything wrong with the body; empty when it may be stored.
function check(body: unknown): Problem[] {
  if (!validate(body)) {
    const seen = new Set<string>();
    const out: Problem[] = [];
    for (const e of validate.errors ?? []) {
      let path = e.instancePath || "/";
      let message = e.message ?? "is invalid";
      const p = e.params as Record<string, unknown>;
      if (e.keyword === "additionalProperties") {
        path = pointer(e.instancePath, String(p.additionalProperty));
        message = "is not allowed";
      } else if (e.keyword === "required") {
        path = pointer(e.instancePath, String(p.missingProperty));
        message = "is required";
      } else if (e.keyword === "enum") {
        message = `must be one of ${JSON.stringify(p.allowedValues)}`;
      }
      const key = `${path} ${message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ path, message });
      if (out.length >= MAX_ERRORS) break;
    }
    return out;
  }
  // Beyond the schema: what the database casts must cast.
  const ev = body as { id: string; occurred_at: string };
  const out: Problem[] = [];
  if (!UUID_RE.test(ev.id)) out.push({ path: "/id", message: "must be a UUID" });
  if (!validTimestamp(ev.occurred_at)) {
    out.push({ path: "/occurred_at", message: "must be an RFC 3339 timestamp" });
  }
  badStrings(body, "", out);
  return out;
}

function short(v: unknown): string | undefined {
  return typeof v === "string" ? v.slice(0, 64) : undefined;
}

// Connection trouble, shutdown, overload, timeouts, serialization: 503 (try again soon).
// Anything else the database said: 500. Both are retried by the daemon.
function dbStatus(err: unknown): number {
  const code = String((err as { code?: unknown })?.code ?? "");
  if (/^(08|53|40)/.test(code) || /^57P0/.test(code) || code === "57014") return 503;
  if (/^(E[A-Z]+|CONNECT_TIMEOUT|CONNECTION_[A-Z]+)$/.test(code)) return 503;
  if (!code) return 503;
  return 500;
}

async function record(event: unknown): Promise<{ duplicate: boolean; call_sid: string }> {
  if (!sql) throw Object.assign(new Error("SUPABASE_DB_URL is not set"), { code: "NOCONFIG" });
  const text = JSON.stringify(event);
  const rows = await sql.begin(async (tx) => {
    await tx.unsafe(`set local statement_timeout = ${STATEMENT_TIMEOUT_MS}`);
    // ::text first: a parameter described as jsonb would be JSON-encoded once more.
    return await tx`select public.record_call_event(${text}::text::jsonb) as r`;
  });
  const r = rows[0].r as { duplicate: boolean; call_sid: string };
  return { duplicate: r.duplicate === true, call_sid: r.call_sid };
}

// --- the handler ---
async function handle(req: Request, f: Fields): Promise<Response> {
  if (req.method !== "POST") {
    f.outcome = "bad_method";
    return fail(405, "method not allowed: POST only", {}, { Allow: "POST" });
  }
  if (!KEY_DIGEST || !sql) {
    f.outcome = "not_configured";
    return fail(500, "function not configured");
  }
  if (!(await authorized(req.headers.get("authorization")))) {
    f.outcome = "unauthorized";
    return fail(401, "missing or wrong bearer token", {}, { "WWW-Authenticate": "Bearer" });
  }
  if (!jsonContentType(req.headers.get("content-type"))) {
    f.outcome = "bad_content_type";
    return fail(415, "Content-Type must be application/json");
  }
  let bytes: Uint8Array | null;
  try {
    bytes = await readBounded(req, MAX_BODY_BYTES);
  } catch (_e) {
    f.outcome = "bad_body";
    return fail(400, "could not read the body");
  }
  if (bytes === null) {
    f.outcome = "too_large";
    return fail(413, `body larger than ${MAX_BODY_BYTES} bytes`);
  }
  f.bytes = bytes.byteLength;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (_e) {
    f.outcome = "rejected";
    return fail(400, "body is not UTF-8");
  }
  if (depthExceeds(text, MAX_DEPTH)) {
    f.outcome = "rejected";
    return fail(400, `JSON nested deeper than ${MAX_DEPTH} levels`);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    f.outcome = "rejected";
    return fail(400, "malformed JSON", { detail: String((e as Error).message).slice(0, 200) });
  }
  if (body !== null && typeof body === "object" && !Array.isArray(body)) {
    const b = body as { id?: unknown; type?: unknown; call?: { call_sid?: unknown } };
    f.event_id = short(b.id);
    f.type = short(b.type);
    f.call_sid = short(b.call?.call_sid);
  }
  const problems = check(body);
  if (problems.length) {
    f.outcome = "rejected";
    f.errors = problems.slice(0, 5);
    return fail(400, "event does not match call_event.schema.json", { errors: problems });
  }
  try {
    const r = await record(body);
    f.outcome = r.duplicate ? "duplicate" : "stored";
    return reply(200, { ok: true, duplicate: r.duplicate, call_sid: r.call_sid });
  } catch (e) {
    const status = dbStatus(e);
    const err = e as { code?: unknown; message?: unknown };
    f.outcome = "db_error";
    f.db_code = String(err.code ?? "");
    f.db_error = String(err.message ?? e).slice(0, 300);
    return fail(
      status,
      "database unavailable, retry later",
      {},
      status === 503 ? { "Retry-After": "1" } : {},
    );
  }
}

async function handler(req: Request): Promise<Response> {
  const t0 = performance.now();
  const f: Fields = { method: req.method };
  let res: Response;
  try {
    res = await handle(req, f);
  } catch (e) {
    f.outcome = "error";
    f.error = String((e as Error)?.message ?? e).slice(0, 300);
    res = fail(500, "internal error");
  }
  f.status = res.status;
  f.ms = Math.round((performance.now() - t0) * 10) / 10;
  log(res.status >= 500 ? "error" : res.status >= 400 ? "warn" : "info", "event", f);
  return res;
}

const portEnv = Deno.env.get("CALL_WEBHOOK_PORT");
if (portEnv !== undefined && portEnv !== "") {
  const port = Number(portEnv);
  if (!/^\d+$/.test(portEnv) || port > 65535) {
    log("error", "CALL_WEBHOOK_PORT must be 0..65535", { value: portEnv.slice(0, 20) });
    Deno.exit(2);
  }
  Deno.serve({
    hostname: "127.0.0.1",
    port,
    onListen: (a) => log("info", "listening", { host: a.hostname, port: a.port }),
  }, handler);
} else {
  Deno.serve(handler);
}
