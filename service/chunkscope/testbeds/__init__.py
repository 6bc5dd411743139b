"""Recurrent test bed: the paper's sequence generators, a 12-unit RNN and its trainer."""
