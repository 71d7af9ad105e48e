"""``python -m nrdseg.cli``, e.g. under ``torchrun -m nrdseg.cli train CONFIG``."""

import sys

from nrdseg.cli import main

sys.exit(main())
