//! Who may call the server: users with Argon2 password hashes from the configuration, a
//! basic-auth handshake that returns a bearer token, and the token on every later call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::Session;
use crate::config::UserConfig;

/// The prefix of the keys of connections' sessions, which are not tokens.
const CONNECTION: &str = "connection ";

/// The user name of calls to a server without configured users.
pub(crate) const ANONYMOUS: &str = "anonymous";

/// Makes the Argon2 hash of a password, for `[[server.users]] password_hash`.
///
/// # Errors
/// Hashing fails (it does not, short of running out of memory).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// A signed-in client: its user and its own session (current database, temporary tables).
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub(crate) user: String,
    pub(crate) session: Session,
}

#[derive(Debug)]
struct Token {
    caller: Caller,
    last_used: Instant,
}

#[derive(Debug)]
pub(crate) struct Auth {
    /// User name → PHC hash string.
    users: HashMap<String, String>,
    tokens: Mutex<HashMap<String, Token>>,
    idle: Duration,
}

impl Auth {
    /// # Errors
    /// A hash that is not a valid PHC string, naming the user.
    pub(crate) fn new(users: &[UserConfig], idle: Duration) -> crate::Result<Self> {
        for user in users {
            PasswordHash::new(&user.password_hash).map_err(|e| {
                crate::Error::Config(format!("server user '{}': password_hash is not an Argon2 hash ({e}); make one with `lakegate hash-password`", user.name))
            })?;
        }
        let users = users.iter().map(|u| (u.name.clone(), u.password_hash.clone())).collect();
        Ok(Self { users, tokens: Mutex::default(), idle })
    }

    pub(crate) fn required(&self) -> bool {
        !self.users.is_empty()
    }

    /// Checks `authorization: Basic ...` and returns the user and a new bearer token.
    pub(crate) fn sign_in(&self, metadata: &MetadataMap, new_session: impl FnOnce() -> Session) -> Result<(Caller, String), Status> {
        let (user, password) = basic_credentials(metadata)?;
        if self.required() {
            let verified = self
                .users
                .get(&user)
                .and_then(|hash| PasswordHash::new(hash).ok())
                .is_some_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok());
            if !verified {
                tracing::warn!(%user, "sign-in refused");
                return Err(Status::unauthenticated(format!("wrong user name or password for '{user}'")));
            }
        }
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let caller = Caller { user: if self.required() { user } else { ANONYMOUS.to_owned() }, session: new_session() };
        let mut tokens = self.lock();
        tokens.retain(|_, t| t.last_used.elapsed() < self.idle);
        tokens.insert(token.clone(), Token { caller: caller.clone(), last_used: Instant::now() });
        Ok((caller, token))
    }

    /// The caller of a request: its bearer token's session; without users configured, a call
    /// without a token gets the session of its connection (`peer`), so `USE` and temporary
    /// views last as long as the connection, as they would in a SQL shell.
    pub(crate) fn caller(
        &self,
        metadata: &MetadataMap,
        peer: Option<std::net::SocketAddr>,
        new_session: impl FnOnce() -> Session,
    ) -> Result<Caller, Status> {
        let header = metadata.get("authorization").and_then(|v| v.to_str().ok());
        if let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer "))) {
            let mut tokens = self.lock();
            // Connection sessions share the map but are not tokens.
            return match tokens.get_mut(token.trim()).filter(|_| !token.starts_with(CONNECTION)) {
                Some(entry) if entry.last_used.elapsed() < self.idle => {
                    entry.last_used = Instant::now();
                    Ok(entry.caller.clone())
                }
                _ => Err(Status::unauthenticated("the session token is unknown or expired: sign in again")),
            };
        }
        if header.is_some_and(|h| h.to_ascii_lowercase().starts_with("basic ")) {
            return self.sign_in(metadata, new_session).map(|(caller, _)| caller);
        }
        if self.required() {
            return Err(Status::unauthenticated("sign in first: this server needs a user name and password"));
        }
        let Some(peer) = peer else { return Ok(Caller { user: ANONYMOUS.to_owned(), session: new_session() }) };
        let mut tokens = self.lock();
        let key = format!("{CONNECTION}{peer}");
        if let Some(entry) = tokens.get_mut(&key).filter(|e| e.last_used.elapsed() < self.idle) {
            entry.last_used = Instant::now();
            return Ok(entry.caller.clone());
        }
        tokens.retain(|_, t| t.last_used.elapsed() < self.idle);
        let caller = Caller { user: ANONYMOUS.to_owned(), session: new_session() };
        tokens.insert(key, Token { caller: caller.clone(), last_used: Instant::now() });
        Ok(caller)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Token>> {
        self.tokens.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// `authorization: Basic base64(user:password)`; some clients leave out the base64 padding.
fn basic_credentials(metadata: &MetadataMap) -> Result<(String, String), Status> {
    let header = metadata.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Some(encoded) = header.get(..6).filter(|p| p.eq_ignore_ascii_case("basic ")).map(|_| header[6..].trim()) else {
        return Err(Status::unauthenticated("sign in with basic authentication (user name and password)"));
    };
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let decoded = lenient.decode(encoded).map_err(|_| Status::unauthenticated("malformed basic authentication header"))?;
    let text = String::from_utf8(decoded).map_err(|_| Status::unauthenticated("malformed basic authentication header"))?;
    let (user, password) = text.split_once(':').ok_or_else(|| Status::unauthenticated("malformed basic authentication header"))?;
    Ok((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(value: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert("authorization", value.parse().expect("header"));
        metadata
    }

    #[test]
    fn basic_credentials_decode_with_or_without_padding() {
        assert_eq!(basic_credentials(&basic("Basic YW5hbHlzdDpzM2NyZXQ=")).expect("padded"), ("analyst".into(), "s3cret".into()));
        assert_eq!(basic_credentials(&basic("Basic YW5hbHlzdDpzM2NyZXQ")).expect("unpadded"), ("analyst".into(), "s3cret".into()));
        assert!(basic_credentials(&basic("Bearer x")).is_err());
    }

    #[test]
    fn hashes_verify_and_bad_hashes_are_named() {
        let hash = hash_password("s3cret").expect("hash");
        assert!(!hash.contains("s3cret"));
        let parsed = PasswordHash::new(&hash).expect("phc");
        assert!(Argon2::default().verify_password(b"s3cret", &parsed).is_ok());
        let err = Auth::new(&[UserConfig { name: "bob".into(), password_hash: "plain".into() }], Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains("'bob'"), "{err}");
    }
}
