"""`python -m tools.deadletters --service order list|show ID|replay ID --by NAME|discard ID --by NAME`: the dead-letter
tool of services/common/deadletters.py (in an image, which has no tools/: `python -m services.common.deadletters`)."""

import sys

from services.common.deadletters import main

if __name__ == "__main__":
    sys.exit(main())
