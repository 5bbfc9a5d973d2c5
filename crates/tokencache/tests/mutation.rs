//! The fuzz target's check (`fuzz/fuzz_targets/check.rs`), run with stable Rust on mutated
//! caches for a bounded time: byte flips, insertions, deletions, duplicated and dropped runs,
//! and splices between seeds, starting from every cache MSAL Python wrote for the golden files
//! and from the sample caches. `TOKENCACHE_MUTATIONS` sets how many inputs (default 100,000);
//! the loop also stops after 60 seconds.

#[path = "../../../fuzz/fuzz_targets/check.rs"]
mod check;

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// xorshift64*: a small deterministic generator, so a failure can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut seeds = Vec::new();
    for dir in ["tests/golden", "examples/caches"] {
        let mut paths: Vec<_> = std::fs::read_dir(root.join(dir))
            .expect("seed directory")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        for path in paths {
            seeds.push(std::fs::read(&path).expect("seed"));
        }
    }
    assert!(seeds.len() >= 5, "seeds found: {}", seeds.len());
    seeds
}

/// Bytes that matter to the parser, for insertions.
const INTERESTING: &[u8] = b"{}[]\",:\\0123456789.eE+-tfnu \n\t\x00\xff";

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(6) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(len + 1);
                let b = INTERESTING[rng.below(INTERESTING.len())];
                input.insert(i, b);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below(16.min(len - i));
                input.drain(i..i + n);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below(64.min(len - i));
                let run: Vec<u8> = input[i..i + n].to_vec();
                let at = rng.below(input.len() + 1);
                input.splice(at..at, run);
            }
            4 => {
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let n = 1 + rng.below(256.min(other.len() - from));
                    let at = rng.below(len + 1);
                    input.splice(at..at, other[from..from + n].iter().copied());
                }
            }
            _ if len > 0 => input.truncate(rng.below(len)),
            _ => {}
        }
    }
}

#[test]
fn mutated_caches_never_panic_and_what_parses_round_trips() {
    let seeds = seeds();
    let count: usize = std::env::var("TOKENCACHE_MUTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let budget = Duration::from_secs(60);
    let started = Instant::now();
    let mut rng = Rng(0x853c_49e6_748f_ea9b);
    let mut ran = 0;
    for seed in &seeds {
        check::check_cache_input(seed);
    }
    while ran < count && started.elapsed() < budget {
        let mut input = seeds[rng.below(seeds.len())].clone();
        // Shrink big seeds now and then, so that small inputs get their share.
        if input.len() > 4096 && rng.below(2) == 0 {
            input.truncate(4096 + rng.below(4096));
        }
        mutate(&mut rng, &seeds, &mut input);
        check::check_cache_input(&input);
        ran += 1;
    }
    eprintln!(
        "{ran} mutated caches in {:.1} s, no panic",
        started.elapsed().as_secs_f64()
    );
    assert!(ran >= 1_000.min(count), "only {ran} inputs ran");
}
