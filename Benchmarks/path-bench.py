#!/usr/bin/env python3
"""The cross-process path benchmark: the same open-loop page-request load
through three placements, side by side in one run.

  (a) device process -> VMM directly, over the kernel fault-fd record
      protocol (what a VMM does today: a read and a write per batch);
  (b) device process -> faultring service -> VMM ring, and back;
  (c) simulated devices inside the service -> VMM ring, and back.

Offered loads are fixed schedules (each group has a scheduled time; latency
is measured from it, so a stalled path is charged for the wait: no
coordinated omission), plus 'saturated' (devices raise as fast as their PRG
indices allow). The VMM either polls (spins) or sleeps. Reported: answered
groups/s, latency percentiles, and the VMM's CPU time per group. Then the
idle service's CPU use.

Usage: Benchmarks/path-bench.sh (builds release first). BENCH_SECONDS (default
3) sets each run's length; BENCH_LOADS (default "10000 100000 1000000 0", 0 =
saturated) the offered loads in groups/s over 4 devices.
"""
import json, os, signal, subprocess, sys, time

BIN = sys.argv[1] if len(sys.argv) > 1 else ".build/release/faultring"
SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
LOADS = [int(x) for x in os.environ.get("BENCH_LOADS", "10000 100000 1000000 0").split()]
DEVICES = ["1", "2", "3", "4"]
TMP = os.environ.get("TMPDIR", "/tmp")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def wait_socket(path, proc):
    for _ in range(400):
        if os.path.exists(path) or proc.poll() is not None:
            return
        time.sleep(0.01)


def stats(path):
    out = subprocess.run([BIN, "stats", "--socket-path", path], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def serve(path, extra):
    proc = subprocess.Popen([BIN, "serve", "--socket-path", path, "--log-level", "error"] + extra)
    wait_socket(path, proc)
    return proc


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def consume_args(path, polling):
    return [BIN, "consume", "--socket-path", path, "--devices", *DEVICES, "--format", "virtio", "--no-reinject",
            "--spins", "100000000" if polling else "2000", "--seconds", str(SECONDS), "--quiet", "--json"]


def placement_a(load, polling):
    path = f"{TMP}/fr-bench-a-{os.getpid()}.sock"
    rate = str(load / len(DEVICES))
    device = subprocess.Popen([BIN, "device", "--listen", path, "--devices", *DEVICES, "--rate", rate,
                               "--seconds", str(SECONDS), "--measure-latency", "--json"],
                              stdout=subprocess.PIPE, text=True)
    wait_socket(path, device)
    vmm = subprocess.run([BIN, "direct-vmm", "--connect", path] + (["--spin"] if polling else []),
                         capture_output=True, text=True)
    report = json.loads(device.communicate(timeout=60)[0])
    v = json.loads(vmm.stdout)
    answered = sum(d["answered"] for d in report["devices"])
    return dict(groups=answered / report["seconds"], latency=report["latency"],
                vmm_cpu_per_group=v["cpuSeconds"] / max(v["groups"], 1))


def placement_b(load, polling):
    path = f"{TMP}/fr-bench-b-{os.getpid()}.sock"
    service = serve(path, ["--devices", "0"] + (["--poll-us", "50"] if polling else []))
    rate = str(load / len(DEVICES))
    device = subprocess.Popen([BIN, "device", "--socket-path", path, "--devices", *DEVICES, "--rate", rate,
                               "--seconds", str(SECONDS), "--measure-latency", "--wait-for-consumer", "--json"],
                              stdout=subprocess.PIPE, text=True)
    for _ in range(400):
        if any(d["id"] == 4 for d in stats(path)["devices"]):
            break
        time.sleep(0.01)
    vmm = subprocess.run(consume_args(path, polling), capture_output=True, text=True)
    report = json.loads(device.communicate(timeout=60)[0])
    stop(service)
    v = json.loads(vmm.stdout)
    answered = sum(d["answersBySource"].get("service", 0) for d in report["devices"])
    return dict(groups=answered / report["seconds"], latency=report["latency"],
                vmm_cpu_per_group=v["cpuSeconds"] / max(v["groups"], 1))


def placement_c(load, polling):
    path = f"{TMP}/fr-bench-c-{os.getpid()}.sock"
    rate = load / len(DEVICES) if load > 0 else 1e9
    # Open loop for a fixed schedule; saturated has no schedule to keep.
    open_loop = ["--open-loop"] if load > 0 else []
    service = serve(path, ["--devices", "4", "--rate", str(rate)] + open_loop + (["--poll-us", "50"] if polling else []))
    vmm = subprocess.run(consume_args(path, polling), capture_output=True, text=True)
    s = stats(path)
    stop(service)
    v = json.loads(vmm.stdout)
    lat = s.get("latency") or {}
    return dict(groups=v["groups"] / v["seconds"],
                latency=dict(p50=lat.get("p50", 0), p99=lat.get("p99", 0), p999=lat.get("p999", 0),
                             max=lat.get("max", 0)),
                vmm_cpu_per_group=v["cpuSeconds"] / max(v["groups"], 1))


def idle_cpu():
    path = f"{TMP}/fr-bench-idle-{os.getpid()}.sock"
    service = serve(path, ["--devices", "4"])
    time.sleep(0.5)
    before = cpu_ticks(service.pid)
    time.sleep(2)
    used = (cpu_ticks(service.pid) - before) / os.sysconf("SC_CLK_TCK")
    stop(service)
    return used / 2


def us(ns):
    return f"{ns / 1000:.1f}"


def main():
    print(f"faultring path benchmark: 4 devices, {SECONDS:g} s per run, {os.cpu_count()} CPUs, binary {BIN}")
    print()
    print("| placement | VMM | offered groups/s | answered groups/s | p50 µs | p99 µs | p99.9 µs | max µs | VMM CPU µs/group |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for load in LOADS:
        for polling in (True, False):
            for name, run in (("(a) device → VMM", placement_a), ("(b) device → service → VMM", placement_b),
                              ("(c) service devices → VMM", placement_c)):
                r = run(load, polling)
                rows.append((name, polling, load, r))
                lat = r["latency"] or {}
                print(f"| {name} | {'polling' if polling else 'sleeping'} | {load if load else 'saturated'} | "
                      f"{r['groups']:.0f} | {us(lat.get('p50', 0))} | {us(lat.get('p99', 0))} | "
                      f"{us(lat.get('p999', 0))} | {us(lat.get('max', 0))} | {r['vmm_cpu_per_group'] * 1e6:.2f} |",
                      flush=True)
    print()
    print(f"idle service: {idle_cpu() * 100:.2f} % of one core (CPU time over 2 s, 4 devices, no client)")
    json.dump([dict(placement=n, polling=p, offered=l, **r) for n, p, l, r in rows],
              open(os.environ.get("BENCH_JSON", f"{TMP}/path-bench.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
