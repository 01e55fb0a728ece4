//! Capabilities of a RUN step: Docker's default set, and nothing for a
//! non-root user.

/// Docker's default capability set, by name and number (linux/capability.h).
pub const DEFAULT_CAPS: [(&str, u32); 14] = [
    ("CAP_CHOWN", 0),
    ("CAP_DAC_OVERRIDE", 1),
    ("CAP_FOWNER", 3),
    ("CAP_FSETID", 4),
    ("CAP_KILL", 5),
    ("CAP_SETGID", 6),
    ("CAP_SETUID", 7),
    ("CAP_SETPCAP", 8),
    ("CAP_NET_BIND_SERVICE", 10),
    ("CAP_NET_RAW", 13),
    ("CAP_SYS_CHROOT", 18),
    ("CAP_MKNOD", 27),
    ("CAP_AUDIT_WRITE", 29),
    ("CAP_SETFCAP", 31),
];

/// Whether the step's bounding set holds the capability named `name`.
pub fn in_bounding_set(name: &str) -> bool {
    DEFAULT_CAPS.iter().any(|(n, _)| *n == name)
}

/// Shrink the bounding set to Docker's default set and make it the
/// effective and permitted set (for root; the kernel clears them at the
/// switch to another user).
pub fn drop_capabilities() -> std::io::Result<()> {
    let mut mask: u64 = 0;
    for (_, c) in DEFAULT_CAPS {
        mask |= 1u64 << c;
    }
    for cap in 0..64u32 {
        if mask & (1u64 << cap) == 0 {
            // SAFETY: plain prctl.
            let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            // EINVAL: a capability this kernel does not know, so nobody has it.
            let e = std::io::Error::last_os_error();
            if r != 0 && e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
        }
    }
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let h = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let d = [
        Data {
            effective: mask as u32,
            permitted: mask as u32,
            inheritable: 0,
        },
        Data {
            effective: (mask >> 32) as u32,
            permitted: (mask >> 32) as u32,
            inheritable: 0,
        },
    ];
    // SAFETY: capset with a v3 header and two data structs, as the kernel ABI defines.
    let r = unsafe { libc::syscall(libc::SYS_capset, &h as *const Header, d.as_ptr()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
