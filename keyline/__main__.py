"""`python -m keyline` is the `keyline` command."""

from keyline.cli import main

main()
