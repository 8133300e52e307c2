//! A timer with microsecond precision for the pacer.
//!
//! tokio's timer wheel has millisecond resolution, so a request meant to
//! start at t would leave up to a millisecond later; that lateness is real
//! (and would be counted in corrected latency), but it is the engine's own.
//! A timerfd is armed by the kernel's high-resolution timers and delivered
//! through the same reactor, so the pacer stays asynchronous.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

pub(crate) struct Timer {
    fd: AsyncFd<OwnedFd>,
}

impl Timer {
    pub(crate) fn new() -> io::Result<Timer> {
        // SAFETY: plain syscall; the returned fd is owned by the OwnedFd below.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh, valid descriptor that nothing else owns,
        // and the AsyncFd takes ownership of it, so it stays open exactly as
        // long as it is registered.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let fd = unsafe { AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Timer { fd })
    }

    /// Sleeps until `t`; returns at once if it has passed.
    pub(crate) async fn sleep_until(&self, t: Instant) -> io::Result<()> {
        let now = Instant::now();
        if t <= now {
            return Ok(());
        }
        let d = t - now;
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: d.as_secs() as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            },
        };
        use std::os::fd::AsRawFd;
        let raw = self.fd.get_ref().as_raw_fd();
        // SAFETY: valid fd and spec; relative arming (flags 0).
        if unsafe { libc::timerfd_settime(raw, 0, &spec, std::ptr::null_mut()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        loop {
            let mut guard = self.fd.readable().await?;
            let read = guard.try_io(|fd| {
                let mut buf = [0u8; 8];
                // SAFETY: reading 8 bytes into an 8-byte buffer.
                let n = unsafe { libc::read(fd.get_ref().as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
            match read {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wakes_close_to_the_deadline() {
        let timer = Timer::new().unwrap();
        let mut worst = Duration::ZERO;
        for _ in 0..20 {
            let t = Instant::now() + Duration::from_micros(700);
            timer.sleep_until(t).await.unwrap();
            worst = worst.max(Instant::now() - t);
        }
        // Far below tokio's 1 ms wheel; generous for a loaded CI machine.
        assert!(worst < Duration::from_millis(5), "late by {worst:?}");
    }
}
