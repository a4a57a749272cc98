//! Test fixtures: keys generated here, a real JWKS server on 127.0.0.1:0 that counts its
//! requests and can be told to fail, and a clock the tests move.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use gatehouse_verify::{Verifier, VerifierBuilder};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// Where every test clock starts: 2023-11-14T22:13:20Z.
pub const T0: u64 = 1_700_000_000;

/// The issuer the tokens of these tests name.
pub const ISSUER: &str = "https://abcdefgh.supabase.co/auth/v1";

/// A 40-byte HS256 secret.
pub const SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters";

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key of the issuer's, with its public JWK.
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    /// The public JWK (with kid, alg, use).
    pub jwk: Value,
    /// The raw public key bytes (EC point, Ed25519 key, RSA modulus).
    pub public: Vec<u8>,
}

fn pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

impl SigningKey {
    pub fn es256(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let pkcs8 = pair.to_pkcs8v1().unwrap();
        let point = pair.public_key().as_ref().to_vec();
        assert_eq!(point.len(), 65);
        let (x, y) = point[1..].split_at(32);
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y),
                        "kid": kid, "alg": "ES256", "use": "sig"}),
            public: point,
        }
    }

    pub fn eddsa(kid: &str) -> Self {
        let pair = Ed25519KeyPair::generate().unwrap();
        let pkcs8 = pair.to_pkcs8().unwrap();
        let x = pair.public_key().as_ref().to_vec();
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&x), "kid": kid, "alg": "EdDSA", "use": "sig"}),
            public: x,
        }
    }

    pub fn rs256(kid: &str) -> Self {
        let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).unwrap();
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).unwrap();
        let public = pair.public_key();
        let n = public.modulus().big_endian_without_leading_zero().to_vec();
        let e = public.exponent().big_endian_without_leading_zero().to_vec();
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(pem(pkcs8.as_ref()).as_bytes()).unwrap(),
            jwk: json!({"kty": "RSA", "n": b64(&n), "e": b64(&e), "kid": kid, "alg": "RS256", "use": "sig"}),
            public: n,
        }
    }

    /// Signs `claims` with this key, the header naming its alg and kid.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        self.sign_with(header, claims)
    }

    /// Signs `claims` with this key under `header` (which may lie about alg or kid).
    pub fn sign_with(&self, header: Header, claims: &Value) -> String {
        sign_raw(&header, claims, &self.encoding, self.alg)
    }
}

/// A JWT with `header`'s JSON as given, signed with `key` by `alg` (whatever the header says).
pub fn sign_raw(header: &Header, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!(
        "{}.{}",
        b64(&serde_json::to_vec(header).unwrap()),
        b64(&serde_json::to_vec(claims).unwrap())
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

/// A JWT whose header is exactly `header` (JSON text) and whose signature part is `signature`.
pub fn forge(header: &str, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        b64(header.as_bytes()),
        b64(&serde_json::to_vec(claims).unwrap()),
        signature
    )
}

/// An HS256 token signed with `secret`, with an optional kid.
pub fn hs256(secret: &[u8], kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// Supabase-shaped claims valid at `now` for an hour.
pub fn claims_at(now: u64) -> Value {
    let now = now as i64;
    json!({
        "iss": ISSUER,
        "sub": "9f6f7c1e-52b8-4b51-9b0f-0d5c1a3d2e11",
        "aud": "authenticated",
        "exp": now + 3600,
        "iat": now,
        "email": "ada@example.com",
        "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"], "role": "member"},
        "user_metadata": {"display_name": "Ada"},
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": now}],
        "session_id": "3c0b7c8e-2c0c-4f57-9d1c-7f6f3b2a1d00",
        "is_anonymous": false
    })
}

/// A clock the test moves; starts at [`T0`].
#[derive(Clone)]
pub struct TestClock(Arc<Mutex<SystemTime>>);

impl TestClock {
    pub fn new() -> Self {
        Self(Arc::new(Mutex::new(UNIX_EPOCH + Duration::from_secs(T0))))
    }

    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }

    pub fn unix(&self) -> u64 {
        self.0
            .lock()
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    pub fn clock(&self) -> Arc<dyn Fn() -> SystemTime + Send + Sync> {
        let now = self.0.clone();
        Arc::new(move || *now.lock().unwrap())
    }
}

/// What the JWKS server answers.
#[derive(Clone, Debug)]
pub enum Mode {
    Serve,
    Status(u16),
    Garbage,
    /// Waits this long, then serves.
    Slow(Duration),
}

struct ServerState {
    jwks: Mutex<Value>,
    mode: Mutex<Mode>,
    cache_control: Mutex<Option<String>>,
    age: Mutex<Option<String>>,
    hits: AtomicU64,
}

/// A JWKS server on 127.0.0.1:0 (`/.well-known/jwks.json` and
/// `/auth/v1/.well-known/jwks.json`), counting its requests.
pub struct JwksServer {
    pub base: String,
    state: Arc<ServerState>,
}

async fn serve_jwks(State(state): State<Arc<ServerState>>) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let mode = state.mode.lock().unwrap().clone();
    match mode {
        Mode::Serve => {}
        Mode::Status(code) => return StatusCode::from_u16(code).unwrap().into_response(),
        Mode::Garbage => return "<html>surprise</html>".into_response(),
        Mode::Slow(delay) => tokio::time::sleep(delay).await,
    }
    let body = state.jwks.lock().unwrap().to_string();
    let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(cc) = state.cache_control.lock().unwrap().clone() {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_str(&cc).unwrap());
    }
    if let Some(age) = state.age.lock().unwrap().clone() {
        response
            .headers_mut()
            .insert(header::AGE, HeaderValue::from_str(&age).unwrap());
    }
    response
}

impl JwksServer {
    pub async fn start(keys: &[&SigningKey]) -> Self {
        let state = Arc::new(ServerState {
            jwks: Mutex::new(jwks_of(keys)),
            mode: Mutex::new(Mode::Serve),
            cache_control: Mutex::new(None),
            age: Mutex::new(None),
            hits: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/.well-known/jwks.json", get(serve_jwks))
            .route("/auth/v1/.well-known/jwks.json", get(serve_jwks))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, state }
    }

    pub fn url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.base)
    }

    /// Publishes these keys from now on.
    pub fn publish(&self, keys: &[&SigningKey]) {
        *self.state.jwks.lock().unwrap() = jwks_of(keys);
    }

    /// Publishes this document from now on.
    pub fn publish_raw(&self, jwks: Value) {
        *self.state.jwks.lock().unwrap() = jwks;
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn set_cache_control(&self, value: Option<&str>) {
        *self.state.cache_control.lock().unwrap() = value.map(str::to_owned);
    }

    pub fn set_age(&self, value: Option<&str>) {
        *self.state.age.lock().unwrap() = value.map(str::to_owned);
    }

    /// Requests served so far.
    pub fn hits(&self) -> u64 {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// A builder for [`ISSUER`] with this server's JWKS and `clock`.
    pub fn builder(&self, clock: &TestClock) -> VerifierBuilder {
        Verifier::builder(ISSUER)
            .jwks_url(self.url())
            .clock(clock.clock())
    }

    pub fn verifier(&self, clock: &TestClock) -> Verifier {
        self.builder(clock).build().unwrap()
    }
}

pub fn jwks_of(keys: &[&SigningKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
}

/// An http URL on which nothing listens.
pub fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/.well-known/jwks.json")
}
