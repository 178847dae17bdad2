"""The weekly recall model's Spark-side jobs: train and interactions (feature
groups). The PyTorch code lives in recmodel/. Imports platform and the stages.
"""
