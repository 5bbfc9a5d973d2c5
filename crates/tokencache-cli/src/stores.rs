//! The verbs on partitioned stores (`sqlite://`, `postgres://`, `redis://`,
//! `redis+cluster://`), and `migrate` between stores and cache files.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokencache::{PartitionKey, Section, TokenCache};
use tokencache_store::{SaveExpiry, StoreError, Updated};

use crate::error::CliError;
use crate::report::PartitionRow;
use crate::store_access::{StoreAccess, Writes};

/// A runtime for the store verbs (the file verbs need none).
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, CliError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Usage(format!("cannot start the async runtime: {e}")))?;
    Ok(rt.block_on(f))
}

/// A whole store, read once ([`load_all`]).
pub struct Loaded {
    /// Every readable partition merged into one cache (for display and checks).
    pub whole: TokenCache,
    /// The partitions that could not be read, with why.
    pub unreadable: Vec<(String, String)>,
    /// Every stored partition's size, encryption key id, creation and expiry (read from the
    /// stored documents, so unreadable ones are listed too).
    pub partitions: Vec<PartitionRow>,
}

/// Reads every partition of the store once.
pub async fn load_all(access: &StoreAccess) -> Result<Loaded, CliError> {
    let mut loaded = Loaded {
        whole: TokenCache::new(),
        unreadable: Vec::new(),
        partitions: Vec::new(),
    };
    for key in access.store().keys().await? {
        // Gone since the listing (deleted or expired): nothing to show.
        let Some(stored) = access.store().load(&key).await? else {
            continue;
        };
        let pk = PartitionKey::new(key.clone());
        let part = access
            .cache_for_document(&stored.document)
            .and_then(|cache| Ok(cache.decode_partition(&pk, &stored)?));
        match part {
            Ok(part) => loaded.whole.replace_partition(&pk, &part.serialize())?,
            Err(e) => loaded.unreadable.push((key.clone(), e.to_string())),
        }
        loaded.partitions.push(PartitionRow {
            bytes: stored.document.len(),
            key_id: tokencache_store::encrypted_key_id(&stored.document),
            created_at: stored.created_at,
            expires_at: stored.expires_at,
            key,
        });
    }
    Ok(loaded)
}

/// Counts of the entries that partitions carry.
/// Every entry of a cache document, secrets included, by section and key: what a migration
/// must carry over unchanged, whatever order the entries end up in.
fn content(cache: &TokenCache) -> Result<BTreeMap<(String, String), String>, CliError> {
    let document = tokencache::json::JsonObject::parse(&cache.serialize())?;
    let mut entries = BTreeMap::new();
    for (section, value) in document.iter() {
        match value {
            tokencache::json::JsonValue::Object(members) => {
                for (key, entry) in members.iter() {
                    entries.insert(
                        (section.to_owned(), key.to_owned()),
                        tokencache::json::to_python_json(entry, false),
                    );
                }
            }
            other => {
                entries.insert(
                    (section.to_owned(), String::new()),
                    tokencache::json::to_python_json(other, false),
                );
            }
        }
    }
    Ok(entries)
}

fn counts(cache: &TokenCache) -> [usize; 4] {
    [
        cache.len(Section::AccessToken),
        cache.len(Section::RefreshToken),
        cache.len(Section::IdToken),
        cache.len(Section::Account),
    ]
}

/// A progress bar on stderr (indicatif), drawn only when stderr is a terminal.
struct Progress(indicatif::ProgressBar);

impl Progress {
    fn new(total: usize, what: &'static str) -> Progress {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total as u64),
            indicatif::ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template("[{bar:30}] {pos}/{len} {msg}") {
            bar.set_style(style.progress_chars("#-"));
        }
        bar.set_message(what);
        Progress(bar)
    }

    fn tick(&mut self) {
        self.0.inc(1);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Where a migration reads from or writes to.
pub enum Endpoint {
    File(Arc<tokencache_file::FileStore>),
    Store(Box<StoreAccess>),
}

/// Copies every partition from `from` to `to`, checks that everything arrived, and prints a
/// summary. Returns false when the target does not hold what the source held.
pub async fn migrate(from: Endpoint, to: Endpoint) -> Result<bool, CliError> {
    // Between stores, each partition keeps its expiry; from a file, which records none, it
    // gets the target store's.
    let mut expiries: HashMap<String, Option<i64>> = HashMap::new();
    // Read the source as partition documents.
    let (source_whole, parts, unreadable) = match &from {
        Endpoint::File(file) => {
            file.reload()?;
            let whole = file.cache().clone();
            let parts = whole.split_partitions();
            let foreign = whole.problems().len();
            if foreign > 0 {
                eprintln!(
                    "note: {foreign} malformed entr(y/ies) belong to no partition and are not migrated"
                );
            }
            (
                TokenCache::from_json(&whole.serialize())?,
                parts,
                Vec::new(),
            )
        }
        Endpoint::Store(cache) => {
            let loaded = load_all(cache).await?;
            let parts = loaded.whole.split_partitions();
            expiries = loaded
                .partitions
                .into_iter()
                .map(|row| (row.key, row.expires_at))
                .collect();
            (loaded.whole, parts, loaded.unreadable)
        }
    };
    for (key, why) in &unreadable {
        eprintln!("warning: partition {key:?} not migrated: {why}");
    }
    let mut progress = Progress::new(parts.len(), "partitions");
    match &to {
        Endpoint::Store(target) => {
            for (key, doc) in &parts {
                let doc = doc.clone();
                let k = key.clone();
                let expiry = expiries
                    .get(key.as_str())
                    .map_or(SaveExpiry::Renew, |at| SaveExpiry::At(*at));
                target
                    .cache_for(key.as_str())
                    .await?
                    .update_partition_with(
                        key,
                        &move |c: &TokenCache| c.replace_partition(&k, &doc),
                        expiry,
                    )
                    .await?;
                progress.tick();
            }
        }
        Endpoint::File(file) => {
            let copied = parts.clone();
            let file = file.clone();
            tokio::task::spawn_blocking(move || {
                file.update(|c| {
                    for (key, doc) in &copied {
                        c.replace_partition(key, doc)?;
                    }
                    Ok(())
                })
            })
            .await
            .map_err(|e| CliError::Usage(e.to_string()))??;
            for _ in 0..parts.len() {
                progress.tick();
            }
        }
    }
    // Verify: every partition of the source is in the target with the same entries, member
    // for member, secrets included.
    let target_whole = match &to {
        Endpoint::File(file) => {
            file.reload()?;
            TokenCache::from_json(&file.cache().serialize())?
        }
        Endpoint::Store(cache) => load_all(cache).await?.whole,
    };
    let mut ok = unreadable.is_empty();
    for (key, _) in &parts {
        let want = TokenCache::from_json(&source_whole.serialize_partition(key))?;
        let got = TokenCache::from_json(&target_whole.serialize_partition(key))?;
        if content(&want)? != content(&got)? {
            eprintln!("error: partition {key:?} differs after migration");
            ok = false;
        }
    }
    let [at, rt, idt, acct] = counts(&source_whole);
    outln!(
        "migrated {} partition(s): {at} access token(s), {rt} refresh token(s), {idt} ID token(s), {acct} account(s){}",
        parts.len(),
        if ok {
            "; verified"
        } else {
            "; VERIFICATION FAILED"
        }
    );
    Ok(ok)
}

/// Opens either end of a migration. A store written to is encrypted under `key_id` when one
/// is given; otherwise each of its partitions keeps its state.
pub async fn endpoint(
    location: &str,
    key: Option<tokencache_file::DataKey>,
    writes: Writes,
    file_store: impl FnOnce(PathBuf) -> Result<tokencache_file::FileStore, CliError>,
) -> Result<Endpoint, CliError> {
    if crate::target::is_store_url(location) {
        Ok(Endpoint::Store(Box::new(
            StoreAccess::open(location, key, None, writes).await?,
        )))
    } else {
        Ok(Endpoint::File(Arc::new(file_store(PathBuf::from(
            location,
        ))?)))
    }
}

/// Deletes a partition, for `remove-account` on a store.
pub async fn delete_partition(access: &StoreAccess, key: &str) -> Result<bool, CliError> {
    Ok(access.store().delete(key, None).await?)
}

/// What [`prune`] did.
#[derive(Debug, Default)]
pub struct Pruned {
    /// Access tokens removed.
    pub removed: usize,
    /// Partitions that could not be read, and why (left as they were).
    pub skipped: Vec<(String, String)>,
}

/// Purges expired access tokens in every partition (each keeps its encryption and expiry).
/// A partition with nothing to purge is not written; one that cannot be read is skipped and
/// reported, and the others are still pruned.
pub async fn prune(access: &StoreAccess, now: i64) -> Result<Pruned, CliError> {
    let mut pruned = Pruned::default();
    let keys = access.store().keys().await?;
    let mut progress = Progress::new(keys.len(), "partitions");
    // The change may run more than once (compare-and-set retries); the last run's count counts.
    let purged = Mutex::new(0);
    for key in keys {
        let pk = PartitionKey::new(key.as_str());
        *locked(&purged) = 0;
        let outcome = match access.cache_for(&key).await {
            Ok(cache) => cache
                .update_partition_with(
                    &pk,
                    &|c: &TokenCache| {
                        *locked(&purged) = c.purge_expired_access_tokens(now);
                        Ok(())
                    },
                    SaveExpiry::Keep,
                )
                .await
                .map_err(CliError::from),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(_) => pruned.removed += *locked(&purged),
            Err(e @ CliError::Store(StoreError::Unavailable { .. })) => return Err(e),
            Err(e) => pruned.skipped.push((key.clone(), e.to_string())),
        }
        progress.tick();
    }
    Ok(pruned)
}

/// What [`rewrite_all`] did.
#[derive(Debug, Default)]
pub struct Rewritten {
    /// Partitions written again (encrypted, re-encrypted or decrypted).
    pub rewritten: usize,
    /// Partitions already as asked.
    pub unchanged: usize,
    /// Partitions that could not be read (left as they were), with why.
    pub failed: Vec<(String, String)>,
}

/// Writes every partition again as `access` writes them (`encrypt` and `decrypt` on a store):
/// each with compare-and-set, so a request saving at the same time loses nothing. A partition
/// that cannot be read is left untouched and reported.
pub async fn rewrite_all(access: &StoreAccess, writes: &Writes) -> Result<Rewritten, CliError> {
    let mut done = Rewritten::default();
    let keys = access.store().keys().await?;
    let mut progress = Progress::new(keys.len(), "partitions");
    for key in keys {
        let id = access.key_id(&key).await?;
        let as_asked = match writes {
            Writes::Encrypted(to) => id.as_deref() == Some(to.as_str()),
            Writes::Plain => id.is_none(),
            Writes::Keep => true,
        };
        if as_asked {
            done.unchanged += 1;
        } else {
            let pk = PartitionKey::new(key.as_str());
            let result = match access.cache_for_key_id(id) {
                Ok(cache) => cache
                    .update_partition_with(&pk, &|_: &TokenCache| Ok(()), SaveExpiry::Keep)
                    .await
                    .map_err(CliError::from),
                Err(e) => Err(e),
            };
            match result {
                Ok(Updated::Unchanged) => done.unchanged += 1,
                Ok(_) => done.rewritten += 1,
                Err(e) => done.failed.push((key, e.to_string())),
            }
        }
        progress.tick();
    }
    Ok(done)
}

/// Repairs every partition (`repair` on a store). Unless `dry_run`, first writes all readable
/// partitions, merged, to the cache file `backup` opens (refused if it exists), so nothing the
/// repair removes is lost. A partition that cannot be read is reported and left alone.
pub async fn repair(
    access: &StoreAccess,
    dry_run: bool,
    backup: impl FnOnce() -> Result<tokencache_file::FileStore, CliError>,
) -> Result<Vec<tokencache::Repair>, CliError> {
    let loaded = load_all(access).await?;
    for (key, why) in &loaded.unreadable {
        eprintln!("warning: partition {key:?} not repaired: {why}");
    }
    let parts = loaded.whole.split_partitions();
    let mut planned = Vec::new();
    for (_, doc) in &parts {
        planned.extend(TokenCache::from_json(doc)?.repair());
    }
    if dry_run || planned.is_empty() {
        return Ok(planned);
    }
    let mut repairs = Vec::new();
    let file = backup()?;
    if file.path().exists() {
        return Err(CliError::Usage(format!(
            "{} exists; give another --backup",
            file.path().display()
        )));
    }
    file.update(|c| {
        for (key, doc) in &parts {
            c.replace_partition(key, doc)?;
        }
        Ok(())
    })?;
    outln!("a copy of the store as it was: {}", file.path().display());
    // The change may run more than once (compare-and-set retries); the last run's list counts.
    let found = Mutex::new(Vec::new());
    for (key, _) in &parts {
        access
            .cache_for(key.as_str())
            .await?
            .update_partition_with(
                key,
                &|c: &TokenCache| {
                    *locked(&found) = c.repair();
                    Ok(())
                },
                SaveExpiry::Keep,
            )
            .await?;
        repairs.append(&mut locked(&found));
    }
    Ok(repairs)
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

    use super::*;

    fn with_secret(secret: &str) -> TokenCache {
        TokenCache::from_json(&format!(
            r#"{{"RefreshToken": {{"uid.utid-login.microsoftonline.com-refreshtoken-cid--": {{
                "credential_type": "RefreshToken", "secret": "{secret}", "home_account_id": "uid.utid",
                "environment": "login.microsoftonline.com", "client_id": "cid", "target": ""}}}}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn a_migration_is_verified_by_content_not_by_counts() {
        let (sent, arrived) = (with_secret("RT-1"), with_secret("RT-2"));
        assert_eq!(
            counts(&sent),
            counts(&arrived),
            "counts cannot tell them apart"
        );
        assert_ne!(content(&sent).unwrap(), content(&arrived).unwrap());
        assert_eq!(
            content(&sent).unwrap(),
            content(&with_secret("RT-1")).unwrap()
        );
    }
}
