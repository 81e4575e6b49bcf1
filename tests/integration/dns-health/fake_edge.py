#!/usr/bin/env python3
"""A fake edge for health tests: GET /healthz answers with the status code and
load read from STATEFILE ("200 0.1"), so the test can change them live;
"hold" answers 200 only after 2 s, longer than any health-check timeout here.
Usage: fake_edge.py ADDR PORT STATEFILE"""
import http.server, json, sys, time

addr, port, state = sys.argv[1], int(sys.argv[2]), sys.argv[3]

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            words = open(state).read().split()
            if words == ["hold"]:
                time.sleep(2)
                words = ["200", "0.1"]
            code, load = words
        except Exception:
            code, load = "500", "0"
        body = json.dumps({"status": "ok", "role": "edge", "load": float(load)}).encode()
        self.send_response(int(code))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

http.server.ThreadingHTTPServer.allow_reuse_address = True
http.server.ThreadingHTTPServer((addr, port), H).serve_forever()
