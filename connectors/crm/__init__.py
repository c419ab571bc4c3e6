"""The S3 CRM bridge: CRM export files on S3 become records on the crm.customers topic."""
