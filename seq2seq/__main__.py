"""`python -m seq2seq` runs the command line."""

import sys

from seq2seq.cli import main

sys.exit(main())
