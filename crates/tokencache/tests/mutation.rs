//! The fuzz targets' checks (`fuzz/fuzz_targets/check.rs`), run with stable Rust on mutated
//! inputs for a bounded time: byte flips, insertions, deletions, duplicated and dropped runs,
//! and splices between seeds. Caches start from every cache MSAL Python wrote for the golden
//! files and from the sample caches; hand-over records, token responses, ID tokens and stored
//! partitions (plain and sealed) start from the golden scenarios' responses.
//! `TOKENCACHE_MUTATIONS` sets how many cache inputs (default 100,000; a quarter of that for
//! each other parser); each loop also stops after its time budget.

#[path = "../../../fuzz/fuzz_targets/check.rs"]
mod check;
mod common;

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

/// Seeds for the other parsers, from the golden scenarios: (hand-over records, token
/// responses, ID tokens, stored partitions).
fn untrusted_seeds() -> [Vec<Vec<u8>>; 4] {
    use tokencache::json::{JsonObject, JsonValue};
    let text =
        std::fs::read_to_string(common::golden_dir().join("scenarios.json")).expect("scenarios");
    let scenarios = JsonObject::parse(&text).expect("scenarios parse");
    let (mut records, mut responses, mut id_tokens) = (Vec::new(), Vec::new(), Vec::new());
    for (_, events) in scenarios.iter() {
        let JsonValue::Array(events) = events else {
            continue;
        };
        for event in events.iter() {
            let JsonValue::Object(event) = event else {
                continue;
            };
            let mut record = JsonObject::new();
            record.insert("now", JsonValue::Number("1700000000".into()));
            record.insert("event", JsonValue::Object(event.clone()));
            records.push(record.to_python_json(false).into_bytes());
            if let Some(JsonValue::Object(response)) = event.get("response") {
                responses.push(response.to_python_json(false).into_bytes());
                if let Some(id_token) = response.get_str("id_token") {
                    id_tokens.push(id_token.as_bytes().to_vec());
                }
            }
        }
    }
    let mut partitions = Vec::new();
    for seed in seeds() {
        let Ok(text) = std::str::from_utf8(&seed) else {
            continue;
        };
        let Ok(cache) = tokencache::TokenCache::from_json(text) else {
            continue;
        };
        for (key, document) in cache.split_partitions() {
            #[cfg(feature = "crypto")]
            partitions.push(
                tokencache::seal::Envelope::PARTITION
                    .seal(
                        &tokencache::seal::DataKey::from_bytes([7; 32]),
                        "k1",
                        b"p.t",
                        document.as_bytes(),
                    )
                    .expect("seal"),
            );
            let _ = key;
            partitions.push(document.into_bytes());
        }
    }
    for (what, seeds) in [
        ("records", &records),
        ("responses", &responses),
        ("ID tokens", &id_tokens),
        ("partitions", &partitions),
    ] {
        assert!(seeds.len() >= 5, "{what}: {} seeds", seeds.len());
    }
    [records, responses, id_tokens, partitions]
}

#[test]
fn mutated_records_responses_id_tokens_and_partitions_never_panic() {
    let count: usize = std::env::var("TOKENCACHE_MUTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000)
        / 4;
    type Check = fn(&[u8]);
    let checks: [(&str, Check); 4] = [
        ("hand-over records", check::check_hand_over_record),
        ("token responses", check::check_token_response),
        ("ID tokens", check::check_id_token),
        ("stored partitions", check::check_partition_document),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for ((what, check), seeds) in checks.into_iter().zip(untrusted_seeds()) {
        let budget = Duration::from_secs(15);
        let started = Instant::now();
        for seed in &seeds {
            check(seed);
        }
        let mut ran = 0;
        while ran < count && started.elapsed() < budget {
            let mut input = seeds[rng.below(seeds.len())].clone();
            mutate(&mut rng, &seeds, &mut input);
            check(&input);
            ran += 1;
        }
        eprintln!(
            "{ran} mutated {what} in {:.1} s, no panic",
            started.elapsed().as_secs_f64()
        );
        assert!(ran >= 1_000.min(count), "{what}: only {ran} inputs ran");
    }
}
