"""``python -m tbdoctor``."""

import sys

from tbdoctor.cli import main

sys.exit(main())
