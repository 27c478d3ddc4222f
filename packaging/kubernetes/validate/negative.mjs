// Proves validate.mjs and validate-csi.mjs reject each mistake they exist to
// catch: every case copies the shipped manifests, breaks one thing, and
// expects the validator to fail with a line matching its pattern (and the
// untouched copy to pass).
// usage: node negative.mjs MANIFEST_DIR IRSAFS_BINARY SOURCE_ROOT IRSAFS_CSI_BINARY
// Prints one line per case that was not caught and "N passed, M failed".
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { validate } from "./validate.mjs";

const [dir, irsafs, srcRoot, irsafsCsi] = process.argv.slice(2);
if (!dir || !irsafs || !srcRoot || !irsafsCsi) {
  console.error("usage: node negative.mjs MANIFEST_DIR IRSAFS_BINARY SOURCE_ROOT IRSAFS_CSI_BINARY");
  process.exit(2);
}
const help = execFileSync(irsafs, ["--help"], { encoding: "utf8" });

// Edit one YAML manifest as an object (comments are not kept: not needed here).
const yamlEdit = (file, fn) => (d) => {
  const p = path.join(d, file);
  const obj = YAML.parse(fs.readFileSync(p, "utf8"));
  fn(obj);
  fs.writeFileSync(p, YAML.stringify(obj));
};
const textEdit = (file, from, to) => (d) => {
  const p = path.join(d, file);
  const before = fs.readFileSync(p, "utf8");
  const after = before.replace(from, to);
  if (after === before) throw new Error(`${file}: ${from} not found`);
  fs.writeFileSync(p, after);
};
const sidecar = (pod) => pod.spec.initContainers[0];
const app = (pod) => pod.spec.containers[0];

const CASES = [
  ["a misspelt field (mountPropagaton)", /unknown field "mountPropagaton"/,
    yamlEdit("pod-sidecar.yaml", (p) => {
      const m = app(p).volumeMounts[0];
      m.mountPropagaton = m.mountPropagation;
      delete m.mountPropagation;
    })],
  ["an unknown field at the top of a container", /unknown field "securityContxt"/,
    yamlEdit("pod-staging.yaml", (p) => {
      p.spec.initContainers[0].securityContxt = { privileged: true };
    })],
  ["an unknown field in a probe", /unknown field "periodSecond"/,
    yamlEdit("pod-sidecar.yaml", (p) => { sidecar(p).livenessProbe.periodSecond = 5; })],
  ["an unknown field in the ServiceAccount", /unknown field "annotation"/,
    yamlEdit("serviceaccount.yaml", (s) => { s.metadata.annotation = { a: "b" }; })],
  ["a value the schema refuses", /mountPropagation|enum/,
    yamlEdit("pod-sidecar.yaml", (p) => { sidecar(p).volumeMounts[0].mountPropagation = "Bidirectonal"; })],
  ["Bidirectional without privileged", /Bidirectional mount propagation is allowed only in a privileged container/,
    yamlEdit("pod-sidecar.yaml", (p) => { delete sidecar(p).securityContext; })],
  ["Bidirectional in the app", /app: Bidirectional mount propagation is allowed only/,
    yamlEdit("pod-sidecar.yaml", (p) => { app(p).volumeMounts[0].mountPropagation = "Bidirectional"; })],
  ["a volumeMount naming a missing volume", /volumeMount s3 names no volume/,
    yamlEdit("pod-sidecar.yaml", (p) => { p.spec.volumes = []; })],
  ["a misspelt volume name", /volumeMount s3x names no volume/,
    yamlEdit("pod-sidecar.yaml", (p) => { app(p).volumeMounts[0].name = "s3x"; })],
  ["restartPolicy on an app container", /restartPolicy Always is allowed only as Always, on an init container/,
    yamlEdit("pod-sidecar.yaml", (p) => { app(p).restartPolicy = "Always"; })],
  ["a probe on a plain init container", /startupProbe on an init container that is not a sidecar/,
    yamlEdit("pod-sidecar.yaml", (p) => { delete sidecar(p).restartPolicy; })],
  ["the mount on the volume's root", /not below a volumeMount: mount on a subdirectory/,
    yamlEdit("pod-sidecar.yaml", (p) => {
      const a = sidecar(p).args;
      a[a.length - 1] = "/mnt/s3";
      for (const k of ["startupProbe", "livenessProbe", "readinessProbe"]) {
        const c = sidecar(p)[k].exec.command;
        c[c.length - 1] = "/mnt/s3";
      }
    })],
  ["a startup probe that passes on the bare emptyDir", /startupProbe \(mountpoint -q \/mnt\/s3\) does not test the FUSE mount/,
    yamlEdit("pod-sidecar.yaml", (p) => { sidecar(p).startupProbe.exec.command = ["mountpoint", "-q", "/mnt/s3"]; })],
  ["a liveness probe that a hung daemon passes", /livenessProbe is not irsafs probe/,
    yamlEdit("pod-sidecar.yaml", (p) => { sidecar(p).livenessProbe.exec.command = ["stat", "-f", "/mnt/s3/bucket"]; })],
  ["no liveness probe", /livenessProbe is not irsafs probe/,
    yamlEdit("pod-sidecar.yaml", (p) => { delete sidecar(p).livenessProbe; })],
  ["a probe timeout longer than the kubelet waits", /irsafs probe takes only --timeout S, shorter than timeoutSeconds/,
    yamlEdit("pod-sidecar.yaml", (p) => { sidecar(p).livenessProbe.timeoutSeconds = 5; })],
  ["an irsafs flag that does not exist", /irsafs has no flag --allow-others/,
    yamlEdit("pod-sidecar.yaml", (p) => { sidecar(p).args[sidecar(p).args.indexOf("--allow-other")] = "--allow-others"; })],
  ["an app user other than --uid", /--uid\/--gid match/,
    yamlEdit("pod-sidecar.yaml", (p) => { app(p).securityContext.runAsUser = 1001; })],
  ["an IRSA variable set by hand", /AWS_ROLE_ARN is injected by the EKS webhook/,
    yamlEdit("pod-staging.yaml", (p) => {
      p.spec.initContainers[0].env.push({ name: "AWS_ROLE_ARN", value: "arn:aws:iam::1:role/x" });
    })],
  ["a policy with a doubled slash", /GetObject on .*\* only|empty path segment/,
    textEdit("iam-policy.json", "${BUCKET}/${KEY_PREFIX}*", "${BUCKET}/${KEY_PREFIX}/*")],
  ["a whole-bucket policy that reads another bucket", /iam-policy-bucket.json: GetObject on/,
    textEdit("iam-policy-bucket.json", "${BUCKET}/*", "*")],
  ["kms:Decrypt without kms:ViaService", /only kms:Decrypt on the key, only via/,
    textEdit("iam-policy-kms.json", "kms:ViaService", "kms:CallerAccount")],
  ["kms:Decrypt on every key", /only kms:Decrypt on the key/,
    textEdit("iam-policy-kms.json", "\"${KMS_KEY_ARN}\"", "\"*\"")],
  ["a Pod Identity trust for any service account", /limited to the cluster, namespace and ServiceAccount/,
    textEdit("trust-policy-pod-identity.json", "\"aws:RequestTag/kubernetes-service-account\": \"${SERVICE_ACCOUNT}\"",
      "\"aws:RequestTag/kubernetes-service-account\": \"*\"")],
  ["an overlay that keeps the IRSA annotation", /removes exactly the role-arn annotation/,
    textEdit("pod-identity/kustomization.yaml", "eks.amazonaws.com~1role-arn", "eks.amazonaws.com~1audience")],
  ["a manifest the kustomization does not list", /kustomization resources/,
    (d) => fs.copyFileSync(path.join(d, "pod-staging.yaml"), path.join(d, "pod-staging-2.yaml"))],
];

// The CSI driver's manifests (csi/), checked by validate-csi.mjs; each file in csi/.
const daemonSet = (d) => d.spec.template.spec;
const CSI_CASES = [
  ["a misspelt field in the node DaemonSet", /node\.yaml: DaemonSet .*unknown fields .*\.mountPropagaton/,
    yamlEdit("csi/node.yaml", (d) => {
      const m = daemonSet(d).containers[0].volumeMounts.find((x) => x.mountPropagation);
      m.mountPropagaton = m.mountPropagation;
      delete m.mountPropagation;
    })],
  ["the app Pod asking for privileges", /pod-inline\.yaml: app: privileged/,
    yamlEdit("csi/pod-inline.yaml", (p) => { app(p).securityContext.privileged = true; })],
  ["the sidecar allowed to escalate", /pod-pvc\.yaml: irsafs: allowPrivilegeEscalation must be false/,
    yamlEdit("csi/pod-pvc.yaml", (p) => { sidecar(p).securityContext.allowPrivilegeEscalation = true; })],
  ["the sidecar adding a capability", /pod-inline\.yaml: irsafs: adds capabilities/,
    yamlEdit("csi/pod-inline.yaml", (p) => { sidecar(p).securityContext.capabilities.add = ["SYS_ADMIN"]; })],
  ["a CSIDriver with attachRequired true", /CSIDriver: attachRequired false/,
    yamlEdit("csi/csidriver.yaml", (c) => { c.spec.attachRequired = true; })],
  ["an inline volume that is not read-only", /pod-inline\.yaml: the inline volume is readOnly/,
    yamlEdit("csi/pod-inline.yaml", (p) => { p.spec.volumes.find((v) => v.csi).csi.readOnly = false; })],
];

// validate-csi.mjs on d/csi: its problems (its FAIL lines).
function validateCsi(d) {
  const script = fileURLToPath(new URL("./validate-csi.mjs", import.meta.url));
  const r = spawnSync(process.execPath, [script, path.join(d, "csi"), irsafs, irsafsCsi], { encoding: "utf8" });
  const problems = r.stdout.split("\n").filter((l) => l.startsWith("FAIL ")).map((l) => l.slice(5));
  if (r.status !== 0 && !problems.length) problems.push(`validate-csi.mjs exited ${r.status}: ${r.stderr}`);
  return problems;
}

function copy(from, to) {
  fs.mkdirSync(to, { recursive: true });
  for (const x of fs.readdirSync(from, { withFileTypes: true })) {
    if (x.name === "validate") continue;
    const a = path.join(from, x.name);
    const b = path.join(to, x.name);
    if (x.isDirectory()) copy(a, b);
    else fs.copyFileSync(a, b);
  }
}

let passed = 0;
let failed = 0;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "irsafs-k8s-negative-"));
try {
  const clean = path.join(tmp, "clean");
  copy(dir, clean);
  const base = [...(await validate(clean, help, srcRoot)).problems, ...validateCsi(clean)];
  if (base.length) {
    failed++;
    console.log(`FAIL the unbroken copy does not validate: ${base.join("; ")}`);
  } else {
    passed++;
  }
  const all = [...CASES.map((c) => [...c, false]), ...CSI_CASES.map((c) => [...c, true])];
  for (const [i, [what, want, brk, csi]] of all.entries()) {
    const d = path.join(tmp, `case-${i}`);
    copy(dir, d);
    brk(d);
    const problems = csi ? validateCsi(d) : (await validate(d, help, srcRoot)).problems;
    if (problems.some((p) => want.test(p))) {
      passed++;
    } else {
      failed++;
      console.log(`FAIL not caught: ${what} (want ${want}; got: ${problems.join(" | ") || "no problem"})`);
    }
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
