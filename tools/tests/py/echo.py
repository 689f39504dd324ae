"""The Python twin of grid/examples/echo.rs: RNS's Examples/Echo.py flow with rns 1.5.7
(app `example_utilities`, aspects `echo.request`, server proves all packets, client
times each proof), without the interactive prompt.

Usage: echo.py --config DIR --server [--ratchets FILE]
                                                 (prints its destination hash first)
       echo.py --config DIR HASH [--count N]     (exit 0 when every request was proved)
"""

import argparse
import sys
import threading
import time

import RNS

APP_NAME = "example_utilities"


def server(config, ratchets):
    RNS.Reticulum(config)
    identity = RNS.Identity()
    echo = RNS.Destination(identity, RNS.Destination.IN, RNS.Destination.SINGLE, APP_NAME, "echo", "request")
    echo.set_proof_strategy(RNS.Destination.PROVE_ALL)
    if ratchets:
        # Not in Echo.py: packets must be encrypted to the announced ratchet.
        echo.enable_ratchets(ratchets)
        echo.enforce_ratchets()

    def received(message, packet):
        print("Received packet from echo client, proof sent", flush=True)

    echo.set_packet_callback(received)
    print(RNS.hexrep(echo.hash, delimit=False), flush=True)
    echo.announce()
    while True:
        time.sleep(1)


def client(config, destination_hexhash, count):
    reticulum = RNS.Reticulum(config)
    destination_hash = bytes.fromhex(destination_hexhash)
    if not RNS.Transport.has_path(destination_hash):
        RNS.Transport.request_path(destination_hash)
        deadline = time.time() + 30
        while not RNS.Transport.has_path(destination_hash) and time.time() < deadline:
            time.sleep(0.1)
    if not RNS.Transport.has_path(destination_hash):
        print("No path found", flush=True)
        sys.exit(1)
    server_identity = RNS.Identity.recall(destination_hash)
    echo = RNS.Destination(server_identity, RNS.Destination.OUT, RNS.Destination.SINGLE, APP_NAME, "echo", "request")
    proved = 0
    for _ in range(count):
        done = threading.Event()
        result = {}

        def delivered(receipt):
            result["rtt"] = receipt.get_rtt()
            done.set()

        def timed_out(receipt):
            done.set()

        receipt = RNS.Packet(echo, RNS.Identity.get_random_hash()).send()
        receipt.set_timeout(15)
        receipt.set_delivery_callback(delivered)
        receipt.set_timeout_callback(timed_out)
        done.wait(20)
        # A proof that came before the callbacks were set still counts.
        if "rtt" not in result and receipt.status == RNS.PacketReceipt.DELIVERED:
            result["rtt"] = receipt.get_rtt()
        if "rtt" in result:
            proved += 1
            print(f"Valid reply received from {destination_hexhash}, round-trip time is {result['rtt']*1000:.3f} milliseconds", flush=True)
        else:
            print("Probe timed out", flush=True)
    sys.exit(0 if proved == count else 1)


p = argparse.ArgumentParser()
p.add_argument("--config", required=True)
p.add_argument("--server", action="store_true")
p.add_argument("--count", type=int, default=3)
p.add_argument("--ratchets")
p.add_argument("destination", nargs="?")
a = p.parse_args()
if a.server:
    server(a.config, a.ratchets)
else:
    client(a.config, a.destination, a.count)
