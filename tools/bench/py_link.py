#!/usr/bin/env python3
"""RNS 1.5.7 link and resource measurements for grid-bench.

  py_link.py responder DIR IFACE [count]   host bench.sink; print its hash; serve forever
                                           (count: keep the number of link DATA packets
                                           received in DIR/received)
  py_link.py establish DIR IFACE DEST N    open N links, print establishment times
  py_link.py rtt DIR IFACE DEST N          N packets on one link, print proof round trips
  py_link.py send DIR IFACE DEST FILE      send FILE as a resource, print time and CPU
  py_link.py request DIR IFACE DEST N      N /ping requests on one link, print round trips
  py_link.py request_rate DIR IFACE DEST SECONDS K
                                           K /ping requests in flight for SECONDS, print count
  py_link.py paced DIR IFACE DEST N RATE   N 64-byte packets on one link, one per TCP write
                                           at RATE/s; print start, then proofs received
  py_link.py files DIR IFACE               host an rncp.receive destination accepting every
                                           resource; print its hash; serve forever
  py_link.py send_files DIR IFACE DEST FILE RUNS
                                           send FILE RUNS times, one after another, to the
                                           rncp.receive DEST as `rncp --no-compress` does
                                           (identified, rncp's metadata, no bz2); print each
                                           run's seconds (resource created to completion
                                           callback, i.e. the last proof) and CPU

IFACE is tcp_server=host:port or tcp_client=host:port.
"""
import json
import os
import sys
import threading
import time

import RNS


def config(d, iface):
    kind, addr = iface.split("=", 1)
    host, port = addr.rsplit(":", 1)
    if kind == "tcp_server":
        i = f"    type = TCPServerInterface\n    listen_ip = {host}\n    listen_port = {port}\n"
    else:
        i = f"    type = TCPClientInterface\n    target_host = {host}\n    target_port = {port}\n"
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config"), "w") as f:
        f.write("[reticulum]\n  enable_transport = No\n  share_instance = No\n\n[logging]\n  loglevel = 1\n\n"
                f"[interfaces]\n  [[i]]\n{i}    enabled = yes\n")
    RNS.Reticulum(configdir=d, loglevel=1)


def out(**kw):
    print(json.dumps(kw), flush=True)


def outbound(dest_hex, aspects=("bench", "sink")):
    d = bytes.fromhex(dest_hex)
    deadline = time.time() + 30
    # The path table can be updated a moment before the identity is remembered. Ask
    # rarely: path responses are announces, and a new interface hearing more than a few
    # a second holds them back (ingress control).
    next_request = 0
    while RNS.Identity.recall(d) is None and time.time() < deadline:
        if not RNS.Transport.has_path(d) and time.time() >= next_request:
            RNS.Transport.request_path(d)
            next_request = time.time() + 3
        time.sleep(0.05)
    ident = RNS.Identity.recall(d)
    if ident is None:
        raise SystemExit(f"no path to {dest_hex}")
    return RNS.Destination(ident, RNS.Destination.OUT, RNS.Destination.SINGLE, *aspects)


def open_link(dest):
    ev = threading.Event()
    t0 = time.perf_counter()
    link = RNS.Link(dest, established_callback=lambda l: ev.set())
    if not ev.wait(15):
        raise SystemExit("link not established")
    return link, time.perf_counter() - t0


def serve(dest):
    out(destination=dest.hash.hex())
    # A transport node in FULL mode does not forward path requests for destinations
    # it has not heard, and an announce sent while the TCP connection is still coming
    # up can be lost: announce again a little later (rarely: RNS rate-limits).
    dest.announce()
    time.sleep(1)
    dest.announce()
    while True:
        time.sleep(3600)


def send_files(dest, path, runs):
    link, _ = open_link(dest)
    link.identify(RNS.Identity())
    seconds, cpu, ok = [], [], True
    for _ in range(runs):
        done = threading.Event()
        c0 = time.process_time()
        t0 = time.perf_counter()
        res = RNS.Resource(open(path, "rb"), link,
                           metadata={"name": os.path.basename(path).encode("utf-8")},
                           callback=lambda r: done.set(), auto_compress=False)
        done.wait(600)
        seconds.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        ok = ok and res.status == RNS.Resource.COMPLETE
        time.sleep(0.2)
    out(seconds=seconds, cpu=cpu, ok=ok)
    link.teardown()
    os._exit(0)


def main():
    role, d, iface = sys.argv[1], sys.argv[2], sys.argv[3]
    config(d, iface)
    if role == "files":
        dest = RNS.Destination(RNS.Identity(), RNS.Destination.IN, RNS.Destination.SINGLE, "rncp", "receive")

        def concluded(resource):
            # rncp would move the file into place; the transfer itself is over by now.
            if resource.status == RNS.Resource.COMPLETE and hasattr(resource.data, "name"):
                try:
                    os.unlink(resource.data.name)
                except OSError:
                    pass

        def accepting(link):
            link.set_resource_strategy(RNS.Link.ACCEPT_ALL)
            link.set_resource_concluded_callback(concluded)

        dest.set_link_established_callback(accepting)
        serve(dest)
    if role == "send_files":
        send_files(outbound(sys.argv[4], ("rncp", "receive")), sys.argv[5], int(sys.argv[6]))
    if role == "responder":
        ident = RNS.Identity()
        dest = RNS.Destination(ident, RNS.Destination.IN, RNS.Destination.SINGLE, "bench", "sink")
        dest.set_proof_strategy(RNS.Destination.PROVE_ALL)

        def established(link):
            link.set_resource_strategy(RNS.Link.ACCEPT_ALL)

        dest.set_link_established_callback(established)
        dest.register_request_handler(
            "/ping",
            response_generator=lambda path, data, request_id, link_id, remote_identity, requested_at: b"pong",
            allow=RNS.Destination.ALLOW_ALL)
        if sys.argv[4:5] == ["count"]:
            count_received(d)
        serve(dest)
    dest = outbound(sys.argv[4])
    if role == "establish":
        times = []
        for _ in range(int(sys.argv[5])):
            link, t = open_link(dest)
            times.append(t)
            link.teardown()
            time.sleep(0.05)
        out(seconds=times)
    elif role == "rtt":
        link, _ = open_link(dest)
        times = []
        for _ in range(int(sys.argv[5])):
            ev = threading.Event()
            t0 = time.perf_counter()
            r = RNS.Packet(link, b"x" * 16).send()
            r.set_timeout(10)
            r.set_delivery_callback(lambda r: ev.set())
            if r.status == RNS.PacketReceipt.DELIVERED:
                ev.set()
            ev.wait(10)
            times.append(time.perf_counter() - t0)
        link.teardown()
        out(seconds=times)
    elif role == "request":
        link, _ = open_link(dest)
        times = []
        for _ in range(int(sys.argv[5])):
            ev = threading.Event()
            t0 = time.perf_counter()
            link.request("/ping", b"x", response_callback=lambda r: ev.set(),
                         failed_callback=lambda r: ev.set(), timeout=10)
            ev.wait(10)
            times.append(time.perf_counter() - t0)
        link.teardown()
        out(seconds=times)
    elif role == "request_rate":
        link, _ = open_link(dest)
        seconds, k = float(sys.argv[5]), int(sys.argv[6])
        lock = threading.Lock()
        done = [0]
        end = time.perf_counter() + seconds
        slots = threading.Semaphore(k)

        def finished(_r):
            with lock:
                done[0] += 1
            slots.release()

        t0 = time.perf_counter()
        while time.perf_counter() < end:
            if slots.acquire(timeout=0.5):
                link.request("/ping", b"x", response_callback=finished,
                             failed_callback=lambda r: slots.release(), timeout=10)
        elapsed = time.perf_counter() - t0
        out(count=done[0], seconds=elapsed)
        link.teardown()
    elif role == "send":
        link, _ = open_link(dest)
        ev = threading.Event()
        c0 = time.process_time()
        t0 = time.perf_counter()
        res = RNS.Resource(open(sys.argv[5], "rb"), link, callback=lambda r: ev.set())
        ev.wait(3600)
        t = time.perf_counter() - t0
        out(seconds=t, cpu=time.process_time() - c0, ok=res.status == RNS.Resource.COMPLETE)
        link.teardown()
    elif role == "paced":
        paced(dest, int(sys.argv[5]), float(sys.argv[6]))
    os._exit(0)


def count_received(d):
    """Count link DATA packets as they arrive at Transport.inbound, and write the count
    to DIR/received every 100 ms."""
    received = [0]
    inbound = RNS.Transport.inbound

    def counting(raw, interface=None):
        # DATA to a LINK destination: packet type 0, destination type 3 (flags bits 2-3).
        if len(raw) > 2 and raw[0] & 0x0F == 0x0C:
            received[0] += 1
        return inbound(raw, interface)

    RNS.Transport.inbound = counting

    def write():
        while True:
            with open(os.path.join(d, "received.tmp"), "w") as f:
                f.write(str(received[0]))
            os.replace(os.path.join(d, "received.tmp"), os.path.join(d, "received"))
            time.sleep(0.1)

    threading.Thread(target=write, daemon=True).start()


def paced(dest, n, rate):
    """Send n link DATA packets (64 random bytes each) written one HDLC frame per TCP
    write at `rate` per second, and count the proofs the responder sends back.

    The packets are built (encrypted) by RNS beforehand, so that Python's own cost of
    building them does not limit the rate; they are then written straight to the TCP
    interface's socket. Proofs are counted as they arrive at Transport.inbound.
    """
    import socket
    from RNS.Interfaces.TCPInterface import HDLC
    proofs = [0]
    inbound = RNS.Transport.inbound

    def counting(raw, interface=None):
        if len(raw) > 2 and raw[0] & 0x03 == RNS.Packet.PROOF:
            proofs[0] += 1
        return inbound(raw, interface)

    RNS.Transport.inbound = counting
    link, _ = open_link(dest)
    time.sleep(0.5)
    frames = []
    for _ in range(n):
        p = RNS.Packet(link, os.urandom(64))
        p.pack()
        frames.append(bytes([HDLC.FLAG]) + HDLC.escape(p.raw) + bytes([HDLC.FLAG]))
    iface = next(i for i in RNS.Transport.interfaces if hasattr(i, "socket") and i.socket)
    sock = iface.socket
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out(phase="start")
    t0 = time.perf_counter()
    for i, f in enumerate(frames):
        due = t0 + i / rate
        while True:
            ahead = due - time.perf_counter()
            if ahead <= 0:
                break
            if ahead > 0.0003:
                time.sleep(ahead - 0.0002)
        sock.sendall(f)
    send_s = time.perf_counter() - t0
    # Wait for the proofs still under way (until none arrive for 2 s).
    last, quiet = -1, time.perf_counter()
    while time.perf_counter() - quiet < 2 and proofs[0] < n:
        if proofs[0] != last:
            last, quiet = proofs[0], time.perf_counter()
        time.sleep(0.05)
    out(sent=n, proofs=proofs[0], send_seconds=send_s)
    link.teardown()


if __name__ == "__main__":
    main()
