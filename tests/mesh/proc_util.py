"""tests/mesh/proc_util.py: what the process-level tests in tests/mesh share: running a program,
polling for a condition, and starting the real programs an operator runs (shoal-sink and shoald,
each enrolled in a mesh made with `shoal mesh init`). The polling bound only decides when to give
up, never what passes."""
import json
import os
import shutil
import subprocess
import tempfile
import time

GIVE_UP_S = 60


def run(*args, check=True, stdin=None):
    """Runs a program to completion; with check, a non-zero exit fails the test with its output."""
    r = subprocess.run(args, capture_output=True, text=True, input=stdin)
    if check and r.returncode != 0:
        raise SystemExit(f"FAIL: {' '.join(args)} exited {r.returncode}: {r.stdout} {r.stderr}")
    return r


def jrun(*args, check=True):
    """Runs a `shoal` command with --json; returns the completed process and its parsed output."""
    r = run(*args, "--json", check=check)
    return r, json.loads(r.stdout)


def wait_for(what, cond, give_up_s=GIVE_UP_S, poll_s=0.05):
    """Polls cond() until it holds; fails the test naming `what` after give_up_s."""
    deadline = time.monotonic() + give_up_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(poll_s)
    raise SystemExit(f"FAIL: gave up after {give_up_s} s waiting for: {what}")


def enrol(shoal, mesh, device_key, out, role="member"):
    """Issues a certificate from the mesh authority in `mesh`: a member gets read-write on every
    collection; a sink's own grants do not matter (docs/sink.md)."""
    grant = ["--grant", "*:rw"] if role == "member" else []
    run(shoal, "mesh", "enrol", "--mesh", mesh, "--device-key", device_key, "--role", role, *grant,
        "--days", "30", "--out", out)


def ready_fields(proc, program):
    """Reads a program's `PROGRAM: ready k=v ...` line; fails the test with its stderr if it did
    not get there. Returns the k=v fields."""
    line = proc.stdout.readline().split()
    if line[:2] != [f"{program}:", "ready"]:
        err = proc.stderr.read() if proc.poll() is not None else ""
        raise SystemExit(f"FAIL: {program} did not start: {line} {err}")
    return dict(f.split("=", 1) for f in line[2:])


def sink_config(data_dir, cert, listen="127.0.0.1:0", store=None):
    """shoal-sink's TOML (docs/sink.md): LMDB by default, or the [store] table given."""
    store = store or 'kind = "lmdb"\nlmdb_map_size_mb = 64\n'
    return (f'[sink]\ndata_dir = "{data_dir}"\ncertificate = "{cert}"\nlisten = "{listen}"\n'
            f'log_level = "warn"\n[store]\n{store}')


def enrol_sink(shoal, sink, mesh, conf, cert):
    """Creates the sink's identity (from its config file) and enrols it with the sink role."""
    key = run(sink, "--config", conf, "--print-device-key").stdout.strip()
    enrol(shoal, mesh, key, cert, role="sink")


def start_sink(sink, conf):
    """Starts shoal-sink from its config file; returns the process and the port it serves on."""
    p = subprocess.Popen([sink, "--config", conf], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p, int(ready_fields(p, "shoal-sink")["port"])


def shoald_config(data, sock, peers=(), extra="", listen="127.0.0.1:0", log_level="info", socket_mode=None,
                  metrics=False):
    """shoald's TOML (docs/operations.md) on loopback without discovery: `peers` are (address,
    tier) pairs; `extra` is appended before [metrics] (tables such as [tiers] and [sink]); with
    `metrics`, /metrics and /status.json are served on a free loopback port (the ready line's
    `metrics` field)."""
    text = (f'[node]\ndata_dir = "{data}"\ncertificate = "{data}/device.cert"\nlog_level = "{log_level}"\n\n'
            f'[mesh]\nlisten = "{listen}"\ndiscovery = false\n')
    for addr, tier in peers:
        text += f'\n[[mesh.peers]]\naddress = "{addr}"\ntier = "{tier}"\n'
    text += f'\n[api]\nsocket = "{sock}"\n'
    if socket_mode:
        text += f'socket_mode = "{socket_mode}"\n'
    metrics_table = 'listen = "127.0.0.1:0"\n' if metrics else 'enabled = false\n'
    return text + extra + '\n[metrics]\n' + metrics_table


def enrol_shoald(shoal, shoald, mesh, conf, data):
    """Creates the daemon's identity (from its config file) and enrols it as a member with
    read-write on every collection; the certificate goes to DATA/device.cert."""
    key = run(shoald, "--config", conf, "--print-device-key").stdout.strip()
    enrol(shoal, mesh, key, os.path.join(data, "device.cert"))


def start_shoald(shoald, conf):
    """Starts shoald from its config file; returns the process and its ready line's fields (`port`,
    the mesh port; `metrics`, the metrics port or `off`; `socket`; `device`)."""
    d = subprocess.Popen([shoald, "--config", conf], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return d, ready_fields(d, "shoald")


def stop(proc, give_up_s=30):
    """SIGTERM, then the exit code must be 0 (a clean stop); fails the test with stderr otherwise."""
    proc.terminate()
    rc = proc.wait(timeout=give_up_s)
    if rc != 0:
        raise SystemExit(f"FAIL: exited {rc} on SIGTERM: {proc.stderr.read()}")


class Scratch:
    """A test's temporary directory holding a mesh authority (`shoal mesh init`, in ROOT/mesh),
    and the processes the test started: on leaving, any still running is killed and the
    directory removed, whether the test passed or not."""

    def __init__(self, shoal, prefix):
        self.shoal, self.prefix, self.procs = shoal, prefix, []

    def __enter__(self):
        self.root = tempfile.mkdtemp(prefix=self.prefix)
        self.mesh = os.path.join(self.root, "mesh")
        run(self.shoal, "mesh", "init", "--dir", self.mesh)
        return self

    def track(self, proc):
        self.procs.append(proc)
        return proc

    def __exit__(self, *exc):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(self.root, ignore_errors=True)
        return False
