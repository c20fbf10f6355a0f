#!/usr/bin/env node
// Compares the daemon's call recording with the mu-law audio a fake caller sent.
//
//   node wavcheck.js REC.wav SENT.ulaw [--gap-at-ms X --gap-ms Y] [--agent-nonzero]
//
// The recording is 8 kHz, 16-bit, stereo (caller left, agent right). Its left channel
// must equal the G.711 decode of SENT sample for sample (mu-law decoding is exact),
// with silence (0) where the caller skipped [X, X+Y) ms, and 0 after the end.
// Prints one JSON line: {"ok":bool,"frames":n,"sentSamples":n,"mismatches":n,...}.
'use strict';
const fs = require('fs');

const { ULAW_DEC } = require('./g711.js');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const [recPath, sentPath] = args;
const gapAt = opt('--gap-at-ms', -1) * 8;
const gapLen = opt('--gap-ms', 0) * 8;
const wav = fs.readFileSync(recPath);
const sent = fs.readFileSync(sentPath);
const out = { ok: false, errors: [] };

const tag = (o) => wav.toString('ascii', o, o + 4);
if (tag(0) !== 'RIFF' || tag(8) !== 'WAVE' || tag(12) !== 'fmt ' || tag(36) !== 'data') {
  out.errors.push('not a canonical 44-byte-header WAV');
}
const channels = wav.readUInt16LE(22);
const rate = wav.readUInt32LE(24);
const bits = wav.readUInt16LE(34);
const dataLen = wav.readUInt32LE(40);
if (channels !== 2 || rate !== 8000 || bits !== 16) out.errors.push(`format ${channels}ch ${rate}Hz ${bits}bit`);
if (wav.readUInt32LE(4) !== wav.length - 8) out.errors.push('RIFF size does not match the file');
if (dataLen !== wav.length - 44) out.errors.push('data size does not match the file');
const frames = Math.floor((wav.length - 44) / 4);
out.frames = frames;

// the caller's timeline: what was sent, with the skipped span removed and silence in its place
const expect = [];
for (let i = 0; i < sent.length; i++) {
  if (gapAt >= 0 && i >= gapAt && i < gapAt + gapLen) expect.push(0);
  else expect.push(ULAW_DEC[sent[i]]);
}
out.sentSamples = expect.length;
let mismatches = 0, firstBad = -1, agentNonZero = 0;
for (let i = 0; i < frames; i++) {
  const left = wav.readInt16LE(44 + i * 4);
  const right = wav.readInt16LE(44 + i * 4 + 2);
  if (right !== 0) agentNonZero++;
  const want = i < expect.length ? expect[i] : 0;
  if (left !== want) {
    mismatches++;
    if (firstBad < 0) firstBad = i;
  }
}
if (frames < expect.length) out.errors.push(`recording shorter than the call: ${frames} < ${expect.length}`);
out.mismatches = mismatches;
out.firstMismatch = firstBad;
out.agentNonZero = agentNonZero;
if (mismatches) out.errors.push(`${mismatches} caller samples differ, first at ${firstBad}`);
if (args.includes('--agent-nonzero') && agentNonZero === 0) out.errors.push('agent channel silent');
out.ok = out.errors.length === 0;
console.log(JSON.stringify(out));
process.exit(out.ok ? 0 : 1);
