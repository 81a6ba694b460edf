"""``llamaembed mcp``: the search service behind the official MCP SDK (stdio or HTTP).

Tools: ``search`` (structured hits plus a short text rendering), ``related`` (passages
like the one at a file's line, other files first) and ``index`` (re-index paths under
the server's roots). Resources: one per indexed file (``file://`` URI), whose
contents are its passages with their line ranges. The server's instructions say what
the index holds. Every refused argument is a tool error (``isError``), never a crash.
Needs the ``[mcp]`` extra (the ``mcp`` package, 2.x): import this module only after
checking that it is installed, as the CLI does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, Resource, TextContent
from pydantic import BaseModel, Field

from ..errors import LlamaEmbedError
from .service import SearchService

__all__ = ["RelatedResult", "SearchHit", "SearchResult", "build_server", "render_text"]


class SnippetLines(BaseModel):
    """The lines of a passage that matched best."""

    text: str
    line_start: int | None = None
    line_end: int | None = None


class SearchHit(BaseModel):
    """One hit, as ``llamaembed search --json`` prints it (without the whole text)."""

    rank: int
    source: str | None
    line_start: int | None
    line_end: int | None
    heading: str | None
    score: float
    similarity: float | None
    relevance: float | None
    snippet: SnippetLines


class SearchResult(BaseModel):
    """What the search tool returns: the query and its hits, best first."""

    query: str
    hits: list[SearchHit]
    indexed_fraction: float = Field(
        default=1.0,
        description="share of the chosen files the index holds: below 1 while a run "
        "is still indexing (or was stopped before the end)",
    )
    note: str = Field(default="", description="what the answer does not cover, if anything")


class RelatedResult(BaseModel):
    """What the related tool returns: the passage asked about and those most like it."""

    anchor: str = Field(description="FILE:FIRST-LAST of the passage asked about")
    symbol: str = Field(description="its symbol path, when the file was cut by syntax")
    hits: list[SearchHit]


class IndexResult(BaseModel):
    """What the index tool did."""

    files: int = Field(description="files the paths name or their ignore rules choose")
    added_files: int = Field(description="files (re-)embedded: new or changed")
    passages_added: int
    unchanged_files: int
    removed_files: int = Field(description="files gone from disk whose passages were removed")
    excluded_files: int = Field(
        description="files under the paths now left out by the ignore rules (passages removed)"
    )
    passages: int = Field(description="passages in the index now")


def render_text(result: SearchResult) -> str:
    """Return the hits as short text, for clients that show text only."""
    lines = [f"Note: {result.note}."] if result.note else []
    if not result.hits:
        return "\n".join([*lines, f"No passages found for {result.query!r}."])
    for hit in result.hits:
        where = hit.source or "?"
        if hit.line_start is not None:
            where += f":{hit.line_start}-{hit.line_end}"
        heading = f" · {hit.heading}" if hit.heading else ""
        cosine = f" · cosine {hit.similarity:.2f}" if hit.similarity is not None else ""
        lines.append(f"[{hit.rank}] {where}{cosine}{heading}")
        lines += [f"    {line}" for line in hit.snippet.text.splitlines()]
    return "\n".join(lines)


def _passages_text(hits: Iterable[Any]) -> str:
    parts = []
    for hit in hits:
        meta = hit.metadata
        span = f"lines {meta.get('line_start')}-{meta.get('line_end')}"
        heading = f" · {meta['heading']}" if meta.get("heading") else ""
        parts.append(f"--- {span}{heading}\n{hit.text}")
    return "\n\n".join(parts)


def build_server(service: SearchService) -> Any:
    """Return an MCP server (``mcp.server.mcpserver.MCPServer``) over the service."""
    from .. import __version__

    class IndexServer(MCPServer):
        """MCPServer whose resources are the index's files, as they are now."""

        async def list_resources(self) -> list[Resource]:
            return [
                Resource(
                    uri=f"file://{source}",
                    name=source,
                    description=f"{count} indexed passages of {source}",
                    mime_type="text/plain",
                )
                for source, count in service.files().items()
            ]

        async def read_resource(self, uri: Any, context: Any = None) -> Any:
            text = str(uri)
            if text.startswith("file://"):
                source = text[len("file://") :]
                hits = service.passages(source)
                if hits:
                    return [
                        ReadResourceContents(content=_passages_text(hits), mime_type="text/plain")
                    ]
            return await super().read_resource(uri, context)

    server = IndexServer(
        name="llamaembed",
        title="llamaembed search",
        version=__version__,
        instructions=service.describe(),
    )

    @server.tool(
        description=(
            "Search the indexed files by meaning and keywords. Returns the passages that "
            "best answer the query: file, line range, heading, scores and the lines that "
            "matched best."
        )
    )
    def search(
        query: Annotated[str, Field(description="a question, a phrase or an identifier")],
        k: Annotated[int, Field(description="how many hits", ge=1, le=100)] = 5,
        filter: Annotated[
            dict[str, str | int | float | bool] | None,
            Field(
                description="keep passages whose metadata equals every value, e.g. "
                '{"source": "/path/file.md"}'
            ),
        ] = None,
        hybrid: Annotated[bool, Field(description="add keyword matches (default)")] = True,
        rerank: Annotated[
            bool, Field(description="rescore with the server's reranker (--rerank)")
        ] = False,
    ) -> Annotated[CallToolResult, SearchResult]:
        try:
            records = service.search(query, k, filter=filter, hybrid=hybrid, rerank=rerank)
        except LlamaEmbedError as exc:
            raise ToolError(str(exc)) from exc
        fraction, note = service.coverage()
        result = SearchResult(
            query=query,
            hits=[SearchHit.model_validate(r) for r in records],
            indexed_fraction=fraction,
            note=note,
        )
        return CallToolResult(
            content=[TextContent(type="text", text=render_text(result))],
            structured_content=result.model_dump(mode="json"),
        )

    _add_related_tool(server, service)

    @server.tool(
        description=(
            "Re-index files under the given paths (files or folders inside the folders the "
            "server was started with): new and changed files are embedded, unchanged ones "
            "skipped, deleted ones removed. Folders are read as the server's rules say "
            "(.gitignore and .llamaembedignore honoured, hidden files skipped, unless the "
            "server was started otherwise)."
        )
    )
    def index(
        paths: Annotated[list[str], Field(description="files or folders to re-index")],
    ) -> IndexResult:
        try:
            report = service.index_paths(paths)
        except (LlamaEmbedError, OSError) as exc:
            raise ToolError(str(exc)) from exc
        return IndexResult(**vars(report))

    return server


def _add_related_tool(server: Any, service: SearchService) -> None:
    """Register the ``related`` tool: passages like the one at a file's line."""

    @server.tool(
        description=(
            "Find the code most like the definition at a file's line: other implementations "
            "of the same interface, its tests, code doing the same thing elsewhere. Other "
            "files come first."
        )
    )
    def related(
        file: Annotated[str, Field(description="an indexed file's path")],
        line: Annotated[
            int | None, Field(description="a line inside the definition (default: the first)")
        ] = None,
        k: Annotated[int, Field(description="how many hits", ge=1, le=100)] = 5,
    ) -> Annotated[CallToolResult, RelatedResult]:
        try:
            found = service.related(file, line, k)
        except LlamaEmbedError as exc:
            raise ToolError(str(exc)) from exc
        result = RelatedResult(
            anchor=found["anchor"],
            symbol=found["symbol"],
            hits=[SearchHit.model_validate(r) for r in found["hits"]],
        )
        text = render_text(SearchResult(query=f"like {result.anchor}", hits=result.hits))
        return CallToolResult(
            content=[TextContent(type="text", text=f"like {result.anchor}:\n{text}")],
            structured_content=result.model_dump(mode="json"),
        )
