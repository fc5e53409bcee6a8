//! Who may call the server: users with Argon2 password hashes from the configuration, a
//! basic-auth handshake that returns a bearer token, and the token on every later call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use tonic::Status;
use tonic::metadata::MetadataMap;

use super::UserConfig;
use crate::Session;
use crate::access::{ANONYMOUS, Principal};

/// How many sessions one user may hold at once; signing in beyond it ends that user's least
/// recently used session, so a client that signs in on every call cannot exhaust memory.
const MAX_SESSIONS_PER_USER: usize = 256;

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
struct Entry {
    caller: Caller,
    last_used: Instant,
}

/// What a session is found by. Tokens and Basic headers are kept only as keyed digests: the
/// map never holds a credential, and looking one up compares digests, so the time a lookup
/// takes says nothing about how much of a guessed token was right.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Token([u8; 32]),
    Basic([u8; 32]),
    Connection(std::net::SocketAddr),
}

#[derive(Debug)]
pub(crate) struct Auth {
    /// User name → PHC hash string and what the user may do.
    users: HashMap<String, (String, Principal)>,
    sessions: Mutex<HashMap<Key, Entry>>,
    idle: Duration,
    /// The key of the digests, new in each process.
    secret: [u8; 32],
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
        for user in users.iter().filter(|u| !u.principal().is_admin() && u.databases.is_empty()) {
            tracing::warn!(user = %user.name, role = %user.role, "no databases granted: the user can read nothing; set `databases = [...]`");
        }
        let users = users.iter().map(|u| (u.name.clone(), (u.password_hash.clone(), u.principal()))).collect();
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        Ok(Self { users, sessions: Mutex::default(), idle, secret })
    }

    /// How many sessions are open.
    pub(crate) fn sessions(&self) -> usize {
        self.lock().len()
    }

    /// Whether `headers` carry the Basic credentials of an admin (for the admin endpoint).
    pub(crate) fn is_admin(&self, headers: &hyper::HeaderMap) -> bool {
        let metadata = MetadataMap::from_headers(headers.clone());
        self.verify(&metadata).is_ok_and(|principal| principal.is_admin())
    }

    pub(crate) fn required(&self) -> bool {
        !self.users.is_empty()
    }

    fn digest(&self, credential: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.secret);
        hasher.update(credential.as_bytes());
        hasher.finalize().into()
    }

    /// Checks `authorization: Basic ...` and returns the user and a new bearer token.
    pub(crate) fn sign_in(
        &self,
        metadata: &MetadataMap,
        new_session: impl FnOnce(Principal) -> Session,
    ) -> Result<(Caller, String), Status> {
        let principal = self.verify(metadata)?;
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let caller = Caller { user: principal.user.clone(), session: new_session(principal) };
        self.insert(Key::Token(self.digest(&token)), caller.clone());
        Ok((caller, token))
    }

    /// The user of a Basic header, its password checked when users are configured.
    fn verify(&self, metadata: &MetadataMap) -> Result<Principal, Status> {
        let (user, password) = basic_credentials(metadata)?;
        if !self.required() {
            return Ok(Principal::local(ANONYMOUS));
        }
        let verified = self.users.get(&user).filter(|(hash, _)| {
            PasswordHash::new(hash)
                .is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
        });
        match verified {
            Some((_, principal)) => Ok(principal.clone()),
            None => {
                tracing::warn!(%user, "sign-in refused");
                Err(Status::unauthenticated(format!("wrong user name or password for '{user}'")))
            }
        }
    }

    /// The caller of a request:
    /// - a bearer token: the session it was issued for;
    /// - a Basic header: the session of those exact credentials, made (and the password
    ///   checked) on first use only, so clients that send Basic on every call keep one session;
    /// - nothing, without users configured: the session of its connection (`peer`), so `USE`
    ///   and temporary views last as long as the connection, as in a SQL shell.
    ///
    /// Without users configured, a bearer token this server did not issue is no credential at
    /// all (flightsql-dbapi sends `Bearer None` when given no user), so it does not lock the
    /// client out.
    pub(crate) fn caller(
        &self,
        metadata: &MetadataMap,
        peer: Option<std::net::SocketAddr>,
        new_session: impl FnOnce(Principal) -> Session,
    ) -> Result<Caller, Status> {
        let header = metadata.get("authorization").and_then(|v| v.to_str().ok());
        let scheme = |name: &str| {
            header.and_then(|h| h.get(..name.len()).filter(|p| p.eq_ignore_ascii_case(name)).map(|_| &h[name.len()..]))
        };
        if let Some(token) = scheme("bearer ") {
            if let Some(caller) = self.touch(&Key::Token(self.digest(token))) {
                return Ok(caller);
            }
            if self.required() {
                return Err(Status::unauthenticated("the session token is unknown or expired: sign in again"));
            }
        } else if let Some(credentials) = scheme("basic ") {
            let key = Key::Basic(self.digest(credentials));
            if let Some(caller) = self.touch(&key) {
                return Ok(caller);
            }
            let principal = self.verify(metadata)?;
            let caller = Caller { user: principal.user.clone(), session: new_session(principal) };
            self.insert(key, caller.clone());
            return Ok(caller);
        } else if self.required() {
            return Err(Status::unauthenticated("sign in first: this server needs a user name and password"));
        }
        let anonymous = || Caller { user: ANONYMOUS.to_owned(), session: new_session(Principal::local(ANONYMOUS)) };
        let Some(peer) = peer else { return Ok(anonymous()) };
        let key = Key::Connection(peer);
        if let Some(caller) = self.touch(&key) {
            return Ok(caller);
        }
        let caller = anonymous();
        self.insert(key, caller.clone());
        Ok(caller)
    }

    /// The caller of a live session, marked used now.
    fn touch(&self, key: &Key) -> Option<Caller> {
        let mut sessions = self.lock();
        let entry = sessions.get_mut(key).filter(|e| e.last_used.elapsed() < self.idle)?;
        entry.last_used = Instant::now();
        Some(entry.caller.clone())
    }

    /// Keeps a new session, dropping expired ones and, past the per-user cap, the user's least
    /// recently used one.
    fn insert(&self, key: Key, caller: Caller) {
        let mut sessions = self.lock();
        sessions.retain(|_, e| e.last_used.elapsed() < self.idle);
        let mine = sessions.iter().filter(|(_, e)| e.caller.user == caller.user);
        if mine.clone().count() >= MAX_SESSIONS_PER_USER
            && let Some(oldest) = mine.min_by_key(|(_, e)| e.last_used).map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(key, Entry { caller, last_used: Instant::now() });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let decoded =
        lenient.decode(encoded).map_err(|_| Status::unauthenticated("malformed basic authentication header"))?;
    let text =
        String::from_utf8(decoded).map_err(|_| Status::unauthenticated("malformed basic authentication header"))?;
    let (user, password) =
        text.split_once(':').ok_or_else(|| Status::unauthenticated("malformed basic authentication header"))?;
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
        assert_eq!(
            basic_credentials(&basic("Basic YW5hbHlzdDpzM2NyZXQ=")).expect("padded"),
            ("analyst".into(), "s3cret".into())
        );
        assert_eq!(
            basic_credentials(&basic("Basic YW5hbHlzdDpzM2NyZXQ")).expect("unpadded"),
            ("analyst".into(), "s3cret".into())
        );
        assert!(basic_credentials(&basic("Bearer x")).is_err());
    }

    #[test]
    fn hashes_verify_and_bad_hashes_are_named() {
        let hash = hash_password("s3cret").expect("hash");
        assert!(!hash.contains("s3cret"));
        let parsed = PasswordHash::new(&hash).expect("phc");
        assert!(Argon2::default().verify_password(b"s3cret", &parsed).is_ok());
        let bob = UserConfig {
            name: "bob".into(),
            password_hash: "plain".into(),
            role: Default::default(),
            databases: vec![],
        };
        let err = Auth::new(&[bob], Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains("'bob'"), "{err}");
    }
}
