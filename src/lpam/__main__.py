import sys

from lpam.cli import main

sys.exit(main())
