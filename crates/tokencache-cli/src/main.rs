//! The `tokencache` command line tool: inspect, validate, repair, encrypt, decrypt and migrate
//! MSAL token caches: cache files (the JSON format shared by MSAL Python, .NET, Node, Java, Go
//! and the Azure CLI) and partitioned stores (`sqlite://`, `postgres://`, `redis://`,
//! `redis+cluster://`). A plain path is a file.
//!
//! Secrets are never printed. Writing verbs go through the desktop store: they take the MSAL
//! lock (`<cache>.lockfile`, so running MSAL apps wait), keep every unknown field and entry,
//! write atomically, keep the file's permissions, and never touch a file they cannot parse.

#[macro_use]
mod output;
mod error;
mod file;
mod keys;
mod report;
#[cfg(feature = "stores")]
mod store_access;
#[cfg(feature = "stores")]
mod stores;
mod target;
mod verb;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokencache::{Clock, SystemClock};

use crate::error::CliError;
use crate::keys::{KeyArgs, PreviousKeyArgs};
use crate::target::Target;

/// Inspect, validate and repair MSAL token caches.
#[derive(Parser, Debug)]
#[command(name = "tokencache", version, about, long_about = None)]
struct Cli {
    /// Show what the library does on stderr (why a lock waited, a store retried): -v for
    /// information, -vv for details. `RUST_LOG` (e.g. `RUST_LOG=tokencache_file=debug`)
    /// overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// The library's `tracing` events on stderr: none unless asked for with `-v` or `RUST_LOG`.
fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::new(spec),
        _ => EnvFilter::new(match verbose {
            0 => "off",
            1 => "info",
            _ => "debug",
        }),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(verbose > 1)
        .try_init();
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the accounts and tokens of a cache (secrets are never shown).
    #[command(
        after_help = "Exit status: 0 shown; 2 the cache cannot be read (missing, a directory, not a token cache, encrypted without its key or with another, a store that cannot be reached) or the arguments are wrong."
    )]
    Inspect {
        /// The cache file, or a store URL (every partition is shown, then a list of the
        /// partitions with their size, encryption key id, age and expiry).
        file: String,
        /// Print one JSON object (accounts, access_tokens, refresh_tokens, id_tokens,
        /// app_metadata) instead of tables.
        #[arg(long)]
        json: bool,
        /// The time to measure expiry against, in Unix seconds (default: now).
        #[arg(long)]
        now: Option<i64>,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Check a cache: exit 0 if MSAL can use every entry, 1 with a list of problems otherwise,
    /// 2 if it cannot be read.
    #[command(
        after_help = "Exit status: 0 clean; 1 problems, listed; 2 the cache cannot be read (missing, a directory, not a token cache, encrypted without its key or with another, a store that cannot be reached) or the arguments are wrong."
    )]
    Validate {
        /// The cache file, or a store URL.
        file: String,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Remove expired access tokens.
    #[command(
        after_help = "Exit status: 0 pruned, or nothing to prune; 1 not completed (the lock held by another process past the timeout); 2 the cache cannot be read (missing, a directory, not a token cache, encrypted without its key or with another, a store that cannot be reached) or the arguments are wrong."
    )]
    Prune {
        /// The cache file, or a store URL.
        file: String,
        /// The time to prune against, in Unix seconds (default: now).
        #[arg(long)]
        now: Option<i64>,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Remove every access, refresh and ID token and account entry of a home account, whatever
    /// the client (app metadata stays).
    #[command(
        after_help = "Exit status: 0 removed; 1 no such account (the accounts there are listed) or not completed; 2 the cache cannot be read (missing, a directory, not a token cache, encrypted without its key or with another, a store that cannot be reached) or the arguments are wrong."
    )]
    RemoveAccount {
        /// The cache file, or a store URL (the account's partition is deleted).
        file: String,
        /// The home account id (`<uid>.<utid>` for Entra ID).
        home_account_id: String,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Fix what `validate` reports, keeping a copy of the cache first.
    ///
    /// Removes entries MSAL cannot use, drops times it cannot read from refresh tokens, and
    /// moves entries to their canonical keys. A file that is not valid JSON is refused.
    #[command(
        after_help = "Exit status: 0 repaired, nothing to repair, or changes listed with --dry-run; 1 not completed; 2 the cache cannot be read (missing, a directory, not a token cache, encrypted without its key or with another, a store that cannot be reached) or the arguments are wrong."
    )]
    Repair {
        /// The cache file, or a store URL (every partition is repaired).
        file: String,
        /// Show what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Where to keep the copy (default: `<FILE>.before-repair-<unix time>`, or
        /// `tokencache-repair-<unix time>.json` here for a store; encrypted with the key given).
        #[arg(long, value_name = "PATH")]
        backup: Option<PathBuf>,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Who holds the cache's lock (`<cache>.lockfile`), and whether it is stale; for a store,
    /// which partitions' refresh leases are held.
    #[command(
        after_help = "Exit status: 0 shown; 2 the path is missing or a directory, or the store cannot be reached."
    )]
    LockStatus {
        /// The cache file, or a store URL.
        file: String,
    },
    /// Encrypt a plain cache file or every partition of a store (XChaCha20-Poly1305), or
    /// re-encrypt them with another key.
    #[command(
        after_help = "Exit status: 0 encrypted; 1 a partition could not be read with the keys given (left as it was, listed); 2 the cache cannot be read (missing, a directory, not a token cache, encrypted without its key or with another, a store that cannot be reached) or the arguments are wrong, or the key is missing (add --new-key to make one)."
    )]
    Encrypt {
        /// The cache file, or a store URL.
        file: String,
        /// The key to encrypt with. It must exist, unless --new-key is given.
        #[command(flatten)]
        key: KeyArgs,
        /// Make a new random key in the --key-file or --keyring item given (which must not
        /// exist yet), and say where it was written.
        #[arg(long)]
        new_key: bool,
        /// For a store: the key id to encrypt under, the one the application passes to
        /// `PartitionKeys::new` (required for a store).
        #[arg(long, value_name = "ID", requires = "key")]
        key_id: Option<String>,
        /// To re-encrypt: the key the cache or store is encrypted with now.
        #[command(flatten)]
        previous: PreviousKeyArgs,
    },
    /// Copy every partition from one cache to another: a cache file into a store (split per
    /// account), a store into a cache file (merged), or store to store; then verify.
    #[command(
        after_help = "Exit status: 0 migrated and verified; 1 the verification failed or a partition could not be read; 2 the cache cannot be read (missing, a directory, not a token cache, encrypted without its key or with another, a store that cannot be reached) or the arguments are wrong."
    )]
    Migrate {
        /// Where to read: a cache file or a store URL.
        from: String,
        /// Where to write: a cache file or a store URL.
        to: String,
        /// The key of an encrypted source or target cache file, or of an encrypted source
        /// store.
        #[command(flatten)]
        key: KeyArgs,
        /// Encrypt the partitions written to a target store under this key id (the one the
        /// application passes to `PartitionKeys::new`), with the key given. Without it, new
        /// partitions in a target store are plain text and existing ones keep their key.
        #[arg(long, value_name = "ID", requires = "key")]
        key_id: Option<String>,
        /// With --key-id: make a new random key in the --key-file or --keyring item given
        /// (which must not exist yet), and say where it was written.
        #[arg(long)]
        new_key: bool,
    },
    /// Decrypt an encrypted cache file, or every partition of a store, back to MSAL's plain
    /// JSON. On Windows, a file sealed with DPAPI (the Azure CLI's `msal_token_cache.bin`)
    /// needs no key.
    #[command(
        after_help = "Exit status: 0 decrypted; 1 a partition could not be read (left as it was, listed); 2 the cache cannot be read (missing, a directory, not a token cache, encrypted without its key or with another, a store that cannot be reached) or the arguments are wrong."
    )]
    Decrypt {
        /// The cache file, or a store URL.
        file: String,
        /// The key it is encrypted with.
        #[command(flatten)]
        key: KeyArgs,
    },
}

/// Runs the verb on the target it names.
fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let now = || SystemClock.now();
    match cli.command {
        Command::Inspect {
            file,
            json,
            now: at,
            key,
        } => verb::inspect::run(&Target::parse(&file)?, json, at.unwrap_or_else(now), &key),
        Command::Validate { file, key } => verb::validate::run(&Target::parse(&file)?, &key),
        Command::Prune { file, now: at, key } => {
            verb::prune::run(&Target::parse(&file)?, at.unwrap_or_else(now), &key)
        }
        Command::RemoveAccount {
            file,
            home_account_id,
            key,
        } => verb::remove_account::run(&Target::parse(&file)?, &home_account_id, &key),
        Command::Repair {
            file,
            dry_run,
            backup,
            key,
        } => verb::repair::run(&Target::parse(&file)?, dry_run, backup, now(), &key),
        Command::LockStatus { file } => verb::lock_status::run(&Target::parse(&file)?),
        Command::Encrypt {
            file,
            key,
            new_key,
            key_id,
            previous,
        } => verb::encrypt::run(&Target::parse(&file)?, &key, new_key, key_id, &previous),
        Command::Migrate {
            from,
            to,
            key,
            key_id,
            new_key,
        } => verb::migrate::run(
            &Target::parse(&from)?,
            &Target::parse(&to)?,
            &key,
            new_key,
            key_id,
        ),
        Command::Decrypt { file, key } => verb::decrypt::run(&Target::parse(&file)?, &key),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tokencache: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}
