// Validates packaging/kubernetes offline:
//  - every manifest, after its ${PLACEHOLDERS} are replaced by the examples in
//    placeholders.env (or by NAME=VALUE overrides), against the Kubernetes
//    OpenAPI schemas (kubernetes-models), strictly: a field the schema does not
//    know (a typo such as mountPropagaton) is an error, as with
//    `kubectl apply --validate=strict`;
//  - what the API server checks beyond the schema: every volumeMount names a
//    volume, Bidirectional propagation only in a privileged container,
//    restartPolicy and probes only where they are allowed, unique names;
//  - the kustomization lists exactly the manifests there are, and the
//    pod-identity overlay removes exactly the IRSA annotation;
//  - placeholders: each one used is listed, each one listed is used;
//  - env names are ones irsafs reads (found in its C sources), and the IRSA
//    variables are left to the EKS webhook;
//  - every irsafs flag in the manifests is one `irsafs --help` lists;
//  - the sidecar mounts on a subdirectory of its volume (never the root), and
//    its probes test the FUSE mount itself;
//  - the ServiceAccount, the Pods and the IAM and trust policies agree (names,
//    namespace, role, bucket, prefix), for a prefix and for the whole bucket.
// usage: node validate.mjs MANIFEST_DIR IRSAFS_BINARY SOURCE_ROOT [NAME=VALUE...]
// Prints one line per problem and "N passed, M failed"; exits 1 on a problem.
// negative.mjs imports validate() to prove each mistake is caught.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import YAML from "yaml";

const SCHEMAS = new URL("./node_modules/kubernetes-models/_schemas/", import.meta.url);

// The compiled schema validator reads each property its schema defines, and
// enumerates the keys only of maps (labels, annotations, limits). Watching
// what it reads finds the fields no schema defines.
function watched(value, path, records, proxies) {
  if (value === null || typeof value !== "object") return value;
  if (proxies.has(value)) return proxies.get(value);
  let proxy;
  if (Array.isArray(value)) {
    proxy = new Proxy(value, {
      get(t, k, r) {
        const v = Reflect.get(t, k, r);
        return typeof k === "string" && /^\d+$/.test(k) ? watched(v, `${path}[${k}]`, records, proxies) : v;
      },
    });
  } else {
    const rec = { path, keys: Object.keys(value), read: new Set(), map: false };
    records.push(rec);
    proxy = new Proxy(value, {
      get(t, k, r) {
        if (typeof k !== "string") return Reflect.get(t, k, r);
        rec.read.add(k);
        return watched(Reflect.get(t, k, r), `${path}.${k}`, records, proxies);
      },
      has(t, k) {
        if (typeof k === "string") rec.read.add(k);
        return Reflect.has(t, k);
      },
      ownKeys(t) {
        rec.map = true;
        return Reflect.ownKeys(t);
      },
    });
  }
  proxies.set(value, proxy);
  return proxy;
}

function schemaName(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["core", apiVersion];
  const cap = (s) => s[0].toUpperCase() + s.slice(1);
  return `IoK8sApi${cap(group.split(".")[0])}${cap(version)}${kind}`;
}

// Problems with obj against its schema: strings, empty when it is valid.
async function schemaProblems(obj) {
  let mod;
  try {
    mod = await import(new URL(`${schemaName(obj.apiVersion, obj.kind)}.mjs`, SCHEMAS));
  } catch {
    return [`no schema for ${obj.apiVersion} ${obj.kind}`];
  }
  const records = [];
  const ok = mod.validate(watched(obj, obj.kind, records, new Map()));
  const out = ok ? [] : mod.validate.errors.map((e) =>
    `${e.instancePath || "/"} ${e.message || e.keyword} ${JSON.stringify(e.params)}`);
  for (const r of records)
    if (!r.map)
      for (const k of r.keys)
        if (!r.read.has(k)) out.push(`${r.path}: unknown field "${k}"`);
  return out;
}

// What the API server refuses in a Pod spec, beyond the schema.
function podProblems(spec) {
  const out = [];
  const volumes = (spec.volumes || []).map((v) => v.name);
  if (new Set(volumes).size !== volumes.length) out.push(`duplicate volume names ${volumes}`);
  const inits = spec.initContainers || [];
  const all = [...inits.map((c) => ({ c, init: true })), ...(spec.containers || []).map((c) => ({ c, init: false }))];
  const names = all.map(({ c }) => c.name);
  if (new Set(names).size !== names.length) out.push(`duplicate container names ${names}`);
  for (const { c, init } of all) {
    const paths = new Set();
    for (const m of c.volumeMounts || []) {
      if (!volumes.includes(m.name))
        out.push(`${c.name}: volumeMount ${m.name} names no volume in spec.volumes`);
      if (paths.has(m.mountPath)) out.push(`${c.name}: two volumeMounts at ${m.mountPath}`);
      paths.add(m.mountPath);
      if (m.mountPropagation === "Bidirectional" && c.securityContext?.privileged !== true)
        out.push(`${c.name}: Bidirectional mount propagation is allowed only in a privileged container`);
    }
    if (c.restartPolicy !== undefined && (!init || c.restartPolicy !== "Always"))
      out.push(`${c.name}: restartPolicy ${c.restartPolicy} is allowed only as Always, on an init container`);
    for (const p of ["startupProbe", "livenessProbe", "readinessProbe"])
      if (init && c[p] && c.restartPolicy !== "Always")
        out.push(`${c.name}: ${p} on an init container that is not a sidecar (restartPolicy: Always)`);
  }
  return out;
}

// "models", "models/", "/models/" -> "models/"; "" -> "".
const keyPrefix = (p) => p.replace(/^\/+|\/+$/g, "").replace(/.$/, "$&/");

export async function validate(dir, help, srcRoot, overrides = {}) {
  let passed = 0;
  const problems = [];
  function check(ok, what) {
    if (ok) passed++;
    else problems.push(what);
  }

  // Placeholders.
  const examples = {};
  for (const line of fs.readFileSync(path.join(dir, "placeholders.env"), "utf8").split("\n")) {
    const m = line.match(/^([A-Z0-9_]+)=(.*)$/);
    if (m) examples[m[1]] = m[2];
  }
  for (const [k, v] of Object.entries(overrides)) {
    check(k in examples, `override ${k} is not a placeholder`);
    examples[k] = v;
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
  const e = examples;
  check(e.KEY_PREFIX === keyPrefix(e.PREFIX), `KEY_PREFIX '${e.KEY_PREFIX}' is not PREFIX '${e.PREFIX}' with one trailing slash`);

  // Schemas, strictly, and the API server's own rules.
  const docs = [];
  let kustomization = null;
  for (const f of files.filter((x) => /\.ya?ml$/.test(x))) {
    for (const d of YAML.parseAllDocuments(text[f])) {
      check(d.errors.length === 0, `${f}: YAML: ${d.errors.map((x) => x.message).join("; ")}`);
      const obj = d.toJS();
      if (!obj) continue;
      if (obj.kind === "Kustomization") {
        kustomization = { file: f, obj };
        continue;
      }
      const found = await schemaProblems(obj);
      if (obj.kind === "Pod") found.push(...podProblems(obj.spec || {}));
      check(found.length === 0, found.map((p) => `${f}: ${obj.kind} ${obj.metadata?.name}: ${p}`).join("\n"));
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
    for (const x of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, x.name);
      if (x.isDirectory() && !x.name.startsWith(".") && !x.name.startsWith("build") && x.name !== "tests")
        scan(p);
      else if (x.isFile() && x.name.endsWith(".c"))
        for (const m of fs.readFileSync(p, "utf8").matchAll(/"(AWS_[A-Z0-9_]+)"/g)) reads.add(m[1]);
    }
  }
  scan(srcRoot);
  check(reads.has("AWS_ROLE_ARN") && reads.has("AWS_WEB_IDENTITY_TOKEN_FILE"),
    "the C sources do not read AWS_ROLE_ARN / AWS_WEB_IDENTITY_TOKEN_FILE");
  const flags = new Set([...help.matchAll(/(--[a-z][a-z-]*)/g)].map((m) => m[1]));
  const booleans = new Set([...help.matchAll(/^ +(?:-\w, )?(--[a-z-]+)(?: {2,}|$)/gm)].map((m) => m[1]));

  const pods = docs.filter((d) => d.obj.kind === "Pod");
  const sa = docs.find((d) => d.obj.kind === "ServiceAccount")?.obj;
  check(sa, "no ServiceAccount");
  check(pods.length >= 2, "expected the sidecar and the staging Pod");
  const mounts = {};
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
      check(argv.every((x) => typeof x === "string"), `${file}: ${c.name}: an argument is not a string ` +
        "(an empty placeholder needs quotes: \"${PREFIX}\")");
      argv = argv.map((x) => (typeof x === "string" ? x : ""));
      if (argv[0] === "irsafs") argv = argv.slice(1);
      const cut = argv.indexOf("--");
      const own = cut >= 0 ? argv.slice(0, cut) : argv;
      for (const a of own.filter((x) => x.startsWith("--")))
        check(flags.has(a), `${file}: ${c.name}: irsafs has no flag ${a}`);
      const positional = own.filter((x, i) => !x.startsWith("-") &&
        !(i > 0 && own[i - 1].startsWith("--") && !booleans.has(own[i - 1])) && x !== "exec");
      check(positional[0] === e.BUCKET, `${file}: ${c.name}: bucket ${positional[0]} != ${e.BUCKET}`);
      const p = own.indexOf("--prefix");
      check(p >= 0 && own[p + 1] === e.PREFIX, `${file}: ${c.name}: --prefix is not '${e.PREFIX}'`);
      const mnt = positional[1];
      mounts[`${file}/${c.name}`] = { c, mnt, exec: argv.includes("exec"), spec };
    }
  }

  // The native sidecar: restartPolicy Always, propagation both ways, uid/gid
  // for the app, a mount point below the volume's root, honest probes.
  const side = pods.find((d) => d.file === "pod-sidecar.yaml")?.obj;
  check(side, "pod-sidecar.yaml has no Pod");
  if (side) {
    const s = (side.spec.initContainers || []).find((c) => c.image === e.IMAGE);
    const m = s && mounts[`pod-sidecar.yaml/${s.name}`];
    check(s?.restartPolicy === "Always", "sidecar: restartPolicy Always");
    const vm = (s?.volumeMounts || []).find((v) => m?.mnt?.startsWith(v.mountPath.replace(/\/$/, "") + "/"));
    check(vm, `sidecar: irsafs mounts on ${m?.mnt}, which is not below a volumeMount: mount on a ` +
      "subdirectory of the shared volume (a killed irsafs leaves a dead mount; on the volume's root " +
      "it wedges the Pod)");
    check(vm?.mountPropagation === "Bidirectional", "sidecar: its volume needs Bidirectional propagation");
    const probe = (kind) => [...(s?.[kind]?.exec?.command || [])];
    const mountTest = (cmd) => cmd.at(-1) === m?.mnt && ((cmd[0] === "findmnt" &&
      cmd.join(" ").includes("-t fuse.irsafs")) || (cmd[0] === "irsafs" && cmd[1] === "probe"));
    check(mountTest(probe("startupProbe")), `sidecar: the startupProbe (${probe("startupProbe").join(" ")}) ` +
      `does not test the FUSE mount at ${m?.mnt} (mountpoint -q and stat -f pass on the bare emptyDir): ` +
      `use findmnt -n -t fuse.irsafs --mountpoint ${m?.mnt} or irsafs probe ${m?.mnt}`);
    for (const kind of ["livenessProbe", "readinessProbe"]) {
      const cmd = probe(kind);
      check(cmd[0] === "irsafs" && cmd[1] === "probe" && cmd.at(-1) === m?.mnt,
        `sidecar: the ${kind} is not irsafs probe ${m?.mnt} (a dead or hung mount must fail it)`);
      const extra = cmd.slice(2, -1);
      check(extra.length === 0 || (extra.length === 2 && extra[0] === "--timeout" &&
        Number(extra[1]) * 1000 < (s?.[kind]?.timeoutSeconds ?? 1) * 1000),
        `sidecar: ${kind}: irsafs probe takes only --timeout S, shorter than timeoutSeconds`);
    }
    const app = side.spec.containers[0];
    const avm = (app.volumeMounts || []).find((v) => v.name === vm?.name);
    check(avm?.mountPropagation === "HostToContainer", "app: HostToContainer on the shared volume");
    check(app.securityContext?.privileged !== true, "app: not privileged");
    const uid = s?.args[s.args.indexOf("--uid") + 1];
    const gid = s?.args[s.args.indexOf("--gid") + 1];
    check(s?.args.includes("--allow-other"), "sidecar: --allow-other for a non-root app");
    check(String(app.securityContext?.runAsUser) === uid && String(app.securityContext?.runAsGroup) === gid,
      "sidecar --uid/--gid match the app's runAsUser/runAsGroup");
  }
  // irsafs exec keeps its mount inside its own container.
  for (const [where, { c, mnt, exec }] of Object.entries(mounts))
    if (exec) check(!(c.volumeMounts || []).some((v) => mnt === v.mountPath || mnt?.startsWith(v.mountPath + "/")),
      `${where}: irsafs exec mounts on ${mnt}, inside a volume: keep its mount in the container`);

  // The policies: the prefix (iam-policy.json) or the whole bucket
  // (iam-policy-bucket.json), exactly, and nothing else; kms:Decrypt apart.
  const kp = e.KEY_PREFIX;
  const policies = {};
  for (const name of ["iam-policy.json", "iam-policy-bucket.json", "iam-policy-kms.json"]) {
    try {
      policies[name] = JSON.parse(text[name]);
    } catch (err) {
      check(false, `${name}: ${err.message}`);
      continue;
    }
    const policy = policies[name];
    check(policy.Version === "2012-10-17", `${name}: Version`);
    for (const x of policy.Statement) {
      for (const r of [x.Resource].flat())
        check(!/^arn:aws:s3:::.*\/\//.test(r) && !/^arn:aws:s3:::[^/]*\/$/.test(r),
          `${name}: resource ${r} has an empty path segment`);
      for (const v of [x.Condition?.StringLike?.["s3:prefix"] || []].flat())
        check(!v.startsWith("/") && !v.includes("//"), `${name}: s3:prefix '${v}' starts with '/' or has '//'`);
    }
  }
  // iam-policy.json for a prefix; iam-policy-bucket.json for the whole bucket
  // (KEY_PREFIX empty), which needs no s3:prefix condition.
  for (const [name, p] of [["iam-policy.json", kp], ["iam-policy-bucket.json", ""]]) {
    if (name === "iam-policy.json" && !kp) continue;
    const policy = policies[name];
    const list = policy?.Statement.find((x) => x.Action === "s3:ListBucket");
    const get = policy?.Statement.find((x) => x.Action === "s3:GetObject");
    check(list?.Resource === `arn:aws:s3:::${e.BUCKET}`, `${name}: ListBucket on the bucket`);
    check(p ? JSON.stringify(list?.Condition) === JSON.stringify({ StringLike: { "s3:prefix": [p, `${p}*`] } })
      : list && !list.Condition, `${name}: ListBucket limited to s3:prefix ['${p}', '${p}*']`);
    check(get?.Resource === `arn:aws:s3:::${e.BUCKET}/${p}*` && !get.Condition,
      `${name}: GetObject on ${e.BUCKET}/${p}* only`);
    check(policy?.Statement.length === 2, `${name}: nothing but List and Get`);
  }
  const kms = policies["iam-policy-kms.json"]?.Statement;
  check(kms?.length === 1 && kms[0].Effect === "Allow" && kms[0].Action === "kms:Decrypt" &&
    kms[0].Resource === e.KMS_KEY_ARN &&
    JSON.stringify(kms[0].Condition) === JSON.stringify({ StringEquals: { "kms:ViaService": `s3.${e.AWS_REGION}.amazonaws.com` } }),
    `iam-policy-kms.json: only kms:Decrypt on the key, only via s3.${e.AWS_REGION}.amazonaws.com`);
  const trust = JSON.parse(text["trust-policy.json"]);
  const t = trust.Statement[0];
  check(trust.Version === "2012-10-17" && trust.Statement.length === 1, "trust: one statement");
  check(t.Action === "sts:AssumeRoleWithWebIdentity", "trust: action");
  check(t.Principal.Federated === `arn:aws:iam::${e.AWS_ACCOUNT_ID}:oidc-provider/${e.OIDC_PROVIDER}`, "trust: provider");
  check(t.Condition.StringEquals[`${e.OIDC_PROVIDER}:sub`] ===
    `system:serviceaccount:${sa?.metadata.namespace}:${sa?.metadata.name}`, "trust: sub is the ServiceAccount");
  check(t.Condition.StringEquals[`${e.OIDC_PROVIDER}:aud`] === "sts.amazonaws.com", "trust: aud");
  const pit = JSON.parse(text["trust-policy-pod-identity.json"]);
  const ps = pit.Statement[0];
  check(pit.Version === "2012-10-17" && pit.Statement.length === 1 && ps.Effect === "Allow" &&
    ps.Principal?.Service === "pods.eks.amazonaws.com" &&
    JSON.stringify(ps.Action) === JSON.stringify(["sts:AssumeRole", "sts:TagSession"]),
    "pod identity trust: pods.eks.amazonaws.com may AssumeRole and TagSession");
  const tags = ps.Condition?.StringEquals || {};
  check(tags["aws:RequestTag/eks-cluster-name"] === e.CLUSTER &&
    tags["aws:RequestTag/kubernetes-namespace"] === sa?.metadata.namespace &&
    tags["aws:RequestTag/kubernetes-service-account"] === sa?.metadata.name,
    "pod identity trust: limited to the cluster, namespace and ServiceAccount (session tags)");
  const annotation = "eks.amazonaws.com/role-arn";
  check(sa?.metadata.annotations?.[annotation] === `arn:aws:iam::${e.AWS_ACCOUNT_ID}:role/${e.ROLE_NAME}`,
    "ServiceAccount role-arn annotation names the role");
  // The Pod Identity overlay: the same resources, without the IRSA annotation.
  const overlay = path.join(dir, "pod-identity", "kustomization.yaml");
  if (fs.existsSync(overlay)) {
    const o = YAML.parse(fs.readFileSync(overlay, "utf8"));
    check(JSON.stringify(o.resources) === JSON.stringify([".."]), "pod-identity overlay: resources [..]");
    const ops = (o.patches || []).flatMap((p) => (p.target?.kind === "ServiceAccount" ? YAML.parse(p.patch) : []));
    check(ops.length === 1 && ops[0].op === "remove" &&
      ops[0].path === `/metadata/annotations/${annotation.replace("/", "~1")}`,
      "pod-identity overlay: removes exactly the role-arn annotation");
  } else {
    check(false, "pod-identity/kustomization.yaml is missing");
  }
  return { passed, problems };
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const [dir, irsafs, srcRoot, ...sets] = process.argv.slice(2);
  if (!dir || !irsafs || !srcRoot || sets.some((s) => !/^[A-Z0-9_]+=/.test(s))) {
    console.error("usage: node validate.mjs MANIFEST_DIR IRSAFS_BINARY SOURCE_ROOT [NAME=VALUE...]");
    process.exit(2);
  }
  const overrides = Object.fromEntries(sets.map((s) => [s.slice(0, s.indexOf("=")), s.slice(s.indexOf("=") + 1)]));
  const help = execFileSync(irsafs, ["--help"], { encoding: "utf8" });
  const { passed, problems } = await validate(dir, help, srcRoot, overrides);
  for (const p of problems) console.log(`FAIL ${p}`);
  console.log(`${passed} passed, ${problems.length} failed`);
  process.exit(problems.length ? 1 : 0);
}
