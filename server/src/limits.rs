//! The node's size limits and how they relate, checked at compile time (TigerBeetle's
//! `constants.zig`): the limits that bound a message between members live here, together
//! with the relations that keep every raft message inside one peer message. Limits that
//! concern one module only (queue capacities, timeouts) live beside their code.
//!
//! A peer message is one batch of raft messages (`peer`): up to `PEER_BATCH_BYTES_MAX`
//! plus the one message that crossed it. The largest raft message is an append of
//! `RAFT_MESSAGE_BYTES_MAX` of entries plus one entry that went alone, or a forwarded
//! proposal batch of `PROPOSAL_BATCH_BYTES_MAX` plus the proposal that crossed it; an
//! entry is at most one request of `--max-request-bytes`.

/// etcd's `--max-request-bytes` default: 1.5 MiB.
pub const REQUEST_BYTES_MAX_DEFAULT: u32 = 1572864;
/// gRPC may receive this much more than `--max-request-bytes` (etcd's grpcOverheadBytes),
/// so a request just over the limit gets etcd's "request is too large", not a transport
/// error.
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// Bytes of entries raft puts in one append at most (one entry larger than this still goes
/// alone): bounds a peer message and a follower's apply step.
pub const RAFT_MESSAGE_BYTES_MAX: usize = 1 << 20;
/// Bytes of proposal data in one batch before it is stepped, so a turn's forwarded
/// proposals stay one modest peer message (a single larger proposal still goes alone).
pub const PROPOSAL_BATCH_BYTES_MAX: usize = 1 << 20;
/// Bytes of messages in one batch at most (a batch is one gRPC message).
pub const PEER_BATCH_BYTES_MAX: usize = 4 << 20;
/// Largest gRPC message a peer connection carries (batches, snapshot chunks).
pub const PEER_MESSAGE_BYTES_MAX: usize = 64 << 20;

/// The largest raft message, past one request's bytes.
const RAFT_MESSAGE_BYTES_BEFORE_REQUEST: usize =
    if RAFT_MESSAGE_BYTES_MAX > PROPOSAL_BATCH_BYTES_MAX {
        RAFT_MESSAGE_BYTES_MAX
    } else {
        PROPOSAL_BATCH_BYTES_MAX
    };

/// The largest peer message a member receives, for its `--max-request-bytes`: a batch,
/// the one raft message that crossed it, carrying at most one request past its bound.
/// What a peer (or a stranger on the peer port) can make a member buffer per message.
pub const fn peer_message_bytes_received(max_request_bytes: usize) -> usize {
    PEER_BATCH_BYTES_MAX
        + RAFT_MESSAGE_BYTES_BEFORE_REQUEST
        + max_request_bytes
        + GRPC_OVERHEAD_BYTES
}

/// The largest `--max-request-bytes` whose requests still fit every peer message.
pub const REQUEST_BYTES_LIMIT: usize = PEER_MESSAGE_BYTES_MAX
    - PEER_BATCH_BYTES_MAX
    - RAFT_MESSAGE_BYTES_BEFORE_REQUEST
    - GRPC_OVERHEAD_BYTES;

// etcd's default request size fits, with room to raise it.
const _: () = assert!(REQUEST_BYTES_MAX_DEFAULT as usize <= REQUEST_BYTES_LIMIT);
const _: () = assert!(REQUEST_BYTES_LIMIT >= 32 << 20);
// A batch of proposals is stepped before it outgrows what raft would send in one append.
const _: () = assert!(PROPOSAL_BATCH_BYTES_MAX <= RAFT_MESSAGE_BYTES_MAX);
// A peer batch holds several full appends, so a busy follower gets few large writes.
const _: () = assert!(PEER_BATCH_BYTES_MAX >= 2 * RAFT_MESSAGE_BYTES_MAX);
