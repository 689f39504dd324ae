#!/usr/bin/env python3
"""Start RNS 1.5.7 with one UDP interface and announce a destination, for grid-bench.

argv: config_dir listen_port forward_port
"""
import os
import sys
import time

import RNS

cfg, listen, forward = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(cfg, exist_ok=True)
with open(os.path.join(cfg, "config"), "w") as f:
    f.write(
        "[reticulum]\n  enable_transport = No\n  share_instance = No\n\n[logging]\n  loglevel = 1\n\n"
        "[interfaces]\n  [[udp]]\n    type = UDPInterface\n    enabled = yes\n"
        f"    listen_ip = 127.0.0.1\n    listen_port = {listen}\n"
        f"    forward_ip = 127.0.0.1\n    forward_port = {forward}\n"
    )
RNS.Reticulum(configdir=cfg, loglevel=1)
d = RNS.Destination(RNS.Identity(), RNS.Destination.IN, RNS.Destination.SINGLE, "bench", "startup")
d.announce()
time.sleep(30)
