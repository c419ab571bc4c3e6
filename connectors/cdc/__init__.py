"""PostgreSQL CDC through Debezium on Kafka Connect.

Connector configs are files beside this module (``*.json``, Connect's REST shape) with
``${PLACEHOLDER}`` values filled from the settings (local stack) or from Kubernetes
secrets (rendered Strimzi KafkaConnector manifests).
"""
