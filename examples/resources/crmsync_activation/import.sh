# An activation is imported by its connector's ID (it starts with wait_for = "running").
terraform import crmsync_activation.salesforce con_6f1c2a9e0b7d4c1e9a532f0d1c7e8b44
