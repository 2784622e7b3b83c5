//! An HTTP/2 `:authority` rewriter for grpc-go clients that name a whole URL as the
//! authority of their requests.
//!
//! etcdctl 3.4 dials a member's client URL itself for `endpoint status`, `endpoint hashkv`
//! and `defrag` (always so with `--cluster`, which takes the URLs from the member list),
//! and grpc-go then sends the URL, scheme and all ("http://127.0.0.1:2379"), as the
//! `:authority` of every request on that connection. etcd accepts it; h2 resets the
//! stream as malformed. So the first header block of every client connection is decoded
//! here: when its authority is fine, which is every other client, the connection is left
//! alone from then on; when it is a URL, every header block of that connection is decoded
//! and re-encoded with the URL's host and port as its authority.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use loona_hpack::{Decoder, Encoder};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// What every HTTP/2 client with prior knowledge sends first.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_BYTES: usize = 9;
const FRAME_HEADERS: u8 = 0x1;
const FRAME_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// Re-encoded header blocks are cut into frames of at most this size: h2's default
/// SETTINGS_MAX_FRAME_SIZE, which the client server keeps.
const FRAME_BYTES_MAX: usize = 16_384;
/// Decoded header list size (names, values and 32 bytes per field, as RFC 7541 counts
/// it) this decoder produces at most: h2's default SETTINGS_MAX_HEADER_LIST_SIZE. A
/// block that decodes to more is left to h2, which refuses it: without the cap, a few
/// KiB of references to one large table entry decode to hundreds of MiB (an HPACK bomb).
const HEADER_LIST_BYTES_MAX: usize = 16 << 10;
/// The dynamic table size this decoder allows: h2's default SETTINGS_HEADER_TABLE_SIZE,
/// which the server advertises, so no client may ask for more.
const HEADER_TABLE_BYTES_MAX: usize = 4096;
/// A header block is held for decoding up to this size; past it the connection is left
/// to h2 as it is. An encoded list is hardly larger than the decoded one.
const HEADER_BLOCK_BYTES_MAX: usize = 2 * HEADER_LIST_BYTES_MAX;
/// What RFC 7541 adds to each field's name and value length when it counts a list's size.
const HEADER_FIELD_OVERHEAD: usize = 32;
/// Bytes read from the socket at once while frames are parsed.
const READ_CHUNK_BYTES: usize = 8 * 1024;

enum Mode {
    /// Before the first header block, whose authority decides.
    Undecided,
    /// The connection names a URL as its authority: every header block is re-encoded.
    Rewrite,
    /// Bytes go through untouched: the authority is fine, or this is no HTTP/2 with prior
    /// knowledge (HTTP/1 for /health and /metrics), or the framing is h2's to refuse.
    Passthrough,
}

enum Stage {
    /// `n` bytes of the preface seen so far.
    Preface(usize),
    FrameHeader,
    /// Passing the rest of a frame's payload on as it comes.
    Payload(usize),
}

/// A header block being gathered from a HEADERS frame and its CONTINUATIONs.
struct Block {
    stream: u32,
    end_stream: bool,
    fragment: Vec<u8>,
    /// The frames as received, passed on as they are when the block is left alone.
    frames: Vec<u8>,
}

/// A client connection that rewrites URL authorities before h2 reads them.
pub struct AuthorityFix<S> {
    inner: S,
    mode: Mode,
    stage: Stage,
    block: Option<Block>,
    /// Read from the socket, not yet looked at.
    input: BytesMut,
    /// Ready for h2 to read.
    output: BytesMut,
    eof: bool,
    /// A rewritten connection whose framing broke: the connection ends with this.
    failed: Option<String>,
    decoder: Decoder<'static>,
    encoder: Encoder<'static>,
}

impl<S> AuthorityFix<S> {
    pub fn new(inner: S) -> Self {
        AuthorityFix {
            inner,
            mode: Mode::Undecided,
            stage: Stage::Preface(0),
            block: None,
            input: BytesMut::new(),
            output: BytesMut::new(),
            eof: false,
            failed: None,
            decoder: bounded_decoder(),
            encoder: Encoder::new(),
        }
    }

    /// Moves what can be decided from `input` to `output`.
    fn process(&mut self) {
        loop {
            if matches!(self.mode, Mode::Passthrough) {
                self.output
                    .extend_from_slice(&std::mem::take(&mut self.input));
                return;
            }
            match self.stage {
                Stage::Preface(seen) => {
                    let n = self.input.len().min(PREFACE.len() - seen);
                    if self.input[..n] != PREFACE[seen..seen + n] {
                        self.mode = Mode::Passthrough;
                        continue;
                    }
                    self.output.extend_from_slice(&self.input.split_to(n));
                    if seen + n < PREFACE.len() {
                        self.stage = Stage::Preface(seen + n);
                        return;
                    }
                    self.stage = Stage::FrameHeader;
                }
                Stage::Payload(remaining) => {
                    let n = self.input.len().min(remaining);
                    self.output.extend_from_slice(&self.input.split_to(n));
                    if n < remaining {
                        self.stage = Stage::Payload(remaining - n);
                        return;
                    }
                    self.stage = Stage::FrameHeader;
                }
                Stage::FrameHeader => {
                    if self.input.len() < FRAME_HEADER_BYTES {
                        return;
                    }
                    let length =
                        u32::from_be_bytes([0, self.input[0], self.input[1], self.input[2]])
                            as usize;
                    let kind = self.input[3];
                    if kind != FRAME_HEADERS && kind != FRAME_CONTINUATION {
                        if self.block.is_some() {
                            self.malformed("a frame inside a header block");
                            continue;
                        }
                        self.output
                            .extend_from_slice(&self.input.split_to(FRAME_HEADER_BYTES));
                        self.stage = Stage::Payload(length);
                        continue;
                    }
                    let held = self.block.as_ref().map_or(0, |b| b.frames.len());
                    if held + length > HEADER_BLOCK_BYTES_MAX {
                        self.malformed("a header block too large to hold");
                        continue;
                    }
                    if self.input.len() < FRAME_HEADER_BYTES + length {
                        return;
                    }
                    let frame = self.input.split_to(FRAME_HEADER_BYTES + length);
                    if let Err(why) = self.gather(&frame) {
                        self.malformed(why);
                        continue;
                    }
                    if frame[4] & FLAG_END_HEADERS != 0 {
                        let block = self.block.take().expect("gathered");
                        self.finish(block);
                    }
                }
            }
        }
    }

    /// Adds a HEADERS or CONTINUATION frame to the block being gathered.
    fn gather(&mut self, frame: &[u8]) -> Result<(), &'static str> {
        let (kind, flags) = (frame[3], frame[4]);
        let stream = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        let payload = &frame[FRAME_HEADER_BYTES..];
        if kind == FRAME_CONTINUATION {
            let block = match self.block.as_mut() {
                Some(block) if block.stream == stream => block,
                _ => return Err("a CONTINUATION frame outside its header block"),
            };
            block.fragment.extend_from_slice(payload);
            block.frames.extend_from_slice(frame);
            return Ok(());
        }
        if self.block.is_some() {
            return Err("a HEADERS frame inside a header block");
        }
        let mut start = 0;
        let mut padding = 0;
        if flags & FLAG_PADDED != 0 {
            padding = *payload
                .first()
                .ok_or("a padded frame without its pad length")? as usize;
            start = 1;
        }
        if flags & FLAG_PRIORITY != 0 {
            start += 5;
        }
        if start + padding > payload.len() {
            return Err("padding longer than the frame");
        }
        self.block = Some(Block {
            stream,
            end_stream: flags & FLAG_END_STREAM != 0,
            fragment: payload[start..payload.len() - padding].to_vec(),
            frames: frame.to_vec(),
        });
        Ok(())
    }

    /// Passes a whole header block on, as it came or re-encoded.
    fn finish(&mut self, block: Block) {
        let mut headers = match decode_bounded(&mut self.decoder, &block.fragment) {
            Ok(headers) => headers,
            Err(why) => return self.malformed_block(block, why),
        };
        let fixed = headers
            .iter_mut()
            .find(|(name, _)| name.as_slice() == b":authority")
            .and_then(|(_, value)| authority_of_url(value).map(|fixed| *value = fixed))
            .is_some();
        if matches!(self.mode, Mode::Undecided) {
            if !fixed {
                self.output.extend_from_slice(&block.frames);
                self.mode = Mode::Passthrough;
                return;
            }
            tracing::debug!("a client names a URL as its authority; rewriting its requests");
            self.mode = Mode::Rewrite;
        }
        let encoded = self
            .encoder
            .encode(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
        let mut chunks = encoded.chunks(FRAME_BYTES_MAX).peekable();
        let mut kind = FRAME_HEADERS;
        let mut flags = if block.end_stream { FLAG_END_STREAM } else { 0 };
        loop {
            let chunk = chunks.next().unwrap_or_default();
            if chunks.peek().is_none() {
                flags |= FLAG_END_HEADERS;
            }
            self.output.put_uint(chunk.len() as u64, 3);
            self.output.put_u8(kind);
            self.output.put_u8(flags);
            self.output.put_u32(block.stream);
            self.output.extend_from_slice(chunk);
            if flags & FLAG_END_HEADERS != 0 {
                return;
            }
            kind = FRAME_CONTINUATION;
            flags = 0;
        }
    }

    fn malformed_block(&mut self, block: Block, why: &'static str) {
        self.block = Some(block);
        self.malformed(why);
    }

    /// Framing this layer cannot follow. Before any rewrite, h2 gets the bytes as they
    /// came and answers them as it would have; after one, its header table no longer
    /// matches the client's, so the connection ends.
    fn malformed(&mut self, why: &'static str) {
        let held = self.block.take();
        match self.mode {
            Mode::Rewrite => self.failed = Some(why.to_string()),
            Mode::Undecided | Mode::Passthrough => {
                if let Some(block) = held {
                    self.output.extend_from_slice(&block.frames);
                }
            }
        }
        self.mode = Mode::Passthrough;
        if self.failed.is_some() {
            self.input.clear();
        }
    }
}

/// The host and port of `value` when it is a URL where an authority belongs
/// ("http://127.0.0.1:2379" gives "127.0.0.1:2379"); None when h2 accepts it as it is,
/// or when it is no URL either.
/// Decoded headers: names and values.
type HeaderList = Vec<(Vec<u8>, Vec<u8>)>;

fn bounded_decoder() -> Decoder<'static> {
    let mut decoder = Decoder::new();
    decoder.set_max_allowed_table_size(HEADER_TABLE_BYTES_MAX);
    decoder
}

/// Decodes a header block into at most `HEADER_LIST_BYTES_MAX` of headers; the fields
/// past it are counted, never copied, so a bomb costs a pass over its bytes only.
fn decode_bounded(
    decoder: &mut Decoder<'static>,
    fragment: &[u8],
) -> Result<HeaderList, &'static str> {
    let mut headers = Vec::new();
    let mut size = 0usize;
    decoder
        .decode_with_cb(fragment, |name, value| {
            size = size.saturating_add(name.len() + value.len() + HEADER_FIELD_OVERHEAD);
            if size <= HEADER_LIST_BYTES_MAX {
                headers.push((name.into_owned(), value.into_owned()));
            }
        })
        .map_err(|_| "an undecodable header block")?;
    if size > HEADER_LIST_BYTES_MAX {
        return Err("a header list larger than allowed");
    }
    Ok(headers)
}

fn authority_of_url(value: &[u8]) -> Option<Vec<u8>> {
    if http::uri::Authority::try_from(value).is_ok() {
        return None;
    }
    let uri = http::Uri::try_from(value).ok()?;
    uri.scheme()?;
    Some(uri.authority()?.as_str().as_bytes().to_vec())
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.output.is_empty() {
                let n = this.output.len().min(buf.remaining());
                buf.put_slice(&this.output[..n]);
                this.output.advance(n);
                return Poll::Ready(Ok(()));
            }
            if let Some(why) = &this.failed {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, why.clone())));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            if matches!(this.mode, Mode::Passthrough) && this.input.is_empty() {
                // Decided: from here on h2 reads the socket itself.
                this.output = BytesMut::new();
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut chunk = [0u8; READ_CHUNK_BYTES];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // The client is gone; a partial frame goes on for h2 to notice.
                this.eof = true;
                if let Some(block) = this.block.take() {
                    if !matches!(this.mode, Mode::Rewrite) {
                        this.output.extend_from_slice(&block.frames);
                    }
                }
                this.output
                    .extend_from_slice(&std::mem::take(&mut this.input));
                continue;
            }
            this.input.extend_from_slice(read.filled());
            this.process();
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: Connected> Connected for AuthorityFix<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    type Headers = Vec<(Vec<u8>, Vec<u8>)>;

    fn request(authority: &str, path: &str, extra: &[u8]) -> Headers {
        [
            (":method", "POST".as_bytes()),
            (":scheme", b"http"),
            (":path", path.as_bytes()),
            (":authority", authority.as_bytes()),
            ("content-type", b"application/grpc"),
            ("x-extra", extra),
        ]
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.to_vec()))
        .collect()
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.put_uint(payload.len() as u64, 3);
        out.put_u8(kind);
        out.put_u8(flags);
        out.put_u32(stream);
        out.extend_from_slice(payload);
        out.to_vec()
    }

    fn encode(encoder: &mut Encoder<'_>, headers: &Headers) -> Vec<u8> {
        encoder.encode(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())))
    }

    /// A client's bytes: two requests, the second's block padded, prioritized and split
    /// over a CONTINUATION, and indexing what the first added to the header table.
    fn client(authority: &str) -> (Vec<u8>, [Headers; 2]) {
        let requests = [
            request(authority, "/etcdserverpb.Maintenance/Status", b"1"),
            request(authority, "/etcdserverpb.KV/Range", b"2"),
        ];
        let mut encoder = Encoder::new();
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(0x4, 0, 0, &[]));
        let first = encode(&mut encoder, &requests[0]);
        bytes.extend(frame(FRAME_HEADERS, FLAG_END_HEADERS, 1, &first));
        bytes.extend(frame(0x0, FLAG_END_STREAM, 1, b"\0\0\0\0\x05hello"));
        let second = encode(&mut encoder, &requests[1]);
        let (head, tail) = second.split_at(second.len() / 2);
        let mut padded = vec![3, 0, 0, 0, 1, 16];
        padded.extend_from_slice(head);
        padded.extend_from_slice(&[0, 0, 0]);
        bytes.extend(frame(
            FRAME_HEADERS,
            FLAG_PADDED | FLAG_PRIORITY,
            3,
            &padded,
        ));
        bytes.extend(frame(FRAME_CONTINUATION, FLAG_END_HEADERS, 3, tail));
        bytes.extend(frame(0x0, FLAG_END_STREAM, 3, b"\0\0\0\0\x02hi"));
        (bytes, requests)
    }

    /// What h2 reads when `input` arrives a few bytes at a time.
    async fn through(input: Vec<u8>) -> io::Result<Vec<u8>> {
        let (mut client, server) = tokio::io::duplex(7);
        let writer = tokio::spawn(async move {
            let _ = client.write_all(&input).await;
            let _ = client.shutdown().await;
            client
        });
        let mut out = Vec::new();
        let read = AuthorityFix::new(server).read_to_end(&mut out).await;
        drop(writer.await.unwrap());
        read.map(|_| out)
    }

    /// The frames after the preface: (kind, flags, stream, payload).
    fn frames(mut bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
        bytes = bytes.strip_prefix(PREFACE).expect("the preface first");
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let length = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
            let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
            let payload = bytes[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + length].to_vec();
            frames.push((bytes[3], bytes[4], stream, payload));
            bytes = &bytes[FRAME_HEADER_BYTES + length..];
        }
        frames
    }

    /// Decodes the header blocks of unpadded frames, as h2 would, with one table.
    fn blocks(frames: &[(u8, u8, u32, Vec<u8>)]) -> Vec<(u32, Headers)> {
        let mut decoder = Decoder::new();
        let mut blocks = Vec::new();
        let mut fragment = Vec::new();
        for (kind, flags, stream, payload) in frames {
            if *kind != FRAME_HEADERS && *kind != FRAME_CONTINUATION {
                continue;
            }
            assert_eq!(flags & (FLAG_PADDED | FLAG_PRIORITY), 0);
            fragment.extend_from_slice(payload);
            if flags & FLAG_END_HEADERS != 0 {
                blocks.push((*stream, decoder.decode(&fragment).unwrap()));
                fragment.clear();
            }
        }
        blocks
    }

    #[tokio::test]
    async fn a_url_authority_becomes_its_host_and_port_in_every_block() {
        let (input, requests) = client("http://127.0.0.1:2379");
        let out = frames(&through(input.clone()).await.unwrap());
        let expected: Vec<(u32, Headers)> = [1, 3]
            .into_iter()
            .zip(requests)
            .map(|(stream, mut headers)| {
                headers[3].1 = b"127.0.0.1:2379".to_vec();
                (stream, headers)
            })
            .collect();
        assert_eq!(blocks(&out), expected);
        // Everything but the header blocks goes on as it came, in order.
        let others = |frames: Vec<(u8, u8, u32, Vec<u8>)>| -> Vec<_> {
            frames
                .into_iter()
                .filter(|f| f.0 != FRAME_HEADERS && f.0 != FRAME_CONTINUATION)
                .collect()
        };
        assert_eq!(others(out.clone()), others(frames(&input)));
        assert_eq!(out[0].0, 0x4);
        assert_eq!(
            (out[2].0, out[2].3.as_slice()),
            (0x0, &b"\0\0\0\0\x05hello"[..])
        );
    }

    #[tokio::test]
    async fn a_fine_authority_leaves_the_connection_untouched() {
        let (input, _) = client("127.0.0.1:2379");
        assert_eq!(through(input.clone()).await.unwrap(), input);
    }

    #[tokio::test]
    async fn http1_goes_through_untouched() {
        let input = b"GET /health HTTP/1.1\r\nHost: http://127.0.0.1:2379\r\n\r\n".to_vec();
        assert_eq!(through(input.clone()).await.unwrap(), input);
    }

    /// A block of one large literal added to the table, then `references` one-byte
    /// references to it: each decodes to the whole literal.
    fn bomb(references: usize) -> Vec<u8> {
        let value = vec![b'v'; 4000];
        let mut block = encode(&mut Encoder::new(), &request("127.0.0.1:2379", "/p", b""));
        // Literal with incremental indexing, new name "x-bomb", then the value.
        block.push(0x40);
        block.push(6);
        block.extend_from_slice(b"x-bomb");
        block.extend_from_slice(&[0x7f, 0xa1, 0x1e]); // 127 + 3873 = 4000
        block.extend_from_slice(&value);
        block.extend(std::iter::repeat_n(0xbe, references)); // index 62: that entry
        block
    }

    #[test]
    fn a_header_list_past_the_cap_is_refused_without_being_copied() {
        // Three copies fit; 60,000 would decode to 240 MB.
        let small = bomb(2);
        assert_eq!(
            decode_bounded(&mut bounded_decoder(), &small)
                .unwrap()
                .len(),
            9
        );
        let big = bomb(60_000);
        assert_eq!(
            decode_bounded(&mut bounded_decoder(), &big),
            Err("a header list larger than allowed")
        );
        // A table larger than the server allows is refused: size updates to 4096 and
        // 4097, then one indexed field (:method GET).
        let resize = |last: u8| [0x3f, last, 0x1f, 0x82];
        assert!(decode_bounded(&mut bounded_decoder(), &resize(0xe1)).is_ok());
        assert!(decode_bounded(&mut bounded_decoder(), &resize(0xe2)).is_err());
    }

    #[tokio::test]
    async fn a_bomb_as_the_first_block_is_left_to_h2_as_it_came() {
        let block = bomb(HEADER_LIST_BYTES_MAX / 4000 + 1);
        assert!(
            block.len() < HEADER_BLOCK_BYTES_MAX,
            "decoded, not just held"
        );
        let mut input = PREFACE.to_vec();
        input.extend(frame(FRAME_HEADERS, FLAG_END_HEADERS, 1, &block));
        assert_eq!(through(input.clone()).await.unwrap(), input);
    }

    #[tokio::test]
    async fn a_bomb_after_a_rewrite_ends_the_connection() {
        let (mut input, _) = client("http://127.0.0.1:2379");
        input.extend(frame(FRAME_HEADERS, FLAG_END_HEADERS, 5, &bomb(10)));
        let err = through(input).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn a_broken_block_after_a_rewrite_ends_the_connection() {
        let (mut input, _) = client("http://127.0.0.1:2379");
        // An index past both tables.
        input.extend(frame(
            FRAME_HEADERS,
            FLAG_END_HEADERS,
            5,
            &[0xff, 0xff, 0x7f],
        ));
        let err = through(input).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    mod fuzz {
        //! The pre-decoder reads a client's first bytes before h2 does: whatever they
        //! are, it passes them on or ends the connection, without panicking and without
        //! holding more than a header block.

        use super::*;
        use proptest::prelude::*;

        fn run(input: Vec<u8>) -> io::Result<Vec<u8>> {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(through(input))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn any_bytes_after_the_preface_are_passed_on_or_refused(
                frames in proptest::collection::vec(
                    (0u8..10, any::<u8>(), 0u32..4, proptest::collection::vec(any::<u8>(), 0..64)),
                    0..12,
                ),
                url in any::<bool>(),
            ) {
                let (mut input, _) = client(if url { "http://127.0.0.1:2379" } else { "127.0.0.1:2379" });
                input.truncate(PREFACE.len());
                for (kind, flags, stream, payload) in frames {
                    input.extend(frame(kind, flags, stream, &payload));
                }
                let length = input.len();
                if let Ok(out) = run(input) {
                    // A rewritten block may grow by a little; nothing else is added.
                    prop_assert!(out.len() <= length + HEADER_BLOCK_BYTES_MAX);
                }
            }

            #[test]
            fn bytes_without_the_preface_go_through_untouched(
                input in proptest::collection::vec(any::<u8>(), 0..256),
            ) {
                prop_assume!(!input.starts_with(&PREFACE[..input.len().min(PREFACE.len())]) || input.is_empty());
                prop_assert_eq!(run(input.clone()).unwrap(), input);
            }
        }
    }
}
