// Package mapping owns crmsync's column-mapping rules: the declaration of a table mapping (TableConfig), the
// predefined mappings of Contact and Account and the catalog of their standard columns, the data-type
// compatibility table, overrides and exclusions, validation that reports every problem with the attribute
// path and column it concerns, and the compiled Plan that turns Salesforce records into Dataverse row bodies.
//
// With internal/api it is the ground floor: it imports nothing of the project's but its own sub-packages
// (jsonrow: JSON row values; sfid: Salesforce Ids and their GUIDs), and internal/api imports it, never the
// reverse. It is pure: no I/O, no clocks, no globals that change.
//
// A mapping goes through it in three steps, each one function:
//   - Check resolves a declaration among its connector's other tables (Siblings) and validates it,
//     statically against the catalog (the provider at plan, the control plane when a mapping is declared)
//     or against live schemas (live validation and the activation preflight);
//   - ResolveAll gives every table of a connector its effective columns, once, when the control plane stores
//     a revision (or the agent reads a config file); the revision carries them (Resolved);
//   - Compile turns the effective columns the agent is given into a Plan, checked against the live schemas.
package mapping
