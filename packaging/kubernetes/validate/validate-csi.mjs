// Validates packaging/kubernetes/csi offline:
//  - every manifest, after its ${PLACEHOLDERS} are replaced by the examples in
//    ../placeholders.env, against the Kubernetes OpenAPI schemas
//    (kubernetes-models), with unknown fields refused: a misspelt field that
//    the API server would drop in silence is an error here;
//  - the kustomization lists exactly the manifests there are;
//  - the CSIDriver (name, attachRequired, podInfoOnMount, lifecycle modes),
//    the node DaemonSet (the plugin's flags are ones irsafs-csi --help lists;
//    the socket the registrar registers is the one the plugin serves; the
//    kubelet directory with Bidirectional propagation; upstream sidecars) and
//    its RBAC (no token, no role);
//  - the application Pods: nothing privileged anywhere (Pod Security
//    "restricted", checked rule by rule), the irsafs native sidecar runs
//    `irsafs serve` on the emptyDir irsafs-socket with flags irsafs knows,
//    the volume is read-only, from this driver, with bucket and prefix only;
//  - the static PV and its claim are bound to each other.
// usage: node validate-csi.mjs CSI_MANIFEST_DIR IRSAFS IRSAFS_CSI [NAME=VALUE...]
// NAME=VALUE overrides a placeholder's example (PREFIX= renders the whole bucket).
// Prints one line per problem and "N passed, M failed"; exits 1 on a problem.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import YAML from "yaml";

const [dir, irsafs, irsafsCsi, ...overrides] = process.argv.slice(2);
if (!dir || !irsafs || !irsafsCsi) {
  console.error("usage: node validate-csi.mjs CSI_MANIFEST_DIR IRSAFS IRSAFS_CSI");
  process.exit(2);
}
let passed = 0;
let failed = 0;
function check(ok, what) {
  if (ok) {
    passed++;
  } else {
    failed++;
    console.log(`FAIL csi/${what}`);
  }
}

// Placeholders, from the parent directory's list.
const examples = {};
for (const line of fs.readFileSync(path.join(dir, "..", "placeholders.env"), "utf8").split("\n")) {
  const m = line.match(/^([A-Z0-9_]+)=(.*)$/);
  if (m) examples[m[1]] = m[2];
}
for (const o of overrides) {
  const m = o.match(/^([A-Z0-9_]+)=(.*)$/);
  check(m && m[1] in examples, `override ${o} is not NAME=VALUE for a placeholder`);
  if (m) examples[m[1]] = m[2];
}
const files = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort();
const text = {};
for (const f of files) {
  const raw = fs.readFileSync(path.join(dir, f), "utf8");
  for (const m of raw.matchAll(/\$\{([A-Za-z0-9_]+)\}/g))
    check(m[1] in examples, `${f}: placeholder \${${m[1]}} is not listed in placeholders.env`);
  check(!/\$[A-Za-z_{]/.test(raw.replace(/\$\{[A-Za-z0-9_]+\}/g, "")),
    `${f}: a '$' that is not a \${NAME} placeholder`);
  text[f] = raw.replace(/\$\{([A-Za-z0-9_]+)\}/g, (_, n) => examples[n] ?? "");
}

// The compiled schema validator of a kind: the one its kubernetes-models class uses.
const require = createRequire(import.meta.url);
const modelsDir = path.dirname(require.resolve("kubernetes-models/package.json"));
async function schemaFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const file = path.join(modelsDir, group || "", version, `${kind}.mjs`);
  if (!fs.existsSync(file)) return null;
  const m = fs.readFileSync(file, "utf8").match(/import\{validate\}from"([^"]+)"/);
  if (!m) return null;
  return (await import(path.resolve(path.dirname(file), m[1]))).validate;
}

// Unknown fields: the schema validators read every field they know, so a
// field no validator read is one the schema does not have. Each object is
// wrapped in a Proxy that records the keys read; maps (labels,
// volumeAttributes) are iterated, which reads them all.
function tracked(root) {
  const seen = new WeakMap();
  const proxies = new WeakMap();
  function wrap(obj) {
    if (obj === null || typeof obj !== "object") return obj;
    if (proxies.has(obj)) return proxies.get(obj);
    seen.set(obj, new Set());
    const p = new Proxy(obj, {
      get(t, k, r) {
        if (typeof k === "string") seen.get(t).add(k);
        return wrap(Reflect.get(t, k, r));
      },
      ownKeys(t) {
        for (const k of Reflect.ownKeys(t)) if (typeof k === "string") seen.get(t).add(k);
        return Reflect.ownKeys(t);
      },
      has(t, k) {
        if (typeof k === "string") seen.get(t).add(k);
        return Reflect.has(t, k);
      },
    });
    proxies.set(obj, p);
    return p;
  }
  function unknown(obj, where, out) {
    if (obj === null || typeof obj !== "object") return out;
    const keys = seen.get(obj);
    for (const k of Object.keys(obj)) {
      if (!Array.isArray(obj) && (!keys || !keys.has(k))) out.push(`${where}.${k}`);
      else unknown(obj[k], Array.isArray(obj) ? `${where}[${k}]` : `${where}.${k}`, out);
    }
    return out;
  }
  return { proxy: wrap(root), unknown: (name) => unknown(root, name, []) };
}

const docs = [];
let kustomization = null;
for (const f of files) {
  for (const d of YAML.parseAllDocuments(text[f])) {
    check(d.errors.length === 0, `${f}: YAML: ${d.errors.map((e) => e.message).join("; ")}`);
    const obj = d.toJS();
    if (!obj) continue;
    if (obj.kind === "Kustomization") {
      kustomization = { file: f, obj };
      continue;
    }
    const validate = await schemaFor(obj.apiVersion, obj.kind);
    check(validate, `${f}: no schema for ${obj.apiVersion} ${obj.kind}`);
    if (!validate) continue;
    const t = tracked(obj);
    const ok = validate(t.proxy);
    check(ok, `${f}: ${obj.kind} ${obj.metadata?.name}: ${JSON.stringify(validate.errors)}`);
    const extra = t.unknown(obj.kind);
    check(extra.length === 0, `${f}: ${obj.kind} ${obj.metadata?.name}: unknown fields ${extra.join(", ")}`);
    docs.push({ file: f, obj });
  }
}
check(kustomization, "kustomization.yaml is missing");
if (kustomization) {
  const listed = [...(kustomization.obj.resources || [])].sort();
  const manifests = [...new Set(docs.map((d) => d.file))].sort();
  check(JSON.stringify(listed) === JSON.stringify(manifests),
    `kustomization resources ${listed} != manifests ${manifests}`);
}
const of = (kind) => docs.filter((d) => d.obj.kind === kind).map((d) => d.obj);

// What the binaries accept.
const csiHelp = execFileSync(irsafsCsi, ["--help"], { encoding: "utf8" });
const driver = csiHelp.match(/driver name ([a-z0-9.-]+)/)?.[1];
check(driver, "irsafs-csi --help does not name the driver");
const csiFlags = new Set([...csiHelp.matchAll(/(--[a-z][a-z-]*)/g)].map((m) => m[1]));
const serveHelp = execFileSync(irsafs, ["--help"], { encoding: "utf8" }) +
  execFileSync(irsafs, ["serve", "--help"], { encoding: "utf8" });
const serveFlags = new Set([...serveHelp.matchAll(/(--[a-z][a-z-]*)/g)].map((m) => m[1]));

// The CSIDriver.
const cd = of("CSIDriver")[0];
check(cd?.metadata.name === driver, `CSIDriver name ${cd?.metadata.name} != ${driver}`);
check(cd?.spec.attachRequired === false, "CSIDriver: attachRequired false");
check(cd?.spec.podInfoOnMount === true, "CSIDriver: podInfoOnMount true (the plugin needs the Pod's UID)");
check(["Ephemeral", "Persistent"].every((m) => cd?.spec.volumeLifecycleModes?.includes(m)),
  "CSIDriver: Ephemeral and Persistent lifecycle modes");

// The node DaemonSet.
const ds = of("DaemonSet")[0];
const podSpec = ds?.spec.template.spec;
const byName = (n) => podSpec?.containers.find((c) => c.name === n);
const plugin = byName("irsafs-csi");
check(plugin, "DaemonSet: no irsafs-csi container");
const hostVol = (n) => podSpec?.volumes.find((v) => v.name === n)?.hostPath?.path;
if (plugin) {
  check(plugin.image === examples.IMAGE, "DaemonSet: irsafs-csi runs the irsafs image");
  check(plugin.command?.[0] === "/usr/bin/irsafs-csi", "DaemonSet: command /usr/bin/irsafs-csi");
  const args = plugin.args || [];
  for (const a of args) check(csiFlags.has(a.split("=")[0]), `DaemonSet: irsafs-csi has no flag ${a}`);
  check(plugin.securityContext?.privileged === true, "DaemonSet: the plugin is privileged (mounts, Bidirectional)");
  check(!(plugin.env || []).some((e) => /^AWS_/.test(e.name)), "DaemonSet: the plugin gets no AWS variable");
  check(!podSpec.hostNetwork, "DaemonSet: no host network (the plugin needs no network)");
  const ep = args.find((a) => a.startsWith("--endpoint="))?.slice("--endpoint=unix://".length);
  const kdir = args.find((a) => a.startsWith("--kubelet-dir="))?.split("=")[1];
  const sockMount = plugin.volumeMounts.find((m) => ep?.startsWith(m.mountPath + "/"));
  check(sockMount, `DaemonSet: --endpoint ${ep} is not on a volume`);
  const kmount = plugin.volumeMounts.find((m) => m.mountPath === kdir);
  check(kmount?.mountPropagation === "Bidirectional", "DaemonSet: the kubelet directory with Bidirectional propagation");
  check(hostVol(kmount?.name) === kdir, "DaemonSet: the kubelet directory is the host's");
  const reg = byName("node-driver-registrar");
  const regPath = reg?.args.find((a) => a.startsWith("--kubelet-registration-path="))?.split("=")[1];
  check(regPath === `${hostVol(sockMount?.name)}/${path.basename(ep || "")}` &&
    regPath === `${kdir}/plugins/${driver}/csi.sock`,
    `DaemonSet: the registrar registers ${regPath}, the plugin serves ${hostVol(sockMount?.name)}/${path.basename(ep || "")}`);
  check(hostVol(reg?.volumeMounts.find((m) => m.mountPath === "/registration")?.name) === `${kdir}/plugins_registry`,
    "DaemonSet: the registrar's /registration is the kubelet's plugins_registry");
  const live = byName("livenessprobe");
  const port = live?.args.find((a) => a.startsWith("--health-port="))?.split("=")[1];
  check(String(plugin.ports?.find((p) => p.name === plugin.livenessProbe?.httpGet?.port)?.containerPort) === port,
    "DaemonSet: the liveness probe asks the livenessprobe sidecar's port");
  for (const c of [reg, live]) {
    check(c && /^registry\.k8s\.io\/sig-storage\/[a-z-]+:v\d+\.\d+\.\d+$/.test(c.image),
      `DaemonSet: ${c?.name} is an upstream image with a pinned version`);
    check(c?.args.includes(`--csi-address=${ep}`), `DaemonSet: ${c?.name} talks to ${ep}`);
  }
}
const sa = of("ServiceAccount").find((s) => s.metadata.name === podSpec?.serviceAccountName);
check(sa && sa.automountServiceAccountToken === false && podSpec?.automountServiceAccountToken === false,
  "RBAC: the node plugin's ServiceAccount mounts no token");
check(of("Role").length + of("ClusterRole").length + of("RoleBinding").length +
  of("ClusterRoleBinding").length === 0, "RBAC: no role: nothing here calls the API");

// Pod Security "restricted", rule by rule (the parts a Pod spec can break).
const restrictedVolumes = ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
  "persistentVolumeClaim", "projected", "secret"];
function restricted(file, spec) {
  const podSc = spec.securityContext || {};
  check(!spec.hostNetwork && !spec.hostPID && !spec.hostIPC, `${file}: no host namespaces`);
  for (const v of spec.volumes || []) {
    const type = Object.keys(v).find((k) => k !== "name");
    check(restrictedVolumes.includes(type), `${file}: volume ${v.name} (${type}) is not allowed under restricted`);
  }
  for (const c of [...(spec.initContainers || []), ...spec.containers]) {
    const sc = c.securityContext || {};
    const where = `${file}: ${c.name}`;
    check(!sc.privileged, `${where}: privileged`);
    check(sc.allowPrivilegeEscalation === false, `${where}: allowPrivilegeEscalation must be false`);
    check(sc.capabilities?.drop?.includes("ALL"), `${where}: capabilities must drop ALL`);
    check((sc.capabilities?.add || []).every((x) => x === "NET_BIND_SERVICE"), `${where}: adds capabilities`);
    check((sc.runAsNonRoot ?? podSc.runAsNonRoot) === true, `${where}: runAsNonRoot`);
    check((sc.runAsUser ?? podSc.runAsUser) !== 0, `${where}: runs as root`);
    const sp = sc.seccompProfile || podSc.seccompProfile;
    check(["RuntimeDefault", "Localhost"].includes(sp?.type), `${where}: seccompProfile RuntimeDefault`);
    check(!(c.ports || []).some((p) => p.hostPort), `${where}: hostPort`);
    check(!(c.volumeMounts || []).some((m) => m.mountPropagation && m.mountPropagation !== "None"),
      `${where}: mount propagation needs privilege`);
  }
}
const appNs = of("Namespace").find((n) => n.metadata.name === examples.NAMESPACE);
check(appNs?.metadata.labels?.["pod-security.kubernetes.io/enforce"] === "restricted",
  "the application namespace enforces Pod Security restricted");
const pods = docs.filter((d) => d.obj.kind === "Pod");
check(pods.length >= 2, "expected an inline-volume Pod and a PVC Pod");
const pv = of("PersistentVolume")[0];
const pvc = of("PersistentVolumeClaim")[0];
for (const { file, obj } of pods) {
  const spec = obj.spec;
  check(obj.metadata.namespace === examples.NAMESPACE, `${file}: namespace`);
  check(spec.serviceAccountName === examples.SERVICE_ACCOUNT, `${file}: the IRSA ServiceAccount`);
  restricted(file, spec);
  const side = (spec.initContainers || []).find((c) => c.image === examples.IMAGE);
  check(side?.restartPolicy === "Always", `${file}: irsafs is a native sidecar (restartPolicy Always)`);
  if (!side) continue;
  const argv = [...(side.command || []), ...(side.args || [])];
  check(argv[0] === "serve", `${file}: the sidecar runs irsafs serve`);
  for (const a of argv.filter((x) => x.startsWith("--")))
    check(serveFlags.has(a), `${file}: irsafs serve has no flag ${a}`);
  check(!argv.includes("--prefix"), `${file}: --prefix comes from the volume`);
  const sockDir = argv[argv.length - 1];
  const sockMount = side.volumeMounts?.find((m) => m.mountPath === sockDir);
  const sockVol = spec.volumes.find((v) => v.name === sockMount?.name);
  check(sockVol?.name === "irsafs-socket" && sockVol.emptyDir,
    `${file}: serve's directory is the emptyDir irsafs-socket`);
  const ready = argv[argv.indexOf("--ready-file") + 1];
  check(!argv.includes("--ready-file") || (ready?.startsWith(sockDir + "/") &&
    side.startupProbe?.exec?.command.includes(ready)), `${file}: the startup probe waits for the ready file`);
  for (const v of side.env || [])
    check(!["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"].includes(v.name),
      `${file}: ${v.name} is injected by the EKS webhook; do not set it`);
  const uid = argv[argv.indexOf("--uid") + 1];
  for (const c of spec.containers)
    check(!argv.includes("--uid") || String(c.securityContext?.runAsUser ?? spec.securityContext?.runAsUser) === uid,
      `${file}: ${c.name}: --uid matches the app's user`);
  // The data volume: this driver, read-only, mounted read-only.
  const data = spec.volumes.find((v) => v.csi || v.persistentVolumeClaim);
  check(data, `${file}: no irsafs volume`);
  const attrs = data?.csi ? data.csi.volumeAttributes : pv?.spec.csi.volumeAttributes;
  if (data?.csi) {
    check(data.csi.driver === driver, `${file}: volume driver ${data.csi.driver} != ${driver}`);
    check(data.csi.readOnly === true, `${file}: the inline volume is readOnly`);
  } else if (data) {
    check(data.persistentVolumeClaim.claimName === pvc?.metadata.name, `${file}: claims ${pvc?.metadata.name}`);
  }
  check(attrs?.bucket === examples.BUCKET && attrs?.prefix === examples.PREFIX &&
    Object.keys(attrs).every((k) => ["bucket", "prefix"].includes(k)),
    `${file}: volume attributes are bucket and prefix`);
  for (const c of spec.containers)
    for (const m of (c.volumeMounts || []).filter((x) => x.name === data?.name))
      check(m.readOnly === true, `${file}: ${c.name} mounts the volume readOnly`);
}
// The static PV and its claim.
check(pv?.spec.csi.driver === driver && pv?.spec.csi.readOnly === true, "PersistentVolume: this driver, readOnly");
check(pv?.spec.accessModes?.join() === "ReadOnlyMany" && pvc?.spec.accessModes?.join() === "ReadOnlyMany",
  "PersistentVolume and claim: ReadOnlyMany");
check(pv?.spec.claimRef?.name === pvc?.metadata.name && pv?.spec.claimRef?.namespace === pvc?.metadata.namespace &&
  pvc?.spec.volumeName === pv?.metadata.name, "PersistentVolume and claim are bound to each other");
check(pv?.spec.storageClassName === "" && pvc?.spec.storageClassName === "",
  "PersistentVolume and claim: no storage class (static binding)");

console.log(`csi: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
