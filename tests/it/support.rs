//! Helpers shared by the integration tests.

use std::process::Command;

/// Runs the built `irsa` binary with `args` from the crate root, in a cleared
/// environment (only `PATH` kept, `NO_COLOR=1` set) so that neither the
/// developer's shell nor CI changes what it prints.
///
/// Returns the exit code (-1 if a signal killed it), stdout and stderr.
pub fn run_irsa(args: &[&str]) -> (i32, String, String) {
    run_irsa_env(args, &[])
}

/// [`run_irsa`] with extra environment variables.
pub fn run_irsa_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_irsa"));
    // No stdin: irsa must never wait for an answer in a test.
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null());
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", env!("CARGO_BIN_EXE_irsa")));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A moto server (`moto[server]`, pinned in tests/moto-requirements.txt) on
/// 127.0.0.1 and a free port, for one test: IAM behaviour is tested against
/// it through aws-sdk-iam, never against hand-written fakes. It stops when
/// dropped.
pub struct Moto {
    child: std::process::Child,
    pub endpoint: String,
    rt: tokio::runtime::Runtime,
    /// An IAM client for changes made out of band ("by hand").
    pub iam: aws_sdk_iam::Client,
    /// irsa's local store for this test (`IRSA_STORE`), so that tests
    /// running at once never share one.
    pub store: tempfile::TempDir,
}

/// Credentials moto accepts; the environment's own are never used in tests.
const TEST_ENV: &[(&str, &str)] =
    &[("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_EC2_METADATA_DISABLED", "true")];

/// The environment of an irsa run in a test: moto's credentials, the IAM
/// endpoint (moto, or a proxy in front of it) and a local store of its own.
pub fn aws_env(endpoint: &str, store: &std::path::Path) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = TEST_ENV.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    env.push(("AWS_ENDPOINT_URL".into(), endpoint.to_owned()));
    env.push(("IRSA_STORE".into(), store.to_str().unwrap().to_owned()));
    env
}

/// [`run_irsa_env`] with an owned environment, as threads need.
pub fn run_irsa_owned_env(args: &[&str], env: &[(String, String)]) -> (i32, String, String) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    run_irsa_env(args, &env)
}

impl Moto {
    pub fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap();
        // `python3 -m moto.server` rather than the `moto_server` script: a
        // fresh pyenv has no shim for the script until `pyenv rehash`.
        let mut child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            // Without it the AWS-managed policies (arn:aws:iam::aws:policy/…) do not exist.
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start python3 -m moto.server ({e}): ./scripts/test.sh installs it (pip install -r tests/moto-requirements.txt)"));
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !ready(port) {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("moto did not start ({status}): is it installed? ./scripts/test.sh installs it");
            }
            assert!(std::time::Instant::now() < deadline, "moto did not start on port {port} within 30 s");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let iam = rt.block_on(async {
            let creds = aws_sdk_iam::config::Credentials::new("testing", "testing", None, None, "tests");
            let config = aws_sdk_iam::config::Builder::new()
                .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
                .region(aws_sdk_iam::config::Region::new("us-east-1"))
                .credentials_provider(creds)
                .endpoint_url(&endpoint)
                .build();
            aws_sdk_iam::Client::from_conf(config)
        });
        Moto { child, endpoint, rt, iam, store: tempfile::tempdir().unwrap() }
    }

    /// Run irsa against this moto.
    pub fn irsa(&self, args: &[&str]) -> (i32, String, String) {
        run_irsa_owned_env(args, &self.env())
    }

    /// The environment irsa gets to reach this moto directly.
    pub fn env(&self) -> Vec<(String, String)> {
        aws_env(&self.endpoint, self.store.path())
    }

    /// A role made by hand, outside irsa, that EC2 may assume: the example's
    /// `arn =` role, or a bystander irsa must never touch.
    pub fn hand_made_role(&self, name: &str) {
        let trust = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
        self.block_on(self.iam.create_role().role_name(name).assume_role_policy_document(trust.to_string()).send())
            .unwrap();
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    if s.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: localhost\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `address action[+action]` of each change of a JSON plan: the shape a
/// reviewer scans, compared in one line by the scenarios.
pub fn plan_shape(plan: &serde_json::Value) -> Vec<String> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let actions: Vec<&str> = c["actions"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
            format!("{} {}", c["address"].as_str().unwrap(), actions.join("+"))
        })
        .collect()
}
