"""What the MCP server's tools and resources do, without MCP: search an index, re-index.

:class:`SearchService` opens an index folder (``Index``) or a Milvus collection
(``MilvusStore``) with the model the index records, answers searches with the records
``llamaembed search --json`` prints, and re-indexes files under the folders it was given
(``roots``) and nowhere else. A folder index is reloaded when another writer committed
since it was read, and the service's own re-index holds the folder's writer lock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..embedder import Embedder
from ..errors import AgentRequestError
from ..hub.spec import open_recorded
from ..store import manifest as disk
from ..store.folder import IndexFolder
from ..store.ingest import indexed_files, ingest_files
from ..store.progress import BuildProgress
from ..store.search import Hit
from ..store.selection import FileRules
from ..store.tiers import answering_folder

__all__ = ["IndexReport", "SearchService"]


@dataclass(frozen=True)
class IndexReport:
    """What one re-index did."""

    files: int
    added_files: int
    passages_added: int
    unchanged_files: int
    removed_files: int
    excluded_files: int
    passages: int


class SearchService:
    """An open index (folder or Milvus) with its model, searched and re-indexed safely."""

    def __init__(
        self,
        *,
        db: str | os.PathLike[str] | None = None,
        store: str | None = None,
        roots: Sequence[str | os.PathLike[str]] = (),
        reranker: Embedder | str | None = None,
        n_gpu_layers: int = 0,
        wait: float = 600.0,
        rules: FileRules | None = None,
    ) -> None:
        if (db is None) == (store is None):
            raise AgentRequestError("serve one index: --db FOLDER or --store URI")
        self.roots = [Path(r).resolve() for r in roots]
        for root in self.roots:
            if not root.is_dir():
                raise AgentRequestError(f"--root {root} is not a folder")
        self.reranker = reranker
        self.wait = wait
        self.rules = rules or FileRules()
        self._lock = threading.RLock()
        self.folder: Path | None = None
        self.uri: str | None = None
        self._target: IndexFolder | None = None
        # the fast tier's folder and model, opened while it answers (store.tiers)
        self._fast: IndexFolder | None = None
        self.note = ""
        if db is not None:
            self.folder = Path(db).resolve()
            record = disk.recorded_model(self.folder)
            if record is None:
                raise AgentRequestError(
                    f"no index at {self.folder}; build one with `llamaembed index`"
                )
            self.embedder = open_recorded(record, n_gpu_layers)
            self._target = IndexFolder(self.folder, self.embedder, wait=wait, create=False)
            self._n_gpu_layers = n_gpu_layers
            self.index: Any = self._fresh()
        else:
            from ..store.milvus import MilvusStore
            from ..store.milvus_schema import parse_store

            uri, collection = parse_store(str(store))
            record = MilvusStore.recorded_model(uri, collection)
            if record is None:
                raise AgentRequestError(f"no collection {collection} at {uri}")
            self.uri = str(store)
            self.embedder = open_recorded(record, n_gpu_layers)
            self.index = MilvusStore(self.embedder, uri=uri, collection=collection)

    # ----------------------------------------------------------------- reading
    def _fresh(self) -> Any:
        """Return the index, reloaded first if another writer committed since it was read.

        While a run builds the main index and its fast tier is whole, the fast tier answers
        (``store.tiers.answering_folder``); ``note`` says so, or how much a partial main
        index covers.
        """
        with self._lock:
            if self._target is None:
                return self.index
            assert self.folder is not None
            chosen, self.note = answering_folder(self.folder)
            if chosen == self.folder:
                self._close_fast()
                self.index = self._target.current()
                return self.index
            if self._fast is None:
                record = disk.recorded_model(chosen) or {}
                static = open_recorded(record, self._n_gpu_layers)
                self._fast = IndexFolder(chosen, static, wait=self.wait, create=False)
            self.index = self._fast.current()
            return self.index

    def _close_fast(self) -> None:
        if self._fast is not None:
            self._fast.embedder.close()
            self._fast = None

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        filter: Mapping[str, Any] | None = None,
        hybrid: bool = True,
        rerank: bool = False,
    ) -> list[dict[str, Any]]:
        """Return the k best hits as ``llamaembed search --json`` records, best first."""
        from ..cli._render import hit_record

        if not isinstance(query, str) or not query.strip():
            raise AgentRequestError("query must be a non-empty string")
        if not 1 <= k <= 100:
            raise AgentRequestError(f"k must be between 1 and 100, got {k}")
        index = self._fresh()
        ranker = None
        if rerank:
            ranker = self.reranker
            if ranker is None and getattr(index, "colbert", False):
                ranker = "colbert"
            if ranker is None:
                raise AgentRequestError(
                    "rerank needs a reranker: start the server with --rerank MODEL "
                    "(or serve an index that keeps ColBERT vectors)"
                )
        try:
            hits = index.search(
                query, k, filter=dict(filter or {}), hybrid=hybrid, rerank_with=ranker
            )
        except (ValueError, TypeError) as exc:  # a bad filter key or value
            raise AgentRequestError(str(exc)) from exc
        return [hit_record(n, hit, query, ranker) for n, hit in enumerate(hits, start=1)]

    def coverage(self) -> tuple[float, str]:
        """Return the share of its tree the main index holds, and a note if it is partial."""
        self._fresh()
        progress = None
        if self.folder is not None:
            progress = BuildProgress.from_dict(disk.recorded_progress(self.folder))
        return (progress.fraction if progress is not None else 1.0), self.note

    def files(self) -> dict[str, int]:
        """Return each indexed file's path and how many passages it has."""
        return indexed_files(self._fresh())

    def passages(self, source: str) -> list[Hit]:
        """Return one file's passages in file order (empty for a file not indexed)."""
        index = self._fresh()
        hits = [h for h in map(index.get, index.ids_where(source=source)) if h is not None]
        return sorted(hits, key=lambda h: (h.metadata.get("chunk", 0), h.id))

    def related(self, file: str, line: int | None = None, k: int = 5) -> dict[str, Any]:
        """Return the passages most like the one at ``file``:``line``, other files first.

        ``file`` is an indexed file's path (relative paths are taken under the one root);
        the answer is ``{"anchor", "symbol", "hits"}``, hits as ``search --json`` records.
        """
        from ..cli._render import related_record
        from ..errors import SearchIndexError
        from ..store.related import related

        if not 1 <= k <= 100:
            raise AgentRequestError(f"k must be between 1 and 100, got {k}")
        if line is not None and line < 1:
            raise AgentRequestError("line counts from 1")
        path = Path(file).expanduser()
        if not path.is_absolute() and len(self.roots) == 1:
            path = self.roots[0] / path
        try:
            found = related(self._fresh(), str(path.resolve()), line, k)
        except SearchIndexError as exc:
            raise AgentRequestError(str(exc)) from exc
        return related_record(found)

    def describe(self) -> str:
        """Return what the index holds, in a sentence or two (the server's instructions)."""
        files = self.files()
        where = str(self.folder) if self.folder is not None else f"Milvus {self.uri}"
        roots = ", ".join(str(r) for r in self.roots) or "none (the index tool is off)"
        return (
            f"A private, offline semantic search (llamaembed) over {sum(files.values())} "
            f"passages of {len(files)} files, indexed in {where} with the embedding model "
            f"{self.embedder.spec.name}. Use the search tool with a question or identifier "
            "to find the passages (file, line range, heading) that answer it; use related "
            "with a file and line to find code like it (other implementations, its tests); "
            f"read a file's passages as a resource. Folders the index tool may re-index: {roots}."
        )

    # ----------------------------------------------------------------- writing
    def allowed(self, path: str | os.PathLike[str]) -> Path:
        """Return the path resolved, or raise AgentRequestError if it is outside every root."""
        resolved = Path(path).expanduser()
        if not resolved.is_absolute():
            if len(self.roots) != 1:
                raise AgentRequestError(f"give an absolute path (several roots): {path}")
            resolved = self.roots[0] / resolved
        resolved = resolved.resolve()
        if not any(resolved.is_relative_to(root) for root in self.roots):
            raise AgentRequestError(f"{path} is outside the folders this server may index")
        return resolved

    def index_paths(self, paths: Sequence[str]) -> IndexReport:
        """Re-index files under the given paths (inside the roots); return what changed."""
        if not self.roots:
            raise AgentRequestError("indexing is off: start the server with --root FOLDER")
        if not paths:
            raise AgentRequestError("give at least one path")
        wanted = [self.allowed(p) for p in paths]
        missing = [str(p) for p in wanted if not p.exists()]
        if missing:
            raise AgentRequestError(f"no such file or folder: {', '.join(missing)}")
        # a folder's walk follows no link out of it (store.selection), and a file named
        # was resolved inside a root by allowed()
        skip = [self.folder] if self.folder is not None else []
        writing = self._target.writing() if self._target is not None else nullcontext()
        with self._lock, writing:
            index = self._target.current() if self._target is not None else self._fresh()
            report = ingest_files(index, self.embedder, wanted, rules=self.rules, skip=skip)
            if self._target is not None and report.changed:
                self._target.commit()
            total = len(index)
        return IndexReport(
            files=report.indexed_files + report.unchanged_files + len(report.skipped_files),
            added_files=report.indexed_files,
            passages_added=report.chunks,
            unchanged_files=report.unchanged_files,
            removed_files=report.removed_files,
            excluded_files=report.excluded_files,
            passages=total,
        )

    def close(self) -> None:
        """Close the index (a Milvus connection) and the models."""
        if self.uri is not None:
            self.index.close()
        if self.reranker is not None and not isinstance(self.reranker, str):
            self.reranker.close()
        self._close_fast()
        self.embedder.close()
