//! The real binary: start-up, configuration errors, logs, signals, migrate, config check.

// These tests poll a child process, which has no clock of ours to move.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse_core::store::testing::TestDatabase;
use gatehouse_core::store::Backend;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// The binary with a clean environment (nothing from the developer's shell or `.env`),
/// run in a fresh directory.
fn gatehouse(dir: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().current_dir(dir).args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

/// A running `gatehouse serve`, its output collected line by line.
struct Server {
    child: Child,
    addr: String,
    stdout: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(dir: &std::path::Path, envs: &[(&str, &str)]) -> Self {
        let mut envs = envs.to_vec();
        envs.push(("GATEHOUSE_ADDR", "127.0.0.1:0"));
        let mut child = gatehouse(dir, &["serve"], &envs)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let reader = BufReader::new(child.stdout.take().unwrap());
        let lines = stdout.clone();
        let reader = std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let started = Instant::now();
        let addr = loop {
            let found = stdout.lock().unwrap().iter().find_map(|l| {
                l.split("listening on http://").nth(1).map(|rest| {
                    rest.split(|c: char| c == '"' || c.is_whitespace())
                        .next()
                        .unwrap()
                        .to_owned()
                })
            });
            if let Some(addr) = found {
                break addr;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
                panic!("gatehouse exited with {status} before listening: {err}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "gatehouse did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Self {
            child,
            addr,
            stdout,
            reader: Some(reader),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let sent = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, sent.elapsed());
            }
            assert!(
                sent.elapsed() < Duration::from_secs(15),
                "gatehouse ignored SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the process wrote to stdout; call after it exited.
    fn output(&mut self) -> Vec<String> {
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.stdout.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn serve_creates_the_sqlite_file_answers_health_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    assert!(
        dir.path().join("gatehouse.db").exists(),
        "the default sqlite://gatehouse.db is created"
    );
    let body: serde_json::Value = reqwest::get(server.url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, serde_json::json!({"status": "ok"}));
    let (status, took) = server.terminate();
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean exit");
    assert!(
        took < Duration::from_secs(5),
        "an idle server stops at once, took {took:?}"
    );
}

#[tokio::test]
async fn the_same_binary_serves_a_postgres_database_url() {
    let db = TestDatabase::create(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[("DATABASE_URL", db.url().expose())]);
    assert_eq!(
        reqwest::get(server.url("/ready")).await.unwrap().status(),
        200
    );
    assert!(
        !dir.path().join("gatehouse.db").exists(),
        "no SQLite file when Postgres is configured"
    );
    assert_eq!(server.terminate().0.code(), Some(0));
}

#[tokio::test]
async fn json_logs_have_one_line_per_request_and_never_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        dir.path(),
        &[("GATEHOUSE_LOG_FORMAT", "json"), ("GATEHOUSE_LOG", "trace")],
    );
    let client = reqwest::Client::new();
    let response = client
        .post(server.url("/health?access_token=query-secret-4"))
        .header("authorization", "Bearer header-secret-1")
        .header("cookie", "sb_refresh_token=cookie-secret-2")
        .header("x-request-id", "trace-me-42")
        .body("body-secret-3")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    client.get(server.url("/health")).send().await.unwrap();
    server.terminate();
    let lines = server.output();
    let requests: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|_| panic!("not JSON: {l}"))
        })
        .filter(|v| v["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 2, "one line per request: {lines:#?}");
    let line = requests
        .iter()
        .find(|v| v["request_id"] == "trace-me-42")
        .expect("the request id is logged");
    assert_eq!(line["method"], "POST");
    assert_eq!(line["path"], "/health");
    assert_eq!(line["status"], 405);
    assert!(line["latency_ms"].as_f64().is_some(), "{line}");
    let all = lines.join("\n");
    for secret in [
        "header-secret-1",
        "cookie-secret-2",
        "body-secret-3",
        "query-secret-4",
    ] {
        assert!(!all.contains(secret), "{secret} was logged:\n{all}");
    }
}

#[test]
fn an_invalid_value_stops_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("GATEHOUSE_ACCESS_TOKEN_TTL", "soon"),
        ("GATEHOUSE_ADDR", "not-an-address"),
        ("GATEHOUSE_CORS_ORIGINS", "*"),
        ("DATABASE_URL", "mysql://root:pw@localhost/x"),
    ] {
        let out = gatehouse(dir.path(), &["serve"], &[(var, value)])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(var), "{var}: {stderr}");
        assert!(!stderr.contains("root:pw"), "a password leaked: {stderr}");
    }
    assert!(
        !dir.path().join("gatehouse.db").exists(),
        "nothing was started"
    );
}

#[test]
fn an_unreachable_database_stops_serve_within_seconds_naming_database_url() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = gatehouse(
        dir.path(),
        &["serve"],
        &[
            ("DATABASE_URL", "postgres://app:hunter2@127.0.0.1:1/auth"),
            ("GATEHOUSE_DB_CONNECT_TIMEOUT", "2s"),
        ],
    )
    .output()
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
    assert!(
        stderr.contains("postgres://app:***@127.0.0.1:1/auth"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn a_sqlite_file_that_cannot_be_created_stops_serve_naming_database_url() {
    let dir = tempfile::tempdir().unwrap();
    let out = gatehouse(
        dir.path(),
        &["serve"],
        &[("DATABASE_URL", "sqlite://no/such/dir/g.db")],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("DATABASE_URL") && stderr.contains("no/such/dir/g.db"),
        "{stderr}"
    );
}

#[test]
fn config_check_prints_the_effective_configuration_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "GATEHOUSE_ACCESS_TOKEN_TTL=15m\nGATEHOUSE_LOG_FORMAT=json\n",
    )
    .unwrap();
    let out = gatehouse(
        dir.path(),
        &["config", "check", "--log-format", "pretty"],
        &[
            ("GATEHOUSE_JWT_ALG", "HS256"),
            (
                "GATEHOUSE_JWT_SECRET",
                "super-secret-value-that-is-32-bytes-long",
            ),
            ("DATABASE_URL", "postgres://app:pg-pass@db.internal/auth"),
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("GATEHOUSE_JWT_SECRET") && stdout.contains("<redacted>"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("super-secret-value") && !stdout.contains("pg-pass"),
        "{stdout}"
    );
    assert!(
        stdout.contains("postgres://app:***@db.internal/auth"),
        "{stdout}"
    );
    assert!(
        stdout.contains("GATEHOUSE_ACCESS_TOKEN_TTL") && stdout.contains("15m"),
        ".env is read: {stdout}"
    );
    let format_line = stdout
        .lines()
        .find(|l| l.starts_with("GATEHOUSE_LOG_FORMAT"))
        .unwrap();
    assert!(
        format_line.ends_with("pretty"),
        "a flag overrides .env: {format_line}"
    );
}

#[test]
fn config_check_shows_supabase_mode_and_what_lives_where() {
    let dir = tempfile::tempdir().unwrap();
    let supabase = [
        ("SUPABASE_URL", "https://abc.supabase.co"),
        ("SUPABASE_ANON_KEY", "anon-key-value"),
        ("SUPABASE_SERVICE_ROLE_KEY", "service-role-key-value"),
    ];
    let out = gatehouse(dir.path(), &["config", "check"], &supabase)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with("mode: supabase (https://abc.supabase.co/)\n"),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with(
            "note: Supabase mode: credentials and sessions live in the Auth API of \
             https://abc.supabase.co/"
        )),
        "{stdout}"
    );
    assert!(stdout.ends_with("configuration is valid\n"), "{stdout}");
    assert!(!stdout.contains("key-value"), "{stdout}");

    // JSON on stdout stays one document; the note goes to stderr.
    let out = gatehouse(dir.path(), &["config", "check", "--json"], &supabase)
        .output()
        .unwrap();
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["SUPABASE_ANON_KEY"], "<redacted>");
    assert_eq!(printed["mode"], "supabase (https://abc.supabase.co/)");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("note: Supabase mode"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = gatehouse(dir.path(), &["config", "check"], &[])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("mode: standalone\n"), "{stdout}");
    assert!(!stdout.contains("note: Supabase"), "{stdout}");
    assert!(stdout.contains("note: no mailer"), "{stdout}");
}

#[test]
fn the_environment_wins_over_dotenv() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "GATEHOUSE_ACCESS_TOKEN_TTL=15m\n").unwrap();
    let out = gatehouse(
        dir.path(),
        &["config", "check", "--json"],
        &[("GATEHOUSE_ACCESS_TOKEN_TTL", "1h")],
    )
    .output()
    .unwrap();
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["GATEHOUSE_ACCESS_TOKEN_TTL"], "1h");
}

#[tokio::test]
async fn migrate_applies_the_migrations_on_both_backends_and_is_idempotent() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDatabase::create(backend).await;
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..2 {
            let out = gatehouse(
                dir.path(),
                &["migrate"],
                &[("DATABASE_URL", db.url().expose())],
            )
            .output()
            .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let stdout = String::from_utf8(out.stdout).unwrap();
            let embedded = gatehouse_core::store::Store::embedded_migrations(backend);
            let expected = format!(
                "at migration {} ({} applied)",
                embedded.last().unwrap().0,
                embedded.len()
            );
            assert!(stdout.contains(&expected), "{backend}: {stdout}");
        }
    }
}

#[tokio::test]
async fn no_password_token_or_cookie_reaches_the_logs_even_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        dir.path(),
        &[
            ("GATEHOUSE_LOG_FORMAT", "json"),
            ("GATEHOUSE_LOG", "trace"),
            ("GATEHOUSE_INSECURE_COOKIES", "true"),
        ],
    );
    let client = reqwest::Client::new();
    let password = "log-Canary-Password-93!";
    let response = client
        .post(server.url("/auth/signup"))
        .json(&serde_json::json!({"email": "ada@example.com", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let csrf: serde_json::Value = client
        .get(server.url("/auth/csrf"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let csrf = csrf["csrfToken"].as_str().unwrap().to_owned();
    let signin = client
        .post(server.url("/auth/signin"))
        .header("x-csrf-token", &csrf)
        .header("cookie", format!("csrf_token={csrf}"))
        .json(&serde_json::json!({"email": "ada@example.com", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(signin.status(), 200);
    let refresh = crate::helpers::cookie_value(&signin, "sb_refresh_token").unwrap();
    let body: serde_json::Value = signin.json().await.unwrap();
    let access = body["accessToken"].as_str().unwrap().to_owned();
    let me = client
        .get(server.url("/auth/me"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let rotated = client
        .post(server.url("/auth/refresh"))
        .header("x-csrf-token", &csrf)
        .header(
            "cookie",
            format!("csrf_token={csrf}; sb_refresh_token={refresh}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);
    let wrong = client
        .post(server.url("/auth/signin"))
        .header("x-csrf-token", &csrf)
        .header("cookie", format!("csrf_token={csrf}"))
        .json(&serde_json::json!({"email": "ada@example.com", "password": "wrong-Canary-Password-1!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    server.terminate();
    let logs = server.output().join("\n");
    assert!(
        logs.contains("\"path\":\"/auth/signin\""),
        "the requests were logged"
    );
    let access_signature = access.rsplit('.').next().unwrap();
    for (what, secret) in [
        ("password", password),
        ("wrong password", "wrong-Canary-Password-1!"),
        ("access token", access_signature),
        ("refresh token", refresh.as_str()),
        ("csrf token", csrf.as_str()),
    ] {
        assert!(!logs.contains(secret), "the {what} was logged");
    }
}

#[tokio::test]
async fn keys_rotate_and_list_round_trip_through_the_cli() {
    let db = TestDatabase::create(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [("DATABASE_URL", db.url().expose())];
    let list = |extra: &[&str]| {
        let mut args = vec!["keys", "list", "--json"];
        args.extend_from_slice(extra);
        let out = gatehouse(dir.path(), &args, &env).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = list(&[]);
    assert_eq!(
        first.as_array().unwrap().len(),
        1,
        "the first start generates one key"
    );
    assert_eq!(first[0]["state"], "active");
    assert_eq!(first[0]["alg"], "ES256");
    assert!(
        !first.to_string().contains("private"),
        "no private part is listed"
    );
    let out = gatehouse(dir.path(), &["keys", "rotate"], &env)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("signs from"));
    let after = list(&[]);
    let states: Vec<&str> = after
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["active", "next"]);
    let out = gatehouse(dir.path(), &["keys", "rotate", "--now"], &env)
        .output()
        .unwrap();
    assert!(out.status.success());
    let states: Vec<String> = list(&[])
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        states.iter().filter(|s| *s == "active").count(),
        1,
        "{states:?}"
    );
    assert_eq!(
        states.iter().filter(|s| *s == "expired").count(),
        2,
        "{states:?}"
    );
}

#[tokio::test]
async fn the_first_admin_is_made_with_the_cli_and_can_use_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("g.db").display());
    let env = [
        ("DATABASE_URL", db.as_str()),
        ("GATEHOUSE_INSECURE_COOKIES", "true"),
    ];
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = gatehouse(dir.path(), args, &env);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = run(
        &[
            "user",
            "create",
            "--email",
            "root@example.com",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some("quartz-Lantern-47\n"),
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("with role admin") && !stdout.contains("quartz"),
        "{stdout}"
    );
    let (code, stdout, _) = run(&["user", "create", "--email", "ada@example.com"], None);
    assert_eq!(code, Some(0));
    let generated = stdout
        .lines()
        .find_map(|l| l.strip_prefix("password (shown once, store it now): "))
        .unwrap()
        .to_owned();
    let (code, _, stderr) = run(
        &[
            "user",
            "create",
            "--email",
            "weak@example.com",
            "--password-stdin",
        ],
        Some("password\n"),
    );
    assert_eq!(code, Some(1), "a weak password is refused");
    assert!(stderr.contains("too weak"), "{stderr}");

    let mut server = Server::start(dir.path(), &env);
    let client = reqwest::Client::new();
    let signin = |email: &'static str, password: String| {
        let client = client.clone();
        let base = server.url("");
        async move {
            let csrf: serde_json::Value = client
                .get(format!("{base}/auth/csrf"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let csrf = csrf["csrfToken"].as_str().unwrap().to_owned();
            let response = client
                .post(format!("{base}/auth/signin"))
                .header("x-csrf-token", &csrf)
                .header("cookie", format!("csrf_token={csrf}"))
                .json(&serde_json::json!({"email": email, "password": password}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{email}");
            let body: serde_json::Value = response.json().await.unwrap();
            body["accessToken"].as_str().unwrap().to_owned()
        }
    };
    let root = signin("root@example.com", "quartz-Lantern-47".into()).await;
    let ada = signin("ada@example.com", generated).await;
    let users: serde_json::Value = client
        .get(server.url("/users?count=true"))
        .bearer_auth(&root)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(users["total"], 2);
    assert_eq!(
        client
            .get(server.url("/users"))
            .bearer_auth(&ada)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );

    let (code, stdout, _) = run(&["user", "set-role", "ada@example.com", "admin"], None);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("now has role admin"));
    assert_eq!(
        client
            .get(server.url("/users"))
            .bearer_auth(&ada)
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "promotion takes effect at once"
    );
    let (code, stdout, _) = run(&["user", "list", "--role", "admin", "--json"], None);
    assert_eq!(code, Some(0));
    assert_eq!(stdout.lines().count(), 2);
    let (code, _, _) = run(&["user", "set-role", "root@example.com", "user"], None);
    assert_eq!(code, Some(0), "another admin remains");
    let (code, _, stderr) = run(&["user", "delete", "ada@example.com"], None);
    assert_eq!(code, Some(1), "the last admin cannot be deleted");
    assert!(stderr.contains("no active admin"), "{stderr}");
    let (code, _, _) = run(&["user", "delete", "root@example.com", "--hard"], None);
    assert_eq!(code, Some(0));
    let (_, stdout, _) = run(&["user", "list"], None);
    assert!(
        !stdout.contains("root@example.com") && stdout.contains("ada@example.com"),
        "{stdout}"
    );
    assert_eq!(
        client
            .get(server.url("/auth/me"))
            .bearer_auth(&root)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    server.terminate();
}

/// The binary's mailer end to end: `serve` runs the outbox's sender against a real SMTP
/// server, and neither the codes, the link tokens, the sessions they start nor the SMTP
/// password reach the logs, even at trace level.
#[tokio::test]
async fn serve_delivers_mail_and_no_code_link_or_smtp_password_reaches_the_logs() {
    let sink = gatehouse_mail::SmtpSink::start().await.unwrap();
    let smtp_url = format!("smtp://mailer:smtp-Canary-Pass-7@127.0.0.1:{}", sink.port());
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        dir.path(),
        &[
            ("GATEHOUSE_LOG_FORMAT", "json"),
            ("GATEHOUSE_LOG", "trace"),
            ("GATEHOUSE_SMTP_URL", &smtp_url),
            ("GATEHOUSE_MAIL_FROM", "Acme <no-reply@acme.test>"),
        ],
    );
    let client = reqwest::Client::new();
    let signup = client
        .post(server.url("/auth/v1/signup"))
        .json(
            &serde_json::json!({"email": "ada@example.com", "password": "log-Canary-Password-93!"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), 200);
    let mail = sink
        .wait_for("ada@example.com", 1, Duration::from_secs(10))
        .await
        .expect("the confirmation arrives")
        .remove(0);
    assert_eq!(
        mail.credentials.as_ref().map(|c| c.1.as_str()),
        Some("smtp-Canary-Pass-7"),
        "the URL's credentials are used"
    );
    assert_eq!(mail.from, "no-reply@acme.test");
    let code = mail.code().unwrap();
    let verified = client
        .post(server.url("/auth/v1/verify"))
        .json(&serde_json::json!({"type": "signup", "email": "ada@example.com", "token": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 200);
    let session: serde_json::Value = verified.json().await.unwrap();
    let recover = client
        .post(server.url("/auth/v1/recover"))
        .json(&serde_json::json!({"email": "ada@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(recover.status(), 200);
    let reset = sink
        .wait_for("ada@example.com", 2, Duration::from_secs(10))
        .await
        .expect("the reset mail arrives")
        .remove(1);
    let link = reset.link().unwrap();
    let token = url::Url::parse(&link)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "token")
        .unwrap()
        .1
        .into_owned();
    // The link is on the public URL (the default, localhost:8080); this server listens
    // elsewhere.
    let parsed = url::Url::parse(&link).unwrap();
    assert_eq!(parsed.path(), "/auth/v1/verify");
    let page = client
        .get(server.url(&format!("{}?{}", parsed.path(), parsed.query().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let redeemed = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(server.url("/auth/v1/verify/link"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}&type=recovery"))
        .send()
        .await
        .unwrap();
    assert_eq!(redeemed.status(), 303);
    let location = redeemed.headers()["location"].to_str().unwrap().to_owned();
    let refresh = location
        .split("refresh_token=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    server.terminate();
    let logs = server.output().join("\n");
    assert!(logs.contains("mail sent"), "deliveries are logged:\n{logs}");
    // A 6-digit code could occur inside a longer number (a timestamp's microseconds):
    // only a run of exactly those six digits counts.
    let standalone = |code: &str| {
        logs.match_indices(code).any(|(at, _)| {
            let before = logs[..at].chars().next_back();
            let after = logs[at + code.len()..].chars().next();
            !before.is_some_and(|c| c.is_ascii_digit())
                && !after.is_some_and(|c| c.is_ascii_digit())
        })
    };
    assert!(!standalone(&code), "the signup code was logged");
    assert!(
        !standalone(&reset.code().unwrap()),
        "the reset code was logged"
    );
    for (what, secret) in [
        ("link token", token.as_str()),
        ("refresh token", refresh.as_str()),
        (
            "access token",
            session["access_token"]
                .as_str()
                .unwrap()
                .rsplit('.')
                .next()
                .unwrap(),
        ),
        ("SMTP password", "smtp-Canary-Pass-7"),
        ("password", "log-Canary-Password-93!"),
    ] {
        assert!(!logs.contains(secret), "the {what} was logged");
    }
}
