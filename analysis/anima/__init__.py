"""ANIMA (Animal Harm Benchmark 2.x): answers per stage, judged per dimension, as AHB scores them.

`questions` loads and checks the questions and the 13 dimensions, `generate` writes each stage's
cached answers, `hidden` caches their pooled hidden states, `judge` is the offline built-in
judge, `scores` aggregates as the benchmark publishes, `inspect_task` grades the same cached
answers through Inspect, `agreement` measures a judge against a reference file, `pipeline` runs
all of it over a run's stages (what `valuetrace evaluate` calls), `projection` sets each
answer's projection on the compassion direction against its judged score, and `section` is the
report's and the summary's ANIMA section.
"""
