//! Pseudo-terminals that stand in for USB serial radios: the simulator holds the master
//! side, and `DIR/rnodeN` links to the slave side, which any program opens as a port.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::pty::{openpty, OpenptyResult};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use tokio::io::unix::AsyncFd;

/// One virtual serial port.
#[derive(Debug)]
pub struct VirtualPort {
    master: AsyncFd<File>,
    /// Held open so the port keeps its raw settings and reads never fail while no
    /// program has it open.
    _slave: File,
    /// The slave device (`/dev/pts/N`).
    pub device: PathBuf,
    /// The stable link to it.
    pub link: PathBuf,
}

fn errno(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

impl VirtualPort {
    /// Create a pseudo-terminal in raw mode and point `link` at its slave side
    /// (replacing an old link).
    pub fn create(link: &Path) -> io::Result<VirtualPort> {
        let OpenptyResult { master, slave } = openpty(None, None).map_err(errno)?;
        // Raw: no echo, no line discipline, so bytes pass exactly as on a USB serial port.
        let mut t = tcgetattr(&slave).map_err(errno)?;
        cfmakeraw(&mut t);
        tcsetattr(&slave, SetArg::TCSANOW, &t).map_err(errno)?;
        let flags = OFlag::from_bits_truncate(fcntl(&master, FcntlArg::F_GETFL).map_err(errno)?);
        fcntl(&master, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map_err(errno)?;
        let device = nix::unistd::ttyname(&slave).map_err(errno)?;
        match std::fs::remove_file(link) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::os::unix::fs::symlink(&device, link)?;
        let master = File::from(master);
        // SAFETY: `master` is a `File` that owns a valid, open, non-blocking descriptor;
        // the `AsyncFd` takes ownership of it and nothing else closes or replaces the
        // descriptor while it is registered (tokio's I/O-safety requirement, #8587).
        #[allow(unsafe_code)]
        let master = unsafe { AsyncFd::register(master)? };
        Ok(VirtualPort {
            master,
            _slave: File::from(slave),
            device,
            link: link.to_path_buf(),
        })
    }

    /// Read what programs wrote to the port.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.master.readable().await?;
            match guard.try_io(|f| f.get_ref().read(buf)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Write bytes for programs to read. Bytes nobody reads pile up in the kernel's
    /// buffer; when it is full the write waits.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.master.writable().await?;
            match guard.try_io(|f| f.get_ref().write(data)) {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// Write what fits without waiting; returns how many bytes were taken (0 when the
    /// kernel buffer is full because nobody reads).
    pub fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        match self.master.get_ref().write(data) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Close the port (unplug): programs that have it open see it fail, and the link is
    /// removed.
    pub fn unplug(self) {
        let _ = std::fs::remove_file(&self.link);
    }
}

/// Two virtual ports wired to each other (a null-modem cable): what one program writes
/// to `a`, a program on `b` reads, and back. Runs until either port fails.
pub async fn null_modem(a: VirtualPort, b: VirtualPort) {
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let relay = |from: std::sync::Arc<VirtualPort>, to: std::sync::Arc<VirtualPort>| async move {
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = from.read(&mut buf).await {
            if to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = relay(a.clone(), b.clone()) => {}
        _ = relay(b, a) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_pass_both_ways_raw() {
        let dir = std::env::temp_dir().join(format!("grid-pty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join("rnode0");
        let port = VirtualPort::create(&link).unwrap();
        let mut other = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&link)
            .unwrap();
        // Every byte value, including the ones a cooked terminal would act on.
        let all: Vec<u8> = (0..=255u8).collect();
        other.write_all(&all).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while got.len() < all.len() {
            let n = port.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, all);
        port.write_all(&all).await.unwrap();
        let mut back = vec![0u8; 256];
        other.read_exact(&mut back).unwrap();
        assert_eq!(back, all);
        port.unplug();
        assert!(!link.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[cfg(test)]
mod serial_tests {
    use super::*;
    use grid_firmware::{cmd, kiss};
    use grid_interfaces::rnode::{self, RnodeConfig};
    use grid_interfaces::{Hub, InterfaceEvent};
    use rns_core::transport::InterfaceConfig;

    /// The host driver opens a pseudo-terminal as a serial port (termios, exclusive
    /// access) and brings up a scripted device on the other end.
    #[tokio::test]
    async fn the_rnode_driver_opens_a_virtual_port() {
        let dir = std::env::temp_dir().join(format!("grid-pty-serial-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join("rnode0");
        let port = VirtualPort::create(&link).unwrap();
        tokio::spawn(async move {
            let mut d = kiss::Decoder::<600>::new();
            let mut buf = [0u8; 512];
            loop {
                let Ok(n) = port.read(&mut buf).await else {
                    return;
                };
                let mut out = Vec::new();
                for &b in &buf[..n] {
                    let Some(f) = d.push(b) else { continue };
                    let (c, p) = match f.cmd {
                        cmd::DETECT => (cmd::DETECT, vec![cmd::DETECT_RESP]),
                        cmd::FW_VERSION => (cmd::FW_VERSION, vec![1, 82]),
                        c => (c, f.data.to_vec()),
                    };
                    out.extend(kiss::escaped(c, &p));
                }
                if port.write_all(&out).await.is_err() {
                    return;
                }
            }
        });
        let (hub, mut events) = Hub::new(16);
        let mut c = RnodeConfig::new(link.to_string_lossy(), 868_100_000, 125_000, 9, 5);
        c.open_settle = std::time::Duration::ZERO;
        tokio::spawn(rnode::run(hub, c, InterfaceConfig::radio("radio", 0)));
        let ev = tokio::time::timeout(std::time::Duration::from_secs(10), events.recv())
            .await
            .expect("the radio comes up")
            .unwrap();
        let InterfaceEvent::Up { config, .. } = ev else {
            panic!("{ev:?}")
        };
        assert_eq!(config.bitrate, 1757);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
