"""``python -m deca_tune COMMAND [options]``: the ``deca-tune`` dispatcher (deca_tune/entry.py)."""
import sys

from deca_tune.entry import main

sys.exit(main())
