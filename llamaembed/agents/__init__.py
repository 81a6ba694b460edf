"""What coding agents call: the MCP server over an index (``llamaembed mcp``).

``service`` holds what the tools do without MCP (open an index, search it, re-index files
under the allowed roots); ``mcp`` puts it behind the official MCP SDK (the ``[mcp]``
extra). May import ``store``, ``hub`` and ``cli._render`` (the hit records ``search
--json`` prints); nothing imports this package but the CLI.
"""
