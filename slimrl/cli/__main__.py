import sys

from slimrl.cli import main

sys.exit(main())
