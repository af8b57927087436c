//! Line framing: splits bytes read from a file into lines.
//!
//! A line ends at `\n`; a `\r` right before it is stripped. Bytes after the last `\n` are a
//! partial line that waits for its newline (the caller keeps them and calls again with more).
//! A line longer than `max_line` is **split** into pieces of `max_line` bytes (flagged
//! [`FLAG_SPLIT`](crate::event::FLAG_SPLIT), all but the last), so no byte is lost and memory
//! stays bounded; the caller counts the splits. Bytes are never interpreted: invalid UTF-8 and NUL
//! bytes pass through untouched.

use crate::event::FLAG_SPLIT;

/// One framed piece: `start..start + len` in the buffer, ending at file offset `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub start: usize,
    pub len: usize,
    pub offset: u64,
    pub flags: u8,
}

/// Frames `buf`, whose first byte is at file offset `base`. `scanned` bytes at the start of `buf`
/// are known to hold no `\n` (the partial line from the previous call). Calls `emit` for every
/// complete line or split piece and returns how many bytes of `buf` were consumed; the rest is
/// the partial last line, shorter than `max_line`.
pub fn frame(
    buf: &[u8],
    scanned: usize,
    base: u64,
    max_line: usize,
    mut emit: impl FnMut(Frame),
) -> usize {
    debug_assert!(max_line > 0);
    let mut line_start = 0;
    let search_from = scanned.min(buf.len());
    for nl in memchr::memchr_iter(b'\n', &buf[search_from..]) {
        let nl = search_from + nl;
        let mut end = nl;
        if end > line_start && buf[end - 1] == b'\r' {
            end -= 1;
        }
        line_start = emit_pieces(line_start, end, base, max_line, &mut emit);
        emit(Frame {
            start: line_start,
            len: end - line_start,
            offset: base + nl as u64 + 1,
            flags: 0,
        });
        line_start = nl + 1;
    }
    // A partial line that already exceeds the limit: emit its whole pieces now and keep the
    // remainder, at least one byte and at most `max_line` (a line of exactly `max_line` bytes
    // whose newline has not arrived yet must not be split).
    let rest = buf.len() - line_start;
    if rest > max_line {
        let keep_from = line_start + ((rest - 1) / max_line) * max_line;
        while line_start < keep_from {
            emit(Frame {
                start: line_start,
                len: max_line,
                offset: base + (line_start + max_line) as u64,
                flags: FLAG_SPLIT,
            });
            line_start += max_line;
        }
    }
    line_start
}

/// Emits pieces of `max_line` bytes from `start` while more than `max_line` bytes remain before
/// `end`; returns where the last (short or exactly `max_line`) piece starts.
fn emit_pieces(
    mut start: usize,
    end: usize,
    base: u64,
    max_line: usize,
    emit: &mut impl FnMut(Frame),
) -> usize {
    while end - start > max_line {
        emit(Frame {
            start,
            len: max_line,
            offset: base + (start + max_line) as u64,
            flags: FLAG_SPLIT,
        });
        start += max_line;
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(buf: &[u8], scanned: usize, base: u64, max: usize) -> (Vec<(Vec<u8>, u64, u8)>, usize) {
        let mut out = Vec::new();
        let consumed = frame(buf, scanned, base, max, |f| {
            out.push((buf[f.start..f.start + f.len].to_vec(), f.offset, f.flags));
        });
        (out, consumed)
    }

    #[test]
    fn splits_lines_and_keeps_the_partial_tail() {
        let (lines, consumed) = run(b"a\nbb\r\n\nccc", 0, 100, 1024);
        assert_eq!(
            lines,
            vec![
                (b"a".to_vec(), 102, 0),
                (b"bb".to_vec(), 106, 0),
                (b"".to_vec(), 107, 0)
            ]
        );
        assert_eq!(consumed, 7, "`ccc` waits for its newline");
    }

    #[test]
    fn only_a_cr_right_before_the_newline_is_stripped() {
        let (lines, _) = run(b"a\rb\n\r\n\r\r\n", 0, 0, 1024);
        let got: Vec<_> = lines.into_iter().map(|l| l.0).collect();
        assert_eq!(got, vec![b"a\rb".to_vec(), b"".to_vec(), b"\r".to_vec()]);
    }

    #[test]
    fn bytes_pass_through_untouched() {
        let input = b"\xff\xfe\0bad utf8\0\n\xc3\x28\n";
        let (lines, consumed) = run(input, 0, 0, 1024);
        assert_eq!(lines[0].0, b"\xff\xfe\0bad utf8\0".to_vec());
        assert_eq!(lines[1].0, b"\xc3\x28".to_vec());
        assert_eq!(consumed, input.len());
    }

    #[test]
    fn long_lines_are_split_into_pieces_without_losing_bytes() {
        let line: Vec<u8> = (0..25u8).map(|i| b'a' + i).collect();
        let mut buf = line.clone();
        buf.push(b'\n');
        let (pieces, consumed) = run(&buf, 0, 1000, 10);
        assert_eq!(consumed, 26);
        let joined: Vec<u8> = pieces.iter().flat_map(|p| p.0.clone()).collect();
        assert_eq!(joined, line);
        assert_eq!(
            pieces
                .iter()
                .map(|p| (p.0.len(), p.1, p.2))
                .collect::<Vec<_>>(),
            vec![(10, 1010, FLAG_SPLIT), (10, 1020, FLAG_SPLIT), (5, 1026, 0)]
        );
    }

    #[test]
    fn a_line_of_exactly_max_is_not_split() {
        let (pieces, _) = run(b"0123456789\n", 0, 0, 10);
        assert_eq!(pieces, vec![(b"0123456789".to_vec(), 11, 0)]);
    }

    #[test]
    fn an_overlong_partial_line_is_emitted_in_whole_pieces() {
        let (pieces, consumed) = run(b"0123456789abcdefghijKLM", 0, 0, 10);
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[1], (b"abcdefghij".to_vec(), 20, FLAG_SPLIT));
        assert_eq!(consumed, 20, "`KLM` stays as the partial line");
        let (pieces, consumed) = run(b"0123456789", 0, 0, 10);
        assert!(
            pieces.is_empty(),
            "exactly max_line bytes may still be a whole line"
        );
        assert_eq!(consumed, 0);
    }

    #[test]
    fn resumes_scanning_after_the_known_partial() {
        // The first 3 bytes were scanned before: the caller promises they hold no newline.
        let (lines, consumed) = run(b"abcde\nf", 3, 0, 1024);
        assert_eq!(lines, vec![(b"abcde".to_vec(), 6, 0)]);
        assert_eq!(consumed, 6);
    }

    #[test]
    fn crlf_split_across_reads_is_still_stripped() {
        // First read ends with '\r': it stays in the partial tail.
        let (lines, consumed) = run(b"abc\r", 0, 0, 1024);
        assert!(lines.is_empty());
        assert_eq!(consumed, 0);
        let (lines, _) = run(b"abc\r\n", 4, 0, 1024);
        assert_eq!(lines, vec![(b"abc".to_vec(), 5, 0)]);
    }
}
