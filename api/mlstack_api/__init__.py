"""The mlstack predictor: a FastAPI service (`python -m mlstack_api` serves `mlstack_api.main:app`)."""
