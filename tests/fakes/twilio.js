#!/usr/bin/env node
// tests/fakes/twilio.js: a fake Twilio for integration tests, following
// ../shared/reference/twilio.md §7 message by message. It plays Twilio's side of one or
// more calls against the daemon on 127.0.0.1:
//
//   1. (--answer) POST /twilio/answer, form-encoded and signed over the PUBLIC URL
//      (--public-base + path) with the twilio npm package; check the TwiML (200, XML
//      type, declaration at byte 0, one <Connect><Stream> with a wss:// URL without
//      '?', port 443, no track, each <Parameter> name + value < 500 chars) and take
//      its Stream url and Parameters.
//   2. WebSocket to ws://HOST:PORT<path of the stream URL>, X-Twilio-Signature computed
//      over the wss:// stream URL from the TwiML (or --ws-url).
//   3. connected, start (sequenceNumber "1", customParameters = the TwiML Parameters),
//      then media every 20 ms of audio, real time (or --fast), chunk from "1",
//      timestamp +20; optional timestamp gaps, dtmf, shuffled key order.
//   4. Plays back what the daemon sends: only media/mark/clear with our streamSid,
//      base64 payloads that are not RIFF/WAV. One FIFO of audio and marks drained at
//      8 bytes/ms; a mark is echoed when reached; clear drops the audio and echoes the
//      queued marks in order.
//   5. Ends with stop + Close (or --bare-close, or --drop: TCP gone without a Close).
//
// Usage: node tests/fakes/twilio.js --port P [options]
//   --port P               daemon port on --host (127.0.0.1); required
//   --token T              auth token: sign the webhook and the upgrade (none: unsigned)
//   --public-base URL      public base URL the webhook is signed over (https://example.com)
//   --answer               do step 1 first; otherwise the stream URL is --ws-url or
//                          <public-base as wss>/ws/twilio, the parameters From/To/CallSid
//   --answer-path PATH     webhook path (/twilio/answer)
//   --ws-url URL           stream URL to sign (overrides the TwiML's)
//   --ws-path PATH         local path to connect to (default: the stream URL's path)
//   --ws-sig MODE          good | none | wrong | https | slash | port (negative cases §7.7)
//   --expect-upgrade-status N   ok only if the upgrade is answered N (e.g. 403), no 101
//   --seconds S            S seconds of 0xFF silence (default 2)
//   --audio FILE           raw mu-law 8 kHz mono to send instead (last frame padded 0xFF)
//   --frame-bytes N        bytes per media message (160 = 20 ms, Twilio's size)
//   --fast                 send media as fast as possible (playback then runs on the
//                          virtual clock of the audio sent; real time once it ends)
//   --gap-at-ms X[,X2..] --gap-ms Y[,Y2..]   at media time X skip Y ms: no messages,
//                          that audio lost, timestamp jumps by Y
//   --dtmf D@MS[,D@MS..]   send dtmf digit D before the first media at time >= MS
//   --shuffle [--seed N]   random key order in every object of every message
//   --linger-ms M          keep the stream open M ms after the last media (0)
//   --wait-playback        ... and until the playback FIFO is empty
//   --bare-close | --drop  end with a Close but no stop | drop TCP with no Close
//   --close-code N         code of our Close (1000)
//   --no-read              stop reading the socket right after the upgrade (socket
//                          paused, we keep sending); --no-read-after-ms N: N ms later.
//                          Reading resumes only to finish the close handshake.
//   --expect-daemon-close  the daemon is expected to close first (else it is an error)
//   --out FILE             write the received audio (raw mu-law); FILE.<i> per call
//   --call-sid CA.. --stream-sid MZ.. --account-sid AC.. --from +1.. --to +1..
//   --param NAME=VALUE     custom parameter (repeatable; replaces the defaults when
//                          there is no --answer); --no-params: send {}
//   --concurrency N        N independent calls at once, distinct call and stream SIDs
//   --timeout-ms N         watchdog per call (default: audio length + 20 s)
//   --verbose              progress on stderr
//   --play-tick-ms N       playback clock tick (5)
//
// Output: one JSON line per call on stdout,
//   {"ok":bool,"closeCode":n,"closeReason":"...","sentFrames":n,"receivedBytes":n,
//    "marksEchoed":n,"errors":[...], ...details}
// "lateBytes"/"lateEvents": audio that was due while the playback FIFO was empty in the
// middle of one item (starved between two marks of the same g<gen>:<item> prefix, the
// daemon's mark names): frames that came too late to play on time.
// and with --concurrency > 1 a last line aggregating them ("calls", "okCalls").
// Exit code 0 when every call is ok, 1 otherwise, 2 on bad usage.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');

const WebSocket = require(path.join(__dirname, '../node/node_modules/ws'));

function loadSigner() {
  // The webhooks module alone loads in a third of the time of the whole package.
  try {
    return require(path.join(__dirname, '../node/node_modules/twilio/lib/webhooks/webhooks'))
      .getExpectedTwilioSignature;
  } catch (e) {
    return require(path.join(__dirname, '../node/node_modules/twilio')).getExpectedTwilioSignature;
  }
}

// --- command line ---

const SPEC = {
  port: 'int', host: 'str', token: 'str', 'public-base': 'str', answer: 'flag',
  'answer-path': 'str', 'ws-url': 'str', 'ws-path': 'str', 'ws-sig': 'str',
  'expect-upgrade-status': 'int', seconds: 'num', audio: 'str', 'frame-bytes': 'int',
  fast: 'flag', 'gap-at-ms': 'str', 'gap-ms': 'str', dtmf: 'str', shuffle: 'flag', seed: 'int',
  'linger-ms': 'int', 'wait-playback': 'flag', 'bare-close': 'flag', drop: 'flag',
  'close-code': 'int', 'no-read': 'flag', 'no-read-after-ms': 'int',
  'expect-daemon-close': 'flag', out: 'str', 'call-sid': 'str', 'stream-sid': 'str',
  'account-sid': 'str', from: 'str', to: 'str', param: 'list', 'no-params': 'flag',
  concurrency: 'int', 'timeout-ms': 'int', verbose: 'flag', help: 'flag',
  'play-tick-ms': 'int',
};

function usage(msg) {
  process.stderr.write(`twilio.js: ${msg}\nsee the header of ${__filename} for usage\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = { param: [] };
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
  if (o.port === undefined) usage('--port is required');
  if (o.seconds !== undefined && o.audio !== undefined) usage('--seconds or --audio, not both');
  if (o['bare-close'] && o.drop) usage('--bare-close or --drop, not both');
  const sig = o['ws-sig'] || 'good';
  if (!['good', 'none', 'wrong', 'https', 'slash', 'port'].includes(sig))
    usage(`--ws-sig: unknown mode ${sig}`);
  o['ws-sig'] = sig;
  o.host = o.host || '127.0.0.1';
  o['public-base'] = (o['public-base'] || 'https://example.com').replace(/\/+$/, '');
  o['answer-path'] = o['answer-path'] || '/twilio/answer';
  o['frame-bytes'] = o['frame-bytes'] || 160;
  o['linger-ms'] = o['linger-ms'] || 0;
  o['close-code'] = o['close-code'] || 1000;
  o.concurrency = o.concurrency || 1;
  o['play-tick-ms'] = o['play-tick-ms'] || 5;
  o.from = o.from || '+15551230000';
  o.to = o.to || '+15559870000';
  o.seed = o.seed !== undefined ? o.seed : crypto.randomBytes(4).readUInt32LE(0);
  const gapAt = o['gap-at-ms'] ? o['gap-at-ms'].split(',').map(Number) : [];
  const gapMs = o['gap-ms'] ? o['gap-ms'].split(',').map(Number) : [];
  if (gapAt.length !== gapMs.length || [...gapAt, ...gapMs].some((n) => !(n >= 0)))
    usage('--gap-at-ms and --gap-ms need as many non-negative numbers each');
  o.gaps = gapAt.map((at, i) => ({ at, ms: gapMs[i] })).sort((a, b) => a.at - b.at);
  o.dtmfs = [];
  for (const d of o.dtmf ? o.dtmf.split(',') : []) {
    const m = /^([0-9*#])@(\d+)$/.exec(d);
    if (!m) usage(`--dtmf: ${d} is not DIGIT@MS`);
    o.dtmfs.push({ digit: m[1], at: Number(m[2]) });
  }
  o.dtmfs.sort((a, b) => a.at - b.at);
  o.params = [];
  for (const p of o.param) {
    const eqp = p.indexOf('=');
    if (eqp <= 0) usage(`--param: ${p} is not NAME=VALUE`);
    o.params.push([p.slice(0, eqp), p.slice(eqp + 1)]);
  }
  return o;
}

// --- helpers ---

const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const now = () => performance.now();
const sid = (prefix) => prefix + crypto.randomBytes(16).toString('hex');

// mulberry32: a seeded PRNG, so a shuffled run can be repeated with --seed.
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled(v, rand) {
  if (Array.isArray(v)) return v.map((x) => shuffled(x, rand));
  if (!v || typeof v !== 'object') return v;
  const keys = Object.keys(v);
  for (let i = keys.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [keys[i], keys[j]] = [keys[j], keys[i]];
  }
  const o = {};
  for (const k of keys) o[k] = shuffled(v[k], rand);
  return o;
}

const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function xmlDecode(s) {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (m, e) => {
    if (e[0] === '#')
      return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    return { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[e];
  });
}

// A small XML reader, enough for TwiML: elements with attributes, nesting checked.
// Returns the root {name, attrs, children} or throws with the reason.
function parseXml(text) {
  let i = 0;
  const decl = /^<\?xml[^?]*\?>/.exec(text);
  if (!decl) throw new Error('no XML declaration at byte 0');
  i = decl[0].length;
  const root = { name: '#doc', attrs: {}, children: [] };
  const stack = [root];
  const tagRe = /<(\/?)([A-Za-z_][\w:.-]*)((?:\s+[A-Za-z_][\w:.-]*\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>/y;
  const attrRe = /([A-Za-z_][\w:.-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')/g;
  while (i < text.length) {
    const lt = text.indexOf('<', i);
    const chunk = lt < 0 ? text.slice(i) : text.slice(i, lt);
    if (stack.length === 1 && chunk.trim()) throw new Error('text outside the root element');
    if (/&(?!(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);)/.test(chunk))
      throw new Error('bare & in text');
    if (stack.length > 1 && chunk) stack[stack.length - 1].text += xmlDecode(chunk);
    if (lt < 0) break;
    if (text.startsWith('<!--', lt)) {
      const end = text.indexOf('-->', lt + 4);
      if (end < 0) throw new Error('unterminated comment');
      i = end + 3;
      continue;
    }
    tagRe.lastIndex = lt;
    const m = tagRe.exec(text);
    if (!m) throw new Error(`bad markup at byte ${lt}`);
    i = tagRe.lastIndex;
    const [, close, name, attrText, selfClose] = m;
    if (close) {
      if (attrText || selfClose) throw new Error(`bad end tag </${name}>`);
      const top = stack.pop();
      if (top.name !== name) throw new Error(`</${name}> closes <${top.name}>`);
      continue;
    }
    const attrs = {};
    for (const a of attrText.matchAll(attrRe)) {
      if (a[1] in attrs) throw new Error(`duplicate attribute ${a[1]} on <${name}>`);
      const raw = a[2] !== undefined ? a[2] : a[3];
      if (/&(?!(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);)/.test(raw))
        throw new Error(`bare & in attribute ${a[1]}`);
      attrs[a[1]] = xmlDecode(raw);
    }
    const el = { name, attrs, children: [], text: '' };
    if (stack.length === 1 && root.children.length) throw new Error('two root elements');
    stack[stack.length - 1].children.push(el);
    if (!selfClose) stack.push(el);
  }
  if (stack.length !== 1) throw new Error(`<${stack[stack.length - 1].name}> not closed`);
  if (root.children.length !== 1) throw new Error('no root element');
  return root.children[0];
}

function findAll(el, name, out = []) {
  for (const c of el.children) {
    if (c.name === name) out.push(c);
    findAll(c, name, out);
  }
  return out;
}

function post(host, port, pathName, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host, port, path: pathName, method: 'POST', headers, agent: false },
      (res) => {
        const parts = [];
        res.on('data', (d) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers,
          body: Buffer.concat(parts).toString('utf8') }));
        res.on('error', reject);
      });
    req.setTimeout(10000, () => req.destroy(new Error('webhook timed out after 10 s')));
    req.on('error', reject);
    req.end(body);
  });
}

// --- one call ---

class Call {
  constructor(index, o, shared) {
    this.i = index;
    this.o = o;
    this.shared = shared;
    this.rand = prng(o.seed + index);
    const first = index === 0;
    this.callSid = (first && o['call-sid']) || sid('CA');
    this.streamSid = (first && o['stream-sid']) || sid('MZ');
    this.accountSid = shared.accountSid;
    this.errors = [];
    this.seq = 0;
    this.sentFrames = 0;
    this.sentMessages = 0;
    this.receivedBytes = 0;
    this.receivedMessages = 0;
    this.receivedMedia = 0;
    this.receivedMarks = 0;
    this.clears = 0;
    this.playedAtClear = []; // playedBytes when each clear arrived
    this.marksEchoed = 0;
    this.playedBytes = 0;
    this.clearedBytes = 0;
    this.oddPayloads = 0; // not k x 160 bytes: the field says such audio may not play
    this.afterStop = 0;
    this.fifo = []; // {audio: Buffer, off} | {mark: name}
    this.fifoBytes = 0;
    this.received = o.out ? [] : null;
    this.closeCode = 0;
    this.closeReason = '';
    this.closedBy = null;
    this.upgradeStatus = null;
    this.stopSent = false;
    this.closing = false;
    this.closed = false;
    this.timedOut = false;
    this.socketErrors = [];
    this.paused = false;
    this.starved = 0; // bytes due while the FIFO had no audio, since the last mark
    this.lastMarkKey = null; // g<gen>:<item> of the last mark reached
    this.lateBytes = 0;
    this.lateEvents = 0;
  }

  log(msg) {
    if (this.o.verbose) process.stderr.write(`[call ${this.i} ${this.callSid}] ${msg}\n`);
  }

  err(msg) {
    this.log(`error: ${msg}`);
    if (this.errors.length < 20) this.errors.push(msg);
    else if (this.errors.length === 20) this.errors.push('... more errors dropped');
  }

  // --- step 1: the answer webhook ---

  async answer() {
    const o = this.o;
    const params = {
      AccountSid: this.accountSid, ApiVersion: '2010-04-01', CallSid: this.callSid,
      CallStatus: 'ringing', Called: o.to, Caller: o.from, Direction: 'inbound',
      From: o.from, FromCountry: 'US', To: o.to, ToCountry: 'US',
    };
    const body = new URLSearchParams(params).toString();
    const headers = {
      'Content-Type': 'application/x-www-form-urlencoded',
      'Content-Length': Buffer.byteLength(body),
      'User-Agent': 'TwilioProxy/1.1',
      'I-Twilio-Idempotency-Token': crypto.randomUUID(),
    };
    if (o.token !== undefined) {
      const publicUrl = o['public-base'] + o['answer-path'];
      headers['X-Twilio-Signature'] = this.shared.signer()(o.token, publicUrl, params);
    }
    let res;
    try {
      res = await post(o.host, o.port, o['answer-path'], headers, body);
    } catch (e) {
      this.err(`webhook: ${e.message}`);
      return false;
    }
    this.answerStatus = res.status;
    if (res.status !== 200) {
      this.err(`webhook answered ${res.status} (Twilio: 11200)`);
      return false;
    }
    const ct = res.headers['content-type'] || '';
    if (!/^(text|application)\/xml\b/i.test(ct)) this.err(`webhook Content-Type ${ct}, not XML`);
    if (!res.body.startsWith('<?xml'))
      this.err('TwiML does not start with <?xml at byte 0 (Twilio: 12100)');
    let doc;
    try {
      doc = parseXml(res.body.replace(/^\s+/, ''));
    } catch (e) {
      this.err(`TwiML does not parse: ${e.message} (Twilio: 12100)`);
      return false;
    }
    if (doc.name !== 'Response') this.err(`TwiML root is <${doc.name}>, not <Response>`);
    const streams = findAll(doc, 'Stream');
    const connects = doc.children.filter((c) => c.name === 'Connect');
    if (!streams.length) {
      this.refused = true;
      this.err(findAll(doc, 'Hangup').length ? 'call refused: TwiML hangs up'
        : 'TwiML has no <Connect><Stream>');
      return false;
    }
    if (streams.length > 1) this.err(`${streams.length} <Stream> elements, one allowed`);
    const stream = streams[0];
    if (!connects.length || !connects[0].children.includes(stream))
      this.err('<Stream> is not directly inside <Response><Connect>');
    const url = stream.attrs.url;
    if (!url) {
      this.err('<Stream> without url');
      return false;
    }
    this.checkStreamUrl(url);
    if ('track' in stream.attrs && stream.attrs.track !== 'inbound_track')
      this.err(`<Stream track="${stream.attrs.track}"> (Twilio: 31941)`);
    this.params = [];
    for (const p of stream.children) {
      if (p.name !== 'Parameter') {
        this.err(`<${p.name}> inside <Stream>`);
        continue;
      }
      const { name, value } = p.attrs;
      if (typeof name !== 'string' || !name || typeof value !== 'string') {
        this.err('<Parameter> without name or value');
        continue;
      }
      const chars = [...name].length + [...value].length;
      if (chars >= 500) this.err(`<Parameter name="${name}">: name + value ${chars} chars, < 500`);
      this.params.push([name, value]);
    }
    this.streamUrl = url;
    this.log(`TwiML stream ${url} with ${this.params.length} parameters`);
    return true;
  }

  checkStreamUrl(url) {
    if (!url.startsWith('wss://')) this.err(`stream url ${url} is not wss:// (Twilio: 31922)`);
    if (url.includes('?')) this.err(`stream url ${url} has a query string (Twilio: 31920)`);
    if (url.includes('#')) this.err(`stream url ${url} has a fragment`);
    try {
      const u = new URL(url);
      if (u.port && u.port !== '443') this.err(`stream url ${url}: port must be 443 (Twilio: 31910)`);
    } catch (e) {
      this.err(`stream url ${url} does not parse`);
    }
  }

  // --- step 2: the upgrade ---

  signatureFor(wsUrl) {
    const o = this.o;
    if (o.token === undefined || o['ws-sig'] === 'none') return null;
    const sign = (u) => this.shared.signer()(o.token, u, {});
    switch (o['ws-sig']) {
      case 'wrong': {
        const s = sign(wsUrl);
        return (s[0] === 'A' ? 'B' : 'A') + s.slice(1);
      }
      case 'https':
        return sign(wsUrl.replace(/^wss:/, 'https:'));
      case 'slash':
        return sign(wsUrl + '/');
      case 'port': {
        const u = new URL(wsUrl);
        return sign(`${u.protocol}//${u.hostname}:443${u.pathname}`);
      }
      default:
        return sign(wsUrl);
    }
  }

  openSocket() {
    const o = this.o;
    const wsUrl = this.streamUrl;
    let localPath = o['ws-path'];
    if (!localPath) {
      try {
        localPath = new URL(wsUrl).pathname;
      } catch (e) {
        localPath = '/ws/twilio';
      }
    }
    const headers = { 'User-Agent': 'Twilio.TmeWs/1.0' };
    const sig = this.signatureFor(wsUrl);
    if (sig) headers['X-Twilio-Signature'] = sig;
    const target = `ws://${o.host}:${o.port}${localPath}`;
    this.log(`connecting ${target}, signed over ${wsUrl} (${o['ws-sig']})`);
    return new Promise((resolve) => {
      let settled = false;
      const settle = (v) => {
        if (!settled) {
          settled = true;
          resolve(v);
        }
      };
      const ws = new WebSocket(target, { headers, perMessageDeflate: false,
        handshakeTimeout: 10000, followRedirects: false });
      this.ws = ws;
      this.closedPromise = new Promise((r) => { this.resolveClosed = r; });
      ws.on('unexpected-response', (req, res) => {
        this.upgradeStatus = res.statusCode;
        res.resume();
        if (o['expect-upgrade-status'] !== res.statusCode)
          this.err(`upgrade answered ${res.statusCode}, not 101 (Twilio: 31920)`);
        this.rejected = true;
        req.destroy();
        ws.terminate();
        settle(false);
      });
      ws.on('upgrade', (res) => { this.upgradeStatus = res.statusCode; });
      ws.on('open', () => {
        if (o['expect-upgrade-status'] !== undefined)
          this.err(`upgrade answered 101, expected ${o['expect-upgrade-status']}`);
        this.openedAt = now();
        settle(true);
      });
      ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
      ws.on('error', (e) => {
        if (!this.rejected) this.socketErrors.push(e.message);
        settle(false);
      });
      ws.on('close', (code, reason) => {
        this.closed = true;
        if (this.openedAt !== undefined) {
          this.closeCode = code;
          this.closeReason = reason.toString();
          if (!this.closedBy) this.closedBy = code === 1006 ? 'tcp' : 'daemon';
        }
        this.log(`closed ${code} ${reason} by ${this.closedBy}`);
        this.resolveClosed();
        settle(false);
      });
    });
  }

  // --- step 3: what we send ---

  send(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    const m = this.o.shuffle ? shuffled(msg, this.rand) : msg;
    this.ws.send(JSON.stringify(m));
    this.sentMessages++;
    return true;
  }

  nextSeq() {
    return String(++this.seq);
  }

  sendConnectedStart() {
    this.send({ event: 'connected', protocol: 'Call', version: '1.0.0' });
    const custom = {};
    for (const [k, v] of this.params) custom[k] = v;
    this.send({
      event: 'start',
      sequenceNumber: this.nextSeq(),
      start: {
        accountSid: this.accountSid,
        streamSid: this.streamSid,
        callSid: this.callSid,
        tracks: ['inbound'],
        customParameters: custom,
        mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
      },
      streamSid: this.streamSid,
    });
  }

  sendDtmfDue(ts) {
    while (this.dtmfIdx < this.o.dtmfs.length && this.o.dtmfs[this.dtmfIdx].at <= ts) {
      const d = this.o.dtmfs[this.dtmfIdx++];
      this.send({ event: 'dtmf', streamSid: this.streamSid, sequenceNumber: this.nextSeq(),
        dtmf: { track: 'inbound_track', digit: d.digit } });
      this.log(`dtmf ${d.digit} at ${ts} ms`);
    }
  }

  async streamMedia() {
    const o = this.o;
    const audio = this.shared.audio;
    const fb = o['frame-bytes'];
    const frameMs = fb / 8;
    const t0 = now();
    let ts = 0;
    let gapIdx = 0;
    let chunk = 0;
    this.dtmfIdx = 0;
    while (!this.closed && !this.ending) {
      while (gapIdx < o.gaps.length && o.gaps[gapIdx].at <= ts) {
        const g = o.gaps[gapIdx++];
        this.log(`gap of ${g.ms} ms at ${ts} ms`);
        if (o.fast) this.play(g.ms * 8); // the audio clock runs on during a gap
        ts += g.ms;
      }
      const off = Math.round(ts * 8);
      if (off >= audio.length) break;
      if (!o.fast) {
        await sleep(t0 + ts - now());
        if (this.closed || this.ending) break;
      }
      this.sendDtmfDue(ts);
      let frame = audio.subarray(off, off + fb);
      if (frame.length < fb) frame = Buffer.concat([frame, Buffer.alloc(fb - frame.length, 0xff)]);
      const sent = this.send({
        event: 'media',
        sequenceNumber: this.nextSeq(),
        media: { track: 'inbound', chunk: String(++chunk), timestamp: String(Math.round(ts)),
          payload: frame.toString('base64') },
        streamSid: this.streamSid,
      });
      if (!sent) break;
      this.sentFrames++;
      ts += frameMs;
      if (o.fast) {
        this.play(fb);
        // let replies in, and keep our own send queue bounded
        await new Promise((r) => setImmediate(r));
        while (this.ws.bufferedAmount > (4 << 20) && !this.closed) await sleep(1);
      }
    }
    this.sendDtmfDue(Infinity);
    this.mediaMs = ts;
  }

  // --- step 4: what the daemon sends, and playback ---

  onMessage(data, isBinary) {
    this.receivedMessages++;
    if (this.stopSent) this.afterStop++;
    if (isBinary) {
      this.err('daemon sent a binary message (Twilio: 31924)');
      return;
    }
    let m;
    try {
      m = JSON.parse(data.toString('utf8'));
    } catch (e) {
      this.err(`daemon sent invalid JSON (Twilio: 31924): ${data.toString('utf8').slice(0, 80)}`);
      return;
    }
    if (!m || typeof m !== 'object' || Array.isArray(m)) {
      this.err('daemon sent JSON that is not an object (Twilio: 31924)');
      return;
    }
    if (m.event !== 'media' && m.event !== 'mark' && m.event !== 'clear') {
      this.err(`daemon sent event ${JSON.stringify(m.event)}: only media, mark, clear (Twilio: 31924)`);
      return;
    }
    if (m.streamSid !== this.streamSid) {
      this.err(`daemon ${m.event} with streamSid ${JSON.stringify(m.streamSid)}, not ${this.streamSid}`);
      return;
    }
    if (m.event === 'media') {
      const p = m.media && typeof m.media === 'object' ? m.media.payload : undefined;
      if (typeof p !== 'string') {
        this.err('daemon media without a media.payload string');
        return;
      }
      if (!B64_RE.test(p)) {
        this.err('daemon media payload is not padded base64');
        return;
      }
      const buf = Buffer.from(p, 'base64');
      if (buf.length >= 4 && buf.subarray(0, 4).toString('latin1') === 'RIFF') {
        this.err('daemon media payload is a RIFF/WAV file: Twilio plays raw mu-law only');
        return;
      }
      if (buf.length === 0 || buf.length % 160) this.oddPayloads++;
      this.receivedMedia++;
      this.receivedBytes += buf.length;
      if (this.received) this.received.push(buf);
      if (buf.length) {
        this.fifo.push({ audio: buf, off: 0 });
        this.fifoBytes += buf.length;
      }
    } else if (m.event === 'mark') {
      if (!m.mark || typeof m.mark !== 'object' || typeof m.mark.name !== 'string') {
        this.err('daemon mark without a mark.name string');
        return;
      }
      this.receivedMarks++;
      this.fifo.push({ mark: m.mark.name });
      this.play(0); // echoed at once when no audio is queued before it
    } else {
      this.clears++;
      this.playedAtClear.push(this.playedBytes);
      const marks = this.fifo.filter((x) => x.mark !== undefined);
      this.clearedBytes += this.fifoBytes;
      this.fifo = [];
      this.fifoBytes = 0;
      this.starved = 0;
      for (const x of marks) this.echoMark(x.mark);
      this.lastMarkKey = null;
    }
  }

  echoMark(name) {
    if (this.stopSent || this.closing) return;
    if (this.send({ event: 'mark', sequenceNumber: this.nextSeq(), streamSid: this.streamSid,
      mark: { name } })) this.marksEchoed++;
  }

  // A mark reached by playback: the FIFO starved since the previous mark of the same item
  // means frames of that item came late.
  markReached(name) {
    const colon = name.lastIndexOf(':');
    const key = colon > 0 ? name.slice(0, colon) : null;
    if (this.starved > 0 && key !== null && key === this.lastMarkKey) {
      this.lateBytes += this.starved;
      this.lateEvents++;
    }
    this.starved = 0;
    this.lastMarkKey = key;
  }

  // Plays up to n bytes from the FIFO, echoing each mark reached; returns the bytes of n
  // that found no audio.
  play(n) {
    while (this.fifo.length) {
      const head = this.fifo[0];
      if (head.mark !== undefined) {
        this.fifo.shift();
        this.markReached(head.mark);
        this.echoMark(head.mark);
        continue;
      }
      if (n <= 0) break;
      const take = Math.min(n, head.audio.length - head.off);
      head.off += take;
      n -= take;
      this.playedBytes += take;
      this.fifoBytes -= take;
      if (head.off === head.audio.length) this.fifo.shift();
    }
    return n > 0 ? n : 0;
  }

  // Real-time playback clock: 8 bytes per elapsed ms; no credit banked while idle.
  startPlayback() {
    if (this.playTimer) return;
    let last = now();
    let credit = 0;
    this.playTimer = setInterval(() => {
      const t = now();
      credit += (t - last) * 8;
      last = t;
      if (!this.fifoBytes) {
        this.starved += Math.floor(credit);
        credit = 0;
      }
      const n = Math.floor(credit);
      credit -= n;
      const short = this.play(n); // may reach a mark, which resets starved
      this.starved += short;
    }, this.o['play-tick-ms']);
  }

  // --- step 5: the end ---

  async end() {
    const o = this.o;
    if (this.closed) return;
    this.ending = true;
    if (this.ws.readyState !== WebSocket.OPEN) {
      // the daemon's Close (or a dropped TCP) is already under way: 'close' says which
      await this.closedPromise;
      return;
    }
    if (this.paused) {
      this.ws.resume();
      this.paused = false;
    }
    if (o.drop) {
      this.closedBy = 'fake';
      this.closing = true;
      this.ws.terminate();
    } else {
      if (!o['bare-close']) {
        this.send({ event: 'stop', sequenceNumber: this.nextSeq(),
          stop: { accountSid: this.accountSid, callSid: this.callSid }, streamSid: this.streamSid });
      }
      this.stopSent = true;
      this.closedBy = 'fake';
      this.closing = true;
      this.ws.close(o['close-code']);
    }
    const t = setTimeout(() => {
      if (!this.closed) {
        this.err('daemon did not answer our Close within 5 s');
        this.ws.terminate();
      }
    }, 5000);
    await this.closedPromise;
    clearTimeout(t);
  }

  async run() {
    const o = this.o;
    const started = now();
    const watchdog = setTimeout(() => {
      this.timedOut = true;
      this.err(`timeout after ${this.shared.timeoutMs} ms`);
      this.ending = true;
      if (this.ws) this.ws.terminate();
    }, this.shared.timeoutMs);
    try {
      if (o.answer) {
        if (!(await this.answer())) return this.summary(started);
      } else {
        this.streamUrl = o['ws-url'] || o['public-base'].replace(/^http/, 'ws') + '/ws/twilio';
        this.params = o['no-params'] ? [] : o.params.length ? o.params
          : [['From', o.from], ['To', o.to], ['CallSid', this.callSid]];
      }
      if (o['ws-url']) this.streamUrl = o['ws-url'];
      if (o['no-params']) this.params = [];
      if (!(await this.openSocket()) || this.timedOut) {
        if (this.ws && !this.closed) await this.closedPromise;
        return this.summary(started);
      }
      if (o['expect-upgrade-status'] !== undefined) {
        await this.end(); // a refusal was expected: hang up at once
        return this.summary(started);
      }
      if (o['no-read'] || o['no-read-after-ms'] !== undefined) {
        const pause = () => {
          if (this.closed || this.ending) return;
          this.ws.pause();
          this.paused = true;
          this.log('stopped reading');
        };
        if (o['no-read-after-ms']) this.noReadTimer = setTimeout(pause, o['no-read-after-ms']);
        else pause();
      }
      this.sendConnectedStart();
      if (!o.fast) this.startPlayback();
      await this.streamMedia();
      this.startPlayback();
      const lingerEnd = now() + o['linger-ms'];
      while (!this.closed && !this.timedOut &&
             (now() < lingerEnd || (o['wait-playback'] && this.fifo.length))) await sleep(5);
      await this.end();
    } catch (e) {
      this.err(`fake: ${e.stack}`);
      if (this.ws) this.ws.terminate();
    } finally {
      clearTimeout(watchdog);
      clearTimeout(this.noReadTimer);
      clearInterval(this.playTimer);
    }
    return this.summary(started);
  }

  summary(started) {
    const o = this.o;
    const daemonFirst = this.closedBy === 'daemon' || this.closedBy === 'tcp';
    if (this.ws && this.openedAt === undefined && !this.rejected && !this.timedOut)
      this.err(`WebSocket did not open: ${this.socketErrors.join('; ') || 'closed'}`);
    if (o['expect-daemon-close']) {
      if (this.openedAt !== undefined && !daemonFirst)
        this.err('expected the daemon to close first');
    } else {
      if (daemonFirst && !this.timedOut)
        this.err(`daemon closed first (${this.closeCode} ${this.closeReason})`.trim());
      if (this.openedAt !== undefined) for (const e of this.socketErrors) this.err(`socket: ${e}`);
    }
    if (o['expect-upgrade-status'] !== undefined && this.upgradeStatus !== o['expect-upgrade-status']
        && !this.errors.length)
      this.err(`upgrade status ${this.upgradeStatus}, expected ${o['expect-upgrade-status']}`);
    if (this.received) {
      const file = o.concurrency > 1 ? `${o.out}.${this.i}` : o.out;
      fs.writeFileSync(file, Buffer.concat(this.received));
    }
    return {
      ok: this.errors.length === 0,
      closeCode: this.closeCode,
      closeReason: this.closeReason,
      sentFrames: this.sentFrames,
      receivedBytes: this.receivedBytes,
      marksEchoed: this.marksEchoed,
      errors: this.errors,
      call: this.i,
      callSid: this.callSid,
      streamSid: this.streamSid,
      streamUrl: this.streamUrl || null,
      upgradeStatus: this.upgradeStatus,
      closedBy: this.closedBy,
      sentMessages: this.sentMessages,
      receivedMessages: this.receivedMessages,
      receivedMedia: this.receivedMedia,
      receivedMarks: this.receivedMarks,
      clears: this.clears,
      playedAtClear: this.playedAtClear,
      playedBytes: this.playedBytes,
      clearedBytes: this.clearedBytes,
      queuedBytes: this.fifoBytes,
      oddPayloads: this.oddPayloads,
      afterStop: this.afterStop,
      lateBytes: this.lateBytes,
      lateEvents: this.lateEvents,
      durationMs: Math.round(now() - started),
      seed: o.seed,
    };
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  let audio;
  if (o.audio !== undefined) {
    try {
      audio = fs.readFileSync(o.audio);
    } catch (e) {
      usage(`--audio: ${e.message}`);
    }
  } else {
    audio = Buffer.alloc(Math.round((o.seconds !== undefined ? o.seconds : 2) * 8000), 0xff);
  }
  const audioMs = audio.length / 8 + o.gaps.reduce((a, g) => a + g.ms, 0);
  let signer = null;
  const shared = {
    audio,
    accountSid: o['account-sid'] || sid('AC'),
    timeoutMs: o['timeout-ms'] || (o.fast ? 0 : audioMs) + o['linger-ms'] + 20000,
    signer: () => signer || (signer = loadSigner()),
  };
  const calls = [];
  for (let i = 0; i < o.concurrency; i++) calls.push(new Call(i, o, shared));
  const results = await Promise.all(calls.map((c) => c.run()));
  const lines = results.map((r) => JSON.stringify(r));
  if (results.length > 1) {
    const same = (k) => (results.every((r) => r[k] === results[0][k]) ? results[0][k] : null);
    const sum = (k) => results.reduce((a, r) => a + r[k], 0);
    lines.push(JSON.stringify({
      ok: results.every((r) => r.ok),
      closeCode: same('closeCode') !== null ? same('closeCode') : -1,
      closeReason: same('closeReason') !== null ? same('closeReason') : '(differ)',
      sentFrames: sum('sentFrames'),
      receivedBytes: sum('receivedBytes'),
      marksEchoed: sum('marksEchoed'),
      errors: results.flatMap((r) => r.errors.map((e) => `call ${r.call}: ${e}`)),
      calls: results.length,
      okCalls: results.filter((r) => r.ok).length,
      lateBytes: sum('lateBytes'),
      lateEvents: sum('lateEvents'),
      clears: sum('clears'),
      seed: o.seed,
    }));
  }
  const ok = results.every((r) => r.ok);
  process.stdout.write(lines.join('\n') + '\n', () => process.exit(ok ? 0 : 1));
}

main().catch((e) => {
  process.stderr.write(`twilio.js: ${e.stack}\n`);
  process.exit(2);
});
