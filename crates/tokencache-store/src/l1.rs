//! The optional in-process L1: parsed partitions by key, bounded in bytes, each with the
//! version it was read at (checked against the store before use) and a lifetime. Eviction is
//! oldest-inserted first; replaced and removed entries leave stale markers in the queue that
//! eviction skips, so every operation is O(1) amortized.

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
    generation: u64,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<String, Entry>,
    order: VecDeque<(String, u64)>,
    bytes: usize,
    next_generation: u64,
}

#[derive(Debug)]
pub(crate) struct L1 {
    max_bytes: usize,
    ttl: Duration,
    inner: Mutex<Inner>,
}

impl Inner {
    fn remove(&mut self, key: &str) {
        if let Some(e) = self.map.remove(key) {
            self.bytes -= e.bytes;
        }
    }

    fn evict_oldest(&mut self) -> bool {
        while let Some((key, generation)) = self.order.pop_front() {
            if self
                .map
                .get(&key)
                .is_some_and(|e| e.generation == generation)
            {
                self.remove(&key);
                return true;
            }
        }
        false
    }
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
            inner.remove(key);
            return None;
        }
        Some((entry.version, entry.cache.clone()))
    }

    pub fn put(&self, key: &str, version: u64, cache: Arc<TokenCache>, bytes: usize) {
        if bytes > self.max_bytes {
            return;
        }
        let mut inner = self.inner();
        inner.remove(key);
        while inner.bytes + bytes > self.max_bytes && inner.evict_oldest() {}
        let generation = inner.next_generation;
        inner.next_generation += 1;
        inner.bytes += bytes;
        inner.order.push_back((key.to_owned(), generation));
        inner.map.insert(
            key.to_owned(),
            Entry {
                version,
                cache,
                bytes,
                at: Instant::now(),
                generation,
            },
        );
        // Drop stale markers now and then so the queue stays proportional to the map.
        if inner.order.len() > 2 * inner.map.len() + 1024 {
            let Inner { map, order, .. } = &mut *inner;
            order.retain(|(k, g)| map.get(k).is_some_and(|e| e.generation == *g));
        }
    }

    pub fn remove(&self, key: &str) {
        self.inner().remove(key);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_bytes_oldest_first_with_replacements() {
        let l1 = L1::new(300, Duration::from_secs(60));
        let c = Arc::new(TokenCache::new());
        l1.put("a", 1, c.clone(), 100);
        l1.put("b", 1, c.clone(), 100);
        l1.put("a", 2, c.clone(), 100); // replaced: now the newest
        l1.put("c", 1, c.clone(), 100);
        l1.put("d", 1, c.clone(), 100); // evicts b (the oldest live), not a
        assert!(l1.get("b").is_none());
        assert_eq!(l1.get("a").unwrap().0, 2);
        assert!(l1.get("c").is_some() && l1.get("d").is_some());
        l1.put("huge", 1, c.clone(), 301);
        assert!(l1.get("huge").is_none());
        l1.remove("a");
        assert!(l1.get("a").is_none());
        for i in 0..5000 {
            l1.put(&format!("k{}", i % 3), i, c.clone(), 10);
        }
        let inner = l1.inner();
        assert!(inner.order.len() <= 2 * inner.map.len() + 1024);
    }

    #[test]
    fn entries_expire() {
        let l1 = L1::new(1000, Duration::from_millis(10));
        l1.put("a", 1, Arc::new(TokenCache::new()), 10);
        std::thread::sleep(Duration::from_millis(20));
        assert!(l1.get("a").is_none());
    }
}
