#!/usr/bin/env python3
"""guess_flood.py METHOD URL N [BODY] -- N requests with a wrong Bearer
secret over one kept-alive connection, as someone guessing secrets would
send them; prints how many distinct seconds they spanned (the most log
lines a 10-a-second limit may allow is 10 per second touched)."""
import http.client, sys, time, urllib.parse

method, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
body = sys.argv[4] if len(sys.argv) > 4 else "{}"
u = urllib.parse.urlsplit(url)
c = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
secs = set()
for i in range(n):
    secs.add(int(time.monotonic()))
    c.request(method, u.path, body=body, headers={"Authorization": "Bearer guess-%d" % i})
    r = c.getresponse()
    r.read()
    if r.status != 401:
        sys.exit("guess %d: HTTP %d, not 401" % (i, r.status))
    secs.add(int(time.monotonic()))
print(len(secs))
