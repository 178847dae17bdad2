"""Paper-style evaluation of synthetic data (``coldstart evaluate``).

``data`` loads and splits a dataset, ``synth`` runs stage 1 (LLM endpoint or
SDV), ``arms`` builds every arm's synthetic rows and weights, ``downstream``
trains the recmodel DNN, ``metrics`` scores, ``report`` writes the run folder.
"""
