"""`make bench`: Conveyor measured side by side with its peers and the machine's limit.

Run with `python -m bench` (the Makefile target does). Sizes scale with BENCH_SCALE;
see bench/config.py for every knob and docs/performance.md for what each figure means.
"""
