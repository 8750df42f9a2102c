"""``python -m semisup``: the ``semisup`` command (and ``torchrun -m semisup run RECIPE``)."""

from semisup.cli import main

if __name__ == "__main__":
    main()
