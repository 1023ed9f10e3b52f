// Package architecture holds the tests that keep crmsync's shape (docs/architecture.md): which package may
// import which (the floors), how large a production function or file may grow, and that comments and docs cite
// only files of the repository (no design notes or wire notes from outside it, no issue numbers as process
// notes). It has no code of its own.
//
// The floors, from the ground up:
//   - internal/mapping (with its sub-packages jsonrow and sfid) imports nothing of the project's but itself;
//     internal/api imports nothing of the project's but internal/mapping. Everything may import them.
//   - Leaf helpers (internal/cafile, internal/retry, internal/strictjson, internal/version) import nothing of
//     the project's.
//   - internal/client, internal/plansummary and internal/provider (the Terraform side) reach nothing of
//     internal/runtime, even indirectly: the provider talks to the control plane only through its API.
//   - internal/runtime/... (control plane, agent, the services' clients) builds on the floors below it.
//   - Nothing outside cmd/, bench/ and tests imports internal/sandbox/... (the emulators); internal/testenv is
//     for tests only.
package architecture
