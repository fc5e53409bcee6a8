//! Slots for statements: at most `[server] max_concurrent_queries` run at once, and at most
//! `max_queries_per_user` of one user's, so one analyst's heavy batch cannot take every slot
//! from the dashboards. The others wait their turn, first come first served (Tokio's
//! semaphores are fair), listed as `queued` in `system.queries`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Default)]
pub(crate) struct Slots {
    all: Option<Arc<Semaphore>>,
    per_user: Option<usize>,
    users: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A statement's slot, given back when dropped.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    _user: Option<OwnedSemaphorePermit>,
    _all: Option<OwnedSemaphorePermit>,
}

impl Slots {
    pub(crate) fn new(all: Option<usize>, per_user: Option<usize>) -> Self {
        Self { all: all.map(|n| Arc::new(Semaphore::new(n))), per_user, users: Mutex::default() }
    }

    fn user_slots(&self, user: &str) -> Option<Arc<Semaphore>> {
        let per_user = self.per_user?;
        let mut users = self.users.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(Arc::clone(users.entry(user.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(per_user)))))
    }

    /// A slot for `user` at once, if one is free.
    pub(crate) fn try_acquire(&self, user: &str) -> Option<Slot> {
        let user_slot = match self.user_slots(user) {
            Some(slots) => Some(slots.try_acquire_owned().ok()?),
            None => None,
        };
        let all = match &self.all {
            Some(slots) => Some(Arc::clone(slots).try_acquire_owned().ok()?),
            None => None,
        };
        Some(Slot { _user: user_slot, _all: all })
    }

    /// A slot for `user`, once its turn comes: first one of the user's own, then one of all.
    pub(crate) async fn acquire(&self, user: &str) -> Slot {
        // The semaphores are never closed, so acquiring cannot fail.
        let user_slot = match self.user_slots(user) {
            Some(slots) => slots.acquire_owned().await.ok(),
            None => None,
        };
        let all = match &self.all {
            Some(slots) => Arc::clone(slots).acquire_owned().await.ok(),
            None => None,
        };
        Slot { _user: user_slot, _all: all }
    }
}
