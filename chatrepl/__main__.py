import sys

from chatrepl.cli import main

sys.exit(main())
