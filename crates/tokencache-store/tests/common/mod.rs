//! Real servers for the store tests: a Redis (or a 3-node Redis Cluster) per test, started from
//! the `redis-server` binary on free ports, and a fresh database per test in the PostgreSQL that
//! `.ci/setup-services` starts.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One redis-server process; stopped on drop.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    cluster: bool,
    persistent: bool,
    password: Option<String>,
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_on(free_port(), false, false)
    }

    /// A server that writes every command to its append-only file before answering, so a
    /// restart loses nothing acknowledged.
    pub fn start_persistent() -> Redis {
        Redis::start_on(free_port(), false, true)
    }

    /// A server that requires `password` (its URL carries it).
    pub fn start_with_password(password: &str) -> Redis {
        let mut r = Redis::start_on(free_port(), false, false);
        r.stop();
        r.password = Some(password.to_owned());
        r.restart();
        r
    }

    fn start_on(port: u16, cluster: bool, persistent: bool) -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Redis {
            port,
            child: None,
            dir,
            cluster,
            persistent,
            password: None,
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// Starts the server again on the same port (after `stop`).
    pub fn restart(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--protected-mode", "no"])
            .args(if self.persistent {
                ["--appendonly", "yes", "--appendfsync", "always"]
            } else {
                ["--appendonly", "no", "--appendfsync", "no"]
            })
            .arg("--dir")
            .arg(self.dir.path())
            .args(
                self.password
                    .as_deref()
                    .map(|p| ["--requirepass", p])
                    .into_iter()
                    .flatten(),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.cluster {
            cmd.args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ]);
        }
        self.child = Some(
            cmd.spawn()
                .expect("redis-server (apt install redis-server)"),
        );
        wait_for_port(self.port);
    }

    /// Kills the server (an outage); data is lost, as with a crashed cache server.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A 3-node Redis Cluster (masters only) on free ports.
pub struct RedisCluster {
    pub nodes: Vec<Redis>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<Redis> = (0..3)
            .map(|_| Redis::start_on(free_port(), true, false))
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = nodes.iter().all(|n| {
                let out = Command::new("redis-cli")
                    .args(["-p", &n.port.to_string(), "cluster", "info"])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok")
            });
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "the cluster did not converge");
            std::thread::sleep(Duration::from_millis(100));
        }
        RedisCluster { nodes }
    }

    pub fn url(&self) -> String {
        let addrs: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", addrs.join(","))
    }
}

/// A fresh, empty database in the shared PostgreSQL (`TOKENCACHE_TEST_POSTGRES`, default the
/// one `.ci/setup-services` starts); dropped on drop.
pub struct Postgres {
    pub url: String,
    name: String,
    admin: String,
}

/// Runs `sql` in the database `url` names; returns its unaligned output, trimmed.
fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .arg(url)
        .args(["-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "psql {sql}: {} (is PostgreSQL running? `bash .ci/setup-services`)",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Postgres {
    pub fn create() -> Postgres {
        let base = std::env::var("TOKENCACHE_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://tokencache@127.0.0.1:15432/tokencache".into());
        let admin = base.clone();
        let name = format!("tc_{:x}", tokencache_store::new_version());
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let url = match base.rsplit_once('/') {
            Some((head, _)) => format!("{head}/{name}"),
            None => panic!("bad TOKENCACHE_TEST_POSTGRES {base}"),
        };
        Postgres { url, name, admin }
    }

    /// Runs `sql` in this database from a separate `psql` session; returns its unaligned
    /// output, trimmed.
    pub fn sql(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }

    /// How many server connections to this database there are, besides the asking one.
    pub fn connections(&self) -> usize {
        self.sql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
            self.name
        ))
        .parse()
        .unwrap()
    }

    /// Ends every other server connection to this database, as a restart or an
    /// administrator would.
    pub fn terminate_connections(&self) {
        self.sql(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = '{}' AND pid <> pg_backend_pid()",
            self.name
        ));
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(&self.admin)
            .args([
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// The path of this package's example `name`, which `cargo test` builds next to the tests.
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(path.exists(), "{} is not built", path.display());
    path
}

/// Waits for an example process that reports on one JSON line; fails the test (with its
/// stderr) unless it succeeded. Returns the report.
pub fn json_report(child: Child) -> tokencache::json::JsonObject {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokencache::json::JsonObject::parse(String::from_utf8_lossy(&out.stdout).trim()).unwrap()
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The test CA and the server certificate (for 127.0.0.1 and localhost) that
/// `.ci/setup-services` makes: `ca.pem`, `server.pem`, `server.key`.
pub fn test_tls_dir() -> PathBuf {
    let base = std::env::var_os("TOKENCACHE_SERVICES_DIR")
        .map_or_else(|| PathBuf::from("/tmp/tokencache-services"), PathBuf::from);
    let dir = base.join("tls");
    assert!(
        dir.join("server.pem").exists(),
        "no test CA in {}: run `bash .ci/setup-services`",
        dir.display()
    );
    dir
}

/// A redis-server that speaks TLS only, on a free port, with the test CA's server
/// certificate; stopped on drop.
pub struct TlsRedis {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl TlsRedis {
    pub fn start() -> TlsRedis {
        let tls = test_tls_dir();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--protected-mode",
                "no",
            ])
            .arg("--tls-cert-file")
            .arg(tls.join("server.pem"))
            .arg("--tls-key-file")
            .arg(tls.join("server.key"))
            .arg("--tls-ca-cert-file")
            .arg(tls.join("ca.pem"))
            .args(["--tls-auth-clients", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt install redis-server)");
        wait_for_port(port);
        TlsRedis {
            port,
            child,
            _dir: dir,
        }
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
