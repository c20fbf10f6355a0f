#!/usr/bin/env node
// tests/soak/hostile.js: misbehaving clients against the daemon's HTTP port, in a loop, for
// the soak (tests/soak/soak.sh). Raw sockets only (net), so every byte is ours to get wrong:
//
//   garbage        random bytes instead of a request                     -> 400 / close
//   bad-line       a request line that is not HTTP                       -> 400
//   big-header     a header past HTTP_MAX_HEADER_BYTES                   -> 431
//   big-body       a body past HTTP_MAX_BODY_BYTES                       -> 413
//   half-request   half a POST body, then the socket is gone
//   half-upgrade   half an upgrade request, then the socket is gone
//   slowloris      headers dribbled a byte at a time, never finished     -> 408 (or cut off)
//   ws-garbage     101, then random bytes where frames should be         -> Close / TCP gone
//   ws-unmasked    101, then an unmasked client frame                    -> Close 1002
//   ws-truncated   101, then a frame cut in the middle, socket gone
//   ws-oversize    101, then one message past WS_MAX_MESSAGE_BYTES      -> Close 1009
//   ws-fragments   101, then fragments adding up past the same bound    -> Close 1009
//   ws-bad-json    101, a real start (its call must be on record), then text that is not
//                  JSON                                                  -> Close 1007
//   ws-start-drop  101, a real start and some media, then a frame cut in the middle and
//                  the socket gone (a call whose stream dies mid-frame)
//
// Usage: node tests/soak/hostile.js --port P [--seconds S] [--concurrency C]
//          [--interval-ms N] [--sid-file FILE]
//   --seconds S       run for S seconds (default: until SIGTERM), then finish what runs
//   --concurrency C   misbehaving connections at once (3); slowloris at most 1 of them
//   --interval-ms N   pause between two launches (300)
//   --sid-file FILE   append the CallSid of every stream this script started (one a line)
// Output on exit (SIGTERM/SIGINT or the end of --seconds): one JSON line
//   {"runs":n,"kinds":{kind:n},"outcomes":{"kind:outcome":n},"starts":n}
// An outcome is what the daemon did: "http <status>", "close <code>", "tcp-closed",
// "timeout" (we gave up waiting), "dropped" (we hung up first, as the kind intends).
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const net = require('net');

function usage(msg) {
  process.stderr.write(`hostile.js: ${msg}\n`);
  process.exit(2);
}
const o = { port: 0, seconds: 0, concurrency: 3, 'interval-ms': 300, 'sid-file': null };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i].replace(/^--/, '');
  if (!(a in o) || i + 1 >= process.argv.length) usage(`bad option ${process.argv[i]}`);
  const v = process.argv[++i];
  o[a] = a === 'sid-file' ? v : Number(v);
  if (a !== 'sid-file' && !(o[a] >= 0)) usage(`--${a}: bad number ${v}`);
}
if (!o.port) usage('--port is required');

const stats = { runs: 0, kinds: {}, outcomes: {}, starts: 0 };
const count = (m, k) => { m[k] = (m[k] || 0) + 1; };
const rnd = (n) => Math.floor(Math.random() * n);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One connection with a deadline: resolves with the outcome once the daemon closed, the
// kind hung up, or the deadline passed.
function conn(deadlineMs, body) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: o.port });
    let buf = Buffer.alloc(0);
    let done = false;
    let outcome = null;
    const finish = (why) => {
      if (done) return;
      done = true;
      clearTimeout(t);
      s.destroy();
      resolve(outcome || why);
    };
    const t = setTimeout(() => finish('timeout'), deadlineMs);
    s.on('error', () => finish('tcp-error'));
    s.on('close', () => finish('tcp-closed'));
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]).subarray(-70000);
      const m = /^HTTP\/1\.1 (\d{3})/.exec(buf.toString('latin1', 0, 16));
      if (m && m[1] !== '101' && !outcome) outcome = `http ${m[1]}`;
      const c = wsClose(buf);
      if (c !== null && !outcome) outcome = `close ${c}`;
    });
    s.on('connect', () => body(s, {
      drop: () => { outcome = outcome || 'dropped'; finish('dropped'); },
      upgraded: () => waitFor(() => /^HTTP\/1\.1 101/.test(buf.toString('latin1', 0, 16)) &&
        buf.indexOf('\r\n\r\n') > 0, () => done),
      answered: () => outcome !== null,
      isDone: () => done,
    }).catch(() => finish('error')));
  });
}

async function waitFor(pred, stop, ms = 3000) {
  const end = Date.now() + ms;
  while (Date.now() < end && !stop()) {
    if (pred()) return true;
    await sleep(10);
  }
  return false;
}

// The status code of the first Close frame from the server after the 101 headers.
function wsClose(buf) {
  const h = buf.indexOf('\r\n\r\n');
  if (h < 0 || !/^HTTP\/1\.1 101/.test(buf.toString('latin1', 0, 16))) return null;
  let p = h + 4;
  while (p + 2 <= buf.length) {
    const op = buf[p] & 0x0f;
    let len = buf[p + 1] & 0x7f;
    let q = p + 2;
    if (len === 126) { if (q + 2 > buf.length) return null; len = buf.readUInt16BE(q); q += 2; }
    else if (len === 127) { if (q + 8 > buf.length) return null; len = Number(buf.readBigUInt64BE(q)); q += 8; }
    if (q + len > buf.length) return null;
    if (op === 8) return len >= 2 ? buf.readUInt16BE(q) : 1005;
    p = q + len;
  }
  return null;
}

// A masked client frame.
function frame(op, payload, fin = true, mask = true) {
  const n = payload.length;
  const head = [(fin ? 0x80 : 0) | op];
  let ext = Buffer.alloc(0);
  if (n < 126) head.push((mask ? 0x80 : 0) | n);
  else if (n < 65536) { head.push((mask ? 0x80 : 0) | 126); ext = Buffer.alloc(2); ext.writeUInt16BE(n); }
  else { head.push((mask ? 0x80 : 0) | 127); ext = Buffer.alloc(8); ext.writeBigUInt64BE(BigInt(n)); }
  if (!mask) return Buffer.concat([Buffer.from(head), ext, payload]);
  const key = crypto.randomBytes(4);
  const body = Buffer.alloc(n);
  for (let i = 0; i < n; i++) body[i] = payload[i] ^ key[i & 3];
  return Buffer.concat([Buffer.from(head), ext, key, body]);
}
const text = (obj) => frame(1, Buffer.from(typeof obj === 'string' ? obj : JSON.stringify(obj)));

const upgradeReq = () => 'GET /ws/twilio HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n' +
  `Connection: Upgrade\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\n` +
  'Sec-WebSocket-Version: 13\r\nUser-Agent: Twilio.TmeWs/1.0\r\n\r\n';

function startMsgs(callSid) {
  const streamSid = 'MZ' + crypto.randomBytes(16).toString('hex');
  const account = 'AC' + crypto.randomBytes(16).toString('hex');
  return {
    streamSid,
    frames: [
      text({ event: 'connected', protocol: 'Call', version: '1.0.0' }),
      text({ event: 'start', sequenceNumber: '1', streamSid, start: {
        accountSid: account, streamSid, callSid, tracks: ['inbound'],
        customParameters: { From: '+15550000001', To: '+15550000002', CallSid: callSid },
        mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 } } }),
    ],
  };
}
const media = (streamSid, seq) => text({ event: 'media', sequenceNumber: String(seq), streamSid,
  media: { track: 'inbound', chunk: String(seq - 1), timestamp: String((seq - 2) * 20),
    payload: Buffer.alloc(160, 0xff).toString('base64') } });

function newSid() {
  const sid = 'CA' + crypto.randomBytes(16).toString('hex');
  stats.starts++;
  if (o['sid-file']) fs.appendFileSync(o['sid-file'], sid + '\n');
  return sid;
}

const KINDS = {
  garbage: () => conn(3000, async (s) => {
    const b = crypto.randomBytes(1 + rnd(2000));
    for (let i = 0; i < b.length; i += 97) b[i] = 0x0a; // line ends here and there
    s.write(b);
  }),
  'bad-line': () => conn(3000, async (s) => { s.write('HELLO THERE\x01 /%%% HTTP/9.9\r\n\r\n'); }),
  'big-header': () => conn(3000, async (s) => {
    s.write(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(9000)}\r\n\r\n`);
  }),
  'big-body': () => conn(3000, async (s) => {
    s.write('POST /twilio/answer HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded' +
      '\r\nContent-Length: 100000\r\n\r\n');
    s.write(Buffer.alloc(100000, 0x61));
  }),
  'half-request': () => conn(3000, async (s, c) => {
    s.write('POST /twilio/answer HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded' +
      '\r\nContent-Length: 500\r\n\r\nCallSid=CA1&From=');
    await sleep(50 + rnd(200));
    c.drop();
  }),
  'half-upgrade': () => conn(3000, async (s, c) => {
    const r = upgradeReq();
    s.write(r.slice(0, 10 + rnd(r.length - 20)));
    await sleep(50 + rnd(200));
    c.drop();
  }),
  slowloris: () => conn(15000, async (s, c) => {
    const hdr = 'GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'z'.repeat(200);
    for (let i = 0; i < hdr.length && !c.isDone() && !c.answered(); i++) {
      s.write(hdr[i]);
      await sleep(300 + rnd(400));
    }
  }),
  'ws-garbage': () => conn(4000, async (s, c) => {
    s.write(upgradeReq());
    if (!(await c.upgraded())) return;
    s.write(crypto.randomBytes(10 + rnd(3000)));
  }),
  'ws-unmasked': () => conn(4000, async (s, c) => {
    s.write(upgradeReq());
    if (!(await c.upgraded())) return;
    s.write(frame(1, Buffer.from('{"event":"connected"}'), true, false));
  }),
  'ws-truncated': () => conn(4000, async (s, c) => {
    s.write(upgradeReq());
    if (!(await c.upgraded())) return;
    const f = text({ event: 'connected', protocol: 'Call', version: '1.0.0', pad: 'x'.repeat(900) });
    s.write(f.subarray(0, 2 + rnd(f.length - 3)));
    await sleep(50 + rnd(300));
    c.drop();
  }),
  'ws-oversize': () => conn(5000, async (s, c) => {
    s.write(upgradeReq());
    if (!(await c.upgraded())) return;
    s.write(frame(1, Buffer.alloc(70000 + rnd(30000), 0x61)));
  }),
  'ws-fragments': () => conn(5000, async (s, c) => {
    s.write(upgradeReq());
    if (!(await c.upgraded())) return;
    const part = Buffer.alloc(16000, 0x62);
    for (let i = 0; i < 6 && !c.isDone(); i++) {
      s.write(frame(i === 0 ? 1 : 0, part, false));
      await sleep(5);
    }
  }),
  'ws-bad-json': () => conn(5000, async (s, c) => {
    s.write(upgradeReq());
    if (!(await c.upgraded())) return;
    const st = startMsgs(newSid());
    for (const f of st.frames) s.write(f);
    for (let i = 0; i < 3 + rnd(20); i++) {
      s.write(media(st.streamSid, i + 2));
      await sleep(20);
    }
    s.write(text('{"event":"media","media":{"payload":'));
  }),
  'ws-start-drop': () => conn(5000, async (s, c) => {
    s.write(upgradeReq());
    if (!(await c.upgraded())) return;
    const st = startMsgs(newSid());
    for (const f of st.frames) s.write(f);
    let i = 0;
    for (; i < 5 + rnd(50) && !c.isDone(); i++) {
      s.write(media(st.streamSid, i + 2));
      await sleep(20);
    }
    const f = media(st.streamSid, i + 2);
    s.write(f.subarray(0, 1 + rnd(f.length - 2)));
    await sleep(20);
    c.drop();
  }),
};
const NAMES = Object.keys(KINDS);

let stopping = false;
let running = 0;
let slow = 0;
const deadline = o.seconds ? Date.now() + o.seconds * 1000 : Infinity;

async function one() {
  let kind = NAMES[rnd(NAMES.length)];
  if (kind === 'slowloris' && slow) kind = 'garbage';
  running++;
  if (kind === 'slowloris') slow++;
  stats.runs++;
  count(stats.kinds, kind);
  try {
    count(stats.outcomes, `${kind}:${await KINDS[kind]()}`);
  } finally {
    running--;
    if (kind === 'slowloris') slow--;
  }
}

function report() {
  process.stdout.write(JSON.stringify(stats) + '\n', () => process.exit(0));
}

async function main() {
  for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => { stopping = true; });
  while (!stopping && Date.now() < deadline) {
    if (running < o.concurrency) one();
    await sleep(o['interval-ms'] / 2 + rnd(o['interval-ms']));
  }
  // connections under way are cut short by their own deadlines (at most 15 s); a stop
  // asks for an answer now, so what is still open is simply dropped at exit
  if (!stopping) await waitFor(() => running === 0, () => stopping, 16000);
  report();
}
main();
