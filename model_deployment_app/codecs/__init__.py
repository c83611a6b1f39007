"""Codecs: one module per wire form, each turning what the client sent into the one
model-input type (`inputs.ModelInput`), or naming the first thing that is wrong.

- `rows`: rows of numbers, for a model with `inputSize` (the fast path);
- `columns`: one column's values, checked against its declared datatype (shared by all);
- `tables`: records, MLflow's `dataframe_split` / `dataframe_records`, positional rows and
  plain string lists, for a model with named `inputs`;
- `rest`: which of the above a `POST /predict` body is;
- `v2`: Open Inference Protocol tensors, in and out.
"""
