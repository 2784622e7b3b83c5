//! Linearizable reads by ReadIndex, batched: one round at a time (as etcd's
//! linearizableReadLoop), and every read that arrives while a round is out shares the
//! next one. A read is released when the store has applied up to the index the leader
//! confirmed.

use std::collections::HashMap;

use raft::{RawNode, ReadState, StateRole, Storage};
use tokio::sync::oneshot;

use crate::error::{Error, Result};

type Waiter = oneshot::Sender<Result<()>>;

/// ReadIndex rounds out at once. Each round costs the leader a heartbeat to every
/// follower and their answers; under load, waiting for the round out to return gathers
/// many more reads into the next one than starting a round every driver turn (measured:
/// linearizable range on 3 members, 64 clients, see the README).
const READ_ROUNDS_IN_FLIGHT_MAX: usize = 1;

/// Pending reads in their three stages.
pub(super) struct ReadQueue {
    /// This member's id, the first half of every round's context: the leader keys pending
    /// rounds by context and drops one whose context it already holds, so two members
    /// must never send the same one.
    member: u64,
    /// Arrived, not yet part of a ReadIndex round.
    waiting: Vec<Waiter>,
    /// In a round: context -> (tick issued, waiters).
    issued: HashMap<u64, (u64, Vec<Waiter>)>,
    /// Confirmed: waiting for the store to apply up to the index.
    confirmed: Vec<(u64, Vec<Waiter>)>,
    next_context: u64,
    /// Length of `waiting` at which it is next pruned of reads nobody awaits.
    prune_at: usize,
}

/// `waiting` is first pruned at this length.
const READS_PRUNED_FROM: usize = 1024;

impl ReadQueue {
    pub(super) fn new(member: u64) -> ReadQueue {
        ReadQueue {
            member,
            waiting: Vec::new(),
            issued: HashMap::new(),
            confirmed: Vec::new(),
            // Counting from the clock, a restarted member never reuses a context of a
            // round the leader may still hold from before the restart (its answer would
            // confirm a newer round with an older index).
            next_context: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos() as u64),
            prune_at: READS_PRUNED_FROM,
        }
    }

    pub(super) fn push(&mut self, waiter: Waiter) {
        // Reads whose client gave up (timed out, disconnected) leave: without a leader
        // nothing else would ever take them out. Pruned each time the queue doubles.
        if self.waiting.len() >= self.prune_at {
            self.waiting.retain(|w| !w.is_closed());
            self.prune_at = (2 * self.waiting.len()).max(READS_PRUNED_FROM);
        }
        self.waiting.push(waiter);
    }

    /// Starts a round for the waiting reads if raft can serve one now. raft-rs drops a
    /// ReadIndex silently when there is no leader, or when the leader has not committed
    /// an entry in its term yet; those reads wait for the next chance instead.
    pub(super) fn issue<S: Storage>(&mut self, raw: &mut RawNode<S>, tick: u64) {
        if self.issued.len() >= READ_ROUNDS_IN_FLIGHT_MAX {
            return;
        }
        self.waiting.retain(|w| !w.is_closed());
        if self.waiting.is_empty() {
            return;
        }
        let raft = &raw.raft;
        let ready = raft.leader_id != raft::INVALID_ID
            && (raft.state != StateRole::Leader || raft.commit_to_current_term());
        if !ready {
            return;
        }
        let context = self.next_context;
        self.next_context = self.next_context.wrapping_add(1);
        let mut ctx = self.member.to_be_bytes().to_vec();
        ctx.extend_from_slice(&context.to_be_bytes());
        raw.read_index(ctx);
        self.issued
            .insert(context, (tick, std::mem::take(&mut self.waiting)));
    }

    pub(super) fn confirm(&mut self, states: Vec<ReadState>) {
        for state in states {
            let Some((member, context)) = state.request_ctx.split_at_checked(8) else {
                continue;
            };
            let (Ok(member), Ok(context)) =
                (<[u8; 8]>::try_from(member), <[u8; 8]>::try_from(context))
            else {
                continue;
            };
            if u64::from_be_bytes(member) != self.member {
                continue;
            }
            if let Some((_, waiters)) = self.issued.remove(&u64::from_be_bytes(context)) {
                self.confirmed.push((state.index, waiters));
            }
        }
    }

    /// Answers the reads whose index has been applied.
    pub(super) fn release(&mut self, applied: u64) {
        self.confirmed.retain_mut(|(index, waiters)| {
            if *index > applied {
                return true;
            }
            for waiter in waiters.drain(..) {
                let _ = waiter.send(Ok(()));
            }
            false
        });
    }

    /// Rounds older than `timeout_ticks` were probably dropped (leader change): retry.
    pub(super) fn retry_stale(&mut self, tick: u64, timeout_ticks: u64) {
        let stale: Vec<u64> = self
            .issued
            .iter()
            .filter(|(_, (issued, _))| tick.saturating_sub(*issued) > timeout_ticks)
            .map(|(&context, _)| context)
            .collect();
        for context in stale {
            if let Some((_, waiters)) = self.issued.remove(&context) {
                self.waiting
                    .extend(waiters.into_iter().filter(|w| !w.is_closed()));
            }
        }
    }

    pub(super) fn fail_all(&mut self) {
        let issued = self.issued.drain().flat_map(|(_, (_, w))| w);
        let confirmed = self.confirmed.drain(..).flat_map(|(_, w)| w);
        for waiter in self.waiting.drain(..).chain(issued).chain(confirmed) {
            let _ = waiter.send(Err(Error::Stopped));
        }
    }
}

#[cfg(test)]
mod tests {
    use raft::storage::MemStorage;

    use super::super::mem_node::{mem_node as member, ready};
    use super::*;

    /// Runs the members' Readies and delivers their messages until all is quiet.
    fn settle(members: &mut [RawNode<MemStorage>], queues: &mut [ReadQueue]) {
        loop {
            let mut mail = Vec::new();
            for (raw, queue) in members.iter_mut().zip(queues.iter_mut()) {
                let (messages, read_states) = ready(raw);
                mail.extend(messages);
                queue.confirm(read_states);
            }
            if mail.is_empty() {
                return;
            }
            for message in mail {
                members[message.to as usize - 1].step(message).unwrap();
            }
        }
    }

    #[test]
    fn rounds_of_different_members_started_together_are_all_confirmed() {
        let mut members: Vec<_> = (1..=3).map(member).collect();
        let mut queues: Vec<_> = (1..=3).map(ReadQueue::new).collect();
        members[0].campaign().unwrap();
        settle(&mut members, &mut queues);
        assert_eq!(members[0].raft.state, StateRole::Leader);

        // Every member starts a round with the same counter.
        let mut answers = Vec::new();
        for (raw, queue) in members.iter_mut().zip(queues.iter_mut()) {
            queue.next_context = 7;
            let (reply, answer) = oneshot::channel();
            queue.push(reply);
            queue.issue(raw, 0);
            answers.push(answer);
        }
        settle(&mut members, &mut queues);
        for (i, (queue, mut answer)) in queues.iter_mut().zip(answers).enumerate() {
            queue.release(u64::MAX);
            assert!(
                matches!(answer.try_recv(), Ok(Ok(()))),
                "member {}'s read was never confirmed",
                i + 1
            );
        }
    }

    #[test]
    fn reads_whose_client_gave_up_leave_the_queue() {
        let mut queue = ReadQueue::new(1);
        let mut kept = Vec::new();
        for i in 0..3 * READS_PRUNED_FROM {
            let (reply, answer) = oneshot::channel();
            queue.push(reply);
            // Every other client gives up at once.
            if i % 2 == 0 {
                kept.push(answer);
            }
        }
        assert!(
            queue.waiting.len() < 2 * READS_PRUNED_FROM,
            "{} waiting",
            queue.waiting.len()
        );
        // No leader: nothing issued, but the abandoned reads are gone.
        let mut raft = member(1);
        queue.issue(&mut raft, 0);
        assert_eq!(queue.waiting.len(), kept.len());
    }
}
