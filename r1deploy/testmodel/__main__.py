"""`python -m r1deploy.testmodel build DIR --kind random|scripted` (needs torch,
transformers and tokenizers: run it with the cached vLLM env's python)."""

import sys

from r1deploy.testmodel.cli import main

sys.exit(main())
