#!/usr/bin/env python3
"""tests/mesh/sink_daemon_test.py: shoald uploading to shoal-sink, as an operator runs them (issue 15).

Proves, with the real programs on loopback:
  1. shoal-sink starts from its TOML file, enrolled with `shoal mesh enrol --role sink`;
  2. shoald with [sink] address and a collection with sink = true uploads what the CLI writes
     through it: `shoal status` reports the sink connected with no backlog;
  3. with shoal-sink stopped, writes to that collection are accepted up to sink.quota_entries and
     the next is refused with the quota named, while a collection without the sink policy still
     takes writes;
  4. shoal-sink restarted on the same port (same store): the backlog drains and writes resume.
Checks are on the programs' outputs; the 60 s polling bound only decides when to give up.

usage: sink_daemon_test.py SHOAL SHOALD SHOAL_SINK
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proc_util import (Scratch, enrol_shoald, enrol_sink, run, shoald_config, sink_config, start_shoald,  # noqa: E402
                       start_sink, stop, wait_for)

SHOAL, SHOALD, SINK = sys.argv[1], sys.argv[2], sys.argv[3]
QUOTA = 5


def main():
    with Scratch(SHOAL, "shoal-sinkd-") as scratch:
        root, mesh = scratch.root, scratch.mesh

        # 1. The sink.
        sdata = os.path.join(root, "sink")
        sconf = os.path.join(root, "sink.toml")

        def write_sink_config(listen):
            with open(sconf, "w") as f:
                f.write(sink_config(sdata, f"{root}/sink.cert", listen))

        write_sink_config("127.0.0.1:0")
        enrol_sink(SHOAL, SINK, mesh, sconf, f"{root}/sink.cert")
        sink, sport = start_sink(SINK, sconf)
        scratch.track(sink)
        print(f"1. shoal-sink enrolled with the sink role and serving on 127.0.0.1:{sport}")

        # 2. shoald with [sink].
        data = os.path.join(root, "d")
        sock = os.path.join(root, "shoald.sock")
        conf = os.path.join(root, "shoald.toml")
        with open(conf, "w") as f:
            f.write(shoald_config(data, sock, extra=f'''
[[tiers.collections]]
name = "cold"
sink = true

[sink]
address = "127.0.0.1:{sport}"
quota_entries = {QUOTA}
'''))
        enrol_shoald(SHOAL, SHOALD, mesh, conf, data)
        d, _ = start_shoald(SHOALD, conf)
        scratch.track(d)
        cli = [SHOAL, "--connect", sock]
        run(*cli, "collection", "create", "cold", "--dim", "4")
        run(*cli, "collection", "create", "warmonly", "--dim", "4")
        for i in range(10):
            run(*cli, "put", "cold", f"c{i}", "--vector", f"{i},1,0.5,0.25")

        def sink_status():
            s = json.loads(run(*cli, "--json", "status").stdout)
            return s.get("sink", {})

        wait_for("the sink acknowledges the 10 writes", lambda: sink_status().get("connected") and
                 sink_status().get("backlog_entries") == 0 and sink_status().get("uploads", 0) >= 1)
        text = run(*cli, "status").stdout
        assert f"sink 127.0.0.1:{sport}: connected, backlog 0 entries (quota {QUOTA})" in text, text
        print("2. shoald uploaded the CLI's writes; `shoal status`:", [l for l in text.splitlines() if l.startswith("sink")][0])

        # 3. The sink stops: writes up to the quota, then a clear refusal.
        stop(sink)
        wait_for("shoald notices the sink is gone", lambda: not sink_status().get("connected"))
        accepted, refused = 0, None
        for i in range(20):
            r = run(*cli, "put", "cold", f"w{i}", "--vector", f"{i},2,0.5,0.25", check=False)
            if r.returncode != 0:
                refused = r
                break
            accepted += 1
        assert accepted == QUOTA, f"{accepted} writes accepted while the sink was away, quota {QUOTA}"
        assert refused is not None and f"quota {QUOTA}" in refused.stderr, refused.stderr if refused else "none refused"
        assert run(*cli, "get", "cold", f"w{QUOTA}", check=False).returncode != 0, "the refused write was stored"
        run(*cli, "put", "warmonly", "x", "--vector", "1,1,1,1")
        print(f"3. sink down: {accepted} writes accepted, then refused:", refused.stderr.strip().splitlines()[0])

        # 4. The sink returns on the same port with the same store: the backlog drains.
        write_sink_config(f"127.0.0.1:{sport}")
        sink, _ = start_sink(SINK, sconf)
        scratch.track(sink)
        wait_for("the backlog drains", lambda: sink_status().get("connected") and sink_status().get("backlog_entries") == 0)
        run(*cli, "put", "cold", f"w{QUOTA}", "--vector", "9,9,9,9")
        print("4. sink back: the backlog drained and writes are accepted again")

        stop(d)
        print("PASS")


main()
