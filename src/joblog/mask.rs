//! Secret values kept out of job logs: every occurrence in a line of output (or in one of
//! deployhook's own lines) is written as `***`, whatever the command did with the value.
//! Output is masked line by line, after the pipes' bytes are joined into lines, so a
//! value written in pieces is masked too; a value of several lines is masked line by line.

use std::borrow::Cow;
use std::sync::Arc;

/// What replaces a secret.
pub const MASK: &[u8] = b"***";

/// Pieces shorter than this are not masked: they would hide ordinary text ("a", "on").
const MIN_PIECE: usize = 4;

/// The values to mask; cheap to clone.
#[derive(Clone, Default, Debug)]
pub struct Mask(Arc<Vec<Vec<u8>>>);

impl Mask {
    /// Masks each of `values`, and each line of one that has several.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Mask {
        let mut pieces: Vec<Vec<u8>> = values
            .into_iter()
            .flat_map(|v| v.split(|&b| b == b'\n' || b == b'\r'))
            .map(<[u8]>::trim_ascii)
            .filter(|p| p.len() >= MIN_PIECE)
            .map(<[u8]>::to_vec)
            .collect();
        // Longest first, so that a value containing another is masked whole.
        pieces.sort_by_key(|p| std::cmp::Reverse(p.len()));
        pieces.dedup();
        Mask(Arc::new(pieces))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `line` with every secret replaced by [`MASK`].
    pub fn apply<'l>(&self, line: &'l [u8]) -> Cow<'l, [u8]> {
        let mut out: Cow<'l, [u8]> = Cow::Borrowed(line);
        for secret in self.0.iter() {
            if let Some(replaced) = replace(&out, secret) {
                out = Cow::Owned(replaced);
            }
        }
        out
    }
}

/// `hay` with each `needle` replaced, or `None` if there is none.
fn replace(hay: &[u8], needle: &[u8]) -> Option<Vec<u8>> {
    let first = find(hay, needle, 0)?;
    let mut out = Vec::with_capacity(hay.len());
    let mut from = 0;
    let mut at = Some(first);
    while let Some(i) = at {
        out.extend_from_slice(&hay[from..i]);
        out.extend_from_slice(MASK);
        from = i + needle.len();
        at = find(hay, needle, from);
    }
    out.extend_from_slice(&hay[from..]);
    Some(out)
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_occurrence_and_every_line_of_a_value_is_masked() {
        let m = Mask::new([
            b"s3cr3t-token".as_slice(),
            b"line-one-of-key\nline-two-of-key\n".as_slice(),
            b"ab".as_slice(),
        ]);
        assert_eq!(
            &*m.apply(b"token=s3cr3t-token and again s3cr3t-token!"),
            b"token=*** and again ***!"
        );
        assert_eq!(&*m.apply(b"  line-two-of-key"), b"  ***");
        assert_eq!(
            &*m.apply(b"ab is too short to mask"),
            b"ab is too short to mask"
        );
        assert!(matches!(m.apply(b"nothing here"), Cow::Borrowed(_)));
        assert!(Mask::default().is_empty());
    }
}
