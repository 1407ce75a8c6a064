"""``python -m studies`` is ``nas-study``."""

import sys

from studies.cli import main

sys.exit(main())
