#!/usr/bin/python3
"""hostile: an S3 + STS server of our own that misbehaves on command.

Unlike faultproxy (which breaks radosgw's answers on the way through), this
server holds its objects in memory and writes every answer itself, so it can
say things radosgw never would. It speaks just enough S3 (path-style) and STS
for irsafs to mount it, and is faithful when no rule fires:

  GET/HEAD /B/KEY          object, Range bytes=a-b | a- | -n (206 + Content-Range
                           "bytes a-b/total"), If-Match (412 PreconditionFailed),
                           If-None-Match (304); a first byte past the end is 416
                           (an empty object too, as S3 does); ETag, Last-Modified,
                           Content-Length, x-amz-request-id, x-amz-id-2, Date,
                           x-amz-storage-class (when not STANDARD)
  GET /B?list-type=2       ListObjectsV2: prefix, delimiter, max-keys (<= 1000),
                           continuation-token (opaque base64, with + / =),
                           start-after, encoding-type=url (Key, Prefix,
                           CommonPrefixes/Prefix quoted, space as +)
  GET /B                   ListObjects (V1: marker, NextMarker with a delimiter)
  GET /B?location          GetBucketLocation; HEAD /B: HeadBucket (x-amz-bucket-region)
  GET /, HEAD /            ListBuckets; a 200 for the doctor's reachability probe
  POST / (any path)        STS with Action=AssumeRoleWithWebIdentity (form body or
                           query): AssumeRoleWithWebIdentityResponse; fresh keys each
                           call ("ASIAHOSTILE%09d"); RoleArn must be srv.role_arn
                           (else 403 AccessDenied); the token is not verified
Errors are S3 documents: NoSuchBucket, NoSuchKey (HEAD: bare 404), AccessDenied
(for srv.deny), PreconditionFailed, InvalidRange, InvalidArgument, and, for
keys issued by our STS whose Expiration has passed, 400 ExpiredToken
(srv.enforce_expiry, default True). Signatures are not checked.

In-process (the pytest fixture `hostile` in tests/mount/conftest.py wraps it):

    srv = HostileServer().start()          # 127.0.0.1, ephemeral port
    srv.url                                # "http://127.0.0.1:PORT"
    srv.put("b", b"dir/key", b"data", etag=None, storage_class=None)
    srv.pod_env                            # AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE,
                                           # AWS_REGION, AWS_ENDPOINT_URL (= STS too)
    rule = srv.add("short_body", kind="get", key=r"^dir/", count=1)
    srv.stats(); srv.requests; srv.wait_for("get", 3, timeout=10)
    srv.remove(rule); srv.clear(); srv.stop()

Objects and state (keys are bytes; a str is UTF-8 encoded):
  create_bucket(b); put(b, key, data, etag=None, storage_class=None, mtime=None)
  -> the ETag (default: quoted md5 hex); delete(b, key); get(b, key) -> bytes|None;
  replace_after(b, key, n, new_data, etag=None): the first n GETs of the key see
  the current object, later ones new_data (HEADs and listings too, once switched);
  deny(b, prefix="", actions=("list", "get")) -> 403 AccessDenied for a listing
  whose prefix starts with `prefix` ("list") or a GET/HEAD of a key that does
  ("get"; "head" alone for HEAD only); undeny() drops every denial;
  set_sts(expires_in=None, arn=None, role_arn=None): expires_in seconds from now
  (None: the request's DurationSeconds, else 3600); arn: the AssumedRoleUser Arn
  ("{session}" is replaced by the RoleSessionName);
  write_token(claims=None, raw=None): rewrite the token file (an unsigned JWT
  with EKS-shaped claims; raw: the exact file contents).
  srv.sts_calls: the parsed forms of STS requests (dicts); srv.issued: the
  (AccessKeyId, expiration epoch) pairs handed out.
  synth(b, prefix, n, fmt="k%07d", size=0): a directory of n keys
  prefix + fmt % i (fmt must sort as i does: zero-padded), made up as they are
  asked for (listings, HEAD, GET: `size` bytes, byte j of key i is
  (i + j) % 251, ETag the md5 of those), so a million keys cost no memory; a
  listing under prefix sees only them, and prefix shows in its parent's
  listing. synth_data(i, size): the bytes of key i.

Rules: add(fault, kind=None, path=None, key=None, query=None, bucket=None,
count=None, skip=0, headers=None, **params) -> Rule. A rule matches a request
by kind ("get" object GET, "head" object HEAD, "list", "sts", "other", "s3" =
get|head|list, "any"; None = the fault's own default), regexes (re.search) on
the raw path, the decoded key (str, UTF-8 with surrogateescape), the raw
query, and an exact bucket. The first `skip` matches are let through; then it
fires `count` times (None: always) and stays in the list (describe() shows
matched/injected). The first active rule that matches a request decides it.
`headers` ({name: value}, value None deletes; str or bytes, written verbatim,
so a CR or control byte goes out as is) changes the head of any answer the
rule produces. Object faults fire only on a GET/HEAD of an existing object the
request may read (no denial); other faults fire on any matching
request. Faults and their params (defaults):

 listings (kind "list"):
  endless_same_token  IsTruncated=true and NextContinuationToken=`token`
                      ("c2FtZS10b2tlbg==") on every page, keys from the real first page
  endless_new_token   every page `per_page` (None: max-keys) new keys
                      PREFIX"endless-%09d" and a fresh token, for ever
  huge_page           one page of `mib` (1) MiB of Contents, keys PREFIX"huge-%09d"
                      padded to `key_len` (200) bytes, Size 1, IsTruncated false
  bad_entries         the real page plus `entries` [(key_text, size_text)], written
                      verbatim after PREFIX (url-encoded in url mode): default
                      nul%00byte/1, size-negative/-1, size-nan/abc,
                      size-max/9223372036854775807, size-huge/18446744073709551616
  truncated_no_token  the real page with IsTruncated=true and no NextContinuationToken
  list_no_etag        the real page without <ETag> elements
 short and wrong answers to an object GET (kind "get"; a..b = the requested
 range, the whole object without Range; `keep` (None: half of it) = bytes sent):
  short_body          206, Content-Range a-b/total, Content-Length = keep, keep bytes
  short_chunked       206, Content-Range a-b/total, Transfer-Encoding: chunked, keep
                      bytes then a valid final 0-chunk
  short_close         `status` (206), Content-Range a-b/total, no Content-Length,
                      Connection: close, keep bytes, then FIN
  range_416           416 InvalidRange, Content-Range "bytes */total"
  error_200           200 with `body` (41 bytes: <Error><Code>InternalError</Code></Error>)
  full_200            200 with the whole object for a ranged request
  shifted_range       206, the right length, Content-Range and body for start+`shift`
                      (1; -shift when that runs past the end)
  wrong_total         206, the right body, Content-Range total+`delta` (1)
  no_content_range    206, the right body, no Content-Range
 versions (kind "get"):
  ignore_if_match     serve the current object whatever If-Match says
  etag_change         before each matched GET the key becomes a new version (same
                      size, other bytes: every byte +version mod 256, ETag its md5);
                      `if_match` (True): honour If-Match against the new version (a
                      request for the old one gets 412); False: serve it anyway
 headers (kind "get"):
  bad_etag            the ETag header is `value` if given, else by `style`: "cr" (a
                      bare CR inside), "ctl" (a \\x01 inside), "unquoted", "long"
                      (`length` 8192 characters)
  headers             only the rule's `headers` (any kind: default "any")
 STS (kind "sts"):
  sts_expired         credentials whose Expiration is `ago` (60) s in the past
  sts_expiring        credentials that expire in `seconds` (5) s
  sts_arn             AssumedRoleUser Arn = `arn` (default holds a newline and an ESC
                      sequence, written raw into the XML)
  sts_error           `status` (403) ErrorResponse, Code `code` (AccessDenied),
                      Message "`message`" + the request's WebIdentityToken (`echo` True)
 redirects and region (kind "s3"):
  redirect_301        301 PermanentRedirect; x-amz-bucket-region `region`
                      ("eu-west-1"; None: no header)
  redirect_307        307 TemporaryRedirect, Location `location` (None: this server,
                      same path); x-amz-bucket-region `region` (None: no header)
  auth_malformed      400 AuthorizationHeaderMalformed, <Region>`region`</Region>
                      ("eu-west-1")
  error               `status` (500) with an S3 <Error> Code `code` (InternalError),
                      Message `message` (HEAD: no body)
 timing (kind "any"):
  gate                hold the request until srv.release(rule) (or `seconds`, 60,
                      pass), then the real answer
  hang                read the request, answer nothing for `seconds` (30), then close
  delay               nothing for `seconds` (3), then the real answer
  stall               the head and `keep` bytes of the body (None: half; with no
                      body, half the head), then nothing for `seconds` (30), then RST
  trickle             the whole answer at `rate` (1024) bytes per second
 Keys holding newline, CR, ESC or any other byte are just objects to put.

Observability: stats() -> {"requests": {kind: n}, "injected": {"fault:kind": n},
"rules": [describe()...], "errors": n}; srv.requests -> list of Request
(method, path, query, headers) named tuples (headers: a dict with lower-case
names; also .kind, .bucket, .key (bytes or None), .time), the last 10,000;
wait_for(kind, n, timeout=10) -> True once n requests of that kind (or "any")
arrived since start/reset_stats(), False on timeout; srv.errors: tracebacks
of exceptions inside the server (a test may assert it stays empty).

As a program, with a JSON control endpoint:

    hostile.py [--port 0] [--control 0] [--bucket B]... [--rule JSON]...
    # prints one JSON line: {"url", "control", "env"}
    curl -d '{"fault":"short_body","count":1}' CONTROL/rules   # -> {"id": N, ...}
    curl -X DELETE CONTROL/rules          # clear;  DELETE CONTROL/rules/N: remove one
    curl CONTROL/stats;  curl 'CONTROL/requests?n=50'
    curl -d '{"bucket":"b","key":"k","data":"text"}' CONTROL/objects  # or key_b64,
         # data_b64, size (pseudo-random bytes); DELETE CONTROL/objects with bucket, key
    curl -d '{"bucket":"b","prefix":"m/","n":1000000}' CONTROL/synth  # + fmt, size
    curl -d '{"bucket":"b","prefix":"p/","actions":["get"]}' CONTROL/deny
    curl -d '{"expires_in":30}' CONTROL/sts
    curl -d '{"bucket":"b","key":"k","n":2,"data":"new"}' CONTROL/replace_after

Only the Python 3 standard library. Listens on 127.0.0.1 only.
"""

import argparse
import base64
import bisect
import collections
import email.utils
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import socketserver
import struct
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

HEAD_MAX = 64 * 1024
BODY_MAX = 1024 * 1024
REQUESTS_KEPT = 10000
KINDS = ("any", "s3", "get", "head", "list", "sts", "other")
S3NS = "http://s3.amazonaws.com/doc/2006-03-01/"
STSNS = "https://sts.amazonaws.com/doc/2011-06-15/"
ACCOUNT = "123456789012"
ERROR_200_BODY = b"<Error><Code>InternalError</Code></Error>"
DEFAULT_BAD_ENTRIES = [("nul%00byte", "1"), ("size-negative", "-1"), ("size-nan", "abc"),
                       ("size-max", "9223372036854775807"),
                       ("size-huge", "18446744073709551616")]

# fault -> (default kind, {param: default}, object fault: needs a readable object)
FAULTS = {
    "endless_same_token": ("list", {"token": "c2FtZS10b2tlbg=="}, False),
    "endless_new_token": ("list", {"per_page": None}, False),
    "huge_page": ("list", {"mib": 1, "key_len": 200}, False),
    "bad_entries": ("list", {"entries": None}, False),
    "truncated_no_token": ("list", {}, False),
    "list_no_etag": ("list", {}, False),
    "short_body": ("get", {"keep": None}, True),
    "short_chunked": ("get", {"keep": None}, True),
    "short_close": ("get", {"keep": None, "status": 206}, True),
    "range_416": ("get", {}, True),
    "error_200": ("get", {"body": ERROR_200_BODY}, True),
    "full_200": ("get", {}, True),
    "shifted_range": ("get", {"shift": 1}, True),
    "wrong_total": ("get", {"delta": 1}, True),
    "no_content_range": ("get", {}, True),
    "ignore_if_match": ("get", {}, True),
    "etag_change": ("get", {"if_match": True}, True),
    "bad_etag": ("get", {"style": "cr", "value": None, "length": 8192}, True),
    "headers": ("any", {}, False),
    "sts_expired": ("sts", {"ago": 60}, False),
    "sts_expiring": ("sts", {"seconds": 5}, False),
    "sts_arn": ("sts", {"arn": "arn:aws:sts::%s:assumed-role/hostile-reader/x\n"
                               "irsafs: error: \x1b[31mforged\x1b[0m" % ACCOUNT}, False),
    "sts_error": ("sts", {"status": 403, "code": "AccessDenied",
                          "message": "Not authorized; token was: ", "echo": True}, False),
    "redirect_301": ("s3", {"region": "eu-west-1"}, False),
    "redirect_307": ("s3", {"region": None, "location": None}, False),
    "auth_malformed": ("s3", {"region": "eu-west-1"}, False),
    "error": ("s3", {"status": 500, "code": "InternalError",
                     "message": "We encountered an internal error."}, False),
    "gate": ("any", {"seconds": 60}, False),
    "hang": ("any", {"seconds": 30}, False),
    "delay": ("any", {"seconds": 3}, False),
    "stall": ("any", {"keep": None, "seconds": 30}, False),
    "trickle": ("any", {"rate": 1024}, False),
}
LIST_FAULTS = ("endless_same_token", "endless_new_token", "huge_page", "bad_entries",
               "truncated_no_token", "list_no_etag")
REASONS = {200: "OK", 206: "Partial Content", 301: "Moved Permanently", 304: "Not Modified",
           307: "Temporary Redirect", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 412: "Precondition Failed",
           416: "Requested Range Not Satisfiable", 500: "Internal Server Error",
           503: "Service Unavailable"}


def _b(s):
    return s.encode("utf-8", "surrogateescape") if isinstance(s, str) else bytes(s)


def _xml_text(b):
    """Escape bytes for XML text; the bytes themselves go out as they are."""
    return b.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;") \
        .replace(b'"', b"&quot;")


def _urlenc(b):
    # As S3 with encoding-type=url: '/' stays, a space is '+'.
    return urllib.parse.quote_plus(b, safe="/").encode()


def _iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))


def _http_date(t):
    return email.utils.formatdate(t, usegmt=True)


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def fake_jwt(claims=None):
    """An unsigned EKS-shaped JWT: irsafs sends it as it is, the doctor reads its claims."""
    now = int(time.time())
    body = {"iss": "https://oidc.eks.us-east-1.amazonaws.com/id/HOSTILE",
            "sub": "system:serviceaccount:demo:reader", "aud": ["sts.amazonaws.com"],
            "exp": now + 86400, "iat": now, "nbf": now,
            "kubernetes.io": {"namespace": "demo", "serviceaccount": {"name": "reader"}}}
    for k, v in (claims or {}).items():
        if v is None:
            body.pop(k, None)
        else:
            body[k] = v
    head = {"alg": "RS256", "kid": "hostile", "typ": "JWT"}
    return "%s.%s.%s" % (_b64url(json.dumps(head).encode()), _b64url(json.dumps(body).encode()),
                         _b64url(b"not-a-signature"))


def error_doc(code, message, **extra):
    parts = [b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>', _b(code),
             b"</Code><Message>", _xml_text(_b(message)), b"</Message>"]
    for k, v in extra.items():
        if v is not None:
            parts += [b"<", _b(k), b">", _xml_text(_b(v)), b"</", _b(k), b">"]
    parts.append(b"<RequestId>hostile</RequestId><HostId>hostile</HostId></Error>")
    return b"".join(parts)


def sts_error_doc(code, message, sender=True):
    return b"".join([b'<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse xmlns="',
                     STSNS.encode(), b'"><Error><Type>', b"Sender" if sender else b"Receiver",
                     b"</Type><Code>", _b(code), b"</Code><Message>", _xml_text(_b(message)),
                     b"</Message></Error><RequestId>hostile</RequestId></ErrorResponse>"])


class Obj:
    __slots__ = ("data", "etag", "mtime", "storage_class", "gets", "version", "base",
                 "pending")

    def __init__(self, data, etag, mtime, storage_class):
        self.data = data
        self.etag = etag
        self.mtime = mtime
        self.storage_class = storage_class
        self.gets = 0
        self.version = 0
        self.base = data
        self.pending = None     # (n, data, etag) from replace_after


def synth_data(i, size):
    """The bytes of key i of a synthesized directory."""
    return bytes((i + j) % 251 for j in range(size))


class _Synth:
    """A directory of n keys prefix + fmt % i, made up on demand. A sequence of
    its keys (sorted; bisect works on it) and a mapping key -> Obj."""

    def __init__(self, prefix, n, fmt, size, mtime):
        self.prefix, self.n, self.fmt, self.size, self.mtime = prefix, n, fmt.encode(), size, mtime

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.prefix + self.fmt % i

    def index(self, key):
        """i for one of its keys, else None."""
        if not key.startswith(self.prefix):
            return None
        i = bisect.bisect_left(self, key)
        return i if i < self.n and self[i] == key else None

    def obj(self, i):
        data = synth_data(i, self.size)
        return Obj(data, '"%s"' % hashlib.md5(data).hexdigest(), self.mtime, "STANDARD")

    def get(self, key, default=None):
        i = self.index(key)
        return self.obj(i) if i is not None else default

    def __contains__(self, key):
        return self.index(key) is not None


class Request(collections.namedtuple("Request", "method path query headers")):
    """(method, path, query, headers); also .kind, .bucket, .key, .time."""


class Rule:
    _ids = 0

    def __init__(self, fault, kind=None, path=None, key=None, query=None, bucket=None,
                 count=None, skip=0, headers=None, **params):
        if fault not in FAULTS:
            raise ValueError("unknown fault %r (one of %s)" % (fault, ", ".join(FAULTS)))
        dkind, defaults, self.object_fault = FAULTS[fault]
        kind = kind or dkind
        if kind not in KINDS:
            raise ValueError("unknown kind %r (one of %s)" % (kind, ", ".join(KINDS)))
        unknown = set(params) - set(defaults)
        if unknown:
            raise ValueError("fault %s takes no parameter %s (it takes: %s)" % (
                fault, ", ".join(sorted(unknown)), ", ".join(defaults) or "none"))
        Rule._ids += 1
        self.id = Rule._ids
        self.fault = fault
        self.kind = kind
        self.path = re.compile(path) if path else None
        self.key = re.compile(key) if key else None
        self.query = re.compile(query) if query else None
        self.bucket = bucket
        self.count = count
        self.skip = skip
        self.headers = headers or {}
        self.p = dict(defaults)
        self.p.update(params)
        self.matched = 0
        self.injected = 0
        self.seq = 0        # endless_new_token's page counter
        self.opened = threading.Event()     # gate

    def active(self):
        return self.count is None or self.injected < self.count

    def decide(self, req, object_ok):
        if not self.active():
            return False
        if self.kind == "s3":
            if req.kind not in ("get", "head", "list"):
                return False
        elif self.kind != "any" and self.kind != req.kind:
            return False
        if self.object_fault and not object_ok:
            return False
        if self.bucket is not None and self.bucket != req.bucket:
            return False
        if self.path and not self.path.search(req.path):
            return False
        if self.query and not self.query.search(req.query):
            return False
        if self.key and (req.key is None or
                         not self.key.search(req.key.decode("utf-8", "surrogateescape"))):
            return False
        self.matched += 1
        if self.matched <= self.skip:
            return False
        self.injected += 1
        return True

    def describe(self):
        d = {"id": self.id, "fault": self.fault, "kind": self.kind, "matched": self.matched,
             "injected": self.injected}
        if self.count is not None:
            d["count"] = self.count
        return d


class Answer:
    """One response: status, headers, body, and how to send it."""

    def __init__(self, status, headers=None, body=b"", reason=None):
        self.status = status
        self.reason = reason or REASONS.get(status, "Status")
        self.headers = list(headers or [])
        self.body = body
        self.mode = "length"        # "length", "chunked" or "close"
        self.length = None          # Content-Length to announce (None: len(body))
        self.keep_alive = True

    def set(self, name, value):
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        if value is not None:
            self.headers.append((name, value))

    def head_bytes(self, head_only):
        hs = list(self.headers)
        if self.mode == "length" and not any(k.lower() == "content-length" for k, _ in hs):
            hs.append(("Content-Length", str(self.length if self.length is not None
                                              else len(self.body))))
        elif self.mode == "chunked":
            hs.append(("Transfer-Encoding", "chunked"))
        if self.mode == "close" or not self.keep_alive:
            hs.append(("Connection", "close"))
        out = [b"HTTP/1.1 %d %s\r\n" % (self.status, self.reason.encode())]
        for k, v in hs:
            if isinstance(v, str):
                try:
                    v = v.encode("latin-1")
                except UnicodeEncodeError:
                    v = v.encode("utf-8", "surrogateescape")
            out.append(_b(k) + b": " + v + b"\r\n")
        out.append(b"\r\n")
        return b"".join(out)

    def wire(self, head_only):
        head = self.head_bytes(head_only)
        if head_only:
            return head
        if self.mode == "chunked":
            body = (b"%x\r\n%s\r\n" % (len(self.body), self.body) if self.body else b"") + \
                b"0\r\n\r\n"
            return head + body
        return head + self.body


def _cut_connection(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _rst_close(sock, rfile):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    for f in (rfile, sock):
        try:
            f.close()
        except OSError:
            pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128


class _Drop(Exception):
    """End this connection without answering."""


class HostileServer:
    def __init__(self, port=0, region="us-east-1",
                 role_arn="arn:aws:iam::%s:role/hostile-reader" % ACCOUNT):
        self.port = port
        self.region = region
        self.role_arn = role_arn
        self.sts_expires_in = None
        self.sts_assumed_arn = "arn:aws:sts::%s:assumed-role/hostile-reader/{session}" % ACCOUNT
        self.enforce_expiry = True
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.buckets = {}           # name -> {key bytes: Obj}
        self.sorted = {}            # name -> sorted key list (cache)
        self.synths = {}            # name -> [_Synth]
        self.denials = []           # (bucket, prefix bytes, actions)
        self.rules = []
        self.counts = collections.Counter()
        self.injected = collections.Counter()
        self._requests = collections.deque(maxlen=REQUESTS_KEPT)
        self.sts_calls = []
        self.issued = []
        self.expiry = {}            # AccessKeyId -> expiration epoch
        self.errors = []
        self.conns = set()
        self.server = None
        self.thread = None
        self.stop_event = threading.Event()
        self.dir = None
        self.token_path = None
        self.nreq = 0

    # ---- lifecycle ----

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        srv = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                srv._serve_connection(self.request)

        self.dir = tempfile.mkdtemp(prefix="irsafs-hostile-")
        self.token_path = os.path.join(self.dir, "token")
        self.write_token()
        self.server = _Server(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """Close the listener and every connection; sleeping faults wake up."""
        self.stop_event.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            _cut_connection(c)
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def pod_env(self):
        """The IRSA variables an EKS Pod gets, pointing at this server (S3 and STS)."""
        return {"AWS_ROLE_ARN": self.role_arn,
                "AWS_WEB_IDENTITY_TOKEN_FILE": self.token_path,
                "AWS_REGION": self.region,
                "AWS_ENDPOINT_URL": self.url}

    def write_token(self, claims=None, raw=None):
        data = raw if raw is not None else fake_jwt(claims)
        tmp = self.token_path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(_b(data))
        os.rename(tmp, self.token_path)

    # ---- objects ----

    def create_bucket(self, bucket):
        with self.lock:
            self.buckets.setdefault(bucket, {})
            self.sorted.pop(bucket, None)

    def put(self, bucket, key, data, etag=None, storage_class=None, mtime=None):
        key, data = _b(key), _b(data)
        etag = etag if etag is not None else '"%s"' % hashlib.md5(data).hexdigest()
        obj = Obj(data, etag, int(mtime if mtime is not None else time.time()),
                  storage_class or "STANDARD")
        with self.lock:
            self.buckets.setdefault(bucket, {})[key] = obj
            self.sorted.pop(bucket, None)
        return etag

    def synth(self, bucket, prefix, n, fmt="k%07d", size=0):
        prefix = _b(prefix)
        sd = _Synth(prefix, n, fmt, size, int(time.time()))
        with self.lock:
            self.synths.setdefault(bucket, []).append(sd)
        if n:
            # One real object, so that the parent's listing shows the prefix.
            o = sd.obj(0)
            self.put(bucket, sd[0], o.data, etag=o.etag, mtime=sd.mtime)
        return sd

    def _obj(self, bucket, key):
        """The object at key (synthesized ones too), or None. Under the lock."""
        for sd in self.synths.get(bucket, ()):
            if key is not None and key.startswith(sd.prefix):
                return sd.get(key)
        return self.buckets[bucket].get(key)

    def release(self, rule):
        """Let the requests a gate rule holds go on (and later ones pass)."""
        rule.opened.set()

    def delete(self, bucket, key):
        with self.lock:
            if self.buckets.get(bucket, {}).pop(_b(key), None) is not None:
                self.sorted.pop(bucket, None)

    def get(self, bucket, key):
        with self.lock:
            o = self.buckets.get(bucket, {}).get(_b(key))
            return o.data if o else None

    def replace_after(self, bucket, key, n, new_data, etag=None):
        new_data = _b(new_data)
        etag = etag if etag is not None else '"%s"' % hashlib.md5(new_data).hexdigest()
        with self.lock:
            o = self.buckets[bucket][_b(key)]
            o.pending = (o.gets + n, new_data, etag)
            self._maybe_switch(o)

    @staticmethod
    def _maybe_switch(o):
        if o.pending and o.gets >= o.pending[0]:
            _, o.data, o.etag = o.pending
            o.base = o.data
            o.pending = None
            o.mtime = int(time.time())

    def deny(self, bucket, prefix="", actions=("list", "get")):
        for a in actions:
            if a not in ("list", "get", "head"):
                raise ValueError("unknown action %r (list, get, head)" % a)
        with self.lock:
            self.denials.append((bucket, _b(prefix), tuple(actions)))

    def undeny(self):
        with self.lock:
            self.denials = []

    def set_sts(self, expires_in=None, arn=None, role_arn=None):
        self.sts_expires_in = expires_in
        if arn is not None:
            self.sts_assumed_arn = arn
        if role_arn is not None:
            self.role_arn = role_arn

    def _denied(self, bucket, key, action):
        for b, p, acts in self.denials:
            if b == bucket and key.startswith(p) and (action in acts or
                                                      (action == "head" and "get" in acts)):
                return True
        return False

    # ---- rules and observation ----

    def add(self, fault, **kw):
        rule = Rule(fault, **kw)
        with self.lock:
            self.rules.append(rule)
        return rule

    def remove(self, rule):
        with self.lock:
            self.rules = [r for r in self.rules if r is not rule and r.id != rule]

    def clear(self):
        with self.lock:
            self.rules = []

    def stats(self):
        with self.lock:
            return {"requests": dict(self.counts), "injected": dict(self.injected),
                    "rules": [r.describe() for r in self.rules], "errors": len(self.errors)}

    def reset_stats(self):
        with self.lock:
            self.counts.clear()
            self.injected.clear()
            self._requests.clear()

    @property
    def requests(self):
        with self.lock:
            return list(self._requests)

    def wait_for(self, kind, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.counts.get(kind, 0) < n:
                left = deadline - time.monotonic()
                if left <= 0 or self.stop_event.is_set():
                    return False
                self.cond.wait(min(left, 0.2))
            return True

    def _record(self, req):
        with self.cond:
            self.counts[req.kind] += 1
            self.counts["any"] += 1
            self._requests.append(req)
            self.cond.notify_all()

    def _pick(self, req, object_ok):
        with self.lock:
            for r in self.rules:
                if r.decide(req, object_ok):
                    self.injected["%s:%s" % (r.fault, req.kind)] += 1
                    return r
        return None

    # ---- connection ----

    def _serve_connection(self, sock):
        with self.lock:
            self.conns.add(sock)
        if self.stop_event.is_set():
            _cut_connection(sock)
        rfile = None
        try:
            sock.settimeout(120)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            rfile = sock.makefile("rb")
            while not self.stop_event.is_set():
                got = self._read_request(sock, rfile)
                if got is None:
                    return
                if not self._answer(sock, rfile, *got):
                    return
        except (_Drop, OSError):
            return
        except Exception:
            with self.lock:
                self.errors.append(traceback.format_exc())
        finally:
            with self.lock:
                self.conns.discard(sock)
            for f in (rfile, sock):
                try:
                    if f is not None:
                        f.close()
                except OSError:
                    pass

    def _read_request(self, sock, rfile):
        line = rfile.readline(HEAD_MAX)
        while line in (b"\r\n", b"\n"):
            line = rfile.readline(HEAD_MAX)
        if not line:
            return None
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            sock.sendall(Answer(400, [("Connection", "close")],
                                error_doc("BadRequest", "not an HTTP request line")).wire(False))
            return None
        method, target, version = parts
        headers = {}
        total = len(line)
        while True:
            h = rfile.readline(HEAD_MAX)
            total += len(h)
            if not h or total > HEAD_MAX:
                return None
            if h in (b"\r\n", b"\n"):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        if headers.get("expect", "").lower() == "100-continue":
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                try:
                    size = int(rfile.readline(100).split(b";")[0].strip() or b"0", 16)
                except ValueError:
                    return None
                if size == 0:
                    while rfile.readline(HEAD_MAX) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                body += rfile.read(size)
                rfile.readline(10)
                if len(body) > BODY_MAX:
                    return None
        else:
            try:
                n = int(headers.get("content-length", "0") or 0)
            except ValueError:
                return None
            if n < 0 or n > BODY_MAX:
                return None
            body = rfile.read(n) if n else b""
        return method, target, version, headers, body

    def _classify(self, method, target, headers, body):
        path, _, query = target.partition("?")
        bucket, key = None, None
        segs = path.lstrip("/")
        if segs:
            b, slash, k = segs.partition("/")
            bucket = urllib.parse.unquote(b)
            if slash and k:
                key = urllib.parse.unquote_to_bytes(k)
        qs = dict(urllib.parse.parse_qsl(query, keep_blank_values=True, encoding="latin-1"))
        if method == "POST":
            form = dict(urllib.parse.parse_qsl(body.decode("latin-1"), keep_blank_values=True,
                                               encoding="latin-1"))
            if "Action" in form or "Action" in qs:
                merged = dict(qs)
                merged.update(form)
                return "sts", bucket, key, merged
        if method == "GET" and "Action" in qs and not bucket:
            return "sts", bucket, key, qs
        if bucket and key is not None and method in ("GET", "HEAD"):
            return ("get" if method == "GET" else "head"), bucket, key, qs
        if bucket and method == "GET" and not any(
                q in qs for q in ("location", "acl", "policy", "versioning", "uploads")):
            return "list", bucket, key, qs
        return "other", bucket, key, qs

    def _answer(self, sock, rfile, method, target, version, headers, body):
        """Serve one request; False when the connection must end."""
        kind, bucket, key, qs = self._classify(method, target, headers, body)
        path, _, query = target.partition("?")
        req = Request(method, path, query, headers)
        req.kind, req.bucket, req.key, req.time = kind, bucket, key, time.time()
        self._record(req)
        head_only = method == "HEAD"
        keep_alive = version != "HTTP/1.0" and headers.get("connection", "").lower() != "close"

        # The real answer first; a rule may then replace or bend it.
        with self.lock:
            self.nreq += 1
            rid = "hostile-%08d" % self.nreq
            obj, denied_now = None, False
            if kind in ("get", "head") and bucket in self.buckets:
                obj = self._obj(bucket, key)
                denied_now = self._denied(bucket, key, kind)
        object_ok = obj is not None and not denied_now
        rule = self._pick(req, object_ok)
        if rule is not None and rule.fault == "hang":
            self.stop_event.wait(rule.p["seconds"])
            raise _Drop()
        if rule is not None and rule.fault == "gate":
            end = time.monotonic() + rule.p["seconds"]
            while not rule.opened.wait(0.05):
                if self.stop_event.is_set():
                    raise _Drop()
                if time.monotonic() > end:
                    break
        if rule is not None and rule.fault == "delay":
            if self.stop_event.wait(rule.p["seconds"]):
                raise _Drop()

        ans = None
        if rule is not None:
            ans = self._generic_fault(rule, req, head_only)
        if ans is None:
            if self.enforce_expiry and kind != "sts":
                ans = self._expired_creds(headers)
        if ans is None:
            if kind == "sts":
                ans = self._serve_sts(req, qs, rule)
            elif kind in ("get", "head"):
                ans = self._serve_object(req, bucket, key, headers, rule)
            elif kind == "list":
                ans = self._serve_list(req, bucket, qs, rule)
            else:
                ans = self._serve_other(req, method, bucket, qs)
        ans.headers = [("x-amz-request-id", rid), ("x-amz-id-2", "hostile/" + rid),
                       ("Date", _http_date(time.time())),
                       ("Server", "HostileS3")] + ans.headers
        if rule is not None:
            for k, v in rule.headers.items():
                ans.set(k, v)
        ans.keep_alive = ans.keep_alive and keep_alive
        if rule is not None and rule.fault == "stall":
            self._stall(sock, rfile, ans, rule, head_only)
            raise _Drop()
        data = ans.wire(head_only)
        if rule is not None and rule.fault == "trickle":
            rate = max(1, int(rule.p["rate"]))
            step = max(1, rate // 20)
            for i in range(0, len(data), step):
                sock.sendall(data[i:i + step])
                if self.stop_event.wait(step / rate):
                    raise _Drop()
        else:
            sock.sendall(data)
        if ans.mode == "close" or not ans.keep_alive:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return False
        return True

    def _stall(self, sock, rfile, ans, rule, head_only):
        head = ans.head_bytes(head_only)
        body = b"" if head_only else ans.body
        if body:
            keep = rule.p["keep"] if rule.p["keep"] is not None else len(body) // 2
            sock.sendall(head + body[:keep])
        else:
            sock.sendall(head[:max(1, len(head) // 2)])
        self.stop_event.wait(rule.p["seconds"])
        _rst_close(sock, rfile)

    def _expired_creds(self, headers):
        m = re.search(r"Credential=([^/,\s]+)/", headers.get("authorization", ""))
        if not m:
            return None
        with self.lock:
            exp = self.expiry.get(m.group(1))
        if exp is not None and exp <= time.time():
            return Answer(400, [("Content-Type", "application/xml")],
                          error_doc("ExpiredToken", "The provided token has expired."))
        return None

    # ---- faults that replace the whole answer ----

    def _generic_fault(self, rule, req, head_only):
        f, p = rule.fault, rule.p
        xml = [("Content-Type", "application/xml")]
        if f == "redirect_301":
            hs = list(xml)
            if p["region"]:
                hs.append(("x-amz-bucket-region", p["region"]))
            body = error_doc("PermanentRedirect", "The bucket you are attempting to access must "
                             "be addressed using the specified endpoint. Please send all future "
                             "requests to this endpoint.", Bucket=req.bucket,
                             Endpoint="%s.s3.amazonaws.com" % (req.bucket or "bucket"))
            return Answer(301, hs, body)
        if f == "redirect_307":
            hs = list(xml) + [("Location", p["location"] or self.url + req.path +
                               ("?" + req.query if req.query else ""))]
            if p["region"]:
                hs.append(("x-amz-bucket-region", p["region"]))
            return Answer(307, hs, error_doc("TemporaryRedirect", "Please re-send this "
                                             "request to the specified temporary endpoint."))
        if f == "auth_malformed":
            return Answer(400, xml, error_doc(
                "AuthorizationHeaderMalformed", "The authorization header is malformed; the "
                "region 'us-east-1' is wrong; expecting '%s'" % p["region"], Region=p["region"]))
        if f == "error":
            return Answer(p["status"], xml, error_doc(p["code"], p["message"]))
        return None

    # ---- STS ----

    def _serve_sts(self, req, form, rule):
        xml = [("Content-Type", "text/xml")]
        with self.lock:
            self.sts_calls.append(dict(form))
        if form.get("Action") != "AssumeRoleWithWebIdentity":
            return Answer(400, xml, sts_error_doc("InvalidAction", "Could not find operation "
                                                  + form.get("Action", "")))
        token = form.get("WebIdentityToken", "")
        if rule is not None and rule.fault == "sts_error":
            p = rule.p
            msg = p["message"] + (token if p["echo"] else "")
            return Answer(p["status"], xml, sts_error_doc(p["code"], msg, p["status"] < 500))
        if not token or not form.get("RoleArn") or not form.get("RoleSessionName"):
            return Answer(400, xml, sts_error_doc(
                "ValidationError", "RoleArn, RoleSessionName and WebIdentityToken are required"))
        if form["RoleArn"] != self.role_arn:
            return Answer(403, xml, sts_error_doc(
                "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity"))
        session = form["RoleSessionName"]
        now = time.time()
        if rule is not None and rule.fault == "sts_expired":
            exp = now - rule.p["ago"]
        elif rule is not None and rule.fault == "sts_expiring":
            exp = now + rule.p["seconds"]
        elif self.sts_expires_in is not None:
            exp = now + self.sts_expires_in
        else:
            try:
                exp = now + int(form.get("DurationSeconds") or 3600)
            except ValueError:
                return Answer(400, xml, sts_error_doc("ValidationError",
                                                      "DurationSeconds is not a number"))
        if rule is not None and rule.fault == "sts_arn":
            arn = _b(rule.p["arn"])     # raw: newlines and ESC go out as they are
        else:
            arn = _xml_text(self.sts_assumed_arn.replace("{session}", session).encode())
        with self.lock:
            n = len(self.issued) + 1
            akid = "ASIAHOSTILE%09d" % n
            self.issued.append((akid, exp))
            self.expiry[akid] = exp
        secret = hashlib.sha256(b"secret%d" % n).hexdigest()[:40]
        stoken = base64.b64encode(hashlib.sha512(b"token%d" % n).digest() * 3).decode()
        body = b"".join([
            b'<AssumeRoleWithWebIdentityResponse xmlns="', STSNS.encode(), b'">\n',
            b"  <AssumeRoleWithWebIdentityResult>\n",
            b"    <SubjectFromWebIdentityToken>system:serviceaccount:demo:reader"
            b"</SubjectFromWebIdentityToken>\n",
            b"    <Audience>sts.amazonaws.com</Audience>\n",
            b"    <AssumedRoleUser>\n      <Arn>", arn, b"</Arn>\n",
            b"      <AssumedRoleId>AROAHOSTILE:", _xml_text(session.encode()),
            b"</AssumedRoleId>\n    </AssumedRoleUser>\n",
            b"    <Credentials>\n      <SessionToken>", stoken.encode(), b"</SessionToken>\n",
            b"      <SecretAccessKey>", secret.encode(), b"</SecretAccessKey>\n",
            b"      <Expiration>", time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                 time.gmtime(exp)).encode(),
            b"</Expiration>\n      <AccessKeyId>", akid.encode(), b"</AccessKeyId>\n",
            b"    </Credentials>\n",
            b"    <Provider>oidc.eks.us-east-1.amazonaws.com/id/HOSTILE</Provider>\n",
            b"  </AssumeRoleWithWebIdentityResult>\n",
            b"  <ResponseMetadata><RequestId>hostile</RequestId></ResponseMetadata>\n",
            b"</AssumeRoleWithWebIdentityResponse>\n"])
        return Answer(200, xml, body)

    # ---- objects ----

    def _serve_object(self, req, bucket, key, headers, rule):
        xml = [("Content-Type", "application/xml")]
        head_only = req.method == "HEAD"
        f = rule.fault if rule is not None else None
        with self.lock:
            if bucket not in self.buckets:
                return Answer(404, xml, b"" if head_only else
                              error_doc("NoSuchBucket", "The specified bucket does not exist",
                                        BucketName=bucket))
            o = self._obj(bucket, key)
            if o is None:
                return Answer(404, xml, b"" if head_only else
                              error_doc("NoSuchKey", "The specified key does not exist.",
                                        Key=key.decode("utf-8", "surrogateescape")))
            if self._denied(bucket, key, req.kind):
                return Answer(403, xml, b"" if head_only else
                              error_doc("AccessDenied", "Access Denied"))
            if f == "etag_change":
                o.version += 1
                table = bytes((i + o.version) & 0xFF for i in range(256))
                o.data = o.base.translate(table)
                o.etag = '"%s"' % hashlib.md5(o.data).hexdigest()
            if not head_only:
                self._maybe_switch(o)
                o.gets += 1
            data, etag, mtime, sclass = o.data, o.etag, o.mtime, o.storage_class
        total = len(data)
        base = [("Last-Modified", _http_date(mtime)), ("ETag", etag),
                ("Accept-Ranges", "bytes"), ("Content-Type", "application/octet-stream")]
        if sclass != "STANDARD":
            base.append(("x-amz-storage-class", sclass))
        if f == "bad_etag":
            p = rule.p
            inner = etag.strip('"')
            v = p["value"] if p["value"] is not None else {
                "cr": '"%s\r%s"' % (inner[:8], inner[8:]),
                "ctl": '"%s\x01%s"' % (inner[:8], inner[8:]),
                "unquoted": inner,
                "long": '"%s"' % ("e" * max(0, p["length"] - 2)),
            }[p["style"]]
            base[1] = ("ETag", v)
        check = not (f == "ignore_if_match" or (f == "etag_change" and not rule.p["if_match"]))
        im = headers.get("if-match")
        if check and im is not None and im.strip() != "*" and \
                etag not in [t.strip() for t in im.split(",")]:
            return Answer(412, xml, b"" if head_only else error_doc(
                "PreconditionFailed", "At least one of the pre-conditions you specified did "
                "not hold", Condition="If-Match"))
        inm = headers.get("if-none-match")
        if inm is not None and (inm.strip() == "*" or etag in [t.strip() for t in
                                                                 inm.split(",")]):
            return Answer(304, base, b"")
        rng = self._parse_range(headers.get("range"), total)
        if rng == "unsatisfiable" or f == "range_416":
            return Answer(416, xml + [("Content-Range", "bytes */%d" % total)],
                          b"" if head_only else error_doc(
                              "InvalidRange", "The requested range is not satisfiable",
                              RangeRequested=headers.get("range", ""),
                              ActualObjectSize=str(total)))
        if f == "error_200":
            return Answer(200, xml, _b(rule.p["body"]))
        if rng is None or f == "full_200":
            a = Answer(200, base, data)
            if head_only:
                a.length, a.body = total, b""
            return a
        start, end = rng
        part = data[start:end + 1]
        cr = "bytes %d-%d/%d" % (start, end, total)
        if f in ("short_body", "short_chunked", "short_close"):
            keep = rule.p["keep"] if rule.p["keep"] is not None else len(part) // 2
            a = Answer(206 if f != "short_close" else rule.p["status"],
                       base + [("Content-Range", cr)], part[:keep])
            a.mode = {"short_body": "length", "short_chunked": "chunked",
                      "short_close": "close"}[f]
            return a
        if f == "shifted_range":
            shift = rule.p["shift"]
            s2 = start + shift
            if s2 < 0 or s2 + len(part) > total:
                s2 = start - shift
            s2 = max(0, min(s2, total - len(part)))
            part = data[s2:s2 + len(part)]
            cr = "bytes %d-%d/%d" % (s2, s2 + len(part) - 1, total)
        elif f == "wrong_total":
            cr = "bytes %d-%d/%d" % (start, end, total + rule.p["delta"])
        a = Answer(206, base + ([] if f == "no_content_range" else [("Content-Range", cr)]),
                   part)
        if head_only:
            a.length, a.body = len(part), b""
        return a

    @staticmethod
    def _parse_range(value, total):
        """None (no usable Range: the whole object), "unsatisfiable", or (first, last)."""
        if not value:
            return None
        m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", value)
        if not m or (not m.group(1) and not m.group(2)):
            return None
        if not m.group(1):
            n = int(m.group(2))
            if n == 0:
                return "unsatisfiable"
            return (max(0, total - n), total - 1) if total else "unsatisfiable"
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) else total - 1
        if last < first:
            return None
        if first >= total:
            return "unsatisfiable"
        return first, min(last, total - 1)

    # ---- listings ----

    def _sorted_keys(self, bucket):
        keys = self.sorted.get(bucket)
        if keys is None:
            keys = self.sorted[bucket] = sorted(self.buckets[bucket])
        return keys

    @staticmethod
    def _token(kind, marker):
        return base64.b64encode(b"hx1" + kind + marker).decode()

    @staticmethod
    def _untoken(token):
        try:
            raw = base64.b64decode(token.encode("latin-1"), validate=True)
        except (ValueError, UnicodeEncodeError):
            return None
        if not raw.startswith(b"hx1") or raw[3:4] not in (b"k", b"p"):
            return None
        return raw[3:4], raw[4:]

    def _walk(self, bucket, prefix, delim, max_keys, after):
        """The page after `after` ((b"k"|b"p", marker) or None): (contents, prefixes,
        truncated, last) with last = (kind, marker) of the page's last entry."""
        keys = self._sorted_keys(bucket)
        objs = self.buckets[bucket]
        for sd in self.synths.get(bucket, ()):
            if prefix.startswith(sd.prefix):
                keys, objs = sd, sd
        i = bisect.bisect_left(keys, prefix)
        if after is not None:
            k, m = after
            i = max(i, bisect.bisect_right(keys, m))
            if k == b"p":
                while i < len(keys) and keys[i].startswith(m):
                    i += 1
        contents, prefixes, n, last, truncated = [], [], 0, None, False
        while i < len(keys) and max_keys > 0:
            key = keys[i]
            if not key.startswith(prefix):
                break
            j = key.find(delim, len(prefix)) if delim else -1
            if n == max_keys:
                truncated = True
                break
            if j >= 0:
                cp = key[:j + len(delim)]
                prefixes.append(cp)
                last = (b"p", cp)
                while i < len(keys) and keys[i].startswith(cp):
                    i += 1
            else:
                contents.append((key, objs.get(key)))
                last = (b"k", key)
                i += 1
            n += 1
        return contents, prefixes, truncated, last

    def _serve_list(self, req, bucket, qs, rule):
        xml = [("Content-Type", "application/xml")]
        v2 = qs.get("list-type") == "2"
        prefix = qs.get("prefix", "").encode("latin-1")
        delim = qs.get("delimiter", "").encode("latin-1")
        enc = qs.get("encoding-type", "")
        if enc and enc != "url":
            return Answer(400, xml, error_doc("InvalidArgument", "Invalid Encoding Method "
                                              "specified in Request", ArgumentName="encoding-type"))
        url = enc == "url"
        f = rule.fault if rule is not None and rule.fault in LIST_FAULTS else None
        try:
            max_keys = min(1000, int(qs.get("max-keys", "1000")))
            if max_keys < 0:
                raise ValueError
        except ValueError:
            return Answer(400, xml, error_doc("InvalidArgument", "Provided max-keys not an "
                                              "integer or within integer range",
                                              ArgumentName="max-keys"))
        with self.lock:
            if bucket not in self.buckets:
                return Answer(404, xml, error_doc("NoSuchBucket", "The specified bucket does "
                                                  "not exist", BucketName=bucket))
            if self._denied(bucket, prefix, "list"):
                return Answer(403, xml, error_doc("AccessDenied", "Access Denied"))
            after = None
            if v2 and "continuation-token" in qs and f not in ("endless_same_token",
                                                                "endless_new_token"):
                after = self._untoken(qs["continuation-token"])
                if after is None:
                    return Answer(400, xml, error_doc(
                        "InvalidArgument", "The continuation token provided is incorrect",
                        ArgumentName="continuation-token"))
            sa = qs.get("start-after" if v2 else "marker", "").encode("latin-1")
            if sa and (after is None or sa > after[1]):
                after = (b"k", sa)
            contents, prefixes, truncated, last = self._walk(bucket, prefix, delim, max_keys,
                                                             after)
            contents = [(k, o.etag, o.mtime, len(o.data), o.storage_class)
                        for k, o in contents]
        enc_key = _urlenc if url else _xml_text
        next_token = self._token(*last) if truncated and last else None
        extra = []          # raw (key_text, size_text) entries
        etags = f != "list_no_etag"
        if f == "endless_same_token":
            with self.lock:
                contents2, prefixes, _, _ = self._walk(bucket, prefix, delim, max_keys, None)
                contents = [(k, o.etag, o.mtime, len(o.data), o.storage_class)
                            for k, o in contents2]
            truncated, next_token = True, rule.p["token"]
        elif f == "endless_new_token":
            per = rule.p["per_page"] or max(1, max_keys)
            with self.lock:
                rule.seq += 1
                seq = rule.seq
            now = int(time.time())
            contents = [(prefix + b"endless-%09d" % ((seq - 1) * per + i), '"%032x"' % i, now,
                         1, "STANDARD") for i in range(per)]
            prefixes, truncated = [], True
            next_token = base64.b64encode(b"endless-%d" % seq).decode()
        elif f == "huge_page":
            return self._huge_page(bucket, prefix, delim, max_keys, url, rule.p, v2)
        elif f == "bad_entries":
            extra = rule.p["entries"] or DEFAULT_BAD_ENTRIES
        elif f == "truncated_no_token":
            truncated, next_token = True, None
        out = [b'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="',
               S3NS.encode(), b'"><Name>', _xml_text(bucket.encode()), b"</Name><Prefix>",
               enc_key(prefix), b"</Prefix>"]
        if v2:
            out += [b"<KeyCount>%d</KeyCount>" % (len(contents) + len(prefixes) + len(extra))]
            if "continuation-token" in qs:
                out += [b"<ContinuationToken>", _xml_text(qs["continuation-token"].encode(
                    "latin-1")), b"</ContinuationToken>"]
            if qs.get("start-after"):
                out += [b"<StartAfter>", enc_key(qs["start-after"].encode("latin-1")),
                        b"</StartAfter>"]
        else:
            out += [b"<Marker>", enc_key(qs.get("marker", "").encode("latin-1")), b"</Marker>"]
        out += [b"<MaxKeys>%d</MaxKeys>" % max_keys]
        if delim:
            out += [b"<Delimiter>", enc_key(delim), b"</Delimiter>"]
        if url:
            out.append(b"<EncodingType>url</EncodingType>")
        out.append(b"<IsTruncated>%s</IsTruncated>" % (b"true" if truncated else b"false"))
        if v2 and next_token is not None:
            out += [b"<NextContinuationToken>", _xml_text(next_token.encode()),
                    b"</NextContinuationToken>"]
        elif not v2 and truncated and delim and last:
            out += [b"<NextMarker>", enc_key(last[1]), b"</NextMarker>"]
        for k, etag, mtime, size, sclass in contents:
            out += [b"<Contents><Key>", enc_key(k), b"</Key><LastModified>",
                    _iso(mtime).encode(), b"</LastModified>"]
            if etags:
                out += [b"<ETag>", _xml_text(_b(etag)), b"</ETag>"]
            out += [b"<Size>%d</Size><StorageClass>" % size, sclass.encode(),
                    b"</StorageClass></Contents>"]
        for ktext, stext in extra:
            out += [b"<Contents><Key>", enc_key(prefix) + _b(ktext), b"</Key><LastModified>",
                    _iso(time.time()).encode(), b'</LastModified><ETag>"0"</ETag><Size>',
                    _b(stext), b"</Size><StorageClass>STANDARD</StorageClass></Contents>"]
        for cp in prefixes:
            out += [b"<CommonPrefixes><Prefix>", enc_key(cp), b"</Prefix></CommonPrefixes>"]
        out.append(b"</ListBucketResult>")
        return Answer(200, xml, b"".join(out))

    def _huge_page(self, bucket, prefix, delim, max_keys, url, p, v2):
        target = int(p["mib"] * 1024 * 1024)
        enc_key = _urlenc if url else _xml_text
        head = b"".join([b'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="',
                         S3NS.encode(), b'"><Name>', _xml_text(bucket.encode()),
                         b"</Name><Prefix>", enc_key(prefix), b"</Prefix><MaxKeys>%d</MaxKeys>"
                         % max_keys, b"<Delimiter>" + enc_key(delim) + b"</Delimiter>"
                         if delim else b"", b"<EncodingType>url</EncodingType>" if url else b"",
                         b"<IsTruncated>false</IsTruncated>"])
        lm = _iso(time.time()).encode()
        parts, size, i = [head], len(head), 0
        while size < target:
            k = prefix + b"huge-%09d" % i
            k += b"x" * max(0, p["key_len"] - len(k))
            e = b"".join([b"<Contents><Key>", enc_key(k), b"</Key><LastModified>", lm,
                          b'</LastModified><ETag>"%032x"</ETag><Size>1</Size><StorageClass>'
                          b"STANDARD</StorageClass></Contents>" % i])
            parts.append(e)
            size += len(e)
            i += 1
        parts.append(b"</ListBucketResult>")
        return Answer(200, [("Content-Type", "application/xml")], b"".join(parts))

    # ---- the rest ----

    def _serve_other(self, req, method, bucket, qs):
        xml = [("Content-Type", "application/xml")]
        with self.lock:
            exists = bucket in self.buckets
            names = sorted(self.buckets)
        if not bucket and method in ("GET", "HEAD"):
            if method == "HEAD":
                return Answer(200, xml, b"")
            body = [b'<?xml version="1.0" encoding="UTF-8"?>\n<ListAllMyBucketsResult xmlns="',
                    S3NS.encode(), b'"><Owner><ID>hostile</ID><DisplayName>hostile'
                    b"</DisplayName></Owner><Buckets>"]
            for n in names:
                body += [b"<Bucket><Name>", _xml_text(n.encode()), b"</Name><CreationDate>",
                         _iso(0).encode(), b"</CreationDate></Bucket>"]
            body.append(b"</Buckets></ListAllMyBucketsResult>")
            return Answer(200, xml, b"".join(body))
        if bucket and method == "HEAD" and req.key is None:
            if not exists:
                return Answer(404, xml, b"")
            return Answer(200, [("x-amz-bucket-region", self.region)], b"")
        if bucket and method == "GET" and "location" in qs:
            if not exists:
                return Answer(404, xml, error_doc("NoSuchBucket", "The specified bucket does "
                                                  "not exist", BucketName=bucket))
            loc = b"" if self.region == "us-east-1" else self.region.encode()
            return Answer(200, xml, b'<?xml version="1.0" encoding="UTF-8"?>\n'
                          b'<LocationConstraint xmlns="' + S3NS.encode() + b'">' + loc +
                          b"</LocationConstraint>")
        return Answer(405, xml, error_doc("MethodNotAllowed", "The specified method is not "
                                          "allowed against this resource.", Method=method))


def _control_server(srv, port):
    import http.server

    class Control(http.server.BaseHTTPRequestHandler):
        def _reply(self, code, obj):
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _json(self):
            n = int(self.headers.get("Content-Length", "0"))
            return json.loads(self.rfile.read(n) or b"{}")

        def do_GET(self):
            path, _, query = self.path.partition("?")
            if path == "/requests":
                n = int(dict(urllib.parse.parse_qsl(query)).get("n", "100"))
                reqs = srv.requests[-n:] if n > 0 else []
                return self._reply(200, [{"method": r.method, "path": r.path,
                                          "query": r.query, "headers": r.headers,
                                          "kind": r.kind, "time": r.time} for r in reqs])
            self._reply(200, srv.stats())

        def do_POST(self):
            try:
                spec = self._json()
                if self.path == "/rules":
                    rule = srv.add(spec.pop("fault"), **spec)
                    return self._reply(200, rule.describe())
                if self.path == "/objects":
                    key = base64.b64decode(spec["key_b64"]) if "key_b64" in spec \
                        else spec["key"].encode()
                    if "data_b64" in spec:
                        data = base64.b64decode(spec["data_b64"])
                    elif "size" in spec:
                        data = random.Random(spec.get("seed", 0)).randbytes(spec["size"])
                    else:
                        data = spec.get("data", "").encode()
                    etag = srv.put(spec["bucket"], key, data, etag=spec.get("etag"),
                                   storage_class=spec.get("storage_class"))
                    return self._reply(200, {"etag": etag, "size": len(data)})
                if self.path == "/synth":
                    sd = srv.synth(spec["bucket"], spec["prefix"], int(spec["n"]),
                                   spec.get("fmt", "k%07d"), int(spec.get("size", 0)))
                    return self._reply(200, {"n": len(sd)})
                if self.path == "/deny":
                    srv.deny(spec["bucket"], spec.get("prefix", ""),
                             tuple(spec.get("actions", ("list", "get"))))
                    return self._reply(200, {})
                if self.path == "/sts":
                    srv.set_sts(**spec)
                    return self._reply(200, {})
                if self.path == "/replace_after":
                    srv.replace_after(spec["bucket"], spec["key"], spec["n"],
                                      spec.get("data", "").encode())
                    return self._reply(200, {})
                return self._reply(404, {"error": "no such control path " + self.path})
            except (ValueError, KeyError, TypeError) as e:
                return self._reply(400, {"error": str(e)})

        def do_DELETE(self):
            if self.path == "/rules":
                srv.clear()
            elif self.path.startswith("/rules/"):
                srv.remove(int(self.path[len("/rules/"):]))
            elif self.path == "/objects":
                spec = self._json()
                srv.delete(spec["bucket"], spec["key"])
            elif self.path == "/deny":
                srv.undeny()
            self._reply(200, srv.stats())

        def log_message(self, *args):
            pass

    return http.server.ThreadingHTTPServer(("127.0.0.1", port), Control)


def _interrupt(*_):
    raise KeyboardInterrupt


def main():
    ap = argparse.ArgumentParser(description="A hostile S3 + STS server on loopback")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--control", type=int, default=0)
    ap.add_argument("--bucket", action="append", default=[], help="create this bucket")
    ap.add_argument("--rule", action="append", default=[],
                    help='JSON rule, e.g. {"fault":"short_body","count":1}')
    args = ap.parse_args()
    srv = HostileServer(port=args.port).start()
    for b in args.bucket:
        srv.create_bucket(b)
    for r in args.rule:
        spec = json.loads(r)
        srv.add(spec.pop("fault"), **spec)
    ctl = _control_server(srv, args.control)
    signal.signal(signal.SIGTERM, _interrupt)     # so that stop() removes the token dir
    print(json.dumps({"url": srv.url, "control": "http://127.0.0.1:%d" % ctl.server_address[1],
                      "env": srv.pod_env}), flush=True)
    try:
        ctl.serve_forever()
    except KeyboardInterrupt:
        pass
    srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
