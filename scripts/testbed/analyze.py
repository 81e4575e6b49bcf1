#!/usr/bin/env python3
"""analyze.py -- turns an experiment's raw measurements into CSV, gnuplot scripts,
summary.txt (key=value headline figures) and report.md.

    analyze.py redirect|far|failover|warmup RUN_DIR

Called by scripts/experiment; RUN_DIR holds params.txt, hosts.csv, rtt.csv,
healthy.txt and fetch*.csv written by tbprobe (one line per request).

Definitions (docs/testbed.md):
  oracle edge   the lowest-RTT edge among those the DNS server considered
                usable when the run started (RTT = min of 3 TCP handshakes)
  correct       the chosen edge's RTT is within max(0.5 ms, 5 %) of the
                oracle's (two edges of one region are equally good)
  penalty       chosen edge's RTT minus the oracle's, per request
"""
import csv
import os
import sys


def pct(values, p):
    """Nearest-rank percentile; None for an empty list."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def mean(values):
    return sum(values) / len(values) if values else None


def fmt(x, digits=1):
    return "-" if x is None else f"{x:.{digits}f}"


def read_params(run):
    p = {}
    with open(os.path.join(run, "params.txt")) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                p[k] = v
    return p


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def read_hosts(run):
    return {r["host"]: r for r in read_csv(os.path.join(run, "hosts.csv"))}


def edge_host(name):
    """edge-us-east-1 -> us-east-edge1 (the testbed's naming)."""
    body = name[len("edge-"):]
    region, k = body.rsplit("-", 1)
    return f"{region}-edge{k}"


class Rtts:
    def __init__(self, run):
        self.rtt = {}
        self.edge_by_ip = {}
        for r in read_csv(os.path.join(run, "rtt.csv")):
            ms = float(r["rtt_ms"]) if r["rtt_ms"] not in ("", "-1.000") else None
            self.rtt[(r["client"], r["edge_ip"])] = ms
            self.edge_by_ip[r["edge_ip"]] = (r["edge_host"], r["edge_region"])
        healthy = set()
        hp = os.path.join(run, "healthy.txt")
        if os.path.exists(hp):
            healthy = {edge_host(line.strip()) for line in open(hp) if line.strip()}
        self.healthy_ips = {ip for ip, (h, _) in self.edge_by_ip.items() if h in healthy}

    def oracle(self, client):
        best = None
        for ip in self.healthy_ips:
            ms = self.rtt.get((client, ip))
            if ms is not None and (best is None or ms < best[1]):
                best = (ip, ms)
        return best


def judge(rtts, rows, hosts):
    """Per request: chosen edge, its RTT, the oracle and whether it was right."""
    out = []
    for r in rows:
        client = r["label"]
        best = rtts.oracle(client)
        chosen_ip = r["edge"]
        chosen_rtt = rtts.rtt.get((client, chosen_ip))
        ok = best is not None and chosen_rtt is not None and \
            chosen_rtt <= best[1] + max(0.5, 0.05 * best[1])
        out.append({
            "epoch_ms": r["epoch_ms"], "client": client, "client_region": hosts[client]["region"],
            "edge_ip": chosen_ip, "edge_region": rtts.edge_by_ip.get(chosen_ip, ("-", "-"))[1],
            "rtt_chosen_ms": fmt(chosen_rtt, 3), "oracle_ip": best[0] if best else "-",
            "oracle_region": rtts.edge_by_ip[best[0]][1] if best else "-",
            "rtt_oracle_ms": fmt(best[1] if best else None, 3),
            "penalty_ms": fmt(chosen_rtt - best[1], 3) if best and chosen_rtt is not None else "-",
            "correct": int(ok), "status": r["status"], "cache": r["cache"], "dns_ms": r["dns_ms"],
            "total_ms": r["total_ms"], "error": r["error"],
        })
    return out


def write_rows(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()) if rows else ["empty"])
        w.writeheader()
        w.writerows(rows)


def scores(judged):
    n = len(judged)
    good = sum(j["correct"] for j in judged)
    pens = [float(j["penalty_ms"]) for j in judged if j["penalty_ms"] != "-"]
    return {"n": n, "correct": good, "accuracy": 100.0 * good / n if n else 0.0,
            "pen_mean": mean(pens), "pen_p50": pct(pens, 50), "pen_p95": pct(pens, 95),
            "unanswered": sum(1 for j in judged if j["penalty_ms"] == "-")}


def params_table(p):
    lines = ["| parameter | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in p.items()]
    return "\n".join(lines)


def write_summary(run, kv):
    with open(os.path.join(run, "summary.txt"), "w") as f:
        for k, v in kv.items():
            f.write(f"{k}={v}\n")


def per_client(judged):
    by = {}
    for j in judged:
        by.setdefault(j["client"], []).append(j)
    return by


# ------------------------------------------------------------------ redirect
def redirect(run):
    p = read_params(run)
    hosts = read_hosts(run)
    rtts = Rtts(run)
    judged = judge(rtts, read_csv(os.path.join(run, "fetch.csv")), hosts)
    write_rows(os.path.join(run, "redirect.csv"), judged)
    s = scores(judged)
    table = ["| client | region | chosen edge (region) | RTT chosen ms | oracle (region) | RTT oracle ms | correct |",
             "|---|---|---|---|---|---|---|"]
    with open(os.path.join(run, "redirect-clients.dat"), "w") as dat:
        dat.write("# client oracle_ms chosen_mean_ms\n")
        for c, js in sorted(per_client(judged).items()):
            ch = [float(j["rtt_chosen_ms"]) for j in js if j["rtt_chosen_ms"] != "-"]
            o = js[0]["rtt_oracle_ms"]
            dat.write(f"{c} {o} {fmt(mean(ch), 3) if ch else 'NaN'}\n")
            edges = sorted({f'{j["edge_ip"]} ({j["edge_region"]})' for j in js})
            table.append(f"| {c} | {js[0]['client_region']} | {', '.join(edges)} | {fmt(mean(ch), 1)} | "
                         f"{js[0]['oracle_ip']} ({js[0]['oracle_region']}) | {o} | "
                         f"{sum(j['correct'] for j in js)}/{len(js)} |")
    with open(os.path.join(run, "redirect.gp"), "w") as g:
        g.write(f"""set terminal pngcairo size 900,500
set output '{run}/redirect.png'
set title 'redirect: RTT to the chosen edge vs the lowest-RTT edge (ECS {"on" if p.get("ecs") == "1" else "off"})'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set ylabel 'RTT (ms)'
set yrange [0:*]
set xtics rotate by -30
set grid y
plot '{run}/redirect-clients.dat' using 2:xtic(1) title 'oracle (lowest RTT)', '' using 3 title 'chosen by DNS'
""")
    kv = {"experiment": "redirect", "ecs": p.get("ecs"), "requests": s["n"], "correct": s["correct"],
          "accuracy_pct": fmt(s["accuracy"]), "penalty_mean_ms": fmt(s["pen_mean"], 2),
          "penalty_p50_ms": fmt(s["pen_p50"], 2), "penalty_p95_ms": fmt(s["pen_p95"], 2),
          "unanswered": s["unanswered"]}
    write_summary(run, kv)
    with open(os.path.join(run, "report.md"), "w") as r:
        r.write(f"""# redirect

Every client resolves `www.cdn.test` through the resolver of its own region
({"with" if p.get("ecs") == "1" else "without"} EDNS Client Subnet) and fetches
an object from the address it got.  The oracle is the lowest-RTT edge the DNS
server considered usable; a request is correct if its edge's RTT is within
max(0.5 ms, 5 %) of the oracle's.

| figure | value |
|---|---|
| requests | {s["n"]} |
| redirect accuracy | **{fmt(s["accuracy"])} %** ({s["correct"]}/{s["n"]}) |
| RTT penalty mean | {fmt(s["pen_mean"], 2)} ms |
| RTT penalty p50 | {fmt(s["pen_p50"], 2)} ms |
| RTT penalty p95 | {fmt(s["pen_p95"], 2)} ms |
| requests without an answer | {s["unanswered"]} |

![redirect](redirect.png)

## Per client

{chr(10).join(table)}

## Parameters

{params_table(p)}

Data: `fetch.csv` (raw, one line per request), `rtt.csv` (client to every edge),
`redirect.csv` (judged requests).
""")
    return 0


# ------------------------------------------------------------------ far-resolver
def far(run):
    p = read_params(run)
    hosts = read_hosts(run)
    rtts = Rtts(run)
    resolver_region = {}
    for line in open(os.path.join(run, "far.txt")):
        c, rr = line.split()
        resolver_region[c] = rr
    res = {}
    for mode in ("noecs", "ecs"):
        judged = judge(rtts, read_csv(os.path.join(run, f"fetch-{mode}.csv")), hosts)
        for j in judged:
            j["resolver_region"] = resolver_region.get(j["client"], "-")
            j["mode"] = mode
        res[mode] = judged
    write_rows(os.path.join(run, "far.csv"), res["noecs"] + res["ecs"])
    s = {m: scores(res[m]) for m in res}
    table = ["| client | client region | resolver region | oracle RTT ms | RTT without ECS ms | RTT with ECS ms |",
             "|---|---|---|---|---|---|"]
    with open(os.path.join(run, "far-clients.dat"), "w") as dat:
        dat.write("# client oracle_ms noecs_ms ecs_ms\n")
        pa, pb = per_client(res["noecs"]), per_client(res["ecs"])
        for c in sorted(pa):
            a = [float(j["rtt_chosen_ms"]) for j in pa[c] if j["rtt_chosen_ms"] != "-"]
            b = [float(j["rtt_chosen_ms"]) for j in pb.get(c, []) if j["rtt_chosen_ms"] != "-"]
            o = pa[c][0]["rtt_oracle_ms"]
            dat.write(f"{c} {o} {fmt(mean(a), 3) if a else 'NaN'} {fmt(mean(b), 3) if b else 'NaN'}\n")
            table.append(f"| {c} | {hosts[c]['region']} | {resolver_region.get(c)} | {o} | "
                         f"{fmt(mean(a))} | {fmt(mean(b))} |")
    with open(os.path.join(run, "far.gp"), "w") as g:
        g.write(f"""set terminal pngcairo size 900,500
set output '{run}/far.png'
set title 'far resolver: RTT to the chosen edge without and with ECS'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set ylabel 'RTT (ms)'
set yrange [0:*]
set xtics rotate by -30
set grid y
plot '{run}/far-clients.dat' using 2:xtic(1) title 'oracle', '' using 3 title 'without ECS', '' using 4 title 'with ECS'
""")
    gap = s["ecs"]["accuracy"] - s["noecs"]["accuracy"]
    kv = {"experiment": "far-resolver", "requests_per_mode": s["ecs"]["n"],
          "accuracy_noecs_pct": fmt(s["noecs"]["accuracy"]), "accuracy_ecs_pct": fmt(s["ecs"]["accuracy"]),
          "accuracy_gap_pct": fmt(gap),
          "penalty_mean_noecs_ms": fmt(s["noecs"]["pen_mean"], 2), "penalty_mean_ecs_ms": fmt(s["ecs"]["pen_mean"], 2),
          "penalty_p95_noecs_ms": fmt(s["noecs"]["pen_p95"], 2), "penalty_p95_ecs_ms": fmt(s["ecs"]["pen_p95"], 2)}
    write_summary(run, kv)
    rows = []
    for m, label in (("noecs", "without ECS"), ("ecs", "with ECS (/24)")):
        x = s[m]
        rows.append(f"| {label} | {fmt(x['accuracy'])} % ({x['correct']}/{x['n']}) | {fmt(x['pen_mean'], 2)} | "
                    f"{fmt(x['pen_p50'], 2)} | {fmt(x['pen_p95'], 2)} |")
    with open(os.path.join(run, "report.md"), "w") as r:
        r.write(f"""# far-resolver

Clients whose resolver sits in another region.  Without ECS the DNS server only
sees the resolver's address and sends the client to the resolver's region;
with ECS it sees the client's /24.  ECS closes an accuracy gap of
**{fmt(gap)} percentage points**.

| resolver | accuracy | penalty mean ms | p50 ms | p95 ms |
|---|---|---|---|---|
{chr(10).join(rows)}

![far resolver](far.png)

## Per client

{chr(10).join(table)}

## Parameters

{params_table(p)}

Data: `fetch-noecs.csv`, `fetch-ecs.csv` (raw), `rtt.csv`, `far.csv` (judged).
""")
    return 0


# ------------------------------------------------------------------ failover
def failover(run):
    p = read_params(run)
    hosts = read_hosts(run)
    rows = read_csv(os.path.join(run, "fetch.csv"))
    victim, vip = p["victim"], p["victim_ip"]
    vregion = hosts[victim]["region"]
    t0, tk, tr = int(p["start_ms"]), int(p["kill_ms"]), int(p["restart_ms"])
    bound = int(p["health_interval_ms"]) * int(p["health_fall"]) + 1000

    def answered_at(r):  # when the DNS answer came back
        return int(r["epoch_ms"]) + max(0.0, float(r["dns_ms"]))

    down = [r for r in rows if tk <= int(r["epoch_ms"]) < tr]
    to_victim = [r for r in down if r["edge"] == vip]
    # DNS "stopped sending clients there" at the first answer after the last
    # answer naming the victim while it was down.
    if to_victim:
        last = max(answered_at(r) for r in to_victim)
        after = [answered_at(r) for r in down if answered_at(r) > last and r["edge"] not in ("-", vip)]
        stop = min(after) if after else None
    else:
        stop = min((answered_at(r) for r in down), default=None)
    failover_ms = (stop - tk) if stop is not None else None
    # A request belongs to the outage if it was still running at the kill (it
    # ends after it) and started before the restart.
    def ended_at(r):
        return int(r["epoch_ms"]) + max(0.0, float(r["dns_ms"])) + max(0.0, float(r["total_ms"]))

    def in_outage(r):
        return ended_at(r) >= tk and int(r["epoch_ms"]) < tr

    failed = [r for r in rows if r["status"] != "200"]
    failed_during = [r for r in failed if in_outage(r)]
    failed_other = [r for r in failed if not in_outage(r)]
    victim_after_stop = [r for r in to_victim if stop is not None and answered_at(r) > stop]
    back = [int(r["epoch_ms"]) for r in rows if int(r["epoch_ms"]) >= tr and r["edge"] == vip and r["status"] == "200"]
    return_ms = (min(back) - tr) if back else None
    vclients = sorted({r["label"] for r in rows if hosts[r["label"]]["region"] == vregion})
    before = [r for r in rows if int(r["epoch_ms"]) < tk and r["label"] in vclients]
    served_before = sum(1 for r in before if r["edge"] == vip)

    clients = sorted({r["label"] for r in rows})
    idx = {c: i for i, c in enumerate(clients)}
    with open(os.path.join(run, "failover.dat"), "w") as dat:
        dat.write("# t_s client_idx kind(0=other edge,1=victim,2=failed) edge\n")
        for r in rows:
            kind = 2 if r["status"] != "200" else (1 if r["edge"] == vip else 0)
            dat.write(f"{(int(r['epoch_ms']) - t0) / 1000:.3f} {idx[r['label']]} {kind} {r['edge']}\n")
    rows_out = []
    for r in rows:
        rows_out.append({"t_s": f"{(int(r['epoch_ms']) - t0) / 1000:.3f}", "client": r["label"],
                         "client_region": hosts[r["label"]]["region"], "edge": r["edge"],
                         "to_victim": int(r["edge"] == vip), "status": r["status"], "error": r["error"],
                         "dns_ms": r["dns_ms"], "total_ms": r["total_ms"]})
    write_rows(os.path.join(run, "failover.csv"), rows_out)
    ytics = ", ".join(f'"{c}" {i}' for c, i in idx.items())
    with open(os.path.join(run, "failover.gp"), "w") as g:
        g.write(f"""set terminal pngcairo size 1000,{300 + 30 * len(clients)}
set output '{run}/failover.png'
set title 'failover: {victim} killed at {(tk - t0) / 1000:.1f} s, restarted at {(tr - t0) / 1000:.1f} s'
set xlabel 'time since start (s)'
set ytics ({ytics})
set yrange [-1:{len(clients)}]
set grid x
set arrow from {(tk - t0) / 1000:.3f}, graph 0 to {(tk - t0) / 1000:.3f}, graph 1 nohead lc rgb 'red' dt 2
set arrow from {(tr - t0) / 1000:.3f}, graph 0 to {(tr - t0) / 1000:.3f}, graph 1 nohead lc rgb 'blue' dt 2
plot '{run}/failover.dat' using 1:($3 == 0 ? $2 : 1/0) with points pt 7 ps 0.4 lc rgb '#2a9d2a' title 'served by another edge', \\
     '' using 1:($3 == 1 ? $2 : 1/0) with points pt 7 ps 0.4 lc rgb '#1f5fbf' title 'served by {victim}', \\
     '' using 1:($3 == 2 ? $2 : 1/0) with points pt 2 ps 0.8 lc rgb 'red' title 'failed'
""")
    ok = failover_ms is not None and failover_ms <= bound and served_before > 0
    kv = {"experiment": "failover", "victim": victim, "requests": len(rows),
          "served_by_victim_before_kill": served_before,
          "failover_ms": fmt(failover_ms, 0), "bound_ms": bound, "within_bound": int(ok),
          "failed_while_down": len(failed_during), "failed_outside": len(failed_other),
          "answers_to_victim_after_failover": len(victim_after_stop),
          "return_ms": fmt(return_ms, 0)}
    write_summary(run, kv)
    by_client = {}
    for r in failed_during:
        by_client[r["label"]] = by_client.get(r["label"], 0) + 1
    with open(os.path.join(run, "report.md"), "w") as rep:
        rep.write(f"""# failover

Every client sends one request per {p.get("interval_ms")} ms (resolve through
its own resolver with ECS, then GET).  `{victim}` ({vip}, region {vregion}) is
killed with SIGKILL at {(tk - t0) / 1000:.1f} s and started again at
{(tr - t0) / 1000:.1f} s.  Health checks: every {p["health_interval_ms"]} ms,
down after {p["health_fall"]} failures, up after {p["health_rise"]} successes;
configured bound = interval x fall + 1 s = {bound} ms.

| figure | value |
|---|---|
| requests served by {victim} before the kill | {served_before} |
| time until DNS stopped sending clients to it | **{fmt(failover_ms, 0)} ms** (bound {bound} ms: {"within" if ok else "EXCEEDED"}) |
| requests that failed while it was down (in flight at the kill or started before the restart) | {len(failed_during)} ({", ".join(f"{c}: {n}" for c, n in sorted(by_client.items())) or "none"}) |
| failed requests outside that window | {len(failed_other)} |
| answers naming it after failover, before restart | {len(victim_after_stop)} |
| time to return after restart | {fmt(return_ms, 0)} ms (start-up + {p["health_rise"]} good checks) |

![failover](failover.png)

## Parameters

{params_table(p)}

Data: `fetch.csv` (raw), `failover.csv` (per request, time since start).
""")
    return 0


# ------------------------------------------------------------------ warmup
def warmup(run):
    p = read_params(run)
    hosts = read_hosts(run)
    rows = read_csv(os.path.join(run, "fetch.csv"))
    t0 = int(p["start_ms"])
    dur = float(p["duration_s"])
    bucket = max(1.0, dur / 20)
    buckets = {}
    for r in rows:
        if r["status"] != "200":
            continue
        # the last requests start just before the end: keep them in the last
        # full bucket rather than a nearly empty one of their own
        b = min(int((int(r["epoch_ms"]) - t0) / 1000 / bucket), max(0, int(dur / bucket) - 1))
        buckets.setdefault(b, []).append(r)
    total = [r for r in rows if r["status"] == "200"]
    failed = len(rows) - len(total)
    with open(os.path.join(run, "warmup.dat"), "w") as dat:
        dat.write("# t_s hit_ratio_pct p50_ms p95_ms requests\n")
        series = []
        for b in sorted(buckets):
            rs = buckets[b]
            hits = sum(1 for r in rs if r["cache"] == "hit")
            lat = [float(r["total_ms"]) for r in rs]
            hr = 100.0 * hits / len(rs)
            series.append((b * bucket, hr, pct(lat, 50), pct(lat, 95), len(rs)))
            dat.write(f"{b * bucket:.1f} {hr:.1f} {pct(lat, 50):.2f} {pct(lat, 95):.2f} {len(rs)}\n")
    write_rows(os.path.join(run, "warmup.csv"), [
        {"t_s": f"{t:.1f}", "hit_ratio_pct": f"{hr:.1f}", "p50_ms": f"{a:.2f}", "p95_ms": f"{b_:.2f}", "requests": n}
        for t, hr, a, b_, n in series])
    with open(os.path.join(run, "warmup.gp"), "w") as g:
        g.write(f"""set terminal pngcairo size 1000,500
set output '{run}/warmup.png'
set title 'warmup from cold caches: Zipf({p.get("zipf_alpha")}) over {p.get("objects")} objects'
set xlabel 'time since start (s)'
set ylabel 'hit ratio (%)'
set y2label 'latency (ms)'
set yrange [0:100]
set y2range [0:*]
set ytics nomirror
set y2tics
set grid
plot '{run}/warmup.dat' using 1:2 with linespoints lw 2 title 'hit ratio', \\
     '' using 1:3 axes x1y2 with lines title 'latency p50', '' using 1:4 axes x1y2 with lines dt 2 title 'latency p95'
""")
    first = series[0] if series else None
    last = series[-1] if series else None
    regions = {}
    for r in total:
        rg = hosts[r["label"]]["region"]
        regions.setdefault(rg, []).append(r)
    reg_rows = []
    for rg, rs in sorted(regions.items()):
        q = len(rs) // 4 or 1
        h1 = 100.0 * sum(1 for r in rs[:q] if r["cache"] == "hit") / len(rs[:q])
        h4 = 100.0 * sum(1 for r in rs[-q:] if r["cache"] == "hit") / len(rs[-q:])
        lat1 = pct([float(r["total_ms"]) for r in rs[:q]], 50)
        lat4 = pct([float(r["total_ms"]) for r in rs[-q:]], 50)
        reg_rows.append(f"| {rg} | {len(rs)} | {h1:.1f} | {h4:.1f} | {fmt(lat1)} | {fmt(lat4)} |")
    overall = 100.0 * sum(1 for r in total if r["cache"] == "hit") / len(total) if total else 0
    kv = {"experiment": "warmup", "requests": len(rows), "failed": failed,
          "hit_ratio_overall_pct": fmt(overall), "hit_ratio_first_bucket_pct": fmt(first[1] if first else None),
          "hit_ratio_last_bucket_pct": fmt(last[1] if last else None),
          "p50_first_bucket_ms": fmt(first[2] if first else None, 2), "p50_last_bucket_ms": fmt(last[2] if last else None, 2)}
    write_summary(run, kv)
    with open(os.path.join(run, "report.md"), "w") as rep:
        rep.write(f"""# warmup

Every edge's cache is purged, then every client requests objects drawn from a
Zipf({p.get("zipf_alpha")}) law over {p.get("objects")} objects (4 KiB each), one
request per {p.get("interval_ms")} ms, for {p.get("duration_s")} s.  Misses go to
the origin in region `{p.get("origin_region")}`, so far edges pay the WAN RTT twice
(connection + request) on a miss.

| figure | value |
|---|---|
| requests (failed) | {len(rows)} ({failed}) |
| hit ratio, whole run | {overall:.1f} % |
| hit ratio, first {bucket:.0f} s / last {bucket:.0f} s | {fmt(first[1] if first else None)} % / {fmt(last[1] if last else None)} % |
| latency p50, first / last bucket | {fmt(first[2] if first else None, 2)} ms / {fmt(last[2] if last else None, 2)} ms |

![warmup](warmup.png)

## Per region (first quarter vs last quarter of its requests)

| region | requests | hit % first | hit % last | p50 ms first | p50 ms last |
|---|---|---|---|---|---|
{chr(10).join(reg_rows)}

## Parameters

{params_table(p)}

Data: `fetch.csv` (raw), `warmup.csv` (per {bucket:.0f} s bucket).
""")
    return 0


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("redirect", "far", "failover", "warmup"):
        print("usage: analyze.py redirect|far|failover|warmup RUN_DIR", file=sys.stderr)
        return 2
    return {"redirect": redirect, "far": far, "failover": failover, "warmup": warmup}[sys.argv[1]](sys.argv[2])


if __name__ == "__main__":
    sys.exit(main())
