"""Above the stages: run-daily, backfill, the publish gate and the weekly gate.
No stage imports it.
"""
