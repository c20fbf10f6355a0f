// tests/fakes/g711.js: G.711 mu-law and A-law for the test fakes and checkers (the classic
// Sun g711.c conventions; decoding matches ITU-T G.711 exactly for all 256 codes).
'use strict';

const ULAW_DEC = new Int16Array(256);
const ALAW_DEC = new Int16Array(256);
for (let i = 0; i < 256; i++) {
  let u = ~i & 0xff;
  let t = ((u & 0x0f) << 3) + 0x84;
  t <<= (u & 0x70) >> 4;
  ULAW_DEC[i] = u & 0x80 ? 0x84 - t : t - 0x84;
  let a = i ^ 0x55;
  let s = (a & 0x0f) << 4;
  const seg = (a & 0x70) >> 4;
  if (seg === 0) s += 8;
  else if (seg === 1) s += 0x108;
  else s = (s + 0x108) << (seg - 1);
  ALAW_DEC[i] = a & 0x80 ? s : -s;
}
function linToUlaw(pcm) {
  const SEG = [0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff];
  let mask;
  pcm >>= 2;
  if (pcm < 0) { pcm = -pcm; mask = 0x7f; } else mask = 0xff;
  if (pcm > 8159) pcm = 8159;
  pcm += 0x84 >> 2;
  let seg = 0;
  while (seg < 8 && pcm > SEG[seg]) seg++;
  if (seg >= 8) return 0x7f ^ mask;
  return (((seg << 4) | ((pcm >> (seg + 1)) & 0xf)) ^ mask) & 0xff;
}
function linToAlaw(pcm) {
  const SEG = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff];
  let mask;
  pcm >>= 3;
  if (pcm >= 0) mask = 0xd5; else { mask = 0x55; pcm = -pcm - 1; }
  let seg = 0;
  while (seg < 8 && pcm > SEG[seg]) seg++;
  if (seg >= 8) return (0x7f ^ mask) & 0xff;
  let aval = seg << 4;
  aval |= seg < 2 ? (pcm >> 1) & 0xf : (pcm >> seg) & 0xf;
  return (aval ^ mask) & 0xff;
}


module.exports = { ULAW_DEC, ALAW_DEC, linToUlaw, linToAlaw };
