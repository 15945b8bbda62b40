//! Which reads of one object are sequential ([`Streams`]), so that only
//! those get read-ahead.
//!
//! Several readers read one object at once: the opener's workers (each a
//! run of chunks of its own), the readers of files packed in one object,
//! requests of one reader the kernel split over several threads. Each
//! goes forward from where it was, while a random reader jumps. A read
//! whose block is within one of a stream's furthest block continues that
//! stream, and gets read-ahead from the stream's furthest block; any
//! other read starts a new stream (replacing the one continued least
//! recently) and gets none, unless it reads the first chunks (a whole read
//! starting): a random reader fetches only the blocks it reads.

/// Streams remembered per object.
const STREAMS: usize = 8;

/// One stream: the furthest block it read, when it was last continued,
/// and whether it reads ahead (it was continued, or began at the first
/// chunks).
#[derive(Clone, Copy)]
struct Stream {
    furthest: u64,
    used: u64,
    ahead: bool,
}

impl Stream {
    /// Whether a read of block `i` continues this stream.
    fn near(&self, i: u64) -> bool {
        i + 1 >= self.furthest && i <= self.furthest + 1
    }

    /// Whether block `i` is in this stream's read-ahead window of
    /// `window` blocks (fetched, being fetched, or about to be).
    fn covers(&self, i: u64, window: u64) -> bool {
        self.ahead && i > self.furthest && i <= self.furthest + window
    }
}

/// See the module doc.
pub(crate) struct Streams {
    streams: Vec<Stream>,
    tick: u64,
    /// The block where the object's chunks start (where its header ends).
    first: u64,
}

impl Streams {
    /// The streams of an object whose chunks start in block `first`.
    pub(crate) fn new(first: u64) -> Self {
        Streams {
            streams: Vec::new(),
            tick: 0,
            first,
        }
    }

    /// Whether a read of block `i` would start a new stream without
    /// read-ahead (a random reader's jump), recording nothing. Neither the
    /// first read of an object nor a read inside a sequential stream's
    /// read-ahead window of `window` blocks is a jump: those blocks are
    /// fetched whole anyway (the opener's second worker starts there, and
    /// may come first), and fetching its bytes apart as well would fetch
    /// them twice.
    pub(crate) fn jumps(&self, i: u64, window: u64) -> bool {
        !self.streams.is_empty()
            && i != self.first
            && !self
                .streams
                .iter()
                .any(|s| s.near(i) || s.covers(i, window))
    }

    /// Records a read of block `i`: the furthest block of the stream it
    /// continues, from which to read ahead, or `None` when it starts a new
    /// stream.
    pub(crate) fn read(&mut self, i: u64) -> Option<u64> {
        self.tick += 1;
        let tick = self.tick;
        if let Some(s) = self.streams.iter_mut().find(|s| s.near(i)) {
            s.furthest = s.furthest.max(i);
            s.used = tick;
            s.ahead = true;
            return Some(s.furthest);
        }
        let fresh = Stream {
            furthest: i,
            used: tick,
            ahead: i == self.first,
        };
        if self.streams.len() < STREAMS {
            self.streams.push(fresh);
        } else if let Some(oldest) = self.streams.iter_mut().min_by_key(|s| s.used) {
            *oldest = fresh;
        }
        // A read of the first chunks is how a whole read starts (`open`,
        // `verify`, `cat`): it reads ahead at once.
        (i == self.first).then_some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_readers_get_read_ahead_random_ones_do_not() {
        let mut s = Streams::new(1);
        assert!(!s.jumps(5, 2), "an object's first read is no jump");
        // A reader from the start: its first read starts a stream and reads
        // ahead at once, the next ones (the same block, the next) continue
        // it.
        assert_eq!(s.read(1), Some(1));
        assert_eq!(s.read(1), Some(1));
        assert_eq!(s.read(2), Some(2));
        // A second reader further on, interleaved with the first: both
        // continue their own stream; a request one block back (split over
        // threads) continues it without moving it back.
        assert_eq!(s.read(40), None);
        assert_eq!(s.read(3), Some(3));
        assert_eq!(s.read(41), Some(41));
        assert_eq!(s.read(40), Some(41));
        // A read in a sequential stream's read-ahead window is no jump.
        assert!(!s.jumps(43, 2), "inside the window after 41");
        assert!(s.jumps(44, 2), "past the window after 41");
        // Jumps start streams and get no read-ahead...
        for i in [100, 7, 300, 60, 200, 500, 900] {
            assert!(s.jumps(i, 2), "{i}");
            assert_eq!(s.read(i), None, "{i}");
            assert!(!s.jumps(i, 2) && !s.jumps(i + 1, 2), "{i}");
        }
        assert!(s.jumps(902, 2), "a random reader's stream has no window");
        // ...and replace the least recently continued streams only.
        assert_eq!(s.read(301), Some(301));
        assert_eq!(s.read(4), None, "the first stream was the oldest");
        assert!(!s.jumps(1, 2), "the first chunks are no jump");
        assert_eq!(s.read(1), Some(1), "the first chunks read ahead");
    }
}
