//! Linearizable reads by ReadIndex, batched: one round at a time (as etcd's
//! linearizableReadLoop), and every read that arrives while a round is out shares the
//! next one. A read is released when the store has applied up to the index the leader
//! confirmed. A leader also holds its followers' ReadIndex requests for its own next
//! round, where raft-rs would start a round for each.
//!
//! With leader leases (`--experimental-leader-lease-reads`, off by default) a leader
//! whose own round a quorum confirmed holds a lease for a while after the round began,
//! and answers reads (its own and its followers') at its commit index without a round.
//! Why that is safe, and within which bounds: [`lease_for`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use raft::eraftpb::{Message, MessageType};
use raft::{RawNode, ReadOnlyOption, ReadState, StateRole, Storage};

use crate::error::Error;

use super::read_inbox::Waiter;

/// The share of a follower's promise a leader relies on, in percent: the rest covers
/// the clocks of two machines running at different rates (NTP keeps them within
/// 0.05%) with a wide margin.
const LEASE_SHARE_OF_PROMISE_PERCENT: u32 = 90;

/// How long after a round began its leader may answer reads alone, for members that tick
/// every `tick` and refuse votes for `election_ticks` ticks after hearing from a leader.
///
/// The argument: a follower that receives a heartbeat sets its election clock to zero
/// and, with check-quorum on, neither grants a vote nor campaigns until `election_ticks`
/// ticks have passed, at least `(election_ticks - 1) * tick` later (a tick is never
/// early; a late one only lengthens the promise). A round's heartbeats leave after the
/// round began and a quorum answered them, so every quorum that could elect another
/// leader holds a member bound until at least then; a member that restarts forgets
/// its promise, so with leases on a member refuses votes for `election_ticks` ticks
/// after it starts. Three things end a lease early: a new term, a leadership transfer
/// (its target's campaign is exempt from the promise) and a membership change (the
/// quorum changes). What it assumes: clock rates within the margin above, and no
/// leadership-transfer message delayed past an election timeout.
pub(super) fn lease_for(tick: Duration, election_ticks: u64) -> Duration {
    let promise = tick * (election_ticks.saturating_sub(1) as u32);
    promise * LEASE_SHARE_OF_PROMISE_PERCENT / 100
}

/// One ReadIndex round out.
struct Round {
    /// The tick it was issued at.
    tick: u64,
    /// When it was issued, before its heartbeats left.
    started: Instant,
    /// The term it was issued in, if as leader: only a leader's own round starts a lease.
    leader_term: Option<u64>,
    waiters: Vec<Waiter>,
    /// Followers' ReadIndex requests it answers once confirmed.
    forwarded: Vec<Message>,
}

/// A leader's lease: reads are answered alone until `until`, in `term` only.
struct Lease {
    term: u64,
    until: Instant,
}

/// ReadIndex rounds out at once. Each round costs the leader a heartbeat to every
/// follower and their answers; under load, waiting for the round out to return gathers
/// many more reads into the next one than starting a round every driver turn (measured:
/// linearizable range on 3 members, 64 clients: change 6 in docs/performance.md).
const READ_ROUNDS_IN_FLIGHT_MAX: usize = 1;

/// Followers' ReadIndex requests a leader holds for its next round at most; past it
/// raft-rs starts a round for each. A follower has one round out at a time, so this
/// is only reached with hundreds of members or requests repeated by a faulty one.
const FORWARDED_READS_MAX: usize = 1024;

/// Pending reads in their three stages.
pub(super) struct ReadQueue {
    /// This member's id, the first half of every round's context: the leader keys pending
    /// rounds by context and drops one whose context it already holds, so two members
    /// must never send the same one.
    member: u64,
    /// Arrived, not yet part of a ReadIndex round.
    waiting: Vec<Waiter>,
    /// As leader: followers' ReadIndex requests, not yet part of a round.
    forwarded: Vec<Message>,
    /// In a round, by context.
    issued: HashMap<u64, Round>,
    /// Confirmed: waiting for the store to apply up to the index.
    confirmed: Vec<(u64, Vec<Waiter>)>,
    next_context: u64,
    /// Length of `waiting` at which it is next pruned of reads nobody awaits.
    prune_at: usize,
    /// How long a confirmed round's lease lasts; None: leases off.
    lease_length: Option<Duration>,
    lease: Option<Lease>,
    /// A leader's round wanted though no read of its own waits: its lease is half spent
    /// or gone while reads arrive (followers' reads alone never start a round here).
    renew_wanted: bool,
}

/// Whether raft would take a ReadIndex now: it drops one silently when there is no
/// leader, or when the leader has not committed an entry in its term yet.
fn raft_serves_reads<S: Storage>(raw: &RawNode<S>) -> bool {
    let raft = &raw.raft;
    raft.leader_id != raft::INVALID_ID
        && (raft.state != StateRole::Leader || raft.commit_to_current_term())
}

/// `waiting` is first pruned at this length.
const READS_PRUNED_FROM: usize = 1024;

impl ReadQueue {
    pub(super) fn new(member: u64, lease_length: Option<Duration>) -> ReadQueue {
        ReadQueue {
            member,
            waiting: Vec::new(),
            forwarded: Vec::new(),
            issued: HashMap::new(),
            confirmed: Vec::new(),
            // Counting from the clock, a restarted member never reuses a context of a
            // round the leader may still hold from before the restart (its answer would
            // confirm a newer round with an older index).
            next_context: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos() as u64),
            prune_at: READS_PRUNED_FROM,
            lease_length,
            lease: None,
            renew_wanted: false,
        }
    }

    /// The commit index, if this member leads under a lease that holds at `now`.
    fn leased_index<S: Storage>(&mut self, raw: &RawNode<S>, now: Instant) -> Option<u64> {
        let lease = self.lease.as_ref()?;
        let raft = &raw.raft;
        let holds = raft.state == StateRole::Leader
            && raft.term == lease.term
            && raft.lead_transferee.is_none()
            && now < lease.until;
        if !holds {
            // Not resumed after a transfer that gave up: only a later round renews it.
            self.lease = None;
            return None;
        }
        Some(raft.raft_log.committed)
    }

    /// Whether the lease has less than half of its length left: time to renew it, so
    /// that reads never wait for a round.
    fn half_spent(&self, now: Instant) -> bool {
        let (Some(lease), Some(length)) = (&self.lease, self.lease_length) else {
            return true;
        };
        lease.until.saturating_duration_since(now) < length / 2
    }

    /// Ends the lease (the membership changed).
    pub(super) fn end_lease(&mut self) {
        self.lease = None;
    }

    /// Steps a follower's ReadIndex request. A leader under a lease answers it at once
    /// with its commit index; otherwise it joins the leader's next round: the round
    /// begins after the request arrived, so its confirmed index serves the request as
    /// well as a round of its own would, at a third of the messages with two
    /// followers.
    pub(super) fn step_read_index<S: Storage>(
        &mut self,
        raw: &mut RawNode<S>,
        message: Message,
        now: Instant,
    ) -> raft::Result<()> {
        debug_assert_eq!(message.get_msg_type(), MessageType::MsgReadIndex);
        // raft-rs takes the context from the first entry without looking.
        if message.entries.len() != 1 {
            tracing::debug!(
                from = message.from,
                "a ReadIndex request without one context"
            );
            return Ok(());
        }
        if self.lease_length.is_some() {
            let leased = self.leased_index(raw, now).is_some();
            self.renew_wanted |= self.half_spent(now);
            if leased {
                raw.raft.read_only.option = ReadOnlyOption::LeaseBased;
                let stepped = raw.step(message);
                raw.raft.read_only.option = ReadOnlyOption::Safe;
                return stepped;
            }
        }
        let raft = &raw.raft;
        // A leader that has not committed in its term yet serves no read; raft-rs drops
        // the request and the follower asks again.
        let held = raft.state == StateRole::Leader
            && raft.commit_to_current_term()
            && self.forwarded.len() < FORWARDED_READS_MAX;
        if !held {
            return raw.step(message);
        }
        self.forwarded.push(message);
        Ok(())
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
    pub(super) fn issue<S: Storage>(&mut self, raw: &mut RawNode<S>, tick: u64, now: Instant) {
        if !self.waiting.is_empty() {
            if let Some(index) = self.leased_index(raw, now) {
                self.confirmed
                    .push((index, std::mem::take(&mut self.waiting)));
                self.renew_wanted |= self.half_spent(now);
            }
        }
        let leader = raw.raft.state == StateRole::Leader;
        if !leader {
            // Held as a leader since deposed: their followers ask the new one.
            self.forwarded.clear();
        }
        if self.issued.len() >= READ_ROUNDS_IN_FLIGHT_MAX {
            return;
        }
        let renew = std::mem::take(&mut self.renew_wanted) && leader;
        self.waiting.retain(|w| !w.is_closed());
        if self.waiting.is_empty() && self.forwarded.is_empty() && !renew {
            return;
        }
        if !raft_serves_reads(raw) {
            return;
        }
        let raft = &raw.raft;
        // A round begun while a transfer is under way starts no lease: the transfer's
        // target may win its election after the transfer here gave up.
        let leader_term = (raft.state == StateRole::Leader && raft.lead_transferee.is_none())
            .then_some(raft.term);
        let context = self.next_context;
        self.next_context = self.next_context.wrapping_add(1);
        let mut ctx = self.member.to_be_bytes().to_vec();
        ctx.extend_from_slice(&context.to_be_bytes());
        raw.read_index(ctx);
        let round = Round {
            tick,
            started: now,
            leader_term,
            waiters: std::mem::take(&mut self.waiting),
            forwarded: std::mem::take(&mut self.forwarded),
        };
        self.issued.insert(context, round);
    }

    /// Whether a read arriving now could be served before the round out (if any) comes
    /// back: with no round out, or under a lease. Otherwise it waits for the next round,
    /// and need not wake the driver.
    pub(super) fn wants_wake(&self) -> bool {
        self.issued.len() < READ_ROUNDS_IN_FLIGHT_MAX || self.lease.is_some()
    }

    /// Whether reads wait that a round could be issued for now.
    pub(super) fn issuable<S: Storage>(&self, raw: &RawNode<S>) -> bool {
        self.issued.len() < READ_ROUNDS_IN_FLIGHT_MAX
            && !(self.waiting.is_empty() && self.forwarded.is_empty())
            && raft_serves_reads(raw)
    }

    /// Takes the rounds the leader confirmed; `leader_term` is this member's term if it
    /// leads now. A leader's own round confirmed in the term it began starts a lease.
    /// Returns the answers to the followers' requests the rounds held.
    pub(super) fn confirm(
        &mut self,
        states: Vec<ReadState>,
        leader_term: Option<u64>,
    ) -> Vec<Message> {
        let mut answers = Vec::new();
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
            let Some(round) = self.issued.remove(&u64::from_be_bytes(context)) else {
                continue;
            };
            if let (Some(length), Some(term)) = (self.lease_length, leader_term) {
                let until = round.started + length;
                let later = self
                    .lease
                    .as_ref()
                    .is_none_or(|lease| lease.term != term || lease.until < until);
                if round.leader_term == Some(term) && later {
                    self.lease = Some(Lease { term, until });
                }
            }
            if !round.waiters.is_empty() {
                self.confirmed.push((state.index, round.waiters));
            }
            // raft-rs confirms a round only in the term it began in (a new term clears
            // its pending rounds), so a leader now answers in that term.
            if let Some(term) = leader_term {
                answers.extend(round.forwarded.into_iter().map(|mut request| {
                    let mut answer = Message::default();
                    answer.set_msg_type(MessageType::MsgReadIndexResp);
                    answer.to = request.from;
                    answer.from = self.member;
                    answer.term = term;
                    answer.index = state.index;
                    answer.set_entries(request.take_entries());
                    answer
                }));
            }
        }
        answers
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
    /// The followers' requests a stale round held go with it: their own rounds, as old,
    /// are retried by the followers.
    pub(super) fn retry_stale(&mut self, tick: u64, timeout_ticks: u64) {
        let stale: Vec<u64> = self
            .issued
            .iter()
            .filter(|(_, round)| tick.saturating_sub(round.tick) > timeout_ticks)
            .map(|(&context, _)| context)
            .collect();
        for context in stale {
            if let Some(round) = self.issued.remove(&context) {
                self.waiting
                    .extend(round.waiters.into_iter().filter(|w| !w.is_closed()));
            }
        }
    }

    pub(super) fn fail_all(&mut self) {
        self.forwarded.clear();
        let issued = self.issued.drain().flat_map(|(_, round)| round.waiters);
        let confirmed = self.confirmed.drain(..).flat_map(|(_, w)| w);
        for waiter in self.waiting.drain(..).chain(issued).chain(confirmed) {
            let _ = waiter.send(Err(Error::Stopped));
        }
    }
}

#[cfg(test)]
mod tests {
    use raft::storage::MemStorage;

    use tokio::sync::oneshot;

    use super::super::mem_node::{mem_node as member, ready};
    use super::*;

    /// Runs the members' turns (rounds issued, Readies, messages delivered), as the
    /// driver does, until all is quiet; the heartbeats sent on the way.
    fn settle(
        members: &mut [RawNode<MemStorage>],
        queues: &mut [ReadQueue],
        now: Instant,
    ) -> usize {
        let mut heartbeats = 0;
        // A turn that confirms a round sends nothing itself, but the next may issue the
        // round that waited for it: quiet means two turns without mail.
        let mut quiet_turns = 0;
        loop {
            let mut mail = Vec::new();
            for (raw, queue) in members.iter_mut().zip(queues.iter_mut()) {
                queue.issue(raw, 0, now);
                let (messages, read_states) = ready(raw);
                mail.extend(messages);
                let leader_term = (raw.raft.state == StateRole::Leader).then_some(raw.raft.term);
                mail.extend(queue.confirm(read_states, leader_term));
            }
            if mail.is_empty() {
                quiet_turns += 1;
                if quiet_turns == 2 {
                    return heartbeats;
                }
                continue;
            }
            quiet_turns = 0;
            for message in mail {
                let to = message.to as usize - 1;
                match message.get_msg_type() {
                    MessageType::MsgReadIndex => queues[to]
                        .step_read_index(&mut members[to], message, now)
                        .unwrap(),
                    MessageType::MsgHeartbeat => {
                        heartbeats += 1;
                        members[to].step(message).unwrap();
                    }
                    _ => members[to].step(message).unwrap(),
                }
            }
        }
    }

    /// Three members, the first leading, each queue with leases of `lease`.
    fn led_by_the_first(
        lease: Option<Duration>,
        now: Instant,
    ) -> (Vec<RawNode<MemStorage>>, Vec<ReadQueue>) {
        let mut members: Vec<_> = (1..=3).map(member).collect();
        let mut queues: Vec<_> = (1..=3).map(|id| ReadQueue::new(id, lease)).collect();
        members[0].campaign().unwrap();
        settle(&mut members, &mut queues, now);
        assert_eq!(members[0].raft.state, StateRole::Leader);
        (members, queues)
    }

    /// Member `at` reads at `now`; the heartbeats it took and whether it was answered.
    fn read(
        members: &mut [RawNode<MemStorage>],
        queues: &mut [ReadQueue],
        at: usize,
        now: Instant,
    ) -> (usize, bool) {
        let (reply, mut answer) = oneshot::channel();
        queues[at].push(reply);
        let heartbeats = settle(members, queues, now);
        for queue in queues.iter_mut() {
            queue.release(u64::MAX);
        }
        (heartbeats, matches!(answer.try_recv(), Ok(Ok(()))))
    }

    const LEASE: Duration = Duration::from_secs(1);

    #[test]
    fn under_a_lease_the_leader_answers_its_reads_and_its_followers_without_a_round() {
        let start = Instant::now();
        let (mut members, mut queues) = led_by_the_first(Some(LEASE), start);
        // The first read is a round: its confirmation starts the lease.
        assert_eq!(read(&mut members, &mut queues, 0, start), (2, true));
        let soon = start + LEASE / 4;
        assert_eq!(read(&mut members, &mut queues, 0, soon), (0, true));
        assert_eq!(read(&mut members, &mut queues, 1, soon), (0, true));
        // Past half of it a read still needs no round, but the leader renews the lease
        // with one.
        let later = start + 3 * LEASE / 4;
        assert_eq!(read(&mut members, &mut queues, 2, later), (2, true));
        assert_eq!(read(&mut members, &mut queues, 0, later), (0, true));
        let past_the_first = start + LEASE + LEASE / 4;
        assert_eq!(
            read(&mut members, &mut queues, 0, past_the_first),
            (0, true)
        );
    }

    #[test]
    fn without_leases_every_read_is_a_round() {
        let now = Instant::now();
        let (mut members, mut queues) = led_by_the_first(None, now);
        for at in [0, 0, 1] {
            assert_eq!(read(&mut members, &mut queues, at, now), (2, true));
        }
    }

    #[test]
    fn a_lease_ends_with_its_time_a_transfer_a_new_term_or_a_membership_change() {
        let start = Instant::now();
        let (mut members, mut queues) = led_by_the_first(Some(LEASE), start);
        assert_eq!(read(&mut members, &mut queues, 0, start), (2, true));
        // Time up: the next read is a round again, and starts a new lease.
        let late = start + LEASE;
        assert_eq!(read(&mut members, &mut queues, 0, late), (2, true));
        assert_eq!(read(&mut members, &mut queues, 0, late), (0, true));

        queues[0].end_lease();
        assert_eq!(read(&mut members, &mut queues, 0, late), (2, true));

        // A transfer that has begun (its target is behind, so it waits): a round, and
        // no lease while it lasts.
        members[0].raft.mut_prs().get_mut(3).unwrap().matched = 0;
        members[0].transfer_leader(3);
        assert_eq!(members[0].raft.lead_transferee, Some(3));
        assert!(queues[0].leased_index(&members[0], late).is_none());
        members[0].raft.lead_transferee = None;
        assert!(
            queues[0].leased_index(&members[0], late).is_none(),
            "a lease resumed after a transfer"
        );
        // A round begun during a transfer starts none, even confirmed after the transfer
        // gave up: the target may have won meanwhile.
        members[0].transfer_leader(3);
        let (reply, mut answer) = oneshot::channel();
        queues[0].push(reply);
        queues[0].issue(&mut members[0], 0, late);
        members[0].raft.lead_transferee = None;
        settle(&mut members, &mut queues, late);
        queues[0].release(u64::MAX);
        assert!(matches!(answer.try_recv(), Ok(Ok(()))));
        assert!(
            queues[0].lease.is_none(),
            "a round begun during a transfer started a lease"
        );

        // A new term with the same leader: its lease from the old term is void.
        assert_eq!(read(&mut members, &mut queues, 0, late), (2, true));
        let term = members[0].raft.term;
        members[0].raft.become_follower(term, 1);
        members[0].campaign().unwrap();
        settle(&mut members, &mut queues, late);
        assert_eq!(members[0].raft.state, StateRole::Leader);
        assert!(members[0].raft.term > term);
        assert!(queues[0].leased_index(&members[0], late).is_none());
    }

    #[test]
    fn a_followers_read_starts_a_lease_for_its_leader_not_for_itself() {
        let now = Instant::now();
        let (mut members, mut queues) = led_by_the_first(Some(LEASE), now);
        // The follower's request joins the leader's own round, which starts the lease.
        assert_eq!(read(&mut members, &mut queues, 1, now), (2, true));
        assert!(queues[1].lease.is_none());
        assert!(queues[0].lease.is_some());
        assert_eq!(read(&mut members, &mut queues, 1, now), (0, true));
        assert_eq!(read(&mut members, &mut queues, 2, now), (0, true));
    }

    #[test]
    fn followers_reads_share_their_leaders_next_round() {
        let now = Instant::now();
        let (mut members, mut queues) = led_by_the_first(None, now);
        let mut answers = Vec::new();
        for (raw, queue) in members.iter_mut().zip(queues.iter_mut()) {
            let (reply, answer) = oneshot::channel();
            queue.push(reply);
            queue.issue(raw, 0, now);
            answers.push(answer);
        }
        // The leader's round is out when the followers' requests arrive: they wait for
        // its next, one round for both (raft-rs alone would start one for each).
        assert_eq!(settle(&mut members, &mut queues, now), 4);
        for (i, (queue, mut answer)) in queues.iter_mut().zip(answers).enumerate() {
            queue.release(u64::MAX);
            assert!(
                matches!(answer.try_recv(), Ok(Ok(()))),
                "member {}'s read was never answered",
                i + 1
            );
        }
    }

    /// The leader's first round, out and unanswered, and a follower's request stepped
    /// into the leader after it began.
    fn a_request_behind_a_round(now: Instant) -> (Vec<RawNode<MemStorage>>, Vec<ReadQueue>) {
        let (mut members, mut queues) = led_by_the_first(None, now);
        let (reply, _answer) = oneshot::channel();
        queues[0].push(reply);
        queues[0].issue(&mut members[0], 0, now);
        let (reply, _answer) = oneshot::channel();
        queues[1].push(reply);
        queues[1].issue(&mut members[1], 0, now);
        let (messages, _) = ready(&mut members[1]);
        for message in messages {
            assert_eq!(message.get_msg_type(), MessageType::MsgReadIndex);
            queues[0]
                .step_read_index(&mut members[0], message, now)
                .unwrap();
        }
        (members, queues)
    }

    #[test]
    fn a_followers_request_never_joins_a_round_that_began_before_it_arrived() {
        let now = Instant::now();
        let (mut members, mut queues) = a_request_behind_a_round(now);
        // That round's index may be older than a write the follower's client saw.
        let out = queues[0].issued.values().next().unwrap();
        assert!(out.forwarded.is_empty());
        assert_eq!(queues[0].forwarded.len(), 1);
        queues[0].issue(&mut members[0], 0, now);
        assert_eq!(queues[0].forwarded.len(), 1, "joined the round out");
    }

    #[test]
    fn a_deposed_leader_answers_none_of_the_requests_it_held() {
        let now = Instant::now();
        let (mut members, mut queues) = a_request_behind_a_round(now);
        let term = members[0].raft.term;
        members[0].raft.become_follower(term + 1, raft::INVALID_ID);
        queues[0].issue(&mut members[0], 0, now);
        assert!(queues[0].forwarded.is_empty());
        // Had the request been kept, the new term's rounds could answer it; a follower
        // whose round went unanswered asks again (`retry_stale`).
        let (_, read_states) = ready(&mut members[0]);
        assert!(queues[0].confirm(read_states, None).is_empty());
    }

    #[test]
    fn rounds_of_different_members_started_together_are_all_confirmed() {
        let now = Instant::now();
        let (mut members, mut queues) = led_by_the_first(None, now);

        // Every member starts a round with the same counter.
        let mut answers = Vec::new();
        for (raw, queue) in members.iter_mut().zip(queues.iter_mut()) {
            queue.next_context = 7;
            let (reply, answer) = oneshot::channel();
            queue.push(reply);
            queue.issue(raw, 0, now);
            answers.push(answer);
        }
        settle(&mut members, &mut queues, now);
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
        let mut queue = ReadQueue::new(1, None);
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
        queue.issue(&mut raft, 0, Instant::now());
        assert_eq!(queue.waiting.len(), kept.len());
    }
}
