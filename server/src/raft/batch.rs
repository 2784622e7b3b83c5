//! Proposals that arrive in one driver turn, stepped into raft as one message.
//!
//! raft-rs turns each `propose` into its own MsgProp: a follower forwards each to the
//! leader on its own, and a leader sends every follower one MsgAppend per proposal, each
//! answered on its own. Stepping a turn's proposals as one MsgProp appends them
//! together, so a follower forwards one message and the leader sends each follower one
//! append for all of them (split by raft at `max_size_per_msg`).

use raft::eraftpb::{Entry, Message, MessageType};

use crate::limits::PROPOSAL_BATCH_BYTES_MAX;

/// Proposals waiting to be stepped into raft, with the request ids that wait on them.
#[derive(Debug, Default)]
pub(super) struct ProposalBatch {
    ids: Vec<u64>,
    entries: Vec<Entry>,
    bytes: usize,
}

impl ProposalBatch {
    /// Adds a proposal; true when the batch is full and should be stepped now.
    pub(super) fn push(&mut self, id: u64, data: Vec<u8>) -> bool {
        self.bytes += data.len();
        self.ids.push(id);
        self.entries.push(Entry {
            data: data.into(),
            ..Default::default()
        });
        self.bytes >= PROPOSAL_BATCH_BYTES_MAX
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Empties the batch: the request ids, in order, and the MsgProp that carries
    /// their entries (from `from`, this member, as raft-rs's own `propose` does).
    pub(super) fn take(&mut self, from: u64) -> (Vec<u64>, Message) {
        let mut message = Message::default();
        message.set_msg_type(MessageType::MsgPropose);
        message.from = from;
        message.set_entries(std::mem::take(&mut self.entries).into());
        self.bytes = 0;
        (std::mem::take(&mut self.ids), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_carries_its_proposals_in_order_and_empties() {
        let mut batch = ProposalBatch::default();
        assert!(batch.is_empty());
        assert!(!batch.push(7, b"a".to_vec()));
        assert!(!batch.push(9, b"b".to_vec()));
        let (ids, message) = batch.take(3);
        assert_eq!(ids, vec![7, 9]);
        assert_eq!(message.get_msg_type(), MessageType::MsgPropose);
        assert_eq!(message.from, 3);
        let data: Vec<&[u8]> = message.entries.iter().map(|e| &e.data[..]).collect();
        assert_eq!(data, vec![&b"a"[..], &b"b"[..]]);
        assert!(batch.is_empty());
        assert!(!batch.push(1, vec![0; PROPOSAL_BATCH_BYTES_MAX - 1]));
    }

    #[test]
    fn a_batch_is_full_at_its_byte_limit() {
        let mut batch = ProposalBatch::default();
        assert!(!batch.push(1, vec![0; PROPOSAL_BATCH_BYTES_MAX - 1]));
        assert!(batch.push(2, vec![0; 1]));
        let mut alone = ProposalBatch::default();
        assert!(alone.push(1, vec![0; PROPOSAL_BATCH_BYTES_MAX + 5]));
    }
}
