"""``python -m core``: Quarry's command line (see core/cli/main.py)."""
import sys

from core.cli.main import main

sys.exit(main())
