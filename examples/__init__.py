"""Examples for a first task: a CSV to analyse and a custom handler."""
