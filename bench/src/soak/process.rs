//! What the soak reads of the host process, through `procfs`.

/// Resident memory of `pid` in KiB (0 when it cannot be read).
pub fn rss_kb(pid: u32) -> u64 {
    procfs::process::Process::new(pid as i32)
        .and_then(|p| p.status())
        .ok()
        .and_then(|s| s.vmrss)
        .unwrap_or(0)
}

/// Open file descriptors of `pid` (0 when they cannot be read).
pub fn fds(pid: u32) -> u64 {
    procfs::process::Process::new(pid as i32)
        .and_then(|p| p.fd_count())
        .map(|n| n as u64)
        .unwrap_or(0)
}
