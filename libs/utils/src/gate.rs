//! Gates: a way to wait, at shutdown, for every task that works on an object.
//!
//! A task enters the gate and holds the returned guard for as long as it uses
//! the object; `close()` refuses new entries and waits until every guard is
//! dropped. Pair with a `CancellationToken` so holders are asked to finish.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// Largest number of concurrent holders; `close` acquires all of them.
const MAX_HOLDERS: u32 = Semaphore::MAX_PERMITS as u32 / 2;

#[derive(Debug)]
pub struct Gate {
    sem: Arc<Semaphore>,
}

/// Proof that a task is inside the gate. Dropping it leaves.
#[derive(Debug)]
pub struct GateGuard {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("gate is closed")]
pub struct GateClosed;

impl Default for Gate {
    fn default() -> Self {
        Self {
            sem: Arc::new(Semaphore::new(MAX_HOLDERS as usize)),
        }
    }
}

impl Gate {
    /// Enters the gate, or fails if it is closing or closed.
    pub fn enter(&self) -> Result<GateGuard, GateClosed> {
        Arc::clone(&self.sem)
            .try_acquire_owned()
            .map(|permit| GateGuard { _permit: permit })
            .map_err(|_| GateClosed)
    }

    /// Refuses new entries, then waits for every holder to leave.
    pub async fn close(&self) {
        // Holding all permits proves that no guard remains; closing the
        // semaphore afterwards makes every later `enter` fail at once.
        if let Ok(all) = self.sem.acquire_many(MAX_HOLDERS).await {
            all.forget();
        }
        self.sem.close();
    }

    pub fn is_closed(&self) -> bool {
        self.sem.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn close_waits_for_holders() {
        let gate = Arc::new(Gate::default());
        let guard = gate.enter().unwrap();
        let closer = {
            let gate = Arc::clone(&gate);
            tokio::spawn(async move { gate.close().await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!closer.is_finished());
        drop(guard);
        closer.await.unwrap();
        assert!(gate.is_closed());
        assert_eq!(gate.enter().unwrap_err(), GateClosed);
    }
}
