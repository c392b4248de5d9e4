#!/usr/bin/env python3
"""Writes the scenario fixtures in this directory (format: Docs/FIXTURES.md).

Each scenario's expected outcome is written down from the rules in
DESIGN.md, not captured from a run: replay must reproduce it.
Run: python3 Fixtures/generate.py  (then faultring replay Fixtures/*.json)
"""
import json, os

HERE = os.path.dirname(os.path.abspath(__file__))


def page(t, dev, prgi, pasid=None, last=True, perm="r", addr=0x1000, private=None):
    e = {"t": t, "type": "page", "device": dev, "prgi": prgi, "perm": perm, "addr": hex(addr), "last": last}
    if pasid is not None:
        e["pasid"] = pasid
    if private is not None:
        e["private"] = [hex(private[0]), hex(private[1])]
    return e


def write(name, description, devices, consumer, events, groups, auto=None, rejections=None, service=None, **extra):
    expected = {"groups": [{"event": i, "code": c, "source": s} for i, c, s in groups],
                "auto": auto or {}, "rejections": rejections or {}}
    expected.update(extra)
    doc = {"faultringFixture": 1, "name": name, "description": description}
    if service:
        doc["service"] = service
    doc.update({"devices": devices, "consumer": consumer, "events": events, "expected": expected})
    with open(os.path.join(HERE, name + ".json"), "w") as f:
        f.write("{\n")
        keys = list(doc)
        for k in keys:
            if k == "events":
                f.write('  "events": [\n' + ",\n".join("    " + json.dumps(e) for e in events) + "\n  ]")
            else:
                f.write("  " + json.dumps(k) + ": " + json.dumps(doc[k]))
            f.write(",\n" if k != keys[-1] else "\n")
        f.write("}\n")


def dev(i, pasids=(), needs=True, private=False, name=None):
    return {"id": i, "name": name or f"0000:0{i}:00.0", "pasids": list(pasids), "allocation": 256,
            "needsPasid": needs, "privateData": private}


# 1. Steady vSVA traffic: two devices, three PASIDs each, one-page groups.
events, groups = [], []
for n in range(60):
    d = 1 + n % 2
    events.append(page(n * 100, d, prgi=n % 32, pasid=10 * d + n % 3, addr=0x10000 + n * 0x1000))
    groups.append((n, "success", "consumer"))
write("steady-vsva", "two devices, three PASIDs each, steady one-page groups answered SUCCESS",
      [dev(1, [10, 11, 12]), dev(2, [20, 21, 22])], {"abi": 2, "policy": "success"}, events, groups)

# 2. Multi-page groups, interleaved between two devices.
events, groups = [], []
t = 0
for g in range(20):
    for d in (1, 2):
        size = 1 + (g + d) % 4
        for p in range(size):
            events.append(page(t, d, prgi=g, pasid=d, last=p == size - 1, addr=0x40000 + (g * 8 + p) * 0x1000))
            t += 10
            if p == size - 1:
                groups.append((len(events) - 1, "success", "consumer"))
write("multi-page-groups", "groups of 1-4 pages on two devices, interleaved; each delivered whole, answered once",
      [dev(1, [1]), dev(2, [2])], {"abi": 2, "policy": "success"}, events, groups)

# 3. Partial groups never closed: no answer is owed for them; the rest flows.
events, groups = [], []
for n in range(10):
    events.append(page(n * 50, 1, prgi=100 + n, pasid=1, last=False, addr=0x80000 + n * 0x1000))  # never closed
    events.append(page(n * 50 + 25, 1, prgi=n, pasid=1, addr=0x90000 + n * 0x1000))
    groups.append((len(events) - 1, "success", "consumer"))
write("partial-groups-never-closed", "a device opens ten groups it never closes; they get no answer, the others do",
      [dev(1, [1])], {"abi": 2, "policy": "success"}, events, groups)

# 4. PRGI reuse by a misbehaving device: the same PRGI again while outstanding.
events = [page(0, 1, prgi=5, pasid=1, addr=0x1000), page(100, 1, prgi=5, pasid=1, addr=0x2000),
          page(200, 1, prgi=5, pasid=1, addr=0x3000)]
write("prgi-reuse", "PRGI 5 reused while its group is outstanding; ABI 2 cookies keep the groups apart, each answered once",
      [dev(1, [1])], {"abi": 2, "policy": "success", "delayMicroseconds": 20000}, events,
      [(0, "success", "consumer"), (1, "success", "consumer"), (2, "success", "consumer")])

# 5. NEEDS_PASID mismatch: the consumer first answers with a wrong PASID.
events = [page(n * 100, 1, prgi=n, pasid=7, addr=0x1000 * (n + 1)) for n in range(12)]
write("needs-pasid-mismatch", "every answer is preceded by one with the wrong PASID: rejected as mismatch, the right one completes",
      [dev(1, [7], needs=True)], {"abi": 2, "policy": "success", "mismatchEvery": 1}, events,
      [(n, "success", "consumer") for n in range(12)], rejections={"mismatch": 12})

# 6. Private data echo (VT-d <= 3.x devices): each group carries private data the answer must echo.
events = [page(n * 100, 1, prgi=n, pasid=3, addr=0x1000 * (n + 1), private=(0xFEED0000 + n, 0xC0DE0000_00000000 + n))
          for n in range(16)]
write("private-data-echo", "groups carry 128-bit private data; the service echoes its own copy to the device",
      [dev(1, [3], private=True)], {"abi": 2, "policy": "success"}, events, [(n, "success", "consumer") for n in range(16)])

# 7. Stop markers: last, no read/write, with PASID: no answer.
events, groups = [], []
for n in range(8):
    events.append(page(n * 100, 1, prgi=n, pasid=4, addr=0x1000 * (n + 1)))
    groups.append((len(events) - 1, "success", "consumer"))
    events.append({"t": n * 100 + 50, "type": "stop", "device": 1, "pasid": 4})
write("stop-markers", "a stop marker after each group; stop markers are owed no answer",
      [dev(1, [4])], {"abi": 2, "policy": "success"}, events, groups)

# 8. Overflow under a storm: a 64-entry ring, a consumer that starts late, 200 groups and 10 faults at once.
events = [page(0, 1, prgi=n % 512, pasid=1, addr=0x100000 + n * 0x1000) for n in range(200)]
events += [{"t": 0, "type": "fault", "device": 1, "reason": 6, "pasid": 1, "perm": "w", "addr": hex(0x900000 + n * 0x1000)}
           for n in range(10)]
groups = [(n, "success", "consumer") for n in range(64)] + [(n, "invalid", "overflow") for n in range(64, 200)]
write("overflow-storm", "200 one-page groups and 10 faults at once into a 64-entry ring: 64 delivered, 136 answered INVALID at once, the faults dropped and counted",
      [dev(1, [1])], {"abi": 2, "policy": "success", "startDelayMicroseconds": 300000}, events, groups,
      auto={"overflow": 136}, service={"entries": 64, "cookieTable": 1024}, lostRecords=10, faultsDelivered=0)

# 9. Stale, duplicate and unknown answers.
events = [page(n * 2000, 1, prgi=n % 64, pasid=2, addr=0x1000 * (n + 1)) for n in range(40)]
write("stale-duplicate-unknown", "every 4th answer sent twice (duplicate), every 5th preceded by a never-issued cookie (unknown), every 10th by a cookie answered more than a cookie table ago (stale)",
      [dev(1, [2])], {"abi": 2, "policy": "success", "duplicateEvery": 4, "unknownEvery": 5, "staleEvery": 10},
      events, [(n, "success", "consumer") for n in range(40)],
      rejections={"duplicate": 10, "unknown": 8, "stale": 4}, service={"cookieTable": 8, "pace": "recorded"})

# 9b. Foreign answers: device 2 is attached on a second connection; every 3rd of its groups is
# first answered on the first connection, where it is foreign.
events = [page(n * 2000, 1 + n % 2, prgi=n % 64, pasid=1 + n % 2, addr=0x1000 * (n + 1)) for n in range(24)]
write("foreign-answers", "device 2 sits on a second connection; every 3rd of its groups is first answered on the first connection (foreign_device), then correctly on its own",
      [dev(1, [1]), dev(2, [2])], {"abi": 2, "policy": "success", "foreignEvery": 3}, events,
      [(n, "success", "consumer") for n in range(24)], rejections={"foreign_device": 4}, service={"pace": "recorded"})

# 10. A consumer killed mid-stream: answers 5 groups, dies on the 6th.
events = [page(n * 50000, 1, prgi=n, pasid=1, addr=0x1000 * (n + 1)) for n in range(10)]
groups = [(n, "success", "consumer") for n in range(5)] + [(5, "invalid", "detach")] + \
         [(n, "invalid", "no_consumer") for n in range(6, 10)]
write("consumer-killed", "the consumer answers five groups and is killed (SIGKILL) on the sixth: that group is answered INVALID on detach, later ones INVALID at once (no consumer)",
      [dev(1, [1])], {"abi": 2, "policy": "success", "crashAfterGroups": 5}, events, groups,
      auto={"detach": 1, "no_consumer": 4}, service={"pace": "recorded"})

# 11. Timeouts: a consumer that never answers.
events = [page(n * 100, 1, prgi=n, pasid=1, addr=0x1000 * (n + 1)) for n in range(6)]
write("timeouts", "the consumer never answers; every group is answered INVALID when its 50 ms timeout passes",
      [dev(1, [1])], {"abi": 2, "policy": "never"}, events, [(n, "invalid", "timeout") for n in range(6)],
      auto={"timeout": 6}, service={"timeoutMicroseconds": 50000})

# 12. SMMUv3 stall events: raw 32-byte event records; stalled ones are page requests.
def smmu_event(t, eid, sid, ssid, stag, stall, read, addr):
    dw0 = eid | (1 << 11) | (ssid << 12) | (sid << 32)
    dw1 = stag | ((1 << 31) if stall else 0) | ((1 << 35) if read else 0)
    return {"t": t, "type": "smmuv3-event", "device": 1, "hex": " ".join(hex(w) for w in (dw0, dw1, addr, 0))}
events = [smmu_event(n * 100, 0x13 if n % 2 else 0x10, 0x12, 5, 0x20 + n, n % 3 != 2, n % 2 == 0, 0x40001000 + n * 0x1000)
          for n in range(12)]
groups = [(n, "success", "consumer") for n in range(12) if n % 3 != 2]
write("smmuv3-stall", "raw SMMUv3 event records: stalled translation/permission faults become page requests (STAG as the group index), the others unrecoverable faults",
      [dev(1, [5])], {"abi": 2, "policy": "success"}, events, groups, faultsDelivered=4)

# 13. VT-d 3 descriptors (Linux <= 6.9): private data in the request, echoed in the response. A request
#     with private data and no LPIG is owed its own response (Linux marked it LAST_PAGE).
def vtd_prq(t, prgi, lpig, private=None, addr=0x1000, pasid=7, rid=0x0100):
    qw0 = 1 | (1 << 8) | ((1 << 9) if private else 0) | (rid << 16) | (pasid << 32)
    qw1 = 1 | ((1 << 2) if lpig else 0) | (prgi << 3) | addr
    words = (qw0, qw1) + (tuple(private) if private else (0, 0))
    return {"t": t, "type": "vtd-prq", "device": 1, "hex": " ".join(hex(w) for w in words)}
events = [vtd_prq(n * 100, n, True, (0xA000 + n, 0xB000 + n), 0x10000 + n * 0x1000) for n in range(6)]
events.append(vtd_prq(600, 10, False, (0xC0DE, 0xFACE), 0x20000))
events += [vtd_prq(700, 11, False, None, 0x30000), vtd_prq(800, 11, True, None, 0x31000)]
write("vtd3-private-data", "raw VT-d 3 page request descriptors read as Linux <= 6.9 did: private data is echoed, and a request with private data but no LPIG is a group of its own",
      [dev(1, [7], private=True)], {"abi": 2, "policy": "success"}, events,
      [(n, "success", "consumer") for n in (0, 1, 2, 3, 4, 5, 6, 8)], service={"decoding": "linux-6.9"})

print("wrote fixtures to", HERE)
