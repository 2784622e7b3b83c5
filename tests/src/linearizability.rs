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
    let mut events = Events::new(history);
    let words = history.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, State)> = HashSet::new();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state = State::new();
    let mut best: Vec<usize> = Vec::new();
    let mut entry = events.next[HEAD];
    while events.next[HEAD] != usize::MAX {
        if entry == usize::MAX {
            // Only unknown-outcome calls remain that could not be placed: impossible,
            // as they accept any state, but guard the walk anyway.
            return Verdict::NotLinearizable {
                longest_prefix: best,
            };
        }
        let (op, is_call) = events.event[entry];
        if is_call {
            let candidate = &history[op];
            if let Some(next_state) = state.step(&candidate.input, &candidate.output) {
                let mut marked = linearized.clone();
                marked[op / 64] |= 1 << (op % 64);
                if cache.insert((marked.clone(), next_state.clone())) {
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
