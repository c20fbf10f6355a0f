#!/usr/bin/env node
// tests/node/k8s-validate.js: validates Kubernetes manifests against the API's own schemas.
//   node tests/node/k8s-validate.js FILE.yaml...
// Prints one line per document ("ok FILE Kind/name" or "invalid FILE Kind/name: why") and
// exits 1 if any document is invalid or has no schema.
//
// The schemas: the npm package kubernetes-models 4.3.1 ships them as plain JSON Schema
// objects, generated from the Kubernetes 1.27 OpenAPI spec, one module per definition;
// each registers itself and what it refers to through @kubernetes-models/validate's
// register(). We stand in for that module to collect them, and validate with our own ajv,
// strictly: an object the API describes by its properties gets additionalProperties
// false, so a misspelt or misplaced field fails, as kubectl's strict field validation
// would have it (the API server itself silently drops unknown fields).
"use strict";
const fs = require("fs");
const path = require("path");
const YAML = require("yaml");
const Ajv = require("ajv");
const addFormats = require("ajv-formats");

const kmDir = path.dirname(require.resolve("kubernetes-models/package.json"));
const registryPath = require.resolve("@kubernetes-models/validate", { paths: [kmDir] });
const schemas = new Map();
require.cache[registryPath] = {
    id: registryPath,
    filename: registryPath,
    loaded: true,
    exports: { register: (id, schema) => schemas.set(id, schema) },
};

// apiVersion + kind -> the definition's id and module: apps/v1 Deployment ->
// io.k8s.api.apps.v1.Deployment in _schemas/IoK8sApiAppsV1Deployment.js
function definition(apiVersion, kind) {
    const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["core", apiVersion];
    const short = group.split(".")[0];
    const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);
    return {
        id: `io.k8s.api.${short}.${version}.${kind}`,
        module: path.join(kmDir, "_schemas", `IoK8sApi${cap(short)}${cap(version)}${kind}.js`),
    };
}

// additionalProperties: false wherever the API lists the properties and says nothing
// about others (maps such as labels carry their own additionalProperties schema).
function strict(node) {
    if (Array.isArray(node)) return node.map(strict);
    if (!node || typeof node !== "object") return node;
    const out = {};
    for (const [k, v] of Object.entries(node))
        out[k] = k === "properties" ? Object.fromEntries(Object.entries(v).map(([p, s]) => [p, strict(s)])) : strict(v);
    if (out.properties && out.additionalProperties === undefined) out.additionalProperties = false;
    return out;
}

// Kubernetes' resource.Quantity: a signed decimal with an optional SI, binary or
// exponent suffix ("250m", "64Mi", "1e3").
const quantity = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$/;

function validator() {
    const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false });
    addFormats(ajv); // date-time, int32, int64, byte
    ajv.addFormat("quantity", { type: "string", validate: quantity });
    for (const [id, schema] of schemas) ajv.addSchema(strict(schema), id);
    return ajv;
}

function main(files) {
    const docs = [];
    let bad = 0;
    for (const file of files) {
        for (const doc of YAML.parseAllDocuments(fs.readFileSync(file, "utf8"))) {
            if (doc.errors.length) {
                console.log(`invalid ${file}: YAML: ${doc.errors[0].message}`);
                bad++;
                continue;
            }
            const obj = doc.toJSON();
            if (obj !== null) docs.push({ file, obj });
        }
    }
    for (const d of docs) {
        const { apiVersion, kind } = d.obj;
        d.def = typeof apiVersion === "string" && typeof kind === "string" ? definition(apiVersion, kind) : null;
        if (d.def && fs.existsSync(d.def.module)) require(d.def.module).addSchema();
        else d.def = null;
    }
    const ajv = validator();
    for (const { file, obj, def } of docs) {
        const name = `${obj.kind}/${obj.metadata && obj.metadata.name}`;
        if (!def) {
            console.log(`invalid ${file} ${name}: no schema for apiVersion ${obj.apiVersion}, kind ${obj.kind}`);
            bad++;
            continue;
        }
        const validate = ajv.getSchema(def.id);
        if (validate(obj)) {
            console.log(`ok ${file} ${name} (${def.id})`);
            continue;
        }
        bad++;
        // a oneOf around a $ref and null reports the null branch too: keep the real cause
        const errs = validate.errors.filter((e) => !(e.keyword === "type" && e.params.type === "null") && e.keyword !== "oneOf");
        const why = (errs.length ? errs : validate.errors)
            .slice(0, 5)
            .map((e) => `${e.instancePath || "/"} ${e.message}${e.params.additionalProperty ? ` (${e.params.additionalProperty})` : ""}`);
        console.log(`invalid ${file} ${name}: ${why.join("; ")}`);
    }
    return bad ? 1 : 0;
}

if (process.argv.length < 3) {
    console.error("usage: k8s-validate.js FILE.yaml...");
    process.exit(2);
}
process.exit(main(process.argv.slice(2)));
