//! A deterministic, seeded simulation of the raft core: several raft-rs nodes driven by
//! the node's own Ready handler (`ready::handle_ready`), over an in-memory network that
//! drops, delays, duplicates and reorders messages and can be partitioned, on disks
//! that lose every write not yet made durable by a sync when a node crashes.
//!
//! Everything comes from one seeded random number generator, so a failure replays
//! exactly from its seed: `BALLAST_SIM_SEED=<seed> cargo test -p ballast-server sim`.
//! Invariants are checked at every step: at most one leader per term, committed
//! entries never diverge between nodes, and equal applied indexes mean equal state.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::rc::Rc;

use raft::eraftpb::{ConfState, Entry, EntryType, HardState, Message, Snapshot};
use raft::{GetEntriesContext, RaftState, RawNode, ReadState, StateRole, Storage, StorageError};

use super::batch::ProposalBatch;
use super::ready::{handle_ready, ReadyIo};
use crate::error::{Error, Result};

/// Seeds run by default; `BALLAST_SIM_SEEDS` raises it.
const SEEDS_DEFAULT: u64 = 150;
/// Events per seed.
const STEPS: usize = 2500;
/// Virtual time units between ticks of every node.
const TICK_EVERY: u64 = 5;
/// Election timeout in ticks (heartbeat is one tick).
const ELECTION_TICKS: usize = 10;

/// True `percent` times in a hundred.
fn chance(rng: &mut fastrand::Rng, percent: u64) -> bool {
    rng.u64(..100) < percent
}

/// What a node has written: its raft log and state, and its state machine.
#[derive(Clone, Default)]
struct Disk {
    entries: Vec<Entry>,
    hard_state: HardState,
    conf_state: ConfState,
    state: BTreeMap<u64, u64>,
    applied: u64,
}

/// The disk as written so far, and as it would be after a crash.
#[derive(Default)]
struct SimDisk {
    current: Disk,
    durable: Disk,
}

impl SimDisk {
    /// A write; with `sync` it and every earlier write become durable (one WAL).
    fn write(&mut self, sync: bool, change: impl FnOnce(&mut Disk)) {
        change(&mut self.current);
        if sync {
            self.durable = self.current.clone();
        }
    }

    /// Power loss: what was not synced is gone.
    fn crash(&mut self) {
        self.current = self.durable.clone();
    }
}

/// raft-rs storage over a simulated disk. Never compacted, so the log starts at 1.
#[derive(Clone)]
struct SimStorage(Rc<RefCell<SimDisk>>);

impl Storage for SimStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let disk = &self.0.borrow().current;
        Ok(RaftState::new(
            disk.hard_state.clone(),
            disk.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let disk = &self.0.borrow().current;
        assert!(
            high as usize <= disk.entries.len() + 1,
            "entries past the end"
        );
        let mut out = disk.entries[(low - 1) as usize..(high - 1) as usize].to_vec();
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        let disk = &self.0.borrow().current;
        if index == 0 {
            return Ok(0);
        }
        disk.entries
            .get((index - 1) as usize)
            .map(|e| e.term)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.0.borrow().current.entries.len() as u64)
    }

    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        ))
    }
}

/// The invariants, checked as events happen.
#[derive(Default)]
struct Checker {
    leaders: HashMap<u64, u64>,
    committed: HashMap<u64, (u64, Vec<u8>)>,
    states: HashMap<u64, u64>,
    violation: Option<String>,
    applied_total: u64,
}

impl Checker {
    fn fail(&mut self, what: String) {
        self.violation.get_or_insert(what);
    }

    fn leader(&mut self, term: u64, id: u64) {
        if let Some(&other) = self.leaders.get(&term) {
            if other != id {
                self.fail(format!("two leaders in term {term}: {other} and {id}"));
            }
        }
        self.leaders.insert(term, id);
    }

    fn applied(&mut self, id: u64, entry: &Entry, state: &BTreeMap<u64, u64>) {
        self.applied_total += 1;
        let mine = (entry.term, entry.data.to_vec());
        match self.committed.get(&entry.index) {
            Some(theirs) if *theirs != mine => self.fail(format!(
                "node {id} applied ({}, {:?}) at index {}, another node ({}, {:?})",
                mine.0, mine.1, entry.index, theirs.0, theirs.1
            )),
            _ => {
                self.committed.insert(entry.index, mine);
            }
        }
        let hash = state.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, (k, v)| {
            (h ^ k).wrapping_mul(0x100_0000_01b3) ^ v
        });
        match self.states.get(&entry.index) {
            Some(&theirs) if theirs != hash => self.fail(format!(
                "node {id} at applied index {} has a different state",
                entry.index
            )),
            _ => {
                self.states.insert(entry.index, hash);
            }
        }
    }
}

/// The simulation's side of a Ready.
struct SimIo<'a> {
    id: u64,
    disk: Rc<RefCell<SimDisk>>,
    outbox: &'a mut Vec<Message>,
    checker: &'a mut Checker,
    /// A deliberate bug for testing the simulation itself: never sync.
    ignore_sync: bool,
}

impl ReadyIo<SimStorage> for SimIo<'_> {
    fn on_soft_state(&mut self, _leader: u64, role: StateRole, term: u64) {
        if role == StateRole::Leader {
            self.checker.leader(term, self.id);
        }
    }

    fn send(&mut self, messages: Vec<Message>) {
        self.outbox.extend(messages);
    }

    fn install_snapshot(&mut self, _snapshot: &Snapshot) -> Result<()> {
        Err(Error::Fatal(
            "the simulation never compacts its logs".into(),
        ))
    }

    fn persist(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
        sync: bool,
    ) -> Result<()> {
        let sync = sync && !self.ignore_sync;
        self.disk.borrow_mut().write(sync, |disk| {
            if let Some(first) = entries.first() {
                disk.entries.truncate((first.index - 1) as usize);
                disk.entries.extend_from_slice(entries);
            }
            if let Some(hs) = hard_state {
                disk.hard_state = hs.clone();
            }
        });
        Ok(())
    }

    fn persist_commit(&mut self, commit: u64) -> Result<()> {
        self.disk
            .borrow_mut()
            .write(false, |disk| disk.hard_state.commit = commit);
        Ok(())
    }

    fn apply(&mut self, _raw: &mut RawNode<SimStorage>, entries: Vec<Entry>) -> Result<()> {
        for entry in entries {
            let mut disk = self.disk.borrow_mut();
            if entry.index <= disk.current.applied {
                continue;
            }
            disk.write(false, |d| {
                if entry.get_entry_type() == EntryType::EntryNormal && entry.data.len() == 16 {
                    let key = u64::from_be_bytes(entry.data[..8].try_into().expect("8"));
                    let value = u64::from_be_bytes(entry.data[8..].try_into().expect("8"));
                    d.state.insert(key, value);
                }
                d.applied = entry.index;
            });
            let state = disk.current.state.clone();
            drop(disk);
            self.checker.applied(self.id, &entry, &state);
        }
        Ok(())
    }

    fn read_states(&mut self, _states: Vec<ReadState>, _leader_term: Option<u64>) {}
}

fn new_raw(id: u64, storage: SimStorage) -> RawNode<SimStorage> {
    // raft-rs randomizes election timeouts with a thread-local RNG; pin each node to
    // its own fixed timeout instead, so runs replay exactly from the seed.
    let timeout = ELECTION_TICKS + 3 * id as usize;
    let config = raft::Config {
        id,
        election_tick: ELECTION_TICKS,
        min_election_tick: timeout,
        max_election_tick: timeout + 1,
        heartbeat_tick: 1,
        applied: storage.0.borrow().current.applied,
        pre_vote: true,
        check_quorum: true,
        max_size_per_msg: 1 << 16,
        max_inflight_msgs: 32,
        ..Default::default()
    };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    RawNode::new(&config, storage, &logger).expect("a valid raft config")
}

/// What a seed's run went through, to show the simulation exercised something.
#[derive(Debug, Default, Clone, Copy)]
struct Summary {
    /// Entries applied, counted on every node.
    applied: u64,
    /// Terms that had a leader.
    leaders: u64,
}

/// Outcome of one seed: what it did, or the violation it found.
fn simulate(seed: u64, ignore_sync: bool) -> std::result::Result<Summary, String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let size = if chance(&mut rng, 50) { 3 } else { 5 };
    let ids: Vec<u64> = (1..=size).collect();
    let disks: Vec<Rc<RefCell<SimDisk>>> = ids
        .iter()
        .map(|_| {
            let mut disk = SimDisk::default();
            disk.write(true, |d| d.conf_state.voters = ids.clone());
            Rc::new(RefCell::new(disk))
        })
        .collect();
    let mut nodes: Vec<Option<RawNode<SimStorage>>> = ids
        .iter()
        .zip(&disks)
        .map(|(&id, disk)| Some(new_raw(id, SimStorage(disk.clone()))))
        .collect();
    let mut network: BinaryHeap<Reverse<(u64, u64, usize)>> = BinaryHeap::new();
    let mut in_flight: HashMap<usize, Message> = HashMap::new();
    let mut blocked: HashSet<(u64, u64)> = HashSet::new();
    let mut checker = Checker::default();
    let (mut now, mut sequence, mut next_value) = (0u64, 0u64, 0u64);

    for _ in 0..STEPS {
        match rng.u64(..100) {
            0..=59 => {
                now += 1;
                while let Some(Reverse((at, _, key))) = network.peek().copied() {
                    if at > now {
                        break;
                    }
                    network.pop();
                    let message = in_flight.remove(&key).expect("queued message");
                    let to = message.to as usize - 1;
                    if let Some(raw) = nodes[to].as_mut() {
                        let _ = raw.step(message);
                    }
                }
                if now.is_multiple_of(TICK_EVERY) {
                    for raw in nodes.iter_mut().flatten() {
                        raw.tick();
                    }
                }
            }
            60..=89 => {
                let target = rng.u64(..size) as usize;
                if let Some(raw) = nodes[target].as_mut() {
                    // Half alone (raft-rs's `propose`), half as the driver steps a
                    // turn's proposals: several entries in one MsgProp.
                    let batched = chance(&mut rng, 50);
                    let mut batch = ProposalBatch::default();
                    for _ in 0..if batched { 1 + rng.u64(..4) } else { 1 } {
                        next_value += 1;
                        let mut data = (rng.u64(..8)).to_be_bytes().to_vec();
                        data.extend_from_slice(&next_value.to_be_bytes());
                        if batched {
                            batch.push(next_value, data);
                        } else {
                            let _ = raw.propose(Vec::new(), data);
                        }
                    }
                    if !batch.is_empty() {
                        let _ = raw.step(batch.take(ids[target]).1);
                    }
                }
            }
            90 => {
                let target = rng.u64(..size) as usize;
                if nodes[target].take().is_some() {
                    disks[target].borrow_mut().crash();
                }
            }
            91..=94 => {
                let target = rng.u64(..size) as usize;
                if nodes[target].is_none() {
                    nodes[target] = Some(new_raw(ids[target], SimStorage(disks[target].clone())));
                }
            }
            95..=96 => {
                let (a, b) = (1 + rng.u64(..size), 1 + rng.u64(..size));
                if a != b {
                    blocked.insert((a, b));
                    blocked.insert((b, a));
                }
            }
            _ => blocked.clear(),
        }

        let mut outbox = Vec::new();
        for (i, slot) in nodes.iter_mut().enumerate() {
            let Some(raw) = slot.as_mut() else { continue };
            let mut io = SimIo {
                id: ids[i],
                disk: disks[i].clone(),
                outbox: &mut outbox,
                checker: &mut checker,
                ignore_sync,
            };
            while handle_ready(raw, &mut io).map_err(|e| e.to_string())? {}
        }
        for message in outbox {
            if blocked.contains(&(message.from, message.to)) || chance(&mut rng, 5) {
                continue; // partitioned or lost
            }
            let copies = if chance(&mut rng, 2) { 2 } else { 1 };
            for _ in 0..copies {
                sequence += 1;
                let at = now + 1 + rng.u64(..20);
                in_flight.insert(sequence as usize, message.clone());
                network.push(Reverse((at, sequence, sequence as usize)));
            }
        }
        if let Some(violation) = checker.violation.take() {
            return Err(violation);
        }
    }
    Ok(Summary {
        applied: checker.applied_total,
        leaders: checker.leaders.len() as u64,
    })
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("BALLAST_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![seed];
    }
    let count = std::env::var("BALLAST_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEEDS_DEFAULT);
    (1..=count).collect()
}

#[test]
fn raft_core_keeps_its_invariants_under_faults() {
    let seeds = seeds();
    let mut total = Summary::default();
    for &seed in &seeds {
        let run = std::panic::catch_unwind(|| simulate(seed, false));
        match run {
            Ok(Ok(summary)) => {
                total.applied += summary.applied;
                total.leaders += summary.leaders;
            }
            Ok(Err(violation)) => {
                panic!("seed {seed}: {violation} (replay: BALLAST_SIM_SEED={seed})")
            }
            Err(_) => panic!("seed {seed}: raft panicked (replay: BALLAST_SIM_SEED={seed})"),
        }
    }
    let runs = seeds.len() as u64;
    assert!(
        total.applied >= 100 * runs,
        "the simulated clusters made progress: {total:?}"
    );
    assert!(
        total.leaders >= 3 * runs,
        "leadership changed hands under the faults: {total:?}"
    );
}

#[test]
fn runs_replay_from_their_seed() {
    let first = simulate(7, false).expect("seed 7 passes");
    let again = simulate(7, false).expect("seed 7 passes");
    assert_eq!(
        (first.applied, first.leaders),
        (again.applied, again.leaders)
    );
}

#[test]
fn the_simulation_catches_a_missing_fsync() {
    // With syncs skipped, a crash can forget a vote or an acknowledged entry: two
    // leaders in one term, diverging logs, or raft-rs itself finding a follower's log
    // shorter than what it acknowledged. Some seed must show it.
    let caught =
        (1..=500).find_map(
            |seed| match std::panic::catch_unwind(|| simulate(seed, true)) {
                Ok(Ok(_)) => None,
                Ok(Err(violation)) => Some(violation),
                Err(_) => Some("raft-rs found a lost acknowledged entry".to_string()),
            },
        );
    assert!(caught.is_some(), "no seed exposed the missing fsync");
}
