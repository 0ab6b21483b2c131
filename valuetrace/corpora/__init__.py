"""The corpus builders: the text a run trains, probes and evaluates on.

`demo_data` writes the demo's generated corpora (from the template tables in `demo/*.txt`, via
`demo_templates`, `demo_documents`, `demo_instructions`, `demo_heldout`); `real_data` builds the
real-data corpora from the shared data folder (`real_sources` reads it, `real_known_answer` adds
the counter-value and neutral arms); `concept_data` writes the concept's independent sources;
`demo_model` builds the demo's from-scratch model. They sit beside the steps in the import layers
(`tests/test_layers.py`): `prepare` and `extract` call them, nothing below imports them.
"""
