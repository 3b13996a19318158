"""The side-by-side benchmark (bench/run.py) and its messy clinic."""
