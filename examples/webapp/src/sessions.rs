//! Server-side browser sessions, held in memory.
//!
//! A session id is 256 random bits made here and nowhere else: an id a browser sends that this
//! table did not issue is ignored, so a planted cookie cannot become someone's session. Signing
//! in replaces the sign-in's session with a new one under a new id. Each signed-in session has
//! a CSRF token that its sign-out form must send back. Sessions expire: a sign-in not finished
//! within [`SessionPolicy::pending_ttl`], a signed-in session idle for
//! [`SessionPolicy::idle`]. Both kinds are capped, the oldest going first, so requests without
//! a cookie cannot grow memory without bound; unfinished sign-ins are capped separately so a
//! flood of them never signs anybody out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokencache_client::AccountInfo;

/// How long sessions live and how many there may be.
#[derive(Clone, Debug)]
pub struct SessionPolicy {
    /// A signed-in session unused this long is gone.
    pub idle: Duration,
    /// A sign-in not finished this long is gone.
    pub pending_ttl: Duration,
    /// At most this many signed-in sessions; the least recently used goes first.
    pub max_signed_in: usize,
    /// At most this many unfinished sign-ins; the oldest goes first.
    pub max_pending: usize,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            idle: Duration::from_secs(8 * 3600),
            pending_ttl: Duration::from_secs(10 * 60),
            max_signed_in: 100_000,
            max_pending: 10_000,
        }
    }
}

/// What a session is at: signing in (the pending flow) or signed in.
enum Stage {
    SigningIn { flow: String },
    SignedIn { account: AccountInfo, csrf: String },
}

struct Session {
    stage: Stage,
    last_seen: Instant,
}

/// A signed-in session as a request sees it.
pub struct SignedIn {
    /// Who is signed in.
    pub account: AccountInfo,
    /// The token the sign-out form carries.
    pub csrf: String,
}

/// Why a session operation failed.
#[derive(Debug)]
pub enum SessionError {
    /// The system's random number generator failed; no id can be made safely.
    NoRandomness,
    /// A sign-out without this session's CSRF token.
    Forged,
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionError::NoRandomness => f.write_str("no system randomness for a session id"),
            SessionError::Forged => {
                f.write_str("the sign-out request did not come from this app's page")
            }
        }
    }
}

/// The session table.
pub struct Sessions {
    policy: SessionPolicy,
    table: Mutex<HashMap<String, Session>>,
}

fn random_token() -> Result<String, SessionError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| SessionError::NoRandomness)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Sessions {
    /// An empty table under `policy`.
    pub fn new(policy: SessionPolicy) -> Sessions {
        Sessions {
            policy,
            table: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock leaves the table consistent (every change is one
        // insert or remove), so a poisoned lock is still usable.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn expired(&self, session: &Session, now: Instant) -> bool {
        let ttl = match session.stage {
            Stage::SigningIn { .. } => self.policy.pending_ttl,
            Stage::SignedIn { .. } => self.policy.idle,
        };
        now.duration_since(session.last_seen) >= ttl
    }

    /// Inserts a session, first dropping expired ones and, when its kind is at its cap, the
    /// oldest of that kind.
    fn insert(&self, session: Session) -> Result<String, SessionError> {
        let id = random_token()?;
        let now = Instant::now();
        let pending = matches!(session.stage, Stage::SigningIn { .. });
        let cap = if pending {
            self.policy.max_pending
        } else {
            self.policy.max_signed_in
        };
        let mut table = self.lock();
        table.retain(|_, s| !self.expired(s, now));
        let same_kind = |s: &Session| matches!(s.stage, Stage::SigningIn { .. }) == pending;
        let mut count = table.values().filter(|s| same_kind(s)).count();
        while count >= cap.max(1) {
            let oldest = table
                .iter()
                .filter(|(_, s)| same_kind(s))
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(id, _)| id.clone());
            let Some(oldest) = oldest else { break };
            table.remove(&oldest);
            count -= 1;
        }
        table.insert(id.clone(), session);
        Ok(id)
    }

    /// Starts a sign-in: a new session holding the pending flow. Returns its id.
    pub fn start_sign_in(&self, flow: String) -> Result<String, SessionError> {
        self.insert(Session {
            stage: Stage::SigningIn { flow },
            last_seen: Instant::now(),
        })
    }

    /// Takes the pending flow of sign-in session `id`, ending that session.
    pub fn take_flow(&self, id: &str) -> Option<String> {
        let mut table = self.lock();
        let now = Instant::now();
        match table.get(id) {
            Some(s) if !self.expired(s, now) && matches!(s.stage, Stage::SigningIn { .. }) => {}
            _ => return None,
        }
        match table.remove(id)?.stage {
            Stage::SigningIn { flow } => Some(flow),
            Stage::SignedIn { .. } => None,
        }
    }

    /// A new signed-in session for `account`. Returns its id.
    pub fn sign_in(&self, account: AccountInfo) -> Result<String, SessionError> {
        let csrf = random_token()?;
        self.insert(Session {
            stage: Stage::SignedIn { account, csrf },
            last_seen: Instant::now(),
        })
    }

    /// The signed-in session `id`, if it exists and has not expired (using it keeps it alive).
    pub fn signed_in(&self, id: &str) -> Option<SignedIn> {
        let mut table = self.lock();
        let now = Instant::now();
        let expired = self.expired(table.get(id)?, now);
        if expired {
            table.remove(id);
            return None;
        }
        let session = table.get_mut(id)?;
        session.last_seen = now;
        match &session.stage {
            Stage::SignedIn { account, csrf } => Some(SignedIn {
                account: account.clone(),
                csrf: csrf.clone(),
            }),
            Stage::SigningIn { .. } => None,
        }
    }

    /// Ends signed-in session `id` when `csrf` is its token; returns who was signed in
    /// (`None` when there was no such session).
    pub fn sign_out(&self, id: &str, csrf: &str) -> Result<Option<AccountInfo>, SessionError> {
        let mut table = self.lock();
        let Some(Session {
            stage: Stage::SignedIn { csrf: expected, .. },
            ..
        }) = table.get(id)
        else {
            return Ok(None);
        };
        // Both are 64 hex digits; compare without an early exit so timing says nothing.
        let same = expected.len() == csrf.len()
            && expected
                .bytes()
                .zip(csrf.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            return Err(SessionError::Forged);
        }
        match table.remove(id).map(|s| s.stage) {
            Some(Stage::SignedIn { account, .. }) => Ok(Some(account)),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use super::*;

    fn account(name: &str) -> AccountInfo {
        AccountInfo {
            home_account_id: format!("{name}.tenant"),
            environment: "login.example".into(),
            username: format!("{name}@example.test"),
            local_account_id: None,
            realm: None,
            authority_type: None,
        }
    }

    #[test]
    fn ids_are_issued_here_and_a_sign_in_gets_a_new_one() {
        let sessions = Sessions::new(SessionPolicy::default());
        let pending = sessions.start_sign_in("flow".into()).unwrap();
        assert_eq!(pending.len(), 64);
        assert!(sessions.signed_in("chosen-by-an-attacker").is_none());
        assert!(sessions.take_flow("chosen-by-an-attacker").is_none());
        assert_eq!(sessions.take_flow(&pending).as_deref(), Some("flow"));
        assert!(
            sessions.take_flow(&pending).is_none(),
            "a flow is used once"
        );
        let signed_in = sessions.sign_in(account("ada")).unwrap();
        assert_ne!(signed_in, pending);
        assert!(sessions.signed_in(&pending).is_none());
        assert_eq!(
            sessions.signed_in(&signed_in).unwrap().account.username,
            "ada@example.test"
        );
    }

    #[test]
    fn sign_out_needs_the_sessions_csrf_token() {
        let sessions = Sessions::new(SessionPolicy::default());
        let id = sessions.sign_in(account("ada")).unwrap();
        let csrf = sessions.signed_in(&id).unwrap().csrf;
        assert!(matches!(
            sessions.sign_out(&id, "0".repeat(64).as_str()),
            Err(SessionError::Forged)
        ));
        assert!(matches!(
            sessions.sign_out(&id, ""),
            Err(SessionError::Forged)
        ));
        assert!(
            sessions.signed_in(&id).is_some(),
            "a forged sign-out changes nothing"
        );
        assert_eq!(
            sessions.sign_out(&id, &csrf).unwrap().unwrap().username,
            "ada@example.test"
        );
        assert!(sessions.signed_in(&id).is_none());
    }

    #[test]
    fn sessions_expire_and_each_kind_is_capped_separately() {
        let sessions = Sessions::new(SessionPolicy {
            idle: Duration::from_millis(50),
            pending_ttl: Duration::from_secs(60),
            max_signed_in: 2,
            max_pending: 3,
        });
        let ada = sessions.sign_in(account("ada")).unwrap();
        let first_pending = sessions.start_sign_in("f0".into()).unwrap();
        for i in 1..10 {
            sessions.start_sign_in(format!("f{i}")).unwrap();
        }
        assert!(
            sessions.take_flow(&first_pending).is_none(),
            "oldest pending evicted"
        );
        assert!(
            sessions.signed_in(&ada).is_some(),
            "a flood of sign-ins signs nobody out"
        );
        assert_eq!(sessions.lock().len(), 4, "3 pending + 1 signed in");
        let bob = sessions.sign_in(account("bob")).unwrap();
        let cy = sessions.sign_in(account("cy")).unwrap();
        assert!(
            sessions.signed_in(&ada).is_none(),
            "least recently used goes at the cap"
        );
        assert!(sessions.signed_in(&bob).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(sessions.signed_in(&cy).is_none(), "idle sessions expire");
    }
}
