"""Platform code below every stage: the Spark session, Delta IO, column names,
errors, job plumbing, packaging and spark-submit. Imports no stage.
"""
