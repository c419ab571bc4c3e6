# The KServe predictor of streamfeat (serving/predictor.py), as deploy/k8s/inference-service.yaml
# runs it. Build from the repository root:
#   docker build -f deploy/docker/predictor.Dockerfile -t streamfeat/predictor:latest .
# Settings come from STREAMFEAT_* variables (core/settings.py): the Redis, PostgreSQL and MLflow
# addresses of the cluster, the model name and stage from the container's arguments.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY core core
COPY feature_api feature_api
COPY serving serving
COPY batch batch
COPY connectors connectors
COPY flink_jobs flink_jobs
COPY streamfeat streamfeat
RUN pip install --no-cache-dir -c constraints.txt . \
 && useradd --uid 10001 --no-create-home predictor
USER 10001
EXPOSE 8080
ENTRYPOINT ["python", "-m", "serving.predictor"]
