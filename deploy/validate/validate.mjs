#!/usr/bin/env node
// Checks the deployment files as a cluster and `docker compose` would, before any of them meet one:
//   Kubernetes: every object against its schema (core kinds: kubernetes-models; Strimzi, KEDA and
//   CloudNativePG kinds: the openAPIV3Schema of their CRDs from --schemas, closed the way the API
//   server closes them), plus the policies of issue 11: the `restricted` Pod Security Standard, no
//   ReadWriteMany claims, and a kustomization whose paths exist and which names every image.
//   Compose: against the compose specification (dclint's schema and a few of its rules), published
//   ports on loopback only, `include:` paths that exist.
//
// usage: node deploy/validate/validate.mjs [--schemas DIR] [--root DIR] [--json] [--repository] [--check-fixtures] [PATH...]
//   PATH: files or directories, each checked as one unit (a directory: every *.yaml/*.yml in it);
//   none (or --repository): the repository's deployment files (deploy/k8s, compose.yaml, docker-compose.kafka.yml).
//   --schemas: the CRD files (default: ../shared/schemas beside the repository).
//   --check-fixtures: fixtures/valid* must pass, each of fixtures/broken/ fail with its "# expect:" errors.
// Exit code: 0 no error, 1 errors found, 2 the check could not run (no schemas, bad arguments).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { createRequire } from "node:module";
import YAML from "yaml";
import Ajv from "ajv";
import addFormats from "ajv-formats";
import { DCLinter } from "dclint";
import { evaluate as celEvaluate } from "@marcbachmann/cel-js";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

// The operator releases the manifests are written for: the CRD files of exactly these are loaded.
export const CRD_SETS = ["strimzi-1.2.0-", "keda-2.20.2-", "cnpg-1.30.0-"];

// ---------------------------------------------------------------------------------------------
// findings

class Findings {
  constructor() { this.items = []; }
  add(severity, file, where, message) { this.items.push({ severity, file, where, message }); }
  error(file, where, message) { this.add("error", file, where, message); }
  warning(file, where, message) { this.add("warning", file, where, message); }
}

function describeObject(doc) {
  const kind = doc?.kind ?? "?";
  const name = doc?.metadata?.name ?? doc?.metadata?.generateName ?? "?";
  return `${doc?.apiVersion ?? "?"} ${kind}/${name}`;
}

function formatAjvError(e) {
  const at = e.instancePath || "/";
  switch (e.keyword) {
    case "additionalProperties": return `${joinPath(at, e.params.additionalProperty)}: unknown field "${e.params.additionalProperty}"`;
    case "required": return `${at}: missing required field "${e.params.missingProperty}"`;
    case "type": return `${at}: must be ${e.params.type}`;
    case "enum": return `${at}: must be one of ${JSON.stringify(e.params.allowedValues)}`;
    case "const": return `${at}: must be ${JSON.stringify(e.params.allowedValue)}`;
    case "format": return `${at}: must match format "${e.params.format}"`;
    case "pattern": return `${at}: must match pattern ${e.params.pattern}`;
    default: return `${at}: ${e.message ?? e.keyword} ${JSON.stringify(e.params ?? {})}`;
  }
}
const joinPath = (p, k) => (p === "/" || p === "" ? "" : p) + "/" + k;

// ---------------------------------------------------------------------------------------------
// YAML

function readYaml(file, findings) {
  const text = fs.readFileSync(file, "utf8");
  const docs = [];
  for (const d of YAML.parseAllDocuments(text, { merge: true, uniqueKeys: true })) {
    for (const e of [...d.errors]) findings.error(file, `line ${e.linePos?.[0]?.line ?? "?"}`, `YAML: ${e.message.split("\n")[0]}`);
    if (d.errors.length) continue;
    const v = d.toJS({ maxAliasCount: 1000 });
    if (v !== null && v !== undefined) docs.push(v);
  }
  return docs;
}

// ---------------------------------------------------------------------------------------------
// CRDs: openAPIV3Schema, closed as the API server closes a structural schema

export function loadCrds(schemasDir, findings) {
  const byGvk = new Map();      // "group/version/Kind" -> { schema, source }
  const servedByGk = new Map(); // "group/Kind" -> [{version, served}] of the loaded CRDs
  const files = fs.readdirSync(schemasDir).filter(f => /\.ya?ml$/.test(f) && CRD_SETS.some(p => f.startsWith(p))).sort();
  for (const set of CRD_SETS) if (!files.some(f => f.startsWith(set))) throw new Error(`no CRD file ${set}*.yaml in ${schemasDir}`);
  for (const f of files) {
    for (const crd of readYaml(path.join(schemasDir, f), findings)) {
      if (crd.kind !== "CustomResourceDefinition") continue;
      const { group, names } = crd.spec;
      const gk = `${group}/${names.kind}`;
      if (servedByGk.has(gk)) throw new Error(`${gk} defined twice (second time in ${f})`);
      servedByGk.set(gk, { source: f, versions: crd.spec.versions.map(v => ({ version: v.name, served: v.served })) });
      for (const v of crd.spec.versions) {
        if (!v.served) continue;
        const schema = v.schema?.openAPIV3Schema ?? crd.spec.validation?.openAPIV3Schema;
        if (!schema) throw new Error(`${gk} ${v.name} has no openAPIV3Schema (${f})`);
        byGvk.set(`${group}/${v.name}/${names.kind}`, { schema, source: f, scope: crd.spec.scope });
      }
    }
  }
  return { byGvk, servedByGk };
}

const isObjectSchema = s => s.type === "object" || (s.type === undefined && (s.properties !== undefined || s.additionalProperties !== undefined));

// Returns a copy of a structural schema that ajv enforces as the API server does:
// - an object schema without x-kubernetes-preserve-unknown-fields and without additionalProperties of
//   its own is closed (additionalProperties: false): the server prunes unknown fields, and strict field
//   validation (kubectl's default) rejects them;
// - x-kubernetes-int-or-string: an integer or a string;
// - x-kubernetes-embedded-resource: apiVersion, kind and metadata are implied (and apiVersion, kind required);
// - allOf/anyOf/oneOf/not are value validations: they are not closed (their properties only restrict
//   values already declared in the structural part).
export function closeSchema(s, structural = true) {
  if (Array.isArray(s)) return s.map(x => closeSchema(x, structural));
  if (s === null || typeof s !== "object") return s;
  const out = {};
  for (const [k, v] of Object.entries(s)) {
    if (k === "description" || k === "example") continue;
    if (k === "properties" || k === "patternProperties") out[k] = Object.fromEntries(Object.entries(v).map(([p, ps]) => [p, closeSchema(ps, structural)]));
    else if (k === "items" || k === "additionalProperties") out[k] = typeof v === "object" ? closeSchema(v, structural) : v;
    else if (k === "allOf" || k === "anyOf" || k === "oneOf" || k === "not") out[k] = closeSchema(v, false);
    else out[k] = v;
  }
  if (s["x-kubernetes-int-or-string"] && !s.anyOf && !s.oneOf) {
    delete out.type;
    out.anyOf = [{ type: "integer" }, { type: "string" }];
  }
  if (s["x-kubernetes-embedded-resource"]) {
    out.type = "object";
    out.properties = { apiVersion: { type: "string" }, kind: { type: "string" }, metadata: { type: "object" }, ...(out.properties ?? {}) };
    out.required = [...new Set([...(out.required ?? []), "apiVersion", "kind"])];
  }
  if (structural && isObjectSchema(s) && !s["x-kubernetes-preserve-unknown-fields"] && s.additionalProperties === undefined)
    out.additionalProperties = false;
  return out;
}

function makeAjv() {
  const ajv = new Ajv({ allErrors: true, strict: false, useDefaults: true, validateFormats: true, validateSchema: false, code: { optimize: false } });
  addFormats(ajv);
  ajv.addFormat("int32", { type: "number", validate: n => Number.isInteger(n) && n >= -2147483648 && n <= 2147483647 });
  ajv.addFormat("int64", { type: "number", validate: n => Number.isInteger(n) });
  ajv.addFormat("byte", /^[A-Za-z0-9+/]*={0,2}$/);
  ajv.addFormat("duration", /^[+-]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$|^0$/); // Go's time.Duration, as the API server parses it
  ajv.addFormat("quantity", /^[+-]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?\d+)?$/);
  for (const k of ["x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string", "x-kubernetes-embedded-resource",
    "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type", "x-kubernetes-validations"]) ajv.addKeyword(k);
  return ajv;
}

// The API server drops a null field (of a non-nullable schema) before it validates; so do we.
function dropNulls(v) {
  if (Array.isArray(v)) return v.map(dropNulls);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null).map(([k, x]) => [k, dropNulls(x)]));
  return v;
}

// ---------------------------------------------------------------------------------------------
// core kinds: kubernetes-models' validators, and the fields they do not know

// kubernetes-models compiles the Kubernetes OpenAPI definitions, which do not mark objects closed;
// the API server still rejects an unknown field (strict field validation). So the document is handed
// to the compiled validator behind proxies that record which fields it looks up: in an object whose
// schema has properties the validator reads each declared property, in a map it enumerates the keys.
// A key of such an object that was neither read nor enumerated is not in the schema: an unknown field.
function traced(doc) {
  const seen = [];
  const proxies = new WeakMap();
  const wrap = (v, at) => {
    if (v === null || typeof v !== "object") return v;
    if (proxies.has(v)) return proxies.get(v);
    const info = { target: v, at, reads: new Set(), enumerated: false };
    seen.push(info);
    const p = new Proxy(v, {
      get(t, k, r) {
        if (typeof k !== "string") return Reflect.get(t, k, r);
        info.reads.add(k);
        const x = Reflect.get(t, k, r);
        return Object.prototype.hasOwnProperty.call(t, k) ? wrap(x, `${at}/${k}`) : x;
      },
      has(t, k) { if (typeof k === "string") info.reads.add(k); return Reflect.has(t, k); },
      ownKeys(t) { info.enumerated = true; return Reflect.ownKeys(t); },
    });
    proxies.set(v, p);
    return p;
  };
  const unknownFields = () => {
    const out = [];
    for (const i of seen) {
      if (Array.isArray(i.target) || i.enumerated || i.reads.size === 0) continue; // a list, a map, or free-form
      for (const k of Object.keys(i.target)) if (!i.reads.has(k)) out.push(`${i.at}/${k}: unknown field "${k}"`);
    }
    return out;
  };
  return { proxy: wrap(doc, ""), unknownFields };
}

const coreValidators = new Map();
async function coreValidator(apiVersion, kind) {
  const key = `${apiVersion}/${kind}`;
  if (coreValidators.has(key)) return coreValidators.get(key);
  let result = null;
  if (/^[a-z0-9.-]*\/?v[0-9]+((alpha|beta)[0-9]+)?$/.test(apiVersion) && /^[A-Z][A-Za-z0-9]*$/.test(kind)) {
    const spec = `kubernetes-models/${apiVersion}/${kind}`;
    try {
      const mod = await import(spec);
      const cls = mod[kind] ?? mod.default;
      if (cls && cls.apiVersion === apiVersion && cls.kind === kind) {
        const text = fs.readFileSync(fileURLToPath(import.meta.resolve(spec)), "utf8");
        const m = text.match(/_schemas\/([A-Za-z0-9]+)\.js/);
        if (m) result = (await import(`kubernetes-models/_schemas/${m[1]}`)).validate;
      }
    } catch { /* no such model */ }
  }
  coreValidators.set(key, result);
  return result;
}

let objectMetaValidate;
async function validateMetadata(doc, report) {
  objectMetaValidate ??= (await import("@kubernetes-models/apimachinery/_schemas/IoK8sApimachineryPkgApisMetaV1ObjectMeta")).validate;
  if (doc.metadata === undefined || doc.metadata === null || typeof doc.metadata !== "object") { report("/metadata: missing"); return; }
  const t = traced(doc.metadata);
  if (!objectMetaValidate(t.proxy)) for (const e of objectMetaValidate.errors) report(formatAjvError({ ...e, instancePath: "/metadata" + e.instancePath }));
  for (const u of t.unknownFields()) report("/metadata" + u);
}

// metadata that every object needs, whatever its schema says
function checkNames(doc, report) {
  const md = doc.metadata;
  if (!md || typeof md !== "object") return;
  const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
  const dns1035Label = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
  if (md.name === undefined && md.generateName === undefined) report("/metadata/name: missing");
  if (typeof md.name === "string") {
    if (doc.kind === "Service" && (!dns1035Label.test(md.name) || md.name.length > 63)) report(`/metadata/name: "${md.name}" is not a DNS-1035 label`);
    else if (!dns1123Subdomain.test(md.name) || md.name.length > 253) report(`/metadata/name: "${md.name}" is not a DNS-1123 subdomain`);
  }
  const labelValue = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
  const qualifiedName = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
  for (const [k, v] of Object.entries(md.labels ?? {})) {
    if (!qualifiedName.test(k)) report(`/metadata/labels: "${k}" is not a valid label key`);
    if (typeof v !== "string" || !labelValue.test(v) || v.length > 63) report(`/metadata/labels/${k}: "${v}" is not a valid label value`);
  }
  for (const k of Object.keys(md.annotations ?? {})) if (!qualifiedName.test(k)) report(`/metadata/annotations: "${k}" is not a valid annotation key`);
}

// ---------------------------------------------------------------------------------------------
// policies

// Pod templates of the workload kinds, with their paths.
function podSpecs(doc) {
  const s = doc.spec;
  if (!s || typeof s !== "object") return [];
  switch (doc.kind) {
    case "Pod": return [{ at: "/spec", spec: s, meta: doc.metadata }];
    case "Deployment": case "StatefulSet": case "DaemonSet": case "ReplicaSet": case "Job": case "ReplicationController":
      return s.template?.spec ? [{ at: "/spec/template/spec", spec: s.template.spec, meta: s.template.metadata }] : [];
    case "CronJob": {
      const t = s.jobTemplate?.spec?.template;
      return t?.spec ? [{ at: "/spec/jobTemplate/spec/template/spec", spec: t.spec, meta: t.metadata }] : [];
    }
    default: return [];
  }
}

const RESTRICTED_VOLUME_TYPES = new Set(["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"]);
const SAFE_SYSCTLS = new Set(["kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies",
  "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
  "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"]);
const SELINUX_TYPES = new Set(["", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"]);

// The `restricted` Pod Security Standard (which includes `baseline`), as the admission controller
// checks a pod (Linux pods; the Windows exemptions do not apply here).
export function checkRestricted(at, spec, meta, report) {
  const r = (p, m) => report(`${at}${p}: restricted: ${m}`);
  const psc = spec.securityContext ?? {};
  for (const h of ["hostNetwork", "hostPID", "hostIPC"]) if (spec[h] === true) r(`/${h}`, `${h} must not be true`);
  if (psc.windowsOptions?.hostProcess === true) r("/securityContext/windowsOptions/hostProcess", "must not be true");
  if (psc.runAsUser === 0) r("/securityContext/runAsUser", "must not be 0");
  checkSeLinux("/securityContext", psc.seLinuxOptions, r);
  if (psc.seccompProfile && !["RuntimeDefault", "Localhost"].includes(psc.seccompProfile.type)) r("/securityContext/seccompProfile/type", "must be RuntimeDefault or Localhost");
  if (psc.appArmorProfile && !["RuntimeDefault", "Localhost"].includes(psc.appArmorProfile.type)) r("/securityContext/appArmorProfile/type", "must be RuntimeDefault or Localhost");
  for (const s of psc.sysctls ?? []) if (!SAFE_SYSCTLS.has(s.name)) r("/securityContext/sysctls", `sysctl ${s.name} is not allowed`);
  for (const [k, v] of Object.entries(meta?.annotations ?? {}))
    if (k.startsWith("container.apparmor.security.beta.kubernetes.io/") && v !== "runtime/default" && !String(v).startsWith("localhost/"))
      r("/metadata/annotations", `${k} must be runtime/default or localhost/*`);
  (spec.volumes ?? []).forEach((v, i) => {
    for (const t of Object.keys(v)) if (t !== "name" && !RESTRICTED_VOLUME_TYPES.has(t)) r(`/volumes/${i}`, `volume type ${t} is not allowed (${v.name})`);
  });
  const podNonRoot = psc.runAsNonRoot === true;
  const podSeccomp = ["RuntimeDefault", "Localhost"].includes(psc.seccompProfile?.type);
  for (const list of ["initContainers", "containers", "ephemeralContainers"]) {
    (spec[list] ?? []).forEach((c, i) => {
      const cp = `/${list}/${i}`;
      const csc = c.securityContext ?? {};
      const cr = (p, m) => r(`${cp}${p}`, `container "${c.name}": ${m}`);
      if (csc.privileged === true) cr("/securityContext/privileged", "must not be true");
      if (csc.allowPrivilegeEscalation !== false) cr("/securityContext/allowPrivilegeEscalation", "must be false");
      const drop = csc.capabilities?.drop ?? [];
      if (!drop.includes("ALL")) cr("/securityContext/capabilities/drop", "must include ALL");
      for (const a of csc.capabilities?.add ?? []) if (a !== "NET_BIND_SERVICE") cr("/securityContext/capabilities/add", `only NET_BIND_SERVICE may be added, not ${a}`);
      if (csc.runAsNonRoot === false) cr("/securityContext/runAsNonRoot", "must not be false");
      else if (csc.runAsNonRoot !== true && !podNonRoot) cr("/securityContext/runAsNonRoot", "must be true (in the container or the pod)");
      if (csc.runAsUser === 0) cr("/securityContext/runAsUser", "must not be 0");
      const st = csc.seccompProfile?.type;
      if (st !== undefined && !["RuntimeDefault", "Localhost"].includes(st)) cr("/securityContext/seccompProfile/type", "must be RuntimeDefault or Localhost");
      else if (st === undefined && !podSeccomp) cr("/securityContext/seccompProfile/type", "must be RuntimeDefault or Localhost (in the container or the pod)");
      if (csc.appArmorProfile && !["RuntimeDefault", "Localhost"].includes(csc.appArmorProfile.type)) cr("/securityContext/appArmorProfile/type", "must be RuntimeDefault or Localhost");
      if (csc.windowsOptions?.hostProcess === true) cr("/securityContext/windowsOptions/hostProcess", "must not be true");
      if (csc.procMount !== undefined && csc.procMount !== "Default") cr("/securityContext/procMount", "must be Default");
      checkSeLinux(`${cp}/securityContext`, csc.seLinuxOptions, r);
      (c.ports ?? []).forEach((p, j) => { if (p.hostPort) cr(`/ports/${j}/hostPort`, "host ports are not allowed"); });
    });
  }
}
function checkSeLinux(at, o, r) {
  if (!o) return;
  if (o.type !== undefined && !SELINUX_TYPES.has(o.type)) r(`${at}/seLinuxOptions/type`, `SELinux type ${o.type} is not allowed`);
  if (o.user !== undefined) r(`${at}/seLinuxOptions/user`, "must not be set");
  if (o.role !== undefined) r(`${at}/seLinuxOptions/role`, "must not be set");
}

// ReadWriteMany: valid in the schema, refused by the default storage classes of kind, k3s, EKS, GKE
// and AKS (the pod stays Pending). Issue 11 forbids it.
function checkClaims(doc, report) {
  const check = (at, claimSpec) => {
    if ((claimSpec?.accessModes ?? []).includes("ReadWriteMany")) report(`${at}/accessModes: ReadWriteMany is not allowed (the default storage classes of kind, k3s, EKS, GKE and AKS refuse it)`);
  };
  if (doc.kind === "PersistentVolumeClaim") check("/spec", doc.spec);
  if (doc.kind === "StatefulSet") (doc.spec?.volumeClaimTemplates ?? []).forEach((t, i) => check(`/spec/volumeClaimTemplates/${i}/spec`, t.spec));
  for (const p of podSpecs(doc))
    (p.spec.volumes ?? []).forEach((v, i) => { if (v.ephemeral) check(`${p.at}/volumes/${i}/ephemeral/volumeClaimTemplate/spec`, v.ephemeral.volumeClaimTemplate?.spec); });
}

// KEDA resolves a trigger's addresses from its own namespace (keda), not from the ScaledObject's:
// a bare service name (bookstore-kafka-bootstrap:9092) does not resolve there.
function checkKedaKafka(doc, report) {
  if (doc.kind !== "ScaledObject" && doc.kind !== "ScaledJob") return;
  (doc.spec?.triggers ?? []).forEach((t, i) => {
    if (t?.type !== "kafka" && t?.type !== "apache-kafka") return;
    const servers = t.metadata?.bootstrapServers;
    if (typeof servers !== "string") return;
    for (const s of servers.split(","))
      if (!s.split(":")[0].includes(".")) report(`/spec/triggers/${i}/metadata/bootstrapServers: ${s} is not namespace-qualified (KEDA resolves it from its own namespace): use SERVICE.NAMESPACE.svc:PORT`);
  });
}

// Checks across a set of objects (the resources of a kustomization, or one file): no object twice,
// and no fixed replica count on a workload that a KEDA ScaledObject scales.
function checkObjectSet(objects, report, { targetsMustExist }) {
  const ids = new Map();
  for (const { doc, file } of objects) {
    if (!doc?.kind || !doc?.metadata?.name) continue;
    const group = String(doc.apiVersion ?? "").includes("/") ? String(doc.apiVersion).split("/")[0] : "";
    const id = `${group}/${doc.kind}/${doc.metadata.namespace ?? ""}/${doc.metadata.name}`;
    if (ids.has(id)) report(file, `${describeObject(doc)} is defined twice (also in ${path.basename(ids.get(id))})`);
    else ids.set(id, file);
  }
  for (const { doc, file } of objects) {
    if (doc?.kind !== "ScaledObject") continue;
    const ref = doc.spec?.scaleTargetRef ?? {};
    const kind = ref.kind ?? "Deployment";
    const target = objects.find(o => o.doc?.kind === kind && o.doc?.metadata?.name === ref.name);
    if (!target) { if (targetsMustExist) report(file, `${describeObject(doc)}: its target ${kind}/${ref.name} is not among the resources`); continue; }
    if (target.doc.spec?.replicas !== undefined)
      report(target.file, `${describeObject(target.doc)}: /spec/replicas is set, but ScaledObject/${doc.metadata?.name} scales it: remove it (applying the manifest sets the count back)`);
  }
}

function containerImages(doc) {
  const out = [];
  for (const p of podSpecs(doc))
    for (const list of ["initContainers", "containers", "ephemeralContainers"])
      (p.spec[list] ?? []).forEach((c, i) => { if (typeof c.image === "string") out.push({ at: `${p.at}/${list}/${i}/image`, image: c.image }); });
  return out;
}
// "registry:5000/a/b:tag@sha256:..." -> { name, tag, digest }
export function parseImage(ref) {
  let rest = ref, digest;
  const at = rest.indexOf("@");
  if (at >= 0) { digest = rest.slice(at + 1); rest = rest.slice(0, at); }
  const slash = rest.lastIndexOf("/"), colon = rest.lastIndexOf(":");
  let tag;
  if (colon > slash) { tag = rest.slice(colon + 1); rest = rest.slice(0, colon); }
  return { name: rest, tag, digest };
}

// ---------------------------------------------------------------------------------------------
// Kubernetes files

const KUSTOMIZATION_FIELDS = new Set(["apiVersion", "kind", "metadata", "resources", "components", "crds", "bases", "namespace", "namePrefix", "nameSuffix",
  "commonLabels", "labels", "commonAnnotations", "images", "replicas", "patches", "patchesStrategicMerge", "patchesJson6902",
  "configMapGenerator", "secretGenerator", "generatorOptions", "generators", "transformers", "validators", "openapi", "buildMetadata",
  "vars", "replacements", "helmCharts", "helmGlobals", "sortOptions", "configurations"]);
const KUSTOMIZATION_IMAGE_FIELDS = new Set(["name", "newName", "newTag", "digest", "tagSuffix"]);

export class Validator {
  constructor({ schemasDir }) {
    this.findings = new Findings();
    this.crds = loadCrds(schemasDir, this.findings);
    this.ajv = makeAjv();
    this.compiled = new Map();
    this.objects = 0;
  }

  crdValidator(gvk) {
    if (!this.compiled.has(gvk)) {
      const { schema } = this.crds.byGvk.get(gvk);
      const closed = closeSchema(schema);
      closed.properties = { ...(closed.properties ?? {}), apiVersion: { type: "string" }, kind: { type: "string" }, metadata: { type: "object" } };
      this.compiled.set(gvk, this.ajv.compile(closed));
    }
    return this.compiled.get(gvk);
  }

  async validateObject(file, index, doc) {
    this.objects++;
    const where = `document ${index + 1} (${describeObject(doc)})`;
    const report = m => this.findings.error(file, where, m);
    if (typeof doc !== "object" || Array.isArray(doc)) { report("not a Kubernetes object"); return; }
    const { apiVersion, kind } = doc;
    if (typeof apiVersion !== "string" || typeof kind !== "string") { report("apiVersion and kind are required"); return; }
    const slash = apiVersion.indexOf("/");
    const group = slash < 0 ? "" : apiVersion.slice(0, slash), version = apiVersion.slice(slash + 1);
    const gk = `${group}/${kind}`;
    if (this.crds.servedByGk.has(gk)) {
      const gvk = `${group}/${version}/${kind}`;
      if (!this.crds.byGvk.has(gvk)) {
        const { source, versions } = this.crds.servedByGk.get(gk);
        const served = versions.filter(v => v.served).map(v => `${group}/${v.version}`);
        report(`/apiVersion: ${apiVersion} is not served for ${kind} (the CRD ${source} serves ${served.join(", ") || "nothing"})`);
        return;
      }
      const v = this.crdValidator(gvk);
      const copy = dropNulls(structuredClone(doc));
      if (!v(copy)) for (const e of v.errors) report(formatAjvError(e));
      this.celRules(gvk, copy, report, file, where);
      await validateMetadata(doc, report);
    } else if (group.includes(".") && !group.endsWith(".k8s.io")) {
      report(`/apiVersion: no schema for ${apiVersion} ${kind} (CRDs loaded: ${CRD_SETS.map(s => s.slice(0, -1)).join(", ")})`);
      return;
    } else {
      const validate = await coreValidator(apiVersion, kind);
      if (!validate) { report(`/apiVersion: no schema for ${apiVersion} ${kind}`); return; }
      const t = traced(doc);
      if (!validate(t.proxy)) for (const e of validate.errors) report(formatAjvError(e));
      for (const u of t.unknownFields()) report(u);
    }
    checkNames(doc, report);
    for (const p of podSpecs(doc)) checkRestricted(p.at, p.spec, p.meta, report);
    checkClaims(doc, report);
    checkKedaKafka(doc, report);
  }

  // x-kubernetes-list-type (set, map: no duplicates), and x-kubernetes-validations: the CEL rules the
  // API server evaluates on create, after defaulting
  // (transition rules, which read oldSelf, run only on update). A rule that fails is an error; one
  // that cannot be evaluated here (a function of Kubernetes' CEL library this evaluator lacks) a warning.
  celRules(gvk, doc, report, file, where) {
    const root = this.crds.byGvk.get(gvk).schema;
    const toCel = v => Array.isArray(v) ? v.map(toCel)
      : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toCel(x)]))
      : Number.isInteger(v) ? BigInt(v) : v;
    const walk = (schema, value, at) => {
      if (!schema || value === undefined) return;
      for (const rule of schema["x-kubernetes-validations"] ?? []) {
        if (/\boldSelf\b/.test(rule.rule)) continue;
        const fieldAt = rule.fieldPath ? at + rule.fieldPath.replace(/\./g, "/") : at;
        try {
          if (celEvaluate(rule.rule, { self: toCel(value) }) !== true) report(`${fieldAt || "/"}: ${rule.message ?? `failed rule: ${rule.rule}`}`);
        } catch (e) {
          this.findings.warning(file, where, `${fieldAt || "/"}: CEL rule not evaluated (${rule.rule}): ${String(e.message).split("\n")[0]}`);
        }
      }
      if (Array.isArray(value)) {
        // x-kubernetes-list-type: a set holds no item twice, a map no two items with the same keys
        const listType = schema["x-kubernetes-list-type"];
        if (listType === "set" || listType === "map") {
          const keyOf = x => JSON.stringify(listType === "set" ? x : (schema["x-kubernetes-list-map-keys"] ?? []).map(k => x?.[k])); // defaults applied already
          const seen = new Set();
          value.forEach((x, i) => { const key = keyOf(x); if (seen.has(key)) report(`${at}/${i}: duplicate entry ${key} in a list of type ${listType}`); seen.add(key); });
        }
        if (schema.items) value.forEach((x, i) => walk(schema.items, x, `${at}/${i}`));
        return;
      }
      if (value && typeof value === "object")
        for (const [k, x] of Object.entries(value)) {
          if (schema.properties?.[k]) walk(schema.properties[k], x, `${at}/${k}`);
          else if (typeof schema.additionalProperties === "object") walk(schema.additionalProperties, x, `${at}/${k}`);
        }
    };
    walk(root, doc, "");
  }

  async validateKubernetesFile(file, docs) {
    for (const [i, doc] of docs.entries()) {
      if (doc?.kind === "Kustomization" || (i === 0 && docs.length === 1 && /^kustomization\.ya?ml$|^Kustomization$/.test(path.basename(file)))) this.validateKustomization(file, doc);
      else await this.validateObject(file, i, doc);
    }
    // the resources of a kustomization are checked together, by validateKustomization
    if (!listedInKustomization(file)) checkObjectSet(docs.filter(d => d?.kind !== "Kustomization").map(doc => ({ doc, file })), (f, m) => this.findings.error(f, "objects", m), { targetsMustExist: false });
  }

  // kustomization.yaml is not an object of the cluster: its fields, its paths, and its images.
  validateKustomization(file, k) {
    const dir = path.dirname(file);
    const where = "kustomization";
    const report = m => this.findings.error(file, where, m);
    if (k.apiVersion !== undefined && k.apiVersion !== "kustomize.config.k8s.io/v1beta1") report(`/apiVersion: must be kustomize.config.k8s.io/v1beta1`);
    if (k.kind !== undefined && k.kind !== "Kustomization") report(`/kind: must be Kustomization`);
    for (const f of Object.keys(k)) if (!KUSTOMIZATION_FIELDS.has(f)) report(`/${f}: unknown field "${f}"`);
    const resourceFiles = [];
    const paths = [...(k.resources ?? []).map((p, i) => [`/resources/${i}`, p]), ...(k.components ?? []).map((p, i) => [`/components/${i}`, p]),
      ...(k.patches ?? []).flatMap((p, i) => (p?.path ? [[`/patches/${i}/path`, p.path]] : [])),
      ...(k.crds ?? []).map((p, i) => [`/crds/${i}`, p])];
    for (const [at, p] of paths) {
      if (typeof p !== "string") { report(`${at}: must be a path`); continue; }
      if (/^[a-z]+:\/\//.test(p) || p.startsWith("github.com/")) { this.findings.warning(file, where, `${at}: ${p} is remote: not checked here`); continue; }
      const full = path.resolve(dir, p);
      if (!fs.existsSync(full)) { report(`${at}: ${p} does not exist`); continue; }
      if (at.startsWith("/resources")) {
        if (fs.statSync(full).isDirectory()) {
          if (!["kustomization.yaml", "kustomization.yml", "Kustomization"].some(n => fs.existsSync(path.join(full, n)))) report(`${at}: ${p} is a directory without a kustomization`);
        } else resourceFiles.push(full);
      }
    }
    const listed = new Set(resourceFiles.map(f => path.resolve(f)));
    for (const f of fs.readdirSync(dir))
      if (/\.ya?ml$/.test(f) && !/^kustomization\.ya?ml$/.test(f) && !listed.has(path.resolve(dir, f)))
        this.findings.warning(file, where, `${f} is in the directory but not in resources`);
    const entries = new Map();
    (k.images ?? []).forEach((e, i) => {
      for (const f of Object.keys(e ?? {})) if (!KUSTOMIZATION_IMAGE_FIELDS.has(f)) report(`/images/${i}/${f}: unknown field "${f}"`);
      if (typeof e?.name !== "string") report(`/images/${i}/name: missing`);
      else entries.set(e.name, e);
    });
    const used = new Set();
    const scratch = new Findings();
    for (const rf of resourceFiles)
      for (const doc of readYaml(rf, scratch))
        for (const { at, image } of containerImages(doc)) {
          const { name, tag, digest } = parseImage(image);
          const e = entries.get(name);
          const rel = path.relative(dir, rf);
          if (!e) { report(`/images: no entry for ${name} (${rel} ${describeObject(doc)} ${at})`); continue; }
          used.add(name);
          const finalTag = e.newTag ?? tag, finalDigest = e.digest ?? digest;
          if (!finalDigest && (!finalTag || finalTag === "latest")) report(`/images: ${name} ends up ${finalTag ? "tagged latest" : "untagged"} (pull policy Always): set newTag or digest`);
        }
    for (const n of entries.keys()) if (!used.has(n)) this.findings.warning(file, where, `/images: ${n} is used by no container`);
    checkObjectSet(resourceFiles.flatMap(rf => readYaml(rf, scratch).map(doc => ({ doc, file: rf }))), (f, m) => report(`${path.relative(dir, f)}: ${m}`), { targetsMustExist: true });
  }

  // -------------------------------------------------------------------------------------------
  // compose

  validateComposeFile(file, doc) {
    const linter = new DCLinter({
      rules: {
        // correctness and exposure
        "no-build-and-image": [2, { checkPullPolicy: true }],
        "no-duplicate-container-names": 2,
        // dclint 3.1.0 takes every ephemeral host port ("127.0.0.1::8080", "8080") for the same port "": checked below
        "no-duplicate-exported-ports": 0,
        "no-unbound-port-interfaces": 2,
        "no-version-field": 2,
        // style: not this check's business
        "no-quotes-in-volumes": 0, "require-project-name-field": 0, "require-quotes-in-ports": 0, "service-container-name-regex": 0,
        "service-dependencies-alphabetical-order": 0, "service-image-require-explicit-tag": 0, "service-keys-order": 0,
        "service-ports-alphabetical-order": 0, "services-alphabetical-order": 0, "top-level-properties-order": 0,
      },
      quiet: false, debug: false, exclude: [],
    });
    // The compose specification (the schema dclint ships), with every error and the field it names;
    // dclint itself reports only the first one, without the field.
    this.composeSchema ??= new Ajv({ allErrors: true, strict: false, allowUnionTypes: true, validateSchema: false, code: { optimize: false } })
      .compile(JSON.parse(fs.readFileSync(path.join(here, "node_modules", "dclint", "schemas", "compose.schema.json"), "utf8")));
    const specOk = doc && typeof doc === "object" ? this.composeSchema(structuredClone(doc)) : false;
    if (doc && typeof doc === "object" && !specOk)
      for (const e of this.composeSchema.errors) this.findings.error(file, "compose specification", formatAjvError(e));
    for (const r of linter.lintFiles([file], false))
      for (const m of r.messages) {
        if (m.rule === "invalid-schema" && !specOk) continue; // reported above, field by field
        this.findings.add(m.type === "error" ? "error" : "warning", file, `line ${m.line}`, `${m.rule}: ${m.message}`);
      }
    if (!doc || typeof doc !== "object") return;
    const dir = path.dirname(file);
    (doc.include ?? []).forEach((inc, i) => {
      const paths = typeof inc === "string" ? [inc] : [inc?.path ?? []].flat();
      for (const p of paths) if (!fs.existsSync(path.resolve(dir, p))) this.findings.error(file, "include", `/include/${i}: ${p} does not exist`);
    });
    const published = new Map();
    for (const [name, svc] of Object.entries(doc.services ?? {})) {
      if (!svc || typeof svc !== "object") continue;
      const where = `service ${name}`;
      (svc.ports ?? []).forEach((p, i) => {
        const { hostIp, hostPort } = typeof p === "object" ? { hostIp: p.host_ip, hostPort: p.published === undefined ? "" : String(p.published) } : shortPort(String(p));
        if (!["127.0.0.1", "::1", "[::1]"].includes(hostIp)) this.findings.error(file, where, `/services/${name}/ports/${i}: ${JSON.stringify(p)} is published on ${hostIp ?? "every interface"}: bind it to 127.0.0.1`);
        if (hostPort !== "") {
          const key = `${hostIp ?? ""}:${hostPort}`;
          if (published.has(key)) this.findings.error(file, where, `/services/${name}/ports/${i}: host port ${hostPort} is already published by ${published.get(key)}`);
          else published.set(key, name);
        }
      });
      if (svc.build && svc.image && svc.pull_policy !== undefined && !["build", "never"].includes(svc.pull_policy))
        this.findings.error(file, where, `/services/${name}/pull_policy: ${svc.pull_policy} pulls ${svc.image} before building it: use build`);
      if (svc.image && !svc.build) {
        const { tag, digest } = parseImage(String(svc.image));
        if (!digest && (!tag || tag === "latest")) this.findings.error(file, where, `/services/${name}/image: ${svc.image} has no version tag`);
      }
    }
  }

  // -------------------------------------------------------------------------------------------

  async validateFile(file) {
    const docs = readYaml(file, this.findings);
    const k8s = docs.some(d => d && typeof d === "object" && ("apiVersion" in d || "kind" in d)) || /^kustomization\.ya?ml$/.test(path.basename(file));
    if (k8s) await this.validateKubernetesFile(file, docs);
    else this.validateComposeFile(file, docs[0]);
  }
}

function listedInKustomization(file) {
  const dir = path.dirname(file);
  const k = ["kustomization.yaml", "kustomization.yml"].map(n => path.join(dir, n)).find(p => fs.existsSync(p));
  if (!k || path.resolve(k) === path.resolve(file)) return false;
  try {
    const doc = YAML.parse(fs.readFileSync(k, "utf8"));
    return (doc?.resources ?? []).some(r => typeof r === "string" && path.resolve(dir, r) === path.resolve(file));
  } catch { return false; }
}

// "[host_ip:][published:]target[/proto]": the host IP and the host port ("" for an ephemeral one)
function shortPort(s) {
  let spec = s.split("/")[0], hostIp;
  const ipv6 = spec.match(/^\[([^\]]+)\]:(.*)$/);
  if (ipv6) { hostIp = `[${ipv6[1]}]`; spec = ipv6[2]; }
  const parts = spec.split(":");
  if (!ipv6 && parts.length === 3) hostIp = parts.shift();
  return { hostIp, hostPort: parts.length >= 2 ? parts[0] : "" };
}

function yamlFilesIn(dir, recursive) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory() && recursive) out.push(...yamlFilesIn(p, true));
    else if (e.isFile() && /\.ya?ml$/.test(e.name)) out.push(p);
  }
  return out;
}

// fixtures: the files and folders of a folder, except the folder of broken ones
function fixtureUnits(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).filter(e => e.isDirectory() ? e.name !== "broken" : /\.ya?ml$/.test(e.name))
    .map(e => path.join(dir, e.name)).sort();
}

export function defaultUnits(root) {
  const units = [];
  const k8s = path.join(root, "deploy", "k8s");
  if (fs.existsSync(k8s)) for (const f of yamlFilesIn(k8s, true)) units.push(f);
  for (const f of ["compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml", "docker-compose.kafka.yml"])
    if (fs.existsSync(path.join(root, f))) units.push(path.join(root, f));
  return units;
}

// ---------------------------------------------------------------------------------------------

async function main(argv) {
  let root = path.resolve(here, "..", ".."), schemasDir, json = false, repository = false, checkFixtures = false;
  const paths = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--schemas") schemasDir = argv[++i];
    else if (a === "--root") root = path.resolve(argv[++i]);
    else if (a === "--json") json = true;
    else if (a === "--repository") repository = true;
    else if (a === "--check-fixtures") checkFixtures = true;
    else if (a === "-h" || a === "--help") { console.log(fs.readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n").slice(1, 14).map(l => l.replace(/^\/\/ ?/, "")).join("\n")); return 0; }
    else if (a.startsWith("-")) { console.error(`unknown option ${a}`); return 2; }
    else paths.push(path.resolve(a));
  }
  schemasDir = path.resolve(schemasDir ?? path.join(root, "..", "shared", "schemas"));
  if (!fs.existsSync(schemasDir)) { console.error(`validate-deploy: no schemas at ${schemasDir} (--schemas DIR)`); return 2; }
  if (checkFixtures) {
    const valid = fixtureUnits(path.join(here, "fixtures")), broken = fixtureUnits(path.join(here, "fixtures", "broken"));
    paths.push(...valid, ...broken);
  }
  const units = checkFixtures || (paths.length && !repository) ? paths : [...defaultUnits(root), ...paths];
  let v;
  try { v = new Validator({ schemasDir }); } catch (e) { console.error(`validate-deploy: ${e.message}`); return 2; }
  const results = [];
  for (const unit of units) {
    v.findings = new Findings();
    v.objects = 0;
    if (!fs.existsSync(unit)) v.findings.error(unit, "", "no such file");
    else for (const f of fs.statSync(unit).isDirectory() ? yamlFilesIn(unit, false) : [unit]) await v.validateFile(f);
    // paths relative to the repository root (--root), with forward slashes
    const rel = p => path.relative(root, p).split(path.sep).join("/") || ".";
    results.push({ unit: rel(unit), objects: v.objects, findings: v.findings.items.map(x => ({ ...x, file: rel(x.file) })) });
  }
  if ((repository || !paths.length) && fs.existsSync(path.join(root, "deploy", "k8s"))
      && !["kustomization.yaml", "kustomization.yml"].some(n => fs.existsSync(path.join(root, "deploy", "k8s", n))))
    results.push({ unit: "deploy/k8s", objects: 0, findings: [{ severity: "error", file: "deploy/k8s", where: "",
      message: "no kustomization.yaml: the images (and the resources to apply) are to be set in one place" }] });
  const errors = results.reduce((n, r) => n + r.findings.filter(f => f.severity === "error").length, 0);
  const warnings = results.reduce((n, r) => n + r.findings.filter(f => f.severity === "warning").length, 0);
  if (checkFixtures) {
    // each valid fixture passes; each broken one fails with every error its "# expect:" lines name
    let passed = 0, failed = 0;
    for (const r of results) {
      const unit = path.resolve(root, r.unit);
      const errs = r.findings.filter(f => f.severity === "error").map(f => `${f.file}: ${f.where ? f.where + ": " : ""}${f.message}`);
      const expected = (fs.statSync(unit).isDirectory() ? yamlFilesIn(unit, false) : [unit])
        .flatMap(f => fs.readFileSync(f, "utf8").split("\n")).filter(l => l.startsWith("# expect:")).map(l => l.slice(9).trim());
      const isBroken = path.dirname(unit) === path.join(here, "fixtures", "broken");
      const missing = expected.filter(e => !errs.some(x => x.includes(e)));
      const ok = isBroken ? expected.length > 0 && errs.length > 0 && missing.length === 0 : errs.length === 0;
      ok ? passed++ : failed++;
      console.log(`${ok ? "ok  " : "FAIL"} ${r.unit}${ok ? "" : "\n  " + [...missing.map(m => `missing: ${m}`), ...errs].join("\n  ")}`);
    }
    console.log(`${passed} passed, ${failed} failed`);
    return failed ? 1 : 0;
  }
  if (json) console.log(JSON.stringify({ schemas: schemasDir, crdSets: CRD_SETS.map(s => s.slice(0, -1)), errors, warnings, results }, null, 1));
  else {
    for (const r of results) for (const f of r.findings) console.log(`${f.file}: ${f.severity}: ${f.where ? f.where + ": " : ""}${f.message}`);
    const objects = results.reduce((n, r) => n + r.objects, 0);
    console.log(`validate-deploy: ${units.length} file(s), ${objects} Kubernetes object(s) against ${CRD_SETS.map(s => s.slice(0, -1)).join(", ")}, kubernetes-models and the compose specification: ${errors} error(s), ${warnings} warning(s)`);
  }
  return errors ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = await main(process.argv.slice(2));
