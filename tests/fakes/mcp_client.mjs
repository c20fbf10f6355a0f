#!/usr/bin/env node
// tests/fakes/mcp_client.mjs: the official MCP TypeScript SDK as a command-line client.
//
//   node mcp_client.mjs --url http://127.0.0.1:9797/mcp [--token T] [--call NAME] [--args JSON]
//   node mcp_client.mjs --url ws://127.0.0.1:9797/mcp ...
//
// Connects (initialize handshake), lists tools, optionally calls one, prints one JSON line
// {"server":..,"protocolVersion":..,"tools":[names],"call":<CallToolResult>} and exits 0;
// any failure prints {"error":..} to stdout and exits 1. http(s) URLs use
// StreamableHTTPClientTransport (the token goes in Authorization: Bearer); ws URLs use
// WebSocketClientTransport, which cannot send headers (so no token).
import { createRequire } from 'node:module';

// Test-only packages live in tests/node/node_modules, which ESM resolution from this
// folder would not search: load them through a require anchored there.
const require = createRequire(new URL('../node/package.json', import.meta.url));
const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
const { StreamableHTTPClientTransport } = require('@modelcontextprotocol/sdk/client/streamableHttp.js');
const { WebSocketClientTransport } = require('@modelcontextprotocol/sdk/client/websocket.js');

function parseArgs(argv) {
  const o = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) throw new Error(`bad argument ${argv[i]}`);
    o[argv[i].slice(2)] = argv[i + 1];
  }
  if (!o.url) throw new Error('--url is required');
  return o;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const url = new URL(o.url);
  let transport;
  if (url.protocol === 'ws:' || url.protocol === 'wss:') {
    // Node 20 has no global WebSocket; the SDK's transport expects the browser API.
    if (typeof globalThis.WebSocket === 'undefined') globalThis.WebSocket = require('ws');
    transport = new WebSocketClientTransport(url);
  } else {
    const headers = o.token ? { Authorization: `Bearer ${o.token}` } : {};
    transport = new StreamableHTTPClientTransport(url, { requestInit: { headers } });
  }
  const client = new Client({ name: 'voice-agent-test', version: '1.0.0' });
  await client.connect(transport);
  const out = {
    server: client.getServerVersion(),
    protocolVersion: transport.protocolVersion ?? null,
    sessionId: transport.sessionId ?? null,
  };
  const list = await client.listTools();
  out.tools = list.tools.map((t) => t.name);
  if (o.call) out.call = await client.callTool({ name: o.call, arguments: JSON.parse(o.args ?? '{}') });
  if (transport.terminateSession) await transport.terminateSession();
  await client.close();
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stdout.write(JSON.stringify({ error: String(e && e.message ? e.message : e) }) + '\n');
    process.exit(1);
  },
);
