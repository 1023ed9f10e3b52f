// Package backup exports a connector's Dataverse destination tables before the first sync (or on demand)
// and restores them: the rollback the original connector's documentation asks people to prepare by hand.
//
// Contracts:
//   - Export writes, per table, every column the connector writes, the primary key, modifiedon and the owner
//     (Web API property names; lookups as _x_value), as gzip-compressed NDJSON chunk files read with $select
//     pages of 5,000 rows ordered by the primary key, under one directory with a manifest (manifest.json:
//     tables, columns, row counts, sizes, SHA-256 of every chunk, times, connector revision). It never holds
//     more than one page in memory. A chunk is written to a temporary file, synced and renamed, and only then
//     recorded in the manifest (itself replaced atomically), so a crash at any instant resumes from the last
//     finished chunk: the next query starts after that chunk's last key, and files the manifest does not
//     list are removed.
//   - Key ranges are defined by Dataverse's own ordering of the primary key (the last key of each chunk as the
//     server sorted it) and always compared by the server ($filter gt/le): the client never assumes how
//     Dataverse orders GUIDs, which the Web API does not document.
//   - Restore writes the backed-up rows back (UpsertMultiple where the environment supports it, $batch
//     otherwise) chunk by chunk, comparing each chunk's key range with what Dataverse holds now: rows equal to
//     the backup are left alone (unchanged), others are written (restored). With DeleteCreated, rows of the
//     range that the backup does not hold are deleted only when all of these hold: the key is a version-5
//     GUID, the connector's application user created the row, and the key is the GUID of a Salesforce Id of
//     the mapped object (checked with one Bulk query of Ids). Everything else is kept: rows nobody synced are
//     never touched. Progress is recorded in the backup directory after every chunk, so a restore that is
//     interrupted resumes where it stopped; every step is idempotent, so running it again changes nothing
//     more. modifiedon cannot be written and is not restored.
package backup
