"""The node registry file (``[[nodes]] node_id, spot, key``) and its HTTP API.

``fogpark-node provision --fog URL`` registers a node here; an installer
retires one when a sensor is replaced. Changes are written to the registry
file atomically (temporary file, fsync, rename) *before* the running fog
accepts frames from the new node, so a restart keeps them. Keys are never
returned by the API. Admin calls need ``Authorization: Bearer <[api].admin_token>``.
"""

from __future__ import annotations

import hmac
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from fog.config import NodeEntry
from fog.http_errors import http_error

if TYPE_CHECKING:
    from fog.daemon import FogDaemon

NODES_DAEMON: web.AppKey[FogDaemon] = web.AppKey("nodes_daemon")
_KEY = re.compile(r"^[0-9a-fA-F]{32}$")


def write_registry(path: Path, nodes: dict[int, NodeEntry]) -> None:
    """The whole registry, atomically: a crash leaves the old file or the new one."""
    lines = ["# FogPark node registry: which sensor node watches which spot, with its 128-bit key.",
             "# Written by the fog's node API (fogpark-node provision --fog URL); keep it secret.", ""]
    for n in sorted(nodes.values(), key=lambda e: e.node_id):
        lines += ["[[nodes]]", f"node_id = 0x{n.node_id:08X}", f'spot = "{n.spot}"', f'key = "{n.key.hex()}"', ""]
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w") as f:
        f.write("\n".join(lines))
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def _admin(request: web.Request) -> FogDaemon:
    daemon = request.app[NODES_DAEMON]
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {daemon.cfg.admin_token}".encode()):
        raise http_error(401, "an admin token is required (Authorization: Bearer ...)", "header.Authorization")
    if daemon.cfg.nodes_file is None:
        raise http_error(503, "this fog has no node registry file ([fog].nodes)", "config.fog.nodes")
    return daemon


def _public(n: NodeEntry, daemon: FogDaemon) -> dict[str, Any]:
    spot = daemon.engine.state.spots.get(n.spot)
    return {"node_id": n.node_id, "node_hex": f"{n.node_id:08x}", "spot": n.spot,
            "last_seen_ms": spot.last_seen_ms if spot else None, "battery_mv": spot.battery_mv if spot else None}


async def list_nodes(request: web.Request) -> web.Response:
    daemon = request.app[NODES_DAEMON]
    return web.json_response([_public(n, daemon) for n in sorted(daemon.cfg.nodes.values(), key=lambda e: e.node_id)])


async def register_node(request: web.Request) -> web.Response:
    daemon = _admin(request)
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise http_error(400, "the body is not JSON", "body") from None
    if not isinstance(body, dict):
        raise http_error(400, "the body must be a JSON object", "body")
    node_id, spot, key = body.get("node_id"), body.get("spot"), body.get("key")
    if isinstance(node_id, bool) or not isinstance(node_id, int) or not 1 <= node_id <= 0xFFFFFFFF:
        raise http_error(400, "node_id must be an integer 1..2^32-1", "body.node_id")
    if not isinstance(spot, str) or spot not in daemon.engine.state.spots:
        raise http_error(400, f"spot {spot!r} is not a spot of lot {daemon.cfg.lot.id!r}", "body.spot")
    if not isinstance(key, str) or not _KEY.match(key):
        raise http_error(400, "key must be 32 hexadecimal characters (AES-128)", "body.key")
    nodes = daemon.cfg.nodes
    if node_id in nodes:
        raise http_error(409, f"node {node_id:#010x} is already registered (retire it first)", "body.node_id")
    holder = next((n for n in nodes.values() if n.spot == spot), None)
    if holder is not None:
        raise http_error(409, f"spot {spot} is watched by node {holder.node_id:#010x} (retire it first)", "body.spot")
    entry = NodeEntry(node_id, spot, bytes.fromhex(key))
    assert daemon.cfg.nodes_file is not None
    write_registry(daemon.cfg.nodes_file, {**nodes, node_id: entry})  # durable before it counts
    nodes[node_id] = entry  # shared with the admission: frames from it are accepted from now on
    daemon.engine.state.spots[spot].node_id = node_id
    return web.json_response(_public(entry, daemon), status=201)


async def retire_node(request: web.Request) -> web.Response:
    daemon = _admin(request)
    raw = request.match_info["node_id"]
    try:
        node_id = int(raw, 0)
    except ValueError:
        raise http_error(400, f"node id {raw!r} is not a number (decimal or 0x hex)", "path.node_id") from None
    nodes = daemon.cfg.nodes
    entry = nodes.get(node_id)
    if entry is None:
        raise http_error(404, f"node {node_id:#010x} is not registered", "path.node_id")
    remaining = {k: v for k, v in nodes.items() if k != node_id}
    assert daemon.cfg.nodes_file is not None
    write_registry(daemon.cfg.nodes_file, remaining)
    del nodes[node_id]
    daemon.engine.state.spots[entry.spot].node_id = None
    return web.json_response({"retired": node_id, "spot": entry.spot})


def add_routes(app: web.Application, daemon: FogDaemon) -> None:
    app[NODES_DAEMON] = daemon
    app.router.add_get("/v1/nodes", list_nodes)
    app.router.add_post("/v1/nodes", register_node)
    app.router.add_delete("/v1/nodes/{node_id}", retire_node)
