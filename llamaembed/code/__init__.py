"""What is special about source code, in one place.

- ``languages``: the languages parsed (file suffixes, tree-sitter grammars bundled by
  ``semble-grammars``, which syntax nodes are definitions and what they are named);
- ``passages``: syntax-aware passages (one definition or a run of small ones, with its
  symbol path), asked for by ``store.chunking`` for code files;
- ``identifiers``: identifier words (camelCase, snake_case, acronyms, digits split, and
  kept whole), used by the keyword side for documents and queries alike;
- ``ranking``: code ranking priors (what the query asks for, definitions over uses,
  implementation over tests and re-exports, several files in the top k), pure functions
  that ``store.search`` applies.

Modules here import nothing of llamaembed's outside this package; tree-sitter is
imported only when a file is parsed.
"""
