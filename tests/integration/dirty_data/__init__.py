"""The bad-data corpus: one legacy database of dirty values, and what each must give."""
