"""`python -m cli` runs the `float` command."""

import sys

from cli.main import main

sys.exit(main())
