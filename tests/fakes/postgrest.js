#!/usr/bin/env node
// tests/fakes/postgrest.js: a minimal PostgREST-compatible RPC endpoint in front of a real
// PostgreSQL, for the tests (PostgREST itself is not packaged here). It serves only
//   POST /rest/v1/rpc/<function>   body: a JSON object of named arguments
// for the functions in ALLOWED, and calls the real SQL function with named arguments
// (select public.f(p_a := $1, ...)). Like PostgREST (+ Supabase's gateway):
//   - apikey: <key> and Authorization: Bearer <key> are both required; otherwise 401 with
//     {"code":"PGRST301"|"PGRST302","details","hint","message"} and WWW-Authenticate
//   - 200 with the function's jsonb as PostgreSQL prints it, Content-Type
//     application/json; charset=utf-8
//   - 404 PGRST202 for an unknown function or an argument set that matches no function
//     (missing or extra named arguments: PostgREST resolves functions by argument names)
//   - 400 PGRST102 for a body that is not a JSON object
//   - database errors: {"code":SQLSTATE,"details","hint","message"} with PostgREST's
//     SQLSTATE -> HTTP status table (P0001 400, 23505 409, 08* 503, 40* 500, ... other 400)
// CLI: --port N (0: ephemeral; prints {"listening":PORT} first), --database-url URL,
//      --key KEY, [--host 127.0.0.1], [--pool N]
"use strict";
const http = require("http");
const crypto = require("crypto");
const path = require("path");
const { Pool, types } = require(path.join(__dirname, "../node/node_modules/pg"));

// The function signatures we expose: name -> ordered parameter names (all text).
const ALLOWED = {
  get_member_balance: ["p_member_id"],
  redeem_voucher: ["p_code", "p_member_id", "p_idempotency_key"],
};
const MAX_BODY = 1 << 20;

function args(argv) {
  const o = { port: 0, host: "127.0.0.1", databaseUrl: process.env.DATABASE_URL, key: null, pool: 20 };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i], v = argv[i + 1];
    if (a === "--port") { o.port = Number(v); i++; }
    else if (a === "--host") { o.host = v; i++; }
    else if (a === "--database-url") { o.databaseUrl = v; i++; }
    else if (a === "--key") { o.key = v; i++; }
    else if (a === "--pool") { o.pool = Number(v); i++; }
    else { console.error(`postgrest.js: unknown argument ${a}`); process.exit(2); }
  }
  if (!o.databaseUrl || !o.key) { console.error("postgrest.js: --database-url and --key are required"); process.exit(2); }
  return o;
}
const opt = args(process.argv);

// Return json/jsonb exactly as PostgreSQL prints it (PostgREST passes it through).
types.setTypeParser(3802, (s) => s);
types.setTypeParser(114, (s) => s);
const pool = new Pool({ connectionString: opt.databaseUrl, max: opt.pool, connectionTimeoutMillis: 5000 });
pool.on("error", () => {}); // an idle client's error: the next query reports it

const JSON_CT = "application/json; charset=utf-8";
function send(res, status, body, extra) {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, Object.assign({ "Content-Type": JSON_CT, "Content-Length": Buffer.byteLength(text) }, extra || {}));
  res.end(text);
}
function pgrstError(code, message, details = null, hint = null) {
  return { code, details, hint, message };
}

function sameSecret(a, b) {
  if (typeof a !== "string") return false;
  const h = (s) => crypto.createHash("sha256").update(s).digest();
  return crypto.timingSafeEqual(h(a), h(b));
}

// PostgREST's SQLSTATE -> HTTP status table.
function statusFor(sqlstate) {
  const c = String(sqlstate || "");
  const exact = { "23503": 409, "23505": 409, "25006": 405, "53400": 500, "P0001": 400,
                  "42883": 404, "42P01": 404, "42P17": 500, "42501": 403 };
  if (exact[c]) return exact[c];
  const cls = { "08": 503, "09": 500, "0L": 403, "0P": 403, "25": 500, "28": 403, "2D": 500,
                "38": 500, "39": 500, "3B": 500, "40": 500, "53": 503, "54": 500, "55": 500,
                "57": 500, "58": 500, "F0": 500, "HV": 500, "P0": 500, "XX": 500 };
  if (cls[c.slice(0, 2)]) return cls[c.slice(0, 2)];
  return c ? 400 : 503; // no SQLSTATE: we could not reach the database
}

function argValue(v) {
  if (v === null || v === undefined) return null;
  if (typeof v === "string") return v;
  return JSON.stringify(v); // PostgREST hands non-string JSON to a text parameter as its text
}

async function rpc(req, res, fn, raw) {
  let body;
  if (raw.length === 0) body = {};
  else {
    try { body = JSON.parse(raw); } catch (e) {
      return send(res, 400, pgrstError("PGRST102", "Empty or invalid json"));
    }
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    return send(res, 400, pgrstError("PGRST102", "Empty or invalid json"));
  }
  const names = Object.keys(body).sort();
  const params = ALLOWED[fn];
  const wanted = params ? [...params].sort() : null;
  if (!params || names.length !== wanted.length || names.some((n, i) => n !== wanted[i])) {
    const hint = params ? `Perhaps you meant to call the function public.${fn}(${wanted.join(", ")})` : null;
    return send(res, 404, pgrstError("PGRST202",
      `Could not find the function public.${fn}(${names.join(", ")}) in the schema cache`,
      `Searched for the function public.${fn} with parameter${names.length === 1 ? "" : "s"} ${names.join(", ")}` +
        " or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.",
      hint));
  }
  const sql = `select public.${fn}(${params.map((p, i) => `${p} := $${i + 1}::text`).join(", ")}) as r`;
  try {
    const r = await pool.query(sql, params.map((p) => argValue(body[p])));
    const out = r.rows[0].r;
    return send(res, 200, out === null ? "null" : out);
  } catch (e) {
    const status = statusFor(e.code);
    if (!e.code) {
      return send(res, 503, pgrstError("PGRST001", "Database client error. Retrying the connection.", String(e.message)));
    }
    return send(res, status, pgrstError(e.code, e.message, e.detail || null, e.hint || null));
  }
}

const server = http.createServer((req, res) => {
  const chunks = [];
  let size = 0, tooBig = false;
  req.on("data", (c) => {
    size += c.length;
    if (size > MAX_BODY) { tooBig = true; return; }
    chunks.push(c);
  });
  req.on("end", () => {
    const url = new URL(req.url, "http://x");
    const m = /^\/rest\/v1\/rpc\/([A-Za-z_][A-Za-z0-9_]*)$/.exec(url.pathname);
    // Supabase's gateway checks apikey; PostgREST checks the bearer JWT (here: the same key).
    const apikey = req.headers["apikey"];
    const auth = /^Bearer (.+)$/i.exec(req.headers["authorization"] || "");
    if (!apikey && !auth) {
      return send(res, 401, pgrstError("PGRST302", "Anonymous access is disabled"),
        { "WWW-Authenticate": "Bearer" });
    }
    if (!sameSecret(apikey, opt.key) || !auth || !sameSecret(auth[1], opt.key)) {
      return send(res, 401, pgrstError("PGRST301", "Invalid API key or JWT"),
        { "WWW-Authenticate": 'Bearer error="invalid_token", error_description="Invalid API key or JWT"' });
    }
    if (tooBig) return send(res, 413, pgrstError("PGRST102", "Request body too large"));
    if (!m) return send(res, 404, pgrstError("PGRST125", "Invalid path specified in request URL"));
    if (req.method !== "POST") {
      return send(res, 405, pgrstError("PGRST101", "Only POST is supported for functions in this test endpoint"),
        { Allow: "POST" });
    }
    rpc(req, res, m[1], Buffer.concat(chunks).toString("utf8")).catch((e) =>
      send(res, 500, pgrstError("XX000", String(e && e.message))));
  });
});

server.listen(opt.port, opt.host, () => {
  process.stdout.write(JSON.stringify({ listening: server.address().port }) + "\n");
});
function stop() {
  server.close();
  pool.end().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
