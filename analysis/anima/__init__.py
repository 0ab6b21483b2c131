"""ANIMA (Animal Harm Benchmark 2.x): answers per stage, judged per dimension, as AHB scores them.

`questions` loads and checks the questions and the 13 dimensions, `generate` writes each stage's
cached answers, `judge` is the offline built-in judge, `scores` aggregates as the benchmark
publishes, `inspect_task` grades the same cached answers through Inspect, `agreement` measures
a judge against a reference file, and `section` gives the report its ANIMA content.
"""
