//! The key options every verb takes for encrypted caches and stores.

use std::path::PathBuf;

use clap::Args;
use tokencache_file::{DataKey, KeySource};

use crate::error::CliError;

/// Where the key of an encrypted cache comes from (at most one).
#[derive(Args, Debug, Default, Clone)]
pub struct KeyArgs {
    /// A key file (64 hex digits or base64 of 32 bytes).
    #[arg(long, value_name = "PATH", group = "key")]
    pub key_file: Option<PathBuf>,
    /// An environment variable holding the key.
    #[arg(long, value_name = "VAR", group = "key")]
    pub key_env: Option<String>,
    /// An item in the OS keyring holding the key (the Secret Service on Linux, the login
    /// Keychain on macOS, Credential Manager on Windows).
    #[arg(long, value_name = "NAME", group = "key")]
    pub keyring: Option<String>,
}

impl KeyArgs {
    /// Where the key comes from, if one was given.
    pub fn source(&self) -> Result<Option<KeySource>, CliError> {
        if let Some(p) = &self.key_file {
            return Ok(Some(KeySource::File(p.clone())));
        }
        if let Some(v) = &self.key_env {
            return Ok(Some(KeySource::Env(v.clone())));
        }
        if let Some(name) = &self.keyring {
            #[cfg(all(
                feature = "keyring",
                any(target_os = "linux", target_os = "macos", target_os = "windows")
            ))]
            return Ok(Some(KeySource::Keyring { name: name.clone() }));
            #[cfg(not(all(
                feature = "keyring",
                any(target_os = "linux", target_os = "macos", target_os = "windows")
            )))]
            return Err(CliError::Usage(format!(
                "--keyring {name}: this tokencache was built without the OS keyring (cargo feature `keyring`; Linux, macOS and Windows have one)"
            )));
        }
        Ok(None)
    }

    /// The key itself, if one was given. A key file or keyring item that does not exist is an
    /// error: only [`KeyArgs::key_to_encrypt_with`] makes one, when asked to.
    #[cfg(feature = "stores")]
    pub fn key(&self) -> Result<Option<DataKey>, CliError> {
        Ok(self.source()?.map(|s| s.resolve(false)).transpose()?)
    }

    /// The key to encrypt with. It must exist, unless `new_key`: then a key file or keyring
    /// item is made for it, and stderr says where (an existing one is never replaced).
    pub fn key_to_encrypt_with(&self, new_key: bool) -> Result<DataKey, CliError> {
        let source = self.source()?.ok_or_else(|| {
            CliError::Usage("encrypting needs a key: --key-file, --key-env or --keyring".into())
        })?;
        match (&source, new_key) {
            (KeySource::File(path), false) if !path.exists() => Err(CliError::Usage(format!(
                "no key file {}; to make a new key there, add --new-key",
                path.display()
            ))),
            (KeySource::File(path), true) if path.exists() => Err(CliError::Usage(format!(
                "{} already exists; --new-key never replaces a key (leave --new-key out to use it)",
                path.display()
            ))),
            (KeySource::File(path), true) => {
                let key = source.resolve(true)?;
                eprintln!(
                    "tokencache: a new key was written to {} (owner-only); keep it: the cache cannot be read without it",
                    path.display()
                );
                Ok(key)
            }
            (KeySource::Env(_), true) => Err(CliError::Usage(
                "--new-key makes a key file or a keyring item; with --key-env, set the variable to a key".into(),
            )),
            (_, false) => Ok(source.resolve(false).map_err(|e| match e {
                tokencache_file::FileError::Key { reason } => CliError::Usage(format!(
                    "{reason}; to make a new key, add --new-key"
                )),
                other => other.into(),
            })?),
            (_, true) => {
                if source.resolve(false).is_ok() {
                    return Err(CliError::Usage(
                        "the keyring item already holds a key; --new-key never replaces a key (leave --new-key out to use it)".into(),
                    ));
                }
                let key = source.resolve(true)?;
                if let Some(name) = &self.keyring {
                    eprintln!(
                        "tokencache: a new key was stored in the OS keyring as {name:?}; the cache cannot be read without it"
                    );
                }
                Ok(key)
            }
        }
    }
}

/// The key that encrypted a cache or store before a re-encryption (at most one).
#[derive(Args, Debug, Default, Clone)]
pub struct PreviousKeyArgs {
    /// A key file holding the key the cache is encrypted with now.
    #[arg(long, value_name = "PATH", group = "previous")]
    pub previous_key_file: Option<PathBuf>,
    /// An environment variable holding the key the cache is encrypted with now.
    #[arg(long, value_name = "VAR", group = "previous")]
    pub previous_key_env: Option<String>,
    /// An OS keyring item holding the key the cache is encrypted with now.
    #[arg(long, value_name = "NAME", group = "previous")]
    pub previous_keyring: Option<String>,
}

impl PreviousKeyArgs {
    /// The same choice, as the key options.
    pub fn as_key_args(&self) -> KeyArgs {
        KeyArgs {
            key_file: self.previous_key_file.clone(),
            key_env: self.previous_key_env.clone(),
            keyring: self.previous_keyring.clone(),
        }
    }
}
