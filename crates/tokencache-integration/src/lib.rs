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
//!
//! ## The documents' examples
//!
//! The Rust code blocks of the README and of the guides in `docs/` are compiled (and, unless
//! marked `no_run`, run) as this crate's doctests, so they cannot drift from the API.

/// The README's examples.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct Readme;

/// The desktop guide's examples.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/desktop.md")]
pub struct DesktopGuide;

/// The client guide's examples.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/client.md")]
pub struct ClientGuide;

/// The web apps guide's examples.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/web-apps.md")]
pub struct WebAppsGuide;

/// The Azure SDK guide's examples.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/azure.md")]
pub struct AzureGuide;

/// The CLI guide (its code blocks are shell; kept here so a Rust block added later compiles).
#[cfg(doctest)]
#[doc = include_str!("../../../docs/cli.md")]
pub struct CliGuide;
