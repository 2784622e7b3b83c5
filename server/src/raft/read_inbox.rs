//! Linearizable reads on their way to the driver. A read that arrives while a ReadIndex
//! round is out waits for the next round whatever it does, so it need not wake the
//! driver: the driver takes every read here at each of its turns, and asks to be woken
//! only while a new read could be served at once (no round out, or a lease). Under load
//! that saves the driver a wake-up per read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::sync::oneshot;

use super::RAFT_MAILBOX_CAPACITY;
use crate::error::Result;

pub(super) type Waiter = oneshot::Sender<Result<()>>;

/// Reads waiting for the driver's next turn at most; past it a read is refused with
/// "too many requests", as a full mailbox refuses a request.
pub(super) const READS_WAITING_MAX: usize = RAFT_MAILBOX_CAPACITY;

/// What became of a read handed in.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Pushed {
    /// Waiting; the driver wants a message to wake it for this read.
    Wake,
    /// Waiting; the driver takes it at its next turn unasked.
    Queued,
    Full,
    /// The driver has stopped.
    Closed,
}

#[derive(Default)]
struct Inner {
    waiting: Vec<Waiter>,
    closed: bool,
}

pub(super) struct ReadInbox {
    inner: Mutex<Inner>,
    /// Whether the driver wants a message for the next read: it sets this before it
    /// looks for reads, a reader clears it after adding one, so either the driver
    /// finds the read or the reader wakes the driver.
    wake: AtomicBool,
}

impl ReadInbox {
    pub(super) fn new() -> ReadInbox {
        ReadInbox {
            inner: Mutex::default(),
            wake: AtomicBool::new(true),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("read inbox lock poisoned")
    }

    pub(super) fn push(&self, waiter: Waiter) -> Pushed {
        {
            let mut inner = self.lock();
            if inner.closed {
                return Pushed::Closed;
            }
            if inner.waiting.len() >= READS_WAITING_MAX {
                return Pushed::Full;
            }
            inner.waiting.push(waiter);
        }
        if self.wake.swap(false, Ordering::SeqCst) {
            Pushed::Wake
        } else {
            Pushed::Queued
        }
    }

    /// The driver's: the reads waiting.
    pub(super) fn take(&self) -> Vec<Waiter> {
        std::mem::take(&mut self.lock().waiting)
    }

    /// The driver's, before it waits for messages: whether the next read should wake it.
    /// True if it should and reads are already waiting: it must take them now.
    pub(super) fn arm(&self, wake: bool) -> bool {
        self.wake.store(wake, Ordering::SeqCst);
        wake && !self.lock().waiting.is_empty()
    }

    /// The driver's, when it stops: later reads are refused; the reads waiting.
    pub(super) fn close(&self) -> Vec<Waiter> {
        let mut inner = self.lock();
        inner.closed = true;
        std::mem::take(&mut inner.waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(inbox: &ReadInbox) -> Pushed {
        inbox.push(oneshot::channel().0)
    }

    #[test]
    fn only_the_first_read_after_the_driver_armed_wakes_it() {
        let inbox = ReadInbox::new();
        assert_eq!(read(&inbox), Pushed::Wake);
        assert_eq!(read(&inbox), Pushed::Queued);
        assert_eq!(inbox.take().len(), 2);
        // A round is out: reads queue silently.
        assert!(!inbox.arm(false));
        assert_eq!(read(&inbox), Pushed::Queued);
        // The round is back, with a read left behind: the driver must not sleep on it.
        assert!(inbox.arm(true));
        assert_eq!(inbox.take().len(), 1);
        assert!(!inbox.arm(true));
        assert_eq!(read(&inbox), Pushed::Wake);
    }

    #[test]
    fn a_full_or_closed_inbox_refuses_reads() {
        let inbox = ReadInbox::new();
        for _ in 0..READS_WAITING_MAX {
            assert_ne!(read(&inbox), Pushed::Full);
        }
        assert_eq!(read(&inbox), Pushed::Full);
        assert_eq!(inbox.close().len(), READS_WAITING_MAX);
        assert_eq!(read(&inbox), Pushed::Closed);
    }
}
