"""``python -m connectors.postgres``: the same as ``recon sink``."""

import sys

from connectors.postgres.run import main

sys.exit(main())
