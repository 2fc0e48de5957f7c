//! Reading an SSE stream off a raw HTTP/1.1 response, cheaply.
//!
//! The fan-out harness runs thousands of subscribers on the same two cores as the servers, so each
//! one is a bare TCP socket with three small state machines instead of a full HTTP client:
//! [`ChunkedDecoder`] undoes `Transfer-Encoding: chunked`, [`EventSplitter`] cuts the body into
//! events at blank lines, and [`stamp`] finds the send time the publisher wrote into a message.
//! [`request_events`] asks for a stream (resuming after a cursor when given) and reads its head.

use std::net::SocketAddr;

use anyhow::bail;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Marks a stamped message text: `lt:<microseconds on the harness clock>`.
pub const STAMP_PREFIX: &str = "lt:";

/// Decodes a chunked HTTP/1.1 body, fed in arbitrary pieces.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
    /// The chunk-size line read so far.
    line: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading a chunk-size line.
    #[default]
    Size,
    /// Inside a chunk's data: this many bytes to go.
    Data(usize),
    /// After a chunk's data: skipping its CRLF (this many bytes to go).
    DataEnd(u8),
    /// The last (zero-size) chunk was read: the body is over.
    Done,
}

/// A chunk-size line that is not hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadChunk;

impl ChunkedDecoder {
    /// Decodes `input`, appending body bytes to `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), BadChunk> {
        while !input.is_empty() {
            match self.state {
                ChunkState::Size => match input.iter().position(|&b| b == b'\n') {
                    None => {
                        self.line.extend_from_slice(input);
                        return Ok(());
                    }
                    Some(end) => {
                        self.line.extend_from_slice(&input[..end]);
                        input = &input[end + 1..];
                        let size = chunk_size(&self.line).ok_or(BadChunk)?;
                        self.line.clear();
                        self.state = if size == 0 {
                            ChunkState::Done
                        } else {
                            ChunkState::Data(size)
                        };
                    }
                },
                ChunkState::Data(left) => {
                    let take = left.min(input.len());
                    out.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    self.state = match left - take {
                        0 => ChunkState::DataEnd(2),
                        left => ChunkState::Data(left),
                    };
                }
                ChunkState::DataEnd(left) => {
                    input = &input[1..];
                    self.state = match left {
                        1 => ChunkState::Size,
                        _ => ChunkState::DataEnd(left - 1),
                    };
                }
                ChunkState::Done => return Ok(()),
            }
        }
        Ok(())
    }

    /// True once the last chunk has been read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }
}

/// The size in a chunk-size line (`1a3;ext=1\r`).
fn chunk_size(line: &[u8]) -> Option<usize> {
    let line = std::str::from_utf8(line).ok()?;
    let hex = line.split(';').next()?.trim();
    usize::from_str_radix(hex, 16).ok()
}

/// Cuts an SSE body into events (the text between blank lines).
#[derive(Debug, Default)]
pub struct EventSplitter {
    buffer: Vec<u8>,
}

impl EventSplitter {
    /// Adds `body` and calls `each` with every event it completes, in order.
    pub fn feed(&mut self, body: &[u8], mut each: impl FnMut(&[u8])) {
        self.buffer.extend_from_slice(body);
        let mut start = 0;
        while let Some(end) = find(&self.buffer[start..], b"\n\n") {
            each(&self.buffer[start..start + end]);
            start += end + 2;
        }
        self.buffer.drain(..start);
    }
}

/// The `event:` field of an event (`message` when absent, as in the SSE spec).
pub fn event_type(event: &[u8]) -> &[u8] {
    event
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"event:"))
        .map(|v| v.strip_prefix(b" ").unwrap_or(v))
        .unwrap_or(b"message")
}

/// The `id:` field of an event (its cursor), if it has one.
pub fn event_id(event: &[u8]) -> Option<&[u8]> {
    event
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"id:"))
        .map(|v| v.strip_prefix(b" ").unwrap_or(v))
}

/// The send time stamped into a message event's text, if it carries one.
pub fn stamp(event: &[u8]) -> Option<u64> {
    let marker = b"\"text\":\"lt:";
    let at = find(event, marker)? + marker.len();
    let digits = event[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&event[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Splits a response into its status code and what follows the head, once the head is complete.
pub fn response_head(buffer: &[u8]) -> Option<(u16, usize)> {
    let end = find(buffer, b"\r\n\r\n")? + 4;
    let status_line = buffer.split(|&b| b == b'\n').next()?;
    let code = std::str::from_utf8(status_line)
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((code, end))
}

/// Asks for `room`'s event stream on `stream` (connected to `addr`), resuming after
/// `last_event_id` when given, and reads the response head. Returns the body bytes read with it.
pub async fn request_events(
    stream: &mut TcpStream,
    addr: SocketAddr,
    room: &str,
    last_event_id: Option<&str>,
) -> anyhow::Result<Vec<u8>> {
    let resume = last_event_id
        .map(|id| format!("Last-Event-ID: {id}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET /api/rooms/{room}/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{resume}\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(512);
    let mut buffer = [0u8; 1024];
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            bail!("the server closed the stream before answering");
        }
        head.extend_from_slice(&buffer[..n]);
        if let Some((status, body_start)) = response_head(&head) {
            let text = String::from_utf8_lossy(&head[..body_start]).to_ascii_lowercase();
            if status != 200 {
                bail!("the event stream answered {status}");
            }
            if !text.contains("transfer-encoding: chunked") {
                bail!("the event stream is not chunked");
            }
            return Ok(head[body_start..].to_vec());
        }
        if head.len() > 16 * 1024 {
            bail!("no response head in 16 KiB");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: &[u8] =
        b"id: 2-17\nevent: message\ndata: {\"id\":\"x\",\"text\":\"lt:123456 hello\",\"at\":\"t\"}\n\n";

    fn chunked(pieces: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in pieces {
            out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }

    #[test]
    fn a_chunked_body_decodes_the_same_whatever_the_read_sizes() {
        let body: &[&[u8]] = &[b"retry: 2000\n\n", FRAME, b":\n\n"];
        let wire = chunked(body);
        for read_size in [1, 2, 3, 7, 64, wire.len()] {
            let (mut decoder, mut out) = (ChunkedDecoder::default(), Vec::new());
            for piece in wire.chunks(read_size) {
                decoder.feed(piece, &mut out).expect("valid chunks");
            }
            assert_eq!(out, body.concat(), "read size {read_size}");
            assert!(decoder.is_done());
        }
    }

    #[test]
    fn a_chunk_extension_is_ignored_and_garbage_is_refused() {
        let (mut decoder, mut out) = (ChunkedDecoder::default(), Vec::new());
        decoder
            .feed(b"3;name=v\r\nabc\r\n", &mut out)
            .expect("extension");
        assert_eq!(out, b"abc");
        let mut decoder = ChunkedDecoder::default();
        assert_eq!(decoder.feed(b"zz\r\n", &mut out), Err(BadChunk));
    }

    #[test]
    fn events_are_cut_at_blank_lines_across_reads() {
        let body = [&b"retry: 2000\n\n"[..], FRAME, b":\n\n"].concat();
        let mut splitter = EventSplitter::default();
        let mut events: Vec<Vec<u8>> = Vec::new();
        for piece in body.chunks(5) {
            splitter.feed(piece, |event| events.push(event.to_vec()));
        }
        assert_eq!(events.len(), 3);
        assert_eq!(event_type(&events[0]), b"message", "no event field");
        assert_eq!(event_type(&events[1]), b"message");
        assert_eq!(stamp(&events[1]), Some(123_456));
        assert_eq!(events[2], b":");
    }

    #[test]
    fn an_event_id_is_its_cursor_with_or_without_the_space() {
        assert_eq!(event_id(FRAME), Some(b"2-17".as_slice()));
        assert_eq!(event_id(b"id:0-5\ndata: {}"), Some(b"0-5".as_slice()));
        assert_eq!(event_id(b"retry: 2000"), None);
    }

    #[test]
    fn only_stamped_texts_give_a_stamp() {
        assert_eq!(stamp(b"event: message\ndata: {\"text\":\"hello\"}"), None);
        assert_eq!(stamp(b"event: reset\ndata: {\"reason\":\"lagged\"}"), None);
        assert_eq!(
            event_type(b"id: 1-1\nevent: reset\ndata: {}"),
            b"reset".as_slice()
        );
    }

    #[test]
    fn the_response_head_gives_status_and_body_start() {
        let response = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n5\r\n";
        assert_eq!(response_head(response), Some((200, response.len() - 3)));
        assert_eq!(response_head(b"HTTP/1.1 503 Service Unavailable\r\n"), None);
        assert_eq!(
            response_head(b"HTTP/1.1 503 Service Unavailable\r\n\r\n"),
            Some((503, 36))
        );
    }
}
