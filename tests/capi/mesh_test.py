#!/usr/bin/env python3
"""tests/capi/mesh_test.py: the embedded mesh (shoal_mesh.h) against a real shoald, on loopback.

Sets up what an operator would: a mesh authority (`shoal mesh init`), two enrolled devices (the
app's data directory and shoald's, their keys from `shoald --config F --print-device-key`, which
reads the same configuration format the app passes to shoal_mesh_start), shoald started from its
file, and the app's file naming shoald as a hot peer. Then runs shoal_capi_mesh_test (C, linking
libshoal and libshoal_mesh only), which proves convergence both ways, deletes, the typed errors,
stop, close while running (see mesh_test.c). With MESH_APP given, examples/mesh_app.c then runs on
the app's directory and configuration, and its record must reach shoald (read back through the
CLI's --connect). Finally shoald is stopped with SIGTERM and must exit 0.

usage: mesh_test.py SHOAL SHOALD MESH_TEST [MESH_APP]
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile

SHOAL, SHOALD, TEST = sys.argv[1], sys.argv[2], sys.argv[3]
MESH_APP = sys.argv[4] if len(sys.argv) > 4 else None


def run(*args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"FAIL: {' '.join(args)} exited {r.returncode}: {r.stderr}")
    return r.stdout


def write_config(path, data, peers=(), listen="127.0.0.1:0", sock=None):
    text = f'''[node]
data_dir = "{data}"
certificate = "{data}/device.cert"

[mesh]
listen = "{listen}"
discovery = false
ping_interval_ms = 500
'''
    for addr in peers:
        text += f'\n[[mesh.peers]]\naddress = "{addr}"\ntier = "hot"\n'
    if sock:
        text += f'\n[api]\nsocket = "{sock}"\n'
    text += '\n[metrics]\nenabled = false\n'
    with open(path, "w") as f:
        f.write(text)


def enrol(mesh, config, data):
    key = run(SHOALD, "--config", config, "--print-device-key").strip()
    run(SHOAL, "mesh", "enrol", "--mesh", mesh, "--device-key", key, "--role", "member", "--grant", "*:rw",
        "--days", "30", "--out", os.path.join(data, "device.cert"))
    return key


def main():
    root = tempfile.mkdtemp(prefix="shoal-mesh-capi-")
    daemon = None
    try:
        mesh = os.path.join(root, "mesh")
        run(SHOAL, "mesh", "init", "--dir", mesh)

        d_data, d_conf, sock = os.path.join(root, "d"), os.path.join(root, "shoald.toml"), os.path.join(root, "s.sock")
        write_config(d_conf, d_data, sock=sock)
        d_key = enrol(mesh, d_conf, d_data)
        daemon = subprocess.Popen([SHOALD, "--config", d_conf], stdout=subprocess.PIPE, text=True)
        ready = daemon.stdout.readline().split()
        assert ready[:2] == ["shoald:", "ready"], ready
        port = int(dict(f.split("=", 1) for f in ready[2:])["port"])

        a_data, a_conf = os.path.join(root, "app"), os.path.join(root, "app.toml")
        # The app's port is fixed by the OS at start (0); shoald does not dial it: the app dials.
        write_config(a_conf, a_data, peers=[f"127.0.0.1:{port}"])
        enrol(mesh, a_conf, a_data)

        bad = os.path.join(root, "bad.toml")
        with open(bad, "w") as f:
            f.write(f'[node]\ndata_dir = "{a_data}"\ncertificate = "{a_data}/device.cert"\n\n[mesh]\n'
                    'listen = "0.0.0.0:99999"\n')

        r = subprocess.run([TEST, a_data, a_conf, bad, d_conf, sock, "device " + d_key[:16]], text=True,
                           timeout=240)
        if r.returncode != 0:
            raise SystemExit(f"FAIL: {TEST} exited {r.returncode}")

        if MESH_APP:
            # The example: start, write, search, stay 3 s (the mesh pushes the write at once), stop.
            out = run(MESH_APP, a_data, a_conf, "3")
            assert "1. beach.jpg" in out, out
            got = run(SHOAL, "--connect", sock, "get", "photos", "beach.jpg")
            assert "beach.jpg" in got, got
            print("examples/mesh_app.c: its record reached shoald")

        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=30)
        daemon = None
        assert code == 0, f"shoald exited {code} after SIGTERM"
        print("embedded mesh test passed")
    finally:
        if daemon is not None:
            daemon.kill()
            daemon.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
