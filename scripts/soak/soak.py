#!/usr/bin/env python3
"""soak.py -- `make soak`: an origin, two edges and the DNS server on loopback
under mixed load for SOAK_MINUTES (default 10): hits, misses, ranges, gzip,
purges, script pushes, hostile clients (smuggling shapes, slow heads, garbage),
DNS queries, a kill -9 and restart of an edge and origin restarts in turn.

At the end every object is fetched through every edge and compared with the
origin's file; RSS of every daemon is sampled each second; logs are scanned
for sanitizer reports; a daemon that exits without being told counts as a
crash.  Prints

    soak: requests=N errors=N corrupt=0 max_rss_mb=N restarts=N

and exits non-zero if corrupt > 0, a crash or sanitizer report appeared, or
RSS went over SOAK_RSS_MB (default 400; 1500 on a sanitizer build).
Traffic goes to 127.0.0.0/8 only; every loop is bounded by the deadline.

Environment: MINICDN_BIN (default build/bin), SOAK_MINUTES, SOAK_RSS_MB,
SOAK_KEEP=1 (keep the work directory).
"""
import gzip, hashlib, http.client, json, os, random, re, shutil, signal, socket, struct
import subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MINICDN_BIN", os.path.join(ROOT, "build", "bin"))
MINUTES = float(os.environ.get("SOAK_MINUTES", "10"))
SAN = b"__asan_init" in open(os.path.join(BIN, "minicdn-edge"), "rb").read()
RSS_MB = int(os.environ.get("SOAK_RSS_MB", "1500" if SAN else "400"))
SECRET = "soak-secret"

def free_port(host):
    for _ in range(200):
        p = random.randint(10000, 32000)  # below the ephemeral range
        t = socket.socket(); u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind((host, p)); u.bind((host, p)); return p
        except OSError:
            pass
        finally:
            t.close(); u.close()
    raise SystemExit("no free port")

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {}
    def add(self, k, n=1):
        with self.lock:
            self.c[k] = self.c.get(k, 0) + n
    def get(self, k):
        return self.c.get(k, 0)

S = Stats()

class Daemon:
    """One daemon process: started, stopped and killed by its PID only."""
    def __init__(self, name, argv, log, health=None):
        self.name, self.argv, self.logpath, self.health = name, argv, log, health
        self.p = None
        self.expected_exit = False
        self.max_rss = 0
    def start(self):
        self.expected_exit = False
        self.log = open(self.logpath, "ab")
        self.p = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT)
        if self.health:
            for _ in range(400):
                if get_status(*self.health, "/healthz", timeout=1) == 200:
                    return
                time.sleep(0.05)
            raise SystemExit("%s did not start (see %s)" % (self.name, self.logpath))
        else:
            time.sleep(0.5)
    def stop(self, sig=signal.SIGTERM):
        self.expected_exit = True
        if self.p and self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                S.add("stop_timeouts")
                self.p.kill(); self.p.wait()
        self.log.close()
    def rss(self):
        try:
            for line in open("/proc/%d/status" % self.p.pid):
                if line.startswith("VmRSS:"):
                    mb = int(line.split()[1]) // 1024
                    self.max_rss = max(self.max_rss, mb)
                    return mb
        except (OSError, AttributeError):
            pass
        return 0

def get_status(host, port, path, timeout=5):
    try:
        c = http.client.HTTPConnection(host, port, timeout=timeout)
        c.request("GET", path); r = c.getresponse(); r.read(); c.close()
        return r.status
    except OSError:
        return 0

def make_site(d, n=120):
    os.makedirs(d)
    files = {}
    sizes = [0, 1, 100, 1500, 10000, 65536, 100000, 700000, 2500000]
    for i in range(n):
        size = random.choice(sizes) + random.randint(0, 50)
        if i % 4 == 0:
            name = "t%03d.txt" % i  # text: the origin also has a gzip representation
            data = (("line %d of %d " % (i, size)) * (size // 10 + 1)).encode()[:size]
        else:
            name = "b%03d.bin" % i
            data = os.urandom(size)
        sub = "d%d" % (i % 5)
        os.makedirs(os.path.join(d, sub), exist_ok=True)
        open(os.path.join(d, sub, name), "wb").write(data)
        files["/%s/%s" % (sub, name)] = data
    return files

def write(path, text):
    open(path, "w").write(text)

class Soak:
    def __init__(self, work):
        self.w = work
        self.files = make_site(os.path.join(work, "site"))
        self.paths = sorted(self.files)
        self.deadline = time.time() + MINUTES * 60
        self.stop_load = threading.Event()
        self.edges = []
        self.lock = threading.Lock()
        self.down = set()  # names being restarted on purpose
        subprocess.run([os.path.join(BIN, "bundle-sign"), "keygen", work + "/k.pub", work + "/k.key"],
                       check=True, stdout=subprocess.DEVNULL)
        self.o_port = free_port("127.0.0.1")
        write(work + "/origin.conf", """name = "origin"; region = "eu"; listen = "127.0.0.1:%d";
root = "%s/site"; threads = 4; default_cache_control = "public, max-age=5";
rules = ( { match = "/d1/*"; cache_control = "public, max-age=60"; surrogate_key = "d1"; },
          { match = "/d2/*"; cache_control = "no-cache"; } );
""" % (self.o_port, work))
        self.origin = Daemon("origin", [BIN + "/minicdn-origin", "-c", work + "/origin.conf"],
                             work + "/origin.log", ("127.0.0.1", self.o_port))
        for i, host in enumerate(["127.0.0.21", "127.0.0.22"]):
            name = "edge%d" % (i + 1)
            port = free_port(host)
            write("%s/%s.conf" % (work, name), """name = "%s"; region = "eu"; listen = "%s:%d";
origin = "http://127.0.0.1:%d"; control_secret = "%s"; threads = 2; log_level = "info";
cache = { path = "%s/%s-cache"; map_size = "512M"; max_object_size = "8M"; stale_if_error = "30s"; };
upstream = { connect_timeout = "1s"; timeout = "10s"; };
scripts = { pubkey = "%s/k.pub"; path = "%s/%s-scripts"; memory = "16M"; };
""" % (name, host, port, self.o_port, SECRET, work, name, work, work, name))
            d = Daemon(name, [BIN + "/minicdn-edge", "-c", "%s/%s.conf" % (work, name)],
                       "%s/%s.log" % (work, name), (host, port))
            d.host, d.port = host, port
            self.edges.append(d)
        self.dns_port = free_port("127.0.0.1")
        stats = free_port("127.0.0.1")
        write(work + "/zone", """$ORIGIN cdn.test.
$TTL 300
@ IN SOA ns1.cdn.test. h.cdn.test. ( 1 3600 600 86400 60 )
@ IN NS ns1.cdn.test.
ns1 IN A 127.0.0.1
""")
        write(work + "/map.txt", "127.0.0.0/8 eu\n")
        edges = ",\n".join('{ name = "%s"; region = "eu"; address = "%s"; healthz = "http://%s:%d/healthz"; }'
                           % (e.name, e.host, e.host, e.port) for e in self.edges)
        write(work + "/dns.conf", """listen = [ "127.0.0.1:%d" ]; stats_listen = "127.0.0.1:%d";
workers = 2; log_level = "warn"; ttl = 20; answers = 1;
zones = ( { name = "cdn.test."; file = "zone"; } );
dynamic = [ "www.cdn.test.", "*.cdn.test." ]; map = "map.txt"; default_region = "eu";
regions = ( { name = "eu"; lat = 50.1; lon = 8.7; } );
edges = ( %s );
health = { interval = "1s"; timeout = "1s"; fall = 2; rise = 2; up_statuses = "200"; initial = "up"; };
""" % (self.dns_port, stats, edges))
        self.dns = Daemon("dns", [BIN + "/minicdn-dns", "-c", work + "/dns.conf"], work + "/dns.log",
                          ("127.0.0.1", stats))
        self.daemons = [self.origin] + self.edges + [self.dns]

    # ---------- load ----------
    def edge(self):
        return random.choice(self.edges)

    def is_down(self, e, origin_too=False):
        """Whether e (or, with origin_too, the origin) is being restarted on purpose."""
        with self.lock:
            return e.name in self.down or (origin_too and "origin" in self.down)

    def fetch(self, e, path, headers=None, method="GET"):
        c = http.client.HTTPConnection(e.host, e.port, timeout=15)
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, r, body

    def check_body(self, path, status, r, body, rng=None, gz=False):
        data = self.files[path]
        if gz and r.getheader("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if status == 200:
            ok = body == data
        elif status == 206 and rng:
            ok = body == data[rng[0]:rng[1] + 1]
        else:
            return
        if not ok:
            S.add("corrupt_live")
            print("soak: corrupt body for %s (status %d, %d bytes, want %d)" % (path, status, len(body), len(data)),
                  flush=True)

    def client(self, seed):
        rnd = random.Random(seed)
        while not self.stop_load.is_set() and time.time() < self.deadline:
            e = rnd.choice(self.edges)
            path = rnd.choice(self.paths[: len(self.paths) // 3] if rnd.random() < 0.7 else self.paths)
            kind = rnd.random()
            try:
                S.add("requests")
                if kind < 0.1 and len(self.files[path]) > 10:
                    n = len(self.files[path])
                    a = rnd.randrange(n); b = min(n - 1, a + rnd.randrange(1, 5000))
                    st, r, body = self.fetch(e, path, {"Range": "bytes=%d-%d" % (a, b)})
                    self.check_body(path, st, r, body, rng=(a, b))
                elif kind < 0.2:
                    st, r, body = self.fetch(e, path, {"Accept-Encoding": "gzip"})
                    self.check_body(path, st, r, body, gz=True)
                elif kind < 0.25:
                    # Pushes counted before the request: one that completes
                    # while it is on its way does not make its 404 an error.
                    pushed = S.get("pushes")
                    st, r, body = self.fetch(e, "/s/%d" % rnd.randrange(100))
                    if st == 404 and pushed < len(self.edges):
                        continue  # the script is not pushed yet: the origin has no /s/
                else:
                    st, r, body = self.fetch(e, path)
                    self.check_body(path, st, r, body)
                if st not in (200, 206):
                    planned = self.is_down(e, origin_too=True)
                    if planned and st in (502, 503, 504):
                        S.add("errors_during_restart")  # the origin was down on purpose
                    else:
                        S.add("errors"); S.add("status_%d" % st)
            except (OSError, http.client.HTTPException) as ex:
                planned = self.is_down(e, origin_too=True)
                S.add("errors_during_restart" if planned else "errors")
                if not planned:
                    S.add("err_" + type(ex).__name__)

    def purger(self):
        while not self.stop_load.is_set() and time.time() < self.deadline:
            time.sleep(2)
            e = self.edge()
            body = rnd_purge(self.paths, "http://%s:%d" % (e.host, e.port))
            try:
                c = http.client.HTTPConnection(e.host, e.port, timeout=10)
                c.request("POST", "/.minicdn/purge", body=json.dumps(body),
                          headers={"Authorization": "Bearer " + SECRET})
                r = c.getresponse(); r.read(); c.close()
                S.add("purges" if r.status == 200 else "purge_status_%d" % r.status)
            except OSError:
                # an edge killed on purpose refuses the purge: not a failure of the CDN
                S.add("purges_during_restart" if self.is_down(e) else "purge_failures")

    def pusher(self):
        v = 0
        while not self.stop_load.is_set() and time.time() < self.deadline:
            v += 1
            src = self.w + "/s.lua"
            write(src, """--[[minicdn
name = "soak";
routes = ( { path = "/s/*"; } );
]]
local hits = 0
function handle(req)
  hits = hits + 1
  local t = {}
  for i = 1, 200 + (%d %% 7) * 100 do t[i] = req.path .. i end
  return { headers = { ["Content-Type"] = "text/plain" }, body = "v%d " .. #table.concat(t) .. "\\n" }
end
""" % (v, v))
            env = subprocess.run([BIN + "/bundle-sign", "sign", self.w + "/k.key", src, str(v)],
                                 capture_output=True).stdout
            for e in self.edges:
                try:
                    c = http.client.HTTPConnection(e.host, e.port, timeout=20)
                    c.request("POST", "/.minicdn/scripts", body=env)
                    r = c.getresponse(); r.read(); c.close()
                    S.add("pushes" if r.status == 200 else "push_failures")
                except OSError:
                    S.add("pushes_during_restart" if self.is_down(e) else "push_failures")
            time.sleep(15)

    def hostile(self, seed):
        rnd = random.Random(seed)
        shapes = [
            b"POST /d0/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /d0/y HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /d0/x HTTP/1.1\r\nHost: x\r\nX-A: a\r\n Transfer-Encoding: chunked\r\n\r\n",
            b"GET /d0/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc",
            b"GET /a\x00/../x HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /d0/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5,50\r\n\r\nhello",
            b"POST /d0/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n",
            b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"b" * 60000 + b"\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)),
            b"POST /d0/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot hex\r\n",
            b"POST /.minicdn/purge HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\nAuthorization: Bearer nope\r\n\r\n{\"url\":1}",
        ]
        while not self.stop_load.is_set() and time.time() < self.deadline:
            targets = [(e.host, e.port) for e in self.edges] + [("127.0.0.1", self.o_port)]
            host, port = rnd.choice(targets)
            S.add("hostile")
            try:
                s = socket.create_connection((host, port), timeout=3)
                if rnd.random() < 0.15:
                    # a slow head: a byte a second for up to 4 s, then gone
                    for b in b"GET /d0/slow HTTP/1.1\r\n"[:4]:
                        s.send(bytes([b])); time.sleep(1)
                else:
                    s.sendall(rnd.choice(shapes))
                    s.settimeout(3)
                    try:
                        s.recv(65536)
                    except OSError:
                        pass
                s.close()
            except OSError:
                pass

    def dns_client(self):
        qid = 0
        while not self.stop_load.is_set() and time.time() < self.deadline:
            qid = (qid + 1) & 0xffff
            name = random.choice(["www", "x%d" % random.randrange(50), "ns1", "nope.sub"])
            q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
            for label in (name + ".cdn.test").split("."):
                q += bytes([len(label)]) + label.encode()
            q += b"\0" + struct.pack(">HH", 1, 1)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(2)
            try:
                s.sendto(q, ("127.0.0.1", self.dns_port))
                a = s.recv(4096)
                S.add("dns_answers" if a[:2] == q[:2] else "dns_errors")
            except OSError:
                S.add("dns_errors")
            s.close()
            time.sleep(0.01)

    def sampler(self):
        while not self.stop_load.is_set():
            for d in self.daemons:
                if d.p and d.p.poll() is None:
                    d.rss()
                elif d.p and not d.expected_exit:
                    S.add("crashes")
                    print("soak: %s exited by itself (status %s); restarting" % (d.name, d.p.returncode), flush=True)
                    d.log.close()
                    d.start()
            time.sleep(1)

    def chaos(self):
        """Every 60 s: kill -9 an edge and restart it, or restart the origin."""
        turn = 0
        while time.time() + 60 < self.deadline and not self.stop_load.is_set():
            time.sleep(60)
            turn += 1
            victim = self.edges[turn % 2] if turn % 3 else self.origin
            with self.lock:
                self.down.add(victim.name)
            if victim is self.origin:
                victim.stop(signal.SIGTERM)
            else:
                victim.stop(signal.SIGKILL)
            S.add("restarts")
            victim.start()
            time.sleep(1)
            with self.lock:
                self.down.discard(victim.name)
            print("soak: %s restarted (%s) at %.0f s" % (victim.name, "SIGTERM" if victim is self.origin else "kill -9",
                  time.time() - (self.deadline - MINUTES * 60)), flush=True)

    # ---------- end ----------
    def verify(self):
        corrupt = 0
        for e in self.edges:
            for p in self.paths:
                try:
                    st, r, body = self.fetch(e, p)
                except OSError:
                    S.add("errors"); S.add("verify_errors"); continue
                S.add("requests")
                if st != 200:
                    S.add("errors"); S.add("verify_status_%d" % st)
                elif body != self.files[p]:
                    corrupt += 1
                    print("soak: %s serves %s differently from the origin (%d bytes, want %d)"
                          % (e.name, p, len(body), len(self.files[p])), flush=True)
        return corrupt

    def run(self):
        for d in self.daemons:
            d.start()
        threads = [threading.Thread(target=self.client, args=(i,)) for i in range(6)]
        threads += [threading.Thread(target=self.hostile, args=(100 + i,)) for i in range(3)]
        threads += [threading.Thread(target=f) for f in (self.purger, self.pusher, self.dns_client, self.chaos)]
        samp = threading.Thread(target=self.sampler)
        for t in threads + [samp]:
            t.daemon = True
            t.start()
        while time.time() < self.deadline:
            time.sleep(min(30, max(0.1, self.deadline - time.time())))
            print("soak: %.0f s: requests=%d errors=%d hostile=%d restarts=%d edge_rss=%s" % (
                time.time() - (self.deadline - MINUTES * 60), S.get("requests"), S.get("errors"),
                S.get("hostile"), S.get("restarts"), [e.rss() for e in self.edges]), flush=True)
        self.stop_load.set()
        for t in threads:
            t.join(30)
        samp.join(5)
        time.sleep(2)
        corrupt = self.verify() + S.get("corrupt_live")
        for d in self.daemons:
            d.stop()
        reports = []
        for d in self.daemons:
            txt = open(d.logpath, "rb").read().decode("utf-8", "replace")
            if re.search(r"ERROR: (Address|Leak|Thread)Sanitizer|runtime error:", txt):
                reports.append(d.name)
        max_rss = max(d.max_rss for d in self.daemons)
        print("soak: details " + json.dumps(dict(sorted(S.c.items()))), flush=True)
        print("soak: max rss by daemon " + ", ".join("%s=%d MiB" % (d.name, d.max_rss) for d in self.daemons))
        print("soak: requests=%d errors=%d corrupt=%d max_rss_mb=%d restarts=%d" % (
            S.get("requests"), S.get("errors"), corrupt, max_rss, S.get("restarts")), flush=True)
        bad = []
        if S.get("purges") == 0 or any(k.startswith("purge_status_") for k in S.c):
            bad.append("purges refused")
        if corrupt:
            bad.append("corrupt objects")
        if S.get("crashes"):
            bad.append("%d daemon crashes" % S.get("crashes"))
        if reports:
            bad.append("sanitizer reports in " + ", ".join(reports))
        if max_rss > RSS_MB:
            bad.append("RSS %d MiB over the %d MiB bound" % (max_rss, RSS_MB))
        if bad:
            print("soak: FAILED: " + "; ".join(bad))
            return 1
        print("soak: passed (RSS bound %d MiB, %s build, %.0f min)" % (RSS_MB, "sanitizer" if SAN else "normal", MINUTES))
        return 0

def rnd_purge(paths, base):
    """A purge body: a URL (absolute, as the edge keys it), a prefix or a tag."""
    r = random.random()
    if r < 0.5:
        return {"url": base + random.choice(paths)}
    if r < 0.8:
        return {"prefix": "/d%d/" % random.randrange(5)}
    return {"tag": "d1"}

def main():
    work = tempfile.mkdtemp(prefix="minicdn-soak.")
    soak = Soak(work)
    rc = 1
    try:
        rc = soak.run()
    finally:
        for d in soak.daemons:
            if d.p and d.p.poll() is None:
                d.p.kill(); d.p.wait()
        if os.environ.get("SOAK_KEEP") or rc:
            print("soak: logs kept in " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(rc)

main()
