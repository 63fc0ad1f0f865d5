"""``python -m padim_bench.cli``: the command line, as the ``padim-bench`` script."""

from . import main

if __name__ == "__main__":  # not when a spawned worker process imports this module again
    main()
