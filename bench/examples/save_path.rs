//! Times the steps of a partition save on one core: building the token response, `add_at`,
//! `serialize`, and the parse that starts it (`ROUNDS`, default 20,000). With `ADD_ONLY=N` it
//! also runs `add_at` N times on its own, for a profiler:
//!
//! ```text
//! cargo build --release -p tokencache-bench --example save_path
//! ROUNDS=1 ADD_ONLY=2000 valgrind --tool=callgrind ./target/release/examples/save_path
//! ```
#[path = "../src/workload.rs"]
#[allow(dead_code)]
mod workload;

use std::time::Instant;
use tokencache::TokenCache;

fn main() {
    let n: u32 = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let base = TokenCache::new();
    base.add_at(&workload::user_event(7, 1500, 800), 1_700_000_000)
        .expect("the benchmark workload is valid");
    let doc = base.serialize();
    let time = |name: &str, f: &mut dyn FnMut()| {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        eprintln!(
            "{name:>14}: {:.2} us",
            t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
        );
    };
    time("user_event", &mut || {
        drop(std::hint::black_box(workload::user_event(7, 1500, 800)))
    });
    time("parse", &mut || {
        drop(std::hint::black_box(
            TokenCache::from_json(&doc).expect("the benchmark workload is valid"),
        ))
    });
    let ev = workload::user_event(7, 1500, 800);
    time("parse+add_at", &mut || {
        let c = TokenCache::from_json(&doc).expect("the benchmark workload is valid");
        c.add_at(&ev, 1_700_000_100)
            .expect("the benchmark workload is valid");
        drop(std::hint::black_box(c));
    });
    let c = TokenCache::from_json(&doc).expect("the benchmark workload is valid");
    if std::env::var("ADD_ONLY").is_ok() {
        let rounds: u32 = std::env::var("ADD_ONLY")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        for _ in 0..rounds {
            c.add_at(&ev, 1_700_000_100)
                .expect("the benchmark workload is valid");
        }
    }
    time("serialize", &mut || {
        drop(std::hint::black_box(c.serialize()))
    });
}
