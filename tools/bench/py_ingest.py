#!/usr/bin/env python3
"""Ingest announces into an in-process RNS 1.5.7 transport, for grid-bench.

Reads length-prefixed (u32 BE) announce packets from a file, feeds each to
RNS.Transport.inbound on a dummy interface with ingress control off, waits until
all are in the path table, and prints JSON with wall/CPU time and RSS growth.
"""
import json
import os
import sys
import tempfile
import time

import RNS
from RNS.Interfaces.Interface import Interface


def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class BenchInterface(Interface):
    def __init__(self):
        super().__init__()
        self.name = "bench"
        self.online = True
        self.IN = True
        self.OUT = False
        self.bitrate = 10_000_000
        self.HW_MTU = 16384
        self.ingress_control = False
        self.ifac_identity = None
        self.ifac_size = 0
        self.mode = Interface.MODE_FULL
        self.announce_rate_target = None

    def process_outgoing(self, data):
        pass

    def __str__(self):
        return "BenchInterface"


def main():
    path = sys.argv[1]
    packets = []
    with open(path, "rb") as f:
        data = f.read()
    i = 0
    while i < len(data):
        n = int.from_bytes(data[i:i + 4], "big")
        packets.append(data[i + 4:i + 4 + n])
        i += 4 + n
    cfg = tempfile.mkdtemp(prefix="grid-bench-rns-")
    with open(os.path.join(cfg, "config"), "w") as f:
        f.write("[reticulum]\n  enable_transport = No\n  share_instance = No\n\n[logging]\n  loglevel = 1\n\n[interfaces]\n")
    RNS.Reticulum(configdir=cfg, loglevel=1)
    iface = BenchInterface()
    RNS.Transport.interfaces.append(iface)
    time.sleep(0.5)
    base = len(RNS.Transport.path_table)
    r0 = rss()
    t0 = time.time()
    c0 = time.process_time()
    queues = RNS.Transport.inbound_queues
    for raw in packets:
        # RNS drops inbound packets when its queue is full (128 announces); feed it with
        # backpressure so every announce is processed.
        while queues is not None and queues.qsize() >= 64:
            time.sleep(0.0002)
        RNS.Transport.inbound(raw, iface)
    deadline = time.time() + 120
    while len(RNS.Transport.path_table) - base < len(packets) and time.time() < deadline:
        time.sleep(0.001)
    t1 = time.time()
    c1 = time.process_time()
    r1 = rss()
    print(json.dumps({
        "announces": len(packets),
        "paths": len(RNS.Transport.path_table) - base,
        "wall_s": t1 - t0,
        "cpu_s": c1 - c0,
        "rss_before": r0,
        "rss_after": r1,
    }))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
