"""Stage 2: importance weights that align synthetic rows with the real day
(transforms, reweight, classifier ratio, report) and the jobs weights and align.
Imports platform, sources and stage 1.
"""
