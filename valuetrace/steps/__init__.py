"""The pipeline's steps, one module each; a step reads only what earlier steps wrote to the run.

prepare → train → extract → evaluate → probe → analyze → causal → report. Every step can be rerun
alone, and finished work (a trained stage, a complete cache) is reused, never overwritten unless
asked.
"""
