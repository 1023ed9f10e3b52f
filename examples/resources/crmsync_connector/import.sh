# A connector is imported by its ID. Inline secrets are never returned by the control plane, so the first plan
# after an import sets them again; credential references (*_env, *_file) import cleanly.
terraform import crmsync_connector.salesforce con_6f1c2a9e0b7d4c1e9a532f0d1c7e8b44
