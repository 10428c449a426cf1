"""The metrics a model is judged by: the results table's numbers (`fer summary`,
`dvc metrics show`) and the metric columns of the experiment's saved view in MLflow
(dag/tracking_view.py). A leaf module: every stage imports the tracking code, so what
it imports joins every stage's code dependencies."""

HEADLINE = ("overall_accuracy", "mean_class_accuracy", "std_class_accuracy", "macro_f1")
