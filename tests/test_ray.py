"""The Ray tier: embed_dataset, write_embeddings and the CLI on a real local Ray cluster.

One cluster for the module (``ray.init(num_cpus=2)``, no dashboard). Ray comes with the
``[ray]`` extra, which the README's test set-up installs; where it is absent the module is
skipped, except under CI, where a missing Ray is an error.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("CI"):
    import ray
else:
    ray = pytest.importorskip("ray")

import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner
from texts import stdlib_sentences

from llamaembed import DatasetError, Index, Llama, PoolingError, StaticModel
from llamaembed.cli import main
from llamaembed.distributed.parquet import EMBEDDING_COLUMN, embedding_matrix, read_info
from llamaembed.distributed.ray import embed_dataset, read_dataset, write_embeddings
from llamaembed.static.distill import distill


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return stdlib_sentences(400)


def collect(ds: ray.data.Dataset) -> pa.Table:
    return pa.concat_tables(list(ds.iter_batches(batch_format="pyarrow", batch_size=None)))


def by_id(table: pa.Table, dim: int) -> dict[str, np.ndarray]:
    vectors = embedding_matrix(table.column(EMBEDDING_COLUMN), dim)
    return dict(zip(table.column("id").to_pylist(), vectors, strict=True))


def test_embed_dataset_equals_embed_texts_with_ids(
    minilm: Llama, minilm_f16_path: Path, texts: list[str]
) -> None:
    ds = ray.data.from_items([{"id": f"t{i}", "text": t} for i, t in enumerate(texts)])
    out = collect(embed_dataset(ds, minilm_f16_path, actors=2, batch_size=32))
    ids = out.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == len(texts)  # every row once, whatever the order
    got = by_id(out, minilm.n_embd)
    want = minilm.embed_texts(texts)
    cosines = [float(got[f"t{i}"] @ want[i]) for i in range(len(texts))]
    assert min(cosines) >= 0.99999
    # Each actor ran llama.cpp on the one CPU Ray assigned it, not the host's count.
    record = read_info_from_table(out)
    assert record["params"]["n_threads"] == 1


def read_info_from_table(table: pa.Table) -> dict:  # type: ignore[type-arg]
    return json.loads(table.schema.metadata[b"llamaembed.model_record"])


def test_thread_count_follows_cpus_per_actor(tiny_encoder_path: Path) -> None:
    ds = ray.data.from_items([{"text": f"the cat {i}"} for i in range(20)])
    out = collect(embed_dataset(ds, tiny_encoder_path, cpus_per_actor=2))
    assert read_info_from_table(out)["params"]["n_threads"] == 2
    assert out.num_rows == 20


def test_written_parquet_indexes_like_index_add(
    minilm: Llama, minilm_f16_path: Path, texts: list[str], tmp_path: Path
) -> None:
    rows = [{"id": f"t{i}", "text": t, "kind": i % 3} for i, t in enumerate(texts)]
    embedded = embed_dataset(ray.data.from_items(rows), minilm_f16_path, actors=(1, 2))
    files = write_embeddings(embedded, tmp_path / "out")
    assert files and all(f.parent == tmp_path / "out" for f in files)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # staging gone
    infos = [read_info(f) for f in files]
    assert sum(i.rows for i in infos) == len(texts)
    assert {(i.fingerprint, i.dim, i.model_name) for i in infos} == {
        (minilm.fingerprint, 384, minilm_f16_path.stem)
    }
    built = Index.from_parquet(tmp_path / "out", minilm)
    added = Index(minilm)
    added.add(
        texts, [{"kind": i % 3} for i in range(len(texts))], [f"t{i}" for i in range(len(texts))]
    )
    for query in ["how to open a file", "regular expression matching", "thread lock"]:
        a = built.search(query, 10, hybrid=False)
        b = added.search(query, 10, hybrid=False)
        # The actors batched other rows together than add() did, so vectors agree to the
        # batch-invariance bound (cosine >= 0.99999), not bit for bit: scores to 2e-4.
        assert [h.id for h in a[:5]] == [h.id for h in b[:5]]
        assert {h.id for h in a} == {h.id for h in b}
        scores = {h.id: h.score for h in b}
        np.testing.assert_allclose([h.score for h in a], [scores[h.id] for h in a], atol=2e-4)
        assert {h.id: h.metadata for h in a} == {h.id: h.metadata for h in b}
    with pytest.raises(DatasetError, match="already holds"):
        write_embeddings(embedded, tmp_path / "out")


def test_a_static_model_folder_runs_on_ray(tiny_encoder_path: Path, tmp_path: Path) -> None:
    folder = distill(tiny_encoder_path, tmp_path / "static", dims=16)
    rows = [{"id": i, "text": f"the cat sat on mat number {i}"} for i in range(300)]
    out = collect(embed_dataset(ray.data.from_items(rows), folder))
    got = embedding_matrix(out.column(EMBEDDING_COLUMN), 16)
    want = StaticModel(folder).embed_texts(
        [f"the cat sat on mat number {i}" for i in out.column("id").to_pylist()]
    )
    np.testing.assert_allclose(got, want, atol=1e-6)


def _map_workers() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(b"ray::MapWorker"):
                pids.append(int(entry.name))
    return pids


def test_an_actor_killed_mid_job_is_replaced_and_no_row_is_lost_or_doubled(
    minilm: Llama, minilm_f16_path: Path, texts: list[str]
) -> None:
    many = [texts[i % len(texts)] for i in range(2400)]
    ds = ray.data.from_items([{"id": f"r{i}", "text": t} for i, t in enumerate(many)])
    batches = embed_dataset(ds, minilm_f16_path, batch_size=40).iter_batches(
        batch_format="pyarrow", batch_size=None
    )
    seen: list[pa.Table] = []
    killed: list[int] = []
    for batch in batches:
        seen.append(batch)
        if not killed:  # the job is under way: kill its actor as the OOM killer would
            killed = _map_workers()
            assert killed, "no Ray map worker process found"
            for pid in killed:
                os.kill(pid, signal.SIGKILL)
    assert killed and not set(killed) & set(_map_workers())  # a new actor finished the job
    out = pa.concat_tables(seen)
    ids = out.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == len(many)
    got = by_id(out, minilm.n_embd)
    sample = [0, 1, 777, 1500, 2399]
    want = minilm.embed_texts([many[i] for i in sample])
    assert min(float(got[f"r{i}"] @ w) for i, w in zip(sample, want, strict=True)) >= 0.99999


def test_bad_input_fails_with_our_error(
    tiny_encoder_path: Path, tiny_reranker_path: Path, tmp_path: Path
) -> None:
    ds = ray.data.from_items([{"body": "no text column here"}])
    with pytest.raises(DatasetError, match="no 'text' column"):  # known before running
        embed_dataset(ds, tiny_encoder_path)
    # Found only inside an actor: the job fails, and write_embeddings raises our error.
    nulls = ray.data.from_items([{"id": "a", "text": "fine"}, {"id": "b", "text": None}])
    with pytest.raises(DatasetError, match=r"null\) at id 'b'") as raised:
        write_embeddings(embed_dataset(nulls, tiny_encoder_path), tmp_path / "out")
    assert type(raised.value) is DatasetError  # the actor's error itself, not Ray's wrapper
    assert not list((tmp_path / "out").iterdir())  # nothing half-written is left
    with pytest.raises(PoolingError, match="cross-encoder"):  # refused before any Ray work
        embed_dataset(nulls, tiny_reranker_path)
    with pytest.raises(ValueError, match="min <= max"):
        embed_dataset(nulls, tiny_encoder_path, actors=(3, 2))


# ----------------------------------------------------------------------------- CLI
def test_cli_embeds_files_and_builds_a_sharded_index(
    minilm_f16_path: Path, texts: list[str], tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("\n".join(texts[:150]) + "\n\n", encoding="utf-8")
    more = tmp_path / "more.txt"
    more.write_text("\n".join(texts[150:300]), encoding="utf-8")
    runner = CliRunner()
    out = tmp_path / "embedded"
    result = runner.invoke(
        main,
        [
            "embed-dataset",
            str(notes),
            str(more),
            "-o",
            str(out),
            "-m",
            str(minilm_f16_path),
            "--actors",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "embedded 300 rows" in result.output
    ids = pq.read_table(out, columns=["id"]).column("id").to_pylist()
    assert sorted(ids) == sorted(
        [f"{notes}:{n}" for n in range(1, 151)] + [f"{more}:{n}" for n in range(1, 151)]
    )

    single = tmp_path / "single"
    result = runner.invoke(main, ["index", "--from-parquet", str(out), "--db", str(single)])
    assert result.exit_code == 0, result.output
    sharded = tmp_path / "sharded"
    result = runner.invoke(
        main, ["index", "--from-parquet", str(out), "--db", str(sharded), "--shards", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "300 rows into 3 shards" in result.output
    answers = []
    for db in (single, sharded):
        result = runner.invoke(
            main, ["search", texts[42], "--db", str(db), "--json", "--no-hybrid"]
        )
        assert result.exit_code == 0, result.output
        answers.append([h["id"] for h in json.loads(result.output)])
    assert answers[0] == answers[1] and answers[0][0] == f"{notes}:43"


def test_cli_joins_a_running_cluster_with_address_auto(
    tiny_encoder_path: Path, tmp_path: Path
) -> None:
    # A separate process joins this module's cluster, as a driver joins `ray start --head`.
    (tmp_path / "rows.jsonl").write_text('{"id": "a", "text": "one"}\n{"id": "b", "text": "two"}\n')
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "llamaembed",
            "embed-dataset",
            str(tmp_path / "rows.jsonl"),
            "-o",
            str(out),
            "-m",
            str(tiny_encoder_path),
            "--address",
            "auto",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "RAY_ADDRESS": ""},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "embedded 2 rows" in result.stdout
    assert ray.is_initialized()  # the module's cluster outlived the other driver
    table = pq.read_table(out)
    assert sorted(table.column("id").to_pylist()) == ["a", "b"]


def test_cli_errors_are_clear(tmp_path: Path, tiny_encoder_path: Path) -> None:
    runner = CliRunner()
    (tmp_path / "a.parquet").write_bytes(b"x")
    (tmp_path / "b.txt").write_text("hello\n")
    result = runner.invoke(
        main,
        [
            "embed-dataset",
            str(tmp_path / "a.parquet"),
            str(tmp_path / "b.txt"),
            "-o",
            str(tmp_path / "o"),
            "-m",
            str(tiny_encoder_path),
        ],
    )
    assert result.exit_code == 1 and "Error: the inputs mix parquet and text files" in result.output
    result = runner.invoke(
        main, ["embed-dataset", str(tmp_path / "b.txt"), "-o", str(tmp_path / "o"), "--actors", "x"]
    )
    assert result.exit_code == 2 and "--actors" in result.output
    result = runner.invoke(
        main, ["index", "--from-parquet", str(tmp_path / "a.parquet"), "--db", str(tmp_path / "db")]
    )
    assert (
        result.exit_code == 1
        and "Error:" in result.output
        and "not a readable Parquet" in result.output
    )
    result = runner.invoke(main, ["index", str(tmp_path), "--from-parquet", str(tmp_path)])
    assert result.exit_code == 2 and "not both" in result.output


def test_text_inputs_are_split_so_every_actor_gets_work(tmp_path: Path) -> None:
    lines = [f"line number {i}" for i in range(3000)]
    (tmp_path / "big.txt").write_text("\n".join(lines), encoding="utf-8")
    ds = read_dataset(tmp_path / "big.txt").materialize()
    assert ds.num_blocks() == 3  # 1,024-row blocks: one actor each
    assert sorted(collect(ds).column("text").to_pylist()) == sorted(lines)


def test_read_dataset_reads_json_lines(tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_text('{"id": "a", "text": "one"}\n{"id": "b", "text": "two"}\n')
    table = collect(read_dataset(tmp_path / "rows.jsonl"))
    assert sorted(table.column("id").to_pylist()) == ["a", "b"]


@pytest.mark.parametrize("which", ["tiny_qwen3", "tiny_gemma"])
def test_decoder_model_with_dimensions_through_ray(
    which: str, request: pytest.FixtureRequest, texts: list[str], tmp_path: Path
) -> None:
    # A Qwen3-Embedding (last-token pooling, causal) or an EmbeddingGemma (bidirectional,
    # Dense layers) cut to 16 Matryoshka dimensions: the Parquet handoff records the width,
    # and the index built from it keeps it.
    _, gguf = request.getfixturevalue(which)
    sample = texts[:60]
    ds = ray.data.from_items([{"id": f"t{i}", "text": t} for i, t in enumerate(sample)])
    with pytest.raises(ValueError, match="dimensions must be between 1 and 64"):
        embed_dataset(ds, gguf, dimensions=65)
    files = write_embeddings(embed_dataset(ds, gguf, actors=1, dimensions=16), tmp_path / "out")
    assert read_info(files[0]).dim == 16
    table = pa.concat_tables([pq.read_table(f) for f in files])
    got = by_id(table, 16)
    with Llama(gguf) as model:
        want = model.embed_documents(sample, dimensions=16)
    assert min(float(got[f"t{i}"] @ want[i]) for i in range(len(sample))) >= 0.9999
    db = tmp_path / "db"
    result = CliRunner().invoke(
        main, ["index", "--from-parquet", str(tmp_path / "out"), "--db", str(db)]
    )
    assert result.exit_code == 0, result.output
    with Llama(gguf) as model:
        index = Index.load(db, model)
        assert index.dim == index.dimensions == 16
        hits = index.search(sample[3], k=1, hybrid=False)
        assert hits[0].id == "t3" and hits[0].score == pytest.approx(1.0, abs=1e-3)
    result = CliRunner().invoke(
        main,
        ["index", "--from-parquet", str(tmp_path / "out"), "--db", str(tmp_path / "sh"),
         "--shards", "2"],
    )
    assert result.exit_code == 0, result.output
    from llamaembed.store.sharded import ShardedIndex

    with Llama(gguf) as model:
        sharded = ShardedIndex.load(tmp_path / "sh", model)
        assert sharded.dim == sharded.dimensions == 16
        assert sharded.search(sample[5], k=1, hybrid=False)[0].id == "t5"
