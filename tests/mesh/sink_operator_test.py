#!/usr/bin/env python3
"""tests/mesh/sink_operator_test.py: the cold tier from the operator's side, through shoald and the
CLI (issue 15; docs/tiers.md, "Cold search", "Bootstrap from the sink", "Seen from the CLI").

Proves, with the real programs (shoal-sink, two shoald, the shoal CLI) on loopback:
  1. device A uploads a sink collection (20 records written, 3 deleted) and the sink acknowledges;
     `shoal sink status` reports it connected, no backlog, a last acknowledgement and bytes;
  2. `shoal tier` shows the policy in effect from A's config; `shoal tier C --set` is a usage
     error (exit 2, JSON under --json) saying the policy lives in the config file;
  3. `shoal search --cold` on A answers from A (hits marked local) with the sink's freshness;
  4. device B (a fresh data directory, its own certificate, no peers, the same sink) finds A's
     records with `search --cold` only as cold hits, and never the 3 deleted ones;
  5. `shoal bootstrap C` on B restores the 17 live records from the sink: B's plain search finds
     A's records (exact vectors at distance 0), the deleted ones stay deleted (get fails, count
     17), and B then takes its own writes;
  6. in embedded mode (-d) the daemon-only verbs fail with a typed "needs a running shoald".
Checks are on the programs' outputs; the 60 s polling bound only decides when to give up.

usage: sink_operator_test.py SHOAL SHOALD SHOAL_SINK
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proc_util import (Scratch, enrol_shoald, enrol_sink, jrun, run, shoald_config, sink_config,  # noqa: E402
                       start_shoald, start_sink, stop, wait_for)

SHOAL, SHOALD, SINK = sys.argv[1], sys.argv[2], sys.argv[3]
RECORDS = 20
DELETED = ["c0", "c1", "c2"]


def vec(i):
    return f"{i},{i % 3},0.5,{i * 0.25}"


def start_daemon(root, mesh, name, sport):
    data = os.path.join(root, name)
    sock = os.path.join(root, f"{name}.sock")
    conf = os.path.join(root, f"{name}.toml")
    with open(conf, "w") as f:
        f.write(shoald_config(data, sock, extra=f'''
[tiers]
warm_budget_bytes = 4096

[[tiers.collections]]
name = "cold"
sink = true

[sink]
address = "127.0.0.1:{sport}"
'''))
    enrol_shoald(SHOAL, SHOALD, mesh, conf, data)
    d, _ = start_shoald(SHOALD, conf)
    return d, [SHOAL, "--connect", sock], data


def main():
    with Scratch(SHOAL, "shoal-sinkop-") as scratch:
        root, mesh = scratch.root, scratch.mesh
        sdata, sconf = os.path.join(root, "sink"), os.path.join(root, "sink.toml")
        with open(sconf, "w") as f:
            f.write(sink_config(sdata, f"{root}/sink.cert"))
        enrol_sink(SHOAL, SINK, mesh, sconf, f"{root}/sink.cert")
        sink, sport = start_sink(SINK, sconf)
        scratch.track(sink)

        # 1. Device A writes, deletes, and the sink acknowledges.
        a, cli_a, _ = start_daemon(root, mesh, "a", sport)
        scratch.track(a)
        run(*cli_a, "collection", "create", "cold", "--dim", "4")
        run(*cli_a, "collection", "create", "local", "--dim", "4")
        for i in range(RECORDS):
            run(*cli_a, "put", "cold", f"c{i}", "--vector", vec(i))
        for rid in DELETED:
            run(*cli_a, "delete", "cold", rid)

        def sink_status(cli):
            return jrun(*cli, "sink", "status")[1]

        wait_for("the sink acknowledges A's writes and deletes",
                 lambda: (lambda s: s.get("connected") and s.get("backlog_entries") == 0 and s.get("bytes", 0) > 0)(sink_status(cli_a)))
        s = sink_status(cli_a)
        assert s["configured"] and s["address"] == f"127.0.0.1:{sport}" and s["last_ack_unix_ms"] is not None, s
        assert s["quota_entries"] > 0 and s["uploads"] >= 1, s
        text = run(*cli_a, "sink", "status").stdout
        assert "connected:       yes" in text and "backlog:         0 delta buffer entries" in text, text
        print(f"1. A uploaded {RECORDS} writes and {len(DELETED)} deletes; sink status: {s['uploads']} uploads, "
              f"{s['bytes']} bytes, backlog {s['backlog_entries']}")

        # 2. The tier policies in effect, and --set refused with the reason.
        _, t = jrun(*cli_a, "tier")
        rows = {r["collection"]: r for r in t["collections"]}
        assert rows["cold"]["sink"] is True and rows["cold"]["source"] == "[[tiers.collections]]", rows
        assert rows["local"]["sink"] is False and rows["local"]["warm_budget_bytes"] == 4096, rows
        assert rows["local"]["source"] == "[tiers] defaults", rows
        _, one = jrun(*cli_a, "tier", "cold")
        assert [r["collection"] for r in one["collections"]] == ["cold"], one
        r = run(*cli_a, "--json", "tier", "cold", "--set", "sink=false", check=False)
        assert r.returncode == 2 and json.loads(r.stdout)["usage"] and "config file" in json.loads(r.stdout)["error"], r
        r = run(*cli_a, "tier", "nosuch", check=False)
        assert r.returncode == 1 and "nosuch" in r.stderr, r
        print("2. shoal tier: cold goes to the sink (config), local has the default budget; --set exits 2")

        # 3. Cold search on A: A holds every live record, so all hits are local.
        _, c = jrun(*cli_a, "search", "cold", "--vector", vec(10), "-k", "5", "--cold")
        assert c["sink"]["answered"] and c["sink"]["records"] == RECORDS - len(DELETED), c
        assert c["hits"][0]["id"] == "c10" and c["hits"][0]["distance"] == 0, c
        assert all(h["tier"] == "local" for h in c["hits"]) and len(c["hits"]) == 5, c
        assert "freshness" in c, c
        r = run(*cli_a, "search", "cold", "--vector", vec(1), "--cold", "--filter", "a=1", check=False)
        assert r.returncode == 2, r
        print(f"3. search --cold on A: {len(c['hits'])} local hits, the sink holds {c['sink']['records']} live records")

        # 4. Device B: fresh data directory, no peers, the same sink.
        b, cli_b, _ = start_daemon(root, mesh, "b", sport)
        scratch.track(b)
        run(*cli_b, "collection", "create", "cold", "--dim", "4")
        wait_for("B's sink link is up", lambda: sink_status(cli_b).get("connected"))
        _, c = jrun(*cli_b, "search", "cold", "--vector", vec(1), "-k", str(RECORDS), "--cold")
        ids = [h["id"] for h in c["hits"]]
        assert c["sink"]["answered"] and all(h["tier"] == "cold" for h in c["hits"]), c
        assert sorted(ids) == sorted(f"c{i}" for i in range(len(DELETED), RECORDS)), ids
        assert run(*cli_b, "count", "cold").stdout.strip().endswith("0"), "B held records before the bootstrap"
        print(f"4. search --cold on B before the bootstrap: {len(ids)} cold hits, none of the deleted")

        # 5. Bootstrap B from the sink.
        _, boot = jrun(*cli_b, "bootstrap", "cold")
        assert boot["records"] == RECORDS - len(DELETED) and boot["pages"] >= 1, boot
        count = run(*cli_b, "--json", "count", "cold").stdout
        assert json.loads(count)["count"] == RECORDS - len(DELETED), count
        for i in (3, 10, RECORDS - 1):
            _, h = jrun(*cli_b, "search", "cold", "--vector", vec(i), "-k", "1")
            assert h["hits"][0]["id"] == f"c{i}" and h["hits"][0]["distance"] == 0, h
        for rid in DELETED:
            assert run(*cli_b, "get", "cold", rid, check=False).returncode != 0, f"{rid} came back on B"
        _, c = jrun(*cli_b, "search", "cold", "--vector", vec(1), "-k", "5", "--cold")
        assert all(h["tier"] == "local" for h in c["hits"]), c
        run(*cli_b, "put", "cold", "b-own", "--vector", "7,7,7,7")
        _, h = jrun(*cli_b, "search", "cold", "--vector", "7,7,7,7", "-k", "1")
        assert h["hits"][0]["id"] == "b-own", h
        # Again: idempotent, nothing changes.
        jrun(*cli_b, "bootstrap", "cold")
        assert json.loads(run(*cli_b, "--json", "count", "cold").stdout)["count"] == RECORDS - len(DELETED) + 1
        r = run(*cli_b, "bootstrap", "nosuch", check=False)
        assert r.returncode == 1 and "nosuch" in r.stderr, r
        print(f"5. bootstrap on B: {boot['records']} records in {boot['pages']} pages; found locally, "
              "deletes stayed deleted, B writes on")

        # 6. Embedded mode has no sink.
        edir = os.path.join(root, "embedded")
        run(SHOAL, "-d", edir, "init")
        run(SHOAL, "-d", edir, "collection", "create", "cold", "--dim", "4")
        for verb in (["sink", "status"], ["tier"], ["bootstrap", "cold"], ["search", "cold", "--vector", "1,1,1,1", "--cold"]):
            r = run(SHOAL, "-d", edir, "--json", *verb, check=False)
            out = json.loads(r.stdout)
            assert r.returncode == 1 and "needs a running shoald" in out["error"], (verb, r.stdout)
        print("6. embedded mode: sink status, tier, bootstrap and search --cold need the daemon (typed error)")

        for d in (a, b):
            stop(d)
        print("PASS")


main()
