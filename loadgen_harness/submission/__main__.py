"""python -m loadgen_harness.submission"""
import sys

from loadgen_harness.submission import main

sys.exit(main())
