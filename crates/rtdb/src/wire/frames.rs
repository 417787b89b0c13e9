//! Frame splitting of the realtime protocol's WebSocket transport: a message longer than
//! [`MAX_FRAME`] goes as a text frame holding the number of frames, then the frames; the
//! receiver joins them. Both ends do it (the SDK's `WebSocketConnection`).

/// Largest frame either side sends.
pub const MAX_FRAME: usize = 16384;

/// Why incoming frames were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The joined message would exceed the limit.
    #[error("message of more than {limit} bytes")]
    TooLarge { limit: usize },
}

/// The frames that carry `msg`: itself when it fits, else a count and the parts (split on
/// character boundaries, each at most [`MAX_FRAME`] bytes).
pub fn split(msg: &str) -> Vec<String> {
    if msg.len() <= MAX_FRAME {
        return vec![msg.to_owned()];
    }
    let mut parts = Vec::with_capacity(msg.len() / MAX_FRAME + 2);
    let mut rest = msg;
    while !rest.is_empty() {
        let mut cut = rest.len().min(MAX_FRAME);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        parts.push(head.to_owned());
        rest = tail;
    }
    let mut out = Vec::with_capacity(parts.len() + 1);
    out.push(parts.len().to_string());
    out.extend(parts);
    out
}

/// Joins incoming frames into messages, within a size bound.
#[derive(Debug)]
pub struct Joiner {
    limit: usize,
    pending: Option<(usize, String)>,
}

impl Joiner {
    /// Messages of at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Joiner {
            limit,
            pending: None,
        }
    }

    /// Takes one text frame: `Some(message)` when one is complete. A frame of at most six
    /// characters that is a number starts a multi-frame message (the SDK's rule); the
    /// keep-alive `"0"` is such a frame and yields nothing.
    pub fn push(&mut self, frame: &str) -> Result<Option<String>, FrameError> {
        if let Some((left, buf)) = &mut self.pending {
            if buf.len() + frame.len() > self.limit {
                self.pending = None;
                return Err(FrameError::TooLarge { limit: self.limit });
            }
            buf.push_str(frame);
            *left -= 1;
            if *left == 0 {
                return Ok(self.pending.take().map(|(_, m)| m));
            }
            return Ok(None);
        }
        if frame.len() <= 6 {
            if let Ok(n) = frame.parse::<usize>() {
                if n > 0 {
                    // Every frame carries at least one byte.
                    if n > self.limit {
                        return Err(FrameError::TooLarge { limit: self.limit });
                    }
                    self.pending = Some((n, String::new()));
                }
                return Ok(None);
            }
        }
        if frame.len() > self.limit {
            return Err(FrameError::TooLarge { limit: self.limit });
        }
        Ok(Some(frame.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_split_and_join_back() {
        let msg = format!("{{\"d\":\"{}é\"}}", "x".repeat(3 * MAX_FRAME));
        let frames = split(&msg);
        assert_eq!(frames[0], "4");
        assert!(frames[1..].iter().all(|f| f.len() <= MAX_FRAME));
        let mut j = Joiner::new(1 << 20);
        let mut out = None;
        for f in &frames {
            out = j.push(f).unwrap();
        }
        assert_eq!(out.as_deref(), Some(msg.as_str()));
        assert_eq!(split("{}"), vec!["{}".to_owned()]);
    }

    #[test]
    fn keepalives_yield_nothing_and_oversized_messages_are_refused() {
        let mut j = Joiner::new(100);
        assert_eq!(j.push("0").unwrap(), None);
        assert_eq!(j.push("{\"t\":1}").unwrap().as_deref(), Some("{\"t\":1}"));
        assert!(j.push(&"y".repeat(101)).is_err());
        assert_eq!(j.push("2").unwrap(), None);
        assert_eq!(j.push(&"a".repeat(60)).unwrap(), None);
        assert!(j.push(&"b".repeat(60)).is_err(), "joined size is bounded");
        assert!(j.push("1000").is_err(), "more frames than bytes allowed");
    }
}
