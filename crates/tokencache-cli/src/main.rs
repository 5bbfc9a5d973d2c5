//! The `tokencache` command line tool: inspect, validate, repair, encrypt, decrypt and migrate
//! MSAL token caches: cache files (the JSON format shared by MSAL Python, .NET, Node, Java, Go
//! and the Azure CLI) and partitioned stores (`sqlite://`, `postgres://`, `redis://`,
//! `redis+cluster://`). A plain path is a file.
//!
//! Secrets are never printed. Writing verbs go through the desktop store: they take the MSAL
//! lock (`<cache>.lockfile`, so running MSAL apps wait), keep every unknown field and entry,
//! write atomically, keep the file's permissions, and never touch a file they cannot parse.

mod error;
mod inspect;
mod store_access;
mod stores;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tokencache::{Clock, SystemClock, TokenCache};
use tokencache_file::{DataKey, FileOptions, FileStore, KeySource, LockStatus};

use crate::error::CliError;
use crate::store_access::{StoreAccess, Writes};

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
    /// An item in the OS keyring holding the key (the Secret Service on Linux, the login
    /// Keychain on macOS, Credential Manager on Windows).
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
            #[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
            return Ok(Some(KeySource::Keyring { name: name.clone() }));
            #[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
            return Err(CliError::Usage(format!(
                "--keyring {name}: no OS keyring on this platform (Linux, macOS and Windows have one)"
            )));
        }
        Ok(None)
    }

    /// The key itself, if one was given; `create` makes a missing key file or keyring item.
    fn key(&self, create: bool) -> Result<Option<DataKey>, CliError> {
        Ok(self.source()?.map(|s| s.resolve(create)).transpose()?)
    }
}

/// The key that encrypted a cache or store before a re-encryption (at most one).
#[derive(Args, Debug, Default, Clone)]
struct PreviousKeyArgs {
    /// A key file holding the key the cache is encrypted with now.
    #[arg(long, value_name = "PATH", group = "previous")]
    previous_key_file: Option<PathBuf>,
    /// An environment variable holding the key the cache is encrypted with now.
    #[arg(long, value_name = "VAR", group = "previous")]
    previous_key_env: Option<String>,
    /// An OS keyring item holding the key the cache is encrypted with now.
    #[arg(long, value_name = "NAME", group = "previous")]
    previous_keyring: Option<String>,
}

impl PreviousKeyArgs {
    fn as_key_args(&self) -> KeyArgs {
        KeyArgs {
            key_file: self.previous_key_file.clone(),
            key_env: self.previous_key_env.clone(),
            keyring: self.previous_keyring.clone(),
        }
    }
}

/// Opens a store URL for a verb that reads, or writes each partition back as it was.
async fn open_store(url: &str, key: &KeyArgs) -> Result<StoreAccess, CliError> {
    StoreAccess::open(url, key.key(false)?, None, Writes::Keep).await
}

/// Prints what `encrypt` or `decrypt` did to a store; exit 1 if a partition could not be read.
fn report_rewrite(url: &str, done: &stores::Rewritten, verb: &str) -> ExitCode {
    println!(
        "{url}: {verb} {} partition(s); {} already were",
        done.rewritten, done.unchanged
    );
    for (key, why) in &done.failed {
        println!("  partition {key:?} left as it was: {why}");
    }
    if done.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the accounts and tokens of a cache (secrets are never shown).
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
    /// Check a cache: exit 0 if MSAL can use every entry, 1 with a list of problems otherwise.
    Validate {
        /// The cache file, or a store URL.
        file: String,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Remove expired access tokens.
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
    LockStatus {
        /// The cache file, or a store URL.
        file: String,
    },
    /// Encrypt a plain cache file or every partition of a store (XChaCha20-Poly1305), or
    /// re-encrypt them with another key.
    Encrypt {
        /// The cache file, or a store URL.
        file: String,
        /// The key to encrypt with (created if a key file or keyring item does not exist yet).
        #[command(flatten)]
        key: KeyArgs,
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
    },
    /// Decrypt an encrypted cache file, or every partition of a store, back to MSAL's plain
    /// JSON.
    Decrypt {
        /// The cache file, or a store URL.
        file: String,
        /// The key it is encrypted with.
        #[command(flatten)]
        key: KeyArgs,
    },
}

fn store(file: &PathBuf, key: &KeyArgs) -> Result<FileStore, CliError> {
    let options = FileOptions {
        encryption: key.source()?,
        ..FileOptions::default()
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
            let (cache, partitions) = if stores::is_store_url(&file) {
                let loaded = stores::block_on(async {
                    stores::load_all(&open_store(&file, &key).await?).await
                })??;
                for (k, why) in loaded.unreadable {
                    eprintln!("warning: partition {k:?}: {why}");
                }
                (std::sync::Arc::new(loaded.whole), Some(loaded.partitions))
            } else {
                (load(&PathBuf::from(&file), &key)?, None)
            };
            let now = now.unwrap_or_else(|| SystemClock.now());
            let out = match (json, &partitions) {
                (true, _) => inspect::json(&cache, partitions.as_deref()),
                (false, None) => inspect::table(&cache, now),
                (false, Some(rows)) => format!(
                    "{}\n\n{}",
                    inspect::table(&cache, now),
                    inspect::partitions_table(rows, now)
                ),
            };
            println!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { file, key } if stores::is_store_url(&file) => {
            let stores::Loaded {
                whole, unreadable, ..
            } = stores::block_on(async {
                stores::load_all(&open_store(&file, &key).await?).await
            })??;
            let problems = whole.problems();
            if problems.is_empty() && unreadable.is_empty() {
                println!("{file}: ok");
                return Ok(ExitCode::SUCCESS);
            }
            println!("{file}: {} problem(s)", problems.len() + unreadable.len());
            for (k, why) in unreadable {
                println!("  partition {k:?}: {why}");
            }
            for p in problems {
                println!("  {p}");
            }
            Ok(ExitCode::from(1))
        }
        Command::Validate { file, key } => match load(&PathBuf::from(&file), &key) {
            Err(CliError::File(tokencache_file::FileError::Corrupt { source, .. })) => {
                println!("{file}: {source}");
                Ok(ExitCode::from(1))
            }
            Err(e) => Err(e),
            Ok(cache) => {
                let problems = cache.problems();
                if problems.is_empty() {
                    println!("{file}: ok");
                    return Ok(ExitCode::SUCCESS);
                }
                println!("{file}: {} problem(s)", problems.len());
                for p in problems {
                    println!("  {p}");
                }
                Ok(ExitCode::from(1))
            }
        },
        Command::Prune { file, now, key } if stores::is_store_url(&file) => {
            let now = now.unwrap_or_else(|| SystemClock.now());
            let removed = stores::block_on(async {
                stores::prune(&open_store(&file, &key).await?, now).await
            })??;
            println!("removed {removed} expired access token(s)");
            Ok(ExitCode::SUCCESS)
        }
        Command::Prune { file, now, key } => {
            let file = PathBuf::from(file);
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
            ..
        } if stores::is_store_url(&file) => {
            let deleted = stores::block_on(async {
                stores::delete_partition(
                    &open_store(&file, &KeyArgs::default()).await?,
                    &home_account_id,
                )
                .await
            })??;
            println!(
                "{}",
                if deleted {
                    "deleted the account's partition"
                } else {
                    "no partition for that account"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::RemoveAccount {
            file,
            home_account_id,
            key,
        } => {
            let file = PathBuf::from(file);
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
        Command::Repair {
            file,
            dry_run,
            backup,
            key,
        } => {
            let now = SystemClock.now();
            let repairs = if stores::is_store_url(&file) {
                let backup =
                    backup.unwrap_or_else(|| format!("tokencache-repair-{now}.json").into());
                stores::block_on(async {
                    let access = open_store(&file, &key).await?;
                    stores::repair(&access, dry_run, || store(&backup, &key)).await
                })??
            } else {
                let path = PathBuf::from(&file);
                let cache = load(&path, &key)?;
                let planned = TokenCache::from_json(&cache.serialize())?.repair();
                if dry_run || planned.is_empty() {
                    planned
                } else {
                    let backup = backup.unwrap_or_else(|| {
                        PathBuf::from(format!("{}.before-repair-{now}", path.display()))
                    });
                    keep_copy(&path, &backup)?;
                    println!("a copy of the cache as it was: {}", backup.display());
                    store(&path, &key)?.update(|c| Ok(c.repair()))?
                }
            };
            if repairs.is_empty() {
                println!("{file}: nothing to repair");
            }
            for r in &repairs {
                println!("  {r}");
            }
            if dry_run && !repairs.is_empty() {
                println!(
                    "{file}: {} change(s) planned; nothing written (--dry-run)",
                    repairs.len()
                );
            } else if !repairs.is_empty() {
                println!("{file}: {} change(s) made", repairs.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::LockStatus { file } if stores::is_store_url(&file) => {
            // A store has no cache-wide lock; what can be held is a partition's refresh lease.
            let held = stores::block_on(async {
                let store = tokencache_store::open(&file).await?;
                Ok::<_, CliError>(store.leases().await?)
            })??;
            println!(
                "{file}: no cache-wide lock (each save compares and sets its partition's version); {} refresh lease(s) held",
                held.len()
            );
            for lease in held {
                println!(
                    "  partition {:?}: held by {} for {:.1}s more",
                    lease.partition,
                    lease.holder,
                    lease.expires_in.as_secs_f64()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::LockStatus { file } => {
            let file = PathBuf::from(file);
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
            let handed = tokencache_file::hand_overs(&file)?;
            if !handed.is_empty() {
                println!(
                    "{}: token responses handed over for the next writer (group commit): {} waiting, {} being written, {} rejected",
                    file.display(),
                    handed.waiting,
                    handed.being_written,
                    handed.rejected
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Encrypt { key, .. } if key.source()?.is_none() => Err(CliError::Usage(
            "encrypt needs --key-file, --key-env or --keyring".into(),
        )),
        Command::Encrypt {
            file,
            key,
            key_id,
            previous,
        } if stores::is_store_url(&file) => {
            let key_id = key_id.ok_or_else(|| {
                CliError::Usage(
                    "encrypting a store needs --key-id: the id the application gives this key"
                        .into(),
                )
            })?;
            let writes = Writes::Encrypted(key_id);
            let done = stores::block_on(async {
                let access = StoreAccess::open(
                    &file,
                    key.key(true)?,
                    previous.as_key_args().key(false)?,
                    writes.clone(),
                )
                .await?;
                stores::rewrite_all(&access, &writes).await
            })??;
            Ok(report_rewrite(&file, &done, "encrypted"))
        }
        Command::Encrypt {
            file,
            key,
            key_id,
            previous,
        } => {
            if key_id.is_some() {
                return Err(CliError::Usage(
                    "--key-id names a key for a store; a cache file records where its key comes from".into(),
                ));
            }
            let file = PathBuf::from(file);
            existing(&file)?;
            store(&file, &key)?.rewrite(previous.as_key_args().source()?.as_ref())?;
            println!("{}: encrypted", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate {
            from,
            to,
            key,
            key_id,
        } => {
            if from == to {
                return Err(CliError::Usage("FROM and TO are the same".into()));
            }
            if !stores::is_store_url(&from) {
                existing(&PathBuf::from(&from))?;
            }
            if key_id.is_some() && !stores::is_store_url(&to) {
                return Err(CliError::Usage(
                    "--key-id encrypts a target store; TO is a cache file".into(),
                ));
            }
            // A key that will encrypt a target store may be new (a key file is then created).
            let data_key = key.key(key_id.is_some())?;
            let target_writes = key_id.map_or(Writes::Keep, Writes::Encrypted);
            let ok = stores::block_on(async {
                let source =
                    stores::endpoint(&from, data_key.clone(), Writes::Keep, |p| store(&p, &key))
                        .await?;
                let target =
                    stores::endpoint(&to, data_key, target_writes, |p| store(&p, &key)).await?;
                stores::migrate(source, target).await
            })??;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Decrypt { file, key } if stores::is_store_url(&file) => {
            let done = stores::block_on(async {
                let access = StoreAccess::open(&file, key.key(false)?, None, Writes::Plain).await?;
                stores::rewrite_all(&access, &Writes::Plain).await
            })??;
            Ok(report_rewrite(&file, &done, "decrypted"))
        }
        Command::Decrypt { file, key } => {
            let file = PathBuf::from(file);
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

/// Copies `file` byte for byte to a new file `to`, readable by its owner only.
fn keep_copy(file: &PathBuf, to: &PathBuf) -> Result<(), CliError> {
    use std::io::Write;
    let bytes = std::fs::read(file).map_err(|source| CliError::Read {
        path: file.clone(),
        source,
    })?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options
        .open(to)
        .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()));
    written.map_err(|source| CliError::Write {
        path: to.clone(),
        source,
    })
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
