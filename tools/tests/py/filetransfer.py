"""The Python twin of grid/examples/filetransfer.rs: RNS's Examples/Filetransfer.py flow
with rns 1.5.7 (app `example_utilities`, aspects `filetransfer.server`; the server sends
the file list as a msgpack link packet, the client asks for a file by name, the server
sends it as a resource), without the interactive menu.

Usage: filetransfer.py --config DIR --serve FILES       (prints its destination hash first)
       filetransfer.py --config DIR HASH --save TO [--file NAME]
"""

import argparse
import os
import sys
import threading
import time

import RNS
import RNS.vendor.umsgpack as umsgpack

APP_NAME = "example_utilities"


def serve(config, files):
    RNS.Reticulum(config)
    identity = RNS.Identity()
    server = RNS.Destination(identity, RNS.Destination.IN, RNS.Destination.SINGLE, APP_NAME, "filetransfer", "server")

    def list_files():
        return sorted(f for f in os.listdir(files) if os.path.isfile(os.path.join(files, f)))

    def client_connected(link):
        def client_request(message, packet):
            name = message.decode("utf-8")
            if name in list_files():
                path = os.path.join(files, name)
                print(f"Sending {name} ({os.path.getsize(path)} bytes)", flush=True)
                # As Filetransfer.py: the open file, which RNS sends in segments.
                RNS.Resource(open(path, "rb"), link)
            else:
                print(f"Client asked for an unknown file {name!r}", flush=True)

        link.set_packet_callback(client_request)
        RNS.Packet(link, umsgpack.packb(list_files())).send()
        print("Client connected, sent the file list", flush=True)

    server.set_link_established_callback(client_connected)
    print(RNS.hexrep(server.hash, delimit=False), flush=True)
    server.announce()
    while True:
        time.sleep(1)


def fetch(config, hexhash, save, wanted):
    RNS.Reticulum(config)
    dest_hash = bytes.fromhex(hexhash)
    if not RNS.Transport.has_path(dest_hash):
        RNS.Transport.request_path(dest_hash)
        deadline = time.time() + 30
        while not RNS.Transport.has_path(dest_hash) and time.time() < deadline:
            time.sleep(0.1)
    server_identity = RNS.Identity.recall(dest_hash)
    server = RNS.Destination(server_identity, RNS.Destination.OUT, RNS.Destination.SINGLE, APP_NAME, "filetransfer", "server")
    done = threading.Event()
    state = {}

    def filelist_received(message, packet):
        names = umsgpack.unpackb(message)
        print("Files on the server: " + ", ".join(names), flush=True)
        name = wanted if wanted else names[0]
        state["name"] = name
        RNS.Packet(packet.link, name.encode("utf-8")).send()

    def download_concluded(resource):
        if resource.status == RNS.Resource.COMPLETE:
            data = resource.data.read()
            os.makedirs(save, exist_ok=True)
            with open(os.path.join(save, os.path.basename(state["name"])), "wb") as f:
                f.write(data)
            print(f"Saved {state['name']} ({len(data)} bytes)", flush=True)
            state["ok"] = True
        done.set()

    def link_established(link):
        link.set_packet_callback(filelist_received)

    link = RNS.Link(server, established_callback=link_established)
    link.set_resource_strategy(RNS.Link.ACCEPT_ALL)
    link.set_resource_concluded_callback(download_concluded)
    done.wait(120)
    link.teardown()
    sys.exit(0 if state.get("ok") else 1)


p = argparse.ArgumentParser()
p.add_argument("--config", required=True)
p.add_argument("--serve")
p.add_argument("--save")
p.add_argument("--file")
p.add_argument("destination", nargs="?")
a = p.parse_args()
if a.serve:
    serve(a.config, a.serve)
else:
    fetch(a.config, a.destination, a.save, a.file)
