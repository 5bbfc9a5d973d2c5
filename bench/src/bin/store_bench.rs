//! Web-request-shaped silent acquisitions against the partitioned stores, side by side with
//! MSAL Python (a `SerializableTokenCache` per user in Redis through redis-py), in one run.
//!
//! ```text
//! cargo run --release -p tokencache-bench --bin store-bench -- [--partitions 100000]
//!     [--seconds 30] [--concurrency 64] [--backends redis,sqlite,postgres,memory] [--l1-mb 0]
//!     [--skip-python] [--workers 1]
//! ```
//!
//! Each request loads one random user's partition, finds the access token a silent call would
//! return, and one request in 20 (chosen at random) records a new token response and saves the
//! partition (compare-and-set). Phase 1 runs closed-loop at the given concurrency (peak
//! throughput); phase 2 paces requests at half that rate and reports the latency there.
//! Throughput per core divides by the CPU time the client process used. On Redis, MSAL
//! Python's peak phase and ours take turns in three slices (the same machine conditions for
//! both); the half-load phases run one after the other. The `memory` backend (an in-process
//! store, not in the default list) shows what the library itself costs, without a network or a
//! server.
//!
//! The client runs on one runtime worker thread by default: MSAL Python runs on one core (its
//! threads share the GIL), and a thread-per-core server runs one such worker per core.
//! `--workers 0` gives tokio's default, a worker per core; on a 2-core machine shared with
//! redis-server, the second worker looking for work made each request cost about 40% more CPU.

#[path = "../workload.rs"]
#[allow(dead_code)]
mod workload;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokencache::json::{JsonObject, JsonValue};
use tokencache::{AccessTokenQuery, PartitionKey, TokenCache};
use tokencache_store::{PartitionBackend, PartitionOptions, PartitionedCache};
use workload::{CID, ENV, home_account_id, user_event};

struct Options {
    partitions: usize,
    seconds: u64,
    concurrency: usize,
    backends: Vec<String>,
    refresh_every: u64,
    skip_python: bool,
    l1_mb: usize,
    /// Runtime worker threads (0: one per core, tokio's default).
    workers: usize,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        partitions: 100_000,
        seconds: 30,
        concurrency: 64,
        backends: vec!["redis".into(), "sqlite".into(), "postgres".into()],
        refresh_every: 20,
        skip_python: false,
        l1_mb: 0,
        workers: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--partitions" => o.partitions = value()?.parse().map_err(|_| "--partitions")?,
            "--seconds" => o.seconds = value()?.parse().map_err(|_| "--seconds")?,
            "--concurrency" => o.concurrency = value()?.parse().map_err(|_| "--concurrency")?,
            "--refresh-every" => {
                o.refresh_every = value()?.parse().map_err(|_| "--refresh-every")?
            }
            "--backends" => o.backends = value()?.split(',').map(str::to_owned).collect(),
            "--skip-python" => o.skip_python = true,
            "--l1-mb" => o.l1_mb = value()?.parse().map_err(|_| "--l1-mb")?,
            "--workers" => o.workers = value()?.parse().map_err(|_| "--workers")?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// CPU seconds (user + system) this process has used, from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the command name; 100 Hz.
    (ticks(11) + ticks(12)) / 100.0
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(16379)
}

fn start_redis() -> Result<(Server, u16), String> {
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no", "--protected-mode", "no"])
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("redis-server: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("redis-server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((Server(child), port))
}

/// The benchmark's own database, dropped when the benchmark is done with it.
struct Database {
    admin: String,
    name: String,
}

impl Drop for Database {
    fn drop(&mut self) {
        let dropped = Command::new("psql")
            .arg(&self.admin)
            .args([
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .status()
            .is_ok_and(|s| s.success());
        if !dropped {
            eprintln!("  (could not drop the benchmark database {})", self.name);
        }
    }
}

fn postgres_db() -> Result<(String, Database), String> {
    let base = std::env::var("TOKENCACHE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://tokencache@127.0.0.1:15432/tokencache".into());
    let name = format!("tc_bench_{:x}", tokencache_store::new_version());
    let ok = Command::new("psql")
        .arg(&base)
        .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .map_err(|e| format!("psql: {e}"))?
        .success();
    if !ok {
        return Err("could not create the benchmark database (bash .ci/setup-services)".into());
    }
    let head = base.rsplit_once('/').map_or(base.as_str(), |(h, _)| h);
    let url = format!("{head}/{name}");
    Ok((url, Database { admin: base, name }))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The partition document of user `i`, as the client would have saved it (tokens issued now).
fn document(i: usize) -> Result<String, tokencache::Error> {
    let cache = TokenCache::new();
    cache.add_at(&user_event(i, 1500, 800), unix_now())?;
    Ok(cache.serialize())
}

async fn populate(
    store: &Arc<dyn PartitionBackend>,
    partitions: usize,
) -> Result<usize, Box<dyn std::error::Error>> {
    let workers = 32;
    let expires = Some(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs() as i64
            + 86_400,
    );
    let mut tasks = Vec::new();
    for w in 0..workers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut bytes = 0usize;
            for i in (w..partitions).step_by(workers) {
                let doc = document(i).map_err(|e| e.to_string())?;
                bytes = doc.len();
                store
                    .save(&home_account_id(i), doc.as_bytes(), None, expires)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<usize, String>(bytes)
        }));
    }
    let mut size = 0;
    for t in tasks {
        size = size.max(t.await??);
    }
    Ok(size)
}

struct Outcome {
    seconds: f64,
    cpu: f64,
    /// Each request's start (microseconds into the phase) and latency (microseconds), in start
    /// order.
    timeline: Vec<(u64, u32)>,
}

impl Outcome {
    fn per_s(&self) -> f64 {
        self.timeline.len() as f64 / self.seconds
    }

    fn per_cpu_s(&self) -> f64 {
        self.timeline.len() as f64 / self.cpu.max(1e-9)
    }

    /// The latency at each of `ps` (fractions), in milliseconds.
    fn percentiles_ms<const N: usize>(&self, ps: [f64; N]) -> [f64; N] {
        let mut sorted: Vec<u32> = self.timeline.iter().map(|(_, latency)| *latency).collect();
        sorted.sort_unstable();
        ps.map(|p| percentile(&sorted, p))
    }

    /// How the requests over `threshold_us` are spread in time: their share, and the number of
    /// clusters they form (requests that start within 50 ms of the previous slow one belong to
    /// its cluster) with the median time between cluster starts.
    fn slow_clusters(&self, threshold_us: u32) -> Option<(f64, usize, f64)> {
        let slow: Vec<u64> = self
            .timeline
            .iter()
            .filter(|(_, latency)| *latency > threshold_us)
            .map(|(start, _)| *start)
            .collect();
        let mut cluster_starts: Vec<u64> = Vec::new();
        let mut previous: Option<u64> = None;
        for start in &slow {
            if previous.is_none_or(|p| start - p > 50_000) {
                cluster_starts.push(*start);
            }
            previous = Some(*start);
        }
        let mut gaps: Vec<u64> = cluster_starts.windows(2).map(|w| w[1] - w[0]).collect();
        gaps.sort_unstable();
        let median_gap_s = *gaps.get(gaps.len() / 2)? as f64 / 1e6;
        let share = slow.len() as f64 / self.timeline.len() as f64;
        Some((share, cluster_starts.len(), median_gap_s))
    }

    /// Several slices of one phase as one outcome, as if run back to back: requests, time and
    /// CPU added up, each slice's start times shifted past the slices before it.
    fn merged(slices: Vec<Outcome>) -> Outcome {
        let mut all = Outcome {
            seconds: 0.0,
            cpu: 0.0,
            timeline: Vec::new(),
        };
        for slice in slices {
            let offset = (all.seconds * 1e6) as u64;
            all.timeline.extend(
                slice
                    .timeline
                    .into_iter()
                    .map(|(start, latency)| (start + offset, latency)),
            );
            all.seconds += slice.seconds;
            all.cpu += slice.cpu;
        }
        all
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    f64::from(sorted[i]) / 1000.0
}

/// One phase: `concurrency` tasks for `seconds`; with `rate`, paced to that total rate.
async fn drive(
    cache: Arc<PartitionedCache>,
    o: &Options,
    seconds: u64,
    rate: Option<f64>,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let cpu0 = cpu_seconds();
    let interval = rate.map(|r| Duration::from_secs_f64(o.concurrency as f64 / r));
    let tasks: Vec<_> = (0..o.concurrency)
        .map(|n| {
            let cache = cache.clone();
            let (partitions, refresh_every, concurrency) =
                (o.partitions, o.refresh_every, o.concurrency);
            tokio::spawn(async move {
                let mut timeline: Vec<(u64, u32)> = Vec::new();
                let mut seed = (n as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                // Stagger the tasks across one interval so paced requests do not arrive in bursts.
                let mut next = Instant::now()
                    + interval.map_or(Duration::ZERO, |iv| {
                        iv.mul_f64(n as f64 / concurrency as f64)
                    });
                loop {
                    if let Some(iv) = interval {
                        next += iv;
                        tokio::time::sleep_until(next.into()).await;
                    }
                    let t0 = Instant::now();
                    if t0 > deadline {
                        break;
                    }
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let i = (seed % partitions as u64) as usize;
                    let home = home_account_id(i);
                    let key = PartitionKey::for_account(&home);
                    let part = cache
                        .load_partition(&key)
                        .await
                        .map_err(|e| e.to_string())?;
                    let scopes = ["User.Read"];
                    let envs = [ENV];
                    let q = AccessTokenQuery::new(CID, "organizations", &scopes)
                        .account(&home)
                        .environments(&envs);
                    if part.find_access_token(&q).is_none() {
                        let ats = part.all_access_tokens();
                        return Err(format!(
                            "no access token for user {i}: {} in the partition, first {:?}",
                            ats.len(),
                            ats.first().map(|a| (
                                a.home_account_id().map(str::to_owned),
                                a.realm().map(str::to_owned),
                                a.target().map(str::to_owned),
                                a.environment().map(str::to_owned)
                            ))
                        ));
                    }
                    // Which requests save is random: with a per-task counter, the paced tasks
                    // (all started within one interval) would save in the same interval, a burst
                    // of `concurrency` saves every `refresh_every` intervals.
                    if (seed >> 40).is_multiple_of(refresh_every) {
                        let event = user_event(i, 1500, 800);
                        cache
                            .update_partition(&key, &move |c: &TokenCache| {
                                c.add_at(&event, unix_now())
                            })
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    timeline.push((
                        (t0 - start).as_micros() as u64,
                        t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32,
                    ));
                }
                Ok::<Vec<(u64, u32)>, String>(timeline)
            })
        })
        .collect();
    let mut timeline = Vec::new();
    for t in tasks {
        timeline.extend(t.await??);
    }
    let seconds = start.elapsed().as_secs_f64();
    timeline.sort_unstable();
    Ok(Outcome {
        seconds,
        cpu: cpu_seconds() - cpu0,
        timeline,
    })
}

fn python(
    o: &Options,
    port: u16,
    seconds: u64,
    rate: Option<f64>,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let py = std::env::var_os("TOKENCACHE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python"));
    let mut cmd = Command::new(py);
    cmd.arg(root().join("bench/store_bench.py")).args([
        port.to_string(),
        o.partitions.to_string(),
        seconds.to_string(),
        o.concurrency.to_string(),
        o.refresh_every.to_string(),
    ]);
    if let Some(r) = rate {
        cmd.arg(format!("{r:.1}"));
    }
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!("MSAL Python: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let j = JsonObject::parse(String::from_utf8_lossy(&out.stdout).trim())?;
    let num = |k: &str| match j.get(k) {
        Some(JsonValue::Number(n)) => n.parse::<f64>().unwrap_or(f64::NAN),
        _ => f64::NAN,
    };
    let timeline = match j.get("timeline") {
        Some(JsonValue::Array(items)) => items
            .iter()
            .filter_map(|pair| match pair {
                JsonValue::Array(pair) => match &**pair {
                    [JsonValue::Number(start), JsonValue::Number(latency)] => {
                        Some((start.parse().ok()?, latency.parse().ok()?))
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect(),
        _ => return Err("MSAL Python: no timeline in its report".into()),
    };
    Ok(Outcome {
        seconds: num("seconds"),
        cpu: num("cpu_seconds"),
        timeline,
    })
}

fn row(name: &str, peak: &Outcome, half: &Outcome) {
    let [peak_p50, peak_p99] = peak.percentiles_ms([0.50, 0.99]);
    let [half_p99] = half.percentiles_ms([0.99]);
    println!(
        "  {name:<22} {:>10.0} {:>10.0} {:>8.2} {:>8.2} {:>12.2}",
        peak.per_s(),
        peak.per_cpu_s(),
        peak_p50,
        peak_p99,
        half_p99
    );
    // Where the tail at half load comes from: spread out, or in bursts at a steady period
    // (shown when slow requests are the exception, as on Redis and in memory).
    if let Some((share, clusters, gap)) = half.slow_clusters(5_000)
        && share < 0.05
    {
        println!(
            "  {:<22} at half load {:.2}% of requests took over 5 ms, in {clusters} bursts, \
             a median {gap:.2} s apart",
            "",
            share * 100.0
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let o = parse_args()?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if o.workers > 0 {
        runtime.worker_threads(o.workers);
    }
    runtime.enable_all().build()?.block_on(run(o))
}

async fn run(o: Options) -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "store-bench: {} user partitions, concurrency {}, {} s per phase, a save every {} requests, {}",
        o.partitions,
        o.concurrency,
        o.seconds,
        o.refresh_every,
        match o.workers {
            0 => "a runtime worker per core".to_owned(),
            1 => "one runtime worker".to_owned(),
            n => format!("{n} runtime workers"),
        }
    );
    println!(
        "  {:<22} {:>10} {:>10} {:>8} {:>8} {:>12}",
        "backend", "req/s", "req/cpu-s", "p50 ms", "p99 ms", "p99 @ half"
    );
    let dir = tempfile::tempdir()?;
    let mut python_ratio = None;
    for backend in &o.backends {
        // Each backend's server or database lives until the end of its iteration.
        let mut _database = None;
        let (url, server) = match backend.as_str() {
            "redis" => {
                let (server, port) = start_redis()?;
                (format!("redis://127.0.0.1:{port}/"), Some((server, port)))
            }
            "sqlite" => (
                format!("sqlite://{}", dir.path().join("bench.db").display()),
                None,
            ),
            "postgres" => {
                let (url, database) = postgres_db()?;
                _database = Some(database);
                (url, None)
            }
            "memory" => ("memory://".to_owned(), None),
            other => return Err(format!("unknown backend {other}").into()),
        };
        let store = tokencache_store::open(&url).await?;
        let t = Instant::now();
        let size = populate(&store, o.partitions).await?;
        eprintln!(
            "  ({backend}: {} partitions of about {size} bytes written in {:.1} s)",
            o.partitions,
            t.elapsed().as_secs_f64()
        );
        let cache = Arc::new(PartitionedCache::new(
            store.clone(),
            PartitionOptions::default(),
        ));
        // On Redis, MSAL Python runs the same workload against the same server. Its peak phase
        // and ours take turns in slices, so that a slow spell of a shared machine falls on both
        // sides rather than on whichever ran then.
        let python_port = match &server {
            Some((_, port)) if !o.skip_python => Some(*port),
            _ => None,
        };
        let slices = if python_port.is_some() {
            o.seconds.clamp(1, 3)
        } else {
            1
        };
        let slice_seconds = o.seconds / slices;
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..slices {
            ours.push(drive(cache.clone(), &o, slice_seconds, None).await?);
            if let Some(port) = python_port {
                theirs.push(python(&o, port, slice_seconds, None)?);
            }
        }
        let peak = Outcome::merged(ours);
        let half = drive(cache, &o, o.seconds, Some(peak.per_s() / 2.0)).await?;
        row(&format!("tokencache {backend}"), &peak, &half);
        if o.l1_mb > 0 {
            let cache = Arc::new(PartitionedCache::new(
                store,
                PartitionOptions {
                    l1_bytes: o.l1_mb << 20,
                    l1_ttl: Duration::from_secs(3600),
                    ..PartitionOptions::default()
                },
            ));
            // Warm the L1 for a run, then measure.
            drive(cache.clone(), &o, o.seconds.min(5), None).await?;
            let l1_peak = drive(cache.clone(), &o, o.seconds, None).await?;
            let l1_half = drive(cache, &o, o.seconds, Some(l1_peak.per_s() / 2.0)).await?;
            row(&format!("  + L1 {} MB", o.l1_mb), &l1_peak, &l1_half);
        }
        if let Some(port) = python_port {
            let py_peak = Outcome::merged(theirs);
            let py_half = python(&o, port, o.seconds, Some(py_peak.per_s() / 2.0))?;
            row("MSAL Python redis", &py_peak, &py_half);
            python_ratio = Some(peak.per_cpu_s() / py_peak.per_cpu_s());
        }
    }
    if let Some(ratio) = python_ratio {
        println!("  per core on Redis: tokencache {ratio:.1}x MSAL Python (target >= 10x)");
    }
    Ok(())
}
