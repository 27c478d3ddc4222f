// Validates packaging/kubernetes offline:
//  - every manifest, after its ${PLACEHOLDERS} are replaced by the examples in
//    placeholders.env, against the Kubernetes OpenAPI schemas (kubernetes-models);
//  - the kustomization lists exactly the manifests there are;
//  - placeholders: each one used is listed, each one listed is used;
//  - env names are ones irsafs reads (found in its C sources), and the IRSA
//    variables are left to the EKS webhook;
//  - every irsafs flag in the manifests is one `irsafs --help` lists;
//  - the ServiceAccount, the Pods, the IAM policy and the trust policy agree
//    (names, namespace, role, bucket, prefix).
// usage: node validate.mjs MANIFEST_DIR IRSAFS_BINARY SOURCE_ROOT
// Prints one line per problem and "N passed, M failed"; exits 1 on a problem.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";

const [dir, irsafs, srcRoot] = process.argv.slice(2);
if (!dir || !irsafs || !srcRoot) {
  console.error("usage: node validate.mjs MANIFEST_DIR IRSAFS_BINARY SOURCE_ROOT");
  process.exit(2);
}
let passed = 0;
let failed = 0;
function check(ok, what) {
  if (ok) {
    passed++;
  } else {
    failed++;
    console.log(`FAIL ${what}`);
  }
}

// Placeholders.
const examples = {};
for (const line of fs.readFileSync(path.join(dir, "placeholders.env"), "utf8").split("\n")) {
  const m = line.match(/^([A-Z0-9_]+)=(.*)$/);
  if (m) examples[m[1]] = m[2];
}
const files = fs.readdirSync(dir).filter((f) => /\.(ya?ml|json)$/.test(f)).sort();
const used = new Set();
const text = {};
for (const f of files) {
  const raw = fs.readFileSync(path.join(dir, f), "utf8");
  for (const m of raw.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)) {
    used.add(m[1]);
    check(m[1] in examples, `${f}: placeholder \${${m[1]}} is not listed in placeholders.env`);
  }
  check(!/\$[A-Za-z_{]/.test(raw.replace(/\$\{[A-Za-z0-9_]+\}/g, "")),
    `${f}: a '$' that is not a \${NAME} placeholder`);
  text[f] = raw.replace(/\$\{([A-Za-z0-9_]+)\}/g, (_, n) => examples[n] ?? "");
}
for (const name of Object.keys(examples))
  check(used.has(name), `placeholders.env: ${name} is never used`);

// Schemas.
const docs = [];
let kustomization = null;
for (const f of files.filter((x) => /\.ya?ml$/.test(x))) {
  for (const d of YAML.parseAllDocuments(text[f])) {
    check(d.errors.length === 0, `${f}: YAML: ${d.errors.map((e) => e.message).join("; ")}`);
    const obj = d.toJS();
    if (!obj) continue;
    if (obj.kind === "Kustomization") {
      kustomization = { file: f, obj };
      continue;
    }
    const [group, version] = obj.apiVersion.includes("/") ? obj.apiVersion.split("/") : ["", obj.apiVersion];
    const mod = await import(group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`)
      .catch(() => ({}));
    const Model = mod[obj.kind];
    check(Model, `${f}: no schema for ${obj.apiVersion} ${obj.kind}`);
    if (!Model) continue;
    try {
      new Model(obj).validate();
      check(true, "");
    } catch (e) {
      check(false, `${f}: ${obj.kind} ${obj.metadata?.name}: ${e.message}`);
    }
    docs.push({ file: f, obj });
  }
}

// The kustomization lists every manifest, and nothing else.
check(kustomization, "kustomization.yaml is missing");
if (kustomization) {
  const k = kustomization.obj;
  check(k.apiVersion === "kustomize.config.k8s.io/v1beta1", "kustomization: apiVersion");
  const listed = [...(k.resources || [])].sort();
  const manifests = [...new Set(docs.map((d) => d.file))].sort();
  check(JSON.stringify(listed) === JSON.stringify(manifests),
    `kustomization resources ${listed} != manifests ${manifests}`);
}

// What irsafs reads and accepts.
const reads = new Set();
function scan(d) {
  for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    const p = path.join(d, e.name);
    if (e.isDirectory() && !e.name.startsWith(".") && !e.name.startsWith("build") && e.name !== "tests")
      scan(p);
    else if (e.isFile() && e.name.endsWith(".c"))
      for (const m of fs.readFileSync(p, "utf8").matchAll(/"(AWS_[A-Z0-9_]+)"/g)) reads.add(m[1]);
  }
}
scan(srcRoot);
check(reads.has("AWS_ROLE_ARN") && reads.has("AWS_WEB_IDENTITY_TOKEN_FILE"),
  "the C sources do not read AWS_ROLE_ARN / AWS_WEB_IDENTITY_TOKEN_FILE");
const help = execFileSync(irsafs, ["--help"], { encoding: "utf8" });
const flags = new Set([...help.matchAll(/(--[a-z][a-z-]*)/g)].map((m) => m[1]));

const pods = docs.filter((d) => d.obj.kind === "Pod");
const sa = docs.find((d) => d.obj.kind === "ServiceAccount")?.obj;
check(sa, "no ServiceAccount");
check(pods.length >= 2, "expected the sidecar and the staging Pod");
const e = examples;
for (const { file, obj } of pods) {
  const spec = obj.spec;
  check(spec.serviceAccountName === sa?.metadata.name, `${file}: serviceAccountName`);
  check(obj.metadata.namespace === sa?.metadata.namespace, `${file}: namespace`);
  for (const c of [...(spec.initContainers || []), ...spec.containers]) {
    for (const v of c.env || []) {
      if (/^(AWS|IRSAFS)_/.test(v.name)) check(reads.has(v.name), `${file}: ${c.name}: irsafs does not read ${v.name}`);
      check(!["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"].includes(v.name),
        `${file}: ${c.name}: ${v.name} is injected by the EKS webhook; do not set it`);
    }
    if (c.image !== e.IMAGE) continue;
    let argv = [...(c.command || []), ...(c.args || [])];
    if (argv[0] === "irsafs") argv = argv.slice(1);
    const cut = argv.indexOf("--");
    const own = cut >= 0 ? argv.slice(0, cut) : argv;
    for (const a of own.filter((x) => x.startsWith("--")))
      check(flags.has(a), `${file}: ${c.name}: irsafs has no flag ${a}`);
    const positional = own.filter((x, i) => !x.startsWith("-") && !(i > 0 && own[i - 1].startsWith("--") &&
      !["--foreground", "--allow-other", "--force-path-style", "--debug"].includes(own[i - 1])) && x !== "exec");
    check(positional[0] === e.BUCKET, `${file}: ${c.name}: bucket ${positional[0]} != ${e.BUCKET}`);
    const p = own.indexOf("--prefix");
    check(p >= 0 && own[p + 1] === e.PREFIX, `${file}: ${c.name}: --prefix is not ${e.PREFIX}`);
    const mnt = positional[1];
    // The sidecar's mount must be on the shared volume; exec's stays inside its container.
    if (!argv.includes("exec"))
      check(c.volumeMounts?.some((m) => m.mountPath === mnt), `${file}: ${c.name}: ${mnt} is not a volume mount`);
  }
}
// The native sidecar: restartPolicy Always, propagation both ways, uid/gid for the app.
const side = pods.find((d) => d.file === "pod-sidecar.yaml")?.obj;
if (side) {
  const s = side.spec.initContainers[0];
  check(s.restartPolicy === "Always", "sidecar: restartPolicy Always");
  check(s.securityContext?.privileged === true, "sidecar: Bidirectional propagation needs privileged");
  check(s.volumeMounts[0].mountPropagation === "Bidirectional", "sidecar: Bidirectional");
  check(s.startupProbe?.exec, "sidecar: a startup probe tied to the mount");
  const app = side.spec.containers[0];
  check(app.volumeMounts[0].mountPropagation === "HostToContainer", "app: HostToContainer");
  const uid = s.args[s.args.indexOf("--uid") + 1];
  const gid = s.args[s.args.indexOf("--gid") + 1];
  check(s.args.includes("--allow-other"), "sidecar: --allow-other for a non-root app");
  check(String(app.securityContext.runAsUser) === uid && String(app.securityContext.runAsGroup) === gid,
    "sidecar --uid/--gid match the app's runAsUser/runAsGroup");
}
// The policies.
const policy = JSON.parse(text["iam-policy.json"]);
const trust = JSON.parse(text["trust-policy.json"]);
check(policy.Version === "2012-10-17" && trust.Version === "2012-10-17", "policy Version");
const list = policy.Statement.find((s) => s.Action === "s3:ListBucket");
const get = policy.Statement.find((s) => s.Action === "s3:GetObject");
check(list?.Resource === `arn:aws:s3:::${e.BUCKET}`, "ListBucket on the bucket");
check(JSON.stringify(list?.Condition?.StringLike?.["s3:prefix"]) === JSON.stringify([`${e.PREFIX}/`, `${e.PREFIX}/*`]),
  "ListBucket limited to the prefix");
check(get?.Resource === `arn:aws:s3:::${e.BUCKET}/${e.PREFIX}/*`, "GetObject under the prefix only");
check(policy.Statement.length === 2, "nothing but List and Get");
const t = trust.Statement[0];
check(t.Action === "sts:AssumeRoleWithWebIdentity", "trust: action");
check(t.Principal.Federated === `arn:aws:iam::${e.AWS_ACCOUNT_ID}:oidc-provider/${e.OIDC_PROVIDER}`, "trust: provider");
check(t.Condition.StringEquals[`${e.OIDC_PROVIDER}:sub`] ===
  `system:serviceaccount:${sa?.metadata.namespace}:${sa?.metadata.name}`, "trust: sub is the ServiceAccount");
check(t.Condition.StringEquals[`${e.OIDC_PROVIDER}:aud`] === "sts.amazonaws.com", "trust: aud");
check(sa?.metadata.annotations["eks.amazonaws.com/role-arn"] === `arn:aws:iam::${e.AWS_ACCOUNT_ID}:role/${e.ROLE_NAME}`,
  "ServiceAccount role-arn annotation names the role");

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
