"""``python -m transformer ...``: see transformer/cli.py."""

import sys

from transformer.cli import main

sys.exit(main())
