#!/usr/bin/env python3
"""RNS 1.5.7 side of grid-bench's LAN convergence measurement.

  py_lan.py DIR      start Reticulum with only an AutoInterface, announce a destination,
                     print {"destination": hex}; then read one JSON line with every
                     node's destination, ask for paths to the ones not yet known (every
                     2 s), and print {"done": unix_time} once all are known.
"""
import json
import os
import sys
import time

import RNS


def main():
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config"), "w") as f:
        f.write("[reticulum]\n  enable_transport = No\n  share_instance = No\n\n[logging]\n  loglevel = 1\n\n"
                "[interfaces]\n  [[auto]]\n    type = AutoInterface\n    enabled = yes\n")
    RNS.Reticulum(configdir=d, loglevel=1)
    dest = RNS.Destination(RNS.Identity(), RNS.Destination.IN, RNS.Destination.SINGLE, "bench", "lan")
    dest.announce()
    print(json.dumps({"destination": dest.hash.hex()}), flush=True)
    others = [bytes.fromhex(h) for h in json.loads(sys.stdin.readline()) if h != dest.hash.hex()]
    asked = {}
    deadline = time.time() + 90
    while True:
        missing = [o for o in others if RNS.Identity.recall(o) is None]
        if not missing:
            break
        if time.time() > deadline:
            print(json.dumps({"done": None, "missing": len(missing)}), flush=True)
            os._exit(1)
        now = time.time()
        for o in missing:
            if now - asked.get(o, 0) >= 2:
                RNS.Transport.request_path(o)
                asked[o] = now
        time.sleep(0.02)
    print(json.dumps({"done": time.time()}), flush=True)
    sys.stdin.readline()
    os._exit(0)


if __name__ == "__main__":
    main()
