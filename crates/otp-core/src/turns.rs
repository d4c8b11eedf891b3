//! [`DeviceTurns`]: within one process, the verifications of one device take turns.
//!
//! Correctness never depends on this: every state change is a compare-and-set in the
//! database, which is what makes a code count once across processes and servers. It is about
//! speed under contention. Verifications of one device that run at once all read the same
//! version, and all but one lose the compare-and-set and start over, so N of them cost about
//! N²/2 reads and writes; the database serialises their writes anyway (a row lock, or
//! SQLite's single writer). Taking turns first makes them cost N, and a waiting verification
//! holds no database connection.
//!
//! While verifications of a device are queued, each turn also hands the next one the device as
//! it last stored it ([`Turn::device`]), so that the next one need not read it again. That
//! copy is only a hint: it is used only to go on to a compare-and-set on its version, which
//! fails if anything changed the row since, and a decision to refuse is never taken from it.
//! The copy is forgotten with the entry when no verification of the device is left.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::Device;

/// The lock of one device, with the device as the last turn stored it.
type DeviceLock = Arc<AsyncMutex<Option<Device>>>;

/// Entries kept for devices nobody is verifying are swept once the map grows past this.
const SWEEP_ABOVE: usize = 1024;

/// One async lock per device being verified in this process.
#[derive(Debug, Default)]
pub(crate) struct DeviceTurns {
    locks: Mutex<HashMap<i64, DeviceLock>>,
}

/// The turn of one verification; the next one's begins when it is dropped.
pub(crate) struct Turn<'a> {
    turns: &'a DeviceTurns,
    device: i64,
    lock: Option<DeviceLock>,
    guard: Option<OwnedMutexGuard<Option<Device>>>,
}

impl Turn<'_> {
    /// The device as the previous turn left it in the database, if it said (see the module
    /// docs for how far it may be trusted); set it for the next turn.
    pub(crate) fn device(&mut self) -> &mut Option<Device> {
        self.guard
            .as_mut()
            .expect("a turn holds its lock until it is dropped")
    }
}

impl DeviceTurns {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<i64, DeviceLock>> {
        // The map stays consistent whatever panicked while it was locked.
        self.locks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the turn of `device` (its number).
    pub(crate) async fn turn(&self, device: i64) -> Turn<'_> {
        let lock = {
            let mut map = self.map();
            if map.len() > SWEEP_ABOVE {
                // Left by verifications dropped while they waited.
                map.retain(|_, lock| Arc::strong_count(lock) > 1);
            }
            Arc::clone(map.entry(device).or_default())
        };
        let mut turn = Turn {
            turns: self,
            device,
            lock: Some(Arc::clone(&lock)),
            guard: None,
        };
        turn.guard = Some(lock.lock_owned().await);
        turn
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut map = self.turns.map();
        drop(self.guard.take());
        drop(self.lock.take());
        // Nobody else holds or awaits this lock: forget it.
        if map
            .get(&self.device)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            map.remove(&self.device);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn turns_of_one_device_exclude_each_other_and_are_forgotten() {
        let turns = Arc::new(DeviceTurns::default());
        let first = turns.turn(7).await;
        let other_device = turns.turn(8).await;
        let waiting = {
            let turns = Arc::clone(&turns);
            tokio::spawn(async move {
                let _turn = turns.turn(7).await;
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiting.is_finished(),
            "a second turn of device 7 must wait"
        );
        drop(first);
        waiting.await.unwrap();
        drop(other_device);
        assert!(turns.map().is_empty());

        // A waiter dropped before its turn leaves nothing behind either.
        let held = turns.turn(9).await;
        let dropped = tokio::time::timeout(Duration::from_millis(10), turns.turn(9)).await;
        assert!(dropped.is_err());
        drop(held);
        assert!(turns.map().is_empty());
    }
}
