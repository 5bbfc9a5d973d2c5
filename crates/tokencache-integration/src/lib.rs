//! Where the crates meet: tests and examples that give client applications
//! (`tokencache-client`) the file store's accessor (`tokencache-file`) or a partitioned store
//! (`tokencache-store`).
//!
//! ## Why a crate of its own
//!
//! The file store, the client and the partitioned stores depend on the core only, never on
//! each other, and `cargo tree` counts development dependencies too. The tests that need two
//! of them live here, so that each of those crates' graphs stays as designed.
//!
//! ## What is here
//!
//! - `examples/device_code.rs`, `examples/daemon.rs`: a public and a confidential client over a
//!   cache file.
//! - `examples/silent_load.rs`: concurrent silent acquisitions through a partitioned store,
//!   run as several processes by the tests.
//! - `tests/`: the same flows against the loopback OpenID provider, MSAL Python as a peer,
//!   and a cancelled refresh that gives its lease back.
