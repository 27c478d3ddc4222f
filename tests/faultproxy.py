#!/usr/bin/python3
"""faultproxy: an HTTP/1.1 proxy that breaks S3 on purpose.

It sits between irsafs and radosgw (both on loopback) and passes requests
through unchanged (the Host header too, so SigV4 signatures stay valid),
except where a rule says to break one. The faults:

  slowdown   503 with an S3 <Error><Code>SlowDown</Code> body (HEAD: no body)
  internal   500 with an S3 <Error><Code>InternalError</Code> body
  refuse     the connection is cut with a RST before any reply (per request);
             as a time window or "down", the listener itself closes, so new
             connections get a real ECONNREFUSED
  reset      status line, headers and part of the body, then a RST
  short      status line, headers (full Content-Length) and part of the body,
             then a clean close: a body cut short of its Content-Length
  stall      headers and part of the body, then nothing for `stall` seconds
  trickle    the whole answer, `chunk` bytes every `interval` seconds
  delay      nothing for `delay` seconds, then the whole answer
  replace    answer `status` with `body` repeated `repeat` times (streamed), e.g.
             a 100 MiB error body or an XML bomb, without asking radosgw

A rule matches by request kind ("list" = ListObjectsV2, "head", "get" = an
object GET, "sts" = a POST such as AssumeRoleWithWebIdentity, "any"),
optionally by regexes on the path and on the query, and fires:
  - by rate: rate=r fires on a deterministic 1-in-(1/r) schedule (the k-th
    match fires when floor(k*r) grows), so with r <= 0.5 no two consecutive
    matches both fail; seed=N makes it a seeded random draw instead;
  - for the next `count` matches;
  - max_consecutive=k spares a request (same method, target and Range) that
    this rule already broke k times in a row: "transient" made exact;
  - for `duration` seconds from now (a time window);
  - or until it is removed.
pin_header=NAME limits a rule to the requests that carry the value of header
NAME that the first matching request carried, e.g. "x-amz-security-token":
one session is revoked, the next one works.

Use it in-process (tests do):

    p = FaultProxy(upstream=("127.0.0.1", 7480)).start()
    p.add("slowdown", kind="get", rate=0.25)
    ... point irsafs at p.url ...
    p.stats()   # per-rule matches and injections, requests by kind
    p.clear(); p.stop()

or as a program with a control endpoint:

    faultproxy.py --listen 7490 --upstream 127.0.0.1:7480 --control 7491
    curl -d '{"fault":"reset","kind":"get","count":3}' 127.0.0.1:7491/rules
    curl 127.0.0.1:7491/stats;  curl -X DELETE 127.0.0.1:7491/rules

Only the Python 3 standard library. Listens on 127.0.0.1 only.
"""

import argparse
import http.client
import json
import random
import re
import socket
import socketserver
import struct
import sys
import threading
import time

FAULTS = ("slowdown", "internal", "refuse", "reset", "short", "stall", "trickle", "delay",
          "replace")
KINDS = ("any", "list", "head", "get", "sts")
HEAD_MAX = 64 * 1024


def error_body(code, message):
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s"
            "</Message><RequestId>faultproxy</RequestId></Error>" % (code, message)).encode()


class Rule:
    def __init__(self, fault, kind="any", path=None, query=None, rate=None, seed=None, count=None,
                 duration=None, delay=3.0, stall=60.0, chunk=4096, interval=0.05,
                 cut=0.5, status=200, body=b"", repeat=1, max_consecutive=None,
                 pin_header=None):
        if fault not in FAULTS:
            raise ValueError("unknown fault %r (one of %s)" % (fault, ", ".join(FAULTS)))
        if kind not in KINDS:
            raise ValueError("unknown kind %r (one of %s)" % (kind, ", ".join(KINDS)))
        self.fault = fault
        self.kind = kind
        self.path = re.compile(path) if path else None
        self.query = re.compile(query) if query else None
        self.rate = rate
        self.rng = random.Random(seed) if seed is not None else None
        self.count = count
        self.until = time.monotonic() + duration if duration is not None else None
        self.delay = delay
        self.stall = stall
        self.chunk = chunk
        self.interval = interval
        self.cut = cut
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.repeat = repeat
        self.max_consecutive = max_consecutive
        self.pin_header = pin_header.lower() if pin_header else None
        self.pinned = None
        self.streak = {}
        self.matched = 0
        self.injected = 0

    def active(self):
        if self.until is not None and time.monotonic() >= self.until:
            return False
        return self.count is None or self.injected < self.count

    def decide(self, kind, target, ident, headers=None):
        """Called under the proxy lock: does this rule break this request?
        ident names the request (method, target, Range), so that
        max_consecutive can spare the next attempt of one that already
        failed that many times in a row."""
        if not self.active():
            return False
        if self.kind != "any" and self.kind != kind:
            return False
        path, _, query = target.partition("?")
        if self.path and not self.path.search(path):
            return False
        if self.query and not self.query.search(query):
            return False
        if self.pin_header:
            value = headers.get(self.pin_header) if headers is not None else None
            if self.pinned is None:
                self.pinned = value
            if value != self.pinned:
                return False
        self.matched += 1
        if self.rate is None:
            fire = True
        elif self.rng is not None:
            fire = self.rng.random() < self.rate
        else:
            fire = int(self.matched * self.rate) > int((self.matched - 1) * self.rate)
        if self.max_consecutive is not None:
            if len(self.streak) > 100000:
                self.streak.clear()
            if fire and self.streak.get(ident, 0) >= self.max_consecutive:
                fire = False
            if fire:
                self.streak[ident] = self.streak.get(ident, 0) + 1
            else:
                self.streak.pop(ident, None)
        if fire:
            self.injected += 1
        return fire

    def describe(self):
        d = {"fault": self.fault, "kind": self.kind, "matched": self.matched,
             "injected": self.injected}
        if self.rate is not None:
            d["rate"] = self.rate
        if self.count is not None:
            d["count"] = self.count
        return d


def request_kind(method, target):
    path, _, query = target.partition("?")
    if method == "HEAD":
        return "head"
    if method == "POST":
        return "sts"
    if method == "GET" and re.search(r"(^|&)list-type=", query):
        return "list"
    if method == "GET" and path.count("/") >= 2 and not path.endswith("/"):
        return "get"
    return "other"


def rst_close(sock, rfile=None):
    """Close with a RST instead of a FIN. (The fd only closes once the
    makefile() reader is closed too.)"""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    for f in (rfile, sock):
        try:
            if f is not None:
                f.close()
        except OSError:
            pass


def cut_connection(sock):
    """From another thread: end the connection now. The serving thread sees
    EOF and closes it with a RST (SO_LINGER 0)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class FaultProxy:
    def __init__(self, upstream=("127.0.0.1", 7480), port=0):
        self.upstream = upstream
        self.port = port
        self.lock = threading.Lock()
        self.rules = []
        self.down = False
        self.conns = set()
        self.requests = {}
        self.injected = {}
        self.server = None
        self.thread = None
        self.stop_event = threading.Event()
        self.log = []

    # ---- control ----

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        self._listen()
        return self

    def _listen(self):
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                proxy._serve_connection(self.request)

        self.server = _Server(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def _close_listener(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def set_down(self, down):
        """down=True: the endpoint is gone (listener closed, connections cut)."""
        with self.lock:
            if down == self.down:
                return
            self.down = down
            conns = list(self.conns)
        if down:
            self._close_listener()
            for c in conns:
                cut_connection(c)
        else:
            self._listen()

    def stop(self):
        self.stop_event.set()
        self._close_listener()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            cut_connection(c)

    def add(self, fault, **kw):
        rule = Rule(fault, **kw)
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear(self):
        with self.lock:
            self.rules = []

    def stats(self):
        with self.lock:
            return {"requests": dict(self.requests), "injected": dict(self.injected),
                    "rules": [r.describe() for r in self.rules],
                    "down": self.down}

    def reset_stats(self):
        with self.lock:
            self.requests = {}
            self.injected = {}

    # ---- data path ----

    def _pick(self, kind, path, ident, headers=None):
        with self.lock:
            self.requests[kind] = self.requests.get(kind, 0) + 1
            for r in self.rules:
                if r.decide(kind, path, ident, headers):
                    key = r.fault + ":" + kind
                    self.injected[key] = self.injected.get(key, 0) + 1
                    return r
            return None

    def _keepalive_allowed(self):
        # While connections are being refused, every request needs a fresh one.
        with self.lock:
            return not any(r.fault == "refuse" and r.active() for r in self.rules)

    def _serve_connection(self, client):
        with self.lock:
            self.conns.add(client)
        upstream = None
        rfile = None
        try:
            client.settimeout(300)
            rfile = client.makefile("rb")
            while not self.stop_event.is_set():
                head = self._read_head(rfile)
                if self.down:
                    rst_close(client, rfile)
                    return
                if head is None:
                    return
                method, target, version, headers = head
                body = b""
                n = int(headers.get("content-length", "0") or 0)
                if n:
                    body = rfile.read(n)
                kind = request_kind(method, target)
                rule = self._pick(kind, target,
                                  (method, target, headers.get("range")), headers)
                if rule is not None and rule.fault == "refuse":
                    rst_close(client, rfile)
                    return
                if rule is not None and rule.fault in ("slowdown", "internal"):
                    if rule.fault == "slowdown":
                        status, reason = 503, "Slow Down"
                        eb = error_body("SlowDown", "Please reduce your request rate.")
                    else:
                        status, reason = 500, "Internal Server Error"
                        eb = error_body("InternalError", "We encountered an internal error.")
                    hdrs = [("Content-Type", "application/xml"),
                            ("Content-Length", str(len(eb))),
                            ("x-amz-request-id", "faultproxy"),
                            ("x-amz-id-2", "faultproxy-id-2")]
                    client.sendall(self._head_bytes(status, reason, hdrs))
                    if method != "HEAD":
                        client.sendall(eb)
                    continue
                if rule is not None and rule.fault == "replace":
                    total = len(rule.body) * rule.repeat
                    hdrs = [("Content-Type", "application/xml"), ("Content-Length", str(total)),
                            ("x-amz-request-id", "faultproxy"),
                            ("x-amz-id-2", "faultproxy-id-2")]
                    client.sendall(self._head_bytes(rule.status, "Replaced", hdrs))
                    if method != "HEAD":
                        for _ in range(rule.repeat):
                            client.sendall(rule.body)
                    continue
                if rule is not None and rule.fault == "delay":
                    if self.stop_event.wait(rule.delay):
                        return
                resp = None
                for fresh in (upstream is None, True):
                    # A kept-alive upstream connection may have been closed by
                    # radosgw meanwhile: try once more on a fresh one.
                    if fresh:
                        if upstream is not None:
                            upstream.close()
                        upstream = http.client.HTTPConnection(*self.upstream, timeout=300)
                    try:
                        upstream.putrequest(method, target, skip_host=True,
                                            skip_accept_encoding=True)
                        for k, v in headers.raw:
                            upstream.putheader(k, v)
                        upstream.endheaders(body or None)
                        resp = upstream.getresponse()
                        rbody = resp.read()
                        break
                    except (OSError, http.client.HTTPException):
                        resp = None
                        if fresh:
                            break
                if resp is None:
                    # The upstream is gone: the client sees its connection cut.
                    with self.lock:
                        self.requests["upstream-failed"] = \
                            self.requests.get("upstream-failed", 0) + 1
                    rst_close(client, rfile)
                    return
                keep = self._keepalive_allowed() and not resp.will_close
                hdrs = [(k, v) for k, v in resp.getheaders()
                        if k.lower() not in ("connection", "transfer-encoding", "keep-alive")]
                if not any(k.lower() == "content-length" for k, _ in hdrs) and method != "HEAD":
                    hdrs.append(("Content-Length", str(len(rbody))))
                hdrs.append(("Connection", "keep-alive" if keep else "close"))
                headbytes = self._head_bytes(resp.status, resp.reason, hdrs)
                if rule is None or method == "HEAD" or not rbody:
                    if rule is not None and rule.fault in ("reset", "short", "stall"):
                        # Nothing to cut: break the head instead.
                        client.sendall(headbytes[:max(1, int(len(headbytes) * rule.cut))])
                        if rule.fault == "stall":
                            self.stop_event.wait(rule.stall)
                        if rule.fault == "reset" or rule.fault == "stall":
                            rst_close(client, rfile)
                        else:
                            client.close()
                        return
                    if rule is not None and rule.fault == "trickle":
                        self._trickle(client, headbytes, rule)
                    else:
                        client.sendall(headbytes + (b"" if method == "HEAD" else rbody))
                elif rule.fault == "delay":
                    client.sendall(headbytes + rbody)
                elif rule.fault == "trickle":
                    self._trickle(client, headbytes + rbody, rule)
                else:
                    cut = max(1, min(len(rbody) - 1, int(len(rbody) * rule.cut))) \
                        if len(rbody) > 1 else 0
                    client.sendall(headbytes + rbody[:cut])
                    if rule.fault == "stall":
                        self.stop_event.wait(rule.stall)
                        rst_close(client, rfile)
                    elif rule.fault == "reset":
                        rst_close(client, rfile)
                    else:
                        client.shutdown(socket.SHUT_WR)
                        client.close()
                    return
                if not keep:
                    client.close()
                    return
        except OSError:
            return
        finally:
            with self.lock:
                self.conns.discard(client)
            if upstream is not None:
                upstream.close()
            # A clean close: a RST here would throw away answer bytes still
            # in the send buffer.
            for f in (rfile, client):
                try:
                    if f is not None:
                        f.close()
                except OSError:
                    pass

    def _trickle(self, client, data, rule):
        for i in range(0, len(data), rule.chunk):
            client.sendall(data[i:i + rule.chunk])
            if self.stop_event.wait(rule.interval):
                return

    @staticmethod
    def _head_bytes(status, reason, headers):
        lines = ["HTTP/1.1 %d %s" % (status, reason)]
        lines += ["%s: %s" % (k, v) for k, v in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    @staticmethod
    def _read_head(rfile):
        line = rfile.readline(HEAD_MAX)
        while line in (b"\r\n", b"\n"):
            line = rfile.readline(HEAD_MAX)
        if not line:
            return None
        parts = line.decode("latin-1").split()
        if len(parts) != 3:
            return None
        method, target, version = parts
        headers = _Headers()
        total = len(line)
        while True:
            h = rfile.readline(HEAD_MAX)
            total += len(h)
            if not h or total > HEAD_MAX:
                return None
            if h in (b"\r\n", b"\n"):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers.add(k.strip(), v.strip())
        return method, target, version, headers


class _Headers:
    def __init__(self):
        self.raw = []

    def add(self, k, v):
        self.raw.append((k, v))

    def get(self, name, default=None):
        for k, v in self.raw:
            if k.lower() == name:
                return v
        return default


def _control_server(proxy, port):
    import http.server

    class Control(http.server.BaseHTTPRequestHandler):
        def _reply(self, code, obj):
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._reply(200, proxy.stats())

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            try:
                spec = json.loads(self.rfile.read(n) or b"{}")
                if self.path == "/down":
                    proxy.set_down(bool(spec.get("down", True)))
                    return self._reply(200, proxy.stats())
                fault = spec.pop("fault")
                proxy.add(fault, **spec)
            except (ValueError, KeyError, TypeError) as e:
                return self._reply(400, {"error": str(e)})
            self._reply(200, proxy.stats())

        def do_DELETE(self):
            proxy.clear()
            self._reply(200, proxy.stats())

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Control)
    return srv


def main():
    ap = argparse.ArgumentParser(description="HTTP fault-injecting proxy for S3 on loopback")
    ap.add_argument("--listen", type=int, default=7490)
    ap.add_argument("--upstream", default="127.0.0.1:7480")
    ap.add_argument("--control", type=int, default=7491)
    ap.add_argument("--rule", action="append", default=[],
                    help='JSON rule, e.g. {"fault":"slowdown","kind":"get","rate":0.25}')
    args = ap.parse_args()
    host, _, port = args.upstream.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1"):
        ap.error("the upstream must be on loopback")
    proxy = FaultProxy(upstream=(host, int(port)), port=args.listen).start()
    for r in args.rule:
        spec = json.loads(r)
        proxy.add(spec.pop("fault"), **spec)
    ctl = _control_server(proxy, args.control)
    print("faultproxy: %s -> %s, control http://127.0.0.1:%d" % (proxy.url, args.upstream,
                                                                 args.control), flush=True)
    try:
        ctl.serve_forever()
    except KeyboardInterrupt:
        pass
    proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
