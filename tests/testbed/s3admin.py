#!/usr/bin/python3
"""Small stdlib-only SigV4 client for the irsafs testbed (radosgw on loopback).

Importable:
    import s3admin
    c = s3admin.Client.from_env_file("/tmp/irsafs-testbed/state/owner.env")
    c.put_object("demo-bucket", "hello.txt", b"new bytes\n")
    keys = c.list_keys("demo-bucket", prefix="dir/")
    creds = s3admin.assume_role_with_web_identity(role_arn, token)
    ro = s3admin.Client(**creds)

CLI (run with --help for the full list):
    s3admin.py --env DIR/state/owner.env mkbucket BUCKET
    s3admin.py --env DIR/state/owner.env put BUCKET KEY FILE
    s3admin.py --env DIR/state/iamadmin.env iam CreateRole RoleName=x ...
    s3admin.py sts ROLE_ARN TOKENFILE > creds.env
    s3admin.py --env creds.env --expect 403 list other-bucket

Signing follows the S3 rules: the path is percent-encoded once, byte by byte
(unreserved characters and '/' kept), never normalized ('//', '.', '..' stay);
query parameters are encoded and sorted.
"""

import argparse
import datetime
import hashlib
import hmac
import http.client
import os
import sys
import urllib.parse
import xml.etree.ElementTree as ET

DEFAULT_ENDPOINT = "http://127.0.0.1:7480"
DEFAULT_REGION = "us-east-1"
UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def uri_encode(value, keep_slash):
    """Percent-encode every byte of value (str or bytes) except unreserved ones."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    out = []
    for b in value:
        if b in UNRESERVED or (keep_slash and b == 0x2F):
            out.append(chr(b))
        else:
            out.append("%%%02X" % b)
    return "".join(out)


def canonical_query(params):
    """params: dict or list of (name, value); returns the sorted, encoded query."""
    items = params.items() if isinstance(params, dict) else params
    enc = sorted((uri_encode(str(k), False), uri_encode("" if v is None else str(v), False))
                 for k, v in items)
    return "&".join("%s=%s" % kv for kv in enc)


def form_encode(pairs):
    """application/x-www-form-urlencoded body; spaces as %20 (radosgw does not
    turn '+' back into a space in IAM policy documents)."""
    return urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote).encode("ascii")


def _hmac(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def strip_ns(tag):
    return tag.rsplit("}", 1)[-1]


def xml_find(root, name):
    """First element whose tag (namespace stripped) is name, anywhere in the tree."""
    for el in root.iter():
        if strip_ns(el.tag) == name:
            return el
    return None


def xml_text(root, name, default=None):
    el = xml_find(root, name)
    return default if el is None or el.text is None else el.text


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # dict, lower-case names
        self.body = body

    @property
    def ok(self):
        return 200 <= self.status < 300

    @property
    def error_code(self):
        """The <Code> of an error body, or '' when there is none."""
        if self.ok or not self.body:
            return ""
        try:
            return xml_text(ET.fromstring(self.body), "Code", "") or ""
        except ET.ParseError:
            return ""

    def xml(self):
        return ET.fromstring(self.body)

    def __repr__(self):
        return "<Response %d %s>" % (self.status, self.error_code or self.reason)


class S3Error(Exception):
    def __init__(self, method, path, resp):
        self.method = method
        self.path = path
        self.response = resp
        self.status = resp.status
        self.code = resp.error_code
        super().__init__("%s %s -> HTTP %d %s" % (method, path, resp.status, self.code or resp.reason))


class Client:
    def __init__(self, access_key, secret_key, session_token=None,
                 endpoint=DEFAULT_ENDPOINT, region=DEFAULT_REGION, timeout=30):
        self.access_key = access_key
        self.secret_key = secret_key
        self.session_token = session_token or None
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self.timeout = timeout
        u = urllib.parse.urlsplit(self.endpoint)
        if u.scheme != "http":
            raise ValueError("only http:// endpoints are supported: %s" % endpoint)
        self.host = u.netloc
        self._conn = None

    @classmethod
    def from_env_file(cls, path, **kw):
        """Read AWS_ACCESS_KEY_ID=... lines (optionally prefixed by 'export ')."""
        env = read_env_file(path)
        return cls.from_mapping(env, **kw)

    @classmethod
    def from_mapping(cls, env, **kw):
        args = dict(access_key=env["AWS_ACCESS_KEY_ID"],
                    secret_key=env["AWS_SECRET_ACCESS_KEY"],
                    session_token=env.get("AWS_SESSION_TOKEN"),
                    endpoint=env.get("AWS_ENDPOINT_URL") or DEFAULT_ENDPOINT,
                    region=env.get("AWS_REGION") or DEFAULT_REGION)
        args.update({k: v for k, v in kw.items() if v is not None})
        return cls(**args)

    # ---- transport -------------------------------------------------------
    def _send(self, method, path, query_string, headers, body):
        target = path + ("?" + query_string if query_string else "")
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, timeout=self.timeout)
            try:
                self._conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for k, v in headers.items():
                    self._conn.putheader(k, v)
                self._conn.endheaders(body if body else None)
                r = self._conn.getresponse()
                data = r.read()
                hdrs = {k.lower(): v for k, v in r.getheaders()}
                if r.getheader("connection", "").lower() == "close":
                    self.close()
                return Response(r.status, r.reason, hdrs, data)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # ---- signing ---------------------------------------------------------
    def signed_request(self, method, path, query=None, headers=None, body=b"",
                       service="s3", check=False):
        """path: already-encoded absolute path (see s3_path). Returns Response."""
        if isinstance(body, str):
            body = body.encode("utf-8")
        now = datetime.datetime.now(datetime.timezone.utc)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        datestamp = amz_date[:8]
        payload_hash = hashlib.sha256(body).hexdigest()
        hdrs = {"host": self.host, "x-amz-date": amz_date, "x-amz-content-sha256": payload_hash}
        if self.session_token:
            hdrs["x-amz-security-token"] = self.session_token
        for k, v in (headers or {}).items():
            hdrs[k.lower()] = str(v)
        if body or method in ("PUT", "POST"):
            hdrs["content-length"] = str(len(body))
        qs = canonical_query(query or {})
        signed = sorted(hdrs)
        canon_headers = "".join("%s:%s\n" % (k, " ".join(hdrs[k].split())) for k in signed)
        signed_names = ";".join(signed)
        creq = "\n".join([method, path, qs, canon_headers, signed_names, payload_hash])
        scope = "%s/%s/%s/aws4_request" % (datestamp, self.region, service)
        sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(creq.encode("utf-8")).hexdigest()])
        k = _hmac(("AWS4" + self.secret_key).encode("utf-8"), datestamp)
        k = _hmac(k, self.region)
        k = _hmac(k, service)
        k = _hmac(k, "aws4_request")
        sig = hmac.new(k, sts.encode("utf-8"), hashlib.sha256).hexdigest()
        hdrs["authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
            self.access_key, scope, signed_names, sig)
        resp = self._send(method, path, qs, hdrs, body)
        if check and not resp.ok:
            raise S3Error(method, path, resp)
        return resp

    # ---- S3 --------------------------------------------------------------
    @staticmethod
    def s3_path(bucket, key=None):
        p = "/" + uri_encode(bucket, True)
        if key is not None:
            p += "/" + uri_encode(key, True)
        return p

    def s3(self, method, bucket, key=None, query=None, headers=None, body=b"", check=False):
        return self.signed_request(method, self.s3_path(bucket, key), query, headers, body,
                                   "s3", check)

    def create_bucket(self, bucket, check=True):
        return self.s3("PUT", bucket, check=check)

    def put_object(self, bucket, key, data, content_type=None, check=True):
        h = {"content-type": content_type} if content_type else None
        return self.s3("PUT", bucket, key, headers=h, body=data, check=check)

    def get_object(self, bucket, key, range_header=None, check=True):
        h = {"range": range_header} if range_header else None
        return self.s3("GET", bucket, key, headers=h, check=check)

    def head_object(self, bucket, key, check=True):
        return self.s3("HEAD", bucket, key, check=check)

    def delete_object(self, bucket, key, check=True):
        return self.s3("DELETE", bucket, key, check=check)

    def list_objects_v2(self, bucket, prefix=None, delimiter=None, max_keys=None,
                        continuation_token=None, start_after=None, encoding_type=None,
                        check=True):
        """One ListObjectsV2 page -> (Response, dict with keys, prefixes, truncated, next)."""
        q = {"list-type": "2"}
        for name, val in (("prefix", prefix), ("delimiter", delimiter), ("max-keys", max_keys),
                          ("continuation-token", continuation_token),
                          ("start-after", start_after), ("encoding-type", encoding_type)):
            if val is not None:
                q[name] = val
        r = self.s3("GET", bucket, query=q, check=check)
        if not r.ok:
            return r, None
        root = r.xml()
        page = {"keys": [], "prefixes": [], "truncated": False, "next": None}
        for el in root:
            tag = strip_ns(el.tag)
            if tag == "Contents":
                page["keys"].append({strip_ns(c.tag): (c.text or "") for c in el})
            elif tag == "CommonPrefixes":
                page["prefixes"].append(xml_text(el, "Prefix", ""))
            elif tag == "IsTruncated":
                page["truncated"] = (el.text or "").strip() == "true"
            elif tag == "NextContinuationToken":
                page["next"] = el.text
        return r, page

    def list_all(self, bucket, prefix=None, delimiter=None, max_keys=None):
        """All pages -> (list of Contents dicts, list of common prefixes). Raises on error."""
        keys, prefixes, token = [], [], None
        while True:
            _, page = self.list_objects_v2(bucket, prefix, delimiter, max_keys, token)
            keys += page["keys"]
            prefixes += page["prefixes"]
            if not page["truncated"]:
                return keys, prefixes
            token = page["next"]

    def list_keys(self, bucket, prefix=None):
        return [k["Key"] for k in self.list_all(bucket, prefix)[0]]

    # ---- IAM (radosgw serves it on the same endpoint) ---------------------
    def iam(self, action, params=None, check=True):
        form = [("Action", action), ("Version", "2010-05-08")] + list((params or {}).items())
        body = form_encode(form)
        h = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
        return self.signed_request("POST", "/", None, h, body, "iam", check)


def assume_role_with_web_identity(role_arn, token, session_name="irsafs-testbed",
                                  duration=None, endpoint=DEFAULT_ENDPOINT,
                                  region=DEFAULT_REGION, timeout=30, check=True):
    """Unsigned STS call. Returns dict usable as Client(**creds) plus 'expiration';
    with check=False returns (Response, creds or None)."""
    form = [("Action", "AssumeRoleWithWebIdentity"), ("Version", "2011-06-15"),
            ("RoleArn", role_arn), ("RoleSessionName", session_name),
            ("WebIdentityToken", token)]
    if duration:
        form.append(("DurationSeconds", str(duration)))
    body = form_encode(form)
    u = urllib.parse.urlsplit(endpoint)
    conn = http.client.HTTPConnection(u.netloc, timeout=timeout)
    try:
        conn.request("POST", "/", body, {"Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        resp = Response(r.status, r.reason, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()
    creds = None
    if resp.ok:
        root = resp.xml()
        creds = dict(access_key=xml_text(root, "AccessKeyId"),
                     secret_key=xml_text(root, "SecretAccessKey"),
                     session_token=xml_text(root, "SessionToken"),
                     endpoint=endpoint, region=region)
        creds_exp = xml_text(root, "Expiration")
    if not check:
        return resp, creds
    if creds is None:
        raise S3Error("POST", "/ (AssumeRoleWithWebIdentity)", resp)
    creds["expiration"] = creds_exp
    return creds


def creds_to_env(creds):
    lines = ["AWS_ACCESS_KEY_ID=%s" % creds["access_key"],
             "AWS_SECRET_ACCESS_KEY=%s" % creds["secret_key"]]
    if creds.get("session_token"):
        lines.append("AWS_SESSION_TOKEN=%s" % creds["session_token"])
    if creds.get("expiration"):
        lines.append("AWS_CREDENTIAL_EXPIRATION=%s" % creds["expiration"])
    lines.append("AWS_ENDPOINT_URL=%s" % creds.get("endpoint", DEFAULT_ENDPOINT))
    lines.append("AWS_REGION=%s" % creds.get("region", DEFAULT_REGION))
    return "\n".join(lines) + "\n"


def read_env_file(path):
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("export "):
                line = line[7:].lstrip()
            name, sep, val = line.partition("=")
            if sep:
                if len(val) >= 2 and val[0] == val[-1] and val[0] in "'\"":
                    val = val[1:-1]
                env[name.strip()] = val
    return env


# ---- CLI -------------------------------------------------------------------
def _main(argv=None):
    ap = argparse.ArgumentParser(
        prog="s3admin.py",
        description="SigV4 S3/IAM/STS client for the irsafs radosgw testbed.",
        epilog="Exit status: 0 on success (or when the status equals --expect), 1 otherwise, "
               "2 on usage errors. Failures print 'HTTP <status> <Code>' on stderr.")
    ap.add_argument("--env", metavar="FILE",
                    help="env file with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY "
                         "[/ AWS_SESSION_TOKEN / AWS_ENDPOINT_URL]; default: the environment")
    ap.add_argument("--endpoint", help="default $AWS_ENDPOINT_URL or " + DEFAULT_ENDPOINT)
    ap.add_argument("--region", help="default " + DEFAULT_REGION)
    ap.add_argument("--session-token", help="STS session token (overrides the env file)")
    ap.add_argument("--expect", type=int, metavar="STATUS",
                    help="succeed only if the HTTP status is STATUS (e.g. 403)")
    ap.add_argument("-q", "--quiet", action="store_true", help="print no body / error details")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    p = sub.add_parser("mkbucket", help="create a bucket")
    p.add_argument("bucket")
    p = sub.add_parser("put", help="upload FILE ('-' = stdin) as KEY")
    p.add_argument("bucket"); p.add_argument("key"); p.add_argument("file")
    p.add_argument("--content-type")
    p = sub.add_parser("get", help="download KEY to OUT (default stdout)")
    p.add_argument("bucket"); p.add_argument("key"); p.add_argument("out", nargs="?")
    p.add_argument("--range", help="e.g. bytes=0-99")
    p = sub.add_parser("head", help="HEAD an object, print its headers")
    p.add_argument("bucket"); p.add_argument("key")
    p = sub.add_parser("delete", help="delete KEY")
    p.add_argument("bucket"); p.add_argument("key")
    p = sub.add_parser("list", help="ListObjectsV2: print keys (and 'PRE prefix' lines)")
    p.add_argument("bucket")
    p.add_argument("-p", "--prefix"); p.add_argument("-d", "--delimiter")
    p.add_argument("-m", "--max-keys", type=int)
    p.add_argument("--one-page", action="store_true", help="do not follow continuation tokens")
    p.add_argument("--raw", action="store_true", help="print the XML of the first page")
    p.add_argument("-l", "--long", action="store_true", help="print size, etag and key")
    p = sub.add_parser("iam", help="IAM call: ACTION Name=Value ... ('@file' value reads a file)")
    p.add_argument("action"); p.add_argument("params", nargs="*", metavar="Name=Value")
    p = sub.add_parser("sts", help="AssumeRoleWithWebIdentity (unsigned); prints a creds env file")
    p.add_argument("role_arn"); p.add_argument("token_file")
    p.add_argument("--session-name", default="irsafs-testbed")
    p.add_argument("--duration", type=int)
    a = ap.parse_args(argv)

    def finish(resp, show_body_on_ok=False):
        if a.expect is not None:
            good = resp.status == a.expect
        else:
            good = resp.ok
        if not good or (not resp.ok and not a.quiet):
            print("HTTP %d %s" % (resp.status, resp.error_code or resp.reason), file=sys.stderr)
            if not a.quiet and not resp.ok and resp.body and a.expect is None:
                sys.stderr.write(resp.body.decode("utf-8", "replace") + "\n")
        if good and show_body_on_ok and resp.ok:
            sys.stdout.buffer.write(resp.body)
            if resp.body and not resp.body.endswith(b"\n"):
                sys.stdout.buffer.write(b"\n")
        return 0 if good else 1

    if a.cmd == "sts":
        endpoint = a.endpoint or os.environ.get("AWS_ENDPOINT_URL") or DEFAULT_ENDPOINT
        with open(a.token_file, encoding="utf-8") as f:
            token = f.read().strip()
        resp, creds = assume_role_with_web_identity(
            a.role_arn, token, a.session_name, a.duration, endpoint,
            a.region or DEFAULT_REGION, check=False)
        rc = finish(resp)
        if creds:
            creds["expiration"] = xml_text(resp.xml(), "Expiration")
            sys.stdout.write(creds_to_env(creds))
        return rc

    env = read_env_file(a.env) if a.env else dict(os.environ)
    if "AWS_ACCESS_KEY_ID" not in env or "AWS_SECRET_ACCESS_KEY" not in env:
        ap.error("no credentials: give --env FILE or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    c = Client.from_mapping(env, endpoint=a.endpoint, region=a.region,
                            session_token=a.session_token)

    if a.cmd == "mkbucket":
        return finish(c.create_bucket(a.bucket, check=False))
    if a.cmd == "put":
        if a.file == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(a.file, "rb") as f:
                data = f.read()
        return finish(c.put_object(a.bucket, a.key, data, a.content_type, check=False))
    if a.cmd == "get":
        r = c.get_object(a.bucket, a.key, a.range, check=False)
        if r.ok and a.out:
            with open(a.out, "wb") as f:
                f.write(r.body)
            return finish(r)
        if r.ok:
            sys.stdout.buffer.write(r.body)
        return finish(r)
    if a.cmd == "head":
        r = c.head_object(a.bucket, a.key, check=False)
        if r.ok:
            for k, v in sorted(r.headers.items()):
                print("%s: %s" % (k, v))
        return finish(r)
    if a.cmd == "delete":
        return finish(c.delete_object(a.bucket, a.key, check=False))
    if a.cmd == "list":
        token = None
        while True:
            r, page = c.list_objects_v2(a.bucket, a.prefix, a.delimiter, a.max_keys, token,
                                        check=False)
            if page is None:
                return finish(r)
            if a.raw:
                return finish(r, show_body_on_ok=True)
            for p in page["prefixes"]:
                print("PRE " + p)
            for k in page["keys"]:
                if a.long:
                    print("%12s %s %s" % (k.get("Size"), k.get("ETag", "").strip('"'), k["Key"]))
                else:
                    print(k["Key"])
            if a.one_page or not page["truncated"]:
                return finish(r)
            token = page["next"]
    if a.cmd == "iam":
        params = {}
        for kv in a.params:
            name, sep, val = kv.partition("=")
            if not sep:
                ap.error("iam parameter must be Name=Value: %r" % kv)
            if val.startswith("@"):
                with open(val[1:], encoding="utf-8") as f:
                    val = f.read()
            params[name] = val
        return finish(c.iam(a.action, params, check=False), show_body_on_ok=not a.quiet)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(_main())
    except (OSError, http.client.HTTPException) as e:
        print("s3admin.py: error: %s" % e, file=sys.stderr)
        sys.exit(1)
