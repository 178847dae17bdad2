"""Stage 1 of the daily flow: sample -> cluster -> seeds -> synthesize (LLM).
Imports platform and sources.
"""
