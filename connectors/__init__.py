"""Sources -> Kafka: Debezium CDC configs, the clickstream producer, the S3 CRM bridge."""
