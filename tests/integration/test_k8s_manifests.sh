#!/usr/bin/env bash
# deploy/k8s: every manifest is valid against the Kubernetes API schemas
# (tests/node/k8s-validate.js: the yaml parser, kubernetes-models' schemas, ajv, unknown
# fields refused), the validator really refuses broken ones, and the workloads keep what
# the daemon needs: /ready and /health probes on its port, a grace period above preStop
# plus the drain, non-root with a read-only root, the spool where CALL_EVENTS_SPOOL_DIR
# says, settings from the ConfigMap and Secret, no secret values in the example.
. "$(dirname "$0")/lib.sh"

K8S=$VA_ROOT/deploy/k8s
VALIDATE="node $VA_ROOT/tests/node/k8s-validate.js"
mapfile -t files < <(find "$K8S" -name '*.yaml' | sort)
[ "${#files[@]}" -ge 7 ] && ok || fail "expected the manifests under deploy/k8s, found ${#files[@]}"

out=$($VALIDATE "${files[@]}")
assert_eq 0 "$?" "all manifests valid: $out"
for kind in Deployment StatefulSet Service PodDisruptionBudget Secret ConfigMap; do
    assert_contains "$out" "ok $K8S/" "validated"
    assert_contains "$out" " $kind/voice-agent" "a $kind"
done

# the validator refuses what the API server would (or what kubectl --validate=strict would):
# broken copies, all validated in one run, each with its own line
BAD=()
bad() { # name sed-expression file expected-text
    sed -e "$2" "$K8S/$3" >"$T/$1.yaml"
    BAD+=("$1|$4")
}
bad misspelt-field 's/readinessProbe:/readinesProbe:/' deployment.yaml "(readinesProbe)"
bad wrong-type 's/terminationGracePeriodSeconds: 45/terminationGracePeriodSeconds: "45"/' \
    deployment.yaml "terminationGracePeriodSeconds must be integer"
bad bad-quantity 's/memory: 64Mi/memory: 64 megs/' deployment.yaml 'format "quantity"'
bad missing-required '/^  selector:/,/^  strategy:/{/^  strategy:/!d}' deployment.yaml \
    "required property 'selector'"
bad unknown-version 's#apiVersion: policy/v1#apiVersion: policy/v7#' pdb.yaml "no schema"
bad string-port 's/    port: 8787/    port: "8787"/' service.yaml "/spec/ports/0/port must be integer"
printf 'a: [1, 2\n' >"$T/broken.yaml"
BAD+=("broken|YAML")
out=$(cd "$T" && $VALIDATE $(for b in "${BAD[@]}"; do printf '%s.yaml ' "${b%%|*}"; done))
assert_eq 1 "$?" "broken manifests refused"
for b in "${BAD[@]}"; do
    name=${b%%|*}
    line=$(printf '%s\n' "$out" | grep "^[a-z]* $name.yaml")
    assert_contains "$line" "invalid $name.yaml" "$name refused"
    assert_contains "$line" "${b#*|}" "$name: reason"
done

# Our rules over the parsed manifests (the same yaml parser).
drain=$("$VA_BIN" --print-env-example | sed -n 's/^DRAIN_TIMEOUT_S=//p')
node - "$VA_ROOT" "$drain" "${files[@]}" >"$T/rules.out" 2>&1 <<'EOF'
const fs = require("fs");
const [root, drainDefault, ...files] = process.argv.slice(2);
const YAML = require(root + "/tests/node/node_modules/yaml");
const objs = files.flatMap((f) => YAML.parseAllDocuments(fs.readFileSync(f, "utf8")).map((d) => d.toJSON()).filter(Boolean));
const find = (kind, name = "voice-agent") => objs.find((o) => o.kind === kind && o.metadata.name === name);
const problems = [];
const check = (cond, what) => { if (!cond) problems.push(what); };
const cm = find("ConfigMap"), secret = find("Secret"), svc = find("Service"), pdb = find("PodDisruptionBudget");
const drain = Number((cm && cm.data.DRAIN_TIMEOUT_S) || drainDefault);
for (const w of [find("Deployment"), find("StatefulSet")]) {
  if (!w) { problems.push("a Deployment and a StatefulSet named voice-agent"); continue; }
  const k = w.kind, pod = w.spec.template.spec, c = pod.containers[0];
  const labels = w.spec.template.metadata.labels;
  const matches = (sel) => Object.entries(sel).every(([key, v]) => labels[key] === v);
  check(matches(w.spec.selector.matchLabels), `${k}: selector matches its pods`);
  check(svc && matches(svc.spec.selector), `${k}: the Service selects its pods`);
  check(pdb && pdb.spec.selector && matches(pdb.spec.selector.matchLabels), `${k}: the PDB covers its pods`);
  check(w.spec.replicas >= 2 && pdb.spec.maxUnavailable === 1, `${k}: 2+ replicas, one disrupted at a time`);
  const port = (c.ports || []).find((p) => p.name === "http");
  check(port && port.containerPort === 8787, `${k}: http on 8787`);
  check(!(c.ports || []).some((p) => p.containerPort === 9797), `${k}: MCP not declared as a pod port`);
  check(c.readinessProbe && c.readinessProbe.httpGet.path === "/ready" && c.readinessProbe.httpGet.port === "http", `${k}: readiness on /ready`);
  check(c.livenessProbe && c.livenessProbe.httpGet.path === "/health" && c.livenessProbe.httpGet.port === "http", `${k}: liveness on /health`);
  const cmd = c.lifecycle && c.lifecycle.preStop && c.lifecycle.preStop.exec && c.lifecycle.preStop.exec.command;
  const preStop = cmd && cmd[0] === "sleep" ? Number(cmd[1]) : 0;
  check(pod.terminationGracePeriodSeconds > preStop + drain, `${k}: terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} above preStop ${preStop} + drain ${drain}`);
  check(pod.securityContext.runAsNonRoot === true && pod.securityContext.runAsUser > 0, `${k}: non-root`);
  check(c.securityContext.readOnlyRootFilesystem === true && c.securityContext.allowPrivilegeEscalation === false, `${k}: read-only root, no privilege escalation`);
  check(JSON.stringify(c.securityContext.capabilities.drop) === '["ALL"]', `${k}: all capabilities dropped`);
  check(c.resources && c.resources.requests && c.resources.limits && c.resources.limits.memory, `${k}: resources`);
  const refs = (c.envFrom || []).map((e) => (e.secretRef ? "secret:" + e.secretRef.name : "configmap:" + e.configMapRef.name));
  check(refs.includes("secret:voice-agent") && refs.includes("configmap:voice-agent"), `${k}: env from the Secret and the ConfigMap`);
  const env = Object.fromEntries((c.env || []).map((e) => [e.name, e.value]));
  check(env.HOST === "0.0.0.0" && env.PORT === "8787", `${k}: listens on 0.0.0.0:8787`);
  const spool = (c.volumeMounts || []).find((m) => m.name === "spool");
  check(spool && spool.mountPath === env.CALL_EVENTS_SPOOL_DIR, `${k}: CALL_EVENTS_SPOOL_DIR is the spool mount`);
  const hasVolume = (n) => (pod.volumes || []).some((v) => v.name === n) || (w.spec.volumeClaimTemplates || []).some((t) => t.metadata.name === n);
  for (const m of c.volumeMounts || []) check(hasVolume(m.name), `${k}: volume ${m.name} defined`);
  if (k === "StatefulSet") check((w.spec.volumeClaimTemplates || []).some((t) => t.metadata.name === "spool"), "StatefulSet: a spool claim per pod");
}
// the example Secret carries names, never values; secrets never sit in the ConfigMap
check(secret && Object.values(secret.stringData || {}).every((v) => v === "") && !secret.data, "secret.example.yaml holds no values");
const secretNames = ["OPENAI_API_KEY", "TWILIO_AUTH_TOKEN", "SUPABASE_SERVICE_ROLE_KEY", "MCP_AUTH_TOKEN"];
check(secretNames.every((n) => secret && n in secret.stringData), "every secret of the daemon named in the Secret");
check(cm && secretNames.every((n) => !(n in cm.data)), "no secret in the ConfigMap");
check(svc && svc.spec.ports.every((p) => p.port !== 9797 && p.targetPort !== 9797), "the Service does not carry MCP");
console.log(problems.join("\n"));
process.exit(problems.length ? 1 : 0);
EOF
if [ $? = 0 ]; then ok; else fail "manifest rules: $(cat "$T/rules.out")"; fi

finish
