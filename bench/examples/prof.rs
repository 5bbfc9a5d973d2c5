//! Profiling helper: parse or serialize one cache file repeatedly.
fn main() {
    let text = std::fs::read_to_string(
        std::env::args()
            .nth(2)
            .unwrap_or("/tmp/bench2k.json".into()),
    )
    .expect("read");
    let mode = std::env::args().nth(1).unwrap_or_default();
    let iters: u32 = std::env::var("ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let cache = tokencache::TokenCache::from_json(&text).expect("parse");
    let t = std::time::Instant::now();
    let mut total = 0;
    for _ in 0..iters {
        if mode == "ser" {
            total += cache.serialize().len();
        } else {
            total += tokencache::TokenCache::from_json(&text)
                .expect("parse")
                .len(tokencache::Section::AccessToken);
        }
    }
    eprintln!("{mode}: {:?} per run ({total})", t.elapsed() / iters);
}
