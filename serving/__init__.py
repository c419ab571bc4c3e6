"""MLflow registry and KServe model serving."""
