//! `COPY --chmod`: an octal mode, or chmod(1)'s symbolic form (`u=rwx,go=r`,
//! `go-w`, `+x`, `a+X`) with BSD setmode semantics and a zero umask, as
//! BuildKit applies it (an empty "who" means everyone; `X` adds execute only
//! to directories and files that already have an execute bit).

/// A parsed `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    /// Every entry gets exactly this mode.
    Octal(u32),
    /// Each entry's own mode is edited by these clauses.
    Symbolic(Vec<Clause>),
}

/// One `who op perms` action of a symbolic mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// Bits the clause may touch (u: 04700, g: 02070, o: 01007; none: all).
    who: u32,
    /// `+`, `-` or `=`.
    op: u8,
    /// What to set: plain bits, plus `X` and copies of u/g/o.
    perm: Perm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Perm {
    Bits { bits: u32, cond_x: bool },
    Copy(u8),
}

/// BuildKit's message for a value that is neither octal nor symbolic.
fn invalid(s: &str, why: Option<&str>) -> String {
    match why {
        None => format!(
            "invalid chmod parameter: '{s}'. it should be octal string and between 0 and 07777"
        ),
        Some(w) => format!("invalid chmod parameter: '{s}': {w}"),
    }
}

const ALL: u32 = 0o7777;

fn who_bits(c: u8) -> Option<u32> {
    Some(match c {
        b'u' => 0o4700,
        b'g' => 0o2070,
        b'o' => 0o1007,
        b'a' => ALL,
        _ => return None,
    })
}

impl Chmod {
    /// Parse a `--chmod` value; the error is BuildKit's message.
    pub fn parse(s: &str) -> Result<Chmod, String> {
        if s.starts_with(|c: char| c.is_ascii_digit()) {
            return u32::from_str_radix(s, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .map(Chmod::Octal)
                .ok_or_else(|| invalid(s, None));
        }
        let mut clauses = Vec::new();
        for part in s.split(',') {
            let b = part.as_bytes();
            let mut i = 0;
            let mut who = 0;
            while let Some(w) = b.get(i).and_then(|c| who_bits(*c)) {
                who |= w;
                i += 1;
            }
            if i == b.len() {
                return Err(invalid(s, Some("invalid syntax")));
            }
            while i < b.len() {
                let op = b[i];
                if !matches!(op, b'+' | b'-' | b'=') {
                    return Err(invalid(s, Some("invalid syntax")));
                }
                i += 1;
                let start = i;
                let mut bits = 0;
                let mut cond_x = false;
                let mut copy = None;
                while let Some(c) = b.get(i) {
                    match c {
                        b'r' => bits |= 0o444,
                        b'w' => bits |= 0o222,
                        b'x' => bits |= 0o111,
                        b'X' => cond_x = true,
                        b's' => bits |= 0o6000,
                        b't' => bits |= 0o1000,
                        b'u' | b'g' | b'o' if i == start => copy = Some(*c),
                        _ => break,
                    }
                    i += 1;
                    if copy.is_some() {
                        break;
                    }
                }
                let perm = match copy {
                    Some(c) => Perm::Copy(c),
                    None => Perm::Bits { bits, cond_x },
                };
                clauses.push(Clause {
                    who: if who == 0 { ALL } else { who },
                    op,
                    perm,
                });
            }
        }
        Ok(Chmod::Symbolic(clauses))
    }

    /// The mode of an entry whose own mode is `mode`.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let clauses = match self {
            Chmod::Octal(m) => return *m,
            Chmod::Symbolic(c) => c,
        };
        let mut m = mode & 0o7777;
        for c in clauses {
            let value = match c.perm {
                Perm::Bits { bits, cond_x } => {
                    let x = if cond_x && (is_dir || m & 0o111 != 0) {
                        0o111
                    } else {
                        0
                    };
                    bits | x
                }
                Perm::Copy(src) => {
                    let shift = match src {
                        b'u' => 6,
                        b'g' => 3,
                        _ => 0,
                    };
                    ((m >> shift) & 0o7) * 0o111
                }
            } & c.who;
            match c.op {
                b'+' => m |= value,
                b'-' => m &= !value,
                _ => m = (m & !c.who) | value,
            }
        }
        m
    }

    /// The mode of a parent directory COPY creates: an octal value without
    /// its special bits, else 0755 (BuildKit's MkdirAll).
    pub fn parent_mode(chmod: Option<&Chmod>) -> u32 {
        match chmod {
            Some(Chmod::Octal(m)) => m & 0o777,
            _ => 0o755,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str, mode: u32, dir: bool) -> u32 {
        Chmod::parse(s).unwrap().apply(mode, dir)
    }

    #[test]
    fn symbolic_modes_match_buildkits_cases() {
        // testChmodNonOctal: file 0666, directory 0124.
        assert_eq!(sym("go-w", 0o666, false), 0o644);
        assert_eq!(sym("u=rw,g=r,o=r", 0o666, false), 0o644);
        assert_eq!(sym("a+X", 0o666, false), 0o666);
        assert_eq!(sym("go-w", 0o124, true), 0o104);
        assert_eq!(sym("u+rw,g+r,o-x,o+w", 0o124, true), 0o766);
        assert_eq!(sym("a+X", 0o124, true), 0o135);
        assert_eq!(sym("+x", 0o644, false), 0o755);
        assert_eq!(sym("u=rwx,go=r", 0o4777, false), 0o744);
        assert_eq!(sym("g=u", 0o640, false), 0o660);
        assert_eq!(sym("u+s", 0o755, false), 0o4755);
    }

    #[test]
    fn octal_and_errors_as_buildkit() {
        assert_eq!(Chmod::parse("0644").unwrap(), Chmod::Octal(0o644));
        assert_eq!(Chmod::parse("4755").unwrap().apply(0, false), 0o4755);
        for bad in ["64a", "10000", "8"] {
            assert_eq!(
                Chmod::parse(bad).unwrap_err(),
                format!(
                    "invalid chmod parameter: '{bad}'. it should be octal string and between 0 and 07777"
                )
            );
        }
        assert!(Chmod::parse("u+q").unwrap_err().contains("invalid syntax"));
        assert!(Chmod::parse("ug").is_err());
        assert_eq!(Chmod::parent_mode(Some(&Chmod::Octal(0o4770))), 0o770);
        assert_eq!(Chmod::parent_mode(Chmod::parse("+x").ok().as_ref()), 0o755);
    }
}
