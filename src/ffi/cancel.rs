//! `pma_cancel`: a per-handle signal that ends the blocking call in progress.
//!
//! A handle's calls are serialised by its mutex, so cancelling must not take that mutex: the
//! signal lives beside it. It is an epoch counter plus the waker of the future that waits for
//! it. A blocking call notes the epoch when it enters the library (before it waits for the
//! handle's mutex) and runs its work raced against "the epoch moved on": `pma_cancel` bumps the
//! epoch and wakes that future, the work future is dropped, and the call returns
//! `PMA_CANCELLED`. Every call that entered before the cancel — the running one and those
//! waiting for the mutex — is cancelled; a call that enters afterwards runs normally, so a
//! cancel with nothing in progress has no effect.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

/// The cancel signal of one handle.
#[derive(Debug, Default)]
pub(crate) struct Cancel {
    epoch: AtomicU64,
    /// Wakers of the futures waiting for the epoch to move on (at most one per call that is
    /// running; calls are serialised, so usually one).
    waiting: Mutex<Vec<(u64, Waker)>>,
    next_waiter: AtomicU64,
}

impl Cancel {
    /// The current epoch: what a call notes when it enters.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Whether a cancel happened since `entered`.
    pub fn since(&self, entered: u64) -> bool {
        self.epoch() != entered
    }

    /// Cancels every call that entered before now.
    pub fn cancel(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let waiting = std::mem::take(&mut *self.lock());
        for (_, w) in waiting {
            w.wake();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Waker)>> {
        // Never left half-updated (push, retain, take): a poisoned lock is usable.
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A future that completes once a cancel happened after `entered`.
    pub fn cancelled(&self, entered: u64) -> Cancelled<'_> {
        Cancelled {
            cancel: self,
            entered,
            id: self.next_waiter.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// See [`Cancel::cancelled`].
pub(crate) struct Cancelled<'a> {
    cancel: &'a Cancel,
    entered: u64,
    id: u64,
}

impl Future for Cancelled<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.cancel.since(self.entered) {
            return Poll::Ready(());
        }
        {
            let mut waiting = self.cancel.lock();
            match waiting.iter_mut().find(|(id, _)| *id == self.id) {
                Some((_, w)) => w.clone_from(cx.waker()),
                None => waiting.push((self.id, cx.waker().clone())),
            }
        }
        // A cancel between the first check and the registration took the list before we were
        // in it: look again.
        if self.cancel.since(self.entered) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Cancelled<'_> {
    fn drop(&mut self) {
        self.cancel.lock().retain(|(id, _)| *id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_cancel_from_another_thread_ends_the_wait_and_only_calls_entered_before() {
        let c = Arc::new(Cancel::default());
        let entered = c.epoch();
        let c2 = c.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            c2.cancel();
        });
        smol::block_on(c.cancelled(entered));
        t.join().unwrap();
        assert!(c.since(entered));
        // A call entering now is not cancelled by the past cancel.
        let now = c.epoch();
        assert!(!c.since(now));
        let r = smol::block_on(async {
            futures::future::select(
                Box::pin(c.cancelled(now)),
                Box::pin(smol::Timer::after(Duration::from_millis(30))),
            )
            .await
        });
        assert!(matches!(r, futures::future::Either::Right(_)));
        drop(r);
        assert!(c.lock().is_empty(), "a dropped wait leaves no waker behind");
    }
}
