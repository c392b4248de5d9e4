#!/usr/bin/env python3
"""Consume and answer everything a faultring service sends for S seconds.

    python3 bench.py --socket-path /tmp/fr.sock --devices 1 2 3 4 --seconds 5 [--abi 2]

Attaches the devices (ABI 2: one queue for all; ABI 1: one connection and
queue per device, since an ABI 1 queue serves exactly one device), reads
every record, answers every page-request group SUCCESS, and prints one JSON
line: ``{"records": N, "groups": N, "seconds": S}``, where ``records``
counts records read (LOST records included), ``groups`` the groups answered
and ``seconds`` the measured time. ``--verbose`` adds the consumer's and
the producer's counters on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from faultring_client import RESP_SUCCESS, Client, WaitResult  # noqa: E402


def main(argv=None) -> int:
    """Run the benchmark; return the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--socket-path", required=True, help="the service's control socket")
    ap.add_argument("--devices", type=int, nargs="+", required=True, help="device ids to attach")
    ap.add_argument("--seconds", type=float, required=True, help="how long to consume")
    ap.add_argument("--abi", type=int, choices=(1, 2), default=2, help="record ABI (default 2)")
    ap.add_argument("--batch", type=int, default=1024, help="most records read per batch (default 1024)")
    ap.add_argument("--verbose", action="store_true", help="counters on stderr")
    args = ap.parse_args(argv)

    clients, queues = [], []
    try:
        if args.abi == 2:
            client = Client.connect(args.socket_path, client_name="faultring_client bench")
            clients.append(client)
            queues.append(client.attach(2, args.devices))
        else:
            for device in args.devices:
                client = Client.connect(args.socket_path, client_name=f"faultring_client bench {device}")
                clients.append(client)
                queues.append(client.attach(1, [device]))

        records = groups = 0
        batch = args.batch
        single = len(queues) == 1
        start = time.monotonic()
        end = start + args.seconds
        ended = False
        while not ended:
            now = time.monotonic()
            if now >= end:
                break
            idle = True
            for queue in queues:
                got = queue.read(batch)
                if not got:
                    continue
                idle = False
                records += len(got)
                answer = queue.answer
                for rec in got:
                    if rec.is_last_page:
                        answer(rec, RESP_SUCCESS, wait=5.0)
                        groups += 1
                queue.release()
                queue.commit()
            if idle:
                if single:
                    result = queues[0].wait(min(0.05, max(0.0, end - now)))
                    ended = result in (WaitResult.CLOSED, WaitResult.SERVICE_GONE)
                else:
                    for queue in queues:
                        result = queue.wait(0.001)
                        if result in (WaitResult.CLOSED, WaitResult.SERVICE_GONE):
                            ended = True
                        if result == WaitResult.RECORDS:
                            break
        seconds = time.monotonic() - start
        for queue in queues:
            queue.commit()
        print(json.dumps({"records": records, "groups": groups, "seconds": round(seconds, 3)},
                         separators=(",", ":")), flush=True)
        if args.verbose:
            for queue in queues:
                print(json.dumps({"devices": queue.devices, "consumer": queue.counters.as_dict(),
                                  "producer": dict(queue.producer_counters())}), file=sys.stderr)
        return 0
    finally:
        for client in clients:
            client.close()


if __name__ == "__main__":
    sys.exit(main())
