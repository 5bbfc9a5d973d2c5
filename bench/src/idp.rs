//! The loopback OpenID provider (`tests/idp`) over HTTPS with a throw-away test CA, for the
//! benchmarks that need an identity provider (client-bench, azure-bench).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use tokencache::json::JsonObject;

/// The provider's tenant.
pub const TENANT: &str = "7e57a000-0000-4000-8000-000000000001";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// A test CA and a certificate for 127.0.0.1 it signed.
pub fn make_certs(dir: &Path) -> Result<(), String> {
    let openssl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(dir));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=bench CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ])?;
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ])?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| e.to_string())?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ])
}

pub struct Idp {
    child: Child,
    /// The issuer URL.
    pub issuer: String,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_idp(dir: &Path) -> Result<Idp, String> {
    run(Command::new("bash").arg(root().join(".ci/setup-idp")))?;
    let idp_dir = root().join("tests/idp");
    let mut child = Command::new("node")
        .arg(idp_dir.join("server.mjs"))
        .current_dir(&idp_dir)
        .env("IDP_PORT", "0")
        .env("IDP_ENTRA_COMPAT", "1")
        .env("IDP_ISSUER_PATH", format!("/{TENANT}/v2.0"))
        .env("IDP_TLS_CERT", dir.join("server.pem"))
        .env("IDP_TLS_KEY", dir.join("server.key"))
        .env("NODE_EXTRA_CA_CERTS", dir.join("ca.pem"))
        .env("IDP_JWKS_FILE", idp_dir.join(".generated/jwks.json"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("node: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let ready = JsonObject::parse(line.trim()).map_err(|e| format!("{line:?}: {e}"))?;
    let issuer = ready.get_str("issuer").ok_or("no issuer")?.to_owned();
    Ok(Idp { child, issuer })
}
