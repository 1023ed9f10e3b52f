// Package agent is crmsync's sync engine: for each table of one connector it captures the change-stream
// position, loads the table (Bulk API 2.0, streamed and checkpointed), then applies Change Data Capture
// events, writing Dataverse in batches (docs/architecture.md).
//
// Contracts:
//   - The agent takes its configuration, a checkpoint store, a dead-letter store and a status reporter as
//     interfaces (Stores), so standalone mode (local SQLite) and the control plane plug in the same way.
//   - A checkpoint moves only after Dataverse acknowledged every change before it: the stored replay ID is
//     the last event of a fully written window, the stored load locator the end of a fully written page.
//     A crash at any instant loses nothing; on restart at most the in-flight window or page is written again,
//     which is harmless because every write is keyed by the record's deterministic GUID.
//   - A record Dataverse refuses goes to the dead-letter store with the reason and never blocks the stream.
//     Counters reconcile per table: received = written + dead-lettered + skipped.
//   - Throttling and transient failures are retried (inside the clients, then by the table loop with
//     backoff); they never drop a record.
package agent
