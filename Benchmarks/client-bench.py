#!/usr/bin/env python3
"""What each client library costs: the Swift VMMClient (`faultring consume`),
libfaultring-client (C), the Rust crate and the Python package, each
consuming and answering everything from the same `faultring serve` load.

For every load and repetition the clients run one after another against a
fresh service (A B C D A B C D ...), so a slow phase of the VM hits them
alike. Reported per client: groups/s answered and records/s consumed
(medians, with the range), and the consumer process's CPU time per group
answered (user + system, from wait4), which is the library's cost
independent of how fast the service produces.

Usage: client-bench.py FAULTRING_BIN   (Benchmarks/client-bench.sh builds
everything in release mode and calls this).
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".build/release/faultring")
SECONDS = float(os.environ.get("SECONDS_PER_RUN", "4"))
REPS = int(os.environ.get("REPS", "3"))
DEVICES = ["1", "2", "3", "4"]
# Groups per second per device: one load the service cannot reach (the
# clients' ceiling is then the service's), and one all of them sustain.
LOADS = [int(x) for x in os.environ.get("LOADS", "250000,10000").split(",")]


def clients(path):
    return {
        "Swift VMMClient": [BIN, "consume", "--socket-path", path, "--devices", *DEVICES, "--format", "virtio",
                            "--no-reinject", "--seconds", str(SECONDS), "--quiet", "--json"],
        "C (libfaultring-client)": [os.path.join(ROOT, "clients/c/build/bench"), path, str(SECONDS), "2", *DEVICES],
        "Rust (faultring crate)": [os.path.join(ROOT, "clients/rust/faultring/target/release/examples/bench"),
                                   "--socket-path", path, "--devices", *DEVICES, "--seconds", str(SECONDS)],
        "Python (faultring_client)": [sys.executable, os.path.join(ROOT, "clients/python/bench.py"),
                                      "--socket-path", path, "--devices", *DEVICES, "--seconds", str(SECONDS)],
    }


def wait_socket(path, proc):
    for _ in range(400):
        if proc.poll() is not None:
            raise SystemExit(f"faultring serve exited with {proc.returncode}")
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.connect(path)
            s.close()
            return
        except OSError:
            time.sleep(0.025)
    raise SystemExit(f"no service at {path}")


def run_one(argv, path, load):
    serve = subprocess.Popen([BIN, "serve", "--socket-path", path, "--devices", str(len(DEVICES)),
                              "--rate", str(load), "--log-level", "error"])
    try:
        wait_socket(path, serve)
        client = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(client.pid, 0)
        out = client.stdout.read()
        err = client.stderr.read()
        client.returncode = os.waitstatus_to_exitcode(status)
        if client.returncode != 0:
            raise SystemExit(f"{argv[0]} exited {client.returncode}: {err.strip()}")
        result = json.loads(out.strip().splitlines()[-1])
        cpu = usage.ru_utime + usage.ru_stime
        return result["groups"] / result["seconds"], result["records"] / result["seconds"], cpu / max(result["groups"], 1)
    finally:
        serve.terminate()
        serve.wait()


def summary(values, fmt):
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}–{fmt.format(max(values))}]"


def main():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.sock")
        names = list(clients(path))
        missing = [n for n, argv in clients(path).items() if not os.path.exists(argv[0]) and argv[0] != sys.executable]
        if missing:
            raise SystemExit(f"not built: {missing}")
        print(f"{SECONDS:g} s per run, {REPS} interleaved repetitions, 4 devices, ABI 2, "
              f"service {os.path.relpath(BIN, ROOT)}")
        print()
        print("| offered load | client | groups/s answered | records/s consumed | consumer CPU per group |")
        print("|---|---|---|---|---|")
        for load in LOADS:
            results = {n: [] for n in names}
            for _ in range(REPS):
                for name, argv in clients(path).items():
                    results[name].append(run_one(argv, path, load))
            for name in names:
                groups = [r[0] for r in results[name]]
                records = [r[1] for r in results[name]]
                cpu_us = [r[2] * 1e6 for r in results[name]]
                print(f"| {4 * load:,}/s | {name} | {summary(groups, '{:,.0f}')} | {summary(records, '{:,.0f}')} | "
                      f"{summary(cpu_us, '{:.2f}')} µs |")


if __name__ == "__main__":
    main()
