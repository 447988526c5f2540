"""``python -m bench``: run the comparison suite (see bench/README.md)."""

from bench.compare.cli import main

main()
