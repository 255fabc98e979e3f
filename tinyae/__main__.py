"""``python -m tinyae``: the same program as the ``tinyae`` command (see ``tinyae.cli``)."""
import sys

from .cli import main

sys.exit(main())
