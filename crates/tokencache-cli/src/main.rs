//! The `tokencache` command line tool: inspect, validate, repair, encrypt and decrypt MSAL
//! token cache files (the JSON format shared by MSAL Python, .NET, Node, Java, Go and the Azure
//! CLI).
//!
//! Secrets are never printed. Writing verbs go through the desktop store: they take the MSAL
//! lock (`<cache>.lockfile`, so running MSAL apps wait), keep every unknown field and entry,
//! write atomically, keep the file's permissions, and never touch a file they cannot parse.

mod error;
mod inspect;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tokencache::{Clock, SystemClock, TokenCache};
use tokencache_file::{FileStore, KeySource, LockStatus, StoreOptions};

use crate::error::CliError;

/// Inspect, validate and repair MSAL token caches.
#[derive(Parser, Debug)]
#[command(name = "tokencache", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the key of an encrypted cache comes from (at most one).
#[derive(Args, Debug, Default, Clone)]
struct KeyArgs {
    /// A key file (64 hex digits or base64 of 32 bytes).
    #[arg(long, value_name = "PATH", group = "key")]
    key_file: Option<PathBuf>,
    /// An environment variable holding the key.
    #[arg(long, value_name = "VAR", group = "key")]
    key_env: Option<String>,
    /// An item in the OS keyring holding the key (Linux Secret Service).
    #[arg(long, value_name = "NAME", group = "key")]
    keyring: Option<String>,
}

impl KeyArgs {
    fn source(&self) -> Result<Option<KeySource>, CliError> {
        if let Some(p) = &self.key_file {
            return Ok(Some(KeySource::File(p.clone())));
        }
        if let Some(v) = &self.key_env {
            return Ok(Some(KeySource::Env(v.clone())));
        }
        if let Some(name) = &self.keyring {
            #[cfg(target_os = "linux")]
            return Ok(Some(KeySource::Keyring { name: name.clone() }));
            #[cfg(not(target_os = "linux"))]
            return Err(CliError::Usage(format!(
                "--keyring {name}: the keyring is supported on Linux only"
            )));
        }
        Ok(None)
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the accounts and tokens of a cache (secrets are never shown).
    Inspect {
        /// The cache file.
        file: PathBuf,
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
    /// Check a cache: exit 0 if MSAL can use every entry, 1 with a list of problems otherwise.
    Validate {
        /// The cache file.
        file: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Remove expired access tokens.
    Prune {
        /// The cache file.
        file: PathBuf,
        /// The time to prune against, in Unix seconds (default: now).
        #[arg(long)]
        now: Option<i64>,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Remove every access, refresh and ID token and account entry of a home account, whatever
    /// the client (app metadata stays).
    RemoveAccount {
        /// The cache file.
        file: PathBuf,
        /// The home account id (`<uid>.<utid>` for Entra ID).
        home_account_id: String,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Who holds the cache's lock (`<cache>.lockfile`), and whether it is stale.
    LockStatus {
        /// The cache file.
        file: PathBuf,
    },
    /// Encrypt a plain cache file (XChaCha20-Poly1305), or re-encrypt it with another key.
    Encrypt {
        /// The cache file.
        file: PathBuf,
        /// The key to encrypt with (created if a key file or keyring item does not exist yet).
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Decrypt an encrypted cache file back to MSAL's plain JSON.
    Decrypt {
        /// The cache file.
        file: PathBuf,
        /// The key it is encrypted with.
        #[command(flatten)]
        key: KeyArgs,
    },
}

fn store(file: &PathBuf, key: &KeyArgs) -> Result<FileStore, CliError> {
    let options = StoreOptions {
        encryption: key.source()?,
        ..StoreOptions::default()
    };
    Ok(FileStore::open(file, options)?)
}

/// Loads a cache read-only (no lock, as MSAL readers do).
fn load(file: &PathBuf, key: &KeyArgs) -> Result<std::sync::Arc<TokenCache>, CliError> {
    if !file.exists() {
        return Err(CliError::Read {
            path: file.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let store = store(file, key)?;
    store.reload()?;
    Ok(store.cache().clone())
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Inspect {
            file,
            json,
            now,
            key,
        } => {
            let cache = load(&file, &key)?;
            let now = now.unwrap_or_else(|| SystemClock.now());
            let out = if json {
                inspect::json(&cache)
            } else {
                inspect::table(&cache, now)
            };
            println!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { file, key } => match load(&file, &key) {
            Err(CliError::File(tokencache_file::FileError::Corrupt { source, .. })) => {
                println!("{}: {source}", file.display());
                Ok(ExitCode::from(1))
            }
            Err(e) => Err(e),
            Ok(cache) => {
                let problems = cache.problems();
                if problems.is_empty() {
                    println!("{}: ok", file.display());
                    return Ok(ExitCode::SUCCESS);
                }
                println!("{}: {} problem(s)", file.display(), problems.len());
                for p in problems {
                    println!("  {p}");
                }
                Ok(ExitCode::from(1))
            }
        },
        Command::Prune { file, now, key } => {
            let now = now.unwrap_or_else(|| SystemClock.now());
            let removed = existing(&file).and_then(|()| {
                Ok(store(&file, &key)?.update(|c| Ok(c.purge_expired_access_tokens(now)))?)
            })?;
            println!("removed {removed} expired access token(s)");
            Ok(ExitCode::SUCCESS)
        }
        Command::RemoveAccount {
            file,
            home_account_id,
            key,
        } => {
            let removed = existing(&file).and_then(|()| {
                Ok(store(&file, &key)?
                    .update(|c| Ok(c.remove_account_everywhere(&home_account_id)))?)
            })?;
            println!(
                "removed {} access token(s), {} refresh token(s), {} ID token(s), {} account(s)",
                removed.access_tokens, removed.refresh_tokens, removed.id_tokens, removed.accounts
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::LockStatus { file } => {
            match tokencache_file::lock_status(&file)? {
                LockStatus::Free => println!("{}: not locked", file.display()),
                status @ LockStatus::Held { .. } => {
                    let LockStatus::Held {
                        owner,
                        alive,
                        os_locked,
                        age,
                    } = &status
                    else {
                        unreachable!()
                    };
                    let who = owner
                        .as_ref()
                        .map_or("an unknown process".to_owned(), ToString::to_string);
                    let state = match alive {
                        Some(true) => "alive",
                        Some(false) => "dead",
                        None => "unknown",
                    };
                    println!(
                        "{}: locked by {who} ({state}){}, for {}s{}",
                        file.display(),
                        if *os_locked {
                            ", holding the OS lock"
                        } else {
                            ""
                        },
                        age.as_secs(),
                        if status.is_stale() {
                            "; STALE: the next writer removes it"
                        } else {
                            ""
                        }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Encrypt { file, key } => {
            existing(&file)?;
            if key.source()?.is_none() {
                return Err(CliError::Usage(
                    "encrypt needs --key-file, --key-env or --keyring".into(),
                ));
            }
            store(&file, &key)?.rewrite(None)?;
            println!("{}: encrypted", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Decrypt { file, key } => {
            existing(&file)?;
            let source = key.source()?.ok_or_else(|| {
                CliError::Usage("decrypt needs --key-file, --key-env or --keyring".into())
            })?;
            store(&file, &KeyArgs::default())?.rewrite(Some(&source))?;
            println!("{}: decrypted", file.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn existing(file: &PathBuf) -> Result<(), CliError> {
    match std::fs::symlink_metadata(file) {
        Ok(_) => Ok(()),
        Err(source) => Err(CliError::Read {
            path: file.clone(),
            source,
        }),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tokencache: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
