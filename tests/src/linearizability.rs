//! A linearizability checker for etcd-style KV histories (Wing & Gong's search with
//! Lowe's memoisation, as Porcupine does it).
//!
//! A history is what clients saw: each operation's call and return times, its input and
//! its output. An operation whose outcome is unknown (an error or timeout after the
//! request may have reached the cluster) has no return time: it may take effect at any
//! moment after its call, or never. Failed reads are left out: they change nothing.
//!
//! The model is etcd's: one global revision that every effective write bumps, and per
//! key the value, create and mod revision and version. Outputs carry revisions, so the
//! check covers the total order of writes too, not just each key on its own (which is
//! also why the history cannot be split per key).

use std::collections::{BTreeMap, HashSet};

/// What a client asked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Input {
    Put {
        key: String,
        value: String,
    },
    Get {
        key: String,
    },
    Delete {
        key: String,
    },
    /// Txn: if mod_revision(key) == expected then put(key, value) else get(key).
    CompareAndSet {
        key: String,
        expected: i64,
        value: String,
    },
}

/// What the cluster answered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Output {
    /// The header revision of a write.
    Written { revision: i64 },
    /// A read: header revision and the key's (value, mod_revision), if present.
    Read {
        revision: i64,
        value: Option<(String, i64)>,
    },
    /// A delete: header revision and how many keys went.
    Deleted { revision: i64, deleted: i64 },
    /// A compare-and-set: header revision and whether the compare held.
    Swapped { revision: i64, succeeded: bool },
    /// No answer, or an error after the request may have been applied.
    Unknown,
}

/// One operation of a history. Times are in any monotonic unit (e.g. microseconds
/// since the start of the test).
#[derive(Debug, Clone)]
pub struct Operation {
    pub client: usize,
    pub call: u64,
    /// None for an unknown outcome.
    pub ret: Option<u64>,
    pub input: Input,
    pub output: Output,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
struct Record {
    value: String,
    create_revision: i64,
    mod_revision: i64,
    version: i64,
}

/// The sequential specification: an etcd store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct State {
    revision: i64,
    keys: BTreeMap<String, Record>,
}

impl State {
    fn new() -> State {
        State {
            revision: 1,
            keys: BTreeMap::new(),
        }
    }

    fn put(&mut self, key: &str, value: &str) {
        self.revision += 1;
        let revision = self.revision;
        let record = self.keys.entry(key.to_string()).or_insert_with(|| Record {
            create_revision: revision,
            ..Record::default()
        });
        record.value = value.to_string();
        record.mod_revision = revision;
        record.version += 1;
    }

    /// Applies `input` if `output` is what it would answer; None if it would not.
    fn step(&self, input: &Input, output: &Output) -> Option<State> {
        let mut next = self.clone();
        let answer = match input {
            Input::Put { key, value } => {
                next.put(key, value);
                Output::Written {
                    revision: next.revision,
                }
            }
            Input::Get { key } => Output::Read {
                revision: self.revision,
                value: self
                    .keys
                    .get(key)
                    .map(|r| (r.value.clone(), r.mod_revision)),
            },
            Input::Delete { key } => {
                let deleted = i64::from(next.keys.remove(key).is_some());
                next.revision += deleted;
                Output::Deleted {
                    revision: next.revision,
                    deleted,
                }
            }
            Input::CompareAndSet {
                key,
                expected,
                value,
            } => {
                let current = self.keys.get(key).map_or(0, |r| r.mod_revision);
                let succeeded = current == *expected;
                if succeeded {
                    next.put(key, value);
                }
                Output::Swapped {
                    revision: next.revision,
                    succeeded,
                }
            }
        };
        match output {
            Output::Unknown => Some(next),
            known if *known == answer => Some(next),
            _ => None,
        }
    }
}

/// Verdict of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No order of the operations explains the outputs. Holds the largest set of
    /// operations (by index) the search managed to linearize, to help debugging.
    NotLinearizable {
        longest_prefix: Vec<usize>,
    },
}

/// Doubly linked list of call and return events, ordered by time.
struct Events {
    /// (operation, is_call)
    event: Vec<(usize, bool)>,
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Event index of each operation's return.
    return_of: Vec<usize>,
}

const HEAD: usize = 0;

impl Events {
    fn new(history: &[Operation]) -> Events {
        let mut timed: Vec<(u64, u8, usize, bool)> = Vec::new();
        for (i, op) in history.iter().enumerate() {
            // At equal times returns come first: an operation that returned at t
            // precedes one called at t.
            timed.push((op.call, 1, i, true));
            timed.push((op.ret.unwrap_or(u64::MAX), 0, i, false));
        }
        timed.sort();
        let n = timed.len();
        // Index 0 is the head sentinel; events are 1..=n.
        let mut event = vec![(usize::MAX, false)];
        let mut return_of = vec![0; history.len()];
        for (k, (_, _, op, is_call)) in timed.into_iter().enumerate() {
            event.push((op, is_call));
            if !is_call {
                return_of[op] = k + 1;
            }
        }
        let next = (0..=n)
            .map(|i| if i == n { usize::MAX } else { i + 1 })
            .collect();
        let prev = (0..=n).map(|i| i.wrapping_sub(1)).collect();
        Events {
            event,
            next,
            prev,
            return_of,
        }
    }

    fn unlink(&mut self, i: usize) {
        let (p, n) = (self.prev[i], self.next[i]);
        self.next[p] = n;
        if n != usize::MAX {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, i: usize) {
        let (p, n) = (self.prev[i], self.next[i]);
        self.next[p] = i;
        if n != usize::MAX {
            self.prev[n] = i;
        }
    }
}

/// Checks a history; fails fast on the first place no order fits.
pub fn check(history: &[Operation]) -> Verdict {
    check_counting(history).0
}

/// [`check`], also returning how many (operations placed, state) configurations the
/// search visited: the measure of its cost.
pub fn check_counting(history: &[Operation]) -> (Verdict, usize) {
    let mut cache = HashSet::new();
    let verdict = search(history, &mut cache);
    (verdict, cache.len())
}

/// Wing & Gong's search; `cache` holds the configurations already explored.
/// The store revision just before an operation with this (known) output took effect:
/// the model's revision only grows, so until the operation is placed the revision may
/// not pass this.
fn revision_before(output: &Output) -> Option<i64> {
    match *output {
        Output::Written { revision } => Some(revision - 1),
        Output::Read { revision, .. } => Some(revision),
        Output::Deleted { revision, deleted } => Some(revision - deleted),
        Output::Swapped {
            revision,
            succeeded,
        } => Some(revision - i64::from(succeeded)),
        Output::Unknown => None,
    }
}

/// The revision bounds of the known operations not placed yet (a multiset).
#[derive(Default)]
struct Bounds(BTreeMap<i64, usize>);

impl Bounds {
    fn add(&mut self, output: &Output) {
        if let Some(bound) = revision_before(output) {
            *self.0.entry(bound).or_default() += 1;
        }
    }

    fn remove(&mut self, output: &Output) {
        if let Some(bound) = revision_before(output) {
            let count = self.0.get_mut(&bound).expect("bound was added");
            *count -= 1;
            if *count == 0 {
                self.0.remove(&bound);
            }
        }
    }

    /// Whether a state at `revision` still leaves room for every unplaced operation.
    fn allow(&self, revision: i64) -> bool {
        self.0
            .keys()
            .next()
            .is_none_or(|&lowest| revision <= lowest)
    }
}

fn search(history: &[Operation], cache: &mut HashSet<(Vec<u64>, State)>) -> Verdict {
    let mut bounds = Bounds::default();
    for op in history {
        bounds.add(&op.output);
    }
    let mut events = Events::new(history);
    let words = history.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state = State::new();
    let mut best: Vec<usize> = Vec::new();
    let mut entry = events.next[HEAD];
    while events.next[HEAD] != usize::MAX {
        if entry == usize::MAX {
            // The list always ends in return events, which end or rewind the walk
            // before it can run off; guard anyway.
            return Verdict::NotLinearizable {
                longest_prefix: best,
            };
        }
        let (op, is_call) = events.event[entry];
        let unknown = history[op].output == Output::Unknown;
        if !is_call && unknown {
            // Unknown outcomes return "at infinity", after every known return: all
            // known operations are placed, and the unknown ones left may never have
            // happened.
            return Verdict::Linearizable;
        }
        if is_call {
            let candidate = &history[op];
            let stepped = state
                .step(&candidate.input, &candidate.output)
                // An unknown operation that would change nothing here is the same as
                // one that never happened, which the end allows: trying it as a no-op
                // at every point would only multiply equivalent searches.
                .filter(|next_state| !(unknown && *next_state == state));
            if let Some(next_state) = stepped {
                let mut marked = linearized.clone();
                marked[op / 64] |= 1 << (op % 64);
                bounds.remove(&candidate.output);
                // A state past an unplaced operation's revision can never fit it: cut
                // here instead of after trying every later combination (unknown writes
                // stay open to the end and would otherwise multiply).
                if bounds.allow(next_state.revision)
                    && cache.insert((marked.clone(), next_state.clone()))
                {
                    stack.push((entry, state));
                    state = next_state;
                    linearized = marked;
                    events.unlink(entry);
                    events.unlink(events.return_of[op]);
                    entry = events.next[HEAD];
                    if stack.len() > best.len() {
                        best = stack.iter().map(|(e, _)| events.event[*e].0).collect();
                    }
                    continue;
                }
                bounds.add(&candidate.output);
            }
            entry = events.next[entry];
        } else {
            // An operation returned before every way of placing it failed: backtrack.
            let Some((call_entry, previous)) = stack.pop() else {
                return Verdict::NotLinearizable {
                    longest_prefix: best,
                };
            };
            let op = events.event[call_entry].0;
            bounds.add(&history[op].output);
            state = previous;
            linearized[op / 64] &= !(1 << (op % 64));
            events.relink(events.return_of[op]);
            events.relink(call_entry);
            entry = events.next[call_entry];
        }
    }
    Verdict::Linearizable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: usize, call: u64, ret: Option<u64>, input: Input, output: Output) -> Operation {
        Operation {
            client,
            call,
            ret,
            input,
            output,
        }
    }

    fn put(key: &str, value: &str) -> Input {
        Input::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    fn get(key: &str) -> Input {
        Input::Get { key: key.into() }
    }

    fn read(revision: i64, value: Option<(&str, i64)>) -> Output {
        Output::Read {
            revision,
            value: value.map(|(v, r)| (v.to_string(), r)),
        }
    }

    #[test]
    fn concurrent_writes_may_land_in_either_order() {
        let history = vec![
            op(
                0,
                0,
                Some(10),
                put("k", "a"),
                Output::Written { revision: 3 },
            ),
            op(
                1,
                1,
                Some(11),
                put("k", "b"),
                Output::Written { revision: 2 },
            ),
            op(2, 12, Some(13), get("k"), read(3, Some(("a", 3)))),
        ];
        assert_eq!(check(&history), Verdict::Linearizable);
    }

    #[test]
    fn a_stale_read_is_caught() {
        let history = vec![
            op(
                0,
                0,
                Some(1),
                put("k", "a"),
                Output::Written { revision: 2 },
            ),
            op(
                0,
                2,
                Some(3),
                put("k", "b"),
                Output::Written { revision: 3 },
            ),
            // Called after the second write returned, yet saw the first.
            op(1, 4, Some(5), get("k"), read(2, Some(("a", 2)))),
        ];
        assert!(matches!(check(&history), Verdict::NotLinearizable { .. }));
    }

    #[test]
    fn a_lost_acknowledged_write_is_caught() {
        let history = vec![
            op(
                0,
                0,
                Some(1),
                put("k", "a"),
                Output::Written { revision: 2 },
            ),
            op(1, 2, Some(3), get("k"), read(1, None)),
        ];
        assert!(matches!(check(&history), Verdict::NotLinearizable { .. }));
    }

    /// Unknown operations stay open to the end; those that could be no-ops (a failed
    /// compare-and-set, a delete of nothing) must not multiply the search: a partition's
    /// minority produces dozens of them.
    #[test]
    fn many_unknown_no_ops_keep_the_search_small() {
        let mut history = Vec::new();
        // 8 rounds: without the pruning, some 2^16 configurations.
        for i in 0..8u64 {
            let key = format!("k{}", i % 4);
            history.push(op(
                1,
                10 * i,
                None,
                Input::CompareAndSet {
                    key: key.clone(),
                    expected: 999,
                    value: "x".into(),
                },
                Output::Unknown,
            ));
            history.push(op(
                2,
                10 * i + 1,
                None,
                Input::Delete {
                    key: format!("gone{i}"),
                },
                Output::Unknown,
            ));
            history.push(op(
                0,
                10 * i + 2,
                Some(10 * i + 3),
                put(&key, &format!("v{i}")),
                Output::Written {
                    revision: i as i64 + 2,
                },
            ));
        }
        let (verdict, visited) = check_counting(&history);
        assert_eq!(verdict, Verdict::Linearizable);
        assert!(visited < 1_000, "visited {visited} configurations");
        // And a violation is still found, after an exhaustive search of a small space.
        let mut corrupted = history.clone();
        corrupted.push(op(3, 1_000, Some(1_001), get("k0"), read(9, None)));
        let (verdict, visited) = check_counting(&corrupted);
        assert!(matches!(verdict, Verdict::NotLinearizable { .. }));
        assert!(visited < 1_000, "visited {visited} configurations");
    }

    /// Writes whose outcome is unknown and that never happened (a minority's timeouts)
    /// stay open while the majority goes on: they must not multiply the search either.
    #[test]
    fn many_unknown_writes_beside_known_ones_keep_the_search_small() {
        let mut history = Vec::new();
        for i in 0..14u64 {
            history.push(op(
                1,
                i,
                None,
                put("x", &format!("lost{i}")),
                Output::Unknown,
            ));
        }
        for i in 0..20u64 {
            history.push(op(
                0,
                100 + 2 * i,
                Some(101 + 2 * i),
                put("y", &format!("v{i}")),
                Output::Written {
                    revision: i as i64 + 2,
                },
            ));
        }
        history.push(op(0, 200, Some(201), get("x"), read(21, None)));
        // 14 writes that never happened: without the revision bound, 2^14 subsets.
        let (verdict, visited) = check_counting(&history);
        assert_eq!(verdict, Verdict::Linearizable);
        assert!(visited < 5_000, "visited {visited} configurations");
        let mut corrupted = history.clone();
        corrupted.push(op(0, 300, Some(301), get("y"), read(21, Some(("v3", 5)))));
        let (verdict, visited) = check_counting(&corrupted);
        assert!(matches!(verdict, Verdict::NotLinearizable { .. }));
        assert!(visited < 5_000, "visited {visited} configurations");
    }

    #[test]
    fn unknown_outcomes_may_or_may_not_have_happened() {
        let applied = vec![
            op(0, 0, None, put("k", "a"), Output::Unknown),
            op(1, 5, Some(6), get("k"), read(2, Some(("a", 2)))),
        ];
        assert_eq!(check(&applied), Verdict::Linearizable);
        let lost = vec![
            op(0, 0, None, put("k", "a"), Output::Unknown),
            op(1, 5, Some(6), get("k"), read(1, None)),
        ];
        assert_eq!(check(&lost), Verdict::Linearizable);
        // But not both: once seen, it cannot be unseen.
        let flicker = vec![
            op(0, 0, None, put("k", "a"), Output::Unknown),
            op(1, 5, Some(6), get("k"), read(2, Some(("a", 2)))),
            op(1, 7, Some(8), get("k"), read(1, None)),
        ];
        assert!(matches!(check(&flicker), Verdict::NotLinearizable { .. }));
    }

    #[test]
    fn compare_and_set_and_delete_follow_etcd() {
        let history = vec![
            op(
                0,
                0,
                Some(1),
                put("k", "a"),
                Output::Written { revision: 2 },
            ),
            op(
                1,
                2,
                Some(3),
                Input::CompareAndSet {
                    key: "k".into(),
                    expected: 2,
                    value: "b".into(),
                },
                Output::Swapped {
                    revision: 3,
                    succeeded: true,
                },
            ),
            op(
                2,
                4,
                Some(5),
                Input::CompareAndSet {
                    key: "k".into(),
                    expected: 2,
                    value: "c".into(),
                },
                Output::Swapped {
                    revision: 3,
                    succeeded: false,
                },
            ),
            op(
                0,
                6,
                Some(7),
                Input::Delete { key: "k".into() },
                Output::Deleted {
                    revision: 4,
                    deleted: 1,
                },
            ),
            op(
                0,
                8,
                Some(9),
                Input::Delete { key: "k".into() },
                Output::Deleted {
                    revision: 4,
                    deleted: 0,
                },
            ),
        ];
        assert_eq!(check(&history), Verdict::Linearizable);
        // A compare-and-set that claims to win twice on the same revision is caught.
        let mut double = history.clone();
        double[2].output = Output::Swapped {
            revision: 4,
            succeeded: true,
        };
        assert!(matches!(check(&double), Verdict::NotLinearizable { .. }));
    }
}
