//! Appends that a later one in the same Ready makes redundant.
//!
//! When a leader's commit index advances, raft-rs tells every follower at once, with an
//! append that carries no entries. Under load the same turn also steps new proposals,
//! and raft-rs sends each follower a second append with them and the same (or a newer)
//! commit index. The first is then one more peer message, follower wake-up, Ready and
//! answer per follower, for nothing the second does not say.
//!
//! raft-rs's own `batch_append` merges such appends too, but it also merges appends of
//! entries without a size bound, which would break the bound on a peer message
//! (`limits`). Dropping only entry-less appends never makes a message larger.

use raft::eraftpb::{Message, MessageType};

/// Drops every append without entries that a later append in `messages`, to the same
/// member in the same term, supersedes: it carries a commit index at least as new (an
/// entry-less append only conveys one) and its answer tells the leader all the first
/// one's would. An entry-less append not followed by another is kept: it is the one
/// that tells the follower to commit.
pub(crate) fn drop_superseded_appends(messages: &mut Vec<Message>) {
    if messages.len() < 2 {
        return;
    }
    // (to, term, commit) of the last append to each member, found scanning backwards.
    let mut later: Vec<(u64, u64, u64)> = Vec::new();
    let mut keep = vec![true; messages.len()];
    for (i, message) in messages.iter().enumerate().rev() {
        if message.get_msg_type() != MessageType::MsgAppend {
            continue;
        }
        let last = later
            .iter()
            .find(|&&(to, term, _)| to == message.to && term == message.term);
        match last {
            Some(&(_, _, commit)) if message.entries.is_empty() && commit >= message.commit => {
                keep[i] = false;
            }
            Some(_) => {}
            None => later.push((message.to, message.term, message.commit)),
        }
    }
    let mut keep = keep.into_iter();
    messages.retain(|_| keep.next().expect("one flag per message"));
}

#[cfg(test)]
mod tests {
    use raft::eraftpb::Entry;

    use super::*;

    fn append(to: u64, term: u64, commit: u64, entries: &[u64]) -> Message {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.to = to;
        m.term = term;
        m.commit = commit;
        m.entries = entries
            .iter()
            .map(|&index| Entry {
                index,
                term,
                ..Default::default()
            })
            .collect::<Vec<_>>()
            .into();
        m
    }

    fn heartbeat(to: u64, term: u64, commit: u64) -> Message {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgHeartbeat);
        m.to = to;
        m.term = term;
        m.commit = commit;
        m
    }

    /// (to, commit, entry count) of each message, for comparing.
    fn shape(messages: &[Message]) -> Vec<(u64, u64, usize)> {
        messages
            .iter()
            .map(|m| (m.to, m.commit, m.entries.len()))
            .collect()
    }

    #[test]
    fn a_commit_notice_followed_by_new_entries_to_the_same_member_is_dropped() {
        let mut messages = vec![
            append(2, 5, 10, &[]),
            append(3, 5, 10, &[]),
            append(2, 5, 10, &[11, 12]),
            append(3, 5, 10, &[11, 12]),
        ];
        drop_superseded_appends(&mut messages);
        assert_eq!(shape(&messages), vec![(2, 10, 2), (3, 10, 2)]);
    }

    #[test]
    fn a_commit_notice_nothing_follows_is_kept() {
        let mut messages = vec![
            append(2, 5, 9, &[10]),
            append(2, 5, 10, &[]),
            append(3, 5, 10, &[]),
            heartbeat(3, 5, 10),
        ];
        let before = shape(&messages);
        drop_superseded_appends(&mut messages);
        assert_eq!(shape(&messages), before, "the notices come last: all kept");
    }

    #[test]
    fn only_an_append_to_the_same_member_in_the_same_term_with_a_commit_as_new_supersedes() {
        let mut messages = vec![
            append(2, 5, 10, &[]),
            append(3, 5, 10, &[11]),
            append(2, 6, 10, &[11]),
        ];
        let before = shape(&messages);
        drop_superseded_appends(&mut messages);
        assert_eq!(shape(&messages), before, "other member, other term");

        let mut messages = vec![append(2, 5, 10, &[]), append(2, 5, 9, &[11])];
        drop_superseded_appends(&mut messages);
        assert_eq!(
            shape(&messages),
            vec![(2, 10, 0), (2, 9, 1)],
            "older commit"
        );
    }

    #[test]
    fn appends_with_entries_are_never_dropped() {
        let mut messages = vec![append(2, 5, 10, &[11]), append(2, 5, 11, &[12])];
        drop_superseded_appends(&mut messages);
        assert_eq!(shape(&messages), vec![(2, 10, 1), (2, 11, 1)]);
    }
}
