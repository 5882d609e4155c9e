"""``python -m tracklight.delivery replay <spill file>``."""

import sys

from tracklight.delivery.replay import main

sys.exit(main())
