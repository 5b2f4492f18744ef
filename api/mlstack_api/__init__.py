"""The mlstack predictor: a FastAPI service; uvicorn serves `mlstack_api.main:app`."""
