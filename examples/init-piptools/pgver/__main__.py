"""`python -m pgver`: the app's entry point (plain code, no packaging)."""
import sys

from pgver.cli import main

sys.exit(main())
