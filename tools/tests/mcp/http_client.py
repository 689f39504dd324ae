"""The Python `mcp` SDK over streamable HTTP against `grid mcp --http`.

Usage: http_client.py URL. Prints one JSON object: with the 2025-11-25 handshake
(`initialize`), the tools' names, the resources' URIs, the status resource's destination
and a tool call's result; then with the stateless 2026-07-28 revision (`server/discover`,
no session), the versions offered and a tool call's result.
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def main(url):
    out = {}
    async with streamable_http_client(url) as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            out["protocol"] = init.protocol_version
            out["tools"] = sorted(t.name for t in (await session.list_tools()).tools)
            out["resources"] = sorted(str(r.uri) for r in (await session.list_resources()).resources)
            status = await session.read_resource("grid://node/status")
            out["status_destination"] = json.loads(status.contents[0].text)["destination"]
            r = await session.call_tool("emit", {"event": "mcp:http", "payload": 1})
            out["emit"] = {"is_error": bool(r.is_error), "text": r.content[0].text}
    async with streamable_http_client(url) as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            d = await session.discover()
            out["modern_versions"] = list(d.supported_versions)
            r = await session.call_tool("status", {})
            out["modern_status"] = json.loads(r.content[0].text)["destination"]
    print(json.dumps(out))


asyncio.run(main(sys.argv[1]))
