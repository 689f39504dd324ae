"""A real MCP client (the Python `mcp` SDK) driving `grid mcp` over stdio.

Usage: client.py GRID STATE_DIR PEER_HASH. Prints one JSON object: the server's
name, its tools with their schemas' required fields, and the results of the calls
below (text, and whether each was a tool error).
"""

import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def text(result):
    return {
        "is_error": bool(result.is_error),
        "text": "".join(c.text for c in result.content if getattr(c, "type", "") == "text"),
    }


async def main(grid, state, peer):
    params = StdioServerParameters(command=grid, args=["--config", state, "mcp"])
    out = {}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            out["server"] = init.server_info.name
            out["protocol"] = init.protocol_version
            tools = await session.list_tools()
            out["tools"] = {
                t.name: {
                    "description": t.description,
                    "required": sorted(t.input_schema.get("required", [])),
                }
                for t in tools.tools
            }
            calls = {
                "status": ("status", {}),
                "search": ("search_skills", {"query": "when is high tide", "patience": "quick"}),
                "ping": ("exec", {"node": peer, "command": "grid/ping", "params": {}}),
                "bad_node": ("exec", {"node": "00" * 16, "command": "grid/ping", "timeout_s": 2}),
                "bad_hash": ("fetch_adapter", {"content_hash": "xyz"}),
                "emit": ("emit", {"event": "mcp:hello", "payload": {"from": "agent"}}),
                "wait": ("wait_events", {"pattern": "mcp:*", "recent": True, "timeout_s": 2}),
            }
            out["calls"] = {}
            for key, (name, args) in calls.items():
                out["calls"][key] = text(await session.call_tool(name, args))
    print(json.dumps(out))


asyncio.run(main(*sys.argv[1:4]))
