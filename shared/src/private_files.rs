//! The embedded engines' data folder is the service's alone: it holds every message (the event
//! log), the read model and the key that signs session tokens. So the folder is created `0700` and
//! each file the service creates in it `0600`, whatever the process's umask, and an existing folder
//! or file is narrowed to those modes at start-up. SQLite gives a database's `-wal` and `-shm` files
//! the mode of the database file, so creating that file first is enough for them.
//!
//! Plain `std` calls (`DirBuilderExt::mode`, `OpenOptionsExt::mode`, `set_permissions`): the
//! workspace forbids `unsafe`, so the umask itself is left alone.

use std::{fs, io, path::Path};

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

/// The data folder's mode: its owner only.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file the service creates in it.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) as `0700`, or narrows an existing one to that.
pub fn dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(DIR_MODE);
    builder.create(dir)?;
    #[cfg(unix)]
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))?;
    Ok(())
}

/// Creates the empty `file` as `0600` if it is missing (its folder too, see [`dir`]), or narrows an
/// existing one and its SQLite `-wal`, `-shm` and `-journal` files to that. Its contents are left
/// alone.
pub fn file(file: &Path) -> io::Result<()> {
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        dir(parent)?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    options.mode(FILE_MODE);
    drop(options.open(file)?);
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut path = file.as_os_str().to_owned();
        path.push(suffix);
        match fs::set_permissions(&path, fs::Permissions::from_mode(FILE_MODE)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_folder_and_file_are_private_and_old_ones_are_narrowed() {
        let root = std::env::temp_dir().join(format!("hotchat-private-{}", uuid::Uuid::now_v7()));
        let data = root.join("data");
        file(&data.join("a.db")).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("a.db")), 0o600);

        fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(data.join("a.db-wal"), b"x").unwrap();
        fs::set_permissions(data.join("a.db-wal"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(data.join("a.db"), b"kept").unwrap();
        file(&data.join("a.db")).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("a.db-wal")), 0o600);
        assert_eq!(fs::read(data.join("a.db")).unwrap(), b"kept");
        fs::remove_dir_all(&root).unwrap();
    }
}
