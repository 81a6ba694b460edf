"""Code search end to end on real MiniLM inference: a small repository in Python and Go."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamaembed import Index, Llama
from llamaembed.code.ranking import CodeRanking
from llamaembed.store.ingest import ingest_files

FILES = {
    "shop/pricing.py": '''"""Prices and discounts."""

from decimal import Decimal


class DiscountPolicy:
    """Decides how much a customer saves on an order."""

    def __init__(self, percent: Decimal) -> None:
        self.percent = percent

    def apply(self, total: Decimal) -> Decimal:
        """Return the total after the discount."""
        return total - total * self.percent / 100


def round_price(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))
''',
    "shop/checkout.py": '''"""The checkout flow."""

from .pricing import DiscountPolicy, round_price


def checkout(cart, customer):
    policy = DiscountPolicy(customer.loyalty_percent)
    total = sum(item.price * item.quantity for item in cart)
    return round_price(policy.apply(total))


def receipt_lines(cart):
    return [f"{item.name}: {item.price}" for item in cart]
''',
    "shop/__init__.py": """from .checkout import checkout
from .pricing import DiscountPolicy, round_price

__all__ = ["DiscountPolicy", "checkout", "round_price"]
""",
    "tests/test_pricing.py": """from decimal import Decimal

from shop.pricing import DiscountPolicy


def test_discount_policy_applies_the_percent():
    policy = DiscountPolicy(Decimal("10"))
    assert policy.apply(Decimal("200")) == Decimal("180")


def test_discount_policy_of_zero_keeps_the_total():
    assert DiscountPolicy(Decimal("0")).apply(Decimal("5")) == Decimal("5")
""",
    "inventory/stock.go": """package inventory

// Warehouse keeps the count of each product on the shelves.
type Warehouse struct {
	counts map[string]int
}

// Reserve takes units of a product out of stock for an order.
func (w *Warehouse) Reserve(sku string, units int) error {
	if w.counts[sku] < units {
		return ErrOutOfStock
	}
	w.counts[sku] -= units
	return nil
}

// Restock adds delivered units back to the shelves.
func (w *Warehouse) Restock(sku string, units int) {
	w.counts[sku] += units
}
""",
    "inventory/orders.go": """package inventory

// PlaceOrder reserves every line of an order or none of them.
func PlaceOrder(w *Warehouse, lines map[string]int) error {
	for sku, units := range lines {
		if err := w.Reserve(sku, units); err != nil {
			return err
		}
	}
	return nil
}
""",
}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, minilm: Llama) -> tuple[Path, Index]:
    root = tmp_path_factory.mktemp("repo")
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    index = Index(minilm)
    ingest_files(index, minilm, [root])
    return root, index


def where(root: Path, hit) -> str:  # type: ignore[no-untyped-def]
    return Path(hit.metadata["source"]).relative_to(root).as_posix()


def test_passages_carry_their_symbol_path_kind_and_language(shop: tuple[Path, Index]) -> None:
    root, index = shop
    metas = {doc_id: meta for doc_id, meta in index.iter_metadata()}
    defined = {name for m in metas.values() for name in m.get("defines", ())}
    assert {"DiscountPolicy", "checkout", "Warehouse", "Reserve", "PlaceOrder"} <= defined
    assert "Restock" in {m.get("symbol") for m in metas.values()}  # a symbol path
    go = [m for m in metas.values() if m["source"].endswith("stock.go")]
    assert {m["language"] for m in go} == {"go"}
    reserve = next(m for m in go if "Reserve" in m["defines"])
    lines = (root / "inventory/stock.go").read_text().splitlines()
    # whole lines, the definition with its doc comment inside one passage
    held = "\n".join(lines[reserve["line_start"] - 1 : reserve["line_end"]])
    assert "// Reserve takes units" in held and "\treturn nil\n}" in held
    assert lines[reserve["line_end"] - 1] == "}"
    assert reserve["kind"] in ("type", "function")  # the kind of its first definition


def test_the_definition_beats_its_uses_and_its_tests(shop: tuple[Path, Index]) -> None:
    root, index = shop
    hits = index.search("where is DiscountPolicy defined", 5)
    assert where(root, hits[0]) == "shop/pricing.py"
    assert "DiscountPolicy" in hits[0].metadata["defines"]
    # the same question asked in words finds the class too
    hits = index.search("discount policy class", 5)
    assert where(root, hits[0]) == "shop/pricing.py"
    # without the rules, a test or a use may come first; with them, never above the definition
    plain = index.search("where is DiscountPolicy defined", 5, ranking=None)
    ranked = [where(root, h) for h in index.search("where is DiscountPolicy defined", 5)]
    assert ranked.index("shop/pricing.py") <= [where(root, h) for h in plain].index(
        "shop/pricing.py"
    )


def test_the_implementation_beats_its_test_unless_tests_are_asked_for(
    shop: tuple[Path, Index],
) -> None:
    root, index = shop
    top = [where(root, h) for h in index.search("how is the discount applied to a total", 3)]
    assert top[0] == "shop/pricing.py"
    assert (
        top.index("shop/pricing.py") < top.index("tests/test_pricing.py")
        if ("tests/test_pricing.py" in top)
        else True
    )
    asked = [where(root, h) for h in index.search("tests of the discount policy", 3)]
    assert asked[0] == "tests/test_pricing.py"


def test_two_files_reach_the_top_k(shop: tuple[Path, Index]) -> None:
    root, index = shop
    question = "how does an order reserve stock from the warehouse"
    files = [where(root, h) for h in index.search(question, 3)]
    assert {"inventory/stock.go", "inventory/orders.go"} <= set(files)
    off = [where(root, h) for h in index.search(question, 3, ranking=CodeRanking.off())]
    assert len(set(files)) >= len(set(off))


def test_cli_search_json_shows_the_symbol(shop: tuple[Path, Index], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from llamaembed.cli import main

    root, _ = shop
    db = tmp_path / "db"
    runner = CliRunner()
    result = runner.invoke(main, ["index", str(root), "--db", str(db)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["search", "Restock", "--db", str(db), "--json", "-k", "1"])
    assert result.exit_code == 0, result.output
    (hit,) = json.loads(result.output)
    assert hit["metadata"]["symbol"] == "Restock"
    assert hit["metadata"]["language"] == "go"


STORAGE = {
    "storage/base.py": '''from typing import Protocol


class Storage(Protocol):
    """Where documents are kept."""

    def save(self, key: str, data: bytes) -> None: ...

    def load(self, key: str) -> bytes: ...
''',
    "storage/disk.py": '''import os


class DiskStorage:
    """Keeps each document in a file under a folder."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def save(self, key: str, data: bytes) -> None:
        with open(os.path.join(self.folder, key), "wb") as out:
            out.write(data)

    def load(self, key: str) -> bytes:
        with open(os.path.join(self.folder, key), "rb") as src:
            return src.read()
''',
    "storage/memory.py": '''class MemoryStorage:
    """Keeps documents in a dictionary, for tests."""

    def __init__(self) -> None:
        self.items: dict[str, bytes] = {}

    def save(self, key: str, data: bytes) -> None:
        self.items[key] = data

    def load(self, key: str) -> bytes:
        return self.items[key]
''',
    "report/totals.py": '''def monthly_totals(rows):
    """Sum sales by month."""
    totals = {}
    for row in rows:
        totals[row.month] = totals.get(row.month, 0) + row.amount
    return totals


def format_currency(value):
    return f"${value:,.2f}"
''',
}


def test_related_finds_the_other_implementation_first(tmp_path: Path, minilm: Llama) -> None:
    from click.testing import CliRunner

    from llamaembed.cli import main
    from llamaembed.errors import SearchIndexError
    from llamaembed.store.related import related

    for name, text in STORAGE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    index = Index(minilm)
    ingest_files(index, minilm, [tmp_path])
    disk = str((tmp_path / "storage/disk.py").resolve())
    found = related(index, disk, 10, k=3)  # inside DiskStorage.save
    assert found.anchor.metadata["source"] == disk
    # the other implementation and the interface both implement save/load: they come
    # before the unrelated report code
    assert {where(tmp_path, h) for h in found.hits[:2]} == {"storage/memory.py", "storage/base.py"}
    assert all(h.id != found.anchor.id for h in found.hits)
    sources = [h.metadata["source"] for h in found.hits]
    assert sources.index(disk) > 0 if disk in sources else True  # other files first
    with pytest.raises(SearchIndexError, match="not in the index"):
        related(index, str(tmp_path / "nope.py"), 1)
    with pytest.raises(SearchIndexError, match="no indexed passage at line 999"):
        related(index, disk, 999)
    # the command line: FILE:LINE, --json
    db = tmp_path / "db"
    runner = CliRunner()
    assert (
        runner.invoke(
            main, ["index", str(tmp_path / "storage"), str(tmp_path / "report"), "--db", str(db)]
        ).exit_code
        == 0
    )
    result = runner.invoke(main, ["related", f"{disk}:10", "--db", str(db), "--json", "-k", "2"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["anchor"].endswith("disk.py:" + answer["anchor"].rsplit(":", 1)[1])
    assert any(h["source"].endswith("storage/memory.py") for h in answer["hits"])
    text = runner.invoke(main, ["related", f"{disk}:10", "--db", str(db), "-k", "2"])
    assert text.exit_code == 0 and "memory.py" in text.output and text.output.startswith("like ")
    missing = runner.invoke(main, ["related", str(tmp_path / "none.py"), "--db", str(db)])
    assert missing.exit_code == 2 and "no file" in missing.output
    past = runner.invoke(main, ["related", f"{disk}:999", "--db", str(db)])
    assert past.exit_code == 1 and "Error:" in past.output
