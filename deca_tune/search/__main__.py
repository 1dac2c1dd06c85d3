import sys

from deca_tune.search.cli import main

sys.exit(main())
