package salesforce_test

import "github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faults"

func faultsDropAll() faults.Config { return faults.Config{StreamDropRate: 1, Limit: 20, Seed: 1} }
