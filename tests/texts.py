"""Varied test texts: hand-picked hard cases plus real English from the standard library."""

from __future__ import annotations

import importlib
import inspect

HARD_CASES = [
    "",
    " ",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "Rust is memory-safe; C is not. Or is it?",
    "café naïve résumé coöperate Ångström façade jalapeño",
    "ÉCOLE ÉLÉMENTAIRE — «guillemets» “quotes” ‘single’",
    "東京は日本の首都です。北京是中国的首都。",
    "서울은 한국의 수도입니다.",
    "Москва — столица России.",
    "Αθήνα είναι η πρωτεύουσα της Ελλάδας.",
    "مرحبا بالعالم",
    "emoji 🤗🚀 ✅ 🦙🦙 👩‍👩‍👧 flags 🇫🇷",
    "full-width ＡＢＣ １２３ ｈｅｌｌｏ",
    "ligatures ﬁne ﬂow ﬀ",
    "tabs\tand\nnewlines\r\nmixed   spaces",
    "snake_case camelCase kebab-case SCREAMING_CASE",
    "https://example.com/path?query=1&x=y#frag user@example.org",
    "3.14159 2,718 1e-10 -42 +7 100% $9.99 €5 ¥100",
    "C++ C# F# .NET node.js Vue.js",
    "def f(x): return x ** 2  # a Python function",
    "SELECT * FROM users WHERE id = 42;",
    "!!!???...,,,;;;:::---",
    "a",
    "I",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "pneumonoultramicroscopicsilicovolcanoconiosis is a long word",
    "x" * 101 + " a word over one hundred characters",
    "the " * 60,
    "Zero\u200bwidth\u200bspace and soft\u00adhyphen",
    "NUL byte \x00 inside",
    "control \x07 bell \x1b escape",
    "Ünïcödé mïxëd wïth ASCII",
    "tiếng Việt có dấu",
    "हिन्दी भाषा",
    "ภาษาไทย",
]


def stdlib_sentences(limit: int = 400) -> list[str]:
    """Return first paragraphs of standard-library docstrings: real, varied English."""
    modules = [
        "os", "re", "json", "math", "random", "string", "textwrap", "collections", "itertools",
        "functools", "pathlib", "shutil", "subprocess", "threading", "asyncio", "datetime",
        "decimal", "fractions", "statistics", "csv", "sqlite3", "hashlib", "logging", "argparse",
        "typing", "inspect", "heapq", "bisect", "array", "struct", "zlib", "gzip", "tarfile",
        "zipfile", "tempfile", "glob", "fnmatch", "urllib.parse", "http.client", "email",
        "html", "xml.etree.ElementTree", "unittest", "doctest", "pdb", "timeit", "queue",
        "socket", "select", "signal", "uuid", "base64", "binascii", "codecs", "locale",
    ]
    seen: set[str] = set()
    out: list[str] = []
    for name in modules:
        module = importlib.import_module(name)
        for _, obj in sorted(vars(module).items()):
            doc = inspect.getdoc(obj) if callable(obj) else None
            if not doc:
                continue
            first = " ".join(doc.split("\n\n")[0].split())
            if 20 <= len(first) <= 600 and first not in seen:
                seen.add(first)
                out.append(first)
            if len(out) >= limit:
                return out
    return out


def varied_texts(n_stdlib: int = 220) -> list[str]:
    return HARD_CASES + stdlib_sentences(n_stdlib)


# Questions whose answers are among stdlib_sentences(): the search tests' queries
STDLIB_QUERIES = [
    "compress data into a gzip file",
    "parse a comma separated file",
    "run a child process and wait for it",
    "current date and time",
    "regular expression matching",
    "decode base64 data",
    "a queue shared between threads",
    "split a path into its parts",
    "SHA256 hash of bytes",
    "md5 digest",
]
