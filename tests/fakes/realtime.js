#!/usr/bin/env node
// tests/fakes/realtime.js: a fake OpenAI Realtime API (GA interface) for integration tests,
// following ../shared/reference/openai-realtime.md (§9 "a faithful fake"). make bench uses
// its C counterpart for load, bench/loadgen/realtime.c.
// One WebSocket per call; everything the bridge sends is checked the way the live service
// does (plus a few deliberate strictnesses, marked "strict" below).
//
// Usage: node tests/fakes/realtime.js [options]
//   --port P                listen on 127.0.0.1:P (0 = ephemeral, the default). The first
//                           stdout line is {"listening":PORT}
//   --host H                listen address (127.0.0.1)
//   --tls CERT KEY          serve https/wss with this PEM certificate and key
//   --key K                 the API key: upgrades need "Authorization: Bearer K" on
//                           /v1/realtime, "api-key: K" (or the Bearer form) on
//                           /openai/v1/realtime (Azure). Default: any non-empty key
//   --refuse-first N        answer the first N upgrade attempts with --refuse-status
//   --refuse-all            answer every upgrade attempt with --refuse-status
//   --refuse-status S       status of refused upgrades (503)
//   --upgrade-delay-ms N    wait N ms before answering any upgrade (connect timeouts)
//   --expire-s S            session.created expires_at = now + S (3600)
//   --expire-ms N           N ms after session.created: error session_expired, close 1001
//   --close-after-ms N      N ms after the first session.updated: close 1011
//   --drop-after-ms N       N ms after the first session.updated: drop TCP, no Close (1006)
//   --stall-after-ms N      N ms after the first session.updated: stop reading the socket
//                           (paused) and stop sending; the connection stays open
//   --fragment              send every server message as 3 WebSocket frames (text +
//                           continuations); --fragment-size B: frames of B bytes instead
//   --vad-threshold-rms R   server VAD: a 20 ms window is speech when the RMS of its
//                           decoded 16-bit PCM exceeds R (500)
//   --vad-speech-ms N       speech for N ms in a row starts a turn (60)
//   --transcript TEXT       caller transcript (default "caller speech N ms", N = the
//                           committed item's duration); --transcript-delay-ms N (50)
//   --reply-hz F            reply tone frequency (1000)
//   --reply-ms N            reply length in ms of audio (1200)
//   --reply-amp A           reply tone amplitude, 16-bit scale (8000)
//   --reply-text TEXT       reply transcript ("This is the assistant speaking.")
//   --delta-ms N            audio per response.output_audio.delta (100)
//   --burst-factor X        send deltas X times faster than real time (5; 0 = no pacing)
//   --response-latency-ms N between response.created and the first delta (0)
//   --tool-call NAME:ARGS   the next VAD-created response of each session is this function
//                           call instead of audio (ARGS a JSON object). Repeatable: one per
//                           VAD response, in order. Several calls in one response:
//                           "a:{...};;b:{...}"
//   --truncate-clamp        over-long truncate: the error, then conversation.item.truncated
//                           clamped to the item length (the field report of §5)
//   --log FILE              append one JSON line per event: {"t":epoch_ms,"d":"in"|"out"|
//                           "sys","session":id|null,"ev":{...}}; "in" = received by this
//                           fake (bridge -> OpenAI), "out" = sent by it; base64 audio is
//                           replaced by its decoded byte length (a number)
//   --record-dir DIR        write each session's decoded input audio to DIR/<sid>.in.raw
//                           (exactly the appended bytes) and its sent reply audio to
//                           DIR/<sid>.out.raw
//   --verbose               diagnostics on stderr
//
// Control endpoints (plain GET on the same port, same scheme):
//   /_control/stats                    JSON counters (see stats() below)
//   /_control/refuse?n=N[&status=S]    refuse the next N upgrades; ?all=1 refuse all
//   /_control/accept                   stop refusing
//   /_control/reset                    zero the counters (refusal state unchanged)
//   /_control/close?code=C[&reason=R]  close every open session with C (1011)
//   /_control/expire                   session_expired + close 1001 on every open session
//
// Stdout: {"listening":PORT}, then one JSON summary line per session when it closes
// ({"session","model","path","closeCode","closeReason","closedBy":"client"|"server"|
// "server-drop"|"fake-exit","appends","inputBytes","inputMs","appendsBeforeUpdate",
// "speechStarted","responses","responsesCompleted","responsesCancelled","outputAudioMs",
// "truncates":[{item_id,audio_end_ms,result}],"deletes","cancels","toolCalls",
// "functionOutputs":[call_id..],"errorsSent":[code..],"received":{type:n},"sent":{type:n}..}).
// SIGTERM/SIGINT: summaries of the open sessions (closedBy "fake-exit"), exit 0.
//
// Behaviour (what tests may rely on):
// - Upgrade checks, in order: path (/v1/realtime or /openai/v1/realtime, else 404), refusal
//   (--refuse-*), key (401), ?model= (400), api-version on the Azure GA path (400). An
//   OpenAI-Beta header is accepted, answered with error beta_api_shape_disabled, close 4000.
// - session.created comes first: GA defaults (audio/pcm 24 kHz both ways, server_vad with
//   silence_duration_ms 200, voice marin). session.update is validated on a copy (nothing
//   changes on error): type "realtime" required, beta keys -> unknown_parameter, formats
//   audio/pcmu | audio/pcma | audio/pcm (rate 24000 only), voice frozen after audio out
//   (cannot_update_voice). Appends before the first session.update are counted
//   (appendsBeforeUpdate) and decoded as the session format of the moment.
// - Server VAD: 20 ms windows of the decoded input; speech after --vad-speech-ms loud ms:
//   speech_started audio_start_ms = onset - prefix_padding_ms (>= 0), item_uN; after
//   silence_duration_ms of quiet windows: speech_stopped (audio_end_ms = end of the last
//   quiet window), committed, conversation.item.added/.done (user item), transcription
//   (if configured, --transcript-delay-ms later) and, with create_response, a response
//   unless one is active (then none: vadResponsesSkipped). semantic_vad = the same with
//   prefix 300 and silence 500 ms. idle_timeout_ms is accepted but not emulated.
//   interrupt_response + active response at speech start: the response ends at once
//   (output_audio.done, transcript.done, content_part.done, output_item.done incomplete,
//   conversation.item.done, response.done cancelled/turn_detected); no later deltas.
// - Offsets are input-audio ms since session start (all appends, any format).
// - Responses: ids resp_N, assistant items item_aN, function calls item_fN/call_N, client
//   items item_cN (or their own id). An item's audio length is the audio actually sent
//   (a cancelled reply is as long as its deltas); truncate shortens it.
// - Errors: event_id of the client event echoed in error.event_id, else null. Codes the
//   docs leave open are this fake's choice: item_not_found (truncate/delete/retrieve of an
//   unknown item), invalid_json (malformed/binary message), invalid_value for an unknown
//   call_id in function_call_output; over-long truncate and truncate of a non-assistant item
//   have code null and the documented messages; truncate at 0 ms -> invalid_value (strict).
// - Never a response of its own after conversation.item.create (function_call_output).
// - Stall: reading paused and nothing more sent; a client close is then not noticed, the
//   session stays open (in stats) until the fake exits.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const https = require('https');
const path = require('path');

const WebSocket = require(path.join(__dirname, '../node/node_modules/ws'));

// --- command line ---

const SPEC = {
  port: 'int', host: 'str', tls: 'pair', key: 'str', 'refuse-first': 'int', 'refuse-all': 'flag',
  'refuse-status': 'int', 'upgrade-delay-ms': 'int', 'expire-s': 'int', 'expire-ms': 'int',
  'close-after-ms': 'int', 'drop-after-ms': 'int', 'stall-after-ms': 'int', fragment: 'flag',
  'fragment-size': 'int', 'vad-threshold-rms': 'num', 'vad-speech-ms': 'int', transcript: 'str',
  'transcript-delay-ms': 'int', 'reply-hz': 'num', 'reply-ms': 'int', 'reply-amp': 'num',
  'reply-text': 'str', 'delta-ms': 'int', 'burst-factor': 'num', 'response-latency-ms': 'int',
  'tool-call': 'list', 'truncate-clamp': 'flag', log: 'str', 'record-dir': 'str', verbose: 'flag',
  help: 'flag',
};

function usage(msg) {
  process.stderr.write(`realtime.js: ${msg}\nsee the header of ${__filename} for usage\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = { 'tool-call': [] };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    if (!a.startsWith('--')) usage(`unexpected argument ${a}`);
    a = a.slice(2);
    let val;
    const eq = a.indexOf('=');
    if (eq >= 0) {
      val = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    const type = SPEC[a];
    if (!type) usage(`unknown option --${a}`);
    if (type === 'flag') {
      if (val !== undefined) usage(`--${a} takes no value`);
      o[a] = true;
      continue;
    }
    if (type === 'pair') {
      if (val !== undefined || i + 2 >= argv.length) usage(`--${a} needs two values`);
      o[a] = [argv[++i], argv[++i]];
      continue;
    }
    if (val === undefined) {
      if (i + 1 >= argv.length) usage(`--${a} needs a value`);
      val = argv[++i];
    }
    if (type === 'int' || type === 'num') {
      const n = Number(val);
      if (val === '' || !Number.isFinite(n) || (type === 'int' && !Number.isInteger(n)) || n < 0)
        usage(`--${a}: bad number ${val}`);
      o[a] = n;
    } else if (type === 'list') {
      o[a].push(val);
    } else {
      o[a] = val;
    }
  }
  if (o.help) {
    process.stdout.write(fs.readFileSync(__filename, 'utf8').split("'use strict'")[0]);
    process.exit(0);
  }
  const d = (k, v) => (o[k] === undefined ? v : o[k]);
  const cfg = {
    port: d('port', 0), host: d('host', '127.0.0.1'), tls: o.tls || null, key: d('key', null),
    refuseFirst: d('refuse-first', 0), refuseAll: !!o['refuse-all'],
    refuseStatus: d('refuse-status', 503), upgradeDelayMs: d('upgrade-delay-ms', 0),
    expireS: d('expire-s', 3600), expireMs: d('expire-ms', -1), closeAfterMs: d('close-after-ms', -1),
    dropAfterMs: d('drop-after-ms', -1), stallAfterMs: d('stall-after-ms', -1),
    fragment: !!o.fragment || o['fragment-size'] !== undefined, fragmentSize: d('fragment-size', 0),
    vadRms: d('vad-threshold-rms', 500), vadSpeechMs: d('vad-speech-ms', 60),
    transcript: d('transcript', null), transcriptDelayMs: d('transcript-delay-ms', 50),
    replyHz: d('reply-hz', 1000), replyMs: d('reply-ms', 1200), replyAmp: d('reply-amp', 8000),
    replyText: d('reply-text', 'This is the assistant speaking.'), deltaMs: d('delta-ms', 100),
    burstFactor: d('burst-factor', 5), latencyMs: d('response-latency-ms', 0),
    truncateClamp: !!o['truncate-clamp'], log: d('log', null), recordDir: d('record-dir', null),
    verbose: !!o.verbose, toolCalls: [],
  };
  if (cfg.refuseStatus < 100 || cfg.refuseStatus > 599) usage('--refuse-status: not an HTTP status');
  if (cfg.deltaMs < 1) usage('--delta-ms must be >= 1');
  if (cfg.replyAmp > 32767) usage('--reply-amp must be <= 32767');
  if (cfg.fragmentSize === 0 && o['fragment-size'] !== undefined) usage('--fragment-size must be >= 1');
  for (const spec of o['tool-call']) {
    const group = [];
    for (const one of spec.split(';;')) {
      const c = one.indexOf(':');
      if (c <= 0) usage(`--tool-call: ${one} is not NAME:ARGS_JSON`);
      const name = one.slice(0, c).trim();
      const args = one.slice(c + 1);
      let parsed;
      try { parsed = JSON.parse(args); } catch (e) { usage(`--tool-call: ARGS of ${name} is not JSON`); }
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
        usage(`--tool-call: ARGS of ${name} is not a JSON object`);
      group.push({ name, args: JSON.stringify(parsed) });
    }
    cfg.toolCalls.push(group);
  }
  return cfg;
}

const OPT = parseArgs(process.argv.slice(2));

// --- helpers ---

const rid = (n = 12) => crypto.randomBytes(n).toString('hex').slice(0, n);
const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isInt = (v) => typeof v === 'number' && Number.isInteger(v);
function verbose(...a) {
  if (OPT.verbose) process.stderr.write(`[realtime-fake] ${a.join(' ')}\n`);
}

let logFd = null;
if (OPT.log) logFd = fs.openSync(OPT.log, 'a');
function logLine(d, session, ev) {
  if (logFd === null) return;
  try {
    fs.writeSync(logFd, JSON.stringify({ t: Date.now(), d, session, ev }) + '\n');
  } catch (e) {
    verbose('log write failed', e.message);
  }
}
if (OPT.recordDir) fs.mkdirSync(OPT.recordDir, { recursive: true });

const { ULAW_DEC, ALAW_DEC, linToUlaw, linToAlaw } = require('./g711.js');

// Formats: bytes per ms and sample rate.
function fmtInfo(f) {
  if (f.type === 'audio/pcm') return { bpm: 48, rate: 24000 };
  return { bpm: 8, rate: 8000 };
}

function tone(fmt, ms) {
  const { rate } = fmtInfo(fmt);
  const n = Math.round((rate * ms) / 1000);
  const out = Buffer.alloc(fmt.type === 'audio/pcm' ? n * 2 : n);
  for (let i = 0; i < n; i++) {
    const s = Math.round(OPT.replyAmp * Math.sin((2 * Math.PI * OPT.replyHz * i) / rate));
    if (fmt.type === 'audio/pcm') out.writeInt16LE(s, i * 2);
    else if (fmt.type === 'audio/pcmu') out[i] = linToUlaw(s);
    else out[i] = linToAlaw(s);
  }
  return out;
}
const toneCache = new Map();
function replyAudio(fmt) {
  const k = fmt.type;
  if (!toneCache.has(k)) toneCache.set(k, tone(fmt, OPT.replyMs));
  return toneCache.get(k);
}

// --- counters ---

let STATS;
function resetStats() {
  STATS = {
    upgrades: 0, refused: 0, unauthorized: 0, badUpgrades: 0, betaRejected: 0,
    connections: 0, sessions: 0, closedSessions: 0,
    eventsReceived: {}, eventsSent: {},
    appends: 0, inputBytes: 0, appendsBeforeUpdate: 0,
    responses: 0, responsesByStatus: {}, vadResponsesSkipped: 0,
    speechStarted: 0, speechStopped: 0, commits: 0,
    truncates: [], deletes: [], cancels: 0, toolCalls: 0, functionOutputs: 0,
    functionOutputsDuplicate: 0, itemsCreated: 0,
    errorsSent: 0, errorsByCode: {}, errors: [], malformed: 0, internalErrors: 0,
    closeCodes: {},
  };
}
resetStats();
const bump = (m, k) => { m[k] = (m[k] || 0) + 1; };
const capPush = (arr, v) => { if (arr.length < 10000) arr.push(v); };

const sessions = new Set();
let refuseRemaining = OPT.refuseFirst;
let refuseAll = OPT.refuseAll;
let refuseStatus = OPT.refuseStatus;

// --- validation of client shapes ---

class ReqError extends Error {
  constructor(code, message, param) {
    super(message);
    this.code = code === undefined ? null : code;
    this.param = param === undefined ? null : param;
  }
}
const unknownParam = (p) => new ReqError('unknown_parameter', `Unknown parameter: '${p}'.`, p);
const missingParam = (p) => new ReqError('missing_required_parameter', `Missing required parameter: '${p}'.`, p);
const invalidValue = (p, v, hint) =>
  new ReqError('invalid_value', `Invalid value: ${JSON.stringify(v)} for '${p}'.${hint ? ' ' + hint : ''}`, p);
const invalidType = (p, want, v) =>
  new ReqError('invalid_type', `Invalid type for '${p}': expected ${want}, but got ${Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v}.`, p);

function onlyKeys(obj, allowed, prefix) {
  for (const k of Object.keys(obj)) if (!allowed.includes(k)) throw unknownParam(prefix ? `${prefix}.${k}` : k);
}
function needObj(v, p) {
  if (!isObj(v)) throw invalidType(p, 'an object', v);
}

const VOICES = ['alloy', 'ash', 'ballad', 'coral', 'echo', 'sage', 'shimmer', 'verse', 'marin', 'cedar'];
const SESSION_KEYS = ['type', 'model', 'instructions', 'output_modalities', 'audio', 'tools', 'tool_choice',
  'max_output_tokens', 'tracing', 'truncation', 'prompt', 'include'];

function checkFormat(v, p) {
  if (typeof v === 'string') throw invalidType(p, 'an object', v); // beta "g711_ulaw"/"pcm16"
  needObj(v, p);
  onlyKeys(v, ['type', 'rate'], p);
  if (v.type === undefined) throw missingParam(`${p}.type`);
  if (!['audio/pcmu', 'audio/pcma', 'audio/pcm'].includes(v.type))
    throw invalidValue(`${p}.type`, v.type, "Supported values are: 'audio/pcm', 'audio/pcmu' and 'audio/pcma'.");
  if (v.type === 'audio/pcm') {
    if (v.rate !== undefined && v.rate !== 24000)
      throw invalidValue(`${p}.rate`, v.rate, 'Supported values are: 24000.');
    return { type: 'audio/pcm', rate: 24000 };
  }
  if (v.rate !== undefined) throw unknownParam(`${p}.rate`);
  return { type: v.type };
}

function turnDefaults(type) {
  if (type === 'semantic_vad')
    return { type, eagerness: 'auto', create_response: true, interrupt_response: true };
  return { type: 'server_vad', threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 200,
    idle_timeout_ms: null, create_response: true, interrupt_response: true };
}

function mergeTurn(cur, v, p) {
  if (v === null) return null;
  needObj(v, p);
  let type = v.type !== undefined ? v.type : cur && cur.type;
  if (type === undefined || type === null) throw missingParam(`${p}.type`);
  if (!['server_vad', 'semantic_vad'].includes(type))
    throw invalidValue(`${p}.type`, type, "Supported values are: 'server_vad' and 'semantic_vad'.");
  const out = cur && cur.type === type ? { ...cur } : turnDefaults(type);
  const allowed = type === 'server_vad'
    ? ['type', 'threshold', 'prefix_padding_ms', 'silence_duration_ms', 'idle_timeout_ms', 'create_response', 'interrupt_response']
    : ['type', 'eagerness', 'create_response', 'interrupt_response'];
  onlyKeys(v, allowed, p);
  for (const [k, x] of Object.entries(v)) {
    if (k === 'threshold' && !(typeof x === 'number' && x >= 0 && x <= 1))
      throw invalidValue(`${p}.${k}`, x, 'Expected a number between 0 and 1.');
    if (['prefix_padding_ms', 'silence_duration_ms'].includes(k) && !(isInt(x) && x >= 0))
      throw invalidValue(`${p}.${k}`, x, 'Expected a non-negative integer.');
    if (k === 'idle_timeout_ms' && x !== null && !(isInt(x) && x >= 0))
      throw invalidValue(`${p}.${k}`, x, 'Expected null or a non-negative integer.');
    if (['create_response', 'interrupt_response'].includes(k) && typeof x !== 'boolean')
      throw invalidType(`${p}.${k}`, 'a boolean', x);
    if (k === 'eagerness' && !['low', 'medium', 'high', 'auto'].includes(x))
      throw invalidValue(`${p}.${k}`, x, "Supported values are: 'low', 'medium', 'high' and 'auto'.");
    out[k] = x;
  }
  return out;
}

function checkTools(v, p) {
  if (!Array.isArray(v)) throw invalidType(p, 'an array', v);
  v.forEach((t, i) => {
    const q = `${p}[${i}]`;
    needObj(t, q);
    onlyKeys(t, ['type', 'name', 'description', 'parameters'], q);
    if (t.type !== 'function') throw invalidValue(`${q}.type`, t.type, "Supported values are: 'function'.");
    if (typeof t.name !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(t.name)) throw invalidValue(`${q}.name`, t.name);
    if (t.description !== undefined && typeof t.description !== 'string') throw invalidType(`${q}.description`, 'a string', t.description);
    if (t.parameters !== undefined && !isObj(t.parameters)) throw invalidType(`${q}.parameters`, 'an object', t.parameters);
  });
}
function checkToolChoice(v, p) {
  if (typeof v === 'string') {
    if (!['auto', 'none', 'required'].includes(v))
      throw invalidValue(p, v, "Supported values are: 'auto', 'none' and 'required'.");
    return;
  }
  needObj(v, p);
  onlyKeys(v, ['type', 'name'], p);
  if (v.type !== 'function') throw invalidValue(`${p}.type`, v.type);
  if (typeof v.name !== 'string') throw missingParam(`${p}.name`);
}
function checkMaxTokens(v, p) {
  if (v === 'inf') return;
  if (!(isInt(v) && v >= 1 && v <= 4096)) throw invalidValue(p, v, "Expected an integer between 1 and 4096 or 'inf'.");
}
function checkModalities(v, p) {
  if (!Array.isArray(v)) throw invalidType(p, 'an array', v);
  if (!(v.length === 1 && (v[0] === 'audio' || v[0] === 'text')))
    throw invalidValue(p, v, "Supported values are: ['audio'] or ['text'].");
}

// Returns the merged session (a new object) or throws ReqError. `s` is the fake session.
function mergeSession(s, upd) {
  if (upd === undefined) throw missingParam('session');
  needObj(upd, 'session');
  onlyKeys(upd, SESSION_KEYS, 'session');
  if (upd.type === undefined) throw missingParam('session.type');
  if (upd.type !== 'realtime') throw invalidValue('session.type', upd.type, "Supported values are: 'realtime'.");
  const m = structuredClone(s.config);
  if (upd.model !== undefined) {
    if (typeof upd.model !== 'string') throw invalidType('session.model', 'a string', upd.model);
    m.model = upd.model;
  }
  if (upd.instructions !== undefined) {
    if (typeof upd.instructions !== 'string') throw invalidType('session.instructions', 'a string', upd.instructions);
    m.instructions = upd.instructions;
  }
  if (upd.output_modalities !== undefined) {
    checkModalities(upd.output_modalities, 'session.output_modalities');
    m.output_modalities = upd.output_modalities.slice();
  }
  if (upd.tools !== undefined) { checkTools(upd.tools, 'session.tools'); m.tools = structuredClone(upd.tools); }
  if (upd.tool_choice !== undefined) { checkToolChoice(upd.tool_choice, 'session.tool_choice'); m.tool_choice = upd.tool_choice; }
  if (upd.max_output_tokens !== undefined) { checkMaxTokens(upd.max_output_tokens, 'session.max_output_tokens'); m.max_output_tokens = upd.max_output_tokens; }
  for (const k of ['tracing', 'truncation', 'prompt', 'include']) if (upd[k] !== undefined) m[k] = upd[k];
  if (upd.audio !== undefined) {
    needObj(upd.audio, 'session.audio');
    onlyKeys(upd.audio, ['input', 'output'], 'session.audio');
    const ai = upd.audio.input;
    if (ai !== undefined) {
      const p = 'session.audio.input';
      needObj(ai, p);
      onlyKeys(ai, ['format', 'transcription', 'noise_reduction', 'turn_detection'], p);
      if (ai.format !== undefined) m.audio.input.format = checkFormat(ai.format, `${p}.format`);
      if (ai.transcription !== undefined) {
        const t = ai.transcription;
        if (t !== null) {
          needObj(t, `${p}.transcription`);
          onlyKeys(t, ['model', 'language', 'prompt'], `${p}.transcription`);
          if (typeof t.model !== 'string') throw missingParam(`${p}.transcription.model`);
          if (t.language !== undefined && typeof t.language !== 'string') throw invalidType(`${p}.transcription.language`, 'a string', t.language);
          if (t.prompt !== undefined && typeof t.prompt !== 'string') throw invalidType(`${p}.transcription.prompt`, 'a string', t.prompt);
        }
        m.audio.input.transcription = t === null ? null : structuredClone(t);
      }
      if (ai.noise_reduction !== undefined) {
        const n = ai.noise_reduction;
        if (n !== null) {
          needObj(n, `${p}.noise_reduction`);
          onlyKeys(n, ['type'], `${p}.noise_reduction`);
          if (!['near_field', 'far_field'].includes(n.type))
            throw invalidValue(`${p}.noise_reduction.type`, n.type, "Supported values are: 'near_field' and 'far_field'.");
        }
        m.audio.input.noise_reduction = n === null ? null : { type: n.type };
      }
      if (ai.turn_detection !== undefined)
        m.audio.input.turn_detection = mergeTurn(m.audio.input.turn_detection, ai.turn_detection, `${p}.turn_detection`);
    }
    const ao = upd.audio.output;
    if (ao !== undefined) {
      const p = 'session.audio.output';
      needObj(ao, p);
      onlyKeys(ao, ['format', 'voice', 'speed'], p);
      if (ao.format !== undefined) m.audio.output.format = checkFormat(ao.format, `${p}.format`);
      if (ao.voice !== undefined) {
        if (!VOICES.includes(ao.voice)) throw invalidValue(`${p}.voice`, ao.voice, `Supported values are: ${VOICES.map((v) => `'${v}'`).join(', ')}.`);
        if (ao.voice !== m.audio.output.voice && s.audioOutBytes > 0)
          throw new ReqError('cannot_update_voice', "Cannot update a conversation's voice if assistant audio is present.", `${p}.voice`);
        m.audio.output.voice = ao.voice;
      }
      if (ao.speed !== undefined) {
        if (!(typeof ao.speed === 'number' && ao.speed >= 0.25 && ao.speed <= 1.5))
          throw invalidValue(`${p}.speed`, ao.speed, 'Expected a number between 0.25 and 1.5.');
        m.audio.output.speed = ao.speed;
      }
    }
  }
  return m;
}

// Item shapes accepted by conversation.item.create.
function checkItem(it) {
  if (it === undefined) throw missingParam('item');
  needObj(it, 'item');
  if (it.type === undefined) throw missingParam('item.type');
  if (it.id !== undefined && (typeof it.id !== 'string' || it.id.length === 0 || it.id.length > 32))
    throw invalidValue('item.id', it.id, 'Expected a string of 1 to 32 characters.');
  if (it.type === 'message') {
    onlyKeys(it, ['id', 'type', 'object', 'status', 'role', 'content'], 'item');
    if (!['user', 'assistant', 'system'].includes(it.role))
      throw invalidValue('item.role', it.role, "Supported values are: 'user', 'assistant' and 'system'.");
    if (!Array.isArray(it.content)) throw missingParam('item.content');
    const ok = it.role === 'assistant' ? ['output_text', 'output_audio'] : ['input_text', 'input_audio'];
    it.content.forEach((c, i) => {
      needObj(c, `item.content[${i}]`);
      if (!ok.includes(c.type)) throw invalidValue(`item.content[${i}].type`, c.type, `Supported values are: ${ok.map((x) => `'${x}'`).join(' and ')}.`);
      if (c.type.endsWith('_text') && typeof c.text !== 'string') throw missingParam(`item.content[${i}].text`);
    });
  } else if (it.type === 'function_call_output') {
    onlyKeys(it, ['id', 'type', 'object', 'status', 'call_id', 'output'], 'item');
    if (it.call_id === undefined) throw missingParam('item.call_id');
    if (typeof it.call_id !== 'string') throw invalidType('item.call_id', 'a string', it.call_id);
    if (it.output === undefined) throw missingParam('item.output');
    if (typeof it.output !== 'string') throw invalidType('item.output', 'a string', it.output);
  } else if (it.type === 'function_call') {
    onlyKeys(it, ['id', 'type', 'object', 'status', 'call_id', 'name', 'arguments'], 'item');
    for (const k of ['call_id', 'name', 'arguments']) if (typeof it[k] !== 'string') throw missingParam(`item.${k}`);
  } else {
    throw invalidValue('item.type', it.type, "Supported values are: 'message', 'function_call' and 'function_call_output'.");
  }
}

// Client events and their keys besides type and event_id.
const EVENT_KEYS = {
  'session.update': ['session'],
  'input_audio_buffer.append': ['audio'],
  'input_audio_buffer.commit': [],
  'input_audio_buffer.clear': [],
  'response.create': ['response'],
  'response.cancel': ['response_id'],
  'conversation.item.truncate': ['item_id', 'content_index', 'audio_end_ms'],
  'conversation.item.delete': ['item_id'],
  'conversation.item.create': ['item', 'previous_item_id'],
  'conversation.item.retrieve': ['item_id'],
};

const RESPONSE_KEYS = ['instructions', 'output_modalities', 'conversation', 'metadata', 'tools', 'tool_choice',
  'max_output_tokens', 'audio', 'input', 'prompt'];
function checkResponseParams(r) {
  if (r === undefined) return {};
  needObj(r, 'response');
  onlyKeys(r, RESPONSE_KEYS, 'response');
  if (r.instructions !== undefined && typeof r.instructions !== 'string') throw invalidType('response.instructions', 'a string', r.instructions);
  if (r.output_modalities !== undefined) checkModalities(r.output_modalities, 'response.output_modalities');
  if (r.conversation !== undefined && !['auto', 'none'].includes(r.conversation))
    throw invalidValue('response.conversation', r.conversation, "Supported values are: 'auto' and 'none'.");
  if (r.tools !== undefined) checkTools(r.tools, 'response.tools');
  if (r.tool_choice !== undefined) checkToolChoice(r.tool_choice, 'response.tool_choice');
  if (r.max_output_tokens !== undefined) checkMaxTokens(r.max_output_tokens, 'response.max_output_tokens');
  if (r.audio !== undefined) {
    needObj(r.audio, 'response.audio');
    onlyKeys(r.audio, ['output'], 'response.audio');
    if (r.audio.output !== undefined) {
      needObj(r.audio.output, 'response.audio.output');
      onlyKeys(r.audio.output, ['format', 'voice'], 'response.audio.output');
      if (r.audio.output.format !== undefined) checkFormat(r.audio.output.format, 'response.audio.output.format');
      if (r.audio.output.voice !== undefined && !VOICES.includes(r.audio.output.voice))
        throw invalidValue('response.audio.output.voice', r.audio.output.voice);
    }
  }
  return r;
}

// --- one Realtime session per WebSocket ---

let sessionSeq = 0;

class Session {
  constructor(ws, info) {
    this.ws = ws;
    this.seq = ++sessionSeq;
    this.id = `sess_${rid(16)}`;
    this.info = info;
    this.t0 = Date.now();
    this.evSeq = 0;
    this.timers = new Set();
    this.closed = false;
    this.stalled = false;
    this.updatedOnce = false;
    this.conversationId = `conv_${rid(16)}`;
    this.config = {
      type: 'realtime', object: 'realtime.session', id: this.id, model: info.model,
      output_modalities: ['audio'], instructions: 'You are a helpful, witty, and friendly AI.',
      tools: [], tool_choice: 'auto', max_output_tokens: 'inf', tracing: null, truncation: 'auto',
      prompt: null, expires_at: Math.floor(this.t0 / 1000) + OPT.expireS, include: null,
      audio: {
        input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: null, noise_reduction: null,
          turn_detection: turnDefaults('server_vad') },
        output: { format: { type: 'audio/pcm', rate: 24000 }, voice: 'marin', speed: 1 },
      },
    };
    // conversation
    this.items = new Map();
    this.order = [];
    this.calls = new Map(); // call_id -> { outputs }
    this.n = { a: 0, u: 0, f: 0, c: 0, resp: 0, call: 0 };
    this.resp = null;
    this.toolQueue = OPT.toolCalls.slice();
    // input audio
    this.inMs = 0; // decoded input since session start, ms
    this.bufMs = 0; // not yet committed
    this.vadMs = 0; // processed 20 ms windows
    this.pending = new Int16Array(0);
    this.byteCarry = null;
    this.vadFmt = null;
    this.vad = { state: 'idle', loudMs: 0, onsetMs: 0, quietMs: 0, itemId: null, startMs: 0 };
    this.inFd = null;
    this.outFd = null;
    // summary
    this.sum = {
      session: this.id, model: info.model, path: info.path, startedAt: new Date(this.t0).toISOString(),
      appends: 0, inputBytes: 0, inputMs: 0, appendsBeforeUpdate: 0, sessionUpdates: 0,
      speechStarted: 0, speechStopped: 0, commits: 0, responses: 0, responsesCompleted: 0,
      responsesCancelled: 0, responseCreates: 0, outputAudioMs: 0, outputAudioBytes: 0,
      truncates: [], deletes: [], cancels: 0, toolCalls: 0, functionOutputs: [],
      itemsCreated: 0, errorsSent: [], received: {}, sent: {},
    };
    this.audioOutBytes = 0;
  }

  timer(ms, fn) {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (this.closed || this.stalled) return;
      try {
        fn();
      } catch (e) {
        this.internal(e);
      }
    }, Math.max(0, ms));
    this.timers.add(t);
    return t;
  }
  clearTimers() {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  internal(e) {
    STATS.internalErrors++;
    process.stderr.write(`[realtime-fake] internal error in ${this.id}: ${e && e.stack}\n`);
    this.error('server_error', null, `The fake server had an error: ${e && e.message}`, null, null);
  }

  // --- sending ---

  send(ev) {
    if (this.closed || this.stalled || this.ws.readyState !== WebSocket.OPEN) return false;
    ev = { type: ev.type, event_id: `event_${this.seq}_${++this.evSeq}`, ...ev };
    const text = JSON.stringify(ev);
    let logged = ev;
    if (typeof ev.delta === 'string' && ev.type === 'response.output_audio.delta')
      logged = { ...ev, delta: Buffer.from(ev.delta, 'base64').length };
    logLine('out', this.id, logged);
    bump(STATS.eventsSent, ev.type);
    bump(this.sum.sent, ev.type);
    if (!OPT.fragment) {
      this.ws.send(text);
      return true;
    }
    const buf = Buffer.from(text, 'utf8');
    const size = OPT.fragmentSize > 0 ? OPT.fragmentSize : Math.max(1, Math.ceil(buf.length / 3));
    for (let off = 0; off < buf.length || off === 0; off += size) {
      const end = Math.min(buf.length, off + size);
      this.ws.send(buf.subarray(off, end), { binary: false, fin: end >= buf.length, compress: false });
      if (end >= buf.length) break;
    }
    return true;
  }

  error(code, param, message, clientEventId, type) {
    STATS.errorsSent++;
    bump(STATS.errorsByCode, String(code));
    capPush(STATS.errors, { session: this.id, code, param, message });
    this.sum.errorsSent.push(code === null ? message.slice(0, 60) : code);
    this.send({
      type: 'error',
      error: { type: type || 'invalid_request_error', code, message, param: param === undefined ? null : param,
        event_id: clientEventId === undefined ? null : clientEventId },
    });
  }

  close(code, reason) {
    if (this.closed) return;
    this.closedBy = 'server';
    this.clearTimers();
    try {
      this.ws.close(code, reason);
    } catch (e) {
      this.ws.terminate();
    }
  }

  // --- lifecycle ---

  start() {
    STATS.sessions++;
    this.send({ type: 'session.created', session: structuredClone(this.config) });
    if (OPT.expireMs >= 0) this.timer(OPT.expireMs, () => this.expire());
  }

  expire() {
    this.error('session_expired', null, 'Your session hit the maximum duration of 60 minutes.', null);
    this.close(1001, 'session expired');
  }

  afterFirstUpdate() {
    if (OPT.closeAfterMs >= 0) this.timer(OPT.closeAfterMs, () => this.close(1011, 'internal server error'));
    if (OPT.dropAfterMs >= 0)
      this.timer(OPT.dropAfterMs, () => {
        this.closedBy = 'server-drop';
        this.ws.terminate();
      });
    if (OPT.stallAfterMs >= 0)
      this.timer(OPT.stallAfterMs, () => {
        logLine('sys', this.id, { type: 'fake.stall' });
        this.stalled = true;
        this.clearTimers();
        const sock = this.ws._socket;
        if (sock) {
          sock.pause();
          sock.resume = () => sock; // ws resumes after receiver backpressure: not any more
        }
      });
  }

  onClosed(code, reason) {
    if (this.closed) return;
    this.closed = true;
    this.clearTimers();
    sessions.delete(this);
    for (const fd of [this.inFd, this.outFd]) if (fd !== null) try { fs.closeSync(fd); } catch (e) { /* */ }
    this.inFd = this.outFd = null;
    STATS.closedSessions++;
    bump(STATS.closeCodes, String(code));
    const sum = {
      ...this.sum, closeCode: code, closeReason: reason, closedBy: this.closedBy || 'client',
      durationMs: Date.now() - this.t0, inputMs: Math.round(this.inMs * 100) / 100,
      outputAudioMs: Math.round(this.sum.outputAudioMs * 100) / 100,
      activeResponseAtClose: this.resp ? this.resp.id : null,
    };
    logLine('sys', this.id, { type: 'fake.closed', code, reason, by: sum.closedBy });
    process.stdout.write(JSON.stringify(sum) + '\n');
  }

  // --- receiving ---

  onMessage(data, isBinary) {
    if (this.closed || this.stalled) return;
    if (isBinary) {
      STATS.malformed++;
      logLine('in', this.id, { _binary: data.length });
      this.error('invalid_json', null, 'Binary frames are not supported; send JSON text messages.', null);
      return;
    }
    const text = data.toString('utf8');
    let ev;
    try {
      ev = JSON.parse(text);
    } catch (e) {
      STATS.malformed++;
      logLine('in', this.id, { _malformed: text.slice(0, 200) });
      this.error('invalid_json', null, `We could not parse the JSON body of your request. (${e.message})`, null);
      return;
    }
    if (!isObj(ev)) {
      STATS.malformed++;
      logLine('in', this.id, { _malformed: text.slice(0, 200) });
      this.error('invalid_json', null, 'Expected a JSON object.', null);
      return;
    }
    let logged = ev;
    let audio = null;
    if (ev.type === 'input_audio_buffer.append' && typeof ev.audio === 'string') {
      audio = decodeB64(ev.audio);
      logged = { ...ev, audio: audio ? audio.length : `<invalid base64, ${ev.audio.length} chars>` };
    }
    logLine('in', this.id, logged);
    const type = typeof ev.type === 'string' ? ev.type : '(none)';
    bump(STATS.eventsReceived, type);
    bump(this.sum.received, type);
    const eid = ev.event_id;
    if (eid !== undefined && (typeof eid !== 'string' || eid.length > 512)) {
      this.error('invalid_value', 'event_id', 'Invalid event_id: expected a string of at most 512 characters.', null);
      return;
    }
    try {
      this.dispatch(ev, audio);
    } catch (e) {
      if (e instanceof ReqError) this.error(e.code, e.param, e.message, eid);
      else this.internal(e);
    }
  }

  dispatch(ev, audio) {
    if (typeof ev.type === 'string' && EVENT_KEYS[ev.type]) onlyKeys(ev, ['type', 'event_id', ...EVENT_KEYS[ev.type]], null);
    switch (ev.type) {
      case undefined:
        throw missingParam('type');
      case 'session.update': {
        const m = mergeSession(this, ev.session);
        this.config = m;
        this.sum.sessionUpdates++;
        this.send({ type: 'session.updated', session: structuredClone(m) });
        if (!this.updatedOnce) {
          this.updatedOnce = true;
          this.afterFirstUpdate();
        }
        if (!m.audio.input.turn_detection) this.resetVad();
        return;
      }
      case 'input_audio_buffer.append':
        return this.append(ev, audio);
      case 'input_audio_buffer.commit':
        return this.manualCommit();
      case 'input_audio_buffer.clear':
        this.bufMs = 0;
        this.resetVad();
        this.send({ type: 'input_audio_buffer.cleared' });
        return;
      case 'response.create': {
        this.sum.responseCreates++;
        const params = checkResponseParams(ev.response);
        if (this.resp) {
          throw new ReqError('conversation_already_has_active_response',
            `Conversation already has an active response in progress: ${this.resp.id}. Wait until the response is finished before creating a new one.`, null);
        }
        this.startResponse('client', params);
        return;
      }
      case 'response.cancel': {
        STATS.cancels++;
        this.sum.cancels++;
        if (!this.resp || (ev.response_id !== undefined && ev.response_id !== this.resp.id))
          throw new ReqError('response_cancel_not_active', 'Cancellation failed: no active response found', null);
        this.finishResponse(this.resp, 'cancelled', 'client_cancelled');
        return;
      }
      case 'conversation.item.truncate':
        return this.truncate(ev);
      case 'conversation.item.delete':
        return this.deleteItem(ev);
      case 'conversation.item.create':
        return this.createItem(ev);
      case 'conversation.item.retrieve': {
        if (typeof ev.item_id !== 'string') throw missingParam('item_id');
        const it = this.items.get(ev.item_id);
        if (!it) throw itemNotFound(ev.item_id);
        this.send({ type: 'conversation.item.retrieved', item: publicItem(it) });
        return;
      }
      case 'output_audio_buffer.clear':
        throw new ReqError('invalid_value', 'output_audio_buffer.clear is only supported for WebRTC and SIP connections.', 'type');
      case 'transcription_session.update':
        throw new ReqError('invalid_value', 'transcription_session.update is not supported in a realtime session.', 'type');
      default:
        throw invalidValue('type', ev.type, 'Unknown client event type.');
    }
  }

  // --- input audio and server VAD ---

  append(ev, audio) {
    if (ev.audio === undefined) throw missingParam('audio');
    if (typeof ev.audio !== 'string') throw invalidType('audio', 'a string', ev.audio);
    if (!audio) throw new ReqError('invalid_value', 'Invalid \'audio\'. Expected base64-encoded audio bytes.', 'audio');
    if (audio.length > 15 * 1024 * 1024)
      throw new ReqError('invalid_value', 'Audio chunk too large: at most 15 MiB per append.', 'audio');
    STATS.appends++;
    STATS.inputBytes += audio.length;
    this.sum.appends++;
    this.sum.inputBytes += audio.length;
    if (!this.updatedOnce) {
      STATS.appendsBeforeUpdate++;
      this.sum.appendsBeforeUpdate++;
    }
    if (OPT.recordDir && audio.length) {
      if (this.inFd === null) this.inFd = fs.openSync(path.join(OPT.recordDir, `${this.id}.in.raw`), 'w');
      fs.writeSync(this.inFd, audio);
    }
    const fmt = this.config.audio.input.format;
    const ms = audio.length / fmtInfo(fmt).bpm;
    this.inMs += ms;
    this.bufMs += ms;
    this.feedVad(fmt, audio);
  }

  resetVad() {
    this.vad = { state: 'idle', loudMs: 0, onsetMs: 0, quietMs: 0, itemId: null, startMs: 0 };
  }

  feedVad(fmt, buf) {
    if (this.vadFmt !== fmt.type) {
      this.vadFmt = fmt.type;
      this.pending = new Int16Array(0);
      this.byteCarry = null;
    }
    let dec;
    if (fmt.type === 'audio/pcm') {
      if (this.byteCarry) {
        buf = Buffer.concat([this.byteCarry, buf]);
        this.byteCarry = null;
      }
      const n = buf.length >> 1;
      if (buf.length & 1) this.byteCarry = Buffer.from(buf.subarray(buf.length - 1));
      dec = new Int16Array(n);
      for (let i = 0; i < n; i++) dec[i] = buf.readInt16LE(i * 2);
    } else {
      const lut = fmt.type === 'audio/pcmu' ? ULAW_DEC : ALAW_DEC;
      dec = new Int16Array(buf.length);
      for (let i = 0; i < buf.length; i++) dec[i] = lut[buf[i]];
    }
    let all = dec;
    if (this.pending.length) {
      all = new Int16Array(this.pending.length + dec.length);
      all.set(this.pending);
      all.set(dec, this.pending.length);
    }
    const win = fmtInfo(fmt).rate / 50;
    let off = 0;
    for (; off + win <= all.length; off += win) {
      let sq = 0;
      for (let i = off; i < off + win; i++) sq += all[i] * all[i];
      const rms = Math.sqrt(sq / win);
      const startMs = this.vadMs;
      this.vadMs += 20;
      this.vadWindow(rms > OPT.vadRms, startMs, this.vadMs);
      if (this.closed || this.stalled) return;
    }
    this.pending = all.slice(off);
  }

  vadWindow(loud, startMs, endMs) {
    const td = this.config.audio.input.turn_detection;
    if (!td) return;
    const v = this.vad;
    if (v.state === 'idle') {
      if (!loud) {
        v.loudMs = 0;
        return;
      }
      if (v.loudMs === 0) v.onsetMs = startMs;
      v.loudMs += 20;
      if (v.loudMs < OPT.vadSpeechMs) return;
      const prefix = td.type === 'server_vad' ? td.prefix_padding_ms : 300;
      v.state = 'speech';
      v.quietMs = 0;
      v.itemId = `item_u${++this.n.u}`;
      v.startMs = Math.max(0, v.onsetMs - prefix);
      STATS.speechStarted++;
      this.sum.speechStarted++;
      this.send({ type: 'input_audio_buffer.speech_started', audio_start_ms: v.startMs, item_id: v.itemId });
      if (td.interrupt_response && this.resp) this.finishResponse(this.resp, 'cancelled', 'turn_detected');
      return;
    }
    if (loud) {
      v.quietMs = 0;
      return;
    }
    v.quietMs += 20;
    const silence = td.type === 'server_vad' ? td.silence_duration_ms : 500;
    if (v.quietMs < silence) return;
    const itemId = v.itemId;
    const speechStartMs = v.startMs;
    this.resetVad();
    STATS.speechStopped++;
    this.sum.speechStopped++;
    this.send({ type: 'input_audio_buffer.speech_stopped', audio_end_ms: endMs, item_id: itemId });
    this.commit(itemId, endMs - speechStartMs);
    if (td.create_response) {
      if (this.resp) {
        STATS.vadResponsesSkipped++;
        verbose(this.id, 'VAD response skipped: one is active');
      } else {
        this.startResponse('vad', {});
      }
    }
  }

  commit(itemId, durMs) {
    const prev = this.lastItemId();
    const it = { id: itemId, type: 'message', role: 'user', status: 'completed',
      content: [{ type: 'input_audio', transcript: null }], audioMs: durMs };
    this.addItem(it, prev);
    this.bufMs = 0;
    STATS.commits++;
    this.sum.commits++;
    this.send({ type: 'input_audio_buffer.committed', previous_item_id: prev, item_id: itemId });
    this.send({ type: 'conversation.item.added', previous_item_id: prev, item: publicItem(it) });
    this.send({ type: 'conversation.item.done', previous_item_id: prev, item: publicItem(it) });
    if (this.config.audio.input.transcription) {
      const text = OPT.transcript !== null ? OPT.transcript : `caller speech ${Math.round(durMs)} ms`;
      this.timer(OPT.transcriptDelayMs, () => {
        if (!this.items.has(itemId)) return;
        it.content[0].transcript = text;
        this.send({ type: 'conversation.item.input_audio_transcription.delta', item_id: itemId, content_index: 0, delta: text });
        this.send({ type: 'conversation.item.input_audio_transcription.completed', item_id: itemId, content_index: 0,
          transcript: text, usage: { type: 'duration', seconds: Math.round(durMs) / 1000 } });
      });
    }
  }

  manualCommit() {
    if (this.bufMs < 100) {
      throw new ReqError('input_audio_buffer_commit_empty',
        `Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, but buffer only has ${Math.floor(this.bufMs * 100) / 100}ms of audio.`, null);
    }
    const itemId = this.vad.state === 'speech' ? this.vad.itemId : `item_u${++this.n.u}`;
    const dur = this.bufMs;
    this.resetVad();
    this.commit(itemId, dur);
  }

  // --- conversation ---

  lastItemId() {
    return this.order.length ? this.order[this.order.length - 1] : null;
  }
  addItem(it, prev) {
    this.items.set(it.id, it);
    if (prev === undefined || prev === null || prev === 'root') {
      if (prev === 'root') this.order.unshift(it.id);
      else this.order.push(it.id);
    } else {
      const i = this.order.indexOf(prev);
      this.order.splice(i + 1, 0, it.id);
    }
  }

  createItem(ev) {
    const it = ev.item;
    checkItem(it);
    let prev = ev.previous_item_id;
    if (prev !== undefined && prev !== null && prev !== 'root' && !this.items.has(prev))
      throw new ReqError('invalid_value', `Previous item with id '${prev}' not found.`, 'previous_item_id');
    if (it.id !== undefined && this.items.has(it.id))
      throw new ReqError('invalid_value', `Item with id '${it.id}' already exists.`, 'item.id');
    if (it.type === 'function_call_output') {
      const call = this.calls.get(it.call_id);
      if (!call) throw new ReqError('invalid_value', `Tool call ID '${it.call_id}' not found in conversation.`, 'item.call_id');
      call.outputs++;
      STATS.functionOutputs++;
      if (call.outputs > 1) STATS.functionOutputsDuplicate++;
      this.sum.functionOutputs.push(it.call_id);
    }
    const item = structuredClone(it);
    delete item.object;
    item.id = it.id || `item_c${++this.n.c}`;
    item.status = 'completed';
    if (item.type === 'function_call') this.calls.set(item.call_id, { outputs: 0 });
    if (prev === undefined) prev = this.lastItemId();
    this.addItem(item, prev);
    STATS.itemsCreated++;
    this.sum.itemsCreated++;
    const pv = prev === 'root' ? null : prev;
    this.send({ type: 'conversation.item.added', previous_item_id: pv, item: publicItem(item) });
    this.send({ type: 'conversation.item.done', previous_item_id: pv, item: publicItem(item) });
    // Never a response of our own here (§9): the client sends response.create.
  }

  deleteItem(ev) {
    if (ev.item_id === undefined) throw missingParam('item_id');
    const rec = { session: this.id, item_id: ev.item_id, ok: false };
    capPush(STATS.deletes, rec);
    this.sum.deletes.push(ev.item_id);
    const it = this.items.get(ev.item_id);
    if (!it) throw itemNotFound(ev.item_id);
    this.items.delete(it.id);
    this.order.splice(this.order.indexOf(it.id), 1);
    rec.ok = true;
    this.send({ type: 'conversation.item.deleted', item_id: it.id });
  }

  truncate(ev) {
    const rec = { session: this.id, item_id: ev.item_id, content_index: ev.content_index,
      audio_end_ms: ev.audio_end_ms, result: 'error' };
    capPush(STATS.truncates, rec);
    this.sum.truncates.push({ item_id: ev.item_id, audio_end_ms: ev.audio_end_ms, result: 'error' });
    const srec = this.sum.truncates[this.sum.truncates.length - 1];
    if (ev.item_id === undefined) throw missingParam('item_id');
    if (ev.content_index === undefined) throw missingParam('content_index');
    if (ev.audio_end_ms === undefined) throw missingParam('audio_end_ms');
    if (!isInt(ev.content_index) || ev.content_index < 0) throw invalidValue('content_index', ev.content_index);
    if (!isInt(ev.audio_end_ms) || ev.audio_end_ms < 0) throw invalidValue('audio_end_ms', ev.audio_end_ms, 'Expected a non-negative integer.');
    const it = this.items.get(ev.item_id);
    if (!it) throw itemNotFound(ev.item_id);
    if (!(it.type === 'message' && it.role === 'assistant' && it.audioBytes !== undefined))
      throw new ReqError(null, 'Only model output audio messages can be truncated', null);
    if (ev.content_index !== 0) throw invalidValue('content_index', ev.content_index, 'The item has one content part.');
    const lenMs = Math.floor(it.audioBytes / it.bpm);
    if (ev.audio_end_ms > lenMs) {
      if (!OPT.truncateClamp) throw new ReqError(null, `Audio content of ${lenMs}ms is already shorter than ${ev.audio_end_ms}ms`, null);
      this.error(null, null, `Audio content of ${lenMs}ms is already shorter than ${ev.audio_end_ms}ms`, ev.event_id);
      rec.result = srec.result = 'clamped';
      this.applyTruncate(it, lenMs);
      return;
    }
    if (ev.audio_end_ms === 0) // strict: the fake rejects 0 (use conversation.item.delete), §9
      throw new ReqError('invalid_value', 'audio_end_ms must be greater than 0 (fake strictness: delete the item instead).', 'audio_end_ms');
    rec.result = srec.result = 'truncated';
    this.applyTruncate(it, ev.audio_end_ms);
  }

  applyTruncate(it, ms) {
    const fullMs = it.audioBytes / it.bpm;
    it.audioBytes = Math.min(it.audioBytes, ms * it.bpm);
    it.truncatedMs = ms;
    const t = it.content[0].transcript || '';
    if (fullMs > 0 && t) {
      const words = t.split(' ');
      it.content[0].transcript = words.slice(0, Math.floor((words.length * ms) / fullMs)).join(' ');
    }
    this.send({ type: 'conversation.item.truncated', item_id: it.id, content_index: 0, audio_end_ms: ms });
  }

  // --- responses ---

  startResponse(origin, params) {
    const outFmt = (params.audio && params.audio.output && params.audio.output.format)
      ? checkFormat(params.audio.output.format, 'response.audio.output.format')
      : this.config.audio.output.format;
    const modalities = params.output_modalities || this.config.output_modalities;
    const r = {
      id: `resp_${++this.n.resp}`, origin, status: 'in_progress', items: [], done: false,
      modalities, fmt: outFmt, voice: (params.audio && params.audio.output && params.audio.output.voice) || this.config.audio.output.voice,
      conversation: params.conversation === 'none' ? null : this.conversationId,
      maxTokens: params.max_output_tokens !== undefined ? params.max_output_tokens : this.config.max_output_tokens,
      instructions: params.instructions, metadata: params.metadata === undefined ? null : params.metadata,
      steps: [], stepIdx: 0, t0: 0, interval: OPT.burstFactor > 0 ? OPT.deltaMs / OPT.burstFactor : 0,
      timer: null, outTokens: 0,
    };
    this.resp = r;
    STATS.responses++;
    this.sum.responses++;
    this.send({ type: 'response.created', response: this.respObj(r) });
    this.send({ type: 'rate_limits.updated', rate_limits: [
      { name: 'requests', limit: 1000, remaining: Math.max(0, 1000 - STATS.responses), reset_seconds: 60 },
      { name: 'tokens', limit: 50000, remaining: Math.max(0, 50000 - STATS.responses * 50), reset_seconds: 60 },
    ] });
    if (origin === 'vad' && this.toolQueue.length) this.planTool(r, this.toolQueue.shift());
    else if (modalities[0] === 'text') this.planText(r);
    else this.planAudio(r);
    r.t0 = Date.now() + OPT.latencyMs;
    this.runSteps(r);
  }

  respObj(r, extra) {
    return {
      object: 'realtime.response', id: r.id, status: r.status, status_details: null, output: [],
      conversation_id: r.conversation, output_modalities: r.modalities, max_output_tokens: r.maxTokens,
      audio: { output: { format: r.fmt, voice: r.voice } }, usage: null, metadata: r.metadata, ...extra,
    };
  }

  newAssistantItem(r, item) {
    const prev = r.conversation ? this.lastItemId() : null;
    item.outputIndex = r.items.length;
    item.prev = prev;
    r.items.push(item);
    if (r.conversation) this.addItem(item, prev);
    this.send({ type: 'response.output_item.added', response_id: r.id, output_index: item.outputIndex, item: publicItem(item) });
    if (r.conversation) this.send({ type: 'conversation.item.added', previous_item_id: prev, item: publicItem(item) });
  }

  planAudio(r) {
    const item = { id: `item_a${++this.n.a}`, type: 'message', role: 'assistant', status: 'in_progress',
      content: [{ type: 'output_audio', transcript: '' }], audioBytes: 0, bpm: fmtInfo(r.fmt).bpm };
    this.newAssistantItem(r, item);
    const ids = { response_id: r.id, item_id: item.id, output_index: 0, content_index: 0 };
    this.send({ type: 'response.content_part.added', ...ids, part: { type: 'output_audio', transcript: '' } });
    const audio = replyAudio(r.fmt);
    const chunk = OPT.deltaMs * item.bpm;
    const nChunks = Math.max(1, Math.ceil(audio.length / chunk));
    const words = OPT.replyText.split(' ');
    let wordsSent = 0;
    for (let i = 0; i < nChunks; i++) {
      r.steps.push(() => {
        const piece = audio.subarray(i * chunk, Math.min(audio.length, (i + 1) * chunk));
        if (piece.length) {
          item.audioBytes += piece.length;
          this.audioOutBytes += piece.length;
          this.sum.outputAudioBytes += piece.length;
          this.sum.outputAudioMs += piece.length / item.bpm;
          r.outTokens += Math.ceil(piece.length / item.bpm / 50);
          if (OPT.recordDir) {
            if (this.outFd === null) this.outFd = fs.openSync(path.join(OPT.recordDir, `${this.id}.out.raw`), 'w');
            fs.writeSync(this.outFd, piece);
          }
          this.send({ type: 'response.output_audio.delta', ...ids, delta: piece.toString('base64') });
        }
        const upto = Math.floor(((i + 1) * words.length) / nChunks);
        if (upto > wordsSent) {
          const delta = (wordsSent ? ' ' : '') + words.slice(wordsSent, upto).join(' ');
          wordsSent = upto;
          item.content[0].transcript += delta;
          r.outTokens += 1;
          this.send({ type: 'response.output_audio_transcript.delta', ...ids, delta });
        }
      });
    }
    r.steps.push(() => this.finishResponse(r, 'completed'));
    r.closeItem = () => {
      const t = item.content[0].transcript;
      this.send({ type: 'response.output_audio.done', ...ids });
      this.send({ type: 'response.output_audio_transcript.done', ...ids, transcript: t });
      this.send({ type: 'response.content_part.done', ...ids, part: { type: 'output_audio', transcript: t } });
    };
  }

  planText(r) {
    const item = { id: `item_a${++this.n.a}`, type: 'message', role: 'assistant', status: 'in_progress',
      content: [{ type: 'output_text', text: '' }] };
    this.newAssistantItem(r, item);
    const ids = { response_id: r.id, item_id: item.id, output_index: 0, content_index: 0 };
    this.send({ type: 'response.content_part.added', ...ids, part: { type: 'output_text', text: '' } });
    const words = OPT.replyText.split(' ');
    words.forEach((w, i) => {
      r.steps.push(() => {
        const delta = (i ? ' ' : '') + w;
        item.content[0].text += delta;
        r.outTokens++;
        this.send({ type: 'response.output_text.delta', ...ids, delta });
      });
    });
    r.steps.push(() => this.finishResponse(r, 'completed'));
    r.closeItem = () => {
      const t = item.content[0].text;
      this.send({ type: 'response.output_text.done', ...ids, text: t });
      this.send({ type: 'response.content_part.done', ...ids, part: { type: 'output_text', text: t } });
    };
  }

  planTool(r, group) {
    r.closeItem = null;
    group.forEach((spec) => {
      let item;
      r.steps.push(() => {
        const callId = `call_${++this.n.call}`;
        item = { id: `item_f${++this.n.f}`, type: 'function_call', status: 'in_progress', name: spec.name,
          call_id: callId, arguments: '' };
        this.calls.set(callId, { outputs: 0 });
        STATS.toolCalls++;
        this.sum.toolCalls++;
        this.newAssistantItem(r, item);
        const half = Math.ceil(spec.args.length / 2);
        for (const part of [spec.args.slice(0, half), spec.args.slice(half)]) {
          if (!part) continue;
          item.arguments += part;
          this.send({ type: 'response.function_call_arguments.delta', response_id: r.id, item_id: item.id,
            output_index: item.outputIndex, call_id: callId, delta: part });
        }
        r.outTokens += 10;
      });
      r.steps.push(() => {
        this.send({ type: 'response.function_call_arguments.done', response_id: r.id, item_id: item.id,
          output_index: item.outputIndex, call_id: item.call_id, name: item.name, arguments: item.arguments });
        this.closeOutputItem(r, item, 'completed');
      });
    });
    r.steps.push(() => this.finishResponse(r, 'completed'));
  }

  closeOutputItem(r, item, status) {
    if (item.closed) return;
    item.closed = true;
    item.status = status;
    this.send({ type: 'response.output_item.done', response_id: r.id, output_index: item.outputIndex, item: publicItem(item) });
    if (r.conversation && this.items.has(item.id))
      this.send({ type: 'conversation.item.done', previous_item_id: item.prev, item: publicItem(item) });
  }

  runSteps(r) {
    if (r.done || this.closed || this.stalled) return;
    if (r.stepIdx >= r.steps.length) return;
    const due = r.t0 + r.stepIdx * r.interval;
    r.timer = this.timer(due - Date.now(), () => {
      r.timer = null;
      if (r.done) return;
      const step = r.steps[r.stepIdx++];
      step();
      this.runSteps(r);
    });
  }

  finishResponse(r, status, reason) {
    if (r.done) return;
    r.done = true;
    if (r.timer) {
      clearTimeout(r.timer);
      this.timers.delete(r.timer);
      r.timer = null;
    }
    r.status = status;
    if (r.closeItem && r.items.length) r.closeItem();
    for (const item of r.items) this.closeOutputItem(r, item, status === 'completed' ? 'completed' : 'incomplete');
    const inTok = 100 + Math.round(this.inMs / 100);
    const usage = {
      total_tokens: inTok + r.outTokens, input_tokens: inTok, output_tokens: r.outTokens,
      input_token_details: { text_tokens: 100, audio_tokens: inTok - 100, image_tokens: 0, cached_tokens: 0 },
      output_token_details: { text_tokens: Math.min(r.outTokens, 20), audio_tokens: Math.max(0, r.outTokens - 20) },
    };
    const details = status === 'cancelled' ? { type: 'cancelled', reason } : null;
    bump(STATS.responsesByStatus, status === 'cancelled' ? `cancelled/${reason}` : status);
    if (status === 'completed') this.sum.responsesCompleted++;
    if (status === 'cancelled') this.sum.responsesCancelled++;
    if (this.resp === r) this.resp = null;
    this.send({ type: 'response.done', response: this.respObj(r, {
      status_details: details, output: r.items.map(publicItem), usage,
    }) });
  }
}

function publicItem(it) {
  const o = { id: it.id, object: 'realtime.item', type: it.type, status: it.status };
  if (it.type === 'message') {
    o.role = it.role;
    o.content = structuredClone(it.content);
  } else if (it.type === 'function_call') {
    o.name = it.name;
    o.call_id = it.call_id;
    o.arguments = it.arguments;
  } else if (it.type === 'function_call_output') {
    o.call_id = it.call_id;
    o.output = it.output;
  }
  return o;
}

function itemNotFound(id) {
  return new ReqError('item_not_found', `Conversation item with id '${id}' not found.`, 'item_id');
}

function decodeB64(s) {
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return null;
  return Buffer.from(s, 'base64');
}

// --- HTTP: upgrades and control ---

function stats() {
  return {
    ...STATS,
    open: sessions.size,
    openSessions: [...sessions].map((s) => ({ session: s.id, model: s.info.model, ageMs: Date.now() - s.t0,
      activeResponse: s.resp ? s.resp.id : null, stalled: s.stalled })),
    refusing: refuseAll ? 'all' : refuseRemaining,
    refuseStatus,
  };
}

function json(res, code, body) {
  const b = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(b) });
  res.end(b);
}

function onRequest(req, res) {
  const u = new URL(req.url, 'http://localhost');
  if (u.pathname.startsWith('/_control/')) {
    if (req.method !== 'GET') return json(res, 405, { error: 'GET only' });
    const q = u.searchParams;
    switch (u.pathname) {
      case '/_control/stats':
        return json(res, 200, stats());
      case '/_control/refuse': {
        if (q.get('status')) {
          const st = Number(q.get('status'));
          if (!(st >= 100 && st <= 599)) return json(res, 400, { error: 'bad status' });
          refuseStatus = st;
        }
        if (q.get('all') === '1') refuseAll = true;
        else {
          const n = Number(q.get('n') === null ? '1' : q.get('n'));
          if (!(Number.isInteger(n) && n >= 0)) return json(res, 400, { error: 'bad n' });
          refuseRemaining = n;
        }
        logLine('sys', null, { type: 'fake.control', action: 'refuse', n: refuseRemaining, all: refuseAll });
        return json(res, 200, { ok: true, refusing: refuseAll ? 'all' : refuseRemaining, status: refuseStatus });
      }
      case '/_control/accept':
        refuseAll = false;
        refuseRemaining = 0;
        logLine('sys', null, { type: 'fake.control', action: 'accept' });
        return json(res, 200, { ok: true });
      case '/_control/reset':
        resetStats();
        logLine('sys', null, { type: 'fake.control', action: 'reset' });
        return json(res, 200, { ok: true });
      case '/_control/close': {
        const code = Number(q.get('code') || 1011);
        if (!(code === 1000 || code === 1001 || (code >= 1002 && code <= 1014 && ![1004, 1005, 1006].includes(code)) || (code >= 3000 && code <= 4999)))
          return json(res, 400, { error: 'bad close code' });
        const list = [...sessions];
        for (const s of list) s.close(code, q.get('reason') || 'closed by control');
        return json(res, 200, { ok: true, closed: list.length });
      }
      case '/_control/expire': {
        const list = [...sessions];
        for (const s of list) s.expire();
        return json(res, 200, { ok: true, expired: list.length });
      }
      default:
        return json(res, 404, { error: 'unknown control endpoint' });
    }
  }
  if (u.pathname === '/v1/realtime' || u.pathname === '/openai/v1/realtime')
    return json(res, 426, { error: { message: 'Upgrade to a WebSocket connection is required.', type: 'invalid_request_error' } });
  return json(res, 404, { error: { message: `Invalid URL (${req.method} ${u.pathname})`, type: 'invalid_request_error' } });
}

function rejectUpgrade(socket, code, body) {
  const b = JSON.stringify(body);
  const text = `HTTP/1.1 ${code} ${http.STATUS_CODES[code] || 'Error'}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(b)}\r\nConnection: close\r\n\r\n${b}`;
  try {
    socket.end(text);
  } catch (e) { /* gone */ }
  setTimeout(() => socket.destroy(), 1000).unref();
}

const wss = new WebSocket.Server({ noServer: true, perMessageDeflate: false, clientTracking: false, maxPayload: 64 * 1024 * 1024 });

function onUpgrade(req, socket, head) {
  socket.on('error', () => {});
  const u = new URL(req.url, 'http://localhost');
  const azure = u.pathname === '/openai/v1/realtime';
  if (u.pathname !== '/v1/realtime' && !azure) {
    STATS.badUpgrades++;
    logLine('sys', null, { type: 'fake.upgrade', status: 404, path: u.pathname });
    return rejectUpgrade(socket, 404, { error: { message: `Invalid URL (GET ${u.pathname})`, type: 'invalid_request_error', code: null } });
  }
  STATS.upgrades++;
  const go = () => {
    if (socket.destroyed) return;
    const info = { path: u.pathname, azure, model: u.searchParams.get('model') };
    const sys = (status, why) => logLine('sys', null, { type: 'fake.upgrade', status, path: u.pathname, model: info.model, why });
    if (refuseAll || refuseRemaining > 0) {
      if (!refuseAll) refuseRemaining--;
      STATS.refused++;
      sys(refuseStatus, 'refused');
      return rejectUpgrade(socket, refuseStatus, { error: { message: 'The server is overloaded. Please try again later.', type: 'server_error', code: null } });
    }
    const authz = req.headers.authorization || '';
    const m = /^Bearer (\S+)$/.exec(authz);
    let key = m ? m[1] : null;
    if (azure && req.headers['api-key'] !== undefined) key = req.headers['api-key'];
    if (!key || (OPT.key !== null && key !== OPT.key)) {
      STATS.unauthorized++;
      sys(401, key ? 'wrong key' : 'no key');
      return rejectUpgrade(socket, 401, { error: { message: key ? 'Incorrect API key provided.' : "You didn't provide an API key.", type: 'invalid_request_error', code: key ? 'invalid_api_key' : null } });
    }
    if (!info.model) {
      STATS.badUpgrades++;
      sys(400, 'no model');
      return rejectUpgrade(socket, 400, { error: { message: "Missing required parameter: 'model'.", type: 'invalid_request_error', code: 'missing_required_parameter', param: 'model' } });
    }
    if (azure && u.searchParams.has('api-version')) {
      STATS.badUpgrades++;
      sys(400, 'api-version on the GA path');
      return rejectUpgrade(socket, 400, { error: { message: "Unknown parameter: 'api-version'.", type: 'invalid_request_error', code: 'unknown_parameter', param: 'api-version' } });
    }
    const beta = req.headers['openai-beta'] !== undefined;
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, info, beta));
  };
  if (OPT.upgradeDelayMs > 0) setTimeout(go, OPT.upgradeDelayMs);
  else go();
}

function onConnection(ws, info, beta) {
  STATS.connections++;
  ws.on('error', (e) => verbose('socket error', e.message));
  if (beta) {
    logLine('sys', null, { type: 'fake.connected', path: info.path, model: info.model, beta });
    STATS.betaRejected++;
    const ev = { type: 'error', event_id: `event_beta_${rid(6)}`, error: { type: 'invalid_request_error',
      code: 'beta_api_shape_disabled', message: 'The beta Realtime API shape is disabled for this model; remove the OpenAI-Beta header and use the GA interface.',
      param: null, event_id: null } };
    STATS.errorsSent++;
    bump(STATS.errorsByCode, 'beta_api_shape_disabled');
    bump(STATS.eventsSent, 'error');
    logLine('out', null, ev);
    ws.send(JSON.stringify(ev));
    ws.close(4000, 'beta api shape disabled');
    return;
  }
  const s = new Session(ws, info);
  sessions.add(s);
  logLine('sys', s.id, { type: 'fake.connected', path: info.path, model: info.model, beta });
  ws.on('message', (data, isBinary) => {
    try {
      s.onMessage(data, isBinary);
    } catch (e) {
      s.internal(e);
    }
  });
  ws.on('close', (code, reason) => s.onClosed(code, reason.toString()));
  s.start();
  verbose('session', s.id, 'model', info.model);
}

// --- main ---

let server;
if (OPT.tls) {
  server = https.createServer({ cert: fs.readFileSync(OPT.tls[0]), key: fs.readFileSync(OPT.tls[1]) }, onRequest);
} else {
  server = http.createServer(onRequest);
}
server.on('upgrade', onUpgrade);
server.on('clientError', (err, socket) => {
  try { socket.destroy(); } catch (e) { /* */ }
});
server.on('tlsClientError', (err) => verbose('tls client error', err.message));
server.listen(OPT.port, OPT.host, () => {
  process.stdout.write(JSON.stringify({ listening: server.address().port }) + '\n');
});
server.on('error', (e) => {
  process.stderr.write(`realtime.js: ${e.message}\n`);
  process.exit(1);
});

function shutdown() {
  for (const s of [...sessions]) {
    s.closedBy = 'fake-exit';
    s.onClosed(1001, 'fake exiting');
    try { s.ws.terminate(); } catch (e) { /* */ }
  }
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
