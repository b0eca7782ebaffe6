#!/usr/bin/env python3
"""tests/mesh/sink_mesh_test.py: the issue's "real three-gateway-plus-sink run" (issue 15;
docs/tiers.md): three shoald gateways in a full mesh of hot peers on loopback, and one shoal-sink,
on its LMDB object store or (--s3) on a signature-checking S3-compatible moto_server that
tests/sink/run_s3_tests.sh starts (it skips, exit 77, with a message when moto_server is absent).

Proves, with the real programs and the CLI:
  1. records written through the CLI on two gateways reach all three, deletes made before and
     after eviction included, and the sink acknowledges every gateway's uploads (no backlog) and
     holds exactly the live records;
  2. with a small sink.payload_budget_bytes and a short tiers.hot_window_ms, every gateway evicts
     payloads down to its budget (stubs), and a record evicted on a gateway is not in its plain
     search;
  3. `shoal search --cold` on each gateway equals exact search over what was written and not
     deleted (same ids in the same order, same distances), finds records evicted there as cold
     hits, and never returns a deleted record;
  4. a fourth gateway with an empty data directory and no peers, after `shoal bootstrap COLL`
     from the sink, holds every live record with its exact vector and metadata, and no deleted
     one.
The vectors come from a seeded generator (the seed is printed; pass --seed N to repeat a run).
Checks are on the programs' outputs; the 60 s polling bound only decides when to give up.

usage: sink_mesh_test.py SHOAL SHOALD SHOAL_SINK [--s3] [--seed N]
  --s3 reads SHOAL_S3_ENDPOINT, SHOAL_S3_KEY_ID and SHOAL_S3_SECRET (set by run_s3_tests.sh).
"""
import json
import os
import random
import struct
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proc_util import (Scratch, enrol_shoald, enrol_sink, jrun, run, shoald_config, sink_config,  # noqa: E402
                       start_shoald, start_sink, stop, wait_for)

SHOAL, SHOALD, SINK = sys.argv[1], sys.argv[2], sys.argv[3]
S3 = "--s3" in sys.argv
SEED = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else random.SystemRandom().randrange(1 << 32)

COLL = "cold"
DIM = 16
K = 10
WRITES = {"g1": 150, "g2": 90}   # records imported through each of these gateways
DELETED_EARLY = 5                # deleted through g3 right after the writes, before eviction
DELETED_LATE = 5                 # deleted through g2 after eviction, chosen among its stubs
KEPT_PAYLOADS = 40               # each gateway's payload budget, in records
BUDGET = KEPT_PAYLOADS * DIM * 4
HOT_WINDOW_MS = 500
QUERIES = 6


def f32(x):
    """x rounded to float32, as the store keeps it: distances below are then exact sums."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def sq_l2(a, b):
    return sum((x - y) * (x - y) for x, y in zip(a, b))


def exact_knn(live, q, k):
    """Exact search over `live` (id -> vector): (distance, id), closest first, ties by id."""
    return sorted((sq_l2(v, q), rid) for rid, v in live.items())[:k]


def same_answer(hits, expected):
    """A node's answer equals exact search: the same ids in the same order and the same distances
    (float32 kernels against float64 sums: within 1e-4 relative). Two ids may trade places only
    where their exact distances are that close; the k-th place too."""
    if len(hits) != len(expected):
        return False
    for h, (d, rid) in zip(hits, expected):
        if abs(h["distance"] - d) > 1e-4 * max(1.0, d):
            return False
        if h["id"] != rid and not any(abs(d2 - d) <= 1e-4 * max(1.0, d) and r2 == h["id"] for d2, r2 in expected):
            return False
    return True


def sink_store_table():
    if not S3:
        return None
    env = {k: os.environ.get(k) for k in ("SHOAL_S3_ENDPOINT", "SHOAL_S3_KEY_ID", "SHOAL_S3_SECRET")}
    missing = [k for k, v in env.items() if not v]
    if missing:
        raise SystemExit(f"FAIL: --s3 needs {', '.join(missing)} (run through tests/sink/run_s3_tests.sh)")
    return (f'kind = "s3"\ns3_endpoint = "{env["SHOAL_S3_ENDPOINT"]}"\ns3_bucket = "shoal-mesh-test"\n'
            f's3_access_key_id = "{env["SHOAL_S3_KEY_ID"]}"\ns3_secret_access_key = "{env["SHOAL_S3_SECRET"]}"\n'
            's3_create_bucket = true\n')


class Gateway:
    """One shoald: its own data directory and certificate, the sink's address, a payload budget
    (0: never evicts), and hot peers by address."""

    def __init__(self, scratch, name, sink_port, peers=(), budget=BUDGET):
        self.name = name
        data = os.path.join(scratch.root, name)
        sock = os.path.join(scratch.root, f"{name}.sock")
        conf = os.path.join(scratch.root, f"{name}.toml")
        with open(conf, "w") as f:
            f.write(shoald_config(data, sock, [(f"127.0.0.1:{p.port}", "hot") for p in peers], metrics=True, extra=f'''
[tiers]
hot_window_ms = {HOT_WINDOW_MS}

[[tiers.collections]]
name = "{COLL}"
sink = true

[sink]
address = "127.0.0.1:{sink_port}"
payload_budget_bytes = {budget}
'''))
        enrol_shoald(SHOAL, SHOALD, scratch.mesh, conf, data)
        self.proc, ready = start_shoald(SHOALD, conf)
        self.port, self.metrics_port = int(ready["port"]), int(ready["metrics"])
        scratch.track(self.proc)
        self.cli = [SHOAL, "--connect", sock]

    def sink(self):
        """`shoal sink status`: the link and the backlog, read now."""
        return jrun(*self.cli, "sink", "status")[1]

    def eviction(self):
        """The /status.json `sink` object, a snapshot taken each second, for its eviction figures
        (the local API's statistics, and so `shoal sink status`, do not carry them)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/status.json", timeout=10) as r:
            return json.loads(r.read())["sink"]

    def count(self):
        return jrun(*self.cli, "count", COLL)[1]["count"]

    def has_collection(self):
        return COLL in run(*self.cli, "collection", "list").stdout

    def import_records(self, records):
        lines = "".join(json.dumps({"id": rid, "vector": v, "metadata": {"from": self.name, "n": i}}) + "\n"
                        for i, (rid, v) in enumerate(records))
        run(*self.cli, "import", COLL, "-", stdin=lines)

    def search(self, q, k, cold):
        args = ["search", COLL, "--vector", ",".join(repr(x) for x in q), "-k", str(k)] + (["--cold"] if cold else [])
        return jrun(*self.cli, *args)[1]


def main():
    rng = random.Random(SEED)
    print(f"seed {SEED} (repeat with --seed {SEED}); store {'s3 (moto_server)' if S3 else 'lmdb'}")
    with Scratch(SHOAL, "shoal-sinkmesh-") as scratch:
        sconf, scert = os.path.join(scratch.root, "sink.toml"), os.path.join(scratch.root, "sink.cert")
        with open(sconf, "w") as f:
            f.write(sink_config(os.path.join(scratch.root, "sink"), scert, store=sink_store_table()))
        enrol_sink(SHOAL, SINK, scratch.mesh, sconf, scert)
        sink, sport = start_sink(SINK, sconf)
        scratch.track(sink)

        # 1. Three gateways, each dialing the ones before it: a full mesh of hot peers.
        g1 = Gateway(scratch, "g1", sport)
        g2 = Gateway(scratch, "g2", sport, [g1])
        g3 = Gateway(scratch, "g3", sport, [g1, g2])
        gateways = [g1, g2, g3]
        run(*g1.cli, "collection", "create", COLL, "--dim", str(DIM))
        wait_for("the catalogue brings the collection to g2", g2.has_collection)
        written = {}
        for g in (g1, g2):
            recs = [(f"{g.name}-{i}", [f32(rng.uniform(-1, 1)) for _ in range(DIM)]) for i in range(WRITES[g.name])]
            g.import_records(recs)
            written.update(recs)
        live = dict(written)
        wait_for("every gateway holds every record", lambda: all(g.count() == len(written) for g in gateways))
        for rid in rng.sample(sorted(written), DELETED_EARLY):
            run(*g3.cli, "delete", COLL, rid)
            del live[rid]

        def sink_took_everything():
            return all((lambda s: s.get("connected") and s.get("backlog_entries") == 0)(g.sink()) for g in gateways)

        wait_for("the deletes reach every gateway", lambda: all(g.count() == len(live) for g in gateways))
        wait_for("the sink acknowledges every gateway's uploads", sink_took_everything)
        print(f"1. {len(written)} records written through g1 and g2, {DELETED_EARLY} deleted through g3; "
              f"all three gateways hold {len(live)}, the sink acknowledged every upload")

        # 2. Eviction: each gateway keeps at most KEPT_PAYLOADS payloads once the hot window passed.
        def evicted(g):
            # A snapshot that agrees with the live count (it is taken each second, so one from
            # before the deletes would not), within budget, with everything else evicted.
            s = g.eviction()
            return (s["evicted_records"] + s["payload_held_bytes"] // (DIM * 4) == len(live)
                    and s["payload_held_bytes"] <= BUDGET and s["evicted_records"] >= len(live) - KEPT_PAYLOADS)

        wait_for(f"every gateway evicts down to {BUDGET} payload bytes", lambda: all(evicted(g) for g in gateways))
        held = {g.name: g.eviction() for g in gateways}
        print(f"2. every gateway evicted to its budget of {BUDGET} payload bytes (records evicted, bytes held):",
              {n: (s["evicted_records"], s["payload_held_bytes"]) for n, s in held.items()})

        # Deletes of records g2 holds as stubs (its cold hits), made through g2 after eviction.
        stubs_g2 = [h["id"] for h in g2.search([0.0] * DIM, len(live), True)["hits"] if h["tier"] == "cold"]
        assert len(stubs_g2) >= len(live) - KEPT_PAYLOADS, f"g2 answered only {len(stubs_g2)} records as cold"
        for rid in rng.sample(sorted(stubs_g2), DELETED_LATE):
            run(*g2.cli, "delete", COLL, rid)
            del live[rid]
        wait_for("the late deletes reach every gateway", lambda: all(g.count() == len(live) for g in gateways))
        wait_for("the sink acknowledges the late deletes", sink_took_everything)
        deleted = sorted(set(written) - set(live))
        print(f"   {DELETED_LATE} records g2 held as stubs deleted through g2; {len(live)} live")

        # 3. Cold search against exact search over the live records, on every gateway.
        cold_hits = {g.name: 0 for g in gateways}
        for qi in range(QUERIES):
            q = [f32(rng.uniform(-1, 1)) for _ in range(DIM)]
            expected = exact_knn(live, q, K)
            for g in gateways:
                ans = g.search(q, K, True)
                assert ans["sink"]["answered"] and ans["sink"]["records"] == len(live), (g.name, ans["sink"])
                hits = ans["hits"]
                assert not any(h["id"] in deleted for h in hits), (g.name, "a deleted record came back", hits)
                assert same_answer(hits, expected), (g.name, qi, hits, expected)
                cold = {h["id"] for h in hits if h["tier"] == "cold"}
                cold_hits[g.name] += len(cold)
                plain = {h["id"] for h in g.search(q, K, False)["hits"]}
                assert not cold & plain, (g.name, "a record answered cold is in the local index", cold & plain)
        assert all(n > 0 for n in cold_hits.values()), f"a gateway answered no evicted record cold: {cold_hits}"
        print(f"3. search --cold equals exact search on {QUERIES} queries x 3 gateways (k={K}); "
              f"cold hits (records evicted there) per gateway: {cold_hits}; no deleted record")

        # 4. A fourth gateway: empty data directory, no peers, no budget; bootstrapped from the sink.
        g4 = Gateway(scratch, "g4", sport, budget=0)
        run(*g4.cli, "collection", "create", COLL, "--dim", str(DIM))
        wait_for("g4's sink link is up", lambda: g4.sink().get("connected"))
        assert g4.count() == 0
        _, boot = jrun(*g4.cli, "bootstrap", COLL)
        assert boot["records"] == len(live), boot
        exported = [json.loads(line) for line in run(*g4.cli, "export", COLL).stdout.splitlines()]
        got = {r["id"]: r for r in exported}
        assert len(got) == len(exported) == len(live) == g4.count(), (len(got), len(exported), len(live))
        assert set(got) == set(live), sorted(set(got) ^ set(live))[:10]
        for rid, v in live.items():
            assert [f32(x) for x in got[rid]["vector"]] == v, (rid, got[rid]["vector"], v)
            origin, n = rid.split("-")
            assert got[rid]["metadata"] == {"from": origin, "n": int(n)}, (rid, got[rid])
        for rid in deleted:
            assert run(*g4.cli, "get", COLL, rid, check=False).returncode != 0, f"{rid} was deleted and came back on g4"
        q = live[sorted(live)[0]]
        top = g4.search(q, 1, False)["hits"][0]
        assert top["id"] == sorted(live)[0] and top["distance"] == 0, top
        print(f"4. g4 bootstrapped {boot['records']} records in {boot['pages']} pages: every live record with its "
              f"vector and metadata, none of the {len(deleted)} deleted")

        for g in gateways + [g4]:
            stop(g.proc)
        stop(sink)
        print("PASS")


main()
