"""llamaembed mcp, driven by the official MCP SDK's client over stdio and streamable HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

from llamaembed.cli import main

mcp = pytest.importorskip("mcp")
from mcp import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters  # noqa: E402

GUIDE = """# Garden guide

## Pruning roses

Cut rose canes back by a third in late winter, just above an outward-facing bud.

## Compost

Turn the compost heap every two weeks; keep it as damp as a wrung-out sponge.
"""
PUMP = "The XK-4471B impeller fits the garden pump; replace it every spring.\n"


@pytest.fixture()
def garden(tmp_path: Path, minilm_f16_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "garden"
    root.mkdir()
    (root / "guide.md").write_text(GUIDE)
    db = tmp_path / "db"
    made = CliRunner().invoke(main, ["index", str(root), "--db", str(db),
                                     "--model", str(minilm_f16_path)])
    assert made.exit_code == 0, made.output
    return root, db


def _server_command(db: Path, root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "llamaembed", "mcp", "--db", str(db), "--root", str(root),
            *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


async def _exercise(client: Client, root: Path, db: Path, tmp_path: Path) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {"search", "index", "related"}
    assert tools["related"].input_schema["required"] == ["file"]
    schema = tools["search"].input_schema
    assert schema["required"] == ["query"]
    assert {"query", "k", "filter", "hybrid", "rerank"} <= set(schema["properties"])
    assert tools["search"].output_schema is not None
    assert tools["index"].input_schema["required"] == ["paths"]

    # search: the same top hits as `llamaembed search --json`
    result = await client.call_tool("search", {"query": "when should I prune roses", "k": 2})
    assert not result.is_error
    hits = result.structured_content["hits"]
    cli = json.loads(CliRunner().invoke(main, ["search", "when should I prune roses", "--db",
                                               str(db), "-k", "2", "--json"]).stdout)
    assert [(h["source"], h["line_start"]) for h in hits] == [
        (c["source"], c["line_start"]) for c in cli]
    for ours, theirs in zip(hits, cli, strict=True):
        assert ours["similarity"] == pytest.approx(theirs["similarity"], abs=1e-5)
        assert ours["snippet"]["text"] == theirs["snippet"]["text"]
    assert hits[0]["heading"] == "Pruning roses"
    text = result.content[0].text
    assert "guide.md:" in text and "Pruning roses" in text

    # resources: one per indexed file, its passages
    resources = (await client.list_resources()).resources
    assert [r.name for r in resources] == [str(root / "guide.md")]
    read = await client.read_resource(str(resources[0].uri))
    assert "Cut rose canes back" in read.contents[0].text and "lines " in read.contents[0].text

    # index: a new file is picked up, ignored ones and links out are not; a path outside
    # the roots is refused
    outside = tmp_path / "secret.md"
    outside.write_text("a secret outside the roots\n")
    (root / "pump.md").write_text(PUMP)
    (root / "drafts").mkdir()
    (root / "drafts" / "draft.md").write_text("an unfinished draft about roses\n")
    (root / ".llamaembedignore").write_text("drafts/\n")
    (root / "link.md").symlink_to(outside)
    done = await client.call_tool("index", {"paths": [str(root)]})
    assert not done.is_error, done.content
    assert done.structured_content["added_files"] == 1
    assert done.structured_content["unchanged_files"] == 1
    found = await client.call_tool("search", {"query": "XK-4471B impeller", "k": 1})
    assert found.structured_content["hits"][0]["source"] == str(root / "pump.md")
    # related: passages like one of the guide's, the other file's first
    like = await client.call_tool("related", {"file": "guide.md", "line": 1, "k": 3})
    assert not like.is_error, like.content
    assert like.structured_content["anchor"].startswith(str(root / "guide.md") + ":1-")
    assert like.structured_content["hits"][0]["source"] == str(root / "pump.md")
    for bad in ({"file": "nowhere.md"}, {"file": "guide.md", "line": 10_000}, {"file": ""}):
        answer = await client.call_tool("related", bad)
        assert answer.is_error, bad
    (root / ".llamaembedignore").write_text("drafts/\npump.md\n")
    done = await client.call_tool("index", {"paths": [str(root)]})
    assert done.structured_content["excluded_files"] == 1
    assert done.structured_content["passages"] == 3  # the guide's, as before the pump
    refused = await client.call_tool("index", {"paths": [str(outside)]})
    assert refused.is_error and "outside" in refused.content[0].text
    sneaky = await client.call_tool("index", {"paths": [str(root / ".." / "secret.md")]})
    assert sneaky.is_error
    everything = await client.call_tool("search", {"query": "secret", "k": 5})
    assert all("secret.md" not in (h["source"] or "")
               for h in everything.structured_content["hits"])

    # bad arguments are tool errors, and the server keeps answering
    for bad in ({"query": ""}, {"query": "roses", "k": 0}, {"query": "roses", "k": "many"},
                {"query": "roses", "filter": {"bad key!": 1}}, {"query": "roses", "rerank": True},
                {}):
        answer = await client.call_tool("search", bad)
        assert answer.is_error, bad
    again = await client.call_tool("search", {"query": "compost", "k": 1})
    assert not again.is_error and again.structured_content["hits"][0]["heading"] == "Compost"


def test_mcp_over_stdio(garden: tuple[Path, Path], tmp_path: Path) -> None:
    root, db = garden
    command = _server_command(db, root)
    params = StdioServerParameters(command=command[0], args=command[1:], env=_env())

    async def run() -> None:
        async with Client(params) as client:
            assert "passages of 1 files" in (client.instructions or "")
            await _exercise(client, root, db, tmp_path)

    anyio.run(run)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_mcp_over_streamable_http(garden: tuple[Path, Path], tmp_path: Path) -> None:
    root, db = garden
    port = _free_port()
    process = subprocess.Popen(_server_command(db, root, "--http", str(port)), env=_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the MCP server did not start"
                time.sleep(0.2)

        async def run() -> None:
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                await _exercise(client, root, db, tmp_path)

        anyio.run(run)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_mcp_refuses_a_missing_index(tmp_path: Path) -> None:
    done = CliRunner().invoke(main, ["mcp", "--db", str(tmp_path / "none")])
    assert done.exit_code == 1 and "no index at" in done.output
