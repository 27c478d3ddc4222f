#!/usr/bin/python3
"""Seed data and IAM setup for the irsafs testbed.

Importable (tests use it to know the expected bytes):
    import seed
    for key, data in seed.demo_objects(): ...
    seed.stream_bytes("big.bin", 12 << 20)

Run by up.sh as:  seed.py DIR
  - buckets demo-bucket and other-bucket with deterministic objects (as owner)
  - DIR/seed/manifest.json: size and sha256 of every object
  - OIDC provider, roles and inline policies (as iamadmin), DIR/state/roles.json

Content is a pure function of SEED: pseudo-random bytes come from a SHA-256 counter
stream, block i = sha256(SEED + b"/" + name + b"/" + i as 8-byte big-endian).
"""

import hashlib
import json
import os
import sys

sys.dont_write_bytecode = True  # keep tests/testbed free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import s3admin  # noqa: E402

SEED = b"irsafs-testbed-v1"
DEMO = "demo-bucket"
OTHER = "other-bucket"
ISSUER_HOSTPORT = "127.0.0.1:8088"
CLIENT_ID = "sts.amazonaws.com"


def stream_bytes(name, size):
    """size deterministic pseudo-random bytes named by name."""
    prefix = SEED + b"/" + name.encode("utf-8") + b"/"
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(prefix + i.to_bytes(8, "big")).digest()
        i += 1
    return bytes(out[:size])


def text_for(key, lines=1):
    return "".join("%s line %d\n" % (key, n) for n in range(1, lines + 1)).encode("utf-8")


def demo_objects():
    """Ordered list of (key, bytes) for demo-bucket."""
    objs = [
        ("hello.txt", b"hello from irsafs\n"),
        ("dir/a.txt", text_for("dir/a.txt")),
        ("dir/sub/deep.txt", text_for("dir/sub/deep.txt", 3)),
        ("dir-1/b.txt", text_for("dir-1/b.txt")),
        ("big.bin", stream_bytes("big.bin", 12 * 1024 * 1024)),
        ("medium.bin", stream_bytes("medium.bin", 1000003)),  # not block aligned
        ("odd/a b+c&d=\u00e9.txt", text_for("odd/a b+c&d=\u00e9.txt")),
        ("odd/spaces in name.txt", text_for("odd/spaces in name.txt")),
        ("unicode/\u3053\u3093\u306b\u3061\u306f.txt", "\u3053\u3093\u306b\u3061\u306f, irsafs\n".encode()),
        ("unicode/\U0001F408.txt", "\U0001F408 meow\n".encode()),
        ("empty/", b""),               # folder marker with nothing under it
        ("marker/", b""),              # folder marker ...
        ("marker/inside.txt", text_for("marker/inside.txt")),  # ... with a child
        ("blue", b"blue is also a file\n"),       # shadowed: the directory must win
        ("blue/image.jpg", stream_bytes("blue/image.jpg", 4096)),
        ("hidden/ok.txt", text_for("hidden/ok.txt")),
        ("hidden//double.txt", text_for("hidden//double.txt")),
        ("hidden/./dot.txt", text_for("hidden/./dot.txt")),
        ("hidden/../dotdot.txt", text_for("hidden/../dotdot.txt")),
        ("hidden/" + "x" * 252 + ".txt", b"name is 256 bytes long\n"),
        ("team-a/x.txt", text_for("team-a/x.txt")),
        ("team-a/sub/y.txt", text_for("team-a/sub/y.txt")),
        ("team-b/x.txt", text_for("team-b/x.txt")),
    ]
    for i in range(25):
        k = "many/file-%04d.txt" % i
        objs.append((k, text_for(k, i + 1)))
    return objs


def other_objects():
    return [("secret.txt", b"top secret: role s3-reader must not read this\n")]


def manifest():
    def entry(data):
        return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return {
        "seed": SEED.decode(),
        "generator": "tests/testbed/seed.py",
        "buckets": {
            DEMO: {k: entry(d) for k, d in demo_objects()},
            OTHER: {k: entry(d) for k, d in other_objects()},
        },
    }


# ---- IAM ---------------------------------------------------------------------
def _stmt(action, resource, condition=None):
    s = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        s["Condition"] = condition
    return s


ROLES = {
    # name: (service-account sub, list of policy statements)
    "s3-reader": ("system:serviceaccount:demo:reader", [
        _stmt(["s3:ListBucket"], ["arn:aws:s3:::demo-bucket"]),
        _stmt(["s3:GetObject", "s3:GetObjectVersion"], ["arn:aws:s3:::demo-bucket/*"]),
    ]),
    "s3-team-a": ("system:serviceaccount:demo:s3-team-a", [
        _stmt(["s3:ListBucket"], ["arn:aws:s3:::demo-bucket"],
              {"StringLike": {"s3:prefix": ["team-a/", "team-a/*"]}}),
        _stmt(["s3:GetObject"], ["arn:aws:s3:::demo-bucket/team-a/*"]),
    ]),
    "s3-getonly": ("system:serviceaccount:demo:s3-getonly", [
        _stmt(["s3:GetObject"], ["arn:aws:s3:::demo-bucket/*"]),
    ]),
    "s3-listonly": ("system:serviceaccount:demo:s3-listonly", [
        _stmt(["s3:ListBucket"], ["arn:aws:s3:::demo-bucket"]),
    ]),
}


def trust_policy(provider_arn, sub):
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": [provider_arn]},
            "Action": ["sts:AssumeRoleWithWebIdentity"],
            "Condition": {"StringEquals": {ISSUER_HOSTPORT + ":sub": sub}},
        }],
    }


def setup_iam(iam, thumbprint):
    r = iam.iam("CreateOpenIDConnectProvider", {
        "Url": "http://" + ISSUER_HOSTPORT,
        "ClientIDList.member.1": CLIENT_ID,
        "ThumbprintList.member.1": thumbprint,
    })
    provider_arn = s3admin.xml_text(r.xml(), "OpenIDConnectProviderArn")
    roles = {}
    for name, (sub, statements) in ROLES.items():
        r = iam.iam("CreateRole", {
            "RoleName": name,
            "Path": "/",
            "AssumeRolePolicyDocument": json.dumps(trust_policy(provider_arn, sub)),
        })
        arn = s3admin.xml_text(r.xml(), "Arn")
        policy = {"Version": "2012-10-17", "Statement": statements}
        iam.iam("PutRolePolicy", {
            "RoleName": name,
            "PolicyName": name + "-policy",
            "PolicyDocument": json.dumps(policy),
        })
        roles[name] = {"arn": arn, "sub": sub, "policy": policy}
    return provider_arn, roles


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False, sort_keys=True)
        f.write("\n")
    os.rename(tmp, path)


def main(argv):
    if len(argv) != 2:
        print("usage: seed.py DIR", file=sys.stderr)
        return 2
    d = argv[1]
    owner = s3admin.Client.from_env_file(os.path.join(d, "state", "owner.env"))
    iam = s3admin.Client.from_env_file(os.path.join(d, "state", "iamadmin.env"))
    with open(os.path.join(d, "idp", "thumbprint"), encoding="ascii") as f:
        thumbprint = f.read().strip()

    for bucket, objs in ((DEMO, demo_objects()), (OTHER, other_objects())):
        owner.create_bucket(bucket)
        for key, data in objs:
            owner.put_object(bucket, key, data)
    os.makedirs(os.path.join(d, "seed"), exist_ok=True)
    write_json(os.path.join(d, "seed", "manifest.json"), manifest())

    provider_arn, roles = setup_iam(iam, thumbprint)
    write_json(os.path.join(d, "state", "roles.json"),
               {"provider_arn": provider_arn, "roles": roles})
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except s3admin.S3Error as e:
        body = e.response.body.decode("utf-8", "replace")
        print("seed.py: error: %s\n%s" % (e, body), file=sys.stderr)
        sys.exit(1)
