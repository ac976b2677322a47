"""``python -m analysis.cli``: the ``ana`` console script."""

import sys

from analysis.cli import main

sys.exit(main())
