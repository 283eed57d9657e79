"""`python -m training RUN.toml`: the same as `python launcher.py train RUN.toml`."""

import sys

from training.cli import main

sys.exit(main(sys.argv[1:]))
