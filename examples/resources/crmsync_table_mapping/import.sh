# A table mapping is imported by its ID ...
terraform import crmsync_table_mapping.contact map_0d9b7c553e214f6a8c1d5b2e9f7a1c30

# ... or by connector ID and Salesforce object.
terraform import crmsync_table_mapping.contact con_6f1c2a9e0b7d4c1e9a532f0d1c7e8b44/Contact
