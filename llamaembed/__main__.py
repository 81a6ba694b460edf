"""``python -m llamaembed`` runs the command line."""

from .cli import main

main()
