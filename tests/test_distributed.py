"""The Parquet handoff, the actor class, Index.from_parquet and ShardedIndex, without Ray.

Every model here is real llama.cpp inference on a tiny built encoder; the Ray cluster
tier is tests/test_ray.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tiny_models import build_tiny_bert

from llamaembed import (
    DatasetError,
    Index,
    IndexModelMismatchError,
    Llama,
    PoolingError,
    SearchIndexError,
    ShardedIndex,
    StaticModel,
    convert,
)
from llamaembed.distributed.parquet import (
    EMBEDDING_COLUMN,
    content_ids,
    embedding_matrix,
    parquet_files,
    read_info,
)
from llamaembed.distributed.ray import EmbedBatch
from llamaembed.hub.spec import as_model_spec
from llamaembed.static.distill import distill
from llamaembed.store.sharded import shard_folder, shard_of

WORDS = "cat dog bird fish the a sat ran on under mat tree house river hello world".split()


def corpus(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 12)))) for _ in range(n)]


@pytest.fixture(scope="module")
def tiny(tiny_encoder_path: Path) -> Llama:
    with Llama(tiny_encoder_path) as model:
        yield model


@pytest.fixture(scope="module")
def other_encoder_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = build_tiny_bert(tmp_path_factory.mktemp("other-encoder"), seed=7)
    return convert(folder, folder / "other.gguf", outtype="f32", name="other")


@pytest.fixture(scope="module")
def embedded(tiny_encoder_path: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """600 texts embedded by EmbedBatch in three batches, written as three Parquet files."""
    texts = corpus(600)
    actor = EmbedBatch(as_model_spec(str(tiny_encoder_path)), n_threads=2)
    folder = tmp_path_factory.mktemp("embedded")
    for part in range(3):
        rows = range(part * 200, (part + 1) * 200)
        batch = pa.table(
            {
                "id": [f"doc-{i}" for i in rows],
                "text": [texts[i] for i in rows],
                "topic": ["even" if i % 2 == 0 else "odd" for i in rows],
                "n": list(rows),
            }
        )
        pq.write_table(actor(batch), folder / f"part-{part}.parquet")
    actor.close()
    return folder, texts


# ----------------------------------------------------------------------------- actor class
def test_actor_embeds_and_carries_ids(tiny: Llama, tiny_encoder_path: Path) -> None:
    texts = corpus(50, seed=3)
    actor = EmbedBatch(
        as_model_spec(str(tiny_encoder_path)), text_column="body", id_column="key", n_threads=1
    )
    assert actor.model.params.n_threads == 1  # the actor's own thread count, not the host's
    table = pa.table({"key": [f"k{i}" for i in range(50)], "body": texts, "x": list(range(50))})
    out = actor(table)
    actor.close()
    assert out.column_names == ["key", "body", "x", EMBEDDING_COLUMN]
    field = out.schema.field(EMBEDDING_COLUMN)
    assert field.type == pa.list_(pa.float32(), tiny.n_embd)  # FixedSizeList<float32>[n_embd]
    assert out.column("key").to_pylist() == [f"k{i}" for i in range(50)]
    got = embedding_matrix(out.column(EMBEDDING_COLUMN), tiny.n_embd)
    want = tiny.embed_texts(texts)
    assert float(np.min(np.sum(got * want, axis=1))) >= 0.99999
    meta = {k.decode(): v.decode() for k, v in out.schema.metadata.items()}
    assert meta["llamaembed.fingerprint"] == tiny.fingerprint
    assert meta["llamaembed.dim"] == str(tiny.n_embd)
    assert meta["llamaembed.id_column"] == "key"
    assert meta["llamaembed.text_column"] == "body"


def test_actor_takes_a_dict_of_columns(tiny_encoder_path: Path) -> None:
    actor = EmbedBatch(as_model_spec(str(tiny_encoder_path)))
    out = actor(
        {"text": np.array(["hello world", "the cat"], dtype=object), "id": np.array([1, 2])}
    )
    actor.close()
    assert out.column("id").to_pylist() == [1, 2]
    assert out.num_rows == 2


def test_actor_makes_content_ids_when_there_is_no_id_column(tiny_encoder_path: Path) -> None:
    texts = ["the cat sat", "a dog ran", "the cat sat"]
    actor = EmbedBatch(as_model_spec(str(tiny_encoder_path)))
    out = actor(pa.table({"text": texts}))
    actor.close()
    ids = out.column("id").to_pylist()
    assert ids == [hashlib.blake2b(t.encode(), digest_size=8).hexdigest() for t in texts]
    assert ids == content_ids(texts)
    assert ids[0] == ids[2] != ids[1]


def test_actor_runs_a_static_model(tiny_encoder_path: Path, tmp_path: Path) -> None:
    folder = distill(tiny_encoder_path, tmp_path / "static", dims=16)
    texts = corpus(40, seed=5)
    actor = EmbedBatch(as_model_spec(str(folder)), n_threads=1)
    out = actor(pa.table({"id": list(range(40)), "text": texts}))
    actor.close()
    got = embedding_matrix(out.column(EMBEDDING_COLUMN), 16)
    want = StaticModel(folder).embed_texts(texts)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_actor_rejects_bad_input_with_our_errors(
    tiny_encoder_path: Path, tiny_reranker_path: Path
) -> None:
    actor = EmbedBatch(as_model_spec(str(tiny_encoder_path)))
    with pytest.raises(DatasetError, match="no 'text' column"):
        actor(pa.table({"body": ["x"]}))
    with pytest.raises(DatasetError, match=r"null.*'b'"):
        actor(pa.table({"id": ["a", "b"], "text": ["fine", None]}))
    with pytest.raises(DatasetError, match="not strings"):
        actor(pa.table({"text": [1, 2]}))
    with pytest.raises(DatasetError, match="already has an 'embedding'"):
        actor(pa.table({"text": ["x"], "embedding": [1.0]}))
    with pytest.raises(DatasetError, match="no 'key' id column"):
        EmbedBatch(as_model_spec(str(tiny_encoder_path)), id_column="key")(
            pa.table({"text": ["x"]})
        )
    actor.close()
    with pytest.raises(PoolingError, match="cross-encoder"):
        EmbedBatch(as_model_spec(str(tiny_reranker_path)))


# ----------------------------------------------------------------------------- Parquet
def test_parquet_metadata_round_trips(embedded, tiny: Llama) -> None:  # type: ignore[no-untyped-def]
    folder, _ = embedded
    files = parquet_files(folder)
    assert [f.name for f in files] == ["part-0.parquet", "part-1.parquet", "part-2.parquet"]
    info = read_info(files[0])
    assert (info.fingerprint, info.dim, info.rows) == (tiny.fingerprint, tiny.n_embd, 200)
    assert (info.id_column, info.text_column) == ("id", "text")
    assert info.model_record["params"]["model_path"] == str(tiny.model_path)
    # Plain Arrow: readable without llamaembed or Ray.
    table = pq.read_table(files[0])
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), tiny.n_embd)


def test_foreign_parquet_is_refused(tmp_path: Path, tiny: Llama) -> None:
    pq.write_table(pa.table({"id": ["a"], "text": ["x"]}), tmp_path / "plain.parquet")
    with pytest.raises(DatasetError, match="not written by llamaembed"):
        Index.from_parquet(tmp_path, tiny)
    (tmp_path / "plain.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DatasetError, match="not a readable Parquet"):
        Index.from_parquet(tmp_path / "plain.parquet", tiny)
    with pytest.raises(DatasetError, match="does not exist"):
        Index.from_parquet(tmp_path / "nowhere", tiny)


def test_from_parquet_search_equals_add_search(embedded, tiny: Llama) -> None:  # type: ignore[no-untyped-def]
    folder, texts = embedded
    built = Index.from_parquet(folder, tiny)
    added = Index(tiny)
    for part in range(3):  # the same three batches the Parquet files were embedded in
        rows = range(part * 200, (part + 1) * 200)
        added.add(
            [texts[i] for i in rows],
            [{"topic": "even" if i % 2 == 0 else "odd", "n": i} for i in rows],
            [f"doc-{i}" for i in rows],
        )
    assert len(built) == len(added) == 600
    assert built.get("doc-7") == added.get("doc-7")
    for query in ["the cat sat on the mat", "river house", "hello dog"]:
        for hybrid in (False, True):
            a = built.search(query, 10, hybrid=hybrid)
            b = added.search(query, 10, hybrid=hybrid)
            assert [h.id for h in a] == [h.id for h in b]
            np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-6)
        filtered = built.search(query, 5, filter={"topic": "odd"}, hybrid=False)
        assert filtered and all(h.metadata["n"] % 2 == 1 for h in filtered)


def test_parquet_from_another_model_is_refused(embedded, other_encoder_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder, _ = embedded
    with Llama(other_encoder_path) as other:
        with pytest.raises(IndexModelMismatchError, match="embedded with another model"):
            Index.from_parquet(folder, other)


def test_later_rows_replace_earlier_ones_with_the_same_id(
    tmp_path: Path, tiny_encoder_path: Path, tiny: Llama
) -> None:
    actor = EmbedBatch(as_model_spec(str(tiny_encoder_path)))
    table = actor(pa.table({"id": ["a", "b", "a"], "text": ["one", "two", "three"]}))
    actor.close()
    pq.write_table(table, tmp_path / "x.parquet")
    index = Index.from_parquet(tmp_path, tiny)
    assert len(index) == 2
    assert index.get("a").text == "three"


# ----------------------------------------------------------------------------- shards
def test_shard_of_is_a_stable_partition() -> None:
    ids = [f"id-{i}" for i in range(3000)]
    shards = shard_of(ids, 3)
    digests = [hashlib.blake2b(i.encode(), digest_size=8).digest() for i in ids]
    assert shards.tolist() == [int.from_bytes(d, "little") % 3 for d in digests]
    assert np.bincount(shards, minlength=3).min() > 900  # about 1000 each
    with pytest.raises(ValueError):
        shard_of(ids, 0)


def test_sharded_index_matches_one_index(embedded, tiny: Llama, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder, _ = embedded
    whole = Index.from_parquet(folder, tiny)
    parts = [Index.from_parquet(folder, tiny, shard=i, num_shards=3) for i in range(3)]
    part_ids = [set(dict(p.iter_metadata())) for p in parts]
    assert sum(len(p) for p in part_ids) == 600
    assert set.union(*part_ids) == set(dict(whole.iter_metadata()))
    ShardedIndex(parts).save(tmp_path / "db")
    sharded = ShardedIndex.load(tmp_path / "db", tiny)
    assert ShardedIndex.is_sharded(tmp_path / "db") and len(sharded) == 600
    assert sharded.get("doc-42") == whole.get("doc-42")
    for query in ["the cat sat on the mat", "river house", "hello dog", "bird"]:
        a = whole.search(query, 10, hybrid=False)  # 600 rows: exact search
        b = sharded.search(query, 10, hybrid=False)
        assert [h.id for h in a] == [h.id for h in b]
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-6)
        even = {"topic": "even"}
        assert [h.id for h in whole.search(query, 5, filter=even, hybrid=False)] == [
            h.id for h in sharded.search(query, 5, filter=even, hybrid=False)
        ]
        hybrid = sharded.search(query, 10)
        assert len(hybrid) == 10 and len({h.id for h in hybrid}) == 10


def test_sharded_index_embeds_queries_with_its_own_model(  # type: ignore[no-untyped-def]
    embedded, tiny: Llama, other_encoder_path: Path, tmp_path: Path
) -> None:
    folder, _ = embedded
    parts = [Index.from_parquet(folder, tiny, shard=i, num_shards=2) for i in range(2)]
    ShardedIndex(parts).save(tmp_path / "db")
    bare = [Index.load(shard_folder(tmp_path / "db", i, 2)) for i in range(2)]
    with pytest.raises(SearchIndexError, match="has no model"):
        ShardedIndex(bare).search("river house", 5)
    expected = [h.id for h in ShardedIndex(parts).search("river house", 5, hybrid=False)]
    assert [h.id for h in ShardedIndex(bare, tiny).search("river house", 5, hybrid=False)] == (
        expected
    )
    assert all(shard.embedder is None for shard in bare)  # the shards are left as they were
    with Llama(other_encoder_path) as other, pytest.raises(IndexModelMismatchError):
        ShardedIndex(bare, other)


def test_sharded_index_refuses_incomplete_or_foreign_shards(  # type: ignore[no-untyped-def]
    embedded, tiny: Llama, other_encoder_path: Path, tmp_path: Path
) -> None:
    folder, _ = embedded
    for i in (0, 2):
        Index.from_parquet(folder, tiny, shard=i, num_shards=3).save(shard_folder(tmp_path, i, 3))
    with pytest.raises(SearchIndexError, match=r"lacks shards \[1\] of 3"):
        ShardedIndex.load(tmp_path)
    with pytest.raises(SearchIndexError, match="no shards"):
        ShardedIndex.load(tmp_path / "empty")
    Index.from_parquet(folder, tiny, shard=1, num_shards=3).save(shard_folder(tmp_path, 1, 3))
    assert len(ShardedIndex.load(tmp_path, tiny)) == 600
    with Llama(other_encoder_path) as other, pytest.raises(IndexModelMismatchError):
        ShardedIndex.load(tmp_path, other)
    with pytest.raises(ValueError, match="both shard and num_shards"):
        Index.from_parquet(folder, tiny, shard=1)
    with pytest.raises(ValueError, match="shard must be in"):
        Index.from_parquet(folder, tiny, shard=3, num_shards=3)
