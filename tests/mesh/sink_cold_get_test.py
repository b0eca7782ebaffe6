#!/usr/bin/env python3
"""tests/mesh/sink_cold_get_test.py: a record evicted to the cold tier, read back through shoald, the
CLI and the C API (issue 15; docs/tiers.md, "Eviction"; docs/api.md, "Evicted records").

Proves, with the real programs (shoal-sink, shoald, the shoal CLI, an app on libshoal) on loopback:
  1. a device with a payload budget of 1 byte and a hot window of 0 for its sink collection
     (`[[tiers.collections]] hot_window_ms = 0`, while the `[tiers]` default keeps a day) evicts
     every record of it once the sink acknowledged them, and none of the other collection;
  2. with the sink up, `shoal get` of an evicted record prints its exact vector (refilled through
     the daemon's sink link), the C API's shoal_get in client mode returns SHOAL_OK with the
     vector, and `shoal export` writes every record with its exact vector;
  3. with the sink down, shoal_get in client mode returns SHOAL_E_COLD with the record's metadata
     and no vector, `shoal get` prints the metadata and exits 3 naming the record (JSON: "cold"),
     and `shoal export` fails naming the first evicted record in store order, with no record written
     without its vector;
  4. with shoald stopped, shoal_get in embedded mode (shoal_open) returns SHOAL_E_COLD with the
     metadata, and `shoal -d DIR export` fails naming the record; the same app with the embedded
     mesh running on its handle (shoal_mesh_start with the device's config), the sink still down,
     gets SHOAL_E_COLD with the metadata too, the mesh's reason naming the record;
  5. the sink restarted (it keeps the metric A's uploads said, `ip`, and their spec, across the
     restart): a fresh device B that lacks the collection runs `shoal bootstrap cold`, which creates
     it with the sink's dimension, metric and A's index options (m 8, ef_construction 50, ef_search
     20, no quantization: not the defaults, D62) and restores every record with its exact vector;
     an app that embeds the mesh does the same with shoal_mesh_bootstrap
     (tests/capi/mesh_bootstrap_probe.c, which checks the options with shoal_collection_info);
     a collection the sink does not hold is a typed error naming it;
  6. the sink up again, the app that embeds the mesh on device A's data directory (shoald still
     stopped) gets the evicted record whole from shoal_get: the embedded mesh refills it over its
     own sink link (MeshHost::get_with_cold, the code shoald runs), and the store keeps the stub.
Checks are on the programs' outputs; the 60 s polling bound only decides when to give up.

usage: sink_cold_get_test.py SHOAL SHOALD SHOAL_SINK COLD_GET_PROBE MESH_BOOTSTRAP_PROBE
(COLD_GET_PROBE is tests/capi/cold_get_probe.c, in the modes connect, open and mesh)
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proc_util import run, wait_for  # noqa: E402

SHOAL, SHOALD, SINK, PROBE, MESH_PROBE = sys.argv[1:6]
RECORDS = 6


def vec(i):
    return [float(i), float(i % 3), 0.5, i * 0.25]


def vec_text(i):
    return ",".join(repr(x) for x in vec(i))


def start_sink(conf):
    p = subprocess.Popen([SINK, "--config", conf], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline().split()
    if line[:2] != ["shoal-sink:", "ready"]:
        raise SystemExit(f"FAIL: shoal-sink did not start: {line} {p.stderr.read() if p.poll() is not None else ''}")
    return p, int(dict(f.split("=", 1) for f in line[2:])["port"])


def write_daemon_conf(root, name, sport):
    data = os.path.join(root, name)
    conf = os.path.join(root, f"{name}.toml")
    with open(conf, "w") as f:
        f.write(f'''[node]
data_dir = "{data}"
certificate = "{data}/device.cert"

[mesh]
listen = "127.0.0.1:0"
discovery = false

[api]
socket = "{root}/{name}.sock"

[tiers]
sink = true                        # both collections go to the sink ...

[[tiers.collections]]
name = "cold"
hot_window_ms = 0                  # ... but only this one's records may be evicted at once

[sink]
address = "127.0.0.1:{sport}"
payload_budget_bytes = 1

[metrics]
enabled = false
''')
    return conf, data, os.path.join(root, f"{name}.sock")


def enrol(mesh, program, conf, data, role="member"):
    """Enrols the device of `program --config conf` (shoald or shoal-sink) in `mesh`; its
    certificate goes to data/device.cert (a sink's: data/sink.cert)."""
    key = run(program, "--config", conf, "--print-device-key").stdout.strip()
    grant = ["--grant", "*:rw"] if role == "member" else []
    out = os.path.join(data, "device.cert" if role == "member" else "sink.cert")
    run(SHOAL, "mesh", "enrol", "--mesh", mesh, "--device-key", key, "--role", role, *grant, "--days", "30", "--out", out)


def start_daemon(conf):
    d = subprocess.Popen([SHOALD, "--config", conf], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready = d.stdout.readline().split()
    assert ready[:2] == ["shoald:", "ready"], f"shoald did not start: {ready} {d.stderr.read() if d.poll() is not None else ''}"
    return d


def jrun(*args, check=True):
    r = run(*args, "--json", check=check)
    return r, json.loads(r.stdout)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    root = tempfile.mkdtemp(prefix="shoal-coldget-")
    procs = []
    try:
        mesh = os.path.join(root, "mesh")
        run(SHOAL, "mesh", "init", "--dir", mesh)
        sdata, sconf = os.path.join(root, "sink"), os.path.join(root, "sink.toml")
        with open(sconf, "w") as f:
            f.write(f'[sink]\ndata_dir = "{sdata}"\ncertificate = "{root}/sink.cert"\nlisten = "127.0.0.1:0"\n'
                    'log_level = "warn"\n[store]\nkind = "lmdb"\nlmdb_map_size_mb = 64\n')
        enrol(mesh, SINK, sconf, root, role="sink")
        sink, sport = start_sink(sconf)
        procs.append(sink)

        conf, data, sock = write_daemon_conf(root, "a", sport)
        enrol(mesh, SHOALD, conf, data)
        a = start_daemon(conf)
        procs.append(a)
        cli = [SHOAL, "--connect", sock]

        # 1. Write, let the sink acknowledge, and wait for the eviction.
        # Index options other than the defaults, which the sink keeps from the uploads (D62).
        run(*cli, "collection", "create", "cold", "--dim", "4", "--metric", "ip", "--m", "8", "--ef-construction", "50",
            "--ef", "20", "--quantization", "none")
        run(*cli, "collection", "create", "warmish", "--dim", "4")
        for i in range(RECORDS):
            run(*cli, "put", "cold", f"c{i}", "--vector", vec_text(i), "--meta", f"n={i}", "--meta", "tag=frame")
        run(*cli, "put", "warmish", "w0", "--vector", vec_text(1))

        def sink_status():
            return jrun(*cli, "sink", "status")[1]

        wait_for(f"the device evicts the {RECORDS} records of 'cold'",
                 lambda: sink_status().get("evicted_records", 0) >= RECORDS)
        s = sink_status()
        assert s["evicted_records"] == RECORDS, s  # 'warmish' keeps its day-long default hot window
        r = run(*cli, "tier", "cold")
        assert r.returncode == 0, r
        print(f"1. {s['evicted_records']} records of 'cold' evicted ({s['evicted_bytes']} bytes); 'warmish' kept")

        # 2. The sink is up: get, the C API and export refill.
        _, g = jrun(*cli, "get", "cold", "c4")
        assert g["ok"] and g["siblings"][0]["vector"] == vec(4), g
        assert g["siblings"][0]["metadata"] == {"n": 4, "tag": "frame"}, g
        run(PROBE, "connect", sock, "cold", "c4", "whole", vec_text(4))
        out = os.path.join(root, "export.jsonl")
        run(*cli, "export", "cold", out)
        rows = read_jsonl(out)
        assert sorted(r["id"] for r in rows) == [f"c{i}" for i in range(RECORDS)], rows
        for row in rows:
            assert row["vector"] == vec(int(row["id"][1:])), row
        s = sink_status()
        assert s["evicted_records"] == RECORDS, s  # a refill is a read: the store keeps the stubs
        print("2. sink up: shoal get, shoal_get (client mode) and export return the exact vectors")

        # 3. The sink is down.
        sink.send_signal(signal.SIGTERM)
        assert sink.wait(timeout=30) == 0, sink.stderr.read()
        wait_for("the device sees its sink gone", lambda: not sink_status().get("connected"))
        run(PROBE, "connect", sock, "cold", "c2", "cold", '"tag":"frame"')
        r = run(*cli, "get", "cold", "c2", check=False)
        assert r.returncode == 3, r
        assert "evicted to the cold-tier sink" in r.stdout and '"tag":"frame"' in r.stdout, r.stdout
        assert "c2" in r.stderr and "evicted" in r.stderr and "sink" in r.stderr, r.stderr
        r = run(*cli, "--json", "get", "cold", "c2", check=False)
        j = json.loads(r.stdout)
        assert r.returncode == 3 and j["cold"] and not j["ok"] and j["code"] == 0x204, j
        assert j["siblings"][0]["vector"] == [] and j["siblings"][0]["evicted"], j
        assert j["siblings"][0]["metadata"] == {"n": 2, "tag": "frame"}, j
        r = run(*cli, "get", "warmish", "w0", check=False)
        assert r.returncode == 0, r  # a record that was not evicted reads as ever
        out2 = os.path.join(root, "export-down.jsonl")
        r = run(*cli, "export", "cold", out2, check=False)
        # The first record in store order stops it, named.
        assert r.returncode == 1 and "export stopped at record 'c" in r.stderr and "cold-tier sink" in r.stderr, r
        if os.path.exists(out2):
            assert all(row["vector"] for row in read_jsonl(out2)), "export wrote a record without its vector"
        print(f"3. sink down: shoal_get SHOAL_E_COLD with metadata; shoal get exits 3; export fails: {r.stderr.strip()}")

        # 4. Embedded mode (shoald stopped: it holds the data directory).
        a.send_signal(signal.SIGTERM)
        assert a.wait(timeout=30) == 0, a.stderr.read()
        run(PROBE, "open", data, "cold", "c5", "cold", '"n":5')
        r = run(SHOAL, "-d", data, "get", "cold", "c5", check=False)
        assert r.returncode == 3 and "c5" in r.stderr and "shoal_connect" in r.stderr, r
        r = run(SHOAL, "-d", data, "export", "cold", os.path.join(root, "export-d.jsonl"), check=False)
        assert r.returncode == 1 and "record 'c" in r.stderr and "--connect" in r.stderr, r
        print(f"4. embedded: shoal_get SHOAL_E_COLD with metadata; shoal -d get exits 3; export -d fails: {r.stderr.strip()}")
        out = run(PROBE, "mesh", data, conf, "cold", "c1", "cold", '"n":1').stdout
        assert "sink" in out, out  # the embedded mesh's reason: its sink is not connected
        print(f"4. embedded mesh, sink down: {out.strip()}")

        # 5. Bootstrap creates the collection: through shoald, and in an app embedding the mesh.
        sink, sport = start_sink(sconf)
        procs.append(sink)
        conf_b, data_b, sock_b = write_daemon_conf(root, "b", sport)
        enrol(mesh, SHOALD, conf_b, data_b)
        b = start_daemon(conf_b)
        procs.append(b)
        cli_b = [SHOAL, "--connect", sock_b]
        assert run(*cli_b, "collection", "info", "cold", check=False).returncode == 1
        wait_for("B's sink link is up", lambda: jrun(*cli_b, "sink", "status")[1].get("connected"))
        _, boot = jrun(*cli_b, "bootstrap", "cold")
        assert boot["created"] and boot["dimension"] == 4 and boot["metric"] == "ip", boot
        assert boot["records"] == RECORDS, boot
        assert boot["m"] == 8 and boot["ef_construction"] == 50 and boot["ef_search"] == 20 and not boot["quantize"], boot
        _, info = jrun(*cli_b, "collection", "info", "cold")
        assert info["dimension"] == 4 and info["metric"] == "ip" and info["records"] == RECORDS, info
        assert info["m"] == 8 and info["ef_construction"] == 50 and info["ef_search"] == 20 and not info["quantize"], info
        _, g = jrun(*cli_b, "get", "cold", "c4")
        assert g["siblings"][0]["vector"] == vec(4) and g["siblings"][0]["metadata"] == {"n": 4, "tag": "frame"}, g
        text = run(*cli_b, "bootstrap", "cold").stdout  # again: exists now, nothing created
        assert "created" not in text and f"{RECORDS} records" in text, text
        r = run(*cli_b, "bootstrap", "nosuch", check=False)
        assert r.returncode == 1 and "nosuch" in r.stderr, r
        print(f"5. shoald: bootstrap created 'cold' (dimension 4, metric ip, m 8, ef_construction 50, ef_search 20, "
              f"not quantized) with {boot['records']} records")

        e_data, e_conf = os.path.join(root, "e"), os.path.join(root, "e.toml")
        with open(e_conf, "w") as f:
            f.write(f'[node]\ndata_dir = "{e_data}"\ncertificate = "{e_data}/device.cert"\n\n'
                    f'[mesh]\nlisten = "127.0.0.1:0"\ndiscovery = false\n\n'
                    f'[sink]\naddress = "127.0.0.1:{sport}"\n\n[metrics]\nenabled = false\n')
        enrol(mesh, SHOALD, e_conf, e_data)  # the embedded mesh reads shoald's config format
        out = run(MESH_PROBE, e_data, e_conf, "cold", str(RECORDS), "c3", vec_text(3), "8,50,20,0").stdout
        print(f"5. {out.strip()}")

        # 6. The embedded mesh refills through its own sink link (device A's data, shoald stopped).
        conf, _, _ = write_daemon_conf(root, "a", sport)  # the restarted sink's port
        out = run(PROBE, "mesh", data, conf, "cold", "c4", "whole", vec_text(4)).stdout
        print(f"6. embedded mesh, sink up: {out.strip()}")
        r = run(SHOAL, "-d", data, "get", "cold", "c4", check=False)
        assert r.returncode == 3, r  # a refill is a read: the store still holds the stub
        print("PASS")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        shutil.rmtree(root, ignore_errors=True)


main()
