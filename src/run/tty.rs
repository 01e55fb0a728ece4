//! `rbuild run -t`: the container makes a pseudo-terminal in its own
//! /dev/pts (its stdin, stdout and stderr, and its controlling terminal)
//! and hands the master side to rbuild, which copies it. With `-i` the
//! caller's terminal is put in raw mode (restored when the run ends, even
//! on an error) and every key goes to the container; the window size is
//! copied at start and on every SIGWINCH.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Whether `fd` is a terminal.
pub fn is_tty(fd: RawFd) -> bool {
    // SAFETY: isatty on a descriptor number.
    unsafe { libc::isatty(fd) == 1 }
}

/// Copy the window size of the terminal `from` (if it is one) to `to`.
pub fn copy_winsize(from: RawFd, to: RawFd) {
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ with a valid struct.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_row > 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

/// The caller's terminal in raw mode; its settings come back when dropped.
pub struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    /// Put the terminal `fd` in raw mode (`None` when it is not a terminal).
    pub fn enter(fd: RawFd) -> Option<RawMode> {
        // SAFETY: tcgetattr/cfmakeraw/tcsetattr with valid structs.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut saved) != 0 {
                return None;
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(fd, libc::TCSANOW, &raw) != 0 {
                return None;
            }
            Some(RawMode { fd, saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restoring the settings read in `enter`.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

/// Copy the container's output (the master) to stdout until every slave
/// descriptor is closed; with `input`, copy stdin to the master meanwhile
/// (a thread left behind when the run ends). Join the returned thread to
/// get all the output.
pub fn pump(master: OwnedFd, input: bool) -> std::io::Result<std::thread::JoinHandle<()>> {
    let mut reader = std::fs::File::from(master);
    if input {
        let mut writer = reader.try_clone()?;
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 4096];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => {
                        // End of input: the terminal's end-of-file character.
                        let _ = writer.write_all(&[4]);
                        break;
                    }
                    Ok(n) => {
                        if writer.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        });
    }
    Ok(std::thread::spawn(move || {
        let mut out = std::io::stdout().lock();
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // EIO: the last slave descriptor closed.
                Err(_) => break,
            }
        }
    }))
}

/// The descriptor whose window size the container follows: stdout when it
/// is a terminal, else stdin.
pub fn size_source() -> Option<RawFd> {
    [std::io::stdout().as_raw_fd(), std::io::stdin().as_raw_fd()]
        .into_iter()
        .find(|fd| is_tty(*fd))
}
