"""tests/mesh/proc_util.py: what the process-level tests in tests/mesh share: running a program and
polling for a condition. The polling bound only decides when to give up, never what passes."""
import subprocess
import time

GIVE_UP_S = 60


def run(*args, check=True):
    """Runs a program to completion; with check, a non-zero exit fails the test with its output."""
    r = subprocess.run(args, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"FAIL: {' '.join(args)} exited {r.returncode}: {r.stdout} {r.stderr}")
    return r


def wait_for(what, cond, give_up_s=GIVE_UP_S, poll_s=0.05):
    """Polls cond() until it holds; fails the test naming `what` after give_up_s."""
    deadline = time.monotonic() + give_up_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(poll_s)
    raise SystemExit(f"FAIL: gave up after {give_up_s} s waiting for: {what}")
