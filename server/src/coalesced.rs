//! A served connection's writes gathered between flushes and sent in one.
//!
//! h2 flushes its frame buffer before it takes the next frame when a DATA payload is
//! too big to copy in (256 bytes over a socket that takes vectored writes), so every
//! unary response with a few hundred bytes of body left in two writes: headers and
//! data, then the trailers. A write is a system call and, on loopback, the receiver's
//! wake-up too. This connection tells h2 it takes no vectored writes, so h2 copies
//! payloads of up to a KiB into its buffer and the whole response is one frame run, and
//! it holds what it is given until h2 flushes, so a bigger payload's frame header and
//! body leave together as well. Nothing waits: h2 flushes at the end of every run of
//! frames, and hyper's HTTP/1 after every response.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// Bytes a connection holds for its next write at most: h2's largest default frame.
/// A write that would pass it goes out at once, together with what is held.
const HELD_BYTES_MAX: usize = 16 * 1024;

/// Buffer capacity kept between writes; a bigger one (after a large response) is
/// given back, so thousands of idle connections hold little.
const KEPT_CAPACITY_BYTES: usize = 4 * 1024;

/// A connection whose writes wait for the next flush.
#[derive(Debug)]
pub(crate) struct Coalesced<S> {
    inner: S,
    held: BytesMut,
}

impl<S> Coalesced<S> {
    pub(crate) fn new(inner: S) -> Self {
        Coalesced {
            inner,
            held: BytesMut::new(),
        }
    }
}

impl<S: AsyncWrite + Unpin> Coalesced<S> {
    /// Writes everything held.
    fn poll_write_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.advance(n);
        }
        if self.held.capacity() > KEPT_CAPACITY_BYTES {
            self.held = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }

    /// Writes what is held and `buf` together, for a `buf` too big to hold; how much of
    /// `buf` went out.
    fn poll_write_through(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            if self.held.is_empty() {
                return Pin::new(&mut self.inner).poll_write(cx, buf);
            }
            let held = self.held.len();
            let slices = [IoSlice::new(&self.held), IoSlice::new(buf)];
            let n = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, &slices))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.advance(n.min(held));
            // Zero bytes of `buf` is no answer to give: that would read as a closed
            // connection. Go round and write `buf` on its own.
            if n > held {
                return Poll::Ready(Ok(n - held));
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesced<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesced<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.held.len() + buf.len() > HELD_BYTES_MAX {
            return this.poll_write_through(cx, buf);
        }
        this.held.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    /// The reason this type exists: see the module doc.
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_held(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_held(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<S: Connected> Connected for Coalesced<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    /// A socket that records each write and takes at most `per_write` bytes of it,
    /// refusing every other call with Pending when `stutter` is set.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
        per_write: usize,
        stutter: bool,
        refuse_next: bool,
        flushes: usize,
        shut: bool,
    }

    impl Recorder {
        fn taking(per_write: usize) -> Self {
            Recorder {
                per_write,
                ..Default::default()
            }
        }

        fn sent(&self) -> Vec<u8> {
            self.writes.concat()
        }

        fn take(&mut self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
            if self.stutter {
                self.refuse_next = !self.refuse_next;
                if self.refuse_next {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
            let mut write = Vec::new();
            for buf in bufs {
                let room = self.per_write - write.len();
                write.extend_from_slice(&buf[..buf.len().min(room)]);
            }
            let n = write.len();
            self.writes.push(write);
            Poll::Ready(Ok(n))
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().take(cx, &[IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().take(cx, bufs)
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().flushes += 1;
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().shut = true;
            Poll::Ready(Ok(()))
        }
    }

    fn cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    /// Drives one call until it is ready, as a task woken again would.
    fn until_ready<T>(mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>) -> T {
        let mut cx = cx();
        loop {
            if let Poll::Ready(out) = poll(&mut cx) {
                return out;
            }
        }
    }

    /// Writes `buf` whole, as `write_all` does.
    fn write_all(conn: &mut Coalesced<Recorder>, mut buf: &[u8]) {
        while !buf.is_empty() {
            let n = until_ready(|cx| Pin::new(&mut *conn).poll_write(cx, buf)).unwrap();
            assert!(n > 0, "a write took nothing");
            buf = &buf[n..];
        }
    }

    fn flush(conn: &mut Coalesced<Recorder>) {
        until_ready(|cx| Pin::new(&mut *conn).poll_flush(cx)).unwrap();
    }

    #[test]
    fn writes_between_flushes_leave_in_one_write_at_the_flush() {
        let mut conn = Coalesced::new(Recorder::taking(usize::MAX));
        write_all(&mut conn, b"headers+data ");
        write_all(&mut conn, b"trailers");
        assert!(
            conn.inner.writes.is_empty(),
            "nothing is sent before the flush"
        );

        flush(&mut conn);
        assert_eq!(conn.inner.writes, vec![b"headers+data trailers".to_vec()]);
        assert_eq!(conn.inner.flushes, 1);
        assert!(!conn.is_write_vectored(), "h2 must copy small payloads in");
    }

    #[test]
    fn a_write_too_big_to_hold_leaves_at_once_with_what_is_held() {
        let mut conn = Coalesced::new(Recorder::taking(usize::MAX));
        write_all(&mut conn, b"frame header");
        let payload = vec![7u8; HELD_BYTES_MAX];
        write_all(&mut conn, &payload);

        assert_eq!(conn.inner.writes.len(), 1, "one vectored write for both");
        assert_eq!(conn.inner.sent(), [&b"frame header"[..], &payload].concat());
        flush(&mut conn);
        assert_eq!(conn.inner.writes.len(), 1, "nothing was left to flush");
    }

    #[test]
    fn partial_and_refused_writes_lose_and_reorder_nothing() {
        for per_write in [1, 5, 4096, HELD_BYTES_MAX + 3] {
            let mut recorder = Recorder::taking(per_write);
            recorder.stutter = true;
            let mut conn = Coalesced::new(recorder);
            let mut expected = Vec::new();
            for (i, len) in [3, 700, HELD_BYTES_MAX, 10, 2 * HELD_BYTES_MAX, 1]
                .into_iter()
                .enumerate()
            {
                let piece: Vec<u8> = (0..len).map(|j| (i * 31 + j) as u8).collect();
                write_all(&mut conn, &piece);
                expected.extend_from_slice(&piece);
                if i % 2 == 1 {
                    flush(&mut conn);
                    assert_eq!(
                        conn.inner.sent(),
                        expected,
                        "after a flush, per write {per_write}"
                    );
                }
            }
            flush(&mut conn);
            assert_eq!(conn.inner.sent(), expected, "per write {per_write}");
        }
    }

    #[test]
    fn shutdown_sends_what_is_held_first() {
        let mut conn = Coalesced::new(Recorder::taking(usize::MAX));
        write_all(&mut conn, b"goaway");
        until_ready(|cx| Pin::new(&mut conn).poll_shutdown(cx)).unwrap();
        assert_eq!(conn.inner.sent(), b"goaway");
        assert!(conn.inner.shut);
    }

    #[test]
    fn a_large_buffer_is_given_back_once_written() {
        let mut conn = Coalesced::new(Recorder::taking(usize::MAX));
        write_all(&mut conn, &vec![1u8; HELD_BYTES_MAX]);
        flush(&mut conn);
        assert!(conn.held.capacity() <= KEPT_CAPACITY_BYTES);
    }
}
