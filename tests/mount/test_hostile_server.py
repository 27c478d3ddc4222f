"""The hostile test server (tests/hostile.py) itself.

First that it is a faithful S3 + STS when no rule fires: the real irsafs
mounts it through IRSA, lists a three-level tree a page of 2 at a time, and
reads objects byte for byte. Then that each misbehaviour does what its
docstring says, checked on the wire with a plain socket (not through irsafs:
how irsafs copes is for the tests that use the server).
"""
import errno
import hashlib
import json
import os
import random
import re
import socket
import subprocess
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET

import pytest

from conftest import irsafs_bin

B = "hostile-bucket"
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def blob(n, seed):
    return random.Random(seed).randbytes(n)


def raw(srv, method, path, headers=None, body=b"", timeout=5.0, until=None):
    """One request on a fresh connection with Connection: close; the raw
    answer up to EOF (or whatever came before `timeout` of silence; once
    until(answer so far) holds, 0.3 s of silence ends it)."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
    hs = {"Host": "127.0.0.1:%d" % srv.port, "Connection": "close"}
    hs.update(headers or {})
    if body:
        hs["Content-Length"] = str(len(body))
    req = "%s %s HTTP/1.1\r\n" % (method, path) + "".join(
        "%s: %s\r\n" % kv for kv in hs.items()) + "\r\n"
    s.sendall(req.encode("latin-1") + body)
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
            if until is not None and until(out):
                s.settimeout(0.3)
    except socket.timeout:
        pass
    finally:
        s.close()
    return out


def parse(data):
    """(status, {lower-case name: raw value bytes}, body) of a raw answer;
    a chunked body is de-chunked."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    hs = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        hs[k.strip().lower().decode()] = v.strip()
    if hs.get("transfer-encoding") == b"chunked":
        out, rest = b"", body
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            n = int(size_line, 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    return status, hs, body


def request(srv, method, path, headers=None, body=b""):
    return parse(raw(srv, method, path, headers, body))


def listing(srv, bucket=B, **q):
    q.setdefault("list-type", "2")
    query = "&".join("%s=%s" % kv for kv in q.items())
    st, hs, body = request(srv, "GET", "/%s?%s" % (bucket, query))
    assert st == 200, body
    return ET.fromstring(body)


def keys_of(root):
    return [c.find(NS + "Key").text for c in root.iter(NS + "Contents")]


# ---- faithful when it behaves: the real irsafs on a real mount ----

TREE = {
    "zero": b"",
    "one": b"x",
    "top/mid/leaf/a": blob(128 * 1024 + 1, 1),
    "top/mid/leaf/b": b"b" * 10,
    "top/mid/leaf/c": b"c",
    "top/mid/m1": b"m1",
    "top/mid/m2": b"m2",
    "top/mid/m3": b"m3",
    "top/t1": b"t1",
    "top/t2": b"t2",
    "top/t3": b"t3",
    "big/nine": blob(9 * 1024 * 1024, 2),
    "secret/s1": b"not for you",
    "r1": b"r1",
    "r2": b"r2",
}


def test_irsafs_mounts_it_lists_pages_and_reads_exact_bytes(hostile, hostile_mount):
    for k, v in TREE.items():
        hostile.put(B, k.encode(), v)
    hostile.deny(B, "secret/", actions=("get",))
    m = hostile_mount(B, "--list-page-size", "2", expect_log=[
        r"s3:GetObject on arn:aws:s3:::hostile-bucket/secret/s1 denied"])

    ls = subprocess.run(["ls", "-lR", m.dir], capture_output=True, text=True, timeout=60)
    assert ls.returncode == 0, ls.stderr
    seen = {}
    for root, dirs, files in os.walk(m.dir):
        for f in files:
            p = os.path.join(root, f)
            seen[os.path.relpath(p, m.dir)] = os.lstat(p).st_size
    assert seen == {k: len(v) for k, v in TREE.items()}
    for k, v in TREE.items():
        if not k.startswith("secret/"):
            with open(m.path(k), "rb") as f:
                assert hashlib.sha256(f.read()).digest() == hashlib.sha256(v).digest(), k

    with pytest.raises(OSError) as ei:
        open(m.path("top", "nothing-here"), "rb")
    assert ei.value.errno == errno.ENOENT
    with pytest.raises(OSError) as ei:
        with open(m.path("secret", "s1"), "rb") as f:
            f.read()
    assert ei.value.errno == errno.EACCES

    reqs = hostile.requests
    assert any("continuation-token=" in r.query for r in reqs if r.kind == "list")
    assert all("max-keys=2" in r.query for r in reqs if r.kind == "list" and
               "max-keys=1&" not in r.query)
    big = [r.headers.get("range") for r in reqs if r.kind == "get" and r.key == b"big/nine"]
    assert len(big) >= 2 and all(big), big      # ranged GETs, more than one part
    st = hostile.stats()
    assert st["requests"]["sts"] >= 1 and st["errors"] == 0
    assert hostile.sts_calls[0]["RoleArn"] == hostile.role_arn
    assert hostile.sts_calls[0]["WebIdentityToken"] == open(hostile.token_path).read()
    assert all(r.headers.get("authorization", "").startswith("AWS4-HMAC-SHA256 Credential="
                                                             "ASIAHOSTILE")
               for r in reqs if r.kind != "sts")


def test_irsafs_doctor_passes_every_check(hostile):
    hostile.put(B, "d/first", b"1")
    proc = subprocess.run([irsafs_bin(), "doctor", B, "--json"], env=hostile.env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert {c["check"]: c["status"] for c in report["checks"]} == {
        "environment": "ok", "token": "ok", "sts": "ok", "endpoint": "ok", "list": "ok",
        "read": "ok"}, proc.stdout


# ---- faithful S3 on the wire ----

def test_listing_pages_prefixes_and_encoded_keys(hostile):
    odd = [b"odd/new\nline", b"odd/cr\rx", b"odd/esc\x1b[31m", b"odd/sp ace+plus", b"odd/%25"]
    for k in odd + [b"a/1", b"a/2", b"b/c/d", b"e"]:
        hostile.put(B, k, b"v")
    got, prefixes, token, pages = [], [], None, 0
    while True:
        q = {"delimiter": "%2F", "encoding-type": "url", "max-keys": "2", "prefix": ""}
        if token:
            q["continuation-token"] = urllib.parse.quote(token, safe="")
        root = listing(hostile, **q)
        pages += 1
        got += keys_of(root)
        prefixes += [p.find(NS + "Prefix").text for p in root.iter(NS + "CommonPrefixes")]
        if root.find(NS + "IsTruncated").text != "true":
            break
        token = root.find(NS + "NextContinuationToken").text
    assert (got, prefixes, pages) == (["e"], ["a/", "b/", "odd/"], 2)
    up = urllib.parse
    root = listing(hostile, prefix="odd/", **{"encoding-type": "url"})
    assert sorted(up.unquote_to_bytes(k.replace("+", " ")) for k in keys_of(root)) == sorted(odd)
    for k in odd:
        st, hs, body = request(hostile, "GET", "/%s/%s" % (B, up.quote(k, safe="/")))
        assert (st, body) == (200, b"v")
    assert request(hostile, "GET", "/no-such-bucket?list-type=2")[0] == 404
    assert b"<Code>NoSuchKey</Code>" in request(hostile, "GET", "/%s/nope" % B)[2]
    assert b"<Code>NoSuchBucket</Code>" in request(hostile, "GET", "/nobucket/k")[2]
    hostile.deny(B, "a/", actions=("list",))
    st, _, body = request(hostile, "GET", "/%s?list-type=2&prefix=a/" % B)
    assert st == 403 and b"<Code>AccessDenied</Code>" in body


def test_ranges_conditions_and_versions(hostile):
    data = blob(1000, 3)
    etag = hostile.put(B, "k", data)
    st, hs, body = request(hostile, "GET", "/%s/k" % B, {"Range": "bytes=10-19"})
    assert (st, hs["content-range"], hs["content-length"], hs["etag"].decode(), body) == \
        (206, b"bytes 10-19/1000", b"10", etag, data[10:20])
    assert request(hostile, "GET", "/%s/k" % B, {"Range": "bytes=995-2000"})[2] == data[995:]
    assert request(hostile, "GET", "/%s/k" % B, {"Range": "bytes=1000-1001"})[0] == 416
    assert request(hostile, "GET", "/%s/k" % B, {"If-Match": '"other"'})[0] == 412
    assert request(hostile, "GET", "/%s/k" % B, {"If-Match": etag})[0] == 200
    st, hs, body = request(hostile, "HEAD", "/%s/k" % B)
    assert (st, hs["content-length"], body) == (200, b"1000", b"")

    hostile.add("ignore_if_match", count=1)
    assert request(hostile, "GET", "/%s/k" % B, {"If-Match": '"other"'})[0] == 200
    assert request(hostile, "GET", "/%s/k" % B, {"If-Match": '"other"'})[0] == 412

    hostile.replace_after(B, "k", 2, b"new")
    bodies = [request(hostile, "GET", "/%s/k" % B)[2] for _ in range(3)]
    assert bodies == [data, data, b"new"]

    hostile.clear()
    rule = hostile.add("etag_change", key="^k$")
    first = request(hostile, "GET", "/%s/k" % B)
    second = request(hostile, "GET", "/%s/k" % B, {"If-Match": first[1]["etag"].decode()})
    assert second[0] == 412
    hostile.remove(rule)
    hostile.add("etag_change", if_match=False)
    third = request(hostile, "GET", "/%s/k" % B, {"If-Match": first[1]["etag"].decode()})
    assert third[0] == 200 and third[1]["etag"] != first[1]["etag"] and len(third[2]) == 3


# ---- each misbehaviour, on the wire ----

def test_listing_faults(hostile):
    for i in range(5):
        hostile.put(B, "p/k%d" % i, b"v")
    hostile.add("endless_same_token", count=2)
    a = listing(hostile, prefix="p/", **{"max-keys": "2"})
    b = listing(hostile, prefix="p/", **{"max-keys": "2", "continuation-token": "x"})
    tok = [r.find(NS + "NextContinuationToken").text for r in (a, b)]
    assert tok[0] == tok[1] and a.find(NS + "IsTruncated").text == "true"
    assert keys_of(a) == keys_of(b) == ["p/k0", "p/k1"]

    hostile.clear()
    hostile.add("endless_new_token")
    pages = [listing(hostile, prefix="p/", **{"max-keys": "3"}) for _ in range(3)]
    toks = {r.find(NS + "NextContinuationToken").text for r in pages}
    ks = [k for r in pages for k in keys_of(r)]
    assert len(toks) == 3 and len(ks) == 9 == len(set(ks))

    hostile.clear()
    hostile.add("huge_page", mib=2, count=1)
    st, _, body = request(hostile, "GET", "/%s?list-type=2&prefix=p/" % B)
    assert st == 200 and len(body) >= 2 * 1024 * 1024 and body.count(b"<Contents>") > 5000

    hostile.add("bad_entries", count=1)
    st, _, body = request(hostile, "GET", "/%s?list-type=2&prefix=p/&encoding-type=url" % B)
    for frag in (b"<Key>p/nul%00byte</Key>", b"<Size>-1</Size>", b"<Size>abc</Size>",
                 b"<Size>9223372036854775807</Size>", b"<Size>18446744073709551616</Size>",
                 b"<Key>p/k0</Key>"):
        assert frag in body

    hostile.add("truncated_no_token", count=1)
    r = listing(hostile, prefix="p/")
    assert r.find(NS + "IsTruncated").text == "true"
    assert r.find(NS + "NextContinuationToken") is None

    hostile.add("list_no_etag", count=1)
    r = listing(hostile, prefix="p/")
    assert len(keys_of(r)) == 5 and not list(r.iter(NS + "ETag"))
    assert list(listing(hostile, prefix="p/").iter(NS + "ETag"))


def test_short_and_wrong_answers(hostile):
    data = blob(4096, 4)
    hostile.put(B, "obj", data)
    rng = {"Range": "bytes=100-1099"}
    path = "/%s/obj" % B

    hostile.add("short_body", count=1)
    st, hs, body = request(hostile, "GET", path, rng)
    assert (st, hs["content-range"], hs["content-length"], body) == \
        (206, b"bytes 100-1099/4096", b"500", data[100:600])

    hostile.add("short_chunked", keep=10, count=1)
    out = raw(hostile, "GET", path, rng)
    assert out.endswith(b"\r\n0\r\n\r\n") and b"content-length" not in out.lower()
    st, hs, body = parse(out)
    assert (st, hs["transfer-encoding"], body) == (206, b"chunked", data[100:110])

    hostile.add("short_close", count=1)
    st, hs, body = request(hostile, "GET", path, rng)
    assert st == 206 and "content-length" not in hs and body == data[100:600]

    hostile.add("range_416", count=1)
    st, hs, body = request(hostile, "GET", path, rng)
    assert (st, hs["content-range"]) == (416, b"bytes */4096")

    hostile.add("error_200", count=1)
    st, hs, body = request(hostile, "GET", path, rng)
    assert (st, body, len(body)) == (200, b"<Error><Code>InternalError</Code></Error>", 41)

    hostile.add("full_200", count=1)
    st, hs, body = request(hostile, "GET", path, rng)
    assert (st, body) == (200, data)

    hostile.add("shifted_range", shift=7, count=1)
    st, hs, body = request(hostile, "GET", path, rng)
    assert (st, hs["content-range"], body) == (206, b"bytes 107-1106/4096", data[107:1107])

    hostile.add("wrong_total", count=1)
    st, hs, body = request(hostile, "GET", path, rng)
    assert (st, hs["content-range"], body) == (206, b"bytes 100-1099/4097", data[100:1100])

    hostile.add("no_content_range", count=1)
    st, hs, body = request(hostile, "GET", path, rng)
    assert st == 206 and "content-range" not in hs and body == data[100:1100]

    # Object faults leave a missing key alone.
    hostile.add("short_body", count=1)
    assert request(hostile, "GET", "/%s/missing" % B, rng)[0] == 404
    assert request(hostile, "GET", path, rng)[1]["content-length"] == b"500"
    st = hostile.stats()
    assert st["injected"]["short_body:get"] == 2 and st["errors"] == 0


def test_header_faults(hostile):
    hostile.put(B, "obj", b"data")
    for style, check in (("cr", lambda v: b"\r" in v.split(b"\r\n")[0]),
                         ("ctl", lambda v: b"\x01" in v),
                         ("unquoted", lambda v: not v.startswith(b'"')),
                         ("long", lambda v: len(v.split(b"\r\n")[0]) == 8192)):
        hostile.add("bad_etag", style=style, count=1)
        out = raw(hostile, "GET", "/%s/obj" % B)
        value = out.split(b"\r\nETag: ", 1)[1]
        assert check(value), (style, value[:80])
    hostile.add("headers", headers={"ETag": '"forged"', "X-Extra": "1"}, count=1)
    st, hs, body = request(hostile, "HEAD", "/%s/obj" % B)
    assert (hs["etag"], hs["x-extra"]) == (b'"forged"', b"1")


def sts_form(srv, token="tok.en.x", **extra):
    form = {"Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15",
            "RoleArn": srv.role_arn, "RoleSessionName": "s", "WebIdentityToken": token}
    form.update(extra)
    return urllib.parse.urlencode(form).encode()


def sts(srv, **kw):
    return request(srv, "POST", "/", {"Content-Type": "application/x-www-form-urlencoded"},
                   sts_form(srv, **kw))


def expiration(body):
    m = re.search(rb"<Expiration>([^<]+)</Expiration>", body)
    return time.mktime(time.strptime(m.group(1).decode(), "%Y-%m-%dT%H:%M:%SZ")) - time.timezone


def test_sts_faults(hostile):
    st, _, body = sts(hostile, DurationSeconds="900")
    assert st == 200 and 800 < expiration(body) - time.time() < 1000
    hostile.add("sts_expired", ago=600, count=1)
    assert expiration(sts(hostile)[2]) < time.time() - 500
    hostile.add("sts_expiring", seconds=5, count=1)
    assert expiration(sts(hostile)[2]) - time.time() < 10
    hostile.add("sts_arn", count=1)
    body = sts(hostile)[2]
    arn = body.split(b"<Arn>")[1].split(b"</Arn>")[0]
    assert b"\n" in arn and b"\x1b[" in arn
    hostile.add("sts_error", count=1)
    st, _, body = sts(hostile, token="secret.token.value")
    assert st == 403 and b"<Code>AccessDenied</Code>" in body and b"secret.token.value" in body
    assert sts(hostile, RoleArn="arn:aws:iam::1:role/other")[0] == 403

    # Credentials past their Expiration are refused by S3 as ExpiredToken.
    hostile.put(B, "k", b"v")
    akid = hostile.issued[1][0]
    st, _, body = request(hostile, "GET", "/%s/k" % B, {
        "Authorization": "AWS4-HMAC-SHA256 Credential=%s/20240101/us-east-1/s3/aws4_request, "
                         "SignedHeaders=host, Signature=0" % akid})
    assert st == 400 and b"ExpiredToken" in body


def test_timing_faults_and_stop_is_prompt(hostile):
    data = blob(10000, 5)
    hostile.put(B, "obj", data)
    hostile.add("hang", kind="sts", seconds=30, count=1)
    out = raw(hostile, "POST", "/", {"Content-Type": "application/x-www-form-urlencoded"},
              sts_form(hostile), timeout=0.5)
    assert out == b"" and hostile.wait_for("sts", 1, timeout=5)

    hostile.add("delay", kind="get", seconds=0.2, count=1)
    assert request(hostile, "GET", "/%s/obj" % B)[2] == data

    hostile.add("stall", kind="get", seconds=30, keep=100, count=1)
    out = raw(hostile, "GET", "/%s/obj" % B, timeout=10,
              until=lambda o: len(o.partition(b"\r\n\r\n")[2]) >= 100)
    st, hs, body = parse(out)
    assert (st, hs["content-length"], body) == (200, b"10000", data[:100])

    hostile.add("trickle", kind="get", rate=20000, count=1)
    assert request(hostile, "GET", "/%s/obj" % B)[2] == data
    assert hostile.stats()["injected"]["trickle:get"] == 1

    # A request hanging in a rule does not hold stop() up.
    hostile.add("hang", kind="get", seconds=60)
    t = threading.Thread(target=raw, args=(hostile, "GET", "/%s/obj" % B), daemon=True)
    t.start()
    assert hostile.wait_for("get", 4, timeout=5)
    t0 = time.monotonic()
    hostile.stop()
    assert time.monotonic() - t0 < 10     # generous: "did not hang"
    t.join(10)
    assert not t.is_alive()


def test_redirect_faults(hostile):
    hostile.put(B, "k", b"v")
    hostile.add("redirect_301", count=1)
    st, hs, body = request(hostile, "GET", "/%s/k" % B)
    assert (st, hs["x-amz-bucket-region"]) == (301, b"eu-west-1")
    assert b"<Code>PermanentRedirect</Code>" in body
    hostile.add("redirect_301", region=None, count=1)
    st, hs, _ = request(hostile, "GET", "/%s?list-type=2" % B)
    assert st == 301 and "x-amz-bucket-region" not in hs
    hostile.add("redirect_307", count=1)
    st, hs, _ = request(hostile, "HEAD", "/%s/k" % B)
    assert st == 307 and hs["location"] == ("%s/%s/k" % (hostile.url, B)).encode()
    assert "x-amz-bucket-region" not in hs
    hostile.add("redirect_307", region="ap-south-1", count=1)
    assert request(hostile, "GET", "/%s/k" % B)[1]["x-amz-bucket-region"] == b"ap-south-1"
    hostile.add("auth_malformed", region="eu-central-1", count=1)
    st, _, body = request(hostile, "GET", "/%s/k" % B)
    assert st == 400 and b"<Region>eu-central-1</Region>" in body
    assert request(hostile, "GET", "/%s/k" % B)[2] == b"v"


def test_odd_input_does_not_break_it(hostile):
    hostile.put(B, "k", b"v")
    for junk in (b"\x00\x01garbage\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/1.1\r\n" +
                 b"X: " + b"y" * 70000 + b"\r\n\r\n",
                 b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n"):
        s = socket.create_connection(("127.0.0.1", hostile.port), timeout=5)
        s.sendall(junk)
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
        s.close()
    # Keep-alive: two requests on one connection.
    s = socket.create_connection(("127.0.0.1", hostile.port), timeout=5)
    s.sendall(("GET /%s/k HTTP/1.1\r\nHost: x\r\n\r\nGET /%s/k HTTP/1.1\r\nHost: x\r\n"
               "Connection: close\r\n\r\n" % (B, B)).encode())
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
    s.close()
    assert out.count(b"HTTP/1.1 200 OK") == 2
    assert hostile.errors == []
