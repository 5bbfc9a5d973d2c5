//! The `tokencache` command line tool: inspect, validate and repair MSAL token cache files
//! (the JSON format shared by MSAL Python, .NET, Node, Java, Go and the Azure CLI).
//!
//! Secrets are never printed. Writing verbs keep every unknown field and entry, write
//! atomically (a temporary file in the same directory, fsync, rename), keep the file's
//! permissions, and never touch a file they cannot parse.

mod atomic;
mod error;
mod inspect;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokencache::{Clock, SystemClock, TokenCache};

use crate::error::CliError;

/// Inspect, validate and repair MSAL token caches.
#[derive(Parser, Debug)]
#[command(name = "tokencache", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    },
    /// Check a cache: exit 0 if MSAL can use every entry, 1 with a list of problems otherwise.
    Validate {
        /// The cache file.
        file: PathBuf,
    },
    /// Remove expired access tokens.
    Prune {
        /// The cache file.
        file: PathBuf,
        /// The time to prune against, in Unix seconds (default: now).
        #[arg(long)]
        now: Option<i64>,
    },
    /// Remove every access, refresh and ID token and account entry of a home account, whatever
    /// the client (app metadata stays).
    RemoveAccount {
        /// The cache file.
        file: PathBuf,
        /// The home account id (`<uid>.<utid>` for Entra ID).
        home_account_id: String,
    },
}

fn load(file: &PathBuf) -> Result<(TokenCache, String), CliError> {
    let text = std::fs::read_to_string(file).map_err(|source| CliError::Read {
        path: file.clone(),
        source,
    })?;
    let cache = TokenCache::from_json(&text).map_err(|source| CliError::Parse {
        path: file.clone(),
        source,
    })?;
    Ok((cache, text))
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Inspect { file, json, now } => {
            let (cache, _) = load(&file)?;
            let now = now.unwrap_or_else(|| SystemClock.now());
            let out = if json {
                inspect::json(&cache)
            } else {
                inspect::table(&cache, now)
            };
            println!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { file } => {
            let text = std::fs::read_to_string(&file).map_err(|source| CliError::Read {
                path: file.clone(),
                source,
            })?;
            match TokenCache::from_json(&text) {
                Err(e) => {
                    println!("{}: {e}", file.display());
                    Ok(ExitCode::from(1))
                }
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
            }
        }
        Command::Prune { file, now } => {
            let (cache, _) = load(&file)?;
            let now = now.unwrap_or_else(|| SystemClock.now());
            let removed = cache.purge_expired_access_tokens(now);
            if removed > 0 {
                atomic::replace(&file, &cache.serialize())?;
            }
            println!("removed {removed} expired access token(s)");
            Ok(ExitCode::SUCCESS)
        }
        Command::RemoveAccount {
            file,
            home_account_id,
        } => {
            let (cache, _) = load(&file)?;
            let removed = cache.remove_account_everywhere(&home_account_id);
            if removed.total() > 0 {
                atomic::replace(&file, &cache.serialize())?;
            }
            println!(
                "removed {} access token(s), {} refresh token(s), {} ID token(s), {} account(s)",
                removed.access_tokens, removed.refresh_tokens, removed.id_tokens, removed.accounts
            );
            Ok(ExitCode::SUCCESS)
        }
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
