"""Your team's model code: candidates in mlstack.yaml name these by dotted path.

`model-training/` is on the import path of `mlstack train` (config `training.code_dirs`), so a
candidate can say `estimator: team_models.factories.log_numeric_logistic`. Modules imported from
here are pickled into the logged model by value: the predictor serves the model without a copy of
this directory.

This package is the shipped, tested example (docs/own-data.md walks through it):

- `features.SignedLog1p`: a custom feature step (sign(x) * log(1 + |x|)) for heavy-tailed
  amounts, with the ONNX converter that lets ONNX Runtime serve a pipeline containing it;
- `factories.log_numeric_logistic`: a factory that adds that step to the schema's preprocessing
  and ends in a logistic regression.
"""
