"""What writes raw.* and ref.*: the simulator and the MovieLens-100K loader.
Imports platform only.
"""
