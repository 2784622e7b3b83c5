//! What the peer port lets into raft. raft-rs trusts its input: a message it could never
//! have sent (an empty proposal, a commit index past the log, an append whose entries
//! skip or rewrite committed indexes, a local-only message type) stops the member with a
//! panic. Every message from the wire passes these checks first; a refused one is
//! dropped and logged (rate-limited), and the member goes on serving.

use ballast_proto::ballast::internal::{MemberChange, RaftRequest};
use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{ConfChangeV2, Entry, EntryType, Message as RaftMessage, MessageType};

use crate::log_limit::{LogLimit, LOG_INTERVAL};

/// Refused messages: logged at most once per interval (anyone who reaches the peer port
/// can cause them).
static REFUSED_MESSAGE_LOG: LogLimit = LogLimit::new(LOG_INTERVAL);

/// Logs a refused raft message (rate-limited).
pub(crate) fn log_refused(message: &RaftMessage, why: Refusal) {
    if let Some(held_back) = REFUSED_MESSAGE_LOG.admit() {
        tracing::warn!(
            from = format!("{:x}", message.from),
            kind = ?message.get_msg_type(),
            held_back,
            "refused a raft message: {why}"
        );
    }
}

/// Why a peer message was refused.
pub(crate) type Refusal = &'static str;

/// Checks a message from peer `sender` to this member (`me`) that needs no raft state.
pub(crate) fn check(message: &RaftMessage, sender: u64, me: u64) -> Result<(), Refusal> {
    if message.from != sender {
        return Err("message from another member than its sender");
    }
    if message.to != me {
        return Err("message addressed to another member");
    }
    if message.from == me {
        return Err("message from this member itself");
    }
    // raft-rs sends forwarded proposals and read indexes without a term (they count as
    // the leader's local messages) and every other message in the sender's term.
    let local = matches!(
        message.get_msg_type(),
        MessageType::MsgPropose | MessageType::MsgReadIndex
    );
    if local != (message.term == 0) {
        return Err("message with a term its type never carries");
    }
    match message.get_msg_type() {
        MessageType::MsgAppend => check_append(message),
        MessageType::MsgPropose => check_proposal(message),
        // The leader answers a forwarded read index with the request's one entry.
        MessageType::MsgReadIndex | MessageType::MsgReadIndexResp if message.entries.len() != 1 => {
            Err("read index without its one entry")
        }
        MessageType::MsgAppendResponse
        | MessageType::MsgRequestVote
        | MessageType::MsgRequestVoteResponse
        | MessageType::MsgRequestPreVote
        | MessageType::MsgRequestPreVoteResponse
        | MessageType::MsgHeartbeat
        | MessageType::MsgHeartbeatResponse
        | MessageType::MsgTransferLeader
        | MessageType::MsgTimeoutNow
        | MessageType::MsgReadIndex
        | MessageType::MsgReadIndexResp => Ok(()),
        // Arrives only through the snapshot RPC, after its file is received and verified.
        MessageType::MsgSnapshot => Err("snapshot outside the snapshot stream"),
        // Local to a node: never on the wire.
        MessageType::MsgHup
        | MessageType::MsgBeat
        | MessageType::MsgUnreachable
        | MessageType::MsgSnapStatus
        | MessageType::MsgCheckQuorum => Err("message type not allowed from a peer"),
    }
}

/// Checks a message against this member's raft state: a heartbeat may not commit past
/// the log's end (a leader sends at most what the follower has matched), and only a
/// leader takes a leadership transfer (raft-rs would forward it again, in a term, which
/// it treats as fatal).
pub(crate) fn check_against_log(
    message: &RaftMessage,
    last_index: u64,
    leader: bool,
) -> Result<(), Refusal> {
    match message.get_msg_type() {
        MessageType::MsgHeartbeat if message.commit > last_index => {
            Err("heartbeat commit past the end of the log")
        }
        MessageType::MsgTransferLeader if !leader => Err("leadership transfer to a follower"),
        _ => Ok(()),
    }
}

/// Entries must follow the message's index one by one, in terms that never go back and
/// never pass the sender's term: otherwise raft-rs may take one for a conflict with a
/// committed entry, which it treats as fatal.
fn check_append(message: &RaftMessage) -> Result<(), Refusal> {
    // Only the log's start has no term; a term-0 entry past it would match any index.
    if (message.index == 0) != (message.log_term == 0) {
        return Err("append whose previous entry has no term");
    }
    let mut previous_term = message.log_term;
    for (i, entry) in message.entries.iter().enumerate() {
        if entry.index != message.index + 1 + i as u64 {
            return Err("append whose entries do not follow its index");
        }
        if entry.term < previous_term || entry.term > message.term {
            return Err("append whose entry terms are out of order");
        }
        previous_term = entry.term;
    }
    Ok(())
}

/// A forwarded proposal holds what a member's own proposer makes: requests and
/// membership changes that decode, nothing empty.
fn check_proposal(message: &RaftMessage) -> Result<(), Refusal> {
    if message.entries.is_empty() {
        return Err("empty proposal");
    }
    message.entries.iter().try_for_each(check_proposed_entry)
}

fn check_proposed_entry(entry: &Entry) -> Result<(), Refusal> {
    match entry.get_entry_type() {
        EntryType::EntryNormal => match RaftRequest::decode(&entry.data[..]) {
            Ok(request) if request.request.is_some() => Ok(()),
            _ => Err("proposal that is not a request"),
        },
        EntryType::EntryConfChangeV2 => {
            let change = ConfChangeV2::parse_from_bytes(&entry.data);
            let member = MemberChange::decode(&entry.context[..]);
            match (change, member) {
                (Ok(change), Ok(_)) if !change.changes.is_empty() => Ok(()),
                _ => Err("proposal that is not a membership change"),
            }
        }
        EntryType::EntryConfChange => Err("proposal of a v1 membership change"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_proto::ballast::internal::raft_request::Request;
    use ballast_proto::etcdserverpb::PutRequest;

    const ME: u64 = 1;
    const PEER: u64 = 2;

    fn message(kind: MessageType) -> RaftMessage {
        let mut m = RaftMessage::default();
        m.set_msg_type(kind);
        m.from = PEER;
        m.to = ME;
        m.term = 5;
        m
    }

    fn entry(index: u64, term: u64, data: Vec<u8>) -> Entry {
        Entry {
            index,
            term,
            data: data.into(),
            ..Default::default()
        }
    }

    fn put() -> Vec<u8> {
        RaftRequest {
            id: 7,
            request: Some(Request::Put(PutRequest {
                key: b"k".to_vec().into(),
                ..Default::default()
            })),
            auth_revision: 0,
        }
        .encode_to_vec()
    }

    #[test]
    fn a_message_must_come_from_its_sender_and_to_this_member() {
        let m = message(MessageType::MsgHeartbeat);
        assert!(check(&m, PEER, ME).is_ok());
        assert!(check(&m, 3, ME).is_err());
        assert!(check(&m, PEER, 3).is_err());
        let mut from_me = message(MessageType::MsgHeartbeat);
        from_me.from = ME;
        assert!(check(&from_me, ME, ME).is_err());
    }

    #[test]
    fn only_forwarded_proposals_and_read_indexes_come_without_a_term() {
        let mut vote = message(MessageType::MsgRequestPreVote);
        vote.term = 0;
        assert!(check(&vote, PEER, ME).is_err());
        let mut read = message(MessageType::MsgReadIndex);
        read.entries = vec![entry(0, 0, b"ctx".to_vec())].into();
        assert!(check(&read, PEER, ME).is_err(), "a read index in a term");
        read.term = 0;
        assert!(check(&read, PEER, ME).is_ok());
    }

    #[test]
    fn local_types_and_snapshots_are_refused_from_the_wire() {
        for kind in [
            MessageType::MsgHup,
            MessageType::MsgBeat,
            MessageType::MsgUnreachable,
            MessageType::MsgSnapStatus,
            MessageType::MsgCheckQuorum,
            MessageType::MsgSnapshot,
        ] {
            assert!(check(&message(kind), PEER, ME).is_err(), "{kind:?}");
        }
    }

    #[test]
    fn proposals_must_be_requests_that_decode() {
        let mut m = message(MessageType::MsgPropose);
        m.term = 0;
        assert_eq!(check(&m, PEER, ME), Err("empty proposal"));
        m.entries = vec![entry(0, 0, put())].into();
        assert!(check(&m, PEER, ME).is_ok());
        m.entries = vec![
            entry(0, 0, put()),
            entry(0, 0, vec![0xde, 0xad, 0xbe, 0xef]),
        ]
        .into();
        assert!(check(&m, PEER, ME).is_err());
        m.entries = vec![entry(0, 0, Vec::new())].into();
        assert!(check(&m, PEER, ME).is_err(), "an empty entry is no request");
        let mut v1 = entry(0, 0, put());
        v1.set_entry_type(EntryType::EntryConfChange);
        m.entries = vec![v1].into();
        assert!(check(&m, PEER, ME).is_err());
    }

    #[test]
    fn appends_must_follow_their_index_in_order_of_term() {
        let mut m = message(MessageType::MsgAppend);
        m.index = 10;
        m.log_term = 3;
        m.entries = vec![entry(11, 3, put()), entry(12, 5, put())].into();
        assert!(check(&m, PEER, ME).is_ok());
        m.entries = vec![entry(11, 3, put()), entry(2, 5, put())].into();
        assert!(check(&m, PEER, ME).is_err(), "an index that goes back");
        m.entries = vec![entry(11, 4, put()), entry(12, 3, put())].into();
        assert!(check(&m, PEER, ME).is_err(), "a term that goes back");
        m.entries = vec![entry(11, 6, put())].into();
        assert!(check(&m, PEER, ME).is_err(), "a term past the sender's");
    }

    #[test]
    fn read_index_carries_exactly_one_entry() {
        let mut m = message(MessageType::MsgReadIndex);
        m.term = 0;
        assert!(check(&m, PEER, ME).is_err());
        m.entries = vec![entry(0, 0, b"ctx".to_vec())].into();
        assert!(check(&m, PEER, ME).is_ok());
    }

    #[test]
    fn a_heartbeat_may_not_commit_past_the_log() {
        let mut m = message(MessageType::MsgHeartbeat);
        m.commit = 10;
        assert!(check_against_log(&m, 10, false).is_ok());
        assert!(check_against_log(&m, 9, false).is_err());
    }

    #[test]
    fn only_a_leader_takes_a_leadership_transfer() {
        let m = message(MessageType::MsgTransferLeader);
        assert!(check_against_log(&m, 10, true).is_ok());
        assert!(check_against_log(&m, 10, false).is_err());
    }
}
