//! The optional in-process L1: parsed partitions by key, bounded in bytes, each with the
//! version it was read at (checked against the store before use) and a lifetime.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokencache::TokenCache;

#[derive(Debug)]
struct Entry {
    version: u64,
    cache: Arc<TokenCache>,
    bytes: usize,
    at: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<String, Entry>,
    order: VecDeque<String>,
    bytes: usize,
}

#[derive(Debug)]
pub(crate) struct L1 {
    max_bytes: usize,
    ttl: Duration,
    inner: Mutex<Inner>,
}

impl L1 {
    pub fn new(max_bytes: usize, ttl: Duration) -> L1 {
        L1 {
            max_bytes,
            ttl,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, key: &str) -> Option<(u64, Arc<TokenCache>)> {
        let mut inner = self.inner();
        let entry = inner.map.get(key)?;
        if entry.at.elapsed() > self.ttl {
            remove_locked(&mut inner, key);
            return None;
        }
        Some((entry.version, entry.cache.clone()))
    }

    pub fn put(&self, key: &str, version: u64, cache: Arc<TokenCache>, bytes: usize) {
        if bytes > self.max_bytes {
            return;
        }
        let mut inner = self.inner();
        remove_locked(&mut inner, key);
        while inner.bytes + bytes > self.max_bytes {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(e) = inner.map.remove(&oldest) {
                inner.bytes -= e.bytes;
            }
        }
        inner.bytes += bytes;
        inner.order.push_back(key.to_owned());
        inner.map.insert(
            key.to_owned(),
            Entry {
                version,
                cache,
                bytes,
                at: Instant::now(),
            },
        );
    }

    pub fn remove(&self, key: &str) {
        remove_locked(&mut self.inner(), key);
    }
}

fn remove_locked(inner: &mut Inner, key: &str) {
    if let Some(e) = inner.map.remove(key) {
        inner.bytes -= e.bytes;
        inner.order.retain(|k| k != key);
    }
}
