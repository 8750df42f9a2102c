"""``python -m semisup``: the ``semisup`` command (and ``torchrun -m semisup run RECIPE``)."""

from semisup.cli import main

main()
