"""``python -m semisup.cli``: the same as the ``semisup`` command."""

from semisup.cli import main

main()
