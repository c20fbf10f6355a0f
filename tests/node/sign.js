#!/usr/bin/env node
// Prints the X-Twilio-Signature that the official `twilio` npm package computes, so
// tests/unit/test_twilio_sig_npm.c can check our C code against code nobody here wrote.
//
//   node sign.js TOKEN URL [FORM_BODY]
//   node sign.js 12345 'https://example.com/x' 'a=1&b=2'   ->  <28 base64 chars>
//
// FORM_BODY is application/x-www-form-urlencoded, decoded with URLSearchParams. A
// repeated name becomes an array of its values, as Express (body-parser) hands it to
// twilio.webhook(); the package then sorts that array and drops duplicates.
'use strict';

const twilio = require('twilio');

const args = process.argv.slice(2);
if (args.length < 2 || args.length > 3) {
  process.stderr.write('usage: node sign.js TOKEN URL [FORM_BODY]\n');
  process.exit(2);
}
const [token, url, body = ''] = args;

// No prototype, so a parameter named "__proto__" or "constructor" is just a name.
const params = Object.create(null);
for (const [name, value] of new URLSearchParams(body)) {
  if (!(name in params)) {
    params[name] = value;
  } else if (Array.isArray(params[name])) {
    params[name].push(value);
  } else {
    params[name] = [params[name], value];
  }
}

process.stdout.write(twilio.getExpectedTwilioSignature(token, url, params) + '\n');
