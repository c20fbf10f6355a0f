// tests/fakes/stamp.js: frame stamps for the benchmark's added latency (bench/bench.sh).
//
// With pcmu the daemon passes caller and model audio through byte for byte, so a frame can
// carry its own identity: the first 8 bytes of a 160-byte frame are replaced by a tag, and
// the process that receives the frame finds the tag again at a 160-byte boundary. Times are
// process.hrtime.bigint(), CLOCK_MONOTONIC on Linux: one clock for every process, so a
// sender's and a receiver's stamps subtract.
//
// The tag is 8 mu-law codes from the 32 quietest (0x70-0x7f, 0xf0-0xff: at most 120 of
// 32767, so the fake's VAD does not hear it): the marker 0x70, six codes of 5 bits each
// (a 30-bit id, low bits first) and a check code. A frame of digital silence (0xff) or of
// the fake's reply tone never reads as a tag.
//
// An id is (proc << 27) + n: proc (0-7) names the sending process, n counts its stamped
// frames from 0. Each process writes two files of little-endian float64 when it exits:
//   PREFIX.sent  the send time (ns) of its frame n at index n
//   PREFIX.recv  (id, receive time in ns) pairs for the frames it received
// and PREFIX.lag, JSON: how late its own event loop ran (perf_hooks'
// monitorEventLoopDelay, ms), the part of a stamp's delay that is the load generator's.
'use strict';

const fs = require('fs');
const { monitorEventLoopDelay } = require('perf_hooks');

const TAG_BYTES = 8;
const MARKER = 0x70;
const PROC_SHIFT = 2 ** 27;

const code = (v) => (v & 0x10 ? 0xf0 : 0x70) | (v & 0x0f);

// Writes the tag of id (0 <= id < 2^30) at buf[off, off + 8).
function writeTag(buf, off, id) {
  buf[off] = MARKER;
  let sum = 0;
  for (let i = 0; i < 6; i++) {
    const v = Math.floor(id / 2 ** (5 * i)) & 31;
    buf[off + 1 + i] = code(v);
    sum += v;
  }
  buf[off + 7] = code((sum + 7) & 31);
}

// The id tagged at buf[off], or -1.
function readTag(buf, off) {
  if (off + TAG_BYTES > buf.length || buf[off] !== MARKER) return -1;
  let id = 0;
  let sum = 0;
  for (let i = 0; i < 6; i++) {
    const b = buf[off + 1 + i];
    if ((b & 0x70) !== 0x70) return -1;
    const v = ((b & 0x80) >> 3) | (b & 0x0f);
    id += v * 2 ** (5 * i);
    sum += v;
  }
  const c = buf[off + 7];
  return c === code((sum + 7) & 31) ? id : -1;
}

// Nanoseconds of CLOCK_MONOTONIC as a Number: exact below 2^53 ns (104 days of uptime).
const mono = () => Number(process.hrtime.bigint());

class Stamps {
  // prefix: file prefix (null: a recorder that records nothing); proc: 0-7.
  constructor(prefix, proc) {
    this.prefix = prefix;
    this.base = proc * PROC_SHIFT;
    this.sent = new Float64Array(prefix ? 1 << 16 : 0);
    this.nSent = 0;
    this.recv = new Float64Array(prefix ? 1 << 16 : 0);
    this.nRecv = 0;
    this.saved = false;
    this.lag = prefix ? monitorEventLoopDelay({ resolution: 1 }) : null;
    if (this.lag) this.lag.enable();
  }

  get on() {
    return this.prefix !== null;
  }

  // A new id for a frame about to be sent; its time follows with sentAt().
  next() {
    if (this.nSent === this.sent.length) this.sent = grow(this.sent);
    this.sent[this.nSent] = NaN;
    return this.base + this.nSent++;
  }

  sentAt(id, t) {
    this.sent[id - this.base] = t;
  }

  // Every tag in buf at 160-byte boundaries: the frame with that id arrived at t.
  scan(buf, t) {
    for (let off = 0; off + TAG_BYTES <= buf.length; off += 160) {
      const id = readTag(buf, off);
      if (id < 0) continue;
      if (this.nRecv + 2 > this.recv.length) this.recv = grow(this.recv);
      this.recv[this.nRecv++] = id;
      this.recv[this.nRecv++] = t;
    }
  }

  save() {
    if (!this.prefix || this.saved) return;
    this.saved = true;
    const out = (a, n) => Buffer.from(a.buffer, a.byteOffset, n * 8);
    fs.writeFileSync(`${this.prefix}.sent`, out(this.sent, this.nSent));
    fs.writeFileSync(`${this.prefix}.recv`, out(this.recv, this.nRecv));
    const ms = (ns) => +(ns / 1e6).toFixed(2);
    const h = this.lag;
    fs.writeFileSync(`${this.prefix}.lag`, JSON.stringify({
      p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max),
    }));
  }
}

function grow(a) {
  const b = new Float64Array(a.length * 2);
  b.set(a);
  return b;
}

module.exports = { TAG_BYTES, PROC_SHIFT, writeTag, readTag, mono, Stamps };
